/* vocab.c: the vocabulary, and text <-> token ids exactly as llama.cpp does it.
 *
 * A vocabulary is built from a GGUF file's tokenizer.ggml.* keys. Tokenizing
 * goes in two steps, as in llama.cpp's llama_vocab::tokenize:
 *   1. partition: cut the text at special tokens ("<s>", user-defined tokens),
 *      which become their ids directly;
 *   2. encode every remaining piece of raw text with the vocabulary's own
 *      algorithm (its "kind": SentencePiece in spm.c, byte-level BPE in bpe.c
 *      with its pre-tokenizers in pretok.c).
 * A kind is one row of the kind table; loading, the partition and the public
 * calls are shared.
 *
 * The file reads top to bottom: vocabulary storage, loading, the special-token
 * partition, tokenize, token_to_piece.
 */
#include "hash.h"
#include "shown.h"
#include "vocab_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================== Vocabulary ============================== */

/* tokenizer.ggml.token_type (SentencePiece's piece types) -> attribute; other
 * values are UNDEFINED, as in llama.cpp. */
static const uint32_t token_type_attr[] = {
    ATTR_UNDEFINED,    ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL,
    ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE,
};

/* The slot holding TEXT, or the empty slot where it would go. */
static int32_t *index_slot(const vkllm_vocab *v, const char *text, size_t len)
{
    for (uint64_t i = hash_bytes(text, len) & v->index_mask;; i = (i + 1) & v->index_mask) {
        int32_t *slot = &v->index[i];
        if (*slot < 0) return slot;
        const struct token *t = &v->tokens[*slot];
        if (t->len == len && memcmp(t->text, text, len) == 0) return slot;
    }
}

int32_t vocab_find(const vkllm_vocab *v, const char *text, size_t len)
{
    return *index_slot(v, text, len);
}

static int32_t vocab_find_str(const vkllm_vocab *v, const char *text)
{
    return vocab_find(v, text, strlen(text));
}

static void vocab_set_eog(vkllm_vocab *v, int32_t id)
{
    if (id >= 0) v->tokens[id].eog = true;
}

void vocab_warn(vkllm_vocab *v, const char *fmt, ...)
{
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    struct vkllm_error line;
    vkllm_fail(&line, VKLLM_OK, "%s", raw); /* made printable, one line */
    char *copy = malloc(strlen(line.msg) + 1);
    char **list = realloc(v->warnings, (v->n_warnings + 1) * sizeof *list);
    if (list) v->warnings = list;
    if (!copy || !list) {
        free(copy);
        return;
    }
    strcpy(copy, line.msg);
    v->warnings[v->n_warnings++] = copy;
}

int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return VKLLM_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    if (cap2 > SIZE_MAX / elem) return VKLLM_E_NOMEM;
    void *q = realloc(*p, cap2 * elem);
    if (!q) return VKLLM_E_NOMEM;
    *p = q;
    *cap = cap2;
    return VKLLM_OK;
}

/* ============================== Loading ============================== */

static const struct kind_info kinds[] = {
    /* model  bos eos  unk add_bos add_eos space_prefix */
    {"llama", 1, 2, 0, true, false, true, NULL, NULL, spm_encode_frags, spm_piece},
    {"gpt2", 11, 11, -1, false, false, false, bpe_load, bpe_finish, bpe_encode_frags, bpe_piece},
};

/* The *_token_id keys, in llama.cpp's order: the deprecated names come last and
 * win over the new ones. */
static const struct {
    const char *key;
    enum special which;
} special_keys[] = {
    {"tokenizer.ggml.bos_token_id", SP_BOS},
    {"tokenizer.ggml.eos_token_id", SP_EOS},
    {"tokenizer.ggml.eot_token_id", SP_EOT},
    {"tokenizer.ggml.eom_token_id", SP_EOM},
    {"tokenizer.ggml.unknown_token_id", SP_UNK},
    {"tokenizer.ggml.seperator_token_id", SP_SEP}, /* sic: the key is spelled so */
    {"tokenizer.ggml.padding_token_id", SP_PAD},
    {"tokenizer.ggml.mask_token_id", SP_MASK},
    {"tokenizer.ggml.fim_pre_token_id", SP_FIM_PRE},
    {"tokenizer.ggml.fim_suf_token_id", SP_FIM_SUF},
    {"tokenizer.ggml.fim_mid_token_id", SP_FIM_MID},
    {"tokenizer.ggml.fim_pad_token_id", SP_FIM_PAD},
    {"tokenizer.ggml.fim_rep_token_id", SP_FIM_REP},
    {"tokenizer.ggml.fim_sep_token_id", SP_FIM_SEP},
    {"tokenizer.ggml.prefix_token_id", SP_FIM_PRE},
    {"tokenizer.ggml.suffix_token_id", SP_FIM_SUF},
    {"tokenizer.ggml.middle_token_id", SP_FIM_MID},
};

/* Roles llama.cpp gives by token text when the file names no id for them (its
 * converters do not write these keys). A token so found is forced to CONTROL.
 * llama.cpp takes the first match in hash-map order; we take the first text in
 * this list that the vocabulary has, which agrees on every vocabulary we test
 * (Phi-3 has both "<|end|>" and "<|endoftext|>": both give "<|end|>"). */
static const struct {
    enum special which;
    const char *texts[12];
} role_texts[] = {
    {SP_EOT,
     {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
      "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}},
    {SP_EOM, {"<|eom_id|>"}},
    {SP_FIM_PRE,
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
      "<|code_prefix|>", "<|prefix|>"}},
    {SP_FIM_SUF,
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
      "<|code_suffix|>", "<|suffix|>"}},
    {SP_FIM_MID,
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
      "<|code_middle|>", "<|middle|>"}},
    {SP_FIM_PAD, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {SP_FIM_REP, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {SP_FIM_SEP, {"<|file_sep|>"}},
};

/* Tokens that end generation, by text (llama.cpp's list); also forced to CONTROL. */
/* clang-format off */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
};
/* clang-format on */

/* gpt-oss: llama.cpp always renders these, whatever their type. */
static const char *const user_defined_texts[] = {
    "<|channel|>",
    "<|message|>",
    "<|start|>",
    "<|constrain|>",
};

/* Looks the model name up in KINDS. */
static int load_kind(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    struct vkllm_gguf_str model;
    int rc = vkllm_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: no tokenizer (key tokenizer.ggml.model is missing)", name);
    if (rc) return rc;
    int n = model.len > 64 ? 64 : (int)model.len;
    for (size_t i = 0; i < COUNT(kinds); i++) {
        if (strlen(kinds[i].model) == model.len &&
            memcmp(kinds[i].model, model.ptr, model.len) == 0) {
            v->kind = &kinds[i];
            return VKLLM_OK;
        }
    }
    if ((model.len == 4 && memcmp(model.ptr, "none", 4) == 0) ||
        (model.len == 8 && memcmp(model.ptr, "no_vocab", 8) == 0))
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: the file has no vocabulary (tokenizer '%.*s')", name, n, model.ptr);
    return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                      "%s: tokenizer '%.*s' is not supported (vkllm reads SentencePiece 'llama' "
                      "and byte-level BPE 'gpt2' vocabularies)",
                      name, n, model.ptr);
}

/* An optional per-token array (scores, token_type): NULL if absent. */
static int load_token_array(const vkllm_gguf *g, const char *key, uint64_t n_tokens, bool allow_f32,
                            const struct vkllm_gguf_kv **out, struct vkllm_error *err)
{
    *out = NULL;
    int rc = vkllm_gguf_get_arr(g, key, VKLLM_GGUF_TYPE_COUNT, out, err);
    if (rc == VKLLM_E_NOT_FOUND) return VKLLM_OK;
    if (rc) return rc;
    const struct vkllm_gguf_kv *kv = *out;
    if (kv->arr_type != VKLLM_GGUF_INT32 && !(allow_f32 && kv->arr_type == VKLLM_GGUF_FLOAT32))
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: key '%s' is an array of %s, expected %s",
                          vkllm_gguf_name(g), key, vkllm_gguf_type_name(kv->arr_type),
                          allow_f32 ? "float32 or int32" : "int32");
    if (kv->arr_len < n_tokens)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: key '%s' has %llu entries for %llu tokens",
                          vkllm_gguf_name(g), key, (unsigned long long)kv->arr_len,
                          (unsigned long long)n_tokens);
    return VKLLM_OK;
}

/* tokenizer.ggml.tokens, scores and token_type: the token table and its index. */
static int load_tokens(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    const char *name = vkllm_gguf_name(g);
    const struct vkllm_gguf_kv *list, *scores, *types;
    int rc = vkllm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &list, err);
    if (rc == VKLLM_E_NOT_FOUND)
        return vkllm_fail(err, VKLLM_E_FORMAT,
                          "%s: no vocabulary (key tokenizer.ggml.tokens is missing)", name);
    if (rc) return rc;
    if (list->arr_len == 0 || list->arr_len > INT32_MAX / 2)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tokenizer.ggml.tokens has %llu tokens", name,
                          (unsigned long long)list->arr_len);
    uint64_t n = list->arr_len;
    if ((rc = load_token_array(g, "tokenizer.ggml.scores", n, true, &scores, err))) return rc;
    if ((rc = load_token_array(g, "tokenizer.ggml.token_type", n, false, &types, err))) return rc;

    /* llama.cpp renames empty tokens "[EMPTY_<id>]": reserve room for that */
    uint64_t arena_size = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = vkllm_gguf_arr_str(list, i).len;
        if (len > INT32_MAX)
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: token %llu is %llu bytes long", name,
                              (unsigned long long)i, (unsigned long long)len);
        arena_size += len ? len : 24;
    }
    uint64_t index_size = 1;
    while (index_size < 2 * n)
        index_size <<= 1;
    v->n_tokens = (int32_t)n;
    v->tokens = calloc(n, sizeof *v->tokens);
    v->arena = malloc(arena_size);
    v->index = malloc(index_size * sizeof *v->index);
    if (!v->tokens || !v->arena || !v->index)
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory for %llu tokens", name,
                          (unsigned long long)n);
    memset(v->index, 0xff, index_size * sizeof *v->index);
    v->index_mask = index_size - 1;

    char *p = v->arena;
    uint64_t n_bad_types = 0, first_bad = 0;
    int64_t first_bad_type = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct token *t = &v->tokens[i];
        struct vkllm_gguf_str s = vkllm_gguf_arr_str(list, i);
        t->text = p;
        if (s.len) {
            memcpy(p, s.ptr, s.len);
            t->len = (uint32_t)s.len;
        } else {
            char tmp[24];
            int len = snprintf(tmp, sizeof tmp, "[EMPTY_%llu]", (unsigned long long)i);
            memcpy(p, tmp, (size_t)len);
            t->len = (uint32_t)len;
        }
        p += t->len;
        t->score = scores ? (float)vkllm_gguf_arr_float(scores, i) : 0.0f;
        t->attr = ATTR_NORMAL;
        if (types) {
            int64_t type = vkllm_gguf_arr_int(types, i);
            const bool known = type >= 0 && type < (int64_t)COUNT(token_type_attr);
            t->attr = known ? token_type_attr[type] : ATTR_UNDEFINED;
            if (!known && !n_bad_types++) {
                first_bad = i;
                first_bad_type = type;
            }
        }
        int32_t *slot = index_slot(v, t->text, t->len);
        if (*slot >= 0) { /* llama.cpp asserts on this */
            char text[SHOWN_MAX];
            return vkllm_fail(err, VKLLM_E_FORMAT, "%s: tokens %d and %llu are both '%s'", name,
                              (int)*slot, (unsigned long long)i, shown(text, t->text, t->len));
        }
        *slot = (int32_t)i;
    }
    /* llama.cpp reads them as undefined too, silently: a model whose every
     * token is one of them generates nothing */
    if (n_bad_types)
        vocab_warn(v,
                   "%s: %llu tokens of tokenizer.ggml.token_type are not a type 0..%d (token "
                   "%llu: %lld); they are read as undefined, with no text",
                   name, (unsigned long long)n_bad_types, (int)COUNT(token_type_attr) - 1,
                   (unsigned long long)first_bad, (long long)first_bad_type);
    return VKLLM_OK;
}

/* A byte token "<0xXX>": llama.cpp's strtol of the two characters after "<0x". */
char token_byte(const struct token *t)
{
    unsigned byte = 0;
    for (uint32_t i = 3; i < 5 && i < t->len; i++) {
        char c = t->text[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16) break;
        byte = byte * 16 + d;
    }
    return (char)byte;
}

/* SPM byte fallback: a byte with no token of its own becomes "<0xXX>", or the
 * token spelled by that single byte. */
static void load_byte_tokens(vkllm_vocab *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char text[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char byte = (char)b;
        int32_t id = vocab_find(v, text, sizeof text);
        v->byte_token[b] = id >= 0 ? id : vocab_find(v, &byte, 1);
    }
}

/* Ids of BOS, EOS, ...: the kind's defaults, replaced by the file's keys. An id
 * out of range (or negative) is ignored with a warning, as llama.cpp does: the
 * default stays, or none if the default is out of range too. The value "none"
 * (-1, or 0xFFFFFFFF as stories260K's padding id) warns only when a default
 * takes its place. */
static int load_special_ids(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    for (int i = 0; i < SP_COUNT; i++)
        v->special[i] = -1;
    v->special[SP_BOS] = v->info && v->info->no_bos ? -1 : v->kind->bos;
    v->special[SP_EOS] = v->kind->eos;
    v->special[SP_UNK] = v->kind->unk;
    for (size_t i = 0; i < COUNT(special_keys); i++) {
        const char *key = special_keys[i].key;
        int32_t *id = &v->special[special_keys[i].which];
        if (*id >= v->n_tokens) *id = -1;
        const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, key);
        if (!kv) continue;
        char shown[24];
        bool none;
        bool is_signed = kv->type == VKLLM_GGUF_INT8 || kv->type == VKLLM_GGUF_INT16 ||
                         kv->type == VKLLM_GGUF_INT32 || kv->type == VKLLM_GGUF_INT64;
        if (is_signed && vkllm_gguf_kv_int(kv) < 0) {
            int64_t value = vkllm_gguf_kv_int(kv);
            snprintf(shown, sizeof shown, "%lld", (long long)value);
            none = value == -1;
        } else {
            uint64_t value;
            int rc = vkllm_gguf_get_uint(g, key, &value, err);
            if (rc) return rc;
            if (value < (uint64_t)v->n_tokens) {
                *id = (int32_t)value;
                continue;
            }
            snprintf(shown, sizeof shown, "%llu", (unsigned long long)value);
            none = value == UINT32_MAX || value == UINT64_MAX;
        }
        if (none && *id < 0) continue; /* as the file says: no such token */
        char fallback[32] = "none";
        if (*id >= 0) snprintf(fallback, sizeof fallback, "id %d", (int)*id);
        vocab_warn(v, "%s: bad special token: '%s' = %s (the vocabulary has %d tokens), using %s",
                   vkllm_gguf_name(g), key, shown, (int)v->n_tokens, fallback);
    }
    return VKLLM_OK;
}

/* An optional boolean key; DEF if absent. */
static int load_flag(const vkllm_gguf *g, const char *key, bool def, bool *out,
                     struct vkllm_error *err)
{
    *out = def;
    int rc = vkllm_gguf_get_bool(g, key, out, err);
    return rc == VKLLM_E_NOT_FOUND ? VKLLM_OK : rc;
}

static void force_control(vkllm_vocab *v, int32_t id)
{
    v->tokens[id].attr |= ATTR_CONTROL;
}

/* Whether the token spelled TEXT exists and ends generation. */
static bool text_is_eog(const vkllm_vocab *v, const char *text)
{
    int32_t id = vocab_find_str(v, text);
    return id >= 0 && v->tokens[id].eog;
}

/* llama.cpp's rules that find roles and end-of-generation tokens by text. */
static void find_roles(vkllm_vocab *v)
{
    for (size_t r = 0; r < COUNT(role_texts); r++) {
        int32_t *id = &v->special[role_texts[r].which];
        for (size_t i = 0; *id < 0 && i < COUNT(role_texts[r].texts) && role_texts[r].texts[i];
             i++) {
            *id = vocab_find_str(v, role_texts[r].texts[i]);
            if (*id >= 0) force_control(v, *id);
        }
    }

    /* (llama.cpp also marks control tokens named "unused" UNUSED: only its log
     * shows that) */
    vocab_set_eog(v, v->special[SP_FIM_PAD]);
    vocab_set_eog(v, v->special[SP_FIM_REP]);
    vocab_set_eog(v, v->special[SP_FIM_SEP]);
    for (size_t i = 0; i < COUNT(eog_texts); i++) {
        int32_t id = vocab_find_str(v, eog_texts[i]);
        if (id < 0) continue;
        vocab_set_eog(v, id);
        force_control(v, id);
    }
    for (size_t i = 0; i < COUNT(user_defined_texts); i++) {
        int32_t id = vocab_find_str(v, user_defined_texts[i]);
        if (id >= 0) v->tokens[id].attr = ATTR_USER_DEFINED;
    }
    vocab_set_eog(v, v->special[SP_EOS]);
    vocab_set_eog(v, v->special[SP_EOT]);
    vocab_set_eog(v, v->special[SP_EOM]);

    /* gpt-oss (harmony) and solar-open: "<|end|>" ends a message, not the generation */
    int32_t end = vocab_find_str(v, "<|end|>");
    if (end >= 0 && v->tokens[end].eog &&
        ((text_is_eog(v, "<|return|>") &&
          (text_is_eog(v, "<|call|>") || text_is_eog(v, "<|calls|>"))) ||
         ((text_is_eog(v, "<|call|>") || text_is_eog(v, "<|calls|>")) &&
          text_is_eog(v, "<|flush|>")))) {
        v->tokens[end].eog = false;
        v->tokens[end].attr = ATTR_USER_DEFINED;
    }
    /* gemma4, paddleocr: "</s>" is ordinary text there */
    int32_t s = vocab_find_str(v, "</s>");
    if (s >= 0 && v->tokens[s].eog && text_is_eog(v, "<|tool_response>")) {
        v->tokens[s].eog = false;
        v->tokens[s].attr = ATTR_NORMAL;
    }
}

/* Whether the string key KEY of G contains one of NEEDLES, ignoring ASCII case
 * if LOWER. */
static bool key_contains(const vkllm_gguf *g, const char *key, bool lower,
                         const char *const *needles, size_t n)
{
    struct vkllm_gguf_str s;
    if (vkllm_gguf_get_str(g, key, &s, NULL) != VKLLM_OK) return false;
    char text[256];
    size_t len = s.len < sizeof text - 1 ? s.len : sizeof text - 1;
    for (size_t i = 0; i < len; i++) {
        char c = s.ptr[i];
        text[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    text[len] = 0;
    for (size_t i = 0; i < n; i++)
        if (strstr(text, needles[i])) return true;
    return false;
}

static void set_attr(vkllm_vocab *v, const char *text, uint32_t attr, bool on)
{
    int32_t id = vocab_find_str(v, text);
    if (id < 0) return;
    if (on)
        v->tokens[id].attr |= attr;
    else
        v->tokens[id].attr &= ~attr;
}

/* llama.cpp's per-model token attributes (the files do not carry them), chosen
 * by the pre-tokenizer, architecture or model name, first rule that applies. */
static void per_model_rules(vkllm_vocab *v, const vkllm_gguf *g)
{
    static const char *const jina_pre[] = {"jina-v2-de", "jina-v2-es", "jina-v2-code"};
    static const char *const jina_arch[] = {"nomic-bert-moe", "jina-bert-v3"};
    static const char *const phi3[] = {"phi-3", "phi3"};
    static const char *const modern_bert[] = {"modern-bert"};
    if (key_contains(g, "tokenizer.ggml.pre", false, jina_pre, COUNT(jina_pre)) ||
        key_contains(g, "general.architecture", false, jina_arch, COUNT(jina_arch))) {
        /* the mask token eats the whitespace before it */
        set_attr(v, "<mask>", ATTR_LSTRIP, true);
    } else if (key_contains(g, "general.name", true, phi3, COUNT(phi3))) {
        /* in Phi-3 text, special tokens swallow the whitespace after them,
         * except these three */
        for (int32_t i = 0; i < v->n_specials; i++)
            v->tokens[v->specials[i]].attr |= ATTR_RSTRIP;
        set_attr(v, "</s>", ATTR_RSTRIP, true);
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < 3; i++)
            set_attr(v, keep[i], ATTR_RSTRIP, false);
    } else if (key_contains(g, "general.name", true, modern_bert, COUNT(modern_bert))) {
        set_attr(v, "[MASK]", ATTR_LSTRIP, true);
    }
}

struct special_key {
    uint32_t len;
    int32_t id;
};

/* Longest text first, so that "<|end|>" is cut out before a shorter token
 * inside it; ties by id (llama.cpp's sort is not stable, but ties only matter
 * between overlapping texts of the same length). */
static int cmp_special(const void *a, const void *b)
{
    const struct special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int build_trie(vkllm_vocab *v, const char *name, struct vkllm_error *err); /* Partition */

/* The tokens the partition looks for in the text: control, user-defined and
 * unknown ones. */
static int load_specials(vkllm_vocab *v, const vkllm_gguf *g, struct vkllm_error *err)
{
    const uint32_t mask = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN;
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n += (v->tokens[i].attr & mask) != 0;
    struct special_key *keys = malloc((n ? (size_t)n : 1) * sizeof *keys);
    v->specials = malloc((n ? (size_t)n : 1) * sizeof *v->specials);
    if (!keys || !v->specials) {
        free(keys);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", vkllm_gguf_name(g));
    }
    for (int32_t i = 0, k = 0; i < v->n_tokens; i++)
        if (v->tokens[i].attr & mask) keys[k++] = (struct special_key){v->tokens[i].len, i};
    qsort(keys, (size_t)n, sizeof *keys, cmp_special);
    for (int32_t k = 0; k < n; k++)
        v->specials[k] = keys[k].id;
    v->n_specials = n;
    free(keys);

    per_model_rules(v, g);
    return build_trie(v, vkllm_gguf_name(g), err);
}

int vkllm_vocab_load(const vkllm_gguf *g, vkllm_vocab **out, struct vkllm_error *err)
{
    if (!out) return vkllm_fail(err, VKLLM_E_INVALID, "vkllm_vocab_load: OUT is NULL");
    *out = NULL;
    if (!g) return vkllm_fail(err, VKLLM_E_INVALID, "vkllm_vocab_load: no file");
    vkllm_vocab *v = calloc(1, sizeof *v);
    if (!v) return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", vkllm_gguf_name(g));

    bool add_bos, add_eos;
    int rc;
    if ((rc = load_kind(v, g, err)) ||
        (rc = load_flag(g, "tokenizer.ggml.add_space_prefix", v->kind->add_space_prefix,
                        &v->add_space_prefix, err)) ||
        (rc = load_tokens(v, g, err)) || (v->kind->load && (rc = v->kind->load(v, g, err))))
        goto fail;
    load_byte_tokens(v);
    /* a BPE pre-tokenizer may change the kind's defaults, as in llama.cpp */
    bool default_bos = v->kind->add_bos || (v->info && v->info->force_add_bos);
    if ((rc = load_special_ids(v, g, err)) ||
        (rc = load_flag(g, "tokenizer.ggml.add_bos_token", default_bos, &add_bos, err)) ||
        (rc = load_flag(g, "tokenizer.ggml.add_eos_token", v->kind->add_eos, &add_eos, err)))
        goto fail;
    /* llama.cpp asserts when asked to add a token the vocabulary lacks */
    v->add_bos = add_bos && v->special[SP_BOS] >= 0;
    v->add_eos = add_eos && v->special[SP_EOS] >= 0;
    find_roles(v);
    if ((rc = load_specials(v, g, err)) || (v->kind->finish && (rc = v->kind->finish(v, g, err))))
        goto fail;
    *out = v;
    return VKLLM_OK;

fail:
    vkllm_vocab_free(v);
    return rc;
}

void vkllm_vocab_free(vkllm_vocab *v)
{
    if (!v) return;
    free(v->tokens);
    free(v->arena);
    free(v->index);
    free(v->specials);
    free(v->trie);
    free(v->special_node);
    for (size_t i = 0; i < v->n_warnings; i++)
        free(v->warnings[i]);
    free(v->warnings);
    bpe_free(v->bpe);
    pretok_destroy(v->pre);
    free(v);
}

int32_t vkllm_vocab_n_tokens(const vkllm_vocab *v)
{
    return v ? v->n_tokens : 0;
}
int32_t vkllm_vocab_bos(const vkllm_vocab *v)
{
    return v ? v->special[SP_BOS] : -1;
}
int32_t vkllm_vocab_eos(const vkllm_vocab *v)
{
    return v ? v->special[SP_EOS] : -1;
}
bool vkllm_vocab_add_bos(const vkllm_vocab *v)
{
    return v && v->add_bos;
}

size_t vkllm_vocab_warning_count(const vkllm_vocab *v)
{
    return v ? v->n_warnings : 0;
}

const char *vkllm_vocab_warning(const vkllm_vocab *v, size_t i)
{
    return v && i < v->n_warnings ? v->warnings[i] : NULL;
}

bool vkllm_vocab_is_eog(const vkllm_vocab *v, int32_t token)
{
    return v && token >= 0 && token < v->n_tokens && v->tokens[token].eog;
}

/* ============================== Partition ============================== */

/* llama.cpp's tokenizer_st_partition takes the special tokens one at a time,
 * longest first (ties: lowest id), and cuts every occurrence of each, left to
 * right, out of the raw text the ones before it left; the order decides
 * overlaps ("<|end|>" beats "<|end", and a longer token beats a shorter one
 * that starts earlier). Done so, it costs the number of special tokens times
 * the text's length: minutes for a vocabulary with 20,000 user-defined tokens.
 *
 * We get the same cuts from the occurrences alone. Bytes cut out (a token, or
 * the whitespace an LSTRIP/RSTRIP token takes along) are marked; the raw text
 * left is what is unmarked. Every position where a special token starts holds
 * a candidate, the longest such token not yet ruled out, in a heap ordered as
 * llama.cpp's loops go: by the token's rank in vocab->specials, then position.
 * The candidate at the top is cut out if its bytes are all unmarked; if not it
 * can never be (marks stay), and the position's next candidate is the longest
 * shorter token that fits before the first marked byte. Each position is
 * found in one pass of the trie over the text, and costs a few heap steps. */

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The child of NODE by byte B, or -1. */
static int32_t trie_child(const vkllm_vocab *v, int32_t node, uint8_t b)
{
    if (node == 0) return v->trie_root[b];
    for (int32_t c = v->trie[node].child; c >= 0; c = v->trie[c].sibling)
        if (v->trie[c].byte == b) return c;
    return -1;
}

/* The Aho-Corasick step: the node of the longest suffix of NODE's text + B. */
static int32_t trie_step(const vkllm_vocab *v, int32_t node, uint8_t b)
{
    for (;;) {
        int32_t c = trie_child(v, node, b);
        if (c >= 0) return c;
        if (node == 0) return 0;
        node = v->trie[node].fail;
    }
}

/* Whether the partition may cut special token RANK out of the text in MODE
 * (0: parse_special, 1: not: only user-defined tokens). */
static bool special_allowed(const vkllm_vocab *v, int32_t rank, int mode)
{
    return mode == 0 || !(v->tokens[v->specials[rank]].attr & (ATTR_CONTROL | ATTR_UNKNOWN));
}

/* Builds the trie of the specials' reversed texts and its links. */
static int build_trie(vkllm_vocab *v, const char *name, struct vkllm_error *err)
{
    uint64_t bytes = 1;
    for (int32_t r = 0; r < v->n_specials; r++)
        bytes += v->tokens[v->specials[r]].len;
    if (bytes > INT32_MAX)
        return vkllm_fail(err, VKLLM_E_FORMAT, "%s: the special tokens hold %llu bytes", name,
                          (unsigned long long)bytes);
    v->trie = malloc(bytes * sizeof *v->trie);
    v->special_node = malloc((v->n_specials ? (size_t)v->n_specials : 1) * sizeof(int32_t));
    int32_t *queue = malloc(bytes * sizeof *queue);
    if (!v->trie || !v->special_node || !queue) {
        free(queue);
        return vkllm_fail(err, VKLLM_E_NOMEM, "%s: out of memory", name);
    }
    memset(v->trie_root, 0xff, sizeof v->trie_root);
    v->trie[0] = (struct trie_node){-1, -1, 0, {-1, -1}, -1, 0};
    v->n_trie = 1;
    for (int32_t r = 0; r < v->n_specials; r++) {
        const struct token *t = &v->tokens[v->specials[r]];
        int32_t node = 0;
        for (uint32_t i = t->len; i-- > 0;) {
            uint8_t b = (uint8_t)t->text[i];
            int32_t c = trie_child(v, node, b);
            if (c < 0) {
                c = v->n_trie++;
                v->trie[c] = (struct trie_node){-1, v->trie[node].child, 0, {-1, -1}, -1, b};
                if (node == 0)
                    v->trie_root[b] = c;
                else
                    v->trie[node].child = c;
            }
            node = c;
        }
        v->trie[node].rank = r; /* texts are unique: load_tokens refuses twins */
        v->special_node[r] = node;
    }

    /* breadth first, so that a node's fail node (shallower) is done before it;
     * the root's children (depth 1) fail to the root */
    size_t head = 0, tail = 0;
    for (int b = 0; b < 256; b++)
        if (v->trie_root[b] >= 0) queue[tail++] = v->trie_root[b];
    while (head < tail) {
        int32_t u = queue[head++];
        struct trie_node *n = &v->trie[u];
        for (int mode = 0; mode < 2; mode++)
            n->out[mode] =
                n->rank >= 0 && special_allowed(v, n->rank, mode) ? u : v->trie[n->fail].out[mode];
        for (int32_t c = n->child; c >= 0; c = v->trie[c].sibling) {
            v->trie[c].fail = trie_step(v, n->fail, v->trie[c].byte);
            queue[tail++] = c;
        }
    }
    free(queue);
    return VKLLM_OK;
}

/* ---- the heap of candidates: (rank << 32 | position), smallest first */

static void heap_down(uint64_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < n && h[l] < h[best]) best = l;
        if (r < n && h[r] < h[best]) best = r;
        if (best == i) return;
        uint64_t t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

static void heap_push(uint64_t *h, size_t *n, uint64_t key)
{
    size_t i = (*n)++;
    for (; i > 0 && key < h[(i - 1) / 2]; i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = key;
}

/* ---- marked bytes: one bit each */

static bool is_marked(const uint64_t *marks, size_t i)
{
    return (marks[i / 64] >> (i % 64)) & 1;
}

static void mark(uint64_t *marks, size_t i)
{
    marks[i / 64] |= 1ull << (i % 64);
}

/* Unmarked bytes from P on, counting up to MAX (P + MAX is inside the text). */
static size_t unmarked_run(const uint64_t *marks, size_t p, size_t max)
{
    size_t n = 0;
    while (n < max) {
        size_t i = p + n;
        uint64_t w = marks[i / 64] >> (i % 64);
        if (w) {
            n += (size_t)__builtin_ctzll(w);
            return n < max ? n : max;
        }
        n += 64 - i % 64;
    }
    return max;
}

struct frag_list {
    struct fragment *items;
    size_t n, cap;
};

static int frag_push(struct frag_list *l, int32_t token, size_t off, size_t len)
{
    if (grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items)) return VKLLM_E_NOMEM;
    l->items[l->n++] = (struct fragment){token, off, len};
    return VKLLM_OK;
}

/* The cuts, in text order: special tokens where CUT_AT (-1 elsewhere) says,
 * and the unmarked bytes between them as raw fragments. */
static int collect(const vkllm_vocab *v, size_t len, const uint64_t *marks, const int32_t *cut_at,
                   struct frag_list *out)
{
    size_t raw = 0, raw_len = 0;
    int rc = VKLLM_OK;
    for (size_t i = 0; i < len && rc == VKLLM_OK;) {
        if (!is_marked(marks, i)) {
            if (raw_len == 0) raw = i;
            raw_len++;
            i++;
            continue;
        }
        if (raw_len) rc = frag_push(out, -1, raw, raw_len);
        raw_len = 0;
        if (rc == VKLLM_OK && cut_at[i] >= 0) {
            rc = frag_push(out, cut_at[i], 0, 0);
            i += v->tokens[cut_at[i]].len;
        } else {
            i++; /* whitespace a token took along */
        }
    }
    if (rc == VKLLM_OK && raw_len) rc = frag_push(out, -1, raw, raw_len);
    return rc;
}

int vocab_partition(const vkllm_vocab *v, const char *text, size_t len, bool parse_special,
                    struct fragment **frags, size_t *n_frags)
{
    struct frag_list out = {0};
    *frags = NULL;
    *n_frags = 0;
    const int mode = parse_special ? 0 : 1;
    uint64_t *heap = NULL, *marks = NULL;
    int32_t *cut_at = NULL;
    int rc = VKLLM_OK;
    if (len == 0) goto done;

    /* the candidates: the longest token starting at each position */
    size_t n = 0, cap = 0;
    for (int32_t node = 0, p = (int32_t)len; p-- > 0;) {
        node = trie_step(v, node, (uint8_t)text[p]);
        int32_t o = v->trie[node].out[mode];
        if (o < 0) continue;
        if ((rc = grow((void **)&heap, &cap, n + 1, sizeof *heap))) goto done;
        heap[n++] = (uint64_t)v->trie[o].rank << 32 | (uint32_t)p;
    }
    if (n == 0) {
        rc = frag_push(&out, -1, 0, len);
        goto done;
    }
    for (size_t i = n / 2; i-- > 0;)
        heap_down(heap, n, i);

    marks = calloc((len + 63) / 64, sizeof *marks);
    cut_at = malloc(len * sizeof *cut_at);
    if (!marks || !cut_at) {
        rc = VKLLM_E_NOMEM;
        goto done;
    }
    memset(cut_at, 0xff, len * sizeof *cut_at);
    while (n > 0) {
        uint64_t top = heap[0];
        heap[0] = heap[--n];
        heap_down(heap, n, 0);
        size_t p = (uint32_t)top;
        int32_t rank = (int32_t)(top >> 32);
        if (is_marked(marks, p)) continue; /* inside a cut: nothing starts here any more */
        int32_t id = v->specials[rank];
        const struct token *t = &v->tokens[id];
        size_t free_bytes = unmarked_run(marks, p, t->len);
        if (free_bytes < t->len) {
            /* the next candidate here: shorter tokens in turn, from the fail chain */
            int32_t o = v->trie[v->trie[v->special_node[rank]].fail].out[mode];
            while (o >= 0 && v->tokens[v->specials[v->trie[o].rank]].len > free_bytes)
                o = v->trie[v->trie[o].fail].out[mode];
            if (o >= 0) heap_push(heap, &n, (uint64_t)v->trie[o].rank << 32 | (uint32_t)p);
            continue;
        }
        cut_at[p] = id;
        for (size_t i = p; i < p + t->len; i++)
            mark(marks, i);
        if (t->attr & ATTR_LSTRIP)
            for (size_t i = p; i > 0 && !is_marked(marks, i - 1) && is_space(text[i - 1]); i--)
                mark(marks, i - 1);
        if (t->attr & ATTR_RSTRIP)
            for (size_t i = p + t->len; i < len && !is_marked(marks, i) && is_space(text[i]); i++)
                mark(marks, i);
    }
    rc = collect(v, len, marks, cut_at, &out);

done:
    free(heap);
    free(marks);
    free(cut_at);
    if (rc) {
        free(out.items);
        return rc;
    }
    *frags = out.items;
    *n_frags = out.n;
    return VKLLM_OK;
}

/* ============================== Tokenize ============================== */

int vkllm_tokenize(const vkllm_vocab *v, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t *out, int cap)
{
    /* the SPM encoder indexes the escaped text (up to 3 bytes a byte) with int32 */
    if (!v || (!text && len) || cap < 0 || (!out && cap > 0) || len > INT32_MAX / 3 - 4)
        return VKLLM_E_INVALID;
    struct fragment *frags;
    size_t n_frags;
    struct sink sink = {out, (size_t)cap, 0};
    int rc = vocab_partition(v, text, len, parse_special, &frags, &n_frags);
    if (rc == VKLLM_OK) rc = v->kind->encode(v, text, frags, n_frags, add_special, &sink);
    free(frags);
    if (rc) return rc;
    return sink.n > INT_MAX ? VKLLM_E_INVALID : (int)sink.n;
}

/* ============================== Token to piece ============================== */

int copy_piece(char *buf, int cap, const char *text, size_t len)
{
    if (len > INT_MAX) return VKLLM_E_UNSUPPORTED;
    if (len && len <= (size_t)cap) memcpy(buf, text, len);
    return (int)len;
}

/* Nothing is written when the piece does not fit in CAP (the length still
 * comes back, as for vkllm_tokenize). */
int vkllm_token_to_piece(const vkllm_vocab *v, int32_t token, bool special, char *buf, int cap)
{
    if (!v || cap < 0 || (!buf && cap > 0) || token < 0 || token >= v->n_tokens)
        return VKLLM_E_INVALID;
    if (!special && (v->tokens[token].attr & (ATTR_UNKNOWN | ATTR_CONTROL))) return 0;
    return v->kind->piece(v, token, buf, cap);
}
