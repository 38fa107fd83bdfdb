/* vocab_internal.h: what the tokenizer's files share. Internal to engine/text.
 *
 *   vocab.c    the vocabulary: loading, ids with a role, special tokens, the
 *              special-token partition, the public calls
 *   spm.c      SentencePiece's merge by score (tokenizer.ggml.model "llama")
 *   bpe.c      byte-level BPE, merges by rank (tokenizer.ggml.model "gpt2")
 *   pretok.c   BPE's pre-tokenizers: text -> words, chosen by tokenizer.ggml.pre
 */
#ifndef VKLLM_VOCAB_INTERNAL_H
#define VKLLM_VOCAB_INTERNAL_H

#include "error.h"
#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Token attributes: llama.cpp's llama_token_attr bits, so that its rules read
 * the same here. A token has one type bit, plus CONTROL when a rule forces it
 * and LSTRIP/RSTRIP for the partition. */
enum {
    ATTR_UNDEFINED = 0,
    ATTR_UNKNOWN = 1 << 0,
    ATTR_UNUSED = 1 << 1,
    ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3,
    ATTR_USER_DEFINED = 1 << 4,
    ATTR_BYTE = 1 << 5,
    ATTR_LSTRIP = 1 << 7, /* the partition eats whitespace before the token */
    ATTR_RSTRIP = 1 << 8, /* ... and after it */
};

struct token {
    const char *text; /* into vocab->arena; not NUL-terminated */
    uint32_t len;
    float score;   /* SPM: merge priority, higher first */
    uint32_t attr; /* ATTR_* bits */
    bool eog;      /* ends generation */
};

/* Token ids with a role. -1: none. */
/* clang-format off */
enum special {
    SP_BOS, SP_EOS, SP_EOT, SP_EOM, SP_UNK, SP_SEP, SP_PAD, SP_MASK,
    SP_FIM_PRE, SP_FIM_SUF, SP_FIM_MID, SP_FIM_PAD, SP_FIM_REP, SP_FIM_SEP,
    SP_COUNT
};
/* clang-format on */

/* A piece of the text to tokenize: raw bytes or an id found by the partition. */
struct fragment {
    int32_t token; /* -1: raw text text[off .. off + len) */
    size_t off, len;
};

/* Where ids go: the caller's buffer, counting past its end so that the caller
 * learns how much room it needs. */
struct sink {
    int32_t *out;
    size_t cap, n;
};

static inline void emit(struct sink *s, int32_t id)
{
    if (s->n < s->cap) s->out[s->n] = id;
    s->n++;
}

struct bpe_model;
struct pretok;
struct pretok_info;

/* One row per tokenizer.ggml.model value we implement: llama.cpp's defaults for
 * that kind and the functions that implement it. */
struct kind_info {
    const char *model;
    int32_t bos, eos, unk; /* ids used when the file has no *_token_id key */
    bool add_bos, add_eos, add_space_prefix;
    /* Reads what the kind needs beyond the token list (BPE: merges and the
     * pre-tokenizer); NULL if nothing. */
    int (*load)(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err);
    /* Runs once every token's attributes are final (BPE: the pieces); NULL if
     * nothing. */
    int (*finish)(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err);
    /* Encodes the partitioned text, adding BOS/EOS if ADD_SPECIAL. */
    int (*encode)(const vkllm_vocab *v, const char *text, const struct fragment *frags,
                  size_t n_frags, bool add_special, struct sink *out);
    /* The text of a token as token_to_piece(special = true) gives it; returns
     * its length and copies it into BUF when it fits in CAP. */
    int (*piece)(const vkllm_vocab *v, int32_t token, char *buf, int cap);
};

/* The special tokens' texts, reversed, in a trie with Aho-Corasick links: one
 * pass backwards over a text finds, at every position, the longest special
 * token that starts there, and the fail links lead from it to the shorter
 * ones that start there too. Node 0 is the root. */
struct trie_node {
    int32_t child, sibling; /* first child, next sibling; -1: none */
    int32_t fail;           /* the node of the longest proper suffix, 0 for none */
    /* the nearest node on the fail chain, this one included, that ends a
     * special token the partition may cut out: [0] with parse_special, [1]
     * without (no control or unknown tokens); -1: none */
    int32_t out[2];
    int32_t rank; /* the token's index in vocab->specials, -1 if no token ends here */
    uint8_t byte;
};

struct vkllm_vocab {
    const struct kind_info *kind;
    int32_t n_tokens;
    struct token *tokens; /* (n_tokens) */
    char *arena;          /* every token's text, back to back */
    int32_t *index;       /* (index_mask + 1) open-addressing table of ids by text, -1 empty */
    uint64_t index_mask;
    int32_t *specials; /* (n_specials) ids the partition looks for, longest text first */
    int32_t n_specials;
    struct trie_node *trie; /* (n_trie) the specials' texts */
    int32_t n_trie;
    int32_t trie_root[256]; /* the root's children by byte, -1: none */
    int32_t *special_node;  /* (n_specials) the node of each special */
    char **warnings;        /* (n_warnings) printable lines, "PATH: what" */
    size_t n_warnings;
    int32_t byte_token[256]; /* SPM byte fallback: "<0xXX>", else the 1-byte token, else -1 */
    int32_t special[SP_COUNT];
    bool add_bos, add_eos, add_space_prefix;

    /* BPE only */
    struct bpe_model *bpe;          /* merges and decoded pieces */
    struct pretok *pre;             /* the compiled pre-tokenizer */
    const struct pretok_info *info; /* its row: regexes and flags */
};

/* ---- vocab.c */

/* The id of the token spelled TEXT, or -1. */
int32_t vocab_find(const vkllm_vocab *v, const char *text, size_t len);

/* Step 1 of tokenizing: cuts LEN bytes of TEXT at the special tokens, as
 * llama.cpp's tokenizer_st_partition does, into *FRAGS (malloc'ed, *N of
 * them). */
int vocab_partition(const vkllm_vocab *v, const char *text, size_t len, bool parse_special,
                    struct fragment **frags, size_t *n);

/* Adds a warning to V's list: "PATH: ..." made printable. Without memory the
 * warning is lost, not the vocabulary. */
void vocab_warn(vkllm_vocab *v, const char *fmt, ...) VKLLM_PRINTF(2, 3);

/* Grows *P (an array of ELEM-byte items, *CAP of them) to hold NEED. */
int grow(void **p, size_t *cap, size_t need, size_t elem);

/* Bytes in the UTF-8 character starting with byte C, from its top four bits
 * only (llama.cpp's unicode_len_utf8): invalid input is cut the same way. */
static inline uint32_t utf8_len(char c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[(uint8_t)c >> 4];
}

/* The byte a byte token "<0xXX>" stands for. */
char token_byte(const struct token *t);

/* Copies TEXT into BUF if it fits in CAP; returns LEN either way. */
int copy_piece(char *buf, int cap, const char *text, size_t len);

/* ---- merge.c: the merge loop of SPM and BPE */

struct merge_symbol {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes text[off .. off + n); n = 0 once merged away */
};

struct merge_pair {
    int32_t left, right; /* symbols */
    double priority;     /* higher merges first */
    uint32_t size;       /* bytes of both when queued: stale entries no longer match */
};

/* Buffers reused across the texts of one tokenize call. */
struct merge_work {
    struct merge_symbol *syms;
    size_t syms_cap;
    int32_t n_syms;
    struct merge_pair *heap;
    size_t heap_n, heap_cap;
};

/* Whether the neighbours A (A_LEN bytes) and B may merge, and with which
 * priority: SPM's score of the joined token, BPE's merge rank negated. */
typedef bool (*merge_priority_fn)(const void *ctx, const char *a, size_t a_len, const char *b,
                                  size_t b_len, double *priority);

/* Merges LEN bytes of TEXT: afterwards the chain of w->syms from symbol 0 (when
 * w->n_syms > 0) spells the text in merged pieces. */
int merge_text(struct merge_work *w, const char *text, size_t len, merge_priority_fn priority,
               const void *ctx);
void merge_work_free(struct merge_work *w);

/* ---- spm.c */

int spm_encode_frags(const vkllm_vocab *v, const char *text, const struct fragment *frags,
                     size_t n_frags, bool add_special, struct sink *out);
int spm_piece(const vkllm_vocab *v, int32_t token, char *buf, int cap);

/* ---- bpe.c */

int bpe_load(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err);
int bpe_finish(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err);
void bpe_free(struct bpe_model *b);
int bpe_encode_frags(const vkllm_vocab *v, const char *text, const struct fragment *frags,
                     size_t n_frags, bool add_special, struct sink *out);
int bpe_piece(const vkllm_vocab *v, int32_t token, char *buf, int cap);

/* ---- pretok.c */

/* A pre-tokenizer: llama.cpp's regexes for one tokenizer.ggml.pre family and
 * the flags llama.cpp sets with it. */
struct pretok_info {
    const char *names;      /* the tokenizer.ggml.pre values, space-separated */
    const char *regexes[7]; /* applied in turn, each splitting the pieces of the last */
    bool clean_spaces;      /* detokenize's clean-up (not used by token_to_piece) */
    bool ignore_merges;     /* a word that is a token is that token, unmerged */
    bool force_add_bos;     /* add BOS unless the file says otherwise */
    bool no_bos;            /* no BOS id by default (chatglm) */
    bool raw_utf8;          /* no GPT-2 byte mapping; byte tokens are <0xXX> */
    bool escape_spaces;     /* ' ' -> U+2581 before splitting */
};

/* The row for NAME (LEN bytes), or NULL if llama.cpp does not know it. */
const struct pretok_info *pretok_find(const char *name, size_t len);
/* The row llama.cpp uses for a missing or unknown name ("default"). */
const struct pretok_info *pretok_default(void);

/* Compiles INFO's regexes. */
int pretok_create(const struct pretok_info *info, struct pretok **out, struct vkllm_error *err);
void pretok_destroy(struct pretok *p);

/* The words of a text: word i is text[ends[i - 1] .. ends[i]) (ends[-1] = 0),
 * UTF-8 re-encoded as llama.cpp does (an invalid byte becomes U+FFFD). */
struct pretok_words {
    char *text;
    size_t len, text_cap;
    size_t *ends;
    size_t n, ends_cap;
};

/* Splits LEN bytes of TEXT into OUT (reused across calls; free with
 * pretok_words_free). */
int pretok_split(const struct pretok *p, const char *text, size_t len, struct pretok_words *out);
void pretok_words_free(struct pretok_words *w);

#endif
