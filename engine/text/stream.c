/* stream.c: sampled tokens -> text to print, a token at a time.
 *
 * Two things are held back between tokens. The bytes of a UTF-8 character
 * whose last byte has not come yet (at most three); and valid text that could
 * be the start of a stop string, until the text after it shows that it is not
 * (or completes the stop string, which ends the reply unprinted). Everything
 * handed out is valid UTF-8: bytes that can never start or continue a
 * character become U+FFFD, one per maximal invalid run as Unicode recommends.
 */
#include "error.h"

#include <stdlib.h>
#include <string.h>

struct buf {
    char *p;
    size_t n, cap;
};

struct stop {
    char *text;
    size_t len;
};

struct vkllm_stream {
    const vkllm_vocab *vocab;
    bool ignore_eog;
    struct stop *stops;
    size_t n_stops;

    unsigned char partial[4]; /* an incomplete character, waiting for its last bytes */
    size_t n_partial;
    struct buf held;  /* valid text that may start a stop string */
    struct buf out;   /* handed out by the last call */
    struct buf reply; /* everything handed out since the reset, NUL-terminated */
    struct buf piece; /* a token's text */
    int state;        /* VKLLM_STREAM_MORE until the reply ends */
};

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static bool buf_reserve(struct buf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_add(struct buf *b, const void *data, size_t n)
{
    if (!buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

/* ============================== Life cycle ============================== */

int vkllm_stream_create(const vkllm_vocab *vocab, bool ignore_eog, vkllm_stream **out,
                        struct vkllm_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    (*out)->vocab = vocab;
    (*out)->ignore_eog = ignore_eog;
    return VKLLM_OK;
}

void vkllm_stream_free(vkllm_stream *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stops[i].text);
    free(s->stops);
    free(s->held.p);
    free(s->out.p);
    free(s->reply.p);
    free(s->piece.p);
    free(s);
}

static bool utf8_valid(const unsigned char *p, size_t n);

int vkllm_stream_add_stop(vkllm_stream *s, const char *stop, struct vkllm_error *err)
{
    if (!s || !stop) return vkllm_fail(err, VKLLM_E_INVALID, "no stop string");
    size_t len = strlen(stop);
    /* either could never match: better said than silently never acting */
    if (!len) return vkllm_fail(err, VKLLM_E_INVALID, "an empty stop string can never act");
    if (!utf8_valid((const unsigned char *)stop, len))
        return vkllm_fail(err, VKLLM_E_INVALID,
                          "'%s' is not valid UTF-8, so the output (always valid UTF-8) can "
                          "never hold it",
                          stop);
    struct stop *st = realloc(s->stops, (s->n_stops + 1) * sizeof *st);
    if (!st) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    s->stops = st;
    if (!(st[s->n_stops].text = malloc(len + 1)))
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    memcpy(st[s->n_stops].text, stop, len + 1);
    st[s->n_stops++].len = len;
    return VKLLM_OK;
}

void vkllm_stream_reset(vkllm_stream *s)
{
    s->n_partial = 0;
    s->held.n = s->out.n = s->reply.n = 0;
    if (s->reply.p) s->reply.p[0] = 0;
    s->state = VKLLM_STREAM_MORE;
}

const char *vkllm_stream_reply(const vkllm_stream *s, size_t *len)
{
    if (len) *len = s->reply.n;
    return s->reply.p ? s->reply.p : "";
}

/* ============================== UTF-8 ============================== */

enum { CH_INCOMPLETE, CH_COMPLETE, CH_INVALID };

/* Whether the N bytes of P are a whole character, the valid start of one, or
 * can never be one (RFC 3629: no overlongs, surrogates or values past U+10FFFF). */
static int utf8_check(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c < 0x80) return CH_COMPLETE;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return CH_INVALID;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf)) return CH_INVALID;
    }
    return n == need ? CH_COMPLETE : CH_INCOMPLETE;
}

/* Whether the N bytes of P are whole, valid characters. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        int r = utf8_check(p + start, i + 1 - start);
        if (r == CH_INVALID) return false;
        if (r == CH_COMPLETE) start = i + 1;
    }
    return start == n;
}

/* Moves the bytes of TEXT into the held text, whole characters only. */
static bool take_bytes(vkllm_stream *s, const unsigned char *text, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->partial[s->n_partial++] = text[i];
        int r = utf8_check(s->partial, s->n_partial);
        if (r == CH_INVALID && s->n_partial > 1) {
            /* the bytes before this one were a character cut short: this byte
             * may still start the next one */
            if (!buf_add(&s->held, replacement, 3)) return false;
            s->partial[0] = text[i];
            s->n_partial = 1;
            r = utf8_check(s->partial, 1);
        }
        if (r == CH_INVALID) {
            if (!buf_add(&s->held, replacement, 3)) return false;
            s->n_partial = 0;
        } else if (r == CH_COMPLETE) {
            if (!buf_add(&s->held, s->partial, s->n_partial)) return false;
            s->n_partial = 0;
        }
    }
    return true;
}

/* ============================== Stop strings ============================== */

static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0) return hay + i;
    return NULL;
}

/* The length of the longest end of TEXT that is the start of a stop string
 * (and shorter than it): the text that must wait for what follows. */
static size_t stop_prefix_len(const vkllm_stream *s, const char *text, size_t n)
{
    size_t best = 0;
    for (size_t k = 0; k < s->n_stops; k++) {
        const struct stop *st = &s->stops[k];
        size_t most = st->len - 1 < n ? st->len - 1 : n;
        for (size_t len = most; len > best; len--)
            if (memcmp(text + n - len, st->text, len) == 0) {
                best = len;
                break;
            }
    }
    /* keep a character whole even if a stop string starts inside one */
    while (best < n && ((unsigned char)text[n - best] & 0xc0) == 0x80)
        best++;
    return best;
}

/* Hands out the first N held bytes. */
static bool release(vkllm_stream *s, size_t n)
{
    if (!n) return true;
    if (!buf_add(&s->out, s->held.p, n) || !buf_add(&s->reply, s->held.p, n)) return false;
    memmove(s->held.p, s->held.p + n, s->held.n - n);
    s->held.n -= n;
    return true;
}

/* ============================== Feeding ============================== */

int vkllm_stream_push_text(vkllm_stream *s, const char *piece, size_t n, const char **text,
                           size_t *len)
{
    s->out.n = 0;
    *text = "";
    *len = 0;
    if (s->state != VKLLM_STREAM_MORE) return s->state;
    if (!take_bytes(s, (const unsigned char *)piece, n)) return VKLLM_E_NOMEM;

    /* a stop string completed: the text before it is the reply's last */
    const char *first = NULL;
    for (size_t k = 0; k < s->n_stops; k++) {
        const char *at = find(s->held.p, s->held.n, s->stops[k].text, s->stops[k].len);
        if (at && (!first || at < first)) first = at;
    }
    if (first) {
        if (!release(s, (size_t)(first - s->held.p))) return VKLLM_E_NOMEM;
        s->held.n = s->n_partial = 0;
        s->state = VKLLM_STREAM_STOP;
    } else if (s->held.n && !release(s, s->held.n - stop_prefix_len(s, s->held.p, s->held.n))) {
        return VKLLM_E_NOMEM;
    }
    *text = s->out.p ? s->out.p : "";
    *len = s->out.n;
    return s->state;
}

void vkllm_stream_finish(vkllm_stream *s, const char **text, size_t *len)
{
    s->out.n = 0;
    if (s->state == VKLLM_STREAM_MORE) {
        /* an incomplete character at the end will never complete */
        if (s->n_partial && buf_add(&s->held, replacement, 3)) s->n_partial = 0;
        if (s->held.n) release(s, s->held.n);
        s->state = VKLLM_STREAM_EOG;
    }
    *text = s->out.p ? s->out.p : "";
    *len = s->out.n;
}

int vkllm_stream_push(vkllm_stream *s, int32_t token, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    if (!s->vocab) return VKLLM_E_INVALID;
    if (s->state != VKLLM_STREAM_MORE) return s->state;
    s->out.n = 0;
    if (!s->ignore_eog && vkllm_vocab_is_eog(s->vocab, token)) {
        vkllm_stream_finish(s, text, len);
        return VKLLM_STREAM_EOG;
    }
    int n = vkllm_token_to_piece(s->vocab, token, false, s->piece.p, (int)s->piece.cap);
    if (n > (int)s->piece.cap) { /* a long piece: make room and ask again */
        if (!buf_reserve(&s->piece, (size_t)n)) return VKLLM_E_NOMEM;
        n = vkllm_token_to_piece(s->vocab, token, false, s->piece.p, (int)s->piece.cap);
    }
    if (n < 0) return n;
    return vkllm_stream_push_text(s, s->piece.p, (size_t)n, text, len);
}
