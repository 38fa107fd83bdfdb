/* test_budget.c: the memory budget (engine/model/budget.c) against what the
 * pools allocate, and the refusals it makes before anything is uploaded.
 *
 * - vkllm_memory_needs (what `vkllm info` prints) equals the weight pool's and
 *   the session's allocation counters, byte for byte, for models of several
 *   families and formats (split half-float scales, fused matrices, sliding-
 *   window rings, two rotary settings) and several contexts and batches; run
 *   again with VKLLM_MAX_BINDING=16K so that every table is split in parts.
 * - VKLLM_MAX_MEMORY: a model whose weights do not fit is refused before the
 *   first upload (the progress callback never runs, no device memory is
 *   held); a context that does not fit is refused at load (when the load is
 *   told the session) and at session creation, and the context each refusal
 *   suggests does fit; the exact total fits and one byte less does not.
 * - Free memory from VK_EXT_memory_budget and without it (forced with
 *   VKLLM_FORCE=no-memory-budget where the driver has it).
 * - Bad VKLLM_MAX_MEMORY values are one error line. */
#include "context.h"
#include "testhelp.h"
#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *generate(const char *name, const char *args)
{
    static char path[8][1024];
    static int next;
    char *out = path[next++ % 8];
    char cmd[2048];
    snprintf(out, 1024, "%s/budget-%s.gguf", VKLLM_TEST_GEN, name);
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, out, args);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    return out;
}

static vkllm_context *context_with(const char *max_memory)
{
    if (max_memory)
        setenv("VKLLM_MAX_MEMORY", max_memory, 1);
    else
        unsetenv("VKLLM_MAX_MEMORY");
    vkllm_context *ctx = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    return ctx;
}

static uint64_t total(const struct vkllm_memory_needs *n)
{
    const uint64_t session = n->kv_cache + n->activations + n->session_host;
    CHECK(n->total == n->weights + (n->staging > session ? n->staging : session));
    return n->total;
}

static int progress_calls;
static void on_progress(float fraction, void *user)
{
    (void)fraction;
    (void)user;
    progress_calls++;
}

/* The needs for SP equal what loading and a session of SP allocate. */
static void check_agrees(vkllm_context *ctx, const char *path, struct vkllm_session_params sp)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    struct vkllm_memory_needs n;
    REQUIRE_OK(vkllm_memory_needs(g, ctx, &sp, &n, &err), "%s", err.msg);
    vkllm_gguf_close(g);
    uint64_t by_type = 0;
    for (int t = 0; t < VKLLM_TYPE_COUNT; t++)
        by_type += n.weights_type[t];
    CHECK(by_type > 0 && by_type <= n.weights, "%s: types %llu, weights %llu", path,
          (unsigned long long)by_type, (unsigned long long)n.weights);

    vkllm_model *m = NULL;
    struct vkllm_model_params mp = {.session = &sp};
    REQUIRE_OK(vkllm_model_load(ctx, path, &mp, &m, &err), "%s", err.msg);
    CHECK(vkllm_model_weight_bytes(m) == n.weights, "%s: weights allocated %llu, budget %llu", path,
          (unsigned long long)vkllm_model_weight_bytes(m), (unsigned long long)n.weights);
    vkllm_session *s = NULL;
    REQUIRE_OK(vkllm_session_create(m, &sp, &s, &err), "%s", err.msg);
    const uint64_t want = n.kv_cache + n.activations + n.session_host;
    CHECK(vkllm_session_memory_bytes(s) == want,
          "%s (n_ctx %u, n_batch %u): session allocated %llu, budget %llu", path, sp.n_ctx,
          sp.n_batch, (unsigned long long)vkllm_session_memory_bytes(s), (unsigned long long)want);
    CHECK(vkllm_session_n_ctx(s) == n.n_ctx);
    /* the buffers still hold a decode: a prompt through the batch graph, then one token */
    int32_t tokens[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint32_t k = n.n_ctx < 9 ? n.n_ctx - 1 : 8;
    CHECK(vkllm_session_decode(s, tokens, k, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_decode(s, tokens + k, 1, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_session_free(s);
    vkllm_model_free(m);
    CHECK(ctx->dev.allocated == 0, "%llu bytes still held", (unsigned long long)ctx->dev.allocated);
}

/* The N of "try -c N" in MSG, or 0. */
static uint32_t suggested(const char *msg)
{
    const char *p = strstr(msg, "try -c ");
    return p ? (uint32_t)strtoul(p + 7, NULL, 10) : 0;
}

static void check_refusals(const char *path)
{
    struct vkllm_error err = {0};
    char max[32];
    vkllm_gguf *g = NULL;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    vkllm_context *ctx = context_with(NULL);
    struct vkllm_session_params sp = {.n_ctx = 256};
    struct vkllm_memory_needs n;
    REQUIRE_OK(vkllm_memory_needs(g, ctx, &sp, &n, &err), "%s", err.msg);
    vkllm_context_destroy(ctx);

    /* the weights do not fit: refused before the first tensor is uploaded */
    snprintf(max, sizeof max, "%llu", (unsigned long long)(n.weights + n.staging - 1));
    ctx = context_with(max);
    vkllm_model *m = NULL;
    progress_calls = 0;
    struct vkllm_model_params mp = {.progress = on_progress};
    int rc = vkllm_model_load(ctx, path, &mp, &m, &err);
    REQUIRE(rc == VKLLM_E_DEVICE_MEMORY && !m, "rc %d: %s", rc, err.msg);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "needs") &&
              strstr(err.msg, "weights") && strstr(err.msg, "free") &&
              strstr(err.msg, "smaller quantization") && !strchr(err.msg, '\n'),
          "%s", err.msg);
    CHECK(progress_calls == 0 && ctx->dev.allocated == 0, "%d uploads, %llu bytes", progress_calls,
          (unsigned long long)ctx->dev.allocated);
    vkllm_context_destroy(ctx);

    /* the exact total fits, with the session told at load and created after */
    snprintf(max, sizeof max, "%llu", (unsigned long long)total(&n));
    ctx = context_with(max);
    mp.session = &sp;
    REQUIRE_OK(vkllm_model_load(ctx, path, &mp, &m, &err), "%s", err.msg);
    vkllm_session *s = NULL;
    CHECK(vkllm_session_create(m, &sp, &s, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_session_free(s);
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);

    /* one byte less: refused at load, with a context that fits */
    snprintf(max, sizeof max, "%llu", (unsigned long long)total(&n) - 1);
    ctx = context_with(max);
    progress_calls = 0;
    rc = vkllm_model_load(ctx, path, &mp, &m, &err);
    REQUIRE(rc == VKLLM_E_DEVICE_MEMORY && !m, "rc %d: %s", rc, err.msg);
    CHECK(progress_calls == 0 && ctx->dev.allocated == 0, "%d uploads, %llu bytes", progress_calls,
          (unsigned long long)ctx->dev.allocated);
    CHECK(strstr(err.msg, "KV cache") && strstr(err.msg, "for 256 tokens") &&
              strstr(err.msg, "(VKLLM_MAX_MEMORY)"),
          "%s", err.msg);
    struct vkllm_session_params fits = sp;
    fits.n_ctx = suggested(err.msg);
    CHECK(fits.n_ctx > 0 && fits.n_ctx < sp.n_ctx, "%s", err.msg);
    if (fits.n_ctx) {
        mp.session = &fits;
        REQUIRE_OK(vkllm_model_load(ctx, path, &mp, &m, &err), "%s", err.msg);
        CHECK(vkllm_session_create(m, &fits, &s, &err) == VKLLM_OK, "%s", err.msg);
        vkllm_session_free(s);
        s = NULL;
        vkllm_model_free(m);
        m = NULL;
    }

    /* the weights alone load (staging is smaller than the session); the
     * session is refused when created, before it allocates anything, and the
     * context it suggests fits */
    CHECK(n.staging < n.kv_cache + n.activations + n.session_host);
    mp.session = NULL;
    REQUIRE_OK(vkllm_model_load(ctx, path, &mp, &m, &err), "%s", err.msg);
    const uint64_t held = ctx->dev.allocated;
    rc = vkllm_session_create(m, &sp, &s, &err);
    REQUIRE(rc == VKLLM_E_DEVICE_MEMORY && !s, "rc %d: %s", rc, err.msg);
    CHECK(ctx->dev.allocated == held, "%llu bytes held, %llu before",
          (unsigned long long)ctx->dev.allocated, (unsigned long long)held);
    CHECK(strstr(err.msg, "a context of 256 tokens needs") &&
              strstr(err.msg, "free after the weights") && !strchr(err.msg, '\n'),
          "%s", err.msg);
    fits.n_ctx = suggested(err.msg);
    CHECK(fits.n_ctx > 0 && fits.n_ctx < sp.n_ctx, "%s", err.msg);
    CHECK(vkllm_session_create(m, &fits, &s, &err) == VKLLM_OK, "-c %u: %s", fits.n_ctx, err.msg);
    vkllm_session_free(s);
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);
    vkllm_gguf_close(g);
}

/* The two ways free memory is counted (vk_device.c): VK_EXT_memory_budget's
 * budget and usage, or the heap's size less what the pools hold. Lavapipe has
 * no such extension, so its arithmetic is checked on made-up figures; on the
 * device, VKLLM_FORCE=no-memory-budget takes the second way where the driver
 * offers the first, and then counts the pools' bytes. */
static void check_budget_paths(const char *path)
{
    VkPhysicalDeviceMemoryProperties mp = {.memoryHeapCount = 2};
    mp.memoryHeaps[1].size = 8000;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {0};
    b.heapBudget[1] = 6000;
    b.heapUsage[1] = 2500;
    struct vkllm_memory_budget out;
    vk_memory_figures(&mp, &b, 1, 100, 0, &out);
    CHECK(out.reported && out.size == 8000 && out.budget == 6000 && out.usage == 2500);
    vk_memory_figures(&mp, &b, 1, 100, 5000, &out); /* VKLLM_MAX_MEMORY=5000 */
    CHECK(out.reported && out.size == 5000 && out.budget == 5000 && out.usage == 2500);
    vk_memory_figures(&mp, NULL, 1, 100, 0, &out);
    CHECK(!out.reported && out.size == 8000 && out.budget == 8000 && out.usage == 100);
    vk_memory_figures(&mp, NULL, 1, 100, 7000, &out);
    CHECK(!out.reported && out.size == 7000 && out.budget == 7000 && out.usage == 100);

    unsetenv("VKLLM_MAX_MEMORY");
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    struct vkllm_context_params cp = {.force = "no-memory-budget"};
    REQUIRE_OK(vkllm_context_create(&cp, &ctx, &err), "%s", err.msg);
    CHECK(!ctx->dev.memory_budget && !vkllm_context_device(ctx)->memory_budget);
    vkllm_model *m = NULL;
    REQUIRE_OK(vkllm_model_load(ctx, path, NULL, &m, &err), "%s", err.msg);
    vkllm_context_memory(ctx, &out);
    CHECK(!out.reported && out.budget == out.size && out.usage == ctx->dev.allocated &&
              out.usage >= vkllm_model_weight_bytes(m),
          "size %llu, budget %llu, usage %llu, pools %llu", (unsigned long long)out.size,
          (unsigned long long)out.budget, (unsigned long long)out.usage,
          (unsigned long long)ctx->dev.allocated);
    CHECK(vkllm_context_device(ctx)->budget_bytes >= out.size);
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);
}

static void check_bad_values(void)
{
    /* strtoull saturated a number past 2^64 to 2^64 - 1 without a suffix */
    const char *bad[] = {"12X",
                         "0",
                         "-5",
                         "1.5G",
                         "G",
                         "4GB",
                         "99999999999999999999G",
                         "0K",
                         "1P",
                         "18446744073709551616",
                         "99999999999999999999",
                         "0x1000",
                         " 4096"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("VKLLM_MAX_MEMORY", bad[i], 1);
        vkllm_context *ctx = NULL;
        struct vkllm_error err = {0};
        int rc = vkllm_context_create(NULL, &ctx, &err);
        CHECK(rc == VKLLM_E_INVALID && !ctx && strstr(err.msg, "VKLLM_MAX_MEMORY") &&
                  strstr(err.msg, bad[i]),
              "'%s': rc %d: %s", bad[i], rc, err.msg);
        vkllm_context_destroy(ctx);
    }
    const char *good[][2] = {{"4096", "4096"}, {"8k", "8192"}, {"3M", "3145728"}};
    for (size_t i = 0; i < 3; i++) {
        vkllm_context *ctx = context_with(good[i][0]);
        struct vkllm_memory_budget b;
        vkllm_context_memory(ctx, &b);
        CHECK(b.size == strtoull(good[i][1], NULL, 10) && b.budget == b.size, "%s: %llu",
              good[i][0], (unsigned long long)b.size);
        vkllm_context_destroy(ctx);
    }
    unsetenv("VKLLM_MAX_MEMORY");
}

int main(void)
{
    const char *stories = VKLLM_TEST_DATA "/stories260K.gguf";
    const char *models[] = {
        stories,
        generate("llama-q4_0", "--arch llama --type q4_0 --n-embd 128 --n-head 8 --n-head-kv 4 "
                               "--n-ff 224 --n-vocab 340 --seed 301"),
        generate("phi3-q8_0", "--arch phi3 --type q8_0 --n-embd 128 --n-head 4 --n-head-kv 2 "
                              "--n-ff 192 --n-vocab 300 --seed 302"),
        generate("gemma3-q4_k", "--arch gemma3 --type q4_k --n-embd 256 --n-head 4 --n-head-kv 2 "
                                "--n-layer 3 --n-ff 512 --n-vocab 310 --window 16 --seed 303"),
        generate("qwen2-f16", "--arch qwen2 --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 "
                              "--n-ff 152 --n-vocab 331 --seed 304"),
    };
    /* with bindings of 16 KiB (test_budget_split) a layer's cache holds 64 tokens of gemma3 */
    const bool split = getenv("VKLLM_MAX_BINDING") != NULL;
    vkllm_context *ctx = context_with(NULL);
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        if (!split) check_agrees(ctx, models[i], (struct vkllm_session_params){0});
        check_agrees(ctx, models[i],
                     (struct vkllm_session_params){.n_ctx = split ? 40 : 64, .n_batch = 7});
        check_agrees(ctx, models[i],
                     (struct vkllm_session_params){
                         .n_ctx = split ? 48 : 300, .n_ubatch = 32, .logits_all = true});
    }
    if (!split) check_agrees(ctx, stories, (struct vkllm_session_params){.n_ctx = 8192});
    vkllm_context_destroy(ctx);
    if (split) return TEST_REPORT();

    check_refusals(stories);
    check_refusals(models[3]);
    check_budget_paths(stories);
    check_bad_values();
    return TEST_REPORT();
}
