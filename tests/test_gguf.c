/* test_gguf.c: the GGUF reader and writer.
 *
 *   round trip     every value type (scalars and arrays, nested arrays too) and
 *                  tensors of several types go through the writer and back
 *   stories260K    known facts about a real llama.cpp file, and a copy of it
 *                  through the writer comes out byte-identical
 *   corruption     a small valid file built here byte by byte, then broken in
 *                  one way at a time: each must fail with its own code and a
 *                  message naming the problem, never crash (some go through
 *                  files on disk and vkllm_gguf_open)
 *   hashing        the tables' hash is SipHash-1-3 (CPython's values), and the
 *                  writer's name index keeps its order and refuses duplicates
 *   gen_model      with --gen-model PATH (the gen_model_reproducible test): the
 *                  generator is deterministic and its files read back
 *
 * Run under ASan (-DVKLLM_SANITIZE=ON) this also shows the parser reads nothing
 * outside its buffer: every in-memory image is malloc'ed to its exact size.
 */
#include "testhelp.h"
#include "gguf_copy.h"
#include "hash.h"
#include "quant.h"
#include "vkllm.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GEN(name) VKLLM_TEST_GEN "/" name

/* REQUIRE evaluates its condition twice: calls with side effects go through this. */
/* ============================== Building images ============================== */

/* A GGUF image under construction, in little-endian bytes. */
struct img {
    uint8_t *p;
    size_t len, cap;
};

static void b_raw(struct img *m, const void *src, size_t n)
{
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2 + 64;
        m->p = realloc(m->p, m->cap);
        REQUIRE(m->p);
    }
    memcpy(m->p + m->len, src, n);
    m->len += n;
}

static void b_le(struct img *m, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    b_raw(m, b, (size_t)bytes);
}
static void b_u32(struct img *m, uint32_t v)
{
    b_le(m, v, 4);
}
static void b_u64(struct img *m, uint64_t v)
{
    b_le(m, v, 8);
}
static void b_str(struct img *m, const char *s)
{
    b_u64(m, strlen(s));
    b_raw(m, s, strlen(s));
}
static void b_header(struct img *m, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b_raw(m, "GGUF", 4);
    b_u32(m, version);
    b_u64(m, n_tensors);
    b_u64(m, n_kv);
}
static void b_pad(struct img *m, uint64_t a)
{
    while (m->len % a)
        b_raw(m, "", 1);
}
static void b_tensor(struct img *m, const char *name, uint32_t n_dims, const uint64_t *ne,
                     uint32_t type, uint64_t offset)
{
    b_str(m, name);
    b_u32(m, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        b_u64(m, ne[d]);
    b_u32(m, type);
    b_u64(m, offset);
}

/* How the small test file is built; the zero value of each field means "as in
 * the valid file". */
struct opts {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors, n_kv; /* header counts; 0: the real ones */
    int align_type;           /* 0: no general.alignment key, else its type + 1 */
    uint64_t align;
    bool t0_set; /* use the t0_ fields for tensor "w" */
    uint32_t t0_n_dims, t0_type;
    uint64_t t0_ne[5], t0_offset;
    const char *t1_name; /* name of the second tensor, "n" */
    bool t1_at;          /* "n" at t1_offset instead of right after "w" */
    uint64_t t1_offset;
    bool dup_key;
    size_t boundary[16]; /* out: offsets where each section ends */
    int n_boundary;
};

/* The valid file: three key/values, a Q8_0 tensor "w" [32, 2] and an F32
 * tensor "n" [4], its data ending the file (no trailing padding), so that
 * cutting the file anywhere must be an error. */
static struct img build(struct opts *o)
{
    struct img m = {0};
    uint64_t a = o->align_type && o->align && !(o->align & (o->align - 1)) ? o->align : 32;
    uint64_t n_kv = 3 + (o->align_type != 0) + o->dup_key;
    b_raw(&m, o->magic ? o->magic : "GGUF", 4);
    b_u32(&m, o->version ? o->version : 3);
    b_u64(&m, o->n_tensors ? o->n_tensors : 2);
    b_u64(&m, o->n_kv ? o->n_kv : n_kv);
    o->boundary[o->n_boundary++] = m.len;

    b_str(&m, "general.architecture");
    b_u32(&m, VKLLM_GGUF_STRING);
    b_str(&m, "llama");
    o->boundary[o->n_boundary++] = m.len;
    b_str(&m, "test.u32");
    b_u32(&m, VKLLM_GGUF_UINT32);
    b_u32(&m, 7);
    o->boundary[o->n_boundary++] = m.len;
    if (o->align_type) {
        b_str(&m, "general.alignment");
        b_u32(&m, (uint32_t)o->align_type - 1);
        b_le(&m, o->align, o->align_type - 1 == VKLLM_GGUF_UINT64 ? 8 : 4);
    }
    b_str(&m, "test.arr");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_INT32);
    b_u64(&m, 3);
    for (int i = 1; i <= 3; i++)
        b_u32(&m, (uint32_t)i);
    o->boundary[o->n_boundary++] = m.len;
    if (o->dup_key) {
        b_str(&m, "test.u32");
        b_u32(&m, VKLLM_GGUF_UINT32);
        b_u32(&m, 8);
    }

    const uint64_t w_ne[2] = {32, 2}, n_ne[1] = {4};
    uint64_t n_off = o->t1_at ? o->t1_offset : (68 + a - 1) / a * a;
    if (o->t0_set)
        b_tensor(&m, "w", o->t0_n_dims, o->t0_ne, o->t0_type, o->t0_offset);
    else
        b_tensor(&m, "w", 2, w_ne, VKLLM_TYPE_Q8_0, 0);
    o->boundary[o->n_boundary++] = m.len;
    b_tensor(&m, o->t1_name ? o->t1_name : "n", 1, n_ne, VKLLM_TYPE_F32, n_off);
    o->boundary[o->n_boundary++] = m.len;
    b_pad(&m, a);
    o->boundary[o->n_boundary++] = m.len;
    for (int i = 0; i < 68; i++)
        b_raw(&m, &(uint8_t){(uint8_t)i}, 1);
    b_pad(&m, a);
    o->boundary[o->n_boundary++] = m.len;
    for (int i = 0; i < 4; i++) {
        float f = (float)i + 0.5f;
        b_raw(&m, &f, 4);
    }
    return m;
}

/* ============================== Expectations ============================== */

/* With --write-seeds DIR, every image the tests build is also written to DIR:
 * that is how tests/data/fuzz/gguf/ was made. */
static const char *seed_dir;

static void seed(const char *what, const struct img *m, size_t len)
{
    static int n;
    if (!seed_dir) return;
    char path[512];
    int k = snprintf(path, sizeof path, "%s/%02d-", seed_dir, n++);
    for (const char *c = what; *c && k < 400; c++)
        path[k++] = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c
                    : (*c >= 'A' && *c <= 'Z')                           ? (char)(*c - 'A' + 'a')
                                                                         : '-';
    snprintf(path + k, sizeof path - (size_t)k, ".gguf");
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    if (len) fwrite(m->p, 1, len, f);
    fclose(f);
}

/* Parses a copy of the image of exactly its size (so ASan sees any overread). */
static int parse_copy(const struct img *m, size_t len, vkllm_gguf **g, struct vkllm_error *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    REQUIRE(copy);
    if (len) memcpy(copy, m->p, len);
    int rc = vkllm_gguf_parse(copy, len, "case", g, err);
    if (rc != VKLLM_OK) {
        REQUIRE(*g == NULL);
        free(copy);
    } else {
        vkllm_gguf_close(*g); /* callers here only want the verdict */
        *g = NULL;
        free(copy);
    }
    return rc;
}

/* The image (first LEN bytes) must fail with CODE and a message that starts
 * with the name and contains KEYWORD. */
static void expect_fail_n(const char *what, const struct img *m, size_t len, int code,
                          const char *keyword)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    seed(what, m, len);
    int rc = parse_copy(m, len, &g, &err);
    CHECK(rc == code, "%s: got %d (%s), expected %d", what, rc, err.msg, code);
    CHECK(err.code == code, "%s: err.code %d", what, err.code);
    CHECK(strncmp(err.msg, "case: ", 6) == 0, "%s: message '%s' lacks the name", what, err.msg);
    CHECK(strstr(err.msg, keyword), "%s: message '%s' lacks '%s'", what, err.msg, keyword);
    CHECK(!strchr(err.msg, '\n'));
}

static void expect_fail(const char *what, const struct img *m, int code, const char *keyword)
{
    expect_fail_n(what, m, m->len, code, keyword);
}

static void expect_ok(const char *what, const struct img *m)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    seed(what, m, m->len);
    int rc = parse_copy(m, m->len, &g, &err);
    CHECK(rc == VKLLM_OK, "%s: %s", what, err.msg);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    size_t wrote = fwrite(p, 1, n, f);
    int closed = fclose(f);
    REQUIRE(wrote == n && closed == 0, "%s", path);
}

static bool str_is(struct vkllm_gguf_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/* ============================== Corrupt files ============================== */

static void test_valid_base(void)
{
    struct opts o = {0};
    struct img m = build(&o);
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    seed("base", &m, m.len);
    REQUIRE_OK(vkllm_gguf_parse(m.p, m.len, "base", &g, &err), "%s", err.msg);
    CHECK(vkllm_gguf_version(g) == 3);
    CHECK(vkllm_gguf_kv_count(g) == 3 && vkllm_gguf_tensor_count(g) == 2);
    CHECK(vkllm_gguf_alignment(g) == 32);
    const struct vkllm_gguf_tensor *w = vkllm_gguf_find_tensor(g, "w");
    const struct vkllm_gguf_tensor *n = vkllm_gguf_find_tensor(g, "n");
    REQUIRE(w && n);
    CHECK(w->size == 68 && w->type == VKLLM_TYPE_Q8_0 && w->n_dims == 2);
    CHECK(w->ne[0] == 32 && w->ne[1] == 2 && w->ne[2] == 1 && w->ne[3] == 1);
    uint8_t b[2];
    CHECK(w->offset % 32 == 0 && vkllm_gguf_read(g, w, 5, b, 2, &err) == VKLLM_OK && b[0] == 5 &&
          b[1] == 6);
    CHECK(n->offset == w->offset + 96 && n->size == 16 && n->offset + n->size == m.len);
    float f;
    CHECK(vkllm_gguf_read(g, n, 4, &f, 4, &err) == VKLLM_OK && f == 1.5f);
    /* a range outside the tensor is refused, not read */
    CHECK(vkllm_gguf_read(g, n, 15, b, 2, &err) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_read(g, n, UINT64_MAX, b, 2, &err) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_read(g, n, 16, b, 0, &err) == VKLLM_OK);
    CHECK(!vkllm_gguf_find_tensor(g, "x") && !vkllm_gguf_find_kv(g, "test"));
    CHECK(vkllm_gguf_tensor_at(g, 2) == NULL && vkllm_gguf_kv_at(g, 3) == NULL);
    vkllm_gguf_close(g);
    free(m.p);
}

/* Cutting the valid file at every byte: truncated, never accepted. */
static void test_truncation(void)
{
    struct opts o = {0};
    struct img m = build(&o);
    int cuts = 0;
    for (size_t len = 0; len < m.len; len++) {
        struct vkllm_error err = {0};
        vkllm_gguf *g = NULL;
        int rc = parse_copy(&m, len, &g, &err);
        CHECK(rc == VKLLM_E_FORMAT, "cut at %zu: rc %d", len, rc);
        CHECK(strstr(err.msg, "truncated") || strstr(err.msg, "past the end") ||
                  (len == 0 && strstr(err.msg, "empty")),
              "cut at %zu: '%s'", len, err.msg);
        cuts++;
    }
    /* at the section boundaries, the message says which section was cut */
    const char *where[] = {"3 key/value pairs",
                           "key 1: truncated",
                           "key 2: truncated",
                           "2 tensors",
                           "2 tensors",
                           "past the end",
                           "tensor 0 'w': 68 bytes of data",
                           "tensor 1 'n': 16 bytes of data"};
    for (int i = 0; i < o.n_boundary && i < 8; i++) {
        char what[64];
        snprintf(what, sizeof what, "cut at boundary %d", i);
        expect_fail_n(what, &m, o.boundary[i], VKLLM_E_FORMAT, where[i]);
    }
    /* the header alone, byte by byte, reports what it was reading */
    expect_fail_n("cut in magic", &m, 3, VKLLM_E_FORMAT, "magic");
    expect_fail_n("cut in version", &m, 6, VKLLM_E_FORMAT, "version");
    expect_fail_n("cut in tensor count", &m, 12, VKLLM_E_FORMAT, "tensor count");
    expect_fail_n("cut in kv count", &m, 20, VKLLM_E_FORMAT, "key/value count");
    CHECK(cuts == (int)m.len);
    free(m.p);
}

static void test_header_errors(void)
{
    struct img m;
    struct opts o;

    o = (struct opts){.magic = "GGML"};
    m = build(&o);
    expect_fail("bad magic", &m, VKLLM_E_FORMAT, "not a GGUF file");
    free(m.p);

    o = (struct opts){.version = 1};
    m = build(&o);
    expect_fail("v1", &m, VKLLM_E_UNSUPPORTED, "version 1");
    free(m.p);

    o = (struct opts){.version = 4};
    m = build(&o);
    expect_fail("v4", &m, VKLLM_E_UNSUPPORTED, "version 4 is not supported");
    free(m.p);

    o = (struct opts){.version = 2}; /* v2 has v3's layout */
    m = build(&o);
    expect_ok("v2", &m);
    free(m.p);

    o = (struct opts){.version = 0x03000000}; /* a big-endian v3 file read as little-endian */
    m = build(&o);
    expect_fail("big-endian", &m, VKLLM_E_UNSUPPORTED, "big-endian");
    free(m.p);

    m = (struct img){0};
    b_header(&m, 0, 0, 0);
    expect_fail("version 0", &m, VKLLM_E_FORMAT, "version 0");
    free(m.p);

    m = (struct img){0};
    expect_fail("empty", &m, VKLLM_E_FORMAT, "empty file");

    o = (struct opts){.n_kv = 1ull << 62};
    m = build(&o);
    expect_fail("huge n_kv", &m, VKLLM_E_FORMAT, "key/value pairs");
    free(m.p);

    o = (struct opts){.n_kv = UINT64_MAX};
    m = build(&o);
    expect_fail("n_kv -1", &m, VKLLM_E_FORMAT, "key/value pairs");
    free(m.p);

    o = (struct opts){.n_tensors = 1ull << 60};
    m = build(&o);
    expect_fail("huge n_tensors", &m, VKLLM_E_FORMAT, "tensors");
    free(m.p);

    /* more tensors than the bytes after the key/values could describe */
    o = (struct opts){.n_tensors = 9};
    m = build(&o);
    expect_fail("n_tensors past infos", &m, VKLLM_E_FORMAT, "tensors");
    free(m.p);

    /* an extra key/value claimed: the parser reads tensor infos as a key */
    o = (struct opts){.n_kv = 4};
    m = build(&o);
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    CHECK(parse_copy(&m, m.len, &g, &err) == VKLLM_E_FORMAT, "n_kv + 1: %s", err.msg);
    free(m.p);
}

/* A file with no tensors and the single key/value that BODY appends. */
static struct img one_kv(void (*body)(struct img *))
{
    struct img m = {0};
    b_header(&m, 3, 0, 1);
    body(&m);
    return m;
}

static void kv_str_past_eof(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_STRING);
    b_u64(m, 100);
    b_raw(m, "short", 5);
}
static void kv_key_huge(struct img *m)
{
    b_u64(m, UINT64_MAX - 3);
    b_raw(m, "key and some bytes", 18);
}
static void kv_key_empty(struct img *m)
{
    b_str(m, "");
    b_u32(m, VKLLM_GGUF_UINT8);
    b_raw(m, "x", 1);
    b_u32(m, 0); /* room for the smallest key/value the count check allows */
}
static void kv_bad_type(struct img *m)
{
    b_str(m, "k");
    b_u32(m, 13);
    b_u32(m, 0);
}
static void kv_arr_huge(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, VKLLM_GGUF_UINT32);
    b_u64(m, 1ull << 62); /* times 4 bytes wraps to 0 in 64 bits */
    b_u32(m, 1);
}
static void kv_arr_bad_elem(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, 99);
    b_u64(m, 1);
    b_u32(m, 0);
}
static void kv_arr_str_huge(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, VKLLM_GGUF_STRING);
    b_u64(m, UINT64_MAX);
    b_str(m, "a");
}
static void kv_arr_str_past_eof(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, VKLLM_GGUF_STRING);
    b_u64(m, 2);
    b_str(m, "a");
    b_u64(m, 1000);
    b_raw(m, "bcdefgh", 7);
}
static void kv_nested_deep(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    for (int i = 0; i < 20; i++) {
        b_u32(m, VKLLM_GGUF_ARRAY);
        b_u64(m, 1);
    }
    b_u32(m, VKLLM_GGUF_UINT8);
    b_u64(m, 0);
}
static void kv_nested_bad_type(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u64(m, 1);
    b_u32(m, 77);
    b_u64(m, 0);
}
static void kv_nested_huge(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u32(m, VKLLM_GGUF_ARRAY);
    b_u64(m, 1ull << 61);
    b_u32(m, VKLLM_GGUF_UINT8);
    b_u64(m, 0);
}
static void kv_value_cut(struct img *m)
{
    b_str(m, "k");
    b_u32(m, VKLLM_GGUF_UINT64);
    b_u32(m, 1); /* 4 of the 8 bytes */
}

static void test_kv_errors(void)
{
    static const struct {
        const char *what;
        void (*body)(struct img *);
        const char *keyword;
    } cases[] = {
        {"string past EOF", kv_str_past_eof, "string value length 100"},
        {"key length huge", kv_key_huge, "key length"},
        {"empty key", kv_key_empty, "key 0 is empty"},
        {"bad value type", kv_bad_type, "value type 13 is not a GGUF value type"},
        {"array huge", kv_arr_huge, "array of 4611686018427387904 uint32"},
        {"array elem type", kv_arr_bad_elem, "array element type 99"},
        {"string array huge", kv_arr_str_huge, "array of 18446744073709551615 string"},
        {"string element past EOF", kv_arr_str_past_eof, "string element length 1000"},
        {"nested too deep", kv_nested_deep, "nested more than"},
        {"nested bad type", kv_nested_bad_type, "nested array element type 77"},
        {"nested huge", kv_nested_huge, "array of 2305843009213693952 array"},
        {"value cut", kv_value_cut, "truncated: value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct img m = one_kv(cases[i].body);
        expect_fail(cases[i].what, &m, VKLLM_E_FORMAT, cases[i].keyword);
        free(m.p);
    }

    struct opts o = {.dup_key = true};
    struct img m = build(&o);
    expect_fail("duplicate key", &m, VKLLM_E_FORMAT, "key 3 'test.u32': duplicate key");
    free(m.p);

    static const struct {
        int type;
        uint64_t value;
        const char *keyword;
    } align[] = {
        {VKLLM_GGUF_UINT32, 0, "0 is not a nonzero power of two"},
        {VKLLM_GGUF_UINT32, 3, "3 is not a nonzero power of two"},
        {VKLLM_GGUF_UINT32, 48, "not a nonzero power of two"},
        {VKLLM_GGUF_UINT64, 64, "general.alignment: has type uint64, expected uint32"},
        {VKLLM_GGUF_INT32, 64, "expected uint32"},
    };
    for (size_t i = 0; i < sizeof align / sizeof align[0]; i++) {
        o = (struct opts){.align_type = align[i].type + 1, .align = align[i].value};
        m = build(&o);
        expect_fail("alignment", &m, VKLLM_E_FORMAT, align[i].keyword);
        free(m.p);
    }
    for (uint64_t a = 1; a <= 256; a *= 2) {
        o = (struct opts){.align_type = VKLLM_GGUF_UINT32 + 1, .align = a};
        m = build(&o);
        if (a == 64) seed("alignment 64", &m, m.len);
        struct vkllm_error err;
        vkllm_gguf *g;
        CHECK(vkllm_gguf_parse(m.p, m.len, "a", &g, &err) == VKLLM_OK, "align %d: %s", (int)a,
              err.msg);
        if (g) {
            CHECK(vkllm_gguf_alignment(g) == a);
            CHECK(vkllm_gguf_tensor_at(g, 0)->offset % a == 0);
            CHECK(vkllm_gguf_tensor_at(g, 1)->offset % a == 0);
        }
        vkllm_gguf_close(g);
        free(m.p);
    }
}

static void test_tensor_errors(void)
{
    static const struct {
        const char *what;
        uint32_t n_dims, type;
        uint64_t ne[4], offset;
        const char *keyword;
    } cases[] = {
        {"n_dims 0", 0, VKLLM_TYPE_F32, {0}, 0, "has 0 dimensions"},
        {"n_dims 5", 5, VKLLM_TYPE_F32, {1, 1, 1, 1}, 0, "has 5 dimensions"},
        {"type 99", 2, 99, {32, 2}, 0, "unknown tensor type 99"},
        {"type 4 (retired)", 2, 4, {32, 2}, 0, "unknown tensor type 4"},
        {"type COUNT", 2, VKLLM_TYPE_COUNT, {32, 2}, 0, "unknown tensor type"},
        {"ne overflow", 3, VKLLM_TYPE_F32, {1ull << 32, 1ull << 31, 2}, 0, "overflows int64"},
        {"ne negative", 2, VKLLM_TYPE_F32, {32, UINT64_MAX}, 0, "dimension 1 is negative"},
        {"bytes overflow", 2, VKLLM_TYPE_F64, {1ull << 31, 1ull << 31}, 0, "byte size"},
        {"row not block", 2, VKLLM_TYPE_Q8_0, {33, 2}, 0, "33 is not a multiple of the Q8_0 block"},
        {"row not block K", 1, VKLLM_TYPE_Q4_K, {128}, 0, "block size 256"},
        {"misaligned", 2, VKLLM_TYPE_Q8_0, {32, 2}, 8, "'w': data at offset 8, expected 0"},
        {"gap before", 2, VKLLM_TYPE_Q8_0, {32, 1}, 32, "'w': data at offset 32, expected 0"},
        {"past EOF", 2, VKLLM_TYPE_Q8_0, {32, 2}, 1024, "run past the end of the file"},
        {"offset huge", 2, VKLLM_TYPE_Q8_0, {32, 2}, UINT64_MAX - 31, "run past the end"},
        {"size past EOF", 2, VKLLM_TYPE_Q8_0, {32, 4}, 0, "136 bytes of data"},
        {"huge tensor", 4, VKLLM_TYPE_F32, {1 << 20, 1 << 20, 1 << 20, 2}, 0, "past the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct opts o = {.t0_set = true,
                         .t0_n_dims = cases[i].n_dims,
                         .t0_type = cases[i].type,
                         .t0_offset = cases[i].offset};
        memcpy(o.t0_ne, cases[i].ne, sizeof cases[i].ne);
        struct img m = build(&o);
        expect_fail(cases[i].what, &m, VKLLM_E_FORMAT, cases[i].keyword);
        free(m.p);
    }

    struct opts o = {.t1_name = "w"};
    struct img m = build(&o);
    expect_fail("duplicate tensor", &m, VKLLM_E_FORMAT, "tensor 1 'w': duplicate tensor name");
    free(m.p);

    char name[80];
    memset(name, 'x', 64);
    name[64] = 0;
    o = (struct opts){.t1_name = name};
    m = build(&o);
    expect_fail("name 64 bytes", &m, VKLLM_E_FORMAT, "name is 64 bytes, too long");
    free(m.p);
    name[63] = 0; /* 63 bytes: the longest ggml allows */
    o = (struct opts){.t1_name = name};
    m = build(&o);
    expect_ok("name 63 bytes", &m);
    free(m.p);

    /* Regression: tensors whose data overlapped were accepted. llama.cpp wants
     * each where the one before it ended, padded to the alignment: "n" at the
     * same offset as "w", inside it, and past a gap are refused (inside the
     * file, so only the placement is wrong). */
    const struct {
        const char *what;
        uint64_t offset;
        const char *keyword;
    } placed[] = {
        {"same offset", 0, "tensor 1 'n': data at offset 0, expected 96"},
        {"ranges cross", 64, "tensor 1 'n': data at offset 64, expected 96"},
        {"aligned inside", 32,
         "data at offset 32, expected 96 (tensors follow one another, each "
         "padded to the alignment 32)"},
    };
    for (size_t i = 0; i < sizeof placed / sizeof placed[0]; i++) {
        o = (struct opts){.t1_at = true, .t1_offset = placed[i].offset};
        m = build(&o);
        expect_fail(placed[i].what, &m, VKLLM_E_FORMAT, placed[i].keyword);
        free(m.p);
    }
    /* llama.cpp accepts dimensions of 0 elements, so we do: a 0-byte tensor,
     * which takes no room (the next one starts at its offset) */
    o = (struct opts){.t0_set = true,
                      .t0_n_dims = 2,
                      .t0_type = VKLLM_TYPE_Q8_0,
                      .t0_ne = {0, 5},
                      .t1_at = true,
                      .t1_offset = 0};
    m = build(&o);
    struct vkllm_error err;
    vkllm_gguf *g;
    CHECK(vkllm_gguf_parse(m.p, m.len, "zero", &g, &err) == VKLLM_OK, "%s", err.msg);
    if (g) CHECK(vkllm_gguf_find_tensor(g, "w")->size == 0);
    vkllm_gguf_close(g);
    free(m.p);
}

/* Errors from vkllm_gguf_open: the file system, and parse errors naming the path. */
static void test_open_errors(void)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = (vkllm_gguf *)&err;
    CHECK(vkllm_gguf_open(GEN("does-not-exist.gguf"), &g, &err) == VKLLM_E_IO && !g);
    CHECK(strcmp(err.msg, GEN("does-not-exist.gguf") ": No such file or directory") == 0, "%s",
          err.msg);

    CHECK(vkllm_gguf_open(VKLLM_TEST_GEN, &g, &err) == VKLLM_E_IO && !g);
    CHECK(strstr(err.msg, VKLLM_TEST_GEN ": is a directory, not a model file"), "%s", err.msg);

    CHECK(vkllm_gguf_open("/dev/null", &g, &err) == VKLLM_E_IO && !g);
    CHECK(strstr(err.msg, "/dev/null: is a character device, not a model file"), "%s", err.msg);

    /* regression: a FIFO was opened before it was checked, and open() waited
     * for a writer forever (ctest's timeout catches a hang) */
    unlink(GEN("fifo.gguf"));
    if (mkfifo(GEN("fifo.gguf"), 0600) == 0) {
        CHECK(vkllm_gguf_open(GEN("fifo.gguf"), &g, &err) == VKLLM_E_IO && !g);
        CHECK(strstr(err.msg, "fifo.gguf: is a FIFO, not a model file"), "%s", err.msg);
        unlink(GEN("fifo.gguf"));
    }

    /* regression: "error: : No such file or directory" */
    CHECK(vkllm_gguf_open("", &g, &err) == VKLLM_E_IO && !g);
    CHECK(strcmp(err.msg, "empty file name") == 0, "%s", err.msg);

    /* regression: a message was cut at 511 bytes, so a long path lost its
     * reason; now the middle goes and the reason stays */
    char long_path[5001];
    memset(long_path, 'a', 5000);
    long_path[0] = '/';
    long_path[5000] = 0;
    CHECK(vkllm_gguf_open(long_path, &g, &err) == VKLLM_E_IO && !g);
    CHECK(strlen(err.msg) < sizeof err.msg && strstr(err.msg, "/aaa") == err.msg &&
              strstr(err.msg, "aaa...aaa") && strstr(err.msg, ": File name too long"),
          "%s", err.msg);

    write_file(GEN("empty.gguf"), "", 0);
    CHECK(vkllm_gguf_open(GEN("empty.gguf"), &g, &err) == VKLLM_E_FORMAT && !g);
    CHECK(strcmp(err.msg, GEN("empty.gguf") ": empty file") == 0, "%s", err.msg);

    struct opts o = {.version = 1};
    struct img m = build(&o);
    write_file(GEN("v1.gguf"), m.p, m.len);
    CHECK(vkllm_gguf_open(GEN("v1.gguf"), &g, &err) == VKLLM_E_UNSUPPORTED && !g);
    CHECK(strstr(err.msg, GEN("v1.gguf") ": GGUF version 1"), "%s", err.msg);
    free(m.p);

    o = (struct opts){0};
    m = build(&o);
    write_file(GEN("cut.gguf"), m.p, m.len - 1);
    CHECK(vkllm_gguf_open(GEN("cut.gguf"), &g, &err) == VKLLM_E_FORMAT && !g);
    CHECK(strstr(err.msg, GEN("cut.gguf") ": tensor 1 'n': 16 bytes of data"), "%s", err.msg);
    write_file(GEN("ok.gguf"), m.p, m.len);
    CHECK(vkllm_gguf_open(GEN("ok.gguf"), &g, &err) == VKLLM_OK, "%s", err.msg);
    if (g) {
        CHECK(vkllm_gguf_file_size(g) == m.len);
        CHECK(strcmp(vkllm_gguf_name(g), GEN("ok.gguf")) == 0);
        uint8_t n_data[16];
        CHECK(vkllm_gguf_read(g, vkllm_gguf_find_tensor(g, "n"), 0, n_data, 16, &err) == 0);
        CHECK(memcmp(n_data, m.p + m.len - 16, 16) == 0);
    }
    vkllm_gguf_close(g);
    free(m.p);

    o = (struct opts){.t0_set = true, .t0_n_dims = 5, .t0_type = 0, .t0_ne = {1, 1, 1, 1, 1}};
    m = build(&o);
    write_file(GEN("dims5.gguf"), m.p, m.len);
    CHECK(vkllm_gguf_open(GEN("dims5.gguf"), &g, &err) == VKLLM_E_FORMAT && !g);
    CHECK(strstr(err.msg, GEN("dims5.gguf") ": tensor 0 'w': has 5 dimensions"), "%s", err.msg);
    free(m.p);

    vkllm_gguf_close(NULL);
}

/* ============================== Printable text ============================== */

/* vkllm_printable of SRC (LEN bytes) into a buffer of CAP bytes is WANT, having
 * taken TAKEN bytes. */
static void expect_printable(const char *src, size_t len, size_t cap, const char *want,
                             size_t taken)
{
    char out[256];
    size_t n = vkllm_printable(out, cap, src, len);
    CHECK(n == taken && strcmp(out, want) == 0, "'%s' took %zu: '%s' took %zu, expected '%s'", src,
          len, out, n, want);
}

/* "a", the character CH (UTF-8) escaped byte by byte, "b": an invisible
 * character let through made two different names look the same. */
static void expect_hidden(const char *ch)
{
    char src[16], want[64];
    snprintf(src, sizeof src, "a%sb", ch);
    size_t w = 0;
    want[w++] = 'a';
    for (const unsigned char *p = (const unsigned char *)ch; *p; p++)
        w += (size_t)snprintf(want + w, sizeof want - w, "\\x%02x", *p);
    snprintf(want + w, sizeof want - w, "b");
    expect_printable(src, strlen(src), 64, want, strlen(src));
}

/* File text reached the terminal raw: a key, tensor name or architecture could
 * set the window title, colours, or forge lines. */
static void test_printable(void)
{
    expect_printable("plain", 5, 64, "plain", 5);
    expect_printable("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14, 64,
                     "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14);
    expect_printable("\x1b]0;owned\x07", 10, 64, "\\x1b]0;owned\\x07", 10);
    expect_printable("a\nb\rc\td\x7f", 8, 64, "a\\x0ab\\x0dc\\x09d\\x7f", 8);
    expect_printable("x\0y", 3, 64, "x\\x00y", 3);
    /* C1 controls as UTF-8 (U+009B is CSI), bidirectional override, line separator */
    expect_printable("\xc2\x9b"
                     "2J\xe2\x80\xae\xe2\x80\xa8",
                     10, 64, "\\xc2\\x9b2J\\xe2\\x80\\xae\\xe2\\x80\\xa8", 10);
    /* the bidirectional marks (ALM, LRM, RLM) and an isolate; zero-width
     * joiners stay (emoji sequences) */
    expect_printable("\xd8\x9c\xe2\x80\x8e\xe2\x80\x8f\xe2\x81\xa6\xe2\x80\x8d", 14, 128,
                     "\\xd8\\x9c\\xe2\\x80\\x8e\\xe2\\x80\\x8f\\xe2\\x81\\xa6\xe2\x80\x8d", 14);
    /* every format character (Cf) but ZWJ and ZWNJ, and the noncharacters:
     * soft hyphen, zero-width space, word joiner, a deprecated format
     * control, BOM, interlinear annotation, Mongolian vowel separator, Kaithi
     * number sign, LANGUAGE TAG and TAG A (text hidden in TAG characters),
     * U+FDD0, U+FFFE, U+1FFFF, U+10FFFF; they were let through */
    static const char *const hidden[] = {
        "\xc2\xad",         "\xe2\x80\x8b",     "\xe2\x81\xa0",     "\xe2\x81\xaa",
        "\xef\xbb\xbf",     "\xef\xbf\xb9",     "\xe1\xa0\x8e",     "\xf0\x91\x82\xbd",
        "\xf3\xa0\x80\x81", "\xf3\xa0\x81\x81", "\xef\xb7\x90",     "\xef\xbf\xbe",
        "\xf0\x9f\xbf\xbf", "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
        expect_hidden(hidden[i]);
    /* ZWNJ stays (Persian, Indic scripts), and so does a flag's tag sequence
     * (black flag, "gbsct", CANCEL TAG: Scotland), kept whole or not at all */
    expect_printable("\xd9\x85\xe2\x80\x8c\xd9\x85", 7, 64, "\xd9\x85\xe2\x80\x8c\xd9\x85", 7);
    static const char scotland[] = "\xf0\x9f\x8f\xb4\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xb3"
                                   "\xf3\xa0\x81\xa3\xf3\xa0\x81\xb4\xf3\xa0\x81\xbf";
    expect_printable(scotland, 28, 64, scotland, 28);
    expect_printable(scotland, 28, 28, "", 0);
    /* TAG characters after a black flag that are not a subdivision code (a
     * space, "Hi", or seven letters) are escaped: the flag is no hiding place */
    expect_printable("\xf0\x9f\x8f\xb4\xf3\xa0\x80\xa0\xf3\xa0\x81\xbf", 12, 128,
                     "\xf0\x9f\x8f\xb4\\xf3\\xa0\\x80\\xa0\\xf3\\xa0\\x81\\xbf", 12);
    expect_printable("\xf0\x9f\x8f\xb4\xf3\xa0\x81\x88\xf3\xa0\x81\xa9\xf3\xa0\x81\xbf", 16, 128,
                     "\xf0\x9f\x8f\xb4\\xf3\\xa0\\x81\\x88\\xf3\\xa0\\x81\\xa9\\xf3\\xa0\\x81\\xbf",
                     16);
    char seven[64] = "\xf0\x9f\x8f\xb4";
    for (int i = 0; i < 7; i++)
        strcat(seven, "\xf3\xa0\x81\xa1");
    strcat(seven, "\xf3\xa0\x81\xbf");
    char out[256];
    vkllm_printable(out, sizeof out, seven, strlen(seven));
    CHECK(strncmp(out, "\xf0\x9f\x8f\xb4\\xf3", 6) == 0, "seven TAG letters kept: '%s'", out);
    /* invalid UTF-8: a lone continuation byte, 0xff, an overlong '/', a
     * surrogate, a cut-off sequence: each byte escaped, the rest resynchronized */
    expect_printable("\x80\xff\xc0\xafok\xed\xa0\x80\xe4\xb8", 11, 128,
                     "\\x80\\xff\\xc0\\xafok\\xed\\xa0\\x80\\xe4\\xb8", 11);
    /* idempotent: escaping escaped text changes nothing */
    expect_printable("\\x1b", 4, 64, "\\x1b", 4);
    /* never half a character or half an escape; CAP includes the NUL */
    expect_printable("ab\xc3\xa9", 4, 4, "ab", 2);
    expect_printable("ab\xc3\xa9", 4, 5, "ab\xc3\xa9", 4);
    expect_printable("a\x1b", 2, 5, "a", 1);
    expect_printable("a\x1b", 2, 6, "a\\x1b", 2);
    expect_printable("abc", 3, 1, "", 0);

    /* errors are escaped where they are made: a file name or key in a message */
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    CHECK(vkllm_gguf_parse("GGUF", 4, "evil\x1b[2J\n.gguf", &g, &err) == VKLLM_E_FORMAT && !g);
    CHECK(strncmp(err.msg, "evil\\x1b[2J\\x0a.gguf: ", 22) == 0, "%s", err.msg);
}

/* ============================== Round trip ============================== */

/* An image with one key/value of every type, scalar and array, and a nested
 * array; the writer can only copy the types it has no setter for. */
static struct img all_types_image(void)
{
    struct img m = {0};
    b_header(&m, 3, 0, 2 * 13 - 2 + 2);
    for (uint32_t t = 0; t < VKLLM_GGUF_TYPE_COUNT; t++) {
        if (t == VKLLM_GGUF_ARRAY) continue;
        char key[32];
        snprintf(key, sizeof key, "s.%s", vkllm_gguf_type_name(t));
        b_str(&m, key);
        b_u32(&m, t);
        if (t == VKLLM_GGUF_STRING)
            b_str(&m, "héllo");
        else if (t == VKLLM_GGUF_FLOAT32)
            b_le(&m, 0xc0490fdb, 4); /* -pi */
        else if (t == VKLLM_GGUF_FLOAT64)
            b_le(&m, 0x400921fb54442d18, 8); /* pi */
        else if (t == VKLLM_GGUF_BOOL)
            b_le(&m, 1, 1);
        else {
            static const uint8_t size[] = {1, 1, 2, 2, 4, 4, 0, 0, 0, 0, 8, 8};
            b_le(&m, (uint64_t)-5, size[t]); /* -5 in the signed types */
        }
        snprintf(key, sizeof key, "a.%s", vkllm_gguf_type_name(t));
        b_str(&m, key);
        b_u32(&m, VKLLM_GGUF_ARRAY);
        b_u32(&m, t);
        b_u64(&m, 3);
        for (int i = 0; i < 3; i++) {
            if (t == VKLLM_GGUF_STRING)
                b_str(&m, i == 0 ? "a" : i == 1 ? "" : "ccc");
            else if (t == VKLLM_GGUF_FLOAT32) {
                float f = (float)i - 0.5f;
                b_raw(&m, &f, 4);
            } else if (t == VKLLM_GGUF_FLOAT64) {
                double d = (double)i * 0.25;
                b_raw(&m, &d, 8);
            } else if (t == VKLLM_GGUF_BOOL) {
                b_le(&m, (uint64_t)(i % 2), 1);
            } else {
                static const uint8_t size[] = {1, 1, 2, 2, 4, 4, 0, 0, 0, 0, 8, 8};
                b_le(&m, (uint64_t)(i + 1), size[t]);
            }
        }
    }
    /* [[1, 2], ["x"]] and an empty array */
    b_str(&m, "nested");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u64(&m, 2);
    b_u32(&m, VKLLM_GGUF_UINT8);
    b_u64(&m, 2);
    b_raw(&m, "\x01\x02", 2);
    b_u32(&m, VKLLM_GGUF_STRING);
    b_u64(&m, 1);
    b_str(&m, "x");
    b_str(&m, "empty");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_INT64);
    b_u64(&m, 0);
    return m;
}

static void check_all_types(const vkllm_gguf *g)
{
    struct vkllm_error err = {0};
    for (uint32_t t = 0; t < VKLLM_GGUF_TYPE_COUNT; t++) {
        if (t == VKLLM_GGUF_ARRAY) continue;
        char key[32];
        snprintf(key, sizeof key, "s.%s", vkllm_gguf_type_name(t));
        const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
        REQUIRE(kv, "%s", key);
        CHECK(kv->type == t && kv->arr_len == 1);
        bool is_signed = t == VKLLM_GGUF_INT8 || t == VKLLM_GGUF_INT16 || t == VKLLM_GGUF_INT32 ||
                         t == VKLLM_GGUF_INT64;
        if (t == VKLLM_GGUF_STRING) {
            struct vkllm_gguf_str s;
            CHECK(vkllm_gguf_get_str(g, key, &s, &err) == VKLLM_OK && str_is(s, "héllo"));
        } else if (t == VKLLM_GGUF_FLOAT32) {
            double d;
            CHECK(vkllm_gguf_get_float(g, key, &d, &err) == VKLLM_OK && d == (double)-3.14159274f);
            CHECK(vkllm_gguf_kv_int(kv) == -3);
        } else if (t == VKLLM_GGUF_FLOAT64) {
            CHECK(vkllm_gguf_kv_float(kv) == 3.141592653589793);
        } else if (t == VKLLM_GGUF_BOOL) {
            bool b = false;
            CHECK(vkllm_gguf_get_bool(g, key, &b, &err) == VKLLM_OK && b);
            CHECK(vkllm_gguf_kv_int(kv) == 1);
        } else if (is_signed) {
            uint64_t u = 99;
            CHECK(vkllm_gguf_kv_int(kv) == -5 && vkllm_gguf_kv_float(kv) == -5.0, "%s", key);
            CHECK(vkllm_gguf_get_uint(g, key, &u, &err) == VKLLM_E_FORMAT && u == 99);
            CHECK(strstr(err.msg, "is -5, expected a non-negative integer"), "%s", err.msg);
        } else {
            uint64_t u = 0;
            static const uint64_t want[] = {0xfb, 0, 0xfffb, 0, 0xfffffffb};
            uint64_t w = t == VKLLM_GGUF_UINT64 ? UINT64_MAX - 4 : want[t];
            CHECK(vkllm_gguf_get_uint(g, key, &u, &err) == VKLLM_OK && u == w, "%s", key);
        }

        snprintf(key, sizeof key, "a.%s", vkllm_gguf_type_name(t));
        const struct vkllm_gguf_kv *a;
        REQUIRE_OK(vkllm_gguf_get_arr(g, key, (enum vkllm_gguf_type)t, &a, &err), "%s", err.msg);
        CHECK(a->type == VKLLM_GGUF_ARRAY && a->arr_type == t && a->arr_len == 3);
        for (int i = 0; i < 3; i++) {
            if (t == VKLLM_GGUF_STRING) {
                CHECK(str_is(vkllm_gguf_arr_str(a, (uint64_t)i), i == 0   ? "a"
                                                                 : i == 1 ? ""
                                                                          : "ccc"));
            } else if (t == VKLLM_GGUF_FLOAT32) {
                CHECK(vkllm_gguf_arr_float(a, (uint64_t)i) == (double)i - 0.5);
            } else if (t == VKLLM_GGUF_FLOAT64) {
                CHECK(vkllm_gguf_arr_float(a, (uint64_t)i) == i * 0.25);
            } else {
                int want = t == VKLLM_GGUF_BOOL ? i % 2 : i + 1;
                CHECK(vkllm_gguf_arr_int(a, (uint64_t)i) == want, "%s[%d]", key, i);
                CHECK(vkllm_gguf_arr_float(a, (uint64_t)i) == want);
            }
        }
    }
    const struct vkllm_gguf_kv *n = vkllm_gguf_find_kv(g, "nested");
    REQUIRE(n);
    CHECK(n->type == VKLLM_GGUF_ARRAY && n->arr_type == VKLLM_GGUF_ARRAY && n->arr_len == 2);
    CHECK(n->data[0] == VKLLM_GGUF_UINT8 && n->data[12] == 1 && n->data[13] == 2);
    const struct vkllm_gguf_kv *e = vkllm_gguf_find_kv(g, "empty");
    REQUIRE(e);
    CHECK(e->arr_type == VKLLM_GGUF_INT64 && e->arr_len == 0);
}

static void test_round_trip(void)
{
    struct vkllm_error err = {0};
    struct img m = all_types_image();
    vkllm_gguf *src;
    seed("all types", &m, m.len);
    REQUIRE_OK(vkllm_gguf_parse(m.p, m.len, "all", &src, &err), "%s", err.msg);
    check_all_types(src);

    /* getters: absent keys leave err alone; wrong types say what was expected */
    struct vkllm_error untouched = {.code = 123, .msg = "keep"};
    uint64_t u = 77;
    double d;
    CHECK(vkllm_gguf_get_uint(src, "nope", &u, &untouched) == VKLLM_E_NOT_FOUND && u == 77);
    CHECK(untouched.code == 123 && strcmp(untouched.msg, "keep") == 0);
    CHECK(vkllm_gguf_get_uint(src, "s.string", &u, &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "all: key 's.string' has type string, expected an unsigned integer"),
          "%s", err.msg);
    CHECK(vkllm_gguf_get_float(src, "s.int32", &d, &err) == VKLLM_E_FORMAT);
    CHECK(vkllm_gguf_get_uint(src, "a.uint8", &u, &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "is an array of uint8"), "%s", err.msg);
    const struct vkllm_gguf_kv *a;
    CHECK(vkllm_gguf_get_arr(src, "a.uint8", VKLLM_GGUF_INT32, &a, &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "is an array of uint8, expected an array of int32"), "%s", err.msg);
    CHECK(vkllm_gguf_get_arr(src, "s.uint8", VKLLM_GGUF_TYPE_COUNT, &a, &err) == VKLLM_E_FORMAT);
    CHECK(strcmp(vkllm_gguf_type_name(VKLLM_GGUF_FLOAT64), "float64") == 0);
    CHECK(strcmp(vkllm_gguf_type_name((enum vkllm_gguf_type)99), "?") == 0);

    /* copy it all, add values through each setter and tensors of several types */
    vkllm_gguf_writer *w;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err));
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(src); i++)
        CHECK(vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(src, i)) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_uint32(w, "w.u32", 4000000000u) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_int32(w, "w.i32", -7) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_uint64(w, "w.u64", 1ull << 40) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_float32(w, "w.f32", 0.1f) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_bool(w, "w.bool", false) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_str(w, "w.str", "first") == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_str(w, "w.str", "second") == VKLLM_OK); /* replaces */
    const float fa[4] = {1.0f, -2.0f, 0.5f, 1e30f};
    const int32_t ia[3] = {-1, 0, INT32_MAX};
    const char *sa[3] = {"<unk>", "<s>", "\xe2\x96\x81the"};
    const char bin[] = {'a', 0, 'b'};
    const char *ba[1] = {bin};
    const uint64_t blen[1] = {3};
    CHECK(vkllm_gguf_writer_set_arr(w, "w.fa", VKLLM_GGUF_FLOAT32, fa, 4) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_arr(w, "w.ia", VKLLM_GGUF_INT32, ia, 3) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_arr_str(w, "w.sa", sa, NULL, 3) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_arr_str(w, "w.bin", ba, blen, 1) == VKLLM_OK);
    CHECK(vkllm_gguf_writer_set_arr_str(w, "w.none", NULL, NULL, 0) == VKLLM_OK);
    /* what the writer refuses */
    CHECK(vkllm_gguf_writer_set_arr(w, "x", VKLLM_GGUF_STRING, sa, 3) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_set_arr(w, "x", VKLLM_GGUF_ARRAY, sa, 3) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_set_uint32(w, "", 1) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_set_str(w, "general.alignment", "64") == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_set_uint32(w, "general.alignment", 48) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_set_alignment(w, 0) == VKLLM_E_INVALID);

    /* tensors: F32 [5, 3], F16 [8], Q8_0 [64, 2, 2], Q4_0 [32, 3], I32 [7] */
    float f32[15], row[128];
    uint16_t f16[8];
    uint8_t q8[4 * 34], q4[3 * 18];
    int32_t i32[7];
    for (int i = 0; i < 15; i++)
        f32[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 8; i++)
        f16[i] = f32_to_fp16((float)i - 3.5f);
    for (int i = 0; i < 128; i++)
        row[i] = sinf((float)i);
    quant_quantize_row(VKLLM_TYPE_Q8_0, row, q8, 128);
    quant_quantize_row(VKLLM_TYPE_Q4_0, row, q4, 96);
    for (int i = 0; i < 7; i++)
        i32[i] = -i;
    const struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[4];
        const void *data;
        uint64_t size;
    } ts[] = {
        {"t.f32", VKLLM_TYPE_F32, 2, {5, 3}, f32, sizeof f32},
        {"t.f16", VKLLM_TYPE_F16, 1, {8}, f16, sizeof f16},
        {"t.q8_0", VKLLM_TYPE_Q8_0, 3, {64, 2, 1}, q8, sizeof q8},
        {"t.q4_0", VKLLM_TYPE_Q4_0, 2, {32, 3}, q4, sizeof q4},
        {"t.i32", VKLLM_TYPE_I32, 4, {7, 1, 1, 1}, i32, sizeof i32},
    };
    for (size_t i = 0; i < 5; i++)
        CHECK(vkllm_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne,
                                           ts[i].data, ts[i].size) == VKLLM_OK,
              "%s", ts[i].name);
    const uint64_t ne[4] = {33, 1, 1, 1};
    char long_name[70];
    memset(long_name, 'n', 64);
    long_name[64] = 0;
    CHECK(vkllm_gguf_writer_add_tensor(w, "t.f32", 0, 1, ne, f32, 132) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_add_tensor(w, "x", 0, 1, ne, f32, 128) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_add_tensor(w, "x", VKLLM_TYPE_Q8_0, 1, ne, q8, 34) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_add_tensor(w, "x", 4, 1, ne, f32, 132) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_add_tensor(w, "x", 0, 5, ne, f32, 132) == VKLLM_E_INVALID);
    CHECK(vkllm_gguf_writer_add_tensor(w, long_name, 0, 1, ne, f32, 132) == VKLLM_E_INVALID);

    for (int pass = 0; pass < 2; pass++) {
        /* the second pass writes with a 64-byte alignment */
        if (pass == 1) CHECK(vkllm_gguf_writer_set_alignment(w, 64) == VKLLM_OK);
        const char *path = pass ? GEN("roundtrip64.gguf") : GEN("roundtrip.gguf");
        REQUIRE_OK(vkllm_gguf_writer_write(w, path, &err), "%s", err.msg);
        vkllm_gguf *g;
        REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
        check_all_types(g);
        CHECK(vkllm_gguf_version(g) == 3);
        CHECK(vkllm_gguf_alignment(g) == (pass ? 64u : 32u));
        CHECK(vkllm_gguf_kv_count(g) == vkllm_gguf_kv_count(src) + 11 + pass);
        CHECK(!vkllm_gguf_find_kv(g, "general.alignment") == !pass);
        /* keys keep the order they were first set in */
        CHECK(str_is(vkllm_gguf_kv_at(g, 0)->key, "s.uint8"));
        CHECK(str_is(vkllm_gguf_kv_at(g, vkllm_gguf_kv_count(src))->key, "w.u32"));
        uint64_t u64;
        double f;
        struct vkllm_gguf_str s;
        bool b = true;
        CHECK(vkllm_gguf_get_uint(g, "w.u32", &u64, &err) == 0 && u64 == 4000000000u);
        CHECK(vkllm_gguf_kv_int(vkllm_gguf_find_kv(g, "w.i32")) == -7);
        CHECK(vkllm_gguf_get_uint(g, "w.u64", &u64, &err) == 0 && u64 == 1ull << 40);
        CHECK(vkllm_gguf_get_float(g, "w.f32", &f, &err) == 0 && f == (double)0.1f);
        CHECK(vkllm_gguf_get_bool(g, "w.bool", &b, &err) == 0 && !b);
        CHECK(vkllm_gguf_get_str(g, "w.str", &s, &err) == 0 && str_is(s, "second"));
        REQUIRE_OK(vkllm_gguf_get_arr(g, "w.fa", VKLLM_GGUF_FLOAT32, &a, &err));
        for (int i = 0; i < 4; i++)
            CHECK(vkllm_gguf_arr_float(a, (uint64_t)i) == fa[i]);
        REQUIRE_OK(vkllm_gguf_get_arr(g, "w.ia", VKLLM_GGUF_INT32, &a, &err));
        for (int i = 0; i < 3; i++)
            CHECK(vkllm_gguf_arr_int(a, (uint64_t)i) == ia[i]);
        REQUIRE_OK(vkllm_gguf_get_arr(g, "w.sa", VKLLM_GGUF_STRING, &a, &err));
        for (int i = 0; i < 3; i++)
            CHECK(str_is(vkllm_gguf_arr_str(a, (uint64_t)i), sa[i]));
        REQUIRE_OK(vkllm_gguf_get_arr(g, "w.bin", VKLLM_GGUF_STRING, &a, &err));
        s = vkllm_gguf_arr_str(a, 0);
        CHECK(s.len == 3 && memcmp(s.ptr, bin, 3) == 0);
        REQUIRE_OK(vkllm_gguf_get_arr(g, "w.none", VKLLM_GGUF_STRING, &a, &err));
        CHECK(a->arr_len == 0);

        CHECK(vkllm_gguf_tensor_count(g) == 5);
        uint64_t data_start = vkllm_gguf_tensor_at(g, 0)->offset, next = data_start;
        for (size_t i = 0; i < 5; i++) {
            const struct vkllm_gguf_tensor *t = vkllm_gguf_find_tensor(g, ts[i].name);
            REQUIRE(t, "%s", ts[i].name);
            CHECK(t == vkllm_gguf_tensor_at(g, i));
            CHECK(t->type == ts[i].type && t->n_dims == ts[i].n_dims && t->size == ts[i].size);
            for (uint32_t k = 0; k < 4; k++)
                CHECK(t->ne[k] == (k < ts[i].n_dims ? ts[i].ne[k] : 1));
            uint8_t got[256];
            REQUIRE(t->size <= sizeof got);
            CHECK(vkllm_gguf_read(g, t, 0, got, t->size, &err) == VKLLM_OK, "%s", err.msg);
            CHECK(memcmp(got, ts[i].data, ts[i].size) == 0, "%s data", ts[i].name);
            /* packed in order, each at the next aligned offset, as llama.cpp requires */
            CHECK(t->offset == next, "%s at %llu, expected %llu", ts[i].name,
                  (unsigned long long)t->offset, (unsigned long long)next);
            uint64_t al = vkllm_gguf_alignment(g);
            next = t->offset + (t->size + al - 1) / al * al;
        }
        CHECK(vkllm_gguf_file_size(g) == next); /* the last tensor is padded too */
        vkllm_gguf_close(g);
    }
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(src);
    free(m.p);
    vkllm_gguf_writer_destroy(NULL);
}

/* Writing to a full disk or a missing directory is a clean error. */
static void test_write_errors(void)
{
    struct vkllm_error err = {0};
    vkllm_gguf_writer *w;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err));
    static float big[1 << 16];
    const uint64_t ne[4] = {1 << 16, 1, 1, 1};
    CHECK(vkllm_gguf_writer_add_tensor(w, "big", VKLLM_TYPE_F32, 1, ne, big, sizeof big) == 0);
    CHECK(vkllm_gguf_writer_write(w, GEN("no/such/dir/x.gguf"), &err) == VKLLM_E_IO);
    CHECK(strstr(err.msg, "no/such/dir/x.gguf: No such file or directory"), "%s", err.msg);
    if (access("/dev/full", W_OK) == 0) {
        CHECK(vkllm_gguf_writer_write(w, "/dev/full", &err) == VKLLM_E_IO);
        CHECK(strcmp(err.msg, "/dev/full: write failed: No space left on device") == 0, "%s",
              err.msg);
        struct stat st;
        CHECK(stat("/dev/full", &st) == 0); /* still there */
    }
    vkllm_gguf_writer_destroy(w);
}

/* ============================== stories260K ============================== */

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_stories(void)
{
    const char *path = VKLLM_TEST_DATA "/stories260K.gguf";
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    CHECK(vkllm_gguf_version(g) == 3);
    CHECK(vkllm_gguf_alignment(g) == 32);
    CHECK(vkllm_gguf_tensor_count(g) == 48);
    CHECK(vkllm_gguf_kv_count(g) == 19);
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        CHECK(t->type == VKLLM_TYPE_F32);
        CHECK(t->offset % 32 == 0 && t->offset + t->size <= vkllm_gguf_file_size(g));
    }
    uint64_t u;
    CHECK(vkllm_gguf_get_uint(g, "llama.context_length", &u, &err) == VKLLM_OK && u == 2048);
    CHECK(vkllm_gguf_get_uint(g, "llama.embedding_length", &u, &err) == VKLLM_OK && u == 64);
    CHECK(vkllm_gguf_get_uint(g, "llama.attention.head_count_kv", &u, &err) == 0 && u == 4);
    struct vkllm_gguf_str s;
    CHECK(vkllm_gguf_get_str(g, "general.architecture", &s, &err) == 0 && str_is(s, "llama"));
    double eps;
    CHECK(vkllm_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err) == 0);
    CHECK(fabs(eps - 1e-5) < 1e-12);
    const struct vkllm_gguf_kv *tok;
    REQUIRE_OK(vkllm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tok, &err));
    CHECK(tok->arr_len == 512);
    CHECK(str_is(vkllm_gguf_arr_str(tok, 0), "<unk>"));
    CHECK(str_is(vkllm_gguf_arr_str(tok, 1), "<s>"));
    CHECK(str_is(vkllm_gguf_arr_str(tok, 3), "<0x00>"));
    const struct vkllm_gguf_kv *tt;
    REQUIRE_OK(vkllm_gguf_get_arr(g, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, &tt, &err));
    CHECK(vkllm_gguf_arr_int(tt, 0) == 2 && vkllm_gguf_arr_int(tt, 1) == 3 &&
          vkllm_gguf_arr_int(tt, 3) == 6);
    const struct vkllm_gguf_tensor *e = vkllm_gguf_find_tensor(g, "token_embd.weight");
    REQUIRE(e);
    CHECK(e->n_dims == 2 && e->ne[0] == 64 && e->ne[1] == 512 && e->size == 64 * 512 * 4);
    CHECK(vkllm_gguf_find_tensor(g, "blk.4.ffn_down.weight")->ne[0] == 172);

    /* a copy through the writer is byte-identical: same layout as llama.cpp's */
    vkllm_gguf_writer *w;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err));
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        CHECK(vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, i)) == VKLLM_OK);
    struct gguf_copy copies[48];
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g) && i < 48; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        copies[i] = (struct gguf_copy){g, t, t->size};
        CHECK(gguf_copy_add(w, name, t->n_dims, t->ne, &copies[i]) == VKLLM_OK);
    }
    REQUIRE_OK(vkllm_gguf_writer_write(w, GEN("stories-copy.gguf"), &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf *c;
    REQUIRE_OK(vkllm_gguf_open(GEN("stories-copy.gguf"), &c, &err), "%s", err.msg);
    CHECK(vkllm_gguf_file_size(c) == vkllm_gguf_file_size(g));
    CHECK(same_file(path, GEN("stories-copy.gguf")), "copy of stories260K differs");
    vkllm_gguf_close(c);
    vkllm_gguf_close(g);
}

/* ============================== A file that shrinks while open ============================== */

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    REQUIRE(f, "%s", from);
    REQUIRE(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    REQUIRE(n > 0 && fseek(f, 0, SEEK_SET) == 0);
    char *p = malloc((size_t)n);
    REQUIRE(p && fread(p, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    write_file(to, p, (size_t)n);
    free(p);
}

/* Regression: the file was memory-mapped, and a model file truncated while it
 * was open (`cp other.gguf model.gguf` during a load) killed the process with
 * SIGBUS at the first read past its new end. Now a read past it is an error
 * that says what happened, and what is still there reads as before. */
static void test_shrink_read(void)
{
    const char *path = GEN("shrink.gguf");
    copy_file(VKLLM_TEST_DATA "/stories260K.gguf", path);
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    const uint64_t size = vkllm_gguf_file_size(g), half = size / 2;
    REQUIRE(truncate(path, (off_t)half) == 0);

    char want[600];
    snprintf(want, sizeof want,
             "%s: the file changed while being read (it is now %llu bytes; expected %llu)", path,
             (unsigned long long)half, (unsigned long long)size);
    int before = 0, after = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        uint8_t *buf = malloc(t->size);
        REQUIRE(buf);
        err = (struct vkllm_error){0};
        int rc = vkllm_gguf_read(g, t, 0, buf, t->size, &err);
        if (t->offset + t->size <= half) {
            before++;
            CHECK(rc == VKLLM_OK, "tensor %llu: %s", (unsigned long long)i, err.msg);
        } else {
            after++;
            CHECK(rc == VKLLM_E_IO && err.code == VKLLM_E_IO && strcmp(err.msg, want) == 0,
                  "tensor %llu: %d '%s'", (unsigned long long)i, rc, err.msg);
            /* the part before the end is still there */
            if (t->offset < half)
                CHECK(vkllm_gguf_read(g, t, 0, buf, half - t->offset, &err) == VKLLM_OK, "%s",
                      err.msg);
        }
        free(buf);
    }
    CHECK(before > 0 && after > 0, "%d tensors before the cut, %d after", before, after);
    /* the metadata was read at open: still there */
    const struct vkllm_gguf_kv *tok = vkllm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(tok && str_is(vkllm_gguf_arr_str(tok, 1), "<s>"));
    vkllm_gguf_close(g);

    /* opening the shrunk file is a format error, as for any truncated file */
    CHECK(vkllm_gguf_open(path, &g, &err) == VKLLM_E_FORMAT && !g);
    CHECK(strstr(err.msg, "run past the end of the file"), "%s", err.msg);
    unlink(path);
}

/* vkllm_gguf_open reads a header in steps (1 MiB, then doubling): one of
 * several MiB, which runs past the first read inside a string and inside a
 * string array, reads back whole, and cut short it fails exactly as the same
 * bytes parsed in memory do. */
static void test_big_header(void)
{
    const size_t big = 3u << 20, n_toks = 150000;
    char *str = malloc(big + 1);
    char **toks = malloc(n_toks * sizeof *toks);
    REQUIRE(str && toks);
    memset(str, 'a', big);
    memcpy(str + big - 3, "end", 4);
    for (size_t i = 0; i < n_toks; i++) {
        char tok[16];
        snprintf(tok, sizeof tok, "tok%zu", i);
        REQUIRE(toks[i] = strdup(tok));
    }
    struct vkllm_error err = {0};
    vkllm_gguf_writer *w;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err));
    const uint64_t ne[4] = {4, 1, 1, 1};
    const float data[4] = {1, 2, 3, 4};
    CHECK(vkllm_gguf_writer_set_arr_str(w, "toks", (const char *const *)toks, NULL, n_toks) == 0);
    CHECK(vkllm_gguf_writer_set_str(w, "big", str) == 0);
    CHECK(vkllm_gguf_writer_set_uint32(w, "after", 7) == 0);
    CHECK(vkllm_gguf_writer_add_tensor(w, "t", VKLLM_TYPE_F32, 1, ne, data, sizeof data) == 0);
    const char *path = GEN("big-header.gguf");
    REQUIRE_OK(vkllm_gguf_writer_write(w, path, &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);

    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    const struct vkllm_gguf_kv *a = vkllm_gguf_find_kv(g, "toks");
    struct vkllm_gguf_str v;
    uint64_t u;
    float got[4];
    CHECK(a && a->arr_len == n_toks && str_is(vkllm_gguf_arr_str(a, n_toks - 1), "tok149999"));
    CHECK(vkllm_gguf_get_str(g, "big", &v, &err) == 0 && v.len == big &&
          memcmp(v.ptr + big - 4, "aend", 4) == 0);
    CHECK(vkllm_gguf_get_uint(g, "after", &u, &err) == 0 && u == 7);
    const struct vkllm_gguf_tensor *t = vkllm_gguf_find_tensor(g, "t");
    CHECK(t && vkllm_gguf_read(g, t, 0, got, sizeof got, &err) == 0 &&
          memcmp(got, data, sizeof got) == 0);
    const uint64_t size = vkllm_gguf_file_size(g);
    vkllm_gguf_close(g);

    /* cut where the array's count no longer fits, in its elements past the
     * first read, in the string and in the tensor infos */
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    struct img m = {0};
    m.p = malloc(size);
    m.len = m.cap = size;
    REQUIRE(m.p && fread(m.p, 1, size, f) == size);
    fclose(f);
    const size_t cuts[] = {700000, 2000000, (3u << 20) + 77, size - 40};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct vkllm_error in_memory = {0};
        write_file(GEN("big-cut.gguf"), m.p, cuts[i]);
        CHECK(vkllm_gguf_open(GEN("big-cut.gguf"), &g, &err) == VKLLM_E_FORMAT && !g);
        CHECK(parse_copy(&m, cuts[i], &g, &in_memory) == VKLLM_E_FORMAT);
        const char *open_msg = strchr(err.msg, ':'), *mem_msg = strchr(in_memory.msg, ':');
        CHECK(open_msg && mem_msg && strcmp(open_msg, mem_msg) == 0, "cut at %zu: '%s' vs '%s'",
              cuts[i], err.msg, in_memory.msg);
    }
    unlink(GEN("big-cut.gguf"));
    unlink(path);
    free(m.p);
    for (size_t i = 0; i < n_toks; i++)
        free(toks[i]);
    free(toks);
    free(str);
}

/* Truncates the quantizer's input the first time a tensor after the first starts. */
static bool shrink_on_progress(const struct vkllm_quantize_progress *p, void *user)
{
    const char *path = user;
    struct stat st;
    if (p->tensor >= 1 && stat(path, &st) == 0 && st.st_size > 4096)
        REQUIRE(truncate(path, st.st_size / 2) == 0);
    return true;
}

/* Whether DIR holds a file whose name starts with PREFIX. */
static bool dir_has(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    REQUIRE(d, "%s", dir);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

/* The same during `vkllm quantize`, from the converting threads as well:
 * the run fails with the message and leaves neither OUT nor its temporary. */
static void test_shrink_quantize(void)
{
    const char *in = GEN("shrink-in.gguf"), *out = GEN("shrink-out.gguf");
    const char *types[] = {"Q8_0", "F32"}; /* converted, and copied as they are */
    for (int k = 0; k < 2; k++) {
        copy_file(VKLLM_TEST_DATA "/stories260K.gguf", in);
        unlink(out);
        struct vkllm_quantize_params qp = {
            .type = types[k], .n_threads = 4, .progress = shrink_on_progress, .user = (void *)in};
        struct vkllm_error err = {0};
        int rc = vkllm_quantize(in, out, &qp, &err);
        CHECK(rc == VKLLM_E_IO, "%s: %d '%s'", types[k], rc, err.msg);
        char want[600];
        snprintf(want, sizeof want, "%s: the file changed while being read (it is now ", in);
        CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s: '%s'", types[k], err.msg);
        CHECK(access(out, F_OK) != 0, "%s: %s was written", types[k], out);
        CHECK(!dir_has(VKLLM_TEST_GEN, ".vkllm.tmp-"), "%s: a temporary file is left", types[k]);
    }
    unlink(in);
}

/* ============================== gen_model ============================== */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t file_hash(const char *path, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    *size = 0;
    for (int c; f && (c = fgetc(f)) != EOF; ++*size)
        h = (h ^ (uint8_t)c) * 0x100000001b3u;
    if (f) fclose(f);
    return h;
}

static void check_gen_model(const char *gen)
{
    char cmd[2048];
    const char *args = "--n-vocab 300 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 "
                       "--n-ff 96 --n-ctx 256";
    const char *types[] = {"f32", "f16", "q8_0", "q4_0"};
    const uint32_t ids[] = {VKLLM_TYPE_F32, VKLLM_TYPE_F16, VKLLM_TYPE_Q8_0, VKLLM_TYPE_Q4_0};
    const uint64_t ftypes[] = {0, 1, 7, 2};
    for (int k = 0; k < 4; k++) {
        snprintf(cmd, sizeof cmd, "%s -o %s --type %s --seed 5 %s", gen, GEN("gen-a.gguf"),
                 types[k], args);
        REQUIRE_OK(run(cmd), "%s", cmd);
        snprintf(cmd, sizeof cmd, "%s -o %s --type %s --seed 5 %s", gen, GEN("gen-b.gguf"),
                 types[k], args);
        REQUIRE_OK(run(cmd), "%s", cmd);
        CHECK(same_file(GEN("gen-a.gguf"), GEN("gen-b.gguf")), "%s: same seed, different files",
              types[k]);
        snprintf(cmd, sizeof cmd, "%s -o %s --type %s --seed 6 %s", gen, GEN("gen-b.gguf"),
                 types[k], args);
        REQUIRE_OK(run(cmd), "%s", cmd);
        CHECK(!same_file(GEN("gen-a.gguf"), GEN("gen-b.gguf")), "seeds 5 and 6 gave one file");

        struct vkllm_error err = {0};
        vkllm_gguf *g;
        REQUIRE_OK(vkllm_gguf_open(GEN("gen-a.gguf"), &g, &err), "%s", err.msg);
        uint64_t u;
        CHECK(vkllm_gguf_get_uint(g, "general.file_type", &u, &err) == 0 && u == ftypes[k]);
        CHECK(vkllm_gguf_get_uint(g, "llama.attention.head_count_kv", &u, &err) == 0 && u == 2);
        CHECK(vkllm_gguf_get_uint(g, "llama.rope.dimension_count", &u, &err) == 0 && u == 8);
        CHECK(vkllm_gguf_get_uint(g, "llama.context_length", &u, &err) == 0 && u == 256);
        const struct vkllm_gguf_kv *tok;
        REQUIRE_OK(vkllm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tok, &err));
        CHECK(tok->arr_len == 300);
        CHECK(str_is(vkllm_gguf_arr_str(tok, 1), "<s>") &&
              str_is(vkllm_gguf_arr_str(tok, 13), "<0x0A>"));
        CHECK(vkllm_gguf_tensor_count(g) == 3 + 2 * 9);
        const struct {
            const char *name;
            uint64_t ne0, ne1;
            bool norm;
        } want[] = {
            {"token_embd.weight", 64, 300, false},  {"output_norm.weight", 64, 1, true},
            {"output.weight", 64, 300, false},      {"blk.1.attn_norm.weight", 64, 1, true},
            {"blk.1.attn_q.weight", 64, 64, false}, {"blk.1.attn_k.weight", 64, 16, false},
            {"blk.1.attn_v.weight", 64, 16, false}, {"blk.1.attn_output.weight", 64, 64, false},
            {"blk.0.ffn_norm.weight", 64, 1, true}, {"blk.0.ffn_gate.weight", 64, 96, false},
            {"blk.0.ffn_up.weight", 64, 96, false}, {"blk.0.ffn_down.weight", 96, 64, false},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const struct vkllm_gguf_tensor *t = vkllm_gguf_find_tensor(g, want[i].name);
            REQUIRE(t, "%s", want[i].name);
            CHECK(t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1, "%s", want[i].name);
            CHECK(t->n_dims == (want[i].norm ? 1u : 2u));
            CHECK(t->type == (want[i].norm ? VKLLM_TYPE_F32 : ids[k]), "%s: type %u", want[i].name,
                  t->type);
        }
        vkllm_gguf_close(g);
    }

    /* --tied drops output.weight; a row length that is not a multiple of 32 stays F16 */
    snprintf(cmd, sizeof cmd,
             "%s -o %s --type q4_0 --tied --n-vocab 270 --n-embd 32 --n-head 4 "
             "--n-layer 1 --n-ff 40",
             gen, GEN("gen-c.gguf"));
    REQUIRE_OK(run(cmd), "%s", cmd);
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(GEN("gen-c.gguf"), &g, &err), "%s", err.msg);
    CHECK(!vkllm_gguf_find_tensor(g, "output.weight"));
    CHECK(vkllm_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type == VKLLM_TYPE_F16);
    CHECK(vkllm_gguf_find_tensor(g, "blk.0.ffn_up.weight")->type == VKLLM_TYPE_Q4_0);
    vkllm_gguf_close(g);

    /* --from stories260K gives what `llama-quantize --pure` writes, byte for byte:
     * FNV-1a 64 hashes of its output (llama.cpp v0.5.0 via node-llama-cpp 3.22.1) */
    const struct {
        const char *type;
        uint64_t size, hash;
    } ref[] = {{"q4_0", 260640, 0xa25a9caddd9951f2u},
               {"q8_0", 379168, 0x827680776e7815eeu},
               {"f16", 601248, 0x6941a2d319243020u}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s -o %s --type %s --from %s", gen, GEN("gen-s.gguf"),
                 ref[i].type, VKLLM_TEST_DATA "/stories260K.gguf");
        REQUIRE_OK(run(cmd), "%s", cmd);
        uint64_t size, hash = file_hash(GEN("gen-s.gguf"), &size);
        CHECK(size == ref[i].size && hash == ref[i].hash,
              "%s: %llu bytes, hash %016llx: not llama-quantize's file", ref[i].type,
              (unsigned long long)size, (unsigned long long)hash);
    }

    /* --from stories260K: every key kept, ffn_down (row 172) falls back to F16 */
    snprintf(cmd, sizeof cmd, "%s -o %s --type q8_0 --from %s", gen, GEN("gen-s.gguf"),
             VKLLM_TEST_DATA "/stories260K.gguf");
    REQUIRE_OK(run(cmd), "%s", cmd);
    vkllm_gguf *s;
    REQUIRE_OK(vkllm_gguf_open(VKLLM_TEST_DATA "/stories260K.gguf", &s, &err));
    REQUIRE_OK(vkllm_gguf_open(GEN("gen-s.gguf"), &g, &err), "%s", err.msg);
    CHECK(vkllm_gguf_kv_count(g) == vkllm_gguf_kv_count(s) + 2); /* file and quantization version */
    uint64_t u;
    CHECK(vkllm_gguf_get_uint(g, "general.file_type", &u, &err) == 0 && u == 7);
    CHECK(vkllm_gguf_tensor_count(g) == 48);
    CHECK(vkllm_gguf_find_tensor(g, "blk.2.ffn_down.weight")->type == VKLLM_TYPE_F16);
    CHECK(vkllm_gguf_find_tensor(g, "blk.2.ffn_up.weight")->type == VKLLM_TYPE_Q8_0);
    CHECK(vkllm_gguf_find_tensor(g, "blk.2.ffn_norm.weight")->type == VKLLM_TYPE_F32);
    /* the quantized rows are ggml's: compare one with quant.c's quantizer */
    const struct vkllm_gguf_tensor *src = vkllm_gguf_find_tensor(s, "blk.2.attn_q.weight");
    const struct vkllm_gguf_tensor *dst = vkllm_gguf_find_tensor(g, "blk.2.attn_q.weight");
    uint8_t q[2 * 34], got[2 * 34];
    float row[64];
    REQUIRE_OK(vkllm_gguf_read(s, src, 64 * 4 * 3, row, sizeof row, &err), "%s", err.msg);
    quant_quantize_row(VKLLM_TYPE_Q8_0, row, q, 64);
    CHECK(dst->type == VKLLM_TYPE_Q8_0 &&
          vkllm_gguf_read(g, dst, 3 * sizeof q, got, sizeof got, &err) == VKLLM_OK &&
          memcmp(got, q, sizeof q) == 0);
    vkllm_gguf_close(g);
    vkllm_gguf_close(s);

    /* bad arguments: an error line and exit status 1 */
    const char *bad[] = {"--n-embd 60 --n-head 8",
                         "--n-head 8 --n-head-kv 3",
                         "--type mxfp4",
                         "--n-vocab 100",
                         "--bogus",
                         "--n-embd 12 --n-head 4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s -o %s %s 2>/dev/null", gen, GEN("gen-bad.gguf"), bad[i]);
        CHECK(run(cmd) == 1, "%s", cmd);
    }
    snprintf(cmd, sizeof cmd, "%s 2>/dev/null", gen);
    CHECK(run(cmd) == 1, "no -o");
}

/* ============================== Array accessors ============================== */

/* Regression: vkllm_gguf_arr_* read element I without checking it against
 * arr_len (or a string array's offsets table). Each array here is followed by
 * bytes that are not zero, and the last one ends the image, which is
 * malloc'ed to its exact size: an unchecked index reads a wrong value, or past
 * the buffer (ASan). */
static void test_arr_index(void)
{
    struct img m = {0};
    b_header(&m, 3, 0, 4);
    b_str(&m, "a.int");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_INT32);
    b_u64(&m, 2);
    b_u32(&m, (uint32_t)-5);
    b_u32(&m, 6);
    b_str(&m, "a.float");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_FLOAT32);
    b_u64(&m, 1);
    b_raw(&m, &(float){2.5f}, 4);
    b_str(&m, "s.u32");
    b_u32(&m, VKLLM_GGUF_UINT32);
    b_u32(&m, 9);
    b_str(&m, "a.str");
    b_u32(&m, VKLLM_GGUF_ARRAY);
    b_u32(&m, VKLLM_GGUF_STRING);
    b_u64(&m, 2);
    b_str(&m, "x");
    b_str(&m, "yz");

    uint8_t *copy = malloc(m.len);
    REQUIRE(copy);
    memcpy(copy, m.p, m.len);
    struct vkllm_error err;
    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_parse(copy, m.len, "arrays", &g, &err), "%s", err.msg);
    const struct vkllm_gguf_kv *ai = vkllm_gguf_find_kv(g, "a.int"),
                               *af = vkllm_gguf_find_kv(g, "a.float"),
                               *su = vkllm_gguf_find_kv(g, "s.u32"),
                               *as = vkllm_gguf_find_kv(g, "a.str");
    REQUIRE(ai && af && su && as);
    /* in range: the values */
    CHECK(vkllm_gguf_arr_int(ai, 0) == -5 && vkllm_gguf_arr_int(ai, 1) == 6);
    CHECK(vkllm_gguf_arr_float(ai, 1) == 6.0 && vkllm_gguf_arr_float(af, 0) == 2.5);
    CHECK(vkllm_gguf_arr_int(af, 0) == 2);
    CHECK(str_is(vkllm_gguf_arr_str(as, 0), "x") && str_is(vkllm_gguf_arr_str(as, 1), "yz"));
    /* out of range, at the end, far past it and at the largest index: 0, 0.0, "" */
    const uint64_t bad[] = {2, 3, 1000, UINT64_MAX / 4 + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(vkllm_gguf_arr_int(ai, bad[i]) == 0, "a.int[%llu]", (unsigned long long)bad[i]);
        CHECK(vkllm_gguf_arr_float(ai, bad[i]) == 0.0, "a.int[%llu]", (unsigned long long)bad[i]);
        CHECK(vkllm_gguf_arr_float(af, bad[i] - 1) == 0.0, "a.float[%llu]",
              (unsigned long long)(bad[i] - 1));
        struct vkllm_gguf_str s = vkllm_gguf_arr_str(as, bad[i]);
        CHECK(s.len == 0 && s.ptr && !*s.ptr, "a.str[%llu]", (unsigned long long)bad[i]);
    }
    /* the wrong kind: strings as numbers, numbers as strings, a scalar as an array */
    CHECK(vkllm_gguf_arr_int(as, 0) == 0 && vkllm_gguf_arr_float(as, 1) == 0.0);
    CHECK(vkllm_gguf_arr_str(ai, 0).len == 0 && vkllm_gguf_arr_str(af, 0).len == 0);
    CHECK(vkllm_gguf_arr_int(su, 0) == 0 && vkllm_gguf_arr_float(su, 0) == 0.0);
    CHECK(vkllm_gguf_arr_str(su, 0).len == 0);
    vkllm_gguf_close(g);
    free(copy);
    free(m.p);
}

/* ============================== Hashing ============================== */

/* SipHash-1-3 under the zero key, as CPython computes hash(bytes(range(N)))
 * when PYTHONHASHSEED=0 (its secret is then all zeros); the lengths cover an
 * empty tail, a partial one and several whole words. */
static void test_hash(void)
{
    static const struct {
        size_t n;
        uint64_t h;
    } known[] = {
        {1, 0x68a914128e01e473u},  {7, 0x2f098ab0c751325au},  {8, 0xead411e67ebe2eeau},
        {9, 0x75927f9d95124362u},  {15, 0xf30eb725bb91c9eau}, {16, 0x8972188433a5c5b7u},
        {17, 0x4883c49a2c009c1du}, {63, 0x385d3e39e5f37359u},
    };
    uint8_t bytes[64], zero[16] = {0};
    for (int i = 0; i < 64; i++)
        bytes[i] = (uint8_t)i;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        struct hash_state s;
        hash_begin_keyed(&s, zero);
        hash_add(&s, bytes, known[k].n);
        CHECK(hash_end(&s) == known[k].h, "SipHash-1-3 of %zu bytes", known[k].n);
        /* in pieces, cut anywhere: the same hash */
        for (size_t cut = 0; cut <= known[k].n; cut += 3) {
            hash_begin_keyed(&s, zero);
            hash_add(&s, bytes, cut);
            hash_add(&s, bytes + cut, 0);
            hash_add(&s, bytes + cut, known[k].n - cut);
            CHECK(hash_end(&s) == known[k].h, "%zu bytes cut at %zu", known[k].n, cut);
        }
    }
    /* the process's key is not the zero key, and stays the same */
    CHECK(hash_bytes(bytes, 16) != 0x8972188433a5c5b7u);
    CHECK(hash_bytes(bytes, 16) == hash_bytes(bytes, 16));
}

/* The writer's name index across several growths: a key set again keeps its
 * place, a duplicate tensor name is refused however many came before. */
static void test_writer_index(void)
{
    struct vkllm_error err = {0};
    vkllm_gguf_writer *w;
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err));
    enum { N = 1000 };
    static float one[1];
    const uint64_t ne[4] = {1, 1, 1, 1};
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k.%d", i);
        REQUIRE_OK(vkllm_gguf_writer_set_uint32(w, name, (uint32_t)i));
        snprintf(name, sizeof name, "t.%d", i);
        REQUIRE_OK(vkllm_gguf_writer_add_tensor(w, name, VKLLM_TYPE_F32, 1, ne, one, 4));
    }
    CHECK(vkllm_gguf_writer_set_uint32(w, "k.500", 7) == VKLLM_OK);
    for (int i = 0; i < N; i += 99) {
        snprintf(name, sizeof name, "t.%d", i);
        CHECK(vkllm_gguf_writer_add_tensor(w, name, VKLLM_TYPE_F32, 1, ne, one, 4) ==
                  VKLLM_E_INVALID,
              "%s added twice", name);
    }
    REQUIRE_OK(vkllm_gguf_writer_write(w, GEN("index.gguf"), &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);

    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(GEN("index.gguf"), &g, &err), "%s", err.msg);
    CHECK(vkllm_gguf_kv_count(g) == N && vkllm_gguf_tensor_count(g) == N);
    const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(g, 500);
    CHECK(kv && str_is(kv->key, "k.500") && vkllm_gguf_kv_int(kv) == 7);
    const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, N - 1);
    CHECK(t && str_is(t->name, "t.999"));
    vkllm_gguf_close(g);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--gen-model") == 0) {
        check_gen_model(argv[2]);
        return TEST_REPORT();
    }
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) seed_dir = argv[2];
    test_valid_base();
    test_truncation();
    test_header_errors();
    test_kv_errors();
    test_tensor_errors();
    test_open_errors();
    test_printable();
    test_round_trip();
    test_write_errors();
    test_stories();
    test_big_header();
    test_shrink_read();
    test_shrink_quantize();
    test_arr_index();
    test_hash();
    test_writer_index();
    return TEST_REPORT();
}
