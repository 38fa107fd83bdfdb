/* ops.c: push constants, specialization and workgroup counts of each kernel. */
#include "ops.h"

#include "context.h"
#include "kernels.h"
#include "quant.h"

#include <math.h>

/* The pipeline of kernel S with WG threads per workgroup and the rest of its
 * specialization constants. */
static int pipeline_wg(struct op_env *e, enum shader_id s, uint32_t wg, const uint32_t *spec_rest,
                       uint32_t n_rest, uint32_t n_bindings, uint32_t push_size,
                       struct vk_pipeline **out, struct vkllm_error *err)
{
    uint32_t spec[PIPELINE_MAX_SPEC] = {wg};
    for (uint32_t i = 0; i < n_rest; i++)
        spec[1 + i] = spec_rest[i];
    return vk_pipeline_get(&e->ctx->pipes, s, spec, 1 + n_rest, n_bindings, push_size, out, err);
}

/* The same with the context's workgroup size, which most kernels take. */
static int pipeline(struct op_env *e, enum shader_id s, const uint32_t *spec_rest, uint32_t n_rest,
                    uint32_t n_bindings, uint32_t push_size, struct vk_pipeline **out,
                    struct vkllm_error *err)
{
    return pipeline_wg(e, s, e->ctx->wg_size, spec_rest, n_rest, n_bindings, push_size, out, err);
}

/* The variant of a per-format kernel: the build emits them in formats.h order
 * starting from the F32 one (shaders/CMakeLists.txt). */
static enum shader_id by_format(enum shader_id first, uint32_t type)
{
    return (enum shader_id)(first + quant_format_index(type));
}

static uint32_t div_up(uint64_t a, uint32_t b)
{
    return (uint32_t)((a + b - 1) / b);
}

int op_get_rows(struct op_env *e, const struct gpu_weight *table, const struct gpu_buf *out,
                bool by_position, bool acc, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    int rc = pipeline(e, by_format(SHADER_GET_ROWS_F32, table->type), NULL, 0, 3,
                      sizeof(struct push_get_rows), &p, err);
    for (uint32_t i = 0; !rc && i < table->n_parts; i++) {
        const struct gpu_weight_part *part = &table->parts[i];
        struct push_get_rows pc = {
            table->k,           part->row_begin, part->row_begin + part->n_rows,
            part->scale_offset, by_position,     acc};
        struct gpu_buf bufs[] = {e->step, part->buf, *out};
        /* parts write disjoint rows: only the last needs the barrier */
        rc = gpu_graph_dispatch(e->graph, p, e->batch, &pc, bufs,
                                i + 1 == table->n_parts ? e->sync : GPU_NO_BARRIER, err);
    }
    return rc;
}

/* A norm's threads per workgroup (its one row): a thread per chunk of CHUNK
 * elements (norm.comp's CH), up to the context's norm_wg and the device's
 * limit, at least 16 */
static uint32_t norm_wg(const struct op_env *e, uint32_t n, uint32_t chunk)
{
    uint32_t max = e->ctx->dev.info.max_workgroup_invocations;
    if (max > e->ctx->norm_wg) max = e->ctx->norm_wg;
    uint32_t wg = 16;
    while (wg < max && wg * chunk < n)
        wg *= 2;
    return wg;
}

int op_norm(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *w,
            const struct gpu_buf *b, const struct gpu_buf *out, uint32_t n, uint32_t rows,
            float eps, bool layer_norm, bool row_weights, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    int rc = pipeline_wg(e, SHADER_NORM, norm_wg(e, n, 4), NULL, 0, 5, sizeof(struct push_norm), &p,
                         err);
    if (rc) return rc;
    struct push_norm pc = {n, eps, rows, layer_norm, b != NULL, row_weights, 0};
    struct gpu_buf bufs[] = {e->step, *x, *w, b ? *b : *w, *out};
    return gpu_graph_dispatch(e->graph, p, e->batch * rows, &pc, bufs, e->sync, err);
}

/* Word offset of the scales in a quantized activation buffer. */
static uint32_t q8_scale_offset(uint32_t batch, uint32_t k)
{
    return batch * (k / 32) * 8;
}

int op_norm_q8(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *w,
               const struct gpu_buf *b, const struct gpu_buf *out, const struct gpu_buf *xq,
               uint32_t n, uint32_t rows, float eps, bool layer_norm, bool row_weights,
               bool last_only, struct vkllm_error *err)
{
    const uint32_t floats = op_matvec_uses_gemm(e, last_only);
    struct vk_pipeline *p;
    int rc = pipeline_wg(e, SHADER_NORM_Q8, norm_wg(e, n, 32), &floats, 1, 6,
                         sizeof(struct push_norm), &p, err);
    if (rc) return rc;
    struct push_norm pc = {
        n, eps, rows, layer_norm, b != NULL, row_weights, q8_scale_offset(e->batch, n * rows)};
    struct gpu_buf bufs[] = {e->step, *x, *w, b ? *b : *w, *out, *xq};
    return gpu_graph_dispatch(e->graph, p, e->batch * rows, &pc, bufs, e->sync, err);
}

uint64_t op_step_bytes(uint32_t batch)
{
    return STEP_HEADER_WORDS * 4 + (uint64_t)batch * sizeof(struct step_row);
}

void op_step_prompt(const struct gpu_buf *step, const int32_t *tokens, uint32_t n, uint32_t pos0,
                    uint32_t seq)
{
    struct step_header *h = step->mapped;
    struct step_row *row = (struct step_row *)(h + 1);
    h->n_tokens = n;
    for (uint32_t t = 0; t < n; t++)
        row[t] = (struct step_row){tokens[t], pos0 + t, seq};
}

/* A GEMM in token pairs (gemm.comp's PAIRS) reads its input as
 * pair_inputs.comp writes it from the floats, where those end in the
 * quantized input buffer (at a multiple of 256 bytes, the most that Vulkan
 * lets a device ask of a binding's offset): per pair of tokens and 32-element
 * block, 8 uvec4 texels of paired quants, then a texel of scales per pair and
 * block. Room for the pairs of whole 64-token tiles: a workgroup reads its
 * tile's pairs past the step's tokens, and never stores their sums. */
#define PAIRS_TILE 64
static uint32_t pairs_room(uint32_t batch)
{
    return div_up(batch, PAIRS_TILE) * (PAIRS_TILE / 2);
}

/* The part of XQ that holds those pairs, for BATCH tokens of K floats */
static struct gpu_buf pairs_part(const struct gpu_buf *xq, uint32_t batch, uint32_t k)
{
    const uint64_t at = ((uint64_t)batch * (k / 32) * 32 * 4 + 255) / 256 * 256;
    return (struct gpu_buf){
        .buffer = xq->buffer,
        .offset = xq->offset + at,
        .size = (uint64_t)pairs_room(batch) * (k / 32) * 9 * 16,
        .mapped = xq->mapped ? (uint8_t *)xq->mapped + at : NULL,
    };
}

uint64_t op_q8_bytes(uint32_t batch, uint32_t k)
{
    /* 32 int8 quants and one float scale per block; a batch that can run as a
     * GEMM needs room for the floats it reads instead, and for their pairs */
    if (batch < GEMM_MIN_BATCH) return (uint64_t)batch * (k / 32) * (32 + 4);
    const struct gpu_buf none = {0}, pairs = pairs_part(&none, batch, k);
    return pairs.offset + pairs.size;
}

int op_quantize_q8(struct op_env *e, const struct gpu_buf *x, const struct gpu_buf *xq, uint32_t k,
                   bool last_only, struct vkllm_error *err)
{
    const uint32_t floats = op_matvec_uses_gemm(e, last_only);
    struct vk_pipeline *p;
    int rc =
        pipeline(e, SHADER_QUANTIZE_Q8, &floats, 1, 3, sizeof(struct push_quantize_q8), &p, err);
    if (rc) return rc;
    struct push_quantize_q8 pc = {k, q8_scale_offset(e->batch, k)};
    struct gpu_buf bufs[] = {e->step, *x, *xq};
    return gpu_graph_dispatch(e->graph, p, div_up((uint64_t)e->batch * (k / 32), e->ctx->wg_size),
                              &pc, bufs, e->sync, err);
}

/* Tokens per pass: one token for decode keeps the accumulators few; a batch
 * shares each weight load among eight tokens. A thread keeps at most
 * MATVEC_MAX_SUMS sums (rows x tokens): a tuned variant of more rows takes
 * fewer for a batch. */
#define MATVEC_TOKENS   8
#define MATVEC_MAX_SUMS 16
/* A matrix with few rows (a LoRA A of rank 16) would fit in one workgroup and
 * leave the other cores idle: its workgroups shrink (down to one row group of
 * TPR threads) until there are this many. Each row sums as before. */
#define MATVEC_MIN_GROUPS 8

/* The push constants of a matvec or GEMM over one part of W. */
static struct push_matvec matvec_push(const struct op_env *e, const struct gpu_weight *w,
                                      const struct gpu_weight_part *part, bool last_only)
{
    const bool q8 = op_matvec_takes_q8(e, w->type, last_only);
    return (struct push_matvec){
        .k = w->k,
        .n_rows = part->n_rows,
        .row_offset = part->row_begin,
        .scale_offset = part->scale_offset,
        .x_stride = q8 ? w->k / 32 * 8 : w->k,
        .x_scale_offset = q8 ? q8_scale_offset(e->batch, w->k) : 0,
        .y_stride = w->n,
        .last_only = last_only,
    };
}

static uint32_t pow2_floor(uint32_t v)
{
    uint32_t p = 1;
    while (p * 2 <= v)
        p *= 2;
    return p;
}

/* Whether W's matvec or GEMM reads W and X as texel buffers (their
 * kernels' _tx variants): where the context takes texel loads, for block
 * formats, and where the device can view every part and X so. */
static bool texel_loads(const struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x)
{
    const struct vk_device *dev = &e->ctx->dev;
    if (!e->ctx->texel_loads || quant_block_format_index(w->type) < 0 ||
        !gpu_texel_range_ok(dev, x))
        return false;
    for (uint32_t i = 0; i < w->n_parts; i++)
        if (!gpu_texel_range_ok(dev, &w->parts[i].buf)) return false;
    return true;
}

/* Tokens whose sums a GEMM thread keeps in registers at once: 1 x 8 rows
 * measured best on lavapipe (8 sums and their operands fit its 16 AVX
 * registers; docs/PERFORMANCE.md) */
#define GEMM_TILE_TOKENS 1

/* The GEMM of TYPE that multiplies two tokens at a time in integers
 * (gemm.comp's PAIRS), reading texels, where the format has one (the pairs
 * column of formats.h; Q4_0 is the first) and C takes them, else SHADER_COUNT */
static enum shader_id gemm_pairs(const struct vkllm_context *c, uint32_t type)
{
    const int i = quant_paired_format_index(type);
    return c->gemm_pairs && i >= 0 ? (enum shader_id)(SHADER_GEMM_PAIRS_Q4_0 + i) : SHADER_COUNT;
}

/* Records GEMM pipeline P over W's parts, a workgroup per tile of ROWS rows
 * by TOKENS tokens; its input X has X_STRIDE per token (its scales, if any,
 * at X_SCALE_OFFSET) */
static int gemm_parts(struct op_env *e, const struct gpu_weight *w, struct vk_pipeline *p,
                      const struct gpu_buf *x, uint32_t x_stride, uint32_t x_scale_offset,
                      const struct gpu_buf *y, bool acc, uint32_t rows, uint32_t tokens,
                      struct vkllm_error *err)
{
    const uint32_t tok_tiles = div_up(e->batch, tokens);
    int rc = 0;
    for (uint32_t i = 0; !rc && i < w->n_parts; i++) {
        const struct gpu_weight_part *part = &w->parts[i];
        struct push_matvec pc = matvec_push(e, w, part, false);
        pc.x_stride = x_stride;
        pc.x_scale_offset = x_scale_offset;
        pc.acc = acc;
        const struct gpu_buf bufs[] = {e->step, part->buf, *x, *y};
        gpu_graph_tag_bytes(e->graph, part->buf.size); /* read once a step */
        rc = gpu_graph_dispatch(e->graph, p, div_up(part->n_rows, rows) * tok_tiles, &pc, bufs,
                                i + 1 == w->n_parts ? e->sync : GPU_NO_BARRIER, err);
    }
    return rc;
}

/* gemm_coop.comp's tile: 64 rows by 64 tokens, a workgroup of 128 threads
 * (four subgroups of 32 on matrix units) */
#define COOP_ROWS    64
#define COOP_TOKENS  64
#define COOP_THREADS 128

bool op_matvec_uses_coop(const struct op_env *e, uint32_t type, bool last_only)
{
    return e->ctx->gemm_coop != GEMM_COOP_OFF && quant_block_format_index(type) >= 0 &&
           op_matvec_uses_gemm(e, last_only);
}

/* The GEMM on matrix units, or its emulation (e->ctx->gemm_coop): X floats */
static int gemm_coop(struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x,
                     const struct gpu_buf *y, bool acc, struct vkllm_error *err)
{
    const enum shader_id first =
        e->ctx->gemm_coop == GEMM_COOP_NV ? SHADER_GEMM_COOP_Q4_0 : SHADER_GEMM_COOP_EMU_Q4_0;
    struct vk_pipeline *p;
    int rc = pipeline_wg(e, (enum shader_id)(first + quant_block_format_index(w->type)),
                         COOP_THREADS, NULL, 0, 4, sizeof(struct push_matvec), &p, err);
    return rc ? rc : gemm_parts(e, w, p, x, w->k, 0, y, acc, COOP_ROWS, COOP_TOKENS, err);
}

static int gemm(struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x,
                const struct gpu_buf *y, bool acc, struct vkllm_error *err)
{
    const struct vkllm_context *c = e->ctx;
    if (op_matvec_uses_coop(e, w->type, false)) return gemm_coop(e, w, x, y, acc, err);
    const uint32_t tb = c->gemm_tokens;
    /* one row a thread where the matrix has too few rows to fill the full
     * count (a LoRA A of rank 16): only two variants, as each costs lavapipe
     * 0.5-2 s to create; a row's sum is the same either way */
    const uint32_t rpt = w->n >= c->gemm_wg * c->gemm_thread_rows ? c->gemm_thread_rows : 1;
    const uint32_t rows_per_wg = c->gemm_wg * rpt;
    const uint32_t spec[] = {tb, rpt, GEMM_TILE_TOKENS};
    enum shader_id id = by_format(c->gemm_shuffle ? SHADER_GEMM_F32 : SHADER_GEMM_SH_F32, w->type);
    const bool texels = c->gemm_shuffle && texel_loads(e, w, x);
    if (texels) /* Q4_0: the first block format */
        id = (enum shader_id)(SHADER_GEMM_TX_Q4_0 + quant_block_format_index(w->type));
    /* the pairs where the texels would run (their inputs' floats are there too) */
    const struct gpu_buf pairs = pairs_part(x, e->batch, w->k);
    const enum shader_id paired_id = gemm_pairs(c, w->type);
    const bool paired = texels && paired_id != SHADER_COUNT && tb <= PAIRS_TILE &&
                        gpu_texel_range_ok(&c->dev, &pairs);
    if (paired) id = paired_id;
    const uint32_t n_pairs = pairs_room(e->batch);
    struct vk_pipeline *p;
    int rc = pipeline_wg(e, id, c->gemm_wg, spec, 3, 4, sizeof(struct push_matvec), &p, err);
    if (!rc && paired) {
        /* the pairs go where the previous GEMM may still read its own */
        gpu_graph_barrier(e->graph);
        struct vk_pipeline *pp;
        rc = pipeline(e, SHADER_PAIR_INPUTS, NULL, 0, 3, sizeof(struct push_pair_inputs), &pp, err);
        const struct push_pair_inputs ppc = {w->k, n_pairs, n_pairs * (w->k / 32) * 8};
        const struct gpu_buf pbufs[] = {e->step, *x, pairs};
        if (!rc)
            rc = gpu_graph_dispatch(e->graph, pp,
                                    div_up((uint64_t)div_up(e->batch, 2) * (w->k / 32), c->wg_size),
                                    &ppc, pbufs, GPU_BARRIER, err);
    }
    /* the GEMM reads floats, Q8_0-rounded for Q4_0 and Q8_0, or their pairs */
    if (rc) return rc;
    if (paired)
        return gemm_parts(e, w, p, &pairs, n_pairs, n_pairs * (w->k / 32) * 8, y, acc, rows_per_wg,
                          tb, err);
    return gemm_parts(e, w, p, x, w->k, 0, y, acc, rows_per_wg, tb, err);
}

bool op_matvec_uses_gemm(const struct op_env *e, bool last_only)
{
    return e->ctx->gemm && e->batch >= GEMM_MIN_BATCH && !last_only && !e->mixed_rows;
}

bool op_matvec_int_dot(const struct op_env *e, uint32_t type, bool last_only)
{
    return e->ctx->matvec_int_dot && quant_format(type)->block_size > 1 &&
           !op_matvec_uses_gemm(e, last_only);
}

bool op_matvec_takes_q8(const struct op_env *e, uint32_t type, bool last_only)
{
    return quant_format(type)->act == ACT_Q8 || op_matvec_int_dot(e, type, last_only) ||
           (op_matvec_uses_gemm(e, last_only) && gemm_pairs(e->ctx, type) != SHADER_COUNT);
}

bool op_matvec_by_word(const struct vkllm_context *c, uint32_t type)
{
    return (type == VKLLM_TYPE_Q4_K || type == VKLLM_TYPE_Q6_K) && !c->matvec_int_dot;
}

int op_matvec(struct op_env *e, const struct gpu_weight *w, const struct gpu_buf *x,
              const struct gpu_buf *y, bool acc, bool last_only, struct vkllm_error *err)
{
    const struct quant_format *f = quant_format(w->type);
    const struct vkllm_context *c = e->ctx;
    if (op_matvec_uses_gemm(e, last_only)) return gemm(e, w, x, y, acc, err);
    /* threads per row: the subgroup size (the shuffles stay inside one), or
     * fewer when a row has fewer 32-element sub-blocks than that */
    const uint32_t units = f->block_size == 1 ? w->k : w->k / 32;
    /* `vkllm tune` may have found fewer faster for this shape (on lavapipe, a
     * thread per row of a small matrix: its input loads are then the same
     * for every lane) */
    const struct matvec_variant tuned = tune_table_matvec(&c->tune, w->type, w->k, w->n);
    const uint32_t want = tuned.tpr && tuned.tpr < c->matvec_tpr ? tuned.tpr : c->matvec_tpr;
    uint32_t tpr = pow2_floor(units < want ? units : want);
    /* no more accumulators than the graph has tokens: a group's decode step
     * of 4 sessions computes 4, not 8 (each token's sum is the same either way) */
    const uint32_t nt = last_only ? 1 : e->batch < MATVEC_TOKENS ? e->batch : MATVEC_TOKENS;
    uint32_t rows = tuned.rows ? tuned.rows : OP_MATVEC_ROWS;
    while (rows > 1 && rows * nt > MATVEC_MAX_SUMS)
        rows /= 2;
    uint32_t wg = c->wg_size;
    while (wg > tpr && div_up(w->n, wg / tpr * rows) < MATVEC_MIN_GROUPS)
        wg /= 2;
    const uint32_t rows_per_wg = wg / tpr * rows;
    const uint32_t spec[] = {rows, nt, acc, tpr, tuned.by_word && op_matvec_by_word(c, w->type)};
    enum shader_id id =
        by_format(c->matvec_subgroup ? SHADER_MATVEC_F32 : SHADER_MATVEC_SH_F32, w->type);
    if (op_matvec_int_dot(e, w->type, last_only)) /* Q4_0: the first block format of formats.h */
        id = (enum shader_id)((!c->matvec_subgroup    ? SHADER_MATVEC_DOT_SH_Q4_0
                               : texel_loads(e, w, x) ? SHADER_MATVEC_DOT_TX_Q4_0
                                                      : SHADER_MATVEC_DOT_Q4_0) +
                              quant_block_format_index(w->type));
    struct vk_pipeline *p;
    int rc = pipeline_wg(e, id, wg, spec, 5, 4, sizeof(struct push_matvec), &p, err);
    for (uint32_t i = 0; !rc && i < w->n_parts; i++) {
        const struct gpu_weight_part *part = &w->parts[i];
        struct push_matvec pc = matvec_push(e, w, part, last_only);
        struct gpu_buf bufs[] = {e->step, part->buf, *x, *y};
        gpu_graph_tag_bytes(e->graph, part->buf.size); /* read once a step */
        rc = gpu_graph_dispatch(e->graph, p, div_up(part->n_rows, rows_per_wg), &pc, bufs,
                                i + 1 == w->n_parts ? e->sync : GPU_NO_BARRIER, err);
    }
    return rc;
}

int op_rope(struct op_env *e, const struct gpu_buf *table, const struct gpu_buf *x,
            uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, bool neox, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    int rc = pipeline(e, SHADER_ROPE, NULL, 0, 3, sizeof(struct push_rope), &p, err);
    if (rc) return rc;
    struct push_rope pc = {n_heads, head_dim, n_rot, n_heads * head_dim, neox, n_rot};
    struct gpu_buf bufs[] = {e->step, *table, *x};
    uint64_t threads = (uint64_t)e->batch * n_heads * (n_rot / 2);
    return gpu_graph_dispatch(e->graph, p, div_up(threads, e->ctx->wg_size), &pc, bufs, e->sync,
                              err);
}

/* The offset of a KV cache kernel's variant for TYPE_K and TYPE_V from its
 * F16 one (shaders/CMakeLists.txt): 1 if K is Q8_0, plus 2 if V is. */
static uint32_t kv_q8_variant(uint32_t type_k, uint32_t type_v)
{
    return (type_k == VKLLM_CACHE_Q8_0) + 2 * (type_v == VKLLM_CACHE_Q8_0);
}

int op_kv_store(struct op_env *e, const struct gpu_buf *k, const struct gpu_buf *v,
                const struct gpu_buf *k_cache, const struct gpu_buf *v_cache, uint32_t n_embd_kv,
                uint32_t ring, uint32_t type_k, uint32_t type_v, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    const uint32_t q8 = kv_q8_variant(type_k, type_v);
    int rc = pipeline(e, SHADER_KV_STORE + q8, NULL, 0, 5, sizeof(struct push_kv_store), &p, err);
    if (rc) return rc;
    struct push_kv_store pc = {n_embd_kv, ring};
    struct gpu_buf bufs[] = {e->step, *k, *v, *k_cache, *v_cache};
    /* a thread per pair of halves, or per block of 32 with a Q8_0 cache */
    uint64_t threads = (uint64_t)e->batch * (q8 ? n_embd_kv / 32 : n_embd_kv / 2);
    return gpu_graph_dispatch(e->graph, p, div_up(threads, e->ctx->wg_size), &pc, bufs, e->sync,
                              err);
}

int op_rope_kv_store(struct op_env *e, const struct gpu_buf *table, const struct gpu_buf *q,
                     const struct gpu_buf *k, const struct gpu_buf *v,
                     const struct gpu_buf *k_cache, const struct gpu_buf *v_cache,
                     const struct rope_kv_shape *s, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    const uint32_t q8 = kv_q8_variant(s->type_k, s->type_v);
    int rc = pipeline(e, SHADER_ROPE_KV_STORE + q8, NULL, 0, 7, sizeof(struct push_rope_kv_store),
                      &p, err);
    if (rc) return rc;
    struct push_rope_kv_store pc = {s->n_head, s->n_head_kv, s->head_dim,
                                    s->n_rot,  s->neox,      s->ring};
    struct gpu_buf bufs[] = {e->step, *table, *q, *k, *v, *k_cache, *v_cache};
    /* per token: a thread per rotated pair of Q, then per pair of K and V
     * values (per block of 32 with a Q8_0 cache) */
    const uint32_t n_embd_kv = s->n_head_kv * s->head_dim;
    const uint64_t per_token = s->n_head * (s->n_rot / 2) + (q8 ? n_embd_kv / 32 : n_embd_kv / 2);
    return gpu_graph_dispatch(e->graph, p, div_up(e->batch * per_token, e->ctx->wg_size), &pc, bufs,
                              e->sync, err);
}

void attention_alibi(uint32_t n_head, float max_bias, float *m0, float *m1, uint32_t *heads)
{
    uint32_t h = 1;
    while (h * 2 <= n_head)
        h *= 2;
    *heads = h;
    *m0 = powf(2.0f, -max_bias / (float)h);
    *m1 = powf(2.0f, -(max_bias / 2.0f) / (float)h);
}

/* Decode attention split over positions (attention_decode.comp): scores and
 * values each in a workgroup per (token, tile of heads, chunk), then a merge per
 * (token, head) that the host always records (a query of one chunk skips it). */
static int attention_split(struct op_env *e, const struct attention_params *a,
                           const struct push_attention *pc, const struct gpu_buf *bufs,
                           struct vkllm_error *err)
{
    const struct vkllm_context *c = e->ctx;
    const uint32_t hd = a->head_dim, splits = c->attention_splits;
    /* a workgroup of one subgroup (8 lanes on lavapipe: one AVX2 vector),
     * reduced by subgroup operations where its size is fixed; else 8 or more
     * lanes whose sums (wg x hd floats) fit 16 KiB of shared memory */
    const struct vkllm_device_info *d = &c->dev.info;
    const uint32_t sg_min = d->subgroup_min_size ? d->subgroup_min_size : d->subgroup_size;
    const uint32_t sg_max = d->subgroup_max_size ? d->subgroup_max_size : d->subgroup_size;
    const bool sub = c->matvec_subgroup && (d->subgroup_ops & VKLLM_SUBGROUP_ARITHMETIC) &&
                     sg_min == sg_max && sg_max <= c->wg_size;
    uint32_t wg = d->subgroup_size < 8 ? 8 : d->subgroup_size;
    if (sub) wg = sg_max;
    while (!sub && wg > 8 && wg * hd * 4 > 16384)
        wg /= 2;
    if (wg > c->wg_size) wg = c->wg_size;
    /* query heads per workgroup, of one KV head: at most the context's, and
     * at most ATTENTION_SPLIT_LANE_FLOATS floats of queries (and of sums) a
     * lane, whose shared-memory sums fit 16 KiB too; a divisor of the group,
     * so that no tile repeats a head */
    const uint32_t group = a->n_head / a->n_head_kv;
    uint32_t hq = c->attention_split_heads < group ? c->attention_split_heads : group;
    while (hq > 1 && (group % hq || hq * hd > ATTENTION_SPLIT_LANE_FLOATS ||
                      (!sub && wg * hq * hd * 4 > 16384)))
        hq--;
    /* every chunk but the last holds min_chunk or more positions, the last
     * min_chunk - splits + 1 or more: at least hd, whose sums then overwrite
     * its own scores only */
    const uint32_t min_chunk = div_up(hd + splits, wg) * wg;
    const uint32_t spec[] = {hd, splits, min_chunk, hq};
    const uint32_t chunks = e->batch * (a->n_head / hq) * splits, queries = e->batch * a->n_head;
    struct vk_pipeline *scores, *values, *merge;
    /* phase 1 reads K only, phase 2 V only */
    const uint32_t k8 = a->type_k == VKLLM_CACHE_Q8_0, v8 = a->type_v == VKLLM_CACHE_Q8_0;
    int rc = pipeline_wg(e, (sub ? SHADER_ATTENTION_DECODE : SHADER_ATTENTION_DECODE_SH) + k8, wg,
                         spec, 4, 6, sizeof *pc, &scores, err);
    if (!rc)
        rc = pipeline_wg(e, (sub ? SHADER_ATTENTION_VALUES : SHADER_ATTENTION_VALUES_SH) + v8, wg,
                         spec, 4, 6, sizeof *pc, &values, err);
    if (!rc) rc = pipeline_wg(e, SHADER_ATTENTION_MERGE, wg, spec, 3, 6, sizeof *pc, &merge, err);
    /* each reads what the one before wrote */
    if (!rc) rc = gpu_graph_dispatch(e->graph, scores, chunks, pc, bufs, GPU_BARRIER, err);
    if (!rc) rc = gpu_graph_dispatch(e->graph, values, chunks, pc, bufs, GPU_BARRIER, err);
    if (!rc) rc = gpu_graph_dispatch(e->graph, merge, queries, pc, bufs, e->sync, err);
    return rc;
}

int op_attention(struct op_env *e, const struct gpu_buf *q, const struct gpu_buf *k_cache,
                 const struct gpu_buf *v_cache, const struct gpu_buf *scores,
                 const struct gpu_buf *out, const struct attention_params *a,
                 struct vkllm_error *err)
{
    const struct vkllm_context *c = e->ctx;
    const bool tiled = c->attention_tiled && e->batch >= ATTENTION_TILED_MIN_BATCH &&
                       !e->mixed_rows && a->head_dim % 8 == 0;
    /* tiled: a workgroup of one subgroup (at least 8 lanes), R queries per
     * lane, the group's heads first (they share K and V rows), then tokens.
     * A lane holds R * head_dim floats of queries and as many of sums: a CPU
     * device spills them to plain loads, cheap next to its loads of K and V
     * (which R more queries share); a GPU keeps one query per lane */
    const uint32_t group = a->n_head / a->n_head_kv;
    const struct vkllm_device_info *d = &c->dev.info;
    uint32_t wg = d->subgroup_max_size > d->subgroup_size ? d->subgroup_max_size : d->subgroup_size;
    wg = wg < 8 ? 8 : wg > c->wg_size ? c->wg_size : wg;
    uint32_t r = d->type == VKLLM_DEVICE_CPU ? ATTENTION_TILED_LANE_FLOATS / a->head_dim : 1;
    r = r < 1 ? 1 : r > ATTENTION_TILED_MAX_R ? ATTENTION_TILED_MAX_R : r;
    const uint32_t qt = wg * r, hq = group < qt ? group : qt, br = qt / hq;
    const uint32_t spec[] = {br, hq, a->head_dim, r};
    /* untiled: a subgroup per (token, head) where the device reduces by
     * subgroups, else a workgroup */
    const uint32_t per_group = c->attention_per_group;
    /* decode: split over positions (8 halves per load; 2 floats per chunk in
     * the output row) */
    const bool split = !tiled && c->attention_splits && a->head_dim % 8 == 0 &&
                       a->head_dim >= 2 * c->attention_splits;
    struct vk_pipeline *p = NULL;
    const uint32_t q8 = kv_q8_variant(a->type_k, a->type_v);
    /* tiled, an F16 cache is read as texels where the context takes them,
     * each row's parts shuffled as the GEMM's inputs are (subgroups of 8+) */
    enum shader_id tiled_id = (enum shader_id)(SHADER_ATTENTION_TILED + q8);
    if (!q8 && c->texel_loads && c->gemm_shuffle && gpu_texel_range_ok(&c->dev, k_cache) &&
        gpu_texel_range_ok(&c->dev, v_cache))
        tiled_id = SHADER_ATTENTION_TILED_TX;
    int rc =
        split   ? 0
        : tiled ? pipeline_wg(e, tiled_id, wg, spec, 4, 6, sizeof(struct push_attention), &p, err)
                : pipeline(e, (c->attention_subgroup ? SHADER_ATTENTION : SHADER_ATTENTION_SH) + q8,
                           NULL, 0, 6, sizeof(struct push_attention), &p, err);
    if (rc) return rc;
    struct push_attention pc = {
        .head_dim = a->head_dim,
        .n_head = a->n_head,
        .n_head_kv = a->n_head_kv,
        .n_ctx = a->n_ctx,
        .q_scale = a->q_scale,
        .kq_scale = a->kq_scale,
        .softcap = a->softcap,
        .window = a->window,
        .ring = a->ring,
    };
    if (a->alibi_max_bias > 0)
        attention_alibi(a->n_head, a->alibi_max_bias, &pc.alibi_m0, &pc.alibi_m1, &pc.alibi_heads);
    struct gpu_buf bufs[] = {e->step, *q, *k_cache, *v_cache, *scores, *out};
    if (split) return attention_split(e, a, &pc, bufs, err);
    const uint32_t groups = tiled ? div_up(e->batch, br) * a->n_head_kv * div_up(group, hq)
                                  : div_up((uint64_t)e->batch * a->n_head, per_group);
    return gpu_graph_dispatch(e->graph, p, groups, &pc, bufs, e->sync, err);
}

int op_eltwise(struct op_env *e, uint32_t op, const struct gpu_buf *y, const struct gpu_buf *x,
               uint32_t n, float f, bool last_only, struct vkllm_error *err)
{
    struct vk_pipeline *p;
    int rc = pipeline(e, SHADER_ELTWISE, &op, 1, 3, sizeof(struct push_eltwise), &p, err);
    if (rc) return rc;
    struct push_eltwise pc = {n, f, last_only, 0};
    struct gpu_buf bufs[] = {e->step, *y, x ? *x : *y};
    const uint64_t rows = last_only ? 1 : e->batch < ELTWISE_ROWS ? e->batch : ELTWISE_ROWS;
    return gpu_graph_dispatch(e->graph, p, div_up(rows * n, e->ctx->wg_size), &pc, bufs, e->sync,
                              err);
}

int op_eltwise_q8(struct op_env *e, uint32_t op, const struct gpu_buf *y, const struct gpu_buf *x,
                  const struct gpu_buf *xq, uint32_t n, float f, bool last_only,
                  bool reader_last_only, struct vkllm_error *err)
{
    const uint32_t spec[] = {op, op_matvec_uses_gemm(e, reader_last_only)};
    struct vk_pipeline *p;
    int rc = pipeline(e, SHADER_ELTWISE_Q8, spec, 2, 4, sizeof(struct push_eltwise), &p, err);
    if (rc) return rc;
    struct push_eltwise pc = {n, f, last_only, q8_scale_offset(e->batch, n)};
    struct gpu_buf bufs[] = {e->step, *y, x ? *x : *y, *xq};
    const uint64_t rows = last_only ? 1 : e->batch;
    return gpu_graph_dispatch(e->graph, p, div_up(rows * n / 32, e->ctx->wg_size), &pc, bufs,
                              e->sync, err);
}
