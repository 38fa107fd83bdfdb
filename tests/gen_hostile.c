/* gen_hostile.c: writes crafted GGUF files for tests/test_hostile.sh, each a
 * copy of a small valid model (stories260K.gguf: llama, F32 weights) with one
 * thing made hostile:
 *
 *   control characters and escape sequences (ESC, BEL, CR, an OSC title
 *   sequence) in a key name, a tensor name, general.architecture,
 *   general.name, a token and the chat template's error message; overlong
 *   strings; NaN and infinite hyperparameters and weights; zero and absurd
 *   sizes; a vocabulary whose token count disagrees with the embedding rows;
 *   a tensor whose shape disagrees with the hyperparameters; a chat template
 *   that would run for ever; 20,000 user-defined tokens; a negative BOS id;
 *   200,000 keys, tensor names, tokens or BPE merges that all fall in one slot
 *   of a table hashed with FNV-1a (hash flooding: see flood_name).
 *
 *   gen_hostile IN.gguf OUT_DIR
 *
 * Writes OUT_DIR/NAME.gguf for every case and prints the names, one a line. */
#include "gguf_copy.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An escape sequence a terminal would act on: colour, clear screen, window
 * title (OSC ... BEL), bell and carriage return. */
#define EVIL "\x1b[31m\x1b[2J\x1b]0;pwned\x07\r"

/* What a hash-flooding case fills with colliding names. */
enum flood { FLOOD_NONE, FLOOD_KEYS, FLOOD_TENSORS, FLOOD_TOKENS, FLOOD_MERGES };

/* What one case changes. Every field is optional. */
struct edit {
    const char *name;       /* the file: OUT_DIR/NAME.gguf */
    const char *str_key;    /* set this string key ... */
    const char *str_value;  /* ... to this value */
    size_t long_len;        /* or, when STR_KEY is set and this > 0, to LONG_LEN 'A's */
    bool long_key;          /* with LONG_LEN: the key is the 'A's, its value "v" */
    const char *u32_key;    /* set this uint32 key ... */
    uint32_t u32_value;     /* ... to this */
    const char *f32_key;    /* set this float32 key ... */
    float f32_value;        /* ... to this */
    const char *rename;     /* rename this tensor ... */
    const char *rename_to;  /* ... to this */
    const char *fill;       /* overwrite this (F32) tensor's values ... */
    float fill_value;       /* ... with this */
    const char *halve;      /* write this tensor with its first dimension halved */
    int vocab_delta;        /* tokens added (> 0, copies of the last) or removed (< 0) */
    int extra_type;         /* the token type of added tokens; 0: normal */
    const char *i32_key;    /* set this int32 key ... */
    int32_t i32_value;      /* ... to this */
    const char *evil_token; /* replace token 300 with this text */
    enum flood flood;       /* add N_FLOOD colliding names of this kind */
    uint32_t n_flood;
};

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "gen_hostile: %s: %s\n", what, msg);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc) die(what, vkllm_strerror(rc));
}

/* ============================== Hash flooding ==============================
 * Until engine/core/hash.c, every table in the engine hashed names with FNV-1a
 * (64-bit) and probed linearly: names sharing the low bits of their hash made
 * each insertion walk all the names before it (100,000 keys: 40 s to open).
 * Such names are cheap to make: FNV-1a's low K bits depend only on the low K
 * bits of its state, and a step h -> (h ^ c) * P is invertible modulo 2^K, so
 * a table built backwards from one slot gives, for about half of all states,
 * three characters that lead there. These names still make the files this
 * tool writes: they check that the tables no longer fall for it. */
#define FLOOD_BITS 20 /* the slot is fixed in tables of up to 2^20 slots */
#define FLOOD_SLOT 12345u
#define FNV_OFFSET 0xcbf29ce484222325u
#define FNV_PRIME  0x100000001b3u
#define FLOOD_NAME 32 /* room for a name: head, 6 letters, tail, 3 characters */

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

/* For each state (low FLOOD_BITS bits), three printable characters (c1 | c2
 * << 8 | c3 << 16) that take it to FLOOD_SLOT, or 0. */
static uint32_t *flood_table(void)
{
    const uint64_t mask = (1u << FLOOD_BITS) - 1;
    uint64_t inv = FNV_PRIME; /* Newton's iteration: P's inverse modulo 2^64 */
    for (int i = 0; i < 5; i++)
        inv *= 2 - FNV_PRIME * inv;
    uint32_t *table = calloc(mask + 1, sizeof *table);
    if (!table) die("flooding", "out of memory");
    for (uint32_t c3 = 33; c3 < 127; c3++) {
        const uint64_t h2 = ((FLOOD_SLOT * inv) & mask) ^ c3;
        for (uint32_t c2 = 33; c2 < 127; c2++) {
            const uint64_t h1 = ((h2 * inv) & mask) ^ c2;
            for (uint32_t c1 = 33; c1 < 127; c1++) {
                const uint64_t h0 = ((h1 * inv) & mask) ^ c1;
                if (!table[h0]) table[h0] = c1 | c2 << 8 | c3 << 16;
            }
        }
    }
    return table;
}

/* Name I of a flood: HEAD, I in five letters, a free letter, TAIL, then the
 * three characters that finish it in FLOOD_SLOT. Distinct for distinct I. */
static void flood_name(const uint32_t *table, char out[FLOOD_NAME], const char *head, uint32_t i,
                       const char *tail)
{
    char id[6];
    for (int k = 4; k >= 0; k--, i /= 26)
        id[k] = (char)('a' + i % 26);
    id[5] = 0;
    for (char free = 'a'; free <= 'z'; free++) {
        int n = snprintf(out, FLOOD_NAME - 3, "%s%s%c%s", head, id, free, tail);
        uint32_t s = table[fnv1a(FNV_OFFSET, out, (size_t)n) & ((1u << FLOOD_BITS) - 1)];
        if (s) {
            out[n] = (char)(s & 0xff), out[n + 1] = (char)(s >> 8 & 0xff);
            out[n + 2] = (char)(s >> 16), out[n + 3] = 0;
            return;
        }
    }
    die(head, "no colliding name"); /* 0.45^26 odds: never */
}

/* N names of a flood, one block (N * FLOOD_NAME bytes) to free. */
static char (*flood_names(uint32_t n, const char *head, const char *tail))[FLOOD_NAME]
{
    uint32_t *table = flood_table();
    char(*names)[FLOOD_NAME] = calloc(n ? n : 1, sizeof *names);
    if (!names) die("flooding", "out of memory");
    for (uint32_t i = 0; i < n; i++)
        flood_name(table, names[i], head, i, tail);
    free(table);
    return names;
}

/* Adds E's flood of keys (a bool each) or BPE merges (the vocabulary made
 * GPT-2's kind, whose tokenizer reads them). */
static void write_flood_kv(vkllm_gguf_writer *w, const struct edit *e)
{
    if (e->flood == FLOOD_KEYS) {
        char(*keys)[FLOOD_NAME] = flood_names(e->n_flood, "k.", "");
        for (uint32_t i = 0; i < e->n_flood; i++)
            check(vkllm_gguf_writer_set_bool(w, keys[i], true), e->name);
        free(keys);
    } else if (e->flood == FLOOD_MERGES) {
        char(*merges)[FLOOD_NAME] = flood_names(e->n_flood, "m", " z");
        const char **strs = calloc(e->n_flood ? e->n_flood : 1, sizeof *strs);
        if (!strs) die(e->name, "out of memory");
        for (uint32_t i = 0; i < e->n_flood; i++)
            strs[i] = merges[i];
        check(vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), e->name);
        check(vkllm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2"), e->name);
        check(vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", strs, NULL, e->n_flood),
              e->name);
        free(strs);
        free(merges);
    }
}

/* The tokenizer's arrays with E's change in the token count (or token 300). */
static void write_vocab(vkllm_gguf_writer *w, const vkllm_gguf *g, const struct edit *e)
{
    struct vkllm_error err = {0};
    const struct vkllm_gguf_kv *tokens, *scores, *types;
    check(vkllm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tokens, &err),
          err.msg);
    check(vkllm_gguf_get_arr(g, "tokenizer.ggml.scores", VKLLM_GGUF_FLOAT32, &scores, &err),
          err.msg);
    check(vkllm_gguf_get_arr(g, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, &types, &err),
          err.msg);
    uint64_t n = tokens->arr_len + (uint64_t)(int64_t)e->vocab_delta;
    const char **strs = calloc(n, sizeof *strs);
    uint64_t *lens = calloc(n, sizeof *lens);
    float *sc = calloc(n, sizeof *sc);
    int32_t *ty = calloc(n, sizeof *ty);
    char(*extra)[FLOOD_NAME] =
        e->flood == FLOOD_TOKENS ? flood_names((uint32_t)n, "w", "") : calloc(n, sizeof *extra);
    if (!strs || !lens || !sc || !ty || !extra) die("vocabulary", "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        if (i < tokens->arr_len) {
            struct vkllm_gguf_str s = vkllm_gguf_arr_str(tokens, i);
            strs[i] = s.ptr;
            lens[i] = s.len;
            sc[i] = (float)vkllm_gguf_arr_float(scores, i);
            ty[i] = (int32_t)vkllm_gguf_arr_int(types, i);
        } else { /* new, distinct tokens "extraID" (or a flood's): normal unless E says */
            if (e->flood != FLOOD_TOKENS)
                snprintf(extra[i], sizeof extra[i], "extra%llu", (unsigned long long)i);
            strs[i] = extra[i];
            lens[i] = strlen(extra[i]);
            ty[i] = e->extra_type ? e->extra_type : 1;
        }
    }
    if (e->evil_token) {
        strs[300] = e->evil_token;
        lens[300] = strlen(e->evil_token);
    }
    check(vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, n), "tokens");
    check(vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKLLM_GGUF_FLOAT32, sc, n),
          "scores");
    check(vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, ty, n),
          "types");
    free(strs);
    free(lens);
    free(sc);
    free(ty);
    free(extra);
}

static void write_case(const vkllm_gguf *g, const char *dir, const struct edit *e)
{
    struct vkllm_error err = {0};
    vkllm_gguf_writer *w = NULL;
    char *long_str = NULL;
    float *filled = NULL;
    const uint64_t n_tensors = vkllm_gguf_tensor_count(g);
    struct gguf_copy *copies = calloc(n_tensors ? n_tensors : 1, sizeof *copies);
    if (!copies) die(e->name, "out of memory");
    check(vkllm_gguf_writer_create(&w, &err), err.msg);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        check(vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, i)), "copy");
    if (e->str_key && e->long_len) {
        if (!(long_str = malloc(e->long_len + 1))) die(e->name, "out of memory");
        memset(long_str, 'A', e->long_len);
        long_str[e->long_len] = 0;
        check(e->long_key ? vkllm_gguf_writer_set_str(w, long_str, "v")
                          : vkllm_gguf_writer_set_str(w, e->str_key, long_str),
              e->name);
    } else if (e->str_key) {
        check(vkllm_gguf_writer_set_str(w, e->str_key, e->str_value), e->name);
    }
    if (e->u32_key) check(vkllm_gguf_writer_set_uint32(w, e->u32_key, e->u32_value), e->name);
    if (e->f32_key) check(vkllm_gguf_writer_set_float32(w, e->f32_key, e->f32_value), e->name);
    if (e->i32_key) check(vkllm_gguf_writer_set_int32(w, e->i32_key, e->i32_value), e->name);
    if (e->vocab_delta || e->evil_token) write_vocab(w, g, e);
    write_flood_kv(w, e);

    for (uint64_t i = 0; i < n_tensors; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        copies[i] = (struct gguf_copy){g, t, t->size};
        const char *out_name = e->rename && !strcmp(name, e->rename) ? e->rename_to : name;
        if (e->halve && !strcmp(name, e->halve)) {
            ne[0] /= 2;
            copies[i].size /= 2; /* F32: the first half of the rows' bytes, a valid size */
        }
        if (e->fill && !strcmp(name, e->fill)) {
            if (t->type != VKLLM_TYPE_F32) die(e->name, "the tensor to fill is not F32");
            if (!(filled = malloc(t->size))) die(e->name, "out of memory");
            for (uint64_t k = 0; k < t->size / sizeof *filled; k++)
                filled[k] = e->fill_value;
            check(vkllm_gguf_writer_add_tensor(w, out_name, t->type, t->n_dims, ne, filled,
                                               copies[i].size),
                  e->name);
        } else {
            check(gguf_copy_add(w, out_name, t->n_dims, ne, &copies[i]), e->name);
        }
    }
    if (e->flood == FLOOD_TENSORS) { /* 1-element F32 tensors, after the model's */
        static const float zero[1];
        const uint64_t ne[4] = {1, 1, 1, 1};
        char(*names)[FLOOD_NAME] = flood_names(e->n_flood, "t.", "");
        for (uint32_t i = 0; i < e->n_flood; i++)
            check(vkllm_gguf_writer_add_tensor(w, names[i], VKLLM_TYPE_F32, 1, ne, zero, 4),
                  e->name);
        free(names);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, e->name);
    check(vkllm_gguf_writer_write(w, path, &err), err.msg);
    vkllm_gguf_writer_destroy(w);
    free(filled); /* the writer reads tensor data only in _write */
    free(copies);
    free(long_str);
    printf("%s\n", e->name);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_hostile IN.gguf OUT_DIR\n");
        return 1;
    }
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    if (vkllm_gguf_open(argv[1], &g, &err)) die(argv[1], err.msg);

    const char *eps = "llama.attention.layer_norm_rms_epsilon", *rope = "llama.rope.freq_base";
    const struct edit edits[] = {
        /* control characters where a program prints what the file says */
        {.name = "esc-key", .str_key = "hostile." EVIL ".key", .str_value = "value"},
        {.name = "esc-tensor", .rename = "blk.0.attn_q.weight", .rename_to = "blk.0." EVIL},
        {.name = "esc-arch", .str_key = "general.architecture", .str_value = "llama" EVIL},
        {.name = "esc-name", .str_key = "general.name", .str_value = EVIL "name"},
        {.name = "esc-value", .str_key = "hostile.value", .str_value = EVIL "\n\t\x7f" EVIL},
        {.name = "esc-token", .evil_token = EVIL},
        {.name = "esc-tokenizer", .str_key = "tokenizer.ggml.model", .str_value = "llama" EVIL},
        {.name = "esc-template",
         .str_key = "tokenizer.chat_template",
         .str_value = "{{ raise_exception('bad " EVIL " template') }}"},
        {.name = "endless-template",
         .str_key = "tokenizer.chat_template",
         .str_value = "{% for i in range(100000000) %}{% for j in range(100000000) %}"
                      "{{ i ~ j }}{% endfor %}{% endfor %}"},
        /* overlong strings */
        {.name = "long-name", .str_key = "general.name", .long_len = 1 << 20},
        {.name = "long-arch", .str_key = "general.architecture", .long_len = 100000},
        {.name = "long-value", .str_key = "general.description", .long_len = 70000},
        {.name = "long-key", .str_key = "-", .long_len = 70000, .long_key = true},
        {.name = "long-template", .str_key = "tokenizer.chat_template", .long_len = 4 << 20},
        /* NaN and infinite hyperparameters and weights */
        {.name = "nan-eps", .f32_key = eps, .f32_value = NAN},
        {.name = "inf-eps", .f32_key = eps, .f32_value = INFINITY},
        {.name = "neg-eps", .f32_key = eps, .f32_value = -1.0f},
        {.name = "nan-rope", .f32_key = rope, .f32_value = NAN},
        {.name = "inf-rope", .f32_key = rope, .f32_value = INFINITY},
        {.name = "zero-rope", .f32_key = rope, .f32_value = 0.0f},
        {.name = "nan-embd", .fill = "token_embd.weight", .fill_value = NAN},
        {.name = "inf-output", .fill = "output.weight", .fill_value = INFINITY},
        {.name = "nan-norm", .fill = "output_norm.weight", .fill_value = NAN},
        /* zero and absurd sizes */
        {.name = "zero-ctx", .u32_key = "llama.context_length", .u32_value = 0},
        {.name = "huge-ctx", .u32_key = "llama.context_length", .u32_value = 0xffffffffu},
        {.name = "zero-layers", .u32_key = "llama.block_count", .u32_value = 0},
        {.name = "huge-layers", .u32_key = "llama.block_count", .u32_value = 0xffffffffu},
        {.name = "zero-heads", .u32_key = "llama.attention.head_count", .u32_value = 0},
        {.name = "odd-heads", .u32_key = "llama.attention.head_count", .u32_value = 7},
        {.name = "zero-kv-heads", .u32_key = "llama.attention.head_count_kv", .u32_value = 0},
        {.name = "more-kv-heads", .u32_key = "llama.attention.head_count_kv", .u32_value = 16},
        {.name = "zero-embd", .u32_key = "llama.embedding_length", .u32_value = 0},
        {.name = "huge-rot", .u32_key = "llama.rope.dimension_count", .u32_value = 0xffffffffu},
        {.name = "bad-bos", .u32_key = "tokenizer.ggml.bos_token_id", .u32_value = 100000},
        {.name = "bad-eos", .u32_key = "tokenizer.ggml.eos_token_id", .u32_value = 0x80000000u},
        /* a vocabulary and shapes that disagree with the tensors */
        {.name = "vocab-short", .vocab_delta = -100},
        {.name = "vocab-long", .vocab_delta = 100},
        {.name = "shape-q", .halve = "blk.0.attn_q.weight"},
        {.name = "shape-embd", .halve = "token_embd.weight"},
        {.name = "shape-norm", .halve = "output_norm.weight"},
        /* the tokenizer: 20,000 user-defined tokens "extra512" ... "extra20511"
         * (each one longer than others it starts with), a negative BOS id */
        {.name = "many-user", .vocab_delta = 20000, .extra_type = 4},
        {.name = "neg-bos", .i32_key = "tokenizer.ggml.bos_token_id", .i32_value = -7},
        /* hash flooding: 200,000 names in one FNV-1a slot (opening took minutes) */
        {.name = "flood-keys", .flood = FLOOD_KEYS, .n_flood = 200000},
        {.name = "flood-tensors", .flood = FLOOD_TENSORS, .n_flood = 200000},
        {.name = "flood-tokens", .flood = FLOOD_TOKENS, .vocab_delta = 200000},
        {.name = "flood-merges", .flood = FLOOD_MERGES, .n_flood = 200000},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++)
        write_case(g, argv[2], &edits[i]);
    vkllm_gguf_close(g);
    return 0;
}
