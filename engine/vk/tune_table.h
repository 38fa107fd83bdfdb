/* tune_table.h: the kernel variants `vkllm tune` measured fastest on this
 * device, per weight shape, kept beside the pipeline cache. Internal to the
 * engine.
 *
 * $XDG_CACHE_HOME/vkllm/tune-VENDOR-DEVICE-SHADERHASH.txt (the pipeline
 * cache's directory and key), written atomically, is text:
 *
 *   vkllm tune 3
 *   key VENDOR DEVICE DRIVER UUID SHADERHASH      (hex; all must match)
 *   matvec TYPE K N TPR ROWS LANES                (one line per shape)
 *
 * TYPE is a format's name (Q4_0), K a row's length, N the rows, TPR the
 * threads per row and ROWS the rows per thread group (powers of two, ROWS at
 * most 8) of matvec.comp, LANES what a lane takes at a time: "blocks" (a
 * 32-element sub-block) or "words" (a word of Q4_K or Q6_K quants); numbers are
 * plain decimal (no sign, no leading zero), at most 4096 lines. Every
 * measured shape has a line, the default variant included, so that a shape
 * without one is known unmeasured (automatic tuning measures those). Files
 * of earlier versions are ignored with the note of any file made for
 * something else. A file that fails any check
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

/* A variant of the decode matvec (matvec.comp); tpr 0: none. */
struct matvec_variant {
    uint32_t tpr;     /* threads per row */
    uint32_t rows;    /* rows per thread group */
    uint32_t by_word; /* 1: a lane takes a word of quants at a time (Q4_K, Q6_K) */
};

struct tune_entry {
    uint32_t type, k, n; /* the weight's format and shape */
    struct matvec_variant v;
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
/* The matvec variant for a weight of TYPE, K x N; tpr 0 when not tuned. */
struct matvec_variant tune_table_matvec(const struct tune_table *t, uint32_t type, uint32_t k,
                                        uint32_t n);
/* Sets (or replaces) the entry for TYPE, K x N; a variant of tpr 0 removes it. */
int tune_table_set(struct tune_table *t, uint32_t type, uint32_t k, uint32_t n,
                   struct matvec_variant v, struct vkllm_error *err);
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
