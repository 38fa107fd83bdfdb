#version 450
#extension GL_GOOGLE_include_directive : require
/* kv_store: writes the step's K and V rows to the layer's cache as half
 * floats, each at its token's position in its sequence's part of the cache
 * (modulo the part's length: a sliding-window layer's cache is a ring). One
 * thread per pair of values. */
#define KERNEL_KV_STORE
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
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
