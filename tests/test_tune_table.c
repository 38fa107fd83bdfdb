/* test_tune_table.c: the tuning file (engine/vk/tune_table.h) and its use.
 *
 * - A saved table reads back entry for entry, for its key only: another
 *   device's key, a bad line, a NUL byte, a directory or an empty file each
 *   give an empty table and one note naming the file; no file is no note.
 * - Setting an entry twice replaces it; TPR 0 removes it. Numbers are
 *   strict decimal, a file holds at most 4096 lines, and a save merges into
 *   the file as it is, also under VKLLM_TUNE=0 (issue 10).
 * - op_matvec follows the table: an entry for a weight's shape makes it
 *   record another pipeline variant (the threads per row and rows per
 *   group are specialization constants), other shapes keep theirs, and every variant's
 *   results equal the untuned ones to float rounding, for a float and a
 *   quantized (Q8 input) format and Q4_K and Q6_K, whose lanes can also take a word
 *   of quants at a time. */
#include "context.h"
#include "ops.h"
#include "quant.h"
#include "rng.h"
#include "testhelp.h"
#include "tune_table.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct pipeline_cache_key key = {
    .vendor_id = 0x1002, .device_id = 0x73bf, .driver_version = 9, .shader_hash = 0xabc};

static char dir[] = "/tmp/vkllm-tune-XXXXXX";

#define V(tpr, rows) ((struct matvec_variant){(tpr), (rows), 0})
#define W(tpr, rows) ((struct matvec_variant){(tpr), (rows), 1})

static void test_file(void)
{
    char cache_path[256];
    snprintf(cache_path, sizeof cache_path, "%s/vkllm/pipelines-1002-73bf-0000000000000abc.bin",
             dir);
    struct pipeline_cache pc = {.path = cache_path, .key = key};
    struct vkllm_error err = {0};
    struct tune_table t;

    REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
    CHECK(t.n == 0 && !t.note[0], "no file: %u entries, note '%s'", t.n, t.note);
    CHECK(t.path && strstr(t.path, "/vkllm/tune-1002-73bf-0000000000000abc.txt"), "path %s",
          t.path);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_Q4_0, 2048, 2048, V(1, 2), &err), "%s", err.msg);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_F32, 64, 512, V(2, 2), &err), "%s", err.msg);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_F32, 64, 512, V(4, 8), &err), "%s", err.msg);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_Q4_K, 4096, 512, W(32, 4), &err), "%s", err.msg);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_Q6_K, 2048, 32000, V(8, 2), &err), "%s", err.msg);
    REQUIRE_OK(tune_table_set(&t, VKLLM_TYPE_Q6_K, 2048, 32000, V(0, 0), &err), "%s", err.msg);
    CHECK(t.n == 3, "%u entries after a replacement and a removal", t.n);
    REQUIRE_OK(tune_table_save(&t, &pc, &err), "%s", err.msg);
    char path[300];
    snprintf(path, sizeof path, "%s", t.path);
    tune_table_free(&t);

    REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
    CHECK(t.n == 3 && !t.note[0], "read back: %u entries, note '%s'", t.n, t.note);
    CHECK(tune_table_matvec(&t, VKLLM_TYPE_Q4_0, 2048, 2048).tpr == 1);
    CHECK(tune_table_matvec(&t, VKLLM_TYPE_F32, 64, 512).tpr == 4 &&
          tune_table_matvec(&t, VKLLM_TYPE_F32, 64, 512).rows == 8 &&
          !tune_table_matvec(&t, VKLLM_TYPE_F32, 64, 512).by_word);
    CHECK(tune_table_matvec(&t, VKLLM_TYPE_Q4_K, 4096, 512).by_word &&
          tune_table_matvec(&t, VKLLM_TYPE_Q4_K, 4096, 512).rows == 4);
    CHECK(tune_table_matvec(&t, VKLLM_TYPE_F32, 512, 64).tpr == 0, "another shape");
    CHECK(tune_table_matvec(&t, VKLLM_TYPE_Q6_K, 2048, 32000).tpr == 0, "a removed entry");
    tune_table_free(&t);

    struct pipeline_cache other = pc;
    other.key.driver_version = 10;
    REQUIRE_OK(tune_table_load(&t, &other, &err), "%s", err.msg);
    CHECK(t.n == 0 && strstr(t.note, "made for another device, driver or build of the shaders"),
          "another driver: %u entries, note '%s'", t.n, t.note);
    tune_table_free(&t);

    /* each bad content: no entries, a note naming the file */
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } bad[] = {
        {"", 0, "truncated"},
        {"vkllm tune 2\n", 13, "not a vkllm tune file of version 3"},
        {"matvec Q4_0 1 1 1 2 blocks\n", 27, "not a vkllm tune file"},
        {"vkllm tune 3\nkey\0x\n", 19, "holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "wb");
        REQUIRE(f);
        fwrite(bad[i].text, 1, bad[i].len, f);
        fclose(f);
        REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
        CHECK(t.n == 0 && strstr(t.note, path) && strstr(t.note, bad[i].why) &&
                  strstr(t.note, "tuning ignored"),
              "case %zu: %u entries, note '%s'", i, t.n, t.note);
        tune_table_free(&t);
    }
    /* a good key with a bad entry: the whole file is ignored */
    static const char *lines[] = {
        "matvec Q4_0 256 256 3 2 blocks", "matvec Q9_9 256 256 1 2 blocks",
        "matvec Q4_0 256 256 2048 2 blocks", "matvec Q4_0 0 256 1 2 blocks",
        "matvec Q4_0 256 256 1 2 blocks extra",
        /* earlier versions' lines; rows not a power of two, or past 8; lanes */
        "matvec Q4_0 256 256 1", "matvec Q4_0 256 256 1 2", "matvec Q4_0 256 256 1 3 blocks",
        "matvec Q4_0 256 256 1 16 blocks", "matvec Q4_0 256 256 1 0 blocks",
        "matvec Q4_0 256 256 1 2 word", "matvec Q4_0 256 256 1 2 Blocks",
        /* issue 10, M-4: sscanf's %u took these */
        "matvec F32 64 64 4294967297 2 blocks", "matvec F32 +64 64 1 2 blocks",
        "matvec F32 0064 64 1 2 blocks", "matvec F32 64 64 01 2 blocks",
        "matvec F32 64 99999999999 1 2 blocks", "matvec F32 64  64 1 2 blocks",
        "matvec F32 64 64 -1 2 blocks", "matvec F32 64 64 1 2 blocks ",
        "\nmatvec F32 64 64 1 2 blocks"};
    char keyline[200];
    REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg); /* for its key line */
    tune_table_free(&t);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct tune_table good = {0};
        REQUIRE_OK(tune_table_load(&good, &pc, &err), "%s", err.msg);
        REQUIRE_OK(tune_table_save(&good, &pc, &err), "%s", err.msg); /* a header only */
        tune_table_free(&good);
        FILE *f = fopen(path, "r");
        REQUIRE(f && fgets(keyline, sizeof keyline, f) && fgets(keyline, sizeof keyline, f));
        fclose(f);
        f = fopen(path, "w");
        REQUIRE(f);
        fprintf(f, "vkllm tune 3\n%smatvec F32 64 64 2 2 blocks\n%s\n", keyline, lines[i]);
        fclose(f);
        REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
        CHECK(t.n == 0 && strstr(t.note, "line 4 is not 'matvec TYPE K N TPR ROWS blocks|words'"),
              "'%s': %u entries, note '%s'", lines[i], t.n, t.note);
        tune_table_free(&t);
    }
    /* issue 10, T-3: 53,000 shapes cost every start 2 s; more lines than a
     * real file holds are refused, and the most it may hold read back, in
     * the worst order for a sorted table */
    for (int lines_n = 4094; lines_n <= 4095; lines_n++) {
        FILE *f = fopen(path, "w");
        REQUIRE(f);
        fprintf(f, "vkllm tune 3\n%s", keyline);
        for (int i = lines_n; i > 0; i--)
            fprintf(f, "matvec F32 %d %d 1 2 blocks\n", 64 + i % 7, i);
        fclose(f);
        REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
        if (lines_n == 4094) {
            CHECK(t.n == 4094 && !t.note[0], "4096 lines: %u entries, note '%s'", t.n, t.note);
            for (int i = 1; i <= lines_n; i += 97)
                CHECK(tune_table_matvec(&t, VKLLM_TYPE_F32, 64 + i % 7, i).tpr == 1, "entry %d", i);
            CHECK(tune_table_matvec(&t, VKLLM_TYPE_F32, 64, 1).tpr == 0, "another shape");
        } else {
            CHECK(t.n == 0 && strstr(t.note, "more than 4096 lines"), "4097 lines: note '%s'",
                  t.note);
        }
        tune_table_free(&t);
    }
    /* issue 10, T-1: saving merges into the file as it is, also under
     * VKLLM_TUNE=0 (which reads no file at load), which kept only its own */
    {
        struct tune_table a;
        unlink(path);
        REQUIRE_OK(tune_table_load(&a, &pc, &err), "%s", err.msg);
        REQUIRE_OK(tune_table_set(&a, VKLLM_TYPE_Q4_0, 256, 99, V(1, 2), &err), "%s", err.msg);
        REQUIRE_OK(tune_table_save(&a, &pc, &err), "%s", err.msg);
        tune_table_free(&a);
        setenv("VKLLM_TUNE", "0", 1);
        REQUIRE_OK(tune_table_load(&a, &pc, &err), "%s", err.msg);
        CHECK(a.n == 0, "VKLLM_TUNE=0 read %u entries", a.n);
        REQUIRE_OK(tune_table_set(&a, VKLLM_TYPE_F32, 64, 64, V(2, 2), &err), "%s", err.msg);
        REQUIRE_OK(tune_table_save(&a, &pc, &err), "%s", err.msg);
        tune_table_free(&a);
        unsetenv("VKLLM_TUNE");
        REQUIRE_OK(tune_table_load(&a, &pc, &err), "%s", err.msg);
        CHECK(a.n == 2 && tune_table_matvec(&a, VKLLM_TYPE_Q4_0, 256, 99).tpr == 1 &&
                  tune_table_matvec(&a, VKLLM_TYPE_F32, 64, 64).tpr == 2,
              "after a save under VKLLM_TUNE=0: %u entries", a.n);
        tune_table_free(&a);
    }
    /* a directory in its place: one note, no wait */
    unlink(path);
    REQUIRE(mkdir(path, 0700) == 0);
    REQUIRE_OK(tune_table_load(&t, &pc, &err), "%s", err.msg);
    CHECK(t.n == 0 && strstr(t.note, "not a regular file"), "directory: note '%s'", t.note);
    tune_table_free(&t);
    rmdir(path);

    setenv("VKLLM_TUNE", "yes", 1);
    CHECK(tune_table_load(&t, &pc, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "VKLLM_TUNE: 'yes' is neither 0 (off), 1 (on) nor manual"),
          "%s", err.msg);
    tune_table_free(&t);
    unsetenv("VKLLM_TUNE");
}

/* Random values in [-1, 1). */
static void fill(float *v, size_t n, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((int64_t)(rng_next(&r) >> 40) - (1 << 23)) / (1 << 23);
}

/* W (TYPE, K x N) times one input, recorded with variant V in the table
 * (tpr 0: untuned) into OUT; *NEW_PIPELINES counts the variants it made. */
static void matvec_with(struct vkllm_context *ctx, uint32_t type, uint32_t k, uint32_t n,
                        struct matvec_variant v, float *out, uint32_t *new_pipelines)
{
    struct vkllm_error err = {0};
    struct gpu_pool host, device, readback;
    gpu_pool_init(&host, &ctx->dev, GPU_POOL_UPLOAD, 1u << 20);
    gpu_pool_init(&device, &ctx->dev, GPU_POOL_DEVICE, 4u << 20);
    gpu_pool_init(&readback, &ctx->dev, GPU_POOL_READBACK, 1u << 20);
    float *rows = malloc((size_t)k * n * sizeof *rows);
    uint8_t *data = malloc(quant_row_bytes(type, k) * n);
    REQUIRE(rows && data);
    fill(rows, (size_t)k * n, 1);
    for (uint32_t i = 0; i < n; i++)
        quant_quantize_row(type, rows + (size_t)i * k, data + quant_row_bytes(type, k) * i, k);
    struct gpu_uploader up;
    REQUIRE_OK(gpu_uploader_create(&up, &ctx->dev, 1u << 20, &err), "%s", err.msg);
    struct gpu_weight w;
    REQUIRE_OK(gpu_weight_upload(&up, &device, type, k, n, data, 0, &w, &err), "%s", err.msg);
    struct gpu_buf step, x, xq, y;
    REQUIRE_OK(gpu_pool_alloc(&host, op_step_bytes(1), &step, &err), "%s", err.msg);
    REQUIRE_OK(gpu_pool_alloc(&host, (uint64_t)k * 4, &x, &err), "%s", err.msg);
    REQUIRE_OK(gpu_pool_alloc(&device, op_q8_bytes(1, k), &xq, &err), "%s", err.msg);
    REQUIRE_OK(gpu_pool_alloc(&readback, (uint64_t)n * 4, &y, &err), "%s", err.msg);
    fill(x.mapped, k, 2);
    op_step_prompt(&step, (const int32_t[]){0}, 1, 0, 0);

    REQUIRE_OK(tune_table_set(&ctx->tune, type, k, n, v, &err), "%s", err.msg);
    struct gpu_graph g;
    REQUIRE_OK(gpu_graph_create(&g, &ctx->dev, &err), "%s", err.msg);
    struct op_env e = {ctx, &g, step, 1, GPU_BARRIER, false};
    const bool q8 = op_matvec_takes_q8(&e, type, false);
    const uint32_t before = ctx->pipes.n_items;
    REQUIRE_OK(gpu_graph_begin(&g, &err), "%s", err.msg);
    if (q8) REQUIRE_OK(op_quantize_q8(&e, &x, &xq, k, false, &err), "%s", err.msg);
    REQUIRE_OK(op_matvec(&e, &w, q8 ? &xq : &x, &y, false, false, &err), "%s", err.msg);
    REQUIRE_OK(gpu_graph_end(&g, &err), "%s", err.msg);
    *new_pipelines = ctx->pipes.n_items - before;
    REQUIRE_OK(gpu_graph_run(&g, &err), "%s", err.msg);
    memcpy(out, y.mapped, (size_t)n * sizeof *out);
    REQUIRE_OK(tune_table_set(&ctx->tune, type, k, n, V(0, 0), &err), "%s", err.msg);

    gpu_graph_destroy(&g);
    gpu_uploader_destroy(&up);
    gpu_weight_free(&w);
    free(rows);
    free(data);
    gpu_pool_destroy(&host);
    gpu_pool_destroy(&device);
    gpu_pool_destroy(&readback);
}

/* TYPE's variants on the float path, or with INT_DOT the integer-dot one */
static void test_matvec(uint32_t type, bool int_dot)
{
    struct vkllm_error err = {0};
    struct vkllm_context *ctx;
    setenv("VKLLM_TUNE", "0", 1); /* not a tuning of this machine's cache */
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    unsetenv("VKLLM_TUNE");
    if (int_dot && !ctx->dev.info.int_dot) {
        printf("(no integer dot instructions: %s's variants not checked with them)\n",
               quant_format(type)->name);
        vkllm_context_destroy(ctx);
        return;
    }
    ctx->matvec_int_dot = int_dot;
    /* three K-quant super-blocks a row (an odd number for lanes that split a
     * row), and rows that fill no group of 2, 4 or 8 evenly */
    const uint32_t k = 768, n = 99;
    float want[99], got[99];
    uint32_t made;
    matvec_with(ctx, type, k, n, V(0, 0), want, &made);
    CHECK(made >= 1, "the untuned matvec made %u pipelines", made);
    matvec_with(ctx, type, k, n, V(0, 0), got, &made);
    CHECK(made == 0, "the same variant again made %u pipelines", made);
    /* every threads-per-row below the default, then the default's with
     * 1, 4 and 8 rows per group */
    struct matvec_variant vs[16];
    uint32_t n_vs = 0;
    for (uint32_t tpr = 1; tpr < ctx->matvec_tpr; tpr *= 2)
        vs[n_vs++] = V(tpr, OP_MATVEC_ROWS);
    for (uint32_t rows = 1; rows <= 8; rows *= 2)
        if (rows != OP_MATVEC_ROWS) vs[n_vs++] = V(ctx->matvec_tpr, rows);
    /* and a word of quants per lane, where the format has that variant */
    for (uint32_t rows = 1; op_matvec_by_word(ctx, type) && rows <= 4; rows *= 2)
        vs[n_vs++] = W(ctx->matvec_tpr, rows);
    for (uint32_t i = 0; i < n_vs; i++) {
        matvec_with(ctx, type, k, n, vs[i], got, &made);
        const char *name = quant_format(type)->name;
        CHECK(made == 1, "%s at %u threads per row, %u rows%s made %u pipelines", name, vs[i].tpr,
              vs[i].rows, vs[i].by_word ? ", words" : "", made);
        double num = 0, den = 0;
        for (uint32_t r = 0; r < n; r++) {
            num += (double)(got[r] - want[r]) * (got[r] - want[r]);
            den += (double)want[r] * want[r];
        }
        CHECK(den > 0 && num / den < 1e-10, "%s at %u threads per row, %u rows%s: NMSE %g", name,
              vs[i].tpr, vs[i].rows, vs[i].by_word ? ", words" : "", den > 0 ? num / den : -1.0);
    }
    /* a tuning for another shape changes nothing here */
    REQUIRE_OK(tune_table_set(&ctx->tune, type, k, n + 1, V(1, 2), &err), "%s", err.msg);
    matvec_with(ctx, type, k, n, V(0, 0), got, &made);
    CHECK(made == 0, "another shape's tuning made %u pipelines", made);
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
}

int main(void)
{
    REQUIRE(mkdtemp(dir));
    test_file();
    test_matvec(VKLLM_TYPE_F32, false);
    const uint32_t blocks[] = {VKLLM_TYPE_Q4_0, VKLLM_TYPE_Q4_K, VKLLM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        test_matvec(blocks[i], false);
        test_matvec(blocks[i], true);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_REPORT();
}
