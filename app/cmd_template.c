/* cmd_template.c: vkllm template: renders a chat template with the variables
 * of a JSON file and prints the prompt exactly, nothing added. Needs no GPU:
 * with -m only the GGUF metadata is read. */
#include "cli.h"
#include "text/template/template.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: vkllm template (-m MODEL | --template FILE.jinja) --context CONTEXT.json\n"
    "\n"
    "Prints the prompt the chat template makes from CONTEXT.json, exactly as Hugging Face\n"
    "transformers renders it with Jinja2, with nothing added.\n"
    "\n"
    "  -m, --model MODEL    use the model's tokenizer.chat_template; its BOS and EOS token\n"
    "                       texts fill in bos_token and eos_token when the JSON leaves them out\n"
    "  --template FILE      use this template file instead\n"
    "  --context FILE       a JSON object of render variables: messages, add_generation_prompt,\n"
    "                       bos_token, eos_token, tools, documents, ...\n";

/* The text of token ID_KEY's id in the model's token list, or NULL. */
static json_t *token_text(const vkllm_gguf *g, const char *id_key)
{
    uint64_t id;
    const struct vkllm_gguf_kv *tokens;
    struct vkllm_error err;
    if (vkllm_gguf_get_uint(g, id_key, &id, &err) != VKLLM_OK) return NULL;
    if (vkllm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &tokens, &err) !=
            VKLLM_OK ||
        id >= tokens->arr_len)
        return NULL;
    struct vkllm_gguf_str s = vkllm_gguf_arr_str(tokens, id);
    return json_stringn_nocheck(s.ptr, s.len);
}

int cmd_template(int argc, char **argv)
{
    const char *model_path = NULL, *template_path = NULL, *context_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--template")) {
            if (!(template_path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--context")) {
            if (!(context_path = cli_value(argc, argv, &i))) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm template", a);
        }
    }
    if (!model_path == !template_path)
        return cli_error("vkllm template needs -m MODEL or --template FILE (one of them)");
    if (!context_path) return cli_error("vkllm template needs --context CONTEXT.json");

    /* read as every other file is (special files, size limit, messages), then parsed:
     * jansson's own reader cuts a long path out of its message */
    size_t context_len = 0;
    char *context_text = cli_read_file(context_path, &context_len);
    if (!context_text) return 1;
    struct vkllm_error cerr = {0};
    if (tmpl_json_check(context_text, context_len, context_path, &cerr)) {
        free(context_text);
        return cli_error("%s", cerr.msg);
    }
    json_error_t jerr;
    json_t *ctx = json_loadb(context_text, context_len, JSON_ALLOW_NUL, &jerr);
    free(context_text);
    if (!ctx) return cli_error("%s: line %d: %s", context_path, jerr.line, jerr.text);
    if (!json_is_object(ctx)) {
        json_decref(ctx);
        return cli_error("%s: not a JSON object", context_path);
    }

    int status = 1;
    char *tmpl = NULL, *context = NULL, *out = NULL;
    size_t tmpl_len = 0, out_len = 0;
    vkllm_gguf *g = NULL;
    const char *name = template_path;
    if (template_path) {
        if (!(tmpl = cli_read_file(template_path, &tmpl_len))) goto done;
    } else {
        struct vkllm_error err = {0};
        struct vkllm_gguf_str s;
        name = model_path;
        if (vkllm_gguf_open(model_path, &g, &err)) {
            cli_error("%s", err.msg);
            goto done;
        }
        int rc = vkllm_gguf_get_str(g, "tokenizer.chat_template", &s, &err);
        if (rc) {
            if (rc == VKLLM_E_NOT_FOUND)
                cli_error("%s: the model has no chat template (tokenizer.chat_template)",
                          model_path);
            else
                cli_error("%s", err.msg);
            goto done;
        }
        tmpl_len = (size_t)s.len;
        if (!(tmpl = malloc(tmpl_len + 1))) {
            cli_error("out of memory");
            goto done;
        }
        memcpy(tmpl, s.ptr, tmpl_len);
        tmpl[tmpl_len] = 0;
        static const char *const fill[][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                              {"eos_token", "tokenizer.ggml.eos_token_id"}};
        for (size_t i = 0; i < 2; i++) {
            if (json_object_get(ctx, fill[i][0])) continue;
            json_t *text = token_text(g, fill[i][1]);
            if (text) json_object_set_new(ctx, fill[i][0], text);
        }
    }
    if (!(context = json_dumps(ctx, JSON_COMPACT | JSON_ENCODE_ANY))) {
        cli_error("out of memory");
        goto done;
    }
    struct vkllm_error err = {0};
    if (vkllm_template_render(tmpl, tmpl_len, context, &out, &out_len, &err)) {
        cli_error("%s: %s", name, err.msg);
        goto done;
    }
    cli_write_text(out, out_len); /* a template in a model file is file text */
    if (!cli_flush()) goto done;  /* main reports why */
    status = 0;
done:
    free(out);
    free(context);
    free(tmpl);
    vkllm_gguf_close(g);
    json_decref(ctx);
    return status;
}
