#version 450
#extension GL_GOOGLE_include_directive : require
/* pair_inputs: a GEMM's Q8_0-rounded float inputs (quantize_q8.comp's FLOATS
 * output) as gemm.comp's PAIRS multiplies them, so that its loop only reads
 * them: tokens 2j and 2j+1 (the last token again where their count is odd)
 * of 32-element block s become 32 ints qa + 65536 qb, uvec4 texels
 * 8 (j nb + s) .. + 7 (nb = k / 32), and the texel at scale_texel + s
 * n_pairs + j holds their scales and the paired sum of their quants:
 * (127 d of a, 127 d of b, sum qa + 65536 sum qb, 0). The int8 quants come
 * back exactly from the floats: a block's largest magnitude is 127 d (d a
 * half), so x * 127 / amax rounds to its quant. One thread per pair and
 * block. */
#define KERNEL_PAIR_INPUTS
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer P { uvec4 p[]; };

/* Block S of the token T as the largest magnitude of its elements and the
 * elements over it times 127, rounded: the quants */
void quants(uint t, uint s, out ivec4 q[8], out float amax)
{
    const uint at = (t * pc.k + 32u * s) / 4u;
    vec4 v[8];
    /* the largest of the magnitudes' bits, an unsigned maximum: the float
     * max() that would cost gallivm a NaN check gives the same */
    uint m = 0u;
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        v[i] = x4[at + i];
        const uvec4 b = floatBitsToUint(v[i]) & 0x7fffffffu;
        m = max(m, max(max(b.x, b.y), max(b.z, b.w)));
    }
    amax = uintBitsToFloat(m);
    const float inv = amax == 0.0 ? 0.0 : 127.0 / amax;
    [[unroll]] for (uint i = 0u; i < 8u; i++) q[i] = ivec4(round(v[i] * inv));
}

void main()
{
    const uint nb = pc.k / 32u;
    const uint i = group_index() * WG + gl_LocalInvocationID.x;
    const uint j = i / nb, s = i % nb;
    if (2u * j >= step.n_tokens) return;
    ivec4 qa[8], qb[8];
    float da, db;
    quants(2u * j, s, qa, da);
    quants(min(2u * j + 1u, step.n_tokens - 1u), s, qb, db);
    int sum = 0;
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        const ivec4 q = qa[w] + (qb[w] << 16);
        p[8u * i + w] = uvec4(q);
        sum += q.x + q.y + q.z + q.w;
    }
    p[pc.scale_texel + s * pc.n_pairs + j] = uvec4(floatBitsToUint(da), floatBitsToUint(db), uint(sum), 0u);
}
