/* spm.c: SentencePiece tokenizing (tokenizer.ggml.model "llama"), as
 * llama.cpp's llm_tokenizer_spm does it, and its pieces.
 */
#include "vocab_internal.h"

#include <stdlib.h>
#include <string.h>

/* ============================== SPM encoder ============================== */

/* SentencePiece's BPE-like merge (llama.cpp's llm_tokenizer_spm): start from
 * single UTF-8 characters and keep merging the adjacent pair whose
 * concatenation is the token with the highest score (ties: the leftmost pair),
 * until no adjacent pair forms a token. A final symbol that is no token is a
 * single character with no token of its own, and falls back to byte tokens.
 *
 * llama.cpp also keeps a "rev_merge" table to split such symbols into the
 * pieces they were merged from; it never fires, since a pair is only merged
 * when its text is a token (and it would recurse forever if it did), so it has
 * no counterpart here. */

/* Buffers reused across the fragments of one tokenize call. */
struct spm_work {
    char *text;
    size_t text_cap;
    struct merge_work merge;
};

/* SentencePiece merges neighbours that together spell a token, the token of
 * the highest score first. (The two are contiguous in the text.) */
static bool spm_pair(const void *ctx, const char *a, size_t a_len, const char *b, size_t b_len,
                     double *priority)
{
    const vkllm_vocab *v = ctx;
    (void)b;
    int32_t id = vocab_find(v, a, a_len + b_len);
    if (id < 0) return false;
    *priority = v->tokens[id].score;
    return true;
}

/* Encodes one raw fragment. PREFIX adds the leading space SentencePiece puts
 * before a text; every space becomes U+2581 "▁" first. */
static int spm_encode(const vkllm_vocab *v, struct spm_work *w, const char *raw, size_t len,
                      bool prefix, struct sink *out)
{
    static const char space[3] = {'\xe2', '\x96', '\x81'}; /* U+2581 */
    size_t n_text = 0;
    if (grow((void **)&w->text, &w->text_cap, 3 * (len + 1), 1)) return VKLLM_E_NOMEM;
    if (prefix) {
        memcpy(w->text, space, 3);
        n_text = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            memcpy(w->text + n_text, space, 3);
            n_text += 3;
        } else {
            w->text[n_text++] = raw[i];
        }
    }

    int rc = merge_text(&w->merge, w->text, n_text, spm_pair, v);
    if (rc) return rc;

    /* the chain starts at symbol 0: merges keep the left symbol */
    const struct merge_symbol *syms = w->merge.syms;
    for (int32_t i = w->merge.n_syms ? 0 : -1; i >= 0; i = syms[i].next) {
        const struct merge_symbol *s = &syms[i];
        int32_t id = vocab_find(v, w->text + s->off, s->n);
        if (id >= 0) {
            emit(out, id);
            continue;
        }
        /* llama.cpp throws here when a byte has no token; we fall back to the
         * unknown token, and fail only if there is none either */
        for (uint32_t j = 0; j < s->n; j++) {
            id = v->byte_token[(uint8_t)w->text[s->off + j]];
            if (id < 0) id = v->special[SP_UNK];
            if (id < 0) return VKLLM_E_UNSUPPORTED;
            emit(out, id);
        }
    }
    return VKLLM_OK;
}

/* Step 2 for SPM: BOS, then the fragments, then EOS. A space prefix goes before
 * the first text and before every text that follows a special token. */
int spm_encode_frags(const vkllm_vocab *v, const char *text, const struct fragment *frags,
                     size_t n_frags, bool add_special, struct sink *out)
{
    struct spm_work w = {0};
    bool after_special = true;
    int rc = VKLLM_OK;
    if (add_special && v->add_bos) emit(out, v->special[SP_BOS]);
    for (size_t i = 0; i < n_frags && rc == VKLLM_OK; i++) {
        if (frags[i].token >= 0) {
            emit(out, frags[i].token);
            after_special = true;
        } else {
            rc = spm_encode(v, &w, text + frags[i].off, frags[i].len,
                            v->add_space_prefix && after_special, out);
            after_special = false;
        }
    }
    if (rc == VKLLM_OK && add_special && v->add_eos) emit(out, v->special[SP_EOS]);
    free(w.text);
    merge_work_free(&w.merge);
    return rc;
}

/* ============================== Pieces ============================== */

/* SPM: control, unknown and user-defined tokens are their text; "▁" in normal
 * tokens is a space; a byte token "<0xXX>" is that byte. Unused and undefined
 * tokens have no text. */
int spm_piece(const vkllm_vocab *v, int32_t token, char *buf, int cap)
{
    const struct token *t = &v->tokens[token];
    if (t->attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED))
        return copy_piece(buf, cap, t->text, t->len);
    if (t->attr & ATTR_NORMAL) {
        size_t n = 0;
        for (uint32_t i = 0; i < t->len; i++, n++)
            if (i + 2 < t->len && memcmp(t->text + i, "\xe2\x96\x81", 3) == 0) i += 2;
        if (n <= (size_t)cap) {
            for (uint32_t i = 0, j = 0; i < t->len; i++, j++) {
                if (i + 2 < t->len && memcmp(t->text + i, "\xe2\x96\x81", 3) == 0) {
                    buf[j] = ' ';
                    i += 2;
                } else {
                    buf[j] = t->text[i];
                }
            }
        }
        return (int)n;
    }
    if (t->attr & ATTR_BYTE) {
        char b = token_byte(t);
        return copy_piece(buf, cap, &b, 1);
    }
    return 0;
}

/* Nothing is written when the piece does not fit in CAP (the length still
 * comes back, as for vkllm_tokenize). */
