/* test_sampler.c: the sampler against hand-worked cases and simple statistics.
 *
 * The candidate sets of top-k, top-p and min-p are not visible through the
 * API, so the tests observe them: draw many times, and check that every token
 * of the expected set comes up and no other does. A high temperature (applied
 * after truncation) flattens the kept set so that each member comes up often.
 * All randomness is seeded, so every run is the same run.
 */
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ============================== Helpers ============================== */

static vkllm_sampler *make(struct vkllm_sampler_params p, int32_t n_vocab)
{
    vkllm_sampler *s = NULL;
    struct vkllm_error err = {0};
    int rc = vkllm_sampler_create(&p, n_vocab, &s, &err);
    REQUIRE(rc == VKLLM_OK && s, "sampler_create: %s", err.msg);
    return s;
}

/* Only the listed filters; everything else off. */
static struct vkllm_sampler_params plain(float temp, uint64_t seed)
{
    struct vkllm_sampler_params p = vkllm_sampler_defaults(seed);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

/* The test's own generator (not the sampler's): logits for the larger cases. */
static uint64_t test_rng = 0x853c49e6748fea9bu;
static double test_uniform(void)
{
    test_rng = test_rng * 6364136223846793005u + 1442695040888963407u;
    return (double)(test_rng >> 11) * 0x1p-53;
}
static float test_normal(void)
{
    double u1 = test_uniform(), u2 = test_uniform();
    return (float)(sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
}

/* Draws N tokens and counts them into COUNTS (n_vocab entries, zeroed here). */
static void draw(vkllm_sampler *s, const float *logits, int32_t n_vocab, int n, int *counts)
{
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t t = vkllm_sampler_sample(s, logits);
        REQUIRE(t >= 0 && t < n_vocab, "token %d out of range", (int)t);
        counts[t]++;
    }
}

/* Checks that the tokens drawn are exactly those with IN_SET[t] != 0. */
static void check_set(const char *what, const int *counts, const unsigned char *in_set,
                      int32_t n_vocab)
{
    int wrong = 0;
    for (int32_t t = 0; t < n_vocab; t++) {
        if ((counts[t] > 0) != (in_set[t] != 0)) {
            if (wrong++ < 5)
                fprintf(stderr, "%s: token %d drawn %d times, %s the expected set\n", what, (int)t,
                        counts[t], in_set[t] ? "in" : "not in");
        }
    }
    CHECK(wrong == 0, "%s: %d tokens disagree with the expected set", what, wrong);
}

/* Token order used by the sampler: higher logit first, then lower id. */
static const float *sort_logits;
static int cmp_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sort_logits[x] != sort_logits[y]) return sort_logits[x] > sort_logits[y] ? -1 : 1;
    return x < y ? -1 : 1;
}
static void sort_ids(const float *logits, int32_t *ids, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        ids[i] = i;
    sort_logits = logits;
    qsort(ids, (size_t)n, sizeof *ids, cmp_desc);
}

/* ============================== Greedy ============================== */

static void test_greedy(void)
{
    const float logits[] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
    vkllm_sampler *s = make(plain(0.0f, 1), 5);
    CHECK(vkllm_sampler_sample(s, logits) == 1, "argmax, lowest id of the tie 1/3");
    vkllm_sampler_free(s);

    s = make(plain(-1.0f, 1), 5); /* any temp <= 0 is greedy */
    CHECK(vkllm_sampler_sample(s, logits) == 1);
    vkllm_sampler_free(s);

    /* top_k = 1 is greedy at any temperature, ties included */
    float big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = test_normal();
    big[700] = big[300] = 5.0f; /* the max, twice */
    const float temps[] = {0.01f, 0.8f, 1.0f, 10.0f, 1000.0f};
    for (int j = 0; j < 5; j++) {
        struct vkllm_sampler_params p = plain(temps[j], 99 + (uint64_t)j);
        p.top_k = 1;
        s = make(p, 1000);
        for (int i = 0; i < 20; i++)
            CHECK(vkllm_sampler_sample(s, big) == 300, "top_k=1 at temp %g", (double)temps[j]);
        vkllm_sampler_free(s);
    }
}

/* ============================== Seeds ============================== */

static void test_seeds(void)
{
    /* Golden values: with 256 equal logits and no filters, the draw is
     * floor(u * 256) with u = (x >> 40) * 2^-24, that is the top 8 bits x >> 56
     * of each xoshiro256** output, seeded by splitmix64. Worked out by an
     * independent Python implementation (whose splitmix64(0) gives the
     * published first value 0xe220a8397b1dcdaf). A change here means tokens
     * are no longer the same as before, on any machine. */
    static const int32_t want0[16] = {153, 191, 26, 106, 187, 255, 108, 137,
                                      219, 235, 29, 17,  27,  167, 126, 75};
    static const int32_t want42[16] = {21,  97,  174, 236, 253, 197, 184, 217,
                                       194, 149, 174, 74,  205, 82,  182, 224};
    float flat[256] = {0};
    vkllm_sampler *a = make(plain(1.0f, 0), 256);
    vkllm_sampler *b = make(plain(1.0f, 42), 256);
    for (int i = 0; i < 16; i++) {
        int32_t ta = vkllm_sampler_sample(a, flat), tb = vkllm_sampler_sample(b, flat);
        CHECK(ta == want0[i], "seed 0 draw %d: %d, want %d", i, (int)ta, (int)want0[i]);
        CHECK(tb == want42[i], "seed 42 draw %d: %d, want %d", i, (int)tb, (int)want42[i]);
    }
    vkllm_sampler_free(a);
    vkllm_sampler_free(b);

    /* same seed, same sequence (with the default filters in play); another
     * seed, another sequence */
    float logits[500];
    for (int i = 0; i < 500; i++)
        logits[i] = 0.3f * test_normal();
    struct vkllm_sampler_params p = vkllm_sampler_defaults(7);
    p.temp = 1.5f;
    a = make(p, 500);
    b = make(p, 500);
    p.seed = 8;
    vkllm_sampler *c = make(p, 500);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 200; i++) {
        int32_t ta = vkllm_sampler_sample(a, logits), tb = vkllm_sampler_sample(b, logits);
        int32_t tc = vkllm_sampler_sample(c, logits);
        same_ab += ta == tb;
        same_ac += ta == tc;
    }
    CHECK(same_ab == 200, "same seed: %d of 200 draws agree", same_ab);
    /* 40 candidates, none above ~5%: two independent streams agree on about
     * 200 * 0.03 = 6 draws; 40 is far out of reach */
    CHECK(same_ac < 40, "seeds 7 and 8: %d of 200 draws agree", same_ac);
    vkllm_sampler_free(a);
    vkllm_sampler_free(b);
    vkllm_sampler_free(c);
}

/* ============================== Frequencies ============================== */

static void test_frequencies(void)
{
    /* Draw N = 200000 times from 8 tokens at temp 0.7 and compare the counts
     * with N * softmax(logits / temp).
     *
     * Chi-square: for a correct sampler the statistic sum (c - Np)^2 / (Np)
     * follows a chi-square law with 7 degrees of freedom (every Np here is
     * in the thousands, far above the usual 5 needed for the approximation).
     * P(chi2_7 > 41) = 8e-7, so a correct sampler fails this with a random
     * seed less than once in a million; and a probability off by 5% of itself
     * on a bucket of p = 0.1 adds N * (0.005)^2 / 0.1 = 50 to the expected
     * statistic, so such an error cannot pass.
     *
     * Per bucket as well: each count is binomial(N, p), and 5 standard
     * deviations, sqrt(N p (1 - p)), is exceeded with probability 5.7e-7.
     *
     * The 2^-24 grid of the uniform draw biases each probability by at most
     * 2^-24 (the interval of a bucket holds its share of grid points, give or
     * take one), a thousand times below the sampling noise sqrt(p / N) ~ 1e-3. */
    const float logits[8] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.25f, 1.5f};
    const float temp = 0.7f;
    const int n = 200000;
    double p[8], z = 0.0;
    for (int i = 0; i < 8; i++)
        z += p[i] = exp((double)logits[i] / temp);
    for (int i = 0; i < 8; i++)
        p[i] /= z;

    vkllm_sampler *s = make(plain(temp, 2024), 8);
    int counts[8];
    draw(s, logits, 8, n, counts);
    vkllm_sampler_free(s);

    double chi2 = 0.0;
    for (int i = 0; i < 8; i++) {
        double expect = n * p[i], sd = sqrt(n * p[i] * (1.0 - p[i]));
        chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
        CHECK(fabs(counts[i] - expect) <= 5.0 * sd, "token %d: %d draws, expected %.0f +- %.0f", i,
              counts[i], expect, 5.0 * sd);
    }
    CHECK(chi2 < 41.0, "chi-square %.2f with 7 degrees of freedom", chi2);
}

/* ============================== Truncation, by hand ============================== */

/* Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs, so softmax at
 * temp 1 gives them back). Expected sets worked out by hand:
 *   top-k 2                 {0,1}
 *   top-p 0.4               {0}       0.5 >= 0.4
 *   top-p 0.7               {0,1}     0.5 < 0.7 <= 0.8
 *   top-p 0.9               {0,1,2}   0.8 < 0.9 <= 0.95
 *   top-p 0.99              all
 *   min-p 1                 {0}       p >= 0.5
 *   min-p 0.5               {0,1}     p >= 0.25
 *   min-p 0.2               {0,1,2}   p >= 0.1
 *   min-p 0.09              all       p >= 0.045
 *   top-k 3, top-p 0.82     {0,1}     renormalized over 3: 0.526 + 0.316 = 0.842 >= 0.82
 *                                     (without renormalizing, 0.8 < 0.82 would keep 3)
 *   top-p 0.82, min-p 0.2   {0,1,2}   top-p on all four: 0.8 < 0.82 <= 0.95 keeps 3, then
 *                                     min-p keeps those >= 0.1: still 3. Min-p first and
 *                                     top-p on its renormalized set would give {0,1}.
 *   top-p 0.9, min-p 0.5    {0,1}     the stricter of the two
 */
struct trunc_case {
    const char *name;
    int32_t top_k;
    float top_p, min_p;
    unsigned char set[4];
};

static void test_truncation(void)
{
    static const struct trunc_case cases[] = {
        {"top-k 2", 2, 1.0f, 0.0f, {1, 1, 0, 0}},
        {"top-k 4", 4, 1.0f, 0.0f, {1, 1, 1, 1}},
        {"top-k 9", 9, 1.0f, 0.0f, {1, 1, 1, 1}},
        {"top-p 0.4", 0, 0.4f, 0.0f, {1, 0, 0, 0}},
        {"top-p 0.7", 0, 0.7f, 0.0f, {1, 1, 0, 0}},
        {"top-p 0.9", 0, 0.9f, 0.0f, {1, 1, 1, 0}},
        {"top-p 0.99", 0, 0.99f, 0.0f, {1, 1, 1, 1}},
        {"top-p 0.7 (sorted path)", 3, 0.7f, 0.0f, {1, 1, 0, 0}},
        {"min-p 1", 0, 1.0f, 1.0f, {1, 0, 0, 0}},
        {"min-p 0.5", 0, 1.0f, 0.5f, {1, 1, 0, 0}},
        {"min-p 0.2", 0, 1.0f, 0.2f, {1, 1, 1, 0}},
        {"min-p 0.09", 0, 1.0f, 0.09f, {1, 1, 1, 1}},
        {"min-p -1", 0, 1.0f, -1.0f, {1, 1, 1, 1}},
        {"top-k 3 top-p 0.82", 3, 0.82f, 0.0f, {1, 1, 0, 0}},
        {"top-p 0.82 min-p 0.2", 0, 0.82f, 0.2f, {1, 1, 1, 0}},
        {"top-p 0.9 min-p 0.5", 0, 0.9f, 0.5f, {1, 1, 0, 0}},
    };
    /* token order shuffled so that the best is not token 0 */
    const int32_t perm[4] = {2, 0, 3, 1}; /* rank r lives at token perm[r] */
    const float prob[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float logits[4];
    for (int r = 0; r < 4; r++)
        logits[perm[r]] = logf(prob[r]);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct trunc_case *tc = &cases[i];
        /* temp 50 flattens the kept set: each member has probability >= 0.24,
         * so in 4000 draws missing one has probability below 1e-400 */
        struct vkllm_sampler_params p = plain(50.0f, 1000 + i);
        p.top_k = tc->top_k;
        p.top_p = tc->top_p;
        p.min_p = tc->min_p;
        vkllm_sampler *s = make(p, 4);
        int counts[4];
        draw(s, logits, 4, 4000, counts);
        unsigned char in_set[4];
        for (int r = 0; r < 4; r++)
            in_set[perm[r]] = tc->set[r];
        check_set(tc->name, counts, in_set, 4);
        vkllm_sampler_free(s);
    }

    /* at temp 1 the kept set is renormalized: top-k 2 gives 0.625 / 0.375.
     * 5 standard deviations of 20000 draws: 5 * sqrt(20000 * 0.625 * 0.375) = 342 */
    struct vkllm_sampler_params p = plain(1.0f, 5);
    p.top_k = 2;
    vkllm_sampler *s = make(p, 4);
    int counts[4];
    draw(s, logits, 4, 20000, counts);
    CHECK(fabs(counts[perm[0]] - 12500.0) <= 342.0, "top-k 2: %d of 20000, want 12500",
          counts[perm[0]]);
    vkllm_sampler_free(s);
}

/* ============================== Truncation, larger ============================== */

/* Random logits over N tokens; the expected sets come from a full sort and
 * double sums here. Each threshold is put halfway between two neighbours
 * (cumulative mass for top-p, geometric mean of weights for min-p), so float
 * rounding in the sampler cannot move the boundary. */
static void test_truncation_random(int32_t n, int32_t k_topp, int32_t k_minp, int32_t top_k)
{
    float *logits = malloc((size_t)n * sizeof *logits);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int *counts = malloc((size_t)n * sizeof *counts);
    unsigned char *in_set = calloc((size_t)n, 1);
    REQUIRE(logits && ids && counts && in_set);
    for (int32_t i = 0; i < n; i++)
        logits[i] = 2.0f * test_normal();
    sort_ids(logits, ids, n);
    int32_t nk = top_k > 0 && top_k < n ? top_k : n; /* after top-k */
    const double max = logits[ids[0]];
    double z = 0.0;
    for (int32_t r = 0; r < nk; r++)
        z += exp(logits[ids[r]] - max);

    /* top-p keeping exactly the best k_topp */
    double cum_before = 0.0;
    for (int32_t r = 0; r < k_topp - 1; r++)
        cum_before += exp(logits[ids[r]] - max);
    double cum_at = cum_before + exp(logits[ids[k_topp - 1]] - max);
    float top_p = (float)((cum_before + cum_at) / 2.0 / z);
    /* min-p keeping exactly the best k_minp */
    float min_p = (float)exp(((logits[ids[k_minp - 1]] - max) + (logits[ids[k_minp]] - max)) / 2);

    char name[128];
    struct {
        float top_p, min_p;
        int32_t keep;
    } runs[3] = {{top_p, 0.0f, k_topp}, {1.0f, min_p, k_minp}, {top_p, min_p, 0}};
    runs[2].keep = k_topp < k_minp ? k_topp : k_minp;
    for (int j = 0; j < 3; j++) {
        struct vkllm_sampler_params p = plain(1e4f, 77 + (uint64_t)j);
        p.top_k = top_k;
        p.top_p = runs[j].top_p;
        p.min_p = runs[j].min_p;
        vkllm_sampler *s = make(p, n);
        /* a flat kept set of K: 40 K draws give each member 40 expected hits
         * (temp 1e4 keeps the weights within 0.2% of each other); a miss has
         * probability e^-40 = 4e-18 */
        int32_t keep = runs[j].keep;
        draw(s, logits, n, 40 * keep, counts);
        memset(in_set, 0, (size_t)n);
        for (int32_t r = 0; r < keep; r++)
            in_set[ids[r]] = 1;
        snprintf(name, sizeof name, "n=%d top_k=%d top_p=%.6f min_p=%.6g (keep %d)", (int)n,
                 (int)top_k, (double)p.top_p, (double)p.min_p, (int)keep);
        check_set(name, counts, in_set, n);
        vkllm_sampler_free(s);
    }
    free(logits);
    free(ids);
    free(counts);
    free(in_set);
}

/* ============================== Repetition penalty ============================== */

static struct vkllm_sampler_params penalty_params(float penalty, int32_t last_n)
{
    struct vkllm_sampler_params p = plain(0.0f, 3);
    p.repeat_penalty = penalty;
    p.repeat_last_n = last_n;
    return p;
}

static void test_penalty(void)
{
    /* positive logits are divided: 2.0 / 2 = 1.0 < 1.5 */
    const float pos[8] = {2.0f, 1.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    vkllm_sampler *s = make(penalty_params(2.0f, 64), 8);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "no history yet");
    /* sample accepted 0 itself */
    CHECK(vkllm_sampler_sample(s, pos) == 1, "0 was just chosen: 2.0 / 2 < 1.5");
    vkllm_sampler_free(s);

    /* negative logits are multiplied: -1.0 * 2 = -2.0 < -1.5 */
    const float neg[4] = {-1.0f, -1.5f, -5.0f, -5.0f};
    s = make(penalty_params(2.0f, 64), 4);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, neg) == 1, "-1.0 * 2 < -1.5");
    vkllm_sampler_free(s);

    /* zero counts as negative (multiplied, stays 0): 0 * 2 = 0 still beats -0.5 */
    const float zero[2] = {0.0f, -0.5f};
    s = make(penalty_params(2.0f, 64), 2);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, zero) == 0, "0 * penalty is 0");
    vkllm_sampler_free(s);

    /* each distinct token once: 2.0 / 1.5 = 1.33 > 1.2, but 2.0 / 1.5^3 = 0.59 */
    const float once[3] = {2.0f, 1.2f, 0.0f};
    s = make(penalty_params(1.5f, 64), 3);
    for (int i = 0; i < 3; i++)
        vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, once) == 0,
          "a token three times in the window is penalized once");
    vkllm_sampler_free(s);

    /* a penalty below 1 boosts: 1.0 / 0.25 = 4 > 2 */
    const float boost[2] = {1.0f, 2.0f};
    s = make(penalty_params(0.25f, 64), 2);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, boost) == 0, "penalty 0.25 boosts a repeated token");
    vkllm_sampler_free(s);

    /* the window: with repeat_last_n = 2, token 0 counts until two more come */
    s = make(penalty_params(2.0f, 2), 8);
    vkllm_sampler_accept(s, 0);
    vkllm_sampler_accept(s, 5);
    CHECK(vkllm_sampler_sample(s, pos) == 1, "window {0,5} holds 0");
    vkllm_sampler_free(s);
    s = make(penalty_params(2.0f, 2), 8);
    vkllm_sampler_accept(s, 0);
    vkllm_sampler_accept(s, 5);
    vkllm_sampler_accept(s, 6);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "window {5,6} has dropped 0");
    /* ... and the ring keeps working after wrapping many times */
    for (int i = 0; i < 101; i++)
        vkllm_sampler_accept(s, 2 + i % 5);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, pos) == 1, "after wrapping, 0 is in the window again");
    /* that sample accepted 1: the window is now {0,1} */
    CHECK(vkllm_sampler_sample(s, pos) == 0, "2/2 = 1.0 vs 1.5/2 = 0.75");
    vkllm_sampler_free(s);

    /* repeat_last_n = 0 and penalty 1 are both off */
    s = make(penalty_params(2.0f, 0), 8);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "repeat_last_n 0 is off");
    vkllm_sampler_free(s);
    s = make(penalty_params(1.0f, 64), 8);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "penalty 1 is off");
    vkllm_sampler_free(s);

    /* also when sampling: at temp 0.01 token 0 wins by 0.1 / 0.01 = 10 nats;
     * penalized to 5 / 1.5 = 3.33 it loses by 157 */
    const float close[4] = {5.0f, 4.9f, -10.0f, -10.0f};
    struct vkllm_sampler_params p = penalty_params(1.5f, 1);
    p.temp = 0.01f;
    s = make(p, 4);
    int32_t seq[6];
    for (int i = 0; i < 6; i++)
        seq[i] = vkllm_sampler_sample(s, close);
    /* window of one: 0, then 1 (0 penalized), then 0 (1 penalized), ... */
    for (int i = 0; i < 6; i++)
        CHECK(seq[i] == i % 2, "draw %d is %d", i, (int)seq[i]);
    vkllm_sampler_free(s);

    /* ids outside the vocabulary are ignored, not a crash */
    s = make(penalty_params(2.0f, 4), 8);
    vkllm_sampler_accept(s, -1);
    vkllm_sampler_accept(s, 8);
    vkllm_sampler_accept(s, 1 << 30);
    CHECK(vkllm_sampler_sample(s, pos) == 0);
    vkllm_sampler_free(s);
}

/* vkllm_sampler_reset empties the penalties' history and leaves the RNG: chat
 * and the window gave a reply after /reset or in a new chat the old chat's
 * tokens as history (probe 7, C-1). */
static void test_reset(void)
{
    const float pos[8] = {2.0f, 1.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    vkllm_sampler *s = make(penalty_params(2.0f, 3), 8);
    vkllm_sampler_accept(s, 0);
    vkllm_sampler_accept(s, 4);
    vkllm_sampler_reset(s);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "0 is still penalized after the reset");
    /* the ring after a reset: 0 (just sampled), 5, 6 fill it; 7 pushes 0 out */
    vkllm_sampler_reset(s);
    vkllm_sampler_accept(s, 0);
    vkllm_sampler_accept(s, 5);
    vkllm_sampler_accept(s, 6);
    CHECK(vkllm_sampler_sample(s, pos) == 1, "the window {0,5,6} holds 0");
    vkllm_sampler_reset(s);
    vkllm_sampler_accept(s, 0);
    for (int i = 0; i < 3; i++)
        vkllm_sampler_accept(s, 5 + i);
    CHECK(vkllm_sampler_sample(s, pos) == 0, "the window {5,6,7} has dropped 0");
    vkllm_sampler_free(s);
    vkllm_sampler_reset(NULL);

    /* the RNG goes on: two samplers of one seed, one reset between draws,
     * draw the same tokens (no penalty here, so only the RNG decides) */
    const float flat[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    vkllm_sampler *a = make(plain(1.0f, 11), 4), *b = make(plain(1.0f, 11), 4);
    bool same = true;
    for (int i = 0; i < 32; i++) {
        if (i == 16) vkllm_sampler_reset(b);
        same &= vkllm_sampler_sample(a, flat) == vkllm_sampler_sample(b, flat);
    }
    CHECK(same, "a reset changed the random draws");
    vkllm_sampler_free(a);
    vkllm_sampler_free(b);
}

/* OpenAI's additive penalties, as llama.cpp applies them: after the
 * repetition penalty, each distinct token of the window loses count *
 * frequency_penalty + presence_penalty. */
static void test_additive_penalties(void)
{
    const float l[4] = {3.0f, 2.5f, 2.2f, -1.0f};
    struct vkllm_sampler_params p = penalty_params(1.0f, 64);
    p.presence_penalty = 0.6f; /* 3.0 - 0.6 = 2.4 < 2.5 */
    vkllm_sampler *s = make(p, 4);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, l) == 1, "presence: 3.0 - 0.6 < 2.5");
    vkllm_sampler_free(s);

    /* frequency counts every occurrence: 3.0 - 2 * 0.2 = 2.6 > 2.5, then
     * 3.0 - 3 * 0.2 = 2.4 < 2.5 */
    p = penalty_params(1.0f, 64);
    p.frequency_penalty = 0.2f;
    s = make(p, 4);
    vkllm_sampler_accept(s, 0);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, l) == 0, "frequency: 3.0 - 2 * 0.2 > 2.5");
    /* that sample accepted 0: three in the window */
    CHECK(vkllm_sampler_sample(s, l) == 1, "frequency: 3.0 - 3 * 0.2 < 2.5");
    vkllm_sampler_free(s);

    /* after the repetition penalty: 3.0 / 1.2 = 2.5, minus 0.05 < 2.5 */
    p = penalty_params(1.2f, 64);
    p.presence_penalty = 0.05f;
    s = make(p, 4);
    vkllm_sampler_accept(s, 0);
    CHECK(vkllm_sampler_sample(s, l) == 1, "repetition then presence");
    vkllm_sampler_free(s);

    /* negative values boost: 2.2 + 1.0 > 3.0; outside the window, nothing */
    p = penalty_params(1.0f, 1);
    p.presence_penalty = -1.0f;
    s = make(p, 4);
    vkllm_sampler_accept(s, 2);
    CHECK(vkllm_sampler_sample(s, l) == 2, "a negative presence penalty boosts");
    vkllm_sampler_accept(s, 3); /* the window of one now holds 3 only */
    CHECK(vkllm_sampler_sample(s, l) == 0, "2 left the window");
    vkllm_sampler_free(s);
}

/* ============================== Special logits ============================== */

static void test_special_logits(void)
{
    const float nan_ = NAN, inf = INFINITY;
    /* NaN is -inf: never chosen while anything else is possible */
    const float some_nan[4] = {nan_, 1.0f, nan_, 0.5f};
    vkllm_sampler *s = make(plain(0.0f, 1), 4);
    CHECK(vkllm_sampler_sample(s, some_nan) == 1);
    vkllm_sampler_free(s);
    s = make(plain(1.0f, 1), 4);
    int counts[5];
    draw(s, some_nan, 4, 2000, counts);
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[1] > 0 && counts[3] > 0);
    vkllm_sampler_free(s);

    /* nothing possible: token 0, in both modes */
    const float none[3] = {nan_, -inf, nan_};
    for (int greedy = 0; greedy < 2; greedy++) {
        struct vkllm_sampler_params p = vkllm_sampler_defaults(1);
        p.temp = greedy ? 0.0f : 0.8f;
        s = make(p, 3);
        CHECK(vkllm_sampler_sample(s, none) == 0, "all NaN/-inf, greedy=%d", greedy);
        vkllm_sampler_free(s);
    }

    /* +inf tokens share everything; greedy takes the lowest */
    const float two_inf[5] = {0.0f, inf, 1e30f, inf, nan_};
    s = make(plain(0.0f, 1), 5);
    CHECK(vkllm_sampler_sample(s, two_inf) == 1);
    vkllm_sampler_free(s);
    struct vkllm_sampler_params p = vkllm_sampler_defaults(4); /* top-k, top-p, min-p on */
    p.temp = 1.0f;
    s = make(p, 5);
    draw(s, two_inf, 5, 4000, counts);
    /* 4000 fair coin flips: 5 sd = 158 */
    CHECK(counts[1] + counts[3] == 4000 && abs(counts[1] - 2000) < 158, "+inf: %d / %d", counts[1],
          counts[3]);
    vkllm_sampler_free(s);

    /* a penalized +inf stays +inf; a penalized -inf stays -inf */
    s = make(penalty_params(2.0f, 8), 5);
    vkllm_sampler_accept(s, 1);
    CHECK(vkllm_sampler_sample(s, two_inf) == 1);
    vkllm_sampler_free(s);

    /* the caller's logits are not modified, penalty or not */
    float logits[64], copy[64];
    for (int i = 0; i < 64; i++)
        logits[i] = test_normal();
    logits[3] = nan_;
    logits[9] = inf;
    logits[10] = -inf;
    memcpy(copy, logits, sizeof logits);
    p = vkllm_sampler_defaults(9);
    p.repeat_penalty = 1.3f;
    p.top_k = 0;
    s = make(p, 64);
    for (int i = 0; i < 64; i++)
        vkllm_sampler_accept(s, i);
    for (int i = 0; i < 10; i++)
        vkllm_sampler_sample(s, logits);
    CHECK(memcmp(copy, logits, sizeof logits) == 0, "logits were modified");
    vkllm_sampler_free(s);
}

/* ============================== Parameters ============================== */

static void expect_invalid(const char *what, struct vkllm_sampler_params p, int32_t n_vocab)
{
    vkllm_sampler *s = (vkllm_sampler *)&p; /* must be reset to NULL */
    struct vkllm_error err = {0};
    int rc = vkllm_sampler_create(&p, n_vocab, &s, &err);
    CHECK(rc == VKLLM_E_INVALID && err.code == VKLLM_E_INVALID, "%s: rc %d", what, rc);
    CHECK(s == NULL, "%s: out not NULL", what);
    CHECK(strstr(err.msg, "sampler: ") == err.msg, "%s: message '%s'", what, err.msg);
    if (rc == VKLLM_OK) vkllm_sampler_free(s);
}

static void test_params(void)
{
    struct vkllm_sampler_params d = vkllm_sampler_defaults(123);
    CHECK(d.temp == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f &&
          d.repeat_penalty == 1.0f && d.repeat_last_n == 64 && d.seed == 123);

    struct vkllm_sampler_params p;
#define BAD(field, value)                                                                          \
    do {                                                                                           \
        p = d;                                                                                     \
        p.field = value;                                                                           \
        expect_invalid(#field " = " #value, p, 100);                                               \
    } while (0)
    BAD(temp, NAN);
    BAD(temp, INFINITY);
    BAD(temp, -INFINITY);
    BAD(top_p, 0.0f);
    BAD(top_p, -0.5f);
    BAD(top_p, 1.5f);
    BAD(top_p, NAN);
    BAD(min_p, NAN);
    BAD(min_p, 1.01f);
    BAD(repeat_penalty, 0.0f);
    BAD(repeat_penalty, -1.1f);
    BAD(repeat_penalty, NAN);
    BAD(repeat_penalty, INFINITY);
    BAD(repeat_last_n, -1);
    BAD(frequency_penalty, NAN);
    BAD(presence_penalty, INFINITY);
#undef BAD
    expect_invalid("n_vocab = 0", d, 0);
    expect_invalid("n_vocab = -5", d, -5);

    struct vkllm_error err = {0};
    vkllm_sampler *s = NULL;
    CHECK(vkllm_sampler_create(NULL, 10, &s, &err) == VKLLM_E_INVALID && s == NULL);
    CHECK(vkllm_sampler_create(&d, 10, NULL, &err) == VKLLM_E_INVALID);
    CHECK(vkllm_sampler_create(&d, 0, &s, NULL) == VKLLM_E_INVALID, "err may be NULL");

    /* the edges that are allowed */
    p = d;
    p.temp = -1.0f;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.top_k = -3;
    p.repeat_last_n = 0;
    s = make(p, 1);
    float one = 0.0f;
    CHECK(vkllm_sampler_sample(s, &one) == 0, "a vocabulary of one");
    CHECK(vkllm_sampler_sample(NULL, &one) < 0 && vkllm_sampler_sample(s, NULL) < 0);
    vkllm_sampler_free(s);
    vkllm_sampler_free(NULL);
    vkllm_sampler_accept(NULL, 0);
}

/* ============================== Large vocabularies ============================== */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_large_vocab(void)
{
    const int32_t n = 256 * 1024;
    float *logits = malloc((size_t)n * sizeof *logits);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    REQUIRE(logits && ids);
    for (int32_t i = 0; i < n; i++)
        logits[i] = 3.0f * test_normal();
    sort_ids(logits, ids, n);

    /* defaults: the choice is one of the best 40, and passes min-p */
    vkllm_sampler *s = make(vkllm_sampler_defaults(11), n);
    double t0 = now_ms();
    const int reps = 50;
    for (int i = 0; i < reps; i++) {
        int32_t t = vkllm_sampler_sample(s, logits);
        int32_t rank = 0;
        while (rank < n && ids[rank] != t)
            rank++;
        CHECK(rank < 40, "default sampling chose rank %d", (int)rank);
        /* min-p 0.05 at temp 1 (before the 0.8 temperature) */
        CHECK(expf(logits[t] - logits[ids[0]]) >= 0.05f * 0.999f);
    }
    double t_default = (now_ms() - t0) / reps;
    vkllm_sampler_free(s);

    struct vkllm_sampler_params p = plain(0.0f, 1);
    s = make(p, n);
    CHECK(vkllm_sampler_sample(s, logits) == ids[0], "greedy on 256k");
    t0 = now_ms(); /* after the first call, which faults in the candidate buffer */
    for (int i = 0; i < 10; i++)
        vkllm_sampler_sample(s, logits);
    double t_greedy = (now_ms() - t0) / 10;
    vkllm_sampler_free(s);

    /* top-p alone over the whole vocabulary: the selection path */
    p = plain(1.0f, 12);
    p.top_p = 0.95f;
    s = make(p, n);
    t0 = now_ms();
    for (int i = 0; i < 10; i++)
        vkllm_sampler_sample(s, logits);
    double t_topp = (now_ms() - t0) / 10;
    vkllm_sampler_free(s);

    /* equal logits: ties go by id, so top-p 0.5 keeps ids below n/2 (the
     * cumulative mass of a prefix of m is m / n, exact in double) */
    float *flat = calloc((size_t)n, sizeof *flat);
    REQUIRE(flat);
    p = plain(1.0f, 13);
    p.top_p = 0.5f;
    s = make(p, n);
    int below = 0;
    for (int i = 0; i < 200; i++)
        below += vkllm_sampler_sample(s, flat) < n / 2;
    CHECK(below == 200, "flat top-p 0.5: %d of 200 below n/2", below);
    vkllm_sampler_free(s);

    /* sorted logits, the worst case for a heap of the best k */
    for (int32_t i = 0; i < n; i++)
        flat[i] = (float)i * 1e-4f;
    p = vkllm_sampler_defaults(14);
    s = make(p, n);
    for (int i = 0; i < 10; i++)
        CHECK(vkllm_sampler_sample(s, flat) >= n - 40);
    vkllm_sampler_free(s);
    free(flat);

    fprintf(stderr, "256k vocab: defaults %.2f ms, greedy %.2f ms, top-p only %.2f ms per token\n",
            t_default, t_greedy, t_topp);
    free(logits);
    free(ids);
}

int main(void)
{
    test_greedy();
    test_seeds();
    test_frequencies();
    test_truncation();
    /* the selection path (top_k off) with a vocabulary big enough to partition,
     * and the sorted path after top-k */
    test_truncation_random(5000, 37, 25, 0);
    test_truncation_random(5000, 12, 60, 0);
    test_truncation_random(5000, 30, 20, 1000);
    test_truncation_random(20000, 20, 30, 0);
    test_penalty();
    test_reset();
    test_additive_penalties();
    test_special_logits();
    test_params();
    test_large_vocab();
    return TEST_REPORT();
}
