/* quant.h: tensor element types on the host: half floats, and the block
 * formats' quantize and dequantize functions (the CPU reference for the
 * shaders in shaders/quant.glsl). Internal to the engine. */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include "formats.h"
#include "vkllm.h"

#include <stdbool.h>
#include <stdint.h>

/* IEEE half <-> single, round to nearest even (what F16C hardware does). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);

/* Bytes of a row of N elements of TYPE; 0 if N is not a whole number of blocks
 * or the type is unknown. */
uint64_t quant_row_bytes(uint32_t type, uint64_t n);

/* True if TYPE is in the format table (formats.h): vkllm can run it. */
bool quant_supported(uint32_t type);

/* Converts N elements of TYPE (a whole number of blocks) to floats. */
void quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);

/* Converts N floats to TYPE, exactly as ggml's reference quantizers do, so a
 * file written here matches one from llama-quantize bit for bit. */
void quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n);

/* llama-quantize's check of converted data (ggml_validate_row_data), in
 * quantize_model.c. False if NBYTES of TYPE hold a NaN or an infinity, as a
 * value (F32, F16, BF16) or as a block's half-float scale. */
bool quant_bytes_finite(uint32_t type, const void *bytes, uint64_t nbytes);
/* quant_quantize_row, but false (DST then undefined) if a value of SRC is not
 * finite or the output is not (a value or a block's scale beyond the half
 * range): quantize's "NaN or inf values, or values too large for TYPE". */
bool quant_quantize_checked(uint32_t type, const float *src, void *dst, uint64_t n);

/* Quantizes N activations (a whole number of 32-blocks) to Q8_0 as llama.cpp's
 * x86 CPU path does before a dot product with Q4_0 or Q8_0 weights: per block
 * d = amax / 127 kept as a half float, q = round-half-even(x * 127 / amax).
 * Writes int8 quants and each block's d (as a float). The GPU's
 * quantize_q8.comp computes the same. */
void quant_q8_activations(const float *x, int8_t *q, float *d, uint64_t n);

/* ============================== The format table ==============================
 * One entry per line of formats.h: what vkllm can run. */
enum quant_act { ACT_F32, ACT_F16, ACT_BF16, ACT_Q8 };

struct quant_format {
    uint32_t type; /* enum vkllm_type */
    const char *name;
    uint32_t block_size;  /* elements per block (1 for F32, F16, BF16) */
    uint32_t block_bytes; /* bytes per block in GGUF */
    int32_t half_at;      /* byte offset of the scale the device layout moves out, or -1 */
    enum quant_act act;   /* what the matvec multiplies the weights by */
    bool pairs;           /* has a GEMM in token pairs (gemm_pairs_<name>) */
    /* N blocks (elements, for F32/F16/BF16) of the format to floats */
    void (*dequantize)(const void *src, float *dst, uint64_t n);
    /* N blocks from floats, bit-exact with ggml's reference quantizer (quantize.c) */
    void (*quantize)(const float *src, void *dst, uint64_t n);
};

/* The format of TYPE, or NULL if vkllm cannot run it. */
const struct quant_format *quant_format(uint32_t type);
/* Every format, in formats.h order (the shader variants' order too). */
extern const struct quant_format quant_formats[];
extern const uint32_t quant_format_count;
/* Index of TYPE in quant_formats, or -1. */
int quant_format_index(uint32_t type);
/* Index of TYPE among the block formats of quant_formats (the order of the
 * kernel variants that only block formats have: the integer-dot matvecs, the
 * texel-input GEMMs), or -1 for F32, F16 and BF16. */
int quant_block_format_index(uint32_t type);
/* Index of TYPE among the formats with a GEMM in token pairs (their
 * gemm_pairs_<name> variants' order), or -1 where it has none. */
int quant_paired_format_index(uint32_t type);

/* ============================== Block layouts ==============================
 * As ggml stores them in GGUF files. Half floats are uint16_t. */
#define QK8_0        32
#define QK4_0        32
#define QK4_1        32
#define QK5_0        32
#define QK5_1        32
#define QK4_NL       32
#define QK_K         256
#define K_SCALE_SIZE 12

struct block_q8_0 {
    uint16_t d; /* scale, half float */
    int8_t qs[QK8_0];
};
struct block_q4_0 {
    uint16_t d;            /* scale, half float */
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of qs[j], j+16 in the high */
};
struct block_q4_1 {
    uint16_t d, m; /* x = d * q + m */
    uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4]; /* bit j: the fifth bit of element j */
    uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
struct block_iq4_nl {
    uint16_t d;
    uint8_t qs[QK4_NL / 2]; /* indices into the non-linear table, nibbles as Q4_0 */
};
struct block_q2_K {
    uint8_t scales[QK_K / 16]; /* per 16 elements: scale in the low nibble, min in the high */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d, dmin;          /* super-block scales for the scales and the mins */
};
struct block_q3_K {
    uint8_t hmask[QK_K / 8]; /* the high bit of each quant */
    uint8_t qs[QK_K / 4];    /* the low two bits */
    uint8_t scales[12];      /* 16 6-bit scales */
    uint16_t d;
};
struct block_q4_K {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[QK_K / 2];
};
struct block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
struct block_q6_K {
    uint8_t ql[QK_K / 2];     /* the low four bits */
    uint8_t qh[QK_K / 4];     /* the high two bits */
    int8_t scales[QK_K / 16]; /* per 16 elements */
    uint16_t d;
};
struct block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;           /* the high two bits of 8 6-bit scales */
    uint8_t scales_l[QK_K / 64]; /* their low four bits */
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(struct block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(struct block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(struct block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(struct block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(struct block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
_Static_assert(sizeof(struct block_q2_K) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(struct block_q3_K) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(struct block_q4_K) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(struct block_q5_K) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(struct block_q6_K) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(struct block_iq4_xs) == 136, "IQ4_XS block is 136 bytes");

/* The 16 values IQ4_NL and IQ4_XS indices select. */
extern const int8_t quant_iq4nl_values[16];

/* llama-quantize's fallback (tensor_type_fallback in llama-quant.cpp) for a
 * row of NE0 elements that is not whole blocks of TYPE: a 32-block format of
 * about the same size, else F16. TYPE itself when its blocks fit. */
uint32_t quant_fallback_type(uint32_t type, uint64_t ne0);

/* ============================== Mixes ==============================
 * The format each tensor of a model gets for a TYPE of vkllm_quantize
 * (quantize_model.c): llama-quantize's rules, shared by whatever writes whole
 * models (vkllm_quantize, tests/gen_model). */
struct quant_mix_model {
    const char *name; /* the file, for messages */
    const char *arch; /* general.architecture, "" if none */
    uint64_t n_layer, n_head, n_head_kv, n_expert;
};

struct quant_mix_tensor {
    const char *name;
    uint32_t n_dims; /* ggml's: trailing 1s dropped */
    uint64_t ne0;    /* row length */
    uint32_t type;   /* in: its type now; out: the type it gets */
    bool quantized;  /* out: TYPE (or its mix) asked for a block format */
    bool fell_back;  /* out: ... which its rows cannot take, so TYPE is another */
};

/* Chooses the types of N tensors given in llama.cpp's loader order (the mix
 * counts attn_v and ffn_down tensors as they come). TYPE is a name of
 * vkllm_quantize_type_name; PURE gives every matrix TYPE's own format
 * (--pure). VKLLM_E_INVALID for an unknown TYPE, VKLLM_E_FORMAT when the mix
 * needs a layer count the model lacks. */
int quant_mix_types(const char *type, bool pure, const struct quant_mix_model *m,
                    struct quant_mix_tensor *ts, uint64_t n, struct vkllm_error *err);

/* llama.cpp's general.file_type (LLAMA_FTYPE) for TYPE, a name of
 * vkllm_quantize_type_name (a format's plain name is its _M mix's, as
 * llama-quantize names them); -1 if TYPE is not one. */
int quant_mix_file_type(const char *type);

/* Reference quantizers (quantize.c), one per block format: N blocks. */
#define QUANTIZER(NAME, id, bs, bb, half, act, pairs)                                              \
    void quantize_##NAME(const float *x, void *y, uint64_t n);
VKLLM_FORMATS(QUANTIZER)
#undef QUANTIZER

#endif
