/* test_row_pool.c: the thread pool over row chunks that quantize and
 * export-lora share (engine/core/row_pool.h). With odd sizes (1,000 rows in
 * chunks of 7, on 1, 3 and 8 threads): every row is done exactly once, in
 * chunks of at most 7; a failing chunk stops the job and its status and
 * message come back; the progress sees the rows done, and a stop it asks for
 * ends the job with *stopped set and no error. */
#include "core/row_pool.h"
#include "testhelp.h"

#include <stdatomic.h>
#include <string.h>

#define N_ROWS 1000
#define CHUNK  7

struct rows {
    atomic_int done[N_ROWS]; /* times row I was done */
    atomic_int bad_chunks;   /* chunks that are not whole CHUNKs of rows (but the last) */
    int fail_at;             /* the row whose chunk fails; -1: none */
    uint64_t stop_after;     /* the progress stops once this many rows are done; 0: never */
    uint64_t last_seen;      /* the progress's last count */
};

static int work(void *user, void *scratch, uint64_t r0, uint64_t rows, struct vkllm_error *err)
{
    struct rows *r = user;
    if (rows == 0 || rows > CHUNK || (r0 % CHUNK) != 0) atomic_fetch_add(&r->bad_chunks, 1);
    /* the scratch is the thread's own: fill it all, as a real chunk does */
    memset(scratch, 0xab, CHUNK * sizeof(float));
    for (uint64_t i = r0; i < r0 + rows; i++)
        atomic_fetch_add(&r->done[i], 1);
    if (r->fail_at >= 0 && (uint64_t)r->fail_at >= r0 && (uint64_t)r->fail_at < r0 + rows)
        return vkllm_fail(err, VKLLM_E_FORMAT, "row %d is bad", r->fail_at);
    return VKLLM_OK;
}

static bool goes_on(void *user, uint64_t rows_done)
{
    struct rows *r = user;
    r->last_seen = rows_done;
    return !r->stop_after || rows_done < r->stop_after;
}

static int run(struct rows *r, int n_threads, bool *stopped, struct vkllm_error *err)
{
    const struct row_pool job = {.n_rows = N_ROWS,
                                 .chunk = CHUNK,
                                 .n_threads = n_threads,
                                 .scratch_bytes = CHUNK * sizeof(float),
                                 .work = work,
                                 .goes_on = goes_on,
                                 .user = r};
    return row_pool_run(&job, stopped, err);
}

int main(void)
{
    static const int threads[] = {1, 3, 8};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        static struct rows r;
        struct vkllm_error err = {0};
        bool stopped = true;

        memset(&r, 0, sizeof r);
        r.fail_at = -1;
        CHECK(run(&r, threads[t], &stopped, &err) == VKLLM_OK, "%s", err.msg);
        CHECK(!stopped);
        int wrong = 0;
        for (int i = 0; i < N_ROWS; i++)
            wrong += atomic_load(&r.done[i]) != 1;
        CHECK(wrong == 0, "%d threads: %d rows not done exactly once", threads[t], wrong);
        CHECK(atomic_load(&r.bad_chunks) == 0, "%d threads: a chunk past its bounds", threads[t]);
        memset(&r, 0, sizeof r);
        r.fail_at = 500;
        err = (struct vkllm_error){0};
        CHECK(run(&r, threads[t], &stopped, &err) == VKLLM_E_FORMAT);
        CHECK(!strcmp(err.msg, "row 500 is bad"), "%d threads: '%s'", threads[t], err.msg);
    }
    /* the progress: on the calling thread, which with others may get no chunk
     * at all (they are fast here), so alone: it sees every row, and a stop
     * ends the job after the chunk at hand */
    static struct rows r;
    struct vkllm_error err = {0};
    bool stopped = true;
    r.fail_at = -1;
    CHECK(run(&r, 1, &stopped, &err) == VKLLM_OK && !stopped && r.last_seen == N_ROWS);
    memset(&r, 0, sizeof r);
    r.fail_at = -1;
    r.stop_after = 3 * CHUNK;
    CHECK(run(&r, 1, &stopped, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(stopped && r.last_seen == 3 * CHUNK);
    int n_done = 0;
    for (int i = 0; i < N_ROWS; i++)
        n_done += atomic_load(&r.done[i]);
    CHECK(n_done == 3 * CHUNK, "%d rows done after a stop at %d", n_done, 3 * CHUNK);
    CHECK(row_pool_threads(5) == 5);
    CHECK(row_pool_threads(100000) == ROW_POOL_MAX_THREADS);
    CHECK(row_pool_threads(0) >= 1);
    return TEST_REPORT();
}
