/* model.c: loading a GGUF model: metadata, tokenizer, and weights uploaded to
 * the device with a progress report. */
#include "model.h"

#include "budget.h"
#include "quant.h"
#include "shown.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loader {
    struct vkllm_model *m;
    struct gpu_uploader up;
    const struct vkllm_model_params *params;
    uint64_t done, total;
};

static void progress(struct loader *ld, uint64_t bytes)
{
    ld->done += bytes;
    if (ld->params && ld->params->progress)
        ld->params->progress(ld->total ? (float)ld->done / (float)ld->total : 1.0f,
                             ld->params->user);
}

/* Uploads the slice of ROLE in LAYER. */
static int load_tensor(struct loader *ld, uint32_t layer, enum tensor_role role,
                       struct vkllm_error *err)
{
    struct vkllm_model *m = ld->m;
    const struct tensor_slice *s = arch_slice(&m->am, layer, role);
    struct gpu_tensor *out = &m->tensors[s - m->am.slices];
    tensor_ref t = s->t;
    if (!t || (role == T_OUTPUT && m->hp.tied_output)) return VKLLM_OK;
    int rc;
    uint64_t bytes;
    if (arch_role_is_matrix(role)) {
        bytes = quant_row_bytes(t->type, t->ne[0]) * s->count;
        rc = gpu_weight_upload_tensor(&ld->up, &m->pool, m->gguf, t, s->first, s->count, 0,
                                      &out->mat, err);
    } else {
        /* a vector (or a row of vectors) is converted to floats on the host */
        const uint64_t nel = t->ne[0] * t->ne[1];
        float *f = malloc(nel * sizeof *f);
        void *raw = malloc(t->size ? t->size : 1);
        rc = f && raw ? vkllm_gguf_read(m->gguf, t, 0, raw, t->size, err)
                      : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        if (!rc) {
            quant_dequantize_row(t->type, raw, f, nel);
            rc = gpu_upload_floats(&ld->up, &m->pool, f + s->first, s->count, &out->vec, err);
        }
        bytes = quant_row_bytes(t->type, s->count);
        free(raw);
        free(f);
    }
    if (rc == VKLLM_E_IO) return rc; /* the file's error: it names the file */
    if (rc) {
        char what[128 + SHOWN_MAX], name[SHOWN_MAX];
        snprintf(what, sizeof what, "%s: %s", vkllm_gguf_name(m->gguf),
                 shown(name, t->name.ptr, t->name.len));
        vkllm_error_prefix(err, what);
        return rc;
    }
    progress(ld, bytes);
    return VKLLM_OK;
}

static int upload(struct loader *ld, struct vkllm_error *err)
{
    struct vkllm_model *m = ld->m;
    const uint64_t n_slots = arch_slot_count(&m->am);
    m->tensors = calloc(n_slots, sizeof *m->tensors);
    if (!m->tensors) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    int rc;
    for (int r = T_MODEL_FIRST; r < T_COUNT; r++)
        if ((rc = load_tensor(ld, 0, (enum tensor_role)r, err))) return rc;
    if (m->hp.tied_output)
        *(struct gpu_tensor *)model_tensor(m, 0, T_OUTPUT) = *model_tensor(m, 0, T_TOK_EMBD);
    for (uint32_t l = 0; l < m->hp.n_layer; l++)
        for (int r = 0; r < T_LAYER_COUNT; r++)
            if ((rc = load_tensor(ld, l, (enum tensor_role)r, err))) return rc;
    return VKLLM_OK;
}

int vkllm_model_load(vkllm_context *ctx, const char *path, const struct vkllm_model_params *params,
                     vkllm_model **out, struct vkllm_error *err)
{
    *out = NULL;
    struct vkllm_model *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    m->ctx = ctx;
    struct loader ld = {.m = m, .params = params};
    const struct vkllm_device_info *info = &ctx->dev.info;

    int rc = vkllm_gguf_open(path, &m->gguf, err);
    if (!rc) rc = arch_bind(m->gguf, &m->am, err);
    if (!rc) m->hp = m->am.hp;
    if (!rc) rc = vkllm_vocab_load(m->gguf, &m->vocab, err);
    if (!rc && vkllm_vocab_n_tokens(m->vocab) != (int32_t)m->hp.n_vocab)
        rc = vkllm_fail(err, VKLLM_E_FORMAT,
                        "%s: the tokenizer has %d tokens but token_embd.weight has %u rows", path,
                        vkllm_vocab_n_tokens(m->vocab), m->hp.n_vocab);
    if (rc) goto fail;

    /* nothing is allocated before the whole model is known to fit */
    struct weight_plan plan;
    if ((rc = budget_weights(&m->am, info, &plan, err)) ||
        (rc = budget_check_model(path, &m->am, m->gguf, &ctx->dev, params, err)))
        goto fail;
    ld.total = arch_device_bytes(&m->am);
    gpu_pool_init(&m->pool, &ctx->dev, GPU_POOL_DEVICE, plan.block);
    if ((rc = gpu_uploader_create(&ld.up, &ctx->dev, plan.staging, err))) {
        char what[1024];
        snprintf(what, sizeof what, "%s: the staging buffer", path);
        vkllm_error_prefix(err, what);
        goto fail;
    }
    rc = upload(&ld, err);
    gpu_uploader_destroy(&ld.up);
    if (rc && err) {
        /* what was uploaded goes with the model, below; but on a device whose
         * work may still run (a wait timed out) the pools leave it allocated */
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len, " (after %.1f of %.1f MiB of weights; %s)",
                 ld.done / 1048576.0, ld.total / 1048576.0,
                 ctx->dev.hung ? "the device may still be using its memory, so that is left "
                                 "allocated until the program ends"
                               : "all of it freed");
    }
    if (rc) goto fail;
    m->weight_bytes = m->pool.allocated;
    *out = m;
    return VKLLM_OK;
fail:
    vkllm_model_free(m);
    return rc;
}

void vkllm_model_free(vkllm_model *m)
{
    if (!m) return;
    if (m->tensors) {
        const uint64_t n_slots = arch_slot_count(&m->am);
        struct gpu_tensor *out = (struct gpu_tensor *)model_tensor(m, 0, T_OUTPUT);
        if (m->hp.tied_output) out->mat = (struct gpu_weight){0}; /* token_embd's */
        for (uint64_t i = 0; i < n_slots; i++)
            gpu_weight_free(&m->tensors[i].mat);
        free(m->tensors);
    }
    gpu_pool_destroy(&m->pool);
    arch_model_free(&m->am);
    vkllm_vocab_free(m->vocab);
    vkllm_gguf_close(m->gguf);
    free(m);
}

const struct vkllm_hparams *vkllm_model_hparams(const vkllm_model *m)
{
    return &m->hp;
}
const vkllm_gguf *vkllm_model_gguf(const vkllm_model *m)
{
    return m->gguf;
}
const vkllm_vocab *vkllm_model_vocab(const vkllm_model *m)
{
    return m->vocab;
}
uint64_t vkllm_model_weight_bytes(const vkllm_model *m)
{
    return m->weight_bytes;
}
