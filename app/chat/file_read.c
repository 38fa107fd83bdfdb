/* file_read.c: a whole file, read without blocking or unbounded growth, and
 * one that could not be read set aside (see file_read.h). */
#include "file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int too_big(struct vkllm_error *err, unsigned long long size, size_t max)
{
    if (max >= (1u << 20))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%llu bytes, more than the %zu MiB this file may be",
                          size, max >> 20);
    return vkllm_fail(err, VKLLM_E_FORMAT, "%llu bytes, more than the %zu this file may be", size,
                      max);
}

int file_read(const char *path, size_t max, char **out, size_t *len, struct vkllm_error *err)
{
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO waits for a writer otherwise */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return vkllm_fail(err, errno == ENOENT ? VKLLM_E_NOT_FOUND : VKLLM_E_IO, "cannot open: %s",
                          strerror(errno));
    struct stat st;
    char *buf = NULL;
    int rc = VKLLM_OK;
    if (fstat(fd, &st) != 0)
        rc = vkllm_fail(err, VKLLM_E_IO, "cannot read: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = vkllm_fail(err, VKLLM_E_IO, "is not a regular file");
    else if ((uint64_t)st.st_size > max)
        rc = too_big(err, (unsigned long long)st.st_size, max);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    size_t n = 0, cap = rc ? 0 : (size_t)st.st_size;
    while (!rc) {
        if (n == cap) {
            /* the file grew since fstat: take more, up to MAX and one byte
             * past it to see that it is too big */
            if (n > max) {
                rc = too_big(err, (unsigned long long)n, max);
                break;
            }
            size_t want = cap < 4096 ? 4096 : 2 * cap;
            if (want > max + 1) want = max + 1;
            char *w = realloc(buf, want + 1);
            if (!w) {
                rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
                break;
            }
            buf = w;
            cap = want;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) rc = vkllm_fail(err, VKLLM_E_IO, "cannot read: %s", strerror(errno));
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return VKLLM_OK;
}

/* Renames PATH to PATH.corrupt-N, never over an existing file; *TO gets the
 * new name's last part. */
int file_set_aside(const char *path, char *to, size_t cap)
{
    size_t n = strlen(path) + 24;
    char *dst = malloc(n);
    if (!dst) return ENOMEM;
    int e = EEXIST;
    for (int i = 1; i < 1000 && e == EEXIST; i++) {
        snprintf(dst, n, "%s.corrupt-%d", path, i);
        /* link then unlink: rename would replace an earlier corrupt-N */
        if (link(path, dst) == 0) {
            e = unlink(path) == 0 ? 0 : errno;
        } else {
            e = errno;
            struct stat st;
            /* file systems without hard links: rename to a name known to be free */
            if (e != EEXIST && lstat(dst, &st) != 0 && errno == ENOENT)
                e = rename(path, dst) == 0 ? 0 : errno;
        }
    }
    const char *slash = strrchr(dst, '/');
    snprintf(to, cap, "%s", slash ? slash + 1 : dst);
    free(dst);
    return e;
}
