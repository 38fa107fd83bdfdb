/* quant.glsl: reading weights in the device layout engine/model.c uploads.
 *
 * The kernel declares `uint weights[]` before including this file. Weights are
 * split by rows into parts of at most one storage-buffer binding; within a part:
 *   F32   row-major floats
 *   F16   row-major halves, two per word (low half first)
 *   Q8_0  the 32 int8 quants of each block as 8 words, blocks row-major; then,
 *         from word scale_offset, one half-float scale per block
 *   Q4_0  the 16 quant bytes of each block as 4 words (byte j: element j in the
 *         low nibble, element j+16 in the high nibble, as in GGUF); then scales
 * Splitting ggml's 34- and 18-byte blocks into quants and scales keeps every
 * load aligned without needing 8- or 16-bit storage features. */

#if defined(WTYPE_Q8_0) || defined(WTYPE_Q4_0)
#define WTYPE_BLOCKS 1
#define QBLOCK 32u
#endif
#if defined(WTYPE_Q8_0)
#define BLOCK_WORDS 8u
#elif defined(WTYPE_Q4_0)
#define BLOCK_WORDS 4u
#endif

#ifdef WTYPE_BLOCKS
float block_scale(uint scale_offset, uint b)
{
    uint word = weights[scale_offset + (b >> 1)];
    return (b & 1u) == 0u ? f16_lo(word) : f16_hi(word);
}
#endif

/* Element k of row r (row length K) of the part: the slow, general path. */
float weight_at(uint r, uint k, uint K, uint scale_offset)
{
#if defined(WTYPE_F32)
    return uintBitsToFloat(weights[r * K + k]);
#elif defined(WTYPE_F16)
    uint h = r * K + k;
    uint word = weights[h >> 1];
    return (h & 1u) == 0u ? f16_lo(word) : f16_hi(word);
#else
    uint b = r * (K / QBLOCK) + k / QBLOCK;
    uint j = k % QBLOCK;
#if defined(WTYPE_Q8_0)
    int w = int(weights[b * BLOCK_WORDS + j / 4u]);
    return block_scale(scale_offset, b) * float(bitfieldExtract(w, int(8u * (j % 4u)), 8));
#else
    uint byte_index = j % 16u;
    uint w = weights[b * BLOCK_WORDS + byte_index / 4u];
    int shift = int(8u * (byte_index % 4u) + (j >= 16u ? 4u : 0u));
    return block_scale(scale_offset, b) * (float(bitfieldExtract(w, shift, 4)) - 8.0);
#endif
#endif
}
