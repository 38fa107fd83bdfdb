/* test_numeric.c: a decode whose logits are not finite, and what a failed
 * decode leaves behind. The models are gen_model's, rewritten with poisoned
 * weights:
 *
 *   NaN          token 13's embedding row is NaN, so every position from the
 *                first 13 on computes NaN. The decode fails with
 *                VKLLM_E_NUMERIC and a message naming the first position whose
 *                logits the caller would read (the last token, or with
 *                logits_all the 13 itself). Guards the defect where such a
 *                model printed nothing, reported its tokens as generated and
 *                exited 0.
 *   infinity     output_norm = (1, 0, ..., 0) and output.weight[7][0] = inf:
 *                logit 7 alone is infinite (the others are finite products of
 *                one nonzero input).
 *   all or nothing
 *                a prompt whose second chunk fails leaves the session at the
 *                position it had before the call, with no logits, and the
 *                cache before that position intact: decoding there again gives
 *                finite logits. Guards the defect where the position stayed
 *                advanced past the chunks that ran, with no way to tell.
 *                A model with sliding-window layers whose failure came after
 *                its first batch has lost the window before that position
 *                (its rings were overwritten): it is reset to 0 instead.
 *   check off    no_logit_check lets the same decode succeed, NaN and all.
 *   device fault the same for a failure that is not numeric: the second
 *                chunk's submission fails (VKLLM_FAULT's submit, a device
 *                loss, so nothing runs after it).
 *
 * Usage: test_numeric (gen_model's path is compiled in). */
#include "gguf_copy.h"
#include "testhelp.h"
#include "vk_fault.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_EMBD 64
#define POISON 13 /* the token whose embedding is NaN */

/* Floats [BEGIN, BEGIN + COUNT) of tensor NAME set to VALUE; with ZERO_REST
 * every other float of it is 0. */
struct patch {
    const char *name;
    uint64_t begin, count;
    float value;
    bool zero_rest;
};

static void gen(const char *name, const char *args, char *path, size_t cap)
{
    snprintf(path, cap, "%s/numeric-%s.gguf", VKLLM_TEST_GEN, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, path, args);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
}

/* Copies IN to OUT with the patches applied (F32 tensors only). */
static void poison(const char *in, const char *out, const struct patch *patches, int n_patches)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_gguf_writer *w = NULL;
    REQUIRE_OK(vkllm_gguf_open(in, &g, &err), "%s", err.msg);
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err), "%s", err.msg);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        REQUIRE_OK(vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, i)), "copy");
    float *patched[4] = {0};
    const uint64_t n_tensors = vkllm_gguf_tensor_count(g);
    struct gguf_copy *copies = calloc(n_tensors, sizeof *copies);
    REQUIRE(copies);
    for (uint64_t i = 0; i < n_tensors; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const float *data = NULL;
        for (int p = 0; p < n_patches; p++) {
            if (strcmp(name, patches[p].name)) continue;
            REQUIRE(t->type == VKLLM_TYPE_F32 && p < 4, "%s is not F32", name);
            const uint64_t n = t->size / 4;
            REQUIRE(patches[p].begin + patches[p].count <= n, "%s: patch out of range", name);
            float *f = patched[p] = malloc(t->size);
            REQUIRE(f);
            REQUIRE_OK(vkllm_gguf_read(g, t, 0, f, t->size, &err), "%s", err.msg);
            if (patches[p].zero_rest) memset(f, 0, t->size);
            for (uint64_t j = 0; j < patches[p].count; j++)
                f[patches[p].begin + j] = patches[p].value;
            data = f;
        }
        copies[i] = (struct gguf_copy){g, t, t->size};
        REQUIRE_OK(
            data ? vkllm_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, data, t->size)
                 : gguf_copy_add(w, name, t->n_dims, t->ne, &copies[i]),
            "tensor %s", name);
    }
    REQUIRE_OK(vkllm_gguf_writer_write(w, out, &err), "%s", err.msg);
    for (int p = 0; p < 4; p++)
        free(patched[p]);
    free(copies);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(g);
}

static vkllm_session *session(vkllm_model *m, bool logits_all, bool no_check)
{
    struct vkllm_error err = {0};
    struct vkllm_session_params sp = {
        .n_ctx = 64, .n_batch = 4, .logits_all = logits_all, .no_logit_check = no_check};
    vkllm_session *s = NULL;
    REQUIRE_OK(vkllm_session_create(m, &sp, &s, &err), "%s", err.msg);
    return s;
}

static bool all_finite(const float *l, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(l[i])) return false;
    return true;
}

/* Decoding TOKENS must succeed, with finite logits, at position POS after. */
static void decode_ok(vkllm_session *s, const int32_t *tokens, uint32_t n, uint32_t pos,
                      int32_t n_vocab, const char *what)
{
    struct vkllm_error err = {0};
    int rc = vkllm_session_decode(s, tokens, n, &err);
    CHECK(rc == VKLLM_OK, "%s: %s", what, err.msg);
    const float *l = vkllm_session_logits(s, -1);
    CHECK(l && all_finite(l, n_vocab), "%s: logits not finite", what);
    CHECK(vkllm_session_pos(s) == pos, "%s: at %u, expected %u", what, vkllm_session_pos(s), pos);
}

/* Decoding TOKENS must fail with VKLLM_E_NUMERIC, a one-line message from PATH
 * that contains WANT, and leave the session at POS with no logits. */
static void decode_fails(vkllm_session *s, const int32_t *tokens, uint32_t n, uint32_t pos,
                         const char *path, const char *want, const char *what)
{
    struct vkllm_error err = {0};
    int rc = vkllm_session_decode(s, tokens, n, &err);
    CHECK(rc == VKLLM_E_NUMERIC && err.code == VKLLM_E_NUMERIC, "%s: status %d (%s)", what, rc,
          err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "%s: '%s' does not name the file", what,
          err.msg);
    CHECK(strstr(err.msg, want), "%s: '%s' does not say '%s'", what, err.msg, want);
    CHECK(!strchr(err.msg, '\n'), "%s: not one line", what);
    CHECK(vkllm_session_pos(s) == pos, "%s: at %u after the failure, expected %u", what,
          vkllm_session_pos(s), pos);
    CHECK(vkllm_session_logits(s, -1) == NULL, "%s: logits kept after a failure", what);
}

int main(void)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    CHECK(strcmp(vkllm_strerror(VKLLM_E_NUMERIC), "unknown error") != 0);

    char clean[1024], llama[1024], bad[1024];
    const struct patch nan_row = {"token_embd.weight", POISON * N_EMBD, N_EMBD, NAN, false};
    const int32_t first[] = {1, 2, 3, 4}, again[] = {5, 6};
    /* the second chunk of 4 holds the poisoned token */
    const int32_t later[] = {5, 6, 7, 8, 9, POISON, 10, 11}, at_once[] = {5, POISON};

    /* ---- a model of full-context layers */
    gen("llama",
        "--type f32 --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 96 "
        "--n-vocab 300 --seed 3",
        clean, sizeof clean);
    snprintf(llama, sizeof llama, "%s", clean);
    snprintf(bad, sizeof bad, "%s/numeric-llama-nan.gguf", VKLLM_TEST_GEN);
    poison(clean, bad, &nan_row, 1);
    vkllm_model *m = NULL;
    REQUIRE_OK(vkllm_model_load(ctx, bad, NULL, &m, &err), "%s", err.msg);
    const int32_t n_vocab = vkllm_vocab_n_tokens(vkllm_model_vocab(m));

    vkllm_session *s = session(m, false, false);
    decode_ok(s, first, 4, 4, n_vocab, "clean prompt");
    /* positions 4..11; the last token's logits are the ones read */
    decode_fails(s, later, 8, 4, bad, "logits at position 11 are not finite (NaN", "second chunk");
    decode_ok(s, again, 2, 6, n_vocab, "after the failed chunk");
    decode_fails(s, at_once, 2, 6, bad, "position 7", "first chunk");
    vkllm_session_free(s);

    /* with logits_all every row is read: the first bad one is the token's own */
    s = session(m, true, false);
    decode_ok(s, first, 4, 4, n_vocab, "clean prompt, logits_all");
    decode_fails(s, later, 8, 4, bad, "logits at position 9 are not", "logits_all");
    vkllm_session_free(s);

    /* the check off: the NaN comes through, as it did before the check */
    s = session(m, false, true);
    CHECK(vkllm_session_decode(s, at_once, 2, &err) == VKLLM_OK, "%s", err.msg);
    const float *l = vkllm_session_logits(s, -1);
    CHECK(l && isnan(l[0]), "no_logit_check: the logits should be NaN");
    vkllm_session_free(s);
    vkllm_model_free(m);

    /* ---- one infinite logit, 7 */
    const struct patch inf[] = {{"output_norm.weight", 0, 1, 1.0f, true},
                                {"output.weight", 7 * N_EMBD, 1, INFINITY, false}};
    snprintf(bad, sizeof bad, "%s/numeric-llama-inf.gguf", VKLLM_TEST_GEN);
    poison(clean, bad, inf, 2);
    REQUIRE_OK(vkllm_model_load(ctx, bad, NULL, &m, &err), "%s", err.msg);
    s = session(m, false, false);
    decode_fails(s, first, 3, 0, bad, "logits at position 2 are not finite (infinity at token 7)",
                 "infinity");
    vkllm_session_free(s);
    vkllm_model_free(m);

    /* ---- sliding-window layers: rings of window + batch = 8 positions */
    gen("gemma3",
        "--arch gemma3 --type f32 --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 3 "
        "--n-ff 128 --n-vocab 300 --window 4 --swa-pattern 3 --seed 1",
        clean, sizeof clean);
    snprintf(bad, sizeof bad, "%s/numeric-gemma3-nan.gguf", VKLLM_TEST_GEN);
    poison(clean, bad, &nan_row, 1);
    REQUIRE_OK(vkllm_model_load(ctx, bad, NULL, &m, &err), "%s", err.msg);
    s = session(m, false, false);
    decode_ok(s, first, 4, 4, n_vocab, "windowed: clean prompt");
    /* one chunk: the rings still hold the window before position 4 */
    decode_fails(s, at_once, 2, 4, bad, "position 5", "windowed: first chunk");
    decode_ok(s, again, 2, 6, n_vocab, "windowed: after the failed chunk");
    /* two chunks: the second overwrote ring slots of positions before 6 */
    decode_fails(s, later, 8, 0, bad, "position 13", "windowed: second chunk");
    decode_ok(s, first, 4, 4, n_vocab, "windowed: from the start again");
    vkllm_session_free(s);
    vkllm_model_free(m);

    /* ---- a device loss in the second chunk: last, as it ends the device */
    REQUIRE_OK(vkllm_model_load(ctx, llama, NULL, &m, &err), "%s", err.msg);
    s = session(m, false, false);
    decode_ok(s, first, 4, 4, n_vocab, "before the fault");
    REQUIRE_OK(vk_fault_configure("submit:2", NULL, &err), "%s", err.msg);
    int rc = vkllm_session_decode(s, later, 8, &err);
    CHECK(rc == VKLLM_E_VULKAN && strstr(err.msg, "VKLLM_FAULT=submit:2"), "fault: %d %s", rc,
          err.msg);
    CHECK(vkllm_session_pos(s) == 4, "fault: at %u, expected 4", vkllm_session_pos(s));
    CHECK(vkllm_session_logits(s, -1) == NULL, "fault: logits kept");
    REQUIRE_OK(vk_fault_configure(NULL, NULL, &err), "%s", err.msg);
    vkllm_session_free(s);
    vkllm_model_free(m);

    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
