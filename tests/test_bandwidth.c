/* test_bandwidth.c: vkllm_context_copy_bandwidth (engine/vk/vk_bandwidth.c),
 * which `vkllm bench --bandwidth` prints and decode rows are measured against:
 * - it gives a positive finite figure, twice over (the buffers it held were
 *   given back: the device's usage is where it started);
 * - a failed allocation of either buffer (VKLLM_FAULT alloc) is one error
 *   that names the injection, leaves 0 and no memory held, and the context
 *   still measures afterwards;
 * - a device too small for a 64 MiB copy (a smaller one runs in the caches:
 *   32 MiB measured twice the memory's figure) is refused with the numbers.
 * No timing thresholds: lavapipe's figure depends on the machine. */
#include "context.h"
#include "testhelp.h"
#include "vk_fault.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static vkllm_context *context(void)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    return ctx;
}

static void test_measures(void)
{
    vkllm_context *ctx = context();
    struct vkllm_error err = {0};
    const uint64_t before = ctx->dev.allocated;
    for (int i = 0; i < 2; i++) {
        double gbps = -1.0;
        int rc = vkllm_context_copy_bandwidth(ctx, &gbps, &err);
        CHECK(rc == VKLLM_OK, "run %d: %s", i, err.msg);
        CHECK(isfinite(gbps) && gbps > 0.0, "run %d: %g GB/s", i, gbps);
        CHECK(ctx->dev.allocated == before, "run %d left %llu bytes allocated", i,
              (unsigned long long)(ctx->dev.allocated - before));
        fprintf(stderr, "copy bandwidth on %s: %.2f GB/s\n", vkllm_context_device(ctx)->name, gbps);
    }
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
}

/* alloc:1 fails the source's buffer, alloc:3 the destination's (each takes a
 * vkCreateBuffer and a vkAllocateMemory), with the source already held. */
static void test_alloc_fault(const char *fault)
{
    vkllm_context *ctx = context();
    struct vkllm_error err = {0};
    const uint64_t before = ctx->dev.allocated;
    REQUIRE_OK(vk_fault_configure(fault, NULL, &err), "%s", err.msg);
    double gbps = -1.0;
    int rc = vkllm_context_copy_bandwidth(ctx, &gbps, &err);
    REQUIRE_OK(vk_fault_configure(NULL, NULL, &err), "%s", err.msg);
    CHECK(rc == VKLLM_E_DEVICE_MEMORY, "%s: status %d (%s)", fault, rc, err.msg);
    CHECK(gbps == 0.0, "%s: %g GB/s after a failure", fault, gbps);
    CHECK(strstr(err.msg, "injected by VKLLM_FAULT=") && strstr(err.msg, fault) &&
              !strchr(err.msg, '\n'),
          "%s: message '%s'", fault, err.msg);
    CHECK(ctx->dev.allocated == before, "%s: %llu bytes still held", fault,
          (unsigned long long)(ctx->dev.allocated - before));
    CHECK(!vkllm_context_lost(ctx), "%s: an allocation failure lost the device", fault);
    rc = vkllm_context_copy_bandwidth(ctx, &gbps, &err);
    CHECK(rc == VKLLM_OK && gbps > 0.0, "%s: no measurement afterwards: %s", fault, err.msg);
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
}

static void test_too_small(void)
{
    setenv("VKLLM_MAX_MEMORY", "256M", 1); /* an eighth of it is 32 MiB */
    vkllm_context *ctx = context();
    struct vkllm_error err = {0};
    double gbps = -1.0;
    int rc = vkllm_context_copy_bandwidth(ctx, &gbps, &err);
    CHECK(rc == VKLLM_E_DEVICE_MEMORY && gbps == 0.0, "256 MiB device: status %d, %g GB/s", rc,
          gbps);
    CHECK(strstr(err.msg, "too little free memory"), "message '%s'", err.msg);
    vkllm_context_destroy(ctx);
    unsetenv("VKLLM_MAX_MEMORY");
}

int main(void)
{
    test_measures();
    test_alloc_fault("alloc:1");
    test_alloc_fault("alloc:3");
    test_too_small();
    return TEST_REPORT();
}
