#version 450
#extension GL_GOOGLE_include_directive : require
/* gemm: y = W x for a batch of tokens (a prompt). A workgroup takes WG tokens,
 * one per thread, and BM rows. It walks the rows in steps of 32 elements: each
 * thread holds its token's 32 inputs in registers, and for each of the BM rows
 * the workgroup decodes the weights' 32-element sub-block (the same one for
 * every thread, so a device reads it once and broadcasts it) and every thread
 * adds its dot product. Every weight block is decoded once per WG tokens, not
 * once per token as in matvec, and no shared memory or barrier is needed.
 * BM is a specialization constant chosen per device (ops.c). With ACC the
 * result is added to y.
 *
 * Inputs are prepared as for matvec: Q4_0 and Q8_0 weights read the Q8_0
 * activations (as d * q, so a prompt sees the values a decode step sees),
 * F16 and BF16 weights read inputs rounded to their type. */
#define KERNEL_MATVEC /* the same push constants */
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint BM = 16; /* rows per workgroup */
layout(constant_id = 2) const uint ACC = 0; /* 1: y += W x */

layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
#include "quant.glsl"

#ifdef ACT_Q8
layout(std430, binding = 2) readonly buffer X { uint xq[]; };
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
/* the same input as vec4s, for block formats (rows a multiple of 32 floats) */
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, binding = 3) buffer Y { float y[]; };

#ifndef WTYPE_BLOCKS
/* input element k of token t (both in range), for the float formats */
float input_at(uint t, uint k) { return act(x[t * pc.x_stride + k]); }
#endif

void main()
{
    const uint row_tiles = (pc.n_rows + BM - 1u) / BM;
    const uint row0 = (group_index() % row_tiles) * BM;
    const uint tok0 = (group_index() / row_tiles) * WG;
    if (tok0 >= step.n_tokens) return; /* the whole workgroup: uniform */
    const uint t = tok0 + gl_LocalInvocationID.x;
    const bool valid = t < step.n_tokens;
    const uint n_rows = min(BM, pc.n_rows - row0);

    float acc[BM];
    [[unroll]] for (uint r = 0u; r < BM; r++) acc[r] = 0.0;

#ifdef WTYPE_BLOCKS
    const uint nb = pc.k / QK;
    for (uint k0 = 0u; k0 < pc.k; k0 += 32u) {
        vec4 xr[8];
        const uint tv = valid ? t : tok0; /* a thread past the step reads a valid token, unused */
#ifdef ACT_Q8
        /* one Q8_0 block: its scale and eight words of four quants */
        const float dx = uintBitsToFloat(xq[pc.x_scale_offset + tv * (pc.k / 32u) + k0 / 32u]);
        [[unroll]] for (uint i = 0u; i < 8u; i++) {
            const int w = int(xq[tv * pc.x_stride + k0 / 4u + i]);
            xr[i] = dx * vec4(bitfieldExtract(w, 0, 8), bitfieldExtract(w, 8, 8),
                              bitfieldExtract(w, 16, 8), bitfieldExtract(w, 24, 8));
        }
#else
        [[unroll]] for (uint i = 0u; i < 8u; i++) xr[i] = x4[(tv * pc.x_stride + k0) / 4u + i];
#endif
        /* rows past the matrix decode its last row again, unused: a guard
         * here would keep the loop from being unrolled, and acc in registers */
        [[unroll]] for (uint r = 0u; r < BM; r++) {
            vec4 v[8];
            dequant32((row0 + min(r, n_rows - 1u)) * nb + k0 / QK, (k0 % QK) / 32u, pc.scale_offset, v);
            float s = 0.0;
            [[unroll]] for (uint i = 0u; i < 8u; i++) s += dot(v[i], xr[i]);
            acc[r] += s;
        }
    }
#else
    for (uint k = 0u; k < pc.k; k++) {
        const float xv = valid ? input_at(t, k) : 0.0;
        [[unroll]] for (uint r = 0u; r < BM; r++)
            acc[r] += weight_at(row0 + min(r, n_rows - 1u), k, pc.k, 0u) * xv;
    }
#endif

    if (!valid) return;
    [[unroll]] for (uint r = 0u; r < BM; r++) {
        if (r < n_rows) {
            const uint o = t * pc.y_stride + pc.row_offset + row0 + r;
            y[o] = ACC != 0u ? y[o] + acc[r] : acc[r];
        }
    }
}
