/* llama.h: the llama architecture's metadata and weights, as a GGUF file holds
 * them (Llama 1/2/3, TinyLlama, SmolLM, Mistral without sliding window).
 * Shared by the GPU model (model.c) and the CPU reference (reference.c).
 * Internal to the engine. */
#ifndef VKLLM_LLAMA_H
#define VKLLM_LLAMA_H

#include "vkllm.h"

typedef const struct vkllm_gguf_tensor *tensor_ref;

/* The matrices of a layer, named alike in struct llama_layer_tensors (the
 * file), struct gpu_layer (the device) and the CPU reference: X(name) for each. */
#define LAYER_MATRICES(X) X(wq) X(wk) X(wv) X(wo) X(w_gate) X(w_up) X(w_down)

struct llama_layer_tensors {
    tensor_ref attn_norm; /* (n_embd) */
    tensor_ref wq;        /* (n_head * head_dim, n_embd): ne0 = n_embd */
    tensor_ref wk;        /* (n_head_kv * head_dim, n_embd) */
    tensor_ref wv;        /* (n_head_kv * head_dim, n_embd) */
    tensor_ref wo;        /* (n_embd, n_head * head_dim) */
    tensor_ref ffn_norm;  /* (n_embd) */
    tensor_ref w_gate;    /* (n_ff, n_embd) */
    tensor_ref w_up;      /* (n_ff, n_embd) */
    tensor_ref w_down;    /* (n_embd, n_ff) */
};

struct llama_tensors {
    tensor_ref tok_embd;                /* (n_vocab, n_embd) */
    tensor_ref output_norm;             /* (n_embd) */
    tensor_ref output;                  /* (n_vocab, n_embd); tok_embd when tied */
    tensor_ref rope_freqs;              /* (n_rot / 2) frequency divisors (Llama 3.1), or NULL */
    struct llama_layer_tensors *layers; /* n_layer of them */
};

/* Reads and checks the hyperparameters. */
int llama_read_hparams(const vkllm_gguf *g, struct vkllm_hparams *hp, struct vkllm_error *err);

/* Finds every weight by name and checks its type and shape against HP,
 * reporting expected and actual on a mismatch. Sets hp->n_vocab (from the
 * embedding table) and hp->tied_output. */
int llama_bind_tensors(const vkllm_gguf *g, struct vkllm_hparams *hp, struct llama_tensors *t,
                       struct vkllm_error *err);
void llama_tensors_free(struct llama_tensors *t);

/* The rotation table for N_TOKENS positions from POS0 (n_rot/2 pairs of cos,
 * sin per token), as llama.cpp computes it: theta = pos * base^(-2i/n_rot) by
 * repeated float multiplication, divided by the frequency factor if any. */
void llama_rope_table(const struct vkllm_hparams *hp, const float *freq_factors, float *table,
                      uint32_t n_tokens, uint32_t pos0);

#endif
