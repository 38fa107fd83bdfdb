/* conversation.c: a conversation with a model: messages, their rendering by
 * the chat template, and the tokens of that rendering already in the KV cache.
 *
 * Every turn renders the whole conversation again. What is decoded is only
 * what the cache does not hold yet, found two ways:
 *
 *   by text    the cache remembers the text its tokens stand for, with marks
 *              (n_tokens, text_len) where a token run ends on a known byte: the
 *              end of each decoded prompt, and every reply token. The new
 *              rendering's common text prefix with it, cut back to a mark,
 *              keeps the tokens as they are, the model's own reply tokens
 *              included (re-tokenizing a reply rarely gives the sampled ids);
 *              only the text after the mark is tokenized.
 *   by tokens  when that keeps less than the whole cache (a template that
 *              rewrites history, dropped turns), the whole rendering is
 *              tokenized and the longest common token prefix with the cache is
 *              kept, if it is longer.
 *
 * The session is then cut back to the kept prefix and the rest decoded. When
 * the context would overflow, the oldest turns after the system prompt leave
 * the rendering (they stay in the message list, and in saved files).
 *
 * A token stands for at most max_token_bytes of text, so a rendering longer
 * than the context times that cannot fit: it is refused without tokenizing
 * it (a loaded message of 200 MiB would take seconds and gigabytes).
 *
 * Files without a chat template, or whose template fails, get a built-in
 * format chosen as llama.cpp's llm_chat_detect_template chooses it.
 */
#define _GNU_SOURCE /* memmem */
#include "atomic_file.h"
#include "error.h"
#include "text/template/template.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A conversation file larger than this is refused, as vkllm template refuses
 * a context file: without a limit an endless source (a FIFO fed by `yes`)
 * would take all the memory. */
#define CHAT_MAX_FILE (256u << 20)

struct message {
    char *role, *content;
    size_t len;
};

/* Tokens [0, n_tokens) of the cache stand for text [0, text_len). */
struct mark {
    uint32_t n_tokens;
    size_t text_len;
};

enum format {
    FMT_TEMPLATE,
    FMT_CHATML,
    FMT_LLAMA2,
    FMT_LLAMA3,
    FMT_MISTRAL,
    FMT_GEMMA,
    FMT_PHI3,
    FMT_ZEPHYR
};
static const char *const format_names[] = {"template", "chatml", "llama2", "llama3",
                                           "mistral",  "gemma",  "phi3",   "zephyr"};

struct vkllm_chat {
    const vkllm_vocab *vocab;
    vkllm_session *session;
    uint32_t n_ctx, n_reserve;
    uint32_t max_token_bytes; /* the longest text a token of the vocabulary stands for */
    void (*notice)(const char *msg, void *user);
    bool (*stop)(void *user);
    void *user;

    char *tmpl; /* the Jinja template, NULL if none */
    size_t tmpl_len;
    enum format format;
    bool mistral_v7;           /* the mistral format with [SYSTEM_PROMPT] */
    bool noted_no_user;        /* said that the template leaves the user's text out */
    bool template_errors;      /* a failing render is an error, not a fallback */
    char *bos_text, *eos_text; /* the BOS and EOS tokens' texts, "" if none */

    struct message *msgs; /* (n_msgs) */
    size_t n_msgs, cap_msgs;
    size_t first; /* the first message after the system prompt still rendered */
    size_t hint;  /* FIRST as the last prefill left it, kept by vkllm_chat_clear */

    /* the cache: tokens, the text they stand for, and the marks between */
    int32_t *tokens; /* (n_ctx) */
    uint32_t n_tokens;
    char *text;
    size_t text_len, text_cap;
    struct mark *marks; /* (n_ctx + 1), increasing in both fields */
    uint32_t n_marks;
    int32_t *scratch; /* (n_ctx + 1): a tokenized rendering */
    char *piece;
    int piece_cap;
};

static void notify(const vkllm_chat *c, const char *fmt, ...) VKLLM_PRINTF(2, 3);
static void notify(const vkllm_chat *c, const char *fmt, ...)
{
    if (!c->notice) return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->notice(msg, c->user);
}

static char *dup_text(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        if (len) memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* The text of TOKEN with control tokens spelled out, malloc'd; "" for none. */
static char *token_text(const vkllm_vocab *v, int32_t token)
{
    if (token < 0) return dup_text("", 0);
    int n = vkllm_token_to_piece(v, token, true, NULL, 0);
    if (n < 0) return dup_text("", 0);
    char *p = malloc((size_t)n + 1);
    if (p && vkllm_token_to_piece(v, token, true, p, n) == n) {
        p[n] = 0;
        return p;
    }
    free(p);
    return dup_text("", 0);
}

/* ============================== Built-in formats ============================== */

/* Whether TEXT is one special token of the vocabulary. */
static bool has_token(const vkllm_vocab *v, const char *text)
{
    int32_t ids[4];
    int n = vkllm_tokenize(v, text, strlen(text), false, true, ids, 4);
    if (n != 1) return false;
    char buf[64];
    int len = vkllm_token_to_piece(v, ids[0], false, buf, sizeof buf);
    return len == 0; /* a control token: its text is not printed */
}

/* llama.cpp's llm_chat_detect_template, on the template's text when there is
 * one, else on the vocabulary's special tokens. */
static enum format detect_format(const vkllm_chat *c, const vkllm_gguf *g)
{
    const char *t = c->tmpl;
#define HAS(s) (t ? strstr(t, s) != NULL : has_token(c->vocab, s))
    if (HAS("<|im_start|>")) return FMT_CHATML;
    if (HAS("[SYSTEM_PROMPT]") || (t && strstr(t, "[INST]") && strstr(t, "[/INST]") &&
                                   !strstr(t, "<<SYS>>") && strstr(t, "eos_token")))
        return FMT_MISTRAL;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return FMT_LLAMA3;
    if (HAS("<start_of_turn>")) return FMT_GEMMA;
    if (HAS("<|assistant|>") && HAS("<|end|>")) return FMT_PHI3;
    if (HAS("<|user|>") && HAS("<|endoftext|>")) return FMT_ZEPHYR;
    if (t && strstr(t, "[INST]")) return FMT_LLAMA2;
#undef HAS
    struct vkllm_gguf_str model;
    if (!t && vkllm_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL) == VKLLM_OK &&
        model.len == 5 && !memcmp(model.ptr, "llama", 5))
        return FMT_LLAMA2; /* a SentencePiece vocabulary without chat tokens */
    return FMT_CHATML;
}

struct out {
    char *p;
    size_t n, cap;
    bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        while (cap < o->n + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = 0;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* CONTENT without leading and trailing whitespace, as llama.cpp trims it. */
static void put_trimmed(struct out *o, const char *s, size_t n)
{
    while (n && strchr(" \t\n\r", s[0]))
        s++, n--;
    while (n && strchr(" \t\n\r", s[n - 1]))
        n--;
    put(o, s, n);
}

/* llama.cpp's llm_chat_apply_template for the formats we fall back on. */
static void render_builtin(const vkllm_chat *c, enum format format, const struct message *const *m,
                           size_t n, struct out *o)
{
    bool inside = true; /* llama2: within an [INST] turn */
    const char *pending_system = NULL;
    size_t pending_len = 0;
    if (format == FMT_LLAMA2) puts_(o, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i]->role, *text = m[i]->content;
        size_t len = m[i]->len;
        bool sys = !strcmp(role, "system"), user = !strcmp(role, "user");
        switch (format) {
        case FMT_LLAMA2:
            if (!inside) {
                puts_(o, "<s>[INST] ");
                inside = true;
            }
            if (sys) {
                puts_(o, "<<SYS>>\n");
                put_trimmed(o, text, len);
                puts_(o, "\n<</SYS>>\n\n");
            } else if (user) {
                put_trimmed(o, text, len);
                puts_(o, " [/INST]");
            } else {
                puts_(o, " ");
                put_trimmed(o, text, len);
                puts_(o, "</s>");
                inside = false;
            }
            break;
        case FMT_MISTRAL:
            if (sys && c->mistral_v7) {
                puts_(o, "[SYSTEM_PROMPT]");
                put(o, text, len);
                puts_(o, "[/SYSTEM_PROMPT]");
            } else if (sys) {
                pending_system = text, pending_len = len;
            } else if (user) {
                puts_(o, "[INST]");
                if (pending_system) {
                    put(o, pending_system, pending_len);
                    puts_(o, "\n\n");
                    pending_system = NULL;
                }
                put(o, text, len);
                puts_(o, "[/INST]");
            } else {
                put(o, text, len);
                puts_(o, "</s>");
            }
            break;
        case FMT_LLAMA3:
            puts_(o, "<|start_header_id|>");
            puts_(o, role);
            puts_(o, "<|end_header_id|>\n\n");
            put_trimmed(o, text, len);
            puts_(o, "<|eot_id|>");
            break;
        case FMT_GEMMA: /* no system role: its text opens the first user turn */
            if (sys) {
                pending_system = text, pending_len = len;
                break;
            }
            puts_(o, "<start_of_turn>");
            puts_(o, user ? "user" : "model");
            puts_(o, "\n");
            if (pending_system) {
                put_trimmed(o, pending_system, pending_len);
                puts_(o, "\n\n");
                pending_system = NULL;
            }
            put_trimmed(o, text, len);
            puts_(o, "<end_of_turn>\n");
            break;
        case FMT_PHI3:
        case FMT_ZEPHYR:
            puts_(o, "<|");
            puts_(o, role);
            puts_(o, "|>\n");
            put(o, text, len);
            puts_(o, format == FMT_PHI3 ? "<|end|>\n" : "<|endoftext|>\n");
            break;
        default: /* chatml */
            puts_(o, "<|im_start|>");
            puts_(o, role);
            puts_(o, "\n");
            put(o, text, len);
            puts_(o, "<|im_end|>\n");
            break;
        }
    }
    /* the generation prompt */
    switch (format) {
    case FMT_LLAMA2:
    case FMT_MISTRAL: break;
    case FMT_LLAMA3: puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
    case FMT_GEMMA: puts_(o, "<start_of_turn>model\n"); break;
    case FMT_PHI3:
    case FMT_ZEPHYR: puts_(o, "<|assistant|>\n"); break;
    default: puts_(o, "<|im_start|>assistant\n"); break;
    }
}

/* ============================== Rendering ============================== */

static bool is_system(const vkllm_chat *c)
{
    return c->n_msgs && !strcmp(c->msgs[0].role, "system");
}

/* The messages rendered: the system prompt, then those from FIRST on. */
static size_t window(const vkllm_chat *c, const struct message **m)
{
    size_t n = 0, from = c->first;
    if (is_system(c)) {
        m[n++] = &c->msgs[0];
        if (from < 1) from = 1;
    }
    for (size_t i = from; i < c->n_msgs; i++)
        m[n++] = &c->msgs[i];
    return n;
}

/* Through the Jinja template, with the variables transformers passes. */
static int render_template(const vkllm_chat *c, const struct message *const *m, size_t n,
                           char **out, size_t *out_len, struct vkllm_error *err)
{
    json_t *ctx = json_object(), *msgs = json_array();
    int rc = VKLLM_E_NOMEM;
    char *js = NULL;
    if (!ctx || !msgs) {
        json_decref(msgs);
        goto done;
    }
    if (json_object_set_new(ctx, "messages", msgs)) goto done; /* it took MSGS, even so */
    for (size_t i = 0; i < n; i++) {
        json_t *o =
            json_pack("{s:s, s:s%}", "role", m[i]->role, "content", m[i]->content, m[i]->len);
        if (!o || json_array_append_new(msgs, o)) goto done;
    }
    if (json_object_set_new(ctx, "tools", json_null()) ||
        json_object_set_new(ctx, "documents", json_null()) ||
        json_object_set_new(ctx, "add_generation_prompt", json_true()) ||
        json_object_set_new(ctx, "bos_token", json_string(c->bos_text)) ||
        json_object_set_new(ctx, "eos_token", json_string(c->eos_text)) ||
        !(js = json_dumps(ctx, JSON_COMPACT)))
        goto done;
    rc = vkllm_template_render_stop(c->tmpl, c->tmpl_len, js, c->stop, c->user, out, out_len, err);
    free(js);
    json_decref(ctx);
    return rc;
done:
    free(js);
    json_decref(ctx);
    return vkllm_fail(err, rc, "out of host memory");
}

/* Whether TEXT holds the last user message of M (without the blanks around it,
 * which templates often trim); an empty one, or none, counts as held. */
static bool holds_user_text(const struct message *const *m, size_t n, const char *text, size_t len)
{
    for (size_t i = n; i-- > 0;) {
        if (strcmp(m[i]->role, "user")) continue;
        const char *p = m[i]->content;
        size_t k = m[i]->len;
        while (k && strchr(" \t\n\r\f\v", *p) && *p)
            p++, k--;
        while (k && p[k - 1] && strchr(" \t\n\r\f\v", p[k - 1]))
            k--;
        /* glibc's memmem is linear (two-way): no quadratic search on a long message */
        return !k || memmem(text, len, p, k);
    }
    return true;
}

int vkllm_chat_render(vkllm_chat *c, char **out, size_t *out_len, struct vkllm_error *err)
{
    *out = NULL;
    const struct message **m = malloc((c->n_msgs + 1) * sizeof *m);
    if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    size_t n = window(c, m), len = 0;
    char *text = NULL;
    int rc = VKLLM_OK;
    enum format format = c->format;
    if (format == FMT_TEMPLATE) {
        struct vkllm_error terr = {0};
        rc = render_template(c, m, n, &text, &len, &terr);
        /* out of memory, or stopped: the template is not to blame */
        if (rc == VKLLM_E_NOMEM || (rc && c->stop && c->stop(c->user)) ||
            (rc && c->template_errors)) {
            if (err) *err = terr;
            free(m);
            return rc;
        }
        if (rc) {
            /* for this render only: one malformed conversation (a server's
             * client sending two user messages in a row) must not change how
             * every later one is rendered */
            format = detect_format(c, NULL);
            notify(c, "the chat template failed (%s); using the built-in %s format instead",
                   terr.msg, format_names[format]);
        } else if (!c->noted_no_user && !holds_user_text(m, n, text, len)) {
            /* it runs, but every turn without what was typed: once, not each turn */
            c->noted_no_user = true;
            notify(c, "the chat template's output does not contain the user's message: the "
                      "model does not see what is typed");
        }
    }
    if (format != FMT_TEMPLATE) {
        struct out o = {0};
        render_builtin(c, format, m, n, &o);
        puts_(&o, "");
        if (o.failed) {
            free(o.p);
            free(m);
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        }
        text = o.p, len = o.n;
    }
    free(m);
    /* the tokenizer adds BOS itself: not twice (llama.cpp's common_chat_templates_apply) */
    size_t bos = strlen(c->bos_text);
    if (vkllm_vocab_add_bos(c->vocab) && bos && len >= bos && !memcmp(text, c->bos_text, bos)) {
        memmove(text, text + bos, len - bos + 1);
        len -= bos;
    }
    *out = text;
    if (out_len) *out_len = len;
    return VKLLM_OK;
}

/* ============================== Life cycle ============================== */

int vkllm_chat_create(const vkllm_model *model, vkllm_session *session,
                      const struct vkllm_chat_params *params, vkllm_chat **out,
                      struct vkllm_error *err)
{
    *out = NULL;
    if (!model) return vkllm_fail(err, VKLLM_E_INVALID, "no model");
    vkllm_chat *c = calloc(1, sizeof *c);
    if (!c) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    const vkllm_gguf *g = vkllm_model_gguf(model);
    c->vocab = vkllm_model_vocab(model);
    c->session = session;
    /* render-only (no session): the context vkllm_chat_check measures against */
    c->n_ctx = session ? vkllm_session_n_ctx(session) : params ? params->n_ctx : 0;
    uint32_t reserve = params && params->n_reserve ? params->n_reserve : c->n_ctx / 4;
    c->n_reserve = reserve < c->n_ctx / 2 ? reserve : c->n_ctx / 2;
    if (params) {
        c->notice = params->notice, c->user = params->user, c->stop = params->stop;
        c->template_errors = params->template_errors;
    }
    /* control tokens count with their text: the template writes them as text */
    c->max_token_bytes = 1;
    for (int32_t t = 0; t < vkllm_vocab_n_tokens(c->vocab); t++) {
        int n = vkllm_token_to_piece(c->vocab, t, true, NULL, 0);
        if (n > 0 && (uint32_t)n > c->max_token_bytes) c->max_token_bytes = (uint32_t)n;
    }
    c->bos_text = token_text(c->vocab, vkllm_vocab_bos(c->vocab));
    c->eos_text = token_text(c->vocab, vkllm_vocab_eos(c->vocab));
    c->tokens = malloc(((size_t)c->n_ctx + 1) * sizeof *c->tokens); /* never malloc(0) */
    c->scratch = malloc(((size_t)c->n_ctx + 1) * sizeof *c->scratch);
    c->marks = malloc(((size_t)c->n_ctx + 2) * sizeof *c->marks);
    if (!c->bos_text || !c->eos_text || !c->tokens || !c->scratch || !c->marks) goto nomem;

    struct vkllm_gguf_str s;
    if (params && params->template_text) {
        c->tmpl = dup_text(params->template_text, params->template_len);
        c->tmpl_len = params->template_len;
    } else {
        struct vkllm_error terr = {0};
        int rc = vkllm_gguf_get_str(g, "tokenizer.chat_template", &s, &terr);
        if (rc == VKLLM_OK) {
            c->tmpl = dup_text(s.ptr, (size_t)s.len);
            c->tmpl_len = (size_t)s.len;
        } else if (rc != VKLLM_E_NOT_FOUND) { /* a template of the wrong type */
            c->format = detect_format(c, g);
            notify(c, "%s; using the built-in %s format instead", terr.msg,
                   format_names[c->format]);
        }
    }
    if ((params && params->template_text) || c->tmpl_len) {
        if (!c->tmpl) goto nomem;
        c->format = FMT_TEMPLATE;
    } else if (c->format == FMT_TEMPLATE) {
        c->format = detect_format(c, g);
        notify(c, "the model has no chat template; using the built-in %s format",
               format_names[c->format]);
    }
    c->mistral_v7 = has_token(c->vocab, "[SYSTEM_PROMPT]");
    /* the session may hold tokens we do not know: start from an empty cache */
    if (session) vkllm_session_truncate(session, 0, NULL);
    *out = c;
    return VKLLM_OK;
nomem:
    vkllm_chat_free(c);
    return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
}

void vkllm_chat_free(vkllm_chat *c)
{
    if (!c) return;
    vkllm_chat_clear(c, false);
    free(c->msgs);
    free(c->tmpl);
    free(c->bos_text);
    free(c->eos_text);
    free(c->tokens);
    free(c->scratch);
    free(c->marks);
    free(c->text);
    free(c->piece);
    free(c);
}

/* ============================== Messages ============================== */

int vkllm_chat_add(vkllm_chat *c, const char *role, const char *content, size_t len,
                   struct vkllm_error *err)
{
    /* the template sees JSON strings, which must be UTF-8 */
    json_t *check = json_stringn(content, len);
    if (!check) return vkllm_fail(err, VKLLM_E_INVALID, "a %s message is not valid UTF-8", role);
    json_decref(check);
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 16;
        struct message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        c->msgs = m;
        c->cap_msgs = cap;
    }
    struct message *m = &c->msgs[c->n_msgs];
    m->role = dup_text(role, strlen(role));
    m->content = dup_text(content, len);
    m->len = len;
    if (!m->role || !m->content) {
        free(m->role);
        free(m->content);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    c->n_msgs++;
    return VKLLM_OK;
}

void vkllm_chat_clear(vkllm_chat *c, bool keep_system)
{
    size_t keep = keep_system && is_system(c) ? 1 : 0;
    for (size_t i = keep; i < c->n_msgs; i++) {
        free(c->msgs[i].role);
        free(c->msgs[i].content);
    }
    c->n_msgs = keep;
    c->first = 0;
}

void vkllm_chat_pop(vkllm_chat *c)
{
    if (!c->n_msgs) return;
    c->n_msgs--;
    free(c->msgs[c->n_msgs].role);
    free(c->msgs[c->n_msgs].content);
    if (c->first > c->n_msgs) c->first = c->n_msgs;
}

size_t vkllm_chat_count(const vkllm_chat *c)
{
    return c->n_msgs;
}

const char *vkllm_chat_role(const vkllm_chat *c, size_t i)
{
    return i < c->n_msgs ? c->msgs[i].role : NULL;
}

const char *vkllm_chat_content(const vkllm_chat *c, size_t i, size_t *len)
{
    if (i >= c->n_msgs) return NULL;
    if (len) *len = c->msgs[i].len;
    return c->msgs[i].content;
}

/* ============================== The cache ============================== */

/* What a decoding call on a chat made without a session says. */
static int render_only(struct vkllm_error *err)
{
    return vkllm_fail(err, VKLLM_E_INVALID,
                      "the chat was made without a session: it renders, but cannot decode");
}

static int text_reserve(vkllm_chat *c, size_t need)
{
    if (need + 1 <= c->text_cap) return VKLLM_OK;
    size_t cap = c->text_cap ? c->text_cap : 4096;
    while (cap < need + 1)
        cap *= 2;
    char *p = realloc(c->text, cap);
    if (!p) return VKLLM_E_NOMEM;
    c->text = p;
    c->text_cap = cap;
    return VKLLM_OK;
}

/* Tokenizes LEN bytes of TEXT after PREFIX kept tokens into the scratch buffer
 * (BOS first when PREFIX is 0 and the vocabulary adds one); returns the count,
 * which may exceed ROOM, or a negative status. */
static int tokenize_tail(const vkllm_chat *c, const char *text, size_t len, uint32_t prefix,
                         int room)
{
    int n0 = 0;
    int32_t bos = vkllm_vocab_bos(c->vocab);
    if (prefix == 0 && vkllm_vocab_add_bos(c->vocab) && bos >= 0) {
        if (room > 0) c->scratch[0] = bos;
        n0 = 1;
    }
    int n = vkllm_tokenize(c->vocab, text, len, false, true, c->scratch + (room > 0 ? n0 : 0),
                           room > n0 ? room - n0 : 0);
    return n < 0 ? n : n + n0;
}

/* What a prefill keeps and decodes. */
struct plan {
    uint32_t keep; /* cached tokens kept */
    int n_new;     /* tokens in the scratch buffer to decode after them */
    const int32_t *new_tokens;
    uint32_t n_marks;   /* the cache's marks that still hold once it is carried out */
    bool at_least;      /* the text was too long to tokenize: N_NEW is a lower bound */
    size_t n_tokenized; /* bytes tokenized to make the plan */
};

/* The fewest tokens LEN bytes of text can be, when that is more than ROOM
 * (then the text is not worth tokenizing); else 0. */
static int too_long(const vkllm_chat *c, size_t len, int room)
{
    const size_t least = len / c->max_token_bytes + (len % c->max_token_bytes != 0);
    if (least <= (size_t)room) return 0;
    return least < INT_MAX ? (int)least : INT_MAX;
}

/* Plans the prefill of rendering R against the cache. The chat is left as it
 * was (but its scratch buffer), so that renderings may be tried in turn. */
static int make_plan(vkllm_chat *c, const char *r, size_t rlen, struct plan *p)
{
    /* common text prefix, cut back to a mark */
    size_t L = 0, most = rlen < c->text_len ? rlen : c->text_len;
    while (L < most && r[L] == c->text[L])
        L++;
    uint32_t m = 0;
    bool found = false;
    for (uint32_t i = 0; i < c->n_marks && c->marks[i].text_len <= L; i++)
        m = i, found = true;
    uint32_t keep = found ? c->marks[m].n_tokens : 0;
    size_t from = found ? c->marks[m].text_len : 0;
    int room = (int)c->n_ctx + 1;
    int least = too_long(c, rlen - from, room);
    if (least) {
        *p = (struct plan){keep, least, c->scratch, found ? m + 1 : 0, true, 0};
        return VKLLM_OK;
    }
    int n = tokenize_tail(c, r + from, rlen - from, keep, room);
    if (n < 0) return n;
    *p = (struct plan){keep, n, c->scratch, c->n_marks, false, rlen - from};
    if (keep == c->n_tokens || n > room) return VKLLM_OK;

    if (from == 0) {
        /* the tail is the whole rendering (after tokens that stand for no text,
         * BOS): its tokens against the cache's, without tokenizing it twice */
        uint32_t lcp = keep;
        while (lcp < c->n_tokens && lcp < keep + (uint32_t)n &&
               c->scratch[lcp - keep] == c->tokens[lcp])
            lcp++;
        if (lcp == keep + (uint32_t)n) lcp--;
        if (lcp > keep) {
            uint32_t k = 0; /* marks that still hold, as below */
            while (k < c->n_marks && c->marks[k].n_tokens <= lcp && c->marks[k].text_len <= L)
                k++;
            *p = (struct plan){
                lcp, (int)(keep + (uint32_t)n - lcp), c->scratch + (lcp - keep), k, false, rlen};
        } else {
            p->n_marks = found ? m + 1 : 0;
        }
        return VKLLM_OK;
    }
    /* by tokens: the whole rendering against the cache */
    int32_t *by_text = malloc((size_t)n * sizeof *by_text + 1);
    if (!by_text) return VKLLM_E_NOMEM;
    memcpy(by_text, c->scratch, (size_t)n * sizeof *by_text);
    int total = tokenize_tail(c, r, rlen, 0, room);
    uint32_t lcp = 0;
    if (total > 0 && total <= room) {
        while (lcp < c->n_tokens && lcp < (uint32_t)total && c->scratch[lcp] == c->tokens[lcp])
            lcp++;
        if (lcp == (uint32_t)total) lcp--;
    }
    if (total > 0 && total <= room && lcp > keep) {
        /* marks that still hold: both their tokens and their text kept */
        uint32_t k = 0;
        while (k < c->n_marks && c->marks[k].n_tokens <= lcp && c->marks[k].text_len <= L)
            k++;
        *p = (struct plan){lcp, total - (int)lcp, c->scratch + lcp, k, false, rlen - from + rlen};
        free(by_text);
        return VKLLM_OK;
    }
    memcpy(c->scratch, by_text, (size_t)n * sizeof *by_text);
    free(by_text);
    p->n_marks = found ? m + 1 : 0;
    p->n_tokenized += rlen;
    return VKLLM_OK;
}

/* Renders the conversation from message FIRST on (after the system prompt)
 * into *R (replacing what it held) and plans its prefill. */
static int try_window(vkllm_chat *c, size_t first, char **r, size_t *rlen, struct plan *p,
                      struct vkllm_chat_turn *turn, struct vkllm_error *err)
{
    c->first = first;
    free(*r);
    *r = NULL;
    turn->n_renders++;
    const size_t sys = is_system(c) ? 1 : 0, from = first > sys ? first : sys;
    turn->n_rendered += sys + c->n_msgs - from;
    int rc = vkllm_chat_render(c, r, rlen, err);
    if (rc) return rc;
    if ((rc = make_plan(c, *r, *rlen, p)))
        return vkllm_fail(err, rc, "could not tokenize the conversation (%s)", vkllm_strerror(rc));
    turn->n_tokenized += p->n_tokenized;
    return VKLLM_OK;
}

static uint64_t plan_need(const struct plan *p)
{
    return (uint64_t)p->keep + (uint64_t)p->n_new;
}

/* Where the search for the turns to drop starts (see fit_window): the turn
 * that opened the last prefill's rendering, when it still opens one (a caller
 * that clears and adds the same conversation again each turn), else none
 * dropped; but all except the last turn when the messages from there are
 * plainly too many to fit (more than one a token, or 8 bytes a token, where a
 * token of text holds about 4). A guess only: it sets the cost, not the
 * result. */
static size_t first_guess(const vkllm_chat *c, size_t from, const size_t *starts, size_t n_starts)
{
    size_t d = 0;
    if (c->hint > from) {
        size_t lo = 0, hi = n_starts; /* STARTS increases */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (starts[mid] < c->hint)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n_starts && starts[lo] == c->hint) d = lo + 1;
    }
    const size_t open = d ? starts[d - 1] : from;
    uint64_t bytes = 0;
    for (size_t i = open; i < c->n_msgs; i++)
        bytes += c->msgs[i].len;
    const bool many = c->n_msgs - open > c->n_ctx || bytes > 8 * (uint64_t)c->n_ctx;
    return many ? n_starts : d;
}

/* Fits the rendering into the context, with N_RESERVE tokens to spare if it
 * can: when the conversation from message c->first on does not, the oldest
 * turns after the system prompt (a user message and what follows it up to the
 * next one) leave the rendering, as few as make room. Dropping turns shortens
 * the rendering, so the number to drop is searched, not tried one by one (a
 * loaded conversation may have 100,000 messages): exponentially from a guess
 * (first_guess), then by bisection. Each rendering costs about its length,
 * and the search only tries windows at most about twice as long as the one
 * that fits, so a turn's work is bounded by what the context holds, not by
 * the conversation's length (but a scan of the roles). What is chosen has been
 * rendered and measured, whatever the template does. *R and *P get that
 * rendering and its plan; on an error c->first is as it was, no turn
 * dropped. */
static int fit_window(vkllm_chat *c, char **r, size_t *rlen, struct plan *p,
                      struct vkllm_chat_turn *turn, struct vkllm_error *err)
{
    const size_t first = c->first, sys = is_system(c) ? 1 : 0;
    /* the windows: D turns dropped opens the rendering at FIRST for D = 0,
     * else at STARTS[D - 1], the user messages after it (the last one stays) */
    size_t from = first > sys ? first : sys, n_starts = 0;
    size_t *starts = malloc((c->n_msgs + 1) * sizeof *starts);
    if (!starts) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    for (size_t i = from + 1; i < c->n_msgs; i++)
        if (!strcmp(c->msgs[i].role, "user")) starts[n_starts++] = i;
#define TRY(d)                                                                                     \
    do {                                                                                           \
        held = (d);                                                                                \
        if ((rc = try_window(c, held ? starts[held - 1] : first, r, rlen, p, turn, err)))          \
            goto fail;                                                                             \
        fits = plan_need(p) + c->n_reserve <= c->n_ctx;                                            \
    } while (0)
    /* LO turns dropped leave no room (none: -1), HI do (none: n_starts + 1) */
    ptrdiff_t lo = -1, hi = (ptrdiff_t)n_starts + 1, held, step = 1;
    bool fits;
    int rc;
    TRY((ptrdiff_t)first_guess(c, from, starts, n_starts));
    if (fits) {
        for (hi = held; hi > 0 && lo < 0; step *= 2) {
            TRY(hi > step ? hi - step : 0);
            if (fits)
                hi = held;
            else
                lo = held;
        }
    } else {
        for (lo = held; lo < (ptrdiff_t)n_starts && hi > (ptrdiff_t)n_starts; step *= 2) {
            TRY(lo + step < (ptrdiff_t)n_starts ? lo + step : (ptrdiff_t)n_starts);
            if (fits)
                hi = held;
            else
                lo = held;
        }
    }
    if (hi > (ptrdiff_t)n_starts) {     /* the last turn alone leaves less room than asked */
        if (plan_need(p) >= c->n_ctx) { /* less room for the reply is all right; none is not */
            rc = vkllm_fail(err, VKLLM_E_CONTEXT_FULL,
                            "the conversation is %s%llu tokens; the context holds %u",
                            p->at_least ? "at least " : "", (unsigned long long)plan_need(p),
                            c->n_ctx);
            goto fail;
        }
    } else {
        while (hi - lo > 1) { /* the fewest to drop */
            TRY(lo + (hi - lo) / 2);
            if (fits)
                hi = held;
            else
                lo = held;
        }
        if (held != hi) TRY(hi);
    }
#undef TRY
    free(starts);
    c->hint = c->first;
    if (held) { /* one note, however many turns */
        char turns[40] = "turn";
        if (held > 1) snprintf(turns, sizeof turns, "%td turns", held);
        notify(c,
               "context full: dropped the oldest %s after the system prompt (%zu message%s no "
               "longer seen)",
               turns, c->first - sys, c->first - sys == 1 ? "" : "s");
    }
    return VKLLM_OK;
fail:
    free(starts);
    c->first = first;
    return rc;
}

int vkllm_chat_prefill(vkllm_chat *c, struct vkllm_chat_turn *info, struct vkllm_error *err)
{
    struct vkllm_chat_turn turn = {0};
    char *r = NULL;
    size_t rlen = 0;
    struct plan p;
    int rc;
    if (info) *info = turn;
    if (!c->session) return render_only(err);
    /* the cache may be shorter than we think if a decode failed */
    if (vkllm_session_pos(c->session) < c->n_tokens) {
        c->n_tokens = c->n_marks = 0;
        c->text_len = 0;
        vkllm_session_truncate(c->session, 0, NULL);
    }
    if (!c->n_msgs) return vkllm_fail(err, VKLLM_E_INVALID, "the conversation is empty");
replan:
    if ((rc = fit_window(c, &r, &rlen, &p, &turn, err))) {
        free(r);
        if (info) *info = turn;
        return rc;
    }
    size_t sys = is_system(c) ? 1 : 0;
    turn.n_dropped = (uint32_t)(c->first > sys ? c->first - sys : 0);

    if (p.n_new == 0) { /* all cached, but the reply needs logits: run the last token again */
        if (p.keep == 0) {
            free(r);
            return vkllm_fail(err, VKLLM_E_INVALID, "the conversation renders to no tokens");
        }
        p.keep--;
        p.new_tokens = c->tokens + p.keep;
        p.n_new = 1;
    }

    /* cut the cache back and decode the rest */
    if ((rc = vkllm_session_truncate(c->session, p.keep, err)) == VKLLM_E_UNSUPPORTED &&
        p.keep > 0) {
        /* sliding-window layers lost the positions before the cut: start over */
        c->n_tokens = c->n_marks = 0;
        c->text_len = 0;
        vkllm_session_truncate(c->session, 0, NULL);
        free(r);
        r = NULL;
        goto replan;
    }
    if (rc) goto done;
    c->n_tokens = p.keep;
    c->text_len = 0;
    c->n_marks = p.n_marks;
    while (c->n_marks && c->marks[c->n_marks - 1].n_tokens > p.keep)
        c->n_marks--;
    if ((rc = text_reserve(c, rlen))) {
        rc = vkllm_fail(err, rc, "out of host memory");
        goto done;
    }
    memmove(c->tokens + p.keep, p.new_tokens, (size_t)p.n_new * sizeof *c->tokens);
    if (p.n_new &&
        (rc = vkllm_session_decode(c->session, c->tokens + p.keep, (uint32_t)p.n_new, err))) {
        /* what the failed decode left is unknown: forget the cache */
        c->n_tokens = c->n_marks = 0;
        vkllm_session_truncate(c->session, 0, NULL);
        goto done;
    }
    c->n_tokens = p.keep + (uint32_t)p.n_new;
    memcpy(c->text, r, rlen);
    c->text_len = rlen;
    if (c->n_marks == 0 && c->n_tokens) { /* BOS alone stands for no text */
        int32_t bos = vkllm_vocab_bos(c->vocab);
        if (vkllm_vocab_add_bos(c->vocab) && bos >= 0 && c->tokens[0] == bos)
            c->marks[c->n_marks++] = (struct mark){1, 0};
    }
    c->marks[c->n_marks++] = (struct mark){c->n_tokens, rlen};
    turn.n_cached = p.keep;
    turn.n_new = (uint32_t)p.n_new;
    turn.n_prompt = c->n_tokens;
done:
    free(r);
    if (info) *info = turn;
    return rc;
}

int vkllm_chat_check(vkllm_chat *c, struct vkllm_error *err)
{
    if (!c->session && !c->n_ctx) return render_only(err);
    const size_t first = c->first;
    int rc = vkllm_chat_add(c, "user", "x", 1, err);
    if (rc) return rc;
    c->first = c->n_msgs - 1; /* the system prompt and this message */
    char *r = NULL;
    size_t rlen = 0;
    if (!(rc = vkllm_chat_render(c, &r, &rlen, err))) {
        const int room = (int)c->n_ctx + 1, least = too_long(c, rlen, room);
        const int n = least ? least : tokenize_tail(c, r, rlen, 0, room);
        if (n < 0)
            rc = vkllm_fail(err, n, "could not tokenize the conversation (%s)", vkllm_strerror(n));
        else if ((uint32_t)n >= c->n_ctx) /* as in fit_window: no room for the reply */
            rc = vkllm_fail(err, VKLLM_E_CONTEXT_FULL,
                            "%s %s%d tokens with a one-character message; the context holds %u",
                            is_system(c) ? "the system prompt and the chat template make"
                                         : "the chat template makes",
                            least ? "at least " : "", n, c->n_ctx);
    }
    free(r);
    vkllm_chat_pop(c);
    c->first = first;
    return rc;
}

int vkllm_chat_decode_token(vkllm_chat *c, int32_t token, struct vkllm_error *err)
{
    if (!c->session) return render_only(err);
    if (c->n_tokens >= c->n_ctx)
        return vkllm_fail(err, VKLLM_E_CONTEXT_FULL, "context full (%u tokens)", c->n_ctx);
    int n = vkllm_token_to_piece(c->vocab, token, false, c->piece, c->piece_cap);
    if (n > c->piece_cap) {
        char *p = realloc(c->piece, (size_t)n);
        if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        c->piece = p;
        c->piece_cap = n;
        n = vkllm_token_to_piece(c->vocab, token, false, c->piece, c->piece_cap);
    }
    if (n < 0) return vkllm_fail(err, n, "token id %d is outside the vocabulary", token);
    int rc = vkllm_session_decode(c->session, &token, 1, err);
    if (rc) return rc;
    if (text_reserve(c, c->text_len + (size_t)n))
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    if (n) memcpy(c->text + c->text_len, c->piece, (size_t)n);
    c->text_len += (size_t)n;
    c->tokens[c->n_tokens++] = token;
    c->marks[c->n_marks++] = (struct mark){c->n_tokens, c->text_len};
    return VKLLM_OK;
}

const int32_t *vkllm_chat_tokens(const vkllm_chat *c, uint32_t *n)
{
    *n = c->n_tokens;
    return c->tokens;
}

/* ============================== Files ============================== */

int vkllm_chat_save(const vkllm_chat *c, const char *path, struct vkllm_error *err)
{
    json_t *root = json_object(), *msgs = json_array();
    if (!root || !msgs || json_object_set_new(root, "messages", msgs)) {
        json_decref(msgs);
        json_decref(root);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    for (size_t i = 0; i < c->n_msgs; i++) {
        json_t *o = json_pack("{s:s, s:s%}", "role", c->msgs[i].role, "content", c->msgs[i].content,
                              c->msgs[i].len);
        if (!o || json_array_append_new(msgs, o)) {
            json_decref(root);
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        }
    }
    /* a temporary file beside PATH, renamed over it: never half a file */
    char *tmp;
    int rc = atomic_file_create(path, &tmp, err);
    if (rc) {
        json_decref(root);
        return rc;
    }
    FILE *f = fopen(tmp, "w");
    bool ok =
        f && json_dumpf(root, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    int e = errno;
    ok = (!f || fclose(f) == 0) && ok;
    if (ok) {
        rc = atomic_file_commit(tmp, path, err);
    } else {
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot write: %s", path, strerror(e ? e : EIO));
        atomic_file_abort(tmp);
    }
    json_decref(root);
    return rc;
}

/* All of PATH, at most CHAT_MAX_FILE bytes, malloc'd, in *TEXT and *LEN. A
 * FIFO is read to its end, as cat reads it. */
static int read_file(const char *path, char **text, size_t *len, struct vkllm_error *err)
{
    *text = NULL;
    if (!*path) return vkllm_fail(err, VKLLM_E_INVALID, "empty file name");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vkllm_fail(err, VKLLM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = VKLLM_OK;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > CHAT_MAX_FILE) {
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: larger than %u MiB, more than vkllm reads", path,
                        CHAT_MAX_FILE >> 20);
        goto done;
    }
    size_t n = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (n == cap) { /* a byte past the limit is enough to know */
            if (cap > CHAT_MAX_FILE) {
                rc = vkllm_fail(err, VKLLM_E_IO, "%s: larger than %u MiB, more than vkllm reads",
                                path, CHAT_MAX_FILE >> 20);
                break;
            }
            cap = cap ? cap * 2 : 1 << 16;
            if (cap > CHAT_MAX_FILE) cap = CHAT_MAX_FILE + 1;
            char *p = realloc(buf, cap);
            if (!p) {
                rc = vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory reading it", path);
                break;
            }
            buf = p;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if (rc) {
        free(buf);
    } else {
        *text = buf;
        *len = n;
    }
done:
    close(fd);
    return rc;
}

int vkllm_chat_load(vkllm_chat *c, const char *path, struct vkllm_error *err)
{
    json_error_t jerr;
    char *text;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc) return rc;
    if (len == 0) {
        free(text);
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: the file is empty", path);
    }
    rc = tmpl_json_check(text, len, path, err);
    if (rc) {
        free(text);
        return rc;
    }
    /* a byte-order mark, which Windows editors add and RFC 8259 lets a reader skip */
    const size_t bom = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0;
    json_t *root = json_loadb(text + bom, len - bom, JSON_ALLOW_NUL, &jerr);
    free(text);
    if (!root) return vkllm_fail(err, VKLLM_E_FORMAT, "%s: not valid JSON: %s", path, jerr.text);
    json_t *msgs = json_object_get(root, "messages");
    size_t i;
    json_t *m;
    if (!json_is_array(msgs)) {
        rc = vkllm_fail(err, VKLLM_E_FORMAT, "%s: no \"messages\" array", path);
        goto done;
    }
    json_array_foreach(msgs, i, m)
    {
        if (!json_is_string(json_object_get(m, "role")) ||
            !json_is_string(json_object_get(m, "content"))) {
            rc = vkllm_fail(err, VKLLM_E_FORMAT,
                            "%s: message %zu needs \"role\" and \"content\" strings", path, i + 1);
            goto done;
        }
        /* a role is a name: "\u0000" in one would cut it short unseen */
        json_t *role = json_object_get(m, "role");
        if (strlen(json_string_value(role)) != json_string_length(role)) {
            rc = vkllm_fail(err, VKLLM_E_FORMAT, "%s: message %zu: its role holds a NUL character",
                            path, i + 1);
            goto done;
        }
    }
    /* the system prompt is never dropped: one too long for the context would
     * fail every turn (a render-only chat has no context to fill) */
    json_t *sys = json_array_get(msgs, 0), *content = json_object_get(sys, "content");
    int least = c->session ? too_long(c, json_string_length(content), (int)c->n_ctx - 1) : 0;
    if (sys && !strcmp(json_string_value(json_object_get(sys, "role")), "system") && least) {
        rc = vkllm_fail(err, VKLLM_E_CONTEXT_FULL,
                        "%s: the system prompt is at least %d tokens; the context holds %u", path,
                        least, c->n_ctx);
        goto done;
    }
    vkllm_chat_clear(c, false);
    /* the file's conversation is tokenized as a fresh process tokenizes it:
     * the cache is kept only where its tokens equal the whole rendering's
     * (by tokens), never by text, which would keep a reply's sampled tokens,
     * or a prompt tokenized up to a message join, where the file's text
     * tokenizes otherwise (and the replies then differ) */
    while (c->n_marks && c->marks[c->n_marks - 1].text_len > 0)
        c->n_marks--;
    json_array_foreach(msgs, i, m)
    {
        content = json_object_get(m, "content");
        rc = vkllm_chat_add(c, json_string_value(json_object_get(m, "role")),
                            json_string_value(content), json_string_length(content), err);
        if (rc) {
            vkllm_error_prefix(err, path);
            goto done;
        }
    }
done:
    json_decref(root);
    return rc;
}
