/* font.h: the window's text: fonts found through fontconfig, a fallback chain
 * for characters the first font lacks, and drawn runs cached as textures.
 *
 * A style (markdown.h's MDOC_* bits, plus FONT_SMALL for the UI's own
 * labels) picks a face and a size: code is DejaVu Sans Mono, headings are
 * bold and larger, the rest DejaVu Sans in its four variants. Each face's
 * chain is: its own font, Noto Color Emoji, the bundled DejaVu Sans
 * (third_party/fonts), then fonts that fontconfig finds for characters none of
 * those has (CJK, say), added as they are met. A run is cut where the font
 * changes; each piece is shaped by SDL_ttf (HarfBuzz) with the script and
 * direction of its first strong character.
 *
 *   fonts_create(renderer, 15 * scale, &f, &err);
 *   tl_measure = {.width = fonts_width_cb, .line_height = fonts_line_height_cb, .user = f}
 *   each frame: fonts_draw(f, style, text, len, x, y, colour) ...; fonts_end_frame(f);
 *
 * Only the UI thread calls these. */
#ifndef VKLLM_CHAT_FONT_H
#define VKLLM_CHAT_FONT_H

#include "vkllm.h"

#include <SDL.h>
#include <stddef.h>
#include <stdint.h>

/* A UI label: 85% of the body size (beyond the MDOC_* bits). */
#define FONT_SMALL (1u << 20)

typedef struct fonts fonts;

/* Finds the fonts and opens them for a body text of BASE_PX pixels.
 * VKLLM_E_IO when not even the bundled font opens. */
int fonts_create(SDL_Renderer *ren, int base_px, fonts **out, struct vkllm_error *err);
void fonts_destroy(fonts *f);
/* A new body size (the display's scale changed): every cache is emptied. */
void fonts_set_size(fonts *f, int base_px);

/* Width in pixels of LEN bytes of UTF-8 TEXT in STYLE. */
int fonts_width(fonts *f, uint32_t style, const char *text, size_t len);
/* Height of a line in STYLE. */
int fonts_line_height(fonts *f, uint32_t style);
/* Draws TEXT with its top-left corner at (X, Y); returns the width drawn. */
int fonts_draw(fonts *f, uint32_t style, const char *text, size_t len, int x, int y, SDL_Color c);
/* The same, right to left: the run's pieces placed from its right edge X + W. */
void fonts_draw_rtl(fonts *f, uint32_t style, const char *text, size_t len, int x, int w, int y,
                    SDL_Color c);
/* Frees the textures not drawn recently. Once a frame. */
void fonts_end_frame(fonts *f);

/* tl_measure callbacks (USER: the fonts). */
int fonts_width_cb(void *user, uint32_t style, const char *text, size_t len);
int fonts_line_height_cb(void *user, uint32_t style);

#endif
