/* test_vocabs.c: every vocabulary of llama.cpp's tokenizer tests, against llama.cpp.
 *
 *   test vectors     data/vocab/X.gguf.inp/.out (llama.cpp's test-tokenizer-0, every
 *                    case) for the ten vocabularies of ../shared/vocab, SPM and BPE;
 *                    the ids decode back to the text
 *   pieces           every token's token_to_piece, with and without special, hashed
 *                    and compared with llama.cpp's
 *   random texts     data/vocab/random/texts.hex (scripts/tokenizer_random_texts.py,
 *                    invalid UTF-8 included) and X.ids, llama.cpp's ids for them
 *                    (data/vocab/README.md gives the commands)
 *   pre-tokenizers   GPT-2's vocabulary under each of llama.cpp's pre-tokenizers,
 *                    against llama.cpp's ids for the first random texts
 *                    (data/vocab/random/pre/NAME.ids)
 *   BPE rules        tiny vocabularies written here: merge ranks, ignore_merges,
 *                    byte fallback, pre-tokenizer fallback, decoding
 *   hostile input    malformed vocabularies and texts never crash or hang
 *
 * The GGUF files are unpacked from data/vocab/vocab.tar.xz into the build
 * directory by tests/CMakeLists.txt (VKLLM_TEST_VOCABS).
 *
 *   test_vocabs --tokenize MODEL TEXTS.hex [--special]
 * prints the ids of each text of TEXTS.hex, one line each, as
 * scripts/llama_tokenize.c does for llama.cpp, and
 *   test_vocabs --with-pre SRC.gguf DST.gguf PRE
 * writes SRC's vocabulary with tokenizer.ggml.pre = PRE
 * (both for scripts/compare_tokenizers.py).
 */
#include "testhelp.h"
#include "vocabhelp.h"
#include "vkllm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DATA(name)  VKLLM_TEST_DATA "/" name
#define GEN(name)   VKLLM_TEST_GEN "/" name
#define VOCAB(name) VKLLM_TEST_VOCABS "/" name

/* ============================== Helpers ============================== */

/* Space-separated ids in [S, END) into a malloc'ed array; *N the count. */
static int32_t *parse_ids(const char *s, const char *end, int *n)
{
    size_t cap = 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    REQUIRE(ids);
    *n = 0;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\r'))
            s++;
        if (s >= end) break;
        char *after;
        long id = strtol(s, &after, 10);
        REQUIRE(after > s, "bad id list near '%.20s'", s);
        if ((size_t)*n == cap) REQUIRE(ids = realloc(ids, (cap *= 2) * sizeof *ids));
        ids[(*n)++] = (int32_t)id;
        s = after;
    }
    return ids;
}

/* Whether TEXT tokenizes to EXPECT; prints both if not. */
static bool check_ids(const vkllm_vocab *v, const char *what, const char *text, size_t len,
                      bool parse_special, const int32_t *expect, int n_expect)
{
    int n;
    int32_t *ids = tokenize(v, text, len, false, parse_special, &n);
    bool ok = n == n_expect && (n == 0 || memcmp(ids, expect, (size_t)n * sizeof *ids) == 0);
    CHECK(ok, "%s: '%.*s'", what, (int)(len > 200 ? 200 : len), text);
    if (!ok) {
        print_ids("expected", expect, n_expect);
        print_ids("got     ", ids, n);
    }
    free(ids);
    return ok;
}

#define CHECK_IDS(v, text, ...)                                                                    \
    do {                                                                                           \
        const int32_t expect_[] = {__VA_ARGS__};                                                   \
        check_ids(v, #v, text, strlen(text), false, expect_,                                       \
                  (int)(sizeof expect_ / sizeof expect_[0]));                                      \
    } while (0)

static int hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the hex line at *P (up to END) into a malloc'ed buffer; advances *P. */
static char *next_hex_text(const char **p, const char *end, size_t *len)
{
    const char *eol = memchr(*p, '\n', (size_t)(end - *p));
    if (!eol) eol = end;
    char *text = malloc((size_t)(eol - *p) / 2 + 1);
    REQUIRE(text);
    size_t n = 0;
    for (const char *q = *p; q + 1 < eol && hex(q[0]) >= 0 && hex(q[1]) >= 0; q += 2)
        text[n++] = (char)(hex(q[0]) * 16 + hex(q[1]));
    *p = eol < end ? eol + 1 : end;
    *len = n;
    return text;
}

/* ============================== The vocabularies ============================== */

/* PIECES: a hash of every token's piece as llama.cpp's llama_token_to_piece
 * gives it (lstrip 0), without and with special = true: FNV-1a 64 over each
 * piece's length (4 bytes, little-endian) and bytes, token by token. */
static const struct {
    const char *name;
    bool spm;
    uint64_t pieces[2];
} vocabs[] = {
    {"llama-spm", true, {0x6aa6475c8ed96d65, 0x5df5288d1dfe2840}},
    {"phi-3", true, {0x2213c29d438c0165, 0x0bdc310c6407da38}},
    {"llama-bpe", false, {0x61e7d2da295aadd8, 0x8440642867b7f89c}},
    {"qwen2", false, {0xf65f73b395eb1fef, 0x4068b60c099c7552}},
    {"gpt-2", false, {0x10ded9ed6f99aac2, 0xe30c544507866300}},
    {"falcon", false, {0x2d1ba279314b1edd, 0x6b87ae7bd485977f}},
    {"starcoder", false, {0xc1bd4c7e7b0027ae, 0x2387c1ba4b563358}},
    {"deepseek-llm", false, {0x291ebe59989c37f7, 0xfe6a020478be260d}},
    {"mpt", false, {0x557e079bb80999e8, 0x45e3e6064546a3f0}},
    {"command-r", false, {0x5539645a8ac57c41, 0xdab381f0aab2ee0a}},
};

/* Every token's piece against llama.cpp's (the hash above). */
static void check_pieces(const vkllm_vocab *v, const char *name, const uint64_t expect[2])
{
    char *buf = malloc(1 << 16);
    REQUIRE(buf);
    for (int special = 0; special < 2; special++) {
        uint64_t h = 1469598103934665603ull;
        for (int32_t id = 0; id < vkllm_vocab_n_tokens(v); id++) {
            int n = vkllm_token_to_piece(v, id, special, buf, 1 << 16);
            REQUIRE(n >= 0 && n <= 1 << 16, "%s: token %d: %d", name, (int)id, n);
            uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16),
                              (uint8_t)(n >> 24)};
            for (int k = 0; k < 4; k++)
                h = (h ^ len[k]) * 1099511628211ull;
            for (int k = 0; k < n; k++)
                h = (h ^ (uint8_t)buf[k]) * 1099511628211ull;
        }
        CHECK(h == expect[special], "%s: pieces (special %d) hash to %016llx", name, special,
              (unsigned long long)h);
    }
    free(buf);
}

/* ggml-vocab-llama-spm.gguf sits in data/ (other tests use it); the rest come
 * from the archive. */
static void vocab_paths(const char *name, char *gguf, char *inp, char *out, size_t size)
{
    if (strcmp(name, "llama-spm") == 0)
        snprintf(gguf, size, "%s/ggml-vocab-%s.gguf", VKLLM_TEST_DATA, name);
    else
        snprintf(gguf, size, "%s/ggml-vocab-%s.gguf", VKLLM_TEST_VOCABS, name);
    snprintf(inp, size, "%s/vocab/ggml-vocab-%s.gguf.inp", VKLLM_TEST_DATA, name);
    snprintf(out, size, "%s/vocab/ggml-vocab-%s.gguf.out", VKLLM_TEST_DATA, name);
}

/* llama.cpp's test-tokenizer-0: cases separated by "\n__ggml_vocab_test__\n",
 * line i of the .out the ids of case i (add_special and parse_special off).
 * The ids also decode back to the text. */
static void run_vectors(const vkllm_vocab *v, const char *name, bool spm)
{
    char gguf[512], inp_path[512], out_path[512];
    vocab_paths(name, gguf, inp_path, out_path, sizeof gguf);
    size_t inp_len, out_len;
    char *inp = read_file(inp_path, &inp_len), *out = read_file(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *inp_end = inp + inp_len, *line = out, *out_end = out + out_len;
    int n_cases = 0, n_ok = 0, n_decoded = 0;
    while (p < inp_end) {
        const char *next = strstr(p, sep);
        size_t len = next ? (size_t)(next - p) : (size_t)(inp_end - p);
        REQUIRE(line < out_end, "%s: fewer lines than cases", out_path);
        const char *eol = memchr(line, '\n', (size_t)(out_end - line));
        if (!eol) eol = out_end;
        int n_expect;
        int32_t *expect = parse_ids(line, eol, &n_expect);
        n_ok += check_ids(v, name, p, len, false, expect, n_expect);
        size_t back_len;
        char *back = detokenize(v, expect, n_expect, spm, &back_len);
        bool same = back_len == len && memcmp(back, p, len) == 0;
        CHECK(same, "%s: '%.*s' decodes to '%s'", name, (int)len, p, back);
        n_decoded += same;
        free(back);
        free(expect);
        n_cases++;
        line = eol + 1;
        p = next ? next + strlen(sep) : inp_end;
    }
    CHECK(line >= out_end, "%s: more lines than cases", out_path);
    CHECK(n_cases == 46, "%s: %d cases", name, n_cases);
    fprintf(stderr, "%-13s vectors: %d/%d encode, %d/%d decode\n", name, n_ok, n_cases, n_decoded,
            n_cases);
    free(inp);
    free(out);
}

/* llama.cpp's ids for the random texts (data/vocab/random/NAME.ids). */
static void run_random(const vkllm_vocab *v, const char *name, const char *texts, size_t texts_len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vocab/random/%s.ids", VKLLM_TEST_DATA, name);
    size_t ids_len;
    char *ids = read_file(path, &ids_len);
    const char *t = texts, *t_end = texts + texts_len, *line = ids, *ids_end = ids + ids_len;
    int n = 0, ok = 0, failed_shown = 0;
    while (t < t_end && line < ids_end) {
        size_t len;
        char *text = next_hex_text(&t, t_end, &len);
        const char *eol = memchr(line, '\n', (size_t)(ids_end - line));
        if (!eol) eol = ids_end;
        int n_expect;
        int32_t *expect = parse_ids(line, eol, &n_expect);
        int n_got;
        int32_t *got = tokenize(v, text, len, false, false, &n_got);
        bool same = n_got == n_expect && memcmp(got, expect, (size_t)n_got * sizeof *got) == 0;
        CHECK(same || failed_shown >= 5, "%s: random text %d differs", name, n);
        if (!same && failed_shown++ < 5) {
            print_ids("expected", expect, n_expect);
            print_ids("got     ", got, n_got);
        }
        ok += same;
        free(got);
        free(expect);
        free(text);
        line = eol + 1;
        n++;
    }
    CHECK(ok == n && n >= 200, "%s: %d of %d random texts match", name, ok, n);
    fprintf(stderr, "%-13s random:  %d/%d match llama.cpp\n", name, ok, n);
    free(ids);
}

static void test_pre_variants(const char *texts, size_t texts_len);

static void test_vocabularies(void)
{
    size_t texts_len;
    char *texts = read_file(DATA("vocab/random/texts.hex"), &texts_len);
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        char gguf[512], inp[512], out[512];
        vocab_paths(vocabs[i].name, gguf, inp, out, sizeof gguf);
        clock_t t0 = clock();
        vkllm_vocab *v = load_vocab(gguf);
        double ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC;
        fprintf(stderr, "%-13s loaded in %.0f ms\n", vocabs[i].name, ms);
        run_vectors(v, vocabs[i].name, vocabs[i].spm);
        run_random(v, vocabs[i].name, texts, texts_len);
        check_pieces(v, vocabs[i].name, vocabs[i].pieces);
        vkllm_vocab_free(v);
    }
    test_pre_variants(texts, texts_len);
    free(texts);
}

/* ============================== Rules on real vocabularies ============================== */

static void test_known(void)
{
    vkllm_vocab *l3 = load_vocab(VOCAB("ggml-vocab-llama-bpe.gguf"));
    /* Llama 3: BOS 128000 added, no EOS; "<|begin_of_text|>" is control */
    CHECK(vkllm_vocab_bos(l3) == 128000 && vkllm_vocab_add_bos(l3));
    int32_t ids[8];
    CHECK(vkllm_tokenize(l3, "Hello", 5, true, false, ids, 8) == 2 && ids[0] == 128000 &&
          ids[1] == 9906);
    /* parse_special: the control token's text is the token ... */
    const char *s = "<|begin_of_text|>Hi";
    CHECK(vkllm_tokenize(l3, s, strlen(s), false, true, ids, 8) == 2 && ids[0] == 128000);
    /* ... otherwise text */
    CHECK(vkllm_tokenize(l3, s, strlen(s), false, false, ids, 8) > 2);
    CHECK(vkllm_vocab_is_eog(l3, 128009) && vkllm_vocab_is_eog(l3, 128001)); /* eot, eos */
    /* pieces: byte-level decoding, control tokens only when asked */
    char buf[64];
    CHECK(vkllm_token_to_piece(l3, 9906, false, buf, sizeof buf) == 5 && !memcmp(buf, "Hello", 5));
    CHECK(vkllm_token_to_piece(l3, 220, false, buf, sizeof buf) == 1 && buf[0] == ' ');
    CHECK(vkllm_token_to_piece(l3, 128000, false, buf, sizeof buf) == 0);
    CHECK(vkllm_token_to_piece(l3, 128000, true, buf, sizeof buf) == 17);
    /* ignore_merges: a word that is a token is taken whole */
    CHECK_IDS(l3, " Hello", 22691);
    vkllm_vocab_free(l3);

    vkllm_vocab *q = load_vocab(VOCAB("ggml-vocab-qwen2.gguf"));
    /* Qwen 2: digits one by one, no BOS added by default */
    CHECK_IDS(q, "12345", 16, 17, 18, 19, 20);
    CHECK(!vkllm_vocab_add_bos(q));
    /* "<|im_start|>" is split out of the text even without parse_special? No:
     * it is control, so only with parse_special */
    s = "<|im_start|>user";
    CHECK(vkllm_tokenize(q, s, strlen(s), false, true, ids, 8) == 2);
    vkllm_vocab_free(q);
}

/* ============================== Tiny BPE vocabularies ============================== */

struct tiny_bpe {
    const char *model;
    const char *pre; /* NULL: no key */
    const char *const *tokens;
    const int32_t *types; /* NULL: no key */
    const char *const *merges;
    bool no_merges;
    int64_t bos; /* -1: no key */
};

static int load_tiny_bpe(const char *path, const struct tiny_bpe *t, vkllm_vocab **v,
                         struct vkllm_error *err)
{
    vkllm_gguf_writer *w = NULL;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, err), "%s", err->msg);
    uint64_t n = 0, m = 0;
    while (t->tokens[n])
        n++;
    while (!t->no_merges && t->merges[m])
        m++;
    int rc = vkllm_gguf_writer_set_str(w, "general.architecture", "llama");
    rc |= vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", t->model ? t->model : "gpt2");
    if (t->pre) rc |= vkllm_gguf_writer_set_str(w, "tokenizer.ggml.pre", t->pre);
    rc |= vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t->tokens, NULL, n);
    if (t->types)
        rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, t->types,
                                        n);
    if (!t->no_merges)
        rc |= vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", t->merges, NULL, m);
    if (t->bos >= 0)
        rc |= vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    REQUIRE(rc == VKLLM_OK, "writer setters failed");
    REQUIRE_OK(vkllm_gguf_writer_write(w, path, err), "%s", err->msg);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf *g = NULL;
    REQUIRE_OK(vkllm_gguf_open(path, &g, err), "%s", err->msg);
    *v = NULL;
    rc = vkllm_vocab_load(g, v, err);
    vkllm_gguf_close(g);
    return rc;
}

/* "Ġ" is GPT-2's character for the space byte, "Ċ" for '\n'. */
static const char *const tiny_tokens[] = {"a", "b",  "c", "ab",      "bc", "abc",
                                          "Ġ", "Ġa", "Ċ", "<|end|>", "x",  NULL};
static const int32_t tiny_types[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1};

static void test_tiny_bpe(void)
{
    struct vkllm_error err = {0};
    vkllm_vocab *v;
    /* merge ranks: "b c" before "a b", so "abc" is "a" "bc" and no "abc" */
    static const char *const bc_first[] = {"b c", "a b", "ab c", "Ġ a", NULL};
    struct tiny_bpe t = {
        .pre = "gpt-2", .tokens = tiny_tokens, .types = tiny_types, .merges = bc_first, .bos = -1};
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-rank.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 0, 4);
    CHECK_IDS(v, " a", 7);
    /* no token for 'd' and no byte token either: llama.cpp drops it */
    CHECK_IDS(v, "adb", 0, 1);
    /* the default BOS is id 11, out of range here: none */
    CHECK(vkllm_vocab_bos(v) == -1 && !vkllm_vocab_add_bos(v));
    char buf[16];
    CHECK(vkllm_token_to_piece(v, 7, false, buf, sizeof buf) == 2 && !memcmp(buf, " a", 2));
    CHECK(vkllm_token_to_piece(v, 8, false, buf, sizeof buf) == 1 && buf[0] == '\n');
    vkllm_vocab_free(v);

    /* "a b" first: "ab" "c"; a later repeat of a merge keeps its first rank */
    static const char *const ab_first[] = {"a b", "b c", "ab c", "b c", NULL};
    t.merges = ab_first;
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-rank2.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 5);
    vkllm_vocab_free(v);

    /* ignore_merges (llama3): "abc" is a token, taken whole without merges */
    static const char *const none[] = {NULL};
    t.merges = none;
    t.pre = "llama3";
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-ignore.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 5);
    CHECK(vkllm_vocab_add_bos(v) == false); /* llama3 asks for BOS, but there is none */
    vkllm_vocab_free(v);
    t.pre = "gpt-2";
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-noignore.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 0, 1, 2);
    vkllm_vocab_free(v);

    /* an unknown pre-tokenizer falls back to the default (with a note on stderr) */
    t.pre = "no-such-pre";
    t.merges = ab_first;
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-unknown.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 5);
    vkllm_vocab_free(v);
    t.pre = NULL;
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-nopre.gguf"), &t, &v, &err), "%s", err.msg);
    vkllm_vocab_free(v);

    /* user-defined tokens are cut out even without parse_special; control
     * ones only with it */
    t.pre = "gpt-2";
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-special.gguf"), &t, &v, &err), "%s", err.msg);
    int32_t ids[16];
    CHECK(vkllm_tokenize(v, "a<|end|>", 8, false, true, ids, 16) == 2 && ids[1] == 9);
    CHECK(vkllm_tokenize(v, "a<|end|>", 8, false, false, ids, 16) != 2);
    CHECK(vkllm_vocab_is_eog(v, 9));
    vkllm_vocab_free(v);
}

/* ============================== Hostile input ============================== */

static void test_hostile_vocabs(void)
{
    struct vkllm_error err = {0};
    vkllm_vocab *v;
    /* no merges at all: refused with a message */
    struct tiny_bpe t = {.pre = "gpt-2", .tokens = tiny_tokens, .no_merges = true, .bos = -1};
    CHECK(load_tiny_bpe(GEN("bpe-nomerges.gguf"), &t, &v, &err) == VKLLM_E_FORMAT && !v &&
              strstr(err.msg, "merges"),
          "%s", err.msg);
    /* ... except for Kimi-K2, which has none */
    t.pre = "kimi-k2";
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-kimi.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "abc", 0, 1, 2);
    vkllm_vocab_free(v);

    /* merges that name no token, have no space, are empty or huge: loaded,
     * and never merge into something that is not a token */
    static char huge[70000];
    memset(huge, 'a', sizeof huge - 1);
    huge[1000] = ' ';
    static const char *const bad[] = {"",     " ",   "ab", "a  b",      "q r",
                                      " a b", "a b", huge, "\xff \xfe", NULL};
    t = (struct tiny_bpe){.pre = "llama-bpe", .tokens = tiny_tokens, .merges = bad, .bos = 99};
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-badmerges.gguf"), &t, &v, &err), "%s", err.msg);
    CHECK_IDS(v, "ab", 3);
    CHECK(vkllm_vocab_bos(v) == -1); /* 99 is out of range, and so is the default 11 */
    vkllm_vocab_free(v);

    /* unsupported tokenizer models: one clear line */
    static const char *const models[] = {"bert", "t5", "rwkv", "plamo2", "whatever"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        t = (struct tiny_bpe){.model = models[i], .tokens = tiny_tokens, .merges = bad, .bos = -1};
        CHECK(load_tiny_bpe(GEN("bpe-model.gguf"), &t, &v, &err) == VKLLM_E_UNSUPPORTED && !v &&
                  strstr(err.msg, models[i]) && strstr(err.msg, "not supported") &&
                  !strchr(err.msg, '\n'),
              "%s", err.msg);
    }

    /* a normal token that is not byte-level text decodes as llama.cpp does */
    static const char *const odd[] = {"a", "\xe4\xb8\x80", "\xff", NULL};
    t = (struct tiny_bpe){.pre = "gpt-2", .tokens = odd, .merges = bad, .bos = -1};
    REQUIRE_OK(load_tiny_bpe(GEN("bpe-odd.gguf"), &t, &v, &err), "%s", err.msg);
    char buf[64];
    int n = vkllm_token_to_piece(v, 1, false, buf, sizeof buf);
    CHECK(n == 22 && !memcmp(buf, "[UNK_BYTE_0xe4b880\xe4\xb8\x80]", 22), "%d %.*s", n, n, buf);
    n = vkllm_token_to_piece(v, 2, false, buf, sizeof buf); /* 0xFF reads as U+FFFD */
    CHECK(n == 20 && !memcmp(buf, "[UNK_BYTE_0xefbfbd\xff]", 20), "%d %.*s", n, n, buf);
    vkllm_vocab_free(v);
}

/* Invalid UTF-8 and texts that make regexes work hard: every pre-tokenizer
 * family, no crash, no hang, ids counted the same twice. */
static void test_hostile_texts(void)
{
    static const char *const pres[] = {
        "default",     "llama3",     "qwen2",        "qwen35",
        "gpt-2",       "falcon",     "deepseek-llm", "deepseek-coder",
        "deepseek-v3", "spark2_5",   "youtu",        "starcoder",
        "poro-chat",   "viking",     "tekken",       "chameleon",
        "gpt-4o",      "tiny_aya",   "kimi-k2",      "superbpe",
        "bailingmoe",  "seed-coder", "afmoe",        "laguna",
        "exaone-moe",  "minicpm5",   "jais-2",       "granite-embed-multi-97m",
        "gemma4",      "whitespace", "dbrx",         "chatglm-bpe",
        "ufakzeka",
    };
    static const char *const merges[] = {"a b", "Ġ a", NULL};
    size_t n = 200000;
    char *text = malloc(n);
    REQUIRE(text);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        text[i] = (char)(x >> 16);
    }
    /* long runs: spaces, letters with marks, digits */
    memset(text + 1000, ' ', 20000);
    for (size_t i = 30000; i < 60000; i += 3)
        memcpy(text + i, "e\xcc\x81", 3);
    memset(text + 70000, '7', 20000);
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
        struct vkllm_error err = {0};
        vkllm_vocab *v;
        struct tiny_bpe t = {.pre = pres[i], .tokens = tiny_tokens, .merges = merges, .bos = -1};
        REQUIRE_OK(load_tiny_bpe(GEN("bpe-hostile.gguf"), &t, &v, &err), "%s: %s", pres[i],
                   err.msg);
        clock_t t0 = clock();
        int a = vkllm_tokenize(v, text, n, true, true, NULL, 0);
        int b = vkllm_tokenize(v, text, 5000, false, false, NULL, 0);
        double ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(a >= 0 && b >= 0, "%s: %d %d", pres[i], a, b);
        if (ms > 2000) fprintf(stderr, "%s: 200 KB of noise took %.0f ms\n", pres[i], ms);
        vkllm_vocab_free(v);
    }
    free(text);
}

/* ============================== Every pre-tokenizer ============================== */

/* Writes SRC's vocabulary to DST with tokenizer.ggml.pre = PRE (and no
 * general.name, whose per-model rules would get in the way). */
static void write_with_pre(const char *src, const char *dst, const char *pre)
{
    vkllm_gguf *g = NULL;
    vkllm_gguf_writer *w = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(vkllm_gguf_open(src, &g, &err), "%s", err.msg);
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err), "%s", err.msg);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++) {
        const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(g, i);
        if ((kv->key.len == 18 && !memcmp(kv->key.ptr, "tokenizer.ggml.pre", 18)) ||
            (kv->key.len == 12 && !memcmp(kv->key.ptr, "general.name", 12)))
            continue;
        REQUIRE_OK(vkllm_gguf_writer_copy_kv(w, kv), "copy");
    }
    REQUIRE_OK(vkllm_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), "set");
    REQUIRE_OK(vkllm_gguf_writer_write(w, dst, &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(g);
}

/* One name for each row of pretok.c's table whose splitting llama.cpp can run
 * on a byte-level vocabulary (gemma4, sarvam-moe and whitespace expect
 * U+2581-escaped text: llama.cpp asserts on spaces in merges with GPT-2's
 * vocabulary, so they are only run for crashes, in test_hostile_texts). */
static const char *const pre_variants[] = {
    "default",      "llama3",
    "minicpm5",     "jais-2",
    "dbrx",         "glm4",
    "deepseek-llm", "deepseek-coder",
    "deepseek-v3",  "spark2_5",
    "youtu",        "falcon",
    "starcoder",    "command-r",
    "gpt-2",        "trillion",
    "qwen2",        "stablelm2",
    "qwen35",       "poro-chat",
    "bloom",        "viking",
    "tekken",       "chameleon",
    "gpt-4o",       "granite-embed-multi-97m",
    "tiny_aya",     "kimi-k2",
    "superbpe",     "bailingmoe",
    "seed-coder",   "ufakzeka",
    "afmoe",        "laguna",
    "exaone-moe",
};

/* GPT-2's vocabulary under every pre-tokenizer, against llama.cpp's ids for
 * the first random texts (data/vocab/random/pre/NAME.ids). */
static void test_pre_variants(const char *texts, size_t texts_len)
{
    for (size_t i = 0; i < sizeof pre_variants / sizeof pre_variants[0]; i++) {
        write_with_pre(VOCAB("ggml-vocab-gpt-2.gguf"), GEN("pre-variant.gguf"), pre_variants[i]);
        vkllm_vocab *v = load_vocab(GEN("pre-variant.gguf"));
        char name[128];
        snprintf(name, sizeof name, "pre/%s", pre_variants[i]);
        run_random(v, name, texts, texts_len);
        vkllm_vocab_free(v);
    }
}

/* ============================== Batch mode ============================== */

static int batch(const char *model, const char *texts_path, bool special)
{
    vkllm_vocab *v = load_vocab(model);
    size_t len;
    char *texts = read_file(texts_path, &len);
    for (const char *t = texts, *end = texts + len; t < end;) {
        size_t n;
        char *text = next_hex_text(&t, end, &n);
        int count;
        int32_t *ids = tokenize(v, text, n, false, special, &count);
        for (int i = 0; i < count; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
        free(ids);
        free(text);
    }
    free(texts);
    vkllm_vocab_free(v);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--with-pre") == 0) {
        write_with_pre(argv[2], argv[3], argv[4]);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "--tokenize") == 0)
        return batch(argv[2], argv[3], argc > 4 && strcmp(argv[4], "--special") == 0);
    test_vocabularies();
    test_known();
    test_tiny_bpe();
    test_hostile_vocabs();
    test_hostile_texts();
    return TEST_REPORT();
}
