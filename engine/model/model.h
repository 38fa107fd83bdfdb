/* model.h: a loaded model: its file, architecture, hyperparameters, tokenizer
 * and weights on the device. Internal to the engine. */
#ifndef VKLLM_MODEL_H
#define VKLLM_MODEL_H

#include "arch.h"
#include "context.h"
#include "weights.h"

/* A tensor role's data on the device: a matrix in its format, or floats. */
struct gpu_tensor {
    struct gpu_weight mat;
    struct gpu_buf vec;
};

struct vkllm_model {
    struct vkllm_context *ctx;
    vkllm_gguf *gguf; /* kept open: vkllm_model_gguf */
    vkllm_vocab *vocab;
    struct arch_model am;
    struct vkllm_hparams hp;    /* = am.hp */
    struct gpu_pool pool;       /* every weight below */
    struct gpu_tensor *tensors; /* as am.slices; output shares token_embd's when tied */
    uint64_t weight_bytes;
};

static inline const struct gpu_tensor *model_tensor(const struct vkllm_model *m, uint32_t layer,
                                                    enum tensor_role role)
{
    return &m->tensors[arch_slice(&m->am, layer, role) - m->am.slices];
}

#endif
