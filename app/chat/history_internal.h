/* history_internal.h: what the two halves of the history share: the tree's
 * structs (history.c builds them, history_files.c reads and writes them) and
 * the helpers both use. Not for the window: it uses history.h. */
#ifndef VKLLM_CHAT_HISTORY_INTERNAL_H
#define VKLLM_CHAT_HISTORY_INTERNAL_H

#include "history.h"

#define NO_PARENT UINT32_MAX
/* The most messages one conversation holds (every branch counted): the
 * window lays out the active path every frame, so a chat of a million took
 * 5 s to open, 3.8 GB and over a second a frame while replying (probe 4,
 * R-17); at 100,000 it opens in about a second and a frame takes 25 ms. */
#define MAX_MESSAGES 100000u
#define TITLE_BYTES  60
/* The most text one message may hold: more than any context the window runs
 * (1M tokens at a few bytes each), with room to spare; a longer one is not a
 * conversation a model could have had, and laying it out would hold the
 * window for seconds (probe 3, Q-3: 50 MB took 25 s and 4 GB) */
#define MAX_MESSAGE_BYTES ((size_t)5 << 20)

/* A growing byte string; a failed allocation is remembered, not reported at
 * every append. */
struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

/* The children of a node (or of the root), in creation order. */
struct kids {
    uint32_t *v;
    uint32_t n, cap;
    uint32_t active; /* index into v */
};

struct node {
    struct history_msg m;
    size_t cap;      /* bytes allocated for m.text */
    uint32_t parent; /* NO_PARENT: a first message */
    struct kids kids;
    char *model;    /* m.stats.model */
    char *adapters; /* m.adapters */
    char *json;     /* the message's line in the file; NULL: to be made (see node_json) */
    size_t json_len;
};

struct history {
    char id[48];
    struct node **nodes; /* by id */
    uint32_t n_nodes, cap_nodes;
    struct kids root; /* the first messages (the system prompt, or edits of the first) */
    uint32_t *path;   /* ids of the active path (room for cap_nodes) */
    size_t n_path;
    char *custom_title; /* NULL: the default */
    char title[TITLE_BYTES + 8];
    uint64_t revision;
    int64_t created, updated;
    bool on_disk; /* read from or written to DIR/ID.json: the id is ours */
};

/* "none", "model", "user", "length": enum history_end in the files. */
extern const char *const hist_end_names[];

void hist_sb_put(struct sbuf *b, const char *s, size_t n);
void hist_sb_str(struct sbuf *b, const char *s);
/* Valid UTF-8 with no NUL (texts are NUL-terminated, and JSON must take them). */
bool hist_utf8_valid(const char *s, size_t n);
/* Appends S[0..N) to B with runs of whitespace made one space, none at either
 * end, stopping before MAX bytes at a character boundary; returns whether it
 * had to stop. */
bool hist_put_collapsed(struct sbuf *b, const char *s, size_t n, size_t max);

/* A fresh file name stem for H. */
void hist_new_id(history *h);
/* The active path again, from each node's active child. */
void hist_rebuild_path(history *h);
/* Makes a node under PARENT, not yet made active. */
int hist_add_node(history *h, uint32_t parent, enum history_role role, const char *text, size_t len,
                  int64_t created, struct vkllm_error *err);

#endif
