/* lexer.c: template source -> tokens, as Jinja2's lexer splits it.
 *
 * The source is first normalized as Jinja2 does (every \r\n and \r becomes \n,
 * and one trailing newline is dropped: keep_trailing_newline=False). Then text
 * alternates with tags: {{ expression }}, {% statement %}, {# comment #}, and
 * {% raw %}...{% endraw %}. Whitespace control happens here, on the text:
 *   {%- {{- {#-    strip all whitespace before the tag
 *   -%} -}} -#}    strip all whitespace after it
 *   trim_blocks    drop the first newline after %} or #} (not after }}; not after +%})
 *   lstrip_blocks  drop spaces and tabs between a line start and {% or {# (not {%+)
 * Inside tags, end markers count only outside brackets, as in Jinja2, so a dict
 * literal can hold "}}". */
#include "tmpl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
    struct tstate *st;
    const char *s; /* normalized source */
    size_t len, pos;
    size_t line_pos; /* position up to which lines are counted */
    int line;
    struct token *toks;
    size_t n, cap;
};

static int line_at(struct lexer *lx, size_t pos)
{
    for (; lx->line_pos < pos && lx->line_pos < lx->len; lx->line_pos++)
        if (lx->s[lx->line_pos] == '\n') lx->line++;
    return lx->line;
}

static struct token *emit(struct lexer *lx, enum tok_kind kind, size_t at, const char *p, size_t n)
{
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        lx->toks =
            tmpl_realloc(lx->st, lx->toks, lx->cap * sizeof *lx->toks, cap * sizeof *lx->toks);
        lx->cap = cap;
    }
    struct token *t = &lx->toks[lx->n++];
    *t = (struct token){.kind = kind, .line = line_at(lx, at), .p = p, .n = n};
    return t;
}

_Noreturn static void lex_fail(struct lexer *lx, size_t at, const char *what)
{
    tmpl_fail(lx->st, VKLLM_E_FORMAT, "line %d: %s", line_at(lx, at), what);
}

static bool starts(const struct lexer *lx, size_t at, const char *lit)
{
    size_t n = strlen(lit);
    return at <= lx->len && lx->len - at >= n && !memcmp(lx->s + at, lit, n);
}

/* Skips Python whitespace (the regex \s*) from AT. */
static size_t skip_space(const struct lexer *lx, size_t at)
{
    size_t k;
    while (at < lx->len && (k = utf8_space(lx->s + at, lx->s + lx->len)))
        at += k;
    return at;
}

/* Emits the text S[FROM..TO) before a tag opened with SIGN ('-', '+' or 0),
 * applying {%- and lstrip_blocks (LSTRIP: the tag is a block or comment). */
static void emit_text(struct lexer *lx, size_t from, size_t to, char sign, bool lstrip)
{
    const char *p = lx->s + from;
    size_t n = to - from;
    if (sign == '-') {
        size_t k;
        while (n && (k = utf8_space_back(p, p + n)))
            n -= k;
    } else if (sign != '+' && lstrip) {
        /* only whitespace between the last line start and the tag */
        size_t l = n;
        while (l && p[l - 1] != '\n')
            l--;
        bool line_starting = from == 0 || lx->s[from - 1] == '\n';
        if ((l > 0 || line_starting) && l < n) {
            size_t q = l, k;
            while (q < n && (k = utf8_space(p + q, p + n)))
                q += k;
            if (q == n) n = l;
        }
    }
    if (n) emit(lx, TK_TEXT, from, p, n);
}

/* A block end at AT: returns the position after it (with trim_blocks' newline
 * or -%}'s whitespace), or 0 if there is none. */
static size_t block_end(const struct lexer *lx, size_t at, char close)
{
    char plain[3] = {'%', close, 0}, plus[4] = {'+', '%', close, 0},
         minus[4] = {'-', '%', close, 0};
    if (starts(lx, at, plus)) return at + 3;
    if (starts(lx, at, minus)) return skip_space(lx, at + 3);
    if (starts(lx, at, plain)) return at + 2 + (at + 2 < lx->len && lx->s[at + 2] == '\n');
    return 0;
}

/* {% raw %} at AT (sign included): the position after it, or 0. */
static size_t raw_begin(const struct lexer *lx, size_t at)
{
    size_t p = at + 2;
    if (p < lx->len && (lx->s[p] == '-' || lx->s[p] == '+')) p++;
    p = skip_space(lx, p);
    if (!starts(lx, p, "raw")) return 0;
    p = skip_space(lx, p + 3);
    if (starts(lx, p, "-%}")) return skip_space(lx, p + 3);
    if (starts(lx, p, "%}")) return p + 2; /* no trim_blocks after raw, as Jinja2 */
    return 0;
}

/* ---- tokens inside tags */

static size_t scan_digits(const char *s, size_t len, size_t p)
{
    /* (\d+_)*\d+ */
    if (p >= len || !isdigit((unsigned char)s[p])) return 0;
    while (p < len && isdigit((unsigned char)s[p]))
        p++;
    while (p + 1 < len && s[p] == '_' && isdigit((unsigned char)s[p + 1])) {
        p++;
        while (p < len && isdigit((unsigned char)s[p]))
            p++;
    }
    return p;
}

/* Copies S[FROM..TO) without underscores into BUF (CAP bytes); false if too long. */
static bool strip_underscores(const char *s, size_t from, size_t to, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        if (s[i] == '_') continue;
        if (n + 1 >= cap) return false;
        buf[n++] = s[i];
    }
    buf[n] = 0;
    return true;
}

static bool lex_number(struct lexer *lx)
{
    const char *s = lx->s;
    size_t len = lx->len, at = lx->pos, p = scan_digits(s, len, at);
    if (!p) return false;
    char buf[400];
    /* a float: digits then .digits and/or an exponent; not right after a dot */
    if (!(at > 0 && s[at - 1] == '.')) {
        size_t frac = 0, e = 0;
        if (p < len && s[p] == '.') frac = scan_digits(s, len, p + 1);
        size_t q = frac ? frac : p;
        if (q < len && (s[q] == 'e' || s[q] == 'E')) {
            size_t r = q + 1;
            if (r < len && (s[r] == '+' || s[r] == '-')) r++;
            e = scan_digits(s, len, r);
        }
        size_t end = e ? e : frac;
        if (end) {
            if (!strip_underscores(s, at, end, buf, sizeof buf))
                lex_fail(lx, at, "number too long");
            struct token *t = emit(lx, TK_FLOAT, at, s + at, end - at);
            t->f = strtod(buf, NULL);
            lx->pos = end;
            return true;
        }
    }
    /* an integer: 0b, 0o, 0x or decimal */
    int base = 10;
    size_t q = at, end;
    if (s[at] == '0' && at + 1 < len && memchr("bBoOxX", s[at + 1], 6)) {
        char c = (char)tolower((unsigned char)s[at + 1]);
        base = c == 'b' ? 2 : c == 'o' ? 8 : 16;
        q = at + 2;
        end = q;
        for (;;) {
            size_t r = end;
            if (r < len && s[r] == '_') r++;
            if (r >= len) break;
            int c2 = tolower((unsigned char)s[r]);
            int d = isdigit(c2) ? c2 - '0' : (c2 >= 'a' && c2 <= 'f') ? c2 - 'a' + 10 : 99;
            if (d >= base) break;
            end = r + 1;
        }
        if (end == q) { /* "0x" alone: the integer 0, then a name */
            base = 10;
            q = at;
            end = at + 1;
        }
    } else if (s[at] == '0') {
        end = at + 1; /* 0(_?0)* */
        while ((end < len && s[end] == '0') ||
               (end + 1 < len && s[end] == '_' && s[end + 1] == '0'))
            end += s[end] == '_' ? 2 : 1;
    } else {
        end = p;
    }
    if (!strip_underscores(s, q, end, buf, sizeof buf)) lex_fail(lx, at, "number too long");
    uint64_t v = 0;
    for (const char *c = buf; *c; c++) {
        int d = isdigit((unsigned char)*c) ? *c - '0' : tolower((unsigned char)*c) - 'a' + 10;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base || v * base + d > INT64_MAX)
            lex_fail(lx, at, "integer literal too large");
        v = v * base + d;
    }
    struct token *t = emit(lx, TK_INT, at, s + at, end - at);
    t->i = (int64_t)v;
    lx->pos = end;
    return true;
}

static void put_utf8(struct tstate *st, struct tbuf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | c >> 6);
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | c >> 12);
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | c >> 18);
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    tbuf_put(st, b, u, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a string literal's body as Python's unicode-escape codec does. */
static void lex_string(struct lexer *lx)
{
    const char *s = lx->s;
    size_t at = lx->pos, p = at + 1;
    char q = s[at];
    struct tbuf b = {0};
    for (;;) {
        if (p >= lx->len) lex_fail(lx, at, "unexpected end of string");
        char c = s[p];
        if (c == q) break;
        if (c != '\\') {
            tbuf_putc(lx->st, &b, c);
            p++;
            continue;
        }
        if (p + 1 >= lx->len) lex_fail(lx, at, "unexpected end of string");
        char e = s[p + 1];
        p += 2;
        const char *simple = strchr("\\'\"abfnrtv\n", e);
        if (simple && e) {
            static const char out[] = "\\'\"\a\b\f\n\r\t\v";
            if (e != '\n') tbuf_putc(lx->st, &b, out[simple - "\\'\"abfnrtv\n"]);
            continue;
        }
        if (e >= '0' && e <= '7') {
            uint32_t v = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && p < lx->len && s[p] >= '0' && s[p] <= '7'; k++)
                v = v * 8 + (uint32_t)(s[p++] - '0');
            put_utf8(lx->st, &b, v);
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                int h = p < lx->len ? hexval(s[p]) : -1;
                if (h < 0) lex_fail(lx, at, "truncated escape in string");
                v = v * 16 + (uint32_t)h;
                p++;
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                lex_fail(lx, at, "invalid character escape in string");
            put_utf8(lx->st, &b, v);
            continue;
        }
        if (e == 'N') lex_fail(lx, at, "\\N{...} escapes are not supported");
        /* unknown escapes stay as they are; a non-ASCII character after the
         * backslash comes out as Python's backslashreplace text (\xe9) */
        tbuf_putc(lx->st, &b, '\\');
        if ((unsigned char)e < 0x80) {
            tbuf_putc(lx->st, &b, e);
            continue;
        }
        p -= 1;
        size_t k = utf8_len(s + p, s + lx->len);
        uint32_t cp = (unsigned char)s[p];
        if (k > 1) {
            cp &= 0x3F >> (k - 1);
            for (size_t j = 1; j < k; j++)
                cp = cp << 6 | ((unsigned char)s[p + j] & 0x3F);
        }
        tbuf_printf(lx->st, &b, cp < 0x100 ? "x%02x" : cp < 0x10000 ? "u%04x" : "U%08x", cp);
        p += k;
    }
    struct token *t = emit(lx, TK_STRING, at, b.p ? b.p : "", b.n);
    (void)t;
    lx->pos = p + 1;
}

static const char *const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                  ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

/* Tokens of one {{ }} or {% %} tag, from lx->pos (after the opener) through
 * its end marker. */
static void lex_tag(struct lexer *lx, bool block)
{
    char stack[256];
    size_t depth = 0;
    for (;;) {
        size_t at = lx->pos;
        if (at >= lx->len)
            lex_fail(lx, at,
                     block ? "unexpected end of template, expected '%}'"
                           : "unexpected end of template, expected '}}'");
        if (!depth) {
            if (block) {
                size_t e = block_end(lx, at, '}');
                if (e) {
                    emit(lx, TK_BLOCK_END, at, lx->s + at, 2);
                    lx->pos = e;
                    return;
                }
            } else if (starts(lx, at, "-}}") || starts(lx, at, "}}")) {
                emit(lx, TK_VAR_END, at, lx->s + at, 2);
                lx->pos = lx->s[at] == '-' ? skip_space(lx, at + 3) : at + 2;
                return;
            }
        }
        size_t k = utf8_space(lx->s + at, lx->s + lx->len);
        if (k) {
            lx->pos = skip_space(lx, at);
            continue;
        }
        unsigned char c = (unsigned char)lx->s[at];
        if (isdigit(c) && lex_number(lx)) continue;
        if (isalpha(c) || c == '_') {
            size_t e = at + 1;
            while (e < lx->len && (isalnum((unsigned char)lx->s[e]) || lx->s[e] == '_'))
                e++;
            emit(lx, TK_NAME, at, lx->s + at, e - at);
            lx->pos = e;
            continue;
        }
        if (c == '\'' || c == '"') {
            lex_string(lx);
            continue;
        }
        const char *op = NULL;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !op; i++)
            if (starts(lx, at, ops[i])) op = ops[i];
        if (!op) {
            char msg[64];
            snprintf(msg, sizeof msg, "unexpected char '%c'", c >= 0x20 && c < 0x7f ? c : '?');
            lex_fail(lx, at, msg);
        }
        char o = op[0];
        if (!op[1] && (o == '(' || o == '[' || o == '{')) {
            if (depth == sizeof stack) lex_fail(lx, at, "brackets nested too deeply");
            stack[depth++] = o == '(' ? ')' : o == '[' ? ']' : '}';
        } else if (!op[1] && (o == ')' || o == ']' || o == '}')) {
            char msg[64];
            if (!depth) {
                snprintf(msg, sizeof msg, "unexpected '%c'", o);
                lex_fail(lx, at, msg);
            }
            if (stack[depth - 1] != o) {
                snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", o, stack[depth - 1]);
                lex_fail(lx, at, msg);
            }
            depth--;
        }
        emit(lx, TK_OP, at, op, strlen(op));
        lx->pos = at + strlen(op);
    }
}

/* ---- the text between tags */

static void lex_comment(struct lexer *lx, size_t at)
{
    for (size_t p = lx->pos; p < lx->len; p++) {
        if (starts(lx, p, "+#}")) {
            lx->pos = p + 3;
            return;
        }
        if (starts(lx, p, "-#}")) {
            lx->pos = skip_space(lx, p + 3);
            return;
        }
        if (starts(lx, p, "#}")) {
            lx->pos = p + 2 + (p + 2 < lx->len && lx->s[p + 2] == '\n');
            return;
        }
    }
    lex_fail(lx, at, "missing end of comment tag");
}

static void lex_raw(struct lexer *lx, size_t at)
{
    for (size_t p = lx->pos; p + 1 < lx->len; p++) {
        if (lx->s[p] != '{' || lx->s[p + 1] != '%') continue;
        size_t q = p + 2;
        char sign = 0;
        if (q < lx->len && (lx->s[q] == '-' || lx->s[q] == '+')) sign = lx->s[q++];
        q = skip_space(lx, q);
        if (!starts(lx, q, "endraw")) continue;
        size_t e = block_end(lx, skip_space(lx, q + 6), '}');
        if (!e) continue;
        emit_text(lx, lx->pos, p, sign, true);
        lx->pos = e;
        return;
    }
    lex_fail(lx, at, "missing end of raw directive");
}

struct token *tmpl_lex(struct tstate *st, const char *src, size_t len, size_t *n_tokens)
{
    /* newlines as Jinja2 normalizes them */
    char *s = tmpl_alloc(st, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;

    struct lexer lx = {.st = st, .s = s, .len = n, .line = 1};
    while (lx.pos < lx.len) {
        const char *q = lx.s + lx.pos, *end = lx.s + lx.len;
        while ((q = memchr(q, '{', (size_t)(end - q))) && q + 1 < end && !memchr("{%#", q[1], 3))
            q++;
        if (!q || q + 1 >= end) {
            emit(&lx, TK_TEXT, lx.pos, lx.s + lx.pos, lx.len - lx.pos);
            break;
        }
        size_t at = (size_t)(q - lx.s), after = at + 2;
        char kind = q[1], sign = 0;
        if (after < lx.len && (lx.s[after] == '-' || lx.s[after] == '+')) sign = lx.s[after++];
        size_t raw = kind == '%' ? raw_begin(&lx, at) : 0;
        emit_text(&lx, lx.pos, at, sign, kind != '{');
        if (raw) {
            lx.pos = raw;
            lex_raw(&lx, at);
        } else if (kind == '#') {
            lx.pos = after;
            lex_comment(&lx, at);
        } else {
            emit(&lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, at, lx.s + at, 2);
            lx.pos = after;
            lex_tag(&lx, kind == '%');
        }
    }
    emit(&lx, TK_EOF, lx.len, "", 0);
    *n_tokens = lx.n;
    return lx.toks;
}
