/* tune_table.c: the tuned kernel variants' file (the format is in
 * tune_table.h). */
#include "tune_table.h"

#include "error.h"
#include "number.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* MAX_LINES: a real file holds a few shapes per model; more than this is
 * not one of ours, and would cost every start its parsing. */
enum { FORMAT_VERSION = 3, MAX_FILE = 1 << 20, MAX_TPR = 1024, MAX_ROWS = 8, MAX_LINES = 4096 };

/* PC's path with "pipelines-" made "tune-" and ".bin" ".txt", malloc'd. */
static char *tune_path(const char *cache_path)
{
    const char *name = strrchr(cache_path, '/') + 1;
    const char *rest = name + strlen("pipelines");
    const size_t dir = (size_t)(name - cache_path), mid = strlen(rest) - strlen(".bin");
    char *p = malloc(dir + strlen("tune") + mid + strlen(".txt") + 1);
    if (p) sprintf(p, "%.*stune%.*s.txt", (int)dir, cache_path, (int)mid, rest);
    return p;
}

static void key_line(const struct pipeline_cache_key *k, char *out, size_t cap)
{
    int n = snprintf(out, cap, "key %04" PRIx32 " %04" PRIx32 " %08" PRIx32 " ", k->vendor_id,
                     k->device_id, k->driver_version);
    for (size_t i = 0; i < sizeof k->uuid && n > 0 && (size_t)n + 3 < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", k->uuid[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, " %016" PRIx64, k->shader_hash);
}

static const struct quant_format *format_named(const char *name)
{
    for (uint32_t i = 0; i < quant_format_count; i++)
        if (!strcmp(quant_formats[i].name, name)) return &quant_formats[i];
    return NULL;
}

/* The next space-separated field of *LINE, NUL-terminated; NULL past the
 * last. */
static char *field(char **line)
{
    char *s = *line, *space = s ? strchr(s, ' ') : NULL;
    if (space) *space = '\0';
    *line = space ? space + 1 : NULL;
    return s;
}

/* S as vkllm_tune writes a number: digits only, no sign, no leading zero,
 * 1 to MAX (sscanf's %u took "+64", "0064" and wrapped 4294967297 to 1). */
static bool number(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (!s || !*s || s[0] == '0') return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (uint64_t)(*s - '0')) > max) return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Parses BUF (NUL-terminated) into T; false with WHY filled at the first bad
 * line. */
static bool parse(struct tune_table *t, char *buf, const struct pipeline_cache_key *key, char *why,
                  size_t cap, struct vkllm_error *err, int *rc)
{
    char want[160];
    key_line(key, want, sizeof want);
    unsigned line_no = 0;
    for (char *line = buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!next && !*line) break; /* the end; an empty line before it is bad */
        if (++line_no > MAX_LINES) {
            snprintf(why, cap, "more than %d lines (a model has a handful of shapes)", MAX_LINES);
            return false;
        }
        if (line_no == 1) {
            char head[32];
            snprintf(head, sizeof head, "vkllm tune %d", FORMAT_VERSION);
            if (strcmp(line, head)) {
                snprintf(why, cap, "not a vkllm tune file of version %d", FORMAT_VERSION);
                return false;
            }
            continue;
        }
        if (line_no == 2) {
            if (strcmp(line, want)) {
                snprintf(why, cap, "made for another device, driver or build of the shaders");
                return false;
            }
            continue;
        }
        char *rest = line, *op = field(&rest), *type = field(&rest), *ks = field(&rest),
             *ns = field(&rest), *tprs = field(&rest), *rows = field(&rest), *lanes = field(&rest);
        const struct quant_format *f = type ? format_named(type) : NULL;
        uint32_t k, n;
        struct matvec_variant v;
        if (!rest && !strcmp(op, "matvec") && f && number(ks, UINT32_MAX, &k) &&
            number(ns, UINT32_MAX, &n) && number(tprs, MAX_TPR, &v.tpr) && !(v.tpr & (v.tpr - 1)) &&
            number(rows, MAX_ROWS, &v.rows) && !(v.rows & (v.rows - 1)) && lanes &&
            (!strcmp(lanes, "blocks") || !strcmp(lanes, "words"))) {
            v.by_word = !strcmp(lanes, "words");
            if ((*rc = tune_table_set(t, f->type, k, n, v, err))) return false;
        } else {
            snprintf(why, cap, "line %u is not 'matvec TYPE K N TPR ROWS blocks|words'", line_no);
            return false;
        }
    }
    if (line_no < 2) {
        snprintf(why, cap, "truncated");
        return false;
    }
    return true;
}

/* VKLLM_TUNE: unset, "" or 1 on, 0 off (the file unread), manual (the file
 * read, never tuned automatically); number_switch's strictness, a third word. */
static int tune_mode(bool *read, bool *automatic, struct vkllm_error *err)
{
    const char *env = getenv("VKLLM_TUNE");
    *read = *automatic = true;
    if (env && !strcmp(env, "manual")) {
        *automatic = false;
        return VKLLM_OK;
    }
    if (!env || !*env || !strcmp(env, "1")) return VKLLM_OK;
    *read = *automatic = false;
    if (!strcmp(env, "0")) return VKLLM_OK;
    return vkllm_fail(
        err, VKLLM_E_INVALID,
        "VKLLM_TUNE: '%s' is neither 0 (off), 1 (on) nor manual (no automatic tuning)", env);
}

/* Reads PATH (made for KEY) into T, empty before; a missing file leaves it
 * empty, a bad one too, with WHY filled. Fails only when out of memory. */
static int read_file(struct tune_table *t, const char *path, const struct pipeline_cache_key *key,
                     char *why, size_t cap, struct vkllm_error *err)
{
    int rc = VKLLM_OK;
    uint8_t *buf;
    size_t len;
    why[0] = '\0';
    if (pipeline_cache_read_file(path, MAX_FILE, &buf, &len, why, cap) == 0 && buf) {
        if (strlen((char *)buf) != len)
            snprintf(why, cap, "holds a NUL byte");
        else if (parse(t, (char *)buf, key, why, cap, err, &rc))
            utimensat(AT_FDCWD, path, NULL, 0); /* in use: kept from pruning */
        free(buf);
    }
    if (why[0]) t->n = 0;
    return rc;
}

int tune_table_load(struct tune_table *t, const struct pipeline_cache *pc, struct vkllm_error *err)
{
    memset(t, 0, sizeof *t);
    bool read;
    int rc = tune_mode(&read, &t->automatic, err);
    t->budget_ns = 3000000000u;
    const char *budget = getenv("VKLLM_TUNE_SECONDS");
    if (!rc && budget && *budget)
        rc = number_setting("VKLLM_TUNE_SECONDS", budget, NUMBER_SECONDS, &t->budget_ns, err);
    if (rc) return rc;
    if (!pc->path) {
        t->automatic = false; /* nowhere to keep what it would measure */
        return VKLLM_OK;
    }
    if (!(t->path = tune_path(pc->path))) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    if (!read) return VKLLM_OK;

    char why[200];
    rc = read_file(t, t->path, &pc->key, why, sizeof why, err);
    if (!rc && why[0]) {
        struct vkllm_error e; /* the message machinery makes the path printable */
        vkllm_fail(&e, VKLLM_E_FORMAT, "%s: %s; tuning ignored (vkllm tune makes a new one)",
                   t->path, why);
        snprintf(t->note, sizeof t->note, "%s", e.msg);
    }
    return rc;
}

/* The entries are kept sorted by (type, k, n): op_matvec looks one up for
 * every matrix it records. The index of the first not before (TYPE, K, N). */
static uint32_t lower_bound(const struct tune_table *t, uint32_t type, uint32_t k, uint32_t n)
{
    const uint64_t want = (uint64_t)k << 32 | n;
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        const struct tune_entry *e = &t->e[mid];
        if (e->type < type || (e->type == type && ((uint64_t)e->k << 32 | e->n) < want))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Entry I (lower_bound's) if it is (TYPE, K, N), else NULL. */
static struct tune_entry *entry_at(const struct tune_table *t, uint32_t i, uint32_t type,
                                   uint32_t k, uint32_t n)
{
    struct tune_entry *e = i < t->n ? &t->e[i] : NULL;
    return e && e->type == type && e->k == k && e->n == n ? e : NULL;
}

static struct tune_entry *find(const struct tune_table *t, uint32_t type, uint32_t k, uint32_t n)
{
    return entry_at(t, lower_bound(t, type, k, n), type, k, n);
}

struct matvec_variant tune_table_matvec(const struct tune_table *t, uint32_t type, uint32_t k,
                                        uint32_t n)
{
    const struct tune_entry *e = find(t, type, k, n);
    return e ? e->v : (struct matvec_variant){0, 0, 0};
}

int tune_table_set(struct tune_table *t, uint32_t type, uint32_t k, uint32_t n,
                   struct matvec_variant v, struct vkllm_error *err)
{
    const uint32_t i = lower_bound(t, type, k, n);
    struct tune_entry *e = entry_at(t, i, type, k, n);
    if (e && !v.tpr) {
        memmove(e, e + 1, (t->n - i - 1) * sizeof *e);
        t->n--;
        return VKLLM_OK;
    }
    if (!v.tpr) return VKLLM_OK;
    if (!e) {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? 2 * t->cap : 16;
            struct tune_entry *p = realloc(t->e, cap * sizeof *p);
            if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
            t->e = p;
            t->cap = cap;
        }
        e = &t->e[i];
        memmove(e + 1, e, (t->n - i) * sizeof *e);
        t->n++;
    }
    *e = (struct tune_entry){type, k, n, v};
    return VKLLM_OK;
}

/* An advisory lock on PATH's directory, held until the descriptor returned
 * is closed; -1 when it cannot be taken (then saving goes unlocked, as
 * before there was one). */
static int lock_dir(const char *path)
{
    char *dir = strndup(path, (size_t)(strrchr(path, '/') - path));
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    while (fd >= 0 && flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            fd = -1;
        }
    return fd;
}

int tune_table_writable(const struct tune_table *t, struct vkllm_error *err)
{
    int rc = pipeline_cache_make_dirs(t->path, err);
    char *dir = rc ? NULL : strndup(t->path, (size_t)(strrchr(t->path, '/') - t->path));
    if (!rc && !dir) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    if (!rc && access(dir, W_OK) != 0)
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: cannot keep the tuning there: %s", dir,
                        strerror(errno));
    free(dir);
    return rc;
}

/* Writes T to PATH for KEY, atomically. */
static int write_table(const struct tune_table *t, const char *path,
                       const struct pipeline_cache_key *key, struct vkllm_error *err)
{
    size_t cap = 256 + (size_t)t->n * 64, n;
    char *text = malloc(cap);
    if (!text) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    n = (size_t)snprintf(text, cap, "vkllm tune %d\n", FORMAT_VERSION);
    key_line(key, text + n, cap - n);
    n += strlen(text + n);
    text[n++] = '\n';
    for (uint32_t i = 0; i < t->n; i++)
        n += (size_t)snprintf(text + n, cap - n,
                              "matvec %s %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %s\n",
                              quant_format(t->e[i].type)->name, t->e[i].k, t->e[i].n, t->e[i].v.tpr,
                              t->e[i].v.rows, t->e[i].v.by_word ? "words" : "blocks");
    int rc = vkllm_write_file(path, text, n, err);
    free(text);
    return rc;
}

int tune_table_save(const struct tune_table *t, const struct pipeline_cache *pc,
                    struct vkllm_error *err)
{
    if (!pc->path)
        return vkllm_fail(err, VKLLM_E_IO,
                          "no cache directory to keep the tuning in: set HOME or XDG_CACHE_HOME "
                          "(and not VKLLM_PIPELINE_CACHE=0)");
    char *path = tune_path(pc->path);
    if (!path) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    int rc = pipeline_cache_make_dirs(path, err);
    /* the file as it is now, whatever VKLLM_TUNE says, under the lock: other
     * models' shapes, written by another process since, stay */
    const int lock = rc ? -1 : lock_dir(path);
    struct tune_table disk = {0};
    char why[200]; /* a bad file is replaced */
    if (!rc) rc = read_file(&disk, path, &pc->key, why, sizeof why, err);
    for (uint32_t i = 0; !rc && i < t->n; i++)
        rc = tune_table_set(&disk, t->e[i].type, t->e[i].k, t->e[i].n, t->e[i].v, err);
    if (!rc) rc = write_table(&disk, path, &pc->key, err);
    if (!rc) pipeline_cache_prune_stale(path);
    if (lock >= 0) close(lock);
    tune_table_free(&disk);
    free(path);
    return rc;
}

void tune_table_free(struct tune_table *t)
{
    free(t->e);
    free(t->path);
    memset(t, 0, sizeof *t);
}
