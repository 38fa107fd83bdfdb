/* merge.c: the merge loop SentencePiece and BPE share. A text starts as one
 * symbol per UTF-8 character; the pair of neighbours with the highest priority
 * merges, its new neighbours are queued, until no pair is left. The two differ
 * only in which pairs may merge and in what order (merge_priority_fn). */
#include "vocab_internal.h"

#include <stdlib.h>

/* The queue order: higher priority first, then the lower left position (the
 * ordering of llama.cpp's std::priority_queue for both tokenizers). */
static bool pair_before(const struct merge_pair *a, const struct merge_pair *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

static void pair_swap(struct merge_pair *h, size_t i, size_t j)
{
    struct merge_pair t = h[i];
    h[i] = h[j];
    h[j] = t;
}

/* Queues the pair LEFT, RIGHT if it may merge. */
static int try_pair(struct merge_work *w, const char *text, int32_t left, int32_t right,
                    merge_priority_fn priority, const void *ctx)
{
    if (left < 0 || right < 0) return VKLLM_OK;
    const struct merge_symbol *l = &w->syms[left], *r = &w->syms[right];
    double p;
    if (!priority(ctx, text + l->off, l->n, text + r->off, r->n, &p)) return VKLLM_OK;
    if (grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap)) return VKLLM_E_NOMEM;
    struct merge_pair *h = w->heap;
    size_t i = w->heap_n++;
    h[i] = (struct merge_pair){left, right, p, l->n + r->n};
    for (; i > 0 && pair_before(&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2)
        pair_swap(h, i, (i - 1) / 2);
    return VKLLM_OK;
}

static struct merge_pair pop(struct merge_work *w)
{
    struct merge_pair *h = w->heap, top = h[0];
    h[0] = h[--w->heap_n];
    for (size_t i = 0;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < w->heap_n && pair_before(&h[l], &h[best])) best = l;
        if (r < w->heap_n && pair_before(&h[r], &h[best])) best = r;
        if (best == i) break;
        pair_swap(h, i, best);
        i = best;
    }
    return top;
}

int merge_text(struct merge_work *w, const char *text, size_t len, merge_priority_fn priority,
               const void *ctx)
{
    w->n_syms = 0;
    if (len > INT32_MAX) return VKLLM_E_INVALID;
    if (grow((void **)&w->syms, &w->syms_cap, len ? len : 1, sizeof *w->syms)) return VKLLM_E_NOMEM;
    int32_t n_syms = 0;
    for (size_t off = 0; off < len; n_syms++) {
        uint32_t n = utf8_len(text[off]);
        if (n > len - off) n = (uint32_t)(len - off);
        w->syms[n_syms] = (struct merge_symbol){n_syms - 1, -1, (uint32_t)off, n};
        off += n;
        if (off < len) w->syms[n_syms].next = n_syms + 1;
    }
    w->n_syms = n_syms;

    w->heap_n = 0;
    for (int32_t i = 1; i < n_syms; i++)
        if (try_pair(w, text, i - 1, i, priority, ctx)) return VKLLM_E_NOMEM;
    while (w->heap_n > 0) {
        struct merge_pair b = pop(w);
        struct merge_symbol *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (try_pair(w, text, l->prev, b.left, priority, ctx) ||
            try_pair(w, text, b.left, l->next, priority, ctx))
            return VKLLM_E_NOMEM;
    }
    return VKLLM_OK;
}

void merge_work_free(struct merge_work *w)
{
    free(w->syms);
    free(w->heap);
    *w = (struct merge_work){0};
}
