/* parser.c: tokens -> syntax tree, following Jinja2's parser.py rule by rule
 * (precedence from loosest to tightest):
 *
 *   expression  or_expr ["if" or_expr ["else" expression]]
 *   or_expr     and_expr ("or" and_expr)*
 *   and_expr    not_expr ("and" not_expr)*
 *   not_expr    "not" not_expr | compare
 *   compare     math1 (("=="|"!="|"<"|"<="|">"|">="|"in"|"not" "in") math1)*
 *   math1       concat (("+"|"-") concat)*
 *   concat      math2 ("~" math2)*
 *   math2       pow (("*"|"/"|"//"|"%") pow)*
 *   pow         unary ("**" unary)*          left-associative, as Jinja2
 *   unary       ("-"|"+") unary | primary postfix* ; then filters, tests, calls
 *
 * Statements: if/elif/else, for (targets, "if" filter, else), set (=, ns.attr,
 * block form with filters), macro, call, filter, break, continue, print, with,
 * and transformers' generation tag. Nesting is bounded by max_depth. */
#include "tmpl.h"

#include <stdio.h>
#include <string.h>

struct parser {
    struct tstate *st;
    const struct token *t;
    size_t n, i;
    int depth, max_depth;
    int loops; /* enclosing for loops in the current macro, for break/continue */
};

static const struct token *cur(struct parser *p)
{
    return &p->t[p->i];
}
static const struct token *peek(struct parser *p, size_t k)
{
    return &p->t[p->i + k < p->n ? p->i + k : p->n - 1];
}
static void advance(struct parser *p)
{
    if (p->i + 1 < p->n) p->i++;
}

static bool tok_is(const struct token *t, enum tok_kind k, const char *text)
{
    return t->kind == k && t->n == strlen(text) && !memcmp(t->p, text, t->n);
}
static bool is_op(struct parser *p, const char *op)
{
    return tok_is(cur(p), TK_OP, op);
}
static bool is_name(struct parser *p, const char *name)
{
    return tok_is(cur(p), TK_NAME, name);
}

static const char *describe(const struct token *t)
{
    switch (t->kind) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template data";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default: return NULL;
    }
}

_Noreturn static void parse_fail(struct parser *p, const char *fmt, const char *arg)
{
    const struct token *t = cur(p);
    char what[80];
    const char *d = describe(t);
    if (d)
        snprintf(what, sizeof what, "%s", d);
    else
        snprintf(what, sizeof what, "'%.*s'", (int)(t->n < 40 ? t->n : 40), t->p);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : what);
    tmpl_fail(p->st, VKLLM_E_FORMAT, "line %d: %s", t->line, msg);
}

static void expect_op(struct parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected '%s', got %%s", op);
        parse_fail(p, msg, NULL);
    }
    advance(p);
}

static void expect_kind(struct parser *p, enum tok_kind k)
{
    if (cur(p)->kind != k) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected '%s', got %%s", describe(&(struct token){.kind = k}));
        parse_fail(p, msg, NULL);
    }
    advance(p);
}

static const struct token *expect_name(struct parser *p)
{
    if (cur(p)->kind != TK_NAME) parse_fail(p, "expected a name, got %s", NULL);
    const struct token *t = cur(p);
    advance(p);
    return t;
}

static struct tnode *node(struct parser *p, enum tnode_kind kind)
{
    struct tnode *n = tmpl_alloc(p->st, sizeof *n);
    n->kind = kind;
    n->line = cur(p)->line;
    return n;
}

/* Appends N to L; the capacity is implicit: 4, then doubled at each power of two. */
static void push(struct parser *p, struct tnodes *l, struct tnode *n)
{
    if (l->n == 0 || (l->n >= 4 && (l->n & (l->n - 1)) == 0)) {
        size_t new_cap = l->n ? l->n * 2 : 4;
        l->v = tmpl_realloc(p->st, l->v, l->n * sizeof *l->v, new_cap * sizeof *l->v);
    }
    l->v[l->n++] = n;
}

static void enter(struct parser *p)
{
    if (++p->depth > p->max_depth) parse_fail(p, "template nested too deeply (at %s)", NULL);
}

/* ============================== Expressions ============================== */

static struct tnode *parse_expression(struct parser *p, bool with_condexpr);
static struct tnode *parse_unary(struct parser *p, bool with_filter);
static struct tnode *parse_primary(struct parser *p);
static struct tnode *parse_postfix(struct parser *p, struct tnode *n);

/* A name of extra end rules ("in", "recursive") that ends a tuple. */
static bool tuple_end(struct parser *p, const char *extra)
{
    enum tok_kind k = cur(p)->kind;
    return k == TK_VAR_END || k == TK_BLOCK_END || k == TK_EOF || is_op(p, ")") ||
           (extra && is_name(p, extra));
}

static struct tnode *parse_tuple(struct parser *p, bool simplified, bool with_condexpr,
                                 const char *extra_end, bool explicit_parens)
{
    struct tnode *t = node(p, E_TUPLE);
    bool is_tuple = false;
    for (;;) {
        if (t->args.n) expect_op(p, ",");
        if (tuple_end(p, extra_end)) break;
        struct tnode *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        push(p, &t->args, e);
        if (is_op(p, ","))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (t->args.n) return t->args.v[0];
        if (!explicit_parens) parse_fail(p, "expected an expression, got %s", NULL);
    }
    return t;
}

static void parse_call_args(struct parser *p, struct tnode *call)
{
    expect_op(p, "(");
    while (!is_op(p, ")")) {
        if (call->args.n || call->kwargs.n || call->dyn_args || call->dyn_kwargs) {
            expect_op(p, ",");
            if (is_op(p, ")")) break;
        }
        if (is_op(p, "*")) {
            advance(p);
            call->dyn_args = parse_expression(p, true);
        } else if (is_op(p, "**")) {
            advance(p);
            call->dyn_kwargs = parse_expression(p, true);
        } else if (cur(p)->kind == TK_NAME && tok_is(peek(p, 1), TK_OP, "=")) {
            struct tnode *kw = node(p, E_NAME);
            kw->s = cur(p)->p;
            kw->n = cur(p)->n;
            advance(p);
            advance(p);
            kw->a = parse_expression(p, true);
            push(p, &call->kwargs, kw);
        } else {
            push(p, &call->args, parse_expression(p, true));
        }
    }
    expect_op(p, ")");
}

/* NAME(.NAME)* of a filter or test, as one arena string. */
static void dotted_name(struct parser *p, struct tnode *n)
{
    const struct token *t = expect_name(p);
    struct tbuf b = {0};
    tbuf_put(p->st, &b, t->p, t->n);
    while (is_op(p, ".")) {
        advance(p);
        t = expect_name(p);
        tbuf_putc(p->st, &b, '.');
        tbuf_put(p->st, &b, t->p, t->n);
    }
    tbuf_putc(p->st, &b, 0);
    n->s = b.p;
    n->n = b.n - 1;
}

static struct tnode *parse_filter(struct parser *p, struct tnode *operand, bool start_inline)
{
    while (is_op(p, "|") || start_inline) {
        if (!start_inline) advance(p);
        start_inline = false;
        struct tnode *f = node(p, E_FILTER);
        dotted_name(p, f);
        if (is_op(p, "(")) parse_call_args(p, f);
        f->a = operand;
        operand = f;
    }
    return operand;
}

static struct tnode *parse_test(struct parser *p, struct tnode *operand)
{
    advance(p); /* is */
    struct tnode *t = node(p, E_TEST);
    if (is_name(p, "not")) {
        advance(p);
        t->op = 1;
    }
    dotted_name(p, t);
    t->a = operand;
    const struct token *c = cur(p);
    if (is_op(p, "(")) {
        parse_call_args(p, t);
    } else if ((c->kind == TK_NAME || c->kind == TK_STRING || c->kind == TK_INT ||
                c->kind == TK_FLOAT || is_op(p, "[") || is_op(p, "{")) &&
               !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
        if (is_name(p, "is")) parse_fail(p, "you cannot chain multiple tests with is", "");
        enter(p);
        push(p, &t->args, parse_postfix(p, parse_primary(p)));
        p->depth--;
    }
    return t;
}

static struct tnode *parse_filter_expr(struct parser *p, struct tnode *n)
{
    for (;;) {
        if (is_op(p, "|")) {
            n = parse_filter(p, n, false);
        } else if (is_name(p, "is")) {
            n = parse_test(p, n);
        } else if (is_op(p, "(")) {
            struct tnode *c = node(p, E_CALL);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static struct tnode *parse_subscribed(struct parser *p)
{
    struct tnode *s = node(p, E_SLICE), *first = NULL;
    if (is_op(p, ":")) {
        advance(p);
    } else {
        first = parse_expression(p, true);
        if (!is_op(p, ":")) return first;
        advance(p);
    }
    s->b = first;
    if (!is_op(p, "]") && !is_op(p, ",") && !is_op(p, ":")) s->c = parse_expression(p, true);
    if (is_op(p, ":")) {
        advance(p);
        if (!is_op(p, "]") && !is_op(p, ",")) s->d = parse_expression(p, true);
    }
    return s;
}

static struct tnode *parse_postfix(struct parser *p, struct tnode *n)
{
    for (;;) {
        if (is_op(p, ".")) {
            advance(p);
            const struct token *t = cur(p);
            if (t->kind == TK_NAME) {
                struct tnode *a = node(p, E_ATTR);
                a->a = n;
                a->s = t->p;
                a->n = t->n;
                n = a;
            } else if (t->kind == TK_INT) {
                struct tnode *it = node(p, E_ITEM), *k = node(p, E_CONST);
                k->v = tv_int(t->i);
                it->a = n;
                it->b = k;
                n = it;
            } else {
                parse_fail(p, "expected name or number, got %s", NULL);
            }
            advance(p);
        } else if (is_op(p, "[")) {
            advance(p);
            struct tnode *tup = node(p, E_TUPLE);
            while (!is_op(p, "]")) {
                if (tup->args.n) expect_op(p, ",");
                push(p, &tup->args, parse_subscribed(p));
            }
            expect_op(p, "]");
            if (!tup->args.n) parse_fail(p, "expected a subscript, got %s", NULL);
            struct tnode *key = tup->args.n == 1 ? tup->args.v[0] : tup;
            if (key->kind == E_SLICE) {
                key->a = n;
                n = key;
            } else {
                struct tnode *it = node(p, E_ITEM);
                it->a = n;
                it->b = key;
                n = it;
            }
        } else if (is_op(p, "(")) {
            struct tnode *c = node(p, E_CALL);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static struct tnode *constant(struct parser *p, struct tval v)
{
    struct tnode *n = node(p, E_CONST);
    n->v = v;
    return n;
}

static struct tnode *parse_primary(struct parser *p)
{
    const struct token *t = cur(p);
    struct tnode *n;
    switch (t->kind) {
    case TK_NAME:
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True")) {
            n = constant(p, tv_bool(true));
        } else if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False")) {
            n = constant(p, tv_bool(false));
        } else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) {
            n = constant(p, TV_MAKE_NONE);
        } else {
            n = node(p, E_NAME);
            n->s = t->p;
            n->n = t->n;
        }
        advance(p);
        return n;
    case TK_STRING: {
        /* adjacent strings join, as in Python */
        struct tbuf b = {0};
        n = node(p, E_CONST);
        while (cur(p)->kind == TK_STRING) {
            tbuf_put(p->st, &b, cur(p)->p, cur(p)->n);
            advance(p);
        }
        n->v = tbuf_val(&b);
        return n;
    }
    case TK_INT:
        n = constant(p, tv_int(t->i));
        advance(p);
        return n;
    case TK_FLOAT:
        n = constant(p, tv_float(t->f));
        advance(p);
        return n;
    default: break;
    }
    if (is_op(p, "(")) {
        advance(p);
        n = parse_tuple(p, false, true, NULL, true);
        expect_op(p, ")");
        return n;
    }
    if (is_op(p, "[")) {
        advance(p);
        n = node(p, E_LIST);
        while (!is_op(p, "]")) {
            if (n->args.n) expect_op(p, ",");
            if (is_op(p, "]")) break;
            push(p, &n->args, parse_expression(p, true));
        }
        expect_op(p, "]");
        return n;
    }
    if (is_op(p, "{")) {
        advance(p);
        n = node(p, E_DICT);
        while (!is_op(p, "}")) {
            if (n->args.n) expect_op(p, ",");
            if (is_op(p, "}")) break;
            push(p, &n->args, parse_expression(p, true));
            expect_op(p, ":");
            push(p, &n->args, parse_expression(p, true));
        }
        expect_op(p, "}");
        return n;
    }
    parse_fail(p, "unexpected %s", NULL);
}

static struct tnode *parse_unary(struct parser *p, bool with_filter)
{
    enter(p);
    struct tnode *n;
    if (is_op(p, "-") || is_op(p, "+")) {
        n = node(p, is_op(p, "-") ? E_NEG : E_POS);
        advance(p);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static struct tnode *binop(struct parser *p, enum tnode_kind kind, int op, struct tnode *a,
                           struct tnode *b)
{
    struct tnode *n = node(p, kind);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static struct tnode *parse_pow(struct parser *p)
{
    struct tnode *n = parse_unary(p, true);
    while (is_op(p, "**")) {
        advance(p);
        n = binop(p, E_BINOP, OP_POW, n, parse_unary(p, true));
    }
    return n;
}

static struct tnode *parse_math2(struct parser *p)
{
    struct tnode *n = parse_pow(p);
    for (;;) {
        int op = is_op(p, "*")    ? OP_MUL
                 : is_op(p, "/")  ? OP_DIV
                 : is_op(p, "//") ? OP_FLOORDIV
                 : is_op(p, "%")  ? OP_MOD
                                  : OP_NONE;
        if (!op) return n;
        advance(p);
        n = binop(p, E_BINOP, op, n, parse_pow(p));
    }
}

static struct tnode *parse_concat(struct parser *p)
{
    struct tnode *n = parse_math2(p);
    if (!is_op(p, "~")) return n;
    struct tnode *c = node(p, E_BINOP);
    c->op = OP_CONCAT;
    push(p, &c->args, n);
    while (is_op(p, "~")) {
        advance(p);
        push(p, &c->args, parse_math2(p));
    }
    return c;
}

static struct tnode *parse_math1(struct parser *p)
{
    struct tnode *n = parse_concat(p);
    for (;;) {
        int op = is_op(p, "+") ? OP_ADD : is_op(p, "-") ? OP_SUB : OP_NONE;
        if (!op) return n;
        advance(p);
        n = binop(p, E_BINOP, op, n, parse_concat(p));
    }
}

static struct tnode *parse_compare(struct parser *p)
{
    struct tnode *first = parse_math1(p), *result = NULL, *left = first;
    for (;;) {
        int op = is_op(p, "==")     ? OP_EQ
                 : is_op(p, "!=")   ? OP_NE
                 : is_op(p, "<")    ? OP_LT
                 : is_op(p, "<=")   ? OP_LE
                 : is_op(p, ">")    ? OP_GT
                 : is_op(p, ">=")   ? OP_GE
                 : is_name(p, "in") ? OP_IN
                                    : OP_NONE;
        if (op) {
            advance(p);
        } else if (is_name(p, "not") && tok_is(peek(p, 1), TK_NAME, "in")) {
            advance(p);
            advance(p);
            op = OP_NOTIN;
        } else {
            return result ? result : first;
        }
        /* a < b < c is (a < b) and (b < c), as in Python */
        struct tnode *right = parse_math1(p), *cmp = binop(p, E_COMPARE, op, left, right);
        result = result ? binop(p, E_AND, 0, result, cmp) : cmp;
        left = right;
    }
}

static struct tnode *parse_not(struct parser *p)
{
    if (is_name(p, "not")) {
        enter(p);
        struct tnode *n = node(p, E_NOT);
        advance(p);
        n->a = parse_not(p);
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static struct tnode *parse_and(struct parser *p)
{
    struct tnode *n = parse_not(p);
    while (is_name(p, "and")) {
        advance(p);
        n = binop(p, E_AND, 0, n, parse_not(p));
    }
    return n;
}

static struct tnode *parse_or(struct parser *p)
{
    struct tnode *n = parse_and(p);
    while (is_name(p, "or")) {
        advance(p);
        n = binop(p, E_OR, 0, n, parse_and(p));
    }
    return n;
}

static struct tnode *parse_condexpr(struct parser *p)
{
    enter(p);
    struct tnode *n = parse_or(p);
    while (is_name(p, "if")) {
        advance(p);
        struct tnode *c = node(p, E_COND);
        c->b = n;
        c->a = parse_or(p);
        if (is_name(p, "else")) {
            advance(p);
            c->c = parse_condexpr(p);
        }
        n = c;
    }
    p->depth--;
    return n;
}

static struct tnode *parse_expression(struct parser *p, bool with_condexpr)
{
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

/* ============================== Statements ============================== */

static struct tnodes parse_body(struct parser *p, const char *const *end_names);

/* Whether the current token (a name after {%) is one of END_NAMES. */
static bool at_end(struct parser *p, const char *const *end_names)
{
    for (; end_names && *end_names; end_names++)
        if (is_name(p, *end_names)) return true;
    return false;
}

static void check_target(struct parser *p, struct tnode *t)
{
    if (t->kind == E_NAME) return;
    if (t->kind == E_TUPLE) {
        for (size_t i = 0; i < t->args.n; i++)
            if (t->args.v[i]->kind != E_NAME) parse_fail(p, "can't assign to %s", "an expression");
        return;
    }
    parse_fail(p, "can't assign to %s", "an expression");
}

static struct tnode *parse_assign_target(struct parser *p, bool with_namespace,
                                         const char *extra_end)
{
    if (with_namespace && cur(p)->kind == TK_NAME && tok_is(peek(p, 1), TK_OP, ".") &&
        peek(p, 2)->kind == TK_NAME) {
        struct tnode *ns = node(p, E_NAME), *a = node(p, E_ATTR);
        ns->s = cur(p)->p;
        ns->n = cur(p)->n;
        advance(p);
        advance(p);
        a->s = cur(p)->p;
        a->n = cur(p)->n;
        a->a = ns;
        advance(p);
        return a;
    }
    struct tnode *t = parse_tuple(p, true, true, extra_end, false);
    check_target(p, t);
    return t;
}

static const char *const end_if[] = {"elif", "else", "endif", NULL};
static const char *const end_endif[] = {"endif", NULL};
static const char *const end_for[] = {"endfor", "else", NULL};
static const char *const end_endfor[] = {"endfor", NULL};

/* Consumes the end tag NAME after its {% (the caller saw it) and the %}. */
static void end_tag(struct parser *p)
{
    advance(p);
    expect_kind(p, TK_BLOCK_END);
}

static struct tnode *parse_if(struct parser *p)
{
    struct tnode *top = node(p, N_IF), *n = top;
    advance(p); /* if */
    for (;;) {
        n->a = parse_tuple(p, false, false, NULL, false);
        expect_kind(p, TK_BLOCK_END);
        n->body = parse_body(p, end_if);
        if (is_name(p, "elif")) {
            struct tnode *elif = node(p, N_IF);
            advance(p);
            push(p, &n->orelse, elif);
            n = elif;
            continue;
        }
        if (is_name(p, "else")) {
            end_tag(p);
            n->orelse = parse_body(p, end_endif);
        }
        end_tag(p);
        return top;
    }
}

static struct tnode *parse_for(struct parser *p)
{
    struct tnode *n = node(p, N_FOR);
    advance(p); /* for */
    n->a = parse_assign_target(p, false, "in");
    if (!is_name(p, "in")) parse_fail(p, "expected 'in', got %s", NULL);
    advance(p);
    n->b = parse_tuple(p, false, false, "recursive", false);
    if (is_name(p, "if")) {
        advance(p);
        n->c = parse_expression(p, true);
    }
    /* loop(...) would call the loop variable, a dict, much later */
    if (is_name(p, "recursive")) parse_fail(p, "recursive loops are not supported", NULL);
    expect_kind(p, TK_BLOCK_END);
    p->loops++;
    n->body = parse_body(p, end_for);
    p->loops--;
    if (is_name(p, "else")) {
        end_tag(p);
        n->orelse = parse_body(p, end_endfor);
    }
    end_tag(p);
    return n;
}

static struct tnode *parse_set(struct parser *p)
{
    static const char *const end_set[] = {"endset", NULL};
    struct tnode *n = node(p, N_SET);
    advance(p); /* set */
    n->a = parse_assign_target(p, true, NULL);
    if (is_op(p, "=")) {
        advance(p);
        n->b = parse_tuple(p, false, true, NULL, false);
        expect_kind(p, TK_BLOCK_END);
        return n;
    }
    n->kind = N_SET_BLOCK;
    if (n->a->kind != E_NAME && n->a->kind != E_ATTR)
        parse_fail(p, "can't assign to %s", "a tuple");
    n->b = parse_filter(p, NULL, false);
    expect_kind(p, TK_BLOCK_END);
    n->body = parse_body(p, end_set);
    end_tag(p);
    return n;
}

/* (a, b=default, ...) of a macro or call block, into N's args. */
static void parse_signature(struct parser *p, struct tnode *n)
{
    expect_op(p, "(");
    while (!is_op(p, ")")) {
        if (n->args.n) expect_op(p, ",");
        const struct token *t = expect_name(p);
        struct tnode *arg = node(p, E_NAME);
        arg->s = t->p;
        arg->n = t->n;
        if (is_op(p, "=")) {
            advance(p);
            arg->a = parse_expression(p, true);
        }
        push(p, &n->args, arg);
    }
    expect_op(p, ")");
}

/* The special names a macro's body uses (enum tmacro_uses), as Jinja2's
 * find_undeclared finds them to decide whether the macro takes caller,
 * **kwargs and *args; names that are assigned are not uses. A macro or call
 * block inside was summed up when it was parsed: its op's high bits. */
static int special_uses(const struct tnode *n)
{
    if (!n) return 0;
    if (n->kind == E_NAME) {
        static const char *const names[] = {"caller", "kwargs", "varargs"};
        for (int i = 0; i < 3; i++)
            if (n->n == strlen(names[i]) && !memcmp(n->s, names[i], n->n)) return 1 << i;
        return 0;
    }
    if (n->kind == N_MACRO || n->kind == N_CALL_BLOCK) return n->op >> 3 & MACRO_USES;
    int f = 0;
    if (n->kind != N_SET && n->kind != N_SET_BLOCK && n->kind != N_FOR) f |= special_uses(n->a);
    f |= special_uses(n->b) | special_uses(n->c) | special_uses(n->d);
    f |= special_uses(n->dyn_args) | special_uses(n->dyn_kwargs);
    for (size_t i = 0; i < n->args.n; i++)
        f |= special_uses(n->args.v[i]);
    for (size_t i = 0; i < n->kwargs.n; i++)
        f |= special_uses(n->kwargs.v[i]->a);
    for (size_t i = 0; i < n->body.n; i++)
        f |= special_uses(n->body.v[i]);
    for (size_t i = 0; i < n->orelse.n; i++)
        f |= special_uses(n->orelse.v[i]);
    return f;
}

/* Sets the op of macro or call block N: what its body uses, and (above) what
 * its whole subtree does, for a macro around it. */
static void set_macro_uses(struct tnode *n)
{
    int body = 0, all;
    for (size_t i = 0; i < n->body.n; i++)
        body |= special_uses(n->body.v[i]);
    all = body | special_uses(n->a);
    for (size_t i = 0; i < n->args.n; i++) /* parameters: their defaults */
        all |= special_uses(n->args.v[i]->a);
    n->op = body | all << 3;
}

/* A body that break and continue cannot leave (a macro's, a call block's):
 * the loops around it do not count inside. */
static struct tnodes parse_body_outside_loops(struct parser *p, const char *const *ends)
{
    int loops = p->loops;
    p->loops = 0;
    struct tnodes body = parse_body(p, ends);
    p->loops = loops;
    return body;
}

static struct tnode *parse_macro(struct parser *p)
{
    static const char *const end_macro[] = {"endmacro", NULL};
    struct tnode *n = node(p, N_MACRO);
    advance(p);
    const struct token *t = expect_name(p);
    n->s = t->p;
    n->n = t->n;
    parse_signature(p, n);
    expect_kind(p, TK_BLOCK_END);
    n->body = parse_body_outside_loops(p, end_macro);
    end_tag(p);
    set_macro_uses(n);
    return n;
}

static struct tnode *parse_call_block(struct parser *p)
{
    static const char *const end_call[] = {"endcall", NULL};
    struct tnode *n = node(p, N_CALL_BLOCK);
    advance(p);
    if (is_op(p, "(")) parse_signature(p, n);
    n->a = parse_expression(p, true);
    if (n->a->kind != E_CALL) parse_fail(p, "expected call, got %s", "an expression");
    expect_kind(p, TK_BLOCK_END);
    n->body = parse_body_outside_loops(p, end_call);
    end_tag(p);
    set_macro_uses(n);
    return n;
}

static struct tnode *parse_filter_block(struct parser *p)
{
    static const char *const end_filter[] = {"endfilter", NULL};
    struct tnode *n = node(p, N_FILTER_BLOCK);
    advance(p);
    n->b = parse_filter(p, NULL, true);
    expect_kind(p, TK_BLOCK_END);
    n->body = parse_body(p, end_filter);
    end_tag(p);
    return n;
}

static struct tnode *parse_with(struct parser *p)
{
    static const char *const end_with[] = {"endwith", NULL};
    struct tnode *n = node(p, N_WITH);
    advance(p);
    while (cur(p)->kind != TK_BLOCK_END) {
        if (n->args.n) expect_op(p, ",");
        struct tnode *s = node(p, N_SET);
        s->a = parse_assign_target(p, false, NULL);
        expect_op(p, "=");
        s->b = parse_expression(p, true);
        push(p, &n->args, s);
    }
    expect_kind(p, TK_BLOCK_END);
    n->body = parse_body(p, end_with);
    end_tag(p);
    return n;
}

static struct tnode *parse_statement(struct parser *p)
{
    const struct token *t = cur(p);
    if (t->kind != TK_NAME) parse_fail(p, "tag name expected, got %s", NULL);
    enter(p);
    struct tnode *n;
    if (is_name(p, "if")) {
        n = parse_if(p);
    } else if (is_name(p, "for")) {
        n = parse_for(p);
    } else if (is_name(p, "set")) {
        n = parse_set(p);
    } else if (is_name(p, "macro")) {
        n = parse_macro(p);
    } else if (is_name(p, "call")) {
        n = parse_call_block(p);
    } else if (is_name(p, "filter")) {
        n = parse_filter_block(p);
    } else if (is_name(p, "with")) {
        n = parse_with(p);
    } else if (is_name(p, "print")) {
        n = node(p, N_OUTPUT);
        advance(p);
        n->a = parse_tuple(p, false, true, NULL, false);
        expect_kind(p, TK_BLOCK_END);
    } else if (is_name(p, "break") || is_name(p, "continue")) {
        n = node(p, is_name(p, "break") ? N_BREAK : N_CONTINUE);
        if (!p->loops)
            parse_fail(p, "%s outside a loop", is_name(p, "break") ? "break" : "continue");
        advance(p);
        expect_kind(p, TK_BLOCK_END);
    } else if (is_name(p, "generation")) {
        static const char *const end_gen[] = {"endgeneration", NULL};
        n = node(p, N_SCOPE);
        advance(p);
        expect_kind(p, TK_BLOCK_END);
        n->body = parse_body(p, end_gen);
        end_tag(p);
    } else {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(t->n < 40 ? t->n : 40), t->p);
        parse_fail(p, "encountered unknown tag '%s'", name);
    }
    p->depth--;
    return n;
}

/* Statements up to one of END_NAMES (left current, after its {%) or, without
 * END_NAMES, to the end of the template. */
static struct tnodes parse_body(struct parser *p, const char *const *end_names)
{
    struct tnodes body = {0};
    for (;;) {
        const struct token *t = cur(p);
        if (t->kind == TK_EOF) {
            if (end_names) parse_fail(p, "unexpected end of template, expected '%s'", end_names[0]);
            return body;
        }
        if (t->kind == TK_TEXT) {
            struct tnode *n = node(p, N_TEXT);
            n->s = t->p;
            n->n = t->n;
            push(p, &body, n);
            advance(p);
        } else if (t->kind == TK_VAR_BEGIN) {
            advance(p);
            struct tnode *n = node(p, N_OUTPUT);
            n->a = parse_tuple(p, false, true, NULL, false);
            expect_kind(p, TK_VAR_END);
            push(p, &body, n);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            advance(p);
            if (at_end(p, end_names)) return body;
            push(p, &body, parse_statement(p));
        } else {
            parse_fail(p, "unexpected %s", NULL);
        }
    }
}

struct tnodes tmpl_parse_tokens(struct tstate *st, const struct token *toks, size_t n,
                                int max_depth)
{
    struct parser p = {.st = st, .t = toks, .n = n, .max_depth = max_depth};
    return parse_body(&p, NULL);
}
