/* file_read.h: reading a whole file the window was pointed at (settings,
 * saved chats, a --script) without trusting what the name leads to.
 *
 * A FIFO, a device or a directory under such a name must not hang the window
 * or feed it forever: the file is opened with O_NONBLOCK, refused unless it
 * is a regular file, and refused past a size cap (checked again while
 * reading, as the file may grow). */
#ifndef VKLLM_CHAT_FILE_READ_H
#define VKLLM_CHAT_FILE_READ_H

#include "vkllm.h"

#include <stddef.h>

/* Reads PATH whole into *OUT (malloc'd, NUL-terminated; *LEN bytes before the
 * NUL). VKLLM_E_NOT_FOUND when PATH does not exist; VKLLM_E_IO when it cannot
 * be opened or read, or is not a regular file; VKLLM_E_FORMAT when it holds
 * more than MAX bytes; VKLLM_E_NOMEM. ERR's message does not name PATH (the
 * caller says which file it was). */
int file_read(const char *path, size_t max, char **out, size_t *len, struct vkllm_error *err);
/* Renames a file that could not be read (settings, a saved chat) to
 * PATH.corrupt-N, never over an earlier one (link, then unlink; rename on
 * file systems without hard links); *TO gets the new name's last part.
 * 0 or an errno. */
int file_set_aside(const char *path, char *to, size_t cap);

#endif
