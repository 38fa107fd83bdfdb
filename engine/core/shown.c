/* shown.c: a string from a file, escaped and cut for a message (shown.h). */
#include "shown.h"

#include "vkllm.h"

#include <string.h>

const char *shown(char out[SHOWN_MAX], const char *p, size_t len)
{
    size_t n = vkllm_printable(out, SHOWN_MAX - 3, p, len < 64 ? len : 64);
    if (n < len) strcat(out, "...");
    return out;
}
