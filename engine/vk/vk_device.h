/* vk_device.h: the Vulkan instance, the chosen physical device, the logical
 * device and its compute queue. Internal to the engine. */
#ifndef VKLLM_VK_DEVICE_H
#define VKLLM_VK_DEVICE_H

#include "error.h"
#include "vkllm.h"

#include <volk.h>

struct vk_device {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger; /* only with validation */
    /* volk's instance functions are global and follow the last instance
     * made: one made without validation (vkllm_devices_list's) has no
     * messenger functions, so each device keeps the one it needs */
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    uint32_t timestamp_bits; /* timestampValidBits of the queue family; 0: none */
    bool profile;            /* time each dispatch (vk_commands.h) */
    VkPhysicalDeviceMemoryProperties mem;
    /* faults (vk_fault.c): after a loss every call fails with lost_msg; when
     * work may still run (a wait timed out), what it uses is leaked, not freed */
    bool lost;
    bool hung;
    char lost_msg[512];
    struct vkllm_device_info info;
    uint32_t validation_messages; /* counted by the debug messenger */
    uint32_t local_heap;          /* the heap device-local pools allocate from */
    bool memory_budget;           /* VK_EXT_memory_budget is enabled */
    uint64_t max_memory;          /* VKLLM_MAX_MEMORY; 0: none */
    uint64_t allocated;           /* bytes held by this device's pools (vk_memory.c) */
    uint64_t uploaded;            /* bytes copied host to device by gpu_upload_map */
};

/* Checks a VkResult: VK_SUCCESS gives 0, anything else fills ERR with the call,
 * file:line and the result's name and returns VKLLM_E_VULKAN (or
 * VKLLM_E_DEVICE_MEMORY for out-of-memory results). Survives NDEBUG. */
#define VK_CHECK(err, call) vk_check((err), (call), #call, __FILE__, __LINE__)
int vk_check(struct vkllm_error *err, VkResult r, const char *call, const char *file, int line);
const char *vk_result_name(VkResult r);

/* Creates the instance and device chosen by SELECTOR (see vkllm_context_params).
 * NO_MEMORY_BUDGET leaves VK_EXT_memory_budget off where the device has it, to
 * test the path of devices without it (VKLLM_FORCE=no-memory-budget). COOPMAT
 * enables VK_NV_cooperative_matrix where the device has it (VKLLM_FORCE=coopmat):
 * until gemm_coop.comp has passed on a GPU, no device is made with it unasked. */
int vk_device_create(struct vk_device *d, const char *selector, bool validation,
                     bool no_memory_budget, bool coopmat, struct vkllm_error *err);
void vk_device_destroy(struct vk_device *d);

/* The device-local heap's size, what this process may use of it and uses now:
 * VK_EXT_memory_budget's figures where the driver has it, else the heap's size
 * and what this device's pools hold; VKLLM_MAX_MEMORY caps size and budget. */
void vk_device_memory(const struct vk_device *d, struct vkllm_memory_budget *out);
/* vk_device_memory's arithmetic, from the driver's figures: BUDGET is
 * VK_EXT_memory_budget's (NULL: the device has none, or it is off), HEAP the
 * heap, ALLOCATED what the pools hold, MAX_MEMORY VKLLM_MAX_MEMORY (0: none). */
void vk_memory_figures(const VkPhysicalDeviceMemoryProperties *mp,
                       const VkPhysicalDeviceMemoryBudgetPropertiesEXT *budget, uint32_t heap,
                       uint64_t allocated, uint64_t max_memory, struct vkllm_memory_budget *out);

/* Parses VKLLM_MAX_MEMORY=BYTES (K/M/G/T suffixes) into *OUT (0 when unset). */
int vk_max_memory(uint64_t *out, struct vkllm_error *err);

#endif
