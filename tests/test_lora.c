/* test_lora.c: LoRA adapters applied at run time, against llama.cpp.
 *
 *   test_lora GOLDEN.txt   a case of tests/golden/lora (made by make.mjs there):
 *                          a base model and adapters (gen_model and gen_lora
 *                          arguments, made here), llama.cpp's logits for a
 *                          20-token prompt and its greedy continuations
 *   test_lora              switching adapters in one session, the CPU
 *                          reference, and the refusals of broken adapters
 *
 * Logits: vkllm's batched prompt (20 tokens: the GEMM path), the same prompt
 * one token at a time (the matvec path) and the CPU reference (reference.c,
 * which executes the same graph) must each be within the file's bound of
 * llama.cpp's, every position and every token. The bound: float weights 0.03,
 * three times what the base model alone differs (1.0e-2 on llama-f16 with its
 * adapter at scale 0, logits of about 10): llama.cpp rounds activations to
 * half before F16 weights and in the KV cache, and a last-bit difference in
 * summation order or its vectorized expf flips such a rounding. Quantized
 * weights 0.3: one Q8_0 activation quantum flipped the same way moves these
 * logits by up to that (tests/golden/make_golden.mjs). Measured: at most
 * 2.2e-2 and 0.17. Greedy tokens must be identical, except after a step where
 * llama.cpp's own top two are closer than tie_margin. */
#include "reference.h"
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TOKENS   256
#define MAX_ADAPTERS 4
#define MIN_COMPARED 8

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void run(const char *cmd)
{
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
}

static void gen_model(const char *path, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, path, args);
    run(cmd);
}

static void gen_lora(const char *path, const char *base, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -o '%s' %s", VKLLM_GEN_LORA, base, path, args);
    run(cmd);
}

static int32_t argmax(const float *l, uint32_t n)
{
    int32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = (int32_t)i;
    return best;
}

static double max_diff(const float *a, const float *b, uint32_t n)
{
    double m = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* a NaN sticks */
    }
    return m;
}

/* ============================== Golden files ============================== */

struct prompt {
    int32_t tokens[MAX_TOKENS], expect[MAX_TOKENS];
    double margins[MAX_TOKENS];
    int n_tokens, n_expect;
};

struct golden {
    char model[1024];
    char adapter[MAX_ADAPTERS][512];
    float scale[MAX_ADAPTERS];
    int n_adapters;
    double tie_margin;
    struct prompt prompts[4];
    int n_prompts;
    float *logits; /* (rows, vocab) */
    uint32_t rows, vocab;
};

static int b64(int c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

/* Decodes base64 S into OUT (at most CAP bytes); the bytes written. */
static size_t base64_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '\n' && *s != '='; s++) {
        const int v = b64((unsigned char)*s);
        if (v < 0) break;
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            if (n < cap) out[n] = (uint8_t)(acc >> bits);
            n++;
        }
    }
    return n;
}

static void golden_read(const char *path, struct golden *g)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "r");
    REQUIRE(f, "cannot open %s", path);
    static char line[1 << 20];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *v = strchr(line, '\t');
        if (line[0] == '#' || !v) continue;
        *v++ = '\0';
        struct prompt *p = &g->prompts[g->n_prompts ? g->n_prompts - 1 : 0];
        if (!strcmp(line, "model")) {
            snprintf(g->model, sizeof g->model, "%s", v);
        } else if (!strcmp(line, "adapter")) {
            REQUIRE(g->n_adapters < MAX_ADAPTERS);
            char *args = strchr(v, '\t');
            REQUIRE(args, "adapter line without arguments");
            *args++ = '\0';
            g->scale[g->n_adapters] = strtof(v, NULL);
            snprintf(g->adapter[g->n_adapters++], sizeof g->adapter[0], "%s", args);
        } else if (!strcmp(line, "tie_margin")) {
            g->tie_margin = strtod(v, NULL);
        } else if (!strcmp(line, "prompt_tokens")) {
            REQUIRE(g->n_prompts < 4);
            p = &g->prompts[g->n_prompts++];
            p->n_tokens = test_parse_ids(v, p->tokens, MAX_TOKENS);
        } else if (!strcmp(line, "tokens")) {
            p->n_expect = test_parse_ids(v, p->expect, MAX_TOKENS);
        } else if (!strcmp(line, "margins")) {
            char *end;
            for (int i = 0; i < p->n_expect; i++, v = end)
                p->margins[i] = strtod(v, &end);
        } else if (!strcmp(line, "logits")) {
            char *end;
            g->rows = (uint32_t)strtoul(v, &end, 10);
            g->vocab = (uint32_t)strtoul(end, &end, 10);
            const size_t bytes = (size_t)g->rows * g->vocab * 4;
            g->logits = malloc(bytes ? bytes : 1);
            REQUIRE(g->logits && base64_decode(end + 1, (uint8_t *)g->logits, bytes) == bytes,
                    "%s: bad logits line", path);
        }
    }
    fclose(f);
    REQUIRE(g->model[0] && g->n_adapters && g->n_prompts && g->logits, "%s: incomplete", path);
}

/* The greedy continuation of P must be llama.cpp's up to its first near tie. */
static void check_greedy(vkllm_session *s, const struct golden *g, const struct prompt *p,
                         uint32_t n_vocab)
{
    struct vkllm_error err = {0};
    vkllm_session_reset(s);
    REQUIRE(vkllm_session_decode(s, p->tokens, (uint32_t)p->n_tokens, &err) == VKLLM_OK, "%s",
            err.msg);
    for (int i = 0; i < p->n_expect; i++) {
        int32_t t = argmax(vkllm_session_logits(s, -1), n_vocab);
        if (t != p->expect[i]) {
            /* quantized models have near ties early: a tie may end the
             * comparison only after MIN_COMPARED identical tokens, so that a
             * regression cannot pass as one (test_generate.c's rule) */
            CHECK(i >= MIN_COMPARED, "token %d: %d, llama.cpp %d, before %d identical tokens", i, t,
                  p->expect[i], MIN_COMPARED);
            CHECK(p->margins[i] < g->tie_margin,
                  "token %d: %d, llama.cpp %d (its margin %.4f is no near tie)", i, t, p->expect[i],
                  p->margins[i]);
            fprintf(stderr, "  near tie at token %d (margin %.4f): rest not compared\n", i,
                    p->margins[i]);
            return;
        }
        if (i + 1 < p->n_expect)
            REQUIRE(vkllm_session_decode(s, &t, 1, &err) == VKLLM_OK, "%s", err.msg);
    }
}

static int golden_case(const char *path)
{
    struct golden g;
    golden_read(path, &g);
    const bool quant = strstr(g.model, "--type q") != NULL;
    const double bound = quant ? 0.3 : 0.03;
    const char *base_name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char base[1024], ad_path[MAX_ADAPTERS][1100];
    snprintf(base, sizeof base, "%s/lora-%s.gguf", VKLLM_TEST_GEN, base_name);
    gen_model(base, g.model);
    for (int i = 0; i < g.n_adapters; i++) {
        snprintf(ad_path[i], sizeof ad_path[i], "%s.%d.lora", base, i);
        gen_lora(ad_path[i], base, g.adapter[i]);
    }

    struct vkllm_error err = {0};
    vkllm_context *ctx;
    vkllm_model *m;
    vkllm_session *s;
    vkllm_adapter *ad[MAX_ADAPTERS] = {0};
    REQUIRE(vkllm_context_create(NULL, &ctx, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_model_load(ctx, base, NULL, &m, &err) == VKLLM_OK, "%s", err.msg);
    const uint32_t V = vkllm_model_hparams(m)->n_vocab;
    REQUIRE(V == g.vocab, "vocabulary %u, golden %u", V, g.vocab);
    const struct vkllm_session_params sp = {.n_ctx = 128, .logits_all = true};
    REQUIRE(vkllm_session_create(m, &sp, &s, &err) == VKLLM_OK, "%s", err.msg);
    for (int i = 0; i < g.n_adapters; i++)
        REQUIRE(vkllm_adapter_load(m, ad_path[i], &ad[i], &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_set_adapters(s, ad, g.scale, (uint32_t)g.n_adapters, &err) == VKLLM_OK,
            "%s", err.msg);

    /* the logits: one batch, then token by token */
    const struct prompt *lp = &g.prompts[g.n_prompts - 1];
    REQUIRE((uint32_t)lp->n_tokens == g.rows);
    REQUIRE(vkllm_session_decode(s, lp->tokens, g.rows, &err) == VKLLM_OK, "%s", err.msg);
    double worst_batch = 0, worst_one = 0, worst_ref = 0;
    for (uint32_t r = 0; r < g.rows; r++) {
        const double d = max_diff(vkllm_session_logits(s, (int32_t)r), g.logits + r * V, V);
        if (!(d <= worst_batch)) worst_batch = d;
    }
    vkllm_session_reset(s);
    for (uint32_t r = 0; r < g.rows; r++) {
        REQUIRE(vkllm_session_decode(s, &lp->tokens[r], 1, &err) == VKLLM_OK, "%s", err.msg);
        const double d = max_diff(vkllm_session_logits(s, -1), g.logits + r * V, V);
        if (!(d <= worst_one)) worst_one = d;
    }
    /* the CPU reference runs the same graph */
    vkllm_gguf *bg, *ag[MAX_ADAPTERS];
    struct ref_model *ref;
    float *logits = malloc(V * sizeof *logits);
    REQUIRE(logits && vkllm_gguf_open(base, &bg, &err) == VKLLM_OK, "%s", err.msg);
    for (int i = 0; i < g.n_adapters; i++)
        REQUIRE(vkllm_gguf_open(ad_path[i], &ag[i], &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(ref_model_create(bg, 128, true, &ref, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(ref_model_set_adapters(ref, bg, (const vkllm_gguf *const *)ag, g.scale,
                                   (uint32_t)g.n_adapters, &err) == VKLLM_OK,
            "%s", err.msg);
    for (uint32_t r = 0; r < g.rows; r++) {
        REQUIRE(ref_model_decode(ref, lp->tokens[r], logits, &err) == VKLLM_OK, "%s", err.msg);
        const double d = max_diff(logits, g.logits + r * V, V);
        if (!(d <= worst_ref)) worst_ref = d;
    }
    printf("%s: logits max |diff| vs llama.cpp: batch %.2e, token by token %.2e, CPU reference "
           "%.2e (bound %g)\n",
           base_name, worst_batch, worst_one, worst_ref, bound);
    CHECK(worst_batch <= bound, "batched prompt: %g", worst_batch);
    CHECK(worst_one <= bound, "token by token: %g", worst_one);
    CHECK(worst_ref <= bound, "CPU reference: %g", worst_ref);

    for (int i = 0; i < g.n_prompts; i++)
        check_greedy(s, &g, &g.prompts[i], V);

    ref_model_free(ref);
    for (int i = 0; i < g.n_adapters; i++)
        vkllm_gguf_close(ag[i]);
    vkllm_gguf_close(bg);
    free(logits);
    free(g.logits);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_session_free(s);
    for (int i = 0; i < g.n_adapters; i++)
        vkllm_adapter_free(ad[i]);
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures != 0;
}

/* ============================== Switching ============================== */

/* Greedy tokens after PROMPT, N of them, with the session's current set. */
static void greedy(vkllm_session *s, uint32_t n_vocab, int32_t *out, int n)
{
    struct vkllm_error err = {0};
    int32_t prompt[] = {1, 17, 250, 99, 3, 140};
    vkllm_session_reset(s);
    REQUIRE(vkllm_session_decode(s, prompt, 6, &err) == VKLLM_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        out[i] = argmax(vkllm_session_logits(s, -1), n_vocab);
        REQUIRE(vkllm_session_decode(s, &out[i], 1, &err) == VKLLM_OK, "%s", err.msg);
    }
}

/* Switching the set or the scales between generations uploads nothing: the
 * device memory in use stays the same (no weight, no staging buffer) and it
 * takes a re-recording of the graphs, far less than loading an adapter. */
static void test_switching(vkllm_context *ctx, vkllm_model *m, const char *dir)
{
    struct vkllm_error err = {0};
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/lora-switch-1.gguf", dir);
    snprintf(p2, sizeof p2, "%s/lora-switch-2.gguf", dir);
    const char *base = vkllm_gguf_name(vkllm_model_gguf(m));
    gen_lora(p1, base, "--rank 8 --seed 21");
    gen_lora(p2, base, "--rank 16 --type f16 --targets all --seed 22");
    vkllm_adapter *a1, *a2;
    const uint64_t up0 = vkllm_context_bytes_uploaded(ctx);
    double t = now_ms();
    REQUIRE(vkllm_adapter_load(m, p1, &a1, &err) == VKLLM_OK, "%s", err.msg);
    const double load_ms = now_ms() - t;
    /* the counter sees adapter uploads: at least A and B of 14 matrices of rank 8 */
    const uint64_t load_bytes = vkllm_context_bytes_uploaded(ctx) - up0;
    CHECK(load_bytes >= 14ull * 2 * 8 * 4, "loading an adapter uploaded %llu bytes",
          (unsigned long long)load_bytes);
    REQUIRE(vkllm_adapter_load(m, p2, &a2, &err) == VKLLM_OK, "%s", err.msg);
    struct vkllm_adapter_info i1, i2;
    vkllm_adapter_describe(a1, &i1);
    vkllm_adapter_describe(a2, &i2);
    CHECK(i1.rank_min == 8 && i1.rank_max == 8 && i1.alpha == 8 && i1.n_tensors == 14,
          "rank %u..%u alpha %g, %u matrices", i1.rank_min, i1.rank_max, i1.alpha, i1.n_tensors);
    CHECK(i2.rank_max == 16 && i2.n_tensors == 16, "rank %u, %u matrices", i2.rank_max,
          i2.n_tensors);

    vkllm_session *s;
    const struct vkllm_session_params sp = {.n_ctx = 64};
    REQUIRE(vkllm_session_create(m, &sp, &s, &err) == VKLLM_OK, "%s", err.msg);
    const uint32_t V = vkllm_model_hparams(m)->n_vocab;
    enum { N = 12 };
    int32_t none[N], one[N], two[N], both[N], again[N];
    greedy(s, V, none, N);
    vkllm_adapter *set[] = {a1, a2};
    const float scales[] = {1.0f, 0.5f};
    /* the widest set first: the side paths' scratch is then as large as it gets */
    REQUIRE(vkllm_session_set_adapters(s, set, scales, 2, &err) == VKLLM_OK, "%s", err.msg);
    greedy(s, V, both, N);
    struct vkllm_memory_budget before, after;
    vkllm_context_memory(ctx, &before);
    const uint64_t weights = vkllm_model_weight_bytes(m);
    const uint64_t uploaded = vkllm_context_bytes_uploaded(ctx);

    double switch_ms = 0;
    t = now_ms();
    REQUIRE(vkllm_session_set_adapters(s, set, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    switch_ms += now_ms() - t;
    greedy(s, V, one, N);
    /* the same set again keeps the cache */
    const uint32_t pos = vkllm_session_pos(s);
    REQUIRE(vkllm_session_set_adapters(s, set, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(s) == pos, "an unchanged set emptied the cache");
    /* a scale change empties it */
    const float half = 0.5f;
    REQUIRE(vkllm_session_set_adapters(s, set, &half, 1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(s) == 0, "a new scale kept %u cached positions", vkllm_session_pos(s));
    t = now_ms();
    REQUIRE(vkllm_session_set_adapters(s, &a2, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    switch_ms += now_ms() - t;
    greedy(s, V, two, N);
    t = now_ms();
    REQUIRE(vkllm_session_set_adapters(s, set, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    switch_ms += now_ms() - t;
    greedy(s, V, again, N);
    vkllm_context_memory(ctx, &after);

    CHECK(memcmp(one, again, sizeof one) == 0, "switching back to the first adapter changed it");
    CHECK(memcmp(none, one, sizeof one) != 0, "the adapter changed nothing");
    CHECK(memcmp(one, two, sizeof one) != 0, "two adapters gave the same tokens");
    CHECK(memcmp(one, both, sizeof one) != 0, "stacking changed nothing");
    CHECK(after.usage == before.usage, "device memory in use went from %llu to %llu bytes",
          (unsigned long long)before.usage, (unsigned long long)after.usage);
    CHECK(vkllm_model_weight_bytes(m) == weights);
    CHECK(vkllm_context_bytes_uploaded(ctx) == uploaded,
          "switching and decoding uploaded %llu bytes",
          (unsigned long long)(vkllm_context_bytes_uploaded(ctx) - uploaded));
    printf("switching: %.2f ms per switch (3 switches), 0 bytes uploaded (loading an adapter: "
           "%.2f ms, %llu bytes); device memory in use %llu bytes before and after\n",
           switch_ms / 3, load_ms, (unsigned long long)load_bytes, (unsigned long long)after.usage);

    /* an adapter of the output matrix alone keeps the cache, and what follows
     * equals a fresh decode with it: the cache held no output */
    snprintf(p2, sizeof p2, "%s/lora-switch-3.gguf", dir);
    gen_lora(p2, base, "--rank 8 --targets output --seed 23");
    vkllm_adapter *a3;
    REQUIRE(vkllm_adapter_load(m, p2, &a3, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_adapter *with_out[] = {a1, a3};
    int32_t prompt[] = {1, 17, 250, 99, 3, 140}, next = 42;
    float *kept = malloc(V * sizeof *kept);
    REQUIRE(kept);
    REQUIRE(vkllm_session_set_adapters(s, set, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_session_reset(s);
    REQUIRE(vkllm_session_decode(s, prompt, 6, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_set_adapters(s, with_out, NULL, 2, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(s) == 6, "an output adapter emptied the cache");
    REQUIRE(vkllm_session_decode(s, &next, 1, &err) == VKLLM_OK, "%s", err.msg);
    memcpy(kept, vkllm_session_logits(s, -1), V * sizeof *kept);
    vkllm_session_reset(s);
    REQUIRE(vkllm_session_decode(s, prompt, 6, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_decode(s, &next, 1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(memcmp(kept, vkllm_session_logits(s, -1), V * sizeof *kept) == 0,
          "the kept cache gave other logits than a fresh decode");
    /* back to a1 alone: still only the output changed */
    REQUIRE(vkllm_session_set_adapters(s, set, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(s) == 7, "removing an output adapter emptied the cache");
    /* but a1 replaced by a3 changes keys and values */
    REQUIRE(vkllm_session_set_adapters(s, &a3, NULL, 1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(s) == 0, "dropping a layer adapter kept the cache");
    free(kept);

    /* no adapters: the base model's tokens again */
    REQUIRE(vkllm_session_set_adapters(s, NULL, NULL, 0, &err) == VKLLM_OK, "%s", err.msg);
    greedy(s, V, again, N);
    CHECK(memcmp(none, again, sizeof none) == 0, "removing the adapters did not restore the model");
    /* refused: an infinite scale; the set stays */
    const float inf = INFINITY;
    CHECK(vkllm_session_set_adapters(s, set, &inf, 1, &err) == VKLLM_E_INVALID);
    vkllm_session_free(s);
    vkllm_adapter_free(a3);
    vkllm_adapter_free(a2);
    vkllm_adapter_free(a1);
}

/* ============================== Refusals ============================== */

/* Loading PATH must fail with one line starting with PATH that holds WANT. */
static void refused(vkllm_model *m, const char *path, const char *want)
{
    struct vkllm_error err = {0};
    vkllm_adapter *a = NULL;
    const int rc = vkllm_adapter_load(m, path, &a, &err);
    CHECK(rc < 0 && !a, "%s loaded", path);
    CHECK(!strncmp(err.msg, path, strlen(path)) && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "%s: \"%s\" (want \"%s\")", path, err.msg, want);
    printf("refused: %s\n", err.msg);
    vkllm_adapter_free(a);
}

static void test_refusals(vkllm_context *ctx, vkllm_model *m, const char *dir)
{
    const char *base = vkllm_gguf_name(vkllm_model_gguf(m));
    char other[1024], p[1024];
    snprintf(other, sizeof other, "%s/lora-other-base.gguf", dir);
    gen_model(other, "--type f16 --n-embd 96 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 "
                     "--n-vocab 300 --seed 1");
    snprintf(p, sizeof p, "%s/lora-bad-other.gguf", dir);
    gen_lora(p, other, "--rank 8");
    refused(m, p,
            "blk.0.attn_q.weight.lora_a is 96x8, the model's blk.0.attn_q.weight needs 64 "
            "x rank");
    snprintf(p, sizeof p, "%s/lora-bad-arch.gguf", dir);
    gen_lora(p, base, "--rank 8 --arch qwen2");
    refused(m, p, "an adapter for qwen2, but the model is llama");
    snprintf(p, sizeof p, "%s/lora-bad-transposed.gguf", dir);
    gen_lora(p, base, "--rank 8 --transpose-a");
    refused(m, p, "lora_a is 8x64, the model's");
    snprintf(p, sizeof p, "%s/lora-bad-rank.gguf", dir);
    gen_lora(p, base, "--rank 8 --rank-b 4");
    refused(m, p, "lora_a has rank 8 but");
    snprintf(p, sizeof p, "%s/lora-bad-pair.gguf", dir);
    gen_lora(p, base, "--rank 8 --drop-b");
    refused(m, p, "has no blk.0.attn_q.weight.lora_b");
    snprintf(p, sizeof p, "%s/lora-bad-type.gguf", dir);
    gen_lora(p, base, "--rank 8 --general-type model");
    refused(m, p, "not a LoRA adapter (general.type is \"model\"");
    refused(m, base, "not a LoRA adapter");
    /* NaN or inf values, or an absurd alpha, are refused at load: applied,
     * they made every logit NaN, which the session blamed on the model */
    snprintf(p, sizeof p, "%s/lora-bad-nan.gguf", dir);
    gen_lora(p, base, "--rank 8 --type f32 --mag nan");
    refused(m, p, ": blk.0.attn_q.weight.lora_b holds NaN or infinite values");
    snprintf(p, sizeof p, "%s/lora-bad-inf.gguf", dir);
    gen_lora(p, base, "--rank 8 --type f16 --mag 1e9"); /* beyond the half range */
    refused(m, p, ": blk.0.attn_q.weight.lora_b holds NaN or infinite values");
    snprintf(p, sizeof p, "%s/lora-bad-alpha.gguf", dir);
    gen_lora(p, base, "--rank 8 --alpha 1e5");
    refused(m, p, ": adapter.lora.alpha is 100000; vkllm accepts at most 1024 times the rank");
    /* a truncated adapter: the GGUF reader's own one line */
    char cmd[3000];
    snprintf(p, sizeof p, "%s/lora-bad-truncated.gguf", dir);
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s/lora-bad-rank.gguf' > '%s'", dir, p);
    run(cmd);
    refused(m, p, "");

    /* an adapter of another model is refused by the session */
    struct vkllm_error err = {0};
    vkllm_model *m2;
    vkllm_adapter *a;
    vkllm_session *s;
    REQUIRE(vkllm_model_load(ctx, other, NULL, &m2, &err) == VKLLM_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/lora-bad-other.gguf", dir);
    REQUIRE(vkllm_adapter_load(m2, p, &a, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_create(m, NULL, &s, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_set_adapters(s, &a, NULL, 1, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "loaded for another model"),
          "%s", err.msg);
    vkllm_session_free(s);
    vkllm_adapter_free(a);
    vkllm_model_free(m2);
}

int main(int argc, char **argv)
{
    if (argc == 2) return golden_case(argv[1]);
    struct vkllm_error err = {0};
    char base[1024];
    snprintf(base, sizeof base, "%s/lora-switch-base.gguf", VKLLM_TEST_GEN);
    gen_model(base, "--type f16 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 "
                    "--n-vocab 300 --seed 1");
    vkllm_context *ctx;
    vkllm_model *m;
    REQUIRE(vkllm_context_create(NULL, &ctx, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_model_load(ctx, base, NULL, &m, &err) == VKLLM_OK, "%s", err.msg);
    test_switching(ctx, m, VKLLM_TEST_GEN);
    test_refusals(ctx, m, VKLLM_TEST_GEN);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);
    printf("%d checks, %d failed\n", test_checks, test_failures);
    return test_failures != 0;
}
