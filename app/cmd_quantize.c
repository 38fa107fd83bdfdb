/* cmd_quantize.c: vkllm quantize: convert an F32/F16/BF16 model to a smaller
 * weight format, as llama-quantize does. */
#include "cli.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char quantize_usage[] =
    "usage: vkllm quantize IN.gguf OUT.gguf TYPE [--pure] [-t THREADS]\n"
    "\n"
    "Converts an F32, F16 or BF16 model to TYPE, writing the file llama.cpp's\n"
    "`llama-quantize IN OUT TYPE` writes (without an importance matrix).\n"
    "\n"
    "  --pure           every 2-D weight in TYPE itself (a row that is not whole blocks\n"
    "                   of it still falls back to a 32-block type or F16, as llama.cpp)\n"
    "  -t, --threads N  threads (default: one per core)\n"
    "  --               what follows is IN, OUT and TYPE, even a name starting with '-'\n"
    "\n"
    "Without --pure the quantized TYPEs follow llama.cpp's rules: output.weight (or\n"
    "a tied token_embd) gets Q6_K (Q8_0 keeps Q8_0), and the K-quant mixes give\n"
    "attn_v, attn_output and ffn_down more bits in some layers. 1-D tensors (norms)\n"
    "are copied as they are.\n"
    "\n"
    "TYPE:\n";

/* ============================== Signals ============================== */

/* The signal that asked us to stop, 0 if none. The progress callback then
 * asks the engine to stop, which removes its temporary file, and the signal
 * is raised again once it has, so that the shell sees how the program ended. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    if (!interrupted) interrupted = sig;
}

/* Every signal whose default action ends the process and that can be caught,
 * less those a fault raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
 * SIGSYS, SIGABRT): returning from their handler would fault again. SIGPIPE
 * and SIGXFSZ (past `ulimit -f`) are ignored instead: the write then fails
 * with EPIPE or EFBIG and is reported like any failed write. */
/* clang-format off */
static const int stop_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU,
#ifdef SIGIO
    SIGIO,
#endif
#ifdef SIGPWR
    SIGPWR,
#endif
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
#ifdef SIGEMT
    SIGEMT,
#endif
};
/* clang-format on */
#define N_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

struct signals {
    int n;
    int sig[N_STOP_SIGNALS + 64 + 2]; /* + the real-time ones, SIGPIPE, SIGXFSZ */
    struct sigaction old[N_STOP_SIGNALS + 64 + 2];
};

/* A signal that was ignored stays ignored: `nohup vkllm quantize` must
 * survive its SIGHUP. */
static void catch_one(struct signals *s, int sig, void (*handler)(int))
{
    if (s->n == (int)(sizeof s->sig / sizeof s->sig[0])) return;
    struct sigaction sa = {.sa_handler = handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction *old = &s->old[s->n];
    if (sigaction(sig, NULL, old) == 0 && old->sa_handler != SIG_IGN &&
        sigaction(sig, &sa, NULL) == 0)
        s->sig[s->n++] = sig;
}

/* Installs the handlers, saving the old actions in S. */
static void signals_catch(struct signals *s)
{
    s->n = 0;
    for (size_t i = 0; i < N_STOP_SIGNALS; i++)
        catch_one(s, stop_signals[i], on_signal);
    /* the real-time signals end the process by default too */
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        catch_one(s, sig, on_signal);
    catch_one(s, SIGPIPE, SIG_IGN);
    catch_one(s, SIGXFSZ, SIG_IGN);
}

/* Puts the old actions back; then, if a signal asked us to stop, ends the
 * program by it (a core for SIGQUIT, as its default action says). */
static void signals_restore(const struct signals *s)
{
    for (int i = 0; i < s->n; i++)
        sigaction(s->sig[i], &s->old[i], NULL);
    const int sig = interrupted;
    if (!sig) return;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    fflush(stderr);
    raise(sig);
}

/* ============================== Progress ============================== */

struct bar {
    bool tty;       /* stderr is a terminal: one line redrawn, else a line per tensor */
    uint64_t shown; /* tensors announced so far (plain lines) */
    double t0;
    struct vkllm_quantize_progress last; /* its fallback counts, for the warning */
};

static bool on_progress(const struct vkllm_quantize_progress *p, void *user)
{
    struct bar *b = user;
    b->last = *p;
    const char *from = vkllm_type_info(p->from_type)->name, *to = vkllm_type_info(p->to_type)->name;
    char name[4 * 63 + 1]; /* a GGUF tensor name (at most 63 bytes) is file text: shown escaped */
    vkllm_printable(name, sizeof name, p->name, strlen(p->name));
    if (b->tty) {
        char bar[31];
        int fill = (int)(p->fraction * 30.0f + 0.5f);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[K[%s] %3.0f%% %s %s -> %s", bar, p->fraction * 100.0f, name, from,
                to);
    } else if (p->tensor >= b->shown) {
        b->shown = p->tensor + 1;
        fprintf(stderr, "vkllm: [%3llu/%3llu] %-32s %5s -> %s\n", (unsigned long long)b->shown,
                (unsigned long long)p->n_tensors, name, from, to);
    }
    return !interrupted;
}

/* One line for the tensors whose rows are not whole blocks of TYPE, which
 * llama-quantize ends with too ("N of M tensor(s) required fallback
 * quantization"): the file is not all TYPE, though general.file_type says so. */
static void warn_fallbacks(const struct vkllm_quantize_progress *p, const char *type)
{
    if (!p->n_fallback) return;
    char types[128] = "";
    for (uint32_t t = 0; t < 64; t++)
        if (p->fallback_types >> t & 1)
            snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s",
                     types[0] ? "/" : "", vkllm_type_info(t)->name);
    fprintf(stderr,
            "warning: %llu of %llu tensors fell back to %s: their rows are not whole blocks of the "
            "format %s gives them\n",
            (unsigned long long)p->n_fallback, (unsigned long long)p->n_quantized, types,
            cli_shown(type));
}

static void print_types(FILE *f)
{
    const char *what, *name;
    for (int i = 0; (name = vkllm_quantize_type_name(i, &what)); i++)
        fprintf(f, "  %-8s %s\n", name, what);
}

/* The checks a load makes before it needs a device: the architecture, the
 * hyperparameters, every tensor's name and shape, the tokenizer. A file vkllm
 * cannot run is refused before the conversion (minutes for a big model), not
 * after it, when the error would name the new file. */
static bool runnable(const char *path)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_vocab *v = NULL;
    struct vkllm_hparams hp;
    int rc = vkllm_gguf_open(path, &g, &err);
    if (!rc) rc = vkllm_hparams_read(g, &hp, &err);
    if (!rc) rc = vkllm_vocab_load(g, &v, &err);
    if (!rc && vkllm_vocab_n_tokens(v) != (int32_t)hp.n_vocab)
        rc = vkllm_fail(&err, VKLLM_E_FORMAT,
                        "%s: the tokenizer has %d tokens but token_embd.weight has %u rows", path,
                        vkllm_vocab_n_tokens(v), hp.n_vocab);
    if (rc) cli_error("%s; vkllm could not run it, so nothing was converted", err.msg);
    vkllm_vocab_free(v);
    vkllm_gguf_close(g);
    return rc == 0;
}

static double file_mib(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size / 1048576.0 : 0.0;
}

int cmd_quantize(int argc, char **argv)
{
    const char *paths[3] = {NULL, NULL, NULL};
    int n_paths = 0;
    long long threads = 0;
    bool pure = false, options_done = false; /* after "--": files even if they start with '-' */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!options_done && !strcmp(a, "--")) {
            options_done = true;
        } else if (options_done || a[0] != '-' || !a[1]) {
            if (n_paths == 3)
                return cli_error("too many arguments: '%s' (see vkllm quantize --help)", a);
            paths[n_paths++] = a;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(quantize_usage, stdout);
            print_types(stdout);
            return 0;
        } else if (!strcmp(a, "--pure")) {
            pure = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 256, &threads)) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm quantize (see vkllm quantize --help)",
                             a);
        }
    }
    if (n_paths < 3)
        return cli_error("vkllm quantize needs IN.gguf OUT.gguf TYPE (see vkllm quantize --help)");

    /* the bar redraws its line with escape sequences: a dumb terminal (or
     * none named) gets the plain lines instead */
    const char *term = getenv("TERM");
    const bool redraw = isatty(2) && term && *term && strcmp(term, "dumb") != 0;
    struct bar bar = {.tty = redraw, .t0 = cli_now_ms()};
    struct vkllm_quantize_params qp = {
        .type = paths[2],
        .pure = pure,
        .n_threads = (int)threads,
        .progress = on_progress,
        .user = &bar,
    };
    if (!runnable(paths[0])) return 1;
    const uintmax_t names = cli_names_of(paths[1]);
    struct signals sigs;
    signals_catch(&sigs);
    struct vkllm_error err = {0};
    int rc = vkllm_quantize(paths[0], paths[1], &qp, &err);
    if (bar.tty) fputs("\r\033[K", stderr);
    if (rc)
        cli_error("%s", err.msg);
    else
        fprintf(stderr, "vkllm: wrote %s (%.2f MiB, from %.2f MiB) in %.1f s\n",
                cli_shown(paths[1]), file_mib(paths[1]), file_mib(paths[0]),
                (cli_now_ms() - bar.t0) / 1e3);
    if (!rc) warn_fallbacks(&bar.last, paths[2]);
    if (!rc && names > 1)
        fprintf(stderr,
                "vkllm: note: %s had %ju names (hard links); the others keep the old file\n",
                cli_shown(paths[1]), names);
    signals_restore(&sigs);
    /* the signal was blocked, or its default action ignores it */
    if (interrupted) return 128 + interrupted;
    return rc ? 1 : 0;
}
