/* test_kernels.c: every compute kernel alone on the GPU against the CPU
 * reference (engine/exec/reference.c, engine/core/quant.c), at odd and large shapes with
 * fixed seeds, as llm.c's test_gpt2.c, ggml's test-backend-ops and ncnn's layer
 * tests do. Odd sizes (13, 127, 37 blocks) catch loops that assume a multiple
 * of the workgroup or of the two rows a matvec workgroup computes; tables split
 * in parts catch part-offset mistakes; several tokens per step, fewer than the
 * graph's batch, catch token strides and step-header mistakes; a sentinel in
 * every output row the step does not cover catches writes past n_tokens.
 *
 * Tolerances are per element, derived from the arithmetic each side does; u is
 * the float unit roundoff 2^-24 and WG the workgroup size (a power of two).
 *   exact (0)  get_rows, kv_store, quantize_q8: a copy, a half->float
 *              conversion or one float product d * q on both sides, which IEEE
 *              rounds identically; the shaders' float->half and the Q8_0
 *              quantizer round as the host does (to nearest even, with a
 *              correctly rounded division). get_rows with ACC, and the
 *              element-wise add, add_bias and scale: one float addition or
 *              product on both sides, correctly rounded in Vulkan too.
 *   matvec     the reference sums in double; each GPU thread adds about k/T
 *              float products (T threads per row; the GEMM path has T = 1),
 *              then a tree adds the T partial sums: at most
 *              (ceil(k/T) + log2(T) + 2) roundings on the way to each
 *              output, each of relative size u of at most sum|w x| (Higham's
 *              gamma_n bound). The quantized kernels multiply (d_w * d_x) *
 *              integer dot, where the reference multiplies the dequantized
 *              values: four more roundings per term. So
 *              tol = (ceil(k/T) + log2(T) + 6) u sum_i |w_i x_i|, plus
 *              2u (|y0| + |y|) with ACC. A dropped or repeated term at k = 4096
 *              is ~sum|w x| / k, fifty times larger. Q4_0 and Q8_0 run both
 *              ways, with packed int8 dot instructions and without, where the
 *              device has them: exact, the same integer sums scaled alike.
 *              The cooperative-matrix GEMM (--coop) rounds each weight and
 *              input to a half float (to nearest even) before multiplying;
 *              the reference rounds them alike, so each product is exact in
 *              a float and the bound above holds for its sums in any order
 *              (the matrix units' order is theirs: T = 1 covers it). Against
 *              unrounded values that rounding alone is up to 2^-10 sum|w x|,
 *              more than a dropped term at k = 4096: hence the rounded
 *              reference rather than a wider tolerance.
 *   norm       the scale differs in how it is rounded (GPU: float squares,
 *              mean (and LayerNorm's variance), + eps, sqrt and 1/x each
 *              rounded, as llama.cpp; reference: double, rounded once): about
 *              5u; then (x - mean) * scale * w rounds twice on both sides, and
 *              a bias once: tol = 12u (|out| + |b|). LayerNorm's mean is the
 *              same float on both sides (a double or float-float sum, divided
 *              and rounded once), so x - mean is too; that matters for inputs
 *              far from zero mean, tested at mean = 30 and 1000 times the
 *              spread: there a mean one ulp off moves outputs by ~1000u, which
 *              is checked to break the bound. Also checked: equal bit for bit
 *              to llama.cpp's own rounding, the shader's contract.
 *   rope       x0 c - x1 s on both sides from the same table, each possibly
 *              fused into an fma: tol = 4u (|x0| + |x1|); dimensions past
 *              n_rot are untouched (exact).
 *   fused      rope_kv_store and norm_q8 against the ops they replace (rope,
 *              rope, kv_store; norm, quantize_q8), run on the same inputs:
 *              exact, byte for byte, their contract (forward.c swaps them).
 *   swiglu     Vulkan allows exp (3 + 2|x|) ulp and division 2.5 ulp (an ulp
 *              is at most 2u relative): tol = (17 + 4|g|) u |out|.
 *   softcap    f tanh(y / f). Vulkan specifies tanh only through sinh/cosh
 *              and exp ((3 + 2|a|) ulp): an absolute error of at most
 *              (29 + 16|a|) u for a = y / f; the division adds 2.5 ulp of a
 *              (tanh' <= 1) and the product with f one rounding:
 *              tol = f (29 + 21|a|) u + 2u |out|.
 *   gelu       llama.cpp's: both sides round the input to half (exact),
 *              evaluate the tanh form in float and round that to half. Where
 *              1 + tanh(z) does not cancel (h >= -3: 1 + tanh >= 2.4e-3), a
 *              tanh a few float ulps off moves the float value by under a
 *              tenth of a half ulp: the halves are equal, or one half ulp apart
 *              when a rounding boundary falls between. Below, tanh's absolute
 *              error E_t near -1 becomes 0.5 |h| E_t in values under 3e-4,
 *              several of their half ulps (lavapipe: up to 5, E_t <= 2u):
 *              tol = one half ulp + 0.5 |h| 4u, rounded to half on both sides.
 *              Every half input in [-10.5, 10.5] is run (GELU's inputs are
 *              halves), and the edges at +-10 where it becomes 0 and x. As
 *              one half ulp is as large as the difference between GELU's tanh
 *              and erf forms, the values that differ at all are counted too:
 *              at most 0.1% where h >= -3 (lavapipe: 0.02%); the erf form,
 *              computed here the same way, differs in 8% and must fail that.
 *              geglu: gelu(y) * x, the product rounded alike on both sides:
 *              |x| times GELU's tolerance, plus 2u |out|.
 *   attention  see test_attention. */
#include "context.h"
#include "kernels.h"
#include "ops.h"
#include "quant.h"
#include "reference.h"
#include "rope.h"
#include "rng.h"
#include "testhelp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double U = 0x1p-24;        /* float unit roundoff */
static const float SENTINEL = -7777.0f; /* in output rows a step must not write */

/* ============================== Bench ============================== */

/* What every case shares: the device, an uploader and one graph, recorded
 * anew by each case. Pools live for one case. */
static struct {
    vkllm_context *ctx;
    struct gpu_uploader up;
    struct gpu_graph graph;
    struct gpu_pool host;   /* step header, inputs and outputs the host reads */
    struct gpu_pool device; /* weights and scratch */
    struct vkllm_error err;
    double t0;     /* the case's start, seconds */
    double gpu_ms; /* the case's replays, by the graph's timestamps */
} tb;

static double now_s(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float frand(struct rng *r) /* uniform in [-1, 1) */
{
    return (float)((double)(rng_next(r) >> 40) * 0x1p-23 - 1.0);
}

/* Host-visible memory for BYTES. */
static struct gpu_buf host_buf(uint64_t bytes)
{
    struct gpu_buf b;
    REQUIRE(gpu_pool_alloc(&tb.host, bytes, &b, &tb.err) == 0, "%s", tb.err.msg);
    return b;
}

static void fill(float *p, uint64_t n, float v)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = v;
}

/* Starts a case: fresh pools and a recording for a graph of BATCH tokens. */
static struct op_env case_begin(uint32_t batch)
{
    gpu_pool_init(&tb.host, &tb.ctx->dev, GPU_POOL_UPLOAD, 4u << 20);
    gpu_pool_init(&tb.device, &tb.ctx->dev, GPU_POOL_DEVICE, 64u << 20);
    struct op_env e = {tb.ctx, &tb.graph,   host_buf(op_step_bytes(batch)),
                       batch,  GPU_BARRIER, false};
    REQUIRE(gpu_graph_begin(&tb.graph, &tb.err) == 0, "%s", tb.err.msg);
    tb.t0 = now_s();
    tb.gpu_ms = 0.0;
    return e;
}

static void case_end(void)
{
    gpu_pool_destroy(&tb.host);
    gpu_pool_destroy(&tb.device);
}

/* Ends the recording. The ops' barriers order dispatches among themselves and
 * before copies; the host reading host-visible outputs after the fence needs
 * one more, from shader writes to host reads. */
static void record_end(void)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(tb.graph.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    REQUIRE(gpu_graph_end(&tb.graph, &tb.err) == 0, "%s", tb.err.msg);
}

/* Writes the step header for a prompt's step of sequence 0 (tokens past
 * N_TOKENS are 0, a valid row, so that a kernel reading them shows in the
 * sentinel rows) and replays the graph. */
static void run_step(const struct op_env *e, uint32_t n_tokens, uint32_t pos0,
                     const int32_t *tokens)
{
    struct step_header *h = e->step.mapped;
    struct step_row *row = (struct step_row *)(h + 1);
    h->n_tokens = n_tokens;
    for (uint32_t t = 0; t < e->batch; t++)
        row[t] = (struct step_row){tokens && t < n_tokens ? tokens[t] : 0, pos0 + t, 0};
    REQUIRE(gpu_graph_run(&tb.graph, &tb.err) == 0, "%s", tb.err.msg);
    tb.gpu_ms += gpu_graph_last_ms(&tb.graph);
}

/* ============================== Comparison ============================== */

struct diff {
    double max_err;   /* largest |got - want| (NaN counts as infinite) */
    double max_ratio; /* largest |got - want| / tol */
    double tol;       /* the tolerance where that ratio was reached */
    double sq_err, sq_ref;
    uint64_t n, bad;
};

static void diff_add(struct diff *d, double got, double want, double tol, const char *what,
                     uint64_t index)
{
    double e = fabs(got - want);
    if (isnan(e)) e = INFINITY;
    double ratio = e == 0.0 ? 0.0 : tol > 0.0 ? e / tol : INFINITY;
    d->n++;
    if (e > d->max_err) d->max_err = e;
    if (ratio > d->max_ratio || d->n == 1) {
        d->max_ratio = ratio;
        d->tol = tol;
    }
    if (isfinite(e)) {
        d->sq_err += e * e;
        d->sq_ref += want * want;
    }
    if (!(e <= tol) && d->bad++ < 5)
        fprintf(stderr, "  %s[%llu]: got %.9g, want %.9g (|err| %.3g > tol %.3g)\n", what,
                (unsigned long long)index, got, want, e, tol);
}

/* An output the step must leave as it was: a sentinel row, or y0 where a
 * matvec writes nothing. Counted, but kept out of the error statistics. */
static void diff_same(struct diff *d, float got, float want, const char *what, uint64_t index)
{
    d->n++;
    if (memcmp(&got, &want, sizeof got) && d->bad++ < 5)
        fprintf(stderr, "  %s[%llu]: got %.9g, want it untouched (%.9g)\n", what,
                (unsigned long long)index, got, want);
}

/* Normalized mean squared error, as ggml's test-backend-ops measures it. */
static double diff_nmse(const struct diff *d)
{
    return d->sq_ref ? d->sq_err / d->sq_ref : 0.0;
}

/* Prints the case's one-line summary and fails it on any value out of bounds. */
static void diff_report(const char *op, const char *shape, const struct diff *d)
{
    printf("%-9s %-58s max|err| %.1e tol %.1e err/tol %.3f %6.0f ms (GPU %.0f)\n", op, shape,
           d->max_err, d->tol, d->max_ratio, (now_s() - tb.t0) * 1e3, tb.gpu_ms);
    fflush(stdout);
    CHECK(d->n > 0 && d->bad == 0, "%s %s: %llu of %llu values out of tolerance", op, shape,
          (unsigned long long)d->bad, (unsigned long long)d->n);
}

/* ============================== Weights ============================== */

static const char *type_name(uint32_t type)
{
    return vkllm_type_info(type)->name;
}

/* Byte offsets of the half floats (scales) in a block of each format: random
 * bytes there could be infinities or NaNs, so these get sane random scales. */
static void block_halves(uint32_t type, int offsets[2])
{
    offsets[0] = offsets[1] = -1;
    switch (type) {
    case VKLLM_TYPE_Q4_1:
    case VKLLM_TYPE_Q5_1:
    case VKLLM_TYPE_Q4_K:
    case VKLLM_TYPE_Q5_K: offsets[0] = 0, offsets[1] = 2; break;
    case VKLLM_TYPE_Q2_K: offsets[0] = 80, offsets[1] = 82; break;
    case VKLLM_TYPE_Q3_K: offsets[0] = 108; break;
    case VKLLM_TYPE_Q6_K: offsets[0] = 208; break;
    default: offsets[0] = 0; break; /* Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d first */
    }
}

/* Fills N rows of K elements of a block format with random bytes (every bit
 * pattern the decoders may meet), scales kept finite and small. */
static void random_blocks(uint32_t type, uint8_t *data, uint32_t k, uint32_t n, struct rng *r)
{
    const struct quant_format *f = quant_format(type);
    const uint64_t blocks = (uint64_t)k / f->block_size * n;
    int halves[2];
    block_halves(type, halves);
    for (uint64_t b = 0; b < blocks; b++) {
        uint8_t *p = data + b * f->block_bytes;
        for (uint32_t i = 0; i < f->block_bytes; i++)
            p[i] = (uint8_t)rng_next(r);
        for (int h = 0; h < 2; h++) {
            if (halves[h] < 0) continue;
            uint16_t v = f32_to_fp16(frand(r) * 0.05f);
            memcpy(p + halves[h], &v, 2);
        }
    }
}

/* A random (N, K) matrix in GGUF's layout for TYPE, and the same values as
 * floats (the GPU dequantizes exactly these). For F32 both are one array. */
struct matrix {
    void *data;
    float *deq;
};

static struct matrix matrix_make(uint32_t type, uint32_t k, uint32_t n, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    struct matrix m = {0};
    m.deq = malloc((uint64_t)k * n * sizeof *m.deq);
    REQUIRE(m.deq, "out of memory for a %u x %u matrix", n, k);
    for (uint64_t i = 0; i < (uint64_t)k * n; i++)
        m.deq[i] = frand(&r);
    if (type == VKLLM_TYPE_F32) {
        m.data = m.deq;
        return m;
    }
    const uint64_t row = quant_row_bytes(type, k);
    m.data = malloc(row * n);
    REQUIRE(m.data, "out of memory");
    if (quant_format(type)->block_size > 1) {
        /* block formats: random bytes, as the CPU reference dequantizes them */
        random_blocks(type, m.data, k, n, &r);
        quant_dequantize_row(type, m.data, m.deq, (uint64_t)k * n);
        return m;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *dst = (uint8_t *)m.data + i * row;
        quant_quantize_row(type, m.deq + (uint64_t)i * k, dst, k);
        quant_dequantize_row(type, dst, m.deq + (uint64_t)i * k, k);
    }
    return m;
}

static void matrix_free(struct matrix *m)
{
    if (m->data != m->deq) free(m->data);
    free(m->deq);
}

/* A max_part_bytes with room for about ROWS rows per part (0: the device's
 * binding limit). */
static uint64_t part_bytes(uint32_t type, uint32_t k, uint32_t rows)
{
    return rows ? gpu_weight_bytes(type, k, rows) + rows + 16 : 0;
}

static struct gpu_weight weight_upload(uint32_t type, uint32_t k, uint32_t n, const void *data,
                                       uint32_t part_rows)
{
    struct gpu_weight w;
    int rc = gpu_weight_upload(&tb.up, &tb.device, type, k, n, data, part_bytes(type, k, part_rows),
                               &w, &tb.err);
    REQUIRE(rc == 0, "%s", tb.err.msg);
    return w;
}

/* ============================== get_rows ============================== */

/* A table of N_ROWS rows of K, split in parts of about PART_ROWS rows (0: one
 * part), looked up in replays of one recording: the first and last rows,
 * both sides of the first and last part boundaries, a repeated token. With
 * BY_POSITION the rows are pos0 + t (learned position embeddings), the steps
 * then starting at 0, across the first part boundary and at the end; with ACC
 * each row is added to what out holds. */
static void test_get_rows(uint32_t type, uint32_t k, uint32_t n_rows, uint32_t part_rows,
                          bool by_position, bool acc)
{
    const uint32_t batch = 8;
    struct op_env e = case_begin(batch);
    struct matrix m = matrix_make(type, k, n_rows, 100 + k);
    struct gpu_weight w = weight_upload(type, k, n_rows, m.data, part_rows);
    if (part_rows) REQUIRE(w.n_parts >= 3, "%u parts, wanted 3 or more", w.n_parts);
    struct gpu_buf out = host_buf((uint64_t)batch * k * 4);
    REQUIRE(op_get_rows(&e, &w, &out, by_position, acc, &tb.err) == 0, "%s", tb.err.msg);
    record_end();

    const int32_t last = (int32_t)n_rows - 1;
    const int32_t b1 = (int32_t)w.parts[w.n_parts > 1 ? 1 : 0].row_begin;
    const int32_t bl = (int32_t)w.parts[w.n_parts - 1].row_begin;
    const int32_t step1[] = {0, last, b1 > 0 ? b1 - 1 : 1, b1, bl, last / 2, 0};
    const int32_t step2[] = {last, bl > 0 ? bl - 1 : 0, 1};
    struct {
        const int32_t *tokens;
        uint32_t n, pos0;
    } steps[] = {{step1, 7, 0}, {step2, 3, 0}, {NULL, 3, 0}};
    int n_steps = 2;
    if (by_position) {
        /* rows pos0.. : from 0, across the first part boundary, to the last row */
        REQUIRE(n_rows >= 8 && b1 >= 2);
        steps[0].tokens = steps[1].tokens = NULL;
        steps[1].pos0 = (uint32_t)b1 - 2;
        steps[2].pos0 = n_rows - 3;
        n_steps = 3;
    }

    struct rng r;
    rng_seed(&r, 200 + k);
    struct diff d = {0};
    float *o = out.mapped, *y0 = malloc((uint64_t)batch * k * sizeof *y0);
    REQUIRE(y0);
    for (int s = 0; s < n_steps; s++) {
        for (uint64_t i = 0; i < (uint64_t)batch * k; i++)
            o[i] = y0[i] = acc ? frand(&r) * 4.0f : SENTINEL;
        run_step(&e, steps[s].n, steps[s].pos0, steps[s].tokens);
        for (uint32_t t = 0; t < batch; t++) {
            const uint32_t row = by_position      ? steps[s].pos0 + t
                                 : t < steps[s].n ? (uint32_t)steps[s].tokens[t]
                                                  : 0;
            const float *want = t < steps[s].n ? m.deq + (uint64_t)row * k : NULL;
            for (uint32_t i = 0; i < k; i++) {
                const uint64_t j = (uint64_t)t * k + i;
                /* with ACC one float addition on both sides: exact too */
                if (want)
                    diff_add(&d, o[j], acc ? y0[j] + want[i] : want[i], 0.0, "out", j);
                else
                    diff_same(&d, o[j], y0[j], "out", j);
            }
        }
    }
    char shape[96];
    snprintf(shape, sizeof shape, "%s %u x %u, %u part(s), %s of %u tokens%s", type_name(type),
             n_rows, k, w.n_parts, by_position ? "pos 0+7, b-2+3, end-3+3" : "7+3", batch,
             acc ? ", acc" : "");
    diff_report("get_rows", shape, &d);
    free(y0);
    gpu_weight_free(&w);
    matrix_free(&m);
    case_end();
}

/* ============================== matvec ============================== */

struct matvec_case {
    uint32_t type, k, n;
    uint32_t batch, n_tokens; /* the graph's batch, and the tokens of the step */
    bool acc, last_only;
    uint32_t part_rows; /* about this many rows per part; 0: the device's limit */
    uint32_t sample;    /* check every sample-th row and those at part boundaries; 0: all */
};

static bool row_sampled(const struct gpu_weight *w, uint32_t sample, uint32_t r)
{
    if (sample <= 1 || r % sample == 0 || r + 1 == w->n) return true;
    for (uint32_t p = 1; p < w->n_parts; p++)
        if (r + 1 == w->parts[p].row_begin || r == w->parts[p].row_begin) return true;
    return false;
}

/* Quantized weights also check quantize_q8, the matvec's input, bit for bit:
 * Q8_0 blocks, or with FLOATS (a GEMM's input) the values they stand for. */
static void check_q8_input(const float *x, const uint8_t *xq, uint32_t batch, uint32_t n_tokens,
                           uint32_t k, bool floats, struct diff *d)
{
    const uint32_t nb = k / 32;
    const float *scales = (const float *)(xq + (uint64_t)batch * nb * 32);
    int8_t q[32];
    float s;
    for (uint32_t t = 0; t < n_tokens; t++)
        for (uint32_t b = 0; b < nb; b++) {
            const uint64_t blk = (uint64_t)t * nb + b;
            quant_q8_activations(x + (uint64_t)t * k + 32 * b, q, &s, 32);
            if (floats) {
                for (int j = 0; j < 32; j++)
                    diff_add(d, ((const float *)xq)[blk * 32 + j], s * q[j], 0.0, "xq",
                             blk * 32 + j);
                continue;
            }
            diff_add(d, scales[blk], s, 0.0, "xq scale", blk);
            for (int j = 0; j < 32; j++)
                diff_add(d, (int8_t)xq[blk * 32 + j], q[j], 0.0, "xq", blk * 32 + j);
        }
}

static void test_matvec(const struct matvec_case *c)
{
    const uint32_t k = c->k, n = c->n, B = c->batch;
    struct op_env e = case_begin(B);
    const bool quantized = op_matvec_takes_q8(&e, c->type, c->last_only);
    /* matrix units: weights and inputs rounded to half floats */
    const bool coop = op_matvec_uses_coop(&e, c->type, c->last_only);
    /* the integer-dot path of a format whose float path takes floats */
    const bool int8 = quantized && quant_format(c->type)->act != ACT_Q8;
    double t_setup = now_s();
    struct matrix m = matrix_make(c->type, k, n, 1000 + k * 7 + n);
    struct gpu_weight w = weight_upload(c->type, k, n, m.data, c->part_rows);
    t_setup = now_s() - t_setup;
    /* a tensor over one binding must be split even when no smaller part was asked for */
    uint32_t min_parts = 1;
    if (c->part_rows)
        min_parts = 3;
    else if (gpu_weight_bytes(c->type, k, n) > tb.ctx->dev.info.max_storage_buffer_range)
        min_parts = 2;
    REQUIRE(w.n_parts >= min_parts, "%u parts, wanted %u or more", w.n_parts, min_parts);

    struct gpu_buf x = host_buf((uint64_t)B * k * 4), y = host_buf((uint64_t)B * n * 4), xq = {0};
    if (quantized) {
        xq = host_buf(op_q8_bytes(B, k));
        REQUIRE(op_quantize_q8(&e, &x, &xq, k, c->last_only, &tb.err) == 0, "%s", tb.err.msg);
    }
    REQUIRE(op_matvec(&e, &w, quantized ? &xq : &x, &y, c->acc, c->last_only, &tb.err) == 0, "%s",
            tb.err.msg);
    /* Q8_0 activations: the other integer-dot path too, where the device has
     * the instructions; its integer sums, so its outputs, must be the same */
    const bool other_dot = quant_format(c->type)->act == ACT_Q8 && tb.ctx->dev.info.int_dot &&
                           !op_matvec_uses_gemm(&e, c->last_only);
    struct gpu_buf y2 = {0};
    if (other_dot) {
        y2 = host_buf((uint64_t)B * n * 4);
        tb.ctx->matvec_int_dot = !tb.ctx->matvec_int_dot;
        int rc = op_matvec(&e, &w, &xq, &y2, c->acc, c->last_only, &tb.err);
        tb.ctx->matvec_int_dot = !tb.ctx->matvec_int_dot;
        REQUIRE(rc == 0, "%s", tb.err.msg);
    }
    record_end();

    /* tokens of different magnitudes, so that Q8_0 blocks get different scales;
     * y holds y0 everywhere: what ACC adds to, and what unwritten rows keep */
    struct rng r;
    rng_seed(&r, 7 + k + n);
    float *xs = x.mapped, *ys = y.mapped;
    for (uint32_t t = 0; t < B; t++)
        for (uint32_t i = 0; i < k; i++)
            xs[(uint64_t)t * k + i] = frand(&r) * (float)(1 + t % 4);
    float *y0 = malloc((uint64_t)B * n * sizeof *y0);
    REQUIRE(y0);
    for (uint64_t i = 0; i < (uint64_t)B * n; i++)
        ys[i] = y0[i] = frand(&r) * 4.0f;
    if (other_dot) memcpy(y2.mapped, y0, (uint64_t)B * n * sizeof *y0);
    run_step(&e, c->n_tokens, 0, NULL);

    struct diff d = {0};
    if (other_dot) {
        struct diff d2 = {0};
        for (uint64_t i = 0; i < (uint64_t)B * n; i++)
            diff_add(&d2, ((const float *)y2.mapped)[i], ys[i], 0.0, "y", i);
        char shape[64];
        snprintf(shape, sizeof shape, "%s k=%u n=%u %u/%u tok, %s integer dot", type_name(c->type),
                 k, n, c->n_tokens, B, tb.ctx->matvec_int_dot ? "emulated" : "packed");
        diff_report("matvec", shape, &d2);
    }
    if (quantized)
        check_q8_input(xs, xq.mapped, B, c->n_tokens, k, op_matvec_uses_gemm(&e, c->last_only), &d);
    /* each thread of a row sums k / tpr products, then log2(tpr) steps add the
     * threads' sums; a few more for dequantizing and the input's rounding */
    const double tpr = op_matvec_uses_gemm(&e, c->last_only) ? 1 : tb.ctx->matvec_tpr;
    const double roundings = ceil((double)k / tpr) + log2(tpr) + 6;
    float *in = malloc(k * sizeof *in), *half_row = malloc(k * sizeof *half_row);
    REQUIRE(in && half_row);
    for (uint32_t t = 0; t < B; t++) {
        const bool written = c->last_only ? t == 0 : t < c->n_tokens;
        const uint32_t src = c->last_only ? c->n_tokens - 1 : t;
        if (written && quantized)
            ref_q8_round(xs + (uint64_t)src * k, in, k);
        else if (written)
            ref_matvec_input(c->type, xs + (uint64_t)src * k, in, k);
        for (uint32_t i = 0; written && coop && i < k; i++)
            in[i] = ref_round_f16(in[i]);
        for (uint32_t row = 0; row < n; row++) {
            const uint64_t o = (uint64_t)t * n + row;
            if (!written) {
                diff_same(&d, ys[o], y0[o], "y", o);
                continue;
            }
            if (!row_sampled(&w, c->sample, row)) continue;
            const float *wr = m.deq + (uint64_t)row * k;
            if (coop) {
                for (uint32_t i = 0; i < k; i++)
                    half_row[i] = ref_round_f16(wr[i]);
                wr = half_row;
            }
            float want;
            double mag = 0.0;
            ref_matvec(wr, in, &want, 1, k);
            for (uint32_t i = 0; i < k; i++)
                mag += fabs((double)wr[i] * in[i]);
            double tol = roundings * U * mag;
            if (c->acc) {
                tol += 2 * U * (fabs(y0[o]) + fabs(want));
                want += y0[o];
            }
            diff_add(&d, ys[o], want, tol, "y", o);
        }
    }
    char shape[96];
    snprintf(shape, sizeof shape, "%s k=%u n=%u %u/%u tok%s%s %u part(s)%s%s%s", type_name(c->type),
             k, n, c->n_tokens, B, c->acc ? " acc" : "", c->last_only ? " last" : "", w.n_parts,
             c->sample > 1 ? " sampled" : "", int8 ? ", int8 dot" : "",
             !coop                                     ? ""
             : tb.ctx->gemm_coop == GEMM_COOP_EMULATED ? ", coop emulated"
                                                       : ", coop");
    diff_report(op_matvec_uses_gemm(&e, c->last_only) ? "gemm" : "matvec", shape, &d);
    if (c->part_rows == 0 && c->sample > 1)
        printf("%-9s (of which %.0f ms making and uploading the matrix)\n", "", t_setup * 1e3);
    free(in);
    free(half_row);
    free(y0);
    gpu_weight_free(&w);
    matrix_free(&m);
    case_end();
}

/* The Q4_0 and Q4_K cases among CASES[0..N) again with the other way of
 * reading weights and input, as texel buffers or storage buffers (a CPU
 * device takes the texels by default, where the integer-dot matvec or the
 * shuffled GEMM runs). Only the loads differ between the two, the same for
 * every block format: Q4_0 (Q8_0 input words) and Q4_K (quants32) stand for
 * the rest, as each variant costs lavapipe seconds to compile. */
static void test_other_loads(const struct matvec_case *cases, size_t n)
{
    if (!tb.ctx->dev.info.max_texel_buffer_elements) return;
    tb.ctx->texel_loads = !tb.ctx->texel_loads;
    for (size_t i = 0; i < n; i++)
        if (cases[i].type == VKLLM_TYPE_Q4_0 || cases[i].type == VKLLM_TYPE_Q4_K)
            test_matvec(&cases[i]);
    tb.ctx->texel_loads = !tb.ctx->texel_loads;
}

/* The cases among CASES[0..N) whose format pairs (formats.h) again with the
 * other way a GEMM multiplies, floats or token pairs in integers (a CPU
 * device pairs them by default; the pairs read their inputs as texels, the
 * K-quants' rounded to Q8_0 as Q4_0's are). */
static void test_other_products(const struct matvec_case *cases, size_t n)
{
    const bool texels = tb.ctx->texel_loads;
    tb.ctx->texel_loads = tb.ctx->dev.info.max_texel_buffer_elements && tb.ctx->gemm_shuffle;
    if (!tb.ctx->texel_loads) return;
    tb.ctx->gemm_pairs = !tb.ctx->gemm_pairs;
    for (size_t i = 0; i < n; i++)
        if (quant_format(cases[i].type)->pairs) test_matvec(&cases[i]);
    tb.ctx->gemm_pairs = !tb.ctx->gemm_pairs;
    tb.ctx->texel_loads = texels;
}

/* --coop: every block format's GEMM on matrix units (VKLLM_FORCE=coopmat) or
 * their emulation (coopmat-emulate: any device): rows of odd blocks in parts,
 * partial tiles of rows (64 a workgroup) and of tokens (64), ACC */
static void test_coop_gemms(void)
{
    REQUIRE(tb.ctx->gemm_coop != GEMM_COOP_OFF,
            "--coop: VKLLM_FORCE names neither coopmat (on a device that has it) nor "
            "coopmat-emulate");
    for (uint32_t i = 0; i < quant_format_count; i++) {
        const struct quant_format *f = &quant_formats[i];
        const uint32_t bs = f->block_size;
        if (bs == 1) continue;
        const uint32_t odd = bs == 256 ? bs * 5 : bs * 37;
        const struct matvec_case fc[] = {
            {f->type, odd, 129, 16, 13, true, false, 30, 0},
            {f->type, bs * 2, 100, 80, 70, true, false, 0, 0},
            {f->type, bs, 64 * 3 + 37, 16, 16, false, false, 0, 0},
            {f->type, bs * 2, 65, 130, 129, false, false, 0, 0},
        };
        for (size_t j = 0; j < sizeof fc / sizeof fc[0]; j++)
            test_matvec(&fc[j]);
    }
}

/* The big case: one tensor larger than the device's storage-buffer range must
 * be split by the device limit itself (max_part_bytes = 0). */
static void test_matvec_big(void)
{
    const uint32_t k = 4096, n = 9000;
    const uint64_t bytes = gpu_weight_bytes(VKLLM_TYPE_F32, k, n);
    const uint64_t range = tb.ctx->dev.info.max_storage_buffer_range;
    struct matvec_case c = {VKLLM_TYPE_F32, k, n, 2, 2, false, false, 0, 97};
    if (bytes <= range) {
        printf("matvec    (%llu MiB fits one binding of %llu MiB here: not split)\n",
               (unsigned long long)(bytes >> 20), (unsigned long long)(range >> 20));
    }
    test_matvec(&c);
}

/* ============================== norm ============================== */

struct norm_case {
    uint32_t n, rows; /* ROWS rows of N per token (per-head norms) */
    uint32_t batch, n_tokens;
    float eps;
    bool layer_norm, bias, row_weights, in_place;
    float offset; /* each input is (uniform [-1, 1) + offset) * the token's scale */
};

/* What norm.comp promises: llama.cpp's CPU values to the last bit, the sums
 * in double, the mean, the variance and the scale rounded to float as it
 * rounds them, then ((x - mean) * scale) * w (+ b). NUDGE moves LayerNorm's
 * mean one float ulp up: the mutant the tolerance must catch. */
static void llama_norm(const float *x, const float *w, const float *b, float *out, uint32_t n,
                       float eps, bool layer_norm, bool nudge)
{
    double sum = 0.0;
    float mean = 0.0f;
    if (layer_norm) {
        for (uint32_t i = 0; i < n; i++)
            sum += x[i];
        mean = (float)(sum / n);
        if (nudge) mean = nextafterf(mean, INFINITY);
    }
    sum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        const float v = x[i] - mean;
        sum += (double)(v * v);
    }
    const float var = (float)(sum / n), scale = 1.0f / sqrtf(var + eps);
    for (uint32_t i = 0; i < n; i++) {
        const float v = (x[i] - mean) * scale * w[i];
        out[i] = b ? v + b[i] : v;
    }
}

static void test_norm(const struct norm_case *c)
{
    const uint32_t n = c->n, rows = c->rows, per_tok = n * rows, B = c->batch;
    const uint32_t n_w = c->row_weights ? per_tok : n;
    struct op_env e = case_begin(B);
    struct gpu_buf x = host_buf((uint64_t)B * per_tok * 4), w = host_buf((uint64_t)n_w * 4),
                   b = host_buf((uint64_t)n * 4);
    struct gpu_buf out = c->in_place ? x : host_buf((uint64_t)B * per_tok * 4);
    REQUIRE(op_norm(&e, &x, &w, c->bias ? &b : NULL, &out, n, rows, c->eps, c->layer_norm,
                    c->row_weights, &tb.err) == 0,
            "%s", tb.err.msg);
    record_end();

    /* magnitudes from 1e-3 (where eps matters) to 1e3, and with OFFSET a
     * common part OFFSET times the spread (every other token, either sign) */
    static const float scales[] = {1.0f, 1e-3f, 1e3f, 0.1f, 10.0f};
    struct rng r;
    rng_seed(&r, 11 + n + 1000 * rows);
    float *xs = x.mapped, *ws = w.mapped, *bs = b.mapped, *o = out.mapped;
    float *x0 = malloc((uint64_t)B * per_tok * sizeof *x0);
    REQUIRE(x0);
    for (uint32_t i = 0; i < n_w; i++)
        ws[i] = 1.0f + frand(&r) * 0.9f;
    for (uint32_t i = 0; i < n; i++)
        bs[i] = frand(&r) * 2.0f;
    for (uint32_t t = 0; t < B; t++) {
        const float off = t % 2 ? 0.0f : t % 4 ? -c->offset : c->offset;
        for (uint32_t i = 0; i < per_tok; i++)
            xs[(uint64_t)t * per_tok + i] = x0[(uint64_t)t * per_tok + i] =
                (frand(&r) + off) * scales[t % 5];
    }
    if (!c->in_place) fill(o, (uint64_t)B * per_tok, SENTINEL);
    run_step(&e, c->n_tokens, 0, NULL);

    struct diff d = {0}, dl = {0}, mutant = {0};
    float *want = malloc(n * sizeof *want), *bits = malloc(n * sizeof *bits),
          *nudged = malloc(n * sizeof *nudged);
    REQUIRE(want && bits && nudged);
    for (uint32_t t = 0; t < B; t++)
        for (uint32_t h = 0; h < rows; h++) {
            const uint64_t row = ((uint64_t)t * rows + h) * n;
            const float *xr = x0 + row, *wr = ws + (c->row_weights ? h * n : 0);
            const float *br = c->bias ? bs : NULL;
            if (t < c->n_tokens) {
                ref_norm(xr, wr, br, want, n, c->eps, c->layer_norm);
                llama_norm(xr, wr, br, bits, n, c->eps, c->layer_norm, false);
                llama_norm(xr, wr, br, nudged, n, c->eps, c->layer_norm, c->offset > 0);
            }
            for (uint32_t i = 0; i < n; i++) {
                const uint64_t j = row + i;
                if (t >= c->n_tokens) {
                    diff_same(&d, o[j], c->in_place ? x0[j] : SENTINEL, "out", j);
                    continue;
                }
                const double bi = br ? fabs(br[i]) : 0.0;
                diff_add(&d, o[j], want[i], 12 * U * (fabs(want[i]) + bi), "out", j);
                diff_add(&dl, o[j], bits[i], 0.0, "out (llama.cpp)", j);
                /* counted, not printed: the mutant is expected out of bounds */
                mutant.n++;
                mutant.bad += !(fabs(nudged[i] - want[i]) <= 12 * U * (fabs(want[i]) + bi));
            }
        }
    /* far from zero mean, the tolerance holds the mean to the reference's
     * rounding: one ulp off puts outputs out of bounds */
    if (c->offset > 0) CHECK(mutant.bad > 0, "norm n=%u: a mean one ulp off goes unnoticed", n);
    /* Its float-float sums could in principle round a near-tie of the double
     * sums differently; no such tie occurs with these seeds. */
    CHECK(dl.bad == 0, "norm n=%u: %llu of %llu values differ from llama.cpp's rounding", n,
          (unsigned long long)dl.bad, (unsigned long long)dl.n);
    char shape[128];
    snprintf(shape, sizeof shape, "n=%u", n);
    if (rows > 1)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), " x%u rows%s", rows,
                 c->row_weights ? " (own w)" : "");
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
             "%s%s %u/%u tok eps=%g, llama.cpp's bits: %s", c->bias ? " +b" : "",
             c->in_place ? " in place" : "", c->n_tokens, B, c->eps, dl.bad ? "no" : "yes");
    if (c->offset > 0)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                 ", mean %gx sd (mean+1ulp: %.0f%% out)", c->offset,
                 100.0 * mutant.bad / (double)mutant.n);
    diff_report(c->layer_norm ? "layernorm" : "rms_norm", shape, &d);
    free(want);
    free(bits);
    free(nudged);
    free(x0);
    case_end();
}

/* ============================== rope ============================== */

static void test_rope(uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, bool neox,
                      float freq_base, uint32_t pos0, uint32_t batch, uint32_t n_tokens)
{
    const uint32_t dim = n_heads * head_dim;
    struct op_env e = case_begin(batch);
    struct gpu_buf x = host_buf((uint64_t)batch * dim * 4),
                   table = host_buf((uint64_t)batch * n_rot * 4);
    REQUIRE(op_rope(&e, &table, &x, n_heads, head_dim, n_rot, neox, &tb.err) == 0, "%s",
            tb.err.msg);
    record_end();

    const struct rope_params rp = {
        .n_rot = n_rot, .freq_base = freq_base, .freq_scale = 1.0f, .attn_factor = 1.0f};
    rope_table(&rp, table.mapped, n_tokens, pos0);
    struct rng r;
    rng_seed(&r, 21 + head_dim);
    float *xs = x.mapped;
    float *x0 = malloc((uint64_t)batch * dim * sizeof *x0), *tol = malloc(dim * sizeof *tol);
    REQUIRE(x0 && tol);
    for (uint64_t i = 0; i < (uint64_t)batch * dim; i++)
        xs[i] = x0[i] = frand(&r) * 3.0f;
    run_step(&e, n_tokens, pos0, NULL);

    struct diff d = {0};
    for (uint32_t t = 0; t < batch; t++) {
        float *want = x0 + (uint64_t)t * dim;
        memset(tol, 0, dim * sizeof *tol);
        for (uint32_t h = 0; h < n_heads; h++)
            for (uint32_t i = 0; i < n_rot / 2; i++) {
                uint32_t a = h * head_dim + (neox ? i : 2 * i);
                uint32_t b = neox ? a + n_rot / 2 : a + 1;
                tol[a] = tol[b] = (float)(4 * U * (fabs(want[a]) + fabs(want[b])));
            }
        if (t < n_tokens)
            ref_rope(want, (const float *)table.mapped + t * n_rot, n_heads, head_dim, n_rot, neox);
        for (uint32_t i = 0; i < dim; i++) {
            const uint64_t j = (uint64_t)t * dim + i;
            if (t < n_tokens)
                diff_add(&d, xs[j], want[i], tol[i], "x", j);
            else
                diff_same(&d, xs[j], want[i], "x", j);
        }
    }
    char shape[96];
    snprintf(shape, sizeof shape, "%s %u heads x %u, n_rot %u, pos %u+%u/%u tok",
             neox ? "neox" : "normal", n_heads, head_dim, n_rot, pos0, n_tokens, batch);
    diff_report("rope", shape, &d);
    free(x0);
    free(tol);
    case_end();
}

/* ============================== kv_store + attention ============================== */

/* Fills a KV cache of N_POS positions (plus 3 never written, left NaN so that
 * reading past the causal limit shows) step by step through one recording of
 * [kv_store, attention], the last step N_LAST tokens at pos0 = n_pos - n_last.
 * The attention of the first and last steps (of every step, up to 100
 * positions) is checked against ref_attention on the half-rounded K and V;
 * the whole cache bit for bit at the end. With a RING the cache holds that
 * many positions, position p in slot p % ring, and ref_attention reads a
 * full-length copy kept here; the other parameters are those of struct
 * attention_params.
 *
 * Tolerance: both sides round q * q_scale and the probabilities to half; the
 * GPU's scores are float sums of head_dim products (the reference's double).
 * With |q| <= QSCALE and |k|, |v| <= 1 a raw score is at most
 * D = QSCALE q_scale head_dim, and off by at most (head_dim + 3) u D. A
 * soft-cap c adds tanh's error, c (29 + 21 D/c) u as for ELT_SOFTCAP (the
 * score then at most c); kq_scale scales what it has and adds a rounding;
 * ALiBi's slope is pow(m, h + 1) = exp2((h + 1) log2 m), with log2 off by at
 * most 2^-21 absolutely in [0.5, 2] and exp2 by (3 + 2|x|) ulp: under 2^-16
 * relative for 12 heads, times the largest slope times the longest distance.
 * Call the total ds and the largest |score| smax (kq_scale min(D, c) plus the
 * ALiBi range). A probability exp(s_j - m) / sum_i exp(s_i - m) is then off
 * by 2 ds relatively (numerator and sum; m cancels), plus Vulkan's exp error
 * of (3 + 2|x|) ulp with |x| <= 2 smax, plus (n_pos + 2) u for the sum and
 * the normalization: call that rho. Rounding to half then agrees, or falls on
 * the other side of a rounding boundary: one half ulp apart, at most 2^-10
 * relative, 2^-11 more than rho. The output sums n_pos products in G groups
 * (G <= WG): (n_pos + WG + 1) u. With sum_j p_j |v_j| <= 1:
 *   tol = 2^-11 + rho + (n_pos + WG + 1) u
 * (5e-4 at head_dim 8, 2e-3 at 256). That bound is the worst case, every
 * probability straddling a boundary; in practice errors are far smaller, so
 * the normalized MSE is checked too, as test-backend-ops does: NMSE_MAX is
 * 100 times the largest observed on lavapipe (1e-9, the 90-position ring
 * checked at every step; 2e-10 elsewhere) and over 1000 times smaller than
 * the NMSE of an attention one position short at 600 positions (6e-4,
 * computed below from the reference and checked to stay above it).
 * Each case has such a mutant, checked to exceed NMSE_MAX: one position short
 * (the last step's reference at pos - 1), a window one position wider, no
 * soft-cap, or no ALiBi. */
#define QSCALE   3.0f
#define NMSE_MAX 1e-7

struct attn_case {
    uint32_t n_head, n_head_kv, hd, n_pos, n_last, batch;
    uint32_t window;               /* 0: none */
    bool ring;                     /* a cache of window + batch positions */
    float q_scale, kq_scale;       /* 0: 1 and 1 / sqrt(hd) */
    float softcap, alibi_max_bias; /* 0: none */
};

/* Bytes of a cache of TYPE holding N values. */
static uint64_t cache_bytes(uint32_t type, uint64_t n)
{
    return type == VKLLM_CACHE_Q8_0 ? n / 32 * sizeof(struct block_q8_0) : n * 2;
}

/* Row X of N values as a cache of TYPE holds it: rounded to half, or through
 * Q8_0 (the reference then runs on what the GPU reads, so the tolerance
 * below, derived for |k|, |v| <= 1, holds for either: a Q8_0 value is at
 * most its block's amax). Writes the cache's bytes to BYTES (if not NULL). */
static void cache_row(uint32_t type, const float *x, float *out, void *bytes, uint32_t n)
{
    if (type != VKLLM_CACHE_Q8_0) {
        for (uint32_t i = 0; i < n; i++) {
            out[i] = ref_round_f16(x[i]);
            if (bytes) ((uint16_t *)bytes)[i] = f32_to_fp16(x[i]);
        }
        return;
    }
    struct block_q8_0 b[64];
    REQUIRE(n / 32 <= 64);
    quant_quantize_row(VKLLM_TYPE_Q8_0, x, b, n);
    quant_dequantize_row(VKLLM_TYPE_Q8_0, b, out, n);
    if (bytes) memcpy(bytes, b, n / 32 * sizeof *b);
}

/* The GPU cache's slots at the end: which position each holds, or -1. */
static int64_t slot_position(uint32_t slot, uint32_t n_pos, uint32_t ring)
{
    if (slot >= n_pos) return -1;
    return slot + (int64_t)ring * ((n_pos - 1 - slot) / ring);
}

/* A case with a cache of TYPE_K and TYPE_V (enum vkllm_cache_type). */
static void test_attention(const struct attn_case *c, uint32_t type_k, uint32_t type_v)
{
    const uint32_t n_head = c->n_head, n_head_kv = c->n_head_kv, hd = c->hd, n_pos = c->n_pos;
    const uint32_t n_last = c->n_last, batch = c->batch;
    const uint32_t kv_dim = n_head_kv * hd, q_dim = n_head * hd, n_ctx = n_pos + 3;
    const uint32_t ring = c->ring ? c->window + batch : n_ctx;
    const uint32_t WG = tb.ctx->wg_size;
    if (c->ring) REQUIRE(c->window > 0 && ring < n_pos, "a ring that wraps needs a window");
    struct op_env e = case_begin(batch);
    struct gpu_buf kb = host_buf((uint64_t)batch * kv_dim * 4),
                   vb = host_buf((uint64_t)batch * kv_dim * 4),
                   qb = host_buf((uint64_t)batch * q_dim * 4),
                   kc = host_buf(cache_bytes(type_k, (uint64_t)ring * kv_dim)),
                   vc = host_buf(cache_bytes(type_v, (uint64_t)ring * kv_dim)),
                   out = host_buf((uint64_t)batch * q_dim * 4), scores;
    REQUIRE(gpu_pool_alloc(&tb.device, (uint64_t)batch * n_head * n_ctx * 4, &scores, &tb.err) == 0,
            "%s", tb.err.msg);
    const struct attention_params ap = {
        .head_dim = hd,
        .n_head = n_head,
        .n_head_kv = n_head_kv,
        .n_ctx = n_ctx,
        .ring = ring,
        .window = c->window,
        .q_scale = c->q_scale ? c->q_scale : 1.0f,
        .kq_scale = c->kq_scale ? c->kq_scale : 1.0f / sqrtf((float)hd),
        .softcap = c->softcap,
        .alibi_max_bias = c->alibi_max_bias,
        .type_k = type_k,
        .type_v = type_v,
    };
    REQUIRE(op_kv_store(&e, &kb, &vb, &kc, &vc, kv_dim, ring, type_k, type_v, &tb.err) == 0, "%s",
            tb.err.msg);
    REQUIRE(op_attention(&e, &qb, &kc, &vc, &scores, &out, &ap, &tb.err) == 0, "%s", tb.err.msg);
    record_end();

    /* the mutant: a window one wider, no soft-cap, no ALiBi, else one
     * position short */
    struct attention_params mp = ap;
    const char *mutant_name = "-1 pos";
    if (c->window)
        mp.window = c->window + 1, mutant_name = "window+1";
    else if (c->softcap > 0)
        mp.softcap = 0, mutant_name = "no softcap";
    else if (c->alibi_max_bias > 0)
        mp.alibi_max_bias = 0, mutant_name = "no alibi";
    const bool short_mutant = mp.window == ap.window && mp.softcap == ap.softcap &&
                              mp.alibi_max_bias == ap.alibi_max_bias;

    struct rng r;
    rng_seed(&r, 31 + hd * 1000 + n_pos + 7 * c->window);
    float *K = malloc((uint64_t)n_pos * kv_dim * 4), *V = malloc((uint64_t)n_pos * kv_dim * 4);
    float *Kr = malloc((uint64_t)n_pos * kv_dim * 4), *Vr = malloc((uint64_t)n_pos * kv_dim * 4);
    float *Q = malloc((uint64_t)n_pos * q_dim * 4), *want = malloc(q_dim * 4),
          *mutated = malloc(q_dim * 4);
    REQUIRE(K && V && Kr && Vr && Q && want && mutated);
    for (uint64_t i = 0; i < (uint64_t)n_pos * kv_dim; i++) {
        K[i] = frand(&r);
        V[i] = frand(&r);
    }
    for (uint64_t p = 0; p < n_pos; p++) {
        cache_row(type_k, K + p * kv_dim, Kr + p * kv_dim, NULL, kv_dim);
        cache_row(type_v, V + p * kv_dim, Vr + p * kv_dim, NULL, kv_dim);
    }
    for (uint64_t i = 0; i < (uint64_t)n_pos * q_dim; i++)
        Q[i] = frand(&r) * QSCALE;
    memset(kc.mapped, 0xff, kc.size); /* NaN halves */
    memset(vc.mapped, 0xff, vc.size);

    /* the tolerance of the header */
    const double D = QSCALE * ap.q_scale * hd;
    double ds = (hd + 3) * U * D, s_raw = D;
    if (ap.softcap > 0) {
        ds += ap.softcap * (29 + 21 * D / ap.softcap) * U;
        s_raw = fmin(D, ap.softcap);
    }
    double smax = ap.kq_scale * s_raw;
    ds = ap.kq_scale * ds + U * smax;
    if (ap.alibi_max_bias > 0) {
        float m0, m1;
        uint32_t heads;
        attention_alibi(n_head, ap.alibi_max_bias, &m0, &m1, &heads);
        const double dist = (c->window ? c->window : n_pos) - 1;
        const double bias = fmax(m0, heads < n_head ? m1 : 0) * dist;
        ds += 0x1p-16 * bias + U * (smax + bias);
        smax += bias;
    }
    const double rho = 2 * ds + (3 + 4 * smax) * 2 * U + (n_pos + 2) * U;
    const double tol = 0x1p-11 + rho + (n_pos + WG + 1) * U;

    struct diff d = {0}, mutant = {0};
    const uint32_t last0 = n_pos - n_last;
    float *o = out.mapped;
    for (uint32_t p0 = 0; p0 < n_pos;) {
        const uint32_t nt = p0 < last0 ? (last0 - p0 < batch ? last0 - p0 : batch) : n_last;
        memcpy(kb.mapped, K + (uint64_t)p0 * kv_dim, (uint64_t)nt * kv_dim * 4);
        memcpy(vb.mapped, V + (uint64_t)p0 * kv_dim, (uint64_t)nt * kv_dim * 4);
        memcpy(qb.mapped, Q + (uint64_t)p0 * q_dim, (uint64_t)nt * q_dim * 4);
        fill(o, (uint64_t)batch * q_dim, SENTINEL);
        run_step(&e, nt, p0, NULL);
        if (p0 == 0 || p0 == last0 || n_pos <= 100) {
            for (uint32_t t = 0; t < batch; t++) {
                const float *qt = Q + (uint64_t)(p0 + t) * q_dim;
                if (t < nt) ref_attention(qt, Kr, Vr, want, p0 + t, &ap);
                for (uint32_t i = 0; i < q_dim; i++) {
                    const uint64_t j = (uint64_t)t * q_dim + i;
                    if (t < nt)
                        diff_add(&d, o[j], want[i], tol, "out", j);
                    else
                        diff_same(&d, o[j], SENTINEL, "out", j);
                }
                /* the NMSE bound's sensitivity: the mutant's distance from the
                 * reference (one position short: at the last step) */
                if (t >= nt) continue;
                if (short_mutant) {
                    if (p0 != last0 || p0 + t == 0) continue;
                    ref_attention(qt, Kr, Vr, mutated, p0 + t - 1, &ap);
                } else {
                    ref_attention(qt, Kr, Vr, mutated, p0 + t, &mp);
                }
                for (uint32_t i = 0; i < q_dim; i++)
                    diff_add(&mutant, mutated[i], want[i], INFINITY, "", i);
            }
        }
        p0 += nt;
    }
    const bool tiled = tb.ctx->attention_tiled && batch >= ATTENTION_TILED_MIN_BATCH && hd % 8 == 0;
    const bool split =
        !tiled && tb.ctx->attention_splits && hd % 8 == 0 && hd >= 2 * tb.ctx->attention_splits;
    const double nmse = diff_nmse(&d);
    CHECK(nmse <= NMSE_MAX, "attention NMSE %.3g > %.3g", nmse, NMSE_MAX);
    if (mutant.n)
        CHECK(diff_nmse(&mutant) > NMSE_MAX, "NMSE_MAX too loose: %.3g", diff_nmse(&mutant));

    /* the cache, bit for bit: the last position written to each slot, and
     * NaN in slots never written */
    struct diff dc = {0};
    const uint64_t row_k = cache_bytes(type_k, kv_dim), row_v = cache_bytes(type_v, kv_dim);
    uint8_t *want_k = malloc(row_k), *want_v = malloc(row_v);
    float *scratch = malloc(kv_dim * sizeof *scratch);
    REQUIRE(want_k && want_v && scratch);
    for (uint32_t slot = 0; slot < ring; slot++) {
        const int64_t p = slot_position(slot, n_pos, ring);
        memset(want_k, 0xff, row_k);
        memset(want_v, 0xff, row_v);
        if (p >= 0) {
            cache_row(type_k, K + (uint64_t)p * kv_dim, scratch, want_k, kv_dim);
            cache_row(type_v, V + (uint64_t)p * kv_dim, scratch, want_v, kv_dim);
        }
        const uint8_t *kh = (const uint8_t *)kc.mapped + slot * row_k;
        const uint8_t *vh = (const uint8_t *)vc.mapped + slot * row_v;
        for (uint64_t i = 0; i < row_k; i++)
            diff_add(&dc, kh[i], want_k[i], 0.0, "k_cache byte", slot * row_k + i);
        for (uint64_t i = 0; i < row_v; i++)
            diff_add(&dc, vh[i], want_v[i], 0.0, "v_cache byte", slot * row_v + i);
    }
    free(want_k);
    free(want_v);
    free(scratch);

    char shape[160];
    snprintf(shape, sizeof shape, "%s, heads %u/%u x %u, %u pos, last %u/%u tok",
             tiled                                        ? "tiled"
             : split && tb.ctx->attention_split_heads > 1 ? "split, grouped"
             : split                                      ? "split"
                                                          : "untiled",
             n_head, n_head_kv, hd, n_pos, n_last, batch);
    if (c->window)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", window %u", c->window);
    if (c->ring) snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", ring %u", ring);
    if (type_k || type_v)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", cache %s/%s%s",
                 vkllm_cache_type_name(type_k), vkllm_cache_type_name(type_v),
                 tb.ctx->attention_subgroup ? "" : " (no subgroups)");
    diff_report("kv_store", shape, &dc);
    if (ap.q_scale != 1.0f)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", q*%.3g kq*%.3g",
                 ap.q_scale, ap.kq_scale);
    if (ap.softcap > 0)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", softcap %g", ap.softcap);
    if (ap.alibi_max_bias > 0)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", alibi %g",
                 ap.alibi_max_bias);
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", nmse %.0e (%s: %.0e)", nmse,
             mutant_name, diff_nmse(&mutant));
    diff_report("attention", shape, &d);
    free(K);
    free(V);
    free(Kr);
    free(Vr);
    free(Q);
    free(want);
    free(mutated);
    case_end();
}

/* A Q8_0 cache (K, V or both; test_kernels --kv-q8): rows of an even and an
 * odd number of blocks (a word shared by two positions' blocks), tiles,
 * decode split and not, a ring, a soft-cap, ALiBi, head_dim 32 to 256; each
 * through the kernels its batch gets, then untiled and unsplit, then both
 * again without subgroup operations (attention_sh, attention_decode_sh). */
static void test_attention_q8(void)
{
    const float r32 = 1.0f / sqrtf(32.0f);
    const bool tiled = tb.ctx->attention_tiled;
    const uint32_t splits = tb.ctx->attention_splits;

    const uint32_t CQ8 = VKLLM_CACHE_Q8_0;
    const struct {
        struct attn_case c;
        uint32_t type_k, type_v;
    } q8[] = {
        {{8, 2, 64, 37, 5, 8, 0, false, 0, 0, 0, 0}, CQ8, CQ8},
        {{6, 3, 32, 37, 7, 8, 0, false, 0, 0, 0, 0}, CQ8, CQ8},
        {{6, 3, 32, 41, 3, 4, 6, true, r32, 1.0f, 3.0f, 0}, CQ8, CQ8},
        {{8, 2, 64, 37, 5, 8, 0, false, 0, 0, 0, 0}, CQ8, 0},
        {{6, 3, 32, 600, 13, 16, 0, false, 0, 0, 0, 0}, 0, CQ8},
        {{8, 8, 32, 700, 1, 4, 0, false, 0, 0, 0, 0}, CQ8, CQ8},
        {{8, 2, 32, 900, 1, 4, 300, true, 0, 0, 0, 0}, CQ8, CQ8},
        {{6, 6, 32, 500, 3, 4, 0, false, 0, 0, 0, 8.0f}, CQ8, CQ8},
        {{8, 4, 32, 400, 1, 4, 0, false, r32, 1.0f, 2.0f, 0}, CQ8, 0},
        {{4, 2, 256, 530, 1, 2, 0, false, 0, 0, 0, 0}, 0, CQ8},
        {{8, 2, 128, 90, 13, 16, 20, true, 0, 0, 0, 0}, CQ8, CQ8},
    };
    for (size_t i = 0; i < sizeof q8 / sizeof q8[0]; i++) {
        const bool sub = tb.ctx->attention_subgroup, mv = tb.ctx->matvec_subgroup;
        const uint32_t per_group = tb.ctx->attention_per_group;
        test_attention(&q8[i].c, q8[i].type_k, q8[i].type_v);
        tb.ctx->attention_tiled = false;
        tb.ctx->attention_splits = 0;
        test_attention(&q8[i].c, q8[i].type_k, q8[i].type_v);
        tb.ctx->attention_subgroup = tb.ctx->matvec_subgroup = false;
        tb.ctx->attention_per_group = 1; /* as context.c sets it without subgroups */
        tb.ctx->attention_splits = splits;
        test_attention(&q8[i].c, q8[i].type_k, q8[i].type_v);
        tb.ctx->attention_splits = 0;
        test_attention(&q8[i].c, q8[i].type_k, q8[i].type_v);
        tb.ctx->attention_subgroup = sub, tb.ctx->matvec_subgroup = mv;
        tb.ctx->attention_per_group = per_group;
        tb.ctx->attention_tiled = tiled;
        tb.ctx->attention_splits = splits;
    }
}

/* ============================== fused ops ============================== */

/* Fills the N bytes at P with a pattern no op writes by chance. */
static void fill_bytes(void *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)(0xa5 ^ (i * 7));
}

/* Whether N bytes at A and B are equal; reports the first difference. */
static bool same_bytes(const void *a, const void *b, uint64_t n, const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (((const uint8_t *)a)[i] != ((const uint8_t *)b)[i]) {
            fprintf(stderr, "  %s: byte %llu differs\n", what, (unsigned long long)i);
            return false;
        }
    return true;
}

/* rope_kv_store against rope(Q), rope(K), kv_store on the same inputs, for a
 * cache of RING positions of types TYPE_K and TYPE_V; with FACTORS, a table
 * with frequency factors (Llama 3.1's rope_freqs). */
static void test_rope_kv_store(uint32_t n_head, uint32_t n_head_kv, uint32_t hd, uint32_t n_rot,
                               bool neox, bool factors, uint32_t type_k, uint32_t type_v,
                               uint32_t pos0, uint32_t batch, uint32_t n_tokens, uint32_t ring)
{
    const uint32_t q_dim = n_head * hd, kv_dim = n_head_kv * hd;
    const uint64_t kc_bytes = (cache_bytes(type_k, (uint64_t)ring * kv_dim) + 3) & ~3ull;
    const uint64_t vc_bytes = (cache_bytes(type_v, (uint64_t)ring * kv_dim) + 3) & ~3ull;
    struct op_env e = case_begin(batch);
    struct gpu_buf table = host_buf((uint64_t)batch * n_rot * 4);
    struct gpu_buf q[2], k[2], kc[2], vc[2], v = host_buf((uint64_t)batch * kv_dim * 4);
    for (int i = 0; i < 2; i++) {
        q[i] = host_buf((uint64_t)batch * q_dim * 4);
        k[i] = host_buf((uint64_t)batch * kv_dim * 4);
        kc[i] = host_buf(kc_bytes);
        vc[i] = host_buf(vc_bytes);
    }
    REQUIRE(op_rope(&e, &table, &q[0], n_head, hd, n_rot, neox, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(op_rope(&e, &table, &k[0], n_head_kv, hd, n_rot, neox, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(op_kv_store(&e, &k[0], &v, &kc[0], &vc[0], kv_dim, ring, type_k, type_v, &tb.err) == 0,
            "%s", tb.err.msg);
    const struct rope_kv_shape sh = {n_head, n_head_kv, hd, n_rot, neox, ring, type_k, type_v};
    REQUIRE(op_rope_kv_store(&e, &table, &q[1], &k[1], &v, &kc[1], &vc[1], &sh, &tb.err) == 0, "%s",
            tb.err.msg);
    record_end();

    float ff[MAX_HEAD_DIM / 2];
    for (uint32_t i = 0; i < n_rot / 2; i++)
        ff[i] = 1.0f + (float)i * 0.37f;
    const struct rope_params rp = {.n_rot = n_rot,
                                   .freq_base = 10000.0f,
                                   .freq_scale = 1.0f,
                                   .attn_factor = 1.0f,
                                   .freq_factors = factors ? ff : NULL};
    rope_table(&rp, table.mapped, n_tokens, pos0);
    struct rng r;
    rng_seed(&r, 31 + hd + n_rot);
    float *k0 = malloc((uint64_t)batch * kv_dim * sizeof *k0);
    REQUIRE(k0);
    for (uint64_t i = 0; i < (uint64_t)batch * q_dim; i++)
        ((float *)q[0].mapped)[i] = ((float *)q[1].mapped)[i] = frand(&r) * 3.0f;
    for (uint64_t i = 0; i < (uint64_t)batch * kv_dim; i++) {
        ((float *)k[0].mapped)[i] = ((float *)k[1].mapped)[i] = k0[i] = frand(&r);
        ((float *)v.mapped)[i] = frand(&r);
    }
    for (int i = 0; i < 2; i++) {
        fill_bytes(kc[i].mapped, kc_bytes);
        fill_bytes(vc[i].mapped, vc_bytes);
    }
    run_step(&e, n_tokens, pos0, NULL);

    char shape[128];
    snprintf(shape, sizeof shape,
             "%s%s %u/%u heads x %u, n_rot %u, K %s V %s, pos %u+%u/%u, ring %u",
             neox ? "neox" : "normal", factors ? " +ff" : "", n_head, n_head_kv, hd, n_rot,
             type_k == VKLLM_CACHE_Q8_0 ? "q8_0" : "f16",
             type_v == VKLLM_CACHE_Q8_0 ? "q8_0" : "f16", pos0, n_tokens, batch, ring);
    const bool same = same_bytes(q[0].mapped, q[1].mapped, (uint64_t)batch * q_dim * 4, "Q") &&
                      same_bytes(kc[0].mapped, kc[1].mapped, kc_bytes, "K cache") &&
                      same_bytes(vc[0].mapped, vc[1].mapped, vc_bytes, "V cache") &&
                      same_bytes(k[1].mapped, k0, (uint64_t)batch * kv_dim * 4, "K (unrotated)");
    /* not vacuous: the unfused ops wrote the cache */
    uint8_t *pattern = malloc(kc_bytes);
    REQUIRE(pattern);
    fill_bytes(pattern, kc_bytes);
    const bool wrote = memcmp(kc[0].mapped, pattern, kc_bytes) != 0;
    free(pattern);
    printf("%-9s %-58s %s\n", "rope_kv", shape, same ? "same bytes" : "DIFFERENT");
    CHECK(same && wrote, "rope_kv_store %s: not the unfused ops' bytes", shape);
    free(k0);
    case_end();
}

/* norm_q8 against norm then quantize_q8 on the same inputs (LAST_ONLY picks
 * the quantized layout, or the GEMM's floats for a batch of 16 or more). */
/* The verdict on a fused kernel (KERNEL, e.g. "norm_q8") against the ops it
 * replaces: SAME bytes, and not vacuously (its quantized output XQ no longer
 * holds fill_bytes' pattern at its start). */
static void fused_verdict(const char *kernel, const char *shape, bool same, const void *xq)
{
    uint8_t pattern[32];
    fill_bytes(pattern, sizeof pattern);
    const bool wrote = memcmp(xq, pattern, sizeof pattern) != 0;
    printf("%-9s %-58s %s\n", kernel, shape, same ? "same bytes" : "DIFFERENT");
    CHECK(same && wrote, "%s %s: not the unfused ops' bytes", kernel, shape);
}

static void test_norm_q8(uint32_t n, uint32_t rows, uint32_t batch, uint32_t n_tokens,
                         bool layer_norm, bool bias, bool in_place, bool last_only)
{
    const uint32_t k = n * rows;
    struct op_env e = case_begin(batch);
    const uint64_t xq_bytes = op_q8_bytes(batch, k);
    struct gpu_buf w = host_buf((uint64_t)n * 4), b = host_buf((uint64_t)n * 4);
    struct gpu_buf x[2], out[2], xq[2];
    for (int i = 0; i < 2; i++) {
        x[i] = host_buf((uint64_t)batch * k * 4);
        out[i] = in_place ? x[i] : host_buf((uint64_t)batch * k * 4);
        xq[i] = host_buf(xq_bytes);
    }
    REQUIRE(op_norm(&e, &x[0], &w, bias ? &b : NULL, &out[0], n, rows, 1e-5f, layer_norm, false,
                    &tb.err) == 0,
            "%s", tb.err.msg);
    REQUIRE(op_quantize_q8(&e, &out[0], &xq[0], k, last_only, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(op_norm_q8(&e, &x[1], &w, bias ? &b : NULL, &out[1], &xq[1], n, rows, 1e-5f, layer_norm,
                       false, last_only, &tb.err) == 0,
            "%s", tb.err.msg);
    record_end();

    struct rng r;
    rng_seed(&r, 41 + n);
    for (uint32_t i = 0; i < n; i++) {
        ((float *)w.mapped)[i] = 1.0f + frand(&r) * 0.9f;
        ((float *)b.mapped)[i] = frand(&r);
    }
    for (uint64_t i = 0; i < (uint64_t)batch * k; i++)
        ((float *)x[0].mapped)[i] = ((float *)x[1].mapped)[i] = frand(&r) * (i % 97 ? 1.0f : 40.0f);
    for (int i = 0; i < 2; i++) {
        if (!in_place) fill_bytes(out[i].mapped, (uint64_t)batch * k * 4);
        fill_bytes(xq[i].mapped, xq_bytes);
    }
    run_step(&e, n_tokens, 0, NULL);

    char shape[128];
    snprintf(shape, sizeof shape, "%s n=%u x%u%s%s %u/%u tok%s", layer_norm ? "layer" : "rms", n,
             rows, bias ? " +b" : "", in_place ? " in place" : "", n_tokens, batch,
             op_matvec_uses_gemm(&e, last_only) ? " (GEMM floats)" : "");
    const bool same = same_bytes(out[0].mapped, out[1].mapped, (uint64_t)batch * k * 4, "out") &&
                      same_bytes(xq[0].mapped, xq[1].mapped, xq_bytes, "xq");
    fused_verdict("norm_q8", shape, same, xq[1].mapped);
    case_end();
}

/* eltwise_q8 against eltwise then quantize_q8: the same bytes in y and xq.
 * LAST_ONLY: the eltwise and the matvec reading it take row 0 only. */
static void test_eltwise_q8(uint32_t op, uint32_t n, uint32_t batch, uint32_t n_tokens,
                            bool last_only)
{
    struct op_env e = case_begin(batch);
    const uint64_t xq_bytes = op_q8_bytes(batch, n), floats = (uint64_t)batch * n;
    struct gpu_buf x = host_buf(floats * 4), y[2], xq[2];
    for (int i = 0; i < 2; i++) {
        y[i] = host_buf(floats * 4);
        xq[i] = host_buf(xq_bytes);
    }
    REQUIRE(op_eltwise(&e, op, &y[0], &x, n, 0.5f, last_only, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(op_quantize_q8(&e, &y[0], &xq[0], n, last_only, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(op_eltwise_q8(&e, op, &y[1], &x, &xq[1], n, 0.5f, last_only, last_only, &tb.err) == 0,
            "%s", tb.err.msg);
    record_end();

    struct rng r;
    rng_seed(&r, 43 + n);
    for (uint64_t i = 0; i < floats; i++) {
        ((float *)x.mapped)[i] = frand(&r) * 3.0f;
        ((float *)y[0].mapped)[i] = ((float *)y[1].mapped)[i] = frand(&r) * (i % 89 ? 4.0f : 30.0f);
    }
    for (int i = 0; i < 2; i++)
        fill_bytes(xq[i].mapped, xq_bytes);
    run_step(&e, n_tokens, 0, NULL);

    /* rows the matvec reads: row 0 with LAST_ONLY (the rest is left as it was) */
    const uint64_t rows = last_only ? 1 : n_tokens;
    char shape[128];
    snprintf(shape, sizeof shape, "op %u n=%u %u/%u tok%s%s", op, n, n_tokens, batch,
             last_only ? " last only" : "",
             op_matvec_uses_gemm(&e, last_only) ? " (GEMM floats)" : "");
    bool same = same_bytes(y[0].mapped, y[1].mapped, rows * n * 4, "y");
    if (op_matvec_uses_gemm(&e, last_only)) {
        same = same && same_bytes(xq[0].mapped, xq[1].mapped, rows * n * 4, "xf");
    } else {
        const uint64_t scales = (uint64_t)batch * n; /* after every token's quants */
        same = same && same_bytes(xq[0].mapped, xq[1].mapped, rows * n, "xq quants") &&
               same_bytes((uint8_t *)xq[0].mapped + scales, (uint8_t *)xq[1].mapped + scales,
                          rows * n / 32 * 4, "xq scales");
    }
    fused_verdict("elt_q8", shape, same, xq[1].mapped);
    case_end();
}

/* ============================== eltwise ============================== */

/* One ulp of the half float nearest V: the spacing of halves there (2^-24
 * among the subnormal ones). */
static double half_ulp(float v)
{
    int e;
    frexp(fabs((double)ref_round_f16(v)), &e);
    return ldexp(1.0, e - 11 > -24 ? e - 11 : -24);
}

/* GELU's tanh form as ref_gelu, but with erf (the exact GELU): a mutant the
 * GELU check must tell apart. */
static float gelu_erf(float x)
{
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    const float h = ref_round_f16(x);
    return ref_round_f16(0.5f * h * (1.0f + erff(h * 0.70710678f)));
}

/* Inputs of GELU: every half float in [-10.5, 10.5] (GELU rounds its input
 * to half first, so these are all the inputs of the tanh form), the edges
 * around +-10, then random floats in [-12, 12) that are not halves. Returns
 * how many are not random: all of them when COUNT is over 37504. */
#define GELU_EXHAUSTIVE 37514
static uint64_t gelu_inputs(float *y, uint64_t count, struct rng *r)
{
    uint64_t i = 0;
    for (uint32_t bits = 0; bits < 0x10000 && i < count; bits++) {
        const float h = fp16_to_f32((uint16_t)bits);
        if (fabsf(h) <= 10.5f) y[i++] = h;
    }
    const float edges[] = {10.0f,
                           -10.0f,
                           nextafterf(10.0f, 0.0f),
                           nextafterf(-10.0f, 0.0f),
                           nextafterf(10.0f, 11.0f),
                           nextafterf(-10.0f, -11.0f),
                           9.998f,
                           -9.998f};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0] && i < count; k++)
        y[i++] = edges[k];
    const uint64_t fixed = i;
    while (i < count)
        y[i++] = frand(r) * 12.0f;
    return fixed;
}

/* The elementwise ops, y = OP(y, x) on N floats per token, in place. Where a
 * row is not the step's (past N_TOKENS, or with LAST_ONLY past row 0), y must
 * keep its value. See the header for each op's tolerance. */
static void test_eltwise(uint32_t op, uint32_t n, uint32_t batch, uint32_t n_tokens, float f,
                         bool last_only)
{
    static const char *names[] = {"add", "add_bias", "scale", "gelu", "softcap", "swiglu", "geglu"};
    const bool gelu = op == ELT_GELU || op == ELT_GLU_GELU;
    const bool has_x = op == ELT_ADD || op == ELT_ADD_BIAS || op == ELT_GLU_SILU || gelu;
    const uint64_t total = (uint64_t)batch * n, x_len = op == ELT_ADD_BIAS ? n : total;
    struct op_env e = case_begin(batch);
    struct gpu_buf y = host_buf(total * 4), x = host_buf(x_len * 4);
    const bool glu = op == ELT_GLU_SILU || op == ELT_GLU_GELU;
    REQUIRE(op_eltwise(&e, op, &y, has_x && op != ELT_GELU ? &x : NULL, n, f, last_only, &tb.err) ==
                0,
            "%s", tb.err.msg);
    record_end();

    struct rng r;
    rng_seed(&r, 51 + op * 100 + n);
    float *ys = y.mapped, *xs = x.mapped, *y0 = malloc(total * sizeof *y0);
    REQUIRE(y0);
    const uint64_t rows = last_only ? 1 : n_tokens;
    const bool exhaustive = gelu && gelu_inputs(y0, rows * n, &r) == GELU_EXHAUSTIVE;
    for (uint64_t i = gelu ? rows * n : 0; i < total; i++)
        y0[i] = frand(&r) * (op == ELT_SOFTCAP ? 4 * f : op == ELT_GLU_SILU ? 20.0f : 8.0f);
    memcpy(ys, y0, total * sizeof *ys);
    for (uint64_t i = 0; i < x_len; i++)
        xs[i] = frand(&r) * (glu ? 2.0f : 8.0f);
    run_step(&e, n_tokens, 0, NULL);

    struct diff d = {0};
    /* GELU values not equal to the reference's, where 1 + tanh does not cancel
     * (h >= -3), and of those the erf form's */
    uint64_t differ = 0, erf_differ = 0, n_plain = 0;
    for (uint64_t i = 0; i < total; i++) {
        if (i >= rows * n) {
            diff_same(&d, ys[i], y0[i], "y", i);
            continue;
        }
        const float xi = has_x ? xs[op == ELT_ADD_BIAS ? i % n : i] : 0.0f;
        float want = y0[i];
        ref_eltwise(op, &want, &xi, 1, f);
        double tol = 0.0;
        if (op == ELT_SOFTCAP) {
            const double a = fabs((double)y0[i] / f);
            tol = f * (29 + 21 * a) * U + 2 * U * fabs(want);
        } else if (op == ELT_GLU_SILU) {
            tol = (17 + 4 * fabs(y0[i])) * U * fabs(want);
        } else if (gelu) {
            /* one half ulp, plus tanh's absolute error E_t = 4u times h / 2
             * where 1 + tanh cancels: see the header */
            const float g = ref_gelu(y0[i]), h = ref_round_f16(y0[i]);
            const double e_g = half_ulp(g) + 0.5 * fabs(h) * 4 * U;
            tol = op == ELT_GELU ? e_g : fabs(xi) * e_g + 2 * U * fabs(want);
            if (h >= -3.0f) {
                n_plain++;
                differ += ys[i] != want;
                erf_differ += gelu_erf(y0[i]) != g;
            }
        }
        diff_add(&d, ys[i], want, tol, "y", i);
    }
    char shape[128];
    snprintf(shape, sizeof shape, "n=%u %u/%u tok%s", n, n_tokens, batch, last_only ? " last" : "");
    if (op == ELT_SCALE || op == ELT_SOFTCAP)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), " f=%g", f);
    if (exhaustive) {
        /* most values equal llama.cpp's bit for bit; a GELU of another form
         * (erf) differs in far more */
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                 ", h>=-3 not equal: %.2f%% (erf form: %.0f%%)", 100.0 * differ / n_plain,
                 100.0 * erf_differ / n_plain);
        CHECK(differ <= n_plain / 1000, "%s: %llu of %llu values differ from llama.cpp's",
              names[op], (unsigned long long)differ, (unsigned long long)n_plain);
        CHECK(erf_differ > n_plain / 1000, "GELU check too loose: erf differs in %llu",
              (unsigned long long)erf_differ);
    }
    diff_report(names[op], shape, &d);
    free(y0);
    case_end();
}

/* ============================== swiglu ============================== */

static void test_swiglu(uint32_t n, uint32_t batch, uint32_t n_tokens)
{
    struct op_env e = case_begin(batch);
    struct gpu_buf g = host_buf((uint64_t)batch * n * 4), up = host_buf((uint64_t)batch * n * 4);
    REQUIRE(op_eltwise(&e, ELT_GLU_SILU, &g, &up, n, 0.0f, false, &tb.err) == 0, "%s", tb.err.msg);
    record_end();

    /* gates over [-20, 20): exp(-g) from 2e-9 to 5e8 */
    struct rng r;
    rng_seed(&r, 41 + n);
    float *gs = malloc((uint64_t)batch * n * sizeof *gs), *us = up.mapped, *o = g.mapped;
    REQUIRE(gs);
    for (uint64_t i = 0; i < (uint64_t)batch * n; i++) {
        o[i] = gs[i] = frand(&r) * 20.0f;
        us[i] = frand(&r) * 2.0f;
    }
    run_step(&e, n_tokens, 0, NULL);

    /* in place: rows past the step's tokens keep their gates */
    struct diff d = {0};
    for (uint64_t i = 0; i < (uint64_t)batch * n; i++) {
        if (i < (uint64_t)n_tokens * n) {
            float want = gs[i];
            ref_eltwise(ELT_GLU_SILU, &want, &us[i], 1, 0.0f);
            diff_add(&d, o[i], want, (17 + 4 * fabs(gs[i])) * U * fabs(want), "out", i);
        } else {
            diff_same(&d, o[i], gs[i], "out", i);
        }
    }
    free(gs);
    char shape[96];
    snprintf(shape, sizeof shape, "n=%u %u/%u tok", n, n_tokens, batch);
    diff_report("swiglu", shape, &d);
    case_end();
}

/* ============================== Workgroup counts ============================== */

/* More workgroups than maxComputeWorkGroupCount[0]: gpu_graph_dispatch then
 * splits them over x and y (rounding up, so a few extra groups run), and the
 * kernels must use group_index() and bounds-check it. Skipped on devices whose
 * limit would make this case large. */
static void test_many_workgroups(void)
{
    const uint32_t max_x = tb.ctx->dev.info.max_workgroup_count[0];
    if (max_x > (1u << 20)) {
        printf("%-9s (maxComputeWorkGroupCount[0] is %u: x/y split not tested)\n", "", max_x);
        return;
    }
    /* two rows per matvec workgroup, WG elements per swiglu workgroup */
    printf("%-9s (the next two dispatch over x and y: maxComputeWorkGroupCount[0] is %u)\n", "",
           max_x);
    struct matvec_case c = {VKLLM_TYPE_F32, 32, 2 * max_x + 5, 1, 1, false, false, 0, 0};
    test_matvec(&c);
    test_swiglu(tb.ctx->wg_size * max_x + 7, 1, 1);
    /* A GEMM dispatches row tiles times token tiles: 17 rows are two row tiles
     * (one or two rows per thread), and this many tokens make more than max_x
     * workgroups, the last token tile partial. The review's "more rows times
     * tokens than threads silently skips rows": the tokens of the groups in y. */
    if (!tb.ctx->gemm) return;
    const uint32_t tokens = (max_x / 2 + 2) * tb.ctx->gemm_tokens - 3;
    const uint64_t x_bytes = (uint64_t)tokens * 32 * 4;
    if (x_bytes > tb.ctx->dev.info.max_storage_buffer_range) return;
    struct matvec_case g = {VKLLM_TYPE_F32, 32, 17, tokens, tokens, false, false, 0, 0};
    test_matvec(&g);
}

/* ============================== Main ============================== */

int main(int argc, char **argv)
{
    /* --kv-q8: the attention kernels with a Q8_0 KV cache only; --coop: the
     * cooperative-matrix GEMM only */
    const bool kv_q8 = argc > 1 && !strcmp(argv[1], "--kv-q8");
    const bool coop = argc > 1 && !strcmp(argv[1], "--coop");
    double t_start = now_s();
    int rc = vkllm_context_create(NULL, &tb.ctx, &tb.err);
    REQUIRE(rc == 0, "%s", tb.err.msg);
    const struct vkllm_device_info *info = vkllm_context_device(tb.ctx);
    printf("device %s: storage-buffer range %llu MiB, workgroup %u\n%s\n", info->name,
           (unsigned long long)(info->max_storage_buffer_range >> 20), tb.ctx->wg_size,
           vkllm_context_paths(tb.ctx));
    REQUIRE(gpu_uploader_create(&tb.up, &tb.ctx->dev, 16u << 20, &tb.err) == 0, "%s", tb.err.msg);
    REQUIRE(gpu_graph_create(&tb.graph, &tb.ctx->dev, &tb.err) == 0, "%s", tb.err.msg);
    if (kv_q8) {
        test_attention_q8();
        goto done;
    }
    if (coop) {
        test_coop_gemms();
        goto done;
    }

    /* odd row lengths (F16 rows then start mid-word), odd row counts, parts */
    const uint32_t F32 = VKLLM_TYPE_F32, F16 = VKLLM_TYPE_F16, Q8 = VKLLM_TYPE_Q8_0,
                   Q4 = VKLLM_TYPE_Q4_0;
    test_get_rows(F32, 13, 37, 10, false, false);
    test_get_rows(F32, 127, 41, 0, false, false);
    test_get_rows(F16, 13, 37, 10, false, false);
    test_get_rows(F16, 127, 41, 6, false, false);
    test_get_rows(F16, 4097, 9, 0, false, false);
    test_get_rows(Q8, 32, 37, 10, false, false);
    test_get_rows(Q8, 32 * 37, 21, 4, false, false);
    test_get_rows(Q4, 32, 37, 10, false, false);
    test_get_rows(Q4, 32 * 37, 21, 4, false, false);
    /* learned positions (starcoder's position_embd, F32 or F16 or quantized),
     * added to the token embedding; and a token lookup that adds */
    test_get_rows(F32, 13, 37, 10, true, true);
    test_get_rows(F16, 127, 41, 6, true, true);
    test_get_rows(Q8, 32 * 3, 37, 10, true, true);
    test_get_rows(Q4, 32, 37, 10, true, false);
    test_get_rows(F32, 127, 41, 0, false, true);
    test_get_rows(Q4, 32 * 37, 21, 4, false, true);

    /* batch 1 (one token per pass), batches of 8 tokens per pass with a
     * partial last pass, fewer tokens than the batch, ACC, LAST_ONLY, parts */
    const struct matvec_case mv[] = {
        {F32, 13, 7, 1, 1, false, false, 0, 0},
        {F32, 127, 129, 8, 5, false, false, 0, 0},
        {F32, 127, 129, 8, 1, false, false, 0, 0},
        {F32, 4096, 300, 16, 13, false, false, 0, 0},
        {F32, 127, 129, 8, 5, true, false, 0, 0},
        {F32, 127, 129, 8, 5, false, true, 0, 0},
        {F32, 127, 129, 8, 5, false, false, 20, 0},
        {F16, 13, 7, 1, 1, false, false, 0, 0},
        {F16, 127, 129, 16, 13, false, false, 0, 0},
        {F16, 4096, 300, 8, 5, true, false, 0, 0},
        {F16, 13, 129, 8, 7, false, false, 40, 0},
        {F16, 127, 129, 8, 6, true, true, 0, 0},
        {Q8, 32, 7, 1, 1, false, false, 0, 0},
        {Q8, 32 * 37, 129, 8, 5, false, false, 0, 0},
        {Q8, 4096, 300, 16, 13, true, false, 0, 0},
        {Q8, 32 * 37, 129, 16, 13, false, true, 0, 0},
        {Q8, 32 * 37, 129, 8, 5, false, false, 30, 0},
        {Q4, 32, 7, 1, 1, false, false, 0, 0},
        {Q4, 32 * 37, 129, 16, 13, false, false, 0, 0},
        {Q4, 4096, 300, 8, 5, false, false, 0, 0},
        {Q4, 32 * 37, 129, 16, 13, true, false, 30, 0},
        {Q4, 32 * 37, 129, 8, 5, false, true, 30, 0},
        {F32, 77, 100, 80, 70, false, false, 0, 0},
        {F16, 172, 100, 80, 70, true, false, 30, 0},
        {Q8, 64, 100, 80, 70, true, false, 0, 0},
        {Q4, 64, 100, 130, 129, false, false, 30, 0},
    };
    for (size_t i = 0; i < sizeof mv / sizeof mv[0]; i++)
        test_matvec(&mv[i]);
    test_other_loads(mv, sizeof mv / sizeof mv[0]);
    test_other_products(mv, sizeof mv / sizeof mv[0]);

    /* every other format: rows of one and of several blocks (not a multiple of
     * the threads per row), batches, ACC and LAST_ONLY, parts */
    for (uint32_t i = 0; i < quant_format_count; i++) {
        const struct quant_format *f = &quant_formats[i];
        if (f->type == F32 || f->type == F16 || f->type == Q8 || f->type == Q4) continue;
        /* odd: a row of an odd number of blocks (5 super-blocks of 256, 37 of 32) */
        const uint32_t bs = f->block_size, one = bs == 1 ? 13 : bs;
        const uint32_t odd = bs == 1 ? 4097 : bs == 256 ? bs * 5 : bs * 37;
        test_get_rows(f->type, one, 37, 10, false, false);
        test_get_rows(f->type, odd, 21, 4, false, false);
        const struct matvec_case fc[] = {
            {f->type, one, 7, 1, 1, false, false, 0, 0},
            {f->type, odd, 129, 8, 5, false, false, 0, 0},
            {f->type, odd, 129, 16, 13, true, false, 30, 0},
            {f->type, odd, 129, 8, 5, false, true, 30, 0},
            {f->type, bs == 1 ? 2048 : bs * 8, 300, 1, 1, false, false, 0, 0},
            /* two GEMM token tiles, the second partial */
            {f->type, bs == 1 ? 77 : bs * 2, 100, 80, 70, true, false, 0, 0},
            /* full rows per GEMM thread, the second row tile partial */
            {f->type, one, 64 * 16 + 37, 16, 13, false, false, 0, 0},
        };
        for (size_t j = 0; j < sizeof fc / sizeof fc[0]; j++)
            test_matvec(&fc[j]);
        /* a block format's other matvec path too, integer dots or floats
         * (lavapipe, a CPU device, takes the integer dots by default), where
         * it is no GEMM */
        if (bs > 1 && tb.ctx->dev.info.int_dot) {
            tb.ctx->matvec_int_dot = !tb.ctx->matvec_int_dot;
            for (size_t j = 0; j < sizeof fc / sizeof fc[0]; j++)
                if (fc[j].batch < GEMM_MIN_BATCH || fc[j].last_only || !tb.ctx->gemm)
                    test_matvec(&fc[j]);
            tb.ctx->matvec_int_dot = !tb.ctx->matvec_int_dot;
        }
        test_other_loads(fc, sizeof fc / sizeof fc[0]);
        test_other_products(fc, sizeof fc / sizeof fc[0]);
    }

    test_matvec_big();
    test_many_workgroups();

    /* n, rows, batch, tokens, eps, layer_norm, bias, row_weights, in_place, offset */
    const struct norm_case nc[] = {
        {13, 1, 8, 5, 1e-5f, false, false, false, false, 0},
        {127, 1, 8, 8, 1e-6f, false, false, false, false, 0},
        {4099, 1, 16, 13, 1e-5f, false, false, false, false, 0},
        {4096, 1, 1, 1, 1e-5f, false, false, false, false, 0},
        /* per-head Q/K norms (qwen3, gemma3): shared weights, in place */
        {64, 5, 4, 3, 1e-6f, false, false, false, true, 0},
        {127, 3, 8, 5, 1e-5f, false, false, true, false, 0},
        /* LayerNorm: plain, with a bias, far from zero mean, in place */
        {13, 1, 8, 5, 1e-5f, true, false, false, false, 0},
        {4099, 1, 16, 13, 1e-5f, true, true, false, false, 1000.0f},
        {127, 1, 8, 6, 1e-5f, true, true, false, true, 30.0f},
        {4096, 1, 1, 1, 1e-5f, true, true, false, false, 1000.0f},
        /* stablelm's per-head LayerNorms of q and k: each head its own weights */
        {16, 6, 8, 5, 1e-5f, true, false, true, true, 30.0f},
        {96, 2, 4, 4, 1e-5f, true, false, true, false, 1000.0f},
    };
    for (size_t i = 0; i < sizeof nc / sizeof nc[0]; i++)
        test_norm(&nc[i]);

    test_rope(4, 64, 64, false, 10000.0f, 0, 1, 1);
    test_rope(5, 64, 64, false, 10000.0f, 37, 8, 7);
    test_rope(5, 128, 64, true, 500000.0f, 37, 8, 7);
    test_rope(3, 80, 32, false, 10000.0f, 1000, 16, 13);
    test_rope(7, 96, 96, true, 1e6f, 4095, 8, 5);
    test_rope(1, 6, 4, true, 10000.0f, 3, 4, 3);

    /* fused: decode and prompt steps, both rope kinds, partial n_rot,
     * frequency factors, GQA, every cache type pair, a ring that wraps, an
     * odd head size (F16 caches only: Q8_0 needs blocks of 32) */
    const uint32_t CF16 = VKLLM_CACHE_F16, CQ8 = VKLLM_CACHE_Q8_0;
    test_rope_kv_store(8, 2, 64, 64, false, false, CF16, CF16, 0, 1, 1, 16);
    test_rope_kv_store(8, 2, 64, 64, true, true, CQ8, CQ8, 37, 8, 7, 64);
    test_rope_kv_store(6, 3, 96, 32, true, false, CQ8, CF16, 90, 16, 13, 40);
    test_rope_kv_store(5, 5, 128, 64, false, true, CF16, CQ8, 5, 4, 3, 8);
    test_rope_kv_store(3, 1, 6, 4, true, false, CF16, CF16, 3, 4, 3, 7);
    test_rope_kv_store(4, 2, 32, 32, false, false, CQ8, CQ8, 1000, 1, 1, 1024);

    /* decode, a prompt's batch as matvec input and as GEMM floats, LayerNorm
     * with bias, in place, rows longer than a workgroup's threads' blocks,
     * several rows per token */
    test_norm_q8(256, 1, 1, 1, false, false, false, false);
    test_norm_q8(96, 1, 5, 3, false, false, true, false);
    test_norm_q8(4160, 1, 4, 4, false, false, false, true);
    test_norm_q8(288, 1, 16, 13, true, true, false, false);
    test_norm_q8(288, 1, 16, 13, false, false, false, true);
    test_norm_q8(64, 3, 8, 7, false, false, false, false);
    test_eltwise_q8(ELT_GLU_SILU, 5632, 1, 1, false);
    test_eltwise_q8(ELT_GLU_SILU, 96, 16, 13, false);
    test_eltwise_q8(ELT_GLU_GELU, 2048, 40, 33, false);
    test_eltwise_q8(ELT_GLU_SILU, 160, 6, 6, true);
    test_eltwise_q8(ELT_ADD, 64, 4, 2, false);

    const float r32 = 1.0f / sqrtf(32.0f), r128 = 1.0f / sqrtf(128.0f);
    /* heads, kv heads, head_dim, positions, last step, batch; window, ring;
     * q_scale, kq_scale (0: 1, 1/sqrt(hd)); softcap, ALiBi max bias */
    const struct attn_case ac[] = {
        {8, 2, 8, 1, 1, 1, 0, false, 0, 0, 0, 0},
        {8, 2, 64, 37, 5, 8, 0, false, 0, 0, 0, 0},
        {6, 3, 64, 37, 7, 8, 0, false, 0, 0, 0, 0},
        {8, 2, 128, 37, 5, 8, 0, false, 0, 0, 0, 0},
        {8, 2, 256, 37, 5, 8, 0, false, 0, 0, 0, 0},
        {4, 2, 96, 37, 5, 8, 0, false, 0, 0, 0,
         0}, /* head_dim neither dividing nor divided by WG */
        {6, 3, 256, 1, 1, 4, 0, false, 0, 0, 0, 0},
        {8, 2, 256, 600, 13, 16, 0, false, 0, 0, 0, 0},
        {6, 3, 64, 600, 13, 16, 0, false, 0, 0, 0, 0},
        {6, 3, 8, 37, 3, 4, 0, false, 0, 0, 0, 0},
        /* a sliding window over a full cache, then over rings that wrap
         * several times (steps of 4, and of 16 with a partial last step) */
        {8, 2, 64, 40, 5, 8, 7, false, 0, 0, 0, 0},
        {6, 3, 64, 53, 3, 4, 9, true, 0, 0, 0, 0},
        {4, 2, 128, 90, 13, 16, 20, true, 0, 0, 0, 0},
        /* gemma/phi3: q prescaled, scores not scaled */
        {8, 2, 128, 37, 5, 8, 0, false, r128, 1.0f, 0, 0},
        /* gemma2: soft-capped scores, then with a window over a ring */
        {8, 4, 32, 37, 5, 8, 0, false, r32, 1.0f, 2.0f, 0},
        {8, 4, 32, 41, 3, 4, 6, true, r32, 1.0f, 3.0f, 0},
        /* bloom: ALiBi over 12 heads (8 with slopes from m0, 4 from m1) and 6 */
        {12, 12, 16, 45, 5, 8, 0, false, 0, 0, 0, 8.0f},
        {6, 6, 32, 37, 7, 8, 0, false, 0, 0, 0, 8.0f},
        /* tiles of queries (ops.c): groups of 3 heads (5 tokens a tile), of
         * 20 (a full and a partial head tile), of 32 with one KV head; one
         * token in the last step; ALiBi over 16-token tiles; a soft-cap and a
         * window over a ring with steps of 16 */
        {6, 2, 64, 37, 7, 16, 0, false, 0, 0, 0, 0},
        {20, 1, 8, 29, 5, 8, 0, false, 0, 0, 0, 0},
        {32, 1, 16, 37, 5, 8, 0, false, 0, 0, 0, 0},
        {8, 2, 64, 37, 1, 8, 0, false, 0, 0, 0, 0},
        {6, 3, 8, 37, 3, 8, 0, false, 0, 0, 0, 0},
        {12, 12, 16, 45, 13, 16, 0, false, 0, 0, 0, 8.0f},
        {8, 4, 32, 77, 3, 16, 6, true, r32, 1.0f, 3.0f, 0},
        {4, 2, 256, 70, 11, 16, 9, true, 0, 0, 0, 0},
        /* a lane per query, several queries per lane on a CPU device: the
         * small test model's shape (64-token tiles at head_dim 32) over a
         * batch of two tiles, the second partial; a head_dim that is not a
         * multiple of 8 (the untiled kernel at any batch) */
        {8, 8, 32, 150, 70, 80, 0, false, 0, 0, 0, 0},
        {4, 2, 12, 37, 5, 8, 0, false, 0, 0, 0, 0},
        /* decode split over positions (attention_decode.comp): 9 chunks' worth
         * clamped to 8; a window over a ring that wraps inside chunks, grouped
         * heads; ALiBi and a soft-cap over several chunks; one chunk of many
         * positions at head_dim 256 */
        {8, 8, 32, 700, 1, 4, 0, false, 0, 0, 0, 0},
        {8, 2, 32, 900, 1, 4, 300, true, 0, 0, 0, 0},
        {8, 8, 16, 500, 3, 4, 0, false, 0, 0, 0, 8.0f},
        {8, 4, 32, 400, 1, 4, 0, false, r32, 1.0f, 2.0f, 0},
        {4, 2, 256, 530, 1, 2, 0, false, 0, 0, 0, 0},
        /* a KV head's queries in one workgroup: groups of 8 at head_dim 64
         * (TinyLlama's), of 6 with ALiBi, of 3 at 128 */
        {16, 2, 64, 600, 1, 4, 0, false, 0, 0, 0, 0},
        {12, 2, 32, 500, 3, 4, 0, false, 0, 0, 0, 8.0f},
        {6, 2, 128, 450, 1, 3, 0, false, 0, 0, 0, 0},
    };
    /* each case through the kernel its batch gets, and those of 8 tokens or
     * more again a query at a time (as VKLLM_FORCE=no-tiled-attention), split
     * over positions and not (as no-split-attention), the split with the
     * heads of a KV head in one workgroup and one a workgroup (as
     * no-grouped-attention), whichever the device chose; the first tiled
     * case and those at head_dim 64 with the cache read the other way too,
     * texels or storage buffers (as no-texel-loads) */
    const bool tiled = tb.ctx->attention_tiled;
    const uint32_t splits = tb.ctx->attention_splits, split_heads = tb.ctx->attention_split_heads;
    for (size_t i = 0; i < sizeof ac / sizeof ac[0]; i++) {
        const bool by_tiles = tiled && ac[i].batch >= ATTENTION_TILED_MIN_BATCH;
        test_attention(&ac[i], 0, 0);
        if (by_tiles && (i == 0 || ac[i].hd == 64) && tb.ctx->dev.info.max_texel_buffer_elements) {
            tb.ctx->texel_loads = !tb.ctx->texel_loads;
            test_attention(&ac[i], 0, 0);
            tb.ctx->texel_loads = !tb.ctx->texel_loads;
        }
        tb.ctx->attention_tiled = false;
        if (by_tiles) test_attention(&ac[i], 0, 0);
        if (splits && ac[i].hd % 8 == 0 && ac[i].hd >= 2 * splits) {
            tb.ctx->attention_split_heads = split_heads > 1 ? 1 : UINT32_MAX; /* as many as fit */
            test_attention(&ac[i], 0, 0);
            tb.ctx->attention_split_heads = split_heads;
            tb.ctx->attention_splits = 0;
            test_attention(&ac[i], 0, 0);
            tb.ctx->attention_splits = splits;
        }
        tb.ctx->attention_tiled = tiled;
    }

    /* every element-wise op; GELU over every half input (38k values) */
    test_eltwise(ELT_ADD, 13, 8, 5, 0.0f, false);
    test_eltwise(ELT_ADD, 4099, 4, 3, 0.0f, false);
    test_eltwise(ELT_ADD_BIAS, 13, 8, 5, 0.0f, false);
    test_eltwise(ELT_ADD_BIAS, 4099, 4, 3, 0.0f, false);
    test_eltwise(ELT_ADD_BIAS, 301, 8, 5, 0.0f, true);
    test_eltwise(ELT_SCALE, 13, 8, 5, 8.0f, false);
    test_eltwise(ELT_SCALE, 4099, 4, 3, 0.37f, false);
    test_eltwise(ELT_GELU, 12800, 4, 3, 0.0f, false);
    test_eltwise(ELT_GELU, 13, 8, 5, 0.0f, false);
    test_eltwise(ELT_GLU_GELU, 12800, 4, 3, 0.0f, false);
    test_eltwise(ELT_SOFTCAP, 13, 8, 5, 30.0f, false);
    test_eltwise(ELT_SOFTCAP, 4099, 4, 3, 50.0f, false);
    test_eltwise(ELT_SOFTCAP, 301, 8, 5, 15.0f, true);
    test_eltwise(ELT_GLU_SILU, 301, 8, 5, 0.0f, true);
    /* steps of more than ELTWISE_ROWS tokens: each thread loops over several
     * elements, and the rows the step leaves out of the graph's batch stay */
    test_eltwise(ELT_ADD, 13, 512, 100, 0.0f, false);
    test_eltwise(ELT_ADD_BIAS, 301, 40, 37, 0.0f, false);
    test_eltwise(ELT_GLU_SILU, 4099, 64, 17, 0.0f, false);
    test_swiglu(13, 8, 5);
    test_swiglu(127, 1, 1);
    test_swiglu(11008 + 3, 16, 13);

done:
    gpu_graph_destroy(&tb.graph);
    gpu_uploader_destroy(&tb.up);
    uint32_t messages = vkllm_context_validation_errors(tb.ctx);
    CHECK(messages == 0, "%u validation messages", messages);
    vkllm_context_destroy(tb.ctx);
    printf("total %.1f s\n", now_s() - t_start);
    return TEST_REPORT();
}
