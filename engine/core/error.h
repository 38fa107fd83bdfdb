/* error.h: filling struct vkllm_error. Internal to the engine. */
#ifndef VKLLM_ERROR_H
#define VKLLM_ERROR_H

#include "vkllm.h"

#if defined(__GNUC__)
#define VKLLM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define VKLLM_PRINTF(f, a)
#endif

/* Prefixes ERR's message with "PREFIX: " (used to add a file name). */
void vkllm_error_prefix(struct vkllm_error *err, const char *prefix);

#endif
