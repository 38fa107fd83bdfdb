/* shown.h: a string from a file, for a one-line message. Internal to the
 * engine. */
#ifndef VKLLM_SHOWN_H
#define VKLLM_SHOWN_H

#include <stddef.h>

/* Room for the longest result: 64 bytes of four-byte escapes, "..." and NUL. */
#define SHOWN_MAX (4 * 64 + 4)

/* The LEN bytes at P escaped whole by vkllm_printable (a NUL shows as \x00
 * instead of ending the text there, an escape sequence cannot act on the
 * terminal), at most 64 of them, then "..." if there were more; in OUT,
 * which it returns. */
const char *shown(char out[SHOWN_MAX], const char *p, size_t len);

#endif
