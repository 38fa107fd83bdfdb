/* common.glsl: what every kernel shares: the workgroup size, the step header
 * at binding 0, and a linear workgroup index. */
#extension GL_EXT_control_flow_attributes : require

/* Workgroup size, set per device by specialization constant 0. */
layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 0) const uint WG = 64;

layout(std430, binding = 0) readonly buffer Step {
    uint n_tokens;
    uint pos0;
    uint step_pad0;
    uint step_pad1;
    int tokens[];
} step;

/* The host splits large dispatches over x and y to stay under
 * maxComputeWorkGroupCount[0]; kernels see one linear index. */
uint group_index()
{
    return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
}

/* float -> half with round to nearest even, as the host (and llama.cpp's CPU
 * path) does: packHalf2x16 leaves the rounding mode to the implementation. */
uint f32_to_f16(float f)
{
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u;
    uint a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));
    uint r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (r >> 13);
}

float f16_lo(uint word) { return unpackHalf2x16(word).x; }
float f16_hi(uint word) { return unpackHalf2x16(word).y; }
