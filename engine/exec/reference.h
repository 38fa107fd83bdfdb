/* reference.h: a plain float32 CPU forward pass that executes the same graph
 * as the GPU (graph.h), and its operations one by one: what the shaders are
 * checked against. Slow and simple on purpose. Internal to the engine; used by
 * tests. */
#ifndef VKLLM_REFERENCE_H
#define VKLLM_REFERENCE_H

#include "ops.h" /* struct attention_params */
#include "vkllm.h"

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (+ b[i]); LAYER_NORM subtracts
 * the mean first and divides by the deviation. B may be NULL. */
void ref_norm(const float *x, const float *w, const float *b, float *out, uint32_t n, float eps,
              bool layer_norm);
/* y[r] = sum_k W[r][k] x[k]; W is (n, k) row-major floats */
void ref_matvec(const float *w, const float *x, float *y, uint32_t n, uint32_t k);
/* K floats (a multiple of 32) as the Q8_0 blocks they quantize to stand for
 * (quant_q8_activations): what an integer-dot matvec multiplies. */
void ref_q8_round(const float *x, float *out, uint32_t k);
/* The input a weight of TYPE multiplies, as llama.cpp's CPU path (and vkllm's
 * shaders) prepare it: Q8_0-quantized activations for Q8_0/Q4_0 weights,
 * rounded to half for F16 and to bfloat16 for BF16, unchanged for the other
 * formats (the act column of formats.h). Writes K floats to OUT. */
void ref_matvec_input(uint32_t type, const float *x, float *out, uint32_t k);
/* rotates the first n_rot dims of each of n_heads heads of x by TABLE (n_rot/2 cos,sin pairs) */
void ref_rope(float *x, const float *table, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
              bool neox);
/* y = OP(y, x) element-wise (ELT_* of kernels.h) over N floats; X may be NULL
 * where OP takes no operand; for ELT_ADD_BIAS x is the bias row */
void ref_eltwise(uint32_t op, float *y, const float *x, uint32_t n, float f);
/* llama.cpp's CPU GELU: the tanh form through a half-float table */
float ref_gelu(float x);
/* one query token at position POS: q (n_head, hd) against the cached rows
 * 0..pos of k and v (n_pos, n_head_kv, hd), as P describes the scores (the
 * window, scales, soft-cap, ALiBi; its ring is ignored: these caches hold every
 * position); q and the probabilities are rounded to half, as llama.cpp does
 * before its products with a half-float cache */
void ref_attention(const float *q, const float *k, const float *v, float *out, uint32_t pos,
                   const struct attention_params *p);
/* rounds through half precision, as the GPU's KV cache stores values */
float ref_round_f16(float x);

struct ref_model;

/* Dequantizes every weight of a GGUF to floats. KV_F16 rounds the KV
 * cache to half floats as the GPU does. */
int ref_model_create(const vkllm_gguf *g, uint32_t n_ctx, bool kv_f16, struct ref_model **out,
                     struct vkllm_error *err);
void ref_model_free(struct ref_model *m);
const struct vkllm_hparams *ref_model_hparams(const struct ref_model *m);

/* Applies adapter files AD[0..N) at SCALES (NULL: 1 each) from now on, checked
 * against BASE (the GGUF the model was made from) and dequantized; empties
 * the cache. N = 0 removes them. */
int ref_model_set_adapters(struct ref_model *m, const vkllm_gguf *base, const vkllm_gguf *const *ad,
                           const float *scales, uint32_t n, struct vkllm_error *err);

/* Runs TOKEN at the next position and writes n_vocab logits. */
int ref_model_decode(struct ref_model *m, int32_t token, float *logits, struct vkllm_error *err);
void ref_model_reset(struct ref_model *m);

#endif
