/* app.h: what the window's files share: the application state, this frame's
 * mouse input for the immediate-mode widgets, and each panel's entry points.
 *
 * Every frame main.c polls SDL's events (keys go to app_key, then to the
 * focused text field or the input box), runs a step of the --script if there
 * is one, and draws the panels: the sidebar of saved chats on the left (when
 * open), then top to bottom top_bar, view_chat, input_box, status_bar, and
 * over them the settings panel or the help overlay when one is open. A panel
 * reads the mouse from app.ui while it draws, so a widget's hit test and its
 * drawing are one call (ui_button). The actions a button, a key or the
 * script triggers (send, stop, regenerate, edit, switch, new chat, load) are
 * the app_* functions of app_state.c (the conversation), app_chats.c (saved
 * chats) and app_settings.c, whichever way they came.
 *
 * Threads: the history and the worker's status are shared with the worker
 * under app.lock; the UI takes it for short copies and layout, never across a
 * GPU call. */
#ifndef VKLLM_CHAT_APP_H
#define VKLLM_CHAT_APP_H

#include "font.h"
#include "history.h"
#include "settings.h"
#include "text_layout.h"
#include "worker.h"

#include <SDL.h>
#include <pthread.h>
#include <stdbool.h>

struct theme {
    SDL_Color bg, panel, border, text, dim, accent, user_bg, code_bg, code, select, error, button,
        button_hot;
};
extern const struct theme theme_dark, theme_light;

/* The mouse this frame, in drawable pixels. */
struct ui {
    int mx, my;
    bool down;    /* the left button is held */
    bool pressed; /* it went down this frame */
    bool taken;   /* a widget took this frame's press */
    int clicks;   /* 1, 2 (double click) for the press */
    float wheel;  /* lines to scroll this frame, + up */
    bool wheel_taken;
    const void *dragging; /* the slider the press went to, until the button is up */
};

/* A one-line text field (search, rename, a setting): it has the keyboard
 * when it is app.focus. */
struct ui_field {
    char text[4096];
    size_t len, cursor;
    bool submitted; /* Enter since the last ui_field call */
    bool tabbed;    /* Tab since the owner last cleared this: the next field's turn */
    bool changed;   /* the text changed since the owner last cleared this */
};

struct chat_view;
struct input_box;
struct script;
struct sidebar;
struct panel_settings;
struct saver;
struct panel_models;
struct panel_lora;

#define MAX_OVERRIDES 8

struct app_options {
    const char *model;  /* -m */
    const char *script; /* --script */
    int width, height;  /* --size, in screen coordinates */
    uint64_t seed;
    double ui_scale; /* VKLLM_UI_SCALE; 0: from the display */
    /* settings given on the command line: for this run, never saved */
    const char *overrides[MAX_OVERRIDES][2]; /* key, value */
    int n_overrides;
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
    struct saver *saver; /* writes saved chats off the UI thread (app_chats.c) */

    struct chat_view *view;
    struct input_box *input;
    struct script *script;
    struct sidebar *sidebar;
    struct panel_settings *settings_panel;
    struct panel_models *models_panel;
    struct panel_lora *lora_panel;
    struct ui_field *focus; /* the text field that has the keyboard; NULL: the input box */
    bool sidebar_open, settings_open, help_open;
    bool models_open;         /* the Models panel (panel_models.c) */
    bool lora_open;           /* the LoRA panel (panel_lora.c) */
    struct settings settings; /* as saved */
    bool device_gone;         /* the device setting picks no device: the default is used */
    char *settings_path;      /* NULL: none could be made (then nothing is saved) */
    char *data_dir;           /* saved chats; NULL: none could be made */
    int editing;              /* path index of the user message being edited; -1: none */
    char banner[512];         /* an error or note shown above the input */
    bool banner_error;
    double banner_until;          /* ms (app_now_ms); 0: until dismissed */
    uint64_t error_seq, note_seq; /* the worker's last ones shown */
    uint64_t replies_saved;       /* the worker's replies_done at the last save */
    bool quit;
    int status; /* the exit status (a failed script command: 1) */

    /* the Vulkan devices, listed once at the start: listing them again while
     * the worker holds a context would reload volk's instance functions under
     * it (with validation on, its messenger's destroy became NULL) */
    struct vkllm_device_info devs[16];
    /* how many devs holds; negative: listing failed, devs_error says why */
    int n_devs;
    char devs_error[512];

    /* what --script and the measurements need */
    char *screenshot; /* a PNG to write after this frame's drawing */
    double t_launch, t_first_frame, t_loaded;
    double peak_gbps; /* the device's memory bandwidth (VKLLM_PEAK_GBPS); 0: unknown */
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
/* A file dropped on the window or picked: a LoRA adapter (general.type
 * "adapter" in its header) is added to the model, anything else loaded as
 * the model. */
void app_open_file(struct app *a, const char *path);
/* The loaded model's folder, else home (allocated; NULL: out of memory). */
char *app_model_dir(struct app *a);
/* Queues loading the LoRA adapter at PATH for the model, on at scale 1. */
void app_lora_add(struct app *a, const char *path);
/* Adapter I of the list on or off at SCALE from the next reply, with a
 * note; false when there is no adapter I. */
bool app_lora_set(struct app *a, size_t i, bool on, float scale);
/* Closes the settings panel and the help overlay, else cancels an edit. */
void app_escape(struct app *a);
/* Writes the conversation tree (history_save's JSON) to PATH. */
int app_dump_state(struct app *a, const char *path, struct vkllm_error *err);
/* Writes the worker's status to PATH as JSON: the last prompt's start as the
 * model got it and the messages it left out, the speeds. */
int app_dump_worker(struct app *a, const char *path, struct vkllm_error *err);
/* The keys that act on the whole window (Esc, Ctrl+N, PgUp, ...); true if taken. */
bool app_key(struct app *a, const SDL_KeyboardEvent *k);
/* Once a frame, before drawing: errors and notes from the worker to the banner. */
void app_poll_worker(struct app *a);

/* ---- saved chats (app_chats.c): each refreshes the sidebar's list */

/* Starts the thread that writes saved chats; before the first save. */
int app_saver_start(struct app *a, struct vkllm_error *err);
/* Writes what is queued, then ends the thread. */
void app_saver_stop(struct app *a);
/* Queues saving the conversation (atomically) unless it is empty: serialized
 * now, written by the saver's thread. */
void app_save_chat(struct app *a);
/* Once a frame: a failed write to the banner, a finished one to the sidebar. */
void app_saver_poll(struct app *a);
/* A reply not saved yet, or a save queued or being written (the --script
 * waits for it). */
bool app_saving(struct app *a);
/* Replaces the conversation with saved one ID; the next reply prefills it. */
bool app_reopen(struct app *a, const char *id);
bool app_rename_chat(struct app *a, const char *id, const char *title);
/* Deletes saved chat ID; when it is the open one, a new chat starts. */
bool app_delete_chat(struct app *a, const char *id);
/* Writes saved chat ID's active path as Markdown to PATH. */
bool app_export_chat(struct app *a, const char *id, const char *path);
/* One line for each file the list could not read, once each. */
void app_list_notice(const char *msg, void *user);

/* ---- settings (app_settings.c) */

/* Loads the settings file (a problem goes to the banner) and applies the
 * command line's overrides. Before the worker starts. */
void app_settings_init(struct app *a);
/* What the worker runs with: the settings, the overrides, the seed. */
struct worker_params app_worker_params(const struct app *a);
/* Saves S as the settings and applies what changed (theme, font size; the
 * model is loaded again for the context, device or reply limit). False when
 * they could not be saved (they apply all the same); true, with a note, where
 * there is nowhere to save them (for this run only). */
bool app_settings_commit(struct app *a, const struct settings *s);
/* Sets one setting from text (the --script): refused with a message in the banner. */
bool app_setting(struct app *a, const char *key, const char *value);
/* The body text's size in pixels at the UI's scale. */
int app_font_px(const struct app *a);

/* ---- drawing primitives and widgets (draw.c, widget_field.c) */

void draw_rect(struct app *a, SDL_Rect r, SDL_Color c);
void draw_outline(struct app *a, SDL_Rect r, SDL_Color c);
bool ui_hover(const struct app *a, SDL_Rect r);
/* A button of LABEL in R: true when pressed this frame (and enabled). */
bool ui_button(struct app *a, SDL_Rect r, const char *label, bool enabled);
/* The width a button of LABEL takes. */
int ui_button_width(struct app *a, const char *label);
/* A checkbox in R (a square, filled when *ON) and LABEL after it: a click
 * flips *ON and returns true. */
bool ui_checkbox(struct app *a, SDL_Rect r, const char *label, bool *on);
/* A horizontal slider in R for *V from LO to HI, ID telling it apart from
 * the others: a press on it, then dragging, moves *V (each frame); true
 * once, when the button goes up after that: the time to act on *V. */
bool ui_slider(struct app *a, SDL_Rect r, const void *id, float lo, float hi, float *v);
/* Field F in R (PLACEHOLDER while empty); a click gives it the keyboard.
 * True when Enter was pressed in it since the last call. */
bool ui_field(struct app *a, struct ui_field *f, SDL_Rect r, const char *placeholder);
void ui_field_set(struct ui_field *f, const char *text);
/* Text and editing keys for app.focus; true if taken. Esc gives the
 * keyboard back to the input box. */
bool ui_field_event(struct app *a, const SDL_Event *e);
/* Gives the keyboard to F (NULL: the input box). */
void ui_focus(struct app *a, struct ui_field *f);

/* ---- panels: the sidebar, then top to bottom, then the overlays */

int panel_sidebar_create(struct app *a, struct sidebar **out, struct vkllm_error *err);
void panel_sidebar_destroy(struct sidebar *s);
/* Its width; 0 when closed. */
int panel_sidebar_width(struct app *a);
void panel_sidebar_frame(struct app *a, SDL_Rect r);
/* Ctrl+B: opens it (the list read again, the search box focused) or closes it. */
void panel_sidebar_toggle(struct app *a);
/* Reads the list again (with the search box's query), on the search thread:
 * the list shown changes when panel_sidebar_searching turns false. */
void panel_sidebar_refresh(struct app *a);
/* Types QUERY into the search box and starts searching now (on the search
 * thread; the results show when panel_sidebar_searching turns false). */
void panel_sidebar_search(struct app *a, const char *query);
/* A search or a listing is running (its results not shown yet). */
bool panel_sidebar_searching(struct app *a);
/* Entry I of the list as shown (NULL past the end). */
const struct history_entry *panel_sidebar_entry(struct app *a, size_t i);
size_t panel_sidebar_count(struct app *a);
/* Up, Down, Enter, F2, Delete on the list while its search box has the keyboard. */
bool panel_sidebar_key(struct app *a, const SDL_KeyboardEvent *k);

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

int panel_settings_create(struct app *a, struct panel_settings **out, struct vkllm_error *err);
void panel_settings_destroy(struct panel_settings *p);
/* Ctrl+, and the Settings button: opens it with the current values, or closes it. */
void panel_settings_toggle(struct app *a);
/* Over R (the whole window) while a->settings_open. */
void panel_settings_frame(struct app *a, SDL_Rect r);

/* The Models panel (panel_models.c): the models folder's list and the
 * in-window file browser, over R while a->models_open. */
int panel_models_create(struct app *a, struct panel_models **out, struct vkllm_error *err);
/* Kills a file dialog still open. */
void panel_models_destroy(struct panel_models *p);
/* The Models button: the models folder's .gguf files (the setting). */
void panel_models_open(struct app *a);
/* The in-window browser at folder DIR; false (the reason shown) if unreadable. */
bool panel_models_browse(struct app *a, const char *dir);
/* Ctrl+O and Open…: the desktop's file dialog (file_dialog.h), else the browser. */
void panel_models_open_file(struct app *a);
void panel_models_close(struct app *a);
/* Entry NAME of the open panel, as a click on it: ".." and a folder go
 * there, a file loads. False when there is no such entry. */
bool panel_models_pick(struct app *a, const char *name);
/* Ctrl+O anywhere; the list's keys while the panel is open; true if taken. */
bool panel_models_key(struct app *a, const SDL_KeyboardEvent *k);
/* Once a frame: the file dialog's answer, the end of a load it started. */
void panel_models_poll(struct app *a);
void panel_models_frame(struct app *a, SDL_Rect r);

/* The LoRA panel (panel_lora.c): the model's adapters, each with a checkbox
 * and a scale slider, and Add adapter… (the desktop's file dialog, else a
 * path field), over R while a->lora_open. */
int panel_lora_create(struct app *a, struct panel_lora **out, struct vkllm_error *err);
/* Kills a file dialog still open. */
void panel_lora_destroy(struct panel_lora *p);
/* The LoRA button and Ctrl+L: opens it, or closes it. */
void panel_lora_toggle(struct app *a);
void panel_lora_close(struct app *a);
/* Add adapter…: the desktop's file dialog (polled by panel_lora_poll), else
 * a note pointing at the path field. */
void panel_lora_open_dialog(struct app *a);
/* The path field's text PATH, then Enter: queues adapter PATH. */
void panel_lora_add(struct app *a, const char *path);
/* Once a frame: the file dialog's answer. */
void panel_lora_poll(struct app *a);
void panel_lora_frame(struct app *a, SDL_Rect r);

/* F1: every shortcut, over R while a->help_open. */
void overlay_help_frame(struct app *a, SDL_Rect r);

/* Reads VKLLM_PEAK_GBPS (a bad value goes to the banner). */
void status_bar_init(struct app *a);
void status_bar_frame(struct app *a, SDL_Rect r);
int status_bar_height(struct app *a);
/* The banner above the input box: the last error (until the next action) or
 * note (a few seconds), wrapped to the window's width W; height 0 when there
 * is none. */
int status_bar_banner_height(struct app *a, int w);
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
