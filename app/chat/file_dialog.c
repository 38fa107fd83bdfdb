/* file_dialog.c: zenity or kdialog run with posix_spawn, its answer read from
 * a non-blocking pipe and its exit collected with waitpid(WNOHANG), so the
 * window asks once a frame and never waits. xdg-desktop-portal is not used:
 * it needs a D-Bus client and its Response signal, and zenity and kdialog
 * already follow the desktop (GTK's zenity goes through the portal itself
 * where GTK_USE_PORTAL is set).
 *
 * The dialog starts clean (probe 4, R-15): no descriptor of the window's but
 * its stdout pipe, every signal at its default action and none blocked (the
 * window ignores SIGPIPE and SIGXFSZ, which a child would inherit), in a
 * process group of its own, so that whatever it started goes with it. */
#define _GNU_SOURCE /* pipe2 */
#include "file_dialog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct file_dialog {
    pid_t pid;  /* 0: reaped */
    pid_t pgid; /* its process group, killed with it; 0: gone */
    int fd;     /* the read end of its stdout; -1: closed */
    int status; /* waitpid's, once reaped */
    char *out;  /* what it printed: the chosen path and a newline */
    size_t len, cap;
    char tool[16]; /* "zenity" or "kdialog", for messages */
};

/* ---- finding the program */

/* NAME's path on PATH, into BUF; false when it is not there. */
static bool on_path(const char *name, char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        if (n && snprintf(buf, cap, "%.*s/%s", (int)n, p, name) < (int)cap &&
            access(buf, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

const char *file_dialog_tool(void)
{
    static char found[PATH_MAX];
    const char *want = getenv("VKLLM_FILE_DIALOG");
    if (want && !strcmp(want, "builtin")) return NULL;
    if (want && (!strcmp(want, "zenity") || !strcmp(want, "kdialog")))
        return on_path(want, found, sizeof found) ? found : NULL;
    /* KDE's own first on KDE, else zenity, which every other desktop has */
    const char *desk = getenv("XDG_CURRENT_DESKTOP");
    bool kde = desk && strstr(desk, "KDE");
    if (kde && on_path("kdialog", found, sizeof found)) return found;
    if (on_path("zenity", found, sizeof found)) return found;
    return on_path("kdialog", found, sizeof found) ? found : NULL;
}

/* ---- running it */

int file_dialog_start(const char *dir, struct file_dialog **out, struct vkllm_error *err)
{
    *out = NULL;
    const char *tool = file_dialog_tool();
    if (!tool) return vkllm_fail(err, VKLLM_E_INVALID, "no file dialog program (zenity, kdialog)");
    const char *base = strrchr(tool, '/') ? strrchr(tool, '/') + 1 : tool;
    bool kdialog = !strcmp(base, "kdialog");
    char start[PATH_MAX + 2];
    /* zenity opens a folder given with a trailing slash, kdialog takes it as is */
    snprintf(start, sizeof start, "%s%s", dir && *dir ? dir : ".", kdialog ? "" : "/");
    char filename[PATH_MAX + 16];
    snprintf(filename, sizeof filename, "--filename=%s", start);
    char *zenity_argv[] = {(char *)tool,
                           "--file-selection",
                           "--title=Open a model",
                           "--file-filter=GGUF models | *.gguf *.GGUF",
                           "--file-filter=All files | *",
                           filename,
                           NULL};
    char *kdialog_argv[] = {(char *)tool,
                            "--title",
                            "Open a model",
                            "--getopenfilename",
                            start,
                            "*.gguf *.GGUF|GGUF models",
                            NULL};

    struct file_dialog *d = calloc(1, sizeof *d);
    if (!d) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    d->fd = -1;
    snprintf(d->tool, sizeof d->tool, "%s", kdialog ? "kdialog" : "zenity");
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        int e = vkllm_fail(err, VKLLM_E_IO, "%s: cannot make a pipe: %s", d->tool, strerror(errno));
        free(d);
        return e;
    }
    /* its stdout is the pipe; stdin and stderr (GTK's warnings) go nowhere */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGXFSZ);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0); /* a group of its own, led by it */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawn(&d->pid, tool, &fa, &at, kdialog ? kdialog_argv : zenity_argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        int e = vkllm_fail(err, VKLLM_E_IO, "%s: cannot run it: %s", tool, strerror(rc));
        free(d);
        return e;
    }
    d->pgid = d->pid;
    d->fd = fds[0];
    fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_NONBLOCK);
    *out = d;
    return VKLLM_OK;
}

/* Reads what is in the pipe now; false on an error other than "nothing yet". */
static bool drain(struct file_dialog *d)
{
    while (d->fd >= 0) {
        if (d->cap - d->len < 4096) {
            if (d->cap >= (1u << 20)) return false; /* no path is a megabyte */
            size_t cap = d->cap ? d->cap * 2 : 8192;
            char *p = realloc(d->out, cap);
            if (!p) return false;
            d->out = p;
            d->cap = cap;
        }
        ssize_t n = read(d->fd, d->out + d->len, d->cap - d->len - 1);
        if (n > 0) {
            d->len += (size_t)n;
        } else if (n == 0) {
            close(d->fd);
            d->fd = -1;
        } else {
            return errno == EAGAIN || errno == EINTR;
        }
    }
    return true;
}

enum file_dialog_state file_dialog_poll(struct file_dialog *d, char **path, struct vkllm_error *err)
{
    *path = NULL;
    if (!drain(d)) {
        vkllm_fail(err, VKLLM_E_IO, "%s: cannot read its answer", d->tool);
        return FILE_DIALOG_FAILED;
    }
    if (d->pid) {
        pid_t r = waitpid(d->pid, &d->status, WNOHANG);
        if (r == 0) return FILE_DIALOG_OPEN;
        d->pid = 0;
        /* what it left running in its group (a wrapper that forked and
         * exited: taken as cancelled below) goes now, while the group's
         * number cannot yet be anyone else's */
        if (d->pgid) kill(-d->pgid, SIGKILL);
        d->pgid = 0;
        if (r < 0) {
            vkllm_fail(err, VKLLM_E_IO, "%s: %s", d->tool, strerror(errno));
            return FILE_DIALOG_FAILED;
        }
    }
    /* it exited: what it wrote before is all in the pipe, unless it left a
     * child of its own holding it open (then that is all we take) */
    drain(d);
    int code = WIFEXITED(d->status) ? WEXITSTATUS(d->status) : -1;
    /* both programs: 0 with the path, 1 for Cancel or the window closed */
    if (code == 1) return FILE_DIALOG_CANCELLED;
    if (code != 0) {
        if (WIFSIGNALED(d->status))
            vkllm_fail(err, VKLLM_E_IO, "%s: killed by signal %d", d->tool, WTERMSIG(d->status));
        else
            vkllm_fail(err, VKLLM_E_IO, "%s: exited with status %d", d->tool, code);
        return FILE_DIALOG_FAILED;
    }
    size_t n = d->len;
    while (n && (d->out[n - 1] == '\n' || d->out[n - 1] == '\r'))
        n--;
    if (!n) return FILE_DIALOG_CANCELLED;
    *path = malloc(n + 1);
    if (!*path) {
        vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
        return FILE_DIALOG_FAILED;
    }
    memcpy(*path, d->out, n);
    (*path)[n] = 0;
    return FILE_DIALOG_CHOSEN;
}

void file_dialog_close(struct file_dialog *d)
{
    if (!d) return;
    if (d->pid) {
        /* a dialog has nothing to save: SIGKILL (its whole group), so the
         * wait below is short */
        kill(d->pgid ? -d->pgid : d->pid, SIGKILL);
        while (waitpid(d->pid, &d->status, 0) < 0 && errno == EINTR) {
        }
    }
    if (d->fd >= 0) close(d->fd);
    free(d->out);
    free(d);
}
