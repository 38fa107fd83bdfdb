/* test_chat.c: cutting the KV cache back, and the conversation module
 * (engine/exec/conversation.c) on the GPU.
 *
 * 1. vkllm_session_truncate: decoding other tokens, cutting back and decoding
 *    the original ones again gives bit-identical logits (what lay beyond the
 *    cut is never read): the guard for regenerating and editing turns.
 * 2. A conversation reuses its cache: the second turn decodes only what is
 *    new (the reply's sampled tokens are kept), and the logits then equal a
 *    fresh decode of the whole conversation; editing the last message cuts
 *    back to the common prefix.
 * 3. A full context drops the oldest turns after the system prompt and says
 *    so, in one note and a few renderings for thousands of turns; a message
 *    that cannot fit is refused without dropping any; save and load round-trip; a failing template
 * and a missing one fall back to a built-in format and say so.
 * 4. Text that cannot fit is refused without tokenizing it: a message longer
 *    than the context times the longest token (a /load of 200 MiB took
 *    seconds and gigabytes), a system prompt that leaves no room for any
 *    message (vkllm_chat_check; in a loaded file too), a file past 256 MiB.
 * 5. A turn's preparation is bounded by the context, not by the conversation
 *    (messages rendered and bytes tokenized for 10,000 and 40,000 turns), and
 *    a chat made without a session renders but refuses to decode.
 */
#include "testhelp.h"
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static vkllm_context *ctx;
static vkllm_model *model;
static uint32_t n_vocab;
static int notices;
static char last_notice[600];

static void on_notice(const char *msg, void *user)
{
    (void)user;
    notices++;
    snprintf(last_notice, sizeof last_notice, "%s", msg);
}

static vkllm_session *new_session(uint32_t n_ctx, uint32_t n_batch)
{
    struct vkllm_session_params sp = {.n_ctx = n_ctx, .n_batch = n_batch};
    vkllm_session *s;
    struct vkllm_error err;
    REQUIRE(vkllm_session_create(model, &sp, &s, &err) == VKLLM_OK, "%s", err.msg);
    return s;
}

static float *copy_logits(const vkllm_session *s)
{
    const float *l = vkllm_session_logits(s, -1);
    REQUIRE(l != NULL);
    float *c = malloc(n_vocab * sizeof *c);
    REQUIRE(c != NULL);
    memcpy(c, l, n_vocab * sizeof *c);
    return c;
}

static void test_truncate(void)
{
    struct vkllm_error err;
    int32_t prompt[40], other[23];
    for (int i = 0; i < 40; i++)
        prompt[i] = 3 + (i * 37) % 300;
    for (int i = 0; i < 23; i++)
        other[i] = 5 + (i * 11) % 250;
    /* the same steps (17 then 23 tokens, then one) with and without a detour */
    vkllm_session *a = new_session(128, 16), *b = new_session(128, 16);
    REQUIRE(vkllm_session_decode(a, prompt, 17, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_decode(a, prompt + 17, 23, &err) == VKLLM_OK, "%s", err.msg);
    float *want = copy_logits(a);
    REQUIRE(vkllm_session_decode(a, &prompt[0], 1, &err) == VKLLM_OK);
    float *want1 = copy_logits(a);

    REQUIRE(vkllm_session_decode(b, prompt, 17, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_decode(b, other, 23, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_session_decode(b, other, 9, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_truncate(b, 60, &err) == VKLLM_E_INVALID, "past the end");
    REQUIRE(vkllm_session_truncate(b, 17, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(b) == 17 && vkllm_session_logits(b, -1) == NULL);
    REQUIRE(vkllm_session_decode(b, prompt + 17, 23, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_session_pos(b) == 40);
    CHECK(!memcmp(vkllm_session_logits(b, -1), want, n_vocab * sizeof(float)),
          "logits after a cut-back differ from a fresh decode");
    REQUIRE(vkllm_session_decode(b, &prompt[0], 1, &err) == VKLLM_OK);
    CHECK(!memcmp(vkllm_session_logits(b, -1), want1, n_vocab * sizeof(float)),
          "the next token's logits differ");
    /* back to the start: a whole new sequence */
    REQUIRE(vkllm_session_truncate(b, 0, &err) == VKLLM_OK);
    REQUIRE(vkllm_session_decode(b, prompt, 17, &err) == VKLLM_OK);
    REQUIRE(vkllm_session_decode(b, prompt + 17, 23, &err) == VKLLM_OK);
    CHECK(!memcmp(vkllm_session_logits(b, -1), want, n_vocab * sizeof(float)));
    free(want);
    free(want1);
    vkllm_session_free(a);
    vkllm_session_free(b);
}

static const char chatml[] =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static vkllm_chat *new_chat(vkllm_session *s, const char *tmpl)
{
    struct vkllm_chat_params p = {.template_text = tmpl,
                                  .template_len = tmpl ? strlen(tmpl) : 0,
                                  .n_reserve = 16,
                                  .notice = on_notice};
    vkllm_chat *c;
    struct vkllm_error err;
    REQUIRE(vkllm_chat_create(model, s, &p, &c, &err) == VKLLM_OK, "%s", err.msg);
    return c;
}

/* Whether TOKEN's text is whole UTF-8 characters: a reply of random weights
 * that writes a lone byte becomes U+FFFD in the message, which then no longer
 * matches the cached token (correctly, but this test is about reuse). */
static bool whole_text(int32_t token)
{
    char buf[64];
    int n = vkllm_token_to_piece(vkllm_model_vocab(model), token, false, buf, sizeof buf);
    if (n <= 0 || n > (int)sizeof buf) return false;
    for (int i = 0; i < n; i++)
        if ((unsigned char)buf[i] >= 0x80 || buf[i] == 0) return false;
    return true;
}

/* Greedy reply of N tokens of whole text, decoded into the cache; adds it as
 * a message. */
static void reply(vkllm_chat *c, vkllm_session *s, int n)
{
    struct vkllm_error err;
    vkllm_stream *st;
    REQUIRE(vkllm_stream_create(vkllm_model_vocab(model), true, &st, NULL) == VKLLM_OK);
    const char *text;
    size_t len;
    for (int i = 0; i < n; i++) {
        const float *l = vkllm_session_logits(s, -1);
        int32_t best = 0;
        for (uint32_t k = 1; k < n_vocab; k++)
            if ((l[k] > l[best] || !whole_text(best)) && whole_text((int32_t)k)) best = (int32_t)k;
        vkllm_stream_push(st, best, &text, &len);
        REQUIRE(vkllm_chat_decode_token(c, best, &err) == VKLLM_OK, "%s", err.msg);
    }
    vkllm_stream_finish(st, &text, &len);
    const char *r = vkllm_stream_reply(st, &len);
    REQUIRE(vkllm_chat_add(c, "assistant", r, len, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_stream_free(st);
}

/* The largest difference between the logits of S and a fresh decode of the
 * tokens C holds, in a new session (the reply's sampled tokens included, which
 * a new rendering might tokenize otherwise). */
static float fresh_difference(vkllm_chat *c, vkllm_session *s)
{
    struct vkllm_error err;
    uint32_t n;
    const int32_t *tokens = vkllm_chat_tokens(c, &n);
    REQUIRE(n == vkllm_session_pos(s) && n > 0);
    vkllm_session *s2 = new_session(vkllm_session_n_ctx(s), 16);
    REQUIRE(vkllm_session_decode(s2, tokens, n, &err) == VKLLM_OK, "%s", err.msg);
    const float *a = vkllm_session_logits(s, -1), *b = vkllm_session_logits(s2, -1);
    float most = 0;
    for (uint32_t k = 0; k < n_vocab; k++)
        most = fmaxf(most, fabsf(a[k] - b[k]));
    vkllm_session_free(s2);
    return most;
}

static void test_reuse(void)
{
    struct vkllm_error err;
    struct vkllm_chat_turn t1, t2, t3;
    vkllm_session *s = new_session(512, 16);
    vkllm_chat *c = new_chat(s, chatml);
    REQUIRE(vkllm_chat_add(c, "system", "be kind", 7, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "once upon a time", 16, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t1, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t1.n_cached == 0 && t1.n_new == t1.n_prompt && t1.n_prompt > 10);
    reply(c, s, 6);
    uint32_t cached = vkllm_session_pos(s);
    CHECK(cached == t1.n_prompt + 6);

    REQUIRE(vkllm_chat_add(c, "user", "the dog was happy", 17, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t2, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t2.n_cached == cached, "turn 2 reused %u of %u cached tokens", t2.n_cached, cached);
    CHECK(t2.n_new > 0 && t2.n_new < t2.n_prompt && vkllm_session_pos(s) == t2.n_prompt);
    /* half-precision KV and other step sizes: not bit-identical, but close
     * (the logits' standard deviation is about 4) */
    float d = fresh_difference(c, s);
    CHECK(d < 2e-2f, "turn 2 logits differ from a fresh decode by %g", d);

    /* edit the last message: back to the common prefix, the rest again */
    vkllm_chat_pop(c);
    REQUIRE(vkllm_chat_add(c, "user", "the cat was sad", 15, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t3, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t3.n_cached >= cached && t3.n_cached < t2.n_prompt, "edit reused %u", t3.n_cached);
    d = fresh_difference(c, s);
    CHECK(d < 2e-2f, "edited turn logits differ from a fresh decode by %g", d);

    /* regenerate the reply: everything is cached, only the last token runs again */
    struct vkllm_chat_turn t4;
    REQUIRE(vkllm_chat_add(c, "assistant", "x", 1, &err) == VKLLM_OK);
    vkllm_chat_pop(c);
    REQUIRE(vkllm_chat_prefill(c, &t4, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t4.n_new == 1 && t4.n_cached == t3.n_prompt - 1, "regenerate: %u new, %u cached",
          t4.n_new, t4.n_cached);
    d = fresh_difference(c, s);
    CHECK(d < 2e-2f, "regenerated turn logits differ from a fresh decode by %g", d);

    /* save and load */
    const char *path = VKLLM_TEST_GEN "/chat-save.json";
    REQUIRE(vkllm_chat_add(c, "assistant", "caf\xc3\xa9 \"quoted\"\n\ttab", 20, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_save(c, path, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_chat *c2 = new_chat(s, chatml);
    REQUIRE(vkllm_chat_load(c2, path, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_chat_count(c2) == vkllm_chat_count(c));
    for (size_t i = 0; i < vkllm_chat_count(c) && i < vkllm_chat_count(c2); i++) {
        size_t l1, l2;
        const char *a = vkllm_chat_content(c, i, &l1), *b = vkllm_chat_content(c2, i, &l2);
        CHECK(!strcmp(vkllm_chat_role(c, i), vkllm_chat_role(c2, i)) && l1 == l2 &&
                  !memcmp(a, b, l1),
              "message %zu", i);
    }
    FILE *f = fopen(VKLLM_TEST_GEN "/chat-bad.json", "w");
    REQUIRE(f != NULL);
    fputs("{\"messages\": [{\"role\": \"user\"}]}", f);
    fclose(f);
    CHECK(vkllm_chat_load(c2, VKLLM_TEST_GEN "/chat-bad.json", &err) == VKLLM_E_FORMAT);
    CHECK(vkllm_chat_count(c2) == vkllm_chat_count(c), "a bad file changes nothing");
    /* a NUL in a role would cut it short: the file is refused, not loaded as "us" */
    f = fopen(VKLLM_TEST_GEN "/chat-bad.json", "w");
    REQUIRE(f != NULL);
    fputs("{\"messages\": [{\"role\": \"us\\u0000er\", \"content\": \"hi\"}]}", f);
    fclose(f);
    CHECK(vkllm_chat_load(c2, VKLLM_TEST_GEN "/chat-bad.json", &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "NUL") != NULL, "%s", err.msg);
    CHECK(vkllm_chat_count(c2) == vkllm_chat_count(c), "a bad file changes nothing");
    CHECK(vkllm_chat_load(c2, VKLLM_TEST_GEN "/nope.json", &err) < 0);
    vkllm_chat_free(c2);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

static void test_full(void)
{
    struct vkllm_error err;
    struct vkllm_chat_turn t;
    vkllm_session *s = new_session(256, 16);
    vkllm_chat *c = new_chat(s, chatml);
    REQUIRE(vkllm_chat_add(c, "system", "sys", 3, &err) == VKLLM_OK);
    int before = notices;
    uint32_t dropped = 0;
    for (int turn = 0; turn < 10; turn++) {
        REQUIRE(vkllm_chat_add(c, "user", "the little girl went to the park", 32, &err) ==
                VKLLM_OK);
        REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "turn %d: %s", turn, err.msg);
        CHECK(t.n_prompt + 16 <= 256, "turn %d: %u tokens leave no room", turn, t.n_prompt);
        reply(c, s, 4);
        dropped = t.n_dropped;
    }
    CHECK(dropped > 0 && notices > before, "no turn was dropped");
    CHECK(strstr(last_notice, "dropped") != NULL, "notice: %s", last_notice);
    char *text;
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK);
    CHECK(!strncmp(text, "<|im_start|>system\nsys<|im_end|>", 31), "the system prompt stays");
    free(text);
    /* a message longer than the context does not fit at all */
    static char big[2000];
    for (int i = 0; i < 1999; i++)
        big[i] = "abcdefgh "[i % 9];
    REQUIRE(vkllm_chat_add(c, "user", big, strlen(big), &err) == VKLLM_OK);
    CHECK(vkllm_chat_prefill(c, &t, &err) == VKLLM_E_CONTEXT_FULL);
    CHECK(strstr(err.msg, "the context holds 256") != NULL, "%s", err.msg);
    /* refused, it drops nothing: without it the chat goes on as before
     * (dropping every turn on the way to the refusal once left the system
     * prompt alone) */
    vkllm_chat_pop(c);
    REQUIRE(vkllm_chat_add(c, "user", "and then?", 9, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t.n_dropped <= dropped + 2, "after a refused message %u messages are dropped, not %u",
          t.n_dropped, dropped);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

/* Adds the system prompt and N_TURNS turns, from turn FROM on, of a long
 * conversation. */
static void add_turns(vkllm_chat *c, int from, int n_turns)
{
    struct vkllm_error err;
    char text[64];
    REQUIRE(vkllm_chat_add(c, "system", "sys", 3, &err) == VKLLM_OK);
    for (int i = from; i < n_turns; i++) {
        int n = snprintf(text, sizeof text, "question %d about the park", i);
        REQUIRE(vkllm_chat_add(c, "user", text, (size_t)n, &err) == VKLLM_OK);
        if (i == n_turns - 1) break; /* it ends with a user message */
        n = snprintf(text, sizeof text, "answer %d", i);
        REQUIRE(vkllm_chat_add(c, "assistant", text, (size_t)n, &err) == VKLLM_OK);
    }
}

/* A long conversation (a /load of 8,000 messages) into a small context: the
 * turns that do not fit are found with a few renderings, not one per turn
 * (which took seconds, and minutes with a real template), and one note says
 * how many messages are no longer seen. The turns kept are the most that fit:
 * the same conversation without the dropped turns fits without dropping, and
 * with one turn more it does not. */
static void test_long(void)
{
    enum { N_TURNS = 4000 };
    struct vkllm_error err;
    struct vkllm_chat_turn t;
    vkllm_session *s = new_session(256, 64);
    vkllm_chat *c = new_chat(s, chatml);
    add_turns(c, 0, N_TURNS);
    REQUIRE(vkllm_chat_count(c) == 2 * N_TURNS);
    int before = notices;
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(notices == before + 1, "%d notes for one prefill", notices - before);
    char want[128];
    snprintf(want, sizeof want, "(%u messages no longer seen)", t.n_dropped);
    CHECK(strstr(last_notice, want) != NULL, "note: %s", last_notice);
    /* windows of 1, 2, 4, ... turns from the end, then a bisection between
     * the last two and the one it found: never the whole conversation */
    CHECK(t.n_renders <= 15, "%u renderings for one prefill", t.n_renders);
    CHECK(t.n_dropped > 0 && t.n_dropped % 2 == 0 && t.n_dropped < 2 * N_TURNS - 2);
    CHECK(t.n_prompt + 16 <= 256, "%u tokens leave no room for the reply", t.n_prompt);
    const int kept = N_TURNS - (int)t.n_dropped / 2; /* whole turns dropped */
    uint32_t n_prompt = t.n_prompt;
    vkllm_chat_free(c);

    c = new_chat(s, chatml);
    add_turns(c, N_TURNS - kept, N_TURNS);
    before = notices;
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(notices == before && t.n_dropped == 0 && t.n_renders == 1 && t.n_prompt == n_prompt,
          "the kept turns alone: %u tokens (not %u), %u dropped", t.n_prompt, n_prompt,
          t.n_dropped);
    vkllm_chat_free(c);

    c = new_chat(s, chatml);
    add_turns(c, N_TURNS - kept - 1, N_TURNS);
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t.n_dropped == 2, "one turn more than was kept: %u messages dropped", t.n_dropped);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

/* The work of one prefill of an N_TURNS-turn conversation into a small
 * context, on a fresh chat (COLD) and then as the chat window does it,
 * clearing and adding the conversation again (WARM). */
static void long_work(int n_turns, struct vkllm_chat_turn *cold, struct vkllm_chat_turn *warm)
{
    struct vkllm_error err;
    vkllm_session *s = new_session(256, 64);
    vkllm_chat *c = new_chat(s, chatml);
    add_turns(c, 0, n_turns);
    REQUIRE(vkllm_chat_prefill(c, cold, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_chat_clear(c, false);
    add_turns(c, 0, n_turns);
    REQUIRE(vkllm_chat_prefill(c, warm, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(warm->n_dropped == cold->n_dropped && warm->n_prompt == cold->n_prompt,
          "again: %u dropped, %u tokens (first %u, %u)", warm->n_dropped, warm->n_prompt,
          cold->n_dropped, cold->n_prompt);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

/* A turn's preparation does not grow with the conversation's length: the
 * chat window measured 15 s a reply for 100,000 messages, rendering the whole
 * conversation (and tokenizing it twice) for every step of the bisection.
 * Counted in messages rendered and bytes tokenized, not timed: 40,000 turns
 * cost what 10,000 do, a few times what the context holds; and a conversation
 * cleared and added again (the window's way) starts from the turns dropped
 * before: a handful of renderings of the window that fits. */
static void test_long_linear(void)
{
    struct vkllm_chat_turn cold10, warm10, cold40, warm40;
    long_work(10000, &cold10, &warm10);
    long_work(40000, &cold40, &warm40);
    /* the 256-token context holds about 12 turns, 24 messages of ~20 bytes */
    CHECK(cold10.n_rendered < 400 && cold10.n_tokenized < 8000,
          "10k turns: %llu messages "
          "rendered, %llu bytes tokenized",
          (unsigned long long)cold10.n_rendered, (unsigned long long)cold10.n_tokenized);
    CHECK(cold40.n_rendered <= cold10.n_rendered + 8 &&
              cold40.n_tokenized <= cold10.n_tokenized + 400,
          "40k turns: %llu messages rendered, %llu bytes tokenized (10k: %llu, %llu)",
          (unsigned long long)cold40.n_rendered, (unsigned long long)cold40.n_tokenized,
          (unsigned long long)cold10.n_rendered, (unsigned long long)cold10.n_tokenized);
    /* the window that fits twice, and once with a turn (two messages) more */
    CHECK(warm40.n_renders <= 3 &&
              warm40.n_rendered <= 3 * (80000 - (uint64_t)warm40.n_dropped) + 2,
          "again: %u renderings of %llu messages, %u dropped", warm40.n_renders,
          (unsigned long long)warm40.n_rendered, warm40.n_dropped);
    CHECK(warm10.n_renders <= 3, "again: %u renderings", warm10.n_renders);
}

/* A chat without a session renders (vkllm serve's renderer) and refuses to
 * decode, saying why. */
static void test_render_only(void)
{
    struct vkllm_error err;
    struct vkllm_chat_turn t = {.n_renders = 7};
    vkllm_chat *c;
    struct vkllm_chat_params p = {.template_text = chatml, .template_len = strlen(chatml)};
    REQUIRE(vkllm_chat_create(model, NULL, &p, &c, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_chat_add(c, "system", "sys", 3, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "hello", 5, &err) == VKLLM_OK);
    char *text;
    size_t len;
    REQUIRE(vkllm_chat_render(c, &text, &len, &err) == VKLLM_OK, "%s", err.msg);
    const char want[] = "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|"
                        "im_start|>assistant\n";
    CHECK(len == strlen(want) && !strcmp(text, want), "rendered: %s", text);
    free(text);
    err.msg[0] = 0;
    CHECK(vkllm_chat_prefill(c, &t, &err) == VKLLM_E_INVALID &&
              strstr(err.msg, "without a session"),
          "prefill: %s", err.msg);
    CHECK(t.n_renders == 0, "prefill left %u renderings in its report", t.n_renders);
    CHECK(vkllm_chat_check(c, &err) == VKLLM_E_INVALID);
    CHECK(vkllm_chat_decode_token(c, 5, &err) == VKLLM_E_INVALID);
    uint32_t n = 9;
    vkllm_chat_tokens(c, &n);
    CHECK(n == 0, "%u tokens", n);
    /* a saved conversation loads: no context to check its system prompt against */
    char path[] = VKLLM_TEST_GEN "/chat-render-only.json";
    REQUIRE(vkllm_chat_save(c, path, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_chat_clear(c, false);
    REQUIRE(vkllm_chat_load(c, path, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(vkllm_chat_count(c) == 2 && !strcmp(vkllm_chat_role(c, 1), "user"));
    unlink(path);
    vkllm_chat_free(c);
}

static void test_fallback(void)
{
    struct vkllm_error err;
    vkllm_session *s = new_session(256, 16);
    char *text;
    /* the generated model has no template and a SentencePiece vocabulary
     * without chat tokens: llama2 */
    int before = notices;
    vkllm_chat *c = new_chat(s, NULL);
    CHECK(notices == before + 1 && strstr(last_notice, "llama2"), "notice: %s", last_notice);
    REQUIRE(vkllm_chat_add(c, "system", "sys", 3, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "hi", 2, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK);
    CHECK(!strcmp(text, "[INST] <<SYS>>\nsys\n<</SYS>>\n\nhi [/INST]"), "llama2: '%s'", text);
    free(text);
    vkllm_chat_free(c);
    /* a template that raises: the format its text suggests (ChatML) */
    c = new_chat(s, "{{ raise_exception('no') }}<|im_start|>");
    REQUIRE(vkllm_chat_add(c, "user", "hi", 2, &err) == VKLLM_OK);
    before = notices;
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK);
    CHECK(notices == before + 1 && strstr(last_notice, "chatml"), "notice: %s", last_notice);
    CHECK(!strcmp(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"), "'%s'", text);
    free(text);
    struct vkllm_chat_turn t;
    CHECK(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_chat_free(c);
    /* a template that refuses one conversation (two user messages in a row,
     * as Mistral's) falls back for that render only: a server renders every
     * client's request with one chat, and kept the built-in format for all */
    c = new_chat(s, "{% for m in messages %}{% if loop.index0 > 0 and m.role == "
                    "messages[loop.index0 - 1].role %}{{ raise_exception('alternate') }}"
                    "{% endif %}<|im_start|>{{ m.content }}{% endfor %}");
    REQUIRE(vkllm_chat_add(c, "user", "a", 1, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "b", 1, &err) == VKLLM_OK);
    before = notices;
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK);
    CHECK(notices == before + 1 && strstr(last_notice, "alternate"), "notice: %s", last_notice);
    free(text);
    vkllm_chat_clear(c, false);
    REQUIRE(vkllm_chat_add(c, "user", "a", 1, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK);
    CHECK(!strcmp(text, "<|im_start|>a"), "after a refused render: '%s'", text);
    free(text);
    vkllm_chat_free(c);
    /* a server's renderer gets the template's error instead (a 400 for its
     * client), and no note */
    struct vkllm_chat_params strict = {.template_text = "{% if messages | length > 1 %}{{ "
                                                        "raise_exception('alternate') }}{% endif %}x",
                                       .template_errors = true,
                                       .notice = on_notice};
    strict.template_len = strlen(strict.template_text);
    REQUIRE(vkllm_chat_create(model, NULL, &strict, &c, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_chat_add(c, "user", "a", 1, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "b", 1, &err) == VKLLM_OK);
    before = notices;
    text = NULL;
    int rc = vkllm_chat_render(c, &text, NULL, &err);
    CHECK(rc == VKLLM_E_INVALID && !text && strstr(err.msg, "alternate") && notices == before,
          "strict render: status %d, '%s', %d notes", rc, err.msg, notices - before);
    vkllm_chat_clear(c, false);
    REQUIRE(vkllm_chat_add(c, "user", "a", 1, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_render(c, &text, NULL, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(!strcmp(text, "x"), "strict, one message: '%s'", text);
    free(text);
    vkllm_chat_free(c);
    /* a template that leaves the messages out ran every turn on BOS alone,
     * silently: one note, not one a turn */
    c = new_chat(s, "{% for m in messages %}{% endfor %}x");
    REQUIRE(vkllm_chat_add(c, "user", "hi", 2, &err) == VKLLM_OK);
    before = notices;
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(notices == before + 1 && strstr(last_notice, "does not contain the user's message"),
          "%d notes: %s", notices - before, last_notice);
    REQUIRE(vkllm_chat_add(c, "assistant", "a", 1, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_add(c, "user", "again", 5, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(notices == before + 1, "%d notes for two turns", notices - before);
    vkllm_chat_free(c);
    /* one that trims the message (Llama 3's) holds it: no note */
    c = new_chat(s, "{% for m in messages %}{{ m.content | trim }}{% endfor %}");
    REQUIRE(vkllm_chat_add(c, "user", " hi\n", 4, &err) == VKLLM_OK);
    before = notices;
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(notices == before, "note: %s", last_notice);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

/* Ctrl+C during a slow template's render: the stop hook ends the render, the
 * prefill fails with "stopped", and the template is kept (not replaced by the
 * built-in format as a failing template is). */
static int stop_calls;
static bool stop_after_two(void *user)
{
    (void)user;
    return ++stop_calls > 2;
}

static void test_stop_render(void)
{
    struct vkllm_error err = {0};
    vkllm_session *s = new_session(256, 16);
    static const char slow[] =
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    struct vkllm_chat_params p = {.template_text = slow,
                                  .template_len = strlen(slow),
                                  .n_reserve = 16,
                                  .notice = on_notice,
                                  .stop = stop_after_two};
    vkllm_chat *c;
    REQUIRE(vkllm_chat_create(model, s, &p, &c, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_chat_add(c, "user", "hi", 2, &err) == VKLLM_OK);
    int before = notices;
    struct vkllm_chat_turn t;
    CHECK(vkllm_chat_prefill(c, &t, &err) == VKLLM_E_IO && strstr(err.msg, "stopped"),
          "prefill of a stopped render: %s", err.msg);
    CHECK(notices == before, "a stopped render is not a failing template: %s", last_notice);
    /* three times in the render, once to tell a stop from a failing template */
    CHECK(stop_calls == 4, "the hook asked %d times", stop_calls);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

/* A sliding-window model whose caches are rings (window + batch is shorter
 * than the context): editing the first message cuts the cache back further
 * than the rings still hold, so the conversation starts over instead of
 * attending to overwritten positions; its logits equal a fresh decode. */
static void test_window_ring(void)
{
    const char *path = VKLLM_TEST_GEN "/chat-gemma2.gguf";
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' -o '%s' --arch gemma2 --n-vocab 320 --n-ctx 512 --window 4 --swa-pattern 2",
             VKLLM_GEN_MODEL, path);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    struct vkllm_error err;
    vkllm_model *saved = model;
    REQUIRE(vkllm_model_load(ctx, path, NULL, &model, &err) == VKLLM_OK, "%s", err.msg);
    vkllm_session *s = new_session(128, 3);
    vkllm_chat *c = new_chat(s, chatml);
    struct vkllm_chat_turn t;
    REQUIRE(vkllm_chat_add(c, "user", "once upon a time", 16, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    reply(c, s, 8);
    vkllm_chat_clear(c, false);
    REQUIRE(vkllm_chat_add(c, "user", "once upon a dog", 15, &err) == VKLLM_OK);
    REQUIRE(vkllm_chat_prefill(c, &t, &err) == VKLLM_OK, "%s", err.msg);
    CHECK(t.n_cached == 0 && t.n_new == t.n_prompt,
          "a cut behind the rings reused %u cached tokens", t.n_cached);
    float d = fresh_difference(c, s);
    CHECK(d < 2e-2f, "after starting over the logits differ from a fresh decode by %g", d);
    vkllm_chat_free(c);
    vkllm_session_free(s);
    vkllm_model_free(model);
    model = saved;
}

static void test_too_long(void)
{
    struct vkllm_error err;
    struct vkllm_chat_turn t;
    vkllm_session *s = new_session(128, 16);
    vkllm_chat *c = new_chat(s, chatml);
    CHECK(vkllm_chat_check(c, &err) == VKLLM_OK, "%s", err.msg);
    /* 8 MiB: refused from its length, "at least" as many tokens as the
     * longest token's bytes make (tokenizing it took seconds) */
    enum { BIG = 8 << 20 };
    char *big = malloc(BIG + 1);
    REQUIRE(big != NULL);
    for (int i = 0; i < BIG; i++)
        big[i] = "the park "[i % 9];
    big[BIG] = 0;
    REQUIRE(vkllm_chat_add(c, "user", big, BIG, &err) == VKLLM_OK);
    CHECK(vkllm_chat_prefill(c, &t, &err) == VKLLM_E_CONTEXT_FULL);
    CHECK(strstr(err.msg, "the conversation is at least ") &&
              strstr(err.msg, "the context holds 128"),
          "%s", err.msg);
    vkllm_chat_pop(c);
    /* a system prompt too long for any message: refused at the start, in
     * one call, whether long (from its length) or just too long (counted:
     * as many bytes as 100 of the longest tokens make, in shorter ones, and
     * the template's own text: ChatML's markers are not tokens here) */
    int longest = 1;
    for (int32_t i = 0; i < (int32_t)n_vocab; i++) {
        int n = vkllm_token_to_piece(vkllm_model_vocab(model), i, true, NULL, 0);
        if (n > longest) longest = n;
    }
    const size_t lens[] = {BIG, 100 * (size_t)longest};
    for (int k = 0; k < 2; k++) {
        REQUIRE(vkllm_chat_add(c, "system", big, lens[k], &err) == VKLLM_OK);
        CHECK(vkllm_chat_check(c, &err) == VKLLM_E_CONTEXT_FULL, "system prompt of %zu bytes",
              lens[k]);
        CHECK(strstr(err.msg, "the system prompt and the chat template make ") &&
                  strstr(err.msg, " tokens with a one-character message; the context holds 128") &&
                  (strstr(err.msg, "at least") != NULL) == (k == 0),
              "%s", err.msg);
        CHECK(vkllm_chat_count(c) == 1, "the check left %zu messages", vkllm_chat_count(c));
        vkllm_chat_clear(c, false);
    }
    REQUIRE(vkllm_chat_add(c, "system", "sys", 3, &err) == VKLLM_OK);
    CHECK(vkllm_chat_check(c, &err) == VKLLM_OK, "%s", err.msg);
    /* the same system prompt in a file: refused, the conversation kept */
    const char *path = VKLLM_TEST_GEN "/chat-long-system.json";
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fprintf(f, "{\"messages\": [{\"role\": \"system\", \"content\": \"%s\"}]}", big);
    REQUIRE(fclose(f) == 0);
    CHECK(vkllm_chat_load(c, path, &err) == VKLLM_E_CONTEXT_FULL);
    CHECK(strstr(err.msg, "the system prompt is at least ") != NULL, "%s", err.msg);
    CHECK(vkllm_chat_count(c) == 1, "a refused file changed the conversation");
    /* past 256 MiB (a sparse file): refused before it is read */
    REQUIRE((f = fopen(path, "w")) != NULL);
    REQUIRE(ftruncate(fileno(f), (256 << 20) + 1) == 0);
    REQUIRE(fclose(f) == 0);
    CHECK(vkllm_chat_load(c, path, &err) == VKLLM_E_IO);
    CHECK(strstr(err.msg, "larger than 256 MiB") != NULL, "%s", err.msg);
    /* 3 MB of "[]," (a million values): refused before Jansson builds a tree
     * of it (30 MB of it took 15 s and 2.95 GB) */
    REQUIRE((f = fopen(path, "w")) != NULL);
    fputs("{\"messages\": [], \"x\": [", f);
    for (int i = 0; i < 500000; i++)
        fputs("[],", f);
    fputs("[]]}", f);
    REQUIRE(fclose(f) == 0);
    CHECK(vkllm_chat_load(c, path, &err) == VKLLM_E_FORMAT);
    CHECK(strstr(err.msg, "chat-long-system.json: more than 1000000 JSON values") != NULL, "%s",
          err.msg);
    CHECK(vkllm_chat_count(c) == 1, "a refused file changed the conversation");
    unlink(path);
    free(big);
    vkllm_chat_free(c);
    vkllm_session_free(s);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *path = VKLLM_TEST_GEN "/chat-model.gguf";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -o '%s' --n-vocab 320 --n-ctx 512", VKLLM_GEN_MODEL, path);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    struct vkllm_error err;
    REQUIRE(vkllm_context_create(NULL, &ctx, &err) == VKLLM_OK, "%s", err.msg);
    REQUIRE(vkllm_model_load(ctx, path, NULL, &model, &err) == VKLLM_OK, "%s", err.msg);
    n_vocab = vkllm_model_hparams(model)->n_vocab;
    test_truncate();
    test_reuse();
    test_full();
    test_long();
    test_long_linear();
    test_render_only();
    test_fallback();
    test_window_ring();
    test_too_long();
    test_stop_render();
    vkllm_model_free(model);
    CHECK(vkllm_context_validation_errors(ctx) == 0, "Vulkan validation messages");
    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
