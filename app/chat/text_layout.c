/* text_layout.c: blocks -> lines of runs, per message, cached.
 *
 * A block's text is cut into grapheme clusters (utf8proc), each marked with
 * whether a line may break after it; clusters between two break
 * opportunities form a word, measured once per span it crosses; lines are
 * filled greedily. Measuring words rather than whole lines assumes nothing
 * joins glyphs across a break opportunity (a space, a hyphen, a CJK
 * boundary), which holds for the fonts a chat shows text in.
 *
 * The cache: a message keeps the text it was laid out from, and its previous
 * layout. When its text changes, it is parsed again and each block that came
 * out identical (same fields, spans and text, so the same offsets) takes its
 * old lines, moved to its new height: a reply streaming in re-lays its last
 * block only.
 */
#include "text_layout.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* the longest cluster: Unicode's stream-safe text format allows 30
 * combining marks in a row; real text (emoji ZWJ sequences: 7 or so) has far
 * fewer code points in one */
#define MAX_CLUSTER_CPS 32
/* clusters kept between layouts (a few pages of text) */
#define SCRATCH_KEEP 65536

/* ---- the view */

struct layout {
    char *src; /* the text laid out */
    size_t len, cap_src;
    struct mdoc doc;
    struct tl_line *lines;
    size_t n_lines, cap_lines;
    struct tl_run *runs;
    size_t n_runs, cap_runs;
    uint32_t *block_lines; /* first line of each block, then n_lines */
    size_t cap_block_lines;
};

struct msg {
    struct tl_message m; /* what tl_view_message shows: cur's arrays */
    struct layout cur, old;
    unsigned flags;
    int width;
    bool valid; /* cur matches width and flags (tl_view_set_params clears it) */
};

struct cluster {
    uint32_t off, len; /* in doc.text */
    uint32_t span;
    uint8_t kind;  /* CL_* */
    bool brk;      /* a line may break after it */
    int w;         /* at a piece's first cluster: the piece's width */
    uint32_t pend; /* at a piece's first cluster: the cluster after the piece */
};
enum { CL_TEXT, CL_SPACE, CL_NEWLINE };

struct tl_view {
    struct tl_measure meas;
    struct tl_params par;
    struct msg **msgs; /* pointers: a tl_message stays put while the view grows */
    size_t n, cap;
    struct cluster *cl; /* scratch for one block */
    size_t cap_cl;
};

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

/* ---- characters */

static int32_t next_cp(const char *s, size_t n, size_t *at)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s + *at, (utf8proc_ssize_t)(n - *at), &c);
    if (k <= 0) { /* a stray byte is a cluster of its own */
        *at += 1;
        return 0xFFFD;
    }
    *at += (size_t)k;
    return c;
}

static bool is_cjk(int32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
           (c >= 0x20000 && c <= 0x3FFFF);
}

/* UAX #14's CL/CP/EX/IS/NS classes in the forms chat text has: no break
 * before them. */
static bool no_break_before(int32_t c)
{
    static const int32_t cps[] = {
        ')',    ']',    '}',    ',',    '.',    '!',    '?',    ':',    ';',    0x3001,
        0x3002, 0xFF0C, 0xFF0E, 0xFF1A, 0xFF1B, 0xFF01, 0xFF1F, 0xFF09, 0xFF3D, 0xFF5D,
        0x300D, 0x300F, 0x3011, 0x3009, 0x300B, 0x3015, 0x3017, 0x3019, 0x301B, 0x30FC,
        0x2026, 0x3005, 0x3041, 0x3043, 0x3045, 0x3047, 0x3049, 0x3063, 0x3083, 0x3085,
        0x3087, 0x30A1, 0x30A3, 0x30A5, 0x30A7, 0x30A9, 0x30C3, 0x30E3, 0x30E5, 0x30E7};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++)
        if (cps[i] == c) return true;
    return false;
}

/* UAX #14's OP class: no break after them. */
static bool no_break_after(int32_t c)
{
    static const int32_t cps[] = {'(',    '[',    '{',    0xFF08, 0xFF3B, 0xFF5B, 0x300C, 0x300E,
                                  0x3010, 0x3008, 0x300A, 0x3014, 0x3016, 0x3018, 0x301A};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++)
        if (cps[i] == c) return true;
    return false;
}

/* The direction of the first strong character: true for right to left. */
static bool is_rtl(const char *s, size_t n)
{
    size_t at = 0;
    while (at < n) {
        const utf8proc_property_t *p = utf8proc_get_property(next_cp(s, n, &at));
        if (p->bidi_class == UTF8PROC_BIDI_CLASS_L) return false;
        if (p->bidi_class == UTF8PROC_BIDI_CLASS_R || p->bidi_class == UTF8PROC_BIDI_CLASS_AL)
            return true;
    }
    return false;
}

static bool is_hyphen(int32_t c)
{
    return c == '-' || c == 0x2010 || c == 0x2013;
}

/* Whether a line may break between clusters A and B (their first and last
 * code points, and the kind of the one before A). */
static bool may_break(int a_kind, int32_t a_last, int before_a, int b_kind, int32_t b_first)
{
    if (a_kind == CL_NEWLINE) return true;
    if (b_kind == CL_SPACE || b_kind == CL_NEWLINE) return false; /* spaces hang */
    if (a_kind == CL_SPACE) return true;
    if (no_break_before(b_first) || no_break_after(a_last)) return false;
    if (is_hyphen(a_last)) return before_a == CL_TEXT && !is_hyphen(b_first);
    return is_cjk(a_last) || is_cjk(b_first);
}

/* Cuts the spans [S0, S1) of D that belong to CELL (any if -1) into grapheme
 * clusters in V->cl, marking where lines may break. CODE: only at newlines.
 * Returns the count, or -1 when out of memory. */
static long cut_clusters(tl_view *v, const struct mdoc *d, uint32_t s0, uint32_t s1, long cell,
                         bool code)
{
    size_t n = 0;
    int32_t prev_last = 0;
    int prev_kind = CL_SPACE, before_prev = CL_SPACE;
    for (uint32_t s = s0; s < s1; s++) {
        const struct mdoc_span *sp = &d->spans[s];
        if (cell >= 0 && sp->cell != (uint32_t)cell) continue;
        const char *t = d->text + sp->text;
        size_t at = 0;
        while (at < sp->len) {
            /* a cluster never crosses spans: a style change is a boundary */
            size_t start = at;
            utf8proc_int32_t state = 0;
            int32_t first = next_cp(t, sp->len, &at), last = first;
            /* a cluster ends after MAX_CLUSTER_CPS code points, as Unicode's
             * stream-safe format breaks runs of combining marks: a letter
             * with 200,000 accents was one cluster, measured again at each
             * try to fit it, and froze the window for minutes (probe 3) */
            for (int n_cps = 1; at < sp->len && n_cps < MAX_CLUSTER_CPS; n_cps++) {
                size_t peek = at;
                int32_t c = next_cp(t, sp->len, &peek);
                if (utf8proc_grapheme_break_stateful(last, c, &state)) break;
                last = c;
                at = peek;
            }
            if (!grow((void **)&v->cl, &v->cap_cl, n + 1, sizeof *v->cl)) return -1;
            int kind = first == '\n'                                                 ? CL_NEWLINE
                       : !code && (first == ' ' || first == '\t' || first == 0x3000) ? CL_SPACE
                                                                                     : CL_TEXT;
            if (n > 0)
                v->cl[n - 1].brk = code ? prev_kind == CL_NEWLINE
                                        : may_break(prev_kind, prev_last, before_prev, kind, first);
            v->cl[n++] = (struct cluster){.off = sp->text + (uint32_t)start,
                                          .len = (uint32_t)(at - start),
                                          .span = s,
                                          .kind = (uint8_t)kind};
            before_prev = prev_kind;
            prev_kind = kind;
            prev_last = last;
        }
    }
    if (n > 0) v->cl[n - 1].brk = true;
    return (long)n;
}

/* ---- filling lines */

struct fill {
    tl_view *v;
    struct layout *L;
    uint32_t block;
    int x0, x1; /* the text's box in the column */
    bool rtl;
    uint32_t base_style; /* for the height of a line with no text */
    int y;
    size_t line_run; /* the current line's first run */
    int line_w;      /* its width so far, spaces included */
    bool has_text;   /* it holds something other than a marker */
    bool nomem;
};

static struct tl_run *push_run(struct fill *f)
{
    struct layout *L = f->L;
    if (!grow((void **)&L->runs, &L->cap_runs, L->n_runs + 1, sizeof *L->runs)) {
        f->nomem = true;
        return NULL;
    }
    struct tl_run *r = &L->runs[L->n_runs++];
    memset(r, 0, sizeof *r);
    r->rtl = f->rtl;
    return r;
}

/* Adds cluster range [OFF, OFF + LEN) of span S, W pixels wide, to the line. */
static void place(struct fill *f, const struct mdoc *d, uint32_t s, uint32_t off, uint32_t len,
                  int w)
{
    const struct mdoc_span *sp = &d->spans[s];
    bool verbatim = sp->style & MDOC_VERBATIM;
    uint32_t src = verbatim ? sp->src + (off - sp->text) : sp->src;
    uint32_t src_end = verbatim ? src + len : sp->src_end;
    struct layout *L = f->L;
    struct tl_run *last = L->n_runs > f->line_run ? &L->runs[L->n_runs - 1] : NULL;
    if (last && last->span == s && last->text + last->len == off) {
        last->len += len;
        last->w += w;
        last->src_end = src_end;
    } else {
        struct tl_run *r = push_run(f);
        if (!r) return;
        *r = (struct tl_run){.w = w,
                             .style = sp->style,
                             .text = off,
                             .len = len,
                             .src = src,
                             .src_end = src_end,
                             .span = s,
                             .rtl = f->rtl};
    }
    f->line_w += w;
    f->has_text = true;
}

/* Ends the current line: places its runs and moves down by its height. */
static void end_line(struct fill *f)
{
    struct layout *L = f->L;
    const struct tl_measure *m = &f->v->meas;
    if (!grow((void **)&L->lines, &L->cap_lines, L->n_lines + 1, sizeof *L->lines)) {
        f->nomem = true;
        return;
    }
    int h = 0, x = 0;
    for (size_t i = f->line_run; i < L->n_runs; i++) {
        struct tl_run *r = &L->runs[i];
        int rh = m->line_height(m->user, r->style);
        if (rh > h) h = rh;
        if (r->span == TL_MARKER) continue; /* placed already */
        r->x = f->rtl ? f->x1 - x - r->w : f->x0 + x;
        x += r->w;
    }
    if (L->n_runs == f->line_run) h = m->line_height(m->user, f->base_style);
    L->lines[L->n_lines++] = (struct tl_line){.y = f->y,
                                              .h = h,
                                              .run = (uint32_t)f->line_run,
                                              .n_runs = (uint32_t)(L->n_runs - f->line_run),
                                              .block = f->block};
    f->y += h;
    f->line_run = L->n_runs;
    f->line_w = 0;
    f->has_text = false;
}

static int measure(const struct fill *f, uint32_t style, const char *s, size_t n)
{
    const struct tl_measure *m = &f->v->meas;
    return m->width(m->user, style, s, n);
}

/* Measures clusters [I, K) piece by piece (a piece: one span), storing each
 * piece's width and end at its first cluster; returns the total. */
static int measure_word(struct fill *f, const struct mdoc *d, size_t i, size_t k)
{
    struct cluster *cl = f->v->cl;
    int total = 0;
    for (size_t p = i; p < k;) {
        size_t q = p + 1;
        while (q < k && cl[q].span == cl[p].span)
            q++;
        cl[p].w = measure(f, d->spans[cl[p].span].style, d->text + cl[p].off,
                          cl[q - 1].off + cl[q - 1].len - cl[p].off);
        cl[p].pend = (uint32_t)q;
        total += cl[p].w;
        p = q;
    }
    return total;
}

static void place_word(struct fill *f, const struct mdoc *d, size_t i, size_t k)
{
    struct cluster *cl = f->v->cl;
    for (size_t p = i; p < k; p = cl[p].pend)
        place(f, d, cl[p].span, cl[p].off,
              cl[cl[p].pend - 1].off + cl[cl[p].pend - 1].len - cl[p].off, cl[p].w);
}

/* Lays out N clusters (f->v->cl) greedily in [x0, x1). */
static void fill_clusters(struct fill *f, const struct mdoc *d, size_t n)
{
    struct cluster *cl = f->v->cl;
    int avail = f->x1 - f->x0;
    size_t i = 0;
    while (i < n && !f->nomem) {
        /* a word: text clusters up to a break opportunity, then its spaces */
        size_t k = i;
        while (k < n && cl[k].kind == CL_TEXT)
            if (cl[k++].brk) break;
        size_t j = k;
        while (j < n && cl[j].kind == CL_SPACE)
            j++;
        bool newline = j < n && cl[j].kind == CL_NEWLINE;

        int w = k > i ? measure_word(f, d, i, k) : 0;
        if (f->has_text && f->line_w + w > avail) end_line(f);
        if (w <= avail || k == i) {
            place_word(f, d, i, k);
        } else {
            /* longer than a line: break between graphemes, one at least a line */
            for (size_t g = i; g < k && !f->nomem; g++) {
                const struct mdoc_span *sp = &d->spans[cl[g].span];
                int gw = measure(f, sp->style, d->text + cl[g].off, cl[g].len);
                if (f->has_text && f->line_w + gw > avail) end_line(f);
                place(f, d, cl[g].span, cl[g].off, cl[g].len, gw);
            }
        }
        if (j > k) { /* spaces hang past the edge rather than wrap */
            w = measure_word(f, d, k, j);
            place_word(f, d, k, j);
        }
        if (newline) {
            /* a newline ends the line; the block's last one opens no empty line */
            if (j + 1 < n || !f->has_text) end_line(f);
            j++;
        }
        i = j;
    }
}

/* ---- blocks */

static uint32_t base_style(const struct mdoc_block *b)
{
    uint32_t s = b->flags & MDOC_IN_THINK ? MDOC_THINK : 0;
    if (b->kind == MDOC_B_CODE) s |= MDOC_CODE_BLOCK;
    if (b->kind == MDOC_B_HEADING) s |= (uint32_t)b->level << MDOC_HEADING_SHIFT;
    return s;
}

/* Lays out the text of block B (of cell CELL, or all if -1) in [x0, x1),
 * starting a new line at f->y, with the list marker if it has one. */
static void fill_text(struct fill *f, const struct mdoc *d, const struct mdoc_block *b, long cell)
{
    long n = cut_clusters(f->v, d, b->span, b->span + b->n_spans, cell, b->kind == MDOC_B_CODE);
    if (n < 0) {
        f->nomem = true;
        return;
    }
    size_t lines = f->L->n_lines;
    if (b->kind == MDOC_B_ITEM && b->marker[0]) {
        size_t len = strlen(b->marker);
        uint32_t style = base_style(b) | MDOC_MARKER;
        int w = measure(f, style, b->marker, len);
        int gap = f->v->par.indent / 4;
        struct tl_run *r = push_run(f);
        if (!r) return;
        *r = (struct tl_run){.x = f->rtl ? f->x1 + gap : f->x0 - gap - w,
                             .w = w,
                             .style = style,
                             .text = f->block,
                             .len = (uint32_t)len,
                             .src = b->src,
                             .src_end = b->src,
                             .span = TL_MARKER,
                             .rtl = f->rtl};
    }
    fill_clusters(f, d, (size_t)n);
    if (f->has_text || f->L->n_lines == lines || f->L->n_runs > f->line_run) end_line(f);
}

/* Table rows: each cell in its column, then the cells' lines merged so that
 * line K of the row holds line K of every cell. */
static void fill_row(struct fill *f, const struct mdoc *d, const struct mdoc_block *b)
{
    struct layout *L = f->L;
    int ncol = b->n_cells ? b->n_cells : 1, gap = f->v->par.cell_gap;
    int colw = (f->x1 - f->x0 - gap * (ncol - 1)) / ncol;
    if (colw < 1) colw = 1;
    size_t first_line = L->n_lines, first_run = L->n_runs, most = 0;
    size_t cell_line[257]; /* each cell's first line, then the end */
    for (int c = 0; c < ncol; c++) {
        struct fill cf = *f;
        cf.x0 = f->rtl ? f->x1 - (c + 1) * colw - c * gap : f->x0 + c * (colw + gap);
        cf.x1 = cf.x0 + colw;
        cf.line_run = L->n_runs;
        cell_line[c] = L->n_lines;
        fill_text(&cf, d, b, c);
        if (cf.nomem) {
            f->nomem = true;
            return;
        }
        if (L->n_lines - cell_line[c] > most) most = L->n_lines - cell_line[c];
    }
    cell_line[ncol] = L->n_lines;

    size_t n_lines = L->n_lines - first_line, n_runs = L->n_runs - first_run;
    struct tl_line *lines = malloc(n_lines * sizeof *lines + 1);
    struct tl_run *runs = malloc(n_runs * sizeof *runs + 1);
    if (!lines || !runs) {
        free(lines);
        free(runs);
        f->nomem = true;
        return;
    }
    memcpy(lines, L->lines + first_line, n_lines * sizeof *lines);
    memcpy(runs, L->runs + first_run, n_runs * sizeof *runs);
    L->n_lines = first_line;
    L->n_runs = first_run;
    for (size_t k = 0; k < most; k++) {
        int h = 0;
        size_t run = L->n_runs;
        for (int c = 0; c < ncol; c++) {
            if (cell_line[c] + k >= cell_line[c + 1]) continue;
            const struct tl_line *l = &lines[cell_line[c] + k - first_line];
            if (l->h > h) h = l->h;
            for (uint32_t r = 0; r < l->n_runs; r++)
                L->runs[L->n_runs++] = runs[l->run - first_run + r];
        }
        L->lines[L->n_lines++] = (struct tl_line){.y = f->y,
                                                  .h = h,
                                                  .run = (uint32_t)run,
                                                  .n_runs = (uint32_t)(L->n_runs - run),
                                                  .block = f->block};
        f->y += h;
    }
    free(lines);
    free(runs);
    f->line_run = L->n_runs;
}

/* ---- messages */

static bool same_block(const struct mdoc *a, const struct mdoc *b, size_t i)
{
    const struct mdoc_block *x = &a->blocks[i], *y = &b->blocks[i];
    return !memcmp(x, y, sizeof *x) &&
           !memcmp(a->spans + x->span, b->spans + y->span, x->n_spans * sizeof *a->spans) &&
           !memcmp(a->text + x->text, b->text + y->text, x->len) &&
           !memcmp(a->attr + x->lang, b->attr + y->lang, x->lang_len);
}

/* Copies block I's lines from the previous layout, moved to height Y. */
static void reuse_block(struct fill *f, const struct layout *old, size_t i)
{
    struct layout *L = f->L;
    uint32_t l0 = old->block_lines[i], l1 = old->block_lines[i + 1];
    for (uint32_t l = l0; l < l1 && !f->nomem; l++) {
        const struct tl_line *ol = &old->lines[l];
        if (!grow((void **)&L->lines, &L->cap_lines, L->n_lines + 1, sizeof *L->lines) ||
            !grow((void **)&L->runs, &L->cap_runs, L->n_runs + ol->n_runs, sizeof *L->runs)) {
            f->nomem = true;
            return;
        }
        struct tl_line *nl = &L->lines[L->n_lines++];
        *nl = *ol;
        nl->y = f->y;
        nl->run = (uint32_t)L->n_runs;
        memcpy(L->runs + L->n_runs, old->runs + ol->run, ol->n_runs * sizeof *L->runs);
        L->n_runs += ol->n_runs;
        f->y += ol->h;
    }
    f->line_run = L->n_runs;
}

/* Lays out every block of L->doc into L's lines; REUSE: OLD was laid out with
 * the same width and flags. Returns the height, or -1 when out of memory. */
static int lay_blocks(tl_view *v, struct layout *L, const struct layout *old, bool reuse,
                      unsigned flags)
{
    const struct mdoc *d = &L->doc;
    const struct tl_params *par = &v->par;
    L->n_lines = L->n_runs = 0;
    if (!grow((void **)&L->block_lines, &L->cap_block_lines, d->n_blocks + 1,
              sizeof *L->block_lines))
        return -1;
    struct fill f = {.v = v, .L = L};
    bool first = true;
    const struct mdoc_block *prev = NULL;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const struct mdoc_block *b = &d->blocks[i];
        L->block_lines[i] = (uint32_t)L->n_lines;
        if ((flags & TL_THINK_COLLAPSED) && (b->flags & MDOC_IN_THINK)) continue;
        if (!first) {
            bool row_after_row = b->kind == MDOC_B_ROW && prev->kind == MDOC_B_ROW;
            /* the items of a tight list closer together than other blocks */
            bool tight = (b->flags & MDOC_TIGHT) && prev->list_depth > 0;
            f.y += row_after_row ? 0 : tight ? par->block_gap / 2 : par->block_gap;
        }
        first = false;
        prev = b;
        if (reuse && i < old->doc.n_blocks && same_block(d, &old->doc, i)) {
            reuse_block(&f, old, i);
        } else {
            int in = par->indent * (b->list_depth + b->quote_depth);
            bool rtl = is_rtl(d->text + b->text, b->len);
            f.block = (uint32_t)i;
            f.rtl = rtl;
            f.x0 = rtl ? 0 : in;
            f.x1 = rtl ? par->width - in : par->width;
            if (f.x1 <= f.x0) f.x1 = f.x0 + 1; /* deeper than the column: one pixel */
            f.base_style = base_style(b);
            f.line_run = L->n_runs;
            f.line_w = 0;
            f.has_text = false;
            if (b->kind == MDOC_B_ROW)
                fill_row(&f, d, b);
            else if (b->kind == MDOC_B_RULE || b->kind == MDOC_B_THINK)
                end_line(&f);
            else
                fill_text(&f, d, b, -1);
        }
        if (f.nomem) return -1;
    }
    L->block_lines[d->n_blocks] = (uint32_t)L->n_lines;
    return f.y;
}

static void layout_free(struct layout *L)
{
    free(L->src);
    mdoc_free(&L->doc);
    free(L->lines);
    free(L->runs);
    free(L->block_lines);
}

static void show(struct msg *m)
{
    m->m.doc = m->cur.doc;
    m->m.lines = m->cur.lines;
    m->m.n_lines = m->cur.n_lines;
    m->m.runs = m->cur.runs;
    m->m.n_runs = m->cur.n_runs;
}

/* Parses and lays out TEXT as message M, keeping its old layout on failure. */
static int relayout(tl_view *v, struct msg *m, const char *text, size_t len, unsigned flags,
                    struct vkllm_error *err)
{
    struct layout next = m->old; /* the buffers of the layout before last */
    if (!grow((void **)&next.src, &next.cap_src, len + 1, 1)) goto nomem;
    memcpy(next.src, text, len);
    next.src[len] = 0;
    next.len = len;
    int rc = mdoc_parse(&next.doc, next.src, len, flags & (MDOC_STREAMING | MDOC_PLAIN), err);
    if (rc < 0) {
        m->old = next;
        return rc;
    }
    bool reuse = m->valid && m->flags == flags && m->width == v->par.width;
    int h = lay_blocks(v, &next, &m->cur, reuse, flags);
    if (h < 0) goto nomem;
    m->old = m->cur;
    m->cur = next;
    m->m.h = h;
    m->flags = flags;
    m->width = v->par.width;
    m->valid = true;
    show(m);
    return VKLLM_OK;
nomem:
    m->old = next;
    return vkllm_fail(err, VKLLM_E_NOMEM, "layout: out of memory for a message of %zu bytes", len);
}

/* ---- the view */

int tl_view_create(const struct tl_measure *m, const struct tl_params *p, tl_view **out,
                   struct vkllm_error *err)
{
    *out = NULL;
    if (!m || !m->width || !m->line_height || !p)
        return vkllm_fail(err, VKLLM_E_INVALID, "layout: no measure callbacks");
    tl_view *v = calloc(1, sizeof *v);
    if (!v) return vkllm_fail(err, VKLLM_E_NOMEM, "layout: out of memory");
    v->meas = *m;
    v->par = *p;
    *out = v;
    return VKLLM_OK;
}

void tl_view_destroy(tl_view *v)
{
    if (!v) return;
    tl_view_truncate(v, 0);
    free(v->msgs);
    free(v->cl);
    free(v);
}

void tl_view_set_params(tl_view *v, const struct tl_params *p)
{
    v->par = *p;
    for (size_t i = 0; i < v->n; i++)
        v->msgs[i]->valid = false;
}

static void restack(tl_view *v, size_t from)
{
    for (size_t i = from; i < v->n; i++) {
        const struct tl_message *prev = i ? &v->msgs[i - 1]->m : NULL;
        v->msgs[i]->m.y = (prev ? prev->y + prev->h : 0) + v->par.message_gap;
    }
}

int tl_view_set(tl_view *v, size_t i, const char *text, size_t len, unsigned flags,
                struct vkllm_error *err)
{
    if (i > v->n) return vkllm_fail(err, VKLLM_E_INVALID, "layout: message %zu of %zu", i, v->n);
    if (i == v->n) {
        if (!grow((void **)&v->msgs, &v->cap, v->n + 1, sizeof *v->msgs))
            return vkllm_fail(err, VKLLM_E_NOMEM, "layout: out of memory");
        struct msg *m = calloc(1, sizeof *m);
        if (!m) return vkllm_fail(err, VKLLM_E_NOMEM, "layout: out of memory");
        v->msgs[v->n++] = m;
        restack(v, i);
    }
    struct msg *m = v->msgs[i];
    if (m->valid && m->width == v->par.width && m->flags == flags && m->cur.len == len &&
        (!len || !memcmp(m->cur.src, text, len)))
        return VKLLM_OK; /* the usual frame: nothing changed */
    int h = m->m.h;
    int rc = relayout(v, m, text, len, flags, err);
    if (rc == VKLLM_OK && m->m.h != h) restack(v, i + 1);
    /* the clusters are scratch, 24 bytes a character: a long message's are
     * not kept for the next (a 5 MiB one held 120 MB) */
    if (v->cap_cl > SCRATCH_KEEP) {
        free(v->cl);
        v->cl = NULL;
        v->cap_cl = 0;
    }
    return rc;
}

void tl_view_truncate(tl_view *v, size_t n)
{
    while (v->n > n) {
        struct msg *m = v->msgs[--v->n];
        layout_free(&m->cur);
        layout_free(&m->old);
        free(m);
    }
}

size_t tl_view_count(const tl_view *v)
{
    return v->n;
}

int tl_view_height(const tl_view *v)
{
    return v->n ? v->msgs[v->n - 1]->m.y + v->msgs[v->n - 1]->m.h : 0;
}

const struct tl_message *tl_view_message(const tl_view *v, size_t i)
{
    return i < v->n ? &v->msgs[i]->m : NULL;
}

size_t tl_view_message_at(const tl_view *v, int y)
{
    size_t lo = 0, hi = v->n; /* the first message whose end is below Y */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct tl_message *m = &v->msgs[mid]->m;
        if (m->y + m->h <= y)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n ? lo : (v->n ? v->n - 1 : 0);
}

const char *tl_run_text(const struct tl_message *m, const struct tl_run *r, size_t *len)
{
    *len = r->len;
    if (r->span == TL_MARKER) return m->doc.blocks[r->text].marker;
    return m->doc.text + r->text;
}

/* ---- hit tests and copying */

/* The source offset in run R nearest to X. */
static size_t run_offset_at(const tl_view *v, const struct tl_message *m, const struct tl_run *r,
                            int x)
{
    int into = r->rtl ? r->x + r->w - x : x - r->x;
    if (r->span == TL_MARKER || into <= 0) return r->src;
    if (into >= r->w) return r->src_end;
    if (!(r->style & MDOC_VERBATIM)) return into * 2 < r->w ? r->src : r->src_end;
    /* the grapheme boundary nearest to X */
    const char *t = m->doc.text + r->text;
    size_t at = 0, prev_at = 0;
    int prev_w = 0;
    while (at < r->len) {
        utf8proc_int32_t state = 0;
        int32_t last = next_cp(t, r->len, &at);
        while (at < r->len) {
            size_t peek = at;
            int32_t c = next_cp(t, r->len, &peek);
            if (utf8proc_grapheme_break_stateful(last, c, &state)) break;
            last = c;
            at = peek;
        }
        int w = v->meas.width(v->meas.user, r->style, t, at);
        if (into < w) return r->src + (into - prev_w < w - into ? prev_at : at);
        prev_at = at;
        prev_w = w;
    }
    return r->src_end;
}

bool tl_view_hit(const tl_view *v, int x, int y, struct tl_pos *out)
{
    if (!v->n) return false;
    size_t i = tl_view_message_at(v, y);
    const struct tl_message *m = &v->msgs[i]->m;
    out->message = i;
    out->offset = 0;
    int ly = y - m->y;
    if (!m->n_lines || ly < 0) return true;
    if (ly >= m->h) {
        out->offset = v->msgs[i]->cur.len;
        return true;
    }
    size_t lo = 0, hi = m->n_lines; /* the last line that starts at or above LY */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m->lines[mid].y <= ly)
            lo = mid;
        else
            hi = mid;
    }
    const struct tl_line *l = &m->lines[lo];
    if (ly >= l->y + l->h && lo + 1 < m->n_lines) l = &m->lines[lo + 1]; /* in a gap: below */
    const struct tl_run *best = NULL;
    int best_d = 0;
    for (uint32_t k = 0; k < l->n_runs; k++) {
        const struct tl_run *r = &m->runs[l->run + k];
        if (r->span == TL_MARKER) continue;
        int d = x < r->x ? r->x - x : x >= r->x + r->w ? x - (r->x + r->w) + 1 : 0;
        if (!best || d < best_d) {
            best = r;
            best_d = d;
        }
    }
    out->offset = best ? run_offset_at(v, m, best, x) : m->doc.blocks[l->block].src;
    return true;
}

int tl_view_run_x(const tl_view *v, const struct tl_message *m, const struct tl_run *r,
                  size_t offset)
{
    int w;
    if (offset <= r->src)
        w = 0;
    else if (offset >= r->src_end)
        w = r->w;
    else if (!(r->style & MDOC_VERBATIM))
        w = 0;
    else
        w = v->meas.width(v->meas.user, r->style, m->doc.text + r->text, offset - r->src);
    return r->rtl ? r->x + r->w - w : r->x + w;
}

char *tl_view_copy(const tl_view *v, struct tl_pos a, struct tl_pos b, size_t *len)
{
    if (b.message < a.message || (b.message == a.message && b.offset < a.offset)) {
        struct tl_pos t = a;
        a = b;
        b = t;
    }
    /* two passes: count, then copy */
    char *out = NULL;
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (size_t i = a.message; i <= b.message && i < v->n; i++) {
            const struct layout *L = &v->msgs[i]->cur;
            size_t from = i == a.message ? a.offset : 0, to = i == b.message ? b.offset : L->len;
            if (to > L->len) to = L->len;
            if (from > to) from = to;
            if (i > a.message) {
                if (out) memcpy(out + n, "\n\n", 2);
                n += 2;
            }
            if (out) memcpy(out + n, L->src + from, to - from);
            n += to - from;
        }
        if (!pass && !(out = malloc(n + 1))) return NULL;
    }
    out[n] = 0;
    if (len) *len = n;
    return out;
}
