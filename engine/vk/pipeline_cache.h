/* pipeline_cache.h: the on-disk pipeline cache, so that a second start does not
 * compile again what the first compiled. Internal to the engine.
 *
 * One file per device model and build of the shaders,
 * $XDG_CACHE_HOME/vkllm/pipelines-VENDOR-DEVICE-SHADERHASH.bin (else
 * ~/.cache/vkllm/), holds our header and then what
 * vkGetPipelineCacheData gave at the end of the last run:
 *
 *   magic "VKLLMPC\0", version 1, header size
 *   vendor ID, device ID, driver version, 0, pipelineCacheUUID    the key:
 *   hash of every embedded SPIR-V module                         all must match
 *   data size, SipHash of the data                               truncation, corruption
 *   Vulkan's data (VkPipelineCacheHeaderVersionOne first)
 *
 * Fields are in the host's byte order: the file only serves this machine. A
 * file that fails any check is ignored with a note and replaced at the next
 * write; it is opened without blocking (a FIFO never waits for a writer) and
 * read only if it is a regular file of at most PIPELINE_CACHE_MAX bytes.
 * Writing one removes the same device's files of other builds not used for
 * PIPELINE_CACHE_STALE_DAYS. VKLLM_PIPELINE_CACHE=0 turns the on-disk cache
 * off. */
#ifndef VKLLM_PIPELINE_CACHE_H
#define VKLLM_PIPELINE_CACHE_H

#include "vk_device.h"

#include <stddef.h>
#include <stdint.h>

#define PIPELINE_CACHE_MAX ((size_t)256 << 20)
#define PIPELINE_CACHE_STALE_DAYS 30

/* What the cache was made for: a file with another key is foreign. */
struct pipeline_cache_key {
    uint32_t vendor_id, device_id, driver_version;
    uint8_t uuid[VK_UUID_SIZE]; /* VkPhysicalDeviceProperties::pipelineCacheUUID */
    uint64_t shader_hash;       /* pipeline_cache_shader_hash() */
};

/* The file's header, as written. */
struct pipeline_cache_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size; /* sizeof this struct */
    uint32_t vendor_id, device_id, driver_version;
    uint32_t reserved; /* 0 */
    uint8_t uuid[VK_UUID_SIZE];
    uint64_t shader_hash;
    uint64_t data_size; /* bytes after the header */
    uint64_t checksum;  /* pipeline_cache_checksum of them */
};
_Static_assert(sizeof(struct pipeline_cache_header) == 72, "no padding in the file header");

struct pipeline_cache {
    char *path; /* the file; NULL: no on-disk cache (turned off, or no home) */
    struct pipeline_cache_key key;
    void *data;        /* Vulkan's part of the file, when valid, until the cache is made */
    size_t size;       /* its bytes */
    uint64_t checksum; /* of what was read (0 and size 0: nothing), to skip writing it back */
};

/* A hash of every embedded SPIR-V module and its name: another build of the
 * shaders makes another hash. Stable across processes. */
uint64_t pipeline_cache_shader_hash(void);
/* The hash of N bytes at P that the header's checksum holds. */
uint64_t pipeline_cache_checksum(const void *p, size_t n);

/* Checks LEN bytes of a cache file at BUF against KEY: on success sets *DATA
 * and *SIZE to Vulkan's part (inside BUF) and returns true; else writes why
 * into WHY (CAP bytes, "truncated: ..."). Pure and bounds-checked. */
bool pipeline_cache_parse(const uint8_t *buf, size_t len, const struct pipeline_cache_key *key,
                          const uint8_t **data, size_t *size, char *why, size_t cap);

/* Finds DEV's cache file and reads it into PC (zeroed first). A file that
 * exists but cannot be used leaves PC->data NULL and puts one line in NOTE
 * (CAP bytes, "PATH: why; ..."), else NOTE is "". Fails only for a bad
 * VKLLM_PIPELINE_CACHE value. */
int pipeline_cache_load(struct pipeline_cache *pc, const struct vk_device *dev, char *note,
                        size_t cap, struct vkllm_error *err);

/* Writes SIZE bytes of Vulkan's DATA to PC's file with our header,
 * atomically, creating its directories (0700); nothing when they are what was
 * loaded. Errors name the file. */
int pipeline_cache_save(struct pipeline_cache *pc, const void *data, size_t size,
                        struct vkllm_error *err);

/* Reads PATH (this device's cache or tuning file) whole into *BUF (malloc'd,
 * a NUL after its *LEN bytes). Returns 0, with *BUF NULL when there is no
 * file; -1 with WHY filled when it cannot be read or is not a regular file
 * of at most MAX bytes. Opened without blocking: a FIFO never waits. */
int pipeline_cache_read_file(const char *path, size_t max, uint8_t **buf, size_t *len, char *why,
                             size_t cap);
/* Creates PATH's directory and the one above it (the cache home), 0700 as
 * the XDG specification asks; the home itself must exist. */
int pipeline_cache_make_dirs(const char *path, struct vkllm_error *err);
/* Removes the files beside PATH that differ from its name only in the part
 * after the last '-' (this device's files of other builds) and have not been
 * modified for PIPELINE_CACHE_STALE_DAYS (a load marks its file used), so
 * that updates do not pile them up. Best effort: a file left behind costs
 * disk, never correctness. */
void pipeline_cache_prune_stale(const char *path);

void pipeline_cache_free(struct pipeline_cache *pc);

#endif
