/* vk_fault.h: faults from the device. Vulkan calls that may fail go through
 * VK_DEV_CHECK, which records a device loss so that every later call on that
 * device fails fast with the same message; fences are waited for with a
 * timeout; and VKLLM_FAULT injects failures, to test every path that handles
 * them. Internal to the engine.
 *
 * VKLLM_FAULT=KIND:N[,KIND:N...] makes the Nth call (counted from 1 over the
 * process) of each KIND fail as a driver would, without calling Vulkan:
 *   alloc     vkCreateBuffer, vkAllocateMemory       VK_ERROR_OUT_OF_DEVICE_MEMORY
 *   map       vkMapMemory                            VK_ERROR_MEMORY_MAP_FAILED
 *   pipeline  shader modules, layouts and pipelines  VK_ERROR_OUT_OF_HOST_MEMORY
 *   object    command pools and buffers, fences, query and descriptor pools,
 *             descriptor sets                        VK_ERROR_OUT_OF_HOST_MEMORY
 *   submit    vkQueueSubmit                          VK_ERROR_DEVICE_LOST
 *   wait      vkWaitForFences                        VK_ERROR_DEVICE_LOST
 *   timeout   vkWaitForFences                        VK_TIMEOUT
 *   device    vkCreateDevice                         VK_ERROR_INITIALIZATION_FAILED
 * The message of the error it causes ends with "injected by VKLLM_FAULT=KIND:N".
 * VKLLM_TIMEOUT=SECONDS ("60", "2.5": decimal, above 0, at most 1000000)
 * bounds each wait for the device (default 60). Both read their numbers with
 * core/number.h: digits only, nothing past 64 bits. */
#ifndef VKLLM_VK_FAULT_H
#define VKLLM_VK_FAULT_H

#include "vk_device.h"

enum vk_fault_kind {
    VK_FAULT_NONE, /* a call that is never made to fail */
    VK_FAULT_ALLOC,
    VK_FAULT_MAP,
    VK_FAULT_PIPELINE,
    VK_FAULT_OBJECT,
    VK_FAULT_SUBMIT,
    VK_FAULT_WAIT,
    VK_FAULT_TIMEOUT,
    VK_FAULT_DEVICE,
    VK_FAULT_KINDS
};

/* Reads VKLLM_FAULT and VKLLM_TIMEOUT, once per process; a bad value is an
 * error (every time this is called). */
int vk_fault_init(struct vkllm_error *err);
/* Replaces the settings with FAULT and TIMEOUT (the variables' syntax; NULL:
 * none, and the default) and restarts the counts: for tests. */
int vk_fault_configure(const char *fault, const char *timeout, struct vkllm_error *err);

/* Counts a call of KIND; true when it is the one to fail. */
bool vk_fault_hit(enum vk_fault_kind kind);
/* The result an injected fault of KIND returns. */
VkResult vk_fault_result(enum vk_fault_kind kind);
/* "KIND:N" when the last hit on this thread has not been reported yet (and
 * marks it reported), else NULL. */
const char *vk_fault_injected(void);

/* CALL, unless it is the call of KIND that VKLLM_FAULT makes fail. */
#define VK_FAULTY(kind, call) (vk_fault_hit(kind) ? vk_fault_result(kind) : (call))

/* VK_CHECK for calls on device DEV: a device loss marks DEV lost, and an
 * injected failure says so. */
#define VK_DEV_CHECK(dev, err, kind, call)                                                         \
    vk_dev_check((dev), (err), VK_FAULTY(kind, call), #call, __FILE__, __LINE__)
int vk_dev_check(struct vk_device *d, struct vkllm_error *err, VkResult r, const char *call,
                 const char *file, int line);

/* VKLLM_OK, or the error that made D unusable (a device loss, a wait that
 * timed out): callers check this before giving D more work. */
int vk_dev_usable(const struct vk_device *d, struct vkllm_error *err);

/* Waits for FENCE, signalled when WHAT ("the forward pass") is done, for at
 * most VKLLM_TIMEOUT. A timeout or a loss marks D lost; the work may then still
 * be running: see vk_fence_settle. */
int vk_fence_wait(struct vk_device *d, VkFence fence, const char *what, struct vkllm_error *err);
/* The same for work that runs N_NEW kernels for the first time (none: as
 * vk_fence_wait): a driver may compile them as it starts them (lavapipe
 * does), which is no hang, so the wait is VK_FIRST_RUN_SECONDS longer (issue
 * 10, B-1: a short VKLLM_TIMEOUT lost the device to a compile under load). */
#define VK_FIRST_RUN_SECONDS 300.0
int vk_fence_wait_first(struct vk_device *d, VkFence fence, const char *what, uint32_t n_new,
                        struct vkllm_error *err);
/* For a destroy after a failed wait: true when the work behind FENCE is over
 * (done, or the device lost, so it never will be) and what it uses may be
 * destroyed; false, and D marked hung, when it may still be running. */
bool vk_fence_settle(struct vk_device *d, VkFence fence);

#endif
