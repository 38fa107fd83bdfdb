#version 450
#extension GL_GOOGLE_include_directive : require

/* norm: out = normalize(x) * weight (+ bias), one workgroup per row; a token
 * has `rows` rows (its heads, for per-head Q/K norms), which share one weight
 * vector or have one each (stablelm). RMSNorm scales by
 * 1 / sqrt(mean(x^2) + eps); LayerNorm subtracts the mean first and scales by
 * 1 / sqrt(variance + eps). The scale is computed as llama.cpp's CPU path
 * computes it (sums in double, then 1.0f / sqrtf(...)): float-float sums and
 * correctly rounded sqrt and division, so the normalized values match it to
 * the last bit and a Q8_0 quantization of them rounds the same way. In place
 * (x = out) is allowed: each thread rewrites only the elements it read.
 * QUANTIZE (norm_q8) adds the output's Q8_0 blocks, below. */

#define KERNEL_NORM
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) readonly buffer B { float b[]; };
#ifdef QUANTIZE
/* norm_q8: the output quantized too, for the quantized matmul that reads it
 * (one launch fewer than norm then quantize_q8): once the row is written,
 * its blocks are quantized from what was written, by quantize_q8.comp's
 * operations (quantize_q8.glsl), so the bits are the same. coherent: a
 * thread reads what others of its workgroup wrote. */
layout(std430, binding = 4) coherent buffer Out { float y[]; };
layout(constant_id = 1) const uint FLOATS = 0;
layout(std430, binding = 5) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 5) writeonly buffer XF { float xf[]; };
#include "quantize_q8.glsl"
#else
layout(std430, binding = 4) buffer Out { float y[]; };
#endif

shared vec2 partial[WG];

/* The float-float sum of every thread's PART. */
vec2 reduce(uint tid, vec2 part)
{
    partial[tid] = part;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) partial[tid] = ff_add(partial[tid], partial[tid + s]);
        barrier();
    }
    const vec2 total = partial[0];
    barrier(); /* partial is reused */
    return total;
}

/* (hi + lo) / n rounded once: the quotient of hi, corrected by lo and by its
 * own exact residual */
float mean_of(vec2 total, float n)
{
    precise float m0 = div_rn(total.x, n);
    vec2 back = two_prod(m0, n);
    precise float mean = m0 + (((total.x - back.x) - back.y) + total.y) / n;
    return mean;
}

void main()
{
    const uint row = group_index();
    if (row >= step.n_tokens * pc.rows) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint o = row * pc.n;
    const float n = float(pc.n);

    float mean = 0.0;
    if (pc.layer_norm != 0u) {
        vec2 sum = vec2(0.0);
        for (uint i = tid; i < pc.n; i += WG) sum = ff_add(sum, vec2(x[o + i], 0.0));
        mean = mean_of(reduce(tid, sum), n);
    }
    vec2 sum = vec2(0.0);
    for (uint i = tid; i < pc.n; i += WG) {
        precise float v = x[o + i] - mean;
        precise float sq = v * v; /* rounded to float, as llama.cpp's x*x is */
        sum = ff_add(sum, vec2(sq, 0.0));
    }
    precise float denom = sqrt_rn(mean_of(reduce(tid, sum), n) + pc.eps);
    const float scale = div_rn(1.0, denom);
    const uint wo = pc.row_weights != 0u ? (row % pc.rows) * pc.n : 0u;
    for (uint i = tid; i < pc.n; i += WG) {
        precise float v = (x[o + i] - mean) * scale * w[wo + i];
        y[o + i] = pc.has_bias != 0u ? v + b[i] : v;
    }
#ifdef QUANTIZE
    memoryBarrierBuffer();
    barrier();
    /* a token's rows are consecutive: block j of this row is block
     * row * nb + j of the token-major blocks */
    const uint nb = pc.n / 32u;
    for (uint j = tid; j < nb; j += WG) Q8_ACT_STORE(y, o + 32u * j, row * nb + j, pc.q8_scale_offset);
#endif
}
