/* model_files.h: what the Models panel lists: one folder's sub-folders and
 * .gguf files, with their sizes, and what a GGUF header says of a model.
 *
 *   struct model_dir d;
 *   model_files_list("~/models", &d, &err);    once, when the folder is shown
 *   for each d.entries[i]: .label (printable), .dir, .size;
 *       open model_files_join(d.path, .name)
 *   model_files_free(&d);
 *   model_files_header(path, &h, &cancel, &err); the architecture and quantization
 *
 * Listing is safe on whatever a folder holds: entries are examined with
 * stat, never opened (a FIFO cannot block it), a link that loops or leads
 * nowhere is counted as skipped, hidden entries (".name") are left out, and
 * a folder of more than MODEL_FILES_MAX entries is cut there (the first
 * that readdir gives, in no useful order: the rest are only counted). Names go to
 * the screen through vkllm_printable: control characters, bidirectional
 * overrides and bytes that are not UTF-8 are shown escaped. No display, no
 * threads: model_files_header may be called from any thread. */
#ifndef VKLLM_CHAT_MODEL_FILES_H
#define VKLLM_CHAT_MODEL_FILES_H

#include "vkllm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most entries one folder shows: a folder of millions is cut here. */
#define MODEL_FILES_MAX 100000

struct model_entry {
    char *name;    /* as on disk: what model_files_join takes */
    char *label;   /* printable: what the panel shows */
    bool dir;      /* a folder (or a link to one) */
    uint64_t size; /* bytes; 0 for a folder */
};

struct model_dir {
    char *path;                  /* the folder, absolute, links resolved */
    struct model_entry *entries; /* folders first, then .gguf files, each in natural order */
    size_t n;
    size_t n_skipped; /* entries that could not be examined (broken links, loops, permissions) */
    size_t n_seen;    /* entries in the folder, hidden ones aside */
    bool truncated;   /* more than MODEL_FILES_MAX entries: only the first MODEL_FILES_MAX that
                         readdir gave were examined, the others counted in n_seen */
};

/* Lists folder DIR into *OUT (zeroed first). VKLLM_E_IO with "DIR: why" when
 * it is missing, not a folder, or cannot be read; *OUT is empty then. */
int model_files_list(const char *dir, struct model_dir *out, struct vkllm_error *err);
/* model_files_list with MAX for MODEL_FILES_MAX (tests: a folder of 100,001
 * files takes seconds to make). */
int model_files_list_at_most(const char *dir, size_t max, struct model_dir *out,
                             struct vkllm_error *err);
void model_files_free(struct model_dir *d);

/* DIR/NAME, malloc'd (NULL when out of memory). */
char *model_files_join(const char *dir, const char *name);
/* The folder that holds absolute folder DIR ("/" for "/"), malloc'd. */
char *model_files_parent(const char *dir);
/* BYTES as people read file sizes: "812 B", "1.1 MiB", "4.07 GiB". */
void model_files_size(uint64_t bytes, char *buf, size_t cap);
/* Natural order: case folded, runs of digits by value ("7b" before "13b"). */
int model_files_cmp(const char *a, const char *b);

/* What a model file's header says, read without its weights. */
struct model_header {
    char arch[24];     /* general.architecture, printable */
    char quant[16];    /* the type that holds most of the weights' bytes ("Q4_K") */
    uint64_t n_params; /* elements of every tensor */
    bool too_large;    /* not read: its header runs past MODEL_FILES_HEAD_MAX */
    bool adapter;      /* general.type is "adapter": a LoRA adapter for a model of ARCH */
};
/* The most bytes of metadata and tensor infos a listing reads: a real
 * model's (a 256k-token vocabulary with its merges) is a few MB. */
#define MODEL_FILES_HEAD_MAX ((uint64_t)32 << 20)
/* Reads PATH's GGUF metadata and tensor list (no tensor data): VKLLM_E_FORMAT
 * or VKLLM_E_IO with "PATH: why" for a file that is not a GGUF model,
 * VKLLM_E_UNSUPPORTED ("PATH: header too large to list ...") for one whose
 * header runs past MODEL_FILES_HEAD_MAX. CANCEL (NULL: none) set by another
 * thread ends it within a few milliseconds: VKLLM_E_IO, "PATH: stopped". */
int model_files_header(const char *path, struct model_header *out, const atomic_bool *cancel,
                       struct vkllm_error *err);

#endif
