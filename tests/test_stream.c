/* test_stream.c: the streaming detokenizer (engine/text/stream.c).
 *
 * Guards the bugs it was written for: a multi-byte character split across
 * tokens was printed byte by byte, a piece longer than 256 bytes was dropped,
 * and stop strings did not exist (a partial one must never be printed). Then
 * a random test: random texts cut into random pieces, with random stop
 * strings, must stream exactly the repaired text up to the first stop string,
 * every step a prefix of it. Last, end-of-generation tokens of a real
 * vocabulary (Llama 3's <|eot_id|> and <|end_of_text|>). Host code only.
 */
#include "rng.h"
#include "testhelp.h"
#include "vkllm.h"

#include <string.h>

/* Streams PIECES (NULL-terminated) with the stop strings STOPS (NULL-
 * terminated) and returns what was printed, with the final state. */
static const char *run(const char *const *pieces, const char *const *stops, int *state)
{
    static char printed[4096];
    size_t n = 0;
    vkllm_stream *s;
    REQUIRE(vkllm_stream_create(NULL, false, &s, NULL) == VKLLM_OK);
    for (size_t i = 0; stops && stops[i]; i++)
        REQUIRE(vkllm_stream_add_stop(s, stops[i], NULL) == VKLLM_OK);
    const char *text;
    size_t len;
    *state = VKLLM_STREAM_MORE;
    for (size_t i = 0; pieces[i] && *state == VKLLM_STREAM_MORE; i++) {
        *state = vkllm_stream_push_text(s, pieces[i], strlen(pieces[i]), &text, &len);
        REQUIRE(*state >= 0 && n + len < sizeof printed);
        memcpy(printed + n, text, len);
        n += len;
    }
    if (*state == VKLLM_STREAM_MORE) {
        vkllm_stream_finish(s, &text, &len);
        memcpy(printed + n, text, len);
        n += len;
        *state = VKLLM_STREAM_EOG; /* the reply is over */
    }
    printed[n] = 0;
    size_t rlen;
    CHECK(!strcmp(vkllm_stream_reply(s, &rlen), printed) && rlen == n,
          "the reply is what was printed");
    vkllm_stream_free(s);
    return printed;
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_utf8(void)
{
    int st;
    /* é (C3 A9) and 😀 (F0 9F 98 80) split byte by byte */
    vkllm_stream *s;
    const char *text;
    size_t len;
    REQUIRE(vkllm_stream_create(NULL, false, &s, NULL) == VKLLM_OK);
    vkllm_stream_push_text(s, "caf\xc3", 4, &text, &len);
    CHECK(len == 3 && !memcmp(text, "caf", 3), "the lead byte of é waits");
    vkllm_stream_push_text(s, "\xa9", 1, &text, &len);
    CHECK(len == 2 && !memcmp(text, "\xc3\xa9", 2), "é comes whole");
    const char emoji[] = "\xf0\x9f\x98\x80";
    for (int i = 0; i < 3; i++) {
        vkllm_stream_push_text(s, emoji + i, 1, &text, &len);
        CHECK(len == 0, "byte %d of 4 is held", i + 1);
    }
    vkllm_stream_push_text(s, emoji + 3, 1, &text, &len);
    CHECK(len == 4 && !memcmp(text, emoji, 4));
    vkllm_stream_free(s);

    /* a piece of any length comes through whole */
    static char big[3001];
    memset(big, 'x', 3000);
    CHECK(strlen(run(LIST(big), NULL, &st)) == 3000 && st == VKLLM_STREAM_EOG);

    /* bytes that can never be valid become U+FFFD, and the byte after a
     * character cut short starts afresh */
    CHECK(!strcmp(run(LIST("a\xff", "b"), NULL, &st), "a\xef\xbf\xbd"
                                                      "b"));
    CHECK(!strcmp(run(LIST("\xc3", "a"), NULL, &st), "\xef\xbf\xbd"
                                                     "a"));
    CHECK(!strcmp(run(LIST("\xe2\x82", "\xc3\xa9"), NULL, &st), "\xef\xbf\xbd\xc3\xa9"));
    CHECK(!strcmp(run(LIST("\xed\xa0\x80"), NULL, &st), /* a surrogate */
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    /* an incomplete character at the end */
    CHECK(!strcmp(run(LIST("ok\xe2\x82"), NULL, &st), "ok\xef\xbf\xbd"));
}

static void test_stops(void)
{
    int st;
    /* across three pieces; the text before it printed, none of it */
    CHECK(!strcmp(run(LIST("Hello <", "/en", "d> more"), LIST("</end>"), &st), "Hello "));
    CHECK(st == VKLLM_STREAM_STOP);
    /* held text that turns out not to be a stop string comes out */
    CHECK(!strcmp(run(LIST("ST", "ART now"), LIST("STOP"), &st), "START now"));
    CHECK(st == VKLLM_STREAM_EOG);
    /* ... also at the end of the reply */
    CHECK(!strcmp(run(LIST("wait ST"), LIST("STOP"), &st), "wait ST"));
    /* inside one piece; the earliest of two wins */
    CHECK(!strcmp(run(LIST("abc<b>d<a>"), LIST("<a>", "<b>"), &st), "abc"));
    /* overlapping starts: "aab" in "aaab" */
    CHECK(!strcmp(run(LIST("a", "a", "a", "b", "c"), LIST("aab"), &st), "a"));
    /* a stop string of several UTF-8 characters, split inside one */
    CHECK(!strcmp(run(LIST("caf\xc3", "\xa9", "!"), LIST("\xc3\xa9!"), &st), "caf"));
    CHECK(!strcmp(run(LIST("caf\xc3", "\xa9", "?"), LIST("\xc3\xa9!"), &st), "caf\xc3\xa9?"));

    /* never a partial stop string: step by step */
    vkllm_stream *s;
    const char *text;
    size_t len;
    REQUIRE(vkllm_stream_create(NULL, false, &s, NULL) == VKLLM_OK);
    REQUIRE(vkllm_stream_add_stop(s, "User:", NULL) == VKLLM_OK);
    const char *pieces[] = {"Sure.", "\nU", "se", "r", ":", " more"};
    const char *want[] = {"Sure.", "\n", "", "", "", ""};
    for (int i = 0; i < 6; i++) {
        int r = vkllm_stream_push_text(s, pieces[i], strlen(pieces[i]), &text, &len);
        CHECK(len == strlen(want[i]) && !memcmp(text, want[i], len), "step %d printed '%.*s'", i,
              (int)len, text);
        CHECK(r == (i >= 4 ? VKLLM_STREAM_STOP : VKLLM_STREAM_MORE), "step %d", i);
    }
    /* reset: a new reply, the same stop strings */
    vkllm_stream_reset(s);
    int r = vkllm_stream_push_text(s, "xUser:", 6, &text, &len);
    CHECK(r == VKLLM_STREAM_STOP && len == 1 && text[0] == 'x');
    vkllm_stream_free(s);
}

/* The UTF-8 repair stream.c does, done at once on the whole text. */
static size_t repair(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = in[i];
        size_t need = c < 0x80                 ? 1
                      : c >= 0xc2 && c <= 0xdf ? 2
                      : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4
                                               : 0;
        size_t k = 1;
        if (need > 1) {
            unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
            while (k < need && i + k < n && in[i + k] >= (k == 1 ? lo : 0x80) &&
                   in[i + k] <= (k == 1 ? hi : 0xbf))
                k++;
        }
        if (need && k == need) {
            memcpy(out + o, in + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            if (!need) k = 1;
        }
        i += k;
    }
    return o;
}

static void test_random(void)
{
    struct rng r;
    rng_seed(&r, 42);
    /* a small alphabet of ASCII, multi-byte characters and bad bytes, so that
     * stop strings and splits meet often */
    static const char *const atoms[] = {
        "a", "b", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80", "\xff", "\xe2"};
    int fails = 0;
    for (int iter = 0; iter < 3000 && fails < 5; iter++) {
        char text[256], stop[3][16];
        size_t n = 0;
        int atoms_n = 1 + (int)(rng_next(&r) % 40);
        for (int i = 0; i < atoms_n; i++) {
            const char *a = atoms[rng_next(&r) % 9];
            memcpy(text + n, a, strlen(a));
            n += strlen(a);
        }
        int n_stops = (int)(rng_next(&r) % 3);
        vkllm_stream *s;
        REQUIRE(vkllm_stream_create(NULL, false, &s, NULL) == VKLLM_OK);
        for (int k = 0; k < n_stops; k++) {
            size_t sl = 0;
            int parts = 1 + (int)(rng_next(&r) % 3);
            for (int i = 0; i < parts; i++) {
                const char *a = atoms[rng_next(&r) % 6]; /* valid characters only */
                memcpy(stop[k] + sl, a, strlen(a));
                sl += strlen(a);
            }
            stop[k][sl] = 0;
            vkllm_stream_add_stop(s, stop[k], NULL);
        }
        /* expected: the repaired text up to the first stop string */
        char fixed[1024], got[1024];
        size_t fl = repair((const unsigned char *)text, n, fixed), gl = 0, cut = fl;
        for (int k = 0; k < n_stops; k++)
            for (size_t i = 0; i + strlen(stop[k]) <= fl; i++)
                if (!memcmp(fixed + i, stop[k], strlen(stop[k]))) {
                    if (i < cut) cut = i;
                    break;
                }
        int state = VKLLM_STREAM_MORE;
        const char *out;
        size_t len;
        for (size_t i = 0; i < n && state == VKLLM_STREAM_MORE;) {
            size_t step = 1 + rng_next(&r) % 6;
            if (step > n - i) step = n - i;
            state = vkllm_stream_push_text(s, text + i, step, &out, &len);
            memcpy(got + gl, out, len);
            gl += len;
            i += step;
            if (gl > cut || memcmp(got, fixed, gl)) break; /* printed too much or wrong */
        }
        if (state == VKLLM_STREAM_MORE && gl <= cut && !memcmp(got, fixed, gl)) {
            vkllm_stream_finish(s, &out, &len);
            memcpy(got + gl, out, len);
            gl += len;
        }
        bool ok =
            gl == cut && !memcmp(got, fixed, cut) && (cut < fl) == (state == VKLLM_STREAM_STOP);
        CHECK(ok, "random case %d: printed %zu bytes, expected %zu", iter, gl, cut);
        fails += !ok;
        vkllm_stream_free(s);
    }
}

static void test_vocab(void)
{
    const char *path = VKLLM_TEST_VOCABS "/ggml-vocab-llama-bpe.gguf";
    vkllm_gguf *g;
    vkllm_vocab *v;
    struct vkllm_error err;
    REQUIRE(vkllm_gguf_open(path, &g, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_vocab_load(g, &v, &err) == VKLLM_OK, "%s", err.msg);
    int32_t ids[8];
    int n = vkllm_tokenize(v, "Hi<|eot_id|>", 12, false, true, ids, 8);
    REQUIRE(n == 2, "Hi<|eot_id|>: %d tokens", n);
    vkllm_stream *s;
    const char *text;
    size_t len;
    REQUIRE(vkllm_stream_create(v, false, &s, NULL) == VKLLM_OK);
    CHECK(vkllm_stream_push(s, ids[0], &text, &len) == VKLLM_STREAM_MORE && len == 2);
    CHECK(vkllm_stream_push(s, ids[1], &text, &len) == VKLLM_STREAM_EOG && len == 0,
          "<|eot_id|> ends generation");
    vkllm_stream_reset(s);
    CHECK(vkllm_stream_push(s, vkllm_vocab_eos(v), &text, &len) == VKLLM_STREAM_EOG,
          "<|end_of_text|> ends generation");
    vkllm_stream_free(s);
    /* with ignore_eog it is text, and a control token's text is empty */
    REQUIRE(vkllm_stream_create(v, true, &s, NULL) == VKLLM_OK);
    CHECK(vkllm_stream_push(s, ids[1], &text, &len) == VKLLM_STREAM_MORE && len == 0);
    vkllm_stream_free(s);
    vkllm_vocab_free(v);
    vkllm_gguf_close(g);
}

int main(void)
{
    test_utf8();
    test_stops();
    test_random();
    test_vocab();
    return TEST_REPORT();
}
