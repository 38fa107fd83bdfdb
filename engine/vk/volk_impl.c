/* volk_impl.c: volk, the meta-loader, compiled once. Vulkan is opened with
 * dlopen at run time, so a machine without a driver gets an error message from
 * vkllm_context_create instead of a loader failure at start-up. */
#include <volk.c>
