/* panel_settings.c: the settings panel (Ctrl+, or the Settings button): one
 * field a setting, drawn from settings.h's table, filled with the current
 * values when it opens. Save (or Enter) checks every field with settings_set
 * and keeps the panel open with the first refusal's message; Esc closes it
 * and forgets the edits. Tab moves to the next field. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 16

struct panel_settings {
    struct ui_field field[MAX_FIELDS];
    char msg[512]; /* the last refusal */
};

int panel_settings_create(struct app *a, struct panel_settings **out, struct vkllm_error *err)
{
    (void)a;
    _Static_assert(MAX_FIELDS >= 12, "room for every setting");
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    return VKLLM_OK;
}

void panel_settings_destroy(struct panel_settings *p)
{
    free(p);
}

void panel_settings_toggle(struct app *a)
{
    struct panel_settings *p = a->settings_panel;
    a->settings_open = !a->settings_open;
    a->help_open = false;
    if (!a->settings_open) {
        ui_focus(a, NULL);
        return;
    }
    char buf[sizeof p->field[0].text];
    for (size_t i = 0; i < settings_n_fields && i < MAX_FIELDS; i++) {
        settings_get(&a->settings, settings_fields[i].key, buf, sizeof buf);
        ui_field_set(&p->field[i], buf);
        p->field[i].tabbed = false;
    }
    p->msg[0] = 0;
    ui_focus(a, &p->field[0]);
}

/* Every field through settings_set: the first refusal stays in the panel. */
static void save(struct app *a)
{
    struct panel_settings *p = a->settings_panel;
    struct settings s = a->settings;
    struct vkllm_error err = {0};
    for (size_t i = 0; i < settings_n_fields && i < MAX_FIELDS; i++)
        if (settings_set(&s, settings_fields[i].key, p->field[i].text, &err)) {
            snprintf(p->msg, sizeof p->msg, "%s", err.msg);
            ui_focus(a, &p->field[i]);
            return;
        }
    if (app_settings_commit(a, &s)) {
        a->settings_open = false;
        ui_focus(a, NULL);
        if (a->settings_path) app_banner(a, false, "settings saved"); /* else: for this run */
    }
}

static void label(struct app *a, const struct settings_field *f, int x, int y)
{
    char buf[128];
    if (f->kind == SETTINGS_FLOAT)
        snprintf(buf, sizeof buf, "%s (%g to %g)", f->label, f->lo, f->hi);
    else if (f->kind == SETTINGS_INT)
        snprintf(buf, sizeof buf, "%s (%s%.0f to %.0f)", f->label, f->zero ? "0 or " : "", f->lo,
                 f->hi);
    else if (f->kind == SETTINGS_THEME)
        snprintf(buf, sizeof buf, "%s (dark, light)", f->label);
    else
        snprintf(buf, sizeof buf, "%s", f->label);
    fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y, a->th->text);
}

void panel_settings_frame(struct app *a, SDL_Rect r)
{
    struct panel_settings *p = a->settings_panel;
    int pad = app_px(a, 16), gap = app_px(a, 6), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int fh = lh + app_px(a, 10), n = (int)settings_n_fields;
    int w = app_px(a, 680) < r.w - 2 * pad ? app_px(a, 680) : r.w - 2 * pad;
    int h = 2 * pad + fonts_line_height(a->fonts, MDOC_BOLD) + gap + n * (fh + gap) + lh + gap +
            fh + pad;
    if (h > r.h) h = r.h;
    SDL_Rect box = {r.x + (r.w - w) / 2, r.y + (r.h - h) / 2, w, h};
    draw_rect(a, box, a->th->panel);
    draw_outline(a, box, a->th->border);
    int x = box.x + pad, y = box.y + pad;
    fonts_draw(a->fonts, MDOC_BOLD, "Settings", 8, x, y, a->th->text);
    const char *where = a->settings_path ? a->settings_path : "not saved: no directory for it";
    int ww = fonts_width(a->fonts, FONT_SMALL, where, strlen(where));
    SDL_Rect clip = {x + app_px(a, 120), y, box.w - 2 * pad - app_px(a, 120), lh};
    SDL_RenderSetClipRect(a->ren, &clip);
    fonts_draw(a->fonts, FONT_SMALL, where, strlen(where), clip.x + clip.w - ww, y, a->th->dim);
    SDL_RenderSetClipRect(a->ren, NULL);
    y += fonts_line_height(a->fonts, MDOC_BOLD) + gap;

    int label_w = (box.w - 2 * pad) * 2 / 5;
    bool submit = false;
    for (int i = 0; i < n && i < MAX_FIELDS; i++) {
        label(a, &settings_fields[i], x, y + (fh - lh) / 2);
        struct ui_field *f = &p->field[i];
        submit |= ui_field(a, f, (SDL_Rect){x + label_w, y, box.w - 2 * pad - label_w, fh}, "");
        if (f->tabbed) {
            f->tabbed = false;
            ui_focus(a, &p->field[(i + 1) % n]);
        }
        y += fh + gap;
    }
    if (p->msg[0])
        fonts_draw(a->fonts, FONT_SMALL, p->msg, strlen(p->msg), x, y, a->th->error);
    else
        fonts_draw(a->fonts, FONT_SMALL, "Enter saves, Esc closes, Tab moves", 35, x, y,
                   a->th->dim);
    y += lh + gap;
    int bw = ui_button_width(a, "Cancel");
    if (ui_button(a, (SDL_Rect){box.x + box.w - pad - bw, y, bw, fh}, "Cancel", true)) {
        panel_settings_toggle(a);
        return;
    }
    int sw = ui_button_width(a, "Save");
    if (ui_button(a, (SDL_Rect){box.x + box.w - pad - bw - gap - sw, y, sw, fh}, "Save", true))
        submit = true;
    if (submit) save(a);
}
