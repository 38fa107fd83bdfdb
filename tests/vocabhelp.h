/* vocabhelp.h: what the tokenizer tests share: loading a vocabulary, text to
 * ids and back, reading a file. Include after testhelp.h. */
#ifndef VKLLM_VOCABHELP_H
#define VKLLM_VOCABHELP_H

#include "testhelp.h"
#include "vkllm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads PATH's vocabulary, and closes the file: the vocab must not need it. */
static inline vkllm_vocab *load_vocab(const char *path)
{
    vkllm_gguf *g = NULL;
    vkllm_vocab *v = NULL;
    struct vkllm_error err = {0};
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    REQUIRE_OK(vkllm_vocab_load(g, &v, &err), "%s", err.msg);
    REQUIRE(v);
    vkllm_gguf_close(g);
    return v;
}

/* Tokenizes into a malloc'ed array; *N gets the count. */
static inline int32_t *tokenize(const vkllm_vocab *v, const char *text, size_t len,
                                bool add_special, bool parse_special, int *n)
{
    *n = vkllm_tokenize(v, text, len, add_special, parse_special, NULL, 0);
    REQUIRE(*n >= 0, "tokenize: %d", *n);
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    REQUIRE(ids);
    int again = vkllm_tokenize(v, text, len, add_special, parse_special, ids, *n);
    REQUIRE(again == *n, "tokenize gave %d then %d", *n, again);
    return ids;
}

/* The text of IDS: every piece (special tokens not rendered), grown as needed.
 * STRIP drops the first piece's leading space (SentencePiece's prefix). */
static inline char *detokenize(const vkllm_vocab *v, const int32_t *ids, int n, bool strip,
                               size_t *len)
{
    size_t cap = 64, used = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    for (int i = 0; i < n; i++) {
        int m = vkllm_token_to_piece(v, ids[i], false, NULL, 0);
        REQUIRE(m >= 0, "token_to_piece(%d) = %d", (int)ids[i], m);
        while (used + (size_t)m + 1 > cap)
            REQUIRE(text = realloc(text, cap *= 2));
        REQUIRE(vkllm_token_to_piece(v, ids[i], false, text + used, m) == m);
        if (i == 0 && strip && m > 0 && text[used] == ' ') memmove(text, text + 1, (size_t)--m);
        used += (size_t)m;
    }
    text[used] = 0;
    *len = used;
    return text;
}

static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    REQUIRE(buf);
    REQUIRE(fread(buf, 1, (size_t)size, f) == (size_t)size, "short read of %s", path);
    fclose(f);
    buf[size] = 0;
    *len = (size_t)size;
    return buf;
}

static inline void print_ids(const char *label, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

#endif
