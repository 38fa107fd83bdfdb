/* http.c: the HTTP side, on libmicrohttpd with one thread per connection (a
 * connection thread may block on its job: the engine thread never waits for
 * it). A request's life: its body is gathered (413 past the limit), the API
 * key checked (401, compared in constant time), the path routed (404, 405),
 * the answer queued, and one line logged to stderr when it is done. */
#include "serve.h"
#include "../cli.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct request {
    double t0;
    char *body;
    size_t len, cap;
    bool answered; /* a response was queued early (413) */
    bool too_big;  /* a chunked body past the limit, being dropped */
    size_t dropped;
    int status;
    struct serve_job *job;  /* a generation, for the log line */
    char what[4 * 120 + 1]; /* "METHOD PATH", printable */
};

/* ============================== Answers ============================== */

static enum MHD_Result answer(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                              int status, const char *type, char *body)
{
    if (!body) { /* out of memory making it */
        status = 500;
        type = "application/json";
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (sv->cors) MHD_add_response_header(r, "Access-Control-Allow-Origin", sv->cors);
    if (status == 405) {
        MHD_add_response_header(r, "Allow", "GET, POST");
    }
    rq->status = status;
    enum MHD_Result res = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result answer_json(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                                   char *body)
{
    return answer(sv, c, rq, 200, "application/json", body);
}

static enum MHD_Result answer_fail(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                                   const struct serve_fail *f)
{
    return answer(sv, c, rq, f->status, "application/json", serve_error_json(f));
}

static enum MHD_Result fail(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                            int status, const char *code, const char *msg)
{
    struct serve_fail f;
    serve_failf(&f, status, NULL, "%s", msg);
    f.code = code;
    return answer_fail(sv, c, rq, &f);
}

/* ============================== Generation ============================== */

static int connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result generate(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                                enum serve_kind kind)
{
    struct serve_fail f;
    struct serve_job *job = serve_parse_generation(sv, kind, rq->body, rq->len, &f);
    if (!job) return answer_fail(sv, c, rq, &f);
    rq->job = job; /* released when the request is done */
    if (!serve_sched_submit(sv->sched, job))
        return fail(sv, c, rq, 503, "queue_full",
                    "the server is busy: every slot is taken and the queue is full; retry later");
    int fd = connection_fd(c);
    if (job->stream) {
        struct MHD_Response *r = serve_stream_response(sv, job, fd);
        if (!r) {
            serve_sched_cancel(sv->sched, job);
            return fail(sv, c, rq, 500, NULL, "out of memory");
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        if (sv->cors) MHD_add_response_header(r, "Access-Control-Allow-Origin", sv->cors);
        rq->status = 200;
        enum MHD_Result res = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return res;
    }
    /* the whole reply at once: wait for it, watching for the client leaving */
    serve_sched_lock(sv->sched);
    while (job->finish == SERVE_RUNNING) {
        if (serve_peer_gone(fd)) {
            serve_sched_unlock(sv->sched);
            serve_sched_cancel(sv->sched, job);
            rq->status = 499; /* nginx's "client closed request", for the log */
            return MHD_NO;
        }
        serve_sched_wait(sv->sched, job, 100);
    }
    struct serve_fail jf = {0};
    char *body = NULL;
    if (job->finish == SERVE_FINISH_ERROR) {
        serve_failf(&jf, job->error_status, NULL, "%s", job->error);
    } else {
        body = serve_final_json(sv, job);
    }
    serve_sched_unlock(sv->sched);
    if (jf.status) return answer_fail(sv, c, rq, &jf);
    return answer_json(sv, c, rq, body);
}

/* ============================== Routing ============================== */

/* Whether the request carries "Authorization: Bearer KEY", compared in time
 * that does not depend on where they differ. */
static bool authorized(const struct serve *sv, struct MHD_Connection *c)
{
    if (!sv->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    const char *given = h + 7;
    size_t n = strlen(given), k = strlen(sv->api_key);
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++)
        diff |= (unsigned char)sv->api_key[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

static bool is(const char *url, const char *a, const char *b)
{
    return !strcmp(url, a) || (b && !strcmp(url, b));
}

static enum MHD_Result route(struct serve *sv, struct MHD_Connection *c, struct request *rq,
                             const char *url, const char *method)
{
    const bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const bool post = !strcmp(method, "POST");
    struct serve_fail f;
    char *body;
    if (sv->cors && !strcmp(method, "OPTIONS")) { /* a browser's preflight */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Access-Control-Allow-Origin", sv->cors);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        rq->status = 204;
        enum MHD_Result res = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return res;
    }
    if (is(url, "/health", "/v1/health")) { /* open without the key, for load balancers */
        if (!get) return fail(sv, c, rq, 405, NULL, "use GET");
        struct serve_metrics m;
        serve_sched_metrics(sv->sched, &m);
        if (m.device_lost)
            return fail(sv, c, rq, 503, "device_lost",
                        "the GPU was lost: every request fails until the server is restarted");
        return answer_json(sv, c, rq, strdup("{\"status\":\"ok\"}"));
    }
    if (!authorized(sv, c))
        return fail(sv, c, rq, 401, "invalid_api_key",
                    "a valid API key is needed: send the header 'Authorization: Bearer KEY'");

    struct {
        const char *path, *alias;
        bool post;
    } routes[] = {
        {"/v1/chat/completions", "/chat/completions", true},
        {"/v1/completions", "/completions", true},
        {"/tokenize", NULL, true},
        {"/detokenize", NULL, true},
        {"/apply-template", NULL, true},
        {"/v1/models", "/models", false},
        {"/metrics", NULL, false},
    };
    int k = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof routes[0]); i++)
        if (is(url, routes[i].path, routes[i].alias)) k = i;
    if (k < 0) return fail(sv, c, rq, 404, "not_found", "no such endpoint");
    if (routes[k].post ? !post : !get)
        return fail(sv, c, rq, 405, NULL, routes[k].post ? "use POST" : "use GET");
    switch (k) {
    case 0: return generate(sv, c, rq, SERVE_CHAT);
    case 1: return generate(sv, c, rq, SERVE_COMPLETION);
    case 2: body = serve_tokenize(sv, rq->body, rq->len, &f); break;
    case 3: body = serve_detokenize(sv, rq->body, rq->len, &f); break;
    case 4: body = serve_apply_template(sv, rq->body, rq->len, &f); break;
    case 5: return answer_json(sv, c, rq, serve_models_json(sv));
    default: return answer(sv, c, rq, 200, "text/plain; version=0.0.4", serve_metrics_text(sv));
    }
    return body ? answer_json(sv, c, rq, body) : answer_fail(sv, c, rq, &f);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct serve *sv = cls;
    struct request *rq = *req_cls;
    if (!rq) { /* the headers are in; the body follows */
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        rq->t0 = cli_now_ms();
        *req_cls = rq;
        char what[128];
        int n = snprintf(what, sizeof what, "%s %s", method, url);
        vkllm_printable(rq->what, sizeof rq->what, what,
                        n < (int)sizeof what ? (size_t)n : sizeof what - 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > sv->max_body) {
            rq->answered = true;
            return fail(sv, c, rq, 413, NULL, "the request body is too large");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->answered) return MHD_YES; /* the rest of a refused body */
        if (rq->too_big || rq->len + n > sv->max_body) {
            /* a chunked body past the limit: the rest is read and dropped so
             * that the client, still sending, reads the 413 rather than a
             * reset connection; one that goes on and on is cut off */
            rq->too_big = true;
            rq->dropped += n;
            if (rq->dropped / 16 <= sv->max_body) return MHD_YES;
            rq->answered = true;
            return fail(sv, c, rq, 413, NULL, "the request body is too large");
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *p = realloc(rq->body, cap);
            if (!p) return MHD_NO;
            rq->body = p;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (rq->too_big) return fail(sv, c, rq, 413, NULL, "the request body is too large");
    return route(sv, c, rq, url, method);
}

/* One line per request: who, what, the status, the time, and for a
 * generation its tokens (how many of the prompt's were decoded, the rest
 * having been found in a slot's cache). */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct serve *sv = cls;
    struct request *rq = *req_cls;
    if (!rq) return;
    *req_cls = NULL;
    char addr[INET6_ADDRSTRLEN] = "?";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr)
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                    addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->status < 400 && rq->status)
        rq->status = 499;
    atomic_fetch_add(&sv->requests, 1);
    if (rq->status >= 400) atomic_fetch_add(&sv->errors, 1);
    char tokens[256] = "";
    if (rq->job) {
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_sched_cancel(sv->sched, rq->job);
        serve_sched_lock(sv->sched);
        const struct serve_job *j = rq->job;
        if (j->slot >= 0)
            snprintf(tokens, sizeof tokens,
                     " slot %d, prompt %u tokens (%u processed, %u cached), %u generated; "
                     "queued %.0f ms, first token at %.0f ms",
                     j->slot, j->n_tokens, j->n_tokens - j->n_cached, j->n_cached, j->n_gen,
                     j->t_start_ms - j->t_submit_ms,
                     j->t_first_ms ? j->t_first_ms - j->t_submit_ms : 0.0);
        serve_sched_unlock(sv->sched);
        serve_sched_release(sv->sched, rq->job);
    }
    fprintf(stderr, "serve: %s %s %d %.0f ms%s\n", addr, rq->what, rq->status,
            cli_now_ms() - rq->t0, tokens);
    free(rq->body);
    free(rq);
}

/* ============================== The daemon ============================== */

int serve_http_start(struct serve *sv, struct vkllm_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", sv->port);
    int e = getaddrinfo(sv->host, port, &hints, &ai);
    if (e) return vkllm_fail(err, VKLLM_E_INVALID, "--host %s: %s", sv->host, gai_strerror(e));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_AUTO | MHD_USE_ITC; /* ITC: quiescing wakes the listener */
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    sv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, sv, MHD_OPTION_SOCK_ADDR,
                                  ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)sv->timeout_s,
                                  MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!sv->daemon)
        return vkllm_fail(err, VKLLM_E_IO, "cannot listen on %s port %d (in use, or not allowed)",
                          sv->host, sv->port);
    return VKLLM_OK;
}

int serve_http_port(const struct serve *sv)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(sv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : sv->port;
}

void serve_http_quiesce(struct serve *sv)
{
    if (!sv->daemon) return;
    MHD_socket s = MHD_quiesce_daemon(sv->daemon);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void serve_http_stop(struct serve *sv)
{
    if (sv->daemon) MHD_stop_daemon(sv->daemon);
    sv->daemon = NULL;
}
