/* llama_tokenize.c: llama.cpp's own tokenization of raw bytes, for
 * scripts/compare_tokenizers.sh.
 *
 *   llama_tokenize MODEL TEXTS.hex [--special] > ids.txt
 *   llama_tokenize MODEL --pieces-hash
 *
 * TEXTS.hex holds one text per line in hex (any bytes); each output line is
 * the ids llama_tokenize(add_special = false) gives for that text. The oracle
 * (../shared/oracle) passes text through JavaScript strings, where invalid
 * UTF-8 becomes U+FFFD before llama.cpp sees it; this calls the same llama.cpp
 * release's libllama directly, so the bytes arrive as they are. --pieces-hash
 * prints test_vocabs.c's hash of every token's llama_token_to_piece (special
 * off, then on).
 *
 * Build against the libraries of ../shared/llama-vulkan (llama.cpp v0.5.0, the
 * oracle's release) and llama.cpp's headers of that commit (de3ff815), e.g.:
 *   tar -xJf ../shared/llama-vulkan/llama-vulkan-v0.5.0-linux-x64.tar.xz -C /tmp
 *   cc -O2 -I LLAMA/include -I LLAMA/ggml/include scripts/llama_tokenize.c -o /tmp/llama_tokenize \
 *      -L/tmp/llama-vulkan -l:libllama.vulkan.v0.5.0.so -l:libggml.vulkan.v0.5.0.so \
 *      -l:libggml-base.so -Wl,-rpath,/tmp/llama-vulkan
 */
#include "llama.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)level, (void)text, (void)user;
}

static int hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: llama_tokenize MODEL TEXTS.hex [--special]\n");
        return 2;
    }
    bool special = argc > 3 && strcmp(argv[3], "--special") == 0;
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    if (strcmp(argv[2], "--pieces-hash") == 0) {
        /* test_vocabs.c's hash of every token's piece, special off then on */
        static char piece[1 << 16];
        for (int special = 0; special < 2; special++) {
            uint64_t h = 1469598103934665603ull;
            for (int id = 0; id < llama_vocab_n_tokens(vocab); id++) {
                int n = llama_token_to_piece(vocab, id, piece, sizeof piece, 0, special);
                for (int k = 0; k < 4; k++)
                    h = (h ^ (uint8_t)((uint32_t)n >> (8 * k))) * 1099511628211ull;
                for (int k = 0; k < n; k++)
                    h = (h ^ (uint8_t)piece[k]) * 1099511628211ull;
            }
            printf("0x%016llx\n", (unsigned long long)h);
        }
        return 0;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) return 1;
    size_t cap = 1 << 16, len = 0;
    char *line = malloc(cap), *text = NULL;
    llama_token *ids = NULL;
    for (int c = 0; line && (c = fgetc(f)) != EOF;) {
        if (c != '\n') {
            if (len + 1 == cap) line = realloc(line, cap *= 2);
            if (line) line[len++] = (char)c;
            continue;
        }
        size_t n = 0;
        text = realloc(text, len / 2 + 1);
        ids = realloc(ids, (len / 2 + 16) * sizeof *ids);
        if (!text || !ids) return 1;
        for (size_t i = 0; i + 1 < len && hex(line[i]) >= 0 && hex(line[i + 1]) >= 0; i += 2)
            text[n++] = (char)(hex(line[i]) * 16 + hex(line[i + 1]));
        int m =
            llama_tokenize(vocab, text, (int32_t)n, ids, (int32_t)(len / 2 + 16), false, special);
        for (int i = 0; i < m; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        len = 0;
    }
    free(line);
    free(text);
    free(ids);
    fclose(f);
    llama_model_free(model);
    return 0;
}
