/* sched.c: the engine thread and its slots. One thread owns the model: each
 * slot is a session (its own KV cache) that runs one job at a time and
 * remembers the tokens it holds, so that a job whose prompt starts with them
 * (a conversation resent with one more turn) decodes only the rest. A step
 * advances every active slot by one token, in two phases: decode (the new
 * prompts' remainders, one slot after another, then the last sampled token of
 * every running slot in one batched step of the session group), then sample
 * and publish. Jobs wait in a bounded queue and are admitted between steps. */
#include "serve.h"
#include "../cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    vkllm_session *session;
    int32_t *tokens; /* (n_ctx) what the cache holds, as far as we know */
    uint32_t n_tokens;
    uint64_t last_used;    /* the step it last finished a job, to pick among equals */
    struct serve_job *job; /* NULL: free */
    vkllm_sampler *sampler;
    vkllm_stream *stream;
    bool cut;        /* its cache was cut back to the part of the prompt it holds */
    bool generating; /* the whole prompt is in the cache */
    int32_t next;    /* the token sampled last, decoded at the next step */
    int failed;      /* the decode phase failed (a status); err says why */
    struct vkllm_error err;
};

struct serve_sched {
    const vkllm_context *ctx;
    vkllm_model *model;
    const vkllm_vocab *vocab;
    vkllm_session_group *group; /* the slots' sessions */
    struct slot *slots;
    int n_slots;
    uint32_t n_ctx;
    uint32_t chunk; /* most prompt tokens a slot decodes in one step */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job was queued or cancelled, or stop */
    pthread_t thread;
    bool started, stopping;
    struct serve_job **queue; /* FIFO, q_len of q_cap */
    int q_len, q_cap, queue_limit;
    uint64_t steps;
    struct serve_metrics m; /* counters; gauges are filled on reading */
};

struct serve_job *serve_job_create(enum serve_kind kind)
{
    struct serve_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    if (pthread_cond_init(&job->changed, NULL)) {
        free(job);
        return NULL;
    }
    job->kind = kind;
    job->max_tokens = -1;
    job->slot = -1;
    job->refs = 1;
    return job;
}

static void job_free(struct serve_job *job)
{
    pthread_cond_destroy(&job->changed);
    free(job->tokens);
    for (int i = 0; i < job->n_stops; i++)
        free(job->stops[i]);
    free(job->text);
    free(job);
}

/* ============================== Life cycle ============================== */

int serve_sched_create(vkllm_model *model, const struct serve_sched_params *p,
                       struct serve_sched **out, struct vkllm_error *err)
{
    *out = NULL;
    struct serve_sched *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    s->model = model;
    s->ctx = p->ctx;
    s->vocab = vkllm_model_vocab(model);
    s->queue_limit = p->queue_limit;
    s->chunk = p->n_batch ? p->n_batch : 512; /* the session's step: the same batches */
    s->q_cap = p->queue_limit + p->n_slots;
    s->queue = calloc((size_t)s->q_cap, sizeof *s->queue);
    s->slots = calloc((size_t)p->n_slots, sizeof *s->slots);
    if (!s->queue || !s->slots) {
        free(s->queue);
        free(s->slots);
        free(s);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    struct vkllm_session_params sp = {.n_ctx = p->n_ctx,
                                      .n_batch = p->n_batch,
                                      .n_seq = (uint32_t)p->n_slots,
                                      .type_k = p->type_k,
                                      .type_v = p->type_v};
    int rc = vkllm_session_group_create(model, &sp, &s->group, err);
    /* the group's adapter set is every slot's */
    if (!rc && p->n_adapters)
        rc = vkllm_session_set_adapters(vkllm_session_group_member(s->group, 0), p->adapters,
                                        p->scales, p->n_adapters, err);
    if (rc) {
        serve_sched_destroy(s);
        return rc;
    }
    for (int i = 0; i < p->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        sl->session = vkllm_session_group_member(s->group, (uint32_t)i);
        s->n_slots = i + 1;
        s->n_ctx = vkllm_session_n_ctx(sl->session);
        if (!(sl->tokens = malloc((size_t)s->n_ctx * sizeof *sl->tokens))) {
            serve_sched_destroy(s);
            return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
        }
    }
    s->m.n_slots = s->n_slots;
    *out = s;
    return VKLLM_OK;
}

void serve_sched_destroy(struct serve_sched *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_slots; i++)
        free(s->slots[i].tokens);
    vkllm_session_group_free(s->group);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s->slots);
    free(s->queue);
    free(s);
}

uint32_t serve_sched_n_ctx(const struct serve_sched *s)
{
    return s->n_ctx;
}

/* ============================== Jobs and the queue ============================== */

void serve_sched_lock(struct serve_sched *s)
{
    pthread_mutex_lock(&s->mu);
}

void serve_sched_unlock(struct serve_sched *s)
{
    pthread_mutex_unlock(&s->mu);
}

void serve_sched_wait(struct serve_sched *s, struct serve_job *job, int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    t.tv_sec += ms / 1000 + t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&job->changed, &s->mu, &t);
}

/* With the lock held. */
static void release_locked(struct serve_job *job)
{
    if (--job->refs == 0) job_free(job);
}

void serve_sched_release(struct serve_sched *s, struct serve_job *job)
{
    if (!job) return;
    pthread_mutex_lock(&s->mu);
    release_locked(job);
    pthread_mutex_unlock(&s->mu);
}

/* Ends JOB (lock held) and wakes whoever streams it. */
static void finish_locked(struct serve_job *job, enum serve_finish how, int status, const char *msg)
{
    if (job->finish != SERVE_RUNNING) return;
    job->finish = how;
    if (how == SERVE_FINISH_ERROR) {
        job->error_status = status;
        snprintf(job->error, sizeof job->error, "%s", msg);
    }
    pthread_cond_broadcast(&job->changed);
}

static int n_free_slots(const struct serve_sched *s)
{
    int n = 0;
    for (int i = 0; i < s->n_slots; i++)
        n += !s->slots[i].job;
    return n;
}

bool serve_sched_submit(struct serve_sched *s, struct serve_job *job)
{
    pthread_mutex_lock(&s->mu);
    /* the queue holds jobs for the free slots (admitted at the next step) and
     * queue_limit more */
    bool ok = !s->stopping && s->q_len < s->queue_limit + n_free_slots(s) && s->q_len < s->q_cap;
    if (ok) {
        job->refs++;
        job->t_submit_ms = cli_now_ms();
        s->queue[s->q_len++] = job;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

bool serve_sched_stopping(struct serve_sched *s)
{
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stopping;
}

void serve_sched_cancel(struct serve_sched *s, struct serve_job *job)
{
    pthread_mutex_lock(&s->mu);
    if (job->finish == SERVE_RUNNING) {
        job->cancelled = true;
        for (int i = 0; i < s->q_len; i++) {
            if (s->queue[i] != job) continue;
            memmove(s->queue + i, s->queue + i + 1, (size_t)(s->q_len - i - 1) * sizeof *s->queue);
            s->q_len--;
            finish_locked(job, SERVE_FINISH_CANCELLED, 0, NULL);
            release_locked(job);
            break;
        }
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ============================== Slots ============================== */

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t n = 0, most = na < nb ? na : nb;
    while (n < most && a[n] == b[n])
        n++;
    return n;
}

/* The free slot for JOB: the one whose cache shares the longest prefix with
 * its prompt, else the one idle longest (lock held); -1 if none is free. */
static int pick_slot(const struct serve_sched *s, const struct serve_job *job)
{
    int best = -1;
    uint32_t best_len = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const struct slot *sl = &s->slots[i];
        if (sl->job) continue;
        uint32_t n = common_prefix(sl->tokens, sl->n_tokens, job->tokens, job->n_tokens);
        if (best < 0 || n > best_len || (n == best_len && sl->last_used < s->slots[best].last_used))
            best = i, best_len = n;
    }
    return best;
}

/* Gives queued jobs to free slots, in order (lock held). */
static void admit_locked(struct serve_sched *s)
{
    while (s->q_len) {
        struct serve_job *job = s->queue[0];
        int i = pick_slot(s, job);
        if (i < 0) return;
        memmove(s->queue, s->queue + 1, (size_t)(s->q_len - 1) * sizeof *s->queue);
        s->q_len--;
        struct slot *sl = &s->slots[i];
        struct vkllm_error err = {0};
        vkllm_sampler *sampler = NULL;
        vkllm_stream *stream = NULL;
        int rc =
            vkllm_sampler_create(&job->sampling, vkllm_vocab_n_tokens(s->vocab), &sampler, &err);
        if (!rc) rc = vkllm_stream_create(s->vocab, job->ignore_eos, &stream, &err);
        for (int k = 0; !rc && k < job->n_stops; k++)
            rc = vkllm_stream_add_stop(stream, job->stops[k], &err);
        if (rc) {
            vkllm_sampler_free(sampler);
            vkllm_stream_free(stream);
            finish_locked(job, SERVE_FINISH_ERROR, rc == VKLLM_E_INVALID ? 400 : 500, err.msg);
            release_locked(job); /* the queue's reference */
            continue;
        }
        sl->job = job;
        sl->sampler = sampler;
        sl->stream = stream;
        sl->cut = sl->generating = false;
        job->slot = i;
        job->t_start_ms = cli_now_ms();
    }
}

/* Frees slot SL of its job, which has finished (lock held). */
static void vacate_locked(struct serve_sched *s, struct slot *sl)
{
    vkllm_sampler_free(sl->sampler);
    vkllm_stream_free(sl->stream);
    sl->sampler = NULL;
    sl->stream = NULL;
    sl->last_used = s->steps;
    s->m.jobs_done++;
    release_locked(sl->job);
    sl->job = NULL;
}

/* The first step of a job: cuts SL's cache back to the start of its prompt
 * that it holds, and returns how many tokens that is (no lock: only the
 * engine thread touches slots). */
static uint32_t reuse_prefix(struct slot *sl)
{
    const struct serve_job *job = sl->job;
    if (vkllm_session_pos(sl->session) < sl->n_tokens) sl->n_tokens = 0; /* a failed decode */
    uint32_t keep = common_prefix(sl->tokens, sl->n_tokens, job->tokens, job->n_tokens);
    if (keep == job->n_tokens) keep--; /* the last prompt token runs again for its logits */
    /* sliding-window layers lose what lies before a cut: then start over */
    if (vkllm_session_truncate(sl->session, keep, NULL)) {
        keep = 0;
        vkllm_session_truncate(sl->session, 0, NULL);
    }
    sl->n_tokens = keep;
    return keep;
}

/* Decodes the next CHUNK tokens of the prompt at most, so that a long prompt
 * holds up the slots that are generating for one step at a time; the last
 * chunk leaves the logits of the reply's first token. */
static int prefill_chunk(struct slot *sl, uint32_t chunk)
{
    const struct serve_job *job = sl->job;
    uint32_t from = sl->n_tokens, n = job->n_tokens - from < chunk ? job->n_tokens - from : chunk;
    int rc = vkllm_session_decode(sl->session, job->tokens + from, n, &sl->err);
    if (rc) {
        vkllm_session_truncate(sl->session, 0, NULL);
        sl->n_tokens = 0;
        return rc;
    }
    memcpy(sl->tokens + from, job->tokens + from, n * sizeof *sl->tokens);
    sl->n_tokens += n;
    if (sl->n_tokens == job->n_tokens) {
        for (uint32_t i = 0; i < job->n_tokens; i++) /* as run: the penalty sees the prompt */
            vkllm_sampler_accept(sl->sampler, job->tokens[i]);
        sl->generating = true;
    }
    return VKLLM_OK;
}

/* Samples SL's next token and hands its text to the job. */
static void sample_and_publish(struct serve_sched *s, struct slot *sl)
{
    struct serve_job *job = sl->job;
    const char *text = NULL, *tail = NULL;
    size_t len = 0, tail_len = 0;
    enum serve_finish how = SERVE_RUNNING;
    int32_t tok = vkllm_sampler_sample(sl->sampler, vkllm_session_logits(sl->session, -1));
    int st = tok < 0 ? tok : vkllm_stream_push(sl->stream, tok, &text, &len);
    uint32_t n_gen = job->n_gen + 1; /* only this thread writes it */
    if (st < 0)
        how = SERVE_FINISH_ERROR;
    else if (st != VKLLM_STREAM_MORE)
        how = SERVE_FINISH_STOP;
    else if ((job->max_tokens >= 0 && n_gen >= job->max_tokens) ||
             vkllm_session_pos(sl->session) >= s->n_ctx)
        how = SERVE_FINISH_LENGTH;
    /* the last text is copied before vkllm_stream_finish reuses the buffer */
    char *held = NULL;
    if (how == SERVE_FINISH_LENGTH) {
        if (len && !(held = malloc(len))) {
            how = SERVE_FINISH_ERROR;
            st = VKLLM_E_NOMEM;
        } else {
            if (len) memcpy(held, text, len);
            text = held;
            vkllm_stream_finish(sl->stream, &tail, &tail_len);
        }
    }

    pthread_mutex_lock(&s->mu);
    job->n_gen = n_gen;
    s->m.tokens_generated++;
    if (!job->t_first_ms) job->t_first_ms = cli_now_ms();
    const char *parts[2] = {text, tail};
    const size_t lens[2] = {how == SERVE_FINISH_ERROR ? 0 : len, tail_len};
    for (int k = 0; k < 2; k++) {
        if (!lens[k]) continue;
        size_t need = job->text_len + lens[k] + 1;
        if (need > job->text_cap) {
            size_t cap = job->text_cap ? job->text_cap * 2 : 256;
            while (cap < need)
                cap *= 2;
            char *p = realloc(job->text, cap);
            if (!p) {
                how = SERVE_FINISH_ERROR;
                st = VKLLM_E_NOMEM;
                break;
            }
            job->text = p;
            job->text_cap = cap;
        }
        memcpy(job->text + job->text_len, parts[k], lens[k]);
        job->text_len += lens[k];
        job->text[job->text_len] = 0;
    }
    if (how == SERVE_FINISH_ERROR) {
        char msg[128];
        snprintf(msg, sizeof msg, "sampling failed (%s)", vkllm_strerror(st));
        finish_locked(job, how, 500, msg);
    } else if (how != SERVE_RUNNING) {
        finish_locked(job, how, 0, NULL);
    } else {
        pthread_cond_broadcast(&job->changed);
    }
    if (how != SERVE_RUNNING) vacate_locked(s, sl);
    pthread_mutex_unlock(&s->mu);
    free(held);
    sl->next = tok;
}

/* Decodes the last sampled token of each of slots RUN[0..N) in one step of
 * the group; if that fails, one by one, so that the failure (a full context)
 * is the slot's whose it is. */
static void decode_running(struct serve_sched *s, struct slot **run, int n)
{
    vkllm_session *sessions[n ? n : 1];
    int32_t tokens[n ? n : 1];
    for (int k = 0; k < n; k++) {
        sessions[k] = run[k]->session;
        tokens[k] = run[k]->next;
    }
    struct vkllm_error err;
    const bool batched =
        n > 0 && !vkllm_session_group_decode(s->group, sessions, tokens, (uint32_t)n, &err);
    for (int k = 0; k < n; k++) {
        struct slot *sl = run[k];
        sl->failed = batched ? VKLLM_OK : vkllm_session_decode(sl->session, &sl->next, 1, &sl->err);
        if (!sl->failed)
            sl->tokens[sl->n_tokens++] = sl->next;
        else if (vkllm_session_pos(sl->session) < sl->n_tokens)
            sl->n_tokens = vkllm_session_pos(sl->session);
    }
}

/* One step: every active slot decodes (its prompt, or its last token), then
 * samples one token. */
static void step(struct serve_sched *s)
{
    struct slot *run[s->n_slots];
    int n_run = 0;
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->job) continue;
        sl->failed = VKLLM_OK;
        if (!sl->cut) {
            uint32_t keep = reuse_prefix(sl);
            sl->cut = true;
            pthread_mutex_lock(&s->mu);
            sl->job->n_cached = keep;
            s->m.prompt_tokens += sl->job->n_tokens;
            s->m.prompt_tokens_processed += sl->job->n_tokens - keep;
            pthread_mutex_unlock(&s->mu);
        }
        if (!sl->generating)
            sl->failed = prefill_chunk(sl, s->chunk);
        else
            run[n_run++] = sl;
    }
    decode_running(s, run, n_run);
    /* sample and publish: the slots past their prompt */
    for (int i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->job) continue;
        if (sl->failed) {
            /* read here, on the only thread that runs the device */
            bool lost = s->ctx && vkllm_context_lost(s->ctx);
            pthread_mutex_lock(&s->mu);
            s->m.device_lost |= lost;
            finish_locked(sl->job, SERVE_FINISH_ERROR,
                          sl->failed == VKLLM_E_CONTEXT_FULL ? 400 : 500, sl->err.msg);
            vacate_locked(s, sl);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        if (sl->generating) sample_and_publish(s, sl);
    }
}

/* ============================== The engine thread ============================== */

static void *engine_main(void *arg)
{
    struct serve_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* the slots of jobs whose clients went away (or of all, when stopping) */
        for (int i = 0; i < s->n_slots; i++) {
            struct slot *sl = &s->slots[i];
            if (!sl->job) continue;
            if (s->stopping)
                finish_locked(sl->job, SERVE_FINISH_ERROR, 503, "the server is shutting down");
            else if (sl->job->cancelled)
                finish_locked(sl->job, SERVE_FINISH_CANCELLED, 0, NULL);
            if (sl->job->finish != SERVE_RUNNING) vacate_locked(s, sl);
        }
        if (!s->stopping) admit_locked(s);
        if (n_free_slots(s) == s->n_slots) {
            if (s->stopping) break;
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        s->steps++;
        pthread_mutex_unlock(&s->mu);
        double t0 = cli_now_ms();
        step(s);
        double dt = cli_now_ms() - t0;
        pthread_mutex_lock(&s->mu);
        s->m.busy_ms += dt;
        /* the slots' fields are the engine thread's: shown through m */
        s->m.kv_tokens = 0;
        for (int i = 0; i < s->n_slots; i++)
            s->m.kv_tokens += s->slots[i].n_tokens;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int serve_sched_start(struct serve_sched *s, struct vkllm_error *err)
{
    int e = pthread_create(&s->thread, NULL, engine_main, s);
    if (e) return vkllm_fail(err, VKLLM_E_NOMEM, "cannot start the engine thread: %s", strerror(e));
    s->started = true;
    return VKLLM_OK;
}

void serve_sched_stop(struct serve_sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (int i = 0; i < s->q_len; i++) {
        finish_locked(s->queue[i], SERVE_FINISH_ERROR, 503, "the server is shutting down");
        release_locked(s->queue[i]);
    }
    s->q_len = 0;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    if (s->started) pthread_join(s->thread, NULL);
    s->started = false;
}

void serve_sched_metrics(struct serve_sched *s, struct serve_metrics *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->m;
    out->queue_length = s->q_len;
    out->slots_busy = s->n_slots - n_free_slots(s);
    out->kv_capacity = (uint64_t)s->n_ctx * (uint64_t)s->n_slots;
    pthread_mutex_unlock(&s->mu);
}
