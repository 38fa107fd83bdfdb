/* forward.h: the llama layer graph as a flat list of dispatches, recorded once
 * per batch size and replayed for every step. Internal to the engine. */
#ifndef VKLLM_FORWARD_H
#define VKLLM_FORWARD_H

#include "model.h"
#include "ops.h"

/* Run state of one session: activations for up to `batch` tokens (rows of
 * floats, token-major) and the KV cache. */
struct forward_state {
    struct gpu_buf step;   /* struct step_header, int32 tokens[batch] (host-visible) */
    struct gpu_buf rope;   /* (batch, n_rot/2, 2) cos, sin (host-visible) */
    struct gpu_buf x;      /* (batch, n_embd) residual stream */
    struct gpu_buf xn;     /* (batch, n_embd) normalized */
    struct gpu_buf q;      /* (batch, n_head * head_dim) */
    struct gpu_buf k, v;   /* (batch, n_head_kv * head_dim) */
    struct gpu_buf att;    /* (batch, n_head * head_dim) attention output */
    struct gpu_buf gate;   /* (batch, n_ff) */
    struct gpu_buf up;     /* (batch, n_ff) */
    struct gpu_buf ffn;    /* (batch, n_ff) silu(gate) * up */
    struct gpu_buf xq;     /* the input of quantized matvecs: op_q8_bytes(batch, widest) */
    struct gpu_buf scores; /* (batch, n_head, n_ctx) attention scratch */
    struct gpu_buf logits; /* (batch or 1, n_vocab) */
    struct gpu_buf *k_cache, *v_cache; /* per layer: (n_ctx, n_head_kv * head_dim) halves */
    uint32_t n_ctx;
};

/* Records the whole forward pass for up to BATCH tokens into G, ending with
 * the logits copied to READBACK: of every token with LOGITS_ALL, else of the
 * step's last token only. */
int forward_record(const struct vkllm_model *m, const struct forward_state *st, struct gpu_graph *g,
                   uint32_t batch, bool logits_all, const struct gpu_buf *readback,
                   struct vkllm_error *err);

#endif
