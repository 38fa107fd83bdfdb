/* main.c: the vkllm command line: dispatch to subcommands, and the argument
 * helpers they share. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    "  perplexity  a model's perplexity on a text, as llama-perplexity (-m MODEL -f FILE)\n"
    "  bench       prompt and generation speed, as llama-bench (vkllm bench -m MODEL)\n"
    "  template    render a chat template (vkllm template -m MODEL --context CONTEXT.json)\n"
    "\n"
    "vkllm COMMAND --help shows a command's options.\n";

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

char *cli_read_file(const char *path, size_t *len)
{
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

bool cli_int(const char *flag, const char *value, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (!*value || *end || errno) {
        cli_error("%s: '%s' is not an integer", flag, value);
        return false;
    }
    if (v < min || v > max) {
        cli_error("%s: %lld is out of range [%lld, %lld]", flag, v, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *flag, const char *value, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (!*value || *end || errno || isnan(v)) {
        cli_error("%s: '%s' is not a number", flag, value);
        return false;
    }
    if (v < min || v > max) {
        cli_error("%s: %g is out of range [%g, %g]", flag, v, min, max);
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

int cli_validation_status(const vkllm_context *ctx, int status)
{
    if (ctx && vkllm_context_validation_errors(ctx))
        return cli_error("%u Vulkan validation messages", vkllm_context_validation_errors(ctx));
    return status;
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
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
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "template")) return cmd_template(argc - 1, argv + 1);
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
