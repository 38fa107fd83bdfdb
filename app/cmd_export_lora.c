/* cmd_export_lora.c: vkllm export-lora: merge LoRA adapters into a new model
 * file, as llama.cpp's llama-export-lora does (the same flags). */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char export_lora_usage[] =
    "usage: vkllm export-lora -m BASE.gguf --lora A.gguf [--lora-scaled B.gguf S]... -o OUT.gguf\n"
    "\n"
    "Writes OUT.gguf: BASE with the adapters merged into its matrices (W + s B A,\n"
    "s = scale * alpha / rank, as they apply at run time), each in its own type\n"
    "(a quantized matrix is quantized again; llama-export-lora writes F16 there).\n"
    "Every other tensor and all metadata are copied. No GPU is used.\n"
    "\n"
    "  -m, --model FILE   the base model\n"
    "  -o, --output FILE  the merged model (written whole or not at all)\n"
    "      --merged-f16   merged matrices of a quantized base as F16 (no second rounding;\n"
    "                     what llama-export-lora writes)\n"
    "  -t, --threads N    threads that merge (default: one per core; the file is the "
    "same)\n" CLI_LORA_USAGE;

/* The signal that asked us to stop, 0 if none: the engine then removes its
 * temporary file, and the signal is raised again so the shell sees it. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    if (!interrupted) interrupted = sig;
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

struct bar {
    bool tty;       /* stderr is a terminal: one line redrawn, else a line per merged tensor */
    uint64_t shown; /* tensors announced so far: a big one is reported more than once */
    double t0;
};

static bool progress(const struct vkllm_export_lora_progress *p, void *user)
{
    struct bar *b = user;
    if (interrupted) return false;
    if (p->tensor < b->shown) return true;
    b->shown = p->tensor + 1;
    if (b->tty) {
        fprintf(stderr, "\r[%llu/%llu] %-40.40s %s", (unsigned long long)p->tensor + 1,
                (unsigned long long)p->n_tensors, cli_shown(p->name), p->merged ? "merged" : "");
    } else if (p->merged) {
        fprintf(stderr, "[%llu/%llu] %s: merged\n", (unsigned long long)p->tensor + 1,
                (unsigned long long)p->n_tensors, cli_shown(p->name));
    }
    return true;
}

int cmd_export_lora(int argc, char **argv)
{
    const char *base = NULL, *out = NULL;
    struct cli_lora lora = {0};
    bool merged_f16 = false;
    long long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int lr;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(export_lora_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(base = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--merged-f16")) {
            merged_f16 = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 256, &threads)) return 1;
        } else if ((lr = cli_lora_arg(&lora, argc, argv, &i)) != 0) {
            if (lr < 0) return 1;
        } else {
            return cli_error("export-lora: unknown argument '%s' (see vkllm export-lora --help)",
                             a);
        }
    }
    if (!base || !*base) return cli_error("export-lora: no base model (-m BASE.gguf)");
    if (!out || !*out) return cli_error("export-lora: no output file (-o OUT.gguf)");
    if (!lora.n) return cli_error("export-lora: no adapter (--lora FILE)");

    struct vkllm_lora_input in[CLI_LORA_MAX];
    for (int i = 0; i < lora.n; i++)
        in[i] = (struct vkllm_lora_input){.path = lora.path[i], .scale = lora.scale[i]};
    struct bar bar = {.tty = isatty(STDERR_FILENO), .t0 = cli_now_ms()};
    const struct vkllm_export_lora_params params = {
        .adapters = in,
        .n_adapters = (uint32_t)lora.n,
        .merged_f16 = merged_f16,
        .n_threads = (int)threads,
        .progress = progress,
        .user = &bar,
    };

    struct sigaction old[N_STOP_SIGNALS];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) /* an ignored one stays ignored (nohup) */
        if (sigaction(stop_signals[i], NULL, &old[i]) == 0 && old[i].sa_handler != SIG_IGN)
            sigaction(stop_signals[i], &sa, NULL);
    const uintmax_t names = cli_names_of(out);
    struct vkllm_error err = {0};
    const int rc = vkllm_export_lora(base, out, &params, &err);
    if (bar.tty) fputc('\n', stderr);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++)
        sigaction(stop_signals[i], &old[i], NULL);
    /* a signal during the file's last write and rename does not stop it:
     * the file is whole, and the user is told so before the signal ends us */
    if (!rc) {
        fprintf(stderr, "merged %d adapter%s into %s in %.1f s\n", lora.n, lora.n == 1 ? "" : "s",
                cli_shown(out), (cli_now_ms() - bar.t0) / 1000.0);
        if (names > 1)
            fprintf(stderr,
                    "vkllm: note: %s had %ju names (hard links); the others keep the old file\n",
                    cli_shown(out), names);
    }
    if (interrupted) {
        fflush(stderr);
        raise(interrupted);
    }
    return rc ? cli_error("%s", err.msg) : 0;
}
