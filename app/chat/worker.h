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
 *   reopen:   lock; worker_forget(w); worker_set_history(w, loaded); unlock
 *   settings: lock; worker_configure(w, &params); unlock; worker_load(w, path)
 *   LoRA:     worker_lora_add(w, path, scale)  queued; loaded for the model then
 *             lock; worker_lora_set(w, i, on, scale); unlock   from the next reply
 *   worker_free(w)                             stops, joins, frees the engine
 *
 * LoRA adapters belong to the model they were loaded for: loading another
 * model frees them (a note says so) and the list empties. One switched off
 * stays loaded, so switching it on again uploads nothing; the set and scales
 * the UI chose are applied at the start of the next reply, and only when they
 * differ from what the session applies (the engine then empties the KV
 * cache, and that reply decodes the conversation again). */
#ifndef VKLLM_CHAT_WORKER_H
#define VKLLM_CHAT_WORKER_H

#include "history.h"
#include "vkllm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct worker_params {
    char device[128];  /* index or part of a name ("": the default) */
    uint32_t n_ctx;    /* 0: the model's, at most 4096 */
    int32_t n_predict; /* most tokens a reply; -1: until the model stops */
    struct vkllm_sampler_params sampling;
    char system_prompt[4096]; /* "": none; else the first message of every prompt */
};

enum worker_phase {
    WORKER_IDLE,
    WORKER_LOADING,      /* progress: the fraction uploaded */
    WORKER_LOADING_LORA, /* checking and uploading a LoRA adapter */
    WORKER_PREFILL,      /* decoding the prompt */
    WORKER_GENERATING,   /* streaming into reply_id */
};

/* The most LoRA adapters loaded at once. */
#define WORKER_LORA_MAX 8

/* A LoRA adapter of the loaded model, as the panel lists it. */
struct worker_lora {
    char name[128];              /* the file's name, printable */
    char path[512];              /* printable */
    bool on;                     /* the UI's choice: in the next reply's set */
    float scale;                 /* the UI's choice */
    bool on_now;                 /* what the session applies now */
    float scale_now;             /* (a change shows as pending until a reply starts) */
    float alpha;                 /* adapter.lora.alpha; 0: none */
    uint32_t rank_min, rank_max; /* over its matrices */
    uint32_t n_tensors;          /* the model's matrices it adapts */
    uint64_t bytes;              /* device memory it holds */
};

/* What the UI shows; read under the shared mutex. */
struct worker_status {
    enum worker_phase phase;
    float progress;
    bool has_model;
    char model[128];  /* general.name, else the file name */
    char path[512];   /* the loaded model's file */
    char device[256]; /* the Vulkan device */
    /* what `vkllm info` tells of the model */
    char arch[24];        /* general.architecture */
    char quant[16];       /* the type holding most of the weights' bytes ("Q4_K") */
    uint64_t n_params;    /* elements of every tensor */
    uint32_t n_ctx_train; /* the context it was trained for */
    uint64_t gpu_bytes;   /* device memory: weights and the session */
    uint32_t reply_id;
    uint32_t n_ctx, ctx_used; /* tokens: the context, and what the conversation fills */
    double prompt_tps;        /* last prefill: new prompt tokens per second */
    double gen_tps;           /* this or the last reply: tokens after the first over the
                               * time from the first to the last, as llama.cpp counts */
    double gen_gbps;          /* the memory those decode steps read (weights, KV cache)
                               * over the same time, GB/s */
    double ttft_ms;           /* request to first token of the last reply */
    uint32_t n_gen;           /* tokens of this or the last reply, the first included */
    uint32_t n_dropped;       /* messages the last prompt left out (context full) */
    char prompt_head[1024];   /* the last prompt's start as the model got it: its
                               * tokens' text, special ones included */
    double load_ms;           /* how long the last load took */
    uint64_t replies_done;    /* grows as each reply ends (its stats set, or taken out
                               * empty after a failure or a stop): time to save */
    /* the last error ("FILE: what is wrong") and note (a fallback chat format,
     * turns dropped); each seq grows with every new one */
    char error[512];
    uint64_t error_seq;
    char note[512];
    uint64_t note_seq;
    struct worker_lora lora[WORKER_LORA_MAX]; /* in the order they apply */
    uint32_t n_lora;
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
/* Queues loading the LoRA adapter at PATH (copied) for the model loaded by
 * then, switched on at SCALE: checked against the model (an error names the
 * first mismatch) and uploaded. Not under the lock. */
void worker_lora_add(struct worker *w, const char *path, float scale);
/* Adapter I of the status's list on or off and at SCALE, from the next reply
 * on (lock held). False when there is no adapter I. */
bool worker_lora_set(struct worker *w, uint32_t i, bool on, float scale);
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

/* New parameters (lock held): sampling and the system prompt take effect
 * with the next reply; the context size, device and reply limit with the
 * next load (the caller queues one). */
void worker_configure(struct worker *w, const struct worker_params *params);
/* Whether SYSTEM ("": none) as the system prompt leaves room for a message in
 * the loaded model's context (lock held; it renders and tokenizes, a few
 * milliseconds): VKLLM_E_CONTEXT_FULL with the reason and the remedy if not.
 * VKLLM_OK without a model: its load checks. */
int worker_check_system(struct worker *w, const char *system, struct vkllm_error *err);
/* Another history to stream into (lock held), after worker_forget: a
 * conversation reopened from its file. */
void worker_set_history(struct worker *w, history *h);

/* The status (lock held). */
const struct worker_status *worker_status(const struct worker *w);
/* A job running or queued (lock held). */
bool worker_busy(const struct worker *w);
/* Reply ID (WORKER_ANY_REPLY: any) of the current history is being written or
 * waits its turn (lock held). A load is no reply. */
#define WORKER_ANY_REPLY UINT32_MAX
bool worker_replying(const struct worker *w, uint32_t id);

#endif
