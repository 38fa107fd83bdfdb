/* panel_sidebar.c: the saved chats on the left (Ctrl+B): a search box
 * (results as you type, after a short pause), the list newest first, and for
 * the selected chat Rename (inline), Export (to a path typed in place) and
 * Delete (after a confirm). Clicking a chat reopens it. The actions are
 * app_chats.c's; this file is the list and its widgets.
 *
 * The list reads each file's header line (cheap); a search reads every chat
 * whole, which takes seconds with a few hundred long ones (probe 3, Q-13), so
 * it runs on a thread of its own: the next keystroke's search stops it, and
 * the window keeps drawing the previous results meanwhile. The list runs
 * there too (an empty search): 100,000 chats, or chats in another layout
 * that must be read whole, held the window for seconds per Ctrl+B (probe 4,
 * R-14); the thread keeps what it read by file (history_list_cache), so
 * reopening the sidebar reads only what changed. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* typing pauses this long before the files are searched */
#define SEARCH_DEBOUNCE_MS 200

enum mode { MODE_NONE, MODE_RENAME, MODE_EXPORT, MODE_CONFIRM_DELETE };

#define MAX_NOTICES 8

/* The search thread and what passes between it and the UI, under mu. */
struct searcher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* a query for the thread, or a result for a waiter */
    const char *dir;
    char *query;          /* the next search; NULL: none asked */
    uint64_t asked, done; /* generations: the last asked, the last finished */
    atomic_bool stop;     /* the running search is stale */
    bool quit;
    history_list_cache *cache; /* the thread's own */
    struct history_entry *e;   /* generation done's result, until taken */
    size_t n;
    bool have_result;
    char error[512]; /* its error; "" if none */
    char *notices[MAX_NOTICES];
    size_t n_notices;
};

struct sidebar {
    struct searcher q;
    struct history_entry *e;
    size_t n;
    struct ui_field search;
    double search_changed; /* ms; 0: searched */
    int selected;          /* -1: none */
    enum mode mode;        /* what the selected row shows */
    struct ui_field edit;  /* the rename title or the export path */
    int scroll;            /* rows hidden above */
};

/* On the search thread: files it could not read, shown by the UI later. */
static void collect_notice(const char *msg, void *user)
{
    struct searcher *q = user;
    pthread_mutex_lock(&q->mu);
    if (q->n_notices < MAX_NOTICES) q->notices[q->n_notices++] = strdup(msg);
    pthread_mutex_unlock(&q->mu);
}

static void *search_run(void *arg)
{
    struct searcher *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->quit && !q->query)
            pthread_cond_wait(&q->cond, &q->mu);
        if (q->quit) break;
        char *query = q->query;
        q->query = NULL;
        uint64_t gen = q->asked;
        atomic_store(&q->stop, false);
        pthread_mutex_unlock(&q->mu);
        struct history_entry *e = NULL;
        size_t n = 0;
        struct vkllm_error err = {0};
        int rc = query[0] ? history_search_stoppable(q->dir, query, &q->stop, &e, &n,
                                                     collect_notice, q, &err)
                          : history_list_stoppable(q->dir, &q->cache, &q->stop, &e, &n,
                                                   collect_notice, q, &err);
        free(query);
        pthread_mutex_lock(&q->mu);
        if (gen != q->asked) { /* stopped, or stale: a newer search is asked */
            history_entries_free(e, n);
            continue;
        }
        history_entries_free(q->e, q->n);
        q->e = e;
        q->n = n;
        snprintf(q->error, sizeof q->error, "%s", rc ? err.msg : "");
        q->have_result = true;
        q->done = gen;
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int panel_sidebar_create(struct app *a, struct sidebar **out, struct vkllm_error *err)
{
    (void)a;
    struct sidebar *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    s->selected = -1;
    pthread_mutex_init(&s->q.mu, NULL);
    pthread_cond_init(&s->q.cond, NULL);
    if (pthread_create(&s->q.thread, NULL, search_run, &s->q)) {
        pthread_cond_destroy(&s->q.cond);
        pthread_mutex_destroy(&s->q.mu);
        free(s);
        return vkllm_fail(err, VKLLM_E_NOMEM, "cannot start the thread that searches chats");
    }
    *out = s;
    return VKLLM_OK;
}

void panel_sidebar_destroy(struct sidebar *s)
{
    if (!s) return;
    struct searcher *q = &s->q;
    pthread_mutex_lock(&q->mu);
    q->quit = true;
    atomic_store(&q->stop, true);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q->query);
    history_list_cache_free(q->cache);
    history_entries_free(q->e, q->n);
    for (size_t i = 0; i < q->n_notices; i++)
        free(q->notices[i]);
    history_entries_free(s->e, s->n);
    free(s);
}

int panel_sidebar_width(struct app *a)
{
    if (!a->sidebar_open) return 0;
    int w = app_px(a, 260);
    return w < a->w / 2 ? w : a->w / 2;
}

/* Shows entries E (N of them, taken) as the list. */
static void show(struct app *a, struct history_entry *e, size_t n)
{
    struct sidebar *s = a->sidebar;
    /* keep the selection on the same chat */
    char id[sizeof e->id] = "";
    if (s->selected >= 0 && (size_t)s->selected < s->n) memcpy(id, s->e[s->selected].id, sizeof id);
    history_entries_free(s->e, s->n);
    s->e = e;
    s->n = n;
    s->selected = -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].id, id)) s->selected = (int)i;
    if (s->selected < 0) s->mode = MODE_NONE;
}

/* Once a frame: a finished search's results and notices. */
static void poll_search(struct app *a)
{
    struct searcher *q = &a->sidebar->q;
    struct history_entry *e = NULL;
    size_t n = 0, n_notices;
    char error[sizeof q->error], *notices[MAX_NOTICES];
    pthread_mutex_lock(&q->mu);
    bool fresh = q->have_result && q->done == q->asked;
    if (fresh) {
        e = q->e;
        n = q->n;
        q->e = NULL;
        q->n = 0;
        q->have_result = false;
    }
    memcpy(error, q->error, sizeof error);
    n_notices = q->n_notices;
    memcpy(notices, q->notices, n_notices * sizeof *notices);
    q->n_notices = 0;
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n_notices; i++) {
        if (notices[i]) app_list_notice(notices[i], a);
        free(notices[i]);
    }
    if (!fresh) return;
    if (error[0])
        app_banner(a, true, "%s", error);
    else
        show(a, e, n);
}

void panel_sidebar_refresh(struct app *a)
{
    struct sidebar *s = a->sidebar;
    if (!a->data_dir || !s) return;
    struct searcher *q = &s->q;
    s->search_changed = 0;
    pthread_mutex_lock(&q->mu);
    q->asked++; /* a search still running is stale now */
    atomic_store(&q->stop, true);
    free(q->query);
    q->dir = a->data_dir;
    q->query = strdup(s->search.len ? s->search.text : ""); /* "": the list */
    if (!q->query) app_banner(a, true, "out of memory");
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

void panel_sidebar_toggle(struct app *a)
{
    a->sidebar_open = !a->sidebar_open;
    if (a->sidebar_open) {
        panel_sidebar_refresh(a);
        ui_focus(a, &a->sidebar->search);
    } else if (a->focus == &a->sidebar->search || a->focus == &a->sidebar->edit) {
        ui_focus(a, NULL);
    }
}

void panel_sidebar_search(struct app *a, const char *query)
{
    ui_field_set(&a->sidebar->search, query);
    a->sidebar->search.changed = false;
    panel_sidebar_refresh(a);
}

bool panel_sidebar_searching(struct app *a)
{
    struct sidebar *s = a->sidebar;
    poll_search(a);
    pthread_mutex_lock(&s->q.mu);
    bool busy = s->q.done != s->q.asked;
    pthread_mutex_unlock(&s->q.mu);
    return busy;
}

const struct history_entry *panel_sidebar_entry(struct app *a, size_t i)
{
    return i < a->sidebar->n ? &a->sidebar->e[i] : NULL;
}

size_t panel_sidebar_count(struct app *a)
{
    return a->sidebar->n;
}

/* ---- the selected chat's actions */

static void begin(struct app *a, enum mode mode)
{
    struct sidebar *s = a->sidebar;
    if (s->selected < 0) return;
    const struct history_entry *e = &s->e[s->selected];
    s->mode = mode;
    if (mode == MODE_RENAME) {
        ui_field_set(&s->edit, e->title);
    } else if (mode == MODE_EXPORT) {
        const char *home = getenv("HOME");
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.md", home ? home : ".", e->id);
        ui_field_set(&s->edit, path);
    }
    ui_focus(a, mode == MODE_CONFIRM_DELETE ? &s->search : &s->edit);
}

static void open_selected(struct app *a)
{
    struct sidebar *s = a->sidebar;
    if (s->selected < 0) return;
    char id[sizeof s->e->id];
    memcpy(id, s->e[s->selected].id, sizeof id);
    s->mode = MODE_NONE;
    app_reopen(a, id);
}

bool panel_sidebar_key(struct app *a, const SDL_KeyboardEvent *k)
{
    struct sidebar *s = a->sidebar;
    if (!a->sidebar_open || a->focus != &s->search) return false;
    int n = (int)s->n;
    switch (k->keysym.sym) {
    case SDLK_UP:
    case SDLK_DOWN:
        if (!n) return true;
        s->selected += k->keysym.sym == SDLK_UP ? -1 : 1;
        if (s->selected < 0) s->selected = 0;
        if (s->selected >= n) s->selected = n - 1;
        s->mode = MODE_NONE;
        return true;
    case SDLK_RETURN:
    case SDLK_KP_ENTER:
        if (s->mode == MODE_CONFIRM_DELETE) {
            s->mode = MODE_NONE;
            if (s->selected >= 0) app_delete_chat(a, s->e[s->selected].id);
        } else {
            open_selected(a);
        }
        return true;
    case SDLK_F2: begin(a, MODE_RENAME); return true;
    case SDLK_DELETE:
        if (!(k->keysym.mod & KMOD_SHIFT)) return false; /* the field's */
        begin(a, MODE_CONFIRM_DELETE);
        return true;
    case SDLK_e:
        if (!(k->keysym.mod & KMOD_CTRL)) return false;
        begin(a, MODE_EXPORT);
        return true;
    default: return false;
    }
}

/* ---- drawing */

/* The row's action line: buttons, a confirm, or the rename/export field. */
static void actions(struct app *a, SDL_Rect r)
{
    struct sidebar *s = a->sidebar;
    const struct history_entry *e = &s->e[s->selected];
    int gap = app_px(a, 6), x = r.x;
    char id[sizeof e->id];
    memcpy(id, e->id, sizeof id);
    if (s->mode == MODE_RENAME || s->mode == MODE_EXPORT) {
        /* Esc (the field lets go of the keyboard) cancels */
        if (a->focus != &s->edit) {
            s->mode = MODE_NONE;
            return;
        }
        if (ui_field(a, &s->edit, r, s->mode == MODE_RENAME ? "title" : "file.md")) {
            enum mode m = s->mode;
            s->mode = MODE_NONE;
            ui_focus(a, &s->search);
            if (m == MODE_RENAME)
                app_rename_chat(a, id, s->edit.text);
            else
                app_export_chat(a, id, s->edit.text);
        }
        return;
    }
    const char *labels[3] = {"Rename", "Export", "Delete"};
    if (s->mode == MODE_CONFIRM_DELETE) {
        labels[0] = "Delete it";
        labels[1] = "Keep it";
        labels[2] = NULL;
    }
    for (int i = 0; i < 3 && labels[i]; i++) {
        int w = ui_button_width(a, labels[i]);
        if (!ui_button(a, (SDL_Rect){x, r.y, w, r.h}, labels[i], true)) {
            x += w + gap;
            continue;
        }
        if (s->mode == MODE_CONFIRM_DELETE) {
            s->mode = MODE_NONE;
            if (i == 0) app_delete_chat(a, id);
        } else {
            begin(a, i == 0 ? MODE_RENAME : i == 1 ? MODE_EXPORT : MODE_CONFIRM_DELETE);
        }
        return; /* the list may have changed */
    }
}

void panel_sidebar_frame(struct app *a, SDL_Rect r)
{
    struct sidebar *s = a->sidebar;
    draw_rect(a, r, a->th->panel);
    draw_rect(a, (SDL_Rect){r.x + r.w - 1, r.y, 1, r.h}, a->th->border);
    int pad = app_px(a, 8), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int fh = lh + app_px(a, 10);

    /* the search box: results after a pause in the typing */
    poll_search(a);
    if (s->search.changed) {
        s->search.changed = false;
        s->search_changed = app_now_ms();
    }
    if (s->search_changed && app_now_ms() - s->search_changed > SEARCH_DEBOUNCE_MS)
        panel_sidebar_refresh(a);
    if (ui_field(a, &s->search, (SDL_Rect){r.x + pad, r.y + pad, r.w - 2 * pad, fh},
                 "Search chats (Ctrl+B)"))
        open_selected(a);

    char open_id[48];
    pthread_mutex_lock(&a->lock);
    snprintf(open_id, sizeof open_id, "%s", history_id(a->hist));
    pthread_mutex_unlock(&a->lock);

    SDL_Rect list = {r.x, r.y + 2 * pad + fh, r.w - 1, r.h - 2 * pad - fh};
    int row_h = 2 * lh + app_px(a, 10), act_h = fh + app_px(a, 6);
    if (a->ui.wheel != 0 && !a->ui.wheel_taken && ui_hover(a, list)) {
        a->ui.wheel_taken = true;
        s->scroll -= (int)(a->ui.wheel * 2);
    }
    int max_scroll = (int)s->n - 1;
    if (s->scroll > max_scroll) s->scroll = max_scroll;
    if (s->scroll < 0) s->scroll = 0;
    if (!s->n) {
        pthread_mutex_lock(&s->q.mu);
        bool busy = s->q.done != s->q.asked;
        pthread_mutex_unlock(&s->q.mu);
        const char *t = busy            ? "Reading the chats…"
                        : s->search.len ? "No chat matches"
                                        : "No saved chats yet";
        fonts_draw(a->fonts, FONT_SMALL, t, strlen(t), list.x + pad, list.y + pad, a->th->dim);
        return;
    }
    int y = list.y;
    for (size_t i = (size_t)s->scroll; i < s->n && y < list.y + list.h; i++) {
        const struct history_entry *e = &s->e[i];
        bool sel = (int)i == s->selected;
        SDL_Rect row = {list.x, y, list.w, row_h + (sel ? act_h : 0)};
        if (!strcmp(e->id, open_id)) draw_rect(a, row, a->th->user_bg);
        if (sel) draw_rect(a, (SDL_Rect){row.x, row.y, app_px(a, 3), row.h}, a->th->accent);
        SDL_Rect text = {row.x + pad, row.y, row.w - 2 * pad, row_h};
        if (ui_hover(a, text) && a->ui.pressed && !a->ui.taken) {
            a->ui.taken = true;
            s->selected = (int)i;
            s->mode = MODE_NONE;
            ui_focus(a, &s->search);
            open_selected(a);
            return; /* the list is read again */
        }
        SDL_RenderSetClipRect(a->ren, &text);
        fonts_draw(a->fonts, FONT_SMALL | MDOC_BOLD, e->title, strlen(e->title), text.x,
                   text.y + app_px(a, 4), a->th->text);
        char when[64];
        const char *sub = e->snippet;
        if (!sub) {
            struct tm tm;
            time_t t = (time_t)e->updated;
            /* the file's times are checked, but localtime can still fail */
            if (!localtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm))
                snprintf(when, sizeof when, "unknown date");
            sub = when;
        }
        fonts_draw(a->fonts, FONT_SMALL, sub, strlen(sub), text.x, text.y + app_px(a, 4) + lh,
                   a->th->dim);
        SDL_RenderSetClipRect(a->ren, NULL);
        if (sel) actions(a, (SDL_Rect){row.x + pad, y + row_h, row.w - 2 * pad, fh});
        if (i >= s->n) break; /* an action changed the list */
        y += row.h;
    }
}
