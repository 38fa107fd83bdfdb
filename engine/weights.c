/* weights.c: splitting weight matrices into parts and repacking their blocks. */
#include "weights.h"

#include "quant.h"

#include <stdlib.h>
#include <string.h>

/* Words of quants per block in the device layout (0 for plain types). */
static uint32_t block_words(uint32_t type)
{
    switch (type) {
    case VKLLM_TYPE_Q8_0: return 8;
    case VKLLM_TYPE_Q4_0: return 4;
    default: return 0;
    }
}

uint64_t gpu_weight_bytes(uint32_t type, uint64_t k, uint64_t rows)
{
    switch (type) {
    case VKLLM_TYPE_F32: return 4 * k * rows;
    case VKLLM_TYPE_F16: return (k * rows + 1) / 2 * 4;
    default: {
        uint64_t blocks = k / 32 * rows;
        return blocks * block_words(type) * 4 + (blocks + 1) / 2 * 4;
    }
    }
}

/* Writes rows [r0, r1) of the GGUF data into the part, through the uploader.
 * Chunks hold an even number of rows so that half-float scales (and F16 rows of
 * odd length) never share a word between two copies. */
static int upload_rows(struct gpu_uploader *u, const struct gpu_weight_part *part, uint32_t type,
                       uint64_t k, const uint8_t *src, struct vkllm_error *err)
{
    const uint64_t src_row = quant_row_bytes(type, k);
    const uint64_t cap = u->ring.size;
    uint64_t chunk = cap / (gpu_weight_bytes(type, k, 1) + 8);
    chunk &= ~(uint64_t)1;
    if (chunk < 2) chunk = 2;

    for (uint64_t r0 = 0; r0 < part->n_rows; r0 += chunk) {
        uint64_t rows = part->n_rows - r0 < chunk ? part->n_rows - r0 : chunk;
        const uint8_t *s = src + (part->row_begin + r0) * src_row;
        if (type == VKLLM_TYPE_F32 || type == VKLLM_TYPE_F16) {
            uint64_t elem = type == VKLLM_TYPE_F32 ? 4 : 2;
            uint64_t off = r0 * k * elem, bytes = rows * k * elem;
            void *dst;
            int rc = gpu_upload_map(u, &part->buf, off, (bytes + 3) & ~3ull, &dst, err);
            if (rc) return rc;
            memcpy(dst, s, bytes);
            continue;
        }
        const uint64_t nb = k / 32, words = block_words(type);
        const uint64_t blocks = rows * nb, b0 = r0 * nb;
        const uint64_t block_bytes = vkllm_type_info(type)->block_bytes;
        void *q, *scales;
        int rc = gpu_upload_map(u, &part->buf, b0 * words * 4, blocks * words * 4, &q, err);
        if (rc) return rc;
        for (uint64_t b = 0; b < blocks; b++)
            memcpy((uint8_t *)q + b * words * 4, s + b * block_bytes + 2, words * 4);
        rc = gpu_upload_map(u, &part->buf, (uint64_t)part->scale_offset * 4 + b0 * 2,
                            (blocks + 1) / 2 * 4, &scales, err);
        if (rc) return rc;
        for (uint64_t b = 0; b < blocks; b++)
            memcpy((uint8_t *)scales + 2 * b, s + b * block_bytes, 2);
        if (blocks & 1) memset((uint8_t *)scales + 2 * blocks, 0, 2); /* the padding half */
    }
    return VKLLM_OK;
}

int gpu_weight_upload(struct gpu_uploader *u, struct gpu_pool *pool, uint32_t type, uint64_t k,
                      uint64_t n, const void *data, uint64_t max_part_bytes, struct gpu_weight *out,
                      struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    if (!quant_supported(type) || quant_row_bytes(type, k) == 0 || n == 0 || k > UINT32_MAX ||
        n > UINT32_MAX)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "cannot place a %s matrix of %llu x %llu",
                          vkllm_type_info(type) ? vkllm_type_info(type)->name : "?",
                          (unsigned long long)n, (unsigned long long)k);
    if (!max_part_bytes || max_part_bytes > pool->dev->info.max_storage_buffer_range)
        max_part_bytes = pool->dev->info.max_storage_buffer_range;

    /* rows per part: whole parts fit one binding, padding included */
    uint64_t row_bytes = gpu_weight_bytes(type, k, 2) / 2 + 1;
    uint64_t per_part = (max_part_bytes - 16) / row_bytes;
    per_part &= ~(uint64_t)1;
    if (per_part < 2)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "a row of %llu elements does not fit one storage buffer binding",
                          (unsigned long long)k);
    if (per_part > n) per_part = n;
    out->type = type;
    out->k = (uint32_t)k;
    out->n = (uint32_t)n;
    out->n_parts = (uint32_t)((n + per_part - 1) / per_part);
    out->parts = calloc(out->n_parts, sizeof *out->parts);
    if (!out->parts) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");

    for (uint32_t i = 0; i < out->n_parts; i++) {
        struct gpu_weight_part *p = &out->parts[i];
        p->row_begin = (uint32_t)(i * per_part);
        p->n_rows = (uint32_t)(n - p->row_begin < per_part ? n - p->row_begin : per_part);
        if (block_words(type)) p->scale_offset = (uint32_t)(k / 32 * p->n_rows * block_words(type));
        int rc = gpu_pool_alloc(pool, gpu_weight_bytes(type, k, p->n_rows), &p->buf, err);
        if (!rc) rc = upload_rows(u, p, type, k, data, err);
        if (rc) {
            gpu_weight_free(out);
            return rc;
        }
    }
    return gpu_upload_flush(u, err);
}

void gpu_weight_free(struct gpu_weight *w)
{
    if (!w) return;
    free(w->parts);
    memset(w, 0, sizeof *w);
}

int gpu_upload_floats(struct gpu_uploader *u, struct gpu_pool *pool, const float *data, uint64_t n,
                      struct gpu_buf *out, struct vkllm_error *err)
{
    int rc = gpu_pool_alloc(pool, n * 4, out, err);
    const uint64_t per = u->ring.size / 4;
    for (uint64_t i = 0; !rc && i < n; i += per) {
        uint64_t m = n - i < per ? n - i : per;
        void *dst;
        if ((rc = gpu_upload_map(u, out, i * 4, m * 4, &dst, err))) return rc;
        memcpy(dst, data + i, m * 4);
    }
    return rc ? rc : gpu_upload_flush(u, err);
}
