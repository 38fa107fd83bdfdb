#version 450
#extension GL_GOOGLE_include_directive : require
/* attention: softmax(q K^T * scale) V for one query head of one token per
 * workgroup, over the cached positions 0..pos (causal). Scores go to a scratch
 * row in global memory so any context length fits; the KV cache is half floats.
 * Grouped-query attention: query head h reads KV head h / (n_head / n_head_kv).
 * As in llama.cpp's CPU path, q and the normalized probabilities are rounded to
 * half before their products with the half-float K and V. */
#define KERNEL_ATTENTION
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KCache { uint k_cache[]; };
layout(std430, binding = 3) readonly buffer VCache { uint v_cache[]; };
layout(std430, binding = 4) coherent buffer Scores { float scores[]; };
layout(std430, binding = 5) writeonly buffer Out { float o[]; };

shared float qs[MAX_HEAD_DIM];
shared float red[WG];
shared float partial[WG + MAX_HEAD_DIM];

void reduce_max(uint tid)
{
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
}

void reduce_sum(uint tid)
{
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
}

void main()
{
    const uint gid = group_index();
    const uint t = gid / pc.n_head;
    if (t >= step.n_tokens) return;
    const uint h = gid % pc.n_head;
    const uint tid = gl_LocalInvocationID.x;
    const uint hd = pc.head_dim;
    const uint kvh = h / (pc.n_head / pc.n_head_kv);
    const uint kv_words = pc.n_head_kv * hd / 2u; /* per position */
    const uint head_word = kvh * hd / 2u;
    const uint q_off = (t * pc.n_head + h) * hd;
    const uint n_pos = step.pos0 + t + 1u;
    const uint srow = (t * pc.n_head + h) * pc.n_ctx;

    for (uint d = tid; d < hd; d += WG) qs[d] = round_f16(q[q_off + d]);
    barrier();

    /* scores and their maximum */
    float m = -1.0 / 0.0;
    for (uint j = tid; j < n_pos; j += WG) {
        const uint kb = j * kv_words + head_word;
        float s = 0.0;
        for (uint i = 0u; i < hd / 2u; i++) {
            const vec2 kk = unpackHalf2x16(k_cache[kb + i]);
            s += qs[2u * i] * kk.x + qs[2u * i + 1u] * kk.y;
        }
        s *= pc.scale;
        scores[srow + j] = s;
        m = max(m, s);
    }
    red[tid] = m;
    reduce_max(tid);
    m = red[0];
    barrier();

    /* exponentials and their sum */
    float sum = 0.0;
    for (uint j = tid; j < n_pos; j += WG) {
        const float e = exp(scores[srow + j] - m);
        scores[srow + j] = e;
        sum += e;
    }
    red[tid] = sum;
    reduce_sum(tid);
    const float inv_sum = 1.0 / red[0];
    for (uint j = tid; j < n_pos; j += WG) scores[srow + j] = round_f16(scores[srow + j] * inv_sum);
    memoryBarrierBuffer(); /* other threads read these probabilities below */
    barrier();

    /* weighted sum of V: D threads across the head's dimensions, G groups of
     * them across positions, then the groups' partial sums are added */
    const uint D = min(hd, WG);
    const uint G = WG / D;
    if (tid < D * G) {
        const uint g = tid / D;
        for (uint d = tid % D; d < hd; d += D) {
            float acc = 0.0;
            const uint half_index = head_word * 2u + d;
            for (uint j = g; j < n_pos; j += G) {
                const vec2 vv = unpackHalf2x16(v_cache[j * kv_words + (half_index >> 1)]);
                acc += scores[srow + j] * ((half_index & 1u) == 0u ? vv.x : vv.y);
            }
            partial[g * hd + d] = acc;
        }
    }
    barrier();
    for (uint d = tid; d < hd; d += WG) {
        float acc = 0.0;
        for (uint g = 0u; g < G; g++) acc += partial[g * hd + d];
        o[q_off + d] = acc;
    }
}
