#version 450
#extension GL_GOOGLE_include_directive : require
/* rope: rotates the first n_rot dimensions of every head, in place, by angles
 * the host computed for each token's position (binding 1: cos, sin pairs per
 * token and rotated pair). One thread per rotated pair. */
#define KERNEL_ROPE
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Table { float table[]; };
layout(std430, binding = 2) buffer X { float x[]; };

void main()
{
    uint half_rot = pc.n_rot / 2u;
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    uint per_token = pc.n_heads * half_rot;
    uint t = i / per_token;
    if (t >= step.n_tokens) return;
    uint h = (i % per_token) / half_rot;
    uint p = i % half_rot;

    float c = table[t * pc.table_stride + 2u * p];
    float s = table[t * pc.table_stride + 2u * p + 1u];
    uint base = t * pc.x_stride + h * pc.head_dim;
    uint a = base + (pc.neox != 0u ? p : 2u * p);
    uint b = pc.neox != 0u ? a + half_rot : a + 1u;
    float x0 = x[a], x1 = x[b];
    /* rounded as written (no fused multiply-add), as rope_kv_store.comp's */
    precise float y0 = x0 * c - x1 * s;
    precise float y1 = x0 * s + x1 * c;
    x[a] = y0;
    x[b] = y1;
}
