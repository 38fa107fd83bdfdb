/* top_bar.c: the bar above the conversation: its title, and New chat. */
#include "app.h"

#include <stdio.h>
#include <string.h>

int top_bar_height(struct app *a)
{
    return fonts_line_height(a->fonts, MDOC_BOLD) + app_px(a, 16);
}

void top_bar_frame(struct app *a, SDL_Rect r)
{
    draw_rect(a, r, a->th->panel);
    draw_rect(a, (SDL_Rect){r.x, r.y + r.h - 1, r.w, 1}, a->th->border);
    int pad = app_px(a, 12), lh = fonts_line_height(a->fonts, MDOC_BOLD);
    char title[128];
    pthread_mutex_lock(&a->lock);
    snprintf(title, sizeof title, "%s", history_title(a->hist));
    pthread_mutex_unlock(&a->lock);
    int bw = ui_button_width(a, "New chat"), bh = r.h - app_px(a, 10);
    SDL_Rect clip = {r.x + pad, r.y, r.w - 3 * pad - bw, r.h};
    SDL_RenderSetClipRect(a->ren, &clip);
    fonts_draw(a->fonts, MDOC_BOLD, title, strlen(title), clip.x, r.y + (r.h - lh) / 2,
               a->th->text);
    SDL_RenderSetClipRect(a->ren, NULL);
    if (ui_button(a, (SDL_Rect){r.x + r.w - pad - bw, r.y + (r.h - bh) / 2, bw, bh}, "New chat",
                  true))
        app_new_chat(a);
}
