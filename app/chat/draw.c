/* draw.c: the drawing primitives, the two themes (palettes as data), and the
 * widgets that are hit-tested while they are drawn: the button every panel
 * uses, a checkbox and a slider. */
#include "app.h"

#include <string.h>

const struct theme theme_dark = {
    .bg = {0x1b, 0x1d, 0x22, 255},
    .panel = {0x23, 0x26, 0x2d, 255},
    .border = {0x3a, 0x3f, 0x4a, 255},
    .text = {0xe6, 0xe8, 0xec, 255},
    .dim = {0x93, 0x99, 0xa6, 255},
    .accent = {0x6c, 0xb6, 0xff, 255},
    .user_bg = {0x2a, 0x33, 0x44, 255},
    .code_bg = {0x14, 0x16, 0x1a, 255},
    .code = {0xf2, 0xb8, 0x7e, 255},
    .select = {0x3d, 0x5a, 0x80, 255},
    .error = {0xff, 0x7a, 0x6e, 255},
    .button = {0x33, 0x38, 0x42, 255},
    .button_hot = {0x44, 0x4b, 0x59, 255},
};

const struct theme theme_light = {
    .bg = {0xfa, 0xfa, 0xfb, 255},
    .panel = {0xee, 0xf0, 0xf3, 255},
    .border = {0xc9, 0xce, 0xd6, 255},
    .text = {0x1d, 0x21, 0x27, 255},
    .dim = {0x62, 0x69, 0x75, 255},
    .accent = {0x1f, 0x6f, 0xd1, 255},
    .user_bg = {0xe1, 0xea, 0xf7, 255},
    .code_bg = {0xf0, 0xf1, 0xf4, 255},
    .code = {0xa3, 0x44, 0x0a, 255},
    .select = {0xb6, 0xd3, 0xf5, 255},
    .error = {0xc2, 0x2b, 0x1e, 255},
    .button = {0xe2, 0xe5, 0xea, 255},
    .button_hot = {0xd2, 0xd7, 0xdf, 255},
};

void draw_rect(struct app *a, SDL_Rect r, SDL_Color c)
{
    SDL_SetRenderDrawColor(a->ren, c.r, c.g, c.b, c.a);
    SDL_RenderFillRect(a->ren, &r);
}

void draw_outline(struct app *a, SDL_Rect r, SDL_Color c)
{
    SDL_SetRenderDrawColor(a->ren, c.r, c.g, c.b, c.a);
    SDL_RenderDrawRect(a->ren, &r);
}

bool ui_hover(const struct app *a, SDL_Rect r)
{
    SDL_Point p = {a->ui.mx, a->ui.my};
    return SDL_PointInRect(&p, &r);
}

int ui_button_width(struct app *a, const char *label)
{
    return fonts_width(a->fonts, FONT_SMALL, label, strlen(label)) + app_px(a, 16);
}

bool ui_button(struct app *a, SDL_Rect r, const char *label, bool enabled)
{
    bool hot = enabled && ui_hover(a, r);
    bool hit = hot && a->ui.pressed && !a->ui.taken;
    if (hit) a->ui.taken = true;
    draw_rect(a, r, hot ? a->th->button_hot : a->th->button);
    SDL_Color c = enabled ? a->th->text : a->th->dim;
    size_t n = strlen(label);
    int w = fonts_width(a->fonts, FONT_SMALL, label, n);
    int h = fonts_line_height(a->fonts, FONT_SMALL);
    fonts_draw(a->fonts, FONT_SMALL, label, n, r.x + (r.w - w) / 2, r.y + (r.h - h) / 2, c);
    return hit;
}

bool ui_checkbox(struct app *a, SDL_Rect r, const char *label, bool *on)
{
    bool hit = ui_hover(a, r) && a->ui.pressed && !a->ui.taken;
    if (hit) {
        a->ui.taken = true;
        *on = !*on;
    }
    int lh = fonts_line_height(a->fonts, FONT_SMALL), side = lh - app_px(a, 2);
    SDL_Rect box = {r.x, r.y + (r.h - side) / 2, side, side};
    draw_rect(a, box, a->th->bg);
    draw_outline(a, box, ui_hover(a, r) ? a->th->accent : a->th->border);
    if (*on) {
        int in = app_px(a, 3);
        draw_rect(a, (SDL_Rect){box.x + in, box.y + in, side - 2 * in, side - 2 * in},
                  a->th->accent);
    }
    fonts_draw(a->fonts, FONT_SMALL, label, strlen(label), box.x + side + app_px(a, 6),
               r.y + (r.h - lh) / 2, a->th->text);
    return hit;
}

bool ui_slider(struct app *a, SDL_Rect r, const void *id, float lo, float hi, float *v)
{
    if (ui_hover(a, r) && a->ui.pressed && !a->ui.taken) {
        a->ui.taken = true;
        a->ui.dragging = id;
    }
    bool mine = a->ui.dragging == id, released = false;
    int knob = app_px(a, 10);
    if (mine && r.w > knob) {
        float t = (float)(a->ui.mx - r.x - knob / 2) / (float)(r.w - knob);
        *v = lo + (t < 0 ? 0 : t > 1 ? 1 : t) * (hi - lo);
        if (!a->ui.down) { /* let go: the value stands */
            a->ui.dragging = NULL;
            released = true;
        }
    }
    float t = hi > lo ? (*v - lo) / (hi - lo) : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t; /* a value past the ends shows at the end */
    int track = app_px(a, 4), kx = r.x + (int)(t * (float)(r.w - knob));
    draw_rect(a, (SDL_Rect){r.x, r.y + (r.h - track) / 2, r.w, track}, a->th->border);
    draw_rect(a, (SDL_Rect){r.x, r.y + (r.h - track) / 2, kx - r.x, track}, a->th->accent);
    draw_rect(a, (SDL_Rect){kx, r.y + app_px(a, 2), knob, r.h - app_px(a, 4)},
              mine || ui_hover(a, r) ? a->th->text : a->th->dim);
    return released;
}
