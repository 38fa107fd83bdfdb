/* formats.h: the weight formats vkllm runs, one line each. This table is the
 * single source for the C side (engine/quant.c builds its format table from it:
 * sizes, device layout, CPU codecs) and for the shader variants
 * (shaders/CMakeLists.txt reads this file: every line becomes get_rows_<name>,
 * matvec_<name> and gemm_<name>, compiled with -DWTYPE_<NAME>). A type not
 * listed here is refused when a model is loaded, never guessed at.
 *
 * FORMAT(NAME, ggml type id, elements per block, bytes per block, half at, activation, pairs)
 *   half at: byte offset in the block of the half-float scale that the device
 *       layout moves out to an array of its own, so that the rest of the block
 *       is whole 32-bit words (blocks of 4k + 2 bytes); NONE when the block is
 *       already whole words.
 *   activation: how the matvec prepares its input for this weight, as
 *       llama.cpp's CPU path does where vkllm matches it bit for bit:
 *       ACT_F32 floats, ACT_F16 floats rounded to half, ACT_BF16 rounded to
 *       bfloat16, ACT_Q8 quantized to Q8_0 blocks (an exact integer dot).
 *   pairs: PAIRS where the format has a GEMM that multiplies two tokens at a
 *       time in integers (gemm.comp's PAIRS: the build emits gemm_pairs_<name>,
 *       ops.c takes it on devices that pair, its input rounded to Q8_0);
 *       NO_PAIRS elsewhere.
 *
 * The shader build reads the FORMAT lines with a regex: keep their shape. */
#ifndef VKLLM_FORMATS_H
#define VKLLM_FORMATS_H

#define VKLLM_FORMATS(FORMAT)                                                                      \
    FORMAT(F32, 0, 1, 4, NONE, ACT_F32, NO_PAIRS)                                                  \
    FORMAT(F16, 1, 1, 2, NONE, ACT_F16, NO_PAIRS)                                                  \
    FORMAT(BF16, 30, 1, 2, NONE, ACT_BF16, NO_PAIRS)                                               \
    FORMAT(Q4_0, 2, 32, 18, 0, ACT_Q8, PAIRS)                                                      \
    FORMAT(Q4_1, 3, 32, 20, NONE, ACT_F32, NO_PAIRS)                                               \
    FORMAT(Q5_0, 6, 32, 22, 0, ACT_F32, NO_PAIRS)                                                  \
    FORMAT(Q5_1, 7, 32, 24, NONE, ACT_F32, NO_PAIRS)                                               \
    FORMAT(Q8_0, 8, 32, 34, 0, ACT_Q8, NO_PAIRS)                                                   \
    FORMAT(Q2_K, 10, 256, 84, NONE, ACT_F32, NO_PAIRS)                                             \
    FORMAT(Q3_K, 11, 256, 110, 108, ACT_F32, NO_PAIRS)                                             \
    FORMAT(Q4_K, 12, 256, 144, NONE, ACT_F32, PAIRS)                                               \
    FORMAT(Q5_K, 13, 256, 176, NONE, ACT_F32, NO_PAIRS)                                            \
    FORMAT(Q6_K, 14, 256, 210, 208, ACT_F32, PAIRS)                                                \
    FORMAT(IQ4_NL, 20, 32, 18, 0, ACT_F32, NO_PAIRS)                                               \
    FORMAT(IQ4_XS, 23, 256, 136, NONE, ACT_F32, NO_PAIRS)

#endif
