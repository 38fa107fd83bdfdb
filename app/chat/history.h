/* history.h: a conversation as a tree of messages, and its files.
 *
 * Every message is a node; a node's children are the alternatives that
 * followed it (regenerated replies, edited messages), and each node remembers
 * which child is active. The active path from the root is the linear
 * conversation the window shows and feeds to vkllm_chat, system prompt first:
 *
 *   history_create(&h, &err);
 *   history_append(h, HISTORY_USER, text, len, NULL, &err);
 *   history_append(h, HISTORY_ASSISTANT, "", 0, &id, &err);   the reply, empty
 *   the path before it goes to vkllm_chat_add(chat, history_role_name(m->role), ...)
 *   worker, per token: history_stream(h, id, piece, n, &err);
 *   at the end:        history_set_stats(h, id, &stats, &err); history_save(h, dir, &err);
 *   each frame: for i < history_count(h): history_at(h, i), history_siblings(h, i, ...)
 *
 * Messages are addressed by id (stable for the history's life), so a reply
 * streams into its own node even while the user browses other branches. Not
 * thread-safe: the window and its worker share one mutex around these calls
 * (each is short: stream appends are amortized O(piece)), and the worker stops
 * before history_reset or history_free. history_revision tells the UI when to
 * lay out again.
 *
 * Files: DIR/ID.json, one per conversation (the whole tree, JSON with a format
 * version), written atomically through vkllm_write_file. A corrupt file is
 * reported in one line and renamed to ID.json.corrupt-N, never overwritten.
 * Errors are negative vkllm statuses with one line in struct vkllm_error.
 */
#ifndef VKLLM_CHAT_HISTORY_H
#define VKLLM_CHAT_HISTORY_H

#include "vkllm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct history history;

enum history_role { HISTORY_SYSTEM, HISTORY_USER, HISTORY_ASSISTANT };

/* How an assistant reply ended. */
enum history_end {
    HISTORY_END_NONE,   /* still streaming, or not known */
    HISTORY_END_MODEL,  /* an end-of-generation token or stop string */
    HISTORY_END_USER,   /* stopped by the user */
    HISTORY_END_LENGTH, /* the reply-token limit */
};

/* What a reply cost; set by history_set_stats. */
struct history_stats {
    uint32_t n_tokens;   /* tokens generated */
    double tokens_per_s; /* generation speed */
    const char *model;   /* model name (owned by the history; NULL: none) */
    enum history_end end;
};

/* One message; read-only for callers. TEXT moves while it streams: take the
 * pointer again after each history_stream. */
struct history_msg {
    uint32_t id; /* index in the tree, stable */
    enum history_role role;
    char *text; /* UTF-8, NUL-terminated */
    size_t len;
    int64_t created; /* Unix time, seconds */
    bool has_stats;
    struct history_stats stats;
    /* the LoRA adapters the reply was generated with, "a.gguf at 0.5, b.gguf
     * at 1" (NULL: none): the conversation's record of when a change of
     * adapters took effect; saved with the stats */
    const char *adapters;
};

/* "system", "user", "assistant". */
const char *history_role_name(enum history_role role);

/* An empty conversation with a fresh id. */
int history_create(history **out, struct vkllm_error *err);
void history_free(history *h);
/* New chat: forgets every message and the title, takes a fresh id. */
void history_reset(history *h);
/* The file name stem ("20260115-142530-1a2b3c"). */
const char *history_id(const history *h);
/* Grows by one with every change; the UI compares it with the value it last drew. */
uint64_t history_revision(const history *h);
/* Unix time of the last change to the messages (what the list sorts by). */
int64_t history_updated(const history *h);

/* ---- the active path */

size_t history_count(const history *h);
/* Message I of the active path (0: the first); NULL when out of range. */
const struct history_msg *history_at(const history *h, size_t i);
/* Message ID anywhere in the tree; NULL if there is none. */
const struct history_msg *history_get(const history *h, uint32_t id);
/* Where message I of the path stands among its siblings: *INDEX from 1 to
 * *COUNT, for the "< 1/2 >" switcher (shown when *COUNT > 1). */
void history_siblings(const history *h, size_t i, uint32_t *index, uint32_t *count);

/* ---- changes: each makes the new message the active one at its place */

/* Appends a message at the end of the active path; *ID (may be NULL) gets its id. */
int history_append(history *h, enum history_role role, const char *text, size_t len, uint32_t *id,
                   struct vkllm_error *err);
/* Appends LEN bytes of text to message ID (a streaming reply). */
int history_stream(history *h, uint32_t id, const char *text, size_t len, struct vkllm_error *err);
/* Records how reply ID went (MODEL is copied). */
int history_set_stats(history *h, uint32_t id, const struct history_stats *stats,
                      struct vkllm_error *err);
/* Records the LoRA adapters reply ID was generated with (copied; NULL: none). */
int history_set_adapters(history *h, uint32_t id, const char *adapters, struct vkllm_error *err);
/* A new, empty sibling of the last message when it is an assistant reply (the
 * old reply stays reachable through the switcher); when it is a user message
 * whose turn failed, an empty reply to it. *ID gets the new one. */
int history_regenerate(history *h, uint32_t *id, struct vkllm_error *err);
/* Takes reply ID out again when its turn failed before any text came: only
 * the newest message, empty, with no replies of its own (false otherwise,
 * nothing changed). */
bool history_drop_reply(history *h, uint32_t id);
/* A new sibling of path message I with the same role and TEXT; what followed
 * the old one stays under it. The path then ends at the new message. */
int history_edit(history *h, size_t i, const char *text, size_t len, uint32_t *id,
                 struct vkllm_error *err);
/* Makes the previous (STEP -1) or next (+1) sibling of path message I active;
 * below it the path follows what was active there before. False when there is
 * no such sibling (nothing changes). */
bool history_switch(history *h, size_t i, int step);

/* The title: the one set by history_set_title, else the first user message of
 * the path, whitespace collapsed and cut to about 60 bytes at a character
 * boundary ("New chat" without one). Valid until the next change. */
const char *history_title(history *h);
/* Renames the conversation; NULL or "" returns to the default title. */
int history_set_title(history *h, const char *title, struct vkllm_error *err);
/* Makes H a new conversation with the same messages: a fresh id (its next save
 * makes a new file) and the title TITLE + SUFFIX (" (copy)"). For a saved chat
 * that another window changed on disk: this one's turns are kept beside it. */
int history_detach(history *h, const char *suffix, struct vkllm_error *err);

/* ---- files */

/* The conversations' directory, $XDG_DATA_HOME/vkllm/chats (if XDG_DATA_HOME is
 * an absolute path) or $HOME/.local/share/vkllm/chats, created with mode 0700
 * where missing. *OUT is malloc'd. */
int history_data_dir(char **out, struct vkllm_error *err);
/* Writes DIR/ID.json atomically (the whole tree). */
int history_save(history *h, const char *dir, struct vkllm_error *err);
/* history_save's first half, for a caller that writes the file elsewhere (on
 * another thread, outside the lock that guards H): *PATH and *TEXT (*LEN
 * bytes; both malloc'd) are what history_save would write with
 * vkllm_write_file. The name is H's from then on, whether or not the write
 * succeeds. */
int history_save_prepare(history *h, const char *dir, char **path, char **text, size_t *len,
                         struct vkllm_error *err);
/* Reads DIR/ID.json. A corrupt file (VKLLM_E_FORMAT) is moved aside first and
 * ERR says so and where to. */
int history_load(const char *dir, const char *id, history **out, struct vkllm_error *err);

/* A saved conversation, as history_list and history_search give them. */
struct history_entry {
    char id[48];
    char *title;
    int64_t updated; /* Unix time of its last change */
    char *snippet;   /* search: the text around the first match (NULL: none) */
};

/* Called with one line for each file that could not be read (a corrupt one is
 * moved aside too); the others are listed all the same. May be NULL. */
typedef void (*history_notice_fn)(const char *msg, void *user);

/* The conversations in DIR, most recent first. *OUT is malloc'd (free with
 * history_entries_free); temporary and set-aside files are not conversations. */
int history_list(const char *dir, struct history_entry **out, size_t *n, history_notice_fn notice,
                 void *user, struct vkllm_error *err);
/* The conversations whose title or any message (on every branch) contains
 * QUERY, ignoring case; most recent first, each with a snippet. */
int history_search(const char *dir, const char *query, struct history_entry **out, size_t *n,
                   history_notice_fn notice, void *user, struct vkllm_error *err);
/* history_search, for a thread of its own: it ends early, VKLLM_E_INVALID
 * and no entries, once *STOP is set (the next keystroke's search replaces
 * it). */
int history_search_stoppable(const char *dir, const char *query, const atomic_bool *stop,
                             struct history_entry **out, size_t *n, history_notice_fn notice,
                             void *user, struct vkllm_error *err);
void history_entries_free(struct history_entry *e, size_t n);
/* What the list remembers of each file between listings. */
typedef struct history_list_cache history_list_cache;
void history_list_cache_free(history_list_cache *c);
/* history_list, for a thread of its own: a file whose inode, size and
 * modification time are those *CACHE holds for it is listed from there,
 * unread; *CACHE (NULL at first) is then replaced by this listing's. STOP as
 * for history_search_stoppable. */
int history_list_stoppable(const char *dir, history_list_cache **cache, const atomic_bool *stop,
                           struct history_entry **out, size_t *n, history_notice_fn notice,
                           void *user, struct vkllm_error *err);
/* Renames saved conversation ID (its last-change time stays). */
int history_rename(const char *dir, const char *id, const char *title, struct vkllm_error *err);
int history_delete(const char *dir, const char *id, struct vkllm_error *err);
/* Writes the active path as Markdown (title, then each role as a heading),
 * atomically. */
int history_export_markdown(history *h, const char *path, struct vkllm_error *err);

#endif
