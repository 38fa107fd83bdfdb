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
    return model_files_list_at_most(dir, MODEL_FILES_MAX, out, err);
}

int model_files_list_at_most(const char *dir, size_t max, struct model_dir *out,
                             struct vkllm_error *err)
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
        out->n_seen++;
        /* past the cap only counted (no stat): the panel says how many it left out */
        if (out->n_seen > max) {
            out->truncated = true;
            continue;
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
    if (out->n) qsort(out->entries, out->n, sizeof *out->entries, entry_cmp); /* NULL when empty */
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

/* A listing reads at most MODEL_FILES_HEAD_MAX bytes of a header: first a
 * walk over the key/values and tensor infos that only finds where they end
 * (one chunk held at a time, the cancel flag checked at every chunk), then,
 * when they end within the cap, the engine's own parse of that much. A file
 * whose metadata is hundreds of MB (a vocabulary of 100M strings: probe 4,
 * R-13) costs the cap, not seconds and gigabytes. Whatever the walk finds
 * malformed goes to the engine's parse too, for its message: that parse
 * stops where the walk did, within the cap. */
#define SCAN_CHUNK ((size_t)64 << 10)
#define SCAN_DEPTH 16 /* as deep as the engine nests arrays */

enum scan_result { SCAN_FITS, SCAN_TOO_BIG, SCAN_STOPPED, SCAN_MALFORMED };

struct scan {
    int fd;
    uint64_t pos, end; /* the next byte wanted; the file's size */
    const atomic_bool *cancel;
    uint8_t *chunk; /* SCAN_CHUNK bytes of the file from chunk_at */
    size_t chunk_len;
    uint64_t chunk_at;
    uint8_t num[12]; /* the bytes scan_take read last */
};

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

/* Reads N (at most 12) bytes at the position into s->num. */
static enum scan_result scan_take(struct scan *s, size_t n)
{
    for (size_t i = 0; i < n; i++, s->pos++) {
        if (s->pos >= MODEL_FILES_HEAD_MAX) return SCAN_TOO_BIG;
        if (s->pos >= s->end) return SCAN_MALFORMED;
        if (s->pos - s->chunk_at >= s->chunk_len) {
            if (s->cancel && atomic_load(s->cancel)) return SCAN_STOPPED;
            ssize_t got = pread(s->fd, s->chunk, SCAN_CHUNK, (off_t)s->pos);
            if (got <= 0) return SCAN_MALFORMED;
            s->chunk_at = s->pos;
            s->chunk_len = (size_t)got;
        }
        s->num[i] = s->chunk[s->pos - s->chunk_at];
    }
    return SCAN_FITS;
}

/* Moves past N bytes without reading them. */
static enum scan_result scan_skip(struct scan *s, uint64_t n)
{
    if (n > s->end - s->pos) return SCAN_MALFORMED;
    if (n > MODEL_FILES_HEAD_MAX - s->pos) return SCAN_TOO_BIG;
    s->pos += n;
    return SCAN_FITS;
}

/* Past N values of GGUF type T inside arrays DEPTH deep (0: a key's value). */
static enum scan_result scan_values(struct scan *s, uint32_t t, uint64_t n, int depth)
{
    /* bytes of GGUF's fixed-size value types, by id; 0: string, array, unknown */
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t < sizeof sizes && sizes[t]) {
        if (n > (s->end - s->pos) / sizes[t]) return SCAN_MALFORMED;
        return scan_skip(s, n * sizes[t]);
    }
    if (t != VKLLM_GGUF_STRING && (t != VKLLM_GGUF_ARRAY || depth >= SCAN_DEPTH))
        return SCAN_MALFORMED;
    /* each string or array takes 8 bytes or more, within the cap: the loop
     * ends by the cap at the latest */
    for (uint64_t i = 0; i < n; i++) {
        enum scan_result r;
        if (t == VKLLM_GGUF_STRING)
            r = scan_take(s, 8);
        else
            r = scan_take(s, 12);
        if (r) return r;
        if (t == VKLLM_GGUF_STRING)
            r = scan_skip(s, le(s->num, 8));
        else
            r = scan_values(s, (uint32_t)le(s->num, 4), le(s->num + 4, 8), depth + 1);
        if (r) return r;
    }
    return SCAN_FITS;
}

/* Where PATH's key/values and tensor infos end, into *END, when that is
 * within the cap. */
static enum scan_result scan_header(const char *path, const atomic_bool *cancel, uint64_t *end)
{
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) return SCAN_MALFORMED;
    /* O_NONBLOCK: the path may have become a FIFO since stat looked */
    struct scan s = {.fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC),
                     .end = (uint64_t)st.st_size,
                     .cancel = cancel,
                     .chunk = malloc(SCAN_CHUNK)};
    enum scan_result r = SCAN_MALFORMED;
    if (s.fd < 0 || !s.chunk) goto done;
    /* magic and version: the engine's parse judges them */
    if ((r = scan_take(&s, 8)) || (r = scan_take(&s, 8))) goto done;
    uint64_t n_tensors = le(s.num, 8);
    if ((r = scan_take(&s, 8))) goto done;
    uint64_t n_kv = le(s.num, 8);
    for (uint64_t i = 0; i < n_kv; i++) {
        if ((r = scan_take(&s, 8)) || (r = scan_skip(&s, le(s.num, 8))) || (r = scan_take(&s, 4)))
            goto done;
        uint32_t t = (uint32_t)le(s.num, 4);
        if (t == VKLLM_GGUF_ARRAY) {
            if ((r = scan_take(&s, 12))) goto done;
            r = scan_values(&s, (uint32_t)le(s.num, 4), le(s.num + 4, 8), 1);
        } else {
            r = scan_values(&s, t, 1, 0);
        }
        if (r) goto done;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((r = scan_take(&s, 8)) || (r = scan_skip(&s, le(s.num, 8))) || (r = scan_take(&s, 4)))
            goto done;
        uint64_t n_dims = le(s.num, 4);
        if (n_dims > 8) {
            r = SCAN_MALFORMED;
            goto done;
        }
        if ((r = scan_skip(&s, n_dims * 8 + 12))) goto done;
    }
    *end = s.pos;
done:
    if (s.fd >= 0) close(s.fd);
    free(s.chunk);
    return r;
}

int model_files_header(const char *path, struct model_header *out, const atomic_bool *cancel,
                       struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    uint64_t end = 0;
    enum scan_result scan = scan_header(path, cancel, &end);
    if (scan == SCAN_STOPPED) return vkllm_fail(err, VKLLM_E_IO, "%s: stopped", path);
    out->too_large = scan == SCAN_TOO_BIG;
    if (scan == SCAN_TOO_BIG)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: header too large to list (over %d MiB)",
                          path, (int)(MODEL_FILES_HEAD_MAX >> 20));
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
    struct vkllm_gguf_str type = {0};
    out->adapter = !vkllm_gguf_get_str(g, "general.type", &type, NULL) && type.len == 7 &&
                   !memcmp(type.ptr, "adapter", 7);
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
