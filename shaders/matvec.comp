#version 450
#extension GL_GOOGLE_include_directive : require
/* matvec: y = W x for every token of the step (or only the last), where W is
 * one part of a weight tensor (see quant.glsl). Each workgroup computes NR rows
 * for NT tokens at a time: its threads stride along the row, then the partial
 * sums meet in shared memory. With ACC the result is added to y, which is how
 * the attention output and FFN down projections land on the residual stream.
 *
 * The input is prepared as llama.cpp's CPU backend prepares it, so that greedy
 * decoding agrees with it token for token: quantized weights take activations
 * quantized to Q8_0 blocks (quantize_q8.comp; the block dot product is then an
 * exact integer sum), half-float weights take activations rounded to half. */
#define KERNEL_MATVEC
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint NR = 2;  /* rows per workgroup */
layout(constant_id = 2) const uint NT = 4;  /* tokens per pass over the rows */
layout(constant_id = 3) const uint ACC = 0; /* 1: y += W x */

layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
#include "quant.glsl"

#ifdef WTYPE_BLOCKS
layout(std430, binding = 2) readonly buffer X { uint xq[]; };
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 3) buffer Y { float y[]; };

shared float red[NR * NT * WG];

#ifdef WTYPE_BLOCKS
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
#endif

void main()
{
    const uint row0 = group_index() * NR;
    if (row0 >= pc.n_rows) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint t_begin = pc.last_only != 0u ? step.n_tokens - 1u : 0u;
    const uint t_end = step.n_tokens;

    for (uint t0 = t_begin; t0 < t_end; t0 += NT) {
        float acc[NR * NT];
        [[unroll]] for (uint j = 0u; j < NR * NT; j++) acc[j] = 0.0;

#ifdef WTYPE_BLOCKS
        const uint nb = pc.k / QBLOCK;
        for (uint bi = tid; bi < nb; bi += WG) {
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                if (row0 + r >= pc.n_rows) continue;
                const uint b = (row0 + r) * nb + bi;
                const float dw = block_scale(pc.scale_offset, b);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = t0 + tt;
                    if (t >= t_end) continue;
                    const uint xo = t * pc.x_stride + bi * 8u;
                    const float dx = uintBitsToFloat(xq[pc.x_scale_offset + t * nb + bi]);
                    int s = 0;
#if defined(WTYPE_Q8_0)
                    [[unroll]] for (uint i = 0u; i < 8u; i++)
                        s += dot4(i8x4(weights[b * BLOCK_WORDS + i]), i8x4(xq[xo + i]));
#else
                    [[unroll]] for (uint i = 0u; i < 4u; i++) {
                        const uint w = weights[b * BLOCK_WORDS + i];
                        s += dot4(u4x4(w, 0), i8x4(xq[xo + i])) + dot4(u4x4(w, 4), i8x4(xq[xo + 4u + i]));
                    }
#endif
                    acc[r * NT + tt] += (dw * dx) * float(s);
                }
            }
        }
#else
        for (uint k = tid; k < pc.k; k += WG) {
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                if (row0 + r >= pc.n_rows) continue;
                const float w = weight_at(row0 + r, k, pc.k, 0u);
                [[unroll]] for (uint tt = 0u; tt < NT; tt++) {
                    const uint t = t0 + tt;
                    if (t >= t_end) continue;
#ifdef WTYPE_F16
                    acc[r * NT + tt] += w * round_f16(x[t * pc.x_stride + k]);
#else
                    acc[r * NT + tt] += w * x[t * pc.x_stride + k];
#endif
                }
            }
        }
#endif

        /* tree reduction over the workgroup; WG is a power of two */
        [[unroll]] for (uint j = 0u; j < NR * NT; j++) red[j * WG + tid] = acc[j];
        barrier();
        for (uint s = WG / 2u; s > 0u; s >>= 1u) {
            if (tid < s) {
                [[unroll]] for (uint j = 0u; j < NR * NT; j++)
                    red[j * WG + tid] += red[j * WG + tid + s];
            }
            barrier();
        }
        if (tid < NR * NT) {
            const uint r = tid / NT, tt = tid % NT;
            const uint t = t0 + tt;
            if (row0 + r < pc.n_rows && t < t_end) {
                const uint out_t = pc.last_only != 0u ? 0u : t;
                const uint o = out_t * pc.y_stride + pc.row_offset + row0 + r;
                const float v = red[tid * WG];
                y[o] = ACC != 0u ? y[o] + v : v;
            }
        }
        barrier(); /* red is reused by the next pass */
    }
}
