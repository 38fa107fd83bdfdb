/* craft_gguf.c: copies a GGUF file with changes a test asks for, to make the
 * odd files a user may download: hostile strings in keys, values and tensor
 * names, odd hyperparameters, very long tokens. A tool for tests/test_defects.sh,
 * not a test.
 *
 *   craft_gguf IN OUT [--str KEY VALUE] [--u32 KEY N] [--rename OLD NEW]
 *                     [--token-suffix TEXT]
 *
 * --str and --u32 set (or add) a key; --rename renames a tensor; --token-suffix
 * appends TEXT to every normal token of tokenizer.ggml.tokens (type 1), so
 * that whatever a model generates is that long. Each may be repeated.
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

/* Copies tokenizer.ggml.tokens with SUFFIX after each normal token. */
static int suffix_tokens(vkllm_gguf_writer *w, const vkllm_gguf *g, const char *suffix)
{
    const struct vkllm_gguf_kv *toks = vkllm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const struct vkllm_gguf_kv *types = vkllm_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (!toks || toks->type != VKLLM_GGUF_ARRAY || toks->arr_type != VKLLM_GGUF_STRING)
        return fail("no tokenizer.ggml.tokens");
    uint64_t n = toks->arr_len;
    size_t extra = strlen(suffix);
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
        if (normal) memcpy(strs[i] + s.len, suffix, extra);
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

int main(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] == '-') {
        fputs("usage: craft_gguf IN OUT [--str KEY VALUE] [--u32 KEY N] [--rename OLD NEW]\n"
              "                         [--token-suffix TEXT]\n",
              stderr);
        return 1;
    }
    const char *renames[MAX_EDITS][2];
    int n_renames = 0;
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
        bool two = !strcmp(a, "--str") || !strcmp(a, "--u32") || !strcmp(a, "--rename");
        if (i + (two ? 2 : 1) >= argc) {
            rc = fail("an option lacks its value");
        } else if (!strcmp(a, "--str")) {
            rc = vkllm_gguf_writer_set_str(w, argv[i + 1], argv[i + 2]);
        } else if (!strcmp(a, "--u32")) {
            rc = vkllm_gguf_writer_set_uint32(w, argv[i + 1],
                                              (uint32_t)strtoul(argv[i + 2], NULL, 10));
        } else if (!strcmp(a, "--rename") && n_renames < MAX_EDITS) {
            renames[n_renames][0] = argv[i + 1];
            renames[n_renames++][1] = argv[i + 2];
        } else if (!strcmp(a, "--token-suffix")) {
            rc = suffix_tokens(w, g, argv[i + 1]);
        } else {
            rc = fail("unknown option (see the usage)");
        }
        i += two ? 2 : 1;
    }
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
        rc = gguf_copy_add(w, name, t->n_dims, t->ne, &copies[i]);
    }
    if (!rc && vkllm_gguf_writer_write(w, argv[2], &err)) rc = fail(err.msg);
    if (rc && !err.msg[0]) fprintf(stderr, "craft_gguf: could not write %s\n", argv[2]);
    vkllm_gguf_writer_destroy(w);
    free(copies);
    vkllm_gguf_close(g);
    return rc ? 1 : 0;
}
