/* weights.c: splitting weight matrices into parts and repacking their blocks. */
#include "weights.h"

#include "quant.h"

#include <stdlib.h>
#include <string.h>

/* The device layout of a block format: each block's bytes as whole words,
 * BLOCK_WORDS of them, blocks row-major; for blocks of 4k + 2 bytes the
 * half-float scale at byte half_at is moved to an array of halves after the
 * blocks (word scale_offset). Float types keep GGUF's rows unchanged. */
static uint32_t block_words(const struct quant_format *f)
{
    return f->block_size == 1 ? 0 : (f->block_bytes - (f->half_at >= 0 ? 2 : 0)) / 4;
}

uint64_t gpu_weight_bytes(uint32_t type, uint64_t k, uint64_t rows)
{
    const struct quant_format *f = quant_format(type);
    if (!f) return 0;
    if (f->block_size == 1) return (k * rows * f->block_bytes + 3) / 4 * 4;
    const uint64_t blocks = k / f->block_size * rows;
    return blocks * block_words(f) * 4 + (f->half_at >= 0 ? (blocks + 1) / 2 * 4 : 0);
}

uint64_t gpu_weight_rows_per_part(uint32_t type, uint64_t k, uint64_t n, uint64_t max_part_bytes)
{
    /* whole parts fit one binding, padding included; an even count keeps
     * half-float scales from sharing a word across parts */
    const uint64_t row_bytes = gpu_weight_bytes(type, k, 2) / 2 + 1;
    uint64_t per_part = max_part_bytes > 16 ? (max_part_bytes - 16) / row_bytes : 0;
    per_part &= ~(uint64_t)1;
    if (per_part < 2) return 0;
    return per_part < n ? per_part : n;
}

/* Where a matrix's bytes in GGUF's layout come from: memory, or a tensor of
 * an open file (from byte BASE of it), read as they are copied. */
struct weight_src {
    const uint8_t *mem;
    const vkllm_gguf *g; /* NULL: from MEM */
    const struct vkllm_gguf_tensor *t;
    uint64_t base;
};

static int src_read(const struct weight_src *s, uint64_t off, void *dst, uint64_t n,
                    struct vkllm_error *err)
{
    if (!s->g) {
        memcpy(dst, s->mem + off, n);
        return VKLLM_OK;
    }
    return vkllm_gguf_read(s->g, s->t, s->base + off, dst, n, err);
}

#define REPACK_BYTES (4u << 20) /* host buffer for the formats whose blocks are repacked */

/* Writes the part's rows of the GGUF data through the uploader. Chunks hold an
 * even number of rows so that half-float scales (and F16 rows of odd length)
 * never share a word between two copies. Bytes that are copied as they are go
 * straight into the staging memory; blocks that are repacked go through a
 * host buffer of about REPACK_BYTES. */
static int upload_rows(struct gpu_uploader *u, const struct gpu_weight_part *part,
                       const struct quant_format *f, uint64_t k, const struct weight_src *src,
                       struct vkllm_error *err)
{
    const uint64_t src_row = quant_row_bytes(f->type, k);
    const uint64_t cap = u->ring.size;
    uint64_t chunk = cap / (gpu_weight_bytes(f->type, k, 1) + 8);
    if (f->half_at >= 0 && chunk > REPACK_BYTES / src_row) chunk = REPACK_BYTES / src_row;
    chunk &= ~(uint64_t)1;
    if (chunk < 2) chunk = 2;
    uint8_t *host = NULL;
    if (f->half_at >= 0) {
        const uint64_t rows = part->n_rows < chunk ? part->n_rows : chunk;
        if (!(host = malloc(rows * src_row)))
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }

    int rc = VKLLM_OK;
    for (uint64_t r0 = 0; !rc && r0 < part->n_rows; r0 += chunk) {
        uint64_t rows = part->n_rows - r0 < chunk ? part->n_rows - r0 : chunk;
        const uint64_t from = (part->row_begin + r0) * src_row;
        if (f->block_size == 1) {
            uint64_t off = r0 * src_row, bytes = rows * src_row;
            void *dst;
            rc = gpu_upload_map(u, &part->buf, off, (bytes + 3) & ~3ull, &dst, err);
            if (!rc) rc = src_read(src, from, dst, bytes, err);
            continue;
        }
        const uint64_t nb = k / f->block_size, words = block_words(f);
        const uint64_t blocks = rows * nb, b0 = r0 * nb;
        const uint64_t bb = f->block_bytes;
        void *q;
        if ((rc = gpu_upload_map(u, &part->buf, b0 * words * 4, blocks * words * 4, &q, err)))
            break;
        if (f->half_at < 0) {
            rc = src_read(src, from, q, blocks * bb, err);
            continue;
        }
        if ((rc = src_read(src, from, host, blocks * bb, err))) break;
        /* the block without its scale half, then the scales */
        const uint64_t h = (uint64_t)f->half_at;
        for (uint64_t b = 0; b < blocks; b++) {
            uint8_t *dst = (uint8_t *)q + b * words * 4;
            memcpy(dst, host + b * bb, h);
            memcpy(dst + h, host + b * bb + h + 2, bb - h - 2);
        }
        void *scales;
        rc = gpu_upload_map(u, &part->buf, (uint64_t)part->scale_offset * 4 + b0 * 2,
                            (blocks + 1) / 2 * 4, &scales, err);
        if (rc) break;
        for (uint64_t b = 0; b < blocks; b++)
            memcpy((uint8_t *)scales + 2 * b, host + b * bb + h, 2);
        if (blocks & 1) memset((uint8_t *)scales + 2 * blocks, 0, 2); /* the padding half */
    }
    free(host);
    return rc;
}

static int upload(struct gpu_uploader *u, struct gpu_pool *pool, uint32_t type, uint64_t k,
                  uint64_t n, const struct weight_src *src, uint64_t max_part_bytes,
                  struct gpu_weight *out, struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    const struct quant_format *f = quant_format(type);
    if (!f || quant_row_bytes(type, k) == 0 || n == 0 || k > UINT32_MAX || n > UINT32_MAX)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "cannot place a %s matrix of %llu x %llu",
                          vkllm_type_info(type) ? vkllm_type_info(type)->name : "?",
                          (unsigned long long)n, (unsigned long long)k);
    if (!max_part_bytes || max_part_bytes > pool->dev->info.max_storage_buffer_range)
        max_part_bytes = pool->dev->info.max_storage_buffer_range;
    const uint64_t per_part = gpu_weight_rows_per_part(type, k, n, max_part_bytes);
    if (!per_part)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "a row of %llu elements does not fit one storage buffer binding",
                          (unsigned long long)k);
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
        if (f->half_at >= 0)
            p->scale_offset = (uint32_t)(k / f->block_size * p->n_rows * block_words(f));
        int rc = gpu_pool_alloc(pool, gpu_weight_bytes(type, k, p->n_rows), &p->buf, err);
        if (!rc) rc = upload_rows(u, p, f, k, src, err);
        if (rc) {
            gpu_weight_free(out);
            return rc;
        }
    }
    return gpu_upload_flush(u, err);
}

int gpu_weight_upload(struct gpu_uploader *u, struct gpu_pool *pool, uint32_t type, uint64_t k,
                      uint64_t n, const void *data, uint64_t max_part_bytes, struct gpu_weight *out,
                      struct vkllm_error *err)
{
    const struct weight_src src = {.mem = data};
    return upload(u, pool, type, k, n, &src, max_part_bytes, out, err);
}

int gpu_weight_upload_tensor(struct gpu_uploader *u, struct gpu_pool *pool, const vkllm_gguf *g,
                             const struct vkllm_gguf_tensor *t, uint64_t first, uint64_t n,
                             uint64_t max_part_bytes, struct gpu_weight *out,
                             struct vkllm_error *err)
{
    const struct weight_src src = {
        .g = g, .t = t, .base = first * quant_row_bytes(t->type, t->ne[0])};
    return upload(u, pool, t->type, t->ne[0], n, &src, max_part_bytes, out, err);
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
