/* session.c: one conversation: the KV cache and activations on the device, two
 * recorded graphs (one token, and a batch for prompts), and the decode loop
 * that feeds them. */
#include "budget.h"
#include "forward.h"
#include "kernels.h"
#include "rope.h"

#include <stdlib.h>
#include <string.h>

struct vkllm_session {
    struct vkllm_model *m;
    uint32_t n_ctx, n_batch;
    bool logits_all;
    bool check_logits; /* scan read-back logits for NaN and infinities */
    uint32_t pos;
    struct session_plan plan; /* every buffer's size (budget.c) */

    struct gpu_pool device; /* activations and KV cache */
    struct gpu_pool host;   /* step header and rope table, written every step */
    struct gpu_pool readback;
    struct graph graph;
    struct forward_state st;
    struct rope_params rope[2]; /* per rotary setting of the layers */
    bool windowed;              /* some layer's cache is a ring shorter than the context */
    struct gpu_buf out;         /* logits copied for the host: (n_batch or 1, n_vocab) */

    struct gpu_graph one;   /* recorded for a single token */
    struct gpu_graph batch; /* recorded for n_batch tokens (when n_batch > 1) */

    /* the adapters the graphs apply, in order, and their scales */
    vkllm_adapter **ad;
    float *scales;
    uint32_t n_ad;
    struct gpu_pool lora_pool; /* the side paths' scratch: st.bufs[BUF_LORA, BUF_LORA_OUT] */

    float *logits; /* with logits_all, every row of the last decode: (n_logits, n_vocab) */
    uint32_t n_logits, cap_logits;
    double last_gpu_ms;
};

static int alloc_state(struct vkllm_session *s, struct vkllm_error *err)
{
    const struct vkllm_model *m = s->m;
    const struct vkllm_hparams *hp = &m->hp;
    const struct session_plan *p = &s->plan; /* the sizes, in the order budget.c counts them */
    struct forward_state *st = &s->st;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    int rc;
    st->n_ctx = s->n_ctx;
    if ((rc = gpu_pool_alloc(&s->host, p->step, &st->step, err))) return rc;
    for (uint32_t i = 0; i < m->am.layers.n_rope; i++)
        if ((rc = gpu_pool_alloc(&s->host, p->rope, &st->rope[i], err))) return rc;
    for (int b = 0; b < BUF_COUNT; b++)
        if (s->graph.width[b] && (rc = gpu_pool_alloc(&s->device, p->bufs[b], &st->bufs[b], err)))
            return rc;
    if ((rc = gpu_pool_alloc(&s->device, p->xq, &st->xq, err)) ||
        (rc = gpu_pool_alloc(&s->device, p->scores, &st->scores, err)) ||
        (rc = gpu_pool_alloc(&s->readback, p->logits, &s->out, err)))
        return rc;
    st->k_cache = calloc(hp->n_layer, sizeof *st->k_cache);
    st->v_cache = calloc(hp->n_layer, sizeof *st->v_cache);
    st->ring = calloc(hp->n_layer, sizeof *st->ring);
    if (!st->k_cache || !st->v_cache || !st->ring)
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        st->ring[l] = budget_ring(&m->am, l, s->n_ctx, s->n_batch);
        if (st->ring[l] < s->n_ctx) s->windowed = true;
        if ((rc = gpu_pool_alloc(&s->device, st->ring[l] * KV * 2, &st->k_cache[l], err)) ||
            (rc = gpu_pool_alloc(&s->device, st->ring[l] * KV * 2, &st->v_cache[l], err)))
            return rc;
    }
    return VKLLM_OK;
}

/* Records GR, applying adapters AD, into the session's graphs. */
static int record(struct vkllm_session *s, const struct graph *gr,
                  const struct vkllm_adapter *const *ad, struct vkllm_error *err)
{
    int rc = forward_record(s->m, gr, ad, &s->st, &s->one, 1, &s->out, err);
    if (!rc && s->n_batch > 1)
        rc = forward_record(s->m, gr, ad, &s->st, &s->batch, s->n_batch, &s->out, err);
    return rc;
}

int vkllm_session_create(vkllm_model *m, const struct vkllm_session_params *params,
                         vkllm_session **out, struct vkllm_error *err)
{
    *out = NULL;
    struct vk_device *dev = &m->ctx->dev;
    struct vkllm_session *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    s->m = m;
    /* sized, and checked against the free memory, before anything is allocated */
    int rc = budget_session(&m->am, &dev->info, params, &s->plan, err);
    if (!rc)
        rc = budget_check_session(vkllm_gguf_name(m->gguf), &m->am, dev, params, &s->plan, err);
    if (rc) goto fail;
    s->n_ctx = s->plan.n_ctx;
    s->n_batch = s->plan.n_batch;
    s->logits_all = s->plan.logits_all;
    s->check_logits = !(params && params->no_logit_check);

    if ((rc = graph_build(&m->am, s->logits_all, &s->graph, err))) goto fail;
    rope_settings(&m->am, m->am.rope_freqs, s->n_ctx, s->rope);
    gpu_pool_init(&s->device, dev, GPU_POOL_DEVICE, s->plan.device_block);
    gpu_pool_init(&s->host, dev, GPU_POOL_UPLOAD, s->plan.host_block);
    gpu_pool_init(&s->readback, dev, GPU_POOL_READBACK, s->plan.readback_block);
    if ((rc = alloc_state(s, err))) goto fail;
    if ((rc = gpu_graph_create(&s->one, dev, err)) ||
        (s->n_batch > 1 && (rc = gpu_graph_create(&s->batch, dev, err))) ||
        (rc = record(s, &s->graph, NULL, err)))
        goto fail;
    *out = s;
    return VKLLM_OK;
fail:
    vkllm_session_free(s);
    return rc;
}

void vkllm_session_free(vkllm_session *s)
{
    if (!s) return;
    gpu_graph_destroy(&s->batch);
    gpu_graph_destroy(&s->one);
    free(s->st.k_cache);
    free(s->st.v_cache);
    free(s->st.ring);
    graph_free(&s->graph);
    free(s->ad);
    free(s->scales);
    gpu_pool_destroy(&s->lora_pool);
    gpu_pool_destroy(&s->readback);
    gpu_pool_destroy(&s->host);
    gpu_pool_destroy(&s->device);
    free(s->logits);
    free(s);
}

/* Runs tokens [0, n) at positions pos.. through the graph recorded for up to
 * that many, and keeps their logits. */
static int run_step(struct vkllm_session *s, const int32_t *tokens, uint32_t n,
                    struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &s->m->hp;
    struct step_header *h = s->st.step.mapped;
    h->n_tokens = n;
    h->pos0 = s->pos;
    memcpy(h + 1, tokens, n * sizeof *tokens);
    for (uint32_t i = 0; i < s->m->am.layers.n_rope && hp->n_rot; i++)
        rope_table(&s->rope[i], s->st.rope[i].mapped, n, s->pos);

    struct gpu_graph *g = n == 1 ? &s->one : &s->batch;
    int rc = gpu_graph_run(g, err);
    if (rc) return rc;
    s->last_gpu_ms += gpu_graph_last_ms(g);
    s->pos += n;

    if (!s->logits_all) {
        /* the last token's logits are read where the GPU left them */
        s->n_logits = 1;
        return VKLLM_OK;
    }
    if (s->n_logits + n > s->cap_logits) {
        uint32_t cap = s->n_logits + n;
        float *p = realloc(s->logits, (size_t)cap * hp->n_vocab * sizeof *p);
        if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        s->logits = p;
        s->cap_logits = cap;
    }
    memcpy(s->logits + (size_t)s->n_logits * hp->n_vocab, s->out.mapped,
           (size_t)n * hp->n_vocab * sizeof(float));
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
    const size_t n_vocab = s->m->hp.n_vocab;
    for (uint32_t row = s->logits_all ? 0 : n - 1; row < n; row++) {
        const float *l = s->logits_all ? s->logits + row * n_vocab : s->out.mapped;
        const size_t i = first_nonfinite(l, n_vocab);
        if (i == n_vocab) continue;
        return vkllm_fail(err, VKLLM_E_NUMERIC,
                          "%s: logits at position %u are not finite (%s at token %zu): the "
                          "file's weights are broken or a kernel failed",
                          vkllm_gguf_name(s->m->gguf), pos0 + row,
                          l[i] != l[i] ? "NaN" : "infinity", i);
    }
    return VKLLM_OK;
}

int vkllm_session_decode(vkllm_session *s, const int32_t *tokens, uint32_t n,
                         struct vkllm_error *err)
{
    if (n == 0) return vkllm_fail(err, VKLLM_E_INVALID, "no tokens to decode");
    if (n > s->n_ctx - s->pos)
        return vkllm_fail(err, VKLLM_E_CONTEXT_FULL,
                          "context full: %u tokens in the cache, %u more do not fit in %u", s->pos,
                          n, s->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->m->hp.n_vocab)
            return vkllm_fail(err, VKLLM_E_INVALID, "token id %d is outside the vocabulary of %u",
                              tokens[i], s->m->hp.n_vocab);
    const uint32_t pos0 = s->pos;
    s->n_logits = 0;
    s->last_gpu_ms = 0;
    int rc = VKLLM_OK;
    uint32_t written = 0; /* positions from pos0 whose cache entries may have changed */
    for (uint32_t i = 0; i < n && !rc; i += s->n_batch) {
        uint32_t chunk = n - i < s->n_batch ? n - i : s->n_batch;
        written = i + chunk;
        rc = run_step(s, tokens + i, chunk, err);
    }
    if (!rc && s->check_logits) rc = check_logits(s, pos0, n, err);
    if (!rc) return VKLLM_OK;
    /* All or nothing: the cache past pos0 is overwritten by the next decode
     * before attention reads it. But a ring of a sliding-window layer that
     * took more than one batch has lost the window before pos0 (as in
     * vkllm_session_truncate): then nothing before pos0 is usable either. */
    s->pos = s->windowed && written > s->n_batch ? 0 : pos0;
    s->n_logits = 0;
    return rc;
}

const float *vkllm_session_logits(const vkllm_session *s, int32_t i)
{
    if (s->n_logits == 0) return NULL;
    if (i < 0) i = (int32_t)s->n_logits - 1;
    if (!s->logits_all && i != (int32_t)s->n_logits - 1) {
        /* without logits_all only the last row exists; callers name it by -1 */
        return NULL;
    }
    if ((uint32_t)i >= s->n_logits) return NULL;
    if (!s->logits_all) return s->out.mapped;
    return s->logits + (size_t)i * s->m->hp.n_vocab;
}

uint32_t vkllm_session_pos(const vkllm_session *s)
{
    return s->pos;
}
uint32_t vkllm_session_n_ctx(const vkllm_session *s)
{
    return s->n_ctx;
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
uint64_t vkllm_session_memory_bytes(const vkllm_session *s)
{
    return s->device.allocated + s->host.allocated + s->readback.allocated;
}

int vkllm_session_truncate(vkllm_session *s, uint32_t pos, struct vkllm_error *err)
{
    if (pos > s->pos)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "cannot cut the cache back to %u tokens: it holds %u", pos, s->pos);
    /* attention reads positions < pos0 + t + 1 only, so what lies beyond is
     * never seen before the next decode overwrites it; but a ring may have
     * overwritten the window before POS since */
    if (s->windowed && pos > 0 && pos < s->pos && s->pos - pos > s->n_batch)
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
static bool changes_cache(const struct vkllm_session *s, const vkllm_adapter *a)
{
    const struct arch_model *am = &s->m->am;
    const uint64_t out = (uint64_t)(arch_slice(am, 0, T_OUTPUT) - am->slices);
    const uint64_t n = (uint64_t)am->hp.n_layer * T_LAYER_COUNT + (T_COUNT - T_MODEL_FIRST);
    for (uint64_t i = 0; i < n; i++)
        if (i != out && a->rank[i]) return true;
    return false;
}

/* Whether the cache computed under S's set stays valid under ADAPTERS at
 * SCALES: every place of the list where the two differ holds only adapters
 * of the output matrix (a changed order counts as a change: the side paths
 * add up in it). */
static bool cache_survives(const struct vkllm_session *s, vkllm_adapter *const *adapters,
                           const float *scales, uint32_t n)
{
    for (uint32_t i = 0; i < n || i < s->n_ad; i++) {
        const vkllm_adapter *now = i < s->n_ad ? s->ad[i] : NULL;
        const vkllm_adapter *next = i < n ? adapters[i] : NULL;
        const float scale = scales ? scales[i] : 1.0f;
        if (now == next && (!now || s->scales[i] == scale)) continue;
        if ((now && changes_cache(s, now)) || (next && changes_cache(s, next))) return false;
    }
    return true;
}

int vkllm_session_set_adapters(vkllm_session *s, vkllm_adapter *const *adapters,
                               const float *scales, uint32_t n, struct vkllm_error *err)
{
    if (n && !adapters) return vkllm_fail(err, VKLLM_E_INVALID, "no adapters given");
    bool same = n == s->n_ad;
    for (uint32_t i = 0; i < n; i++) {
        const float sc = scales ? scales[i] : 1.0f;
        if (!adapters[i] || adapters[i]->m != s->m)
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: the adapter was loaded for another model",
                              adapters[i] ? adapters[i]->name : "(null)");
        if (!(sc > -1e30f && sc < 1e30f))
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: the scale is not a finite number",
                              adapters[i]->name);
        same = same && s->ad[i] == adapters[i] && s->scales[i] == sc;
    }
    if (same) return VKLLM_OK;
    const bool keep_cache = cache_survives(s, adapters, scales, n);

    vkllm_adapter **ad = calloc(n + 1, sizeof *ad);
    float *sc = calloc(n + 1, sizeof *sc);
    struct graph_adapter *ga = calloc(n + 1, sizeof *ga);
    struct graph g = {0};
    struct gpu_pool pool = {0};
    struct gpu_buf lora = s->st.bufs[BUF_LORA], lora_out = s->st.bufs[BUF_LORA_OUT];
    int rc = ad && sc && ga ? VKLLM_OK : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t i = 0; !rc && i < n; i++) {
        ad[i] = adapters[i];
        sc[i] = scales ? scales[i] : 1.0f;
        ga[i] = (struct graph_adapter){adapters[i]->rank, adapters[i]->alpha, sc[i]};
    }
    if (!rc) rc = graph_build_with(&s->m->am, s->logits_all, ga, n, &g, err);
    /* the scratch grows when a wider adapter comes (both buffers anew, in a
     * pool of their own); the rank-wide one's quantized copy fits the
     * session's XQ, as ranks are at most n_embd (lora.c) */
    const uint64_t need = (uint64_t)s->n_batch * g.width[BUF_LORA] * 4;
    uint64_t need_out = (uint64_t)s->n_batch * g.width[BUF_LORA_OUT] * 4;
    if (need_out < (uint64_t)g.lora_out_last * 4) need_out = (uint64_t)g.lora_out_last * 4;
    if (!rc && (need > lora.size || need_out > lora_out.size)) {
        const uint64_t align = gpu_pool_alignment(&s->m->ctx->dev.info);
        gpu_pool_init(&pool, &s->m->ctx->dev, GPU_POOL_DEVICE, need + need_out + 2 * align);
        rc = gpu_pool_alloc(&pool, need, &lora, err);
        if (!rc) rc = gpu_pool_alloc(&pool, need_out, &lora_out, err);
    }
    if (!rc) {
        const struct gpu_buf old = s->st.bufs[BUF_LORA], old_out = s->st.bufs[BUF_LORA_OUT];
        s->st.bufs[BUF_LORA] = lora;
        s->st.bufs[BUF_LORA_OUT] = lora_out;
        rc = record(s, &g, (const struct vkllm_adapter *const *)ad, err);
        if (rc) {
            /* the previous graphs, recorded as they were, which worked before */
            s->st.bufs[BUF_LORA] = old;
            s->st.bufs[BUF_LORA_OUT] = old_out;
            record(s, &s->graph, (const struct vkllm_adapter *const *)s->ad, NULL);
        }
    }
    if (rc) {
        gpu_pool_destroy(&pool);
        graph_free(&g);
        free(ad);
        free(sc);
        free(ga);
        return rc;
    }
    if (pool.n_blocks) {
        gpu_pool_destroy(&s->lora_pool);
        s->lora_pool = pool;
    }
    graph_free(&s->graph);
    s->graph = g;
    free(s->ad);
    free(s->scales);
    free(ga);
    s->ad = ad;
    s->scales = sc;
    s->n_ad = n;
    /* the cached keys and values went through the previous adapters */
    if (!keep_cache) s->pos = 0;
    s->n_logits = 0;
    return VKLLM_OK;
}
