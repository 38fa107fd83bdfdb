#version 450
#extension GL_GOOGLE_include_directive : require
/* quantize_q8: activations to Q8_0 blocks for the quantized matvec
 * (quantize_q8.glsl says how).
 * Output: per token k/32 blocks of 8 words (int8 quants, little-endian), then
 * from scale_offset one float d per block, token-major. One thread per block.
 * With FLOATS the output is instead the values the blocks stand for, d * q, as
 * floats in X's layout: the input of a GEMM (gemm.comp). */
#define KERNEL_QUANTIZE_Q8
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(constant_id = 1) const uint FLOATS = 0;

layout(std430, binding = 2) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 2) writeonly buffer XF4 { vec4 xf4[]; };
#include "quantize_q8.glsl"

void main()
{
    const uint nb = pc.k / 32u;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i / nb >= step.n_tokens) return;
    /* read as vec4s: one lane loop on lavapipe where 4 floats are 4 */
    float v[32];
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        const vec4 q = x4[8u * i + w]; /* floats i * 32 = t * k + (i % nb) * 32 .. */
        [[unroll]] for (uint c = 0u; c < 4u; c++) v[4u * w + c] = q[c];
    }
    Q8_ACT_STORE_FROM(v, 0u, i * 32u, i, pc.scale_offset);
}
