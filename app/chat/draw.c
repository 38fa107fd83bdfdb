/* draw.c: the drawing primitives, the two themes (palettes as data), and the
 * one widget every panel uses (a button that is hit-tested while it is
 * drawn). */
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
