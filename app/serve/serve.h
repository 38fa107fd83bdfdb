/* serve.h: vkllm serve, an OpenAI-compatible HTTP server, in four parts:
 *
 *   http.c     libmicrohttpd: one thread per connection, routing, body limit
 *              (413), API key (401), CORS, one log line per request
 *   request.c  Jansson: a request body checked and turned into a job (the
 *              prompt rendered with the chat template and tokenized), or an
 *              OpenAI-style error (400)
 *   sched.c    the engine thread: it alone touches the model and the N slots
 *              (a session each); per step every active slot advances by one
 *              token, and queued jobs are admitted between steps
 *   respond.c  a finished job as JSON, or a running one as server-sent events
 *
 * A job is shared by the connection thread that made it and the engine
 * thread that runs it: its progress fields are guarded by the scheduler's
 * lock and it is freed when both have let go of it.
 */
#ifndef VKLLM_SERVE_H
#define VKLLM_SERVE_H

#include "vkllm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int cmd_serve(int argc, char **argv);

/* ============================== Jobs ============================== */

enum serve_kind { SERVE_CHAT, SERVE_COMPLETION };

enum serve_finish {
    SERVE_RUNNING = 0,
    SERVE_FINISH_STOP,      /* an end-of-generation token or a stop string */
    SERVE_FINISH_LENGTH,    /* max_tokens, or the context is full */
    SERVE_FINISH_ERROR,     /* error_status and error say why */
    SERVE_FINISH_CANCELLED, /* the client went away */
};

#define SERVE_MAX_STOPS 4 /* as OpenAI allows */
/* render-only chats kept between requests; more renders at once make their own */
#define SERVE_IDLE_RENDERERS 8

struct serve_job {
    /* the request, fixed before it is submitted */
    enum serve_kind kind;
    bool stream, include_usage, ignore_eos;
    int32_t *tokens; /* (n_tokens) the prompt, BOS included */
    uint32_t n_tokens;
    struct vkllm_sampler_params sampling;
    long long max_tokens; /* -1: until the context is full */
    char *stops[SERVE_MAX_STOPS];
    int n_stops;
    char id[48];        /* "chatcmpl-..." or "cmpl-..." */
    long long created;  /* unix seconds */
    double t_submit_ms; /* cli_now_ms() at submission */

    /* progress: under the scheduler's lock */
    pthread_cond_t changed; /* new text, or the end */
    char *text;             /* (text_len) the reply so far, whole UTF-8 characters */
    size_t text_len, text_cap;
    enum serve_finish finish;
    int error_status; /* an HTTP status when finish is SERVE_FINISH_ERROR */
    char error[512];
    uint32_t n_cached;             /* prompt tokens the slot's cache already held */
    uint32_t n_gen;                /* tokens sampled */
    int slot;                      /* the slot that ran it, -1 before */
    bool cancelled;                /* the client went away: its slot is freed at the next step */
    double t_start_ms, t_first_ms; /* admitted to a slot; first token sampled */
    int refs;
};

/* A new job with one reference (the caller's); NULL when out of memory. */
struct serve_job *serve_job_create(enum serve_kind kind);

/* ============================== Scheduler ============================== */

struct serve_sched;

struct serve_sched_params {
    const vkllm_context *ctx; /* to tell a lost device */
    int n_slots;              /* sequences decoded at once (-np) */
    uint32_t n_ctx;           /* tokens each slot's cache holds; 0: the model's, at most 4096 */
    int queue_limit;          /* jobs that may wait for a slot beyond the free ones */
    uint32_t n_batch;         /* prompt step, as run's -b; 0: the default */
    uint32_t type_k, type_v;  /* the KV cache's types (-ctk, -ctv) */
    /* LoRA adapters (not owned, outliving the scheduler) every slot applies */
    vkllm_adapter *const *adapters;
    const float *scales; /* (n_adapters) */
    uint32_t n_adapters;
};

/* What /metrics shows. */
struct serve_metrics {
    uint64_t jobs_done;
    uint64_t prompt_tokens;           /* of every prompt admitted */
    uint64_t prompt_tokens_processed; /* of those, decoded (not found in a slot's cache) */
    uint64_t tokens_generated;
    double busy_ms;   /* wall time of steps with at least one active slot */
    int queue_length; /* jobs waiting for a slot */
    int slots_busy, n_slots;
    uint64_t kv_tokens; /* tokens held in the slots' caches */
    uint64_t kv_capacity;
    bool device_lost; /* every decode fails from now on */
};

/* Creates the slots' sessions on MODEL (not owned). Nothing runs until
 * serve_sched_start. */
int serve_sched_create(vkllm_model *model, const struct serve_sched_params *p,
                       struct serve_sched **out, struct vkllm_error *err);
/* Starts the engine thread. */
int serve_sched_start(struct serve_sched *s, struct vkllm_error *err);
/* Cancels every job (queued ones end with 503 "shutting down", running ones
 * at the next step) and joins the engine thread. */
void serve_sched_stop(struct serve_sched *s);
void serve_sched_destroy(struct serve_sched *s);

uint32_t serve_sched_n_ctx(const struct serve_sched *s);

/* Queues JOB (taking a reference). False when the queue is full or the
 * server is stopping: the job is untouched and the caller answers 503. */
bool serve_sched_submit(struct serve_sched *s, struct serve_job *job);
/* Whether serve_sched_stop has begun: submissions fail from then on. */
bool serve_sched_stopping(struct serve_sched *s);
/* The client went away: a queued job leaves the queue, a running one frees
 * its slot at the next step. Nothing once it has finished. */
void serve_sched_cancel(struct serve_sched *s, struct serve_job *job);
/* Drops a reference to JOB, freeing it with the last. */
void serve_sched_release(struct serve_sched *s, struct serve_job *job);

/* The lock that guards every job's progress, and a wait on JOB's changes of
 * at most MS milliseconds, with the lock held. */
void serve_sched_lock(struct serve_sched *s);
void serve_sched_unlock(struct serve_sched *s);
void serve_sched_wait(struct serve_sched *s, struct serve_job *job, int ms);

void serve_sched_metrics(struct serve_sched *s, struct serve_metrics *out);

/* ============================== The server ============================== */

struct serve {
    /* configuration */
    const char *host;
    int port;
    const char *api_key; /* NULL: no key needed */
    const char *cors;    /* NULL: no CORS headers */
    int timeout_s;       /* an idle connection is closed after this long */
    int request_timeout_s; /* a request's headers and body must be in within this */
    size_t max_body;     /* bytes; a larger request body gets 413 */
    const char *model_id; /* valid UTF-8 */
    /* the LoRA adapters every slot applies, for /v1/models */
    const char *const *adapter_ids; /* (n_adapters) their file names, valid UTF-8 */
    const float *adapter_scales;
    int n_adapters;

    vkllm_model *model;
    const vkllm_vocab *vocab;
    struct serve_sched *sched;
    uint32_t n_ctx;
    /* render-only chats for the connection threads, each taken by one render
     * at a time (request.c): a slow template holds up its own client only */
    pthread_mutex_t render_mu;
    vkllm_chat *idle_renderers[SERVE_IDLE_RENDERERS];
    int n_idle_renderers;

    struct MHD_Daemon *daemon;
    struct serve_watch *watch; /* http.c: cuts requests that arrive too slowly */
    bool loopback; /* listening on a loopback address: only local Host names are served */
    atomic_ullong requests, errors;
    atomic_ullong next_id;
    long long started; /* unix seconds */
};

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
struct serve_fail {
    int status;       /* HTTP status */
    const char *code; /* NULL or "context_length_exceeded", ... */
    char param[64];   /* the field at fault, "" for none */
    char message[512];
};

/* Fills F and returns false, so that a check reads `return serve_fail(f, ...)`. */
bool serve_failf(struct serve_fail *f, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* request.c: BODY (LEN bytes) of /v1/chat/completions or /v1/completions as a
 * job with one reference, or NULL with F filled. */
struct serve_job *serve_parse_generation(struct serve *sv, enum serve_kind kind, const char *body,
                                         size_t len, struct serve_fail *f);
/* POST /tokenize, /detokenize, /apply-template: the JSON answer (malloc'd
 * text), or NULL with F filled. */
char *serve_tokenize(struct serve *sv, const char *body, size_t len, struct serve_fail *f);
char *serve_detokenize(struct serve *sv, const char *body, size_t len, struct serve_fail *f);
char *serve_apply_template(struct serve *sv, const char *body, size_t len, struct serve_fail *f);
/* Makes the first renderer, its notes (a model without a template) to NOTICE:
 * the later ones would only repeat them. Frees the idle ones at the end. */
int serve_renderers_start(struct serve *sv, void (*notice)(const char *msg, void *user),
                          struct vkllm_error *err);
void serve_renderers_free(struct serve *sv);

/* respond.c: the answer bodies (malloc'd text; NULL when out of memory). */
char *serve_error_json(const struct serve_fail *f);
/* A finished job's whole answer; call with the scheduler's lock held. */
char *serve_final_json(const struct serve *sv, const struct serve_job *job);
char *serve_models_json(const struct serve *sv);
char *serve_metrics_text(struct serve *sv);
/* A response that streams JOB as server-sent events, taking a reference to
 * it; FD is the connection's socket, watched for the client going away. */
struct MHD_Response *serve_stream_response(struct serve *sv, struct serve_job *job, int fd);
/* Whether the client on socket FD has closed the connection. */
bool serve_peer_gone(int fd);

/* http.c */
int serve_http_start(struct serve *sv, struct vkllm_error *err);
/* Stops accepting connections; those open go on. */
void serve_http_quiesce(struct serve *sv);
/* Waits for the open connections and frees the daemon. */
void serve_http_stop(struct serve *sv);
/* The port it listens on (the one chosen when --port was 0). */
int serve_http_port(const struct serve *sv);

#endif
