/* panel_models.c: the Models panel, over the window: the models folder's
 * .gguf files (the Models button), or any folder (the in-window file
 * browser: Ctrl+O or Open… where the desktop has no file dialog), one row
 * an entry with its size and what its GGUF header says, ".." to go up, and a
 * path field to type a folder or a file. Choosing a file (a click, Enter)
 * loads it (app_open_file: a LoRA adapter is added to the model instead) and
 * closes the panel; the worker's checks (not a model, too big for the device,
 * an adapter for another model) end up in the banner, the old model kept.
 *
 * A folder is read once when it is shown (model_files_list), never per
 * frame; the headers (architecture, quantization) are read by a thread of
 * the panel's, so a folder of big models or thousands of files never holds
 * a frame. That thread reads at most MODEL_FILES_HEAD_MAX of each header
 * and stops within milliseconds when asked (a new folder, the panel
 * closed), so joining it never holds one either. The desktop's own dialog
 * (file_dialog.c) runs as a child process polled once a frame by
 * panel_models_poll. */
#include "app.h"
#include "file_dialog.h"
#include "model_files.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* What the header thread found for one file of the listing. */
struct row_head {
    enum { HEAD_PENDING, HEAD_OK, HEAD_BAD, HEAD_UNLISTED } state;
    struct model_header h;
    char why[160]; /* HEAD_BAD: the reason, without the path */
};

struct panel_models {
    struct model_dir dir;     /* the folder shown; empty when it could not be read */
    char error[512];          /* why it could not, or "" */
    char *failed;             /* the folder that could not be read (NULL: none) */
    bool models_folder;       /* the listing is the models folder (not the browser) */
    char listed_models[1024]; /* the models_dir setting it was listed for */
    int sel;                  /* the chosen row (0 is ".." where there is one) */
    int scroll;               /* first row at the top of the list */
    bool follow;              /* scroll to the chosen row at the next frame */
    struct ui_field path;     /* the folder, or what the user types instead */
    char *last_dir;           /* where the browser opens next */
    size_t n_folders;         /* of dir's entries */
    bool has_dialog;          /* the desktop has a file dialog (looked up on opening) */
    char *pending;            /* a load the panel asked for, until it ends */
    uint64_t pending_errors;  /* the worker's error_seq when it was asked */

    /* the header thread: reads dir.entries (fixed while it runs) into heads */
    pthread_t thread;
    bool running;
    atomic_bool cancel;
    pthread_mutex_t mu; /* guards heads */
    struct row_head *heads;

    struct file_dialog *dialog;
};

/* ---- the header thread */

static void *read_heads(void *arg)
{
    struct panel_models *p = arg;
    for (size_t i = 0; i < p->dir.n && !atomic_load(&p->cancel); i++) {
        const struct model_entry *e = &p->dir.entries[i];
        if (e->dir) continue;
        char *path = model_files_join(p->dir.path, e->name);
        struct row_head r = {.state = HEAD_BAD};
        struct vkllm_error err = {0};
        if (!path)
            snprintf(r.why, sizeof r.why, "out of memory");
        else if (!model_files_header(path, &r.h, &p->cancel, &err))
            r.state = HEAD_OK;
        else if (r.h.too_large)
            r.state = HEAD_UNLISTED;
        else {
            /* the row already names the file: keep the reason */
            const char *why = strstr(err.msg, ": ") ? strstr(err.msg, ": ") + 2 : err.msg;
            size_t n = strlen(path);
            if (!strncmp(err.msg, path, n) && !strncmp(err.msg + n, ": ", 2)) why = err.msg + n + 2;
            snprintf(r.why, sizeof r.why, "%.*s", (int)sizeof r.why - 1, why);
        }
        free(path);
        pthread_mutex_lock(&p->mu);
        p->heads[i] = r;
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static void stop_heads(struct panel_models *p)
{
    if (p->running) {
        atomic_store(&p->cancel, true);
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    free(p->heads);
    p->heads = NULL;
}

/* ---- what the panel shows */

/* The folder the panel is at: the one listed, or the one that could not be. */
static const char *here(const struct panel_models *p)
{
    return p->dir.path ? p->dir.path : p->failed;
}

/* A ".." row: also in a folder that could not be read (deleted while shown,
 * unreadable), the way out of it (probe 4, R-18.1) */
static bool has_up(const struct panel_models *p)
{
    return here(p) && strcmp(here(p), "/");
}

static int n_rows(const struct panel_models *p)
{
    return (int)p->dir.n + has_up(p);
}

/* "~/x" as the shell reads it; into BUF. */
static const char *expand(const char *dir, char *buf, size_t cap)
{
    const char *home = getenv("HOME");
    if (dir[0] == '~' && (dir[1] == '/' || !dir[1]) && home) {
        snprintf(buf, cap, "%s%s", home, dir + 1);
        return buf;
    }
    return dir;
}

/* Shows folder DIR (SELECT: the entry to choose, NULL: the first); false
 * with the reason in the panel when it cannot be read. */
static bool show(struct app *a, const char *dir, const char *select)
{
    struct panel_models *p = a->models_panel;
    char buf[4096];
    dir = expand(dir, buf, sizeof buf);
    stop_heads(p);
    model_files_free(&p->dir);
    free(p->failed);
    p->failed = NULL;
    p->error[0] = 0;
    p->sel = p->scroll = 0;
    p->follow = true;
    struct vkllm_error err = {0};
    bool ok = !model_files_list(dir, &p->dir, &err);
    if (ok && !(p->heads = calloc(p->dir.n + 1, sizeof *p->heads))) {
        model_files_free(&p->dir);
        snprintf(err.msg, sizeof err.msg, "out of memory");
        ok = false;
    }
    if (!ok) {
        snprintf(p->error, sizeof p->error, "%s", err.msg);
        p->failed = strdup(dir);
        ui_field_set(&p->path, dir);
        p->path.changed = false;
        return false;
    }
    ui_field_set(&p->path, p->dir.path);
    p->path.changed = false;
    p->n_folders = 0;
    for (size_t i = 0; i < p->dir.n; i++)
        p->n_folders += p->dir.entries[i].dir;
    free(p->last_dir);
    p->last_dir = strdup(p->dir.path);
    /* the entry asked for, else the first model, else the first entry */
    p->sel = p->dir.n ? has_up(p) : 0;
    for (size_t i = 0; !select && i < p->dir.n; i++)
        if (!p->dir.entries[i].dir) {
            p->sel = (int)i + has_up(p);
            break;
        }
    for (size_t i = 0; select && i < p->dir.n; i++)
        if (!strcmp(p->dir.entries[i].name, select)) p->sel = (int)i + has_up(p);
    atomic_store(&p->cancel, false);
    p->running = !pthread_create(&p->thread, NULL, read_heads, p);
    return true;
}

static void open_panel(struct app *a)
{
    if (a->lora_open) panel_lora_close(a);
    a->models_open = true;
    a->settings_open = a->help_open = false;
    a->models_panel->has_dialog = file_dialog_tool() != NULL;
    ui_focus(a, &a->models_panel->path);
}

void panel_models_close(struct app *a)
{
    a->models_open = false;
    /* no header is wanted any more; every way back in lists the folder again */
    atomic_store(&a->models_panel->cancel, true);
    if (a->focus == &a->models_panel->path) ui_focus(a, NULL);
}

void panel_models_open(struct app *a)
{
    struct panel_models *p = a->models_panel;
    open_panel(a);
    p->models_folder = true;
    snprintf(p->listed_models, sizeof p->listed_models, "%s", a->settings.models_dir);
    if (a->settings.models_dir[0]) {
        show(a, a->settings.models_dir, NULL);
        return;
    }
    stop_heads(p);
    model_files_free(&p->dir);
    free(p->failed);
    p->failed = NULL;
    p->error[0] = 0;
    ui_field_set(&p->path, "");
    p->path.changed = false;
}

bool panel_models_browse(struct app *a, const char *dir)
{
    open_panel(a);
    a->models_panel->models_folder = false;
    return show(a, dir, NULL);
}

/* Where the browser starts: where it was last, the models folder, the
 * loaded model's folder, home. */
static char *start_dir(struct app *a)
{
    struct panel_models *p = a->models_panel;
    char buf[4096];
    if (p->last_dir) return strdup(p->last_dir);
    if (a->settings.models_dir[0]) return strdup(expand(a->settings.models_dir, buf, sizeof buf));
    return app_model_dir(a);
}

void panel_models_open_file(struct app *a)
{
    struct panel_models *p = a->models_panel;
    char *dir = start_dir(a);
    if (!dir) return;
    if (p->dialog) {
        app_banner(a, false, "the file dialog is open already");
    } else if (file_dialog_tool()) {
        struct vkllm_error err = {0};
        if (!file_dialog_start(dir, &p->dialog, &err)) {
            free(dir);
            return;
        }
        /* a dialog that cannot run: the window's own browser instead */
        app_banner(a, true, "%s", err.msg);
    }
    open_panel(a);
    p->models_folder = false;
    show(a, dir, NULL);
    free(dir);
}

/* ---- choosing */

static void load(struct app *a, const char *path)
{
    struct panel_models *p = a->models_panel;
    free(p->pending);
    p->pending = strdup(path);
    pthread_mutex_lock(&a->lock);
    p->pending_errors = worker_status(a->worker)->error_seq;
    pthread_mutex_unlock(&a->lock);
    app_open_file(a, path); /* an adapter is added to the model loaded */
    panel_models_close(a);
}

/* Row I: up, into a folder, or load a file. */
static void choose(struct app *a, int i)
{
    struct panel_models *p = a->models_panel;
    if (i < 0 || i >= n_rows(p)) return;
    if (has_up(p) && i == 0) {
        /* up to the nearest folder that can be read: the one above may be
         * gone too */
        char *cur = strdup(here(p)), *up = NULL;
        p->models_folder = false;
        while (cur && strcmp(cur, "/") && (up = model_files_parent(cur))) {
            const char *base = strrchr(cur, '/');
            bool ok = show(a, up, base ? base + 1 : NULL);
            free(cur);
            cur = up;
            if (ok) break;
        }
        free(cur);
        return;
    }
    const struct model_entry *e = &p->dir.entries[i - has_up(p)];
    char *path = model_files_join(p->dir.path, e->name);
    if (!path) return;
    if (e->dir) {
        p->models_folder = false;
        show(a, path, NULL);
    } else {
        load(a, path);
    }
    free(path);
}

/* The path field's text: a folder is shown, a file loaded. */
static void go_typed(struct app *a)
{
    struct panel_models *p = a->models_panel;
    char buf[4096];
    const char *path = expand(p->path.text, buf, sizeof buf);
    if (!*path) return;
    size_t n = strlen(path);
    if (n > 5 && !strcasecmp(path + n - 5, ".gguf") && access(path, F_OK) == 0) {
        load(a, path);
        return;
    }
    p->models_folder = false;
    show(a, path, NULL);
}

bool panel_models_pick(struct app *a, const char *name)
{
    struct panel_models *p = a->models_panel;
    if (!a->models_open) return false;
    if (!strcmp(name, "..")) {
        if (!has_up(p)) return false;
        choose(a, 0);
        return true;
    }
    for (size_t i = 0; i < p->dir.n; i++)
        if (!strcmp(p->dir.entries[i].name, name) || !strcmp(p->dir.entries[i].label, name)) {
            choose(a, (int)i + has_up(p));
            return true;
        }
    return false;
}

/* ---- keys */

bool panel_models_key(struct app *a, const SDL_KeyboardEvent *k)
{
    struct panel_models *p = a->models_panel;
    bool ctrl = k->keysym.mod & KMOD_CTRL;
    if (a->settings_open || a->help_open) return false; /* theirs */
    if (ctrl && k->keysym.sym == SDLK_o) {
        panel_models_open_file(a);
        return true;
    }
    if (!a->models_open) return false;
    int n = n_rows(p), page = 10;
    /* the path field has the keyboard; once the user types in it, Enter,
     * Backspace and Esc are its own */
    bool typing = p->path.changed;
    switch (k->keysym.sym) {
    case SDLK_ESCAPE:
        if (!typing) {
            panel_models_close(a);
            return true;
        }
        ui_field_set(&p->path, here(p) ? here(p) : ""); /* the edit undone */
        p->path.changed = false;
        return true;
    case SDLK_UP:
    case SDLK_DOWN:
    case SDLK_PAGEUP:
    case SDLK_PAGEDOWN: {
        SDL_Keycode s = k->keysym.sym;
        int step = s == SDLK_UP ? -1 : s == SDLK_DOWN ? 1 : s == SDLK_PAGEUP ? -page : page;
        p->sel += step;
        if (p->sel >= n) p->sel = n - 1;
        if (p->sel < 0) p->sel = 0;
        p->follow = true;
        return true;
    }
    case SDLK_RETURN:
    case SDLK_KP_ENTER:
        if (typing)
            go_typed(a);
        else
            choose(a, p->sel);
        return true;
    case SDLK_BACKSPACE:
        if (typing) return false;
        if (has_up(p)) choose(a, 0);
        return true;
    default: return false;
    }
}

/* ---- once a frame */

void panel_models_poll(struct app *a)
{
    struct panel_models *p = a->models_panel;
    if (p->dialog) {
        struct vkllm_error err = {0};
        char *path;
        enum file_dialog_state s = file_dialog_poll(p->dialog, &path, &err);
        if (s != FILE_DIALOG_OPEN) {
            file_dialog_close(p->dialog);
            p->dialog = NULL;
        }
        if (s == FILE_DIALOG_CHOSEN) {
            char *dir = model_files_parent(path);
            if (dir) {
                free(p->last_dir);
                p->last_dir = dir;
            }
            load(a, path);
            free(path);
        } else if (s == FILE_DIALOG_FAILED) {
            app_banner(a, true, "%s", err.msg);
        }
    }
    /* the settings panel changed the models folder under the list */
    if (a->models_open && p->models_folder && !a->settings_open &&
        strcmp(p->listed_models, a->settings.models_dir))
        panel_models_open(a);
    if (!p->pending) return;
    pthread_mutex_lock(&a->lock);
    bool busy = worker_busy(a->worker);
    bool failed = worker_status(a->worker)->error_seq != p->pending_errors;
    char path[sizeof worker_status(a->worker)->path];
    snprintf(path, sizeof path, "%s", worker_status(a->worker)->path);
    pthread_mutex_unlock(&a->lock);
    if (busy) return;
    /* a failed load has put its error in the banner already (and the model
     * it kept may be this very file) */
    char shown[sizeof path];
    vkllm_printable(shown, sizeof shown, p->pending, strlen(p->pending));
    if (!failed && !strcmp(shown, path)) app_banner(a, false, "model loaded: %s", path);
    free(p->pending);
    p->pending = NULL;
}

/* ---- drawing */

/* One row: the name on the left, what is known of it on the right; drawn
 * within LIST (a row half out of it must not cover the footer). */
static void row(struct app *a, SDL_Rect r, int i, const char *loaded, const SDL_Rect *list)
{
    struct panel_models *p = a->models_panel;
    int pad = app_px(a, 8), lh = fonts_line_height(a->fonts, FONT_SMALL);
    if (i == p->sel)
        draw_rect(a, r, a->th->select);
    else if (ui_hover(a, r))
        draw_rect(a, r, a->th->button_hot);
    int y = r.y + (r.h - lh) / 2;
    char right[256] = "", size[32];
    SDL_Color rc = a->th->dim;
    const char *name = "..";
    uint32_t style = FONT_SMALL;
    if (!(has_up(p) && i == 0)) {
        size_t k = (size_t)(i - has_up(p));
        const struct model_entry *e = &p->dir.entries[k];
        name = e->label;
        if (e->dir) {
            snprintf(right, sizeof right, "folder");
        } else {
            model_files_size(e->size, size, sizeof size);
            pthread_mutex_lock(&p->mu);
            struct row_head h = p->heads[k];
            pthread_mutex_unlock(&p->mu);
            if (h.state == HEAD_OK)
                snprintf(right, sizeof right, "%s%s · %s · %s",
                         h.h.adapter ? "LoRA adapter · " : "", h.h.arch, h.h.quant, size);
            else if (h.state == HEAD_UNLISTED)
                snprintf(right, sizeof right, "header too large to list · %s", size);
            else if (h.state == HEAD_BAD) {
                snprintf(right, sizeof right, "not a model: %s · %s", h.why, size);
                rc = a->th->error;
            } else
                snprintf(right, sizeof right, "%s", size);
            char *full = model_files_join(p->dir.path, e->name);
            char shown[1024];
            if (full) vkllm_printable(shown, sizeof shown, full, strlen(full));
            if (full && !strcmp(shown, loaded)) {
                snprintf(right + strlen(right), sizeof right - strlen(right), " · loaded");
                style |= MDOC_BOLD;
            }
            free(full);
        }
    }
    int rw = fonts_width(a->fonts, FONT_SMALL, right, strlen(right));
    int name_w = r.w - 3 * pad - rw;
    SDL_Rect clip = {r.x + pad, r.y, name_w > 0 ? name_w : 0, r.h}, in_list;
    if (SDL_IntersectRect(&clip, list, &in_list)) {
        SDL_RenderSetClipRect(a->ren, &in_list);
        char label[1100];
        bool folder = i < has_up(p) || p->dir.entries[i - has_up(p)].dir;
        snprintf(label, sizeof label, "%s%s", name, folder && i >= has_up(p) ? "/" : "");
        fonts_draw(a->fonts, style, label, strlen(label), clip.x, y,
                   folder ? a->th->accent : a->th->text);
        SDL_RenderSetClipRect(a->ren, list);
    }
    fonts_draw(a->fonts, FONT_SMALL, right, strlen(right), r.x + r.w - pad - rw, y, rc);
}

/* What the list says when it has nothing to list, or "". */
static void empty_note(struct app *a, char *buf, size_t cap, bool *error)
{
    struct panel_models *p = a->models_panel;
    *error = false;
    if (p->error[0]) {
        *error = true;
        snprintf(buf, cap, "%s%s", p->error,
                 p->models_folder ? ". Set \"Models folder\" in Settings (Ctrl+,), or type a "
                                    "folder above."
                                  : "");
    } else if (p->models_folder && !a->settings.models_dir[0]) {
        snprintf(buf, cap,
                 "No models folder is set. Set \"Models folder\" in Settings (Ctrl+,), "
                 "or type a folder above and press Enter.");
    } else if (!p->dir.n) {
        snprintf(buf, cap,
                 "No .gguf files here. Put models in this folder, or type another "
                 "folder above and press Enter.");
    } else {
        buf[0] = 0;
    }
}

void panel_models_frame(struct app *a, SDL_Rect r)
{
    struct panel_models *p = a->models_panel;
    /* an overlay over this one (settings, help) has the mouse and the keyboard */
    struct ui mouse = a->ui;
    bool under = a->settings_open || a->help_open;
    if (under)
        a->ui = (struct ui){.mx = -1, .my = -1, .taken = true, .wheel_taken = true};
    else if (a->focus != &p->path)
        ui_focus(a, &p->path);

    int pad = app_px(a, 16), gap = app_px(a, 6), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int th = fonts_line_height(a->fonts, MDOC_BOLD), fh = lh + app_px(a, 10);
    int rh = lh + app_px(a, 8);
    int w = app_px(a, 760) < r.w - 2 * pad ? app_px(a, 760) : r.w - 2 * pad;
    int h = r.h - 2 * pad;
    SDL_Rect box = {r.x + (r.w - w) / 2, r.y + (r.h - h) / 2, w, h};
    draw_rect(a, box, a->th->panel);
    draw_outline(a, box, a->th->border);
    int x = box.x + pad, y = box.y + pad, iw = box.w - 2 * pad;

    /* title and the ways to other folders */
    const char *title = p->models_folder ? "Models folder" : "Open a model";
    fonts_draw(a->fonts, MDOC_BOLD, title, strlen(title), x, y, a->th->text);
    int bx = x + iw, bh = th;
    const char *dialog = p->has_dialog ? "Desktop dialog…" : NULL;
    const char *buttons[] = {"Close", "Models folder", dialog};
    for (int b = 0; b < 3; b++) {
        if (!buttons[b]) continue;
        int bw = ui_button_width(a, buttons[b]);
        bx -= bw;
        if (ui_button(a, (SDL_Rect){bx, y, bw, bh}, buttons[b], !p->dialog || b != 2)) {
            if (b == 0) {
                panel_models_close(a);
            } else if (b == 1) {
                panel_models_open(a);
            } else {
                free(p->last_dir);
                p->last_dir = p->dir.path ? strdup(p->dir.path) : NULL;
                panel_models_open_file(a);
            }
            return; /* the panel changed under this frame (an overlay never gets here) */
        }
        bx -= gap;
    }
    y += th + gap;
    if (ui_field(a, &p->path, (SDL_Rect){x, y, iw, fh}, "a folder or a .gguf file, then Enter"))
        go_typed(a);
    y += fh + gap;

    /* the list, or why there is none */
    char note[1024];
    bool note_error;
    empty_note(a, note, sizeof note, &note_error);
    int foot = lh + gap;
    SDL_Rect list = {x, y, iw, box.y + box.h - pad - foot - y};
    draw_rect(a, list, a->th->bg);
    int n = n_rows(p), visible = list.h / rh;
    if (visible < 1) visible = 1;
    if (ui_hover(a, list) && a->ui.wheel && !a->ui.wheel_taken) {
        a->ui.wheel_taken = true;
        p->scroll -= (int)(a->ui.wheel * 3);
    }
    if (p->follow) {
        if (p->sel < p->scroll) p->scroll = p->sel;
        if (p->sel >= p->scroll + visible) p->scroll = p->sel - visible + 1;
        p->follow = false;
    }
    if (p->scroll > n - visible) p->scroll = n - visible;
    if (p->scroll < 0) p->scroll = 0;
    char loaded[sizeof worker_status(a->worker)->path];
    pthread_mutex_lock(&a->lock);
    snprintf(loaded, sizeof loaded, "%s", worker_status(a->worker)->path);
    pthread_mutex_unlock(&a->lock);
    SDL_RenderSetClipRect(a->ren, &list);
    int clicked = -1;
    for (int i = p->scroll; i < n && i < p->scroll + visible + 1; i++) {
        SDL_Rect rr = {list.x, list.y + (i - p->scroll) * rh, list.w, rh};
        row(a, rr, i, loaded, &list);
        if (ui_hover(a, rr) && ui_hover(a, list) && a->ui.pressed && !a->ui.taken) {
            a->ui.taken = true;
            /* one click chooses; the second of a double click would land on
             * whatever row the folder it entered has there */
            if (a->ui.clicks < 2) clicked = i;
        }
    }
    SDL_RenderSetClipRect(a->ren, NULL);
    if (note[0]) {
        int ny = list.y + (n ? n * rh : 0) + gap;
        SDL_Rect nc = {list.x + gap, ny, list.w - 2 * gap, lh};
        SDL_RenderSetClipRect(a->ren, &nc);
        fonts_draw(a->fonts, FONT_SMALL, note, strlen(note), nc.x, ny,
                   note_error ? a->th->error : a->th->dim);
        SDL_RenderSetClipRect(a->ren, NULL);
    }
    /* a scrollbar where the rows do not fit */
    if (n > visible) {
        int sh = list.h * visible / n, sy = list.y + (list.h - sh) * p->scroll / (n - visible);
        draw_rect(a, (SDL_Rect){list.x + list.w - app_px(a, 4), sy, app_px(a, 4), sh},
                  a->th->border);
    }

    /* the counts and the keys */
    char foot_text[256] = "";
    size_t folders = p->n_folders, files = p->dir.n - folders;
    int len = !p->dir.path
                  ? 0
                  : snprintf(foot_text, sizeof foot_text, "%zu .gguf file%s, %zu folder%s", files,
                             files == 1 ? "" : "s", folders, folders == 1 ? "" : "s");
    if (p->dir.truncated) /* which ones: readdir's first, not the first in order */
        len += snprintf(foot_text + len, sizeof foot_text - len,
                        " in the first %d of %zu entries (in the folder's own order)",
                        MODEL_FILES_MAX, p->dir.n_seen);
    if (p->dir.n_skipped)
        snprintf(foot_text + len, sizeof foot_text - len, ", %zu unreadable", p->dir.n_skipped);
    y = box.y + box.h - pad - lh;
    int cw = fonts_draw(a->fonts, FONT_SMALL, foot_text, strlen(foot_text), x, y, a->th->dim);
    /* the keys where the counts leave room for them */
    const char *keys = "Up/Down choose · Enter opens · Backspace: up · Esc closes";
    int kw = fonts_width(a->fonts, FONT_SMALL, keys, strlen(keys));
    if (cw + 2 * gap + kw <= iw)
        fonts_draw(a->fonts, FONT_SMALL, keys, strlen(keys), x + iw - kw, y, a->th->dim);
    if (under) a->ui = mouse;
    if (clicked >= 0) {
        p->sel = clicked;
        choose(a, clicked);
    }
}

/* ---- lifetime */

int panel_models_create(struct app *a, struct panel_models **out, struct vkllm_error *err)
{
    (void)a;
    struct panel_models *p = calloc(1, sizeof *p);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return VKLLM_OK;
}

void panel_models_destroy(struct panel_models *p)
{
    if (!p) return;
    file_dialog_close(p->dialog); /* the window is going: its dialog goes too */
    stop_heads(p);
    model_files_free(&p->dir);
    free(p->failed);
    pthread_mutex_destroy(&p->mu);
    free(p->last_dir);
    free(p->pending);
    free(p);
}
