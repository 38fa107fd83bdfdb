/* bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe does it.
 *
 * Encoding a raw fragment of text:
 *   1. the pre-tokenizer (pretok.c) cuts it into words;
 *   2. each byte of a word becomes a printable character (GPT-2's
 *      bytes_to_unicode: the printable Latin-1 bytes stand for themselves,
 *      the other 68 for U+0100..U+0143), which is how the vocabulary spells
 *      its tokens;
 *   3. the word starts as one symbol per character, and the adjacent pair
 *      whose merge ("left right" in tokenizer.ggml.merges) comes first in the
 *      file is merged, again and again, until no pair has a merge;
 *   4. each symbol is its token; one that is not a token falls back to its
 *      single bytes' tokens, if any.
 * With ignore_merges (Llama 3, Tekken) a word that is a token is taken whole.
 *
 * Decoding maps the characters of a token back to bytes. llama.cpp renders a
 * character outside the mapping as "[UNK_BYTE_0x..<token text>]"; so do we.
 */
#include "hash.h"
#include "vocab_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== The model ============================== */

struct merge {
    uint32_t off;         /* the merge's text in merge_text: "left right" */
    uint32_t left, right; /* lengths */
};

struct bpe_model {
    char *merge_text;
    struct merge *merges; /* (n_merges) in file order: the index is the rank */
    uint32_t n_merges;
    int32_t *index; /* (index_mask + 1) open-addressing table of ranks, -1 empty */
    uint64_t index_mask;

    char byte_char[256][2]; /* byte -> its printable character (UTF-8) */
    uint8_t byte_char_len[256];

    char *pieces;      /* every token's text as token_to_piece(special = true) gives it */
    size_t *piece_off; /* (n_tokens + 1) */
};

/* The hash of LEFT ' ' RIGHT, the text the merge is stored as. */
static uint64_t hash_pair(const char *l, size_t nl, const char *r, size_t nr)
{
    struct hash_state s;
    hash_begin(&s);
    hash_add(&s, l, nl);
    hash_add(&s, " ", 1);
    hash_add(&s, r, nr);
    return hash_end(&s);
}

/* The slot of the merge LEFT RIGHT, or the empty slot where it would go. */
static int32_t *merge_slot(const struct bpe_model *b, const char *l, size_t nl, const char *r,
                           size_t nr)
{
    for (uint64_t i = hash_pair(l, nl, r, nr) & b->index_mask;; i = (i + 1) & b->index_mask) {
        int32_t *slot = &b->index[i];
        if (*slot < 0) return slot;
        const struct merge *m = &b->merges[*slot];
        const char *t = b->merge_text + m->off;
        if (m->left == nl && m->right == nr && memcmp(t, l, nl) == 0 &&
            memcmp(t + nl + 1, r, nr) == 0)
            return slot;
    }
}

/* The rank of merging LEFT and RIGHT, or -1. */
static int32_t merge_rank(const struct bpe_model *b, const char *l, size_t nl, const char *r,
                          size_t nr)
{
    return b->n_merges ? *merge_slot(b, l, nl, r, nr) : -1;
}

void bpe_free(struct bpe_model *b)
{
    if (!b) return;
    free(b->merge_text);
    free(b->merges);
    free(b->index);
    free(b->pieces);
    free(b->piece_off);
    free(b);
}

/* GPT-2's bytes_to_unicode. */
static void init_byte_chars(struct bpe_model *b)
{
    int next = 256;
    for (int c = 0; c < 256; c++) {
        bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        int cp = printable ? c : next++;
        if (cp < 0x80) {
            b->byte_char[c][0] = (char)cp;
            b->byte_char_len[c] = 1;
        } else {
            b->byte_char[c][0] = (char)(0xC0 | (cp >> 6));
            b->byte_char[c][1] = (char)(0x80 | (cp & 0x3F));
            b->byte_char_len[c] = 2;
        }
    }
}

/* The byte a printable character CP stands for, or -1. */
static int char_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    /* the n-th non-printable byte went to 256 + n */
    int n = (int)cp - 256;
    for (int c = 0; c < 256; c++) {
        bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        if (!printable && n-- == 0) return c;
    }
    return -1;
}

/* tokenizer.ggml.merges: "left right" strings, the first occurrence of a pair
 * giving its rank. */
static int load_merges(struct bpe_model *b, const vkllm_gguf *g, bool optional,
                       struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    const struct vkllm_gguf_kv *list;
    int rc = vkllm_gguf_get_arr(g, "tokenizer.ggml.merges", VKLLM_GGUF_STRING, &list, err);
    if (rc == VKLLM_E_NOT_FOUND && optional) return VKLLM_OK;
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(
            err, VKLLM_E_FORMAT,
            "%s: BPE vocabulary without merges (key tokenizer.ggml.merges is missing)", name);
    if (rc) return rc;
    uint64_t n = list->arr_len, bytes = 0;
    if (n > INT32_MAX / 4)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: %llu merges", name, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        bytes += vkllm_gguf_arr_str(list, i).len;
    if (bytes > UINT32_MAX)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: the merges hold %llu bytes", name,
                          (unsigned long long)bytes);
    uint64_t index_size = 1;
    while (index_size < 2 * n + 2)
        index_size <<= 1;
    b->merge_text = malloc(bytes + 1);
    b->merges = malloc((n + 1) * sizeof *b->merges);
    b->index = malloc(index_size * sizeof *b->index);
    if (!b->merge_text || !b->merges || !b->index)
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory for %llu merges", name,
                          (unsigned long long)n);
    memset(b->index, 0xff, index_size * sizeof *b->index);
    b->index_mask = index_size - 1;

    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct vkllm_gguf_str s = vkllm_gguf_arr_str(list, i);
        /* llama.cpp cuts at the first space after the first byte; a merge
         * without one can never apply */
        const char *space = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!space) continue;
        uint32_t left = (uint32_t)(space - s.ptr), right = (uint32_t)(s.len - left - 1);
        int32_t *slot = merge_slot(b, s.ptr, left, space + 1, right);
        if (*slot >= 0) continue; /* a repeated pair keeps its first rank */
        memcpy(b->merge_text + off, s.ptr, s.len);
        b->merges[b->n_merges] = (struct merge){off, left, right};
        *slot = (int32_t)b->n_merges++;
        off += (uint32_t)s.len;
    }
    /* ranks must follow the file's order even when entries were skipped */
    return VKLLM_OK;
}

/* ============================== Pieces ============================== */

/* Reads one code point as llama.cpp does (see pretok.c): returns its length. */
static size_t read_cpt(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t b = s[0];
    size_t need = b < 0x80 ? 0 : b < 0xC0 ? 4 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : b < 0xF8 ? 3 : 4;
    uint32_t c = b & (0x7Fu >> need);
    bool ok = need < 4 && need < n;
    for (size_t k = 1; ok && k <= need; k++) {
        ok = (s[k] & 0xC0) == 0x80;
        c = (c << 6) | (s[k] & 0x3Fu);
    }
    *cp = ok ? c : 0xFFFD;
    return ok ? need + 1 : 1;
}

static size_t put_cpt(uint32_t c, uint8_t *o)
{
    if (c < 0x80) return o[0] = (uint8_t)c, 1;
    if (c < 0x800) return o[0] = (uint8_t)(0xC0 | (c >> 6)), o[1] = (uint8_t)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (uint8_t)(0xE0 | (c >> 12)), o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)),
               o[2] = (uint8_t)(0x80 | (c & 0x3F)), 3;
    return o[0] = (uint8_t)(0xF0 | ((c >> 18) & 7)), o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F)),
           o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)), o[3] = (uint8_t)(0x80 | (c & 0x3F)), 4;
}

/* A normal token's bytes (llama.cpp's llama_decode_text) into OUT, or only its
 * length if OUT is NULL. */
static size_t decode_text(const char *text, size_t len, char *out)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += read_cpt(s + i, len - i, &cp);
        int byte = char_byte(cp);
        if (byte >= 0) {
            if (out) out[n] = (char)byte;
            n++;
            continue;
        }
        uint8_t u[4];
        size_t m = put_cpt(cp, u);
        char head[13 + 8 + 1];
        int h = snprintf(head, sizeof head, "[UNK_BYTE_0x");
        for (size_t k = 0; k < m; k++)
            h += snprintf(head + h, sizeof head - (size_t)h, "%02x", u[k]);
        if (out) {
            memcpy(out + n, head, (size_t)h);
            memcpy(out + n + (size_t)h, text, len);
            out[n + (size_t)h + len] = ']';
        }
        n += (size_t)h + len + 1;
    }
    return n;
}

/* "▁" -> " " (SentencePiece-style BPE). */
static size_t unescape_spaces(const char *text, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        bool sp = i + 2 < len && memcmp(text + i, "\xe2\x96\x81", 3) == 0;
        if (out) out[n] = sp ? ' ' : text[i];
        if (sp) i += 2;
    }
    return n;
}

/* The piece of token T, into OUT or only measured. */
static size_t piece_of(const vkllm_vocab *v, const struct token *t, char *out)
{
    if (t->attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        if (out) memcpy(out, t->text, t->len);
        return t->len;
    }
    if (t->attr & ATTR_NORMAL)
        return v->info->escape_spaces ? unescape_spaces(t->text, t->len, out)
                                      : decode_text(t->text, t->len, out);
    if (t->attr & ATTR_BYTE) {
        if (out) out[0] = token_byte(t);
        return 1;
    }
    return 0; /* unused and undefined tokens have no text */
}

/* Every token's piece, computed once as llama.cpp's cache does: after the
 * rules that change token types, before the per-model LSTRIP/RSTRIP ones
 * (which do not matter here). A piece much longer than its token only comes
 * from text that is not byte-level (each stray character repeats the whole
 * token): we refuse such a file rather than let it take gigabytes. */
int bpe_finish(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    struct bpe_model *b = v->bpe;
    if (!(b->piece_off = malloc(((size_t)v->n_tokens + 1) * sizeof *b->piece_off)))
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", name);
    size_t total = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const struct token *t = &v->tokens[i];
        size_t n = piece_of(v, t, NULL);
        if (n > 65536 && n > 16 * (size_t)t->len)
            return vkllm_fail(err, VKLLM_E_FORMAT,
                              "%s: token %d is not byte-level BPE text (%zu bytes decode to %zu)",
                              name, (int)i, (size_t)t->len, n);
        b->piece_off[i] = total;
        total += n;
    }
    b->piece_off[v->n_tokens] = total;
    if (!(b->pieces = malloc(total + 1)))
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", name);
    for (int32_t i = 0; i < v->n_tokens; i++)
        piece_of(v, &v->tokens[i], b->pieces + b->piece_off[i]);
    return VKLLM_OK;
}

int bpe_piece(const vkllm_vocab *v, int32_t token, char *buf, int cap)
{
    const struct bpe_model *b = v->bpe;
    return copy_piece(buf, cap, b->pieces + b->piece_off[token],
                      b->piece_off[token + 1] - b->piece_off[token]);
}

/* ============================== Loading ============================== */

int bpe_load(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    struct vkllm_gguf_str pre = {0};
    int rc = vkllm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
    if (rc && rc != VKLLM_E_NOT_FOUND) return rc;
    bool has_pre = rc == VKLLM_OK;
    v->info = has_pre ? pretok_find(pre.ptr, pre.len) : NULL;
    if (!(v->bpe = calloc(1, sizeof *v->bpe)))
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", name);
    init_byte_chars(v->bpe);
    /* Kimi-K2's vocabulary has no merges: its words are looked up whole */
    bool kimi = pre.len == 7 && memcmp(pre.ptr, "kimi-k2", 7) == 0;
    if ((rc = load_merges(v->bpe, g, kimi, err))) return rc;

    if (!v->info) {
        /* llama.cpp takes the default for a missing name and refuses an
         * unknown one; we run both with the default, and warn */
        v->info = pretok_default();
        int n = pre.len > 64 ? 64 : (int)pre.len;
        if (has_pre)
            vocab_warn(v,
                       "%s: unknown pre-tokenizer '%.*s': using the default one (llama.cpp "
                       "would refuse this file; text may tokenize differently from the original)",
                       name, n, pre.ptr);
        else
            vocab_warn(v,
                       "%s: no tokenizer.ggml.pre: using the default pre-tokenizer (as "
                       "llama.cpp does; text may tokenize differently from the original)",
                       name);
    }
    if ((rc = pretok_create(v->info, &v->pre, err))) vkllm_error_prefix(err, name);
    return rc;
}

/* ============================== Encoder ============================== */

/* Buffers reused across the words of one tokenize call. */
struct bpe_work {
    struct pretok_words words;
    char *text; /* a fragment with spaces escaped, or a word in printable characters */
    size_t text_cap;
    struct merge_work merge;
};

/* BPE merges neighbours that the merges list has, the lowest rank first. */
static bool bpe_pair(const void *ctx, const char *a, size_t a_len, const char *b, size_t b_len,
                     double *priority)
{
    const vkllm_vocab *v = ctx;
    int32_t rank = merge_rank(v->bpe, a, a_len, b, b_len);
    if (rank < 0) return false;
    *priority = -(double)rank;
    return true;
}

/* The token(s) of a symbol: itself, else its single bytes that are tokens. */
static void emit_symbol(const vkllm_vocab *v, const char *text, size_t n, struct sink *out)
{
    int32_t id = vocab_find(v, text, n);
    if (id >= 0) {
        emit(out, id);
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)text[i];
        if (v->info->raw_utf8) {
            char byte[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
            id = vocab_find(v, byte, sizeof byte);
        } else {
            id = vocab_find(v, text + i, 1);
        }
        if (id >= 0) emit(out, id);
    }
}

/* Encodes one word (already in the vocabulary's spelling). */
static int encode_word(const vkllm_vocab *v, struct bpe_work *w, const char *word, size_t len,
                       struct sink *out)
{
    if (len == 0) return VKLLM_OK;
    if (v->info->ignore_merges && vocab_find(v, word, len) >= 0) {
        emit(out, vocab_find(v, word, len));
        return VKLLM_OK;
    }
    int rc = merge_text(&w->merge, word, len, bpe_pair, v);
    if (rc) return rc;
    const struct merge_symbol *syms = w->merge.syms;
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        emit_symbol(v, word + syms[i].off, syms[i].n, out);
    return VKLLM_OK;
}

/* Splits one raw fragment into words and encodes them. */
static int encode_fragment(const vkllm_vocab *v, struct bpe_work *w, const char *raw, size_t len,
                           struct sink *out)
{
    const char *text = raw;
    if (v->info->escape_spaces) { /* ' ' -> U+2581 */
        if (len > SIZE_MAX / 4 || grow((void **)&w->text, &w->text_cap, 3 * len + 1, 1))
            return VKLLM_E_NOMEM;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (raw[i] == ' ') {
                memcpy(w->text + n, "\xe2\x96\x81", 3);
                n += 3;
            } else {
                w->text[n++] = raw[i];
            }
        }
        text = w->text;
        len = n;
    }
    int rc = pretok_split(v->pre, text, len, &w->words);
    if (rc) return rc;
    /* the word text lives in w->words; w->text is free again */
    size_t start = 0;
    for (size_t i = 0; i < w->words.n && rc == VKLLM_OK; i++) {
        const char *word = w->words.text + start;
        size_t n = w->words.ends[i] - start;
        start = w->words.ends[i];
        if (v->info->raw_utf8) {
            rc = encode_word(v, w, word, n, out);
            continue;
        }
        if (grow((void **)&w->text, &w->text_cap, 2 * n + 1, 1)) return VKLLM_E_NOMEM;
        size_t m = 0;
        for (size_t k = 0; k < n; k++) {
            uint8_t c = (uint8_t)word[k];
            memcpy(w->text + m, v->bpe->byte_char[c], v->bpe->byte_char_len[c]);
            m += v->bpe->byte_char_len[c];
        }
        rc = encode_word(v, w, w->text, m, out);
    }
    return rc;
}

/* Step 2 for BPE: BOS, the fragments, EOS. */
int bpe_encode_frags(const vkllm_vocab *v, const char *text, const struct fragment *frags,
                     size_t n_frags, bool add_special, struct sink *out)
{
    struct bpe_work w = {0};
    int rc = VKLLM_OK;
    if (add_special && v->add_bos) emit(out, v->special[SP_BOS]);
    for (size_t i = 0; i < n_frags && rc == VKLLM_OK; i++) {
        if (frags[i].token >= 0)
            emit(out, frags[i].token);
        else
            rc = encode_fragment(v, &w, text + frags[i].off, frags[i].len, out);
    }
    if (rc == VKLLM_OK && add_special && v->add_eos) emit(out, v->special[SP_EOS]);
    pretok_words_free(&w.words);
    free(w.text);
    merge_work_free(&w.merge);
    return rc;
}
