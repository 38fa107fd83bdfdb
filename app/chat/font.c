/* font.c: fontconfig lookups, the fallback chain, and the cache of drawn runs
 * (see font.h). */
#include "font.h"

#include "app.h"
#include "markdown.h"

#include <SDL_ttf.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

enum face {
    FACE_SANS,
    FACE_BOLD,
    FACE_ITALIC,
    FACE_BOLD_ITALIC,
    FACE_MONO,
    FACE_MONO_BOLD,
    N_FACES
};

static const struct {
    const char *pattern; /* fontconfig's name syntax */
    int synth;           /* TTF_STYLE_* to fake when the file found lacks it */
} faces[N_FACES] = {
    {"DejaVu Sans", 0},
    {"DejaVu Sans:weight=bold", TTF_STYLE_BOLD},
    {"DejaVu Sans:slant=oblique", TTF_STYLE_ITALIC},
    {"DejaVu Sans:weight=bold:slant=oblique", TTF_STYLE_BOLD | TTF_STYLE_ITALIC},
    {"DejaVu Sans Mono", 0},
    {"DejaVu Sans Mono:weight=bold", TTF_STYLE_BOLD},
};

#define MAX_FALLBACK 12 /* emoji, bundled, and fonts found for missing characters */
#define MAX_CHAIN    (1 + MAX_FALLBACK)
#define MAX_INST     40 /* (face, size) pairs open at once */
#define MAX_MISSES   256
#define CACHE_CAP    4096 /* texture cache slots (a power of two) */
#define CACHE_KEEP   1536 /* entries above which the unused ones go */
#define WIDTH_CAP    8192 /* width cache slots (a power of two) */

/* One face at one size: its chain of open fonts (opened when first needed). */
struct inst {
    int face, px;
    TTF_Font *font[MAX_CHAIN];
    bool tried[MAX_CHAIN];
    int height, ascent; /* of the chain's first font */
};

struct tex {
    SDL_Texture *tex;
    char *text;
    uint64_t hash;
    uint32_t len;
    uint16_t inst;
    uint8_t k; /* the chain's font */
    int w, h;
    uint64_t used; /* the frame it was last drawn in */
};

struct width {
    char *text;
    uint64_t hash;
    uint32_t len, style;
    int w;
};

struct fonts {
    SDL_Renderer *ren;
    int base_px;
    char *face_path[N_FACES];
    int face_synth[N_FACES]; /* styles to fake on each face's file */
    char *fallback[MAX_FALLBACK];
    size_t n_fallback;
    int emoji;                   /* index of Noto Color Emoji in fallback, -1: none */
    uint32_t misses[MAX_MISSES]; /* characters fontconfig had no font for */
    size_t n_misses;
    struct inst inst[MAX_INST];
    size_t n_inst;
    struct tex *cache; /* CACHE_CAP slots, open addressing */
    size_t n_cache;
    struct width *widths; /* WIDTH_CAP slots, overwritten on collision */
    uint64_t frame;
    char *scratch; /* a piece, NUL-terminated for SDL_ttf */
    size_t cap_scratch;
};

/* ---- finding fonts */

/* The file fontconfig gives for PATTERN, if its family is FAMILY (NULL: any);
 * *SYNTH loses the styles the file has. malloc'd, or NULL. */
static char *fc_file(const char *pattern, const char *family, int *synth)
{
    FcPattern *p = FcNameParse((const FcChar8 *)pattern);
    if (!p) return NULL;
    FcConfigSubstitute(NULL, p, FcMatchPattern);
    FcDefaultSubstitute(p);
    FcResult res;
    FcPattern *m = FcFontMatch(NULL, p, &res);
    FcPatternDestroy(p);
    if (!m) return NULL;
    char *out = NULL;
    FcChar8 *file = NULL, *fam = NULL;
    if (FcPatternGetString(m, FC_FILE, 0, &file) == FcResultMatch &&
        (!family || (FcPatternGetString(m, FC_FAMILY, 0, &fam) == FcResultMatch &&
                     !strcasecmp((const char *)fam, family)))) {
        out = strdup((const char *)file);
        int weight = 0, slant = 0;
        if (synth && FcPatternGetInteger(m, FC_WEIGHT, 0, &weight) == FcResultMatch &&
            weight >= FC_WEIGHT_BOLD)
            *synth &= ~TTF_STYLE_BOLD;
        if (synth && FcPatternGetInteger(m, FC_SLANT, 0, &slant) == FcResultMatch &&
            slant != FC_SLANT_ROMAN)
            *synth &= ~TTF_STYLE_ITALIC;
    }
    FcPatternDestroy(m);
    return out;
}

/* A font that has character CP, from fontconfig; malloc'd, or NULL. */
static char *fc_file_for(uint32_t cp)
{
    FcPattern *p = FcPatternCreate();
    FcCharSet *cs = FcCharSetCreate();
    if (!p || !cs) goto fail;
    FcCharSetAddChar(cs, cp);
    FcPatternAddCharSet(p, FC_CHARSET, cs);
    FcPatternAddBool(p, FC_SCALABLE, FcTrue);
    FcConfigSubstitute(NULL, p, FcMatchPattern);
    FcDefaultSubstitute(p);
    FcResult res;
    FcPattern *m = FcFontMatch(NULL, p, &res);
    char *out = NULL;
    FcCharSet *has;
    FcChar8 *file;
    if (m && FcPatternGetCharSet(m, FC_CHARSET, 0, &has) == FcResultMatch &&
        FcCharSetHasChar(has, cp) && FcPatternGetString(m, FC_FILE, 0, &file) == FcResultMatch)
        out = strdup((const char *)file);
    if (m) FcPatternDestroy(m);
    FcPatternDestroy(p);
    FcCharSetDestroy(cs);
    return out;
fail:
    if (p) FcPatternDestroy(p);
    if (cs) FcCharSetDestroy(cs);
    return NULL;
}

static bool add_fallback(fonts *f, char *path)
{
    if (!path) return false;
    for (size_t i = 0; i < f->n_fallback; i++)
        if (!strcmp(f->fallback[i], path)) {
            free(path);
            return false;
        }
    if (f->n_fallback == MAX_FALLBACK) {
        free(path);
        return false;
    }
    f->fallback[f->n_fallback++] = path;
    return true;
}

/* ---- the chain */

static void inst_close(struct inst *in)
{
    for (int k = 0; k < MAX_CHAIN; k++)
        if (in->font[k]) TTF_CloseFont(in->font[k]);
    memset(in, 0, sizeof *in);
}

/* TTF_OpenFont, with the file opened close-on-exec (TTF_OpenFont's is not):
 * a file dialog the window starts gets none of its fonts (probe 4, R-15). */
static TTF_Font *open_font(const char *path, int px)
{
    FILE *fp = fopen(path, "rbe");
    if (!fp) {
        SDL_SetError("%s", strerror(errno));
        return NULL;
    }
    SDL_RWops *rw = SDL_RWFromFP(fp, SDL_TRUE);
    if (!rw) {
        fclose(fp);
        return NULL;
    }
    return TTF_OpenFontRW(rw, 1, px); /* 1: closes RW, and so FP, even when it fails */
}

/* Font K of instance IN's chain, opened on first use; NULL if it cannot be. */
static TTF_Font *chain_font(fonts *f, struct inst *in, size_t k)
{
    if (k >= 1 + f->n_fallback) return NULL;
    if (!in->tried[k]) {
        in->tried[k] = true;
        const char *path = k == 0 ? f->face_path[in->face] : f->fallback[k - 1];
        in->font[k] = open_font(path, in->px);
        if (in->font[k] && k == 0 && f->face_synth[in->face])
            TTF_SetFontStyle(in->font[k], f->face_synth[in->face]);
    }
    return in->font[k];
}

static int style_face(uint32_t style)
{
    bool bold = (style & MDOC_BOLD) || MDOC_HEADING(style);
    if (style & (MDOC_CODE | MDOC_CODE_BLOCK)) return bold ? FACE_MONO_BOLD : FACE_MONO;
    bool italic = style & MDOC_ITALIC;
    return bold && italic ? FACE_BOLD_ITALIC : bold ? FACE_BOLD : italic ? FACE_ITALIC : FACE_SANS;
}

static int style_px(const fonts *f, uint32_t style)
{
    static const float heading[7] = {1.0f, 1.6f, 1.35f, 1.15f, 1.05f, 1.0f, 1.0f};
    float s = heading[MDOC_HEADING(style)];
    if (style & FONT_SMALL) s *= 0.85f;
    if (style & (MDOC_CODE | MDOC_CODE_BLOCK)) s *= 0.93f; /* mono looks larger */
    int px = (int)(f->base_px * s + 0.5f);
    return px < 6 ? 6 : px;
}

/* The instance for STYLE (index), opened on first use. */
static int style_inst(fonts *f, uint32_t style)
{
    int face = style_face(style), px = style_px(f, style);
    for (size_t i = 0; i < f->n_inst; i++)
        if (f->inst[i].face == face && f->inst[i].px == px) return (int)i;
    if (f->n_inst == MAX_INST) { /* sizes changed too often: start over */
        for (size_t i = 0; i < f->n_inst; i++)
            inst_close(&f->inst[i]);
        f->n_inst = 0;
    }
    struct inst *in = &f->inst[f->n_inst];
    in->face = face;
    in->px = px;
    TTF_Font *first = chain_font(f, in, 0);
    if (!first) { /* the face's file is gone: the bundled font (last resort) */
        for (size_t k = 1; k <= f->n_fallback && !first; k++)
            first = chain_font(f, in, k);
    }
    in->height = first ? TTF_FontHeight(first) : px;
    in->ascent = first ? TTF_FontAscent(first) : px;
    return (int)f->n_inst++;
}

/* Characters that belong to the cluster before them, whatever font has them. */
static bool is_joiner(uint32_t c)
{
    return c == 0x200D || (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0x0300 && c <= 0x036F) ||
           (c >= 0x1F3FB && c <= 0x1F3FF) || (c >= 0xE0020 && c <= 0xE007F);
}

static bool is_emoji(uint32_t c)
{
    return (c >= 0x1F000 && c <= 0x1FAFF) || (c >= 0x2600 && c <= 0x27BF);
}

static uint32_t next_cp(const char *s, size_t len, size_t *at)
{
    const unsigned char *u = (const unsigned char *)s + *at;
    size_t left = len - *at;
    uint32_t c = u[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n > left) n = 1;
    if (n == 2) c = ((c & 0x1F) << 6) | (u[1] & 0x3F);
    if (n == 3) c = ((c & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    if (n == 4)
        c = ((c & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    *at += n;
    return c;
}

/* Which font of IN's chain draws CP. */
static size_t pick(fonts *f, struct inst *in, uint32_t cp)
{
    if (cp < 0x80 || cp == 0xFFFD) return 0;
    if (is_emoji(cp) && f->emoji >= 0) { /* colour emoji before DejaVu's outlines */
        TTF_Font *e = chain_font(f, in, (size_t)f->emoji + 1);
        if (e && TTF_GlyphIsProvided32(e, cp)) return (size_t)f->emoji + 1;
    }
    for (size_t k = 0; k <= f->n_fallback; k++) {
        TTF_Font *ft = chain_font(f, in, k);
        if (ft && TTF_GlyphIsProvided32(ft, cp)) return k;
    }
    for (size_t i = 0; i < f->n_misses; i++)
        if (f->misses[i] == cp) return 0;
    if (add_fallback(f, fc_file_for(cp))) {
        TTF_Font *ft = chain_font(f, in, f->n_fallback);
        if (ft && TTF_GlyphIsProvided32(ft, cp)) return f->n_fallback;
    }
    if (f->n_misses < MAX_MISSES) f->misses[f->n_misses++] = cp;
    return 0; /* no font has it: the first font's missing-glyph box */
}

/* The script (ISO 15924) and direction of a piece, from its first letter
 * that says. */
static void piece_script(const char *s, size_t len, const char **script, int *dir)
{
    *script = "Latn";
    *dir = TTF_DIRECTION_LTR;
    for (size_t at = 0; at < len;) {
        uint32_t c = next_cp(s, len, &at);
        if ((c >= 0x0590 && c <= 0x05FF) || (c >= 0xFB1D && c <= 0xFB4F)) {
            *script = "Hebr";
            *dir = TTF_DIRECTION_RTL;
            return;
        }
        if ((c >= 0x0600 && c <= 0x08FF) || (c >= 0xFB50 && c <= 0xFDFF) ||
            (c >= 0xFE70 && c <= 0xFEFF)) {
            *script = "Arab";
            *dir = TTF_DIRECTION_RTL;
            return;
        }
        if (c >= 0x0400 && c <= 0x052F) {
            *script = "Cyrl";
            return;
        }
        if (c >= 0x0370 && c <= 0x03FF) {
            *script = "Grek";
            return;
        }
        if ((c >= 0x3040 && c <= 0x30FF)) {
            *script = "Kana";
            return;
        }
        if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF)) {
            *script = "Hani";
            return;
        }
        if (c >= 0xAC00 && c <= 0xD7AF) {
            *script = "Hang";
            return;
        }
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return;
    }
}

/* the most code points glued to one base (marks, a ZWJ sequence) in a piece */
#define MAX_MARKS 30

/* The next piece of TEXT from *AT drawn by one font: its end, and the font. */
static size_t next_piece(fonts *f, struct inst *in, const char *text, size_t len, size_t *at,
                         size_t *k)
{
    size_t start = *at;
    *k = pick(f, in, next_cp(text, len, at));
    /* HarfBuzz shapes a run of combining marks or a ZWJ chain in time that
     * grows with its square (40,000 accents on one letter: 11 s): a piece
     * ends after MAX_MARKS code points glued to one base, as Unicode's
     * stream-safe format breaks such runs */
    int glued = 0;
    bool after_zwj = false;
    while (*at < len) {
        size_t peek = *at;
        uint32_t c = next_cp(text, len, &peek);
        if (!is_joiner(c) && pick(f, in, c) != *k) break;
        bool glue =
            after_zwj || c == 0x200D || utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
        glued = glue ? glued + 1 : 0;
        after_zwj = c == 0x200D;
        if (glued > MAX_MARKS) break;
        *at = peek;
    }
    return start;
}

/* Sets the piece's shaping and returns it NUL-terminated (in f->scratch). */
static const char *prepare(fonts *f, TTF_Font *ft, const char *s, size_t n)
{
    if (n + 1 > f->cap_scratch) {
        size_t cap = (n + 1) * 2;
        char *p = realloc(f->scratch, cap);
        if (!p) return NULL;
        f->scratch = p;
        f->cap_scratch = cap;
    }
    memcpy(f->scratch, s, n);
    f->scratch[n] = 0;
    const char *script;
    int dir;
    piece_script(s, n, &script, &dir);
    TTF_SetFontDirection(ft, dir);
    TTF_SetFontScriptName(ft, script);
    return f->scratch;
}

/* A colour emoji font's bitmaps come at one size (109 px for Noto): drawn
 * scaled to the line. */
static float piece_scale(const struct inst *in, TTF_Font *ft)
{
    int h = TTF_FontHeight(ft);
    return h > in->height * 13 / 10 ? (float)in->height / (float)h : 1.0f;
}

/* How far a slanted piece's ink reaches past its pen positions: left of its
 * first glyph's origin, right of its last glyph's advance. SDL_ttf's sizes and
 * surfaces take the ink's box, so an italic word measured that way was set
 * with a gap on either side ("comes in  *pieces*"); the layout wants the
 * advances. Upright faces have no overhang worth the lookups. */
static void overhang(const struct inst *in, TTF_Font *ft, const char *s, size_t n, int *left,
                     int *right)
{
    *left = *right = 0;
    if (in->face != FACE_ITALIC && in->face != FACE_BOLD_ITALIC) return;
    utf8proc_int32_t first = -1, last = -1, c;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) break;
        if (first < 0) first = c;
        last = c;
        i += (size_t)k;
    }
    int minx, maxx, miny, maxy, adv;
    if (first >= 0 && !TTF_GlyphMetrics32(ft, (Uint32)first, &minx, &maxx, &miny, &maxy, &adv) &&
        minx < 0)
        *left = -minx;
    if (last >= 0 && !TTF_GlyphMetrics32(ft, (Uint32)last, &minx, &maxx, &miny, &maxy, &adv) &&
        maxx > adv)
        *right = maxx - adv;
}

static int piece_width(fonts *f, struct inst *in, size_t k, const char *s, size_t n)
{
    TTF_Font *ft = chain_font(f, in, k);
    const char *z = ft ? prepare(f, ft, s, n) : NULL;
    int w = 0, h = 0, left, right;
    if (!z || TTF_SizeUTF8(ft, z, &w, &h)) return 0;
    overhang(in, ft, s, n, &left, &right);
    if (w > left + right) w -= left + right;
    return (int)(w * piece_scale(in, ft) + 0.5f);
}

static uint64_t hash_bytes(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* ---- measuring */

int fonts_width(fonts *f, uint32_t style, const char *text, size_t len)
{
    style = MDOC_FONT_BITS(style) & ~(uint32_t)(MDOC_THINK | MDOC_LINK | MDOC_STRIKE);
    uint64_t h = hash_bytes(text, len, 0xcbf29ce484222325ull ^ style);
    struct width *slot = &f->widths[h & (WIDTH_CAP - 1)];
    if (slot->text && slot->hash == h && slot->len == len && slot->style == style &&
        !memcmp(slot->text, text, len))
        return slot->w;
    struct inst *in = &f->inst[style_inst(f, style)];
    int w = 0;
    for (size_t at = 0; at < len;) {
        size_t k, start = next_piece(f, in, text, len, &at, &k);
        w += piece_width(f, in, k, text + start, at - start);
    }
    char *copy = malloc(len + 1);
    if (copy) { /* else simply not cached */
        memcpy(copy, text, len);
        free(slot->text);
        *slot =
            (struct width){.text = copy, .hash = h, .len = (uint32_t)len, .style = style, .w = w};
    }
    return w;
}

int fonts_line_height(fonts *f, uint32_t style)
{
    return f->inst[style_inst(f, style)].height;
}

int fonts_width_cb(void *user, uint32_t style, const char *text, size_t len)
{
    return fonts_width(user, style, text, len);
}

int fonts_line_height_cb(void *user, uint32_t style)
{
    return fonts_line_height(user, style);
}

/* ---- drawing */

static struct tex *cache_get(fonts *f, int inst, size_t k, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n, 0xcbf29ce484222325ull ^ ((uint64_t)inst << 8 | k));
    size_t i = h & (CACHE_CAP - 1);
    for (; f->cache[i].tex; i = (i + 1) & (CACHE_CAP - 1)) {
        struct tex *t = &f->cache[i];
        if (t->hash == h && t->len == n && t->inst == inst && t->k == k && !memcmp(t->text, s, n)) {
            t->used = f->frame;
            return t;
        }
    }
    if (f->n_cache >= CACHE_CAP / 2) return NULL; /* full until fonts_end_frame */
    struct inst *in = &f->inst[inst];
    TTF_Font *ft = chain_font(f, in, k);
    const char *z = ft ? prepare(f, ft, s, n) : NULL;
    /* white: the colour is a texture modulation, so one texture serves all */
    SDL_Surface *surf =
        z && *z ? TTF_RenderUTF8_Blended(ft, z, (SDL_Color){255, 255, 255, 255}) : NULL;
    if (!surf) return NULL;
    SDL_Texture *tex = SDL_CreateTextureFromSurface(f->ren, surf);
    char *copy = malloc(n);
    if (!tex || !copy) {
        if (tex) SDL_DestroyTexture(tex);
        free(copy);
        SDL_FreeSurface(surf);
        return NULL;
    }
    memcpy(copy, s, n);
    float sc = piece_scale(in, ft);
    f->cache[i] = (struct tex){.tex = tex,
                               .text = copy,
                               .hash = h,
                               .len = (uint32_t)n,
                               .inst = (uint16_t)inst,
                               .k = (uint8_t)k,
                               .w = (int)(surf->w * sc + 0.5f),
                               .h = (int)(surf->h * sc + 0.5f),
                               .used = f->frame};
    SDL_SetTextureBlendMode(tex, SDL_BLENDMODE_BLEND);
    SDL_SetTextureScaleMode(tex, sc < 1.0f ? SDL_ScaleModeLinear : SDL_ScaleModeNearest);
    SDL_FreeSurface(surf);
    f->n_cache++;
    return &f->cache[i];
}

/* Draws one piece at X (its left edge); returns its width. */
static int draw_piece(fonts *f, int inst, size_t k, const char *s, size_t n, int x, int y,
                      SDL_Color c)
{
    struct inst *in = &f->inst[inst];
    struct tex *t = cache_get(f, inst, k, s, n);
    if (!t) return piece_width(f, in, k, s, n);
    TTF_Font *ft = chain_font(f, in, k);
    bool colour = f->emoji >= 0 && k == (size_t)f->emoji + 1;
    SDL_SetTextureColorMod(t->tex, colour ? 255 : c.r, colour ? 255 : c.g, colour ? 255 : c.b);
    SDL_SetTextureAlphaMod(t->tex, c.a);
    /* baselines line up; a scaled piece is centred on the line instead */
    int dy = piece_scale(in, ft) < 1.0f ? (in->height - t->h) / 2 : in->ascent - TTF_FontAscent(ft);
    /* the ink left of the pen (a slanted descender) goes left of X */
    int left, right;
    overhang(in, ft, s, n, &left, &right);
    SDL_Rect dst = {x - left, y + dy, t->w, t->h};
    SDL_RenderCopy(f->ren, t->tex, NULL, &dst);
    return t->w > left + right ? t->w - left - right : t->w;
}

int fonts_draw(fonts *f, uint32_t style, const char *text, size_t len, int x, int y, SDL_Color c)
{
    style = MDOC_FONT_BITS(style) & ~(uint32_t)(MDOC_THINK | MDOC_LINK | MDOC_STRIKE);
    int inst = style_inst(f, style), x0 = x;
    for (size_t at = 0; at < len;) {
        size_t k, start = next_piece(f, &f->inst[inst], text, len, &at, &k);
        x += draw_piece(f, inst, k, text + start, at - start, x, y, c);
    }
    return x - x0;
}

void fonts_draw_rtl(fonts *f, uint32_t style, const char *text, size_t len, int x, int w, int y,
                    SDL_Color c)
{
    style = MDOC_FONT_BITS(style) & ~(uint32_t)(MDOC_THINK | MDOC_LINK | MDOC_STRIKE);
    int inst = style_inst(f, style), right = x + w;
    for (size_t at = 0; at < len;) {
        size_t k, start = next_piece(f, &f->inst[inst], text, len, &at, &k);
        int pw = piece_width(f, &f->inst[inst], k, text + start, at - start);
        right -= pw;
        draw_piece(f, inst, k, text + start, at - start, right, y, c);
    }
}

static void cache_clear(fonts *f, bool all)
{
    struct tex *keep = NULL;
    size_t n_keep = 0;
    if (!all) keep = malloc(f->n_cache * sizeof *keep);
    for (size_t i = 0; i < CACHE_CAP; i++) {
        struct tex *t = &f->cache[i];
        if (!t->tex) continue;
        if (keep && t->used == f->frame) {
            keep[n_keep++] = *t;
        } else {
            SDL_DestroyTexture(t->tex);
            free(t->text);
        }
        memset(t, 0, sizeof *t);
    }
    f->n_cache = 0;
    for (size_t j = 0; j < n_keep; j++) { /* back into the table */
        size_t i = keep[j].hash & (CACHE_CAP - 1);
        while (f->cache[i].tex)
            i = (i + 1) & (CACHE_CAP - 1);
        f->cache[i] = keep[j];
        f->n_cache++;
    }
    free(keep);
}

void fonts_end_frame(fonts *f)
{
    if (f->n_cache > CACHE_KEEP) cache_clear(f, false);
    f->frame++;
}

/* ---- life */

void fonts_set_size(fonts *f, int base_px)
{
    cache_clear(f, true);
    for (size_t i = 0; i < WIDTH_CAP; i++) {
        free(f->widths[i].text);
        f->widths[i] = (struct width){0};
    }
    for (size_t i = 0; i < f->n_inst; i++)
        inst_close(&f->inst[i]);
    f->n_inst = 0;
    f->base_px = base_px;
}

int fonts_create(SDL_Renderer *ren, int base_px, fonts **out, struct vkllm_error *err)
{
    *out = NULL;
    if (!TTF_WasInit() && TTF_Init())
        return vkllm_fail(err, VKLLM_E_IO, "SDL_ttf: %s", TTF_GetError());
    fonts *f = calloc(1, sizeof *f);
    if (f) f->cache = calloc(CACHE_CAP, sizeof *f->cache);
    if (f) f->widths = calloc(WIDTH_CAP, sizeof *f->widths);
    if (!f || !f->cache || !f->widths) {
        fonts_destroy(f);
        return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory for fonts");
    }
    f->ren = ren;
    f->base_px = base_px;
    f->emoji = -1;
    const char *bundled = VKLLM_FONT_DIR "/DejaVuSans.ttf";
    bool fc = FcInit();
    for (int i = 0; i < N_FACES; i++) {
        f->face_synth[i] = faces[i].synth;
        f->face_path[i] = fc ? fc_file(faces[i].pattern, NULL, &f->face_synth[i]) : NULL;
        if (!f->face_path[i]) { /* no fontconfig, or nothing like it */
            f->face_path[i] = strdup(bundled);
            f->face_synth[i] = faces[i].synth;
        }
    }
    if (fc && add_fallback(f, fc_file("Noto Color Emoji", "Noto Color Emoji", NULL)))
        f->emoji = (int)f->n_fallback - 1;
    add_fallback(f, strdup(bundled));
    /* the bundled font must open: it is what every chain ends with */
    TTF_Font *probe = open_font(bundled, base_px);
    if (!probe) {
        int rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", bundled, TTF_GetError());
        fonts_destroy(f);
        return rc;
    }
    TTF_CloseFont(probe);
    *out = f;
    return VKLLM_OK;
}

void fonts_destroy(fonts *f)
{
    if (!f) return;
    if (f->cache) cache_clear(f, true);
    for (size_t i = 0; f->widths && i < WIDTH_CAP; i++)
        free(f->widths[i].text);
    for (size_t i = 0; i < f->n_inst; i++)
        inst_close(&f->inst[i]);
    for (int i = 0; i < N_FACES; i++)
        free(f->face_path[i]);
    for (size_t i = 0; i < f->n_fallback; i++)
        free(f->fallback[i]);
    free(f->cache);
    free(f->widths);
    free(f->scratch);
    free(f);
    TTF_Quit();
    FcFini();
}
