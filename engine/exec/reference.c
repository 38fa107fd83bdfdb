/* reference.c: the CPU forward pass, written as directly as llama2.c's. */
#include "reference.h"

#include "error.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Operations ============================== */

void ref_rms_norm(const float *x, const float *w, float *out, uint32_t n, float eps)
{
    double ss = 0.0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
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

void ref_matvec_input(uint32_t type, const float *x, float *out, uint32_t k)
{
    const enum quant_act act = quant_format(type) ? quant_format(type)->act : ACT_F32;
    if (act == ACT_Q8) {
        int8_t q[32];
        float d;
        for (uint32_t b = 0; b < k / 32; b++) {
            quant_q8_activations(x + 32 * b, q, &d, 32);
            for (int j = 0; j < 32; j++)
                out[32 * b + j] = d * q[j];
        }
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

void ref_swiglu(const float *gate, const float *up, float *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void ref_attention(const float *q, const float *k, const float *v, float *out, uint32_t n_pos,
                   uint32_t head_dim, uint32_t n_head, uint32_t n_head_kv)
{
    const uint32_t group = n_head / n_head_kv, kv_dim = n_head_kv * head_dim;
    const double scale = 1.0 / sqrt((double)head_dim);
    double *p = malloc(n_pos * sizeof *p);
    if (!p) abort(); /* reference code for tests: no recovery */
    for (uint32_t h = 0; h < n_head; h++) {
        const float *qh = q + h * head_dim;
        const uint32_t kvh = h / group;
        double max = -INFINITY, sum = 0.0;
        for (uint32_t j = 0; j < n_pos; j++) {
            const float *kj = k + (uint64_t)j * kv_dim + kvh * head_dim;
            double s = 0.0;
            for (uint32_t d = 0; d < head_dim; d++)
                s += (double)ref_round_f16(qh[d]) * kj[d];
            p[j] = s * scale;
            if (p[j] > max) max = p[j];
        }
        for (uint32_t j = 0; j < n_pos; j++)
            sum += (p[j] = exp(p[j] - max));
        for (uint32_t j = 0; j < n_pos; j++)
            p[j] = ref_round_f16((float)(p[j] / sum));
        for (uint32_t d = 0; d < head_dim; d++) {
            double acc = 0.0;
            for (uint32_t j = 0; j < n_pos; j++)
                acc += p[j] * v[(uint64_t)j * kv_dim + kvh * head_dim + d];
            out[h * head_dim + d] = (float)acc;
        }
    }
    free(p);
}

float ref_round_f16(float x)
{
    return fp16_to_f32(f32_to_fp16(x));
}

/* ============================== Model ============================== */

/* A matrix dequantized to floats, remembering its type for the input rounding. */
struct ref_matrix {
    float *w; /* rows as in the file: (out, in) */
    uint32_t type;
};

struct ref_layer {
    float *attn_norm, *ffn_norm; /* (n_embd) */
    struct ref_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
};

struct ref_model {
    struct vkllm_hparams hp;
    uint32_t n_ctx;
    bool kv_f16;
    uint32_t pos;
    float *tok_embd, *output_norm;
    struct ref_matrix output; /* output.w may equal tok_embd */
    float *rope_freqs;
    struct ref_layer *layers;
    /* run state */
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up, *ffn, *rope; /* one token */
    float *in;                /* a matvec's prepared input: (max(n_embd, q_dim, n_ff)) */
    float *k_cache, *v_cache; /* (n_layer, n_ctx, kv_dim) */
};

static float *dequant(tensor_ref t)
{
    uint64_t n = t->ne[0] * t->ne[1];
    float *f = malloc(n * sizeof *f);
    if (!f) return NULL;
    uint64_t row = quant_row_bytes(t->type, t->ne[0]);
    for (uint64_t r = 0; r < t->ne[1]; r++)
        quant_dequantize_row(t->type, t->data + r * row, f + r * t->ne[0], t->ne[0]);
    return f;
}

static bool matrix(tensor_ref t, struct ref_matrix *m)
{
    m->type = t->type;
    return (m->w = dequant(t)) != NULL;
}

/* y = W x, with x prepared as the weight's type asks. */
static void matvec(struct ref_model *m, const struct ref_matrix *w, const float *x, float *y,
                   uint32_t n, uint32_t k)
{
    ref_matvec_input(w->type, x, m->in, k);
    ref_matvec(w->w, m->in, y, n, k);
}

int ref_model_create(const vkllm_gguf *g, uint32_t n_ctx, bool kv_f16, struct ref_model **out,
                     struct vkllm_error *err)
{
    *out = NULL;
    struct ref_model *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    struct llama_tensors t = {0};
    int rc = llama_read_hparams(g, &m->hp, err);
    if (!rc) rc = llama_bind_tensors(g, &m->hp, &t, err);
    if (rc) {
        free(m);
        return rc;
    }
    const struct vkllm_hparams *hp = &m->hp;
    m->n_ctx = n_ctx ? n_ctx : hp->n_ctx_train;
    m->kv_f16 = kv_f16;
    const uint64_t Q = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    bool ok = (m->tok_embd = dequant(t.tok_embd)) && (m->output_norm = dequant(t.output_norm)) &&
              (m->layers = calloc(hp->n_layer, sizeof *m->layers));
    if (ok && hp->tied_output)
        m->output = (struct ref_matrix){m->tok_embd, t.tok_embd->type};
    else if (ok)
        ok = matrix(t.output, &m->output);
    if (ok && t.rope_freqs) ok = (m->rope_freqs = dequant(t.rope_freqs)) != NULL;
    for (uint32_t l = 0; ok && l < hp->n_layer; l++) {
        struct ref_layer *L = &m->layers[l];
        const struct llama_layer_tensors *T = &t.layers[l];
        ok = (L->attn_norm = dequant(T->attn_norm)) && (L->ffn_norm = dequant(T->ffn_norm));
#define LOAD(name) ok = ok && matrix(T->name, &L->name);
        LAYER_MATRICES(LOAD)
#undef LOAD
    }
    ok = ok && (m->x = calloc(hp->n_embd, 4)) && (m->xn = calloc(hp->n_embd, 4)) &&
         (m->q = calloc(Q, 4)) && (m->k = calloc(KV, 4)) && (m->v = calloc(KV, 4)) &&
         (m->att = calloc(Q, 4)) && (m->tmp = calloc(hp->n_embd, 4)) &&
         (m->gate = calloc(hp->n_ff, 4)) && (m->up = calloc(hp->n_ff, 4)) &&
         (m->ffn = calloc(hp->n_ff, 4)) && (m->rope = calloc(hp->n_rot, 4)) &&
         (m->in = calloc(Q > hp->n_ff ? (Q > hp->n_embd ? Q : hp->n_embd)
                                      : (hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd),
                         4)) &&
         (m->k_cache = calloc((uint64_t)hp->n_layer * m->n_ctx * KV, 4)) &&
         (m->v_cache = calloc((uint64_t)hp->n_layer * m->n_ctx * KV, 4));
    llama_tensors_free(&t);
    if (!ok) {
        ref_model_free(m);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory for the reference model");
    }
    *out = m;
    return VKLLM_OK;
}

void ref_model_free(struct ref_model *m)
{
    if (!m) return;
    if (m->layers) {
        for (uint32_t l = 0; l < m->hp.n_layer; l++) {
            struct ref_layer *L = &m->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
#define FREE(name) free(L->name.w);
            LAYER_MATRICES(FREE)
#undef FREE
        }
        free(m->layers);
    }
    if (m->output.w != m->tok_embd) free(m->output.w);
    free(m->in);
    float *ps[] = {m->tok_embd, m->output_norm, m->rope_freqs, m->x,      m->xn,   m->q,
                   m->k,        m->v,           m->att,        m->tmp,    m->gate, m->up,
                   m->ffn,      m->rope,        m->k_cache,    m->v_cache};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        free(ps[i]);
    free(m);
}

const struct vkllm_hparams *ref_model_hparams(const struct ref_model *m)
{
    return &m->hp;
}
void ref_model_reset(struct ref_model *m)
{
    m->pos = 0;
}

int ref_model_decode(struct ref_model *m, int32_t token, float *logits, struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &m->hp;
    if (token < 0 || (uint32_t)token >= hp->n_vocab)
        return vkllm_fail(err, VKLLM_E_INVALID, "token %d out of range", token);
    if (m->pos >= m->n_ctx) return vkllm_fail(err, VKLLM_E_CONTEXT_FULL, "context full");
    const uint32_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
    const uint32_t Q = hp->n_head * hd, KV = hp->n_head_kv * hd;

    memcpy(m->x, m->tok_embd + (uint64_t)token * E, E * sizeof(float));
    llama_rope_table(hp, m->rope_freqs, m->rope, 1, m->pos);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct ref_layer *L = &m->layers[l];
        float *kc = m->k_cache + (uint64_t)l * m->n_ctx * KV;
        float *vc = m->v_cache + (uint64_t)l * m->n_ctx * KV;

        ref_rms_norm(m->x, L->attn_norm, m->xn, E, hp->rms_eps);
        matvec(m, &L->wq, m->xn, m->q, Q, E);
        matvec(m, &L->wk, m->xn, m->k, KV, E);
        matvec(m, &L->wv, m->xn, m->v, KV, E);
        ref_rope(m->q, m->rope, hp->n_head, hd, hp->n_rot, hp->rope_neox);
        ref_rope(m->k, m->rope, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox);
        for (uint32_t i = 0; i < KV; i++) {
            kc[(uint64_t)m->pos * KV + i] = m->kv_f16 ? ref_round_f16(m->k[i]) : m->k[i];
            vc[(uint64_t)m->pos * KV + i] = m->kv_f16 ? ref_round_f16(m->v[i]) : m->v[i];
        }
        ref_attention(m->q, kc, vc, m->att, m->pos + 1, hd, hp->n_head, hp->n_head_kv);
        matvec(m, &L->wo, m->att, m->tmp, E, Q);
        for (uint32_t i = 0; i < E; i++)
            m->x[i] += m->tmp[i];

        ref_rms_norm(m->x, L->ffn_norm, m->xn, E, hp->rms_eps);
        matvec(m, &L->w_gate, m->xn, m->gate, F, E);
        matvec(m, &L->w_up, m->xn, m->up, F, E);
        ref_swiglu(m->gate, m->up, m->ffn, F);
        matvec(m, &L->w_down, m->ffn, m->tmp, E, F);
        for (uint32_t i = 0; i < E; i++)
            m->x[i] += m->tmp[i];
    }
    ref_rms_norm(m->x, m->output_norm, m->xn, E, hp->rms_eps);
    matvec(m, &m->output, m->xn, logits, hp->n_vocab, E);
    m->pos++;
    return VKLLM_OK;
}
