#version 450
#extension GL_GOOGLE_include_directive : require
/* rms_norm: out = x / sqrt(mean(x^2) + eps) * weight, one workgroup per token.
 * The scale is computed as llama.cpp's CPU path computes it (squares summed in
 * double, 1.0f / sqrtf(mean + eps)): float-float sums and correctly rounded
 * sqrt and division, so the normalized values match it to the last bit and a
 * Q8_0 quantization of them rounds the same way. */
#define KERNEL_RMS_NORM
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) writeonly buffer Out { float y[]; };

shared vec2 partial[WG];

void main()
{
    uint t = group_index();
    if (t >= step.n_tokens) return;
    uint tid = gl_LocalInvocationID.x;

    vec2 sum = vec2(0.0);
    for (uint i = tid; i < pc.n; i += WG) {
        precise float v = x[t * pc.n + i];
        precise float sq = v * v; /* rounded to float, as llama.cpp's x*x is */
        sum = ff_add(sum, vec2(sq, 0.0));
    }
    partial[tid] = sum;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) partial[tid] = ff_add(partial[tid], partial[tid + s]);
        barrier();
    }
    /* mean = (hi + lo) / n rounded once: the quotient of hi, corrected by lo and
     * by its own exact residual */
    const float n = float(pc.n);
    const vec2 total = partial[0];
    precise float m0 = div_rn(total.x, n);
    vec2 back = two_prod(m0, n);
    precise float mean = m0 + (((total.x - back.x) - back.y) + total.y) / n;
    precise float denom = sqrt_rn(mean + pc.eps);
    const float scale = div_rn(1.0, denom);
    for (uint i = tid; i < pc.n; i += WG) y[t * pc.n + i] = x[t * pc.n + i] * scale * w[i];
}
