/* test_session_group.c: several sessions decoding one token each in one step
 * (vkllm_session_group_decode) against the same tokens decoded by separate
 * sessions, one at a time. On gen_model's models:
 *
 *   llama f32    grouped-query attention, prompts of different lengths (some
 *                longer than the batch, so cut into steps), sessions that sit
 *                out some steps (their positions drift apart)
 *   llama q4_0   the same through the quantized activations
 *   gemma3 f32   sliding-window layers: every sequence has its own ring
 *   16 sessions  more than one pass of the matvec's 8 tokens; a batch that
 *                large would run a prompt's matmuls as GEMMs, whose sums
 *                round differently: a decode step must not
 *
 * After every step each session's logits equal its separate twin's bit for
 * bit (the group's step runs the same kernels on each row as a one-token
 * decode), so a server's replies are the command line's whatever its load. Then what must fail
 * does, leaving every session where it was: a session given twice, one of another group, more
 * tokens than sessions, a full context; a group larger than its batch; a plain session asked for
 * several sequences.
 *
 * Usage: test_session_group (gen_model's path is compiled in). */
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CTX   64
#define N_BATCH 8
#define MAX_SEQ 16
#define STEPS   12

static struct vkllm_error err;

/* gen_model's model NAME with ARGS, loaded in CTX. */
static vkllm_model *gen(vkllm_context *ctx, const char *name, const char *args)
{
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/group-%s.gguf", VKLLM_TEST_GEN, name);
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, path, args);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    vkllm_model *m = NULL;
    REQUIRE_OK(vkllm_model_load(ctx, path, NULL, &m, &err), "%s", err.msg);
    return m;
}

static int32_t argmax(const float *l, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* Largest |a - b| over N logits, relative to the largest |b| (at least 1). */
static double rel_diff(const float *a, const float *b, int32_t n)
{
    double d = 0, scale = 1;
    for (int32_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN counts */
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return d / scale;
}

/* N_SEQ sessions of a group and as many separate ones take the same prompts
 * and then the same greedy tokens. */
static void lockstep(vkllm_model *m, uint32_t n_seq, const char *what)
{
    const int32_t n_vocab = vkllm_vocab_n_tokens(vkllm_model_vocab(m));
    struct vkllm_session_params p = {.n_ctx = N_CTX, .n_batch = N_BATCH, .n_seq = n_seq};
    if (n_seq > N_BATCH) p.n_batch = n_seq;
    vkllm_session_group *g = NULL;
    REQUIRE_OK(vkllm_session_group_create(m, &p, &g, &err), "%s: %s", what, err.msg);
    CHECK(vkllm_session_group_size(g) == n_seq, "%s: size %u", what, vkllm_session_group_size(g));
    CHECK(vkllm_session_group_member(g, n_seq) == NULL, "%s: a member past the end", what);
    vkllm_session *member[MAX_SEQ], *twin[MAX_SEQ];
    int32_t next[MAX_SEQ];
    p.n_seq = 0;
    for (uint32_t i = 0; i < n_seq; i++) {
        member[i] = vkllm_session_group_member(g, i);
        REQUIRE_OK(vkllm_session_create(m, &p, &twin[i], &err), "%s: %s", what, err.msg);
        /* prompts of 2 to 17 tokens: some take several steps of the batch */
        int32_t prompt[32];
        const uint32_t len = 2 + (i * 5) % 16;
        for (uint32_t t = 0; t < len; t++)
            prompt[t] = (int32_t)((i * 31 + t * 7 + 1) % (uint32_t)n_vocab);
        REQUIRE_OK(vkllm_session_decode(member[i], prompt, len, &err), "%s: %s", what, err.msg);
        REQUIRE_OK(vkllm_session_decode(twin[i], prompt, len, &err), "%s: %s", what, err.msg);
        next[i] = argmax(vkllm_session_logits(member[i], -1), n_vocab);
    }
    double worst = 0;
    for (int step = 0; step < STEPS; step++) {
        /* session k sits out step k (mod the size): positions drift apart */
        vkllm_session *batch[MAX_SEQ];
        int32_t tokens[MAX_SEQ];
        uint32_t idx[MAX_SEQ], n = 0;
        for (uint32_t k = 0; k < n_seq; k++) {
            /* rows in an order that turns with the step, not the group's */
            const uint32_t i = (k + (uint32_t)step) % n_seq;
            if (n_seq > 2 && (uint32_t)step % n_seq == i) continue;
            idx[n] = i;
            batch[n] = member[i];
            tokens[n++] = next[i];
        }
        REQUIRE_OK(vkllm_session_group_decode(g, batch, tokens, n, &err), "%s step %d: %s", what,
                   step, err.msg);
        for (uint32_t k = 0; k < n; k++) {
            const uint32_t i = idx[k];
            REQUIRE_OK(vkllm_session_decode(twin[i], &tokens[k], 1, &err), "%s: %s", what, err.msg);
            const float *got = vkllm_session_logits(member[i], -1);
            const float *want = vkllm_session_logits(twin[i], -1);
            REQUIRE(got && want, "%s step %d session %u: no logits", what, step, i);
            CHECK(vkllm_session_pos(member[i]) == vkllm_session_pos(twin[i]),
                  "%s step %d session %u: position %u, its twin's %u", what, step, i,
                  vkllm_session_pos(member[i]), vkllm_session_pos(twin[i]));
            const double d = rel_diff(got, want, n_vocab);
            if (!(d <= worst)) worst = d;
            CHECK(d == 0, "%s step %d session %u: logits differ by %g (relative)", what, step, i,
                  d);
            next[i] = argmax(got, n_vocab);
            CHECK(next[i] == argmax(want, n_vocab), "%s step %d session %u: token %d, twin's %d",
                  what, step, i, next[i], argmax(want, n_vocab));
        }
    }
    for (uint32_t i = 0; i < n_seq; i++)
        vkllm_session_free(twin[i]);
    vkllm_session_group_free(g);
    printf("%s: %u sessions, %d steps, largest relative difference %.3g\n", what, n_seq, STEPS,
           worst);
}

/* Every failure leaves the sessions where they were. */
static void failures(vkllm_model *m)
{
    struct vkllm_session_params p = {.n_ctx = 16, .n_batch = 4, .n_seq = 3};
    vkllm_session_group *g = NULL, *other = NULL;
    REQUIRE_OK(vkllm_session_group_create(m, &p, &g, &err), "%s", err.msg);
    p.n_seq = 2;
    REQUIRE_OK(vkllm_session_group_create(m, &p, &other, &err), "%s", err.msg);
    vkllm_session *a = vkllm_session_group_member(g, 0), *b = vkllm_session_group_member(g, 1);
    vkllm_session *c = vkllm_session_group_member(g, 2);
    const int32_t prompt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    REQUIRE_OK(vkllm_session_decode(a, prompt, 3, &err), "%s", err.msg);
    REQUIRE_OK(vkllm_session_decode(b, prompt, 5, &err), "%s", err.msg);
    const int32_t two[] = {7, 8}, three[] = {7, 8, 9}, four[] = {1, 2, 3, 4};

    vkllm_session *twice[] = {a, a};
    CHECK(vkllm_session_group_decode(g, twice, two, 2, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "twice"),
          "a session twice: %s", err.msg);
    vkllm_session *foreign[] = {a, vkllm_session_group_member(other, 0)};
    CHECK(vkllm_session_group_decode(g, foreign, two, 2, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "not of this group"),
          "another group's session: %s", err.msg);
    vkllm_session *all[] = {a, b, c, a};
    CHECK(vkllm_session_group_decode(g, all, four, 4, &err) == VKLLM_E_INVALID,
          "more tokens than sessions: %s", err.msg);
    const int32_t bad[] = {7, 1 << 30};
    CHECK(vkllm_session_group_decode(g, all, bad, 2, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "outside the vocabulary"),
          "a token out of range: %s", err.msg);
    /* c's context full: nobody moves, and a and b keep their logits' position */
    REQUIRE_OK(vkllm_session_decode(c, prompt, 16, &err), "%s", err.msg);
    CHECK(vkllm_session_group_decode(g, all, three, 3, &err) == VKLLM_E_CONTEXT_FULL,
          "a full context: %s", err.msg);
    CHECK(vkllm_session_pos(a) == 3 && vkllm_session_pos(b) == 5 && vkllm_session_pos(c) == 16,
          "after the failures: positions %u %u %u, want 3 5 16", vkllm_session_pos(a),
          vkllm_session_pos(b), vkllm_session_pos(c));
    /* and then a step of the two that can go */
    CHECK(vkllm_session_group_decode(g, all, two, 2, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(a) == 4 && vkllm_session_pos(b) == 6, "positions %u %u, want 4 6",
          vkllm_session_pos(a), vkllm_session_pos(b));
    /* freeing a group's session does nothing: the group owns it */
    vkllm_session_free(a);
    CHECK(vkllm_session_group_decode(g, all, two, 2, &err) == VKLLM_OK, "after free: %s", err.msg);
    vkllm_session_group_free(other);
    vkllm_session_group_free(g);

    p = (struct vkllm_session_params){.n_ctx = 16, .n_batch = 4, .n_seq = 5};
    CHECK(vkllm_session_group_create(m, &p, &g, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "5 sequences do not fit a batch of 4"),
          "a group larger than its batch: %s", err.msg);
    vkllm_session *s = NULL;
    p.n_seq = 2;
    CHECK(vkllm_session_create(m, &p, &s, &err) == VKLLM_E_INVALID && !s,
          "a session of two sequences: %s", err.msg);
}

int main(void)
{
    vkllm_context *ctx = NULL;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    const char *shape = "--n-embd 64 --n-head 4 --n-head-kv 2 --n-vocab 300";
    char args[512];
    snprintf(args, sizeof args, "--type f32 %s --n-layer 2 --n-ff 96 --seed 5", shape);
    vkllm_model *m = gen(ctx, "llama-f32", args);
    lockstep(m, 4, "llama f32");
    lockstep(m, 2, "llama f32, two");
    lockstep(m, 16, "llama f32, sixteen");
    failures(m);
    vkllm_model_free(m);

    snprintf(args, sizeof args, "--type q4_0 %s --n-layer 2 --n-ff 96 --seed 6", shape);
    m = gen(ctx, "llama-q4_0", args);
    lockstep(m, 3, "llama q4_0");
    lockstep(m, 16, "llama q4_0, sixteen");
    vkllm_model_free(m);

    /* rings of window + batch = 12 positions, shorter than the context */
    snprintf(args, sizeof args,
             "--arch gemma3 --type f32 %s --n-layer 3 --n-ff 128 --window 4 --swa-pattern 3 "
             "--seed 2",
             shape);
    m = gen(ctx, "gemma3", args);
    lockstep(m, 4, "gemma3 windowed");
    vkllm_model_free(m);

    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
