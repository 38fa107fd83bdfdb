/* context.h: what a vkllm_context holds: the device and its pipelines.
 * Internal to the engine. */
#ifndef VKLLM_CONTEXT_H
#define VKLLM_CONTEXT_H

#include "vk_device.h"
#include "vk_pipeline.h"

struct vkllm_context {
    struct vk_device dev;
    struct vk_pipelines pipes;
    uint32_t wg_size; /* workgroup size of every kernel: a power of two */
};

#endif
