/* input_box.c: the message editor under the conversation: multi-line text
 * (Enter sends, Shift+Enter breaks the line), cursor keys and selection,
 * clipboard, undo and redo, and IME composition (SDL_TEXTEDITING) shown at
 * the cursor. Wrapping and hit tests are text_layout's, on a one-message
 * view of the text as plain (MDOC_PLAIN). */
#include "app.h"

#include <stdlib.h>
#include <string.h>

#define UNDO_STEPS 64
#define MAX_LINES  8 /* shown before the box scrolls */

struct snapshot {
    char *text;
    size_t len, cursor;
};

enum edit { EDIT_OTHER, EDIT_TYPE };

struct input_box {
    char *text; /* UTF-8, NUL-terminated */
    size_t len, cap;
    size_t cursor, anchor; /* bytes; a selection when they differ */
    char compose[SDL_TEXTEDITINGEVENT_TEXT_SIZE];
    tl_view *tl;
    struct tl_params par;
    struct snapshot undo[UNDO_STEPS], redo[UNDO_STEPS];
    int n_undo, n_redo;
    enum edit last_edit;
    int scroll; /* pixels of the text above the box */
    int tx, ty; /* where the text's origin was drawn (for the mouse) */
    bool selecting;
};

int input_box_create(struct app *a, struct input_box **out, struct vkllm_error *err)
{
    struct input_box *b = calloc(1, sizeof *b);
    if (!b || !(b->text = calloc(1, 64))) {
        free(b);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    }
    b->cap = 64;
    struct tl_measure m = {fonts_width_cb, fonts_line_height_cb, a->fonts};
    b->par.width = 100;
    int rc = tl_view_create(&m, &b->par, &b->tl, err);
    if (rc) {
        free(b->text);
        free(b);
        return rc;
    }
    *out = b;
    return VKLLM_OK;
}

static void snapshots_free(struct snapshot *s, int *n)
{
    for (int i = 0; i < *n; i++)
        free(s[i].text);
    *n = 0;
}

void input_box_destroy(struct input_box *b)
{
    if (!b) return;
    snapshots_free(b->undo, &b->n_undo);
    snapshots_free(b->redo, &b->n_redo);
    tl_view_destroy(b->tl);
    free(b->text);
    free(b);
}

const char *input_box_text(const struct input_box *b, size_t *len)
{
    *len = b->len;
    return b->text;
}

void input_box_rescale(struct app *a)
{
    a->input->par.width = 0;
    tl_view_set_params(a->input->tl, &a->input->par);
}

/* ---- editing */

static bool reserve(struct input_box *b, size_t n)
{
    if (n + 1 <= b->cap) return true;
    size_t cap = (n + 1) * 2;
    char *p = realloc(b->text, cap);
    if (!p) return false;
    b->text = p;
    b->cap = cap;
    return true;
}

static void replace(struct input_box *b, size_t lo, size_t hi, const char *s, size_t n)
{
    if (!reserve(b, b->len - (hi - lo) + n)) return;
    memmove(b->text + lo + n, b->text + hi, b->len - hi + 1);
    memcpy(b->text + lo, s, n);
    b->len = b->len - (hi - lo) + n;
    b->cursor = b->anchor = lo + n;
}

static void sel_range(const struct input_box *b, size_t *lo, size_t *hi)
{
    *lo = b->cursor < b->anchor ? b->cursor : b->anchor;
    *hi = b->cursor < b->anchor ? b->anchor : b->cursor;
}

static bool snapshot_take(struct input_box *b, struct snapshot *s)
{
    s->text = malloc(b->len + 1);
    if (!s->text) return false;
    memcpy(s->text, b->text, b->len + 1);
    s->len = b->len;
    s->cursor = b->cursor;
    return true;
}

static void push(struct snapshot *stack, int *n, struct snapshot s)
{
    if (*n == UNDO_STEPS) { /* the oldest step goes */
        free(stack[0].text);
        memmove(stack, stack + 1, (UNDO_STEPS - 1) * sizeof *stack);
        (*n)--;
    }
    stack[(*n)++] = s;
}

/* Before a change: one undo step per run of typing, one per other edit. */
static void remember(struct input_box *b, enum edit kind)
{
    if (kind == EDIT_TYPE && b->last_edit == EDIT_TYPE) return;
    b->last_edit = kind;
    struct snapshot s;
    if (!snapshot_take(b, &s)) return;
    push(b->undo, &b->n_undo, s);
    snapshots_free(b->redo, &b->n_redo);
}

static void restore(struct input_box *b, struct snapshot *from, int *n_from, struct snapshot *to,
                    int *n_to)
{
    if (!*n_from) return;
    struct snapshot now;
    if (!snapshot_take(b, &now)) return;
    push(to, n_to, now);
    struct snapshot s = from[--*n_from];
    free(b->text);
    b->text = s.text;
    b->len = s.len;
    b->cap = s.len + 1;
    b->cursor = b->anchor = s.cursor;
    b->last_edit = EDIT_OTHER;
}

static void insert(struct input_box *b, const char *s, size_t n)
{
    size_t lo, hi;
    sel_range(b, &lo, &hi);
    replace(b, lo, hi, s, n);
}

void input_box_set(struct input_box *b, const char *text, size_t len)
{
    remember(b, EDIT_OTHER);
    b->cursor = 0;
    b->anchor = b->len;
    insert(b, text, len);
}

static size_t prev_char(const struct input_box *b, size_t at)
{
    if (!at) return 0;
    do
        at--;
    while (at && ((unsigned char)b->text[at] & 0xC0) == 0x80);
    return at;
}

static size_t next_char(const struct input_box *b, size_t at)
{
    if (at >= b->len) return b->len;
    do
        at++;
    while (at < b->len && ((unsigned char)b->text[at] & 0xC0) == 0x80);
    return at;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t';
}

static size_t prev_word(const struct input_box *b, size_t at)
{
    while (at && is_space(b->text[at - 1]))
        at--;
    while (at && !is_space(b->text[at - 1]))
        at--;
    return at;
}

static size_t next_word(const struct input_box *b, size_t at)
{
    while (at < b->len && is_space(b->text[at]))
        at++;
    while (at < b->len && !is_space(b->text[at]))
        at++;
    return at;
}

/* ---- geometry, through the layout */

static const struct tl_message *laid(const struct input_box *b)
{
    return tl_view_count(b->tl) ? tl_view_message(b->tl, 0) : NULL;
}

/* Offset after the COUNT-th newline from FROM (or the end). */
static size_t after_newlines(const struct input_box *b, size_t from, int count)
{
    while (count > 0 && from < b->len)
        if (b->text[from++] == '\n') count--;
    return from;
}

/* Where offset OFF is drawn, relative to the text's origin. */
static void offset_xy(struct app *a, const struct input_box *b, size_t off, int *x, int *y)
{
    const struct tl_message *m = laid(b);
    int lh = fonts_line_height(a->fonts, 0);
    size_t prev_end = 0;
    int prev_x = 0, prev_y = -1;
    for (size_t li = 0; m && li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        for (uint32_t k = 0; k < l->n_runs; k++) {
            const struct tl_run *r = &m->runs[l->run + k];
            if (r->src <= off && off < r->src_end) {
                *x = tl_view_run_x(b->tl, m, r, off);
                *y = l->y;
                return;
            }
            if (r->src_end <= off) {
                prev_end = r->src_end;
                prev_x = tl_view_run_x(b->tl, m, r, r->src_end);
                prev_y = l->y;
            }
        }
    }
    /* after the last run before OFF: on its line, or as many lines below as
     * there are newlines between (empty lines have no runs) */
    int nl = 0;
    for (size_t i = prev_end; i < off; i++)
        nl += b->text[i] == '\n';
    *x = nl ? 0 : prev_x;
    *y = prev_y < 0 ? nl * lh : prev_y + nl * lh;
}

/* The offset nearest to (X, Y) of the text. */
static size_t point_offset(struct app *a, const struct input_box *b, int x, int y)
{
    const struct tl_message *m = laid(b);
    if (!m || y < 0) return 0;
    if (y >= m->h) return b->len;
    size_t last_runs = SIZE_MAX; /* the last line with runs above Y */
    for (size_t li = 0; li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        if (y < l->y + l->h) {
            if (l->n_runs) {
                struct tl_pos p;
                tl_view_hit(b->tl, x, y, &p);
                return p.offset;
            }
            /* an empty line: after as many newlines as lines since text */
            if (last_runs == SIZE_MAX) return after_newlines(b, 0, (int)li);
            const struct tl_line *pl = &m->lines[last_runs];
            return after_newlines(b, m->runs[pl->run + pl->n_runs - 1].src_end,
                                  (int)(li - last_runs));
        }
        if (l->n_runs) last_runs = li;
    }
    (void)a;
    return b->len;
}

/* The start and end of the line holding the cursor. */
static void line_bounds(struct app *a, const struct input_box *b, size_t *lo, size_t *hi)
{
    int x, y;
    offset_xy(a, b, b->cursor, &x, &y);
    *lo = *hi = b->cursor;
    const struct tl_message *m = laid(b);
    for (size_t li = 0; m && li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        if (l->y != y || !l->n_runs) continue;
        *lo = m->runs[l->run].src;
        *hi = m->runs[l->run + l->n_runs - 1].src_end;
        while (*hi > *lo && (b->text[*hi - 1] == ' ' || b->text[*hi - 1] == '\n'))
            (*hi)--;
    }
}

static void lay_out(struct app *a, int text_w)
{
    struct input_box *b = a->input;
    struct tl_params par = {.width = text_w, .indent = 0, .block_gap = 0, .message_gap = 0};
    if (memcmp(&par, &b->par, sizeof par)) {
        b->par = par;
        tl_view_set_params(b->tl, &par);
    }
    struct vkllm_error err;
    if (tl_view_set(b->tl, 0, b->text, b->len, MDOC_PLAIN, &err))
        app_banner(a, true, "%s", err.msg);
}

static int button_w(struct app *a)
{
    int s = ui_button_width(a, "Send"), t = ui_button_width(a, "Stop");
    return (s > t ? s : t) + app_px(a, 8);
}

int input_box_height(struct app *a, int w)
{
    int pad = app_px(a, 10), lh = fonts_line_height(a->fonts, 0);
    lay_out(a, w - 3 * pad - button_w(a));
    const struct tl_message *m = laid(a->input);
    int h = m ? m->h : 0;
    if (a->input->len && a->input->text[a->input->len - 1] == '\n')
        h += lh; /* the empty last line */
    if (h < lh) h = lh;
    if (h > MAX_LINES * lh) h = MAX_LINES * lh;
    return h + 2 * pad;
}

/* ---- events */

static void copy_selection(struct input_box *b)
{
    size_t lo, hi;
    sel_range(b, &lo, &hi);
    if (lo == hi) return;
    char c = b->text[hi];
    b->text[hi] = 0;
    SDL_SetClipboardText(b->text + lo);
    b->text[hi] = c;
}

static void move(struct input_box *b, size_t to, bool extend)
{
    b->cursor = to;
    if (!extend) b->anchor = to;
    b->last_edit = EDIT_OTHER;
}

static bool key(struct app *a, const SDL_KeyboardEvent *k)
{
    struct input_box *b = a->input;
    bool shift = k->keysym.mod & KMOD_SHIFT, ctrl = k->keysym.mod & KMOD_CTRL;
    size_t lo, hi;
    sel_range(b, &lo, &hi);
    int x, y, lh = fonts_line_height(a->fonts, 0);
    switch (k->keysym.sym) {
    case SDLK_RETURN:
    case SDLK_KP_ENTER:
        if (shift) {
            remember(b, EDIT_OTHER);
            insert(b, "\n", 1);
        } else {
            app_submit(a);
        }
        return true;
    case SDLK_BACKSPACE:
    case SDLK_DELETE:
        remember(b, EDIT_OTHER);
        if (lo == hi && k->keysym.sym == SDLK_BACKSPACE)
            lo = ctrl ? prev_word(b, lo) : prev_char(b, lo);
        else if (lo == hi)
            hi = ctrl ? next_word(b, hi) : next_char(b, hi);
        replace(b, lo, hi, "", 0);
        return true;
    case SDLK_LEFT:
        move(b,
             !shift && lo != hi ? lo
             : ctrl             ? prev_word(b, b->cursor)
                                : prev_char(b, b->cursor),
             shift);
        return true;
    case SDLK_RIGHT:
        move(b,
             !shift && lo != hi ? hi
             : ctrl             ? next_word(b, b->cursor)
                                : next_char(b, b->cursor),
             shift);
        return true;
    case SDLK_UP:
    case SDLK_DOWN:
        offset_xy(a, b, b->cursor, &x, &y);
        y += k->keysym.sym == SDLK_UP ? -lh / 2 : lh + lh / 2;
        move(b, point_offset(a, b, x, y), shift);
        return true;
    case SDLK_HOME:
    case SDLK_END:
        line_bounds(a, b, &lo, &hi);
        move(b, k->keysym.sym == SDLK_HOME ? lo : hi, shift);
        return true;
    default: break;
    }
    if (!ctrl) return false;
    switch (k->keysym.sym) {
    case SDLK_a:
        b->anchor = 0;
        b->cursor = b->len;
        return true;
    case SDLK_c: copy_selection(b); return true;
    case SDLK_x:
        copy_selection(b);
        remember(b, EDIT_OTHER);
        replace(b, lo, hi, "", 0);
        return true;
    case SDLK_v: {
        char *clip = SDL_GetClipboardText();
        if (clip && *clip) {
            remember(b, EDIT_OTHER);
            size_t n = 0; /* without carriage returns */
            for (size_t i = 0; clip[i]; i++)
                if (clip[i] != '\r') clip[n++] = clip[i];
            insert(b, clip, n);
        }
        SDL_free(clip);
        return true;
    }
    case SDLK_z:
        if (shift)
            restore(b, b->redo, &b->n_redo, b->undo, &b->n_undo);
        else
            restore(b, b->undo, &b->n_undo, b->redo, &b->n_redo);
        return true;
    case SDLK_y: restore(b, b->redo, &b->n_redo, b->undo, &b->n_undo); return true;
    default: return false;
    }
}

bool input_box_event(struct app *a, const SDL_Event *e)
{
    struct input_box *b = a->input;
    switch (e->type) {
    case SDL_TEXTINPUT:
        remember(b, strcmp(e->text.text, " ") ? EDIT_TYPE : EDIT_OTHER);
        insert(b, e->text.text, strlen(e->text.text));
        b->compose[0] = 0;
        return true;
    case SDL_TEXTEDITING: snprintf(b->compose, sizeof b->compose, "%s", e->edit.text); return true;
    case SDL_KEYDOWN: return key(a, &e->key);
    default: return false;
    }
}

/* ---- drawing */

void input_box_frame(struct app *a, SDL_Rect r)
{
    struct input_box *b = a->input;
    int pad = app_px(a, 10), lh = fonts_line_height(a->fonts, 0), bw = button_w(a);
    lay_out(a, r.w - 3 * pad - bw);
    SDL_Rect box = {r.x + pad, r.y + pad / 2, r.w - 2 * pad, r.h - pad};
    draw_rect(a, box, a->th->panel);
    draw_outline(a, box, a->editing >= 0 ? a->th->accent : a->th->border);

    /* Send, or Stop while a reply is written; Cancel while editing */
    pthread_mutex_lock(&a->lock);
    enum worker_phase phase = worker_status(a->worker)->phase;
    bool busy = worker_busy(a->worker) && phase != WORKER_LOADING && phase != WORKER_LOADING_LORA;
    pthread_mutex_unlock(&a->lock);
    int bh = lh + app_px(a, 8);
    SDL_Rect btn = {box.x + box.w - bw - pad / 2, box.y + box.h - bh - pad / 2, bw, bh};
    if (busy ? ui_button(a, btn, "Stop", true) : ui_button(a, btn, "Send", b->len > 0))
        busy ? app_stop(a) : (void)app_submit(a);
    if (a->editing >= 0 && ui_button(a, (SDL_Rect){btn.x, btn.y - bh - 4, bw, bh}, "Cancel", true))
        app_edit_cancel(a);

    /* keep the cursor in view */
    SDL_Rect text = {box.x + pad, box.y + pad / 2, box.w - 3 * pad / 2 - bw, box.h - pad};
    int cx, cy;
    offset_xy(a, b, b->cursor, &cx, &cy);
    if (cy < b->scroll) b->scroll = cy;
    if (cy + lh > b->scroll + text.h) b->scroll = cy + lh - text.h;
    b->tx = text.x;
    b->ty = text.y - b->scroll;

    /* the mouse places the cursor and selects */
    int mx = a->ui.mx - b->tx, my = a->ui.my - b->ty;
    if (a->ui.pressed && !a->ui.taken && ui_hover(a, box)) {
        a->ui.taken = true;
        b->selecting = true;
        move(b, point_offset(a, b, mx, my), false);
        if (a->ui.clicks == 2) { /* a word */
            b->anchor = prev_word(b, b->cursor < b->len ? next_char(b, b->cursor) : b->cursor);
            b->cursor = next_word(b, b->anchor);
        }
    } else if (b->selecting && a->ui.down) {
        b->cursor = point_offset(a, b, mx, my);
    }
    if (!a->ui.down) b->selecting = false;

    SDL_RenderSetClipRect(a->ren, &text);
    const struct tl_message *m = laid(b);
    size_t lo, hi;
    sel_range(b, &lo, &hi);
    for (size_t li = 0; m && li < m->n_lines; li++) {
        const struct tl_line *l = &m->lines[li];
        for (uint32_t k = 0; k < l->n_runs; k++) {
            const struct tl_run *run = &m->runs[l->run + k];
            size_t s0 = lo > run->src ? lo : run->src, s1 = hi < run->src_end ? hi : run->src_end;
            if (s0 < s1) {
                int x0 = tl_view_run_x(b->tl, m, run, s0), x1 = tl_view_run_x(b->tl, m, run, s1);
                int xa = x0 < x1 ? x0 : x1, xb = x0 < x1 ? x1 : x0;
                draw_rect(a, (SDL_Rect){b->tx + xa, b->ty + l->y, xb - xa, l->h}, a->th->select);
            }
            size_t len;
            const char *t = tl_run_text(m, run, &len);
            if (run->rtl)
                fonts_draw_rtl(a->fonts, run->style, t, len, b->tx + run->x, run->w, b->ty + l->y,
                               a->th->text);
            else
                fonts_draw(a->fonts, run->style, t, len, b->tx + run->x, b->ty + l->y, a->th->text);
        }
    }
    if (!b->len && !b->compose[0]) {
        const char *hint = a->editing >= 0 ? "Edit the message" : "Message (Shift+Enter: new line)";
        fonts_draw(a->fonts, 0, hint, strlen(hint), b->tx, b->ty, a->th->dim);
    }
    /* the IME's composition at the cursor, underlined, then the cursor */
    int x = b->tx + cx, y = b->ty + cy;
    if (b->compose[0]) {
        int w = fonts_draw(a->fonts, 0, b->compose, strlen(b->compose), x, y, a->th->accent);
        draw_rect(a, (SDL_Rect){x, y + lh - 2, w, 1}, a->th->accent);
        x += w;
    }
    draw_rect(a, (SDL_Rect){x, y, app_px(a, 2), lh}, a->th->accent);
    SDL_RenderSetClipRect(a->ren, NULL);
    SDL_Rect ime = {(int)(x / a->px_ratio), (int)(y / a->px_ratio), 1, (int)(lh / a->px_ratio)};
    SDL_SetTextInputRect(&ime);
}
