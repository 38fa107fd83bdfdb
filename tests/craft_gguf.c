/* craft_gguf.c: copies a GGUF file with changes a test asks for, to make the
 * odd files a user may download: hostile strings in keys, values and tensor
 * names, odd hyperparameters, very long tokens. A tool for tests/test_defects.sh,
 * not a test.
 *
 *   craft_gguf IN OUT [--str KEY VALUE] [--str-x KEY VALUE] [--u32 KEY N]
 *                     [--rename OLD NEW] [--shape NAME N0,N1,...]
 *                     [--token-suffix TEXT] [--token-type ID TYPE]
 *                     [--empty-strs KEY N]
 *
 * --str and --u32 set (or add) a key; --str-x does as --str with "\xNN" in
 * VALUE standing for a byte (a NUL too); --rename renames a tensor; --shape
 * gives an F32 tensor another shape of at most its elements (its first ones;
 * a 0 makes it empty); --token-suffix appends TEXT to every normal token of
 * tokenizer.ggml.tokens (type 1), so that whatever a model generates is that
 * long (with "\xNN" escapes, as --str-x); --token-type sets the type of
 * token ID in tokenizer.ggml.token_type (any int32); --empty-strs sets KEY to an array of N empty strings (a
 * header of 8 * N bytes that takes seconds to copy). Each may be repeated.
 */
#include "gguf_copy.h"
#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EDITS 16

static int fail(const char *what)
{
    fprintf(stderr, "craft_gguf: %s\n", what);
    return 1;
}

static void put_le(uint8_t **p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

/* Sets KEY to VALUE with its "\xNN" escapes decoded. The writer takes C
 * strings, so the value goes through a one-key GGUF image and copy_kv. */
static int set_str_escaped(vkllm_gguf_writer *w, const char *key, const char *value)
{
    const size_t klen = strlen(key), vmax = strlen(value);
    uint8_t *img = malloc(4 + 4 + 8 + 8 + 8 + klen + 4 + 8 + vmax), *p = img;
    if (!img) return fail("out of memory");
    memcpy(p, "GGUF", 4);
    p += 4;
    put_le(&p, 3, 4);
    put_le(&p, 0, 8); /* tensors */
    put_le(&p, 1, 8); /* key/values */
    put_le(&p, klen, 8);
    memcpy(p, key, klen);
    p += klen;
    put_le(&p, VKLLM_GGUF_STRING, 4);
    uint8_t *len_at = p;
    p += 8;
    size_t vlen = 0;
    for (const char *c = value; *c; vlen++) {
        unsigned byte;
        if (c[0] == '\\' && c[1] == 'x' && sscanf(c + 2, "%2x", &byte) == 1) {
            *p++ = (uint8_t)byte;
            c += 4;
        } else {
            *p++ = (uint8_t)*c++;
        }
    }
    put_le(&len_at, vlen, 8);
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    int rc = vkllm_gguf_parse(img, (size_t)(p - img), "--str-x", &g, &err);
    if (!rc) rc = vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, 0));
    vkllm_gguf_close(g);
    free(img);
    return rc ? fail("--str-x: cannot set the key") : 0;
}

/* tokenizer.ggml.token_type with the type of each token IDS[i] set to TYPES[i]. */
static int set_token_types(vkllm_gguf_writer *w, const vkllm_gguf *g, const long *ids,
                           const long *types, int n)
{
    const struct vkllm_gguf_kv *kv = vkllm_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (!kv || kv->type != VKLLM_GGUF_ARRAY || kv->arr_type != VKLLM_GGUF_INT32)
        return fail("no int32 tokenizer.ggml.token_type");
    int32_t *t = malloc((kv->arr_len ? kv->arr_len : 1) * sizeof *t);
    if (!t) return fail("out of memory");
    for (uint64_t i = 0; i < kv->arr_len; i++)
        t[i] = (int32_t)vkllm_gguf_arr_int(kv, i);
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        if (ids[k] < 0 || (uint64_t)ids[k] >= kv->arr_len)
            rc = fail("--token-type: no such token");
        else
            t[ids[k]] = (int32_t)types[k];
    }
    if (!rc &&
        vkllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, t, kv->arr_len))
        rc = fail("could not rewrite the token types");
    free(t);
    return rc;
}

/* Copies tokenizer.ggml.tokens with SUFFIX after each normal token. */
static int suffix_tokens(vkllm_gguf_writer *w, const vkllm_gguf *g, const char *suffix)
{
    const struct vkllm_gguf_kv *toks = vkllm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const struct vkllm_gguf_kv *types = vkllm_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (!toks || toks->type != VKLLM_GGUF_ARRAY || toks->arr_type != VKLLM_GGUF_STRING)
        return fail("no tokenizer.ggml.tokens");
    uint64_t n = toks->arr_len;
    /* "\xNN" stands for a byte, a NUL too (a token holding U+0000) */
    char raw[1024];
    size_t extra = 0;
    for (const char *c = suffix; *c && extra < sizeof raw; extra++) {
        unsigned byte;
        if (c[0] == '\\' && c[1] == 'x' && sscanf(c + 2, "%2x", &byte) == 1) {
            raw[extra] = (char)byte;
            c += 4;
        } else {
            raw[extra] = *c++;
        }
    }
    char **strs = calloc(n, sizeof *strs);
    uint64_t *lens = calloc(n, sizeof *lens);
    int rc = !strs || !lens;
    for (uint64_t i = 0; i < n && !rc; i++) {
        struct vkllm_gguf_str s = vkllm_gguf_arr_str(toks, i);
        bool normal = !types || i >= types->arr_len || vkllm_gguf_arr_int(types, i) == 1;
        lens[i] = s.len + (normal ? extra : 0);
        if (!(strs[i] = malloc(lens[i] + 1))) {
            rc = 1;
            break;
        }
        memcpy(strs[i], s.ptr, s.len);
        if (normal) memcpy(strs[i] + s.len, raw, extra);
    }
    if (!rc)
        rc = vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs,
                                           lens, n) != VKLLM_OK;
    for (uint64_t i = 0; strs && i < n; i++)
        free(strs[i]);
    free(strs);
    free(lens);
    return rc ? fail("could not rewrite the tokens") : 0;
}

/* KEY = an array of N empty strings. */
static int set_empty_strs(vkllm_gguf_writer *w, const char *key, uint64_t n)
{
    const char **strs = malloc((n ? n : 1) * sizeof *strs);
    if (!strs) return fail("--empty-strs: out of memory");
    for (uint64_t i = 0; i < n; i++)
        strs[i] = "";
    int rc = vkllm_gguf_writer_set_arr_str(w, key, strs, NULL, n);
    free(strs);
    return rc ? fail("--empty-strs: cannot set the key") : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] == '-') {
        fputs("usage: craft_gguf IN OUT [--str KEY VALUE] [--str-x KEY VALUE] [--u32 KEY N]\n"
              "                         [--rename OLD NEW] [--shape NAME N0,N1,...]\n"
              "                         [--token-suffix TEXT] [--token-type ID TYPE]\n"
              "                         [--empty-strs KEY N]\n",
              stderr);
        return 1;
    }
    const char *renames[MAX_EDITS][2], *shapes[MAX_EDITS][2];
    long type_ids[MAX_EDITS], types[MAX_EDITS];
    int n_renames = 0, n_shapes = 0, n_types = 0;
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_gguf_writer *w = NULL;
    if (vkllm_gguf_open(argv[1], &g, &err) || vkllm_gguf_writer_create(&w, &err)) {
        fprintf(stderr, "craft_gguf: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g) && !rc; i++)
        rc = vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, i));
    for (int i = 3; i < argc && !rc; i++) {
        const char *a = argv[i];
        bool two = !strcmp(a, "--str") || !strcmp(a, "--str-x") || !strcmp(a, "--u32") ||
                   !strcmp(a, "--rename") || !strcmp(a, "--shape") || !strcmp(a, "--token-type") ||
                   !strcmp(a, "--empty-strs");
        if (i + (two ? 2 : 1) >= argc) {
            rc = fail("an option lacks its value");
        } else if (!strcmp(a, "--str")) {
            rc = vkllm_gguf_writer_set_str(w, argv[i + 1], argv[i + 2]);
        } else if (!strcmp(a, "--str-x")) {
            rc = set_str_escaped(w, argv[i + 1], argv[i + 2]);
        } else if (!strcmp(a, "--shape") && n_shapes < MAX_EDITS) {
            shapes[n_shapes][0] = argv[i + 1];
            shapes[n_shapes++][1] = argv[i + 2];
        } else if (!strcmp(a, "--token-type") && n_types < MAX_EDITS) {
            type_ids[n_types] = strtol(argv[i + 1], NULL, 10);
            types[n_types++] = strtol(argv[i + 2], NULL, 10);
        } else if (!strcmp(a, "--u32")) {
            rc = vkllm_gguf_writer_set_uint32(w, argv[i + 1],
                                              (uint32_t)strtoul(argv[i + 2], NULL, 10));
        } else if (!strcmp(a, "--rename") && n_renames < MAX_EDITS) {
            renames[n_renames][0] = argv[i + 1];
            renames[n_renames++][1] = argv[i + 2];
        } else if (!strcmp(a, "--empty-strs")) {
            rc = set_empty_strs(w, argv[i + 1], strtoull(argv[i + 2], NULL, 10));
        } else if (!strcmp(a, "--token-suffix")) {
            rc = suffix_tokens(w, g, argv[i + 1]);
        } else {
            rc = fail("unknown option (see the usage)");
        }
        i += two ? 2 : 1;
    }
    if (!rc && n_types) rc = set_token_types(w, g, type_ids, types, n_types);
    const uint64_t n = vkllm_gguf_tensor_count(g);
    struct gguf_copy *copies = calloc(n ? n : 1, sizeof *copies);
    if (!copies) rc = fail("out of memory");
    for (uint64_t i = 0; i < n && !rc; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        for (int r = 0; r < n_renames; r++)
            if (!strcmp(name, renames[r][0])) snprintf(name, sizeof name, "%s", renames[r][1]);
        copies[i] = (struct gguf_copy){g, t, t->size};
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t n_dims = t->n_dims;
        for (int k = 0; k < n_shapes; k++) {
            if (strcmp(name, shapes[k][0])) continue;
            char *end = (char *)shapes[k][1];
            uint64_t nel = 1;
            for (n_dims = 0; n_dims < 4 && *end; n_dims++) {
                ne[n_dims] = strtoull(end, &end, 10);
                nel *= ne[n_dims];
                end += *end == ',';
            }
            for (uint32_t d = n_dims; d < 4; d++)
                ne[d] = 1;
            if (t->type != VKLLM_TYPE_F32 || nel * 4 > t->size || *end) {
                rc = fail("--shape: needs an F32 tensor and at most its elements");
                break;
            }
            copies[i].size = nel * 4;
        }
        if (!rc) rc = gguf_copy_add(w, name, n_dims, ne, &copies[i]);
    }
    if (!rc && vkllm_gguf_writer_write(w, argv[2], &err)) rc = fail(err.msg);
    if (rc && !err.msg[0]) fprintf(stderr, "craft_gguf: could not write %s\n", argv[2]);
    vkllm_gguf_writer_destroy(w);
    free(copies);
    vkllm_gguf_close(g);
    return rc ? 1 : 0;
}
