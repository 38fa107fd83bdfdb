/* cmd_serve.c: vkllm serve: load a model and answer OpenAI-style HTTP
 * requests until SIGINT or SIGTERM (app/serve/serve.h has the parts). */
#include "cli.h"
#include "serve/serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n"
    "  -a, --alias NAME       the model's id in answers (default: the file's name)\n" CLI_LORA_USAGE
    "\n"
    "--host takes the first address that its name resolves to (localhost: 127.0.0.1\n"
    "on most systems; give ::1 for IPv6).\n";

/* Template notes (a built-in format, a failed render): once each. */
static void on_notice(const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "serve: note: %s\n", msg);
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
    bool validate = false;
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
    struct vkllm_session_params ssp = {
        .n_ctx = (uint32_t)(n_ctx / n_par), .n_batch = (uint32_t)n_batch, .n_seq = (uint32_t)n_par};
    struct vkllm_model_params mp = {
        .session = &ssp, .adapters = lora.path, .n_adapters = (uint32_t)lora.n};
    if (vkllm_model_load(ctx, model_path, &mp, &sv.model, &err)) goto fail;
    if (cli_lora_load(&lora, sv.model, &err)) goto fail;
    sv.vocab = vkllm_model_vocab(sv.model);
    cli_vocab_warnings(sv.vocab);
    struct serve_sched_params sp = {.ctx = ctx,
                                    .n_slots = (int)n_par,
                                    .n_ctx = ssp.n_ctx,
                                    .queue_limit = (int)queue,
                                    .n_batch = ssp.n_batch,
                                    .adapters = lora.ad,
                                    .scales = lora.scale,
                                    .n_adapters = (uint32_t)lora.n};
    if (serve_sched_create(sv.model, &sp, &sv.sched, &err)) goto fail;
    sv.n_ctx = serve_sched_n_ctx(sv.sched);
    cli_warn_context(sv.model, sv.n_ctx);
    /* a render-only chat (no session): the slots decode what it renders */
    struct vkllm_chat_params chp = {.notice = on_notice};
    if (vkllm_chat_create(sv.model, NULL, &chp, &sv.renderer, &err)) goto fail;
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
    vkllm_chat_free(sv.renderer);
    serve_sched_destroy(sv.sched);
    cli_lora_free(&lora);
    vkllm_model_free(sv.model);
    pthread_mutex_destroy(&sv.render_mu);
    status = cli_validation_status(ctx, status);
    vkllm_context_destroy(ctx);
    return status;
}
