#version 450
#extension GL_GOOGLE_include_directive : require

/* copy: dst = src, 16 bytes a thread, for the copy bandwidth that decode is
 * measured against (vk_bandwidth.c): memory read and written by the shader
 * cores, as the kernels read weights (on an NVIDIA H200 vkCmdCopyBuffer,
 * which a driver may hand to a copy engine, moved 847 GB/s, this 3255). A
 * dispatch may have fewer threads than words: each strides. */

#define KERNEL_COPY
#include "kernels.h"
#include "common.glsl"

layout(std430, binding = 1) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 2) writeonly buffer Dst { uvec4 dst[]; };

void main()
{
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint i = group_index() * WG + gl_LocalInvocationID.x; i < pc.n; i += stride)
        dst[i] = src[i];
}
