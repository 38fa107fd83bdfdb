/* arch.h: model families as data. An architecture is a table entry (arch.c):
 * how its norms, feed-forward, rotary embedding and residuals work, which
 * tensors it has, and a hook for the metadata keys that are its own. From it,
 * the file's metadata and the tensors present, arch_bind() derives the
 * hyperparameters and finds every weight; exec/graph.c turns the result into
 * the layer graph that the GPU recorder and the CPU reference both execute.
 * docs/ARCHITECTURES.md explains how to add a family. Internal to the engine. */
#ifndef VKLLM_ARCH_H
#define VKLLM_ARCH_H

#include "rope.h"
#include "vkllm.h"

typedef const struct vkllm_gguf_tensor *tensor_ref;

/* The tensors a model may have: X(role, file name, kind, ne0, ne1), the name
 * as llama.cpp writes it ("blk.N." prefixed for layer tensors, ".weight" or
 * ".bias" included), a matrix (uploaded in its format) or a vector (floats),
 * and the expected shape in terms of struct vkllm_hparams (D_* below). Fused
 * tensors (attn_qkv, phi3's gate+up in ffn_up) are cut into the separate roles
 * at binding, so the graph never sees them. */
#define LAYER_TENSORS(X)                                                                           \
    X(ATTN_NORM, "attn_norm.weight", VEC, D_EMBD, D_ONE)                                           \
    X(ATTN_NORM_B, "attn_norm.bias", VEC, D_EMBD, D_ONE)                                           \
    X(ATTN_NORM_2, "attn_norm_2.weight", VEC, D_EMBD, D_ONE)                                       \
    X(ATTN_NORM_2_B, "attn_norm_2.bias", VEC, D_EMBD, D_ONE)                                       \
    X(WQ, "attn_q.weight", MAT, D_EMBD, D_Q)                                                       \
    X(WK, "attn_k.weight", MAT, D_EMBD, D_KV)                                                      \
    X(WV, "attn_v.weight", MAT, D_EMBD, D_KV)                                                      \
    X(WQKV, "attn_qkv.weight", MAT, D_EMBD, D_QKV)                                                 \
    X(BQ, "attn_q.bias", VEC, D_Q, D_ONE)                                                          \
    X(BK, "attn_k.bias", VEC, D_KV, D_ONE)                                                         \
    X(BV, "attn_v.bias", VEC, D_KV, D_ONE)                                                         \
    X(BQKV, "attn_qkv.bias", VEC, D_QKV, D_ONE)                                                    \
    X(Q_NORM, "attn_q_norm.weight", VEC, D_HEAD, D_ONE)                                            \
    X(K_NORM, "attn_k_norm.weight", VEC, D_HEAD, D_ONE)                                            \
    X(WO, "attn_output.weight", MAT, D_Q, D_EMBD)                                                  \
    X(BO, "attn_output.bias", VEC, D_EMBD, D_ONE)                                                  \
    X(POST_ATTN_NORM, "post_attention_norm.weight", VEC, D_EMBD, D_ONE)                            \
    X(FFN_NORM, "ffn_norm.weight", VEC, D_EMBD, D_ONE)                                             \
    X(FFN_NORM_B, "ffn_norm.bias", VEC, D_EMBD, D_ONE)                                             \
    X(WGATE, "ffn_gate.weight", MAT, D_EMBD, D_FF)                                                 \
    X(WUP, "ffn_up.weight", MAT, D_EMBD, D_FF)                                                     \
    X(BUP, "ffn_up.bias", VEC, D_FF, D_ONE)                                                        \
    X(WDOWN, "ffn_down.weight", MAT, D_FF, D_EMBD)                                                 \
    X(BDOWN, "ffn_down.bias", VEC, D_EMBD, D_ONE)                                                  \
    X(POST_FFN_NORM, "post_ffw_norm.weight", VEC, D_EMBD, D_ONE)

#define MODEL_TENSORS(X)                                                                           \
    X(TOK_EMBD, "token_embd.weight", MAT, D_EMBD, D_VOCAB)                                         \
    X(POS_EMBD, "position_embd.weight", MAT, D_EMBD, D_CTX_TRAIN)                                  \
    X(TOK_NORM, "token_embd_norm.weight", VEC, D_EMBD, D_ONE)                                      \
    X(TOK_NORM_B, "token_embd_norm.bias", VEC, D_EMBD, D_ONE)                                      \
    X(OUTPUT_NORM, "output_norm.weight", VEC, D_EMBD, D_ONE)                                       \
    X(OUTPUT_NORM_B, "output_norm.bias", VEC, D_EMBD, D_ONE)                                       \
    X(OUTPUT, "output.weight", MAT, D_EMBD, D_VOCAB)                                               \
    X(OUTPUT_B, "output.bias", VEC, D_VOCAB, D_ONE)                                                \
    X(ROPE_FREQS, "rope_freqs.weight", VEC, D_ROT_HALF, D_ONE)                                     \
    X(ROPE_LONG, "rope_factors_long.weight", VEC, D_ROT_HALF, D_ONE)                               \
    X(ROPE_SHORT, "rope_factors_short.weight", VEC, D_ROT_HALF, D_ONE)

#define ROLE_ENUM(role, name, kind, ne0, ne1) T_##role,
enum tensor_role {
    LAYER_TENSORS(ROLE_ENUM) T_LAYER_COUNT,
    T_MODEL_FIRST = T_LAYER_COUNT,
    T_MODEL_BEFORE_ = T_LAYER_COUNT - 1, /* so that the model's roles start at T_MODEL_FIRST */
    MODEL_TENSORS(ROLE_ENUM) T_COUNT,
    T_NONE = 0xff
};
#undef ROLE_ENUM

/* A bit per role, for the tables. */
#define BIT(role) (1ull << (T_##role))

enum norm_kind { NORM_RMS, NORM_LAYER };
enum ffn_kind {
    FFN_SILU_GLU, /* down(silu(gate x) * up x) */
    FFN_GELU_GLU, /* down(gelu(gate x) * up x) */
    FFN_GELU,     /* down(gelu(up x)) */
};
enum rope_kind { ROPE_NORMAL, ROPE_NEOX, ROPE_NONE };

enum arch_flags {
    ARCH_EMBD_SCALE = 1 << 0,    /* the embedding is multiplied by sqrt(n_embd) (gemma) */
    ARCH_PARALLEL = 1 << 1,      /* attention and FFN both read the layer's input (falcon) */
    ARCH_Q_PRESCALE = 1 << 2,    /* q is scaled before attention, not the scores (gemma, phi3) */
    ARCH_ALIBI = 1 << 3,         /* ALiBi biases instead of rotary embeddings (bloom) */
    ARCH_FULL_ROTARY = 1 << 4,   /* rope.dimension_count must be the head size (qwen2, falcon) */
    ARCH_TIED_ONLY = 1 << 5,     /* the output matrix is always token_embd (gemma, gemma2) */
    ARCH_OUTPUT_NEEDED = 1 << 6, /* output.weight must be present (gptneox, stablelm) */
    ARCH_FUSED_UP = 1 << 7,      /* ffn_up holds gate and up, 2 * n_ff rows (phi3) */
    ARCH_HEAD_NORMS = 1 << 8,    /* Q/K norms weigh each head differently (stablelm) */
};

struct arch_model; /* below */

struct arch {
    const char *name; /* general.architecture */
    enum norm_kind norm;
    enum ffn_kind ffn;
    enum rope_kind rope;
    uint32_t flags;
    /* Tensors (bits of enum tensor_role): those that must be present (attn_q,
     * attn_k and attn_v are also satisfied by attn_qkv when allowed), and
     * those that may be. Any other tensor in the file is refused, as llama.cpp
     * refuses it. */
    uint64_t required, allowed;
    /* The family's own metadata keys and defaults, after the common ones; may
     * be NULL. */
    int (*read_keys)(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err);
};

/* Per layer: whether it attends through the sliding window, and which of the
 * model's rotary settings it uses (gemma3's local layers have their own base). */
struct arch_layers {
    bool *swa;           /* n_layer flags */
    uint32_t n_rope;     /* distinct rotary settings: 1, or 2 with rope_freq_base_swa */
    uint8_t *rope_index; /* n_layer indices into them */
};

/* A tensor's part that a role takes: rows of a matrix, elements of a vector. */
struct tensor_slice {
    tensor_ref t; /* NULL: absent */
    uint64_t first, count;
};

/* A model's architecture, hyperparameters, per-layer settings and tensors. */
struct arch_model {
    const struct arch *arch;
    struct vkllm_hparams hp;
    struct arch_layers layers;
    struct tensor_slice *slices; /* n_layer * T_LAYER_COUNT, then the model's */
    float q_scale, kq_scale;     /* attention: q is multiplied by one, the scores by the other */
    struct rope_scaling rope;    /* as the file says; long/short factors set when present */
    float rope_freq_scale_swa;   /* the sliding-window layers' frequency scale */
    /* rope_freqs.weight, rope_factors_long.weight, rope_factors_short.weight
     * (n_rot/2 floats each) read from the file, or NULL; rope's long and short
     * factors point at the last two */
    float *rope_freqs, *rope_long, *rope_short;
};

/* The slice of ROLE in LAYER (or the model's, for the model roles). */
static inline const struct tensor_slice *arch_slice(const struct arch_model *am, uint32_t layer,
                                                    enum tensor_role role)
{
    if (role >= T_MODEL_FIRST)
        return &am->slices[(uint64_t)am->hp.n_layer * T_LAYER_COUNT + (role - T_MODEL_FIRST)];
    return &am->slices[(uint64_t)layer * T_LAYER_COUNT + role];
}
/* The slices of AM, as am->slices holds them: each layer's roles, then the
 * model's; and the role of slice I. */
static inline uint64_t arch_slot_count(const struct arch_model *am)
{
    return (uint64_t)am->hp.n_layer * T_LAYER_COUNT + (T_COUNT - T_MODEL_FIRST);
}
static inline enum tensor_role arch_slot_role(const struct arch_model *am, uint64_t i)
{
    const uint64_t layers = (uint64_t)am->hp.n_layer * T_LAYER_COUNT;
    return i >= layers ? (enum tensor_role)(T_MODEL_FIRST + (i - layers))
                       : (enum tensor_role)(i % T_LAYER_COUNT);
}
static inline bool arch_has(const struct arch_model *am, uint32_t layer, enum tensor_role role)
{
    return arch_slice(am, layer, role)->t != NULL;
}

/* Reads the hyperparameters of G's architecture and binds every tensor,
 * checking names, shapes and types; one clear error for an unknown
 * architecture, a feature we do not run, or a malformed file. */
int arch_bind(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err);
void arch_model_free(struct arch_model *am);

/* The architecture named NAME, or NULL. */
const struct arch *arch_find(const char *name, size_t len);

/* Bytes the model's tensors take on the device. */
uint64_t arch_device_bytes(const struct arch_model *am);

/* The tensor roles' file names ("attn_q.weight"), for messages. */
const char *arch_role_name(enum tensor_role role);
/* Whether ROLE is a matrix (uploaded in its format), else a vector of floats. */
bool arch_role_is_matrix(enum tensor_role role);

#endif
