/* app_chats.c: the saved conversations: saving the open one after each reply,
 * reopening, renaming, deleting and exporting saved ones. The files are
 * history_files.c's; these put their errors in the banner and keep the
 * sidebar's list current. */
#include "app.h"

#include <stdlib.h>
#include <string.h>

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
    if (!a->data_dir) return;
    struct vkllm_error err = {0};
    pthread_mutex_lock(&a->lock);
    int rc = history_count(a->hist) ? history_save(a->hist, a->data_dir, &err) : VKLLM_OK;
    pthread_mutex_unlock(&a->lock);
    if (rc)
        app_banner(a, true, "%s", err.msg);
    else
        panel_sidebar_refresh(a);
}

bool app_reopen(struct app *a, const char *id)
{
    if (!have_dir(a)) return false;
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
