/* lora.h: LoRA adapters in llama.cpp's GGUF adapter format, bound to a
 * model's tensor roles and uploaded once. The graph (exec/graph.c) adds their
 * side paths; the CPU reference reads the same binding. Internal to the
 * engine. */
#ifndef VKLLM_LORA_H
#define VKLLM_LORA_H

#include "model.h"

/* One adapted slice of the model: W x + s * B (A x). A is (rank, k): rank
 * rows of the base matrix's input width; B is (n, rank), of which the slice
 * takes rows [b_first, b_first + b_count) (a fused attn_qkv is cut into q, k
 * and v as the base matrix is). For token_embd, A is (n_vocab, rank), read a
 * row per token, and B (n_embd, rank): llama.cpp's flipped convention. */
struct lora_pair {
    tensor_ref a, b; /* NULL: this slice is not adapted */
    uint64_t b_first, b_count;
    uint32_t rank; /* B's row length, which llama.cpp's scale divides by */
};

/* An adapter file checked against a model: a pair per slice, as am->slices. */
struct lora_binding {
    float alpha;             /* adapter.lora.alpha; 0: the scale is used as it is */
    struct lora_pair *pairs; /* n_layer * T_LAYER_COUNT, then the model's roles */
    uint32_t n_tensors;      /* file matrices adapted (a fused one counts once) */
    uint32_t rank_min, rank_max;
};

/* Checks adapter file AD against the model AM (whose file is BASE): its
 * type keys, architecture, names, types (F32, F16, Q8_0) and every shape as
 * llama.cpp expects them; the error names the first mismatch. With AM and
 * BASE NULL, only what needs no model (OUT has no pairs then): the keys,
 * alpha, that every lora_a has its lora_b, their types and equal ranks. */
int lora_bind(const struct arch_model *am, const vkllm_gguf *base, const vkllm_gguf *ad,
              struct lora_binding *out, struct vkllm_error *err);
void lora_binding_free(struct lora_binding *b);

/* llama.cpp's factor of the side path: scale * alpha / rank, or scale when
 * alpha is 0. */
static inline float lora_scale(float scale, float alpha, uint32_t rank)
{
    return alpha != 0.0f ? scale * alpha / (float)rank : scale;
}

/* A pair on the device; no parts where the slice is not adapted. */
struct lora_weight {
    struct gpu_weight a, b;
};

struct vkllm_adapter {
    const struct vkllm_model *m;
    char *name; /* the path, for messages */
    float alpha;
    struct gpu_pool pool;
    struct lora_weight *w; /* as am->slices */
    uint32_t *rank;        /* as am->slices; 0: not adapted */
    uint32_t n_tensors, rank_min, rank_max;
    uint64_t bytes; /* device memory */
};

static inline const struct lora_weight *lora_weight(const struct vkllm_adapter *a, uint32_t layer,
                                                    enum tensor_role role)
{
    return &a->w[arch_slice(&a->m->am, layer, role) - a->m->am.slices];
}

#endif
