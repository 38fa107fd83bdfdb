/* test_markdown.c: app/chat/markdown.c, the chat window's Markdown model.
 *
 * Blocks, spans and styles for what models write (headings, emphasis, lists,
 * code, links, tables, quotes, <think>), entities and escapes, the source
 * ranges that selection maps back through, and a reply streamed in a byte at
 * a time. `test_markdown --bench` times re-parsing a 20 KB reply per token
 * (the numbers in markdown.c's opening comment).
 */
#include "markdown.h"
#include "testhelp.h"

#include <string.h>
#include <time.h>

static struct mdoc doc;

static void parse_f(const char *md, unsigned flags)
{
    struct vkllm_error err = {0};
    REQUIRE_OK(mdoc_parse(&doc, md, strlen(md), flags, &err), "%s", err.msg);
}

static void parse(const char *md)
{
    parse_f(md, 0);
}

/* Block I's drawn text as a string. */
static const char *btext(size_t i)
{
    static char buf[4096];
    REQUIRE(i < doc.n_blocks, "block %zu of %zu", i, doc.n_blocks);
    const struct mdoc_block *b = &doc.blocks[i];
    size_t n = b->len < sizeof buf - 1 ? b->len : sizeof buf - 1;
    memcpy(buf, doc.text + b->text, n);
    buf[n] = 0;
    return buf;
}

/* The span whose text is exactly S (NULL if none). */
static const struct mdoc_span *span_of(const char *s)
{
    for (size_t i = 0; i < doc.n_spans; i++)
        if (doc.spans[i].len == strlen(s) && !memcmp(doc.text + doc.spans[i].text, s, strlen(s)))
            return &doc.spans[i];
    return NULL;
}

static uint32_t style_of(const char *s)
{
    const struct mdoc_span *sp = span_of(s);
    CHECK(sp != NULL, "no span \"%s\"", s);
    return sp ? sp->style & ~(uint32_t)MDOC_VERBATIM : 0xFFFFFFFF;
}

/* Invariants of any parse of SRC (LEN bytes): ranges inside the text and in
 * order, verbatim spans equal to their source, block text = its spans. */
static void check_invariants(const char *src, size_t len, const char *what)
{
    uint32_t last_src = 0;
    for (size_t i = 0; i < doc.n_blocks; i++) {
        const struct mdoc_block *b = &doc.blocks[i];
        CHECK(b->src <= b->src_end && b->src_end <= len, "%s: block %zu range %u..%u of %zu", what,
              i, b->src, b->src_end, len);
        CHECK(b->src >= last_src, "%s: block %zu starts at %u before %u", what, i, b->src,
              last_src);
        last_src = b->src;
        CHECK(b->span + b->n_spans <= doc.n_spans, "%s: block %zu spans", what, i);
        size_t sum = 0;
        for (uint32_t k = b->span; k < b->span + b->n_spans; k++) {
            const struct mdoc_span *sp = &doc.spans[k];
            CHECK(sp->text == b->text + sum, "%s: block %zu's text is not contiguous", what, i);
            sum += sp->len;
            CHECK(sp->src <= sp->src_end && sp->src_end <= len && sp->src >= b->src &&
                      sp->src_end <= b->src_end,
                  "%s: span %u range %u..%u", what, k, sp->src, sp->src_end);
            if (sp->style & MDOC_VERBATIM)
                CHECK(sp->src_end - sp->src == sp->len &&
                          !memcmp(src + sp->src, doc.text + sp->text, sp->len),
                      "%s: verbatim span %u differs from its source", what, k);
        }
        CHECK(sum == b->len, "%s: block %zu holds %u bytes, its spans %zu", what, i, b->len, sum);
        CHECK(memchr(b->marker, 0, sizeof b->marker) != NULL, "%s: marker not terminated", what);
    }
}

static void test_headings_and_emphasis(void)
{
    const char *md = "# Title\n\n## Sub *it*\n\nSetext\n===\n\n"
                     "a ***both*** and **bold *nested* b** ~~gone~~ _em_\n";
    parse(md);
    check_invariants(md, strlen(md), "headings");
    REQUIRE(doc.n_blocks == 4, "%zu blocks", doc.n_blocks);
    CHECK(doc.blocks[0].kind == MDOC_B_HEADING && doc.blocks[0].level == 1);
    CHECK(!strcmp(btext(0), "Title"), "\"%s\"", btext(0));
    CHECK(doc.blocks[1].kind == MDOC_B_HEADING && doc.blocks[1].level == 2);
    CHECK(!strcmp(btext(1), "Sub it"), "\"%s\"", btext(1));
    CHECK(style_of("it") == (MDOC_ITALIC | 2u << MDOC_HEADING_SHIFT), "%x", style_of("it"));
    CHECK(MDOC_HEADING(style_of("Title")) == 1);
    CHECK(doc.blocks[2].kind == MDOC_B_HEADING && doc.blocks[2].level == 1, "setext heading");
    CHECK(doc.blocks[3].kind == MDOC_B_PARAGRAPH);
    CHECK(!strcmp(btext(3), "a both and bold nested b gone em"), "\"%s\"", btext(3));
    CHECK(style_of("both") == (MDOC_BOLD | MDOC_ITALIC), "%x", style_of("both"));
    CHECK(style_of("bold ") == MDOC_BOLD, "%x", style_of("bold "));
    CHECK(style_of("nested") == (MDOC_BOLD | MDOC_ITALIC), "%x", style_of("nested"));
    CHECK(style_of(" b") == MDOC_BOLD);
    CHECK(style_of("gone") == MDOC_STRIKE);
    CHECK(style_of("em") == MDOC_ITALIC);
    /* the source of "nested" is where it is in the text */
    const struct mdoc_span *sp = span_of("nested");
    CHECK(sp && sp->src == (uint32_t)(strstr(md, "nested") - md) && (sp->style & MDOC_VERBATIM));
}

static void test_lists(void)
{
    const char *md = "- a\n  - b\n    - c\n- d\n\n"
                     "3. three\n4. four\n\n"
                     "7) seven\n\n"
                     "- [ ] todo\n- [x] done\n";
    parse(md);
    check_invariants(md, strlen(md), "lists");
    const char *want[][2] = {{"•", "a"},      {"◦", "b"},      {"▪", "c"},
                             {"•", "d"},      {"3.", "three"}, {"4.", "four"},
                             {"7)", "seven"}, {"☐", "todo"},   {"☑", "done"}};
    const int depth[] = {1, 2, 3, 1, 1, 1, 1, 1, 1};
    REQUIRE(doc.n_blocks == 9, "%zu blocks", doc.n_blocks);
    for (size_t i = 0; i < 9; i++) {
        const struct mdoc_block *b = &doc.blocks[i];
        CHECK(b->kind == MDOC_B_ITEM && !strcmp(b->marker, want[i][0]) &&
                  !strcmp(btext(i), want[i][1]) && b->list_depth == depth[i] &&
                  (b->flags & MDOC_TIGHT),
              "block %zu: kind %d marker \"%s\" text \"%s\" depth %d", i, b->kind, b->marker,
              btext(i), b->list_depth);
    }

    /* a loose item with two paragraphs, one with a code block first, an empty one */
    md = "1. first\n\n   more\n\n2. ```\n   code\n   ```\n3.\n";
    parse(md);
    check_invariants(md, strlen(md), "loose list");
    REQUIRE(doc.n_blocks == 5, "%zu blocks", doc.n_blocks);
    CHECK(doc.blocks[0].kind == MDOC_B_ITEM && !strcmp(doc.blocks[0].marker, "1.") &&
          !(doc.blocks[0].flags & MDOC_TIGHT));
    CHECK(doc.blocks[1].kind == MDOC_B_PARAGRAPH && doc.blocks[1].list_depth == 1 &&
          !strcmp(btext(1), "more"));
    CHECK(doc.blocks[2].kind == MDOC_B_ITEM && !strcmp(doc.blocks[2].marker, "2.") &&
          doc.blocks[2].len == 0);
    CHECK(doc.blocks[3].kind == MDOC_B_CODE && doc.blocks[3].list_depth == 1 &&
              !strcmp(btext(3), "code\n"),
          "\"%s\"", btext(3));
    CHECK(doc.blocks[4].kind == MDOC_B_ITEM && !strcmp(doc.blocks[4].marker, "3."));

    /* quotes and a rule */
    md = "> quoted\n> > deeper\n\n---\n\nafter\n";
    parse(md);
    check_invariants(md, strlen(md), "quotes");
    REQUIRE(doc.n_blocks == 4, "%zu blocks", doc.n_blocks);
    CHECK(doc.blocks[0].quote_depth == 1 && !strcmp(btext(0), "quoted"));
    CHECK(doc.blocks[1].quote_depth == 2 && !strcmp(btext(1), "deeper"));
    CHECK(doc.blocks[2].kind == MDOC_B_RULE && doc.blocks[2].n_spans == 0);
    CHECK(doc.blocks[3].quote_depth == 0 && doc.blocks[3].kind == MDOC_B_PARAGRAPH);
}

static void test_code(void)
{
    const char *md = "Use `x < y` here.\n\n```python title\ndef f():\n    return 1\n```\n\n"
                     "    indented\n\ntext\n\n~~~\nunclosed at the end\n";
    parse(md);
    check_invariants(md, strlen(md), "code");
    REQUIRE(doc.n_blocks == 5, "%zu blocks", doc.n_blocks);
    CHECK(style_of("x < y") == MDOC_CODE);
    CHECK(!strcmp(btext(0), "Use x < y here."));
    const struct mdoc_block *b = &doc.blocks[1];
    CHECK(b->kind == MDOC_B_CODE && b->lang_len == 6 && !memcmp(doc.attr + b->lang, "python", 6));
    CHECK(!strcmp(btext(1), "def f():\n    return 1\n"), "\"%s\"", btext(1));
    for (uint32_t k = b->span; k < b->span + b->n_spans; k++)
        CHECK(doc.spans[k].style & MDOC_CODE_BLOCK);
    CHECK(doc.blocks[2].kind == MDOC_B_CODE && doc.blocks[2].lang_len == 0 &&
          !strcmp(btext(2), "indented\n"));
    /* while a reply streams, an open fence runs to the end */
    CHECK(doc.blocks[4].kind == MDOC_B_CODE && !strcmp(btext(4), "unclosed at the end\n"));
}

static void test_links_entities_escapes(void)
{
    const char *md = "See [the *site*](https://a.b/c?d=1&amp;e \"t\") and <https://x.y/z> or "
                     "https://bare.example/p.\n\n"
                     "&copy; &#x1F600;&#65; &unknown; &#0; \\*not em\\* a\\\nb <div>raw</div>";
    parse(md);
    check_invariants(md, strlen(md), "links");
    REQUIRE(doc.n_blocks == 2, "%zu blocks", doc.n_blocks);
    const struct mdoc_span *sp = span_of("site");
    REQUIRE(sp != NULL);
    CHECK((sp->style & (MDOC_LINK | MDOC_ITALIC)) == (MDOC_LINK | MDOC_ITALIC));
    CHECK(sp->link_len == 19 && !memcmp(doc.attr + sp->link, "https://a.b/c?d=1&e", 19),
          "url \"%.*s\"", (int)sp->link_len, doc.attr + sp->link);
    sp = span_of("https://x.y/z");
    CHECK(sp && (sp->style & MDOC_LINK) && sp->link_len == 13);
    sp = span_of("https://bare.example/p");
    CHECK(sp && (sp->style & MDOC_LINK), "bare URL (MD_FLAG_PERMISSIVEURLAUTOLINKS)");
    CHECK(!strcmp(btext(0), "See the site and https://x.y/z or https://bare.example/p."), "\"%s\"",
          btext(0));

    CHECK(!strcmp(btext(1), "© 😀A &unknown; \xef\xbf\xbd *not em* a\nb <div>raw</div>"), "\"%s\"",
          btext(1));
    sp = span_of("©");
    REQUIRE(sp != NULL);
    CHECK(!(sp->style & MDOC_VERBATIM) && sp->src_end - sp->src == 6 &&
              !memcmp(md + sp->src, "&copy;", 6),
          "an entity maps to its source");
    /* an escape drops the backslash: the span from the star on points at the star */
    sp = span_of("*not em");
    CHECK(sp && md[sp->src] == '*' && md[sp->src - 1] == '\\');
}

static void test_tables(void)
{
    const char *md = "| Name | **Value** |\n|------|------:|\n| a | 1 |\n| b &amp; c | |\n";
    parse(md);
    check_invariants(md, strlen(md), "table");
    REQUIRE(doc.n_blocks == 3, "%zu blocks", doc.n_blocks);
    for (int i = 0; i < 3; i++)
        CHECK(doc.blocks[i].kind == MDOC_B_ROW && doc.blocks[i].n_cells == 2);
    CHECK(doc.blocks[0].flags & MDOC_TABLE_HEAD);
    CHECK(!(doc.blocks[1].flags & MDOC_TABLE_HEAD));
    CHECK(style_of("Name") == MDOC_BOLD, "header cells are bold");
    const struct mdoc_span *sp = span_of("Value");
    CHECK(sp && sp->cell == 1);
    sp = span_of("1");
    CHECK(sp && sp->cell == 1 && doc.spans[doc.blocks[1].span].cell == 0);
    CHECK(!strcmp(btext(2), "b & c"), "\"%s\"", btext(2));
}

static void test_think(void)
{
    const char *md = "\n<think>\nLet me *think*.\n\n- a step\n</think>\n\nThe answer.";
    parse(md);
    check_invariants(md, strlen(md), "think");
    REQUIRE(doc.n_blocks == 4, "%zu blocks", doc.n_blocks);
    const struct mdoc_block *h = &doc.blocks[0];
    CHECK(h->kind == MDOC_B_THINK && !(h->flags & MDOC_OPEN) && h->src == 1 &&
          h->src_end == (uint32_t)(strstr(md, "</think>") + 8 - md));
    CHECK(doc.blocks[1].flags & MDOC_IN_THINK && !strcmp(btext(1), "Let me think."));
    CHECK(style_of("think") == (MDOC_THINK | MDOC_ITALIC));
    CHECK(doc.blocks[2].kind == MDOC_B_ITEM && (doc.blocks[2].flags & MDOC_IN_THINK));
    CHECK(!(doc.blocks[3].flags & MDOC_IN_THINK) && !strcmp(btext(3), "The answer."));
    CHECK(style_of("The answer.") == 0);

    md = "<think>still going\n\nmore</thi";
    parse_f(md, MDOC_STREAMING);
    check_invariants(md, strlen(md), "open think");
    REQUIRE(doc.n_blocks == 3, "%zu blocks", doc.n_blocks);
    CHECK(doc.blocks[0].kind == MDOC_B_THINK && (doc.blocks[0].flags & MDOC_OPEN));
    CHECK(!strcmp(btext(2), "more"), "a half-written </think> is held back: \"%s\"", btext(2));
    parse(md); /* not streaming: the text is all there is */
    CHECK(doc.n_blocks == 3 && !strcmp(btext(2), "more</thi"));

    parse_f("  <thi", MDOC_STREAMING);
    CHECK(doc.n_blocks == 0, "a half-written <think> shows nothing yet");
    parse("  <thi");
    CHECK(doc.n_blocks == 1 && !strcmp(btext(0), "<thi"));
    parse("Not <think> at the start");
    CHECK(doc.n_blocks == 1 && doc.blocks[0].kind == MDOC_B_PARAGRAPH &&
              !strcmp(btext(0), "Not <think> at the start"),
          "raw HTML is text");
}

static void test_plain_and_empty(void)
{
    parse("");
    CHECK(doc.n_blocks == 0 && doc.n_spans == 0);
    parse_f("", MDOC_PLAIN);
    CHECK(doc.n_blocks == 0);
    parse("\n\n  \n");
    CHECK(doc.n_blocks == 0);
    const char *typed = "# not a heading\n*as typed*";
    parse_f(typed, MDOC_PLAIN);
    check_invariants(typed, strlen(typed), "plain");
    CHECK(doc.n_blocks == 1 && !strcmp(btext(0), typed));
    CHECK(doc.n_spans == 1 && (doc.spans[0].style & MDOC_VERBATIM));
    /* md4c 0.4.8 reads the byte after its input in an unfinished link: a
     * streamed prefix whose next byte closes the link crashed it */
    const char *link = "a [l](h)";
    struct vkllm_error err = {0};
    REQUIRE_OK(mdoc_parse(&doc, link, 7, MDOC_STREAMING, &err));
    check_invariants(link, 7, "unfinished link");
    CHECK(doc.n_blocks == 1 && !strcmp(btext(0), "a [l](h"), "\"%s\"", btext(0));
    /* a NUL byte in the text */
    REQUIRE_OK(mdoc_parse(&doc, "a\0b", 3, 0, &err));
    CHECK(doc.n_blocks == 1 && !strcmp(btext(0), "a\xef\xbf\xbd"
                                                 "b"),
          "\"%s\"", btext(0));
}

/* Regression: spans nested deeper than the parser keeps styles for (a model
 * streaming a run of asterisks) read past span_style[16] and crashed the
 * window whenever the chat was shown. */
static void test_deep_nesting(void)
{
    static const size_t runs[] = {17, 40, 1000, 20000};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        size_t k = runs[r], len = 2 * k + 1;
        char *md = malloc(len + 1);
        REQUIRE(md != NULL);
        memset(md, '*', len);
        md[k] = 'a';
        md[len] = 0;
        char what[48];
        snprintf(what, sizeof what, "%zu asterisks each side", k);
        for (unsigned flags = 0; flags <= MDOC_STREAMING; flags += MDOC_STREAMING) {
            parse_f(md, flags);
            check_invariants(md, len, what);
            /* md4c pairs the asterisks as strong spans, an odd one as emphasis */
            uint32_t want = MDOC_BOLD | (k % 2 ? MDOC_ITALIC : 0);
            CHECK(style_of("a") == want, "%s: style %#x", what, style_of("a"));
        }
        free(md);
    }
}

/* What models write: thinking, a heading, a list, code, a table, a quote. */
static const char reply[] =
    "<think>\nThe user wants a **sort**. Quick sort is fine.\n</think>\n\n"
    "## Sorting in C\n\n"
    "Here is a *short* answer with `qsort` &amp; a [link](https://en.cppreference.com/).\n\n"
    "1. Include `<stdlib.h>`.\n2. Write a comparator:\n   - it returns `<0`, `0` or `>0`\n"
    "3. Call it.\n\n"
    "```c\nint cmp(const void *a, const void *b)\n{\n    return *(int *)a - *(int *)b;\n}\n```\n\n"
    "| Function | Stable |\n|---|---|\n| qsort | no |\n\n"
    "> Note: overflow in `a - b`.\n\n"
    "---\n\nДобро пожаловать. 你好，世界。 שלום\n";

/* Every prefix, as the reply streams in: valid, and the blocks that end
 * before the last blank line are already those of the whole reply. */
static void test_streaming(void)
{
    size_t len = strlen(reply);
    struct mdoc whole = {0};
    struct vkllm_error err = {0};
    REQUIRE_OK(mdoc_parse(&whole, reply, len, 0, &err));
    REQUIRE(whole.n_blocks == 14, "%zu blocks", whole.n_blocks);
    size_t stable_checked = 0, prev_blocks = 0;
    for (size_t n = 0; n <= len; n++) {
        REQUIRE_OK(mdoc_parse(&doc, reply, n, MDOC_STREAMING, &err), "prefix %zu: %s", n, err.msg);
        char what[32];
        snprintf(what, sizeof what, "prefix %zu", n);
        check_invariants(reply, n, what);
        /* blocks come and (setext, fences) change, but do not fall back */
        CHECK(doc.n_blocks + 1 >= prev_blocks, "prefix %zu: %zu blocks after %zu", n, doc.n_blocks,
              prev_blocks);
        prev_blocks = doc.n_blocks;
        size_t boundary = 0; /* the last blank line */
        for (size_t i = 0; i + 1 < n; i++)
            if (reply[i] == '\n' && reply[i + 1] == '\n') boundary = i;
        for (size_t b = 0; b < doc.n_blocks; b++) {
            const struct mdoc_block *x = &doc.blocks[b];
            if (x->kind == MDOC_B_THINK || x->src_end >= boundary) continue;
            REQUIRE(b < whole.n_blocks);
            const struct mdoc_block *y = &whole.blocks[b];
            CHECK(x->kind == y->kind && x->len == y->len && !strcmp(x->marker, y->marker) &&
                      !memcmp(doc.text + x->text, whole.text + y->text, x->len),
                  "prefix %zu: block %zu \"%.*s\" is not final \"%.*s\"", n, b, (int)x->len,
                  doc.text + x->text, (int)y->len, whole.text + y->text);
            stable_checked++;
        }
    }
    CHECK(doc.n_blocks == whole.n_blocks, "the last prefix is the whole reply");
    CHECK(stable_checked > 1000, "%zu stable blocks compared", stable_checked);
    mdoc_free(&whole);
}

/* A 20 KB reply re-parsed whole after every 4-byte token. */
static void bench(void)
{
    char *big = malloc(20001);
    size_t n = 0;
    while (n < 20000) {
        size_t k = strlen(reply) - 60; /* the reply without its <think> */
        if (k > 20000 - n) k = 20000 - n;
        memcpy(big + n, reply + 60, k);
        n += k;
    }
    struct vkllm_error err = {0};
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t parses = 0, tail_from = n - 400;
    for (size_t end = 4; end <= n; end += 4, parses++) {
        if (end == tail_from) clock_gettime(CLOCK_MONOTONIC, &t1);
        REQUIRE_OK(mdoc_parse(&doc, big, end, MDOC_STREAMING, &err));
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double total = (double)(t2.tv_sec - t0.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t0.tv_nsec);
    double tail = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    printf("%zu parses of a %zu-byte reply, 4 bytes a token: %.3f s in all, %.1f us a token, "
           "%.1f us for the last ones (%zu blocks)\n",
           parses, n, total, 1e6 * total / (double)parses, 1e6 * tail / 100, doc.n_blocks);
    free(big);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench();
        mdoc_free(&doc);
        return 0;
    }
    test_headings_and_emphasis();
    test_lists();
    test_code();
    test_links_entities_escapes();
    test_tables();
    test_think();
    test_plain_and_empty();
    test_deep_nesting();
    test_streaming();
    mdoc_free(&doc);
    return TEST_REPORT();
}
