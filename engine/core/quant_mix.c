/* quant_mix.c: which format each tensor of a model gets when it is quantized
 * to a TYPE as llama-quantize names it (Q4_K_M, Q8_0, ...): the type names
 * with llama.cpp's file type numbers, and the mix rules of
 * llama_tensor_get_type (llama-quant.cpp) for what a file without an importance
 * matrix and without overrides can reach. Shared by vkllm_quantize and the
 * test model generator. */
#include "error.h"
#include "quant.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
 * llama_tensor_get_type and its helpers. */

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

/* What the mix rules need of the model, before its tensors are visited. */
static int mix_init(struct mix *m, const struct quant_mix_model *model,
                    const struct quant_mix_tensor *ts, uint64_t n, struct vkllm_error *err)
{
    const char *arch = model->arch ? model->arch : "";
    if (model->n_layer == 0 || model->n_layer > 4096)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: no valid %s.block_count, which the mix rules need (or use --pure)",
                          model->name, arch[0] ? arch : "<architecture>");
    m->falcon = !strcmp(arch, "falcon");
    m->is_70b = !strcmp(arch, "llama") && model->n_layer == 80 && model->n_head != model->n_head_kv;
    m->n_gqa = model->n_head_kv ? (uint32_t)(model->n_head / model->n_head_kv) : 0;
    m->n_expert = (uint32_t)model->n_expert;
    m->n_layer = (int)model->n_layer;
    m->tied = true;
    for (uint64_t i = 0; i < n; i++) {
        enum category c = category_of(ts[i].name);
        m->n_attention_wv += c == CAT_ATTN_V;
        if (c == CAT_OUTPUT) m->tied = false;
    }
    return VKLLM_OK;
}

int quant_mix_types(const char *type, bool pure, const struct quant_mix_model *model,
                    struct quant_mix_tensor *ts, uint64_t n, struct vkllm_error *err)
{
    const struct qtype *qt = qtype_find(type);
    if (!qt) return vkllm_fail(err, VKLLM_E_INVALID, "%s: unknown type", type ? type : "(none)");
    struct mix m = {.ftype = qt->ftype};
    const bool mixed = !pure && is_quantized(qt->type);
    int rc;
    if (mixed && (rc = mix_init(&m, model, ts, n, err))) return rc;
    for (uint64_t i = 0; i < n; i++) {
        struct quant_mix_tensor *q = &ts[i];
        if (!allows_quantization(q->name, q->n_dims)) continue;
        uint32_t to = qt->type;
        if (is_quantized(to)) {
            if (mixed && (rc = mix_type(&m, category_of(q->name), q->name, q->ne0, &to, err)))
                return rc;
            q->quantized = true;
            const uint32_t wanted = to;
            to = quant_fallback_type(to, q->ne0);
            q->fell_back = to != wanted;
        }
        q->type = to;
    }
    return VKLLM_OK;
}

int quant_mix_file_type(const char *type)
{
    const struct qtype *qt = qtype_find(type);
    return qt ? (int)qt->ftype : -1;
}
