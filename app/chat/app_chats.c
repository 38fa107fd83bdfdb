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
 * would race.
 *
 * Two windows on one saved chat: each save would replace the other's turns.
 * The saver remembers the file as this window last read or wrote it (device,
 * inode, size, modification time); a write that finds it changed by someone
 * else is not made, and the conversation is saved as a new chat instead,
 * "TITLE (copy)", with a note. One that finds it deleted by someone else
 * does not bring it back under its old name either: the conversation is
 * saved as a new chat, with a note (probe 4, R-16). */
#include "app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the writer thread */

#define SAVE_QUEUE 8

struct save_job {
    char *path, *text;
    size_t len;
};

/* A file as this window last saw it. */
struct file_seen {
    char *path; /* NULL: none */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

static void seen_set(struct file_seen *f, const char *path, const struct stat *st)
{
    if (!f->path || strcmp(f->path, path)) {
        free(f->path);
        f->path = strdup(path); /* NULL (no memory): nothing is checked */
    }
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
}

enum seen { SEEN_SAME, SEEN_CHANGED, SEEN_GONE };

/* Whether PATH is still the file F saw, changed, or gone. */
static enum seen seen_check(const struct file_seen *f, const char *path)
{
    struct stat st;
    if (!f->path || strcmp(f->path, path)) return SEEN_SAME;
    if (lstat(path, &st) != 0) return errno == ENOENT ? SEEN_GONE : SEEN_SAME;
    bool changed = st.st_dev != f->dev || st.st_ino != f->ino || st.st_size != f->size ||
                   st.st_mtim.tv_sec != f->mtime.tv_sec || st.st_mtim.tv_nsec != f->mtime.tv_nsec;
    return changed ? SEEN_CHANGED : SEEN_SAME;
}

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
    struct file_seen seen; /* the open chat's file; under mu */
    char *conflict;        /* a path another writer changed or deleted: not written */
    bool conflict_gone;    /* deleted */
    uint64_t conflict_seq, conflict_shown;
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
        /* another window wrote it since this one read or wrote it: the UI
         * saves this conversation as a copy instead (app_saver_poll) */
        enum seen seen = seen_check(&s->seen, j.path);
        bool changed = seen != SEEN_SAME;
        pthread_mutex_unlock(&s->mu);
        struct vkllm_error err = {0};
        struct stat st;
        int rc = changed ? VKLLM_OK : vkllm_write_file(j.path, j.text, j.len, &err);
        bool stat_ok = !changed && !rc && stat(j.path, &st) == 0;
        free(j.text);
        pthread_mutex_lock(&s->mu);
        s->writing = false;
        if (changed) {
            free(s->conflict);
            s->conflict = j.path;
            s->conflict_gone = seen == SEEN_GONE;
            j.path = NULL;
            s->conflict_seq++;
        } else if (stat_ok) {
            seen_set(&s->seen, j.path, &st);
        }
        free(j.path);
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
    free(s->seen.path);
    free(s->conflict);
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

/* Remembers PATH (the open chat's file, just read or written by this
 * window) as it is now. */
static void saver_seen(struct saver *s, const char *path)
{
    struct stat st;
    if (!s || !path || stat(path, &st) != 0) return;
    pthread_mutex_lock(&s->mu);
    seen_set(&s->seen, path, &st);
    pthread_mutex_unlock(&s->mu);
}

static char *chat_path(const struct app *a, const char *id)
{
    size_t n = strlen(a->data_dir) + strlen(id) + sizeof "/.json";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.json", a->data_dir, id);
    return p;
}

/* The open chat's file was changed (GONE: deleted) by another window: this
 * conversation becomes a new chat, saved beside it. */
static void save_as_copy(struct app *a, const char *conflict, bool gone)
{
    char *path = NULL;
    struct vkllm_error err = {0};
    pthread_mutex_lock(&a->lock);
    path = chat_path(a, history_id(a->hist));
    /* a conflict on a chat this window has since left is no concern */
    bool open = path && !strcmp(path, conflict);
    int rc = open ? history_detach(a->hist, gone ? "" : " (copy)", &err) : VKLLM_OK;
    char title[256];
    snprintf(title, sizeof title, "%s", history_title(a->hist));
    pthread_mutex_unlock(&a->lock);
    free(path);
    if (!open) return;
    if (rc) {
        app_banner(a, true, "%s: %s by another window, and this chat cannot be copied: %s",
                   conflict, gone ? "deleted" : "changed", err.msg);
        return;
    }
    app_save_chat(a);
    app_banner(a, false,
               "%s was %s by another window: this conversation is saved as a new chat, "
               "\"%s\"",
               conflict, gone ? "deleted" : "changed", title);
}

void app_saver_poll(struct app *a)
{
    struct saver *s = a->saver;
    if (!s) return;
    char error[sizeof s->error];
    pthread_mutex_lock(&s->mu);
    bool failed = s->error_seq != s->error_shown, done = s->done_seq != s->done_shown;
    char *conflict = s->conflict_seq != s->conflict_shown ? s->conflict : NULL;
    bool gone = s->conflict_gone;
    s->conflict = NULL;
    s->conflict_shown = s->conflict_seq;
    memcpy(error, s->error, sizeof error);
    s->error_shown = s->error_seq;
    s->done_shown = s->done_seq;
    pthread_mutex_unlock(&s->mu);
    if (failed) app_banner(a, true, "%s", error);
    if (conflict) save_as_copy(a, conflict, gone);
    free(conflict);
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
    char *path = chat_path(a, id);
    saver_seen(a->saver, path);
    free(path);
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
    bool open = !strcmp(history_id(a->hist), id);
    if (!rc && open) rc = history_set_title(a->hist, title, &err);
    pthread_mutex_unlock(&a->lock);
    if (!rc && open) { /* this window's own write */
        char *path = chat_path(a, id);
        saver_seen(a->saver, path);
        free(path);
    }
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
