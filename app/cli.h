/* cli.h: what the vkllm subcommands share: argument parsing that rejects bad
 * values with one clear line, and error reporting. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Prints "error: MSG" to stderr, MSG made printable (vkllm_printable): a path
 * or file text cannot act on the terminal. Returns 1 (the exit status for
 * failures). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The model to use: GIVEN (-m), else $VKLLM_MODEL, else the bundled one;
 * NULL after an error line (VKLLM_MODEL set but empty). */
const char *cli_model(const char *given);
/* 0 when PATH opens as a GGUF file, else 1 after its error line. Called
 * before the Vulkan context is made, so that a wrong file is reported without
 * waiting for a device (vkllm_model_load reads the header again: it is small). */
int cli_model_check(const char *path);
/* How many error lines cli_error has printed. */
unsigned cli_error_count(void);

/* TEXT (a file name, say) made printable (vkllm_printable) for a progress
 * line: escape sequences in it cannot act on the terminal. The buffer is
 * reused by the next call. */
const char *cli_shown(const char *text);

/* Flushes stdout; false once a write to it failed (a full disk, a closed
 * stdout, a reader that quit), so that a command stops producing output that
 * goes nowhere. main reports the failure when the command returns. */
bool cli_flush(void);

/* Writes LEN bytes of TEXT (generated or rendered from a model's file) to
 * stdout: on a terminal through vkllm_printable_text, so that an escape
 * sequence in a token or a template cannot act on it; to a pipe or a file
 * as they are, since scripts rely on the exact text. */
void cli_write_text(const char *text, size_t len);

/* All of PATH, malloc'd and NUL-terminated, its size in *LEN; NULL after an
 * error line ("PATH: cannot open: ..."). A pipe or FIFO is read as cat reads
 * it (waiting for a writer: process substitution and /dev/stdin are pipes);
 * more than 256 MiB is refused, so an endless source ends in an error. */
char *cli_read_file(const char *path, size_t *len);

/* Each parses VALUE given to FLAG into *OUT, or prints an error and returns false. */
bool cli_int(const char *flag, const char *value, long long min, long long max, long long *out);
bool cli_float(const char *flag, const char *value, double min, double max, double *out);

/* A KV cache type given to FLAG (-ctk/--cache-type-k, -ctv/--cache-type-v:
 * f16 or q8_0) into *OUT (enum vkllm_cache_type); an empty or unknown name is
 * an error line listing the types. As for every flag, the last one given wins. */
bool cli_cache_type(const char *flag, const char *value, uint32_t *out);
/* Whether ARG is -ctk/--cache-type-k (*IS_K true) or -ctv/--cache-type-v. */
bool cli_is_cache_flag(const char *arg, bool *is_k);

/* Returns the value after flag ARGV[*I] and advances *I, or prints an error. */
const char *cli_value(int argc, char **argv, int *i);

/* Prints CTX's notes (a pipeline cache or tuning file it ignored), "note:
 * ..." each, on stderr; nothing for NULL. Right after vkllm_context_create:
 * an error line, if any, comes after them, last (issue 10, M-1), and serve
 * shows them before it serves, not when it stops. */
void cli_context_notes(const vkllm_context *ctx);
/* STATUS, or 1 after an error line if the validation layer reported anything
 * on CTX (which may be NULL): the end of every command that ran the GPU. */
int cli_validation_status(const vkllm_context *ctx, int status);

/* Warns on stderr, as llama.cpp does, when a context of N_CTX tokens is longer
 * than MODEL was trained for: text past that may degrade. */
void cli_warn_context(const vkllm_model *model, uint32_t n_ctx);
/* Prints S's profile (vkllm_session_profile) to stderr: the kernels, the
 * weight matrices with the GB/s their matmuls read at and, when COPY_GBPS >
 * 0, its share of that copy bandwidth, and the layers. */
int cli_profile_print(const vkllm_session *s, double copy_gbps, struct vkllm_error *err);
/* --profile (FLAG) or VKLLM_PROFILE=1, which makes the context profile too. */
bool cli_profile_wanted(bool flag);

/* Prints what loading V worked around in its file (a special token id out of
 * range, an unknown pre-tokenizer), one "warning: ..." line each: every
 * command that loads a model calls it once, after the load. */
void cli_vocab_warnings(const vkllm_vocab *v);

/* Whether vkllm_stream_add_stop takes VALUE, given to FLAG (--stop); else
 * prints its error and returns false. */
bool cli_stop_text(const char *flag, const char *value);

/* Whether the NUL-terminated S is valid UTF-8. */
bool cli_utf8(const char *s);

/* Milliseconds from a monotonic clock. */
double cli_now_ms(void);

/* How many names (hard links) the file PATH has, 1 if none or not a regular
 * file: an atomic write (quantize, export-lora, chat's /save) gives PATH a new
 * file, and the other names keep the old one, which the user may not expect. */
static inline uintmax_t cli_names_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uintmax_t)st.st_nlink : 1;
}

/* LoRA adapters as llama.cpp's tools take them: --lora FILE (scale 1) and
 * --lora-scaled FILE SCALE, both repeatable, applied in the order given. */
#define CLI_LORA_MAX 32
#define CLI_LORA_USAGE                                                                             \
    "      --lora FILE        apply a LoRA adapter (llama.cpp's GGUF format); repeatable\n"        \
    "      --lora-scaled FILE S  the same at scale S; repeatable, adapters add up\n"
struct cli_lora {
    int n;
    const char *path[CLI_LORA_MAX];
    float scale[CLI_LORA_MAX];
    vkllm_adapter *ad[CLI_LORA_MAX]; /* cli_lora_apply */
};

/* 1 if ARGV[*I] is --lora or --lora-scaled (its values taken into L, *I
 * past them), 0 if it is another flag, -1 after an error line. */
static inline int cli_lora_arg(struct cli_lora *l, int argc, char **argv, int *i)
{
    const char *flag = argv[*i], *path, *v;
    const int scaled = !strcmp(flag, "--lora-scaled");
    if (!scaled && strcmp(flag, "--lora")) return 0;
    double s = 1.0;
    if (!(path = cli_value(argc, argv, i))) return -1;
    if (!*path) return -cli_error("%s: empty file name", flag);
    if (scaled) {
        if (*i + 1 >= argc) return -cli_error("%s needs a file and a scale", flag);
        v = argv[++*i];
        if (!cli_float(flag, v, -1e6, 1e6, &s)) return -1;
    }
    if (l->n == CLI_LORA_MAX) return -cli_error("%s: at most %d adapters", flag, CLI_LORA_MAX);
    l->path[l->n] = path;
    l->scale[l->n++] = (float)s;
    return 1;
}

/* Loads L's adapters for M; fails with ERR filled. */
static inline int cli_lora_load(struct cli_lora *l, vkllm_model *m, struct vkllm_error *err)
{
    for (int i = 0; i < l->n; i++) {
        int rc = vkllm_adapter_load(m, l->path[i], &l->ad[i], err);
        if (rc) return rc;
    }
    return VKLLM_OK;
}

/* Makes L's loaded adapters S's set (nothing when there are none). */
static inline int cli_lora_apply(const struct cli_lora *l, vkllm_session *s,
                                 struct vkllm_error *err)
{
    return l->n ? vkllm_session_set_adapters(s, l->ad, l->scale, (uint32_t)l->n, err) : VKLLM_OK;
}

/* One "vkllm: adapter ..." line per adapter of L on stderr. */
static inline void cli_lora_describe(const struct cli_lora *l)
{
    for (int i = 0; i < l->n; i++) {
        struct vkllm_adapter_info ai;
        vkllm_adapter_describe(l->ad[i], &ai);
        fprintf(stderr, "vkllm: adapter %s at scale %g: %u matrices, rank %u%s, alpha %g\n",
                cli_shown(l->path[i]), l->scale[i], ai.n_tensors, ai.rank_max,
                ai.rank_min != ai.rank_max ? " (at most)" : "", ai.alpha);
    }
}

/* Frees L's adapters: after the sessions that use them. */
static inline void cli_lora_free(struct cli_lora *l)
{
    for (int i = 0; i < l->n; i++)
        vkllm_adapter_free(l->ad[i]);
}

/* Tunes M's decode kernels for this device when its tuning file lacks M's
 * shapes (vkllm_tune_auto: a model's first run, about 3 s), with one line on
 * stderr; after the load, before any session. A failure is a note: the
 * defaults work. Returns the milliseconds it took. */
double cli_autotune(vkllm_model *m);

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export_lora(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_template(int argc, char **argv);

#endif
