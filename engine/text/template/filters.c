/* filters.c: Jinja2's filters (with transformers' tojson: json.dumps with
 * ensure_ascii=False) and tests. Where Jinja2 returns a generator (select,
 * map, ...) we return a list. */
#include "tmpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Sorting ============================== */

struct sort_ctx {
    struct teval *ev;
    struct tval *keys;
    bool reverse; /* descending; equal keys keep their order, as Python's sorted() */
};

static int sort_cmp(void *ctx, size_t a, size_t b)
{
    struct sort_ctx *s = ctx;
    tmpl_step(s->ev);
    int c = tv_compare(s->ev->st, s->keys[a], s->keys[b]);
    return s->reverse ? -c : c;
}

static struct tval sort_key(struct teval *ev, struct tval v, bool case_sensitive)
{
    if (!case_sensitive && v.kind == TV_STR) return tstr_case(ev, v, CASE_LOWER);
    return v;
}

/* Sorts ITEMS by KEYS (parallel arrays, N long) into a new list. */
static struct tval sorted(struct teval *ev, struct tval *items, struct tval *keys, size_t n,
                          bool reverse)
{
    size_t *idx = tmpl_alloc(ev->st, (n + 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    tmpl_msort(ev->st, idx, n, sort_cmp, &(struct sort_ctx){ev, keys, reverse});
    struct tval out = tv_list(ev->st, n);
    for (size_t i = 0; i < n; i++)
        tv_list_push(ev->st, out, items[idx[i]]);
    return out;
}

/* ============================== Filters ============================== */

static struct tval do_tojson(struct teval *ev, struct tval v, struct tval *args, size_t n_args,
                             const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    struct tval none = TV_MAKE_NONE;
    struct tval ascii = ARG(0, "ensure_ascii", tv_bool(false)), indent = ARG(1, "indent", none),
                seps = ARG(2, "separators", none), sort = ARG(3, "sort_keys", tv_bool(false));
    struct tjson_opts o = {.item_sep = ", ", .item_sep_n = 2, .key_sep = ": ", .key_sep_n = 2};
    if (indent.kind != TV_NONE) {
        o.has_indent = true;
        o.item_sep = ",";
        o.item_sep_n = 1;
        if (indent.kind == TV_STR) {
            o.indent = indent.s.p;
            o.indent_n = indent.s.n;
        } else {
            /* json.dumps indents by ' ' * indent: none for 0 or less */
            int64_t k = tmpl_need_int(ev, indent, "indent");
            if (k > TMPL_WIDTH_MAX) tmpl_eval_fail(ev, "width too large");
            struct tbuf sp = {0};
            for (int64_t i = 0; i < k; i++)
                tbuf_putc(ev->st, &sp, ' ');
            o.indent = sp.p;
            o.indent_n = sp.n;
        }
    }
    if (seps.kind != TV_NONE) {
        if ((seps.kind != TV_TUPLE && seps.kind != TV_LIST) || seps.l->n != 2)
            tmpl_eval_fail(ev, "separators must be a pair of strings");
        struct tval a = tmpl_need_str(ev, seps.l->v[0], "separator"),
                    b = tmpl_need_str(ev, seps.l->v[1], "separator");
        o.item_sep = a.s.p;
        o.item_sep_n = a.s.n;
        o.key_sep = b.s.p;
        o.key_sep_n = b.s.n;
    }
    o.sort_keys = tv_truthy(sort);
    struct tbuf b = {0};
    tv_json(ev->st, &b, v, &o, 0);
    if (!tv_truthy(ascii)) return tbuf_val(&b);
    /* ensure_ascii: \uXXXX for everything outside ASCII, surrogate pairs above U+FFFF */
    struct tbuf a = {0};
    const char *p = b.p, *end = b.p + b.n;
    while (p < end) {
        size_t k;
        uint32_t c = utf8_decode_at(p, end, &k);
        if (c < 0x80) {
            tbuf_putc(ev->st, &a, (char)c);
        } else if (c < 0x10000) {
            tbuf_hex(ev->st, &a, "\\u", c, 4);
        } else {
            c -= 0x10000;
            tbuf_hex(ev->st, &a, "\\u", 0xD800 + (c >> 10), 4);
            tbuf_hex(ev->st, &a, "\\u", 0xDC00 + (c & 0x3FF), 4);
        }
        p += k;
    }
    return tbuf_val(&a);
}

/* select(v, test, *args, **kwargs): the test gets the arguments; selectattr's first is the
 * attribute */
static struct tval do_select(struct teval *ev, struct tval v, struct tval *args, size_t n_args,
                             const char **kw_names, struct tval *kw_vals, size_t n_kw, bool attr,
                             bool reject)
{
    size_t n = 0;
    /* Jinja2 iterates only a true value: select on 0 or None gives nothing */
    struct tval *items = tv_truthy(v) ? tmpl_iterate(ev, v, &n) : NULL;
    struct tval out = tv_list(ev->st, 0);
    size_t first = attr ? 1 : 0;
    if (attr && !n_args) tmpl_eval_fail(ev, "Missing parameter for attribute name");
    for (size_t i = 0; i < n; i++) {
        tmpl_step(ev);
        struct tval x = attr ? tmpl_get_path(ev, items[i], args[0]) : items[i];
        bool ok;
        if (n_args > first) {
            struct tval tname = tmpl_need_str(ev, args[first], "test name");
            char *name = tmpl_strdup(ev->st, tname.s.p, tname.s.n);
            ok = tmpl_test(ev, name, x, args + first + 1, n_args - first - 1, kw_names, kw_vals,
                           n_kw);
        } else {
            ok = tv_truthy(x);
        }
        if (ok != reject) tv_list_push(ev->st, out, items[i]);
    }
    return out;
}

static struct tval do_indent(struct teval *ev, struct tval s, struct tval width, bool first,
                             bool blank)
{
    struct tval ind;
    if (width.kind == TV_STR) {
        ind = width;
    } else {
        int64_t w = tmpl_need_int(ev, width, "width");
        if (w > 1024) tmpl_eval_fail(ev, "indent width too large");
        struct tbuf b = {0};
        for (int64_t i = 0; i < w; i++)
            tbuf_putc(ev->st, &b, ' ');
        ind = tbuf_val(&b);
    }
    struct tbuf text = {0};
    tbuf_put(ev->st, &text, s.s.p, s.s.n);
    tbuf_putc(ev->st, &text, '\n');
    struct tval lines = tstr_splitlines(ev, tbuf_val(&text), false);
    struct tbuf b = {0};
    if (first) tbuf_put(ev->st, &b, ind.s.p, ind.s.n);
    for (size_t i = 0; i < lines.l->n; i++) {
        struct tval line = lines.l->v[i];
        if (i) {
            tbuf_putc(ev->st, &b, '\n');
            if (blank || line.s.n) tbuf_put(ev->st, &b, ind.s.p, ind.s.n);
        }
        tbuf_put(ev->st, &b, line.s.p, line.s.n);
    }
    return tbuf_val(&b);
}

/* Python's int(S, BASE) for the stripped text S: true with *OUT, false for a
 * ValueError. Underscores may sit between digits and after a prefix. */
static bool parse_int(struct teval *ev, const char *p, const char *end, int64_t base, int64_t *out)
{
    bool neg = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) p++;
    int64_t b = base;
    if (end - p >= 2 && p[0] == '0') {
        const char x = (char)(p[1] | 0x20);
        const int64_t pb = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            b = pb;
            p += 2;
            if (p < end && *p == '_') p++;
        }
    }
    if (b == 0) { /* no prefix: decimal, where a leading 0 must be all zeros */
        b = 10;
        for (const char *q = p; q < end && *p == '0'; q++)
            if (*q != '0' && *q != '_') return false;
    }
    if (b < 2 || b > 36 || p >= end) return false;
    uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (bool digit = false; p < end; p++) {
        if (*p == '_' && digit && p + 1 < end && p[1] != '_') continue;
        const int c = *p >= '0' && *p <= '9'                     ? *p - '0'
                      : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'z' ? (*p | 0x20) - 'a' + 10
                                                                 : 99;
        if (c >= b) return false;
        digit = true;
        if (x > (limit - (uint64_t)c) / (uint64_t)b) tmpl_eval_fail(ev, "integer overflow in int");
        x = x * (uint64_t)b + (uint64_t)c;
    }
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

/* Jinja2's int filter: int(value, base) for a str, else int(value); when that
 * fails, int(float(value)); when that fails too, the default */
static struct tval to_int(struct teval *ev, struct tval v, struct tval dflt, int64_t base)
{
    switch (v.kind) {
    case TV_INT: return v;
    case TV_BOOL: return tv_int(v.b);
    case TV_FLOAT:
        if (isnan(v.f) || fabs(v.f) >= 9.2e18) return dflt;
        return tv_int((int64_t)v.f);
    case TV_STR: {
        struct tval t = tstr_strip(ev, v, TV_MAKE_NONE, true, true);
        int64_t x;
        if (parse_int(ev, t.s.p, t.s.p + t.s.n, base, &x)) return tv_int(x);
        char buf[64];
        if (!t.s.n || t.s.n >= sizeof buf) return dflt;
        size_t n = 0;
        for (size_t i = 0; i < t.s.n; i++)
            if (t.s.p[i] != '_') buf[n++] = t.s.p[i];
        buf[n] = 0;
        /* float() reads decimal only (strtod would take hex); inf and nan give the default */
        if (strspn(buf, "0123456789+-.eE") != n) return dflt;
        char *end;
        double f = strtod(buf, &end);
        if (!*end && !isnan(f) && fabs(f) < 9.2e18) return tv_int((int64_t)f);
        return dflt;
    }
    default: return dflt;
    }
}

static struct tval to_float(struct teval *ev, struct tval v, struct tval dflt)
{
    if (tv_is_number(v)) return tv_float(tv_as_double(v));
    if (v.kind == TV_STR) {
        char buf[64];
        struct tval t = tstr_strip(ev, v, TV_MAKE_NONE, true, true);
        if (!t.s.n || t.s.n >= sizeof buf) return dflt;
        memcpy(buf, t.s.p, t.s.n);
        buf[t.s.n] = 0;
        char *end;
        double f = strtod(buf, &end);
        if (!*end) return tv_float(f);
    }
    return dflt;
}

/* ============================== round ============================== */

/* Jinja2's round filter: Python's round(value, precision) for 'common', and
 * math.ceil/floor(value * 10**precision) / 10**precision for the others, each
 * step as Python takes it, so that the last bit agrees too. */

/* Python's round(x, -k), k >= 1, for a float: the multiple of 10^k nearest
 * X's exact value, ties to even, correctly rounded (CPython's float round goes
 * through dtoa). X is a whole number whenever a tie is possible (ties are
 * whole numbers), so its digits ("%.0f" prints them exactly) and whether it
 * had a fraction decide. */
static double round_float_left(double x, int64_t k)
{
    if (!isfinite(x)) return x;
    if (k > 308) return 0.0 * x; /* CPython's NDIGITS_MIN: a signed zero */
    double whole = floor(fabs(x));
    const bool fraction = whole != fabs(x);
    char digits[320 + 8]; /* a leading slot for a carry, 309 digits, "e308" */
    int n = snprintf(digits + 1, 320, "%.0f", whole), keep = n - (int)k;
    bool up = false;
    if (keep >= 0) {
        bool rest = fraction;
        for (int i = keep + 1; i < n; i++)
            rest |= digits[1 + i] != '0';
        const char d = digits[1 + keep];
        const bool odd = keep > 0 && (digits[keep] - '0') % 2;
        up = d > '5' || (d == '5' && (rest || odd));
    }
    char *kept = digits + 1;
    if (keep <= 0) { /* nothing kept: 0, or 1 when rounded up */
        keep = 1;
        kept[0] = '0';
    }
    for (int i = keep - 1; up && i >= -1; i--) {
        if (i < 0) {
            *--kept = '1';
            keep++;
        } else if (kept[i] == '9') {
            kept[i] = '0';
        } else {
            kept[i]++;
            up = false;
        }
    }
    snprintf(kept + keep, 8, "e%d", (int)k);
    return copysign(strtod(kept, NULL), x);
}

/* Python's round(v, -k), k >= 1, for an int: ties to even, still an int. */
static struct tval round_int_left(struct teval *ev, int64_t v, int64_t k)
{
    if (k > 19) return tv_int(0); /* |v| < 2^63 < 10^20 / 2 */
    uint64_t p = 1, m;
    for (int64_t i = 0; i < k; i++)
        p *= 10;
    const uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, q = a / p, r = a % p;
    const bool up = r > p / 2 || (r == p / 2 && (q & 1));
    if (__builtin_mul_overflow(q + up, p, &m) || m > (v < 0 ? (uint64_t)INT64_MAX + 1 : INT64_MAX))
        tmpl_eval_fail(ev, "integer overflow in round");
    return tv_int(v < 0 ? (int64_t)(0 - m) : (int64_t)m);
}

static struct tval do_round(struct teval *ev, struct tval v, int64_t precision, struct tval how)
{
    if (!tv_is_number(v)) tmpl_eval_fail(ev, "round needs a number, not %s", tv_type_name(v));
    static const char *const methods[] = {"common", "ceil", "floor"};
    int method = 0;
    while (method < 3 && !(how.kind == TV_STR && how.s.n == strlen(methods[method]) &&
                           !memcmp(how.s.p, methods[method], how.s.n)))
        method++;
    if (method == 3) tmpl_eval_fail(ev, "method must be common, ceil or floor");
    const bool is_int = v.kind != TV_FLOAT;
    const int64_t i = v.kind == TV_BOOL ? v.b : v.i;
    const double x = tv_as_double(v);
    if (method == 0) {
        if (is_int) return precision >= 0 ? tv_int(i) : round_int_left(ev, i, -precision);
        if (precision < 0) {
            const double r = round_float_left(x, -precision);
            if (isinf(r) && isfinite(x)) tmpl_eval_fail(ev, "rounded value too large to represent");
            return tv_float(r);
        }
        /* CPython's NDIGITS_MAX: past it, every double is already rounded */
        if (precision > 323 || !isfinite(x)) return tv_float(x);
        /* correctly rounded, half to even, as printf does it */
        char buf[720];
        snprintf(buf, sizeof buf, "%.*f", (int)precision, x);
        return tv_float(strtod(buf, NULL));
    }
    /* an int times 10**precision >= 0 is exact, and so is dividing it back */
    if (is_int && precision >= 0) return tv_float((double)i);
    /* 10**precision: an int (converted to a double, correctly rounded, when
     * multiplied) for precision >= 0; pow's double below 0 */
    if (precision > 308) tmpl_eval_fail(ev, "int too large to convert to float");
    char ten[32];
    snprintf(ten, sizeof ten, "1e%lld", (long long)precision);
    const double scale = precision >= 0 ? strtod(ten, NULL) : pow(10, (double)precision),
                 y = x * scale;
    if (isnan(y)) tmpl_eval_fail(ev, "cannot convert float NaN to integer");
    if (isinf(y)) tmpl_eval_fail(ev, "cannot convert float infinity to integer");
    /* math.ceil and floor give an int, which has no -0 */
    const double whole = (method == 1 ? ceil(y) : floor(y)) + 0.0;
    if (precision < 0) {
        if (scale == 0) tmpl_eval_fail(ev, "float division by zero");
        return tv_float(whole / scale);
    }
    /* int / int: the exact quotient, correctly rounded */
    char q[360];
    snprintf(q, sizeof q, "%.0fe-%lld", whole, (long long)precision);
    return tv_float(strtod(q, NULL));
}

/* Jinja2's filters (transformers' tojson), with their parameters after the value */
#define ANY (SIG_VARARGS | SIG_VARKW)
static const struct tsig filters[] = {
    {"default", {"default_value", "boolean"}, 0, 0},
    {"d", {"default_value", "boolean"}, 0, 0},
    {"length", {NULL}, 0, SIG_POSONLY},
    {"count", {NULL}, 0, SIG_POSONLY},
    {"string", {NULL}, 0, 0},
    {"safe", {NULL}, 0, 0},
    {"list", {NULL}, 0, 0},
    {"tojson", {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, 0},
    {"items", {NULL}, 0, 0},
    {"first", {NULL}, 0, 0},
    {"last", {NULL}, 0, 0},
    {"join", {"d", "attribute"}, 0, 0},
    {"select", {NULL}, 0, ANY},
    {"reject", {NULL}, 0, ANY},
    {"selectattr", {NULL}, 0, ANY},
    {"rejectattr", {NULL}, 0, ANY},
    {"map", {NULL}, 0, ANY},
    {"attr", {"name"}, 1, 0},
    {"int", {"default", "base"}, 0, 0},
    {"float", {"default"}, 0, 0},
    {"abs", {NULL}, 0, SIG_POSONLY},
    {"round", {"precision", "method"}, 0, 0},
    {"dictsort", {"case_sensitive", "by", "reverse"}, 0, 0},
    {"sort", {"reverse", "case_sensitive", "attribute"}, 0, 0},
    {"unique", {"case_sensitive", "attribute"}, 0, 0},
    {"min", {"case_sensitive", "attribute"}, 0, 0},
    {"max", {"case_sensitive", "attribute"}, 0, 0},
    {"sum", {"attribute", "start"}, 0, 0},
    {"reverse", {NULL}, 0, 0},
    {"batch", {"linecount", "fill_with"}, 1, 0},
    {"trim", {"chars"}, 0, 0},
    {"upper", {NULL}, 0, 0},
    {"lower", {NULL}, 0, 0},
    {"title", {NULL}, 0, 0},
    {"capitalize", {NULL}, 0, 0},
    {"replace", {"old", "new", "count"}, 2, 0},
    {"indent", {"width", "first", "blank"}, 0, 0},
    {"escape", {NULL}, 0, SIG_POSONLY},
    {"e", {NULL}, 0, SIG_POSONLY},
    {"forceescape", {NULL}, 0, 0},
    {"format", {NULL}, 0, ANY},
    {"wordcount", {NULL}, 0, 0},
    {"center", {"width"}, 0, 0},
    {NULL, {NULL}, 0, 0},
};

struct tval tmpl_filter(struct teval *ev, const char *name, struct tval v, struct tval *args,
                        size_t n_args, const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    struct tval none = TV_MAKE_NONE, F = tv_bool(false);
    tmpl_step(ev);
    const struct tsig *sig = tmpl_sig_find(filters, name);
    if (!sig) tmpl_eval_fail(ev, "No filter named '%s'.", name);
    tmpl_check_args(ev, sig, n_args, kw_names, n_kw);
    if (name_is(name, "default") || name_is(name, "d")) {
        bool boolean = tv_truthy(ARG(1, "boolean", F));
        if (v.kind == TV_UNDEF || (boolean && !tv_truthy(v)))
            return ARG(0, "default_value", tv_str("", 0));
        return v;
    }
    if (name_is(name, "length") || name_is(name, "count")) return tv_int(tmpl_length(ev, v));
    if (name_is(name, "string")) return tv_to_str(ev->st, v);
    if (name_is(name, "safe")) return v.kind == TV_STR ? v : tv_to_str(ev->st, v);
    if (name_is(name, "list")) return tmpl_to_list(ev, v);
    if (name_is(name, "tojson")) return do_tojson(ev, v, args, n_args, kw_names, kw_vals, n_kw);
    if (name_is(name, "items")) {
        if (v.kind == TV_UNDEF) return tv_list(ev->st, 0);
        if (v.kind != TV_DICT) tmpl_eval_fail(ev, "Can only get item pairs from a mapping.");
        struct tval out = tv_list(ev->st, v.d->n);
        for (size_t i = 0; i < v.d->n; i++)
            tv_list_push(ev->st, out, tmpl_tuple2(ev, v.d->k[i], v.d->v[i]));
        return out;
    }
    if (name_is(name, "first") || name_is(name, "last")) {
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        if (!n) return tv_undef(ev->st, "No %s item, sequence was empty.", name);
        return name[0] == 'f' ? items[0] : items[n - 1];
    }
    if (name_is(name, "join")) {
        struct tval sep = ARG(0, "d", tv_str("", 0)), attr = ARG(1, "attribute", none);
        sep = tv_to_str(ev->st, sep);
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        struct tbuf b = {0};
        for (size_t i = 0; i < n; i++) {
            if (i) tbuf_put(ev->st, &b, sep.s.p, sep.s.n);
            tv_print(ev->st, &b,
                     attr.kind == TV_NONE ? items[i] : tmpl_get_path(ev, items[i], attr));
        }
        return tbuf_val(&b);
    }
    if (name_is(name, "select") || name_is(name, "reject"))
        return do_select(ev, v, args, n_args, kw_names, kw_vals, n_kw, false, name[0] == 'r');
    if (name_is(name, "selectattr") || name_is(name, "rejectattr"))
        return do_select(ev, v, args, n_args, kw_names, kw_vals, n_kw, true, name[0] == 'r');
    if (name_is(name, "map")) {
        /* map(attribute=A[, default=D]), or map(FILTER, *args, **kwargs) */
        size_t n = 0;
        struct tval *items = tv_truthy(v) ? tmpl_iterate(ev, v, &n) : NULL;
        struct tval out = tv_list(ev->st, n);
        struct tval attr = n_args ? none : ARG(99, "attribute", none), f = {0};
        if (attr.kind != TV_NONE) {
            for (size_t k = 0; k < n_kw; k++)
                if (!name_is(kw_names[k], "attribute") && !name_is(kw_names[k], "default"))
                    tmpl_eval_fail(ev, "Unexpected keyword argument '%.100s'", kw_names[k]);
        } else {
            if (!n_args) tmpl_eval_fail(ev, "map requires a filter argument");
            f = tmpl_need_str(ev, args[0], "filter name");
        }
        for (size_t i = 0; i < n; i++) {
            tmpl_step(ev);
            if (attr.kind != TV_NONE) {
                struct tval x = tmpl_get_path(ev, items[i], attr);
                if (x.kind == TV_UNDEF) x = ARG(99, "default", x);
                tv_list_push(ev->st, out, x);
            } else {
                tv_list_push(ev->st, out,
                             tmpl_filter(ev, tmpl_strdup(ev->st, f.s.p, f.s.n), items[i], args + 1,
                                         n_args - 1, kw_names, kw_vals, n_kw));
            }
        }
        return out;
    }
    if (name_is(name, "attr")) {
        struct tval a = tmpl_need_str(ev, ARG(0, "name", none), "attribute name");
        return tmpl_getattr(ev, v, a.s.p, a.s.n);
    }
    if (name_is(name, "int"))
        return to_int(ev, v, ARG(0, "default", tv_int(0)),
                      tmpl_need_int(ev, ARG(1, "base", tv_int(10)), "base"));
    if (name_is(name, "float")) return to_float(ev, v, ARG(0, "default", tv_float(0)));
    if (name_is(name, "abs")) {
        if (v.kind == TV_INT) {
            if (v.i == INT64_MIN) tmpl_eval_fail(ev, "integer overflow in abs");
            return tv_int(v.i < 0 ? -v.i : v.i);
        }
        if (v.kind == TV_BOOL) return tv_int(v.b);
        if (v.kind == TV_FLOAT) return tv_float(fabs(v.f));
        tmpl_eval_fail(ev, "bad operand type for abs(): '%s'", tv_type_name(v));
    }
    if (name_is(name, "round"))
        return do_round(ev, v, tmpl_need_int(ev, ARG(0, "precision", tv_int(0)), "precision"),
                        ARG(1, "method", tv_cstr("common")));
    if (name_is(name, "dictsort")) {
        if (v.kind != TV_DICT) tmpl_eval_fail(ev, "dictsort needs a mapping");
        bool cs = tv_truthy(ARG(0, "case_sensitive", F));
        struct tval by = ARG(1, "by", tv_cstr("key"));
        bool by_value = by.kind == TV_STR && by.s.n == 5 && !memcmp(by.s.p, "value", 5);
        size_t n = v.d->n;
        struct tval *items = tmpl_alloc(ev->st, (n + 1) * sizeof *items);
        struct tval *keys = tmpl_alloc(ev->st, (n + 1) * sizeof *keys);
        for (size_t i = 0; i < n; i++) {
            items[i] = tmpl_tuple2(ev, v.d->k[i], v.d->v[i]);
            keys[i] = sort_key(ev, by_value ? v.d->v[i] : v.d->k[i], cs);
        }
        return sorted(ev, items, keys, n, tv_truthy(ARG(2, "reverse", F)));
    }
    if (name_is(name, "sort")) {
        bool reverse = tv_truthy(ARG(0, "reverse", F)), cs = tv_truthy(ARG(1, "case_sensitive", F));
        struct tval attr = ARG(2, "attribute", none);
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        struct tval *keys = tmpl_alloc(ev->st, (n + 1) * sizeof *keys);
        for (size_t i = 0; i < n; i++)
            keys[i] = sort_key(
                ev, attr.kind == TV_NONE ? items[i] : tmpl_get_path(ev, items[i], attr), cs);
        return sorted(ev, items, keys, n, reverse);
    }
    if (name_is(name, "unique")) {
        bool cs = tv_truthy(ARG(0, "case_sensitive", F));
        struct tval attr = ARG(1, "attribute", none);
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        struct tval out = tv_list(ev->st, 0), seen = tv_list(ev->st, 0);
        for (size_t i = 0; i < n; i++) {
            struct tval k = sort_key(
                ev, attr.kind == TV_NONE ? items[i] : tmpl_get_path(ev, items[i], attr), cs);
            bool dup = false;
            for (size_t j = 0; j < seen.l->n && !dup; j++) {
                tmpl_step(ev);
                dup = tv_equal(ev->st, seen.l->v[j], k);
            }
            if (dup) continue;
            tv_list_push(ev->st, seen, k);
            tv_list_push(ev->st, out, items[i]);
        }
        return out;
    }
    if (name_is(name, "min") || name_is(name, "max") || name_is(name, "sum")) {
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        bool sum = name_is(name, "sum");
        struct tval attr = ARG(sum ? 0 : 1, "attribute", none);
        if (sum) {
            struct tval acc = ARG(1, "start", tv_int(0));
            for (size_t i = 0; i < n; i++) {
                tmpl_work(ev->st, 2); /* measured: an addition costs two units */
                struct tval x = attr.kind == TV_NONE ? items[i] : tmpl_get_path(ev, items[i], attr);
                if (!tv_is_number(x) || !tv_is_number(acc))
                    tmpl_eval_fail(ev, "sum needs numbers, not %s", tv_type_name(x));
                if (acc.kind == TV_FLOAT || x.kind == TV_FLOAT)
                    acc = tv_float(tv_as_double(acc) + tv_as_double(x));
                else if (__builtin_add_overflow(acc.kind == TV_BOOL ? acc.b : acc.i,
                                                x.kind == TV_BOOL ? x.b : x.i, &acc.i))
                    tmpl_eval_fail(ev, "integer overflow in sum");
                else
                    acc.kind = TV_INT;
            }
            return acc;
        }
        if (!n) return tv_undef(ev->st, "No aggregated item, sequence was empty.");
        bool cs = tv_truthy(ARG(0, "case_sensitive", F));
        size_t best = 0;
        struct tval bk =
            sort_key(ev, attr.kind == TV_NONE ? items[0] : tmpl_get_path(ev, items[0], attr), cs);
        for (size_t i = 1; i < n; i++) {
            struct tval k = sort_key(
                ev, attr.kind == TV_NONE ? items[i] : tmpl_get_path(ev, items[i], attr), cs);
            int c = tv_compare(ev->st, k, bk);
            if (name[1] == 'i' ? c < 0 : c > 0) {
                best = i;
                bk = k;
            }
        }
        return items[best];
    }
    if (name_is(name, "reverse")) {
        if (v.kind == TV_STR) {
            size_t n;
            struct tval *chars = tmpl_iterate(ev, v, &n);
            struct tbuf b = {0};
            for (size_t i = n; i-- > 0;)
                tbuf_put(ev->st, &b, chars[i].s.p, chars[i].s.n);
            return tbuf_val(&b);
        }
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        struct tval out = tv_list(ev->st, n);
        for (size_t i = n; i-- > 0;)
            tv_list_push(ev->st, out, items[i]);
        return out;
    }
    if (name_is(name, "batch")) {
        int64_t size = tmpl_need_int(ev, ARG(0, "linecount", tv_int(1)), "linecount");
        if (size <= 0) tmpl_eval_fail(ev, "batch size must be positive");
        struct tval fill = ARG(1, "fill_with", none);
        bool has_fill = fill.kind != TV_NONE;
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        struct tval out = tv_list(ev->st, 0), cur = {0};
        for (size_t i = 0; i < n; i++) {
            if (i % (size_t)size == 0) {
                cur = tv_list(ev->st, 0);
                tv_list_push(ev->st, out, cur);
            }
            tv_list_push(ev->st, cur, items[i]);
        }
        if (has_fill && cur.l)
            while (cur.l->n < (size_t)size)
                tv_list_push(ev->st, cur, fill);
        return out;
    }

    /* the string filters: their input goes through str() first */
    struct tval s = tv_to_str(ev->st, v);
    tmpl_work(ev->st, s.s.n / 16);
    if (name_is(name, "trim")) return tstr_strip(ev, s, ARG(0, "chars", none), true, true);
    if (name_is(name, "upper")) return tstr_case(ev, s, CASE_UPPER);
    if (name_is(name, "lower")) return tstr_case(ev, s, CASE_LOWER);
    if (name_is(name, "title")) return tstr_case(ev, s, CASE_WORDS);
    if (name_is(name, "capitalize")) return tstr_case(ev, s, CASE_CAPITALIZE);
    if (name_is(name, "replace")) {
        struct tval count = ARG(2, "count", none);
        return tstr_replace(ev, s, tv_to_str(ev->st, ARG(0, "old", tv_str("", 0))),
                            ARG(1, "new", tv_str("", 0)),
                            count.kind == TV_NONE ? -1 : tmpl_need_int(ev, count, "count"));
    }
    if (name_is(name, "indent"))
        return do_indent(ev, tmpl_need_str(ev, v, "indent's input"), ARG(0, "width", tv_int(4)),
                         tv_truthy(ARG(1, "first", F)), tv_truthy(ARG(2, "blank", F)));
    if (name_is(name, "escape") || name_is(name, "e") || name_is(name, "forceescape")) {
        struct tbuf b = {0};
        for (size_t i = 0; i < s.s.n; i++) {
            char c = s.s.p[i];
            const char *r = c == '&'    ? "&amp;"
                            : c == '<'  ? "&lt;"
                            : c == '>'  ? "&gt;"
                            : c == '"'  ? "&#34;"
                            : c == '\'' ? "&#39;"
                                        : NULL;
            if (r)
                tbuf_put(ev->st, &b, r, strlen(r));
            else
                tbuf_putc(ev->st, &b, c);
        }
        return tbuf_val(&b);
    }
    if (name_is(name, "format")) {
        /* str(value) % (kwargs or args) */
        if (n_args && n_kw)
            tmpl_eval_fail(ev, "can't handle positional and keyword arguments at the same time");
        if (n_kw) {
            struct tval d = tv_dict(ev->st, n_kw);
            for (size_t k = 0; k < n_kw; k++)
                tv_dict_set(ev->st, d, tv_cstr(kw_names[k]), kw_vals[k]);
            return tmpl_format(ev, s, d);
        }
        struct tval t = tv_list(ev->st, n_args);
        t.kind = TV_TUPLE;
        for (size_t i = 0; i < n_args; i++)
            tv_list_push(ev->st, t, args[i]);
        return tmpl_format(ev, s, t);
    }
    if (name_is(name, "wordcount")) return tv_int(tstr_words(ev, s));
    if (name_is(name, "center")) {
        int64_t w = tmpl_need_int(ev, ARG(0, "width", tv_int(80)), "width");
        if (w > TMPL_WIDTH_MAX) tmpl_eval_fail(ev, "width too large");
        tmpl_work(ev->st, s.s.n);
        int64_t len = (int64_t)utf8_count(s.s.p, s.s.n);
        if (w <= len) return s;
        int64_t left = (w - len) / 2 + ((w - len) & w & 1);
        struct tbuf b = {0};
        for (int64_t i = 0; i < left; i++)
            tbuf_putc(ev->st, &b, ' ');
        tbuf_put(ev->st, &b, s.s.p, s.s.n);
        for (int64_t i = 0; i < w - len - left; i++)
            tbuf_putc(ev->st, &b, ' ');
        return tbuf_val(&b);
    }
    tmpl_eval_fail(ev, "No filter named '%s'.", name);
}

bool tmpl_filter_exists(const char *name)
{
    return tmpl_sig_find(filters, name) != NULL;
}

/* ============================== Tests ============================== */

/* Jinja2's tests; the comparisons are Python's operator functions, which take no keywords */
static const struct tsig tests[] = {
    {"defined", {NULL}, 0, 0},
    {"undefined", {NULL}, 0, 0},
    {"none", {NULL}, 0, 0},
    {"string", {NULL}, 0, 0},
    {"number", {NULL}, 0, 0},
    {"integer", {NULL}, 0, 0},
    {"float", {NULL}, 0, 0},
    {"boolean", {NULL}, 0, 0},
    {"true", {NULL}, 0, 0},
    {"false", {NULL}, 0, 0},
    {"mapping", {NULL}, 0, 0},
    {"iterable", {NULL}, 0, 0},
    {"sequence", {NULL}, 0, 0},
    {"callable", {NULL}, 0, SIG_POSONLY},
    {"escaped", {NULL}, 0, 0},
    {"sameas", {"other"}, 1, 0},
    {"equalto", {"b"}, 1, SIG_POSONLY},
    {"eq", {"b"}, 1, SIG_POSONLY},
    {"==", {"b"}, 1, SIG_POSONLY},
    {"ne", {"b"}, 1, SIG_POSONLY},
    {"!=", {"b"}, 1, SIG_POSONLY},
    {"lt", {"b"}, 1, SIG_POSONLY},
    {"<", {"b"}, 1, SIG_POSONLY},
    {"lessthan", {"b"}, 1, SIG_POSONLY},
    {"le", {"b"}, 1, SIG_POSONLY},
    {"<=", {"b"}, 1, SIG_POSONLY},
    {"gt", {"b"}, 1, SIG_POSONLY},
    {">", {"b"}, 1, SIG_POSONLY},
    {"greaterthan", {"b"}, 1, SIG_POSONLY},
    {"ge", {"b"}, 1, SIG_POSONLY},
    {">=", {"b"}, 1, SIG_POSONLY},
    {"in", {"seq"}, 1, 0},
    {"odd", {NULL}, 0, 0},
    {"even", {NULL}, 0, 0},
    {"divisibleby", {"num"}, 1, 0},
    {"lower", {NULL}, 0, 0},
    {"upper", {NULL}, 0, 0},
    {"filter", {NULL}, 0, 0},
    {"test", {NULL}, 0, 0},
    {NULL, {NULL}, 0, 0},
};

bool tmpl_test(struct teval *ev, const char *name, struct tval v, struct tval *args, size_t n_args,
               const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    if (v.kind == TV_STR) tmpl_work(ev->st, WORK_BYTES(v.s.n));
    tmpl_step(ev);
    const struct tsig *sig = tmpl_sig_find(tests, name);
    if (!sig) tmpl_eval_fail(ev, "No test named '%s'.", name);
    tmpl_check_args(ev, sig, n_args, kw_names, n_kw);
    struct tval a = n_args ? args[0] : n_kw ? kw_vals[0] : TV_MAKE_UNDEF;
    if (name_is(name, "defined")) return v.kind != TV_UNDEF;
    if (name_is(name, "undefined")) return v.kind == TV_UNDEF;
    if (name_is(name, "none")) return v.kind == TV_NONE;
    if (name_is(name, "string")) return v.kind == TV_STR;
    if (name_is(name, "number")) return tv_is_number(v);
    if (name_is(name, "integer")) return v.kind == TV_INT;
    if (name_is(name, "float")) return v.kind == TV_FLOAT;
    if (name_is(name, "boolean")) return v.kind == TV_BOOL;
    if (name_is(name, "true")) return v.kind == TV_BOOL && v.b;
    if (name_is(name, "false")) return v.kind == TV_BOOL && !v.b;
    if (name_is(name, "mapping")) return v.kind == TV_DICT;
    if (name_is(name, "iterable"))
        return v.kind == TV_UNDEF || v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_TUPLE ||
               v.kind == TV_DICT;
    if (name_is(name, "sequence"))
        return v.kind == TV_UNDEF || v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_TUPLE ||
               v.kind == TV_DICT;
    if (name_is(name, "callable")) return v.kind == TV_MACRO || v.kind == TV_FUNC;
    if (name_is(name, "escaped")) return false;
    if (name_is(name, "sameas")) {
        if (v.kind != a.kind) return false;
        switch (v.kind) {
        case TV_NONE:
        case TV_UNDEF: return true;
        case TV_BOOL: return v.b == a.b;
        case TV_INT: return v.i == a.i;
        case TV_STR: return v.s.p == a.s.p && v.s.n == a.s.n;
        default: return v.l == a.l;
        }
    }
    if (name_is(name, "equalto") || name_is(name, "eq") || name_is(name, "=="))
        return tv_equal(ev->st, v, a);
    if (name_is(name, "ne") || name_is(name, "!=")) return !tv_equal(ev->st, v, a);
    if (name_is(name, "lt") || name_is(name, "<") || name_is(name, "lessthan"))
        return tv_compare(ev->st, v, a) < 0;
    if (name_is(name, "le") || name_is(name, "<=")) return tv_compare(ev->st, v, a) <= 0;
    if (name_is(name, "gt") || name_is(name, ">") || name_is(name, "greaterthan"))
        return tv_compare(ev->st, v, a) > 0;
    if (name_is(name, "ge") || name_is(name, ">=")) return tv_compare(ev->st, v, a) >= 0;
    if (name_is(name, "in")) {
        if (a.kind == TV_STR) {
            if (v.kind != TV_STR)
                tmpl_eval_fail(ev, "'in <string>' requires string as left operand");
            tmpl_work(ev->st, WORK_SEARCH(a.s.n));
            return tstr_find(a.s.p, a.s.n, v.s.p, v.s.n) != NULL;
        }
        if (a.kind == TV_LIST || a.kind == TV_TUPLE) {
            for (size_t i = 0; i < a.l->n; i++)
                if (tv_equal(ev->st, a.l->v[i], v)) return true;
            return false;
        }
        if (a.kind == TV_DICT) return tv_dict_get(ev->st, a, v) != NULL;
        if (a.kind == TV_UNDEF) return false;
        tmpl_eval_fail(ev, "argument of type '%s' is not iterable", tv_type_name(a));
    }
    if (name_is(name, "odd") || name_is(name, "even"))
        return tv_equal(ev->st, tmpl_arith(ev, OP_MOD, v, tv_int(2)), tv_int(name[0] == 'o'));
    if (name_is(name, "divisibleby"))
        return tv_equal(ev->st, tmpl_arith(ev, OP_MOD, v, a), tv_int(0));
    if (name_is(name, "lower") || name_is(name, "upper")) {
        if (v.kind != TV_STR) v = tv_to_str(ev->st, v);
        return tstr_all_chars(ev, v, name[0] == 'l' ? 'l' : 'u');
    }
    if (name_is(name, "filter") || name_is(name, "test")) {
        struct tval s = tmpl_need_str(ev, v, "name");
        char *n = tmpl_strdup(ev->st, s.s.p, s.s.n);
        return name[0] == 'f' ? tmpl_filter_exists(n) : tmpl_test_exists(n);
    }
    tmpl_eval_fail(ev, "No test named '%s'.", name);
}

bool tmpl_test_exists(const char *name)
{
    return tmpl_sig_find(tests, name) != NULL;
}
