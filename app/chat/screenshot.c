/* screenshot.c: the renderer's pixels as a PNG (libpng), for --script's
 * screenshot command. Encoded in memory and written by vkllm_write_file
 * (temporary file, fsync, rename), so a PNG at PATH is always whole and a
 * long PATH needs no room for a suffix. */
#include "app.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

struct png_buf {
    unsigned char *p;
    size_t n, cap;
    bool oom;
};

static void buf_write(png_structp png, png_bytep data, png_size_t len)
{
    struct png_buf *b = png_get_io_ptr(png);
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = (b->n + len) * 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void buf_flush(png_structp png)
{
    (void)png;
}

int screenshot_save(SDL_Renderer *ren, const char *path, struct vkllm_error *err)
{
    int w, h;
    if (SDL_GetRendererOutputSize(ren, &w, &h))
        return vkllm_fail(err, VKLLM_E_IO, "screenshot: %s", SDL_GetError());
    unsigned char *px = malloc((size_t)w * h * 4);
    if (!px) return vkllm_fail(err, VKLLM_E_NOMEM, "screenshot: out of memory");
    /* ABGR8888 is R, G, B, A in memory on little-endian machines: PNG's order */
    if (SDL_RenderReadPixels(ren, NULL, SDL_PIXELFORMAT_RGBA32, px, w * 4)) {
        free(px);
        return vkllm_fail(err, VKLLM_E_IO, "screenshot: %s", SDL_GetError());
    }
    for (size_t i = 3; i < (size_t)w * h * 4; i += 4) /* the window is opaque */
        px[i] = 255;
    /* volatile: changed between setjmp and a longjmp back to it */
    struct png_buf *volatile out = calloc(1, sizeof *out);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    int rc = VKLLM_OK;
    if (!out || !png || !info || !rows) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "screenshot: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: libpng could not encode it", path);
        goto done;
    }
    png_set_write_fn(png, out, buf_write, buf_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGBA,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < h; y++)
        rows[y] = px + (size_t)y * w * 4;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    if (out->oom)
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "screenshot: out of memory");
    else
        rc = vkllm_write_file(path, out->p, out->n, err);
done:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    if (out) free(out->p);
    free(out);
    free(rows);
    free(px);
    return rc;
}
