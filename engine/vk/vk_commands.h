/* vk_commands.h: a recorded command buffer ("graph") of compute dispatches,
 * replayed by submitting it again; its descriptor sets live as long as it does.
 * Timestamps bracket each replay; with VKLLM_PROFILE set, each dispatch.
 * Internal to the engine. */
#ifndef VKLLM_VK_COMMANDS_H
#define VKLLM_VK_COMMANDS_H

#include "vk_memory.h"
#include "vk_pipeline.h"

struct gpu_graph {
    struct vk_device *dev;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkQueryPool queries; /* 2 timestamps, or VK_NULL_HANDLE */
    VkDescriptorPool *desc_pools;
    uint32_t n_desc_pools;
    uint32_t sets_left; /* in the newest descriptor pool */
    uint32_t n_dispatches;
    bool pending; /* submitted, and not known to be done (a wait failed) */
    /* VKLLM_PROFILE: a timestamp after each dispatch, summed per kernel over
     * every run and printed to stderr when the graph is destroyed */
    VkQueryPool profile_queries;
    uint32_t *profile_shader; /* the kernel of each recorded dispatch */
    double *profile_ms;       /* per kernel (SHADER_COUNT) */
    uint64_t *profile_calls;
};

/* Whether a dispatch's results are read by the next one. */
enum gpu_sync {
    GPU_BARRIER,    /* the next dispatch reads (or overwrites) what this one writes */
    GPU_NO_BARRIER, /* independent of the next dispatch: they may overlap */
};

int gpu_graph_create(struct gpu_graph *g, struct vk_device *dev, struct vkllm_error *err);
void gpu_graph_destroy(struct gpu_graph *g);

/* Starts recording (dropping any earlier recording). */
int gpu_graph_begin(struct gpu_graph *g, struct vkllm_error *err);
/* Records PIPE over N_GROUPS workgroups (split over x and y when above the
 * device's limit; kernels use group_index()), binding BUFS to bindings
 * 0..pipe->n_bindings-1 and PUSH (pipe->push_size bytes). */
int gpu_graph_dispatch(struct gpu_graph *g, const struct vk_pipeline *pipe, uint32_t n_groups,
                       const void *push, const struct gpu_buf *bufs, enum gpu_sync sync,
                       struct vkllm_error *err);
/* Records a barrier: what was dispatched before is done, and its writes
 * visible, before what is dispatched (or copied) after starts. */
void gpu_graph_barrier(struct gpu_graph *g);
/* Records a copy; a barrier makes it visible to the host after the fence. */
void gpu_graph_copy(struct gpu_graph *g, const struct gpu_buf *src, const struct gpu_buf *dst,
                    VkDeviceSize size);
int gpu_graph_end(struct gpu_graph *g, struct vkllm_error *err);

/* Submits the recording and waits for it to finish. */
int gpu_graph_run(struct gpu_graph *g, struct vkllm_error *err);
/* Milliseconds between the timestamps of the last run, or 0. */
double gpu_graph_last_ms(const struct gpu_graph *g);

#endif
