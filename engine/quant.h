/* quant.h: tensor element types on the host: half floats, and the block
 * formats' quantize and dequantize functions (the CPU reference for the
 * shaders in shaders/quant.glsl). Internal to the engine. */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include "vkllm.h"

#include <stdbool.h>
#include <stdint.h>

/* IEEE half <-> single, round to nearest even (what F16C hardware does). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);

/* Bytes of a row of N elements of TYPE; 0 if N is not a whole number of blocks
 * or the type is unknown. */
uint64_t quant_row_bytes(uint32_t type, uint64_t n);

/* True if the host code below can convert TYPE (the types models may use). */
bool quant_supported(uint32_t type);

/* Converts N elements of TYPE (a whole number of blocks) to floats. */
void quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);

/* Converts N floats to TYPE, exactly as ggml's reference quantizers do, so a
 * file written here matches one from llama-quantize bit for bit. */
void quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n);

/* Quantizes N activations (a whole number of 32-blocks) to Q8_0 as llama.cpp's
 * x86 CPU path does before a dot product with Q4_0 or Q8_0 weights: per block
 * d = amax / 127 kept as a half float, q = round-half-even(x * 127 / amax).
 * Writes int8 quants and each block's d (as a float). The GPU's
 * quantize_q8.comp computes the same. */
void quant_q8_activations(const float *x, int8_t *q, float *d, uint64_t n);

/* Block layouts as ggml stores them in GGUF files. */
#define QK8_0 32
#define QK4_0 32
struct block_q8_0 {
    uint16_t d; /* scale, half float */
    int8_t qs[QK8_0];
};
struct block_q4_0 {
    uint16_t d;            /* scale, half float */
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of qs[j], j+16 in the high */
};
_Static_assert(sizeof(struct block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(struct block_q4_0) == 18, "Q4_0 block is 18 bytes");

#endif
