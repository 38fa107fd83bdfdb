/* kv_q8.glsl: a KV cache of Q8_0 blocks, llama.cpp's block_q8_0 (an f16
 * scale d, then 32 int8 q; value = d q; 34 bytes) one after another in a
 * buffer of words, so that block B starts at byte 34 B: at a word when B is
 * even, half a word in when it is odd. A position's row is its KV heads'
 * blocks in order, as llama.cpp's K cache rows. */

/* The 4 int8 of word W as floats, the lowest byte first. */
vec4 q8_unpack4(uint w)
{
    const int i = int(w);
    return vec4(bitfieldExtract(i, 0, 8), bitfieldExtract(i, 8, 8), bitfieldExtract(i, 16, 8),
                bitfieldExtract(i, 24, 8));
}

/* Block B of the word buffer BUF: D its scale, QW[8] its 32 int8 in words.
 * Nine loads either way (on lavapipe the count of loads is the cost): an odd
 * block's int8 are whole words, an even one's straddle two. */
#define Q8_LOAD(BUF, B, D, QW)                                                                   \
    {                                                                                            \
        const uint b_ = (B), w0_ = b_ * 17u / 2u;                                                \
        const bool odd_ = (b_ & 1u) != 0u;                                                       \
        uint prev_ = BUF[w0_];                                                                   \
        D = unpackHalf2x16(odd_ ? prev_ >> 16 : prev_).x;                                        \
        for (uint i_ = 0u; i_ < 8u; i_++) {                                                      \
            const uint next_ = BUF[w0_ + 1u + i_];                                               \
            QW[i_] = odd_ ? next_ : (prev_ >> 16) | (next_ << 16);                               \
            prev_ = next_;                                                                       \
        }                                                                                        \
    }

/* Value I (< 32) of block B of BUF: two loads, the scale's and the int8's. */
#define Q8_AT(BUF, B, I)                                                                         \
    (unpackHalf2x16(BUF[(B) * 17u / 2u] >> (((B) & 1u) * 16u)).x *                              \
     float(bitfieldExtract(int(BUF[((B) * 34u + 2u + (I)) >> 2]), int((((B) * 34u + 2u + (I)) & 3u) * 8u), 8)))

/* Writing blocks (kv_store.comp, rope_kv_store.comp). Blocks are not
 * word-aligned, so the word a block shares with its neighbour is written by
 * atomics on its own half. */

/* roundf's: halves away from zero. x - trunc(x) is exact, where
 * floor(abs(x) + 0.5) would round the sum first (0.49999997 -> 1). */
float round_away(float x)
{
    const float t = trunc(x);
    precise float frac = abs(x - t);
    return frac >= 0.5 ? t + sign(x) : t;
}

/* round_away(x * id) as int8 bits, the product rounded on its own (a fused
 * multiply-add would not) */
uint q8_quant(float x, float id)
{
    precise float p = x * id;
    return uint(int(round_away(p))) & 0xffu;
}

/* The 32 floats of SRC from S0 quantized as llama.cpp's quantize_row_q8_0
 * (d = amax / 127 rounded to half; q = round(x * (1 / d)) with the unrounded
 * d) to block B of BUF. Both divisions correctly rounded (div_rn): GLSL's may
 * be off in the last bit (it is on NVIDIA), and then a q near a half flips. */
#define Q8_STORE(SRC, S0, BUF, B)                                                                \
    {                                                                                            \
        float amax_ = 0.0;                                                                       \
        for (uint i_ = 0u; i_ < 32u; i_++) amax_ = max(amax_, abs(SRC[(S0) + i_]));             \
        const float d_ = div_rn(amax_, 127.0), id_ = d_ != 0.0 ? div_rn(1.0, d_) : 0.0;          \
        uint h_[17]; /* the block's 17 half-words */                                             \
        h_[0] = f32_to_f16(d_);                                                                  \
        for (uint i_ = 0u; i_ < 16u; i_++)                                                       \
            h_[i_ + 1u] = q8_quant(SRC[(S0) + 2u * i_], id_) |                                   \
                          q8_quant(SRC[(S0) + 2u * i_ + 1u], id_) << 8;                          \
        const uint b_ = (B), w0_ = b_ * 17u / 2u;                                                \
        if ((b_ & 1u) == 0u) {                                                                   \
            for (uint i_ = 0u; i_ < 8u; i_++) BUF[w0_ + i_] = h_[2u * i_] | h_[2u * i_ + 1u] << 16; \
            atomicAnd(BUF[w0_ + 8u], 0xffff0000u);                                               \
            atomicOr(BUF[w0_ + 8u], h_[16]);                                                     \
        } else {                                                                                 \
            atomicAnd(BUF[w0_], 0xffffu);                                                        \
            atomicOr(BUF[w0_], h_[0] << 16);                                                     \
            for (uint i_ = 1u; i_ < 9u; i_++) BUF[w0_ + i_] = h_[2u * i_ - 1u] | h_[2u * i_] << 16; \
        }                                                                                        \
    }

/* The 32 floats of SRC from S0 as halves to words W0.. of BUF. */
#define F16_STORE(SRC, S0, BUF, W0)                                                              \
    for (uint i_ = 0u; i_ < 16u; i_++)                                                           \
        BUF[(W0) + i_] = f32_to_f16(SRC[(S0) + 2u * i_]) | (f32_to_f16(SRC[(S0) + 2u * i_ + 1u]) << 16);
