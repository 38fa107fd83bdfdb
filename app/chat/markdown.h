/* markdown.h: a chat message's text -> the small document the window draws.
 *
 * mdoc_parse turns Markdown (parsed by md4c) into a flat list of blocks, each
 * holding styled spans of text. A block is one thing drawn as a unit:
 * a paragraph, a heading, a list item, a code block, a rule, a table row, or
 * the header of a "thinking" section (the <think>...</think> that reasoning
 * models write first; the blocks parsed from inside it follow the header and
 * carry MDOC_THINK in their style). Nesting is flattened into each block's
 * list and quote depths, so a renderer walks the blocks in order.
 *
 * Every span keeps the source bytes it came from (src..src_end), so a point on
 * the screen maps back to an offset in the message, and a selection copies the
 * message's own text. Spans whose drawn text is their source slice byte for
 * byte are marked MDOC_VERBATIM; the rest (decoded entities, escapes, soft
 * breaks) map to the start or end of their source.
 *
 * Streaming: the reply grows a token at a time and is parsed whole each time
 * (cheap: see markdown.c). With MDOC_STREAMING, a tag cut in half by the end
 * of the text (`<thi`, `</thin`) is held back instead of flashing as text.
 *
 *     struct mdoc d = {0};
 *     if (mdoc_parse(&d, text, len, MDOC_STREAMING, &err) < 0) ...
 *     for (size_t b = 0; b < d.n_blocks; b++) ... d.spans[d.blocks[b].span + i] ...
 *     mdoc_free(&d);
 */
#ifndef VKLLM_CHAT_MARKDOWN_H
#define VKLLM_CHAT_MARKDOWN_H

#include "vkllm.h"

#include <stddef.h>
#include <stdint.h>

/* Span styles (bits of mdoc_span.style). The block-level ones are set on
 * every span of such a block, so a span's style alone picks its font and
 * colour: the window's measure and draw callbacks see only this. */
enum {
    MDOC_BOLD = 1 << 0,
    MDOC_ITALIC = 1 << 1,
    MDOC_STRIKE = 1 << 2,
    MDOC_CODE = 1 << 3,       /* `inline code`: monospace */
    MDOC_LINK = 1 << 4,       /* drawn as text; mdoc_span.link holds the URL */
    MDOC_CODE_BLOCK = 1 << 5, /* text of a code block: monospace */
    MDOC_THINK = 1 << 6,      /* inside the thinking section */
    MDOC_MARKER = 1 << 7,     /* a list marker (made by the layout, never a span) */
    MDOC_VERBATIM = 1 << 8,   /* drawn text == source bytes (for hit tests, not fonts) */
};
/* Bits 12..14: the heading level 1..6 of a heading's spans, 0 elsewhere. */
#define MDOC_HEADING_SHIFT  12
#define MDOC_HEADING(style) (((style) >> MDOC_HEADING_SHIFT) & 7u)
/* The bits that change how text looks (a measure cache key). */
#define MDOC_FONT_BITS(style) ((style) & ~(uint32_t)MDOC_VERBATIM)

enum mdoc_kind {
    MDOC_B_PARAGRAPH,
    MDOC_B_HEADING, /* level 1..6 */
    MDOC_B_ITEM,    /* the first block of a list item: marker "•" or "3." */
    MDOC_B_CODE,    /* a fenced or indented code block */
    MDOC_B_RULE,    /* no spans */
    MDOC_B_ROW,     /* a table row: spans carry their cell index */
    MDOC_B_THINK,   /* the thinking section's header; no spans; MDOC_OPEN until </think> */
};

/* Block flags. */
enum {
    MDOC_OPEN = 1 << 0,       /* B_THINK: no </think> yet */
    MDOC_TIGHT = 1 << 1,      /* B_ITEM of a tight list (no blank lines between items) */
    MDOC_TABLE_HEAD = 1 << 2, /* B_ROW: the header row */
    MDOC_IN_THINK = 1 << 3,   /* inside the thinking section (after its B_THINK) */
};

struct mdoc_span {
    uint32_t text, len;      /* drawn UTF-8: mdoc.text + text, LEN bytes */
    uint32_t src, src_end;   /* the source bytes it came from */
    uint32_t style;          /* MDOC_* style bits */
    uint32_t link, link_len; /* URL of a link: mdoc.attr + link (link_len 0: none) */
    uint32_t cell;           /* table cell index (0 elsewhere) */
};

struct mdoc_block {
    uint8_t kind;            /* enum mdoc_kind */
    uint8_t level;           /* heading level 1..6 */
    uint8_t list_depth;      /* enclosing lists (0: none); a B_ITEM's own list counts */
    uint8_t quote_depth;     /* enclosing block quotes */
    uint8_t flags;           /* MDOC_OPEN, MDOC_TIGHT, MDOC_TABLE_HEAD, MDOC_IN_THINK */
    uint16_t n_cells;        /* B_ROW: cells (spans beyond cell 255 join the last) */
    char marker[12];         /* B_ITEM: "•", "◦", "▪", "12." or a task box; NUL-terminated */
    uint32_t span, n_spans;  /* mdoc.spans[span .. span + n_spans) */
    uint32_t text, len;      /* all its spans' drawn text, contiguous (a code block's copy text) */
    uint32_t src, src_end;   /* source bytes covered */
    uint32_t lang, lang_len; /* B_CODE: the fence's language, mdoc.attr + lang */
};

struct mdoc {
    struct mdoc_block *blocks;
    size_t n_blocks, cap_blocks;
    struct mdoc_span *spans;
    size_t n_spans, cap_spans;
    char *text; /* drawn text (NUL-terminated) */
    size_t n_text, cap_text;
    char *attr; /* URLs and code languages (NUL-terminated) */
    size_t n_attr, cap_attr;
    char *copy; /* the text as md4c reads it, NUL-terminated (see markdown.c) */
    size_t cap_copy;
};

/* Parse flags. */
enum {
    MDOC_STREAMING = 1 << 0, /* the text may still grow: hold back a half-written tag */
    MDOC_PLAIN = 1 << 1,     /* not Markdown (a user's message as typed): one paragraph */
};

/* Parses LEN bytes of TEXT (UTF-8, need not be NUL-terminated) into DOC,
 * replacing what it held (its buffers are reused: zero it once, then parse
 * again and again). VKLLM_OK, or VKLLM_E_NOMEM / VKLLM_E_INVALID (over 4 GiB)
 * with ERR filled; DOC is then empty but still valid. */
int mdoc_parse(struct mdoc *doc, const char *text, size_t len, unsigned flags,
               struct vkllm_error *err);

/* Frees DOC's buffers and zeroes it. */
void mdoc_free(struct mdoc *doc);

#endif
