/* vk_fault.c: device losses, waits with a timeout, and injected faults
 * (VKLLM_FAULT, VKLLM_TIMEOUT). */
#include "vk_fault.h"

#include "number.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAULTS      16
#define DEFAULT_TIMEOUT 60.0 /* seconds: lavapipe on two cores takes seconds for a long prompt */
#define MAX_TIMEOUT_NS  1000000000000000ull /* a million seconds: past it, a wait is a hang */

/* ============================== Settings ============================== */

static const struct {
    const char *name;
    VkResult result; /* what the driver would return */
} kinds[VK_FAULT_KINDS] = {
    [VK_FAULT_NONE] = {"none", VK_SUCCESS},
    [VK_FAULT_ALLOC] = {"alloc", VK_ERROR_OUT_OF_DEVICE_MEMORY},
    [VK_FAULT_MAP] = {"map", VK_ERROR_MEMORY_MAP_FAILED},
    [VK_FAULT_PIPELINE] = {"pipeline", VK_ERROR_OUT_OF_HOST_MEMORY},
    [VK_FAULT_OBJECT] = {"object", VK_ERROR_OUT_OF_HOST_MEMORY},
    [VK_FAULT_SUBMIT] = {"submit", VK_ERROR_DEVICE_LOST},
    [VK_FAULT_WAIT] = {"wait", VK_ERROR_DEVICE_LOST},
    [VK_FAULT_TIMEOUT] = {"timeout", VK_TIMEOUT},
    [VK_FAULT_DEVICE] = {"device", VK_ERROR_INITIALIZATION_FAILED},
};

struct fault {
    enum vk_fault_kind kind;
    uint64_t n; /* the Nth call of kind fails */
};

static struct {
    struct fault faults[MAX_FAULTS];
    uint32_t n_faults;
    uint64_t timeout_ns;
    struct vkllm_error bad; /* a bad VKLLM_FAULT or VKLLM_TIMEOUT, reported by each init */
} cfg = {.timeout_ns = (uint64_t)(DEFAULT_TIMEOUT * 1e9)};

static atomic_uint_fast64_t counts[VK_FAULT_KINDS];
/* the fault this thread's last hit injected, until an error reports it */
static _Thread_local char injected[32];

static int parse_faults(const char *s, struct fault *out, uint32_t *n, struct vkllm_error *err)
{
    *n = 0;
    for (const char *p = s; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        enum vk_fault_kind kind = VK_FAULT_NONE;
        for (int k = VK_FAULT_NONE + 1; colon && k < VK_FAULT_KINDS; k++)
            if ((size_t)(colon - p) == strlen(kinds[k].name) &&
                !strncmp(p, kinds[k].name, (size_t)(colon - p)))
                kind = (enum vk_fault_kind)k;
        uint64_t v = 0;
        const char *why;
        if (kind != VK_FAULT_NONE && *n < MAX_FAULTS &&
            number_parse(colon + 1, len - (size_t)(colon + 1 - p), NUMBER_COUNT, &v, &why))
            return vkllm_fail(err, VKLLM_E_INVALID, "VKLLM_FAULT: '%.*s': N %s", (int)len, p, why);
        if (kind == VK_FAULT_NONE || !v || *n == MAX_FAULTS)
            return vkllm_fail(err, VKLLM_E_INVALID,
                              "VKLLM_FAULT: '%.*s' is not KIND:N with N from 1 (at most %d of "
                              "them; kinds: alloc, map, pipeline, object, submit, wait, timeout, "
                              "device)",
                              (int)len, p, MAX_FAULTS);
        out[(*n)++] = (struct fault){kind, v};
        p = end ? end + 1 : NULL;
    }
    return VKLLM_OK;
}

static int parse_timeout(const char *s, uint64_t *out, struct vkllm_error *err)
{
    *out = (uint64_t)(DEFAULT_TIMEOUT * 1e9);
    if (!s || !*s) return VKLLM_OK;
    uint64_t ns;
    int rc = number_setting("VKLLM_TIMEOUT", s, NUMBER_SECONDS, &ns, err);
    if (rc) return rc;
    if (!ns || ns > MAX_TIMEOUT_NS)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "VKLLM_TIMEOUT: '%s' is out of range (above 0, at most 1000000 seconds)",
                          s);
    *out = ns;
    return VKLLM_OK;
}

int vk_fault_configure(const char *fault, const char *timeout, struct vkllm_error *err)
{
    struct fault faults[MAX_FAULTS];
    uint32_t n;
    uint64_t ns;
    int rc = parse_faults(fault, faults, &n, err);
    if (!rc) rc = parse_timeout(timeout, &ns, err);
    if (rc) return rc;
    memcpy(cfg.faults, faults, sizeof faults);
    cfg.n_faults = n;
    cfg.timeout_ns = ns;
    for (int k = 0; k < VK_FAULT_KINDS; k++)
        atomic_store(&counts[k], 0);
    injected[0] = 0;
    return VKLLM_OK;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_from_env(void)
{
    vk_fault_configure(getenv("VKLLM_FAULT"), getenv("VKLLM_TIMEOUT"), &cfg.bad);
}

int vk_fault_init(struct vkllm_error *err)
{
    pthread_once(&once, init_from_env);
    return cfg.bad.code ? vkllm_fail(err, cfg.bad.code, "%s", cfg.bad.msg) : VKLLM_OK;
}

/* ============================== Injection ============================== */

bool vk_fault_hit(enum vk_fault_kind kind)
{
    if (kind == VK_FAULT_NONE || !cfg.n_faults) return false;
    uint64_t n = atomic_fetch_add(&counts[kind], 1) + 1;
    for (uint32_t i = 0; i < cfg.n_faults; i++)
        if (cfg.faults[i].kind == kind && cfg.faults[i].n == n) {
            snprintf(injected, sizeof injected, "%s:%llu", kinds[kind].name, (unsigned long long)n);
            return true;
        }
    return false;
}

VkResult vk_fault_result(enum vk_fault_kind kind)
{
    return kinds[kind].result;
}

const char *vk_fault_injected(void)
{
    static _Thread_local char reported[sizeof injected];
    if (!injected[0]) return NULL;
    memcpy(reported, injected, sizeof reported);
    injected[0] = 0;
    return reported;
}

/* ============================== Checks ============================== */

/* ", injected by VKLLM_FAULT=KIND:N" for a fault this thread injected, else "". */
static const char *injected_note(char *buf, size_t size)
{
    const char *inj = vk_fault_injected();
    snprintf(buf, size, "%s%s", inj ? ", injected by VKLLM_FAULT=" : "", inj ? inj : "");
    return buf;
}

/* Fills ERR with MSG, which makes D unusable, and keeps it for every later
 * call (the first loss is the one to report). */
static int lose(struct vk_device *d, struct vkllm_error *err, const char *msg)
{
    if (!d->lost) {
        d->lost = true;
        snprintf(d->lost_msg, sizeof d->lost_msg, "%s", msg);
    }
    return vkllm_fail(err, VKLLM_E_VULKAN, "%s", msg);
}

/* What a driver reset means for the caller. */
#define LOST_WHY                                                                                   \
    "the driver reset it (often its watchdog, stopping work that ran too long) or it crashed: "    \
    "recreate the context to continue"

int vk_dev_check(struct vk_device *d, struct vkllm_error *err, VkResult r, const char *call,
                 const char *file, int line)
{
    if (r == VK_SUCCESS) return VKLLM_OK;
    const char *base = strrchr(file, '/');
    char where[128], note[64];
    const size_t name = strcspn(call, "("); /* the function's name: its arguments say little */
    snprintf(where, sizeof where, "%.*s failed with %s (%s:%d%s)", (int)name, call,
             vk_result_name(r), base ? base + 1 : file, line, injected_note(note, sizeof note));
    char msg[sizeof d->lost_msg];
    if (r == VK_ERROR_DEVICE_LOST) {
        snprintf(msg, sizeof msg, "the GPU was lost: %s; " LOST_WHY, where);
        return lose(d, err, msg);
    }
    int code = (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
                   ? VKLLM_E_DEVICE_MEMORY
                   : VKLLM_E_VULKAN;
    return vkllm_fail(err, code, "%s", where);
}

int vk_dev_usable(const struct vk_device *d, struct vkllm_error *err)
{
    return d->lost ? vkllm_fail(err, VKLLM_E_VULKAN, "%s", d->lost_msg) : VKLLM_OK;
}

/* ============================== Waits ============================== */

int vk_fence_wait_first(struct vk_device *d, VkFence fence, const char *what, uint32_t n_new,
                        struct vkllm_error *err)
{
    /* both kinds count every wait, so that their Ns mean the same calls */
    const bool lost = vk_fault_hit(VK_FAULT_WAIT);
    const bool late = vk_fault_hit(VK_FAULT_TIMEOUT);
    uint64_t timeout = cfg.timeout_ns;
    if (n_new) {
        const uint64_t extra = (uint64_t)(VK_FIRST_RUN_SECONDS * 1e9);
        timeout = timeout > MAX_TIMEOUT_NS - extra ? MAX_TIMEOUT_NS : timeout + extra;
    }
    VkResult r = lost   ? VK_ERROR_DEVICE_LOST
                 : late ? VK_TIMEOUT
                        : vkWaitForFences(d->device, 1, &fence, VK_TRUE, timeout);
    if (r == VK_SUCCESS) return VKLLM_OK;
    char note[64], msg[sizeof d->lost_msg], first[96] = "";
    injected_note(note, sizeof note);
    if (n_new)
        snprintf(first, sizeof first,
                 " (the first run of %u kernels, which the driver may compile)", n_new);
    if (r == VK_ERROR_DEVICE_LOST) {
        snprintf(msg, sizeof msg,
                 "the GPU was lost during %s%s (vkWaitForFences returned "
                 "VK_ERROR_DEVICE_LOST%s); " LOST_WHY,
                 what, first, note);
        return lose(d, err, msg);
    }
    if (r == VK_TIMEOUT) {
        snprintf(msg, sizeof msg,
                 "the GPU did not finish %s%s within %g s (vkWaitForFences returned VK_TIMEOUT%s): "
                 "it hangs, or its driver's watchdog stopped it and the device is lost; a slow "
                 "device may need a longer VKLLM_TIMEOUT",
                 what, first, timeout / 1e9, note);
        return lose(d, err, msg);
    }
    return vkllm_fail(err, VKLLM_E_VULKAN, "waiting for %s: vkWaitForFences failed with %s%s", what,
                      vk_result_name(r), note);
}

int vk_fence_wait(struct vk_device *d, VkFence fence, const char *what, struct vkllm_error *err)
{
    return vk_fence_wait_first(d, fence, what, 0, err);
}

bool vk_fence_settle(struct vk_device *d, VkFence fence)
{
    if (d->hung) return false; /* one wait that timed out is enough */
    VkResult r = vkWaitForFences(d->device, 1, &fence, VK_TRUE, cfg.timeout_ns);
    /* after a loss, nothing runs any more and objects may be destroyed */
    if (r == VK_SUCCESS || r == VK_ERROR_DEVICE_LOST) return true;
    d->hung = true;
    return false;
}
