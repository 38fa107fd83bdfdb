/* markdown.c: Markdown -> blocks and spans, through md4c's callbacks.
 *
 * Dialect: CommonMark plus GitHub's tables, strikethrough, task lists and bare
 * URLs (MD_DIALECT_GITHUB), because that is what models were trained to write;
 * without raw HTML (MD_FLAG_NOHTML), because the window cannot render HTML and
 * an HTML block would swallow the lines after a stray `<div>` or `<T>` in the
 * prose: tags are shown as the text they are.
 *
 * md4c hands out pointers into the text for everything it read there, so a
 * span's source range is that pointer's offset. A few pieces are its own
 * constants (the "\n" of a soft break, a code line's indent, U+0000's
 * replacement): those are not in the text, and map to the point where the
 * previous piece ended.
 *
 * md4c 0.4.8 reads the byte after the end of its input in an unfinished
 * inline link: "a [l](h" followed by ")" in memory crashes it, and a reply
 * streaming in is a prefix of its own later text. So md4c reads a copy that
 * ends in a NUL.
 *
 * Streaming cost, measured by `test_markdown --bench` (a 20 KB reply re-parsed
 * whole after every 4-byte token: 5,000 parses, 50 MB in all; Release, on a
 * shared 2-core build machine): 1.0-1.5 s in all, 0.2-0.3 ms a token on
 * average, 0.4-0.5 ms for the last tokens, most of it md4c's own pass (a bare
 * md_parse of the 20 KB takes about 0.3 ms). The window parses a message at
 * most once a frame, however many tokens came since the last, so this is
 * under 3% of a 60 Hz frame at 20 KB: the whole reply is re-parsed. Starting
 * from "the last block that cannot change" would be fragile in CommonMark (a
 * link reference definition changes links above it, a blank line makes a
 * list loose, a fence reopens what follows). The layout does keep the lines
 * of unchanged blocks (text_layout.c).
 */
#include "markdown.h"

#include "error.h"

#include <md4c.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char think_open[] = "<think>";
static const char think_close[] = "</think>";

/* ---- growing the document */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

/* Appends N bytes to a text buffer (kept NUL-terminated); *AT: where. */
static bool add_bytes(char **buf, size_t *used, size_t *cap, const char *s, size_t n, uint32_t *at)
{
    if (*used + n >= UINT32_MAX) return false;
    if (!grow((void **)buf, cap, *used + n + 1, 1)) return false;
    *at = (uint32_t)*used;
    if (n) memcpy(*buf + *used, s, n);
    *used += n;
    (*buf)[*used] = 0;
    return true;
}

static bool add_text(struct mdoc *d, const char *s, size_t n, uint32_t *at)
{
    return add_bytes(&d->text, &d->n_text, &d->cap_text, s, n, at);
}

/* ---- the parser's state between callbacks */

struct list {
    bool ordered, tight;
    unsigned next; /* the next item's number */
    char delim;    /* '.' or ')' */
};

#define MAX_SPAN_STYLES 16

struct parse {
    struct mdoc *doc;
    const char *src;       /* the whole message */
    size_t seg, seg_end;   /* the part md4c is parsing now */
    uint32_t at;           /* where the last piece from the text ended */
    uint32_t base_style;   /* MDOC_THINK inside the thinking section */
    long cur;              /* the open block, or -1 */
    struct list lists[32]; /* md4c nests deeper only on pathological input */
    int n_lists, quote_depth;
    char pending[12]; /* a list item's marker, until its first block */
    bool have_pending, pending_tight;
    uint32_t span_style[MAX_SPAN_STYLES]; /* styles of the open spans, innermost last */
    uint32_t link, link_len;              /* the innermost open link's URL */
    int n_open_spans;
    bool table_head;
    int cell; /* current table cell, -1 before the first */
    bool nomem;
};

/* The innermost open span's style; spans nested deeper than span_style holds
 * (a run of a thousand asterisks) share the deepest one kept. */
static uint32_t open_style(const struct parse *p)
{
    if (p->n_open_spans <= 0) return 0;
    int i = p->n_open_spans < MAX_SPAN_STYLES ? p->n_open_spans : MAX_SPAN_STYLES;
    return p->span_style[i - 1];
}

static struct mdoc_block *cur_block(struct parse *p)
{
    return p->cur < 0 ? NULL : &p->doc->blocks[p->cur];
}

static struct mdoc_block *begin_block(struct parse *p, enum mdoc_kind kind)
{
    struct mdoc *d = p->doc;
    if (!grow((void **)&d->blocks, &d->cap_blocks, d->n_blocks + 1, sizeof *d->blocks)) {
        p->nomem = true;
        return NULL;
    }
    struct mdoc_block *b = &d->blocks[d->n_blocks];
    memset(b, 0, sizeof *b);
    b->kind = (uint8_t)kind;
    b->flags = p->base_style & MDOC_THINK ? MDOC_IN_THINK : 0;
    b->list_depth = (uint8_t)p->n_lists;
    b->quote_depth = (uint8_t)(p->quote_depth > 255 ? 255 : p->quote_depth);
    b->span = (uint32_t)d->n_spans;
    b->text = (uint32_t)d->n_text;
    b->src = b->src_end = p->at;
    p->cur = (long)d->n_blocks++;
    return b;
}

static void end_block(struct parse *p)
{
    struct mdoc_block *b = cur_block(p);
    if (!b) return;
    b->len = (uint32_t)p->doc->n_text - b->text;
    if (b->n_spans) {
        const struct mdoc_span *first = &p->doc->spans[b->span];
        const struct mdoc_span *last = &p->doc->spans[b->span + b->n_spans - 1];
        b->src = first->src;
        b->src_end = last->src_end;
    }
    p->cur = -1;
}

static void take_marker(struct parse *p, struct mdoc_block *b)
{
    memcpy(b->marker, p->pending, sizeof b->marker);
    b->flags |= p->pending_tight ? MDOC_TIGHT : 0;
    p->have_pending = false;
}

/* A list item's marker goes on its first block, if that is text. An item that
 * starts with something else (a code block, a nested list, a quote) or holds
 * nothing gets an empty item block for its marker. */
static void flush_marker(struct parse *p)
{
    end_block(p);
    if (!p->have_pending) return;
    struct mdoc_block *item = begin_block(p, MDOC_B_ITEM);
    if (item) take_marker(p, item);
    end_block(p);
}

/* Ends the open block and begins one of KIND (an item, if a marker waits). */
static struct mdoc_block *open_block(struct parse *p, enum mdoc_kind kind)
{
    if (kind != MDOC_B_PARAGRAPH) flush_marker(p);
    end_block(p);
    struct mdoc_block *b = begin_block(p, p->have_pending ? MDOC_B_ITEM : kind);
    if (b && p->have_pending) take_marker(p, b);
    return b;
}

/* ---- text: decoding what md4c reports */

/* Appends code point C as UTF-8 (U+FFFD for what is not a scalar value). */
static int put_utf8(char *out, unsigned long c)
{
    if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* md4c reports any &name; without knowing the names. These are the ones
 * chat text uses; any other stays as written (CommonMark: an unknown name is
 * not an entity). */
static const struct {
    const char *name;
    unsigned cp;
} entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"laquo", 0xAB},   {"raquo", 0xBB},   {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"times", 0xD7},   {"divide", 0xF7},
    {"deg", 0xB0},     {"plusmn", 0xB1},  {"middot", 0xB7},  {"bull", 0x2022},  {"euro", 0x20AC},
    {"pound", 0xA3},   {"yen", 0xA5},     {"cent", 0xA2},    {"sect", 0xA7},    {"para", 0xB6},
    {"larr", 0x2190},  {"rarr", 0x2192},  {"uarr", 0x2191},  {"darr", 0x2193},  {"harr", 0x2194},
    {"le", 0x2264},    {"ge", 0x2265},    {"ne", 0x2260},    {"infin", 0x221E}, {"shy", 0xAD},
};

/* Decodes the entity S (N bytes, "&...;") into OUT (4 bytes at least);
 * returns the length, or 0 for an unknown name. */
static int decode_entity(const char *s, size_t n, char *out)
{
    if (n < 3) return 0;
    if (s[1] == '#') {
        bool hex = n > 3 && (s[2] == 'x' || s[2] == 'X');
        unsigned long c = 0;
        for (size_t i = hex ? 3 : 2; i + 1 < n; i++) {
            int v = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                    : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                    : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
                                                 : 99;
            if (v >= (hex ? 16 : 10)) return 0;
            if (c <= 0x10FFFF) c = c * (hex ? 16 : 10) + (unsigned long)v;
        }
        return put_utf8(out, c);
    }
    for (size_t i = 0; i < sizeof entities / sizeof *entities; i++)
        if (strlen(entities[i].name) == n - 2 && !memcmp(entities[i].name, s + 1, n - 2))
            return put_utf8(out, entities[i].cp);
    return 0;
}

/* Appends a span of drawn text S (N bytes) from source bytes SRC..SRC_END.
 * VERBATIM: S is those bytes. */
static void add_span(struct parse *p, const char *s, size_t n, uint32_t src, uint32_t src_end,
                     bool verbatim)
{
    struct mdoc *d = p->doc;
    struct mdoc_block *b = cur_block(p);
    uint32_t style = p->base_style | open_style(p);
    if (b->kind == MDOC_B_CODE) style |= MDOC_CODE_BLOCK;
    if (b->kind == MDOC_B_HEADING) style |= (uint32_t)b->level << MDOC_HEADING_SHIFT;
    if (b->kind == MDOC_B_ROW && p->table_head) style |= MDOC_BOLD;
    if (verbatim) style |= MDOC_VERBATIM;
    uint32_t cell = p->cell < 0 ? 0 : (uint32_t)p->cell;

    /* one span for a run of text md4c reports in pieces (words around an
     * escape, the lines of a code block) */
    struct mdoc_span *last = b->n_spans ? &d->spans[d->n_spans - 1] : NULL;
    if (last && verbatim && last->style == style && last->cell == cell && last->link == p->link &&
        last->link_len == p->link_len && last->src_end == src &&
        last->text + last->len == d->n_text) {
        uint32_t at;
        if (!add_text(d, s, n, &at)) {
            p->nomem = true;
            return;
        }
        last->len += (uint32_t)n;
        last->src_end = src_end;
        p->at = src_end;
        return;
    }
    if (!grow((void **)&d->spans, &d->cap_spans, d->n_spans + 1, sizeof *d->spans)) {
        p->nomem = true;
        return;
    }
    struct mdoc_span *sp = &d->spans[d->n_spans];
    if (!add_text(d, s, n, &sp->text)) {
        p->nomem = true;
        return;
    }
    sp->len = (uint32_t)n;
    sp->src = src;
    sp->src_end = src_end;
    sp->style = style;
    sp->link = p->link;
    sp->link_len = p->link_len;
    sp->cell = cell;
    d->n_spans++;
    b->n_spans++;
    p->at = src_end;
}

static int on_text(MD_TEXTTYPE type, const MD_CHAR *s, MD_SIZE n, void *user)
{
    struct parse *p = user;
    if (!cur_block(p) && !open_block(p, MDOC_B_PARAGRAPH)) return 1; /* a tight list item's text */
    /* integers: the constants are other objects than the text */
    uintptr_t a = (uintptr_t)s, lo = (uintptr_t)(p->src + p->seg);
    bool in_src = a >= lo && a + n <= lo + (p->seg_end - p->seg);
    uint32_t src = in_src ? (uint32_t)(s - p->src) : p->at;
    uint32_t src_end = in_src ? src + n : p->at;
    char buf[4];
    switch (type) {
    case MD_TEXT_NULLCHAR: add_span(p, "\xef\xbf\xbd", 3, src, src, false); break;
    case MD_TEXT_BR: add_span(p, "\n", 1, p->at, p->at, false); break;
    /* CommonMark: a soft break is a space */
    case MD_TEXT_SOFTBR: add_span(p, " ", 1, p->at, p->at, false); break;
    case MD_TEXT_ENTITY: {
        int k = decode_entity(s, n, buf);
        if (k)
            add_span(p, buf, (size_t)k, src, src_end, false);
        else
            add_span(p, s, n, src, src_end, in_src);
        break;
    }
    default: add_span(p, s, n, src, src_end, in_src); break;
    }
    return p->nomem;
}

/* An attribute (a URL, a fence's language) decoded into the text buffer. */
static void add_attribute(struct parse *p, const MD_ATTRIBUTE *a, uint32_t *at, uint32_t *len)
{
    struct mdoc *d = p->doc;
    *at = (uint32_t)d->n_attr;
    *len = 0;
    for (unsigned i = 0; a->substr_offsets && a->substr_offsets[i] < a->size; i++) {
        const char *s = a->text + a->substr_offsets[i];
        size_t n = a->substr_offsets[i + 1] - a->substr_offsets[i];
        char buf[4];
        int k = 0;
        if (a->substr_types[i] == MD_TEXT_NULLCHAR)
            k = put_utf8(buf, 0);
        else if (a->substr_types[i] == MD_TEXT_ENTITY)
            k = decode_entity(s, n, buf);
        uint32_t ignored;
        if (!add_bytes(&d->attr, &d->n_attr, &d->cap_attr, k ? buf : s, k ? (size_t)k : n,
                       &ignored)) {
            p->nomem = true;
            return;
        }
    }
    *len = (uint32_t)d->n_attr - *at;
}

/* ---- blocks and spans */

static void list_marker(struct parse *p, const MD_BLOCK_LI_DETAIL *li)
{
    struct list *l = &p->lists[p->n_lists - 1];
    if (li && li->is_task)
        snprintf(p->pending, sizeof p->pending, "%s", li->task_mark == ' ' ? "☐" : "☑");
    else if (l->ordered)
        snprintf(p->pending, sizeof p->pending, "%u%c", l->next++, l->delim);
    else {
        static const char *const bullets[] = {"•", "◦", "▪"};
        snprintf(p->pending, sizeof p->pending, "%s", bullets[(p->n_lists - 1) % 3]);
    }
    p->have_pending = true;
    p->pending_tight = l->tight;
}

static int on_enter_block(MD_BLOCKTYPE type, void *detail, void *user)
{
    struct parse *p = user;
    switch (type) {
    case MD_BLOCK_DOC: break;
    case MD_BLOCK_QUOTE:
        flush_marker(p);
        p->quote_depth++;
        break;
    case MD_BLOCK_UL:
    case MD_BLOCK_OL: {
        flush_marker(p);
        if (p->n_lists == (int)(sizeof p->lists / sizeof *p->lists)) return 1;
        struct list *l = &p->lists[p->n_lists++];
        memset(l, 0, sizeof *l);
        if (type == MD_BLOCK_OL) {
            const MD_BLOCK_OL_DETAIL *ol = detail;
            l->ordered = true;
            l->next = ol->start;
            l->delim = ol->mark_delimiter;
            l->tight = ol->is_tight;
        } else {
            l->tight = ((const MD_BLOCK_UL_DETAIL *)detail)->is_tight;
        }
        break;
    }
    case MD_BLOCK_LI:
        end_block(p);
        list_marker(p, detail);
        break;
    case MD_BLOCK_HR:
        if (open_block(p, MDOC_B_RULE)) end_block(p);
        break;
    case MD_BLOCK_H: {
        struct mdoc_block *b = open_block(p, MDOC_B_HEADING);
        if (b) b->level = (uint8_t)((const MD_BLOCK_H_DETAIL *)detail)->level;
        break;
    }
    case MD_BLOCK_CODE: {
        struct mdoc_block *b = open_block(p, MDOC_B_CODE);
        if (b)
            add_attribute(p, &((const MD_BLOCK_CODE_DETAIL *)detail)->lang, &b->lang, &b->lang_len);
        break;
    }
    case MD_BLOCK_HTML: /* not with MD_FLAG_NOHTML; shown as text if it ever comes */
    case MD_BLOCK_P: open_block(p, MDOC_B_PARAGRAPH); break;
    case MD_BLOCK_TABLE: break;
    case MD_BLOCK_THEAD: p->table_head = true; break;
    case MD_BLOCK_TBODY: p->table_head = false; break;
    case MD_BLOCK_TR: {
        struct mdoc_block *b = open_block(p, MDOC_B_ROW);
        if (b && p->table_head) b->flags |= MDOC_TABLE_HEAD;
        p->cell = -1;
        break;
    }
    case MD_BLOCK_TH:
    case MD_BLOCK_TD: {
        struct mdoc_block *b = cur_block(p);
        if (p->cell < 255) p->cell++;
        if (b) b->n_cells = (uint16_t)(p->cell + 1);
        break;
    }
    }
    return p->nomem;
}

static int on_leave_block(MD_BLOCKTYPE type, void *detail, void *user)
{
    struct parse *p = user;
    (void)detail;
    switch (type) {
    case MD_BLOCK_QUOTE:
        end_block(p);
        p->quote_depth--;
        break;
    case MD_BLOCK_UL:
    case MD_BLOCK_OL:
        end_block(p);
        p->n_lists--;
        break;
    case MD_BLOCK_LI:
        flush_marker(p); /* an empty item still shows its marker */
        break;
    case MD_BLOCK_H:
    case MD_BLOCK_CODE:
    case MD_BLOCK_HTML:
    case MD_BLOCK_P:
    case MD_BLOCK_TR: end_block(p); break;
    default: break;
    }
    return p->nomem;
}

static int on_enter_span(MD_SPANTYPE type, void *detail, void *user)
{
    struct parse *p = user;
    uint32_t style = open_style(p);
    switch (type) {
    case MD_SPAN_EM: style |= MDOC_ITALIC; break;
    case MD_SPAN_STRONG: style |= MDOC_BOLD; break;
    case MD_SPAN_DEL: style |= MDOC_STRIKE; break;
    case MD_SPAN_CODE: style |= MDOC_CODE; break;
    case MD_SPAN_A: /* links and images are drawn as their text */
    case MD_SPAN_IMG: {
        const MD_ATTRIBUTE *url = type == MD_SPAN_A ? &((const MD_SPAN_A_DETAIL *)detail)->href
                                                    : &((const MD_SPAN_IMG_DETAIL *)detail)->src;
        add_attribute(p, url, &p->link, &p->link_len);
        style |= MDOC_LINK;
        break;
    }
    default: break;
    }
    /* deeper nesting keeps the innermost style that fits */
    if (p->n_open_spans < MAX_SPAN_STYLES) p->span_style[p->n_open_spans] = style;
    p->n_open_spans++;
    return p->nomem;
}

static int on_leave_span(MD_SPANTYPE type, void *detail, void *user)
{
    struct parse *p = user;
    (void)detail;
    if (p->n_open_spans > 0) p->n_open_spans--;
    if (type == MD_SPAN_A || type == MD_SPAN_IMG) {
        /* an outer link's URL is not kept: links do not nest in Markdown */
        p->link = 0;
        p->link_len = 0;
    }
    return 0;
}

static int parse_markdown(struct parse *p, size_t begin, size_t end)
{
    static const MD_PARSER parser = {
        .flags = MD_DIALECT_GITHUB | MD_FLAG_NOHTML,
        .enter_block = on_enter_block,
        .leave_block = on_leave_block,
        .enter_span = on_enter_span,
        .leave_span = on_leave_span,
        .text = on_text,
    };
    p->seg = begin;
    p->seg_end = end;
    p->at = (uint32_t)begin;
    p->cur = -1;
    p->n_lists = p->quote_depth = p->n_open_spans = 0;
    p->have_pending = false;
    int rc = md_parse(p->src + begin, (MD_SIZE)(end - begin), &parser, p);
    end_block(p);
    return rc == 0 && !p->nomem ? VKLLM_OK : VKLLM_E_NOMEM;
}

/* ---- the thinking section */

/* Whether the last bytes of S (N) are a proper prefix of TAG: a tag that the
 * next tokens may complete. Returns how many bytes that is. */
static size_t partial_tag(const char *s, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    for (size_t k = t - 1; k > 0; k--)
        if (k <= n && !memcmp(s + n - k, tag, k)) return k;
    return 0;
}

static const char *find(const char *s, size_t n, const char *what)
{
    size_t w = strlen(what);
    for (size_t i = 0; i + w <= n; i++)
        if (s[i] == what[0] && !memcmp(s + i, what, w)) return s + i;
    return NULL;
}

int mdoc_parse(struct mdoc *doc, const char *text, size_t len, unsigned flags,
               struct vkllm_error *err)
{
    doc->n_blocks = doc->n_spans = doc->n_text = doc->n_attr = 0;
    if (len >= UINT32_MAX)
        return vkllm_fail(err, VKLLM_E_INVALID, "markdown: a message of %zu bytes (over 4 GiB)",
                          len);
    struct parse p = {.doc = doc, .cur = -1};
    int rc = VKLLM_OK;
    uint32_t at;
    if (!grow((void **)&doc->copy, &doc->cap_copy, len + 1, 1)) goto nomem;
    if (len) memcpy(doc->copy, text, len);
    doc->copy[len] = 0;
    text = p.src = doc->copy;
    if (!add_text(doc, "", 0, &at) ||
        !add_bytes(&doc->attr, &doc->n_attr, &doc->cap_attr, "", 0, &at))
        goto nomem; /* both NUL-terminated even when empty */

    if (flags & MDOC_PLAIN) {
        if (len) {
            begin_block(&p, MDOC_B_PARAGRAPH);
            if (p.nomem) goto nomem;
            p.seg_end = len;
            add_span(&p, text, len, 0, (uint32_t)len, true);
            end_block(&p);
        }
        goto done;
    }

    /* A reply opens with <think> (after white space) or has none. */
    size_t lead = 0, rest = 0;
    while (lead < len &&
           (text[lead] == ' ' || text[lead] == '\n' || text[lead] == '\r' || text[lead] == '\t'))
        lead++;
    size_t open_len = sizeof think_open - 1, close_len = sizeof think_close - 1;
    if ((flags & MDOC_STREAMING) && len > lead && len - lead < open_len &&
        !memcmp(text + lead, think_open, len - lead))
        goto done; /* "<thi": the reply is about to start thinking */
    if (len - lead >= open_len && !memcmp(text + lead, think_open, open_len)) {
        size_t body = lead + open_len;
        const char *close = find(text + body, len - body, think_close);
        size_t body_end = close ? (size_t)(close - text) : len;
        if (!close && (flags & MDOC_STREAMING))
            body_end -= partial_tag(text + body, len - body, think_close);
        rest = close ? body_end + close_len : len;

        struct mdoc_block *h = begin_block(&p, MDOC_B_THINK);
        if (!h) goto nomem;
        h->flags = close ? 0 : MDOC_OPEN;
        end_block(&p);
        h = &doc->blocks[doc->n_blocks - 1];
        h->src = (uint32_t)lead;
        h->src_end = (uint32_t)rest;
        p.base_style = MDOC_THINK;
        if ((rc = parse_markdown(&p, body, body_end)) < 0) goto nomem;
        p.base_style = 0;
    }
    if ((rc = parse_markdown(&p, rest, len)) < 0) goto nomem;
done:
    return VKLLM_OK;
nomem:
    doc->n_blocks = doc->n_spans = doc->n_text = doc->n_attr = 0;
    return vkllm_fail(err, VKLLM_E_NOMEM, "markdown: out of memory for a message of %zu bytes",
                      len);
}

void mdoc_free(struct mdoc *doc)
{
    free(doc->blocks);
    free(doc->spans);
    free(doc->text);
    free(doc->attr);
    free(doc->copy);
    memset(doc, 0, sizeof *doc);
}
