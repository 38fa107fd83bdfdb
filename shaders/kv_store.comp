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
 * K and of V. */
#include "kv_q8.glsl"
layout(std430, binding = 3) buffer KCache { uint k_cache[]; };
layout(std430, binding = 4) buffer VCache { uint v_cache[]; };

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
