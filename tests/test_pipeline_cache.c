/* test_pipeline_cache.c: the on-disk pipeline cache (engine/vk/pipeline_cache.h).
 *
 * - The parser accepts what the writer makes and refuses, with a reason, each
 *   way a file can be wrong: short, not ours, another format version, device,
 *   driver or shader build, cut short or with bytes added, a flipped bit, and
 *   Vulkan's own header for another device.
 * - A context that made pipelines writes the cache at destroy (our header,
 *   no temporary file left) and the next context reads it with no note; one
 *   that made none writes nothing, and an unchanged cache is not rewritten.
 * - A bad file (random bytes, truncated, another device's UUID, another
 *   shader build, a FIFO, a directory) gives one note naming it and never
 *   blocks; a file is replaced by a valid cache at destroy, a FIFO or a
 *   directory is left alone.
 * - A cache directory that cannot be written costs no error and no note.
 * - VKLLM_PIPELINE_CACHE=0 writes nothing; another value is an error. */
#include "context.h"
#include "kernels.h"
#include "pipeline_cache.h"
#include "testhelp.h"
#include "vkllm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

static const struct pipeline_cache_key test_key = {
    .vendor_id = 0x10de,
    .device_id = 0x2684,
    .driver_version = 7,
    .uuid = "0123456789abcde",
    .shader_hash = 0x1234,
};

/* A file as pipeline_cache_save writes it, for KEY, holding Vulkan's header
 * and N_EXTRA bytes after it; its length in *LEN. */
static uint8_t *make_file(const struct pipeline_cache_key *key, size_t n_extra, size_t *len)
{
    VkPipelineCacheHeaderVersionOne vh = {
        .headerSize = sizeof vh,
        .headerVersion = VK_PIPELINE_CACHE_HEADER_VERSION_ONE,
        .vendorID = key->vendor_id,
        .deviceID = key->device_id,
    };
    memcpy(vh.pipelineCacheUUID, key->uuid, VK_UUID_SIZE);
    const size_t n = sizeof vh + n_extra;
    struct pipeline_cache_header h = {
        .magic = "VKLLMPC",
        .version = 1,
        .header_size = sizeof h,
        .vendor_id = key->vendor_id,
        .device_id = key->device_id,
        .driver_version = key->driver_version,
        .shader_hash = key->shader_hash,
        .data_size = n,
    };
    memcpy(h.uuid, key->uuid, VK_UUID_SIZE);
    *len = sizeof h + n;
    uint8_t *buf = calloc(1, *len);
    REQUIRE(buf);
    memcpy(buf + sizeof h, &vh, sizeof vh);
    for (size_t i = 0; i < n_extra; i++)
        buf[sizeof h + sizeof vh + i] = (uint8_t)(i * 7);
    h.checksum = pipeline_cache_checksum(buf + sizeof h, n);
    memcpy(buf, &h, sizeof h);
    return buf;
}

/* Whether parsing LEN bytes of BUF fails with a reason containing WANT. */
static bool refused(const uint8_t *buf, size_t len, const char *want)
{
    const uint8_t *data = NULL;
    size_t size = 0;
    char why[256] = "";
    if (pipeline_cache_parse(buf, len, &test_key, &data, &size, why, sizeof why)) return false;
    if (!strstr(why, want)) fprintf(stderr, "reason '%s' lacks '%s'\n", why, want);
    return strstr(why, want) != NULL;
}

static void test_parse(void)
{
    size_t len;
    uint8_t *buf = make_file(&test_key, 100, &len);
    const uint8_t *data = NULL;
    size_t size = 0;
    char why[256] = "";
    CHECK(pipeline_cache_parse(buf, len, &test_key, &data, &size, why, sizeof why), "%s", why);
    CHECK(data == buf + sizeof(struct pipeline_cache_header) && size == len - 72);

    CHECK(refused(buf, 10, "truncated"));
    CHECK(refused(buf, len - 1, "truncated"));
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, buf, len);
    CHECK(refused(longer, len + 1, "trailing bytes"));
    free(longer);

    uint8_t *b = malloc(len);
    struct pipeline_cache_header *h = (struct pipeline_cache_header *)b;
#define MUTATED(stmt, want) (memcpy(b, buf, len), stmt, refused(b, len, want))
    CHECK(MUTATED(b[0] = 'X', "not a vkllm pipeline cache"));
    CHECK(MUTATED(h->version = 2, "format version 2"));
    CHECK(MUTATED(h->uuid[3] ^= 1, "another device"));
    CHECK(MUTATED(h->device_id++, "another device"));
    CHECK(MUTATED(h->driver_version++, "driver version"));
    CHECK(MUTATED(h->shader_hash++, "another build of vkllm's shaders"));
    CHECK(MUTATED(b[len - 1] ^= 0x40, "checksum"));
#undef MUTATED
    free(b);
    free(buf);

    /* Vulkan's header for another device, under a header and checksum of ours */
    struct pipeline_cache_key other = test_key;
    other.uuid[0] ^= 1;
    buf = make_file(&other, 8, &len);
    h = (struct pipeline_cache_header *)buf;
    memcpy(h->uuid, test_key.uuid, VK_UUID_SIZE);
    CHECK(refused(buf, len, "Vulkan's header"));
    free(buf);
    buf = make_file(&test_key, 0, &len);
    CHECK(pipeline_cache_parse(buf, len, &test_key, &data, &size, why, sizeof why), "%s", why);
    /* fewer bytes than Vulkan's header, checksum and size consistent */
    h = (struct pipeline_cache_header *)buf;
    h->data_size = 8;
    h->checksum = pipeline_cache_checksum(buf + 72, 8);
    CHECK(refused(buf, 72 + 8, "shorter than Vulkan's header"));
    free(buf);
}

/* ============================== Contexts ============================== */

static char cache_home[1024], cache_file[1200];

/* A context on which one pipeline was made when BUILD, destroyed; its notes
 * (at most 4) copied into NOTES, their count returned. */
static size_t run_context(bool build, char notes[4][512])
{
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);
    size_t n = vkllm_context_note_count(ctx);
    for (size_t i = 0; i < n && i < 4; i++)
        snprintf(notes[i], 512, "%s", vkllm_context_note(ctx, i));
    CHECK(vkllm_context_note(ctx, n) == NULL);
    if (build) {
        const uint32_t spec[1] = {ctx->wg_size};
        struct vk_pipeline *p;
        REQUIRE_OK(vk_pipeline_get(&ctx->pipes, SHADER_NORM, spec, 1, 5, sizeof(struct push_norm),
                                   &p, &err),
                   "%s", err.msg);
    }
    CHECK(vkllm_context_validation_errors(ctx) == 0);
    /* the file name the context uses, for the checks */
    if (ctx->pipes.on_disk.path)
        snprintf(cache_file, sizeof cache_file, "%s", ctx->pipes.on_disk.path);
    vkllm_context_destroy(ctx);
    return n;
}

/* Whether the cache directory holds a temporary file (.vkllm.tmp-*). */
static bool temp_left(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/vkllm", cache_home);
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        found |= strstr(e->d_name, ".vkllm.tmp") != NULL;
    if (d) closedir(d);
    return found;
}

/* Whether the cache file is a valid cache for this build (any device). */
static bool file_valid(void)
{
    FILE *f = fopen(cache_file, "rb");
    if (!f) return false;
    struct pipeline_cache_header h;
    bool ok = fread(&h, sizeof h, 1, f) == 1 && !memcmp(h.magic, "VKLLMPC", 8) && h.version == 1 &&
              h.shader_hash == pipeline_cache_shader_hash() && h.data_size >= 32;
    fseek(f, 0, SEEK_END);
    ok = ok && (uint64_t)ftell(f) == sizeof h + h.data_size;
    fclose(f);
    return ok;
}

static void write_bytes(const uint8_t *p, size_t n)
{
    FILE *f = fopen(cache_file, "wb");
    REQUIRE(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "%s", cache_file);
}

static uint8_t *read_all(size_t *n)
{
    FILE *f = fopen(cache_file, "rb");
    REQUIRE(f, "%s", cache_file);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *p = malloc(*n);
    REQUIRE(p && fread(p, 1, *n, f) == *n);
    fclose(f);
    return p;
}

/* One bad cache: a note naming the file and containing WANT, no error. */
static void check_bad(const char *what, const char *want)
{
    char notes[4][512];
    size_t n = run_context(true, notes);
    CHECK(n == 1, "%s: %zu notes", what, n);
    if (n == 1) {
        CHECK(strstr(notes[0], cache_file) && strstr(notes[0], want), "%s: note '%s'", what,
              notes[0]);
    }
    CHECK(!temp_left(), "%s: a temporary file is left", what);
}

static void test_contexts(void)
{
    snprintf(cache_home, sizeof cache_home, "%s/pipeline-cache-XXXXXX", VKLLM_TEST_GEN);
    REQUIRE(mkdtemp(cache_home), "%s", strerror(errno));
    setenv("XDG_CACHE_HOME", cache_home, 1);
    char notes[4][512];
    struct stat st, st2;

    /* no pipeline made: nothing to write */
    CHECK(run_context(false, notes) == 0);
    REQUIRE(cache_file[0]);
    CHECK(stat(cache_file, &st) != 0 && errno == ENOENT, "%s written with no pipeline", cache_file);
    /* the first start writes, the second reads with no note */
    CHECK(run_context(true, notes) == 0);
    CHECK(file_valid(), "%s missing or invalid after a first run", cache_file);
    CHECK(!temp_left());
    REQUIRE(stat(cache_file, &st) == 0);
    CHECK(run_context(true, notes) == 0, "second start: %s", notes[0]);
    /* the same pipelines again: the file is not rewritten (same inode) */
    REQUIRE(stat(cache_file, &st2) == 0);
    CHECK(st.st_ino == st2.st_ino, "an unchanged cache was rewritten");

    size_t len;
    uint8_t *good = read_all(&len);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 2654435761u >> 13);
    write_bytes(junk, sizeof junk);
    check_bad("random bytes", "not a vkllm pipeline cache");
    CHECK(file_valid(), "random bytes not replaced");
    CHECK(run_context(true, notes) == 0, "after replacing random bytes: %s", notes[0]);

    write_bytes(good, len - 5);
    check_bad("truncated", "truncated");
    CHECK(file_valid(), "a truncated file not replaced");

    uint8_t *b = malloc(len);
    struct pipeline_cache_header *h = (struct pipeline_cache_header *)b;
    memcpy(b, good, len);
    h->uuid[0] ^= 0x55;
    write_bytes(b, len);
    check_bad("another UUID", "another device");
    CHECK(file_valid(), "another device's file not replaced");

    memcpy(b, good, len);
    h->shader_hash ^= 1;
    write_bytes(b, len);
    check_bad("another shader hash", "another build");
    CHECK(file_valid(), "another shader build's file not replaced");
    free(b);

    /* special files: never waited on, and left where they are */
    REQUIRE(unlink(cache_file) == 0);
    REQUIRE(mkfifo(cache_file, 0600) == 0, "%s", strerror(errno));
    check_bad("a FIFO", "not a regular file");
    CHECK(stat(cache_file, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    REQUIRE(unlink(cache_file) == 0);
    REQUIRE(mkdir(cache_file, 0700) == 0);
    check_bad("a directory", "not a regular file");
    CHECK(stat(cache_file, &st) == 0 && S_ISDIR(st.st_mode), "the directory was replaced");
    REQUIRE(rmdir(cache_file) == 0);

    /* VKLLM_PIPELINE_CACHE=0: nothing read, nothing written */
    write_bytes(junk, 10);
    setenv("VKLLM_PIPELINE_CACHE", "0", 1);
    CHECK(run_context(true, notes) == 0, "a note with the cache off: %s", notes[0]);
    CHECK(stat(cache_file, &st) == 0 && st.st_size == 10, "written with the cache off");
    setenv("VKLLM_PIPELINE_CACHE", "yes", 1);
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    CHECK(vkllm_context_create(NULL, &ctx, &err) == VKLLM_E_INVALID && !ctx);
    CHECK(strstr(err.msg, "VKLLM_PIPELINE_CACHE"), "%s", err.msg);
    unsetenv("VKLLM_PIPELINE_CACHE");

    /* a cache home that cannot be written: no error, no note. Root writes
     * through permissions, so a file system nobody may write stands in. */
    char ro[1100];
    snprintf(ro, sizeof ro, "%s/read-only", cache_home);
    REQUIRE(mkdir(ro, 0500) == 0);
    setenv("XDG_CACHE_HOME", geteuid() == 0 ? "/proc/self" : ro, 1);
    CHECK(run_context(true, notes) == 0, "a read-only cache home gave a note: %s", notes[0]);
    CHECK(stat(cache_file, &st) != 0, "%s written in a read-only home", cache_file);
    setenv("XDG_CACHE_HOME", cache_home, 1);
    free(good);
}

int main(void)
{
    test_parse();
    test_contexts();
    return TEST_REPORT();
}
