/* test_model_files.c: the chat window's model listing and file dialog
 * (app/chat/model_files.c, file_dialog.c).
 *
 * A folder with sub-folders, .gguf files (one a link), hidden entries, a
 * FIFO named like a model (listing must not open it: it would block), a
 * link that loops, a dangling link, names with control characters and
 * bidirectional overrides: listed folders first in natural order ("7b"
 * before "13b"), hidden and non-model entries left out, the bad links
 * counted, labels printable. A folder of 10,000 models lists whole and in
 * order; missing folders and files are one-line errors. Paths, sizes, and
 * the GGUF header of the bundled model and of a file that is not one. The
 * file dialog through fake zenity and kdialog programs on PATH: a choice, a
 * cancel, a failure, one killed while open (reaped at once), and
 * VKLLM_FILE_DIALOG=builtin. Host code only.
 */
#include "file_dialog.h"
#include "model_files.h"
#include "testhelp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GEN VKLLM_TEST_GEN "/model-files"

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec t = {ms / 1000, ms % 1000 * 1000000};
    nanosleep(&t, NULL);
}

static const struct model_entry *find(const struct model_dir *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->entries[i].name, name)) return &d->entries[i];
    return NULL;
}

/* ---- listing */

static void check_list(void)
{
    const char *dir = GEN "/models";
    REQUIRE(system("rm -rf '" GEN "' && mkdir -p '" GEN "/models'") == 0);
    mkdir(GEN "/models/zoo", 0755);
    mkdir(GEN "/models/Archive", 0755);
    mkdir(GEN "/models/.cache", 0755);
    write_text(GEN "/models/llama-13b.gguf", "0123456789", 0644);
    write_text(GEN "/models/llama-7b.gguf", "01234", 0644);
    write_text(GEN "/models/Alpha.GGUF", "x", 0644);
    write_text(GEN "/models/.hidden.gguf", "x", 0644);
    write_text(GEN "/models/notes.txt", "x", 0644);
    write_text(GEN "/models/evil\x1b[2J\xe2\x80\xae.gguf", "x", 0644);
    REQUIRE(symlink(VKLLM_TEST_DATA "/stories260K.gguf", GEN "/models/stories.gguf") == 0);
    REQUIRE(symlink("zoo", GEN "/models/zoo-link") == 0);
    REQUIRE(symlink("loop.gguf", GEN "/models/loop.gguf") == 0);
    REQUIRE(symlink("nowhere.gguf", GEN "/models/dangling.gguf") == 0);
    REQUIRE(mkfifo(GEN "/models/fifo.gguf", 0644) == 0);

    struct model_dir d;
    struct vkllm_error err = {0};
    /* a FIFO opened would block here forever: the test's timeout would catch it */
    REQUIRE_OK(model_files_list(dir, &d, &err), "%s", err.msg);
    CHECK(d.path && d.path[0] == '/' && strstr(d.path, "/model-files/models"), "%s", d.path);
    const char *want[] = {"Archive",
                          "zoo",
                          "zoo-link",
                          "Alpha.GGUF",
                          "evil\x1b[2J\xe2\x80\xae.gguf",
                          "llama-7b.gguf",
                          "llama-13b.gguf",
                          "stories.gguf"};
    size_t n_want = sizeof want / sizeof want[0];
    CHECK(d.n == n_want, "%zu entries", d.n);
    for (size_t i = 0; i < d.n && i < n_want; i++)
        CHECK(!strcmp(d.entries[i].name, want[i]), "entry %zu is %s, not %s", i, d.entries[i].name,
              want[i]);
    CHECK(d.n_skipped == 2, "the looping and dangling links: %zu skipped", d.n_skipped);
    CHECK(!d.truncated);
    const struct model_entry *e = find(&d, "llama-13b.gguf");
    CHECK(e && !e->dir && e->size == 10);
    e = find(&d, "stories.gguf");
    CHECK(e && !e->dir && e->size == 1185376, "a link counts with its target's size");
    e = find(&d, "zoo-link");
    CHECK(e && e->dir, "a link to a folder is a folder");
    e = find(&d, "evil\x1b[2J\xe2\x80\xae.gguf");
    CHECK(e && !strcmp(e->label, "evil\\x1b[2J\\xe2\\x80\\xae.gguf"), "label %s",
          e ? e->label : "-");
    CHECK(!find(&d, ".hidden.gguf") && !find(&d, ".cache") && !find(&d, "notes.txt") &&
          !find(&d, "fifo.gguf"));
    model_files_free(&d);
    model_files_free(&d); /* twice is fine */

    /* a folder given through a link and with "..": listed as its real path */
    REQUIRE_OK(model_files_list(GEN "/models/zoo-link/..", &d, &err), "%s", err.msg);
    CHECK(d.n == n_want && d.path && !strcmp(strrchr(d.path, '/'), "/models"), "%s", d.path);
    model_files_free(&d);

    /* errors: one line naming the path, and nothing listed */
    CHECK(model_files_list(GEN "/missing", &d, &err) == VKLLM_E_IO && d.n == 0 && !d.path);
    CHECK(strstr(err.msg, "/missing: No such file or directory"), "%s", err.msg);
    CHECK(model_files_list(GEN "/models/notes.txt", &d, &err) == VKLLM_E_IO);
    CHECK(strstr(err.msg, "notes.txt: Not a directory"), "%s", err.msg);
    CHECK(model_files_list("", &d, &err) == VKLLM_E_IO);
    CHECK(model_files_list(GEN "/models/loop.gguf", &d, &err) == VKLLM_E_IO);
    CHECK(strstr(err.msg, "loop.gguf: Too many levels of symbolic links"), "%s", err.msg);
    /* a folder it may not read: root reads everything, so only as another user */
    mkdir(GEN "/locked", 0);
    chmod(GEN "/locked", 0);
    if (geteuid() != 0) {
        CHECK(model_files_list(GEN "/locked", &d, &err) == VKLLM_E_IO);
        CHECK(strstr(err.msg, "Permission denied"), "%s", err.msg);
    }
    chmod(GEN "/locked", 0755);
}

/* 10,000 models: all listed, in order, and quickly (once, when shown). */
static void check_many(void)
{
    const char *dir = GEN "/many";
    mkdir(dir, 0755);
    /* empty: no entries, and no qsort of a NULL array (UBSan) */
    struct model_dir e;
    struct vkllm_error e_err = {0};
    REQUIRE_OK(model_files_list(dir, &e, &e_err), "%s", e_err.msg);
    CHECK(e.n == 0 && !e.truncated && e.path, "%zu", e.n);
    model_files_free(&e);
    char path[512];
    for (int i = 0; i < 10000; i++) {
        snprintf(path, sizeof path, "%s/m%d.gguf", dir, 9999 - i);
        write_text(path, "", 0644);
    }
    struct model_dir d;
    struct vkllm_error err = {0};
    double t0 = now_s();
    REQUIRE_OK(model_files_list(dir, &d, &err), "%s", err.msg);
    double dt = now_s() - t0;
    CHECK(d.n == 10000, "%zu", d.n);
    bool order = true;
    for (size_t i = 0; i < d.n; i++) {
        snprintf(path, sizeof path, "m%zu.gguf", i);
        order &= !strcmp(d.entries[i].name, path);
    }
    CHECK(order, "natural order: m0, m1, ..., m9999");
    /* a generous bound (sanitizers, a loaded machine): it is milliseconds */
    CHECK(dt < 5, "listing 10000 files took %.2f s", dt);
    CHECK(!d.truncated && d.n_seen == 10000, "%zu", d.n_seen);
    model_files_free(&d);

    /* probe 4, R-18.2: past the cap the panel said "the first 100000" of an
     * unknown total; the rest are counted, not examined */
    REQUIRE_OK(model_files_list_at_most(dir, 1000, &d, &err), "%s", err.msg);
    CHECK(d.truncated && d.n_seen == 10000 && d.n == 1000, "%d: %zu of %zu", d.truncated, d.n,
          d.n_seen);
    model_files_free(&d);
    REQUIRE(system("rm -rf '" GEN "/many'") == 0);
}

/* ---- paths, sizes, order, headers */

static void check_helpers(void)
{
    char *p;
    p = model_files_parent("/a/b/c");
    CHECK(p && !strcmp(p, "/a/b"), "%s", p);
    free(p);
    p = model_files_parent("/a/b/");
    CHECK(p && !strcmp(p, "/a"), "%s", p);
    free(p);
    p = model_files_parent("/a");
    CHECK(p && !strcmp(p, "/"), "%s", p);
    free(p);
    p = model_files_parent("/");
    CHECK(p && !strcmp(p, "/"), "%s", p);
    free(p);
    p = model_files_parent("//x");
    CHECK(p && !strcmp(p, "/"), "%s", p);
    free(p);
    p = model_files_join("/", "x.gguf");
    CHECK(p && !strcmp(p, "/x.gguf"), "%s", p);
    free(p);
    p = model_files_join("/m", "x.gguf");
    CHECK(p && !strcmp(p, "/m/x.gguf"), "%s", p);
    free(p);
    char buf[32];
    model_files_size(812, buf, sizeof buf);
    CHECK(!strcmp(buf, "812 B"), "%s", buf);
    model_files_size(1185376, buf, sizeof buf);
    CHECK(!strcmp(buf, "1.13 MiB"), "%s", buf);
    model_files_size(4370000000ull, buf, sizeof buf);
    CHECK(!strcmp(buf, "4.07 GiB"), "%s", buf);
    model_files_size(70ull << 30, buf, sizeof buf);
    CHECK(!strcmp(buf, "70.0 GiB"), "%s", buf);
    CHECK(model_files_cmp("a7b", "a13b") < 0 && model_files_cmp("a13b", "a7b") > 0);
    CHECK(model_files_cmp("Q4", "q4") != 0 && model_files_cmp("abc", "ABD") < 0);
    CHECK(model_files_cmp("x007", "x7") != 0 && model_files_cmp("x", "x1") < 0);
    CHECK(model_files_cmp("v99999999999999999999999", "v100000000000000000000000") < 0,
          "digit runs longer than any integer");

    struct model_header h;
    struct vkllm_error err = {0};
    REQUIRE_OK(model_files_header(VKLLM_TEST_DATA "/stories260K.gguf", &h, NULL, &err), "%s",
               err.msg);
    CHECK(!strcmp(h.arch, "llama") && !strcmp(h.quant, "F32"), "%s %s", h.arch, h.quant);
    CHECK(h.n_params > 250000 && h.n_params < 350000, "%llu", (unsigned long long)h.n_params);
    CHECK(model_files_header(GEN "/models/notes.txt", &h, NULL, &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "notes.txt: ") && h.arch[0] == 0, "%s", err.msg);
    /* a FIFO is refused, never opened */
    CHECK(model_files_header(GEN "/models/fifo.gguf", &h, NULL, &err) == VKLLM_E_IO, "%s", err.msg);
}

/* Probe 4, R-13: a valid GGUF whose metadata is hundreds of MB (a vocabulary
 * of 100M empty strings) was parsed whole for its row: seconds and GBs per
 * file, and the panel joined that thread on every change of folder. Here 40
 * MB of header: refused at the cap, and a cancel ends the walk at once. */
static void put_u32(FILE *f, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        fputc((int)(v >> 8 * i & 0xff), f);
}

static void put_u64(FILE *f, uint64_t v)
{
    put_u32(f, (uint32_t)v);
    put_u32(f, (uint32_t)(v >> 32));
}

/* A GGUF of no tensors whose second key is an array of N empty strings. */
static void write_big_header(const char *path, uint64_t n)
{
    static const char zeros[1 << 16];
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    fputs("GGUF", f);
    put_u32(f, 3);
    put_u64(f, 0); /* tensors */
    put_u64(f, 2); /* key/values */
    put_u64(f, 20);
    fputs("general.architecture", f);
    put_u32(f, 8); /* a string */
    put_u64(f, 5);
    fputs("llama", f);
    put_u64(f, 3);
    fputs("big", f);
    put_u32(f, 9); /* an array */
    put_u32(f, 8); /* of strings */
    put_u64(f, n);
    for (uint64_t left = n * 8; left;) {
        size_t k = left < sizeof zeros ? (size_t)left : sizeof zeros;
        fwrite(zeros, 1, k, f);
        left -= k;
    }
    REQUIRE(fclose(f) == 0, "%s", path);
}

static void check_big_header(void)
{
    const char *path = GEN "/big-header.gguf";
    write_big_header(path, (MODEL_FILES_HEAD_MAX >> 3) + (1 << 20));
    struct model_header h;
    struct vkllm_error err = {0};
    double t0 = now_s();
    int rc = model_files_header(path, &h, NULL, &err);
    double dt = now_s() - t0;
    CHECK(rc == VKLLM_E_UNSUPPORTED && h.too_large, "rc %d: %s", rc, err.msg);
    CHECK(strstr(err.msg, "big-header.gguf: header too large to list"), "%s", err.msg);
    CHECK(dt < 5, "%.2f s", dt);
    atomic_bool cancel = true;
    rc = model_files_header(path, &h, &cancel, &err);
    CHECK(rc == VKLLM_E_IO && strstr(err.msg, ": stopped") && !h.too_large, "rc %d: %s", rc,
          err.msg);
    /* the same layout under the cap is read as before */
    write_big_header(path, 1000);
    REQUIRE_OK(model_files_header(path, &h, NULL, &err), "%s", err.msg);
    CHECK(!strcmp(h.arch, "llama") && !h.too_large, "%s", h.arch);
    unlink(path);
}

/* ---- the file dialog, with fake programs */

/* A fake dialog: it logs its arguments to GEN/args, then runs BODY. */
static void fake(const char *name, const char *body)
{
    char path[512], text[1024];
    snprintf(path, sizeof path, GEN "/bin/%s", name);
    snprintf(text, sizeof text, "#!/bin/sh\nprintf '%%s\\n' \"$@\" > '" GEN "/args'\n%s\n", body);
    write_text(path, text, 0755);
}

/* Polls D until it answers (at most 10 s). */
static enum file_dialog_state wait_answer(struct file_dialog *d, char **path)
{
    struct vkllm_error err = {0};
    enum file_dialog_state s;
    double t0 = now_s();
    while ((s = file_dialog_poll(d, path, &err)) == FILE_DIALOG_OPEN && now_s() - t0 < 10)
        nap_ms(5);
    if (s == FILE_DIALOG_FAILED) fprintf(stderr, "  (%s)\n", err.msg);
    return s;
}

static const char *read_file_text(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

static char *read_args(void)
{
    static char buf[4096];
    FILE *f = fopen(GEN "/args", "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

static void check_dialog(void)
{
    mkdir(GEN "/bin", 0755);
    setenv("PATH", GEN "/bin", 1);
    unsetenv("VKLLM_FILE_DIALOG");
    unsetenv("XDG_CURRENT_DESKTOP");
    CHECK(file_dialog_tool() == NULL, "no program on PATH");

    struct file_dialog *d;
    struct vkllm_error err = {0};
    char *path;
    fake("zenity", "/bin/sleep 0.2; echo '/models/a b.gguf'");
    const char *tool = file_dialog_tool();
    CHECK(tool && !strcmp(tool, GEN "/bin/zenity"), "%s", tool ? tool : "NULL");
    setenv("VKLLM_FILE_DIALOG", "builtin", 1);
    CHECK(file_dialog_tool() == NULL, "VKLLM_FILE_DIALOG=builtin");
    CHECK(file_dialog_start("/m", &d, &err) == VKLLM_E_INVALID && !d);
    unsetenv("VKLLM_FILE_DIALOG");

    /* a choice: polled without blocking until it comes */
    REQUIRE_OK(file_dialog_start("/models", &d, &err), "%s", err.msg);
    CHECK(file_dialog_poll(d, &path, &err) == FILE_DIALOG_OPEN && !path, "the poll waited");
    CHECK(wait_answer(d, &path) == FILE_DIALOG_CHOSEN && path && !strcmp(path, "/models/a b.gguf"),
          "%s", path ? path : "NULL");
    free(path);
    file_dialog_close(d);
    char *args = read_args();
    CHECK(strstr(args, "--file-selection\n") && strstr(args, "--filename=/models/\n") &&
              strstr(args, "*.gguf"),
          "zenity's arguments: %s", args);

    /* Cancel (status 1, nothing printed) and a failure */
    fake("zenity", "exit 1");
    REQUIRE_OK(file_dialog_start("/", &d, &err), "%s", err.msg);
    CHECK(wait_answer(d, &path) == FILE_DIALOG_CANCELLED && !path);
    file_dialog_close(d);
    fake("zenity", "exit 3");
    REQUIRE_OK(file_dialog_start("/", &d, &err), "%s", err.msg);
    CHECK(wait_answer(d, &path) == FILE_DIALOG_FAILED && !path);
    CHECK(file_dialog_poll(d, &path, &err) == FILE_DIALOG_FAILED &&
              strstr(err.msg, "zenity: exited with status 3"),
          "%s", err.msg);
    file_dialog_close(d);

    /* the window quits while the dialog is open: killed and reaped at once */
    fake("zenity", "exec /bin/sleep 30");
    REQUIRE_OK(file_dialog_start("/", &d, &err), "%s", err.msg);
    nap_ms(100);
    double t0 = now_s();
    file_dialog_close(d);
    CHECK(now_s() - t0 < 2, "closing waited %.1f s for the dialog", now_s() - t0);
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a child was left unreaped");

    /* probe 4, R-15: the dialog started with the window's open files (fonts
     * opened without O_CLOEXEC) and its ignored SIGPIPE and SIGXFSZ; here a
     * descriptor left open on purpose, SIGPIPE ignored, SIGUSR1 blocked */
    int fd = open("/dev/null", O_RDONLY);
    REQUIRE(fd >= 0 && dup2(fd, 77) == 77);
    close(fd);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old_mask);
    fake("zenity", "[ -e /proc/$$/fd/77 ] && echo fd 77 > '" GEN "/leaks'\n"
                   "while read k v; do case $k in\n"
                   "SigIgn:) [ $((0x$v & 0x1001000)) = 0 ] || echo SigIgn $v;;\n" /* PIPE, XFSZ */
                   "SigBlk:) [ $((0x$v)) = 0 ] || echo SigBlk $v;;\n"
                   "esac; done < /proc/$$/status >> '" GEN "/leaks'\necho /m/x.gguf");
    unlink(GEN "/leaks");
    REQUIRE_OK(file_dialog_start("/", &d, &err), "%s", err.msg);
    CHECK(wait_answer(d, &path) == FILE_DIALOG_CHOSEN && path);
    free(path);
    file_dialog_close(d);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    signal(SIGPIPE, old_pipe);
    close(77);
    struct stat st;
    CHECK(stat(GEN "/leaks", &st) == 0 && st.st_size == 0, "the dialog inherited: %s",
          read_file_text(GEN "/leaks"));
    /* a wrapper that starts the dialog and exits at once: taken as cancelled,
     * and what it left running is killed with it */
    fake("zenity", "/bin/sleep 30 &\necho $! > '" GEN "/grandchild'\nexit 0");
    REQUIRE_OK(file_dialog_start("/", &d, &err), "%s", err.msg);
    CHECK(wait_answer(d, &path) == FILE_DIALOG_CANCELLED && !path);
    file_dialog_close(d);
    long grandchild = atol(read_file_text(GEN "/grandchild"));
    char proc[64], state = 0;
    snprintf(proc, sizeof proc, "/proc/%ld/stat", grandchild);
    for (int i = 0; i < 200 && grandchild > 0; i++) { /* SIGKILL lands soon, not at once */
        FILE *f = fopen(proc, "r");
        state = 0;
        if (f && fscanf(f, "%*d (%*[^)]) %c", &state) != 1) state = 0;
        if (f) fclose(f);
        if (!state || state == 'Z') break;
        nap_ms(10);
    }
    CHECK(grandchild > 0 && (!state || state == 'Z'), "the dialog's child %ld lives on (%c)",
          grandchild, state ? state : '-');
    if (grandchild > 0 && state && state != 'Z') kill((pid_t)grandchild, SIGKILL);

    /* kdialog on KDE, and when it is the only one */
    fake("kdialog", "echo /k/model.gguf");
    setenv("XDG_CURRENT_DESKTOP", "KDE", 1);
    tool = file_dialog_tool();
    CHECK(tool && strstr(tool, "/kdialog"), "%s", tool ? tool : "NULL");
    REQUIRE_OK(file_dialog_start("/k", &d, &err), "%s", err.msg);
    CHECK(wait_answer(d, &path) == FILE_DIALOG_CHOSEN && path && !strcmp(path, "/k/model.gguf"));
    free(path);
    file_dialog_close(d);
    args = read_args();
    CHECK(strstr(args, "--getopenfilename\n/k\n") && strstr(args, "*.gguf"), "kdialog's: %s", args);
    unsetenv("XDG_CURRENT_DESKTOP");
    unlink(GEN "/bin/zenity");
    tool = file_dialog_tool();
    CHECK(tool && strstr(tool, "/kdialog"), "kdialog alone: %s", tool ? tool : "NULL");
    setenv("VKLLM_FILE_DIALOG", "zenity", 1);
    CHECK(file_dialog_tool() == NULL, "zenity asked for but missing");
    unsetenv("VKLLM_FILE_DIALOG");
}

int main(void)
{
    check_list();
    check_many();
    check_helpers();
    check_big_header();
    check_dialog();
    return TEST_REPORT();
}
