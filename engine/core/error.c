/* error.c: status codes and the one-line error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    case VKLLM_E_NUMERIC: return "non-finite logits";
    case VKLLM_E_TOO_LONG: return "a run of text without a break is too long for the pre-tokenizer";
    }
    return "unknown error";
}

/* Sets ERR's message to RAW (LEN bytes), made printable. A message longer than
 * the buffer keeps its start and its end around "...": the end holds the
 * reason ("File name too long"), the start what it is about. */
static void set_msg(struct vkllm_error *err, char *raw, size_t len)
{
    /* messages are one line: vkllm_printable escapes a newline from a file
     * name or driver text as \x0a, which (unlike a space) names the file */
    const size_t cap = sizeof err->msg;
    size_t head = vkllm_printable(err->msg, cap, raw, len);
    if (head == len) return;
    head = vkllm_printable(err->msg, cap / 2, raw, len);
    size_t used = strlen(err->msg);
    memcpy(err->msg + used, "...", 4);
    used += 3;
    /* the shortest tail that fits, by bisection: what the tail needs grows as
     * it starts earlier */
    size_t lo = head, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        char probe[sizeof err->msg];
        if (vkllm_printable(probe, cap - used, raw + mid, len - mid) == len - mid)
            hi = mid;
        else
            lo = mid + 1;
    }
    while (lo < len && ((unsigned char)raw[lo] & 0xc0) == 0x80)
        lo++; /* a whole character */
    vkllm_printable(err->msg + used, cap - used, raw + lo, len - lo);
}

/* Formats FMT into ERR whatever its length: a long path must not push the
 * reason out of the message before set_msg shortens it. */
static void set_vmsg(struct vkllm_error *err, const char *fmt, va_list ap)
{
    char small[1024];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        snprintf(err->msg, sizeof err->msg, "unprintable message");
    } else if ((size_t)n < sizeof small) {
        set_msg(err, small, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big) vsnprintf(big, (size_t)n + 1, fmt, again);
        /* without memory, the start of the message is better than none */
        set_msg(err, big ? big : small, big ? (size_t)n : sizeof small - 1);
        free(big);
    }
    va_end(again);
}

int vkllm_fail(struct vkllm_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        set_vmsg(err, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static void set_fmsg(struct vkllm_error *err, const char *fmt, ...) VKLLM_PRINTF(2, 3);
static void set_fmsg(struct vkllm_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_vmsg(err, fmt, ap);
    va_end(ap);
}

void vkllm_error_prefix(struct vkllm_error *err, const char *prefix)
{
    if (!err || !prefix) return;
    char tmp[sizeof err->msg];
    memcpy(tmp, err->msg, sizeof tmp);
    set_fmsg(err, "%s: %s", prefix, tmp);
}
