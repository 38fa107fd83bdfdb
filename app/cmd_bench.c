/* cmd_bench.c: vkllm bench: prompt and generation speed, measured and printed
 * as llama.cpp's llama-bench does, so that tools reading its markdown or JSON
 * read ours:
 *
 *   pp N  N pseudo-random tokens (BOS first if the vocabulary adds it) decoded
 *         as one batch into an empty context;
 *   tg N  N single-token decodes from an empty context (BOS, then random ids);
 *         with -np P, P sequences at once, each step decoding a token of
 *         every one (a session group, as serve's slots): "tg N xP", whose
 *         t/s counts the tokens of all of them.
 *
 * With -d D (llama-bench's depth) each test starts with D random tokens
 * already in the context: decoded once before the timing, then kept (the
 * cache cut back to them) for every run; the session holds D + N tokens.
 * Decode rows add the GB/s they achieve (the bytes a step reads times steps
 * per second) and, with --bandwidth, its share of the device's copy
 * bandwidth, the ceiling decode works against. Before the tests, the time to
 * a first token: cold from the model load, and warm on the loaded model.
 *
 * Each test runs once to warm up (llama-bench warms tg with one token), then
 * -r times from its depth. Times are wall-clock around the whole
 * test, as llama-bench's; the GPU timestamps (vkllm_session_last_gpu_ms) are
 * deliberately not used. Each test gets its own session sized for it, as
 * llama-bench gives each its own context (n_ctx = n_depth + n_prompt + n_gen).
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
    "  -d, --n-depth N[,N..]  tokens already in the context when each test starts (default 0)\n"
    "  -ctk, --cache-type-k f16|q8_0  KV cache type of K (default f16)\n"
    "  -ctv, --cache-type-v f16|q8_0  KV cache type of V (default f16)\n"
    "  -np, --parallel N      tg decodes N sequences at once, a token of each per step (default "
    "1)\n"
    "  -o, --output md|json|csv  a markdown table, or llama-bench's JSON or CSV (default md)\n"
    "      --bandwidth        measure the device's copy bandwidth, and each decode's share of it\n"
    "      --profile          each test's last run: GPU time per kernel, weight matrix, layer\n"
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

#define BENCH_MAX_PARALLEL 64

struct bench_test {
    int n_prompt, n_gen, n_depth;
    int n_seq;         /* sequences decoded at once (tg; else 1) */
    int n_batch;       /* the session's: the prompt, else depth's steps (at most 512), else 1 */
    uint32_t type_k, type_v; /* the KV cache's types (-ctk, -ctv) */
    double read_bytes; /* device bytes a decode step reads, on average (tg only) */
    int n_samples;
    uint64_t *samples_ns;
    char time[32]; /* when it started, RFC 3339 */
};

/* BOS where the vocabulary adds it, else a random token: what every test,
 * and its depth, starts with (as in llama-bench). */
static int32_t first_token(const vkllm_vocab *vocab, uint64_t *rng)
{
    return vkllm_vocab_add_bos(vocab) && vkllm_vocab_bos(vocab) >= 0
               ? vkllm_vocab_bos(vocab)
               : random_token(rng, vkllm_vocab_n_tokens(vocab));
}

/* Leaves S holding TEST's depth: its first n_depth tokens kept from an earlier
 * run (the cache cut back to them), else decoded now, in steps of n_batch. */
static int restore_depth(vkllm_session *s, const vkllm_vocab *vocab, const struct bench_test *test,
                         int32_t *tokens, uint64_t *rng, struct vkllm_error *err)
{
    if (test->n_depth > 0 && vkllm_session_pos(s) >= (uint32_t)test->n_depth &&
        vkllm_session_truncate(s, (uint32_t)test->n_depth, NULL) == VKLLM_OK)
        return VKLLM_OK;
    vkllm_session_reset(s); /* a sliding window may have lost the depth: redo it */
    if (test->n_depth == 0) return VKLLM_OK;
    tokens[0] = first_token(vocab, rng);
    for (int i = 1; i < test->n_depth; i++)
        tokens[i] = random_token(rng, vkllm_vocab_n_tokens(vocab));
    return vkllm_session_decode(s, tokens, (uint32_t)test->n_depth, err);
}

/* One run of TEST (or a warm-up with N_GEN tokens) from its depth, in
 * group G's sessions; its wall-clock time, the depth's decode excluded, goes
 * to *NS. */
static int run_once(vkllm_session_group *g, const vkllm_vocab *vocab, const struct bench_test *test,
                    int n_gen, int32_t *tokens, uint64_t *rng, uint64_t *ns,
                    struct vkllm_error *err)
{
    const int32_t n_vocab = vkllm_vocab_n_tokens(vocab);
    vkllm_session *s[BENCH_MAX_PARALLEL];
    int32_t step[BENCH_MAX_PARALLEL];
    int rc = VKLLM_OK;
    for (int k = 0; k < test->n_seq && !rc; k++) {
        s[k] = vkllm_session_group_member(g, (uint32_t)k);
        rc = restore_depth(s[k], vocab, test, tokens, rng, err);
        step[k] = first_token(vocab, rng);
    }
    if (rc) return rc;
    /* a profile of this run alone, as the time: without the depth's decode
     * (a prompt's kernels, before a tg test), and each run the same work */
    vkllm_session_profile_reset(s[0]);
    uint64_t t0 = now_ns();
    if (test->n_prompt > 0) {
        tokens[0] = step[0];
        for (int i = 1; i < test->n_prompt; i++)
            tokens[i] = random_token(rng, n_vocab);
        if ((rc = vkllm_session_decode(s[0], tokens, (uint32_t)test->n_prompt, err))) return rc;
    } else {
        for (int i = 0; i < n_gen; i++) {
            if ((rc = vkllm_session_group_decode(g, s, step, (uint32_t)test->n_seq, err)))
                return rc;
            for (int k = 0; k < test->n_seq; k++)
                step[k] = random_token(rng, n_vocab);
        }
    }
    *ns = now_ns() - t0;
    return VKLLM_OK;
}

/* The session T runs in: llama-bench's n_ctx (n_depth + n_prompt + n_gen). */
static struct vkllm_session_params test_session(const struct bench_test *t)
{
    return (struct vkllm_session_params){.n_ctx = (uint32_t)(t->n_depth + t->n_prompt + t->n_gen),
                                         .n_batch = (uint32_t)t->n_batch,
                                         .n_seq = (uint32_t)t->n_seq,
                                         .type_k = t->type_k,
                                         .type_v = t->type_v};
}

/* The session of the test among TESTS[0..N) that needs the most device memory
 * with the model at PATH: each test has a session of its own, one at a time,
 * so the loader's check of this one, before any upload, covers them all
 * (their longest context, largest batch and most sequences together may be
 * no test's). */
static int largest_session(const vkllm_context *ctx, const char *path,
                           const struct bench_test *tests, int n, struct vkllm_session_params *out,
                           struct vkllm_error *err)
{
    vkllm_gguf *g = NULL;
    uint64_t most = 0;
    int rc = vkllm_gguf_open(path, &g, err);
    for (int i = 0; i < n && !rc; i++) {
        const struct vkllm_session_params sp = test_session(&tests[i]);
        struct vkllm_memory_needs needs;
        if (!(rc = vkllm_memory_needs(g, ctx, &sp, &needs, err)) && needs.total >= most) {
            most = needs.total;
            *out = sp;
        }
    }
    vkllm_gguf_close(g);
    return rc;
}

/* T as the table names it: "pp512", "tg128 x4 @ d512". */
static void test_name(const struct bench_test *t, char *buf, size_t n)
{
    int len = snprintf(buf, n, t->n_prompt > 0 ? "pp%d" : "tg%d",
                       t->n_prompt > 0 ? t->n_prompt : t->n_gen);
    if (t->n_seq > 1) len += snprintf(buf + len, n - len, " x%d", t->n_seq);
    if (t->n_depth > 0) snprintf(buf + len, n - len, " @ d%d", t->n_depth);
}

/* Warms up, then fills test->samples_ns; with PROFILE (a context that
 * profiles), prints where the GPU time went, held against COPY_GBPS. */
static int run_test(vkllm_model *model, const struct cli_lora *lora, struct bench_test *test,
                    int reps, bool profile, double copy_gbps, struct vkllm_error *err)
{
    const struct vkllm_session_params sp = test_session(test);
    const int n = (int)sp.n_ctx;
    vkllm_session_group *g = NULL;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    test->samples_ns = calloc((size_t)reps, sizeof *test->samples_ns);
    if (!tokens || !test->samples_ns) {
        free(tokens);
        err->code = VKLLM_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of host memory");
        return VKLLM_E_NOMEM;
    }
    int rc = vkllm_session_group_create(model, &sp, &g, err);
    /* the group's sessions share one adapter set */
    if (!rc) rc = cli_lora_apply(lora, vkllm_session_group_member(g, 0), err);
    uint64_t rng = 1, ns;
    time_t now = time(NULL);
    strftime(test->time, sizeof test->time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (!rc) rc = run_once(g, vkllm_model_vocab(model), test, 1, tokens, &rng, &ns, err);
    for (int r = 0; r < reps && !rc; r++) {
        rc = run_once(g, vkllm_model_vocab(model), test, test->n_gen, tokens, &rng,
                      &test->samples_ns[r], err);
        if (!rc) test->n_samples++;
    }
    if (!rc && test->n_gen > 0) {
        /* the launches a decoded token costs, whatever the device's speed */
        uint32_t dispatches, barriers;
        char name[64];
        test_name(test, name, sizeof name);
        vkllm_session_step_counts(vkllm_session_group_member(g, 0), &dispatches, &barriers);
        fprintf(stderr, "vkllm: %s: %.1f dispatches, %.1f barriers per decoded token\n", name,
                (double)dispatches / test->n_seq, (double)barriers / test->n_seq);
    }
    if (!rc && profile) {
        char name[64];
        test_name(test, name, sizeof name);
        fprintf(stderr,
                "profile: %s, its last timed run (as its time, without the depth's decode)\n",
                name);
        rc = cli_profile_print(vkllm_session_group_member(g, 0), copy_gbps, err);
    }
    vkllm_session_group_free(g);
    free(tokens);
    return rc;
}

/* The device bytes a decode step of T reads per token, on average over its
 * steps: every weight (of token_embd only the row it looks up, unless the
 * output matrix shares it) once for the step's n_seq tokens, and the keys and
 * values (half floats) of the positions each token attends to. A LoRA
 * adapter's matrices are not counted. */
static double decode_read_bytes(const vkllm_model *m, const struct bench_test *t)
{
    const struct vkllm_hparams *hp = vkllm_model_hparams(m);
    const vkllm_gguf *g = vkllm_model_gguf(m);
    double bytes = (double)vkllm_model_weight_bytes(m);
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g) && !hp->tied_output; i++) {
        const struct vkllm_gguf_tensor *w = vkllm_gguf_tensor_at(g, i);
        if (w->name.len == 17 && !memcmp(w->name.ptr, "token_embd.weight", 17))
            bytes -= (double)w->size - (double)w->size / (double)w->ne[1];
    }
    /* the step at position p attends to p + 1 of them (a sliding-window layer
     * to at most its window): the mean over positions n_depth.. */
    const double ctx = t->n_depth + (t->n_gen + 1) / 2.0;
    const double window = hp->sliding_window && ctx > hp->sliding_window ? hp->sliding_window : ctx;
    /* K and V: halves, or Q8_0's 34 bytes per 32 values */
    const double kv = (double)hp->n_head_kv * hp->head_dim;
    const double per_position = kv * (t->type_k == VKLLM_CACHE_Q8_0 ? 34.0 / 32 : 2) +
                                kv * (t->type_v == VKLLM_CACHE_Q8_0 ? 34.0 / 32 : 2);
    return bytes / t->n_seq +
           per_position * ((hp->n_layer - hp->n_swa_layers) * ctx + hp->n_swa_layers * window);
}

/* What a user of `run` waits for: a session of its own on M, a short prompt
 * decoded, the first token picked (greedy). *MS is the time from T0 (a
 * cli_now_ms reading) to that pick; *N_TOKENS the prompt's length. */
static int time_first_token(vkllm_model *m, const struct cli_lora *lora, double t0, double *ms,
                            int *n_tokens, struct vkllm_error *err)
{
    static const char prompt[] = "Once upon a time, there was a little";
    const vkllm_vocab *vocab = vkllm_model_vocab(m);
    int32_t tokens[2 * sizeof prompt]; /* a token per byte, and BOS and EOS, at most */
    const int n = vkllm_tokenize(vocab, prompt, sizeof prompt - 1, true, false, tokens,
                                 (int)(sizeof tokens / sizeof *tokens));
    if (n <= 0 || n > (int)(sizeof tokens / sizeof *tokens))
        return vkllm_fail(err, VKLLM_E_INVALID, "the vocabulary gives no tokens for \"%s\"",
                          prompt);
    struct vkllm_session_params sp = {.n_ctx = (uint32_t)n, .n_batch = (uint32_t)n};
    struct vkllm_sampler_params greedy = vkllm_sampler_defaults(0);
    greedy.temp = 0.0f;
    vkllm_session *s = NULL;
    vkllm_sampler *sampler = NULL;
    int rc = vkllm_session_create(m, &sp, &s, err);
    if (!rc) rc = cli_lora_apply(lora, s, err);
    if (!rc) rc = vkllm_sampler_create(&greedy, vkllm_vocab_n_tokens(vocab), &sampler, err);
    if (!rc) rc = vkllm_session_decode(s, tokens, (uint32_t)n, err);
    if (!rc && vkllm_sampler_sample(sampler, vkllm_session_logits(s, -1)) < 0)
        rc = vkllm_fail(err, VKLLM_E_INVALID, "no token sampled after the prompt");
    *ms = cli_now_ms() - t0;
    *n_tokens = n;
    vkllm_sampler_free(sampler);
    vkllm_session_free(s);
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

/* The tokens one run of T decodes: its prompt, or a token of each of its
 * sequences per step. Every t/s figure (avg_ts, samples_ts, the table)
 * divides this by a run's time. */
static int test_tokens(const struct bench_test *t)
{
    return t->n_prompt + t->n_gen * t->n_seq;
}

static void compute_stats(const struct bench_test *t, struct bench_stats *st)
{
    double *ns = malloc((size_t)t->n_samples * 2 * sizeof *ns);
    const int n_tokens = test_tokens(t);
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

/* What the run measured besides the tests, printed with each of them. */
struct bench_run {
    double copy_gbps;                  /* --bandwidth's figure; 0: not measured */
    double ttft_cold_ms, ttft_warm_ms; /* time to first token, see time_first_token */
    int ttft_tokens;                   /* the prompt's */
};

/* Decode's achieved bandwidth: the bytes a step reads times steps per second. */
static double achieved_gbps(const struct bench_test *t, const struct bench_stats *st)
{
    return t->read_bytes * st->avg_ts / 1e9;
}

/* A field of a test's JSON object or CSV row: STR, or a number already
 * formatted in NUM ("null" when it does not apply). */
struct bench_field {
    const char *name, *str;
    char num[40];
};

/* llama-bench's fields that vkllm has, in llama-bench's order and number
 * formats (integers for sizes and ns, %f for t/s), then ours: "device", the
 * bytes a decode step reads and the GB/s it achieves, the copy bandwidth and
 * its share, and the time to first token. Returns how many. */
#define BENCH_FIELDS 26
static int bench_fields(const struct bench_model *bm, const char *device,
                        const struct bench_test *t, const struct bench_run *run,
                        struct bench_field *f)
{
    struct bench_stats st;
    compute_stats(t, &st);
    const bool tg = t->n_gen > 0;
    int n = 0;
#define STR(k, v) f[n++] = (struct bench_field){.name = (k), .str = (v)}
#define NUM(k, ...)                                                                                \
    (f[n] = (struct bench_field){.name = (k)}, snprintf(f[n].num, sizeof f[n].num, __VA_ARGS__),   \
     n++)
    STR("gpu_info", device);
    STR("backends", "Vulkan");
    STR("model_filename", bm->filename);
    STR("model_type", bm->type);
    NUM("model_size", "%llu", (unsigned long long)bm->size);
    NUM("model_n_params", "%llu", (unsigned long long)bm->n_params);
    NUM("n_batch", "%d", t->n_batch);
    NUM("n_ubatch", "%d", t->n_batch);
    STR("type_k", vkllm_cache_type_name(t->type_k));
    STR("type_v", vkllm_cache_type_name(t->type_v));
    NUM("n_prompt", "%d", t->n_prompt);
    NUM("n_gen", "%d", t->n_gen);
    NUM("n_depth", "%d", t->n_depth);
    STR("test_time", t->time);
    NUM("avg_ns", "%.0f", st.avg_ns);
    NUM("stddev_ns", "%.0f", st.stddev_ns);
    NUM("avg_ts", "%f", st.avg_ts);
    NUM("stddev_ts", "%f", st.stddev_ts);
    STR("device", device);
    NUM("read_bytes_per_token", tg ? "%.0f" : "null", t->read_bytes);
    NUM("avg_gbps", tg ? "%f" : "null", achieved_gbps(t, &st));
    NUM("copy_gbps", run->copy_gbps > 0 ? "%f" : "null", run->copy_gbps);
    NUM("copy_share", tg && run->copy_gbps > 0 ? "%f" : "null",
        achieved_gbps(t, &st) / (run->copy_gbps > 0 ? run->copy_gbps : 1.0));
    NUM("ttft_cold_ms", "%f", run->ttft_cold_ms);
    NUM("ttft_warm_ms", "%f", run->ttft_warm_ms);
    NUM("n_parallel", "%d", t->n_seq);
#undef STR
#undef NUM
    return n;
}

/* One object of llama-bench's JSON array, then its samples. */
static void print_json(const struct bench_model *bm, const char *device, const struct bench_test *t,
                       const struct bench_run *run, bool first)
{
    struct bench_field f[BENCH_FIELDS];
    const int n = bench_fields(bm, device, t, run, f);
    printf("%s  {\n", first ? "" : ",\n");
    for (int i = 0; i < n; i++) {
        printf("    \"%s\": ", f[i].name);
        if (f[i].str)
            json_string(f[i].str);
        else
            fputs(f[i].num, stdout);
        fputs(",\n", stdout);
    }
    printf("    \"samples_ns\": [ ");
    for (int i = 0; i < t->n_samples; i++)
        printf("%s%llu", i ? ", " : "", (unsigned long long)t->samples_ns[i]);
    printf(" ],\n    \"samples_ts\": [ ");
    for (int i = 0; i < t->n_samples; i++)
        printf("%s%g", i ? ", " : "", 1e9 * test_tokens(t) / (double)t->samples_ns[i]);
    printf(" ]\n  }");
    fflush(stdout);
}

/* llama-bench's CSV: a header of field names, then every value quoted with
 * '"' doubled inside; a field that does not apply is empty. */
static void print_csv(const struct bench_model *bm, const char *device, const struct bench_test *t,
                      const struct bench_run *run, bool header)
{
    struct bench_field f[BENCH_FIELDS];
    const int n = bench_fields(bm, device, t, run, f);
    for (int i = 0; header && i < n; i++)
        printf("%s%s", i ? "," : "", f[i].name);
    if (header) putchar('\n');
    for (int i = 0; i < n; i++) {
        const char *v = f[i].str ? f[i].str : strcmp(f[i].num, "null") ? f[i].num : "";
        printf("%s\"", i ? "," : "");
        for (; *v; v++)
            printf(*v == '"' ? "\"\"" : "%c", *v);
        putchar('"');
    }
    putchar('\n');
    fflush(stdout);
}

/* llama-bench's markdown columns (width < 0 is left-aligned), then ours for
 * decode rows: achieved GB/s, and its share of the copy bandwidth. */
static const struct {
    const char *name;
    int width;
} md_cols[] = {{"model", -30}, {"size", 10}, {"params", 10}, {"backend", -10},
               {"test", 15},   {"t/s", 20},  {"GB/s", 8},    {"of copy", 8}};
#define MD_LLAMA_COLS 6 /* llama-bench's */

/* With KV, llama-bench's type_k and type_v columns before "test" (it shows
 * them when a cache type is not f16). */
#define MD_KV_AT 4
static void print_md_header(int n_cols, bool kv)
{
    putchar('|');
    for (int i = 0; i < n_cols; i++) {
        if (i == MD_KV_AT && kv) printf(" %-6s | %-6s |", "type_k", "type_v");
        printf(" %*s |", md_cols[i].width, md_cols[i].name);
    }
    printf("\n|");
    for (int i = 0; i < n_cols; i++) {
        if (i == MD_KV_AT && kv) printf(" ------ | ------ |");
        putchar(' ');
        for (int k = 1; k < abs(md_cols[i].width); k++)
            putchar('-');
        printf("%s |", md_cols[i].width > 0 ? ":" : "-");
    }
    putchar('\n');
}

static void print_md_row(const struct bench_model *bm, const struct bench_test *t,
                         const struct bench_run *run, int n_cols, bool kv)
{
    struct bench_stats st;
    compute_stats(t, &st);
    char v[sizeof md_cols / sizeof *md_cols][sizeof bm->type] = {{0}};
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
    test_name(t, v[4], sizeof v[4]);
    snprintf(v[5], sizeof v[5], "%.2f \u00b1 %.2f", st.avg_ts, st.stddev_ts);
    if (t->n_gen > 0) {
        snprintf(v[6], sizeof v[6], "%.2f", achieved_gbps(t, &st));
        if (run->copy_gbps > 0)
            snprintf(v[7], sizeof v[7], "%.1f%%", 100.0 * achieved_gbps(t, &st) / run->copy_gbps);
    }
    putchar('|');
    for (int i = 0; i < n_cols; i++) { /* "±" is two bytes wide in UTF-8: one more */
        if (i == MD_KV_AT && kv)
            printf(" %-6s | %-6s |", vkllm_cache_type_name(t->type_k),
                   vkllm_cache_type_name(t->type_v));
        printf(" %*s |", md_cols[i].width + (i == MD_LLAMA_COLS - 1), v[i]);
    }
    putchar('\n');
    fflush(stdout);
}

/* ============================== Command ============================== */

/* -d's value: depths separated by commas, as llama-bench takes them. */
#define BENCH_MAX_DEPTHS 16
static bool parse_depths(const char *flag, const char *v, int *depths, int *n)
{
    *n = 0;
    for (const char *p = v;; p++) {
        const size_t len = strcspn(p, ",");
        char one[24];
        long long d;
        if (*n == BENCH_MAX_DEPTHS)
            return !cli_error("%s: at most %d depths", flag, BENCH_MAX_DEPTHS);
        if (len >= sizeof one) return !cli_error("%s: '%s' is not a number", flag, v);
        memcpy(one, p, len);
        one[len] = 0;
        if (!cli_int(flag, one, 0, 1 << 20, &d)) return false;
        depths[(*n)++] = (int)d;
        p += len;
        if (!*p) return true;
    }
}

int cmd_bench(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL, *output = "md";
    long long n_prompt = 512, n_gen = 128, reps = 5, n_par = 1;
    int depths[BENCH_MAX_DEPTHS] = {0}, n_depths = 1;
    bool validate = false, bandwidth = false, profile = false, is_k;
    uint32_t type_k = VKLLM_CACHE_F16, type_v = VKLLM_CACHE_F16; /* -ctk, -ctv */
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
            if (strcmp(v, "md") && strcmp(v, "json") && strcmp(v, "csv"))
                return cli_error("%s: '%s' is not an output format (md, json or csv)", a, v);
            output = v;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (!VALUE() || !parse_depths(a, v, depths, &n_depths)) return 1;
        } else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
            if (!VALUE() || !cli_int(a, v, 1, BENCH_MAX_PARALLEL, &n_par)) return 1;
        } else if (cli_is_cache_flag(a, &is_k)) {
            if (!VALUE() || !cli_cache_type(a, v, is_k ? &type_k : &type_v)) return 1;
        } else if (!strcmp(a, "--bandwidth")) {
            bandwidth = true;
        } else if (!strcmp(a, "--profile")) {
            profile = true;
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
    /* llama-bench has no -np; ours batches the tg test only (a pp test is one
     * sequence's batch already): with no tg test it would be ignored quietly */
    if (n_par > 1 && n_gen == 0)
        return cli_error("-np %lld: only the tg test decodes sequences in parallel, and -n 0 "
                         "skips it",
                         n_par);
    if (!(model_path = cli_model(model_path))) return 1;
    const bool json = !strcmp(output, "json"), csv = !strcmp(output, "csv");

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    /* llama-bench's order: each depth's pp test, then its tg test */
    struct bench_test tests[2 * BENCH_MAX_DEPTHS] = {{0}};
    int n_tests = 0;
    for (int d = 0; d < n_depths; d++) {
        if (n_prompt > 0)
            tests[n_tests++] = (struct bench_test){.n_prompt = (int)n_prompt,
                                                   .n_depth = depths[d],
                                                   .n_seq = 1,
                                                   .n_batch = (int)n_prompt};
        /* the depth goes in steps of up to 512, as prompts do by default; a
         * group's step takes a token of each sequence */
        const int depth_batch = depths[d] > 512 ? 512 : depths[d] > 0 ? depths[d] : 1;
        if (n_gen > 0)
            tests[n_tests++] =
                (struct bench_test){.n_gen = (int)n_gen,
                                    .n_depth = depths[d],
                                    .n_seq = (int)n_par,
                                    .n_batch = depth_batch > n_par ? depth_batch : (int)n_par};
    }
    const bool kv_cols = type_k != VKLLM_CACHE_F16 || type_v != VKLLM_CACHE_F16;
    for (int i = 0; i < n_tests; i++)
        tests[i].type_k = type_k, tests[i].type_v = type_v;
    struct bench_run run = {0};
    int status = 1;
    bool array_open = false; /* -o json's '[' is out */

    profile = cli_profile_wanted(profile);
    struct vkllm_context_params cp = {.device = device, .validation = validate, .profile = profile};
    /* the loader refuses, before any upload, a model that leaves no room for
     * the largest session run_test creates, in bench's own terms */
    struct vkllm_session_params largest = {0};
    uint32_t longest = 0; /* context */
    for (int i = 0; i < n_tests; i++)
        if (test_session(&tests[i]).n_ctx > longest) longest = test_session(&tests[i]).n_ctx;
    struct vkllm_model_params mp = {.session = &largest,
                                    .adapters = lora.path,
                                    .n_adapters = (uint32_t)lora.n,
                                    .advice = "fewer -np or a smaller -d, -p or -n"};
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    if (largest_session(ctx, model_path, tests, n_tests, &largest, &err)) goto fail;
    const char *dev_name = vkllm_context_device(ctx)->name;
    /* before the load, so that the copy has the device's memory to itself */
    if (bandwidth) {
        if (vkllm_context_copy_bandwidth(ctx, &run.copy_gbps, &err)) goto fail;
        fprintf(stderr, "vkllm: copy bandwidth of %s: %.2f GB/s\n", dev_name, run.copy_gbps);
    }
    /* cold: the process's first load (its pipelines made or read from the
     * on-disk cache) to a first token; warm: a second session on the model */
    const double t_load = cli_now_ms();
    if (vkllm_model_load(ctx, model_path, &mp, &model, &err)) goto fail;
    const double t_tune = cli_autotune(model); /* not counted in the time to a first token */
    cli_vocab_warnings(vkllm_model_vocab(model));
    if (cli_lora_load(&lora, model, &err)) goto fail;
    cli_lora_describe(&lora);
    if (time_first_token(model, &lora, t_load + t_tune, &run.ttft_cold_ms, &run.ttft_tokens,
                         &err) ||
        time_first_token(model, &lora, cli_now_ms(), &run.ttft_warm_ms, &run.ttft_tokens, &err))
        goto fail;
    struct bench_model bm;
    describe_model(vkllm_model_gguf(model), model_path, &bm);
    fprintf(stderr, "vkllm: %s on %s, %lld runs of each test after a warm-up\n",
            cli_shown(model_path), dev_name, reps);
    /* each test has a context of its own length */
    cli_warn_context(model, longest);

    const int md_cols_shown = MD_LLAMA_COLS + (n_gen > 0) + (n_gen > 0 && bandwidth);
    if (json)
        array_open = fputs("[\n", stdout) >= 0;
    else if (!csv)
        print_md_header(md_cols_shown, kv_cols);
    for (int i = 0; i < n_tests; i++) {
        struct bench_test *t = &tests[i];
        if (t->n_gen > 0) t->read_bytes = decode_read_bytes(model, t);
        if (run_test(model, &lora, t, (int)reps, profile, run.copy_gbps, &err)) goto fail;
        if (json)
            print_json(&bm, dev_name, t, &run, i == 0);
        else if (csv)
            print_csv(&bm, dev_name, t, &run, i == 0);
        else
            print_md_row(&bm, t, &run, md_cols_shown, kv_cols);
    }
    if (json) {
        fputs("\n]\n", stdout);
    } else if (!csv) {
        printf("\ntime to first token (%d-token prompt): cold %.1f ms from the model load, "
               "warm %.1f ms\n",
               run.ttft_tokens, run.ttft_cold_ms, run.ttft_warm_ms);
        if (bandwidth) printf("copy bandwidth: %.2f GB/s\n", run.copy_gbps);
        printf("build: vkllm %s; device: %s\n", VKLLM_VERSION, dev_name);
    }
    status = 0;
    goto done;
fail:
    if (array_open) fputs("\n]\n", stdout); /* what was printed stays JSON */
    cli_error("%s", err.msg);
done:
    status = cli_validation_status(ctx, status);
    for (int i = 0; i < n_tests; i++)
        free(tests[i].samples_ns);
    cli_lora_free(&lora);
    vkllm_model_free(model);
    vkllm_context_destroy(ctx);
    return status;
}
