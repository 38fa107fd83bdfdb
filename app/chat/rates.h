/* rates.h: the status bar's numbers, counted as llama.cpp counts them.
 *
 * Generation speed is the tokens decoded after the first over the time from
 * the first token to the last: the first token is sampled from the prompt's
 * logits, so its time is the time to first token, not generation
 * (llama-bench's tg and llama_perf's eval time count the same way).
 * Achieved memory bandwidth is what those decode steps read (the weights a
 * step touches and the KV cache it attends over) over that same time.
 *
 *   struct decode_bytes d; decode_bytes_of(gguf, hparams, &d, &err);
 *   struct gen_meter m = {0};
 *   each sampled token: gen_meter_token(&m, now_ms, decode_bytes_at(&d, pos));
 *   gen_meter_tps(&m), gen_meter_gbps(&m)
 */
#ifndef VKLLM_CHAT_RATES_H
#define VKLLM_CHAT_RATES_H

#include "vkllm.h"

#include <stdint.h>

/* What one decode step of a model reads from device memory. */
struct decode_bytes {
    /* every weight tensor, but of the token (and position) embeddings only
     * the row looked up, unless token_embd is also the output matrix */
    uint64_t weights;
    uint64_t kv_per_pos;     /* K and V of one cached position, every full-attention layer */
    uint64_t kv_swa_per_pos; /* the same for the sliding-window layers */
    uint32_t window;         /* their window in positions (0: none) */
};

/* Counts what a decode step of G's model (hyperparameters HP) reads; the KV
 * cache holds half floats. VKLLM_E_FORMAT for a tensor table it cannot count. */
int decode_bytes_of(const vkllm_gguf *g, const struct vkllm_hparams *hp, struct decode_bytes *out,
                    struct vkllm_error *err);
/* Bytes read by the decode step of the token at position POS (it attends
 * over POS + 1 positions). */
uint64_t decode_bytes_at(const struct decode_bytes *d, uint32_t pos);

/* One reply's generation: fed each sampled token's time. */
struct gen_meter {
    uint32_t n;     /* tokens sampled, the first included */
    double t_first; /* ms: when the first was sampled */
    double t_last;  /* ms: when the last was */
    uint64_t bytes; /* read by the decode steps after the first token */
};

/* A token was sampled at T_MS; STEP_BYTES is what the decode step that made
 * its logits read (ignored for the first token: its logits are the prompt's). */
void gen_meter_token(struct gen_meter *m, double t_ms, uint64_t step_bytes);
/* Tokens after the first per second from the first to the last; 0 until two. */
double gen_meter_tps(const struct gen_meter *m);
/* Those decode steps' bytes per second, in GB/s (10^9); 0 until two tokens. */
double gen_meter_gbps(const struct gen_meter *m);

/* The device's peak memory bandwidth in GB/s from TEXT (VKLLM_PEAK_GBPS: Vulkan
 * reports none): 0 for NULL or "" (unknown); VKLLM_E_INVALID unless a number
 * from 0.001 to 100000. */
int rates_peak_gbps(const char *text, double *out, struct vkllm_error *err);

#endif
