/* vk_device.c: loading Vulkan, describing devices, choosing one, and creating
 * the logical device with a compute queue. */
#include "vk_device.h"

#include "number.h"
#include "vk_fault.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Results ============================== */

const char *vk_result_name(VkResult r)
{
    /* clang-format off */
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_EVENT_SET: return "VK_EVENT_SET";
    case VK_EVENT_RESET: return "VK_EVENT_RESET";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_UNKNOWN: return "VK_ERROR_UNKNOWN";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION";
    case VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS: return "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS";
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED";
    default: return "VkResult(unknown)";
    }
    /* clang-format on */
}

int vk_check(struct vkllm_error *err, VkResult r, const char *call, const char *file, int line)
{
    if (r == VK_SUCCESS) return VKLLM_OK;
    const char *base = strrchr(file, '/');
    int code = (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
                   ? VKLLM_E_DEVICE_MEMORY
                   : VKLLM_E_VULKAN;
    return vkllm_fail(err, code, "%s failed with %s (%s:%d)", call, vk_result_name(r),
                      base ? base + 1 : file, line);
}

/* ============================== Loading and instance ============================== */

static int vk_load(struct vkllm_error *err)
{
    static int loaded;
    if (loaded) return VKLLM_OK;
    if (volkInitialize() != VK_SUCCESS)
        return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                          "no Vulkan driver found: install mesa-vulkan-drivers or your GPU's "
                          "driver (libvulkan.so.1 could not be loaded)");
    if (volkGetInstanceVersion() < VK_API_VERSION_1_2)
        return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                          "the Vulkan loader is older than 1.2: update libvulkan1");
    loaded = 1;
    return VKLLM_OK;
}

static bool has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *props = calloc(n, sizeof *props);
    bool found = false;
    if (props && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = !strcmp(props[i].layerName, name);
    free(props);
    return found;
}

static bool has_instance_extension(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    bool found = false;
    if (props && vkEnumerateInstanceExtensionProperties(NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = !strcmp(props[i].extensionName, name);
    free(props);
    return found;
}

/* Every validation message is printed and counted: tests fail on any. */
static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    struct vk_device *d = user;
    if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        d->validation_messages++;
        fprintf(stderr, "vulkan validation: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

/* The Vulkan version to ask for: what the loader offers, at most 1.3 (the
 * newest whose features the engine knows), at least 1.2. */
static uint32_t instance_version(void)
{
    uint32_t v = volkGetInstanceVersion();
    if (v > VK_API_VERSION_1_3) v = VK_API_VERSION_1_3;
    return v < VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : v;
}

static int instance_create(struct vk_device *d, bool validation, struct vkllm_error *err)
{
    int rc = vk_load(err);
    if (rc) return rc;

    const char *layers[1];
    const char *exts[2];
    uint32_t n_layers = 0, n_exts = 0;
    VkInstanceCreateFlags flags = 0;
    if (validation) {
        if (!has_layer("VK_LAYER_KHRONOS_validation"))
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "validation requested but the Khronos validation layer is not "
                              "installed (apt install vulkan-validationlayers)");
        layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    /* lists devices behind portability layers such as MoltenVK too */
    if (has_instance_extension(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm",
        .pEngineName = "vkllm",
        .apiVersion = instance_version(),
    };
    VkDebugUtilsMessengerCreateInfoEXT msg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = d,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validation ? &msg : NULL, /* also catches messages from vkCreateInstance */
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &d->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                          "no Vulkan driver found: install mesa-vulkan-drivers or your GPU's "
                          "driver");
    if ((rc = VK_CHECK(err, r))) return rc;
    volkLoadInstanceOnly(d->instance);
    if (validation && (rc = VK_CHECK(err, vkCreateDebugUtilsMessengerEXT(d->instance, &msg, NULL,
                                                                         &d->messenger))))
        return rc;
    d->destroy_messenger = vkDestroyDebugUtilsMessengerEXT;
    return VKLLM_OK;
}

/* ============================== Describing devices ============================== */

static bool has_device_extension(VkPhysicalDevice phys, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(phys, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    bool found = false;
    if (props && vkEnumerateDeviceExtensionProperties(phys, NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = !strcmp(props[i].extensionName, name);
    free(props);
    return found;
}

/* ============================== Memory budget ============================== */

int vk_max_memory(uint64_t *out, struct vkllm_error *err)
{
    *out = 0;
    const char *s = getenv("VKLLM_MAX_MEMORY");
    if (!s || !*s) return VKLLM_OK;
    int rc = number_setting("VKLLM_MAX_MEMORY", s, NUMBER_SIZE, out, err);
    if (!rc && !*out)
        rc = vkllm_fail(err, VKLLM_E_INVALID, "VKLLM_MAX_MEMORY: '%s' is not above 0 bytes", s);
    return rc;
}

/* What this process may use of the device-local heaps now: the driver's
 * budget where it has VK_EXT_memory_budget and USE_EXT allows it, else the
 * heaps' size; VKLLM_MAX_MEMORY caps it (an invalid value is reported when a
 * device is created). */
static void describe_budget(VkPhysicalDevice phys, bool use_ext, struct vkllm_device_info *info)
{
    info->memory_budget =
        use_ext && has_device_extension(phys, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = info->memory_budget ? &b : NULL};
    vkGetPhysicalDeviceMemoryProperties2(phys, &mp);
    info->budget_bytes = 0;
    for (uint32_t i = 0; i < mp.memoryProperties.memoryHeapCount; i++)
        if (mp.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            info->budget_bytes +=
                info->memory_budget ? b.heapBudget[i] : mp.memoryProperties.memoryHeaps[i].size;
    uint64_t max;
    if (vk_max_memory(&max, NULL) == VKLLM_OK && max) {
        if (info->device_local_bytes > max) info->device_local_bytes = max;
        if (info->budget_bytes > max) info->budget_bytes = max;
    }
}

void vk_memory_figures(const VkPhysicalDeviceMemoryProperties *mp,
                       const VkPhysicalDeviceMemoryBudgetPropertiesEXT *budget, uint32_t heap,
                       uint64_t allocated, uint64_t max_memory, struct vkllm_memory_budget *out)
{
    out->size = mp->memoryHeaps[heap].size;
    out->reported = budget != NULL;
    out->budget = budget ? budget->heapBudget[heap] : out->size;
    out->usage = budget ? budget->heapUsage[heap] : allocated;
    if (max_memory && out->size > max_memory) out->size = max_memory;
    if (max_memory && out->budget > max_memory) out->budget = max_memory;
}

void vk_device_memory(const struct vk_device *d, struct vkllm_memory_budget *out)
{
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = d->memory_budget ? &b : NULL};
    vkGetPhysicalDeviceMemoryProperties2(d->phys, &mp);
    vk_memory_figures(&mp.memoryProperties, d->memory_budget ? &b : NULL, d->local_heap,
                      d->allocated, d->max_memory, out);
}

/* Whether PHYS has VK_NV_cooperative_matrix with the shape gemm_coop.comp
 * multiplies: 16 x 16 x 16, half-float A and B, float C and D, per subgroup */
static bool coopmat_nv_usable(VkPhysicalDevice phys)
{
    if (!has_device_extension(phys, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME) ||
        !vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)
        return false;
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                       .pNext = &cm};
    vkGetPhysicalDeviceFeatures2(phys, &feats);
    uint32_t n = 0;
    if (!cm.cooperativeMatrix ||
        vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(phys, &n, NULL) != VK_SUCCESS || !n)
        return false;
    VkCooperativeMatrixPropertiesNV *props = calloc(n, sizeof *props);
    if (!props) return false;
    for (uint32_t i = 0; i < n; i++)
        props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    bool found = false;
    if (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(phys, &n, props) >= VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) {
            const VkCooperativeMatrixPropertiesNV *p = &props[i];
            found = p->MSize == 16 && p->NSize == 16 && p->KSize == 16 &&
                    p->AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                    p->BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                    p->CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                    p->DType == VK_COMPONENT_TYPE_FLOAT32_NV && p->scope == VK_SCOPE_SUBGROUP_NV;
        }
    free(props);
    return found;
}

static void describe(VkPhysicalDevice phys, uint32_t index, struct vkllm_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->index = index;

    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(phys, &base);
    const bool v13 = base.apiVersion >= VK_API_VERSION_1_3;
    info->subgroup_size_control =
        v13 || has_device_extension(phys, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    const bool maint4 = v13 || has_device_extension(phys, VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
    /* the 1.3 structures need a 1.3 instance too */
    const bool core13 = v13 && instance_version() >= VK_API_VERSION_1_3;

    VkPhysicalDeviceMaintenance4Properties m4 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties ssc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES,
        .pNext = maint4 ? &m4 : NULL};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
        .pNext = info->subgroup_size_control ? (void *)&ssc : (void *)(maint4 ? &m4 : NULL)};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &m3};
    VkPhysicalDeviceShaderIntegerDotProductProperties dot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES,
        .pNext = &sg};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                         .pNext = core13 ? (void *)&dot : (void *)&sg};
    vkGetPhysicalDeviceProperties2(phys, &props);

    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = core13 ? &f13 : NULL};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                       .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(phys, &feats);

    const VkPhysicalDeviceLimits *lim = &props.properties.limits;
    snprintf(info->name, sizeof info->name, "%s", props.properties.deviceName);
    /* driverName and driverInfo are 256 bytes each: a long pair is cut short */
    if (snprintf(info->driver, sizeof info->driver, "%s %s", drv.driverName, drv.driverInfo) < 0)
        info->driver[0] = '\0';
    switch (props.properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info->type = VKLLM_DEVICE_INTEGRATED; break;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info->type = VKLLM_DEVICE_DISCRETE; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info->type = VKLLM_DEVICE_VIRTUAL; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: info->type = VKLLM_DEVICE_CPU; break;
    default: info->type = VKLLM_DEVICE_OTHER; break;
    }
    info->vendor_id = props.properties.vendorID;
    info->device_id = props.properties.deviceID;
    info->api_version = props.properties.apiVersion;

    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(phys, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            info->device_local_bytes += mem.memoryHeaps[i].size;

    info->fp16 = f12.shaderFloat16;
    info->int8 = f12.shaderInt8;
    info->storage16 = f11.storageBuffer16BitAccess;
    info->storage8 = f12.storageBuffer8BitAccess;
    info->int_dot = f13.shaderIntegerDotProduct; /* only at 1.3, as vk_device_create enables it */
    info->int_dot_accelerated = info->int_dot && dot.integerDotProduct4x8BitPackedSignedAccelerated;
    info->coopmat = has_device_extension(phys, "VK_KHR_cooperative_matrix");
    info->coopmat_nv = f12.shaderFloat16 && f12.vulkanMemoryModel && sg.subgroupSize == 32 &&
                       (!info->subgroup_size_control ||
                        (ssc.minSubgroupSize == 32 && ssc.maxSubgroupSize == 32)) &&
                       coopmat_nv_usable(phys);
    info->subgroup_size = sg.subgroupSize;
    info->subgroup_min_size = info->subgroup_size_control ? ssc.minSubgroupSize : sg.subgroupSize;
    info->subgroup_max_size = info->subgroup_size_control ? ssc.maxSubgroupSize : sg.subgroupSize;
    info->subgroup_ops =
        (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? sg.supportedOperations : 0;

    info->max_storage_buffer_range = lim->maxStorageBufferRange;
    info->max_memory_allocation = m3.maxMemoryAllocationSize;
    info->max_buffer_size = maint4 ? m4.maxBufferSize : m3.maxMemoryAllocationSize;
    info->max_shared_memory = lim->maxComputeSharedMemorySize;
    info->max_workgroup_invocations = lim->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++)
        info->max_workgroup_count[i] = lim->maxComputeWorkGroupCount[i];
    info->max_push_constants = lim->maxPushConstantsSize;
    info->min_storage_buffer_offset_alignment = lim->minStorageBufferOffsetAlignment;
    VkFormatProperties fmt;
    vkGetPhysicalDeviceFormatProperties(phys, VK_FORMAT_R32G32B32A32_UINT, &fmt);
    if (fmt.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT)
        info->max_texel_buffer_elements = lim->maxTexelBufferElements;
    info->min_texel_buffer_offset_alignment = lim->minTexelBufferOffsetAlignment;
    info->timestamp_period_ns = lim->timestampComputeAndGraphics ? lim->timestampPeriod : 0.0f;
    describe_budget(phys, true, info);
}

/* The physical devices of D's instance, in enumeration order. */
static int enumerate(struct vk_device *d, VkPhysicalDevice **out, uint32_t *n,
                     struct vkllm_error *err)
{
    int rc = VK_CHECK(err, vkEnumeratePhysicalDevices(d->instance, n, NULL));
    if (rc) return rc;
    if (*n == 0)
        return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                          "no Vulkan device found: install mesa-vulkan-drivers or your GPU's "
                          "driver");
    *out = calloc(*n, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory listing devices");
    if ((rc = VK_CHECK(err, vkEnumeratePhysicalDevices(d->instance, n, *out)))) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int vkllm_devices_list(struct vkllm_device_info *out, int cap, struct vkllm_error *err)
{
    struct vk_device d = {0};
    VkPhysicalDevice *phys = NULL;
    uint32_t n = 0;
    uint64_t max_memory;
    int rc = vk_max_memory(&max_memory, err);
    if (!rc) rc = instance_create(&d, false, err);
    if (!rc) rc = enumerate(&d, &phys, &n, err);
    if (!rc) {
        for (uint32_t i = 0; i < n && (int)i < cap; i++)
            describe(phys[i], i, &out[i]);
        rc = (int)n;
    }
    free(phys);
    vk_device_destroy(&d);
    return rc;
}

/* ============================== Choosing and creating ============================== */

static int type_rank(enum vkllm_device_type t)
{
    switch (t) {
    case VKLLM_DEVICE_DISCRETE: return 4;
    case VKLLM_DEVICE_INTEGRATED: return 3;
    case VKLLM_DEVICE_VIRTUAL: return 2;
    case VKLLM_DEVICE_CPU: return 1;
    default: return 0;
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return n == 0;
}

int vkllm_device_choose(const struct vkllm_device_info *infos, uint32_t n, const char *selector,
                        struct vkllm_error *err)
{
    if (selector) {
        const char *p = selector;
        while (isspace((unsigned char)*p))
            p++;
        /* a blank name is part of every name with a space: refused, not matched */
        if (!*p)
            return vkllm_fail(err, VKLLM_E_INVALID,
                              "device '%s' is blank: give an index or part of a name (see "
                              "vkllm devices)",
                              selector);
        char *end;
        errno = 0;
        long long idx = strtoll(selector, &end, 10);
        if (end != selector && *end == '\0') { /* a number, negative and huge ones included */
            if (errno || idx < 0 || idx >= n)
                return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                                  "device %s does not exist: there are %u, from 0 (see vkllm "
                                  "devices)",
                                  selector, n);
            return (int)idx;
        }
        for (uint32_t i = 0; i < n; i++)
            if (contains_nocase(infos[i].name, selector)) return (int)i;
        return vkllm_fail(err, VKLLM_E_NO_DEVICE,
                          "no Vulkan device matches '%s' (see vkllm devices)", selector);
    }
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++) {
        int rb = type_rank(infos[best].type), ri = type_rank(infos[i].type);
        if (ri > rb || (ri == rb && infos[i].device_local_bytes > infos[best].device_local_bytes))
            best = i;
    }
    return (int)best;
}

/* VKLLM_MAX_BINDING=SIZE (bytes, or with a K, M, G or T suffix) pretends the
 * device binds less per storage buffer, so tests reach the split-tensor paths
 * with small models. A value it cannot read is an error: ignored, a test would
 * believe it split tensors that it did not. */
static int apply_binding_override(struct vkllm_device_info *info, struct vkllm_error *err)
{
    const char *s = getenv("VKLLM_MAX_BINDING");
    if (!s || !*s) return VKLLM_OK;
    uint64_t v;
    int rc = number_setting("VKLLM_MAX_BINDING", s, NUMBER_SIZE, &v, err);
    if (rc) return rc;
    if (v < 4096)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "VKLLM_MAX_BINDING: %s is less than 4K, the least vkllm works with", s);
    v &= ~255ull; /* keep bindings aligned for any offset alignment */
    if (v < info->max_storage_buffer_range) info->max_storage_buffer_range = v;
    return VKLLM_OK;
}

int vk_device_create(struct vk_device *d, const char *selector, bool validation,
                     bool no_memory_budget, bool coopmat, struct vkllm_error *err)
{
    memset(d, 0, sizeof *d);
    /* an empty VKLLM_DEVICE is unset; an empty --device is a blank name */
    const char *env = getenv("VKLLM_DEVICE");
    if (!selector && env && *env) selector = env;
    int rc = vk_max_memory(&d->max_memory, err);
    if (!rc) rc = instance_create(d, validation, err);
    if (rc) return rc;

    VkPhysicalDevice *phys = NULL;
    uint32_t n = 0;
    if ((rc = enumerate(d, &phys, &n, err))) return rc;
    struct vkllm_device_info *infos = calloc(n, sizeof *infos);
    if (!infos) {
        free(phys);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory listing devices");
    }
    for (uint32_t i = 0; i < n; i++)
        describe(phys[i], i, &infos[i]);
    int chosen = vkllm_device_choose(infos, n, selector, err);
    if (chosen >= 0) {
        d->phys = phys[chosen];
        d->info = infos[chosen];
    }
    free(phys);
    free(infos);
    if (chosen < 0) return chosen;
    if ((rc = apply_binding_override(&d->info, err))) return rc;
    if (no_memory_budget) describe_budget(d->phys, false, &d->info);

    if (d->info.api_version < VK_API_VERSION_1_2)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s supports Vulkan %u.%u; vkllm needs 1.2 (update the driver)",
                          d->info.name, VK_API_VERSION_MAJOR(d->info.api_version),
                          VK_API_VERSION_MINOR(d->info.api_version));
    vkGetPhysicalDeviceMemoryProperties(d->phys, &d->mem);
    /* the heap of the memory type device-local pools prefer (vk_memory.c) */
    d->local_heap = d->mem.memoryTypes[0].heapIndex;
    for (uint32_t i = d->mem.memoryTypeCount; i-- > 0;)
        if (d->mem.memoryTypes[i].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)
            d->local_heap = d->mem.memoryTypes[i].heapIndex;

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = calloc(nq ? nq : 1, sizeof *qf);
    if (!qf) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, qf);
    d->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < nq && d->queue_family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            d->queue_family = i;
            d->timestamp_bits = qf[i].timestampValidBits;
        }
    free(qf);
    if (d->queue_family == UINT32_MAX)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s has no compute queue", d->info.name);
    if (d->timestamp_bits == 0) d->info.timestamp_period_ns = 0.0f;

    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = d->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    /* the features the kernels may use, enabled where the device has them */
    const bool coop = coopmat && d->info.coopmat_nv;
    const bool v13 =
        d->info.api_version >= VK_API_VERSION_1_3 && instance_version() >= VK_API_VERSION_1_3;
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = v13 ? &f13 : NULL};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 have = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                      .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(d->phys, &have);
    VkPhysicalDeviceVulkan13Features e13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
        .subgroupSizeControl = f13.subgroupSizeControl,
        .computeFullSubgroups = f13.computeFullSubgroups,
        .shaderIntegerDotProduct = f13.shaderIntegerDotProduct,
    };
    VkPhysicalDeviceVulkan12Features e12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = v13 ? &e13 : NULL,
        .shaderFloat16 = f12.shaderFloat16,
        .shaderInt8 = f12.shaderInt8,
        .storageBuffer8BitAccess = f12.storageBuffer8BitAccess,
        .vulkanMemoryModel = coop, /* the cooperative-matrix shaders' */
    };
    VkPhysicalDeviceVulkan11Features e11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &e12,
        .storageBuffer16BitAccess = f11.storageBuffer16BitAccess,
    };
    VkPhysicalDeviceCooperativeMatrixFeaturesNV ecm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
        .pNext = &e11,
        .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceFeatures2 enable = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = coop ? (void *)&ecm : (void *)&e11};
    if (!e13.shaderIntegerDotProduct) d->info.int_dot = d->info.int_dot_accelerated = false;
    enable.features.shaderInt16 = have.features.shaderInt16;
    const char *exts[2];
    uint32_t n_exts = 0;
    d->memory_budget = d->info.memory_budget;
    if (d->memory_budget) exts[n_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (coop) exts[n_exts++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &enable,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    if ((rc = VK_DEV_CHECK(d, err, VK_FAULT_DEVICE,
                           vkCreateDevice(d->phys, &dci, NULL, &d->device))))
        return rc;
    volkLoadDevice(d->device);
    vkGetDeviceQueue(d->device, d->queue_family, 0, &d->queue);
    return VKLLM_OK;
}

void vk_device_destroy(struct vk_device *d)
{
    if (!d) return;
    if (d->hung) { /* work that never ended may still use it: leaked, not destroyed */
        memset(d, 0, sizeof *d);
        return;
    }
    if (d->device) {
        vkDeviceWaitIdle(d->device);
        vkDestroyDevice(d->device, NULL);
    }
    if (d->messenger) d->destroy_messenger(d->instance, d->messenger, NULL);
    if (d->instance) vkDestroyInstance(d->instance, NULL);
    memset(d, 0, sizeof *d);
}
