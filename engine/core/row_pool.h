/* row_pool.h: a matrix's rows converted on every core (quantize, export-lora).
 * The rows are cut into chunks that the threads take in turn, each with a
 * scratch buffer of its own; the calling thread works too and, after each of
 * its chunks, asks whether to go on, so that a stop (a signal) is seen within
 * a chunk, not after a whole matrix. Rows must be independent of one another:
 * then the result does not depend on the number of threads. Internal to the
 * engine. */
#ifndef VKLLM_ROW_POOL_H
#define VKLLM_ROW_POOL_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROW_POOL_MAX_THREADS 256

struct row_pool {
    uint64_t n_rows;      /* rows to do */
    uint64_t chunk;       /* rows a thread takes at a time, at least 1 */
    int n_threads;        /* the calling thread included (row_pool_threads) */
    size_t scratch_bytes; /* each thread's buffer, for one chunk */
    /* Does ROWS rows from R0 with SCRATCH, on any of the threads, beside the
     * others; a negative status (ERR filled) stops the job. */
    int (*work)(void *user, void *scratch, uint64_t r0, uint64_t rows, struct vkllm_error *err);
    /* On the calling thread after each of its chunks, with the rows done by
     * all the threads so far: false stops the job. May be NULL. */
    bool (*goes_on)(void *user, uint64_t rows_done);
    void *user;
};

/* The threads to run with: ASKED if it is positive, else one a core; at
 * most ROW_POOL_MAX_THREADS. */
int row_pool_threads(int asked);

/* Runs the job and returns when no thread works any longer: VKLLM_OK, with
 * *STOPPED true when goes_on stopped it; the first failure of WORK, with its
 * error; or VKLLM_E_NOMEM (the calling thread's buffer; a thread that gets no
 * buffer takes no rows, and the others do them). */
int row_pool_run(const struct row_pool *job, bool *stopped, struct vkllm_error *err);

#endif
