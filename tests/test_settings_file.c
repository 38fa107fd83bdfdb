/* test_settings_file.c: the chat window's settings (app/chat/settings.c).
 *
 * Every field set from text and read back, values out of range or not
 * parsing refused with the range and the old value kept, the file's path
 * under XDG_CONFIG_HOME and HOME, a save and load that round-trips every
 * field, a missing file (defaults, no error), and corrupt files (not JSON, a
 * wrong type, a value out of range): each reported, moved aside to
 * settings.json.corrupt-N without replacing an earlier one, with the good
 * values kept. Host code only.
 */
#include "settings.h"
#include "testhelp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GEN VKLLM_TEST_GEN "/settings-file"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A and B hold the same values (memcmp would see bytes after a text's end). */
static bool same(const struct settings *a, const struct settings *b)
{
    char x[sizeof a->system_prompt], y[sizeof a->system_prompt];
    for (size_t i = 0; i < settings_n_fields; i++) {
        settings_get(a, settings_fields[i].key, x, sizeof x);
        settings_get(b, settings_fields[i].key, y, sizeof y);
        if (strcmp(x, y)) return false;
    }
    return true;
}

static void check_fields(void)
{
    struct settings s;
    struct vkllm_error err = {0};
    settings_defaults(&s);
    char buf[256];
    CHECK(s.max_tokens == -1 && s.theme == SETTINGS_DARK && s.temp > 0.79f && s.temp < 0.81f);
    /* every field in the table takes its own text back */
    for (size_t i = 0; i < settings_n_fields; i++) {
        settings_get(&s, settings_fields[i].key, buf, sizeof buf);
        CHECK(settings_set(&s, settings_fields[i].key, buf, &err) == VKLLM_OK, "%s '%s': %s",
              settings_fields[i].key, buf, err.msg);
    }
    REQUIRE_OK(settings_set(&s, "temperature", "0.25", &err));
    REQUIRE_OK(settings_set(&s, "top_k", "7", &err));
    REQUIRE_OK(settings_set(&s, "theme", "light", &err));
    REQUIRE_OK(settings_set(&s, "system_prompt", "Réponds en français.", &err));
    CHECK(s.temp == 0.25f && s.top_k == 7 && s.theme == SETTINGS_LIGHT);
    settings_get(&s, "theme", buf, sizeof buf);
    CHECK(!strcmp(buf, "light"), "%s", buf);
    settings_get(&s, "system_prompt", buf, sizeof buf);
    CHECK(!strcmp(buf, "Réponds en français."), "%s", buf);

    /* refused, with the range in the message, and nothing changes */
    static const char *const bad[][2] = {
        {"temperature", "9"},       {"temperature", "warm"},
        {"temperature", "nan"},     {"top_k", "-1"},
        {"top_k", "2.5"},           {"top_p", "0"},
        {"min_p", "1.5"},           {"max_tokens", "-2"},
        {"context", "99999999999"}, {"font_size", "4"},
        {"theme", "blue"},          {"no_such_key", "1"},
        {"repeat_penalty", ""},     {"system_prompt", "\xff\xfe"},
        {"context", "1"},           {"context", "7"},
    };
    struct settings before = s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(settings_set(&s, bad[i][0], bad[i][1], &err) == VKLLM_E_INVALID, "%s = %s taken",
              bad[i][0], bad[i][1]);
        CHECK(err.msg[0], "%s = %s: no message", bad[i][0], bad[i][1]);
    }
    CHECK(same(&before, &s), "a refused value changed the settings");
    settings_set(&s, "temperature", "9", &err);
    CHECK(strstr(err.msg, "from 0 to 5"), "no range: %s", err.msg);
    char big[sizeof s.device + 10];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(settings_set(&s, "device", big, &err) == VKLLM_E_INVALID, "an overlong device taken");
    /* a context holds 8 tokens at least, or 0: the model's (probe 6, M1: 1 was
     * kept, and every message was then refused) */
    settings_set(&s, "context", "7", &err);
    CHECK(strstr(err.msg, "0 (the model's) or a whole number from 8"), "%s", err.msg);
    REQUIRE_OK(settings_set(&s, "context", "8", &err), "%s", err.msg);
    REQUIRE_OK(settings_set(&s, "context", "0", &err), "%s", err.msg);
    CHECK(s.n_ctx == 0);
}

/* The device setting against a list of devices, as the window checks it when
 * it is set and at the start (probe 6, M1: device 99 was kept and the next
 * start loaded no model). */
static void check_device(void)
{
    struct vkllm_device_info devs[2] = {{.index = 0, .name = "llvmpipe (LLVM 15.0.7, 256 bits)"},
                                        {.index = 1, .name = "NVIDIA GeForce RTX 4090"}};
    struct vkllm_error err = {0};
    static const char *const good[] = {"", "0", "1", "llvm", "LLVMPIPE", "geforce rtx"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(settings_check_device(good[i], devs, 2, &err) == VKLLM_OK, "'%s': %s", good[i],
              err.msg);
    static const char *const bad[] = {"2", "99", "-1", "99999999999999999999", "radeon", " ", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(settings_check_device(bad[i], devs, 2, &err) == VKLLM_E_NO_DEVICE, "'%s' taken",
              bad[i]);
        /* the devices there are, by name: a window has no `vkllm devices` */
        CHECK(strstr(err.msg, "0: llvmpipe") && strstr(err.msg, "1: NVIDIA GeForce") &&
                  !strstr(err.msg, "vkllm devices"),
              "'%s': %s", bad[i], err.msg);
    }
    CHECK(settings_check_device("0", devs, 0, &err) == VKLLM_E_NO_DEVICE);
    CHECK(strstr(err.msg, "no Vulkan device"), "%s", err.msg);
}

static void check_path(void)
{
    struct vkllm_error err = {0};
    char *p;
    mkdir(VKLLM_TEST_GEN, 0755);
    mkdir(GEN, 0755);
    setenv("XDG_CONFIG_HOME", GEN "/xdg", 1);
    REQUIRE_OK(settings_path(&p, &err), "%s", err.msg);
    CHECK(!strcmp(p, GEN "/xdg/vkllm/settings.json"), "%s", p);
    CHECK(exists(GEN "/xdg/vkllm"), "the directory was not made");
    free(p);
    /* a relative XDG_CONFIG_HOME is ignored, as the spec says */
    setenv("XDG_CONFIG_HOME", "relative", 1);
    setenv("HOME", GEN "/home", 1);
    REQUIRE_OK(settings_path(&p, &err), "%s", err.msg);
    CHECK(!strcmp(p, GEN "/home/.config/vkllm/settings.json"), "%s", p);
    free(p);
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "nowhere", 1);
    CHECK(settings_path(&p, &err) == VKLLM_E_INVALID && !p, "no absolute base, yet a path");
}

static void check_file(void)
{
    struct vkllm_error err = {0};
    const char *path = GEN "/settings.json";
    unlink(path);
    for (int i = 1; i <= 9; i++) {
        char f[256];
        snprintf(f, sizeof f, "%s.corrupt-%d", path, i);
        unlink(f);
    }
    struct settings s, t, def;
    settings_defaults(&def);
    /* missing: the defaults, no error */
    t = def;
    CHECK(settings_load(path, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(same(&t, &def), "a missing file changed the settings");

    /* every field round-trips */
    settings_defaults(&s);
    const char *const set[][2] = {
        {"system_prompt", "You are terse.\nSay \"ok\"."},
        {"temperature", "0.3"},
        {"top_k", "12"},
        {"top_p", "0.9"},
        {"min_p", "0.1"},
        {"repeat_penalty", "1.15"},
        {"max_tokens", "200"},
        {"context", "2048"},
        {"device", "lavapipe"},
        {"models_dir", "/srv/models"},
        {"font_size", "18"},
        {"theme", "light"},
    };
    REQUIRE(sizeof set / sizeof set[0] == settings_n_fields, "a field is not tested");
    for (size_t i = 0; i < settings_n_fields; i++)
        REQUIRE_OK(settings_set(&s, set[i][0], set[i][1], &err), "%s", err.msg);
    REQUIRE_OK(settings_save(&s, path, &err), "%s", err.msg);
    t = def;
    REQUIRE_OK(settings_load(path, &t, &err), "%s", err.msg);
    CHECK(same(&s, &t), "the loaded settings differ from the saved ones");
    CHECK(t.temp == 0.3f && t.top_k == 12 && t.n_ctx == 2048 && t.theme == SETTINGS_LIGHT &&
          !strcmp(t.system_prompt, "You are terse.\nSay \"ok\"."));

    /* corrupt files: reported, moved aside (never over an earlier one), good
     * values kept, and the corrupt file's bytes untouched */
    static const char *const corrupt[] = {
        "{\"temperature\": 0.5, \"top_k\": ",
        "{\"temperature\": 0.5, \"top_k\": \"many\"}",
        "{\"temperature\": 0.5, \"font_size\": 400}",
    };
    for (int i = 0; i < 3; i++) {
        write_text(path, corrupt[i]);
        t = def;
        err.msg[0] = 0;
        CHECK(settings_load(path, &t, &err) == VKLLM_E_FORMAT, "corrupt file %d loaded", i + 1);
        char aside[256], want[64];
        snprintf(aside, sizeof aside, "%s.corrupt-%d", path, i + 1);
        snprintf(want, sizeof want, "moved aside to settings.json.corrupt-%d", i + 1);
        CHECK(strstr(err.msg, want) && strstr(err.msg, path), "%s", err.msg);
        CHECK(!exists(path), "corrupt file %d still where it was", i + 1);
        FILE *f = fopen(aside, "rb");
        char got[128] = {0};
        CHECK(f && fread(got, 1, sizeof got - 1, f) > 0 && !strcmp(got, corrupt[i]),
              "%s does not hold corrupt file %d", aside, i + 1);
        if (f) fclose(f);
        if (i) CHECK(t.temp == 0.5f, "the good value before the bad one was lost");
        CHECK(t.top_k == def.top_k && t.font_size == def.font_size, "a bad value was taken");
    }
    CHECK(strstr(err.msg, "Font size"), "the refused value is not named: %s", err.msg);

    /* Regression (probe 3, Q-7): one refused value took the good ones before
     * it but not those after, while the message said "defaults used". Every
     * good value is kept now, and every refused one named. */
    write_text(path, "{\"system_prompt\": \"KEPT\", \"temperature\": 0.3, \"theme\": \"LIGHT\", "
                     "\"top_k\": 7, \"font_size\": 400}");
    t = def;
    CHECK(settings_load(path, &t, &err) == VKLLM_E_FORMAT, "a bad value was accepted");
    CHECK(!strcmp(t.system_prompt, "KEPT") && t.temp == 0.3f && t.top_k == 7,
          "a good value was dropped: \"%s\" %g %d", t.system_prompt, t.temp, t.top_k);
    CHECK(t.theme == def.theme && t.font_size == def.font_size, "a refused value was taken");
    CHECK(strstr(err.msg, "\"font_size\" (Font size: '400'") &&
              strstr(err.msg, "\"theme\" refused") && strstr(err.msg, "the other settings kept") &&
              !strstr(err.msg, "defaults used"),
          "%s", err.msg);
    CHECK(exists(GEN "/settings.json.corrupt-4"), "the file with refused values was not set aside");

    /* Regression: floats were saved with float noise (0.30000001192092896) */
    REQUIRE_OK(settings_save(&t, path, &err), "%s", err.msg);
    FILE *f = fopen(path, "rb");
    char text[4096] = {0};
    CHECK(f && fread(text, 1, sizeof text - 1, f) > 0);
    if (f) fclose(f);
    CHECK(strstr(text, "\"temperature\": 0.3,") && !strstr(text, "0000"),
          "floats saved with noise:\n%s", text);
    struct settings u = def;
    REQUIRE_OK(settings_load(path, &u, &err), "%s", err.msg);
    CHECK(same(&u, &t), "the shortest floats do not round-trip");

    /* Regression (probe round 4, R-19): a bad file that could not be moved
     * aside (1000 earlier ones in the way) was then saved over: now
     * VKLLM_E_IO, which tells the window to save nothing */
    write_text(path, "garbage");
    char aside[4200];
    int made_from = 1; /* the earlier cases' files stay, for the later ones */
    for (int i = 1; i < 1000; i++) {
        snprintf(aside, sizeof aside, "%s.corrupt-%d", path, i);
        if (exists(aside))
            made_from = i + 1;
        else
            write_text(aside, "x");
    }
    t = def;
    CHECK(settings_load(path, &t, &err) == VKLLM_E_IO && strstr(err.msg, "changes are not saved"),
          "%s", err.msg);
    f = fopen(path, "rb");
    char got[16] = "";
    CHECK(f && fread(got, 1, sizeof got - 1, f) == 7 && !strcmp(got, "garbage"),
          "the file that could not be moved changed");
    if (f) fclose(f);
    for (int i = made_from; i < 1000; i++) {
        snprintf(aside, sizeof aside, "%s.corrupt-%d", path, i);
        unlink(aside);
    }
    unlink(path);

    /* Regression: a FIFO (or a directory) as settings.json blocked the
     * window before its first frame; now refused at once, not set aside */
    unlink(path);
    REQUIRE(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
    alarm(20); /* a blocking open fails the test instead of hanging it */
    t = def;
    CHECK(settings_load(path, &t, &err) == VKLLM_E_IO && strstr(err.msg, "not a regular file") &&
              strstr(err.msg, "defaults used"),
          "%s", err.msg);
    alarm(0);
    CHECK(exists(path) && !exists(GEN "/settings.json.corrupt-5"), "a FIFO was moved aside");
    unlink(path);
    REQUIRE(mkdir(path, 0700) == 0);
    CHECK(settings_load(path, &t, &err) == VKLLM_E_IO && strstr(err.msg, "not a regular file"),
          "%s", err.msg);
    rmdir(path);
    /* bigger than a settings file can be: refused and set aside */
    f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs("{\"system_prompt\": \"", f);
    for (int i = 0; i < (1 << 20); i++)
        fputc('x', f);
    fputs("\"}", f);
    fclose(f);
    CHECK(settings_load(path, &t, &err) == VKLLM_E_FORMAT && strstr(err.msg, "more than the 1 MiB"),
          "%s", err.msg);
    CHECK(!exists(path) && exists(GEN "/settings.json.corrupt-5"), "a huge file was not set aside");

    /* the next save makes a fresh file beside the ones set aside */
    REQUIRE_OK(settings_save(&def, path, &err), "%s", err.msg);
    t = s;
    REQUIRE_OK(settings_load(path, &t, &err), "%s", err.msg);
    CHECK(same(&t, &def), "the defaults did not round-trip");
    CHECK(exists(GEN "/settings.json.corrupt-1"), "a save replaced a set-aside file");
}

/* Probe 4, R-16: two windows on one settings.json. Each saved its whole
 * copy, so B's change undid A's made after B had read the file; a save
 * writes its own changes over the file as it is now. */
static void check_two_windows(void)
{
    struct vkllm_error err = {0};
    const char *path = GEN "/two.json";
    unlink(path);
    struct settings def, a, b, a_loaded, b_loaded, t;
    settings_defaults(&def);
    REQUIRE_OK(settings_save(&def, path, &err), "%s", err.msg);
    a_loaded = b_loaded = def;
    REQUIRE_OK(settings_load(path, &a_loaded, &err), "%s", err.msg);
    REQUIRE_OK(settings_load(path, &b_loaded, &err), "%s", err.msg);
    a = a_loaded;
    REQUIRE_OK(settings_set(&a, "top_k", "7", &err), "%s", err.msg);
    REQUIRE_OK(settings_save_changes(&a_loaded, &a, path, &err), "%s", err.msg);
    b = b_loaded;
    REQUIRE_OK(settings_set(&b, "temperature", "0.3", &err), "%s", err.msg);
    REQUIRE_OK(settings_save_changes(&b_loaded, &b, path, &err), "%s", err.msg);
    t = def;
    REQUIRE_OK(settings_load(path, &t, &err), "%s", err.msg);
    CHECK(t.top_k == 7 && t.temp == 0.3f, "A's top_k %d, B's temperature %g", t.top_k,
          (double)t.temp);
    CHECK(b.top_k == 7 && same(&b, &t), "B holds what it wrote: top_k %d", b.top_k);
    /* a key both changed: the later save's value */
    a_loaded = a;
    REQUIRE_OK(settings_set(&a, "temperature", "0.9", &err), "%s", err.msg);
    REQUIRE_OK(settings_save_changes(&a_loaded, &a, path, &err), "%s", err.msg);
    t = def;
    REQUIRE_OK(settings_load(path, &t, &err), "%s", err.msg);
    CHECK(t.temp == 0.9f && t.top_k == 7, "%g %d", (double)t.temp, t.top_k);
    /* a file made corrupt meanwhile: moved aside, then the change saved */
    write_text(path, "{\"top_k\": ");
    unlink(GEN "/two.json.corrupt-1");
    b_loaded = b;
    REQUIRE_OK(settings_set(&b, "top_k", "9", &err), "%s", err.msg);
    CHECK(settings_save_changes(&b_loaded, &b, path, &err) == VKLLM_E_FORMAT &&
              strstr(err.msg, "moved aside"),
          "%s", err.msg);
    t = def;
    REQUIRE_OK(settings_load(path, &t, &err), "%s", err.msg);
    CHECK(t.top_k == 9 && exists(GEN "/two.json.corrupt-1"), "%d", t.top_k);
    unlink(GEN "/two.json.corrupt-1");
    unlink(path);
}

int main(void)
{
    check_fields();
    check_device();
    check_path();
    check_file();
    check_two_windows();
    return TEST_REPORT();
}
