/* cmd_run.c: vkllm run: load a model, feed the prompt, stream sampled text. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char run_usage[] =
    "usage: vkllm run [options]\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "  -p, --prompt TEXT      prompt (default: empty, generation starts after BOS)\n"
    "  -n, --n-predict N      tokens to generate; -1 until end of text (default 128)\n"
    "  -c, --ctx-size N       context size in tokens (default: the model's, at most 4096)\n"
    "  -b, --batch-size N     prompt tokens per GPU step, as one batch (default 512)\n"
    "  -ub, --ubatch-size N   physical batch: steps of at most N tokens (default 512)\n"
    "  -ctk, --cache-type-k f16|q8_0  KV cache type of K (default f16)\n"
    "  -ctv, --cache-type-v f16|q8_0  KV cache type of V (default f16)\n"
    "      --temp T           temperature; 0 is greedy (default 0.8)\n"
    "      --top-k K          keep the K most likely tokens; 0 keeps all (default 40)\n"
    "      --top-p P          keep the smallest set with probability >= P (default 0.95)\n"
    "      --min-p P          drop tokens below P times the most likely (default 0.05)\n"
    "      --repeat-penalty F penalize recent tokens; 1 is off (default 1.0)\n"
    "      --presence-penalty F  subtract F (-2 to 2) from recent tokens' logits (default 0)\n"
    "      --frequency-penalty F subtract F (-2 to 2) times each recent token's count (default 0)\n"
    "      --repeat-last-n N  how many recent tokens the penalty sees (default 64)\n"
    "  -s, --seed S           random seed (default: from the clock)\n"
    "      --stop TEXT        stop at TEXT (not printed); may be repeated\n"
    "      --ignore-eos       keep generating after end-of-generation tokens\n" CLI_LORA_USAGE
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --profile          GPU time per kernel, weight matrix (GB/s against the device's\n"
    "                         copy bandwidth) and layer, on stderr at the end\n"
    "      --validate         enable the Khronos validation layer\n";

static void on_progress(float fraction, void *user)
{
    (void)user;
    if (isatty(2)) fprintf(stderr, "\rloading %3.0f%%", fraction * 100.0f);
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = "", *device = NULL;
    long long n_predict = 128, n_ctx = 0, n_batch = 0, n_ubatch = 0, seed = -1;
    uint32_t type_k = VKLLM_CACHE_F16, type_v = VKLLM_CACHE_F16; /* -ctk, -ctv */
    bool ignore_eos = false, validate = false, profile = false, is_k;
    struct vkllm_sampler_params sp = vkllm_sampler_defaults(0);
    const char *stops[64];
    int n_stops = 0;
    struct cli_lora lora = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long n;
        double f;
#define VALUE() ((v = cli_value(argc, argv, &i)) != NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(run_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return 1;
            if (!*v) return cli_error("%s: empty file name", a);
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!VALUE()) return 1;
            prompt = v;
            /* as chat refuses such a message: the echo and the output are
             * whole UTF-8 characters */
            if (!cli_utf8(prompt)) return cli_error("%s: the prompt is not valid UTF-8", a);
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!VALUE() || !cli_int(a, v, -1, 1 << 30, &n_predict)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 24, &n_ctx)) return 1;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 16, &n_batch)) return 1;
        } else if (!strcmp(a, "-ub") || !strcmp(a, "--ubatch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 16, &n_ubatch)) return 1;
        } else if (cli_is_cache_flag(a, &is_k)) {
            if (!VALUE() || !cli_cache_type(a, v, is_k ? &type_k : &type_v)) return 1;
        } else if (!strcmp(a, "--temp")) {
            if (!VALUE() || !cli_float(a, v, 0, 1e6, &f)) return 1;
            sp.temp = (float)f;
        } else if (!strcmp(a, "--top-k")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 30, &n)) return 1;
            sp.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!VALUE() || !cli_float(a, v, 1e-9, 1, &f)) return 1;
            sp.top_p = (float)f;
        } else if (!strcmp(a, "--min-p")) {
            if (!VALUE() || !cli_float(a, v, 0, 1, &f)) return 1;
            sp.min_p = (float)f;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!VALUE() || !cli_float(a, v, 1e-6, 1e6, &f)) return 1;
            sp.repeat_penalty = (float)f;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!VALUE() || !cli_float(a, v, -2, 2, &f)) return 1;
            sp.presence_penalty = (float)f;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!VALUE() || !cli_float(a, v, -2, 2, &f)) return 1;
            sp.frequency_penalty = (float)f;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 20, &n)) return 1;
            sp.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!VALUE() || !cli_int(a, v, 0, INT64_MAX, &seed)) return 1;
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) return 1;
            device = v;
        } else if (!strcmp(a, "--stop")) {
            if (!VALUE() || !cli_stop_text(a, v)) return 1;
            if (n_stops == (int)(sizeof stops / sizeof stops[0]))
                return cli_error("--stop: at most %d stop strings", n_stops);
            stops[n_stops++] = v;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else if (!strcmp(a, "--profile")) {
            profile = true;
        } else if ((n = cli_lora_arg(&lora, argc, argv, &i)) != 0) {
            if (n < 0) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm run (see vkllm run --help)", a);
        }
#undef VALUE
    }
    if (!(model_path = cli_model(model_path)) || cli_model_check(model_path)) return 1;
    sp.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    vkllm_session *session = NULL;
    vkllm_sampler *sampler = NULL;
    vkllm_stream *stream = NULL;
    int32_t *tokens = NULL;
    int status = 1;

    double t0 = cli_now_ms();
    struct vkllm_context_params cp = {.device = device, .validation = validate, .profile = profile};
    profile = cli_profile_wanted(profile);
    double copy_gbps = 0.0; /* the bandwidth the profile's matrices are held against */
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    if (profile && vkllm_context_copy_bandwidth(ctx, &copy_gbps, &err)) /* the profile goes on */
        fprintf(stderr, "vkllm: note: %s\n", cli_shown(err.msg));
    struct vkllm_session_params ssp = {.n_ctx = (uint32_t)n_ctx,
                                       .n_batch = (uint32_t)n_batch,
                                       .n_ubatch = (uint32_t)n_ubatch,
                                       .type_k = type_k,
                                       .type_v = type_v};
    /* with the session and adapters given, a context too big for the
     * device, or a wrong adapter, is refused before any weight is uploaded */
    struct vkllm_model_params mp = {.progress = on_progress,
                                    .session = &ssp,
                                    .adapters = lora.path,
                                    .n_adapters = (uint32_t)lora.n};
    int rc = vkllm_model_load(ctx, model_path, &mp, &model, &err);
    if (isatty(2)) fputs("\r              \r", stderr);
    if (rc) goto fail;
    cli_autotune(model); /* before the session records the matvecs */
    if (vkllm_session_create(model, &ssp, &session, &err)) goto fail;
    if (cli_lora_load(&lora, model, &err) || cli_lora_apply(&lora, session, &err)) goto fail;
    const vkllm_vocab *vocab = vkllm_model_vocab(model);
    cli_vocab_warnings(vocab);
    cli_warn_context(model, vkllm_session_n_ctx(session));
    if (vkllm_sampler_create(&sp, vkllm_vocab_n_tokens(vocab), &sampler, &err)) goto fail;
    /* text in whole UTF-8 characters, ending at EOG tokens and stop strings */
    if (vkllm_stream_create(vocab, ignore_eos, &stream, &err)) goto fail;
    for (int i = 0; i < n_stops; i++)
        if (vkllm_stream_add_stop(stream, stops[i], &err)) goto fail;
    double t_load = cli_now_ms() - t0;
    fprintf(stderr, "vkllm: %s on %s, loaded in %.0f ms (%.1f MiB of weights); seed %llu\n",
            cli_shown(model_path), vkllm_context_device(ctx)->name, t_load,
            vkllm_model_weight_bytes(model) / 1048576.0, (unsigned long long)sp.seed);
    fprintf(stderr, "vkllm: %s\n", vkllm_context_paths(ctx));
    cli_lora_describe(&lora);

    /* the prompt: BOS as the vocabulary asks, then the text */
    uint32_t cap = vkllm_session_n_ctx(session);
    tokens = malloc(cap * sizeof *tokens);
    if (!tokens) {
        cli_error("out of memory");
        goto done;
    }
    int n_prompt = vkllm_tokenize(vocab, prompt, strlen(prompt), true, false, tokens, (int)cap);
    if (n_prompt < 0) {
        cli_error("%s: could not tokenize the prompt (%s)", model_path, vkllm_strerror(n_prompt));
        goto done;
    }
    if ((uint32_t)n_prompt >= cap) {
        cli_error("the prompt is %d tokens, so the context needs at least %d (the prompt and one "
                  "token to generate) but holds %u (use -c)",
                  n_prompt, n_prompt + 1, cap);
        goto done;
    }
    if (n_prompt == 0) { /* no BOS and no text: start from token 0 rather than nothing */
        tokens[0] = 0;
        n_prompt = 1;
    }
    for (int i = 0; i < n_prompt; i++)
        vkllm_sampler_accept(sampler, tokens[i]);

    cli_write_text(prompt, strlen(prompt));
    if (!cli_flush()) goto done; /* main reports why */
    double t_prompt = cli_now_ms();
    if (vkllm_session_decode(session, tokens, (uint32_t)n_prompt, &err)) goto fail;
    t_prompt = cli_now_ms() - t_prompt;
    double gpu_prompt = vkllm_session_last_gpu_ms(session), gpu_gen = 0.0;

    /* The first token comes from the prompt's logits; each later one costs a
     * decode. The speed is decodes over the time from the first decode on, as
     * llama.cpp's eval line counts it, so a short run does not overstate it. */
    double t_gen = 0.0, t_first = 0.0;
    long long n_gen = 0, n_decode = 0;
    bool full = false;
    const char *text;
    size_t text_len;
    while (n_predict < 0 || n_gen < n_predict) {
        int32_t tok = vkllm_sampler_sample(sampler, vkllm_session_logits(session, -1));
        if (tok < 0) {
            cli_error("sampling failed (%s)", vkllm_strerror(tok));
            goto done;
        }
        n_gen++;
        int st = vkllm_stream_push(stream, tok, &text, &text_len);
        if (st < 0) {
            cli_error("%s", vkllm_strerror(st));
            goto done;
        }
        cli_write_text(text, text_len);
        if (!cli_flush()) goto done; /* no one reads the rest: main reports why */
        if (st != VKLLM_STREAM_MORE) break;
        if ((full = vkllm_session_pos(session) >= cap)) break;
        if (n_predict >= 0 && n_gen >= n_predict) break;
        if (!n_decode) t_first = cli_now_ms();
        if (vkllm_session_decode(session, &tok, 1, &err)) goto fail;
        n_decode++;
        gpu_gen += vkllm_session_last_gpu_ms(session);
    }
    if (n_decode) t_gen = cli_now_ms() - t_first;
    vkllm_stream_finish(stream, &text, &text_len); /* what was held back */
    cli_write_text(text, text_len);
    fputc('\n', stdout);
    fflush(stdout); /* the story's last line before the timings on stderr */
    if (full) fprintf(stderr, "vkllm: context full (%u tokens)\n", cap);
    fprintf(stderr,
            "vkllm: prompt %d tokens in %.1f ms (%.1f tok/s, GPU %.1f ms); generated %lld tokens, "
            "%lld decodes in %.1f ms (%.1f tok/s, GPU %.2f ms per token)\n",
            n_prompt, t_prompt, n_prompt / (t_prompt / 1e3), gpu_prompt, n_gen, n_decode, t_gen,
            n_decode ? n_decode / (t_gen / 1e3) : 0.0, n_decode ? gpu_gen / (double)n_decode : 0.0);
    if (profile && cli_profile_print(session, copy_gbps, &err)) goto fail;
    status = 0;
    goto done;
fail:
    cli_error("%s", err.msg);
done:
    status = cli_validation_status(ctx, status);
    free(tokens);
    vkllm_stream_free(stream);
    vkllm_sampler_free(sampler);
    vkllm_session_free(session);
    cli_lora_free(&lora);
    vkllm_model_free(model);
    vkllm_context_destroy(ctx);
    return status;
}
