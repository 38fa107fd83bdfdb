/* common.glsl: what every kernel shares: the workgroup size, the step header
 * at binding 0 (kernels.h describes it), and a linear workgroup index. */
#extension GL_EXT_control_flow_attributes : require

/* Workgroup size, set per device by specialization constant 0. */
layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 0) const uint WG = 64;

struct StepRow {
    int token;
    uint pos;
    uint seq;
};

layout(std430, binding = 0) readonly buffer Step {
    uint n_tokens;
    uint step_pad0;
    uint step_pad1;
    uint step_pad2;
    StepRow rows[];
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

/* The exact float arithmetic below relies on `precise` (NoContraction).
 * Never call it inside an [[unroll]] loop: spirv-opt's unroller (SPIRV-Tools
 * 2023.1) drops the decoration on the copies it makes, and lavapipe then
 * fuses them into FMAs (norm.comp's sums lost their last bits that way). */

/* a * b exactly as hi + lo (Dekker: 12-bit halves multiply without rounding). */
vec2 two_prod(float a, float b)
{
    precise float ah = uintBitsToFloat(floatBitsToUint(a) & 0xfffff000u), al = a - ah;
    precise float bh = uintBitsToFloat(floatBitsToUint(b) & 0xfffff000u), bl = b - bh;
    precise float p = a * b;
    precise float e = (((ah * bh - p) + ah * bl) + al * bh) + al * bl;
    return vec2(p, e);
}

/* a + b exactly as hi + lo (Knuth's two-sum). */
vec2 two_sum(float a, float b)
{
    precise float s = a + b;
    precise float bb = s - a;
    precise float e = (a - (s - bb)) + (b - bb);
    return vec2(s, e);
}

/* Adds float-float numbers: about 48 bits, standing in for llama.cpp's doubles. */
vec2 ff_add(vec2 a, vec2 b)
{
    vec2 s = two_sum(a.x, b.x);
    precise float lo = s.y + a.y + b.y;
    return two_sum(s.x, lo);
}

/* sqrt(a) rounded correctly: the first root corrected by its exact residual. */
float sqrt_rn(float a)
{
    precise float s = sqrt(a);
    vec2 sq = two_prod(s, s);
    precise float r = (a - sq.x) - sq.y;
    precise float corrected = s + r / (2.0 * s);
    return corrected;
}

/* a / b rounded correctly (for normal floats). GLSL division may be 2.5 ulp
 * off; where llama.cpp's CPU path divides, a last-bit difference can flip a
 * quantized value. The first quotient is corrected by the exact residual
 * a - q*b, computed with Dekker's splitting into 12-bit halves. */
float div_rn(float a, float b)
{
    precise float q = a / b;
    precise float qh = uintBitsToFloat(floatBitsToUint(q) & 0xfffff000u), ql = q - qh;
    precise float bh = uintBitsToFloat(floatBitsToUint(b) & 0xfffff000u), bl = b - bh;
    precise float r = (((a - qh * bh) - qh * bl) - ql * bh) - ql * bl;
    precise float corrected = q + r / b;
    return corrected;
}

/* x rounded to the nearest half float, as llama.cpp rounds values it hands to
 * half-precision dot products */
float round_f16(float x) { return unpackHalf2x16(f32_to_f16(x)).x; }

float f16_lo(uint word) { return unpackHalf2x16(word).x; }
float f16_hi(uint word) { return unpackHalf2x16(word).y; }
