/* rope_ggml.c: makes the golden values of tests/test_rope.c with llama.cpp itself.
 *
 *   L=/work/llama/src
 *   cc -O2 -I$L/include -I$L/ggml/include tests/golden/rope_ggml.c \
 *      -L$L/build/bin -lllama -lggml -lggml-base -lggml-cpu -lm -o /tmp/rope_ggml
 *   LD_LIBRARY_PATH=$L/build/bin /tmp/rope_ggml tests/data/llama-2-tiny-random.gguf
 *
 * Part 1 (settings): loads the tiny llama model with llama.cpp's metadata
 * overrides standing in for a file's rope scaling keys, creates a context,
 * decodes one token and reads the op parameters of the first GGML_OP_ROPE node
 * (freq_scale, ext_factor, attn_factor, ...): what llama_context derived.
 *
 * Part 2 (tables): runs ggml_rope_ext on ggml's CPU backend (the library built
 * with -march=native) with those settings, on rows of (1, 0) pairs: pair i of
 * the output is then exactly ggml's cache entry (cos_i, sin_i), as
 * x0*cos - x1*sin and x0*sin + x1*cos are exact for x = (1, 0). Part 3 rotates
 * a general vector (normal and NeoX order) for the rotation check.
 *
 * The frequency factors are made by formulas the test repeats (float
 * arithmetic, exact). Prints C initializers for test_rope.c. */
#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- part 1 ---------- */

struct seen {
    int found;
    int32_t params[16];
};

static bool on_eval(struct ggml_tensor *t, bool ask, void *user)
{
    struct seen *s = user;
    if (t->op != GGML_OP_ROPE) return false;
    if (ask) return !s->found;
    if (!s->found) memcpy(s->params, t->op_params, sizeof s->params);
    s->found = 1;
    return true;
}

static float pf(const int32_t *p, int i)
{
    float f;
    memcpy(&f, p + i, 4);
    return f;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static struct seen derived[8];
static int n_derived;

static void derive(const char *path, const char *name, const struct llama_model_kv_override *kv,
                   uint32_t n_ctx)
{
    struct llama_model_params mp = llama_model_default_params();
    mp.kv_overrides = kv;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m) {
        fprintf(stderr, "%s: load failed\n", name);
        exit(1);
    }
    struct seen s = {0};
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = cp.n_ubatch = 8;
    cp.cb_eval = on_eval;
    cp.cb_eval_user_data = &s;
    struct llama_context *c = llama_init_from_model(m, cp);
    llama_token tok = 1;
    if (!c || llama_decode(c, llama_batch_get_one(&tok, 1)) || !s.found) {
        fprintf(stderr, "%s: decode failed\n", name);
        exit(1);
    }
    /* op_params: n_past, n_dims, mode, n_ctx, n_ctx_orig, freq_base, freq_scale,
     * ext_factor, attn_factor, beta_fast, beta_slow */
    printf(
        "    {\"%s\", %u, %d, 0x%08x, 0x%08x, 0x%08x, 0x%08x, 0x%08x, 0x%08x}, /* base %g scale %g "
        "ext %g attn %.9g beta %g %g */\n",
        name, n_ctx, s.params[4], bits(pf(s.params, 5)), bits(pf(s.params, 6)),
        bits(pf(s.params, 7)), bits(pf(s.params, 8)), bits(pf(s.params, 9)), bits(pf(s.params, 10)),
        pf(s.params, 5), pf(s.params, 6), pf(s.params, 7), pf(s.params, 8), pf(s.params, 9),
        pf(s.params, 10));
    derived[n_derived++] = s;
    llama_free(c);
    llama_model_free(m);
}

static struct llama_model_kv_override kv_str(const char *key, const char *v)
{
    struct llama_model_kv_override o = {.tag = LLAMA_KV_OVERRIDE_TYPE_STR};
    snprintf(o.key, sizeof o.key, "%s", key);
    snprintf(o.val_str, sizeof o.val_str, "%s", v);
    return o;
}

static struct llama_model_kv_override kv_f(const char *key, double v)
{
    struct llama_model_kv_override o = {.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT};
    snprintf(o.key, sizeof o.key, "%s", key);
    o.val_f64 = v;
    return o;
}

static struct llama_model_kv_override kv_i(const char *key, int64_t v)
{
    struct llama_model_kv_override o = {.tag = LLAMA_KV_OVERRIDE_TYPE_INT};
    snprintf(o.key, sizeof o.key, "%s", key);
    o.val_i64 = v;
    return o;
}

static void part1(const char *path)
{
    const struct llama_model_kv_override end = {.key = ""};
    printf("/* part 1: name, n_ctx, n_ctx_orig, base, freq_scale, ext, attn, beta_fast, "
           "beta_slow */\n");
    {
        struct llama_model_kv_override kv[] = {end};
        derive(path, "absent", kv, 256);
    }
    {
        struct llama_model_kv_override kv[] = {kv_f("llama.rope.scaling.factor", 4.0), end};
        derive(path, "factor-only", kv, 256);
    }
    {
        struct llama_model_kv_override kv[] = {kv_str("llama.rope.scaling.type", "none"),
                                               kv_f("llama.rope.scaling.factor", 4.0), end};
        derive(path, "none", kv, 256);
    }
    {
        struct llama_model_kv_override kv[] = {kv_str("llama.rope.scaling.type", "linear"),
                                               kv_f("llama.rope.scaling.factor", 2.0), end};
        derive(path, "linear", kv, 256);
    }
    {
        struct llama_model_kv_override kv[] = {
            kv_str("llama.rope.scaling.type", "yarn"), kv_f("llama.rope.scaling.factor", 4.0),
            kv_i("llama.rope.scaling.original_context_length", 32768), end};
        derive(path, "yarn", kv, 256);
    }
    {
        struct llama_model_kv_override kv[] = {
            kv_str("llama.rope.scaling.type", "yarn"), kv_f("llama.rope.scaling.factor", 40.0),
            kv_i("llama.rope.scaling.original_context_length", 4096),
            kv_f("llama.rope.scaling.attn_factor", 0.75), end};
        derive(path, "yarn-attn", kv, 512);
    }
    {
        struct llama_model_kv_override kv[] = {
            kv_str("llama.rope.scaling.type", "longrope"),
            kv_i("llama.rope.scaling.original_context_length", 4096),
            kv_f("llama.rope.scaling.attn_factor", 1.1902380714238083), end};
        derive(path, "longrope", kv, 256);
    }
}

/* ---------- parts 2 and 3 ---------- */

/* The factor formulas test_rope.c repeats. */
static float llama3_factor(int i) /* 1 for fast dimensions, 8 for slow, a ramp between */
{
    return i < 20 ? 1.0f : i >= 44 ? 8.0f : 1.0f + 7.0f * (float)(i - 20) / 24.0f;
}
static float phi3_short(int i)
{
    return 1.0f + 0.03125f * (float)i;
}
static float phi3_long(int i)
{
    return 1.0f + 0.75f * (float)i;
}

struct tcase {
    const char *name;
    int n_rot, mode, n_ctx_orig;
    float base, scale, ext, attn, beta_fast, beta_slow;
    int factors; /* 0 none, 1 llama3, 2 phi3 short, 3 phi3 long */
    int32_t pos[3];
};

static void run(const struct tcase *tc, const float *in, int n_pos, float *out)
{
    size_t mem = 64 * 1024 * 1024;
    struct ggml_init_params ip = {mem, NULL, false};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, tc->n_rot, 1, n_pos);
    struct ggml_tensor *pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_pos);
    struct ggml_tensor *ff = NULL;
    memcpy(x->data, in, sizeof(float) * tc->n_rot * n_pos);
    memcpy(pos->data, tc->pos, sizeof(int32_t) * n_pos);
    if (tc->factors) {
        ff = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, tc->n_rot / 2);
        for (int i = 0; i < tc->n_rot / 2; i++)
            ((float *)ff->data)[i] = tc->factors == 1   ? llama3_factor(i)
                                     : tc->factors == 2 ? phi3_short(i)
                                                        : phi3_long(i);
    }
    struct ggml_tensor *y =
        ggml_rope_ext(ctx, x, pos, ff, tc->n_rot, tc->mode, tc->n_ctx_orig, tc->base, tc->scale,
                      tc->ext, tc->attn, tc->beta_fast, tc->beta_slow);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_graph_compute_with_ctx(ctx, gf, 1);
    memcpy(out, y->data, sizeof(float) * tc->n_rot * n_pos);
    ggml_free(ctx);
}

static void print_words(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        printf("%s0x%08x,%s", i % 8 ? " " : "    ", bits(v[i]),
               i % 8 == 7 || i == n - 1 ? "\n" : "");
}

static void part2(void)
{
    /* llama.cpp's settings from part 1: linear (3), yarn (4), yarn-attn (5), longrope (6) */
    const int32_t *lin = derived[3].params, *y4 = derived[4].params, *y40 = derived[5].params,
                  *lr = derived[6].params;
    /* clang-format off */
    const struct tcase cases[] = {
        {"linear", 64, 0, lin[4], 10000.0f, pf(lin, 6), pf(lin, 7), pf(lin, 8), pf(lin, 9),
         pf(lin, 10), 0, {0, 7, 4095}},
        {"llama3", 128, 0, 8192, 500000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f, 1, {1, 100, 131000}},
        {"yarn-qwen", 128, 2, y4[4], 1000000.0f, pf(y4, 6), pf(y4, 7), pf(y4, 8), pf(y4, 9),
         pf(y4, 10), 0, {3, 40000, 131071}},
        {"yarn-40", 64, 0, y40[4], 10000.0f, pf(y40, 6), pf(y40, 7), pf(y40, 8), pf(y40, 9),
         pf(y40, 10), 0, {1, 5000, 163839}},
        {"phi3-short", 96, 2, lr[4], 10000.0f, pf(lr, 6), pf(lr, 7), pf(lr, 8), pf(lr, 9),
         pf(lr, 10), 2, {0, 17, 4095}},
        {"phi3-long", 96, 2, lr[4], 10000.0f, pf(lr, 6), pf(lr, 7), pf(lr, 8), pf(lr, 9),
         pf(lr, 10), 3, {1, 4097, 131071}},
    };
    /* clang-format on */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct tcase *tc = &cases[c];
        float in[3 * 128], out[3 * 128];
        for (int i = 0; i < 3 * tc->n_rot; i++)
            in[i] = i % 2 ? 0.0f : 1.0f;
        if (tc->mode == 2) /* NeoX pairs (i, i + n_rot/2): ones in the first half */
            for (int i = 0; i < 3 * tc->n_rot; i++)
                in[i] = i % tc->n_rot < tc->n_rot / 2 ? 1.0f : 0.0f;
        run(tc, in, 3, out);
        /* back to (cos, sin) pairs */
        float table[3 * 128];
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < tc->n_rot / 2; i++) {
                const float *o = out + p * tc->n_rot;
                table[p * tc->n_rot + 2 * i] = tc->mode == 2 ? o[i] : o[2 * i];
                table[p * tc->n_rot + 2 * i + 1] =
                    tc->mode == 2 ? o[i + tc->n_rot / 2] : o[2 * i + 1];
            }
        printf("/* %s: attn %.9g (0x%08x) */\n", tc->name, tc->attn, bits(tc->attn));
        printf("static const uint32_t golden_%d[] = {\n", (int)c);
        print_words(table, 3 * tc->n_rot);
        printf("};\n");

        if (c == 1 || c == 2) { /* part 3: a general vector, normal (llama3) and NeoX (qwen) */
            for (int i = 0; i < 3 * tc->n_rot; i++)
                in[i] = (float)(i % 7 - 3) * 0.375f + (float)(i % 13) / 64.0f;
            run(tc, in, 3, out);
            printf("static const uint32_t rotated_%d[] = {\n", (int)c);
            print_words(out, 3 * tc->n_rot);
            printf("};\n");
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rope_ggml llama-2-tiny-random.gguf\n");
        return 2;
    }
    llama_backend_init();
    part1(argv[1]);
    part2();
    return 0;
}
