/* builtins.c: what templates reach through values: iteration, len(), attribute
 * and item access with Jinja2's fallbacks and the sandbox's refusals, the
 * methods of dict and list, and the globals (range, namespace, dict,
 * raise_exception, strftime_now). Filters and tests are in filters.c, str and
 * its methods in strings.c. */
#include "tmpl.h"

#include "number.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ============================== Helpers ============================== */

struct tval tmpl_need_str(struct teval *ev, struct tval v, const char *what)
{
    if (v.kind == TV_UNDEF) tv_undef_fail(ev->st, v);
    if (v.kind != TV_STR) tmpl_eval_fail(ev, "%s must be str, not %s", what, tv_type_name(v));
    return v;
}

int64_t tmpl_need_int(struct teval *ev, struct tval v, const char *what)
{
    if (v.kind == TV_UNDEF) tv_undef_fail(ev->st, v);
    if (v.kind == TV_BOOL) return v.b;
    if (v.kind != TV_INT)
        tmpl_eval_fail(ev, "%s must be an integer, not %s", what, tv_type_name(v));
    return v.i;
}

struct tval tmpl_tuple2(struct teval *ev, struct tval a, struct tval b)
{
    struct tval t = tv_list(ev->st, 2);
    t.kind = TV_TUPLE;
    tv_list_push(ev->st, t, a);
    tv_list_push(ev->st, t, b);
    return t;
}

struct tval *tmpl_iterate(struct teval *ev, struct tval v, size_t *n)
{
    switch (v.kind) {
    case TV_UNDEF: *n = 0; return NULL;
    case TV_LIST:
    case TV_TUPLE: *n = v.l->n; return v.l->v;
    case TV_DICT: *n = v.d->n; return v.d->k;
    case TV_STR: {
        tmpl_work(ev->st, v.s.n); /* a character walked, an item made */
        size_t count = utf8_count(v.s.p, v.s.n), k = 0;
        struct tval *items = tmpl_alloc(ev->st, (count + 1) * sizeof *items);
        for (const char *p = v.s.p, *end = p + v.s.n; p < end;) {
            size_t len = utf8_len(p, end);
            items[k++] = tv_str(p, len);
            p += len;
        }
        *n = count;
        return items;
    }
    default: tmpl_eval_fail(ev, "'%s' object is not iterable", tv_type_name(v));
    }
}

struct tval tmpl_to_list(struct teval *ev, struct tval v)
{
    size_t n;
    struct tval *items = tmpl_iterate(ev, v, &n);
    struct tval out = tv_list(ev->st, n);
    for (size_t i = 0; i < n; i++)
        tv_list_push(ev->st, out, items[i]);
    return out;
}

int64_t tmpl_length(struct teval *ev, struct tval v)
{
    switch (v.kind) {
    case TV_UNDEF: return 0;
    case TV_STR: tmpl_work(ev->st, v.s.n); return (int64_t)utf8_count(v.s.p, v.s.n);
    case TV_LIST:
    case TV_TUPLE: return (int64_t)v.l->n;
    case TV_DICT: return (int64_t)v.d->n;
    default: tmpl_eval_fail(ev, "object of type '%s' has no len()", tv_type_name(v));
    }
}

/* ============================== Arguments ============================== */

const struct tsig *tmpl_sig_find(const struct tsig *table, const char *name)
{
    for (; table->name; table++)
        if (!strcmp(table->name, name)) return table;
    return NULL;
}

void tmpl_check_args(struct teval *ev, const struct tsig *sig, size_t n_args, const char **kw_names,
                     size_t n_kw)
{
    size_t n_params = 0;
    while (n_params < 5 && sig->params[n_params])
        n_params++;
    if (!(sig->flags & SIG_VARARGS) && n_args > n_params) {
        if (!n_params) tmpl_eval_fail(ev, "%s() takes no arguments (%zu given)", sig->name, n_args);
        tmpl_eval_fail(ev, "%s() takes at most %zu argument%s (%zu given)", sig->name, n_params,
                       n_params == 1 ? "" : "s", n_args);
    }
    if (n_kw && (sig->flags & SIG_POSONLY))
        tmpl_eval_fail(ev, "%s() takes no keyword arguments", sig->name);
    for (size_t k = 0; k < n_kw; k++) {
        size_t j = 0;
        while (j < n_params && strcmp(sig->params[j], kw_names[k]))
            j++;
        if (j == n_params && !(sig->flags & SIG_VARKW))
            tmpl_eval_fail(ev, "%s() got an unexpected keyword argument '%.100s'", sig->name,
                           kw_names[k]);
        if (j < n_params && j < n_args)
            tmpl_eval_fail(ev, "%s() got multiple values for argument '%s'", sig->name,
                           sig->params[j]);
    }
    for (size_t j = n_args; j < sig->required; j++) {
        size_t k = 0;
        while (k < n_kw && strcmp(sig->params[j], kw_names[k]))
            k++;
        if (k == n_kw)
            tmpl_eval_fail(ev, "%s() missing required argument '%s'", sig->name, sig->params[j]);
    }
}

/* ============================== Attributes and items ============================== */

static const char *object_repr(struct tval v)
{
    switch (v.kind) {
    case TV_NONE: return "None";
    case TV_DICT: return "dict object";
    case TV_STR: return "str object";
    case TV_LIST: return "list object";
    case TV_TUPLE: return "tuple object";
    case TV_INT: return "int object";
    case TV_FLOAT: return "float object";
    case TV_BOOL: return "bool object";
    case TV_NS: return "jinja2.utils.Namespace object";
    case TV_MACRO: return "jinja2.runtime.Macro object";
    default: return "object";
    }
}

static struct tval method(struct teval *ev, struct tval self, const char *name)
{
    struct tval f = {.kind = TV_FUNC};
    f.fn = tmpl_alloc(ev->st, sizeof *f.fn);
    *f.fn = (struct tfunc){.name = name, .self = self, .method = true};
    return f;
}

static const char *const str_methods[] = {"strip",     "lstrip",     "rstrip",       "split",
                                          "rsplit",    "startswith", "endswith",     "replace",
                                          "upper",     "lower",      "title",        "capitalize",
                                          "swapcase",  "casefold",   "format",       "find",
                                          "rfind",     "index",      "rindex",       "count",
                                          "join",      "splitlines", "isdigit",      "isalpha",
                                          "isalnum",   "isspace",    "isupper",      "islower",
                                          "isnumeric", "isdecimal",  "removeprefix", "removesuffix",
                                          "zfill",     "center",     "ljust",        "rjust",
                                          NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const dict_mutators[] = {"pop",    "popitem", "setdefault",
                                            "update", "clear",   NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};
static const char *const list_mutators[] = {"append",  "pop",  "insert", "extend", "remove",
                                            "reverse", "sort", "clear",  NULL};

static const char *in_table(const char *const *table, const char *name, size_t n)
{
    for (; *table; table++)
        if (strlen(*table) == n && !memcmp(*table, name, n)) return *table;
    return NULL;
}

static struct tval unsafe(struct teval *ev, struct tval obj, const char *name, size_t n)
{
    char q[TMPL_MSG_NAME];
    struct tval u = tv_undef(ev->st, "access to attribute '%s' of '%s' object is unsafe.",
                             tmpl_msg_text(q, sizeof q, name, n), tv_type_name(obj));
    u.flag = 1;
    return u;
}

static struct tval no_attr(struct teval *ev, struct tval obj, const char *name, size_t n)
{
    char q[TMPL_MSG_NAME];
    return tv_undef(ev->st, "'%s' has no attribute '%s'", object_repr(obj),
                    tmpl_msg_text(q, sizeof q, name, n));
}

struct tval tmpl_getattr(struct teval *ev, struct tval v, const char *name, size_t n)
{
    const char *m;
    if (n && name[0] == '_') return unsafe(ev, v, name, n);
    switch (v.kind) {
    case TV_DICT: {
        if ((m = in_table(dict_methods, name, n))) return method(ev, v, m);
        if (in_table(dict_mutators, name, n)) return unsafe(ev, v, name, n);
        struct tval *x = tv_dict_getn(ev->st, v, name, n);
        return x ? *x : no_attr(ev, v, name, n);
    }
    case TV_NS: {
        struct tval *x = tv_dict_getn(ev->st, v, name, n);
        return x ? *x : no_attr(ev, v, name, n);
    }
    case TV_STR:
        if ((m = in_table(str_methods, name, n))) return method(ev, v, m);
        return no_attr(ev, v, name, n);
    case TV_LIST:
    case TV_TUPLE:
        if ((m = in_table(list_methods, name, n))) return method(ev, v, m);
        if (v.kind == TV_LIST && in_table(list_mutators, name, n)) return unsafe(ev, v, name, n);
        return no_attr(ev, v, name, n);
    default: return no_attr(ev, v, name, n);
    }
}

struct tval tmpl_getitem(struct teval *ev, struct tval v, struct tval key)
{
    if (v.kind == TV_DICT || v.kind == TV_NS) {
        struct tval *x =
            v.kind == TV_DICT || key.kind == TV_STR ? tv_dict_get(ev->st, v, key) : NULL;
        if (x) return *x;
    } else if ((v.kind == TV_LIST || v.kind == TV_TUPLE || v.kind == TV_STR) &&
               (key.kind == TV_INT || key.kind == TV_BOOL)) {
        int64_t i = key.kind == TV_BOOL ? key.b : key.i;
        if (v.kind == TV_STR) {
            /* walk to the character from the nearer end: s[-1] looks at one */
            const char *p = v.s.p, *end = p + v.s.n;
            if (i >= 0) {
                for (; i > 0 && p < end; i--) {
                    tmpl_work(ev->st, 1);
                    p += utf8_len(p, end);
                }
                if (p < end) return tv_str(p, utf8_len(p, end));
            } else {
                const char *q = end;
                for (; i < 0 && q > p; i++) {
                    tmpl_work(ev->st, 1);
                    q -= utf8_back(p, q);
                }
                if (!i) return tv_str(q, utf8_len(q, end));
            }
        } else {
            int64_t len = (int64_t)v.l->n;
            if (i < 0) i += len;
            if (i >= 0 && i < len) return v.l->v[i];
        }
        struct tbuf b = {0};
        tv_repr(ev->st, &b, key);
        return tv_undef(ev->st, "%s has no element %.*s", object_repr(v), (int)b.n, b.p);
    }
    if (key.kind == TV_STR) return tmpl_getattr(ev, v, key.s.p, key.s.n);
    if (key.kind == TV_UNDEF) tv_undef_fail(ev->st, key);
    struct tbuf b = {0};
    tv_repr(ev->st, &b, key);
    return tv_undef(ev->st, "%s has no element %.*s", object_repr(v), (int)(b.n > 100 ? 100 : b.n),
                    b.p ? b.p : "");
}

/* Jinja2's attribute path for filters: "a.b.0" */
struct tval tmpl_get_path(struct teval *ev, struct tval v, struct tval path)
{
    if (path.kind == TV_INT) return tmpl_getitem(ev, v, path);
    tmpl_need_str(ev, path, "attribute");
    const char *p = path.s.p, *end = p + path.s.n;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        char *endnum;
        char part[32];
        size_t pn = (size_t)(dot - p);
        struct tval key = tv_str(p, pn);
        if (pn && pn < sizeof part) {
            memcpy(part, p, pn);
            part[pn] = 0;
            long long x = strtoll(part, &endnum, 10);
            if (!*endnum && part[0] != '-' && part[0] != '+') key = tv_int(x);
        }
        v = tmpl_getitem(ev, v, key);
        p = dot + 1;
    }
    return v;
}

/* ============================== Methods and globals ============================== */

static struct tval make_dict(struct teval *ev, struct tval *args, size_t n_args,
                             const char **kw_names, struct tval *kw_vals, size_t n_kw, bool ns)
{
    struct tval d = tv_dict(ev->st, n_kw);
    if (n_args > 1) tmpl_eval_fail(ev, "expected at most 1 argument, got %zu", n_args);
    if (n_args) {
        if (args[0].kind == TV_DICT || args[0].kind == TV_NS) {
            for (size_t i = 0; i < args[0].d->n; i++)
                tv_dict_set(ev->st, d, args[0].d->k[i], args[0].d->v[i]);
        } else {
            size_t n;
            struct tval *items = tmpl_iterate(ev, args[0], &n);
            for (size_t i = 0; i < n; i++) {
                size_t m;
                struct tval *kv = tmpl_iterate(ev, items[i], &m);
                if (m != 2)
                    tmpl_eval_fail(ev, "dictionary update sequence element has wrong length");
                tv_dict_set(ev->st, d, kv[0], kv[1]);
            }
        }
    }
    for (size_t k = 0; k < n_kw; k++)
        tv_dict_set(ev->st, d, tv_cstr(kw_names[k]), kw_vals[k]);
    if (ns) d.kind = TV_NS;
    return d;
}

/* transformers' strftime_now is datetime.now().strftime(format): the local
 * time. SOURCE_DATE_EPOCH (seconds since 1970, UTC: the reproducible-builds
 * convention) fixes it, as the tests fix 2026-01-15 00:00:00 to match the
 * reference renders; true, with *TM that time, when it is set and valid:
 * decimal digits only (no sign, space, hex or exponent), and no later than
 * 9999-12-31 23:59:59, the last second Python's datetime holds. Any other
 * value is ignored and the clock used, "abc", "1e9", "-1" and "253402300800"
 * alike: reproducible-builds.org asks build tools to fail on it, but vkllm is
 * not one, and a chat that fails because a build environment leaked a broken
 * setting (transformers never reads it) is worse; read as strtoll read it,
 * "abc" was silently 1970 and "1e9" one second past it. */
static bool fixed_time(struct tm *tm)
{
    const char *epoch = getenv("SOURCE_DATE_EPOCH");
    uint64_t secs;
    const char *why;
    if (!epoch || number_parse(epoch, strlen(epoch), NUMBER_COUNT, &secs, &why) ||
        secs > 253402300799u)
        return false;
    const time_t t = (time_t)secs;
    return (uint64_t)t == secs && gmtime_r(&t, tm);
}

/* The methods of dict and list, loop.cycle and the globals, as Python declares them */
static const struct tsig dict_sigs[] = {
    {"items", {NULL}, 0, 0},  {"keys", {NULL}, 0, 0},
    {"values", {NULL}, 0, 0}, {"get", {"key", "default"}, 1, SIG_POSONLY},
    {"copy", {NULL}, 0, 0},   {NULL, {NULL}, 0, 0},
};
static const struct tsig list_sigs[] = {
    {"index", {"value", "start", "stop"}, 1, SIG_POSONLY},
    {"count", {"value"}, 1, SIG_POSONLY},
    {"copy", {NULL}, 0, 0},
    {NULL, {NULL}, 0, 0},
};
static const struct tsig global_sigs[] = {
    {"loop.cycle", {NULL}, 0, SIG_VARARGS},
    {"raise_exception", {"message"}, 1, 0},
    {"strftime_now", {"format"}, 1, 0},
    {"namespace", {NULL}, 0, SIG_VARARGS | SIG_VARKW},
    {"dict", {NULL}, 0, SIG_VARARGS | SIG_VARKW},
    {"range", {"start", "stop", "step"}, 1, SIG_POSONLY},
    {NULL, {NULL}, 0, 0},
};

/* raise_exception's message, whole: a NUL byte would end it, so it becomes \x00 */
_Noreturn static void raise_message(struct teval *ev, struct tval msg)
{
    char text[sizeof ev->st->msg];
    ev->raised = true;
    tmpl_fail(ev->st, VKLLM_E_INVALID, "%s", tmpl_msg_text(text, sizeof text, msg.s.p, msg.s.n));
}

struct tval tmpl_call_builtin(struct teval *ev, struct tfunc *fn, struct tval *args, size_t n_args,
                              const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    const char *name = fn->name;
    struct tval self = fn->self, none = TV_MAKE_NONE;
    tmpl_step(ev);
    if (fn->method && self.kind == TV_STR)
        return tstr_method(ev, name, self, args, n_args, kw_names, kw_vals, n_kw);
    const struct tsig *sig = tmpl_sig_find(!fn->method || name_is(name, "loop.cycle") ? global_sigs
                                           : self.kind == TV_DICT                     ? dict_sigs
                                                                                      : list_sigs,
                                           name);
    if (!sig) tmpl_eval_fail(ev, "unknown function '%s'", name);
    tmpl_check_args(ev, sig, n_args, kw_names, n_kw);
    if (fn->method) {
        if (self.kind == TV_DICT && name_is(name, "loop.cycle")) {
            if (!n_args) tmpl_eval_fail(ev, "no items for cycling given");
            struct tval *i = tv_dict_getn(ev->st, self, "index0", 6);
            return args[(size_t)(i ? i->i : 0) % n_args];
        }
        if (self.kind == TV_DICT) {
            if (name_is(name, "get")) {
                struct tval *x = tv_dict_get(ev->st, self, args[0]);
                return x ? *x : ARG(1, "default", none);
            }
            if (name_is(name, "copy")) return make_dict(ev, &self, 1, NULL, NULL, 0, false);
            struct tval out = tv_list(ev->st, self.d->n);
            out.flag = name_is(name, "items")  ? VIEW_ITEMS
                       : name_is(name, "keys") ? VIEW_KEYS
                                               : VIEW_VALUES;
            for (size_t i = 0; i < self.d->n; i++)
                tv_list_push(ev->st, out,
                             name_is(name, "items")  ? tmpl_tuple2(ev, self.d->k[i], self.d->v[i])
                             : name_is(name, "keys") ? self.d->k[i]
                                                     : self.d->v[i]);
            return out;
        }
        if (self.kind == TV_LIST || self.kind == TV_TUPLE) {
            if (name_is(name, "copy")) return tmpl_to_list(ev, self);
            /* index(value, start, stop): Python's slice bounds */
            int64_t n = (int64_t)self.l->n, count = 0, lo = 0, hi = n;
            if (n_args > 1) lo = tmpl_need_int(ev, args[1], "slice index");
            if (n_args > 2) hi = tmpl_need_int(ev, args[2], "slice index");
            if (lo < 0 && (lo += n) < 0) lo = 0;
            if (hi < 0 && (hi += n) < 0) hi = 0;
            for (int64_t i = lo; i < hi && i < n; i++) {
                if (!tv_equal(ev->st, self.l->v[i], args[0])) continue;
                if (name_is(name, "index")) return tv_int(i);
                count++;
            }
            if (name_is(name, "index")) tmpl_eval_fail(ev, "value is not in list");
            return tv_int(count);
        }
        tmpl_eval_fail(ev, "unknown method '%s'", name);
    }
    if (name_is(name, "raise_exception"))
        raise_message(ev, tv_to_str(ev->st, ARG(0, "message", none)));
    if (name_is(name, "strftime_now")) {
        struct tval f = tmpl_need_str(ev, ARG(0, "format", none), "format");
        if (f.s.n > 256) tmpl_eval_fail(ev, "strftime format too long");
        char fmt[260], out[2048];
        memcpy(fmt, f.s.p, f.s.n);
        fmt[f.s.n] = 0;
        struct tm tm;
        if (!fixed_time(&tm)) {
            time_t now = time(NULL);
            if (!localtime_r(&now, &tm)) tmpl_eval_fail(ev, "strftime_now: no calendar time");
        }
        size_t n = fmt[0] ? strftime(out, sizeof out, fmt, &tm) : 0;
        return tv_str(tmpl_strdup(ev->st, out, n), n);
    }
    if (name_is(name, "namespace"))
        return make_dict(ev, args, n_args, kw_names, kw_vals, n_kw, true);
    if (name_is(name, "dict")) return make_dict(ev, args, n_args, kw_names, kw_vals, n_kw, false);
    if (name_is(name, "range")) {
        int64_t start = 0, stop, step = 1;
        if (n_args == 1) {
            stop = tmpl_need_int(ev, args[0], "range arg");
        } else if (n_args == 2 || n_args == 3) {
            start = tmpl_need_int(ev, args[0], "range arg");
            stop = tmpl_need_int(ev, args[1], "range arg");
            if (n_args == 3) step = tmpl_need_int(ev, args[2], "range arg");
        } else {
            tmpl_eval_fail(ev, "range expected 1 to 3 arguments, got %zu", n_args);
        }
        if (!step) tmpl_eval_fail(ev, "range() arg 3 must not be zero");
        double count = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                                : ceil(((double)start - (double)stop) / -(double)step);
        if (count < 0) count = 0;
        /* the sandbox's MAX_RANGE */
        if (count > 100000)
            tmpl_eval_fail(ev, "Range too big. The sandbox blocks ranges larger than MAX_RANGE "
                               "(100000).");
        struct tval out = tv_list(ev->st, (size_t)count);
        for (int64_t i = 0; i < (int64_t)count; i++)
            tv_list_push(ev->st, out, tv_int(start + i * step));
        return out;
    }
    tmpl_eval_fail(ev, "unknown function '%s'", name);
}

struct tval tmpl_global(struct teval *ev, const char *name)
{
    static const char *const globals[] = {
        "raise_exception", "strftime_now", "namespace", "dict", "range", NULL};
    for (const char *const *g = globals; *g; g++)
        if (!strcmp(*g, name)) {
            struct tval f = {.kind = TV_FUNC};
            f.fn = tmpl_alloc(ev->st, sizeof *f.fn);
            *f.fn = (struct tfunc){.name = *g, .self = TV_MAKE_NONE};
            return f;
        }
    return TV_MAKE_UNDEF;
}
