/* bench_kernels.c: the weight kernels alone on the chosen device, per format
 * and shape, as llm.c's dev/cuda benchmarks do: achieved GB/s of weights read
 * for mat-vec (one token: decode) and GFLOP/s for a batch (prefill).
 *
 *   bench_kernels [--formats Q4_0,Q4_K,...] [--shapes attn_q,ffn_up,ffn_down]
 *                 [--batch N] [--reps R] [--quick]
 *
 * Shapes are TinyLlama 1.1B's (2048 wide, FFN 5632, 32000 vocabulary) and a
 * small model's (256 wide). Weights are random blocks with small scales: the
 * kernels' speed does not depend on the values. Medians of R timed replays
 * after one warm-up, from the GPU's timestamps, and of the process's CPU time.
 * Not a test: it prints numbers (ctest runs it with --quick only to keep it
 * building and running). */
#include "context.h"
#include "kernels.h"
#include "ops.h"
#include "quant.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct vkllm_error err;

#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            fprintf(stderr, "error: %s\n", err.msg);                                               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* CPU time of the whole process (every thread, the CPU device's included), ms */
static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Random weights in format F: the kernels' cost does not depend on the
 * values, but NaNs and subnormals could slow a CPU device, so they are real
 * quantized values. */
static void *random_weights(const struct quant_format *f, uint32_t k, uint32_t n)
{
    const uint64_t row_bytes = quant_row_bytes(f->type, k);
    uint8_t *p = malloc(row_bytes * n);
    float *row = malloc(k * sizeof *row);
    if (!p || !row) exit(1);
    struct rng r;
    rng_seed(&r, 42);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < k; j++)
            row[j] = (float)((int64_t)(rng_next(&r) >> 40) - (1 << 23)) / (1 << 23);
        quant_quantize_row(f->type, row, p + row_bytes * i, k);
    }
    free(row);
    return p;
}

struct shape {
    const char *name;
    uint32_t k, n;
};

static void bench(struct vkllm_context *ctx, const struct quant_format *f, const struct shape *s,
                  uint32_t batch, int reps)
{
    if (s->k % f->block_size) return;
    struct gpu_pool host, device;
    gpu_pool_init(&host, &ctx->dev, GPU_POOL_UPLOAD, 4u << 20);
    gpu_pool_init(&device, &ctx->dev, GPU_POOL_DEVICE, 64u << 20);
    struct gpu_uploader up;
    CHECK_OK(gpu_uploader_create(&up, &ctx->dev, 16u << 20, &err));
    void *data = random_weights(f, s->k, s->n);
    struct gpu_weight w;
    CHECK_OK(gpu_weight_upload(&up, &device, f->type, s->k, s->n, data, 0, &w, &err));
    free(data);
    gpu_uploader_destroy(&up);

    struct gpu_graph g;
    CHECK_OK(gpu_graph_create(&g, &ctx->dev, &err));
    struct gpu_buf step, x, xq, y;
    CHECK_OK(gpu_pool_alloc(&host, op_step_bytes(batch), &step, &err));
    CHECK_OK(gpu_pool_alloc(&device, (uint64_t)batch * s->k * 4, &x, &err));
    CHECK_OK(gpu_pool_alloc(&device, op_q8_bytes(batch, s->k < 32 ? 32 : s->k), &xq, &err));
    CHECK_OK(gpu_pool_alloc(&device, (uint64_t)batch * s->n * 4, &y, &err));
    struct op_env e = {ctx, &g, step, batch, GPU_BARRIER, false};
    const bool q8 = op_matvec_takes_q8(&e, f->type, false);
    CHECK_OK(gpu_graph_begin(&g, &err));
    if (q8) CHECK_OK(op_quantize_q8(&e, &x, &xq, s->k, false, &err));
    CHECK_OK(op_matvec(&e, &w, q8 ? &xq : &x, &y, false, false, &err));
    CHECK_OK(gpu_graph_end(&g, &err));
    struct step_header *h = step.mapped;
    memset(h, 0, op_step_bytes(batch));
    h->n_tokens = batch;

    double ms[64], cpu[64];
    if (reps > 64) reps = 64;
    CHECK_OK(gpu_graph_run(&g, &err)); /* warm-up: pipeline creation, caches */
    for (int i = 0; i < reps; i++) {
        const double c0 = cpu_ms();
        CHECK_OK(gpu_graph_run(&g, &err));
        cpu[i] = cpu_ms() - c0;
        ms[i] = gpu_graph_last_ms(&g);
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    qsort(cpu, (size_t)reps, sizeof *cpu, cmp_double);
    const double med = ms[reps / 2], cpu_med = cpu[reps / 2], cpu_best = cpu[0];
    const double bytes = (double)gpu_weight_bytes(f->type, s->k, s->n);
    const double flops = 2.0 * s->k * s->n * batch;
    /* On a CPU device (lavapipe) the process's CPU time per run is the work
     * itself, which other jobs on a shared machine disturb far less than the
     * elapsed time: GFLOP per CPU-second compares kernels there. The best
     * run's too: at a load of 8 on 2 cores even the CPU time of the median
     * run varies by 1.5x between identical runs, the least disturbed one
     * much less. */
    printf("%-7s %-12s k=%-5u n=%-6u batch %-4u %9.3f ms  %8.2f GB/s  %8.2f GFLOP/s  cpu %8.2f "
           "GFLOP/s (best %.2f)\n",
           f->name, s->name, s->k, s->n, batch, med, med > 0 ? bytes / med / 1e6 : 0.0,
           med > 0 ? flops / med / 1e6 : 0.0, cpu_med > 0 ? flops / cpu_med / 1e6 : 0.0,
           cpu_best > 0 ? flops / cpu_best / 1e6 : 0.0);
    fflush(stdout);
    gpu_graph_destroy(&g);
    gpu_weight_free(&w);
    gpu_pool_destroy(&host);
    gpu_pool_destroy(&device);
}

static bool wanted(const char *list, const char *name)
{
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *formats = NULL, *shape_names = NULL;
    uint32_t batch = 512;
    int reps = 5;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--formats") && i + 1 < argc)
            formats = argv[++i];
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            shape_names = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else {
            fprintf(stderr,
                    "usage: bench_kernels [--formats A,B] [--shapes attn_q,...] [--batch N] "
                    "[--reps R] [--quick]\n");
            return 1;
        }
    }
    if (reps < 1 || batch < 1) return 1;
    struct vkllm_context *ctx;
    CHECK_OK(vkllm_context_create(NULL, &ctx, &err));
    printf("device %s\n%s\n", ctx->dev.info.name, vkllm_context_paths(ctx));
    static const struct shape big[] = {
        {"attn_q", 2048, 2048}, {"ffn_up", 2048, 5632}, {"ffn_down", 5632, 2048}};
    static const struct shape small[] = {{"small_q", 256, 256}, {"small_ffn", 256, 768}};
    const struct shape *shapes = quick ? small : big;
    const size_t n_shapes = quick ? 2 : 3;
    if (quick) reps = 1, batch = batch < 16 ? batch : 16;
    for (uint32_t i = 0; i < quant_format_count; i++) {
        const struct quant_format *f = &quant_formats[i];
        if (!wanted(formats, f->name)) continue;
        for (size_t j = 0; j < n_shapes; j++) {
            if (!wanted(shape_names, shapes[j].name)) continue;
            bench(ctx, f, &shapes[j], 1, reps);
            if (batch > 1) bench(ctx, f, &shapes[j], batch, reps);
        }
    }
    uint32_t bad = vkllm_context_validation_errors(ctx);
    vkllm_context_destroy(ctx);
    return bad ? 1 : 0;
}
