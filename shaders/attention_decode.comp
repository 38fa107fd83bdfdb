#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_decode: attention.comp's result for each query (token, head), its
 * positions split into chunks that workgroups take in parallel (split-KV), so
 * that a decode step has work for every core and its cost per position does
 * not grow with the context. Three dispatches, as PHASE selects:
 *   1 (SCORES) a workgroup per (token, head, chunk): each lane a position at
 *     a time (lane, lane + WG, ...), q rounded to half in registers; the
 *     scores to the query's scratch row, the chunk's maximum m and sum
 *     l = sum exp(score - m) to the query's output row (2 floats a chunk);
 *   2 (VALUES) the same workgroups: the query's maximum M and sum L from the
 *     chunks' (m, l), each probability exp(score - M) / L rounded to half, as
 *     attention.comp and llama.cpp's CPU path do, times V into registers; the
 *     chunk's sums to the start of its own part of the scratch row (a chunk
 *     holds at least head_dim positions), or, for a query of one chunk,
 *     straight to its output;
 *   3 (MERGE) a workgroup per query: the chunks' sums added in chunk order.
 * Lanes reduce by subgroup operations (SUBGROUP: the workgroup is one
 * subgroup) or through shared memory. The chunks of a query depend on its
 * number of positions only, never on the step's other rows, so a group's
 * batched decode equals each sequence's own decode bit for bit. */
#define KERNEL_ATTENTION
#include "kernels.h"
#include "common.glsl"

/* head_dim, the most chunks a query is split into (2 SPLITS <= HD: their
 * (m, l) pairs sit in the query's output row), the fewest positions of a
 * chunk (>= HD: a chunk's sums overwrite its own scores) */
layout(constant_id = 1) const uint HD = 64;
layout(constant_id = 2) const uint SPLITS = 16;
layout(constant_id = 3) const uint MIN_CHUNK = 136;

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

/* Query head h of token t: where it reads and writes, and its chunks. */
struct Query {
    uint q_off;      /* its query in q and output in o */
    uint prow;       /* its scratch row: scores by position - first; chunk c's sums at c * chunk */
    uint first;      /* the first position it attends to */
    uint n_pos;      /* how many: first .. its own */
    uint n_chunks;
    uint chunk;      /* positions per chunk (the last may hold fewer) */
};

Query query_at(uint t, uint h)
{
    const uint pos = step.rows[t].pos;
    const uint first = pc.window > 0u && pos >= pc.window ? pos - pc.window + 1u : 0u;
    const uint n_pos = pos + 1u - first;
    const uint n_chunks = clamp(n_pos / MIN_CHUNK, 1u, SPLITS);
    return Query((t * pc.n_head + h) * pc.head_dim, (t * pc.n_head + h) * pc.n_ctx, first, n_pos,
                 n_chunks, (n_pos + n_chunks - 1u) / n_chunks);
}

#if PHASE == 1 || PHASE == 2
#if PHASE == 1
/* the query rounded to half, once per workgroup: every lane needs all of it,
 * and rounding it in each lane cost a lane HD roundings (on a GPU, a decode
 * step's scores took 17 us at short depth) */
shared float q_half[HD];
#endif
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#else
shared float red_m[WG], red_l[WG];
#if PHASE == 2
shared float red_o[WG][HD];
#endif
#endif

void main()
{
    const uint gid = group_index();
    const uint c = gid % SPLITS, pair = gid / SPLITS;
    const uint t = pair / pc.n_head, h = pair % pc.n_head;
    if (t >= step.n_tokens) return;
    const Query a = query_at(t, h);
    if (c >= a.n_chunks) return;
    const uint lane = gl_LocalInvocationID.x;

    /* in units of 4 words */
    const uint kv_quads = pc.n_head_kv * HD / 8u;
    const uint head_quad = h / (pc.n_head / pc.n_head_kv) * (HD / 8u);
    const uint seq_quad = step.rows[t].seq * pc.ring * kv_quads + head_quad;
    const uint j_end = min(a.n_pos, (c + 1u) * a.chunk);
    /* the slot of position first + j: j < n_pos <= ring, so one subtraction
     * wraps it */
    const uint first_slot = a.first % pc.ring;
#if defined(K_Q8) || defined(V_Q8)
    /* in Q8_0 blocks */
    const uint kv_blocks = pc.n_head_kv * HD / 32u;
    const uint seq_block =
        step.rows[t].seq * pc.ring * kv_blocks + h / (pc.n_head / pc.n_head_kv) * (HD / 32u);
#endif

#if PHASE == 1
    float slope = 0.0;
    if (pc.alibi_heads > 0u)
        slope = h < pc.alibi_heads ? pow(pc.alibi_m0, float(h + 1u))
                                   : pow(pc.alibi_m1, float(2u * (h - pc.alibi_heads) + 1u));
    for (uint d = lane; d < HD; d += WG) q_half[d] = round_f16(q[a.q_off + d] * pc.q_scale);
    barrier();
    float qv[HD];
    for (uint d = 0u; d < HD; d++) qv[d] = q_half[d];
    float m = -1.0 / 0.0, l = 0.0; /* this lane's maximum and sum */
    for (uint j = c * a.chunk + lane; j < j_end; j += WG) {
        const uint s0 = first_slot + j;
#ifdef K_Q8
        const uint b = seq_block + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_blocks;
        float s = 0.0;
        for (uint i = 0u; i < HD / 32u; i++) {
            float d;
            uint qw[8];
            Q8_LOAD(k_cache, b + i, d, qw);
            float sb = 0.0;
            for (uint k = 0u; k < 8u; k++) {
                const uint e = 32u * i + 4u * k;
                sb += dot(vec4(qv[e], qv[e + 1u], qv[e + 2u], qv[e + 3u]), q8_unpack4(qw[k]));
            }
            s += d * sb;
        }
#else
        const uint w = seq_quad + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_quads;
        float s = 0.0;
        for (uint i = 0u; i < HD / 8u; i++) {
            const uvec4 kk = k_cache[w + i];
            for (uint k = 0u; k < 4u; k++) {
                const vec2 kh = unpackHalf2x16(kk[k]);
                s += qv[8u * i + 2u * k] * kh.x + qv[8u * i + 2u * k + 1u] * kh.y;
            }
        }
#endif
        if (pc.softcap > 0.0) s = tanh(s / pc.softcap) * pc.softcap;
        s *= pc.kq_scale;
        /* minus the distance, as llama.cpp's ALiBi mask holds it */
        if (pc.alibi_heads > 0u) s += slope * -float(a.n_pos - 1u - j);
        part[a.prow + j] = s;
        const float m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    /* the chunk's: every lane's sum scaled to the common maximum (a lane
     * without positions has l = 0, m = -inf) */
#ifdef SUBGROUP
    const float mm = subgroupMax(m);
    const float ll = subgroupAdd(l > 0.0 ? l * exp(m - mm) : 0.0);
#else
    red_m[lane] = m;
    red_l[lane] = l;
    barrier();
    float mm = -1.0 / 0.0, ll = 0.0;
    for (uint i = 0u; i < WG; i++) mm = max(mm, red_m[i]);
    for (uint i = 0u; i < WG; i++) ll += red_l[i] > 0.0 ? red_l[i] * exp(red_m[i] - mm) : 0.0;
#endif
    if (lane == 0u) {
        o[a.q_off + 2u * c] = mm;
        o[a.q_off + 2u * c + 1u] = ll;
    }

#else /* PHASE == 2 */
    float mm = -1.0 / 0.0, ll = 0.0;
    for (uint i = 0u; i < a.n_chunks; i++) mm = max(mm, o[a.q_off + 2u * i]);
    for (uint i = 0u; i < a.n_chunks; i++)
        ll += o[a.q_off + 2u * i + 1u] * exp(o[a.q_off + 2u * i] - mm);
    const float inv = 1.0 / ll;
    float acc[HD];
    for (uint d = 0u; d < HD; d++) acc[d] = 0.0;
    for (uint j = c * a.chunk + lane; j < j_end; j += WG) {
        const uint s0 = first_slot + j;
#ifdef V_Q8
        const uint b = seq_block + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_blocks;
        const float p = round_f16(exp(part[a.prow + j] - mm) * inv);
        for (uint i = 0u; i < HD / 32u; i++) {
            float d;
            uint qw[8];
            Q8_LOAD(v_cache, b + i, d, qw);
            for (uint k = 0u; k < 8u; k++) {
                const vec4 x = d * q8_unpack4(qw[k]); /* exact: 11 by 8 bits */
                for (uint n = 0u; n < 4u; n++) acc[32u * i + 4u * k + n] += p * x[n];
            }
        }
#else
        const uint w = seq_quad + (s0 >= pc.ring ? s0 - pc.ring : s0) * kv_quads;
        const float p = round_f16(exp(part[a.prow + j] - mm) * inv);
        for (uint i = 0u; i < HD / 8u; i++) {
            const uvec4 vv = v_cache[w + i];
            for (uint k = 0u; k < 4u; k++) {
                const vec2 vh = unpackHalf2x16(vv[k]);
                acc[8u * i + 2u * k] += p * vh.x;
                acc[8u * i + 2u * k + 1u] += p * vh.y;
            }
        }
#endif
    }
    /* every lane has read its (m, l) pairs and scores before any lane
     * overwrites them below */
#ifdef SUBGROUP
    float sums[HD];
    for (uint d = 0u; d < HD; d++) sums[d] = subgroupAdd(acc[d]);
    subgroupMemoryBarrierBuffer();
    subgroupBarrier();
#else
    for (uint d = 0u; d < HD; d++) red_o[lane][d] = acc[d];
    barrier();
#endif
    for (uint d = lane; d < HD; d += WG) {
#ifdef SUBGROUP
        const float x = sums[d];
#else
        float x = 0.0;
        for (uint i = 0u; i < WG; i++) x += red_o[i][d];
#endif
        if (a.n_chunks == 1u)
            o[a.q_off + d] = x;
        else
            part[a.prow + c * a.chunk + d] = x;
    }
#endif
}

#else /* PHASE == 3: a workgroup per query, lanes across its dimensions */
void main()
{
    const uint pair = group_index();
    const uint t = pair / pc.n_head, h = pair % pc.n_head;
    if (t >= step.n_tokens) return;
    const Query a = query_at(t, h);
    if (a.n_chunks == 1u) return; /* written by its chunk */
    for (uint d = gl_LocalInvocationID.x; d < HD; d += WG) {
        float x = 0.0;
        for (uint c = 0u; c < a.n_chunks; c++) x += part[a.prow + c * a.chunk + d];
        o[a.q_off + d] = x;
    }
}
#endif
