/* status_bar.c: the line at the bottom: the model and device, prompt and
 * generation speed, time to first token, the memory bandwidth decoding
 * achieves (against the device's peak when VKLLM_PEAK_GBPS gives it: Vulkan
 * reports none), and how much of the context the conversation fills, as a
 * gauge; a progress bar while a model loads. */
#include "app.h"
#include "rates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void status_bar_init(struct app *a)
{
    struct vkllm_error err = {0};
    if (rates_peak_gbps(getenv("VKLLM_PEAK_GBPS"), &a->peak_gbps, &err))
        app_banner(a, true, "%s", err.msg);
}

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
        /* past the upload the session and its pipelines are still being
         * made: "100%" there read as if the load had stalled */
        if (st.progress >= 1)
            snprintf(buf, sizeof buf, "Weights uploaded; preparing the model…");
        else
            snprintf(buf, sizeof buf, "Loading model… %3.0f%%", st.progress * 100);
        x += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y, a->th->text) + pad;
        gauge(a, (SDL_Rect){x, y + 2, r.w / 3, lh - 4}, st.progress, a->th->accent);
        return;
    }
    if (st.phase == WORKER_LOADING_LORA) {
        const char *s = "Loading a LoRA adapter…";
        fonts_draw(a->fonts, FONT_SMALL, s, strlen(s), x, y, a->th->text);
        return;
    }
    if (!st.has_model) {
        const char *s = "No model: drop a .gguf file on the window";
        fonts_draw(a->fonts, FONT_SMALL, s, strlen(s), x, y, dim);
        return;
    }
    /* the context at the right edge, the speeds from the left, and the model
     * and device (also in the top bar) between them where there is room */
    char ctx[64];
    snprintf(ctx, sizeof ctx, "context %u / %u", st.ctx_used, st.n_ctx);
    int gw = app_px(a, 100), tw = fonts_width(a->fonts, FONT_SMALL, ctx, strlen(ctx));
    int right = r.x + r.w - pad - gw - pad - tw; /* where the context's text starts */
    if (st.n_gen || st.prompt_tps > 0) {
        int n =
            snprintf(buf, sizeof buf, "prompt %.0f tok/s · gen %.1f tok/s · first token %.0f ms",
                     st.prompt_tps, st.gen_tps, st.ttft_ms);
        if (st.gen_gbps > 0) n += snprintf(buf + n, sizeof buf - n, " · %.2f GB/s", st.gen_gbps);
        if (st.gen_gbps > 0 && a->peak_gbps > 0)
            snprintf(buf + n, sizeof buf - n, " (%.0f%% of %.3g)", 100 * st.gen_gbps / a->peak_gbps,
                     a->peak_gbps); /* %.3g: a peak of 0.5 is not "of 0" */
        x += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y,
                        st.phase == WORKER_GENERATING ? a->th->text : dim) +
             2 * pad;
    }
    if (x > right) right = r.x + r.w; /* too narrow: the speeds first */
    snprintf(buf, sizeof buf, "%s · %s", st.model, st.device);
    if (x + fonts_width(a->fonts, FONT_SMALL, buf, strlen(buf)) + 2 * pad <= right)
        fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), x, y, dim);
    if (right == r.x + r.w) return;
    fonts_draw(a->fonts, FONT_SMALL, ctx, strlen(ctx), right, y, dim);
    float used = st.n_ctx ? (float)st.ctx_used / (float)st.n_ctx : 0;
    gauge(a, (SDL_Rect){r.x + r.w - pad - gw, y + 2, gw, lh - 4}, used,
          used > 0.9f ? a->th->error : a->th->accent);
}

/* The banner's lines: an error with its sizes and advice is longer than a
 * window is wide. Wrapped at blanks, at most BANNER_LINES (the last one
 * clipped), and kept until the text or the width changes: measuring costs a
 * shaping per word. */
#define BANNER_LINES 4
static struct {
    char text[sizeof((struct app *)0)->banner];
    int width, n;
    size_t start[BANNER_LINES], end[BANNER_LINES];
} wrap;

static int banner_text_width(struct app *a, int w)
{
    return w - 2 * app_px(a, 24) - app_px(a, 20);
}

static int banner_wrap(struct app *a, int width)
{
    if (wrap.width == width && !strcmp(wrap.text, a->banner)) return wrap.n;
    snprintf(wrap.text, sizeof wrap.text, "%s", a->banner);
    wrap.width = width;
    wrap.n = 0;
    const char *s = wrap.text;
    size_t len = strlen(s), pos = 0;
    while (pos < len && wrap.n < BANNER_LINES) {
        size_t end = len;
        if (wrap.n + 1 < BANNER_LINES &&
            fonts_width(a->fonts, FONT_SMALL, s + pos, len - pos) > width) {
            /* the last blank before the width; a word wider than the line
             * breaks at the next one */
            size_t fit = 0;
            for (size_t i = pos + 1; i < len; i++) {
                if (s[i] != ' ') continue;
                if (fit && fonts_width(a->fonts, FONT_SMALL, s + pos, i - pos) > width) break;
                fit = i;
            }
            if (fit) end = fit;
        }
        wrap.start[wrap.n] = pos;
        wrap.end[wrap.n++] = end;
        pos = end;
        while (pos < len && s[pos] == ' ')
            pos++;
    }
    return wrap.n;
}

int status_bar_banner_height(struct app *a, int w)
{
    if (a->banner[0] && a->banner_until && app_now_ms() > a->banner_until) a->banner[0] = 0;
    if (!a->banner[0]) return 0;
    int lines = banner_wrap(a, banner_text_width(a, w));
    return lines * fonts_line_height(a->fonts, FONT_SMALL) + app_px(a, 10);
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
    int n = banner_wrap(a, banner_text_width(a, r.w)), y = box.y + (box.h - n * lh) / 2;
    for (int i = 0; i < n; i++, y += lh)
        fonts_draw(a->fonts, FONT_SMALL, wrap.text + wrap.start[i], wrap.end[i] - wrap.start[i],
                   box.x + app_px(a, 10), y, a->banner_error ? a->th->error : a->th->text);
    SDL_RenderSetClipRect(a->ren, NULL);
}
