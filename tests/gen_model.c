/* gen_model.c: writes GGUF files of random-weight models for tests.
 *
 *   gen_model -o OUT.gguf [--arch NAME] [--type TYPE] [--seed N] [--n-vocab N]
 *             [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]
 *             [--n-ctx N] [--rope-base F] [--tied] [--scale F] [family options]
 *   gen_model -o OUT.gguf --type q4_0 --from IN.gguf
 *   gen_model -o OUT.gguf --vocab-from VOCAB.gguf [--chat-template-file T.jinja] ...
 *
 * --arch NAME (default llama) picks the architecture: llama, qwen2, qwen3,
 * phi3, gemma, gemma2, gemma3, falcon, gptneox, stablelm, starcoder, bloom or starcoder2,
 * each written with the keys and tensors that llama.cpp's loader (v0.5.0,
 * src/models/NAME.cpp) asks for, no more (it refuses a file with a tensor it
 * does not ask for). Also gptj, a file llama.cpp refuses ("unsupported model
 * architecture"), for testing that refusal. The family options:
 *
 *   --n-rot N           rotary dimensions per head (default all): phi3,
 *                       gptneox, stablelm (partial rotary; llama.cpp requires
 *                       all of them for the others)
 *   --fused-qkv         one attn_qkv matrix instead of attn_q/k/v: llama,
 *                       qwen2, qwen3, gemma*, stablelm (phi3 has it by
 *                       default; falcon, gptneox, starcoder, bloom always)
 *   --split-qkv         attn_q/k/v for phi3
 *   --qkv-bias 0|1      q/k/v (or qkv) biases: default 1 for qwen2, 0 for the
 *                       families where they are optional; gptneox, starcoder
 *                       and bloom always have them, falcon never
 *   --window N          attention.sliding_window: gemma2 (default 4096 when
 *                       absent), gemma3 (no window when absent); written also
 *                       for llama and phi3, whose loaders ignore it
 *   --swa-pattern N     attention.sliding_window_pattern (gemma2, gemma3):
 *                       every Nth layer is global, the others use the window
 *                       (default 2 for gemma2, 6 for gemma3)
 *   --rope-base-swa F   rope.freq_base_swa, the RoPE base of the windowed
 *                       layers (gemma2, gemma3)
 *   --attn-softcap F    attn_logit_softcapping (gemma2; 50 when absent)
 *   --final-softcap F   final_logit_softcapping (gemma2: 30 when absent;
 *                       gemma3: none when absent)
 *   --parallel-residual 0|1  gptneox: use_parallel_residual (default 1);
 *                       stablelm: 1 leaves out ffn_norm, so that the FFN reads
 *                       the attention's input norm (StableLM 2 12B; default 0)
 *   --qk-norm           stablelm: per-head LayerNorm of q and k
 *                       (attn_q_norm [head_dim, n_head], attn_k_norm)
 *   --falcon-norm2      falcon: attn_norm_2, the attention's own input norm
 *                       (Falcon 40B)
 *   --rope-scaling T    rope.scaling.type T (linear, yarn, longrope), with
 *   --rope-factor F     rope.scaling.factor and
 *   --rope-orig-ctx N   rope.scaling.original_context_length (when given)
 *   --rope-factors      frequency factors: llama's rope_freqs.weight (Llama
 *                       3.1), phi3's rope_factors_long/short.weight with
 *                       rope.scaling.attn_factor (LongRoPE); by formula
 *
 * --tied leaves out output.weight (the output matrix is then token_embd);
 * gemma and gemma2 are always tied, gptneox and stablelm never. RMS-norm
 * families (llama, qwen*, phi3, gemma*) write
 * attention.layer_norm_rms_epsilon, LayerNorm families
 * attention.layer_norm_epsilon and a bias beside every norm weight.
 *
 * --vocab-from takes the tokenizer (every tokenizer.* key, the chat template
 * included) from another GGUF, such as llama.cpp's vocabulary-only files, and
 * sizes the model's vocabulary to it: a tiny model that speaks through a real
 * tokenizer. --chat-template-file sets tokenizer.chat_template from a file
 * (with or without --from).
 *
 * Without --from it makes a model of random weights with a synthetic
 * SentencePiece vocabulary that llama.cpp loads (with any architecture).
 * Matrices are N(0,1) * scale / sqrt(fan_in), fan_in being the row length
 * ne[0]; with the final norm the logits then have a standard deviation of
 * about `scale` (default 4), enough spread that greedy decoding rarely meets a
 * near-tie. Norm weights are 1 + 0.1 N(0,1); biases (LayerNorm's and the
 * matrices') 0.1 N(0,1). Tensors are drawn in the order they are written.
 * gemma* scale their input embedding by sqrt(n_embd), so their token_embd is
 * drawn sqrt(n_embd) times smaller (else it outweighs what the layers add and
 * the model repeats its last token), with output_norm's weights sqrt(n_embd)
 * times larger when token_embd is also the output matrix; and gemma2/3's
 * post-norms (post_attention_norm, post_ffw_norm), which set the size of what
 * each layer adds, have weights scale * (1 + 0.1 N(0,1)).
 *
 * Reproducible everywhere: the RNG is our own xoshiro256** seeded by
 * splitmix64, and the normal deviates are Irwin-Hall sums (12 uniforms - 6, a
 * close approximation with tails cut at 6 sigma) rather than Box-Muller, whose
 * log and cos differ in the last bits between C libraries. Only +, *, / and
 * sqrt are used, which IEEE 754 rounds the same on every machine, so one seed
 * gives byte-identical files anywhere.
 *
 * TYPE is any format of engine/core/formats.h (f32, f16, bf16, q4_0 ... q6_k,
 * iq4_nl, iq4_xs; case does not matter), or a mix as llama-quantize names it
 * (Q4_K_M, Q5_K_S, ...: each tensor's format as `vkllm quantize` chooses it,
 * quant_mix.c; not with --from, which `vkllm quantize` does). 2-D tensors get
 * TYPE when their rows (ne[0]) are a whole number of blocks, else
 * llama-quantize's fallback (Q4_K -> Q5_0, ...; F16 when even that does not
 * fit); 1-D tensors (norms, biases) and 2-D norms ("*_norm.weight") stay F32,
 * and position_embd.weight, which
 * llama-quantize does not quantize either, is F32 for a quantized TYPE;
 * general.file_type is llama.cpp's number for TYPE. With --from it copies
 * every key/value and tensor of IN, converting them the same way. The
 * quantizers are quantize.c's, bit-exact with ggml's.
 *
 * --fast makes big models for benchmarks in seconds (an 8B shape on a machine
 * of many cores): each matrix's rows are whole blocks copied at random from 16
 * rows drawn and quantized as above, by every core. Still reproducible: each
 * run of 64 rows has its own random stream, whatever the number of threads.
 */
#include "quant.h"
#include "rng.h"
#include "vkllm.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* no FMAs: the same roundings on every machine */
#endif

/* What llama.cpp's loader asks of each architecture (src/models/NAME.cpp). */
enum qkv_form { QKV_SPLIT, QKV_EITHER, QKV_FUSED }; /* only separate, either, only fused */
enum presence { NEVER, OPTIONAL, ALWAYS };

struct family {
    const char *name;
    bool layer_norm;        /* LayerNorm with a bias (else RMSNorm, no bias) */
    float eps;              /* the norm epsilon real files of the family have */
    bool rope, partial_rot; /* RoPE keys; a rotary dimension below head_dim allowed */
    enum qkv_form qkv;
    bool fused_default;     /* QKV_EITHER: fused unless --split-qkv (phi3) */
    enum presence qkv_bias; /* q/k/v or qkv biases */
    bool qkv_bias_default;  /* OPTIONAL: on unless --qkv-bias 0 (qwen2) */
    bool lin_bias;          /* attn_output and FFN biases (gpt-2 style) */
    bool gated;             /* ffn_gate (SwiGLU / GeGLU) */
    bool fused_up;          /* ffn_up holds gate and up: 2 * n_ff rows (phi3) */
    bool ffn_norm;          /* a norm before the FFN (falcon has none) */
    bool qk_norm;           /* attn_q_norm / attn_k_norm [head_dim] (RMS) */
    bool post_norms;        /* post_attention_norm and post_ffw_norm (gemma2/3) */
    enum presence output;   /* output.weight (OPTIONAL: --tied leaves it out) */
    bool pos_embd;          /* learned positions: position_embd [n_embd, n_ctx] */
    bool tok_norm;          /* token_embd_norm after the embedding (bloom) */
    bool window;            /* --window, --swa-pattern, --rope-base-swa */
    bool gptj_layout;       /* gptj's old tensors: ffn_up/down and output biases */
};

static const struct family families[] = {
    /* name   LN    eps   rope  part. qkv         fdef   qkv_bias  bdef   lin_b  gated  f_up   ffn_n
       qk_n   post   output    pos    tok_n  window gptj */
    {"llama", false, 1e-5f, true,  false, QKV_EITHER, false, OPTIONAL, false, false,
     true,    false, true,  false, false, OPTIONAL,   false, false,    true,  false},
    {"qwen2", false, 1e-6f, true,  false, QKV_EITHER, false, OPTIONAL, true,  false,
     true,    false, true,  false, false, OPTIONAL,   false, false,    false, false},
    {"qwen3", false, 1e-6f, true, false, QKV_EITHER, false, OPTIONAL, false, false,
     true,    false, true,  true, false, OPTIONAL,   false, false,    false, false},
    {"phi3", false, 1e-5f, true,  true,  QKV_EITHER, true,  OPTIONAL, false, false,
     false,  true,  true,  false, false, OPTIONAL,   false, false,    true,  false},
    {"gemma", false, 1e-6f, true,  false, QKV_EITHER, false, OPTIONAL, false, false,
     true,    false, true,  false, false, NEVER,      false, false,    false, false},
    {"gemma2", false, 1e-6f, true,  false, QKV_EITHER, false, OPTIONAL, false, false,
     true,     false, true,  false, true,  NEVER,      false, false,    true,  false},
    {"gemma3", false, 1e-6f, true, false, QKV_EITHER, false, OPTIONAL, false, false,
     true,     false, true,  true, true,  OPTIONAL,   false, false,    true,  false},
    {"falcon", true,  1e-5f, true,  false, QKV_FUSED, true,  NEVER, false, false,
     false,    false, false, false, false, OPTIONAL,  false, false, false, false},
    {"gptneox", true,  1e-5f, true,  true,  QKV_FUSED, true,  ALWAYS, true,  true,
     false,     false, true,  false, false, ALWAYS,    false, false,  false, false},
    {"stablelm", true,  1e-5f, true,  true,  QKV_EITHER, false, OPTIONAL, false, false,
     true,       false, true,  false, false, ALWAYS,     false, false,    false, false},
    {"starcoder", true,  1e-5f, false, false, QKV_FUSED, true, ALWAYS, true,  true,
     false,       false, true,  false, false, OPTIONAL,  true, false,  false, false},
    {"bloom", true,  1e-5f, false, false, QKV_FUSED, true,  ALWAYS, true,  true,
     false,   false, true,  false, false, OPTIONAL,  false, true,   false, false},
    {"starcoder2", true,  1e-5f, true,  false, QKV_EITHER, false, OPTIONAL, true,  true,
     false,        false, true,  false, false, OPTIONAL,   false, false,    false, false},
    {"gptj", true,  1e-5f, true,  true,  QKV_SPLIT, false, NEVER, false, false,
     false,  false, false, false, false, ALWAYS,    false, false, false, true},
};

struct args {
    const char *out, *from, *vocab_from, *template_file;
    const struct family *fam;
    uint32_t type;   /* the format, or the mix's default format */
    const char *mix; /* TYPE when it names a mix (Q4_K_M, ...), else NULL */
    bool fast;       /* --fast */
    int threads;     /* --threads, 0: one a core */
    uint64_t seed;
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_rot;
    uint32_t window, swa_pattern;
    double rope_base, scale, rope_base_swa, attn_softcap, final_softcap, rope_factor;
    const char *rope_scaling;
    uint32_t rope_orig_ctx;
    bool rope_factors;
    int fused_qkv, qkv_bias, par_res; /* -1: the family's default */
    bool tied, qk_norm, falcon_norm2, shape_given;
};

/* general.file_type: llama.cpp's LLAMA_FTYPE for TYPE (a K-quant format's is
 * its _M mix's, as llama-quantize names them) */
static uint32_t file_type(const struct args *a)
{
    int ft = quant_mix_file_type(a->mix ? a->mix : vkllm_type_info(a->type)->name);
    return ft > 0 ? (uint32_t)ft : 0;
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

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* The format tensor NAME (N_DIMS, rows of NE0) is stored in: TYPE, or its
 * fallback when its rows are not a whole number of TYPE's blocks. Like
 * llama-quantize, it leaves alone 1-D tensors, norms and position_embd: those
 * keep ORIG (the type they had in --from's input; -1 for a new model: F32, or
 * TYPE when TYPE is a float format and the tensor is position_embd). */
static uint32_t stored_type(const char *name, uint32_t n_dims, uint64_t ne0, uint32_t type,
                            int orig)
{
    const bool float_type =
        type == VKLLM_TYPE_F32 || type == VKLLM_TYPE_F16 || type == VKLLM_TYPE_BF16;
    if (n_dims == 1)
        type = VKLLM_TYPE_F32;
    else if (ends_with(name, "_norm.weight"))
        type = orig >= 0 ? (uint32_t)orig : VKLLM_TYPE_F32;
    else if (!strcmp(name, "position_embd.weight"))
        type = orig >= 0 ? (uint32_t)orig : float_type ? type : VKLLM_TYPE_F32;
    return quant_fallback_type(type, ne0);
}

/* Adds NAME (N_DIMS, NE) from the floats X as stored_type says. */
static void add_tensor(vkllm_gguf_writer *w, const char *name, uint32_t n_dims, const uint64_t *ne,
                       const float *x, uint32_t type, int orig)
{
    type = stored_type(name, n_dims, ne[0], type, orig);
    uint64_t nel = ne[0] * ne[1] * ne[2] * ne[3];
    uint64_t size = quant_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3];
    void *data = keep(malloc(size ? size : 1));
    quant_quantize_row(type, x, data, nel);
    if (vkllm_gguf_writer_add_tensor(w, name, type, n_dims, ne, data, size) != VKLLM_OK)
        die("cannot add tensor %s", name);
}

/* With a mix TYPE, a first pass over the model only notes its tensors
 * (plan.noting), quant_mix_types chooses each one's format, and the second
 * pass makes them in the same order. */
static struct {
    bool noting;
    struct quant_mix_tensor *ts;
    char (*names)[96];
    uint64_t n, next;
} plan;

static void plan_note(const char *name, uint64_t ne0, uint64_t ne1)
{
    if (!(plan.n & (plan.n + 1))) { /* 0, 1, 3, 7, ...: double the room */
        plan.ts = realloc(plan.ts, (2 * plan.n + 1) * sizeof *plan.ts);
        plan.names = realloc(plan.names, (2 * plan.n + 1) * sizeof *plan.names);
        if (!plan.ts || !plan.names) die("out of memory");
    }
    snprintf(plan.names[plan.n], sizeof plan.names[plan.n], "%s", name);
    plan.ts[plan.n] =
        (struct quant_mix_tensor){.n_dims = ne1 > 1 ? 2 : 1, .ne0 = ne0, .type = VKLLM_TYPE_F32};
    plan.n++;
}

/* The format of the next tensor: the plan's, else TYPE. */
static uint32_t plan_type(const struct args *a, const char *name)
{
    if (!a->mix) return a->type;
    if (plan.next >= plan.n || strcmp(plan.names[plan.next], name))
        die("internal error: tensor %s is not the one planned", name);
    return plan.ts[plan.next++].type;
}

/* --fast: rows of whole blocks (UNIT bytes) copied at random from a pool of
 * FAST_POOL_ROWS quantized rows, FAST_CHUNK_ROWS rows at a time on each thread,
 * each run of rows with its own random stream. */
#define FAST_POOL_ROWS  16
#define FAST_CHUNK_ROWS 64

struct fast_fill {
    const uint8_t *pool;
    uint8_t *out;
    uint64_t row_bytes, unit, n_rows, seed;
    uint64_t next_chunk; /* taken atomically */
};

static void *fast_fill_rows(void *user)
{
    struct fast_fill *f = user;
    for (;;) {
        const uint64_t c = __atomic_fetch_add(&f->next_chunk, 1, __ATOMIC_RELAXED);
        const uint64_t r0 = c * FAST_CHUNK_ROWS;
        if (r0 >= f->n_rows) return NULL;
        const uint64_t r1 = r0 + FAST_CHUNK_ROWS < f->n_rows ? r0 + FAST_CHUNK_ROWS : f->n_rows;
        struct rng r;
        rng_seed(&r, f->seed + c);
        for (uint64_t row = r0; row < r1; row++)
            for (uint64_t at = 0; at < f->row_bytes; at += f->unit) {
                const uint64_t from = rng_next(&r) >> 60; /* 0 .. FAST_POOL_ROWS - 1 */
                memcpy(f->out + row * f->row_bytes + at, f->pool + from * f->row_bytes + at,
                       f->unit);
            }
    }
}

/* Fills N_ROWS rows of ROW_BYTES from the POOL's rows of TYPE, on every core. */
static void fast_fill(uint32_t type, uint64_t ne0, const void *pool, void *out, uint64_t row_bytes,
                      uint64_t n_rows, int threads)
{
    const struct quant_format *qf = quant_format(type);
    uint64_t unit = qf->block_bytes;
    if (qf->block_size == 1) /* a float format: 32 elements at a time where rows allow */
        for (uint64_t k = 32; k > 1; k /= 2)
            if (ne0 % k == 0) {
                unit *= k;
                break;
            }
    struct fast_fill f = {.pool = pool,
                          .out = out,
                          .row_bytes = row_bytes,
                          .unit = unit,
                          .n_rows = n_rows,
                          .seed = rng_next(&rng)};
    long n_cpu = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    int n = n_cpu < 1 ? 1 : n_cpu > 64 ? 64 : (int)n_cpu;
    pthread_t th[64];
    int started = 0;
    while (started < n - 1 && !pthread_create(&th[started], NULL, fast_fill_rows, &f))
        started++;
    fast_fill_rows(&f);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

/* Adds matrix NAME [ne0, ne1] as add_tensor would from the floats X of its
 * first FAST_POOL_ROWS rows, the rest filled from them. */
static void add_fast_matrix(vkllm_gguf_writer *w, const struct args *a, const char *name,
                            uint64_t ne0, uint64_t ne1, const float *x, uint32_t type)
{
    type = stored_type(name, 2, ne0, type, -1);
    const uint64_t ne[4] = {ne0, ne1, 1, 1}, row_bytes = quant_row_bytes(type, ne0);
    void *pool = malloc(row_bytes * FAST_POOL_ROWS), *data = keep(malloc(row_bytes * ne1));
    if (!pool) die("out of memory");
    quant_quantize_row(type, x, pool, ne0 * FAST_POOL_ROWS);
    fast_fill(type, ne0, pool, data, row_bytes, ne1, a->threads);
    free(pool);
    if (vkllm_gguf_writer_add_tensor(w, name, type, 2, ne, data, row_bytes * ne1) != VKLLM_OK)
        die("cannot add tensor %s", name);
}

/* What add_random makes: a matrix, a norm weight or a bias. */
enum kind { MATRIX, NORM, BIAS };

/* A random [ne0, ne1] (ne1 0 for a vector): a MATRIX is N(0,1) * scale /
 * sqrt(ne0) (ne0 = fan_in), a NORM weight 1 + 0.1 N(0,1), a BIAS 0.1 N(0,1);
 * each times GAIN. */
static void add_random_gain(vkllm_gguf_writer *w, const struct args *a, const char *name,
                            uint64_t ne0, uint64_t ne1, enum kind kind, double gain)
{
    if (plan.noting) {
        plan_note(name, ne0, ne1);
        return;
    }
    const uint32_t type = plan_type(a, name);
    const bool fast = a->fast && kind == MATRIX && ne1 > FAST_POOL_ROWS;
    uint64_t ne[4] = {ne0, ne1 ? ne1 : 1, 1, 1}, n = ne0 * (fast ? FAST_POOL_ROWS : ne[1]);
    float *x = malloc(n * sizeof *x);
    if (!x) die("out of memory");
    const double f = a->scale / sqrt((double)ne0);
    for (uint64_t i = 0; i < n; i++)
        x[i] = (float)((kind == MATRIX ? normal() * f
                        : kind == NORM ? 1.0 + 0.1 * normal()
                                       : 0.1 * normal()) *
                       gain);
    if (fast)
        add_fast_matrix(w, a, name, ne0, ne1, x, type);
    else
        add_tensor(w, name, ne1 ? 2 : 1, ne, x, type, -1);
    free(x);
}

static void add_random(vkllm_gguf_writer *w, const struct args *a, const char *name, uint64_t ne0,
                       uint64_t ne1, enum kind kind)
{
    add_random_gain(w, a, name, ne0, ne1, kind, 1.0);
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

/* The writer's calls for "<arch>.KEY". */
static int set_u32(vkllm_gguf_writer *w, const struct args *a, const char *key, uint32_t v)
{
    char k[96];
    snprintf(k, sizeof k, "%s.%s", a->fam->name, key);
    return vkllm_gguf_writer_set_uint32(w, k, v);
}

static int set_f32(vkllm_gguf_writer *w, const struct args *a, const char *key, double v)
{
    char k[96];
    snprintf(k, sizeof k, "%s.%s", a->fam->name, key);
    return vkllm_gguf_writer_set_float32(w, k, (float)v);
}

/* add_random for "blk.L.PART.SUFFIX" (L < 0: "PART.SUFFIX") */
static void add_part(vkllm_gguf_writer *w, const struct args *a, long l, const char *part,
                     const char *suffix, uint64_t ne0, uint64_t ne1, enum kind kind)
{
    char t[96];
    if (l < 0)
        snprintf(t, sizeof t, "%s.%s", part, suffix);
    else
        snprintf(t, sizeof t, "blk.%ld.%s.%s", l, part, suffix);
    add_random(w, a, t, ne0, ne1, kind);
}

static const char *pname(long l, const char *part)
{
    static char t[96];
    snprintf(t, sizeof t, "blk.%ld.%s.weight", l, part);
    return t;
}

/* A norm of N: its weight, and its bias for a LayerNorm family. */
static void add_norm(vkllm_gguf_writer *w, const struct args *a, long l, const char *part,
                     uint64_t n)
{
    add_part(w, a, l, part, "weight", n, 0, NORM);
    if (a->fam->layer_norm) add_part(w, a, l, part, "bias", n, 0, BIAS);
}

/* A matrix [ne0, ne1] and, when BIAS, its bias [ne1]. */
static void add_linear(vkllm_gguf_writer *w, const struct args *a, long l, const char *part,
                       uint64_t ne0, uint64_t ne1, bool bias)
{
    add_part(w, a, l, part, "weight", ne0, ne1, MATRIX);
    if (bias) add_part(w, a, l, part, "bias", ne1, 0, BIAS);
}

static void build_random(vkllm_gguf_writer *w, const struct args *a, const vkllm_gguf *vocab)
{
    const struct family *fam = a->fam;
    const uint32_t head_dim = a->n_embd / a->n_head, n_kv = a->n_head_kv * head_dim;
    int rc = 0;
    rc |= vkllm_gguf_writer_set_str(w, "general.architecture", fam->name);
    char name[96];
    snprintf(name, sizeof name, "gen_model seed %llu", (unsigned long long)a->seed);
    rc |= vkllm_gguf_writer_set_str(w, "general.name", name);
    rc |= set_u32(w, a, "context_length", a->n_ctx);
    rc |= set_u32(w, a, "embedding_length", a->n_embd);
    rc |= set_u32(w, a, "block_count", a->n_layer);
    rc |= set_u32(w, a, "feed_forward_length", a->n_ff);
    rc |= set_u32(w, a, "attention.head_count", a->n_head);
    rc |= set_u32(w, a, "attention.head_count_kv", a->n_head_kv);
    if (fam->rope) {
        rc |= set_u32(w, a, "rope.dimension_count", a->n_rot);
        rc |= set_f32(w, a, "rope.freq_base", a->rope_base);
    }
    rc |= set_f32(
        w, a, fam->layer_norm ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon",
        fam->eps);
    /* the family's own keys, only when asked for (llama's output is as before) */
    if (a->window) rc |= set_u32(w, a, "attention.sliding_window", a->window);
    if (a->swa_pattern) rc |= set_u32(w, a, "attention.sliding_window_pattern", a->swa_pattern);
    if (a->rope_base_swa > 0) rc |= set_f32(w, a, "rope.freq_base_swa", a->rope_base_swa);
    if (a->attn_softcap > 0) rc |= set_f32(w, a, "attn_logit_softcapping", a->attn_softcap);
    if (a->final_softcap > 0) rc |= set_f32(w, a, "final_logit_softcapping", a->final_softcap);
    if (a->rope_scaling) {
        char k[96];
        snprintf(k, sizeof k, "%s.rope.scaling.type", fam->name);
        rc |= vkllm_gguf_writer_set_str(w, k, a->rope_scaling);
    }
    if (a->rope_factor > 0) rc |= set_f32(w, a, "rope.scaling.factor", a->rope_factor);
    if (a->rope_orig_ctx)
        rc |= set_u32(w, a, "rope.scaling.original_context_length", a->rope_orig_ctx);
    if (a->rope_factors && !strcmp(fam->name, "phi3"))
        rc |= set_f32(w, a, "rope.scaling.attn_factor", 1.1902380714238083);
    if (!strcmp(fam->name, "gptneox")) {
        char k[64];
        snprintf(k, sizeof k, "%s.use_parallel_residual", fam->name);
        rc |= vkllm_gguf_writer_set_bool(w, k, a->par_res != 0);
    }
    rc |= vkllm_gguf_writer_set_uint32(w, "general.quantization_version", 2);
    rc |= vkllm_gguf_writer_set_uint32(w, "general.file_type", file_type(a));

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
    const uint64_t n_embd = a->n_embd, n_ff = a->n_ff;
    const bool fused = a->fused_qkv == 1, qkv_bias = a->qkv_bias == 1;
    /* gemma* multiply the embedding by sqrt(n_embd): drawn that much smaller, it
     * weighs in the residual stream as other families' does (else it drowns
     * the layers' output and the model repeats its input); where it is the
     * output matrix too, output_norm's weights are sqrt(n_embd) larger to
     * keep the logits' spread */
    const bool gemma = !strncmp(fam->name, "gemma", 5);
    const double embd_gain = gemma ? 1.0 / sqrt((double)n_embd) : 1.0;
    const double out_gain = gemma && a->tied ? sqrt((double)n_embd) : 1.0;
    /* gemma2/3's post-norms set the size of what each layer adds to the
     * residual stream: at 1 the embedding would still outweigh it */
    const double post_gain = a->scale;
    add_random_gain(w, a, "token_embd.weight", n_embd, a->n_vocab, MATRIX, embd_gain);
    if (fam->tok_norm) add_norm(w, a, -1, "token_embd_norm", n_embd);
    if (fam->pos_embd) add_random(w, a, "position_embd.weight", n_embd, a->n_ctx, MATRIX);
    for (long l = 0; l < (long)a->n_layer; l++) {
        add_norm(w, a, l, "attn_norm", n_embd);
        if (a->falcon_norm2) add_norm(w, a, l, "attn_norm_2", n_embd);
        if (fused) {
            add_linear(w, a, l, "attn_qkv", n_embd, n_embd + 2 * n_kv, qkv_bias);
        } else {
            add_linear(w, a, l, "attn_q", n_embd, n_embd, false);
            add_linear(w, a, l, "attn_k", n_embd, n_kv, false);
            add_linear(w, a, l, "attn_v", n_embd, n_kv, false);
            if (qkv_bias) {
                add_part(w, a, l, "attn_q", "bias", n_embd, 0, BIAS);
                add_part(w, a, l, "attn_k", "bias", n_kv, 0, BIAS);
                add_part(w, a, l, "attn_v", "bias", n_kv, 0, BIAS);
            }
        }
        if (fam->qk_norm) { /* RMS over each head, one weight for all heads */
            add_part(w, a, l, "attn_q_norm", "weight", head_dim, 0, NORM);
            add_part(w, a, l, "attn_k_norm", "weight", head_dim, 0, NORM);
        }
        if (a->qk_norm) { /* stablelm: LayerNorm without bias, a weight per head */
            add_part(w, a, l, "attn_q_norm", "weight", head_dim, a->n_head, NORM);
            add_part(w, a, l, "attn_k_norm", "weight", head_dim, a->n_head_kv, NORM);
        }
        add_linear(w, a, l, "attn_output", n_embd, n_embd, fam->lin_bias);
        if (fam->post_norms)
            add_random_gain(w, a, pname(l, "post_attention_norm"), n_embd, 0, NORM, post_gain);
        if (fam->ffn_norm && !(a->par_res == 1 && !strcmp(fam->name, "stablelm")))
            add_norm(w, a, l, "ffn_norm", n_embd);
        if (fam->gated) add_linear(w, a, l, "ffn_gate", n_embd, n_ff, false);
        add_linear(w, a, l, "ffn_up", n_embd, fam->fused_up ? 2 * n_ff : n_ff,
                   fam->lin_bias || fam->gptj_layout);
        add_linear(w, a, l, "ffn_down", n_ff, n_embd, fam->lin_bias || fam->gptj_layout);
        if (fam->post_norms)
            add_random_gain(w, a, pname(l, "post_ffw_norm"), n_embd, 0, NORM, post_gain);
    }
    add_random_gain(w, a, "output_norm.weight", n_embd, 0, NORM, out_gain);
    if (fam->layer_norm) add_random(w, a, "output_norm.bias", n_embd, 0, BIAS);
    if (!a->tied) add_linear(w, a, -1, "output", n_embd, a->n_vocab, fam->gptj_layout);
    if (a->rope_factors) {
        /* smooth, positive and exact in float: 1 + i/4 (long, and Llama 3.1's
         * divisors), 1 + i/32 (short) */
        const uint64_t half = a->n_rot / 2, ne[4] = {half, 1, 1, 1};
        float *longf = keep(malloc(half * sizeof *longf)), *shortf = keep(malloc(half * 4));
        for (uint64_t i = 0; i < half; i++) {
            longf[i] = 1.0f + (float)i / 4.0f;
            shortf[i] = 1.0f + (float)i / 32.0f;
        }
        const bool phi3 = !strcmp(fam->name, "phi3");
        if (vkllm_gguf_writer_add_tensor(w, phi3 ? "rope_factors_long.weight" : "rope_freqs.weight",
                                         VKLLM_TYPE_F32, 1, ne, longf, half * 4) != VKLLM_OK ||
            (phi3 && vkllm_gguf_writer_add_tensor(w, "rope_factors_short.weight", VKLLM_TYPE_F32, 1,
                                                  ne, shortf, half * 4) != VKLLM_OK))
            die("cannot add the rope factors");
    }
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
        vkllm_gguf_writer_set_uint32(w, "general.file_type", file_type(a)) != VKLLM_OK)
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
        void *raw = malloc(t->size ? t->size : 1);
        if (!x || !raw) die("out of memory");
        struct vkllm_error err = {0};
        if (vkllm_gguf_read(in, t, 0, raw, t->size, &err)) die("%s", err.msg);
        quant_dequantize_row(t->type, raw, x, nel);
        add_tensor(w, name, t->n_dims, t->ne, x, a->type, (int)t->type);
        free(raw);
        free(x);
    }
    free(order);
}

/* ============================== Command line ============================== */

static void usage(void)
{
    fputs(
        "usage: gen_model -o OUT.gguf [--arch NAME] [--type TYPE] [--from IN.gguf] [--seed N]\n"
        "                 [--n-vocab N] [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]\n"
        "                 [--n-ff N] [--n-ctx N] [--rope-base F] [--tied] [--scale F]\n"
        "                 [--vocab-from VOCAB.gguf] [--chat-template-file T.jinja]\n"
        "                 [--n-rot N] [--fused-qkv | --split-qkv] [--qkv-bias 0|1]\n"
        "                 [--window N] [--swa-pattern N] [--rope-base-swa F]\n"
        "                 [--attn-softcap F] [--final-softcap F] [--parallel-residual 0|1]\n"
        "                 [--qk-norm] [--falcon-norm2] [--rope-scaling T] [--rope-factor F]\n"
        "                 [--rope-orig-ctx N] [--rope-factors] [--fast [--threads N]]\n"
        "NAME: llama (default), qwen2, qwen3, phi3, gemma, gemma2, gemma3, falcon, gptneox,\n"
        "      stablelm, starcoder, bloom, starcoder2; gptj (a file llama.cpp refuses)\n"
        "TYPE: a format of engine/core/formats.h (f32, f16, bf16, q8_0, q4_k, iq4_xs, ...),\n"
        "      or a mix as llama-quantize names it (q4_k_m, q5_k_s, q3_k_l, ...)\n"
        "--fast                  for benchmarks: rows copied at random from 16 drawn ones, on\n"
        "                        every core or N threads (seconds for an 8B shape)\n"
        "--n-rot N               rotary dimensions per head (phi3, gptneox, stablelm; default "
        "all)\n"
        "--fused-qkv             attn_qkv instead of attn_q/k/v (llama, qwen*, gemma*, stablelm;\n"
        "                        default for phi3, always for falcon, gptneox, starcoder, bloom)\n"
        "--split-qkv             attn_q/k/v for phi3\n"
        "--qkv-bias 0|1          q/k/v biases (default 1 for qwen2, else 0; always for gptneox,\n"
        "                        starcoder, bloom; never for falcon)\n"
        "--window N              attention.sliding_window (gemma2, gemma3; llama, phi3: ignored\n"
        "                        by llama.cpp)\n"
        "--swa-pattern N         attention.sliding_window_pattern: every Nth layer global\n"
        "                        (gemma2: default 2, gemma3: default 6)\n"
        "--rope-base-swa F       rope.freq_base_swa, for the windowed layers (gemma2, gemma3)\n"
        "--attn-softcap F        attn_logit_softcapping (gemma2; 50 when absent)\n"
        "--final-softcap F       final_logit_softcapping (gemma2: 30 when absent; gemma3: none)\n"
        "--parallel-residual 0|1 gptneox: use_parallel_residual (default 1); stablelm: 1 drops\n"
        "                        ffn_norm, the FFN then reads the attention's norm (default 0)\n"
        "--qk-norm               stablelm: per-head LayerNorm of q and k\n"
        "--falcon-norm2          falcon: attn_norm_2, a separate norm before attention (40B)\n"
        "--rope-scaling T        rope.scaling.type (linear, yarn, longrope); --rope-factor F\n"
        "                        and --rope-orig-ctx N its factor and original context\n"
        "--rope-factors          llama: rope_freqs.weight; phi3: rope_factors_long/short and\n"
        "                        rope.scaling.attn_factor (LongRoPE)\n",
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

static const struct family *find_family(const char *name)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        if (!strcmp(name, families[f].name)) return &families[f];
    die("--arch %s: not one of llama, qwen2, qwen3, phi3, gemma, gemma2, gemma3, falcon, "
        "gptneox, stablelm, starcoder, bloom, starcoder2, gptj",
        name);
}

static bool is(const struct family *f, const char *name)
{
    return !strcmp(f->name, name);
}

static void parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.fam = &families[0],
                       .type = VKLLM_TYPE_F32,
                       .seed = 1,
                       .n_vocab = 320,
                       .n_embd = 64,
                       .n_layer = 2,
                       .n_head = 4,
                       .n_ff = 128,
                       .n_ctx = 512,
                       .rope_base = 10000.0,
                       .scale = 4.0,
                       .fused_qkv = -1,
                       .qkv_bias = -1,
                       .par_res = -1};
    bool model_option = false; /* an option that --from cannot take */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--tied")) {
            a->tied = a->shape_given = true;
            continue;
        }
        if (!strcmp(o, "--fused-qkv") || !strcmp(o, "--split-qkv")) {
            a->fused_qkv = o[2] == 'f';
            model_option = true;
            continue;
        }
        if (!strcmp(o, "--qk-norm")) {
            a->qk_norm = model_option = true;
            continue;
        }
        if (!strcmp(o, "--fast")) {
            a->fast = model_option = true;
            continue;
        }
        if (!strcmp(o, "--falcon-norm2")) {
            a->falcon_norm2 = model_option = true;
            continue;
        }
        if (!strcmp(o, "--rope-factors")) {
            a->rope_factors = model_option = true;
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
        } dims[] = {{"--n-vocab", &a->n_vocab},
                    {"--n-embd", &a->n_embd},
                    {"--n-layer", &a->n_layer},
                    {"--n-head", &a->n_head},
                    {"--n-head-kv", &a->n_head_kv},
                    {"--n-ff", &a->n_ff},
                    {"--n-ctx", &a->n_ctx},
                    {"--n-rot", &a->n_rot},
                    {"--window", &a->window},
                    {"--swa-pattern", &a->swa_pattern},
                    {"--rope-orig-ctx", &a->rope_orig_ctx}};
        bool done = false;
        for (size_t k = 0; k < sizeof dims / sizeof dims[0] && !done; k++) {
            if (strcmp(o, dims[k].name)) continue;
            *dims[k].dst = (uint32_t)parse_uint(o, v, 1u << 24);
            if (!*dims[k].dst) die("%s must be at least 1", o);
            done = a->shape_given = true;
        }
        if (done) continue;
        struct {
            const char *name;
            double *dst;
        } floats[] = {{"--rope-base-swa", &a->rope_base_swa},
                      {"--attn-softcap", &a->attn_softcap},
                      {"--final-softcap", &a->final_softcap},
                      {"--rope-factor", &a->rope_factor}};
        for (size_t k = 0; k < sizeof floats / sizeof floats[0] && !done; k++) {
            if (strcmp(o, floats[k].name)) continue;
            *floats[k].dst = parse_float(o, v);
            done = model_option = true;
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
        else if (!strcmp(o, "--threads"))
            a->threads = (int)parse_uint(o, v, 64);
        else if (!strcmp(o, "--scale"))
            a->scale = parse_float(o, v);
        else if (!strcmp(o, "--rope-scaling"))
            a->rope_scaling = v, model_option = true;
        else if (!strcmp(o, "--arch"))
            a->fam = find_family(v), model_option = true;
        else if (!strcmp(o, "--qkv-bias"))
            a->qkv_bias = (int)parse_uint(o, v, 1), model_option = true;
        else if (!strcmp(o, "--parallel-residual"))
            a->par_res = (int)parse_uint(o, v, 1), model_option = true;
        else if (!strcmp(o, "--type")) {
            uint32_t f = 0;
            while (f < quant_format_count && strcasecmp(v, quant_formats[f].name))
                f++;
            if (f < quant_format_count) {
                a->type = quant_formats[f].type;
                a->mix = NULL;
                continue;
            }
            /* a mix: its default format is the format of its name's stem */
            const char *name;
            for (int i = 0; (name = vkllm_quantize_type_name(i, NULL)); i++)
                if (!strcasecmp(v, name)) break;
            size_t stem = name ? strlen(name) - 2 : 0;
            for (f = 0; name && f < quant_format_count; f++)
                if (strlen(quant_formats[f].name) == stem &&
                    !strncasecmp(name, quant_formats[f].name, stem))
                    break;
            if (!name || f == quant_format_count)
                die("--type %s: neither a format of formats.h nor a mix (Q4_K_M, ...)", v);
            a->type = quant_formats[f].type;
            a->mix = name;
        } else {
            usage();
            die("unknown option %s", o);
        }
    }
    if (!a->out) {
        usage();
        die("-o OUT.gguf is required");
    }
    if (a->from && (a->shape_given || model_option))
        die("--from takes the model from %s: leave out --arch, --n-*, --rope-base, --tied and "
            "the family options",
            a->from);
    if (!a->n_head_kv) a->n_head_kv = a->n_head;
    if (a->n_embd % a->n_head)
        die("--n-embd %u is not a multiple of --n-head %u", a->n_embd, a->n_head);
    const uint32_t head_dim = a->n_embd / a->n_head;
    if (head_dim % 2)
        die("the head dimension (n_embd / n_head = %u) must be even for RoPE", head_dim);
    if (a->n_head % a->n_head_kv)
        die("--n-head %u is not a multiple of --n-head-kv %u", a->n_head, a->n_head_kv);
    if (a->from && a->vocab_from) die("--vocab-from makes a new model: leave out --from");
    if (a->from && a->mix) die("--type %s: a mix with --from is `vkllm quantize`'s job", a->mix);
    if (a->n_vocab < 260 && !a->vocab_from)
        die("--n-vocab %u is too small: the vocabulary has 259 special and byte tokens, and "
            "at least \"\xe2\x96\x81\"",
            a->n_vocab);

    /* what the family allows, and its defaults */
    const struct family *f = a->fam;
    if (a->n_rot && (!f->rope || !f->partial_rot))
        die("--n-rot: %s takes no rotary dimension count (only phi3, gptneox, stablelm)", f->name);
    if (a->n_rot > head_dim || a->n_rot % 2)
        die("--n-rot %u: must be even and at most the head dimension %u", a->n_rot, head_dim);
    if (!a->n_rot) a->n_rot = head_dim;
    if (a->fused_qkv >= 0 && f->qkv != QKV_EITHER)
        die("--%s-qkv: %s has %s q/k/v only", a->fused_qkv ? "fused" : "split", f->name,
            f->qkv == QKV_FUSED ? "fused" : "separate");
    if (a->fused_qkv < 0) a->fused_qkv = f->qkv == QKV_FUSED || f->fused_default;
    if (a->qkv_bias >= 0 && f->qkv_bias != OPTIONAL)
        die("--qkv-bias: %s %s q/k/v biases", f->name,
            f->qkv_bias == ALWAYS ? "always has" : "has no");
    if (a->qkv_bias < 0) a->qkv_bias = f->qkv_bias == ALWAYS || f->qkv_bias_default;
    if ((a->window && !f->window) ||
        ((a->swa_pattern || a->rope_base_swa > 0) && !is(f, "gemma2") && !is(f, "gemma3")))
        die("--window, --swa-pattern, --rope-base-swa: not for %s (--window: gemma2, gemma3, "
            "llama, phi3; the others: gemma2, gemma3)",
            f->name);
    if (a->attn_softcap > 0 && !is(f, "gemma2")) die("--attn-softcap: gemma2 only");
    if (a->final_softcap > 0 && !is(f, "gemma2") && !is(f, "gemma3"))
        die("--final-softcap: gemma2 and gemma3 only");
    if (a->par_res >= 0 && !is(f, "gptneox") && !is(f, "stablelm"))
        die("--parallel-residual: gptneox and stablelm only");
    if (a->par_res < 0) a->par_res = is(f, "gptneox");
    if (a->qk_norm && !is(f, "stablelm")) die("--qk-norm: stablelm only (qwen3, gemma3 always)");
    if (a->rope_factors && !is(f, "llama") && !is(f, "phi3")) die("--rope-factors: llama and phi3");
    if ((a->rope_scaling || a->rope_factor > 0 || a->rope_orig_ctx) && !f->rope)
        die("--rope-scaling, --rope-factor, --rope-orig-ctx: %s has no RoPE", f->name);
    if (a->falcon_norm2 && !is(f, "falcon")) die("--falcon-norm2: falcon only");
    if (f->output == ALWAYS && a->tied) die("--tied: %s always has output.weight", f->name);
    if (f->output == NEVER) a->tied = true; /* gemma, gemma2: token_embd is the output */
}

/* The first pass of a mix: the model's tensors noted, their formats chosen. */
static void plan_types(const struct args *a, const vkllm_gguf *vocab)
{
    const struct rng start = rng;
    vkllm_gguf_writer *notes;
    struct vkllm_error err;
    if (vkllm_gguf_writer_create(&notes, &err) != VKLLM_OK) die("%s", err.msg);
    plan.noting = true;
    build_random(notes, a, vocab);
    plan.noting = false;
    vkllm_gguf_writer_destroy(notes);
    rng = start;
    for (uint64_t i = 0; i < plan.n; i++)
        plan.ts[i].name = plan.names[i];
    const struct quant_mix_model m = {.name = a->out,
                                      .arch = a->fam->name,
                                      .n_layer = a->n_layer,
                                      .n_head = a->n_head,
                                      .n_head_kv = a->n_head_kv};
    if (quant_mix_types(a->mix, false, &m, plan.ts, plan.n, &err) != VKLLM_OK) die("%s", err.msg);
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
        if (a.mix) plan_types(&a, vocab);
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
    free(plan.ts);
    free(plan.names);
    return 0;
}
