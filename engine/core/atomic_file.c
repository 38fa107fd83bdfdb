/* atomic_file.c: the target (through symbolic links), its checks, then a
 * temporary file beside it, fsync, rename. The policy is in atomic_file.h. */
#define _GNU_SOURCE /* S_ISVTX, O_PATH */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* the temporary file's name in the target's directory: short, so that a
 * target of a legal name (up to NAME_MAX) has one too; hidden, and never a
 * conversation's ID.json */
#define TMP_NAME ".vkllm.tmp-000000"
enum { TMP_NAME_LEN = sizeof TMP_NAME - 1 };

/* Linux follows at most 40 links in one lookup (MAXSYMLINKS); so do we */
enum { MAX_LINKS = 40 };

/* What atomic_file_create hands out as TMP: NAME, the temporary file's path
 * then the target's. DIR, the directory that holds both, stays open until
 * commit or abort, which work relative to it: a directory renamed (or
 * replaced by a link) meanwhile still gets the file, or loses the temporary
 * one, instead of a path that now leads elsewhere. */
struct pending {
    int dir;
    char name[];
};

static struct pending *pending_of(char *tmp)
{
    return (struct pending *)(void *)(tmp - offsetof(struct pending, name));
}

/* the last component of PATH */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Fails with errno E about PATH, or "PATH -> TARGET" when PATH is a link (the
 * user then sees which file was meant). */
static int fail_target(struct vkllm_error *err, const char *path, const char *target, int e,
                       const char *note)
{
    const bool linked = strcmp(path, target) != 0;
    return vkllm_fail(err, VKLLM_E_IO, "%s%s%s: %s%s", path, linked ? " -> " : "",
                      linked ? target : "", strerror(e), note);
}

/* The name link CUR (whose lstat is ST) points at, relative to the
 * directory that holds CUR as the kernel reads it; NULL with errno set. */
static char *follow_link(const char *cur, const struct stat *st)
{
    /* st_size is the text's length, except for /proc's links (0, or 64
     * whatever the text's length) */
    const size_t cap = st->st_size >= PATH_MAX ? (size_t)st->st_size + 1 : PATH_MAX;
    char *text = malloc(cap);
    if (!text) return NULL;
    ssize_t n = readlink(cur, text, cap);
    if (n < 0 || (size_t)n >= cap) {
        if (n >= 0) errno = ENAMETOOLONG; /* it grew since lstat */
        free(text);
        return NULL;
    }
    text[n] = 0;
    const char *slash = strrchr(cur, '/');
    if (text[0] == '/' || !slash) return text;
    const size_t dir = (size_t)(slash - cur) + 1;
    char *next = malloc(dir + (size_t)n + 1);
    if (next) {
        memcpy(next, cur, dir);
        memcpy(next + dir, text, (size_t)n + 1);
    }
    free(text);
    return next;
}

/* Sets *TARGET (malloc'd) to the file that writing PATH replaces: PATH, or
 * the end of its chain of symbolic links. Only the last component matters
 * (the rename happens in the directory that holds it); the kernel resolves
 * the directories on the way. *EXISTS tells whether it exists, ST its stat. */
static int resolve_target(const char *path, char **target, bool *exists, struct stat *st,
                          struct vkllm_error *err)
{
    char *cur = strdup(path);
    for (int links = 0; cur; links++) {
        const int e = lstat(cur, st) == 0 ? 0 : errno;
        if (e && e != ENOENT) break;
        if (e == ENOENT || !S_ISLNK(st->st_mode)) {
            *exists = e == 0;
            *target = cur;
            return VKLLM_OK;
        }
        if (links == MAX_LINKS) {
            errno = ELOOP;
            break;
        }
        /* the kernel's protected_symlinks rule, which reading the link's text
         * bypasses: in a sticky, world-writable directory (/tmp) a link is
         * followed only if it is ours or the directory owner's */
        if (st->st_uid != geteuid()) {
            const char *slash = strrchr(cur, '/');
            char *d = slash ? strndup(cur, slash == cur ? 1 : (size_t)(slash - cur)) : strdup(".");
            struct stat ds;
            const bool planted = d && stat(d, &ds) == 0 && (ds.st_mode & S_ISVTX) &&
                                 (ds.st_mode & S_IWOTH) && ds.st_uid != st->st_uid;
            free(d);
            if (planted) {
                int rc = vkllm_fail(err, VKLLM_E_IO,
                                    "%s: a symbolic link of another user in a sticky directory; "
                                    "not followed",
                                    path);
                free(cur);
                return rc;
            }
        }
        char *next = follow_link(cur, st);
        if (!next) break;
        free(cur);
        cur = next;
    }
    const int e = errno;
    int rc = cur ? fail_target(err, path, cur, e, "")
                 : vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", path);
    free(cur);
    return rc;
}

int atomic_file_refuse_input(const char *path, const char *input, struct vkllm_error *err)
{
    struct stat out, in;
    /* a name that does not exist (yet) is no input */
    if (stat(path, &out) != 0 || stat(input, &in) != 0) return VKLLM_OK;
    if (out.st_dev != in.st_dev || out.st_ino != in.st_ino) return VKLLM_OK;
    return vkllm_fail(err, VKLLM_E_INVALID,
                      "%s: is the input file %s; write the result to another file", path, input);
}

int atomic_file_create(const char *path, char **tmp, struct vkllm_error *err)
{
    *tmp = NULL;
    if (!*path) return vkllm_fail(err, VKLLM_E_INVALID, "empty file name");
    struct stat st;
    /* what PATH names in the end, asked first: /proc's links to pipes and
     * terminals (/dev/stdout) have no name to follow */
    const bool reachable = stat(path, &st) == 0;
    const dev_t dev = st.st_dev;
    const ino_t ino = st.st_ino;
    if (reachable && !S_ISREG(st.st_mode))
        return vkllm_fail(err, VKLLM_E_IO, "%s: %s; vkllm writes only regular files", path,
                          S_ISDIR(st.st_mode) ? "is a directory"
                                              : "is a device, FIFO or socket, not a regular file");
    char *target = NULL;
    bool exists = false;
    int rc = resolve_target(path, &target, &exists, &st, err);
    if (rc) return rc;
    /* a /proc fd link to a deleted file (or a memfd) reads as "NAME (deleted)":
     * following its text would create, or replace, a file of that name */
    if (reachable && (!exists || st.st_dev != dev || st.st_ino != ino)) {
        rc = vkllm_fail(err, VKLLM_E_IO,
                        "%s: the file it names has no name left in a directory (deleted?); "
                        "vkllm cannot replace it",
                        path);
        goto done;
    }
    /* a file without write permission for anyone is read-only even for root,
     * who access() lets write anything */
    if (exists && ((st.st_mode & 0222) == 0 || access(target, W_OK) != 0)) {
        const int e = (st.st_mode & 0222) == 0 ? EACCES : errno;
        rc = fail_target(err, path, target, e, e == EACCES ? " (the file is read-only)" : "");
        goto done;
    }

    /* one block: the temporary name, then the target's for commit */
    const char *slash = strrchr(target, '/');
    const size_t dir = slash ? (size_t)(slash - target) + 1 : 0, len = strlen(target);
    /* in a sticky directory (/tmp) only the file's or the directory's owner
     * may rename over it: the write would fail at the end, after the work */
    if (exists && geteuid() != 0 && st.st_uid != geteuid()) {
        char *d = dir ? strndup(target, dir) : strdup(".");
        struct stat ds;
        const bool sticky =
            d && stat(d, &ds) == 0 && (ds.st_mode & S_ISVTX) && ds.st_uid != geteuid();
        free(d);
        if (sticky) {
            rc =
                vkllm_fail(err, VKLLM_E_IO,
                           "%s: cannot replace it: its directory is sticky and the file belongs to "
                           "another user",
                           path);
            goto done;
        }
    }
    /* the directory is opened to read for fsync, else (write and search
     * permission only) as a bare handle */
    char *d = dir ? strndup(target, dir) : strdup(".");
    int dfd = d ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd < 0 && d && errno == EACCES) dfd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int e = d ? errno : ENOMEM;
    free(d);
    if (dfd < 0) {
        rc = fail_target(err, path, target, e, "");
        goto done;
    }
    const size_t n = dir + TMP_NAME_LEN + 1;
    struct pending *p = malloc(sizeof *p + n + len + 1);
    if (!p) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", path);
        close(dfd);
        goto done;
    }
    p->dir = dfd;
    char *name = p->name;
    memcpy(name + n, target, len + 1);
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)name;
    e = EEXIST;
    for (int attempt = 0; attempt < 100 && e == EEXIST; attempt++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        snprintf(name, n, "%.*s.vkllm.tmp-%06x", (int)dir, target, (unsigned)(x >> 40));
        int fd = openat(dfd, base_name(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            /* best effort: a file system without permissions refuses it */
            if (exists) (void)fchmod(fd, st.st_mode & 0777);
            /* and its owner, where we may (root replacing a user's file) */
            if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()))
                (void)fchown(fd, st.st_uid, st.st_gid);
            close(fd);
            *tmp = name;
            goto done;
        }
        e = errno;
    }
    /* the target exists and may be writable while its directory is not (or,
     * in /proc, holds no new files): the reason alone would be about the target */
    if (e == EEXIST)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot find a free temporary name", path);
    else if (exists)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(e));
    else
        rc = fail_target(err, path, target, e, "");
    close(dfd);
    free(p);
done:
    free(target);
    return rc;
}

int atomic_file_commit(char *tmp, const char *path, struct vkllm_error *err)
{
    struct pending *p = pending_of(tmp);
    const char *name = base_name(tmp), *target = base_name(tmp + strlen(tmp) + 1);
    int rc = VKLLM_OK;
    int fd = openat(p->dir, name, O_RDONLY | O_CLOEXEC);
    /* the data on disk before the name points at it: otherwise a crash soon
     * after the rename can leave an empty file where the old one was */
    if (fd < 0 || fsync(fd) != 0 || renameat(p->dir, name, p->dir, target) != 0)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot write: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    /* the directory synced, so that the rename survives a power loss too; best
     * effort: some file systems cannot sync a directory, an O_PATH handle none */
    if (rc)
        unlinkat(p->dir, name, 0);
    else
        (void)fsync(p->dir);
    close(p->dir);
    free(p);
    return rc;
}

void atomic_file_abort(char *tmp)
{
    if (!tmp) return;
    struct pending *p = pending_of(tmp);
    unlinkat(p->dir, base_name(tmp), 0);
    close(p->dir);
    free(p);
}
