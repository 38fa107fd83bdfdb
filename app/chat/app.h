/* app.h: what the window's files share: the application state, this frame's
 * mouse input for the immediate-mode widgets, and each panel's entry points.
 *
 * Every frame main.c polls SDL's events (keys go to app_key, then to the
 * input box), runs a step of the --script if there is one, and draws the
 * panels top to bottom: top_bar, view_chat, input_box, status_bar. A panel
 * reads the mouse from app.ui while it draws, so a widget's hit test and its
 * drawing are one call (ui_button). The actions a button, a key or the
 * script triggers (send, stop, regenerate, edit, switch, new chat, load) are
 * the app_* functions of app_state.c, whichever way they came.
 *
 * Threads: the history and the worker's status are shared with the worker
 * under app.lock; the UI takes it for short copies and layout, never across a
 * GPU call. */
#ifndef VKLLM_CHAT_APP_H
#define VKLLM_CHAT_APP_H

#include "font.h"
#include "history.h"
#include "text_layout.h"
#include "worker.h"

#include <SDL.h>
#include <pthread.h>
#include <stdbool.h>

struct theme {
    SDL_Color bg, panel, border, text, dim, accent, user_bg, code_bg, select, error, button,
        button_hot;
};
extern const struct theme theme_dark;

/* The mouse this frame, in drawable pixels. */
struct ui {
    int mx, my;
    bool down;    /* the left button is held */
    bool pressed; /* it went down this frame */
    bool taken;   /* a widget took this frame's press */
    int clicks;   /* 1, 2 (double click) for the press */
    float wheel;  /* lines to scroll this frame, + up */
    bool wheel_taken;
};

struct chat_view;
struct input_box;
struct script;

struct app_options {
    const char *model;  /* -m */
    const char *script; /* --script */
    int width, height;  /* --size, in screen coordinates */
    struct worker_params worker;
};

struct app {
    struct app_options opt;
    SDL_Window *win;
    SDL_Renderer *ren;
    int w, h;       /* drawable size, pixels */
    float px_ratio; /* drawable pixels per window coordinate (HiDPI backends) */
    float scale;    /* UI scale: the display's DPI / 96, or px_ratio */
    fonts *fonts;
    const struct theme *th;
    struct ui ui;

    pthread_mutex_t lock; /* guards hist and the worker's status */
    history *hist;
    struct worker *worker;

    struct chat_view *view;
    struct input_box *input;
    struct script *script;
    int editing;      /* path index of the user message being edited; -1: none */
    char banner[512]; /* an error or note shown above the input */
    bool banner_error;
    double banner_until;          /* ms (app_now_ms); 0: until dismissed */
    uint64_t error_seq, note_seq; /* the worker's last ones shown */
    bool quit;
    int status; /* the exit status (a failed script command: 1) */

    /* what --script and the measurements need */
    char *screenshot; /* a PNG to write after this frame's drawing */
    double t_launch, t_first_frame, t_loaded;
    double frame_ms_sum, frame_ms_max;
    unsigned long frames_streaming;
};

double app_now_ms(void);
/* Pixels for N at the UI's scale. */
int app_px(const struct app *a, float n);

/* ---- actions (app_state.c); each shows its own errors in the banner */

void app_banner(struct app *a, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends the input box's text: a new user message, or the edit of message
 * a->editing (a branch); then the reply. False when there was nothing to send
 * or a reply is still running. */
bool app_submit(struct app *a);
void app_stop(struct app *a);
bool app_regenerate(struct app *a);
/* Starts editing user message I of the path: its text goes to the input box. */
bool app_edit_begin(struct app *a, size_t i);
void app_edit_cancel(struct app *a);
bool app_switch(struct app *a, size_t i, int step);
void app_new_chat(struct app *a);
void app_load_model(struct app *a, const char *path);
/* Writes the conversation tree (history_save's JSON) to PATH. */
int app_dump_state(struct app *a, const char *path, struct vkllm_error *err);
/* The keys that act on the whole window (Esc, Ctrl+N, PgUp, ...); true if taken. */
bool app_key(struct app *a, const SDL_KeyboardEvent *k);
/* Once a frame, before drawing: errors and notes from the worker to the banner. */
void app_poll_worker(struct app *a);

/* ---- drawing primitives and widgets (draw.c) */

void draw_rect(struct app *a, SDL_Rect r, SDL_Color c);
void draw_outline(struct app *a, SDL_Rect r, SDL_Color c);
bool ui_hover(const struct app *a, SDL_Rect r);
/* A button of LABEL in R: true when pressed this frame (and enabled). */
bool ui_button(struct app *a, SDL_Rect r, const char *label, bool enabled);
/* The width a button of LABEL takes. */
int ui_button_width(struct app *a, const char *label);

/* ---- panels, top to bottom */

void top_bar_frame(struct app *a, SDL_Rect r);
int top_bar_height(struct app *a);

int view_chat_create(struct app *a, struct chat_view **out, struct vkllm_error *err);
void view_chat_destroy(struct chat_view *v);
void view_chat_frame(struct app *a, SDL_Rect r);
/* PgUp/PgDn (PAGES -1/+1), Home/End (-2/+2). */
void view_chat_scroll(struct app *a, int pages);
/* Ctrl+C with a selection in the conversation: true if it copied. */
bool view_chat_copy(struct app *a);
/* Forgets per-message state (a new chat: ids start again). */
void view_chat_forget(struct app *a);
/* The fonts changed size: lay out again. */
void view_chat_rescale(struct app *a);

int input_box_create(struct app *a, struct input_box **out, struct vkllm_error *err);
void input_box_destroy(struct input_box *b);
/* The height the box wants for its text at width W. */
int input_box_height(struct app *a, int w);
void input_box_frame(struct app *a, SDL_Rect r);
/* Keys, text and IME composition; true if taken. */
bool input_box_event(struct app *a, const SDL_Event *e);
void input_box_set(struct input_box *b, const char *text, size_t len);
const char *input_box_text(const struct input_box *b, size_t *len);
void input_box_rescale(struct app *a);

void status_bar_frame(struct app *a, SDL_Rect r);
int status_bar_height(struct app *a);
/* The banner above the input box: the last error (until the next action) or
 * note (a few seconds); height 0 when there is none. */
int status_bar_banner_height(struct app *a);
void status_bar_banner(struct app *a, SDL_Rect r);

/* ---- --script (script.c) and screenshots (screenshot.c) */

int script_open(const char *path, struct script **out, struct vkllm_error *err);
void script_free(struct script *s);
/* Runs what the script can run now (one command, or a wait that is over). */
void script_step(struct app *a);
/* Waiting: the window redraws at full rate. */
bool script_waiting(const struct app *a);

int screenshot_save(SDL_Renderer *ren, const char *path, struct vkllm_error *err);

#endif
