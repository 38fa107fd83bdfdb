/* screenshot.c: the renderer's pixels as a PNG (libpng), for --script's
 * screenshot command. Written to a temporary file and renamed, so a PNG at
 * PATH is always whole. */
#include "app.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(px);
        return vkllm_fail(err, VKLLM_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    int rc = VKLLM_OK;
    if (!png || !info || !rows) {
        rc = vkllm_fail(err, VKLLM_E_NOMEM, "screenshot: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = vkllm_fail(err, VKLLM_E_IO, "%s: libpng could not write it", path);
        goto done;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGBA,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < h; y++)
        rows[y] = px + (size_t)y * w * 4;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
done:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(rows);
    free(px);
    if (fclose(f) && !rc) rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
    if (!rc && rename(tmp, path)) rc = vkllm_fail(err, VKLLM_E_IO, "%s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}
