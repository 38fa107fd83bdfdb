/* worker.h: the generation thread of vkllm-chat.
 *
 * The worker owns the engine objects (context, model, session, sampler,
 * stream, vkllm_chat) and runs jobs in order: load a model (the old one stays
 * until the new one is ready), or generate a reply into a message of the
 * history. The UI thread never waits on it: it queues jobs and reads
 * worker_status under the mutex it shares with the worker (the one that
 * guards the history). A reply streams into its message through
 * history_stream under that mutex, a piece per token.
 *
 *   worker_start(&params, hist, &lock, &w, &err);
 *   worker_load(w, path);                      queued; progress in the status
 *   lock; history_append(..user..); history_append(..assistant.., &id);
 *         worker_generate(w, id, &err); unlock
 *   Esc:  worker_stop(w)                       the reply ends before its next token
 *   new chat: lock; worker_forget(w); history_reset(h); unlock
 *   worker_free(w)                             stops, joins, frees the engine
 */
#ifndef VKLLM_CHAT_WORKER_H
#define VKLLM_CHAT_WORKER_H

#include "history.h"
#include "vkllm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct worker_params {
    const char *device; /* --device (NULL: the default) */
    uint32_t n_ctx;     /* 0: the model's, at most 4096 */
    int32_t n_predict;  /* most tokens a reply; -1: until the model stops */
    struct vkllm_sampler_params sampling;
};

enum worker_phase {
    WORKER_IDLE,
    WORKER_LOADING,    /* progress: the fraction uploaded */
    WORKER_PREFILL,    /* decoding the prompt */
    WORKER_GENERATING, /* streaming into reply_id */
};

/* What the UI shows; read under the shared mutex. */
struct worker_status {
    enum worker_phase phase;
    float progress;
    bool has_model;
    char model[128];  /* general.name, else the file name */
    char path[512];   /* the loaded model's file */
    char device[256]; /* the Vulkan device */
    uint32_t reply_id;
    uint32_t n_ctx, ctx_used; /* tokens: the context, and what the conversation fills */
    double prompt_tps;        /* last prefill: new prompt tokens per second */
    double gen_tps;           /* this or the last reply */
    double ttft_ms;           /* request to first token of the last reply */
    uint32_t n_gen;           /* tokens of this or the last reply */
    double load_ms;           /* how long the last load took */
    /* the last error ("FILE: what is wrong") and note (a fallback chat format,
     * turns dropped); each seq grows with every new one */
    char error[512];
    uint64_t error_seq;
    char note[512];
    uint64_t note_seq;
};

struct worker;

/* Starts the thread; H and LOCK are shared with the caller and must outlive
 * the worker. */
int worker_start(const struct worker_params *params, history *h, pthread_mutex_t *lock,
                 struct worker **out, struct vkllm_error *err);
/* Stops the reply, drops queued jobs, joins the thread, frees the engine.
 * Returns the validation messages the engine counted (VKLLM_VALIDATE=1). */
uint32_t worker_free(struct worker *w);

/* Queues loading PATH (copied). Not under the lock. */
void worker_load(struct worker *w, const char *path);
/* Queues generating reply REPLY_ID, an empty assistant message at the end of
 * the active path: the messages before it are copied now, as the prompt.
 * Call with the lock held. */
int worker_generate(struct worker *w, uint32_t reply_id, struct vkllm_error *err);
/* Ends the reply being generated at its next token and drops queued replies.
 * Not under the lock. */
void worker_stop(struct worker *w);
/* Before history_reset, with the lock held: the reply being generated (its
 * message is about to go) streams nowhere from now on. */
void worker_forget(struct worker *w);

/* The status (lock held). */
const struct worker_status *worker_status(const struct worker *w);
/* A job running or queued (lock held). */
bool worker_busy(const struct worker *w);

#endif
