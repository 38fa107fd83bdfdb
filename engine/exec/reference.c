/* reference.c: the CPU forward pass, written as directly as llama2.c's. */
#include "reference.h"

#include "error.h"
#include "graph.h"
#include "kernels.h" /* ELT_* */
#include "lora.h"
#include "quant.h"
#include "rope.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Operations ============================== */

void ref_norm(const float *x, const float *w, const float *b, float *out, uint32_t n, float eps,
              bool layer_norm)
{
    float mean = 0.0f;
    if (layer_norm) {
        double sum = 0.0;
        for (uint32_t i = 0; i < n; i++)
            sum += x[i];
        mean = (float)(sum / n);
    }
    double ss = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        const float v = x[i] - mean;
        ss += (double)(v * v);
    }
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (uint32_t i = 0; i < n; i++) {
        const float v = (x[i] - mean) * scale * w[i];
        out[i] = b ? v + b[i] : v;
    }
}

void ref_matvec(const float *w, const float *x, float *y, uint32_t n, uint32_t k)
{
    for (uint32_t r = 0; r < n; r++) {
        double s = 0.0;
        for (uint32_t i = 0; i < k; i++)
            s += (double)w[(uint64_t)r * k + i] * x[i];
        y[r] = (float)s;
    }
}

void ref_q8_round(const float *x, float *out, uint32_t k)
{
    int8_t q[32];
    float d;
    for (uint32_t b = 0; b < k / 32; b++) {
        quant_q8_activations(x + 32 * b, q, &d, 32);
        for (int j = 0; j < 32; j++)
            out[32 * b + j] = d * q[j];
    }
}

void ref_matvec_input(uint32_t type, const float *x, float *out, uint32_t k)
{
    const enum quant_act act = quant_format(type) ? quant_format(type)->act : ACT_F32;
    if (act == ACT_Q8) {
        ref_q8_round(x, out, k);
    } else if (act == ACT_F16) {
        for (uint32_t i = 0; i < k; i++)
            out[i] = ref_round_f16(x[i]);
    } else if (act == ACT_BF16) {
        for (uint32_t i = 0; i < k; i++) {
            uint16_t h;
            quantize_BF16(&x[i], &h, 1);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&out[i], &u, 4);
        }
    } else {
        memcpy(out, x, k * sizeof *out);
    }
}

void ref_rope(float *x, const float *table, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
              bool neox)
{
    const uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (uint32_t i = 0; i < half; i++) {
            float c = table[2 * i], s = table[2 * i + 1];
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

float ref_gelu(float x)
{
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    const float h = ref_round_f16(x);
    return ref_round_f16(
        0.5f * h *
        (1.0f + tanhf(0.79788456080286535587989211986876f * h * (1.0f + 0.044715f * h * h))));
}

void ref_eltwise(uint32_t op, float *y, const float *x, uint32_t n, float f)
{
    for (uint32_t i = 0; i < n; i++) {
        const float v = y[i];
        switch (op) {
        case ELT_ADD:
        case ELT_ADD_BIAS: y[i] = v + x[i]; break;
        case ELT_SCALE: y[i] = v * f; break;
        case ELT_GELU: y[i] = ref_gelu(v); break;
        case ELT_SOFTCAP: y[i] = tanhf(v / f) * f; break;
        case ELT_GLU_SILU: y[i] = v / (1.0f + expf(-v)) * x[i]; break;
        case ELT_GLU_GELU: y[i] = ref_gelu(v) * x[i]; break;
        case ELT_ADD_SCALED: {
            const float t = f * x[i];
            y[i] = v + t;
            break;
        }
        }
    }
}

void ref_attention(const float *q, const float *k, const float *v, float *out, uint32_t pos,
                   const struct attention_params *a)
{
    const uint32_t hd = a->head_dim, group = a->n_head / a->n_head_kv, kv_dim = a->n_head_kv * hd;
    const uint32_t first = a->window && pos >= a->window ? pos - a->window + 1 : 0;
    float m0 = 0, m1 = 0;
    uint32_t alibi_heads = 0;
    if (a->alibi_max_bias > 0)
        attention_alibi(a->n_head, a->alibi_max_bias, &m0, &m1, &alibi_heads);
    double *p = malloc((pos + 1) * sizeof *p);
    if (!p) abort(); /* reference code for tests: no recovery */
    for (uint32_t h = 0; h < a->n_head; h++) {
        const float *qh = q + h * hd;
        const uint32_t kvh = h / group;
        const float slope = h < alibi_heads ? powf(m0, (float)(h + 1))
                                            : powf(m1, (float)(2 * (h - alibi_heads) + 1));
        double max = -INFINITY, sum = 0.0;
        for (uint32_t j = first; j <= pos; j++) {
            const float *kj = k + (uint64_t)j * kv_dim + kvh * hd;
            double s = 0.0;
            for (uint32_t d = 0; d < hd; d++)
                s += (double)ref_round_f16(qh[d] * a->q_scale) * kj[d];
            if (a->softcap > 0) s = tanh(s / a->softcap) * a->softcap;
            s *= a->kq_scale;
            if (alibi_heads) s += slope * -(double)(pos - j);
            p[j] = s;
            if (s > max) max = s;
        }
        for (uint32_t j = first; j <= pos; j++)
            sum += (p[j] = exp(p[j] - max));
        for (uint32_t j = first; j <= pos; j++)
            p[j] = ref_round_f16((float)(p[j] / sum));
        for (uint32_t d = 0; d < hd; d++) {
            double acc = 0.0;
            for (uint32_t j = first; j <= pos; j++)
                acc += p[j] * v[(uint64_t)j * kv_dim + kvh * hd + d];
            out[h * hd + d] = (float)acc;
        }
    }
    free(p);
}

float ref_round_f16(float x)
{
    return fp16_to_f32(f32_to_fp16(x));
}

/* ============================== Model ============================== */

/* A role's slice dequantized to floats, remembering its type for the input
 * rounding; the output's data is token_embd's when tied. */
struct ref_tensor {
    float *data; /* rows as in the file: (out, in) */
    uint32_t type;
};

/* An adapter's pairs as floats, per slice of the model. */
struct ref_adapter {
    struct ref_tensor *a, *b; /* as am.slices; NULL data where not adapted */
    uint32_t *rank;
    float alpha;
};

struct ref_model {
    struct arch_model am;
    struct ref_adapter *ad; /* ref_model_set_adapters */
    uint32_t n_ad;
    struct graph graph;
    uint32_t n_ctx;
    bool kv_f16;
    uint32_t pos;
    struct ref_tensor *tensors; /* as am.slices */
    struct rope_params rope[2];
    /* run state, one token */
    float *bufs[BUF_COUNT];
    float *in;                /* a matvec's prepared input */
    float *tmp;               /* a matvec's output before it is added */
    float *table[2];          /* the token's rotation per rotary setting */
    float *k_cache, *v_cache; /* (n_layer, n_ctx, kv_dim) */
};

static const struct ref_tensor *tensor(const struct ref_model *m, uint32_t layer,
                                       enum tensor_role role)
{
    return &m->tensors[arch_slice(&m->am, layer, role) - m->am.slices];
}

/* The slice S of G dequantized into *OUT: COUNT rows (or elements) from FIRST. */
static int dequant(const vkllm_gguf *g, const struct tensor_slice *s, bool matrix, float **out,
                   struct vkllm_error *err)
{
    tensor_ref t = s->t;
    const uint64_t k = matrix ? t->ne[0] : 1, rows = s->count;
    /* a matrix's rows are read alone; a vector's slice may start inside a block */
    const uint64_t row = matrix ? quant_row_bytes(t->type, k) : 0;
    const uint64_t raw_bytes = matrix ? row * rows : t->size;
    const uint64_t nel = matrix ? k * rows : t->ne[0] * t->ne[1];
    float *f = malloc(nel * sizeof *f);
    uint8_t *raw = malloc(raw_bytes ? raw_bytes : 1);
    int rc = f && raw
                 ? vkllm_gguf_read(g, t, row * s->first, raw, raw_bytes, err)
                 : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory for the reference model");
    if (!rc) {
        quant_dequantize_row(t->type, raw, f, nel);
        if (!matrix) memmove(f, f + s->first, rows * sizeof *f);
        *out = f;
    } else {
        free(f);
    }
    free(raw);
    return rc;
}

int ref_model_create(const vkllm_gguf *g, uint32_t n_ctx, bool kv_f16, struct ref_model **out,
                     struct vkllm_error *err)
{
    *out = NULL;
    struct ref_model *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    int rc = arch_bind(g, &m->am, err);
    if (!rc) rc = graph_build(&m->am, false, &m->graph, err);
    if (rc) {
        ref_model_free(m);
        return rc;
    }
    const struct vkllm_hparams *hp = &m->am.hp;
    m->n_ctx = n_ctx ? n_ctx : hp->n_ctx_train;
    m->kv_f16 = kv_f16;
    const uint64_t n_slots = arch_slot_count(&m->am);
    if (!(m->tensors = calloc(n_slots, sizeof *m->tensors))) {
        ref_model_free(m);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory for the reference model");
    }
    for (uint64_t i = 0; i < n_slots; i++) {
        const struct tensor_slice *s = &m->am.slices[i];
        const enum tensor_role role =
            i >= (uint64_t)hp->n_layer * T_LAYER_COUNT
                ? (enum tensor_role)(T_MODEL_FIRST + (i - (uint64_t)hp->n_layer * T_LAYER_COUNT))
                : (enum tensor_role)(i % T_LAYER_COUNT);
        if (!s->t || (role == T_OUTPUT && hp->tied_output)) continue;
        m->tensors[i].type = s->t->type;
        if ((rc = dequant(g, s, arch_role_is_matrix(role), &m->tensors[i].data, err))) {
            ref_model_free(m);
            return rc;
        }
    }
    if (hp->tied_output)
        m->tensors[arch_slice(&m->am, 0, T_OUTPUT) - m->am.slices] = *tensor(m, 0, T_TOK_EMBD);

    uint64_t widest = 0;
    bool ok = true;
    for (int b = 0; ok && b < BUF_COUNT; b++) {
        if (m->graph.width[b] > widest) widest = m->graph.width[b];
        ok = (m->bufs[b] = calloc(m->graph.width[b] + 1, 4)) != NULL;
    }
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    ok = ok && (m->in = calloc(widest, 4)) && (m->tmp = calloc(widest, 4)) &&
         (m->table[0] = calloc(hp->n_rot + 2, 4)) && (m->table[1] = calloc(hp->n_rot + 2, 4)) &&
         (m->k_cache = calloc((uint64_t)hp->n_layer * m->n_ctx * KV, 4)) &&
         (m->v_cache = calloc((uint64_t)hp->n_layer * m->n_ctx * KV, 4));
    if (!ok) {
        ref_model_free(m);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory for the reference model");
    }
    rope_settings(&m->am, m->am.rope_freqs, m->n_ctx, m->rope);
    *out = m;
    return VKLLM_OK;
}

static void free_adapters(struct ref_model *m)
{
    const uint64_t n_slots = arch_slot_count(&m->am);
    for (uint32_t i = 0; i < m->n_ad; i++) {
        struct ref_adapter *a = &m->ad[i];
        for (uint64_t j = 0; a->a && j < n_slots; j++) {
            free(a->a[j].data);
            free(a->b[j].data);
        }
        free(a->a);
        free(a->b);
        free(a->rank);
    }
    free(m->ad);
    m->ad = NULL;
    m->n_ad = 0;
}

void ref_model_free(struct ref_model *m)
{
    if (!m) return;
    free_adapters(m);
    if (m->tensors) {
        const uint64_t n_slots = arch_slot_count(&m->am);
        if (m->am.hp.tied_output)
            m->tensors[arch_slice(&m->am, 0, T_OUTPUT) - m->am.slices].data = NULL;
        for (uint64_t i = 0; i < n_slots; i++)
            free(m->tensors[i].data);
        free(m->tensors);
    }
    for (int b = 0; b < BUF_COUNT; b++)
        free(m->bufs[b]);
    float *ps[] = {m->in, m->tmp, m->table[0], m->table[1], m->k_cache, m->v_cache};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        free(ps[i]);
    graph_free(&m->graph);
    arch_model_free(&m->am);
    free(m);
}

const struct vkllm_hparams *ref_model_hparams(const struct ref_model *m)
{
    return &m->am.hp;
}
void ref_model_reset(struct ref_model *m)
{
    m->pos = 0;
}

int ref_model_set_adapters(struct ref_model *m, const vkllm_gguf *base, const vkllm_gguf *const *ad,
                           const float *scales, uint32_t n, struct vkllm_error *err)
{
    free_adapters(m);
    const uint64_t n_slots = arch_slot_count(&m->am);
    struct graph_adapter *ga = calloc(n + 1, sizeof *ga);
    int rc = ga && (m->ad = calloc(n + 1, sizeof *m->ad))
                 ? VKLLM_OK
                 : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t i = 0; !rc && i < n; i++) {
        struct ref_adapter *a = &m->ad[i];
        m->n_ad = i + 1;
        struct lora_binding bind;
        if ((rc = lora_bind(&m->am, base, ad[i], &bind, err))) break;
        a->alpha = bind.alpha;
        if (!(a->a = calloc(n_slots, sizeof *a->a)) || !(a->b = calloc(n_slots, sizeof *a->b)) ||
            !(a->rank = calloc(n_slots, sizeof *a->rank)))
            rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        for (uint64_t j = 0; !rc && j < n_slots; j++) {
            const struct lora_pair *p = &bind.pairs[j];
            if (!p->a) continue;
            const struct tensor_slice sa = {p->a, 0, p->a->ne[1]};
            const struct tensor_slice sb = {p->b, p->b_first, p->b_count};
            a->a[j].type = p->a->type;
            a->b[j].type = p->b->type;
            a->rank[j] = p->rank;
            rc = dequant(ad[i], &sa, true, &a->a[j].data, err);
            if (!rc) rc = dequant(ad[i], &sb, true, &a->b[j].data, err);
        }
        lora_binding_free(&bind);
        ga[i] = (struct graph_adapter){a->rank, a->alpha, scales ? scales[i] : 1.0f};
    }
    struct graph g;
    if (!rc) rc = graph_build_with(&m->am, false, ga, n, &g, err);
    float *lora = NULL, *lora_out = NULL;
    if (!rc) {
        const uint32_t out =
            g.width[BUF_LORA_OUT] > g.lora_out_last ? g.width[BUF_LORA_OUT] : g.lora_out_last;
        lora = calloc(g.width[BUF_LORA] + 1, 4);
        lora_out = calloc(out + 1, 4);
        if (!lora || !lora_out) {
            free(lora);
            free(lora_out);
            graph_free(&g);
            rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        }
    }
    free(ga);
    if (rc) {
        free_adapters(m);
        return rc;
    }
    graph_free(&m->graph);
    m->graph = g;
    free(m->bufs[BUF_LORA]);
    free(m->bufs[BUF_LORA_OUT]);
    m->bufs[BUF_LORA] = lora;
    m->bufs[BUF_LORA_OUT] = lora_out;
    m->pos = 0;
    return VKLLM_OK;
}

/* Runs node N for the current token. */
static void run_node(struct ref_model *m, const struct graph_node *n, int32_t token)
{
    const struct vkllm_hparams *hp = &m->am.hp;
    const uint32_t l = n->layer, KV = hp->n_head_kv * hp->head_dim;
    float *dst = n->dst != BUF_NONE ? m->bufs[n->dst] : NULL;
    const float *src = n->src != BUF_NONE ? m->bufs[n->src] : NULL;
    const struct ref_tensor *w = n->w != T_NONE ? tensor(m, l, n->w) : NULL;
    const float *b = n->b != T_NONE ? tensor(m, l, n->b)->data : NULL;
    float *kc = m->k_cache + (uint64_t)l * m->n_ctx * KV;
    float *vc = m->v_cache + (uint64_t)l * m->n_ctx * KV;
    switch ((enum node_op)n->op) {
    case NODE_EMBED: {
        const uint32_t row = n->sub ? m->pos : (uint32_t)token;
        for (uint32_t i = 0; i < n->n; i++)
            dst[i] = (n->acc ? dst[i] : 0.0f) + w->data[(uint64_t)row * n->n + i];
        break;
    }
    case NODE_NORM:
        for (uint32_t r = 0; r < n->rows; r++)
            ref_norm(src + r * n->n, w->data + (n->sub & NORM_ROW_BIT ? r * n->n : 0), b,
                     dst + r * n->n, n->n, n->f, n->sub & NORM_LAYER_BIT);
        break;
    case NODE_MATMUL: {
        const uint32_t k = arch_slice(&m->am, l, n->w)->t->ne[0];
        ref_matvec_input(w->type, src, m->in, k);
        ref_matvec(w->data, m->in, n->acc ? m->tmp : dst, n->n, k);
        if (n->acc)
            for (uint32_t i = 0; i < n->n; i++)
                dst[i] += m->tmp[i];
        break;
    }
    case NODE_LORA_A: {
        const uint64_t slot = arch_slice(&m->am, l, n->w) - m->am.slices;
        const struct ref_tensor *a = &m->ad[n->lora].a[slot];
        if (!src) { /* token_embd's: the token's row of A */
            memcpy(dst, a->data + (uint64_t)token * n->n, n->n * sizeof *dst);
            break;
        }
        const uint32_t k = arch_slice(&m->am, l, n->w)->t->ne[0];
        ref_matvec_input(a->type, src, m->in, k);
        ref_matvec(a->data, m->in, dst, n->n, k);
        break;
    }
    case NODE_LORA_B: {
        const uint64_t slot = arch_slice(&m->am, l, n->w) - m->am.slices;
        const struct ref_tensor *bt = &m->ad[n->lora].b[slot];
        const uint32_t rank = m->ad[n->lora].rank[slot];
        ref_matvec_input(bt->type, src, m->in, rank);
        ref_matvec(bt->data, m->in, dst, n->n, rank);
        break;
    }
    case NODE_ELTWISE: ref_eltwise(n->sub, dst, src ? src : b, n->n, n->f); break;
    case NODE_ROPE: ref_rope(dst, m->table[n->sub], n->rows, n->n, hp->n_rot, hp->rope_neox); break;
    case NODE_KV_STORE:
        for (uint32_t i = 0; i < KV; i++) {
            const float k = m->bufs[BUF_K][i], v = m->bufs[BUF_V][i];
            kc[(uint64_t)m->pos * KV + i] = m->kv_f16 ? ref_round_f16(k) : k;
            vc[(uint64_t)m->pos * KV + i] = m->kv_f16 ? ref_round_f16(v) : v;
        }
        break;
    case NODE_ATTENTION: {
        struct attention_params p;
        graph_attention_params(&m->am, l, m->n_ctx, m->n_ctx, &p);
        ref_attention(src, kc, vc, dst, m->pos, &p);
        break;
    }
    }
}

int ref_model_decode(struct ref_model *m, int32_t token, float *logits, struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &m->am.hp;
    if (token < 0 || (uint32_t)token >= hp->n_vocab)
        return vkllm_fail(err, VKLLM_E_INVALID, "token %d out of range", token);
    if (m->pos >= m->n_ctx) return vkllm_fail(err, VKLLM_E_CONTEXT_FULL, "context full");
    for (uint32_t i = 0; i < m->am.layers.n_rope && hp->n_rot; i++)
        rope_table(&m->rope[i], m->table[i], 1, m->pos);
    for (uint32_t i = 0; i < m->graph.n_nodes; i++)
        run_node(m, &m->graph.nodes[i], token);
    memcpy(logits, m->bufs[BUF_LOGITS], hp->n_vocab * sizeof *logits);
    m->pos++;
    return VKLLM_OK;
}
