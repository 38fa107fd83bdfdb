/* quant.c: ggml's type table, half floats, the table of formats vkllm runs
 * (formats.h), and each format's dequantizer: the CPU reference that the
 * shaders' decoders (shaders/quant.glsl) are checked against. The quantizers
 * are in quantize.c. */
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

/* ============================== Dequantizers ==============================
 * Each converts N blocks (N elements for the float types) in GGUF layout to
 * floats, with ggml's order of operations. Blocks are copied out with memcpy:
 * file data is not aligned for their structs. */

const int8_t quant_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

static void dequantize_F32(const void *src, float *y, uint64_t n)
{
    memcpy(y, src, n * sizeof(float));
}

static void dequantize_F16(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        y[i] = fp16_to_f32(h);
    }
}

static void dequantize_BF16(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        y[i] = bits_f32((uint32_t)h << 16);
    }
}

static void dequantize_Q4_0(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q4_0), y += QK4_0) {
        struct block_q4_0 b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = ((b.qs[j] & 0x0f) - 8) * d;
            y[j + QK4_0 / 2] = ((b.qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_Q4_1(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q4_1), y += QK4_1) {
        struct block_q4_1 b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (b.qs[j] & 0x0f) * d + m;
            y[j + QK4_1 / 2] = (b.qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void dequantize_Q5_0(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q5_0), y += QK5_0) {
        struct block_q5_0 b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        const uint32_t qh = le32(b.qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int x0 = ((b.qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((b.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[j] = x0 * d;
            y[j + QK5_0 / 2] = x1 * d;
        }
    }
}

static void dequantize_Q5_1(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q5_1), y += QK5_1) {
        struct block_q5_1 b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
        const uint32_t qh = le32(b.qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int x0 = (b.qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
            const int x1 = (b.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            y[j] = x0 * d + m;
            y[j + QK5_1 / 2] = x1 * d + m;
        }
    }
}

static void dequantize_Q8_0(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q8_0), y += QK8_0) {
        struct block_q8_0 b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        for (int j = 0; j < QK8_0; j++)
            y[j] = b.qs[j] * d;
    }
}

static void dequantize_IQ4_NL(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_iq4_nl), y += QK4_NL) {
        struct block_iq4_nl b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            y[j] = d * quant_iq4nl_values[b.qs[j] & 0x0f];
            y[j + QK4_NL / 2] = d * quant_iq4nl_values[b.qs[j] >> 4];
        }
    }
}

static void dequantize_Q2_K(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q2_K)) {
        struct block_q2_K b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
        const uint8_t *q = b.qs;
        int is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const uint8_t sc = b.scales[is++];
                    const float dl = d * (sc & 0x0f), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * ((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* Q3_K's 16 6-bit scales, unpacked from 12 bytes and re-centred on zero. */
static void q3_k_scales(const uint8_t packed[12], int out[16])
{
    for (int j = 0; j < 16; j++) {
        const int low = j < 8 ? packed[j] & 0x0f : packed[j - 8] >> 4;
        const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (low | high << 4) - 32;
    }
}

static void dequantize_Q3_K(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q3_K)) {
        struct block_q3_K b;
        memcpy(&b, p, sizeof b);
        const float d_all = fp16_to_f32(b.d);
        int scales[16];
        q3_k_scales(b.scales, scales);
        const uint8_t *q = b.qs;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < QK_K / 128; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int part = 0; part < 2; part++) {
                    const float dl = d_all * scales[is++];
                    for (int l = 16 * part; l < 16 * part + 16; l++)
                        *y++ = dl * (((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

/* Scale and min J of the 8 6-bit pairs packed in Q4_K's and Q5_K's 12 bytes. */
static void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dequantize_Q4_K(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q4_K)) {
        struct block_q4_K b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
        const uint8_t *q = b.qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            k4_scale_min(is, b.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            k4_scale_min(is + 1, b.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void dequantize_Q5_K(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q5_K)) {
        struct block_q5_K b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
        const uint8_t *ql = b.qs;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            k4_scale_min(is, b.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            k4_scale_min(is + 1, b.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0x0f) + (b.qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static void dequantize_Q6_K(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_q6_K)) {
        struct block_q6_K b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        const uint8_t *ql = b.ql, *qh = b.qh;
        const int8_t *sc = b.scales;
        for (int half = 0; half < QK_K / 128; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

static void dequantize_IQ4_XS(const void *src, float *y, uint64_t n)
{
    const uint8_t *p = src;
    for (uint64_t i = 0; i < n; i++, p += sizeof(struct block_iq4_xs)) {
        struct block_iq4_xs b;
        memcpy(&b, p, sizeof b);
        const float d = fp16_to_f32(b.d);
        const uint8_t *qs = b.qs;
        for (int ib = 0; ib < QK_K / 32; ib++, y += 32, qs += 16) {
            const int ls =
                ((b.scales_l[ib / 2] >> 4 * (ib % 2)) & 0x0f) | (((b.scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * quant_iq4nl_values[qs[j] & 0x0f];
                y[j + 16] = dl * quant_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

/* ============================== The format table ============================== */

#define NONE     (-1)
#define PAIRS    true
#define NO_PAIRS false
#define FORMAT_ENTRY(NAME, id, bs, bb, half, act, pairs)                                           \
    {id, #NAME, bs, bb, half, act, pairs, dequantize_##NAME, quantize_##NAME},
const struct quant_format quant_formats[] = {VKLLM_FORMATS(FORMAT_ENTRY)};
#undef FORMAT_ENTRY
#undef NO_PAIRS
#undef PAIRS
#undef NONE
const uint32_t quant_format_count = sizeof quant_formats / sizeof quant_formats[0];

int quant_format_index(uint32_t type)
{
    for (uint32_t i = 0; i < quant_format_count; i++)
        if (quant_formats[i].type == type) return (int)i;
    return -1;
}

int quant_block_format_index(uint32_t type)
{
    int n = 0;
    for (uint32_t i = 0; i < quant_format_count; i++) {
        if (quant_formats[i].block_size == 1) continue;
        if (quant_formats[i].type == type) return n;
        n++;
    }
    return -1;
}

int quant_paired_format_index(uint32_t type)
{
    int n = 0;
    for (uint32_t i = 0; i < quant_format_count; i++) {
        if (!quant_formats[i].pairs) continue;
        if (quant_formats[i].type == type) return n;
        n++;
    }
    return -1;
}

const struct quant_format *quant_format(uint32_t type)
{
    int i = quant_format_index(type);
    return i < 0 ? NULL : &quant_formats[i];
}

bool quant_supported(uint32_t type)
{
    return quant_format(type) != NULL;
}

void quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    const struct quant_format *f = quant_format(type);
    if (f) f->dequantize(src, dst, n / f->block_size);
}

void quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    const struct quant_format *f = quant_format(type);
    if (f) f->quantize(src, dst, n / f->block_size);
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
