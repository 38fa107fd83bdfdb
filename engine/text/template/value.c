/* value.c: the arena, values with Python's semantics (truth, equality,
 * ordering), and their printing: str() and repr() as Python writes them, and
 * json.dumps(ensure_ascii=False) for tojson, byte for byte. */
#include "tmpl.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Arena ============================== */

struct tchunk {
    struct tchunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN (64 * 1024)
#define NEST_MAX  500 /* values nested deeper than this are not printed or compared */

_Noreturn void tmpl_fail(struct tstate *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    st->code = code;
    longjmp(st->jmp, 1);
}

void *tmpl_alloc(struct tstate *st, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (n > st->limit || st->used > st->limit - n)
        tmpl_fail(st, VKLLM_E_INVALID, "template needs more than %zu MiB of memory",
                  st->limit >> 20);
    struct tchunk *c = st->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
        c = malloc(sizeof *c + size);
        if (!c) tmpl_fail(st, VKLLM_E_NOMEM, "out of memory");
        c->next = st->chunks;
        c->size = size;
        c->used = 0;
        st->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    st->used += n;
    memset(p, 0, n);
    return p;
}

void *tmpl_realloc(struct tstate *st, void *p, size_t old, size_t new_size)
{
    size_t o = (old + 15) & ~(size_t)15, nn = (new_size + 15) & ~(size_t)15;
    struct tchunk *c = st->chunks;
    /* the newest block of the newest chunk grows where it is */
    if (p && c && (unsigned char *)p + o == c->data + c->used && nn >= o &&
        c->size - (c->used - o) >= nn) {
        if (nn - o > st->limit || st->used > st->limit - (nn - o))
            tmpl_fail(st, VKLLM_E_INVALID, "template needs more than %zu MiB of memory",
                      st->limit >> 20);
        memset((unsigned char *)p + o, 0, nn - o);
        c->used += nn - o;
        st->used += nn - o;
        return p;
    }
    void *q = tmpl_alloc(st, new_size);
    if (old) memcpy(q, p, old < new_size ? old : new_size);
    return q;
}

char *tmpl_strdup(struct tstate *st, const char *s, size_t n)
{
    if (n == SIZE_MAX) tmpl_fail(st, VKLLM_E_INVALID, "string too long");
    char *p = tmpl_alloc(st, n + 1);
    if (n) memcpy(p, s, n);
    return p;
}

const char *tmpl_msg_text(char *buf, size_t size, const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < size; i++) {
        if (p[i]) {
            buf[k++] = p[i];
        } else {
            memcpy(buf + k, "\\x00", 4);
            k += 4;
        }
    }
    buf[k] = 0;
    return buf;
}

/* 2^18 units: about a millisecond between two calls of the stop function */
#define WORK_POLL_EVERY (1u << 18)

void tmpl_work_poll(struct tstate *st)
{
    if (!st->work_limit) { /* parsing: no limit */
        st->work_poll = UINT64_MAX;
        return;
    }
    if (st->work > st->work_limit)
        tmpl_fail(st, VKLLM_E_INVALID, "template exceeded %llu units of work",
                  (unsigned long long)st->work_limit);
    if (st->stop && st->stop(st->stop_user)) tmpl_fail(st, VKLLM_E_IO, "stopped");
    st->work_poll = st->work_limit - st->work < WORK_POLL_EVERY ? st->work_limit + 1
                                                                : st->work + WORK_POLL_EVERY;
}

void tmpl_arena_free(struct tstate *st)
{
    for (struct tchunk *c = st->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    st->chunks = NULL;
    st->used = 0;
}

/* ============================== Text buffers ============================== */

void tbuf_put(struct tstate *st, struct tbuf *b, const char *s, size_t n)
{
    if (!n) return;
    tmpl_work(st, WORK_BYTES(n));
    if (b->limit && (n > b->limit || b->n > b->limit - n))
        tmpl_fail(st, VKLLM_E_INVALID, "template output exceeds %zu bytes", b->limit);
    if (n > SIZE_MAX / 4 || b->n > SIZE_MAX / 4) tmpl_fail(st, VKLLM_E_INVALID, "string too long");
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = tmpl_realloc(st, b->p, b->cap, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void tbuf_putc(struct tstate *st, struct tbuf *b, char c)
{
    tbuf_put(st, b, &c, 1);
}

void tbuf_printf(struct tstate *st, struct tbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    tmpl_work(st, WORK_PRINTF);
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    tbuf_put(st, b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Numbers and escapes by hand: snprintf costs ten times as much, and a
 * template may print millions of them. */
void tbuf_int(struct tstate *st, struct tbuf *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    tbuf_put(st, b, p, (size_t)(tmp + sizeof tmp - p));
}

void tbuf_hex(struct tstate *st, struct tbuf *b, const char *prefix, uint32_t c, int digits)
{
    char tmp[16];
    size_t n = strlen(prefix);
    tmpl_work(st, WORK_ESCAPE);
    memcpy(tmp, prefix, n);
    for (int i = digits - 1; i >= 0; i--)
        tmp[n++] = "0123456789abcdef"[c >> (4 * i) & 15];
    tbuf_put(st, b, tmp, n);
}

/* ============================== UTF-8 ============================== */

/* Overlong forms, surrogates and code points past U+10FFFF are stray bytes,
 * one at a time: decoded, "\xc0\xbc" would become a real '<' and "\xc0\x80"
 * a NUL in a case-mapped string. */
size_t utf8_len(const char *p, const char *end)
{
    const unsigned char c = (unsigned char)*p;
    const size_t n = c < 0x80    ? 1
                     : c >= 0xF5 ? 1
                     : c >= 0xF0 ? 4
                     : c >= 0xE0 ? 3
                     : c >= 0xC2 ? 2
                                 : 1;
    if (n == 1 || (size_t)(end - p) < n) return 1;
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) return 1;
    const unsigned char c1 = (unsigned char)p[1];
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F))
        return 1;
    return n;
}

size_t utf8_count(const char *p, size_t n)
{
    size_t count = 0;
    for (const char *end = p + n; p < end; p += utf8_len(p, end))
        count++;
    return count;
}

static uint32_t utf8_decode(const char *p, size_t n)
{
    uint32_t c = (unsigned char)p[0];
    if (n == 1) return c;
    c &= 0x3Fu >> (n - 1);
    for (size_t i = 1; i < n; i++)
        c = c << 6 | ((unsigned char)p[i] & 0x3F);
    return c;
}

uint32_t utf8_decode_at(const char *p, const char *end, size_t *len)
{
    *len = utf8_len(p, end);
    return utf8_decode(p, *len);
}

static bool py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t utf8_space(const char *p, const char *end)
{
    if (p >= end) return 0;
    size_t n = utf8_len(p, end);
    return py_isspace(utf8_decode(p, n)) ? n : 0;
}

/* Every byte that is not a continuation byte starts a character, so the last
 * character is the one whose lead byte is nearest END, if it reaches END
 * exactly; else the last byte is a stray one. */
size_t utf8_back(const char *start, const char *end)
{
    if (end <= start) return 0;
    const char *p = end - 1;
    while (p > start && end - p < 4 && ((unsigned char)*p & 0xC0) == 0x80)
        p--;
    return utf8_len(p, end) == (size_t)(end - p) ? (size_t)(end - p) : 1;
}

size_t utf8_space_back(const char *start, const char *end)
{
    size_t k = utf8_back(start, end);
    return k && utf8_space(end - k, end) == k ? k : 0;
}

/* ============================== Making values ============================== */

struct tval tv_cstr(const char *s)
{
    return tv_str(s, strlen(s));
}

struct tval tv_undef(struct tstate *st, const char *fmt, ...)
{
    char tmp[300];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    struct tval v = {.kind = TV_UNDEF};
    v.s.p = tmpl_strdup(st, tmp, (size_t)n);
    v.s.n = (size_t)n;
    return v;
}

struct tval tv_list(struct tstate *st, size_t cap)
{
    struct tval v = {.kind = TV_LIST};
    v.l = tmpl_alloc(st, sizeof *v.l);
    if (cap) {
        if (cap > SIZE_MAX / sizeof(struct tval)) tmpl_fail(st, VKLLM_E_INVALID, "list too long");
        v.l->v = tmpl_alloc(st, cap * sizeof(struct tval));
        v.l->cap = cap;
    }
    return v;
}

void tv_list_push(struct tstate *st, struct tval list, struct tval v)
{
    struct tlist *l = list.l;
    tmpl_work(st, 1);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(struct tval)) tmpl_fail(st, VKLLM_E_INVALID, "list too long");
        l->v = tmpl_realloc(st, l->v, l->cap * sizeof *l->v, cap * sizeof *l->v);
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

struct tval tv_dict(struct tstate *st, size_t cap)
{
    struct tval v = {.kind = TV_DICT};
    v.d = tmpl_alloc(st, sizeof *v.d);
    if (cap) {
        if (cap > SIZE_MAX / sizeof(struct tval)) tmpl_fail(st, VKLLM_E_INVALID, "dict too long");
        v.d->k = tmpl_alloc(st, cap * sizeof(struct tval));
        v.d->v = tmpl_alloc(st, cap * sizeof(struct tval));
        v.d->cap = cap;
    }
    return v;
}

struct tval *tv_dict_get(struct tstate *st, struct tval dict, struct tval key)
{
    struct tdict *d = dict.d;
    tmpl_work(st, d->n / 8 + 1);
    for (size_t i = 0; i < d->n; i++)
        if (tv_equal(st, d->k[i], key)) return &d->v[i];
    return NULL;
}

struct tval *tv_dict_getn(struct tstate *st, struct tval dict, const char *key, size_t n)
{
    struct tdict *d = dict.d;
    tmpl_work(st, d->n / 8 + 1);
    for (size_t i = 0; i < d->n; i++) {
        if (d->k[i].kind != TV_STR || d->k[i].s.n != n) continue;
        tmpl_work(st, WORK_BYTES(n));
        if (!memcmp(d->k[i].s.p, key, n)) return &d->v[i];
    }
    return NULL;
}

void tv_dict_set(struct tstate *st, struct tval dict, struct tval key, struct tval v)
{
    struct tval *slot = tv_dict_get(st, dict, key);
    if (slot) {
        *slot = v;
        return;
    }
    tv_dict_push(st, dict, key, v);
}

void tv_dict_push(struct tstate *st, struct tval dict, struct tval key, struct tval v)
{
    struct tdict *d = dict.d;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(struct tval)) tmpl_fail(st, VKLLM_E_INVALID, "dict too long");
        d->k = tmpl_realloc(st, d->k, d->cap * sizeof *d->k, cap * sizeof *d->k);
        d->v = tmpl_realloc(st, d->v, d->cap * sizeof *d->v, cap * sizeof *d->v);
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = v;
}

/* ============================== Semantics ============================== */

bool tv_is_number(struct tval v)
{
    return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL;
}

double tv_as_double(struct tval v)
{
    return v.kind == TV_FLOAT ? v.f : v.kind == TV_INT ? (double)v.i : v.kind == TV_BOOL ? v.b : 0;
}

bool tv_truthy(struct tval v)
{
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v.b;
    case TV_INT: return v.i != 0;
    case TV_FLOAT: return v.f != 0;
    case TV_STR: return v.s.n != 0;
    case TV_LIST:
    case TV_TUPLE: return v.l->n != 0;
    case TV_DICT: return v.d->n != 0;
    default: return true;
    }
}

const char *tv_type_name(struct tval v)
{
    static const char *const names[] = {
        "Undefined", "NoneType", "bool", "int",       "float", "str",
        "list",      "tuple",    "dict", "Namespace", "Macro", "builtin_function_or_method"};
    return v.kind < sizeof names / sizeof names[0] ? names[v.kind] : "object";
}

static bool equal_at(struct tstate *st, struct tval a, struct tval b, int depth)
{
    tmpl_work(st, 1);
    if (depth > NEST_MAX) return false;
    if (tv_is_number(a) && tv_is_number(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT)
            return (a.kind == TV_BOOL ? a.b : a.i) == (b.kind == TV_BOOL ? b.b : b.i);
        return tv_as_double(a) == tv_as_double(b);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR:
        if (a.s.n != b.s.n) return false;
        tmpl_work(st, WORK_BYTES(a.s.n));
        return !memcmp(a.s.p, b.s.p, a.s.n);
    case TV_LIST:
    case TV_TUPLE:
        if (a.l->n != b.l->n) return false;
        for (size_t i = 0; i < a.l->n; i++)
            if (!equal_at(st, a.l->v[i], b.l->v[i], depth + 1)) return false;
        return true;
    case TV_DICT:
        if (a.d->n != b.d->n) return false;
        for (size_t i = 0; i < a.d->n; i++) {
            struct tval *o = tv_dict_get(st, b, a.d->k[i]);
            if (!o || !equal_at(st, a.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    case TV_NS: return a.d == b.d;
    case TV_MACRO: return a.m == b.m;
    case TV_FUNC: return a.fn == b.fn;
    default: return false;
    }
}

bool tv_equal(struct tstate *st, struct tval a, struct tval b)
{
    return equal_at(st, a, b, 0);
}

_Noreturn void tv_undef_fail(struct tstate *st, struct tval v)
{
    if (v.kind == TV_UNDEF && v.s.p && v.s.n)
        tmpl_fail(st, VKLLM_E_INVALID, "%.*s", (int)v.s.n, v.s.p);
    tmpl_fail(st, VKLLM_E_INVALID, "value is undefined");
}

static int compare_at(struct tstate *st, struct tval a, struct tval b, int depth)
{
    if (a.kind == TV_UNDEF) tv_undef_fail(st, a);
    if (b.kind == TV_UNDEF) tv_undef_fail(st, b);
    if (depth > NEST_MAX) tmpl_fail(st, VKLLM_E_INVALID, "values nested too deeply to compare");
    tmpl_work(st, 1);
    if (tv_is_number(a) && tv_is_number(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
            int64_t x = a.kind == TV_BOOL ? a.b : a.i, y = b.kind == TV_BOOL ? b.b : b.i;
            return (x > y) - (x < y);
        }
        double x = tv_as_double(a), y = tv_as_double(b);
        return (x > y) - (x < y); /* NaN compares as equal here; Python says False both ways */
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        size_t n = a.s.n < b.s.n ? a.s.n : b.s.n;
        tmpl_work(st, WORK_BYTES(n));
        int c = n ? memcmp(a.s.p, b.s.p, n) : 0;
        if (c) return c < 0 ? -1 : 1;
        return (a.s.n > b.s.n) - (a.s.n < b.s.n);
    }
    if ((a.kind == TV_LIST || a.kind == TV_TUPLE) && a.kind == b.kind) {
        for (size_t i = 0; i < a.l->n && i < b.l->n; i++) {
            if (equal_at(st, a.l->v[i], b.l->v[i], depth + 1)) continue;
            return compare_at(st, a.l->v[i], b.l->v[i], depth + 1);
        }
        return (a.l->n > b.l->n) - (a.l->n < b.l->n);
    }
    tmpl_fail(st, VKLLM_E_INVALID, "'<' not supported between instances of '%s' and '%s'",
              tv_type_name(a), tv_type_name(b));
}

int tv_compare(struct tstate *st, struct tval a, struct tval b)
{
    return compare_at(st, a, b, 0);
}

/* ============================== Printing ============================== */

void tv_print_float(struct tstate *st, struct tbuf *b, double f)
{
    if (isnan(f)) {
        tbuf_put(st, b, "nan", 3);
        return;
    }
    if (isinf(f)) {
        tbuf_put(st, b, f < 0 ? "-inf" : "inf", f < 0 ? 4 : 3);
        return;
    }
    /* the shortest %e text that reads back as F, then Python's layout of it */
    tmpl_work(st, WORK_FLOAT);
    char buf[40];
    /* any decimal of 15 digits or fewer survives the trip through a normal
     * double (DBL_DIG), so when 15 digits read back as F, the shortest text is
     * those digits less their trailing zeros; otherwise it is 16 or 17 digits.
     * A subnormal holds fewer digits: search them all. */
    for (int prec = fabs(f) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    char digits[24];
    size_t nd = 0;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1) digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    int decpt = exp10 + 1;
    char out[64];
    size_t n = 0;
    if (neg) out[n++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[n++] = '0';
            memcpy(out + n, digits, nd);
            n += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(out + n, digits, nd);
            n += nd;
            for (size_t i = nd; i < (size_t)decpt; i++)
                out[n++] = '0';
            out[n++] = '.';
            out[n++] = '0';
        } else {
            memcpy(out + n, digits, (size_t)decpt);
            n += (size_t)decpt;
            out[n++] = '.';
            memcpy(out + n, digits + decpt, nd - (size_t)decpt);
            n += nd - (size_t)decpt;
        }
    } else {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        n += (size_t)snprintf(out + n, sizeof out - n, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                              abs(decpt - 1));
    }
    tbuf_put(st, b, out, n);
}

/* Whether Python's str.isprintable holds for C (an approximation outside ASCII:
 * the separators, controls and format characters chat text may hold). */
static bool py_printable(uint32_t c)
{
    if (c < 0x20 || c == 0x7F) return false;
    if (c >= 0x80 && c <= 0xA0) return false;
    if (c == 0xAD || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF ||
        (c >= 0xE000 && c <= 0xF8FF) || (c >= 0xFFF0 && c <= 0xFFFB) || c >= 0xF0000)
        return false;
    return true;
}

static void repr_str(struct tstate *st, struct tbuf *b, const char *s, size_t n)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    tbuf_putc(st, b, q);
    const char *end = s + n;
    for (const char *p = s; p < end;) {
        size_t k = utf8_len(p, end);
        uint32_t c = utf8_decode(p, k);
        if (c == (uint32_t)q || c == '\\') {
            tbuf_putc(st, b, '\\');
            tbuf_putc(st, b, (char)c);
        } else if (c == '\n') {
            tbuf_put(st, b, "\\n", 2);
        } else if (c == '\r') {
            tbuf_put(st, b, "\\r", 2);
        } else if (c == '\t') {
            tbuf_put(st, b, "\\t", 2);
        } else if (!py_printable(c)) {
            tbuf_hex(st, b,
                     c < 0x100     ? "\\x"
                     : c < 0x10000 ? "\\u"
                                   : "\\U",
                     c,
                     c < 0x100     ? 2
                     : c < 0x10000 ? 4
                                   : 8);
        } else {
            tbuf_put(st, b, p, k);
        }
        p += k;
    }
    tbuf_putc(st, b, q);
}

static void print_at(struct tstate *st, struct tbuf *b, struct tval v, bool repr, int depth)
{
    if (depth > NEST_MAX) tmpl_fail(st, VKLLM_E_INVALID, "value nested too deeply to print");
    tmpl_work(st, 1);
    switch (v.kind) {
    case TV_UNDEF:
        if (repr) tbuf_put(st, b, "Undefined", 9);
        return;
    case TV_NONE: tbuf_put(st, b, "None", 4); return;
    case TV_BOOL: tbuf_put(st, b, v.b ? "True" : "False", v.b ? 4 : 5); return;
    case TV_INT: tbuf_int(st, b, v.i); return;
    case TV_FLOAT: tv_print_float(st, b, v.f); return;
    case TV_STR:
        if (repr)
            repr_str(st, b, v.s.p, v.s.n);
        else
            tbuf_put(st, b, v.s.p, v.s.n);
        return;
    case TV_LIST:
    case TV_TUPLE:
        if (v.kind == TV_LIST && v.flag) {
            static const char *const views[] = {"", "dict_items(", "dict_keys(", "dict_values("};
            tbuf_put(st, b, views[v.flag & 3], strlen(views[v.flag & 3]));
        }
        tbuf_putc(st, b, v.kind == TV_LIST ? '[' : '(');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) tbuf_put(st, b, ", ", 2);
            print_at(st, b, v.l->v[i], true, depth + 1);
        }
        if (v.kind == TV_TUPLE && v.l->n == 1) tbuf_putc(st, b, ',');
        tbuf_putc(st, b, v.kind == TV_LIST ? ']' : ')');
        if (v.kind == TV_LIST && v.flag) tbuf_putc(st, b, ')');
        return;
    case TV_NS:
        tbuf_put(st, b, "<Namespace ", 11);
        /* fall through */
    case TV_DICT:
        tbuf_putc(st, b, '{');
        for (size_t i = 0; i < v.d->n; i++) {
            if (i) tbuf_put(st, b, ", ", 2);
            print_at(st, b, v.d->k[i], true, depth + 1);
            tbuf_put(st, b, ": ", 2);
            print_at(st, b, v.d->v[i], true, depth + 1);
        }
        tbuf_putc(st, b, '}');
        if (v.kind == TV_NS) tbuf_putc(st, b, '>');
        return;
    case TV_MACRO: tbuf_put(st, b, "<Macro>", 7); return;
    case TV_FUNC: tbuf_printf(st, b, "<built-in function %s>", v.fn->name); return;
    }
}

void tv_print(struct tstate *st, struct tbuf *b, struct tval v)
{
    print_at(st, b, v, false, 0);
}
void tv_repr(struct tstate *st, struct tbuf *b, struct tval v)
{
    print_at(st, b, v, true, 0);
}

struct tval tv_to_str(struct tstate *st, struct tval v)
{
    if (v.kind == TV_STR) return v;
    if (v.kind == TV_UNDEF) return tv_str("", 0);
    struct tbuf b = {0};
    tv_print(st, &b, v);
    return tbuf_val(&b);
}

struct tval tv_concat(struct tstate *st, struct tval a, struct tval b)
{
    if (!b.s.n) return a;
    if (!a.s.n) return b;
    tmpl_work(st, WORK_BYTES(b.s.n));
    if (a.s.p + a.s.n == st->str_top && st->str_room >= b.s.n) {
        memcpy(st->str_top, b.s.p, b.s.n);
        st->str_top += b.s.n;
        st->str_room -= b.s.n;
        return tv_str(a.s.p, a.s.n + b.s.n);
    }
    if (a.s.n > SIZE_MAX / 4 || b.s.n > SIZE_MAX / 4)
        tmpl_fail(st, VKLLM_E_INVALID, "string too long");
    tmpl_work(st, WORK_BYTES(a.s.n));
    size_t n = a.s.n + b.s.n, room = n + 64;
    if (room > (st->limit - st->used) / 2) room = 0; /* near the limit: no reserve */
    char *p = tmpl_alloc(st, n + room);
    memcpy(p, a.s.p, a.s.n);
    memcpy(p + a.s.n, b.s.p, b.s.n);
    st->str_top = p + n;
    st->str_room = room;
    return tv_str(p, n);
}

/* ============================== JSON ============================== */

static void json_str(struct tstate *st, struct tbuf *b, const char *s, size_t n)
{
    tbuf_putc(st, b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tbuf_put(st, b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': tbuf_put(st, b, "\\\"", 2); break;
        case '\\': tbuf_put(st, b, "\\\\", 2); break;
        case '\n': tbuf_put(st, b, "\\n", 2); break;
        case '\r': tbuf_put(st, b, "\\r", 2); break;
        case '\t': tbuf_put(st, b, "\\t", 2); break;
        case '\b': tbuf_put(st, b, "\\b", 2); break;
        case '\f': tbuf_put(st, b, "\\f", 2); break;
        default: tbuf_hex(st, b, "\\u", c, 4);
        }
    }
    tbuf_put(st, b, s + run, n - run);
    tbuf_putc(st, b, '"');
}

static void json_float(struct tstate *st, struct tbuf *b, double f)
{
    if (isnan(f))
        tbuf_put(st, b, "NaN", 3);
    else if (isinf(f))
        tbuf_put(st, b, f < 0 ? "-Infinity" : "Infinity", f < 0 ? 9 : 8);
    else
        tv_print_float(st, b, f);
}

static void json_newline(struct tstate *st, struct tbuf *b, const struct tjson_opts *o, int level)
{
    tbuf_putc(st, b, '\n');
    for (int i = 0; i < level; i++)
        tbuf_put(st, b, o->indent, o->indent_n);
}

/* A dict key as json.dumps converts it. */
static void json_key(struct tstate *st, struct tbuf *b, struct tval k)
{
    switch (k.kind) {
    case TV_STR: json_str(st, b, k.s.p, k.s.n); return;
    case TV_NONE: tbuf_put(st, b, "\"null\"", 6); return;
    case TV_BOOL: tbuf_put(st, b, k.b ? "\"true\"" : "\"false\"", k.b ? 6 : 7); return;
    case TV_INT:
        tbuf_putc(st, b, '"');
        tbuf_int(st, b, k.i);
        tbuf_putc(st, b, '"');
        return;
    case TV_FLOAT:
        tbuf_putc(st, b, '"');
        json_float(st, b, k.f);
        tbuf_putc(st, b, '"');
        return;
    default:
        tmpl_fail(st, VKLLM_E_INVALID, "keys must be str, int, float, bool or None, not %s",
                  tv_type_name(k));
    }
}

void tmpl_msort(struct tstate *st, size_t *idx, size_t n, int (*cmp)(void *ctx, size_t a, size_t b),
                void *ctx)
{
    if (n < 2) return;
    size_t *tmp = tmpl_alloc(st, n * sizeof *tmp);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n,
                   hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp(ctx, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
}

struct key_sort {
    struct tstate *st;
    const struct tval *keys;
};

static int key_order(void *ctx, size_t a, size_t b)
{
    struct key_sort *ks = ctx;
    return tv_compare(ks->st, ks->keys[a], ks->keys[b]);
}

void tv_json(struct tstate *st, struct tbuf *b, struct tval v, const struct tjson_opts *o,
             int level)
{
    if (level > NEST_MAX) tmpl_fail(st, VKLLM_E_INVALID, "value nested too deeply for tojson");
    tmpl_work(st, 1);
    switch (v.kind) {
    case TV_NONE: tbuf_put(st, b, "null", 4); return;
    case TV_BOOL: tbuf_put(st, b, v.b ? "true" : "false", v.b ? 4 : 5); return;
    case TV_INT: tbuf_int(st, b, v.i); return;
    case TV_FLOAT: json_float(st, b, v.f); return;
    case TV_STR: json_str(st, b, v.s.p, v.s.n); return;
    case TV_LIST:
    case TV_TUPLE:
        if (v.kind == TV_LIST && v.flag) {
            static const char *const views[] = {"", "dict_items", "dict_keys", "dict_values"};
            tmpl_fail(st, VKLLM_E_INVALID, "Object of type %s is not JSON serializable",
                      views[v.flag & 3]);
        }
        if (!v.l->n) {
            tbuf_put(st, b, "[]", 2);
            return;
        }
        tbuf_putc(st, b, '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) tbuf_put(st, b, o->item_sep, o->item_sep_n);
            if (o->has_indent) json_newline(st, b, o, level + 1);
            tv_json(st, b, v.l->v[i], o, level + 1);
        }
        if (o->has_indent) json_newline(st, b, o, level);
        tbuf_putc(st, b, ']');
        return;
    case TV_DICT: {
        if (!v.d->n) {
            tbuf_put(st, b, "{}", 2);
            return;
        }
        size_t n = v.d->n, *order = tmpl_alloc(st, n * sizeof *order);
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        if (o->sort_keys) tmpl_msort(st, order, n, key_order, &(struct key_sort){st, v.d->k});
        tbuf_putc(st, b, '{');
        for (size_t i = 0; i < n; i++) {
            if (i) tbuf_put(st, b, o->item_sep, o->item_sep_n);
            if (o->has_indent) json_newline(st, b, o, level + 1);
            json_key(st, b, v.d->k[order[i]]);
            tbuf_put(st, b, o->key_sep, o->key_sep_n);
            tv_json(st, b, v.d->v[order[i]], o, level + 1);
        }
        if (o->has_indent) json_newline(st, b, o, level);
        tbuf_putc(st, b, '}');
        return;
    }
    default:
        tmpl_fail(st, VKLLM_E_INVALID, "Object of type %s is not JSON serializable",
                  tv_type_name(v));
    }
}
