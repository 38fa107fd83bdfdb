/* cmd_serve.c: vkllm serve: load a model and answer OpenAI-style HTTP
 * requests until SIGINT or SIGTERM (app/serve/serve.h has the parts). */
#include "cli.h"
#include "serve/serve.h"

#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char serve_usage[] =
    "usage: vkllm serve [options]\n"
    "\n"
    "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions,\n"
    "/tokenize, /detokenize, /apply-template; GET /v1/models, /health, /metrics.\n"
    "SIGINT or SIGTERM stops it: replies in progress are cut short.\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "      --host ADDR        address to listen on (default 127.0.0.1: this machine only)\n"
    "      --port N           port; 0 picks a free one, printed at start (default 8080)\n"
    "  -c, --ctx-size N       context of all slots together, each gets N / np\n"
    "                         (default: each the model's, at most 4096)\n"
    "  -np, --parallel N      slots: requests generated at once (default 1)\n"
    "      --queue N          requests that may wait for a slot; more get 503 (default 64)\n"
    "      --api-key KEY      require 'Authorization: Bearer KEY' (but on /health)\n"
    "      --cors ORIGIN      allow browsers on ORIGIN (\"*\": any) to call the server\n"
    "      --timeout S        close a connection idle for S seconds (default 600)\n"
    "      --request-timeout S  a request's headers and body must arrive within S seconds\n"
    "                         (default 30)\n"
    "      --max-body N       largest request body in bytes (default 8 MiB)\n"
    "  -b, --batch-size N     prompt tokens per GPU step (default 512)\n"
    "  -ctk, --cache-type-k f16|q8_0  KV cache type of K (default f16)\n"
    "  -ctv, --cache-type-v f16|q8_0  KV cache type of V (default f16)\n"
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n"
    "  -a, --alias NAME       the model's id in answers (default: the file's name)\n" CLI_LORA_USAGE
    "\n"
    "--host takes the first address that its name resolves to (localhost: 127.0.0.1\n"
    "on most systems; give ::1 for IPv6).\n";

/* Template notes (a model without a template gets a built-in format) */
static void on_notice(const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "serve: note: %s\n", msg);
}

/* Whether the daemon can listen on HOST:PORT, checked before the model loads
 * (seconds, gigabytes) rather than after it (issue 10, M-3): the name
 * resolved as serve_http_start resolves it, a scope that names an interface
 * (a bind ignores an unknown one on ::1), and a bind, undone at once: another
 * process may still take the port before the daemon does. */
static int check_listen(const char *host, int port)
{
    if (!*host) return cli_error("--host: an empty address");
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    const int e = getaddrinfo(host, service, &hints, &ai);
    if (e) return cli_error("--host %s: %s", cli_shown(host), gai_strerror(e));
    int rc = 0;
    char name[IF_NAMESIZE];
    if (ai->ai_family == AF_INET6) {
        const uint32_t scope = ((const struct sockaddr_in6 *)ai->ai_addr)->sin6_scope_id;
        if (scope && !if_indextoname(scope, name))
            rc = cli_error("--host %s: no network interface %u", cli_shown(host), scope);
    }
    const int fd = rc ? -1 : socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0) {
        const int on = 1; /* as the daemon's socket: a closed connection's port is free */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
            rc = cli_error("--host %s --port %d: %s", cli_shown(host), port, strerror(errno));
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

/* The model's id in answers, which JSON needs in valid UTF-8: the file's name
 * with any other byte (a Latin-1 name) escaped as \xNN, into ID (CAP bytes). */
static void model_id(const char *path, char *id, size_t cap)
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    vkllm_printable(id, cap, name, strlen(name));
}

int cmd_serve(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL, *host = "127.0.0.1", *api_key = NULL,
               *cors = NULL, *alias = NULL;
    long long port = 8080, n_ctx = 0, n_par = 1, queue = 64, timeout = 600, n_batch = 0,
              request_timeout = 30, max_body = 8 << 20;
    uint32_t type_k = VKLLM_CACHE_F16, type_v = VKLLM_CACHE_F16; /* -ctk, -ctv */
    bool validate = false, is_k;
    struct cli_lora lora = {0};
    int n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
#define VALUE() ((v = cli_value(argc, argv, &i)) != NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(serve_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return 1;
            if (!*v) return cli_error("%s: empty file name", a);
            model_path = v;
        } else if (!strcmp(a, "--host")) {
            if (!VALUE()) return 1;
            host = v;
        } else if (!strcmp(a, "--port")) {
            if (!VALUE() || !cli_int(a, v, 0, 65535, &port)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 24, &n_ctx)) return 1;
        } else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
            if (!VALUE() || !cli_int(a, v, 1, 256, &n_par)) return 1;
        } else if (!strcmp(a, "--queue")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 16, &queue)) return 1;
        } else if (!strcmp(a, "--api-key")) {
            if (!VALUE()) return 1;
            if (!*v) return cli_error("%s: empty key", a);
            api_key = v;
        } else if (!strcmp(a, "--cors")) {
            if (!VALUE()) return 1;
            if (!*v || strpbrk(v, "\r\n")) return cli_error("%s: not an origin: '%s'", a, v);
            cors = v;
        } else if (!strcmp(a, "--timeout")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 20, &timeout)) return 1;
        } else if (!strcmp(a, "--request-timeout")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 20, &request_timeout)) return 1;
        } else if (!strcmp(a, "--max-body")) {
            if (!VALUE() || !cli_int(a, v, 1, 1LL << 32, &max_body)) return 1;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 16, &n_batch)) return 1;
        } else if (cli_is_cache_flag(a, &is_k)) {
            if (!VALUE() || !cli_cache_type(a, v, is_k ? &type_k : &type_v)) return 1;
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) return 1;
            device = v;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else if (!strcmp(a, "-a") || !strcmp(a, "--alias")) {
            if (!VALUE()) return 1;
            if (!*v || !cli_utf8(v))
                return cli_error("%s: not a UTF-8 name: '%s'", a, cli_shown(v));
            alias = v;
        } else if ((n = cli_lora_arg(&lora, argc, argv, &i)) != 0) {
            if (n < 0) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm serve (see vkllm serve --help)", a);
        }
#undef VALUE
    }
    if (!(model_path = cli_model(model_path))) return 1;
    if (n_ctx && n_ctx / n_par < 8)
        return cli_error("-c %lld gives each of %lld slots fewer than 8 tokens", n_ctx, n_par);
    if (check_listen(host, (int)port) || cli_model_check(model_path)) return 1;

    /* SIGINT and SIGTERM go to sigwait below, never to a handler on some
     * thread: blocked here, before any thread (the driver's too) exists */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    struct vkllm_error err = {0};
    char id[4 * 255 + 1]; /* a file name is at most 255 bytes */
    model_id(model_path, id, sizeof id);
    char lora_ids[CLI_LORA_MAX][4 * 255 + 1];
    const char *lora_id[CLI_LORA_MAX];
    for (int i = 0; i < lora.n; i++) {
        model_id(lora.path[i], lora_ids[i], sizeof lora_ids[i]);
        lora_id[i] = lora_ids[i];
    }
    struct serve sv = {.host = host,
                       .port = (int)port,
                       .api_key = api_key,
                       .cors = cors,
                       .timeout_s = (int)timeout,
                       .request_timeout_s = (int)request_timeout,
                       .max_body = (size_t)max_body,
                       .model_id = alias ? alias : id,
                       .adapter_ids = lora_id,
                       .adapter_scales = lora.scale,
                       .n_adapters = lora.n,
                       .started = (long long)time(NULL)};
    pthread_mutex_init(&sv.render_mu, NULL);
    vkllm_context *ctx = NULL;
    int status = 1;

    double t0 = cli_now_ms();
    struct vkllm_context_params cp = {.device = device, .validation = validate};
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    struct vkllm_session_params ssp = {.n_ctx = (uint32_t)(n_ctx / n_par),
                                       .n_batch = (uint32_t)n_batch,
                                       .n_seq = (uint32_t)n_par,
                                       .type_k = type_k,
                                       .type_v = type_v};
    struct vkllm_model_params mp = {
        .session = &ssp, .adapters = lora.path, .n_adapters = (uint32_t)lora.n};
    if (vkllm_model_load(ctx, model_path, &mp, &sv.model, &err)) goto fail;
    cli_autotune(sv.model); /* before the slots' sessions record the matvecs */
    if (cli_lora_load(&lora, sv.model, &err)) goto fail;
    sv.vocab = vkllm_model_vocab(sv.model);
    cli_vocab_warnings(sv.vocab);
    struct serve_sched_params sp = {.ctx = ctx,
                                    .n_slots = (int)n_par,
                                    .n_ctx = ssp.n_ctx,
                                    .queue_limit = (int)queue,
                                    .n_batch = ssp.n_batch,
                                    .type_k = ssp.type_k,
                                    .type_v = ssp.type_v,
                                    .adapters = lora.ad,
                                    .scales = lora.scale,
                                    .n_adapters = (uint32_t)lora.n};
    if (serve_sched_create(sv.model, &sp, &sv.sched, &err)) goto fail;
    sv.n_ctx = serve_sched_n_ctx(sv.sched);
    cli_warn_context(sv.model, sv.n_ctx);
    /* render-only chats (no session): the slots decode what they render */
    if (serve_renderers_start(&sv, on_notice, &err)) goto fail;
    if (serve_sched_start(sv.sched, &err)) goto fail;
    if (serve_http_start(&sv, &err)) goto fail;
    cli_lora_describe(&lora);
    const bool v6 = strchr(host, ':') != NULL; /* an IPv6 literal: a URL brackets it */
    fprintf(stderr,
            "serve: %s on %s, loaded in %.0f ms; %lld slot%s of %u tokens\n"
            "serve: listening on http://%s%s%s:%d\n",
            cli_shown(model_path), vkllm_context_device(ctx)->name, cli_now_ms() - t0, n_par,
            n_par == 1 ? "" : "s", sv.n_ctx, v6 ? "[" : "", host, v6 ? "]" : "",
            serve_http_port(&sv));

    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;
    goto done;
fail:
    cli_error("%s", err.msg);
done:
    /* no new connections; running jobs end (their streams cut short), then
     * the connections close and the engine thread is joined */
    serve_http_quiesce(&sv);
    serve_sched_stop(sv.sched);
    serve_http_stop(&sv);
    serve_renderers_free(&sv);
    serve_sched_destroy(sv.sched);
    cli_lora_free(&lora);
    vkllm_model_free(sv.model);
    pthread_mutex_destroy(&sv.render_mu);
    status = cli_validation_status(ctx, status);
    vkllm_context_destroy(ctx);
    return status;
}
