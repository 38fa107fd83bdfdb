/* vk_memory.h: device memory in large blocks, sub-allocated into buffer ranges
 * (as ncnn and VMA do), and the staging path that fills device-local memory.
 * Internal to the engine. */
#ifndef VKLLM_VK_MEMORY_H
#define VKLLM_VK_MEMORY_H

#include "vk_device.h"

/* A range of one block's VkBuffer: what a descriptor binds. */
struct gpu_buf {
    VkBuffer buffer;
    VkDeviceSize offset;
    VkDeviceSize size;
    void *mapped; /* host pointer to the range, for host-visible pools; else NULL */
};

enum gpu_pool_kind {
    GPU_POOL_DEVICE,   /* weights, activations, KV cache: device-local */
    GPU_POOL_UPLOAD,   /* host-visible, written by the host, read by copies */
    GPU_POOL_READBACK, /* host-visible and preferably cached, read by the host */
};

struct gpu_block {
    VkDeviceMemory memory;
    VkBuffer buffer;
    VkDeviceSize size, used;
    void *mapped;
};

/* Bump allocation from blocks; everything is freed together by _destroy. */
struct gpu_pool {
    struct vk_device *dev;
    enum gpu_pool_kind kind;
    VkDeviceSize block_size;
    struct gpu_block *blocks;
    uint32_t n_blocks, cap_blocks;
    VkDeviceSize allocated; /* bytes of device memory held */
};

void gpu_pool_init(struct gpu_pool *p, struct vk_device *dev, enum gpu_pool_kind kind,
                   VkDeviceSize block_size);
/* The placement rule of gpu_pool_alloc, for budget.c to predict what pools
 * allocate without a device: a range's offset alignment, the bytes it takes,
 * the largest block the device allows (0: no limit), and the size of the new
 * block a range gets when no block has room. */
VkDeviceSize gpu_pool_alignment(const struct vkllm_device_info *info);
VkDeviceSize gpu_range_bytes(VkDeviceSize size);
VkDeviceSize gpu_pool_limit(const struct vkllm_device_info *info);
VkDeviceSize gpu_new_block_bytes(VkDeviceSize range, VkDeviceSize block_size, VkDeviceSize limit);

/* A range of SIZE bytes aligned for storage-buffer binding. SIZE may exceed
 * the block size (it then gets a block of its own); it may not exceed the
 * device's buffer or allocation limits. */
int gpu_pool_alloc(struct gpu_pool *p, VkDeviceSize size, struct gpu_buf *out,
                   struct vkllm_error *err);
void gpu_pool_destroy(struct gpu_pool *p);

/* Copies host data into device-local buffers through a host-visible ring. */
struct gpu_uploader {
    struct vk_device *dev;
    struct gpu_pool staging;
    struct gpu_buf ring;
    VkDeviceSize used;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording;
    bool pending; /* submitted, and not known to be done (a wait failed) */
};

int gpu_uploader_create(struct gpu_uploader *u, struct vk_device *dev, VkDeviceSize capacity,
                        struct vkllm_error *err);
/* Sets *OUT to host memory for SIZE bytes (<= capacity) that will be copied
 * to DST at DST_OFFSET at the next flush; flushes first when the ring is full. */
int gpu_upload_map(struct gpu_uploader *u, const struct gpu_buf *dst, VkDeviceSize dst_offset,
                   VkDeviceSize size, void **out, struct vkllm_error *err);
/* Submits the pending copies and waits for them. */
int gpu_upload_flush(struct gpu_uploader *u, struct vkllm_error *err);
void gpu_uploader_destroy(struct gpu_uploader *u);

#endif
