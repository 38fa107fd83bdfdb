/* cmd_bench.c: vkllm bench: prompt and generation speed, measured and printed
 * as llama.cpp's llama-bench does, so that tools reading its markdown or JSON
 * read ours:
 *
 *   pp N  N pseudo-random tokens (BOS first if the vocabulary adds it) decoded
 *         as one batch into an empty context;
 *   tg N  N single-token decodes from an empty context (BOS, then random ids).
 *
 * Each test runs once to warm up (llama-bench warms tg with one token), then
 * -r times from a cleared KV cache. Times are wall-clock around the whole
 * test, as llama-bench's; the GPU timestamps (vkllm_session_last_gpu_ms) are
 * deliberately not used. Each test gets its own session sized for it, as
 * llama-bench gives each its own context (n_ctx = n_prompt + n_gen).
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_usage[] =
    "usage: vkllm bench -m MODEL [options]\n"
    "\n"
    "Prompt (pp) and generation (tg) speed in tokens/s, as llama.cpp's llama-bench.\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "  -p, --n-prompt N       prompt tokens, decoded as one batch; 0 skips the test (default 512)\n"
    "  -n, --n-gen N          tokens generated one at a time; 0 skips the test (default 128)\n"
    "  -r, --repetitions N    timed runs of each test, after one warm-up run (default 5)\n"
    "  -o, --output md|json   a markdown table or llama-bench's JSON (default md)\n"
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n" CLI_LORA_USAGE;

/* ============================== Model description ============================== */

/* llama.cpp's file types (enum llama_ftype) and the names llama-bench prints
 * for them; TENSOR is the tensor type that makes llama.cpp guess this file
 * type when general.file_type is absent (-1: never guessed). */
static const struct {
    int ftype, tensor;
    const char *name;
} ftypes[] = {
    {0, VKLLM_TYPE_F32, "all F32"},
    {1, VKLLM_TYPE_F16, "F16"},
    {2, VKLLM_TYPE_Q4_0, "Q4_0"},
    {3, VKLLM_TYPE_Q4_1, "Q4_1"},
    {7, VKLLM_TYPE_Q8_0, "Q8_0"},
    {8, VKLLM_TYPE_Q5_0, "Q5_0"},
    {9, VKLLM_TYPE_Q5_1, "Q5_1"},
    {10, VKLLM_TYPE_Q2_K, "Q2_K - Medium"},
    {11, -1, "Q3_K - Small"},
    {12, VKLLM_TYPE_Q3_K, "Q3_K - Medium"},
    {13, -1, "Q3_K - Large"},
    {14, -1, "Q4_K - Small"},
    {15, VKLLM_TYPE_Q4_K, "Q4_K - Medium"},
    {16, -1, "Q5_K - Small"},
    {17, VKLLM_TYPE_Q5_K, "Q5_K - Medium"},
    {18, VKLLM_TYPE_Q6_K, "Q6_K"},
    {21, -1, "Q2_K - Small"},
    {25, VKLLM_TYPE_IQ4_NL, "IQ4_NL - 4.5 bpw"},
    {30, VKLLM_TYPE_IQ4_XS, "IQ4_XS - 4.25 bpw"},
    {32, VKLLM_TYPE_BF16, "BF16"},
};

struct bench_model {
    const char *filename;
    char type[160];    /* llama-bench's model_type: "llama ?B Q4_0" */
    uint64_t size;     /* bytes of all tensors */
    uint64_t n_params; /* elements of all tensors */
};

/* What llama-bench reports about a model, from its GGUF file. model_type is
 * "ARCH SIZE FTYPE"; llama.cpp names SIZE from a table of known shapes, which
 * we do not copy: we always print its "unknown" label, "?B". */
static void describe_model(const vkllm_gguf *g, const char *path, struct bench_model *bm)
{
    uint64_t n_of_type[VKLLM_TYPE_COUNT] = {0};
    uint32_t most = VKLLM_TYPE_F32;
    bm->filename = path;
    bm->size = bm->n_params = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        bm->size += t->size;
        bm->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (t->type < VKLLM_TYPE_COUNT && ++n_of_type[t->type] > n_of_type[most]) most = t->type;
    }
    struct vkllm_gguf_str arch = {"?", 1};
    vkllm_gguf_get_str(g, "general.architecture", &arch, NULL);
    uint64_t ftype = 0;
    bool guessed = vkllm_gguf_get_uint(g, "general.file_type", &ftype, NULL) != VKLLM_OK;
    const char *name = NULL;
    for (size_t i = 0; i < sizeof ftypes / sizeof *ftypes && !name; i++)
        if (guessed ? ftypes[i].tensor == (int)most : (uint64_t)ftypes[i].ftype == ftype)
            name = ftypes[i].name;
    if (!name) name = guessed ? "all F32" : "unknown, may not work"; /* as llama.cpp */
    snprintf(bm->type, sizeof bm->type, "%.*s ?B %s%s", (int)(arch.len < 64 ? arch.len : 64),
             arch.ptr, guessed ? "(guessed) " : "", name);
}

/* ============================== Measuring ============================== */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A fixed pseudo-random token sequence (splitmix64), the same every run. */
static int32_t random_token(uint64_t *state, int32_t n_vocab)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (int32_t)(z % (uint64_t)n_vocab);
}

struct bench_test {
    int n_prompt, n_gen;
    int n_samples;
    uint64_t *samples_ns;
    char time[32]; /* when it started, RFC 3339 */
};

/* One run of TEST (or a warm-up with N_GEN tokens) from an empty cache; its
 * wall-clock time goes to *NS. */
static int run_once(vkllm_session *s, const vkllm_vocab *vocab, const struct bench_test *test,
                    int n_gen, int32_t *tokens, uint64_t *rng, uint64_t *ns,
                    struct vkllm_error *err)
{
    const int32_t n_vocab = vkllm_vocab_n_tokens(vocab);
    const int32_t first = vkllm_vocab_add_bos(vocab) && vkllm_vocab_bos(vocab) >= 0
                              ? vkllm_vocab_bos(vocab)
                              : random_token(rng, n_vocab);
    vkllm_session_reset(s);
    uint64_t t0 = now_ns();
    if (test->n_prompt > 0) {
        tokens[0] = first;
        for (int i = 1; i < test->n_prompt; i++)
            tokens[i] = random_token(rng, n_vocab);
        int rc = vkllm_session_decode(s, tokens, (uint32_t)test->n_prompt, err);
        if (rc) return rc;
    } else {
        int32_t tok = first;
        for (int i = 0; i < n_gen; i++) {
            int rc = vkllm_session_decode(s, &tok, 1, err);
            if (rc) return rc;
            tok = random_token(rng, n_vocab);
        }
    }
    *ns = now_ns() - t0;
    return VKLLM_OK;
}

/* Warms up, then fills test->samples_ns. */
static int run_test(vkllm_model *model, const struct cli_lora *lora, struct bench_test *test,
                    int reps, struct vkllm_error *err)
{
    const int n = test->n_prompt + test->n_gen;
    struct vkllm_session_params sp = {.n_ctx = (uint32_t)n,
                                      .n_batch = test->n_prompt > 0 ? (uint32_t)test->n_prompt : 1};
    vkllm_session *s = NULL;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    test->samples_ns = calloc((size_t)reps, sizeof *test->samples_ns);
    if (!tokens || !test->samples_ns) {
        free(tokens);
        err->code = VKLLM_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of host memory");
        return VKLLM_E_NOMEM;
    }
    int rc = vkllm_session_create(model, &sp, &s, err);
    if (!rc) rc = cli_lora_apply(lora, s, err);
    uint64_t rng = 1, ns;
    time_t now = time(NULL);
    strftime(test->time, sizeof test->time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (!rc) rc = run_once(s, vkllm_model_vocab(model), test, 1, tokens, &rng, &ns, err);
    for (int r = 0; r < reps && !rc; r++) {
        rc = run_once(s, vkllm_model_vocab(model), test, test->n_gen, tokens, &rng,
                      &test->samples_ns[r], err);
        if (!rc) test->n_samples++;
    }
    vkllm_session_free(s);
    free(tokens);
    return rc;
}

/* ============================== Statistics ============================== */

/* llama-bench's: the mean, and the sample standard deviation (0 for one sample). */
static double mean_of(const double *v, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    return n > 0 ? sum / n : 0.0;
}

static double stddev_of(const double *v, int n)
{
    if (n <= 1) return 0.0;
    double mean = mean_of(v, n), sq = 0.0;
    for (int i = 0; i < n; i++)
        sq += (v[i] - mean) * (v[i] - mean);
    return sqrt(sq / (n - 1));
}

struct bench_stats {
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
};

static void compute_stats(const struct bench_test *t, struct bench_stats *st)
{
    double *ns = malloc((size_t)t->n_samples * 2 * sizeof *ns);
    const int n_tokens = t->n_prompt + t->n_gen;
    memset(st, 0, sizeof *st);
    if (!ns) return;
    double *ts = ns + t->n_samples;
    for (int i = 0; i < t->n_samples; i++) {
        ns[i] = (double)t->samples_ns[i];
        ts[i] = 1e9 * n_tokens / ns[i];
    }
    st->avg_ns = mean_of(ns, t->n_samples);
    st->stddev_ns = stddev_of(ns, t->n_samples);
    st->avg_ts = mean_of(ts, t->n_samples);
    st->stddev_ts = stddev_of(ts, t->n_samples);
    free(ns);
}

/* ============================== Output ============================== */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* One object of llama-bench's JSON array, with its field names and number
 * formats (integers for ns, %f for t/s), plus "device". */
static void print_json(const struct bench_model *bm, const char *device, int n_batch,
                       const struct bench_test *t, bool first)
{
    struct bench_stats st;
    compute_stats(t, &st);
    printf("%s  {\n", first ? "" : ",\n");
    printf("    \"model_filename\": ");
    json_string(bm->filename);
    printf(",\n    \"model_type\": ");
    json_string(bm->type);
    printf(",\n    \"model_size\": %llu,\n", (unsigned long long)bm->size);
    printf("    \"model_n_params\": %llu,\n", (unsigned long long)bm->n_params);
    printf("    \"backends\": \"Vulkan\",\n    \"gpu_info\": ");
    json_string(device);
    printf(",\n    \"n_batch\": %d,\n    \"n_ubatch\": %d,\n", n_batch, n_batch);
    printf("    \"n_prompt\": %d,\n    \"n_gen\": %d,\n    \"n_depth\": 0,\n", t->n_prompt,
           t->n_gen);
    printf("    \"test_time\": \"%s\",\n", t->time);
    printf("    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n", st.avg_ns, st.stddev_ns);
    printf("    \"avg_ts\": %f,\n    \"stddev_ts\": %f,\n", st.avg_ts, st.stddev_ts);
    printf("    \"device\": ");
    json_string(device);
    printf(",\n    \"samples_ns\": [ ");
    for (int i = 0; i < t->n_samples; i++)
        printf("%s%llu", i ? ", " : "", (unsigned long long)t->samples_ns[i]);
    printf(" ],\n    \"samples_ts\": [ ");
    for (int i = 0; i < t->n_samples; i++)
        printf("%s%g", i ? ", " : "", 1e9 * (t->n_prompt + t->n_gen) / (double)t->samples_ns[i]);
    printf(" ]\n  }");
    fflush(stdout);
}

/* llama-bench's markdown columns: width < 0 is left-aligned. */
static const struct {
    const char *name;
    int width;
} md_cols[] = {{"model", -30},   {"size", 10}, {"params", 10},
               {"backend", -10}, {"test", 15}, {"t/s", 20}};
#define N_MD_COLS (int)(sizeof md_cols / sizeof *md_cols)

static void print_md_header(void)
{
    putchar('|');
    for (int i = 0; i < N_MD_COLS; i++)
        printf(" %*s |", md_cols[i].width, md_cols[i].name);
    printf("\n|");
    for (int i = 0; i < N_MD_COLS; i++) {
        putchar(' ');
        for (int k = 1; k < abs(md_cols[i].width); k++)
            putchar('-');
        printf("%s |", md_cols[i].width > 0 ? ":" : "-");
    }
    putchar('\n');
}

static void print_md_row(const struct bench_model *bm, const struct bench_test *t)
{
    struct bench_stats st;
    compute_stats(t, &st);
    char v[N_MD_COLS][sizeof bm->type];
    if (bm->size < (1ull << 30))
        snprintf(v[1], sizeof v[1], "%.2f MiB", bm->size / 1024.0 / 1024.0);
    else
        snprintf(v[1], sizeof v[1], "%.2f GiB", bm->size / 1024.0 / 1024.0 / 1024.0);
    if (bm->n_params < 1000000000ull)
        snprintf(v[2], sizeof v[2], "%.2f M", bm->n_params / 1e6);
    else
        snprintf(v[2], sizeof v[2], "%.2f B", bm->n_params / 1e9);
    snprintf(v[0], sizeof v[0], "%s", bm->type);
    snprintf(v[3], sizeof v[3], "Vulkan");
    snprintf(v[4], sizeof v[4], t->n_prompt > 0 ? "pp%d" : "tg%d",
             t->n_prompt > 0 ? t->n_prompt : t->n_gen);
    snprintf(v[5], sizeof v[5], "%.2f \u00b1 %.2f", st.avg_ts, st.stddev_ts);
    putchar('|');
    for (int i = 0; i < N_MD_COLS; i++) /* "±" is two bytes wide in UTF-8: one more */
        printf(" %*s |", md_cols[i].width + (i == N_MD_COLS - 1), v[i]);
    putchar('\n');
    fflush(stdout);
}

/* ============================== Command ============================== */

int cmd_bench(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL, *output = "md";
    long long n_prompt = 512, n_gen = 128, reps = 5;
    bool validate = false;
    struct cli_lora lora = {0};
    int lr;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
#define VALUE() ((v = cli_value(argc, argv, &i)) != NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(bench_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return 1;
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 20, &n_prompt)) return 1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 20, &n_gen)) return 1;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!VALUE() || !cli_int(a, v, 1, 1000, &reps)) return 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!VALUE()) return 1;
            if (strcmp(v, "md") && strcmp(v, "json"))
                return cli_error("%s: '%s' is not an output format (md or json)", a, v);
            output = v;
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) return 1;
            device = v;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else if ((lr = cli_lora_arg(&lora, argc, argv, &i)) != 0) {
            if (lr < 0) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm bench (see vkllm bench --help)", a);
        }
#undef VALUE
    }
    if (n_prompt == 0 && n_gen == 0) return cli_error("nothing to measure: -p and -n are both 0");
    if (!(model_path = cli_model(model_path))) return 1;
    const bool json = !strcmp(output, "json");

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    struct bench_test tests[2] = {{.n_prompt = (int)n_prompt}, {.n_gen = (int)n_gen}};
    int status = 1;

    struct vkllm_context_params cp = {.device = device, .validation = validate};
    /* the loader refuses, before any upload, a model that leaves no room for
     * the sessions run_test creates: this one is at least as large as each
     * (the longer context, the larger batch) */
    struct vkllm_session_params largest = {.n_ctx = (uint32_t)(n_prompt > n_gen ? n_prompt : n_gen),
                                           .n_batch = n_prompt > 0 ? (uint32_t)n_prompt : 1};
    struct vkllm_model_params mp = {.session = &largest};
    if (vkllm_context_create(&cp, &ctx, &err) ||
        vkllm_model_load(ctx, model_path, &mp, &model, &err))
        goto fail;
    cli_vocab_warnings(vkllm_model_vocab(model));
    if (cli_lora_load(&lora, model, &err)) goto fail;
    cli_lora_describe(&lora);
    const char *dev_name = vkllm_context_device(ctx)->name;
    struct bench_model bm;
    describe_model(vkllm_model_gguf(model), model_path, &bm);
    fprintf(stderr, "vkllm: %s on %s, %lld runs of each test after a warm-up\n",
            cli_shown(model_path), dev_name, reps);
    /* each test has a context of its own length */
    cli_warn_context(model, (uint32_t)(n_prompt > n_gen ? n_prompt : n_gen));

    if (json)
        fputs("[\n", stdout);
    else
        print_md_header();
    bool first = true;
    for (int i = 0; i < 2; i++) {
        struct bench_test *t = &tests[i];
        if (t->n_prompt + t->n_gen == 0) continue;
        if (run_test(model, &lora, t, (int)reps, &err)) goto fail;
        if (json)
            print_json(&bm, dev_name, t->n_prompt > 0 ? t->n_prompt : 1, t, first);
        else
            print_md_row(&bm, t);
        first = false;
    }
    if (json)
        fputs("\n]\n", stdout);
    else
        printf("\nbuild: vkllm %s; device: %s\n", VKLLM_VERSION, dev_name);
    status = 0;
    goto done;
fail:
    cli_error("%s", err.msg);
done:
    status = cli_validation_status(ctx, status);
    free(tests[0].samples_ns);
    free(tests[1].samples_ns);
    cli_lora_free(&lora);
    vkllm_model_free(model);
    vkllm_context_destroy(ctx);
    return status;
}
