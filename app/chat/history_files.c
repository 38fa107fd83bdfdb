/* history_files.c: the conversation tree's JSON files: save, load (checked,
 * a corrupt file set aside), list, search, rename, delete, Markdown export. */
#include "file_read.h"
#include "history_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#define FORMAT_VERSION 1
/* a conversation of 2,000 long messages is a few MiB: anything past this is
 * not one of ours, and reading it would only hold up the list */
#define MAX_FILE_BYTES ((size_t)256 << 20)
/* times are seconds since 1970 up to the end of year 9999 (UTC): what
 * localtime and a four-digit year can show */
#define MAX_TIME       ((json_int_t)253402300799)
#define SNIPPET_BEFORE 40
#define SNIPPET_AFTER  80

/* ============================== JSON ============================== */

/* The file is the header's fields, then the messages one a line:
 *   {"format": "vkllm-chat", "version": 1, "title": ..., "active": 0, "messages": [
 *   {"role": "user", "content": ..., "created": ..., "parent": -1, "active": 0},
 *   {"role": "assistant", ..., "stats": {"tokens": 40, "tokens_per_s": 812.5,
 *    "model": ..., "end": "model", "adapters": "a.gguf at 0.5"}},   (adapters: optional)
 *   ...]}
 * Each message's line is encoded once (by jansson) and kept until the message
 * changes, so saving after a reply re-encodes the reply, not the whole chat
 * (jansson encodes about 30 MB/s: 45 ms for 2,000 long messages). */
static const char *node_json(struct node *nd, size_t *len)
{
    if (!nd->json) {
        json_t *o = json_pack(
            "{s:s, s:s%, s:I, s:i, s:i}", "role", history_role_name(nd->m.role), "content",
            nd->m.text, nd->m.len, "created", (json_int_t)nd->m.created, "parent",
            nd->parent == NO_PARENT ? -1 : (int)nd->parent, "active", (int)nd->kids.active);
        if (o && nd->m.has_stats) {
            const struct history_stats *s = &nd->m.stats;
            json_t *st = json_pack("{s:I, s:f, s:s?, s:s}", "tokens", (json_int_t)s->n_tokens,
                                   "tokens_per_s", s->tokens_per_s, "model", s->model, "end",
                                   hist_end_names[s->end]);
            /* only where adapters applied: older files and readers see no change */
            if (st && nd->m.adapters &&
                json_object_set_new(st, "adapters", json_string(nd->m.adapters))) {
                json_decref(st);
                st = NULL;
            }
            if (!st || json_object_set_new(o, "stats", st)) {
                json_decref(o);
                o = NULL;
            }
        }
        nd->json = o ? json_dumps(o, 0) : NULL;
        json_decref(o);
        if (!nd->json) return NULL;
        nd->json_len = strlen(nd->json);
    }
    *len = nd->json_len;
    return nd->json;
}

/* The file's text (malloc'd), or NULL when memory ran out. */
static char *serialize(history *h, size_t *len)
{
    json_t *head = json_pack("{s:s, s:i, s:s, s:b, s:I, s:I, s:i}", "format", "vkllm-chat",
                             "version", FORMAT_VERSION, "title", history_title(h), "renamed",
                             h->custom_title != NULL, "created", (json_int_t)h->created, "updated",
                             (json_int_t)h->updated, "active", (int)h->root.active);
    char *text = head ? json_dumps(head, 0) : NULL;
    json_decref(head);
    if (!text) return NULL;
    struct sbuf b = {0};
    size_t n = strlen(text);
    hist_sb_put(&b, text, n ? n - 1 : 0); /* all but its closing brace */
    free(text);
    hist_sb_str(&b, ", \"messages\": [");
    for (uint32_t i = 0; i < h->n_nodes; i++) {
        size_t n;
        const char *line = node_json(h->nodes[i], &n);
        if (!line) b.oom = true;
        hist_sb_str(&b, i ? ",\n" : "\n");
        if (line) hist_sb_put(&b, line, n);
    }
    hist_sb_str(&b, "]}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

static bool get_int(json_t *o, const char *key, json_int_t lo, json_int_t hi, json_int_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return false;
    *v = json_integer_value(x);
    return *v >= lo && *v <= hi;
}

static int role_from(const char *s)
{
    for (int r = HISTORY_SYSTEM; r <= HISTORY_ASSISTANT; r++)
        if (!strcmp(s, history_role_name(r))) return r;
    return -1;
}

/* Builds the tree ROOT describes, checking everything: a file is untrusted. */
static int from_json(json_t *root, history *h, struct vkllm_error *err)
{
    json_int_t v;
    if (!json_is_object(root)) return vkllm_fail(err, VKLLM_E_FORMAT, "not a JSON object");
    if (!get_int(root, "version", INT32_MIN, INT32_MAX, &v))
        return vkllm_fail(err, VKLLM_E_FORMAT, "no format version");
    /* a newer vkllm's file is not corrupt: it stays where it is for that vkllm */
    if (v > FORMAT_VERSION)
        return vkllm_fail(
            err, VKLLM_E_UNSUPPORTED,
            "format version %lld, made by a newer vkllm (this one reads %d): left as it is",
            (long long)v, FORMAT_VERSION);
    if (v != FORMAT_VERSION)
        return vkllm_fail(err, VKLLM_E_FORMAT, "format version %lld, but this vkllm reads %d",
                          (long long)v, FORMAT_VERSION);
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs)) return vkllm_fail(err, VKLLM_E_FORMAT, "no \"messages\" array");
    /* not corrupt (an older vkllm took more): left where it is */
    if (json_array_size(msgs) > MAX_MESSAGES)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%zu messages, more than the %u this window opens: left as it is",
                          json_array_size(msgs), MAX_MESSAGES);
    json_int_t created, updated;
    if (!get_int(root, "created", 0, MAX_TIME, &created) ||
        !get_int(root, "updated", 0, MAX_TIME, &updated))
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "no \"created\" or \"updated\" time (seconds from 1970 to 9999)");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_int_t parent, t;
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || !role || role_from(role) < 0 || !json_is_string(content) ||
            !get_int(m, "created", 0, MAX_TIME, &t))
            return vkllm_fail(
                err, VKLLM_E_FORMAT,
                "message %zu needs a role (system, user, assistant), content and time", i + 1);
        if (json_string_length(content) > MAX_MESSAGE_BYTES)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "message %zu: %zu bytes, more than the %zu MiB a message may hold",
                              i + 1, json_string_length(content), MAX_MESSAGE_BYTES >> 20);
        /* parents come before their children: this rules out cycles too */
        if (!get_int(m, "parent", -1, (json_int_t)i - 1, &parent))
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "message %zu: its parent is not an earlier message (a cycle or a "
                              "dangling index)",
                              i + 1);
        int rc = hist_add_node(h, parent < 0 ? NO_PARENT : (uint32_t)parent, role_from(role),
                               json_string_value(content), json_string_length(content), t, err);
        if (rc) return rc;
        json_t *st = json_object_get(m, "stats");
        if (!st) continue;
        json_int_t tokens;
        json_t *tps = json_object_get(st, "tokens_per_s"), *model = json_object_get(st, "model");
        json_t *adapters = json_object_get(st, "adapters");
        const char *end = json_string_value(json_object_get(st, "end"));
        int e = -1;
        for (int k = 0; end && k <= HISTORY_END_LENGTH; k++)
            if (!strcmp(end, hist_end_names[k])) e = k;
        /* 1e9 tokens/s is past any device (1e308 ran under the buttons) */
        if (!get_int(st, "tokens", 0, UINT32_MAX, &tokens) || !json_is_number(tps) ||
            !(json_number_value(tps) >= 0 && json_number_value(tps) <= 1e9) || e < 0 ||
            !(json_is_null(model) || json_is_string(model)) ||
            !(!adapters || json_is_string(adapters)))
            return vkllm_fail(err, VKLLM_E_FORMAT, "message %zu: bad \"stats\"", i + 1);
        struct history_stats s = {(uint32_t)tokens, json_number_value(tps),
                                  json_string_value(model), (enum history_end)e};
        rc = history_set_stats(h, (uint32_t)i, &s, err);
        if (!rc && adapters)
            rc = history_set_adapters(h, (uint32_t)i, json_string_value(adapters), err);
        if (rc) return rc;
    }
    /* the active children, now that every node's children are known */
    json_array_foreach(msgs, i, m)
    {
        struct kids *k = &h->nodes[i]->kids;
        json_int_t a;
        if (!get_int(m, "active", 0, k->n ? k->n - 1 : 0, &a))
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "message %zu: \"active\" is not one of its %u replies", i + 1, k->n);
        k->active = (uint32_t)a;
    }
    if (!get_int(root, "active", 0, h->root.n ? h->root.n - 1 : 0, &v))
        return vkllm_fail(err, VKLLM_E_FORMAT, "\"active\" is not one of the %u first messages",
                          h->root.n);
    h->root.active = (uint32_t)v;
    json_t *renamed = json_object_get(root, "renamed");
    const char *title = json_string_value(json_object_get(root, "title"));
    if (!json_is_boolean(renamed) || !title)
        return vkllm_fail(err, VKLLM_E_FORMAT, "no \"title\" and \"renamed\"");
    if (json_is_true(renamed)) {
        int rc = history_set_title(h, title, err);
        if (rc) return rc;
    }
    hist_rebuild_path(h);
    /* after history_set_stats, which marks a change */
    h->created = created;
    h->updated = updated;
    h->revision = 0;
    return VKLLM_OK;
}

/* ============================== Files ============================== */

/* Ids name files in DIR: letters, digits, '-' and '_' only (no separators,
 * and never a name a temporary or set-aside file has). */
static bool id_valid(const char *id)
{
    size_t n = strlen(id);
    if (!n || n >= sizeof((struct history_entry *)0)->id) return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_'))
            return false;
    return true;
}

static char *file_path(const char *dir, const char *id, struct vkllm_error *err)
{
    size_t n = strlen(dir) + strlen(id) + sizeof "/.json";
    char *p = malloc(n);
    if (!p) {
        vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        return NULL;
    }
    snprintf(p, n, "%s/%s.json", dir, id);
    return p;
}

/* Creates PATH and its missing parents with mode 0700. */
static int make_dirs(char *path, struct vkllm_error *err)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        int rc = mkdir(path, 0700) != 0 && errno != EEXIST ? errno : 0;
        struct stat st;
        if (!rc && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) rc = ENOTDIR;
        if (rc) {
            vkllm_fail(err, VKLLM_E_IO, "%s: cannot create the directory: %s", path, strerror(rc));
            *p = c;
            return VKLLM_E_IO;
        }
        *p = c;
        if (!c) return VKLLM_OK;
    }
}

int history_data_dir(char **out, struct vkllm_error *err)
{
    *out = NULL;
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    /* the XDG spec: a relative XDG_DATA_HOME is to be ignored */
    const char *base = xdg && xdg[0] == '/' ? xdg : home && home[0] == '/' ? home : NULL;
    if (!base)
        return vkllm_fail(
            err, VKLLM_E_INVALID,
            "neither XDG_DATA_HOME nor HOME is an absolute path: nowhere to keep chats");
    const char *tail = base == xdg ? "/vkllm/chats" : "/.local/share/vkllm/chats";
    size_t n = strlen(base) + strlen(tail) + 1;
    char *p = malloc(n);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    snprintf(p, n, "%s%s", base, tail);
    int rc = make_dirs(p, err);
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return VKLLM_OK;
}

int history_save(history *h, const char *dir, struct vkllm_error *err)
{
    char *path, *text;
    size_t len;
    int rc = history_save_prepare(h, dir, &path, &text, &len, err);
    if (rc) return rc;
    rc = vkllm_write_file(path, text, len, err);
    free(text);
    free(path);
    return rc;
}

int history_save_prepare(history *h, const char *dir, char **out_path, char **out_text,
                         size_t *out_len, struct vkllm_error *err)
{
    char *path = file_path(dir, h->id, err);
    if (!path) return VKLLM_E_NOMEM;
    /* a new conversation never takes over a file: two made in the same
     * second could draw the same id */
    struct stat st;
    for (int i = 0; !h->on_disk && lstat(path, &st) == 0; i++) {
        if (i == 100) {
            vkllm_fail(err, VKLLM_E_IO, "%s: exists, and so do the other names tried", path);
            free(path);
            return VKLLM_E_IO;
        }
        hist_new_id(h);
        free(path);
        if (!(path = file_path(dir, h->id, err))) return VKLLM_E_NOMEM;
    }
    size_t len;
    char *text = serialize(h, &len);
    if (!text) {
        vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path);
        free(path);
        return VKLLM_E_NOMEM;
    }
    h->on_disk = true; /* the name is taken: the next save writes it again */
    *out_path = path;
    *out_text = text;
    *out_len = len;
    return VKLLM_OK;
}

/* Reads and checks PATH into *OUT (id ID). VKLLM_E_FORMAT: the file is not a
 * conversation; VKLLM_E_IO: it could not be read. ERR has no file name. */
static int read_tree(const char *path, const char *id, history **out, struct vkllm_error *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    int rc = file_read(path, MAX_FILE_BYTES, &buf, &n, err);
    /* a name listed a moment ago and gone now cannot be read */
    if (rc == VKLLM_E_NOT_FOUND) rc = VKLLM_E_IO;
    json_t *root = NULL;
    if (!rc) {
        json_error_t jerr;
        /* no JSON_ALLOW_NUL: a text never holds NUL; jansson checks UTF-8 */
        root = json_loadb(buf, n, 0, &jerr);
        if (!root)
            rc = vkllm_fail(err, VKLLM_E_FORMAT, "not valid JSON (line %d: %s)", jerr.line,
                            jerr.text);
    }
    free(buf);
    history *h = NULL;
    if (!rc) {
        if (!(h = calloc(1, sizeof *h))) {
            rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        } else {
            snprintf(h->id, sizeof h->id, "%s", id);
            h->on_disk = true;
            rc = from_json(root, h, err);
        }
    }
    json_decref(root);
    if (rc) {
        history_free(h);
        return rc;
    }
    *out = h;
    return VKLLM_OK;
}

/* read_tree, with the file name in ERR and a corrupt file moved aside. */
static int load_file(const char *dir, const char *id, history **out, struct vkllm_error *err)
{
    *out = NULL;
    if (!id_valid(id)) return vkllm_fail(err, VKLLM_E_INVALID, "%s: not a conversation id", id);
    char *path = file_path(dir, id, err);
    if (!path) return VKLLM_E_NOMEM;
    struct vkllm_error e = {0};
    int rc = read_tree(path, id, out, &e);
    if (rc == VKLLM_E_FORMAT) {
        char to[256];
        int se = file_set_aside(path, to, sizeof to);
        if (se)
            vkllm_fail(err, rc, "%s: %s (cannot move it aside: %s)", path, e.msg, strerror(se));
        else
            vkllm_fail(err, rc, "%s: %s; moved aside to %s", path, e.msg, to);
    } else if (rc) {
        vkllm_fail(err, rc, "%s: %s", path, e.msg);
    }
    free(path);
    return rc;
}

int history_load(const char *dir, const char *id, history **out, struct vkllm_error *err)
{
    return load_file(dir, id, out, err);
}

/* ---- the list and search */

/* Where QUERY (code points, lower case, QN of them) first occurs in S[0..N)
 * ignoring case; *MLEN gets the match's length in S. */
static const char *find_ci(const char *s, size_t n, const utf8proc_int32_t *query, size_t qn,
                           size_t *mlen)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    for (size_t at = 0; at < n;) {
        size_t p = at, k = 0;
        utf8proc_ssize_t first = 0;
        for (; k < qn && p < n; k++) {
            utf8proc_int32_t c;
            utf8proc_ssize_t len = utf8proc_iterate(u + p, (utf8proc_ssize_t)(n - p), &c);
            if (len <= 0) return NULL; /* texts are checked: unreachable */
            if (!first) first = len;
            if (utf8proc_tolower(c) != query[k]) break;
            p += (size_t)len;
        }
        if (k == qn) {
            *mlen = p - at;
            return s + at;
        }
        at += first ? (size_t)first : 1;
    }
    return NULL;
}

/* The text around S[at..at+len), on one line, cut at character boundaries. */
static char *snippet(const char *s, size_t n, size_t at, size_t len)
{
    size_t from = at > SNIPPET_BEFORE ? at - SNIPPET_BEFORE : 0;
    while (from > 0 && ((unsigned char)s[from] & 0xc0) == 0x80)
        from--;
    size_t to = at + len + SNIPPET_AFTER < n ? at + len + SNIPPET_AFTER : n;
    while (to < n && ((unsigned char)s[to] & 0xc0) == 0x80)
        to--;
    struct sbuf b = {0};
    if (from > 0) hist_sb_str(&b, "\xe2\x80\xa6");
    hist_put_collapsed(&b, s + from, to - from, SIZE_MAX);
    if (to < n) hist_sb_str(&b, "\xe2\x80\xa6");
    hist_sb_put(&b, "", 0); /* an empty text still gets its "" */
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Searches H for QUERY: the snippet of the first match in the title or a
 * message (by age), *FOUND false when none. */
static int match(history *h, const utf8proc_int32_t *query, size_t qn, char **snip, bool *found)
{
    *snip = NULL;
    *found = false;
    size_t mlen;
    const char *title = history_title(h);
    const char *at = find_ci(title, strlen(title), query, qn, &mlen);
    if (at) {
        *found = true;
        return (*snip = snippet(title, strlen(title), at - title, mlen)) ? VKLLM_OK : VKLLM_E_NOMEM;
    }
    for (uint32_t i = 0; i < h->n_nodes; i++) {
        const struct history_msg *m = &h->nodes[i]->m;
        if ((at = find_ci(m->text, m->len, query, qn, &mlen))) {
            *found = true;
            return (*snip = snippet(m->text, m->len, at - m->text, mlen)) ? VKLLM_OK
                                                                          : VKLLM_E_NOMEM;
        }
    }
    return VKLLM_OK;
}

/* The list's entry for DIR/ID.json from its first line alone: what this
 * window writes starts with a line of the header's fields ending in
 * "messages": [ (see serialize), so listing 100 chats of 2 MB reads 100
 * short lines instead of parsing 200 MB on the UI thread (probe 3, Q-13).
 * False when the file is not laid out so (written by hand, or corrupt): the
 * caller reads it whole, which checks it and sets a corrupt one aside. A
 * file whose messages are corrupt is listed; opening it reports that. */
static bool read_header(const char *dir, const char *id, struct history_entry *out)
{
    enum { HEAD_MAX = 16384 }; /* a title of 240 bytes, each escaped: far less */
    char *path = file_path(dir, id, NULL);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    free(path);
    if (fd < 0) return false;
    struct stat st;
    char buf[HEAD_MAX + 3];
    ssize_t got = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= MAX_FILE_BYTES)
        got = pread(fd, buf, HEAD_MAX, 0);
    close(fd);
    char *nl = got > 0 ? memchr(buf, '\n', (size_t)got) : NULL;
    static const char tail[] = "\"messages\": [";
    size_t len = nl ? (size_t)(nl - buf) : 0;
    if (len < sizeof tail || memcmp(nl - (sizeof tail - 1), tail, sizeof tail - 1)) return false;
    memcpy(buf + len, "]}", 2);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len + 2, 0, &jerr);
    json_int_t version, updated;
    const char *format = json_string_value(json_object_get(root, "format"));
    const char *title = json_string_value(json_object_get(root, "title"));
    bool ok = root && format && !strcmp(format, "vkllm-chat") && title &&
              get_int(root, "version", FORMAT_VERSION, FORMAT_VERSION, &version) &&
              get_int(root, "updated", 0, MAX_TIME, &updated) &&
              hist_utf8_valid(title, strlen(title));
    if (ok) {
        /* one line, as the sidebar shows it */
        struct sbuf b = {0};
        hist_put_collapsed(&b, title, strlen(title), 4 * TITLE_BYTES);
        hist_sb_put(&b, "", 0);
        ok = !b.oom;
        out->title = ok ? b.p : NULL;
        if (!ok) free(b.p);
        out->updated = updated;
    }
    json_decref(root);
    return ok;
}

static int by_recent(const void *a, const void *b)
{
    const struct history_entry *x = a, *y = b;
    if (x->updated != y->updated) return x->updated < y->updated ? 1 : -1;
    return -strcmp(x->id, y->id);
}

void history_entries_free(struct history_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].title);
        free(e[i].snippet);
    }
    free(e);
}

/* ---- what the list remembers between calls */

/* A listed file, known by its inode, size and modification time: an atomic
 * write makes a new inode, an edit in place a new time, so an entry whose
 * three are unchanged is its file's entry still, and reopening the list
 * opens no file at all (probe 4, R-14: 100 chats of 2 MB in one JSON line
 * were parsed whole at every Ctrl+B). */
struct cache_entry {
    char id[48];
    uint64_t ino, size;
    int64_t mtime_s, mtime_ns;
    char *title;
    int64_t updated;
};

struct history_list_cache {
    struct cache_entry *v; /* (n) by id */
    size_t n, cap;
    bool oom; /* memory ran out: the entries after are not kept (they are read next time) */
};

void history_list_cache_free(history_list_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].title);
    free(c->v);
    free(c);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct cache_entry *)a)->id, ((const struct cache_entry *)b)->id);
}

static const struct cache_entry *cache_find(const history_list_cache *c, const char *id,
                                            const struct stat *st)
{
    if (!c || !c->n) return NULL;
    struct cache_entry key;
    snprintf(key.id, sizeof key.id, "%s", id);
    const struct cache_entry *e = bsearch(&key, c->v, c->n, sizeof *c->v, by_id);
    if (!e || e->ino != (uint64_t)st->st_ino || e->size != (uint64_t)st->st_size ||
        e->mtime_s != (int64_t)st->st_mtim.tv_sec || e->mtime_ns != (int64_t)st->st_mtim.tv_nsec)
        return NULL;
    return e;
}

/* Remembers listed entry E of the file ST describes. */
static void cache_add(history_list_cache *c, const struct history_entry *e, const struct stat *st)
{
    if (!c || c->oom) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        struct cache_entry *v = realloc(c->v, cap * sizeof *v);
        if (!v) {
            c->oom = true;
            return;
        }
        c->v = v;
        c->cap = cap;
    }
    struct cache_entry *x = &c->v[c->n];
    *x = (struct cache_entry){.ino = (uint64_t)st->st_ino,
                              .size = (uint64_t)st->st_size,
                              .mtime_s = (int64_t)st->st_mtim.tv_sec,
                              .mtime_ns = (int64_t)st->st_mtim.tv_nsec,
                              .title = strdup(e->title),
                              .updated = e->updated};
    memcpy(x->id, e->id, sizeof x->id);
    if (!x->title)
        c->oom = true;
    else
        c->n++;
}

/* Lists DIR's conversations, keeping those that contain QUERY (QN code
 * points; all when QUERY is NULL). */
static int scan(const char *dir, const utf8proc_int32_t *query, size_t qn,
                struct history_entry **out, size_t *n_out, history_notice_fn notice, void *user,
                const atomic_bool *stop, history_list_cache **cache, struct vkllm_error *err)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return vkllm_fail(err, VKLLM_E_IO, "%s: %s", dir, strerror(errno));
    /* the list (no query) with a cache: this listing's entries become the next cache */
    history_list_cache *fresh = NULL;
    if (!query && cache && !(fresh = calloc(1, sizeof *fresh))) {
        closedir(d);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    struct history_entry *v = NULL;
    size_t n = 0, cap = 0;
    int rc = VKLLM_OK;
    struct dirent *de;
    while (!rc && (errno = 0, de = readdir(d))) {
        if (stop && atomic_load(stop)) {
            rc = vkllm_fail(err, VKLLM_E_INVALID, "search stopped");
            break;
        }
        /* ID.json only: .vkllm.tmp-XXXXXX (a writer's, maybe killed) and
         * ID.json.corrupt-N are not conversations */
        size_t len = strlen(de->d_name);
        char id[sizeof v->id];
        if (len <= 5 || len - 5 >= sizeof id || strcmp(de->d_name + len - 5, ".json")) continue;
        memcpy(id, de->d_name, len - 5);
        id[len - 5] = 0;
        if (!id_valid(id)) continue;
        /* the file as it is before it is read (a change after: listed again next time) */
        struct stat st;
        bool have_stat = fresh && !fstatat(dirfd(d), de->d_name, &st, 0) && S_ISREG(st.st_mode);
        if (!query) { /* the list: the header line is enough, when it can be had */
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                struct history_entry *w = realloc(v, cap * sizeof *w);
                if (!w) {
                    rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
                    break;
                }
                v = w;
            }
            v[n] = (struct history_entry){0};
            const struct cache_entry *hit = fresh && have_stat ? cache_find(*cache, id, &st) : NULL;
            if (hit) {
                v[n].title = strdup(hit->title);
                v[n].updated = hit->updated;
                if (!v[n].title) {
                    rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
                    break;
                }
            }
            if (hit || read_header(dir, id, &v[n])) {
                snprintf(v[n].id, sizeof v[n].id, "%s", id);
                if (have_stat) cache_add(fresh, &v[n], &st);
                n++;
                continue;
            }
        }
        history *h;
        struct vkllm_error e = {0};
        int r = load_file(dir, id, &h, &e);
        if (r == VKLLM_E_NOMEM) rc = vkllm_fail(err, r, "%s", e.msg);
        if (r) {
            if (notice && r != VKLLM_E_NOMEM) notice(e.msg, user);
            continue;
        }
        char *snip = NULL;
        bool found = true;
        if (query) rc = match(h, query, qn, &snip, &found);
        if (!rc && found) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                struct history_entry *w = realloc(v, cap * sizeof *w);
                if (!w)
                    rc = VKLLM_E_NOMEM;
                else
                    v = w;
            }
            if (!rc) {
                v[n] = (struct history_entry){
                    .title = strdup(history_title(h)), .updated = h->updated, .snippet = snip};
                snprintf(v[n].id, sizeof v[n].id, "%s", id);
                snip = NULL;
                if (v[n].title && have_stat) cache_add(fresh, &v[n], &st);
                if (!v[n++].title) rc = VKLLM_E_NOMEM;
            }
            if (rc) rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        }
        free(snip);
        history_free(h);
    }
    if (!rc && errno) rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", dir, strerror(errno));
    closedir(d);
    if (rc) {
        history_list_cache_free(fresh);
        history_entries_free(v, n);
        return rc;
    }
    if (fresh) {
        if (fresh->n) qsort(fresh->v, fresh->n, sizeof *fresh->v, by_id);
        history_list_cache_free(*cache);
        *cache = fresh;
    }
    if (n) qsort(v, n, sizeof *v, by_recent);
    *out = v;
    *n_out = n;
    return VKLLM_OK;
}

int history_list(const char *dir, struct history_entry **out, size_t *n, history_notice_fn notice,
                 void *user, struct vkllm_error *err)
{
    return scan(dir, NULL, 0, out, n, notice, user, NULL, NULL, err);
}

int history_list_stoppable(const char *dir, history_list_cache **cache, const atomic_bool *stop,
                           struct history_entry **out, size_t *n, history_notice_fn notice,
                           void *user, struct vkllm_error *err)
{
    return scan(dir, NULL, 0, out, n, notice, user, stop, cache, err);
}

int history_search(const char *dir, const char *query, struct history_entry **out, size_t *n,
                   history_notice_fn notice, void *user, struct vkllm_error *err)
{
    return history_search_stoppable(dir, query, NULL, out, n, notice, user, err);
}

int history_search_stoppable(const char *dir, const char *query, const atomic_bool *stop,
                             struct history_entry **out, size_t *n, history_notice_fn notice,
                             void *user, struct vkllm_error *err)
{
    *out = NULL;
    *n = 0;
    size_t len = strlen(query);
    if (!hist_utf8_valid(query, len))
        return vkllm_fail(err, VKLLM_E_INVALID, "query is not valid UTF-8");
    utf8proc_int32_t *q = malloc((len + 1) * sizeof *q);
    if (!q) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    size_t qn = 0;
    for (size_t i = 0; i < len;) {
        i += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)query + i,
                                      (utf8proc_ssize_t)(len - i), &q[qn]);
        q[qn] = utf8proc_tolower(q[qn]);
        qn++;
    }
    /* an empty query matches everything, as an empty search box shows all */
    int rc = scan(dir, qn ? q : NULL, qn, out, n, notice, user, stop, NULL, err);
    free(q);
    return rc;
}

int history_rename(const char *dir, const char *id, const char *title, struct vkllm_error *err)
{
    history *h;
    int rc = load_file(dir, id, &h, err);
    if (rc) return rc;
    rc = history_set_title(h, title, err);
    if (!rc) rc = history_save(h, dir, err);
    history_free(h);
    return rc;
}

int history_delete(const char *dir, const char *id, struct vkllm_error *err)
{
    if (!id_valid(id)) return vkllm_fail(err, VKLLM_E_INVALID, "%s: not a conversation id", id);
    char *path = file_path(dir, id, err);
    if (!path) return VKLLM_E_NOMEM;
    int rc = unlink(path) == 0
                 ? VKLLM_OK
                 : vkllm_fail(err, VKLLM_E_IO, "%s: cannot delete: %s", path, strerror(errno));
    free(path);
    return rc;
}

int history_export_markdown(history *h, const char *path, struct vkllm_error *err)
{
    static const char *const headings[] = {"System", "User", "Assistant"};
    struct sbuf b = {0};
    hist_sb_str(&b, "# ");
    hist_sb_str(&b, history_title(h));
    hist_sb_str(&b, "\n");
    for (size_t i = 0; i < h->n_path; i++) {
        const struct history_msg *m = &h->nodes[h->path[i]]->m;
        hist_sb_str(&b, "\n## ");
        hist_sb_str(&b, headings[m->role]);
        hist_sb_str(&b, "\n\n");
        hist_sb_put(&b, m->text, m->len);
        if (!m->len || m->text[m->len - 1] != '\n') hist_sb_str(&b, "\n");
    }
    int rc = b.oom ? vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path)
                   : vkllm_write_file(path, b.p, b.n, err);
    free(b.p);
    return rc;
}
