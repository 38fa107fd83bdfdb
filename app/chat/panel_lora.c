/* panel_lora.c: the LoRA panel (the LoRA button, Ctrl+L): the loaded model's
 * adapters in the order they apply, one row each with a checkbox (on or off),
 * what the file holds (rank, alpha, matrices, device memory) and a scale
 * slider; Add adapter… opens the desktop's file dialog (file_dialog.c), and a
 * path field takes a typed one. A dropped adapter file lands in the same
 * list (app_open_file tells it from a model by its header).
 *
 * The list is the worker's (worker_status.lora): the panel only changes the
 * on/off and scale the UI asks for (app_lora_set), which the worker applies
 * when the next reply starts; until then a row says "from the next reply".
 * An adapter switched off stays loaded, so switching it on uploads nothing.
 * A slider acts when it is let go, not at each frame of the drag. */
#include "app.h"
#include "file_dialog.h"
#include "model_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The slider's range; the script's lora-scale may set any scale the
 * terminal's /lora scale accepts, which then shows at the slider's end. */
#define SCALE_MIN 0.0f
#define SCALE_MAX 2.0f

struct panel_lora {
    struct ui_field path; /* an adapter file typed, then Enter */
    struct file_dialog *dialog;
    float drag[WORKER_LORA_MAX]; /* a slider's value while it is dragged */
    int scroll;                  /* the first row shown, where they do not all fit */
};

int panel_lora_create(struct app *a, struct panel_lora **out, struct vkllm_error *err)
{
    (void)a;
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    return VKLLM_OK;
}

void panel_lora_destroy(struct panel_lora *p)
{
    if (!p) return;
    file_dialog_close(p->dialog);
    free(p);
}

void panel_lora_toggle(struct app *a)
{
    if (a->lora_open) {
        panel_lora_close(a);
        return;
    }
    if (a->models_open) panel_models_close(a);
    a->settings_open = a->help_open = false;
    a->lora_open = true;
    ui_focus(a, &a->lora_panel->path);
}

void panel_lora_close(struct app *a)
{
    a->lora_open = false;
    a->ui.dragging = NULL;
    if (a->focus == &a->lora_panel->path) ui_focus(a, NULL);
}

void panel_lora_add(struct app *a, const char *path)
{
    app_lora_add(a, path);
    ui_field_set(&a->lora_panel->path, "");
    a->lora_panel->path.changed = false;
}


void panel_lora_open_dialog(struct app *a)
{
    struct panel_lora *p = a->lora_panel;
    if (p->dialog) {
        app_banner(a, false, "the file dialog is open already");
        return;
    }
    if (!file_dialog_tool()) { /* no desktop dialog: the path field it is */
        ui_focus(a, &p->path);
        app_banner(a, false, "no file dialog on this desktop: type the adapter's path, then Enter");
        return;
    }
    /* adapters are usually kept beside their model */
    char *dir = app_model_dir(a);
    struct vkllm_error err = {0};
    if (file_dialog_start(dir, &p->dialog, &err)) app_banner(a, true, "%s", err.msg);
    free(dir);
}

void panel_lora_poll(struct app *a)
{
    struct panel_lora *p = a->lora_panel;
    if (!p->dialog) return;
    struct vkllm_error err = {0};
    char *path;
    enum file_dialog_state s = file_dialog_poll(p->dialog, &path, &err);
    if (s == FILE_DIALOG_OPEN) return;
    file_dialog_close(p->dialog);
    p->dialog = NULL;
    if (s == FILE_DIALOG_CHOSEN) {
        app_lora_add(a, path);
        free(path);
    } else if (s == FILE_DIALOG_FAILED) {
        app_banner(a, true, "%s", err.msg);
    }
}

/* ---- drawing */

/* "rank 8 · alpha 16 · 14 matrices · 0.2 MiB" */
static void facts(const struct worker_lora *l, char *buf, size_t cap)
{
    char rank[32], alpha[32], size[32];
    if (l->rank_min != l->rank_max)
        snprintf(rank, sizeof rank, "rank %u-%u", l->rank_min, l->rank_max);
    else
        snprintf(rank, sizeof rank, "rank %u", l->rank_max);
    if (l->alpha != 0)
        snprintf(alpha, sizeof alpha, "alpha %g", (double)l->alpha);
    else
        snprintf(alpha, sizeof alpha, "no alpha");
    model_files_size(l->bytes, size, sizeof size);
    snprintf(buf, cap, "%s · %s · %u matrices · %s", rank, alpha, l->n_tensors, size);
}

/* Clips drawing to R within LIST. */
static void clip(struct app *a, SDL_Rect r, const SDL_Rect *list)
{
    SDL_Rect in;
    if (!SDL_IntersectRect(&r, list, &in)) in = (SDL_Rect){list->x, list->y, 0, 0};
    SDL_RenderSetClipRect(a->ren, &in);
}

/* Row I, wholly within LIST: checkbox and name, facts, slider and scale; a
 * change goes to the worker through app_lora_set. */
static void row(struct app *a, SDL_Rect r, uint32_t i, const struct worker_lora *l,
                const SDL_Rect *list)
{
    struct panel_lora *p = a->lora_panel;
    int pad = app_px(a, 8), lh = fonts_line_height(a->fonts, FONT_SMALL);
    draw_rect(a, r, a->th->bg);
    int slider_w = app_px(a, 160), value_w = fonts_width(a->fonts, FONT_SMALL, "-0.000", 6);
    int top = r.y + pad, name_w = r.w - 2 * pad - slider_w - value_w - 2 * pad;
    char label[sizeof l->name + 16];
    snprintf(label, sizeof label, "%u. %.*s", i + 1, (int)sizeof l->name - 1, l->name);
    bool on = l->on;
    SDL_Rect check = {r.x + pad, top, name_w, lh};
    clip(a, check, list);
    if (ui_checkbox(a, check, label, &on)) app_lora_set(a, i, on, l->scale);
    SDL_RenderSetClipRect(a->ren, list);
    char line[256];
    facts(l, line, sizeof line);
    bool pending = l->on != l->on_now || (l->on && l->scale != l->scale_now);
    if (pending)
        snprintf(line + strlen(line), sizeof line - strlen(line), " · %s from the next reply",
                 l->on ? "on" : "off");
    SDL_Rect under = {r.x + pad, top + lh + app_px(a, 2), r.w - 2 * pad, lh};
    clip(a, under, list);
    fonts_draw(a->fonts, FONT_SMALL, line, strlen(line), under.x, under.y,
               pending ? a->th->accent : a->th->dim);
    SDL_RenderSetClipRect(a->ren, list);
    /* the slider shows the dragged value while it moves */
    bool dragging = a->ui.dragging == &p->drag[i];
    if (!dragging) p->drag[i] = l->scale;
    SDL_Rect sr = {r.x + r.w - pad - value_w - pad - slider_w, top, slider_w, lh};
    if (ui_slider(a, sr, &p->drag[i], SCALE_MIN, SCALE_MAX, &p->drag[i])) {
        /* steps of 0.05: a hand cannot place it finer, and 1 must be reachable */
        float s = (float)(int)(p->drag[i] * 20 + 0.5f) / 20;
        if (s != l->scale) app_lora_set(a, i, l->on, s);
    }
    char value[32];
    snprintf(value, sizeof value, "%.2f", (double)p->drag[i]);
    fonts_draw(a->fonts, FONT_SMALL, value, strlen(value), r.x + r.w - pad - value_w, top,
               l->on ? a->th->text : a->th->dim);
}

void panel_lora_frame(struct app *a, SDL_Rect r)
{
    struct panel_lora *p = a->lora_panel;
    /* the settings or the help over this one have the mouse */
    struct ui mouse = a->ui;
    bool under = a->help_open || a->settings_open;
    if (under) a->ui = (struct ui){.mx = -1, .my = -1, .taken = true, .wheel_taken = true};

    pthread_mutex_lock(&a->lock);
    const struct worker_status *ws = worker_status(a->worker);
    struct worker_lora lora[WORKER_LORA_MAX];
    uint32_t n = ws->n_lora;
    memcpy(lora, ws->lora, sizeof lora);
    bool has_model = ws->has_model, loading = ws->phase == WORKER_LOADING_LORA;
    char model[sizeof ws->model];
    snprintf(model, sizeof model, "%s", ws->model);
    pthread_mutex_unlock(&a->lock);

    int pad = app_px(a, 16), gap = app_px(a, 6), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int th = fonts_line_height(a->fonts, MDOC_BOLD), fh = lh + app_px(a, 10);
    int rh = 2 * lh + app_px(a, 20);
    int w = app_px(a, 720) < r.w - 2 * pad ? app_px(a, 720) : r.w - 2 * pad;
    int rows = n ? (int)n : 1;
    int h = 2 * pad + th + gap + fh + gap + rows * (rh + gap) + 2 * (lh + gap);
    if (h > r.h - 2 * pad) h = r.h - 2 * pad;
    SDL_Rect box = {r.x + (r.w - w) / 2, r.y + (r.h - h) / 2, w, h};
    draw_rect(a, box, a->th->panel);
    draw_outline(a, box, a->th->border);
    int x = box.x + pad, y = box.y + pad, iw = box.w - 2 * pad;

    const char *title = "LoRA adapters";
    fonts_draw(a->fonts, MDOC_BOLD, title, strlen(title), x, y, a->th->text);
    int bx = x + iw;
    const char *buttons[] = {"Close", "Add adapter…"};
    for (int b = 0; b < 2; b++) {
        int bw = ui_button_width(a, buttons[b]);
        bx -= bw;
        bool enabled = b == 0 || (has_model && !p->dialog && n < WORKER_LORA_MAX);
        if (ui_button(a, (SDL_Rect){bx, y, bw, th}, buttons[b], enabled)) {
            if (b == 0) {
                if (under) a->ui = mouse;
                panel_lora_close(a);
                return;
            }
            panel_lora_open_dialog(a);
        }
        bx -= gap;
    }
    y += th + gap;
    if (ui_field(a, &p->path, (SDL_Rect){x, y, iw, fh}, "an adapter's .gguf file, then Enter") &&
        p->path.len)
        panel_lora_add(a, p->path.text);
    y += fh + gap;

    SDL_Rect list = {x, y, iw, box.y + box.h - pad - 2 * (lh + gap) - y};
    /* rows that fit whole (a short window): the wheel scrolls the others in */
    int visible = (list.h + gap) / (rh + gap);
    if (visible < 1) visible = 1;
    if (ui_hover(a, list) && a->ui.wheel && !a->ui.wheel_taken) {
        a->ui.wheel_taken = true;
        p->scroll -= a->ui.wheel > 0 ? 1 : -1;
    }
    if (p->scroll > (int)n - visible) p->scroll = (int)n - visible;
    if (p->scroll < 0) p->scroll = 0;
    SDL_RenderSetClipRect(a->ren, &list);
    for (int i = p->scroll; i < (int)n && i < p->scroll + visible; i++)
        row(a, (SDL_Rect){x, y + (i - p->scroll) * (rh + gap), iw, rh}, (uint32_t)i, &lora[i],
            &list);
    SDL_RenderSetClipRect(a->ren, NULL);
    if ((int)n > visible) { /* where the rows shown are among them */
        int sh = list.h * visible / (int)n;
        int sy = list.y + (list.h - sh) * p->scroll / ((int)n - visible);
        draw_rect(a, (SDL_Rect){list.x + list.w - app_px(a, 4), sy, app_px(a, 4), sh},
                  a->th->border);
    }
    if (!n) {
        char empty[256];
        if (!has_model)
            snprintf(empty, sizeof empty, "No model is loaded: adapters need the model they fit.");
        else
            snprintf(empty, sizeof empty,
                     "No adapters for %s. Add one, or drop an adapter's .gguf on the window.",
                     model);
        SDL_RenderSetClipRect(a->ren, &list);
        fonts_draw(a->fonts, FONT_SMALL, empty, strlen(empty), x, y + gap, a->th->dim);
        SDL_RenderSetClipRect(a->ren, NULL);
    }

    y = box.y + box.h - pad - 2 * lh - gap;
    const char *foot[2] = {
        loading ? "Loading an adapter…"
                : "Off keeps an adapter loaded; a change applies from the next reply,",
        "which reads the conversation again. Loading another model unloads them."};
    for (int k = 0; k < 2; k++) {
        SDL_Rect clip = {x, y, iw, lh};
        SDL_RenderSetClipRect(a->ren, &clip);
        fonts_draw(a->fonts, FONT_SMALL, foot[k], strlen(foot[k]), x, y, a->th->dim);
        SDL_RenderSetClipRect(a->ren, NULL);
        y += lh + gap;
    }
    if (under) a->ui = mouse;
}
