/* tmpl.h: the pieces of the chat-template interpreter, shared by its files.
 * Internal to engine/text/template/; the rest of the engine uses template.h.
 *
 * The interpreter runs in three stages, one file each, as Jinja2 does:
 *   lexer.c   source -> tokens (whitespace control: trim_blocks, lstrip_blocks, -/+)
 *   parser.c  tokens -> a tree of struct tnode
 *   eval.c    tree + variables -> output text; builtins.c holds the filters,
 *             tests, methods and globals; value.c the values and their printing.
 *
 * Memory: every allocation of a stage comes from one arena (struct tarena) that
 * is freed as a whole, so nothing is freed piecemeal and a failure anywhere can
 * leave at once: tmpl_fail() longjmps to the stage's entry point with a message.
 * This keeps the evaluator free of cleanup paths, which matters because a
 * hostile template may fail at any allocation (the arena has a byte limit). */
#ifndef VKLLM_TMPL_H
#define VKLLM_TMPL_H

#include "template.h"
#include "error.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define TMPL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TMPL_PRINTF(f, a)
#endif

/* ============================== Arena and failure ============================== */

struct tchunk;

/* One stage's memory and its way out on failure. */
struct tstate {
    struct tchunk *chunks;
    size_t used, limit;        /* bytes handed out so far; the most allowed */
    jmp_buf jmp;               /* where tmpl_fail goes */
    int code;                  /* status of the failure (VKLLM_E_...) */
    char msg[512];             /* its message */
    int line;                  /* source line being worked on, for messages (0: none) */
    uint64_t work, work_limit; /* units of work done (see tmpl_work); 0: no limit */
    uint64_t work_poll;        /* when work reaches this, check the limit and STOP */
    bool (*stop)(void *user);  /* the caller's way to stop a render (NULL: none) */
    void *stop_user;
    char *str_top;   /* end of the newest string tv_concat made, */
    size_t str_room; /* and the bytes reserved after it: a + b grows a in place */
};

/* Fills ST's message and jumps to its entry point. The message is exactly FMT's
 * text (raise_exception relies on that); callers add the line themselves. */
_Noreturn void tmpl_fail(struct tstate *st, int code, const char *fmt, ...) TMPL_PRINTF(3, 4);
void *tmpl_alloc(struct tstate *st, size_t n); /* zeroed, 16-byte aligned */
/* Work: the steps bound statements; units of work bound what one step may do,
 * priced for what it costs, so that the whole budget (10 units a step, 100
 * million by default) takes about a second on the slowest kind of unit:
 *   1 unit        an element made, compared, printed or looked up; a character
 *                 walked (UTF-8 decoded or counted); a piece of output appended
 *   WORK_BYTES(n) n bytes copied, compared or searched (memcpy, memcmp, memmem)
 *   WORK_CLASS    a character classified or case-mapped through utf8proc
 * tmpl_work counts N units and fails past the limit; every so often it also
 * asks the caller's stop function, so that a long render can be stopped. */
enum {
    WORK_CLASS = 8,   /* see above */
    WORK_PRINTF = 8,  /* a number or escape formatted by snprintf */
    WORK_ESCAPE = 4,  /* a character escaped by hand (\x01, \u00e9) */
    WORK_FLOAT = 160, /* a float printed: up to three snprintf and strtod for the shortest text */
};
#define TMPL_WORK_PER_STEP 10
#define WORK_BYTES(n)      ((uint64_t)(n) / 16 + 1)
/* N bytes searched by memmem: linear (two-way), but a few times slower than memchr
 * on a needle made to be hard */
#define WORK_SEARCH(n) ((uint64_t)(n) / 3 + 1)
void tmpl_work_poll(struct tstate *st);
static inline void tmpl_work(struct tstate *st, uint64_t n)
{
    st->work += n;
    if (st->work >= st->work_poll) tmpl_work_poll(st);
}
/* Grows the newest allocation P (OLD bytes) to NEW bytes in place when it is
 * the last thing in its chunk; otherwise copies. Returns the block. */
void *tmpl_realloc(struct tstate *st, void *p, size_t old, size_t new_size);
char *tmpl_strdup(struct tstate *st, const char *s, size_t n); /* NUL-terminated copy */
/* N bytes of P for a message, into BUF of SIZE bytes (as much as fits): a NUL
 * byte would end the message there, so it is written \x00. Returns BUF. */
const char *tmpl_msg_text(char *buf, size_t size, const char *p, size_t n);
/* BUF size for a name quoted in a message: 100 bytes of it at most, as before */
#define TMPL_MSG_NAME 105
void tmpl_arena_free(struct tstate *st);

/* ============================== Tokens ============================== */

enum tok_kind {
    TK_EOF,
    TK_TEXT,        /* template data, whitespace control applied */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING, /* escapes decoded */
    TK_INT,
    TK_FLOAT,
    TK_OP, /* an operator or bracket: text in p/n */
};

struct token {
    enum tok_kind kind;
    int line;
    const char *p; /* text (names, operators, data, decoded strings) */
    size_t n;
    int64_t i;
    double f;
};

/* Splits SRC into tokens (arena memory) as Jinja2's lexer does with
 * trim_blocks and lstrip_blocks on and keep_trailing_newline off. */
struct token *tmpl_lex(struct tstate *st, const char *src, size_t len, size_t *n_tokens);

/* ============================== Values ============================== */

enum tv_kind {
    TV_UNDEF, /* Jinja2's Undefined; s holds a hint for the error it raises */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_TUPLE, /* a list that prints with () */
    TV_DICT,
    TV_NS,    /* namespace(): a dict whose attributes can be set */
    TV_MACRO, /* a macro, or caller() inside a call block */
    TV_FUNC,  /* a global function or a bound method */
};

struct tlist;
struct tdict;
struct tmacro;
struct tfunc;

/* A value, passed by copy. Strings are UTF-8 bytes in an arena, never changed
 * after they are made; lists and dicts are shared by reference and changed only
 * while they are built (the sandbox is immutable), except namespaces. */
struct tval {
    uint8_t kind;
    uint8_t flag; /* TV_UNDEF: 1 = unsafe attribute (raises SecurityError);
                   * TV_LIST: a dict view (enum tv_view) */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct tlist *l;
        struct tdict *d;
        struct tmacro *m;
        struct tfunc *fn;
    };
};

/* What dict.items(), .keys() and .values() return: lists that print as Python's views. */
enum tv_view { VIEW_NONE, VIEW_ITEMS, VIEW_KEYS, VIEW_VALUES };

struct tlist {
    struct tval *v;
    size_t n, cap;
};

struct tdict {
    struct tval *k, *v; /* insertion order, as Python dicts keep it */
    size_t n, cap;
};

#define TV_MAKE_NONE  ((struct tval){.kind = TV_NONE})
#define TV_MAKE_UNDEF ((struct tval){.kind = TV_UNDEF})
static inline struct tval tv_bool(bool b)
{
    return (struct tval){.kind = TV_BOOL, .b = b};
}
static inline struct tval tv_int(int64_t i)
{
    return (struct tval){.kind = TV_INT, .i = i};
}
static inline struct tval tv_float(double f)
{
    return (struct tval){.kind = TV_FLOAT, .f = f};
}
static inline struct tval tv_str(const char *p, size_t n)
{
    return (struct tval){.kind = TV_STR, .s = {p, n}};
}
struct tval tv_cstr(const char *s);
struct tval tv_undef(struct tstate *st, const char *fmt, ...) TMPL_PRINTF(2, 3);

struct tval tv_list(struct tstate *st, size_t cap);
void tv_list_push(struct tstate *st, struct tval list, struct tval v);
struct tval tv_dict(struct tstate *st, size_t cap);
/* Sets KEY in a dict or namespace, replacing an equal key. */
void tv_dict_set(struct tstate *st, struct tval dict, struct tval key, struct tval v);
/* Appends KEY, known to be new. */
void tv_dict_push(struct tstate *st, struct tval dict, struct tval key, struct tval v);
/* The value of KEY, or NULL. */
struct tval *tv_dict_get(struct tstate *st, struct tval dict, struct tval key);
struct tval *tv_dict_getn(struct tstate *st, struct tval dict, const char *key, size_t n);

bool tv_truthy(struct tval v);
bool tv_equal(struct tstate *st, struct tval a, struct tval b);
/* Python's ordering: <0, 0, >0; fails (TypeError) for unorderable kinds. */
int tv_compare(struct tstate *st, struct tval a, struct tval b);
bool tv_is_number(struct tval v); /* int, float or bool */
double tv_as_double(struct tval v);
const char *tv_type_name(struct tval v); /* Python's: 'str', 'dict', 'NoneType' */
/* Fails with the undefined value's message (UndefinedError / SecurityError). */
_Noreturn void tv_undef_fail(struct tstate *st, struct tval v);

/* ============================== Text ============================== */

/* A growing byte buffer in the arena with an optional size limit. */
struct tbuf {
    char *p;
    size_t n, cap;
    size_t limit; /* 0: none (the arena limit still applies) */
};
void tbuf_put(struct tstate *st, struct tbuf *b, const char *s, size_t n);
void tbuf_putc(struct tstate *st, struct tbuf *b, char c);
void tbuf_printf(struct tstate *st, struct tbuf *b, const char *fmt, ...) TMPL_PRINTF(3, 4);
void tbuf_int(struct tstate *st, struct tbuf *b, int64_t v); /* decimal */
/* PREFIX, then C in DIGITS lowercase hex digits: "\\u" 0xe9 4 is \u00e9 */
void tbuf_hex(struct tstate *st, struct tbuf *b, const char *prefix, uint32_t c, int digits);
static inline struct tval tbuf_val(struct tbuf *b)
{
    return tv_str(b->p ? b->p : "", b->n);
}

/* Appends Python's str(V) / repr(V). Undefined prints as nothing. */
void tv_print(struct tstate *st, struct tbuf *b, struct tval v);
void tv_repr(struct tstate *st, struct tbuf *b, struct tval v);
struct tval tv_to_str(struct tstate *st, struct tval v); /* str(v) as a value */
/* A + B for strings. Appending to the string made last reuses its room, so a
 * template that grows one string in a loop costs linear memory, not quadratic. */
struct tval tv_concat(struct tstate *st, struct tval a, struct tval b);
/* Python's repr(float): the shortest text that reads back as the same double. */
void tv_print_float(struct tstate *st, struct tbuf *b, double f);

/* json.dumps(V, ensure_ascii=False, indent, separators, sort_keys).
 * INDENT NULL: no newlines; otherwise the text put before each level. */
struct tjson_opts {
    const char *indent;
    size_t indent_n;
    bool has_indent;
    const char *item_sep, *key_sep;
    size_t item_sep_n, key_sep_n;
    bool sort_keys;
};
void tv_json(struct tstate *st, struct tbuf *b, struct tval v, const struct tjson_opts *o,
             int level);

/* A stable merge sort of the indices IDX by CMP (which may fail). */
void tmpl_msort(struct tstate *st, size_t *idx, size_t n, int (*cmp)(void *ctx, size_t a, size_t b),
                void *ctx);

/* UTF-8 helpers: length of the character at P (1 for a bad byte), the number of
 * characters, and Python's str.isspace for the character at P (its length, or 0). */
size_t utf8_len(const char *p, const char *end);
size_t utf8_count(const char *p, size_t n);
size_t utf8_space(const char *p, const char *end);
/* Length of the character ending at END (0 at START), as utf8_len cuts them going
 * forward; of a whitespace character ending at END (0 if none). */
size_t utf8_back(const char *start, const char *end);
size_t utf8_space_back(const char *start, const char *end);

/* ============================== Syntax tree ============================== */

enum tnode_kind {
    /* statements */
    N_TEXT,         /* s */
    N_OUTPUT,       /* {{ a }} */
    N_IF,           /* if a: body else: orelse */
    N_FOR,          /* for a(target) in b [if c]: body else: orelse */
    N_SET,          /* set a(target) = b */
    N_SET_BLOCK,    /* set a(target) [| filters in args]: body */
    N_MACRO,        /* macro s(args, defaults in each arg's a): body */
    N_CALL_BLOCK,   /* call(args) a(the call): body */
    N_FILTER_BLOCK, /* filter (chain in args): body */
    N_BREAK,
    N_CONTINUE,
    N_SCOPE, /* body in its own scope ({% generation %}, {% with %}) */
    N_WITH,  /* with: args are N_SET: body */
    /* expressions */
    E_CONST,   /* v */
    E_NAME,    /* s */
    E_LIST,    /* args */
    E_TUPLE,   /* args */
    E_DICT,    /* args: keys and values alternating */
    E_ATTR,    /* a.s */
    E_ITEM,    /* a[b] */
    E_SLICE,   /* a[b:c:d] (each may be NULL) */
    E_CALL,    /* a(args, kwargs) */
    E_FILTER,  /* a | s(args, kwargs); a NULL in filter blocks and set blocks */
    E_TEST,    /* a is [not] s(args, kwargs); op != 0: negated */
    E_NOT,     /* not a */
    E_NEG,     /* -a */
    E_POS,     /* +a */
    E_BINOP,   /* a op b: + - * / // % ** ~ */
    E_COMPARE, /* a op b: == != < <= > >= in notin */
    E_AND,
    E_OR,
    E_COND, /* b if a else c */
};

enum tnode_op {
    OP_NONE,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN,
};

/* The special names a macro's body uses: Jinja2 gives it caller, **kwargs
 * and *args only then, and refuses a call that passes what it does not take. */
enum tmacro_uses { MACRO_CALLER = 1, MACRO_KWARGS = 2, MACRO_VARARGS = 4, MACRO_USES = 7 };

struct tnode;

struct tnodes {
    struct tnode **v;
    size_t n;
};

struct tnode {
    enum tnode_kind kind;
    int op; /* enum tnode_op; E_TEST: negated; N_MACRO, N_CALL_BLOCK:
             * enum tmacro_uses of the body, and << 3 of the whole node */
    int line;
    const char *s; /* a name, or N_TEXT's bytes */
    size_t n;
    struct tval v; /* E_CONST */
    struct tnode *a, *b, *c, *d;
    struct tnodes args;   /* positional arguments, items, parameters, filter chains */
    struct tnodes kwargs; /* keyword arguments: E_NAME nodes with the value in a */
    struct tnode *dyn_args, *dyn_kwargs; /* *args, **kwargs of a call */
    struct tnodes body, orelse;
};

/* Parses tokens into the statement list of the template. */
struct tnodes tmpl_parse_tokens(struct tstate *st, const struct token *toks, size_t n,
                                int max_depth);

/* ============================== Evaluation ============================== */

struct tframe;

/* One render: its arena, output, limits and scope chain. */
struct teval {
    struct tstate *st;
    const struct tmpl_limits *lim;
    uint64_t steps;
    int depth;
    struct tbuf *out;       /* where statements write now */
    struct tframe *frame;   /* innermost scope */
    struct tframe *globals; /* the render variables and the template's top level */
    int loop_ctl;           /* 1 break, 2 continue: pending loop control */
    bool raised;            /* the failure is raise_exception's: its message stays bare */
};

struct tmacro {
    struct tnode *node;     /* N_MACRO (or N_CALL_BLOCK for caller) */
    struct tframe *closure; /* scope it was defined in */
    struct tval caller;     /* caller() for a macro called from a call block */
};

/* A global function or a method bound to SELF; builtins.c knows the names. */
struct tfunc {
    const char *name;
    struct tval self;
    bool method;
};

struct tval tmpl_eval_expr(struct teval *ev, struct tnode *n);
void tmpl_exec_body(struct teval *ev, struct tnodes body);
/* Calls a callable value with evaluated arguments (kw_names/kw_vals: N_KW). */
struct tval tmpl_call(struct teval *ev, struct tval fn, struct tval *args, size_t n_args,
                      const char **kw_names, struct tval *kw_vals, size_t n_kw);
/* A op B for the arithmetic operators (Python's semantics, "%" formatting included). */
struct tval tmpl_arith(struct teval *ev, int op, struct tval a, struct tval b);
_Noreturn void tmpl_eval_fail(struct teval *ev, const char *fmt, ...) TMPL_PRINTF(2, 3);
void tmpl_step(struct teval *ev);
/* A scope holding the dict VARS, inside PARENT (NULL: the root). */
struct tframe *tmpl_frame_new(struct teval *ev, struct tframe *parent, struct tval vars);

/* ---- shared by builtins.c, filters.c and strings.c */

/* The widest padding a filter or method makes (center, zfill, tojson's indent...) */
#define TMPL_WIDTH_MAX 100000

static inline bool name_is(const char *name, const char *lit)
{
    return !strcmp(name, lit);
}

/* What a filter, test, method or global accepts, as Python declares it: the
 * calls are checked against it before they run, so that an argument too many,
 * an unknown keyword or one given twice is an error, as in Jinja2. */
enum {
    SIG_VARARGS = 1, /* *args: any number of positional arguments */
    SIG_VARKW = 2,   /* **kwargs: any keyword */
    SIG_POSONLY = 4, /* a builtin of Python's that takes no keywords ("str.strip") */
};
struct tsig {
    const char *name;
    const char *params[5]; /* in order; NULL ends the list */
    uint8_t required;      /* how many of the first params must be given */
    uint8_t flags;
};
/* The entry of TABLE (ended by a NULL name) for NAME, or NULL. */
const struct tsig *tmpl_sig_find(const struct tsig *table, const char *name);
/* Fails with Python's TypeError for a call of SIG that Python would refuse. */
void tmpl_check_args(struct teval *ev, const struct tsig *sig, size_t n_args, const char **kw_names,
                     size_t n_kw);

/* Argument I, or keyword KW, or DFLT (the call checked: never both). */
static inline struct tval arg_or(struct tval *args, size_t n_args, size_t i, const char **kw_names,
                                 struct tval *kw_vals, size_t n_kw, const char *kw,
                                 struct tval dflt)
{
    if (i < n_args) return args[i];
    for (size_t k = 0; k < n_kw; k++)
        if (!strcmp(kw_names[k], kw)) return kw_vals[k];
    return dflt;
}
#define ARG(i, kw, dflt) arg_or(args, n_args, i, kw_names, kw_vals, n_kw, kw, dflt)

/* The code point at P and its length in *LEN (a stray byte is itself). */
uint32_t utf8_decode_at(const char *p, const char *end, size_t *len);

/* V as a str / an int, or a TypeError naming WHAT. */
struct tval tmpl_need_str(struct teval *ev, struct tval v, const char *what);
int64_t tmpl_need_int(struct teval *ev, struct tval v, const char *what);
struct tval tmpl_tuple2(struct teval *ev, struct tval a, struct tval b);
struct tval tmpl_to_list(struct teval *ev, struct tval v); /* list(v) */
int64_t tmpl_length(struct teval *ev, struct tval v);      /* len(v); Undefined: 0 */
/* Jinja2's attribute path of filters ("a.b.0"). */
struct tval tmpl_get_path(struct teval *ev, struct tval v, struct tval path);

/* strings.c: str's operations. CHARS/SEP of kind none (or undefined) mean
 * whitespace; MAXSPLIT/COUNT < 0: no limit. */
/* CASE_TITLE is str.title(); CASE_WORDS Jinja2's title filter */
enum case_mode {
    CASE_UPPER,
    CASE_LOWER,
    CASE_FOLD,
    CASE_TITLE,
    CASE_CAPITALIZE,
    CASE_SWAP,
    CASE_WORDS
};
struct tval tstr_strip(struct teval *ev, struct tval s, struct tval chars, bool left, bool right);
struct tval tstr_split(struct teval *ev, struct tval s, struct tval sep, int64_t maxsplit,
                       bool from_right);
struct tval tstr_replace(struct teval *ev, struct tval s, struct tval old, struct tval new_s,
                         int64_t count);
struct tval tstr_case(struct teval *ev, struct tval s, enum case_mode mode);
struct tval tstr_splitlines(struct teval *ev, struct tval s, bool keepends);
const char *tstr_find(const char *h, size_t hn, const char *n, size_t nn);
bool tstr_affix(struct teval *ev, struct tval s, struct tval what, bool prefix);
/* 'a'lpha 'd'igit al'n'um 's'pace 'u'pper 'l'ower */
bool tstr_all_chars(struct teval *ev, struct tval s, int kind);
int64_t tstr_words(struct teval *ev, struct tval s); /* Jinja2's wordcount */
int64_t tstr_cp_index(struct teval *ev, const char *base, const char *at);
/* "fmt" % args */
struct tval tmpl_format(struct teval *ev, struct tval fmt, struct tval args);
/* A method of str called with arguments. */
struct tval tstr_method(struct teval *ev, const char *name, struct tval s, struct tval *args,
                        size_t n_args, const char **kw_names, struct tval *kw_vals, size_t n_kw);

/* builtins.c, filters.c */
/* Applies filter NAME to V with arguments; fails for an unknown name. */
struct tval tmpl_filter(struct teval *ev, const char *name, struct tval v, struct tval *args,
                        size_t n_args, const char **kw_names, struct tval *kw_vals, size_t n_kw);
bool tmpl_test(struct teval *ev, const char *name, struct tval v, struct tval *args, size_t n_args,
               const char **kw_names, struct tval *kw_vals, size_t n_kw);
bool tmpl_test_exists(const char *name);
bool tmpl_filter_exists(const char *name);
/* Attribute NAME of V, as Jinja's sandboxed getattr: methods of str, dict and
 * list, else a key; Undefined when absent. */
struct tval tmpl_getattr(struct teval *ev, struct tval v, const char *name, size_t n);
/* V[KEY]: index, key, then attribute. */
struct tval tmpl_getitem(struct teval *ev, struct tval v, struct tval key);
/* Calls a builtin function or method. */
struct tval tmpl_call_builtin(struct teval *ev, struct tfunc *fn, struct tval *args, size_t n_args,
                              const char **kw_names, struct tval *kw_vals, size_t n_kw);
/* The global functions (range, namespace, raise_exception, strftime_now, ...). */
struct tval tmpl_global(struct teval *ev, const char *name);
/* Items of an iterable (list, tuple, dict keys, string characters); fails for
 * others. Undefined is empty. */
struct tval *tmpl_iterate(struct teval *ev, struct tval v, size_t *n);

#endif
