#version 450
#extension GL_GOOGLE_include_directive : require
/* matvec: y = W x for every token of the step (or only the last), where W is
 * one part of a weight tensor (see quant.glsl). The workgroup's threads form
 * groups of TPR; each group computes NR rows for NT tokens at a time, its
 * threads striding along the row by 32-element sub-blocks (by elements for the
 * float formats), dequantizing in registers. The group's partial sums meet
 * through subgroup shuffles (SUBGROUP variant; the host keeps TPR within the
 * subgroup size) or through shared memory. With ACC the result is added to y,
 * which is how the attention output and FFN down projections land on the
 * residual stream.
 *
 * The input is prepared as llama.cpp's CPU backend prepares it where vkllm
 * matches it token for token: Q4_0 and Q8_0 weights take activations quantized
 * to Q8_0 blocks (quantize_q8.comp; the block dot product is then an exact
 * integer sum, four products an instruction in the INT_DOT variant), F16
 * and BF16 weights take activations rounded to their type. The other
 * formats take the floats as they are, except in their INT_DOT variants,
 * which the host takes where the device runs the instructions in hardware
 * or is a CPU (engine/vk/context.c): those take Q8_0 activations too, and sum each half sub-block's products
 * as integers (quant.glsl's quants32), so that their results differ from the
 * float path's by the activations' rounding. */
#define KERNEL_MATVEC
#include "kernels.h"
#include "common.glsl"
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#ifdef INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif
#if defined(ACT_Q8) || defined(INT_DOT)
#define Q8_INPUT 1 /* the input is Q8_0 blocks (quantize_q8.comp) */
#endif

layout(constant_id = 1) const uint NR = 2;  /* rows per thread group */
layout(constant_id = 2) const uint NT = 4;  /* tokens per pass over the rows */
layout(constant_id = 3) const uint ACC = 0; /* 1: y += W x */
layout(constant_id = 4) const uint TPR = 8; /* threads per group, a power of two <= WG */
/* Q4_K, Q6_K: 1 gives a lane a word of a block's quants at a time (Q4_K: 8
 * elements, four low nibbles and four high; Q6_K: 16, a word of each of its
 * two low-bit runs and of its high bits) instead of a 32-element sub-block,
 * so that a group's lanes read consecutive quant words and consecutive
 * inputs; with a lane per sub-block, each of a lane's eight input loads is
 * 128 bytes from its neighbour's, 32 cache lines for one load instruction of
 * a warp */
layout(constant_id = 5) const uint BY_WORD = 0;

#ifndef TEXEL_WEIGHTS /* else quant.glsl reads them */
layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
/* the same words four at a time (quant.glsl) */
layout(std430, binding = 1) readonly buffer Weights4 { uvec4 weights4[]; };
#define WEIGHTS4 1
#endif
#include "quant.glsl"

#if defined(TEXEL_INPUT)
#ifndef INT_DOT
#error "texel input: the Q8_0 words of the integer-dot variant only"
#endif
/* the Q8_0 words as a uniform texel buffer of uvec4s (quant.glsl says why) */
layout(binding = 2) uniform usamplerBuffer x_texels;
uint xword(uint i) { return texelFetch(x_texels, int(i >> 2))[i & 3u]; }
uvec4 xword4(uint i) { return texelFetch(x_texels, int(i)); }
#elif defined(Q8_INPUT)
layout(std430, binding = 2) readonly buffer X { uint xq[]; };
/* the same words four at a time: a block's 8 quant words are 32-byte aligned */
layout(std430, binding = 2) readonly buffer X4 { uvec4 xq4[]; };
uint xword(uint i) { return xq[i]; }
uvec4 xword4(uint i) { return xq4[i]; }
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
/* the same input as vec4s, for block formats (rows a multiple of 32 floats):
 * on lavapipe each load at a per-thread address is a loop over the lanes,
 * so four floats per load are a quarter of the loops */
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, binding = 3) buffer Y { float y[]; };

#ifndef SUBGROUP
shared float red[NR * NT * WG];
#endif

#ifdef INT_DOT
/* OpSDot on four packed int8 pairs (SPV_KHR_integer_dot_product, core in
 * Vulkan 1.3): glslang 12 has no GL_EXT_integer_dot_product to spell it */
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot_packed(uint a, uint b, spirv_literal int packed_vector_format);
#define SDOT(a, b) sdot_packed(a, b, 0) /* PackedVectorFormat4x8Bit */

/* the nibbles at SHIFT of W's four bytes minus 8, as packed int8: n + 120
 * stays within its byte (at most 135), and flipping bit 7 subtracts 128 */
uint s4x4(uint w, int shift)
{
    return (((w >> shift) & 0x0F0F0F0Fu) + 0x78787878u) ^ 0x80808080u;
}

/* the integer dot of a Q8_0 word's four quants (a Q4_0 word's eight) with
 * the activations' words */
int q8_word_dot(uint w, uint x) { return SDOT(w, x); }
int q4_word_dot(uint w, uint lo, uint hi) { return SDOT(s4x4(w, 0), lo) + SDOT(s4x4(w, 4), hi); }
#elif defined(ACT_Q8)
ivec4 i8x4(uint w)
{
    return ivec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8),
                 bitfieldExtract(int(w), 16, 8), bitfieldExtract(int(w), 24, 8));
}

ivec4 u4x4(uint w, int shift)
{
    return ivec4(bitfieldExtract(w, shift, 4), bitfieldExtract(w, shift + 8, 4),
                 bitfieldExtract(w, shift + 16, 4), bitfieldExtract(w, shift + 24, 4)) - 8;
}

int dot4(ivec4 a, ivec4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

int q8_word_dot(uint w, uint x) { return dot4(i8x4(w), i8x4(x)); }
int q4_word_dot(uint w, uint lo, uint hi)
{
    return dot4(u4x4(w, 0), i8x4(lo)) + dot4(u4x4(w, 4), i8x4(hi));
}
#endif

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint groups = WG / TPR;
    if (group_index() * groups * NR >= pc.n_rows) return; /* the whole workgroup: uniform */
    const uint lane = tid % TPR;
    const uint row0 = (group_index() * groups + tid / TPR) * NR;
    const uint t_begin = pc.last_only != 0u ? step.n_tokens - 1u : 0u;
    const uint t_end = step.n_tokens;

    for (uint t0 = t_begin; t0 < t_end; t0 += NT) {
        float acc[NR * NT];
        [[unroll]] for (uint j = 0u; j < NR * NT; j++) acc[j] = 0.0;

#ifdef WTYPE_BLOCKS
        const uint nb = pc.k / QK;
#if defined(WTYPE_Q4_K) && !defined(INT_DOT)
        /* quant word w of block bi holds elements 64j + 4m .. +3 (low
         * nibbles, sub-block 2j) and 64j + 32 + 4m .. +3 (high, 2j + 1),
         * j = w / 8, m = w % 8 (quant.glsl) */
        if (BY_WORD != 0u) {
            for (uint i = lane; i < nb * 32u; i += TPR) {
                const uint bi = i / 32u, w = i % 32u, j = w / 8u;
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    const uint b = min(row0 + r, pc.n_rows - 1u) * nb + bi;
                    const uvec4 head = bword4(b, 0u);
                    const vec2 dm = unpackHalf2x16(head[0]);
                    const vec2 s0 = k4_scale_min(head, 2u * j);
                    const vec2 s1 = k4_scale_min(head, 2u * j + 1u);
                    const uint q = bword(b, 4u + w);
                    const vec4 lo = dm.x * s0.x * nib4(q, 0u) - dm.y * s0.y;
                    const vec4 hi = dm.x * s1.x * nib4(q, 4u) - dm.y * s1.y;
                    [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                        const uint t = min(t0 + tt, t_end - 1u);
                        const uint xo =
                            (t * pc.x_stride + bi * 256u + 64u * j + 4u * (w % 8u)) / 4u;
                        acc[r * NT + tt] += dot(lo, x4[xo]) + dot(hi, x4[xo + 8u]);
                    }
                }
            }
        } else
#elif defined(WTYPE_Q6_K) && !defined(INT_DOT)
        /* half h of block bi: ql word 16h + m holds elements 128h + 4m .. +3
         * (low nibbles, quarter 0) and 128h + 64 + 4m .. (high, quarter 2),
         * ql word 16h + 8 + m quarters 1 and 3, qh word 32 + 8h + m the
         * high bit pairs of all four quarters; the quarters' int8 scales are
         * bytes 8h + 2q + m / 4 of words 48..51 (quant.glsl) */
        if (BY_WORD != 0u) {
            for (uint i = lane; i < nb * 16u; i += TPR) {
                const uint bi = i / 16u, h = (i / 8u) % 2u, m = i % 8u;
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    const uint b = min(row0 + r, pc.n_rows - 1u) * nb + bi;
                    const float d = block_scale(pc.scale_offset, b);
                    const uvec4 sc = bword4(b, 12u);
                    const uint s01 = sc[2u * h] >> (8u * (m / 4u));
                    const uint s23 = sc[2u * h + 1u] >> (8u * (m / 4u));
                    const uint qa = bword(b, 16u * h + m), qb = bword(b, 16u * h + 8u + m);
                    const uint qh = bword(b, 32u + 8u * h + m);
                    const uvec4 hb = uvec4(qh, qh >> 8, qh >> 16, qh >> 24);
                    const vec4 v0 = d * float(bitfieldExtract(int(s01), 0, 8)) *
                                    (nib4(qa, 0u) + vec4(hb & 3u) * 16.0 - 32.0);
                    const vec4 v1 = d * float(bitfieldExtract(int(s01), 16, 8)) *
                                    (nib4(qb, 0u) + vec4((hb >> 2) & 3u) * 16.0 - 32.0);
                    const vec4 v2 = d * float(bitfieldExtract(int(s23), 0, 8)) *
                                    (nib4(qa, 4u) + vec4((hb >> 4) & 3u) * 16.0 - 32.0);
                    const vec4 v3 = d * float(bitfieldExtract(int(s23), 16, 8)) *
                                    (nib4(qb, 4u) + vec4((hb >> 6) & 3u) * 16.0 - 32.0);
                    [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                        const uint t = min(t0 + tt, t_end - 1u);
                        const uint xo = (t * pc.x_stride + bi * 256u + 128u * h + 4u * m) / 4u;
                        acc[r * NT + tt] += dot(v0, x4[xo]) + dot(v1, x4[xo + 8u]) +
                                            dot(v2, x4[xo + 16u]) + dot(v3, x4[xo + 24u]);
                    }
                }
            }
        } else
#endif
        for (uint sb = lane; sb < pc.k / 32u; sb += TPR) {
            /* rows past the part decode its last row, unused: a `continue`
             * here can keep the compiler from unrolling, and acc from staying
             * in registers (on lavapipe, a 100x slowdown) */
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                const uint b = min(row0 + r, pc.n_rows - 1u) * nb + sb / SUBS;
#ifdef ACT_Q8
                const float dw = block_scale(pc.scale_offset, b);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = min(t0 + tt, t_end - 1u); /* past the step: unused */
                    const uint xo = t * pc.x_stride + sb * 8u;
                    const float dx = uintBitsToFloat(xword(pc.x_scale_offset + t * nb + sb));
                    int s = 0;
#if defined(WTYPE_Q8_0)
                    [[unroll]] for (uint i = 0u; i < 8u; i++)
                        s += q8_word_dot(bword(b, i), xword(xo + i));
#else
                    [[unroll]] for (uint i = 0u; i < 4u; i++)
                        s += q4_word_dot(bword(b, i), xword(xo + i), xword(xo + 4u + i));
#endif
                    acc[r * NT + tt] += (dw * dx) * float(s);
                }
#elif defined(INT_DOT)
                uint q[8];
                vec4 sm;
                quants32(b, sb % SUBS, pc.scale_offset, q, sm);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = min(t0 + tt, t_end - 1u);
                    const uint xo = (t * pc.x_stride + sb * 8u) / 4u;
                    const float dx =
                        uintBitsToFloat(xword(pc.x_scale_offset + t * (pc.k / 32u) + sb));
                    const uvec4 xa = xword4(xo), xb = xword4(xo + 1u);
                    int s0 = 0, s1 = 0;
                    [[unroll]] for (uint i = 0u; i < 4u; i++) {
                        s0 += SDOT(q[i], xa[i]);
                        s1 += SDOT(q[4u + i], xb[i]);
                    }
                    float v = sm.x * float(s0) + sm.y * float(s1);
#ifdef QUANTS_MIN
                    /* the mins times the halves' sums of activations */
                    int m0 = 0, m1 = 0;
                    [[unroll]] for (uint i = 0u; i < 4u; i++) {
                        m0 += SDOT(0x01010101u, xa[i]);
                        m1 += SDOT(0x01010101u, xb[i]);
                    }
                    v += sm.z * float(m0) + sm.w * float(m1);
#endif
                    acc[r * NT + tt] += dx * v;
                }
#else
                vec4 v[8];
                dequant32(b, sb % SUBS, pc.scale_offset, v);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = min(t0 + tt, t_end - 1u);
                    const uint xo = (t * pc.x_stride + sb * 32u) / 4u;
                    float s = 0.0;
                    [[unroll]] for (uint i = 0u; i < 8u; i++) s += dot(v[i], x4[xo + i]);
                    acc[r * NT + tt] += s;
                }
#endif
            }
        }
#else
        for (uint k = lane; k < pc.k; k += TPR) {
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                const float w = weight_at(min(row0 + r, pc.n_rows - 1u), k, pc.k, 0u);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = min(t0 + tt, t_end - 1u);
                    acc[r * NT + tt] += w * act(x[t * pc.x_stride + k]);
                }
            }
        }
#endif

        /* the group's sum, in lane 0 */
#ifdef SUBGROUP
        [[unroll]] for (uint j = 0u; j < NR * NT; j++)
            for (uint o = 1u; o < TPR; o <<= 1) acc[j] += subgroupShuffleXor(acc[j], o);
#else
        [[unroll]] for (uint j = 0u; j < NR * NT; j++) red[j * WG + tid] = acc[j];
        barrier();
        for (uint s = TPR / 2u; s > 0u; s >>= 1u) {
            if (lane < s) {
                [[unroll]] for (uint j = 0u; j < NR * NT; j++)
                    red[j * WG + tid] += red[j * WG + tid + s];
            }
            barrier();
        }
        [[unroll]] for (uint j = 0u; j < NR * NT; j++) acc[j] = red[j * WG + tid];
        barrier(); /* red is reused by the next pass */
#endif
        if (lane == 0u) {
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = t0 + tt;
                    if (row0 + r < pc.n_rows && t < t_end) {
                        const uint out_t = pc.last_only != 0u ? 0u : t;
                        const uint o = out_t * pc.y_stride + pc.row_offset + row0 + r;
                        const float v = acc[r * NT + tt];
                        y[o] = ACC != 0u ? y[o] + v : v;
                    }
                }
            }
        }
    }
}
