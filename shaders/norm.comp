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
 *
 * Each thread takes chunks of CH consecutive elements, their loads issued
 * together: a row of 4096 is a few rounds of loads rather than 64 one after
 * another (which kept a decode norm at 35 us on a big GPU, one workgroup per
 * row). The chunk loops carry no [[unroll]], which would lose their
 * `precise` (common.glsl); drivers unroll such short constant loops anyway.
 * QUANTIZE (norm_q8) adds the output's Q8_0 blocks: a chunk is then one
 * block, quantized from the registers that hold it. */

#define KERNEL_NORM
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) readonly buffer B { float b[]; };
layout(std430, binding = 4) writeonly buffer Out { float y[]; };
#ifdef QUANTIZE
/* norm_q8: the output quantized too, for the quantized matmul that reads it
 * (one launch fewer than norm then quantize_q8), by quantize_q8.comp's
 * operations (quantize_q8.glsl), so the bits are the same. */
layout(constant_id = 1) const uint FLOATS = 0;
layout(std430, binding = 5) writeonly buffer XQ { uint xq[]; };
layout(std430, binding = 5) writeonly buffer XF4 { vec4 xf4[]; };
#include "quantize_q8.glsl"
#define CH 32u
/* rows of a multiple of 32: x, w, b and out read and written as vec4s, a
 * lane loop on lavapipe where 4 floats are 4 */
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 3) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 4) writeonly buffer Out4 { vec4 y4[]; };
#else
#define CH 4u
#endif

/* Chunk C (elements C CH ..) of the row at O in x, or of w or b (at O):
 * zeros past the row's end */
#ifdef QUANTIZE
#define CHUNK(NAME, ARRAY4)                                                    \
    void NAME(uint o, uint c, out float v[CH])                                 \
    {                                                                          \
        [[unroll]] for (uint q = 0u; q < CH / 4u; q++) {                       \
            const vec4 f = ARRAY4[(o + CH * c) / 4u + q];                      \
            [[unroll]] for (uint j = 0u; j < 4u; j++) v[4u * q + j] = f[j];    \
        }                                                                      \
    }
CHUNK(x_chunk, x4)
CHUNK(w_chunk, w4)
CHUNK(b_chunk, b4)
#else
#define CHUNK(NAME, ARRAY)                                                     \
    void NAME(uint o, uint c, out float v[CH])                                 \
    {                                                                          \
        [[unroll]] for (uint j = 0u; j < CH; j++) {                            \
            const uint i = c * CH + j;                                         \
            v[j] = i < pc.n ? ARRAY[o + i] : 0.0;                              \
        }                                                                      \
    }
CHUNK(x_chunk, x)
CHUNK(w_chunk, w)
CHUNK(b_chunk, b)
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
    const uint chunks = (pc.n + CH - 1u) / CH;

    float mean = 0.0;
    if (pc.layer_norm != 0u) {
        vec2 sum = vec2(0.0);
        for (uint c = tid; c < chunks; c += WG) {
            float xs[CH];
            x_chunk(o, c, xs);
            for (uint j = 0u; j < CH; j++) {
                if (c * CH + j < pc.n) sum = ff_add(sum, vec2(xs[j], 0.0));
            }
        }
        mean = mean_of(reduce(tid, sum), n);
    }
    vec2 sum = vec2(0.0);
    for (uint c = tid; c < chunks; c += WG) {
        float xs[CH];
        x_chunk(o, c, xs);
        for (uint j = 0u; j < CH; j++) {
            if (c * CH + j < pc.n) {
                precise float v = xs[j] - mean;
                precise float sq = v * v; /* rounded to float, as llama.cpp's x*x is */
                sum = ff_add(sum, vec2(sq, 0.0));
            }
        }
    }
    precise float denom = sqrt_rn(mean_of(reduce(tid, sum), n) + pc.eps);
    const float scale = div_rn(1.0, denom);
    const uint wo = pc.row_weights != 0u ? (row % pc.rows) * pc.n : 0u;
    for (uint c = tid; c < chunks; c += WG) {
        float xs[CH], ws[CH], bs[CH], v[CH];
        x_chunk(o, c, xs);
        w_chunk(wo, c, ws);
        if (pc.has_bias != 0u) b_chunk(0u, c, bs);
        for (uint j = 0u; j < CH; j++) {
            precise float s = (xs[j] - mean) * scale * ws[j];
            v[j] = pc.has_bias != 0u ? s + bs[j] : s;
#ifndef QUANTIZE
            const uint i = c * CH + j;
            if (i < pc.n) y[o + i] = v[j];
#endif
        }
#ifdef QUANTIZE
        [[unroll]] for (uint q = 0u; q < CH / 4u; q++)
            y4[(o + CH * c) / 4u + q] = vec4(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]);
        /* a token's rows are consecutive: block c of this row is block
         * row * nb + c of the token-major blocks (pc.n % 32 == 0) */
        Q8_ACT_STORE_FROM(v, 0u, o + CH * c, row * (pc.n / 32u) + c, pc.q8_scale_offset);
#endif
    }
}
