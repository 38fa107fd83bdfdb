/* vk_bandwidth.c: the device's copy bandwidth, the ceiling that decode (which
 * reads every weight once per token) is measured against.
 *
 * One large device-to-device copy, replayed a few times after a warm-up; the
 * fastest replay counts (as a STREAM-style benchmark reports its best), timed
 * with the queue's timestamps where it has them, else the wall clock around
 * the submit and wait. A copy reads and writes each byte: both count. The
 * copy is made twice, by vkCmdCopyBuffer and by a kernel (copy.comp), and the
 * faster counts: a driver may give vkCmdCopyBuffer to a copy engine slower
 * than the shader cores that read the weights (on an NVIDIA H200
 * vkCmdCopyBuffer moved 847 GB/s, copy.comp 3255). */
#include "context.h"
#include "kernels.h"
#include "vk_commands.h"
#include "vk_fault.h"

#include <math.h>
#include <time.h>

#define COPY_MAX_BYTES (256ull << 20) /* as large as the caches are small against */
/* below this the copy runs in the caches (a GPU's last-level cache is tens of
 * MiB, lavapipe's CPU's too) and the figure is theirs, not the memory's */
#define COPY_MIN_BYTES (64ull << 20)
#define COPY_RUNS      5 /* timed replays after the warm-up */

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The bytes each of the two buffers gets: 256 MiB, or less where the
 * device's buffer limits or a quarter of its free memory say so. */
static VkDeviceSize copy_bytes(const struct vk_device *d)
{
    struct vkllm_memory_budget b;
    vk_device_memory(d, &b);
    VkDeviceSize size = COPY_MAX_BYTES, limit = gpu_pool_limit(&d->info);
    VkDeviceSize free_bytes = b.budget > b.usage ? b.budget - b.usage : 0;
    if (limit && size > limit) size = limit;
    if (size > free_bytes / 8) size = free_bytes / 8; /* two buffers in a quarter of it */
    return size / 4 * 4; /* vkCmdFillBuffer and the copy take whole words */
}

/* The fastest of COPY_RUNS replays of the recorded GRAPH, in ms. */
static int fastest_run(struct gpu_graph *graph, double *best_ms, struct vkllm_error *err)
{
    *best_ms = INFINITY;
    for (int i = 0; i < COPY_RUNS; i++) {
        double t0 = wall_ms();
        int rc = gpu_graph_run(graph, err);
        if (rc) return rc;
        double ms = gpu_graph_last_ms(graph);
        if (ms <= 0.0) ms = wall_ms() - t0; /* no timestamps on this queue */
        if (ms > 0.0 && ms < *best_ms) *best_ms = ms;
    }
    return VKLLM_OK;
}

int vkllm_context_copy_bandwidth(vkllm_context *ctx, double *gbps, struct vkllm_error *err)
{
    struct vk_device *d = &ctx->dev;
    *gbps = 0.0;
    int rc = vk_dev_usable(d, err);
    if (rc) return rc;
    const VkDeviceSize size = copy_bytes(d);
    if (size < COPY_MIN_BYTES)
        return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                          "%s: too little free memory to measure its copy bandwidth (%.1f MiB "
                          "a buffer, at least %.1f MiB needed: a smaller copy runs in the caches)",
                          d->info.name, size / 1048576.0, COPY_MIN_BYTES / 1048576.0);

    struct gpu_pool pool;
    struct gpu_graph graph = {0};
    struct gpu_buf src, dst;
    gpu_pool_init(&pool, d, GPU_POOL_DEVICE, size);
    if ((rc = gpu_pool_alloc(&pool, size, &src, err)) ||
        (rc = gpu_pool_alloc(&pool, size, &dst, err)) || (rc = gpu_graph_create(&graph, d, err)))
        goto done;

    /* warm-up: fill the source (a driver may back untouched memory with a
     * shared zero page, which reads faster than real data) and copy it once,
     * so that both buffers' pages are resident before the timed runs */
    if ((rc = gpu_graph_begin(&graph, err))) goto done;
    vkCmdFillBuffer(graph.cmd, src.buffer, src.offset, size, 0x5a5a5a5au);
    VkMemoryBarrier filled = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
    };
    /* the copy reads what the fill wrote */
    vkCmdPipelineBarrier(graph.cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         0, 1, &filled, 0, NULL, 0, NULL);
    gpu_graph_copy(&graph, &src, &dst, size);
    if ((rc = gpu_graph_end(&graph, err)) || (rc = gpu_graph_run(&graph, err))) goto done;

    double best_ms, kernel_ms;
    if ((rc = gpu_graph_begin(&graph, err))) goto done;
    gpu_graph_copy(&graph, &src, &dst, size);
    if ((rc = gpu_graph_end(&graph, err)) || (rc = fastest_run(&graph, &best_ms, err))) goto done;

    /* the same by the shader cores, 16 bytes a thread, in pieces a binding
     * can take (lavapipe's 128 MiB) */
    struct vk_pipeline *copy;
    const uint32_t spec[] = {ctx->wg_size};
    VkDeviceSize piece = d->info.max_storage_buffer_range, align = 16;
    if (d->info.min_storage_buffer_offset_alignment > align)
        align = d->info.min_storage_buffer_offset_alignment;
    piece = piece / align * align;
    if ((rc = vk_pipeline_get(&ctx->pipes, SHADER_COPY, spec, 1, 3, sizeof(struct push_copy), &copy,
                              err)) ||
        (rc = gpu_graph_begin(&graph, err)))
        goto done;
    for (VkDeviceSize at = 0; at < size / 16 * 16; at += piece) {
        const VkDeviceSize n = size / 16 * 16 - at < piece ? size / 16 * 16 - at : piece;
        const struct push_copy pc = {(uint32_t)(n / 16)};
        struct gpu_buf from = src, to = dst;
        from.offset += at, to.offset += at;
        from.size = to.size = n;
        /* binding 0, the step header, is not read */
        const struct gpu_buf bufs[] = {from, from, to};
        const uint32_t groups = (uint32_t)((pc.n + ctx->wg_size - 1) / ctx->wg_size);
        if ((rc = gpu_graph_dispatch(&graph, copy, groups, &pc, bufs, GPU_NO_BARRIER, err)))
            goto done;
    }
    if ((rc = gpu_graph_end(&graph, err)) || (rc = gpu_graph_run(&graph, err)) ||
        (rc = fastest_run(&graph, &kernel_ms, err)))
        goto done;
    if (kernel_ms < best_ms) best_ms = kernel_ms;
    if (!isfinite(best_ms)) {
        rc = vkllm_fail(err, VKLLM_E_VULKAN, "%s: a copy of %.1f MiB took no measurable time",
                        d->info.name, size / 1048576.0);
        goto done;
    }
    *gbps = 2.0 * (double)size / (best_ms * 1e6); /* bytes read + written, per ns */
done:
    gpu_graph_destroy(&graph);
    gpu_pool_destroy(&pool);
    return rc;
}
