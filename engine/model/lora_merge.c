/* lora_merge.c: merging LoRA adapters into a new model file, as llama.cpp's
 * llama-export-lora does: each adapted matrix W becomes W + sum_i s_i B_i A_i
 * (s_i = scale_i * alpha_i / rank_i, the run-time factor), computed on the
 * CPU in F32; every other tensor and every key is copied unchanged. Adapters
 * are checked against the base exactly as vkllm_adapter_load checks them
 * (lora_bind), so a file that merges also runs and the other way round.
 *
 * One difference from llama-export-lora: a merged matrix keeps W's own type
 * (a quantized W is re-quantized with the reference quantizers), where
 * llama.cpp writes F16 for every merged matrix that is not F32 (and marks the
 * file F16): the merged file keeps the base's size and general.file_type.
 * Re-quantizing adds a second rounding (for Q4_0 about what the first one
 * cost, tests/test_export_lora.sh); params->merged_f16 writes F16 instead, as
 * llama.cpp does, and keeps the file's general.file_type. */
#include "error.h"
#include "atomic_file.h"
#include "lora.h"
#include "quant.h"
#include "row_pool.h"
#include "shown.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One adapter's pair for a file matrix, as F32. */
struct merge_pair {
    float *a, *b; /* as the file lays them out: A rows of a->ne[0], B rows of rank */
    uint32_t rank;
    float s; /* the run-time factor */
};

/* A tensor of the output: a copy, or W with pairs added. */
struct merge_tensor {
    tensor_ref t;
    char *name;
    bool embd;        /* token_embd: A and B flipped, as llama.cpp's inp_embd */
    uint32_t to_type; /* what it is written as: t's type, or F16 (params->merged_f16) */
    uint64_t to_size;
    uint32_t n_pairs; /* adapters that change it; 0: copied as it is */
};

struct merge_run {
    const vkllm_gguf *base;
    vkllm_gguf **ads;
    struct lora_binding *binds;
    uint32_t n_ads;
    const struct vkllm_export_lora_params *params;
    struct merge_tensor *ts;
    uint64_t n_tensors, i_tensor;
    int n_threads;
    bool stopped;
};

static void merge_pair_free(struct merge_pair *p)
{
    free(p->a);
    free(p->b);
    memset(p, 0, sizeof *p);
}

/* Reads tensor T of G (F32, F16 or Q8_0, checked by lora_bind) as floats. */
static int read_floats(const vkllm_gguf *g, tensor_ref t, float **out, struct vkllm_error *err)
{
    const uint64_t n = t->ne[0] * t->ne[1];
    float *f = malloc(n * sizeof *f);
    void *raw = malloc(t->size ? t->size : 1);
    int rc = f && raw ? VKLLM_OK : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    if (!rc) rc = vkllm_gguf_read(g, t, 0, raw, t->size, err);
    if (!rc) quant_dequantize_row(t->type, raw, f, n);
    free(raw);
    if (rc) {
        free(f);
        f = NULL;
    }
    *out = f;
    return rc;
}

/* ============================== One matrix ============================== */

/* Adds S * B A (or, for token_embd, S * A B^T) to the N rows of K floats of W
 * starting at row R0. */
static void add_delta(float *w, uint64_t r0, uint64_t rows, uint64_t k, const struct merge_pair *p,
                      bool embd)
{
    const uint32_t rank = p->rank;
    for (uint64_t r = 0; r < rows; r++) {
        float *row = w + r * k;
        if (embd) { /* delta[r][c] = sum_j A[r][j] B[c][j] */
            const float *ar = p->a + (r0 + r) * rank;
            for (uint64_t c = 0; c < k; c++) {
                const float *bc = p->b + c * rank;
                float d = 0.0f;
                for (uint32_t j = 0; j < rank; j++)
                    d += ar[j] * bc[j];
                row[c] += p->s * d;
            }
        } else { /* delta[r][c] = sum_j B[r][j] A[j][c] */
            const float *br = p->b + (r0 + r) * rank;
            for (uint32_t j = 0; j < rank; j++) {
                const float f = p->s * br[j];
                const float *aj = p->a + (uint64_t)j * k;
                for (uint64_t c = 0; c < k; c++)
                    row[c] += f * aj[c];
            }
        }
    }
}

/* Reports tensor I at hand; false if the caller asked to stop. */
static bool report(struct merge_run *r, uint64_t i)
{
    const struct merge_tensor *mt = &r->ts[i];
    const struct vkllm_export_lora_params *p = r->params;
    if (!p->progress) return true;
    const struct vkllm_export_lora_progress pr = {
        .tensor = i,
        .n_tensors = r->n_tensors,
        .name = mt->name,
        .merged = mt->n_pairs > 0,
    };
    r->stopped = !p->progress(&pr, p->user);
    return !r->stopped;
}

/* A matrix's rows are cut into chunks of at most 4 MiB of floats that the
 * threads take in turn (row_pool.h), as quantize does: each dequantizes its
 * rows, adds every pair's delta and converts them to the output type. */
struct merge_job {
    struct merge_run *run; /* for the progress */
    const struct merge_tensor *mt;
    const uint8_t *src; /* W as read */
    uint8_t *dst;       /* the output (may be SRC: rows go back where they were) */
    const struct merge_pair *pairs;
    uint64_t k, row_bytes, to_row_bytes;
};

/* Merges ROWS rows from R0 through W, a chunk of rows of floats (a row_pool
 * job): VKLLM_E_FORMAT when a merged row has NaN or inf values (the caller
 * says which adapters gave them). */
static int job_merge(void *user, void *scratch, uint64_t r0, uint64_t rows, struct vkllm_error *err)
{
    const struct merge_job *j = user;
    float *w = scratch;
    const uint32_t type = j->mt->t->type, to_type = j->mt->to_type;
    const uint64_t k = j->k;
    for (uint64_t i = 0; i < rows; i++)
        quant_dequantize_row(type, j->src + (r0 + i) * j->row_bytes, w + i * k, k);
    for (uint32_t i = 0; i < j->mt->n_pairs; i++)
        add_delta(w, r0, rows, k, &j->pairs[i], j->mt->embd);
    /* a NaN in an adapter, or a scale that overflows the output type,
     * would give a file that cannot run: refused as quantize refuses it */
    for (uint64_t i = 0; i < rows; i++)
        if (!quant_quantize_checked(to_type, w + i * k, j->dst + (r0 + i) * j->to_row_bytes, k))
            return vkllm_fail(err, VKLLM_E_FORMAT, "NaN or inf values");
    return VKLLM_OK;
}

/* The row pool's question after each chunk of the calling thread. */
static bool merge_goes_on(void *user, uint64_t rows_done)
{
    (void)rows_done;
    struct merge_run *r = ((const struct merge_job *)user)->run;
    return report(r, r->i_tensor);
}

/* Merges MT's pairs into its rows at SRC, written to DST: VKLLM_E_FORMAT when
 * a merged row has NaN or inf values, VKLLM_E_IO when the caller stopped it. */
static int merge_rows(struct merge_run *r, const struct merge_tensor *mt,
                      const struct merge_pair *pairs, const uint8_t *src, uint8_t *dst,
                      struct vkllm_error *err)
{
    const uint64_t k = mt->t->ne[0], row_bytes = quant_row_bytes(mt->t->type, k);
    struct merge_job j = {
        .run = r,
        .mt = mt,
        .src = src,
        .dst = dst,
        .pairs = pairs,
        .k = k,
        .row_bytes = row_bytes,
        .to_row_bytes = quant_row_bytes(mt->to_type, k),
    };
    const uint64_t n_rows = mt->t->size / row_bytes;
    uint64_t chunk = (4u << 20) / (k * sizeof(float));
    /* and about 0.1 s of multiply-adds on one core, for a stop to come soon */
    uint64_t ranks = 0;
    for (uint32_t i = 0; i < mt->n_pairs; i++)
        ranks += pairs[i].rank;
    const uint64_t work_rows = (1ull << 27) / (k * (ranks ? ranks : 1));
    if (chunk > work_rows) chunk = work_rows;
    if (chunk > n_rows) chunk = n_rows;
    if (chunk < 1) chunk = 1;
    const struct row_pool pool = {
        .n_rows = n_rows,
        .chunk = chunk,
        .n_threads = r->n_threads,
        .scratch_bytes = chunk * k * sizeof(float),
        .work = job_merge,
        .goes_on = merge_goes_on,
        .user = &j,
    };
    bool stopped;
    int rc = row_pool_run(&pool, &stopped, err);
    return !rc && stopped ? vkllm_fail(err, VKLLM_E_IO, "stopped") : rc;
}

/* The writer's fill: the next tensor's bytes. */
static int fill_tensor(void *user, void *buf, struct vkllm_error *err)
{
    struct merge_run *r = user;
    const struct merge_tensor *mt = &r->ts[r->i_tensor];
    tensor_ref t = mt->t;
    if (!report(r, r->i_tensor)) return vkllm_fail(err, VKLLM_E_IO, "stopped");
    /* W's bytes are read where they go, unless they change type */
    uint8_t *src = mt->to_type == t->type ? buf : malloc(t->size);
    int rc = src ? vkllm_gguf_read(r->base, t, 0, src, t->size, err)
                 : vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    if (rc || !mt->n_pairs) goto done;

    struct merge_pair *pairs = calloc(mt->n_pairs, sizeof *pairs);
    if (!pairs) rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    /* one pair per adapter that adapts it, in the order given */
    uint32_t np = 0;
    char key[256 + 8], names[1024] = "";
    size_t used = 0;
    for (uint32_t ai = 0; ai < r->n_ads && pairs && !rc; ai++) {
        snprintf(key, sizeof key, "%s.lora_a", mt->name);
        tensor_ref a = vkllm_gguf_find_tensor(r->ads[ai], key);
        if (!a) continue;
        if (used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", np ? ", " : "",
                                     vkllm_gguf_name(r->ads[ai]));
        snprintf(key, sizeof key, "%s.lora_b", mt->name);
        tensor_ref b = vkllm_gguf_find_tensor(r->ads[ai], key);
        struct merge_pair *p = &pairs[np++];
        p->rank = (uint32_t)b->ne[0];
        p->s = lora_scale(r->params->adapters[ai].scale, r->binds[ai].alpha, p->rank);
        rc = read_floats(r->ads[ai], a, &p->a, err);
        if (!rc) rc = read_floats(r->ads[ai], b, &p->b, err);
    }
    if (!rc && (rc = merge_rows(r, mt, pairs, src, buf, err)) == VKLLM_E_FORMAT) {
        char why[96] = "";
        if (mt->to_type != VKLLM_TYPE_F32)
            snprintf(why, sizeof why, ", or values too large for %s (a half float overflows)",
                     quant_format(mt->to_type)->name);
        rc = vkllm_fail(err, VKLLM_E_FORMAT, "the adapter%s %s give%s NaN or inf values%s",
                        np == 1 ? "" : "s", names, np == 1 ? "s" : "", why);
    }
    if (pairs)
        for (uint32_t i = 0; i < mt->n_pairs; i++)
            merge_pair_free(&pairs[i]);
    free(pairs);
done:
    if (src != buf) free(src);
    if (rc && rc != VKLLM_E_IO) {
        char what[512];
        snprintf(what, sizeof what, "%s: merging %s", vkllm_gguf_name(r->base), mt->name);
        vkllm_error_prefix(err, what);
    }
    r->i_tensor++;
    return rc;
}

/* ============================== The file ============================== */

/* Which of the base's tensors the adapters change, and how many pairs each. */
static int plan(struct merge_run *r, const struct arch_model *am, struct vkllm_error *err)
{
    const char *path = vkllm_gguf_name(r->base);
    const struct tensor_slice *embd = arch_slice(am, 0, T_TOK_EMBD);
    for (uint64_t i = 0; i < r->n_tensors; i++) {
        struct merge_tensor *mt = &r->ts[i];
        mt->t = vkllm_gguf_tensor_at(r->base, i);
        if (!(mt->name = malloc(mt->t->name.len + 1)))
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        memcpy(mt->name, mt->t->name.ptr, mt->t->name.len);
        mt->name[mt->t->name.len] = '\0';
        if (strlen(mt->name) != mt->t->name.len) {
            char s[SHOWN_MAX];
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tensor name '%s' holds a NUL byte", path,
                              shown(s, mt->t->name.ptr, mt->t->name.len));
        }
        mt->embd = embd->t == mt->t;
        mt->to_type = mt->t->type;
        mt->to_size = mt->t->size;
        /* lora_bind refuses pairs of longer names */
        char key[256 + 8];
        snprintf(key, sizeof key, "%s.lora_a", mt->name);
        for (uint32_t a = 0; a < r->n_ads && mt->t->name.len < 256; a++)
            mt->n_pairs += vkllm_gguf_find_tensor(r->ads[a], key) != NULL;
        const struct quant_format *qf = quant_format(mt->t->type);
        if (mt->n_pairs && (!qf || !qf->quantize || mt->t->n_dims != 2))
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: %s is %s, which vkllm cannot quantize again after merging", path,
                              mt->name, qf ? qf->name : "of an unknown type");
        if (mt->n_pairs && r->params->merged_f16 && qf->block_size > 1) {
            mt->to_type = VKLLM_TYPE_F16;
            mt->to_size = quant_row_bytes(VKLLM_TYPE_F16, mt->t->ne[0]) *
                          (mt->t->size / quant_row_bytes(mt->t->type, mt->t->ne[0]));
        }
    }
    return VKLLM_OK;
}

/* The writer names the temporary file in its messages; the user knows OUT. */
static void rename_in_message(struct vkllm_error *err, const char *tmp, const char *out)
{
    const size_t n = strlen(tmp);
    if (!err || strncmp(err->msg, tmp, n)) return;
    char rest[sizeof err->msg];
    snprintf(rest, sizeof rest, "%s", err->msg + n);
    snprintf(err->msg, sizeof err->msg, "%s%s", out, rest);
}

static bool writer_goes_on(void *user)
{
    struct merge_run *r = user;
    if (!r->n_tensors) return true;
    /* the last tensor while the file's end is written */
    return report(r, r->i_tensor < r->n_tensors ? r->i_tensor : r->n_tensors - 1);
}

int vkllm_export_lora(const char *base_path, const char *out_path,
                      const struct vkllm_export_lora_params *params, struct vkllm_error *err)
{
    if (!base_path || !out_path || !params || (params->n_adapters && !params->adapters))
        return vkllm_fail(err, VKLLM_E_INVALID, "no file given");
    struct merge_run r = {.params = params,
                          .n_ads = params->n_adapters,
                          .n_threads = row_pool_threads(params->n_threads)};
    struct arch_model am = {0};
    vkllm_gguf *base = NULL;
    vkllm_gguf_writer *w = NULL;
    char *tmp = NULL;
    int rc = vkllm_gguf_open(base_path, &base, err);
    if (rc) return rc;
    r.base = base;
    if ((rc = arch_bind(base, &am, err))) goto done;

    r.ads = calloc(r.n_ads ? r.n_ads : 1, sizeof *r.ads);
    r.binds = calloc(r.n_ads ? r.n_ads : 1, sizeof *r.binds);
    r.n_tensors = vkllm_gguf_tensor_count(base);
    r.ts = calloc(r.n_tensors ? r.n_tensors : 1, sizeof *r.ts);
    if (!r.ads || !r.binds || !r.ts) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        goto done;
    }
    for (uint32_t i = 0; i < r.n_ads && !rc; i++) {
        if (!(params->adapters[i].scale > -1e30f && params->adapters[i].scale < 1e30f))
            rc = vkllm_fail(err, VKLLM_E_INVALID, "%s: the scale is not a finite number",
                            params->adapters[i].path);
        if (!rc) rc = vkllm_gguf_open(params->adapters[i].path, &r.ads[i], err);
        if (!rc) rc = lora_bind(&am, base, r.ads[i], &r.binds[i], err);
    }
    if (rc || (rc = plan(&r, &am, err))) goto done;

    /* the output is checked (and its temporary file made) before any work */
    if ((rc = atomic_file_refuse_input(out_path, base_path, err))) goto done;
    for (uint32_t i = 0; i < r.n_ads && !rc; i++)
        rc = atomic_file_refuse_input(out_path, params->adapters[i].path, err);
    if (rc || (rc = atomic_file_create(out_path, &tmp, err))) goto done;
    if ((rc = vkllm_gguf_writer_create(&w, err))) goto done;
    vkllm_gguf_writer_set_stop(w, writer_goes_on, &r);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(base) && !rc; i++) {
        const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(base, i);
        if ((rc = vkllm_gguf_writer_copy_kv(w, kv))) {
            char key[SHOWN_MAX];
            rc = r.stopped ? vkllm_fail(err, VKLLM_E_IO, "%s: stopped", out_path)
                           : vkllm_fail(err, rc, "%s: cannot copy key '%s': %s", base_path,
                                        shown(key, kv->key.ptr, kv->key.len),
                                        vkllm_gguf_writer_copy_kv_why(kv, rc));
        }
    }
    for (uint64_t i = 0; i < r.n_tensors && !rc; i++) {
        const struct merge_tensor *mt = &r.ts[i];
        if ((rc = vkllm_gguf_writer_add_tensor_fill(w, mt->name, mt->to_type, mt->t->n_dims,
                                                    mt->t->ne, mt->to_size, fill_tensor, &r)))
            rc = vkllm_fail(err, rc, "%s: cannot add tensor %s to the output: %s", base_path,
                            mt->name, vkllm_strerror(rc));
    }
    if (rc) goto done;
    if ((rc = vkllm_gguf_writer_write(w, tmp, err))) {
        if (r.stopped)
            rc = vkllm_fail(err, VKLLM_E_IO, "%s: stopped", out_path);
        else
            rename_in_message(err, tmp, out_path);
        goto done;
    }
    rc = atomic_file_commit(tmp, out_path, err);
    tmp = NULL; /* committed or removed, and freed */
done:
    atomic_file_abort(tmp);
    vkllm_gguf_writer_destroy(w);
    if (r.ts)
        for (uint64_t i = 0; i < r.n_tensors; i++)
            free(r.ts[i].name);
    free(r.ts);
    for (uint32_t i = 0; r.ads && i < r.n_ads; i++) {
        if (r.binds) lora_binding_free(&r.binds[i]);
        vkllm_gguf_close(r.ads[i]);
    }
    free(r.binds);
    free(r.ads);
    arch_model_free(&am);
    vkllm_gguf_close(base);
    return rc;
}
