/* text_layout.h: the conversation's messages laid out in lines, for drawing,
 * hit testing and copying, without knowing about fonts or the screen.
 *
 * A tl_view holds one laid-out message per index, stacked top to bottom in a
 * column of params.width pixels; each message gets params.message_gap pixels
 * above it for its role label. The caller measures text: tl_measure.width
 * says how wide a UTF-8 run is in a style (the window passes TTF_SizeUTF8 on
 * the font that the style's MDOC_* bits pick), tl_measure.line_height how
 * tall a line of that style is.
 *
 * Immediate-mode use: every frame, the UI thread calls tl_view_set for each
 * message with its current text (under the lock the worker holds while it
 * appends a token). A message whose width, flags and text are unchanged costs
 * a memcmp; one that changed is parsed again (markdown.h) and its lines
 * rebuilt, reusing those of its blocks that did not change, so a streaming
 * reply re-lays only its last block, and the other messages not at all.
 * Then it draws the lines that intersect the scrolled window:
 *
 *     for (size_t i = tl_view_message_at(v, top); i < tl_view_count(v); i++) {
 *         const struct tl_message *m = tl_view_message(v, i);
 *         if (m->y - gap > bottom) break;
 *         for each line l of m, for each run r of l:
 *             text = tl_run_text(m, r, &len);  draw at (r->x, m->y + l->y) in r->style
 *     }
 *
 * Lines carry their block (m->doc.blocks[l->block]) for decorations: a code
 * block's background, a quote's bar, a rule, the thinking header's toggle.
 * Positions in text are tl_pos: a message and a byte offset in its source
 * text, which is what selection and copy work on.
 *
 * Wrapping: at spaces (which hang past the edge), after hyphens, between CJK
 * characters (not before closing or after opening punctuation), never inside
 * a grapheme cluster (utf8proc, UAX #29); a word longer than the line breaks
 * between graphemes. Code blocks break only at their newlines, and a longer
 * line wraps at the width between graphemes rather than scrolling sideways:
 * every character stays visible and selectable in one immediate-mode column,
 * with no per-block scroll state, and Copy takes the code as written.
 * A paragraph whose first strong character is right-to-left is aligned and
 * indented from the right, its runs placed right to left; shaping (and the
 * order of glyphs inside a run) is SDL_ttf's job.
 */
#ifndef VKLLM_CHAT_TEXT_LAYOUT_H
#define VKLLM_CHAT_TEXT_LAYOUT_H

#include "markdown.h"

#include <stdbool.h>

struct tl_measure {
    /* Width in pixels of LEN bytes of UTF-8 TEXT in STYLE (MDOC_* bits). */
    int (*width)(void *user, uint32_t style, const char *text, size_t len);
    /* Height in pixels of a line of text in STYLE. */
    int (*line_height)(void *user, uint32_t style);
    void *user;
};

struct tl_params {
    int width;       /* the column's width in pixels */
    int indent;      /* per level of list or quote nesting */
    int block_gap;   /* between blocks (half of it between items of a tight list) */
    int message_gap; /* above each message */
    int cell_gap;    /* between table columns */
};

/* A piece of one line in one style. */
struct tl_run {
    int x, w;              /* from the column's left edge */
    uint32_t style;        /* MDOC_* bits */
    uint32_t text, len;    /* drawn bytes in m->doc.text; a marker's: its block (tl_run_text) */
    uint32_t src, src_end; /* source bytes of the message */
    uint32_t span;         /* index in m->doc.spans; TL_MARKER for a list marker */
    bool rtl;              /* placed right to left */
};
#define TL_MARKER UINT32_MAX

struct tl_line {
    int y, h;             /* top, from the message's top; height */
    uint32_t run, n_runs; /* m->runs[run .. run + n_runs) */
    uint32_t block;       /* index in m->doc.blocks */
};

/* One laid-out message. */
struct tl_message {
    int y, h; /* top in the view (message_gap below the previous one's end); height */
    struct mdoc doc;
    const struct tl_line *lines;
    size_t n_lines;
    const struct tl_run *runs;
    size_t n_runs;
};

/* Flags of tl_view_set: mdoc_parse's (MDOC_STREAMING, MDOC_PLAIN), and: */
enum {
    TL_THINK_COLLAPSED = 1 << 8, /* lay out the thinking header but not what it holds */
};

/* A place in the conversation: a message and a byte offset in its text. */
struct tl_pos {
    size_t message;
    size_t offset;
};

typedef struct tl_view tl_view;

/* Creates an empty view; M is copied. VKLLM_OK or VKLLM_E_NOMEM. */
int tl_view_create(const struct tl_measure *m, const struct tl_params *p, tl_view **out,
                   struct vkllm_error *err);
void tl_view_destroy(tl_view *v);

/* New parameters (a resize, a font change): every message is laid out again
 * at its next tl_view_set. Also call it when the fonts behind the measure
 * callbacks change with the same parameters. */
void tl_view_set_params(tl_view *v, const struct tl_params *p);

/* Message I's text (LEN bytes) and flags; I may be tl_view_count() to add
 * one. Lays it out again if anything changed, and moves the messages after
 * it. VKLLM_OK, or VKLLM_E_NOMEM / VKLLM_E_INVALID (I beyond the count) with
 * ERR filled; the view then holds I's old layout. */
int tl_view_set(tl_view *v, size_t i, const char *text, size_t len, unsigned flags,
                struct vkllm_error *err);

/* Keeps the first N messages (a new chat, another branch). */
void tl_view_truncate(tl_view *v, size_t n);

size_t tl_view_count(const tl_view *v);
/* Height of the whole conversation in pixels. */
int tl_view_height(const tl_view *v);
/* Message I (I < count); valid until the next call that changes the view. */
const struct tl_message *tl_view_message(const tl_view *v, size_t i);
/* The message at height Y of the view (the first or the last beyond them). */
size_t tl_view_message_at(const tl_view *v, int y);

/* The drawn text of run R of M: LEN bytes, not NUL-terminated. */
const char *tl_run_text(const struct tl_message *m, const struct tl_run *r, size_t *len);

/* The place nearest to point (X, Y) of the view; false if the view is empty. */
bool tl_view_hit(const tl_view *v, int x, int y, struct tl_pos *out);

/* The x of the edge before source offset OFFSET within run R of message M
 * (clamped to the run): where a selection or the cursor is drawn. */
int tl_view_run_x(const tl_view *v, const struct tl_message *m, const struct tl_run *r,
                  size_t offset);

/* The source text between A and B (either order), messages joined by a blank
 * line: what Ctrl+C puts on the clipboard. Returns malloc'd, NUL-terminated
 * text (*LEN without the NUL), or NULL when out of memory. */
char *tl_view_copy(const tl_view *v, struct tl_pos a, struct tl_pos b, size_t *len);

#endif
