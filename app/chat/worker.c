/* worker.c: the generation thread (see worker.h). The sampling loop is the one
 * `vkllm chat` runs (app/cmd_chat.c): vkllm_chat_prefill renders the path and
 * decodes only what the KV cache lacks, then sample, stream, decode a token at
 * a time; templates, stop strings and cache reuse are the engine's. */
#include "worker.h"

#include "app.h"
#include "rates.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_JOBS 8

struct job_msg {
    enum history_role role;
    char *text;
    size_t len;
};

struct job {
    enum { JOB_LOAD, JOB_LORA, JOB_GENERATE } kind;
    char *path;  /* LOAD, LORA */
    float scale; /* LORA */
    uint32_t id; /* GENERATE: the reply's message */
    uint64_t epoch;
    struct job_msg *msgs; /* GENERATE: the path before the reply */
    size_t n_msgs;
};

struct engine {
    vkllm_model *model;
    vkllm_session *session;
    vkllm_sampler *sampler;
    vkllm_stream *stream;
    vkllm_chat *chat;
    struct vkllm_sampler_params sampling; /* the sampler's */
    struct decode_bytes cost;             /* what a decode step reads */
    /* LoRA adapters of this model (status.lora[i] describes ad[i]), and the
     * set the session applies: on[i] at scale[i] */
    vkllm_adapter *ad[WORKER_LORA_MAX];
    uint32_t n_ad;
    bool on[WORKER_LORA_MAX];
    float scale[WORKER_LORA_MAX];
};

struct worker {
    struct worker_params par; /* the UI's (lock held) */
    struct worker_params cur; /* the running job's copy */
    history *hist;
    pthread_mutex_t *lock; /* the UI's: guards hist, the queue and status */
    pthread_cond_t wake;
    pthread_t thread;
    bool quit;
    struct job jobs[MAX_JOBS];
    size_t head, n_jobs;
    bool running;
    uint64_t epoch;     /* grows at each worker_forget */
    uint64_t run_epoch; /* the running job's */
    atomic_int stop;    /* end the current reply at its next token */
    struct worker_status st;
    /* engine objects: the worker thread's alone */
    vkllm_context *ctx;
    char ctx_device[sizeof(struct worker_params){0}.device]; /* what ctx was made for */
    uint32_t validation; /* messages counted by contexts already destroyed */
    struct engine e;
    /* a render-only chat of e's model and context, for the UI thread to check
     * a system prompt while a reply runs (lock held); NULL without a model */
    vkllm_chat *checker;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void job_free(struct job *j)
{
    free(j->path);
    for (size_t i = 0; i < j->n_msgs; i++)
        free(j->msgs[i].text);
    free(j->msgs);
    memset(j, 0, sizeof *j);
}

/* Lock held. */
static void set_error(struct worker *w, const char *msg)
{
    snprintf(w->st.error, sizeof w->st.error, "%s", msg);
    w->st.error_seq++;
}

static void report(struct worker *w, const char *msg)
{
    pthread_mutex_lock(w->lock);
    set_error(w, msg);
    pthread_mutex_unlock(w->lock);
}

static void on_note(const char *msg, void *user)
{
    struct worker *w = user;
    pthread_mutex_lock(w->lock);
    snprintf(w->st.note, sizeof w->st.note, "%s", msg);
    w->st.note_seq++;
    pthread_mutex_unlock(w->lock);
}

static void on_progress(float fraction, void *user)
{
    struct worker *w = user;
    pthread_mutex_lock(w->lock);
    w->st.progress = fraction;
    pthread_mutex_unlock(w->lock);
}

static void engine_free(struct engine *e)
{
    vkllm_chat_free(e->chat);
    vkllm_stream_free(e->stream);
    vkllm_sampler_free(e->sampler);
    vkllm_session_free(e->session);
    /* after the session that applies them, before the model they belong to */
    for (uint32_t i = 0; i < e->n_ad; i++)
        vkllm_adapter_free(e->ad[i]);
    vkllm_model_free(e->model);
    memset(e, 0, sizeof *e);
}

/* ---- loading */

/* What `vkllm info` says of M: parameters, and the type that holds most of
 * the weights' bytes (a Q4_K_M file is mostly Q4_K). Lock held. */
static void describe(struct worker *w, const struct engine *e)
{
    const vkllm_gguf *g = vkllm_model_gguf(e->model);
    uint64_t by_type[VKLLM_TYPE_COUNT] = {0}, n_params = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (t->type < VKLLM_TYPE_COUNT) by_type[t->type] += t->size;
    }
    uint32_t top = 0;
    for (uint32_t k = 1; k < VKLLM_TYPE_COUNT; k++)
        if (by_type[k] > by_type[top]) top = k;
    const struct vkllm_type_info *ti = vkllm_type_info(top);
    const struct vkllm_hparams *hp = vkllm_model_hparams(e->model);
    snprintf(w->st.arch, sizeof w->st.arch, "%s", hp->arch);
    snprintf(w->st.quant, sizeof w->st.quant, "%s", ti ? ti->name : "?");
    w->st.n_params = n_params;
    w->st.n_ctx_train = hp->n_ctx_train;
    w->st.gpu_bytes = vkllm_model_weight_bytes(e->model) + vkllm_session_memory_bytes(e->session);
}

/* What CTX worked around (a corrupt or foreign pipeline cache ignored), as
 * one note: the channel keeps the last one only (probe 6, M2: the window
 * never said why every start compiled the pipelines again). */
static void context_notes(struct worker *w, const vkllm_context *ctx)
{
    char line[sizeof w->st.note] = "";
    size_t at = 0;
    for (size_t i = 0; i < vkllm_context_note_count(ctx) && at < sizeof line; i++)
        at += (size_t)snprintf(line + at, sizeof line - at, "%s%s", i ? "; " : "",
                               vkllm_context_note(ctx, i));
    if (at) on_note(line, w);
}

static int tune_stopped(void *user)
{
    return atomic_load(&((struct worker *)user)->stop);
}

/* Tunes M's decode kernels on a device's first run (vkllm_tune_auto, about
 * 3 s; closing the window stops it), the outcome in the status line. */
static void autotune(struct worker *w, vkllm_model *m)
{
    double budget;
    if (!vkllm_tune_pending(m, &budget)) return;
    char line[sizeof w->st.note];
    snprintf(line, sizeof line, "tuning the mat-vec for this device (once, about %.3g s)...",
             budget);
    on_note(line, w);
    struct vkllm_error err = {0};
    struct vkllm_tune_auto_result r;
    const struct vkllm_tune_auto_params p = {.stop = tune_stopped, .user = w};
    if (vkllm_tune_auto(m, &p, &r, &err))
        snprintf(line, sizeof line, "tuning not done: %.480s", err.msg);
    else
        snprintf(line, sizeof line, "tuned the mat-vec for this device: %u shapes in %.1f s",
                 r.measured, r.seconds);
    on_note(line, w);
}

/* Whether a message can be answered in CHAT (its messages are left none)
 * with system prompt SYS ("": none): VKLLM_E_CONTEXT_FULL says what to
 * change. A system prompt that leaves no room would fail every message, each
 * kept unanswered (probe 7, M5; issue 10): refused instead, as `vkllm chat -c`
 * refuses it at start. */
static int check_fits(vkllm_chat *chat, const char *sys, struct vkllm_error *err)
{
    int rc = sys[0] ? vkllm_chat_add(chat, "system", sys, strlen(sys), err) : VKLLM_OK;
    if (!rc) rc = vkllm_chat_check(chat, err);
    vkllm_chat_clear(chat, false);
    if (rc == VKLLM_E_CONTEXT_FULL) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg,
                 "%.200s: no message can be answered: raise Context length%s", why,
                 sys[0] ? " or shorten the system prompt" : "");
    }
    return rc;
}

static void run_load(struct worker *w, const char *path)
{
    struct vkllm_error err = {0};
    struct engine e = {0};
    vkllm_chat *checker = NULL;
    double t0 = now_ms();
    vkllm_context *ctx = w->ctx, *new_ctx = NULL;
    /* another device: a context of its own, the old one kept until this works */
    if (!ctx || strcmp(w->ctx_device, w->cur.device)) {
        struct vkllm_context_params cp = {.device = w->cur.device[0] ? w->cur.device : NULL};
        if (vkllm_context_create(&cp, &new_ctx, &err)) goto fail;
        ctx = new_ctx;
        context_notes(w, ctx);
    }
    struct vkllm_session_params sp = {.n_ctx = w->cur.n_ctx};
    /* a model or context too big for the device is refused before any upload */
    struct vkllm_model_params mp = {.progress = on_progress, .user = w, .session = &sp};
    if (vkllm_model_load(ctx, path, &mp, &e.model, &err)) goto fail;
    autotune(w, e.model); /* before the session records the matvecs */
    if (vkllm_session_create(e.model, &sp, &e.session, &err)) goto fail;
    if (decode_bytes_of(vkllm_model_gguf(e.model), vkllm_model_hparams(e.model), &e.cost, &err))
        goto fail;
    const vkllm_vocab *vocab = vkllm_model_vocab(e.model);
    e.sampling = w->cur.sampling;
    if (vkllm_sampler_create(&e.sampling, vkllm_vocab_n_tokens(vocab), &e.sampler, &err)) goto fail;
    if (vkllm_stream_create(vocab, false, &e.stream, &err)) goto fail;
    struct vkllm_chat_params chp = {.n_reserve =
                                        w->cur.n_predict > 0 ? (uint32_t)w->cur.n_predict : 0,
                                    .notice = on_note,
                                    .user = w};
    if (vkllm_chat_create(e.model, e.session, &chp, &e.chat, &err)) goto fail;
    /* a context the chat format cannot fit: the model loaded before (if any)
     * goes on. Checked at load for the context (only the model's template
     * and tokenizer can say, and a context change loads the model again);
     * a system prompt changed later is checked through the checker */
    if (check_fits(e.chat, w->cur.system_prompt, &err)) goto fail;
    const struct vkllm_chat_params ckp = {.n_ctx = vkllm_session_n_ctx(e.session)};
    if (vkllm_chat_create(e.model, NULL, &ckp, &checker, &err)) goto fail;

    uint32_t n_ad = w->e.n_ad;
    /* the previous model goes only now that this one works, its checker first */
    pthread_mutex_lock(w->lock);
    vkllm_chat *old_checker = w->checker;
    w->checker = checker;
    pthread_mutex_unlock(w->lock);
    vkllm_chat_free(old_checker);
    engine_free(&w->e);
    w->e = e;
    if (new_ctx) {
        if (w->ctx) w->validation += vkllm_context_validation_errors(w->ctx);
        vkllm_context_destroy(w->ctx);
        w->ctx = new_ctx;
        snprintf(w->ctx_device, sizeof w->ctx_device, "%s", w->cur.device);
    }
    struct vkllm_gguf_str name = {0};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (vkllm_gguf_get_str(vkllm_model_gguf(e.model), "general.name", &name, NULL) || !name.len)
        name = (struct vkllm_gguf_str){base, strlen(base)};
    pthread_mutex_lock(w->lock);
    vkllm_printable(w->st.model, sizeof w->st.model, name.ptr, name.len);
    vkllm_printable(w->st.path, sizeof w->st.path, path, strlen(path));
    snprintf(w->st.device, sizeof w->st.device, "%s", vkllm_context_device(w->ctx)->name);
    w->st.has_model = true;
    w->st.n_ctx = vkllm_session_n_ctx(e.session);
    w->st.ctx_used = 0;
    w->st.load_ms = now_ms() - t0;
    describe(w, &e);
    w->st.n_lora = 0; /* they went with the previous model */
    pthread_mutex_unlock(w->lock);
    if (n_ad)
        on_note(n_ad == 1 ? "the LoRA adapter of the previous model was unloaded (it fits only "
                            "that model): add one for this model"
                          : "the LoRA adapters of the previous model were unloaded (they fit only "
                            "that model): add some for this model",
                w);
    return;
fail:
    vkllm_chat_free(checker);
    engine_free(&e);
    if (new_ctx) w->validation += vkllm_context_validation_errors(new_ctx);
    vkllm_context_destroy(new_ctx);
    report(w, err.msg);
}

/* ---- LoRA adapters */

/* The file name of PATH, printable. */
static void base_name(char *out, size_t cap, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    vkllm_printable(out, cap, base, strlen(base));
}

static void run_lora_add(struct worker *w, const char *path, float scale)
{
    struct engine *e = &w->e;
    struct vkllm_error err = {0};
    if (!e->model) {
        snprintf(err.msg, sizeof err.msg, "%s: no model is loaded to apply the adapter to", path);
        report(w, err.msg);
        return;
    }
    if (e->n_ad == WORKER_LORA_MAX) {
        snprintf(err.msg, sizeof err.msg, "%s: at most %d LoRA adapters", path, WORKER_LORA_MAX);
        report(w, err.msg);
        return;
    }
    /* checked against the model (names, types, shapes) before any upload */
    vkllm_adapter *ad;
    if (vkllm_adapter_load(e->model, path, &ad, &err)) {
        report(w, err.msg);
        return;
    }
    struct vkllm_adapter_info ai;
    vkllm_adapter_describe(ad, &ai);
    const uint32_t i = e->n_ad++;
    e->ad[i] = ad;
    e->on[i] = false; /* the session applies it from the next reply */
    e->scale[i] = scale;
    struct worker_lora l = {.on = true,
                            .scale = scale,
                            .scale_now = scale,
                            .alpha = ai.alpha,
                            .rank_min = ai.rank_min,
                            .rank_max = ai.rank_max,
                            .n_tensors = ai.n_tensors,
                            .bytes = ai.bytes};
    base_name(l.name, sizeof l.name, path);
    vkllm_printable(l.path, sizeof l.path, path, strlen(path));
    char note[sizeof w->st.note];
    snprintf(note, sizeof note, "LoRA adapter %u added: %s at scale %g, from the next reply", i + 1,
             l.name, (double)scale);
    pthread_mutex_lock(w->lock);
    w->st.lora[i] = l;
    w->st.n_lora = e->n_ad;
    w->st.gpu_bytes += ai.bytes;
    pthread_mutex_unlock(w->lock);
    on_note(note, w);
}

/* "a.gguf at 0.5, b.gguf at 1": the adapters the session applies, for a
 * note and the reply's record; "" for none. Lock held. */
static void applied_list(const struct worker *w, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < w->st.n_lora && len < cap; i++) {
        const struct worker_lora *l = &w->st.lora[i];
        if (!l->on_now) continue;
        int k = snprintf(out + len, cap - len, "%s%s at %g", len ? ", " : "", l->name,
                         (double)l->scale_now);
        if (k < 0 || (size_t)k >= cap - len) { /* whole entries only: never a cut character */
            out[len] = 0;
            break;
        }
        len += (size_t)k;
    }
}

/* Makes the set and scales the UI chose the session's, when they differ
 * from what it applies: the engine then empties the KV cache (every cached
 * key and value went through the old set) and the prefill that follows
 * decodes the conversation again. On failure the old set stays, and so
 * does the panel's view of it. */
static int apply_lora(struct worker *w, struct vkllm_error *err)
{
    struct engine *e = &w->e;
    bool on[WORKER_LORA_MAX];
    float scale[WORKER_LORA_MAX];
    bool same = true;
    pthread_mutex_lock(w->lock);
    for (uint32_t i = 0; i < e->n_ad; i++) {
        on[i] = w->st.lora[i].on;
        scale[i] = w->st.lora[i].scale;
        same &= on[i] == e->on[i] && (!on[i] || scale[i] == e->scale[i]);
    }
    pthread_mutex_unlock(w->lock);
    if (same) return VKLLM_OK;
    vkllm_adapter *set[WORKER_LORA_MAX];
    float set_scale[WORKER_LORA_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n_ad; i++)
        if (on[i]) {
            set[n] = e->ad[i];
            set_scale[n++] = scale[i];
        }
    int rc = vkllm_session_set_adapters(e->session, set, set_scale, n, err);
    char list[sizeof w->st.note - 64];
    pthread_mutex_lock(w->lock);
    for (uint32_t i = 0; i < e->n_ad; i++) {
        struct worker_lora *l = &w->st.lora[i];
        if (rc) { /* the panel shows what still applies */
            l->on = e->on[i];
            l->scale = e->scale[i];
            continue;
        }
        e->on[i] = l->on_now = on[i];
        e->scale[i] = l->scale_now = scale[i];
    }
    applied_list(w, list, sizeof list);
    pthread_mutex_unlock(w->lock);
    if (rc) return rc;
    char note[sizeof w->st.note];
    snprintf(note, sizeof note, "LoRA from this reply on: %s", list[0] ? list : "none");
    on_note(note, w);
    return VKLLM_OK;
}

/* ---- generating */

/* The start of the prompt in the cache as text, for the status (a test
 * checks that the system prompt leads it after turns were dropped). */
static void prompt_head(const struct engine *e, char *out, size_t cap)
{
    uint32_t n;
    const int32_t *tok = vkllm_chat_tokens(e->chat, &n);
    const vkllm_vocab *v = vkllm_model_vocab(e->model);
    size_t len = 0;
    for (uint32_t i = 0; i < n && len + 1 < cap; i++) {
        int k = vkllm_token_to_piece(v, tok[i], true, out + len, (int)(cap - 1 - len));
        if (k < 0 || (size_t)k > cap - 1 - len) break;
        len += (size_t)k;
    }
    out[len] = 0;
}

/* Appends text to the reply; a NUL (U+0000, valid UTF-8 that a token may
 * hold) as U+FFFD: the window's texts are C strings, and SDL_ttf would end
 * the line there; the chat file keeps what the window shows (probe 7, W-2:
 * the reply ended at the NUL, recorded as stopped by the user). Lock held.
 * Returns 1 when kept, 0 when a new chat forgot the reply, -1 (and the error
 * set) when it could not be kept. */
static int emit(struct worker *w, const struct job *j, const char *text, size_t len)
{
    struct vkllm_error err = {0};
    if (j->epoch != w->epoch) return 0;
    while (len) {
        const char *nul = memchr(text, 0, len);
        size_t n = nul ? (size_t)(nul - text) : len;
        if ((n && history_stream(w->hist, j->id, text, n, &err)) ||
            (nul && history_stream(w->hist, j->id, "\xEF\xBF\xBD", 3, &err))) {
            char msg[sizeof w->st.error];
            snprintf(msg, sizeof msg, "the reply cannot be kept (it ends here): %.400s", err.msg);
            set_error(w, msg);
            return -1;
        }
        text += n + (nul != NULL);
        len -= n + (nul != NULL);
    }
    return 1;
}

/* A turn that failed before its reply got any text: the error, and the empty
 * reply taken out of the conversation again (else it is saved, and each
 * Regenerate after the failure stacks another). */
static void fail_reply(struct worker *w, const struct job *j, const char *msg)
{
    pthread_mutex_lock(w->lock);
    set_error(w, msg);
    /* the user's message is kept: saved as after a reply */
    if (j->epoch == w->epoch && history_drop_reply(w->hist, j->id)) w->st.replies_done++;
    pthread_mutex_unlock(w->lock);
}

static void run_generate(struct worker *w, const struct job *j)
{
    struct vkllm_error err = {0};
    struct engine *e = &w->e;
    double t0 = now_ms();
    if (!e->model) {
        fail_reply(w, j, "no model is loaded: drop a .gguf file on the window");
        return;
    }
    /* new sampling settings: a new sampler (its RNG starts again from the seed) */
    if (memcmp(&e->sampling, &w->cur.sampling, sizeof e->sampling)) {
        vkllm_sampler *sm;
        if (vkllm_sampler_create(&w->cur.sampling,
                                 vkllm_vocab_n_tokens(vkllm_model_vocab(e->model)), &sm, &err)) {
            fail_reply(w, j, err.msg);
            return;
        }
        vkllm_sampler_free(e->sampler);
        e->sampler = sm;
        e->sampling = w->cur.sampling;
    }
    if (apply_lora(w, &err)) {
        fail_reply(w, j, err.msg);
        return;
    }
    vkllm_chat_clear(e->chat, false);
    const char *sys = w->cur.system_prompt;
    if (sys[0] && (!j->n_msgs || j->msgs[0].role != HISTORY_SYSTEM) &&
        vkllm_chat_add(e->chat, "system", sys, strlen(sys), &err)) {
        fail_reply(w, j, err.msg);
        return;
    }
    for (size_t i = 0; i < j->n_msgs; i++)
        if (vkllm_chat_add(e->chat, history_role_name(j->msgs[i].role), j->msgs[i].text,
                           j->msgs[i].len, &err)) {
            fail_reply(w, j, err.msg);
            return;
        }
    struct vkllm_chat_turn info;
    if (vkllm_chat_prefill(e->chat, &info, &err)) {
        fail_reply(w, j, err.msg);
        return;
    }
    double t_prompt = now_ms();
    /* the penalties see this conversation's prompt and nothing else, as
     * `vkllm chat`, run and serve do: the sampler lives across replies and
     * chats, and a new chat or Regenerate got the old text's penalties
     * (probe 7, C-1) */
    uint32_t n_tokens;
    const int32_t *tokens = vkllm_chat_tokens(e->chat, &n_tokens);
    vkllm_sampler_reset(e->sampler);
    for (uint32_t i = 0; i < n_tokens; i++)
        vkllm_sampler_accept(e->sampler, tokens[i]);
    char head[sizeof w->st.prompt_head];
    prompt_head(e, head, sizeof head);
    pthread_mutex_lock(w->lock);
    w->st.phase = WORKER_GENERATING;
    w->st.prompt_tps = t_prompt > t0 ? info.n_new / ((t_prompt - t0) / 1e3) : 0;
    w->st.ctx_used = vkllm_session_pos(e->session);
    w->st.n_gen = 0;
    w->st.gen_tps = w->st.gen_gbps = 0;
    w->st.n_dropped = info.n_dropped;
    memcpy(w->st.prompt_head, head, sizeof head);
    pthread_mutex_unlock(w->lock);

    vkllm_stream_reset(e->stream);
    enum history_end end = HISTORY_END_LENGTH;
    struct gen_meter meter = {0};
    uint32_t n_gen = 0;
    uint64_t step_bytes = 0;           /* what the decode that made the logits read */
    bool failed = false, lost = false; /* lost: the reply's text could not be kept */
    const char *text;
    size_t len;
    for (;;) {
        if (w->cur.n_predict >= 0 && n_gen >= (uint32_t)w->cur.n_predict) break;
        if (atomic_load(&w->stop)) {
            end = HISTORY_END_USER;
            break;
        }
        int32_t tok = vkllm_sampler_sample(e->sampler, vkllm_session_logits(e->session, -1));
        if (tok < 0) {
            report(w, "sampling failed");
            failed = true;
            break;
        }
        double t = now_ms();
        gen_meter_token(&meter, t, step_bytes);
        n_gen = meter.n;
        int st = vkllm_stream_push(e->stream, tok, &text, &len);
        pthread_mutex_lock(w->lock);
        int kept = st >= 0 ? emit(w, j, text, len) : -1;
        if (st < 0) set_error(w, vkllm_strerror(st));
        if (n_gen == 1) w->st.ttft_ms = t - t0;
        w->st.n_gen = n_gen;
        w->st.gen_tps = gen_meter_tps(&meter);
        w->st.gen_gbps = gen_meter_gbps(&meter);
        pthread_mutex_unlock(w->lock);
        if (kept < 0) {
            failed = lost = true;
            break;
        }
        if (!kept) { /* a new chat forgot it */
            end = HISTORY_END_USER;
            break;
        }
        if (st != VKLLM_STREAM_MORE) {
            end = HISTORY_END_MODEL;
            break;
        }
        if (w->cur.n_predict >= 0 && n_gen >= (uint32_t)w->cur.n_predict) break;
        step_bytes = decode_bytes_at(&e->cost, vkllm_session_pos(e->session));
        int rc = vkllm_chat_decode_token(e->chat, tok, &err);
        if (rc == VKLLM_E_CONTEXT_FULL) {
            on_note("the context is full: the next turn drops the oldest ones", w);
            break;
        }
        if (rc) {
            report(w, err.msg);
            failed = true;
            break;
        }
        pthread_mutex_lock(w->lock);
        w->st.ctx_used = vkllm_session_pos(e->session);
        pthread_mutex_unlock(w->lock);
    }
    vkllm_stream_finish(e->stream, &text, &len);
    pthread_mutex_lock(w->lock);
    const struct history_msg *reply = history_get(w->hist, j->id);
    /* failed or stopped before any text: as if the turn had not been asked */
    if ((failed || end == HISTORY_END_USER) && j->epoch == w->epoch && !len && reply &&
        !reply->len) {
        history_drop_reply(w->hist, j->id);
        w->st.replies_done++; /* the user's message is saved all the same */
    } else if (j->epoch == w->epoch) {
        if (!lost && emit(w, j, text, len) < 0) failed = true;
        char adapters[1024];
        applied_list(w, adapters, sizeof adapters);
        /* a failure is no end the user chose, nor the limit: not known */
        struct history_stats hs = {.n_tokens = n_gen,
                                   .tokens_per_s = w->st.gen_tps,
                                   .model = w->st.model,
                                   .end = failed ? HISTORY_END_NONE : end};
        if (history_set_stats(w->hist, j->id, &hs, &err) ||
            history_set_adapters(w->hist, j->id, adapters[0] ? adapters : NULL, &err))
            set_error(w, err.msg);
        w->st.replies_done++;
    }
    pthread_mutex_unlock(w->lock);
}

/* ---- the thread */

static void *run(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(w->lock);
    for (;;) {
        while (!w->quit && !w->n_jobs)
            pthread_cond_wait(&w->wake, w->lock);
        if (w->quit) break;
        struct job j = w->jobs[w->head];
        w->head = (w->head + 1) % MAX_JOBS;
        w->n_jobs--;
        if (j.kind == JOB_GENERATE && j.epoch != w->epoch) { /* its chat is gone */
            job_free(&j);
            continue;
        }
        w->running = true;
        atomic_store(&w->stop, 0); /* a stop before this point dropped the job instead */
        w->st.phase = j.kind == JOB_LOAD   ? WORKER_LOADING
                      : j.kind == JOB_LORA ? WORKER_LOADING_LORA
                                           : WORKER_PREFILL;
        w->st.progress = 0;
        if (j.kind == JOB_GENERATE) w->st.reply_id = j.id;
        w->run_epoch = j.epoch;
        w->cur = w->par;
        pthread_mutex_unlock(w->lock);
        if (j.kind == JOB_LOAD)
            run_load(w, j.path);
        else if (j.kind == JOB_LORA)
            run_lora_add(w, j.path, j.scale);
        else
            run_generate(w, &j);
        job_free(&j);
        pthread_mutex_lock(w->lock);
        w->running = false;
        w->st.phase = WORKER_IDLE;
    }
    pthread_mutex_unlock(w->lock);
    return NULL;
}

/* Lock held. False when the queue is full. */
static bool push(struct worker *w, struct job *j)
{
    if (w->n_jobs == MAX_JOBS) return false;
    w->jobs[(w->head + w->n_jobs++) % MAX_JOBS] = *j;
    pthread_cond_signal(&w->wake);
    return true;
}

int worker_start(const struct worker_params *params, history *h, pthread_mutex_t *lock,
                 struct worker **out, struct vkllm_error *err)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    w->par = *params;
    w->hist = h;
    w->lock = lock;
    if (pthread_cond_init(&w->wake, NULL)) {
        free(w);
        return vkllm_fail(err, VKLLM_E_NOMEM, "cannot make a condition variable");
    }
    if (pthread_create(&w->thread, NULL, run, w)) {
        pthread_cond_destroy(&w->wake);
        free(w);
        return vkllm_fail(err, VKLLM_E_NOMEM, "cannot start the generation thread");
    }
    *out = w;
    return VKLLM_OK;
}

uint32_t worker_free(struct worker *w)
{
    if (!w) return 0;
    atomic_store(&w->stop, 1);
    pthread_mutex_lock(w->lock);
    w->quit = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(w->lock);
    pthread_join(w->thread, NULL);
    for (; w->n_jobs; w->n_jobs--, w->head = (w->head + 1) % MAX_JOBS)
        job_free(&w->jobs[w->head]);
    vkllm_chat_free(w->checker);
    engine_free(&w->e);
    uint32_t n = w->validation + (w->ctx ? vkllm_context_validation_errors(w->ctx) : 0);
    vkllm_context_destroy(w->ctx);
    pthread_cond_destroy(&w->wake);
    free(w);
    return n;
}

void worker_load(struct worker *w, const char *path)
{
    struct job j = {.kind = JOB_LOAD, .path = strdup(path)};
    pthread_mutex_lock(w->lock);
    if (!j.path || !push(w, &j)) {
        set_error(w, "cannot queue the model: too many jobs waiting");
        job_free(&j);
    }
    pthread_mutex_unlock(w->lock);
}

void worker_lora_add(struct worker *w, const char *path, float scale)
{
    struct job j = {.kind = JOB_LORA, .path = strdup(path), .scale = scale};
    pthread_mutex_lock(w->lock);
    if (!j.path || !push(w, &j)) {
        set_error(w, "cannot queue the adapter: too many jobs waiting");
        job_free(&j);
    }
    pthread_mutex_unlock(w->lock);
}

bool worker_lora_set(struct worker *w, uint32_t i, bool on, float scale)
{
    if (i >= w->st.n_lora) return false;
    w->st.lora[i].on = on;
    w->st.lora[i].scale = scale;
    return true;
}

int worker_generate(struct worker *w, uint32_t reply_id, struct vkllm_error *err)
{
    struct job j = {.kind = JOB_GENERATE, .id = reply_id, .epoch = w->epoch};
    size_t n = history_count(w->hist);
    j.msgs = calloc(n ? n : 1, sizeof *j.msgs);
    if (!j.msgs) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct history_msg *m = history_at(w->hist, i);
        if (m->id == reply_id) break;
        j.msgs[i] = (struct job_msg){.role = m->role, .text = malloc(m->len + 1), .len = m->len};
        j.n_msgs++;
        if (!j.msgs[i].text) {
            job_free(&j);
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
        }
        memcpy(j.msgs[i].text, m->text, m->len + 1);
    }
    if (!push(w, &j)) {
        job_free(&j);
        return vkllm_fail(err, VKLLM_E_INVALID, "too many jobs waiting");
    }
    return VKLLM_OK;
}

void worker_stop(struct worker *w)
{
    pthread_mutex_lock(w->lock);
    atomic_store(&w->stop, 1);
    /* queued replies go too; queued loads (of models, of adapters) stay */
    struct job keep[MAX_JOBS];
    size_t n = 0;
    for (; w->n_jobs; w->n_jobs--, w->head = (w->head + 1) % MAX_JOBS) {
        struct job *j = &w->jobs[w->head];
        if (j->kind != JOB_GENERATE) {
            keep[n++] = *j;
        } else {
            /* its reply never started: out of the conversation again (a
             * stop, a regenerate then a load: empty replies stayed) */
            if (j->epoch == w->epoch) history_drop_reply(w->hist, j->id);
            job_free(j);
        }
    }
    w->head = 0;
    for (size_t i = 0; i < n; i++)
        w->jobs[w->n_jobs++] = keep[i];
    pthread_mutex_unlock(w->lock);
}

void worker_forget(struct worker *w)
{
    w->epoch++;
    atomic_store(&w->stop, 1);
}

int worker_check_system(struct worker *w, const char *system, struct vkllm_error *err)
{
    return w->checker ? check_fits(w->checker, system, err) : VKLLM_OK;
}

void worker_configure(struct worker *w, const struct worker_params *params)
{
    w->par = *params;
}

void worker_set_history(struct worker *w, history *h)
{
    w->hist = h;
}

const struct worker_status *worker_status(const struct worker *w)
{
    return &w->st;
}

bool worker_busy(const struct worker *w)
{
    return w->running || w->n_jobs > 0;
}

bool worker_replying(const struct worker *w, uint32_t id)
{
    /* ids start again with each conversation: the epoch tells them apart */
    bool any = id == WORKER_ANY_REPLY;
    bool replying = w->st.phase == WORKER_PREFILL || w->st.phase == WORKER_GENERATING;
    if (replying && (any || w->st.reply_id == id) && w->run_epoch == w->epoch) return true;
    for (size_t i = 0; i < w->n_jobs; i++) {
        const struct job *j = &w->jobs[(w->head + i) % MAX_JOBS];
        if (j->kind == JOB_GENERATE && (any || j->id == id) && j->epoch == w->epoch) return true;
    }
    return false;
}
