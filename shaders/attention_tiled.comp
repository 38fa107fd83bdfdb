#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef TEXEL_KV
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
/* attention_tiled: attention.comp's arithmetic for a prompt, a workgroup per
 * tile of BR consecutive tokens (of one sequence, at consecutive positions:
 * a prompt's step) times HQ query heads that share one KV head
 * (grouped-query attention), so that each K and V row loaded serves the
 * QT = BR * HQ queries of the tile instead of one.
 *
 * A lane per query, R queries per lane (query i = lane + WG r), each holding
 * its query and its output row in registers: the K and V rows of a position
 * are the same for every lane, read as 8 halves at a time, and every half
 * feeds R products in each lane. On lavapipe (a CPU device, subgroups of 8)
 * every load whose address is not built from constants and push constants
 * alone becomes a loop over the lanes, a few tens of instructions whatever
 * the load's width: the cost is the count of loads. The previous version (a
 * lane per position, the softmax in passes over a global scratch row) spent
 * about 32 such loads per position of an 8-query tile; this one spends 3 HD/8
 * per position of a WG R-query tile (no scratch, no shared memory, no
 * barrier), and registers it spills are plain loads at constant offsets.
 *
 * Two passes over the positions so that the probabilities are attention.comp's,
 * normalized and rounded to half before the V products (as llama.cpp's CPU
 * path): the first keeps each query's running maximum and sum of
 * exponentials (rescaled when the maximum grows); the second computes the
 * scores again, the probabilities, and the V sums, in position order. The
 * tile walks the union of its queries' ranges, from the first token's first
 * position to the last token's own; a position outside a query's range adds
 * nothing to it. Queries past the step's tokens or the group's heads repeat
 * the last real one and write nothing. HD is a multiple of 8 (ops.c). */
#define KERNEL_ATTENTION
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint BR = 8;  /* tokens per tile */
layout(constant_id = 2) const uint HQ = 2;  /* query heads per tile, of one KV head */
layout(constant_id = 3) const uint HD = 64; /* head_dim (a multiple of 8) */
layout(constant_id = 4) const uint R = 1;   /* queries per lane: BR * HQ <= WG * R */
const uint QT = BR * HQ;
const uint HW = HD / 2u; /* words per K or V row of a head */
const uint H8 = HD / 8u; /* uvec4s per K or V row of a head */

layout(std430, binding = 1) readonly buffer Q { vec4 q4[]; };
#if defined(K_Q8) || defined(V_Q8)
/* K's (K_Q8) or V's (V_Q8) cache in Q8_0 blocks (kv_q8.glsl): 9 loads per 32
 * values; the head size is then a multiple of 32 (budget.c) */
#include "kv_q8.glsl"
#endif
/* A K or V row at uvec4 BASE of SRC, as halves 8c .. 8c+7 in LO and HI
 * for c < H8: ROW_FETCH once per row, then ROW_PART for each c. */
#ifdef TEXEL_KV
/* an F16 cache through uniform texel buffers (a CPU device; ops.c): every
 * lane needs the same row, which lavapipe fetches from a texel buffer as a
 * 16-byte load per lane, from a storage buffer as a loop over the lanes, one
 * component at a time. Lane l fetches and converts the row's uvec4s l, l +
 * 8, ...; the others come from it by shuffles from constant lanes (a
 * permute), so the halves are converted once, not in every lane. */
#if defined(K_Q8) || defined(V_Q8)
#error "texel K and V rows are uvec4s of halves"
#endif
layout(binding = 2) uniform usamplerBuffer k_cache;
layout(binding = 3) uniform usamplerBuffer v_cache;
const uint G8 = (H8 + 7u) / 8u; /* uvec4s of a row a lane fetches */
#define ROW_FETCH(SRC, BASE, LO, HI)                                                             \
    vec4 LO[G8], HI[G8];                                                                         \
    [[unroll]] for (uint g_ = 0u; g_ < G8; g_++)                                                 \
        unpack8(texelFetch(SRC, int((BASE) + min(8u * g_ + gl_SubgroupInvocationID % 8u, H8 - 1u))), \
                LO[g_], HI[g_])
#define ROW_PART(SRC, BASE, LO, HI, C, lo, hi)                                                   \
    lo = subgroupShuffle(LO[(C) / 8u], (C) % 8u);                                                \
    hi = subgroupShuffle(HI[(C) / 8u], (C) % 8u)
#else
#ifdef K_Q8
layout(std430, binding = 2) readonly buffer KCache { uint k_cache[]; };
#else
layout(std430, binding = 2) readonly buffer KCache { uvec4 k_cache[]; };
#endif
#ifdef V_Q8
layout(std430, binding = 3) readonly buffer VCache { uint v_cache[]; };
#else
layout(std430, binding = 3) readonly buffer VCache { uvec4 v_cache[]; };
#endif
#define ROW_FETCH(SRC, BASE, LO, HI)
#define ROW_PART(SRC, BASE, LO, HI, C, lo, hi) unpack8(SRC[(BASE) + (C)], lo, hi)
#endif
/* binding 4, the untiled kernel's score scratch, is not used */
layout(std430, binding = 5) writeonly buffer Out { vec4 o4[]; };

/* The first position token T attends to. */
uint first_of(uint t)
{
    const uint pos = step.rows[t].pos;
    return pc.window > 0u && pos >= pc.window ? pos - pc.window + 1u : 0u;
}

float slope_of(uint h)
{
    if (pc.alibi_heads == 0u) return 0.0;
    return h < pc.alibi_heads ? pow(pc.alibi_m0, float(h + 1u))
                              : pow(pc.alibi_m1, float(2u * (h - pc.alibi_heads) + 1u));
}

/* The 8 halves of a K or V uvec4 as floats. */
void unpack8(uvec4 w, out vec4 lo, out vec4 hi)
{
    const vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y);
    const vec2 c = unpackHalf2x16(w.z), d = unpackHalf2x16(w.w);
    lo = vec4(a, b);
    hi = vec4(c, d);
}

void main()
{
    const uint group = pc.n_head / pc.n_head_kv;
    const uint head_tiles = (group + HQ - 1u) / HQ;
    const uint gid = group_index();
    const uint t0 = gid / (pc.n_head_kv * head_tiles) * BR;
    if (t0 >= step.n_tokens) return; /* the whole workgroup */
    const uint kvh = gid / head_tiles % pc.n_head_kv;
    const uint h0 = kvh * group + gid % head_tiles * HQ;
    const uint n_t = min(BR, step.n_tokens - t0), n_h = min(HQ, kvh * group + group - h0);
    const uint lane = gl_LocalInvocationID.x;

    /* the lane's queries: query i = lane + WG r is token t0 + i / HQ, head
     * h0 + i % HQ, rounded to half as attention.comp rounds them */
    uint out_at[R]; /* its output row, in vec4s */
    uint last[R];   /* the last position it attends to (its own) */
    uint first[R];  /* the first */
    float slope[R];
    bool live[R]; /* a real query, not a repeat */
    vec4 qv[R][2u * H8];
    [[unroll]] for (uint r = 0u; r < R; r++)
    {
        const uint i = min(lane + WG * r, QT - 1u);
        const uint t = t0 + min(i / HQ, n_t - 1u), h = h0 + min(i % HQ, n_h - 1u);
        out_at[r] = (t * pc.n_head + h) * (HD / 4u);
        last[r] = step.rows[t].pos;
        first[r] = first_of(t);
        slope[r] = slope_of(h);
        live[r] = lane + WG * r < QT && i / HQ < n_t && i % HQ < n_h;
        [[unroll]] for (uint c = 0u; c < 2u * H8; c++)
        {
            const vec4 x = q4[out_at[r] + c] * pc.q_scale;
            qv[r][c] = vec4(round_f16(x.x), round_f16(x.y), round_f16(x.z), round_f16(x.w));
        }
    }
    /* the positions the tile walks: u0 + j for j < n_pos (< ring) */
    const uint u0 = first_of(t0), n_pos = step.rows[t0 + n_t - 1u].pos + 1u - u0;
    const uint u0_slot = u0 % pc.ring, kv_rows = pc.n_head_kv * H8, head_row = kvh * H8;
    const uint seq_row = step.rows[t0].seq * pc.ring * kv_rows; /* its sequence's cache */
#if defined(K_Q8) || defined(V_Q8)
    /* the same in Q8_0 blocks */
    const uint kv_blocks = pc.n_head_kv * HD / 32u;
    const uint seq_block = step.rows[t0].seq * pc.ring * kv_blocks + kvh * (HD / 32u);
#endif
#ifdef K_Q8
    /* s[r] += the dot products of the lanes' queries with the K row at block KQ */
#define K_DOTS(KQ)                                                                               \
    [[unroll]] for (uint c = 0u; c < HD / 32u; c++)                                              \
    {                                                                                            \
        float d, sb[R];                                                                          \
        uint qw[8];                                                                              \
        Q8_LOAD(k_cache, (KQ) + c, d, qw);                                                       \
        [[unroll]] for (uint r = 0u; r < R; r++) sb[r] = 0.0;                                    \
        [[unroll]] for (uint k = 0u; k < 8u; k++)                                                \
        {                                                                                        \
            const vec4 x = q8_unpack4(qw[k]);                                                    \
            [[unroll]] for (uint r = 0u; r < R; r++) sb[r] += dot(qv[r][8u * c + k], x);         \
        }                                                                                        \
        [[unroll]] for (uint r = 0u; r < R; r++) s[r] += d * sb[r];                              \
    }
#endif

    /* pass 1: each query's maximum score and sum of exponentials */
    float m[R], l[R];
    [[unroll]] for (uint r = 0u; r < R; r++) m[r] = -1.0 / 0.0, l[r] = 0.0;
    uint slot = u0_slot;
    for (uint j = 0u; j < n_pos; j++) {
        const uint kb = seq_row + slot * kv_rows + head_row;
        float s[R];
        [[unroll]] for (uint r = 0u; r < R; r++) s[r] = 0.0;
#ifdef K_Q8
        K_DOTS(seq_block + slot * kv_blocks);
#else
        ROW_FETCH(k_cache, kb, k_lo, k_hi);
        [[unroll]] for (uint c = 0u; c < H8; c++)
        {
            vec4 lo, hi;
            ROW_PART(k_cache, kb, k_lo, k_hi, c, lo, hi);
            [[unroll]] for (uint r = 0u; r < R; r++) s[r] +=
                dot(qv[r][2u * c], lo) + dot(qv[r][2u * c + 1u], hi);
        }
#endif
        const uint p = u0 + j;
        [[unroll]] for (uint r = 0u; r < R; r++)
        {
            float sc = s[r];
            if (pc.softcap > 0.0) sc = tanh(sc / pc.softcap) * pc.softcap;
            sc *= pc.kq_scale;
            /* minus the distance, as llama.cpp's ALiBi mask holds it */
            if (pc.alibi_heads > 0u) sc += slope[r] * -float(last[r] - p);
            const bool in_range = p >= first[r] && p <= last[r];
            /* l exp(m - m') + exp(sc - m') with m' = max(m, sc), by one
             * exponential: the other factor is exp(0) = 1 either way */
            const float e = exp(-abs(sc - m[r]));
            if (in_range) {
                l[r] = sc > m[r] ? l[r] * e + 1.0 : l[r] + e;
                m[r] = max(m[r], sc);
            }
        }
        slot = slot + 1u == pc.ring ? 0u : slot + 1u;
    }
    float inv[R];
    [[unroll]] for (uint r = 0u; r < R; r++) inv[r] = 1.0 / l[r];

    /* pass 2: the scores again, the probabilities rounded to half, the V sums */
    vec4 acc[R][2u * H8];
    [[unroll]] for (uint r = 0u; r < R; r++) [[unroll]] for (uint c = 0u; c < 2u * H8; c++)
        acc[r][c] = vec4(0.0);
    slot = u0_slot;
    for (uint j = 0u; j < n_pos; j++) {
        const uint kb = seq_row + slot * kv_rows + head_row;
        float s[R];
        [[unroll]] for (uint r = 0u; r < R; r++) s[r] = 0.0;
#ifdef K_Q8
        K_DOTS(seq_block + slot * kv_blocks);
#else
        ROW_FETCH(k_cache, kb, k_lo, k_hi);
        [[unroll]] for (uint c = 0u; c < H8; c++)
        {
            vec4 lo, hi;
            ROW_PART(k_cache, kb, k_lo, k_hi, c, lo, hi);
            [[unroll]] for (uint r = 0u; r < R; r++) s[r] +=
                dot(qv[r][2u * c], lo) + dot(qv[r][2u * c + 1u], hi);
        }
#endif
        const uint p = u0 + j;
        float pr[R];
        [[unroll]] for (uint r = 0u; r < R; r++)
        {
            float sc = s[r];
            if (pc.softcap > 0.0) sc = tanh(sc / pc.softcap) * pc.softcap;
            sc *= pc.kq_scale;
            if (pc.alibi_heads > 0u) sc += slope[r] * -float(last[r] - p);
            const bool in_range = p >= first[r] && p <= last[r];
            pr[r] = in_range ? round_f16(exp(sc - m[r]) * inv[r]) : 0.0;
        }
#ifdef V_Q8
        [[unroll]] for (uint c = 0u; c < HD / 32u; c++)
        {
            float d;
            uint qw[8];
            Q8_LOAD(v_cache, seq_block + slot * kv_blocks + c, d, qw);
            [[unroll]] for (uint k = 0u; k < 8u; k++)
            {
                const vec4 x = d * q8_unpack4(qw[k]); /* exact: 11 by 8 bits */
                [[unroll]] for (uint r = 0u; r < R; r++) acc[r][8u * c + k] += pr[r] * x;
            }
        }
#else
        ROW_FETCH(v_cache, kb, v_lo, v_hi);
        [[unroll]] for (uint c = 0u; c < H8; c++)
        {
            vec4 lo, hi;
            ROW_PART(v_cache, kb, v_lo, v_hi, c, lo, hi);
            [[unroll]] for (uint r = 0u; r < R; r++)
            {
                acc[r][2u * c] += pr[r] * lo;
                acc[r][2u * c + 1u] += pr[r] * hi;
            }
        }
#endif
        slot = slot + 1u == pc.ring ? 0u : slot + 1u;
    }
    [[unroll]] for (uint r = 0u; r < R; r++) if (live[r])
        [[unroll]] for (uint c = 0u; c < 2u * H8; c++) o4[out_at[r] + c] = acc[r][c];
}
