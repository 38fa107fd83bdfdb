/* model.h: a loaded model: its file, hyperparameters, tokenizer and weights on
 * the device. Internal to the engine. */
#ifndef VKLLM_MODEL_H
#define VKLLM_MODEL_H

#include "context.h"
#include "llama.h"
#include "weights.h"

struct gpu_layer {
    struct gpu_buf attn_norm, ffn_norm; /* (n_embd) floats */
    struct gpu_weight wq, wk, wv, wo;
    struct gpu_weight w_gate, w_up, w_down;
};

struct vkllm_model {
    struct vkllm_context *ctx;
    vkllm_gguf *gguf; /* kept open: vkllm_model_gguf */
    vkllm_vocab *vocab;
    struct vkllm_hparams hp;
    struct gpu_pool pool; /* every weight below */
    struct gpu_weight tok_embd;
    struct gpu_weight output; /* shares tok_embd's parts when hp.tied_output */
    struct gpu_buf output_norm;
    struct gpu_layer *layers; /* hp.n_layer */
    float *rope_freqs;        /* (n_rot / 2) divisors, or NULL */
    uint64_t weight_bytes;
};

#endif
