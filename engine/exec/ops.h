/* ops.h: one function per kernel, recording it into a graph with its push
 * constants and workgroup count. The forward pass (forward.c) and the kernel
 * tests call these. Every op runs on the tokens of the step header (binding 0,
 * STEP); BATCH is the most tokens the graph is recorded for. Each op ends with
 * SYNC: a barrier (the default, for tests that run one op after another), or
 * none when the caller places the barriers itself. Internal to the engine. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include "vk_commands.h"
#include "weights.h"

struct op_env {
    struct vkllm_context *ctx;
    struct gpu_graph *graph;
    struct gpu_buf step; /* struct step_header + struct step_row rows[batch] (kernels.h) */
    uint32_t batch;
    enum gpu_sync sync; /* after each op */
    /* the step's rows may be of several sequences (a group's decode): the
     * attention is not tiled, and matmuls stay matvecs so that each row's
     * results are its one-token decode's, bit for bit */
    bool mixed_rows;
};

/* Bytes of a step buffer for BATCH tokens. */
uint64_t op_step_bytes(uint32_t batch);
/* Writes STEP for a prompt's step: N TOKENS of sequence SEQ at positions
 * POS0 onwards. */
void op_step_prompt(const struct gpu_buf *step, const int32_t *tokens, uint32_t n, uint32_t pos0,
                    uint32_t seq);

/* out[t] = row tokens[t] of TABLE as floats, or with BY_POSITION the row of t's position;
 * ACC adds it to out[t]. */
int op_get_rows(struct op_env *e, const struct gpu_weight *table, const struct gpu_buf *out,
                bool by_position, bool acc, struct vkllm_error *err);

/* out = x / sqrt(mean(x^2) + eps) * w (+ b), over rows of N floats, ROWS of
 * them per token; LAYER_NORM subtracts each row's mean first and divides by
 * the deviation; ROW_WEIGHTS: W holds N weights for each of the ROWS. B may be
 * NULL; OUT may be X. */
int op_norm(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *w,
            const struct gpu_buf *b, const struct gpu_buf *out, uint32_t n, uint32_t rows,
            float eps, bool layer_norm, bool row_weights, struct vkllm_error *err);

/* op_norm with rows of a multiple of 32 floats, whose output also goes to
 * XQ quantized, as op_quantize_q8 (k = N * ROWS, LAST_ONLY for the matvec
 * that reads it) would write it from OUT: one dispatch instead of two. */
int op_norm_q8(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *w,
               const struct gpu_buf *b, const struct gpu_buf *out, const struct gpu_buf *xq,
               uint32_t n, uint32_t rows, float eps, bool layer_norm, bool row_weights,
               bool last_only, struct vkllm_error *err);

/* XQ = X quantized to Q8_0 blocks, K floats per token (a multiple of 32): the
 * input of a quantized op_matvec with the same LAST_ONLY. When that matvec runs
 * as a GEMM, XQ gets the values the blocks stand for, as floats. XQ holds
 * op_q8_bytes(batch, k) bytes. */
int op_quantize_q8(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *xq, uint32_t k,
                   bool last_only, struct vkllm_error *err);
uint64_t op_q8_bytes(uint32_t batch, uint32_t k);

/* The decode matvec's rows per thread group where no tuning says otherwise. */
#define OP_MATVEC_ROWS 2
/* Whether the matvec of TYPE on C has the variant that gives a lane a word
 * of quants at a time (tune_table.h's "words"; Q4_K and Q6_K, on the float
 * path: the integer-dot one takes a sub-block a lane). */
bool op_matvec_by_word(const struct vkllm_context *c, uint32_t type);

/* Whether op_matvec of a TYPE weight with LAST_ONLY sums packed 4x8-bit
 * integer dots: a block format, not run as a GEMM, on a context whose
 * matvec_int_dot is on (the device has the instructions in hardware or is
 * a CPU, or VKLLM_FORCE says "int-dot"). */
bool op_matvec_int_dot(const struct op_env *e, uint32_t type, bool last_only);
/* Whether that matvec's input X is op_quantize_q8's output (with the same
 * LAST_ONLY) rather than floats: for Q4_0 and Q8_0 always (their
 * activations are Q8_0, as llama.cpp's CPU backend makes them), for the
 * other block formats on the integer-dot path, and for Q4_K and Q6_K through
 * a GEMM in token pairs (ops.c). */
bool op_matvec_takes_q8(const struct op_env *e, uint32_t type, bool last_only);

/* y[t] (+)= W x[t]. ACC adds into y. LAST_ONLY: only the last token, to row 0.
 * X as op_matvec_takes_q8 says. */
int op_matvec(struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x,
              const struct gpu_buf *y, bool acc, bool last_only, struct vkllm_error *err);

/* Whether op_matvec runs as a GEMM (a graph of GEMM_MIN_BATCH tokens or more,
 * all of them wanted, rows not mixed, on a context that did not force
 * "no-gemm"): a workgroup
 * then takes a tile of tokens and rows, and each output sums its k products
 * in one thread, in order. Below that batch a tile would be mostly empty. */
#define GEMM_MIN_BATCH 16
bool op_matvec_uses_gemm(const struct op_env *e, bool last_only);
/* Whether that GEMM runs on matrix units (or their emulation: the context's
 * gemm_coop), its weights and inputs rounded to half floats: block formats */
bool op_matvec_uses_coop(const struct op_env *e, uint32_t type, bool last_only);

/* Rotates x in place: N_HEADS heads of HEAD_DIM per token, the first N_ROT of
 * each, by TABLE (per token: n_rot/2 pairs of cos, sin). */
int op_rope(struct op_env *e, const struct gpu_buf *table, const struct gpu_buf *x,
            uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, bool neox,
            struct vkllm_error *err);

/* Writes K and V (N_EMBD_KV floats per token) to the caches, of types TYPE_K
 * and TYPE_V (enum vkllm_cache_type: halves, or Q8_0 blocks when N_EMBD_KV is
 * a multiple of 32), which hold RING positions per sequence (position p of
 * sequence s in slot s * ring + p % ring). */
int op_kv_store(struct op_env *e, const struct gpu_buf *k, const struct gpu_buf *v,
                const struct gpu_buf *k_cache, const struct gpu_buf *v_cache, uint32_t n_embd_kv,
                uint32_t ring, uint32_t type_k, uint32_t type_v, struct vkllm_error *err);

/* The shapes op_rope_kv_store works on. */
struct rope_kv_shape {
    uint32_t n_head, n_head_kv, head_dim;
    uint32_t n_rot; /* leading dimensions of each head that rotate */
    bool neox;
    uint32_t ring;           /* positions the cache holds per sequence */
    uint32_t type_k, type_v; /* the caches' types: enum vkllm_cache_type */
};

/* op_rope of Q and of K by TABLE, then op_kv_store, in one dispatch: Q
 * rotated in place, K rotated into the cache (K itself is left as it was)
 * and V stored, with the same bits as the three ops. */
int op_rope_kv_store(struct op_env *e, const struct gpu_buf *table, const struct gpu_buf *q,
                     const struct gpu_buf *k, const struct gpu_buf *v,
                     const struct gpu_buf *k_cache, const struct gpu_buf *v_cache,
                     const struct rope_kv_shape *s, struct vkllm_error *err);

/* What shapes an attention's scores (push_attention in kernels.h says how
 * each is applied). */
struct attention_params {
    uint32_t head_dim, n_head, n_head_kv;
    uint32_t n_ctx;  /* floats per row of the score scratch */
    uint32_t ring;   /* positions the cache holds */
    uint32_t window; /* 0: every earlier position */
    float q_scale, kq_scale, softcap;
    float alibi_max_bias;    /* 0: no ALiBi */
    uint32_t type_k, type_v; /* the cache's types: enum vkllm_cache_type */
};

/* The ALiBi slopes' bases as llama.cpp derives them from the maximum bias:
 * M0 for the first *HEADS (a power of two) heads, M1 for the rest. */
void attention_alibi(uint32_t n_head, float max_bias, float *m0, float *m1, uint32_t *heads);

/* out = causal softmax(score(q, K)) V over cached positions; SCORES holds
 * batch * n_head * n_ctx floats. A graph of ATTENTION_TILED_MIN_BATCH tokens
 * or more runs it in tiles of queries that share K and V loads (unless the
 * context forced "no-tiled-attention", the rows are mixed, or head_dim is not
 * a multiple of 8); decode, a query per (token, head). */
#define ATTENTION_TILED_MIN_BATCH 8
/* On a CPU device a tiled lane holds R queries, R = ATTENTION_TILED_LANE_FLOATS
 * / head_dim within [1, ATTENTION_TILED_MAX_R]: each K and V load serves R
 * queries per lane, which keeps R * head_dim floats of queries and as many of
 * sums. Measured on lavapipe (docs/PERFORMANCE.md, 2026-12-03, fourth
 * session): 256 floats 1.3-1.6x faster than 128; 512 no faster at head_dim
 * 32, 1.4x at 64, but three to four times slower to compile */
#define ATTENTION_TILED_LANE_FLOATS 256
#define ATTENTION_TILED_MAX_R       8
/* Decode split over positions: a workgroup takes up to the context's
 * attention_split_heads query heads of one KV head, at most
 * ATTENTION_SPLIT_LANE_FLOATS / head_dim, each K and V load serving them all
 * (a lane keeps their queries and sums) */
#define ATTENTION_SPLIT_LANE_FLOATS 256
int op_attention(struct op_env *e, const struct gpu_buf *q, const struct gpu_buf *k_cache,
                 const struct gpu_buf *v_cache, const struct gpu_buf *scores,
                 const struct gpu_buf *out, const struct attention_params *p,
                 struct vkllm_error *err);

/* y = OP(y, x) element-wise (ELT_* in kernels.h), N floats per token, F its
 * parameter; X may be NULL for operations without one; LAST_ONLY: row 0 only. */
int op_eltwise(struct op_env *e, uint32_t op, const struct gpu_buf *y, const struct gpu_buf *x,
               uint32_t n, float f, bool last_only, struct vkllm_error *err);
/* op_eltwise with N a multiple of 32, whose result also goes to XQ quantized,
 * as op_quantize_q8 (k = N, READER_LAST_ONLY for the matvec that reads it)
 * would write it from Y: one dispatch instead of two. */
int op_eltwise_q8(struct op_env *e, uint32_t op, const struct gpu_buf *y, const struct gpu_buf *x,
                  const struct gpu_buf *xq, uint32_t n, float f, bool last_only,
                  bool reader_last_only, struct vkllm_error *err);

#endif
