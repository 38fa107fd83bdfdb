/* pipeline_cache.c: the on-disk pipeline cache (the file format is in
 * pipeline_cache.h). */
#include "pipeline_cache.h"

#include "hash.h"
#include "number.h"
#include "shaders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char magic[8] = "VKLLMPC";
enum { FORMAT_VERSION = 1 };

/* ============================== Key and checks ============================== */

/* A fixed SipHash key: these hashes are stored, so they must not change with
 * the process's random one. */
static void hash_begin_fixed(struct hash_state *s)
{
    static const uint8_t key[16] = "vkllm pipelines";
    hash_begin_keyed(s, key);
}

uint64_t pipeline_cache_shader_hash(void)
{
    struct hash_state s;
    hash_begin_fixed(&s);
    for (int i = 0; i < SHADER_COUNT; i++) {
        const struct shader_code *c = &shader_registry[i];
        hash_add(&s, c->name, strlen(c->name) + 1);
        hash_add(&s, c->bytes, sizeof *c->bytes);
        hash_add(&s, c->words, *c->bytes);
    }
    return hash_end(&s);
}

uint64_t pipeline_cache_checksum(const void *p, size_t n)
{
    struct hash_state s;
    hash_begin_fixed(&s);
    hash_add(&s, p, n);
    return hash_end(&s);
}

bool pipeline_cache_parse(const uint8_t *buf, size_t len, const struct pipeline_cache_key *key,
                          const uint8_t **data, size_t *size, char *why, size_t cap)
{
    struct pipeline_cache_header h;
    if (len < sizeof h) {
        snprintf(why, cap, "truncated: %zu bytes, shorter than its header", len);
        return false;
    }
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, magic, sizeof magic)) {
        snprintf(why, cap, "not a vkllm pipeline cache");
        return false;
    }
    if (h.version != FORMAT_VERSION || h.header_size != sizeof h) {
        snprintf(why, cap, "format version %" PRIu32 ", not %d", h.version, FORMAT_VERSION);
        return false;
    }
    if (h.vendor_id != key->vendor_id || h.device_id != key->device_id ||
        memcmp(h.uuid, key->uuid, sizeof h.uuid)) {
        snprintf(why, cap, "made for another device or driver build");
        return false;
    }
    if (h.driver_version != key->driver_version) {
        snprintf(why, cap, "made for driver version %#" PRIx32 ", not %#" PRIx32, h.driver_version,
                 key->driver_version);
        return false;
    }
    if (h.shader_hash != key->shader_hash) {
        snprintf(why, cap, "made for another build of vkllm's shaders");
        return false;
    }
    const size_t have = len - sizeof h;
    if (h.data_size != have) {
        snprintf(why, cap, "%s: %zu bytes of pipelines where the header says %" PRIu64,
                 have < h.data_size ? "truncated" : "trailing bytes", have, h.data_size);
        return false;
    }
    const uint8_t *d = buf + sizeof h;
    if (pipeline_cache_checksum(d, have) != h.checksum) {
        snprintf(why, cap, "corrupt: its checksum does not match");
        return false;
    }
    /* Vulkan's own header: the driver checks it too, but a driver that trusts
     * it should not be handed another device's data */
    VkPipelineCacheHeaderVersionOne vh;
    if (have < sizeof vh) {
        snprintf(why, cap, "%zu bytes of pipelines, shorter than Vulkan's header", have);
        return false;
    }
    memcpy(&vh, d, sizeof vh);
    if (vh.headerSize < sizeof vh || vh.headerSize > have ||
        vh.headerVersion != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vh.vendorID != key->vendor_id ||
        vh.deviceID != key->device_id || memcmp(vh.pipelineCacheUUID, key->uuid, VK_UUID_SIZE)) {
        snprintf(why, cap, "Vulkan's header in it does not match this device");
        return false;
    }
    *data = d;
    *size = have;
    return true;
}

/* ============================== The file ============================== */

/* "$XDG_CACHE_HOME/vkllm/pipelines-VENDOR-DEVICE-SHADERS.bin" (else under
 * "$HOME/.cache"), malloc'd; NULL when neither is an absolute path, as the
 * XDG base directory specification asks. The shaders' hash is in the name so
 * that two builds used in turn (a release and a developer's) each keep their
 * own cache instead of replacing each other's at every start. */
static char *cache_path(const struct pipeline_cache_key *key)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *base = xdg && xdg[0] == '/' ? xdg : home && home[0] == '/' ? home : NULL;
    if (!base) return NULL;
    const char *sub = base == xdg ? "" : "/.cache";
    const char *fmt = "%s%s/vkllm/pipelines-%04" PRIx32 "-%04" PRIx32 "-%016" PRIx64 ".bin";
    int n = snprintf(NULL, 0, fmt, base, sub, key->vendor_id, key->device_id, key->shader_hash);
    char *path = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (path)
        snprintf(path, (size_t)n + 1, fmt, base, sub, key->vendor_id, key->device_id,
                 key->shader_hash);
    return path;
}

int pipeline_cache_read_file(const char *path, size_t max, uint8_t **buf, size_t *len, char *why,
                             size_t cap)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO would wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        snprintf(why, cap, "cannot read: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(why, cap, "not a regular file");
    } else if ((uint64_t)st.st_size > max) {
        snprintf(why, cap, "%" PRIu64 " bytes, over the %zu MiB limit", (uint64_t)st.st_size,
                 max >> 20);
    } else if (!(*buf = malloc((size_t)st.st_size + 1))) {
        snprintf(why, cap, "out of host memory");
    } else {
        rc = 0;
        /* a file cut short meanwhile reads short: the checks see it truncated */
        while (*len < (size_t)st.st_size) {
            ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                snprintf(why, cap, "cannot read: %s", strerror(errno));
                rc = -1;
            }
            if (n <= 0) break;
            *len += (size_t)n;
        }
    }
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
    } else {
        (*buf)[*len] = 0;
    }
    return rc;
}

int pipeline_cache_load(struct pipeline_cache *pc, const struct vk_device *dev, char *note,
                        size_t cap, struct vkllm_error *err)
{
    memset(pc, 0, sizeof *pc);
    note[0] = '\0';
    const char *env = getenv("VKLLM_PIPELINE_CACHE");
    bool on;
    int rc = number_switch("VKLLM_PIPELINE_CACHE", env, &on, err);
    if (rc) return rc;
    if (env && *env && !on) return VKLLM_OK; /* unset or empty: on */

    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(dev->phys, &props);
    pc->key.vendor_id = props.vendorID;
    pc->key.device_id = props.deviceID;
    pc->key.driver_version = props.driverVersion;
    memcpy(pc->key.uuid, props.pipelineCacheUUID, VK_UUID_SIZE);
    pc->key.shader_hash = pipeline_cache_shader_hash();
    /* no home: nowhere to keep a cache, which is no reason to stop */
    if (!(pc->path = cache_path(&pc->key))) return VKLLM_OK;

    uint8_t *buf;
    size_t len;
    char why[256];
    const uint8_t *data;
    if (pipeline_cache_read_file(pc->path,
                                 PIPELINE_CACHE_MAX + sizeof(struct pipeline_cache_header), &buf,
                                 &len, why, sizeof why) == 0) {
        if (!buf) return VKLLM_OK; /* the first start */
        if (pipeline_cache_parse(buf, len, &pc->key, &data, &pc->size, why, sizeof why)) {
            /* Vulkan's part moves to the start of the buffer, which PC keeps */
            memmove(buf, data, pc->size);
            pc->data = buf;
            pc->checksum = pipeline_cache_checksum(pc->data, pc->size);
            /* in use: pruning goes by modification time (pipeline_cache_prune_stale) */
            utimensat(AT_FDCWD, pc->path, NULL, 0);
            return VKLLM_OK;
        }
        free(buf);
    }
    /* the message machinery makes the path printable */
    struct vkllm_error e;
    vkllm_fail(&e, VKLLM_E_IO, "%s: %s; pipeline cache ignored", pc->path, why);
    snprintf(note, cap, "%s", e.msg);
    pc->size = 0;
    return VKLLM_OK;
}

int pipeline_cache_make_dirs(const char *path, struct vkllm_error *err)
{
    char *dir = strdup(path);
    if (!dir) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    *strrchr(dir, '/') = '\0';    /* .../vkllm */
    char *up = strrchr(dir, '/'); /* the cache home */
    int rc = VKLLM_OK;
    if (up && up != dir) {
        *up = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot create: %s", dir, strerror(errno));
        *up = '/';
    }
    if (!rc && mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot create: %s", dir, strerror(errno));
    free(dir);
    return rc;
}

void pipeline_cache_prune_stale(const char *path)
{
    const char *name = strrchr(path, '/') + 1;
    const char *hash = strrchr(name, '-'); /* "pipelines-VVVV-DDDD" before it */
    const size_t prefix = (size_t)(hash - name) + 1;
    const char *ext = strrchr(name, '.');
    char *dir_path = strndup(path, (size_t)(name - path));
    DIR *dir = dir_path ? opendir(dir_path) : NULL;
    const time_t before = time(NULL) - (time_t)PIPELINE_CACHE_STALE_DAYS * 24 * 3600;
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        const size_t len = strlen(e->d_name);
        if (len != strlen(name) || strncmp(e->d_name, name, prefix) ||
            strcmp(e->d_name + len - strlen(ext), ext) || !strcmp(e->d_name, name))
            continue;
        struct stat st;
        if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < before)
            unlinkat(dirfd(dir), e->d_name, 0);
    }
    if (dir) closedir(dir);
    free(dir_path);
}

int pipeline_cache_save(struct pipeline_cache *pc, const void *data, size_t size,
                        struct vkllm_error *err)
{
    if (!pc->path) return VKLLM_OK;
    const uint64_t sum = pipeline_cache_checksum(data, size);
    if (size == pc->size && sum == pc->checksum) return VKLLM_OK;
    if (size > PIPELINE_CACHE_MAX)
        return vkllm_fail(err, VKLLM_E_IO, "%s: %zu bytes of pipelines, over the %zu MiB limit",
                          pc->path, size, PIPELINE_CACHE_MAX >> 20);
    struct pipeline_cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, magic, sizeof magic);
    h.version = FORMAT_VERSION;
    h.header_size = sizeof h;
    h.vendor_id = pc->key.vendor_id;
    h.device_id = pc->key.device_id;
    h.driver_version = pc->key.driver_version;
    memcpy(h.uuid, pc->key.uuid, sizeof h.uuid);
    h.shader_hash = pc->key.shader_hash;
    h.data_size = size;
    h.checksum = sum;
    uint8_t *file = malloc(sizeof h + size);
    if (!file) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    memcpy(file, &h, sizeof h);
    memcpy(file + sizeof h, data, size);
    int rc = pipeline_cache_make_dirs(pc->path, err);
    if (!rc) rc = vkllm_write_file(pc->path, file, sizeof h + size, err);
    free(file);
    if (!rc) {
        pc->size = size;
        pc->checksum = sum;
        pipeline_cache_prune_stale(pc->path);
    }
    return rc;
}

void pipeline_cache_free(struct pipeline_cache *pc)
{
    if (!pc) return;
    free(pc->path);
    free(pc->data);
    memset(pc, 0, sizeof *pc);
}
