/* gen_lora.c: writes a random LoRA adapter, in llama.cpp's GGUF adapter
 * format, for a model file (one gen_model made, or any other).
 *
 *   gen_lora -m BASE.gguf -o OUT.gguf [--rank R] [--alpha F | --no-alpha]
 *            [--type f32|f16|q8_0] [--targets LIST] [--seed N] [--mag F]
 *
 * For each of BASE's matrices that LIST names (comma-separated: q, k, v, qkv,
 * o, gate, up, down, output, token_embd; "all" for every one of them; default
 * q,k,v,qkv,o,gate,up,down) it writes NAME.lora_a and NAME.lora_b as
 * convert_lora_to_gguf.py does: A (ne = [k, R]: R rows of the matrix's input
 * width) and B (ne = [R, n]), token_embd's flipped (A [R, n_vocab], B [R,
 * n_embd]); general.type = adapter, adapter.type = lora, adapter.lora.alpha
 * (default R, so that llama.cpp's factor alpha / rank is 1) and BASE's
 * general.architecture. A is N(0,1) / sqrt(k) (token_embd's N(0,1)), B
 * N(0,1) * mag / sqrt(R) (default mag 2; token_embd's also / sqrt(n_embd)):
 * the side path then moves each output by about half of what the random base
 * matrix gives, enough to change greedy continuations. A Q8_0 tensor whose rows
 * are not whole blocks is written F16, as llama-quantize falls back.
 *
 * Options that make broken adapters for the error tests: --arch NAME (another
 * general.architecture), --general-type S, --transpose-a (A as [R, k], the
 * old finetune layout llama.cpp refuses), --drop-b (the first pair without
 * lora_b), --rank-b R (B's rank differs from A's). Reproducible as gen_model
 * is: our own RNG and Irwin-Hall normals. */
#include "quant.h"
#include "rng.h"
#include "vkllm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rng rng;
static void *kept[1024]; /* tensor data, alive until the file is written */
static size_t n_kept;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gen_lora: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* About N(0, 1), as gen_model draws it. */
static double normal(void)
{
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += (double)(rng_next(&rng) >> 11) * (1.0 / 9007199254740992.0);
    return s - 6.0;
}

struct args {
    const char *base, *out, *targets, *arch, *general_type;
    uint32_t rank, rank_b, type;
    double alpha, mag;
    bool no_alpha, transpose_a, drop_b;
    uint64_t seed;
};

static const struct {
    const char *key, *suffix;
} target_names[] = {
    {"q", ".attn_q.weight"},      {"k", ".attn_k.weight"},
    {"v", ".attn_v.weight"},      {"qkv", ".attn_qkv.weight"},
    {"o", ".attn_output.weight"}, {"gate", ".ffn_gate.weight"},
    {"up", ".ffn_up.weight"},     {"down", ".ffn_down.weight"},
    {"output", "output.weight"},  {"token_embd", "token_embd.weight"},
};

/* Whether LIST names the target whose tensor is NAME. */
static bool targeted(const char *list, const char *name)
{
    for (size_t i = 0; i < sizeof target_names / sizeof target_names[0]; i++) {
        const char *suf = target_names[i].suffix;
        const size_t n = strlen(name), m = strlen(suf);
        const bool layer = suf[0] == '.';
        if (n < m || strcmp(name + n - m, suf) || (layer ? strncmp(name, "blk.", 4) : n != m))
            continue;
        const char *key = target_names[i].key;
        for (const char *p = list; *p;) {
            const char *e = strchr(p, ',');
            const size_t len = e ? (size_t)(e - p) : strlen(p);
            if ((len == strlen(key) && !strncmp(p, key, len)) ||
                (len == 3 && !strncmp(p, "all", 3)))
                return true;
            p += len + (e != NULL);
        }
    }
    return false;
}

/* Adds NAME with NE0 x NE1 values N(0,1) * GAIN, as TYPE (or its fallback). */
static void add(vkllm_gguf_writer *w, const char *name, uint64_t ne0, uint64_t ne1, double gain,
                uint32_t type)
{
    const uint64_t ne[4] = {ne0, ne1, 1, 1};
    float *x = malloc(ne0 * ne1 * sizeof *x);
    if (!x) die("out of memory");
    for (uint64_t i = 0; i < ne0 * ne1; i++)
        x[i] = (float)(normal() * gain);
    type = quant_fallback_type(type, ne0);
    const uint64_t size = quant_row_bytes(type, ne0) * ne1;
    void *data = malloc(size);
    if (!data || n_kept == sizeof kept / sizeof kept[0]) die("out of memory");
    kept[n_kept++] = data;
    quant_quantize_row(type, x, data, ne0 * ne1);
    free(x);
    if (vkllm_gguf_writer_add_tensor(w, name, type, 2, ne, data, size) != VKLLM_OK)
        die("cannot add tensor %s", name);
}

static void usage(void)
{
    fputs("usage: gen_lora -m BASE.gguf -o OUT.gguf [--rank R] [--alpha F | --no-alpha]\n"
          "                [--type f32|f16|q8_0] [--targets q,k,v,qkv,o,gate,up,down,output,"
          "token_embd|all]\n"
          "                [--seed N] [--mag F] [--arch NAME] [--general-type S] "
          "[--transpose-a]\n"
          "                [--drop-b] [--rank-b R]\n",
          stderr);
    exit(2);
}

static void parse(int argc, char **argv, struct args *a)
{
    *a = (struct args){.targets = "q,k,v,qkv,o,gate,up,down",
                       .general_type = "adapter",
                       .rank = 8,
                       .type = VKLLM_TYPE_F32,
                       .alpha = -1,
                       .mag = 2.0,
                       .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--no-alpha")) {
            a->no_alpha = true;
            continue;
        }
        if (!strcmp(o, "--transpose-a")) {
            a->transpose_a = true;
            continue;
        }
        if (!strcmp(o, "--drop-b")) {
            a->drop_b = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(o, "-m"))
            a->base = v;
        else if (!strcmp(o, "-o"))
            a->out = v;
        else if (!strcmp(o, "--rank"))
            a->rank = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(o, "--rank-b"))
            a->rank_b = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(o, "--alpha"))
            a->alpha = strtod(v, NULL);
        else if (!strcmp(o, "--mag"))
            a->mag = strtod(v, NULL);
        else if (!strcmp(o, "--seed"))
            a->seed = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--targets"))
            a->targets = v;
        else if (!strcmp(o, "--arch"))
            a->arch = v;
        else if (!strcmp(o, "--general-type"))
            a->general_type = v;
        else if (!strcmp(o, "--type")) {
            if (!strcmp(v, "f32"))
                a->type = VKLLM_TYPE_F32;
            else if (!strcmp(v, "f16"))
                a->type = VKLLM_TYPE_F16;
            else if (!strcmp(v, "q8_0"))
                a->type = VKLLM_TYPE_Q8_0;
            else
                die("--type %s: f32, f16 or q8_0", v);
        } else
            usage();
    }
    if (!a->base || !a->out || a->rank == 0) usage();
    if (!a->rank_b) a->rank_b = a->rank;
    if (a->alpha < 0) a->alpha = a->rank;
}

int main(int argc, char **argv)
{
    struct args a;
    parse(argc, argv, &a);
    rng_seed(&rng, a.seed);
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    vkllm_gguf_writer *w;
    if (vkllm_gguf_open(a.base, &g, &err) || vkllm_gguf_writer_create(&w, &err)) die("%s", err.msg);
    char arch[128];
    struct vkllm_gguf_str s;
    if (vkllm_gguf_get_str(g, "general.architecture", &s, &err) || s.len >= sizeof arch)
        die("%s: no general.architecture", a.base);
    memcpy(arch, s.ptr, s.len);
    arch[s.len] = '\0';
    vkllm_gguf_writer_set_str(w, "general.type", a.general_type);
    vkllm_gguf_writer_set_str(w, "general.architecture", a.arch ? a.arch : arch);
    vkllm_gguf_writer_set_str(w, "adapter.type", "lora");
    if (!a.no_alpha) vkllm_gguf_writer_set_float32(w, "adapter.lora.alpha", (float)a.alpha);

    uint32_t n = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[256], an[272], bn[272];
        if (t->n_dims != 2 || t->name.len >= sizeof name) continue;
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        if (!targeted(a.targets, name)) continue;
        snprintf(an, sizeof an, "%s.lora_a", name);
        snprintf(bn, sizeof bn, "%s.lora_b", name);
        const uint64_t k = t->ne[0], rows = t->ne[1], r = a.rank;
        const double b_gain = a.mag / sqrt((double)a.rank);
        if (!strcmp(name, "token_embd.weight")) {
            add(w, an, r, rows, 1.0, a.type);
            add(w, bn, a.rank_b, k, b_gain / sqrt((double)k), a.type);
        } else {
            if (a.transpose_a)
                add(w, an, r, k, 1.0 / sqrt((double)k), a.type);
            else
                add(w, an, k, r, 1.0 / sqrt((double)k), a.type);
            if (!(a.drop_b && n == 0)) add(w, bn, a.rank_b, rows, b_gain, a.type);
        }
        n++;
    }
    if (!n) die("%s: no matrix matches --targets %s", a.base, a.targets);
    if (vkllm_gguf_writer_write(w, a.out, &err)) die("%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(g);
    for (size_t i = 0; i < n_kept; i++)
        free(kept[i]);
    return 0;
}
