/* ops.h: one function per kernel, recording it into a graph with its push
 * constants, workgroup count and barrier. The forward pass (forward.c) and the
 * kernel tests call these. Every op runs on the tokens of the step header
 * (binding 0, STEP); BATCH is the most tokens the graph is recorded for.
 * Internal to the engine. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include "vk_commands.h"
#include "weights.h"

struct op_env {
    struct vkllm_context *ctx;
    struct gpu_graph *graph;
    struct gpu_buf step; /* struct step_header + int32 tokens[batch] */
    uint32_t batch;
};

/* out[t] = row tokens[t] of TABLE, as floats. */
int op_get_rows(struct op_env *e, const struct gpu_weight *table, const struct gpu_buf *out,
                struct vkllm_error *err);

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, rows of N floats. */
int op_rms_norm(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *w,
                const struct gpu_buf *out, uint32_t n, float eps, struct vkllm_error *err);

/* XQ = X quantized to Q8_0 blocks, K floats per token (a multiple of 32): the
 * input of a quantized op_matvec with the same LAST_ONLY. When that matvec runs
 * as a GEMM, XQ gets the values the blocks stand for, as floats. XQ holds
 * op_q8_bytes(batch, k) bytes. */
int op_quantize_q8(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *xq, uint32_t k,
                   bool last_only, struct vkllm_error *err);
uint64_t op_q8_bytes(uint32_t batch, uint32_t k);

/* y[t] (+)= W x[t]. ACC adds into y. LAST_ONLY: only the last token, to row 0.
 * For quantized W, X is the output of op_quantize_q8; otherwise floats. */
int op_matvec(struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x,
              const struct gpu_buf *y, bool acc, bool last_only, enum gpu_sync sync,
              struct vkllm_error *err);

/* Whether op_matvec runs as a GEMM (a graph of GEMM_MIN_BATCH tokens or more,
 * all of them wanted, on a context that did not force "no-gemm"): a workgroup
 * then takes a tile of tokens and rows, and each output sums its k products
 * in one thread, in order. Below that batch a tile would be mostly empty. */
#define GEMM_MIN_BATCH 16
bool op_matvec_uses_gemm(const struct op_env *e, bool last_only);

/* Rotates x in place: N_HEADS heads of HEAD_DIM per token, the first N_ROT of
 * each, by TABLE (per token: n_rot/2 pairs of cos, sin). */
int op_rope(struct op_env *e, const struct gpu_buf *table, const struct gpu_buf *x,
            uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, bool neox, enum gpu_sync sync,
            struct vkllm_error *err);

/* Appends K and V (N_EMBD_KV floats per token) to the half-float caches. */
int op_kv_store(struct op_env *e, const struct gpu_buf *k, const struct gpu_buf *v,
                const struct gpu_buf *k_cache, const struct gpu_buf *v_cache, uint32_t n_embd_kv,
                struct vkllm_error *err);

/* out = causal softmax(q K^T / sqrt(head_dim)) V over cached positions;
 * SCORES holds batch * n_head * n_ctx floats. */
int op_attention(struct op_env *e, const struct gpu_buf *q, const struct gpu_buf *k_cache,
                 const struct gpu_buf *v_cache, const struct gpu_buf *scores,
                 const struct gpu_buf *out, uint32_t head_dim, uint32_t n_head, uint32_t n_head_kv,
                 uint32_t n_ctx, struct vkllm_error *err);

/* out = silu(gate) * up, N floats per token. */
int op_swiglu(struct op_env *e, const struct gpu_buf *gate, const struct gpu_buf *up,
              const struct gpu_buf *out, uint32_t n, struct vkllm_error *err);

#endif
