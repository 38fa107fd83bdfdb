/* quant.glsl: reading weights in the device layout engine/model/weights.c uploads.
 *
 * The build compiles one variant per line of engine/core/formats.h with
 *   WTYPE_<NAME>  the format;  QK  elements per block;  BLOCK_BYTES  bytes per
 *   block in GGUF;  HALF_AT  byte offset of the scale half moved out, or -1;
 *   ACT_<KIND>  how the matvec prepares its input.
 * The kernel declares `uint weights[]` before including this file. Weights are
 * split by rows into parts of at most one storage-buffer binding; within a part:
 *   F32, F16, BF16  GGUF's rows unchanged (halves two per word, low first)
 *   block formats   each block's bytes as BW whole words, blocks row-major; a
 *                   block of 4k + 2 bytes leaves its half-float scale (at byte
 *                   HALF_AT) to an array of halves from word scale_offset.
 * Byte offsets below are into the block as the device holds it: for HALF_AT 0
 * they are GGUF's minus 2. Everything is read as 32-bit words, so no 8- or
 * 16-bit storage feature is needed.
 *
 * A kernel that also declares the same binding as `uvec4 weights4[]` and
 * defines WEIGHTS4 gets four words per load where a block's words are
 * 16-byte aligned (BW a multiple of 4: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K). That is
 * the same data; it matters on lavapipe, which loads a buffer at a per-thread
 * address one lane at a time, whatever the width: a quarter of the lane loops.
 *
 * With TEXEL_WEIGHTS (block formats) the kernel declares no weights: they are
 * read here from binding 1 as a uniform texel buffer of uvec4 words. lavapipe
 * fetches a texel at a per-thread address without the lane loop of a storage
 * buffer's load (docs/PERFORMANCE.md).
 *
 * Block formats provide dequant32(b, s, scale_offset, v): elements 32s .. 32s+31
 * of block b of the part, as v[i] = elements 4i .. 4i+3. */

#if QK > 1
#define WTYPE_BLOCKS 1
#if HALF_AT >= 0
#define BW ((BLOCK_BYTES - 2u) / 4u)
#else
#define BW (BLOCK_BYTES / 4u)
#endif
#define SUBS (QK / 32u) /* 32-element sub-blocks per block */

#ifdef TEXEL_WEIGHTS
layout(binding = 1) uniform usamplerBuffer weight_texels;
/* word I of the part */
uint wword(uint i) { return texelFetch(weight_texels, int(i >> 2))[i & 3u]; }
#define WEIGHTS4 1
#else
uint wword(uint i) { return weights[i]; }
#endif
uint bword(uint b, uint i) { return wword(b * BW + i); }

/* (the preprocessor cannot read BW's unsigned literals) */
#if defined(WEIGHTS4) && ((HALF_AT >= 0 && (BLOCK_BYTES - 2) % 16 == 0) ||                         \
                          (HALF_AT < 0 && BLOCK_BYTES % 16 == 0))
#define BLOCK_WORDS4 1
/* words 4i .. 4i+3 of block B */
#ifdef TEXEL_WEIGHTS
uvec4 bword4(uint b, uint i) { return texelFetch(weight_texels, int(b * (BW / 4u) + i)); }
#else
uvec4 bword4(uint b, uint i) { return weights4[b * (BW / 4u) + i]; }
#endif
#endif

/* byte O of block B */
uint bbyte(uint b, uint o) { return bitfieldExtract(bword(b, o >> 2), int(8u * (o & 3u)), 8); }

/* the scale half the layout moved out of block B */
float block_scale(uint scale_offset, uint b)
{
    uint word = wword(scale_offset + (b >> 1));
    return (b & 1u) == 0u ? f16_lo(word) : f16_hi(word);
}

/* the four bytes of W, as signed bytes, low and high nibbles */
vec4 s8x4(uint w)
{
    return vec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8),
                bitfieldExtract(int(w), 16, 8), bitfieldExtract(int(w), 24, 8));
}
vec4 lo4(uint w) { return vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xfu); }
/* the nibbles of W's four bytes at SHIFT (0: low, 4: high), one code path for both */
vec4 nib4(uint w, uint shift) { return vec4((uvec4(w, w >> 8, w >> 16, w >> 24) >> shift) & 0xfu); }
vec4 hi4(uint w) { return vec4(uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 0xfu); }
/* bit BIT of each of the four bytes of W, times 16 */
vec4 bit16(uint w, uint bit) { return vec4((uvec4(w, w >> 8, w >> 16, w >> 24) >> bit) & 1u) * 16.0; }
/* bits 4i..4i+3 of W, each times 16 (Q5_0/Q5_1's fifth bits of four elements) */
vec4 qh16(uint w, uint i) { return vec4((uvec4(w) >> (uvec4(0u, 1u, 2u, 3u) + 4u * i)) & 1u) * 16.0; }

#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
const float iq4nl_values[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                         1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
vec4 iq4(vec4 idx)
{
    return vec4(iq4nl_values[int(idx.x)], iq4nl_values[int(idx.y)], iq4nl_values[int(idx.z)],
                iq4nl_values[int(idx.w)]);
}
#endif

#if defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
/* scale and min J of the 8 6-bit pairs at bytes 4..15 (HEAD: words 0..3 of
 * the block): pairs 0-3 are the low six bits of bytes 4+j and 8+j; pairs 4-7
 * take their low four bits from the nibbles of byte 12+(j-4) and their high
 * two from the top bits of bytes j-4 and j. Selects, no branch. */
vec2 k4_scale_min(uvec4 head, uint j)
{
    const uint sh = 8u * (j & 3u);
    const uint b1 = (head[1] >> sh) & 0xffu, b2 = (head[2] >> sh) & 0xffu;
    const uint b3 = (head[3] >> sh) & 0xffu;
    const uint d = j < 4u ? b1 & 63u : (b3 & 0xfu) | ((b1 >> 6) << 4);
    const uint m = j < 4u ? b2 & 63u : (b3 >> 4) | ((b2 >> 6) << 4);
    return vec2(d, m);
}
#endif

#if defined(WTYPE_Q2_K)
/* the scales and mins of the two 16-element halves of Q2_K sub-block S of
 * block B, as (scale0, scale1, min0, min1): d and dmin (word 20) times the
 * nibbles of scale bytes 8(S/4) + 2(S%4) and the next */
vec4 q2k_scales(uint b, uint s)
{
    const vec2 dm = unpackHalf2x16(bword(b, 20u));
    const uint i = 8u * (s / 4u) + 2u * (s % 4u);
    const uint sc0 = bbyte(b, i), sc1 = bbyte(b, i + 1u);
    return vec4(dm.x * float(sc0 & 0xfu), dm.x * float(sc1 & 0xfu), dm.y * float(sc0 >> 4),
                dm.y * float(sc1 >> 4));
}
#endif

#if defined(WTYPE_Q3_K)
/* the scales of the two 16-element halves of Q3_K sub-block S of block B:
 * d times a 6-bit scale less 32, its low four bits in the nibbles of bytes
 * 96..103, its high two in bytes 104..107 */
vec2 q3k_scales(uint b, uint s, uint scale_offset)
{
    const float d = block_scale(scale_offset, b);
    vec2 dl;
    [[unroll]] for (uint part = 0u; part < 2u; part++) {
        const uint is = 8u * (s / 4u) + 2u * (s % 4u) + part;
        const uint low = is < 8u ? bbyte(b, 96u + is) & 0xfu : bbyte(b, 96u + is - 8u) >> 4;
        const uint high = (bbyte(b, 104u + is % 4u) >> (2u * (is / 4u))) & 3u;
        dl[part] = d * (float(low | (high << 4)) - 32.0);
    }
    return dl;
}
#endif

#if defined(WTYPE_IQ4_XS)
/* the scale of IQ4_XS sub-block S of block B: d (word 0's low half) times a
 * 6-bit scale less 32, its low four bits in the nibbles of bytes 4..7, its
 * high two in word 0's high half */
float iq4xs_scale(uint b, uint s)
{
    const uint w0 = bword(b, 0u);
    const uint ls = ((bbyte(b, 4u + s / 2u) >> (4u * (s & 1u))) & 0xfu) | (((w0 >> (16u + 2u * s)) & 3u) << 4);
    return unpackHalf2x16(w0).x * (float(ls) - 32.0);
}
#endif

void dequant32(uint b, uint s, uint scale_offset, out vec4 v[8])
{
#if defined(WTYPE_Q4_0)
    const float d = block_scale(scale_offset, b);
#ifdef BLOCK_WORDS4
    const uvec4 q4 = bword4(b, 0u);
#endif
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
#ifdef BLOCK_WORDS4
        const uint q = q4[w];
#else
        const uint q = bword(b, w);
#endif
        v[w] = (lo4(q) - 8.0) * d;
        v[4u + w] = (hi4(q) - 8.0) * d;
    }
#elif defined(WTYPE_Q4_1)
    const vec2 dm = unpackHalf2x16(bword(b, 0u));
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = bword(b, 1u + w);
        v[w] = lo4(q) * dm.x + dm.y;
        v[4u + w] = hi4(q) * dm.x + dm.y;
    }
#elif defined(WTYPE_Q5_0)
    const float d = block_scale(scale_offset, b);
    const uint qh = bword(b, 0u);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = bword(b, 1u + w);
        v[w] = (lo4(q) + qh16(qh, w) - 16.0) * d;
        v[4u + w] = (hi4(q) + qh16(qh, 4u + w) - 16.0) * d;
    }
#elif defined(WTYPE_Q5_1)
    const vec2 dm = unpackHalf2x16(bword(b, 0u));
    const uint qh = bword(b, 1u);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = bword(b, 2u + w);
        v[w] = (lo4(q) + qh16(qh, w)) * dm.x + dm.y;
        v[4u + w] = (hi4(q) + qh16(qh, 4u + w)) * dm.x + dm.y;
    }
#elif defined(WTYPE_Q8_0)
    const float d = block_scale(scale_offset, b);
#ifdef BLOCK_WORDS4
    const uvec4 q4[2] = uvec4[2](bword4(b, 0u), bword4(b, 1u));
    [[unroll]] for (uint w = 0u; w < 8u; w++) v[w] = s8x4(q4[w / 4u][w % 4u]) * d;
#else
    [[unroll]] for (uint w = 0u; w < 8u; w++) v[w] = s8x4(bword(b, w)) * d;
#endif
#elif defined(WTYPE_IQ4_NL)
    const float d = block_scale(scale_offset, b);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = bword(b, w);
        v[w] = iq4(lo4(q)) * d;
        v[4u + w] = iq4(hi4(q)) * d;
    }
#elif defined(WTYPE_Q2_K)
    /* scales: bytes 0..15; quants: bytes 16..79; d, dmin: word 20. Sub-block s
     * is bits 2(s%4) of quant bytes 32(s/4) .. +31, two scales of 16 each. */
    const uint h = s / 4u, shift = 2u * (s % 4u);
    const vec4 sc = q2k_scales(b, s);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const uint q = bword(b, 4u + 8u * h + i);
        const vec4 qv = vec4((uvec4(q, q >> 8, q >> 16, q >> 24) >> shift) & 3u);
        v[i] = i < 4u ? sc.x * qv - sc.z : sc.y * qv - sc.w;
    }
#elif defined(WTYPE_Q3_K)
    /* hmask: bytes 0..31; quants: bytes 32..95; 16 6-bit scales: bytes 96..107 */
    const uint h = s / 4u, j = s % 4u, shift = 2u * j, hbit = 4u * h + j;
    const vec2 dl = q3k_scales(b, s, scale_offset);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const uint q = bword(b, 8u + 8u * h + i), m = bword(b, i);
        const vec4 lo = vec4((uvec4(q, q >> 8, q >> 16, q >> 24) >> shift) & 3u);
        v[i] = dl[i / 4u] * (lo - (4.0 - bit16(m, hbit) * 0.25));
    }
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
    /* d, dmin: word 0; scales: bytes 4..15; quants: 64 elements per 32 bytes
     * (low nibbles first) from byte 16 (Q4_K), or from byte 48 after Q5_K's
     * high bits at bytes 16..47 (bit s of byte l for element l of sub-block s) */
#ifdef BLOCK_WORDS4
    const uvec4 head = bword4(b, 0u);
#else
    const uvec4 head = uvec4(bword(b, 0u), bword(b, 1u), bword(b, 2u), bword(b, 3u));
#endif
    const vec2 dm = unpackHalf2x16(head[0]);
    const vec2 sm = k4_scale_min(head, s);
    const float dl = dm.x * sm.x, ml = dm.y * sm.y;
    const uint g = s / 2u;
#if defined(WTYPE_Q4_K)
    const uint q0 = 4u + 8u * g; /* the word of the quants */
#else
    const uint q0 = 12u + 8u * g;
#endif
    uint q[8];
#ifdef BLOCK_WORDS4
    const uvec4 qa = bword4(b, q0 / 4u), qb = bword4(b, q0 / 4u + 1u);
    [[unroll]] for (uint i = 0u; i < 4u; i++) q[i] = qa[i], q[4u + i] = qb[i];
#else
    [[unroll]] for (uint i = 0u; i < 8u; i++) q[i] = bword(b, q0 + i);
#endif
#if defined(WTYPE_Q5_K)
    uint qh[8];
#ifdef BLOCK_WORDS4
    const uvec4 ha = bword4(b, 1u), hb = bword4(b, 2u);
    [[unroll]] for (uint i = 0u; i < 4u; i++) qh[i] = ha[i], qh[4u + i] = hb[i];
#else
    [[unroll]] for (uint i = 0u; i < 8u; i++) qh[i] = bword(b, 4u + i);
#endif
#endif
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
#if defined(WTYPE_Q4_K)
        v[i] = dl * nib4(q[i], 4u * (s & 1u)) - ml;
#else
        v[i] = dl * (nib4(q[i], 4u * (s & 1u)) + bit16(qh[i], s)) - ml;
#endif
    }
#elif defined(WTYPE_Q6_K)
    /* low nibbles: bytes 0..127; high pairs: bytes 128..191; int8 scales per
     * 16 elements: bytes 192..207. Half h = s/4 of the block; quarter s%4 picks
     * the nibble (s%4 / 2), the 32-byte run (s%4 & 1) and the high-bit pair. */
    const float d = block_scale(scale_offset, b);
    const uint h = s / 4u, qq = s % 4u;
    const uint l0 = 16u * h + 8u * (qq & 1u), h0 = 32u + 8u * h; /* words of ql, qh */
#ifdef BLOCK_WORDS4
    /* the scales' 16 bytes are words 48..51 */
    const uint sw = bword4(b, 12u)[(8u * h + 2u * qq) / 4u] >> (8u * ((2u * qq) % 4u));
    const float dl0 = d * float(bitfieldExtract(int(sw), 0, 8));
    const float dl1 = d * float(bitfieldExtract(int(sw), 8, 8));
    const uvec4 la = bword4(b, l0 / 4u), lb = bword4(b, l0 / 4u + 1u);
    const uvec4 ha = bword4(b, h0 / 4u), hb = bword4(b, h0 / 4u + 1u);
#else
    const float dl0 = d * float(bitfieldExtract(int(bbyte(b, 192u + 8u * h + 2u * qq)), 0, 8));
    const float dl1 = d * float(bitfieldExtract(int(bbyte(b, 193u + 8u * h + 2u * qq)), 0, 8));
#endif
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
#ifdef BLOCK_WORDS4
        const uint ql = i < 4u ? la[i % 4u] : lb[i % 4u], qh = i < 4u ? ha[i % 4u] : hb[i % 4u];
#else
        const uint ql = bword(b, l0 + i);
        const uint qh = bword(b, h0 + i);
#endif
        const vec4 lo = nib4(ql, 4u * (qq >> 1));
        const vec4 hi = vec4((uvec4(qh, qh >> 8, qh >> 16, qh >> 24) >> (2u * qq)) & 3u);
        v[i] = (i < 4u ? dl0 : dl1) * (lo + hi * 16.0 - 32.0);
    }
#elif defined(WTYPE_IQ4_XS)
    /* indices: bytes 8..135, 16 per sub-block with Q4_0's nibble order */
    const float dl = iq4xs_scale(b, s);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint q = bword(b, 2u + 4u * s + w);
        v[w] = iq4(lo4(q)) * dl;
        v[4u + w] = iq4(hi4(q)) * dl;
    }
#endif
}
#if defined(INT_DOT) && !defined(ACT_Q8)
/* For the integer-dot matvec of the formats whose float matvec takes float
 * activations (matvec.comp): sub-block S of block B as 32 int8 quants, q[i]
 * = elements 4i .. 4i+3 packed low byte first, element e standing for
 * sm.x * q + sm.z (e < 16) or sm.y * q + sm.w (e >= 16): the scales and
 * mins of its two halves, as Q2_K, Q3_K and Q6_K scale every 16 elements.
 * The formats with a min define QUANTS_MIN. The products are those of the
 * dequantized weights (dequant32) with the activations, grouped otherwise. */

/* bits 0..3 of BITS, each to bit AT of its byte */
uint spread4(uint bits, uint at)
{
    return ((bits & 1u) | ((bits & 2u) << 7) | ((bits & 4u) << 14) | ((bits & 8u) << 21)) << at;
}

/* each byte of W less BIAS, as int8: a byte of at most 127 + BIAS plus
 * 128 - BIAS stays within its byte, and flipping bit 7 subtracts 128 */
uint minus_bias(uint w, uint bias) { return (w + (128u - bias) * 0x01010101u) ^ 0x80808080u; }

#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
const int iq4nl_ints[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69,
                                   89, 113);
/* the table values of the nibbles at SHIFT of W's four bytes, as int8 */
uint iq4_bytes(uint w, uint shift)
{
    uint r = 0u;
    [[unroll]] for (uint j = 0u; j < 4u; j++)
        r |= uint(iq4nl_ints[(w >> (8u * j + shift)) & 0xfu] & 0xff) << (8u * j);
    return r;
}
#endif

#if defined(WTYPE_Q4_1) || defined(WTYPE_Q5_1) || defined(WTYPE_Q2_K) || defined(WTYPE_Q4_K) ||  \
    defined(WTYPE_Q5_K)
#define QUANTS_MIN 1
#endif

void quants32(uint b, uint s, uint scale_offset, out uint q[8], out vec4 sm)
{
#if defined(WTYPE_Q4_1) || defined(WTYPE_Q5_1)
    const vec2 dm = unpackHalf2x16(bword(b, 0u));
#if defined(WTYPE_Q5_1)
    const uint qh = bword(b, 1u), q0 = 2u;
#else
    const uint q0 = 1u;
#endif
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint x = bword(b, q0 + w);
        q[w] = x & 0x0F0F0F0Fu;
        q[4u + w] = (x >> 4) & 0x0F0F0F0Fu;
#if defined(WTYPE_Q5_1)
        q[w] |= spread4(qh >> (4u * w), 4u);
        q[4u + w] |= spread4(qh >> (16u + 4u * w), 4u);
#endif
    }
    sm = vec4(dm.x, dm.x, dm.y, dm.y);
#elif defined(WTYPE_Q5_0)
    const float d = block_scale(scale_offset, b);
    const uint qh = bword(b, 0u);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint x = bword(b, 1u + w);
        q[w] = minus_bias((x & 0x0F0F0F0Fu) | spread4(qh >> (4u * w), 4u), 16u);
        q[4u + w] = minus_bias(((x >> 4) & 0x0F0F0F0Fu) | spread4(qh >> (16u + 4u * w), 4u), 16u);
    }
    sm = vec4(d, d, 0.0, 0.0);
#elif defined(WTYPE_IQ4_NL)
    const float d = block_scale(scale_offset, b);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint x = bword(b, w);
        q[w] = iq4_bytes(x, 0u);
        q[4u + w] = iq4_bytes(x, 4u);
    }
    sm = vec4(d, d, 0.0, 0.0);
#elif defined(WTYPE_Q2_K)
    /* as dequant32 */
    const uint h = s / 4u, shift = 2u * (s % 4u);
    [[unroll]] for (uint i = 0u; i < 8u; i++) q[i] = (bword(b, 4u + 8u * h + i) >> shift) & 0x03030303u;
    const vec4 sc = q2k_scales(b, s);
    sm = vec4(sc.xy, -sc.zw);
#elif defined(WTYPE_Q3_K)
    /* as dequant32: 2 low bits, and 4 taken away where the high bit is clear */
    const uint h = s / 4u, j = s % 4u, shift = 2u * j, hbit = 4u * h + j;
    const vec2 dl = q3k_scales(b, s, scale_offset);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const uint x = bword(b, 8u + 8u * h + i), m = bword(b, i);
        q[i] = minus_bias(((x >> shift) & 0x03030303u) | (((m >> hbit) & 0x01010101u) << 2), 4u);
    }
    sm = vec4(dl[0], dl[1], 0.0, 0.0);
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
    /* as dequant32 */
    const uvec4 head = bword4(b, 0u);
    const vec2 dm = unpackHalf2x16(head[0]);
    const vec2 scm = k4_scale_min(head, s);
    const float dl = dm.x * scm.x, ml = dm.y * scm.y;
#if defined(WTYPE_Q4_K)
    const uint q0 = 4u + 8u * (s / 2u);
#else
    const uint q0 = 12u + 8u * (s / 2u);
    const uvec4 ha = bword4(b, 1u), hb = bword4(b, 2u);
#endif
    const uvec4 qa = bword4(b, q0 / 4u), qb = bword4(b, q0 / 4u + 1u);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        q[i] = ((i < 4u ? qa[i % 4u] : qb[i % 4u]) >> (4u * (s & 1u))) & 0x0F0F0F0Fu;
#if defined(WTYPE_Q5_K)
        q[i] |= (((i < 4u ? ha[i % 4u] : hb[i % 4u]) >> s) & 0x01010101u) << 4;
#endif
    }
    sm = vec4(dl, dl, -ml, -ml);
#elif defined(WTYPE_Q6_K)
    /* as dequant32: 4 low bits and 2 high, less 32 */
    const float d = block_scale(scale_offset, b);
    const uint h = s / 4u, qq = s % 4u;
    const uint l0 = 16u * h + 8u * (qq & 1u), h0 = 32u + 8u * h;
    const uint sw = bword4(b, 12u)[(8u * h + 2u * qq) / 4u] >> (8u * ((2u * qq) % 4u));
    const uvec4 la = bword4(b, l0 / 4u), lb = bword4(b, l0 / 4u + 1u);
    const uvec4 ha = bword4(b, h0 / 4u), hb = bword4(b, h0 / 4u + 1u);
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        const uint ql = i < 4u ? la[i % 4u] : lb[i % 4u], qh = i < 4u ? ha[i % 4u] : hb[i % 4u];
        q[i] = minus_bias(((ql >> (4u * (qq >> 1))) & 0x0F0F0F0Fu) |
                              (((qh >> (2u * qq)) & 0x03030303u) << 4),
                          32u);
    }
    sm = vec4(d * float(bitfieldExtract(int(sw), 0, 8)), d * float(bitfieldExtract(int(sw), 8, 8)),
              0.0, 0.0);
#elif defined(WTYPE_IQ4_XS)
    /* as dequant32 */
    const float dl = iq4xs_scale(b, s);
    [[unroll]] for (uint w = 0u; w < 4u; w++) {
        const uint x = bword(b, 2u + 4u * s + w);
        q[w] = iq4_bytes(x, 0u);
        q[4u + w] = iq4_bytes(x, 4u);
    }
    sm = vec4(dl, dl, 0.0, 0.0);
#endif
}
#endif

#endif /* QK > 1 */

/* An input element as a weight of this format multiplies it (ACT_*). */
float act(float v)
{
#if defined(ACT_F16)
    return round_f16(v);
#elif defined(ACT_BF16)
    uint u = floatBitsToUint(v);
    return uintBitsToFloat((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
#else
    return v;
#endif
}

/* Element k of row r (row length K) of the part: the slow, general path. */
float weight_at(uint r, uint k, uint K, uint scale_offset)
{
#if defined(WTYPE_F32)
    return uintBitsToFloat(weights[r * K + k]);
#elif defined(WTYPE_F16) || defined(WTYPE_BF16)
    uint h = r * K + k;
    uint word = weights[h >> 1];
#if defined(WTYPE_F16)
    return (h & 1u) == 0u ? f16_lo(word) : f16_hi(word);
#else
    return uintBitsToFloat((h & 1u) == 0u ? word << 16 : word & 0xffff0000u);
#endif
#else
    uint b = r * (K / QK) + k / QK;
    vec4 v[8];
    dequant32(b, (k % QK) / 32u, scale_offset, v);
    return v[(k % 32u) / 4u][k % 4u];
#endif
}
