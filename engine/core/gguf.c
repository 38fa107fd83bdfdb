/* gguf.c: reading GGUF files.
 *
 * A GGUF file (v2 and v3 share one layout; v1 used 32-bit counts) is, in
 * little-endian order:
 *
 *   header       "GGUF", uint32 version, uint64 n_tensors, uint64 n_kv
 *   key/values   n_kv times: string key, uint32 value type, value
 *                  a string is uint64 length + bytes (no NUL)
 *                  an array is uint32 element type, uint64 count, elements
 *                  (elements may themselves be arrays: each is then type,
 *                  count, elements again)
 *   tensor infos n_tensors times: string name, uint32 n_dims, n_dims x uint64
 *                ne, uint32 ggml type, uint64 offset within the data section
 *   data         starts at the end of the infos rounded up to the alignment
 *                (general.alignment, uint32, default 32)
 *
 * vkllm_gguf_parse is a pure function over a buffer: every count, length and
 * offset is checked against the bytes that remain before it is used, with
 * arithmetic that cannot overflow, and a count is only allocated for once the
 * remaining bytes could hold that many items. It is the libFuzzer target in
 * tests/fuzz_gguf.c.
 *
 * vkllm_gguf_open reads everything before the data section into memory and
 * keeps the file open: tensor bytes are read with pread when they are wanted
 * (vkllm_gguf_read). Nothing is mapped, because a mapped file that shrinks
 * while it is open (`cp other.gguf model.gguf` during a load) kills the
 * process with SIGBUS at the next touch of a page past its new end; a read
 * instead comes back short, which is an error like any other. The parser runs
 * over the first bytes of the file and says when it needs more: the buffer
 * grows and the parse starts again (metadata is at most tens of MB, and the
 * buffer at least doubles each time).
 *
 * A key/value's `data` points at its value as stored: a scalar's bytes, a
 * string's uint64 length (the bytes follow), an array's first element. Scalars
 * have arr_len 1 and arr_type VKLLM_GGUF_TYPE_COUNT. Each string array gets a
 * table of its elements' offsets (one pool for the file), so element i is O(1).
 * Keys and names are looked up through hash tables, compared as byte strings.
 *
 * Where the format leaves room, we follow llama.cpp's reader (ggml/src/gguf.cpp):
 * empty keys, duplicate keys and tensor names, names of 64 bytes or more, and
 * negative dimensions are errors; dimensions of 0 elements are allowed; each
 * tensor's data must start where the one before it ended, padded to the
 * alignment (so no two overlap). One difference: we accept arrays of arrays
 * (the spec has them, llama.cpp refuses them).
 */
#include "error.h"
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME          64           /* ggml's GGML_MAX_NAME, NUL included */
#define GGUF_MAX_NESTING       16           /* arrays of arrays deeper than this are refused */
#define GGUF_FIRST_READ        (1u << 20)   /* the first read of a header: most fit */
#define GGUF_MAX_HEADER        (1ull << 30) /* metadata larger than this is refused */
#define GGUF_MAX_PREAD         (1u << 30)   /* bytes asked of one pread */
#define NEED_MORE              1            /* not a status: the parse needs more of the file */
#define MIN_KV_BYTES           14           /* key length, 1-byte key, type, 1-byte value */
#define MIN_TENSOR_BYTES       32           /* name length, n_dims, one ne, type, offset */

struct name_index {
    uint64_t *slots; /* item index + 1; 0 is an empty slot */
    uint64_t mask;   /* slot count - 1 (a power of two) */
};

struct vkllm_gguf {
    const uint8_t *base; /* the buffer parsed: the whole image, or the file's header */
    uint64_t size;       /* of the image, or of the file when it was opened */
    int fd;              /* the open file, or -1 for an image in memory */
    uint8_t *header;     /* base, when it is ours to free */
    char *name;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* start of the data section in the file */
    uint64_t n_kv;
    struct vkllm_gguf_kv *kv; /* (n_kv) */
    uint64_t n_tensors;
    struct vkllm_gguf_tensor *tensors; /* (n_tensors) */
    uint64_t *str_offsets;             /* one pool for every string array's table */
    struct name_index kv_index, tensor_index;
};

/* ============================== Little-endian loads ============================== */

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static float lef32(const uint8_t *p)
{
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double lef64(const uint8_t *p)
{
    uint64_t u = le64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown ids. */
static uint64_t type_size(uint32_t t)
{
    static const uint8_t sizes[VKLLM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < VKLLM_GGUF_TYPE_COUNT ? sizes[t] : 0;
}

const char *vkllm_gguf_type_name(enum vkllm_gguf_type t)
{
    static const char *const names[VKLLM_GGUF_TYPE_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64"};
    return (unsigned)t < VKLLM_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* ============================== Name index ============================== */

/* An open-addressing hash table over the key or name that starts each item
 * (struct vkllm_gguf_kv and struct vkllm_gguf_tensor both begin with their
 * vkllm_gguf_str), so duplicate checks and lookups stay O(1) per item even for
 * hostile files with many entries: hash.h's keyed hash leaves a file's author
 * no way to choose names that share a slot. */

static int index_init(struct name_index *ix, uint64_t n)
{
    uint64_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? VKLLM_OK : VKLLM_E_NOMEM;
}

static const struct vkllm_gguf_str *item_name(const void *items, size_t stride, uint64_t i)
{
    return (const struct vkllm_gguf_str *)((const char *)items + i * stride);
}

/* Returns the slot holding NAME, or the empty slot where it would go. */
static uint64_t *index_slot(const struct name_index *ix, const void *items, size_t stride,
                            const char *name, uint64_t len)
{
    for (uint64_t h = hash_bytes(name, (size_t)len) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t *s = &ix->slots[h];
        if (!*s) return s;
        const struct vkllm_gguf_str *o = item_name(items, stride, *s - 1);
        if (o->len == len && memcmp(o->ptr, name, len) == 0) return s;
    }
}

/* Adds item I; returns the index of an earlier item with the same name, or -1. */
static int64_t index_add(struct name_index *ix, const void *items, size_t stride, uint64_t i)
{
    const struct vkllm_gguf_str *n = item_name(items, stride, i);
    uint64_t *s = index_slot(ix, items, stride, n->ptr, n->len);
    if (*s) return (int64_t)(*s - 1);
    *s = i + 1;
    return -1;
}

static const void *index_find(const struct name_index *ix, const void *items, size_t stride,
                              const char *name)
{
    if (!ix->slots || !name) return NULL;
    uint64_t *s = index_slot(ix, items, stride, name, strlen(name));
    return *s ? item_name(items, stride, *s - 1) : NULL;
}

/* ============================== Cursor ============================== */

/* Reading position in the buffer, and a description of what is being read
 * ("key 3 'general.name'") that starts every error message after the file name.
 * The buffer holds the first SIZE bytes of a file of END bytes: everything is
 * checked against END, and running past SIZE asks for more (NEED_MORE). */
struct cursor {
    const uint8_t *buf;
    uint64_t size, end, pos;
    uint64_t want; /* with NEED_MORE: the buffer must hold this many bytes */
    const char *name;
    char where[128];
    struct vkllm_error *err;
};

/* Bytes of the file after the position. */
static uint64_t remaining(const struct cursor *c)
{
    return c->end - c->pos;
}

/* Fails with "NAME: WHERE: message" and VKLLM_E_FORMAT. */
static int cfail(struct cursor *c, const char *fmt, ...) VKLLM_PRINTF(2, 3);
static int cfail(struct cursor *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vkllm_fail(c->err, VKLLM_E_FORMAT, "%s: %s: %s", c->name, c->where, msg);
}

/* Sets the description, with the item's name made printable and shortened. */
static void locate(struct cursor *c, const char *what, uint64_t i, const struct vkllm_gguf_str *s)
{
    int n = snprintf(c->where, sizeof c->where, "%s %" PRIu64, what, i);
    if (!s || n < 0) return;
    char pr[72];
    uint64_t len = s->len < 64 ? s->len : 64, j;
    for (j = 0; j < len; j++) {
        unsigned char ch = (unsigned char)s->ptr[j];
        pr[j] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    pr[j] = 0;
    snprintf(c->where + n, sizeof c->where - (size_t)n, " '%s%s'", pr, s->len > 64 ? "..." : "");
}

/* N bytes at the position must be in the file, and in the buffer to be read. */
static int need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > remaining(c))
        return cfail(c,
                     "truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64
                     " but the file ends at %" PRIu64,
                     what, n, c->pos, c->end);
    if (n > c->size - c->pos) {
        c->want = c->pos + n;
        return NEED_MORE;
    }
    return VKLLM_OK;
}

static int rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
    int rc = need(c, 4, what);
    if (rc) return rc;
    *v = le32(c->buf + c->pos);
    c->pos += 4;
    return VKLLM_OK;
}

static int rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
    int rc = need(c, 8, what);
    if (rc) return rc;
    *v = le64(c->buf + c->pos);
    c->pos += 8;
    return VKLLM_OK;
}

static int rd_str(struct cursor *c, struct vkllm_gguf_str *s, const char *what)
{
    uint64_t len;
    int rc = rd_u64(c, &len, what);
    if (rc) return rc;
    if (len > remaining(c))
        return cfail(c,
                     "%s length %" PRIu64 " at offset %" PRIu64
                     " runs past the end of the file (%" PRIu64 " bytes)",
                     what, len, c->pos - 8, c->end);
    if ((rc = need(c, len, what))) return rc;
    s->ptr = (const char *)c->buf + c->pos;
    s->len = len;
    c->pos += len;
    return VKLLM_OK;
}

/* ============================== Values ============================== */

static int check_type(struct cursor *c, uint32_t t, const char *what)
{
    if (t < VKLLM_GGUF_TYPE_COUNT) return VKLLM_OK;
    return cfail(c, "%s %" PRIu32 " is not a GGUF value type", what, t);
}

/* Skips N array elements of type T; DEPTH counts the arrays around them. Every
 * element takes at least one byte (strings 8, nested arrays 12), so N is
 * checked against the remaining bytes before the loop runs. */
static int skip_elems(struct cursor *c, uint32_t t, uint64_t n, int depth)
{
    uint64_t min = t == VKLLM_GGUF_STRING ? 8 : t == VKLLM_GGUF_ARRAY ? 12 : type_size(t);
    if (n > remaining(c) / min)
        return cfail(c,
                     "array of %" PRIu64 " %s elements at offset %" PRIu64
                     " runs past the end of the file (%" PRIu64 " bytes)",
                     n, vkllm_gguf_type_name(t), c->pos, c->end);
    if (t != VKLLM_GGUF_STRING && t != VKLLM_GGUF_ARRAY) {
        int rc = need(c, n * min, "array");
        if (!rc) c->pos += n * min;
        return rc;
    }
    if (t == VKLLM_GGUF_ARRAY && depth >= GGUF_MAX_NESTING)
        return cfail(c, "arrays nested more than %d deep", GGUF_MAX_NESTING);
    for (uint64_t i = 0; i < n; i++) {
        int rc;
        if (t == VKLLM_GGUF_STRING) {
            struct vkllm_gguf_str s;
            rc = rd_str(c, &s, "string element");
        } else {
            uint32_t et;
            uint64_t en;
            if ((rc = rd_u32(c, &et, "nested array type")) ||
                (rc = check_type(c, et, "nested array element type")) ||
                (rc = rd_u64(c, &en, "nested array length")))
                return rc;
            rc = skip_elems(c, et, en, depth + 1);
        }
        if (rc) return rc;
    }
    return VKLLM_OK;
}

/* Reads one key/value into KV; the key is already in KV->key. */
static int read_value(struct cursor *c, struct vkllm_gguf_kv *kv)
{
    uint32_t t;
    int rc;
    if ((rc = rd_u32(c, &t, "value type")) || (rc = check_type(c, t, "value type"))) return rc;
    kv->type = (enum vkllm_gguf_type)t;
    kv->arr_type = VKLLM_GGUF_TYPE_COUNT; /* not an array */
    kv->arr_len = 1;
    if (t == VKLLM_GGUF_ARRAY) {
        uint32_t et;
        if ((rc = rd_u32(c, &et, "array element type")) ||
            (rc = check_type(c, et, "array element type")) ||
            (rc = rd_u64(c, &kv->arr_len, "array length")))
            return rc;
        kv->arr_type = (enum vkllm_gguf_type)et;
        kv->data = c->buf + c->pos;
        return skip_elems(c, et, kv->arr_len, 1);
    }
    kv->data = c->buf + c->pos;
    if (t == VKLLM_GGUF_STRING) {
        struct vkllm_gguf_str s;
        return rd_str(c, &s, "string value");
    }
    if ((rc = need(c, type_size(t), "value"))) return rc;
    c->pos += type_size(t);
    return VKLLM_OK;
}

/* ============================== Header and key/values ============================== */

static int read_header(struct cursor *c, vkllm_gguf *g)
{
    int rc;
    snprintf(c->where, sizeof c->where, "header");
    if (c->end == 0) return vkllm_fail(c->err, VKLLM_E_FORMAT, "%s: empty file", c->name);
    if ((rc = need(c, 4, "magic"))) return rc;
    c->pos += 4;
    if (memcmp(c->buf, "GGUF", 4) != 0) {
        char m[5];
        for (int i = 0; i < 4; i++)
            m[i] = c->buf[i] >= 0x20 && c->buf[i] < 0x7f ? (char)c->buf[i] : '?';
        m[4] = 0;
        return vkllm_fail(c->err, VKLLM_E_FORMAT,
                          "%s: not a GGUF file (magic '%s', expected 'GGUF')", c->name, m);
    }
    if ((rc = rd_u32(c, &g->version, "version"))) return rc;
    if (g->version == 0)
        return vkllm_fail(c->err, VKLLM_E_FORMAT, "%s: bad GGUF version 0", c->name);
    /* a byte-swapped small version number has its low 16 bits clear */
    if ((g->version & 0xffff) == 0)
        return vkllm_fail(c->err, VKLLM_E_UNSUPPORTED,
                          "%s: GGUF version %" PRIu32 " (0x%08" PRIx32
                          ") looks byte-swapped: big-endian GGUF files are not supported",
                          c->name, g->version, g->version);
    if (g->version == 1)
        return vkllm_fail(c->err, VKLLM_E_UNSUPPORTED,
                          "%s: GGUF version 1 is obsolete and not supported: convert the model "
                          "again with a current llama.cpp",
                          c->name);
    if (g->version > 3)
        return vkllm_fail(c->err, VKLLM_E_UNSUPPORTED,
                          "%s: GGUF version %" PRIu32 " is not supported (only versions 2 and 3)",
                          c->name, g->version);
    if ((rc = rd_u64(c, &g->n_tensors, "tensor count")) ||
        (rc = rd_u64(c, &g->n_kv, "key/value count")))
        return rc;
    /* the tensor count is checked the same way once the key/values are read */
    if (g->n_kv > remaining(c) / MIN_KV_BYTES)
        return vkllm_fail(c->err, VKLLM_E_FORMAT,
                          "%s: header claims %" PRIu64 " key/value pairs, but the %" PRIu64
                          " bytes that follow hold at most %" PRIu64 ": truncated or corrupt",
                          c->name, g->n_kv, remaining(c), remaining(c) / MIN_KV_BYTES);
    return VKLLM_OK;
}

static int read_kvs(struct cursor *c, vkllm_gguf *g)
{
    int rc;
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv || index_init(&g->kv_index, g->n_kv)) goto nomem;

    uint64_t n_str = 0; /* elements of all string arrays */
    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct vkllm_gguf_kv *kv = &g->kv[i];
        locate(c, "key", i, NULL);
        if ((rc = rd_str(c, &kv->key, "key"))) return rc;
        if (kv->key.len == 0)
            return vkllm_fail(c->err, VKLLM_E_FORMAT, "%s: key %" PRIu64 " is empty", c->name, i);
        locate(c, "key", i, &kv->key);
        int64_t dup = index_add(&g->kv_index, g->kv, sizeof *g->kv, i);
        if (dup >= 0) return cfail(c, "duplicate key (also key %" PRId64 ")", dup);
        if ((rc = read_value(c, kv))) return rc;
        if (kv->type == VKLLM_GGUF_ARRAY && kv->arr_type == VKLLM_GGUF_STRING) n_str += kv->arr_len;
    }

    /* The string arrays were checked above; now give each its offsets table
     * (never a NULL pool: empty arrays point into it too). */
    g->str_offsets = malloc((n_str ? n_str : 1) * sizeof *g->str_offsets);
    if (!g->str_offsets) goto nomem;
    uint64_t *next = g->str_offsets;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct vkllm_gguf_kv *kv = &g->kv[i];
        if (kv->type != VKLLM_GGUF_ARRAY || kv->arr_type != VKLLM_GGUF_STRING) continue;
        kv->str_offsets = next;
        uint64_t off = 0;
        for (uint64_t j = 0; j < kv->arr_len; j++) {
            next[j] = off;
            off += 8 + le64(kv->data + off);
        }
        next += kv->arr_len;
    }

    snprintf(c->where, sizeof c->where, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct vkllm_gguf_kv *a = vkllm_gguf_find_kv(g, "general.alignment");
    if (a) {
        if (a->type != VKLLM_GGUF_UINT32)
            return cfail(c, "has type %s, expected uint32", vkllm_gguf_type_name(a->type));
        g->alignment = le32(a->data);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
            return cfail(c, "%" PRIu64 " is not a nonzero power of two", g->alignment);
    }
    return VKLLM_OK;
nomem:
    return vkllm_fail(c->err, VKLLM_E_NOMEM, "%s: out of memory for %" PRIu64 " key/values",
                      c->name, g->n_kv);
}

/* ============================== Tensor infos ============================== */

/* Reads one tensor info: everything but where its data lies. */
static int read_tensor_info(struct cursor *c, vkllm_gguf *g, uint64_t i)
{
    struct vkllm_gguf_tensor *t = &g->tensors[i];
    int rc;
    locate(c, "tensor", i, NULL);
    if ((rc = rd_str(c, &t->name, "name"))) return rc;
    locate(c, "tensor", i, &t->name);
    if (t->name.len >= GGUF_MAX_NAME)
        return cfail(c, "name is %" PRIu64 " bytes, too long (at most %d)", t->name.len,
                     GGUF_MAX_NAME - 1);
    int64_t dup = index_add(&g->tensor_index, g->tensors, sizeof *g->tensors, i);
    if (dup >= 0) return cfail(c, "duplicate tensor name (also tensor %" PRId64 ")", dup);

    if ((rc = rd_u32(c, &t->n_dims, "n_dims"))) return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return cfail(c, "has %" PRIu32 " dimensions, expected 1 to 4", t->n_dims);
    uint64_t nel = 1;
    bool zero = false;
    for (uint32_t d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && (rc = rd_u64(c, &t->ne[d], "dimension"))) return rc;
        if (t->ne[d] > INT64_MAX)
            return cfail(c, "dimension %" PRIu32 " is negative (%" PRId64 ")", d,
                         (int64_t)t->ne[d]);
        zero |= t->ne[d] == 0;
        if (!zero && nel > INT64_MAX / t->ne[d])
            return cfail(
                c, "element count overflows int64 at dimension %" PRIu32 " (%" PRIu64 " elements)",
                d, t->ne[d]);
        nel = zero ? 0 : nel * t->ne[d];
    }

    if ((rc = rd_u32(c, &t->type, "type"))) return rc;
    const struct vkllm_type_info *ti = vkllm_type_info(t->type);
    if (!ti) return cfail(c, "unknown tensor type %" PRIu32, t->type);
    if (t->ne[0] % ti->block_size)
        return cfail(c, "row length %" PRIu64 " is not a multiple of the %s block size %" PRIu32,
                     t->ne[0], ti->name, ti->block_size);
    if (nel / ti->block_size > UINT64_MAX / ti->block_bytes)
        return cfail(c, "byte size of %" PRIu64 " %s elements overflows", nel, ti->name);
    t->size = nel / ti->block_size * ti->block_bytes;
    return rd_u64(c, &t->offset, "offset");
}

/* Places every tensor: the data section starts at the aligned end of the infos,
 * each tensor's [offset, offset + size) must lie inside the file, and starts
 * where the one before it ended, padded to the alignment (llama.cpp's rule: no
 * tensor's data overlaps another's, and none hides in a gap). */
static int place_tensors(struct cursor *c, vkllm_gguf *g)
{
    uint64_t a = g->alignment, pad = (a - c->pos % a) % a;
    g->data_offset = c->pos + pad; /* pos <= end and a <= 2^31: no overflow */
    uint64_t next = 0;             /* where the next tensor must start */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct vkllm_gguf_tensor *t = &g->tensors[i];
        locate(c, "tensor", i, &t->name);
        if (g->data_offset > c->end)
            return cfail(c,
                         "data section starts at %" PRIu64 ", past the end of the file (%" PRIu64
                         " bytes)",
                         g->data_offset, c->end);
        uint64_t avail = c->end - g->data_offset;
        if (t->offset > avail || t->size > avail - t->offset)
            return cfail(c,
                         "%" PRIu64 " bytes of data at data section offset %" PRIu64
                         " run past the end of the file (data section %" PRIu64 " to %" PRIu64 ")",
                         t->size, t->offset, g->data_offset, c->end);
        if (t->offset != next)
            return cfail(c,
                         "data at offset %" PRIu64 ", expected %" PRIu64
                         " (tensors follow one another, each padded to the alignment %" PRIu64 ")",
                         t->offset, next, a);
        next = t->offset + (t->size + a - 1) / a * a; /* offset + size <= avail: no overflow */
        t->offset += g->data_offset;
    }
    return VKLLM_OK;
}

/* ============================== Parse, open, close ============================== */

/* Parses the first SIZE bytes of an image of END bytes, BUF. NEED_MORE (with
 * *WANT, the bytes the buffer must hold) when the header goes on past SIZE. */
static int parse(const uint8_t *buf, uint64_t size, uint64_t end, const char *name,
                 vkllm_gguf **out, uint64_t *want, struct vkllm_error *err)
{
    *out = NULL;
    vkllm_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->name = strdup(name))) {
        free(g);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", name);
    }
    g->fd = -1;
    g->base = buf;
    g->size = end;
    struct cursor c = {.buf = buf, .size = size, .end = end, .name = g->name, .err = err};
    int rc;
    if ((rc = read_header(&c, g)) || (rc = read_kvs(&c, g))) goto fail;

    if (g->n_tensors > remaining(&c) / MIN_TENSOR_BYTES) {
        rc =
            vkllm_fail(err, VKLLM_E_FORMAT,
                       "%s: header claims %" PRIu64 " tensors, but the %" PRIu64
                       " bytes after the key/values hold at most %" PRIu64 ": truncated or corrupt",
                       g->name, g->n_tensors, remaining(&c), remaining(&c) / MIN_TENSOR_BYTES);
        goto fail;
    }
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors || index_init(&g->tensor_index, g->n_tensors)) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory for %" PRIu64 " tensors", g->name,
                        g->n_tensors);
        goto fail;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((rc = read_tensor_info(&c, g, i))) goto fail;
    if ((rc = place_tensors(&c, g))) goto fail;
    *out = g;
    return VKLLM_OK;
fail:
    *want = c.want;
    vkllm_gguf_close(g);
    return rc;
}

int vkllm_gguf_parse(const void *data, size_t size, const char *name, vkllm_gguf **out,
                     struct vkllm_error *err)
{
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return vkllm_fail(err, VKLLM_E_INVALID, "%s: no data", name);
    uint64_t want; /* the whole image is there: never NEED_MORE */
    return parse(data, size, size, name, out, &want, err);
}

/* Reads N bytes at OFF of the file FD, which had EXPECT bytes when it was
 * opened: a short read means it shrank since (another program rewrote it). */
static int read_at(int fd, const char *name, uint64_t expect, void *dst, uint64_t n, uint64_t off,
                   struct vkllm_error *err)
{
    uint8_t *p = dst;
    while (n) {
        const size_t ask = n < GGUF_MAX_PREAD ? (size_t)n : GGUF_MAX_PREAD;
        const ssize_t got = pread(fd, p, ask, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return vkllm_fail(err, VKLLM_E_IO, "%s: read: %s", name, strerror(errno));
        if (got == 0) {
            struct stat st;
            if (fstat(fd, &st) != 0 || (uint64_t)st.st_size >= expect)
                return vkllm_fail(err, VKLLM_E_IO,
                                  "%s: the file changed while being read (a read at %" PRIu64
                                  " came back empty; expected %" PRIu64 " bytes)",
                                  name, off, expect);
            return vkllm_fail(err, VKLLM_E_IO,
                              "%s: the file changed while being read (it is now %" PRIu64
                              " bytes; expected %" PRIu64 ")",
                              name, (uint64_t)st.st_size, expect);
        }
        p += got;
        off += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return VKLLM_OK;
}

/* What a file that is not a regular file is, for the message refusing it. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

/* Reads and parses the header of the open file FD of END bytes, growing the
 * buffer until the parse has what it needs. */
static int read_header_of(int fd, const char *path, uint64_t end, vkllm_gguf **out,
                          struct vkllm_error *err)
{
    uint8_t *buf = NULL;
    uint64_t have = 0, len = end < GGUF_FIRST_READ ? end : GGUF_FIRST_READ;
    for (;;) {
        uint8_t *grown = realloc(buf, len);
        if (!grown) {
            free(buf);
            return vkllm_fail(err, VKLLM_E_NOMEM,
                              "%s: out of memory for %" PRIu64 " bytes of metadata", path, len);
        }
        buf = grown;
        uint64_t want = 0;
        int rc = read_at(fd, path, end, buf + have, len - have, have, err);
        if (!rc) rc = parse(buf, len, end, path, out, &want, err);
        if (!rc) {
            (*out)->header = buf;
            return VKLLM_OK;
        }
        if (rc != NEED_MORE) {
            free(buf);
            return rc;
        }
        if (want > GGUF_MAX_HEADER) {
            free(buf);
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: the metadata and tensor infos go on past %llu MiB, more than "
                              "any model has: corrupt, or not a model file",
                              path, GGUF_MAX_HEADER >> 20);
        }
        have = len;
        len = want > 2 * len ? want : 2 * len; /* want <= end: checked by the parse */
        if (len > end) len = end;
    }
}

int vkllm_gguf_open(const char *path, vkllm_gguf **out, struct vkllm_error *err)
{
    *out = NULL;
    if (!*path) return vkllm_fail(err, VKLLM_E_IO, "empty file name");
    /* only a regular file is opened: opening a FIFO waits for a writer, forever,
     * and opening a device can act on it (a tape rewinds) */
    struct stat st;
    if (stat(path, &st) != 0) return vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vkllm_fail(err, VKLLM_E_IO, "%s: is %s, not a model file", path,
                          file_kind(st.st_mode));
    /* O_NONBLOCK and fstat: the path may have become a FIFO since stat */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc =
            vkllm_fail(err, VKLLM_E_IO, "%s: is %s, not a model file", path, file_kind(st.st_mode));
        goto close_fd;
    }
    if (st.st_size == 0) {
        /* /proc and /sys files report 0 bytes and still hold text; some
         * cannot even be read from their start (/proc/self/mem: EIO), which
         * is no empty file either (probe 7, M6) */
        char byte;
        const ssize_t n = pread(fd, &byte, 1, 0);
        rc = n == 0 ? vkllm_fail(err, VKLLM_E_FORMAT, "%s: empty file", path)
                    : vkllm_fail(err, VKLLM_E_FORMAT,
                                 "%s: reports a size of 0 but %s (a /proc or /sys file?): not a "
                                 "regular model file",
                                 path, n > 0 ? "holds data" : "cannot be read as a file");
        goto close_fd;
    }
    if ((rc = read_header_of(fd, path, (uint64_t)st.st_size, out, err))) goto close_fd;
    (*out)->fd = fd; /* tensor data is read from it */
    return VKLLM_OK;
close_fd:
    close(fd);
    return rc;
}

void vkllm_gguf_close(vkllm_gguf *g)
{
    if (!g) return;
    if (g->fd >= 0) close(g->fd);
    free(g->header);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g->str_offsets);
    free(g->tensors);
    free(g->kv);
    free(g->name);
    free(g);
}

int vkllm_gguf_read(const vkllm_gguf *g, const struct vkllm_gguf_tensor *t, uint64_t offset,
                    void *dst, uint64_t n, struct vkllm_error *err)
{
    if (offset > t->size || n > t->size - offset)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "%s: %" PRIu64 " bytes at %" PRIu64 " of a tensor of %" PRIu64
                          " bytes (internal error)",
                          g->name, n, offset, t->size);
    if (!n) return VKLLM_OK;
    if (g->fd < 0) {
        memcpy(dst, g->base + t->offset + offset, n);
        return VKLLM_OK;
    }
    return read_at(g->fd, g->name, g->size, dst, n, t->offset + offset, err);
}

/* ============================== File accessors ============================== */

uint32_t vkllm_gguf_version(const vkllm_gguf *g)
{
    return g->version;
}
uint64_t vkllm_gguf_alignment(const vkllm_gguf *g)
{
    return g->alignment;
}
uint64_t vkllm_gguf_file_size(const vkllm_gguf *g)
{
    return g->size;
}
const char *vkllm_gguf_name(const vkllm_gguf *g)
{
    return g->name;
}
uint64_t vkllm_gguf_kv_count(const vkllm_gguf *g)
{
    return g->n_kv;
}
uint64_t vkllm_gguf_tensor_count(const vkllm_gguf *g)
{
    return g->n_tensors;
}

const struct vkllm_gguf_kv *vkllm_gguf_kv_at(const vkllm_gguf *g, uint64_t i)
{
    return i < g->n_kv ? &g->kv[i] : NULL;
}

const struct vkllm_gguf_tensor *vkllm_gguf_tensor_at(const vkllm_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct vkllm_gguf_kv *vkllm_gguf_find_kv(const vkllm_gguf *g, const char *key)
{
    return index_find(&g->kv_index, g->kv, sizeof *g->kv, key);
}

const struct vkllm_gguf_tensor *vkllm_gguf_find_tensor(const vkllm_gguf *g, const char *name)
{
    return index_find(&g->tensor_index, g->tensors, sizeof *g->tensors, name);
}

/* ============================== Values ============================== */

static int64_t double_to_int(double d)
{
    if (d != d) return 0; /* NaN */
    if (d >= 9223372036854775808.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* One value of scalar type T at P, as an integer (floats truncated, saturated). */
static int64_t load_int(enum vkllm_gguf_type t, const uint8_t *p)
{
    switch (t) {
    case VKLLM_GGUF_UINT8: return p[0];
    case VKLLM_GGUF_INT8: return (int8_t)p[0];
    case VKLLM_GGUF_BOOL: return p[0] != 0;
    case VKLLM_GGUF_UINT16: return le16(p);
    case VKLLM_GGUF_INT16: return (int16_t)le16(p);
    case VKLLM_GGUF_UINT32: return le32(p);
    case VKLLM_GGUF_INT32: return (int32_t)le32(p);
    case VKLLM_GGUF_UINT64: return le64(p) > INT64_MAX ? INT64_MAX : (int64_t)le64(p);
    case VKLLM_GGUF_INT64: return (int64_t)le64(p);
    case VKLLM_GGUF_FLOAT32: return double_to_int(lef32(p));
    case VKLLM_GGUF_FLOAT64: return double_to_int(lef64(p));
    default: return 0;
    }
}

static double load_float(enum vkllm_gguf_type t, const uint8_t *p)
{
    switch (t) {
    case VKLLM_GGUF_FLOAT32: return lef32(p);
    case VKLLM_GGUF_FLOAT64: return lef64(p);
    case VKLLM_GGUF_UINT64: return (double)le64(p);
    default: return (double)load_int(t, p);
    }
}

/* Element I of a numeric array kv, or NULL: not an array, an array of strings
 * or arrays, or I out of range (a caller's bad index must not read past the
 * array, which may end at the end of the buffer). */
static const uint8_t *arr_elem(const struct vkllm_gguf_kv *kv, uint64_t i)
{
    const uint64_t sz = type_size(kv->arr_type);
    if (kv->type != VKLLM_GGUF_ARRAY || !sz || i >= kv->arr_len) return NULL;
    return kv->data + i * sz;
}

struct vkllm_gguf_str vkllm_gguf_arr_str(const struct vkllm_gguf_kv *kv, uint64_t i)
{
    struct vkllm_gguf_str s = {"", 0};
    if (kv->type != VKLLM_GGUF_ARRAY || kv->arr_type != VKLLM_GGUF_STRING || i >= kv->arr_len)
        return s;
    const uint8_t *p = kv->data + kv->str_offsets[i];
    s.len = le64(p);
    s.ptr = (const char *)p + 8;
    return s;
}

int64_t vkllm_gguf_arr_int(const struct vkllm_gguf_kv *kv, uint64_t i)
{
    const uint8_t *p = arr_elem(kv, i);
    return p ? load_int(kv->arr_type, p) : 0;
}

double vkllm_gguf_arr_float(const struct vkllm_gguf_kv *kv, uint64_t i)
{
    const uint8_t *p = arr_elem(kv, i);
    return p ? load_float(kv->arr_type, p) : 0.0;
}

int64_t vkllm_gguf_kv_int(const struct vkllm_gguf_kv *kv)
{
    return load_int(kv->type, kv->data);
}
double vkllm_gguf_kv_float(const struct vkllm_gguf_kv *kv)
{
    return load_float(kv->type, kv->data);
}

/* ============================== Typed getters ============================== */

static bool is_int_type(enum vkllm_gguf_type t)
{
    return t <= VKLLM_GGUF_INT32 || t == VKLLM_GGUF_UINT64 || t == VKLLM_GGUF_INT64;
}

static int wrong_type(const vkllm_gguf *g, const char *key, const struct vkllm_gguf_kv *kv,
                      const char *want, struct vkllm_error *err)
{
    if (kv->type == VKLLM_GGUF_ARRAY)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: key '%s' is an array of %s, expected %s",
                          g->name, key, vkllm_gguf_type_name(kv->arr_type), want);
    return vkllm_fail(err, VKLLM_E_FORMAT, "%s: key '%s' has type %s, expected %s", g->name, key,
                      vkllm_gguf_type_name(kv->type), want);
}

int vkllm_gguf_get_uint(const vkllm_gguf *g, const char *key, uint64_t *out,
                        struct vkllm_error *err)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    if (!kv) return VKLLM_E_NOT_FOUND;
    if (!is_int_type(kv->type)) return wrong_type(g, key, kv, "an unsigned integer", err);
    if (kv->type == VKLLM_GGUF_UINT64) {
        *out = le64(kv->data);
        return VKLLM_OK;
    }
    int64_t v = load_int(kv->type, kv->data);
    if (v < 0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: key '%s' is %" PRId64 ", expected a non-negative integer", g->name,
                          key, v);
    *out = (uint64_t)v;
    return VKLLM_OK;
}

int vkllm_gguf_get_float(const vkllm_gguf *g, const char *key, double *out, struct vkllm_error *err)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    if (!kv) return VKLLM_E_NOT_FOUND;
    if (kv->type != VKLLM_GGUF_FLOAT32 && kv->type != VKLLM_GGUF_FLOAT64)
        return wrong_type(g, key, kv, "float32 or float64", err);
    *out = load_float(kv->type, kv->data);
    return VKLLM_OK;
}

int vkllm_gguf_get_bool(const vkllm_gguf *g, const char *key, bool *out, struct vkllm_error *err)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    if (!kv) return VKLLM_E_NOT_FOUND;
    if (kv->type != VKLLM_GGUF_BOOL) return wrong_type(g, key, kv, "bool", err);
    *out = kv->data[0] != 0;
    return VKLLM_OK;
}

int vkllm_gguf_get_str(const vkllm_gguf *g, const char *key, struct vkllm_gguf_str *out,
                       struct vkllm_error *err)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    if (!kv) return VKLLM_E_NOT_FOUND;
    if (kv->type != VKLLM_GGUF_STRING) return wrong_type(g, key, kv, "string", err);
    out->len = le64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return VKLLM_OK;
}

int vkllm_gguf_get_arr(const vkllm_gguf *g, const char *key, enum vkllm_gguf_type elem_type,
                       const struct vkllm_gguf_kv **out, struct vkllm_error *err)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    if (!kv) return VKLLM_E_NOT_FOUND;
    if (kv->type != VKLLM_GGUF_ARRAY)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: key '%s' has type %s, expected an array",
                          g->name, key, vkllm_gguf_type_name(kv->type));
    if (elem_type != VKLLM_GGUF_TYPE_COUNT && kv->arr_type != elem_type)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: key '%s' is an array of %s, expected an array of %s", g->name, key,
                          vkllm_gguf_type_name(kv->arr_type), vkllm_gguf_type_name(elem_type));
    *out = kv;
    return VKLLM_OK;
}
