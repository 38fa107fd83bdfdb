/* test_tokenizer.c: the SPM tokenizer against llama.cpp.
 *
 *   llama.cpp's own test vectors   ggml-vocab-llama-spm.gguf .inp/.out, every case,
 *                                  and the decoded text back
 *   oracle cross-check             tokenizer-stories260K.txt: texts tokenized by
 *                                  llama.cpp v0.5.0, with and without parse_special
 *   edge cases                     special tokens, byte fallback, invalid UTF-8,
 *                                  empty and long input, small buffers, bad ids
 *   rules on tiny vocabularies     written with the GGUF writer: merge order,
 *                                  metadata defaults and errors, Phi-3's RSTRIP
 *
 * Every other vocabulary of llama.cpp's tests, BPE ones included, is in
 * test_vocabs.c.
 */
#include "testhelp.h"
#include "vocabhelp.h"
#include "vkllm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DATA(name) VKLLM_TEST_DATA "/" name
#define GEN(name)  VKLLM_TEST_GEN "/" name

/* ============================== Helpers ============================== */

static bool same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* Checks that TEXT gives exactly the ids EXPECT. */
static void check_ids(const vkllm_vocab *v, const char *what, const char *text, size_t len,
                      bool add_special, bool parse_special, const int32_t *expect, int n_expect)
{
    int n;
    int32_t *ids = tokenize(v, text, len, add_special, parse_special, &n);
    bool ok = same_ids(ids, n, expect, n_expect);
    CHECK(ok, "%s: '%.*s' (add_special %d, parse_special %d)", what, (int)len, text, add_special,
          parse_special);
    if (!ok) {
        print_ids("expected", expect, n_expect);
        print_ids("got     ", ids, n);
    }
    free(ids);
}

#define CHECK_IDS(v, text, add_special, parse_special, ...)                                        \
    do {                                                                                           \
        const int32_t expect_[] = {__VA_ARGS__};                                                   \
        check_ids(v, #v, text, strlen(text), add_special, parse_special, expect_,                  \
                  (int)(sizeof expect_ / sizeof expect_[0]));                                      \
    } while (0)

/* Space-separated ids in S (up to END) into IDS (room for CAP); returns the count. */
static int parse_ids(const char *s, const char *end, int32_t *ids, int cap)
{
    int n = 0;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\r'))
            s++;
        if (s >= end) break;
        char *after;
        long id = strtol(s, &after, 10);
        REQUIRE(after > s && n < cap, "bad id list near '%.20s'", s);
        ids[n++] = (int32_t)id;
        s = after;
    }
    return n;
}

/* ============================== llama.cpp's test vectors ============================== */

/* llama.cpp's tests/test-tokenizer-0: cases in X.inp separated by
 * "\n__ggml_vocab_test__\n", line i of X.out the ids of case i, tokenized with
 * add_special = false and parse_special = false. Also decodes the ids: SPM
 * vocabularies give the text back, once the prefix space is stripped. */
static int run_vocab_vectors(const char *gguf_path, const char *inp_path, const char *out_path)
{
    vkllm_vocab *v = load_vocab(gguf_path);
    size_t inp_len, out_len;
    char *inp = read_file(inp_path, &inp_len);
    char *out = read_file(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *inp_end = inp + inp_len, *line = out, *out_end = out + out_len;
    int n_cases = 0, failures_before = test_failures;
    int32_t *expect = malloc(4096 * sizeof *expect);
    REQUIRE(expect);
    while (p < inp_end) {
        const char *next = strstr(p, sep);
        size_t len = next ? (size_t)(next - p) : (size_t)(inp_end - p);
        REQUIRE(line < out_end, "%s: fewer lines than cases", out_path);
        const char *eol = memchr(line, '\n', (size_t)(out_end - line));
        if (!eol) eol = out_end;
        int n_expect = parse_ids(line, eol, expect, 4096);

        check_ids(v, gguf_path, p, len, false, false, expect, n_expect);
        size_t back_len;
        char *back = detokenize(v, expect, n_expect, true, &back_len);
        CHECK(back_len == len && memcmp(back, p, len) == 0, "%s: '%.*s' decodes to '%s'", gguf_path,
              (int)len, p, back);
        free(back);

        n_cases++;
        line = eol + 1;
        p = next ? next + strlen(sep) : inp_end;
    }
    CHECK(line >= out_end, "%s: more lines than cases", out_path);
    fprintf(stderr, "%s: %d cases, %d failed\n", gguf_path, n_cases,
            test_failures - failures_before);
    free(expect);
    free(inp);
    free(out);
    vkllm_vocab_free(v);
    return n_cases;
}

static void test_llama_spm_vectors(void)
{
    int n = run_vocab_vectors(DATA("ggml-vocab-llama-spm.gguf"),
                              DATA("vocab/ggml-vocab-llama-spm.gguf.inp"),
                              DATA("vocab/ggml-vocab-llama-spm.gguf.out"));
    CHECK(n == 46, "%d cases", n);
}

/* ============================== Oracle cross-check ============================== */

/* Undoes the file's C escapes in place; returns the new length. */
static size_t unescape(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 >= len) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n')
            s[o++] = '\n';
        else if (c == 't')
            s[o++] = '\t';
        else if (c == 'r')
            s[o++] = '\r';
        else if (c == 'x' && i + 2 < len) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else
            s[o++] = c;
    }
    return o;
}

static void test_oracle_file(const vkllm_vocab *v)
{
    size_t len;
    char *file = read_file(DATA("tokenizer-stories260K.txt"), &len);
    int32_t plain[1024], special[1024];
    int n_cases = 0;
    for (char *line = file; line < file + len;) {
        char *eol = strchr(line, '\n');
        if (!eol) eol = file + len;
        *eol = 0;
        if (line[0] != '#' && line[0]) {
            char *f[4] = {line, NULL, NULL, NULL};
            for (int i = 1; i < 4; i++) {
                f[i] = strchr(f[i - 1], '\t');
                REQUIRE(f[i], "tokenizer-stories260K.txt: bad line '%s'", line);
                *f[i]++ = 0;
            }
            bool parse_special = f[0][0] == '1';
            size_t text_len = unescape(f[1], strlen(f[1]));
            int n_plain = parse_ids(f[2], f[2] + strlen(f[2]), plain, 1024);
            int n_special = parse_ids(f[3], f[3] + strlen(f[3]), special, 1024);
            check_ids(v, "oracle", f[1], text_len, false, parse_special, plain, n_plain);
            check_ids(v, "oracle", f[1], text_len, true, parse_special, special, n_special);
            n_cases++;
        }
        line = eol + 1;
    }
    CHECK(n_cases >= 100, "only %d cases", n_cases);
    fprintf(stderr, "tokenizer-stories260K.txt: %d cases\n", n_cases);
    free(file);
}

/* ============================== Models ============================== */

static void test_known_ids(const vkllm_vocab *stories, const vkllm_vocab *tiny)
{
    CHECK(vkllm_vocab_n_tokens(stories) == 512);
    CHECK(vkllm_vocab_bos(stories) == 1 && vkllm_vocab_eos(stories) == 2);
    CHECK(vkllm_vocab_add_bos(stories));
    CHECK_IDS(stories, "Once upon a time", false, false, 403, 407, 261, 378);
    CHECK_IDS(stories, "Once upon a time", true, false, 1, 403, 407, 261, 378);

    CHECK(vkllm_vocab_n_tokens(tiny) == 32000);
    CHECK_IDS(tiny, "Once upon a time", false, false, 9038, 2501, 263, 931);
    CHECK_IDS(tiny, "Once upon a time", true, false, 1, 9038, 2501, 263, 931);
    /* from the oracle, on the 32k vocabulary */
    CHECK_IDS(tiny, "Hello, world! 123", false, false, 15043, 29892, 3186, 29991, 29871, 29896,
              29906, 29941);
}

static void test_special_tokens(const vkllm_vocab *v)
{
    /* parse_special: the text of control tokens is the token ... */
    CHECK_IDS(v, "<s>hi</s>", false, true, 1, 270, 417, 2);
    /* ... otherwise it is plain text; BOS stays the only 1 */
    CHECK_IDS(v, "<s>hi</s>", false, false, 410, 504, 419, 505, 415, 417, 504, 492, 419, 505);
    CHECK_IDS(v, "<s>hi</s>", true, false, 1, 410, 504, 419, 505, 415, 417, 504, 492, 419, 505);
    /* a space prefix goes after every special token, not only at the start */
    CHECK_IDS(v, "</s>hi", false, true, 2, 270, 417);

    CHECK(vkllm_vocab_is_eog(v, 2));
    CHECK(!vkllm_vocab_is_eog(v, 1) && !vkllm_vocab_is_eog(v, 0) && !vkllm_vocab_is_eog(v, 403));
    CHECK(!vkllm_vocab_is_eog(v, -1) && !vkllm_vocab_is_eog(v, 512));
}

/* A character with no token falls back to its UTF-8 bytes, <0xXX> = id 3 + byte
 * in these vocabularies. */
static void test_byte_fallback(const vkllm_vocab *stories, const vkllm_vocab *spm)
{
    /* U+732B (3 bytes) and U+1F999 (4 bytes); the oracle agrees */
    CHECK_IDS(stories, "\xe7\x8c\xab", false, false, 410, 3 + 0xe7, 3 + 0x8c, 3 + 0xab);
    CHECK_IDS(stories, "\xf0\x9f\xa6\x99!", false, false, 410, 3 + 0xf0, 3 + 0x9f, 3 + 0xa6,
              3 + 0x99, 443);
    int n;
    int32_t *ids = tokenize(stories, "\xf0\x9f\xa6\x99", 4, false, false, &n);
    size_t len;
    char *back = detokenize(stories, ids, n, true, &len);
    CHECK(len == 4 && memcmp(back, "\xf0\x9f\xa6\x99", 4) == 0, "bytes decode back");
    free(back);
    free(ids);

    /* Invalid UTF-8, cut as llama.cpp cuts it: a character's length comes from
     * its first byte alone. 0xC3 claims the '(' after it, so '(' comes out as
     * the byte <0x28>, and the prefix space cannot merge with it into "▁("
     * (313) as it does in valid text. */
    CHECK_IDS(spm, "\xc3(", false, false, 29871, 3 + 0xc3, 3 + 0x28);
    CHECK_IDS(spm, "(", false, false, 313);
    /* a stray continuation byte is a character of its own; a truncated one at
     * the end takes what is left */
    CHECK_IDS(spm, "a\x80", false, false, 263, 3 + 0x80);
    CHECK_IDS(spm, "a\xe2\x96", false, false, 263, 3 + 0xe2, 3 + 0x96);
    CHECK_IDS(spm, "\xff", false, false, 29871, 3 + 0xff);
}

static void test_edges(const vkllm_vocab *v)
{
    int32_t ids[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
    /* empty text: nothing, or BOS alone (SentencePiece's encode('') = []) */
    CHECK(vkllm_tokenize(v, "", 0, false, false, ids, 8) == 0);
    CHECK(vkllm_tokenize(v, NULL, 0, false, false, ids, 8) == 0);
    CHECK(vkllm_tokenize(v, "", 0, true, false, ids, 8) == 1 && ids[0] == 1);
    /* spaces only: the prefix and one "▁" each */
    CHECK_IDS(v, " ", false, false, 410, 410);
    CHECK_IDS(v, "   ", false, false, 410, 410, 410, 410);

    /* too small a buffer: the count needed comes back, CAP ids are written */
    for (int i = 0; i < 8; i++)
        ids[i] = -7;
    CHECK(vkllm_tokenize(v, "Once upon a time", 16, true, false, ids, 2) == 5);
    CHECK(ids[0] == 1 && ids[1] == 403 && ids[2] == -7);
    CHECK(vkllm_tokenize(v, "Once upon a time", 16, true, false, NULL, 0) == 5);

    /* bad arguments */
    CHECK(vkllm_tokenize(NULL, "a", 1, false, false, ids, 8) == VKLLM_E_INVALID);
    CHECK(vkllm_tokenize(v, NULL, 1, false, false, ids, 8) == VKLLM_E_INVALID);
    CHECK(vkllm_tokenize(v, "a", 1, false, false, NULL, 8) == VKLLM_E_INVALID);
    CHECK(vkllm_tokenize(v, "a", 1, false, false, ids, -1) == VKLLM_E_INVALID);
}

static void test_pieces(const vkllm_vocab *v)
{
    char buf[64];
    CHECK(vkllm_token_to_piece(v, 403, false, buf, sizeof buf) == 5 &&
          memcmp(buf, " Once", 5) == 0);
    CHECK(vkllm_token_to_piece(v, 410, false, buf, sizeof buf) == 1 && buf[0] == ' '); /* "▁" */
    CHECK(vkllm_token_to_piece(v, 3 + 0x0a, false, buf, sizeof buf) == 1 && buf[0] == '\n');
    CHECK(vkllm_token_to_piece(v, 3 + 0xe7, false, buf, sizeof buf) == 1 && buf[0] == '\xe7');
    /* control tokens: nothing unless special */
    CHECK(vkllm_token_to_piece(v, 1, false, buf, sizeof buf) == 0);
    CHECK(vkllm_token_to_piece(v, 1, true, buf, sizeof buf) == 3 && memcmp(buf, "<s>", 3) == 0);
    CHECK(vkllm_token_to_piece(v, 2, true, buf, sizeof buf) == 4 && memcmp(buf, "</s>", 4) == 0);
    /* the unknown token too: llama.cpp v0.5.0 renders its text, not " ⁇ " */
    CHECK(vkllm_token_to_piece(v, 0, false, buf, sizeof buf) == 0);
    CHECK(vkllm_token_to_piece(v, 0, true, buf, sizeof buf) == 5 && memcmp(buf, "<unk>", 5) == 0);
    /* too small: the length, nothing written */
    memset(buf, 'x', sizeof buf);
    CHECK(vkllm_token_to_piece(v, 403, false, buf, 2) == 5 && buf[0] == 'x');
    CHECK(vkllm_token_to_piece(v, 403, false, NULL, 0) == 5);
    /* ids out of range */
    CHECK(vkllm_token_to_piece(v, -1, true, buf, sizeof buf) < 0);
    CHECK(vkllm_token_to_piece(v, 512, true, buf, sizeof buf) < 0);
    CHECK(vkllm_token_to_piece(v, INT32_MAX, false, buf, sizeof buf) < 0);
    CHECK(vkllm_token_to_piece(NULL, 1, true, buf, sizeof buf) < 0);
}

/* 100 KB of mixed text: completes, counts agree, decodes back. No timing
 * assertion; the time is printed. */
static void test_long_input(const vkllm_vocab *v)
{
    static const char chunk[] = "Once upon a time, \xe7\x8c\xab there was a little  dog.\n\t";
    size_t n = 100 * 1024, clen = sizeof chunk - 1;
    char *text = malloc(n + 1);
    REQUIRE(text);
    for (size_t i = 0; i < n; i++)
        text[i] = chunk[i % clen];
    text[n] = 0;
    clock_t t0 = clock();
    int count;
    int32_t *ids = tokenize(v, text, n, true, true, &count);
    double ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr, "100 KB: %d tokens in %.1f ms (two passes)\n", count, ms);
    CHECK(count > 10000 && ids[0] == 1);
    size_t len;
    char *back = detokenize(v, ids + 1, count - 1, true, &len);
    CHECK(len == n && memcmp(back, text, n) == 0, "100 KB decodes back");
    free(back);
    free(ids);
    free(text);
}

/* ============================== Tiny vocabularies ============================== */

/* A vocabulary file from TOKENS (NULL-terminated), with optional scores and
 * types (NULL: left out), the given tokenizer model, and optional extra keys. */
struct tiny {
    const char *model; /* NULL: no tokenizer.ggml.model */
    const char *const *tokens;
    const float *scores;
    const int32_t *types;
    int n_scores; /* entries written; 0: as many as tokens */
    const char *name;
    int64_t bos;          /* -1: no key */
    int add_space_prefix; /* -1: no key */
    bool tokens_as_ints;  /* write tokenizer.ggml.tokens with the wrong type */
};

static int write_tiny(const char *path, const struct tiny *t)
{
    vkllm_gguf_writer *w = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err), "%s", err.msg);
    uint64_t n = 0;
    while (t->tokens[n])
        n++;
    int rc = vkllm_gguf_writer_set_str(w, "general.architecture", "llama");
    if (t->name) rc |= vkllm_gguf_writer_set_str(w, "general.name", t->name);
    if (t->model) rc |= vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", t->model);
    if (t->tokens_as_ints) {
        int32_t dummy[4] = {0};
        rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", VKLLM_GGUF_INT32, dummy, 4);
    } else {
        rc |= vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t->tokens, NULL, n);
    }
    uint64_t ns = t->n_scores ? (uint64_t)t->n_scores : n;
    if (t->scores)
        rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKLLM_GGUF_FLOAT32, t->scores,
                                        ns);
    if (t->types)
        rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, t->types,
                                        n);
    if (t->bos >= 0)
        rc |= vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->add_space_prefix >= 0)
        rc |= vkllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
    REQUIRE(rc == VKLLM_OK, "writer setters failed");
    REQUIRE_OK(vkllm_gguf_writer_write(w, path, &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    return 0;
}

/* Loads a tiny vocabulary; returns the status, *V the vocab or NULL. */
static int load_tiny(const char *path, const struct tiny *t, vkllm_vocab **v,
                     struct vkllm_error *err)
{
    write_tiny(path, t);
    vkllm_gguf *g = NULL;
    REQUIRE_OK(vkllm_gguf_open(path, &g, err), "%s", err->msg);
    *v = NULL;
    int rc = vkllm_vocab_load(g, v, err);
    vkllm_gguf_close(g);
    return rc;
}

static const char *const base_tokens[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "ba", NULL};
static const int32_t base_types[] = {2, 3, 3, 1, 1, 1, 1};

/* The merge queue: the best score first; on a tie, the leftmost pair. */
static void test_merge_order(void)
{
    struct vkllm_error err = {0};
    vkllm_vocab *v;
    float tie[] = {0, 0, 0, 0, 0, -1, -1};
    struct tiny t = {.model = "llama",
                     .tokens = base_tokens,
                     .scores = tie,
                     .types = base_types,
                     .bos = -1,
                     .add_space_prefix = 0};
    REQUIRE_OK(load_tiny(GEN("tok-tie.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "aba", false, false, 5, 3); /* "ab" "a" */
    CHECK_IDS(v, "bab", false, false, 6, 4); /* "ba" "b" */
    vkllm_vocab_free(v);

    float ba_wins[] = {0, 0, 0, 0, 0, -2, -1};
    t.scores = ba_wins;
    REQUIRE_OK(load_tiny(GEN("tok-ba.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "aba", false, false, 3, 6); /* "a" "ba" */
    /* no byte tokens, so an unknown character becomes <unk> (llama.cpp throws) */
    CHECK_IDS(v, "acb", false, false, 3, 0, 4);
    vkllm_vocab_free(v);
}

/* Defaults when keys are absent, and metadata that must be refused. */
static void test_metadata(void)
{
    struct vkllm_error err = {0};
    vkllm_vocab *v;
    /* no scores, no types, no ids: all tokens normal with score 0, BOS 1, EOS 2 */
    struct tiny t = {.model = "llama", .tokens = base_tokens, .bos = -1, .add_space_prefix = -1};
    REQUIRE_OK(load_tiny(GEN("tok-bare.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK(vkllm_vocab_bos(v) == 1 && vkllm_vocab_eos(v) == 2 && vkllm_vocab_add_bos(v));
    /* "</s>" ends generation by its text, and becomes a control token */
    CHECK(vkllm_vocab_is_eog(v, 2));
    char buf[8];
    CHECK(vkllm_token_to_piece(v, 2, false, buf, sizeof buf) == 0);
    CHECK(vkllm_token_to_piece(v, 1, false, buf, sizeof buf) == 3); /* "<s>" is normal here */
    vkllm_vocab_free(v);

    /* a BOS id out of range is ignored, as llama.cpp does: the default stays */
    t.bos = 1000;
    REQUIRE_OK(load_tiny(GEN("tok-bos.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK(vkllm_vocab_bos(v) == 1);
    vkllm_vocab_free(v);
    t.bos = 5;
    REQUIRE_OK(load_tiny(GEN("tok-bos.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK(vkllm_vocab_bos(v) == 5);
    /* the prefix "▁" has no token and there are no byte tokens: one <unk> a byte */
    CHECK_IDS(v, "a", true, false, 5, 0, 0, 0, 3);
    vkllm_vocab_free(v);
    t.bos = -1;

    /* refused */
    struct {
        const char *what;
        struct tiny t;
        int code;
        const char *msg;
    } bad[] = {
        {"gpt2 without merges",
         {.model = "gpt2", .tokens = base_tokens, .bos = -1, .add_space_prefix = -1},
         VKLLM_E_FORMAT,
         "tokenizer.ggml.merges is missing"},
        {"bert",
         {.model = "bert", .tokens = base_tokens, .bos = -1, .add_space_prefix = -1},
         VKLLM_E_UNSUPPORTED,
         "tokenizer 'bert' is not supported"},
        {"no model",
         {.tokens = base_tokens, .bos = -1, .add_space_prefix = -1},
         VKLLM_E_FORMAT,
         "tokenizer.ggml.model"},
        {"no tokens",
         {.model = "llama",
          .tokens = (const char *const[]){NULL},
          .bos = -1,
          .add_space_prefix = -1},
         VKLLM_E_FORMAT,
         "tokenizer.ggml.tokens"},
        {"tokens not strings",
         {.model = "llama",
          .tokens = base_tokens,
          .bos = -1,
          .add_space_prefix = -1,
          .tokens_as_ints = true},
         VKLLM_E_FORMAT,
         "tokenizer.ggml.tokens"},
        {"short scores",
         {.model = "llama",
          .tokens = base_tokens,
          .scores = (const float[7]){0},
          .n_scores = 3,
          .bos = -1,
          .add_space_prefix = -1},
         VKLLM_E_FORMAT,
         "tokenizer.ggml.scores"},
        {"duplicate",
         {.model = "llama",
          .tokens = (const char *const[]){"a", "b", "a", NULL},
          .bos = -1,
          .add_space_prefix = -1},
         VKLLM_E_FORMAT,
         "tokens 0 and 2 are both 'a'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load_tiny(GEN("tok-bad.gguf"), &bad[i].t, &v, &err);
        CHECK(rc == bad[i].code && !v, "%s: got %d", bad[i].what, rc);
        CHECK(strstr(err.msg, GEN("tok-bad.gguf") ": ") == err.msg && strstr(err.msg, bad[i].msg),
              "%s: '%s'", bad[i].what, err.msg);
        vkllm_vocab_free(v);
    }
}

/* User-defined tokens are cut out even without parse_special; in a vocabulary
 * named Phi-3, special tokens also swallow the whitespace after them. */
static void test_user_defined_and_rstrip(void)
{
    static const char *const tokens[] = {"<unk>",
                                         "<s>",
                                         "</s>",
                                         "<|end|>",
                                         "<x>",
                                         "a",
                                         "\xe2\x96\x81",
                                         "\xe2\x96\x81"
                                         "a",
                                         NULL};
    static const int32_t types[] = {2, 3, 3, 3, 4, 1, 1, 1};
    static const float scores[] = {0, 0, 0, 0, 0, 0, 0, 1};
    struct vkllm_error err = {0};
    vkllm_vocab *v;
    struct tiny t = {.model = "llama",
                     .tokens = tokens,
                     .scores = scores,
                     .types = types,
                     .bos = -1,
                     .add_space_prefix = -1};
    REQUIRE_OK(load_tiny(GEN("tok-ud.gguf"), &t, &v, &err), "%s", err.msg);
    /* "<x>" is user-defined: always a token, and a prefix space follows it */
    CHECK_IDS(v, "a<x>a", false, false, 7, 4, 7);
    /* "<|end|>" is control, and an end-of-generation token by its text */
    CHECK_IDS(v, "<|end|> a", false, true, 3, 6, 7); /* prefix + " a" = "▁" "▁a" */
    CHECK(vkllm_vocab_is_eog(v, 3) && vkllm_vocab_is_eog(v, 2));
    vkllm_vocab_free(v);

    t.name = "Phi3 mini";
    REQUIRE_OK(load_tiny(GEN("tok-phi3.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "<|end|> a", false, true, 3, 7); /* the space went with "<|end|>" */
    CHECK_IDS(v, "<s> a", false, true, 1, 6, 7);  /* ... but not with "<s>" */
    vkllm_vocab_free(v);
}

/* ============================== Main ============================== */

int main(void)
{
    test_llama_spm_vectors();

    vkllm_vocab *stories = load_vocab(DATA("stories260K.gguf"));
    vkllm_vocab *tiny = load_vocab(DATA("llama-2-tiny-random.gguf"));
    vkllm_vocab *spm = load_vocab(DATA("ggml-vocab-llama-spm.gguf"));
    test_oracle_file(stories);
    test_known_ids(stories, tiny);
    test_special_tokens(stories);
    test_byte_fallback(stories, spm);
    test_edges(stories);
    test_pieces(stories);
    test_long_input(spm);
    vkllm_vocab_free(stories);
    vkllm_vocab_free(tiny);
    vkllm_vocab_free(spm);

    test_merge_order();
    test_metadata();
    test_user_defined_and_rstrip();
    return TEST_REPORT();
}
