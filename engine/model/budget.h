/* budget.h: the device memory a model and a session take, computed from the
 * parsed model before anything is allocated, and checked against what the
 * device has free. The loader and the session size their pools from these
 * plans, so a budget and an allocation cannot drift apart (test_budget checks
 * the pools' counters against them). Internal to the engine. */
#ifndef VKLLM_BUDGET_H
#define VKLLM_BUDGET_H

#include "arch.h"
#include "graph.h"
#include "vk_device.h"

struct lora_pair;

#define WEIGHT_BLOCK  (256ull << 20) /* the weight pool's blocks, when one cannot hold them all */
#define STAGING_BYTES (32ull << 20)  /* the upload ring, at most */

/* The weights as model.c uploads them. */
struct weight_plan {
    uint64_t bytes;                     /* the weight pool's allocations */
    uint64_t block;                     /* its block size */
    uint64_t staging;                   /* the upload ring: no larger than the weights */
    uint64_t by_type[VKLLM_TYPE_COUNT]; /* each type's tensors (vectors are F32) */
};

/* An adapter as lora.c uploads it: one pool, and a ring of its own. */
struct adapter_plan {
    uint64_t bytes;   /* the pool's allocations; 0: an adapter of nothing */
    uint64_t block;   /* its block size */
    uint64_t staging; /* the upload ring */
};

/* A session's buffers as session.c allocates them, pool by pool. */
struct session_plan {
    uint32_t n_ctx, n_batch, n_seq;
    bool logits_all;
    uint64_t step;            /* host: the step header and the batch's rows */
    uint64_t rope;            /* host: each rotary setting's cos/sin table */
    uint64_t bufs[BUF_COUNT]; /* device: the graph's activations, (batch, width); 0: unused */
    uint64_t xq;              /* device: quantized matvec inputs */
    uint64_t scores;          /* device: (batch, n_head, n_ctx) attention scratch */
    uint64_t logits;          /* readback */
    uint64_t kv;              /* device: every layer's K and V of every sequence, aligned */
    uint32_t type_k, type_v;  /* the cache's types (enum vkllm_cache_type) */
    uint64_t row_k, row_v;    /* bytes of one position's K, V (every KV head) */
    /* what each pool allocates, and the block size it is created with: all of
     * it in one block when that fits one allocation */
    uint64_t device, host, readback;
    uint64_t device_block, host_block, readback_block;
};

/* The weight pool's allocations on DEV, part by part; refuses a row that
 * does not fit one binding. */
int budget_weights(const struct arch_model *am, const struct vkllm_device_info *dev,
                   struct weight_plan *out, struct vkllm_error *err);

/* The adapter pool's allocations on DEV for PAIRS[0..N_PAIRS) (a
 * lora_binding's, NULL where a slice is not adapted). */
int budget_adapter(const struct lora_pair *pairs, uint64_t n_pairs,
                   const struct vkllm_device_info *dev, struct adapter_plan *out,
                   struct vkllm_error *err);

/* Positions layer LAYER's cache holds: the context, or a sliding window and
 * one batch where that is shorter. */
uint32_t budget_ring(const struct arch_model *am, uint32_t layer, uint32_t n_ctx, uint32_t n_batch);

/* The session of PARAMS (NULL: defaults) on DEV; refuses a context the
 * device's bindings cannot hold. */
int budget_session(const struct arch_model *am, const struct vkllm_device_info *dev,
                   const struct vkllm_session_params *params, struct session_plan *out,
                   struct vkllm_error *err);

/* VKLLM_E_DEVICE_MEMORY with the numbers and what would fit, if the weights,
 * staging and (unless PARAMS is NULL) a session do not fit D's free memory. */
int budget_check_load(const char *path, const struct arch_model *am, const struct vk_device *d,
                      const struct vkllm_session_params *params, struct vkllm_error *err);
/* budget_check_load for vkllm_model_load: PARAMS's adapter files (if any)
 * are bound to the model G (lora_bind: the first bad one fails here, before
 * any upload) and their device memory counted beside the weights. */
int budget_check_model(const char *path, const struct arch_model *am, const vkllm_gguf *g,
                       const struct vk_device *d, const struct vkllm_model_params *params,
                       struct vkllm_error *err);
/* VKLLM_E_DEVICE_MEMORY with the numbers if the adapter PATH of PLAN does not
 * fit D's free memory beside what is already loaded. */
int budget_check_adapter(const char *path, const struct adapter_plan *plan,
                         const struct vk_device *d, struct vkllm_error *err);
/* The same for a session PLAN created once the weights are on the device. */
int budget_check_session(const char *path, const struct arch_model *am, const struct vk_device *d,
                         const struct vkllm_session_params *params, const struct session_plan *plan,
                         struct vkllm_error *err);

#endif
