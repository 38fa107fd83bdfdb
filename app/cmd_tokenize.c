/* cmd_tokenize.c: vkllm tokenize: token ids of a text, one per line. Needs no GPU. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL;
    bool add_special = true, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("usage: vkllm tokenize -m MODEL -p TEXT [--no-bos] [--special]\n"
                  "\n"
                  "  --no-bos   add no BOS or other special tokens (as llama.cpp's tokenizer "
                  "tests)\n"
                  "  --special  turn text such as <s> into control tokens\n",
                  stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(text = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--no-bos")) {
            add_special = false;
        } else if (!strcmp(a, "--special")) {
            parse_special = true;
        } else {
            return cli_error("unknown option '%s' for vkllm tokenize", a);
        }
    }
    if (!model_path) model_path = getenv("VKLLM_MODEL");
    if (!model_path) model_path = VKLLM_DEFAULT_MODEL;
    if (!text) return cli_error("vkllm tokenize needs -p TEXT");

    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_vocab *v = NULL;
    if (vkllm_gguf_open(model_path, &g, &err) || vkllm_vocab_load(g, &v, &err)) {
        vkllm_gguf_close(g);
        return cli_error("%s", err.msg);
    }
    size_t len = strlen(text);
    int cap = (int)len + 8, n;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    n = ids ? vkllm_tokenize(v, text, len, add_special, parse_special, ids, cap) : VKLLM_E_NOMEM;
    int status = 0;
    if (n < 0 || n > cap) {
        status = cli_error("%s: could not tokenize the text (%s)", model_path,
                           vkllm_strerror(n < 0 ? n : VKLLM_E_INVALID));
    } else {
        for (int i = 0; i < n; i++)
            printf("%d\n", ids[i]);
    }
    free(ids);
    vkllm_vocab_free(v);
    vkllm_gguf_close(g);
    return status;
}
