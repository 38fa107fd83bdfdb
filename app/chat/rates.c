/* rates.c: generation speed and achieved bandwidth (see rates.h). */
#include "rates.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool named(const struct vkllm_gguf_tensor *t, const char *name)
{
    return t->name.len == strlen(name) && !memcmp(t->name.ptr, name, t->name.len);
}

int decode_bytes_of(const vkllm_gguf *g, const struct vkllm_hparams *hp, struct decode_bytes *out,
                    struct vkllm_error *err)
{
    struct decode_bytes d = {0};
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        uint64_t bytes = t->size;
        /* a lookup table: a step reads the row of its token (or position),
         * unless the output projection multiplies by the whole table */
        bool lookup =
            named(t, "position_embd.weight") || (named(t, "token_embd.weight") && !hp->tied_output);
        if (lookup) {
            if (t->n_dims != 2 || !t->ne[1])
                return vkllm_fail(err, VKLLM_E_FORMAT, "%.*s: not a matrix", (int)t->name.len,
                                  t->name.ptr);
            bytes = t->size / t->ne[1];
        }
        d.weights += bytes;
    }
    /* half-float K and V, one row of n_head_kv * head_dim each per layer */
    uint64_t per_layer = 2ull * hp->n_head_kv * hp->head_dim * 2;
    uint32_t n_swa = hp->sliding_window ? hp->n_swa_layers : 0;
    if (n_swa > hp->n_layer) n_swa = hp->n_layer;
    d.kv_per_pos = per_layer * (hp->n_layer - n_swa);
    d.kv_swa_per_pos = per_layer * n_swa;
    d.window = n_swa ? hp->sliding_window : 0;
    *out = d;
    return VKLLM_OK;
}

uint64_t decode_bytes_at(const struct decode_bytes *d, uint32_t pos)
{
    uint64_t seen = (uint64_t)pos + 1;
    uint64_t swa_seen = d->window && d->window < seen ? d->window : seen;
    return d->weights + d->kv_per_pos * seen + d->kv_swa_per_pos * swa_seen;
}

void gen_meter_token(struct gen_meter *m, double t_ms, uint64_t step_bytes)
{
    if (m->n++ == 0)
        m->t_first = t_ms;
    else
        m->bytes += step_bytes;
    m->t_last = t_ms;
}

double gen_meter_tps(const struct gen_meter *m)
{
    double s = (m->t_last - m->t_first) / 1e3;
    return m->n > 1 && s > 0 ? (m->n - 1) / s : 0;
}

double gen_meter_gbps(const struct gen_meter *m)
{
    double s = (m->t_last - m->t_first) / 1e3;
    return m->n > 1 && s > 0 ? m->bytes / s / 1e9 : 0;
}

int rates_peak_gbps(const char *text, double *out, struct vkllm_error *err)
{
    *out = 0;
    if (!text || !*text) return VKLLM_OK;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    /* 1 MB/s: no device that runs a model is slower; below it the
     * percentage is noise (probe 4, R-18.5: "78811848% of 0") */
    if (errno || *end || !isfinite(v) || v < 0.001 || v > 100000)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "VKLLM_PEAK_GBPS: '%s' is not a bandwidth in GB/s from 0.001 to 100000",
                          text);
    *out = v;
    return VKLLM_OK;
}
