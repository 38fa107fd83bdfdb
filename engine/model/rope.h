/* rope.h: rotary position embedding tables with llama.cpp's rope scaling
 * (none, linear, YaRN, LongRoPE), computed on the host. The GPU kernel only
 * reads one (cos, sin) pair per token and rotated pair; YaRN's magnitude scale
 * and the file's attention factor are folded into both, as ggml's rope_yarn
 * does. Internal to the engine.
 *
 * Two steps, as in llama.cpp: rope_scaling_read takes what the file says
 * (llama_model's hparams), rope_params_init derives one layer's settings for a
 * session (llama_context's cparams), and rope_table then computes exactly what
 * ggml's CPU rope (ggml_rope_cache_init) computes for those settings. */
#ifndef VKLLM_ROPE_H
#define VKLLM_ROPE_H

#include "vkllm.h"

#include <stdint.h>

enum rope_scaling_type {
    ROPE_SCALING_NONE,
    ROPE_SCALING_LINEAR,
    ROPE_SCALING_YARN,
    ROPE_SCALING_LONGROPE,
};

/* Rope scaling as the file describes it (model-level). */
struct rope_scaling {
    enum rope_scaling_type type; /* ARCH.rope.scaling.type; "linear" when absent, as llama.cpp */
    float freq_scale;    /* 1 / ARCH.rope.scaling.factor (or the older rope.scale_linear); 1 when
                          * absent or 0. Applies unless the type is none. */
    uint32_t n_ctx_orig; /* ARCH.rope.scaling.original_context_length, else n_ctx_train */
    float attn_factor;   /* ARCH.rope.scaling.attn_factor, else 1: multiplies cos and sin for every
                          * scaling type (phi3's LongRoPE files carry their magnitude scale here) */

    /* YaRN knobs. llama.cpp reads their keys only for some families (see
     * rope_scaling_read_yarn); the rest get these defaults. */
    float yarn_ext_factor;  /* < 0: not set, becomes 1 for YaRN and 0 otherwise */
    float yarn_attn_factor; /* 1; replaced by YaRN's own scale whenever ext_factor != 0 */
    float yarn_beta_fast;   /* 32 */
    float yarn_beta_slow;   /* 1 */
    float yarn_log_mul;     /* 0, or mscale_all_dim: the scale becomes
                             * get_mscale(factor, yarn_mscale) / get_mscale(factor, log_mul) */
    float yarn_mscale;      /* 1; DeepSeek-V2 sets it to yarn_log_mul when that is not 1 */

    /* LongRoPE frequency factors (rope_factors_long.weight, rope_factors_short.weight:
     * n_rot/2 F32 each) or NULL. rope_scaling_read leaves them NULL: the caller binds
     * the tensors (checking type and length) and sets them. */
    const float *long_factors;
    const float *short_factors;
};

/* Reads ARCH's rope scaling keys ("ARCH.rope.scaling.type", .factor,
 * .attn_factor, .original_context_length; "ARCH.rope.scale_linear") with
 * llama.cpp's defaults; N_CTX_TRAIN is ARCH.context_length. An unknown scaling
 * type is VKLLM_E_UNSUPPORTED naming it; a value of the wrong type, or a factor
 * or attention factor that is negative or not finite, is VKLLM_E_FORMAT. */
int rope_scaling_read(const vkllm_gguf *g, const char *arch, uint32_t n_ctx_train,
                      struct rope_scaling *out, struct vkllm_error *err);

/* The YaRN keys, which llama.cpp reads per family: pass the ones ARCH's loader
 * reads. mistral3: BETA | LOG_MUL; grok: EXT_ATTN | BETA; deepseek2 reads
 * LOG_MUL and then divides it by 0.1 (and sets yarn_mscale), which is the
 * caller's to do. Absent keys keep their values in OUT. */
enum {
    ROPE_YARN_KEYS_BETA = 1 << 0,     /* rope.scaling.yarn_beta_fast, _slow */
    ROPE_YARN_KEYS_LOG_MUL = 1 << 1,  /* rope.scaling.yarn_log_multiplier */
    ROPE_YARN_KEYS_EXT_ATTN = 1 << 2, /* rope.scaling.yarn_ext_factor, _attn_factor */
};
int rope_scaling_read_yarn(const vkllm_gguf *g, const char *arch, unsigned keys,
                           struct rope_scaling *s, struct vkllm_error *err);

/* The table settings of one layer, as ggml_rope_ext takes them. */
struct rope_params {
    uint32_t n_rot;
    float freq_base;
    float freq_scale;
    float ext_factor;
    float attn_factor; /* the mscale ggml starts from, before YaRN's own factor */
    float beta_fast, beta_slow;
    uint32_t n_ctx_orig;
    const float *freq_factors; /* n_rot/2 divisors of theta, or NULL */
};

/* The settings of a layer with N_ROT rotated dimensions and base FREQ_BASE in
 * a session of N_CTX tokens, derived as llama_context does (cparams).
 *
 * FREQ_FACTORS are rope_freqs.weight (Llama 3.1 and others), or NULL. As
 * llama_model::get_rope_factors does, they win when given; otherwise a
 * LongRoPE file's long factors are used when N_CTX > n_ctx_orig and its short
 * ones when not. N_CTX is the session's context (llama.cpp's n_ctx_seq, the
 * context of one sequence). llama.cpp rounds n_ctx_seq up to a multiple of
 * 256; for the n_ctx_orig values files carry (4096, 8192, ...: multiples of
 * 256) that picks the same factors as the unrounded N_CTX.
 *
 * For llama.cpp's sliding-window layers (gemma3, cohere2, ...) set freq_base
 * and freq_scale (hparams.rope_freq_scale_train_swa, 1) afterwards; the YaRN
 * settings stay the session's, as in llama.cpp. */
void rope_params_init(const struct rope_scaling *s, uint32_t n_rot, float freq_base, uint32_t n_ctx,
                      const float *freq_factors, struct rope_params *out);

/* N_TOKENS rows for positions POS0, POS0 + 1, ...: each row n_rot/2 (cos, sin)
 * pairs, pair i rotating dimensions (2i, 2i+1) for normal rope and (i, i +
 * n_rot/2) for NeoX rope. Bit-identical to ggml's CPU rope built with FMA
 * contraction (-march=native or any x86-64-v3 / ARM64 build): its YaRN blend
 * and magnitude scale are fused multiply-adds there, and fmaf here. */
void rope_table(const struct rope_params *p, float *table, uint32_t n_tokens, uint32_t pos0);

#endif
