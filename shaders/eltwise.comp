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
layout(std430, binding = 1) buffer Y4 { vec4 y4[]; };
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(constant_id = 2) const uint FLOATS = 0;
layout(std430, binding = 3) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 3) writeonly buffer XF4 { vec4 xf4[]; };
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

/* OP on an element V of y and its operand XV (x[i], or x[i % n] for a bias) */
float op(float v, float xv)
{
    if (OP == ELT_ADD || OP == ELT_ADD_BIAS) return v + xv;
    if (OP == ELT_SCALE) return v * pc.f;
    if (OP == ELT_GELU) return gelu(v);
    if (OP == ELT_SOFTCAP) return tanh(v / pc.f) * pc.f;
    if (OP == ELT_GLU_SILU) return v / (1.0 + exp(-v)) * xv;
    if (OP == ELT_GLU_GELU) return gelu(v) * xv;
    /* ELT_ADD_SCALED: no fused multiply-add, llama.cpp rounds the product */
    precise const float t = pc.f * xv;
    return v + t;
}

/* whether OP reads x (otherwise bound to y, and not read) */
const bool USES_X = OP == ELT_ADD || OP == ELT_ADD_BIAS || OP == ELT_GLU_SILU ||
                    OP == ELT_GLU_GELU || OP == ELT_ADD_SCALED;

void main()
{
    const uint total = (pc.last_only != 0u ? 1u : step.n_tokens) * pc.n;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
#ifdef QUANTIZE
    /* block b is floats 32 b..: token-major, as quantize_q8's (n % 32 == 0),
     * read and written as vec4s (one lane loop on lavapipe where 4 floats
     * are 4), quantized from the registers */
    for (uint b = group_index() * WG + gl_LocalInvocationID.x; b < total / 32u; b += stride) {
        float v[32];
        [[unroll]] for (uint w = 0u; w < 8u; w++) {
            const uint i = 32u * b + 4u * w;
            const vec4 yv = y4[i / 4u];
            const vec4 xv = USES_X ? x4[(OP == ELT_ADD_BIAS ? i % pc.n : i) / 4u] : vec4(0.0);
            vec4 r;
            [[unroll]] for (uint c = 0u; c < 4u; c++) r[c] = op(yv[c], xv[c]);
            y4[i / 4u] = r;
            [[unroll]] for (uint c = 0u; c < 4u; c++) v[4u * w + c] = r[c];
        }
        Q8_ACT_STORE_FROM(v, 0u, 32u * b, b, pc.q8_scale_offset);
    }
#else
    for (uint i = group_index() * WG + gl_LocalInvocationID.x; i < total; i += stride)
        y[i] = op(y[i], USES_X ? x[OP == ELT_ADD_BIAS ? i % pc.n : i] : 0.0);
#endif
}
