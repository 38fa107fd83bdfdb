/* cmd_perplexity.c: vkllm perplexity: how well a model predicts a text,
 * computed as llama.cpp's llama-perplexity computes it, so that the two
 * figures can be compared digit for digit:
 *
 *   - the whole text is tokenized once, with BOS if the vocabulary adds it
 *     (llama.cpp's -f also drops one trailing newline from the file); with
 *     --chunks, only a prefix long enough for those windows is (a 100 MB text
 *     is minutes and gigabytes of tokens that would go unused);
 *   - it is cut into non-overlapping windows of CTX tokens (a last, partial
 *     window is left out); each window starts from an empty KV cache, with its
 *     first token replaced (not preceded) by BOS;
 *   - only positions CTX/2 .. CTX-2 are scored, against the token that
 *     follows, so every prediction has at least half a window of context;
 *   - log-softmax with a float maximum and a double sum of expf, as the tool;
 *   - perplexity = exp(mean NLL), and the +/- figure is the tool's: the
 *     standard error of the mean NLL, sqrt(var / (count - 1)), times the
 *     perplexity (first-order error propagation through exp).
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char perplexity_usage[] =
    "usage: vkllm perplexity -m MODEL -f TEXT [options]\n"
    "\n"
    "Perplexity of MODEL on the text in file TEXT, as llama.cpp's llama-perplexity computes it.\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "  -f, --file FILE        the text\n"
    "  -c, --ctx-size N       window size in tokens (default 512)\n"
    "  -b, --batch-size N     tokens per decode call (default: the window size)\n"
    "  -ctk, --cache-type-k f16|q8_0  KV cache type of K (default f16)\n"
    "  -ctv, --cache-type-v f16|q8_0  KV cache type of V (default f16)\n"
    "      --chunks C         score only the first C windows (default: all)\n" CLI_LORA_USAGE
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n"
    "\n"
    "Prints the running perplexity after each window ([1]7.1234,[2]...) on stderr and\n"
    "'perplexity: P +/- E' on stdout.\n";

/* ============================== Scoring ============================== */

/* -log p(TARGET) from one row of logits, as llama-perplexity's log_softmax:
 * the maximum in float, the sum of expf(l - max) in double. */
static double token_nll(const float *logits, int32_t n_vocab, int32_t target)
{
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (max < logits[i]) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += expf(logits[i] - max);
    return -((double)(logits[target] - max) - log(sum));
}

/* ============================== Tokenizing ============================== */

/* Tokens that a prefix's tokenization must have past the NEED ones used:
 * the last words before a cut may tokenize differently from the whole text
 * (a word cut short, a merge across the cut), never text this far back. */
enum { CUT_MARGIN = 64 };

/* Tokenizes the first LEN bytes of TEXT into *TOKENS (realloc'd), with BOS as
 * the vocabulary asks; the count, or -1 after an error line. */
static int tokenize(const vkllm_vocab *vocab, const char *path, const char *text, size_t len,
                    int32_t **tokens)
{
    if (len > 16u << 20) /* one call, no progress of its own: say why it is quiet */
        fprintf(stderr, "vkllm: tokenizing %.1f MiB of text\n", len / 1048576.0);
    int cap = len < (size_t)(1 << 30) ? (int)len + 16 : 1 << 30, n;
    for (;;) {
        int32_t *p = realloc(*tokens, (size_t)cap * sizeof *p);
        if (!p) {
            cli_error("%s: out of memory tokenizing the text", path);
            return -1;
        }
        *tokens = p;
        n = vkllm_tokenize(vocab, text, len, true, false, *tokens, cap);
        if (n <= cap) break;
        cap = n;
    }
    if (n < 0) cli_error("%s: could not tokenize the text (%s)", path, vkllm_strerror(n));
    return n;
}

/* The tokens of TEXT (LEN bytes) into *TOKENS, as tokenizing all of it gives
 * them; NEED > 0 asks only for the first NEED: a prefix ending at a line (or
 * a word) is tokenized, doubled until it gives NEED tokens and CUT_MARGIN
 * more. *WHOLE tells whether all of the text was. The count, or -1 after an
 * error line. */
static int tokenize_text(const vkllm_vocab *vocab, const char *path, const char *text, size_t len,
                         long long need, int32_t **tokens, bool *whole)
{
    /* a first guess of 4 bytes a token; a wrong guess costs a doubling */
    size_t take = need > 0 && need < (long long)(len / 8) ? (size_t)need * 4 + 4096 : len;
    for (;;) {
        size_t cut = len;
        if (take < len) {
            /* a line end close by, else the next blank: a newline far away
             * would make the prefix the whole text */
            const size_t near = len - take < take / 4 + 4096 ? len - take : take / 4 + 4096;
            const char *end = memchr(text + take, '\n', near);
            if (!end) end = memchr(text + take, ' ', len - take);
            if (end) cut = (size_t)(end - text) + 1;
        }
        int n = tokenize(vocab, path, text, cut, tokens);
        *whole = cut == len;
        if (n < 0 || *whole) return n;
        if (n >= need + CUT_MARGIN) return (int)need;
        take = take > len / 2 ? len : take * 2;
    }
}

/* ============================== Command ============================== */

int cmd_perplexity(int argc, char **argv)
{
    const char *model_path = NULL, *text_path = NULL, *device = NULL;
    long long n_ctx = 512, n_batch = 0, n_chunks = -1;
    uint32_t type_k = VKLLM_CACHE_F16, type_v = VKLLM_CACHE_F16; /* -ctk, -ctv */
    bool validate = false, is_k;
    struct cli_lora lora = {0};
    int lr;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
#define VALUE() ((v = cli_value(argc, argv, &i)) != NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(perplexity_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return 1;
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!VALUE()) return 1;
            text_path = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            /* 3 is the smallest window that scores a token (position 1 predicts 2) */
            if (!VALUE() || !cli_int(a, v, 3, 1 << 24, &n_ctx)) return 1;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 24, &n_batch)) return 1;
        } else if (cli_is_cache_flag(a, &is_k)) {
            if (!VALUE() || !cli_cache_type(a, v, is_k ? &type_k : &type_v)) return 1;
        } else if (!strcmp(a, "--chunks")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 30, &n_chunks)) return 1;
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) return 1;
            device = v;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else if ((lr = cli_lora_arg(&lora, argc, argv, &i)) != 0) {
            if (lr < 0) return 1;
        } else {
            return cli_error(
                "unknown option '%s' for vkllm perplexity (see vkllm perplexity --help)", a);
        }
#undef VALUE
    }
    if (!text_path) return cli_error("vkllm perplexity needs -f FILE, the text to score");
    if (!(model_path = cli_model(model_path))) return 1;
    /* llama-perplexity runs a larger batch as several windows side by side;
     * one window at a time gives the same numbers */
    if (n_batch == 0 || n_batch > n_ctx) n_batch = n_ctx;

    /* the text first: a missing or empty file needs no GPU to report */
    size_t len = 0;
    char *text = cli_read_file(text_path, &len);
    if (!text) return 1;
    if (len > 0 && text[len - 1] == '\n') text[--len] = '\0'; /* as llama.cpp's -f */
    if (len == 0) {
        free(text);
        return cli_error("%s: the text is empty", text_path);
    }

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    vkllm_session *session = NULL;
    int32_t *tokens = NULL, *window = NULL;
    int status = 1;

    struct vkllm_session_params sp = {.n_ctx = (uint32_t)n_ctx,
                                      .n_batch = (uint32_t)n_batch,
                                      .logits_all = true,
                                      .type_k = type_k,
                                      .type_v = type_v};
    /* a context too big for the device, or a wrong adapter, is refused
     * before any upload */
    /* with logits for every token, the activations grow with -b */
    struct vkllm_model_params mp = {.session = &sp,
                                    .adapters = lora.path,
                                    .n_adapters = (uint32_t)lora.n,
                                    .advice = "a smaller -b (activations) or -c (KV cache)"};
    struct vkllm_context_params cp = {.device = device, .validation = validate};
    if (cli_model_check(model_path)) goto done;
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    if (vkllm_model_load(ctx, model_path, &mp, &model, &err)) goto fail;
    const vkllm_vocab *vocab = vkllm_model_vocab(model);
    cli_vocab_warnings(vocab);
    cli_warn_context(model, (uint32_t)n_ctx);
    const int32_t n_vocab = vkllm_vocab_n_tokens(vocab);
    const bool add_bos = vkllm_vocab_add_bos(vocab) && vkllm_vocab_bos(vocab) >= 0;

    /* ---- tokenize the text, as llama-perplexity: add_special, no parsing of <s> */
    bool whole;
    const int n_tokens = tokenize_text(vocab, text_path, text, len,
                                       n_chunks > 0 ? n_chunks * n_ctx : -1, &tokens, &whole);
    if (n_tokens < 0) goto done;
    if (n_tokens < n_ctx) {
        cli_error("%s: the text is %d tokens, shorter than one window of %lld (-c)", text_path,
                  n_tokens, n_ctx);
        goto done;
    }
    const int n_chunk_max = n_tokens / (int)n_ctx;
    const int n_chunk = n_chunks < 0 || n_chunks > n_chunk_max ? n_chunk_max : (int)n_chunks;
    const int first = (int)n_ctx / 2;

    if (vkllm_session_create(model, &sp, &session, &err) || cli_lora_load(&lora, model, &err) ||
        cli_lora_apply(&lora, session, &err))
        goto fail;
    cli_lora_describe(&lora);
    window = malloc((size_t)n_batch * sizeof *window);
    if (!window) {
        cli_error("out of memory");
        goto done;
    }
    fprintf(stderr, "vkllm: %s on %s: %s%d tokens, %d windows of %lld, batch %lld\n",
            cli_shown(model_path), vkllm_context_device(ctx)->name, whole ? "" : "the first ",
            n_tokens, n_chunk, n_ctx, n_batch);
    if (whole && n_tokens < 2 * n_ctx)
        fprintf(stderr,
                "vkllm: note: llama-perplexity refuses texts under %lld tokens "
                "(twice the window)\n",
                2 * n_ctx);

    /* ---- score each window */
    double nll = 0.0, nll2 = 0.0;
    long long count = 0;
    const double t_start = cli_now_ms();
    for (int c = 0; c < n_chunk; c++) {
        const int start = c * (int)n_ctx;
        double t0 = cli_now_ms();
        vkllm_session_reset(session);
        for (int j = 0; j < n_ctx; j += (int)n_batch) {
            const int nb = n_ctx - j < n_batch ? (int)n_ctx - j : (int)n_batch;
            memcpy(window, tokens + start + j, (size_t)nb * sizeof *window);
            if (j == 0 && add_bos) window[0] = vkllm_vocab_bos(vocab);
            if (vkllm_session_decode(session, window, (uint32_t)nb, &err)) goto fail;
            for (int k = 0; k < nb; k++) {
                const int pos = j + k;
                if (pos < first || pos > n_ctx - 2) continue;
                const float *logits = vkllm_session_logits(session, k);
                if (!logits) {
                    cli_error("%s: no logits for position %d", model_path, pos);
                    goto done;
                }
                /* the target is the text's token, never the BOS put in its place */
                const double v = token_nll(logits, n_vocab, tokens[start + pos + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
        }
        /* timed on the second window: the first also warms up (the driver's
         * first runs of each pipeline, the weights' first reads) */
        if (c == 1 && n_chunk > 2) {
            const double now = cli_now_ms(), s = (now - t0) / 1e3;
            fprintf(stderr, "\nvkllm: %.2f seconds per window, about %.1f s in all\n", s,
                    (now - t_start) / 1e3 + s * (n_chunk - 2));
        }
        fprintf(stderr, "[%d]%.4f,", c + 1, exp(nll / (double)count));
    }
    fputc('\n', stderr);

    nll /= (double)count;
    nll2 /= (double)count;
    const double ppl = exp(nll);
    const double var = nll2 - nll * nll;
    double unc = 0.0;
    if (var > 0 && count > 1)
        unc = sqrt(var / (double)(count - 1)) * ppl;
    else
        fprintf(stderr, "vkllm: too few scored tokens (%lld) for an uncertainty\n", count);
    printf("perplexity: %.4f +/- %.4f\n", ppl, unc);
    fflush(stdout);
    status = 0;
    goto done;
fail:
    cli_error("%s", err.msg);
done:
    status = cli_validation_status(ctx, status);
    free(window);
    free(tokens);
    free(text);
    vkllm_session_free(session);
    cli_lora_free(&lora);
    vkllm_model_free(model);
    vkllm_context_destroy(ctx);
    return status;
}
