/* eval.c: runs the syntax tree. Scopes follow Jinja2: the render variables at
 * the root, then the template's top level, a fresh scope for every loop
 * iteration (a set inside a loop is gone at the next iteration: that is why
 * templates use namespace()), and one for every macro call. Every statement
 * and expression counts a step and nests a level, both bounded. */
#include "tmpl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct tframe {
    struct tframe *parent;
    struct tval vars; /* a dict */
};

_Noreturn void tmpl_eval_fail(struct teval *ev, const char *fmt, ...)
{
    char msg[sizeof ev->st->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tmpl_fail(ev->st, VKLLM_E_INVALID, "%s", msg);
}

void tmpl_step(struct teval *ev)
{
    if (++ev->steps > ev->lim->max_steps)
        tmpl_eval_fail(ev, "template exceeded %llu steps", (unsigned long long)ev->lim->max_steps);
    /* steps that do little work still ask the caller now and then (about every 0.5 ms) */
    struct tstate *st = ev->st;
    if (!(ev->steps & 4095) && st->stop && st->stop(st->stop_user))
        tmpl_fail(st, VKLLM_E_IO, "stopped");
}

static void enter(struct teval *ev)
{
    tmpl_step(ev);
    if (++ev->depth > ev->lim->max_depth * 4) tmpl_eval_fail(ev, "template recursion too deep");
}

static struct tframe *frame_new(struct teval *ev, struct tframe *parent)
{
    struct tframe *f = tmpl_alloc(ev->st, sizeof *f);
    f->parent = parent;
    f->vars = tv_dict(ev->st, 0);
    return f;
}

static void frame_set(struct teval *ev, struct tframe *f, const char *name, size_t n, struct tval v)
{
    tv_dict_set(ev->st, f->vars, tv_str(name, n), v);
}

static struct tval lookup(struct teval *ev, const char *name, size_t n)
{
    for (struct tframe *f = ev->frame; f; f = f->parent) {
        struct tval *v = tv_dict_getn(ev->st, f->vars, name, n);
        if (v) return *v;
    }
    struct tval g = tmpl_global(ev, tmpl_strdup(ev->st, name, n));
    if (g.kind != TV_UNDEF) return g;
    return tv_undef(ev->st, "'%.*s' is undefined", (int)(n > 100 ? 100 : n), name);
}

/* ============================== Operators ============================== */

static void need_defined(struct teval *ev, struct tval v)
{
    if (v.kind == TV_UNDEF) tv_undef_fail(ev->st, v);
}

_Noreturn static void bad_operands(struct teval *ev, const char *op, struct tval a, struct tval b)
{
    tmpl_eval_fail(ev, "unsupported operand type(s) for %s: '%s' and '%s'", op, tv_type_name(a),
                   tv_type_name(b));
}

static struct tval repeat(struct teval *ev, struct tval seq, int64_t times)
{
    /* nothing repeated any number of times is nothing, at once */
    if (times <= 0 || (seq.kind == TV_STR ? !seq.s.n : !seq.l->n)) times = 0;
    if (seq.kind == TV_STR) {
        if (seq.s.n && (uint64_t)times > ev->st->limit / seq.s.n)
            tmpl_eval_fail(ev, "string repetition too large");
        struct tbuf b = {0};
        for (int64_t i = 0; i < times; i++)
            tbuf_put(ev->st, &b, seq.s.p, seq.s.n);
        return tbuf_val(&b);
    }
    if (seq.l->n && (uint64_t)times > ev->st->limit / (seq.l->n * sizeof(struct tval)))
        tmpl_eval_fail(ev, "list repetition too large");
    struct tval out = tv_list(ev->st, seq.l->n * (size_t)times);
    out.kind = seq.kind;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.l->n; j++)
            tv_list_push(ev->st, out, seq.l->v[j]);
    return out;
}

struct tval tmpl_arith(struct teval *ev, int op, struct tval a, struct tval b)
{
    static const char *const names[] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    need_defined(ev, a);
    need_defined(ev, b);
    if (op == OP_MOD && a.kind == TV_STR) return tmpl_format(ev, a, b);
    if (tv_is_number(a) && tv_is_number(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
            int64_t x = a.kind == TV_BOOL ? a.b : a.i, y = b.kind == TV_BOOL ? b.b : b.i, r;
            switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r)) break;
                return tv_int(r);
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r)) break;
                return tv_int(r);
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r)) break;
                return tv_int(r);
            case OP_DIV:
                if (!y) tmpl_eval_fail(ev, "division by zero");
                return tv_float((double)x / (double)y);
            case OP_FLOORDIV:
            case OP_MOD: {
                if (!y) tmpl_eval_fail(ev, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) break;
                int64_t q = x / y, m = x % y;
                if (m && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                return tv_int(op == OP_MOD ? m : q);
            }
            case OP_POW:
                if (y < 0) return tv_float(pow((double)x, (double)y));
                r = 1;
                for (int64_t base = x, e = y; e; e >>= 1) {
                    if ((e & 1) && __builtin_mul_overflow(r, base, &r)) goto overflow;
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) goto overflow;
                }
                return tv_int(r);
            }
        overflow:
            tmpl_eval_fail(ev, "integer overflow in %s", names[op]);
        }
        double x = tv_as_double(a), y = tv_as_double(b);
        switch (op) {
        case OP_ADD: return tv_float(x + y);
        case OP_SUB: return tv_float(x - y);
        case OP_MUL: return tv_float(x * y);
        case OP_DIV:
            if (y == 0) tmpl_eval_fail(ev, "float division by zero");
            return tv_float(x / y);
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0) tmpl_eval_fail(ev, "float floor division by zero");
            /* CPython's float_divmod */
            double m = fmod(x, y), div = (x - m) / y, fd;
            if (m) {
                if ((y < 0) != (m < 0)) {
                    m += y;
                    div -= 1.0;
                }
            } else {
                m = copysign(0.0, y);
            }
            if (div) {
                fd = floor(div);
                if (div - fd > 0.5) fd += 1.0;
            } else {
                fd = copysign(0.0, x / y);
            }
            return tv_float(op == OP_MOD ? m : fd);
        }
        case OP_POW:
            if (x == 0 && y < 0) tmpl_eval_fail(ev, "0.0 cannot be raised to a negative power");
            return tv_float(pow(x, y));
        }
    }
    if (op == OP_ADD) {
        if (a.kind == TV_STR && b.kind == TV_STR) return tv_concat(ev->st, a, b);
        if ((a.kind == TV_LIST || a.kind == TV_TUPLE) && a.kind == b.kind) {
            struct tval out = tv_list(ev->st, a.l->n + b.l->n);
            out.kind = a.kind;
            for (size_t i = 0; i < a.l->n; i++)
                tv_list_push(ev->st, out, a.l->v[i]);
            for (size_t i = 0; i < b.l->n; i++)
                tv_list_push(ev->st, out, b.l->v[i]);
            return out;
        }
        if (a.kind == TV_STR)
            tmpl_eval_fail(ev, "can only concatenate str (not \"%s\") to str", tv_type_name(b));
    }
    if (op == OP_MUL) {
        bool a_seq = a.kind == TV_STR || a.kind == TV_LIST || a.kind == TV_TUPLE;
        bool b_seq = b.kind == TV_STR || b.kind == TV_LIST || b.kind == TV_TUPLE;
        if (a_seq && (b.kind == TV_INT || b.kind == TV_BOOL))
            return repeat(ev, a, b.kind == TV_BOOL ? b.b : b.i);
        if (b_seq && (a.kind == TV_INT || a.kind == TV_BOOL))
            return repeat(ev, b, a.kind == TV_BOOL ? a.b : a.i);
    }
    bad_operands(ev, names[op], a, b);
}

static bool contains(struct teval *ev, struct tval container, struct tval item)
{
    switch (container.kind) {
    case TV_UNDEF: return false;
    case TV_STR:
        if (item.kind == TV_UNDEF) tv_undef_fail(ev->st, item);
        if (item.kind != TV_STR)
            tmpl_eval_fail(ev, "'in <string>' requires string as left operand, not %s",
                           tv_type_name(item));
        tmpl_work(ev->st, WORK_SEARCH(container.s.n));
        return tstr_find(container.s.p, container.s.n, item.s.p, item.s.n) != NULL;
    case TV_LIST:
    case TV_TUPLE:
        for (size_t i = 0; i < container.l->n; i++)
            if (tv_equal(ev->st, container.l->v[i], item)) return true;
        return false;
    case TV_DICT: return tv_dict_get(ev->st, container, item) != NULL;
    default: tmpl_eval_fail(ev, "argument of type '%s' is not iterable", tv_type_name(container));
    }
}

static bool compare(struct teval *ev, int op, struct tval a, struct tval b)
{
    switch (op) {
    case OP_EQ: return tv_equal(ev->st, a, b);
    case OP_NE: return !tv_equal(ev->st, a, b);
    case OP_IN: return contains(ev, b, a);
    case OP_NOTIN: return !contains(ev, b, a);
    }
    int c = tv_compare(ev->st, a, b);
    switch (op) {
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

/* ============================== Slices ============================== */

static int64_t slice_index(struct teval *ev, struct tval v, bool *given)
{
    *given = false;
    if (v.kind == TV_NONE) return 0;
    if (v.kind == TV_UNDEF) tv_undef_fail(ev->st, v);
    if (v.kind != TV_INT && v.kind != TV_BOOL)
        tmpl_eval_fail(ev, "slice indices must be integers or None");
    *given = true;
    return v.kind == TV_BOOL ? v.b : v.i;
}

/* Python's slice.indices: fills the positions PICK of a sequence of LEN items. */
static size_t slice_pick(struct teval *ev, struct tval start_v, struct tval stop_v,
                         struct tval step_v, int64_t len, int64_t **pick)
{
    bool has_start, has_stop, has_step;
    int64_t start = slice_index(ev, start_v, &has_start), stop = slice_index(ev, stop_v, &has_stop);
    int64_t step = slice_index(ev, step_v, &has_step);
    if (!has_step) step = 1;
    if (step == 0) tmpl_eval_fail(ev, "slice step cannot be zero");
    if (step < -INT64_MAX) step = -INT64_MAX;
    if (!has_start) {
        start = step < 0 ? len - 1 : 0;
    } else {
        if (start < 0)
            start = start < -len ? (step < 0 ? -1 : 0) : start + len;
        else if (start >= len)
            start = step < 0 ? len - 1 : len;
    }
    if (!has_stop) {
        stop = step < 0 ? -1 : len;
    } else {
        if (stop < 0)
            stop = stop < -len ? (step < 0 ? -1 : 0) : stop + len;
        else if (stop >= len)
            stop = step < 0 ? len - 1 : len;
    }
    size_t n = 0;
    if (step > 0 && start < stop) n = (size_t)((stop - start - 1) / step + 1);
    if (step < 0 && start > stop) n = (size_t)((start - stop - 1) / (-step) + 1);
    *pick = tmpl_alloc(ev->st, (n ? n : 1) * sizeof **pick);
    for (size_t i = 0; i < n; i++)
        (*pick)[i] = start + (int64_t)i * step;
    return n;
}

static struct tval eval_slice(struct teval *ev, struct tnode *n)
{
    if (!n->a) {
        /* a slice inside a tuple subscript, x[1:2, 3]: Python makes a tuple of
         * slice objects that no str, list or dict accepts, so Jinja2 gives
         * Undefined; its parts are still evaluated */
        if (n->b) tmpl_eval_expr(ev, n->b);
        if (n->c) tmpl_eval_expr(ev, n->c);
        if (n->d) tmpl_eval_expr(ev, n->d);
        return tv_undef(ev->st, "slice object");
    }
    struct tval v = tmpl_eval_expr(ev, n->a);
    need_defined(ev, v);
    struct tval none = TV_MAKE_NONE;
    struct tval a = n->b ? tmpl_eval_expr(ev, n->b) : none,
                b = n->c ? tmpl_eval_expr(ev, n->c) : none,
                c = n->d ? tmpl_eval_expr(ev, n->d) : none;
    int64_t *pick;
    if (v.kind == TV_STR) {
        /* positions count characters, not bytes */
        tmpl_work(ev->st, v.s.n);
        size_t count = utf8_count(v.s.p, v.s.n);
        size_t *off = tmpl_alloc(ev->st, (count + 1) * sizeof *off), k = 0;
        for (const char *p = v.s.p, *end = p + v.s.n; p < end; p += utf8_len(p, end))
            off[k++] = (size_t)(p - v.s.p);
        off[count] = v.s.n;
        size_t m = slice_pick(ev, a, b, c, (int64_t)count, &pick);
        struct tbuf out = {0};
        for (size_t i = 0; i < m; i++)
            tbuf_put(ev->st, &out, v.s.p + off[pick[i]], off[pick[i] + 1] - off[pick[i]]);
        return tbuf_val(&out);
    }
    if (v.kind == TV_LIST || v.kind == TV_TUPLE) {
        size_t m = slice_pick(ev, a, b, c, (int64_t)v.l->n, &pick);
        struct tval out = tv_list(ev->st, m);
        out.kind = v.kind;
        for (size_t i = 0; i < m; i++)
            tv_list_push(ev->st, out, v.l->v[pick[i]]);
        return out;
    }
    /* Jinja2 slices with Python's own [] (not its getitem): no Undefined here */
    tmpl_eval_fail(ev, "'%s' object is not subscriptable", tv_type_name(v));
}

/* ============================== Calls ============================== */

/* Binds a call's arguments as Jinja2's Macro.__call__ does: positional ones
 * first, then keywords for the parameters left; *args, **kwargs and caller
 * exist only when the body uses them, and a call that passes what the macro
 * does not take is a TypeError. */
static struct tval call_macro(struct teval *ev, struct tmacro *m, struct tval *args, size_t n_args,
                              const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    struct tnode *node = m->node;
    const int uses = node->op & MACRO_USES;
    const char *name = node->kind == N_CALL_BLOCK ? "caller" : node->s;
    const int name_n = node->kind == N_CALL_BLOCK ? 6 : (int)(node->n > 100 ? 100 : node->n);
    struct tframe *saved_frame = ev->frame;
    struct tbuf *saved_out = ev->out;
    struct tframe *f = frame_new(ev, m->closure);
    ev->frame = f;
    bool *used = tmpl_alloc(ev->st, n_kw + 1);
    /* a call block's caller comes as if it were the keyword argument caller= */
    struct tval caller = m->caller;
    bool caller_left = caller.kind != TV_UNDEF, explicit_caller = false;
    for (size_t i = 0; i < node->args.n; i++) {
        struct tnode *param = node->args.v[i];
        struct tval v;
        bool found = false, is_caller = param->n == 6 && !memcmp(param->s, "caller", 6);
        explicit_caller |= is_caller;
        if (i < n_args) {
            v = args[i];
            found = true;
        }
        for (size_t k = 0; k < n_kw && !found; k++)
            if (strlen(kw_names[k]) == param->n && !memcmp(kw_names[k], param->s, param->n)) {
                v = kw_vals[k];
                used[k] = found = true;
            }
        if (!found && is_caller && caller_left) {
            v = caller;
            caller_left = false;
            found = true;
        }
        if (!found)
            v = param->a ? tmpl_eval_expr(ev, param->a)
                         : tv_undef(ev->st, "parameter '%.*s' was not provided", (int)param->n,
                                    param->s);
        frame_set(ev, f, param->s, param->n, v);
    }
    if ((uses & MACRO_CALLER) && !explicit_caller) {
        for (size_t k = 0; k < n_kw && caller_left; k++)
            if (!used[k] && !strcmp(kw_names[k], "caller")) {
                caller = kw_vals[k];
                used[k] = true;
                caller_left = false;
            }
        if (caller.kind == TV_UNDEF) caller = tv_undef(ev->st, "No caller defined");
        caller_left = false;
        frame_set(ev, f, "caller", 6, caller);
    }
    if (uses & MACRO_KWARGS) {
        struct tval kwargs = tv_dict(ev->st, 0);
        if (caller_left) tv_dict_set(ev->st, kwargs, tv_cstr("caller"), caller);
        for (size_t k = 0; k < n_kw; k++)
            if (!used[k]) tv_dict_set(ev->st, kwargs, tv_cstr(kw_names[k]), kw_vals[k]);
        frame_set(ev, f, "kwargs", 6, kwargs);
    } else {
        const char *extra = NULL;
        for (size_t k = 0; k < n_kw && !extra; k++)
            if (!used[k]) extra = kw_names[k];
        if (caller_left || (extra && !strcmp(extra, "caller")))
            tmpl_eval_fail(ev,
                           "macro '%.*s' was invoked with two values for the special caller "
                           "argument. This is most likely a bug.",
                           name_n, name);
        if (extra)
            tmpl_eval_fail(ev, "macro '%.*s' takes no keyword argument '%.100s'", name_n, name,
                           extra);
    }
    if (uses & MACRO_VARARGS) {
        struct tval varargs = tv_list(ev->st, 0);
        varargs.kind = TV_TUPLE;
        for (size_t i = node->args.n; i < n_args; i++)
            tv_list_push(ev->st, varargs, args[i]);
        frame_set(ev, f, "varargs", 7, varargs);
    } else if (n_args > node->args.n) {
        tmpl_eval_fail(ev, "macro '%.*s' takes not more than %zu argument(s)", name_n, name,
                       node->args.n);
    }
    struct tbuf out = {.limit = ev->lim->max_output};
    ev->out = &out;
    tmpl_exec_body(ev, node->body);
    ev->loop_ctl = 0;
    ev->out = saved_out;
    ev->frame = saved_frame;
    return tbuf_val(&out);
}

struct tval tmpl_call(struct teval *ev, struct tval fn, struct tval *args, size_t n_args,
                      const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    if (fn.kind == TV_MACRO) return call_macro(ev, fn.m, args, n_args, kw_names, kw_vals, n_kw);
    if (fn.kind == TV_FUNC)
        return tmpl_call_builtin(ev, fn.fn, args, n_args, kw_names, kw_vals, n_kw);
    need_defined(ev, fn);
    tmpl_eval_fail(ev, "'%s' object is not callable", tv_type_name(fn));
}

/* Evaluates a node's positional and keyword arguments (with *args, **kwargs). */
struct targs {
    struct tval *v;
    size_t n;
    const char **kw_names;
    struct tval *kw_vals;
    size_t n_kw;
};

static struct targs eval_args(struct teval *ev, struct tnode *n)
{
    struct targs a = {0};
    struct tval dyn = {0}, dynkw = {0};
    size_t extra = 0, extra_kw = 0;
    if (n->dyn_args) {
        dyn = tmpl_eval_expr(ev, n->dyn_args);
        if (dyn.kind != TV_LIST && dyn.kind != TV_TUPLE) tmpl_eval_fail(ev, "*args must be a list");
        extra = dyn.l->n;
    }
    if (n->dyn_kwargs) {
        dynkw = tmpl_eval_expr(ev, n->dyn_kwargs);
        if (dynkw.kind != TV_DICT) tmpl_eval_fail(ev, "**kwargs must be a dict");
        extra_kw = dynkw.d->n;
    }
    a.v = tmpl_alloc(ev->st, (n->args.n + extra + 1) * sizeof *a.v);
    for (size_t i = 0; i < n->args.n; i++)
        a.v[a.n++] = tmpl_eval_expr(ev, n->args.v[i]);
    for (size_t i = 0; i < extra; i++)
        a.v[a.n++] = dyn.l->v[i];
    a.kw_names = tmpl_alloc(ev->st, (n->kwargs.n + extra_kw + 1) * sizeof *a.kw_names);
    a.kw_vals = tmpl_alloc(ev->st, (n->kwargs.n + extra_kw + 1) * sizeof *a.kw_vals);
    for (size_t i = 0; i < n->kwargs.n; i++) {
        struct tnode *kw = n->kwargs.v[i];
        a.kw_names[a.n_kw] = tmpl_strdup(ev->st, kw->s, kw->n);
        a.kw_vals[a.n_kw++] = tmpl_eval_expr(ev, kw->a);
    }
    for (size_t i = 0; i < extra_kw; i++) {
        struct tval k = dynkw.d->k[i];
        if (k.kind != TV_STR) tmpl_eval_fail(ev, "keywords must be strings");
        a.kw_names[a.n_kw] = tmpl_strdup(ev->st, k.s.p, k.s.n);
        a.kw_vals[a.n_kw++] = dynkw.d->v[i];
    }
    for (size_t i = 1; i < a.n_kw; i++)
        for (size_t j = 0; j < i; j++) {
            tmpl_work(ev->st, 1);
            if (!strcmp(a.kw_names[i], a.kw_names[j]))
                tmpl_eval_fail(ev, "got multiple values for keyword argument '%.100s'",
                               a.kw_names[i]);
        }
    return a;
}

/* Applies a chain of E_FILTER nodes whose innermost operand is NULL to V. */
static struct tval apply_filters(struct teval *ev, struct tnode *f, struct tval v)
{
    if (!f) return v;
    struct tval in = f->a ? apply_filters(ev, f->a, v) : v;
    struct targs a = eval_args(ev, f);
    return tmpl_filter(ev, f->s, in, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw);
}

/* ============================== Expressions ============================== */

struct tval tmpl_eval_expr(struct teval *ev, struct tnode *n)
{
    enter(ev);
    struct tval r;
    switch (n->kind) {
    case E_CONST: r = n->v; break;
    case E_NAME: r = lookup(ev, n->s, n->n); break;
    case E_LIST:
    case E_TUPLE:
        r = tv_list(ev->st, n->args.n);
        r.kind = n->kind == E_LIST ? TV_LIST : TV_TUPLE;
        for (size_t i = 0; i < n->args.n; i++)
            tv_list_push(ev->st, r, tmpl_eval_expr(ev, n->args.v[i]));
        break;
    case E_DICT:
        r = tv_dict(ev->st, n->args.n / 2);
        for (size_t i = 0; i + 1 < n->args.n; i += 2) {
            struct tval k = tmpl_eval_expr(ev, n->args.v[i]);
            if (k.kind == TV_LIST || k.kind == TV_DICT || k.kind == TV_NS || k.kind == TV_UNDEF)
                tmpl_eval_fail(ev, "unhashable type: '%s'", tv_type_name(k));
            tv_dict_set(ev->st, r, k, tmpl_eval_expr(ev, n->args.v[i + 1]));
        }
        break;
    case E_ATTR: {
        struct tval obj = tmpl_eval_expr(ev, n->a);
        need_defined(ev, obj);
        r = tmpl_getattr(ev, obj, n->s, n->n);
        break;
    }
    case E_ITEM: {
        struct tval obj = tmpl_eval_expr(ev, n->a);
        need_defined(ev, obj);
        r = tmpl_getitem(ev, obj, tmpl_eval_expr(ev, n->b));
        break;
    }
    case E_SLICE: r = eval_slice(ev, n); break;
    case E_CALL: {
        struct tval fn = tmpl_eval_expr(ev, n->a);
        struct targs a = eval_args(ev, n);
        r = tmpl_call(ev, fn, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw);
        break;
    }
    case E_FILTER: {
        struct tval v = n->a ? tmpl_eval_expr(ev, n->a) : tv_str("", 0);
        struct targs a = eval_args(ev, n);
        r = tmpl_filter(ev, n->s, v, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw);
        break;
    }
    case E_TEST: {
        struct tval v = tmpl_eval_expr(ev, n->a);
        struct targs a = eval_args(ev, n);
        r = tv_bool(tmpl_test(ev, n->s, v, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw) !=
                    (n->op != 0));
        break;
    }
    case E_NOT: r = tv_bool(!tv_truthy(tmpl_eval_expr(ev, n->a))); break;
    case E_NEG:
    case E_POS: {
        struct tval v = tmpl_eval_expr(ev, n->a);
        need_defined(ev, v);
        if (v.kind == TV_BOOL) v = tv_int(v.b);
        if (v.kind == TV_INT) {
            if (n->kind == E_NEG && v.i == INT64_MIN) tmpl_eval_fail(ev, "integer overflow in -");
            r = n->kind == E_NEG ? tv_int(-v.i) : v;
        } else if (v.kind == TV_FLOAT) {
            r = n->kind == E_NEG ? tv_float(-v.f) : v;
        } else {
            tmpl_eval_fail(ev, "bad operand type for unary %c: '%s'", n->kind == E_NEG ? '-' : '+',
                           tv_type_name(v));
        }
        break;
    }
    case E_BINOP:
        if (n->op == OP_CONCAT) {
            r = tv_str("", 0);
            for (size_t i = 0; i < n->args.n; i++)
                r = tv_concat(ev->st, r, tv_to_str(ev->st, tmpl_eval_expr(ev, n->args.v[i])));
        } else {
            struct tval a = tmpl_eval_expr(ev, n->a);
            r = tmpl_arith(ev, n->op, a, tmpl_eval_expr(ev, n->b));
        }
        break;
    case E_COMPARE: {
        struct tval a = tmpl_eval_expr(ev, n->a);
        r = tv_bool(compare(ev, n->op, a, tmpl_eval_expr(ev, n->b)));
        break;
    }
    case E_AND:
        r = tmpl_eval_expr(ev, n->a);
        if (tv_truthy(r)) r = tmpl_eval_expr(ev, n->b);
        break;
    case E_OR:
        r = tmpl_eval_expr(ev, n->a);
        if (!tv_truthy(r)) r = tmpl_eval_expr(ev, n->b);
        break;
    case E_COND:
        if (tv_truthy(tmpl_eval_expr(ev, n->a)))
            r = tmpl_eval_expr(ev, n->b);
        else
            r = n->c ? tmpl_eval_expr(ev, n->c)
                     : tv_undef(ev->st, "the inline if-expression evaluated to false and no else "
                                        "section was defined.");
        break;
    default: tmpl_eval_fail(ev, "line %d: not an expression", n->line);
    }
    ev->depth--;
    return r;
}

/* ============================== Statements ============================== */

static void assign(struct teval *ev, struct tnode *target, struct tval v)
{
    if (target->kind == E_NAME) {
        frame_set(ev, ev->frame, target->s, target->n, v);
    } else if (target->kind == E_ATTR) {
        struct tval ns = lookup(ev, target->a->s, target->a->n);
        if (ns.kind != TV_NS) tmpl_eval_fail(ev, "cannot assign attribute on non-namespace object");
        tv_dict_set(ev->st, ns, tv_str(target->s, target->n), v);
    } else {
        size_t n;
        struct tval *items = tmpl_iterate(ev, v, &n);
        if (n != target->args.n)
            tmpl_eval_fail(ev,
                           n > target->args.n ? "too many values to unpack (expected %zu)"
                                              : "not enough values to unpack (expected %zu)",
                           target->args.n);
        for (size_t i = 0; i < n; i++)
            assign(ev, target->args.v[i], items[i]);
    }
}

/* loop.*: one dict per loop whose values change in place at each iteration */
static const char *const loop_keys[] = {"index",  "index0",   "revindex", "revindex0",
                                        "first",  "last",     "length",   "depth",
                                        "depth0", "previtem", "nextitem", "cycle"};
enum { LOOP_KEYS = sizeof loop_keys / sizeof loop_keys[0] };

static void exec_for(struct teval *ev, struct tnode *n)
{
    size_t count;
    struct tval *items = tmpl_iterate(ev, tmpl_eval_expr(ev, n->b), &count);
    struct tframe *saved = ev->frame;
    struct tframe *f = frame_new(ev, saved);
    ev->frame = f;
    if (n->c) { /* for x in xs if cond: filter first, so loop.length counts what is kept */
        size_t kept = 0;
        struct tval *keep = tmpl_alloc(ev->st, (count ? count : 1) * sizeof *keep);
        for (size_t i = 0; i < count; i++) {
            f->vars.d->n = 0;
            assign(ev, n->a, items[i]);
            if (tv_truthy(tmpl_eval_expr(ev, n->c))) keep[kept++] = items[i];
        }
        items = keep;
        count = kept;
    }
    struct tval loop = tv_dict(ev->st, LOOP_KEYS);
    struct tval cycle = {.kind = TV_FUNC};
    cycle.fn = tmpl_alloc(ev->st, sizeof *cycle.fn);
    *cycle.fn = (struct tfunc){.name = "loop.cycle", .self = loop, .method = true};
    for (size_t k = 0; k < LOOP_KEYS; k++)
        tv_dict_set(ev->st, loop, tv_cstr(loop_keys[k]), TV_MAKE_NONE);
    struct tval *lv = loop.d->v;
    lv[7] = tv_int(1);
    lv[8] = tv_int(0);
    lv[11] = cycle;
    struct tval no_prev = tv_undef(ev->st, "there is no previous item"),
                no_next = tv_undef(ev->st, "there is no next item");
    for (size_t i = 0; i < count; i++) {
        tmpl_step(ev);
        f->vars.d->n = 0; /* a fresh scope for each iteration */
        lv[0] = tv_int((int64_t)i + 1);
        lv[1] = tv_int((int64_t)i);
        lv[2] = tv_int((int64_t)(count - i));
        lv[3] = tv_int((int64_t)(count - i - 1));
        lv[4] = tv_bool(i == 0);
        lv[5] = tv_bool(i + 1 == count);
        lv[6] = tv_int((int64_t)count);
        lv[9] = i ? items[i - 1] : no_prev;
        lv[10] = i + 1 < count ? items[i + 1] : no_next;
        frame_set(ev, f, "loop", 4, loop);
        assign(ev, n->a, items[i]);
        tmpl_exec_body(ev, n->body);
        int ctl = ev->loop_ctl;
        ev->loop_ctl = 0;
        if (ctl == 1) break;
    }
    ev->frame = saved;
    if (!count) tmpl_exec_body(ev, n->orelse);
}

/* Runs BODY with its output captured; returns the text. The body has its own
 * scope, as Jinja2 gives set and filter blocks: a set inside stays inside. */
static struct tval capture(struct teval *ev, struct tnodes body)
{
    struct tbuf *saved = ev->out;
    struct tframe *saved_frame = ev->frame;
    struct tbuf out = {.limit = ev->lim->max_output};
    ev->out = &out;
    ev->frame = frame_new(ev, saved_frame);
    tmpl_exec_body(ev, body);
    ev->frame = saved_frame;
    ev->out = saved;
    return tbuf_val(&out);
}

static void exec_stmt(struct teval *ev, struct tnode *n)
{
    enter(ev);
    switch (n->kind) {
    case N_TEXT: tbuf_put(ev->st, ev->out, n->s, n->n); break;
    case N_OUTPUT: {
        struct tval v = tmpl_eval_expr(ev, n->a);
        if (v.kind == TV_STR)
            tbuf_put(ev->st, ev->out, v.s.p, v.s.n);
        else
            tv_print(ev->st, ev->out, v);
        break;
    }
    case N_IF: tmpl_exec_body(ev, tv_truthy(tmpl_eval_expr(ev, n->a)) ? n->body : n->orelse); break;
    case N_FOR: exec_for(ev, n); break;
    case N_SET: assign(ev, n->a, tmpl_eval_expr(ev, n->b)); break;
    case N_SET_BLOCK: assign(ev, n->a, apply_filters(ev, n->b, capture(ev, n->body))); break;
    case N_FILTER_BLOCK: {
        struct tval v = apply_filters(ev, n->b, capture(ev, n->body));
        tv_print(ev->st, ev->out, v);
        break;
    }
    case N_MACRO: {
        struct tval m = {.kind = TV_MACRO};
        m.m = tmpl_alloc(ev->st, sizeof *m.m);
        m.m->node = n;
        m.m->closure = ev->frame;
        m.m->caller = TV_MAKE_UNDEF;
        frame_set(ev, ev->frame, n->s, n->n, m);
        break;
    }
    case N_CALL_BLOCK: {
        /* caller() renders the block's body; the called macro gets it as `caller` */
        struct tval caller = {.kind = TV_MACRO};
        caller.m = tmpl_alloc(ev->st, sizeof *caller.m);
        caller.m->node = n;
        caller.m->closure = ev->frame;
        caller.m->caller = TV_MAKE_UNDEF;
        struct tval fn = tmpl_eval_expr(ev, n->a->a);
        struct targs a = eval_args(ev, n->a);
        struct tval r;
        if (fn.kind == TV_MACRO) {
            struct tmacro with = *fn.m;
            with.caller = caller;
            r = call_macro(ev, &with, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw);
        } else {
            r = tmpl_call(ev, fn, a.v, a.n, a.kw_names, a.kw_vals, a.n_kw);
        }
        tv_print(ev->st, ev->out, r);
        break;
    }
    case N_BREAK: ev->loop_ctl = 1; break;
    case N_CONTINUE: ev->loop_ctl = 2; break;
    case N_SCOPE:
    case N_WITH: {
        struct tframe *saved = ev->frame;
        struct tframe *f = frame_new(ev, saved);
        /* with's values are computed in the outer scope, then bound */
        struct tval *vals = tmpl_alloc(ev->st, (n->args.n + 1) * sizeof *vals);
        for (size_t i = 0; i < n->args.n; i++)
            vals[i] = tmpl_eval_expr(ev, n->args.v[i]->b);
        ev->frame = f;
        for (size_t i = 0; i < n->args.n; i++)
            assign(ev, n->args.v[i]->a, vals[i]);
        tmpl_exec_body(ev, n->body);
        ev->frame = saved;
        break;
    }
    default: tmpl_eval_fail(ev, "line %d: not a statement", n->line);
    }
    ev->depth--;
}

void tmpl_exec_body(struct teval *ev, struct tnodes body)
{
    for (size_t i = 0; i < body.n && !ev->loop_ctl; i++) {
        ev->st->line = body.v[i]->line;
        exec_stmt(ev, body.v[i]);
    }
}

struct tframe *tmpl_frame_new(struct teval *ev, struct tframe *parent, struct tval vars)
{
    struct tframe *f = frame_new(ev, parent);
    f->vars = vars;
    return f;
}
