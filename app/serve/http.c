/* http.c: the HTTP side, on libmicrohttpd with one thread per connection (a
 * connection thread may block on its job: the engine thread never waits for
 * it). A request's life: when its headers are in, the Host, API key (401,
 * compared in constant time), route (404, 405) and Content-Type (415) are
 * checked; its body is gathered (413 past the limit), the answer queued, and
 * one line logged to stderr when it is done, however it ended. */
#define _DEFAULT_SOURCE /* struct tcp_info */
#include "serve.h"
#include "../cli.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct request {
    double t0;
    char *body;
    size_t len, cap;
    bool started;  /* on_request has seen the headers */
    bool answered; /* a response was queued early (413, 401, ...) */
    bool too_big;  /* a chunked body past the limit, being dropped */
    size_t dropped;
    int status;
    int route;              /* index in routes[], or ROUTE_HEALTH, ROUTE_PREFLIGHT */
    const char *allow;      /* a 405's Allow header: the route's methods */
    struct serve_job *job;  /* a generation, for the log line */
    char what[4 * 120 + 1]; /* "METHOD PATH", printable */
};

/* ============================== Slow requests ============================== */

/* --timeout closes a connection that sends nothing, but a byte now and then
 * keeps one open: a client sending its request that slowly (slowloris) would
 * hold its connection for hours, and enough of them every connection. A
 * watchdog thread gives each request --request-timeout seconds from its first
 * byte to its last, then shuts its socket down; what the server does after
 * (queue, generation) never counts. */
enum conn_phase {
    CONN_RECEIVING, /* a request is arriving (a new connection's first) */
    CONN_ANSWERING, /* it is all in */
    CONN_IDLE,      /* kept alive, waiting for the next: --timeout's job */
};

struct conn {
    struct conn *prev, *next;
    int fd;
    enum conn_phase phase;
    double t_start; /* RECEIVING: the request's first byte; IDLE: the last answer */
    bool cut;       /* the watchdog shut it down */
    bool logged;    /* a request's line said so */
};

struct serve_watch {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    struct conn *conns;
    pthread_t thread;
};

/* Milliseconds since FD last received data; -1 when unknown. */
static double since_data_ms(int fd)
{
    struct tcp_info ti;
    socklen_t n = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n)) return -1;
    return ti.tcpi_last_data_recv;
}

static void *watch_main(void *arg)
{
    struct serve *sv = arg;
    struct serve_watch *w = sv->watch;
    const double limit_ms = sv->request_timeout_s * 1e3;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000 * 1000; /* the deadline holds to a quarter second */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->wake, &w->mu, &ts);
        double now = cli_now_ms();
        for (struct conn *c = w->conns; c; c = c->next) {
            if (c->phase == CONN_IDLE) { /* has the next request begun? */
                double ago = since_data_ms(c->fd);
                /* the kernel counts in jiffies: data within 50 ms of the
                 * answer may be the last request's (one sending its next
                 * that early and stopping is left to --timeout) */
                if (ago >= 0 && now - ago > c->t_start + 50) {
                    c->phase = CONN_RECEIVING;
                    c->t_start = now - ago;
                }
            }
            if (c->phase == CONN_RECEIVING && !c->cut && now - c->t_start > limit_ms) {
                c->cut = true; /* MHD then reads the end, and closes it */
                shutdown(c->fd, SHUT_RDWR);
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void watch_free(struct serve *sv)
{
    pthread_mutex_destroy(&sv->watch->mu);
    pthread_cond_destroy(&sv->watch->wake);
    free(sv->watch);
    sv->watch = NULL;
}

/* After the daemon: every connection is gone. */
static void watch_stop(struct serve *sv)
{
    if (!sv->watch) return;
    pthread_mutex_lock(&sv->watch->mu);
    sv->watch->stop = true;
    pthread_cond_signal(&sv->watch->wake);
    pthread_mutex_unlock(&sv->watch->mu);
    pthread_join(sv->watch->thread, NULL);
    watch_free(sv);
}

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_phase(struct serve *sv, struct MHD_Connection *c, enum conn_phase phase)
{
    struct conn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&sv->watch->mu);
    if (phase != CONN_RECEIVING || k->phase == CONN_IDLE) {
        k->phase = phase;
        k->t_start = cli_now_ms();
    }
    pthread_mutex_unlock(&sv->watch->mu);
}

static void client_address(struct MHD_Connection *c, char *addr, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr)
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                    addr, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct serve *sv = cls;
    struct serve_watch *w = sv->watch;
    struct conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(k = calloc(1, sizeof *k))) return; /* not watched */
        k->fd = ci->connect_fd;
        k->t_start = cli_now_ms();
        pthread_mutex_lock(&w->mu);
        k->next = w->conns;
        if (w->conns) w->conns->prev = k;
        w->conns = k;
        pthread_mutex_unlock(&w->mu);
        *socket_context = k;
        return;
    }
    if (!k) return;
    /* before MHD closes the socket: the watchdog never touches a reused fd */
    pthread_mutex_lock(&w->mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        w->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    pthread_mutex_unlock(&w->mu);
    if (k->cut && !k->logged) { /* cut before its request line was in */
        char addr[INET6_ADDRSTRLEN] = "?";
        client_address(c, addr, sizeof addr);
        fprintf(stderr, "serve: %s - 408 %.0f ms (the request did not arrive within %d s)\n", addr,
                cli_now_ms() - k->t_start, sv->request_timeout_s);
    }
    free(k);
    *socket_context = NULL;
}

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
    if (status == 405) MHD_add_response_header(r, "Allow", rq->allow);
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
        return serve_sched_stopping(sv->sched)
                   ? fail(sv, c, rq, 503, "shutting_down", "the server is shutting down")
                   : fail(sv, c, rq, 503, "queue_full",
                          "the server is busy: every slot is taken and the queue is full; "
                          "retry later");
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
 * that does not depend on where they differ. The scheme is any case and
 * spaces around the key do not count (RFC 9110 11.1, 5.6.3). */
static bool authorized(const struct serve *sv, struct MHD_Connection *c)
{
    if (!sv->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h) return false;
    h += strspn(h, " \t");
    if (strncasecmp(h, "Bearer", 6) || !strchr(" \t", h[6]) || !h[6]) return false;
    const char *given = h + 6 + strspn(h + 6, " \t");
    size_t n = strlen(given), k = strlen(sv->api_key);
    while (n && (given[n - 1] == ' ' || given[n - 1] == '\t'))
        n--;
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++)
        diff |= (unsigned char)sv->api_key[i] ^ (unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

static bool is(const char *url, const char *a, const char *b)
{
    return !strcmp(url, a) || (b && !strcmp(url, b));
}

static const struct {
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
enum { ROUTE_HEALTH = -1, ROUTE_PREFLIGHT = -2 };

/* Whether HOST (the Host header without its port) names this machine. */
static bool local_host(const char *h)
{
    const char *end = h[0] == '[' ? strchr(h, ']') : strchr(h, ':');
    size_t n = !end ? strlen(h) : h[0] == '[' ? (size_t)(end - h) + 1 : (size_t)(end - h);
    const char *port = h + n;
    if (*port == ':') {
        port++;
        if (!*port || strspn(port, "0123456789") != strlen(port)) return false;
    } else if (*port) {
        return false;
    }
    return (n == 9 && !strncasecmp(h, "localhost", 9)) || (n == 9 && !strncmp(h, "127.0.0.1", 9)) ||
           (n == 5 && !strncmp(h, "[::1]", 5));
}

/* Whether the Content-Type is JSON (parameters such as charset allowed). */
static bool json_type(const char *t)
{
    if (!t) return false;
    t += strspn(t, " \t");
    return !strncasecmp(t, "application/json", 16) && strchr(" \t;", t[16]);
}

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    (void)value;
    int *n = cls;
    if (!strcasecmp(key, "Content-Length")) n[0]++;
    if (!strcasecmp(key, "Transfer-Encoding")) n[1]++;
    if (!strcasecmp(key, "Host")) n[2]++;
    return MHD_YES;
}

/* Everything that the headers alone decide, checked before any of the body
 * is read: the Host (a loopback server answers only local names, so that a web
 * page re-pointing its own name at 127.0.0.1 cannot read the answers), the
 * route and method (404, 405), the API key (401) and a POST's Content-Type
 * (415: a page may send text/plain across origins without asking first).
 * A body framed twice (two Content-Lengths, or one and chunked) and a second
 * Host are refused (400) as RFC 9112 asks: a proxy in front may have read
 * the other one.
 * Sets rq->route and returns true, or answers and returns false. */
static bool admit(struct serve *sv, struct MHD_Connection *c, struct request *rq, const char *url,
                  const char *method, enum MHD_Result *res)
{
    const bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const bool post = !strcmp(method, "POST");
    int framing[3] = {0, 0, 0}; /* Content-Length, Transfer-Encoding, Host */
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, framing);
    if (framing[2] > 1) {
        *res = fail(sv, c, rq, 400, NULL, "the Host header is given more than once");
        return false;
    }
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (sv->loopback && host && !local_host(host)) {
        *res = fail(sv, c, rq, 403, "forbidden_host",
                    "this server listens on a loopback address and answers only the Host names "
                    "localhost, 127.0.0.1 and [::1]");
        return false;
    }
    if (framing[0] + framing[1] > 1) {
        *res = fail(sv, c, rq, 400, NULL,
                    "the body's length is given more than once (Content-Length, "
                    "Transfer-Encoding)");
        return false;
    }
    if (sv->cors && !strcmp(method, "OPTIONS")) {
        rq->route = ROUTE_PREFLIGHT;
        return true;
    }
    if (is(url, "/health", "/v1/health")) { /* open without the key, for load balancers */
        rq->route = ROUTE_HEALTH;
        if (get) return true;
        rq->allow = "GET, HEAD";
        *res = fail(sv, c, rq, 405, NULL, "use GET");
        return false;
    }
    if (!authorized(sv, c)) {
        *res = fail(sv, c, rq, 401, "invalid_api_key",
                    "a valid API key is needed: send the header 'Authorization: Bearer KEY'");
        return false;
    }
    int k = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof routes[0]); i++)
        if (is(url, routes[i].path, routes[i].alias)) k = i;
    if (k < 0) {
        *res = fail(sv, c, rq, 404, "not_found", "no such endpoint");
        return false;
    }
    if (routes[k].post ? !post : !get) {
        rq->allow = routes[k].post ? "POST" : "GET, HEAD";
        *res = fail(sv, c, rq, 405, NULL, routes[k].post ? "use POST" : "use GET");
        return false;
    }
    if (post && !json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"))) {
        *res = fail(sv, c, rq, 415, "unsupported_media_type",
                    "the request body must be JSON: send the header "
                    "'Content-Type: application/json'");
        return false;
    }
    rq->route = k;
    return true;
}

/* The request is whole and admitted: its answer. */
static enum MHD_Result route(struct serve *sv, struct MHD_Connection *c, struct request *rq)
{
    struct serve_fail f;
    char *body;
    if (rq->route == ROUTE_PREFLIGHT) { /* a browser's preflight */
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
    if (rq->route == ROUTE_HEALTH) {
        struct serve_metrics m;
        serve_sched_metrics(sv->sched, &m);
        if (m.device_lost)
            return fail(sv, c, rq, 503, "device_lost",
                        "the GPU was lost: every request fails until the server is restarted");
        return answer_json(sv, c, rq, strdup("{\"status\":\"ok\"}"));
    }
    switch (rq->route) {
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

static void name_request(struct request *rq, const char *method, const char *url)
{
    char what[128];
    int n = snprintf(what, sizeof what, "%s %s", method, url);
    vkllm_printable(rq->what, sizeof rq->what, what,
                    n < (int)sizeof what ? (size_t)n : sizeof what - 1);
}

/* The request line is in: the request's record opens here, so that one that
 * MHD refuses itself (a malformed header, no Host) still gets its log line. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    conn_phase(cls, c, CONN_RECEIVING); /* a pipelined request's bytes came with the last */
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq) return NULL;
    rq->t0 = cli_now_ms();
    name_request(rq, "-", uri); /* the method is not known yet */
    return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct serve *sv = cls;
    struct request *rq = *req_cls;
    if (!rq && !(*req_cls = rq = on_uri(sv, url, c))) return MHD_NO;
    if (!rq->started) { /* the headers are in; the body follows */
        rq->started = true;
        name_request(rq, method, url);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        enum MHD_Result res = MHD_YES;
        if (!admit(sv, c, rq, url, method, &res)) {
            rq->answered = true; /* the body, if any, is dropped unread */
            return res;
        }
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
    conn_phase(sv, c, CONN_ANSWERING);
    if (rq->answered) return MHD_YES;
    if (rq->too_big) return fail(sv, c, rq, 413, NULL, "the request body is too large");
    return route(sv, c, rq);
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
    client_address(c, addr, sizeof addr);
    struct conn *k = conn_of(c);
    pthread_mutex_lock(&sv->watch->mu);
    bool cut = k && k->cut;
    if (k) {
        k->logged = true;
        k->phase = CONN_IDLE;
        k->t_start = cli_now_ms();
    }
    pthread_mutex_unlock(&sv->watch->mu);
    if (cut && rq->status < 400) rq->status = 408;
    /* a request that did not end with its answer sent is logged by how it
     * ended (status 0: it died before being answered, or MHD refused it) */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->status < 400)
        rq->status = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED   ? 408
                     : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? 503
                     : toe == MHD_REQUEST_TERMINATED_WITH_ERROR && !rq->status
                         ? 400  /* MHD's own answer to a malformed request */
                         : 499; /* nginx's "client closed request" */
    char tokens[256] = "";
    if (rq->job) {
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_sched_cancel(sv->sched, rq->job);
        serve_sched_lock(sv->sched);
        const struct serve_job *j = rq->job;
        /* a stream's 200 went out first: its error event is its real outcome,
         * and a stream the server ended (a 503 as it stops) was cut by the
         * server, not by a client leaving */
        if (j->finish == SERVE_FINISH_ERROR && (rq->status < 400 || rq->status == 499))
            rq->status = j->error_status;
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
    atomic_fetch_add(&sv->requests, 1);
    if (rq->status >= 400) atomic_fetch_add(&sv->errors, 1);
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
    struct serve_watch *w = calloc(1, sizeof *w);
    if (!w) {
        freeaddrinfo(ai);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    sv->watch = w;
    if (pthread_create(&w->thread, NULL, watch_main, sv)) {
        freeaddrinfo(ai);
        watch_free(sv);
        return vkllm_fail(err, VKLLM_E_NOMEM, "cannot start a thread");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_AUTO | MHD_USE_ITC; /* ITC: quiescing wakes the listener */
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    sv->loopback = ai->ai_family == AF_INET6
                       ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr)
                       : ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24 == 127;
    /* a connection is a socket: past the file limit accept() fails and MHD's
     * listener spins, so the limit leaves room for the engine's own files */
    unsigned limit = 256, per_ip = 32, reserve = 32; /* the engine holds about 10 */
    struct rlimit nofile;
    if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur != RLIM_INFINITY &&
        nofile.rlim_cur < limit + reserve)
        limit = nofile.rlim_cur > reserve + 4 ? (unsigned)nofile.rlim_cur - reserve : 4;
    if (per_ip > limit) per_ip = limit;
    sv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, sv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, sv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, sv, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)sv->timeout_s, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        /* RFC 9112's rules (Host required, ...): a lenient parser is what
         * request smuggling through a proxy feeds on */
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!sv->daemon) {
        watch_stop(sv);
        return vkllm_fail(err, VKLLM_E_IO, "cannot listen on %s port %d (in use, or not allowed)",
                          sv->host, sv->port);
    }
    fprintf(stderr, "serve: at most %u connections, %u from one address\n", limit, per_ip);
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
    watch_stop(sv);
}
