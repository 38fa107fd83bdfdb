/* forward.c: the llama forward pass, one dispatch per line. */
#include "forward.h"

int forward_record(const struct vkllm_model *m, const struct forward_state *st,
                   struct gpu_graph *g, uint32_t batch, bool logits_all,
                   const struct gpu_buf *readback, struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &m->hp;
    const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;
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
        TRY(op_matvec(&e, &L->wq, &st->xn, &st->q, false, false, GPU_NO_BARRIER, err));
        TRY(op_matvec(&e, &L->wk, &st->xn, &st->k, false, false, GPU_NO_BARRIER, err));
        TRY(op_matvec(&e, &L->wv, &st->xn, &st->v, false, false, GPU_BARRIER, err));
        TRY(op_rope(&e, &st->rope, &st->q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox,
                    GPU_NO_BARRIER, err));
        TRY(op_rope(&e, &st->rope, &st->k, hp->n_head_kv, hp->head_dim, hp->n_rot,
                    hp->rope_neox, GPU_BARRIER, err));
        TRY(op_kv_store(&e, &st->k, &st->v, &st->k_cache[l], &st->v_cache[l], kv_dim, err));
        TRY(op_attention(&e, &st->q, &st->k_cache[l], &st->v_cache[l], &st->scores, &st->att,
                         hp->head_dim, hp->n_head, hp->n_head_kv, st->n_ctx, err));
        TRY(op_matvec(&e, &L->wo, &st->att, &st->x, true, false, GPU_BARRIER, err));
        /* feed-forward */
        TRY(op_rms_norm(&e, &st->x, &L->ffn_norm, &st->xn, hp->n_embd, hp->rms_eps, err));
        TRY(op_matvec(&e, &L->w_gate, &st->xn, &st->gate, false, false, GPU_NO_BARRIER, err));
        TRY(op_matvec(&e, &L->w_up, &st->xn, &st->up, false, false, GPU_BARRIER, err));
        TRY(op_swiglu(&e, &st->gate, &st->up, &st->ffn, hp->n_ff, err));
        TRY(op_matvec(&e, &L->w_down, &st->ffn, &st->x, true, false, GPU_BARRIER, err));
    }
    TRY(op_rms_norm(&e, &st->x, &m->output_norm, &st->xn, hp->n_embd, hp->rms_eps, err));
    TRY(op_matvec(&e, &m->output, &st->xn, &st->logits, false, !logits_all, GPU_BARRIER, err));
#undef TRY

    gpu_graph_copy(g, &st->logits, readback, readback->size);
    return gpu_graph_end(g, err);
}
