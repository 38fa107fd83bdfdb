/* test_model_shrink.c: a model file truncated while vkllm_model_load reads it,
 * as when another program rewrites it (`cp other.gguf model.gguf`) during a
 * load. Regression: the file was memory-mapped, and the load died of SIGBUS
 * at the first weight past the file's new end. Now the load fails with one
 * line saying the file changed, frees what it had uploaded, and the context
 * loads the next model as usual.
 *
 * Both upload paths are covered: F32 rows go straight from the file into the
 * staging memory, Q8_0 blocks through a host buffer (their scales are moved). */
#include "testhelp.h"
#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb"), *t = fopen(to, "wb");
    REQUIRE(f && t, "%s -> %s", from, to);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f));)
        REQUIRE(fwrite(buf, 1, n, t) == n);
    fclose(f);
    REQUIRE(fclose(t) == 0);
}

struct shrink {
    const char *path;
    int calls; /* progress calls so far */
};

/* After the first weight is on the device, cuts the file to half its size. */
static void shrink_after_first(float fraction, void *user)
{
    struct shrink *s = user;
    struct stat st;
    (void)fraction;
    if (s->calls++ == 0) REQUIRE(stat(s->path, &st) == 0 && truncate(s->path, st.st_size / 2) == 0);
}

static void check_shrink(vkllm_context *ctx, const char *model)
{
    const char *path = VKLLM_TEST_GEN "/shrinking.gguf";
    struct vkllm_error err = {0};
    vkllm_model *m = NULL;

    /* the copy loads while it is whole */
    copy_file(model, path);
    REQUIRE_OK(vkllm_model_load(ctx, path, NULL, &m, &err), "%s", err.msg);
    vkllm_model_free(m);

    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    struct shrink s = {.path = path};
    struct vkllm_model_params params = {.progress = shrink_after_first, .user = &s};
    m = (vkllm_model *)&s;
    int rc = vkllm_model_load(ctx, path, &params, &m, &err);
    CHECK(rc == VKLLM_E_IO && !m, "%s: %d '%s'", model, rc, err.msg);
    char want[600];
    snprintf(want, sizeof want,
             "%s: the file changed while being read (it is now %lld bytes; expected %lld)", path,
             (long long)st.st_size / 2, (long long)st.st_size);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s: '%s'", model, err.msg);
    CHECK(strstr(err.msg, "all of it freed"), "%s", err.msg);
    CHECK(s.calls >= 1 && !strchr(err.msg, '\n'));

    /* the context is fine: the original loads */
    REQUIRE_OK(vkllm_model_load(ctx, model, NULL, &m, &err), "%s", err.msg);
    vkllm_model_free(m);
    unlink(path);
}

int main(void)
{
    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    REQUIRE_OK(vkllm_context_create(NULL, &ctx, &err), "%s", err.msg);

    const char *stories = VKLLM_TEST_DATA "/stories260K.gguf";
    check_shrink(ctx, stories);

    const char *q8 = VKLLM_TEST_GEN "/shrink-q8_0.gguf";
    struct vkllm_quantize_params qp = {.type = "Q8_0", .pure = true};
    REQUIRE_OK(vkllm_quantize(stories, q8, &qp, &err), "%s", err.msg);
    check_shrink(ctx, q8);
    unlink(q8);

    vkllm_context_destroy(ctx);
    return TEST_REPORT();
}
