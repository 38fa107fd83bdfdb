/* cmd_tune.c: vkllm tune: time the decode kernels' variants on this device
 * for a model's weight shapes and keep the fastest (vkllm_tune). */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char tune_usage[] =
    "usage: vkllm tune [options]\n"
    "\n"
    "Times each variant of the decode matvec on this device for every weight shape\n"
    "of MODEL and keeps the fastest beside the pipeline cache ($XDG_CACHE_HOME/vkllm),\n"
    "where every later run on this device reads them (VKLLM_TUNE=0 ignores them).\n"
    "Other models' shapes in that file are kept. Prints each shape's times, a\n"
    "variant as THREADS/ROWS (threads per row, rows per thread group; a trailing w:\n"
    "a word of quants per lane), and the gain against the untuned default.\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "  -r, --repetitions N    timed runs of each variant, 1 to 64 (default 5)\n"
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n";

struct totals {
    double before, after; /* ms of the decode's matvecs per token */
};

static void on_shape(const struct vkllm_tune_shape *s, uint32_t i, uint32_t n, void *user)
{
    struct totals *t = user;
    if (s->n_candidates > 1) {
        t->before += s->uses * s->ms[s->default_index];
        t->after += s->uses * s->ms[s->chosen];
    }
    printf("%-18s %-7s %6u x %-6u x%-3u", s->tensor, s->type, s->k, s->n, s->uses);
    for (uint32_t c = 0; s->n_candidates > 1 && c < s->n_candidates; c++)
        printf("  %u/%u%s %.3f ms", s->tpr[c], s->rows[c], s->by_word[c] ? "w" : "", s->ms[c]);
    printf("  -> tpr %u rows %u%s ", s->tpr[s->chosen], s->rows[s->chosen],
           s->by_word[s->chosen] ? " words" : "");
    if (s->n_candidates < 2)
        printf("(the only one)\n");
    else if (s->chosen == s->default_index)
        printf("(the default)\n");
    else
        printf("(%.2fx)\n", s->ms[s->default_index] / s->ms[s->chosen]);
    cli_flush();
    if (isatty(2)) fprintf(stderr, "\r[%u/%u]", i + 1, n);
}

int cmd_tune(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL;
    long long reps = 5;
    bool validate = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tune_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(v = cli_value(argc, argv, &i))) return 1;
            if (!*v) return cli_error("%s: empty file name", a);
            model_path = v;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 64, &reps)) return 1;
        } else if (!strcmp(a, "--device")) {
            if (!(v = cli_value(argc, argv, &i))) return 1;
            device = v;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else {
            return cli_error("unknown option '%s' for vkllm tune (see vkllm tune --help)", a);
        }
    }
    if (!(model_path = cli_model(model_path)) || cli_model_check(model_path)) return 1;

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    int status = 1;
    struct vkllm_context_params cp = {.device = device, .validation = validate};
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    if (vkllm_model_load(ctx, model_path, NULL, &model, &err)) goto fail;
    printf("tuning %s on %s (%lld runs of each variant)\n", cli_shown(model_path),
           vkllm_context_device(ctx)->name, reps);
    struct totals t = {0};
    if (vkllm_tune(model, (int)reps, on_shape, &t, &err)) goto fail;
    if (isatty(2)) fputs("\r          \r", stderr);
    if (t.before > 0)
        printf("decode matvecs per token: %.2f ms with the defaults, %.2f ms tuned (%.2fx)\n",
               t.before, t.after, t.after > 0 ? t.before / t.after : 1.0);
    printf("saved %s\n", cli_shown(vkllm_tune_path(ctx)));
    status = cli_flush() ? 0 : 1;
    goto done;
fail:
    if (isatty(2)) fputs("\r          \r", stderr);
    cli_error("%s", err.msg);
done:
    vkllm_model_free(model);
    status = cli_validation_status(ctx, status);
    vkllm_context_destroy(ctx);
    return status;
}

/* ---- automatic tuning, called by the programs that run a model */

/* Stops tuning at a pending SIGINT or SIGTERM: serve blocks them until it
 * waits for them, and a server told to stop should not tune first. (Where
 * they are not blocked they end the process, which leaves no file behind:
 * the tuning file is written atomically.) */
static int stop_pending(void *user)
{
    (void)user;
    sigset_t set;
    return sigpending(&set) == 0 && (sigismember(&set, SIGINT) || sigismember(&set, SIGTERM));
}

double cli_autotune(vkllm_model *m)
{
    double budget;
    if (!vkllm_tune_pending(m, &budget)) return 0.0;
    fprintf(stderr,
            "vkllm: tuning the mat-vec for this device (once, about %.3g s; VKLLM_TUNE=manual "
            "skips)... ",
            budget);
    struct vkllm_error err = {0};
    struct vkllm_tune_auto_result r;
    const struct vkllm_tune_auto_params p = {.stop = stop_pending};
    if (vkllm_tune_auto(m, &p, &r, &err)) {
        fprintf(stderr, "not done\nvkllm: note: %s\n", cli_shown(err.msg));
        return r.seconds * 1e3;
    }
    fprintf(stderr, "%u shape%s in %.1f s", r.measured, r.measured == 1 ? "" : "s", r.seconds);
    if (r.after > 0) fprintf(stderr, ", their mat-vecs %.2fx as fast", r.before / r.after);
    if (r.left) fprintf(stderr, "; %u left for the next run", r.left);
    fputc('\n', stderr);
    return r.seconds * 1e3;
}
