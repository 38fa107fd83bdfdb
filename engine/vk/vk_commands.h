/* vk_commands.h: a recorded command buffer ("graph") of compute dispatches,
 * replayed by submitting it again; its descriptor sets live as long as it does.
 * Timestamps bracket each replay; on a profiling device (vk_device.profile),
 * each dispatch too. Internal to the engine. */
#ifndef VKLLM_VK_COMMANDS_H
#define VKLLM_VK_COMMANDS_H

#include "vk_memory.h"
#include "vk_pipeline.h"

/* A profiled graph's time summed over its dispatches of one kernel with one
 * tag (gpu_graph_tag), over every replay of every recording. */
struct gpu_profile_sum {
    uint32_t shader;
    int32_t layer; /* the tag's */
    uint32_t role; /* the tag's */
    uint64_t dispatches;
    uint64_t bytes; /* the tagged weight bytes those dispatches read */
    double ms;
};

/* A profiled graph's recorded dispatch. */
struct gpu_profile_rec {
    uint32_t sum;   /* index in profile_sums */
    uint64_t bytes; /* the weight bytes it reads */
};

/* A view of a buffer range as uvec4 words, for a texel binding. */
struct gpu_view {
    VkBuffer buffer;
    VkDeviceSize offset, size;
    VkBufferView view;
};

struct gpu_graph {
    struct vk_device *dev;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkQueryPool queries; /* 2 timestamps, or VK_NULL_HANDLE */
    VkDescriptorPool *desc_pools;
    uint32_t n_desc_pools;
    uint32_t sets_left;    /* in the newest descriptor pool */
    struct gpu_view *views; /* the recording's texel bindings, each range once */
    uint32_t n_views, cap_views;
    uint32_t n_dispatches; /* in the recording */
    /* the recording's pipelines that have not run yet, each once: its first
     * run may include their compilation, and waits longer (gpu_graph_run) */
    struct vk_pipeline **cold;
    uint32_t n_cold, cap_cold;
    uint32_t n_barriers; /* in the recording, gpu_graph_barrier's */
    bool pending;        /* submitted, and not known to be done (a wait failed) */
    /* profiling: a timestamp after each dispatch, its time added to its sum */
    VkQueryPool profile_queries;
    struct gpu_profile_rec *profile_rec; /* per recorded dispatch */
    struct gpu_profile_sum *profile_sums;
    uint32_t n_profile_sums, cap_profile_sums;
    int32_t tag_layer; /* of the dispatches recorded next */
    uint32_t tag_role;
    uint64_t tag_bytes; /* of the next dispatch only */
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
 * 0..pipe->n_bindings-1 and PUSH (pipe->push_size bytes). A texel binding's
 * range must suit gpu_texel_range_ok. */
int gpu_graph_dispatch(struct gpu_graph *g, const struct vk_pipeline *pipe, uint32_t n_groups,
                       const void *push, const struct gpu_buf *bufs, enum gpu_sync sync,
                       struct vkllm_error *err);
/* Profiling: the dispatches recorded from now on are of LAYER (-1: none) and
 * ROLE (the caller's meaning), and the next one reads BYTES of weights. */
void gpu_graph_tag(struct gpu_graph *g, int32_t layer, uint32_t role);
void gpu_graph_tag_bytes(struct gpu_graph *g, uint64_t bytes);
/* Records a barrier: what was dispatched before is done, and its writes
 * visible, before what is dispatched (or copied) after starts. */
void gpu_graph_barrier(struct gpu_graph *g);
/* Records a copy; a barrier makes it visible to the host after the fence. */
void gpu_graph_copy(struct gpu_graph *g, const struct gpu_buf *src, const struct gpu_buf *dst,
                    VkDeviceSize size);
int gpu_graph_end(struct gpu_graph *g, struct vkllm_error *err);
/* Whether B can be bound as a uniform texel buffer of uvec4 words on DEV: its
 * offset aligned, its 16-byte texels (the last one rounded up: gpu_pool_alloc
 * leaves room) within the device's count. */
bool gpu_texel_range_ok(const struct vk_device *dev, const struct gpu_buf *b);

/* Submits the recording and waits for it to finish. */
int gpu_graph_run(struct gpu_graph *g, struct vkllm_error *err);
/* Milliseconds between the timestamps of the last run, or 0. */
double gpu_graph_last_ms(const struct gpu_graph *g);

#endif
