/* app_state.c: the window's actions, whatever triggered them (a button, a
 * key, the --script): they change the history under the lock and queue the
 * worker's jobs; and the banner that shows what went wrong. */
#include "app.h"
#include "model_files.h"

#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTE_MS 6000 /* how long a note stays */

double app_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int app_px(const struct app *a, float n)
{
    return (int)(n * a->scale + 0.5f);
}

void app_banner(struct app *a, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[sizeof a->banner];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    vkllm_printable(a->banner, sizeof a->banner, line, strlen(line));
    a->banner_error = error;
    /* an error stays until the next action; a note fades */
    a->banner_until = error ? 0 : app_now_ms() + NOTE_MS;
    /* the terminal (and the tests) see them too */
    fprintf(stderr, "vkllm-chat: %s%s\n", error ? "error: " : "", a->banner);
}

/* Lock held: an empty reply at the end of the path, and the job that fills it. */
static bool start_reply(struct app *a)
{
    struct vkllm_error err = {0};
    uint32_t id;
    if (history_append(a->hist, HISTORY_ASSISTANT, "", 0, &id, &err) ||
        worker_generate(a->worker, id, &err)) {
        app_banner(a, true, "%s", err.msg);
        return false;
    }
    return true;
}

/* A reply running or queued: actions that start another wait for Esc. */
static bool busy(struct app *a)
{
    pthread_mutex_lock(&a->lock);
    bool b = worker_replying(a->worker, WORKER_ANY_REPLY); /* a load is no reason to wait */
    pthread_mutex_unlock(&a->lock);
    if (b) app_banner(a, false, "a reply is being written: Esc stops it");
    return b;
}

bool app_submit(struct app *a)
{
    size_t len;
    const char *text = input_box_text(a->input, &len);
    size_t lead = 0;
    while (lead < len && strchr(" \t\r\n", text[lead]))
        lead++;
    if (lead == len || busy(a)) return false;
    struct vkllm_error err = {0};
    bool ok;
    pthread_mutex_lock(&a->lock);
    if (a->editing >= 0)
        ok = !history_edit(a->hist, (size_t)a->editing, text, len, NULL, &err);
    else
        ok = !history_append(a->hist, HISTORY_USER, text, len, NULL, &err);
    if (!ok)
        app_banner(a, true, "%s", err.msg);
    else
        ok = start_reply(a);
    pthread_mutex_unlock(&a->lock);
    if (ok) {
        input_box_set(a->input, "", 0);
        a->editing = -1;
        a->banner[0] = 0;
    }
    return ok;
}

void app_stop(struct app *a)
{
    worker_stop(a->worker);
}

bool app_regenerate(struct app *a)
{
    if (busy(a)) return false;
    struct vkllm_error err = {0};
    uint32_t id;
    pthread_mutex_lock(&a->lock);
    size_t n = history_count(a->hist);
    const struct history_msg *last = n ? history_at(a->hist, n - 1) : NULL;
    /* a user message last: its turn failed, Regenerate asks again */
    bool ok = last && last->role != HISTORY_SYSTEM;
    if (ok && (history_regenerate(a->hist, &id, &err) || worker_generate(a->worker, id, &err))) {
        app_banner(a, true, "%s", err.msg);
        ok = false;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

bool app_edit_begin(struct app *a, size_t i)
{
    pthread_mutex_lock(&a->lock);
    const struct history_msg *m = history_at(a->hist, i);
    bool ok = m && m->role == HISTORY_USER;
    if (ok) input_box_set(a->input, m->text, m->len);
    pthread_mutex_unlock(&a->lock);
    if (!ok) return false;
    a->editing = (int)i;
    app_banner(a, false, "editing message %zu: Enter sends it as a new branch, Esc cancels", i + 1);
    return true;
}

void app_edit_cancel(struct app *a)
{
    if (a->editing < 0) return;
    a->editing = -1;
    input_box_set(a->input, "", 0);
    a->banner[0] = 0;
}

bool app_switch(struct app *a, size_t i, int step)
{
    pthread_mutex_lock(&a->lock);
    bool ok = history_switch(a->hist, i, step);
    pthread_mutex_unlock(&a->lock);
    if (ok) a->editing = -1;
    return ok;
}

void app_new_chat(struct app *a)
{
    worker_stop(a->worker);
    pthread_mutex_lock(&a->lock);
    worker_forget(a->worker); /* its reply's message goes now */
    history_reset(a->hist);
    pthread_mutex_unlock(&a->lock);
    view_chat_forget(a);
    a->editing = -1;
    a->banner[0] = 0;
}

void app_load_model(struct app *a, const char *path)
{
    worker_stop(a->worker);
    worker_load(a->worker, path);
    a->banner[0] = 0;
}

void app_open_file(struct app *a, const char *path)
{
    /* the header only (bounded, no weights): an adapter is added to the
     * model, anything else goes to the model loader, whose checks report
     * what it is not */
    struct model_header h;
    struct vkllm_error err = {0};
    if (!model_files_header(path, &h, NULL, &err) && h.adapter)
        app_lora_add(a, path);
    else
        app_load_model(a, path);
}

void app_lora_add(struct app *a, const char *path)
{
    worker_lora_add(a->worker, path, 1.0f);
    a->banner[0] = 0;
}

bool app_lora_set(struct app *a, size_t i, bool on, float scale)
{
    char name[sizeof worker_status(a->worker)->lora[0].name];
    pthread_mutex_lock(&a->lock);
    const struct worker_status *st = worker_status(a->worker);
    bool ok = i < st->n_lora && worker_lora_set(a->worker, (uint32_t)i, on, scale);
    if (ok) snprintf(name, sizeof name, "%s", st->lora[i].name);
    pthread_mutex_unlock(&a->lock);
    /* the worker applies it as the next reply starts (one under way keeps its set) */
    if (ok)
        app_banner(a, false, "LoRA adapter %zu (%s) %s at scale %g from the next reply", i + 1,
                   name, on ? "on" : "off", (double)scale);
    return ok;
}

int app_dump_state(struct app *a, const char *path, struct vkllm_error *err)
{
    char *copy = strdup(path);
    if (!copy) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    pthread_mutex_lock(&a->lock);
    int rc = history_save(a->hist, dir, err);
    char saved[4096];
    snprintf(saved, sizeof saved, "%s/%s.json", dir, history_id(a->hist));
    pthread_mutex_unlock(&a->lock);
    if (!rc && strcmp(saved, path) && rename(saved, path))
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot rename to %s", saved, path);
    free(copy);
    return rc;
}

int app_dump_worker(struct app *a, const char *path, struct vkllm_error *err)
{
    pthread_mutex_lock(&a->lock);
    const struct worker_status *st = worker_status(a->worker);
    /* tokens may split a character: valid UTF-8 for JSON, newlines kept */
    char head[4 * sizeof st->prompt_head + 1];
    vkllm_printable_text(head, sizeof head, st->prompt_head, strlen(st->prompt_head));
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "prompt_head", head,
                          "n_dropped", (int)st->n_dropped, "n_gen", (int)st->n_gen, "ctx_used",
                          (int)st->ctx_used, "n_ctx", (int)st->n_ctx, "prompt_tps", st->prompt_tps,
                          "gen_tps", st->gen_tps, "gen_gbps", st->gen_gbps, "ttft_ms", st->ttft_ms);
    json_t *lora = json_array();
    for (uint32_t i = 0; o && lora && i < st->n_lora; i++) {
        const struct worker_lora *l = &st->lora[i];
        json_array_append_new(
            lora,
            json_pack("{s:s, s:s, s:b, s:f, s:b, s:f, s:i, s:i, s:f, s:i, s:I}", "name", l->name,
                      "path", l->path, "on", l->on, "scale", (double)l->scale, "on_now", l->on_now,
                      "scale_now", (double)l->scale_now, "rank_min", (int)l->rank_min, "rank_max",
                      (int)l->rank_max, "alpha", (double)l->alpha, "matrices", (int)l->n_tensors,
                      "bytes", (json_int_t)l->bytes));
    }
    if (!o) {
        json_decref(lora);
    } else if (!lora || json_object_set_new(o, "adapters", lora)) {
        json_decref(o);
        o = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
    json_decref(o);
    int rc = text ? vkllm_write_file(path, text, strlen(text), err)
                  : vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", path);
    free(text);
    return rc;
}

void app_escape(struct app *a)
{
    if (a->help_open) {
        a->help_open = false;
    } else if (a->settings_open) {
        panel_settings_toggle(a);
    } else if (a->lora_open) {
        panel_lora_close(a);
    } else {
        pthread_mutex_lock(&a->lock);
        bool generating = worker_busy(a->worker);
        pthread_mutex_unlock(&a->lock);
        if (generating)
            app_stop(a);
        else if (a->focus)
            ui_focus(a, NULL); /* a sidebar field lets go (and its edit is cancelled) */
        else
            app_edit_cancel(a);
    }
}

bool app_key(struct app *a, const SDL_KeyboardEvent *k)
{
    bool ctrl = k->keysym.mod & KMOD_CTRL;
    switch (k->keysym.sym) {
    case SDLK_ESCAPE: app_escape(a); return true;
    case SDLK_F1: a->help_open = !a->help_open; return true;
    case SDLK_COMMA:
        if (!ctrl) return false;
        panel_settings_toggle(a);
        return true;
    case SDLK_b:
        if (!ctrl) return false;
        panel_sidebar_toggle(a);
        return true;
    case SDLK_l:
        if (!ctrl) return false;
        panel_lora_toggle(a);
        return true;
    case SDLK_t:
        if (!ctrl) return false;
        app_setting(a, "theme", a->settings.theme == SETTINGS_LIGHT ? "dark" : "light");
        return true;
    case SDLK_PAGEUP:
    case SDLK_PAGEDOWN: view_chat_scroll(a, k->keysym.sym == SDLK_PAGEUP ? -1 : 1); return true;
    case SDLK_HOME:
    case SDLK_END:
        if (!ctrl) return false; /* the input box's */
        view_chat_scroll(a, k->keysym.sym == SDLK_HOME ? -2 : 2);
        return true;
    case SDLK_n:
        if (!ctrl) return false;
        app_new_chat(a);
        return true;
    case SDLK_r:
        if (!ctrl) return false;
        app_regenerate(a);
        return true;
    case SDLK_c: return ctrl && view_chat_copy(a);
    default: return false;
    }
}

void app_poll_worker(struct app *a)
{
    pthread_mutex_lock(&a->lock);
    const struct worker_status *st = worker_status(a->worker);
    char error[sizeof st->error], note[sizeof st->note];
    bool new_error = st->error_seq != a->error_seq, new_note = st->note_seq != a->note_seq;
    memcpy(error, st->error, sizeof error);
    memcpy(note, st->note, sizeof note);
    a->error_seq = st->error_seq;
    a->note_seq = st->note_seq;
    bool loaded = st->has_model, busy = worker_busy(a->worker);
    bool replied = st->replies_done != a->replies_saved;
    a->replies_saved = st->replies_done;
    pthread_mutex_unlock(&a->lock);
    /* each finished reply saves the conversation */
    if (replied) app_save_chat(a);
    app_saver_poll(a);
    if (new_note) app_banner(a, false, "%s", note);
    if (new_error) app_banner(a, true, "%s", error);
    /* a note (turns dropped to fit the context) stays while the reply it
     * concerns is written, and its few seconds after that */
    if (busy && a->banner[0] && !a->banner_error && a->banner_until)
        a->banner_until = app_now_ms() + NOTE_MS;
    if (loaded && !a->t_loaded) a->t_loaded = app_now_ms();
}

char *app_model_dir(struct app *a)
{
    char buf[sizeof worker_status(a->worker)->path];
    pthread_mutex_lock(&a->lock);
    snprintf(buf, sizeof buf, "%s", worker_status(a->worker)->path);
    pthread_mutex_unlock(&a->lock);
    if (buf[0] == '/') return model_files_parent(buf);
    const char *home = getenv("HOME");
    return strdup(home && home[0] == '/' ? home : "/");
}
