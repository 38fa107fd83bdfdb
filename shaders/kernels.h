/* kernels.h: the push constants of every kernel and the per-step header,
 * declared once for both C (engine/exec/ops.c) and GLSL (shaders/\*.comp).
 *
 * All fields are 4-byte scalars so std430/push-constant layout equals C layout.
 * A kernel includes this file after defining KERNEL_<NAME>, which selects its
 * push block: GLSL allows one push-constant block per stage. */
#ifndef VKLLM_KERNELS_H
#define VKLLM_KERNELS_H
/* the push blocks are laid out by hand, to read as structs in C and GLSL alike */
/* clang-format off */

#ifdef VULKAN /* GLSL */
#define PC_UINT uint
#define PC_FLOAT float
#define PUSH_BEGIN(name) layout(push_constant) uniform name {
#define PUSH_END } pc;
#else
#include <stdint.h>
#define PC_UINT uint32_t
#define PC_FLOAT float
#define PUSH_BEGIN(name) struct name {
#define PUSH_END };
#endif

/* Binding 0 of every kernel: what changes from one replay of a recorded graph
 * to the next. The host writes it before each submit. Each of the step's
 * tokens is a row: its id, its position, and the sequence whose KV cache it
 * belongs to (a session group's caches lie one after another: sequence s's
 * position p sits in slot s * ring + p % ring). A prompt's rows are one
 * sequence at consecutive positions; a group's decode step has a row per
 * sequence. */
#define STEP_HEADER_WORDS 4
#define STEP_ROW_WORDS    3
#ifndef VULKAN
struct step_header {
    uint32_t n_tokens; /* tokens in this step, <= the graph's batch size */
    uint32_t pad[3];
    /* followed by struct step_row rows[batch] */
};
struct step_row {
    int32_t token;
    uint32_t pos;
    uint32_t seq;
};
_Static_assert(sizeof(struct step_header) == STEP_HEADER_WORDS * 4, "step header size");
_Static_assert(sizeof(struct step_row) == STEP_ROW_WORDS * 4, "step row size");
#endif

/* Shared-memory and register bounds the kernels are written for. */
#define MAX_HEAD_DIM 256

#if !defined(VULKAN) || defined(KERNEL_GET_ROWS)
PUSH_BEGIN(push_get_rows)
    PC_UINT n_embd;       /* row length */
    PC_UINT row_begin;    /* first row held by this part of the table */
    PC_UINT row_end;      /* one past the last */
    PC_UINT scale_offset; /* quantized types: word offset of the scales in the part */
    PC_UINT by_position;  /* 1: the token's position's row (learned positions); 0: the token's */
    PC_UINT acc;          /* 1: add to the output instead of writing it */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_NORM)
PUSH_BEGIN(push_norm)
    PC_UINT n;          /* row length */
    PC_FLOAT eps;
    PC_UINT rows;       /* rows per token (heads, for per-head norms) */
    PC_UINT layer_norm; /* 1: subtract the mean first (LayerNorm); 0: RMSNorm */
    PC_UINT has_bias;   /* 1: add binding 3 after scaling by binding 2 */
    PC_UINT row_weights; /* 1: each of a token's rows has its own weights (n * rows) */
    PC_UINT q8_scale_offset; /* norm_q8: word offset of the block scales in binding 5 */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_MATVEC)
PUSH_BEGIN(push_matvec)
    PC_UINT k;            /* row length of the weights = input length */
    PC_UINT n_rows;       /* rows in this part of the weight tensor */
    PC_UINT row_offset;   /* output index of the part's first row */
    PC_UINT scale_offset; /* quantized types: word offset of the scales in the part */
    PC_UINT x_stride;     /* between tokens in the input: floats, or words of Q8 quants */
    PC_UINT x_scale_offset; /* quantized types: word offset of the input's block scales */
    PC_UINT y_stride;     /* floats between tokens in the output */
    PC_UINT last_only;    /* 1: only the step's last token, into output row 0 */
    PC_UINT acc;          /* the GEMM's 1: y += W x (a matvec's is a specialization constant) */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_QUANTIZE_Q8)
PUSH_BEGIN(push_quantize_q8)
    PC_UINT k;            /* floats per token, a multiple of 32 */
    PC_UINT scale_offset; /* word offset of the block scales in the output */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_PAIR_INPUTS)
PUSH_BEGIN(push_pair_inputs)
    PC_UINT k;           /* floats per token, a multiple of 32 */
    PC_UINT n_pairs;     /* pairs of tokens the output has room for */
    PC_UINT scale_texel; /* uvec4 offset of the scales in the output */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_ROPE)
PUSH_BEGIN(push_rope)
    PC_UINT n_heads;
    PC_UINT head_dim;
    PC_UINT n_rot;    /* leading dimensions of each head that rotate (even) */
    PC_UINT x_stride; /* floats between tokens */
    PC_UINT neox;     /* 1: pairs (i, i + n_rot/2); 0: pairs (2i, 2i+1) */
    PC_UINT table_stride; /* floats between tokens in the cos/sin table */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_ROPE_KV_STORE)
PUSH_BEGIN(push_rope_kv_store)
    PC_UINT n_head;    /* Q's heads */
    PC_UINT n_head_kv; /* K's and V's */
    PC_UINT head_dim;
    PC_UINT n_rot;     /* leading dimensions of each head that rotate (even); the table's stride */
    PC_UINT neox;      /* 1: pairs (i, i + n_rot/2); 0: pairs (2i, 2i+1) */
    PC_UINT ring;      /* positions the cache holds; position p goes to p % ring */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_KV_STORE)
PUSH_BEGIN(push_kv_store)
    PC_UINT n_embd_kv; /* floats per token in K and V (even) */
    PC_UINT ring;      /* positions the cache holds; position p goes to p % ring */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_ATTENTION)
PUSH_BEGIN(push_attention)
    PC_UINT head_dim;
    PC_UINT n_head;
    PC_UINT n_head_kv; /* divides n_head; query head h reads KV head h / (n_head / n_head_kv) */
    PC_UINT n_ctx;     /* positions per row of the score scratch */
    PC_FLOAT q_scale;  /* q is multiplied by this before its rounding to half */
    PC_FLOAT kq_scale; /* scores are multiplied by this after soft-capping */
    PC_FLOAT softcap;  /* > 0: scores become softcap * tanh(score / softcap) */
    PC_UINT window;    /* > 0: keys this many positions back or more are masked */
    PC_UINT ring;      /* positions the cache holds; position p sits at p % ring */
    PC_FLOAT alibi_m0; /* ALiBi (alibi_heads > 0): head h < alibi_heads has slope m0^(h+1), */
    PC_FLOAT alibi_m1; /* the others m1^(2(h - alibi_heads) + 1), times -(distance) */
    PC_UINT alibi_heads;
PUSH_END
#endif

/* The element-wise kernel's operations (specialization constant 1). */
#define ELT_ADD      0 /* y += x */
#define ELT_ADD_BIAS 1 /* y += x[i % n]: the same row for every token */
#define ELT_SCALE    2 /* y *= f */
#define ELT_GELU     3 /* y = gelu(y), as llama.cpp's CPU path: through a half-float table */
#define ELT_SOFTCAP  4 /* y = f * tanh(y / f) */
#define ELT_GLU_SILU 5 /* y = silu(y) * x */
#define ELT_GLU_GELU 6 /* y = gelu(y) * x */
#define ELT_ADD_SCALED 7 /* y += f * x, the product rounded first (a LoRA side path, as llama.cpp) */

/* eltwise launches threads for at most this many tokens, whatever the graph's
 * batch, and loops over the rest: enough threads to fill a large GPU for rows
 * of a few thousand floats, few enough that a short prompt in a 512-token
 * graph does not launch hundreds of empty workgroups per dispatch. */
#define ELTWISE_ROWS 16

#if !defined(VULKAN) || defined(KERNEL_ELTWISE)
PUSH_BEGIN(push_eltwise)
    PC_UINT n;         /* floats per token */
    PC_FLOAT f;
    PC_UINT last_only; /* 1: only row 0 (the step's last token, as a last-only matvec leaves it) */
    PC_UINT q8_scale_offset; /* eltwise_q8: word offset of the block scales in binding 3 */
PUSH_END
#endif

#if !defined(VULKAN) || defined(KERNEL_COPY)
PUSH_BEGIN(push_copy)
    PC_UINT n; /* 16-byte words */
PUSH_END
#endif

#ifndef VULKAN
_Static_assert(sizeof(struct push_get_rows) == 24, "push_get_rows");
_Static_assert(sizeof(struct push_norm) == 28, "push_norm");
_Static_assert(sizeof(struct push_matvec) == 36, "push_matvec");
_Static_assert(sizeof(struct push_rope) == 24, "push_rope");
_Static_assert(sizeof(struct push_quantize_q8) == 8, "push_quantize_q8");
_Static_assert(sizeof(struct push_kv_store) == 8, "push_kv_store");
_Static_assert(sizeof(struct push_rope_kv_store) == 24, "push_rope_kv_store");
_Static_assert(sizeof(struct push_attention) == 48, "push_attention");
_Static_assert(sizeof(struct push_eltwise) == 16, "push_eltwise");
_Static_assert(sizeof(struct push_copy) == 4, "push_copy");
#endif

/* clang-format on */
#endif
