/* atomic_file.c: temporary file, fsync, rename. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int atomic_file_create(const char *path, char **tmp, struct vkllm_error *err)
{
    *tmp = NULL;
    if (!*path) return vkllm_fail(err, VKLLM_E_INVALID, "empty file name");
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return vkllm_fail(err, VKLLM_E_IO, "%s: %s; vkllm writes only regular files", path,
                          S_ISDIR(st.st_mode) ? "is a directory"
                                              : "is a device, FIFO or socket, not a regular file");
    const size_t n = strlen(path) + sizeof ".tmp-000000";
    char *name = malloc(n);
    if (!name) return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", path);
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)name;
    for (int attempt = 0; attempt < 100; attempt++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        snprintf(name, n, "%s.tmp-%06x", path, (unsigned)(x >> 40));
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            close(fd);
            *tmp = name;
            return VKLLM_OK;
        }
        if (errno != EEXIST) {
            int e = errno;
            free(name);
            return vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(e));
        }
    }
    free(name);
    return vkllm_fail(err, VKLLM_E_IO, "%s: cannot find a free temporary name", path);
}

int atomic_file_commit(char *tmp, const char *path, struct vkllm_error *err)
{
    int rc = VKLLM_OK;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    /* the data on disk before the name points at it: otherwise a crash soon
     * after the rename can leave an empty file where the old one was */
    if (fd < 0 || fsync(fd) != 0 || rename(tmp, path) != 0)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot write: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

void atomic_file_abort(char *tmp)
{
    if (tmp) unlink(tmp);
    free(tmp);
}
