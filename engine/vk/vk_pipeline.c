/* vk_pipeline.c: shader modules, descriptor set layouts and compute pipelines. */
#include "vk_pipeline.h"

#include "vk_fault.h"

#include <stdlib.h>
#include <string.h>

int vk_pipelines_init(struct vk_pipelines *p, struct vk_device *dev, struct vkllm_error *err)
{
    memset(p, 0, sizeof *p);
    p->dev = dev;
    int rc = pipeline_cache_load(&p->on_disk, dev, p->note, sizeof p->note, err);
    if (rc) return rc;
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = p->on_disk.size,
        .pInitialData = p->on_disk.data,
    };
    /* drivers ignore data that is not theirs (the Vulkan specification asks
     * them to), so a cache the checks let through costs nothing if stale */
    rc = VK_DEV_CHECK(dev, err, VK_FAULT_OBJECT,
                      vkCreatePipelineCache(dev->device, &ci, NULL, &p->cache));
    free(p->on_disk.data);
    p->on_disk.data = NULL;
    return rc;
}

/* Writes P's cache to disk, if pipelines were created: best effort, since
 * nothing can be reported from a destroy. */
static void cache_write(struct vk_pipelines *p)
{
    if (!p->cache || !p->on_disk.path || !p->n_items || p->dev->lost || p->dev->hung) return;
    size_t size = 0;
    if (vkGetPipelineCacheData(p->dev->device, p->cache, &size, NULL) != VK_SUCCESS || !size)
        return;
    void *data = malloc(size);
    struct vkllm_error err;
    /* VK_INCOMPLETE, were it to grow meanwhile: the next run writes it whole */
    if (data && vkGetPipelineCacheData(p->dev->device, p->cache, &size, data) == VK_SUCCESS)
        pipeline_cache_save(&p->on_disk, data, size, &err);
    free(data);
}

/* Frees PL, and its Vulkan objects unless DEV is VK_NULL_HANDLE. */
static void pipeline_free(VkDevice dev, struct vk_pipeline *pl)
{
    if (!pl) return;
    if (!dev) {
        free(pl);
        return;
    }
    if (pl->pipeline) vkDestroyPipeline(dev, pl->pipeline, NULL);
    if (pl->layout) vkDestroyPipelineLayout(dev, pl->layout, NULL);
    if (pl->set_layout) vkDestroyDescriptorSetLayout(dev, pl->set_layout, NULL);
    free(pl);
}

void vk_pipelines_destroy(struct vk_pipelines *p)
{
    if (!p || !p->dev) return;
    cache_write(p);
    /* work that timed out may still run the pipelines: they are leaked */
    VkDevice dev = p->dev->hung ? VK_NULL_HANDLE : p->dev->device;
    for (uint32_t i = 0; i < p->n_items; i++)
        pipeline_free(dev, p->items[i]);
    free(p->items);
    for (int i = 0; i < SHADER_COUNT && dev; i++)
        if (p->modules[i]) vkDestroyShaderModule(dev, p->modules[i], NULL);
    if (p->cache && dev) vkDestroyPipelineCache(dev, p->cache, NULL);
    pipeline_cache_free(&p->on_disk);
    memset(p, 0, sizeof *p);
}

static int module_get(struct vk_pipelines *p, enum shader_id s, struct vkllm_error *err)
{
    if (p->modules[s]) return VKLLM_OK;
    VkShaderModuleCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = *shader_registry[s].bytes,
        .pCode = shader_registry[s].words,
    };
    return VK_DEV_CHECK(p->dev, err, VK_FAULT_PIPELINE,
                        vkCreateShaderModule(p->dev->device, &ci, NULL, &p->modules[s]));
}

static int pipeline_build(struct vk_pipelines *p, struct vk_pipeline *pl, struct vkllm_error *err)
{
    VkDevice dev = p->dev->device;
    int rc = module_get(p, pl->shader, err);
    if (rc) return rc;

    VkDescriptorSetLayoutBinding bindings[PIPELINE_MAX_BINDINGS];
    for (uint32_t i = 0; i < pl->n_bindings; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = pl->n_bindings,
        .pBindings = bindings,
    };
    if ((rc = VK_DEV_CHECK(p->dev, err, VK_FAULT_PIPELINE,
                           vkCreateDescriptorSetLayout(dev, &dci, NULL, &pl->set_layout))))
        return rc;
    VkPushConstantRange range = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .size = pl->push_size,
    };
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &pl->set_layout,
        .pushConstantRangeCount = pl->push_size ? 1 : 0,
        .pPushConstantRanges = &range,
    };
    if ((rc = VK_DEV_CHECK(p->dev, err, VK_FAULT_PIPELINE,
                           vkCreatePipelineLayout(dev, &lci, NULL, &pl->layout))))
        return rc;

    VkSpecializationMapEntry entries[PIPELINE_MAX_SPEC];
    for (uint32_t i = 0; i < pl->n_spec; i++)
        entries[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
    VkSpecializationInfo spec = {
        .mapEntryCount = pl->n_spec,
        .pMapEntries = entries,
        .dataSize = pl->n_spec * 4,
        .pData = pl->spec,
    };
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = p->modules[pl->shader],
                .pName = "main",
                .pSpecializationInfo = &spec,
            },
        .layout = pl->layout,
    };
    rc = VK_DEV_CHECK(p->dev, err, VK_FAULT_PIPELINE,
                      vkCreateComputePipelines(dev, p->cache, 1, &ci, NULL, &pl->pipeline));
    if (rc) vkllm_error_prefix(err, shader_registry[pl->shader].name);
    return rc;
}

int vk_pipeline_get(struct vk_pipelines *p, enum shader_id shader, const uint32_t *spec,
                    uint32_t n_spec, uint32_t n_bindings, uint32_t push_size,
                    struct vk_pipeline **out, struct vkllm_error *err)
{
    if (n_spec > PIPELINE_MAX_SPEC || n_bindings > PIPELINE_MAX_BINDINGS ||
        push_size > p->dev->info.max_push_constants)
        return vkllm_fail(err, VKLLM_E_INVALID, "pipeline %s: too many constants or bindings",
                          shader_registry[shader].name);
    /* the key is all that goes into the pipeline: the same shader with other
     * bindings or push constants needs another layout */
    for (uint32_t i = 0; i < p->n_items; i++) {
        struct vk_pipeline *c = p->items[i];
        if (c->shader == shader && c->n_spec == n_spec && c->n_bindings == n_bindings &&
            c->push_size == push_size && !memcmp(c->spec, spec, n_spec * sizeof *spec)) {
            *out = c;
            return VKLLM_OK;
        }
    }
    if (p->n_items == p->cap_items) {
        uint32_t cap = p->cap_items ? 2 * p->cap_items : 32;
        struct vk_pipeline **items = realloc(p->items, cap * sizeof *items);
        if (!items) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        p->items = items;
        p->cap_items = cap;
    }
    int rc = vk_dev_usable(p->dev, err);
    if (rc) return rc;
    struct vk_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    pl->shader = shader;
    pl->n_spec = n_spec;
    memcpy(pl->spec, spec, n_spec * sizeof *spec);
    pl->n_bindings = n_bindings;
    pl->push_size = push_size;
    if ((rc = pipeline_build(p, pl, err))) {
        pipeline_free(p->dev->device, pl);
        return rc;
    }
    p->items[p->n_items++] = pl;
    *out = pl;
    return VKLLM_OK;
}
