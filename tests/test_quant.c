/* test_quant.c: half floats, the block formats and the type table.
 *
 * Half floats are checked exhaustively one way (all 65536 halves) and against
 * a slow reference written with frexp/ldexp the other way. Q8_0 and Q4_0 are
 * checked against bytes worked out by hand, and against error bounds derived
 * below for random data. Every format of formats.h is checked against golden
 * hashes of ggml's own output (tests/data/quant_golden.txt: its quantizer's
 * bytes and its dequantizer's floats, for a fixed input) and against error
 * bounds for its bit width.
 *
 * What ggml does, as read in ggml-quants.c (quantize_row_q8_0_ref and
 * quantize_row_q4_0_ref) and confirmed by linking ggml's own functions
 * against quant.c over millions of random floats (bit-identical):
 *   Q8_0  d = amax / 127 in float; q = roundf(x * (1/d)): ties away from zero.
 *   Q4_0  d = max / -8, max being the first element of largest magnitude, with
 *         its sign; q = min(15, (int8_t)(x * (1/d) + 8.5f)): the cast truncates,
 *         so q - 8 is x/d rounded half up (towards +inf), clamped to 7.
 *   Both  an all-zero block gives id = 0 (not inf): every q is 0 (Q8_0) or 8
 *         (Q4_0), and Q4_0's d is 0 / -8 = -0.0, stored as 0x8000.
 */
#include "testhelp.h"
#include "quant.h"
#include "rng.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* xorshift64: the test's own fixed-seed generator */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rng32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
/* uniform in [-1, 1) */
static float rng_sym(void)
{
    return (float)((double)rng32() / 2147483648.0 - 1.0);
}

/* ============================== Half floats ============================== */

/* The value of half H worked out from the definition, in double. */
static double ref_fp16_value(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = exp == 0 ? ldexp(man, -24) : ldexp(1024 + man, exp - 25);
    return (h & 0x8000) ? -v : v;
}

/* float -> half by the book: find the quantum (the value of the last mantissa
 * bit) of F's binade, count quanta, round half to even, rebuild the bits. */
static uint16_t ref_f32_to_fp16(float f)
{
    const uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return sign | 0x7e00;
    const double a = fabs((double)f);
    if (isinf(a)) return sign | 0x7c00;
    if (a == 0.0) return sign;
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1): the leading bit is worth 2^(e-1) */
    int lead = e - 1;
    if (lead < -14) lead = -14; /* subnormal halves share the smallest normals' quantum */
    const double quantum = ldexp(1.0, lead - 10);
    const double n = a / quantum; /* exact: dividing by a power of two */
    double r = floor(n);
    const double frac = n - r;
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) == 1.0)) r += 1.0;
    const double v = r * quantum;
    if (v > 65504.0) return sign | 0x7c00;
    if (v < ldexp(1.0, -14)) return sign | (uint16_t)(v / ldexp(1.0, -24));
    frexp(v, &e);
    const int E = e - 1;
    const double man = v / ldexp(1.0, E) - 1.0; /* [0, 1) in steps of 2^-10 */
    return sign | (uint16_t)((E + 15) << 10) | (uint16_t)(man * 1024.0);
}

static int is_nan_half(uint16_t h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

static void test_fp16_exhaustive(void)
{
    int bad_value = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        const uint16_t h = (uint16_t)i;
        const float f = fp16_to_f32(h);
        if (is_nan_half(h)) {
            /* NaN stays NaN, sign kept (the payload need not survive) */
            uint16_t back = f32_to_fp16(f);
            if (!isnan(f) || !is_nan_half(back) || (back & 0x8000) != (h & 0x8000)) {
                if (bad_nan++ < 5) fprintf(stderr, "NaN half %04x -> %a -> %04x\n", h, f, back);
            }
            continue;
        }
        const int exp = (h >> 10) & 0x1f;
        const double want = exp == 0x1f ? ((h & 0x8000) ? -INFINITY : INFINITY) : ref_fp16_value(h);
        /* the value, and the sign of zero */
        if ((double)f != want || !signbit(f) != !signbit(want)) {
            if (bad_value++ < 5) fprintf(stderr, "half %04x -> %a, want %a\n", h, f, want);
        }
        const uint16_t back = f32_to_fp16(f);
        if (back != h) {
            if (bad_trip++ < 5) fprintf(stderr, "half %04x -> %a -> %04x\n", h, f, back);
        }
    }
    CHECK(bad_value == 0, "%d halves convert to the wrong float", bad_value);
    CHECK(bad_trip == 0, "%d halves do not survive half -> float -> half", bad_trip);
    CHECK(bad_nan == 0, "%d NaN halves do not stay NaN", bad_nan);
}

static void test_fp16_rounding(void)
{
    /* edge cases, expected bits worked out by hand */
    static const struct {
        float f;
        uint16_t h;
        const char *why;
    } edges[] = {
        {65504.0f, 0x7bff, "largest half"},
        {65519.99f, 0x7bff, "65519.988 is below the midpoint 65520 to 65536"},
        {65520.0f, 0x7c00, "the midpoint: ties to even, 0x7bff is odd, so up to inf"},
        {1e6f, 0x7c00, "overflow"},
        {-65520.0f, 0xfc00, "negative overflow"},
        {0x1p-24f, 0x0001, "smallest subnormal"},
        {0x1p-25f, 0x0000, "half of it: a tie, to even (0)"},
        {0x1.000002p-25f, 0x0001, "just above the tie"},
        {0x3p-26f, 0x0001, "0.75 of the smallest subnormal"},
        {0x3p-25f, 0x0002, "1.5 subnormal steps: a tie, to even (2)"},
        {0x5p-25f, 0x0002, "2.5 subnormal steps: a tie, to even (2)"},
        {0x1p-14f, 0x0400, "smallest normal"},
        {0x1.ffcp-15f, 0x0400, "1023.5 subnormal steps: a tie, to even, which is 1024"},
        {0x1.ff8p-15f, 0x03ff, "largest subnormal: 1023 steps"},
        {1e-40f, 0x0000, "a float subnormal"},
        {-1e-40f, 0x8000, "a negative float subnormal: -0"},
        {-0.0f, 0x8000, "-0"},
        {0.0f, 0x0000, "+0"},
        {1.0f, 0x3c00, "one"},
        {0x1.002p0f, 0x3c00, "1 + 2^-11: a tie, to even (1)"},
        {0x1.006p0f, 0x3c02, "1 + 3*2^-11: a tie, to even (1 + 2^-9)"},
        {0x1.0021p0f, 0x3c01, "just above the tie"},
        {0.1f, 0x2e66, "0.1 = 1.6 * 2^-4: 0.6 * 1024 = 614.4 -> 614 = 0x266"},
        {-2.0f, 0xc000, "minus two"},
        {INFINITY, 0x7c00, "inf"},
        {-INFINITY, 0xfc00, "-inf"},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        uint16_t got = f32_to_fp16(edges[i].f);
        CHECK(got == edges[i].h, "%a (%s): %04x, want %04x", edges[i].f, edges[i].why, got,
              edges[i].h);
        CHECK(ref_f32_to_fp16(edges[i].f) == edges[i].h, "the reference itself: %a (%s)",
              edges[i].f, edges[i].why);
    }
    CHECK(is_nan_half(f32_to_fp16(NAN)) && is_nan_half(f32_to_fp16(-NAN)));
    CHECK(is_nan_half(f32_to_fp16(bits_f32(0x7f800001))), "a signalling NaN stays NaN");

    /* every rounding boundary: the midpoint between each pair of neighbouring
     * halves (exact in float: 12 significant bits) goes to the even one, and
     * the floats on either side of it go to the nearer one */
    int bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = ref_fp16_value((uint16_t)h);
        double hi = h + 1 == 0x7c00 ? 65536.0 : ref_fp16_value((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2.0);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        for (int s = 0; s < 2; s++) {
            uint16_t sign = s ? 0x8000 : 0;
            float m = s ? -mid : mid;
            uint16_t got_mid = f32_to_fp16(m);
            uint16_t got_below = f32_to_fp16(nextafterf(m, 0.0f));
            uint16_t got_above = f32_to_fp16(nextafterf(m, s ? -INFINITY : INFINITY));
            if (got_mid != (sign | even) || got_below != (sign | h) ||
                got_above != (sign | (h + 1))) {
                if (bad++ < 5)
                    fprintf(stderr, "boundary %a: %04x %04x %04x, want %04x %04x %04x\n", m,
                            got_below, got_mid, got_above, sign | h, sign | even, sign | (h + 1));
            }
        }
    }
    CHECK(bad == 0, "%d rounding boundaries wrong", bad);

    /* random floats: any bit pattern, and values in the half range */
    bad = 0;
    for (int i = 0; i < 3000000; i++) {
        float f;
        if (i % 2) {
            f = bits_f32(rng32());
        } else {
            f = ldexpf(rng_sym(), (int)(rng32() % 48) - 30); /* 2^-31 .. 2^17 */
        }
        uint16_t got = f32_to_fp16(f), want = ref_f32_to_fp16(f);
        if (isnan(f) ? !is_nan_half(got) || (got & 0x8000) != (want & 0x8000) : got != want) {
            if (bad++ < 5)
                fprintf(stderr, "%a (%08x): %04x, want %04x\n", f, f32_bits(f), got, want);
        }
    }
    CHECK(bad == 0, "%d random floats round differently from the reference", bad);
}

/* ============================== Q8_0 ============================== */

static void quantize_q8(const float *x, struct block_q8_0 *b)
{
    quant_quantize_row(VKLLM_TYPE_Q8_0, x, b, QK8_0);
}

static void test_q8_0_known(void)
{
    struct block_q8_0 b;
    float x[32], y[32];

    /* 0..31: amax = 31, d = 31/127 = 0.24409, which as a half is
     * 1.95276 * 2^-3: exponent field 12, mantissa 0.95276 * 1024 = 975.6 -> 976,
     * so (12 << 10) | 976 = 0x33d0. q_j = round(j * 127/31) = round(4.0968 j):
     * the fraction 0.0968 j passes .5 at j = 6, 16 and 26, where the step is 5;
     * no j is near a tie (the fractions are k/31). */
    static const int8_t q_ramp[32] = {0,  4,  8,  12,  16,  20,  25,  29,  33,  37, 41,
                                      45, 49, 53, 57,  61,  66,  70,  74,  78,  82, 86,
                                      90, 94, 98, 102, 107, 111, 115, 119, 123, 127};
    for (int j = 0; j < 32; j++)
        x[j] = (float)j;
    quantize_q8(x, &b);
    CHECK(b.d == 0x33d0, "ramp d = %04x", b.d);
    CHECK(memcmp(b.qs, q_ramp, 32) == 0, "ramp quants");

    /* one large negative value: x = {-100, 1, 2, ..., 31}. amax = 100,
     * d = 100/127 = 0.787402 = 1.574803 * 2^-1: exponent field 14, mantissa
     * 0.574803 * 1024 = 588.6 -> 589 = 0x24d, so 0x3a4d. q = round(1.27 x):
     * -100 -> -127, and 1..31 -> 1.27, 2.54, 3.81, 5.08, ... */
    static const int8_t q_neg[32] = {-127, 1,  3,  4,  5,  6,  8,  9,  10, 11, 13,
                                     14,   15, 17, 18, 19, 20, 22, 23, 24, 25, 27,
                                     28,   29, 30, 32, 33, 34, 36, 37, 38, 39};
    x[0] = -100.0f;
    quantize_q8(x, &b);
    CHECK(b.d == 0x3a4d, "negative spike d = %04x", b.d);
    CHECK(memcmp(b.qs, q_neg, 32) == 0, "negative spike quants");

    /* ties: amax = 127 gives d = 1 and id = 1 exactly, so x * id = x and
     * roundf rounds halves away from zero (not to even): 2.5 -> 3, -2.5 -> -3,
     * 0.5 -> 1, -0.5 -> -1, 1.5 -> 2, 126.5 -> 127 */
    memset(x, 0, sizeof x);
    x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 1.5f;
    x[6] = 126.5f, x[7] = -127.0f;
    static const int8_t q_ties[8] = {127, 3, -3, 1, -1, 2, 127, -127};
    quantize_q8(x, &b);
    CHECK(b.d == 0x3c00, "ties d = %04x", b.d);
    CHECK(memcmp(b.qs, q_ties, 8) == 0, "ties: roundf, half away from zero");

    /* all zeros: d = 0, id = 0 (not 1/0), every q 0, and back to +0 */
    memset(x, 0, sizeof x);
    memset(&b, 0x55, sizeof b);
    quantize_q8(x, &b);
    static const uint8_t zero_block[34] = {0};
    CHECK(memcmp(&b, zero_block, sizeof b) == 0, "all-zero block is all zero bytes");
    quant_dequantize_row(VKLLM_TYPE_Q8_0, &b, y, 32);
    for (int j = 0; j < 32; j++)
        CHECK(y[j] == 0.0f);

    /* dequantize a block made by hand: d = 2.0 (0x4000), q_j = j - 16 */
    b.d = 0x4000;
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)(j - 16);
    quant_dequantize_row(VKLLM_TYPE_Q8_0, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 32; j++)
        bad += y[j] != 2.0f * (j - 16);
    CHECK(bad == 0, "Q8_0 dequantize by hand");
}

/* ============================== Q4_0 ============================== */

static void quantize_q4(const float *x, struct block_q4_0 *b)
{
    quant_quantize_row(VKLLM_TYPE_Q4_0, x, b, QK4_0);
}

static void test_q4_0_known(void)
{
    struct block_q4_0 b;
    float x[32], y[32];

    /* 0..31: max = +31, so d = 31 / -8 = -3.875 = -1.9375 * 2^1: sign, exponent
     * field 16, mantissa 0.9375 * 1024 = 960: 0xc3c0. q_j = trunc(8.5 - 8j/31):
     * 8 8 7 7 7 7 6 6 6 6 5 5 5 5 4 4 | 4 4 3 3 3 3 2 2 2 2 1 1 1 1 0 0
     * (no j is near an integer boundary: the fractions are k/31; j = 31 lands
     * on 0.5 +- rounding, which truncates to 0 either way).
     * qs[j] = q_j | q_{j+16} << 4. */
    static const uint8_t qs_ramp[16] = {0x48, 0x48, 0x37, 0x37, 0x37, 0x37, 0x26, 0x26,
                                        0x26, 0x26, 0x15, 0x15, 0x15, 0x15, 0x04, 0x04};
    for (int j = 0; j < 32; j++)
        x[j] = (float)j;
    quantize_q4(x, &b);
    CHECK(b.d == 0xc3c0, "ramp d = %04x", b.d);
    CHECK(memcmp(b.qs, qs_ramp, 16) == 0, "ramp quants");

    /* the largest magnitude negative: d = -8 / -8 = +1 (0x3c00), id = 1, and
     * q = trunc(x + 8.5): half up, then clamped at 15.
     *   -8 -> 0.5 -> 0      2.5 -> 11      -2.5 -> 6 (-2.5 rounds up to -2)
     *   0.5 -> 9           -0.5 -> 8       7.4 -> 15
     *   7.5 -> 16 -> 15 (clamped: 7.5 comes back as 7)
     *   8 (a tie in magnitude with -8; the first one sets the sign) -> 16 -> 15 */
    memset(x, 0, sizeof x);
    x[0] = -8.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 7.4f;
    x[6] = 7.5f, x[16] = 8.0f;
    quantize_q4(x, &b);
    CHECK(b.d == 0x3c00, "negative max d = %04x", b.d);
    static const uint8_t q_lo[7] = {0, 11, 6, 9, 8, 15, 15};
    for (int j = 0; j < 7; j++)
        CHECK((b.qs[j] & 0x0f) == q_lo[j], "element %d: %d, want %d", j, b.qs[j] & 0x0f, q_lo[j]);
    CHECK(b.qs[0] >> 4 == 15, "element 16 (8.0) clamped at 15");
    for (int j = 7; j < 16; j++)
        CHECK(b.qs[j] == 0x88, "zeros are 8 | 8 << 4");
    quant_dequantize_row(VKLLM_TYPE_Q4_0, &b, y, 32);
    CHECK(y[0] == -8.0f && y[6] == 7.0f && y[16] == 7.0f && y[2] == -2.0f && y[1] == 3.0f);

    /* the same with +8 first: then d = -1, and -8 is the one that clamps */
    x[0] = 8.0f, x[16] = -8.0f;
    quantize_q4(x, &b);
    CHECK(b.d == 0xbc00, "positive max first: d = %04x, want -1", b.d);
    CHECK((b.qs[0] & 0x0f) == 0 && b.qs[0] >> 4 == 15, "8 -> 0, -8 -> 16 -> 15");

    /* all zeros: d = 0 / -8 = -0.0, stored as 0x8000; id = 0; every q is
     * trunc(8.5) = 8, so every byte 0x88; and back to (-0) * 0 = zeros */
    memset(x, 0, sizeof x);
    quantize_q4(x, &b);
    CHECK(b.d == 0x8000, "all-zero d = %04x, want -0 (0x8000) as ggml", b.d);
    for (int j = 0; j < 16; j++)
        CHECK(b.qs[j] == 0x88);
    quant_dequantize_row(VKLLM_TYPE_Q4_0, &b, y, 32);
    for (int j = 0; j < 32; j++)
        CHECK(y[j] == 0.0f);

    /* layout by hand: element j in the low nibble of qs[j], j + 16 in the high.
     * d = 1, qs[j] = j | (15 - j) << 4: y[j] = j - 8, y[j + 16] = 7 - j */
    b.d = 0x3c00;
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    quant_dequantize_row(VKLLM_TYPE_Q4_0, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++)
        bad += y[j] != (float)(j - 8) || y[j + 16] != (float)(7 - j);
    CHECK(bad == 0, "Q4_0 nibble layout");
}

/* ============================== Error bounds ============================== */

/* Error bounds for y = dequantize(quantize(x)), per element.
 *
 * Q8_0: d = amax/127 and q = round(x/d), |q| <= 127, so |x - q d| <= d/2. The
 * block stores dh = half(d), and y = q dh, so
 *     |x - y| <= |x - q d| + |q| |d - dh| <= d/2 + |q| |d - dh|,
 * where |d - dh| <= 2^-11 d for a normal half (round to nearest), and the
 * whole of d when d underflows the half range. The "half rounding of d" term
 * is multiplied by |q|, up to 127: it is the larger one for big q.
 *
 * Q4_0: |d| = amax/8, and q - 8 = x/d rounded (half up) into [-8, 8], clamped
 * at 7. Unclamped, |x - (q-8) d| <= |d|/2. Clamping happens when x/d >= 7.5,
 * that is for values of the opposite sign to max and |x| >= 15/16 amax; then
 * x/d <= 8 and the error x/d - 7 is at most |d|. So
 *     |x - y| <= |d|/2 (q != 15) or |d| (q == 15), + |q - 8| |d - dh|.
 *
 * Float slack on both: x * id is one float rounding (relative 2^-24 of at most
 * 127 quanta, so 1e-5 d covers it) and q * dh another (2^-24 |y|). */
static void check_bounds(uint32_t type, const float *x, const char *what, double *max_ratio)
{
    float y[32];
    union {
        struct block_q8_0 q8;
        struct block_q4_0 q4;
    } b;
    quant_quantize_row(type, x, &b, 32);
    quant_dequantize_row(type, &b, y, 32);
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const double d = type == VKLLM_TYPE_Q8_0 ? amax / 127.0f : fabsf(max / -8.0f);
    const uint16_t dbits = type == VKLLM_TYPE_Q8_0 ? b.q8.d : b.q4.d;
    const double dh = fabs(fp16_to_f32(dbits));
    CHECK(dbits == f32_to_fp16(type == VKLLM_TYPE_Q8_0 ? amax / 127.0f : max / -8.0f),
          "%s: d is not half(%s)", what, type == VKLLM_TYPE_Q8_0 ? "amax/127" : "max/-8");
    int bad = 0;
    for (int j = 0; j < 32; j++) {
        double err = fabs((double)x[j] - y[j]), bound;
        if (type == VKLLM_TYPE_Q8_0) {
            int q = b.q8.qs[j];
            bound = d * (0.5 + 1e-5) + abs(q) * fabs(d - dh);
            if (d > 0) *max_ratio = fmax(*max_ratio, (err - abs(q) * fabs(d - dh)) / d);
        } else {
            int q = j < 16 ? b.q4.qs[j] & 0x0f : b.q4.qs[j - 16] >> 4;
            bound = d * (q == 15 ? 1.0 + 1e-5 : 0.5 + 1e-5) + abs(q - 8) * fabs(d - dh);
            if (d > 0 && q != 15)
                *max_ratio = fmax(*max_ratio, (err - abs(q - 8) * fabs(d - dh)) / d);
        }
        bound += fabs(y[j]) * 0x1p-23;
        if (err > bound) {
            if (bad++ < 3)
                fprintf(stderr, "%s element %d: x %a y %a err %g > bound %g (d %g)\n", what, j,
                        x[j], y[j], err, bound, d);
        }
    }
    CHECK(bad == 0, "%s: %d elements beyond the bound", what, bad);
}

static void test_error_bounds(void)
{
    static const float scales[] = {1e-6f, 1e-3f, 0.37f, 1.0f, 55.0f, 1e3f};
    double ratio8 = 0.0, ratio4 = 0.0;
    char what[64];
    for (int s = 0; s < 6; s++) {
        for (int rep = 0; rep < 2000; rep++) {
            float x[32];
            int kind = rep % 4;
            for (int j = 0; j < 32; j++) {
                x[j] = scales[s] * rng_sym();
                if (kind == 1) x[j] *= 0.01f;      /* small values around one spike */
                if (kind == 3) x[j] = fabsf(x[j]); /* one-signed: Q4_0 clamps */
            }
            if (kind == 1) x[rng32() % 32] = scales[s] * (rng32() % 2 ? 1.0f : -1.0f);
            if (kind == 2) x[rng32() % 32] = 0.0f;
            snprintf(what, sizeof what, "Q8_0 scale %g kind %d", (double)scales[s], kind);
            check_bounds(VKLLM_TYPE_Q8_0, x, what, &ratio8);
            snprintf(what, sizeof what, "Q4_0 scale %g kind %d", (double)scales[s], kind);
            check_bounds(VKLLM_TYPE_Q4_0, x, what, &ratio4);
        }
    }
    /* and the rounding part of the bound (the error less the |q| |d - dh|
     * term) is tight, so the test would notice rounding turned into
     * truncation (errors up to a whole d) */
    CHECK(ratio8 > 0.49 && ratio8 <= 0.5 + 1e-4, "Q8_0 worst error %.4f d", ratio8);
    CHECK(ratio4 > 0.49 && ratio4 <= 0.5 + 1e-4, "Q4_0 worst unclamped error %.4f d", ratio4);
}

/* ============================== Rows ============================== */

static void test_rows(void)
{
    /* a row of several blocks is the blocks one after another */
    float x[96], y[96];
    uint8_t row[3 * 34], one[34];
    for (int i = 0; i < 96; i++)
        x[i] = (float)((i * 37) % 29) - 14.0f;
    quant_quantize_row(VKLLM_TYPE_Q8_0, x, row, 96);
    for (int k = 0; k < 3; k++) {
        quant_quantize_row(VKLLM_TYPE_Q8_0, x + 32 * k, one, 32);
        CHECK(memcmp(row + 34 * k, one, 34) == 0, "Q8_0 block %d of a row", k);
    }
    quant_dequantize_row(VKLLM_TYPE_Q8_0, row, y, 96);
    CHECK(fabsf(y[95] - x[95]) <= 14.0f / 127.0f);

    /* F16 rows read unaligned memory (file data need not be 2-aligned) */
    uint8_t buf[1 + 2 * 5];
    const float f[5] = {1.0f, -2.5f, 65504.0f, 0x1p-24f, -0.0f};
    quant_quantize_row(VKLLM_TYPE_F16, f, buf + 1, 5);
    float g[5];
    quant_dequantize_row(VKLLM_TYPE_F16, buf + 1, g, 5);
    CHECK(memcmp(f, g, sizeof f) == 0, "F16 row round trip at an odd address");
    CHECK(buf[1] == 0x00 && buf[2] == 0x3c, "little-endian 1.0 = 0x3c00");

    quant_quantize_row(VKLLM_TYPE_F32, f, g, 5);
    CHECK(memcmp(f, g, sizeof f) == 0);

    CHECK(quant_supported(VKLLM_TYPE_F32) && quant_supported(VKLLM_TYPE_F16) &&
          quant_supported(VKLLM_TYPE_Q8_0) && quant_supported(VKLLM_TYPE_Q4_0));
    CHECK(quant_supported(VKLLM_TYPE_Q4_K) && quant_supported(VKLLM_TYPE_BF16) &&
          !quant_supported(VKLLM_TYPE_MXFP4) && !quant_supported(4) && !quant_supported(1000));
}

/* ============================== SHA-256 ==============================
 * FIPS 180-4, for comparing outputs with the golden hashes. */

struct sha256 {
    uint32_t h[8];
    uint8_t buf[64];
    uint64_t len;
};

static uint32_t ror32(uint32_t x, int n)
{
    return x >> n | x << (32 - n);
}

static void sha256_block(struct sha256 *c, const uint8_t *p)
{
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, c->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + k[i] + w[i];
        uint32_t t2 = (ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        c->h[i] += v[i];
}

static void sha256_init(struct sha256 *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->len = 0;
}

static void sha256_update(struct sha256 *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        c->buf[c->len++ % 64] = p[i];
        if (c->len % 64 == 0) sha256_block(c, c->buf);
    }
}

/* Finishes C and writes the digest as 64 hex digits into HEX. */
static void sha256_hex(struct sha256 *c, char hex[65])
{
    const uint64_t bits = c->len * 8;
    const uint8_t one = 0x80, zero = 0;
    sha256_update(c, &one, 1);
    while (c->len % 64 != 56)
        sha256_update(c, &zero, 1);
    for (int i = 7; i >= 0; i--) {
        const uint8_t b = (uint8_t)(bits >> (8 * i));
        sha256_update(c, &b, 1);
    }
    for (int i = 0; i < 8; i++)
        snprintf(hex + 8 * i, 9, "%08x", c->h[i]);
}

static void sha256_of(const void *data, size_t n, char hex[65])
{
    struct sha256 c;
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_hex(&c, hex);
}

static void test_sha256(void)
{
    char hex[65];
    sha256_of("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "%s",
          hex);
    sha256_of("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "%s",
          hex);
}

/* ============================== Golden data ==============================
 * tests/data/quant_golden.txt has, for each format, the SHA-256 of what ggml
 * (ggml_quantize_chunk with no importance matrix, as llama-quantize calls it)
 * makes of golden_input(), of what ggml's dequantizer makes of those bytes,
 * and of what it makes of golden_bytes(); tests/data/README.md says how it was
 * made. The input is the same on every machine: rng.h's integers, and only
 * +, * and exact conversions. */

#define GOLDEN_ROWS 12
#define GOLDEN_COLS 512 /* two 256-superblocks, sixteen 32-blocks */

static double golden_uniform(struct rng *r) /* [0, 1), 53 bits */
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double golden_normal(struct rng *r) /* about N(0, 1): Irwin-Hall */
{
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += golden_uniform(r);
    return s - 6.0;
}

/* Rows of different shapes: the quantizers' special cases (all-zero groups,
 * one-signed rows, outliers, ties) all occur. */
static void golden_input(float *x)
{
    struct rng r;
    rng_seed(&r, 20240601);
    for (int row = 0; row < GOLDEN_ROWS; row++) {
        float *y = x + row * GOLDEN_COLS;
        for (int i = 0; i < GOLDEN_COLS; i++) {
            const double g = golden_normal(&r), u = golden_uniform(&r);
            double v;
            switch (row) {
            case 0: v = g; break;                                            /* N(0, 1) */
            case 1: v = g * 0.001; break;                                    /* small */
            case 2: v = u; break;                                            /* all positive */
            case 3: v = -u * 3.0; break;                                     /* all negative */
            case 4: v = 0.0; break;                                          /* all zero */
            case 5: v = i == 77 ? 40.0 : g; break;                           /* one outlier */
            case 6: v = i == 300 ? -55.0 : g * (u < 0.9 ? 0.0 : 3.0); break; /* sparse */
            case 7: v = (double)((int)(u * 17.0) - 8); break;                /* integers: ties */
            case 8: v = (double)((int)(u * 65.0) - 32) * 0.5; break;         /* halves: ties */
            case 9: v = i < 32 ? g * 1e-20 : g * 100.0; break;               /* a near-zero group */
            case 10: v = i < 256 ? 0.75 : g * g * g; break;      /* constant, heavy tail */
            default: v = g * (i % 64 < 16 ? 1e-4 : 20.0); break; /* mixed scales */
            }
            y[i] = (float)v;
        }
    }
}

/* Random block bytes for the dequantizers (their half floats may be inf or
 * NaN: NaNs are hashed as one canonical NaN, since their sign and payload
 * are not reproducible across compilers). */
static void golden_bytes(uint8_t *p, size_t n)
{
    struct rng r;
    rng_seed(&r, 77);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(&r) >> 56);
}

static void golden_hash_floats(const float *y, size_t n, char hex[65])
{
    struct sha256 c;
    sha256_init(&c);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = isnan(y[i]) ? 0x7fc00000u : f32_bits(y[i]);
        uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        sha256_update(&c, le, 4);
    }
    sha256_hex(&c, hex);
}

/* The three hashes of format F, from our quantizer and dequantizer. */
static void golden_hashes(const struct quant_format *f, char quant[65], char deq[65],
                          char deq_random[65])
{
    enum { N = GOLDEN_ROWS * GOLDEN_COLS };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    const size_t bytes = quant_row_bytes(f->type, N);
    golden_input(x);
    quant_quantize_row(f->type, x, q, N);
    sha256_of(q, bytes, quant);
    quant_dequantize_row(f->type, q, y, N);
    golden_hash_floats(y, N, deq);
    golden_bytes(q, bytes);
    quant_dequantize_row(f->type, q, y, N);
    golden_hash_floats(y, N, deq_random);
}

static void test_golden(void)
{
    FILE *fp = fopen(VKLLM_TEST_DATA "/quant_golden.txt", "r");
    REQUIRE(fp, "cannot open " VKLLM_TEST_DATA "/quant_golden.txt");
    char line[512];
    int seen = 0;
    while (fgets(line, sizeof line, fp)) {
        char name[16], want[3][65], got[3][65];
        if (line[0] == '#' ||
            sscanf(line, "%15s %64s %64s %64s", name, want[0], want[1], want[2]) != 4)
            continue;
        const struct quant_format *f = NULL;
        for (uint32_t i = 0; i < quant_format_count; i++)
            if (!strcmp(quant_formats[i].name, name)) f = &quant_formats[i];
        CHECK(f != NULL, "quant_golden.txt: %s is not in formats.h", name);
        if (!f) continue;
        seen++;
        golden_hashes(f, got[0], got[1], got[2]);
        CHECK(!strcmp(got[0], want[0]),
              "%s: quantized bytes differ from ggml's: sha256 %s, want %s", name, got[0], want[0]);
        CHECK(!strcmp(got[1], want[1]), "%s: dequantized floats differ from ggml's: %s, want %s",
              name, got[1], want[1]);
        CHECK(!strcmp(got[2], want[2]),
              "%s: dequantized random blocks differ from ggml's: %s, want %s", name, got[2],
              want[2]);
    }
    fclose(fp);
    CHECK(seen == (int)quant_format_count, "quant_golden.txt has %d of the %u formats", seen,
          quant_format_count);
}

/* ============================== Round trips ==============================
 * y = dequantize(quantize(x)) for x ~ N(0, 1) (65536 values): the relative
 * RMS error sqrt(sum (x-y)^2 / sum x^2) against a bound per format.
 *
 * The bounds come from the rounding error of a uniform quantizer, step / sqrt(12)
 * RMS, with the step each format's layout allows for a group of g normal
 * values: a 32-group spans about 4.1 (from min to max; its largest magnitude
 * is about 2.2), a 16-group about 3.5 (1.8). So Q8_0 (amax / 127): 0.0050;
 * Q5_0 (amax / 16) 0.040, Q5_1 (range / 31) 0.038, Q4_0 (amax / 8) 0.079,
 * Q4_1 (range / 15) 0.079; Q6_K (16-groups, amax / 32) 0.016, Q5_K and Q4_K
 * (32-groups, range / 31 and / 15) 0.038 and 0.079, Q3_K (16-groups, amax / 4)
 * 0.13, Q2_K (16-groups, range / 3) 0.34; IQ4_NL and IQ4_XS, 16 non-uniform
 * levels, as Q4_1. The searches for the K-quant scales help, their 4- to
 * 8-bit scales hurt a little. The bounds are 1.25 times these (Q3_K 1.5
 * times: its scales are 6-bit and signed), so a quantizer one bit worse than
 * its format (twice the error) fails; ggml's reference measures within 15%
 * of each estimate. F16 and BF16 round to 11 and 8 significant bits: relative
 * RMS 2^-11 / sqrt(3) and 2^-8 / sqrt(3). */
static void test_round_trip(void)
{
    static const struct {
        uint32_t type;
        double bound;
    } bounds[] = {
        {VKLLM_TYPE_F32, 0.0},     {VKLLM_TYPE_F16, 0.00035},  {VKLLM_TYPE_BF16, 0.0028},
        {VKLLM_TYPE_Q8_0, 0.0063}, {VKLLM_TYPE_Q5_0, 0.050},   {VKLLM_TYPE_Q5_1, 0.048},
        {VKLLM_TYPE_Q4_0, 0.099},  {VKLLM_TYPE_Q4_1, 0.099},   {VKLLM_TYPE_Q6_K, 0.020},
        {VKLLM_TYPE_Q5_K, 0.048},  {VKLLM_TYPE_Q4_K, 0.099},   {VKLLM_TYPE_Q3_K, 0.195},
        {VKLLM_TYPE_Q2_K, 0.425},  {VKLLM_TYPE_IQ4_NL, 0.099}, {VKLLM_TYPE_IQ4_XS, 0.099},
    };
    enum { N = 65536 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    struct rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < N; i++)
        x[i] = (float)golden_normal(&r);
    int checked = 0;
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        const struct quant_format *f = quant_format(bounds[k].type);
        REQUIRE(f != NULL);
        checked++;
        quant_quantize_row(f->type, x, q, N);
        quant_dequantize_row(f->type, q, y, N);
        double se = 0.0, sx = 0.0;
        for (int i = 0; i < N; i++) {
            se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            sx += (double)x[i] * x[i];
        }
        const double nrmse = sqrt(se / sx);
        CHECK(nrmse <= bounds[k].bound, "%s: relative RMS error %.5f > %.5f", f->name, nrmse,
              bounds[k].bound);

        /* zeros come back as zeros (+0 or -0), every format */
        float z[QK_K] = {0}, back[QK_K];
        memset(back, 0x55, sizeof back);
        quant_quantize_row(f->type, z, q, QK_K);
        quant_dequantize_row(f->type, q, back, QK_K);
        int bad = 0;
        for (int i = 0; i < QK_K; i++)
            bad += back[i] != 0.0f;
        CHECK(bad == 0, "%s: %d of 256 zeros come back non-zero", f->name, bad);
    }
    CHECK(checked == (int)quant_format_count, "a format of formats.h has no round-trip bound");
}

/* ============================== vkllm_quantize ==============================
 * What the end-to-end test (test_quantize.sh) cannot easily do: stop a
 * conversion half way, and look at the directory afterwards. */

static bool stop_at_second(const struct vkllm_quantize_progress *p, void *user)
{
    (void)p;
    return ++*(int *)user < 2;
}

/* Files in DIR other than "." and "..". */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void test_quantize_model(void)
{
    const char *dir = VKLLM_TEST_GEN "/quantize";
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/in.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    REQUIRE(system("rm -rf " VKLLM_TEST_GEN "/quantize && mkdir -p " VKLLM_TEST_GEN "/quantize") ==
            0);

    /* a 1-D norm and two matrices, one of rows that are not whole 256-blocks */
    static float embd[256 * 8], odd[96 * 4], norm[256];
    for (int i = 0; i < 256 * 8; i++)
        embd[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < 96 * 4; i++)
        odd[i] = (float)((i * 11) % 23) - 11.0f;
    for (int i = 0; i < 256; i++)
        norm[i] = 1.0f;
    vkllm_gguf_writer *w;
    struct vkllm_error err = {0};
    REQUIRE(vkllm_gguf_writer_create(&w, &err) == VKLLM_OK);
    const uint64_t ne_embd[4] = {256, 8, 1, 1}, ne_odd[4] = {96, 4, 1, 1},
                   ne_norm[4] = {256, 1, 1, 1};
    CHECK(vkllm_gguf_writer_set_str(w, "general.architecture", "llama") == VKLLM_OK);
    CHECK(vkllm_gguf_writer_add_tensor(w, "token_embd.weight", VKLLM_TYPE_F32, 2, ne_embd, embd,
                                       sizeof embd) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", VKLLM_TYPE_F32, 2, ne_odd, odd,
                                       sizeof odd) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_add_tensor(w, "output_norm.weight", VKLLM_TYPE_F32, 1, ne_norm, norm,
                                       sizeof norm) == VKLLM_OK);
    REQUIRE(vkllm_gguf_writer_write(w, in, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_gguf_writer_destroy(w);

    /* stopped by the progress callback: an error, and nothing left behind */
    int calls = 0;
    struct vkllm_quantize_params qp = {
        .type = "q4_k", .pure = true, .n_threads = 2, .progress = stop_at_second, .user = &calls};
    int rc = vkllm_quantize(in, out, &qp, &err);
    CHECK(rc != VKLLM_OK && strstr(err.msg, "out.gguf"), "stopped: rc %d, %s", rc, err.msg);
    CHECK(count_files(dir) == 1, "a stopped run left %d files in %s", count_files(dir), dir);

    /* the mixes need the model's shape; there is none here */
    qp.pure = false;
    qp.progress = NULL;
    rc = vkllm_quantize(in, out, &qp, &err);
    CHECK(rc == VKLLM_E_FORMAT && strstr(err.msg, "block_count"), "mix without shape: %s", err.msg);
    CHECK(count_files(dir) == 1);

    /* --pure Q4_K: the 256-row matrix in Q4_K, the 96 one falls back to Q5_0,
     * the norm stays F32; the key/values end with the two llama-quantize sets */
    qp.pure = true;
    rc = vkllm_quantize(in, out, &qp, &err);
    REQUIRE(rc == VKLLM_OK, "%s", err.msg);
    CHECK(count_files(dir) == 2, "no temporary file is left");
    vkllm_gguf *g;
    REQUIRE(vkllm_gguf_open(out, &g, &err) == VKLLM_OK, "%s", err.msg);
    const struct vkllm_gguf_tensor *t;
    CHECK((t = vkllm_gguf_find_tensor(g, "token_embd.weight")) && t->type == VKLLM_TYPE_Q4_K);
    CHECK((t = vkllm_gguf_find_tensor(g, "blk.0.attn_q.weight")) && t->type == VKLLM_TYPE_Q5_0);
    CHECK((t = vkllm_gguf_find_tensor(g, "output_norm.weight")) && t->type == VKLLM_TYPE_F32 &&
          t->n_dims == 1);
    /* llama.cpp's loader order: tensors outside blocks first, by name, then blocks */
    CHECK(vkllm_gguf_tensor_count(g) == 3 &&
          !memcmp(vkllm_gguf_tensor_at(g, 0)->name.ptr, "output_norm", 11) &&
          !memcmp(vkllm_gguf_tensor_at(g, 2)->name.ptr, "blk.0.", 6));
    uint64_t v = 0;
    CHECK(vkllm_gguf_get_uint(g, "general.file_type", &v, &err) == VKLLM_OK && v == 15);
    CHECK(vkllm_gguf_kv_count(g) == 3 &&
          !memcmp(vkllm_gguf_kv_at(g, 2)->key.ptr, "general.file_type", 17));
    vkllm_gguf_close(g);

    /* the output is already quantized: refused, and OUT is not touched */
    rc = vkllm_quantize(out, in, &qp, &err);
    CHECK(rc == VKLLM_E_UNSUPPORTED && strstr(err.msg, "F32, F16 or BF16"), "%s", err.msg);
    qp.type = "Q9_K";
    rc = vkllm_quantize(in, out, &qp, &err);
    CHECK(rc == VKLLM_E_INVALID && strstr(err.msg, "Q4_K_M"), "unknown type: %s", err.msg);
    CHECK(count_files(dir) == 2);
}

/* ============================== Type table ============================== */

/* ggml's type_traits (ggml.c): type_name, blck_size and type_size, the last
 * being sizeof(block_...) in ggml-common.h. Ids 4, 5 (Q4_2, Q4_3), 31-33
 * (Q4_0_4_4 ...) and 36-38 (IQ4_NL_4_4 ...) are retired. */
static const struct {
    uint32_t id;
    const char *name;
    uint32_t block_size, block_bytes;
} ggml_types[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},
    {41, "Q1_0", 128, 18},    {42, "Q2_0", 64, 18},
};

static void test_type_table(void)
{
    unsigned char known[VKLLM_TYPE_COUNT] = {0};
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++) {
        const struct vkllm_type_info *ti = vkllm_type_info(ggml_types[i].id);
        known[ggml_types[i].id] = 1;
        REQUIRE(ti != NULL, "type %u (%s) missing", ggml_types[i].id, ggml_types[i].name);
        CHECK(strcmp(ti->name, ggml_types[i].name) == 0, "type %u: name %s, want %s",
              ggml_types[i].id, ti->name, ggml_types[i].name);
        CHECK(ti->block_size == ggml_types[i].block_size &&
                  ti->block_bytes == ggml_types[i].block_bytes,
              "type %s: %u elements in %u bytes, ggml has %u in %u", ggml_types[i].name,
              ti->block_size, ti->block_bytes, ggml_types[i].block_size, ggml_types[i].block_bytes);
    }
    for (uint32_t id = 0; id < VKLLM_TYPE_COUNT; id++)
        if (!known[id]) CHECK(vkllm_type_info(id) == NULL, "retired id %u has an entry", id);
    CHECK(vkllm_type_info(VKLLM_TYPE_COUNT) == NULL && vkllm_type_info(UINT32_MAX) == NULL);

    /* row sizes: whole blocks only */
    CHECK(quant_row_bytes(VKLLM_TYPE_Q4_0, 64) == 36);
    CHECK(quant_row_bytes(VKLLM_TYPE_Q4_0, 33) == 0, "33 is not whole Q4_0 blocks");
    CHECK(quant_row_bytes(VKLLM_TYPE_Q4_0, 31) == 0);
    CHECK(quant_row_bytes(VKLLM_TYPE_Q8_0, 4096) == 128 * 34);
    CHECK(quant_row_bytes(VKLLM_TYPE_Q4_K, 255) == 0 && quant_row_bytes(VKLLM_TYPE_Q4_K, 257) == 0);
    CHECK(quant_row_bytes(VKLLM_TYPE_Q6_K, 512) == 420);
    CHECK(quant_row_bytes(VKLLM_TYPE_F32, 7) == 28 && quant_row_bytes(VKLLM_TYPE_F16, 7) == 14);
    CHECK(quant_row_bytes(VKLLM_TYPE_MXFP4, 48) == 0);
    CHECK(quant_row_bytes(4, 32) == 0 && quant_row_bytes(1000, 32) == 0, "unknown types");
    CHECK(quant_row_bytes(VKLLM_TYPE_Q4_0, (uint64_t)1 << 40) == ((uint64_t)1 << 35) * 18,
          "no 32-bit overflow");
}

int main(void)
{
    test_fp16_exhaustive();
    test_fp16_rounding();
    test_q8_0_known();
    test_q4_0_known();
    test_error_bounds();
    test_rows();
    test_sha256();
    test_golden();
    test_round_trip();
    test_quantize_model();
    test_type_table();
    return TEST_REPORT();
}
