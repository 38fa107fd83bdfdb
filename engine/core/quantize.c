/* quantize.c: the reference quantizers, one per format of formats.h, each
 * bit-exact with what llama.cpp's llama-quantize writes without an importance
 * matrix (ggml_quantize_chunk with imatrix = NULL), so a file vkllm writes is
 * the file llama.cpp writes.
 *
 * Bit-exactness means the same float operations in the same order: every sum
 * is accumulated left to right in float, products are grouped as ggml groups
 * them ((w * x) * l, not w * (x * l)), and no multiply-add may be fused into
 * an FMA (CMake builds this file with -ffp-contract=off; ggml's own build has
 * no FMA in these functions). Conversions from float to small integers go
 * through int first (trunc_int), which is what the compilers emit for ggml's
 * direct casts on x86, defined here for every input.
 *
 * The searches below were written from reading ggml-quants.c; the comments
 * say what each one looks for. Sections:
 *   plain types (F32, F16, BF16), 32-blocks (Q4_0 .. Q8_0), the helpers of the
 *   K-quants, Q2_K .. Q6_K, and the non-linear IQ4_NL / IQ4_XS. */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* A group whose largest magnitude is below this is all zero (ggml's
 * GROUP_MAX_EPS). */
#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}
static inline int imax(int a, int b)
{
    return a > b ? a : b;
}
static inline int iclamp(int v, int lo, int hi)
{
    return imax(lo, imin(hi, v));
}

/* Float to int, truncating, as x86's cvttss2si does: a value out of range
 * (or NaN) gives INT32_MIN. ggml's casts compile to that instruction; C leaves
 * those cases undefined, and they do occur (1 / d is inf when d is
 * subnormal), so the behaviour is spelled out here. */
static inline int trunc_int(float v)
{
    return v >= -2147483648.0f && v < 2147483648.0f ? (int)v : INT32_MIN;
}

/* ============================== Plain types ============================== */

void quantize_F32(const float *x, void *y, uint64_t n)
{
    memcpy(y, x, n * sizeof(float));
}

void quantize_F16(const float *x, void *y, uint64_t n)
{
    uint8_t *p = y;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h = f32_to_fp16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* Round to nearest even; a NaN stays a quiet NaN. */
void quantize_BF16(const float *x, void *y, uint64_t n)
{
    uint8_t *p = y;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        uint16_t h = (u & 0x7fffffff) > 0x7f800000
                         ? (uint16_t)((u >> 16) | 64)
                         : (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* ============================== 32-element blocks ==============================
 * One scale per block, no search: the scale comes straight from the block's
 * extreme values, and each element is rounded by adding 0.5 (or 8.5, 16.5 for
 * the offset formats) and truncating. */

void quantize_Q8_0(const float *x, void *y, uint64_t n)
{
    struct block_q8_0 *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float ax = fabsf(x[j]);
            amax = amax > ax ? amax : ax; /* ggml's MAX, not fmaxf: a NaN is not skipped */
        }
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        struct block_q8_0 b;
        b.d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            b.qs[j] = (int8_t)trunc_int(roundf(x[j] * id));
        memcpy(&out[i], &b, sizeof b);
    }
}

/* The element of largest magnitude (the first one, with its sign) and its
 * magnitude: Q4_0 and Q5_0 map it to the most negative quant; the K-quants'
 * and IQ4's scale searches start from it. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

void quantize_Q4_0(const float *x, void *y, uint64_t n)
{
    struct block_q4_0 *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        struct block_q4_0 b;
        b.d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK4_0 / 2] * id;
            const int q0 = imin(15, (int8_t)trunc_int(x0 + 8.5f));
            const int q1 = imin(15, (int8_t)trunc_int(x1 + 8.5f));
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(&out[i], &b, sizeof b);
    }
}

/* The smallest and largest element: the formats with a minimum span them. */
static void min_max(const float *x, int n, float *min, float *max)
{
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

void quantize_Q4_1(const float *x, void *y, uint64_t n)
{
    struct block_q4_1 *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK4_1) {
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / 15.0f;
        const float id = d ? 1.0f / d : 0.0f;
        struct block_q4_1 b;
        b.d = f32_to_fp16(d);
        b.m = f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + QK4_1 / 2] - min) * id;
            const int q0 = imin(15, (int8_t)trunc_int(x0 + 0.5f));
            const int q1 = imin(15, (int8_t)trunc_int(x1 + 0.5f));
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(&out[i], &b, sizeof b);
    }
}

/* Q5_0 and Q5_1 keep the low nibbles as Q4 does and gather the fifth bits:
 * bit j of qh for element j. */
static void pack_q5(const uint8_t q[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        h |= (uint32_t)((q[j] & 0x10) >> 4) << j;
        h |= (uint32_t)((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k));
}

void quantize_Q5_0(const float *x, void *y, uint64_t n)
{
    struct block_q5_0 *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0) / -16.0f;
        const float id = d ? 1.0f / d : 0.0f;
        struct block_q5_0 b;
        b.d = f32_to_fp16(d);
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++)
            q[j] = (uint8_t)imin(31, (int8_t)trunc_int(x[j] * id + 16.5f));
        pack_q5(q, b.qs, b.qh);
        memcpy(&out[i], &b, sizeof b);
    }
}

void quantize_Q5_1(const float *x, void *y, uint64_t n)
{
    struct block_q5_1 *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK5_1) {
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / 31.0f;
        const float id = d ? 1.0f / d : 0.0f;
        struct block_q5_1 b;
        b.d = f32_to_fp16(d);
        b.m = f32_to_fp16(min);
        /* no clamp to 31 here, unlike the others: ggml has none either */
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++)
            q[j] = (uint8_t)trunc_int((x[j] - min) * id + 0.5f);
        pack_q5(q, b.qs, b.qh);
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== K-quant helpers ==============================
 * A K-quant block is 256 elements in groups of 16 or 32; each group gets its
 * own scale (and minimum), found by one of the searches below, and the group
 * scales are themselves quantized to 4, 6 or 8 bits against one half-float
 * super-scale. */

/* Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 leaves the
 * integer in the low mantissa bits (ggml's nearest_int). */
static inline int nearest_int(float f)
{
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Symmetric quants in [-nmax, nmax): returns the scale and writes L = q + nmax.
 * Starts from the scale that maps the largest magnitude to -nmax, then tries
 * 18 scales around it (nmax +- 0.1 .. 0.9) and keeps the one with the best
 * weighted least-squares fit, weights x^2 (ggml's make_qx_quants with
 * rmse_type 1 and no importance). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    const float max = signed_absmax(x, n), amax = fabsf(max);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric quants in [-nmax, nmax) for Q3_K: rounds against the
 * largest-magnitude scale, then up to 5 sweeps move single quants to the
 * value that improves the x^2-weighted least-squares fit, keeping each move
 * that does (ggml's make_q3_quants with do_rmse). Writes L = q + nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    const float max = signed_absmax(x, n), amax = fabsf(max);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = iclamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric quants in [0, nmax], x ~ scale * L - the_min: starts from the
 * range [min(x, 0), max(x)], then tries nstep + 1 scales (nmax + rmin +
 * rdelta * is steps per range) and for each solves the weighted least-squares
 * scale and minimum, keeping the pair with the smallest weighted error
 * (absolute with USE_MAD, else squared). ggml's make_qkx2_quants. Returns the
 * scale; *the_min is the minimum's magnitude (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)iclamp(l, 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Q2_K's and Q3_K's 2-bit planes: byte l of each 32-byte run holds elements
 * l, l + 32, l + 64, l + 96 of its 128, lowest bits first. */
static void pack_2bit(const uint8_t L[QK_K], uint8_t qs[QK_K / 4])
{
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* Q4_K's and Q5_K's 12 bytes of 8 6-bit scales and 8 6-bit mins: the first
 * four of each whole in bytes 0-7, the last four split into nibbles (bytes
 * 8-11) and top bits (the high two bits of bytes 0-7). */
static void pack_k4_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t out[K_SCALE_SIZE])
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void unpack_k4_scale(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ============================== Q2_K ==============================
 * 16 groups of 16, quants 0..3 with a scale and a minimum each (weights |x|,
 * absolute error); the 16 scales and 16 mins become 4-bit multiples of two
 * half-float super-scales; then every quant is rounded again against the
 * scale and minimum as stored. */
void quantize_Q2_K(const float *x, void *y, uint64_t n)
{
    struct block_q2_K *out = y;
    const float q4scale = 15.0f;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[QK_K / 16], scales[QK_K / 16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }

        struct block_q2_K b;
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                b.scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            b.d = f32_to_fp16(max_scale / q4scale);
        } else {
            memset(b.scales, 0, sizeof b.scales);
            b.d = f32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                b.scales[j] |= (uint8_t)((unsigned)nearest_int(iscale * mins[j]) << 4);
            b.dmin = f32_to_fp16(max_min / q4scale);
        } else {
            b.dmin = f32_to_fp16(0.0f);
        }

        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(b.d) * (b.scales[j] & 0x0f);
            if (!d) continue;
            const float dm = fp16_to_f32(b.dmin) * (b.scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)iclamp(nearest_int((x[16 * j + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, b.qs);
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== Q3_K ==============================
 * 16 groups of 16, symmetric quants -4..3 (make_q3_quants); the 16 group
 * scales become signed 6-bit multiples of one half-float super-scale, chosen
 * so the largest-magnitude one is -32; the quants are rounded again against
 * the stored scales, their high bit going to hmask. */
void quantize_Q3_K(const float *x, void *y, uint64_t n)
{
    struct block_q3_K *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        for (int j = 0; j < QK_K / 16; j++)
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        const float max_scale = signed_absmax(scales, QK_K / 16);

        struct block_q3_K b;
        memset(b.scales, 0, sizeof b.scales);
        if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = iclamp((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    b.scales[j] = (uint8_t)(l & 0x0f);
                else
                    b.scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                b.scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b.d = f32_to_fp16(1 / iscale);
        } else {
            b.d = f32_to_fp16(0.0f);
        }

        for (int j = 0; j < QK_K / 16; j++) {
            const int low = j < 8 ? b.scales[j] & 0x0f : b.scales[j - 8] >> 4;
            const int sc = (low | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            const float d = fp16_to_f32(b.d) * sc;
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(iclamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
        }

        /* the high bit of quant j goes to bit j / 32 of hmask[j % 32] */
        memset(b.hmask, 0, sizeof b.hmask);
        uint8_t low2[QK_K];
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) {
                b.hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] -= 4;
            }
            low2[j] = (uint8_t)L[j];
        }
        pack_2bit(low2, b.qs);
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== Q4_K and Q5_K ==============================
 * 8 groups of 32, quants 0..nmax with a scale and a minimum each (weights
 * rms(group) + |x|, squared error); scales and mins become 6-bit multiples of
 * two half-float super-scales; quants are rounded again against them. */

/* Fills L (quants 0..nmax) and the block's d, dmin and 12 scale bytes. */
static void quantize_k4_block(const float *x, int nmax, float rmin, int nstep, uint8_t L[QK_K],
                              uint16_t *d_out, uint16_t *dmin_out, uint8_t packed[K_SCALE_SIZE])
{
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }

    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < QK_K / 32; j++) {
        ls[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
    }
    pack_k4_scales(ls, lm, packed);
    *d_out = f32_to_fp16(max_scale / 63.0f);
    *dmin_out = f32_to_fp16(max_min / 63.0f);

    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        unpack_k4_scale(j, packed, &sc, &m);
        const float d = fp16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = fp16_to_f32(*dmin_out) * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)iclamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

void quantize_Q4_K(const float *x, void *y, uint64_t n)
{
    struct block_q4_K *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        struct block_q4_K b;
        uint8_t L[QK_K];
        quantize_k4_block(x, 15, -1.0f, 20, L, &b.d, &b.dmin, b.scales);
        /* 32-byte runs: elements j..j+31 in the low nibbles, j+32..j+63 high */
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                b.qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        memcpy(&out[i], &b, sizeof b);
    }
}

void quantize_Q5_K(const float *x, void *y, uint64_t n)
{
    struct block_q5_K *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        struct block_q5_K b;
        uint8_t L[QK_K];
        quantize_k4_block(x, 31, -0.5f, 15, L, &b.d, &b.dmin, b.scales);
        /* as Q4_K, plus the fifth bits: bit 2k (2k + 1) of qh[l] for the low
         * (high) nibble of run k */
        memset(b.qh, 0, sizeof b.qh);
        for (int j = 0, k = 0; j < QK_K; j += 64, k++) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    b.qh[l] |= (uint8_t)(1u << (2 * k));
                }
                if (l2 > 15) {
                    l2 -= 16;
                    b.qh[l] |= (uint8_t)(2u << (2 * k));
                }
                b.qs[j / 2 + l] = (uint8_t)(l1 | (l2 << 4));
            }
        }
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== Q6_K ==============================
 * 16 groups of 16, symmetric quants -32..31 (make_qx_quants); the group
 * scales become signed 8-bit multiples of one half-float super-scale (the
 * largest-magnitude one is -128, clamped to 127 at the other end); quants are
 * rounded again against the stored scales. */
void quantize_Q6_K(const float *x, void *y, uint64_t n)
{
    struct block_q6_K *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        for (int ib = 0; ib < QK_K / 16; ib++)
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        const float max_scale = signed_absmax(scales, QK_K / 16), max_abs_scale = fabsf(max_scale);

        struct block_q6_K b;
        memset(&b, 0, sizeof b);
        if (max_abs_scale < GROUP_MAX_EPS) { /* all zero: an all-zero block */
            memcpy(&out[i], &b, sizeof b);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        b.d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++)
            b.scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));

        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(b.d) * b.scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(iclamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
        }

        /* per 128: ql holds the low nibbles (elements l and l + 64 in byte l,
         * l + 32 and l + 96 in byte l + 32), qh the high two bits of all four */
        for (int j = 0; j < QK_K; j += 128) {
            uint8_t *ql = b.ql + j / 2, *qh = b.qh + j / 4;
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== IQ4_NL and IQ4_XS ==============================
 * Non-linear 4-bit: each element is the nearest of 16 fixed values
 * (quant_iq4nl_values) times a per-32 scale. ggml_quantize_chunk runs both
 * through quantize_row_iq4_nl_impl with ntry = 7 (not the _ref function, which
 * skips the search for IQ4_NL). */

/* Index of the value nearest to X in the sorted table VAL of N (ggml's
 * best_index_int8: a tie goes to the upper one). */
static int best_index(int n, const int8_t *val, float x)
{
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* The scale of one block of 32: starts from the scale that maps the
 * largest-magnitude element to the table's -127 end and solves the x^2-weighted
 * least-squares scale for the chosen indices, then tries 15 more starting
 * scales ((-127 + t) / max, t = -7..7) and keeps the best fit. Returns 0 for
 * an all-zero block. */
static float iq4_block_scale(const float *x)
{
    const int8_t *values = quant_iq4nl_values;
    const int ntry = 7;
    float weight[32];
    for (int j = 0; j < 32; j++)
        weight[j] = x[j] * x[j];
    const float max = signed_absmax(x, 32), amax = fabsf(max);
    if (amax < GROUP_MAX_EPS) return 0.0f;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        const float q = values[best_index(16, values, id * x[j])];
        sumqx += weight[j] * q * x[j];
        sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (float)(itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const float q = values[best_index(16, values, id * x[j])];
            sumqx += weight[j] * q * x[j];
            sumq2 += weight[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Indices of 32 elements against scale D (0 maps everything to index 0's
 * neighbour of zero, as ggml does), packed as Q4_0 packs nibbles. */
static void iq4_pack(const float *x, float id, uint8_t qs[16])
{
    uint8_t L[32];
    for (int j = 0; j < 32; j++)
        L[j] = (uint8_t)best_index(16, quant_iq4nl_values, id * x[j]);
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

void quantize_IQ4_NL(const float *x, void *y, uint64_t n)
{
    struct block_iq4_nl *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK4_NL) {
        struct block_iq4_nl b;
        const float d = iq4_block_scale(x);
        b.d = f32_to_fp16(d);
        iq4_pack(x, d ? 1 / d : 0, b.qs);
        memcpy(&out[i], &b, sizeof b);
    }
}

/* IQ4_XS: the 8 block scales of a 256 become signed 6-bit multiples of one
 * super-scale (the largest-magnitude one is -32), and the indices are chosen
 * again against each block's scale as stored (in float, not rounded to half). */
void quantize_IQ4_XS(const float *x, void *y, uint64_t n)
{
    struct block_iq4_xs *out = y;
    for (uint64_t i = 0; i < n; i++, x += QK_K) {
        float scales[QK_K / 32];
        for (int ib = 0; ib < QK_K / 32; ib++)
            scales[ib] = iq4_block_scale(x + 32 * ib);
        const float max_scale = signed_absmax(scales, QK_K / 32);

        struct block_iq4_xs b;
        memset(&b, 0, sizeof b);
        const float d = -max_scale / 32;
        b.d = f32_to_fp16(d);
        const float id = d ? 1 / d : 0.0f;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const int l = iclamp(nearest_int(id * scales[ib]), -32, 31);
            const float dl = d * l;
            iq4_pack(x + 32 * ib, dl ? 1 / dl : 0.0f, b.qs + 16 * ib);
            const int ls = l + 32;
            b.scales_l[ib / 2] |= (uint8_t)((ls & 0x0f) << (4 * (ib % 2)));
            b.scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
        }
        memcpy(&out[i], &b, sizeof b);
    }
}

/* ============================== Fallback ============================== */

uint32_t quant_fallback_type(uint32_t type, uint64_t ne0)
{
    const struct quant_format *f = quant_format(type);
    if (!f || ne0 % f->block_size == 0) return type;
    switch (type) {
    case VKLLM_TYPE_IQ4_XS: type = VKLLM_TYPE_IQ4_NL; break;
    case VKLLM_TYPE_Q2_K:
    case VKLLM_TYPE_Q3_K: type = VKLLM_TYPE_Q4_0; break;
    case VKLLM_TYPE_Q4_K: type = VKLLM_TYPE_Q5_0; break;
    case VKLLM_TYPE_Q5_K: type = VKLLM_TYPE_Q5_1; break;
    case VKLLM_TYPE_Q6_K: type = VKLLM_TYPE_Q8_0; break;
    default: break; /* a 32-block format: F16 below */
    }
    return ne0 % quant_format(type)->block_size ? VKLLM_TYPE_F16 : type;
}
