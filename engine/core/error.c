/* error.c: status codes and the one-line error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *vkllm_strerror(int code)
{
    switch (code) {
    case VKLLM_OK: return "success";
    case VKLLM_E_INVALID: return "invalid argument";
    case VKLLM_E_IO: return "input/output error";
    case VKLLM_E_FORMAT: return "malformed file";
    case VKLLM_E_UNSUPPORTED: return "not supported";
    case VKLLM_E_NOMEM: return "out of host memory";
    case VKLLM_E_VULKAN: return "Vulkan error";
    case VKLLM_E_NO_DEVICE: return "no Vulkan device";
    case VKLLM_E_DEVICE_MEMORY: return "out of device memory";
    case VKLLM_E_CONTEXT_FULL: return "context full";
    case VKLLM_E_NOT_FOUND: return "not found";
    }
    return "unknown error";
}

int vkllm_fail(struct vkllm_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* messages are one line: a newline from a file name or driver text would
         * break `error: ...` output */
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        err->code = code;
    }
    return code;
}

void vkllm_error_prefix(struct vkllm_error *err, const char *prefix)
{
    if (!err || !prefix) return;
    char tmp[sizeof err->msg];
    /* a message cut short is better than none */
    if (snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->msg) < 0) return;
    memcpy(err->msg, tmp, sizeof tmp);
}
