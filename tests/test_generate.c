/* test_generate.c: greedy generation must equal llama.cpp's token for token.
 *
 * Usage: test_generate GOLDEN.txt. A golden file (tests/golden/, made by
 * make_golden.mjs) names a model, either a file in tests/data or gen_model
 * arguments (the model is then generated here, deterministically), and lists
 * prompts with llama.cpp's prompt tokens and greedy continuation. A case
 * without a prompt line gives its prompt as token ids only (prompt_tokens):
 * the tokenizer check is then skipped.
 *
 * The tokens must be identical. The one exception is a step where llama.cpp's
 * own top two logits are closer than the file's tie_margin (why that margin:
 * make_golden.mjs): there the last-bit behaviour of llama.cpp's vectorized
 * math decides, so a different choice is reported and the rest of that
 * continuation, which then legitimately differs, is not compared. Quantized
 * files have such near ties as early as the first token, so that exception
 * alone would let a regression that changes the first tokens pass: each file
 * also says min_compared, how many tokens of every case must be identical
 * before a near tie may end its comparison. */
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 256

/* Undoes make_golden.mjs's escaping of \\, \n, \t, \r, in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r == 'r' ? '\r' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static int parse_floats(const char *s, double *out)
{
    int n = 0;
    char *end;
    for (double v = strtod(s, &end); end != s && n < MAX_TOKENS; v = strtod(s, &end)) {
        out[n++] = v;
        s = end;
    }
    return n;
}

/* Resolves the golden file's model line to a path, generating it if needed. */
static void model_path(const char *golden, const char *model, char *out, size_t cap)
{
    if (!strncmp(model, "file ", 5)) {
        snprintf(out, cap, "%s/%s", VKLLM_TEST_DATA, model + 5);
        return;
    }
    REQUIRE(!strncmp(model, "gen ", 4), "%s: unknown model line '%s'", golden, model);
    const char *base = strrchr(golden, '/') ? strrchr(golden, '/') + 1 : golden;
    snprintf(out, cap, "%s/%.*s.gguf", VKLLM_TEST_GEN, (int)strcspn(base, "."), base);
    char args[1024], cmd[2048];
    /* @DATA@ stands for the test data folder */
    const char *a = model + 4, *at = strstr(a, "@DATA@");
    if (at)
        snprintf(args, sizeof args, "%.*s%s%s", (int)(at - a), a, VKLLM_TEST_DATA, at + 6);
    else
        snprintf(args, sizeof args, "%s", a);
    int n = snprintf(cmd, sizeof cmd, "'%s' -o '%s' %s", VKLLM_GEN_MODEL, out, args);
    REQUIRE(n > 0 && (size_t)n < sizeof cmd, "%s: command too long", golden);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_generate GOLDEN.txt");
    FILE *f = fopen(argv[1], "r");
    REQUIRE(f != NULL, "cannot open %s", argv[1]);

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *m = NULL;
    REQUIRE(vkllm_context_create(NULL, &ctx, &err) == 0, "%s", err.msg);

    static char line[65536], prompt[65536], label[65536 + 8]; /* "tokens " + a line */
    int32_t prompt_ids[MAX_TOKENS], want[MAX_TOKENS], got[MAX_TOKENS], n_prompt_ids = 0;
    double margins[MAX_TOKENS], tie_margin = 0.0;
    int min_compared = -1;
    int n_cases = 0, n_want = 0, n_compared = 0, n_ties = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab) continue;
        *tab = '\0';
        const char *key = line, *value = tab + 1;
        if (!strcmp(key, "model")) {
            char path[1024];
            model_path(argv[1], value, path, sizeof path);
            REQUIRE(vkllm_model_load(ctx, path, NULL, &m, &err) == 0, "%s", err.msg);
        } else if (!strcmp(key, "prompt")) {
            snprintf(prompt, sizeof prompt, "%s", value);
            unescape(prompt);
        } else if (!strcmp(key, "tie_margin")) {
            tie_margin = strtod(value, NULL);
        } else if (!strcmp(key, "min_compared")) {
            min_compared = atoi(value);
        } else if (!strcmp(key, "prompt_tokens")) {
            n_prompt_ids = test_parse_ids(value, prompt_ids, MAX_TOKENS);
            /* messages name the case by its text, else by its token ids */
            snprintf(label, sizeof label, "%s%s", prompt[0] ? "" : "tokens ",
                     prompt[0] ? prompt : value);
        } else if (!strcmp(key, "tokens")) {
            n_want = test_parse_ids(value, want, MAX_TOKENS);
        } else if (!strcmp(key, "margins")) {
            REQUIRE(m != NULL, "%s: a case before the model line", argv[1]);
            REQUIRE(min_compared >= 0, "%s: a case before the min_compared line", argv[1]);
            REQUIRE(parse_floats(value, margins) == n_want, "%s: margins do not match tokens",
                    argv[1]);
            const vkllm_vocab *vocab = vkllm_model_vocab(m);

            /* the prompt tokenizes as llama.cpp tokenized it (when given as text) */
            if (prompt[0]) {
                int32_t ids[MAX_TOKENS];
                int n = vkllm_tokenize(vocab, prompt, strlen(prompt), true, false, ids, MAX_TOKENS);
                CHECK(n == n_prompt_ids && !memcmp(ids, prompt_ids, n * sizeof *ids),
                      "%s: prompt '%s' tokenizes differently", argv[1], prompt);
            }

            /* greedy generation through the sampler, as vkllm run --temp 0 does */
            vkllm_session *s = NULL;
            struct vkllm_session_params sp = {.n_ctx = 256};
            REQUIRE(vkllm_session_create(m, &sp, &s, &err) == 0, "%s", err.msg);
            struct vkllm_sampler_params gp = vkllm_sampler_defaults(0);
            gp.temp = 0;
            vkllm_sampler *smp = NULL;
            REQUIRE(vkllm_sampler_create(&gp, vkllm_vocab_n_tokens(vocab), &smp, &err) == 0, "%s",
                    err.msg);
            REQUIRE(vkllm_session_decode(s, prompt_ids, n_prompt_ids, &err) == 0, "%s", err.msg);
            int n_got = 0;
            while (n_got < n_want) {
                int32_t tok = vkllm_sampler_sample(smp, vkllm_session_logits(s, -1));
                got[n_got++] = tok;
                if (vkllm_vocab_is_eog(vocab, tok) || n_got == n_want) break;
                REQUIRE(vkllm_session_decode(s, &tok, 1, &err) == 0, "%s", err.msg);
            }
            int first_diff = -1;
            for (int i = 0; i < n_want && first_diff < 0; i++)
                if (i >= n_got || got[i] != want[i]) first_diff = i;
            const bool near_tie =
                first_diff >= 0 && first_diff < n_got && margins[first_diff] < tie_margin;
            if (near_tie && first_diff >= min_compared) {
                fprintf(stderr,
                        "%s: prompt '%s': token %d is %d, llama.cpp's %d, at a near tie "
                        "(llama.cpp's margin %.4f < %.2f); the %d tokens before agree\n",
                        argv[1], label, first_diff, got[first_diff], want[first_diff],
                        margins[first_diff], tie_margin, first_diff);
                n_ties++;
                n_compared += first_diff;
            } else {
                CHECK(first_diff < 0 && n_got == n_want,
                      "%s: prompt '%s': %d tokens, llama.cpp %d; first difference at %d (%d vs "
                      "%d, llama.cpp's margin there %.4f)",
                      argv[1], label, n_got, n_want, first_diff,
                      first_diff >= 0 && first_diff < n_got ? got[first_diff] : -1,
                      first_diff >= 0 ? want[first_diff] : -1,
                      first_diff >= 0 ? margins[first_diff] : 0.0);
                if (near_tie)
                    fprintf(stderr,
                            "%s: prompt '%s': a near tie ends the comparison only after "
                            "min_compared = %d identical tokens\n",
                            argv[1], label, min_compared);
                n_compared += first_diff < 0 ? n_want : first_diff;
            }
            n_cases++;
            prompt[0] = '\0'; /* the next case may have token ids only */
            vkllm_sampler_free(smp);
            vkllm_session_free(s);
        }
    }
    fclose(f);
    CHECK(n_cases > 0, "%s: no cases", argv[1]);
    fprintf(stderr, "%s: %d prompts, %d tokens identical to llama.cpp's, %d near ties\n", argv[1],
            n_cases, n_compared, n_ties);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "validation messages");
    vkllm_model_free(m);
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
