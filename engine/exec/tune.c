/* tune.c: vkllm_tune, which times the variants of the decode matvec on a
 * model's own weights and keeps the fastest per shape (tune_table.h).
 *
 * Why per shape: on lavapipe a thread per row wins on small matrices (every
 * lane then loads the same input words, which a CPU does once) and loses on
 * big ones (eight rows read at once defeat the caches), with the crossover
 * depending on the machine; on GPUs the subgroup per row is the usual winner,
 * but measuring costs seconds and settles it. Rows per thread group trade
 * the input's loads (shared by the group's rows) against weight loads in
 * flight and registers: also the device's to say. */
#include "context.h"
#include "error.h"
#include "model.h"
#include "ops.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_CANDIDATES = 12, MAX_REPS = 64 };

/* Keeps a variant only if it beats the default by more than this: noise
 * must not flip a choice. */
#define TUNE_MARGIN 0.03

/* Candidate C of S. */
static struct matvec_variant variant(const struct vkllm_tune_shape *s, uint32_t c)
{
    return (struct matvec_variant){s->tpr[c], s->rows[c], s->by_word[c]};
}

struct shape_bench {
    struct gpu_graph g[MAX_CANDIDATES];
    uint32_t n_graphs;
};

/* Times W's matvec (one token, after its input's Q8 quantization where the
 * format takes one) in each of S's variants: a warm-up, then
 * REPS rounds of every candidate in turn, so that a disturbance meets them
 * all; S->ms gets the fastest run of each (the least disturbed: on a shared
 * machine a median of a few runs still catches another process's burst). */
static int measure(struct vkllm_context *ctx, const struct gpu_weight *w, int reps,
                   struct vkllm_tune_shape *s, struct vkllm_error *err)
{
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
    /* an input of ordinary values: a CPU device is slow on NaNs and subnormals.
     * The weights' own values are not checked: a model whose weights hold
     * NaN or inf values gets its NaN products at the same speed on GPUs and
     * lavapipe (SSE/AVX run NaN and inf operands at full speed), so its
     * timings hold for every model of its shapes */
    if (!rc) rc = gpu_uploader_create(&up, &ctx->dev, x_bytes, err);
    float *xs;
    if (!rc && !(rc = gpu_upload_map(&up, &x, 0, x_bytes, (void **)&xs, err))) {
        for (uint32_t i = 0; i < w->k; i++)
            xs[i] = (float)((i * 37u) % 101u) / 101.0f - 0.5f;
        rc = gpu_upload_flush(&up, err);
    }
    if (!rc) {
        op_step_prompt(&step, (const int32_t[]){0}, 1, 0, 0);
        const struct matvec_variant saved = tune_table_matvec(&ctx->tune, w->type, w->k, w->n);
        for (uint32_t c = 0; !rc && c < s->n_candidates; c++) {
            struct gpu_graph *g = &b.g[b.n_graphs];
            if ((rc = gpu_graph_create(g, &ctx->dev, err))) break;
            b.n_graphs++;
            struct op_env e = {ctx, g, step, 1, GPU_BARRIER, false};
            /* op_matvec reads the table as it records */
            rc = tune_table_set(&ctx->tune, w->type, w->k, w->n, variant(s, c), err);
            if (!rc) rc = gpu_graph_begin(g, err);
            const bool q8 = op_matvec_takes_q8(&e, w->type, false);
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

/* The shape of matvec weight I of M, its candidates and its uses,
 * unmeasured. The candidates: threads per row every power of two up to the
 * default (op_matvec's limits are the subgroup and the row's 32-element
 * sub-blocks) at the default rows per group, then the default threads with
 * 1, 4 and 8 rows, and where the format has it (Q4_K, Q6_K) a word of quants per
 * lane with 1, 2 and 4 rows. */
static struct vkllm_tune_shape shape_of(const struct vkllm_model *m, uint32_t i)
{
    const struct gpu_weight *w = &m->tensors[i].mat;
    const struct quant_format *f = quant_format(w->type);
    struct vkllm_tune_shape s = {
        .tensor = arch_role_name(arch_slot_role(&m->am, i)),
        .type = f->name,
        .k = w->k,
        .n = w->n,
    };
    const uint32_t n_slices = (uint32_t)arch_slot_count(&m->am);
    for (uint32_t j = i; j < n_slices; j++)
        s.uses += is_matvec_weight(m, j) && first_of_shape(m, j) == i;
    const uint32_t units = f->block_size == 1 ? w->k : w->k / 32;
    for (uint32_t t = 1; t <= m->ctx->matvec_tpr && t <= units && s.n_candidates < MAX_CANDIDATES;
         t *= 2) {
        s.tpr[s.n_candidates] = t;
        s.rows[s.n_candidates++] = OP_MATVEC_ROWS;
    }
    s.default_index = s.n_candidates - 1;
    const uint32_t tpr = s.tpr[s.default_index];
    /* more rows only where the matrix has a group's worth for each */
    for (uint32_t r = 1; r <= 8 && r <= w->n && s.n_candidates < MAX_CANDIDATES; r *= 2) {
        if (r == OP_MATVEC_ROWS) continue;
        s.tpr[s.n_candidates] = tpr;
        s.rows[s.n_candidates++] = r;
    }
    for (uint32_t r = 1; op_matvec_by_word(m->ctx, w->type) && r <= 4 && r <= w->n &&
                         s.n_candidates < MAX_CANDIDATES;
         r *= 2) {
        s.tpr[s.n_candidates] = tpr;
        s.rows[s.n_candidates] = r;
        s.by_word[s.n_candidates++] = true;
    }
    return s;
}

/* Measures weight I's shape S (REPS runs of each candidate) and keeps the
 * winner in the context's table: the default's TPR too, which marks the
 * shape measured. */
static int tune_shape(struct vkllm_model *m, uint32_t i, int reps, struct vkllm_tune_shape *s,
                      struct vkllm_error *err)
{
    const struct gpu_weight *w = &m->tensors[i].mat;
    int rc = s->n_candidates > 1 ? measure(m->ctx, w, reps, s, err) : VKLLM_OK;
    if (rc) return rc;
    s->chosen = s->default_index;
    for (uint32_t c = 0; c < s->n_candidates; c++)
        if (s->ms[c] < s->ms[s->chosen] && s->ms[c] < s->ms[s->default_index] * (1.0 - TUNE_MARGIN))
            s->chosen = c;
    return tune_table_set(&m->ctx->tune, w->type, w->k, w->n, variant(s, s->chosen), err);
}

/* The context's description (vkllm_context_paths) with its table's count,
 * as context creation words it: tuning changed the count. */
static void describe_tuning(struct vkllm_context *ctx)
{
    char *at = strstr(ctx->paths, "; matvec tuned for ");
    size_t n = at ? (size_t)(at - ctx->paths) : strlen(ctx->paths);
    if (ctx->tune.n)
        snprintf(ctx->paths + n, sizeof ctx->paths - n, "; matvec tuned for %u shapes",
                 ctx->tune.n);
    else
        ctx->paths[n] = '\0';
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
    struct tune_table measured = {0}; /* merged into the file as it is at the end */
    for (uint32_t i = 0; !rc && i < n_slices; i++) {
        if (!is_matvec_weight(m, i) || first_of_shape(m, i) != i) continue;
        struct vkllm_tune_shape s = shape_of(m, i);
        const struct gpu_weight *w = &m->tensors[i].mat;
        rc = tune_shape(m, i, reps, &s, err);
        if (!rc) rc = tune_table_set(&measured, w->type, w->k, w->n, variant(&s, s.chosen), err);
        if (!rc && fn) fn(&s, done++, n_shapes, user);
    }
    if (!rc) rc = tune_table_save(&measured, &ctx->pipes.on_disk, err);
    tune_table_free(&measured);
    describe_tuning(ctx);
    return rc;
}

/* ---- automatic tuning: a model's first run on a device */

/* Runs of each variant when tuning automatically: fewer than vkllm tune's 5,
 * for the budget; the fastest of 3 still drops a disturbed run. */
enum { AUTO_REPS = 3 };

struct pending {
    uint32_t slice;
    double bytes; /* one matrix's bytes: what measuring it costs */
    double share; /* the bytes of the shape read per token: its share of the decode */
};

/* The slices of M's matvec shapes that the table lacks, the most bytes read
 * per token first (they gain most: a budget that runs out leaves the small
 * ones); their count. P holds at most CAP. */
static uint32_t pending_shapes(const struct vkllm_model *m, struct pending *p, uint32_t cap)
{
    const struct tune_table *t = &m->ctx->tune;
    const uint32_t n_slices = (uint32_t)arch_slot_count(&m->am);
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_slices; i++) {
        const struct gpu_weight *w = &m->tensors[i].mat;
        if (!is_matvec_weight(m, i) || first_of_shape(m, i) != i ||
            tune_table_matvec(t, w->type, w->k, w->n).tpr)
            continue;
        if (n < cap) {
            const struct quant_format *f = quant_format(w->type);
            const double bytes = (double)w->n * w->k / f->block_size * f->block_bytes;
            struct pending e = {i, bytes, bytes * shape_of(m, i).uses};
            uint32_t at = n;
            for (; at > 0 && p[at - 1].share < e.share; at--)
                p[at] = p[at - 1];
            p[at] = e;
        }
        n++;
    }
    return n;
}

uint32_t vkllm_tune_pending(const vkllm_model *m, double *seconds)
{
    const struct tune_table *t = &m->ctx->tune;
    if (seconds) *seconds = t->budget_ns / 1e9;
    return t->automatic ? pending_shapes(m, NULL, 0) : 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int vkllm_tune_auto(vkllm_model *m, const struct vkllm_tune_auto_params *params,
                    struct vkllm_tune_auto_result *out, struct vkllm_error *err)
{
    struct vkllm_context *ctx = m->ctx;
    const double t0 = now_ms();
    memset(out, 0, sizeof *out);
    if (!ctx->tune.automatic) return VKLLM_OK;
    const double budget_ms =
        params && params->seconds > 0 ? params->seconds * 1e3 : ctx->tune.budget_ns / 1e6;
    const uint32_t n = pending_shapes(m, NULL, 0);
    struct pending *todo = n ? calloc(n, sizeof *todo) : NULL;
    if (n && !todo) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    pending_shapes(m, todo, n);
    out->left = n;
    int rc = n && budget_ms > 0 ? tune_table_writable(&ctx->tune, err) : VKLLM_OK;
    struct tune_table measured = {0}; /* merged into the file as it is at the end */
    double last_ms = 0.0, last_bytes = 1.0;
    for (uint32_t k = 0; !rc && k < n; k++) {
        /* no shape started past the budget, nor one that would end past
         * it: each takes about the last one's time, scaled by its bytes */
        const double spent = now_ms() - t0;
        if (spent + last_ms * todo[k].bytes / last_bytes >= budget_ms) break;
        if (params && params->stop && params->stop(params->user)) break;
        const double t = now_ms();
        struct vkllm_tune_shape s = shape_of(m, todo[k].slice);
        const struct gpu_weight *w = &m->tensors[todo[k].slice].mat;
        if ((rc = tune_shape(m, todo[k].slice, AUTO_REPS, &s, err))) break;
        rc = tune_table_set(&measured, w->type, w->k, w->n, variant(&s, s.chosen), err);
        last_ms = now_ms() - t;
        last_bytes = todo[k].bytes;
        out->measured++;
        out->left--;
        if (s.n_candidates > 1) {
            out->before += s.uses * s.ms[s.default_index];
            out->after += s.uses * s.ms[s.chosen];
        }
    }
    if (!rc && out->measured) rc = tune_table_save(&measured, &ctx->pipes.on_disk, err);
    tune_table_free(&measured);
    free(todo);
    describe_tuning(ctx);
    out->seconds = (now_ms() - t0) / 1e3;
    return rc;
}

const char *vkllm_tune_path(const vkllm_context *ctx)
{
    return ctx->tune.path;
}
