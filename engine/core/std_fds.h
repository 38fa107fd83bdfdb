/* std_fds.h: the standard descriptors of a program started with some closed.
 * Internal to the engine; for the programs (vkllm, vkllm-chat), which call it
 * first thing in main. */
#ifndef VKLLM_STD_FDS_H
#define VKLLM_STD_FDS_H

/* Started with a standard descriptor closed (`2>&-`, some launchers and
 * service units), a program hands that number to the next file it opens (a
 * model, a driver's device node, the X display's socket) and stdio writes into
 * it: vkllm-chat's log lines went into the X11 connection, which then hung
 * (probe 7, W-1). Each closed one of 0-2 gets /dev/null instead, stdout
 * read-only so that writing to it still fails and is reported. */
void std_fds_keep(void);

#endif
