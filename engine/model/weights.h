/* weights.h: weight matrices in device memory, in the layout shaders/quant.glsl
 * reads: split by rows into parts of at most one storage-buffer binding, and
 * quantized blocks separated into quants and scales. Internal to the engine. */
#ifndef VKLLM_WEIGHTS_H
#define VKLLM_WEIGHTS_H

#include "context.h"
#include "vk_memory.h"

struct gpu_weight_part {
    struct gpu_buf buf;
    uint32_t row_begin; /* first row of the matrix held here */
    uint32_t n_rows;
    uint32_t scale_offset; /* word offset of the blocks' scale halves (formats that split them) */
};

struct gpu_weight {
    uint32_t type; /* enum vkllm_type, a format of formats.h */
    uint32_t k;    /* row length (GGUF ne[0]) */
    uint32_t n;    /* rows (GGUF ne[1]) */
    uint32_t n_parts;
    struct gpu_weight_part *parts;
};

/* Bytes the device layout needs for ROWS rows of K elements of TYPE. */
uint64_t gpu_weight_bytes(uint32_t type, uint64_t k, uint64_t rows);

/* Rows in each part (the last may have fewer) when N rows of K elements of
 * TYPE are split into parts of at most MAX_PART_BYTES; 0 when two rows do not
 * fit one part. */
uint64_t gpu_weight_rows_per_part(uint32_t type, uint64_t k, uint64_t n, uint64_t max_part_bytes);

/* Uploads N rows of K elements of TYPE, in GGUF's layout at DATA, into memory
 * from POOL through U (flushed before returning). Parts are at most
 * MAX_PART_BYTES (0: the device's storage-buffer range). */
int gpu_weight_upload(struct gpu_uploader *u, struct gpu_pool *pool, uint32_t type, uint64_t k,
                      uint64_t n, const void *data, uint64_t max_part_bytes, struct gpu_weight *out,
                      struct vkllm_error *err);
/* The same for N rows from FIRST of tensor T of G, read from the file as they
 * are copied (a read error, such as the file changing, is the upload's). */
int gpu_weight_upload_tensor(struct gpu_uploader *u, struct gpu_pool *pool, const vkllm_gguf *g,
                             const struct vkllm_gguf_tensor *t, uint64_t first, uint64_t n,
                             uint64_t max_part_bytes, struct gpu_weight *out,
                             struct vkllm_error *err);
void gpu_weight_free(struct gpu_weight *w);

/* Uploads N floats into a new buffer from POOL. */
int gpu_upload_floats(struct gpu_uploader *u, struct gpu_pool *pool, const float *data, uint64_t n,
                      struct gpu_buf *out, struct vkllm_error *err);

#endif
