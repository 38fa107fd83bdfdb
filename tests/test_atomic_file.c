/* test_atomic_file.c: engine/core/atomic_file.c when the target's directory
 * changes between atomic_file_create and commit or abort (a folder renamed,
 * or renamed and replaced by a link to another, during a long quantize).
 *
 * Commit and abort named the temporary file by its path, which then led
 * elsewhere: the write failed at the very end ("No such file or directory")
 * and the whole temporary file stayed in the renamed folder. They now work
 * through the directory held open since create: the file lands where it
 * started, and an abort removes the temporary file. */
#define _GNU_SOURCE
#include "core/atomic_file.h"
#include "testhelp.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* PATH's first line (at most 63 bytes), or "" */
static const char *content(const char *path)
{
    static char buf[64];
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return buf;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    return buf;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f, "%s", path);
    fputs(text, f);
    REQUIRE(fclose(f) == 0);
}

/* how many .vkllm.tmp-* files DIR holds */
static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strncmp(e->d_name, ".vkllm.tmp-", 11) == 0;
    closedir(d);
    return n;
}

/* In the current directory: the temporary file for D/out.txt, filled with
 * "new"; then D is moved to D.old and, if LINK, D becomes a link to E. */
static char *start(bool link)
{
    REQUIRE(mkdir("D", 0777) == 0 && mkdir("E", 0777) == 0);
    put("D/out.txt", "old\n");
    put("E/out.txt", "E's own\n");
    char *tmp = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(atomic_file_create("D/out.txt", &tmp, &err), "%s", err.msg);
    /* the caller fills it by name, right after create */
    put(tmp, "new\n");
    REQUIRE(rename("D", "D.old") == 0);
    if (link) REQUIRE(symlink("E", "D") == 0);
    return tmp;
}

int main(void)
{
    char root[] = "/tmp/vkllm-atomic-XXXXXX";
    REQUIRE(mkdtemp(root) && chdir(root) == 0);
    for (int link = 0; link < 2; link++) {
        const char *how = link ? "renamed, then a link to E" : "renamed";
        REQUIRE(mkdir(how, 0777) == 0 && chdir(how) == 0);

        /* commit: the file lands in the directory it started in */
        char *tmp = start(link);
        struct vkllm_error err = {0};
        int rc = atomic_file_commit(tmp, "D/out.txt", &err);
        CHECK(rc == VKLLM_OK, "%s: commit: %s", how, err.msg);
        CHECK(strcmp(content("D.old/out.txt"), "new\n") == 0, "%s: D.old/out.txt holds '%s'", how,
              content("D.old/out.txt"));
        CHECK(strcmp(content("E/out.txt"), "E's own\n") == 0, "%s: E/out.txt holds '%s'", how,
              content("E/out.txt"));
        CHECK(leftovers("D.old") == 0 && leftovers("E") == 0,
              "%s: a temporary file stayed after commit", how);

        /* abort: the temporary file goes, wherever its folder went */
        REQUIRE(mkdir("abort", 0777) == 0 && chdir("abort") == 0);
        atomic_file_abort(start(link));
        CHECK(leftovers("D.old") == 0, "%s: a temporary file stayed after abort", how);
        CHECK(strcmp(content("D.old/out.txt"), "old\n") == 0, "%s: abort changed the target", how);
        REQUIRE(chdir("../..") == 0);
    }
    REQUIRE(chdir("/") == 0);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return TEST_REPORT();
}
