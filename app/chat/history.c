/* history.c: the conversation tree (nodes in creation order, each with its
 * children and the active one) and its title. Its files are history_files.c. */
#include "history_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

/* ============================== Helpers ============================== */

void hist_sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void hist_sb_str(struct sbuf *b, const char *s)
{
    hist_sb_put(b, s, strlen(s));
}

/* Valid UTF-8 with no NUL (texts are NUL-terminated, and JSON must take them). */
bool hist_utf8_valid(const char *s, size_t n)
{
    while (n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
        if (k <= 0 || c == 0) return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

/* A message's text as the tree takes it, or an error saying why not. */
static int check_text(const char *text, size_t len, struct vkllm_error *err)
{
    if (!text && len) return vkllm_fail(err, VKLLM_E_INVALID, "no text");
    if (len && memchr(text, 0, len))
        return vkllm_fail(err, VKLLM_E_INVALID, "text holds a NUL byte (U+0000)");
    if (!hist_utf8_valid(text, len))
        return vkllm_fail(err, VKLLM_E_INVALID, "text is not valid UTF-8");
    return VKLLM_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends S[0..N) to B with runs of whitespace made one space, none at either
 * end, stopping before MAX bytes at a character boundary; returns whether it
 * had to stop. */
bool hist_put_collapsed(struct sbuf *b, const char *s, size_t n, size_t max)
{
    size_t start = b->n;
    bool space = false;
    for (size_t i = 0; i < n;) {
        if (is_space(s[i])) {
            space = b->n > start;
            i++;
            continue;
        }
        size_t k = 1;
        while (i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k++;
        if (b->n - start + space + k > max) return true;
        if (space) hist_sb_put(b, " ", 1);
        space = false;
        hist_sb_put(b, s + i, k);
        i += k;
    }
    return false;
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* ============================== The tree ============================== */

const char *history_role_name(enum history_role role)
{
    static const char *const names[] = {"system", "user", "assistant"};
    return (unsigned)role < 3 ? names[role] : "?";
}

const char *const hist_end_names[] = {"none", "model", "user", "length"};

void hist_new_id(history *h)
{
    /* time first, so names sort by creation; then bits that differ between
     * two conversations made in the same second (checked on first save) */
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (++counter << 48) ^
                 (uint64_t)(uintptr_t)h;
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15u;
    x ^= x >> 29;
    struct tm tm;
    time_t t = ts.tv_sec;
    gmtime_r(&t, &tm);
    snprintf(h->id, sizeof h->id, "%04d%02d%02d-%02d%02d%02d-%06x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(x & 0xffffff));
}

static struct kids *kids_of(history *h, uint32_t parent)
{
    return parent == NO_PARENT ? &h->root : &h->nodes[parent]->kids;
}

void hist_rebuild_path(history *h)
{
    /* no allocation: a path is never longer than the tree, and hist_add_node keeps
     * room for that */
    h->n_path = 0;
    for (struct kids *k = &h->root; k->n; k = &h->nodes[k->v[k->active]]->kids)
        h->path[h->n_path++] = k->v[k->active];
}

/* Node ID's line in the file must be made again. */
static void dirty(history *h, uint32_t id)
{
    if (id == NO_PARENT) return;
    free(h->nodes[id]->json);
    h->nodes[id]->json = NULL;
}

static void touch(history *h)
{
    h->revision++;
    h->updated = now();
}

int history_create(history **out, struct vkllm_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    hist_new_id(*out);
    (*out)->created = (*out)->updated = now();
    return VKLLM_OK;
}

static void clear(history *h)
{
    for (uint32_t i = 0; i < h->n_nodes; i++) {
        free(h->nodes[i]->m.text);
        free(h->nodes[i]->kids.v);
        free(h->nodes[i]->model);
        free(h->nodes[i]->adapters);
        free(h->nodes[i]->json);
        free(h->nodes[i]);
    }
    free(h->nodes);
    free(h->root.v);
    free(h->path);
    free(h->custom_title);
}

void history_free(history *h)
{
    if (!h) return;
    clear(h);
    free(h);
}

void history_reset(history *h)
{
    uint64_t revision = h->revision;
    clear(h);
    memset(h, 0, sizeof *h);
    hist_new_id(h);
    h->revision = revision + 1;
    h->created = h->updated = now();
}

const char *history_id(const history *h)
{
    return h->id;
}
uint64_t history_revision(const history *h)
{
    return h->revision;
}
int64_t history_updated(const history *h)
{
    return h->updated;
}
size_t history_count(const history *h)
{
    return h->n_path;
}

const struct history_msg *history_at(const history *h, size_t i)
{
    return i < h->n_path ? &h->nodes[h->path[i]]->m : NULL;
}

const struct history_msg *history_get(const history *h, uint32_t id)
{
    return id < h->n_nodes ? &h->nodes[id]->m : NULL;
}

void history_siblings(const history *h, size_t i, uint32_t *index, uint32_t *count)
{
    *index = *count = 0;
    if (i >= h->n_path) return;
    uint32_t parent = h->nodes[h->path[i]]->parent;
    const struct kids *k = parent == NO_PARENT ? &h->root : &h->nodes[parent]->kids;
    *index = k->active + 1;
    *count = k->n;
}

static int kids_push(struct kids *k, uint32_t id)
{
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? 2 * k->cap : 2;
        uint32_t *v = realloc(k->v, cap * sizeof *v);
        if (!v) return VKLLM_E_NOMEM;
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = id;
    return VKLLM_OK;
}

/* Makes a node under PARENT, not yet made active. */
int hist_add_node(history *h, uint32_t parent, enum history_role role, const char *text, size_t len,
                  int64_t created, struct vkllm_error *err)
{
    if ((unsigned)role > HISTORY_ASSISTANT) return vkllm_fail(err, VKLLM_E_INVALID, "no such role");
    if (h->n_nodes >= MAX_MESSAGES)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "this conversation holds %u messages, the most one may: start a new "
                          "chat",
                          MAX_MESSAGES);
    if (len > MAX_MESSAGE_BYTES)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "a message of %zu bytes, more than the %zu MiB one may hold", len,
                          MAX_MESSAGE_BYTES >> 20);
    if (h->n_nodes == h->cap_nodes) {
        uint32_t cap = h->cap_nodes ? 2 * h->cap_nodes : 16;
        struct node **v = realloc(h->nodes, cap * sizeof *v);
        if (!v) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        h->nodes = v;
        uint32_t *p = realloc(h->path, cap * sizeof *p);
        if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        h->path = p;
        h->cap_nodes = cap;
    }
    struct node *nd = calloc(1, sizeof *nd);
    char *t = malloc(len + 1);
    if (!nd || !t || kids_push(kids_of(h, parent), h->n_nodes)) {
        free(nd);
        free(t);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    if (len) memcpy(t, text, len);
    t[len] = 0;
    nd->m = (struct history_msg){
        .id = h->n_nodes, .role = role, .text = t, .len = len, .created = created};
    nd->cap = len + 1;
    nd->parent = parent;
    h->nodes[h->n_nodes++] = nd;
    return VKLLM_OK;
}

/* Adds a message under PARENT and makes it the active path's end there. */
static int add_active(history *h, uint32_t parent, enum history_role role, const char *text,
                      size_t len, uint32_t *id, struct vkllm_error *err)
{
    int rc = check_text(text, len, err);
    if (rc) return rc;
    rc = hist_add_node(h, parent, role, text, len, now(), err);
    if (rc) return rc;
    struct kids *k = kids_of(h, parent);
    k->active = k->n - 1;
    dirty(h, parent); /* its "active" */
    /* under the path's last message the path just grows: rebuilding it at
     * every append made a long chat quadratic */
    bool at_end = h->n_path ? parent == h->path[h->n_path - 1] : parent == NO_PARENT && k->n == 1;
    if (at_end)
        h->path[h->n_path++] = h->n_nodes - 1;
    else
        hist_rebuild_path(h);
    touch(h);
    if (id) *id = h->n_nodes - 1;
    return VKLLM_OK;
}

int history_append(history *h, enum history_role role, const char *text, size_t len, uint32_t *id,
                   struct vkllm_error *err)
{
    uint32_t parent = h->n_path ? h->path[h->n_path - 1] : NO_PARENT;
    return add_active(h, parent, role, text, len, id, err);
}

int history_stream(history *h, uint32_t id, const char *text, size_t len, struct vkllm_error *err)
{
    if (id >= h->n_nodes) return vkllm_fail(err, VKLLM_E_INVALID, "no message %u", id);
    if (!len) return VKLLM_OK;
    int rc = check_text(text, len, err);
    if (rc) return rc;
    struct node *nd = h->nodes[id];
    if (nd->m.len + len + 1 > nd->cap) {
        /* doubling: a reply of N tokens is copied O(log N) times, not N */
        size_t cap = nd->cap * 2;
        if (cap < nd->m.len + len + 1) cap = nd->m.len + len + 1;
        char *t = realloc(nd->m.text, cap);
        if (!t) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        nd->m.text = t;
        nd->cap = cap;
    }
    memcpy(nd->m.text + nd->m.len, text, len);
    nd->m.len += len;
    nd->m.text[nd->m.len] = 0;
    dirty(h, id);
    touch(h);
    return VKLLM_OK;
}

int history_set_stats(history *h, uint32_t id, const struct history_stats *stats,
                      struct vkllm_error *err)
{
    if (id >= h->n_nodes) return vkllm_fail(err, VKLLM_E_INVALID, "no message %u", id);
    /* 1e9 tokens/s is past any device: more is a corrupt or crafted file */
    if ((unsigned)stats->end > HISTORY_END_LENGTH || !(stats->tokens_per_s >= 0) ||
        stats->tokens_per_s > 1e9)
        return vkllm_fail(err, VKLLM_E_INVALID, "bad reply statistics");
    if (stats->model && !hist_utf8_valid(stats->model, strlen(stats->model)))
        return vkllm_fail(err, VKLLM_E_INVALID, "model name is not valid UTF-8");
    char *model = stats->model ? strdup(stats->model) : NULL;
    if (stats->model && !model) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    struct node *nd = h->nodes[id];
    free(nd->model);
    nd->model = model;
    nd->m.stats = *stats;
    nd->m.stats.model = model;
    nd->m.has_stats = true;
    dirty(h, id);
    touch(h);
    return VKLLM_OK;
}

int history_set_adapters(history *h, uint32_t id, const char *adapters, struct vkllm_error *err)
{
    if (id >= h->n_nodes) return vkllm_fail(err, VKLLM_E_INVALID, "no message %u", id);
    if (adapters && !hist_utf8_valid(adapters, strlen(adapters)))
        return vkllm_fail(err, VKLLM_E_INVALID, "adapter names are not valid UTF-8");
    char *copy = adapters ? strdup(adapters) : NULL;
    if (adapters && !copy) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    struct node *nd = h->nodes[id];
    free(nd->adapters);
    nd->adapters = copy;
    nd->m.adapters = copy;
    dirty(h, id);
    touch(h);
    return VKLLM_OK;
}

int history_regenerate(history *h, uint32_t *id, struct vkllm_error *err)
{
    const struct node *last = h->n_path ? h->nodes[h->path[h->n_path - 1]] : NULL;
    /* a user message without a reply: its turn failed, and is tried again */
    if (last && last->m.role == HISTORY_USER)
        return add_active(h, h->path[h->n_path - 1], HISTORY_ASSISTANT, "", 0, id, err);
    if (!last || last->m.role != HISTORY_ASSISTANT)
        return vkllm_fail(err, VKLLM_E_INVALID, "the last message is not a reply to regenerate");
    return add_active(h, last->parent, HISTORY_ASSISTANT, "", 0, id, err);
}

bool history_drop_reply(history *h, uint32_t id)
{
    if (id + 1 != h->n_nodes) return false;
    struct node *nd = h->nodes[id];
    struct kids *k = kids_of(h, nd->parent);
    if (nd->kids.n || nd->m.len || nd->m.role != HISTORY_ASSISTANT || !k->n || k->v[k->n - 1] != id)
        return false;
    k->n--;
    /* the sibling made last before it, as the reply it replaced was */
    k->active = k->n ? k->n - 1 : 0;
    dirty(h, nd->parent);
    free(nd->m.text);
    free(nd->kids.v);
    free(nd->model);
    free(nd->adapters);
    free(nd->json);
    free(nd);
    h->n_nodes--;
    hist_rebuild_path(h);
    touch(h);
    return true;
}

int history_edit(history *h, size_t i, const char *text, size_t len, uint32_t *id,
                 struct vkllm_error *err)
{
    if (i >= h->n_path) return vkllm_fail(err, VKLLM_E_INVALID, "no message %zu to edit", i + 1);
    const struct node *old = h->nodes[h->path[i]];
    return add_active(h, old->parent, old->m.role, text, len, id, err);
}

bool history_switch(history *h, size_t i, int step)
{
    if (i >= h->n_path) return false;
    struct kids *k = kids_of(h, h->nodes[h->path[i]]->parent);
    int64_t to = (int64_t)k->active + step;
    if (!step || to < 0 || to >= k->n) return false;
    k->active = (uint32_t)to;
    dirty(h, h->nodes[h->path[i]]->parent);
    hist_rebuild_path(h);
    h->revision++;
    return true;
}

/* ============================== Title ============================== */

const char *history_title(history *h)
{
    if (h->custom_title) return h->custom_title;
    for (size_t i = 0; i < h->n_path; i++) {
        const struct history_msg *m = &h->nodes[h->path[i]]->m;
        if (m->role != HISTORY_USER) continue;
        struct sbuf b = {0};
        bool cut = hist_put_collapsed(&b, m->text, m->len, TITLE_BYTES);
        if (cut) hist_sb_str(&b, "\xe2\x80\xa6"); /* … */
        if (b.oom || !b.n) {
            free(b.p);
            break;
        }
        snprintf(h->title, sizeof h->title, "%s", b.p);
        free(b.p);
        return h->title;
    }
    return "New chat";
}

int history_set_title(history *h, const char *title, struct vkllm_error *err)
{
    size_t len = title ? strlen(title) : 0;
    if (!hist_utf8_valid(title, len))
        return vkllm_fail(err, VKLLM_E_INVALID, "title is not valid UTF-8");
    /* one line, as a sidebar shows it */
    struct sbuf b = {0};
    hist_put_collapsed(&b, title, len, 4 * TITLE_BYTES);
    if (b.oom) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    free(h->custom_title);
    h->custom_title = b.p; /* NULL when empty: the default again */
    h->revision++;
    return VKLLM_OK;
}

int history_detach(history *h, const char *suffix, struct vkllm_error *err)
{
    const char *title = history_title(h);
    size_t n = strlen(title) + strlen(suffix) + 1;
    char *t = malloc(n);
    if (!t) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    snprintf(t, n, "%s%s", title, suffix);
    int rc = history_set_title(h, t, err);
    free(t);
    if (rc) return rc;
    hist_new_id(h);
    h->on_disk = false; /* the next save finds a free name */
    touch(h);
    return VKLLM_OK;
}
