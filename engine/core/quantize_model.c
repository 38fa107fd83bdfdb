/* quantize_model.c: vkllm_quantize, the model converter. It writes the file
 * llama.cpp's llama-quantize writes (without an importance matrix), and is
 * ordered as llama-quant.cpp's llama_model_quantize_impl:
 *
 *   tensor types  which format each tensor gets (quant_mix.c: the mix rules
 *                 of llama_tensor_get_type, and the fallback when a row is
 *                 not a whole number of blocks)
 *   conversion    rows split among threads, each dequantizing its rows to
 *                 floats and quantizing them (quantize.c, bit-exact with ggml)
 *   the file      key/values copied in order, general.quantization_version and
 *                 general.file_type set again (so last, as gguf_set_val moves
 *                 them), tensors in the order llama.cpp's loader sorts them,
 *                 written to a temporary file that is renamed at the end
 */
#include "atomic_file.h"
#include "error.h"
#include "shown.h"
#include "quant.h"
#include "row_pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_LEN 64 /* ggml's GGML_MAX_NAME, NUL included */

/* ============================== The model ============================== */

/* One tensor of the input, in output order, with the format it gets. */
struct qtensor {
    char name[NAME_MAX_LEN];
    const struct vkllm_gguf_tensor *t;
    uint32_t n_dims; /* ggml's: trailing 1s dropped */
    uint32_t to_type;
    long sort_layer;
    bool quantized; /* TYPE (or the mix) asked for a block format */
    bool fell_back; /* ... that its rows cannot take: TO_TYPE is another */
};

/* llama.cpp's loader keeps tensors in a map ordered by layer ("blk.N." read
 * with sscanf, -1 for the others) and then by name; llama-quantize writes them
 * in that order. */
static int loader_order(const void *pa, const void *pb)
{
    const struct qtensor *a = pa, *b = pb;
    if (a->sort_layer != b->sort_layer) return a->sort_layer < b->sort_layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

static long sort_layer(const char *name)
{
    int l = -1;
    return sscanf(name, "blk.%d.", &l) >= 1 ? l : -1;
}

/* An unsigned hyperparameter ARCH.SUFFIX (the first element if it is a
 * per-layer array), or DEF if absent. */
static int hparam(const vkllm_gguf *g, const char *arch, const char *suffix, uint64_t def,
                  uint64_t *out, struct vkllm_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
    *out = def;
    if (kv && kv->type == VKLLM_GGUF_ARRAY) {
        const bool integer = kv->arr_type <= VKLLM_GGUF_INT32 ||
                             kv->arr_type == VKLLM_GGUF_UINT64 || kv->arr_type == VKLLM_GGUF_INT64;
        if (kv->arr_len && integer) *out = (uint64_t)vkllm_gguf_arr_int(kv, 0);
        return VKLLM_OK;
    }
    int rc = vkllm_gguf_get_uint(g, key, out, err);
    return rc == VKLLM_E_NOT_FOUND ? VKLLM_OK : rc;
}

/* The format of each tensor of the file G, in output order. */
static int choose_types(const char *type, bool pure, const vkllm_gguf *g, struct qtensor *ts,
                        uint64_t n, struct vkllm_error *err)
{
    struct vkllm_gguf_str s;
    char arch[64] = "";
    int rc = vkllm_gguf_get_str(g, "general.architecture", &s, err);
    if (rc && rc != VKLLM_E_NOT_FOUND) return rc;
    if (!rc) snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    struct quant_mix_model model = {.name = vkllm_gguf_name(g), .arch = arch};
    if ((rc = hparam(g, arch, "block_count", 0, &model.n_layer, err)) ||
        (rc = hparam(g, arch, "attention.head_count", 0, &model.n_head, err)) ||
        (rc = hparam(g, arch, "attention.head_count_kv", model.n_head, &model.n_head_kv, err)) ||
        (rc = hparam(g, arch, "expert_count", 0, &model.n_expert, err)))
        return rc;
    struct quant_mix_tensor *mt = calloc(n ? n : 1, sizeof *mt);
    if (!mt) return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", model.name);
    for (uint64_t i = 0; i < n; i++)
        mt[i] = (struct quant_mix_tensor){.name = ts[i].name,
                                          .n_dims = ts[i].n_dims,
                                          .ne0 = ts[i].t->ne[0],
                                          .type = ts[i].t->type};
    rc = quant_mix_types(type, pure, &model, mt, n, err);
    for (uint64_t i = 0; !rc && i < n; i++) {
        ts[i].to_type = mt[i].type;
        ts[i].quantized = mt[i].quantized;
        ts[i].fell_back = mt[i].fell_back;
    }
    free(mt);
    return rc;
}

/* ============================== Conversion ==============================
 * A tensor's rows are cut into chunks of at least 16384 elements (as
 * llama.cpp does) that the threads take in turn; each dequantizes its chunk to
 * floats and quantizes it into the output. Every row is independent, so the
 * bytes do not depend on the number of threads. */

/* What ggml_validate_row_data checks, and llama-quantize with it: no NaN or
 * inf in a converted tensor, whether a value (F32, F16, BF16) or a block's
 * half-float scale (at these byte offsets). Only a model with NaN or inf, or
 * values beyond the half range, fails it. */
static const struct {
    uint32_t type;
    uint8_t n, at[2];
} block_halves[] = {
    {VKLLM_TYPE_Q4_0, 1, {0}},    {VKLLM_TYPE_Q4_1, 2, {0, 2}}, {VKLLM_TYPE_Q5_0, 1, {0}},
    {VKLLM_TYPE_Q5_1, 2, {0, 2}}, {VKLLM_TYPE_Q8_0, 1, {0}},    {VKLLM_TYPE_Q2_K, 2, {80, 82}},
    {VKLLM_TYPE_Q3_K, 1, {108}},  {VKLLM_TYPE_Q4_K, 2, {0, 2}}, {VKLLM_TYPE_Q5_K, 2, {0, 2}},
    {VKLLM_TYPE_Q6_K, 1, {208}},  {VKLLM_TYPE_IQ4_NL, 1, {0}},  {VKLLM_TYPE_IQ4_XS, 1, {0}},
};

static bool half_finite(const uint8_t *p)
{
    return ((p[0] | p[1] << 8) & 0x7c00) != 0x7c00;
}

bool quant_bytes_finite(uint32_t type, const void *bytes, uint64_t nbytes)
{
    const uint8_t *p = bytes;
    if (type == VKLLM_TYPE_F32) {
        for (uint64_t i = 0; i < nbytes; i += 4)
            if ((p[i + 3] & 0x7f) == 0x7f && (p[i + 2] & 0x80)) return false;
    } else if (type == VKLLM_TYPE_F16) {
        for (uint64_t i = 0; i < nbytes; i += 2)
            if (!half_finite(p + i)) return false;
    } else if (type == VKLLM_TYPE_BF16) {
        for (uint64_t i = 0; i < nbytes; i += 2)
            if (((p[i] | p[i + 1] << 8) & 0x7f80) == 0x7f80) return false;
    } else {
        for (size_t k = 0; k < sizeof block_halves / sizeof block_halves[0]; k++) {
            if (block_halves[k].type != type) continue;
            const uint32_t bb = vkllm_type_info(type)->block_bytes;
            for (uint64_t b = 0; b < nbytes; b += bb)
                for (int h = 0; h < block_halves[k].n; h++)
                    if (!half_finite(p + b + block_halves[k].at[h])) return false;
        }
    }
    return true;
}

/* A tensor's conversion: what a chunk of rows needs. */
struct job {
    struct run *run; /* for the progress */
    const vkllm_gguf *in;
    const struct qtensor *q;
    const struct quant_format *from, *to;
    uint64_t n_per_row;
    uint64_t in_row_bytes, out_row_bytes;
    size_t floats_at; /* where the floats start in a thread's scratch, after the bytes read */
    uint8_t *out;
};

bool quant_quantize_checked(uint32_t type, const float *src, void *dst, uint64_t n)
{
    /* a NaN input can still give finite block scales (ggml's maximum skips
     * it), and llama-quantize then writes garbage quietly: refuse it here */
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(src[i])) return false;
    quant_quantize_row(type, src, dst, n);
    return quant_bytes_finite(type, dst, quant_row_bytes(type, n));
}

/* Converts COUNT rows from FIRST (a row_pool job), reading them into the
 * start of SCRATCH and dequantizing them after. */
static int job_convert(void *user, void *scratch, uint64_t first, uint64_t count,
                       struct vkllm_error *err)
{
    const struct job *j = user;
    const uint64_t n = count * j->n_per_row;
    uint8_t *raw = scratch, *out = j->out + first * j->out_row_bytes;
    float *f = (float *)(raw + j->floats_at);
    int rc =
        vkllm_gguf_read(j->in, j->q->t, first * j->in_row_bytes, raw, count * j->in_row_bytes, err);
    if (rc) return rc;
    j->from->dequantize(raw, f, n / j->from->block_size);
    if (!quant_quantize_checked(j->to->type, f, out, n))
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: tensor %s has NaN or inf values, or values too large for %s (a "
                          "half float overflows); llama-quantize refuses it too",
                          vkllm_gguf_name(j->in), j->q->name, j->to->name);
    return VKLLM_OK;
}

/* The state of one vkllm_quantize call, shared with the fill callbacks. */
struct run {
    const struct vkllm_quantize_params *params;
    const vkllm_gguf *in;
    const char *out_path;
    struct qtensor *ts;
    uint64_t n_tensors, i_tensor;
    uint64_t elems_total, elems_done;
    uint64_t n_quantized, n_fallback, fallback_types; /* as in the progress struct */
    int n_threads;
    bool stopped; /* the progress callback said to stop while the writer worked */
};

/* Reports progress on tensor Q (of r->ts); false if the caller asked to stop. */
static bool report(struct run *r, const struct qtensor *q, uint64_t elems)
{
    if (!r->params->progress) return true;
    struct vkllm_quantize_progress p = {
        .tensor = (uint64_t)(q - r->ts), /* not i_tensor: past the last while the end is written */
        .n_tensors = r->n_tensors,
        .name = q->name,
        .from_type = q->t->type,
        .to_type = q->to_type,
        .fraction = r->elems_total ? (float)((double)(r->elems_done + elems) / r->elems_total) : 1,
        .n_quantized = r->n_quantized,
        .n_fallback = r->n_fallback,
        .fallback_types = r->fallback_types,
    };
    return r->params->progress(&p, r->params->user);
}

static uint64_t tensor_elems(const struct vkllm_gguf_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Rows of ne[0] elements (the experts of a 3-D tensor one after another). */
static uint64_t tensor_rows(const struct vkllm_gguf_tensor *t)
{
    return t->ne[0] ? tensor_elems(t) / t->ne[0] : 0;
}

/* The row pool's question after each chunk of the calling thread. */
static bool tensor_goes_on(void *user, uint64_t rows_done)
{
    const struct job *j = user;
    return report(j->run, j->q, rows_done * j->n_per_row);
}

/* The failure of a run the progress callback stopped. */
static int stop_error(struct vkllm_error *err, const char *out_path)
{
    return vkllm_fail(err, VKLLM_E_IO, "%s: stopped; nothing was written", out_path);
}

/* Converts tensor R->i_tensor into BUF (the writer's fill callback): the
 * calling thread works too, and reports progress after each of its chunks. */
static int fill_tensor(void *user, void *buf, struct vkllm_error *err)
{
    struct run *r = user;
    const struct qtensor *q = &r->ts[r->i_tensor];
    const uint64_t nel = tensor_elems(q->t);
    if (!report(r, q, 0)) return stop_error(err, r->out_path);

    if (q->to_type == q->t->type) {
        int rc = vkllm_gguf_read(r->in, q->t, 0, buf, q->t->size, err);
        if (rc) return rc;
        /* a NaN in a copied norm makes every logit NaN: the output would not run */
        if (!quant_bytes_finite(q->t->type, buf, q->t->size))
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tensor %s has NaN or inf values",
                              vkllm_gguf_name(r->in), q->name);
    } else {
        struct job j = {
            .run = r,
            .in = r->in,
            .q = q,
            .from = quant_format(q->t->type),
            .to = quant_format(q->to_type),
            .n_per_row = q->t->ne[0],
            .in_row_bytes = quant_row_bytes(q->t->type, q->t->ne[0]),
            .out_row_bytes = quant_row_bytes(q->to_type, q->t->ne[0]),
            .out = buf,
        };
        const uint64_t min_chunk = 32 * 512;
        const uint64_t chunk =
            j.n_per_row >= min_chunk ? 1 : (min_chunk + j.n_per_row - 1) / j.n_per_row;
        j.floats_at = (chunk * j.in_row_bytes + 63) & ~(size_t)63;
        const struct row_pool pool = {
            .n_rows = tensor_rows(q->t),
            .chunk = chunk,
            .n_threads = r->n_threads,
            .scratch_bytes = j.floats_at + chunk * j.n_per_row * sizeof(float),
            .work = job_convert,
            .goes_on = tensor_goes_on,
            .user = &j,
        };
        bool stopped;
        int rc = row_pool_run(&pool, &stopped, err);
        if (rc == VKLLM_E_NOMEM)
            return vkllm_fail(err, rc, "%s: out of memory converting %s", r->out_path, q->name);
        if (rc) return rc;
        if (stopped) return stop_error(err, r->out_path);
    }
    r->elems_done += nel;
    r->i_tensor++;
    return VKLLM_OK;
}

/* ============================== The file ============================== */

/* Asks the progress callback, every few thousand items of a setup loop,
 * whether to go on: a file of a million tensors or keys takes seconds to
 * prepare, and a signal must not wait for the first tensor. The callback
 * sees the first tensor about to start. */
static bool setup_goes_on(struct run *r, uint64_t i)
{
    return i % 4096 || !r->n_tensors || report(r, &r->ts[0], 0);
}

/* The writer's stop function: a key of millions of strings takes seconds to
 * copy and write. The callback sees the tensor at hand (the last one while
 * the file's end is written). */
static bool writer_goes_on(void *user)
{
    struct run *r = user;
    if (!r->n_tensors) return true;
    const uint64_t i = r->i_tensor < r->n_tensors ? r->i_tensor : r->n_tensors - 1;
    r->stopped = !report(r, &r->ts[i], 0);
    return !r->stopped;
}

static bool key_is(const struct vkllm_gguf_kv *kv, const char *key)
{
    return kv->key.len == strlen(key) && !memcmp(kv->key.ptr, key, kv->key.len);
}

/* The writer names the temporary file in its messages; the user knows OUT. */
static void rename_in_message(struct vkllm_error *err, const char *tmp, const char *out)
{
    size_t n = strlen(tmp);
    if (!err || strncmp(err->msg, tmp, n)) return;
    char rest[sizeof err->msg];
    snprintf(rest, sizeof rest, "%s", err->msg + n);
    snprintf(err->msg, sizeof err->msg, "%s%s", out, rest);
}

/* Checks every tensor and puts them in llama.cpp's order. */
static int collect_tensors(const vkllm_gguf *in, struct qtensor *ts, uint64_t n,
                           struct vkllm_error *err)
{
    const char *path = vkllm_gguf_name(in);
    for (uint64_t i = 0; i < n; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(in, i);
        struct qtensor *q = &ts[i];
        if (t->name.len >= NAME_MAX_LEN || memchr(t->name.ptr, 0, t->name.len)) {
            char name[SHOWN_MAX];
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tensor name '%s' %s", path,
                              shown(name, t->name.ptr, t->name.len),
                              t->name.len >= NAME_MAX_LEN ? "is too long" : "holds a NUL byte");
        }
        memcpy(q->name, t->name.ptr, t->name.len);
        q->name[t->name.len] = 0;
        /* a tensor of no elements: ggml's n_dims would drop its 0 and write a
         * shape whose data is missing */
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (t->ne[d] == 0)
                return vkllm_fail(err, VKLLM_E_FORMAT,
                                  "%s: tensor %s has a dimension of 0 (dimension %u of %u)", path,
                                  q->name, d + 1, t->n_dims);
        q->t = t;
        q->n_dims = 1;
        for (uint32_t d = 0; d < 4; d++)
            if (t->ne[d] > 1) q->n_dims = d + 1;
        q->sort_layer = sort_layer(q->name);
        if (vkllm_type_info(t->type)->block_size > 1)
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: tensor %s is already quantized (%s); quantize needs an F32, F16 "
                              "or BF16 model",
                              path, q->name, vkllm_type_info(t->type)->name);
    }
    qsort(ts, n, sizeof *ts, loader_order);
    return VKLLM_OK;
}

int vkllm_quantize(const char *in_path, const char *out_path,
                   const struct vkllm_quantize_params *params, struct vkllm_error *err)
{
    if (!in_path || !out_path || !params) return vkllm_fail(err, VKLLM_E_INVALID, "no file given");
    if (quant_mix_file_type(params->type) < 0) {
        char list[400] = "";
        const char *name;
        for (int i = 0; (name = vkllm_quantize_type_name(i, NULL)); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", name);
        return vkllm_fail(err, VKLLM_E_INVALID, "%s: unknown type; choose one of %s",
                          params->type ? params->type : "(none)", list);
    }

    vkllm_gguf *in = NULL;
    vkllm_gguf_writer *w = NULL;
    struct qtensor *ts = NULL;
    char *tmp = NULL;
    int rc = vkllm_gguf_open(in_path, &in, err);
    if (rc) return rc;

    const uint64_t n = vkllm_gguf_tensor_count(in);
    ts = calloc(n ? n : 1, sizeof *ts);
    if (!ts) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", in_path);
        goto fail_close;
    }
    if ((rc = collect_tensors(in, ts, n, err)) ||
        (rc = choose_types(params->type, params->pure, in, ts, n, err)))
        goto fail_close;
    for (uint64_t i = 0; i < n; i++) {
        const uint32_t from = ts[i].t->type;
        if (ts[i].to_type != from && !quant_format(from)) {
            rc = vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                            "%s: tensor %s is %s, which cannot be converted", in_path, ts[i].name,
                            vkllm_type_info(from)->name);
            goto fail_close;
        }
    }

    /* the output is checked (and its temporary file made) before any work:
     * a read-only or unreachable target is refused at once */
    if ((rc = atomic_file_refuse_input(out_path, in_path, err)) ||
        (rc = atomic_file_create(out_path, &tmp, err)))
        goto fail_close;

    struct run r = {
        .params = params,
        .in = in,
        .out_path = out_path,
        .ts = ts,
        .n_tensors = n,
        .n_threads = row_pool_threads(params->n_threads),
    };
    for (uint64_t i = 0; i < n; i++) {
        r.elems_total += tensor_elems(ts[i].t);
        r.n_quantized += ts[i].quantized;
        r.n_fallback += ts[i].fell_back;
        if (ts[i].fell_back && ts[i].to_type < 64) r.fallback_types |= 1ull << ts[i].to_type;
    }

    /* key/values in order, less those llama-quantize sets again or removes */
    if ((rc = vkllm_gguf_writer_create(&w, err))) goto fail_close;
    vkllm_gguf_writer_set_stop(w, writer_goes_on, &r);
    static const char *const dropped[] = {"general.quantization_version", "general.file_type",
                                          "split.no", "split.count", "split.tensors.count"};
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(in); i++) {
        const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(in, i);
        if (!setup_goes_on(&r, i)) {
            rc = stop_error(err, out_path);
            goto fail_close;
        }
        bool drop = false;
        for (size_t k = 0; k < sizeof dropped / sizeof dropped[0]; k++)
            drop |= key_is(kv, dropped[k]);
        if (!drop && (rc = vkllm_gguf_writer_copy_kv(w, kv))) {
            if (r.stopped) {
                rc = stop_error(err, out_path);
                goto fail_close;
            }
            char key[SHOWN_MAX];
            rc = vkllm_fail(err, rc, "%s: cannot copy key '%s': %s", in_path,
                            shown(key, kv->key.ptr, kv->key.len),
                            vkllm_gguf_writer_copy_kv_why(kv, rc));
            goto fail_close;
        }
    }
    if ((rc = vkllm_gguf_writer_set_uint32(w, "general.quantization_version", 2)) ||
        (rc = vkllm_gguf_writer_set_uint32(w, "general.file_type",
                                           (uint32_t)quant_mix_file_type(params->type)))) {
        rc = vkllm_fail(err, rc, "%s: out of memory", out_path);
        goto fail_close;
    }

    for (uint64_t i = 0; i < n; i++) {
        const struct qtensor *q = &ts[i];
        const uint64_t size = quant_row_bytes(q->to_type, q->t->ne[0]) * tensor_rows(q->t);
        if (!setup_goes_on(&r, i)) {
            rc = stop_error(err, out_path);
            goto fail_close;
        }
        if ((rc = vkllm_gguf_writer_add_tensor_fill(w, q->name, q->to_type, q->n_dims, q->t->ne,
                                                    size, fill_tensor, &r))) {
            rc = vkllm_fail(err, rc, "%s: cannot add tensor %s to the output: %s", in_path, q->name,
                            vkllm_strerror(rc));
            goto fail_close;
        }
    }

    if ((rc = vkllm_gguf_writer_write(w, tmp, err))) {
        if (r.stopped)
            rc = stop_error(err, out_path);
        else
            rename_in_message(err, tmp, out_path);
        goto fail_close;
    }
    rc = atomic_file_commit(tmp, out_path, err);
    tmp = NULL; /* committed or removed, and freed */
fail_close:
    atomic_file_abort(tmp);
    vkllm_gguf_writer_destroy(w);
    free(ts);
    vkllm_gguf_close(in);
    return rc;
}
