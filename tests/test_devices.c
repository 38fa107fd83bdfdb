/* test_devices.c: vkllm_devices_list and vkllm_device_choose beside a live
 * context, as the chat window's settings use them:
 * - the list names at least one device, and the default choice is in it;
 * - listing while a context lives leaves that context whole: it still works
 *   and is destroyed with no validation message and no crash (the list's own
 *   instance, made without validation, once replaced the loader's
 *   debug-messenger functions that the context's destroy calls). */
#include "context.h"
#include "testhelp.h"

#include <string.h>

int main(void)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);

    struct vkllm_device_info devs[16];
    const int n = vkllm_devices_list(devs, 16, &err);
    REQUIRE(n >= 1, "%d devices: %s", n, err.msg);
    for (int i = 0; i < n && i < 16; i++)
        CHECK(devs[i].index == (uint32_t)i && devs[i].name[0], "device %d: '%s'", i, devs[i].name);
    const int chosen = vkllm_device_choose(devs, (uint32_t)(n < 16 ? n : 16), NULL, &err);
    CHECK(chosen >= 0 && chosen < n, "default choice %d of %d: %s", chosen, n, err.msg);
    CHECK(!strcmp(devs[chosen >= 0 ? chosen : 0].name, vkllm_context_device(ctx)->name),
          "the list's default '%s' is not the context's '%s'", devs[chosen >= 0 ? chosen : 0].name,
          vkllm_context_device(ctx)->name);

    /* the context still measures, and a second listing changes nothing */
    double gbps = 0.0;
    CHECK(vkllm_context_copy_bandwidth(ctx, &gbps, &err) == VKLLM_OK && gbps > 0.0, "%s", err.msg);
    CHECK(vkllm_devices_list(devs, 16, &err) == n, "%s", err.msg);
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
