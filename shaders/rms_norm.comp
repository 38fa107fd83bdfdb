#version 450
#extension GL_GOOGLE_include_directive : require
/* rms_norm: out = x / sqrt(mean(x^2) + eps) * weight, one workgroup per token. */
#define KERNEL_RMS_NORM
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) writeonly buffer Out { float y[]; };

shared float partial[WG];

void main()
{
    uint t = group_index();
    if (t >= step.n_tokens) return;
    uint tid = gl_LocalInvocationID.x;

    float sum = 0.0;
    for (uint i = tid; i < pc.n; i += WG) {
        float v = x[t * pc.n + i];
        sum += v * v;
    }
    partial[tid] = sum;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) partial[tid] += partial[tid + s];
        barrier();
    }
    float scale = inversesqrt(partial[0] / float(pc.n) + pc.eps);
    for (uint i = tid; i < pc.n; i += WG) y[t * pc.n + i] = x[t * pc.n + i] * scale * w[i];
}
