/* session.c: sessions and their groups. A group holds what its sessions
 * share: the activations, every sequence's KV cache (one buffer per layer,
 * sequence after sequence), the graphs recorded for one token, a short
 * prompt, a prompt's batch and (with several sequences) a token of each, and
 * the adapters those apply. A session is one sequence of a group: its
 * position and its logits. vkllm_session_create makes a group of one. */
#include "budget.h"
#include "context.h"
#include "forward.h"
#include "kernels.h"
#include "ops.h"
#include "rope.h"

#include <stdlib.h>
#include <string.h>

struct vkllm_session_group {
    struct vkllm_model *m;
    uint32_t n_ctx, n_batch, n_seq;
    bool logits_all;
    bool check_logits;        /* scan read-back logits for NaN and infinities */
    bool single;              /* made by vkllm_session_create: freed with its session */
    struct session_plan plan; /* every buffer's size (budget.c) */

    struct gpu_pool device; /* activations and KV caches */
    struct gpu_pool host;   /* step rows and rope tables, written every step */
    struct gpu_pool readback;
    struct graph graph;       /* a token or a prompt's batch */
    struct graph multi_graph; /* a token of each sequence, logits for each (n_seq > 1) */
    struct forward_state st;
    struct rope_params rope[2]; /* per rotary setting of the layers */
    bool windowed;              /* some layer's cache is a ring shorter than the context */
    struct gpu_buf out;         /* logits copied for the host: (rows, n_vocab) */

    struct gpu_graph one; /* recorded for a single token */
    /* recorded for n_short tokens (when n_batch > n_short > 1): steps too
     * short for the GEMM take the matvecs, whose pipelines cost a CPU device
     * little to create, so that a short prompt never waits for the GEMM's */
    struct gpu_graph short_batch;
    uint32_t n_short;
    struct gpu_graph batch; /* recorded for n_batch tokens (when n_batch > 1) */
    bool batch_stale;       /* batch is recorded (and its pipelines made) at its first step */
    struct gpu_graph multi; /* recorded for n_seq tokens of as many sequences (n_seq > 1) */

    /* the adapters the graphs apply, in order, and their scales */
    vkllm_adapter **ad;
    float *scales;
    uint32_t n_ad;
    struct gpu_pool lora_pool; /* the side paths' scratch: st.bufs[BUF_LORA, BUF_LORA_OUT] */

    struct vkllm_session *members; /* n_seq */
};

struct vkllm_session {
    struct vkllm_session_group *g;
    uint32_t seq; /* its part of the group's caches */
    uint32_t pos;
    /* with logits_all, every row of the last decode; else, in a group of
     * several, a copy of the last row (the read-back buffer is shared) */
    float *logits;
    uint32_t n_logits, cap_logits;
    double last_gpu_ms;
};

static int alloc_state(struct vkllm_session_group *g, struct vkllm_error *err)
{
    const struct vkllm_model *m = g->m;
    const struct vkllm_hparams *hp = &m->hp;
    const struct session_plan *p = &g->plan; /* the sizes, in the order budget.c counts them */
    struct forward_state *st = &g->st;
    int rc;
    st->n_ctx = g->n_ctx;
    st->type_k = p->type_k;
    st->type_v = p->type_v;
    if ((rc = gpu_pool_alloc(&g->host, p->step, &st->step, err))) return rc;
    for (uint32_t i = 0; i < m->am.layers.n_rope; i++)
        if ((rc = gpu_pool_alloc(&g->host, p->rope, &st->rope[i], err))) return rc;
    for (int b = 0; b < BUF_COUNT; b++)
        if (g->graph.width[b] && (rc = gpu_pool_alloc(&g->device, p->bufs[b], &st->bufs[b], err)))
            return rc;
    if ((rc = gpu_pool_alloc(&g->device, p->xq, &st->xq, err)) ||
        (rc = gpu_pool_alloc(&g->device, p->scores, &st->scores, err)) ||
        (rc = gpu_pool_alloc(&g->readback, p->logits, &g->out, err)))
        return rc;
    st->k_cache = calloc(hp->n_layer, sizeof *st->k_cache);
    st->v_cache = calloc(hp->n_layer, sizeof *st->v_cache);
    st->ring = calloc(hp->n_layer, sizeof *st->ring);
    if (!st->k_cache || !st->v_cache || !st->ring)
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        st->ring[l] = budget_ring(&m->am, l, g->n_ctx, g->n_batch);
        if (st->ring[l] < g->n_ctx) g->windowed = true;
        const uint64_t slots = (uint64_t)g->n_seq * st->ring[l];
        if ((rc = gpu_pool_alloc(&g->device, slots * p->row_k, &st->k_cache[l], err)) ||
            (rc = gpu_pool_alloc(&g->device, slots * p->row_v, &st->v_cache[l], err)))
            return rc;
    }
    return VKLLM_OK;
}

/* Records the full batch's graph from GR; it is stale until that works. */
static int record_batch(struct vkllm_session_group *g, const struct graph *gr,
                        const struct vkllm_adapter *const *ad, struct vkllm_error *err)
{
    int rc = forward_record(g->m, gr, ad, &g->st, &g->batch, g->n_batch, false, &g->out, err);
    g->batch_stale = rc != 0;
    return rc;
}

/* Records GR and MULTI (the same with every row's logits), applying adapters
 * AD, into the group's graphs; the full batch's only with BATCH, else it is
 * left for its first step (record_built). */
static int record(struct vkllm_session_group *g, const struct graph *gr, const struct graph *multi,
                  const struct vkllm_adapter *const *ad, bool batch, struct vkllm_error *err)
{
    int rc = forward_record(g->m, gr, ad, &g->st, &g->one, 1, false, &g->out, err);
    if (!rc && g->n_short)
        rc = forward_record(g->m, gr, ad, &g->st, &g->short_batch, g->n_short, false, &g->out, err);
    g->batch_stale = g->n_batch > 1;
    if (!rc && g->batch_stale && batch) rc = record_batch(g, gr, ad, err);
    if (!rc && g->n_seq > 1)
        rc = forward_record(g->m, multi, ad, &g->st, &g->multi, g->n_seq, true, &g->out, err);
    return rc;
}

/* Records the full batch's graph alone (BATCH_ONLY), or every graph but it
 * where a short prompt's graph stands in for it until a long prompt comes. */
static int record_pass(struct vkllm_session_group *g, bool batch_only, struct vkllm_error *err)
{
    const struct vkllm_adapter *const *ad = (const struct vkllm_adapter *const *)g->ad;
    return batch_only ? record_batch(g, &g->graph, ad, err)
                      : record(g, &g->graph, &g->multi_graph, ad, !g->n_short, err);
}

/* record_pass, its pipelines compiled on all cores (a cold start's longest
 * wait): a first pass learns which they are, the second is the real one. */
static int record_built(struct vkllm_session_group *g, bool batch_only, struct vkllm_error *err)
{
    vk_pipelines_defer(&g->m->ctx->pipes);
    int rc = record_pass(g, batch_only, err);
    int built = vk_pipelines_build_deferred(&g->m->ctx->pipes, rc ? &(struct vkllm_error){0} : err);
    if (!rc) rc = built;
    if (!rc) rc = record_pass(g, batch_only, err);
    if (rc && g->n_batch > 1) g->batch_stale = true; /* recorded without its pipelines */
    return rc;
}

int vkllm_session_group_create(vkllm_model *m, const struct vkllm_session_params *params,
                               vkllm_session_group **out, struct vkllm_error *err)
{
    *out = NULL;
    struct vk_device *dev = &m->ctx->dev;
    struct vkllm_session_group *g = calloc(1, sizeof *g);
    if (!g) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    g->m = m;
    /* sized, and checked against the free memory, before anything is allocated */
    int rc = budget_session(&m->am, &dev->info, params, &g->plan, err);
    if (!rc)
        rc = budget_check_session(vkllm_gguf_name(m->gguf), &m->am, dev, params, &g->plan, err);
    if (rc) goto fail;
    g->n_ctx = g->plan.n_ctx;
    g->n_batch = g->plan.n_batch;
    g->n_short = g->n_batch >= GEMM_MIN_BATCH && m->ctx->gemm ? GEMM_MIN_BATCH - 1 : 0;
    g->n_seq = g->plan.n_seq;
    g->logits_all = g->plan.logits_all;
    g->check_logits = !(params && params->no_logit_check);

    g->members = calloc(g->n_seq, sizeof *g->members);
    if (!g->members) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        goto fail;
    }
    for (uint32_t i = 0; i < g->n_seq; i++) {
        g->members[i].g = g;
        g->members[i].seq = i;
        /* the copy of its last row, when the read-back buffer is shared */
        if (g->n_seq > 1 && !g->logits_all) {
            g->members[i].logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
            g->members[i].cap_logits = 1;
            if (!g->members[i].logits) {
                rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
                goto fail;
            }
        }
    }
    if ((rc = graph_build(&m->am, g->logits_all, &g->graph, err)) ||
        (g->n_seq > 1 && (rc = graph_build(&m->am, true, &g->multi_graph, err))))
        goto fail;
    rope_settings(&m->am, m->am.rope_freqs, g->n_ctx, g->rope);
    gpu_pool_init(&g->device, dev, GPU_POOL_DEVICE, g->plan.device_block);
    gpu_pool_init(&g->host, dev, GPU_POOL_UPLOAD, g->plan.host_block);
    gpu_pool_init(&g->readback, dev, GPU_POOL_READBACK, g->plan.readback_block);
    if ((rc = alloc_state(g, err))) goto fail;
    if ((rc = gpu_graph_create(&g->one, dev, err)) ||
        (g->n_short && (rc = gpu_graph_create(&g->short_batch, dev, err))) ||
        (g->n_batch > 1 && (rc = gpu_graph_create(&g->batch, dev, err))) ||
        (g->n_seq > 1 && (rc = gpu_graph_create(&g->multi, dev, err))))
        goto fail;
    if ((rc = record_built(g, false, err))) goto fail;
    *out = g;
    return VKLLM_OK;
fail:
    vkllm_session_group_free(g);
    return rc;
}

void vkllm_session_group_free(vkllm_session_group *g)
{
    if (!g) return;
    gpu_graph_destroy(&g->multi);
    gpu_graph_destroy(&g->batch);
    gpu_graph_destroy(&g->short_batch);
    gpu_graph_destroy(&g->one);
    free(g->st.k_cache);
    free(g->st.v_cache);
    free(g->st.ring);
    graph_free(&g->graph);
    graph_free(&g->multi_graph);
    free(g->ad);
    free(g->scales);
    gpu_pool_destroy(&g->lora_pool);
    gpu_pool_destroy(&g->readback);
    gpu_pool_destroy(&g->host);
    gpu_pool_destroy(&g->device);
    for (uint32_t i = 0; g->members && i < g->n_seq; i++)
        free(g->members[i].logits);
    free(g->members);
    free(g);
}

uint32_t vkllm_session_group_size(const vkllm_session_group *g)
{
    return g->n_seq;
}

vkllm_session *vkllm_session_group_member(vkllm_session_group *g, uint32_t i)
{
    return i < g->n_seq ? &g->members[i] : NULL;
}

int vkllm_session_create(vkllm_model *m, const struct vkllm_session_params *params,
                         vkllm_session **out, struct vkllm_error *err)
{
    *out = NULL;
    if (params && params->n_seq > 1)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "a session is one sequence: vkllm_session_group_create makes several");
    vkllm_session_group *g;
    int rc = vkllm_session_group_create(m, params, &g, err);
    if (rc) return rc;
    g->single = true;
    *out = &g->members[0];
    return VKLLM_OK;
}

void vkllm_session_free(vkllm_session *s)
{
    if (s && s->g->single) vkllm_session_group_free(s->g);
}

/* The logits of S's last decoded token. */
static const float *last_logits(const struct vkllm_session *s)
{
    const struct vkllm_session_group *g = s->g;
    if (g->logits_all) return s->logits + (size_t)(s->n_logits - 1) * g->m->hp.n_vocab;
    return g->n_seq > 1 ? s->logits : g->out.mapped;
}

/* Room for N rows of logits in S->logits. */
static int reserve_logits(struct vkllm_session *s, uint32_t n, struct vkllm_error *err)
{
    if (n <= s->cap_logits) return VKLLM_OK;
    float *p = realloc(s->logits, (size_t)n * s->g->m->hp.n_vocab * sizeof *p);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    s->logits = p;
    s->cap_logits = n;
    return VKLLM_OK;
}

/* Runs tokens [0, n) of S at positions pos.. through the graph recorded for
 * up to that many, and keeps their logits. */
static int run_step(struct vkllm_session *s, const int32_t *tokens, uint32_t n,
                    struct vkllm_error *err)
{
    struct vkllm_session_group *g = s->g;
    const struct vkllm_hparams *hp = &g->m->hp;
    op_step_prompt(&g->st.step, tokens, n, s->pos, s->seq);
    for (uint32_t i = 0; i < g->m->am.layers.n_rope && hp->n_rot; i++)
        rope_table(&g->rope[i], g->st.rope[i].mapped, n, s->pos);

    struct gpu_graph *gg = n == 1 ? &g->one : n <= g->n_short ? &g->short_batch : &g->batch;
    int rc = gg == &g->batch && g->batch_stale ? record_built(g, true, err) : VKLLM_OK;
    if (!rc) rc = gpu_graph_run(gg, err);
    if (rc) return rc;
    s->last_gpu_ms += gpu_graph_last_ms(gg);
    s->pos += n;

    const size_t row = (size_t)hp->n_vocab * sizeof(float);
    if (!g->logits_all) {
        /* the last token's logits are read where the GPU left them, unless
         * another session of the group may overwrite them first */
        if (g->n_seq > 1) memcpy(s->logits, g->out.mapped, row);
        s->n_logits = 1;
        return VKLLM_OK;
    }
    if ((rc = reserve_logits(s, s->n_logits + n, err))) return rc;
    memcpy(s->logits + (size_t)s->n_logits * hp->n_vocab, g->out.mapped, n * row);
    s->n_logits += n;
    return VKLLM_OK;
}

/* Index of the first NaN or infinity in P[0, N), or N. The first pass only
 * says whether there is one, in integers that vectorize (and survive
 * -ffast-math): an exponent of all ones, plus one, carries into bit 31. About
 * 20 us for 152k floats on a desktop CPU, against milliseconds per token. */
static size_t first_nonfinite(const float *p, size_t n)
{
    uint32_t bad = 0, u;
    for (size_t i = 0; i < n; i++) {
        memcpy(&u, p + i, sizeof u);
        bad |= (u & 0x7f800000u) + 0x00800000u;
    }
    for (size_t i = 0; (bad & 0x80000000u) && i < n; i++) {
        memcpy(&u, p + i, sizeof u);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
    }
    return n;
}

/* Fails if a logits row the caller may read holds a NaN or an infinity: the
 * sampler would pick a token from it all the same, and the text would look
 * like a model's output. POS0 is the position of the decode's first token. */
static int check_logits(const struct vkllm_session *s, uint32_t pos0, uint32_t n,
                        struct vkllm_error *err)
{
    const struct vkllm_session_group *g = s->g;
    const size_t n_vocab = g->m->hp.n_vocab;
    for (uint32_t row = g->logits_all ? 0 : n - 1; row < n; row++) {
        const float *l = g->logits_all ? s->logits + row * n_vocab : last_logits(s);
        const size_t i = first_nonfinite(l, n_vocab);
        if (i == n_vocab) continue;
        if (g->n_ad) /* the base model may well be fine without them */
            return vkllm_fail(err, VKLLM_E_NUMERIC,
                              "%s: logits at position %u are not finite (%s at token %zu) with "
                              "%u LoRA adapter%s applied (the first: %s at scale %g): an "
                              "adapter's values, alpha or scale are too large, or a kernel failed",
                              vkllm_gguf_name(g->m->gguf), pos0 + row,
                              l[i] != l[i] ? "NaN" : "infinity", i, g->n_ad,
                              g->n_ad == 1 ? "" : "s", g->ad[0]->name, (double)g->scales[0]);
        return vkllm_fail(err, VKLLM_E_NUMERIC,
                          "%s: logits at position %u are not finite (%s at token %zu): the "
                          "file's weights are broken or a kernel failed",
                          vkllm_gguf_name(g->m->gguf), pos0 + row,
                          l[i] != l[i] ? "NaN" : "infinity", i);
    }
    return VKLLM_OK;
}

/* Fails unless S can take N more tokens, all of them in the vocabulary. */
static int check_tokens(const struct vkllm_session *s, const int32_t *tokens, uint32_t n,
                        struct vkllm_error *err)
{
    const struct vkllm_session_group *g = s->g;
    if (n > g->n_ctx - s->pos)
        return vkllm_fail(err, VKLLM_E_CONTEXT_FULL,
                          "context full: %u tokens in the cache, %u more do not fit in %u", s->pos,
                          n, g->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= g->m->hp.n_vocab)
            return vkllm_fail(err, VKLLM_E_INVALID, "token id %d is outside the vocabulary of %u",
                              tokens[i], g->m->hp.n_vocab);
    return VKLLM_OK;
}

int vkllm_session_decode(vkllm_session *s, const int32_t *tokens, uint32_t n,
                         struct vkllm_error *err)
{
    struct vkllm_session_group *g = s->g;
    if (n == 0) return vkllm_fail(err, VKLLM_E_INVALID, "no tokens to decode");
    int rc = check_tokens(s, tokens, n, err);
    if (rc) return rc;
    const uint32_t pos0 = s->pos;
    s->n_logits = 0;
    s->last_gpu_ms = 0;
    uint32_t written = 0; /* positions from pos0 whose cache entries may have changed */
    for (uint32_t i = 0; i < n && !rc; i += g->n_batch) {
        uint32_t chunk = n - i < g->n_batch ? n - i : g->n_batch;
        written = i + chunk;
        rc = run_step(s, tokens + i, chunk, err);
    }
    if (!rc && g->check_logits) rc = check_logits(s, pos0, n, err);
    if (!rc) return VKLLM_OK;
    /* All or nothing: the cache past pos0 is overwritten by the next decode
     * before attention reads it. But a ring of a sliding-window layer that
     * took more than one batch has lost the window before pos0 (as in
     * vkllm_session_truncate): then nothing before pos0 is usable either. */
    s->pos = g->windowed && written > g->n_batch ? 0 : pos0;
    s->n_logits = 0;
    return rc;
}

int vkllm_session_group_decode(vkllm_session_group *g, vkllm_session *const *sessions,
                               const int32_t *tokens, uint32_t n, struct vkllm_error *err)
{
    if (n == 0) return vkllm_fail(err, VKLLM_E_INVALID, "no tokens to decode");
    if (n > g->n_seq)
        return vkllm_fail(err, VKLLM_E_INVALID, "%u tokens for a group of %u sessions", n,
                          g->n_seq);
    for (uint32_t i = 0; i < n; i++) {
        const struct vkllm_session *s = sessions[i];
        if (!s || s->g != g)
            return vkllm_fail(err, VKLLM_E_INVALID, "session %u is not of this group", i);
        for (uint32_t j = 0; j < i; j++)
            if (sessions[j] == s)
                return vkllm_fail(err, VKLLM_E_INVALID, "session %u is given twice", i);
        int rc = check_tokens(s, &tokens[i], 1, err);
        if (rc) return rc;
    }
    if (n == 1) return vkllm_session_decode(sessions[0], tokens, 1, err);

    const struct vkllm_hparams *hp = &g->m->hp;
    struct step_header *h = g->st.step.mapped;
    struct step_row *row = (struct step_row *)(h + 1);
    h->n_tokens = n;
    for (uint32_t i = 0; i < n; i++) {
        row[i] = (struct step_row){tokens[i], sessions[i]->pos, sessions[i]->seq};
        for (uint32_t r = 0; r < g->m->am.layers.n_rope && hp->n_rot; r++)
            rope_table(&g->rope[r], (float *)g->st.rope[r].mapped + (size_t)i * hp->n_rot, 1,
                       sessions[i]->pos);
        sessions[i]->n_logits = 0;
    }
    int rc = gpu_graph_run(&g->multi, err);
    /* each session's row of the logits, as its own decode of one token keeps it */
    const size_t row_bytes = (size_t)hp->n_vocab * sizeof(float);
    for (uint32_t i = 0; !rc && i < n; i++) {
        struct vkllm_session *s = sessions[i];
        if (g->logits_all && (rc = reserve_logits(s, 1, err))) break;
        memcpy(s->logits, (const char *)g->out.mapped + i * row_bytes, row_bytes);
        s->n_logits = 1;
        s->last_gpu_ms = gpu_graph_last_ms(&g->multi);
        if (g->check_logits) rc = check_logits(s, s->pos, 1, err);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (rc)
            sessions[i]->n_logits = 0; /* all or nothing: no position moved */
        else
            sessions[i]->pos++;
    }
    return rc;
}

const float *vkllm_session_logits(const vkllm_session *s, int32_t i)
{
    if (s->n_logits == 0) return NULL;
    if (i < 0) i = (int32_t)s->n_logits - 1;
    if ((uint32_t)i >= s->n_logits) return NULL;
    if (!s->g->logits_all) return i == (int32_t)s->n_logits - 1 ? last_logits(s) : NULL;
    return s->logits + (size_t)i * s->g->m->hp.n_vocab;
}

uint32_t vkllm_session_pos(const vkllm_session *s)
{
    return s->pos;
}
uint32_t vkllm_session_n_ctx(const vkllm_session *s)
{
    return s->g->n_ctx;
}
void vkllm_session_reset(vkllm_session *s)
{
    s->pos = 0;
    s->n_logits = 0;
}
double vkllm_session_last_gpu_ms(const vkllm_session *s)
{
    return s->last_gpu_ms;
}
void vkllm_session_step_counts(const vkllm_session *s, uint32_t *dispatches, uint32_t *barriers)
{
    const struct gpu_graph *gg = s->g->n_seq > 1 ? &s->g->multi : &s->g->one;
    *dispatches = gg->n_dispatches;
    *barriers = gg->n_barriers;
}
uint64_t vkllm_session_memory_bytes(const vkllm_session *s)
{
    const struct vkllm_session_group *g = s->g;
    return g->device.allocated + g->host.allocated + g->readback.allocated;
}

/* ROW's entry named NAME in LIST (N of them), added if new; NULL when full. */
static struct vkllm_profile_row *profile_row(struct vkllm_profile_row *list, uint32_t *n,
                                             const char *name)
{
    for (uint32_t i = 0; i < *n; i++)
        if (list[i].name == name) return &list[i];
    if (*n == VKLLM_PROFILE_MAX) return NULL;
    list[*n] = (struct vkllm_profile_row){.name = name};
    return &list[(*n)++];
}

static int by_ms(const void *a, const void *b)
{
    const double x = ((const struct vkllm_profile_row *)a)->ms;
    const double y = ((const struct vkllm_profile_row *)b)->ms;
    return (x < y) - (x > y);
}

int vkllm_session_profile(const vkllm_session *s, struct vkllm_profile *out,
                          struct vkllm_error *err)
{
    const struct vkllm_session_group *g = s->g;
    memset(out, 0, sizeof *out);
    if (!g->one.profile_queries)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "no profile: the context was created without profiling, or %s has no "
                          "timestamps",
                          g->m->ctx->dev.info.name);
    const struct gpu_graph *graphs[] = {&g->one, &g->short_batch, &g->batch, &g->multi};
    for (size_t k = 0; k < sizeof graphs / sizeof *graphs; k++) {
        for (uint32_t i = 0; i < graphs[k]->n_profile_sums; i++) {
            const struct gpu_profile_sum *p = &graphs[k]->profile_sums[i];
            if (!p->dispatches) continue; /* recorded, never run */
            out->total_ms += p->ms;
            struct vkllm_profile_row *r =
                profile_row(out->kernels, &out->n_kernels, shader_registry[p->shader].name);
            if (r) {
                r->dispatches += p->dispatches;
                r->ms += p->ms;
            }
            if (p->role != T_NONE) {
                const char *name = p->role == FORWARD_ROLE_LORA
                                       ? "lora"
                                       : arch_role_name((enum tensor_role)p->role);
                r = profile_row(out->matrices, &out->n_matrices, name);
                if (r) {
                    r->dispatches += p->dispatches;
                    r->ms += p->ms;
                    r->bytes += p->bytes;
                }
            }
            if (p->layer >= 0 &&
                p->layer < (int32_t)(sizeof out->layer_ms / sizeof *out->layer_ms)) {
                out->layer_ms[p->layer] += p->ms;
                if ((uint32_t)p->layer >= out->n_layers) out->n_layers = (uint32_t)p->layer + 1;
            } else {
                out->other_ms += p->ms;
            }
        }
    }
    qsort(out->kernels, out->n_kernels, sizeof *out->kernels, by_ms);
    qsort(out->matrices, out->n_matrices, sizeof *out->matrices, by_ms);
    return VKLLM_OK;
}

void vkllm_session_profile_reset(vkllm_session *s)
{
    struct vkllm_session_group *g = s->g;
    struct gpu_graph *graphs[] = {&g->one, &g->short_batch, &g->batch, &g->multi};
    for (size_t k = 0; k < sizeof graphs / sizeof *graphs; k++)
        for (uint32_t i = 0; i < graphs[k]->n_profile_sums; i++) {
            struct gpu_profile_sum *p = &graphs[k]->profile_sums[i];
            p->dispatches = p->bytes = 0; /* the recordings still point at their sums */
            p->ms = 0;
        }
}

int vkllm_session_truncate(vkllm_session *s, uint32_t pos, struct vkllm_error *err)
{
    if (pos > s->pos)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "cannot cut the cache back to %u tokens: it holds %u", pos, s->pos);
    /* attention reads positions < pos0 + t + 1 only, so what lies beyond is
     * never seen before the next decode overwrites it; but a ring may have
     * overwritten the window before POS since */
    if (s->g->windowed && pos > 0 && pos < s->pos && s->pos - pos > s->g->n_batch)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "cannot cut the cache back to %u tokens: the sliding-window layers no "
                          "longer hold the positions before it",
                          pos);
    s->pos = pos;
    s->n_logits = 0;
    return VKLLM_OK;
}

/* ============================== Adapters ============================== */

/* Whether adapter A changes keys or values: it adapts more than the output
 * matrix, which reads the cache's results but writes none of it. */
static bool changes_cache(const struct vkllm_session_group *g, const vkllm_adapter *a)
{
    const struct arch_model *am = &g->m->am;
    const uint64_t out = (uint64_t)(arch_slice(am, 0, T_OUTPUT) - am->slices);
    const uint64_t n = arch_slot_count(am);
    for (uint64_t i = 0; i < n; i++)
        if (i != out && a->rank[i]) return true;
    return false;
}

/* Whether the caches computed under G's set stay valid under ADAPTERS at
 * SCALES: every place of the list where the two differ holds only adapters
 * of the output matrix (a changed order counts as a change: the side paths
 * add up in it). */
static bool cache_survives(const struct vkllm_session_group *g, vkllm_adapter *const *adapters,
                           const float *scales, uint32_t n)
{
    for (uint32_t i = 0; i < n || i < g->n_ad; i++) {
        const vkllm_adapter *now = i < g->n_ad ? g->ad[i] : NULL;
        const vkllm_adapter *next = i < n ? adapters[i] : NULL;
        const float scale = scales ? scales[i] : 1.0f;
        if (now == next && (!now || g->scales[i] == scale)) continue;
        if ((now && changes_cache(g, now)) || (next && changes_cache(g, next))) return false;
    }
    return true;
}

int vkllm_session_set_adapters(vkllm_session *session, vkllm_adapter *const *adapters,
                               const float *scales, uint32_t n, struct vkllm_error *err)
{
    struct vkllm_session_group *grp = session->g; /* the set is the group's */
    if (n && !adapters) return vkllm_fail(err, VKLLM_E_INVALID, "no adapters given");
    bool same = n == grp->n_ad;
    for (uint32_t i = 0; i < n; i++) {
        const float sc = scales ? scales[i] : 1.0f;
        if (!adapters[i] || adapters[i]->m != grp->m)
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: the adapter was loaded for another model",
                              adapters[i] ? adapters[i]->name : "(null)");
        if (!(sc > -1e30f && sc < 1e30f))
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: the scale is not a finite number",
                              adapters[i]->name);
        same = same && grp->ad[i] == adapters[i] && grp->scales[i] == sc;
    }
    if (same) return VKLLM_OK;
    const bool keep_cache = cache_survives(grp, adapters, scales, n);

    vkllm_adapter **ad = calloc(n + 1, sizeof *ad);
    float *sc = calloc(n + 1, sizeof *sc);
    struct graph_adapter *ga = calloc(n + 1, sizeof *ga);
    struct graph g = {0}, multi = {0};
    struct gpu_pool pool = {0};
    struct gpu_buf lora = grp->st.bufs[BUF_LORA], lora_out = grp->st.bufs[BUF_LORA_OUT];
    int rc = ad && sc && ga ? VKLLM_OK : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t i = 0; !rc && i < n; i++) {
        ad[i] = adapters[i];
        sc[i] = scales ? scales[i] : 1.0f;
        ga[i] = (struct graph_adapter){adapters[i]->rank, adapters[i]->alpha, sc[i]};
    }
    if (!rc) rc = graph_build_with(&grp->m->am, grp->logits_all, ga, n, &g, err);
    if (!rc && grp->n_seq > 1) rc = graph_build_with(&grp->m->am, true, ga, n, &multi, err);
    /* the scratch grows when a wider adapter comes (both buffers anew, in a
     * pool of their own); the rank-wide one's quantized copy fits the
     * session's XQ, as ranks are at most n_embd (lora.c) */
    const uint64_t need = (uint64_t)grp->n_batch * g.width[BUF_LORA] * 4;
    uint64_t need_out = (uint64_t)grp->n_batch * g.width[BUF_LORA_OUT] * 4;
    if (need_out < (uint64_t)g.lora_out_last * 4) need_out = (uint64_t)g.lora_out_last * 4;
    if (!rc && (need > lora.size || need_out > lora_out.size)) {
        const uint64_t align = gpu_pool_alignment(&grp->m->ctx->dev.info);
        gpu_pool_init(&pool, &grp->m->ctx->dev, GPU_POOL_DEVICE, need + need_out + 2 * align);
        rc = gpu_pool_alloc(&pool, need, &lora, err);
        if (!rc) rc = gpu_pool_alloc(&pool, need_out, &lora_out, err);
    }
    if (!rc) {
        const struct gpu_buf old = grp->st.bufs[BUF_LORA], old_out = grp->st.bufs[BUF_LORA_OUT];
        grp->st.bufs[BUF_LORA] = lora;
        grp->st.bufs[BUF_LORA_OUT] = lora_out;
        rc = record(grp, &g, &multi, (const struct vkllm_adapter *const *)ad, !grp->batch_stale,
                    err);
        if (rc) {
            /* the previous graphs, recorded as they were, which worked before */
            grp->st.bufs[BUF_LORA] = old;
            grp->st.bufs[BUF_LORA_OUT] = old_out;
            record(grp, &grp->graph, &grp->multi_graph,
                   (const struct vkllm_adapter *const *)grp->ad, !grp->batch_stale, NULL);
        }
    }
    if (rc) {
        gpu_pool_destroy(&pool);
        graph_free(&g);
        graph_free(&multi);
        free(ad);
        free(sc);
        free(ga);
        return rc;
    }
    if (pool.n_blocks) {
        gpu_pool_destroy(&grp->lora_pool);
        grp->lora_pool = pool;
    }
    graph_free(&grp->graph);
    graph_free(&grp->multi_graph);
    grp->graph = g;
    grp->multi_graph = multi;
    free(grp->ad);
    free(grp->scales);
    free(ga);
    grp->ad = ad;
    grp->scales = sc;
    grp->n_ad = n;
    /* the cached keys and values went through the previous adapters */
    for (uint32_t i = 0; i < grp->n_seq; i++) {
        if (!keep_cache) grp->members[i].pos = 0;
        grp->members[i].n_logits = 0;
    }
    return VKLLM_OK;
}
