/* test_model.c: the GPU forward pass against the CPU reference, token by token,
 * on real and generated models: the prompt as one batched decode, then one
 * token at a time.
 *
 * Tolerances. Float models (F32, F16 weights): the reference accumulates in
 * double, the GPU in float in another order; both round the same values to
 * half (KV cache, F16-weight inputs, attention). Observed: max |diff| about
 * 2e-5 * (1 + max|logit|) for F32 and 1e-3 for F16 (a half-rounding tie
 * resolved differently moves a value by one half ulp); we allow 5e-3, far
 * below what a wrong kernel gives (order 1).
 * Quantized models (Q8_0, Q4_0 weights): activations are quantized to 8 bits
 * per block, a discontinuous step, so a last-bit difference upstream can move
 * one activation by a whole quantum and the logits by up to ~0.3 on these
 * models. We check the normalized mean squared error instead, as ggml's
 * test-backend-ops does: NMSE <= 2e-3 per token (observed up to ~5e-4; a
 * wrong scale or nibble order gives > 1e-1).
 * In both cases the argmax must agree unless the reference's top two are
 * closer than the largest difference seen at that token. */
#include "model.h"
#include "reference.h"
#include "testhelp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_quantized_weights(const vkllm_gguf *g)
{
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        uint32_t t = vkllm_gguf_tensor_at(g, i)->type;
        if (t == VKLLM_TYPE_Q8_0 || t == VKLLM_TYPE_Q4_0) return true;
    }
    return false;
}

/* Set by --split and --big: the embedding table must then be in several parts. */
static bool expect_split;

static void check_model(vkllm_context *ctx, const char *path, uint32_t n_tokens, uint32_t n_batch)
{
    struct vkllm_error err = {0};
    vkllm_model *m = NULL;
    int rc = vkllm_model_load(ctx, path, NULL, &m, &err);
    REQUIRE(rc == 0, "%s", err.msg);
    const struct vkllm_hparams *hp = vkllm_model_hparams(m);
    const bool quantized = has_quantized_weights(vkllm_model_gguf(m));
    if (expect_split)
        REQUIRE(model_tensor(m, 0, T_TOK_EMBD)->mat.n_parts > 1 &&
                    model_tensor(m, 0, T_OUTPUT)->mat.n_parts > 1,
                "%s: the embedding table should be split, is in %u part(s)", path,
                model_tensor(m, 0, T_TOK_EMBD)->mat.n_parts);
    struct ref_model *ref = NULL;
    rc = ref_model_create(vkllm_model_gguf(m), 256, true, &ref, &err);
    REQUIRE(rc == 0, "%s", err.msg);

    struct vkllm_session_params sp = {.n_ctx = 256, .n_batch = n_batch, .logits_all = true};
    vkllm_session *s = NULL;
    rc = vkllm_session_create(m, &sp, &s, &err);
    REQUIRE(rc == 0, "%s", err.msg);

    /* a deterministic token sequence over the vocabulary, BOS first */
    int32_t *tokens = malloc(n_tokens * sizeof *tokens);
    uint64_t state = 12345;
    for (uint32_t i = 0; i < n_tokens; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((state >> 33) % hp->n_vocab);
    }
    int32_t bos = vkllm_vocab_bos(vkllm_model_vocab(m));
    tokens[0] = bos >= 0 ? bos : 0;

    uint32_t n_prompt = n_tokens / 2;
    rc = vkllm_session_decode(s, tokens, n_prompt, &err);
    REQUIRE(rc == 0, "%s", err.msg);
    float *want = malloc(hp->n_vocab * sizeof *want);
    double worst = 0.0;
    for (uint32_t i = 0; i < n_tokens; i++) {
        if (i >= n_prompt) {
            rc = vkllm_session_decode(s, &tokens[i], 1, &err);
            REQUIRE(rc == 0, "%s", err.msg);
        }
        const float *got = vkllm_session_logits(s, i < n_prompt ? (int32_t)i : -1);
        REQUIRE(got != NULL);
        rc = ref_model_decode(ref, tokens[i], want, &err);
        REQUIRE(rc == 0, "%s", err.msg);
        double max_abs = 0, max_diff = 0, se = 0, ss = 0;
        uint32_t am_got = 0, am_want = 0;
        for (uint32_t v = 0; v < hp->n_vocab; v++) {
            double d = (double)got[v] - want[v];
            max_abs = fmax(max_abs, fabs(want[v]));
            max_diff = fmax(max_diff, fabs(d));
            se += d * d;
            ss += (double)want[v] * want[v];
            if (got[v] > got[am_got]) am_got = v;
            if (want[v] > want[am_want]) am_want = v;
        }
        if (quantized) {
            double nmse = se / (ss > 0 ? ss : 1);
            worst = fmax(worst, nmse);
            CHECK(nmse <= 2e-3, "%s: token %u: NMSE %g > 2e-3", path, i, nmse);
        } else {
            double tol = 5e-3 * (1.0 + max_abs);
            worst = fmax(worst, max_diff / (1.0 + max_abs));
            CHECK(max_diff <= tol, "%s: token %u: max |gpu - cpu| = %g > %g", path, i, max_diff,
                  tol);
        }
        CHECK(am_got == am_want || want[am_want] - want[am_got] <= 2 * max_diff,
              "%s: token %u: argmax %u on the GPU, %u on the CPU", path, i, am_got, am_want);
    }
    fprintf(stderr, "%s: %u tokens, batch %u: worst %s %.3g\n", path, n_tokens, n_batch,
            quantized ? "NMSE" : "relative difference", worst);
    free(want);
    free(tokens);
    ref_model_free(ref);
    vkllm_session_free(s);
    vkllm_model_free(m);
}

/* Writes a model with gen_model (tests/gen_model.c) and returns its path. */
static const char *generate(const char *name, const char *args)
{
    static char path[1024];
    char cmd[2048];
    snprintf(path, sizeof path, "%s/model-%s.gguf", VKLLM_TEST_GEN, name);
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, path, args);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    return path;
}

int main(int argc, char **argv)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    int rc = vkllm_context_create(NULL, &ctx, &err);
    REQUIRE(rc == 0, "%s", err.msg);
    const char *stories = VKLLM_TEST_DATA "/stories260K.gguf";
    const char *mode = argc > 1 ? argv[1] : "";
    expect_split = !strcmp(mode, "--big") || !strcmp(mode, "--split");
    char args[1024], name[32];
    const char *types[] = {"f16", "q8_0", "q4_0"};
    if (!strcmp(mode, "--big")) {
        /* token_embd and output of 32000 x 1152 floats: 141 MiB each, more than
         * lavapipe's 128 MiB storage-buffer range, so each is split in parts */
        check_model(ctx,
                    generate("big", "--type f32 --n-vocab 32000 --n-embd 1152 --n-head 9 "
                                    "--n-head-kv 3 --n-layer 1 --n-ff 64 --seed 3"),
                    6, 4);
    } else if (!strcmp(mode, "--split")) {
        /* run with VKLLM_MAX_BINDING=16K: the embedding and output tables of
         * stories260K (128 KiB in F32, 36 KiB in Q8_0) are then split in parts,
         * and the batch shrinks to keep the attention scratch in one binding */
        check_model(ctx, stories, 24, 7);
        for (int i = 1; i < 3; i++) {
            snprintf(args, sizeof args, "--from %s --type %s", stories, types[i]);
            snprintf(name, sizeof name, "split-%s", types[i]);
            check_model(ctx, generate(name, args), 24, 7);
        }
    } else if (argc > 1) {
        for (int i = 1; i < argc; i++)
            check_model(ctx, argv[i], 24, 7);
    } else {
        check_model(ctx, stories, 40, 64);
        check_model(ctx, stories, 24, 5);
        check_model(ctx, VKLLM_TEST_DATA "/llama-2-tiny-random.gguf", 20, 8);
        for (int i = 0; i < 3; i++) {
            snprintf(args, sizeof args, "--from %s --type %s", stories, types[i]);
            check_model(ctx, generate(types[i], args), 24, 7);
            snprintf(args, sizeof args,
                     "--type %s --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 "
                     "--n-vocab 300 --seed 5",
                     types[i]);
            snprintf(name, sizeof name, "gqa-%s", types[i]);
            check_model(ctx, generate(name, args), 24, 6);
        }
        check_model(ctx,
                    generate("odd", "--type f32 --n-embd 36 --n-head 6 --n-head-kv 3 "
                                    "--n-layer 3 --n-ff 50 --n-vocab 263 --seed 7 --tied"),
                    30, 4);
    }
    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
