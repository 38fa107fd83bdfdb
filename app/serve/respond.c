/* respond.c: what the server answers, in OpenAI's shapes: errors, a finished
 * job as one JSON object, a running one as server-sent events (`data: {...}`
 * chunks ending with `data: [DONE]`), the model list and the metrics. */
#include "serve.h"
#include "../cli.h"

#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* TEXT as a JSON string: the scheduler hands out whole UTF-8 characters, so
 * this fails only when memory does. */
static json_t *jtext(const char *text, size_t len)
{
    return json_stringn(text ? text : "", text ? len : 0);
}

char *serve_error_json(const struct serve_fail *f)
{
    const char *type = f->status == 401   ? "authentication_error"
                       : f->status >= 500 ? "server_error"
                                          : "invalid_request_error";
    return dump(json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", f->message, "type", type,
                          "param", f->param[0] ? f->param : NULL, "code", f->code));
}

static const char *finish_name(enum serve_finish how)
{
    return how == SERVE_FINISH_LENGTH ? "length" : how == SERVE_FINISH_STOP ? "stop" : NULL;
}

/* usage, with the prompt tokens found in the cache as OpenAI reports them */
static json_t *usage(const struct serve_job *job)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)job->n_tokens,
                     "completion_tokens", (json_int_t)job->n_gen, "total_tokens",
                     (json_int_t)(job->n_tokens + job->n_gen), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)job->n_cached);
}

char *serve_final_json(const struct serve *sv, const struct serve_job *job)
{
    json_t *choice;
    if (job->kind == SERVE_CHAT)
        choice = json_pack("{s:i,s:{s:s,s:o},s:n,s:s?}", "index", 0, "message", "role", "assistant",
                           "content", jtext(job->text, job->text_len), "logprobs", "finish_reason",
                           finish_name(job->finish));
    else
        choice =
            json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "text", jtext(job->text, job->text_len),
                      "logprobs", "finish_reason", finish_name(job->finish));
    return dump(json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", job->id, "object",
                          job->kind == SERVE_CHAT ? "chat.completion" : "text_completion",
                          "created", (json_int_t)job->created, "model", sv->model_id, "choices",
                          choice, "usage", usage(job)));
}

char *serve_models_json(const struct serve *sv)
{
    /* the adapters (llama-server lists them at /lora-adapters) as an extra field */
    json_t *adapters = sv->n_adapters ? json_array() : NULL;
    for (int i = 0; adapters && i < sv->n_adapters; i++)
        if (json_array_append_new(adapters, json_pack("{s:s,s:f}", "id", sv->adapter_ids[i],
                                                      "scale", (double)sv->adapter_scales[i]))) {
            json_decref(adapters);
            return NULL;
        }
    if (sv->n_adapters && !adapters) return NULL;
    return dump(json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:o*}]}", "object", "list", "data", "id",
                          sv->model_id, "object", "model", "created", (json_int_t)sv->started,
                          "owned_by", "vkllm", "adapters", adapters));
}

/* ============================== Metrics ============================== */

char *serve_metrics_text(struct serve *sv)
{
    struct serve_metrics m;
    serve_sched_metrics(sv->sched, &m);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
#define METRIC(name, type, help, fmt, value)                                                       \
    fprintf(f,                                                                                     \
            "# HELP vkllm_" name " " help "\n# TYPE vkllm_" name " " type "\nvkllm_" name " " fmt  \
            "\n",                                                                                  \
            value)
    METRIC("requests_total", "counter", "HTTP requests answered.", "%llu",
           (unsigned long long)atomic_load(&sv->requests));
    METRIC("requests_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.",
           "%llu", (unsigned long long)atomic_load(&sv->errors));
    METRIC("generations_total", "counter", "Generation requests finished.", "%llu",
           (unsigned long long)m.jobs_done);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens of the requests admitted.", "%llu",
           (unsigned long long)m.prompt_tokens);
    METRIC("prompt_tokens_processed_total", "counter",
           "Prompt tokens decoded (the rest were found in a slot's cache).", "%llu",
           (unsigned long long)m.prompt_tokens_processed);
    METRIC("tokens_generated_total", "counter", "Tokens generated.", "%llu",
           (unsigned long long)m.tokens_generated);
    METRIC("tokens_per_second", "gauge",
           "Tokens generated per second of engine time with at least one active slot.", "%.2f",
           m.busy_ms > 0 ? m.tokens_generated / (m.busy_ms / 1e3) : 0.0);
    METRIC("queue_length", "gauge", "Requests waiting for a slot.", "%d", m.queue_length);
    METRIC("slots_busy", "gauge", "Slots running a request.", "%d", m.slots_busy);
    METRIC("slots_total", "gauge", "Slots (-np).", "%d", m.n_slots);
    METRIC("kv_cache_tokens", "gauge", "Tokens held in the slots' KV caches.", "%llu",
           (unsigned long long)m.kv_tokens);
    METRIC("kv_cache_usage_ratio", "gauge", "Fraction of the KV caches in use.", "%.4f",
           m.kv_capacity ? (double)m.kv_tokens / (double)m.kv_capacity : 0.0);
#undef METRIC
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}

/* ============================== Server-sent events ============================== */

bool serve_peer_gone(int fd)
{
    /* Only a reset (our last write bounced) or an error means gone. An end of
     * file on the read side may be a client that half-closed after sending
     * its request (nc -N, some proxies): it still waits for the answer, and a
     * client that did leave is found by the next write failing. */
    struct pollfd p = {.fd = fd, .events = 0};
    if (fd < 0 || poll(&p, 1, 0) <= 0) return false;
    return p.revents & (POLLHUP | POLLERR | POLLNVAL);
}

struct sse {
    struct serve *sv;
    struct serve_job *job;
    int fd;
    char *buf; /* events made, not yet handed to MHD: buf[off..len) */
    size_t len, off, cap;
    size_t text_sent; /* of job->text */
    bool started;     /* the first chunk (chat: the role) is out */
    bool ended;       /* the last event is in buf */
    bool failed;      /* out of memory: end the stream with an error */
    double t_sent_ms; /* when data last went to MHD */
};

static void sse_put(struct sse *e, const char *s, size_t n)
{
    if (e->failed) return;
    if (e->len + n > e->cap) {
        size_t cap = e->cap ? e->cap : 1024;
        while (cap < e->len + n)
            cap *= 2;
        char *p = realloc(e->buf, cap);
        if (!p) {
            e->failed = true;
            return;
        }
        e->buf = p;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, s, n);
    e->len += n;
}

static void sse_event(struct sse *e, json_t *o)
{
    char *s = dump(o);
    if (!s) {
        e->failed = true;
        return;
    }
    sse_put(e, "data: ", 6);
    sse_put(e, s, strlen(s));
    sse_put(e, "\n\n", 2);
    free(s);
}

/* A chunk with TEXT (or, with DELTA NULL and chat, the empty delta), and
 * FINISH's reason. */
static void sse_chunk(struct sse *e, json_t *delta, const char *finish)
{
    const struct serve_job *job = e->job;
    json_t *choice =
        job->kind == SERVE_CHAT
            ? json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "delta", delta ? delta : json_object(),
                        "logprobs", "finish_reason", finish)
            : json_pack("{s:i,s:o,s:n,s:s?}", "index", 0, "text", delta ? delta : json_string(""),
                        "logprobs", "finish_reason", finish);
    sse_event(e, json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", job->id, "object",
                           job->kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion",
                           "created", (json_int_t)job->created, "model", e->sv->model_id, "choices",
                           choice));
}

/* Turns what the job has done since the last call into events (lock held). */
static void sse_fill(struct sse *e)
{
    struct serve_job *job = e->job;
    e->len = e->off = 0;
    if (!e->started && job->kind == SERVE_CHAT)
        sse_chunk(e, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL);
    e->started = true;
    if (job->text_len > e->text_sent) {
        json_t *t = jtext(job->text + e->text_sent, job->text_len - e->text_sent);
        sse_chunk(e, job->kind == SERVE_CHAT ? json_pack("{s:o}", "content", t) : t, NULL);
        e->text_sent = job->text_len;
    }
    if (job->finish == SERVE_RUNNING) return;
    e->ended = true;
    if (job->finish == SERVE_FINISH_ERROR) { /* as llama-server: an error event, no [DONE] */
        struct serve_fail f = {.status = job->error_status};
        snprintf(f.message, sizeof f.message, "%s", job->error);
        char *s = serve_error_json(&f);
        if (!s) e->failed = true;
        sse_put(e, "data: ", 6);
        if (s) sse_put(e, s, strlen(s));
        sse_put(e, "\n\n", 2);
        free(s);
        return;
    }
    sse_chunk(e, NULL, finish_name(job->finish));
    if (job->include_usage)
        sse_event(e,
                  json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", job->id, "object",
                            job->kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion",
                            "created", (json_int_t)job->created, "model", e->sv->model_id,
                            "choices", "usage", usage(job)));
    sse_put(e, "data: [DONE]\n\n", 14);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct sse *e = cls;
    /* MHD's idle timer (--timeout) runs while this blocks and is reset only
     * by a write: a comment line every half --timeout (at most 15 s, which
     * also keeps proxies from closing a quiet stream) means that waiting for
     * a slot, a long prompt or a slow token never counts against the client,
     * while one that stops reading still times out on its full socket. */
    const double keep_alive_ms = e->sv->timeout_s > 30 ? 15e3 : e->sv->timeout_s * 500.0;
    static const char keep_alive[] = ": keep-alive\n\n";
    /* one thread per connection: this may block until the job moves */
    while (e->off == e->len) {
        if (e->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        serve_sched_lock(e->sv->sched);
        while (e->job->text_len == e->text_sent && e->job->finish == SERVE_RUNNING && e->started) {
            if (serve_peer_gone(e->fd)) {
                serve_sched_unlock(e->sv->sched);
                serve_sched_cancel(e->sv->sched, e->job);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (e->sv->timeout_s > 0 && cli_now_ms() - e->t_sent_ms >= keep_alive_ms) {
                serve_sched_unlock(e->sv->sched);
                e->t_sent_ms = cli_now_ms();
                size_t n = sizeof keep_alive - 1 < max ? sizeof keep_alive - 1 : max;
                memcpy(out, keep_alive, n);
                return (ssize_t)n;
            }
            serve_sched_wait(e->sv->sched, e->job, 100);
        }
        bool shutdown = e->job->finish == SERVE_FINISH_ERROR && e->job->error_status == 503;
        bool cancelled = e->job->finish == SERVE_FINISH_CANCELLED;
        sse_fill(e);
        serve_sched_unlock(e->sv->sched);
        /* a reply cut short ends without its last chunk, as an error */
        if (e->failed || shutdown || cancelled) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = e->len - e->off < max ? e->len - e->off : max;
    memcpy(out, e->buf + e->off, n);
    e->off += n;
    e->t_sent_ms = cli_now_ms();
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse *e = cls;
    serve_sched_cancel(e->sv->sched, e->job); /* nothing if it finished */
    serve_sched_release(e->sv->sched, e->job);
    free(e->buf);
    free(e);
}

struct MHD_Response *serve_stream_response(struct serve *sv, struct serve_job *job, int fd)
{
    struct sse *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->sv = sv;
    e->job = job;
    e->fd = fd;
    e->t_sent_ms = cli_now_ms();
    serve_sched_lock(sv->sched);
    job->refs++;
    serve_sched_unlock(sv->sched);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, e, sse_free);
    if (!r) sse_free(e);
    return r;
}
