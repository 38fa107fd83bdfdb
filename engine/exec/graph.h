/* graph.h: a model's forward pass described once, as a list of nodes over
 * named activation buffers, from its architecture and the tensors its file
 * has. The GPU recorder (forward.c) and the CPU reference (reference.c) both
 * execute this list, so a family's graph is written in one place (graph.c);
 * llama.cpp's outputs check the graph itself. Internal to the engine. */
#ifndef VKLLM_GRAPH_H
#define VKLLM_GRAPH_H

#include "arch.h"

/* Activations, each some floats per token (struct graph's width). */
enum graph_buf {
    BUF_X,        /* the residual stream */
    BUF_XN,       /* the normalized input of attention (and of the FFN) */
    BUF_XA,       /* attention's own normalized input, when it has a second norm (falcon 40B) */
    BUF_XF,       /* the FFN's normalized input in parallel blocks */
    BUF_Q,        /* queries (then rotated) */
    BUF_K,        /* keys of this step */
    BUF_V,        /* values of this step */
    BUF_ATT,      /* attention output, heads side by side */
    BUF_TMP,      /* a projection's output before its post-norm */
    BUF_GATE,     /* FFN gate, then the gated activation */
    BUF_UP,       /* FFN up projection */
    BUF_LORA,     /* an adapter's rank-wide A x (session.c allocates both) */
    BUF_LORA_OUT, /* B (A x), before it is scaled and added */
    BUF_LOGITS,
    BUF_COUNT,
};

enum node_op {
    NODE_EMBED,     /* dst (+)= row of w: the token's, or by_position the position's */
    NODE_NORM,      /* dst = norm(src) * w (+ b), rows of n, `rows` per token */
    NODE_MATMUL,    /* dst (+)= w src */
    NODE_ELTWISE,   /* dst = ELT_*(dst, src or b) */
    NODE_ROPE,      /* dst rotated in place, `rows` heads, with rotary setting `sub` */
    NODE_KV_STORE,  /* K and V appended to the layer's cache */
    NODE_ATTENTION, /* dst = attention of src (queries) over the layer's cache */
    NODE_LORA_A,    /* dst = A src, A of adapter `lora` for w; src BUF_NONE: the token's row */
    NODE_LORA_B,    /* dst = B src, B of adapter `lora` for w */
};

#define BUF_NONE 0xff

/* A NORM node's kind, as bits. */
#define NORM_LAYER_BIT 1 /* LayerNorm, else RMSNorm */
#define NORM_ROW_BIT   2 /* each of a token's rows has its own weights (stablelm's Q/K norms) */

struct graph_node {
    uint8_t op;
    uint8_t dst, src; /* enum graph_buf, or BUF_NONE */
    uint8_t w, b;     /* enum tensor_role of the weight and the bias/operand, or T_NONE */
    uint8_t sub;      /* EMBED: by position; NORM: NORM_*; ELTWISE: ELT_*; ROPE: setting */
    uint8_t lora;     /* LORA_*: which adapter of the set */
    bool acc;         /* EMBED, MATMUL: add to dst */
    bool last_only;   /* MATMUL and what follows it: the step's last token only, in row 0 */
    uint32_t layer;   /* whose tensors and cache */
    uint32_t n;       /* floats per row */
    uint32_t rows;    /* rows per token */
    float f;          /* NORM: epsilon; ELTWISE: its parameter */
};

struct graph {
    struct graph_node *nodes;
    uint32_t n_nodes, cap;
    uint32_t width[BUF_COUNT]; /* floats per token of each buffer; 0: unused */
    uint32_t lora_out_last;    /* floats of BUF_LORA_OUT's row 0 for last-token-only side paths */
    bool logits_all;           /* BUF_LOGITS has a row per token, else the last token's only */
    uint32_t layers_begin, layers_end; /* the nodes of the layers (the rest: embedding, output) */
};

/* Describes AM's forward pass; LOGITS_ALL keeps every token's logits, else
 * the last token's only. */
int graph_build(const struct arch_model *am, bool logits_all, struct graph *g,
                struct vkllm_error *err);

/* An adapter of the set a graph applies (lora.h): the rank of its pair for
 * each of AM's slices (0: none), its alpha and the scale asked for. */
struct graph_adapter {
    const uint32_t *rank; /* as am->slices */
    float alpha, scale;
};
/* The same with the side paths of adapters AD[0..N_AD): after each adapted
 * matmul (and the token embedding), per adapter in order, BUF_LORA = A x,
 * BUF_LORA_OUT = B BUF_LORA, dst += s BUF_LORA_OUT with llama.cpp's factor s,
 * before any bias: llama.cpp's build_lora_mm, operation for operation. */
int graph_build_with(const struct arch_model *am, bool logits_all, const struct graph_adapter *ad,
                     uint32_t n_ad, struct graph *g, struct vkllm_error *err);
void graph_free(struct graph *g);

/* The node's parameters for attention, as ops.h takes them. */
struct attention_params;
void graph_attention_params(const struct arch_model *am, uint32_t layer, uint32_t n_ctx,
                            uint32_t ring, struct attention_params *out);

/* The rotary settings of a session of N_CTX tokens (am->layers.n_rope of
 * them: the model's, then its sliding-window layers'); FREQ_FACTORS are
 * rope_freqs.weight or NULL. */
void rope_settings(const struct arch_model *am, const float *freq_factors, uint32_t n_ctx,
                   struct rope_params *out);

#endif
