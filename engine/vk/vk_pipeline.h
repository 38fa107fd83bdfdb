/* vk_pipeline.h: compute pipelines built from the embedded SPIR-V registry
 * (shaders.h), specialized by constants and cached by everything that makes
 * them: shader, constants, bindings and push-constant size.
 * Internal to the engine. */
#ifndef VKLLM_VK_PIPELINE_H
#define VKLLM_VK_PIPELINE_H

#include "pipeline_cache.h"
#include "vk_device.h"

#include "shaders.h"

#define PIPELINE_MAX_SPEC     8
#define PIPELINE_MAX_BINDINGS 8

struct vk_pipeline {
    enum shader_id shader;
    uint32_t spec[PIPELINE_MAX_SPEC]; /* constant_id i = spec[i]; 0 is the workgroup size */
    uint32_t n_spec;
    uint32_t n_bindings; /* storage buffers at bindings 0..n-1 */
    uint32_t push_size;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
};

struct vk_pipelines {
    struct vk_device *dev;
    VkPipelineCache cache; /* seeded from the on-disk cache, written back at destroy */
    struct pipeline_cache on_disk;
    char note[512]; /* why the on-disk cache was not used; "" when it was, or none */
    VkShaderModule modules[SHADER_COUNT];
    struct vk_pipeline **items;
    uint32_t n_items, cap_items; /* none made: the cache has nothing new to write */
};

/* Sets up P for DEV, its cache seeded from the on-disk one (pipeline_cache.h);
 * a cache that cannot be used leaves a line in P->note. */
int vk_pipelines_init(struct vk_pipelines *p, struct vk_device *dev, struct vkllm_error *err);
/* Frees P's pipelines, after writing its cache to disk when pipelines were
 * created (a failure to write costs the next start time, nothing else). */
void vk_pipelines_destroy(struct vk_pipelines *p);

/* The pipeline for SHADER with specialization constants SPEC[0..N_SPEC),
 * N_BINDINGS storage buffers and PUSH_SIZE bytes of push constants; built on
 * first use and owned by P. */
int vk_pipeline_get(struct vk_pipelines *p, enum shader_id shader, const uint32_t *spec,
                    uint32_t n_spec, uint32_t n_bindings, uint32_t push_size,
                    struct vk_pipeline **out, struct vkllm_error *err);

#endif
