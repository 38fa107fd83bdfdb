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
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    uint32_t timestamp_bits; /* timestampValidBits of the queue family; 0: none */
    VkPhysicalDeviceMemoryProperties mem;
    struct vkllm_device_info info;
    uint32_t validation_messages; /* counted by the debug messenger */
};

/* Checks a VkResult: VK_SUCCESS gives 0, anything else fills ERR with the call,
 * file:line and the result's name and returns VKLLM_E_VULKAN (or
 * VKLLM_E_DEVICE_MEMORY for out-of-memory results). Survives NDEBUG. */
#define VK_CHECK(err, call) vk_check((err), (call), #call, __FILE__, __LINE__)
int vk_check(struct vkllm_error *err, VkResult r, const char *call, const char *file, int line);
const char *vk_result_name(VkResult r);

/* Creates the instance and device chosen by SELECTOR (see vkllm_context_params). */
int vk_device_create(struct vk_device *d, const char *selector, bool validation,
                     struct vkllm_error *err);
void vk_device_destroy(struct vk_device *d);

#endif
