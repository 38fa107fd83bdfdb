/* forward.h: a model's graph (graph.h) recorded as dispatches, once per batch
 * size, and replayed for every step. Internal to the engine. */
#ifndef VKLLM_FORWARD_H
#define VKLLM_FORWARD_H

#include "graph.h"
#include "lora.h"
#include "model.h"
#include "ops.h"

/* Run state of a session group: activations for up to `batch` tokens (rows of
 * floats, token-major) and the KV caches of its sequences. */
struct forward_state {
    struct gpu_buf step;            /* struct step_header, step_row rows[batch] (host-visible) */
    struct gpu_buf rope[2];         /* per rotary setting: (batch, n_rot/2, 2) cos, sin (host) */
    struct gpu_buf bufs[BUF_COUNT]; /* the graph's activations, (batch, width) each */
    struct gpu_buf xq;              /* the input of quantized matvecs: op_q8_bytes(batch, widest) */
    struct gpu_buf scores;          /* (batch, n_head, n_ctx) attention scratch */
    struct gpu_buf *k_cache, *v_cache; /* per layer: (n_seq, ring, n_head_kv * head_dim) values */
    uint32_t *ring;                    /* per layer: positions its cache holds per sequence */
    uint32_t n_ctx;
    uint32_t type_k, type_v; /* the caches' types: halves, or Q8_0 blocks (enum vkllm_cache_type) */
};

/* The role a profile gives adapters' side paths (the others: the weight's
 * enum tensor_role, or T_NONE). */
#define FORWARD_ROLE_LORA 0xfe

/* Records graph GR for up to BATCH tokens into G, ending with the logits
 * copied to READBACK. Barriers are placed where a dispatch reads or
 * overwrites what an earlier one since the last barrier touched. AD are the
 * adapters GR's LORA nodes name (NULL when it has none). MIXED_ROWS: a step's
 * rows may be of different sequences (a group's decode), not one prompt's. */
int forward_record(const struct vkllm_model *m, const struct graph *gr,
                   const struct vkllm_adapter *const *ad, const struct forward_state *st,
                   struct gpu_graph *g, uint32_t batch, bool mixed_rows,
                   const struct gpu_buf *readback, struct vkllm_error *err);

#endif
