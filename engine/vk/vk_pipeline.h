/* vk_pipeline.h: compute pipelines built from the embedded SPIR-V registry
 * (shaders.h), specialized by constants and cached by everything that makes
 * them: shader, constants, bindings and push-constant size.
 * Internal to the engine. */
#ifndef VKLLM_VK_PIPELINE_H
#define VKLLM_VK_PIPELINE_H

#include "pipeline_cache.h"
#include "vk_device.h"

#include <stdatomic.h>

#include "shaders.h"

#define PIPELINE_MAX_SPEC     8
#define PIPELINE_MAX_BINDINGS 8
#define PIPELINE_MAX_THREADS  8 /* compiling deferred pipelines */

struct vk_pipeline {
    enum shader_id shader;
    uint32_t spec[PIPELINE_MAX_SPEC]; /* constant_id i = spec[i]; 0 is the workgroup size */
    uint32_t n_spec;
    uint32_t n_bindings; /* buffers at bindings 0..n-1 (shader_code.texel_bindings says which kind) */
    uint32_t push_size;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    /* a recording that dispatches it has finished: a driver that compiles a
     * kernel when it first runs it (lavapipe) has done so */
    atomic_bool ran;
};

struct vk_pipelines {
    struct vk_device *dev;
    VkPipelineCache cache; /* seeded from the on-disk cache, written back at destroy */
    struct pipeline_cache on_disk;
    char note[512]; /* why the on-disk cache was not used; "" when it was, or none */
    VkShaderModule modules[SHADER_COUNT];
    struct vk_pipeline **items;
    uint32_t n_items, cap_items; /* none made: the cache has nothing new to write */
    bool deferring;              /* vk_pipelines_defer */
};

/* Sets up P for DEV, its cache seeded from the on-disk one (pipeline_cache.h);
 * a cache that cannot be used leaves a line in P->note. */
int vk_pipelines_init(struct vk_pipelines *p, struct vk_device *dev, struct vkllm_error *err);
/* Frees P's pipelines, after writing its cache to disk when pipelines were
 * created (a failure to write costs the next start time, nothing else). */
void vk_pipelines_destroy(struct vk_pipelines *p);

/* The pipeline for SHADER with specialization constants SPEC[0..N_SPEC),
 * N_BINDINGS storage buffers and PUSH_SIZE bytes of push constants; built on
 * first use and owned by P. While P defers, a new one comes without its
 * VkPipeline (a dispatch of it records nothing) until
 * vk_pipelines_build_deferred. */
int vk_pipeline_get(struct vk_pipelines *p, enum shader_id shader, const uint32_t *spec,
                    uint32_t n_spec, uint32_t n_bindings, uint32_t push_size,
                    struct vk_pipeline **out, struct vkllm_error *err);

/* From now on vk_pipeline_get leaves new pipelines' compilation for
 * vk_pipelines_build_deferred: record a graph once to learn what it needs,
 * build, then record it for real. */
void vk_pipelines_defer(struct vk_pipelines *p);
/* Compiles every pipeline still without its VkPipeline, on up to
 * PIPELINE_MAX_THREADS threads (drivers compile each on the calling
 * thread), and stops deferring. After a failure none of them is kept. */
int vk_pipelines_build_deferred(struct vk_pipelines *p, struct vkllm_error *err);

#endif
