/* session.c: one conversation: the KV cache and activations on the device, two
 * recorded graphs (one token, and a batch for prompts), and the decode loop
 * that feeds them. */
#include "forward.h"
#include "kernels.h"
#include "rope.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_N_CTX   4096
#define DEFAULT_N_BATCH 512 /* as llama.cpp's n_ubatch */

struct vkllm_session {
    struct vkllm_model *m;
    uint32_t n_ctx, n_batch;
    bool logits_all;
    uint32_t pos;

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

    float *logits; /* with logits_all, every row of the last decode: (n_logits, n_vocab) */
    uint32_t n_logits, cap_logits;
    double last_gpu_ms;
};

static int alloc_state(struct vkllm_session *s, struct vkllm_error *err)
{
    const struct vkllm_model *m = s->m;
    const struct vkllm_hparams *hp = &m->hp;
    struct forward_state *st = &s->st;
    const uint64_t B = s->n_batch;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t widest = 0; /* longest input of a matvec */
    for (int b = 0; b < BUF_COUNT; b++)
        if (b != BUF_LOGITS && s->graph.width[b] > widest) widest = s->graph.width[b];
    int rc;
    st->n_ctx = s->n_ctx;
    if ((rc = gpu_pool_alloc(&s->host, STEP_HEADER_WORDS * 4 + B * 4, &st->step, err))) return rc;
    for (uint32_t i = 0; i < m->am.layers.n_rope; i++)
        if ((rc = gpu_pool_alloc(&s->host, B * (hp->n_rot ? hp->n_rot : 2) * 4, &st->rope[i], err)))
            return rc;
    for (int b = 0; b < BUF_COUNT; b++) {
        const uint64_t rows = b == BUF_LOGITS && !s->logits_all ? 1 : B;
        if (s->graph.width[b] &&
            (rc = gpu_pool_alloc(&s->device, rows * s->graph.width[b] * 4, &st->bufs[b], err)))
            return rc;
    }
    const uint64_t logit_bytes = (s->logits_all ? B : 1) * hp->n_vocab * 4;
    if ((rc = gpu_pool_alloc(&s->device, op_q8_bytes((uint32_t)B, (uint32_t)widest), &st->xq,
                             err)) ||
        (rc = gpu_pool_alloc(&s->device, B * hp->n_head * s->n_ctx * 4, &st->scores, err)) ||
        (rc = gpu_pool_alloc(&s->readback, logit_bytes, &s->out, err)))
        return rc;
    st->k_cache = calloc(hp->n_layer, sizeof *st->k_cache);
    st->v_cache = calloc(hp->n_layer, sizeof *st->v_cache);
    st->ring = calloc(hp->n_layer, sizeof *st->ring);
    if (!st->k_cache || !st->v_cache || !st->ring)
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        /* a windowed layer keeps the window and one batch: a batch's first
         * query still sees the window behind it while the batch is written */
        uint64_t ring = s->n_ctx;
        if (m->am.layers.swa[l] && (uint64_t)hp->sliding_window + B < ring) {
            ring = hp->sliding_window + B;
            s->windowed = true;
        }
        st->ring[l] = (uint32_t)ring;
        if ((rc = gpu_pool_alloc(&s->device, ring * KV * 2, &st->k_cache[l], err)) ||
            (rc = gpu_pool_alloc(&s->device, ring * KV * 2, &st->v_cache[l], err)))
            return rc;
    }
    return VKLLM_OK;
}

/* The largest batch whose activations each fit one binding. */
static uint32_t fit_batch(const struct vkllm_hparams *hp, uint32_t want, uint32_t n_ctx,
                          bool logits_all, uint64_t range)
{
    uint64_t widest = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if ((uint64_t)hp->n_head * hp->head_dim > widest) widest = (uint64_t)hp->n_head * hp->head_dim;
    if ((uint64_t)hp->n_head * n_ctx > widest) widest = (uint64_t)hp->n_head * n_ctx;
    if (logits_all && hp->n_vocab > widest) widest = hp->n_vocab;
    uint64_t most = range / (4 * widest);
    return most < want ? (uint32_t)most : want;
}

int vkllm_session_create(vkllm_model *m, const struct vkllm_session_params *params,
                         vkllm_session **out, struct vkllm_error *err)
{
    *out = NULL;
    const struct vkllm_hparams *hp = &m->hp;
    struct vk_device *dev = &m->ctx->dev;
    struct vkllm_session *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    s->m = m;
    s->n_ctx = params && params->n_ctx
                   ? params->n_ctx
                   : (hp->n_ctx_train < DEFAULT_N_CTX ? hp->n_ctx_train : DEFAULT_N_CTX);
    s->logits_all = params && params->logits_all;
    uint32_t want = params && params->n_batch ? params->n_batch : DEFAULT_N_BATCH;
    if (params && params->n_ubatch && params->n_ubatch < want) want = params->n_ubatch;
    s->n_batch = fit_batch(hp, want, s->n_ctx, s->logits_all, dev->info.max_storage_buffer_range);
    int rc = VKLLM_OK;
    uint64_t kv_layer = (uint64_t)s->n_ctx * hp->n_head_kv * hp->head_dim * 2;
    if (s->n_ctx > (1u << 24) || s->n_batch == 0 || kv_layer > dev->info.max_storage_buffer_range)
        rc = vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                        "a context of %u tokens does not fit %s's storage buffer limit", s->n_ctx,
                        dev->info.name);
    if (rc) goto fail;

    if ((rc = graph_build(&m->am, s->logits_all, &s->graph, err))) goto fail;
    rope_settings(&m->am, m->rope_freqs, s->n_ctx, s->rope);
    gpu_pool_init(&s->device, dev, GPU_POOL_DEVICE, 64ull << 20);
    gpu_pool_init(&s->host, dev, GPU_POOL_UPLOAD, 1ull << 20);
    gpu_pool_init(&s->readback, dev, GPU_POOL_READBACK, 1ull << 20);
    if ((rc = alloc_state(s, err))) goto fail;
    if ((rc = gpu_graph_create(&s->one, dev, err)) ||
        (rc = forward_record(m, &s->graph, &s->st, &s->one, 1, &s->out, err)))
        goto fail;
    if (s->n_batch > 1 &&
        ((rc = gpu_graph_create(&s->batch, dev, err)) ||
         (rc = forward_record(m, &s->graph, &s->st, &s->batch, s->n_batch, &s->out, err))))
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
    s->n_logits = 0;
    s->last_gpu_ms = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t chunk = n - i < s->n_batch ? n - i : s->n_batch;
        int rc = run_step(s, tokens + i, chunk, err);
        if (rc) return rc;
        i += chunk;
    }
    return VKLLM_OK;
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
