/* quant.c: the type table, half floats, and the Q8_0 / Q4_0 block formats. */
#include "quant.h"

#include <math.h>
#include <string.h>

/* ============================== Type table ============================== */

/* ggml's types by id; gaps are ids ggml has retired. */
static const struct vkllm_type_info type_table[VKLLM_TYPE_COUNT] = {
    [VKLLM_TYPE_F32] = {"F32", 1, 4},
    [VKLLM_TYPE_F16] = {"F16", 1, 2},
    [VKLLM_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [VKLLM_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [VKLLM_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [VKLLM_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [VKLLM_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [VKLLM_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [VKLLM_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [VKLLM_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [VKLLM_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [VKLLM_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [VKLLM_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [VKLLM_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [VKLLM_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [VKLLM_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [VKLLM_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [VKLLM_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [VKLLM_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [VKLLM_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [VKLLM_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [VKLLM_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [VKLLM_TYPE_I8] = {"I8", 1, 1},
    [VKLLM_TYPE_I16] = {"I16", 1, 2},
    [VKLLM_TYPE_I32] = {"I32", 1, 4},
    [VKLLM_TYPE_I64] = {"I64", 1, 8},
    [VKLLM_TYPE_F64] = {"F64", 1, 8},
    [VKLLM_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [VKLLM_TYPE_BF16] = {"BF16", 1, 2},
    [VKLLM_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [VKLLM_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [VKLLM_TYPE_MXFP4] = {"MXFP4", 32, 17},
    [VKLLM_TYPE_NVFP4] = {"NVFP4", 64, 36},
    [VKLLM_TYPE_Q1_0] = {"Q1_0", 128, 18},
    [VKLLM_TYPE_Q2_0] = {"Q2_0", 64, 18},
};

const struct vkllm_type_info *vkllm_type_info(uint32_t type)
{
    if (type >= VKLLM_TYPE_COUNT || !type_table[type].name) return NULL;
    return &type_table[type];
}

uint64_t quant_row_bytes(uint32_t type, uint64_t n)
{
    const struct vkllm_type_info *ti = vkllm_type_info(type);
    if (!ti || n % ti->block_size) return 0;
    return n / ti->block_size * ti->block_bytes;
}

bool quant_supported(uint32_t type)
{
    return type == VKLLM_TYPE_F32 || type == VKLLM_TYPE_F16 || type == VKLLM_TYPE_Q8_0 ||
           type == VKLLM_TYPE_Q4_0;
}

/* ============================== Half floats ============================== */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf; nan comes back quiet, as the F16C instruction does */
        return bits_f32(sign | 0x7f800000 | (man ? 0x400000 : 0) | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: value is man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000) /* inf stays inf, nan stays a quiet nan */
        return sign | (absx > 0x7f800000 ? 0x7e00 : 0x7c00);
    if (absx >= 0x477ff000) return sign | 0x7c00; /* rounds to >= 65520: overflow */
    if (absx < 0x38800000) {
        /* result is subnormal or zero: round absx * 2^24 to an integer, ties to even */
        float v = bits_f32(absx) * 16777216.0f;
        return sign | (uint16_t)lrintf(v);
    }
    /* normal: drop 13 mantissa bits with round to nearest even */
    uint32_t r = absx - 0x38000000; /* rebias exponent 127 -> 15 */
    r += 0xfff + ((r >> 13) & 1);
    return sign | (uint16_t)(r >> 13);
}

/* ============================== Q8_0 and Q4_0 ============================== */

static void quantize_q8_0(const float *x, struct block_q8_0 *y, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quantize_q4_0(const float *x, struct block_q4_0 *y, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, x += QK4_0) {
        /* the element of largest magnitude, with its sign, maps to -8 */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = (int8_t)(x[j] * id + 8.5f);
            int q1 = (int8_t)(x[j + QK4_0 / 2] * id + 8.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void quant_q8_activations(const float *x, int8_t *q, float *d, uint64_t n)
{
    for (uint64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        d[b] = fp16_to_f32(f32_to_fp16(amax / 127.0f));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < QK8_0; j++)
            q[b * QK8_0 + j] = (int8_t)nearbyintf(x[j] * id);
    }
}

void quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    switch (type) {
    case VKLLM_TYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case VKLLM_TYPE_F16: {
        const uint8_t *p = src;
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2); /* file data is not always 2-aligned in memory */
            dst[i] = fp16_to_f32(h);
        }
        break;
    }
    case VKLLM_TYPE_Q8_0: {
        const uint8_t *p = src;
        for (uint64_t i = 0; i < n / QK8_0; i++) {
            struct block_q8_0 b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            const float d = fp16_to_f32(b.d);
            for (int j = 0; j < QK8_0; j++)
                dst[i * QK8_0 + j] = d * b.qs[j];
        }
        break;
    }
    case VKLLM_TYPE_Q4_0: {
        const uint8_t *p = src;
        for (uint64_t i = 0; i < n / QK4_0; i++) {
            struct block_q4_0 b;
            memcpy(&b, p + i * sizeof b, sizeof b);
            const float d = fp16_to_f32(b.d);
            for (int j = 0; j < QK4_0 / 2; j++) {
                dst[i * QK4_0 + j] = d * ((b.qs[j] & 0x0f) - 8);
                dst[i * QK4_0 + j + QK4_0 / 2] = d * ((b.qs[j] >> 4) - 8);
            }
        }
        break;
    }
    }
}

void quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    switch (type) {
    case VKLLM_TYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case VKLLM_TYPE_F16: {
        uint8_t *p = dst;
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_fp16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        break;
    }
    case VKLLM_TYPE_Q8_0: quantize_q8_0(src, dst, n / QK8_0); break;
    case VKLLM_TYPE_Q4_0: quantize_q4_0(src, dst, n / QK4_0); break;
    }
}
