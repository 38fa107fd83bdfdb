#version 450
#extension GL_GOOGLE_include_directive : require

/* eltwise: one element-wise operation (ELT_* in kernels.h, specialization
 * constant 1) on y, in place, with an optional second operand x. One thread
 * per element. GELU is llama.cpp's CPU GELU: the tanh form evaluated on the
 * input rounded to half and rounded to half again (its lookup table), the
 * identity from 10 up and zero from -10 down. A graph recorded for a batch
 * may run fewer tokens: the dispatch covers at most ELTWISE_ROWS tokens' worth
 * of threads and each thread strides over the rest (ops.c), so a short step
 * in a long graph launches few empty workgroups. QUANTIZE (eltwise_q8) also
 * writes the output's Q8_0 blocks for the quantized matmul that reads it (a
 * GLU's for ffn_down): a thread per block of 32, which it quantizes from what
 * it wrote, by quantize_q8.comp's operations, so the bits are the same. */

#define KERNEL_ELTWISE
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;

layout(std430, binding = 1) buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
#ifdef QUANTIZE
layout(constant_id = 2) const uint FLOATS = 0;
layout(std430, binding = 3) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 3) writeonly buffer XF { float xf[]; };
#include "quantize_q8.glsl"
#endif

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
#ifdef QUANTIZE
    /* block b is floats 32 b..: token-major, as quantize_q8's (n % 32 == 0) */
    for (uint b = group_index() * WG + gl_LocalInvocationID.x; b < total / 32u; b += stride) {
        for (uint j = 0u; j < 32u; j++) apply(32u * b + j);
        Q8_ACT_STORE(y, 32u * b, b, pc.q8_scale_offset);
    }
#else
    for (uint i = group_index() * WG + gl_LocalInvocationID.x; i < total; i += stride)
        apply(i);
#endif
}
