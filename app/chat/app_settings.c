/* app_settings.c: the settings in the running window: loaded at the start,
 * overridden by the command line for one run, saved when changed, and
 * applied (theme and font size at once, sampling with the next reply, the
 * context size, device and reply limit by loading the model again). */
#include "app.h"

#include <stdlib.h>
#include <string.h>

/* The settings this run uses: the saved ones and the command line's. */
static struct settings effective(const struct app *a)
{
    struct settings s = a->settings;
    struct vkllm_error err;
    /* main.c checked these with settings_set: they cannot fail here */
    for (int i = 0; i < a->opt.n_overrides; i++)
        settings_set(&s, a->opt.overrides[i][0], a->opt.overrides[i][1], &err);
    if (a->device_gone) s.device[0] = 0;
    return s;
}

/* DEVICE ("": the default) against the devices listed at the start. */
static int check_device(const struct app *a, const char *device, struct vkllm_error *err)
{
    if (!device[0]) return VKLLM_OK;
    if (a->n_devs < 0) return vkllm_fail(err, a->n_devs, "Device: %s", a->devs_error);
    return settings_check_device(device, a->devs, a->n_devs, err);
}

void app_settings_init(struct app *a)
{
    struct vkllm_error err = {0};
    settings_defaults(&a->settings);
    if (settings_path(&a->settings_path, &err) ||
        settings_load(a->settings_path, &a->settings, &err))
        app_banner(a, true, "%s", err.msg);
    if (err.code == VKLLM_E_IO && a->settings_path) { /* a bad file that could not be moved */
        free(a->settings_path);
        a->settings_path = NULL;
    }
    a->th = a->settings.theme == SETTINGS_LIGHT ? &theme_light : &theme_dark;
    /* a device gone since it was chosen (an eGPU unplugged, another machine's
     * settings) would leave no model loaded: the default one serves instead
     * (probe 6, M1) */
    struct vkllm_error why = {0};
    a->n_devs = vkllm_devices_list(a->devs, (int)(sizeof a->devs / sizeof a->devs[0]), &why);
    if (a->n_devs > (int)(sizeof a->devs / sizeof a->devs[0]))
        a->n_devs = (int)(sizeof a->devs / sizeof a->devs[0]);
    snprintf(a->devs_error, sizeof a->devs_error, "%s", why.msg);
    struct settings now = effective(a);
    if (check_device(a, now.device, &err)) {
        app_banner(a, false, "%s: the default device is used", err.msg);
        a->device_gone = true;
    }
}

struct worker_params app_worker_params(const struct app *a)
{
    struct settings s = effective(a);
    struct worker_params p = {
        .n_ctx = (uint32_t)s.n_ctx,
        .n_predict = s.max_tokens,
        .sampling = {.temp = s.temp,
                     .top_k = s.top_k,
                     .top_p = s.top_p,
                     .min_p = s.min_p,
                     .repeat_penalty = s.repeat_penalty,
                     .repeat_last_n = vkllm_sampler_defaults(0).repeat_last_n,
                     .seed = a->opt.seed},
    };
    snprintf(p.device, sizeof p.device, "%s", s.device);
    snprintf(p.system_prompt, sizeof p.system_prompt, "%s", s.system_prompt);
    return p;
}

int app_font_px(const struct app *a)
{
    return app_px(a, (float)effective(a).font_size);
}

/* Drops the command line's value for KEY: the user has just chosen one. */
static void forget_override(struct app *a, const char *key)
{
    for (int i = 0; i < a->opt.n_overrides; i++)
        if (!strcmp(a->opt.overrides[i][0], key)) {
            memmove(a->opt.overrides[i], a->opt.overrides[i + 1],
                    (size_t)(a->opt.n_overrides - i - 1) * sizeof a->opt.overrides[0]);
            a->opt.n_overrides--;
            i--;
        }
}

bool app_settings_commit(struct app *a, const struct settings *s)
{
    struct vkllm_error err = {0};
    /* refused now, the old value kept, rather than at the next load */
    if (strcmp(s->device, a->settings.device) && check_device(a, s->device, &err)) {
        app_banner(a, true, "%s", err.msg);
        return false;
    }
    /* a system prompt that leaves no room would fail every message: refused
     * against the loaded model's context (a new context is checked by the
     * load it causes) */
    if (strcmp(s->system_prompt, a->settings.system_prompt) && s->n_ctx == a->settings.n_ctx) {
        pthread_mutex_lock(&a->lock);
        int rc = worker_check_system(a->worker, s->system_prompt, &err);
        pthread_mutex_unlock(&a->lock);
        if (rc) {
            app_banner(a, true, "System prompt: %s", err.msg);
            return false;
        }
    }
    struct settings before = effective(a);
    char x[sizeof s->system_prompt], y[sizeof s->system_prompt];
    for (size_t i = 0; i < settings_n_fields; i++) {
        settings_get(&a->settings, settings_fields[i].key, x, sizeof x);
        settings_get(s, settings_fields[i].key, y, sizeof y);
        if (strcmp(x, y)) forget_override(a, settings_fields[i].key);
    }
    if (strcmp(s->device, a->settings.device)) a->device_gone = false; /* a device chosen now */
    struct settings base = a->settings;
    a->settings = *s;
    bool ok = true;
    int rc;
    if (!a->settings_path) { /* the start said why (HOME unset, XDG_CONFIG_HOME a file) */
        app_banner(a, false, "the settings apply to this run only: nowhere to save them");
    } else if ((rc = settings_save_changes(&base, &a->settings, a->settings_path, &err))) {
        /* a->settings keeps this change whatever happened to the file */
        if (rc != VKLLM_E_FORMAT) a->settings = *s;
        app_banner(a, true, "%s", err.msg);
        ok = rc == VKLLM_E_FORMAT; /* saved, over a corrupt file moved aside */
    }

    struct settings now = effective(a);
    a->th = now.theme == SETTINGS_LIGHT ? &theme_light : &theme_dark;
    if (now.font_size != before.font_size) {
        fonts_set_size(a->fonts, app_font_px(a));
        view_chat_rescale(a);
        input_box_rescale(a);
    }
    struct worker_params p = app_worker_params(a);
    pthread_mutex_lock(&a->lock);
    worker_configure(a->worker, &p);
    const struct worker_status *st = worker_status(a->worker);
    char path[sizeof st->path];
    memcpy(path, st->path, sizeof path);
    bool loaded = st->has_model;
    pthread_mutex_unlock(&a->lock);
    bool reload = false;
    for (size_t i = 0; i < settings_n_fields; i++) {
        if (!settings_fields[i].reload) continue;
        settings_get(&before, settings_fields[i].key, x, sizeof x);
        settings_get(&now, settings_fields[i].key, y, sizeof y);
        reload |= strcmp(x, y) != 0;
    }
    if (reload && loaded) app_load_model(a, path);
    return ok;
}

bool app_setting(struct app *a, const char *key, const char *value)
{
    struct settings s = a->settings;
    struct vkllm_error err = {0};
    if (settings_set(&s, key, value, &err)) {
        app_banner(a, true, "%s", err.msg);
        return false;
    }
    return app_settings_commit(a, &s);
}
