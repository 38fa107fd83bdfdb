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
 * closer than the largest difference seen at that token.
 *
 * test_model --archs [NAME] runs every model family (arch_cases below, or
 * those whose name starts with NAME) the same way, each with a prompt batch
 * that takes the GEMM path and with small batches. */
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

/* Runs N_TOKENS tokens: the first N_PROMPT as one decode (in steps of
 * N_BATCH), then one at a time, each compared with the reference. */
static void check_model_prompt(vkllm_context *ctx, const char *path, uint32_t n_tokens,
                               uint32_t n_prompt, uint32_t n_batch)
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
    fprintf(stderr, "%s: %u tokens (prompt %u), batch %u: worst %s %.3g\n", path, n_tokens,
            n_prompt, n_batch, quantized ? "NMSE" : "relative difference", worst);
    free(want);
    free(tokens);
    ref_model_free(ref);
    vkllm_session_free(s);
    vkllm_model_free(m);
}

static void check_model(vkllm_context *ctx, const char *path, uint32_t n_tokens, uint32_t n_batch)
{
    check_model_prompt(ctx, path, n_tokens, n_tokens / 2, n_batch);
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

/* --archs: every family of arch.c, one float (F16) and one quantized file
 * each (and RoPE scaling: YaRN, Llama 3.1's factors, LongRoPE past its
 * original context), at odd shapes (head dimensions 8 to 32, vocabularies and FFN widths
 * that are no power of two), with grouped-query attention where the family
 * has it and the options that change its graph: windows of 4 to 6 positions
 * (far fewer than the tokens run, so the window masks something), window
 * patterns, a second RoPE base, soft-caps, partial rotary, fused and split
 * q/k/v, biases, per-head Q/K norms, falcon's second norm, parallel and
 * sequential residuals, learned positions, ALiBi over 6 and 12 heads (not
 * powers of two: both slope bases). Quantized files keep every row a multiple
 * of 32, so that their matrices are Q8_0 or Q4_0 and not a fallback format.
 * WINDOW is what the file should report: checked, so that a generator
 * change cannot quietly turn the window off. */
static const struct arch_case {
    const char *name, *args;
    uint32_t window;
} arch_cases[] = {
    {"llama-f16",
     "--arch llama --type f16 --n-embd 80 --n-head 10 --n-head-kv 2 --n-ff 136 --n-vocab 301 "
     "--fused-qkv --qkv-bias 1 --window 6 --seed 201",
     6},
    {"llama-q4_0",
     "--arch llama --type q4_0 --n-embd 128 --n-head 8 --n-head-kv 4 --n-ff 224 --n-vocab 340 "
     "--window 5 --seed 202",
     5},
    {"qwen2-f16",
     "--arch qwen2 --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 152 --n-vocab 331 "
     "--rope-base 1000000 --seed 203",
     0},
    {"qwen2-q8_0",
     "--arch qwen2 --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-ff 160 --n-vocab 300 "
     "--fused-qkv --seed 204",
     0},
    {"qwen3-f16",
     "--arch qwen3 --type f16 --n-embd 72 --n-head 6 --n-head-kv 3 --n-layer 3 --n-ff 120 "
     "--n-vocab 307 --tied --seed 205",
     0},
    {"qwen3-q4_0",
     "--arch qwen3 --type q4_0 --n-embd 128 --n-head 4 --n-head-kv 2 --n-ff 256 --n-vocab 350 "
     "--fused-qkv --seed 206",
     0},
    {"phi3-f16",
     "--arch phi3 --type f16 --n-embd 96 --n-head 6 --n-head-kv 3 --n-ff 136 --n-vocab 320 "
     "--n-rot 8 --seed 207",
     0},
    {"phi3-q8_0",
     "--arch phi3 --type q8_0 --n-embd 128 --n-head 4 --n-head-kv 2 --n-ff 192 --n-vocab 300 "
     "--n-rot 12 --split-qkv --seed 208",
     0},
    {"gemma-f16",
     "--arch gemma --type f16 --n-embd 64 --n-head 4 --n-head-kv 1 --n-ff 160 --n-vocab 303 "
     "--seed 209",
     0},
    {"gemma-q4_0",
     "--arch gemma --type q4_0 --n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 192 --n-vocab 300 "
     "--fused-qkv --seed 210",
     0},
    {"gemma2-f16",
     "--arch gemma2 --type f16 --n-embd 80 --n-head 4 --n-head-kv 2 --n-layer 3 --n-ff 144 "
     "--n-vocab 300 --window 5 --attn-softcap 20 --final-softcap 15 --seed 211",
     5},
    {"gemma2-q8_0",
     "--arch gemma2 --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 4 --n-layer 3 --n-ff 192 "
     "--n-vocab 330 --window 6 --swa-pattern 3 --rope-base-swa 1000 --attn-softcap 10 "
     "--final-softcap 5 --seed 212",
     6},
    {"gemma3-f16",
     "--arch gemma3 --type f16 --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 3 --n-ff 128 "
     "--n-vocab 300 --window 5 --swa-pattern 3 --rope-base 1000000 --tied --final-softcap 10 "
     "--seed 213",
     5},
    {"gemma3-q4_0",
     "--arch gemma3 --type q4_0 --n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 160 --n-vocab 310 "
     "--window 4 --swa-pattern 2 --rope-base-swa 5000 --seed 214",
     4},
    {"falcon-f16",
     "--arch falcon --type f16 --n-embd 72 --n-head 6 --n-head-kv 1 --n-ff 200 --n-vocab 301 "
     "--seed 215",
     0},
    {"falcon-q8_0",
     "--arch falcon --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-ff 256 --n-vocab 320 "
     "--falcon-norm2 --seed 216",
     0},
    {"gptneox-f16",
     "--arch gptneox --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 200 --n-vocab 320 "
     "--n-rot 4 --parallel-residual 1 --seed 217",
     0},
    {"gptneox-q4_0",
     "--arch gptneox --type q4_0 --n-embd 128 --n-head 4 --n-ff 256 --n-vocab 300 --n-rot 8 "
     "--parallel-residual 0 --seed 218",
     0},
    {"stablelm-f16",
     "--arch stablelm --type f16 --n-embd 80 --n-head 5 --n-head-kv 1 --n-ff 136 --n-vocab 311 "
     "--n-rot 6 --qk-norm --fused-qkv --qkv-bias 1 --seed 219",
     0},
    {"stablelm-q8_0",
     "--arch stablelm --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-ff 224 --n-vocab 340 "
     "--n-rot 4 --qk-norm --parallel-residual 1 --seed 220",
     0},
    {"starcoder-f16",
     "--arch starcoder --type f16 --n-embd 64 --n-head 4 --n-head-kv 1 --n-ff 256 --n-vocab 300 "
     "--n-ctx 64 --seed 221",
     0},
    {"starcoder-q4_0",
     "--arch starcoder --type q4_0 --n-embd 96 --n-head 3 --n-ff 192 --n-vocab 330 --n-ctx 64 "
     "--tied --seed 222",
     0},
    {"bloom-f16",
     "--arch bloom --type f16 --n-embd 72 --n-head 6 --n-ff 144 --n-vocab 300 --tied --seed 223",
     0},
    {"bloom-q8_0",
     "--arch bloom --type q8_0 --n-embd 96 --n-head 12 --n-ff 256 --n-vocab 310 --seed 224", 0},
    {"starcoder2-f16",
     "--arch starcoder2 --type f16 --n-embd 80 --n-head 5 --n-head-kv 1 --n-ff 136 "
     "--n-vocab 301 --seed 225",
     0},
    {"starcoder2-q4_0",
     "--arch starcoder2 --type q4_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-ff 224 "
     "--n-vocab 320 --seed 226",
     0},
    /* RoPE scaling: YaRN with Llama 3.1's frequency factors, LongRoPE */
    {"llama-yarn-f16",
     "--arch llama --type f16 --n-embd 64 --n-head 4 --n-head-kv 2 --n-ff 128 --n-vocab 300 "
     "--rope-scaling yarn --rope-factor 4 --rope-orig-ctx 16 --rope-factors --seed 227",
     0},
    {"phi3-longrope-q8_0",
     "--arch phi3 --type q8_0 --n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 160 --n-vocab 320 "
     "--n-rot 8 --rope-scaling longrope --rope-orig-ctx 16 --rope-factors --seed 228",
     0},
};

/* A ring cache has overwritten what lies a window behind an old position:
 * cutting the cache back that far must be refused (the conversation then
 * starts over), a cut of one token allowed. */
static void check_ring_truncate(vkllm_model *m, const char *name)
{
    struct vkllm_error err = {0};
    struct vkllm_session_params sp = {.n_ctx = 64, .n_batch = 3};
    vkllm_session *s = NULL;
    REQUIRE(vkllm_session_create(m, &sp, &s, &err) == 0, "%s", err.msg);
    int32_t tokens[30] = {0};
    REQUIRE(vkllm_session_decode(s, tokens, 30, &err) == 0, "%s", err.msg);
    CHECK(vkllm_session_truncate(s, 29, &err) == 0, "%s: a cut of one token: %s", name, err.msg);
    CHECK(vkllm_session_truncate(s, 5, &err) == VKLLM_E_UNSUPPORTED,
          "%s: a cut behind the ring was accepted", name);
    CHECK(vkllm_session_pos(s) == 29, "%s: a refused cut moved the cache to %u", name,
          vkllm_session_pos(s));
    vkllm_session_free(s);
}

static void check_archs(vkllm_context *ctx, const char *only)
{
    for (size_t i = 0; i < sizeof arch_cases / sizeof arch_cases[0]; i++) {
        const struct arch_case *c = &arch_cases[i];
        if (only && strncmp(c->name, only, strlen(only))) continue;
        char name[64];
        snprintf(name, sizeof name, "archs-%s", c->name);
        const char *path = generate(name, c->args);
        /* the window the file asks for is in force on some layer */
        struct vkllm_error err = {0};
        vkllm_model *m = NULL;
        REQUIRE(vkllm_model_load(ctx, path, NULL, &m, &err) == 0, "%s", err.msg);
        const struct vkllm_hparams *hp = vkllm_model_hparams(m);
        CHECK(hp->sliding_window == c->window && (c->window == 0) == (hp->n_swa_layers == 0),
              "%s: window %u on %u layers, expected %u", c->name, hp->sliding_window,
              hp->n_swa_layers, c->window);
        if (c->window) check_ring_truncate(m, c->name);
        vkllm_model_free(m);
        /* a prompt of 20 in steps of 16, the GEMM path (the ring of a window
         * layer, window + 16, then wraps by token 40); then steps of 3 (and a
         * last one of 1) and single tokens, the ring of window + 3 wrapping
         * several times */
        check_model_prompt(ctx, path, 40, 20, 16);
        check_model_prompt(ctx, path, 24, 10, 3);
    }
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
    } else if (!strcmp(mode, "--archs")) {
        /* test_model --archs [NAME]: all of them, or those whose name starts so */
        check_archs(ctx, argc > 2 ? argv[2] : NULL);
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
