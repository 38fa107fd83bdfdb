/* context.c: vkllm_context, a chosen device with its pipeline registry. */
#include "context.h"

#include <stdlib.h>
#include <string.h>

int vkllm_context_create(const struct vkllm_context_params *params, vkllm_context **out,
                         struct vkllm_error *err)
{
    *out = NULL;
    struct vkllm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    const char *env = getenv("VKLLM_VALIDATE");
    bool validation = (params && params->validation) || (env && *env && strcmp(env, "0"));
    int rc = vk_device_create(&ctx->dev, params ? params->device : NULL, validation, err);
    if (!rc) rc = vk_pipelines_init(&ctx->pipes, &ctx->dev, err);
    if (rc) {
        vkllm_context_destroy(ctx);
        return rc;
    }
    /* 64 threads: two warps, one AMD wave, eight lavapipe subgroups; within
     * every device's guaranteed minimum of 128 invocations */
    ctx->wg_size = 64;
    *out = ctx;
    return VKLLM_OK;
}

void vkllm_context_destroy(vkllm_context *ctx)
{
    if (!ctx) return;
    vk_pipelines_destroy(&ctx->pipes);
    vk_device_destroy(&ctx->dev);
    free(ctx);
}

const struct vkllm_device_info *vkllm_context_device(const vkllm_context *ctx)
{
    return &ctx->dev.info;
}

uint32_t vkllm_context_validation_errors(const vkllm_context *ctx)
{
    return ctx->dev.validation_messages;
}
