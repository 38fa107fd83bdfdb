#version 450
#extension GL_GOOGLE_include_directive : require
/* gemm: y = W x for a batch of tokens (a prompt). A workgroup takes TB tokens
 * and WG * RPT rows: each thread holds RPT rows (WG apart, so neighbouring
 * threads read neighbouring rows). It walks the rows in steps of 32 elements:
 * every thread decodes its rows' 32-element sub-blocks once, then adds their
 * dot products with each of the TB tokens' inputs, so a decoded weight serves
 * TB tokens and an input RPT rows. TB, RPT, TT and WG are specialization
 * constants (ops.c). With pc.acc the result is added to y: a push constant,
 * not a specialization, as every variant costs lavapipe 0.5-2 s to create
 * (its loops unroll into thousands of multiply-adds; docs/PERFORMANCE.md).
 *
 * Every thread needs the same inputs, but lavapipe (Mesa 22.3) turns a load
 * inside a loop into a loop over the 8 lanes of a subgroup, one lane at a
 * time, unless its address is made of constants and push constants only. So
 * reading an input where it is used costs a lane loop per 4 inputs per
 * token, and those loops took most of the time. The SUBGROUP variant has
 * lanes 0..7 load the sub-block's 8 vec4s of a token, one each, and hands
 * them to every lane by shuffles with constant indices (a permute on
 * lavapipe; a broadcast there searches for the first active lane every
 * time): one lane loop per token and sub-block instead of 8. The other
 * variant (devices without subgroup shuffles, or VKLLM_FORCE=shared-reduce)
 * reads them directly. The TEXEL_INPUT variant (block formats, on a CPU
 * device; ops.c) has lanes 0..7 read them through a uniform texel buffer
 * instead: on lavapipe that is a 16-byte load per lane without branches,
 * where a storage buffer's is a loop over the lanes with a bounds check per
 * component; it reads the weights so too (TEXEL_WEIGHTS, quant.glsl). Every lane reaches the loop (rows and tokens past the end are
 * clamped, not masked), as the shuffles need.
 *
 * The tokens go through in tiles of TT: the TT x RPT partial sums of a tile
 * (vec4s, one component at a time) live over one sub-block and go to the
 * TB x RPT totals once per sub-block, so a CPU device (a thread's float is
 * one AVX register of 8 lanes) keeps them in registers. (gallivm multiplies
 * and adds separately: fma() gave the same code.) The weights are read four
 * words per load (WEIGHTS4 in quant.glsl).
 *
 * Inputs are floats. For Q4_0 and Q8_0 weights they are the Q8_0-rounded
 * activations that a decode step's matvec sees (quantize_q8.comp writes them
 * as floats for a GEMM); F16 and BF16 weights round them to their type here.
 *
 * PAIRS (Q4_0, Q4_K and Q6_K, on a CPU device; ops.c): two tokens' products in
 * one 32-bit integer multiply. gallivm never fuses a multiply and an add, so
 * the float loop above costs two instructions a product; here a sub-block's
 * int8 inputs of tokens A and B go in one int, qa + 65536 qb, and its weights
 * as ints -8..7 (Q4_K's 0..15 less 8) times that sum to sa + 65536 sb over
 * the 32 elements, where |sa| <= 8 * 127 * 32 < 32768 leaves both
 * recoverable: two products per multiply and add (Q6_K's weights, -32..31,
 * allow 8 products per sum: its sums are split every 8 elements). The inputs
 * are Q8_0-rounded floats (ops.c has the K-quants' rounded too) that
 * pair_inputs.comp turns into those ints, with each block's 127 d and the
 * paired sums, before the GEMM (ops.c), so that the loop here only reads
 * them: recovering them per workgroup took a fifth of its time. A sub-block's sum is exact, scaled by
 * the weights' d and the input's 127 d (the 127 divided out once, at the
 * end), as the integer-dot matvec and llama.cpp's CPU path scale theirs;
 * Q4_K adds its min and the 8 taken off times the inputs' sum. Binding 2 is
 * then pair_inputs' output, pc.x_stride its pairs per block and
 * pc.x_scale_offset the texel of its scales. 1.3-1.4x the float loop's speed
 * on lavapipe, Q6_K's 1.3x (docs/PERFORMANCE.md). */
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#define KERNEL_MATVEC /* the same push constants */
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint TB = 32; /* tokens per workgroup */
layout(constant_id = 2) const uint RPT = 8; /* rows per thread */
layout(constant_id = 3) const uint TT = 3;  /* tokens per register tile */

#ifndef TEXEL_WEIGHTS /* else quant.glsl reads them */
layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
/* the same words four at a time (quant.glsl) */
layout(std430, binding = 1) readonly buffer Weights4 { uvec4 weights4[]; };
#define WEIGHTS4 1
#endif
#include "quant.glsl"

#ifdef TEXEL_INPUT
#ifndef WTYPE_BLOCKS
#error "texel inputs are read as vec4s: block formats only"
#endif
layout(binding = 2) uniform usamplerBuffer x_texels; /* the floats' bits */
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
/* the same input as vec4s, for block formats (rows a multiple of 32 floats) */
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, binding = 3) buffer Y { float y[]; };

/* Elements k0 .. k0+31 of row R, as v[i] = elements 4i .. 4i+3; past the end
 * of a float row, zeros. */
void load32(uint r, uint k0, out vec4 v[8])
{
#ifdef WTYPE_BLOCKS
    const uint nb = pc.k / QK;
    dequant32(r * nb + k0 / QK, (k0 % QK) / 32u, pc.scale_offset, v);
#else
    [[unroll]] for (uint i = 0u; i < 32u; i++) {
        const uint k = k0 + i;
        v[i / 4u][i % 4u] = k < pc.k ? weight_at(r, k, pc.k, 0u) : 0.0;
    }
#endif
}

/* Inputs k0 + 4i .. k0 + 4i + 3 of the token whose row starts at T; past the
 * end of a float row, its last element again (its weights are zeros). */
vec4 input4(uint t, uint k0, uint i)
{
#if defined(TEXEL_INPUT)
    return uintBitsToFloat(texelFetch(x_texels, int((t + k0) / 4u + i)));
#elif defined(WTYPE_BLOCKS)
    return x4[(t + k0) / 4u + i];
#else
    vec4 v;
    [[unroll]] for (uint c = 0u; c < 4u; c++) v[c] = act(x[t + min(k0 + 4u * i + c, pc.k - 1u)]);
    return v;
#endif
}

/* Inputs k0 .. k0+31 of the token whose row starts at T, as v[i] = 4i .. 4i+3 */
void inputs32(uint t, uint k0, out vec4 v[8])
{
#ifdef SUBGROUP
    /* lanes 0..7 load one vec4 each (further lanes repeat them), all take all */
    const vec4 mine = input4(t, k0, gl_SubgroupInvocationID % 8u);
    [[unroll]] for (uint i = 0u; i < 8u; i++) v[i] = subgroupShuffle(mine, i);
#else
    [[unroll]] for (uint i = 0u; i < 8u; i++) v[i] = input4(t, k0, i);
#endif
}

#ifdef PAIRS
#if !(defined(WTYPE_Q4_0) || defined(WTYPE_Q4_K) || defined(WTYPE_Q6_K)) || !defined(TEXEL_INPUT) || \
    !defined(SUBGROUP)
#error "paired products: Q4_0, Q4_K or Q6_K weights, texel inputs, subgroup shuffles"
#endif
/* Row R's sub-block at K0 as ints -8..7, element i at w[i] standing for
 * ab.x w[i] + ab.y; Q6_K's as ints -32..31 standing for ab.x w[i] (i < 16)
 * or ab.y w[i] */
void load32_ints(uint r, uint k0, out int w[32], out vec2 ab)
{
    const uint b = r * (pc.k / QK) + k0 / QK;
#if defined(WTYPE_Q4_0)
    ab = vec2(block_scale(pc.scale_offset, b), 0.0);
    const uvec4 q4 = bword4(b, 0u);
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            w[4u * i + j] = int((q4[i] >> (8u * j)) & 15u) - 8;
            w[16u + 4u * i + j] = int((q4[i] >> (8u * j + 4u)) & 15u) - 8;
        }
#elif defined(WTYPE_Q6_K)
    /* quants32: int8 bytes, each half scaled by its own */
    uint q[8];
    vec4 sm;
    quants32(b, (k0 % QK) / 32u, pc.scale_offset, q, sm);
    ab = sm.xy;
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) w[4u * i + j] = bitfieldExtract(int(q[i]), int(8u * j), 8);
#else
    /* quants32: 0..15 standing for sm.x q + sm.z (both halves alike) */
    uint q[8];
    vec4 sm;
    quants32(b, (k0 % QK) / 32u, pc.scale_offset, q, sm);
    ab = vec2(sm.x, 8.0 * sm.x + sm.z);
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) w[4u * i + j] = int((q[i] >> (8u * j)) & 15u) - 8;
#endif
}

/* S = sa + 65536 sb as (sa, sb), |sa| < 32768 */
ivec2 split_pair(int s)
{
    const int sa = (s << 16) >> 16;
    return ivec2(sa, (s - sa) >> 16);
}

/* Pair J's inputs k0 .. k0+31 as pair_inputs.comp wrote them: p[i] = qa +
 * 65536 qb for element i. Lanes 0..7 read a texel each, every lane gets all. */
void input_pairs(uint j, uint k0, out int p[32])
{
    const ivec4 mine = ivec4(texelFetch(x_texels, int(8u * (j * (pc.k / 32u) + k0 / 32u) +
                                                      gl_SubgroupInvocationID % 8u)));
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        [[unroll]] for (uint c = 0u; c < 4u; c++) p[4u * i + c] = subgroupShuffle(mine[c], i);
}
#endif

void main()
{
    const uint rows_per_wg = WG * RPT;
    const uint row_tiles = (pc.n_rows + rows_per_wg - 1u) / rows_per_wg;
    const uint row0 = (group_index() % row_tiles) * rows_per_wg + gl_LocalInvocationID.x;
    const uint tok0 = (group_index() / row_tiles) * TB;
    if (tok0 >= step.n_tokens) return; /* the whole workgroup: uniform */
    const uint n_tok = min(TB, step.n_tokens - tok0);

    /* Rows and tokens past the end repeat the last one, unused: a guard
     * inside the loops would keep them from being unrolled, and the arrays
     * from staying in registers. */
    uint rows[RPT];
    [[unroll]] for (uint r = 0u; r < RPT; r++) rows[r] = min(row0 + r * WG, pc.n_rows - 1u);
#ifndef PAIRS
    uint toks[TB];
    [[unroll]] for (uint t = 0u; t < TB; t++) toks[t] = (tok0 + min(t, n_tok - 1u)) * pc.x_stride;
#endif

    float acc[TB][RPT];
    [[unroll]] for (uint t = 0u; t < TB; t++)
        [[unroll]] for (uint r = 0u; r < RPT; r++) acc[t][r] = 0.0;

#ifdef PAIRS
    /* the workgroup's TB / 2 pairs (pc.x_stride of them per block; the
     * last ones may be past the step's tokens: read, never stored) */
    const uint pair0 = tok0 / 2u;
    for (uint k0 = 0u; k0 < pc.k; k0 += 32u) {
        int w[RPT][32];
        vec2 ab[RPT];
        [[unroll]] for (uint r = 0u; r < RPT; r++) load32_ints(rows[r], k0, w[r], ab[r]);
        /* the pairs' scales and sums: lane l reads those of pairs l, l + 8, .. */
        uvec4 scales[(TB / 2u + 7u) / 8u];
        [[unroll]] for (uint g = 0u; g < (TB / 2u + 7u) / 8u; g++)
            scales[g] = texelFetch(x_texels, int(pc.x_scale_offset + (k0 / 32u) * pc.x_stride + pair0 +
                                                 8u * g + gl_SubgroupInvocationID % 8u));
        [[unroll]] for (uint t = 0u; t < TB; t += 2u) {
            int p[32];
            input_pairs(pair0 + t / 2u, k0, p);
            const uvec4 sc = subgroupShuffle(scales[t / 16u], (t / 2u) % 8u);
            const float da = uintBitsToFloat(sc.x), db = uintBitsToFloat(sc.y);
#if defined(WTYPE_Q6_K)
            /* 8 products of weights -32..31 at a time keep |sa| <= 8 * 32 *
             * 127 < 32768: each 8's sums split, those of a half added */
            ivec2 halves[RPT][2];
            [[unroll]] for (uint e = 0u; e < 4u; e++) {
                int s[RPT];
                [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] = 0;
                [[unroll]] for (uint i = 0u; i < 8u; i++)
                    [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] += w[r][8u * e + i] * p[8u * e + i];
                [[unroll]] for (uint r = 0u; r < RPT; r++)
                    halves[r][e / 2u] = e % 2u == 0u ? split_pair(s[r]) : halves[r][e / 2u] + split_pair(s[r]);
            }
            [[unroll]] for (uint r = 0u; r < RPT; r++) {
                const vec2 v = ab[r].x * vec2(halves[r][0]) + ab[r].y * vec2(halves[r][1]);
                acc[t][r] += v.x * da;
                if (t + 1u < TB) acc[t + 1u][r] += v.y * db;
            }
#else
            int s[RPT];
            [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] = 0;
            [[unroll]] for (uint i = 0u; i < 32u; i++)
                [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] += w[r][i] * p[i];
#ifdef QUANTS_MIN
            const vec2 sx = vec2(split_pair(int(sc.z))); /* the inputs' sums */
#endif
            [[unroll]] for (uint r = 0u; r < RPT; r++) {
                const vec2 sp = vec2(split_pair(s[r]));
#ifdef QUANTS_MIN
                const vec2 v = ab[r].x * sp + ab[r].y * sx;
                acc[t][r] += v.x * da;
                if (t + 1u < TB) acc[t + 1u][r] += v.y * db;
#else
                acc[t][r] += sp.x * (ab[r].x * da);
                if (t + 1u < TB) acc[t + 1u][r] += sp.y * (ab[r].x * db);
#endif
            }
#endif
        }
    }
    [[unroll]] for (uint t = 0u; t < TB; t++)
        [[unroll]] for (uint r = 0u; r < RPT; r++) acc[t][r] /= 127.0;
#else
    for (uint k0 = 0u; k0 < pc.k; k0 += 32u) {
        vec4 w[RPT][8];
        [[unroll]] for (uint r = 0u; r < RPT; r++) load32(rows[r], k0, w[r]);
        /* a tile past TB (TB not a multiple of TT) drops out at
         * specialization: its conditions are constants */
        [[unroll]] for (uint t0 = 0u; t0 < TB; t0 += TT) {
            vec4 xv[TT][8];
            [[unroll]] for (uint j = 0u; j < TT; j++)
                if (t0 + j < TB) inputs32(toks[t0 + j], k0, xv[j]);
            /* summed as vec4s, then across: the order (and so the rounding)
             * of every GEMM before this one, which greedy goldens near a tie
             * notice. The four components are independent sums, so they go
             * one after another: TT x RPT running sums at a time (8 floats
             * with ops.c's TT of 1: registers on a CPU device, where a
             * TT of 3 spilled some) rather than four times as many,
             * which spilled to memory and cost a load and a store per
             * multiply-add. */
            float s[TT][RPT][4];
            [[unroll]] for (uint c = 0u; c < 4u; c++) {
                float sc[TT][RPT];
                [[unroll]] for (uint j = 0u; j < TT; j++)
                    [[unroll]] for (uint r = 0u; r < RPT; r++) sc[j][r] = 0.0;
                [[unroll]] for (uint i = 0u; i < 8u; i++) {
                    [[unroll]] for (uint j = 0u; j < TT; j++) {
                        if (t0 + j < TB) {
                            [[unroll]] for (uint r = 0u; r < RPT; r++)
                                sc[j][r] += w[r][i][c] * xv[j][i][c];
                        }
                    }
                }
                [[unroll]] for (uint j = 0u; j < TT; j++)
                    [[unroll]] for (uint r = 0u; r < RPT; r++) s[j][r][c] = sc[j][r];
            }
            [[unroll]] for (uint j = 0u; j < TT; j++) {
                [[unroll]] for (uint r = 0u; r < RPT; r++) {
                    const float v[4] = s[j][r];
                    if (t0 + j < TB) acc[t0 + j][r] += (v[0] + v[1]) + (v[2] + v[3]);
                }
            }
        }
    }
#endif

    [[unroll]] for (uint t = 0u; t < TB; t++) {
        [[unroll]] for (uint r = 0u; r < RPT; r++) {
            const uint row = row0 + r * WG;
            if (t < n_tok && row < pc.n_rows) {
                const uint o = (tok0 + t) * pc.y_stride + pc.row_offset + row;
                y[o] = pc.acc != 0u ? y[o] + acc[t][r] : acc[t][r];
            }
        }
    }
}
