/* widget_field.c: the one-line text field of the sidebar's search and rename
 * and the settings panel: typed text, the cursor keys, Backspace and Delete,
 * paste, Enter to submit, Esc to give the keyboard back to the input box. */
#include "app.h"

#include <string.h>

void ui_field_set(struct ui_field *f, const char *text)
{
    size_t n = strlen(text);
    if (n >= sizeof f->text) n = sizeof f->text - 1;
    while (n && ((unsigned char)text[n] & 0xc0) == 0x80) /* cut at a character */
        n--;
    memcpy(f->text, text, n);
    f->text[n] = 0;
    f->len = f->cursor = n;
    f->changed = true;
}

void ui_focus(struct app *a, struct ui_field *f)
{
    a->focus = f;
}

static void insert(struct ui_field *f, const char *s, size_t n)
{
    /* one line: a pasted line break becomes a space */
    for (size_t i = 0; i < n && f->len + 1 < sizeof f->text; i++) {
        size_t k = 1;
        while (i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k++;
        if (f->len + k >= sizeof f->text) break;
        memmove(f->text + f->cursor + k, f->text + f->cursor, f->len - f->cursor + 1);
        memcpy(f->text + f->cursor, s + i, k);
        if (k == 1 && (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) f->text[f->cursor] = ' ';
        f->cursor += k;
        f->len += k;
        i += k - 1;
    }
    f->changed = true;
}

static size_t step(const struct ui_field *f, size_t at, int dir)
{
    if (dir < 0 && at) {
        do
            at--;
        while (at && ((unsigned char)f->text[at] & 0xc0) == 0x80);
    } else if (dir > 0 && at < f->len) {
        do
            at++;
        while (at < f->len && ((unsigned char)f->text[at] & 0xc0) == 0x80);
    }
    return at;
}

static void erase(struct ui_field *f, size_t lo, size_t hi)
{
    memmove(f->text + lo, f->text + hi, f->len - hi + 1);
    f->len -= hi - lo;
    f->cursor = lo;
    f->changed = true;
}

bool ui_field_event(struct app *a, const SDL_Event *e)
{
    struct ui_field *f = a->focus;
    if (!f) return false;
    if (e->type == SDL_TEXTINPUT) {
        insert(f, e->text.text, strlen(e->text.text));
        return true;
    }
    if (e->type == SDL_TEXTEDITING) return true;
    if (e->type != SDL_KEYDOWN) return false;
    bool ctrl = e->key.keysym.mod & KMOD_CTRL;
    switch (e->key.keysym.sym) {
    case SDLK_RETURN:
    case SDLK_KP_ENTER: f->submitted = true; return true;
    case SDLK_ESCAPE: ui_focus(a, NULL); return true;
    case SDLK_TAB: f->tabbed = true; return true;
    case SDLK_LEFT: f->cursor = step(f, f->cursor, -1); return true;
    case SDLK_RIGHT: f->cursor = step(f, f->cursor, 1); return true;
    case SDLK_HOME: f->cursor = 0; return true;
    case SDLK_END: f->cursor = f->len; return true;
    case SDLK_BACKSPACE:
        if (ctrl)
            erase(f, 0, f->cursor);
        else if (f->cursor)
            erase(f, step(f, f->cursor, -1), f->cursor);
        return true;
    case SDLK_DELETE:
        if (f->cursor < f->len) erase(f, f->cursor, step(f, f->cursor, 1));
        return true;
    case SDLK_v:
        if (!ctrl) return false;
        if (SDL_HasClipboardText()) {
            char *t = SDL_GetClipboardText();
            if (t) insert(f, t, strlen(t));
            SDL_free(t);
        }
        return true;
    case SDLK_a:
    case SDLK_c:
    case SDLK_x: return ctrl; /* not the input box's: it does not have the keyboard */
    default: return false;
    }
}

bool ui_field(struct app *a, struct ui_field *f, SDL_Rect r, const char *placeholder)
{
    bool focused = a->focus == f;
    if (ui_hover(a, r) && a->ui.pressed && !a->ui.taken) {
        a->ui.taken = true;
        ui_focus(a, f);
        focused = true;
    }
    draw_rect(a, r, a->th->bg);
    draw_outline(a, r, focused ? a->th->accent : a->th->border);
    int pad = app_px(a, 6), lh = fonts_line_height(a->fonts, FONT_SMALL);
    int y = r.y + (r.h - lh) / 2;
    SDL_Rect clip = {r.x + pad, r.y, r.w - 2 * pad, r.h};
    SDL_RenderSetClipRect(a->ren, &clip);
    /* keep the cursor in view: scroll the text left past what does not fit */
    int before = fonts_width(a->fonts, FONT_SMALL, f->text, f->cursor);
    int shift = before > clip.w - pad ? before - (clip.w - pad) : 0;
    if (!f->len && !focused)
        fonts_draw(a->fonts, FONT_SMALL, placeholder, strlen(placeholder), clip.x, y, a->th->dim);
    else
        fonts_draw(a->fonts, FONT_SMALL, f->text, f->len, clip.x - shift, y, a->th->text);
    if (focused)
        draw_rect(a, (SDL_Rect){clip.x - shift + before, y, app_px(a, 1.5f), lh}, a->th->text);
    SDL_RenderSetClipRect(a->ren, NULL);
    bool submitted = f->submitted;
    f->submitted = false;
    return submitted;
}
