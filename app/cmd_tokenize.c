/* cmd_tokenize.c: vkllm tokenize: token ids of a text, one per line. Needs no GPU. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first occurrence of NEEDLE (M > 0 bytes) in HAY (N bytes), or NULL. */
static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0) return hay + i;
    return NULL;
}

/* Prints the ids of LEN bytes of TEXT: one per line, or all on one line
 * separated by spaces if ONE_LINE. Returns 0 or a CLI error. */
static int print_ids(const vkllm_vocab *v, const char *what, const char *text, size_t len,
                     bool add_special, bool parse_special, bool one_line)
{
    /* ask for the count first, then tokenize into room for exactly that */
    int n = vkllm_tokenize(v, text, len, add_special, parse_special, NULL, 0);
    int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    if (n > 0)
        n = ids ? vkllm_tokenize(v, text, len, add_special, parse_special, ids, n) : VKLLM_E_NOMEM;
    if (n < 0) {
        free(ids);
        return cli_error("%s: could not tokenize the text (%s)", what, vkllm_strerror(n));
    }
    for (int i = 0; i < n; i++)
        printf(one_line ? " %d" : "%d\n", ids[i]); /* .out lines: " 1 2 3" */
    if (one_line) putchar('\n');
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL, *file = NULL, *cases = NULL;
    bool add_special = true, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("usage: vkllm tokenize -m MODEL (-p TEXT | -f FILE | --cases FILE) [--no-bos]\n"
                  "                      [--special]\n"
                  "\n"
                  "Prints the token ids of TEXT (or of FILE's bytes, exactly), one per line.\n"
                  "With --cases, FILE holds texts separated by lines \"__ggml_vocab_test__\"\n"
                  "(llama.cpp's tokenizer test format, .inp) and each text's ids are printed\n"
                  "on one line, each after a space (as in its .out).\n"
                  "\n"
                  "  --no-bos   add no BOS or other special tokens (as llama.cpp's tokenizer "
                  "tests)\n"
                  "  --special  turn text such as <s> into control tokens\n",
                  stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 1;
            if (!*model_path) return cli_error("%s: empty file name", a);
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(text = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--cases")) {
            if (!(cases = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--no-bos")) {
            add_special = false;
        } else if (!strcmp(a, "--special")) {
            parse_special = true;
        } else {
            return cli_error("unknown option '%s' for vkllm tokenize", a);
        }
    }
    if (!(model_path = cli_model(model_path))) return 1;
    int n_sources = (text != NULL) + (file != NULL) + (cases != NULL);
    if (n_sources == 0)
        return cli_error("vkllm tokenize needs one of -p TEXT, -f FILE or --cases FILE");
    if (n_sources > 1)
        return cli_error("vkllm tokenize takes only one of -p TEXT, -f FILE or --cases FILE");

    size_t len = 0;
    char *file_text = NULL;
    if (file || cases) {
        const char *path = file ? file : cases;
        if (!(file_text = cli_read_file(path, &len))) return 1;
        text = file_text;
    } else {
        len = strlen(text);
    }

    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_vocab *v = NULL;
    if (vkllm_gguf_open(model_path, &g, &err) || vkllm_vocab_load(g, &v, &err)) {
        vkllm_gguf_close(g);
        free(file_text);
        return cli_error("%s", err.msg);
    }
    /* what the library worked around in the file, e.g. a BOS id out of range */
    cli_vocab_warnings(v);
    int status = 0;
    if (!cases) {
        status = print_ids(v, model_path, text, len, add_special, parse_special, false);
    } else {
        static const char sep[] = "\n__ggml_vocab_test__\n";
        /* a file saved with CR LF holds no separator: it would be one case */
        static const char crlf[] = "__ggml_vocab_test__\r\n";
        if (len == 0)
            status =
                cli_error("%s: no cases (texts separated by lines \"__ggml_vocab_test__\")", cases);
        else if (find(text, len, crlf, sizeof crlf - 1))
            status = cli_error("%s: its lines end in CR LF; the separator is the line "
                               "\"__ggml_vocab_test__\" ending in LF alone",
                               cases);
        for (const char *p = text, *end = text + len; p < end && !status;) {
            const char *next = find(p, (size_t)(end - p), sep, sizeof sep - 1);
            size_t n = next ? (size_t)(next - p) : (size_t)(end - p);
            status = print_ids(v, model_path, p, n, add_special, parse_special, true);
            p = next ? next + sizeof sep - 1 : end;
        }
    }
    free(file_text);
    vkllm_vocab_free(v);
    vkllm_gguf_close(g);
    return status;
}
