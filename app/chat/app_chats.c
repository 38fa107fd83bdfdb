/* app_chats.c: the saved conversations: saving the open one after each reply,
 * reopening, renaming, deleting and exporting saved ones. The files are
 * history_files.c's; these put their errors in the banner and keep the
 * sidebar's list current.
 *
 * A save never holds the UI thread on the disk: the conversation is
 * serialized under the lock (memory only) and a thread of its own writes it
 * (vkllm_write_file: temp file, fsync, rename), so a slow or stalled disk
 * stalls no frame. Its result reaches the banner and the sidebar through
 * app_saver_poll. The actions on saved files (reopen, rename, delete,
 * export) first wait for the writes queued before them, which they read or
 * would race. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the writer thread */

#define SAVE_QUEUE 8

struct save_job {
    char *path, *text;
    size_t len;
};

struct saver {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job queued, or quit */
    pthread_cond_t idle; /* a job done: room in the queue, or flushed */
    struct save_job jobs[SAVE_QUEUE];
    size_t head, n;
    bool writing, quit;
    char error[512]; /* the last failed write's message */
    uint64_t error_seq, done_seq, error_shown, done_shown;
};

static void *saver_run(void *arg)
{
    struct saver *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->n && !s->quit)
            pthread_cond_wait(&s->work, &s->mu);
        if (!s->n) break; /* quit, with everything written */
        struct save_job j = s->jobs[s->head];
        s->head = (s->head + 1) % SAVE_QUEUE;
        s->n--;
        s->writing = true;
        pthread_mutex_unlock(&s->mu);
        struct vkllm_error err = {0};
        int rc = vkllm_write_file(j.path, j.text, j.len, &err);
        free(j.path);
        free(j.text);
        pthread_mutex_lock(&s->mu);
        s->writing = false;
        if (rc) {
            snprintf(s->error, sizeof s->error, "%s", err.msg);
            s->error_seq++;
        }
        s->done_seq++;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int app_saver_start(struct app *a, struct vkllm_error *err)
{
    struct saver *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->thread, NULL, saver_run, s)) {
        pthread_cond_destroy(&s->idle);
        pthread_cond_destroy(&s->work);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return vkllm_fail(err, VKLLM_E_NOMEM, "cannot start the thread that saves chats");
    }
    a->saver = s;
    return VKLLM_OK;
}

void app_saver_stop(struct app *a)
{
    struct saver *s = a->saver;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* what is queued is written first */
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    free(s);
    a->saver = NULL;
}

/* Queues writing TEXT to PATH (both taken). A queued write of the same file
 * is replaced: only the newest text matters. */
static void saver_queue(struct saver *s, char *path, char *text, size_t len)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        struct save_job *j = &s->jobs[(s->head + i) % SAVE_QUEUE];
        if (!strcmp(j->path, path)) {
            free(j->path);
            free(j->text);
            *j = (struct save_job){path, text, len};
            pthread_mutex_unlock(&s->mu);
            return;
        }
    }
    while (s->n == SAVE_QUEUE) /* eight other chats waiting: the disk is that slow */
        pthread_cond_wait(&s->idle, &s->mu);
    s->jobs[(s->head + s->n++) % SAVE_QUEUE] = (struct save_job){path, text, len};
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

/* Waits for the writes queued so far. */
static void saver_flush(struct saver *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    while (s->n || s->writing)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void app_saver_poll(struct app *a)
{
    struct saver *s = a->saver;
    if (!s) return;
    char error[sizeof s->error];
    pthread_mutex_lock(&s->mu);
    bool failed = s->error_seq != s->error_shown, done = s->done_seq != s->done_shown;
    memcpy(error, s->error, sizeof error);
    s->error_shown = s->error_seq;
    s->done_shown = s->done_seq;
    pthread_mutex_unlock(&s->mu);
    if (failed) app_banner(a, true, "%s", error);
    if (done) panel_sidebar_refresh(a);
}

bool app_saving(struct app *a)
{
    pthread_mutex_lock(&a->lock);
    bool unsaved = worker_status(a->worker)->replies_done != a->replies_saved;
    pthread_mutex_unlock(&a->lock);
    struct saver *s = a->saver;
    if (unsaved || !s) return unsaved;
    pthread_mutex_lock(&s->mu);
    bool busy = s->n || s->writing || s->done_seq != s->done_shown;
    pthread_mutex_unlock(&s->mu);
    return busy;
}

/* ---- the actions */

void app_list_notice(const char *msg, void *user)
{
    /* the list reports an unreadable file at each refresh: show it once (a
     * corrupt one is moved aside, so it comes once anyway) */
    static char *shown[32];
    static size_t n;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(shown[i], msg)) return;
    if (n < sizeof shown / sizeof shown[0]) shown[n++] = strdup(msg);
    app_banner(user, true, "%s", msg);
}

static bool have_dir(struct app *a)
{
    if (!a->data_dir) app_banner(a, true, "no directory for saved chats (see the first error)");
    return a->data_dir != NULL;
}

void app_save_chat(struct app *a)
{
    if (!a->data_dir || !a->saver) return;
    struct vkllm_error err = {0};
    char *path = NULL, *text = NULL;
    size_t len = 0;
    pthread_mutex_lock(&a->lock);
    int rc = history_count(a->hist)
                 ? history_save_prepare(a->hist, a->data_dir, &path, &text, &len, &err)
                 : VKLLM_OK;
    pthread_mutex_unlock(&a->lock);
    if (rc)
        app_banner(a, true, "%s", err.msg);
    else if (text)
        saver_queue(a->saver, path, text, len);
}

bool app_reopen(struct app *a, const char *id)
{
    if (!have_dir(a)) return false;
    saver_flush(a->saver);
    struct vkllm_error err = {0};
    history *h;
    if (history_load(a->data_dir, id, &h, &err)) {
        app_banner(a, true, "%s", err.msg);
        panel_sidebar_refresh(a); /* a corrupt one is gone from the list */
        return false;
    }
    worker_stop(a->worker);
    pthread_mutex_lock(&a->lock);
    worker_forget(a->worker); /* the reply being written belongs to the old one */
    worker_set_history(a->worker, h);
    history *old = a->hist;
    a->hist = h;
    pthread_mutex_unlock(&a->lock);
    history_free(old);
    view_chat_forget(a);
    a->editing = -1;
    a->banner[0] = 0;
    ui_focus(a, NULL); /* the next keys are the reply to it */
    return true;
}

bool app_rename_chat(struct app *a, const char *id, const char *title)
{
    if (!have_dir(a)) return false;
    saver_flush(a->saver);
    struct vkllm_error err = {0};
    int rc = history_rename(a->data_dir, id, title, &err);
    /* the open one too, or its next save would bring the old title back */
    pthread_mutex_lock(&a->lock);
    if (!rc && !strcmp(history_id(a->hist), id)) rc = history_set_title(a->hist, title, &err);
    pthread_mutex_unlock(&a->lock);
    if (rc) app_banner(a, true, "%s", err.msg);
    panel_sidebar_refresh(a);
    return !rc;
}

bool app_delete_chat(struct app *a, const char *id)
{
    if (!have_dir(a)) return false;
    saver_flush(a->saver);
    struct vkllm_error err = {0};
    if (history_delete(a->data_dir, id, &err)) {
        app_banner(a, true, "%s", err.msg);
        return false;
    }
    pthread_mutex_lock(&a->lock);
    bool open = !strcmp(history_id(a->hist), id);
    pthread_mutex_unlock(&a->lock);
    if (open) app_new_chat(a); /* else its next reply would save it again */
    panel_sidebar_refresh(a);
    app_banner(a, false, "deleted");
    return true;
}

bool app_export_chat(struct app *a, const char *id, const char *path)
{
    if (!have_dir(a)) return false;
    saver_flush(a->saver);
    struct vkllm_error err = {0};
    history *h;
    int rc = history_load(a->data_dir, id, &h, &err);
    if (!rc) {
        rc = history_export_markdown(h, path, &err);
        history_free(h);
    }
    if (rc)
        app_banner(a, true, "%s", err.msg);
    else
        app_banner(a, false, "exported to %s", path);
    return !rc;
}
