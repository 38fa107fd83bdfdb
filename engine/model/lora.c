/* lora.c: loading LoRA adapters as llama.cpp's llama_adapter_lora_init
 * does: general.type "adapter", adapter.type "lora", the model's
 * architecture, and tensors NAME.lora_a / NAME.lora_b for the model's NAME
 * (norm vectors, "*_norm.weight", are skipped as llama.cpp skips them). Every
 * pair is checked against the model before anything is uploaded. */
#include "lora.h"

#include "budget.h"
#include "error.h"
#include "model.h"
#include "quant.h"
#include "shown.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Binding ============================== */

static bool ends_with(struct vkllm_gguf_str s, const char *suffix)
{
    const size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

/* The string key KEY of G must be WANT. */
static int check_str(const vkllm_gguf *g, const char *key, const char *want, const char *what_else,
                     struct vkllm_error *err)
{
    const char *path = vkllm_gguf_name(g);
    struct vkllm_gguf_str v;
    int rc = vkllm_gguf_get_str(g, key, &v, err);
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: not a LoRA adapter (no %s key%s)", path, key,
                          what_else);
    if (rc) return rc;
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0) {
        char s[SHOWN_MAX];
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: not a LoRA adapter (%s is \"%s\", not \"%s\"%s)", path, key,
                          shown(s, v.ptr, v.len), want, what_else);
    }
    return VKLLM_OK;
}

static bool lora_type(uint32_t t)
{
    return t == VKLLM_TYPE_F32 || t == VKLLM_TYPE_F16 || t == VKLLM_TYPE_Q8_0;
}

/* Checks the pair A, B for the model's tensor W named NAME (W NULL: no
 * model at hand, the checks that need none). */
static int check_pair(const char *path, const char *name, tensor_ref w, tensor_ref a, tensor_ref b,
                      bool embd, uint32_t width, struct vkllm_error *err)
{
    const tensor_ref ab[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const char *which = i ? "lora_b" : "lora_a";
        if (ab[i]->n_dims > 2)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s.%s has %u dimensions, not 2", path, name,
                              which, ab[i]->n_dims);
        if (!lora_type(ab[i]->type)) {
            const struct vkllm_type_info *ti = vkllm_type_info(ab[i]->type);
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: %s.%s is %s; adapters may be F32, F16 or Q8_0", path, name,
                              which, ti ? ti->name : "of an unknown type");
        }
    }
    const unsigned long long a0 = a->ne[0], a1 = a->ne[1], b0 = b->ne[0], b1 = b->ne[1];
    const unsigned long long k = w ? w->ne[0] : 0, n = w ? w->ne[1] : 0;
    if (w && embd) { /* A (rank, n_vocab), B (rank, n_embd): flipped, as llama.cpp's inp_embd */
        if (a1 != n)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: %s.lora_a is %llux%llu, the model's %s needs rank x %llu", path,
                              name, a0, a1, name, n);
        if (b1 != k)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: %s.lora_b is %llux%llu, the model's %s needs rank x %llu", path,
                              name, b0, b1, name, k);
    } else if (w) {
        if (a0 != k)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: %s.lora_a is %llux%llu, the model's %s needs %llu x rank", path,
                              name, a0, a1, name, k);
        if (b1 != n)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: %s.lora_b is %llux%llu, the model's %s needs rank x %llu", path,
                              name, b0, b1, name, n);
    }
    const unsigned long long rank_a = embd ? a0 : a1;
    if (rank_a != b0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: %s.lora_a has rank %llu but %s.lora_b has %llu (lora_a must be "
                          "stored transposed, as llama.cpp's convert_lora_to_gguf.py writes it)",
                          path, name, rank_a, name, b0);
    /* the rank-wide scratch and its quantized copy are sized by the model's width */
    if (b0 == 0 || (w && b0 > width)) {
        char upto[48] = "";
        if (w) snprintf(upto, sizeof upto, " to the model's width %u", width);
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: %s has rank %llu; ranks from 1%s are supported", path, name, b0,
                          upto);
    }
    return VKLLM_OK;
}

/* Binds the pair NAME.lora_a / NAME.lora_b (NAME being LEN bytes at P). */
static int bind_pair(const struct arch_model *am, const vkllm_gguf *base, const vkllm_gguf *ad,
                     const char *p, size_t len, struct lora_binding *out, struct vkllm_error *err)
{
    const char *path = vkllm_gguf_name(ad);
    char name[256], key[256 + 8], s[SHOWN_MAX];
    if (len >= sizeof name)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: %s.lora_a: the name is too long for a model's "
                          "tensor",
                          path, shown(s, p, len));
    memcpy(name, p, len);
    name[len] = '\0';
    snprintf(key, sizeof key, "%s.lora_a", name);
    tensor_ref a = vkllm_gguf_find_tensor(ad, key);
    snprintf(key, sizeof key, "%s.lora_b", name);
    tensor_ref b = vkllm_gguf_find_tensor(ad, key);
    if (!a || !b)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s.%s has no %s.%s beside it", path,
                          shown(s, p, len), a ? "lora_a" : "lora_b", shown(s, p, len),
                          a ? "lora_b" : "lora_a");
    uint32_t found = 0;
    tensor_ref w = NULL;
    if (!am) { /* no model: the pair alone */
        int rc = check_pair(path, name, NULL, a, b, !strcmp(name, "token_embd.weight"), 0, err);
        if (rc) return rc;
        found = 1;
    } else if (!(w = vkllm_gguf_find_tensor(base, name))) {
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: %s.lora_a adapts %s, which the model %s does not have (an adapter "
                          "for another model?)",
                          path, shown(s, p, len), shown(s, p, len), vkllm_gguf_name(base));
    }
    /* the slices the model cut from W (one, or q/k/v of a fused attn_qkv) */
    const uint64_t slots = am ? arch_slot_count(am) : 0;
    for (uint64_t i = 0; i < slots; i++) {
        const struct tensor_slice *sl = &am->slices[i];
        const enum tensor_role role = arch_slot_role(am, i);
        if (sl->t != w || !arch_role_is_matrix(role)) continue;
        if (role == T_POS_EMBD)
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: %s: adapters of position embeddings are not supported (nor "
                              "by llama.cpp)",
                              path, shown(s, p, len));
        const bool embd = role == T_TOK_EMBD;
        if (embd && am->hp.tied_output)
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: %s: the model's output matrix is token_embd too, and an "
                              "adapter of it cannot apply to both (llama.cpp refuses it as well)",
                              path, shown(s, p, len));
        if (role == T_OUTPUT && am->hp.tied_output) continue; /* token_embd's own slot above */
        int rc = check_pair(path, name, w, a, b, embd, am->hp.n_embd, err);
        if (rc) return rc;
        out->pairs[i] = (struct lora_pair){
            .a = a,
            .b = b,
            .b_first = embd ? 0 : sl->first,
            .b_count = embd ? b->ne[1] : sl->count,
            .rank = (uint32_t)b->ne[0],
        };
        found++;
    }
    if (!found)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: %s is not a matrix an adapter can change (attention, feed-forward, "
                          "token_embd or output weights)",
                          path, shown(s, p, len));
    const uint32_t rank = (uint32_t)b->ne[0];
    if (!out->n_tensors || rank < out->rank_min) out->rank_min = rank;
    if (rank > out->rank_max) out->rank_max = rank;
    out->n_tensors++;
    return VKLLM_OK;
}

int lora_bind(const struct arch_model *am, const vkllm_gguf *base, const vkllm_gguf *ad,
              struct lora_binding *out, struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    const char *path = vkllm_gguf_name(ad);
    int rc = check_str(ad, "general.type", "adapter", "", err);
    if (!rc) rc = check_str(ad, "adapter.type", "lora", "", err);
    if (rc) return rc;
    struct vkllm_gguf_str arch;
    if ((rc = vkllm_gguf_get_str(ad, "general.architecture", &arch, err)) == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: no general.architecture key", path);
    if (rc) return rc;
    if (am &&
        (arch.len != strlen(am->arch->name) || memcmp(arch.ptr, am->arch->name, arch.len) != 0)) {
        char s[SHOWN_MAX];
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: an adapter for %s, but the model is %s", path,
                          shown(s, arch.ptr, arch.len), am->arch->name);
    }
    double alpha = 0.0;
    rc = vkllm_gguf_get_float(ad, "adapter.lora.alpha", &alpha, err);
    if (rc && rc != VKLLM_E_NOT_FOUND) return rc;
    rc = VKLLM_OK; /* absent: 0, as llama.cpp reads it */
    if (!(alpha > -1e30 && alpha < 1e30))
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: adapter.lora.alpha is %g, must be a number of magnitude under 1e30",
                          path, alpha);
    out->alpha = (float)alpha;
    if (am && !(out->pairs = calloc(arch_slot_count(am), sizeof *out->pairs)))
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");

    /* every lora_a names a pair; a lora_b is checked from its lora_a's side */
    const uint64_t n = vkllm_gguf_tensor_count(ad);
    for (uint64_t i = 0; i < n && !rc; i++) {
        const struct vkllm_gguf_str name = vkllm_gguf_tensor_at(ad, i)->name;
        char s[SHOWN_MAX], key[SHOWN_MAX + 8];
        if (ends_with(name, ".lora_a")) {
            rc = bind_pair(am, base, ad, name.ptr, name.len - 7, out, err);
        } else if (ends_with(name, ".lora_b")) {
            snprintf(key, sizeof key, "%.*s.lora_a", (int)(name.len - 7), name.ptr);
            if (name.len - 7 > 250 || !vkllm_gguf_find_tensor(ad, key))
                rc = vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s has no .lora_a beside it", path,
                                shown(s, name.ptr, name.len));
        } else if (!ends_with(name, "_norm.weight")) {
            rc = vkllm_fail(err, VKLLM_E_FORMAT,
                            "%s: %s is not a LoRA tensor (their names end in .lora_a or .lora_b)",
                            path, shown(s, name.ptr, name.len));
        }
    }
    /* llama.cpp's factor is alpha / rank, and real adapters have an alpha of
     * the order of their rank (rank or twice it, 16 or 32): a factor beyond
     * 1024 is a broken file, whose logits would only overflow */
    if (!rc && out->n_tensors && fabs(alpha) > 1024.0 * out->rank_max)
        rc = vkllm_fail(err, VKLLM_E_FORMAT,
                        "%s: adapter.lora.alpha is %g; vkllm accepts at most 1024 times the rank "
                        "(%u here), as adapters have an alpha of the order of their rank",
                        path, alpha, out->rank_max);
    if (rc) lora_binding_free(out);
    return rc;
}

void lora_binding_free(struct lora_binding *b)
{
    free(b->pairs);
    memset(b, 0, sizeof *b);
}

/* ============================== On the device ============================== */

/* Reads every A and B of G and refuses a NaN or an infinity: it would make
 * every logit NaN, which the session only reports later and cannot pin on
 * the adapter. The bytes are read again to upload them (an adapter is small
 * beside its model). */
static int check_finite(const vkllm_gguf *g, struct vkllm_error *err)
{
    const uint64_t max_chunk = 1u << 20;
    uint8_t *buf = NULL;
    uint64_t cap = 0;
    int rc = VKLLM_OK;
    const uint64_t n = vkllm_gguf_tensor_count(g);
    for (uint64_t i = 0; i < n && !rc; i++) {
        tensor_ref t = vkllm_gguf_tensor_at(g, i);
        if (!ends_with(t->name, ".lora_a") && !ends_with(t->name, ".lora_b")) continue;
        /* whole rows at a time, so that a chunk is whole blocks (a row
         * that is not, which the reader refuses anyway, is read whole) */
        const uint64_t row = quant_row_bytes(t->type, t->ne[0]);
        const uint64_t chunk = !row ? t->size : row >= max_chunk ? row : max_chunk / row * row;
        if (chunk > cap) {
            free(buf);
            cap = 0;
            if (!(buf = malloc(chunk))) {
                rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
                break;
            }
            cap = chunk;
        }
        for (uint64_t at = 0; at < t->size && !rc; at += chunk) {
            const uint64_t len = t->size - at < chunk ? t->size - at : chunk;
            rc = vkllm_gguf_read(g, t, at, buf, len, err);
            if (!rc && !quant_bytes_finite(t->type, buf, len)) {
                char s[SHOWN_MAX];
                rc = vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s holds NaN or infinite values",
                                vkllm_gguf_name(g), shown(s, t->name.ptr, t->name.len));
            }
        }
    }
    free(buf);
    return rc;
}

int vkllm_adapter_load(vkllm_model *m, const char *path, vkllm_adapter **out,
                       struct vkllm_error *err)
{
    *out = NULL;
    struct vkllm_adapter *a = calloc(1, sizeof *a);
    if (!a) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    a->m = m;
    vkllm_gguf *g = NULL;
    struct lora_binding bind = {0};
    struct gpu_uploader up = {0};
    struct vk_device *dev = &m->ctx->dev;
    const uint64_t slots = arch_slot_count(&m->am);
    int rc = (a->name = strdup(path)) && (a->w = calloc(slots, sizeof *a->w)) &&
                     (a->rank = calloc(slots, sizeof *a->rank))
                 ? VKLLM_OK
                 : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    if (!rc) rc = vkllm_gguf_open(path, &g, err);
    struct adapter_plan plan;
    if (!rc) rc = lora_bind(&m->am, m->gguf, g, &bind, err);
    /* nothing is uploaded before the adapter is known to fit beside what
     * the model, its sessions and other adapters hold */
    if (!rc) rc = budget_adapter(bind.pairs, slots, &dev->info, &plan, err);
    if (!rc) rc = budget_check_adapter(path, &plan, dev, err);
    if (!rc) rc = check_finite(g, err);
    if (rc) goto done;
    a->alpha = bind.alpha;
    a->n_tensors = bind.n_tensors;
    a->rank_min = bind.rank_min;
    a->rank_max = bind.rank_max;

    if (!plan.bytes) goto done; /* an adapter of nothing, as llama.cpp accepts */
    gpu_pool_init(&a->pool, dev, GPU_POOL_DEVICE, plan.block);
    if ((rc = gpu_uploader_create(&up, dev, plan.staging, err))) goto done;
    for (uint64_t i = 0; i < slots && !rc; i++) {
        const struct lora_pair *p = &bind.pairs[i];
        if (!p->a) continue;
        rc = gpu_weight_upload_tensor(&up, &a->pool, g, p->a, 0, p->a->ne[1], 0, &a->w[i].a, err);
        if (!rc)
            rc = gpu_weight_upload_tensor(&up, &a->pool, g, p->b, p->b_first, p->b_count, 0,
                                          &a->w[i].b, err);
        a->rank[i] = p->rank;
    }
    gpu_uploader_destroy(&up);
    if (rc && rc != VKLLM_E_IO) {
        char what[1024];
        snprintf(what, sizeof what, "%s: uploading the adapter", path);
        vkllm_error_prefix(err, what);
    }
    a->bytes = a->pool.allocated;
done:
    lora_binding_free(&bind);
    vkllm_gguf_close(g);
    if (rc) {
        vkllm_adapter_free(a);
        return rc;
    }
    *out = a;
    return VKLLM_OK;
}

int vkllm_adapter_check(const vkllm_gguf *model, const vkllm_gguf *adapter, struct vkllm_error *err)
{
    struct arch_model am = {0};
    struct lora_binding bind;
    int rc = model ? arch_bind(model, &am, err) : VKLLM_OK;
    if (!rc) rc = lora_bind(model ? &am : NULL, model, adapter, &bind, err);
    if (!rc) {
        lora_binding_free(&bind);
        rc = check_finite(adapter, err);
    }
    if (model) arch_model_free(&am);
    return rc;
}

void vkllm_adapter_free(vkllm_adapter *a)
{
    if (!a) return;
    if (a->w) {
        const uint64_t slots = arch_slot_count(&a->m->am);
        for (uint64_t i = 0; i < slots; i++) {
            gpu_weight_free(&a->w[i].a);
            gpu_weight_free(&a->w[i].b);
        }
        free(a->w);
    }
    free(a->rank);
    gpu_pool_destroy(&a->pool);
    free(a->name);
    free(a);
}

void vkllm_adapter_describe(const vkllm_adapter *a, struct vkllm_adapter_info *out)
{
    *out = (struct vkllm_adapter_info){
        .alpha = a->alpha,
        .n_tensors = a->n_tensors,
        .rank_min = a->rank_min,
        .rank_max = a->rank_max,
        .bytes = a->bytes,
    };
}
