/* vk_pipeline.c: shader modules, descriptor set layouts and compute pipelines. */
#include "vk_pipeline.h"

#include "vk_fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* PL's shader module, descriptor set layout and pipeline layout. */
static int pipeline_layouts(struct vk_pipelines *p, struct vk_pipeline *pl, struct vkllm_error *err)
{
    VkDevice dev = p->dev->device;
    int rc = module_get(p, pl->shader, err);
    if (rc) return rc;

    VkDescriptorSetLayoutBinding bindings[PIPELINE_MAX_BINDINGS];
    for (uint32_t i = 0; i < pl->n_bindings; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = shader_registry[pl->shader].texel_bindings & (1u << i)
                                  ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                  : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
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

    return VKLLM_OK;
}

/* PL's pipeline itself: the slow part (the driver compiles the shader). */
static VkResult pipeline_compile(struct vk_pipelines *p, struct vk_pipeline *pl)
{
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
    return VK_FAULTY(VK_FAULT_PIPELINE, vkCreateComputePipelines(p->dev->device, p->cache, 1, &ci,
                                                                 NULL, &pl->pipeline));
}

/* PL's result R as an error, named after its shader. */
static int compile_check(struct vk_pipelines *p, const struct vk_pipeline *pl, VkResult r,
                         struct vkllm_error *err)
{
    int rc = vk_dev_check(p->dev, err, r, "vkCreateComputePipelines", __FILE__, __LINE__);
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
    if (!(rc = pipeline_layouts(p, pl, err)) && !p->deferring)
        rc = compile_check(p, pl, pipeline_compile(p, pl), err);
    if (rc) {
        pipeline_free(p->dev->device, pl);
        return rc;
    }
    p->items[p->n_items++] = pl;
    *out = pl;
    return VKLLM_OK;
}

/* ============================== Deferred, in parallel ============================== */

void vk_pipelines_defer(struct vk_pipelines *p)
{
    p->deferring = true;
}

struct compile_job {
    struct vk_pipelines *p;
    atomic_uint next;
    pthread_mutex_t lock; /* a failure's report: it may mark the device lost */
    int rc;
    struct vkllm_error err;
};

static void *compile_worker(void *arg)
{
    struct compile_job *j = arg;
    struct vk_pipelines *p = j->p;
    for (uint32_t i; (i = atomic_fetch_add(&j->next, 1)) < p->n_items;) {
        struct vk_pipeline *pl = p->items[i];
        if (pl->pipeline) continue;
        VkResult r = pipeline_compile(p, pl);
        if (r == VK_SUCCESS) continue;
        /* reported on this thread, which knows whether VKLLM_FAULT injected it */
        struct vkllm_error e;
        pthread_mutex_lock(&j->lock);
        int rc = compile_check(p, pl, r, &e);
        if (!j->rc) {
            j->rc = rc;
            j->err = e;
        }
        pthread_mutex_unlock(&j->lock);
    }
    return NULL;
}

int vk_pipelines_build_deferred(struct vk_pipelines *p, struct vkllm_error *err)
{
    p->deferring = false;
    uint32_t pending = 0;
    for (uint32_t i = 0; i < p->n_items; i++)
        pending += !p->items[i]->pipeline;
    if (!pending) return VKLLM_OK;
    struct compile_job j = {.p = p, .rc = VKLLM_OK};
    atomic_init(&j.next, 0);
    pthread_mutex_init(&j.lock, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t n_threads = cpus < 1                      ? 1
                         : cpus > PIPELINE_MAX_THREADS ? PIPELINE_MAX_THREADS
                                                       : (uint32_t)cpus;
    if (n_threads > pending) n_threads = pending;
    pthread_t threads[PIPELINE_MAX_THREADS];
    uint32_t started = 0;
    /* this thread is one of them; a thread that cannot start leaves more to the others */
    while (started + 1 < n_threads &&
           pthread_create(&threads[started], NULL, compile_worker, &j) == 0)
        started++;
    compile_worker(&j);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&j.lock);
    if (!j.rc) return VKLLM_OK;
    /* none may stay without its pipeline: a later get would find it */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < p->n_items; i++) {
        if (p->items[i]->pipeline)
            p->items[kept++] = p->items[i];
        else
            pipeline_free(p->dev->device, p->items[i]);
    }
    p->n_items = kept;
    *err = j.err;
    return j.rc;
}
