/* template.c: the entry points: parse, render with JSON variables, free, and
 * vkllm_template_render for the app. The only file of the interpreter that
 * knows Jansson: the context is converted to template values here. */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

struct tmpl {
    struct tstate st; /* owns the tokens and the tree */
    struct tnodes body;
    struct tmpl_limits lim;
};

struct tmpl_limits tmpl_default_limits(void)
{
    return (struct tmpl_limits){.max_steps = 10 * 1000 * 1000,
                                .max_output = 16u << 20,
                                .max_memory = 256u << 20,
                                .max_depth = 200};
}

int tmpl_parse(const char *src, size_t len, const struct tmpl_limits *lim, struct tmpl **out,
               struct vkllm_error *err)
{
    *out = NULL;
    struct tmpl *t = calloc(1, sizeof *t);
    if (!t) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    t->lim = lim ? *lim : tmpl_default_limits();
    if (t->lim.max_depth < 1) t->lim.max_depth = 1;
    t->st.limit = t->lim.max_memory;
    if (setjmp(t->st.jmp)) {
        vkllm_fail(err, t->st.code, "%s", t->st.msg);
        int code = t->st.code;
        tmpl_free(t);
        return code;
    }
    size_t n;
    struct token *toks = tmpl_lex(&t->st, src ? src : "", src ? len : 0, &n);
    t->body = tmpl_parse_tokens(&t->st, toks, n, t->lim.max_depth);
    *out = t;
    return VKLLM_OK;
}

void tmpl_free(struct tmpl *t)
{
    if (!t) return;
    tmpl_arena_free(&t->st);
    free(t);
}

/* ============================== JSON to values ============================== */

int tmpl_json_check(const char *text, size_t len, const char *name, struct vkllm_error *err)
{
    size_t values = 1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            /* to the closing quote; a backslash takes the byte after it along */
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\') i++;
        } else if (c == ',' || c == '[' || c == '{') {
            if (++values > TMPL_JSON_MAX_VALUES)
                return vkllm_fail(err, VKLLM_E_FORMAT,
                                  "%s: more than %d JSON values (too large for a chat context)",
                                  name, TMPL_JSON_MAX_VALUES);
        }
    }
    return VKLLM_OK;
}

/* As deep as Jansson reads a file (JSON_PARSER_MAX_DEPTH): a context that
 * parsed converts, and only what the template does with a deep value (print,
 * compare, tojson: 500 levels) can fail, as in Python. Deeper is a json_t built
 * by hand, which the caller made. */
#define CONTEXT_DEPTH_MAX 2048

static struct tval from_json(struct tstate *st, const json_t *j, int depth)
{
    if (depth > CONTEXT_DEPTH_MAX)
        tmpl_fail(st, VKLLM_E_INVALID, "the context is nested more than %d levels deep",
                  CONTEXT_DEPTH_MAX);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        struct tval d = tv_dict(st, json_object_size(j));
        const char *key;
        json_t *v;
        /* Jansson keeps insertion order, as Python's dicts do */
        json_object_foreach((json_t *)j, key, v)
        {
            size_t n = strlen(key);
            tv_dict_push(st, d, tv_str(tmpl_strdup(st, key, n), n), from_json(st, v, depth + 1));
        }
        return d;
    }
    case JSON_ARRAY: {
        struct tval l = tv_list(st, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            tv_list_push(st, l, from_json(st, json_array_get(j, i), depth + 1));
        return l;
    }
    case JSON_STRING: {
        size_t n = json_string_length(j);
        return tv_str(tmpl_strdup(st, json_string_value(j), n), n);
    }
    case JSON_INTEGER: return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return tv_float(json_real_value(j));
    case JSON_TRUE: return tv_bool(true);
    case JSON_FALSE: return tv_bool(false);
    default: return TV_MAKE_NONE;
    }
}

int tmpl_render_json(const struct tmpl *t, const json_t *context, char **out, size_t *out_len,
                     struct vkllm_error *err)
{
    return tmpl_render_json_stop(t, context, NULL, NULL, out, out_len, err);
}

int tmpl_render_json_stop(const struct tmpl *t, const json_t *context, bool (*stop)(void *user),
                          void *user, char **out, size_t *out_len, struct vkllm_error *err)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return vkllm_fail(err, VKLLM_E_INVALID, "no template");
    if (context && !json_is_object(context))
        return vkllm_fail(err, VKLLM_E_INVALID, "the template context must be a JSON object");
    struct tstate *st = calloc(1, sizeof *st);
    if (!st) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    st->limit = t->lim.max_memory;
    st->work_limit = t->lim.max_steps * TMPL_WORK_PER_STEP;
    st->stop = stop;
    st->stop_user = user;
    struct teval ev = {.st = st, .lim = &t->lim};
    struct tbuf buf = {.limit = t->lim.max_output};
    if (setjmp(st->jmp)) {
        /* raise_exception's message goes out as it is, and "stopped"; others say where */
        if (st->line && strncmp(st->msg, "line ", 5) && st->code == VKLLM_E_INVALID && !ev.raised)
            vkllm_fail(err, st->code, "line %d: %s", st->line, st->msg);
        else
            vkllm_fail(err, st->code, "%s", st->msg);
        int code = st->code;
        tmpl_arena_free(st);
        free(st);
        return code;
    }
    struct tval vars = context ? from_json(st, context, 0) : tv_dict(st, 0);
    /* the render variables, and above them the template's own top level */
    ev.globals = tmpl_frame_new(&ev, NULL, vars);
    ev.frame = tmpl_frame_new(&ev, ev.globals, tv_dict(st, 0));
    ev.out = &buf;
    tmpl_exec_body(&ev, t->body);
    char *text = malloc(buf.n + 1);
    if (!text) tmpl_fail(st, VKLLM_E_NOMEM, "out of memory");
    if (buf.n) memcpy(text, buf.p, buf.n);
    text[buf.n] = 0;
    *out = text;
    if (out_len) *out_len = buf.n;
    tmpl_arena_free(st);
    free(st);
    return VKLLM_OK;
}

int vkllm_template_render(const char *tmpl, size_t len, const char *context_json, char **out,
                          size_t *out_len, struct vkllm_error *err)
{
    return vkllm_template_render_stop(tmpl, len, context_json, NULL, NULL, out, out_len, err);
}

int vkllm_template_render_stop(const char *tmpl, size_t len, const char *context_json,
                               bool (*stop)(void *user), void *user, char **out, size_t *out_len,
                               struct vkllm_error *err)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    json_t *ctx = NULL;
    if (context_json) {
        json_error_t jerr;
        int rc = tmpl_json_check(context_json, strlen(context_json), "context", err);
        if (rc) return rc;
        ctx = json_loads(context_json, JSON_ALLOW_NUL, &jerr);
        if (!ctx)
            return vkllm_fail(err, VKLLM_E_FORMAT, "context: line %d: %s", jerr.line, jerr.text);
        if (!json_is_object(ctx)) {
            json_decref(ctx);
            return vkllm_fail(err, VKLLM_E_FORMAT, "context: not a JSON object");
        }
    }
    struct tmpl *t;
    int rc = tmpl_parse(tmpl, len, NULL, &t, err);
    if (rc == VKLLM_OK) rc = tmpl_render_json_stop(t, ctx, stop, user, out, out_len, err);
    tmpl_free(t);
    json_decref(ctx);
    return rc;
}
