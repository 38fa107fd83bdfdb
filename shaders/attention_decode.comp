#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_decode: attention.comp's result for each query (token, head), its
 * positions split into chunks that workgroups take in parallel (split-KV), so
 * that a decode step has work for every core and its cost per position does
 * not grow with the context. A workgroup takes HQ query heads that share one
 * KV head (grouped-query attention): each K and V row it loads serves all of
 * them (on lavapipe the count of loads is most of the cost; a GPU, whose
 * registers would not hold HQ queries and sums, takes one). Three
 * dispatches, as PHASE selects:
 *   1 (SCORES) a workgroup per (token, head tile, chunk): each lane a
 *     position at a time (lane, lane + WG, ...), q rounded to half in
 *     registers; the scores to each query's scratch row, the chunk's maximum
 *     m and sum l = sum exp(score - m) to the query's output row (2 floats a
 *     chunk);
 *   2 (VALUES) the same workgroups: a query's maximum M and sum L from the
 *     chunks' (m, l), each probability exp(score - M) / L rounded to half, as
 *     attention.comp and llama.cpp's CPU path do, times V into registers; the
 *     chunk's sums to the start of its own part of the query's scratch row (a
 *     chunk holds at least head_dim positions), or, for a query of one
 *     chunk, straight to its output;
 *   3 (MERGE) a workgroup per query: the chunks' sums added in chunk order.
 * Lanes reduce by subgroup operations (SUBGROUP: the workgroup is one
 * subgroup) or through shared memory. The chunks of a query depend on its
 * number of positions only, never on the step's other rows or on HQ, so a
 * group's batched decode equals each sequence's own decode bit for bit. */
#define KERNEL_ATTENTION
#include "kernels.h"
#include "common.glsl"

/* head_dim, the most chunks a query is split into (2 SPLITS <= HD: their
 * (m, l) pairs sit in the query's output row), the fewest positions of a
 * chunk (>= HD: a chunk's sums overwrite its own scores) */
layout(constant_id = 1) const uint HD = 64;
layout(constant_id = 2) const uint SPLITS = 16;
layout(constant_id = 3) const uint MIN_CHUNK = 136;
/* query heads per workgroup, of one KV head */
layout(constant_id = 4) const uint HQ = 1;

layout(std430, binding = 1) readonly buffer Q { float q[]; };
/* 4 words (8 halves) per load: on lavapipe a load whose address differs
 * between lanes is a loop over the lanes, fetching all its components at
 * once (head_dim is a multiple of 8, ops.c checks) */
#if defined(K_Q8) || defined(V_Q8)
/* a cache of Q8_0 blocks (kv_q8.glsl), K's with K_Q8 (phase 1), V's with
 * V_Q8 (phase 2); the head size is then a multiple of 32 (budget.c) */
#include "kv_q8.glsl"
#endif
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
layout(std430, binding = 4) coherent buffer Scratch { float part[]; };
/* coherent: phase 2's lanes read (m, l) pairs that other lanes overwrite */
layout(std430, binding = 5) coherent buffer Out { float o[]; };

/* Token t's queries: where they read and write, and their chunks. */
struct Query {
    uint q_off; /* head 0's query in q and output in o (head h's h HD floats on) */
    uint prow;  /* head 0's scratch row (head h's h n_ctx floats on): scores by
                   position - first; chunk c's sums at c * chunk */
    uint first; /* the first position it attends to */
    uint n_pos; /* how many: first .. its own */
    uint n_chunks;
    uint chunk; /* positions per chunk (the last may hold fewer) */
};

Query query_at(uint t)
{
    const uint pos = step.rows[t].pos;
    const uint first = pc.window > 0u && pos >= pc.window ? pos - pc.window + 1u : 0u;
    const uint n_pos = pos + 1u - first;
    const uint n_chunks = clamp(n_pos / MIN_CHUNK, 1u, SPLITS);
    return Query(t * pc.n_head * pc.head_dim, t * pc.n_head * pc.n_ctx, first, n_pos, n_chunks,
                 (n_pos + n_chunks - 1u) / n_chunks);
}

#if PHASE == 1 || PHASE == 2
#if PHASE == 1
/* the queries rounded to half, once per workgroup: every lane needs all of
 * them, and rounding them in each lane cost a lane HD roundings a head (on a
 * GPU, a decode step's scores took 17 us at short depth) */
shared float q_half[HQ * HD];
#endif
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#else
shared float red_m[WG], red_l[WG];
#if PHASE == 2
shared float red_o[WG][HQ * HD];
#endif
#endif

void main()
{
    const uint group = pc.n_head / pc.n_head_kv, head_tiles = (group + HQ - 1u) / HQ;
    const uint gid = group_index();
    const uint c = gid % SPLITS, tile = gid / SPLITS;
    const uint t = tile / (pc.n_head_kv * head_tiles);
    if (t >= step.n_tokens) return;
    const uint kvh = tile / head_tiles % pc.n_head_kv;
    /* the tile's heads h0 .. h0 + n_h - 1; heads past them repeat the last
     * and write nothing */
    const uint h0 = kvh * group + tile % head_tiles * HQ, n_h = min(HQ, kvh * group + group - h0);
    const Query a = query_at(t);
    if (c >= a.n_chunks) return;
    const uint lane = gl_LocalInvocationID.x;
    uint q_off[HQ], prow[HQ];
    [[unroll]] for (uint r = 0u; r < HQ; r++) {
        const uint h = h0 + min(r, n_h - 1u);
        q_off[r] = a.q_off + h * pc.head_dim;
        prow[r] = a.prow + h * pc.n_ctx;
    }

    /* in units of 4 words */
    const uint kv_quads = pc.n_head_kv * HD / 8u;
    const uint seq_quad = step.rows[t].seq * pc.ring * kv_quads + kvh * (HD / 8u);
    const uint j_end = min(a.n_pos, (c + 1u) * a.chunk);
    /* the slot of position first + j: j < n_pos <= ring, so one subtraction
     * wraps it */
    const uint first_slot = a.first % pc.ring;
#if defined(K_Q8) || defined(V_Q8)
    /* in Q8_0 blocks */
    const uint kv_blocks = pc.n_head_kv * HD / 32u;
    const uint seq_block = step.rows[t].seq * pc.ring * kv_blocks + kvh * (HD / 32u);
#endif

#if PHASE == 1
    float slope[HQ];
    [[unroll]] for (uint r = 0u; r < HQ; r++) {
        const uint h = h0 + min(r, n_h - 1u);
        slope[r] = pc.alibi_heads == 0u ? 0.0
                   : h < pc.alibi_heads ? pow(pc.alibi_m0, float(h + 1u))
                                        : pow(pc.alibi_m1, float(2u * (h - pc.alibi_heads) + 1u));
    }
    for (uint i = lane; i < HQ * HD; i += WG)
        q_half[i] = round_f16(q[q_off[i / HD] + i % HD] * pc.q_scale);
    barrier();
    float qv[HQ * HD];
    [[unroll]] for (uint i = 0u; i < HQ * HD; i++) qv[i] = q_half[i];
    float m[HQ], l[HQ]; /* this lane's maximum and sum */
    [[unroll]] for (uint r = 0u; r < HQ; r++) m[r] = -1.0 / 0.0, l[r] = 0.0;
    for (uint j = c * a.chunk + lane; j < j_end; j += WG) {
        const uint s0 = first_slot + j;
        float s[HQ];
        [[unroll]] for (uint r = 0u; r < HQ; r++) s[r] = 0.0;
#ifdef K_Q8
        const uint b = seq_block + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_blocks;
        [[unroll]] for (uint i = 0u; i < HD / 32u; i++) {
            float d;
            uint qw[8];
            Q8_LOAD(k_cache, b + i, d, qw);
            float sb[HQ];
            [[unroll]] for (uint r = 0u; r < HQ; r++) sb[r] = 0.0;
            [[unroll]] for (uint k = 0u; k < 8u; k++) {
                const vec4 x = q8_unpack4(qw[k]);
                [[unroll]] for (uint r = 0u; r < HQ; r++) {
                    const uint e = r * HD + 32u * i + 4u * k;
                    sb[r] += dot(vec4(qv[e], qv[e + 1u], qv[e + 2u], qv[e + 3u]), x);
                }
            }
            [[unroll]] for (uint r = 0u; r < HQ; r++) s[r] += d * sb[r];
        }
#else
        const uint w = seq_quad + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_quads;
        [[unroll]] for (uint i = 0u; i < HD / 8u; i++) {
            const uvec4 kk = k_cache[w + i];
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                const vec2 kh = unpackHalf2x16(kk[k]);
                [[unroll]] for (uint r = 0u; r < HQ; r++) {
                    const uint e = r * HD + 8u * i + 2u * k;
                    s[r] += qv[e] * kh.x + qv[e + 1u] * kh.y;
                }
            }
        }
#endif
        [[unroll]] for (uint r = 0u; r < HQ; r++) {
            float sc = s[r];
            if (pc.softcap > 0.0) sc = tanh(sc / pc.softcap) * pc.softcap;
            sc *= pc.kq_scale;
            /* minus the distance, as llama.cpp's ALiBi mask holds it */
            if (pc.alibi_heads > 0u) sc += slope[r] * -float(a.n_pos - 1u - j);
            if (r < n_h) part[prow[r] + j] = sc;
            /* l exp(m - m') + exp(sc - m') with m' = max(m, sc), by one
             * exponential: the other factor is exp(0) = 1 either way */
            const float e = exp(-abs(sc - m[r]));
            l[r] = sc > m[r] ? l[r] * e + 1.0 : l[r] + e;
            m[r] = max(m[r], sc);
        }
    }
    /* the chunk's: every lane's sum scaled to the common maximum (a lane
     * without positions has l = 0, m = -inf) */
    [[unroll]] for (uint r = 0u; r < HQ; r++) {
#ifdef SUBGROUP
        const float mm = subgroupMax(m[r]);
        const float ll = subgroupAdd(l[r] > 0.0 ? l[r] * exp(m[r] - mm) : 0.0);
#else
        red_m[lane] = m[r];
        red_l[lane] = l[r];
        barrier();
        float mm = -1.0 / 0.0, ll = 0.0;
        for (uint i = 0u; i < WG; i++) mm = max(mm, red_m[i]);
        for (uint i = 0u; i < WG; i++) ll += red_l[i] > 0.0 ? red_l[i] * exp(red_m[i] - mm) : 0.0;
        barrier(); /* every lane has read them before the next head's */
#endif
        if (lane == 0u && r < n_h) {
            o[q_off[r] + 2u * c] = mm;
            o[q_off[r] + 2u * c + 1u] = ll;
        }
    }

#else /* PHASE == 2 */
    float mm[HQ], inv[HQ];
    [[unroll]] for (uint r = 0u; r < HQ; r++) {
        float x = -1.0 / 0.0, ll = 0.0;
        for (uint i = 0u; i < a.n_chunks; i++) x = max(x, o[q_off[r] + 2u * i]);
        for (uint i = 0u; i < a.n_chunks; i++)
            ll += o[q_off[r] + 2u * i + 1u] * exp(o[q_off[r] + 2u * i] - x);
        mm[r] = x;
        inv[r] = 1.0 / ll;
    }
    float acc[HQ * HD];
    [[unroll]] for (uint i = 0u; i < HQ * HD; i++) acc[i] = 0.0;
    for (uint j = c * a.chunk + lane; j < j_end; j += WG) {
        const uint s0 = first_slot + j;
        float p[HQ];
        [[unroll]] for (uint r = 0u; r < HQ; r++) p[r] = round_f16(exp(part[prow[r] + j] - mm[r]) * inv[r]);
#ifdef V_Q8
        const uint b = seq_block + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_blocks;
        [[unroll]] for (uint i = 0u; i < HD / 32u; i++) {
            float d;
            uint qw[8];
            Q8_LOAD(v_cache, b + i, d, qw);
            [[unroll]] for (uint k = 0u; k < 8u; k++) {
                const vec4 x = d * q8_unpack4(qw[k]); /* exact: 11 by 8 bits */
                [[unroll]] for (uint r = 0u; r < HQ; r++)
                    [[unroll]] for (uint n = 0u; n < 4u; n++) acc[r * HD + 32u * i + 4u * k + n] += p[r] * x[n];
            }
        }
#else
        const uint w = seq_quad + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_quads;
        [[unroll]] for (uint i = 0u; i < HD / 8u; i++) {
            const uvec4 vv = v_cache[w + i];
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                const vec2 vh = unpackHalf2x16(vv[k]);
                [[unroll]] for (uint r = 0u; r < HQ; r++) {
                    acc[r * HD + 8u * i + 2u * k] += p[r] * vh.x;
                    acc[r * HD + 8u * i + 2u * k + 1u] += p[r] * vh.y;
                }
            }
        }
#endif
    }
    /* sum i (head i / HD, dimension i % HD) is lane i % WG's to write, its
     * k-th (k = i / WG): picked by selects, as an array indexed by the lane
     * would live in memory */
    const uint NK = (HQ * HD + WG - 1u) / WG;
    float mine[NK];
#ifdef SUBGROUP
    [[unroll]] for (uint i = 0u; i < HQ * HD; i++)
    {
        const float x = subgroupAdd(acc[i]);
        if (lane == i % WG) mine[i / WG] = x;
    }
    /* every lane has read its (m, l) pairs and scores before any lane
     * overwrites them below */
    subgroupMemoryBarrierBuffer();
    subgroupBarrier();
#else
    [[unroll]] for (uint i = 0u; i < HQ * HD; i++) red_o[lane][i] = acc[i];
    barrier();
    [[unroll]] for (uint k = 0u; k < NK; k++)
    {
        const uint i = min(k * WG + lane, HQ * HD - 1u);
        mine[k] = 0.0;
        for (uint n = 0u; n < WG; n++) mine[k] += red_o[n][i];
    }
#endif
    [[unroll]] for (uint k = 0u; k < NK; k++)
    {
        const uint i = k * WG + lane, r = i / HD, d = i % HD;
        if (i >= n_h * HD) break;
        if (a.n_chunks == 1u)
            o[a.q_off + (h0 + r) * pc.head_dim + d] = mine[k];
        else
            part[a.prow + (h0 + r) * pc.n_ctx + c * a.chunk + d] = mine[k];
    }
#endif
}

#else /* PHASE == 3: a workgroup per query, lanes across its dimensions */
void main()
{
    const uint pair = group_index();
    const uint t = pair / pc.n_head, h = pair % pc.n_head;
    if (t >= step.n_tokens) return;
    const Query a = query_at(t);
    if (a.n_chunks == 1u) return; /* written by its chunk */
    const uint prow = a.prow + h * pc.n_ctx, q_off = a.q_off + h * pc.head_dim;
    for (uint d = gl_LocalInvocationID.x; d < HD; d += WG) {
        float x = 0.0;
        for (uint c = 0u; c < a.n_chunks; c++) x += part[prow + c * a.chunk + d];
        o[q_off + d] = x;
    }
}
#endif
