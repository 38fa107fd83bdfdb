#version 450
#extension GL_GOOGLE_include_directive : require
/* attention: softmax(score(q, K)) V for one query head of one token, over the
 * cached positions up to its own (causal), or the last `window` of them. A
 * score is dot(half(q * q_scale), k), soft-capped if asked, times kq_scale,
 * plus the head's ALiBi slope times minus the distance (llama.cpp's order).
 * Position p of the token's sequence sits in slot seq * ring + p % ring of
 * the cache (a windowed layer's ring, one per sequence). The SUBGROUP variant gives each
 * (token, head) one subgroup, reduced by shuffles with no workgroup barrier
 * (on a CPU device barriers dominate a prompt's attention); the other gives
 * it a whole workgroup, reduced through shared memory. Scores go to a scratch
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
#if defined(K_Q8) || defined(V_Q8)
/* K's (K_Q8) or V's (V_Q8) cache in Q8_0 blocks (kv_q8.glsl); the head size
 * is then a multiple of 32 (budget.c) */
#include "kv_q8.glsl"
#endif
layout(std430, binding = 4) coherent buffer Scores { float scores[]; };
layout(std430, binding = 5) writeonly buffer Out { float o[]; };

/* Where query head H of token T reads and writes. */
struct Head {
    uint kv_words;  /* words per cached position (all KV heads) */
    uint seq_word;  /* first word of its sequence's part of the cache */
    uint head_word; /* first word of its KV head in a position */
    uint q_off;     /* its query and output in q and o */
    uint first;     /* the first position it attends to */
    uint first_slot; /* where the cache holds it */
    uint n_pos;     /* how many: first .. its own */
    uint srow;      /* its scratch row of scores, indexed by position - first */
    float slope;    /* ALiBi slope, or 0 */
};

Head head_at(uint t, uint h)
{
    const uint kvh = h / (pc.n_head / pc.n_head_kv);
    const uint pos = step.rows[t].pos;
    const uint kv_words = pc.n_head_kv * pc.head_dim / 2u;
    const uint first = pc.window > 0u && pos >= pc.window ? pos - pc.window + 1u : 0u;
    float slope = 0.0;
    if (pc.alibi_heads > 0u)
        slope = h < pc.alibi_heads ? pow(pc.alibi_m0, float(h + 1u))
                                   : pow(pc.alibi_m1, float(2u * (h - pc.alibi_heads) + 1u));
    return Head(kv_words, step.rows[t].seq * pc.ring * kv_words, kvh * pc.head_dim / 2u,
                (t * pc.n_head + h) * pc.head_dim, first, first % pc.ring, pos + 1u - first,
                (t * pc.n_head + h) * pc.n_ctx, slope);
}

/* The score of position first + J from its raw dot product. */
float finish_score(Head a, uint j, float dot)
{
    float s = dot;
    if (pc.softcap > 0.0) s = tanh(s / pc.softcap) * pc.softcap;
    s *= pc.kq_scale;
    /* minus the distance, as llama.cpp's ALiBi mask holds it */
    if (pc.alibi_heads > 0u) s += a.slope * -float(a.n_pos - 1u - j);
    return s;
}

/* The first word of position first + J in the cache: J < n_pos <= ring, so
 * one subtraction wraps it (a division here costs a third of a prompt's
 * attention on a CPU device). */
uint slot_word(Head a, uint j)
{
    const uint s = a.first_slot + j;
    return a.seq_word + (s >= pc.ring ? s - pc.ring : s) * a.kv_words;
}

#if defined(K_Q8) || defined(V_Q8)
/* The head's first Q8_0 block at position first + J. */
uint slot_block(Head a, uint j)
{
    const uint s = a.first_slot + j;
    return (a.seq_word / a.kv_words + (s >= pc.ring ? s - pc.ring : s)) *
               (pc.n_head_kv * pc.head_dim / 32u) +
           a.head_word / 16u;
}

/* OUT += the dot product of QS(0..32) with block B of the K cache. */
#define Q8_DOT(QS, B, OUT)                                                                       \
    {                                                                                            \
        float d_, sb_ = 0.0;                                                                     \
        uint qw_[8];                                                                             \
        Q8_LOAD(k_cache, B, d_, qw_);                                                            \
        for (uint k_ = 0u; k_ < 8u; k_++)                                                        \
            sb_ += dot(vec4(QS(4u * k_), QS(4u * k_ + 1u), QS(4u * k_ + 2u), QS(4u * k_ + 3u)),   \
                       q8_unpack4(qw_[k_]));                                                     \
        OUT += d_ * sb_;                                                                         \
    }
#endif

#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require

/* q rounded to half, per subgroup; sized for subgroups of 8 or more */
shared float qs[WG / 8u][MAX_HEAD_DIM];

float subgroup_max(float v)
{
    for (uint s = gl_SubgroupSize / 2u; s > 0u; s >>= 1u) v = max(v, subgroupShuffleXor(v, s));
    return v;
}

float subgroup_sum(float v)
{
    for (uint s = gl_SubgroupSize / 2u; s > 0u; s >>= 1u) v += subgroupShuffleXor(v, s);
    return v;
}

void main()
{
    const uint pair = group_index() * gl_NumSubgroups + gl_SubgroupID;
    const uint t = pair / pc.n_head;
    if (t >= step.n_tokens) return; /* the whole subgroup */
    const uint h = pair % pc.n_head;
    const uint lane = gl_SubgroupInvocationID, SG = gl_SubgroupSize, sg = gl_SubgroupID;
    const uint hd = pc.head_dim;
    const Head a = head_at(t, h);

    for (uint d = lane; d < hd; d += SG) qs[sg][d] = round_f16(q[a.q_off + d] * pc.q_scale);
    subgroupMemoryBarrierShared();
    subgroupBarrier();

    /* scores (lanes across positions) and their maximum */
    float m = -1.0 / 0.0;
    for (uint j = lane; j < a.n_pos; j += SG) {
#ifdef K_Q8
        const uint kb = slot_block(a, j);
        float s = 0.0;
        for (uint i = 0u; i < hd / 32u; i++) {
#define QS(x) qs[sg][32u * i + (x)]
            Q8_DOT(QS, kb + i, s);
#undef QS
        }
#else
        const uint kb = slot_word(a, j) + a.head_word;
        float s = 0.0;
        for (uint i = 0u; i < hd / 2u; i++) {
            const vec2 kk = unpackHalf2x16(k_cache[kb + i]);
            s += qs[sg][2u * i] * kk.x + qs[sg][2u * i + 1u] * kk.y;
        }
#endif
        s = finish_score(a, j, s);
        scores[a.srow + j] = s;
        m = max(m, s);
    }
    m = subgroup_max(m);

    /* exponentials and their sum (each lane rereads the scores it wrote) */
    float sum = 0.0;
    for (uint j = lane; j < a.n_pos; j += SG) {
        const float e = exp(scores[a.srow + j] - m);
        scores[a.srow + j] = e;
        sum += e;
    }
    const float inv_sum = 1.0 / subgroup_sum(sum);
    for (uint j = lane; j < a.n_pos; j += SG) scores[a.srow + j] = round_f16(scores[a.srow + j] * inv_sum);
    subgroupMemoryBarrierBuffer(); /* every lane reads every probability below */
    subgroupBarrier();

    /* weighted sum of V: lanes across the head's dimensions; the positions in
     * two runs, before and after the ring wraps, each walked by one add */
#ifdef V_Q8
    /* a scale and an int8 per value: two loads */
    for (uint d = lane; d < hd; d += SG) {
        float acc = 0.0;
        for (uint j = 0u; j < a.n_pos; j++)
            acc += scores[a.srow + j] * Q8_AT(v_cache, slot_block(a, j) + d / 32u, d % 32u);
        o[a.q_off + d] = acc;
    }
#else
    const uint n_before_wrap = min(a.n_pos, pc.ring - a.first_slot);
    for (uint d = lane; d < hd; d += SG) {
        const uint half_index = a.head_word * 2u + d;
        const bool low = (half_index & 1u) == 0u;
        float acc = 0.0;
        uint w = a.seq_word + a.first_slot * a.kv_words + (half_index >> 1);
        for (uint j = 0u; j < n_before_wrap; j++, w += a.kv_words) {
            const vec2 vv = unpackHalf2x16(v_cache[w]);
            acc += scores[a.srow + j] * (low ? vv.x : vv.y);
        }
        w = a.seq_word + (half_index >> 1);
        for (uint j = n_before_wrap; j < a.n_pos; j++, w += a.kv_words) {
            const vec2 vv = unpackHalf2x16(v_cache[w]);
            acc += scores[a.srow + j] * (low ? vv.x : vv.y);
        }
        o[a.q_off + d] = acc;
    }
#endif
}

#else
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
    const Head a = head_at(t, h);

    for (uint d = tid; d < hd; d += WG) qs[d] = round_f16(q[a.q_off + d] * pc.q_scale);
    barrier();

    /* scores and their maximum */
    float m = -1.0 / 0.0;
    for (uint j = tid; j < a.n_pos; j += WG) {
#ifdef K_Q8
        const uint kb = slot_block(a, j);
        float s = 0.0;
        for (uint i = 0u; i < hd / 32u; i++) {
#define QS(x) qs[32u * i + (x)]
            Q8_DOT(QS, kb + i, s);
#undef QS
        }
#else
        const uint kb = slot_word(a, j) + a.head_word;
        float s = 0.0;
        for (uint i = 0u; i < hd / 2u; i++) {
            const vec2 kk = unpackHalf2x16(k_cache[kb + i]);
            s += qs[2u * i] * kk.x + qs[2u * i + 1u] * kk.y;
        }
#endif
        s = finish_score(a, j, s);
        scores[a.srow + j] = s;
        m = max(m, s);
    }
    red[tid] = m;
    reduce_max(tid);
    m = red[0];
    barrier();

    /* exponentials and their sum */
    float sum = 0.0;
    for (uint j = tid; j < a.n_pos; j += WG) {
        const float e = exp(scores[a.srow + j] - m);
        scores[a.srow + j] = e;
        sum += e;
    }
    red[tid] = sum;
    reduce_sum(tid);
    const float inv_sum = 1.0 / red[0];
    for (uint j = tid; j < a.n_pos; j += WG) scores[a.srow + j] = round_f16(scores[a.srow + j] * inv_sum);
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
            const uint half_index = a.head_word * 2u + d;
            for (uint j = g; j < a.n_pos; j += G) {
#ifdef V_Q8
                acc += scores[a.srow + j] * Q8_AT(v_cache, slot_block(a, j) + d / 32u, d % 32u);
#else
                const vec2 vv = unpackHalf2x16(v_cache[slot_word(a, j) + (half_index >> 1)]);
                acc += scores[a.srow + j] * ((half_index & 1u) == 0u ? vv.x : vv.y);
#endif
            }
            partial[g * hd + d] = acc;
        }
    }
    barrier();
    for (uint d = tid; d < hd; d += WG) {
        float acc = 0.0;
        for (uint g = 0u; g < G; g++) acc += partial[g * hd + d];
        o[a.q_off + d] = acc;
    }
}
#endif
