/* atomic_file.h: the files vkllm writes (quantized models, conversations)
 * appear whole or not at all: written to a temporary file beside the target,
 * synced, then renamed over it. A crash or a full disk leaves the old file.
 * Internal to the engine. */
#ifndef VKLLM_ATOMIC_FILE_H
#define VKLLM_ATOMIC_FILE_H

#include "error.h"

/* Creates an empty PATH.tmp-XXXXXX beside PATH (mode 0666 less the umask) and
 * sets *TMP to its name (malloc'd). Refuses a PATH that exists and is not a
 * regular file: renaming over a device or FIFO would replace it. */
int atomic_file_create(const char *path, char **tmp, struct vkllm_error *err);

/* Syncs TMP and renames it over PATH; on failure removes TMP. Frees TMP
 * either way. */
int atomic_file_commit(char *tmp, const char *path, struct vkllm_error *err);

/* Removes TMP and frees it (NULL is fine). */
void atomic_file_abort(char *tmp);

#endif
