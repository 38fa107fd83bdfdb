/* test_history.c: the chat window's conversation tree and its files
 * (app/chat/history.c).
 *
 * The tree: append, streaming, regenerate (twice, then back), edits at several
 * depths and switching between their branches, titles. The files: save/load
 * of a branched tree (same structure, same active path), corrupt files of
 * every kind set aside and never overwritten while the rest of the list loads,
 * a writer's leftover temporary file, a writer killed with SIGKILL mid-write
 * (the file is always the old or the new version, whole), the data directory,
 * search, rename, delete, Markdown export, and the cost of saving a
 * 2,000-message conversation. Host code only.
 */
#include "history.h"
#include "testhelp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GEN VKLLM_TEST_GEN "/history"

/* ============================== Helpers ============================== */

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Removes what is inside PATH (two levels deep at most, as the tests make). */
static void empty_dir(const char *path, int depth)
{
    DIR *d = opendir(path);
    REQUIRE(d, "%s: %s", path, strerror(errno));
    struct dirent *de;
    char f[1024];
    struct stat st;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(f, sizeof f, "%s/%s", path, de->d_name);
            REQUIRE(lstat(f, &st) == 0);
            if (S_ISDIR(st.st_mode) && depth < 8) {
                empty_dir(f, depth + 1);
                REQUIRE(rmdir(f) == 0, "%s: %s", f, strerror(errno));
            } else {
                REQUIRE(unlink(f) == 0, "%s: %s", f, strerror(errno));
            }
        }
    closedir(d);
}

/* GEN/NAME, made empty. */
static const char *fresh_dir(const char *name)
{
    static char path[512];
    mkdir(VKLLM_TEST_GEN, 0755);
    mkdir(GEN, 0755);
    snprintf(path, sizeof path, "%s/%s", GEN, name);
    if (mkdir(path, 0700) != 0) empty_dir(path, 0);
    return path;
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char *buf;
    size_t cap = 1 << 16, len = 0;
    free(buf);
    buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    REQUIRE(buf);
    buf[len] = 0;
    if (n) *n = len;
    return buf;
}

static void write_all(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0, "%s", path);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* How many names in DIR contain PART. */
static int count_files(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    REQUIRE(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strstr(de->d_name, part) != NULL;
    closedir(d);
    return n;
}

static const char *text_at(const history *h, size_t i)
{
    const struct history_msg *m = history_at(h, i);
    return m ? m->text : "(none)";
}

static void append(history *h, enum history_role role, const char *text, uint32_t *id)
{
    REQUIRE_OK(history_append(h, role, text, strlen(text), id, NULL), "%s", text);
}

static void check_siblings(const history *h, size_t i, uint32_t index, uint32_t count)
{
    uint32_t a, b;
    history_siblings(h, i, &a, &b);
    CHECK(a == index && b == count, "message %zu: %u/%u, expected %u/%u", i, a, b, index, count);
}

/* The path's texts, joined with '|'. */
static const char *path_of(const history *h)
{
    static char s[4096];
    size_t n = 0;
    s[0] = 0;
    for (size_t i = 0; i < history_count(h); i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "%s%s", i ? "|" : "", text_at(h, i));
    return s;
}

/* ============================== The tree ============================== */

static void test_append_and_stream(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    CHECK(history_count(h) == 0 && history_at(h, 0) == NULL);
    CHECK(!strcmp(history_title(h), "New chat"));
    uint64_t rev = history_revision(h);
    uint32_t sys, user, reply;
    append(h, HISTORY_SYSTEM, "You are terse.", &sys);
    append(h, HISTORY_USER, "Hello", &user);
    REQUIRE_OK(history_append(h, HISTORY_ASSISTANT, "", 0, &reply, NULL));
    CHECK(history_revision(h) > rev, "changes bump the revision");
    CHECK(history_count(h) == 3 && sys == 0 && user == 1 && reply == 2);
    CHECK(history_at(h, 0)->role == HISTORY_SYSTEM && history_at(h, 2)->role == HISTORY_ASSISTANT);

    /* a long reply a piece at a time: every byte arrives, in order */
    const char *pieces[] = {"Hi", " there", ", ", "\xd0\xbc\xd0\xb8\xd1\x80", "!"};
    char expect[16384] = "";
    for (int i = 0; i < 2000; i++) {
        const char *p = pieces[i % 5];
        rev = history_revision(h);
        REQUIRE_OK(history_stream(h, reply, p, strlen(p), NULL));
        CHECK(history_revision(h) > rev);
        strcat(expect, p);
    }
    const struct history_msg *m = history_at(h, 2);
    CHECK(m->len == strlen(expect) && !strcmp(m->text, expect), "the streamed text is whole");
    CHECK(m->id == reply && !m->has_stats && m->created > 0);

    /* bad input is refused and changes nothing */
    struct vkllm_error err = {0};
    CHECK(history_stream(h, reply, "\xff", 1, &err) == VKLLM_E_INVALID && strstr(err.msg, "UTF-8"));
    CHECK(history_append(h, HISTORY_USER, "a\0b", 3, NULL, NULL) == VKLLM_E_INVALID,
          "a NUL would cut the text short");
    CHECK(history_stream(h, 99, "x", 1, NULL) == VKLLM_E_INVALID, "no message 99");
    CHECK(history_at(h, 2)->len == strlen(expect) && history_count(h) == 3);

    struct history_stats st = {
        .n_tokens = 2000, .tokens_per_s = 41.5, .model = "tiny-llama", .end = HISTORY_END_USER};
    REQUIRE_OK(history_set_stats(h, reply, &st, NULL));
    m = history_at(h, 2);
    CHECK(m->has_stats && m->stats.n_tokens == 2000 && m->stats.tokens_per_s == 41.5 &&
              m->stats.end == HISTORY_END_USER && !strcmp(m->stats.model, "tiny-llama") &&
              m->stats.model != st.model,
          "stats are copied");

    /* a reply streams into its own node even while another branch is shown */
    uint32_t r2;
    REQUIRE_OK(history_regenerate(h, &r2, NULL));
    CHECK(history_switch(h, 2, -1));
    REQUIRE_OK(history_stream(h, r2, "second", 6, NULL));
    CHECK(!strcmp(history_get(h, r2)->text, "second") && history_at(h, 2)->id == reply);

    /* new chat: nothing left, a new id */
    char id[64];
    snprintf(id, sizeof id, "%s", history_id(h));
    history_reset(h);
    CHECK(history_count(h) == 0 && history_get(h, 0) == NULL && strcmp(id, history_id(h)));
    append(h, HISTORY_USER, "again", NULL);
    CHECK(history_count(h) == 1 && !strcmp(history_title(h), "again"));
    history_free(h);
}

static void test_regenerate(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    uint32_t a1, a2, a3;
    append(h, HISTORY_USER, "Tell me a joke", NULL);
    struct vkllm_error err = {0};
    history *empty;
    REQUIRE_OK(history_create(&empty, NULL));
    CHECK(history_regenerate(empty, NULL, &err) == VKLLM_E_INVALID, "nothing to regenerate");
    history_free(empty);
    append(h, HISTORY_ASSISTANT, "joke one", &a1);
    check_siblings(h, 1, 1, 1);
    REQUIRE_OK(history_regenerate(h, &a2, NULL));
    CHECK(history_count(h) == 2 && history_at(h, 1)->id == a2 && history_at(h, 1)->len == 0);
    REQUIRE_OK(history_stream(h, a2, "joke two", 8, NULL));
    REQUIRE_OK(history_regenerate(h, &a3, NULL));
    REQUIRE_OK(history_stream(h, a3, "joke three", 10, NULL));
    check_siblings(h, 1, 3, 3);
    check_siblings(h, 0, 1, 1);
    CHECK(!history_switch(h, 1, +1), "no next after the last");
    CHECK(history_switch(h, 1, -1) && !strcmp(text_at(h, 1), "joke two"));
    check_siblings(h, 1, 2, 3);
    CHECK(history_switch(h, 1, -1) && !strcmp(text_at(h, 1), "joke one"));
    check_siblings(h, 1, 1, 3);
    CHECK(!history_switch(h, 1, -1), "no previous before the first");
    CHECK(!history_switch(h, 5, -1), "no message 5");
    /* the conversation goes on from the reply shown */
    append(h, HISTORY_USER, "another", NULL);
    CHECK(!strcmp(path_of(h), "Tell me a joke|joke one|another"));
    CHECK(history_switch(h, 1, +1) && !strcmp(path_of(h), "Tell me a joke|joke two"));
    CHECK(history_switch(h, 1, -1) && !strcmp(path_of(h), "Tell me a joke|joke one|another"),
          "back, and what followed is back too");
    history_free(h);
}

/* Regression (probe 3, Q-12.9): a turn that failed before any text (a
 * prompt longer than the context) left an empty reply in the tree and the
 * file, and each Regenerate after it stacked another. */
static void test_failed_turn(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    uint32_t r, r2, a1;
    append(h, HISTORY_USER, "Tell me a joke", NULL);
    REQUIRE_OK(history_append(h, HISTORY_ASSISTANT, "", 0, &r, NULL));
    CHECK(history_drop_reply(h, r), "the failed turn's reply stays");
    CHECK(history_count(h) == 1 && !history_get(h, r), "%zu messages", history_count(h));
    /* Regenerate after the failure asks again: one reply, not a second */
    REQUIRE_OK(history_regenerate(h, &r2, NULL));
    CHECK(r2 == r && history_count(h) == 2 && history_at(h, 1)->len == 0);
    check_siblings(h, 1, 1, 1);
    CHECK(history_drop_reply(h, r2) && history_count(h) == 1, "the retry's reply stays");
    /* a failed regenerate: the earlier reply is shown again */
    append(h, HISTORY_ASSISTANT, "joke one", &a1);
    REQUIRE_OK(history_regenerate(h, &r, NULL));
    check_siblings(h, 1, 2, 2);
    CHECK(history_drop_reply(h, r) && !strcmp(path_of(h), "Tell me a joke|joke one"));
    check_siblings(h, 1, 1, 1);
    /* only an empty newest reply goes */
    CHECK(!history_drop_reply(h, a1), "a reply with text was dropped");
    REQUIRE_OK(history_regenerate(h, &r, NULL));
    REQUIRE_OK(history_stream(h, r, "x", 1, NULL));
    CHECK(!history_drop_reply(h, r), "a reply with text was dropped");
    CHECK(!history_drop_reply(h, 0), "a user message was dropped");
    history_free(h);
}

static void test_edit_branches(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    append(h, HISTORY_SYSTEM, "sys", NULL);
    append(h, HISTORY_USER, "u1", NULL);
    append(h, HISTORY_ASSISTANT, "a1", NULL);
    append(h, HISTORY_USER, "u2", NULL);
    append(h, HISTORY_ASSISTANT, "a2", NULL);
    append(h, HISTORY_USER, "u3", NULL);
    append(h, HISTORY_ASSISTANT, "a3", NULL);

    /* depth 3: the path ends at the edit, the old reply stays under u2 */
    uint32_t id;
    REQUIRE_OK(history_edit(h, 3, "u2 edited", 9, &id, NULL));
    CHECK(!strcmp(path_of(h), "sys|u1|a1|u2 edited") && history_at(h, 3)->id == id);
    CHECK(history_at(h, 3)->role == HISTORY_USER);
    check_siblings(h, 3, 2, 2);
    append(h, HISTORY_ASSISTANT, "a2'", NULL);

    /* depth 1: the first user message */
    REQUIRE_OK(history_edit(h, 1, "u1 edited", 9, NULL, NULL));
    CHECK(!strcmp(path_of(h), "sys|u1 edited"));
    check_siblings(h, 1, 2, 2);
    append(h, HISTORY_ASSISTANT, "b1", NULL);

    /* back to the first branch: its own latest choices come back */
    CHECK(history_switch(h, 1, -1));
    CHECK(!strcmp(path_of(h), "sys|u1|a1|u2 edited|a2'"), "%s", path_of(h));
    check_siblings(h, 3, 2, 2);
    CHECK(history_switch(h, 3, -1));
    CHECK(!strcmp(path_of(h), "sys|u1|a1|u2|a2|u3|a3"), "%s", path_of(h));

    /* depth 5, inside the old branch, then the system prompt itself */
    REQUIRE_OK(history_edit(h, 5, "u3 edited", 9, NULL, NULL));
    check_siblings(h, 5, 2, 2);
    CHECK(history_switch(h, 5, -1) && !strcmp(path_of(h), "sys|u1|a1|u2|a2|u3|a3"));
    REQUIRE_OK(history_edit(h, 0, "new sys", 7, NULL, NULL));
    CHECK(!strcmp(path_of(h), "new sys") && history_at(h, 0)->role == HISTORY_SYSTEM);
    check_siblings(h, 0, 2, 2);
    CHECK(history_switch(h, 0, -1) && history_switch(h, 1, +1) &&
              !strcmp(path_of(h), "sys|u1 edited|b1"),
          "%s", path_of(h));
    CHECK(history_edit(h, 3, "x", 1, NULL, NULL) == VKLLM_E_INVALID, "past the path's end");
    history_free(h);
}

static void test_title(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    append(h, HISTORY_SYSTEM, "system prompts are not titles", NULL);
    append(h, HISTORY_USER, "  How\tdo I\n\n  bake   bread? ", NULL);
    CHECK(!strcmp(history_title(h), "How do I bake bread?"), "%s", history_title(h));

    /* cut at ~60 bytes, never inside a character: 2-byte Cyrillic letters */
    history_reset(h);
    char text[512] = "";
    for (int i = 0; i < 40; i++)
        strcat(text, "\xd0\xb6"); /* ж */
    append(h, HISTORY_USER, text, NULL);
    char t[80];
    snprintf(t, sizeof t, "%s", history_title(h));
    size_t n = strlen(t);
    CHECK(n <= 63 && n >= 58 && !strcmp(t + n - 3, "\xe2\x80\xa6"), "%zu bytes: %s", n, t);
    CHECK(!memcmp(t, text, n - 3) && (n - 3) % 2 == 0, "whole characters only");

    REQUIRE_OK(history_set_title(h, " Bread\nnotes ", NULL));
    CHECK(!strcmp(history_title(h), "Bread notes"));
    CHECK(history_set_title(h, "\xc3", NULL) == VKLLM_E_INVALID);
    REQUIRE_OK(history_set_title(h, NULL, NULL));
    CHECK(!strcmp(history_title(h), t), "back to the default");
    history_free(h);
}

/* ============================== Files ============================== */

/* A tree with branches at several depths and stats, for the file tests. */
static history *branched(void)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    uint32_t r;
    append(h, HISTORY_SYSTEM, "Be kind.", NULL);
    append(h, HISTORY_USER, "Write a haiku about \"snow\"\n\twith a tab", NULL);
    append(h, HISTORY_ASSISTANT, "White \xe2\x9d\x84 silence", &r);
    struct history_stats st = {12, 33.25, "qwen2.5-0.5b", HISTORY_END_MODEL};
    REQUIRE_OK(history_set_stats(h, r, &st, NULL));
    REQUIRE_OK(history_regenerate(h, &r, NULL));
    REQUIRE_OK(history_stream(h, r, "\xe9\x9b\xaa (yuki)", 10, NULL));
    st = (struct history_stats){3, 9.0, NULL, HISTORY_END_USER};
    REQUIRE_OK(history_set_stats(h, r, &st, NULL));
    append(h, HISTORY_USER, "Another about rain", NULL);
    append(h, HISTORY_ASSISTANT, "Rain on the roof", NULL);
    REQUIRE_OK(history_edit(h, 1, "A haiku about the sea", 21, NULL, NULL));
    append(h, HISTORY_ASSISTANT, "Waves \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", NULL); /* Hebrew */
    CHECK(history_switch(h, 1, -1)); /* the active path: the first branch, its second reply */
    return h;
}

/* Two trees are the same when they save to the same bytes (every node, its
 * parent and active child, the stats, the title and times) and show the same
 * path. */
static void check_same(history *a, history *b, const char *dir_a, const char *dir_b)
{
    REQUIRE_OK(history_save(a, dir_a, NULL));
    REQUIRE_OK(history_save(b, dir_b, NULL));
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s.json", dir_a, history_id(a));
    snprintf(pb, sizeof pb, "%s/%s.json", dir_b, history_id(b));
    size_t na, nb;
    char *ta = strdup(read_all(pa, &na));
    const char *tb = read_all(pb, &nb);
    CHECK(na == nb && !memcmp(ta, tb, na), "%s and %s differ", pa, pb);
    free(ta);
    CHECK(history_count(a) == history_count(b) && !strcmp(history_id(a), history_id(b)));
    for (size_t i = 0; i < history_count(a); i++) {
        uint32_t ia, ca, ib, cb;
        history_siblings(a, i, &ia, &ca);
        history_siblings(b, i, &ib, &cb);
        CHECK(history_at(a, i)->id == history_at(b, i)->id && ia == ib && ca == cb);
    }
}

static void test_round_trip(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fresh_dir("roundtrip"));
    const char *dir2 = fresh_dir("roundtrip2");
    history *h = branched(), *g;
    REQUIRE_OK(history_save(h, dir, NULL));
    REQUIRE_OK(history_load(dir, history_id(h), &g, NULL));
    CHECK(!strcmp(path_of(g), path_of(h)), "%s", path_of(g));
    CHECK(!strcmp(path_of(g), "Be kind.|Write a haiku about \"snow\"\n\twith a tab|"
                              "\xe9\x9b\xaa (yuki)|Another about rain|Rain on the roof"));
    const struct history_msg *m = history_get(g, 2);
    CHECK(m && m->has_stats && m->stats.n_tokens == 12 && m->stats.tokens_per_s == 33.25 &&
          m->stats.end == HISTORY_END_MODEL && !strcmp(m->stats.model, "qwen2.5-0.5b"));
    m = history_get(g, 3);
    CHECK(m && m->has_stats && m->stats.model == NULL && m->stats.end == HISTORY_END_USER);
    CHECK(history_updated(g) == history_updated(h) &&
          history_get(g, 0)->created == history_get(h, 0)->created);
    check_same(h, g, dir, dir2);
    /* after a save, each kind of change reaches the next one (the file keeps
     * each message's encoding until it changes) */
    CHECK(history_switch(h, 1, +1));
    uint32_t r;
    REQUIRE_OK(history_regenerate(h, &r, NULL));
    REQUIRE_OK(history_stream(h, r, "fresh", 5, NULL));
    struct history_stats st = {5, 1.5, "m", HISTORY_END_LENGTH};
    REQUIRE_OK(history_set_stats(h, r, &st, NULL));
    REQUIRE_OK(history_save(h, dir, NULL));
    REQUIRE_OK(history_stream(h, r, " more", 5, NULL));
    CHECK(history_switch(h, 0, 0) == false && history_switch(h, 2, -1));
    REQUIRE_OK(history_edit(h, 1, "edited", 6, NULL, NULL));
    CHECK(history_switch(h, 1, -1));
    REQUIRE_OK(history_save(h, dir, NULL));
    history *k;
    REQUIRE_OK(history_load(dir, history_id(h), &k, NULL));
    CHECK(!strcmp(path_of(k), path_of(h)), "%s", path_of(k));
    check_same(h, k, dir, dir2);
    CHECK(history_switch(k, 2, +1) && !strcmp(text_at(k, 2), "fresh more") &&
          history_at(k, 2)->stats.end == HISTORY_END_LENGTH);
    history_free(k);
    history_free(g);
    history_free(h);
    h = branched();
    REQUIRE_OK(history_save(h, dir, NULL));
    REQUIRE_OK(history_load(dir, history_id(h), &g, NULL));

    /* every branch of the loaded tree is there to switch to */
    CHECK(history_switch(g, 1, +1) && !strcmp(path_of(g), "Be kind.|A haiku about the sea|Waves "
                                                          "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"));
    CHECK(history_switch(g, 1, -1) && history_switch(g, 2, -1) &&
          !strcmp(text_at(g, 2), "White \xe2\x9d\x84 silence"));
    /* saved again after a switch, the new active path is what loads */
    REQUIRE_OK(history_save(g, dir, NULL));
    REQUIRE_OK(history_load(dir, history_id(h), &k, NULL));
    CHECK(!strcmp(path_of(k), path_of(g)) && history_count(k) == 3);
    /* a renamed title survives */
    REQUIRE_OK(history_set_title(k, "Haiku", NULL));
    REQUIRE_OK(history_save(k, dir, NULL));
    history_free(k);
    REQUIRE_OK(history_load(dir, history_id(h), &k, NULL));
    CHECK(!strcmp(history_title(k), "Haiku"));
    history_free(k);
    /* an empty conversation too */
    history *e, *e2;
    REQUIRE_OK(history_create(&e, NULL));
    REQUIRE_OK(history_save(e, dir, NULL));
    REQUIRE_OK(history_load(dir, history_id(e), &e2, NULL));
    CHECK(history_count(e2) == 0 && !strcmp(history_title(e2), "New chat"));
    history_free(e);
    history_free(e2);
    history_free(g);
    history_free(h);
}

/* A file in the current format with three messages (for hand-made variants). */
#define GOOD_FILE(updated, title)                                                                  \
    "{\"format\": \"vkllm-chat\", \"version\": 1, \"title\": \"" title "\", \"renamed\": true, "   \
    "\"created\": 100, \"updated\": " #updated ", \"active\": 0, \"messages\": ["                  \
    "{\"role\": \"user\", \"content\": \"hi\", \"created\": 100, \"parent\": -1, \"active\": 0},"  \
    "{\"role\": \"assistant\", \"content\": \"hello\", \"created\": 101, \"parent\": 0, "          \
    "\"active\": 0}]}"

static int n_notices;
static char last_notice[600];
static void on_notice(const char *msg, void *user)
{
    (void)user;
    n_notices++;
    snprintf(last_notice, sizeof last_notice, "%s", msg);
}

static void test_corrupt(void)
{
    const char *dir = fresh_dir("corrupt");
    static const struct {
        const char *what, *text, *reason;
    } cases[] = {
        {"not JSON", "{\"version\": 1, \"messages\": [", "not valid JSON"},
        {"an array", "[1, 2]", "not a JSON object"},
        {"an older version", "{\"version\": 0, \"messages\": []}", "format version 0"},
        {"invalid UTF-8",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"\xc3\x28\", \"created\": 1, \"parent\": -1, \"active\": 0}]}",
         "not valid JSON"},
        {"a NUL in a text",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"a\\u0000b\", \"created\": 1, \"parent\": -1, \"active\": 0}]}",
         "not valid JSON"},
        {"a cycle",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"active\": 0, \"messages\": ["
         "{\"role\": \"user\", \"content\": \"a\", \"created\": 1, \"parent\": 1, \"active\": 0},"
         "{\"role\": \"user\", \"content\": \"b\", \"created\": 1, \"parent\": 0, \"active\": 0}]}",
         "message 1: its parent is not an earlier message"},
        {"a dangling parent",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"active\": 0, \"messages\": ["
         "{\"role\": \"user\", \"content\": \"a\", \"created\": 1, \"parent\": -1, \"active\": 0},"
         "{\"role\": \"user\", \"content\": \"b\", \"created\": 1, \"parent\": 7, \"active\": 0}]}",
         "message 2: its parent is not an earlier message"},
        {"an active child that is not there",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"active\": 0, \"title\": \"t\", "
         "\"renamed\": false, \"messages\": [{\"role\": \"user\", \"content\": \"a\", "
         "\"created\": 1, \"parent\": -1, \"active\": 3}]}",
         "message 1: \"active\""},
        {"an unknown role",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"robot\", "
         "\"content\": \"a\", \"created\": 1, \"parent\": -1, \"active\": 0}]}",
         "message 1 needs a role"},
        {"bad stats",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"a\", \"created\": 1, \"parent\": -1, \"active\": 0, \"stats\": "
         "{\"tokens\": -1}}]}",
         "bad \"stats\""},
        /* probe 3, Q-4: 1e308 tokens/s printed 309 digits under the buttons */
        {"an absurd speed",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"a\", \"created\": 1, \"parent\": -1, \"active\": 0, \"stats\": "
         "{\"tokens\": 4294967295, \"tokens_per_s\": 1e308, \"model\": null, \"end\": "
         "\"model\"}}]}",
         "bad \"stats\""},
        {"a negative speed",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"a\", \"created\": 1, \"parent\": -1, \"active\": 0, \"stats\": "
         "{\"tokens\": 1, \"tokens_per_s\": -3, \"model\": null, \"end\": \"model\"}}]}",
         "bad \"stats\""},
        /* a time localtime cannot show (the sidebar drew a garbage date) */
        {"a time past year 9999",
         "{\"version\": 1, \"created\": 1, \"updated\": 9223372036854775807, \"messages\": []}",
         "no \"created\" or \"updated\" time"},
        {"a message time past year 9999",
         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"a\", \"created\": 253402300800, \"parent\": -1, \"active\": 0}]}",
         "message 1 needs a role"},
    };
    char path[600], aside[620];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/bad-%zu.json", dir, i);
        write_all(path, cases[i].text);
        char id[32];
        snprintf(id, sizeof id, "bad-%zu", i);
        history *h = (history *)1;
        struct vkllm_error err = {0};
        int rc = history_load(dir, id, &h, &err);
        CHECK(rc == VKLLM_E_FORMAT && h == NULL, "%s: %d", cases[i].what, rc);
        CHECK(strstr(err.msg, path) && strstr(err.msg, cases[i].reason) &&
                  strstr(err.msg, "moved aside to") && !strchr(err.msg, '\n'),
              "%s: %s", cases[i].what, err.msg);
        snprintf(aside, sizeof aside, "%s.corrupt-1", path);
        CHECK(!exists(path) && exists(aside), "%s: set aside", cases[i].what);
        CHECK(!strcmp(read_all(aside, NULL), cases[i].text), "%s: kept as it was", cases[i].what);
    }

    /* Regression (probe 3, Q-3): a 50 MB message took 25 s and 4 GB to lay
     * out; a message past MAX_MESSAGE_BYTES (5 MiB) is refused and set aside */
    {
        size_t big = (5u << 20) + 1;
        char *text = malloc(big + 256);
        REQUIRE(text != NULL);
        int k = snprintf(text, 256,
                         "{\"version\": 1, \"created\": 1, \"updated\": 1, \"active\": 0, "
                         "\"title\": \"t\", \"renamed\": false, \"messages\": "
                         "[{\"role\": \"user\", \"content\": \"");
        memset(text + k, 'y', big);
        strcpy(text + k + big, "\", \"created\": 1, \"parent\": -1, \"active\": 0}]}");
        snprintf(path, sizeof path, "%s/long.json", dir);
        write_all(path, text);
        struct vkllm_error err = {0};
        CHECK(history_load(dir, "long", &(history *){0}, &err) == VKLLM_E_FORMAT &&
                  strstr(err.msg, "message 1: 5242881 bytes, more than the 5 MiB"),
              "%s", err.msg);
        text[k + big - 1] = 0; /* 5 MiB exactly: a conversation */
        strcat(text, "\", \"created\": 1, \"parent\": -1, \"active\": 0}]}");
        write_all(path, text);
        history *h = NULL;
        CHECK(history_load(dir, "long", &h, &err) == VKLLM_OK, "%s", err.msg);
        history_free(h);
        unlink(path);
        free(text);
    }

    /* a newer vkllm's file is not corrupt: refused, left where it is */
    snprintf(path, sizeof path, "%s/newer.json", dir);
    write_all(path, "{\"version\": 2, \"messages\": []}");
    struct vkllm_error newer = {0};
    CHECK(history_load(dir, "newer", &(history *){0}, &newer) == VKLLM_E_UNSUPPORTED &&
              strstr(newer.msg, "made by a newer vkllm") && !strstr(newer.msg, "moved aside"),
          "%s", newer.msg);
    CHECK(exists(path), "a newer file stays");
    unlink(path);

    /* a second corrupt file of the same name does not replace the first */
    snprintf(path, sizeof path, "%s/bad-0.json", dir);
    write_all(path, "second");
    CHECK(history_load(dir, "bad-0", &(history *){0}, NULL) == VKLLM_E_FORMAT);
    snprintf(aside, sizeof aside, "%s.corrupt-1", path);
    CHECK(!strcmp(read_all(aside, NULL), cases[0].text), "corrupt-1 untouched");
    snprintf(aside, sizeof aside, "%s.corrupt-2", path);
    CHECK(!strcmp(read_all(aside, NULL), "second"));

    /* an absurd size is refused before reading: a sparse 300 MiB file */
    snprintf(path, sizeof path, "%s/huge.json", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0 && ftruncate(fd, 300 << 20) == 0);
    close(fd);
    struct vkllm_error err = {0};
    CHECK(history_load(dir, "huge", &(history *){0}, &err) == VKLLM_E_FORMAT &&
              strstr(err.msg, "more than the 256 MiB"),
          "%s", err.msg);

    /* the list: the good ones load, each bad one is reported once and set aside */
    write_all(path, "not json"); /* huge.json again */
    snprintf(path, sizeof path, "%s/good-a.json", dir);
    write_all(path, GOOD_FILE(100, "A"));
    snprintf(path, sizeof path, "%s/good-b.json", dir);
    write_all(path, GOOD_FILE(300, "B"));
    snprintf(path, sizeof path, "%s/good-c.json", dir);
    write_all(path, GOOD_FILE(200, "C"));
    snprintf(path, sizeof path, "%s/bad-3.json", dir);
    write_all(path, "{\"version\": 1}");
    snprintf(path, sizeof path, "%s/dir.json", dir);
    REQUIRE(mkdir(path, 0700) == 0); /* a directory named like a conversation */
    n_notices = 0;
    struct history_entry *e;
    size_t n;
    REQUIRE_OK(history_list(dir, &e, &n, on_notice, NULL, NULL));
    CHECK(n == 3 && !strcmp(e[0].id, "good-b") && !strcmp(e[1].id, "good-c") &&
              !strcmp(e[2].id, "good-a"),
          "most recent first");
    CHECK(n == 3 && !strcmp(e[0].title, "B") && e[0].updated == 300 && !e[0].snippet);
    CHECK(n_notices == 3, "huge.json, bad-3.json, the directory: %d", n_notices);
    history_entries_free(e, n);
    snprintf(path, sizeof path, "%s/bad-3.json.corrupt-2", dir);
    CHECK(exists(path), "bad-3 set aside as its second corrupt file");
    snprintf(path, sizeof path, "%s/dir.json", dir);
    CHECK(rmdir(path) == 0, "a directory is not moved aside: %s", strerror(errno));
    n_notices = 0;
    REQUIRE_OK(history_list(dir, &e, &n, on_notice, NULL, NULL));
    CHECK(n == 3 && n_notices == 0, "reported once: %d", n_notices);
    history_entries_free(e, n);
}

/* Probe 4, R-14: a chat not in the window's one-line-header layout was
 * parsed whole at every Ctrl+B. The sidebar's thread lists with a cache: an
 * unchanged file (inode, size, time) is not read again; a changed one is. */
static void test_list_cache(void)
{
    const char *dir = fresh_dir("list-cache");
    char path[600];
    snprintf(path, sizeof path, "%s/one-line.json", dir);
    write_all(path, GOOD_FILE(100, "A"));
    history *h = branched();
    REQUIRE_OK(history_save(h, dir, NULL));
    history_list_cache *cache = NULL;
    struct history_entry *e;
    size_t n;
    REQUIRE_OK(history_list_stoppable(dir, &cache, NULL, &e, &n, NULL, NULL, NULL));
    CHECK(n == 2 && !strcmp(e[1].title, "A"), "%zu", n);
    history_entries_free(e, n);
    /* "B" over "A" in place, the time put back: to the cache it is the same file */
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    FILE *f = fopen(path, "r+");
    REQUIRE(f);
    fputs(GOOD_FILE(100, "B"), f);
    fclose(f);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    REQUIRE(utimensat(AT_FDCWD, path, times, 0) == 0);
    REQUIRE_OK(history_list_stoppable(dir, &cache, NULL, &e, &n, NULL, NULL, NULL));
    CHECK(n == 2 && !strcmp(e[1].title, "A"), "listed from the cache, unread: %s",
          n == 2 ? e[1].title : "?");
    history_entries_free(e, n);
    /* a new time: read again */
    times[1].tv_sec += 1;
    REQUIRE(utimensat(AT_FDCWD, path, times, 0) == 0);
    REQUIRE_OK(history_list_stoppable(dir, &cache, NULL, &e, &n, NULL, NULL, NULL));
    CHECK(n == 2 && !strcmp(e[1].title, "B"), "%s", n == 2 ? e[1].title : "?");
    history_entries_free(e, n);
    /* a deleted file leaves the list, cache or not */
    REQUIRE(unlink(path) == 0);
    REQUIRE_OK(history_list_stoppable(dir, &cache, NULL, &e, &n, NULL, NULL, NULL));
    CHECK(n == 1 && !strcmp(e[0].id, history_id(h)), "%zu", n);
    history_entries_free(e, n);
    atomic_bool stop = true;
    CHECK(history_list_stoppable(dir, &cache, &stop, &e, &n, NULL, NULL, NULL) == VKLLM_E_INVALID &&
          !n);
    history_list_cache_free(cache);
    history_free(h);
}

/* Probe 4, R-17: a chat of a million messages took 5 s to open, 3.8 GB and
 * over a second a frame while replying. The cap is 100,000: a bigger file is
 * refused with its name, and left where it is (not corrupt: an older vkllm
 * wrote up to 1M); a conversation at the cap takes no more. */
static void test_message_cap(void)
{
    const char *dir = fresh_dir("cap");
    char path[600];
    snprintf(path, sizeof path, "%s/20260101-000000-cafe01.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fprintf(f, "{\"format\": \"vkllm-chat\", \"version\": 1, \"title\": \"big\", "
               "\"renamed\": true, \"created\": 1, \"updated\": 1, \"active\": 0, "
               "\"messages\": [\n");
    const unsigned n = 100001;
    for (unsigned i = 0; i < n; i++)
        fprintf(f,
                "%s{\"role\": \"%s\", \"content\": \"m%u\", \"created\": 1, "
                "\"parent\": %d, \"active\": 0}",
                i ? ",\n" : "", i % 2 ? "assistant" : "user", i, (int)i - 1);
    fputs("]}\n", f);
    REQUIRE(fclose(f) == 0);
    history *h = NULL;
    struct vkllm_error err = {0};
    CHECK(history_load(dir, "20260101-000000-cafe01", &h, &err) == VKLLM_E_UNSUPPORTED && !h, "%s",
          err.msg);
    CHECK(strstr(err.msg, "cafe01.json: 100001 messages, more than the 100000"), "%s", err.msg);
    CHECK(exists(path), "a chat over the cap is not corrupt: left where it is");
    history_free(h);
    /* at the cap, a conversation takes no more */
    REQUIRE_OK(history_create(&h, NULL));
    for (unsigned i = 0; i < 100000; i++)
        REQUIRE_OK(history_append(h, i % 2 ? HISTORY_ASSISTANT : HISTORY_USER, "m", 1, NULL, NULL));
    CHECK(history_append(h, HISTORY_USER, "one more", 8, NULL, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "start a new chat"),
          "%s", err.msg);
    CHECK(history_count(h) == 100000, "%zu", history_count(h));
    history_free(h);
}

/* ============================== Interrupted saves ============================== */

static history *long_chat(int n_messages)
{
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    char text[600];
    for (int i = 0; i < n_messages; i++) {
        snprintf(text, sizeof text, "message %d:", i);
        while (strlen(text) < 500)
            strcat(text, " the quick \xd0\xb6 fox \"jumps\"\n");
        append(h, i % 2 ? HISTORY_ASSISTANT : HISTORY_USER, text, NULL);
    }
    return h;
}

static void test_leftover_temp(void)
{
    const char *dir = fresh_dir("leftover");
    history *h = branched(), *g;
    REQUIRE_OK(history_save(h, dir, NULL));
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/%s.json", dir, history_id(h));
    char *before = strdup(read_all(path, NULL));
    /* what a writer killed before its rename leaves: half a file beside it */
    snprintf(tmp, sizeof tmp, "%s.tmp-4f2a1c", path);
    write_all(tmp, "{\"format\": \"vkllm-chat\", \"version\": 1, \"messages\": [{\"ro");
    struct history_entry *e;
    size_t n;
    n_notices = 0;
    REQUIRE_OK(history_list(dir, &e, &n, on_notice, NULL, NULL));
    CHECK(n == 1 && !strcmp(e[0].id, history_id(h)) && n_notices == 0,
          "the temporary file is not a conversation");
    history_entries_free(e, n);
    REQUIRE_OK(history_load(dir, history_id(h), &g, NULL));
    CHECK(!strcmp(read_all(path, NULL), before) && exists(tmp), "nothing touched");
    /* the next save replaces the real file whole and leaves no file of its own */
    append(g, HISTORY_USER, "one more", NULL);
    REQUIRE_OK(history_save(g, dir, NULL));
    history_free(g);
    REQUIRE_OK(history_load(dir, history_id(h), &g, NULL));
    CHECK(!strcmp(text_at(g, history_count(g) - 1), "one more"));
    CHECK(count_files(dir, ".tmp-") == 1 && count_files(dir, ".json") == 2);
    free(before);
    history_free(g);
    history_free(h);
}

/* Removes DIR's temporary files (a killed writer's), so the next round can
 * watch for a new one. */
static void empty_dir_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    REQUIRE(d);
    struct dirent *de;
    char f[1024];
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp-")) {
            snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
            REQUIRE(unlink(f) == 0);
        }
    closedir(d);
}

/* A writer killed with SIGKILL at random moments while it saves a large
 * conversation over and over, alternating two versions: the file in place must
 * always be one of them, whole. */
static void test_killed_writer(void)
{
    const char *dir = fresh_dir("killed");
    history *a = long_chat(2000), *b;
    REQUIRE_OK(history_save(a, dir, NULL));
    REQUIRE_OK(history_load(dir, history_id(a), &b, NULL));
    append(b, HISTORY_USER, "version B", NULL);
    const size_t na = history_count(a), nb = history_count(b);
    srand(12345);
    int mid_write = 0;
    for (int round = 0; round < 24; round++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            for (int i = 0; i < 100000; i++)
                if (history_save(i % 2 ? a : b, dir, NULL)) _exit(2);
            _exit(0);
        }
        if (round % 2) {
            /* at a random moment (a save takes some milliseconds) */
            nanosleep(&(struct timespec){0, 1000000 + 1000 * (rand() % 30000)}, NULL);
        } else {
            /* while a temporary file exists: mid-write or just before the rename */
            for (double t = seconds(); count_files(dir, ".tmp-") == 0 && seconds() - t < 2;)
                continue;
            nanosleep(&(struct timespec){0, 1000 * (rand() % 3000)}, NULL);
        }
        kill(pid, SIGKILL);
        int status;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed");
        history *g;
        struct vkllm_error err = {0};
        int rc = history_load(dir, history_id(a), &g, &err);
        CHECK(rc == VKLLM_OK, "round %d: %s", round, err.msg);
        if (rc) break;
        size_t n = history_count(g);
        CHECK(n == na || (n == nb && !strcmp(text_at(g, n - 1), "version B")),
              "round %d: %zu messages", round, n);
        CHECK(!strcmp(text_at(g, 1999), text_at(a, 1999)));
        history_free(g);
        mid_write += count_files(dir, ".tmp-") > 0;
        struct history_entry *e;
        size_t ne;
        REQUIRE_OK(history_list(dir, &e, &ne, NULL, NULL, NULL));
        CHECK(ne == 1, "one conversation, whatever temporary files lie about: %zu", ne);
        history_entries_free(e, ne);
        empty_dir_tmp(dir);
    }
    fprintf(stderr, "killed writer: %d of 24 kills left a temporary file behind\n", mid_write);
    history_free(a);
    history_free(b);
}

/* ============================== Directory, search, export ============================== */

static void test_data_dir(void)
{
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    fresh_dir("datadir");
    char *dir;
    struct stat st;

    setenv("XDG_DATA_HOME", GEN "/datadir/xdg", 1);
    setenv("HOME", GEN "/datadir/home", 1);
    REQUIRE_OK(history_data_dir(&dir, NULL));
    CHECK(!strcmp(dir, GEN "/datadir/xdg/vkllm/chats"), "%s", dir);
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    CHECK(stat(GEN "/datadir/xdg", &st) == 0 && (st.st_mode & 0777) == 0700, "missing parents too");
    free(dir);
    REQUIRE_OK(history_data_dir(&dir, NULL)); /* again: it exists */
    free(dir);

    /* a relative XDG_DATA_HOME is ignored, as the spec says; then HOME */
    setenv("XDG_DATA_HOME", "relative/path", 1);
    REQUIRE_OK(history_data_dir(&dir, NULL));
    CHECK(!strcmp(dir, GEN "/datadir/home/.local/share/vkllm/chats"), "%s", dir);
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    free(dir);
    unsetenv("XDG_DATA_HOME");
    REQUIRE_OK(history_data_dir(&dir, NULL));
    CHECK(!strcmp(dir, GEN "/datadir/home/.local/share/vkllm/chats"), "%s", dir);
    free(dir);

    struct vkllm_error err = {0};
    unsetenv("HOME");
    CHECK(history_data_dir(&dir, &err) == VKLLM_E_INVALID && dir == NULL &&
          strstr(err.msg, "HOME"));
    /* a file where a directory must go */
    write_all(GEN "/datadir/file", "x");
    setenv("XDG_DATA_HOME", GEN "/datadir/file", 1);
    CHECK(history_data_dir(&dir, &err) == VKLLM_E_IO && strstr(err.msg, GEN "/datadir/file"), "%s",
          err.msg);

    if (old_xdg)
        setenv("XDG_DATA_HOME", old_xdg, 1);
    else
        unsetenv("XDG_DATA_HOME");
    if (old_home) setenv("HOME", old_home, 1);
    free(old_xdg);
    free(old_home);
    unlink(GEN "/datadir/file");
}

static void test_search(void)
{
    const char *dir = fresh_dir("search");
    history *a, *b, *c;
    REQUIRE_OK(history_create(&a, NULL));
    append(a, HISTORY_USER, "Recipe for bread", NULL);
    char long_text[400] = "";
    for (int i = 0; i < 6; i++)
        strcat(long_text, "Lorem ipsum dolor sit amet. ");
    strcat(long_text, "Knead the \xd0\xa2\xd0\x95\xd0\xa1\xd0\xa2\xd0\x9e gently. "); /* ТЕСТО */
    for (int i = 0; i < 6; i++)
        strcat(long_text, "Consectetur adipiscing elit. ");
    append(a, HISTORY_ASSISTANT, long_text, NULL);
    REQUIRE_OK(history_create(&b, NULL));
    append(b, HISTORY_USER, "Weather today", NULL);
    append(b, HISTORY_ASSISTANT, "Sunny.", NULL);
    REQUIRE_OK(history_regenerate(b, NULL, NULL)); /* the match is off the active path */
    REQUIRE_OK(history_create(&c, NULL));
    append(c, HISTORY_USER, "WEATHER in the title", NULL);
    REQUIRE_OK(history_save(a, dir, NULL));
    REQUIRE_OK(history_save(b, dir, NULL));
    REQUIRE_OK(history_save(c, dir, NULL));

    struct history_entry *e;
    size_t n;
    /* Cyrillic, another case: found, with the text around it, cut at both ends */
    REQUIRE_OK(history_search(dir, "\xd1\x82\xd0\xb5\xd1\x81\xd1\x82\xd0\xbe", &e, &n, NULL, NULL,
                              NULL)); /* тесто */
    CHECK(n == 1 && !strcmp(e[0].id, history_id(a)) && !strcmp(e[0].title, "Recipe for bread"));
    CHECK(n == 1 && e[0].snippet && strstr(e[0].snippet, "Knead the \xd0\xa2\xd0\x95") &&
              !strncmp(e[0].snippet, "\xe2\x80\xa6", 3) &&
              !strcmp(e[0].snippet + strlen(e[0].snippet) - 3, "\xe2\x80\xa6") &&
              strlen(e[0].snippet) < 200,
          "%s", n ? e[0].snippet : "");
    history_entries_free(e, n);

    REQUIRE_OK(history_search(dir, "sunny", &e, &n, NULL, NULL, NULL));
    CHECK(n == 1 && !strcmp(e[0].id, history_id(b)) && !strcmp(e[0].snippet, "Sunny."),
          "other branches are searched too");
    history_entries_free(e, n);
    REQUIRE_OK(history_search(dir, "weather", &e, &n, NULL, NULL, NULL));
    CHECK(n == 2, "the title and a message: %zu", n);
    history_entries_free(e, n);
    REQUIRE_OK(history_search(dir, "no such words", &e, &n, NULL, NULL, NULL));
    CHECK(n == 0 && e == NULL);
    REQUIRE_OK(history_search(dir, "", &e, &n, NULL, NULL, NULL));
    CHECK(n == 3, "an empty query lists all");
    history_entries_free(e, n);
    CHECK(history_search(dir, "\xff", &e, &n, NULL, NULL, NULL) == VKLLM_E_INVALID);

    /* rename keeps the time of the last change; delete removes */
    int64_t updated = history_updated(b);
    REQUIRE_OK(history_rename(dir, history_id(b), "Forecast", NULL));
    REQUIRE_OK(history_list(dir, &e, &n, NULL, NULL, NULL));
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].id, history_id(b)))
            found = !strcmp(e[i].title, "Forecast") && e[i].updated == updated;
    CHECK(n == 3 && found);
    history_entries_free(e, n);
    REQUIRE_OK(history_delete(dir, history_id(c), NULL));
    REQUIRE_OK(history_list(dir, &e, &n, NULL, NULL, NULL));
    CHECK(n == 2);
    history_entries_free(e, n);
    struct vkllm_error err = {0};
    CHECK(history_delete(dir, history_id(c), &err) == VKLLM_E_IO &&
          strstr(err.msg, "cannot delete"));
    CHECK(history_delete(dir, "../search/x", &err) == VKLLM_E_INVALID);
    CHECK(history_load(dir, "../x", &(history *){0}, &err) == VKLLM_E_INVALID);
    CHECK(history_rename(dir, "nope", "t", &err) == VKLLM_E_IO);
    history_free(a);
    history_free(b);
    history_free(c);
}

static void test_export(void)
{
    const char *dir = fresh_dir("export");
    history *h = branched();
    char path[600];
    snprintf(path, sizeof path, "%s/chat.md", dir);
    REQUIRE_OK(history_export_markdown(h, path, NULL));
    const char *want = "# Write a haiku about \"snow\" with a tab\n"
                       "\n## System\n\nBe kind.\n"
                       "\n## User\n\nWrite a haiku about \"snow\"\n\twith a tab\n"
                       "\n## Assistant\n\n\xe9\x9b\xaa (yuki)\n"
                       "\n## User\n\nAnother about rain\n"
                       "\n## Assistant\n\nRain on the roof\n";
    const char *got = read_all(path, NULL);
    CHECK(!strcmp(got, want), "got:\n%s", got);
    CHECK(count_files(dir, ".tmp-") == 0);
    struct vkllm_error err = {0};
    CHECK(history_export_markdown(h, dir, &err) == VKLLM_E_IO && strstr(err.msg, "directory"), "%s",
          err.msg);
    snprintf(path, sizeof path, "%s/missing/chat.md", dir);
    CHECK(history_export_markdown(h, path, &err) == VKLLM_E_IO);
    history_free(h);
}

/* A history saved for the first time never takes over an existing file. */
static void test_id_collision(void)
{
    const char *dir = fresh_dir("collision");
    history *h;
    REQUIRE_OK(history_create(&h, NULL));
    append(h, HISTORY_USER, "mine", NULL);
    char path[600], id[64];
    snprintf(id, sizeof id, "%s", history_id(h));
    snprintf(path, sizeof path, "%s/%s.json", dir, id);
    write_all(path, GOOD_FILE(5, "someone else's"));
    REQUIRE_OK(history_save(h, dir, NULL));
    CHECK(strcmp(history_id(h), id), "a new id");
    CHECK(!strcmp(read_all(path, NULL), GOOD_FILE(5, "someone else's")));
    history_free(h);
}

/* Saving after every reply must stay cheap for long chats. */
static void test_cost(void)
{
    const char *dir = fresh_dir("cost");
    history *h = long_chat(2000), *g;
    double t = seconds();
    REQUIRE_OK(history_save(h, dir, NULL));
    double first = seconds() - t;
    /* what the window does after each reply */
    append(h, HISTORY_USER, "one more question", NULL);
    append(h, HISTORY_ASSISTANT, "and its answer", NULL);
    double t0 = seconds();
    REQUIRE_OK(history_save(h, dir, NULL));
    double t1 = seconds();
    REQUIRE_OK(history_load(dir, history_id(h), &g, NULL));
    double t2 = seconds();
    struct history_entry *e;
    size_t n;
    REQUIRE_OK(history_list(dir, &e, &n, NULL, NULL, NULL));
    double t3 = seconds();
    history_entries_free(e, n);
    char path[600];
    snprintf(path, sizeof path, "%s/%s.json", dir, history_id(h));
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    fprintf(stderr,
            "2,000 messages (%.2f MB): first save %.1f ms, save after a reply %.1f ms, "
            "load %.1f ms, list %.1f ms\n",
            (double)st.st_size / 1e6, 1e3 * first, 1e3 * (t1 - t0), 1e3 * (t2 - t1),
            1e3 * (t3 - t2));
    /* generous: sanitizers and a loaded machine; well under a second is the aim */
    CHECK(t1 - t0 < 2.0 && t2 - t1 < 2.0, "too slow");
    CHECK(history_count(g) == 2002);
    history_free(g);

    /* Regression (probe 3, Q-13): the list parsed every file whole on the UI
     * thread (100 chats of 2 MB: 8 s before the sidebar's first frame). It
     * reads the header line of the files this module writes: here the
     * messages after it are cut off, and the chat is listed all the same,
     * with its title, time and no notice; opening it finds the damage. */
    FILE *f = fopen(path, "r+b");
    REQUIRE(f != NULL && ftruncate(fileno(f), st.st_size / 2) == 0);
    fclose(f);
    n_notices = 0;
    REQUIRE_OK(history_list(dir, &e, &n, on_notice, NULL, NULL));
    CHECK(n == 1 && !strcmp(e[0].id, history_id(h)) && !strcmp(e[0].title, history_title(h)) &&
              e[0].updated == history_updated(h) && n_notices == 0,
          "listed from more than its header: %zu entries, %d notices", n, n_notices);
    history_entries_free(e, n);
    CHECK(history_load(dir, history_id(h), &g, NULL) == VKLLM_E_FORMAT, "a cut file loaded");
    history_free(h);
}

/* vkllm_write_file itself: a failure leaves the old file and no temporary one. */
static void test_write_file(void)
{
    const char *dir = fresh_dir("write");
    char path[600];
    snprintf(path, sizeof path, "%s/f.txt", dir);
    REQUIRE_OK(vkllm_write_file(path, "old", 3, NULL));
    REQUIRE_OK(vkllm_write_file(path, "new!", 4, NULL));
    CHECK(!strcmp(read_all(path, NULL), "new!"));
    REQUIRE_OK(vkllm_write_file(path, NULL, 0, NULL));
    CHECK(!strcmp(read_all(path, NULL), ""));
    struct vkllm_error err = {0};
    CHECK(vkllm_write_file(dir, "x", 1, &err) == VKLLM_E_IO && strstr(err.msg, dir));
    CHECK(count_files(dir, ".tmp-") == 0);
    /* never through a link to a device */
    if (!access("/dev/full", W_OK)) {
        snprintf(path, sizeof path, "%s/full", dir);
        REQUIRE(symlink("/dev/full", path) == 0);
        CHECK(vkllm_write_file(path, "x", 1, &err) == VKLLM_E_IO, "not a regular file");
    }
}

int main(void)
{
    test_append_and_stream();
    test_regenerate();
    test_failed_turn();
    test_edit_branches();
    test_title();
    test_round_trip();
    test_corrupt();
    test_list_cache();
    test_message_cap();
    test_leftover_temp();
    test_killed_writer();
    test_data_dir();
    test_search();
    test_export();
    test_id_collision();
    test_cost();
    test_write_file();
    return TEST_REPORT();
}
