/* vk_memory.c: memory blocks, sub-allocation and the staging uploader. */
#include "vk_memory.h"

#include "vk_fault.h"

#include <stdlib.h>
#include <string.h>

/* ============================== Pools ============================== */

void gpu_pool_init(struct gpu_pool *p, struct vk_device *dev, enum gpu_pool_kind kind,
                   VkDeviceSize block_size)
{
    memset(p, 0, sizeof *p);
    p->dev = dev;
    p->kind = kind;
    p->block_size = block_size;
}

/* The memory type allowed by BITS that has REQUIRED flags, preferring those
 * that also have PREFERRED; -1 if none. */
static int find_memory_type(const VkPhysicalDeviceMemoryProperties *mem, uint32_t bits,
                            VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred)
{
    int fallback = -1;
    for (uint32_t i = 0; i < mem->memoryTypeCount; i++) {
        if (!(bits & (1u << i))) continue;
        VkMemoryPropertyFlags f = mem->memoryTypes[i].propertyFlags;
        if ((f & required) != required) continue;
        if ((f & preferred) == preferred) return (int)i;
        if (fallback < 0) fallback = (int)i;
    }
    return fallback;
}

static int block_create(struct gpu_pool *p, VkDeviceSize size, struct gpu_block *b,
                        struct vkllm_error *err)
{
    struct vk_device *d = p->dev;
    memset(b, 0, sizeof *b);
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        /* texel: matvecs and GEMMs may read through buffer views (ops.c) */
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    int rc =
        VK_DEV_CHECK(d, err, VK_FAULT_ALLOC, vkCreateBuffer(d->device, &bci, NULL, &b->buffer));
    if (rc) return rc;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->device, b->buffer, &req);

    VkMemoryPropertyFlags required = 0, preferred = 0;
    switch (p->kind) {
    case GPU_POOL_DEVICE: preferred = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT; break;
    case GPU_POOL_UPLOAD:
        required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        break;
    case GPU_POOL_READBACK:
        required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        preferred = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
        break;
    }
    int type = find_memory_type(&d->mem, req.memoryTypeBits, required, preferred);
    if (type < 0) {
        vkDestroyBuffer(d->device, b->buffer, NULL);
        b->buffer = VK_NULL_HANDLE;
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s has no suitable memory type", d->info.name);
    }
    VkMemoryAllocateInfo mai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    VkResult r = VK_FAULTY(VK_FAULT_ALLOC, vkAllocateMemory(d->device, &mai, NULL, &b->memory));
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        const char *inj = vk_fault_injected();
        rc = vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                        "out of device memory: could not allocate %.1f MiB more on %s "
                        "(%.1f MiB already held by this pool%s%s)",
                        req.size / 1048576.0, d->info.name, p->allocated / 1048576.0,
                        inj ? "; injected by VKLLM_FAULT=" : "", inj ? inj : "");
    } else {
        rc = vk_dev_check(d, err, r, "vkAllocateMemory", __FILE__, __LINE__);
    }
    if (!rc)
        rc = VK_DEV_CHECK(d, err, VK_FAULT_NONE,
                          vkBindBufferMemory(d->device, b->buffer, b->memory, 0));
    if (!rc && p->kind != GPU_POOL_DEVICE)
        rc = VK_DEV_CHECK(d, err, VK_FAULT_MAP,
                          vkMapMemory(d->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped));
    if (rc) {
        vkDestroyBuffer(d->device, b->buffer, NULL);
        if (b->memory) vkFreeMemory(d->device, b->memory, NULL);
        memset(b, 0, sizeof *b);
        return rc;
    }
    b->size = size;
    p->allocated += req.size;
    d->allocated += req.size; /* the device's usage where the driver reports none */
    return VKLLM_OK;
}

VkDeviceSize gpu_pool_alignment(const struct vkllm_device_info *info)
{
    return info->min_storage_buffer_offset_alignment > 16
               ? info->min_storage_buffer_offset_alignment
               : 16;
}

VkDeviceSize gpu_range_bytes(VkDeviceSize size)
{
    return size ? (size + 3) & ~(VkDeviceSize)3 : 4; /* bindings of zero bytes are not allowed */
}

VkDeviceSize gpu_pool_limit(const struct vkllm_device_info *info)
{
    return info->max_memory_allocation < info->max_buffer_size ? info->max_memory_allocation
                                                               : info->max_buffer_size;
}

VkDeviceSize gpu_new_block_bytes(VkDeviceSize range, VkDeviceSize block_size, VkDeviceSize limit)
{
    VkDeviceSize bs = range > block_size ? range : block_size;
    return limit && bs > limit ? range : bs;
}

int gpu_pool_alloc(struct gpu_pool *p, VkDeviceSize size, struct gpu_buf *out,
                   struct vkllm_error *err)
{
    const struct vkllm_device_info *info = &p->dev->info;
    int rc = vk_dev_usable(p->dev, err);
    if (rc) return rc;
    const VkDeviceSize align = gpu_pool_alignment(info);
    size = gpu_range_bytes(size);
    /* the space taken ends on a whole 16 bytes, so that a texel view of the
     * range (vk_commands.c) may round its end up */
    const VkDeviceSize span = (size + 15) & ~(VkDeviceSize)15;

    struct gpu_block *b = NULL;
    for (uint32_t i = 0; i < p->n_blocks && !b; i++) {
        struct gpu_block *c = &p->blocks[i];
        VkDeviceSize start = (c->used + align - 1) / align * align;
        if (start + span <= c->size) b = c;
    }
    if (!b) {
        const VkDeviceSize limit = gpu_pool_limit(info);
        const VkDeviceSize bs = gpu_new_block_bytes(span, p->block_size, limit);
        if (limit && span > limit)
            return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                              "a buffer of %.1f MiB exceeds %s's allocation limit of %.1f MiB",
                              size / 1048576.0, info->name, limit / 1048576.0);
        if (p->n_blocks == p->cap_blocks) {
            uint32_t cap = p->cap_blocks ? 2 * p->cap_blocks : 8;
            struct gpu_block *nb = realloc(p->blocks, cap * sizeof *nb);
            if (!nb) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
            p->blocks = nb;
            p->cap_blocks = cap;
        }
        if ((rc = block_create(p, bs, &p->blocks[p->n_blocks], err))) return rc;
        b = &p->blocks[p->n_blocks++];
    }
    VkDeviceSize start = (b->used + align - 1) / align * align;
    b->used = start + span;
    out->buffer = b->buffer;
    out->offset = start;
    out->size = size;
    out->mapped = b->mapped ? (char *)b->mapped + start : NULL;
    return VKLLM_OK;
}

void gpu_pool_destroy(struct gpu_pool *p)
{
    if (!p || !p->dev) return;
    /* work that timed out may still use the blocks: they are leaked, not freed */
    for (uint32_t i = 0; i < p->n_blocks && !p->dev->hung; i++) {
        vkDestroyBuffer(p->dev->device, p->blocks[i].buffer, NULL);
        vkFreeMemory(p->dev->device, p->blocks[i].memory, NULL);
    }
    free(p->blocks);
    p->dev->allocated -= p->allocated;
    memset(p, 0, sizeof *p);
}

/* ============================== Uploader ============================== */

int gpu_uploader_create(struct gpu_uploader *u, struct vk_device *dev, VkDeviceSize capacity,
                        struct vkllm_error *err)
{
    memset(u, 0, sizeof *u);
    u->dev = dev;
    gpu_pool_init(&u->staging, dev, GPU_POOL_UPLOAD, capacity);
    int rc = gpu_pool_alloc(&u->staging, capacity, &u->ring, err);
    if (rc) goto fail;
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    if ((rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                           vkCreateCommandPool(dev->device, &pci, NULL, &u->cmd_pool))))
        goto fail;
    VkCommandBufferAllocateInfo cai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = u->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    if ((rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                           vkAllocateCommandBuffers(dev->device, &cai, &u->cmd))))
        goto fail;
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                           vkCreateFence(dev->device, &fci, NULL, &u->fence))))
        goto fail;
    return VKLLM_OK;
fail:
    gpu_uploader_destroy(u);
    return rc;
}

int gpu_upload_map(struct gpu_uploader *u, const struct gpu_buf *dst, VkDeviceSize dst_offset,
                   VkDeviceSize size, void **out, struct vkllm_error *err)
{
    *out = NULL;
    if (size > u->ring.size || dst_offset + size > dst->size)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "upload of %llu bytes does not fit (internal error)",
                          (unsigned long long)size);
    int rc = vk_dev_usable(u->dev, err);
    if (rc) return rc;
    if (u->used + size > u->ring.size && (rc = gpu_upload_flush(u, err))) return rc;
    if (!u->recording) {
        VkCommandBufferBeginInfo bi = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
        };
        if ((rc = VK_DEV_CHECK(u->dev, err, VK_FAULT_NONE, vkBeginCommandBuffer(u->cmd, &bi))))
            return rc;
        u->recording = true;
    }
    VkBufferCopy copy = {
        .srcOffset = u->ring.offset + u->used,
        .dstOffset = dst->offset + dst_offset,
        .size = size,
    };
    vkCmdCopyBuffer(u->cmd, u->ring.buffer, dst->buffer, 1, &copy);
    u->dev->uploaded += size;
    *out = (char *)u->ring.mapped + u->used;
    u->used += (size + 15) & ~(VkDeviceSize)15;
    return VKLLM_OK;
}

int gpu_upload_flush(struct gpu_uploader *u, struct vkllm_error *err)
{
    if (!u->recording) return VKLLM_OK;
    int rc = vk_dev_usable(u->dev, err);
    if (rc) return rc;
    u->recording = false;
    u->used = 0;
    /* the copies' writes must be visible to the compute shaders that follow */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(u->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    struct vk_device *d = u->dev;
    rc = VK_DEV_CHECK(d, err, VK_FAULT_NONE, vkEndCommandBuffer(u->cmd));
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &u->cmd,
    };
    if (!rc) rc = VK_DEV_CHECK(d, err, VK_FAULT_SUBMIT, vkQueueSubmit(d->queue, 1, &si, u->fence));
    if (rc) return rc;
    /* until the fence says the copies are done, the ring must not be freed */
    u->pending = true;
    if ((rc = vk_fence_wait(d, u->fence, "the weight upload", err))) return rc;
    u->pending = false;
    rc = VK_DEV_CHECK(d, err, VK_FAULT_NONE, vkResetFences(d->device, 1, &u->fence));
    if (!rc) rc = VK_DEV_CHECK(d, err, VK_FAULT_NONE, vkResetCommandBuffer(u->cmd, 0));
    return rc;
}

void gpu_uploader_destroy(struct gpu_uploader *u)
{
    if (!u || !u->dev) return;
    VkDevice dev = u->dev->device;
    /* after a failed wait the copies may still read the ring and write their
     * destinations: wait for them, or, if they never end, leak what they use
     * (vk_fence_settle marks the device hung, and the pools leak their blocks) */
    if (u->pending && !vk_fence_settle(u->dev, u->fence)) {
        gpu_pool_destroy(&u->staging);
        memset(u, 0, sizeof *u);
        return;
    }
    if (u->fence) vkDestroyFence(dev, u->fence, NULL);
    if (u->cmd_pool) vkDestroyCommandPool(dev, u->cmd_pool, NULL);
    gpu_pool_destroy(&u->staging);
    memset(u, 0, sizeof *u);
}
