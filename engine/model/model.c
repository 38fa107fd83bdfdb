/* model.c: loading a GGUF model: metadata, tokenizer, and weights uploaded to
 * the device with a progress report. */
#include "model.h"

#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Device bytes the weights will take, to refuse a model that cannot fit before
 * uploading most of it. */
static uint64_t device_bytes(const struct vkllm_hparams *hp, const struct llama_tensors *t)
{
    uint64_t sum = 0;
#define MAT(x) sum += gpu_weight_bytes((x)->type, (x)->ne[0], (x)->ne[1])
    MAT(t->tok_embd);
    if (!hp->tied_output) MAT(t->output);
    sum += 4 * hp->n_embd * (1 + 2 * (uint64_t)hp->n_layer);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct llama_layer_tensors *L = &t->layers[l];
#define LAYER_MAT(name) MAT(L->name);
        LAYER_MATRICES(LAYER_MAT)
#undef LAYER_MAT
    }
#undef MAT
    return sum;
}

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

static int load_matrix(struct loader *ld, tensor_ref t, struct gpu_weight *out,
                       struct vkllm_error *err)
{
    int rc =
        gpu_weight_upload(&ld->up, &ld->m->pool, t->type, t->ne[0], t->ne[1], t->data, 0, out, err);
    if (rc) {
        char what[128];
        snprintf(what, sizeof what, "%s: %.*s", vkllm_gguf_name(ld->m->gguf), (int)t->name.len,
                 t->name.ptr);
        vkllm_error_prefix(err, what);
        return rc;
    }
    progress(ld, t->size);
    return VKLLM_OK;
}

static int load_vector(struct loader *ld, tensor_ref t, struct gpu_buf *out,
                       struct vkllm_error *err)
{
    float *f = malloc(t->ne[0] * sizeof *f);
    if (!f) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    quant_dequantize_row(t->type, t->data, f, t->ne[0]);
    int rc = gpu_upload_floats(&ld->up, &ld->m->pool, f, t->ne[0], out, err);
    free(f);
    if (!rc) progress(ld, t->size);
    return rc;
}

static int upload(struct loader *ld, const struct llama_tensors *t, struct vkllm_error *err)
{
    struct vkllm_model *m = ld->m;
    int rc;
    if ((rc = load_matrix(ld, t->tok_embd, &m->tok_embd, err)) ||
        (rc = load_vector(ld, t->output_norm, &m->output_norm, err)))
        return rc;
    if (m->hp.tied_output) {
        m->output = m->tok_embd;
    } else if ((rc = load_matrix(ld, t->output, &m->output, err))) {
        return rc;
    }
    m->layers = calloc(m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const struct llama_layer_tensors *L = &t->layers[l];
        struct gpu_layer *G = &m->layers[l];
        if ((rc = load_vector(ld, L->attn_norm, &G->attn_norm, err)) ||
            (rc = load_vector(ld, L->ffn_norm, &G->ffn_norm, err)))
            return rc;
#define LOAD(name)                                                                                 \
    if ((rc = load_matrix(ld, L->name, &G->name, err))) return rc;
        LAYER_MATRICES(LOAD)
#undef LOAD
    }
    if (t->rope_freqs) {
        m->rope_freqs = malloc(t->rope_freqs->ne[0] * sizeof(float));
        if (!m->rope_freqs) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        memcpy(m->rope_freqs, t->rope_freqs->data, t->rope_freqs->ne[0] * sizeof(float));
    }
    return VKLLM_OK;
}

int vkllm_model_load(vkllm_context *ctx, const char *path, const struct vkllm_model_params *params,
                     vkllm_model **out, struct vkllm_error *err)
{
    *out = NULL;
    struct vkllm_model *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    m->ctx = ctx;
    struct llama_tensors t = {0};
    struct loader ld = {.m = m, .params = params};
    const struct vkllm_device_info *info = &ctx->dev.info;

    int rc = vkllm_gguf_open(path, &m->gguf, err);
    if (!rc) rc = llama_read_hparams(m->gguf, &m->hp, err);
    if (!rc) rc = llama_bind_tensors(m->gguf, &m->hp, &t, err);
    if (!rc) rc = vkllm_vocab_load(m->gguf, &m->vocab, err);
    if (!rc && vkllm_vocab_n_tokens(m->vocab) != (int32_t)m->hp.n_vocab)
        rc = vkllm_fail(err, VKLLM_E_FORMAT,
                        "%s: the tokenizer has %d tokens but token_embd.weight has %u rows", path,
                        vkllm_vocab_n_tokens(m->vocab), m->hp.n_vocab);
    if (rc) goto fail;

    ld.total = device_bytes(&m->hp, &t);
    if (info->device_local_bytes && ld.total > info->device_local_bytes) {
        rc = vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                        "%s: the weights need %.0f MiB but %s has %.0f MiB of device memory", path,
                        ld.total / 1048576.0, info->name, info->device_local_bytes / 1048576.0);
        goto fail;
    }
    VkDeviceSize block = 256ull << 20;
    if (ld.total + 4096 < block) block = ld.total + 4096; /* small models take what they need */
    gpu_pool_init(&m->pool, &ctx->dev, GPU_POOL_DEVICE, block);
    if ((rc = gpu_uploader_create(&ld.up, &ctx->dev, 32ull << 20, err))) goto fail;
    rc = upload(&ld, &t, err);
    gpu_uploader_destroy(&ld.up);
    if (rc) goto fail;
    m->weight_bytes = ld.total;
    llama_tensors_free(&t);
    *out = m;
    return VKLLM_OK;
fail:
    llama_tensors_free(&t);
    vkllm_model_free(m);
    return rc;
}

void vkllm_model_free(vkllm_model *m)
{
    if (!m) return;
    if (m->layers) {
        for (uint32_t l = 0; l < m->hp.n_layer; l++) {
            struct gpu_layer *G = &m->layers[l];
#define FREE(name) gpu_weight_free(&G->name);
            LAYER_MATRICES(FREE)
#undef FREE
        }
        free(m->layers);
    }
    if (!m->hp.tied_output) gpu_weight_free(&m->output);
    gpu_weight_free(&m->tok_embd);
    gpu_pool_destroy(&m->pool);
    free(m->rope_freqs);
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
