/* forward.c: the llama forward pass, one dispatch per line. */
#include "forward.h"

#include "quant.h"

/* True if W's matvec reads Q8_0-quantized activations. */
static bool quantized(const struct gpu_weight *w)
{
    return quant_format(w->type)->act == ACT_Q8;
}

/* What a matvec with W reads: X itself, or its Q8_0 quantization in XQ. */
static const struct gpu_buf *input(const struct gpu_weight *w, const struct gpu_buf *x,
                                   const struct gpu_buf *xq)
{
    return quantized(w) ? xq : x;
}

/* Quantizes X into st->xq when any of the weights about to read it (with
 * LAST_ONLY) needs that. */
static int prepare(struct op_env *e, const struct forward_state *st, const struct gpu_buf *x,
                   uint32_t k, bool last_only, const struct gpu_weight *a,
                   const struct gpu_weight *b, const struct gpu_weight *c, struct vkllm_error *err)
{
    if (quantized(a) || (b && quantized(b)) || (c && quantized(c)))
        return op_quantize_q8(e, x, &st->xq, k, last_only, err);
    return VKLLM_OK;
}

int forward_record(const struct vkllm_model *m, const struct forward_state *st, struct gpu_graph *g,
                   uint32_t batch, bool logits_all, const struct gpu_buf *readback,
                   struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &m->hp;
    const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;
    const uint32_t q_dim = hp->n_head * hp->head_dim;
    const struct gpu_buf *xq = &st->xq;
    struct op_env e = {m->ctx, g, st->step, batch};
    int rc = gpu_graph_begin(g, err);
    if (rc) return rc;

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((rc = (call))) return rc;                                                              \
    } while (0)

    TRY(op_get_rows(&e, &m->tok_embd, &st->x, err));
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct gpu_layer *L = &m->layers[l];
        /* attention */
        TRY(op_rms_norm(&e, &st->x, &L->attn_norm, &st->xn, hp->n_embd, hp->rms_eps, err));
        TRY(prepare(&e, st, &st->xn, hp->n_embd, false, &L->wq, &L->wk, &L->wv, err));
        TRY(op_matvec(&e, &L->wq, input(&L->wq, &st->xn, xq), &st->q, false, false, GPU_NO_BARRIER,
                      err));
        TRY(op_matvec(&e, &L->wk, input(&L->wk, &st->xn, xq), &st->k, false, false, GPU_NO_BARRIER,
                      err));
        TRY(op_matvec(&e, &L->wv, input(&L->wv, &st->xn, xq), &st->v, false, false, GPU_BARRIER,
                      err));
        TRY(op_rope(&e, &st->rope, &st->q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox,
                    GPU_NO_BARRIER, err));
        TRY(op_rope(&e, &st->rope, &st->k, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox,
                    GPU_BARRIER, err));
        TRY(op_kv_store(&e, &st->k, &st->v, &st->k_cache[l], &st->v_cache[l], kv_dim, err));
        TRY(op_attention(&e, &st->q, &st->k_cache[l], &st->v_cache[l], &st->scores, &st->att,
                         hp->head_dim, hp->n_head, hp->n_head_kv, st->n_ctx, err));
        TRY(prepare(&e, st, &st->att, q_dim, false, &L->wo, NULL, NULL, err));
        TRY(op_matvec(&e, &L->wo, input(&L->wo, &st->att, xq), &st->x, true, false, GPU_BARRIER,
                      err));
        /* feed-forward */
        TRY(op_rms_norm(&e, &st->x, &L->ffn_norm, &st->xn, hp->n_embd, hp->rms_eps, err));
        TRY(prepare(&e, st, &st->xn, hp->n_embd, false, &L->w_gate, &L->w_up, NULL, err));
        TRY(op_matvec(&e, &L->w_gate, input(&L->w_gate, &st->xn, xq), &st->gate, false, false,
                      GPU_NO_BARRIER, err));
        TRY(op_matvec(&e, &L->w_up, input(&L->w_up, &st->xn, xq), &st->up, false, false,
                      GPU_BARRIER, err));
        TRY(op_swiglu(&e, &st->gate, &st->up, &st->ffn, hp->n_ff, err));
        TRY(prepare(&e, st, &st->ffn, hp->n_ff, false, &L->w_down, NULL, NULL, err));
        TRY(op_matvec(&e, &L->w_down, input(&L->w_down, &st->ffn, xq), &st->x, true, false,
                      GPU_BARRIER, err));
    }
    TRY(op_rms_norm(&e, &st->x, &m->output_norm, &st->xn, hp->n_embd, hp->rms_eps, err));
    TRY(prepare(&e, st, &st->xn, hp->n_embd, !logits_all, &m->output, NULL, NULL, err));
    TRY(op_matvec(&e, &m->output, input(&m->output, &st->xn, xq), &st->logits, false, !logits_all,
                  GPU_BARRIER, err));
#undef TRY

    gpu_graph_copy(g, &st->logits, readback, readback->size);
    return gpu_graph_end(g, err);
}
