/* status_bar.c: the line at the bottom: the model and device, prompt and
 * generation speed, time to first token, and how much of the context the
 * conversation fills, as a gauge; a progress bar while a model loads. */
#include "app.h"

#include <stdio.h>
#include <string.h>

int status_bar_height(struct app *a)
{
    return fonts_line_height(a->fonts, FONT_SMALL) + app_px(a, 12);
}

/* A bar of FRACTION in R, with TEXT beside it. */
static int gauge(struct app *a, SDL_Rect r, float fraction, SDL_Color fill)
{
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    draw_rect(a, r, a->th->bg);
    draw_rect(a, (SDL_Rect){r.x, r.y, (int)(r.w * fraction + 0.5f), r.h}, fill);
    draw_outline(a, r, a->th->border);
    return r.w;
}

void status_bar_frame(struct app *a, SDL_Rect r)
{
    pthread_mutex_lock(&a->lock);
    struct worker_status st = *worker_status(a->worker);
    pthread_mutex_unlock(&a->lock);
    draw_rect(a, r, a->th->panel);
    draw_rect(a, (SDL_Rect){r.x, r.y, r.w, 1}, a->th->border);
    int pad = app_px(a, 10), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int x = r.x + pad, y = r.y + (r.h - lh) / 2;
    char buf[640];
    SDL_Color dim = a->th->dim;

    if (st.phase == WORKER_LOADING) {
        snprintf(buf, sizeof buf, "Loading model… %3.0f%%", st.progress * 100);
        x += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y, a->th->text) + pad;
        gauge(a, (SDL_Rect){x, y + 2, r.w / 3, lh - 4}, st.progress, a->th->accent);
        return;
    }
    if (!st.has_model) {
        const char *s = "No model: drop a .gguf file on the window";
        fonts_draw(a->fonts, FONT_SMALL, s, strlen(s), x, y, dim);
        return;
    }
    snprintf(buf, sizeof buf, "%s · %s", st.model, st.device);
    x += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y, dim) + 2 * pad;
    if (st.n_gen || st.prompt_tps > 0) {
        snprintf(buf, sizeof buf, "prompt %.0f tok/s · generation %.1f tok/s · first token %.0f ms",
                 st.prompt_tps, st.gen_tps, st.ttft_ms);
        x += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y,
                        st.phase == WORKER_GENERATING ? a->th->text : dim) +
             2 * pad;
    }
    /* the context, right-aligned */
    snprintf(buf, sizeof buf, "context %u / %u", st.ctx_used, st.n_ctx);
    int gw = app_px(a, 120), tw = fonts_width(a->fonts, FONT_SMALL, buf, strlen(buf));
    int gx = r.x + r.w - pad - gw;
    if (gx - tw - pad < x) return; /* too narrow: speed first */
    fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), gx - pad - tw, y, dim);
    float used = st.n_ctx ? (float)st.ctx_used / (float)st.n_ctx : 0;
    gauge(a, (SDL_Rect){gx, y + 2, gw, lh - 4}, used, used > 0.9f ? a->th->error : a->th->accent);
}

int status_bar_banner_height(struct app *a)
{
    if (a->banner[0] && a->banner_until && app_now_ms() > a->banner_until) a->banner[0] = 0;
    return a->banner[0] ? fonts_line_height(a->fonts, FONT_SMALL) + app_px(a, 10) : 0;
}

void status_bar_banner(struct app *a, SDL_Rect r)
{
    if (!r.h) return;
    int pad = app_px(a, 24), lh = fonts_line_height(a->fonts, FONT_SMALL);
    SDL_Rect box = {r.x + pad, r.y, r.w - 2 * pad, r.h};
    draw_rect(a, box, a->th->panel);
    draw_rect(a, (SDL_Rect){box.x, box.y, app_px(a, 3), box.h},
              a->banner_error ? a->th->error : a->th->accent);
    SDL_RenderSetClipRect(a->ren, &box);
    fonts_draw(a->fonts, FONT_SMALL, a->banner, strlen(a->banner), box.x + app_px(a, 10),
               box.y + (box.h - lh) / 2, a->banner_error ? a->th->error : a->th->text);
    SDL_RenderSetClipRect(a->ren, NULL);
}
