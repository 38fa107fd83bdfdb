/* script.c: --script FILE, the window driven without a person, for tests
 * and measurements. One command a line, run one a frame; the waits hold the
 * script, never the window:
 *
 *   send TEXT           typed into the input box (SDL text events; "\n" is
 *                       Shift+Enter), then Enter
 *   wait-reply          until no reply or load is running or queued, and the
 *                       conversation is saved
 *   wait-tokens N       until the reply has N tokens (or ended)
 *   stop                Esc
 *   regenerate          the Regenerate button
 *   edit N TEXT         Edit on message N (0: the first), TEXT, Enter
 *   switch N +1|-1      the "< >" switcher of message N
 *   new-chat            New chat
 *   load PATH           a file dropped on the window
 *   expect-error TEXT   until the window shows an error containing TEXT
 *   expect-note TEXT    until the window shows a note containing TEXT
 *   wait-loading        until a model is uploading, past 0% and short of 100%
 *   wait-file PATH      until PATH exists (a test's other process made it)
 *   screenshot PATH     a PNG of the next frame
 *   dump-state PATH     the conversation tree as history_save writes it
 *   dump-worker PATH    the worker's status as JSON (the last prompt's start,
 *                       messages dropped, speeds)
 *   open-sidebar        Ctrl+B, unless the sidebar is open; the script waits
 *                       for the list (read on the sidebar's thread)
 *   close-sidebar       Ctrl+B, if the sidebar is open
 *   search TEXT         TEXT in the sidebar's search box, searched at once; the
 *                       script (not the window) waits for the results
 *   reopen N            a click on chat N of the sidebar's list (0: the top);
 *                       this and the other commands on the list wait for a
 *                       listing that is running
 *   rename N TEXT       Rename on chat N, TEXT, Enter
 *   delete N            Delete on chat N, then its confirm
 *   export N PATH       Export on chat N, PATH, Enter
 *   dump-list PATH      the sidebar's list, "ID<TAB>TITLE" a line
 *   settings KEY VALUE  one setting, as the panel sets it (settings.h's keys)
 *   settings-refused KEY VALUE  the same, which must be refused (the error
 *                       in the banner, the old value kept)
 *   theme dark|light    the theme setting
 *   open-settings       Ctrl+, unless the panel is open
 *   open-models         the Models button: the models folder's list
 *   browse DIR          the in-window file browser at DIR
 *   pick NAME           a click on entry NAME of the Models panel ("..", a
 *                       folder: it goes there; a file: it loads)
 *   open-lora           Ctrl+L unless the LoRA panel is open
 *   lora-add PATH       PATH typed in the LoRA panel's path field, then Enter
 *                       (a dropped adapter: load PATH)
 *   lora-dialog         the LoRA panel's Add adapter… button (a file dialog)
 *   lora-toggle N       a click on adapter N's checkbox (1: the first)
 *   lora-scale N S      adapter N's slider let go at scale S
 *   key [ctrl+][shift+]NAME  a key press, by SDL's name for it (Down, Return,
 *                       Backspace, O): ctrl+o is Ctrl+O
 *   help                F1, unless the help is open
 *   close               Esc for an open panel or overlay (the Models panel too)
 *   quit
 *
 * Text arguments are the rest of the line. A command that fails, or a wait
 * longer than VKLLM_SCRIPT_TIMEOUT seconds (default 300), prints an error
 * and ends the program with status 1. */
#include "app.h"
#include "file_read.h"
#include "number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

struct script {
    char *path;
    char *buf;
    char **lines;
    size_t n, next;
    enum {
        WAIT_NONE,
        WAIT_REPLY,
        WAIT_TOKENS,
        WAIT_ERROR,
        WAIT_NOTE,
        WAIT_LOADING,
        WAIT_FILE,
        WAIT_SEARCH
    } wait;
    unsigned long wait_n;
    char *wait_text;
    double wait_since, timeout_ms;
};

/* Scripts are a few hundred lines: a bigger file is not one */
#define MAX_SCRIPT_BYTES (1u << 20)

/* S (N bytes) as a terminal may show it: escaped, and cut (marked "...")
 * past what BUF holds. */
static const char *shown(char *buf, size_t cap, const char *s, size_t n)
{
    size_t took = vkllm_printable(buf, cap - 4, s, n);
    if (took < n) strcat(buf, "...");
    return buf;
}

/* Where BUF (LEN bytes) holds a NUL or is not UTF-8: its 1-based line, or 0. */
static size_t bad_line(const char *buf, size_t len, const char **why)
{
    size_t line = 1;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)buf + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0 || c == 0) {
            *why = k <= 0 ? "not valid UTF-8" : "holds a NUL byte";
            return line;
        }
        line += c == '\n';
        i += (size_t)k;
    }
    return 0;
}

int script_open(const char *path, struct script **out, struct vkllm_error *err)
{
    *out = NULL;
    char *buf;
    size_t len;
    struct vkllm_error e = {0};
    int rc = file_read(path, MAX_SCRIPT_BYTES, &buf, &len, &e);
    if (rc) return vkllm_fail(err, rc, "%s: %s", path, e.msg);
    const char *why;
    size_t bad = bad_line(buf, len, &why);
    if (bad) {
        free(buf);
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s:%zu: %s", path, bad, why);
    }
    struct script *s = calloc(1, sizeof *s);
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    if (!s || !(s->path = strdup(path)) || !(s->lines = calloc(n, sizeof *s->lines))) {
        free(buf);
        script_free(s);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path);
    }
    s->buf = buf;
    for (char *p = buf; p; s->n++) {
        s->lines[s->n] = p;
        p = strchr(p, '\n');
        if (p) *p++ = 0;
    }
    s->timeout_ms = 300e3;
    const char *t = getenv("VKLLM_SCRIPT_TIMEOUT");
    double v;
    bool range;
    if (t && (number_float(t, &v, &range) || !(v > 0 && v <= 86400))) {
        char tmp[200];
        vkllm_fail(err, VKLLM_E_INVALID,
                   "VKLLM_SCRIPT_TIMEOUT: '%s' is not a number of seconds "
                   "from 0 to 86400",
                   shown(tmp, sizeof tmp, t, strlen(t)));
        script_free(s);
        return VKLLM_E_INVALID;
    }
    if (t) s->timeout_ms = v * 1e3;
    *out = s;
    return VKLLM_OK;
}

void script_free(struct script *s)
{
    if (!s) return;
    free(s->lines);
    free(s->buf);
    free(s->path);
    free(s->wait_text);
    free(s);
}

bool script_waiting(const struct app *a)
{
    return a->script && (a->script->wait != WAIT_NONE || a->script->next < a->script->n);
}

/* The script's own lines and paths are shown escaped: a script may hold
 * anything, a terminal must not act on it. */
static void fail(struct app *a, const char *fmt, const char *arg)
{
    struct script *s = a->script;
    char msg[512], arg_shown[600], path_shown[600];
    snprintf(msg, sizeof msg, fmt, shown(arg_shown, sizeof arg_shown, arg, strlen(arg)));
    fprintf(stderr, "vkllm-chat: error: %s:%zu: %s\n",
            shown(path_shown, sizeof path_shown, s->path, strlen(s->path)), s->next, msg);
    a->status = 1;
    a->quit = true;
}

/* ---- injected input: what a person's keyboard and mouse would send */

static void push_key(SDL_Keycode sym, Uint16 mod)
{
    SDL_Event e = {0};
    e.type = SDL_KEYDOWN;
    e.key.state = SDL_PRESSED;
    e.key.keysym.sym = sym;
    e.key.keysym.scancode = SDL_GetScancodeFromKey(sym);
    e.key.keysym.mod = mod;
    SDL_PushEvent(&e);
}

/* TEXT as text-input events (at most 31 bytes each, whole characters); the
 * two characters "\n" as Shift+Enter. */
static void push_text(const char *text)
{
    char piece[SDL_TEXTINPUTEVENT_TEXT_SIZE];
    size_t n = 0;
    for (const char *p = text;; p++) {
        bool newline = p[0] == '\\' && p[1] == 'n';
        bool lead = ((unsigned char)*p & 0xC0) != 0x80;
        if (!*p || newline || (lead && n + 4 >= sizeof piece)) {
            if (n) {
                SDL_Event e = {0};
                e.type = SDL_TEXTINPUT;
                memcpy(e.text.text, piece, n);
                e.text.text[n] = 0;
                SDL_PushEvent(&e);
                n = 0;
            }
        }
        if (!*p) break;
        if (newline) {
            push_key(SDLK_RETURN, KMOD_LSHIFT);
            p++;
            continue;
        }
        piece[n++] = *p;
    }
}

/* "N REST": N (decimal, from 0 to MAX), and REST after it. */
static bool count_arg(const char *arg, int64_t max, int64_t *n, const char **rest)
{
    size_t k = strcspn(arg, " ");
    char num[24];
    int64_t v;
    bool range;
    if (!k || k >= sizeof num) return false;
    memcpy(num, arg, k);
    num[k] = 0;
    if (number_int(num, &v, &range) || v < 0 || v > max) return false;
    *n = v;
    for (arg += k; *arg == ' ';)
        arg++;
    *rest = arg;
    return true;
}

static bool index_arg(const char *arg, size_t *n, const char **rest)
{
    int64_t v;
    if (!count_arg(arg, UINT32_MAX, &v, rest)) return false;
    *n = (size_t)v;
    return true;
}

/* ---- the sidebar's list */

static const char *entry_id(struct app *a, const char *arg, const char **rest)
{
    size_t n;
    const struct history_entry *e = index_arg(arg, &n, rest) ? panel_sidebar_entry(a, n) : NULL;
    return e ? e->id : NULL;
}

/* Atomic, as every file the window writes: PATH is never half-written, and a
 * device or FIFO there is refused rather than written into. */
static int dump_list(struct app *a, const char *path, struct vkllm_error *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path);
    for (size_t i = 0; i < panel_sidebar_count(a); i++) {
        const struct history_entry *e = panel_sidebar_entry(a, i);
        fprintf(f, "%s\t%s\n", e->id, e->title);
    }
    int rc = fclose(f) ? vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path)
                       : vkllm_write_file(path, text, len, err);
    free(text);
    return rc;
}

/* ---- running */

static bool waited(struct app *a)
{
    struct script *s = a->script;
    pthread_mutex_lock(&a->lock);
    const struct worker_status *st = worker_status(a->worker);
    bool busy = worker_busy(a->worker);
    bool done = s->wait == WAIT_REPLY ? !busy
                : s->wait == WAIT_TOKENS
                    ? !busy || (st->phase == WORKER_GENERATING && st->n_gen >= s->wait_n)
                : s->wait == WAIT_LOADING
                    ? st->phase == WORKER_LOADING && st->progress > 0 && st->progress < 1
                    : false;
    pthread_mutex_unlock(&a->lock);
    if (s->wait == WAIT_REPLY && done) done = !app_saving(a);
    if (s->wait == WAIT_ERROR || s->wait == WAIT_NOTE)
        done = a->banner_error == (s->wait == WAIT_ERROR) && strstr(a->banner, s->wait_text);
    if (s->wait == WAIT_FILE) done = access(s->wait_text, F_OK) == 0;
    if (s->wait == WAIT_SEARCH) done = !panel_sidebar_searching(a);
    if (done) return true;
    if (app_now_ms() - s->wait_since > s->timeout_ms) {
        fail(a, "%s: timed out", s->lines[s->next - 1]);
        s->wait = WAIT_NONE;
    }
    return false;
}

void script_step(struct app *a)
{
    struct script *s = a->script;
    if (!s || a->quit) return;
    if (s->wait != WAIT_NONE) {
        if (!waited(a)) return;
        s->wait = WAIT_NONE;
    }
    while (s->next < s->n) {
        char *line = s->lines[s->next++];
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = 0;
        if (!len || line[0] == '#') continue;
        char *arg = strchr(line, ' ');
        size_t cmd_len = arg ? (size_t)(arg - line) : len;
        arg = arg ? arg + 1 : line + len;
        struct vkllm_error err = {0};
        size_t n;
        const char *rest;
        char echo[600];
        fprintf(stderr, "vkllm-chat: script: %s\n", shown(echo, sizeof echo, line, len));
#define IS(c) (cmd_len == strlen(c) && !strncmp(line, c, cmd_len))
        if (IS("send")) {
            push_text(arg);
            push_key(SDLK_RETURN, KMOD_NONE);
        } else if (IS("wait-reply") || IS("wait-tokens") || IS("expect-error") ||
                   IS("expect-note") || IS("wait-loading") || IS("wait-file")) {
            int64_t count = 0;
            if (IS("wait-tokens") && (!count_arg(arg, 1 << 30, &count, &rest) || *rest)) {
                fail(a, "%s: not a count of tokens from 0 to 1073741824", line);
                return;
            }
            s->wait = IS("wait-reply")     ? WAIT_REPLY
                      : IS("wait-tokens")  ? WAIT_TOKENS
                      : IS("expect-error") ? WAIT_ERROR
                      : IS("expect-note")  ? WAIT_NOTE
                      : IS("wait-file")    ? WAIT_FILE
                                           : WAIT_LOADING;
            s->wait_n = (unsigned long)count;
            free(s->wait_text);
            s->wait_text = strdup(arg);
            s->wait_since = app_now_ms();
        } else if (IS("stop")) {
            push_key(SDLK_ESCAPE, KMOD_NONE);
        } else if (IS("regenerate")) {
            if (!app_regenerate(a)) fail(a, "%s: nothing to regenerate now", line);
        } else if (IS("edit")) {
            if (!index_arg(arg, &n, &rest) || !app_edit_begin(a, n)) {
                fail(a, "%s: no user message there", line);
            } else {
                input_box_set(a->input, rest, strlen(rest));
                push_key(SDLK_RETURN, KMOD_NONE);
            }
        } else if (IS("switch")) {
            int step = !index_arg(arg, &n, &rest) ? 0
                       : !strcmp(rest, "+1")      ? 1
                       : !strcmp(rest, "-1")      ? -1
                                                  : 0;
            if (!step || !app_switch(a, n, step)) fail(a, "%s: no such branch", line);
        } else if (IS("new-chat")) {
            app_new_chat(a);
        } else if (IS("load")) {
            SDL_Event e = {0};
            e.type = SDL_DROPFILE;
            e.drop.file = SDL_strdup(arg);
            SDL_PushEvent(&e);
        } else if (IS("screenshot")) {
            free(a->screenshot);
            a->screenshot = strdup(arg);
        } else if (IS("dump-state")) {
            if (app_dump_state(a, arg, &err)) fail(a, "%s", err.msg);
        } else if (IS("dump-worker")) {
            if (app_dump_worker(a, arg, &err)) fail(a, "%s", err.msg);
        } else if (IS("open-sidebar") || IS("search")) {
            if (!a->sidebar_open) panel_sidebar_toggle(a);
            if (IS("search")) panel_sidebar_search(a, arg);
            s->wait = WAIT_SEARCH;
            s->wait_since = app_now_ms();
        } else if ((IS("reopen") || IS("rename") || IS("delete") || IS("export") ||
                    IS("dump-list")) &&
                   panel_sidebar_searching(a)) {
            /* the list is being read again (a save, a rename): this line once it is */
            s->next--;
            s->wait = WAIT_SEARCH;
            s->wait_since = app_now_ms();
        } else if (IS("reopen") || IS("rename") || IS("delete") || IS("export")) {
            char id[48];
            const char *p = entry_id(a, arg, &rest);
            if (!p) {
                fail(a, "%s: no such chat in the list", line);
            } else {
                snprintf(id, sizeof id, "%s", p); /* the list is read again as it goes */
                bool ok = IS("reopen")   ? app_reopen(a, id)
                          : IS("rename") ? app_rename_chat(a, id, rest)
                          : IS("delete") ? app_delete_chat(a, id)
                                         : app_export_chat(a, id, rest);
                if (!ok) fail(a, "%s: failed", line);
            }
        } else if (IS("close-sidebar")) {
            if (a->sidebar_open) panel_sidebar_toggle(a);
        } else if (IS("dump-list")) {
            if (dump_list(a, arg, &err)) fail(a, "%s", err.msg);
        } else if (IS("settings") || IS("settings-refused")) {
            char key[64];
            const char *value = strchr(arg, ' ');
            snprintf(key, sizeof key, "%.*s", value ? (int)(value - arg) : 0, arg);
            bool taken = value && app_setting(a, key, value + 1);
            if (!value || taken != IS("settings"))
                fail(a, taken ? "%s: taken" : "%s: refused", line);
        } else if (IS("theme")) {
            if (!app_setting(a, "theme", arg)) fail(a, "%s: refused", line);
        } else if (IS("open-settings")) {
            if (!a->settings_open) panel_settings_toggle(a);
        } else if (IS("open-models")) {
            panel_models_open(a);
        } else if (IS("browse")) {
            if (!panel_models_browse(a, arg)) fail(a, "%s: cannot list it", line);
        } else if (IS("pick")) {
            if (!panel_models_pick(a, arg)) fail(a, "%s: no such entry in the Models panel", line);
        } else if (IS("open-lora")) {
            if (!a->lora_open) panel_lora_toggle(a);
        } else if (IS("lora-add")) {
            panel_lora_add(a, arg);
        } else if (IS("lora-dialog")) {
            panel_lora_open_dialog(a);
        } else if (IS("lora-toggle") || IS("lora-scale")) {
            double scale = 0;
            bool range, ok = index_arg(arg, &n, &rest) && n >= 1 &&
                             (IS("lora-toggle") ? !*rest
                                                : !number_float(rest, &scale, &range) &&
                                                      scale >= -1e6 && scale <= 1e6);
            pthread_mutex_lock(&a->lock);
            const struct worker_status *st = worker_status(a->worker);
            ok = ok && n <= st->n_lora;
            bool on = ok && st->lora[n - 1].on;
            float now = ok ? st->lora[n - 1].scale : 0;
            pthread_mutex_unlock(&a->lock);
            if (!ok)
                fail(a, "%s: no such adapter, or not a scale", line);
            else if (IS("lora-toggle"))
                app_lora_set(a, n - 1, !on, now);
            else
                app_lora_set(a, n - 1, on, (float)scale);
        } else if (IS("key")) {
            Uint16 mod = KMOD_NONE;
            const char *k = arg;
            for (;; k = strchr(k, '+') + 1)
                if (!strncmp(k, "ctrl+", 5))
                    mod |= KMOD_LCTRL;
                else if (!strncmp(k, "shift+", 6))
                    mod |= KMOD_LSHIFT;
                else
                    break;
            SDL_Keycode sym = SDL_GetKeyFromName(k);
            if (sym == SDLK_UNKNOWN)
                fail(a, "%s: no such key", line);
            else
                push_key(sym, mod);
        } else if (IS("help")) {
            a->help_open = true;
        } else if (IS("close")) {
            if (a->help_open || a->settings_open || a->lora_open)
                app_escape(a);
            else if (a->models_open)
                panel_models_close(a);
        } else if (IS("quit")) {
            a->quit = true;
        } else {
            fail(a, "unknown command '%s'", line);
        }
#undef IS
        return; /* one command a frame: its events are handled before the next */
    }
}
