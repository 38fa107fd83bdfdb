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
#include <sys/stat.h>
#include <unistd.h>

enum { FORMAT_VERSION = 1, MAX_FILE = 1 << 20, MAX_TPR = 1024 };

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

/* Parses BUF (NUL-terminated) into T; false with WHY filled at the first bad
 * line. */
static bool parse(struct tune_table *t, char *buf, const struct pipeline_cache_key *key, char *why,
                  size_t cap, struct vkllm_error *err, int *rc)
{
    char want[160];
    key_line(key, want, sizeof want);
    unsigned line_no = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_no++;
        char type[16], extra;
        unsigned k, n, tpr;
        if (line_no == 1) {
            unsigned version;
            if (sscanf(line, "vkllm tune %u%c", &version, &extra) != 1 ||
                version != FORMAT_VERSION) {
                snprintf(why, cap, "not a vkllm tune file of version %d", FORMAT_VERSION);
                return false;
            }
        } else if (line_no == 2) {
            if (strcmp(line, want)) {
                snprintf(why, cap, "made for another device, driver or build of the shaders");
                return false;
            }
        } else if (sscanf(line, "matvec %15s %u %u %u%c", type, &k, &n, &tpr, &extra) == 4 &&
                   format_named(type) && k && n && tpr && tpr <= MAX_TPR && !(tpr & (tpr - 1))) {
            if ((*rc = tune_table_set(t, format_named(type)->type, k, n, tpr, err))) return false;
        } else {
            snprintf(why, cap, "line %u is not 'matvec TYPE K N TPR'", line_no);
            return false;
        }
    }
    if (line_no < 2) {
        snprintf(why, cap, "truncated");
        return false;
    }
    return true;
}

int tune_table_load(struct tune_table *t, const struct pipeline_cache *pc, struct vkllm_error *err)
{
    memset(t, 0, sizeof *t);
    const char *env = getenv("VKLLM_TUNE");
    bool on;
    int rc = number_switch("VKLLM_TUNE", env, &on, err);
    if (rc) return rc;
    if (!pc->path) return VKLLM_OK;
    if (!(t->path = tune_path(pc->path))) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    if (env && *env && !on) return VKLLM_OK; /* unset or empty: on */

    char why[200] = "";
    uint8_t *buf;
    size_t len;
    if (pipeline_cache_read_file(t->path, MAX_FILE, &buf, &len, why, sizeof why) == 0 && buf) {
        if (strlen((char *)buf) != len)
            snprintf(why, sizeof why, "holds a NUL byte");
        else if (parse(t, (char *)buf, &pc->key, why, sizeof why, err, &rc))
            utimensat(AT_FDCWD, t->path, NULL, 0); /* in use: kept from pruning */
        free(buf);
    }
    if (!rc && why[0]) {
        t->n = 0;
        struct vkllm_error e; /* the message machinery makes the path printable */
        vkllm_fail(&e, VKLLM_E_FORMAT, "%s: %s; tuning ignored (vkllm tune makes a new one)",
                   t->path, why);
        snprintf(t->note, sizeof t->note, "%s", e.msg);
    }
    return rc;
}

static struct tune_entry *find(const struct tune_table *t, uint32_t type, uint32_t k, uint32_t n)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->e[i].type == type && t->e[i].k == k && t->e[i].n == n) return &t->e[i];
    return NULL;
}

uint32_t tune_table_matvec_tpr(const struct tune_table *t, uint32_t type, uint32_t k, uint32_t n)
{
    const struct tune_entry *e = find(t, type, k, n);
    return e ? e->tpr : 0;
}

int tune_table_set(struct tune_table *t, uint32_t type, uint32_t k, uint32_t n, uint32_t tpr,
                   struct vkllm_error *err)
{
    struct tune_entry *e = find(t, type, k, n);
    if (e && !tpr) {
        *e = t->e[--t->n];
        return VKLLM_OK;
    }
    if (!tpr) return VKLLM_OK;
    if (!e) {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? 2 * t->cap : 16;
            struct tune_entry *p = realloc(t->e, cap * sizeof *p);
            if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
            t->e = p;
            t->cap = cap;
        }
        e = &t->e[t->n++];
    }
    *e = (struct tune_entry){type, k, n, tpr};
    return VKLLM_OK;
}

int tune_table_save(const struct tune_table *t, const struct pipeline_cache *pc,
                    struct vkllm_error *err)
{
    if (!t->path)
        return vkllm_fail(err, VKLLM_E_IO,
                          "no cache directory to keep the tuning in: set HOME or XDG_CACHE_HOME "
                          "(and not VKLLM_PIPELINE_CACHE=0)");
    size_t cap = 256 + (size_t)t->n * 64, n;
    char *text = malloc(cap);
    if (!text) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    n = (size_t)snprintf(text, cap, "vkllm tune %d\n", FORMAT_VERSION);
    key_line(&pc->key, text + n, cap - n);
    n += strlen(text + n);
    text[n++] = '\n';
    for (uint32_t i = 0; i < t->n; i++)
        n += (size_t)snprintf(text + n, cap - n, "matvec %s %" PRIu32 " %" PRIu32 " %" PRIu32 "\n",
                              quant_format(t->e[i].type)->name, t->e[i].k, t->e[i].n, t->e[i].tpr);
    int rc = pipeline_cache_make_dirs(t->path, err);
    if (!rc) rc = vkllm_write_file(t->path, text, n, err);
    if (!rc) pipeline_cache_prune_stale(t->path);
    free(text);
    return rc;
}

void tune_table_free(struct tune_table *t)
{
    free(t->e);
    free(t->path);
    memset(t, 0, sizeof *t);
}
