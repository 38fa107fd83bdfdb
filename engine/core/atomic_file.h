/* atomic_file.h: the files vkllm writes (quantized models, conversations)
 * appear whole or not at all: written to a temporary file beside the target,
 * synced, then renamed over it. A crash or a full disk leaves the old file.
 * Internal to the engine.
 *
 * The target is what a careful user expects to be replaced, as GNU sed -i and
 * editors do:
 * - PATH a symbolic link (or a chain of them): the file it names is replaced
 *   and the link stays a link; a dangling link creates the file it names when
 *   that file's directory exists. A loop is an error.
 * - an existing file nobody may write (mode 0444), or one the user may not
 *   write, is refused before any work: renaming over it would need only the
 *   directory's permission, and would quietly defeat the file's.
 * - an existing file's permission bits carry over to the new one (a private
 *   0600 conversation stays private). A hard link to it keeps the old file. */
#ifndef VKLLM_ATOMIC_FILE_H
#define VKLLM_ATOMIC_FILE_H

#include "error.h"

/* Creates an empty .vkllm.tmp-XXXXXX in the directory of PATH's target
 * (above), with the target's permission bits if it exists (else 0666 less the
 * umask), and sets *TMP to its name, for the caller to open and fill. TMP
 * belongs to atomic_file_commit or atomic_file_abort, which free it, and
 * which work through the directory held open since now: a directory renamed
 * (or replaced by a link) in between still gets the file, or loses the
 * temporary one. Refuses a target that exists and is not a regular file
 * (renaming over a device or FIFO would replace it), or is not writable.
 * Messages name PATH. */
int atomic_file_create(const char *path, char **tmp, struct vkllm_error *err);

/* Refuses PATH when it names the file INPUT (through any link, hard or
 * symbolic), as `cp a a` does: the new file would replace what it was made
 * from. Messages name PATH and INPUT. */
int atomic_file_refuse_input(const char *path, const char *input, struct vkllm_error *err);

/* Syncs TMP and renames it over the target it was made for; on failure
 * removes TMP. Frees TMP either way. PATH, the name given to
 * atomic_file_create, is for messages. */
int atomic_file_commit(char *tmp, const char *path, struct vkllm_error *err);

/* Removes TMP and frees it (NULL is fine). */
void atomic_file_abort(char *tmp);

#endif
