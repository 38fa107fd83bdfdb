/* test_faults.c: the Vulkan layer under device faults (engine/vk/vk_fault.h),
 * and the review's defects in it, each with the check that guards it:
 * - the pipeline registry was keyed by shader and constants only, so the same
 *   shader with other bindings or push-constant size got the first one's
 *   layout (test_registry);
 * - a descriptor-set count dropped before the allocation succeeded, so each
 *   failed allocation lost a set of the pool (test_descriptor_count);
 * - staging memory was freed after a failed wait while the GPU could still
 *   copy from it (test_lost_upload: the validation layer reports objects
 *   destroyed in use).
 * And: after a loss every call fails fast with the same message; a wait that
 * times out says why; bad VKLLM_FAULT and VKLLM_TIMEOUT values are refused,
 * numbers past 64 bits, hex, "inf" and "nan" included (they were read). */
#include "context.h"
#include "kernels.h"
#include "testhelp.h"
#include "vk_commands.h"
#include "vk_fault.h"

#include <string.h>

static bool contains(const char *s, const char *part)
{
    return strstr(s, part) != NULL;
}

static vkllm_context *context(void)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    return ctx;
}

/* get_rows reads 3 bindings and struct push_get_rows: a layout with more of
 * either is valid for it, one with less is not. */
static void test_registry(void)
{
    vkllm_context *ctx = context();
    struct vkllm_error err = {0};
    const uint32_t spec[1] = {ctx->wg_size};
    const uint32_t push = sizeof(struct push_get_rows);
    struct vk_pipeline *a, *again, *bindings, *pushes;
    REQUIRE_OK(vk_pipeline_get(&ctx->pipes, SHADER_GET_ROWS_F32, spec, 1, 3, push, &a, &err));
    REQUIRE_OK(vk_pipeline_get(&ctx->pipes, SHADER_GET_ROWS_F32, spec, 1, 3, push, &again, &err));
    REQUIRE_OK(
        vk_pipeline_get(&ctx->pipes, SHADER_GET_ROWS_F32, spec, 1, 4, push, &bindings, &err));
    REQUIRE_OK(
        vk_pipeline_get(&ctx->pipes, SHADER_GET_ROWS_F32, spec, 1, 3, push + 16, &pushes, &err));
    CHECK(a == again, "the same request built a second pipeline");
    CHECK(bindings != a && bindings->n_bindings == 4 && bindings->set_layout != a->set_layout,
          "4 bindings got the pipeline of 3");
    CHECK(pushes != a && pushes->push_size == push + 16 && pushes->layout != a->layout,
          "%u bytes of push constants got the pipeline of %u", push + 16, push);
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
}

/* N buffers of BYTES each from POOL, and G recording: what a dispatch test
 * binds and records into. */
static void graph_begin(vkllm_context *ctx, struct gpu_pool *pool, struct gpu_buf *bufs, int n,
                        VkDeviceSize bytes, struct gpu_graph *g)
{
    struct vkllm_error err = {0};
    gpu_pool_init(pool, &ctx->dev, GPU_POOL_DEVICE, 1 << 16);
    for (int i = 0; i < n; i++)
        REQUIRE_OK(gpu_pool_alloc(pool, bytes, &bufs[i], &err), "%s", err.msg);
    REQUIRE_OK(gpu_graph_create(g, &ctx->dev, &err), "%s", err.msg);
    REQUIRE_OK(gpu_graph_begin(g, &err), "%s", err.msg);
}

/* Ends and frees what graph_begin made, then CTX, which must have had no
 * validation message. */
static void graph_end(vkllm_context *ctx, struct gpu_pool *pool, struct gpu_graph *g)
{
    struct vkllm_error err = {0};
    REQUIRE_OK(gpu_graph_end(g, &err), "%s", err.msg);
    gpu_graph_destroy(g);
    gpu_pool_destroy(pool);
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
}

/* One failed descriptor-set allocation, then a pool's worth (256) of sets:
 * they fit the first pool only if the failure did not count. */
static void test_descriptor_count(void)
{
    vkllm_context *ctx = context();
    struct vkllm_error err = {0};
    const uint32_t spec[1] = {ctx->wg_size};
    struct vk_pipeline *pipe;
    REQUIRE_OK(vk_pipeline_get(&ctx->pipes, SHADER_GET_ROWS_F32, spec, 1, 3,
                               sizeof(struct push_get_rows), &pipe, &err));
    struct gpu_pool pool;
    struct gpu_buf bufs[3];
    struct gpu_graph g;
    graph_begin(ctx, &pool, bufs, 3, 256, &g);
    struct push_get_rows pc = {0};
    /* object:1 is the first dispatch's descriptor pool, object:2 its set */
    REQUIRE_OK(vk_fault_configure("object:2", NULL, &err), "%s", err.msg);
    int rc = gpu_graph_dispatch(&g, pipe, 1, &pc, bufs, GPU_NO_BARRIER, &err);
    CHECK(rc != VKLLM_OK && contains(err.msg, "vkAllocateDescriptorSets failed") &&
              contains(err.msg, "injected by VKLLM_FAULT=object:2"),
          "rc %d: %s", rc, err.msg);
    REQUIRE_OK(vk_fault_configure(NULL, NULL, &err), "%s", err.msg);
    for (int i = 0; i < 256; i++)
        REQUIRE_OK(gpu_graph_dispatch(&g, pipe, 1, &pc, bufs, GPU_NO_BARRIER, &err), "%s", err.msg);
    CHECK(g.n_desc_pools == 1, "256 sets took %u descriptor pools", g.n_desc_pools);
    graph_end(ctx, &pool, &g);
}

/* Texel bindings (weights and inputs on a CPU device): a view is made once
 * per range and recording, a failure to make it is one error naming the
 * kernel, and a range the device cannot view is refused before Vulkan sees
 * it. */
static void test_texel_views(void)
{
    vkllm_context *ctx = context();
    if (!ctx->dev.info.max_texel_buffer_elements) {
        printf("note: the device has no uvec4 texel buffers; test_texel_views skipped\n");
        vkllm_context_destroy(ctx);
        return;
    }
    struct vkllm_error err = {0};
    /* one token, one row a thread: the smallest variant to compile */
    const uint32_t spec[4] = {ctx->gemm_wg, 1, 1, 1};
    struct vk_pipeline *pipe;
    REQUIRE_OK(vk_pipeline_get(&ctx->pipes, SHADER_GEMM_TX_Q4_0, spec, 4, 4,
                               sizeof(struct push_matvec), &pipe, &err),
               "%s", err.msg);
    struct gpu_pool pool;
    struct gpu_buf bufs[4];
    struct gpu_graph g;
    graph_begin(ctx, &pool, bufs, 4, 4096, &g);
    struct push_matvec pc = {0}; /* no rows: nothing is computed */
    /* object:1 is the descriptor pool, object:2 the set, object:3 the
     * weights' view (binding 1), object:4 the input's */
    REQUIRE_OK(vk_fault_configure("object:3", NULL, &err), "%s", err.msg);
    int rc = gpu_graph_dispatch(&g, pipe, 1, &pc, bufs, GPU_NO_BARRIER, &err);
    CHECK(rc != VKLLM_OK && contains(err.msg, "gemm_tx_q4_0") &&
              contains(err.msg, "vkCreateBufferView failed") &&
              contains(err.msg, "injected by VKLLM_FAULT=object:3"),
          "rc %d: %s", rc, err.msg);
    REQUIRE_OK(vk_fault_configure(NULL, NULL, &err), "%s", err.msg);
    for (int i = 0; i < 3; i++)
        REQUIRE_OK(gpu_graph_dispatch(&g, pipe, 1, &pc, bufs, GPU_NO_BARRIER, &err), "%s", err.msg);
    CHECK(g.n_views == 2, "3 dispatches of two ranges made %u views", g.n_views);
    struct gpu_buf other[4] = {bufs[0], bufs[1], bufs[2], bufs[3]};
    other[2].size = 2044; /* its last texel rounded up: gpu_pool_alloc left room */
    REQUIRE_OK(gpu_graph_dispatch(&g, pipe, 1, &pc, other, GPU_NO_BARRIER, &err), "%s", err.msg);
    CHECK(g.n_views == 3, "a third range made %u views in all", g.n_views);
    other[2].size = 16 * (VkDeviceSize)ctx->dev.info.max_texel_buffer_elements + 4;
    CHECK(!gpu_texel_range_ok(&ctx->dev, &other[2]), "more texels than the device's count passed");
    rc = gpu_graph_dispatch(&g, pipe, 1, &pc, other, GPU_NO_BARRIER, &err);
    CHECK(rc == VKLLM_E_INVALID && contains(err.msg, "does not suit the device"), "rc %d: %s", rc,
          err.msg);
    graph_end(ctx, &pool, &g);
}

/* An upload whose wait fails with FAULT ("wait:1", "timeout:1", or "submit:1"):
 * the error says WANT, the context is lost, every later call fails with the
 * same message, and destroying everything leaves the validation layer quiet
 * (before the fix, the uploader freed its ring and command buffer while the
 * copy was pending). */
static void test_lost_upload(const char *fault, const char *timeout, const char *want)
{
    vkllm_context *ctx = context();
    struct vkllm_error err = {0}, later = {0};
    struct gpu_pool pool;
    gpu_pool_init(&pool, &ctx->dev, GPU_POOL_DEVICE, 4 << 20);
    struct gpu_buf dst, more;
    REQUIRE_OK(gpu_pool_alloc(&pool, 4 << 20, &dst, &err), "%s", err.msg);
    struct gpu_uploader up;
    REQUIRE_OK(gpu_uploader_create(&up, &ctx->dev, 4 << 20, &err), "%s", err.msg);
    void *p;
    REQUIRE_OK(gpu_upload_map(&up, &dst, 0, 4 << 20, &p, &err), "%s", err.msg);
    memset(p, 0x5a, 4 << 20);

    REQUIRE_OK(vk_fault_configure(fault, timeout, &err), "%s", err.msg);
    int rc = gpu_upload_flush(&up, &err);
    char injected[64];
    snprintf(injected, sizeof injected, "injected by VKLLM_FAULT=%s", fault);
    CHECK(rc == VKLLM_E_VULKAN && contains(err.msg, want) && contains(err.msg, injected),
          "%s: rc %d: %s", fault, rc, err.msg);
    CHECK(vkllm_context_lost(ctx), "%s did not mark the context lost", fault);
    REQUIRE_OK(vk_fault_configure(NULL, NULL, &later), "%s", later.msg);

    /* every later call fails fast, with the first message */
    struct gpu_graph g;
    CHECK(gpu_pool_alloc(&pool, 4 << 20, &more, &later) == VKLLM_E_VULKAN &&
              !strcmp(later.msg, err.msg),
          "%s", later.msg);
    memset(&later, 0, sizeof later);
    CHECK(gpu_upload_map(&up, &dst, 0, 16, &p, &later) == VKLLM_E_VULKAN &&
              !strcmp(later.msg, err.msg),
          "%s", later.msg);
    memset(&later, 0, sizeof later);
    CHECK(gpu_graph_create(&g, &ctx->dev, &later) == VKLLM_E_VULKAN && !strcmp(later.msg, err.msg),
          "%s", later.msg);
    gpu_graph_destroy(&g);

    gpu_uploader_destroy(&up);
    gpu_pool_destroy(&pool);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "%s: validation messages on destroy", fault);
    CHECK(!ctx->dev.hung, "%s: the copy was over, yet the device is marked hung", fault);
    vkllm_context_destroy(ctx);
}

static void test_settings(void)
{
    struct vkllm_error err = {0};
    /* strtoull saturated a count past 2^64 ("alloc:99999999999999999999" was
     * the 2^64 - 1th call) and took a sign or spaces */
    const char *bad_faults[] = {"alloc",
                                "alloc:0",
                                "alloc:-1",
                                "alloc:1x",
                                "nothing:1",
                                "submit:1,alloc",
                                ":3",
                                "alloc:",
                                "alloc:+1",
                                "alloc: 1",
                                "alloc:0x1",
                                "alloc:18446744073709551616",
                                "alloc:99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_faults / sizeof *bad_faults; i++) {
        int rc = vk_fault_configure(bad_faults[i], NULL, &err);
        CHECK(rc == VKLLM_E_INVALID && !strncmp(err.msg, "VKLLM_FAULT: ", 13), "'%s': %d %s",
              bad_faults[i], rc, err.msg);
    }
    CHECK(vk_fault_configure("alloc:99999999999999999999", NULL, &err) == VKLLM_E_INVALID &&
              !strcmp(err.msg, "VKLLM_FAULT: 'alloc:99999999999999999999': N is too large for "
                               "64 bits"),
          "%s", err.msg);
    /* strtod read hex ("0x10" was 16 s), "inf", "nan" and exponents */
    const char *bad_timeouts[] = {
        "0",   "-1", "soon", "1e9", "5s",  "0x10",      "inf",         "nan",
        "1e3", " 5", "+5",   "2.",  "0.0", "1000000.1", "18446744074", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_timeouts / sizeof *bad_timeouts; i++) {
        int rc = vk_fault_configure(NULL, bad_timeouts[i], &err);
        char start[64];
        snprintf(start, sizeof start, "VKLLM_TIMEOUT: '%s' ", bad_timeouts[i]);
        CHECK(rc == VKLLM_E_INVALID && !strncmp(err.msg, start, strlen(start)), "'%s': %d %s",
              bad_timeouts[i], rc, err.msg);
    }
    const char *good_timeouts[] = {"1000000", "0.000000001", "007.5"};
    for (size_t i = 0; i < sizeof good_timeouts / sizeof *good_timeouts; i++)
        CHECK(vk_fault_configure(NULL, good_timeouts[i], &err) == VKLLM_OK, "'%s': %s",
              good_timeouts[i], err.msg);
    CHECK(vk_fault_configure("submit:2,alloc:30,wait:1", "2.5", &err) == VKLLM_OK, "%s", err.msg);
    /* counted per kind, from 1 */
    CHECK(!vk_fault_hit(VK_FAULT_SUBMIT) && vk_fault_hit(VK_FAULT_SUBMIT) &&
          !vk_fault_hit(VK_FAULT_SUBMIT));
    const char *inj = vk_fault_injected();
    CHECK(inj && !strcmp(inj, "submit:2") && !vk_fault_injected());
    CHECK(vk_fault_hit(VK_FAULT_WAIT) && !vk_fault_hit(VK_FAULT_NONE));
    CHECK(vk_fault_configure(NULL, NULL, &err) == VKLLM_OK);
}

int main(void)
{
    test_settings();
    test_registry();
    test_descriptor_count();
    test_texel_views();
    test_lost_upload("wait:1", NULL, "the GPU was lost during the weight upload");
    test_lost_upload("submit:1", NULL, "the GPU was lost: vkQueueSubmit failed");
    test_lost_upload("timeout:1", "2.5",
                     "the GPU did not finish the weight upload within 2.5 s (vkWaitForFences "
                     "returned VK_TIMEOUT");
    return TEST_REPORT();
}
