/* request.c: request bodies, checked with Jansson. A generation request
 * becomes a job: its prompt rendered with the model's chat template (chat)
 * or taken as it is (completions), tokenized, and its sampling settings
 * checked. Anything wrong is a 400 naming the field; unknown fields are
 * ignored, and fields that matter but that vkllm does not do (n > 1, tools,
 * grammars, llama-server's other samplers, template variables) are refused
 * rather than silently dropped. */
#define _GNU_SOURCE /* memmem */
#include "serve.h"

#include <float.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool serve_failf(struct serve_fail *f, int status, const char *param, const char *fmt, ...)
{
    f->status = status;
    f->code = NULL;
    snprintf(f->param, sizeof f->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return false;
}

/* Whether V holds a string with U+0000 in it, at any depth. */
static bool holds_nul(json_t *v)
{
    const char *key;
    json_t *e;
    if (json_is_string(v)) return strlen(json_string_value(v)) != json_string_length(v);
    for (size_t i = 0; i < json_array_size(v); i++) /* 0 for anything but an array */
        if (holds_nul(json_array_get(v, i))) return true;
    json_object_foreach(v, key, e)
    {
        if (holds_nul(e)) return true;
    }
    return false;
}

/* U+0000 is a character, and the model may generate it: the text fields (a
 * prompt, a message's content or text parts, /tokenize's content) keep it,
 * their lengths carried to the template and the tokenizer, so that a client
 * can resend what it was answered. Every other string (a role, a stop string,
 * a name compared as a C string) would be cut at it: refused, with the field
 * in F's param. */
static bool nul_outside_text(json_t *root, struct serve_fail *f)
{
    const char *key, *mkey;
    json_t *v, *m, *mv, *part;
    size_t i, k;
    char param[96];
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "prompt") || !strcmp(key, "content")) continue;
        snprintf(param, sizeof param, "%s", key);
        if (strcmp(key, "messages") || !json_is_array(v)) {
            if (holds_nul(v)) goto refuse;
            continue;
        }
        json_array_foreach(v, i, m)
        {
            json_object_foreach(json_is_object(m) ? m : NULL, mkey, mv)
            {
                snprintf(param, sizeof param, "messages[%zu].%s", i, mkey);
                if (strcmp(mkey, "content")) {
                    if (holds_nul(mv)) goto refuse;
                    continue;
                }
                json_array_foreach(json_is_array(mv) ? mv : NULL, k, part)
                {
                    snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
                    if (holds_nul(json_object_get(part, "type"))) goto refuse;
                }
            }
        }
    }
    return false;
refuse:
    serve_failf(f, 400, param,
                "'%s' holds a NUL character (\\u0000): only prompts and message contents may",
                param);
    return true;
}

/* The body as a JSON object, or NULL with F filled. */
static json_t *parse_object(const char *body, size_t len, struct serve_fail *f)
{
    if (len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3)) { /* a BOM, which RFC 8259 lets us skip */
        body += 3;
        len -= 3;
    }
    if (!len) {
        serve_failf(f, 400, NULL, "the request body is empty: send a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &je);
    if (!root) {
        serve_failf(f, 400, NULL, "malformed JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        serve_failf(f, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    if (nul_outside_text(root, f)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ============================== Typed fields ============================== */

/* Each reads an optional field of O: true when absent or null (OUT kept) or
 * valid (OUT set); false with F filled when of the wrong type or range. */
/* D as the shortest text that reads back as D: a value just past a limit
 * (2.000001) must not show as the limit itself, as %g would. */
static const char *exact(double d, char buf[32])
{
    for (int digits = 6; digits < 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, d);
        if (strtod(buf, NULL) == d) return buf;
    }
    snprintf(buf, 32, "%.17g", d);
    return buf;
}

static bool get_number(json_t *o, const char *key, double min, double max, double *out,
                       struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return serve_failf(f, 400, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    char got[32];
    if (!(d >= min && d <= max))
        return serve_failf(f, 400, key, "'%s' must be between %g and %g (got %s)", key, min, max,
                           exact(d, got));
    *out = d;
    return true;
}

/* A number as the sampler takes it: checked after the conversion to float, so
 * that what passes here cannot fail later (1e-320 is a double above 0 but the
 * float 0), once a stream's 200 may have gone out. */
static bool get_float(json_t *o, const char *key, double min, double max, float *out,
                      struct serve_fail *f)
{
    double d = *out;
    if (!get_number(o, key, min, max, &d, f)) return false;
    char got[32];
    if (d != 0 && (float)d == 0)
        return serve_failf(f, 400, key, "'%s' is too close to 0 (got %s): use 0 or at least %g",
                           key, exact(d, got), (double)FLT_MIN);
    *out = (float)d;
    return true;
}

static bool get_int(json_t *o, const char *key, long long min, long long max, long long *out,
                    struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return serve_failf(f, 400, key, "'%s' must be an integer", key);
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return serve_failf(f, 400, key, "'%s' must be between %lld and %lld (got %lld)", key, min,
                           max, n);
    *out = n;
    return true;
}

static bool get_bool(json_t *o, const char *key, bool *out, struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return serve_failf(f, 400, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

/* A field that is fine absent, null, false, empty or zero, and refused
 * otherwise, as something vkllm does not do. */
static bool refuse_set(json_t *o, const char *key, const char *why, struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    bool set = v && !json_is_null(v) && !json_is_false(v) &&
               !(json_is_array(v) && json_array_size(v) == 0) &&
               !(json_is_object(v) && json_object_size(v) == 0) &&
               !(json_is_string(v) && json_string_length(v) == 0) &&
               !(json_is_number(v) && json_number_value(v) == 0);
    return !set || serve_failf(f, 400, key, "'%s' is not supported: %s", key, why);
}

/* A field refused unless absent, null or NEUTRAL (the value that changes
 * nothing: typical_p 1). */
static bool refuse_unless(json_t *o, const char *key, double neutral, const char *why,
                          struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    return !v || json_is_null(v) || (json_is_number(v) && json_number_value(v) == neutral) ||
           serve_failf(f, 400, key, "'%s' is not supported: %s", key, why);
}

/* A number field refused unless absent, null or at most OFF, the largest
 * value that leaves the feature off (top_n_sigma 0, t_max_predict_ms 0). */
static bool refuse_above(json_t *o, const char *key, double off, const char *why,
                         struct serve_fail *f)
{
    json_t *v = json_object_get(o, key);
    return !v || json_is_null(v) || (json_is_number(v) && json_number_value(v) <= off) ||
           serve_failf(f, 400, key, "'%s' is not supported: %s", key, why);
}

/* llama-server's DRY sampler: off while dry_multiplier is 0, when its other
 * settings (which its web UI always sends) change nothing; any other dry_
 * field is one this server does not know, and refused. */
static bool refuse_dry(json_t *o, struct serve_fail *f)
{
    static const char *const inert[] = {"dry_base", "dry_allowed_length", "dry_penalty_last_n",
                                        "dry_sequence_breakers"};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strncmp(key, "dry_", 4)) continue;
        bool known = false;
        for (size_t i = 0; i < sizeof inert / sizeof *inert; i++)
            known = known || !strcmp(key, inert[i]);
        if (!known && !refuse_set(o, key, "no DRY repetition penalty", f)) return false;
    }
    return true;
}

/* ============================== Prompts ============================== */

/* A message's content: a string, or an array of {"type": "text", "text"}
 * parts, joined. *OUT is malloc'd. */
static bool message_text(json_t *content, const char *role, size_t i, char **out, size_t *len,
                         struct serve_fail *f)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!content || json_is_null(content)) {
        /* only an assistant turn that called tools comes without its text: any
         * other would be rendered as an empty message the client never sent */
        if (strcmp(role, "assistant"))
            return serve_failf(f, 400, param, "'%s' is missing: a %s message needs its text",
                               param, role);
        *out = strdup("");
        *len = 0;
        return *out || serve_failf(f, 500, NULL, "out of memory");
    }
    if (json_is_string(content)) {
        *len = json_string_length(content);
        *out = malloc(*len + 1);
        if (!*out) return serve_failf(f, 500, NULL, "out of memory");
        memcpy(*out, json_string_value(content), *len + 1);
        return true;
    }
    if (!json_is_array(content))
        return serve_failf(f, 400, param, "'%s' must be a string or an array of parts", param);
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(content, k, part)
    {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(text))
            return serve_failf(f, 400, param, "'%s[%zu]': only text parts are supported", param, k);
        total += json_string_length(text);
    }
    if (!(*out = malloc(total + 1))) return serve_failf(f, 500, NULL, "out of memory");
    *len = 0;
    json_array_foreach(content, k, part)
    {
        json_t *text = json_object_get(part, "text");
        memcpy(*out + *len, json_string_value(text), json_string_length(text));
        *len += json_string_length(text);
    }
    (*out)[*len] = 0;
    return true;
}

/* Whether the model's chat template could read a variable called NAME: only
 * if its text holds the name (a Jinja template names what it reads). The
 * built-in formats, used without a template, read none. */
static bool template_reads(struct serve *sv, const char *name)
{
    struct vkllm_gguf_str t = {0};
    struct vkllm_error err = {0};
    if (vkllm_gguf_get_str(vkllm_model_gguf(sv->model), "tokenizer.chat_template", &t, &err))
        return false;
    return memmem(t.ptr, t.len, name, strlen(name)) != NULL;
}

/* llama-server's fields that change how the chat template renders, for a
 * chat completion and /apply-template. The renderer always adds the
 * generation prompt and passes the template no variables of the client's, so
 * a variable the template reads is refused; one it never names changes
 * nothing and passes (Open WebUI sends enable_thinking to every model). */
static bool template_fields(struct serve *sv, json_t *o, struct serve_fail *f)
{
    bool gen_prompt = true;
    if (!get_bool(o, "add_generation_prompt", &gen_prompt, f)) return false;
    if (!gen_prompt)
        return serve_failf(f, 400, "add_generation_prompt",
                           "'add_generation_prompt' is not supported beyond true: the reply is "
                           "always a new assistant turn");
    if (!refuse_set(o, "continue_final_message",
                    "the reply is always a new assistant turn, never the last message continued",
                    f))
        return false;
    const char *key;
    json_t *v, *kw = json_object_get(o, "chat_template_kwargs");
    if (kw && !json_is_null(kw) && !json_is_object(kw))
        return serve_failf(f, 400, "chat_template_kwargs",
                           "'chat_template_kwargs' must be an object");
    json_object_foreach(json_is_object(kw) ? kw : NULL, key, v)
    {
        if (template_reads(sv, key))
            return serve_failf(f, 400, "chat_template_kwargs",
                               "'chat_template_kwargs' is not supported: the chat template reads "
                               "'%.100s', and vkllm passes it no variables of the request's",
                               key);
    }
    /* llama-server gives the template "none" as enable_thinking false, and
     * any other effort as the variable reasoning_effort */
    json_t *effort = json_object_get(o, "reasoning_effort");
    if (effort && !json_is_null(effort) && !json_is_string(effort))
        return serve_failf(f, 400, "reasoning_effort", "'reasoning_effort' must be a string");
    const char *e = json_is_string(effort) ? json_string_value(effort) : "";
    const char *var = !strcmp(e, "none") ? "enable_thinking" : "reasoning_effort";
    if (*e && template_reads(sv, var))
        return serve_failf(f, 400, "reasoning_effort",
                           "'reasoning_effort' is not supported: the chat template reads '%s', "
                           "and vkllm passes it no variables of the request's",
                           var);
    return true;
}

/* A client whose messages the template refuses gets its error (400), as from
 * llama-server, not a format the model never saw. */
static const struct vkllm_chat_params renderer_params = {.template_errors = true};

int serve_renderers_start(struct serve *sv, void (*notice)(const char *msg, void *user),
                          struct vkllm_error *err)
{
    struct vkllm_chat_params p = renderer_params;
    p.notice = notice;
    vkllm_chat *r;
    int rc = vkllm_chat_create(sv->model, NULL, &p, &r, err);
    if (!rc) sv->idle_renderers[sv->n_idle_renderers++] = r;
    return rc;
}

void serve_renderers_free(struct serve *sv)
{
    while (sv->n_idle_renderers > 0)
        vkllm_chat_free(sv->idle_renderers[--sv->n_idle_renderers]);
}

/* An idle renderer, or a new one (no notes: the first one gave them). */
static vkllm_chat *renderer_take(struct serve *sv, struct vkllm_error *err)
{
    vkllm_chat *r = NULL;
    pthread_mutex_lock(&sv->render_mu);
    if (sv->n_idle_renderers > 0) r = sv->idle_renderers[--sv->n_idle_renderers];
    pthread_mutex_unlock(&sv->render_mu);
    if (!r && vkllm_chat_create(sv->model, NULL, &renderer_params, &r, err)) return NULL;
    return r;
}

static void renderer_give(struct serve *sv, vkllm_chat *r)
{
    vkllm_chat_clear(r, false);
    pthread_mutex_lock(&sv->render_mu);
    if (sv->n_idle_renderers < SERVE_IDLE_RENDERERS)
        sv->idle_renderers[sv->n_idle_renderers++] = r, r = NULL;
    pthread_mutex_unlock(&sv->render_mu);
    vkllm_chat_free(r);
}

/* The chat messages of body O rendered with the model's template and the
 * generation prompt, malloc'd in *OUT. */
static bool render_messages(struct serve *sv, json_t *o, char **out, size_t *out_len,
                            struct serve_fail *f)
{
    *out = NULL;
    json_t *messages = json_object_get(o, "messages");
    if (!template_fields(sv, o, f)) return false;
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return serve_failf(f, 400, "messages", "'messages' must be a non-empty array");
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        json_t *role = json_object_get(m, "role");
        char param[48];
        if (!json_is_object(m) || !json_is_string(role)) {
            snprintf(param, sizeof param, "messages[%zu].role", i);
            return serve_failf(f, 400, param, "'%s' must be a string", param);
        }
        /* only role and content reach the template: a resent conversation
         * holding tool calls would be rendered without them */
        snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
        json_t *calls = json_object_get(m, "tool_calls");
        if (calls && !json_is_null(calls) && !(json_is_array(calls) && !json_array_size(calls)))
            return serve_failf(f, 400, param, "'%s' is not supported: no tool calls", param);
    }
    struct vkllm_error err = {0};
    vkllm_chat *r = renderer_take(sv, &err);
    if (!r) return serve_failf(f, 500, NULL, "%s", err.msg);
    int rc = VKLLM_OK;
    bool ok = true;
    json_array_foreach(messages, i, m)
    {
        char *text = NULL;
        size_t len = 0;
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!(ok = message_text(json_object_get(m, "content"), role, i, &text, &len, f))) break;
        rc = vkllm_chat_add(r, role, text, len, &err);
        free(text);
        if (rc) break;
    }
    if (ok && !rc) rc = vkllm_chat_render(r, out, out_len, &err);
    renderer_give(sv, r);
    if (!ok) return false;
    if (rc)
        return serve_failf(f, rc == VKLLM_E_NOMEM ? 500 : 400, "messages",
                           "the chat template cannot render these messages: %s", err.msg);
    return true;
}

/* TEXT tokenized into JOB: as vkllm chat does for a rendering (BOS, then
 * special tokens parsed), or as vkllm run does for a raw prompt. A prompt
 * that leaves no room for one generated token is refused. */
static bool tokenize_prompt(struct serve *sv, struct serve_job *job, const char *text, size_t len,
                            bool rendered, struct serve_fail *f)
{
    const uint32_t n_ctx = sv->n_ctx;
    if (!(job->tokens = malloc((size_t)n_ctx * sizeof *job->tokens)))
        return serve_failf(f, 500, NULL, "out of memory");
    int n0 = 0, n;
    int32_t bos = vkllm_vocab_bos(sv->vocab);
    if (rendered && vkllm_vocab_add_bos(sv->vocab) && bos >= 0) job->tokens[n0++] = bos;
    n = vkllm_tokenize(sv->vocab, text, len, !rendered, rendered, job->tokens + n0,
                       (int)n_ctx - n0);
    if (n < 0)
        return serve_failf(f, 400, rendered ? "messages" : "prompt", "cannot tokenize: %s",
                           vkllm_strerror(n));
    n += n0;
    if ((uint32_t)n >= n_ctx) {
        serve_failf(f, 400, rendered ? "messages" : "prompt",
                    "the prompt is %d tokens, but the context holds %u (the prompt and at least "
                    "one generated token)",
                    n, n_ctx);
        f->code = "context_length_exceeded";
        return false;
    }
    if (n == 0) job->tokens[n++] = 0; /* as run: no BOS and no text starts from token 0 */
    job->n_tokens = (uint32_t)n;
    return true;
}

/* ============================== Generation ============================== */

static bool parse_stops(struct serve_job *job, json_t *stop, struct serve_fail *f)
{
    if (!stop || json_is_null(stop)) return true;
    json_t *one = stop;
    size_t n = 1;
    if (json_is_array(stop)) {
        n = json_array_size(stop);
        if (n > SERVE_MAX_STOPS)
            return serve_failf(f, 400, "stop", "'stop' holds at most %d strings", SERVE_MAX_STOPS);
    }
    for (size_t i = 0; i < n; i++) {
        if (json_is_array(stop)) one = json_array_get(stop, i);
        if (!json_is_string(one) || json_string_length(one) == 0)
            return serve_failf(f, 400, "stop",
                               "'stop' must be a non-empty string or an array of them");
        if (!(job->stops[job->n_stops] = strdup(json_string_value(one))))
            return serve_failf(f, 500, NULL, "out of memory");
        job->n_stops++;
    }
    return true;
}

/* The sampling fields: OpenAI's, and llama-server's top_k, min_p,
 * repeat_penalty, repeat_last_n (-1: the slot's context N_CTX), n_predict
 * (max_tokens' older name; -1: no limit) and ignore_eos. Of N_SLOTS, the
 * slot a llama-server client may name (id_slot). */
static bool parse_sampling(struct serve_job *job, json_t *o, uint32_t n_ctx, int n_slots,
                           struct serve_fail *f)
{
    struct vkllm_sampler_params *sp = &job->sampling;
    long long top_k = sp->top_k, seed = -1, max_tokens = -1, n = 1, best_of = 1;
    long long last_n = sp->repeat_last_n, unused = 0;
    if (!get_int(o, "n_predict", -1, 1 << 30, &max_tokens, f)) return false;
    if (max_tokens == 0)
        return serve_failf(f, 400, "n_predict", "'n_predict' must be -1 (no limit) or at least 1");
    if (!get_int(o, "repeat_last_n", -1, 1 << 20, &last_n, f) ||
        !get_float(o, "temperature", 0, 2, &sp->temp, f) ||
        !get_float(o, "top_p", 0, 1, &sp->top_p, f) ||
        !get_float(o, "min_p", 0, 1, &sp->min_p, f) ||
        !get_float(o, "repeat_penalty", 1e-6, 1e6, &sp->repeat_penalty, f) ||
        !get_float(o, "presence_penalty", -2, 2, &sp->presence_penalty, f) ||
        !get_float(o, "frequency_penalty", -2, 2, &sp->frequency_penalty, f) ||
        !get_int(o, "top_k", 0, 1 << 30, &top_k, f) ||
        !get_int(o, "seed", INT64_MIN, INT64_MAX, &seed, f) ||
        !get_int(o, "max_tokens", 1, 1 << 30, &max_tokens, f) ||
        !get_int(o, "max_completion_tokens", 1, 1 << 30, &max_tokens, f) ||
        !get_int(o, "n", 1, 1 << 30, &n, f) || !get_int(o, "best_of", 1, 1 << 30, &best_of, f) ||
        !get_bool(o, "stream", &job->stream, f) ||
        !get_bool(o, "ignore_eos", &job->ignore_eos, f) ||
        /* what llama-server keeps and drops in a context shift: this server
         * shifts none (as llama-server without --context-shift), a reply
         * stops at the context's end, so no token is ever dropped */
        !get_int(o, "n_keep", -1, INT32_MAX, &unused, f) ||
        !get_int(o, "n_discard", 0, INT32_MAX, &unused, f) ||
        /* a slot of this server, or -1: any. The slot sharing the longest
         * prefix is taken whatever the client names; the answer is the same */
        !get_int(o, "id_slot", -1, n_slots - 1, &unused, f))
        return false;
    if (n > 1) return serve_failf(f, 400, "n", "'n' must be 1: one choice per request");
    if (best_of > 1)
        return serve_failf(f, 400, "best_of", "'best_of' must be 1: one candidate per request");
    /* "auto" with no tools (they are refused) can only answer in text */
    json_t *tc = json_object_get(o, "tool_choice");
    if (tc && !json_is_null(tc) &&
        !(json_is_string(tc) &&
          (!strcmp(json_string_value(tc), "none") || !strcmp(json_string_value(tc), "auto"))))
        return serve_failf(f, 400, "tool_choice",
                           "'tool_choice' is not supported beyond \"none\": no tool calls");
    if (!refuse_set(o, "tools", "no tool calls", f) ||
        !refuse_set(o, "functions", "no tool calls", f) ||
        !refuse_set(o, "logprobs", "no log probabilities", f) ||
        /* a completion's logprobs is a count, and 0 asks for the chosen tokens' */
        (json_is_number(json_object_get(o, "logprobs")) &&
         !serve_failf(f, 400, "logprobs", "'logprobs' is not supported: no log probabilities")) ||
        !refuse_set(o, "lora", "the server's adapters (--lora) apply to every request", f) ||
        !refuse_set(o, "top_logprobs", "no log probabilities", f) ||
        !refuse_set(o, "echo", "the reply never repeats the prompt", f) ||
        !refuse_set(o, "suffix", "no insertion, only a continuation", f) ||
        !refuse_set(o, "logit_bias", "no logit bias", f) ||
        /* llama-server's: each would change the answer, or add to it */
        !refuse_set(o, "grammar", "no grammars", f) ||
        !refuse_set(o, "n_probs", "no token probabilities", f) ||
        !refuse_set(o, "mirostat", "no Mirostat sampling", f) ||
        !refuse_unless(o, "typical_p", 1, "no locally typical sampling", f) ||
        !refuse_set(o, "xtc_probability", "no XTC sampling", f) ||
        !refuse_set(o, "dynatemp_range", "no dynamic temperature", f) ||
        !refuse_set(o, "samplers",
                    "the order is fixed (penalties, top-k, min-p, top-p, temperature)", f) ||
        !refuse_dry(o, f) || !refuse_above(o, "top_n_sigma", 0, "no top-n-sigma sampling", f) ||
        !refuse_above(o, "adaptive_target", -FLT_MIN, "no adaptive-p sampling", f) ||
        /* every sampler keeps at least one token: more only with min_keep */
        !refuse_above(o, "min_keep", 1, "no minimum of tokens kept by the samplers", f) ||
        !refuse_above(o, "n_cmpl", 1, "one choice per request", f) ||
        !refuse_above(o, "n_indent", 0, "no stop on indentation", f) ||
        !refuse_above(o, "t_max_predict_ms", 0, "no time limit: use max_tokens", f) ||
        !refuse_above(o, "reasoning_budget_tokens", -1, "no reasoning budget", f) ||
        !refuse_above(o, "thinking_budget_tokens", -1, "no reasoning budget", f) ||
        !refuse_set(o, "return_tokens", "no token ids in the answer", f) ||
        !refuse_set(o, "post_sampling_probs", "no token probabilities", f) ||
        !refuse_set(o, "response_fields", "the answer has all its fields", f) ||
        !refuse_set(o, "parse_tool_calls", "no tool calls", f))
        return false;
    /* "none" is what this server does: the reply's text as the model wrote it */
    json_t *rfmt = json_object_get(o, "reasoning_format");
    if (rfmt && !json_is_null(rfmt) &&
        !(json_is_string(rfmt) && !strcmp(json_string_value(rfmt), "none")))
        return serve_failf(f, 400, "reasoning_format",
                           "'reasoning_format' is not supported beyond \"none\": the reasoning "
                           "stays in the content");
    /* even {} asks for JSON */
    json_t *schema = json_object_get(o, "json_schema");
    if (schema && !json_is_null(schema))
        return serve_failf(f, 400, "json_schema", "'json_schema' is not supported: no grammars");
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return serve_failf(f, 400, "stream_options", "'stream_options' must be an object");
        if (!get_bool(so, "include_usage", &job->include_usage, f)) return false;
    }
    json_t *rf = json_object_get(o, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *type = json_object_get(rf, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text"))
            return serve_failf(f, 400, "response_format",
                               "'response_format' is not supported beyond {\"type\": \"text\"}");
    }
    if (!parse_stops(job, json_object_get(o, "stop"), f)) return false;
    if (sp->top_p == 0) sp->top_p = 1e-9f; /* 0: only the most likely token */
    sp->top_k = (int32_t)top_k;
    sp->repeat_last_n = (int32_t)(last_n < 0 ? n_ctx : last_n);
    sp->seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)job;
    job->max_tokens = max_tokens;
    return true;
}

struct serve_job *serve_parse_generation(struct serve *sv, enum serve_kind kind, const char *body,
                                         size_t len, struct serve_fail *f)
{
    json_t *o = parse_object(body, len, f);
    if (!o) return NULL;
    struct serve_job *job = serve_job_create(kind);
    char *text = NULL;
    size_t text_len = 0;
    bool ok = job != NULL;
    if (!ok) serve_failf(f, 500, NULL, "out of memory");
    json_t *model = json_object_get(o, "model");
    if (ok && model && !json_is_null(model) && !json_is_string(model))
        ok = serve_failf(f, 400, "model", "'model' must be a string");
    if (ok) {
        job->sampling = vkllm_sampler_defaults(0);
        struct serve_metrics m;
        serve_sched_metrics(sv->sched, &m);
        ok = parse_sampling(job, o, sv->n_ctx, m.n_slots, f);
    }
    if (ok && kind == SERVE_CHAT) {
        ok = render_messages(sv, o, &text, &text_len, f);
    } else if (ok) {
        json_t *p = json_object_get(o, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (json_is_array(p) && json_array_size(p) > 1)
            ok = serve_failf(f, 400, "prompt", "'prompt' must be one string: one per request");
        else if (!json_is_string(p))
            ok = serve_failf(f, 400, "prompt", "'prompt' must be a string");
        else if (!(text = malloc((text_len = json_string_length(p)) + 1)))
            ok = serve_failf(f, 500, NULL, "out of memory");
        else
            memcpy(text, json_string_value(p), text_len + 1);
    }
    if (ok) ok = tokenize_prompt(sv, job, text, text_len, kind == SERVE_CHAT, f);
    free(text);
    json_decref(o);
    if (!ok) {
        serve_sched_release(sv->sched, job);
        return NULL;
    }
    snprintf(job->id, sizeof job->id, "%s-%llx%06llu", kind == SERVE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)sv->started,
             (unsigned long long)atomic_fetch_add(&sv->next_id, 1));
    job->created = (long long)time(NULL);
    return job;
}

/* ============================== llama-server's extras ============================== */

/* O as the answer's body. O NULL (its json_pack failed) is memory running
 * out: text from a file or the model, which need not be UTF-8, reaches
 * json_pack through a stream (dump_text, serve_detokenize). */
static char *dump(json_t *o, struct serve_fail *f)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) serve_failf(f, 500, NULL, "out of memory");
    return s;
}

/* {"KEY": TEXT} for N bytes of TEXT that need not be UTF-8 (a template's
 * rendering): through a stream, which makes bytes that are not whole UTF-8
 * characters U+FFFD, as JSON needs. */
static char *dump_text(const char *key, const char *text, size_t n, struct serve_fail *f)
{
    vkllm_stream *st = NULL;
    const char *t;
    size_t k;
    if (vkllm_stream_create(NULL, true, &st, NULL)) {
        serve_failf(f, 500, NULL, "out of memory");
        return NULL;
    }
    char *out = NULL;
    if (vkllm_stream_push_text(st, text, n, &t, &k) < 0) {
        serve_failf(f, 500, NULL, "out of memory");
    } else {
        vkllm_stream_finish(st, &t, &k);
        t = vkllm_stream_reply(st, &k);
        out = dump(json_pack("{s:s%}", key, t, k), f);
    }
    vkllm_stream_free(st);
    return out;
}

char *serve_tokenize(struct serve *sv, const char *body, size_t len, struct serve_fail *f)
{
    json_t *o = parse_object(body, len, f);
    if (!o) return NULL;
    json_t *content = json_object_get(o, "content");
    bool add_special = false, parse_special = true;
    char *out = NULL;
    if (!json_is_string(content)) {
        serve_failf(f, 400, "content", "'content' must be a string");
    } else if (get_bool(o, "add_special", &add_special, f) &&
               get_bool(o, "parse_special", &parse_special, f)) {
        const char *text = json_string_value(content);
        size_t n_text = json_string_length(content);
        int n = vkllm_tokenize(sv->vocab, text, n_text, add_special, parse_special, NULL, 0);
        int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
        if (n < 0) {
            serve_failf(f, 400, "content", "cannot tokenize: %s", vkllm_strerror(n));
        } else if (n > 0 && !ids) {
            serve_failf(f, 500, NULL, "out of memory");
        } else {
            if (n) vkllm_tokenize(sv->vocab, text, n_text, add_special, parse_special, ids, n);
            json_t *arr = json_array();
            for (int i = 0; arr && i < n; i++)
                json_array_append_new(arr, json_integer(ids[i]));
            out = dump(json_pack("{s:o*}", "tokens", arr), f);
        }
        free(ids);
    }
    json_decref(o);
    return out;
}

char *serve_detokenize(struct serve *sv, const char *body, size_t len, struct serve_fail *f)
{
    json_t *o = parse_object(body, len, f);
    if (!o) return NULL;
    json_t *tokens = json_object_get(o, "tokens"), *t;
    char *out = NULL, small[256], *piece = small, *grown = NULL;
    size_t i, cap = sizeof small;
    const char *text;
    size_t n;
    /* pieces through a stream: bytes that are not whole UTF-8 characters
     * become U+FFFD, as JSON needs */
    vkllm_stream *st = NULL;
    bool ok = json_is_array(tokens) ||
              serve_failf(f, 400, "tokens", "'tokens' must be an array of token ids");
    if (ok && vkllm_stream_create(sv->vocab, true, &st, NULL))
        ok = serve_failf(f, 500, NULL, "out of memory");
    json_array_foreach(ok ? tokens : NULL, i, t)
    {
        long long id = json_is_integer(t) ? json_integer_value(t) : -1;
        int k = id >= 0 && id < vkllm_vocab_n_tokens(sv->vocab)
                    ? vkllm_token_to_piece(sv->vocab, (int32_t)id, true, piece, (int)cap)
                    : -1;
        if (k > (int)cap) { /* a long piece (a file's token may be any length): room, and again */
            char *p = realloc(grown, (size_t)k);
            if (!p) {
                ok = serve_failf(f, 500, NULL, "out of memory");
                break;
            }
            piece = grown = p;
            cap = (size_t)k;
            k = vkllm_token_to_piece(sv->vocab, (int32_t)id, true, piece, (int)cap);
        }
        if (k < 0) {
            ok = serve_failf(f, 400, "tokens", "'tokens[%zu]' is not a token id of this model", i);
            break;
        }
        vkllm_stream_push_text(st, piece, (size_t)k, &text, &n);
    }
    if (ok) {
        vkllm_stream_finish(st, &text, &n);
        text = vkllm_stream_reply(st, &n);
        out = dump(json_pack("{s:s%}", "content", text, n), f);
    }
    vkllm_stream_free(st);
    free(grown);
    json_decref(o);
    return out;
}

char *serve_apply_template(struct serve *sv, const char *body, size_t len, struct serve_fail *f)
{
    json_t *o = parse_object(body, len, f);
    if (!o) return NULL;
    char *text = NULL, *out = NULL;
    size_t n = 0;
    if (render_messages(sv, o, &text, &n, f)) out = dump_text("prompt", text, n, f);
    free(text);
    json_decref(o);
    return out;
}
