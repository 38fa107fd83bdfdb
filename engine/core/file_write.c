/* file_write.c: vkllm_write_file, the public face of atomic_file.h for the
 * programs (the chat window's conversations and exports). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int vkllm_write_file(const char *path, const void *data, size_t len, struct vkllm_error *err)
{
    if (!path || (!data && len)) return vkllm_fail(err, VKLLM_E_INVALID, "no file name or data");
    char *tmp;
    int rc = atomic_file_create(path, &tmp, err);
    if (rc) return rc;
    int fd = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
    int e = fd < 0 ? errno : 0;
    const char *p = data;
    while (!e && len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    /* close reports what a network file system deferred */
    if (fd >= 0 && close(fd) != 0 && !e) e = errno;
    if (e) {
        atomic_file_abort(tmp);
        return vkllm_fail(err, VKLLM_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return atomic_file_commit(tmp, path, err);
}
