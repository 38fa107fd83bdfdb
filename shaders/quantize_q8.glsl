/* quantize_q8.glsl: a block of activations to Q8_0 as llama.cpp's CPU path
 * quantizes them (engine/core/quant.c quant_q8_activations), for
 * quantize_q8.comp, norm.comp's norm_q8 and eltwise.comp's eltwise_q8, so
 * that all give the same bits: d = amax / 127 rounded to half, q =
 * round-half-even(x * 127 / amax). The includer declares the output XQ
 * (words), its alias XF4 (vec4s: a vector store is one lane loop on lavapipe
 * where 4 floats are 4) and the specialization constant FLOATS. */

/* Block I (the I-th 32 floats, token-major), SRC[SRC_BASE..], to XQ: its
 * int8 quants in 8 words at 8 I, and its d (a float) at word
 * SCALE_OFFSET + I. With FLOATS, the values d * q as floats at XF4[BASE / 4..],
 * BASE = 32 I. */
#define Q8_ACT_STORE_FROM(SRC, SRC_BASE, BASE, I, SCALE_OFFSET)                                  \
    {                                                                                            \
        float amax_ = 0.0;                                                                       \
        [[unroll]] for (uint j_ = 0u; j_ < 32u; j_++) amax_ = max(amax_, abs(SRC[(SRC_BASE) + j_]));           \
        const float id_ = amax_ != 0.0 ? div_rn(127.0, amax_) : 0.0;                             \
        const float d_ = round_f16(div_rn(amax_, 127.0));                                        \
        if (FLOATS != 0u) {                                                                      \
            [[unroll]] for (uint w_ = 0u; w_ < 8u; w_++) {                                                  \
                vec4 f_;                                                                         \
                [[unroll]] for (uint j_ = 0u; j_ < 4u; j_++) f_[j_] = d_ * roundEven(SRC[(SRC_BASE) + 4u * w_ + j_] * id_); \
                xf4[(BASE) / 4u + w_] = f_;                                                      \
            }                                                                                    \
        } else {                                                                                 \
            [[unroll]] for (uint w_ = 0u; w_ < 8u; w_++) {                                                  \
                uint word_ = 0u;                                                                 \
                [[unroll]] for (uint j_ = 0u; j_ < 4u; j_++) {                                              \
                    int q_ = int(roundEven(SRC[(SRC_BASE) + 4u * w_ + j_] * id_));                   \
                    word_ |= uint(q_ & 0xff) << (8u * j_);                                       \
                }                                                                                \
                xq[(I) * 8u + w_] = word_;                                                       \
            }                                                                                    \
            xq[(SCALE_OFFSET) + (I)] = floatBitsToUint(d_);                                      \
        }                                                                                        \
    }
