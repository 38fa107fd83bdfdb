/* budget.c: what a model, its LoRA adapters and a session take in device
 * memory, from the parsed files alone, and the check against the device's
 * free memory that comes before any upload. The sizes follow the allocations
 * one by one (model.c's upload order, lora.c's, session.c's alloc_state), and
 * a pool's block size comes from them, so what is reported is what the pools
 * allocate.
 *
 * The session's buffers depend on the layer graph (exec/graph.h), which is
 * built from the architecture alone: the one place model/ looks up to exec/. */
#include "budget.h"

#include "context.h"
#include "kernels.h"
#include "lora.h"
#include "shown.h"
#include "model.h"
#include "ops.h"
#include "quant.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N_CTX   4096
#define DEFAULT_N_BATCH 512 /* as llama.cpp's n_ubatch */
#define SESSION_BLOCK   (64ull << 20)
#define HOST_BLOCK      (1ull << 20)

/* Sizes for a device without Vulkan at hand. */
static const struct vkllm_device_info typical_device = {
    .name = "a typical GPU",
    .max_storage_buffer_range = UINT32_MAX,
    .max_memory_allocation = 4ull << 30,
    .max_buffer_size = 4ull << 30,
    .min_storage_buffer_offset_alignment = 64,
};

/* ============================== Pools ============================== */

/* The sizes a pool is asked for, in order. */
struct sizes {
    uint64_t *v;
    size_t n, cap;
    bool oom;
};

static void push(struct sizes *s, uint64_t size)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->oom = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = size;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* What gpu_pool_alloc (vk_memory.c) allocates for S with blocks of BLOCK:
 * each range aligned in the first block with room, else in a new block. */
static int pool_bytes(const struct sizes *s, const struct vkllm_device_info *dev, uint64_t block,
                      uint64_t *out, struct vkllm_error *err)
{
    const uint64_t align = gpu_pool_alignment(dev), limit = gpu_pool_limit(dev);
    uint64_t *used = calloc(2 * s->n + 1, sizeof *used), *size = used + s->n;
    if (!used || s->oom) {
        free(used);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    uint32_t n = 0;
    *out = 0;
    for (size_t i = 0; i < s->n; i++) {
        const uint64_t want = gpu_range_bytes(s->v[i]);
        uint32_t b = 0;
        while (b < n && align_up(used[b], align) + want > size[b])
            b++;
        if (b == n) {
            const uint64_t bs = gpu_new_block_bytes(want, block, limit);
            size[n] = bs;
            used[n++] = 0;
            *out += bs;
        }
        used[b] = align_up(used[b], align) + want;
    }
    free(used);
    return VKLLM_OK;
}

/* The block size for S: all of it in one allocation when that is at most CAP
 * and the device's limit, else CAP; *BYTES is what the pool then allocates. */
static int pool_plan(const struct sizes *s, const struct vkllm_device_info *dev, uint64_t cap,
                     uint64_t *block, uint64_t *bytes, struct vkllm_error *err)
{
    const uint64_t align = gpu_pool_alignment(dev), limit = gpu_pool_limit(dev);
    uint64_t end = 0;
    for (size_t i = 0; i < s->n; i++)
        end = align_up(end, align) + gpu_range_bytes(s->v[i]);
    /* whole pages: what drivers round an allocation to anyway */
    end = align_up(end ? end : 4, 4096);
    *block = end <= cap && (!limit || end <= limit) ? end : cap;
    return pool_bytes(s, dev, *block, bytes, err);
}

/* ============================== Weights ============================== */

/* The parts weights.c uploads ROWS rows of T as: no larger than a binding
 * (their bytes added to *BYTES). */
static int push_matrix(struct sizes *s, tensor_ref t, uint64_t rows,
                       const struct vkllm_device_info *dev, uint64_t *bytes,
                       struct vkllm_error *err)
{
    const uint64_t k = t->ne[0];
    const uint64_t per = gpu_weight_rows_per_part(t->type, k, rows, dev->max_storage_buffer_range);
    char name[SHOWN_MAX];
    if (!per)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%s: a row of %llu elements does not fit one storage buffer binding",
                          shown(name, t->name.ptr, t->name.len), (unsigned long long)k);
    for (uint64_t r = 0; r < rows; r += per) {
        const uint64_t part = gpu_weight_bytes(t->type, k, rows - r < per ? rows - r : per);
        push(s, part);
        *bytes += part;
    }
    return VKLLM_OK;
}

/* The ranges model.c's load_tensor allocates for ROLE in LAYER. */
static int add_role(const struct arch_model *am, const struct vkllm_device_info *dev,
                    uint32_t layer, enum tensor_role role, struct sizes *s, struct weight_plan *out,
                    struct vkllm_error *err)
{
    const struct tensor_slice *sl = arch_slice(am, layer, role);
    tensor_ref t = sl->t;
    if (!t || (role == T_OUTPUT && am->hp.tied_output)) return VKLLM_OK;
    if (!arch_role_is_matrix(role)) {
        push(s, sl->count * 4);
        out->by_type[VKLLM_TYPE_F32] += sl->count * 4;
        return VKLLM_OK;
    }
    return push_matrix(s, t, sl->count, dev, &out->by_type[t->type], err);
}

int budget_weights(const struct arch_model *am, const struct vkllm_device_info *dev,
                   struct weight_plan *out, struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    struct sizes s = {0};
    int rc = VKLLM_OK;
    /* model.c's order: the model's roles, then each layer's */
    for (int r = T_MODEL_FIRST; r < T_COUNT && !rc; r++)
        rc = add_role(am, dev, 0, (enum tensor_role)r, &s, out, err);
    for (uint32_t l = 0; l < am->hp.n_layer && !rc; l++)
        for (int r = 0; r < T_LAYER_COUNT && !rc; r++)
            rc = add_role(am, dev, l, (enum tensor_role)r, &s, out, err);
    if (!rc) rc = pool_plan(&s, dev, WEIGHT_BLOCK, &out->block, &out->bytes, err);
    /* a ring that holds every weight copies any part or chunk in one go */
    out->staging = out->bytes < STAGING_BYTES ? out->bytes : STAGING_BYTES;
    free(s.v);
    return rc;
}

/* ============================== Adapters ============================== */

int budget_adapter(const struct lora_pair *pairs, uint64_t n_pairs,
                   const struct vkllm_device_info *dev, struct adapter_plan *out,
                   struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    struct sizes s = {0};
    uint64_t widest_row = 0, parts = 0;
    int rc = VKLLM_OK;
    /* lora.c's order: each adapted slice's A, then its B */
    for (uint64_t i = 0; i < n_pairs && !rc; i++) {
        const struct lora_pair *p = &pairs[i];
        if (!p->a) continue;
        rc = push_matrix(&s, p->a, p->a->ne[1], dev, &parts, err);
        if (!rc) rc = push_matrix(&s, p->b, p->b_count, dev, &parts, err);
        const uint64_t row = gpu_weight_bytes(p->a->type, p->a->ne[0], 2);
        if (row > widest_row) widest_row = row;
    }
    if (!rc && s.n) rc = pool_plan(&s, dev, WEIGHT_BLOCK, &out->block, &out->bytes, err);
    if (!rc && s.n) {
        /* a small ring: an adapter is small beside its model; two rows of the
         * widest A at least, which an upload copies in one go */
        out->staging = out->bytes < (4u << 20) ? out->bytes : 4u << 20;
        if (out->staging < 2 * widest_row + 64) out->staging = 2 * widest_row + 64;
    }
    free(s.v);
    return rc;
}

/* ============================== Sessions ============================== */

uint32_t budget_ring(const struct arch_model *am, uint32_t layer, uint32_t n_ctx, uint32_t n_batch)
{
    /* a windowed layer keeps the window and one batch: a batch's first query
     * still sees the window behind it while the batch is written */
    if (am->layers.swa[layer] && (uint64_t)am->hp.sliding_window + n_batch < n_ctx)
        return am->hp.sliding_window + n_batch;
    return n_ctx;
}

/* The largest batch whose activations each fit one binding. */
static uint32_t fit_batch(const struct vkllm_hparams *hp, uint32_t want, uint32_t n_ctx,
                          bool logits_all, uint64_t range)
{
    uint64_t widest = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if ((uint64_t)hp->n_head * hp->head_dim > widest) widest = (uint64_t)hp->n_head * hp->head_dim;
    if ((uint64_t)hp->n_head * n_ctx > widest) widest = (uint64_t)hp->n_head * n_ctx;
    if (logits_all && hp->n_vocab > widest) widest = hp->n_vocab;
    uint64_t most = range / (4 * widest);
    return most < want ? (uint32_t)most : want;
}

/* ============================== KV cache types ============================== */

/* name, values per block, bytes per block (llama.cpp's block_q8_0) */
static const struct {
    const char *name;
    uint32_t block, bytes;
} cache_types[VKLLM_CACHE_TYPE_COUNT] = {
    [VKLLM_CACHE_F16] = {"f16", 1, 2},
    [VKLLM_CACHE_Q8_0] = {"q8_0", 32, 34},
};

const char *vkllm_cache_type_name(uint32_t type)
{
    return type < VKLLM_CACHE_TYPE_COUNT ? cache_types[type].name : NULL;
}

int vkllm_cache_type_parse(const char *name)
{
    for (int i = 0; name && i < VKLLM_CACHE_TYPE_COUNT; i++)
        if (!strcmp(name, cache_types[i].name)) return i;
    return -1;
}

/* Checks the cache type TYPE (of K when IS_K) against head size HEAD_DIM and
 * sets *ROW to the bytes of one position's N values; the error names PATH
 * when it is not NULL. */
static int cache_row(const char *path, uint32_t type, bool is_k, uint32_t head_dim, uint64_t n,
                     uint64_t *row, struct vkllm_error *err)
{
    const char *flag = is_k ? "--cache-type-k" : "--cache-type-v";
    const char *sep = path ? ": " : "";
    if (!path) path = "";
    if (type >= VKLLM_CACHE_TYPE_COUNT)
        return vkllm_fail(err, VKLLM_E_INVALID, "%s%s%s: unknown KV cache type %u", path, sep, flag,
                          type);
    if (head_dim % cache_types[type].block)
        return vkllm_fail(
            err, VKLLM_E_UNSUPPORTED,
            "%s%s%s %s needs a head size that is a multiple of %u (this model's is %u)", path, sep,
            flag, cache_types[type].name, cache_types[type].block, head_dim);
    *row = n / cache_types[type].block * cache_types[type].bytes;
    return VKLLM_OK;
}

/* PARAMS's cache types against the model AM (the error names PATH). */
static int check_cache_types(const char *path, const struct arch_model *am,
                             const struct vkllm_session_params *params, struct vkllm_error *err)
{
    uint64_t row;
    const uint32_t hd = am->hp.head_dim;
    int rc = cache_row(path, params->type_k, true, hd, hd, &row, err);
    return rc ? rc : cache_row(path, params->type_v, false, hd, hd, &row, err);
}

int budget_session(const struct arch_model *am, const struct vkllm_device_info *dev,
                   const struct vkllm_session_params *params, struct session_plan *out,
                   struct vkllm_error *err)
{
    const struct vkllm_hparams *hp = &am->hp;
    memset(out, 0, sizeof *out);
    out->n_ctx = params && params->n_ctx
                     ? params->n_ctx
                     : (hp->n_ctx_train < DEFAULT_N_CTX ? hp->n_ctx_train : DEFAULT_N_CTX);
    out->logits_all = params && params->logits_all;
    uint32_t want = params && params->n_batch ? params->n_batch : DEFAULT_N_BATCH;
    if (params && params->n_ubatch && params->n_ubatch < want) want = params->n_ubatch;
    out->n_batch = fit_batch(hp, want, out->n_ctx, out->logits_all, dev->max_storage_buffer_range);
    out->n_seq = params && params->n_seq ? params->n_seq : 1;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    out->type_k = params ? params->type_k : VKLLM_CACHE_F16;
    out->type_v = params ? params->type_v : VKLLM_CACHE_F16;
    int rc = cache_row(NULL, out->type_k, true, hp->head_dim, KV, &out->row_k, err);
    if (!rc) rc = cache_row(NULL, out->type_v, false, hp->head_dim, KV, &out->row_v, err);
    if (rc) return rc;
    /* the larger of the two rows bounds a binding */
    const uint64_t row = out->row_k > out->row_v ? out->row_k : out->row_v;
    const char *set_by = getenv("VKLLM_MAX_BINDING") ? " (as VKLLM_MAX_BINDING sets it)" : "";
    if (out->n_ctx > (1u << 24) || out->n_batch == 0 ||
        out->n_ctx * row > dev->max_storage_buffer_range)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "a context of %u tokens does not fit %s's storage buffer limit%s",
                          out->n_ctx, dev->name, set_by);
    /* a group's decode step is a batch of a token per sequence, and each
     * layer's caches are one binding */
    if (out->n_seq > out->n_batch)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "%u sequences do not fit a batch of %u tokens: use fewer or a larger "
                          "batch",
                          out->n_seq, out->n_batch);
    if ((uint64_t)out->n_seq * out->n_ctx * row > dev->max_storage_buffer_range)
        return vkllm_fail(err, VKLLM_E_UNSUPPORTED,
                          "%u sequences of %u tokens do not fit %s's storage buffer limit%s: use "
                          "fewer or a shorter context",
                          out->n_seq, out->n_ctx, dev->name, set_by);
    struct graph g;
    rc = graph_build(am, out->logits_all, &g, err);
    if (rc) return rc;

    /* session.c's alloc_state, pool by pool, in its order */
    const uint64_t B = out->n_batch;
    struct sizes host = {0}, device = {0}, readback = {0};
    out->step = op_step_bytes((uint32_t)B);
    out->rope = B * (hp->n_rot ? hp->n_rot : 2) * 4;
    push(&host, out->step);
    for (uint32_t i = 0; i < am->layers.n_rope; i++)
        push(&host, out->rope);
    uint64_t widest = 0; /* longest input of a matvec */
    for (int b = 0; b < BUF_COUNT; b++) {
        if (b != BUF_LOGITS && g.width[b] > widest) widest = g.width[b];
        /* the logits of a prompt's last token, or of each sequence's token */
        const uint64_t rows = b == BUF_LOGITS && !out->logits_all ? out->n_seq : B;
        out->bufs[b] = rows * g.width[b] * 4;
        if (g.width[b]) push(&device, out->bufs[b]);
    }
    graph_free(&g);
    out->xq = op_q8_bytes((uint32_t)B, (uint32_t)widest);
    out->scores = B * hp->n_head * out->n_ctx * 4;
    out->logits = (out->logits_all ? B : out->n_seq) * hp->n_vocab * 4;
    push(&device, out->xq);
    push(&device, out->scores);
    push(&readback, out->logits);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const uint64_t slots = (uint64_t)out->n_seq * budget_ring(am, l, out->n_ctx, out->n_batch);
        push(&device, slots * out->row_k);
        push(&device, slots * out->row_v);
        out->kv += align_up(slots * out->row_k, gpu_pool_alignment(dev)) +
                   align_up(slots * out->row_v, gpu_pool_alignment(dev));
    }
    rc = pool_plan(&device, dev, SESSION_BLOCK, &out->device_block, &out->device, err);
    if (!rc) rc = pool_plan(&host, dev, HOST_BLOCK, &out->host_block, &out->host, err);
    if (!rc) rc = pool_plan(&readback, dev, HOST_BLOCK, &out->readback_block, &out->readback, err);
    free(host.v);
    free(device.v);
    free(readback.v);
    return rc;
}

/* ============================== Checks ============================== */

static const char *human_digits(char *buf, size_t n, uint64_t bytes, int digits)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, n, "%.*f GiB", digits, bytes / 1073741824.0);
    else if (bytes >= (1ull << 20))
        snprintf(buf, n, "%.*f MiB", digits, bytes / 1048576.0);
    else
        snprintf(buf, n, "%.*f KiB", digits, bytes / 1024.0);
    return buf;
}

static const char *human(char *buf, size_t n, uint64_t bytes)
{
    return human_digits(buf, n, bytes, 1);
}

/* NEED and FREE (NEED > FREE) with as many digits as it takes for them to
 * read differently: "needs 6.9 MiB but has 6.9 MiB free" explains nothing. */
static void human_pair(char need_s[32], char free_s[32], uint64_t need, uint64_t free)
{
    for (int digits = 1; digits <= 3; digits++) {
        human_digits(need_s, 32, need, digits);
        human_digits(free_s, 32, free, digits);
        if (strcmp(need_s, free_s)) return;
    }
    snprintf(need_s, 32, "%llu bytes", (unsigned long long)need);
    snprintf(free_s, 32, "%llu bytes", (unsigned long long)free);
}

static uint64_t free_bytes(const struct vk_device *d)
{
    struct vkllm_memory_budget b;
    vk_device_memory(d, &b);
    return b.budget > b.usage ? b.budget - b.usage : 0;
}

static uint64_t session_bytes(const struct session_plan *p)
{
    return p->device + p->host + p->readback;
}

/* The most held at once: the weights and adapters, then the staging ring
 * while the weights load and the session beside an adapter's ring after it
 * (run loads its adapters after the session). W NULL: the weights (and AD)
 * are on the device already and count in the free memory. */
static uint64_t peak(const struct weight_plan *w, const struct adapter_plan *ad, uint64_t session)
{
    if (!w) return session;
    const uint64_t after = session + ad->staging;
    return w->bytes + ad->bytes + (w->staging > after ? w->staging : after);
}

/* The largest context under N_CTX whose session fits FREE beside the weights
 * W and adapters AD (W NULL: already in use), rounded down to 256 tokens when
 * that large; 0 if none does. */
static uint32_t fitting_ctx(const struct arch_model *am, const struct vkllm_device_info *dev,
                            const struct vkllm_session_params *params, uint32_t n_ctx,
                            const struct weight_plan *w, const struct adapter_plan *ad,
                            uint64_t free)
{
    struct vkllm_session_params p = params ? *params : (struct vkllm_session_params){0};
    uint32_t lo = 0, hi = n_ctx; /* lo fits (or is 0), hi does not */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        struct session_plan plan;
        p.n_ctx = mid;
        if (!budget_session(am, dev, &p, &plan, NULL) && peak(w, ad, session_bytes(&plan)) <= free)
            lo = mid;
        else
            hi = mid;
    }
    return lo >= 256 ? lo & ~255u : lo;
}

/* "4 sequences of 512 tokens" or "512 tokens". */
static const char *tokens_text(char *buf, size_t n, const struct session_plan *s)
{
    if (s->n_seq > 1)
        snprintf(buf, n, "%u sequences of %u tokens", s->n_seq, s->n_ctx);
    else
        snprintf(buf, n, "%u tokens", s->n_ctx);
    return buf;
}

/* -c shrinks the KV cache; the activations grow with the batch: when they are
 * the larger part, -b/-ub is the better advice. */
static const char *batch_note(uint64_t activations, uint64_t kv)
{
    return activations > kv ? " (a smaller -b/-ub shrinks them)" : "";
}

static const char *capped(const struct vk_device *d)
{
    struct vkllm_memory_budget b;
    vk_device_memory(d, &b);
    return d->max_memory && b.budget == d->max_memory ? " (VKLLM_MAX_MEMORY)" : "";
}

/* budget_check_load's check, with adapters AD beside the weights. */
static int check_load(const char *path, const struct arch_model *am, const struct vk_device *d,
                      const struct vkllm_session_params *params, const struct adapter_plan *ad,
                      uint32_t n_adapters, const char *advice, struct vkllm_error *err)
{
    struct weight_plan w;
    struct session_plan s = {0};
    int rc = params ? check_cache_types(path, am, params, err) : VKLLM_OK;
    if (!rc) rc = budget_weights(am, &d->info, &w, err);
    if (!rc && params) rc = budget_session(am, &d->info, params, &s, err);
    if (rc) return rc;
    const uint64_t need = peak(&w, ad, params ? session_bytes(&s) : 0), free = free_bytes(d);
    if (need <= free) return VKLLM_OK;

    char a[32], b[32], c[32], e[32], f[32], g[32], h[32], try[128] = "", adapters[96] = "";
    human_pair(a, f, need, free);
    if (n_adapters)
        snprintf(adapters, sizeof adapters, ", %s %s", n_adapters == 1 ? "adapter" : "adapters",
                 human(h, 32, ad->bytes));
    if (!params)
        return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                          "%s: needs %s (weights %s%s, staging %s while loading) but %s has %s "
                          "free%s: try a smaller quantization",
                          path, a, human(b, 32, w.bytes), adapters, human(c, 32, w.staging),
                          d->info.name, f, capped(d));
    /* several sequences share -c, as llama.cpp's -np divides it */
    const uint32_t fits =
        advice ? 0 : fitting_ctx(am, &d->info, params, s.n_ctx, &w, ad, free) * s.n_seq;
    if (fits) snprintf(try, sizeof try, "-c %u or ", fits);
    if (advice) snprintf(try, sizeof try, "%s or ", advice); /* the caller's options */
    char n_tok[64];
    return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                      "%s: needs %s (weights %s%s, KV cache %s for %s, activations %s%s; "
                      "staging %s while loading) but %s has %s free%s: try %sa smaller "
                      "quantization",
                      path, a, human(b, 32, w.bytes), adapters, human(c, 32, s.kv),
                      tokens_text(n_tok, sizeof n_tok, &s), human(e, 32, session_bytes(&s) - s.kv),
                      advice ? "" : batch_note(session_bytes(&s) - s.kv, s.kv),
                      human(g, 32, w.staging), d->info.name, f, capped(d), try);
}

int budget_check_load(const char *path, const struct arch_model *am, const struct vk_device *d,
                      const struct vkllm_session_params *params, struct vkllm_error *err)
{
    const struct adapter_plan none = {0};
    return check_load(path, am, d, params, &none, 0, NULL, err);
}

int budget_check_model(const char *path, const struct arch_model *am, const vkllm_gguf *g,
                       const struct vk_device *d, const struct vkllm_model_params *params,
                       struct vkllm_error *err)
{
    const uint32_t n = params && params->adapters ? params->n_adapters : 0;
    struct adapter_plan all = {0};
    int rc = VKLLM_OK;
    /* each adapter is bound as vkllm_adapter_load binds it: a wrong one fails
     * here, before the weights' upload, which can take minutes */
    for (uint32_t i = 0; i < n && !rc; i++) {
        vkllm_gguf *ad = NULL;
        struct lora_binding bind;
        struct adapter_plan one = {0};
        if (!(rc = vkllm_gguf_open(params->adapters[i], &ad, err)) &&
            !(rc = lora_bind(am, g, ad, &bind, err))) {
            rc = budget_adapter(bind.pairs, arch_slot_count(am), &d->info, &one, err);
            lora_binding_free(&bind);
        }
        vkllm_gguf_close(ad);
        all.bytes += one.bytes;
        if (one.staging > all.staging) all.staging = one.staging;
    }
    if (!rc)
        rc = check_load(path, am, d, params ? params->session : NULL, &all, n,
                        params ? params->advice : NULL, err);
    return rc;
}

int budget_check_adapter(const char *path, const struct adapter_plan *plan,
                         const struct vk_device *d, struct vkllm_error *err)
{
    const uint64_t need = plan->bytes + plan->staging, free = free_bytes(d);
    if (need <= free) return VKLLM_OK;
    char a[32], b[32], f[32];
    human_pair(a, f, need, free);
    return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                      "%s: the adapter needs %s (%s of it staging while it loads) but %s has %s "
                      "free beside the model, its sessions and the adapters already loaded%s",
                      path, a, human(b, 32, plan->staging), d->info.name, f, capped(d));
}

int budget_check_session(const char *path, const struct arch_model *am, const struct vk_device *d,
                         const struct vkllm_session_params *params, const struct session_plan *plan,
                         struct vkllm_error *err)
{
    const uint64_t need = session_bytes(plan), free = free_bytes(d);
    if (need <= free) return VKLLM_OK;
    char a[32], b[32], c[32], f[32], try[64] = "a smaller batch (-b/-ub) or quantization";
    human_pair(a, f, need, free);
    const uint32_t fits =
        fitting_ctx(am, &d->info, params, plan->n_ctx, NULL, NULL, free) * plan->n_seq;
    if (fits) snprintf(try, sizeof try, "-c %u", fits);
    char n_tok[64];
    return vkllm_fail(err, VKLLM_E_DEVICE_MEMORY,
                      "%s: a context of %s needs %s (KV cache %s, activations %s%s) but %s "
                      "has %s free after the weights%s: try %s",
                      path, tokens_text(n_tok, sizeof n_tok, plan), a, human(b, 32, plan->kv),
                      human(c, 32, need - plan->kv), batch_note(need - plan->kv, plan->kv),
                      d->info.name, f, capped(d), try);
}

/* ============================== Public ============================== */

void vkllm_context_memory(const vkllm_context *ctx, struct vkllm_memory_budget *out)
{
    vk_device_memory(&ctx->dev, out);
}

int vkllm_memory_needs(const vkllm_gguf *g, const vkllm_context *ctx,
                       const struct vkllm_session_params *params, struct vkllm_memory_needs *out,
                       struct vkllm_error *err)
{
    memset(out, 0, sizeof *out);
    const struct vkllm_device_info *dev = ctx ? &ctx->dev.info : &typical_device;
    struct arch_model am;
    int rc = arch_bind(g, &am, err);
    if (rc) return rc;
    struct weight_plan w;
    struct session_plan s;
    if (!(rc = budget_weights(&am, dev, &w, err)) &&
        !(rc = budget_session(&am, dev, params, &s, err))) {
        out->weights = w.bytes;
        memcpy(out->weights_type, w.by_type, sizeof w.by_type);
        out->kv_cache = s.kv;
        out->activations = s.device - s.kv;
        out->session_host = s.host + s.readback;
        out->staging = w.staging;
        const struct adapter_plan none = {0};
        out->total = peak(&w, &none, s.device + s.host + s.readback);
        out->n_ctx = s.n_ctx;
        out->n_batch = s.n_batch;
    }
    arch_model_free(&am);
    return rc;
}

int vkllm_memory_check(const vkllm_gguf *g, const vkllm_context *ctx,
                       const struct vkllm_session_params *params, struct vkllm_error *err)
{
    struct arch_model am;
    int rc = arch_bind(g, &am, err);
    if (rc) return rc;
    struct vkllm_session_params p = params ? *params : (struct vkllm_session_params){0};
    rc = budget_check_load(vkllm_gguf_name(g), &am, &ctx->dev, &p, err);
    arch_model_free(&am);
    return rc;
}
