/* model_files.c: a folder's sub-folders and .gguf files for the Models
 * panel, in natural order, and the little a model's GGUF header tells
 * without its weights. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "model_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- order */

int model_files_cmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *q) {
        if (isdigit(*p) && isdigit(*q)) {
            /* a run of digits by value: the longer run without leading zeros is larger */
            while (*p == '0' && isdigit(p[1]))
                p++;
            while (*q == '0' && isdigit(q[1]))
                q++;
            size_t n = 0, m = 0;
            while (isdigit(p[n]))
                n++;
            while (isdigit(q[m]))
                m++;
            if (n != m) return n < m ? -1 : 1;
            int c = memcmp(p, q, n);
            if (c) return c;
            p += n;
            q += m;
            continue;
        }
        int x = tolower(*p), y = tolower(*q);
        if (x != y) return x < y ? -1 : 1;
        p++;
        q++;
    }
    if (*p || *q) return *p ? 1 : -1;
    return strcmp(a, b); /* equal but for case or zeros: still one order */
}

static int entry_cmp(const void *x, const void *y)
{
    const struct model_entry *a = x, *b = y;
    if (a->dir != b->dir) return a->dir ? -1 : 1;
    return model_files_cmp(a->name, b->name);
}

/* ---- listing */

static bool is_gguf(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcasecmp(name + n - 5, ".gguf");
}

void model_files_free(struct model_dir *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->entries[i].name);
        free(d->entries[i].label);
    }
    free(d->entries);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* Appends NAME; false when out of memory. */
static bool add(struct model_dir *d, size_t *cap, const char *name, bool dir, uint64_t size)
{
    if (d->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct model_entry *e = realloc(d->entries, c * sizeof *e);
        if (!e) return false;
        d->entries = e;
        *cap = c;
    }
    size_t len = strlen(name), room = 4 * len + 1;
    struct model_entry *e = &d->entries[d->n];
    *e =
        (struct model_entry){.name = strdup(name), .label = malloc(room), .dir = dir, .size = size};
    if (!e->name || !e->label) {
        free(e->name);
        free(e->label);
        return false;
    }
    vkllm_printable(e->label, room, name, len);
    d->n++;
    return true;
}

int model_files_list(const char *dir, struct model_dir *out, struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    char shown[PATH_MAX * 4 + 1];
    vkllm_printable(shown, sizeof shown, dir, strlen(dir));
    if (!*dir) return vkllm_fail(err, VKLLM_E_IO, "no folder given");
    out->path = realpath(dir, NULL);
    if (!out->path) return vkllm_fail(err, VKLLM_E_IO, "%s: %s", shown, strerror(errno));
    /* O_NONBLOCK: the path may have become a FIFO since realpath looked */
    int fd = open(out->path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0) close(fd);
        model_files_free(out);
        return vkllm_fail(err, VKLLM_E_IO, "%s: %s", shown, strerror(e));
    }
    size_t cap = 0;
    int rc = VKLLM_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", shown, strerror(errno));
            break;
        }
        if (de->d_name[0] == '.') continue; /* hidden, and . and .. */
        if (out->n == MODEL_FILES_MAX) {
            out->truncated = true;
            break;
        }
        /* stat, not lstat: a link to a model or a folder counts as one; a
         * link that loops or leads nowhere fails here and is skipped */
        struct stat st;
        if (fstatat(fd, de->d_name, &st, 0)) {
            out->n_skipped++;
            continue;
        }
        bool folder = S_ISDIR(st.st_mode);
        if (!folder && !(S_ISREG(st.st_mode) && is_gguf(de->d_name))) continue;
        if (!add(out, &cap, de->d_name, folder, folder ? 0 : (uint64_t)st.st_size)) {
            rc = vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", shown);
            break;
        }
    }
    closedir(d);
    if (rc) {
        model_files_free(out);
        return rc;
    }
    qsort(out->entries, out->n, sizeof *out->entries, entry_cmp);
    return VKLLM_OK;
}

/* ---- paths and sizes */

char *model_files_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    bool slash = n && dir[n - 1] == '/';
    size_t len = n + !slash + strlen(name) + 1;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

char *model_files_parent(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n && dir[n - 1] != '/')
        n--;
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (!n) return strdup(dir[0] == '/' ? "/" : ".");
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, dir, n);
        p[n] = 0;
    }
    return p;
}

void model_files_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (!u)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* ---- the header */

int model_files_header(const char *path, struct model_header *out, struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    vkllm_gguf *g;
    int rc = vkllm_gguf_open(path, &g, err);
    if (rc) return rc;
    struct vkllm_gguf_str arch = {0};
    rc = vkllm_gguf_get_str(g, "general.architecture", &arch, err);
    if (!rc && !arch.len)
        rc = vkllm_fail(err, VKLLM_E_FORMAT, "%s: no general.architecture: not a model", path);
    if (rc) {
        vkllm_gguf_close(g);
        return rc;
    }
    vkllm_printable(out->arch, sizeof out->arch, arch.ptr, arch.len);
    /* a Q4_K_M file is mostly Q4_K: name it by the type with most bytes */
    uint64_t by_type[VKLLM_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        out->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (t->type < VKLLM_TYPE_COUNT) by_type[t->type] += t->size;
    }
    uint32_t top = 0;
    for (uint32_t k = 1; k < VKLLM_TYPE_COUNT; k++)
        if (by_type[k] > by_type[top]) top = k;
    const struct vkllm_type_info *ti = vkllm_type_info(top);
    snprintf(out->quant, sizeof out->quant, "%s", ti && by_type[top] ? ti->name : "?");
    vkllm_gguf_close(g);
    return VKLLM_OK;
}
