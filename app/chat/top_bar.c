/* top_bar.c: the bar above the conversation: its title, under it the model as
 * `vkllm info` describes it (architecture, quantization, parameters, context,
 * device, GPU memory), and the buttons Open… (Ctrl+O: the desktop's file
 * dialog, else the in-window browser), Models (the models folder's list),
 * LoRA (the adapters panel), Chats, Settings, Help, New chat. */
#include "app.h"

#include <stdio.h>
#include <string.h>

int top_bar_height(struct app *a)
{
    return fonts_line_height(a->fonts, MDOC_BOLD) + fonts_line_height(a->fonts, FONT_SMALL) +
           app_px(a, 14);
}

/* N as people write parameter counts: 260K, 7.2B. */
static void count(char *buf, size_t cap, uint64_t n)
{
    if (n >= 1000000000)
        snprintf(buf, cap, "%.1fB", n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, cap, "%.0fM", n / 1e6);
    else
        snprintf(buf, cap, "%.0fK", n / 1e3);
}

/* The model line, or what is happening instead. Lock not held. */
static void model_line(struct app *a, char *buf, size_t cap)
{
    pthread_mutex_lock(&a->lock);
    struct worker_status st = *worker_status(a->worker);
    pthread_mutex_unlock(&a->lock);
    if (!st.has_model) {
        snprintf(buf, cap, "%s",
                 st.phase == WORKER_LOADING ? "loading a model…" : "no model: Ctrl+O opens one");
        return;
    }
    char params[32];
    count(params, sizeof params, st.n_params);
    /* the device last: its name is long, and what is cut off at the right */
    snprintf(buf, cap, "%s · %s · %s · %s params · context %u (trained %u) · %.1f MiB GPU · %s",
             st.model, st.arch, st.quant, params, st.n_ctx, st.n_ctx_train,
             st.gpu_bytes / 1048576.0, st.device);
}

void top_bar_frame(struct app *a, SDL_Rect r)
{
    draw_rect(a, r, a->th->panel);
    draw_rect(a, (SDL_Rect){r.x, r.y + r.h - 1, r.w, 1}, a->th->border);
    int pad = app_px(a, 12), gap = app_px(a, 6);
    int lh = fonts_line_height(a->fonts, MDOC_BOLD), sh = fonts_line_height(a->fonts, FONT_SMALL);
    static const char *const labels[] = {"Open…",    "Models", "LoRA",    "Chats",
                                         "Settings", "Help",   "New chat"};
    /* a narrow bar (800x600 with the sidebar open) gives the title at least
     * half its width: buttons whose action has a shortcut go first, Help
     * (F1), Chats (Ctrl+B), Open… (Ctrl+O), Settings (Ctrl+,), LoRA (Ctrl+L) */
    static const int drop_order[] = {5, 3, 0, 4, 2};
    bool shown[7] = {true, true, true, true, true, true, true};
    int widths = 0;
    for (int i = 0; i < 7; i++)
        widths += ui_button_width(a, labels[i]) + gap;
    for (size_t k = 0; k < sizeof drop_order / sizeof *drop_order && widths > r.w * 9 / 20; k++) {
        shown[drop_order[k]] = false;
        widths -= ui_button_width(a, labels[drop_order[k]]) + gap;
    }
    int bh = lh + app_px(a, 4), bx = r.x + r.w - pad;
    for (int i = 6; i >= 0; i--) {
        if (!shown[i]) continue;
        int bw = ui_button_width(a, labels[i]);
        bx -= bw;
        if (!ui_button(a, (SDL_Rect){bx, r.y + (r.h - bh) / 2, bw, bh}, labels[i], true)) {
            bx -= gap;
            continue;
        }
        if (i == 0)
            panel_models_open_file(a);
        else if (i == 1)
            panel_models_open(a);
        else if (i == 2)
            panel_lora_toggle(a);
        else if (i == 3)
            panel_sidebar_toggle(a);
        else if (i == 4)
            panel_settings_toggle(a);
        else if (i == 5)
            a->help_open = !a->help_open;
        else
            app_new_chat(a);
        bx -= gap;
    }
    char title[128], info[1024];
    pthread_mutex_lock(&a->lock);
    snprintf(title, sizeof title, "%s", history_title(a->hist));
    pthread_mutex_unlock(&a->lock);
    model_line(a, info, sizeof info);
    int y = r.y + (r.h - lh - sh) / 2;
    SDL_Rect clip = {r.x + pad, r.y, bx - pad - (r.x + pad), r.h};
    SDL_RenderSetClipRect(a->ren, &clip);
    fonts_draw(a->fonts, MDOC_BOLD, title, strlen(title), clip.x, y, a->th->text);
    fonts_draw(a->fonts, FONT_SMALL, info, strlen(info), clip.x, y + lh, a->th->dim);
    SDL_RenderSetClipRect(a->ren, NULL);
}
