/* view_chat.c: the conversation panel. Each frame it hands every message of
 * the active path to text_layout (which re-lays only what changed: the
 * streaming reply's last block), then draws the lines in view with their
 * decorations (role labels, code blocks with Copy, the thinking toggle,
 * the "< 1/2 >" switcher), the selection and the scrollbar. */
#include "app.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What the frame needs of a message, copied under the lock. */
struct msg_info {
    uint32_t id;
    enum history_role role;
    uint32_t sib_index, sib_count;
    size_t len;
    bool streaming; /* its reply is being written (or is queued) */
    bool has_stats;
    uint32_t n_tokens;
    double tps;
    enum history_end end;
    char adapters[96]; /* the LoRA adapters it was generated with ("": none), cut */
};

struct chat_view {
    tl_view *tl;
    struct tl_params par;
    struct msg_info *info;
    size_t n, cap;
    uint32_t *collapsed; /* ids whose thinking section is folded */
    size_t n_collapsed, cap_collapsed;
    float scroll, target; /* pixels from the top */
    bool stick;           /* follow the end (while a reply streams) */
    bool snap;            /* a conversation was opened: show its end at once, no easing */
    int page;             /* the panel's height, for PgUp/PgDn */
    int max_scroll;
    bool selecting, has_sel;
    struct tl_pos sel_a, sel_b;
    bool dragging_bar;
    int drag_off;
};

int view_chat_create(struct app *a, struct chat_view **out, struct vkllm_error *err)
{
    struct chat_view *v = calloc(1, sizeof *v);
    if (!v) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    struct tl_measure m = {fonts_width_cb, fonts_line_height_cb, a->fonts};
    v->par.width = 100;
    int rc = tl_view_create(&m, &v->par, &v->tl, err);
    if (rc) {
        free(v);
        return rc;
    }
    v->stick = true;
    *out = v;
    return VKLLM_OK;
}

void view_chat_destroy(struct chat_view *v)
{
    if (!v) return;
    tl_view_destroy(v->tl);
    free(v->info);
    free(v->collapsed);
    free(v);
}

void view_chat_forget(struct app *a)
{
    struct chat_view *v = a->view;
    v->n_collapsed = 0;
    v->has_sel = v->selecting = false;
    v->stick = v->snap = true;
    tl_view_truncate(v->tl, 0);
}

void view_chat_rescale(struct app *a)
{
    a->view->par.width = 0; /* differs from anything: set again next frame */
    tl_view_set_params(a->view->tl, &a->view->par);
}

static bool is_collapsed(const struct chat_view *v, uint32_t id)
{
    for (size_t i = 0; i < v->n_collapsed; i++)
        if (v->collapsed[i] == id) return true;
    return false;
}

static void toggle_collapsed(struct chat_view *v, uint32_t id)
{
    for (size_t i = 0; i < v->n_collapsed; i++)
        if (v->collapsed[i] == id) {
            v->collapsed[i] = v->collapsed[--v->n_collapsed];
            return;
        }
    if (v->n_collapsed == v->cap_collapsed) {
        size_t cap = v->cap_collapsed ? v->cap_collapsed * 2 : 16;
        uint32_t *p = realloc(v->collapsed, cap * sizeof *p);
        if (!p) return;
        v->collapsed = p;
        v->cap_collapsed = cap;
    }
    v->collapsed[v->n_collapsed++] = id;
}

/* Lays out the active path (lock taken here); false when out of memory. */
static bool sync(struct app *a)
{
    struct chat_view *v = a->view;
    struct vkllm_error err = {0};
    bool ok = true;
    pthread_mutex_lock(&a->lock);
    size_t n = history_count(a->hist);
    if (n > v->cap) {
        struct msg_info *p = realloc(v->info, n * 2 * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&a->lock);
            return false;
        }
        v->info = p;
        v->cap = n * 2;
    }
    size_t i = 0;
    for (; i < n && ok; i++) {
        const struct history_msg *m = history_at(a->hist, i);
        struct msg_info *in = &v->info[i];
        *in = (struct msg_info){.id = m->id, .role = m->role, .len = m->len};
        history_siblings(a->hist, i, &in->sib_index, &in->sib_count);
        /* being written, or queued (a load may come first) */
        in->streaming =
            m->role == HISTORY_ASSISTANT && !m->has_stats && worker_replying(a->worker, m->id);
        if (m->has_stats) {
            in->has_stats = true;
            in->n_tokens = m->stats.n_tokens;
            in->tps = m->stats.tokens_per_s;
            in->end = m->stats.end;
            if (m->adapters) {
                size_t k = (size_t)snprintf(in->adapters, sizeof in->adapters, "%s", m->adapters);
                if (k >= sizeof in->adapters) { /* cut: not inside a character */
                    k = sizeof in->adapters - 1;
                    while (k && ((unsigned char)in->adapters[k] & 0xc0) == 0x80)
                        k--;
                    in->adapters[k] = 0;
                }
            }
        }
        unsigned flags = m->role == HISTORY_USER ? MDOC_PLAIN : 0;
        if (in->streaming) flags |= MDOC_STREAMING;
        if (is_collapsed(v, m->id)) flags |= TL_THINK_COLLAPSED;
        ok = !tl_view_set(v->tl, i, m->text, m->len, flags, &err);
    }
    v->n = i;
    tl_view_truncate(v->tl, i);
    pthread_mutex_unlock(&a->lock);
    if (!ok) app_banner(a, true, "%s", err.msg);
    return ok;
}

static SDL_Color run_colour(const struct app *a, const struct tl_run *r)
{
    if (r->span == TL_MARKER || (r->style & MDOC_THINK)) return a->th->dim;
    if (r->style & MDOC_LINK) return a->th->accent;
    if (r->style & MDOC_CODE) return a->th->code;
    return a->th->text;
}

static void copy_text(const char *text, size_t len)
{
    char *z = malloc(len + 1);
    if (!z) return;
    memcpy(z, text, len);
    z[len] = 0;
    SDL_SetClipboardText(z);
    free(z);
}

/* The label row above message I: role, stats, switcher, buttons. */
static void draw_label(struct app *a, size_t i, int x, int y, int w)
{
    struct chat_view *v = a->view;
    const struct msg_info *in = &v->info[i];
    int lh = fonts_line_height(a->fonts, FONT_SMALL), bh = lh + app_px(a, 4);
    const char *role = in->role == HISTORY_USER     ? "You"
                       : in->role == HISTORY_SYSTEM ? "System"
                                                    : "Assistant";
    int cx = x + fonts_draw(a->fonts, FONT_SMALL | MDOC_BOLD, role, strlen(role), x, y + 2,
                            a->th->accent);
    char buf[256];
    if (in->sib_count > 1) { /* < 1/2 > */
        cx += app_px(a, 10);
        int bw = ui_button_width(a, "<");
        if (ui_button(a, (SDL_Rect){cx, y, bw, bh}, "<", in->sib_index > 1)) app_switch(a, i, -1);
        cx += bw + app_px(a, 4);
        snprintf(buf, sizeof buf, "%u/%u", in->sib_index, in->sib_count);
        cx += fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), cx, y + 2, a->th->text);
        cx += app_px(a, 4);
        if (ui_button(a, (SDL_Rect){cx, y, bw, bh}, ">", in->sib_index < in->sib_count))
            app_switch(a, i, +1);
        cx += bw;
    }
    if (in->has_stats) {
        const char *end = in->end == HISTORY_END_USER     ? " · stopped"
                          : in->end == HISTORY_END_LENGTH ? " · length limit"
                                                          : "";
        snprintf(buf, sizeof buf, "  %u tokens · %.1f tok/s%s%s%s", in->n_tokens, in->tps, end,
                 in->adapters[0] ? " · LoRA " : "", in->adapters);
        fonts_draw(a->fonts, FONT_SMALL, buf, strlen(buf), cx, y + 2, a->th->dim);
    }
    /* buttons from the right edge */
    int rx = x + w;
    const char *labels[3];
    int n = 0;
    if (in->role == HISTORY_USER) labels[n++] = "Edit";
    if (in->role == HISTORY_ASSISTANT && i + 1 == v->n && !in->streaming)
        labels[n++] = "Regenerate";
    labels[n++] = "Copy";
    for (int k = 0; k < n; k++) {
        int bw = ui_button_width(a, labels[k]);
        rx -= bw;
        if (ui_button(a, (SDL_Rect){rx, y, bw, bh}, labels[k], true)) {
            if (!strcmp(labels[k], "Edit")) app_edit_begin(a, i);
            if (!strcmp(labels[k], "Regenerate")) app_regenerate(a);
            if (!strcmp(labels[k], "Copy")) {
                size_t len;
                char *t =
                    tl_view_copy(v->tl, (struct tl_pos){i, 0}, (struct tl_pos){i, in->len}, &len);
                if (t) SDL_SetClipboardText(t);
                free(t);
            }
        }
        rx -= app_px(a, 6);
    }
}

/* The background of line L when it is code, reaching a little into the gap
 * above the block's first line and below its last. All of them are drawn
 * before any text: a glyph that hangs below its line (an underscore) would
 * be painted over by the next line's background. */
static void draw_code_bg(struct app *a, const struct tl_message *m, size_t li, int tx, int y, int w)
{
    const struct tl_line *l = &m->lines[li];
    if (m->doc.blocks[l->block].kind != MDOC_B_CODE) return;
    bool first = li == 0 || m->lines[li - 1].block != l->block;
    bool last = li + 1 == m->n_lines || m->lines[li + 1].block != l->block;
    int pad = app_px(a, 6), out = a->view->par.block_gap / 2;
    int top = y - (first ? out : 0), bottom = y + l->h + (last ? out : 0);
    draw_rect(a, (SDL_Rect){tx - pad, top, w + 2 * pad, bottom - top}, a->th->code_bg);
}

/* Decorations of line L (its block's kind) at screen (TX, Y) in a column W wide. */
static void draw_block_line(struct app *a, size_t i, const struct tl_message *m, size_t li, int tx,
                            int y, int w)
{
    const struct tl_line *l = &m->lines[li];
    const struct mdoc_block *b = &m->doc.blocks[l->block];
    bool first = li == 0 || m->lines[li - 1].block != l->block;
    int pad = app_px(a, 6);
    if (b->kind == MDOC_B_CODE) {
        if (first) {
            int bw = ui_button_width(a, "Copy"), bh = fonts_line_height(a->fonts, FONT_SMALL);
            if (ui_button(a, (SDL_Rect){tx + w - bw, y, bw, bh}, "Copy", true))
                copy_text(m->doc.text + b->text, b->len);
        }
    } else if (b->kind == MDOC_B_RULE) {
        draw_rect(a, (SDL_Rect){tx, y + l->h / 2, w, app_px(a, 1) + 1}, a->th->border);
    } else if (b->kind == MDOC_B_THINK) {
        bool folded = is_collapsed(a->view, a->view->info[i].id);
        const char *label = folded ? "▸ Thinking" : "▾ Thinking";
        SDL_Rect hit = {tx, y, fonts_width(a->fonts, 0, label, strlen(label)) + pad, l->h};
        SDL_Color c = ui_hover(a, hit) ? a->th->text : a->th->dim;
        int x = tx + fonts_draw(a->fonts, 0, label, strlen(label), tx, y, c);
        if (b->flags & MDOC_OPEN) fonts_draw(a->fonts, 0, "…", strlen("…"), x, y, c);
        if (ui_hover(a, hit) && a->ui.pressed && !a->ui.taken) {
            a->ui.taken = true;
            toggle_collapsed(a->view, a->view->info[i].id);
        }
    }
    if (b->quote_depth)
        draw_rect(
            a, (SDL_Rect){tx + a->view->par.indent * (b->quote_depth - 1), y, app_px(a, 3), l->h},
            a->th->border);
}

/* The selection, ordered. */
static bool selection(const struct chat_view *v, struct tl_pos *lo, struct tl_pos *hi)
{
    if (!v->has_sel) return false;
    *lo = v->sel_a;
    *hi = v->sel_b;
    if (hi->message < lo->message || (hi->message == lo->message && hi->offset < lo->offset)) {
        *lo = v->sel_b;
        *hi = v->sel_a;
    }
    return true;
}

static void draw_message(struct app *a, size_t i, int tx, int top, int w, int y0, int y1)
{
    struct chat_view *v = a->view;
    const struct tl_message *m = tl_view_message(v->tl, i);
    const struct msg_info *in = &v->info[i];
    int my = top + m->y; /* the message's text, on screen */
    int gap = v->par.message_gap, pad = app_px(a, 10);
    if (in->role == HISTORY_USER)
        draw_rect(a, (SDL_Rect){tx - pad, my - app_px(a, 6), w + 2 * pad, m->h + app_px(a, 12)},
                  a->th->user_bg);
    draw_label(a, i, tx - pad, my - gap + app_px(a, 10), w + 2 * pad);
    struct tl_pos lo, hi;
    bool sel = selection(v, &lo, &hi) && i >= lo.message && i <= hi.message;
    size_t s_lo = sel && i == lo.message ? lo.offset : 0;
    size_t s_hi = sel && i == hi.message ? hi.offset : SIZE_MAX;
    for (size_t li = 0; li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        int y = my + l->y;
        if (y <= y1 && y + l->h >= y0) draw_code_bg(a, m, li, tx, y, w);
    }
    for (size_t li = 0; li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        int y = my + l->y;
        if (y > y1 || y + l->h < y0) continue;
        draw_block_line(a, i, m, li, tx, y, w);
        for (uint32_t k = 0; k < l->n_runs; k++) {
            const struct tl_run *r = &m->runs[l->run + k];
            size_t len;
            const char *t = tl_run_text(m, r, &len);
            int rh = fonts_line_height(a->fonts, r->style), ry = y + l->h - rh;
            if (sel && r->span != TL_MARKER) {
                size_t s0 = s_lo > r->src ? s_lo : r->src,
                       s1 = s_hi < r->src_end ? s_hi : r->src_end;
                if (s0 < s1) {
                    int x0 = tl_view_run_x(v->tl, m, r, s0), x1 = tl_view_run_x(v->tl, m, r, s1);
                    if (x1 < x0) {
                        int t2 = x0;
                        x0 = x1;
                        x1 = t2;
                    }
                    if (x1 == x0) x1 = x0 + r->w; /* not verbatim: the whole run */
                    draw_rect(a, (SDL_Rect){tx + x0, y, x1 - x0, l->h}, a->th->select);
                }
            }
            if (r->style & MDOC_CODE)
                draw_rect(a, (SDL_Rect){tx + r->x - 2, ry, r->w + 4, rh}, a->th->code_bg);
            SDL_Color c = run_colour(a, r);
            if (r->rtl)
                fonts_draw_rtl(a->fonts, r->style, t, len, tx + r->x, r->w, ry, c);
            else
                fonts_draw(a->fonts, r->style, t, len, tx + r->x, ry, c);
            if (r->style & MDOC_STRIKE)
                draw_rect(a, (SDL_Rect){tx + r->x, ry + rh / 2, r->w, 1}, c);
            if (r->style & MDOC_LINK) draw_rect(a, (SDL_Rect){tx + r->x, ry + rh - 2, r->w, 1}, c);
        }
    }
    if (in->streaming) { /* where the next token lands */
        int cx = tx, cy = my, ch = fonts_line_height(a->fonts, 0);
        if (m->n_lines) {
            const struct tl_line *l = &m->lines[m->n_lines - 1];
            const struct tl_run *r = l->n_runs ? &m->runs[l->run + l->n_runs - 1] : NULL;
            cx = tx + (r ? r->x + r->w : 0) + 2;
            cy = my + l->y;
            ch = l->h;
        } else {
            fonts_draw(a->fonts, 0, "…", strlen("…"), tx, my, a->th->dim);
            cx += fonts_width(a->fonts, 0, "…", strlen("…")) + 2;
        }
        draw_rect(a, (SDL_Rect){cx, cy + 2, app_px(a, 7), ch - 4}, a->th->dim);
    }
}

void view_chat_frame(struct app *a, SDL_Rect r)
{
    struct chat_view *v = a->view;
    int bar_w = app_px(a, 10), pad = app_px(a, 24);
    int col = r.w - 2 * pad - bar_w, max_col = app_px(a, 860);
    if (col > max_col) col = max_col;
    if (col < app_px(a, 80)) col = app_px(a, 80);
    int tx = r.x + (r.w - bar_w - col) / 2;
    struct tl_params par = {.width = col,
                            .indent = app_px(a, 22),
                            .block_gap = app_px(a, 8),
                            .message_gap = fonts_line_height(a->fonts, FONT_SMALL) + app_px(a, 26),
                            .cell_gap = app_px(a, 16)};
    if (memcmp(&par, &v->par, sizeof par)) {
        v->par = par;
        tl_view_set_params(v->tl, &par);
    }
    if (!sync(a)) return;

    /* scrolling: follow the end while stuck to it, ease towards the target */
    int content = tl_view_height(v->tl) + app_px(a, 24);
    v->page = r.h;
    v->max_scroll = content > r.h ? content - r.h : 0;
    float line = (float)fonts_line_height(a->fonts, 0);
    if (a->ui.wheel != 0 && !a->ui.wheel_taken && ui_hover(a, r)) {
        a->ui.wheel_taken = true;
        v->target -= a->ui.wheel * 3 * line;
        v->stick = v->target >= v->max_scroll;
    }
    if (v->stick) v->target = (float)v->max_scroll;
    if (v->target > v->max_scroll) v->target = (float)v->max_scroll;
    if (v->target < 0) v->target = 0;
    v->scroll += (v->target - v->scroll) * 0.35f;
    if (fabsf(v->target - v->scroll) < 0.5f || v->snap) v->scroll = v->target;
    v->snap = false;
    int top = r.y - (int)v->scroll;

    SDL_RenderSetClipRect(a->ren, &r);
    if (!v->n) {
        const char *hint = "Type a message below; Enter sends it. Drop a .gguf file here to open "
                           "another model.";
        int w = fonts_width(a->fonts, 0, hint, strlen(hint));
        fonts_draw(a->fonts, 0, hint, strlen(hint), r.x + (r.w - w) / 2, r.y + r.h / 3, a->th->dim);
    }
    size_t first = tl_view_message_at(v->tl, (int)v->scroll);
    for (size_t i = first; i < v->n; i++) {
        const struct tl_message *m = tl_view_message(v->tl, i);
        if (top + m->y - par.message_gap > r.y + r.h) break;
        draw_message(a, i, tx, top, col, r.y, r.y + r.h);
    }

    /* the scrollbar */
    SDL_Rect track = {r.x + r.w - bar_w, r.y, bar_w, r.h};
    if (v->max_scroll > 0) {
        int th = r.h * r.h / content;
        if (th < app_px(a, 24)) th = app_px(a, 24);
        int ty = r.y + (int)((r.h - th) * (v->scroll / v->max_scroll));
        SDL_Rect thumb = {track.x + 2, ty, bar_w - 4, th};
        if (a->ui.pressed && !a->ui.taken && ui_hover(a, track)) {
            a->ui.taken = true;
            if (ui_hover(a, thumb)) {
                v->dragging_bar = true;
                v->drag_off = a->ui.my - ty;
            } else { /* a page towards the click */
                view_chat_scroll(a, a->ui.my < ty ? -1 : 1);
            }
        }
        if (v->dragging_bar && a->ui.down) {
            float f = (float)(a->ui.my - v->drag_off - r.y) / (float)(r.h - th);
            v->target = v->scroll = f * v->max_scroll;
            v->stick = v->target >= v->max_scroll;
        }
        draw_rect(a, thumb, v->dragging_bar || ui_hover(a, track) ? a->th->dim : a->th->border);
    }
    if (!a->ui.down) v->dragging_bar = false;

    /* selecting text: press, drag, release; what the widgets left */
    int vx = a->ui.mx - tx, vy = a->ui.my - top;
    if (a->ui.pressed && !a->ui.taken && ui_hover(a, r) && v->n) {
        a->ui.taken = true;
        v->selecting = tl_view_hit(v->tl, vx, vy, &v->sel_a);
        v->sel_b = v->sel_a;
        v->has_sel = false;
    }
    if (v->selecting && a->ui.down && tl_view_hit(v->tl, vx, vy, &v->sel_b))
        v->has_sel = v->sel_a.message != v->sel_b.message || v->sel_a.offset != v->sel_b.offset;
    if (!a->ui.down) v->selecting = false;
    SDL_RenderSetClipRect(a->ren, NULL);
}

void view_chat_scroll(struct app *a, int pages)
{
    struct chat_view *v = a->view;
    if (pages == -2 || pages == 2) {
        v->target = pages < 0 ? 0 : (float)v->max_scroll;
    } else {
        v->target += pages * v->page * 0.9f;
        if (v->target < 0) v->target = 0;
    }
    v->stick = v->target >= v->max_scroll;
}

bool view_chat_copy(struct app *a)
{
    struct tl_pos lo, hi;
    if (!selection(a->view, &lo, &hi)) return false;
    size_t len;
    char *t = tl_view_copy(a->view->tl, lo, hi, &len);
    if (t) SDL_SetClipboardText(t);
    free(t);
    return t != NULL;
}
