#version 450
#extension GL_GOOGLE_include_directive : require
/* quantize_q8: activations to Q8_0 blocks for the quantized matvec, as
 * llama.cpp's CPU path quantizes them (engine/core/quant.c quant_q8_activations):
 * d = amax / 127 rounded to half, q = round-half-even(x * 127 / amax).
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

void main()
{
    const uint nb = pc.k / 32u;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    const uint t = i / nb;
    if (t >= step.n_tokens) return;
    const uint base = i * 32u; /* = t * k + (i % nb) * 32 */

    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(x[base + j]));
    const float id = amax != 0.0 ? div_rn(127.0, amax) : 0.0;
    const float d = round_f16(div_rn(amax, 127.0));
    if (FLOATS != 0u) {
        for (uint j = 0u; j < 32u; j++) xf[base + j] = d * roundEven(x[base + j] * id);
        return;
    }
    for (uint w = 0u; w < 8u; w++) {
        uint word = 0u;
        for (uint j = 0u; j < 4u; j++) {
            int q = int(roundEven(x[base + 4u * w + j] * id));
            word |= uint(q & 0xff) << (8u * j);
        }
        xq[i * 8u + w] = word;
    }
    xq[pc.scale_offset + i] = floatBitsToUint(d);
}
