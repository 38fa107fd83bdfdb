/* row_pool.c: a matrix's rows converted on every core (see row_pool.h). */
#include "row_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* The job's state, shared by its threads. */
struct pool {
    const struct row_pool *job;
    pthread_mutex_t lock;
    uint64_t next, done; /* under lock: the first row no thread has taken; rows done */
    bool stop;           /* under lock: stopped, or a chunk failed */
    int rc;              /* under lock: the first failure, and why */
    struct vkllm_error err;
};

/* Takes the next chunk: false when none is left or the job was stopped. */
static bool take(struct pool *p, uint64_t *r0, uint64_t *rows)
{
    pthread_mutex_lock(&p->lock);
    const uint64_t n = p->job->n_rows, chunk = p->job->chunk;
    const bool ok = !p->stop && p->next < n;
    if (ok) {
        *r0 = p->next;
        *rows = n - *r0 < chunk ? n - *r0 : chunk;
        p->next += *rows;
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

/* Does a chunk; returns the rows done by all the threads by then. */
static uint64_t run_chunk(struct pool *p, void *scratch, uint64_t r0, uint64_t rows)
{
    struct vkllm_error e = {0};
    const int rc = p->job->work(p->job->user, scratch, r0, rows, &e);
    pthread_mutex_lock(&p->lock);
    if (rc && !p->rc) {
        p->rc = rc;
        p->err = e;
    }
    p->stop |= rc != 0;
    const uint64_t done = p->done += rows;
    pthread_mutex_unlock(&p->lock);
    return done;
}

static void *worker(void *arg)
{
    struct pool *p = arg;
    void *scratch = malloc(p->job->scratch_bytes ? p->job->scratch_bytes : 1);
    uint64_t r0, rows;
    while (scratch && take(p, &r0, &rows))
        run_chunk(p, scratch, r0, rows);
    free(scratch);
    return NULL;
}

int row_pool_threads(int asked)
{
    long n = asked > 0 ? asked : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > ROW_POOL_MAX_THREADS ? ROW_POOL_MAX_THREADS : (int)n;
}

int row_pool_run(const struct row_pool *job, bool *stopped, struct vkllm_error *err)
{
    *stopped = false;
    struct pool p = {.job = job};
    void *own = malloc(job->scratch_bytes ? job->scratch_bytes : 1);
    if (!own || pthread_mutex_init(&p.lock, NULL)) {
        free(own);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    }
    const uint64_t n_chunks = (job->n_rows + job->chunk - 1) / job->chunk;
    const int n_threads = row_pool_threads(job->n_threads);
    pthread_t threads[ROW_POOL_MAX_THREADS];
    int n_started = 0;
    for (int i = 1; i < n_threads && (uint64_t)i < n_chunks; i++)
        n_started += pthread_create(&threads[n_started], NULL, worker, &p) == 0;

    uint64_t r0, rows;
    while (take(&p, &r0, &rows)) {
        const uint64_t done = run_chunk(&p, own, r0, rows);
        if (job->goes_on && !job->goes_on(job->user, done)) {
            pthread_mutex_lock(&p.lock);
            p.stop = *stopped = true;
            pthread_mutex_unlock(&p.lock);
        }
    }
    for (int i = 0; i < n_started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&p.lock);
    free(own);
    if (p.rc && err) *err = p.err;
    return p.rc;
}
