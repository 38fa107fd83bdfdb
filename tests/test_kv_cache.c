/* test_kv_cache.c: the KV cache's types (-ctk/-ctv: f16, q8_0) through a
 * whole model at 8192 tokens of context (issue 9), against the CPU reference
 * (engine/exec/reference.c), whose cache is float32.
 *
 * A generated model (one layer, 32 wide, one head of 32: a position's K row
 * is one Q8_0 block, so neighbouring positions share a word of the cache;
 * weights at half gen_model's scale, whose attention at full scale is sharp
 * enough to multiply any rounding of K by a few hundred, as no trained model
 * does; one layer keeps the reference's 8192 steps within ~20 s) takes a
 * prompt of N_CTX - N_LAST tokens in steps of
 * 512 (the tiled prompt attention), then its last N_LAST tokens one at a
 * time (the split decode attention over all 8192 positions), with each cache
 * type. The reference decodes the same tokens once.
 *
 * Bounds, on the logits of the last N_LAST positions, by normalized MSE
 * (|gpu - cpu|^2 / |cpu|^2, as test-backend-ops):
 *   f16: the cache rounds K and V to half (2^-11 relative) and the kernels
 *     round q and the probabilities to half, as llama.cpp does; every other
 *     difference from the reference is float summation order. Errors of
 *     2^-11 relative in every attention input give an NMSE of the order of
 *     (2^-11)^2 = 2.4e-7; the bound is F16_NMSE = 1e-5.
 *   q8_0: each cached value is off by at most half a step, amax / 254 of its
 *     block: 0.4% of the largest value, 1/8 of that on average for Gaussian
 *     rows of 32, so the order of (0.4% / sqrt 3)^2 = 5e-6 per element,
 *     which the residual path carries to the logits mostly damped;
 *     the bound is Q8_NMSE = 1e-3 (llama.cpp's test-backend-ops bound for
 *     quantized types is 5e-4 per operation).
 * Observed on lavapipe: 2e-9 (f16) and 1e-6 (q8_0).
 * Each bound is checked to be discriminating: the reference's logits one
 * position earlier are further than 100 times Q8_NMSE from the last ones.
 * Beside the reference, F16 and Q8_0 must agree on the top token wherever
 * F16's top two are further apart than twice their largest difference. */
#include "reference.h"
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_CTX    8192
#define N_LAST   4
#define N_BATCH  512
#define F16_NMSE 1e-5
#define Q8_NMSE  1e-3

static double nmse(const float *got, const float *want, uint32_t n)
{
    double se = 0, ss = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double d = (double)got[i] - want[i];
        se += d * d;
        ss += (double)want[i] * want[i];
    }
    return se / (ss > 0 ? ss : 1);
}

static uint32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The logits of the last N_LAST positions (N_LAST x n_vocab) of TOKENS
 * through M with a cache of TYPE for K and V. */
static void run_gpu(vkllm_model *m, uint32_t type, const int32_t *tokens, float *out)
{
    struct vkllm_error err = {0};
    const uint32_t n_vocab = vkllm_model_hparams(m)->n_vocab;
    struct vkllm_session_params sp = {
        .n_ctx = N_CTX, .n_batch = N_BATCH, .type_k = type, .type_v = type};
    vkllm_session *s = NULL;
    REQUIRE(vkllm_session_create(m, &sp, &s, &err) == 0, "%s", err.msg);
    const double t0 = seconds();
    REQUIRE(vkllm_session_decode(s, tokens, N_CTX - N_LAST, &err) == 0, "%s", err.msg);
    for (uint32_t i = 0; i < N_LAST; i++) {
        REQUIRE(vkllm_session_decode(s, &tokens[N_CTX - N_LAST + i], 1, &err) == 0, "%s", err.msg);
        memcpy(out + (uint64_t)i * n_vocab, vkllm_session_logits(s, -1), n_vocab * sizeof *out);
    }
    fprintf(stderr, "cache %s: %u tokens in %.1f s\n", vkllm_cache_type_name(type), N_CTX,
            seconds() - t0);
    vkllm_session_free(s);
}

/* The unsupported pair: a head size that is not a multiple of 32 with a
 * Q8_0 cache is one error naming the flag, and nothing is created. */
static void check_refusal(vkllm_context *ctx, const char *path)
{
    struct vkllm_error err = {0};
    vkllm_model *m = NULL;
    struct vkllm_session_params sp = {.n_ctx = 64, .type_v = VKLLM_CACHE_Q8_0};
    struct vkllm_model_params mp = {.session = &sp};
    REQUIRE(vkllm_model_load(ctx, path, &mp, &m, &err) != 0 && !m, "loaded with -ctv q8_0");
    CHECK(strstr(err.msg, "--cache-type-v q8_0 needs a head size that is a multiple of 32") &&
              strstr(err.msg, path),
          "unexpected error: %s", err.msg);
    sp.type_v = VKLLM_CACHE_TYPE_COUNT;
    REQUIRE(vkllm_model_load(ctx, path, NULL, &m, &err) == 0, "%s", err.msg);
    vkllm_session *s = NULL;
    CHECK(vkllm_session_create(m, &sp, &s, &err) != 0 && !s, "an unknown type was accepted");
    vkllm_session_free(s);
    vkllm_model_free(m);
}

int main(void)
{
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/model-kv8k.gguf", VKLLM_TEST_GEN);
    snprintf(cmd, sizeof cmd,
             "'%s' -o '%s' --n-vocab 300 --n-embd 32 --n-layer 1 --n-head 1 --n-head-kv 1 "
             "--n-ff 64 --n-ctx %d --seed 9 --scale 0.5",
             VKLLM_GEN_MODEL, path, N_CTX);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    REQUIRE(vkllm_context_create(NULL, &ctx, &err) == 0, "%s", err.msg);
    check_refusal(ctx, VKLLM_TEST_DATA "/stories260K.gguf"); /* head size 8 */

    vkllm_model *m = NULL;
    REQUIRE(vkllm_model_load(ctx, path, NULL, &m, &err) == 0, "%s", err.msg);
    const struct vkllm_hparams *hp = vkllm_model_hparams(m);
    REQUIRE(hp->head_dim == 32 && hp->n_head_kv == 1, "head_dim %u", hp->head_dim);
    const uint32_t n_vocab = hp->n_vocab;

    /* a deterministic token sequence, BOS first */
    int32_t *tokens = malloc(N_CTX * sizeof *tokens);
    float *want = malloc((uint64_t)(N_LAST + 1) * n_vocab * sizeof *want);
    float *f16 = malloc((uint64_t)N_LAST * n_vocab * sizeof *f16);
    float *q8 = malloc((uint64_t)N_LAST * n_vocab * sizeof *q8);
    REQUIRE(tokens && want && f16 && q8);
    uint64_t state = 2026;
    for (uint32_t i = 0; i < N_CTX; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((state >> 33) % n_vocab);
    }
    const int32_t bos = vkllm_vocab_bos(vkllm_model_vocab(m));
    tokens[0] = bos >= 0 ? bos : 0;

    /* the budget counts each type's bytes: 64 (halves) or 34 (a Q8_0 block)
     * per 32 values, K and V of every position of every layer */
    for (uint32_t t = 0; t < VKLLM_CACHE_TYPE_COUNT; t++) {
        struct vkllm_session_params sp = {.n_ctx = N_CTX, .type_k = t, .type_v = t};
        struct vkllm_memory_needs needs;
        REQUIRE(vkllm_memory_needs(vkllm_model_gguf(m), ctx, &sp, &needs, &err) == 0, "%s",
                err.msg);
        const uint64_t row = (uint64_t)hp->n_head_kv * hp->head_dim / 32 * (t ? 34 : 64);
        CHECK(needs.kv_cache == 2ull * hp->n_layer * N_CTX * row, "%s: KV cache %llu bytes",
              vkllm_cache_type_name(t), (unsigned long long)needs.kv_cache);
    }

    run_gpu(m, VKLLM_CACHE_F16, tokens, f16);
    run_gpu(m, VKLLM_CACHE_Q8_0, tokens, q8);

    /* the reference: want[0] is the position before the last N_LAST */
    struct ref_model *ref = NULL;
    REQUIRE(ref_model_create(vkllm_model_gguf(m), N_CTX, false, &ref, &err) == 0, "%s", err.msg);
    const double t0 = seconds();
    for (uint32_t i = 0; i < N_CTX; i++) {
        const uint32_t row = i + N_LAST + 1 >= N_CTX ? i + N_LAST + 1 - N_CTX : 0;
        REQUIRE(ref_model_decode(ref, tokens[i], want + (uint64_t)row * n_vocab, &err) == 0, "%s",
                err.msg);
    }
    fprintf(stderr, "reference: %u tokens in %.1f s\n", N_CTX, seconds() - t0);
    ref_model_free(ref);

    double worst_f16 = 0, worst_q8 = 0, closest_shift = INFINITY;
    for (uint32_t i = 0; i < N_LAST; i++) {
        const float *w = want + (uint64_t)(i + 1) * n_vocab, *before = w - n_vocab;
        const float *g16 = f16 + (uint64_t)i * n_vocab, *g8 = q8 + (uint64_t)i * n_vocab;
        const double e16 = nmse(g16, w, n_vocab), e8 = nmse(g8, w, n_vocab);
        worst_f16 = fmax(worst_f16, e16);
        worst_q8 = fmax(worst_q8, e8);
        closest_shift = fmin(closest_shift, nmse(before, w, n_vocab));
        CHECK(e16 <= F16_NMSE, "position %u, f16 cache: NMSE %.3g > %.3g", N_CTX - N_LAST + i, e16,
              F16_NMSE);
        CHECK(e8 <= Q8_NMSE, "position %u, q8_0 cache: NMSE %.3g > %.3g", N_CTX - N_LAST + i, e8,
              Q8_NMSE);
        /* the top token: the same unless F16's top two are within the
         * caches' difference */
        double diff = 0;
        for (uint32_t v = 0; v < n_vocab; v++)
            diff = fmax(diff, fabs((double)g16[v] - g8[v]));
        const uint32_t a16 = argmax(g16, n_vocab), a8 = argmax(g8, n_vocab);
        CHECK(a16 == a8 || g16[a16] - g16[a8] <= 2 * diff,
              "position %u: top token %u with f16, %u with q8_0 (max diff %.3g)",
              N_CTX - N_LAST + i, a16, a8, diff);
    }
    CHECK(closest_shift > 100 * Q8_NMSE, "the bounds do not tell positions apart: %.3g",
          closest_shift);
    fprintf(stderr,
            "%u tokens: worst NMSE against the reference: f16 %.2g (bound %.0e), q8_0 %.2g "
            "(bound %.0e); one position off: %.2g\n",
            N_CTX, worst_f16, F16_NMSE, worst_q8, Q8_NMSE, closest_shift);

    free(tokens);
    free(want);
    free(f16);
    free(q8);
    vkllm_model_free(m);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
