/* model_files.h: what the Models panel lists: one folder's sub-folders and
 * .gguf files, with their sizes, and what a GGUF header says of a model.
 *
 *   struct model_dir d;
 *   model_files_list("~/models", &d, &err);    once, when the folder is shown
 *   for each d.entries[i]: .label (printable), .dir, .size;
 *       open model_files_join(d.path, .name)
 *   model_files_free(&d);
 *   model_files_header(path, &h, &err);        the architecture and quantization
 *
 * Listing is safe on whatever a folder holds: entries are examined with
 * stat, never opened (a FIFO cannot block it), a link that loops or leads
 * nowhere is counted as skipped, hidden entries (".name") are left out, and
 * a folder of more than MODEL_FILES_MAX entries is cut there. Names go to
 * the screen through vkllm_printable: control characters, bidirectional
 * overrides and bytes that are not UTF-8 are shown escaped. No display, no
 * threads: model_files_header may be called from any thread. */
#ifndef VKLLM_CHAT_MODEL_FILES_H
#define VKLLM_CHAT_MODEL_FILES_H

#include "vkllm.h"

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
    bool truncated;   /* more than MODEL_FILES_MAX entries: the rest left out */
};

/* Lists folder DIR into *OUT (zeroed first). VKLLM_E_IO with "DIR: why" when
 * it is missing, not a folder, or cannot be read; *OUT is empty then. */
int model_files_list(const char *dir, struct model_dir *out, struct vkllm_error *err);
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
};
/* Reads PATH's GGUF metadata and tensor list (no tensor data): VKLLM_E_FORMAT
 * or VKLLM_E_IO with "PATH: why" for a file that is not a GGUF model. */
int model_files_header(const char *path, struct model_header *out, struct vkllm_error *err);

#endif
