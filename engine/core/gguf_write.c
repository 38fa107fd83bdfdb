/* gguf_write.c: writing GGUF v3 files.
 *
 * The writer collects key/values (each kept as its serialized value bytes, so a
 * value copied from another file needs no decoding) and tensor descriptions
 * (the data is only referenced, or made by a callback as the file is written,
 * one tensor at a time), then writes the file in one pass:
 *
 *   "GGUF", version 3, n_tensors, n_kv     all little-endian
 *   key/values                             in the order keys were first set
 *   tensor infos                           offsets relative to the data section
 *   zero padding to the alignment
 *   tensor data, each padded with zeros to the alignment (as llama.cpp writes it)
 *
 * Tensors are laid out in the order they were added, each at the next aligned
 * offset, which is the packing llama.cpp's reader insists on.
 */
#include "error.h"
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME          64 /* ggml's GGML_MAX_NAME, NUL included */

/* One key/value: TYPE and the bytes that follow it in the file. */
struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val;
    size_t len;
};

struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    const void *data; /* or NULL, and FILL makes the data when it is written */
    uint64_t size;
    int (*fill)(void *user, void *buf, struct vkllm_error *err);
    void *user;
};

/* Open addressing over the key or tensor name that starts each item (struct
 * wkv and struct wtensor both begin with it), at most half full, so that a
 * file of 200,000 tensors is not 200,000 squared comparisons. */
struct windex {
    size_t *slots; /* item index + 1; 0 is an empty slot */
    size_t mask;   /* slot count - 1 (a power of two), 0 before the first item */
};

struct vkllm_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct windex kv_index;
    struct wtensor *t;
    size_t n_t, cap_t;
    struct windex t_index;
    uint32_t alignment;
    bool (*go_on)(void *user); /* asked every STOP_CHECK_BYTES of work; may be NULL */
    void *go_on_user;
    uint64_t work; /* bytes copied, walked or written since GO_ON was last asked */
    bool stopped;  /* GO_ON said no: every later step fails */
};

/* A key of 100 million strings takes seconds to copy and write: a caller that
 * wants to stop (a signal) waits at most this much work. */
#define STOP_CHECK_BYTES (4u << 20)

/* Counts WORK bytes done; false once the caller said to stop. */
static bool goes_on(vkllm_gguf_writer *w, uint64_t work)
{
    if (w->stopped) return false;
    w->work += work;
    if (w->work < STOP_CHECK_BYTES || !w->go_on) return true;
    w->work = 0;
    w->stopped = !w->go_on(w->go_on_user);
    return !w->stopped;
}

/* ============================== Byte buffers ============================== */

/* A growing buffer of little-endian bytes; a failed allocation sticks in OOM. */
struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) goto oom;
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) goto oom;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return;
oom:
    b->oom = true;
}

/* Makes room for N more bytes at once (a header of hundreds of megabytes would
 * otherwise be copied again at every doubling). */
static void reserve(struct buf *b, uint64_t n)
{
    if (b->oom || n <= b->cap - b->len) return;
    uint8_t *p = n > SIZE_MAX - b->len ? NULL : realloc(b->p, b->len + (size_t)n);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = b->len + (size_t)n;
}

/* put, a few megabytes at a time, asking W whether to go on between them;
 * false if stopped. */
static bool put_big(vkllm_gguf_writer *w, struct buf *b, const uint8_t *src, uint64_t n)
{
    reserve(b, n);
    while (n && !b->oom) {
        const size_t k = n < STOP_CHECK_BYTES ? (size_t)n : STOP_CHECK_BYTES;
        put(b, src, k);
        src += k;
        n -= k;
        if (!goes_on(w, k)) return false;
    }
    return true;
}

static void put_le(struct buf *b, uint64_t v, int bytes)
{
    uint8_t le[8];
    for (int i = 0; i < bytes; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, (size_t)bytes);
}

static void put_str(struct buf *b, const char *s, uint64_t len)
{
    put_le(b, len, 8);
    put(b, s, len);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t type_size(uint32_t t)
{
    static const uint8_t sizes[VKLLM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < VKLLM_GGUF_TYPE_COUNT ? sizes[t] : 0;
}

/* Sets *BYTES to the bytes taken by N serialized elements of type T at P, from
 * a checked file; false if the caller said to stop on the way. */
static bool elems_bytes(vkllm_gguf_writer *w, uint32_t t, uint64_t n, const uint8_t *p,
                        uint64_t *bytes)
{
    *bytes = n * type_size(t);
    if (*bytes) return true;
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (t == VKLLM_GGUF_STRING) {
            off += 8 + le64(p + off);
        } else {
            uint32_t et = le32(p + off); /* a nested array: uint32 type, uint64 count */
            uint64_t en = le64(p + off + 4), sub;
            if (!elems_bytes(w, et, en, p + off + 12, &sub)) return false;
            off += 12 + sub;
        }
        /* each element counts as its 8- or 12-byte head: walking an array of
         * empty strings costs about what copying it does */
        if (!goes_on(w, 8)) return false;
    }
    *bytes = off;
    return true;
}

/* ============================== Name index ============================== */

static const char *item_name(const void *items, size_t stride, size_t i)
{
    return *(char *const *)((const char *)items + i * stride);
}

/* The slot holding NAME, or the empty slot where it would go. */
static size_t *windex_slot(const struct windex *ix, const void *items, size_t stride,
                           const char *name)
{
    for (size_t h = hash_bytes(name, strlen(name)) & ix->mask;; h = (h + 1) & ix->mask) {
        size_t *s = &ix->slots[h];
        if (!*s || !strcmp(item_name(items, stride, *s - 1), name)) return s;
    }
}

/* The index of the item named NAME, or -1. */
static ptrdiff_t windex_find(const struct windex *ix, const void *items, size_t stride,
                             const char *name)
{
    if (!ix->slots) return -1;
    const size_t *s = windex_slot(ix, items, stride, name);
    return *s ? (ptrdiff_t)(*s - 1) : -1;
}

/* Makes room for item N (the N before it indexed already), growing the table
 * when it would be more than half full. */
static int windex_reserve(struct windex *ix, const void *items, size_t stride, size_t n)
{
    if (ix->slots && n < (ix->mask + 1) / 2) return VKLLM_OK;
    size_t cap = ix->slots ? 2 * (ix->mask + 1) : 64;
    if (cap > SIZE_MAX / sizeof *ix->slots) return VKLLM_E_NOMEM;
    struct windex grown = {calloc(cap, sizeof *grown.slots), cap - 1};
    if (!grown.slots) return VKLLM_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        *windex_slot(&grown, items, stride, item_name(items, stride, i)) = i + 1;
    free(ix->slots);
    *ix = grown;
    return VKLLM_OK;
}

/* ============================== Key/values ============================== */

int vkllm_gguf_writer_create(vkllm_gguf_writer **out, struct vkllm_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory for a GGUF writer");
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return VKLLM_OK;
}

void vkllm_gguf_writer_destroy(vkllm_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->kv_index.slots);
    free(w->t_index.slots);
    free(w);
}

/* Sets KEY to the value in B (taken over, freed on failure), replacing any
 * earlier value but keeping its place. */
static int set_value(vkllm_gguf_writer *w, const char *key, uint32_t type, struct buf *b)
{
    if (b->oom) goto fail_nomem;
    if (!key || !*key) {
        free(b->p);
        return VKLLM_E_INVALID;
    }
    const ptrdiff_t old = windex_find(&w->kv_index, w->kv, sizeof *w->kv, key);
    if (old >= 0) {
        free(w->kv[old].val);
        w->kv[old] = (struct wkv){w->kv[old].key, type, b->p, b->len};
        return VKLLM_OK;
    }
    if (windex_reserve(&w->kv_index, w->kv, sizeof *w->kv, w->n_kv)) goto fail_nomem;
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) goto fail_nomem;
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) goto fail_nomem;
    w->kv[w->n_kv] = (struct wkv){k, type, b->p, b->len};
    *windex_slot(&w->kv_index, w->kv, sizeof *w->kv, k) = ++w->n_kv;
    return VKLLM_OK;
fail_nomem:
    free(b->p);
    return VKLLM_E_NOMEM;
}

static int set_scalar(vkllm_gguf_writer *w, const char *key, uint32_t type, uint64_t bits)
{
    struct buf b = {0};
    put_le(&b, bits, (int)type_size(type));
    return set_value(w, key, type, &b);
}

static bool is_alignment_key(const char *key)
{
    return key && !strcmp(key, "general.alignment");
}

int vkllm_gguf_writer_set_alignment(vkllm_gguf_writer *w, uint32_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1))) return VKLLM_E_INVALID;
    w->alignment = alignment;
    const bool present = windex_find(&w->kv_index, w->kv, sizeof *w->kv, "general.alignment") >= 0;
    if (!present && alignment == GGUF_DEFAULT_ALIGNMENT) return VKLLM_OK;
    return set_scalar(w, "general.alignment", VKLLM_GGUF_UINT32, alignment);
}

/* general.alignment decides the data layout: it can only be set as a uint32
 * that is a power of two, and setting it changes the writer's alignment. */
int vkllm_gguf_writer_set_uint32(vkllm_gguf_writer *w, const char *key, uint32_t v)
{
    if (is_alignment_key(key)) return vkllm_gguf_writer_set_alignment(w, v);
    return set_scalar(w, key, VKLLM_GGUF_UINT32, v);
}

int vkllm_gguf_writer_set_int32(vkllm_gguf_writer *w, const char *key, int32_t v)
{
    if (is_alignment_key(key)) return VKLLM_E_INVALID;
    return set_scalar(w, key, VKLLM_GGUF_INT32, (uint32_t)v);
}

int vkllm_gguf_writer_set_uint64(vkllm_gguf_writer *w, const char *key, uint64_t v)
{
    if (is_alignment_key(key)) return VKLLM_E_INVALID;
    return set_scalar(w, key, VKLLM_GGUF_UINT64, v);
}

int vkllm_gguf_writer_set_float32(vkllm_gguf_writer *w, const char *key, float v)
{
    if (is_alignment_key(key)) return VKLLM_E_INVALID;
    uint32_t u;
    memcpy(&u, &v, 4);
    return set_scalar(w, key, VKLLM_GGUF_FLOAT32, u);
}

int vkllm_gguf_writer_set_bool(vkllm_gguf_writer *w, const char *key, bool v)
{
    if (is_alignment_key(key)) return VKLLM_E_INVALID;
    return set_scalar(w, key, VKLLM_GGUF_BOOL, v ? 1 : 0);
}

int vkllm_gguf_writer_set_str(vkllm_gguf_writer *w, const char *key, const char *v)
{
    if (is_alignment_key(key) || !v) return VKLLM_E_INVALID;
    struct buf b = {0};
    put_str(&b, v, strlen(v));
    return set_value(w, key, VKLLM_GGUF_STRING, &b);
}

int vkllm_gguf_writer_set_arr(vkllm_gguf_writer *w, const char *key, enum vkllm_gguf_type elem_type,
                              const void *data, uint64_t n)
{
    uint64_t es = type_size(elem_type);
    if (is_alignment_key(key) || !es || (n && !data)) return VKLLM_E_INVALID;
    if (n > (SIZE_MAX - 12) / es) return VKLLM_E_NOMEM;
    struct buf b = {0};
    put_le(&b, elem_type, 4);
    put_le(&b, n, 8);
    const uint8_t *src = data;
    for (uint64_t i = 0; i < n && !b.oom; i++, src += es) {
        /* host order in, little-endian out */
        uint64_t v = 0;
        if (es == 1) v = src[0];
        if (es == 2) {
            uint16_t x;
            memcpy(&x, src, 2);
            v = x;
        }
        if (es == 4) {
            uint32_t x;
            memcpy(&x, src, 4);
            v = x;
        }
        if (es == 8) memcpy(&v, src, 8);
        put_le(&b, v, (int)es);
    }
    return set_value(w, key, VKLLM_GGUF_ARRAY, &b);
}

int vkllm_gguf_writer_set_arr_str(vkllm_gguf_writer *w, const char *key, const char *const *strs,
                                  const uint64_t *lens, uint64_t n)
{
    if (is_alignment_key(key) || (n && !strs)) return VKLLM_E_INVALID;
    struct buf b = {0};
    put_le(&b, VKLLM_GGUF_STRING, 4);
    put_le(&b, n, 8);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (!strs[i]) {
            free(b.p);
            return VKLLM_E_INVALID;
        }
        put_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
    }
    return set_value(w, key, VKLLM_GGUF_ARRAY, &b);
}

void vkllm_gguf_writer_set_stop(vkllm_gguf_writer *w, bool (*go_on)(void *user), void *user)
{
    w->go_on = go_on;
    w->go_on_user = user;
}

int vkllm_gguf_writer_copy_kv(vkllm_gguf_writer *w, const struct vkllm_gguf_kv *kv)
{
    if (w->stopped) return VKLLM_E_IO;
    if (!kv || !kv->key.len || memchr(kv->key.ptr, 0, kv->key.len)) return VKLLM_E_INVALID;
    char *key = malloc(kv->key.len + 1);
    if (!key) return VKLLM_E_NOMEM;
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = 0;

    int rc;
    struct buf b = {0};
    if (is_alignment_key(key)) {
        rc = kv->type == VKLLM_GGUF_UINT32
                 ? vkllm_gguf_writer_set_alignment(w, (uint32_t)vkllm_gguf_kv_int(kv))
                 : VKLLM_E_INVALID;
    } else if (kv->type == VKLLM_GGUF_ARRAY) {
        uint64_t bytes;
        put_le(&b, kv->arr_type, 4);
        put_le(&b, kv->arr_len, 8);
        if (elems_bytes(w, kv->arr_type, kv->arr_len, kv->data, &bytes) &&
            put_big(w, &b, kv->data, bytes)) {
            rc = set_value(w, key, kv->type, &b);
        } else {
            free(b.p);
            rc = b.oom ? VKLLM_E_NOMEM : VKLLM_E_IO;
        }
    } else if (kv->type == VKLLM_GGUF_STRING) {
        put(&b, kv->data, 8 + le64(kv->data));
        rc = set_value(w, key, kv->type, &b);
    } else if (type_size(kv->type)) {
        put(&b, kv->data, type_size(kv->type));
        rc = set_value(w, key, kv->type, &b);
    } else {
        rc = VKLLM_E_INVALID;
    }
    free(key);
    return rc;
}

const char *vkllm_gguf_writer_copy_kv_why(const struct vkllm_gguf_kv *kv, int rc)
{
    if (rc != VKLLM_E_INVALID || !kv) return vkllm_strerror(rc);
    if (!kv->key.len) return "the key is empty";
    if (memchr(kv->key.ptr, 0, kv->key.len)) return "it holds a NUL byte";
    if (kv->key.len == 17 && !memcmp(kv->key.ptr, "general.alignment", 17))
        return "the alignment is not a power of two of type uint32";
    return "its value's type is unknown";
}

/* ============================== Tensors ============================== */

static int add_tensor(vkllm_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t ne[4], const void *data, uint64_t size,
                      int (*fill)(void *, void *, struct vkllm_error *), void *user)
{
    const struct vkllm_type_info *ti = vkllm_type_info(type);
    if (!name || !*name || strlen(name) >= GGUF_MAX_NAME || !ti || n_dims < 1 || n_dims > 4)
        return VKLLM_E_INVALID;
    if (windex_find(&w->t_index, w->t, sizeof *w->t, name) >= 0) return VKLLM_E_INVALID;

    struct wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data};
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        t.ne[d] = ne[d];
        if (ne[d] > INT64_MAX || (ne[d] && nel > INT64_MAX / ne[d])) return VKLLM_E_INVALID;
        nel *= ne[d];
    }
    if (t.ne[0] % ti->block_size || nel / ti->block_size > UINT64_MAX / ti->block_bytes)
        return VKLLM_E_INVALID;
    if (size != nel / ti->block_size * ti->block_bytes || (size && !data && !fill))
        return VKLLM_E_INVALID;
    t.size = size;
    t.fill = fill;
    t.user = user;

    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return VKLLM_E_NOMEM;
        w->t = p;
        w->cap_t = cap;
    }
    if (windex_reserve(&w->t_index, w->t, sizeof *w->t, w->n_t)) return VKLLM_E_NOMEM;
    if (!(t.name = strdup(name))) return VKLLM_E_NOMEM;
    w->t[w->n_t] = t;
    *windex_slot(&w->t_index, w->t, sizeof *w->t, t.name) = ++w->n_t;
    return VKLLM_OK;
}

int vkllm_gguf_writer_add_tensor(vkllm_gguf_writer *w, const char *name, uint32_t type,
                                 uint32_t n_dims, const uint64_t ne[4], const void *data,
                                 uint64_t size)
{
    return add_tensor(w, name, type, n_dims, ne, data, size, NULL, NULL);
}

int vkllm_gguf_writer_add_tensor_fill(vkllm_gguf_writer *w, const char *name, uint32_t type,
                                      uint32_t n_dims, const uint64_t ne[4], uint64_t size,
                                      int (*fill)(void *user, void *buf, struct vkllm_error *err),
                                      void *user)
{
    if (!fill) return VKLLM_E_INVALID;
    return add_tensor(w, name, type, n_dims, ne, NULL, size, fill, user);
}

/* ============================== Writing ============================== */

struct out {
    FILE *f;
    vkllm_gguf_writer *w;
    uint64_t pos;
    int error; /* errno of the first failed write, 0 if none */
};

/* Writes N bytes, a few megabytes at a time, and stops (the writer's STOPPED
 * set) when its caller says so between them. */
static void out_write(struct out *o, const void *p, uint64_t n)
{
    const uint8_t *src = p;
    while (n && !o->error && !o->w->stopped) {
        const size_t k = n < STOP_CHECK_BYTES ? (size_t)n : STOP_CHECK_BYTES;
        if (fwrite(src, 1, k, o->f) != k) o->error = errno ? errno : EIO;
        o->pos += k;
        src += k;
        n -= k;
        goes_on(o->w, k);
    }
}

static void out_pad(struct out *o, uint64_t alignment)
{
    static const uint8_t zeros[4096];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        out_write(o, zeros, n);
        pad -= n;
    }
}

static uint64_t padded(uint64_t n, uint64_t a)
{
    return n + (a - n % a) % a;
}

int vkllm_gguf_writer_write(vkllm_gguf_writer *w, const char *path, struct vkllm_error *err)
{
    if (w->stopped) return vkllm_fail(err, VKLLM_E_IO, "%s: stopped", path);
    /* everything before the data section, built in memory */
    struct buf h = {0};
    put(&h, "GGUF", 4);
    put_le(&h, 3, 4);
    put_le(&h, w->n_t, 8);
    put_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv && !w->stopped; i++) {
        put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        put_le(&h, w->kv[i].type, 4);
        put_big(w, &h, w->kv[i].val, w->kv[i].len);
    }
    uint64_t offset = 0; /* within the data section */
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_le(&h, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_le(&h, t->ne[d], 8);
        put_le(&h, t->type, 4);
        put_le(&h, offset, 8);
        offset += padded(t->size, w->alignment);
    }
    if (h.oom || w->stopped) {
        free(h.p);
        if (w->stopped) return vkllm_fail(err, VKLLM_E_IO, "%s: stopped", path);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory for the GGUF header", path);
    }

    /* one buffer, as large as the largest tensor made while writing */
    uint64_t fill_size = 0;
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].fill && w->t[i].size > fill_size) fill_size = w->t[i].size;
    uint8_t *fill_buf = NULL;
    if (fill_size && ((size_t)fill_size != fill_size || !(fill_buf = malloc((size_t)fill_size)))) {
        free(h.p);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory for a tensor of %llu bytes", path,
                          (unsigned long long)fill_size);
    }

    struct out o = {.f = fopen(path, "wb"), .w = w};
    if (!o.f) {
        free(h.p);
        free(fill_buf);
        return vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
    }
    out_write(&o, h.p, h.len);
    free(h.p);
    out_pad(&o, w->alignment);
    int fill_rc = VKLLM_OK;
    for (size_t i = 0; i < w->n_t && !o.error && !fill_rc && !w->stopped; i++) {
        const struct wtensor *t = &w->t[i];
        if (t->fill && (fill_rc = t->fill(t->user, fill_buf, err)) != VKLLM_OK) break;
        out_write(&o, t->fill ? fill_buf : t->data, t->size);
        out_pad(&o, w->alignment);
    }
    free(fill_buf);
    if (!o.error && fflush(o.f) != 0) o.error = errno ? errno : EIO;

    /* a half-written model would fail later with a confusing message: remove it,
     * but only if it is a regular file (never a device such as /dev/full) */
    struct stat st;
    bool regular = fstat(fileno(o.f), &st) == 0 && S_ISREG(st.st_mode);
    if (fclose(o.f) != 0 && !o.error) o.error = errno ? errno : EIO;
    if (o.error || fill_rc || w->stopped) {
        if (regular) unlink(path);
        if (fill_rc) return fill_rc; /* the fill function said why */
        if (!o.error) return vkllm_fail(err, VKLLM_E_IO, "%s: stopped", path);
        return vkllm_fail(err, VKLLM_E_IO, "%s: write failed: %s", path, strerror(o.error));
    }
    return VKLLM_OK;
}
