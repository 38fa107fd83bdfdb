/* overlay_help.c: F1, the list of every keyboard shortcut, over the window.
 * The table is the one place the shortcuts are written down for users: a new
 * key in app_key or a panel gets its line here. */
#include "app.h"

#include <string.h>

static const char *const shortcuts[][2] = {
    {"Enter", "send the message"},
    {"Shift+Enter", "a new line in the message"},
    {"Esc", "stop the reply; close a panel; cancel an edit"},
    {"Ctrl+R", "regenerate the last reply"},
    {"Ctrl+N", "new chat"},
    {"Ctrl+B", "saved chats: show or hide the sidebar"},
    {"Up, Down, Enter", "in the sidebar's search: choose a chat, reopen it"},
    {"F2", "rename the chosen chat"},
    {"Ctrl+E", "export the chosen chat as Markdown"},
    {"Shift+Delete", "delete the chosen chat (Enter confirms)"},
    {"Ctrl+,", "settings (Tab: next field, Enter: save)"},
    {"Ctrl+T", "switch between the dark and light themes"},
    {"F1", "this help"},
    {"PgUp, PgDn", "scroll the conversation"},
    {"Ctrl+Home, Ctrl+End", "the start or end of the conversation"},
    {"Ctrl+C", "copy the selection"},
    {"Ctrl+V, Ctrl+Z, Ctrl+Y", "paste, undo, redo in the message"},
    {"drop a .gguf file", "open that model (an adapter: add it to the model)"},
    {"Ctrl+L", "LoRA adapters: on/off, scale, add one"},
    {"Ctrl+O", "open a model file (Models: the models folder's list)"},
    {"Up, Down, Enter", "in the Models panel: choose an entry, open it"},
    {"Backspace", "in the Models panel: the folder above"},
};

void overlay_help_frame(struct app *a, SDL_Rect r)
{
    int n = (int)(sizeof shortcuts / sizeof shortcuts[0]);
    int pad = app_px(a, 16), lh = fonts_line_height(a->fonts, FONT_SMALL) + app_px(a, 4);
    int key_w = 0;
    for (int i = 0; i < n; i++) {
        int w =
            fonts_width(a->fonts, FONT_SMALL | MDOC_BOLD, shortcuts[i][0], strlen(shortcuts[i][0]));
        if (w > key_w) key_w = w;
    }
    int w = app_px(a, 620) < r.w - 2 * pad ? app_px(a, 620) : r.w - 2 * pad;
    int title_h = fonts_line_height(a->fonts, MDOC_BOLD) + app_px(a, 8);
    int h = 2 * pad + title_h + n * lh + lh;
    if (h > r.h) h = r.h;
    SDL_Rect box = {r.x + (r.w - w) / 2, r.y + (r.h - h) / 2, w, h};
    draw_rect(a, box, a->th->panel);
    draw_outline(a, box, a->th->border);
    SDL_RenderSetClipRect(a->ren, &box);
    int x = box.x + pad, y = box.y + pad;
    fonts_draw(a->fonts, MDOC_BOLD, "Keyboard shortcuts", 18, x, y, a->th->text);
    y += title_h;
    for (int i = 0; i < n; i++, y += lh) {
        fonts_draw(a->fonts, FONT_SMALL | MDOC_BOLD, shortcuts[i][0], strlen(shortcuts[i][0]), x, y,
                   a->th->accent);
        fonts_draw(a->fonts, FONT_SMALL, shortcuts[i][1], strlen(shortcuts[i][1]), x + key_w + pad,
                   y, a->th->text);
    }
    fonts_draw(a->fonts, FONT_SMALL, "F1 or Esc closes this", 21, x, y, a->th->dim);
    SDL_RenderSetClipRect(a->ren, NULL);
    /* a click anywhere closes it too */
    if (a->ui.pressed && !a->ui.taken) {
        a->ui.taken = true;
        a->help_open = false;
    }
}
