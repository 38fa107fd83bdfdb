/* vk_commands.c: recording dispatches with their barriers, and replaying them. */
#include "vk_commands.h"

#include "vk_fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETS_PER_POOL 256
#define PROFILE_MAX   8192 /* dispatches timed per graph */

static int profile_create(struct gpu_graph *g, struct vkllm_error *err)
{
    g->tag_layer = -1;
    if (!g->dev->profile || !g->dev->timestamp_bits) return VKLLM_OK;
    g->profile_rec = malloc(PROFILE_MAX * sizeof *g->profile_rec);
    if (!g->profile_rec) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    VkQueryPoolCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
        .queryType = VK_QUERY_TYPE_TIMESTAMP,
        .queryCount = PROFILE_MAX,
    };
    return VK_DEV_CHECK(g->dev, err, VK_FAULT_OBJECT,
                        vkCreateQueryPool(g->dev->device, &qci, NULL, &g->profile_queries));
}

/* The index of the sum for a dispatch of SHADER with the current tag. */
static int profile_sum_of(struct gpu_graph *g, uint32_t shader, uint32_t *out,
                          struct vkllm_error *err)
{
    for (uint32_t i = 0; i < g->n_profile_sums; i++) {
        const struct gpu_profile_sum *p = &g->profile_sums[i];
        if (p->shader == shader && p->layer == g->tag_layer && p->role == g->tag_role) {
            *out = i;
            return VKLLM_OK;
        }
    }
    if (g->n_profile_sums == g->cap_profile_sums) {
        const uint32_t cap = g->cap_profile_sums ? 2 * g->cap_profile_sums : 64;
        struct gpu_profile_sum *p = realloc(g->profile_sums, cap * sizeof *p);
        if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        g->profile_sums = p;
        g->cap_profile_sums = cap;
    }
    g->profile_sums[g->n_profile_sums] =
        (struct gpu_profile_sum){.shader = shader, .layer = g->tag_layer, .role = g->tag_role};
    *out = g->n_profile_sums++;
    return VKLLM_OK;
}

/* Adds the last run's dispatch times to their sums. */
static void profile_collect(struct gpu_graph *g)
{
    uint32_t n = g->n_dispatches < PROFILE_MAX ? g->n_dispatches : PROFILE_MAX;
    uint64_t start, *ts = malloc((n ? n : 1) * sizeof *ts);
    if (!ts ||
        vkGetQueryPoolResults(g->dev->device, g->queries, 0, 1, sizeof start, &start, sizeof start,
                              VK_QUERY_RESULT_64_BIT) != VK_SUCCESS ||
        (n && vkGetQueryPoolResults(g->dev->device, g->profile_queries, 0, n, n * sizeof *ts, ts,
                                    sizeof *ts, VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)) {
        free(ts);
        return;
    }
    const uint64_t mask =
        g->dev->timestamp_bits >= 64 ? ~0ull : (1ull << g->dev->timestamp_bits) - 1;
    uint64_t prev = start;
    for (uint32_t i = 0; i < n; i++) {
        struct gpu_profile_sum *p = &g->profile_sums[g->profile_rec[i].sum];
        p->ms += (double)((ts[i] - prev) & mask) * g->dev->info.timestamp_period_ns * 1e-6;
        p->dispatches++;
        p->bytes += g->profile_rec[i].bytes;
        prev = ts[i];
    }
    free(ts);
}

void gpu_graph_tag(struct gpu_graph *g, int32_t layer, uint32_t role)
{
    g->tag_layer = layer;
    g->tag_role = role;
}

void gpu_graph_tag_bytes(struct gpu_graph *g, uint64_t bytes)
{
    g->tag_bytes = bytes;
}

int gpu_graph_create(struct gpu_graph *g, struct vk_device *dev, struct vkllm_error *err)
{
    memset(g, 0, sizeof *g);
    int rc = vk_dev_usable(dev, err);
    if (rc) return rc;
    g->dev = dev;
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                      vkCreateCommandPool(dev->device, &pci, NULL, &g->cmd_pool));
    VkCommandBufferAllocateInfo cai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = g->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    if (!rc)
        rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                          vkAllocateCommandBuffers(dev->device, &cai, &g->cmd));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (!rc)
        rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                          vkCreateFence(dev->device, &fci, NULL, &g->fence));
    if (!rc && dev->timestamp_bits) {
        VkQueryPoolCreateInfo qci = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = 2,
        };
        rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                          vkCreateQueryPool(dev->device, &qci, NULL, &g->queries));
    }
    if (!rc) rc = profile_create(g, err);
    if (rc) gpu_graph_destroy(g);
    return rc;
}

static void free_descriptor_pools(struct gpu_graph *g)
{
    for (uint32_t i = 0; i < g->n_desc_pools && !g->dev->hung; i++)
        vkDestroyDescriptorPool(g->dev->device, g->desc_pools[i], NULL);
    free(g->desc_pools);
    g->desc_pools = NULL;
    g->n_desc_pools = 0;
    g->sets_left = 0;
    for (uint32_t i = 0; i < g->n_views && !g->dev->hung; i++)
        vkDestroyBufferView(g->dev->device, g->views[i].view, NULL);
    free(g->views);
    g->views = NULL;
    g->n_views = g->cap_views = 0;
}

void gpu_graph_destroy(struct gpu_graph *g)
{
    if (!g || !g->dev) return;
    VkDevice dev = g->dev->device;
    /* after a failed wait the GPU may still run the recording: wait for it, or,
     * if it never ends, leak what it uses (vk_fence_settle marks the device
     * hung, and then nothing of it is destroyed) */
    const bool idle = !g->pending || vk_fence_settle(g->dev, g->fence);
    free_descriptor_pools(g);
    free(g->cold);
    if (g->profile_queries && idle) vkDestroyQueryPool(dev, g->profile_queries, NULL);
    free(g->profile_rec);
    free(g->profile_sums);
    if (!idle) {
        memset(g, 0, sizeof *g);
        return;
    }
    if (g->queries) vkDestroyQueryPool(dev, g->queries, NULL);
    if (g->fence) vkDestroyFence(dev, g->fence, NULL);
    if (g->cmd_pool) vkDestroyCommandPool(dev, g->cmd_pool, NULL);
    memset(g, 0, sizeof *g);
}

int gpu_graph_begin(struct gpu_graph *g, struct vkllm_error *err)
{
    int rc = vk_dev_usable(g->dev, err);
    if (rc) return rc;
    free_descriptor_pools(g);
    g->n_dispatches = 0;
    g->n_barriers = 0;
    g->n_cold = 0;
    rc = VK_DEV_CHECK(g->dev, err, VK_FAULT_NONE, vkResetCommandBuffer(g->cmd, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (!rc) rc = VK_DEV_CHECK(g->dev, err, VK_FAULT_NONE, vkBeginCommandBuffer(g->cmd, &bi));
    if (rc) return rc;
    if (g->queries) {
        vkCmdResetQueryPool(g->cmd, g->queries, 0, 2);
        vkCmdWriteTimestamp(g->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, g->queries, 0);
    }
    if (g->profile_queries) vkCmdResetQueryPool(g->cmd, g->profile_queries, 0, PROFILE_MAX);
    /* the host wrote the step header and may have reused activations: make
     * host writes and the previous replay's writes visible to this one */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask =
            VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(g->cmd,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                             VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    return VKLLM_OK;
}

/* A descriptor set for LAYOUT from the newest pool, or from a new one when that
 * is used up. The count drops only once a set is allocated, so that a failed
 * allocation leaves it exact. */
static int descriptor_set_alloc(struct gpu_graph *g, VkDescriptorSetLayout layout,
                                VkDescriptorSet *out, struct vkllm_error *err)
{
    VkDevice dev = g->dev->device;
    for (int attempt = 0;; attempt++) {
        if (g->sets_left == 0) {
            VkDescriptorPool *pools = realloc(g->desc_pools, (g->n_desc_pools + 1) * sizeof *pools);
            if (!pools) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
            g->desc_pools = pools;
            VkDescriptorPoolSize sizes[] = {
                {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * PIPELINE_MAX_BINDINGS},
                {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL},
            };
            VkDescriptorPoolCreateInfo ci = {
                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                .maxSets = SETS_PER_POOL,
                .poolSizeCount = sizeof sizes / sizeof *sizes,
                .pPoolSizes = sizes,
            };
            int rc = VK_DEV_CHECK(
                g->dev, err, VK_FAULT_OBJECT,
                vkCreateDescriptorPool(dev, &ci, NULL, &g->desc_pools[g->n_desc_pools]));
            if (rc) return rc;
            g->n_desc_pools++;
            g->sets_left = SETS_PER_POOL;
        }
        VkDescriptorSetAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = g->desc_pools[g->n_desc_pools - 1],
            .descriptorSetCount = 1,
            .pSetLayouts = &layout,
        };
        VkResult r = VK_FAULTY(VK_FAULT_OBJECT, vkAllocateDescriptorSets(dev, &ai, out));
        /* a pool may run out before its count says so (fragmentation): then
         * the next set comes from a new pool */
        if ((r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) && !attempt) {
            g->sets_left = 0;
            continue;
        }
        if (r == VK_SUCCESS) g->sets_left--;
        return vk_dev_check(g->dev, err, r, "vkAllocateDescriptorSets", __FILE__, __LINE__);
    }
}

/* B's size in whole 16-byte texels: gpu_pool_alloc leaves room for the last */
static VkDeviceSize texel_bytes(const struct gpu_buf *b)
{
    return (b->size + 15) & ~(VkDeviceSize)15;
}

bool gpu_texel_range_ok(const struct vk_device *dev, const struct gpu_buf *b)
{
    const struct vkllm_device_info *info = &dev->info;
    const VkDeviceSize align = info->min_texel_buffer_offset_alignment;
    return info->max_texel_buffer_elements &&
           texel_bytes(b) / 16 <= info->max_texel_buffer_elements &&
           (!align || b->offset % align == 0);
}

/* A view of B as uvec4 words, made once per recording and range. */
static int texel_view(struct gpu_graph *g, const struct gpu_buf *b, VkBufferView *out,
                      struct vkllm_error *err)
{
    for (uint32_t i = 0; i < g->n_views; i++) {
        const struct gpu_view *v = &g->views[i];
        if (v->buffer == b->buffer && v->offset == b->offset && v->size == b->size) {
            *out = v->view;
            return VKLLM_OK;
        }
    }
    if (!gpu_texel_range_ok(g->dev, b))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "a texel binding of %llu bytes at %llu does not suit the device",
                          (unsigned long long)b->size, (unsigned long long)b->offset);
    if (g->n_views == g->cap_views) {
        const uint32_t cap = g->cap_views ? 2 * g->cap_views : 8;
        struct gpu_view *v = realloc(g->views, cap * sizeof *v);
        if (!v) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        g->views = v;
        g->cap_views = cap;
    }
    VkBufferViewCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = b->buffer,
        .format = VK_FORMAT_R32G32B32A32_UINT,
        .offset = b->offset,
        .range = texel_bytes(b),
    };
    struct gpu_view *v = &g->views[g->n_views];
    int rc = VK_DEV_CHECK(g->dev, err, VK_FAULT_OBJECT,
                          vkCreateBufferView(g->dev->device, &ci, NULL, &v->view));
    if (rc) return rc;
    v->buffer = b->buffer;
    v->offset = b->offset;
    v->size = b->size;
    g->n_views++;
    *out = v->view;
    return VKLLM_OK;
}

/* Adds PIPE to G's pipelines that have not run, unless it has or is there. */
static int note_cold(struct gpu_graph *g, const struct vk_pipeline *pipe, struct vkllm_error *err)
{
    if (atomic_load(&pipe->ran)) return VKLLM_OK;
    for (uint32_t i = 0; i < g->n_cold; i++)
        if (g->cold[i] == pipe) return VKLLM_OK;
    if (g->n_cold == g->cap_cold) {
        const uint32_t cap = g->cap_cold ? 2 * g->cap_cold : 16;
        struct vk_pipeline **p = realloc(g->cold, cap * sizeof *p);
        if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        g->cold = p;
        g->cap_cold = cap;
    }
    g->cold[g->n_cold++] = (struct vk_pipeline *)pipe; /* only its `ran` is written */
    return VKLLM_OK;
}

int gpu_graph_dispatch(struct gpu_graph *g, const struct vk_pipeline *pipe, uint32_t n_groups,
                       const void *push, const struct gpu_buf *bufs, enum gpu_sync sync,
                       struct vkllm_error *err)
{
    /* n_groups 0, or a pipeline not built yet (vk_pipelines_defer): a
     * recording that only learns which pipelines the graph needs */
    if (n_groups == 0 || !pipe->pipeline) return VKLLM_OK;
    const struct vkllm_device_info *info = &g->dev->info;
    int rc = note_cold(g, pipe, err);
    VkDescriptorSet set;
    if (!rc) rc = descriptor_set_alloc(g, pipe->set_layout, &set, err);
    if (rc) return rc;

    VkDescriptorBufferInfo bi[PIPELINE_MAX_BINDINGS];
    VkBufferView views[PIPELINE_MAX_BINDINGS];
    VkWriteDescriptorSet writes[PIPELINE_MAX_BINDINGS];
    const uint32_t texels = shader_registry[pipe->shader].texel_bindings;
    for (uint32_t i = 0; i < pipe->n_bindings; i++) {
        writes[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = i,
            .descriptorCount = 1,
        };
        if (texels & (1u << i)) {
            if ((rc = texel_view(g, &bufs[i], &views[i], err))) {
                vkllm_error_prefix(err, shader_registry[pipe->shader].name);
                return rc;
            }
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            writes[i].pTexelBufferView = &views[i];
            continue;
        }
        if (bufs[i].size > info->max_storage_buffer_range)
            return vkllm_fail(err, VKLLM_E_INVALID,
                              "%s: binding %u is %llu bytes, over the device's limit of %llu",
                              shader_registry[pipe->shader].name, i,
                              (unsigned long long)bufs[i].size,
                              (unsigned long long)info->max_storage_buffer_range);
        bi[i] = (VkDescriptorBufferInfo){bufs[i].buffer, bufs[i].offset, bufs[i].size};
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &bi[i];
    }
    vkUpdateDescriptorSets(g->dev->device, pipe->n_bindings, writes, 0, NULL);

    vkCmdBindPipeline(g->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe->pipeline);
    vkCmdBindDescriptorSets(g->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe->layout, 0, 1, &set, 0,
                            NULL);
    if (pipe->push_size)
        vkCmdPushConstants(g->cmd, pipe->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, pipe->push_size,
                           push);
    uint32_t max_x = info->max_workgroup_count[0];
    uint32_t gx = n_groups < max_x ? n_groups : max_x;
    uint32_t gy = (n_groups + gx - 1) / gx;
    if (gy > info->max_workgroup_count[1])
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: %u workgroups is too many for %s",
                          shader_registry[pipe->shader].name, n_groups, info->name);
    if (g->profile_queries && g->n_dispatches < PROFILE_MAX) {
        struct gpu_profile_rec *r = &g->profile_rec[g->n_dispatches];
        if ((rc = profile_sum_of(g, pipe->shader, &r->sum, err))) return rc;
        r->bytes = g->tag_bytes;
    }
    g->tag_bytes = 0;
    vkCmdDispatch(g->cmd, gx, gy, 1);
    if (g->profile_queries && g->n_dispatches < PROFILE_MAX)
        vkCmdWriteTimestamp(g->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->profile_queries,
                            g->n_dispatches);
    g->n_dispatches++;

    if (sync == GPU_BARRIER) gpu_graph_barrier(g);
    return VKLLM_OK;
}

void gpu_graph_barrier(struct gpu_graph *g)
{
    /* later dispatches read earlier ones' outputs, or overwrite their inputs */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT,
        .dstAccessMask =
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT,
    };
    vkCmdPipelineBarrier(g->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         1, &mb, 0, NULL, 0, NULL);
    g->n_barriers++;
}

void gpu_graph_copy(struct gpu_graph *g, const struct gpu_buf *src, const struct gpu_buf *dst,
                    VkDeviceSize size)
{
    VkBufferCopy c = {.srcOffset = src->offset, .dstOffset = dst->offset, .size = size};
    vkCmdCopyBuffer(g->cmd, src->buffer, dst->buffer, 1, &c);
    /* the host reads the copy after waiting on the fence */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(g->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &mb, 0, NULL, 0, NULL);
}

int gpu_graph_end(struct gpu_graph *g, struct vkllm_error *err)
{
    if (g->queries)
        vkCmdWriteTimestamp(g->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->queries, 1);
    return VK_DEV_CHECK(g->dev, err, VK_FAULT_NONE, vkEndCommandBuffer(g->cmd));
}

int gpu_graph_run(struct gpu_graph *g, struct vkllm_error *err)
{
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &g->cmd,
    };
    int rc = vk_dev_usable(g->dev, err);
    if (!rc)
        rc = VK_DEV_CHECK(g->dev, err, VK_FAULT_SUBMIT,
                          vkQueueSubmit(g->dev->queue, 1, &si, g->fence));
    if (rc) return rc;
    /* until the fence says it is done, nothing it uses may be freed */
    g->pending = true;
    char what[48];
    snprintf(what, sizeof what, "a recording of %u dispatches", g->n_dispatches);
    if ((rc = vk_fence_wait_first(g->dev, g->fence, what, g->n_cold, err))) return rc;
    g->pending = false;
    for (uint32_t i = 0; i < g->n_cold; i++)
        atomic_store(&g->cold[i]->ran, true);
    g->n_cold = 0;
    rc = VK_DEV_CHECK(g->dev, err, VK_FAULT_NONE, vkResetFences(g->dev->device, 1, &g->fence));
    if (!rc && g->profile_queries) profile_collect(g);
    return rc;
}

double gpu_graph_last_ms(const struct gpu_graph *g)
{
    if (!g->queries) return 0.0;
    uint64_t ts[2];
    if (vkGetQueryPoolResults(g->dev->device, g->queries, 0, 2, sizeof ts, ts, sizeof ts[0],
                              VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
        return 0.0;
    uint64_t mask = g->dev->timestamp_bits >= 64 ? ~0ull : (1ull << g->dev->timestamp_bits) - 1;
    return (double)((ts[1] - ts[0]) & mask) * g->dev->info.timestamp_period_ns * 1e-6;
}
