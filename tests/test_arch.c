/* test_arch.c: reading each family's hyperparameters and binding its tensors,
 * without a device; and every way a file is refused: an architecture vkllm
 * does not run (gptj, which llama.cpp refuses too; a mixture of experts; an
 * unknown name), a tensor the family does not have, a missing or misshapen
 * one, output.weight in a gemma file. The refusals must be one clear message,
 * and `vkllm run` must print it as one line and fail before uploading.
 *
 * Usage: test_arch VKLLM_BINARY. The models come from gen_model (--arch). */
#include "arch.h"
#include "gguf_copy.h"
#include "testhelp.h"
#include "vkllm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void gen(const char *name, const char *args, char *path, size_t cap)
{
    snprintf(path, cap, "%s/arch-test-%s.gguf", VKLLM_TEST_GEN, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && '%s' -o '%s' %s", VKLLM_TEST_GEN, VKLLM_GEN_MODEL,
             path, args);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
}

/* Copies IN to OUT with general.architecture = ARCH (NULL: unchanged), the
 * key KEY = VALUE (or none), tensor DROP left out and tensor ADD (a copy of
 * DROP's first tensor under that name) added. */
static void rewrite(const char *in, const char *out, const char *arch, const char *key,
                    uint32_t value, const char *drop, const char *add)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    vkllm_gguf_writer *w = NULL;
    REQUIRE_OK(vkllm_gguf_open(in, &g, &err), "%s", err.msg);
    REQUIRE_OK(vkllm_gguf_writer_create(&w, &err), "%s", err.msg);
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        REQUIRE_OK(vkllm_gguf_writer_copy_kv(w, vkllm_gguf_kv_at(g, i)), "copy");
    if (arch) REQUIRE_OK(vkllm_gguf_writer_set_str(w, "general.architecture", arch), "arch");
    if (key) REQUIRE_OK(vkllm_gguf_writer_set_uint32(w, key, value), "key");
    const uint64_t n = vkllm_gguf_tensor_count(g);
    struct gguf_copy *copies = calloc(n + 1, sizeof *copies);
    REQUIRE(copies);
    for (uint64_t i = 0; i < n; i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (drop && !strcmp(name, drop)) continue;
        copies[i] = (struct gguf_copy){g, t, t->size};
        REQUIRE_OK(gguf_copy_add(w, name, t->n_dims, t->ne, &copies[i]), "tensor");
    }
    if (add) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, 0);
        copies[n] = (struct gguf_copy){g, t, t->size};
        REQUIRE_OK(gguf_copy_add(w, add, t->n_dims, t->ne, &copies[n]), "tensor");
    }
    REQUIRE_OK(vkllm_gguf_writer_write(w, out, &err), "%s", err.msg);
    vkllm_gguf_writer_destroy(w);
    free(copies);
    vkllm_gguf_close(g);
}

/* PATH must be refused with status RC and a message containing WANT. */
static void expect_refused(const char *path, int rc, const char *want)
{
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
    struct vkllm_hparams hp;
    int got = vkllm_hparams_read(g, &hp, &err);
    CHECK(got == rc, "%s: status %d, expected %d (%s)", path, got, rc, err.msg);
    CHECK(strstr(err.msg, want) != NULL, "%s: '%s' does not say '%s'", path, err.msg, want);
    CHECK(!strchr(err.msg, '\n'), "%s: the message is not one line", path);
    vkllm_gguf_close(g);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_arch VKLLM_BINARY");
    char path[1024], bad[1024];

    /* every family reads and binds, and says which it is */
    static const struct {
        const char *arch, *args;
        bool layer_norm, tied;
        uint32_t swa_layers;
    } families[] = {
        {"llama", "--arch llama", false, false, 0},
        {"qwen2", "--arch qwen2 --fused-qkv", false, false, 0},
        {"qwen3", "--arch qwen3", false, false, 0},
        {"phi3", "--arch phi3 --n-rot 8", false, false, 0},
        {"gemma", "--arch gemma", false, true, 0},
        {"gemma2", "--arch gemma2 --n-layer 4 --window 16", false, true, 2},
        {"gemma3", "--arch gemma3 --n-layer 7 --window 16", false, false, 6},
        {"falcon", "--arch falcon --n-head-kv 1", true, false, 0},
        {"gptneox", "--arch gptneox --parallel-residual 1", true, false, 0},
        {"stablelm", "--arch stablelm", true, false, 0},
        {"starcoder", "--arch starcoder", true, false, 0},
        {"bloom", "--arch bloom", true, false, 0},
        {"starcoder2", "--arch starcoder2 --fused-qkv", true, false, 0},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        gen(families[i].arch, families[i].args, path, sizeof path);
        struct vkllm_error err = {0};
        vkllm_gguf *g = NULL;
        REQUIRE_OK(vkllm_gguf_open(path, &g, &err), "%s", err.msg);
        struct vkllm_hparams hp;
        int rc = vkllm_hparams_read(g, &hp, &err);
        CHECK(rc == 0, "%s: %s", families[i].arch, err.msg);
        CHECK(!strcmp(hp.arch, families[i].arch), "%s read as %s", families[i].arch, hp.arch);
        CHECK(hp.layer_norm == families[i].layer_norm, "%s: norm kind", families[i].arch);
        CHECK(hp.tied_output == families[i].tied, "%s: tied output", families[i].arch);
        CHECK(hp.n_swa_layers == families[i].swa_layers, "%s: %u sliding-window layers, want %u",
              families[i].arch, hp.n_swa_layers, families[i].swa_layers);
        vkllm_gguf_close(g);
    }

    /* architectures we do not run, and files that do not match their family */
    gen("base", "--arch llama", path, sizeof path);
    snprintf(bad, sizeof bad, "%s/arch-test-bad.gguf", VKLLM_TEST_GEN);
    rewrite(path, bad, "gptj", NULL, 0, NULL, NULL);
    expect_refused(bad, VKLLM_E_UNSUPPORTED, "architecture 'gptj' is not supported");
    rewrite(path, bad, "qwen2moe", NULL, 0, NULL, NULL);
    expect_refused(bad, VKLLM_E_UNSUPPORTED, "mixture of experts");
    rewrite(path, bad, NULL, "llama.expert_count", 4, NULL, NULL);
    expect_refused(bad, VKLLM_E_UNSUPPORTED, "mixture-of-experts");
    rewrite(path, bad, NULL, "llama.block_count", 4097, NULL, NULL);
    expect_refused(bad, VKLLM_E_FORMAT, "4097 blocks is out of range");
    rewrite(path, bad, NULL, NULL, 0, NULL, "blk.0.ssm_in.weight");
    expect_refused(bad, VKLLM_E_UNSUPPORTED, "blk.0.ssm_in.weight is not part of a llama model");
    rewrite(path, bad, NULL, NULL, 0, "blk.1.ffn_up.weight", NULL);
    expect_refused(bad, VKLLM_E_FORMAT, "missing tensor blk.1.ffn_up.weight");
    rewrite(path, bad, NULL, NULL, 0, "blk.0.attn_q.weight", "blk.0.attn_q.weight");
    expect_refused(bad, VKLLM_E_FORMAT, "tensor blk.0.attn_q.weight has shape");
    gen("gemma-untied", "--arch gemma", path, sizeof path);
    rewrite(path, bad, NULL, NULL, 0, NULL, "output.weight");
    expect_refused(bad, VKLLM_E_FORMAT, "always uses token_embd");

    /* the program: one line, a failure, nothing loaded */
    rewrite(path, bad, "gptj", NULL, 0, NULL, NULL);
    char cmd[2048], line[512] = "";
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p hi -n 1 2>&1 >/dev/null; echo \"status $?\"",
             argv[1], bad);
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL, "cannot run %s", cmd);
    int lines = 0;
    bool said = false, failed = false;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "status ", 7)) {
            failed = atoi(line + 7) != 0;
            continue;
        }
        lines++;
        said = said || (strstr(line, "error: ") == line && strstr(line, "'gptj'"));
    }
    pclose(p);
    CHECK(failed, "vkllm run accepted a gptj file");
    CHECK(said && lines == 1, "vkllm run on a gptj file: %d lines, the last '%s'", lines, line);
    return TEST_REPORT();
}
