/* settings.h: the chat window's settings, their ranges, and their file.
 *
 * One table (settings_fields) describes every setting: its key in the file,
 * its label in the panel, its kind and range. Values go in and out as text,
 * so the panel, the --script and the file share one checked path:
 *
 *   settings_defaults(&s);
 *   settings_path(&path, &err);                  $XDG_CONFIG_HOME/vkllm/settings.json
 *   if (settings_load(path, &s, &err)) show err.msg (s holds what was good)
 *   panel: settings_get(&s, key, buf, cap); the user edits buf;
 *          settings_set(&s, key, buf, &err) refuses a bad value with a message
 *   settings_save_changes(&loaded, &s, path, &err);  the changed keys, atomically
 *
 * No display, no threads: plain data. Errors are negative vkllm statuses with
 * one line in struct vkllm_error. */
#ifndef VKLLM_CHAT_SETTINGS_H
#define VKLLM_CHAT_SETTINGS_H

#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>

enum settings_theme { SETTINGS_DARK, SETTINGS_LIGHT };

struct settings {
    char system_prompt[4096]; /* "": none */
    float temp;               /* 0: greedy */
    int top_k;                /* 0: keep all */
    float top_p, min_p;       /* 1 and 0: keep all */
    float repeat_penalty;     /* 1: off */
    int max_tokens;           /* most tokens a reply; -1: until the model stops */
    int n_ctx;                /* context in tokens; 0: the model's, at most 4096 */
    char device[128];         /* index or part of a name; "": the default */
    char models_dir[1024];    /* where the model list looks; "": none */
    int font_size;            /* body text in pixels at scale 1 */
    int theme;                /* enum settings_theme */
};

enum settings_kind { SETTINGS_TEXT, SETTINGS_FLOAT, SETTINGS_INT, SETTINGS_THEME };

/* One setting: KEY in the file and the script, LABEL in the panel; numbers
 * are refused outside [LO, HI]. */
struct settings_field {
    const char *key, *label;
    enum settings_kind kind;
    double lo, hi;
    bool reload; /* takes effect by loading the model again */
    bool zero;   /* 0 is taken too, below LO (the context: 0 is the model's) */
};

extern const struct settings_field settings_fields[];
extern const size_t settings_n_fields;

void settings_defaults(struct settings *s);
/* The field KEY, or NULL. */
const struct settings_field *settings_field(const char *key);
/* Sets KEY from TEXT ("0.7", "dark", a path). VKLLM_E_INVALID, with the
 * range in ERR, for an unknown key or a value that does not parse or is out
 * of range; S is unchanged then. */
int settings_set(struct settings *s, const char *key, const char *text, struct vkllm_error *err);
/* Whether DEVICE (the device setting: an index or part of a name, as
 * vkllm_context_params.device takes it; "": the default) picks one of the N
 * devices DEVS lists, by the engine's rules. VKLLM_E_NO_DEVICE when it picks
 * none, ERR naming the devices there are (a window has no `vkllm devices`
 * to point to). */
int settings_check_device(const char *device, const struct vkllm_device_info *devs, int n,
                          struct vkllm_error *err);
/* KEY's value as settings_set takes it. */
void settings_get(const struct settings *s, const char *key, char *buf, size_t cap);

/* $XDG_CONFIG_HOME/vkllm/settings.json (if XDG_CONFIG_HOME is an absolute
 * path), else $HOME/.config/vkllm/settings.json; the directory is created
 * (mode 0700) where missing. *OUT is malloc'd. */
int settings_path(char **out, struct vkllm_error *err);
/* Reads PATH into S (which should hold the defaults): a missing file is no
 * error. A file that is not JSON, or holds a value settings_set refuses, is
 * renamed to PATH.corrupt-N (never over another) before anything can replace
 * it: VKLLM_E_FORMAT, ERR says why and where it went, and S keeps the values
 * that were good; VKLLM_E_IO when it could not be moved: then nothing may be
 * saved over it. Unknown keys are ignored (a newer vkllm's). */
int settings_load(const char *path, struct settings *s, struct vkllm_error *err);
/* Writes S to PATH atomically. */
int settings_save(const struct settings *s, const char *path, struct vkllm_error *err);
/* Saves the keys whose values differ between BASE (the settings as loaded
 * or last saved) and S over the file as it is now, so that what another
 * window saved meanwhile stays; *S becomes what was written. Nothing is
 * written when the file as it is now cannot be read or a corrupt one cannot
 * be moved aside (settings_load's error); VKLLM_E_FORMAT, written, when a
 * corrupt one was moved aside (ERR says where). */
int settings_save_changes(const struct settings *base, struct settings *s, const char *path,
                          struct vkllm_error *err);

#endif
