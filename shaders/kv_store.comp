#version 450
#extension GL_GOOGLE_include_directive : require
/* kv_store: writes the step's K and V rows to the layer's cache as half
 * floats (or Q8_0 blocks, K_Q8 and V_Q8), each at its token's position in its
 * sequence's part of the cache (modulo the part's length: a sliding-window
 * layer's cache is a ring). One thread per pair of values (per block of 32
 * with a Q8_0 cache). */
#define KERNEL_KV_STORE
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#if defined(K_Q8) || defined(V_Q8)
/* A cache of Q8_0 blocks (kv_q8.glsl) in either or both: one thread per
 * block of 32 values (the head size is a multiple of 32, budget.c checks) of
 * K and of V. Blocks are not word-aligned, so the word a block shares with
 * its neighbour is written by atomics on its own half. */
#include "kv_q8.glsl"
layout(std430, binding = 3) buffer KCache { uint k_cache[]; };
layout(std430, binding = 4) buffer VCache { uint v_cache[]; };

/* roundf's: halves away from zero */
float round_away(float x) { return sign(x) * floor(abs(x) + 0.5); }

/* The 32 floats of SRC from S0 quantized as llama.cpp's quantize_row_q8_0
 * (d = amax / 127 rounded to half; q = round(x / d) with the unrounded d)
 * to block B of BUF. */
#define Q8_STORE(SRC, S0, BUF, B)                                                                \
    {                                                                                            \
        float amax_ = 0.0;                                                                       \
        for (uint i_ = 0u; i_ < 32u; i_++) amax_ = max(amax_, abs(SRC[(S0) + i_]));             \
        const float d_ = amax_ / 127.0, id_ = d_ != 0.0 ? 1.0 / d_ : 0.0;                        \
        uint h_[17]; /* the block's 17 half-words */                                             \
        h_[0] = f32_to_f16(d_);                                                                  \
        for (uint i_ = 0u; i_ < 16u; i_++)                                                       \
            h_[i_ + 1u] = (uint(int(round_away(SRC[(S0) + 2u * i_] * id_))) & 0xffu) |           \
                          (uint(int(round_away(SRC[(S0) + 2u * i_ + 1u] * id_))) & 0xffu) << 8;  \
        const uint b_ = (B), w0_ = b_ * 17u / 2u;                                                \
        if ((b_ & 1u) == 0u) {                                                                   \
            for (uint i_ = 0u; i_ < 8u; i_++) BUF[w0_ + i_] = h_[2u * i_] | h_[2u * i_ + 1u] << 16; \
            atomicAnd(BUF[w0_ + 8u], 0xffff0000u);                                               \
            atomicOr(BUF[w0_ + 8u], h_[16]);                                                     \
        } else {                                                                                 \
            atomicAnd(BUF[w0_], 0xffffu);                                                        \
            atomicOr(BUF[w0_], h_[0] << 16);                                                     \
            for (uint i_ = 1u; i_ < 9u; i_++) BUF[w0_ + i_] = h_[2u * i_ - 1u] | h_[2u * i_] << 16; \
        }                                                                                        \
    }

/* The 32 floats of SRC from S0 as halves to words W0.. of BUF. */
#define F16_STORE(SRC, S0, BUF, W0)                                                              \
    for (uint i_ = 0u; i_ < 16u; i_++)                                                           \
        BUF[(W0) + i_] = f32_to_f16(SRC[(S0) + 2u * i_]) | (f32_to_f16(SRC[(S0) + 2u * i_ + 1u]) << 16);

void main()
{
    const uint blocks = pc.n_embd_kv / 32u;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    const uint t = i / blocks;
    if (t >= step.n_tokens) return;
    const uint j = i % blocks;
    const uint src = t * pc.n_embd_kv + 32u * j;
    const uint b = (step.rows[t].seq * pc.ring + step.rows[t].pos % pc.ring) * blocks + j;
#ifdef K_Q8
    Q8_STORE(k, src, k_cache, b);
#else
    F16_STORE(k, src, k_cache, 16u * b);
#endif
#ifdef V_Q8
    Q8_STORE(v, src, v_cache, b);
#else
    F16_STORE(v, src, v_cache, 16u * b);
#endif
}
#else
layout(std430, binding = 3) writeonly buffer KCache { uint k_cache[]; };
layout(std430, binding = 4) writeonly buffer VCache { uint v_cache[]; };

void main()
{
    uint pairs = pc.n_embd_kv / 2u;
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    uint t = i / pairs;
    if (t >= step.n_tokens) return;
    uint j = i % pairs;
    uint src = t * pc.n_embd_kv + 2u * j;
    uint dst = (step.rows[t].seq * pc.ring + step.rows[t].pos % pc.ring) * pairs + j;
    k_cache[dst] = f32_to_f16(k[src]) | (f32_to_f16(k[src + 1u]) << 16);
    v_cache[dst] = f32_to_f16(v[src]) | (f32_to_f16(v[src + 1u]) << 16);
}
#endif
