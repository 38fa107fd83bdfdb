#version 450
#extension GL_GOOGLE_include_directive : require
/* swiglu: out = silu(gate) * up, the gated FFN activation. One thread per element. */
#define KERNEL_SWIGLU
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Gate { float gate[]; };
layout(std430, binding = 2) readonly buffer Up { float up[]; };
layout(std430, binding = 3) writeonly buffer Out { float y[]; };

void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= step.n_tokens * pc.n) return;
    float g = gate[i];
    y[i] = g / (1.0 + exp(-g)) * up[i];
}
