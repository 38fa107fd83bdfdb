/* main.c: the vkllm command line: dispatch to subcommands, and the argument
 * helpers they share. */
#define _GNU_SOURCE /* fopencookie */
#include "cli.h"
#include "number.h"
#include "serve/serve.h"
#include "std_fds.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: vkllm COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run         generate text from a prompt (vkllm run -p \"Once upon a time\")\n"
    "  chat        talk with an instruct model in the terminal (vkllm chat -m MODEL)\n"
    "  info        print a GGUF file's metadata and tensors (vkllm info MODEL)\n"
    "  devices     list Vulkan devices with their features and limits\n"
    "  tokenize    print the token ids of a text (vkllm tokenize -m MODEL -p TEXT)\n"
    "  quantize    convert a model to a smaller weight format (vkllm quantize IN OUT Q4_K_M)\n"
    "  export-lora merge LoRA adapters into a new model file (-m BASE --lora A -o OUT)\n"
    "  perplexity  a model's perplexity on a text, as llama-perplexity (-m MODEL -f FILE)\n"
    "  bench       prompt and generation speed, as llama-bench (vkllm bench -m MODEL)\n"
    "  tune        time kernel variants on this device and keep the fastest (-m MODEL)\n"
    "  template    render a chat template (vkllm template -m MODEL --context CONTEXT.json)\n"
    "  serve       an OpenAI-compatible HTTP server (vkllm serve -m MODEL --port 8080)\n"
    "\n"
    "vkllm COMMAND --help shows a command's options.\n";

const char *cli_model(const char *given)
{
    if (given) return given;
    const char *env = getenv("VKLLM_MODEL");
    if (env && !*env) {
        cli_error("VKLLM_MODEL: empty file name (unset it for the bundled model)");
        return NULL;
    }
    return env ? env : VKLLM_DEFAULT_MODEL;
}

int cli_model_check(const char *path)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    if (vkllm_gguf_open(path, &g, &err)) return cli_error("%s", err.msg);
    vkllm_gguf_close(g);
    return 0;
}

static unsigned errors_printed;

unsigned cli_error_count(void)
{
    return errors_printed;
}

int cli_error(const char *fmt, ...)
{
    errors_printed++;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    char small[512], *msg = small;
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small && (msg = malloc((size_t)n + 1)) != NULL)
        vsnprintf(msg, (size_t)n + 1, fmt, again);
    if (!msg) { /* out of memory: the start of the message is better than none */
        msg = small;
        n = (int)sizeof small - 1;
    }
    va_end(again);
    va_end(ap);
    /* a path or a message may hold file text: escaped once more (which leaves
     * an escaped engine message as it is) so that it cannot act on the terminal */
    size_t len = n > 0 ? (size_t)n : 0;
    char *safe = malloc(4 * len + 1);
    if (safe) vkllm_printable(safe, 4 * len + 1, msg, len);
    fprintf(stderr, "error: %s\n", safe ? safe : "out of memory");
    free(safe);
    if (msg != small) free(msg);
    return 1;
}

const char *cli_shown(const char *text)
{
    static char shown[4 * 4096 + 1];
    vkllm_printable(shown, sizeof shown, text, strlen(text));
    return shown;
}

/* Texts, templates and JSON that vkllm reads whole are far smaller; the limit
 * turns an endless source (/dev/zero, `yes >fifo`) into an error line rather
 * than memory exhaustion. */
#define CLI_MAX_FILE (256u << 20)

char *cli_read_file(const char *path, size_t *len)
{
    if (!*path) {
        cli_error("empty file name");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* end of file or an error; ferror tells which */
        if (cap >= CLI_MAX_FILE) {
            fclose(f);
            free(buf);
            cli_error("%s: larger than %u MiB, more than vkllm reads", path, CLI_MAX_FILE >> 20);
            return NULL;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        cli_error("%s: out of memory reading it", path);
        return NULL;
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        cli_error("%s: cannot read: %s", path, strerror(e));
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Both through number.h: decimal only, no blanks or hex, and a number too
 * large for 64 bits (or a double) is out of range, not "not a number". */
bool cli_int(const char *flag, const char *value, long long min, long long max, long long *out)
{
    int64_t v;
    bool range;
    if (number_int(value, &v, &range) && !range) {
        cli_error("%s: '%s' is not an integer", flag, value);
        return false;
    }
    if (range || v < min || v > max) {
        cli_error("%s: %s is out of range [%lld, %lld]", flag, cli_shown(value), min, max);
        return false;
    }
    *out = v;
    return true;
}

bool cli_cache_type(const char *flag, const char *value, uint32_t *out)
{
    const int t = vkllm_cache_type_parse(value);
    if (t < 0) {
        cli_error("%s: %s%s%s is not a KV cache type (f16, q8_0)", flag, *value ? "'" : "",
                  *value ? cli_shown(value) : "an empty name", *value ? "'" : "");
        return false;
    }
    *out = (uint32_t)t;
    return true;
}

bool cli_is_cache_flag(const char *arg, bool *is_k)
{
    *is_k = !strcmp(arg, "-ctk") || !strcmp(arg, "--cache-type-k");
    return *is_k || !strcmp(arg, "-ctv") || !strcmp(arg, "--cache-type-v");
}

bool cli_float(const char *flag, const char *value, double min, double max, double *out)
{
    double v;
    bool range;
    if (number_float(value, &v, &range) && !range) {
        cli_error("%s: '%s' is not a number (decimal, e.g. 0.8 or 1e-3)", flag, value);
        return false;
    }
    if (range || v < min || v > max) {
        cli_error("%s: %s is out of range [%g, %g]", flag, cli_shown(value), min, max);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

void cli_context_notes(const vkllm_context *ctx)
{
    for (size_t i = 0; ctx && i < vkllm_context_note_count(ctx); i++)
        fprintf(stderr, "note: %s\n", vkllm_context_note(ctx, i));
}

int cli_validation_status(const vkllm_context *ctx, int status)
{
    if (ctx && vkllm_context_validation_errors(ctx))
        return cli_error("%u Vulkan validation messages", vkllm_context_validation_errors(ctx));
    return status;
}

bool cli_profile_wanted(bool flag)
{
    /* any value but "", 0 and 1 is refused by vkllm_context_create */
    const char *env = getenv("VKLLM_PROFILE");
    return flag || (env && !strcmp(env, "1"));
}

int cli_profile_print(const vkllm_session *s, double copy_gbps, struct vkllm_error *err)
{
    struct vkllm_profile *p = malloc(sizeof *p);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    int rc = vkllm_session_profile(s, p, err);
    if (rc) {
        free(p);
        return rc;
    }
    const double total = p->total_ms > 0 ? p->total_ms : 1.0;
    fprintf(stderr, "profile: %.1f ms of GPU time in all", p->total_ms);
    if (copy_gbps > 0) fprintf(stderr, "; the device copies at %.2f GB/s", copy_gbps);
    fputc('\n', stderr);
    fprintf(stderr, "profile: %-24s %10s %10s %6s\n", "kernel", "dispatches", "ms", "share");
    for (uint32_t i = 0; i < p->n_kernels; i++)
        fprintf(stderr, "profile: %-24s %10llu %10.2f %5.1f%%\n", p->kernels[i].name,
                (unsigned long long)p->kernels[i].dispatches, p->kernels[i].ms,
                100.0 * p->kernels[i].ms / total);
    fprintf(stderr, "profile: %-24s %10s %10s %6s %8s %8s\n", "matrix", "dispatches", "ms", "share",
            "GB/s", "of copy");
    for (uint32_t i = 0; i < p->n_matrices; i++) {
        const struct vkllm_profile_row *r = &p->matrices[i];
        const double gbps = r->ms > 0 ? (double)r->bytes / r->ms / 1e6 : 0.0;
        char rate[16] = "", share[16] = ""; /* only for matmuls, which read whole matrices */
        if (r->bytes) snprintf(rate, sizeof rate, "%.2f", gbps);
        if (copy_gbps > 0 && r->bytes)
            snprintf(share, sizeof share, "%.1f%%", 100 * gbps / copy_gbps);
        fprintf(stderr, "profile: %-24s %10llu %10.2f %5.1f%% %8s %8s\n", r->name,
                (unsigned long long)r->dispatches, r->ms, 100.0 * r->ms / total, rate, share);
    }
    for (uint32_t l = 0; l < p->n_layers; l++)
        fprintf(stderr, "profile: layer %-18u %10s %10.2f %5.1f%%\n", l, "", p->layer_ms[l],
                100.0 * p->layer_ms[l] / total);
    fprintf(stderr, "profile: %-24s %10s %10.2f %5.1f%%\n", "outside the layers", "", p->other_ms,
            100.0 * p->other_ms / total);
    free(p);
    return VKLLM_OK;
}

void cli_warn_context(const vkllm_model *model, uint32_t n_ctx)
{
    const uint32_t n_ctx_train = vkllm_model_hparams(model)->n_ctx_train;
    if (n_ctx > n_ctx_train)
        fprintf(stderr,
                "warning: the context of %u tokens exceeds the %u the model was trained for; "
                "text past that may degrade\n",
                n_ctx, n_ctx_train);
}

void cli_vocab_warnings(const vkllm_vocab *v)
{
    for (size_t i = 0; i < vkllm_vocab_warning_count(v); i++)
        fprintf(stderr, "warning: %s\n", vkllm_vocab_warning(v, i));
}

/* RFC 3629, as the stream checks what it hands out: no overlongs, surrogates
 * or values past U+10FFFF. */
static bool valid_utf8(const unsigned char *p)
{
    while (*p) {
        unsigned char c = *p++, lo = 0x80, hi = 0xbf;
        int more = c < 0x80                 ? 0
                   : c >= 0xc2 && c <= 0xdf ? 1
                   : c >= 0xe0 && c <= 0xef ? 2
                   : c >= 0xf0 && c <= 0xf4 ? 3
                                            : -1;
        if (more < 0) return false;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
        for (int i = 0; i < more; i++, p++)
            if (*p < (i ? 0x80 : lo) || *p > (i ? 0xbf : hi)) return false;
    }
    return true;
}

bool cli_utf8(const char *s)
{
    return valid_utf8((const unsigned char *)s);
}

bool cli_stop_text(const char *flag, const char *value)
{
    /* the engine's rule, checked here already so that a bad flag fails
     * before the model loads */
    struct vkllm_error err = {0};
    vkllm_stream *s = NULL;
    int rc = vkllm_stream_create(NULL, false, &s, &err);
    if (!rc) rc = vkllm_stream_add_stop(s, value, &err);
    vkllm_stream_free(s);
    if (rc) cli_error("%s: %s", flag, err.msg);
    return !rc;
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void cli_write_text(const char *text, size_t len)
{
    static int tty = -1;
    if (tty < 0) tty = isatty(STDOUT_FILENO);
    if (!tty) {
        fwrite(text, 1, len, stdout);
        return;
    }
    char buf[4096];
    while (len) {
        size_t took = vkllm_printable_text(buf, sizeof buf, text, len);
        fputs(buf, stdout);
        text += took;
        len -= took;
    }
}

/* Why the first write to stdout failed; 0: none did. */
static int stdout_errno;

/* stdout's writes go through here, which keeps the first failure's errno:
 * stdio keeps only a flag, and by the time finish_stdout looks errno is some
 * later call's (issue 10, M-5: a closed stdout, a full disk, a reader that
 * quit all said "write error"). */
static ssize_t stdout_write(void *cookie, const char *buf, size_t len)
{
    (void)cookie;
    size_t done = 0;
    while (done < len) {
        const ssize_t n = write(STDOUT_FILENO, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (!stdout_errno) stdout_errno = n < 0 ? errno : EIO;
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Closing stdout closes the descriptor: where a file system reports a
 * failed write only then (NFS), that is an error too. */
static int stdout_close(void *cookie)
{
    (void)cookie;
    if (close(STDOUT_FILENO) == 0) return 0;
    if (!stdout_errno) stdout_errno = errno;
    return -1;
}

/* stdout made the stream above, buffered as stdio buffers a descriptor: by
 * lines on a terminal, else in blocks. */
static void stdout_track(void)
{
    FILE *out = fopencookie(NULL, "w",
                            (cookie_io_functions_t){.write = stdout_write, .close = stdout_close});
    if (!out) return; /* out of memory: stdio's own, its errors told as "write error" */
    setvbuf(out, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
    stdout = out;
}

bool cli_flush(void)
{
    fflush(stdout); /* a failure's errno is stdout_write's to keep */
    return !ferror(stdout);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "export-lora")) return cmd_export_lora(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 1, argv + 1);
    if (!strcmp(cmd, "template")) return cmd_template(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("vkllm %s\n", VKLLM_VERSION);
        return 0;
    }
    cli_error("unknown command '%s' (try vkllm --help)", cmd);
    return 1;
}

/* Every command's output is checked here, once: text lost to a full disk, a
 * closed stdout or a reader that quit is an error, not exit status 0. The
 * reason is the first failed write's (stdout_write). */
static int finish_stdout(int status)
{
    errno = 0;
    int failed = fflush(stdout) != 0 || ferror(stdout);
    failed |= fclose(stdout) != 0;
    const int e = stdout_errno ? stdout_errno : errno;
    if (!failed) return status;
    cli_error("stdout: %s", e ? strerror(e) : "write error");
    return 1;
}

int main(int argc, char **argv)
{
    std_fds_keep(); /* before anything is opened */
    /* a pipe whose reader quit gives EPIPE, and a file past `ulimit -f` EFBIG,
     * each reported like any failed write, rather than a silent death by
     * SIGPIPE or SIGXFSZ halfway through freeing the device or writing a file
     * (which would leave its temporary file behind) */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    stdout_track();
    return finish_stdout(dispatch(argc, argv));
}
