/* sampler.c: choosing the next token from a row of logits.
 *
 * One call of vkllm_sampler_sample runs, in llama.cpp's order:
 *
 *   load        copy the logits into the candidate buffer (NaN -> -inf)
 *   penalty     on each distinct token of the last repeat_last_n accepted
 *               ones: repetition (logit > 0 divided, <= 0 multiplied), then
 *               minus count * frequency_penalty + presence_penalty
 *   greedy      temp <= 0 or top_k == 1: argmax, the lowest id wins a tie
 *   top-k       heap selection of the k best, O(n log k), then sorted
 *   weights     e_i = exp(l_i - l_max), Z = sum of e_i
 *   min-p       keep e_i >= min_p (p_i >= min_p * p_max)
 *   top-p       smallest best-first prefix with mass >= top_p * Z
 *   temperature q_i = exp((l_i - l_max) / temp) over what is left
 *   draw        u in [0, 1) from xoshiro256**, the first i with u*sum(q) < q_0+..+q_i
 *
 * min-p runs before top-p here, which gives the same set as llama.cpp's top-p
 * then min-p: both keep a best-first prefix of the candidates, and top-p still
 * measures mass against the Z of the set before min-p, so the result is the
 * shorter of the two prefixes. Doing min-p first lets top-p work on the few
 * tokens min-p keeps instead of the whole vocabulary.
 *
 * Special logits: NaN counts as -inf (never chosen while any other token is
 * possible). If some logits are +inf, the +inf tokens share all the probability
 * equally (the limit of the softmax) and greedy takes the lowest such id. If
 * every logit is NaN or -inf, the result is token 0.
 *
 * Reproducibility: the RNG, the exponential and the sums are our own code in
 * a fixed order of IEEE double operations, so the same logits and seed give
 * the same tokens on every machine (libm's expf is not the same everywhere).
 *
 * No allocation after _create: the candidate buffer holds the whole vocabulary
 * and the history is a ring of repeat_last_n ids.
 */
#include "error.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The exponential below must not be contracted into FMAs by one compiler and
 * not another. GCC in ISO C mode (-std=c11) already does not contract. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* One token under consideration. */
struct cand {
    float logit; /* after the penalty */
    float e;     /* exp(logit - max logit), once computed */
    int32_t id;
};

struct vkllm_sampler {
    struct vkllm_sampler_params p;
    int32_t n_vocab;
    struct cand *cand; /* (n_vocab) */
    int32_t *hist;     /* (repeat_last_n) ring of accepted tokens */
    int32_t hist_len;  /* valid entries, <= repeat_last_n */
    int32_t hist_next; /* where the next accepted token goes */
    struct rng rng;
};

/* ============================== Parameters ============================== */

struct vkllm_sampler_params vkllm_sampler_defaults(uint64_t seed)
{
    struct vkllm_sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = seed,
    };
    return p;
}

static int check_params(const struct vkllm_sampler_params *p, int32_t n_vocab,
                        struct vkllm_error *err)
{
    if (n_vocab <= 0)
        return vkllm_fail(err, VKLLM_E_INVALID, "sampler: n_vocab is %d, must be > 0",
                          (int)n_vocab);
    /* inf would turn (-inf - max) / temp into NaN; use a large finite value */
    if (!isfinite(p->temp))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: temp is %g, must be a finite number (<= 0 for greedy)",
                          (double)p->temp);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: top_p is %g, must be in (0, 1] (1 keeps all)",
                          (double)p->top_p);
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: min_p is %g, must be at most 1 (<= 0 keeps all)",
                          (double)p->min_p);
    if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0.0f))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: repeat_penalty is %g, must be finite and > 0 (1 is off)",
                          (double)p->repeat_penalty);
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: frequency_penalty %g and presence_penalty %g must be finite "
                          "(0 is off)",
                          (double)p->frequency_penalty, (double)p->presence_penalty);
    if (p->repeat_last_n < 0)
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "sampler: repeat_last_n is %d, must be >= 0 (0 is off)",
                          (int)p->repeat_last_n);
    return VKLLM_OK;
}

/* ============================== RNG ============================== */

/* Uniform in [0, 1) on a grid of 2^-24: the top 24 bits, the best bits of
 * xoshiro256**, and exactly representable as a float. */
static double rng_uniform(struct rng *r)
{
    return (double)(rng_next(r) >> 40) * 0x1p-24;
}

/* ============================== Exponential ============================== */

/* exp(x) for x <= 0 from IEEE double operations only: the same bits
 * everywhere. Relative error below 1e-11; results go into floats. */
static double exp_neg(double x)
{
    if (!(x > -104.0)) return 0.0; /* e^-104 is below the smallest float; and -inf */
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
    const double ln2_lo = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */
    const double t = x * 1.44269504088896338700 + 0.5;
    int k = (int)t; /* floor(t), without a call */
    if (k > t) k--;
    const double r = (x - k * ln2_hi) - k * ln2_lo; /* |r| <= ln2 / 2 */
    /* Taylor series to r^9: the next term is < 0.347^10 / 10! = 7e-12 */
    double p = 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^k, k in [-151, 0]: a normal double, built from its exponent field */
    const uint64_t bits = (uint64_t)(k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ============================== Candidate order ============================== */

/* The total order every step uses: higher logit first, then lower id. Being
 * total (ids are distinct), it makes every selection below deterministic. */
static inline int better(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Restores a heap whose root is its worst element, from position I down. */
static void sift_down(struct cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t worst = i;
        int32_t l = 2 * i + 1, r = l + 1;
        if (l < n && better(&h[worst], &h[l])) worst = l;
        if (r < n && better(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        swap_cand(&h[i], &h[worst]);
        i = worst;
    }
}

/* Leaves the K best of C[0..N) in C[0..K), sorted best first. O(N log K) at
 * worst; on logits in no special order nearly every element loses its one
 * comparison with the heap root, so it is close to a single pass. With K == N
 * this is heapsort, which needs no memory (unlike some qsort). */
static void select_top_k(struct cand *c, int32_t n, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (better(&c[i], &c[0])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
    for (int32_t end = k - 1; end > 0; end--) {
        swap_cand(&c[0], &c[end]); /* the worst left goes to the back */
        sift_down(c, end, 0);
    }
}

/* Partitions C[LO..HI) (at least 3 elements) around a median-of-three pivot:
 * returns M with C[LO..M) better than C[M] and C(M..HI) worse. */
static int32_t partition(struct cand *c, int32_t lo, int32_t hi)
{
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(&c[mid], &c[lo])) swap_cand(&c[mid], &c[lo]);
    if (better(&c[last], &c[lo])) swap_cand(&c[last], &c[lo]);
    if (better(&c[last], &c[mid])) swap_cand(&c[last], &c[mid]);
    swap_cand(&c[mid], &c[last]); /* the median is the pivot, parked at the end */
    const struct cand pivot = c[last];
    int32_t m = lo;
    for (int32_t i = lo; i < last; i++)
        if (better(&c[i], &pivot)) swap_cand(&c[i], &c[m++]);
    swap_cand(&c[m], &c[last]);
    return m;
}

/* The nucleus without a full sort: moves the smallest best-first prefix of
 * C[0..N) whose weights sum to at least TARGET into C[0..r) (in no particular
 * order) and returns r, at least 1. A quickselect on mass instead of on rank:
 * each partition tells whether the boundary is among the better half, so the
 * expected cost is O(N). Sorted input is fine (the median of three is then
 * the true median); a pathological input falls back to heapsort. */
static int32_t select_nucleus(struct cand *c, int32_t n, double target)
{
    int32_t lo = 0, hi = n;
    double acc = 0.0; /* weight of C[0..lo), all inside the nucleus */
    int rounds = 0;
    while (hi - lo > 16 && rounds++ < 64) {
        int32_t m = partition(c, lo, hi);
        double upper = 0.0;
        for (int32_t i = lo; i < m; i++)
            upper += c[i].e;
        if (acc + upper >= target) {
            hi = m; /* the boundary is among the better ones */
            continue;
        }
        acc += upper + c[m].e;
        if (acc >= target) return m + 1;
        lo = m + 1;
    }
    select_top_k(c + lo, hi - lo, hi - lo); /* sort what is left, best first */
    for (int32_t i = lo; i < hi; i++) {
        acc += c[i].e;
        if (acc >= target) return i + 1;
    }
    return hi > 0 ? hi : 1; /* rounding kept it just short of TARGET: keep all */
}

/* ============================== Sampler ============================== */

int vkllm_sampler_create(const struct vkllm_sampler_params *params, int32_t n_vocab,
                         vkllm_sampler **out, struct vkllm_error *err)
{
    if (!out) return vkllm_fail(err, VKLLM_E_INVALID, "sampler: out is NULL");
    *out = NULL;
    if (!params) return vkllm_fail(err, VKLLM_E_INVALID, "sampler: params is NULL");
    int rc = check_params(params, n_vocab, err);
    if (rc) return rc;

    vkllm_sampler *s = calloc(1, sizeof *s);
    if (!s) goto fail_nomem;
    s->p = *params;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->cand) goto fail_free;
    if (params->repeat_last_n > 0) {
        s->hist = malloc((size_t)params->repeat_last_n * sizeof *s->hist);
        if (!s->hist) goto fail_free;
    }
    rng_seed(&s->rng, params->seed);
    *out = s;
    return VKLLM_OK;

fail_free:
    vkllm_sampler_free(s);
fail_nomem:
    return vkllm_fail(err, VKLLM_E_NOMEM, "sampler: out of memory for %d candidates", (int)n_vocab);
}

void vkllm_sampler_free(vkllm_sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->hist);
    free(s);
}

/* Ids outside the vocabulary are ignored: they could never be penalized. */
void vkllm_sampler_accept(vkllm_sampler *s, int32_t token)
{
    if (!s || s->p.repeat_last_n <= 0 || token < 0 || token >= s->n_vocab) return;
    s->hist[s->hist_next] = token;
    s->hist_next = (s->hist_next + 1) % s->p.repeat_last_n;
    if (s->hist_len < s->p.repeat_last_n) s->hist_len++;
}

/* A new conversation, or the same one given again in whole: the penalties
 * must see only its tokens (the RNG goes on, as between replies). */
void vkllm_sampler_reset(vkllm_sampler *s)
{
    if (!s) return;
    s->hist_len = 0;
    s->hist_next = 0;
}

static float penalize(float logit, float penalty)
{
    return logit > 0.0f ? logit / penalty : logit * penalty;
}

/* The greedy choice: the best candidate, the lowest id on a tie (token 0 if
 * every logit is -inf). */
static int32_t argmax(const struct cand *c, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > c[best].logit) best = i; /* strict: the lowest id wins */
    return c[best].id;
}

/* top-k, min-p, top-p, temperature and the draw, on the loaded candidates. */
static int32_t sample_dist(vkllm_sampler *s)
{
    const struct vkllm_sampler_params *p = &s->p;
    struct cand *c = s->cand;
    int32_t n = s->n_vocab;

    int sorted = 0; /* c[0..n) best first */
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(c, n, p->top_k);
        n = p->top_k;
        sorted = 1;
    }

    const int32_t n_topk = n;
    float max = c[0].logit;
    if (!sorted)
        for (int32_t i = 1; i < n; i++)
            max = c[i].logit > max ? c[i].logit : max;
    if (max == -INFINITY) return 0; /* nothing is possible */
    if (max == INFINITY) {
        /* the softmax limit: the +inf tokens share everything equally */
        for (int32_t i = 0; i < n; i++)
            c[i].logit = c[i].logit == INFINITY ? 0.0f : -INFINITY;
        max = 0.0f;
    }

    /* weights at temp 1, for min-p and top-p */
    double z = 0.0;
    if (p->min_p > 0.0f || p->top_p < 1.0f) {
        for (int32_t i = 0; i < n; i++) {
            c[i].e = (float)exp_neg((double)c[i].logit - max);
            z += c[i].e;
        }
    }

    if (p->min_p > 0.0f) {
        int32_t m = 0; /* keeps the order, so sorted stays sorted; the max stays (e == 1) */
        for (int32_t i = 0; i < n; i++)
            if (c[i].e >= p->min_p) c[m++] = c[i];
        n = m;
    }

    if (p->top_p < 1.0f) {
        const double target = (double)p->top_p * z; /* z of the set before min-p */
        if (sorted) {
            double acc = 0.0;
            int32_t i = 0;
            while (i < n - 1 && (acc += c[i].e) < target)
                i++;
            n = i + 1;
        } else {
            /* A token of the nucleus has less than TARGET before it, so it and
             * the tokens after it (at most n_topk, none heavier than it) hold
             * more than z - TARGET: its weight exceeds (z - TARGET) / n_topk.
             * Dropping the lighter ones first (with a margin for rounding)
             * leaves little to select from when the distribution is peaked. */
            const float light = (float)((z - target) / n_topk * 0.999);
            int32_t m = 0;
            for (int32_t i = 0; i < n; i++)
                if (c[i].e > light) c[m++] = c[i];
            n = select_nucleus(c, m, target);
        }
    }

    /* temperature and softmax over what is left, then the draw */
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].e = (float)exp_neg(((double)c[i].logit - max) / p->temp);
        sum += c[i].e;
    }
    const double target = rng_uniform(&s->rng) * sum;
    double acc = 0.0;
    int32_t last = 0; /* the last candidate with weight, if rounding walks off the end */
    for (int32_t i = 0; i < n; i++) {
        if (c[i].e <= 0.0f) continue;
        last = i;
        acc += c[i].e;
        if (target < acc) break;
    }
    return c[last].id;
}

/* Returns the chosen token id (and accepts it), or VKLLM_E_INVALID for a NULL
 * sampler or logits. */
int32_t vkllm_sampler_sample(vkllm_sampler *s, const float *logits)
{
    if (!s || !logits) return VKLLM_E_INVALID;
    struct cand *c = s->cand;

    /* load; the candidate at index id is still token id here */
    for (int32_t i = 0; i < s->n_vocab; i++) {
        c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        c[i].id = i;
    }
    /* Each distinct token of the window once, with its count, as in
     * llama.cpp; the count is kept in e, which the weights set later. */
    const float penalty = s->p.repeat_penalty, freq = s->p.frequency_penalty,
                presence = s->p.presence_penalty;
    if (penalty != 1.0f || freq != 0.0f || presence != 0.0f) {
        for (int32_t j = 0; j < s->hist_len; j++)
            c[s->hist[j]].e = 0.0f;
        for (int32_t j = 0; j < s->hist_len; j++)
            c[s->hist[j]].e += 1.0f;
        for (int32_t j = 0; j < s->hist_len; j++) {
            const int32_t t = s->hist[j];
            if (c[t].e == 0.0f) continue; /* done at its first occurrence */
            c[t].logit = penalize(c[t].logit, penalty) - (c[t].e * freq + presence);
            c[t].e = 0.0f;
        }
    }

    int32_t chosen = s->p.temp <= 0.0f || s->p.top_k == 1 ? argmax(c, s->n_vocab) : sample_dist(s);
    vkllm_sampler_accept(s, chosen);
    return chosen;
}
