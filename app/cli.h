/* cli.h: what the vkllm subcommands share: argument parsing that rejects bad
 * values with one clear line, and error reporting. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Prints "error: MSG" to stderr; returns 1 (the exit status for failures). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* All of PATH, malloc'd and NUL-terminated, its size in *LEN; NULL after an
 * error line ("PATH: cannot open: ..."). */
char *cli_read_file(const char *path, size_t *len);

/* Each parses VALUE given to FLAG into *OUT, or prints an error and returns false. */
bool cli_int(const char *flag, const char *value, long long min, long long max, long long *out);
bool cli_float(const char *flag, const char *value, double min, double max, double *out);

/* Returns the value after flag ARGV[*I] and advances *I, or prints an error. */
const char *cli_value(int argc, char **argv, int *i);

/* STATUS, or 1 after an error line if the validation layer reported anything
 * on CTX (which may be NULL): the end of every command that ran the GPU. */
int cli_validation_status(const vkllm_context *ctx, int status);

/* Milliseconds from a monotonic clock. */
double cli_now_ms(void);

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_template(int argc, char **argv);

#endif
