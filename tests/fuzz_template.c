/* fuzz_template.c: libFuzzer target for the chat-template interpreter.
 *
 * The input is a template. It is parsed and, if accepted, rendered with a
 * fixed conversation, under low limits so that every input finishes in well
 * under a second. Any crash, sanitizer report, leak or timeout is a finding;
 * a template error is an ordinary result. Failures must come with a message.
 *
 *   CC=clang cmake -S . -B build-fuzz -DVKLLM_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_template
 *   build-fuzz/tests/fuzz_template -max_total_time=600 -timeout=5 \
 *       -dict=tests/data/fuzz/template.dict CORPUS tests/data/fuzz/template
 *
 * Built with -DFUZZ_STANDALONE, a small main runs the entry point over files
 * and directories instead (the fuzz_template_corpus test replays the seeds).
 */
#include "text/template/template.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char context_json[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    " {\"role\": \"user\", \"content\": \"Gr\\u00fc\\u00dfe, \\u4e16\\u754c! \\ud83d\\udc4b\"},"
    " {\"role\": \"assistant\", \"content\": \"4\", \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [1.5, null, true]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{\\\"r\\\": 2}\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}],"
    " \"documents\": null, \"add_generation_prompt\": true, \"bos_token\": \"<s>\","
    " \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *context;
    if (!context && !(context = json_loads(context_json, 0, NULL))) abort();
    struct tmpl_limits lim = {
        .max_steps = 200000, .max_output = 1 << 20, .max_memory = 32 << 20, .max_depth = 200};
    struct tmpl *t;
    struct vkllm_error err = {0};
    if (tmpl_parse((const char *)data, size, &lim, &t, &err) != VKLLM_OK) {
        if (t != NULL || err.code >= 0) abort(); /* a failure gives no template and a status */
        return 0;
    }
    char *out = NULL;
    size_t n = 0;
    int rc = tmpl_render_json(t, context, &out, &n, &err);
    if (rc == VKLLM_OK) {
        if (!out || out[n] != 0 || n > lim.max_output) abort();
    } else if (out || rc != err.code) {
        abort();
    }
    free(out);
    tmpl_free(t);
    return 0;
}

#define FUZZ_NAME "fuzz_template"
#include "fuzz_standalone.h"
