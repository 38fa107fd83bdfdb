/* test_token_partition.c: the special-token partition (step 1 of tokenizing)
 * against llama.cpp's algorithm, and the vocabulary's load warnings.
 *
 *   reference      llama.cpp's tokenizer_st_partition as vkllm first had it
 *                  (each special token in turn, longest first, cut out of the
 *                  raw text left): the fast partition must cut exactly the same
 *                  on random vocabularies and texts, LSTRIP/RSTRIP included
 *   overlaps       cases where a left-to-right scan would differ
 *   many tokens    20,000 user-defined tokens and a 900 KB text: the reference
 *                  took 45 s on such a file; a chain of tokens a, aa, aaa, ...
 *   warnings       special token ids out of range or negative
 *   splitters      a regex llama.cpp runs as one, run by hand in linear time,
 *                  against the regex
 */
#include "testhelp.h"
#include "vocabhelp.h"
#include "text/vocab_internal.h"
#include "vkllm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GEN(name) VKLLM_TEST_GEN "/" name

/* CPU seconds: a busy machine does not make them grow */
static double now_s(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

static uint32_t rng_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

/* ============================== The reference ============================== */

struct ref_list {
    struct fragment *items;
    size_t n, cap;
};

static void ref_push(struct ref_list *l, int32_t token, size_t off, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        REQUIRE(l->items = realloc(l->items, l->cap * sizeof *l->items));
    }
    l->items[l->n++] = (struct fragment){token, off, len};
}

static bool ref_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The first occurrence of NEEDLE (M > 0 bytes) in HAY (N bytes), or NULL. */
static const char *ref_find(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m > n) return NULL;
    const char *p = hay, *last = hay + (n - m);
    while (p <= last && (p = memchr(p, needle[0], (size_t)(last - p) + 1))) {
        if (memcmp(p, needle, m) == 0) return p;
        p++;
    }
    return NULL;
}

/* Cuts raw fragment F at every occurrence of special ID, left to right. */
static void ref_split(const vkllm_vocab *v, int32_t id, const char *text, struct fragment f,
                      struct ref_list *out)
{
    const struct token *t = &v->tokens[id];
    size_t off = f.off, end = f.off + f.len;
    const char *match;
    while (off < end && (match = ref_find(text + off, end - off, t->text, t->len))) {
        size_t at = (size_t)(match - text), left = at - off;
        if (t->attr & ATTR_LSTRIP)
            while (left > 0 && ref_space(text[off + left - 1]))
                left--;
        if (left > 0) ref_push(out, -1, off, left);
        ref_push(out, id, 0, 0);
        off = at + t->len;
        if (t->attr & ATTR_RSTRIP)
            while (off < end && ref_space(text[off]))
                off++;
    }
    if (off < end) ref_push(out, -1, off, end - off);
}

/* llama.cpp's tokenizer_st_partition: each special in turn (v->specials is in
 * its order), cut out of the raw fragments the ones before it left. */
static struct ref_list ref_partition(const vkllm_vocab *v, const char *text, size_t len,
                                     bool parse_special)
{
    struct ref_list frags = {0}, next = {0};
    if (len) ref_push(&frags, -1, 0, len);
    for (int32_t s = 0; s < v->n_specials; s++) {
        int32_t id = v->specials[s];
        if (!parse_special && (v->tokens[id].attr & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        next.n = 0;
        for (size_t i = 0; i < frags.n; i++) {
            if (frags.items[i].token >= 0)
                ref_push(&next, frags.items[i].token, 0, 0);
            else
                ref_split(v, id, text, frags.items[i], &next);
        }
        struct ref_list tmp = frags;
        frags = next;
        next = tmp;
    }
    free(next.items);
    return frags;
}

static bool same_fragment(const struct fragment *a, const struct fragment *b)
{
    return a->token == b->token && a->off == b->off && a->len == b->len;
}

/* Whether the fast partition of TEXT equals the reference's; prints the first
 * difference if not. */
static bool same_partition(const vkllm_vocab *v, const char *text, size_t len, bool parse_special)
{
    struct ref_list want = ref_partition(v, text, len, parse_special);
    struct fragment *got;
    size_t n;
    REQUIRE_OK(vocab_partition(v, text, len, parse_special, &got, &n));
    size_t i = 0;
    while (i < n && i < want.n && same_fragment(&got[i], &want.items[i]))
        i++;
    bool same = i == n && i == want.n;
    if (!same) {
        fprintf(stderr, "  %zu fragments, expected %zu; first difference at %zu:", n, want.n, i);
        if (i < n) fprintf(stderr, " got (%d %zu %zu)", got[i].token, got[i].off, got[i].len);
        if (i < want.n)
            fprintf(stderr, " expected (%d %zu %zu)", want.items[i].token, want.items[i].off,
                    want.items[i].len);
        fprintf(stderr, "\n");
    }
    free(got);
    free(want.items);
    return same;
}

/* ============================== Vocabularies ============================== */

/* Writes an SPM vocabulary of N tokens with types TYPES (1 normal, 3 control,
 * 4 user-defined) and loads it. BOS_KEY, if not NULL, is written as
 * tokenizer.ggml.bos_token_id with type BOS_TYPE and value BOS. */
static vkllm_vocab *make_vocab(const char *path, const char *const *tokens, const int32_t *types,
                               uint64_t n, const char *bos_key, enum vkllm_gguf_type bos_type,
                               int64_t bos)
{
    vkllm_gguf_writer *w = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err), "%s", err.msg);
    int rc = vkllm_gguf_writer_set_str(w, "general.architecture", "llama");
    rc |= vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    rc |= vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, n);
    rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, types, n);
    if (bos_key && bos_type == VKLLM_GGUF_INT32) {
        rc |= vkllm_gguf_writer_set_int32(w, bos_key, (int32_t)bos);
    } else if (bos_key) {
        rc |= vkllm_gguf_writer_set_uint32(w, bos_key, (uint32_t)bos);
    }
    REQUIRE(rc == VKLLM_OK, "writer setters failed");
    REQUIRE_OK(vkllm_gguf_writer_write(w, path, &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    return load_vocab(path);
}

/* ============================== Tests ============================== */

/* Where the order of the specials, not the position, decides. */
static void test_overlaps(void)
{
    static const char *const tokens[] = {"<unk>", "<s>",     "</s>", "ab", "bcd",
                                         "<|end", "<|end|>", "aa",   "x"};
    static const int32_t types[] = {2, 3, 3, 4, 4, 4, 3, 4, 4};
    vkllm_vocab *v = make_vocab(GEN("partition-overlaps.gguf"), tokens, types, 9, NULL, 0, 0);
    struct fragment *f;
    size_t n;
    /* "bcd" is longer, so it is cut first, although "ab" starts earlier */
    REQUIRE_OK(vocab_partition(v, "abcd", 4, false, &f, &n));
    CHECK(n == 2 && f[0].token == -1 && f[0].off == 0 && f[0].len == 1 && f[1].token == 4,
          "%zu fragments", n);
    free(f);
    /* "<|end|>" is control: without parse_special the shorter "<|end" wins */
    REQUIRE_OK(vocab_partition(v, "<|end|>", 7, false, &f, &n));
    CHECK(n == 2 && f[0].token == 5 && f[1].token == -1 && f[1].off == 5, "%zu fragments", n);
    free(f);
    REQUIRE_OK(vocab_partition(v, "<|end|>", 7, true, &f, &n));
    CHECK(n == 1 && f[0].token == 6, "%zu fragments", n);
    free(f);
    /* one token's occurrences, left to right: "aaa" is "aa" then "a" */
    REQUIRE_OK(vocab_partition(v, "aaa", 3, false, &f, &n));
    CHECK(n == 2 && f[0].token == 7 && f[1].token == -1 && f[1].off == 2, "%zu fragments", n);
    free(f);
    static const char *const texts[] = {"abcd", "abcdab", "aabcdaa", "<|end|>x<|end", "", "q"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int special = 0; special < 2; special++)
            CHECK(same_partition(v, texts[i], strlen(texts[i]), special), "'%s' %d", texts[i],
                  special);
    vkllm_vocab_free(v);
}

/* Random vocabularies of short specials over a small alphabet, random
 * LSTRIP/RSTRIP, random texts: every partition as the reference's. */
static void test_random(void)
{
    static const char alphabet[] = "ab \n";
    int cases = 0, failed = 0;
    for (int round = 0; round < 200; round++) {
        const char *tokens[40];
        char texts[40][8];
        int32_t types[40];
        int n = 3;
        tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
        types[0] = 2, types[1] = 3, types[2] = 3;
        int want = 2 + (int)rnd(30);
        while (n < want) {
            size_t len = 1 + rnd(5);
            for (size_t k = 0; k < len; k++)
                texts[n][k] = alphabet[rnd(4)];
            texts[n][len] = 0;
            bool twin = false;
            for (int k = 3; k < n; k++)
                twin |= !strcmp(tokens[k], texts[n]);
            if (twin) continue;
            tokens[n] = texts[n];
            types[n] = rnd(3) == 0 ? 3 : rnd(4) == 0 ? 1 : 4;
            n++;
        }
        vkllm_vocab *v =
            make_vocab(GEN("partition-random.gguf"), tokens, types, (uint64_t)n, NULL, 0, 0);
        for (int32_t i = 0; i < v->n_tokens; i++)
            v->tokens[i].attr |= (rnd(4) == 0 ? ATTR_LSTRIP : 0) | (rnd(4) == 0 ? ATTR_RSTRIP : 0);
        for (int t = 0; t < 20; t++) {
            char text[300];
            size_t len = rnd(sizeof text);
            for (size_t k = 0; k < len; k++)
                text[k] = "ab \nc"[rnd(5)];
            for (int special = 0; special < 2; special++) {
                cases++;
                if (!same_partition(v, text, len, special)) {
                    failed++;
                    if (failed < 5)
                        fprintf(stderr, "  round %d: '%.*s' parse_special %d\n", round, (int)len,
                                text, special);
                }
            }
        }
        vkllm_vocab_free(v);
    }
    CHECK(failed == 0, "%d of %d random partitions differ from the reference", failed, cases);
}

/* A vocabulary with N_SPECIAL user-defined tokens "<t%d>" and "x%d" (numbers
 * that prefix one another: x1, x12, x123 overlap), and a text of LEN bytes made
 * of them and filler; the reference's partition on a part of it, the whole in
 * a few seconds. */
static void test_many_specials(void)
{
    enum { N_SPECIAL = 20000, N = 3 + N_SPECIAL };
    const char **tokens = malloc(N * sizeof *tokens);
    int32_t *types = malloc(N * sizeof *types);
    char(*texts)[16] = malloc(N * sizeof *texts);
    REQUIRE(tokens && types && texts);
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int i = 3; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], i % 2 ? "<t%d>" : "x%d", i);
        tokens[i] = texts[i];
        types[i] = 4;
    }
    vkllm_vocab *v = make_vocab(GEN("partition-many.gguf"), tokens, types, N, NULL, 0, 0);

    size_t len = 900000, used = 0;
    char *text = malloc(len + 32);
    REQUIRE(text);
    while (used < len) {
        uint32_t r = rnd(4);
        const char *piece = r == 0 ? " some filler text " : r == 1 ? "<t" : tokens[3 + rnd(N - 3)];
        size_t m = strlen(piece);
        memcpy(text + used, piece, m);
        used += m;
    }
    CHECK(same_partition(v, text, 20000, false));
    CHECK(same_partition(v, text, 20000, true));
    double t0 = now_s();
    int n = vkllm_tokenize(v, text, len, true, false, NULL, 0);
    double s = now_s() - t0;
    CHECK(n > 0 && s < 5, "%d tokens in %.1f s", n, s); /* the reference: 12 s */
    fprintf(stderr, "20,000 user-defined tokens, 900 KB: %d tokens in %.2f s\n", n, s);
    vkllm_vocab_free(v);
    free(text);

    /* a chain: a, aa, ..., a^300, each a prefix of the next, and texts of
     * runs of a that leave every position several candidates */
    enum { CHAIN = 300 };
    const char *chain[3 + CHAIN];
    int32_t chain_types[3 + CHAIN];
    char *arena = malloc(CHAIN * (CHAIN + 1) / 2 + CHAIN);
    REQUIRE(arena);
    chain[0] = "<unk>", chain[1] = "<s>", chain[2] = "</s>";
    chain_types[0] = 2, chain_types[1] = 3, chain_types[2] = 3;
    char *p = arena;
    for (int i = 0; i < CHAIN; i++) {
        memset(p, 'a', (size_t)i + 1);
        p[i + 1] = 0;
        chain[3 + i] = p;
        chain_types[3 + i] = i % 3 ? 4 : 3;
        p += i + 2;
    }
    v = make_vocab(GEN("partition-chain.gguf"), chain, chain_types, 3 + CHAIN, NULL, 0, 0);
    v->tokens[3 + 7].attr |= ATTR_RSTRIP;
    v->tokens[3 + 11].attr |= ATTR_LSTRIP;
    len = 1 << 20;
    REQUIRE(text = malloc(len));
    for (size_t i = 0; i < len;) {
        size_t run = 1 + rnd(2 * CHAIN);
        for (size_t k = 0; k < run && i < len; k++)
            text[i++] = 'a';
        if (i < len) text[i++] = " b"[rnd(2)];
    }
    CHECK(same_partition(v, text, 30000, true));
    CHECK(same_partition(v, text, 30000, false));
    memset(text, 'a', len);
    CHECK(same_partition(v, text, 30000, true));
    t0 = now_s();
    for (int special = 0; special < 2; special++) {
        struct fragment *f;
        size_t nf;
        REQUIRE_OK(vocab_partition(v, text, len, special, &f, &nf));
        free(f);
    }
    s = now_s() - t0;
    CHECK(s < 5, "a chain of %d tokens on 1 MB of 'a': %.1f s", CHAIN, s);
    vkllm_vocab_free(v);
    free(text);
    free(arena);
    free(tokens);
    free(types);
    free(texts);
}

/* Special token ids out of range, or negative, are ignored with a warning;
 * the value "none" is no warning when none is what results. */
static void test_warnings(void)
{
    static const char *const tokens[] = {"<unk>", "<s>", "</s>", "a"};
    static const int32_t types[] = {2, 3, 3, 1};
    const char *bos = "tokenizer.ggml.bos_token_id", *pad = "tokenizer.ggml.padding_token_id";
    vkllm_vocab *v = make_vocab(GEN("warn-none.gguf"), tokens, types, 4, NULL, 0, 0);
    CHECK(vkllm_vocab_warning_count(v) == 0 && vkllm_vocab_warning(v, 0) == NULL);
    vkllm_vocab_free(v);

    v = make_vocab(GEN("warn-bos.gguf"), tokens, types, 4, bos, VKLLM_GGUF_UINT32, 100000);
    const char *w = vkllm_vocab_warning(v, 0);
    CHECK(vkllm_vocab_warning_count(v) == 1 && w && strstr(w, "warn-bos.gguf: ") &&
              strstr(w, bos) && strstr(w, "100000") && strstr(w, "using id 1"),
          "%s", w ? w : "(none)");
    CHECK(vkllm_vocab_bos(v) == 1); /* SPM's default */
    vkllm_vocab_free(v);

    v = make_vocab(GEN("warn-neg.gguf"), tokens, types, 4, bos, VKLLM_GGUF_INT32, -5);
    w = vkllm_vocab_warning(v, 0);
    CHECK(vkllm_vocab_warning_count(v) == 1 && w && strstr(w, "= -5"), "%s", w ? w : "(none)");
    CHECK(vkllm_vocab_bos(v) == 1);
    vkllm_vocab_free(v);

    /* 0xFFFFFFFF (stories260K's padding id) means none, and none it is */
    v = make_vocab(GEN("warn-pad.gguf"), tokens, types, 4, pad, VKLLM_GGUF_UINT32, 0xFFFFFFFF);
    CHECK(vkllm_vocab_warning_count(v) == 0, "%s", vkllm_vocab_warning(v, 0));
    vkllm_vocab_free(v);
    /* ... but as BOS it gives way to the default */
    v = make_vocab(GEN("warn-bos-none.gguf"), tokens, types, 4, bos, VKLLM_GGUF_INT32, -1);
    CHECK(vkllm_vocab_warning_count(v) == 1 && vkllm_vocab_bos(v) == 1);
    vkllm_vocab_free(v);
}

/* ============================== Splitters ============================== */

/* SuperBPE's digit-triple regex runs as a splitter (a regex takes the square
 * of a digit run's length: 67 s for 100,000 digits): the same words as the
 * regex, spelled so that the splitter does not recognise it, on random text. */
static void test_digit_triples(void)
{
    const struct pretok_info *fast_info = pretok_find("superbpe", 8);
    REQUIRE(fast_info);
    struct pretok_info slow_info = *fast_info;
    slow_info.regexes[1] = "(?=(?:\\d{3})+(?!\\d))";
    struct pretok *fast, *slow;
    struct vkllm_error err = {0};
    REQUIRE_OK(pretok_create(fast_info, &fast, &err), "%s", err.msg);
    REQUIRE_OK(pretok_create(&slow_info, &slow, &err), "%s", err.msg);
    static const char *const parts[] = {
        "1", "7", "0", "a", " ", "\xd9\xa1" /* U+0661, a digit */, "\xff", "\n", "x9"};
    struct pretok_words a = {0}, b = {0};
    int failed = 0;
    for (int round = 0; round < 300; round++) {
        char text[800];
        size_t len = 0;
        while (len < sizeof text - 8 && rnd(100) != 0) {
            const char *part = parts[rnd(3) ? rnd(3) : rnd(sizeof parts / sizeof parts[0])];
            memcpy(text + len, part, strlen(part));
            len += strlen(part);
        }
        REQUIRE_OK(pretok_split(fast, text, len, &a));
        REQUIRE_OK(pretok_split(slow, text, len, &b));
        bool same = a.n == b.n && a.len == b.len && !memcmp(a.text, b.text, a.len) &&
                    !memcmp(a.ends, b.ends, a.n * sizeof *a.ends);
        if (!same && failed++ < 3)
            fprintf(stderr, "  '%.*s': %zu words, the regex %zu\n", (int)len, text, a.n, b.n);
    }
    CHECK(failed == 0, "%d of 300 texts split differently", failed);

    /* 1 MB of digits, in a second */
    size_t len = 1 << 20;
    char *digits = malloc(len);
    REQUIRE(digits);
    memset(digits, '7', len);
    double t0 = now_s();
    REQUIRE_OK(pretok_split(fast, digits, len, &a));
    double s = now_s() - t0;
    CHECK(a.n == (len + 2) / 3 && s < 5, "%zu words in %.1f s", a.n, s);
    free(digits);
    pretok_words_free(&a);
    pretok_words_free(&b);
    pretok_destroy(fast);
    pretok_destroy(slow);
}

/* A run of letters with no break needs regex work in proportion to its length
 * (a backtracking point a letter in GPT-4o's cased-word pattern): past the
 * match bounds the split fails as too long, not as "not supported" */
static void test_long_run(void)
{
    const struct pretok_info *info = pretok_find("gpt-4o", 6);
    REQUIRE(info);
    struct pretok *p;
    struct vkllm_error err = {0};
    REQUIRE_OK(pretok_create(info, &p, &err), "%s", err.msg);
    const char han[] = "\xe4\xb8\xad"; /* U+4E2D */
    const size_t n = 2000000, len = n * 3;
    char *text = malloc(len);
    REQUIRE(text);
    for (size_t i = 0; i < n; i++)
        memcpy(text + 3 * i, han, 3);
    struct pretok_words w = {0};
    int rc = pretok_split(p, text, 3000, &w);
    CHECK(rc == VKLLM_OK && w.n == 1, "1000 characters: status %d, %zu words", rc, w.n);
    rc = pretok_split(p, text, len, &w);
    CHECK(rc == VKLLM_E_TOO_LONG, "2,000,000 characters: status %d (%s)", rc, vkllm_strerror(rc));
    free(text);
    pretok_words_free(&w);
    pretok_destroy(p);
}

int main(void)
{
    test_overlaps();
    test_random();
    test_many_specials();
    test_warnings();
    test_digit_triples();
    test_long_run();
    return TEST_REPORT();
}
