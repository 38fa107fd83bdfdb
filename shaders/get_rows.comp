#version 450
#extension GL_GOOGLE_include_directive : require
/* get_rows: the token embedding lookup, or (by_position) the learned position
 * embedding. One workgroup per token of the step copies (dequantizes) that
 * token's row of the table, if this part holds it, or adds it (acc). */
#define KERNEL_GET_ROWS
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
layout(std430, binding = 2) buffer Out { float out_rows[]; };

#include "quant.glsl"

void put(uint i, float v)
{
    out_rows[i] = pc.acc != 0u ? out_rows[i] + v : v;
}

void main()
{
    uint t = group_index();
    if (t >= step.n_tokens) return;
    uint token = pc.by_position != 0u ? step.rows[t].pos : uint(step.rows[t].token);
    if (token < pc.row_begin || token >= pc.row_end) return;
    uint r = token - pc.row_begin;
#ifdef WTYPE_BLOCKS
    /* a thread per 32-element sub-block */
    const uint subs = pc.n_embd / 32u;
    for (uint sb = gl_LocalInvocationID.x; sb < subs; sb += WG) {
        vec4 v[8];
        dequant32(r * (pc.n_embd / QK) + sb / SUBS, sb % SUBS, pc.scale_offset, v);
        const uint o = t * pc.n_embd + sb * 32u;
        [[unroll]] for (uint i = 0u; i < 8u; i++)
            [[unroll]] for (uint c = 0u; c < 4u; c++) put(o + 4u * i + c, v[i][c]);
    }
#else
    for (uint k = gl_LocalInvocationID.x; k < pc.n_embd; k += WG)
        put(t * pc.n_embd + k, weight_at(r, k, pc.n_embd, pc.scale_offset));
#endif
}
