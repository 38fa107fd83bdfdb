/* gen_model.c: writes llama-architecture GGUF files for tests.
 *
 *   gen_model -o OUT.gguf [--type TYPE] [--seed N] [--n-vocab N]
 *             [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]
 *             [--n-ctx N] [--rope-base F] [--tied] [--scale F]
 *   gen_model -o OUT.gguf --type q4_0 --from IN.gguf
 *   gen_model -o OUT.gguf --vocab-from VOCAB.gguf [--chat-template-file T.jinja] ...
 *
 * --vocab-from takes the tokenizer (every tokenizer.* key, the chat template
 * included) from another GGUF, such as llama.cpp's vocabulary-only files, and
 * sizes the model's vocabulary to it: a tiny model that speaks through a real
 * tokenizer. --chat-template-file sets tokenizer.chat_template from a file
 * (with or without --from).
 *
 * Without --from it makes a model of random weights with a synthetic
 * SentencePiece vocabulary that llama.cpp loads. Matrices are N(0,1) * scale /
 * sqrt(fan_in), fan_in being the row length ne[0]; with the final RMS norm the
 * logits then have a standard deviation of about `scale` (default 4), enough
 * spread that greedy decoding rarely meets a near-tie. Norm weights are
 * 1 + 0.1 N(0,1).
 *
 * Reproducible everywhere: the RNG is our own xoshiro256** seeded by
 * splitmix64, and the normal deviates are Irwin-Hall sums (12 uniforms - 6, a
 * close approximation with tails cut at 6 sigma) rather than Box-Muller, whose
 * log and cos differ in the last bits between C libraries. Only +, *, / and
 * sqrt are used, which IEEE 754 rounds the same on every machine, so one seed
 * gives byte-identical files anywhere.
 *
 * TYPE is any format of engine/core/formats.h (f32, f16, bf16, q4_0 ... q6_k,
 * iq4_nl, iq4_xs; case does not matter). 2-D tensors get TYPE when their rows
 * (ne[0]) are a whole number of blocks, else llama-quantize's fallback (Q4_K ->
 * Q5_0, ...; F16 when even that does not fit); 1-D tensors (norms) stay F32;
 * general.file_type is llama.cpp's number for TYPE. With --from it copies
 * every key/value and tensor of IN, converting them the same way. The
 * quantizers are quantize.c's, bit-exact with ggml's.
 */
#include "quant.h"
#include "rng.h"
#include "vkllm.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* no FMAs: the same roundings on every machine */
#endif

struct args {
    const char *out, *from, *vocab_from, *template_file;
    uint32_t type;
    uint64_t seed;
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    double rope_base, scale;
    bool tied, shape_given;
};

/* llama.cpp's LLAMA_FTYPE values (llama.h) for files all of one type; a
 * K-quant's is its _M mix's, as llama-quantize names them */
static uint32_t file_type(uint32_t type)
{
    switch (type) {
    case VKLLM_TYPE_F16: return 1;
    case VKLLM_TYPE_Q4_0: return 2;
    case VKLLM_TYPE_Q4_1: return 3;
    case VKLLM_TYPE_Q8_0: return 7;
    case VKLLM_TYPE_Q5_0: return 8;
    case VKLLM_TYPE_Q5_1: return 9;
    case VKLLM_TYPE_Q2_K: return 10;
    case VKLLM_TYPE_Q3_K: return 12;
    case VKLLM_TYPE_Q4_K: return 15;
    case VKLLM_TYPE_Q5_K: return 17;
    case VKLLM_TYPE_Q6_K: return 18;
    case VKLLM_TYPE_IQ4_NL: return 25;
    case VKLLM_TYPE_IQ4_XS: return 30;
    case VKLLM_TYPE_BF16: return 32;
    default: return 0;
    }
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ============================== Random numbers ============================== */

static struct rng rng; /* the one random stream of a run */

/* About N(0, 1): the sum of 12 uniforms on [0, 1) has mean 6 and variance 1. */
static double normal(void)
{
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += (double)(rng_next(&rng) >> 11) * (1.0 / 9007199254740992.0);
    return s - 6.0;
}

/* ============================== Vocabulary ============================== */

/* Words whose every "▁"-prefix becomes a token, so that SentencePiece's merges
 * can build the whole word from its letters. */
static const char *const words[] = {
    "the",    "a",    "and",  "to",    "was",  "he",    "she",   "it",     "they", "in",
    "of",     "with", "said", "Once",  "upon", "time",  "there", "little", "girl", "boy",
    "named",  "Lily", "Tom",  "day",   "big",  "happy", "play",  "friend", "saw",  "went",
    "wanted", "mom",  "very", "loved", "had",  "his",   "her",   "you",    "I",    "not",
    "for",    "on",   "but",  "so",    "one",  "be",    "dog",   "cat",    "park", "tree",
    "sun",    "run",  "fun",  "good",  "nice", "were",  "what",  "all",    "find",
};

struct vocab {
    char **tok;
    float *score;
    int32_t *type;
    uint32_t n, cap;
};

static void vocab_add(struct vocab *v, const char *s, int32_t type)
{
    if (v->n == v->cap) return;
    for (uint32_t i = 259; i < v->n && type == 1; i++) /* the word prefixes are few: linear */
        if (strcmp(v->tok[i], s) == 0) return;
    v->tok[v->n] = strdup(s);
    if (!v->tok[v->n]) die("out of memory");
    v->type[v->n] = type;
    v->score[v->n] = type == 1 ? -(float)(v->n - 259) : 0.0f; /* descending for normal tokens */
    v->n++;
}

/* "<unk>", "<s>", "</s>", the 256 byte tokens, "▁", single characters, word
 * prefixes, then lowercase strings of 2, 3, ... letters until N tokens. */
static void vocab_build(struct vocab *v, uint32_t n)
{
    v->cap = n;
    v->tok = calloc(n, sizeof *v->tok);
    v->score = calloc(n, sizeof *v->score);
    v->type = calloc(n, sizeof *v->type);
    if (!v->tok || !v->score || !v->type) die("out of memory");
    vocab_add(v, "<unk>", 2);
    vocab_add(v, "<s>", 3);
    vocab_add(v, "</s>", 3);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        vocab_add(v, s, 6);
    }
    vocab_add(v, "\xe2\x96\x81", 1); /* U+2581, SentencePiece's space */
    /* lowercase first, so that even a small vocabulary spells most text */
    for (const char *c = "abcdefghijklmnopqrstuvwxyz"; *c; c++)
        vocab_add(v, (char[2]){*c, 0}, 1);
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        char s[64] = "\xe2\x96\x81";
        for (size_t k = 0; words[w][k]; k++) {
            s[3 + k] = words[w][k];
            s[4 + k] = 0;
            vocab_add(v, s, 1);
        }
    }
    for (const char *c = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"; *c; c++)
        vocab_add(v, (char[2]){*c, 0}, 1);
    /* filler: all-lowercase strings of two or more letters cannot repeat a
     * token above, so they skip the duplicate check */
    for (int len = 2; v->n < n; len++) {
        uint64_t count = 1;
        for (int k = 0; k < len; k++)
            count *= 26;
        for (uint64_t i = 0; i < count && v->n < n; i++) {
            char s[32];
            uint64_t x = i;
            for (int k = len - 1; k >= 0; k--, x /= 26)
                s[k] = (char)('a' + x % 26);
            s[len] = 0;
            v->tok[v->n] = strdup(s);
            if (!v->tok[v->n]) die("out of memory");
            v->type[v->n] = 1;
            v->score[v->n] = -(float)(v->n - 259);
            v->n++;
        }
    }
}

static void vocab_free(struct vocab *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->score);
    free(v->type);
}

/* ============================== Tensors ============================== */

/* Converted tensor data, kept until the writer has written it. */
static void **bufs;
static size_t n_bufs;

static void *keep(void *p)
{
    void **b = realloc(bufs, (n_bufs + 1) * sizeof *b);
    if (!p || !b) die("out of memory");
    bufs = b;
    bufs[n_bufs++] = p;
    return p;
}

/* Adds NAME (N_DIMS, NE) from the floats X as TYPE, or its fallback when its
 * rows are not a whole number of TYPE's blocks; 1-D tensors stay F32. */
static void add_tensor(vkllm_gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne,
                       const float *x, uint32_t type)
{
    if (n_dims == 1) type = VKLLM_TYPE_F32;
    type = quant_fallback_type(type, ne[0]);
    uint64_t nel = ne[0] * ne[1] * ne[2] * ne[3];
    uint64_t size = quant_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3];
    void *data = keep(malloc(size ? size : 1));
    quant_quantize_row(type, x, data, nel);
    if (vkllm_gguf_writer_add_tensor(w, name, type, n_dims, ne, data, size) != VKLLM_OK)
        die("cannot add tensor %s", name);
}

/* A random matrix [ne0, ne1] (ne0 = fan_in), or a norm vector [ne0] when ne1 is 0. */
static void add_random(vkllm_gguf_writer *w, const struct args *a, const char *name, uint64_t ne0,
                       uint64_t ne1)
{
    uint64_t ne[4] = {ne0, ne1 ? ne1 : 1, 1, 1}, n = ne0 * ne[1];
    float *x = malloc(n * sizeof *x);
    if (!x) die("out of memory");
    const double f = a->scale / sqrt((double)ne0);
    for (uint64_t i = 0; i < n; i++)
        x[i] = (float)(ne1 ? normal() * f : 1.0 + 0.1 * normal());
    add_tensor(w, name, ne1 ? 2 : 1, ne, x, a->type);
    free(x);
}

/* Copies every tokenizer.* key of VOCAB; returns its number of tokens. */
static uint32_t copy_tokenizer(vkllm_gguf_writer *w, const vkllm_gguf *vocab, const char *name)
{
    const struct vkllm_gguf_kv *tokens;
    if (vkllm_gguf_get_arr(vocab, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tokens, NULL) !=
            VKLLM_OK ||
        tokens->arr_len == 0 || tokens->arr_len > (1u << 24))
        die("%s: no tokenizer.ggml.tokens", name);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(vocab); i++) {
        const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(vocab, i);
        if (kv->key.len >= 10 && !memcmp(kv->key.ptr, "tokenizer.", 10) &&
            vkllm_gguf_writer_copy_kv(w, kv) != VKLLM_OK)
            die("%s: cannot copy a key/value", name);
    }
    return (uint32_t)tokens->arr_len;
}

/* Sets tokenizer.chat_template to the text of PATH. */
static void set_template(vkllm_gguf_writer *w, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open", path);
    size_t cap = 1 << 16, n = 0, got;
    char *text = malloc(cap);
    while (text && (got = fread(text + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap && !(text = realloc(text, cap *= 2))) die("out of memory");
    }
    if (!text || ferror(f)) die("%s: read failed", path);
    fclose(f);
    text[n] = 0;
    if (vkllm_gguf_writer_set_str(w, "tokenizer.chat_template", text) != VKLLM_OK)
        die("out of memory");
    free(text);
}

static void build_random(vkllm_gguf_writer *w, const struct args *a, const vkllm_gguf *vocab)
{
    const uint32_t head_dim = a->n_embd / a->n_head, n_kv = a->n_head_kv * head_dim;
    int rc = 0;
    rc |= vkllm_gguf_writer_set_str(w, "general.architecture", "llama");
    char name[96];
    snprintf(name, sizeof name, "gen_model seed %llu", (unsigned long long)a->seed);
    rc |= vkllm_gguf_writer_set_str(w, "general.name", name);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.context_length", a->n_ctx);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.embedding_length", a->n_embd);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.block_count", a->n_layer);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.feed_forward_length", a->n_ff);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.attention.head_count", a->n_head);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.attention.head_count_kv", a->n_head_kv);
    rc |= vkllm_gguf_writer_set_uint32(w, "llama.rope.dimension_count", head_dim);
    rc |= vkllm_gguf_writer_set_float32(w, "llama.rope.freq_base", (float)a->rope_base);
    rc |= vkllm_gguf_writer_set_float32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= vkllm_gguf_writer_set_uint32(w, "general.quantization_version", 2);
    rc |= vkllm_gguf_writer_set_uint32(w, "general.file_type", file_type(a->type));

    if (vocab) {
        copy_tokenizer(w, vocab, a->vocab_from);
    } else {
        struct vocab v = {0};
        vocab_build(&v, a->n_vocab);
        rc |= vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
        rc |= vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok,
                                            NULL, v.n);
        rc |=
            vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKLLM_GGUF_FLOAT32, v.score, v.n);
        rc |= vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, v.type,
                                        v.n);
        rc |= vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.bos_token_id", 1);
        rc |= vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.eos_token_id", 2);
        rc |= vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.unknown_token_id", 0);
        vocab_free(&v);
    }
    if (rc) die("cannot set the metadata");

    /* ne0 is the input dimension of every matrix: y = W x has ne1 outputs */
    add_random(w, a, "token_embd.weight", a->n_embd, a->n_vocab);
    for (uint32_t l = 0; l < a->n_layer; l++) {
        static const char *const parts[] = {"attn_norm", "attn_q",      "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_up",      "ffn_down"};
        const uint64_t ne0[] = {a->n_embd, a->n_embd, a->n_embd, a->n_embd, a->n_embd,
                                a->n_embd, a->n_embd, a->n_embd, a->n_ff};
        const uint64_t ne1[] = {0, a->n_embd, n_kv,    n_kv,     a->n_embd,
                                0, a->n_ff,   a->n_ff, a->n_embd};
        for (int p = 0; p < 9; p++) {
            char t[64];
            snprintf(t, sizeof t, "blk.%u.%s.weight", l, parts[p]);
            add_random(w, a, t, ne0[p], ne1[p]);
        }
    }
    add_random(w, a, "output_norm.weight", a->n_embd, 0);
    if (!a->tied) add_random(w, a, "output.weight", a->n_embd, a->n_vocab);
}

static bool key_is(const struct vkllm_gguf_kv *kv, const char *key)
{
    return kv->key.len == strlen(key) && memcmp(kv->key.ptr, key, kv->key.len) == 0;
}

/* llama.cpp's model loader sorts tensors by layer ("blk.N.", others first),
 * then by name, and llama-quantize writes them in that order; so do we, which
 * makes our output byte-identical to `llama-quantize --pure`. */
struct named {
    char name[64];
    const struct vkllm_gguf_tensor *t;
};

static long layer_of(const char *name)
{
    char *end;
    if (strncmp(name, "blk.", 4) || name[4] < '0' || name[4] > '9') return -1;
    long l = strtol(name + 4, &end, 10);
    return *end == '.' ? l : -1;
}

static int loader_order(const void *pa, const void *pb)
{
    const struct named *a = pa, *b = pb;
    long la = layer_of(a->name), lb = layer_of(b->name);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void build_from(vkllm_gguf_writer *w, const struct args *a, const vkllm_gguf *in)
{
    /* llama-quantize's order: the keys it sets again move to the end */
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(in); i++) {
        const struct vkllm_gguf_kv *kv = vkllm_gguf_kv_at(in, i);
        if (key_is(kv, "general.file_type") || key_is(kv, "general.quantization_version")) continue;
        if (vkllm_gguf_writer_copy_kv(w, kv) != VKLLM_OK)
            die("%s: cannot copy a key/value", a->from);
    }
    if (vkllm_gguf_writer_set_uint32(w, "general.quantization_version", 2) != VKLLM_OK ||
        vkllm_gguf_writer_set_uint32(w, "general.file_type", file_type(a->type)) != VKLLM_OK)
        die("out of memory");
    uint64_t n = vkllm_gguf_tensor_count(in);
    struct named *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) die("out of memory");
    for (uint64_t i = 0; i < n; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(in, i);
        snprintf(order[i].name, sizeof order[i].name, "%.*s", (int)t->name.len, t->name.ptr);
        order[i].t = t;
    }
    qsort(order, n, sizeof *order, loader_order);
    for (uint64_t i = 0; i < n; i++) {
        const struct vkllm_gguf_tensor *t = order[i].t;
        const char *name = order[i].name;
        if (!quant_supported(t->type) || t->n_dims > 2)
            die("tensor %s: gen_model converts 1-D and 2-D tensors of the formats in formats.h "
                "only",
                name);
        uint64_t nel = t->ne[0] * t->ne[1];
        float *x = malloc((nel ? nel : 1) * sizeof *x);
        if (!x) die("out of memory");
        quant_dequantize_row(t->type, t->data, x, nel);
        add_tensor(w, name, t->n_dims, t->ne, x, a->type);
        free(x);
    }
    free(order);
}

/* ============================== Command line ============================== */

static void usage(void)
{
    fputs("usage: gen_model -o OUT.gguf [--type TYPE] [--from IN.gguf] [--seed N]\n"
          "                 [--n-vocab N] [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]\n"
          "                 [--n-ff N] [--n-ctx N] [--rope-base F] [--tied] [--scale F]\n"
          "                 [--vocab-from VOCAB.gguf] [--chat-template-file T.jinja]\n"
          "TYPE: a format of engine/core/formats.h (f32, f16, bf16, q8_0, q4_k, iq4_xs, ...)\n",
          stderr);
}

static uint64_t parse_uint(const char *opt, const char *s, uint64_t max)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || *s == '-' || v > max) die("%s %s: expected a whole number in range", opt, s);
    return v;
}

static double parse_float(const char *opt, const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v > 0.0) || v > 1e30) die("%s %s: expected a positive number", opt, s);
    return v;
}

static void parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.type = VKLLM_TYPE_F32,
                       .seed = 1,
                       .n_vocab = 320,
                       .n_embd = 64,
                       .n_layer = 2,
                       .n_head = 4,
                       .n_ff = 128,
                       .n_ctx = 512,
                       .rope_base = 10000.0,
                       .scale = 4.0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--tied")) {
            a->tied = a->shape_given = true;
            continue;
        }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage();
            exit(0);
        }
        if (i + 1 >= argc) {
            usage();
            die("%s needs a value, or is not an option", o);
        }
        const char *v = argv[++i];
        struct {
            const char *name;
            uint32_t *dst;
        } dims[] = {{"--n-vocab", &a->n_vocab},     {"--n-embd", &a->n_embd},
                    {"--n-layer", &a->n_layer},     {"--n-head", &a->n_head},
                    {"--n-head-kv", &a->n_head_kv}, {"--n-ff", &a->n_ff},
                    {"--n-ctx", &a->n_ctx}};
        bool done = false;
        for (size_t k = 0; k < sizeof dims / sizeof dims[0] && !done; k++) {
            if (strcmp(o, dims[k].name)) continue;
            *dims[k].dst = (uint32_t)parse_uint(o, v, 1u << 24);
            if (!*dims[k].dst) die("%s must be at least 1", o);
            done = a->shape_given = true;
        }
        if (done) continue;
        if (!strcmp(o, "-o"))
            a->out = v;
        else if (!strcmp(o, "--from"))
            a->from = v;
        else if (!strcmp(o, "--vocab-from"))
            a->vocab_from = v;
        else if (!strcmp(o, "--chat-template-file"))
            a->template_file = v;
        else if (!strcmp(o, "--seed"))
            a->seed = parse_uint(o, v, UINT64_MAX);
        else if (!strcmp(o, "--rope-base"))
            a->rope_base = parse_float(o, v), a->shape_given = true;
        else if (!strcmp(o, "--scale"))
            a->scale = parse_float(o, v);
        else if (!strcmp(o, "--type")) {
            uint32_t f = 0;
            while (f < quant_format_count && strcasecmp(v, quant_formats[f].name))
                f++;
            if (f == quant_format_count) die("--type %s: not a format of formats.h", v);
            a->type = quant_formats[f].type;
        } else {
            usage();
            die("unknown option %s", o);
        }
    }
    if (!a->out) {
        usage();
        die("-o OUT.gguf is required");
    }
    if (a->from && a->shape_given)
        die("--from takes the model's shape from %s: leave out --n-*, --rope-base and --tied",
            a->from);
    if (!a->n_head_kv) a->n_head_kv = a->n_head;
    if (a->n_embd % a->n_head)
        die("--n-embd %u is not a multiple of --n-head %u", a->n_embd, a->n_head);
    if ((a->n_embd / a->n_head) % 2)
        die("the head dimension (n_embd / n_head = %u) must be even for RoPE",
            a->n_embd / a->n_head);
    if (a->n_head % a->n_head_kv)
        die("--n-head %u is not a multiple of --n-head-kv %u", a->n_head, a->n_head_kv);
    if (a->from && a->vocab_from) die("--vocab-from makes a new model: leave out --from");
    if (a->n_vocab < 260 && !a->vocab_from)
        die("--n-vocab %u is too small: the vocabulary has 259 special and byte tokens, and "
            "at least \"\xe2\x96\x81\"",
            a->n_vocab);
}

int main(int argc, char **argv)
{
    struct args a;
    parse_args(argc, argv, &a);

    struct vkllm_error err;
    vkllm_gguf_writer *w;
    vkllm_gguf *in = NULL, *vocab = NULL;
    if (vkllm_gguf_writer_create(&w, &err) != VKLLM_OK) die("%s", err.msg);
    if (a.from) {
        if (vkllm_gguf_open(a.from, &in, &err) != VKLLM_OK) die("%s", err.msg);
        build_from(w, &a, in);
    } else {
        if (a.vocab_from) {
            if (vkllm_gguf_open(a.vocab_from, &vocab, &err) != VKLLM_OK) die("%s", err.msg);
            const struct vkllm_gguf_kv *tokens;
            if (vkllm_gguf_get_arr(vocab, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tokens,
                                   NULL) == VKLLM_OK)
                a.n_vocab = (uint32_t)tokens->arr_len;
        }
        rng_seed(&rng, a.seed);
        build_random(w, &a, vocab);
    }
    if (a.template_file) set_template(w, a.template_file);
    if (vkllm_gguf_writer_write(w, a.out, &err) != VKLLM_OK) die("%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(in);
    vkllm_gguf_close(vocab);
    for (size_t i = 0; i < n_bufs; i++)
        free(bufs[i]);
    free(bufs);
    return 0;
}
