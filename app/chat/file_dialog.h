/* file_dialog.h: the desktop's own "open a file" dialog (zenity on GNOME and
 * most others, kdialog on KDE) as a child process that the window polls
 * once a frame, so that the UI thread never waits for the user's choice.
 *
 *   if (file_dialog_tool()) file_dialog_start(dir, &d, &err);
 *   each frame: switch (file_dialog_poll(d, &path, &err)) ... then
 *               file_dialog_close(d) once it is not FILE_DIALOG_OPEN
 *   the window quits: file_dialog_close(d) kills the dialog and reaps it
 *
 * VKLLM_FILE_DIALOG=builtin (or no such program on PATH) makes
 * file_dialog_tool NULL: the window's own browser is used instead;
 * VKLLM_FILE_DIALOG=zenity or =kdialog picks one. No display needed here:
 * the dialog is another program. */
#ifndef VKLLM_CHAT_FILE_DIALOG_H
#define VKLLM_CHAT_FILE_DIALOG_H

#include "vkllm.h"

struct file_dialog;

/* The dialog program's path, or NULL: use the in-window browser. Looked up
 * on PATH at each call (cheap: a few access() calls). */
const char *file_dialog_tool(void);

/* Opens the dialog in folder DIR (NULL: its own choice), showing .gguf files. */
int file_dialog_start(const char *dir, struct file_dialog **out, struct vkllm_error *err);

enum file_dialog_state {
    FILE_DIALOG_OPEN,      /* the user is still choosing */
    FILE_DIALOG_CHOSEN,    /* *PATH (malloc'd) is the chosen file */
    FILE_DIALOG_CANCELLED, /* closed without a choice */
    FILE_DIALOG_FAILED,    /* the program failed: ERR says how */
};
/* Never blocks. */
enum file_dialog_state file_dialog_poll(struct file_dialog *d, char **path,
                                        struct vkllm_error *err);
/* Kills the dialog if it is still open, reaps it, frees D (NULL is fine). */
void file_dialog_close(struct file_dialog *d);

#endif
