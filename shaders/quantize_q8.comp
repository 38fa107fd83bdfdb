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

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(constant_id = 1) const uint FLOATS = 0;

layout(std430, binding = 2) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 2) writeonly buffer XF { float xf[]; };
#include "quantize_q8.glsl"

void main()
{
    const uint nb = pc.k / 32u;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i / nb >= step.n_tokens) return;
    Q8_ACT_STORE(x, i * 32u, i, pc.scale_offset); /* i * 32 = t * k + (i % nb) * 32 */
}
