/* strings.c: Python's str operations as templates use them, on UTF-8: strip,
 * split, replace, full case mapping (utf8proc and special_casing.h), splitlines, str.format and
 * printf-style %, and the str methods the sandbox allows. Positions count
 * characters, not bytes, as in Python. */
#define _GNU_SOURCE /* memmem */
#include "tmpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static void put_cp(struct tstate *st, struct tbuf *b, int32_t c)
{
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char(c, u);
    tbuf_put(st, b, (const char *)u, n > 0 ? (size_t)n : 0);
}

/* ============================== Strings ============================== */

static bool in_chars(uint32_t c, struct tval chars)
{
    const char *end = chars.s.p + chars.s.n;
    for (const char *p = chars.s.p; p < end;) {
        size_t k;
        if (utf8_decode_at(p, end, &k) == c) return true;
        p += k;
    }
    return false;
}

/* str.strip/lstrip/rstrip: CHARS NONE strips whitespace. */
struct tval tstr_strip(struct teval *ev, struct tval s, struct tval chars, bool left, bool right)
{
    bool ws = chars.kind == TV_NONE || chars.kind == TV_UNDEF;
    if (!ws) tmpl_need_str(ev, chars, "strip arg");
    const char *p = s.s.p, *end = p + s.s.n;
    /* each character of S is looked for among the characters of CHARS */
    uint64_t cost = ws ? 1 : 1 + chars.s.n;
    while (left && p < end) {
        tmpl_work(ev->st, cost);
        size_t k;
        uint32_t c = utf8_decode_at(p, end, &k);
        if (ws ? !utf8_space(p, end) : !in_chars(c, chars)) break;
        p += k;
    }
    while (right && end > p) {
        tmpl_work(ev->st, cost);
        const char *q = end - utf8_back(p, end);
        size_t k;
        uint32_t c = utf8_decode_at(q, end, &k);
        if (ws ? !utf8_space(q, end) : !in_chars(c, chars)) break;
        end = q;
    }
    return tv_str(p, (size_t)(end - p));
}

const char *tstr_find(const char *h, size_t hn, const char *n, size_t nn)
{
    /* glibc's memmem is linear (two-way), so a hostile needle cannot make this quadratic */
    return nn ? memmem(h, hn, n, nn) : h;
}

struct tval tstr_split(struct teval *ev, struct tval s, struct tval sep, int64_t maxsplit,
                       bool from_right)
{
    struct tval out = tv_list(ev->st, 0);
    const char *p = s.s.p, *end = p + s.s.n;
    if (sep.kind == TV_NONE || sep.kind == TV_UNDEF) {
        /* runs of whitespace; no empty strings */
        tmpl_work(ev->st, s.s.n);
        struct tval parts = tv_list(ev->st, 0);
        while (p < end) {
            size_t k;
            while (p < end && (k = utf8_space(p, end)))
                p += k;
            if (p >= end) break;
            const char *w = p;
            while (p < end && !utf8_space(p, end))
                p += utf8_len(p, end);
            tv_list_push(ev->st, parts, tv_str(w, (size_t)(p - w)));
        }
        if (maxsplit < 0 || (size_t)maxsplit + 1 >= parts.l->n) return parts;
        /* with maxsplit, the rest keeps its inner whitespace (left trimmed) */
        size_t keep = (size_t)maxsplit;
        if (!from_right) {
            for (size_t i = 0; i < keep; i++)
                tv_list_push(ev->st, out, parts.l->v[i]);
            const char *rest = parts.l->v[keep].s.p;
            struct tval r =
                tstr_strip(ev, tv_str(rest, (size_t)(end - rest)), TV_MAKE_NONE, false, true);
            tv_list_push(ev->st, out, r);
        } else {
            size_t first = parts.l->n - keep;
            struct tval last = parts.l->v[first - 1];
            struct tval r = tstr_strip(ev, tv_str(s.s.p, (size_t)(last.s.p + last.s.n - s.s.p)),
                                       TV_MAKE_NONE, true, false);
            tv_list_push(ev->st, out, r);
            for (size_t i = first; i < parts.l->n; i++)
                tv_list_push(ev->st, out, parts.l->v[i]);
        }
        return out;
    }
    tmpl_need_str(ev, sep, "separator");
    if (!sep.s.n) tmpl_eval_fail(ev, "empty separator");
    if (!from_right) {
        const char *q;
        while ((maxsplit < 0 || maxsplit-- > 0) &&
               (q = tstr_find(p, (size_t)(end - p), sep.s.p, sep.s.n))) {
            tv_list_push(ev->st, out, tv_str(p, (size_t)(q - p)));
            p = q + sep.s.n;
        }
        tv_list_push(ev->st, out, tv_str(p, (size_t)(end - p)));
        return out;
    }
    /* rsplit: collect from the right, then reverse */
    struct tval rev = tv_list(ev->st, 0);
    const char *e = end;
    while (maxsplit < 0 || maxsplit-- > 0) {
        const char *q = NULL;
        for (const char *c = e - sep.s.n; c >= p && e - p >= (ptrdiff_t)sep.s.n; c--) {
            tmpl_work(ev->st, 1 + sep.s.n / 16);
            if (!memcmp(c, sep.s.p, sep.s.n)) {
                q = c;
                break;
            }
            if (c == p) break;
        }
        if (!q) break;
        tv_list_push(ev->st, rev, tv_str(q + sep.s.n, (size_t)(e - q - sep.s.n)));
        e = q;
    }
    tv_list_push(ev->st, rev, tv_str(p, (size_t)(e - p)));
    for (size_t i = rev.l->n; i-- > 0;)
        tv_list_push(ev->st, out, rev.l->v[i]);
    return out;
}

struct tval tstr_replace(struct teval *ev, struct tval s, struct tval old, struct tval new_s,
                         int64_t count)
{
    tmpl_need_str(ev, old, "replace arg");
    new_s = tv_to_str(ev->st, new_s);
    struct tbuf b = {0};
    const char *p = s.s.p, *end = p + s.s.n;
    if (!old.s.n) { /* between every character, and at both ends */
        while (count < 0 || count-- > 0) {
            tbuf_put(ev->st, &b, new_s.s.p, new_s.s.n);
            if (p >= end) break;
            size_t k = utf8_len(p, end);
            tbuf_put(ev->st, &b, p, k);
            p += k;
        }
        tbuf_put(ev->st, &b, p, (size_t)(end - p));
        return tbuf_val(&b);
    }
    const char *q;
    while ((count < 0 || count-- > 0) && (q = tstr_find(p, (size_t)(end - p), old.s.p, old.s.n))) {
        tbuf_put(ev->st, &b, p, (size_t)(q - p));
        tbuf_put(ev->st, &b, new_s.s.p, new_s.s.n);
        p = q + old.s.n;
    }
    tbuf_put(ev->st, &b, p, (size_t)(end - p));
    return tbuf_val(&b);
}

static bool is_cased(int32_t c)
{
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT;
}

/* Unicode's Case_Ignorable, as the final-sigma rule skips it: marks, format
 * characters, modifiers, and the apostrophes and dots inside words. */
static bool is_case_ignorable(int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK: return true;
    default:
        return c == '\'' || c == '.' || c == ':' || c == 0xB7 || c == 0x387 || c == 0x5F4 ||
               c == 0x2018 || c == 0x2019 || c == 0x2024 || c == 0x2027 || c == 0xFE13 ||
               c == 0xFE52 || c == 0xFE55 || c == 0xFF07 || c == 0xFF0E || c == 0xFF1A;
    }
}

#include "special_casing.h"

static int cmp_special(const void *key, const void *row)
{
    const uint32_t a = *(const uint32_t *)key, b = ((const struct special_case *)row)->cp;
    return a < b ? -1 : a > b;
}

enum full_case { TO_UPPER, TO_LOWER, TO_TITLE, TO_FOLD };

/* C's full case mapping, as Python's str methods give it: a few characters
 * map to two or three ('ß' -> "SS", 'İ' -> "i̇"); FINAL_SIGMA: C is a capital
 * sigma that ends a word (lower case 'ς'). */
static void put_case(struct tstate *st, struct tbuf *b, int32_t c, enum full_case to,
                     bool final_sigma)
{
    const uint32_t key = (uint32_t)c;
    const struct special_case *row =
        bsearch(&key, special_cases, sizeof special_cases / sizeof *special_cases,
                sizeof *special_cases, cmp_special);
    const char *full = !row             ? NULL
                       : to == TO_UPPER ? row->upper
                       : to == TO_LOWER ? row->lower
                       : to == TO_TITLE ? row->title
                       : row->fold      ? row->fold
                                        : row->lower;
    if (full) {
        tbuf_put(st, b, full, strlen(full));
        return;
    }
    if (c == 0x3A3 && final_sigma && to == TO_LOWER) c = 0x3C2;
    put_cp(st, b,
           to == TO_UPPER   ? utf8proc_toupper(c)
           : to == TO_TITLE ? utf8proc_totitle(c)
                            : utf8proc_tolower(c));
}

/* Whether a capital sigma at P (K bytes) is the end of a word: a cased letter
 * before it and none after it, case-ignorable characters skipped both ways
 * (Unicode's Final_Sigma, which Python's lower() applies). AFTER_CASED: the
 * last character before P that was not case-ignorable was cased. */
static bool ends_word(const char *p, size_t k, const char *end, bool after_cased)
{
    if (!after_cased) return false;
    for (const char *q = p + k; q < end;) {
        size_t n;
        int32_t c = (int32_t)utf8_decode_at(q, end, &n);
        if (!is_case_ignorable(c)) return !is_cased(c);
        q += n;
    }
    return true;
}

struct tval tstr_case(struct teval *ev, struct tval s, enum case_mode mode)
{
    struct tbuf b = {0};
    const char *p = s.s.p, *end = p + s.s.n;
    bool prev_cased = false, first = true, word_start = true, after_cased = false;
    while (p < end) {
        tmpl_work(ev->st, WORK_CLASS);
        size_t k;
        int32_t c = (int32_t)utf8_decode_at(p, end, &k);
        if (k == 1 && (unsigned char)*p >= 0x80) { /* a stray byte stays as it is */
            tbuf_put(ev->st, &b, p, 1);
            p++;
            continue;
        }
        const bool sigma = c == 0x3A3 && ends_word(p, k, end, after_cased);
        if (!is_case_ignorable(c)) after_cased = is_cased(c);
        if (mode == CASE_WORDS) {
            /* Jinja2's title filter: words begin after runs of [-\s({[<]; a
             * word's first character upper, the rest lower */
            bool sep = utf8_space(p, end) || (c < 0x80 && strchr("-({[<", c) && c);
            if (sep)
                tbuf_put(ev->st, &b, p, k);
            else
                put_case(ev->st, &b, c, word_start ? TO_UPPER : TO_LOWER, sigma);
            /* Jinja2 lowers the rest of a word alone: a sigma right after its
             * first letter is not final-by-context ('ΑΣ' -> 'Ασ') */
            if (word_start) after_cased = false;
            word_start = sep;
            p += k;
            continue;
        }
        switch (mode) {
        case CASE_UPPER: put_case(ev->st, &b, c, TO_UPPER, false); break;
        case CASE_LOWER: put_case(ev->st, &b, c, TO_LOWER, sigma); break;
        case CASE_FOLD: put_case(ev->st, &b, c, TO_FOLD, false); break;
        case CASE_TITLE: put_case(ev->st, &b, c, prev_cased ? TO_LOWER : TO_TITLE, sigma); break;
        case CASE_CAPITALIZE: put_case(ev->st, &b, c, first ? TO_TITLE : TO_LOWER, sigma); break;
        case CASE_SWAP:
            if (utf8proc_isupper(c))
                put_case(ev->st, &b, c, TO_LOWER, sigma);
            else if (utf8proc_islower(c))
                put_case(ev->st, &b, c, TO_UPPER, false);
            else
                tbuf_put(ev->st, &b, p, k);
            break;
        case CASE_WORDS: break;
        }
        prev_cased = is_cased(c);
        first = false;
        p += k;
    }
    return tbuf_val(&b);
}

/* Python's str.splitlines(keepends). */
struct tval tstr_splitlines(struct teval *ev, struct tval s, bool keepends)
{
    struct tval out = tv_list(ev->st, 0);
    const char *p = s.s.p, *end = p + s.s.n, *line = p;
    tmpl_work(ev->st, s.s.n);
    while (p < end) {
        size_t k;
        uint32_t c = utf8_decode_at(p, end, &k);
        bool nl = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
                  c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!nl) {
            p += k;
            continue;
        }
        const char *brk = p;
        p += k;
        if (c == '\r' && p < end && *p == '\n') p++;
        tv_list_push(ev->st, out, tv_str(line, (size_t)((keepends ? p : brk) - line)));
        line = p;
    }
    if (line < end) tv_list_push(ev->st, out, tv_str(line, (size_t)(end - line)));
    return out;
}

int64_t tstr_words(struct teval *ev, struct tval s)
{
    /* runs of \w, as Jinja2's wordcount counts them */
    int64_t n = 0;
    bool in_word = false;
    for (const char *p = s.s.p, *end = p + s.s.n; p < end;) {
        tmpl_work(ev->st, WORK_CLASS);
        size_t k;
        int32_t c = (int32_t)utf8_decode_at(p, end, &k);
        utf8proc_category_t cat = utf8proc_category(c);
        bool w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO);
        n += w && !in_word;
        in_word = w;
        p += k;
    }
    return n;
}

int64_t tstr_cp_index(struct teval *ev, const char *base, const char *at)
{
    tmpl_work(ev->st, (uint64_t)(at - base));
    return (int64_t)utf8_count(base, (size_t)(at - base));
}

bool tstr_affix(struct teval *ev, struct tval s, struct tval what, bool prefix)
{
    if (what.kind == TV_TUPLE || what.kind == TV_LIST) {
        for (size_t i = 0; i < what.l->n; i++) {
            tmpl_work(ev->st, 1);
            if (tstr_affix(ev, s, what.l->v[i], prefix)) return true;
        }
        return false;
    }
    tmpl_need_str(ev, what, prefix ? "startswith arg" : "endswith arg");
    tmpl_work(ev->st, WORK_BYTES(what.s.n));
    if (what.s.n > s.s.n) return false;
    return !memcmp(prefix ? s.s.p : s.s.p + s.s.n - what.s.n, what.s.p, what.s.n);
}

bool tstr_all_chars(struct teval *ev, struct tval s, int kind)
{
    if (!s.s.n) return false;
    const char *p = s.s.p, *end = p + s.s.n;
    bool any_cased = false;
    while (p < end) {
        tmpl_work(ev->st, WORK_CLASS);
        size_t k;
        int32_t c = (int32_t)utf8_decode_at(p, end, &k);
        utf8proc_category_t cat = utf8proc_category(c);
        bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        switch (kind) {
        case 'a':
            if (!letter) return false;
            break;
        case 'd':
            if (!digit) return false;
            break;
        case 'n':
            if (!letter && !digit) return false;
            break;
        case 's':
            if (!utf8_space(p, end)) return false;
            break;
        case 'u':
            if (utf8proc_islower(c)) return false;
            if (utf8proc_isupper(c)) any_cased = true;
            break;
        case 'l':
            if (utf8proc_isupper(c)) return false;
            if (utf8proc_islower(c)) any_cased = true;
            break;
        }
        p += k;
    }
    return kind == 'u' || kind == 'l' ? any_cased : true;
}

/* "{} {0} {name}".format(...): fields without format specs. */
static struct tval str_format(struct teval *ev, struct tval fmt, struct tval *args, size_t n_args,
                              const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    struct tbuf b = {0};
    size_t auto_index = 0;
    const char *p = fmt.s.p, *end = p + fmt.s.n;
    while (p < end) {
        if (*p == '}') {
            if (p + 1 < end && p[1] == '}') {
                tbuf_putc(ev->st, &b, '}');
                p += 2;
                continue;
            }
            tmpl_eval_fail(ev, "Single '}' encountered in format string");
        }
        if (*p != '{') {
            tbuf_putc(ev->st, &b, *p++);
            continue;
        }
        if (p + 1 < end && p[1] == '{') {
            tbuf_putc(ev->st, &b, '{');
            p += 2;
            continue;
        }
        const char *close = memchr(p, '}', (size_t)(end - p));
        if (!close) tmpl_eval_fail(ev, "Single '{' encountered in format string");
        const char *f = p + 1;
        size_t fn = (size_t)(close - f);
        if (memchr(f, ':', fn) || memchr(f, '!', fn) || memchr(f, '.', fn) || memchr(f, '[', fn))
            tmpl_eval_fail(ev, "format specs are not supported in str.format");
        struct tval v;
        if (!fn || (f[0] >= '0' && f[0] <= '9')) {
            size_t idx = fn ? (size_t)strtoull(f, NULL, 10) : auto_index++;
            if (idx >= n_args) tmpl_eval_fail(ev, "Replacement index %zu out of range", idx);
            v = args[idx];
        } else {
            bool found = false;
            for (size_t k = 0; k < n_kw && !found; k++)
                if (strlen(kw_names[k]) == fn && !memcmp(kw_names[k], f, fn)) {
                    v = kw_vals[k];
                    found = true;
                }
            char q[TMPL_MSG_NAME];
            if (!found) tmpl_eval_fail(ev, "'%s'", tmpl_msg_text(q, sizeof q, f, fn));
        }
        tv_print(ev->st, &b, v);
        p = close + 1;
    }
    return tbuf_val(&b);
}

/* printf-style "%s" % args. */
struct tval tmpl_format(struct teval *ev, struct tval fmt, struct tval args)
{
    struct tbuf b = {0};
    size_t next = 0, n_items = 1;
    struct tval *items = &args;
    if (args.kind == TV_TUPLE) {
        items = args.l->v;
        n_items = args.l->n;
    }
    const char *p = fmt.s.p, *end = p + fmt.s.n;
    while (p < end) {
        if (*p != '%') {
            tbuf_putc(ev->st, &b, *p++);
            continue;
        }
        p++;
        struct tval v;
        if (p < end && *p == '(') {
            const char *close = memchr(p, ')', (size_t)(end - p));
            if (!close || args.kind != TV_DICT) tmpl_eval_fail(ev, "format requires a mapping");
            struct tval *x = tv_dict_getn(ev->st, args, p + 1, (size_t)(close - p - 1));
            char q[TMPL_MSG_NAME];
            if (!x)
                tmpl_eval_fail(ev, "'%s'",
                               tmpl_msg_text(q, sizeof q, p + 1, (size_t)(close - p - 1)));
            v = *x;
            p = close + 1;
        } else {
            v = TV_MAKE_NONE;
        }
        char spec[32];
        size_t sn = 0;
        spec[sn++] = '%';
        while (p < end && strchr("-+ #0123456789.", *p) && *p && sn < 20)
            spec[sn++] = *p++;
        if (p >= end) tmpl_eval_fail(ev, "incomplete format");
        spec[sn] = 0;
        /* widths and precisions go to snprintf: keep them small */
        for (const char *d = spec + 1; *d; d++)
            if (*d >= '1' && *d <= '9' && strspn(d, "0123456789") > 4)
                tmpl_eval_fail(ev, "format width or precision too large");
        char conv = *p++;
        if (conv == '%') {
            tbuf_putc(ev->st, &b, '%');
            continue;
        }
        if (v.kind == TV_NONE && args.kind != TV_DICT) {
            if (next >= n_items) tmpl_eval_fail(ev, "not enough arguments for format string");
            v = items[next++];
        }
        if (v.kind == TV_UNDEF && conv != 's') tv_undef_fail(ev->st, v);
        char out[512];
        switch (conv) {
        case 's':
        case 'r': {
            struct tbuf t = {0};
            if (conv == 's')
                tv_print(ev->st, &t, v);
            else
                tv_repr(ev->st, &t, v);
            spec[sn++] = '.';
            spec[sn] = 0;
            /* width only; precision on strings is rare */
            int width = atoi(spec + 1 + (spec[1] == '-'));
            size_t chars = utf8_count(t.p ? t.p : "", t.n);
            if (width > 0 && (size_t)width > chars && spec[1] != '-')
                for (size_t i = chars; i < (size_t)width; i++)
                    tbuf_putc(ev->st, &b, ' ');
            tbuf_put(ev->st, &b, t.p ? t.p : "", t.n);
            if (width > 0 && (size_t)width > chars && spec[1] == '-')
                for (size_t i = chars; i < (size_t)width; i++)
                    tbuf_putc(ev->st, &b, ' ');
            continue;
        }
        case 'd':
        case 'i':
        case 'x':
        case 'X':
        case 'o': {
            if (!tv_is_number(v)) tmpl_eval_fail(ev, "%%%c format: a number is required", conv);
            long long x = v.kind == TV_FLOAT ? (long long)v.f : v.kind == TV_BOOL ? v.b : v.i;
            memcpy(spec + sn, "ll", 2);
            spec[sn + 2] = conv == 'i' ? 'd' : conv;
            spec[sn + 3] = 0;
            snprintf(out, sizeof out, spec, x);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
            if (!tv_is_number(v))
                tmpl_eval_fail(ev, "must be real number, not %s", tv_type_name(v));
            spec[sn] = conv;
            spec[sn + 1] = 0;
            snprintf(out, sizeof out, spec, tv_as_double(v));
            break;
        default: tmpl_eval_fail(ev, "unsupported format character '%c'", conv);
        }
        tbuf_put(ev->st, &b, out, strlen(out));
    }
    /* Python lets a mapping or sequence argument go unused, not a tuple or scalar */
    if (args.kind != TV_DICT && args.kind != TV_LIST && next < n_items)
        tmpl_eval_fail(ev, "not all arguments converted during string formatting");
    return tbuf_val(&b);
}

/* ============================== Methods ============================== */

/* str's methods as Python 3 declares them; most take no keywords */
static const struct tsig str_sigs[] = {
    {"strip", {"chars"}, 0, SIG_POSONLY},
    {"lstrip", {"chars"}, 0, SIG_POSONLY},
    {"rstrip", {"chars"}, 0, SIG_POSONLY},
    {"split", {"sep", "maxsplit"}, 0, 0},
    {"rsplit", {"sep", "maxsplit"}, 0, 0},
    {"startswith", {"prefix", "start", "end"}, 1, SIG_POSONLY},
    {"endswith", {"suffix", "start", "end"}, 1, SIG_POSONLY},
    {"replace", {"old", "new", "count"}, 2, SIG_POSONLY},
    {"upper", {NULL}, 0, 0},
    {"lower", {NULL}, 0, 0},
    {"casefold", {NULL}, 0, 0},
    {"title", {NULL}, 0, 0},
    {"capitalize", {NULL}, 0, 0},
    {"swapcase", {NULL}, 0, 0},
    {"format", {NULL}, 0, SIG_VARARGS | SIG_VARKW},
    {"find", {"sub", "start", "end"}, 1, SIG_POSONLY},
    {"rfind", {"sub", "start", "end"}, 1, SIG_POSONLY},
    {"index", {"sub", "start", "end"}, 1, SIG_POSONLY},
    {"rindex", {"sub", "start", "end"}, 1, SIG_POSONLY},
    {"count", {"sub", "start", "end"}, 1, SIG_POSONLY},
    {"join", {"iterable"}, 1, SIG_POSONLY},
    {"splitlines", {"keepends"}, 0, 0},
    {"isdigit", {NULL}, 0, 0},
    {"isnumeric", {NULL}, 0, 0},
    {"isdecimal", {NULL}, 0, 0},
    {"isalpha", {NULL}, 0, 0},
    {"isalnum", {NULL}, 0, 0},
    {"isspace", {NULL}, 0, 0},
    {"isupper", {NULL}, 0, 0},
    {"islower", {NULL}, 0, 0},
    {"removeprefix", {"prefix"}, 1, SIG_POSONLY},
    {"removesuffix", {"suffix"}, 1, SIG_POSONLY},
    {"zfill", {"width"}, 1, SIG_POSONLY},
    {"center", {"width", "fillchar"}, 1, SIG_POSONLY},
    {"ljust", {"width", "fillchar"}, 1, SIG_POSONLY},
    {"rjust", {"width", "fillchar"}, 1, SIG_POSONLY},
    {NULL, {NULL}, 0, 0},
};

/* S[START:END] for find, count and startswith: Python's bounds (characters;
 * None for none; negative from the end), but a START past the end is kept
 * past it, which no substring matches: false then. */
static bool str_span(struct teval *ev, struct tval s, struct tval start_v, struct tval end_v,
                     struct tval *out)
{
    int64_t len = -1, start = 0, end = INT64_MAX;
    if (start_v.kind != TV_NONE) start = tmpl_need_int(ev, start_v, "slice index");
    if (end_v.kind != TV_NONE) end = tmpl_need_int(ev, end_v, "slice index");
    *out = s;
    if (!start && end == INT64_MAX) return true;
    tmpl_work(ev->st, s.s.n);
    len = (int64_t)utf8_count(s.s.p, s.s.n);
    if (end > len) end = len;
    if (end < 0 && (end += len) < 0) end = 0;
    if (start < 0 && (start += len) < 0) start = 0;
    if (start > end) return false;
    const char *p = s.s.p, *stop = p + s.s.n, *b;
    for (int64_t i = 0; i < start; i++)
        p += utf8_len(p, stop);
    b = p;
    for (int64_t i = start; i < end; i++)
        p += utf8_len(p, stop);
    *out = tv_str(b, (size_t)(p - b));
    return true;
}

/* The last N (NN bytes) in H (HN bytes), or NULL: a backward scan, charged by the position */
static const char *str_rfind(struct teval *ev, const char *h, size_t hn, const char *n, size_t nn)
{
    if (nn > hn) return NULL;
    for (const char *c = h + hn - nn;; c--) {
        tmpl_work(ev->st, WORK_BYTES(nn));
        if (!memcmp(c, n, nn)) return c;
        if (c == h) return NULL;
    }
}

struct tval tstr_method(struct teval *ev, const char *name, struct tval s, struct tval *args,
                        size_t n_args, const char **kw_names, struct tval *kw_vals, size_t n_kw)
{
    struct tval none = TV_MAKE_NONE;
    const struct tsig *sig = tmpl_sig_find(str_sigs, name);
    if (!sig) tmpl_eval_fail(ev, "'str' object has no attribute '%s'", name);
    tmpl_check_args(ev, sig, n_args, kw_names, n_kw);
    tmpl_work(ev->st, WORK_BYTES(s.s.n));
    if (name_is(name, "strip")) return tstr_strip(ev, s, ARG(0, "chars", none), true, true);
    if (name_is(name, "lstrip")) return tstr_strip(ev, s, ARG(0, "chars", none), true, false);
    if (name_is(name, "rstrip")) return tstr_strip(ev, s, ARG(0, "chars", none), false, true);
    if (name_is(name, "split") || name_is(name, "rsplit")) {
        struct tval max = ARG(1, "maxsplit", tv_int(-1));
        return tstr_split(ev, s, ARG(0, "sep", none), tmpl_need_int(ev, max, "maxsplit"),
                          name[0] == 'r');
    }
    if (name_is(name, "startswith") || name_is(name, "endswith")) {
        struct tval span;
        if (!str_span(ev, s, ARG(1, "start", none), ARG(2, "end", none), &span))
            return tv_bool(false);
        return tv_bool(tstr_affix(ev, span, args[0], name[0] == 's'));
    }
    if (name_is(name, "replace")) {
        struct tval count = ARG(2, "count", tv_int(-1));
        return tstr_replace(ev, s, args[0], tmpl_need_str(ev, args[1], "replace arg"),
                            tmpl_need_int(ev, count, "count"));
    }
    if (name_is(name, "upper")) return tstr_case(ev, s, CASE_UPPER);
    if (name_is(name, "lower")) return tstr_case(ev, s, CASE_LOWER);
    if (name_is(name, "casefold")) return tstr_case(ev, s, CASE_FOLD);
    if (name_is(name, "title")) return tstr_case(ev, s, CASE_TITLE);
    if (name_is(name, "capitalize")) return tstr_case(ev, s, CASE_CAPITALIZE);
    if (name_is(name, "swapcase")) return tstr_case(ev, s, CASE_SWAP);
    if (name_is(name, "format")) return str_format(ev, s, args, n_args, kw_names, kw_vals, n_kw);
    if (name_is(name, "find") || name_is(name, "index") || name_is(name, "rfind") ||
        name_is(name, "rindex") || name_is(name, "count")) {
        struct tval sub = tmpl_need_str(ev, args[0], "substring"), span;
        const char *hit = NULL;
        int64_t count = 0;
        bool in = str_span(ev, s, ARG(1, "start", none), ARG(2, "end", none), &span);
        const char *p = span.s.p, *end = span.s.p + span.s.n;
        if (in && name[0] == 'r') {
            hit = str_rfind(ev, p, span.s.n, sub.s.p, sub.s.n);
        } else if (in) {
            tmpl_work(ev->st, WORK_SEARCH(span.s.n));
            for (;;) { /* count: the matches that do not overlap; '' between characters */
                const char *q = tstr_find(p, (size_t)(end - p), sub.s.p, sub.s.n);
                if (!q) break;
                tmpl_work(ev->st, 1);
                if (!hit) hit = q;
                count++;
                if (name[0] != 'c' || q == end) break;
                p = q + (sub.s.n ? sub.s.n : utf8_len(q, end));
            }
        }
        if (name_is(name, "count")) return tv_int(count);
        if (!hit && (name_is(name, "index") || name_is(name, "rindex")))
            tmpl_eval_fail(ev, "substring not found");
        return tv_int(hit ? tstr_cp_index(ev, s.s.p, hit) : -1);
    }
    if (name_is(name, "join")) {
        size_t n;
        struct tval *items = tmpl_iterate(ev, args[0], &n);
        struct tbuf b = {0};
        for (size_t i = 0; i < n; i++) {
            if (items[i].kind != TV_STR)
                tmpl_eval_fail(ev, "sequence item %zu: expected str instance, %s found", i,
                               tv_type_name(items[i]));
            if (i) tbuf_put(ev->st, &b, s.s.p, s.s.n);
            tbuf_put(ev->st, &b, items[i].s.p, items[i].s.n);
        }
        return tbuf_val(&b);
    }
    if (name_is(name, "splitlines"))
        return tstr_splitlines(ev, s, tv_truthy(ARG(0, "keepends", tv_bool(false))));
    if (name_is(name, "isdigit") || name_is(name, "isnumeric") || name_is(name, "isdecimal"))
        return tv_bool(tstr_all_chars(ev, s, 'd'));
    if (name_is(name, "isalpha")) return tv_bool(tstr_all_chars(ev, s, 'a'));
    if (name_is(name, "isalnum")) return tv_bool(tstr_all_chars(ev, s, 'n'));
    if (name_is(name, "isspace")) return tv_bool(tstr_all_chars(ev, s, 's'));
    if (name_is(name, "isupper")) return tv_bool(tstr_all_chars(ev, s, 'u'));
    if (name_is(name, "islower")) return tv_bool(tstr_all_chars(ev, s, 'l'));
    if (name_is(name, "removeprefix") || name_is(name, "removesuffix")) {
        struct tval a = tmpl_need_str(ev, args[0], "affix");
        bool pre = name[6] == 'p';
        if (tstr_affix(ev, s, a, pre)) return tv_str(pre ? s.s.p + a.s.n : s.s.p, s.s.n - a.s.n);
        return s;
    }
    /* zfill, center, ljust, rjust */
    int64_t w = tmpl_need_int(ev, args[0], "width");
    if (w > TMPL_WIDTH_MAX) tmpl_eval_fail(ev, "width too large");
    struct tval fill = ARG(1, "fillchar", tv_str(" ", 1));
    tmpl_need_str(ev, fill, "fillchar");
    if (utf8_count(fill.s.p, fill.s.n) != 1 || utf8_len(fill.s.p, fill.s.p + fill.s.n) != fill.s.n)
        tmpl_eval_fail(ev, "The fill character must be exactly one character long");
    tmpl_work(ev->st, s.s.n);
    int64_t len = (int64_t)utf8_count(s.s.p, s.s.n);
    if (w <= len) return s;
    if (name[0] == 'z') fill = tv_str("0", 1);
    int64_t pad = w - len, left = name[0] == 'l'   ? 0
                                  : name[0] == 'c' ? pad / 2 + (pad & w & 1)
                                                   : pad;
    struct tbuf b = {0};
    const char *body = s.s.p;
    size_t body_n = s.s.n;
    if (name[0] == 'z' && body_n && (body[0] == '-' || body[0] == '+')) {
        tbuf_putc(ev->st, &b, body[0]);
        body++;
        body_n--;
    }
    for (int64_t i = 0; i < left; i++)
        tbuf_put(ev->st, &b, fill.s.p, fill.s.n);
    tbuf_put(ev->st, &b, body, body_n);
    for (int64_t i = 0; i < pad - left; i++)
        tbuf_put(ev->st, &b, fill.s.p, fill.s.n);
    return tbuf_val(&b);
}
