/* settings.c: the settings table, the checked text path in and out of it,
 * and the JSON file (see settings.h). */
#include "settings.h"

#include "file_read.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1
/* settings are a few kilobytes: a bigger file is not ours */
#define MAX_FILE_BYTES (1 << 20)

const struct settings_field settings_fields[] = {
    {"system_prompt", "System prompt", SETTINGS_TEXT, 0, 0, false, false},
    {"temperature", "Temperature", SETTINGS_FLOAT, 0, 5, false, false},
    {"top_k", "Top-k", SETTINGS_INT, 0, 1000, false, false},
    {"top_p", "Top-p", SETTINGS_FLOAT, 0.01, 1, false, false},
    {"min_p", "Min-p", SETTINGS_FLOAT, 0, 1, false, false},
    {"repeat_penalty", "Repetition penalty", SETTINGS_FLOAT, 0.5, 2, false, false},
    {"max_tokens", "Max reply tokens", SETTINGS_INT, -1, 1 << 20, true, false},
    /* 8 as serve's minimum: fewer tokens than that hold no template's turn
     * (probe 6, M1: a context of 1 was kept and refused every message) */
    {"context", "Context length", SETTINGS_INT, 8, 1 << 20, true, true},
    {"device", "Device", SETTINGS_TEXT, 0, 0, true, false},
    {"models_dir", "Models folder", SETTINGS_TEXT, 0, 0, false, false},
    {"font_size", "Font size", SETTINGS_INT, 10, 32, false, false},
    {"theme", "Theme", SETTINGS_THEME, 0, 0, false, false},
};
const size_t settings_n_fields = sizeof settings_fields / sizeof settings_fields[0];

void settings_defaults(struct settings *s)
{
    struct vkllm_sampler_params sp = vkllm_sampler_defaults(0);
    *s = (struct settings){.temp = sp.temp,
                           .top_k = sp.top_k,
                           .top_p = sp.top_p,
                           .min_p = sp.min_p,
                           .repeat_penalty = sp.repeat_penalty,
                           .max_tokens = -1,
                           .font_size = 15,
                           .theme = SETTINGS_DARK};
}

const struct settings_field *settings_field(const char *key)
{
    for (size_t i = 0; i < settings_n_fields; i++)
        if (!strcmp(settings_fields[i].key, key)) return &settings_fields[i];
    return NULL;
}

/* ---- the fields as text */

/* Where field F lives in S: a text's buffer and its size, or a number. */
static char *text_of(struct settings *s, const struct settings_field *f, size_t *cap)
{
    if (!strcmp(f->key, "system_prompt")) return *cap = sizeof s->system_prompt, s->system_prompt;
    if (!strcmp(f->key, "device")) return *cap = sizeof s->device, s->device;
    return *cap = sizeof s->models_dir, s->models_dir;
}

static float *float_of(struct settings *s, const struct settings_field *f)
{
    return !strcmp(f->key, "temperature") ? &s->temp
           : !strcmp(f->key, "top_p")     ? &s->top_p
           : !strcmp(f->key, "min_p")     ? &s->min_p
                                          : &s->repeat_penalty;
}

static int *int_of(struct settings *s, const struct settings_field *f)
{
    return !strcmp(f->key, "top_k")        ? &s->top_k
           : !strcmp(f->key, "max_tokens") ? &s->max_tokens
           : !strcmp(f->key, "context")    ? &s->n_ctx
           : !strcmp(f->key, "font_size")  ? &s->font_size
                                           : &s->theme;
}

int settings_set(struct settings *s, const char *key, const char *text, struct vkllm_error *err)
{
    const struct settings_field *f = settings_field(key);
    if (!f) return vkllm_fail(err, VKLLM_E_INVALID, "%s: no such setting", key);
    size_t cap;
    char *end;
    switch (f->kind) {
    case SETTINGS_TEXT: {
        char *dst = text_of(s, f, &cap);
        size_t n = strlen(text);
        if (n >= cap)
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: at most %zu bytes", f->label, cap - 1);
        json_t *check = json_string(text); /* jansson takes only valid UTF-8 */
        json_decref(check);
        if (!check) return vkllm_fail(err, VKLLM_E_INVALID, "%s: not valid UTF-8", f->label);
        memcpy(dst, text, n + 1);
        return VKLLM_OK;
    }
    case SETTINGS_FLOAT: {
        double v = strtod(text, &end);
        while (*end == ' ')
            end++;
        if (end == text || *end || !isfinite(v) || v < f->lo || v > f->hi)
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: '%s' is not a number from %g to %g",
                              f->label, text, f->lo, f->hi);
        *float_of(s, f) = (float)v;
        return VKLLM_OK;
    }
    case SETTINGS_INT: {
        errno = 0;
        long v = strtol(text, &end, 10);
        while (*end == ' ')
            end++;
        if (end == text || *end || errno || ((v < f->lo || v > f->hi) && !(f->zero && v == 0)))
            return vkllm_fail(err, VKLLM_E_INVALID,
                              "%s: '%s' is not %sa whole number from %.0f to %.0f", f->label, text,
                              f->zero ? "0 (the model's) or " : "", f->lo, f->hi);
        *int_of(s, f) = (int)v;
        return VKLLM_OK;
    }
    case SETTINGS_THEME:
        if (strcmp(text, "dark") && strcmp(text, "light"))
            return vkllm_fail(err, VKLLM_E_INVALID, "%s: '%s' is not dark or light", f->label,
                              text);
        s->theme = strcmp(text, "dark") ? SETTINGS_LIGHT : SETTINGS_DARK;
        return VKLLM_OK;
    }
    return VKLLM_E_INVALID;
}

/* ---- the device, against the devices there are */

int settings_check_device(const char *device, const struct vkllm_device_info *devs, int n,
                          struct vkllm_error *err)
{
    if (!device[0]) return VKLLM_OK;
    /* the engine's own rules; the window says what there is instead of
     * pointing at `vkllm devices` */
    if (n > 0 && vkllm_device_choose(devs, (uint32_t)n, device, NULL) >= 0) return VKLLM_OK;
    char list[400] = "";
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%d: %s", i ? ", " : "", i,
                               devs[i].name);
    if (!n)
        return vkllm_fail(err, VKLLM_E_NO_DEVICE, "Device: '%s': there is no Vulkan device",
                          device);
    return vkllm_fail(err, VKLLM_E_NO_DEVICE, "Device: '%s' is none of the devices here (%s)",
                      device, list);
}

void settings_get(const struct settings *s, const char *key, char *buf, size_t cap)
{
    const struct settings_field *f = settings_field(key);
    struct settings *m = (struct settings *)s; /* the accessors serve both ways */
    size_t n;
    if (!f)
        snprintf(buf, cap, "%s", "");
    else if (f->kind == SETTINGS_TEXT)
        snprintf(buf, cap, "%s", text_of(m, f, &n));
    else if (f->kind == SETTINGS_FLOAT)
        snprintf(buf, cap, "%g", *float_of(m, f));
    else if (f->kind == SETTINGS_INT)
        snprintf(buf, cap, "%d", *int_of(m, f));
    else
        snprintf(buf, cap, "%s", s->theme == SETTINGS_LIGHT ? "light" : "dark");
}

/* ---- the file */

/* Creates PATH's parent directories with mode 0700. */
static int make_parents(char *path, struct vkllm_error *err)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        struct stat st;
        int e = mkdir(path, 0700) != 0 && errno != EEXIST ? errno : 0;
        if (!e && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) e = ENOTDIR;
        if (e)
            vkllm_fail(err, VKLLM_E_IO, "%s: cannot create the directory: %s", path, strerror(e));
        *p = '/';
        if (e) return VKLLM_E_IO;
    }
    return VKLLM_OK;
}

int settings_path(char **out, struct vkllm_error *err)
{
    *out = NULL;
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    /* the XDG spec: a relative XDG_CONFIG_HOME is to be ignored */
    const char *base = xdg && xdg[0] == '/' ? xdg : home && home[0] == '/' ? home : NULL;
    if (!base)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "neither XDG_CONFIG_HOME nor HOME is an absolute path: nowhere to keep "
                          "settings");
    const char *tail = base == xdg ? "/vkllm/settings.json" : "/.config/vkllm/settings.json";
    size_t n = strlen(base) + strlen(tail) + 1;
    char *p = malloc(n);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    snprintf(p, n, "%s%s", base, tail);
    int rc = make_parents(p, err);
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return VKLLM_OK;
}

/* Reads ROOT's known keys into S: every good value is taken; ERR names the
 * refused ones (the first one's reason, then the other keys). */
static int from_json(json_t *root, struct settings *s, struct vkllm_error *err)
{
    if (!json_is_object(root)) return vkllm_fail(err, VKLLM_E_FORMAT, "not a JSON object");
    char first[600] = "", others[200] = ""; /* the first refused key and why; the others */
    size_t n_refused = 0, at = 0;
    for (size_t i = 0; i < settings_n_fields; i++) {
        const struct settings_field *f = &settings_fields[i];
        json_t *v = json_object_get(root, f->key);
        if (!v) continue;
        char num[64];
        const char *text = num;
        if (f->kind == SETTINGS_TEXT || f->kind == SETTINGS_THEME)
            text = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v) && f->kind == SETTINGS_FLOAT)
            snprintf(num, sizeof num, "%.9g", json_real_value(v));
        else
            text = NULL;
        struct vkllm_error e = {0};
        if (!text)
            vkllm_fail(&e, VKLLM_E_FORMAT, "not a %s",
                       f->kind == SETTINGS_TEXT || f->kind == SETTINGS_THEME ? "string" : "number");
        else if (!settings_set(s, f->key, text, &e))
            continue;
        if (!n_refused++)
            snprintf(first, sizeof first, "\"%s\" (%s)", f->key, e.msg);
        else if (at < sizeof others)
            at += (size_t)snprintf(others + at, sizeof others - at, ", \"%s\"", f->key);
    }
    if (!n_refused) return VKLLM_OK;
    return vkllm_fail(err, VKLLM_E_FORMAT, "%s%s refused", first, others);
}

int settings_load(const char *path, struct settings *s, struct vkllm_error *err)
{
    char *buf;
    size_t n;
    struct vkllm_error why = {0};
    int rc = file_read(path, MAX_FILE_BYTES, &buf, &n, &why);
    if (rc == VKLLM_E_NOT_FOUND) return VKLLM_OK;
    /* a FIFO, a device, a directory: not ours to move aside */
    if (rc && rc != VKLLM_E_FORMAT)
        return vkllm_fail(err, rc, "%s: %s; defaults used", path, why.msg);
    bool partial = false;
    if (!rc) {
        json_error_t jerr;
        json_t *root = json_loadb(buf, n, 0, &jerr);
        rc = root ? from_json(root, s, &why)
                  : vkllm_fail(&why, VKLLM_E_FORMAT, "not valid JSON (line %d: %s)", jerr.line,
                               jerr.text);
        partial = root && json_is_object(root);
        json_decref(root);
        free(buf);
    }
    if (!rc) return VKLLM_OK;
    char to[256];
    int e = file_set_aside(path, to, sizeof to);
    const char *kept = partial ? "the other settings kept" : "defaults used";
    if (e) /* VKLLM_E_IO: the caller must not write over it */
        return vkllm_fail(err, VKLLM_E_IO,
                          "%s: %s; %s (cannot move it aside: %s; changes are not saved)", path,
                          why.msg, kept, strerror(e));
    return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s; %s, the file moved aside to %s", path, why.msg,
                      kept, to);
}

/* V as the double with the fewest digits that is still the float V, so that
 * the file says 0.3 and not 0.30000001192092896. */
static double shortest(float v)
{
    char buf[32];
    for (int digits = 1; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return strtod(buf, NULL);
    }
    return (double)v;
}

int settings_save_changes(const struct settings *base, struct settings *s, const char *path,
                          struct vkllm_error *err)
{
    /* the file as it is now: another window may have changed other keys
     * since this one read it (probe 4, R-16: each window wrote its whole
     * copy, undoing the other's change) */
    struct settings disk;
    settings_defaults(&disk);
    struct vkllm_error why = {0};
    int loaded = settings_load(path, &disk, &why);
    if (loaded && loaded != VKLLM_E_FORMAT) return vkllm_fail(err, loaded, "%s", why.msg);
    char was[sizeof s->system_prompt], now[sizeof s->system_prompt];
    for (size_t i = 0; i < settings_n_fields; i++) {
        const char *key = settings_fields[i].key;
        settings_get(base, key, was, sizeof was);
        settings_get(s, key, now, sizeof now);
        if (strcmp(was, now)) settings_set(&disk, key, now, NULL); /* S's values are valid */
    }
    *s = disk;
    int rc = settings_save(s, path, err);
    /* a file that had become corrupt was moved aside and replaced: say so */
    if (!rc && loaded) rc = vkllm_fail(err, loaded, "%s", why.msg);
    return rc;
}

int settings_save(const struct settings *s, const char *path, struct vkllm_error *err)
{
    json_t *o = json_pack("{s:s, s:i}", "format", "vkllm-chat-settings", "version", FORMAT_VERSION);
    struct settings *m = (struct settings *)s;
    size_t cap;
    for (size_t i = 0; o && i < settings_n_fields; i++) {
        const struct settings_field *f = &settings_fields[i];
        json_t *v = f->kind == SETTINGS_TEXT    ? json_string(text_of(m, f, &cap))
                    : f->kind == SETTINGS_FLOAT ? json_real(shortest(*float_of(m, f)))
                    : f->kind == SETTINGS_INT
                        ? json_integer(*int_of(m, f))
                        : json_string(s->theme == SETTINGS_LIGHT ? "light" : "dark");
        if (!v || json_object_set_new(o, f->key, v)) {
            json_decref(o);
            o = NULL;
        }
    }
    char *text =
        o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    if (!text) return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of host memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* a text file ends its last line; json_dumps left room for the NUL */
    int rc = vkllm_write_file(path, text, len + 1, err);
    free(text);
    return rc;
}
