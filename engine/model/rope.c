/* rope.c: rope scaling (llama.cpp's hparams and cparams) and the rotation
 * table (ggml's CPU rope_yarn), float for float.
 *
 * The order of float operations follows llama.cpp's source: the settings as
 * src/llama-context.cpp derives them (compiled without FMA contraction, as
 * libllama is), the table as ggml/src/ggml-cpu/ops.cpp computes it (compiled
 * with -march=native, where GCC fuses the YaRN blend and the magnitude scale
 * into FMAs: fmaf below). Build this file with -ffp-contract=off so the
 * compiler adds no fusions of its own. */
#include "rope.h"

#include "error.h"
#include "shown.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* fusions only where written (fmaf) */
#endif

#define ROPE_PI 3.14159265358979323846 /* M_PI, which strict C11 lacks */

/* ============================== File keys ============================== */

/* "ARCH.SUFFIX" into BUF; false (after filling ERR) when it does not fit. */
static bool key_name(char *buf, size_t cap, const char *arch, const char *suffix,
                     struct vkllm_error *err)
{
    int n = snprintf(buf, cap, "%s.%s", arch, suffix);
    if (n < 0 || (size_t)n >= cap) {
        vkllm_fail(err, VKLLM_E_INVALID, "architecture name '%.32s...' is too long", arch);
        return false;
    }
    return true;
}

/* ARCH.SUFFIX as a float into *OUT, left alone when absent. Negative or
 * non-finite values are refused: no llama.cpp file has them, and they would
 * only turn the table into NaNs. */
static int read_f32(const vkllm_gguf *g, const char *arch, const char *suffix, float *out,
                    struct vkllm_error *err)
{
    char key[160];
    if (!key_name(key, sizeof key, arch, suffix, err)) return VKLLM_E_INVALID;
    double v;
    int rc = vkllm_gguf_get_float(g, key, &v, err);
    if (rc == VKLLM_E_NOT_FOUND) return VKLLM_OK;
    if (rc) return rc;
    if (!isfinite(v) || v < 0 || (float)v > 1e30f)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %g is not a usable rope setting",
                          vkllm_gguf_name(g), key, v);
    *out = (float)v;
    return VKLLM_OK;
}

/* ARCH.SUFFIX as a float, NOT_FOUND (err untouched) when absent. */
static int find_f32(const vkllm_gguf *g, const char *arch, const char *suffix, float *out,
                    struct vkllm_error *err)
{
    char key[160];
    if (!key_name(key, sizeof key, arch, suffix, err)) return VKLLM_E_INVALID;
    if (!vkllm_gguf_find_kv(g, key)) return VKLLM_E_NOT_FOUND;
    return read_f32(g, arch, suffix, out, err);
}

int rope_scaling_read(const vkllm_gguf *g, const char *arch, uint32_t n_ctx_train,
                      struct rope_scaling *out, struct vkllm_error *err)
{
    static const char *const names[] = {
        [ROPE_SCALING_NONE] = "none",
        [ROPE_SCALING_LINEAR] = "linear",
        [ROPE_SCALING_YARN] = "yarn",
        [ROPE_SCALING_LONGROPE] = "longrope",
    };
    memset(out, 0, sizeof *out);
    /* llama_hparams' defaults; the type defaults to linear (with factor 1 that
     * scales nothing, but a factor without a type does scale) */
    out->type = ROPE_SCALING_LINEAR;
    out->freq_scale = 1.0f;
    out->n_ctx_orig = n_ctx_train;
    out->attn_factor = 1.0f;
    out->yarn_ext_factor = -1.0f;
    out->yarn_attn_factor = 1.0f;
    out->yarn_beta_fast = 32.0f;
    out->yarn_beta_slow = 1.0f;
    out->yarn_log_mul = 0.0f;
    out->yarn_mscale = 1.0f;

    char key[160];
    if (!key_name(key, sizeof key, arch, "rope.scaling.type", err)) return VKLLM_E_INVALID;
    struct vkllm_gguf_str type;
    int rc = vkllm_gguf_get_str(g, key, &type, err);
    if (rc == VKLLM_OK) {
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               !(type.len == strlen(names[i]) && !memcmp(type.ptr, names[i], type.len)))
            i++;
        char text[SHOWN_MAX];
        if (i == sizeof names / sizeof names[0])
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "%s: rope scaling type '%s' is unknown",
                              vkllm_gguf_name(g), shown(text, type.ptr, type.len));
        out->type = (enum rope_scaling_type)i;
    } else if (rc != VKLLM_E_NOT_FOUND) {
        return rc;
    }

    /* rope.scaling.factor, else the older rope.scale_linear; 0 means none */
    float factor = 0.0f;
    rc = find_f32(g, arch, "rope.scaling.factor", &factor, err);
    if (rc == VKLLM_E_NOT_FOUND) rc = read_f32(g, arch, "rope.scale_linear", &factor, err);
    if (rc) return rc;
    out->freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;

    if ((rc = read_f32(g, arch, "rope.scaling.attn_factor", &out->attn_factor, err))) return rc;

    if (!key_name(key, sizeof key, arch, "rope.scaling.original_context_length", err))
        return VKLLM_E_INVALID;
    uint64_t orig;
    rc = vkllm_gguf_get_uint(g, key, &orig, err);
    if (rc == VKLLM_OK) {
        if (orig > UINT32_MAX)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %s = %llu is out of range",
                              vkllm_gguf_name(g), key, (unsigned long long)orig);
        /* llama_context falls back to the training context for 0 */
        if (orig) out->n_ctx_orig = (uint32_t)orig;
    } else if (rc != VKLLM_E_NOT_FOUND) {
        return rc;
    }
    return VKLLM_OK;
}

int rope_scaling_read_yarn(const vkllm_gguf *g, const char *arch, unsigned keys,
                           struct rope_scaling *s, struct vkllm_error *err)
{
    int rc = VKLLM_OK;
    if (keys & ROPE_YARN_KEYS_BETA) {
        if ((rc = read_f32(g, arch, "rope.scaling.yarn_beta_fast", &s->yarn_beta_fast, err)) ||
            (rc = read_f32(g, arch, "rope.scaling.yarn_beta_slow", &s->yarn_beta_slow, err)))
            return rc;
    }
    if (keys & ROPE_YARN_KEYS_LOG_MUL) {
        if ((rc = read_f32(g, arch, "rope.scaling.yarn_log_multiplier", &s->yarn_log_mul, err)))
            return rc;
    }
    if (keys & ROPE_YARN_KEYS_EXT_ATTN) {
        if ((rc = read_f32(g, arch, "rope.scaling.yarn_ext_factor", &s->yarn_ext_factor, err)) ||
            (rc = read_f32(g, arch, "rope.scaling.yarn_attn_factor", &s->yarn_attn_factor, err)))
            return rc;
    }
    return rc;
}

/* ============================== Session settings ============================== */

/* llama_context's get_mscale, one rounding per operation as libllama (no FMA)
 * computes it. */
static float get_mscale(float scale, float mscale)
{
    if (scale <= 1.0f) return 1.0f;
    float m = 0.1f * mscale;
    m = m * logf(scale);
    return m + 1.0f;
}

void rope_params_init(const struct rope_scaling *s, uint32_t n_rot, float freq_base, uint32_t n_ctx,
                      const float *freq_factors, struct rope_params *out)
{
    memset(out, 0, sizeof *out);
    out->n_rot = n_rot;
    out->freq_base = freq_base;
    out->freq_scale = s->type == ROPE_SCALING_NONE ? 1.0f : s->freq_scale;
    out->ext_factor = s->yarn_ext_factor >= 0.0f     ? s->yarn_ext_factor
                      : s->type == ROPE_SCALING_YARN ? 1.0f
                                                     : 0.0f;
    float attn = s->yarn_attn_factor;
    if (out->ext_factor != 0.0f) {
        const float factor = 1.0f / out->freq_scale;
        if (s->yarn_log_mul != 0.0f)
            attn = get_mscale(factor, s->yarn_mscale) / get_mscale(factor, s->yarn_log_mul);
        else
            attn = get_mscale(factor, 1.0f);
        /* ggml's rope_yarn multiplies by 1 + 0.1 ln(factor) again; llama.cpp
         * cancels it here (llama.cpp PR 17945) */
        float cancel = 0.1f * logf(factor);
        cancel = 1.0f + cancel;
        attn *= 1.0f / cancel;
    }
    out->attn_factor = attn * s->attn_factor;
    out->beta_fast = s->yarn_beta_fast;
    out->beta_slow = s->yarn_beta_slow;
    out->n_ctx_orig = s->n_ctx_orig;
    out->freq_factors = freq_factors            ? freq_factors
                        : n_ctx > s->n_ctx_orig ? s->long_factors
                                                : s->short_factors;
}

/* ============================== Table ============================== */

/* ggml_rope_yarn_corr_dim (ggml.c): the dimension whose wavelength spans
 * N_CTX_ORIG / BETA rotations. */
static float corr_dim(int n_dims, int n_ctx_orig, float beta, float base)
{
    return (float)n_dims * logf((float)n_ctx_orig / (beta * 2.0f * (float)ROPE_PI)) /
           (2.0f * logf(base));
}

/* ggml's rope_yarn_ramp for pair I = i0/2: 1 below LOW, 0 above HIGH. */
static float yarn_ramp(float low, float high, uint32_t i)
{
    const float d = high - low;
    float y = ((float)i - low) / (0.001f > d ? 0.001f : d);
    y = 0.0f > y ? 0.0f : y;
    return 1.0f - (1.0f < y ? 1.0f : y);
}

void rope_table(const struct rope_params *p, float *table, uint32_t n_tokens, uint32_t pos0)
{
    const uint32_t pairs = p->n_rot / 2;
    const float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
    const float freq_scale = p->freq_scale;
    const float ext = p->ext_factor;
    float mscale = p->attn_factor;
    float low = 0.0f, high = 0.0f;
    if (ext != 0.0f) {
        const int n_dims = (int)p->n_rot, n_ctx_orig = (int)p->n_ctx_orig;
        const float start = floorf(corr_dim(n_dims, n_ctx_orig, p->beta_fast, p->freq_base));
        const float end = ceilf(corr_dim(n_dims, n_ctx_orig, p->beta_slow, p->freq_base));
        low = 0.0f > start ? 0.0f : start;
        high = (float)(n_dims - 1) < end ? (float)(n_dims - 1) : end;
        /* rope_yarn's magnitude correction, the same for every pair */
        mscale *= fmaf(0.1f, logf(1.0f / freq_scale), 1.0f);
    }
    for (uint32_t t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        float *row = table + (size_t)t * pairs * 2;
        for (uint32_t i = 0; i < pairs; i++) {
            const float extrap = p->freq_factors ? theta / p->freq_factors[i] : theta;
            float th = freq_scale * extrap;
            if (ext != 0.0f) {
                /* blend interpolation and extrapolation per dimension */
                const float mix = yarn_ramp(low, high, i) * ext;
                th = fmaf(th, 1.0f - mix, extrap * mix);
            }
            row[2 * i + 0] = cosf(th) * mscale;
            row[2 * i + 1] = sinf(th) * mscale;
            theta *= theta_scale;
        }
    }
}
