/* printable.c: text from a file made safe to show on a terminal.
 *
 * Key names, tensor names and strings in a GGUF file come from whoever made
 * the file. Written raw, an ESC or a C1 control starts a terminal command
 * (window title, colours, cursor moves), a carriage return or a bidirectional
 * override makes one line look like another, and an invisible format
 * character (a zero-width space, a TAG character carrying a hidden copy of
 * some text) makes two different names look the same. vkllm_printable keeps
 * valid UTF-8 and turns everything else, byte by byte, into "\xNN". A backslash stays as
 * it is, so escaping twice changes nothing: a message can pass through more
 * than one layer that escapes it. vkllm_printable_text does the same for
 * running text (generated tokens, a rendered template), keeping its lines.
 */
#include "vkllm.h"

#include <stdint.h>
#include <utf8proc.h>

/* The length of the valid UTF-8 character at S (N > 0 bytes), storing its code
 * point, or 0 if S does not start one (a stray continuation byte, an overlong
 * form, a surrogate, a code point above U+10FFFF, or a cut-off sequence). */
static size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        *cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        *cp = s[0] & 0x0fu;
        if (s[0] == 0xe0) lo = 0xa0; /* overlong */
        if (s[0] == 0xed) hi = 0x9f; /* surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        *cp = s[0] & 0x07u;
        if (s[0] == 0xf0) lo = 0x90; /* overlong */
        if (s[0] == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        *cp = *cp << 6 | (s[i] & 0x3fu);
    }
    return len;
}

/* Code points a terminal acts on, that rearrange what a line shows, or that
 * show nothing: the controls (C0, DEL, C1), the line and paragraph
 * separators, every format character (General_Category Cf: the Bidi_Controls,
 * zero-width space, BOM, soft hyphen, TAG characters, ...) but the zero-width
 * joiner and non-joiner (emoji sequences and Indic scripts need them), and
 * the noncharacters. */
static bool is_control(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return true;
    if (cp < 0xad) return false; /* the first format character: the soft hyphen */
    if (cp == 0x200c || cp == 0x200d) return false;
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) return true;
    const utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* The length of the emoji tag sequence at S (N bytes), a flag such as
 * Scotland's: U+1F3F4, then 1 to 6 TAG letters or digits (a subdivision
 * code, "gbsct"), then CANCEL TAG U+E007F; 0 if S does not start one. Only
 * such a sequence keeps its TAG characters: any other is escaped, so that no
 * text hides in them. */
static size_t tag_sequence(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t at = utf8_char(s, n, &cp);
    if (at == 0 || cp != 0x1f3f4) return 0;
    for (int tags = 0; at < n; tags++) {
        size_t len = utf8_char(s + at, n - at, &cp);
        if (len == 0) return 0;
        at += len;
        if (cp == 0xe007f) return tags > 0 ? at : 0;
        const bool alnum = (cp >= 0xe0030 && cp <= 0xe0039) || (cp >= 0xe0061 && cp <= 0xe007a);
        if (!alnum || tags == 6) return 0;
    }
    return 0;
}

/* KEEP_LINES lets newlines and tabs through: running text keeps its shape. */
static size_t printable(char *dst, size_t cap, const char *src, size_t len, bool keep_lines)
{
    static const char hex[] = "0123456789abcdef";
    if (cap == 0) return 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t in = 0, out = 0;
    while (in < len) {
        uint32_t cp = 0;
        size_t n = tag_sequence(s + in, len - in); /* a flag: one unit, kept whole */
        bool escape = false;
        if (n == 0) {
            n = utf8_char(s + in, len - in, &cp);
            escape = n == 0 || (is_control(cp) && !(keep_lines && (cp == '\n' || cp == '\t')));
        }
        if (n == 0) n = 1; /* an invalid byte is escaped alone; the next one starts afresh */
        size_t need = escape ? 4 * n : n;
        if (out + need >= cap) break; /* never half a character or half an escape */
        for (size_t i = 0; i < n; i++) {
            if (escape) {
                dst[out++] = '\\';
                dst[out++] = 'x';
                dst[out++] = hex[s[in + i] >> 4];
                dst[out++] = hex[s[in + i] & 15];
            } else {
                dst[out++] = (char)s[in + i];
            }
        }
        in += n;
    }
    dst[out] = '\0';
    return in;
}

size_t vkllm_printable(char *dst, size_t cap, const char *src, size_t len)
{
    return printable(dst, cap, src, len, false);
}

size_t vkllm_printable_text(char *dst, size_t cap, const char *src, size_t len)
{
    return printable(dst, cap, src, len, true);
}
