/* arch.c: the table of model families, the metadata every family shares, and
 * binding a file's tensors to roles (arch.h). A family's entry says what it is;
 * its read_keys hook holds only the keys and defaults that are its own, as
 * llama.cpp's loader reads them (its src/models/<arch>.cpp and
 * ../shared/ARCH-NOTES.md). */
#include "arch.h"

#include "error.h"
#include "shown.h"
#include "kernels.h" /* MAX_HEAD_DIM: the attention kernel's shared arrays */
#include "quant.h"
#include "weights.h" /* gpu_weight_bytes */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Keys ============================== */

#define MAX_LAYERS 4096

/* "ARCH.SUFFIX", the way every family-specific key is spelled. */
static const char *key(const struct vkllm_hparams *hp, const char *suffix)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%s.%s", hp->arch, suffix);
    return buf;
}

static int get_u32(const vkllm_gguf *g, const char *k, bool required, uint32_t fallback,
                   uint32_t *out, struct vkllm_error *err)
{
    uint64_t v;
    int rc = vkllm_gguf_get_uint(g, k, &v, err);
    if (rc == VKLLM_E_NOT_FOUND) {
        if (required)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing metadata key %s",
                              vkllm_gguf_name(g), k);
        *out = fallback;
        return VKLLM_OK;
    }
    if (rc) return rc;
    if (v > (1u << 24))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %llu is out of range", vkllm_gguf_name(g),
                          k, (unsigned long long)v);
    *out = (uint32_t)v;
    return VKLLM_OK;
}

/* A float key; ZERO_OK admits 0 (an "off" value such as a soft-cap). */
static int get_f32(const vkllm_gguf *g, const char *k, float fallback, bool zero_ok, float *out,
                   struct vkllm_error *err)
{
    double v;
    int rc = vkllm_gguf_get_float(g, k, &v, err);
    if (rc == VKLLM_E_NOT_FOUND) {
        *out = fallback;
        return VKLLM_OK;
    }
    if (rc) return rc;
    if (!isfinite(v) || v < 0 || (v == 0 && !zero_ok) || v > 1e30)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %g must be positive", vkllm_gguf_name(g),
                          k, v);
    *out = (float)v;
    return VKLLM_OK;
}

static int get_bool(const vkllm_gguf *g, const char *k, bool required, bool *out,
                    struct vkllm_error *err)
{
    int rc = vkllm_gguf_get_bool(g, k, out, err);
    if (rc == VKLLM_E_NOT_FOUND) {
        if (required)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing metadata key %s",
                              vkllm_gguf_name(g), k);
        return VKLLM_OK;
    }
    return rc;
}

/* Which layers use the sliding window: every layer but each PERIOD-th (the
 * last of each group of PERIOD), or as the file's sliding_window_pattern says:
 * a period, or one flag per layer. */
static int read_swa_pattern(const vkllm_gguf *g, struct vkllm_hparams *hp, struct arch_layers *al,
                            uint32_t period, struct vkllm_error *err)
{
    const char *k = key(hp, "attention.sliding_window_pattern");
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, k);
    if (kv && kv->type == VKLLM_GGUF_ARRAY) {
        if (kv->arr_len != hp->n_layer ||
            (kv->arr_type != VKLLM_GGUF_BOOL && kv->arr_type != VKLLM_GGUF_INT32 &&
             kv->arr_type != VKLLM_GGUF_UINT32))
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s must hold a flag per layer (%u)",
                              vkllm_gguf_name(g), k, hp->n_layer);
        for (uint32_t l = 0; l < hp->n_layer; l++)
            al->swa[l] = vkllm_gguf_arr_int(kv, l) != 0;
        return VKLLM_OK;
    }
    int rc = get_u32(g, k, false, period, &period, err);
    if (rc) return rc;
    for (uint32_t l = 0; l < hp->n_layer; l++)
        al->swa[l] = period == 0 || l % period < period - 1;
    return VKLLM_OK;
}

/* ============================== Families ============================== */

static int llama_keys(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    struct vkllm_hparams *hp = &am->hp;
    struct arch_layers *al = &am->layers;
    /* Mistral-style files: one window for every layer (llama.cpp ignores it,
     * which only matters past the window) */
    int rc = get_u32(g, key(hp, "attention.sliding_window"), false, 0, &hp->sliding_window, err);
    for (uint32_t l = 0; !rc && l < hp->n_layer; l++)
        al->swa[l] = hp->sliding_window > 0;
    return rc;
}

/* gemma2 and gemma3 scale q by 1/sqrt(n_embd / n_head) in their 27B shapes. */
static void gemma_q_scale(struct arch_model *am, uint32_t layers_of_27b)
{
    const struct vkllm_hparams *hp = &am->hp;
    if (hp->n_layer == layers_of_27b) am->q_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
}

static int gemma2_keys(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    struct vkllm_hparams *hp = &am->hp;
    struct arch_layers *al = &am->layers;
    int rc;
    if ((rc = get_u32(g, key(hp, "attention.sliding_window"), false, 4096, &hp->sliding_window,
                      err)))
        return rc;
    /* llama.cpp masks a key `window` or more positions back: with 0, every
     * key of a window layer, itself included (gemma3 reads 0 as no window) */
    if (hp->sliding_window == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: %s is 0, a window that masks every position (llama.cpp would "
                          "attend to nothing)",
                          vkllm_gguf_name(g), key(hp, "attention.sliding_window"));
    if ((rc = read_swa_pattern(g, hp, al, 2, err)) ||
        (rc = get_f32(g, key(hp, "rope.freq_base_swa"), hp->rope_freq_base, false,
                      &hp->rope_freq_base_swa, err)) ||
        (rc = get_f32(g, key(hp, "attn_logit_softcapping"), 50.0f, true, &hp->attn_softcap, err)) ||
        (rc = get_f32(g, key(hp, "final_logit_softcapping"), 30.0f, true, &hp->final_softcap, err)))
        return rc;
    gemma_q_scale(am, 46);
    return VKLLM_OK;
}

static int gemma3_keys(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    struct vkllm_hparams *hp = &am->hp;
    struct arch_layers *al = &am->layers;
    int rc;
    gemma_q_scale(am, 62);
    if ((rc =
             get_u32(g, key(hp, "attention.sliding_window"), false, 0, &hp->sliding_window, err)) ||
        (rc = get_f32(g, key(hp, "final_logit_softcapping"), 0.0f, true, &hp->final_softcap, err)))
        return rc;
    if (hp->sliding_window == 0) return VKLLM_OK; /* no window at all */
    /* the local layers' base is 10000 unless the file says (real files do
     * not), and their frequencies are not scaled */
    am->rope_freq_scale_swa = 1.0f;
    if ((rc = read_swa_pattern(g, hp, al, 6, err)) ||
        (rc = get_f32(g, key(hp, "rope.freq_base_swa"), 10000.0f, false, &hp->rope_freq_base_swa,
                      err)))
        return rc;
    return VKLLM_OK;
}

static int gptneox_keys(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    return get_bool(g, key(&am->hp, "use_parallel_residual"), true, &am->hp.parallel_residual, err);
}

static int bloom_keys(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    (void)g, (void)err;
    am->hp.alibi_max_bias = 8.0f; /* fixed in llama.cpp's code, not read from the file */
    return VKLLM_OK;
}

/* Tensor sets. Q, K and V come separate or fused (attn_qkv) as each loader
 * accepts. */
#define QKV_EITHER    (BIT(WQ) | BIT(WK) | BIT(WV) | BIT(WQKV))
#define QKV_BIASES    (BIT(BQ) | BIT(BK) | BIT(BV) | BIT(BQKV))
#define BASE_REQUIRED (BIT(TOK_EMBD) | BIT(OUTPUT_NORM) | BIT(ATTN_NORM) | BIT(WO))
#define SWIGLU        (BIT(FFN_NORM) | BIT(WGATE) | BIT(WUP) | BIT(WDOWN))
#define QKV           (BIT(WQ) | BIT(WK) | BIT(WV))
#define LN_BIASES     (BIT(ATTN_NORM_B) | BIT(FFN_NORM_B) | BIT(OUTPUT_NORM_B))
#define GELU_FFN      (BIT(FFN_NORM) | BIT(WUP) | BIT(BUP) | BIT(WDOWN) | BIT(BDOWN))

static const struct arch archs[] = {
    {"llama", NORM_RMS, FFN_SILU_GLU, ROPE_NORMAL, 0, BASE_REQUIRED | SWIGLU | QKV,
     QKV_EITHER | QKV_BIASES | BIT(BO) | BIT(OUTPUT) | BIT(ROPE_FREQS), llama_keys},
    {"qwen2", NORM_RMS, FFN_SILU_GLU, ROPE_NEOX, ARCH_FULL_ROTARY, BASE_REQUIRED | SWIGLU | QKV,
     QKV_EITHER | QKV_BIASES | BIT(OUTPUT) | BIT(OUTPUT_B), NULL},
    {"qwen3", NORM_RMS, FFN_SILU_GLU, ROPE_NEOX, ARCH_FULL_ROTARY,
     BASE_REQUIRED | SWIGLU | QKV | BIT(Q_NORM) | BIT(K_NORM),
     QKV_EITHER | QKV_BIASES | BIT(OUTPUT), NULL},
    {"phi3", NORM_RMS, FFN_SILU_GLU, ROPE_NEOX, ARCH_Q_PRESCALE | ARCH_FUSED_UP,
     BASE_REQUIRED | QKV | BIT(FFN_NORM) | BIT(WUP) | BIT(WDOWN),
     QKV_EITHER | QKV_BIASES | BIT(ATTN_NORM_B) | BIT(FFN_NORM_B) | BIT(OUTPUT_NORM_B) | BIT(BO) |
         BIT(OUTPUT) | BIT(OUTPUT_B) | BIT(ROPE_LONG) | BIT(ROPE_SHORT),
     NULL /* no window: llama.cpp turns Phi's off even when the file has one */},
    {"gemma", NORM_RMS, FFN_GELU_GLU, ROPE_NEOX, ARCH_EMBD_SCALE | ARCH_Q_PRESCALE | ARCH_TIED_ONLY,
     BASE_REQUIRED | SWIGLU | QKV, QKV_EITHER | QKV_BIASES, NULL},
    {"gemma2", NORM_RMS, FFN_GELU_GLU, ROPE_NEOX,
     ARCH_EMBD_SCALE | ARCH_Q_PRESCALE | ARCH_TIED_ONLY,
     BASE_REQUIRED | SWIGLU | QKV | BIT(POST_ATTN_NORM) | BIT(POST_FFN_NORM),
     QKV_EITHER | QKV_BIASES, gemma2_keys},
    {"gemma3", NORM_RMS, FFN_GELU_GLU, ROPE_NEOX, ARCH_EMBD_SCALE | ARCH_Q_PRESCALE,
     BASE_REQUIRED | SWIGLU | QKV | BIT(POST_ATTN_NORM) | BIT(POST_FFN_NORM) | BIT(Q_NORM) |
         BIT(K_NORM),
     QKV_EITHER | QKV_BIASES | BIT(OUTPUT), gemma3_keys},
    {"falcon", NORM_LAYER, FFN_GELU, ROPE_NEOX, ARCH_PARALLEL | ARCH_FULL_ROTARY,
     BIT(TOK_EMBD) | BIT(OUTPUT_NORM) | BIT(OUTPUT_NORM_B) | BIT(ATTN_NORM) | BIT(ATTN_NORM_B) |
         BIT(WQKV) | BIT(WO) | BIT(WUP) | BIT(WDOWN),
     BIT(ATTN_NORM_2) | BIT(ATTN_NORM_2_B) | BIT(OUTPUT), NULL},
    {"gptneox", NORM_LAYER, FFN_GELU, ROPE_NEOX, ARCH_OUTPUT_NEEDED,
     BASE_REQUIRED | LN_BIASES | GELU_FFN | BIT(WQKV) | BIT(BQKV) | BIT(BO) | BIT(OUTPUT), 0,
     gptneox_keys},
    {"stablelm", NORM_LAYER, FFN_SILU_GLU, ROPE_NEOX, ARCH_OUTPUT_NEEDED | ARCH_HEAD_NORMS,
     BASE_REQUIRED | BIT(ATTN_NORM_B) | BIT(OUTPUT_NORM_B) | QKV | BIT(WGATE) | BIT(WUP) |
         BIT(WDOWN) | BIT(OUTPUT),
     QKV_EITHER | QKV_BIASES | BIT(FFN_NORM) | BIT(FFN_NORM_B) | BIT(Q_NORM) | BIT(K_NORM), NULL},
    {"starcoder", NORM_LAYER, FFN_GELU, ROPE_NONE, 0,
     BASE_REQUIRED | LN_BIASES | GELU_FFN | BIT(POS_EMBD) | BIT(WQKV) | BIT(BQKV) | BIT(BO),
     BIT(OUTPUT), NULL},
    {"bloom", NORM_LAYER, FFN_GELU, ROPE_NONE, ARCH_ALIBI,
     BASE_REQUIRED | LN_BIASES | GELU_FFN | BIT(TOK_NORM) | BIT(TOK_NORM_B) | BIT(WQKV) |
         BIT(BQKV) | BIT(BO),
     BIT(OUTPUT), bloom_keys},
    /* the last family added, as a table entry alone (docs/ARCHITECTURES.md) */
    {"starcoder2", NORM_LAYER, FFN_GELU, ROPE_NEOX, ARCH_FULL_ROTARY,
     BASE_REQUIRED | LN_BIASES | GELU_FFN | QKV | BIT(BO), QKV_EITHER | QKV_BIASES | BIT(OUTPUT),
     NULL},
};

const struct arch *arch_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strlen(archs[i].name) == len && !memcmp(archs[i].name, name, len)) return &archs[i];
    return NULL;
}

/* ============================== Hyperparameters ============================== */

/* Families llama.cpp knows that we refuse with a reason rather than "unknown". */
static const char *const moe_archs[] = {"qwen2moe", "qwen3moe", "mixtral",    "deepseek2",
                                        "olmoe",    "phimoe",   "granitemoe", "dbrx"};

static int read_hparams(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    struct vkllm_hparams *hp = &am->hp;
    memset(hp, 0, sizeof *hp);
    /* users keep adapters beside their models, and an adapter has none of a
     * model's keys: say what it is rather than which key it lacks */
    struct vkllm_gguf_str type;
    if (vkllm_gguf_get_str(g, "general.type", &type, NULL) == VKLLM_OK && type.len == 7 &&
        !memcmp(type.ptr, "adapter", 7))
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: a LoRA adapter (general.type \"adapter\"), not a model: apply it "
                          "to its model with --lora",
                          name);
    struct vkllm_gguf_str arch;
    int rc = vkllm_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing general.architecture", name);
    if (rc) return rc;
    am->arch = arch_find(arch.ptr, arch.len);
    if (!am->arch) {
        char arch_shown[SHOWN_MAX];
        shown(arch_shown, arch.ptr, arch.len);
        for (size_t i = 0; i < sizeof moe_archs / sizeof moe_archs[0]; i++)
            if (strlen(moe_archs[i]) == arch.len && !memcmp(moe_archs[i], arch.ptr, arch.len))
                return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                                  "%s: architecture '%s' is a mixture of experts, which vkllm "
                                  "does not run yet",
                                  name, arch_shown);
        char names[256];
        size_t used = 0;
        for (size_t i = 0; i < sizeof archs / sizeof archs[0] && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                     archs[i].name);
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: architecture '%s' is not supported (vkllm runs %s)", name,
                          arch_shown, names);
    }
    const struct arch *a = am->arch;
    snprintf(hp->arch, sizeof hp->arch, "%s", a->name);

    /* get_u32 refuses values above 2^24, so this cannot come from the file */
    const uint32_t absent = UINT32_MAX;
    uint32_t experts = 0, key_len = 0, value_len = 0;
    const bool ln = a->norm == NORM_LAYER;
    if ((rc = get_u32(g, key(hp, "embedding_length"), true, 0, &hp->n_embd, err)) ||
        (rc = get_u32(g, key(hp, "block_count"), true, 0, &hp->n_layer, err)) ||
        (rc = get_u32(g, key(hp, "attention.head_count"), true, 0, &hp->n_head, err)) ||
        (rc = get_u32(g, key(hp, "attention.head_count_kv"), false, hp->n_head, &hp->n_head_kv,
                      err)) ||
        (rc = get_u32(g, key(hp, "feed_forward_length"), true, 0, &hp->n_ff, err)) ||
        (rc = get_u32(g, key(hp, "context_length"), false, 2048, &hp->n_ctx_train, err)) ||
        (rc = get_u32(g, key(hp, "attention.key_length"), false, absent, &key_len, err)) ||
        (rc = get_u32(g, key(hp, "attention.value_length"), false, absent, &value_len, err)) ||
        (rc = get_u32(g, key(hp, "expert_count"), false, 0, &experts, err)) ||
        (rc = get_f32(g, key(hp, "rope.freq_base"), 10000.0f, false, &hp->rope_freq_base, err)) ||
        (rc = get_f32(
             g, key(hp, ln ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"),
             1e-5f, false, &hp->norm_eps, err)))
        return rc;
    if (experts > 0)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: mixture-of-experts models are not supported yet", name);
    /* a model trained on no tokens is a broken file, and would get a context of 0 */
    if (hp->n_ctx_train == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s is 0", name, key(hp, "context_length"));
    if ((rc = rope_scaling_read(g, hp->arch, hp->n_ctx_train, &am->rope, err))) return rc;

    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0 || hp->n_head_kv == 0 ||
        hp->n_ff == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: embedding length, blocks, heads and FFN length must be nonzero",
                          name);
    if (hp->n_layer > MAX_LAYERS) /* real models have at most 126 */
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %u blocks is out of range (at most %u)", name,
                          hp->n_layer, MAX_LAYERS);
    if (hp->n_head % hp->n_head_kv)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %u heads is not a multiple of %u KV heads",
                          name, hp->n_head, hp->n_head_kv);
    /* the width the file says before what is derived from it: a wrong
     * embedding length would otherwise surface as a head or rope size */
    const struct vkllm_gguf_tensor *emb = vkllm_gguf_find_tensor(g, "token_embd.weight");
    if (emb && emb->ne[0] != hp->n_embd)
        return vkllm_fail(
            err, VKLLM_E_FORMAT,
            "%s: %s.embedding_length is %u, but token_embd.weight has rows of %llu elements", name,
            hp->arch, hp->n_embd, (unsigned long long)emb->ne[0]);
    if (key_len == 0 || value_len == 0)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s.attention.%s_length is 0", name, hp->arch,
                          key_len == 0 ? "key" : "value");
    if (key_len == absent && hp->n_embd % hp->n_head)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: embedding length %u is not a multiple of %u heads", name, hp->n_embd,
                          hp->n_head);
    hp->head_dim = key_len != absent ? key_len : hp->n_embd / hp->n_head;
    /* llama.cpp sizes values by value_length (else n_embd / n_head) apart
     * from keys; vkllm's attention has one head size for both */
    if (value_len != absent && value_len != hp->head_dim) {
        if (key_len != absent)
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: %s.attention.value_length is %u but key_length is %u (vkllm "
                              "needs keys and values of one size)",
                              name, hp->arch, value_len, key_len);
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: %s.attention.value_length is %u but the keys' head size is %u "
                          "(embedding length %u / %u heads; vkllm needs keys and values of one "
                          "size)",
                          name, hp->arch, value_len, hp->head_dim, hp->n_embd, hp->n_head);
    }
    if (hp->head_dim % 2 || hp->head_dim > MAX_HEAD_DIM)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: head size %u is not supported (even, at most %u)", name,
                          hp->head_dim, MAX_HEAD_DIM);
    if (a->rope != ROPE_NONE) {
        if ((rc =
                 get_u32(g, key(hp, "rope.dimension_count"), false, hp->head_dim, &hp->n_rot, err)))
            return rc;
        if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || hp->n_rot == 0)
            return vkllm_fail(
                err, VKLLM_E_FORMAT,
                "%s: rope dimension count %u must be even and at most the head size %u", name,
                hp->n_rot, hp->head_dim);
        if ((a->flags & ARCH_FULL_ROTARY) && hp->n_rot != hp->head_dim)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: %s rotates whole heads, but rope dimension count is %u of %u",
                              name, a->name, hp->n_rot, hp->head_dim);
    }
    hp->rope_neox = a->rope == ROPE_NEOX;
    hp->rope_freq_base_swa = hp->rope_freq_base;
    hp->layer_norm = ln;
    hp->parallel_residual = (a->flags & ARCH_PARALLEL) != 0;

    struct arch_layers *al = &am->layers;
    al->swa = calloc(hp->n_layer, sizeof *al->swa);
    al->rope_index = calloc(hp->n_layer, sizeof *al->rope_index);
    if (!al->swa || !al->rope_index) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    /* scores scaled by 1/sqrt(head size), or q before them */
    const bool prescale = (a->flags & ARCH_Q_PRESCALE) != 0;
    am->q_scale = prescale ? 1.0f / sqrtf((float)hp->head_dim) : 1.0f;
    am->kq_scale = prescale ? 1.0f : 1.0f / sqrtf((float)hp->head_dim);
    am->rope_freq_scale_swa = am->rope.freq_scale;
    if (a->read_keys && (rc = a->read_keys(g, am, err))) return rc;

    /* the sliding-window layers rotate by their own setting where it differs */
    al->n_rope = 1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (hp->sliding_window == 0) al->swa[l] = false;
        hp->n_swa_layers += al->swa[l];
        if (al->swa[l] && (hp->rope_freq_base_swa != hp->rope_freq_base ||
                           am->rope_freq_scale_swa != am->rope.freq_scale)) {
            al->rope_index[l] = 1;
            al->n_rope = 2;
        }
    }
    return VKLLM_OK;
}

/* ============================== Tensors ============================== */

enum tensor_kind { MAT, VEC };
enum dim { D_ONE, D_EMBD, D_Q, D_KV, D_QKV, D_FF, D_HEAD, D_VOCAB, D_CTX_TRAIN, D_ROT_HALF };

struct role_info {
    const char *name;
    enum tensor_kind kind;
    enum dim ne0, ne1;
};

#define ROLE_INFO(role, name, kind, ne0, ne1) [T_##role] = {name, kind, ne0, ne1},
static const struct role_info roles[T_COUNT] = {LAYER_TENSORS(ROLE_INFO) MODEL_TENSORS(ROLE_INFO)};
#undef ROLE_INFO

const char *arch_role_name(enum tensor_role role)
{
    return role < T_COUNT ? roles[role].name : "?";
}

bool arch_role_is_matrix(enum tensor_role role)
{
    return role < T_COUNT && roles[role].kind == MAT;
}

static uint64_t dim_size(const struct arch_model *am, enum dim d)
{
    const struct vkllm_hparams *hp = &am->hp;
    const uint64_t q = (uint64_t)hp->n_head * hp->head_dim,
                   kv = (uint64_t)hp->n_head_kv * hp->head_dim;
    switch (d) {
    case D_ONE: return 1;
    case D_EMBD: return hp->n_embd;
    case D_Q: return q;
    case D_KV: return kv;
    case D_QKV: return q + 2 * kv;
    case D_FF: return hp->n_ff;
    case D_HEAD: return hp->head_dim;
    case D_VOCAB: return hp->n_vocab;
    case D_CTX_TRAIN: return hp->n_ctx_train;
    case D_ROT_HALF: return hp->n_rot / 2;
    }
    return 0;
}

static void shape_text(char *buf, size_t cap, const uint64_t *ne, uint32_t n_dims)
{
    size_t used = 0;
    for (uint32_t i = 0; i < n_dims && used < cap; i++) {
        int n =
            snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "[", (unsigned long long)ne[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* The formats vkllm runs, for error messages: "F32, F16, ..." into NAMES. */
static const char *supported_names(char *names, size_t cap)
{
    size_t used = 0;
    names[0] = '\0';
    for (uint32_t i = 0; i < quant_format_count && used < cap; i++)
        used += (size_t)snprintf(names + used, cap - used, "%s%s", i ? ", " : "",
                                 quant_formats[i].name);
    return names;
}

/* Checks T's shape and type for ROLE. */
static int check_tensor(const vkllm_gguf *g, const struct arch_model *am, enum tensor_role role,
                        tensor_ref t, struct vkllm_error *err)
{
    const struct role_info *ri = &roles[role];
    uint64_t want[4] = {dim_size(am, ri->ne0), dim_size(am, ri->ne1), 1, 1};
    if (role == T_WUP && (am->arch->flags & ARCH_FUSED_UP)) want[1] *= 2;
    if ((am->arch->flags & ARCH_HEAD_NORMS) && (role == T_Q_NORM || role == T_K_NORM))
        want[1] = role == T_Q_NORM ? am->hp.n_head : am->hp.n_head_kv;
    bool ok = true;
    for (int i = 0; i < 4; i++)
        ok = ok && t->ne[i] == want[i];
    if (!ok) {
        char have[96], expect[96];
        shape_text(have, sizeof have, t->ne, t->n_dims);
        shape_text(expect, sizeof expect, want, ri->kind == MAT || want[1] > 1 ? 2 : 1);
        /* the vocabulary's size comes from the tokenizer: say so */
        char note[48] = "";
        if (ri->ne1 == D_VOCAB && t->ne[1] != want[1])
            snprintf(note, sizeof note, " (the tokenizer has %u tokens)", am->hp.n_vocab);
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tensor %.*s has shape %s, expected %s%s",
                          vkllm_gguf_name(g), (int)t->name.len, t->name.ptr, have, expect, note);
    }
    const bool readable =
        ri->kind == MAT ? quant_supported(t->type) : quant_format(t->type) != NULL;
    if (!readable) {
        const struct vkllm_type_info *ti = vkllm_type_info(t->type);
        char names[256];
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: tensor %.*s has type %s, which vkllm does not run yet (supported: "
                          "%s)",
                          vkllm_gguf_name(g), (int)t->name.len, t->name.ptr, ti ? ti->name : "?",
                          supported_names(names, sizeof names));
    }
    return VKLLM_OK;
}

/* The role and layer of the tensor called NAME, or T_NONE. */
static enum tensor_role role_of(const struct vkllm_gguf_str *name, uint32_t n_layer,
                                uint32_t *layer)
{
    const char *s = name->ptr;
    size_t len = name->len;
    if (len > 4 && !memcmp(s, "blk.", 4)) {
        uint64_t l = 0;
        size_t i = 4;
        while (i < len && i < 14 && s[i] >= '0' && s[i] <= '9')
            l = l * 10 + (uint64_t)(s[i++] - '0');
        if (i == 4 || i >= len || s[i] != '.' || l >= n_layer) return T_NONE;
        *layer = (uint32_t)l;
        for (int r = 0; r < T_LAYER_COUNT; r++)
            if (strlen(roles[r].name) == len - i - 1 &&
                !memcmp(roles[r].name, s + i + 1, len - i - 1))
                return (enum tensor_role)r;
        return T_NONE;
    }
    *layer = 0;
    for (int r = T_MODEL_FIRST; r < T_COUNT; r++)
        if (strlen(roles[r].name) == len && !memcmp(roles[r].name, s, len))
            return (enum tensor_role)r;
    return T_NONE;
}

static struct tensor_slice *slot(struct arch_model *am, uint32_t layer, enum tensor_role role)
{
    return (struct tensor_slice *)arch_slice(am, layer, role);
}

/* Cuts the fused tensor in FROM into the roles TO[0..n) of SIZES each. */
static void split(struct arch_model *am, uint32_t l, enum tensor_role from,
                  const enum tensor_role *to, const uint64_t *sizes, int n)
{
    struct tensor_slice *f = slot(am, l, from);
    if (!f->t) return;
    uint64_t first = 0;
    for (int i = 0; i < n; i++) {
        *slot(am, l, to[i]) = (struct tensor_slice){f->t, first, sizes[i]};
        first += sizes[i];
    }
    *f = (struct tensor_slice){0};
}

static int bind_tensors(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    struct vkllm_hparams *hp = &am->hp;
    const struct arch *a = am->arch;
    const struct vkllm_gguf_tensor *emb = vkllm_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor token_embd.weight", name);
    /* the vocabulary's size is the tokenizer's: a token_embd.weight (or
     * output.weight) of another shape is then the tensor named as wrong */
    const struct vkllm_gguf_kv *tokens = vkllm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const uint64_t n_vocab = tokens && tokens->type == VKLLM_GGUF_ARRAY && tokens->arr_len
                                 ? tokens->arr_len
                                 : emb->ne[1];
    if (n_vocab == 0 || n_vocab > (1u << 24))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s has %llu %s", name,
                          n_vocab == emb->ne[1] ? "token_embd.weight" : "the tokenizer",
                          (unsigned long long)n_vocab, n_vocab == emb->ne[1] ? "rows" : "tokens");
    hp->n_vocab = (uint32_t)n_vocab;

    am->slices = calloc(arch_slot_count(am), sizeof *am->slices);
    if (!am->slices) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");

    /* every tensor of the file takes a role this family has, once */
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        tensor_ref t = vkllm_gguf_tensor_at(g, i);
        uint32_t l = 0;
        enum tensor_role r = role_of(&t->name, hp->n_layer, &l);
        if (r == T_NONE || !((a->required | a->allowed) & (1ull << r))) {
            if (r == T_OUTPUT && (a->flags & ARCH_TIED_ONLY))
                return vkllm_fail(err, VKLLM_E_FORMAT,
                                  "%s: %s always uses token_embd as its output matrix; the file "
                                  "also has output.weight",
                                  name, a->name);
            char t_shown[SHOWN_MAX];
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                              "%s: tensor %s is not part of a %s model vkllm runs", name,
                              shown(t_shown, t->name.ptr, t->name.len), a->name);
        }
        int rc = check_tensor(g, am, r, t, err);
        if (rc) return rc;
        /* a matrix's rows, a vector's elements (per-head norms: every head's) */
        *slot(am, l, r) =
            (struct tensor_slice){t, 0, roles[r].kind == MAT ? t->ne[1] : t->ne[0] * t->ne[1]};
    }

    /* what must be there is there; fused tensors stand for their parts */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bool fused = arch_has(am, l, T_WQKV);
        if (fused && (arch_has(am, l, T_WQ) || arch_has(am, l, T_WK) || arch_has(am, l, T_WV)))
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: layer %u has both attn_qkv and separate q, k, v", name, l);
        if (arch_has(am, l, T_BQKV) && !fused)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: layer %u has attn_qkv.bias without attn_qkv", name, l);
        for (int r = 0; r < T_LAYER_COUNT; r++) {
            const bool covered = fused && (r == T_WQ || r == T_WK || r == T_WV);
            if ((a->required & (1ull << r)) && !covered && !arch_has(am, l, (enum tensor_role)r))
                return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor blk.%u.%s", name, l,
                                  roles[r].name);
        }
        const uint64_t q = dim_size(am, D_Q), kv = dim_size(am, D_KV), ff = hp->n_ff;
        const enum tensor_role mats[] = {T_WQ, T_WK, T_WV}, biases[] = {T_BQ, T_BK, T_BV},
                               gate_up[] = {T_WGATE, T_WUP};
        const uint64_t qkv_sizes[] = {q, kv, kv}, ff_sizes[] = {ff, ff};
        split(am, l, T_WQKV, mats, qkv_sizes, 3);
        split(am, l, T_BQKV, biases, qkv_sizes, 3);
        if (a->flags & ARCH_FUSED_UP) {
            struct tensor_slice up = *slot(am, l, T_WUP);
            *slot(am, l, T_WQKV) = up; /* split() reads its source from a role: borrow one */
            *slot(am, l, T_WUP) = (struct tensor_slice){0};
            split(am, l, T_WQKV, gate_up, ff_sizes, 2);
        }
    }
    for (int r = T_MODEL_FIRST; r < T_COUNT; r++)
        if ((a->required & (1ull << r)) && !arch_has(am, 0, (enum tensor_role)r))
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor %s", name, roles[r].name);

    hp->tied_output = !arch_has(am, 0, T_OUTPUT);
    if ((a->flags & ARCH_OUTPUT_NEEDED) && hp->tied_output)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: missing tensor output.weight", name);
    if (hp->tied_output) *slot(am, 0, T_OUTPUT) = *arch_slice(am, 0, T_TOK_EMBD);
    /* the rotary factors are needed on the host: read them now */
    const enum tensor_role factors[] = {T_ROPE_FREQS, T_ROPE_LONG, T_ROPE_SHORT};
    float **copies[] = {&am->rope_freqs, &am->rope_long, &am->rope_short};
    for (int i = 0; i < 3; i++) {
        tensor_ref t = arch_slice(am, 0, factors[i])->t;
        if (!t) continue;
        if (t->type != VKLLM_TYPE_F32)
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: %s must be F32", name,
                              roles[factors[i]].name);
        if (!(*copies[i] = malloc(t->size ? t->size : 1)))
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        int rc = vkllm_gguf_read(g, t, 0, *copies[i], t->size, err);
        if (rc) return rc;
    }
    am->rope.long_factors = am->rope_long;
    am->rope.short_factors = am->rope_short;
    return VKLLM_OK;
}

int arch_bind(const vkllm_gguf *g, struct arch_model *am, struct vkllm_error *err)
{
    memset(am, 0, sizeof *am);
    int rc = read_hparams(g, am, err);
    if (!rc) rc = bind_tensors(g, am, err);
    if (rc) arch_model_free(am);
    return rc;
}

void arch_model_free(struct arch_model *am)
{
    if (!am) return;
    free(am->layers.swa);
    free(am->layers.rope_index);
    free(am->slices);
    free(am->rope_freqs);
    free(am->rope_long);
    free(am->rope_short);
    memset(am, 0, sizeof *am);
}

static uint64_t slice_bytes(const struct arch_model *am, uint32_t l, enum tensor_role r)
{
    const struct tensor_slice *s = arch_slice(am, l, r);
    if (!s->t) return 0;
    return roles[r].kind == MAT ? gpu_weight_bytes(s->t->type, s->t->ne[0], s->count)
                                : 4 * s->count;
}

uint64_t arch_device_bytes(const struct arch_model *am)
{
    uint64_t sum = 0;
    for (uint32_t l = 0; l < am->hp.n_layer; l++)
        for (int r = 0; r < T_LAYER_COUNT; r++)
            sum += slice_bytes(am, l, (enum tensor_role)r);
    for (int r = T_MODEL_FIRST; r < T_COUNT; r++)
        if (!(r == T_OUTPUT && am->hp.tied_output)) sum += slice_bytes(am, 0, (enum tensor_role)r);
    return sum;
}

int vkllm_hparams_read(const vkllm_gguf *g, struct vkllm_hparams *hp, struct vkllm_error *err)
{
    struct arch_model am;
    int rc = arch_bind(g, &am, err);
    if (rc) return rc;
    *hp = am.hp;
    arch_model_free(&am);
    return VKLLM_OK;
}
