#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_tiled: attention.comp's arithmetic for a prompt, a workgroup per
 * tile of BR consecutive tokens (of one sequence, at consecutive positions:
 * a prompt's step) times HQ query heads that share one KV head
 * (grouped-query attention), so that each K and V element loaded serves the
 * QT = BR * HQ queries of the tile instead of one.
 *
 * Scores: a lane per position, holding QT dot products; it reads each word of
 * its K row once, the queries (rounded to half) from shared memory. The V
 * sum: a lane per WPT words of the head, holding QT sums of each; it reads
 * each V word once per position, and each probability once for all its
 * words. On lavapipe (a CPU device, subgroups of 8) a load at an address that
 * LLVM cannot prove the same for every lane becomes a loop over the lanes, and
 * such loads were most of the untiled kernel's time: here each one feeds QT
 * (K, V) or 2 WPT (probabilities) products instead of one. Unrolling the K
 * loop too, so that the queries' addresses are constants, made the kernel six
 * times slower to compile and no faster.
 *
 * The softmax is attention.comp's, in passes over the scratch rows: the
 * scores and their maximum, the sum of exponentials, the normalized
 * probabilities rounded to half; each output sums its products in position
 * order, so the results match the untiled kernel's to float rounding. The
 * tile walks the union of its queries' ranges, from the first token's first
 * position to the last token's own; a position outside a query's range gets
 * score -inf, probability 0, and adds nothing. Queries past the step's tokens
 * or the group's heads repeat the last real one and write nothing. Six
 * barriers per workgroup, none per position. */
#define KERNEL_ATTENTION
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint BR = 8;  /* tokens per tile */
layout(constant_id = 2) const uint HQ = 2;  /* query heads per tile, of one KV head */
layout(constant_id = 3) const uint HD = 64; /* head_dim (even) */
const uint QT = BR * HQ;
const uint HW = HD / 2u;              /* words per K or V row of a head */
const uint WPT = (HW + WG - 1u) / WG; /* V words per lane */

layout(std430, binding = 1) readonly buffer Q { float q[]; };
layout(std430, binding = 2) readonly buffer KCache { uint k_cache[]; };
layout(std430, binding = 3) readonly buffer VCache { uint v_cache[]; };
layout(std430, binding = 4) coherent buffer Scores { float scores[]; };
layout(std430, binding = 5) writeonly buffer Out { float o[]; };

shared vec2 qs[QT * HW];   /* the tile's queries, rounded to half */
shared float red[QT * WG]; /* per-lane maxima, then sums */
shared float total[QT];    /* their reductions */

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

/* total[i] = the maximum (MAX_OF) or the sum of the lanes' red[i * WG + lane] */
void reduce(bool max_of, uint tid)
{
    barrier();
    for (uint i = tid; i < QT; i += WG) {
        float v = red[i * WG];
        for (uint l = 1u; l < WG; l++)
            v = max_of ? max(v, red[i * WG + l]) : v + red[i * WG + l];
        total[i] = v;
    }
    barrier();
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
    const uint tid = gl_LocalInvocationID.x;

    /* the tile's queries: query i is token t0 + i / HQ, head h0 + i % HQ */
    uint row[QT];   /* its scratch row */
    uint last[QT];  /* the last position it attends to (its own) */
    uint first[QT]; /* the first */
    float slope[QT];
    bool live[QT]; /* a real query, not a repeat */
    [[unroll]] for (uint i = 0u; i < QT; i++)
    {
        const uint t = t0 + min(i / HQ, n_t - 1u), h = h0 + min(i % HQ, n_h - 1u);
        row[i] = (t * pc.n_head + h) * pc.n_ctx;
        last[i] = step.rows[t].pos;
        first[i] = first_of(t);
        slope[i] = slope_of(h);
        live[i] = i / HQ < n_t && i % HQ < n_h;
    }
    /* the positions the tile walks: u0 + j for j < n_pos (< ring) */
    const uint u0 = first_of(t0), n_pos = step.rows[t0 + n_t - 1u].pos + 1u - u0;
    const uint u0_slot = u0 % pc.ring, kv_words = pc.n_head_kv * HW, head_word = kvh * HW;
    const uint seq_word = step.rows[t0].seq * pc.ring * kv_words; /* its sequence's cache */

    for (uint x = tid; x < QT * HW; x += WG) {
        const uint i = x / HW, w = x % HW;
        const uint t = t0 + min(i / HQ, n_t - 1u), h = h0 + min(i % HQ, n_h - 1u);
        const uint at = (t * pc.n_head + h) * HD + 2u * w;
        qs[x] = vec2(round_f16(q[at] * pc.q_scale), round_f16(q[at + 1u] * pc.q_scale));
    }
    barrier();

    /* scores: a lane per position; each K row serves every query */
    float m[QT];
    [[unroll]] for (uint i = 0u; i < QT; i++) m[i] = -1.0 / 0.0;
    for (uint j = tid; j < n_pos; j += WG) {
        const uint slot = u0_slot + j;
        const uint kb = seq_word + (slot >= pc.ring ? slot - pc.ring : slot) * kv_words + head_word;
        float s[QT];
        [[unroll]] for (uint i = 0u; i < QT; i++) s[i] = 0.0;
        [[dont_unroll]] for (uint w = 0u; w < HW; w++)
        { /* see the top */
            const vec2 kk = unpackHalf2x16(k_cache[kb + w]);
            [[unroll]] for (uint i = 0u; i < QT; i++)
            {
                const vec2 qq = qs[i * HW + w];
                s[i] += qq.x * kk.x + qq.y * kk.y;
            }
        }
        const uint p = u0 + j;
        [[unroll]] for (uint i = 0u; i < QT; i++)
        {
            float sc = -1.0 / 0.0;
            if (p >= first[i] && p <= last[i]) {
                sc = s[i];
                if (pc.softcap > 0.0) sc = tanh(sc / pc.softcap) * pc.softcap;
                sc *= pc.kq_scale;
                /* minus the distance, as llama.cpp's ALiBi mask holds it */
                if (pc.alibi_heads > 0u) sc += slope[i] * -float(last[i] - p);
            }
            if (live[i]) scores[row[i] + j] = sc;
            m[i] = max(m[i], sc);
        }
    }
    [[unroll]] for (uint i = 0u; i < QT; i++) red[i * WG + tid] = m[i];
    reduce(true, tid);
    [[unroll]] for (uint i = 0u; i < QT; i++) m[i] = total[i];

    /* the sum of exponentials (each lane rereads the scores it wrote) */
    float inv[QT];
    [[unroll]] for (uint i = 0u; i < QT; i++) inv[i] = 0.0;
    for (uint j = tid; j < n_pos; j += WG)
        [[unroll]] for (uint i = 0u; i < QT; i++) inv[i] += exp(scores[row[i] + j] - m[i]);
    [[unroll]] for (uint i = 0u; i < QT; i++) red[i * WG + tid] = inv[i];
    reduce(false, tid);
    [[unroll]] for (uint i = 0u; i < QT; i++) inv[i] = 1.0 / total[i];

    /* the probabilities, rounded to half, over the scores */
    for (uint j = tid; j < n_pos; j += WG)
        [[unroll]] for (uint i = 0u; i < QT; i++) if (live[i]) scores[row[i] + j] =
            round_f16(exp(scores[row[i] + j] - m[i]) * inv[i]);
    memoryBarrierBuffer(); /* every lane reads every probability below */
    barrier();

    /* the V sum: a lane per WPT words of the head; each V word serves every
     * query, each probability every word of the lane. The positions in two
     * runs, before and after the ring wraps. */
    vec2 acc[WPT][QT];
    [[unroll]] for (uint k = 0u; k < WPT; k++) [[unroll]] for (uint i = 0u; i < QT; i++) acc[k][i] =
        vec2(0.0);
    uint wk[WPT]; /* the lane's words, the last repeated past the head */
    [[unroll]] for (uint k = 0u; k < WPT; k++) wk[k] = head_word + min(tid + k * WG, HW - 1u);
    const uint n_before_wrap = min(n_pos, pc.ring - u0_slot);
    uint base = seq_word + u0_slot * kv_words;
    for (uint j = 0u; j < n_pos; j++, base += kv_words) {
        if (j == n_before_wrap) base = seq_word;
        vec2 vv[WPT];
        [[unroll]] for (uint k = 0u; k < WPT; k++) vv[k] = unpackHalf2x16(v_cache[base + wk[k]]);
        [[unroll]] for (uint i = 0u; i < QT; i++)
        {
            const float pr = scores[row[i] + j];
            [[unroll]] for (uint k = 0u; k < WPT; k++) acc[k][i] += pr * vv[k];
        }
    }
    [[unroll]] for (uint k = 0u; k < WPT; k++)
    {
        const uint w = tid + k * WG;
        [[unroll]] for (uint i = 0u; i < QT; i++) if (live[i] && w < HW)
        {
            const uint at = row[i] / pc.n_ctx * HD + 2u * w;
            o[at] = acc[k][i].x;
            o[at + 1u] = acc[k][i].y;
        }
    }
}
