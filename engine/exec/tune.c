/* tune.c: vkllm_tune, which times the variants of the decode matvec on a
 * model's own weights and keeps the fastest per shape (tune_table.h).
 *
 * Why per shape: on lavapipe a thread per row wins on small matrices (every
 * lane then loads the same input words, which a CPU does once) and loses on
 * big ones (eight rows read at once defeat the caches), with the crossover
 * depending on the machine; on GPUs the subgroup per row is the usual winner,
 * but measuring costs seconds and settles it. */
#include "context.h"
#include "error.h"
#include "model.h"
#include "ops.h"
#include "quant.h"

#include <math.h>
#include <string.h>

enum { MAX_CANDIDATES = 8, MAX_REPS = 64 };

/* Keeps a variant only if it beats the default by more than this: noise
 * must not flip a choice. */
#define TUNE_MARGIN 0.03

struct shape_bench {
    struct gpu_graph g[MAX_CANDIDATES];
    uint32_t n_graphs;
};

/* Times W's matvec (one token, after its input's Q8 quantization where the
 * format takes one) with each of S->tpr's threads per row: a warm-up, then
 * REPS rounds of every candidate in turn, so that a disturbance meets them
 * all; S->ms gets the fastest run of each (the least disturbed: on a shared
 * machine a median of a few runs still catches another process's burst). */
static int measure(struct vkllm_context *ctx, const struct gpu_weight *w, int reps,
                   struct vkllm_tune_shape *s, struct vkllm_error *err)
{
    const struct quant_format *f = quant_format(w->type);
    const bool q8 = f->act == ACT_Q8;
    struct gpu_pool host, device;
    gpu_pool_init(&host, &ctx->dev, GPU_POOL_UPLOAD, 1u << 20);
    gpu_pool_init(&device, &ctx->dev, GPU_POOL_DEVICE, 16u << 20);
    struct gpu_uploader up = {0};
    struct shape_bench b = {0};
    struct gpu_buf step, x, xq, y;
    const uint64_t x_bytes = (uint64_t)w->k * sizeof(float);
    int rc = gpu_pool_alloc(&host, op_step_bytes(1), &step, err);
    if (!rc) rc = gpu_pool_alloc(&device, x_bytes, &x, err);
    if (!rc) rc = gpu_pool_alloc(&device, op_q8_bytes(1, w->k < 32 ? 32 : w->k), &xq, err);
    if (!rc) rc = gpu_pool_alloc(&device, (uint64_t)w->n * sizeof(float), &y, err);
    /* an input of ordinary values: a CPU device is slow on NaNs and subnormals */
    if (!rc) rc = gpu_uploader_create(&up, &ctx->dev, x_bytes, err);
    float *xs;
    if (!rc && !(rc = gpu_upload_map(&up, &x, 0, x_bytes, (void **)&xs, err))) {
        for (uint32_t i = 0; i < w->k; i++)
            xs[i] = (float)((i * 37u) % 101u) / 101.0f - 0.5f;
        rc = gpu_upload_flush(&up, err);
    }
    if (!rc) {
        op_step_prompt(&step, (const int32_t[]){0}, 1, 0, 0);
        const uint32_t saved = tune_table_matvec_tpr(&ctx->tune, w->type, w->k, w->n);
        for (uint32_t c = 0; !rc && c < s->n_candidates; c++) {
            struct gpu_graph *g = &b.g[b.n_graphs];
            if ((rc = gpu_graph_create(g, &ctx->dev, err))) break;
            b.n_graphs++;
            struct op_env e = {ctx, g, step, 1, GPU_BARRIER, false};
            /* op_matvec reads the table as it records */
            rc = tune_table_set(&ctx->tune, w->type, w->k, w->n, s->tpr[c], err);
            if (!rc) rc = gpu_graph_begin(g, err);
            if (!rc && q8) rc = op_quantize_q8(&e, &x, &xq, w->k, false, err);
            if (!rc) rc = op_matvec(&e, w, q8 ? &xq : &x, &y, false, false, err);
            if (!rc) rc = gpu_graph_end(g, err);
            if (!rc) rc = gpu_graph_run(g, err); /* warm-up: pipeline creation, caches */
        }
        int set = tune_table_set(&ctx->tune, w->type, w->k, w->n, saved, err);
        if (!rc) rc = set;
    }
    for (uint32_t c = 0; c < s->n_candidates; c++)
        s->ms[c] = INFINITY;
    for (int r = 0; !rc && r < reps; r++)
        for (uint32_t c = 0; !rc && c < s->n_candidates; c++)
            if (!(rc = gpu_graph_run(&b.g[c], err)))
                s->ms[c] = fmin(s->ms[c], gpu_graph_last_ms(&b.g[c]));
    for (uint32_t c = 0; c < b.n_graphs; c++)
        gpu_graph_destroy(&b.g[c]);
    gpu_uploader_destroy(&up);
    gpu_pool_destroy(&host);
    gpu_pool_destroy(&device);
    return rc;
}

/* Whether slice I of M is a matrix that decode multiplies by: not an
 * embedding table, which is read by rows (a tied output is token_embd's
 * matrix in the output's slot, and counts). */
static bool is_matvec_weight(const struct vkllm_model *m, uint32_t i)
{
    const enum tensor_role role = arch_slot_role(&m->am, i);
    return m->tensors[i].mat.n_parts && arch_role_is_matrix(role) && role != T_TOK_EMBD &&
           role != T_POS_EMBD;
}

/* The first matvec weight of M with the shape of weight I. */
static uint32_t first_of_shape(const struct vkllm_model *m, uint32_t i)
{
    const struct gpu_weight *w = &m->tensors[i].mat;
    for (uint32_t j = 0; j < i; j++) {
        const struct gpu_weight *v = &m->tensors[j].mat;
        if (is_matvec_weight(m, j) && v->type == w->type && v->k == w->k && v->n == w->n) return j;
    }
    return i;
}

int vkllm_tune(vkllm_model *m, int reps, vkllm_tune_fn fn, void *user, struct vkllm_error *err)
{
    struct vkllm_context *ctx = m->ctx;
    if (reps < 1 || reps > MAX_REPS)
        return vkllm_fail(err, VKLLM_E_INVALID, "tuning takes 1 to %d runs per variant, not %d",
                          MAX_REPS, reps);
    const uint32_t n_slices = (uint32_t)arch_slot_count(&m->am);
    uint32_t n_shapes = 0, done = 0;
    for (uint32_t i = 0; i < n_slices; i++)
        n_shapes += is_matvec_weight(m, i) && first_of_shape(m, i) == i;
    int rc = VKLLM_OK;
    for (uint32_t i = 0; !rc && i < n_slices; i++) {
        if (!is_matvec_weight(m, i) || first_of_shape(m, i) != i) continue;
        const struct gpu_weight *w = &m->tensors[i].mat;
        const struct quant_format *f = quant_format(w->type);
        struct vkllm_tune_shape s = {
            .tensor = arch_role_name(arch_slot_role(&m->am, i)),
            .type = f->name,
            .k = w->k,
            .n = w->n,
        };
        for (uint32_t j = i; j < n_slices; j++)
            s.uses += is_matvec_weight(m, j) && first_of_shape(m, j) == i;
        /* every power of two up to the default (op_matvec's limits: the
         * subgroup, and the row's 32-element sub-blocks) */
        const uint32_t units = f->block_size == 1 ? w->k : w->k / 32;
        for (uint32_t t = 1; t <= ctx->matvec_tpr && t <= units && s.n_candidates < MAX_CANDIDATES;
             t *= 2)
            s.tpr[s.n_candidates++] = t;
        s.default_index = s.n_candidates - 1;
        if (s.n_candidates > 1) rc = measure(ctx, w, reps, &s, err);
        if (rc) break;
        s.chosen = s.default_index;
        for (uint32_t c = 0; c < s.n_candidates; c++)
            if (s.ms[c] < s.ms[s.chosen] && s.ms[c] < s.ms[s.default_index] * (1.0 - TUNE_MARGIN))
                s.chosen = c;
        rc = tune_table_set(&ctx->tune, w->type, w->k, w->n,
                            s.chosen == s.default_index ? 0 : s.tpr[s.chosen], err);
        if (!rc && fn) fn(&s, done++, n_shapes, user);
    }
    if (!rc) rc = tune_table_save(&ctx->tune, &ctx->pipes.on_disk, err);
    return rc;
}

const char *vkllm_tune_path(const vkllm_context *ctx)
{
    return ctx->tune.path;
}
