#version 450
#extension GL_GOOGLE_include_directive : require

/* eltwise: one element-wise operation (ELT_* in kernels.h, specialization
 * constant 1) on y, in place, with an optional second operand x. One thread
 * per element. GELU is llama.cpp's CPU GELU: the tanh form evaluated on the
 * input rounded to half and rounded to half again (its lookup table), the
 * identity from 10 up and zero from -10 down. A graph recorded for a batch
 * may run fewer tokens: the dispatch covers at most ELTWISE_ROWS tokens' worth
 * of threads and each thread strides over the rest (ops.c), so a short step
 * in a long graph launches few empty workgroups. */

#define KERNEL_ELTWISE
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;

layout(std430, binding = 1) buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };

float gelu(float v)
{
    if (v <= -10.0) return 0.0;
    if (v >= 10.0) return v;
    const float h = round_f16(v);
    return round_f16(0.5 * h * (1.0 + tanh(0.79788456080286535587989211986876 * h *
                                           (1.0 + 0.044715 * h * h))));
}

void apply(uint i)
{
    const float v = y[i];
    if (OP == ELT_ADD) y[i] = v + x[i];
    else if (OP == ELT_ADD_BIAS) y[i] = v + x[i % pc.n];
    else if (OP == ELT_SCALE) y[i] = v * pc.f;
    else if (OP == ELT_GELU) y[i] = gelu(v);
    else if (OP == ELT_SOFTCAP) y[i] = tanh(v / pc.f) * pc.f;
    else if (OP == ELT_GLU_SILU) y[i] = v / (1.0 + exp(-v)) * x[i];
    else if (OP == ELT_GLU_GELU) y[i] = gelu(v) * x[i];
    else if (OP == ELT_ADD_SCALED) {
        precise const float t = pc.f * x[i]; /* no fused multiply-add: llama.cpp rounds it */
        y[i] = v + t;
    }
}

void main()
{
    const uint total = (pc.last_only != 0u ? 1u : step.n_tokens) * pc.n;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint i = group_index() * WG + gl_LocalInvocationID.x; i < total; i += stride)
        apply(i);
}
