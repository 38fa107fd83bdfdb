/* cmd_info.c: vkllm info: a GGUF file's metadata and tensor table. Needs no GPU. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Prints a string with control characters escaped, at most MAX bytes. */
static void print_str(struct vkllm_gguf_str s, uint64_t max)
{
    putchar('"');
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (s.len > max) fputs("...", stdout);
}

static bool is_float(enum vkllm_gguf_type t)
{
    return t == VKLLM_GGUF_FLOAT32 || t == VKLLM_GGUF_FLOAT64;
}

static void print_kv(const struct vkllm_gguf_kv *kv)
{
    printf("  %-44.*s %-8s ", (int)kv->key.len, kv->key.ptr, vkllm_gguf_type_name(kv->type));
    if (kv->type == VKLLM_GGUF_STRING) {
        /* a string value is its uint64 length followed by the bytes */
        struct vkllm_gguf_str s = {(const char *)kv->data + 8, 0};
        memcpy(&s.len, kv->data, 8);
        print_str(s, 120);
    } else if (kv->type == VKLLM_GGUF_ARRAY) {
        printf("[%s x %" PRIu64 "]", vkllm_gguf_type_name(kv->arr_type), kv->arr_len);
        uint64_t show = kv->arr_len < 6 ? kv->arr_len : 6;
        for (uint64_t i = 0; i < show && kv->arr_type != VKLLM_GGUF_ARRAY; i++) {
            fputs(i ? ", " : " ", stdout);
            if (kv->arr_type == VKLLM_GGUF_STRING)
                print_str(vkllm_gguf_arr_str(kv, i), 40);
            else if (is_float(kv->arr_type))
                printf("%g", vkllm_gguf_arr_float(kv, i));
            else
                printf("%" PRId64, vkllm_gguf_arr_int(kv, i));
        }
        if (show < kv->arr_len) fputs(", ...", stdout);
    } else if (is_float(kv->type)) {
        printf("%g", vkllm_gguf_kv_float(kv));
    } else if (kv->type == VKLLM_GGUF_BOOL) {
        fputs(vkllm_gguf_kv_int(kv) ? "true" : "false", stdout);
    } else if (kv->type == VKLLM_GGUF_UINT64) {
        uint64_t v;
        memcpy(&v, kv->data, 8);
        printf("%" PRIu64, v);
    } else {
        printf("%" PRId64, vkllm_gguf_kv_int(kv));
    }
    putchar('\n');
}

/* The hyperparameters vkllm derives, or why it cannot run the file. */
static void print_model(const vkllm_gguf *g)
{
    struct vkllm_error err = {0};
    struct vkllm_hparams hp;
    if (vkllm_hparams_read(g, &hp, &err)) {
        printf("\nmodel: vkllm cannot run this file: %s\n", err.msg);
        return;
    }
    printf("\nmodel: %s, %u layers, %u wide, %u heads (%u KV) of %u, FFN %u, vocabulary %u, "
           "trained for %u tokens\n",
           hp.arch, hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff,
           hp.n_vocab, hp.n_ctx_train);
    printf("  norm: %s, eps %g%s\n", hp.layer_norm ? "LayerNorm" : "RMSNorm", hp.norm_eps,
           hp.parallel_residual ? "; attention and FFN in parallel" : "");
    if (hp.alibi_max_bias > 0)
        printf("  positions: ALiBi, maximum bias %g\n", hp.alibi_max_bias);
    else if (hp.n_rot)
        printf("  positions: RoPE (%s), %u of %u dimensions, base %g\n",
               hp.rope_neox ? "NeoX" : "pairs", hp.n_rot, hp.head_dim, hp.rope_freq_base);
    else
        printf("  positions: learned\n");
    if (hp.sliding_window)
        printf("  sliding window: %u tokens in %u of %u layers (their RoPE base %g)\n",
               hp.sliding_window, hp.n_swa_layers, hp.n_layer, hp.rope_freq_base_swa);
    if (hp.attn_softcap > 0 || hp.final_softcap > 0)
        printf("  soft-capping: attention %g, logits %g\n", hp.attn_softcap, hp.final_softcap);
    printf("  output: %s\n", hp.tied_output ? "tied to the token embeddings" : "its own matrix");
}

int cmd_info(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs("usage: vkllm info MODEL.gguf\n", argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 1;
    }
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    if (vkllm_gguf_open(argv[1], &g, &err)) return cli_error("%s", err.msg);

    printf("%s: GGUF v%u, %" PRIu64 " bytes, %" PRIu64 " metadata keys, %" PRIu64
           " tensors, alignment %" PRIu64 "\n",
           argv[1], vkllm_gguf_version(g), vkllm_gguf_file_size(g), vkllm_gguf_kv_count(g),
           vkllm_gguf_tensor_count(g), vkllm_gguf_alignment(g));
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        print_kv(vkllm_gguf_kv_at(g, i));

    printf("\ntensors:\n  %-32s %-7s %-24s %12s %12s\n", "name", "type", "shape", "bytes",
           "offset");
    uint64_t total = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        char shape[64];
        int n = 0;
        for (uint32_t d = 0; d < t->n_dims && n >= 0 && n < (int)sizeof shape; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRIu64, d ? " x " : "",
                          t->ne[d]);
        const struct vkllm_type_info *ti = vkllm_type_info(t->type);
        printf("  %-32.*s %-7s %-24s %12" PRIu64 " %12" PRIu64 "\n", (int)t->name.len, t->name.ptr,
               ti ? ti->name : "?", shape, t->size, t->offset);
        total += t->size;
    }
    printf("  %" PRIu64 " tensors, %.2f MiB\n", vkllm_gguf_tensor_count(g), total / 1048576.0);
    print_model(g);
    vkllm_gguf_close(g);
    return 0;
}
