/* graph.c: every family's layer graph, from its table entry (arch.c) and the
 * tensors its file has. What differs between families is a flag or a tensor's
 * presence here, not a copy of the graph: biases are added where the file has
 * them, a Q/K norm runs where it has one, post-norms where it has them. */
#include "graph.h"

#include "error.h"
#include "kernels.h" /* ELT_* */
#include "lora.h"    /* lora_scale */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct builder {
    const struct arch_model *am;
    struct graph *g;
    uint32_t layer;
    bool failed;
    const struct graph_adapter *ad;
    uint32_t n_ad;
    uint32_t lora_width;     /* the widest rank a side path uses */
    uint32_t lora_out_width; /* the widest B of a side path on every token */
};

static void add(struct builder *b, struct graph_node n)
{
    struct graph *g = b->g;
    if (g->n_nodes == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 256;
        struct graph_node *p = realloc(g->nodes, cap * sizeof *p);
        if (!p) {
            b->failed = true;
            return;
        }
        g->nodes = p;
        g->cap = cap;
    }
    n.layer = b->layer;
    g->nodes[g->n_nodes++] = n;
}

static bool has(const struct builder *b, enum tensor_role r)
{
    return arch_has(b->am, b->layer, r);
}

static uint8_t role_if(const struct builder *b, enum tensor_role r)
{
    return has(b, r) ? (uint8_t)r : T_NONE;
}

/* dst = norm(src) * w (+ w's bias role), over N floats per row. */
static void norm(struct builder *b, enum graph_buf dst, enum graph_buf src, enum tensor_role w,
                 enum tensor_role bias, uint32_t n, uint32_t rows)
{
    const struct vkllm_hparams *hp = &b->am->hp;
    const bool row_weights =
        rows > 1 && arch_slice(b->am, b->layer, w)->count == (uint64_t)n * rows;
    add(b, (struct graph_node){.op = NODE_NORM,
                               .dst = dst,
                               .src = src,
                               .w = w,
                               .b = bias == T_NONE ? T_NONE : role_if(b, bias),
                               .sub = (hp->layer_norm ? NORM_LAYER_BIT : 0) |
                                      (row_weights ? NORM_ROW_BIT : 0),
                               .n = n,
                               .rows = rows,
                               .f = hp->norm_eps});
}

static void eltwise(struct builder *b, uint32_t op, enum graph_buf dst, uint8_t src,
                    uint8_t operand, uint32_t n, float f, bool last_only)
{
    add(b, (struct graph_node){.op = NODE_ELTWISE,
                               .dst = dst,
                               .src = src,
                               .b = operand,
                               .sub = op,
                               .n = n,
                               .rows = 1,
                               .f = f,
                               .last_only = last_only});
}

/* dst += s B (A src) for each adapter of W, as llama.cpp's build_lora_mm
 * (and its inp_embd for token_embd, SRC then BUF_NONE). The scale goes after
 * B, as there: scaling A src instead is cheaper but changes how a Q8_0 B's
 * input is quantized, which moved logits by 0.25 (measured). LAST_ONLY: B
 * reads the last token's row, so A runs on every token. */
static void side_paths(struct builder *b, enum graph_buf dst, uint8_t src, enum tensor_role w,
                       uint32_t n_out, bool last_only)
{
    const uint64_t slot = arch_slice(b->am, b->layer, w) - b->am->slices;
    for (uint32_t i = 0; i < b->n_ad; i++) {
        const struct graph_adapter *ad = &b->ad[i];
        const uint32_t rank = ad->rank[slot];
        if (!rank) continue;
        if (rank > b->lora_width) b->lora_width = rank;
        add(b, (struct graph_node){.op = NODE_LORA_A,
                                   .dst = BUF_LORA,
                                   .src = src,
                                   .w = w,
                                   .b = T_NONE,
                                   .lora = (uint8_t)i,
                                   .n = rank,
                                   .rows = 1});
        add(b, (struct graph_node){.op = NODE_LORA_B,
                                   .dst = BUF_LORA_OUT,
                                   .src = BUF_LORA,
                                   .w = w,
                                   .b = T_NONE,
                                   .lora = (uint8_t)i,
                                   .n = n_out,
                                   .rows = 1,
                                   .last_only = last_only});
        eltwise(b, ELT_ADD_SCALED, dst, BUF_LORA_OUT, T_NONE, n_out,
                lora_scale(ad->scale, ad->alpha, rank), last_only);
        uint32_t *out = last_only ? &b->g->lora_out_last : &b->lora_out_width;
        if (n_out > *out) *out = n_out;
    }
}

/* dst (+)= w src, then + bias where the file has one. */
static void matmul(struct builder *b, enum graph_buf dst, enum graph_buf src, enum tensor_role w,
                   enum tensor_role bias, uint32_t n_out, bool acc, bool last_only)
{
    add(b, (struct graph_node){.op = NODE_MATMUL,
                               .dst = dst,
                               .src = src,
                               .w = w,
                               .b = T_NONE,
                               .acc = acc,
                               .n = n_out,
                               .rows = 1,
                               .last_only = last_only});
    side_paths(b, dst, src, w, n_out, last_only);
    if (bias != T_NONE && has(b, bias))
        eltwise(b, ELT_ADD_BIAS, dst, BUF_NONE, bias, n_out, 0, last_only);
}

static void layer(struct builder *b)
{
    const struct arch_model *am = b->am;
    const struct arch *a = am->arch;
    const struct vkllm_hparams *hp = &am->hp;
    const uint32_t E = hp->n_embd, hd = hp->head_dim, F = hp->n_ff;
    const uint32_t Q = hp->n_head * hd, KV = hp->n_head_kv * hd;

    /* inputs of attention and of the feed-forward */
    norm(b, BUF_XN, BUF_X, T_ATTN_NORM, T_ATTN_NORM_B, E, 1);
    enum graph_buf attn_in = BUF_XN, ffn_in = BUF_XN;
    if (has(b, T_ATTN_NORM_2)) {
        norm(b, BUF_XA, BUF_X, T_ATTN_NORM_2, T_ATTN_NORM_2_B, E, 1);
        attn_in = BUF_XA;
    }
    const bool parallel = hp->parallel_residual;
    if (parallel && has(b, T_FFN_NORM)) {
        norm(b, BUF_XF, BUF_X, T_FFN_NORM, T_FFN_NORM_B, E, 1);
        ffn_in = BUF_XF;
    }

    /* attention */
    matmul(b, BUF_Q, attn_in, T_WQ, T_BQ, Q, false, false);
    matmul(b, BUF_K, attn_in, T_WK, T_BK, KV, false, false);
    matmul(b, BUF_V, attn_in, T_WV, T_BV, KV, false, false);
    if (has(b, T_Q_NORM)) norm(b, BUF_Q, BUF_Q, T_Q_NORM, T_NONE, hd, hp->n_head);
    if (has(b, T_K_NORM)) norm(b, BUF_K, BUF_K, T_K_NORM, T_NONE, hd, hp->n_head_kv);
    if (a->rope != ROPE_NONE) {
        const uint8_t setting = am->layers.rope_index[b->layer];
        add(b, (struct graph_node){.op = NODE_ROPE,
                                   .dst = BUF_Q,
                                   .src = BUF_NONE,
                                   .w = T_NONE,
                                   .b = T_NONE,
                                   .sub = setting,
                                   .n = hd,
                                   .rows = hp->n_head});
        add(b, (struct graph_node){.op = NODE_ROPE,
                                   .dst = BUF_K,
                                   .src = BUF_NONE,
                                   .w = T_NONE,
                                   .b = T_NONE,
                                   .sub = setting,
                                   .n = hd,
                                   .rows = hp->n_head_kv});
    }
    add(b, (struct graph_node){.op = NODE_KV_STORE,
                               .dst = BUF_NONE,
                               .src = BUF_NONE,
                               .w = T_NONE,
                               .b = T_NONE,
                               .n = KV,
                               .rows = 1});
    add(b, (struct graph_node){.op = NODE_ATTENTION,
                               .dst = BUF_ATT,
                               .src = BUF_Q,
                               .w = T_NONE,
                               .b = T_NONE,
                               .n = Q,
                               .rows = 1});
    const bool post_attn = has(b, T_POST_ATTN_NORM);
    matmul(b, post_attn ? BUF_TMP : BUF_X, BUF_ATT, T_WO, T_BO, E, !post_attn, false);
    if (post_attn) {
        norm(b, BUF_TMP, BUF_TMP, T_POST_ATTN_NORM, T_NONE, E, 1);
        eltwise(b, ELT_ADD, BUF_X, BUF_TMP, T_NONE, E, 0, false);
    }

    /* feed-forward: without a norm of its own it reads attention's input
     * (stablelm 2 without ffn_norm, falcon) */
    if (!parallel && has(b, T_FFN_NORM)) norm(b, BUF_XN, BUF_X, T_FFN_NORM, T_FFN_NORM_B, E, 1);
    const bool post_ffn = has(b, T_POST_FFN_NORM);
    const enum graph_buf out = post_ffn ? BUF_TMP : BUF_X;
    enum graph_buf act = BUF_UP;
    if (a->ffn == FFN_GELU) {
        matmul(b, BUF_UP, ffn_in, T_WUP, T_BUP, F, false, false);
        eltwise(b, ELT_GELU, BUF_UP, BUF_NONE, T_NONE, F, 0, false);
    } else {
        matmul(b, BUF_GATE, ffn_in, T_WGATE, T_NONE, F, false, false);
        matmul(b, BUF_UP, ffn_in, T_WUP, T_BUP, F, false, false);
        eltwise(b, a->ffn == FFN_SILU_GLU ? ELT_GLU_SILU : ELT_GLU_GELU, BUF_GATE, BUF_UP, T_NONE,
                F, 0, false);
        act = BUF_GATE;
    }
    matmul(b, out, act, T_WDOWN, T_BDOWN, E, !post_ffn, false);
    if (post_ffn) {
        norm(b, BUF_TMP, BUF_TMP, T_POST_FFN_NORM, T_NONE, E, 1);
        eltwise(b, ELT_ADD, BUF_X, BUF_TMP, T_NONE, E, 0, false);
    }
}

int graph_build(const struct arch_model *am, bool logits_all, struct graph *g,
                struct vkllm_error *err)
{
    return graph_build_with(am, logits_all, NULL, 0, g, err);
}

int graph_build_with(const struct arch_model *am, bool logits_all, const struct graph_adapter *ad,
                     uint32_t n_ad, struct graph *g, struct vkllm_error *err)
{
    memset(g, 0, sizeof *g);
    g->logits_all = logits_all;
    const struct vkllm_hparams *hp = &am->hp;
    const struct arch *a = am->arch;
    const uint32_t E = hp->n_embd;
    if (n_ad > 255) return vkllm_fail(err, VKLLM_E_INVALID, "at most 255 adapters at once");
    struct builder b = {am, g, 0, false, ad, n_ad, 0, 0};

    add(&b, (struct graph_node){.op = NODE_EMBED,
                                .dst = BUF_X,
                                .src = BUF_NONE,
                                .w = T_TOK_EMBD,
                                .b = T_NONE,
                                .n = E,
                                .rows = 1});
    side_paths(&b, BUF_X, BUF_NONE, T_TOK_EMBD, E, false);
    if (has(&b, T_POS_EMBD))
        add(&b, (struct graph_node){.op = NODE_EMBED,
                                    .dst = BUF_X,
                                    .src = BUF_NONE,
                                    .w = T_POS_EMBD,
                                    .b = T_NONE,
                                    .sub = 1,
                                    .acc = true,
                                    .n = E,
                                    .rows = 1});
    if (a->flags & ARCH_EMBD_SCALE)
        eltwise(&b, ELT_SCALE, BUF_X, BUF_NONE, T_NONE, E, sqrtf((float)E), false);
    if (has(&b, T_TOK_NORM)) norm(&b, BUF_X, BUF_X, T_TOK_NORM, T_TOK_NORM_B, E, 1);

    g->layers_begin = g->n_nodes;
    for (b.layer = 0; b.layer < hp->n_layer; b.layer++)
        layer(&b);
    g->layers_end = g->n_nodes;
    b.layer = 0;

    const bool last = !logits_all;
    norm(&b, BUF_XN, BUF_X, T_OUTPUT_NORM, T_OUTPUT_NORM_B, E, 1);
    matmul(&b, BUF_LOGITS, BUF_XN, T_OUTPUT, T_OUTPUT_B, hp->n_vocab, false, last);
    if (hp->final_softcap > 0)
        eltwise(&b, ELT_SOFTCAP, BUF_LOGITS, BUF_NONE, T_NONE, hp->n_vocab, hp->final_softcap,
                last);
    if (b.failed) {
        graph_free(g);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }

    /* how wide each buffer the nodes name must be */
    const uint32_t Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    uint32_t widths[BUF_COUNT] = {
        [BUF_X] = E,   [BUF_XN] = E,          [BUF_XA] = E,        [BUF_XF] = E,
        [BUF_Q] = Q,   [BUF_K] = KV,          [BUF_V] = KV,        [BUF_ATT] = Q,
        [BUF_TMP] = E, [BUF_GATE] = hp->n_ff, [BUF_UP] = hp->n_ff, [BUF_LOGITS] = hp->n_vocab,
    };
    widths[BUF_LORA] = b.lora_width;
    widths[BUF_LORA_OUT] = b.lora_out_width;
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const struct graph_node *n = &g->nodes[i];
        if (n->dst != BUF_NONE) g->width[n->dst] = widths[n->dst];
        if (n->src != BUF_NONE) g->width[n->src] = widths[n->src];
        if (n->op == NODE_KV_STORE) g->width[BUF_K] = KV, g->width[BUF_V] = KV;
    }
    return VKLLM_OK;
}

void graph_free(struct graph *g)
{
    free(g->nodes);
    memset(g, 0, sizeof *g);
}

void graph_attention_params(const struct arch_model *am, uint32_t layer, uint32_t n_ctx,
                            uint32_t ring, struct attention_params *out)
{
    const struct vkllm_hparams *hp = &am->hp;
    *out = (struct attention_params){
        .head_dim = hp->head_dim,
        .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv,
        .n_ctx = n_ctx,
        .ring = ring,
        .window = am->layers.swa[layer] ? hp->sliding_window : 0,
        .q_scale = am->q_scale,
        .kq_scale = am->kq_scale,
        .softcap = hp->attn_softcap,
        .alibi_max_bias = hp->alibi_max_bias,
    };
}

void rope_settings(const struct arch_model *am, const float *freq_factors, uint32_t n_ctx,
                   struct rope_params *out)
{
    const struct vkllm_hparams *hp = &am->hp;
    for (uint32_t i = 0; i < am->layers.n_rope; i++) {
        rope_params_init(&am->rope, hp->n_rot, hp->rope_freq_base, n_ctx, freq_factors, &out[i]);
        if (i == 1) { /* as llama.cpp: the YaRN settings stay the session's */
            out[i].freq_base = hp->rope_freq_base_swa;
            out[i].freq_scale = am->rope_freq_scale_swa;
        }
    }
}
