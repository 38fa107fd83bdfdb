#version 450
#extension GL_GOOGLE_include_directive : require
/* rope_kv_store: rope.comp on Q and K, then kv_store.comp, as one dispatch (a
 * decode step is mostly launches on a small model): rotates Q in place, and
 * writes K rotated and V to the layer's cache, halves or Q8_0 blocks (K_Q8,
 * V_Q8). K's buffer keeps its unrotated values: a thread rotates the values
 * it stores from their unrotated pairs. The float operations are rope.comp's
 * and kv_store.comp's, so the bits are too. Per token, a thread per rotated
 * pair of Q, then one per pair of K and V values (per block of 32 with a
 * Q8_0 cache). */
#define KERNEL_ROPE_KV_STORE
#include "kernels.h"
#include "common.glsl"
#include "kv_q8.glsl"

layout(std430, binding = 1) readonly buffer Table { float table[]; };
layout(std430, binding = 2) buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer K { float k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) buffer KCache { uint k_cache[]; };
layout(std430, binding = 6) buffer VCache { uint v_cache[]; };

#if defined(K_Q8) || defined(V_Q8)
#define UNIT 32u
#else
#define UNIT 2u
#endif

/* Rotated pair P of the head at BASE of buffer X (table row T): rope.comp's. */
#define ROPE_PAIR(X, BASE, T, P, Y0, Y1)                                                         \
    {                                                                                            \
        const float c_ = table[(T) * pc.n_rot + 2u * (P)];                                       \
        const float s_ = table[(T) * pc.n_rot + 2u * (P) + 1u];                                  \
        const uint a_ = (BASE) + (pc.neox != 0u ? (P) : 2u * (P));                               \
        const uint b_ = pc.neox != 0u ? a_ + pc.n_rot / 2u : a_ + 1u;                            \
        const float x0_ = X[a_], x1_ = X[b_];                                                    \
        Y0 = x0_ * c_ - x1_ * s_;                                                                \
        Y1 = x0_ * s_ + x1_ * c_;                                                                \
    }

/* Value I of token T's K row (N_EMBD_KV floats) as rope.comp leaves it. */
float k_rotated(uint t, uint n_embd_kv, uint i)
{
    const uint d = i % pc.head_dim, base = t * n_embd_kv + i - d;
    if (d >= pc.n_rot) return k[t * n_embd_kv + i];
    const uint half_rot = pc.n_rot / 2u;
    const bool second = pc.neox != 0u ? d >= half_rot : (d & 1u) != 0u;
    const uint p = pc.neox != 0u ? (second ? d - half_rot : d) : d / 2u;
    precise float y0, y1;
    ROPE_PAIR(k, base, t, p, y0, y1);
    return second ? y1 : y0;
}

void main()
{
    const uint q_pairs = pc.n_head * (pc.n_rot / 2u);
    const uint n_embd_kv = pc.n_head_kv * pc.head_dim;
    const uint units = n_embd_kv / UNIT;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    const uint t = i / (q_pairs + units);
    if (t >= step.n_tokens) return;
    const uint j = i % (q_pairs + units);
    if (j < q_pairs) {
        const uint half_rot = pc.n_rot / 2u, p = j % half_rot;
        const uint base = t * pc.n_head * pc.head_dim + (j / half_rot) * pc.head_dim;
        precise float y0, y1;
        ROPE_PAIR(q, base, t, p, y0, y1);
        const uint a = base + (pc.neox != 0u ? p : 2u * p);
        q[a] = y0;
        q[pc.neox != 0u ? a + half_rot : a + 1u] = y1;
        return;
    }
    const uint u = j - q_pairs, src = t * n_embd_kv + UNIT * u;
    const uint slot = step.rows[t].seq * pc.ring + step.rows[t].pos % pc.ring;
    float kr[UNIT];
    for (uint e = 0u; e < UNIT; e++) kr[e] = k_rotated(t, n_embd_kv, UNIT * u + e);
#ifdef K_Q8
    Q8_STORE(kr, 0u, k_cache, slot * units + u);
#else
    for (uint w = 0u; w < UNIT / 2u; w++)
        k_cache[slot * (n_embd_kv / 2u) + u * (UNIT / 2u) + w] =
            f32_to_f16(kr[2u * w]) | (f32_to_f16(kr[2u * w + 1u]) << 16);
#endif
#ifdef V_Q8
    Q8_STORE(v, src, v_cache, slot * units + u);
#else
    for (uint w = 0u; w < UNIT / 2u; w++)
        v_cache[slot * (n_embd_kv / 2u) + u * (UNIT / 2u) + w] =
            f32_to_f16(v[src + 2u * w]) | (f32_to_f16(v[src + 2u * w + 1u]) << 16);
#endif
}
