/* forward.c: executing a graph (graph.h) on the device: each node becomes one
 * op, a quantized matmul's input is quantized once for every matmul that reads
 * it, and barriers come from what each dispatch reads and writes. Unless the
 * context forced "no-fuse", some runs of nodes become one dispatch: RoPE of Q
 * and K with the KV cache write, and a norm or an element-wise op (a GLU) with
 * the quantization of its output for the matmul that reads it (a decode step
 * of a small model costs its launches more than its arithmetic). */
#include "forward.h"

/* What a dispatch may touch, as bits: the graph's buffers, then these. */
enum {
    RES_XQ = BUF_COUNT, /* quantized matmul input */
    RES_KV,             /* the KV caches */
    RES_SCORES,         /* the attention scratch */
};
#define RES(b) (1u << (b))

struct recorder {
    struct op_env e;
    const struct vkllm_model *m;
    const struct vkllm_adapter *const *ad;
    const struct forward_state *st;
    uint32_t read, written; /* since the last barrier */
    uint8_t xq_of;          /* the buffer XQ holds quantized, or BUF_NONE */
    bool xq_last_only;
};

/* A dispatch that reads READS and writes WRITES comes next: a barrier first if
 * it reads what is not yet written, or overwrites what is not yet read. */
static void touch(struct recorder *r, uint32_t reads, uint32_t writes)
{
    if (((reads | writes) & r->written) || (writes & r->read)) {
        gpu_graph_barrier(r->e.graph);
        r->read = r->written = 0;
    }
    r->read |= reads;
    r->written |= writes;
    if (r->xq_of != BUF_NONE && (writes & RES(r->xq_of))) r->xq_of = BUF_NONE;
}

static const struct gpu_buf *buf(const struct recorder *r, uint8_t b)
{
    return &r->st->bufs[b];
}

/* Node N's product with W: the model's matrix, or an adapter's A or B. */
static int matmul(struct recorder *r, const struct graph_node *n, const struct gpu_weight *w,
                  struct vkllm_error *err)
{
    const struct gpu_buf *in = buf(r, n->src);
    int rc;
    if (op_matvec_takes_q8(&r->e, w->type, n->last_only)) {
        if (r->xq_of != n->src || r->xq_last_only != n->last_only) {
            touch(r, RES(n->src), RES(RES_XQ));
            rc = op_quantize_q8(&r->e, in, &r->st->xq, w->k, n->last_only, err);
            if (rc) return rc;
            r->xq_of = n->src;
            r->xq_last_only = n->last_only;
        }
        in = &r->st->xq;
        touch(r, RES(RES_XQ) | (n->acc ? RES(n->dst) : 0), RES(n->dst));
    } else {
        touch(r, RES(n->src) | (n->acc ? RES(n->dst) : 0), RES(n->dst));
    }
    return op_matvec(&r->e, w, in, buf(r, n->dst), n->acc, n->last_only, err);
}

/* The weight node N multiplies by (a MATMUL or LORA_* node). */
static const struct gpu_weight *matmul_weight(const struct recorder *r, const struct graph_node *n)
{
    if (n->op == NODE_MATMUL) return &model_tensor(r->m, n->layer, n->w)->mat;
    const struct lora_weight *p = lora_weight(r->ad[n->lora], n->layer, (enum tensor_role)n->w);
    return n->op == NODE_LORA_A ? &p->a : &p->b;
}

/* Whether a node after node I of GR reads buffer B before one overwrites it;
 * *READER: the first that reads it, if any. */
static bool read_later(const struct graph *gr, uint32_t i, uint8_t b,
                       const struct graph_node **reader)
{
    for (uint32_t j = i + 1; j < gr->n_nodes; j++) {
        const struct graph_node *n = &gr->nodes[j];
        const bool kv = n->op == NODE_KV_STORE && (b == BUF_K || b == BUF_V);
        /* ROPE and ELTWISE read their dst, as ACC nodes do */
        const bool reads_dst = n->op == NODE_ROPE || n->op == NODE_ELTWISE || n->acc;
        if (n->src == b || kv || (n->dst == b && reads_dst)) {
            *reader = n;
            return true;
        }
        if (n->dst == b) break;
    }
    *reader = NULL;
    return false;
}

/* Whether nodes I.. of GR are RoPE of Q, RoPE of K and the KV cache write of
 * one layer, with nothing after them reading K (which the fused op leaves
 * unrotated). */
static bool rope_kv_follows(const struct graph *gr, uint32_t i)
{
    if (i + 2 >= gr->n_nodes) return false;
    const struct graph_node *q = &gr->nodes[i], *k = q + 1, *kv = q + 2;
    const struct graph_node *reader;
    return q->op == NODE_ROPE && q->dst == BUF_Q && k->op == NODE_ROPE && k->dst == BUF_K &&
           k->sub == q->sub && k->n == q->n && kv->op == NODE_KV_STORE && kv->n == k->n * k->rows &&
           k->layer == q->layer && kv->layer == q->layer && !read_later(gr, i + 2, BUF_K, &reader);
}

static int rope_kv_store(struct recorder *r, const struct graph_node *q, const struct graph_node *k,
                         struct vkllm_error *err)
{
    const struct forward_state *st = r->st;
    const uint32_t l = q->layer;
    const struct rope_kv_shape s = {
        .n_head = q->rows,
        .n_head_kv = k->rows,
        .head_dim = q->n,
        .n_rot = r->m->hp.n_rot,
        .neox = r->m->hp.rope_neox,
        .ring = st->ring[l],
        .type_k = st->type_k,
        .type_v = st->type_v,
    };
    touch(r, RES(BUF_Q) | RES(BUF_K) | RES(BUF_V), RES(BUF_Q) | RES(RES_KV));
    return op_rope_kv_store(&r->e, &st->rope[q->sub], buf(r, BUF_Q), buf(r, BUF_K), buf(r, BUF_V),
                            &st->k_cache[l], &st->v_cache[l], &s, err);
}

/* The matmul that reads norm or eltwise node I's output first, when it
 * quantizes it to Q8_0 as those can (its rows' length a multiple of 32); else
 * NULL. */
static const struct graph_node *q8_reader(const struct recorder *r, const struct graph *gr,
                                          uint32_t i)
{
    const struct graph_node *n = &gr->nodes[i], *reader;
    const uint32_t k = n->op == NODE_NORM ? n->n * n->rows : n->n; /* floats per token */
    if (n->n % 32 || !read_later(gr, i, n->dst, &reader)) return NULL;
    const bool matmul =
        reader->op == NODE_MATMUL || reader->op == NODE_LORA_A || reader->op == NODE_LORA_B;
    if (!matmul || reader->src != n->dst) return NULL;
    const struct gpu_weight *w = matmul_weight(r, reader);
    return op_matvec_takes_q8(&r->e, w->type, reader->last_only) && w->k == k ? reader : NULL;
}

/* Norm node N, its output quantized for the matmul READER as well. */
static int norm_q8(struct recorder *r, const struct graph_node *n, const struct graph_node *reader,
                   struct vkllm_error *err)
{
    const struct vkllm_model *m = r->m;
    touch(r, RES(n->src), RES(n->dst) | RES(RES_XQ));
    r->xq_of = n->dst;
    r->xq_last_only = reader->last_only;
    return op_norm_q8(&r->e, buf(r, n->src), &model_tensor(m, n->layer, n->w)->vec,
                      n->b == T_NONE ? NULL : &model_tensor(m, n->layer, n->b)->vec, buf(r, n->dst),
                      &r->st->xq, n->n, n->rows, n->f, n->sub & NORM_LAYER_BIT,
                      n->sub & NORM_ROW_BIT, reader->last_only, err);
}

/* The operand of eltwise node N: a buffer, a model tensor, or none. */
static const struct gpu_buf *eltwise_operand(const struct recorder *r, const struct graph_node *n)
{
    return n->src != BUF_NONE ? buf(r, n->src)
           : n->b != T_NONE   ? &model_tensor(r->m, n->layer, n->b)->vec
                              : NULL;
}

/* Eltwise node N, its output quantized for the matmul READER as well. */
static int eltwise_q8(struct recorder *r, const struct graph_node *n,
                      const struct graph_node *reader, struct vkllm_error *err)
{
    touch(r, RES(n->dst) | (n->src != BUF_NONE ? RES(n->src) : 0), RES(n->dst) | RES(RES_XQ));
    r->xq_of = n->dst;
    r->xq_last_only = reader->last_only;
    return op_eltwise_q8(&r->e, n->sub, buf(r, n->dst), eltwise_operand(r, n), &r->st->xq, n->n,
                         n->f, n->last_only, reader->last_only, err);
}

static int node(struct recorder *r, const struct graph_node *n, struct vkllm_error *err)
{
    const struct vkllm_model *m = r->m;
    const struct forward_state *st = r->st;
    const struct vkllm_hparams *hp = &m->hp;
    const uint32_t l = n->layer;
    switch ((enum node_op)n->op) {
    case NODE_EMBED:
        touch(r, n->acc ? RES(n->dst) : 0, RES(n->dst));
        return op_get_rows(&r->e, &model_tensor(m, l, n->w)->mat, buf(r, n->dst), n->sub, n->acc,
                           err);
    case NODE_NORM:
        touch(r, RES(n->src), RES(n->dst));
        return op_norm(&r->e, buf(r, n->src), &model_tensor(m, l, n->w)->vec,
                       n->b == T_NONE ? NULL : &model_tensor(m, l, n->b)->vec, buf(r, n->dst), n->n,
                       n->rows, n->f, n->sub & NORM_LAYER_BIT, n->sub & NORM_ROW_BIT, err);
    case NODE_MATMUL:
    case NODE_LORA_B: return matmul(r, n, matmul_weight(r, n), err);
    case NODE_LORA_A:
        if (n->src != BUF_NONE) return matmul(r, n, matmul_weight(r, n), err);
        touch(r, 0, RES(n->dst)); /* token_embd's: the token's row of A */
        return op_get_rows(&r->e, matmul_weight(r, n), buf(r, n->dst), false, false, err);
    case NODE_ELTWISE:
        touch(r, RES(n->dst) | (n->src != BUF_NONE ? RES(n->src) : 0), RES(n->dst));
        return op_eltwise(&r->e, n->sub, buf(r, n->dst), eltwise_operand(r, n), n->n, n->f,
                          n->last_only, err);
    case NODE_ROPE:
        touch(r, RES(n->dst), RES(n->dst));
        return op_rope(&r->e, &st->rope[n->sub], buf(r, n->dst), n->rows, n->n, hp->n_rot,
                       hp->rope_neox, err);
    case NODE_KV_STORE:
        touch(r, RES(BUF_K) | RES(BUF_V), RES(RES_KV));
        return op_kv_store(&r->e, buf(r, BUF_K), buf(r, BUF_V), &st->k_cache[l], &st->v_cache[l],
                           n->n, st->ring[l], st->type_k, st->type_v, err);
    case NODE_ATTENTION: {
        struct attention_params p;
        graph_attention_params(&m->am, l, st->n_ctx, st->ring[l], &p);
        p.type_k = st->type_k;
        p.type_v = st->type_v;
        touch(r, RES(n->src) | RES(RES_KV) | RES(RES_SCORES), RES(n->dst) | RES(RES_SCORES));
        return op_attention(&r->e, buf(r, n->src), &st->k_cache[l], &st->v_cache[l], &st->scores,
                            buf(r, n->dst), &p, err);
    }
    }
    return vkllm_fail(err, VKLLM_E_INVALID, "unknown graph node %u", n->op);
}

int forward_record(const struct vkllm_model *m, const struct graph *gr,
                   const struct vkllm_adapter *const *ad, const struct forward_state *st,
                   struct gpu_graph *g, uint32_t batch, bool mixed_rows,
                   const struct gpu_buf *readback, struct vkllm_error *err)
{
    struct recorder r = {
        .e = {m->ctx, g, st->step, batch, GPU_NO_BARRIER, mixed_rows},
        .m = m,
        .ad = ad,
        .st = st,
        .xq_of = BUF_NONE,
    };
    int rc = gpu_graph_begin(g, err);
    for (uint32_t i = 0; !rc && i < gr->n_nodes; i++) {
        const struct graph_node *n = &gr->nodes[i];
        /* for a profile: the layer, and the matrix a matmul reads */
        const bool in_layer = i >= gr->layers_begin && i < gr->layers_end;
        const bool side_path = n->op == NODE_LORA_A || n->op == NODE_LORA_B;
        gpu_graph_tag(g, in_layer ? (int32_t)n->layer : -1,
                      side_path              ? FORWARD_ROLE_LORA
                      : n->op == NODE_MATMUL ? n->w
                      : n->op == NODE_EMBED  ? n->w
                                             : T_NONE);
        const struct graph_node *reader;
        if (!m->ctx->fuse) {
            rc = node(&r, n, err);
        } else if (rope_kv_follows(gr, i)) {
            rc = rope_kv_store(&r, n, n + 1, err);
            i += 2;
        } else if (n->op == NODE_NORM && (reader = q8_reader(&r, gr, i))) {
            rc = norm_q8(&r, n, reader, err);
        } else if (n->op == NODE_ELTWISE && (reader = q8_reader(&r, gr, i))) {
            rc = eltwise_q8(&r, n, reader, err);
        } else {
            rc = node(&r, n, err);
        }
    }
    if (rc) return rc;
    gpu_graph_barrier(g);
    /* the rows this graph computes, not all the read-back buffer holds */
    const uint64_t rows = gr->logits_all ? batch : 1;
    gpu_graph_copy(g, &st->bufs[BUF_LOGITS], readback, rows * m->hp.n_vocab * sizeof(float));
    return gpu_graph_end(g, err);
}
