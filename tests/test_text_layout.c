/* test_text_layout.c: app/chat/text_layout.c with a fake measure, no fonts.
 *
 * The fake: 10 px a code point, 20 px a wide (CJK) one, 0 for combining
 * marks, joiners and variation selectors; lines 20 px (headings taller).
 * Wrapping of Latin, Cyrillic, CJK, right-to-left text, emoji sequences that
 * must never split, a 10 KB word, a 1 px column; hit tests and copies that
 * round-trip; the cache (nothing measured again for an unchanged message, a
 * streaming reply re-lays its last block only, and equals a fresh layout).
 */
#include "text_layout.h"
#include "testhelp.h"

#include <malloc.h>

#include <string.h>
#include <utf8proc.h>

static long measured;         /* calls of fake_width */
static size_t measured_bytes; /* bytes they measured */

static int cp_width(int32_t c)
{
    utf8proc_category_t cat = utf8proc_category(c);
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || c == 0x200D ||
        (c >= 0xFE00 && c <= 0xFE0F))
        return 0;
    if ((c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xFF00 && c <= 0xFFEF) || c >= 0x1F000) return 20;
    return 10;
}

static int fake_width(void *user, uint32_t style, const char *s, size_t n)
{
    (void)user;
    (void)style;
    measured++;
    measured_bytes += n;
    int w = 0;
    utf8proc_ssize_t at = 0;
    while ((size_t)at < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const uint8_t *)s + at, (utf8proc_ssize_t)n - at, &c);
        if (k <= 0) k = 1, c = 0xFFFD;
        w += cp_width(c);
        at += k;
    }
    return w;
}

static int fake_height(void *user, uint32_t style)
{
    (void)user;
    return MDOC_HEADING(style) ? 40 - 4 * (int)MDOC_HEADING(style) : 20;
}

static const struct tl_measure fake = {fake_width, fake_height, NULL};

static tl_view *view;
static struct tl_params params = {
    .width = 100, .indent = 30, .block_gap = 10, .message_gap = 24, .cell_gap = 10};

static const struct tl_message *lay(size_t i, const char *text, unsigned flags)
{
    struct vkllm_error err = {0};
    REQUIRE_OK(tl_view_set(view, i, text, strlen(text), flags, &err), "%s", err.msg);
    return tl_view_message(view, i);
}

/* Line L's drawn text (markers left out). */
static const char *line_text(const struct tl_message *m, size_t l)
{
    static char buf[16384];
    size_t n = 0;
    const struct tl_line *ln = &m->lines[l];
    for (uint32_t r = 0; r < ln->n_runs; r++) {
        const struct tl_run *run = &m->runs[ln->run + r];
        if (run->span == TL_MARKER) continue;
        size_t len;
        const char *t = tl_run_text(m, run, &len);
        REQUIRE(n + len < sizeof buf);
        memcpy(buf + n, t, len);
        n += len;
    }
    buf[n] = 0;
    return buf;
}

/* Whether byte AT of S (N bytes) is a grapheme cluster boundary. */
static bool grapheme_boundary(const char *s, size_t n, size_t at)
{
    if (at == 0 || at >= n) return true;
    utf8proc_int32_t state = 0, prev = -1, c;
    size_t i = 0;
    bool brk = true;
    while (i < at) {
        utf8proc_ssize_t k =
            utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) return true;
        if (prev >= 0) utf8proc_grapheme_break_stateful(prev, c, &state);
        prev = c;
        i += (size_t)k;
    }
    if (i != at) return false; /* inside a code point */
    utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    brk = utf8proc_grapheme_break_stateful(prev, c, &state);
    return brk;
}

/* Invariants of a laid-out one-block message: the lines hold the block's text
 * in order, each starts at a grapheme boundary, fits the width unless it is a
 * single grapheme (spaces hang), and they follow each other down. */
static void check_lines(const struct tl_message *m, const char *what)
{
    REQUIRE(m->doc.n_blocks >= 1);
    const struct mdoc_block *b = &m->doc.blocks[0];
    const char *text = m->doc.text + b->text;
    size_t at = 0;
    int y = 0;
    for (size_t l = 0; l < m->n_lines; l++) {
        const char *t = line_text(m, l);
        size_t n = strlen(t);
        CHECK(at + n <= b->len && !memcmp(text + at, t, n), "%s: line %zu \"%s\" out of order",
              what, l, t);
        CHECK(grapheme_boundary(text, b->len, at), "%s: line %zu starts inside a grapheme", what,
              l);
        size_t ink = n;
        while (ink > 0 && t[ink - 1] == ' ')
            ink--;
        int w = fake_width(NULL, 0, t, ink);
        bool one = grapheme_boundary(text, b->len, at) && n > 0;
        for (size_t k = 1; k < ink; k++)
            if (grapheme_boundary(t, ink, k)) one = false;
        CHECK(w <= params.width || one, "%s: line %zu \"%s\" is %d px", what, l, t, w);
        CHECK(m->lines[l].y >= y, "%s: line %zu above the previous", what, l);
        y = m->lines[l].y + m->lines[l].h;
        at += n;
    }
    CHECK(at == b->len, "%s: lines hold %zu of %u bytes", what, at, b->len);
}

static void test_wrapping(void)
{
    const struct tl_message *m = lay(0, "The quick brown fox jumps over the lazy dog", 0);
    check_lines(m, "latin");
    REQUIRE(m->n_lines == 5, "%zu lines", m->n_lines);
    CHECK(!strcmp(line_text(m, 0), "The quick "), "\"%s\"", line_text(m, 0));
    CHECK(!strcmp(line_text(m, 4), "dog"));
    CHECK(m->h == 5 * 20 && m->lines[1].y == 20);

    m = lay(0, "Съешь же ещё этих мягких французских булок", 0);
    check_lines(m, "cyrillic");
    CHECK(!strcmp(line_text(m, 0), "Съешь же "), "\"%s\"", line_text(m, 0));
    CHECK(!strcmp(line_text(m, 3), "французски") && !strcmp(line_text(m, 4), "х булок"),
          "a word longer than the line breaks between graphemes: \"%s\"", line_text(m, 3));

    m = lay(0, "a well-known fact", 0);
    check_lines(m, "hyphens");
    CHECK(!strcmp(line_text(m, 0), "a well-") && !strcmp(line_text(m, 1), "known fact"),
          "\"%s\" \"%s\"", line_text(m, 0), line_text(m, 1));

    /* CJK breaks anywhere, but not before 。 or ，: 5 ideographs fit 100 px */
    m = lay(0, "你好世界这，是一个测试。真的", 0);
    check_lines(m, "cjk");
    for (size_t l = 0; l < m->n_lines; l++) {
        const char *t = line_text(m, l);
        CHECK(strncmp(t, "，", 3) && strncmp(t, "。", 3), "line %zu starts with \"%s\"", l, t);
    }
    CHECK(!strcmp(line_text(m, 0), "你好世界"), "\"%s\"", line_text(m, 0));

    /* emoji sequences and flags: never split, even a cluster per line */
    const char *emoji = "👨‍👩‍👧‍👦🇺🇸🇫🇷e\xcc\x81";
    params.width = 1;
    tl_view_set_params(view, &params);
    m = lay(0, emoji, 0);
    check_lines(m, "emoji at 1 px");
    CHECK(m->n_lines == 4, "%zu lines", m->n_lines);
    CHECK(!strcmp(line_text(m, 0), "👨‍👩‍👧‍👦") && !strcmp(line_text(m, 1), "🇺🇸") &&
          !strcmp(line_text(m, 2), "🇫🇷") && !strcmp(line_text(m, 3), "e\xcc\x81"));
    /* every grapheme alone at 1 px, spaces hanging */
    m = lay(0, "ab cd", 0);
    check_lines(m, "1 px");
    CHECK(m->n_lines == 4 && !strcmp(line_text(m, 1), "b "), "%zu lines", m->n_lines);
    params.width = 100;
    tl_view_set_params(view, &params);

    /* a 10 KB word: 10 graphemes a line */
    static char word[10241];
    memset(word, 'x', 10240);
    m = lay(0, word, 0);
    check_lines(m, "10 KB word");
    CHECK(m->n_lines == 1024, "%zu lines", m->n_lines);

    m = lay(0, "", 0);
    CHECK(m->n_lines == 0 && m->h == 0 && m->doc.n_blocks == 0);
    m = lay(0, "", MDOC_PLAIN);
    CHECK(m->n_lines == 0 && m->h == 0);
}

static void test_direction(void)
{
    const struct tl_message *m = lay(0, "שלום עולם, מה שלומך היום", 0);
    check_lines(m, "hebrew");
    REQUIRE(m->n_lines >= 2);
    for (size_t l = 0; l < m->n_lines; l++) {
        const struct tl_run *r = &m->runs[m->lines[l].run];
        CHECK(r->rtl && r->x + r->w == params.width, "line %zu: aligned right (%d + %d)", l, r->x,
              r->w);
    }
    m = lay(0, "- مرحبا بالعالم", 0); /* Arabic, in a list: marker on the right */
    REQUIRE(m->n_lines >= 1 && m->lines[0].n_runs == 2);
    const struct tl_run *marker = &m->runs[m->lines[0].run], *text = &m->runs[m->lines[0].run + 1];
    CHECK(marker->span == TL_MARKER && text->rtl && marker->x >= text->x + text->w,
          "marker at %d, text %d..%d", marker->x, text->x, text->x + text->w);
    CHECK(text->x + text->w == params.width - params.indent, "indented from the right");
    m = lay(0, "2024: Hello שלום", 0); /* the first strong character is Latin */
    CHECK(!m->runs[m->lines[0].run].rtl && m->runs[m->lines[0].run].x == 0);
}

static void test_blocks(void)
{
    params.width = 300;
    tl_view_set_params(view, &params);
    const struct tl_message *m =
        lay(0, "# Big\n\n- a\n  - b\n\n```\nint main() { return 0; }\nx\n```\n", 0);
    REQUIRE(m->n_lines == 5, "%zu lines", m->n_lines);
    CHECK(m->lines[0].h == 36, "a heading's line is taller");
    const struct tl_line *la = &m->lines[1], *lb = &m->lines[2];
    CHECK(la->n_runs == 2 && m->runs[la->run].span == TL_MARKER &&
          m->runs[la->run + 1].x == params.indent && m->runs[la->run].x < params.indent);
    CHECK(lb->n_runs == 2 && m->runs[lb->run + 1].x == 2 * params.indent);
    CHECK(la->y == 36 + params.block_gap && lb->y == la->y + 20 + params.block_gap / 2,
          "gaps: %d %d", la->y, lb->y);
    /* code wraps at the width between graphemes, not at spaces, and its
     * closing newline opens no empty line */
    params.width = 100;
    tl_view_set_params(view, &params);
    m = lay(0, "```\nint main() { return 0; }\nx\n```\n", 0);
    REQUIRE(m->n_lines == 4, "%zu lines", m->n_lines);
    CHECK(!strcmp(line_text(m, 0), "int main()") && !strcmp(line_text(m, 1), " { return "),
          "\"%s\" \"%s\"", line_text(m, 0), line_text(m, 1));
    CHECK(!strcmp(line_text(m, 2), "0; }") && !strcmp(line_text(m, 3), "x"),
          "newlines end lines but are not drawn: \"%s\"", line_text(m, 2));
    CHECK(m->runs[m->lines[0].run].style & MDOC_CODE_BLOCK);

    /* a table's cells side by side: two columns of 45 px */
    m = lay(0, "| a | bbbbb |\n|---|---|\n| c | d |\n", 0);
    REQUIRE(m->n_lines == 3, "%zu lines", m->n_lines);
    CHECK(m->lines[0].n_runs == 2 && m->runs[m->lines[0].run + 1].x == 55);
    CHECK(m->lines[1].n_runs == 1 && !strcmp(line_text(m, 1), "b"), "the long cell wraps alone");
    CHECK(m->lines[1].y == 20 && m->lines[2].y == 40, "rows follow without a gap");

    /* the thinking section, open and collapsed */
    const char *think = "<think>\nhmm\n\nhmm\n</think>\nanswer";
    m = lay(0, think, 0);
    CHECK(m->n_lines == 4);
    m = lay(0, think, TL_THINK_COLLAPSED);
    REQUIRE(m->n_lines == 2, "%zu lines", m->n_lines);
    CHECK(m->doc.blocks[m->lines[0].block].kind == MDOC_B_THINK && m->lines[0].n_runs == 0);
    CHECK(!strcmp(line_text(m, 1), "answer"));
}

/* Every grapheme boundary of a message maps to a point that maps back. */
static void test_hits_and_copy(void)
{
    tl_view_truncate(view, 0);
    const char *a = "Some **bold** text and `code` that wraps, שלום.";
    const char *b = "Second message";
    lay(0, a, 0);
    const struct tl_message *m1 = lay(1, b, MDOC_PLAIN);
    const struct tl_message *m0 = tl_view_message(view, 0);
    CHECK(m0->y == params.message_gap && m1->y == m0->y + m0->h + params.message_gap);
    CHECK(tl_view_height(view) == m1->y + m1->h);
    CHECK(tl_view_message_at(view, m1->y + 5) == 1 && tl_view_message_at(view, 0) == 0);
    CHECK(tl_view_message_at(view, 1 << 30) == 1);

    size_t round_trips = 0;
    for (size_t l = 0; l < m0->n_lines; l++) {
        const struct tl_line *ln = &m0->lines[l];
        for (uint32_t k = 0; k < ln->n_runs; k++) {
            const struct tl_run *r = &m0->runs[ln->run + k];
            if (!(r->style & MDOC_VERBATIM)) continue;
            for (size_t off = r->src; off < r->src_end; off++) {
                if (!grapheme_boundary(a + r->src, r->src_end - r->src, off - r->src)) continue;
                int x = tl_view_run_x(view, m0, r, off);
                struct tl_pos pos;
                REQUIRE(tl_view_hit(view, x, m0->y + ln->y + 1, &pos));
                CHECK(pos.message == 0 && pos.offset == off, "line %zu: offset %zu -> x %d -> %zu",
                      l, off, x, pos.offset);
                round_trips++;
            }
        }
    }
    CHECK(round_trips > 30, "%zu round trips", round_trips);

    /* inside "bold": the source offsets keep the asterisks */
    const char *bold = strstr(a, "bold");
    struct tl_pos p0 = {0, (size_t)(bold - a) + 2}, p1 = {0, (size_t)(strstr(a, "text") - a) + 2};
    size_t len;
    char *copy = tl_view_copy(view, p1, p0, &len);
    REQUIRE(copy);
    CHECK(!strcmp(copy, "ld** te") && len == 7, "\"%s\"", copy);
    free(copy);
    struct tl_pos end0 = {0, (size_t)(strstr(a, "שלום") - a)}, mid1 = {1, 6};
    copy = tl_view_copy(view, end0, mid1, &len);
    CHECK(copy && !strcmp(copy, "שלום.\n\nSecond"), "\"%s\"", copy);
    free(copy);

    /* points beyond the text */
    struct tl_pos pos;
    CHECK(tl_view_hit(view, 5, 0, &pos) && pos.message == 0 && pos.offset == 0);
    CHECK(tl_view_hit(view, 5, 1 << 20, &pos) && pos.message == 1 && pos.offset == strlen(b));
    CHECK(tl_view_hit(view, -50, m1->y + 1, &pos) && pos.offset == 0);
    CHECK(tl_view_hit(view, 5000, m1->y + 1, &pos) && pos.offset == 7,
          "the end of \"Second \": %zu", pos.offset);
}

/* Lines and runs of two messages are the same. */
static bool same_layout(const struct tl_message *x, const struct tl_message *y)
{
    if (x->n_lines != y->n_lines || x->n_runs != y->n_runs || x->h != y->h) return false;
    for (size_t l = 0; l < x->n_lines; l++)
        if (memcmp(&x->lines[l], &y->lines[l], sizeof x->lines[l])) return false;
    for (size_t r = 0; r < x->n_runs; r++)
        if (memcmp(&x->runs[r], &y->runs[r], sizeof x->runs[r])) return false;
    return true;
}

static void test_cache(void)
{
    static const char reply[] =
        "<think>\nfirst a plan\n</think>\n\n## Title\n\nA paragraph of several words here.\n\n"
        "1. one\n2. two\n\n```c\nint x = 1;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "The last paragraph grows a token at a time while the others stay as they were.";
    tl_view_truncate(view, 0);
    lay(0, "A question from the user", MDOC_PLAIN);
    measured = 0;
    lay(0, "A question from the user", MDOC_PLAIN);
    CHECK(measured == 0, "an unchanged message is not measured again");

    tl_view *fresh;
    struct vkllm_error err = {0};
    REQUIRE_OK(tl_view_create(&fake, &params, &fresh, &err));
    size_t len = strlen(reply), last_para = (size_t)(strstr(reply, "The last") - reply);
    long worst_tail = 0;
    for (size_t n = 1; n <= len; n++) {
        REQUIRE_OK(tl_view_set(view, 1, reply, n, MDOC_STREAMING, &err));
        measured = 0;
        REQUIRE_OK(tl_view_set(view, 1, reply, n + (n < len), MDOC_STREAMING, &err));
        if (n > last_para + 10 && measured > worst_tail) worst_tail = measured;
        /* the same as laying it out from scratch */
        REQUIRE_OK(tl_view_set(fresh, 0, reply, n + (n < len), MDOC_STREAMING, &err));
        const struct tl_message *x = tl_view_message(view, 1), *y = tl_view_message(fresh, 0);
        CHECK(same_layout(x, y), "prefix %zu: reused layout differs from a fresh one", n);
        tl_view_truncate(fresh, 0);
    }
    /* a token at the end measures the last paragraph's 16 words and 15
     * spaces, none of the blocks before it */
    CHECK(worst_tail > 0 && worst_tail <= 31, "a token in the last block measured %ld times",
          worst_tail);
    tl_view_destroy(fresh);

    /* a new width lays everything out again */
    int h = tl_view_message(view, 1)->h;
    params.width = 200;
    tl_view_set_params(view, &params);
    lay(1, reply, MDOC_STREAMING);
    CHECK(tl_view_message(view, 1)->h < h, "wider, shorter: %d vs %d", tl_view_message(view, 1)->h,
          h);
    params.width = 100;
    tl_view_set_params(view, &params);

    CHECK(tl_view_set(view, 5, "x", 1, 0, &err) == VKLLM_E_INVALID && err.msg[0]);
}

/* Regression (probe 3, Q-0b): a letter with N combining accents was one
 * grapheme cluster, measured again at every try to fit it: 40,000 accents
 * took 15 s, 200,000 minutes. Clusters end after 32 code points now, and the
 * bytes measured grow with the text, not its square. */
static void test_long_cluster(void)
{
    size_t sizes[] = {20000, 40000};
    size_t bytes[2];
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        char *text = malloc(2 * n + 2);
        REQUIRE(text != NULL);
        text[0] = 'a';
        for (size_t i = 0; i < n; i++)
            memcpy(text + 1 + 2 * i, "\xcc\x81", 2); /* U+0301 */
        text[1 + 2 * n] = 0;
        for (unsigned flags = 0; flags <= MDOC_PLAIN; flags += MDOC_PLAIN) {
            measured_bytes = 0;
            tl_view_truncate(view, 0);
            const struct tl_message *m = lay(0, text, flags);
            CHECK(m->n_lines >= 1, "no lines");
            bytes[k] = measured_bytes;
        }
        free(text);
    }
    CHECK(bytes[1] < 3 * bytes[0] && bytes[1] < 50 * (2 * sizes[1] + 1),
          "measured %zu bytes for %zu accents, %zu for %zu: not linear", bytes[0], sizes[0],
          bytes[1], sizes[1]);
    tl_view_truncate(view, 0);
}

/* Regression (probe 3, Q-3): a long message kept its 24-byte-a-character
 * cluster scratch after its layout (with the rest, ~80 bytes a character:
 * 4 GB for a 50 MB message). What stays is the layout itself: a few bytes a
 * character. (mallinfo2 counts glibc's heap; under the sanitizers it reads
 * zero and this checks nothing.) */
static void test_long_message_memory(void)
{
    size_t n = 1 << 20;
    char *text = malloc(n + 1);
    REQUIRE(text != NULL);
    memset(text, 'y', n);
    text[n] = 0;
    tl_view_truncate(view, 0);
    struct mallinfo2 before = mallinfo2();
    lay(0, text, MDOC_PLAIN);
    struct mallinfo2 after = mallinfo2();
    double per_char = ((double)after.uordblks + (double)after.hblkhd - (double)before.uordblks -
                       (double)before.hblkhd) /
                      (double)n;
    CHECK(per_char < 20, "a 1 MiB message keeps %.1f bytes a character", per_char);
    tl_view_truncate(view, 0);
    free(text);
}

int main(void)
{
    struct vkllm_error err = {0};
    REQUIRE_OK(tl_view_create(&fake, &params, &view, &err), "%s", err.msg);
    test_wrapping();
    test_direction();
    test_blocks();
    test_hits_and_copy();
    test_cache();
    test_long_cluster();
    test_long_message_memory();
    tl_view_destroy(view);
    return TEST_REPORT();
}
