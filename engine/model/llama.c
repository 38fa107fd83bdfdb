/* llama.c: hyperparameters and strict weight binding for the llama architecture. */
#include "llama.h"

#include "kernels.h" /* MAX_HEAD_DIM: the attention kernel's shared arrays */
#include "error.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Hyperparameters ============================== */

static int get_u32(const vkllm_gguf *g, const char *key, bool required, uint32_t fallback,
                   uint32_t *out, struct vkllm_error *err)
{
    uint64_t v;
    int rc = vkllm_gguf_get_uint(g, key, &v, err);
    if (rc == VKLLM_E_NOT_FOUND) {
        if (required)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing metadata key %s",
                              vkllm_gguf_name(g), key);
        *out = fallback;
        return VKLLM_OK;
    }
    if (rc) return rc;
    if (v > (1u << 24))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %llu is out of range", vkllm_gguf_name(g),
                          key, (unsigned long long)v);
    *out = (uint32_t)v;
    return VKLLM_OK;
}

static int get_f32(const vkllm_gguf *g, const char *key, float fallback, float *out,
                   struct vkllm_error *err)
{
    double v;
    int rc = vkllm_gguf_get_float(g, key, &v, err);
    if (rc == VKLLM_E_NOT_FOUND) {
        *out = fallback;
        return VKLLM_OK;
    }
    if (rc) return rc;
    if (!isfinite(v) || v <= 0)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %g must be positive", vkllm_gguf_name(g),
                          key, v);
    *out = (float)v;
    return VKLLM_OK;
}

int llama_read_hparams(const vkllm_gguf *g, struct vkllm_hparams *hp, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    memset(hp, 0, sizeof *hp);
    struct vkllm_gguf_str arch;
    int rc = vkllm_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing general.architecture", name);
    if (rc) return rc;
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5))
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: architecture '%.*s' is not supported yet (llama only)", name,
                          (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);

    uint32_t experts = 0, key_len = 0, value_len = 0, window = 0;
    if ((rc = get_u32(g, "llama.embedding_length", true, 0, &hp->n_embd, err)) ||
        (rc = get_u32(g, "llama.block_count", true, 0, &hp->n_layer, err)) ||
        (rc = get_u32(g, "llama.attention.head_count", true, 0, &hp->n_head, err)) ||
        (rc =
             get_u32(g, "llama.attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err)) ||
        (rc = get_u32(g, "llama.feed_forward_length", true, 0, &hp->n_ff, err)) ||
        (rc = get_u32(g, "llama.context_length", false, 2048, &hp->n_ctx_train, err)) ||
        (rc = get_u32(g, "llama.attention.key_length", false, 0, &key_len, err)) ||
        (rc = get_u32(g, "llama.attention.value_length", false, 0, &value_len, err)) ||
        (rc = get_u32(g, "llama.expert_count", false, 0, &experts, err)) ||
        (rc = get_u32(g, "llama.attention.sliding_window", false, 0, &window, err)) ||
        (rc = get_f32(g, "llama.rope.freq_base", 10000.0f, &hp->rope_freq_base, err)) ||
        (rc = get_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err)))
        return rc;

    if (experts > 0)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: mixture-of-experts models are not supported yet", name);
    if (window > 0)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: sliding-window attention is not supported yet", name);
    struct vkllm_gguf_str scaling;
    if (vkllm_gguf_get_str(g, "llama.rope.scaling.type", &scaling, NULL) == VKLLM_OK &&
        !(scaling.len == 4 && !memcmp(scaling.ptr, "none", 4)))
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported yet",
                          name, (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);

    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0 || hp->n_head_kv == 0 ||
        hp->n_ff == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: embedding length, blocks, heads and FFN length must be nonzero",
                          name);
    if (hp->n_head % hp->n_head_kv)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %u heads is not a multiple of %u KV heads",
                          name, hp->n_head, hp->n_head_kv);
    if (key_len && value_len && key_len != value_len)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: key length %u differs from value length %u", name, key_len,
                          value_len);
    if (!key_len && hp->n_embd % hp->n_head)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: embedding length %u is not a multiple of %u heads", name, hp->n_embd,
                          hp->n_head);
    hp->head_dim = key_len ? key_len : hp->n_embd / hp->n_head;
    if (hp->head_dim % 2 || hp->head_dim > MAX_HEAD_DIM)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: head size %u is not supported (even, at most 256)", name,
                          hp->head_dim);
    if ((rc = get_u32(g, "llama.rope.dimension_count", false, hp->head_dim, &hp->n_rot, err)))
        return rc;
    if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || hp->n_rot == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: rope dimension count %u must be even and at most the head size %u",
                          name, hp->n_rot, hp->head_dim);
    hp->rope_neox = false; /* llama rotates adjacent pairs */
    return VKLLM_OK;
}

/* ============================== Weights ============================== */

static void shape_text(char *buf, size_t cap, const uint64_t *ne, uint32_t n_dims)
{
    size_t used = 0;
    for (uint32_t i = 0; i < n_dims && used < cap; i++) {
        int n =
            snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "[", (unsigned long long)ne[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* The formats vkllm runs, for error messages: "F32, F16, ..." into NAMES. */
static const char *supported_names(char *names, size_t cap)
{
    size_t used = 0;
    names[0] = '\0';
    for (uint32_t i = 0; i < quant_format_count && used < cap; i++)
        used += (size_t)snprintf(names + used, cap - used, "%s%s", i ? ", " : "",
                                 quant_formats[i].name);
    return names;
}

/* Binds NAME, expecting N_DIMS dimensions NE0 (, NE1). A matrix must have a
 * type the shaders read; a vector is converted to float at upload. */
static int bind(const vkllm_gguf *g, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                bool optional, tensor_ref *out, struct vkllm_error *err)
{
    *out = vkllm_gguf_find_tensor(g, name);
    if (!*out) {
        if (optional) return VKLLM_OK;
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor %s", vkllm_gguf_name(g), name);
    }
    const struct vkllm_gguf_tensor *t = *out;
    uint64_t want[4] = {ne0, ne1, 1, 1};
    bool ok = true;
    for (int i = 0; i < 4; i++)
        ok = ok && t->ne[i] == want[i];
    if (!ok) {
        char have[96], expect[96];
        shape_text(have, sizeof have, t->ne, t->n_dims);
        shape_text(expect, sizeof expect, want, n_dims);
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tensor %s has shape %s, expected %s",
                          vkllm_gguf_name(g), name, have, expect);
    }
    if (!quant_supported(t->type)) {
        const struct vkllm_type_info *ti = vkllm_type_info(t->type);
        char names[256];
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: tensor %s has type %s, which vkllm does not run yet (supported: "
                          "%s)",
                          vkllm_gguf_name(g), name, ti ? ti->name : "?",
                          supported_names(names, sizeof names));
    }
    return VKLLM_OK;
}

int llama_bind_tensors(const vkllm_gguf *g, struct vkllm_hparams *hp, struct llama_tensors *t,
                       struct vkllm_error *err)
{
    memset(t, 0, sizeof *t);
    const struct vkllm_gguf_tensor *emb = vkllm_gguf_find_tensor(g, "token_embd.weight");
    if (!emb)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor token_embd.weight",
                          vkllm_gguf_name(g));
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 24))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: token_embd.weight has %llu rows",
                          vkllm_gguf_name(g), (unsigned long long)emb->ne[1]);
    hp->n_vocab = (uint32_t)emb->ne[1];

    const uint64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff;
    const uint64_t Q = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    int rc;
    if ((rc = bind(g, "token_embd.weight", 2, E, V, false, &t->tok_embd, err)) ||
        (rc = bind(g, "output_norm.weight", 1, E, 1, false, &t->output_norm, err)) ||
        (rc = bind(g, "output.weight", 2, E, V, true, &t->output, err)) ||
        (rc = bind(g, "rope_freqs.weight", 1, hp->n_rot / 2, 1, true, &t->rope_freqs, err)))
        return rc;
    hp->tied_output = t->output == NULL;
    if (hp->tied_output) t->output = t->tok_embd;
    if (t->rope_freqs && t->rope_freqs->type != VKLLM_TYPE_F32)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: rope_freqs.weight must be F32",
                          vkllm_gguf_name(g));

    t->layers = calloc(hp->n_layer, sizeof *t->layers);
    if (!t->layers) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        struct llama_layer_tensors *L = &t->layers[l];
        struct {
            const char *suffix;
            uint32_t n_dims;
            uint64_t ne0, ne1;
            tensor_ref *out;
        } want[] = {
            {"attn_norm", 1, E, 1, &L->attn_norm}, {"attn_q", 2, E, Q, &L->wq},
            {"attn_k", 2, E, KV, &L->wk},          {"attn_v", 2, E, KV, &L->wv},
            {"attn_output", 2, Q, E, &L->wo},      {"ffn_norm", 1, E, 1, &L->ffn_norm},
            {"ffn_gate", 2, E, F, &L->w_gate},     {"ffn_up", 2, E, F, &L->w_up},
            {"ffn_down", 2, F, E, &L->w_down},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, want[i].suffix);
            rc = bind(g, name, want[i].n_dims, want[i].ne0, want[i].ne1, false, want[i].out, err);
            if (rc) {
                llama_tensors_free(t);
                return rc;
            }
        }
    }
    return VKLLM_OK;
}

void llama_tensors_free(struct llama_tensors *t)
{
    if (!t) return;
    free(t->layers);
    memset(t, 0, sizeof *t);
}

void llama_rope_table(const struct vkllm_hparams *hp, const float *freq_factors, float *table,
                      uint32_t n_tokens, uint32_t pos0)
{
    const uint32_t pairs = hp->n_rot / 2;
    const float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    for (uint32_t t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        for (uint32_t i = 0; i < pairs; i++) {
            const float th = freq_factors ? theta / freq_factors[i] : theta;
            table[(t * pairs + i) * 2 + 0] = cosf(th);
            table[(t * pairs + i) * 2 + 1] = sinf(th);
            theta *= theta_scale;
        }
    }
}
