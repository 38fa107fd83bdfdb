/* quantize_model.c: vkllm_quantize, the model converter. It writes the file
 * llama.cpp's llama-quantize writes (without an importance matrix), and is
 * ordered as llama-quant.cpp's llama_model_quantize_impl:
 *
 *   type names    TYPE -> llama.cpp's file type (LLAMA_FTYPE) and base format
 *   tensor types  which format each tensor gets: the mix rules of
 *                 llama_tensor_get_type for the llama architecture, and the
 *                 fallback when a row is not a whole number of blocks
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

/* ============================== Type names ==============================
 * llama-quantize's names (tools/quantize/quantize.cpp) for what vkllm runs,
 * with llama.cpp's LLAMA_FTYPE numbers (llama.h), which go into
 * general.file_type. A K-quant's plain name is its _M mix, as there. */
enum ftype {
    FT_ALL_F32 = 0,
    FT_F16 = 1,
    FT_Q4_0 = 2,
    FT_Q4_1 = 3,
    FT_Q8_0 = 7,
    FT_Q5_0 = 8,
    FT_Q5_1 = 9,
    FT_Q2_K = 10,
    FT_Q3_K_S = 11,
    FT_Q3_K_M = 12,
    FT_Q3_K_L = 13,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_S = 16,
    FT_Q5_K_M = 17,
    FT_Q6_K = 18,
    FT_IQ4_NL = 25,
    FT_IQ4_XS = 30,
    FT_BF16 = 32,
};

static const struct qtype {
    const char *name;
    enum ftype ftype;
    uint32_t type; /* the default format (llama_ftype_get_default_type) */
    const char *what;
} qtypes[] = {
    {"F32", FT_ALL_F32, VKLLM_TYPE_F32, "32-bit floats"},
    {"F16", FT_F16, VKLLM_TYPE_F16, "16-bit floats"},
    {"BF16", FT_BF16, VKLLM_TYPE_BF16, "bfloat16"},
    {"Q8_0", FT_Q8_0, VKLLM_TYPE_Q8_0, "8.5 bits per weight"},
    {"Q6_K", FT_Q6_K, VKLLM_TYPE_Q6_K, "6.56 bpw"},
    {"Q5_0", FT_Q5_0, VKLLM_TYPE_Q5_0, "5.5 bpw"},
    {"Q5_1", FT_Q5_1, VKLLM_TYPE_Q5_1, "6 bpw"},
    {"Q5_K", FT_Q5_K_M, VKLLM_TYPE_Q5_K, "the same as Q5_K_M"},
    {"Q5_K_S", FT_Q5_K_S, VKLLM_TYPE_Q5_K, "Q5_K mix, small"},
    {"Q5_K_M", FT_Q5_K_M, VKLLM_TYPE_Q5_K, "Q5_K mix, some Q6_K"},
    {"Q4_0", FT_Q4_0, VKLLM_TYPE_Q4_0, "4.5 bpw"},
    {"Q4_1", FT_Q4_1, VKLLM_TYPE_Q4_1, "5 bpw"},
    {"Q4_K", FT_Q4_K_M, VKLLM_TYPE_Q4_K, "the same as Q4_K_M"},
    {"Q4_K_S", FT_Q4_K_S, VKLLM_TYPE_Q4_K, "Q4_K mix, small"},
    {"Q4_K_M", FT_Q4_K_M, VKLLM_TYPE_Q4_K, "Q4_K mix, some Q6_K"},
    {"IQ4_NL", FT_IQ4_NL, VKLLM_TYPE_IQ4_NL, "4.5 bpw non-linear"},
    {"IQ4_XS", FT_IQ4_XS, VKLLM_TYPE_IQ4_XS, "4.25 bpw non-linear"},
    {"Q3_K", FT_Q3_K_M, VKLLM_TYPE_Q3_K, "the same as Q3_K_M"},
    {"Q3_K_S", FT_Q3_K_S, VKLLM_TYPE_Q3_K, "Q3_K mix, small"},
    {"Q3_K_M", FT_Q3_K_M, VKLLM_TYPE_Q3_K, "Q3_K mix, some Q4_K and Q5_K"},
    {"Q3_K_L", FT_Q3_K_L, VKLLM_TYPE_Q3_K, "Q3_K mix, more Q5_K"},
    {"Q2_K", FT_Q2_K, VKLLM_TYPE_Q2_K, "Q2_K mix, some Q3_K and Q4_K"},
};
#define N_QTYPES (sizeof qtypes / sizeof qtypes[0])

const char *vkllm_quantize_type_name(int i, const char **what)
{
    if (i < 0 || (size_t)i >= N_QTYPES) return NULL;
    if (what) *what = qtypes[i].what;
    return qtypes[i].name;
}

static const struct qtype *qtype_find(const char *name)
{
    for (size_t i = 0; name && i < N_QTYPES; i++)
        if (!strcasecmp(qtypes[i].name, name)) return &qtypes[i];
    return NULL;
}

static bool is_quantized(uint32_t type)
{
    const struct vkllm_type_info *ti = vkllm_type_info(type);
    return ti && ti->block_size > 1;
}

/* ============================== Tensor types ==============================
 * llama_tensor_get_type and its helpers (llama-quant.cpp), for what a file
 * without an importance matrix and without overrides can reach. */

enum category {
    CAT_TOKEN_EMBD,
    CAT_ATTN_Q,
    CAT_ATTN_V, /* and attn_qkv, attn_kv_b: the V-like tensors */
    CAT_ATTN_K,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
    CAT_OUTPUT,
    CAT_OTHER,
};

static bool has(const char *s, const char *part)
{
    return strstr(s, part) != NULL;
}

static enum category category_of(const char *name)
{
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") || has(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (has(name, "attn_k.weight")) return CAT_ATTN_K;
    if (has(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (has(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (has(name, "ffn_up")) return CAT_FFN_UP;
    if (has(name, "ffn_gate")) return CAT_FFN_GATE;
    if (has(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* Matrices only (ggml's n_dims, which ignores trailing 1s), named *weight, and
 * none of those llama.cpp keeps as they are (norms, routers, small tables). */
static bool allows_quantization(const char *name, uint32_t n_dims)
{
    static const char *const kept[] = {
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    };
    const size_t len = strlen(name);
    if (n_dims < 2 || len < 6 || strcmp(name + len - 6, "weight")) return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return false;
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (has(name, kept[i])) return false;
    return true;
}

/* What the mix rules look at: the model's shape and counters that advance as
 * the tensors are visited in file order. */
struct mix {
    enum ftype ftype;
    bool falcon;       /* llama.cpp has Falcon-only rules */
    bool is_70b;       /* llama with 80 layers and grouped-query attention */
    uint32_t n_gqa;    /* n_head / n_head_kv, 0 if unknown */
    uint32_t n_expert; /* 0 or 1 for dense models */
    bool tied;         /* no output.weight: token_embd is the output too */
    int n_attention_wv, i_attention_wv;
    int n_layer, i_ffn_down, i_ffn_gate, i_ffn_up;
};

/* The layers that get more bits in the _M mixes: the first and last eighth,
 * and every third one between. */
static bool use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

/* Layer of an FFN tensor: its position among its kind, except in models with
 * experts, where llama.cpp reads it from the name. */
static int layer_of_ffn(const struct mix *m, int counter, const char *name, struct vkllm_error *err)
{
    if (m->n_expert <= 1) return counter;
    int l;
    if (sscanf(name, "blk.%d.", &l) != 1 || l < 0 || l >= m->n_layer) {
        vkllm_fail(err, VKLLM_E_FORMAT, "cannot tell the layer of tensor %s", name);
        return -1;
    }
    return l;
}

/* llama_tensor_get_type_impl: the format a tensor of CATEGORY gets in the mix,
 * starting from the default TYPE. Returns VKLLM_E_FORMAT for an FFN tensor
 * whose layer cannot be told. */
static int mix_type(struct mix *m, enum category cat, const char *name, uint64_t ne0,
                    uint32_t *type, struct vkllm_error *err)
{
    const enum ftype ft = m->ftype;
    uint32_t t = *type;
    if (cat == CAT_OUTPUT || (m->tied && cat == CAT_TOKEN_EMBD)) {
        if (m->falcon || ne0 % vkllm_type_info(t)->block_size)
            t = VKLLM_TYPE_Q8_0;
        else if (t != VKLLM_TYPE_Q8_0)
            t = VKLLM_TYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        /* the mixes vkllm writes leave it at the default */
    } else if (cat == CAT_ATTN_V) {
        if (ft == FT_Q2_K)
            t = m->n_gqa >= 4 ? VKLLM_TYPE_Q4_K : VKLLM_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            t = m->i_attention_wv < 2 ? VKLLM_TYPE_Q5_K : VKLLM_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L)
            t = VKLLM_TYPE_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && m->n_gqa >= 4)
            t = VKLLM_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) &&
                 use_more_bits(m->i_attention_wv, m->n_attention_wv))
            t = VKLLM_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && m->i_attention_wv < 4)
            t = VKLLM_TYPE_Q5_K;
        /* 70B: 8 heads share each V, so V is small and worth more bits */
        if (m->is_70b && (t == VKLLM_TYPE_Q3_K || t == VKLLM_TYPE_Q4_K)) t = VKLLM_TYPE_Q5_K;
        if (m->n_expert == 8) t = VKLLM_TYPE_Q8_0;
        m->i_attention_wv++;
    } else if (cat == CAT_ATTN_K) {
        if (m->n_expert == 8) t = VKLLM_TYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        const int i_layer = layer_of_ffn(m, m->i_ffn_down, name, err), n_layer = m->n_layer;
        if (i_layer < 0) return VKLLM_E_FORMAT;
        if (ft == FT_Q2_K) {
            t = VKLLM_TYPE_Q3_K;
        } else if (ft == FT_Q3_K_M) {
            t = i_layer < n_layer / 16                          ? VKLLM_TYPE_Q5_K
                : !m->falcon || use_more_bits(i_layer, n_layer) ? VKLLM_TYPE_Q4_K
                                                                : VKLLM_TYPE_Q3_K;
        } else if (ft == FT_Q3_K_L) {
            t = m->falcon ? VKLLM_TYPE_Q4_K : VKLLM_TYPE_Q5_K;
        } else if (ft == FT_Q4_K_M) {
            if (m->falcon)
                t = i_layer < n_layer / 16            ? VKLLM_TYPE_Q6_K
                    : use_more_bits(i_layer, n_layer) ? VKLLM_TYPE_Q5_K
                                                      : VKLLM_TYPE_Q4_K;
            else if (use_more_bits(i_layer, n_layer))
                t = VKLLM_TYPE_Q6_K;
        } else if (i_layer < n_layer / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS)) {
            t = VKLLM_TYPE_Q5_K;
        } else if (ft == FT_Q5_K_M && use_more_bits(i_layer, n_layer)) {
            t = VKLLM_TYPE_Q6_K;
        } else if (ft == FT_Q4_K_S && !m->falcon && i_layer < n_layer / 8) {
            t = VKLLM_TYPE_Q5_K;
        }
        m->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (!m->falcon && m->n_expert == 8) {
            if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_IQ4_NL ||
                ft == FT_Q4_K_S || ft == FT_Q4_K_M || ft == FT_IQ4_XS)
                t = VKLLM_TYPE_Q5_K;
        } else if (!m->falcon) {
            if (ft == FT_Q2_K)
                t = VKLLM_TYPE_Q3_K;
            else if (ft == FT_Q3_K_M)
                t = VKLLM_TYPE_Q4_K;
            else if (ft == FT_Q3_K_L)
                t = VKLLM_TYPE_Q5_K;
        } else if (ft == FT_Q3_K_L) {
            t = VKLLM_TYPE_Q4_K;
        }
    } else if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        /* only the IQ3 mixes change these; the layer check still applies */
        int *counter = cat == CAT_FFN_GATE ? &m->i_ffn_gate : &m->i_ffn_up;
        if (layer_of_ffn(m, *counter, name, err) < 0) return VKLLM_E_FORMAT;
        (*counter)++;
    }
    *type = t;
    return VKLLM_OK;
}

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

/* Reads what the mix rules need from the file's metadata. */
static int mix_init(struct mix *m, const vkllm_gguf *g, const struct qtensor *ts, uint64_t n,
                    struct vkllm_error *err)
{
    struct vkllm_gguf_str s;
    char arch[64] = "";
    int rc = vkllm_gguf_get_str(g, "general.architecture", &s, err);
    if (rc && rc != VKLLM_E_NOT_FOUND) return rc;
    if (!rc) snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    uint64_t n_layer, n_head, n_head_kv, n_expert;
    if ((rc = hparam(g, arch, "block_count", 0, &n_layer, err)) ||
        (rc = hparam(g, arch, "attention.head_count", 0, &n_head, err)) ||
        (rc = hparam(g, arch, "attention.head_count_kv", n_head, &n_head_kv, err)) ||
        (rc = hparam(g, arch, "expert_count", 0, &n_expert, err)))
        return rc;
    if (n_layer == 0 || n_layer > 4096)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: no valid %s.block_count, which the mix rules need (or use --pure)",
                          vkllm_gguf_name(g), arch[0] ? arch : "<architecture>");
    m->falcon = !strcmp(arch, "falcon");
    m->is_70b = !strcmp(arch, "llama") && n_layer == 80 && n_head != n_head_kv;
    m->n_gqa = n_head_kv ? (uint32_t)(n_head / n_head_kv) : 0;
    m->n_expert = (uint32_t)n_expert;
    m->n_layer = (int)n_layer;
    m->tied = true;
    for (uint64_t i = 0; i < n; i++) {
        enum category c = category_of(ts[i].name);
        m->n_attention_wv += c == CAT_ATTN_V;
        if (c == CAT_OUTPUT) m->tied = false;
    }
    return VKLLM_OK;
}

/* llama_tensor_get_type: the format of each tensor, in file order (the mix
 * counters depend on it). */
static int choose_types(const struct qtype *qt, bool pure, const vkllm_gguf *g, struct qtensor *ts,
                        uint64_t n, struct vkllm_error *err)
{
    struct mix m = {.ftype = qt->ftype};
    const bool mixed = !pure && is_quantized(qt->type);
    int rc;
    if (mixed && (rc = mix_init(&m, g, ts, n, err))) return rc;
    for (uint64_t i = 0; i < n; i++) {
        struct qtensor *q = &ts[i];
        q->to_type = q->t->type;
        if (!allows_quantization(q->name, q->n_dims)) continue;
        uint32_t type = qt->type;
        if (is_quantized(type)) {
            if (mixed &&
                (rc = mix_type(&m, category_of(q->name), q->name, q->t->ne[0], &type, err)))
                return rc;
            q->quantized = true;
            const uint32_t wanted = type;
            type = quant_fallback_type(type, q->t->ne[0]);
            q->fell_back = type != wanted;
        }
        q->to_type = type;
    }
    return VKLLM_OK;
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
        if (is_quantized(t->type))
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
    const struct qtype *qt = qtype_find(params->type);
    if (!qt) {
        char list[400] = "";
        for (size_t i = 0; i < N_QTYPES; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     qtypes[i].name);
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
        (rc = choose_types(qt, params->pure, in, ts, n, err)))
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
    if ((rc = atomic_file_create(out_path, &tmp, err))) goto fail_close;

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
        (rc = vkllm_gguf_writer_set_uint32(w, "general.file_type", (uint32_t)qt->ftype))) {
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
