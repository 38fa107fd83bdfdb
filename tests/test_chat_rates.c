/* test_chat_rates.c: the chat window's status bar numbers (app/chat/rates.c).
 *
 * Generation speed counts the tokens after the first over the time from the
 * first to the last, as llama.cpp does (the first token's logits come from the
 * prompt: counting it, or timing from the request, overstates or understates
 * the decode rate); bandwidth is the bytes those decode steps read over the
 * same time; the bytes a step reads, counted from the bundled model's tensor
 * table (one row of token_embd, all of it when tied to the output; the KV
 * cache in half floats, sliding-window layers up to their window); the peak
 * bandwidth setting's parsing. Host code only.
 */
#include "rates.h"
#include "testhelp.h"

#include <math.h>
#include <string.h>

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fabs(b) + 1e-12;
}

static void check_meter(void)
{
    struct gen_meter m = {0};
    CHECK(gen_meter_tps(&m) == 0 && gen_meter_gbps(&m) == 0);
    /* the first token, 100 ms after the request: its step was the prompt's */
    gen_meter_token(&m, 100, 5000000000ull);
    CHECK(gen_meter_tps(&m) == 0 && gen_meter_gbps(&m) == 0, "one token is no rate yet");
    gen_meter_token(&m, 150, 1000000);
    gen_meter_token(&m, 200, 1000000);
    gen_meter_token(&m, 300, 2000000);
    /* 3 tokens after the first in 200 ms; 4 / 0.2 would count the prompt's token */
    CHECK(near(gen_meter_tps(&m), 15), "%g tok/s, not 15", gen_meter_tps(&m));
    CHECK(near(gen_meter_gbps(&m), 4e6 / 0.2 / 1e9), "%g GB/s", gen_meter_gbps(&m));
    /* two tokens in the same millisecond: no division by zero */
    struct gen_meter z = {0};
    gen_meter_token(&z, 5, 0);
    gen_meter_token(&z, 5, 10);
    CHECK(gen_meter_tps(&z) == 0 && gen_meter_gbps(&z) == 0);
}

static void check_bytes(void)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g;
    REQUIRE_OK(vkllm_gguf_open(VKLLM_TEST_DATA "/stories260K.gguf", &g, &err), "%s", err.msg);
    struct vkllm_hparams hp;
    REQUIRE_OK(vkllm_hparams_read(g, &hp, &err), "%s", err.msg);
    uint64_t all = 0, embd = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        all += t->size;
        if (t->name.len == 17 && !memcmp(t->name.ptr, "token_embd.weight", 17)) embd = t->size;
    }
    /* 64 x 512 F32, an output.weight of its own: a step reads one 256-byte row */
    CHECK(embd == 131072 && !hp.tied_output, "token_embd %llu bytes", (unsigned long long)embd);
    struct decode_bytes d;
    REQUIRE_OK(decode_bytes_of(g, &hp, &d, &err), "%s", err.msg);
    CHECK(d.weights == all - embd + 256, "%llu of %llu", (unsigned long long)d.weights,
          (unsigned long long)all);
    /* 5 layers x K and V x 4 heads x 8 dims x 2 bytes */
    CHECK(d.kv_per_pos == 640 && d.kv_swa_per_pos == 0 && d.window == 0);
    CHECK(decode_bytes_at(&d, 0) == d.weights + 640);
    CHECK(decode_bytes_at(&d, 9) == d.weights + 6400);

    hp.tied_output = true; /* token_embd is the output matrix too: all of it */
    REQUIRE_OK(decode_bytes_of(g, &hp, &d, &err), "%s", err.msg);
    CHECK(d.weights == all);
    hp.tied_output = false;
    hp.sliding_window = 4; /* two of the five layers see 4 positions at most */
    hp.n_swa_layers = 2;
    REQUIRE_OK(decode_bytes_of(g, &hp, &d, &err), "%s", err.msg);
    CHECK(d.kv_per_pos == 384 && d.kv_swa_per_pos == 256 && d.window == 4);
    CHECK(decode_bytes_at(&d, 2) == d.weights + 3 * 640);
    CHECK(decode_bytes_at(&d, 9) == d.weights + 10 * 384 + 4 * 256);
    vkllm_gguf_close(g);
}

static void check_peak(void)
{
    struct vkllm_error err = {0};
    double v = -1;
    CHECK(rates_peak_gbps(NULL, &v, &err) == VKLLM_OK && v == 0, "unset: unknown");
    CHECK(rates_peak_gbps("", &v, &err) == VKLLM_OK && v == 0);
    CHECK(rates_peak_gbps("4800", &v, &err) == VKLLM_OK && v == 4800);
    CHECK(rates_peak_gbps("51.2", &v, &err) == VKLLM_OK && near(v, 51.2));
    const char *bad[] = {"0", "-3", "fast", "12GB", "1e9", "nan", "inf", " "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(rates_peak_gbps(bad[i], &v, &err) == VKLLM_E_INVALID && v == 0 &&
                  strstr(err.msg, "VKLLM_PEAK_GBPS"),
              "'%s': %s", bad[i], err.msg);
    }
}

int main(void)
{
    check_meter();
    check_bytes();
    check_peak();
    return TEST_REPORT();
}
