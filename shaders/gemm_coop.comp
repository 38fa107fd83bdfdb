#version 450
#extension GL_GOOGLE_include_directive : require
/* gemm_coop: y = W x for a batch of tokens, its products on the device's
 * matrix units (VK_NV_cooperative_matrix: 16 x 16 x 16 half-float products
 * summed in floats). A workgroup of 128 threads takes 64 rows and 64 tokens.
 * For each 32 elements of k, its threads decode 64 rows' sub-blocks (one
 * each) and load the 64 tokens' inputs (one each), both rounded to half
 * floats into shared memory; then each of its four subgroups of 32 multiplies
 * its 32 rows by 32 tokens as 2 x 2 tiles of 16 x 16. At the end the tiles go
 * through shared memory to y, added to it with pc.acc (ops.c).
 *
 * Without COOPMAT the same kernel multiplies in plain code, each thread a row
 * by 32 tokens: only the products differ, so a device without matrix units
 * (lavapipe; VKLLM_FORCE=coopmat-emulate) tests the rest (decoding, the
 * tiles in shared memory, rows and tokens past the end, the store).
 *
 * Both round each weight and input to a half float once, to nearest even
 * (round_f16: a float16_t conversion leaves the rounding mode to the
 * implementation), so that the products are exact in floats and the result is
 * the sum over k of the rounded terms, in whatever order: the tolerance of
 * test_kernels. Block formats only: a float row's k need not be a multiple
 * of 32, and F32's weights lose precision in halves. Rows and tokens past the
 * end repeat the last one, never stored. */
#ifdef COOPMAT
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#define KERNEL_MATVEC /* the same push constants */
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
layout(std430, binding = 1) readonly buffer Weights4 { uvec4 weights4[]; };
#define WEIGHTS4 1
#include "quant.glsl"
#ifndef WTYPE_BLOCKS
#error "gemm_coop: block formats only"
#endif

layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 3) buffer Y { float y[]; };

#define BM 64u  /* rows per workgroup */
#define BN 64u  /* tokens per workgroup */
#define BK 32u  /* elements of k per step */
#define BKP 40u /* a tile row's stride: 80 bytes of halves, 16-byte aligned */

#ifdef COOPMAT
#define TILE_T float16_t
#define BMP 68u /* the output tile's stride in floats, 16-byte aligned */
const int SUBGROUP_SCOPE = 3;
shared float c_tile[BN * BMP];
#else
#define TILE_T float
#endif
shared TILE_T w_tile[BM * BKP]; /* row-major: BM rows of BK */
shared TILE_T x_tile[BN * BKP]; /* token-major: BN tokens of BK */

/* Elements k0 .. k0+31 of the tile's rows and tokens into shared memory:
 * threads 0..63 decode a row each, 64..127 load a token each. The loops stay
 * loops: lavapipe took 20-50 s to compile the unrolled emulation. */
void stage(uint row0, uint tok0, uint n_tok, uint k0)
{
    const uint i = gl_LocalInvocationID.x;
    if (i < BM) {
        const uint r = min(row0 + i, pc.n_rows - 1u);
        vec4 v[8];
        dequant32(r * (pc.k / QK) + k0 / QK, (k0 % QK) / 32u, pc.scale_offset, v);
        [[dont_unroll]] for (uint j = 0u; j < 32u; j++)
            w_tile[i * BKP + j] = TILE_T(round_f16(v[j / 4u][j % 4u]));
    } else {
        const uint t = tok0 + min(i - BM, n_tok - 1u);
        [[dont_unroll]] for (uint j = 0u; j < 32u; j++)
            x_tile[(i - BM) * BKP + j] =
                TILE_T(round_f16(x4[(t * pc.x_stride + k0) / 4u + j / 4u][j % 4u]));
    }
}

/* Row M and token T of the tile, if both are in range */
void store(uint row0, uint tok0, uint n_tok, uint m, uint t, float v)
{
    const uint row = row0 + m;
    if (t < n_tok && row < pc.n_rows) {
        const uint o = (tok0 + t) * pc.y_stride + pc.row_offset + row;
        y[o] = pc.acc != 0u ? y[o] + v : v;
    }
}

void main()
{
    const uint row_tiles = (pc.n_rows + BM - 1u) / BM;
    const uint row0 = (group_index() % row_tiles) * BM;
    const uint tok0 = (group_index() / row_tiles) * BN;
    if (tok0 >= step.n_tokens) return; /* the whole workgroup: uniform */
    const uint n_tok = min(BN, step.n_tokens - tok0);

#ifdef COOPMAT
    /* subgroup s: rows 32 (s % 2) .., tokens 32 (s / 2) .. */
    const uint m0 = (gl_SubgroupID % 2u) * 32u, n0 = (gl_SubgroupID / 2u) * 32u;
    fcoopmatNV<32, SUBGROUP_SCOPE, 16, 16> acc[2][2];
    [[unroll]] for (uint i = 0u; i < 2u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            acc[i][j] = fcoopmatNV<32, SUBGROUP_SCOPE, 16, 16>(0.0);
#else
    /* thread i: row i % 64, tokens i / 64, i / 64 + 2, .. */
    const uint m = gl_LocalInvocationID.x % BM, t0 = gl_LocalInvocationID.x / BM;
    float acc[BN / 2u];
    for (uint j = 0u; j < BN / 2u; j++) acc[j] = 0.0;
#endif

    for (uint k0 = 0u; k0 < pc.k; k0 += BK) {
        stage(row0, tok0, n_tok, k0);
        barrier();
#ifdef COOPMAT
        [[unroll]] for (uint kk = 0u; kk < BK; kk += 16u) {
            /* A: 16 rows by 16 of k, row-major; B: 16 of k by 16 tokens,
             * column-major (a token's inputs are contiguous) */
            fcoopmatNV<16, SUBGROUP_SCOPE, 16, 16> a[2], b[2];
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                coopMatLoadNV(a[i], w_tile, (m0 + 16u * i) * BKP + kk, BKP, false);
            [[unroll]] for (uint j = 0u; j < 2u; j++)
                coopMatLoadNV(b[j], x_tile, (n0 + 16u * j) * BKP + kk, BKP, true);
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                [[unroll]] for (uint j = 0u; j < 2u; j++)
                    acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
        }
#else
        [[dont_unroll]] for (uint j = 0u; j < BN / 2u; j++) {
            float s = acc[j];
            [[dont_unroll]] for (uint kk = 0u; kk < BK; kk++)
                s += w_tile[m * BKP + kk] * x_tile[(t0 + 2u * j) * BKP + kk];
            acc[j] = s;
        }
#endif
        barrier(); /* the next step's stage overwrites the tiles */
    }

#ifdef COOPMAT
    /* C: 16 rows by 16 tokens, column-major: token-major like y */
    [[unroll]] for (uint i = 0u; i < 2u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            coopMatStoreNV(acc[i][j], c_tile, (n0 + 16u * j) * BMP + m0 + 16u * i, BMP, true);
    barrier();
    for (uint e = gl_LocalInvocationID.x; e < BM * BN; e += WG)
        store(row0, tok0, n_tok, e % BM, e / BM, c_tile[(e / BM) * BMP + e % BM]);
#else
    for (uint j = 0u; j < BN / 2u; j++) store(row0, tok0, n_tok, m, t0 + 2u * j, acc[j]);
#endif
}
