/* tune_table.h: the kernel variants `vkllm tune` measured fastest on this
 * device, per weight shape, kept beside the pipeline cache. Internal to the
 * engine.
 *
 * $XDG_CACHE_HOME/vkllm/tune-VENDOR-DEVICE-SHADERHASH.txt (the pipeline
 * cache's directory and key), written atomically, is text:
 *
 *   vkllm tune 1
 *   key VENDOR DEVICE DRIVER UUID SHADERHASH      (hex; all must match)
 *   matvec TYPE K N TPR                           (one line per shape)
 *
 * TYPE is a format's name (Q4_0), K a row's length, N the rows, TPR the
 * threads per row (a power of two) of matvec.comp; numbers are plain decimal
 * (no sign, no leading zero), at most 4096 lines. Every measured shape has
 * a line, the default's TPR included, so that a shape without one is known
 * unmeasured (automatic tuning measures those). A file that fails any check
 * is ignored with a note; VKLLM_TUNE=0 ignores it too (the defaults, for
 * measuring against them), VKLLM_TUNE=manual reads it but turns automatic
 * tuning off. */
#ifndef VKLLM_TUNE_TABLE_H
#define VKLLM_TUNE_TABLE_H

#include "pipeline_cache.h"
#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tune_entry {
    uint32_t type, k, n; /* the weight's format and shape */
    uint32_t tpr;        /* matvec threads per row */
};

struct tune_table {
    struct tune_entry *e;
    uint32_t n, cap;
    char *path;         /* NULL: no cache directory (or VKLLM_PIPELINE_CACHE=0) */
    bool automatic;     /* VKLLM_TUNE unset, empty or 1: programs tune missing shapes */
    uint64_t budget_ns; /* automatic tuning's measuring time: VKLLM_TUNE_SECONDS, else 3 s */
    char note[1100];    /* why a file was ignored, or "" */
};

/* Reads the table kept for the device whose pipeline cache is PC (its path
 * and key). A missing file is an empty table; a bad one an empty table and a
 * note. Fails only when out of memory, VKLLM_TUNE is not 0, 1 or manual, or
 * VKLLM_TUNE_SECONDS is not a number of seconds. */
int tune_table_load(struct tune_table *t, const struct pipeline_cache *pc, struct vkllm_error *err);
/* Matvec threads per row for a weight of TYPE, K x N; 0 when not tuned. */
uint32_t tune_table_matvec_tpr(const struct tune_table *t, uint32_t type, uint32_t k, uint32_t n);
/* Sets (or replaces) the entry for TYPE, K x N; TPR 0 removes it. */
int tune_table_set(struct tune_table *t, uint32_t type, uint32_t k, uint32_t n, uint32_t tpr,
                   struct vkllm_error *err);
/* Merges T's entries into PC's file: under an advisory lock on its
 * directory (taken where it can be), reads the file as it is then (whatever
 * VKLLM_TUNE says; a bad one as empty), sets T's entries over it and writes
 * it atomically, so that no other model's shapes are lost, also to another
 * process saving at the same time. VKLLM_E_IO when there is no cache
 * directory. */
int tune_table_save(const struct tune_table *t, const struct pipeline_cache *pc,
                    struct vkllm_error *err);
/* T's directory (T has a path) made, and writable: else what tuning measures
 * would be lost, and measured again at every run. */
int tune_table_writable(const struct tune_table *t, struct vkllm_error *err);
void tune_table_free(struct tune_table *t);

#endif
