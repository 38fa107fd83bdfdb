/* cmd_info.c: vkllm info: a GGUF file's metadata and tensor table, and the memory it
 * needs. Needs no GPU: without one the sizes are a typical GPU's. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints LEN bytes of file text made printable (vkllm_printable): a key,
 * value or tensor name must not act on the terminal. */
static void print_text(const char *p, size_t len)
{
    char buf[1024];
    while (len > 0) {
        size_t took = vkllm_printable(buf, sizeof buf, p, len); /* at least a character */
        fputs(buf, stdout);
        p += took;
        len -= took;
    }
}

/* How many of LEN bytes at P to show when at most MAX are: MAX, moved back to
 * the start of a UTF-8 character. */
static size_t shown(const char *p, uint64_t len, size_t max)
{
    if (len <= max) return (size_t)len;
    while (max > 0 && ((unsigned char)p[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* Prints a string in quotes, quotes and backslashes escaped, at most MAX bytes. */
static void print_str(struct vkllm_gguf_str s, size_t max)
{
    size_t n = shown(s.ptr, s.len, max), start = 0;
    putchar('"');
    for (size_t i = 0; i < n; i++)
        if (s.ptr[i] == '"' || s.ptr[i] == '\\') {
            print_text(s.ptr + start, i - start);
            printf("\\%c", s.ptr[i]);
            start = i + 1;
        }
    print_text(s.ptr + start, n - start);
    putchar('"');
    if (n < s.len) fputs("...", stdout);
}

static bool is_float(enum vkllm_gguf_type t)
{
    return t == VKLLM_GGUF_FLOAT32 || t == VKLLM_GGUF_FLOAT64;
}

static void print_kv(const struct vkllm_gguf_kv *kv)
{
    /* a key may be longer than INT_MAX bytes: no "%.*s" */
    char key[4 * 200 + 4];
    size_t n = shown(kv->key.ptr, kv->key.len, 200);
    vkllm_printable(key, sizeof key, kv->key.ptr, n);
    if (n < kv->key.len) strcat(key, "...");
    printf("  %-44s %-8s ", key, vkllm_gguf_type_name(kv->type));
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

/* Whether G's general.type is "adapter" (a LoRA adapter, not a model). */
static bool is_adapter(const vkllm_gguf *g)
{
    struct vkllm_gguf_str t;
    return vkllm_gguf_get_str(g, "general.type", &t, NULL) == VKLLM_OK && t.len == 7 &&
           !memcmp(t.ptr, "adapter", 7);
}

/* Why vkllm would refuse the adapter G with any model, as a broken model
 * file gets "model: vkllm cannot run this file" (run --lora checks the rest
 * against the model). */
static void print_adapter_refusal(const vkllm_gguf *g)
{
    struct vkllm_error err = {0};
    if (!vkllm_adapter_check(NULL, g, &err)) return;
    fputs("\nadapter: vkllm cannot use this file: ", stdout);
    print_text(err.msg, strlen(err.msg));
    putchar('\n');
}

/* A LoRA adapter's rank, alpha and the matrices it touches, as its file
 * says (vkllm run --lora checks it against a model). */
static void print_adapter(const vkllm_gguf *g)
{
    struct vkllm_gguf_str arch = {"?", 1}, type = {"?", 1};
    vkllm_gguf_get_str(g, "general.architecture", &arch, NULL);
    vkllm_gguf_get_str(g, "adapter.type", &type, NULL);
    double alpha = 0;
    const bool has_alpha = vkllm_gguf_get_float(g, "adapter.lora.alpha", &alpha, NULL) == 0;
    fputs("\nadapter: ", stdout);
    print_text(type.ptr, type.len);
    fputs(" for ", stdout);
    print_text(arch.ptr, arch.len);
    if (has_alpha)
        printf(", alpha %g\n", alpha);
    else
        printf(", no alpha (the scale applies as it is)\n");
    uint32_t n = 0, rmin = 0, rmax = 0;
    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *a = vkllm_gguf_tensor_at(g, i);
        if (a->name.len < 8 || memcmp(a->name.ptr + a->name.len - 7, ".lora_a", 7)) continue;
        char bname[80], name[4 * 64 + 1];
        snprintf(bname, sizeof bname, "%.*s.lora_b", (int)(a->name.len - 7), a->name.ptr);
        const struct vkllm_gguf_tensor *b = vkllm_gguf_find_tensor(g, bname);
        vkllm_printable(name, sizeof name, a->name.ptr, a->name.len - 7);
        if (!b) {
            printf("  %-32s no lora_b\n", name);
            continue;
        }
        const uint32_t rank = (uint32_t)b->ne[0];
        if (!n || rank < rmin) rmin = rank;
        if (rank > rmax) rmax = rank;
        n++;
        const struct vkllm_type_info *ta = vkllm_type_info(a->type), *tb = vkllm_type_info(b->type);
        printf("  %-32s rank %-4u A %" PRIu64 " x %" PRIu64 " %s, B %" PRIu64 " x %" PRIu64 " %s\n",
               name, rank, a->ne[0], a->ne[1], ta ? ta->name : "?", b->ne[0], b->ne[1],
               tb ? tb->name : "?");
    }
    if (!n) {
        printf("  no matrices\n");
        return;
    }
    printf("  %u matrices, rank %u", n, rmax);
    if (rmin != rmax) printf(" (%u at least)", rmin);
    if (has_alpha && alpha != 0 && rmin == rmax)
        printf("; at scale 1 the side path is multiplied by alpha / rank = %g", alpha / rmax);
    putchar('\n');
}

/* What the model and a session of SP take, and whether the device has it. */
static int print_memory(const vkllm_gguf *g, const char *device,
                        const struct vkllm_session_params *sp)
{
    struct vkllm_error err = {0};
    struct vkllm_hparams hp;
    if (vkllm_hparams_read(g, &hp, &err)) return 0; /* print_model said why */
    /* the device's limits and free memory where there is one; else the sizes
     * for a typical GPU */
    vkllm_context *ctx = NULL;
    struct vkllm_context_params cp = {.device = device};
    int rc = vkllm_context_create(&cp, &ctx, &err);
    /* no Vulkan at all is fine; a device asked for and not found is not */
    if (rc && (rc == VKLLM_E_INVALID || device || getenv("VKLLM_DEVICE")))
        return cli_error("%s", err.msg);
    char no_device[600] = "";
    if (rc) snprintf(no_device, sizeof no_device, "%s", err.msg);
    cli_context_notes(ctx);
    struct vkllm_memory_needs n;
    if (vkllm_memory_needs(g, ctx, sp, &n, &err)) {
        fputs("\nmemory: ", stdout);
        print_text(err.msg, strlen(err.msg));
        putchar('\n');
        rc = cli_validation_status(ctx, 0);
        vkllm_context_destroy(ctx);
        return rc;
    }
    const char *on = ctx ? vkllm_context_device(ctx)->name : "a typical GPU (no Vulkan device)";
    printf("\nmemory: a context of %u tokens, batches of %u, on ", n.n_ctx, n.n_batch);
    print_text(on, strlen(on));
    putchar('\n');
#define ROW(name, bytes, note)                                                                     \
    printf("  %-14s %12" PRIu64 " bytes %10.2f MiB%s\n", name, (uint64_t)(bytes),                  \
           (bytes) / 1048576.0, note)
    ROW("weights", n.weights, "");
    for (uint32_t t = 0; t < VKLLM_TYPE_COUNT; t++)
        if (n.weights_type[t]) {
            char name[24];
            snprintf(name, sizeof name, "  %s", vkllm_type_info(t)->name);
            ROW(name, n.weights_type[t], "");
        }
    char kv_note[48];
    snprintf(kv_note, sizeof kv_note, "  (K %s, V %s)", vkllm_cache_type_name(sp->type_k),
             vkllm_cache_type_name(sp->type_v));
    ROW("KV cache", n.kv_cache, kv_note);
    ROW("activations", n.activations, "");
    ROW("host buffers", n.session_host, "  (the session's tokens and logits)");
    ROW("staging", n.staging, "  (while loading)");
    ROW("total", n.total, "  (at most at once: staging goes before the session comes)");
#undef ROW
    if (!ctx) {
        fputs("  device: none (", stdout);
        print_text(no_device, strlen(no_device));
        fputs(")\n", stdout);
        return 0;
    }
    struct vkllm_memory_budget b;
    vkllm_context_memory(ctx, &b);
    printf("  device: %.2f MiB, %.2f MiB free (%s)\n", b.size / 1048576.0,
           (b.budget > b.usage ? b.budget - b.usage : 0) / 1048576.0,
           b.reported ? "VK_EXT_memory_budget" : "heap size; the driver reports no budget");
    rc = vkllm_memory_check(g, ctx, sp, &err);
    fputs(rc ? "  fits: no: " : "  fits: yes", stdout);
    if (rc) print_text(err.msg, strlen(err.msg));
    putchar('\n');
    rc = cli_validation_status(ctx, 0);
    vkllm_context_destroy(ctx);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL, *device = NULL;
    struct vkllm_session_params sp = {0};
    bool options_done = false; /* after "--", a file even if it starts with '-' */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        bool is_k;
        if (!options_done && !strcmp(a, "--")) {
            options_done = true;
        } else if (options_done || a[0] != '-' || !a[1]) {
            if (path) return cli_error("vkllm info takes one model; '%s' is a second", a);
            path = a;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("usage: vkllm info [-m] MODEL.gguf [-c N] [-ctk f16|q8_0] [-ctv f16|q8_0] "
                  "[--device N|NAME]\n\n"
                  "The file's metadata and tensors, what vkllm derives, and the memory a\n"
                  "session of N tokens (-c, default: the model's, at most 4096) takes with\n"
                  "the weights, against what the device has free; -ctk and -ctv set the KV\n"
                  "cache's types for K and V (default f16). For a LoRA adapter\n"
                  "file: its rank, alpha and the matrices it touches. After --, an argument\n"
                  "is the model even if it starts with '-'.\n",
                  stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(path = cli_value(argc, argv, &i))) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            const char *val = cli_value(argc, argv, &i);
            if (!val || !cli_int(a, val, 1, 1 << 24, &v)) return 1;
            sp.n_ctx = (uint32_t)v;
        } else if (cli_is_cache_flag(a, &is_k)) {
            const char *val = cli_value(argc, argv, &i);
            if (!val || !cli_cache_type(a, val, is_k ? &sp.type_k : &sp.type_v)) return 1;
        } else if (!strcmp(a, "--device")) {
            if (!(device = cli_value(argc, argv, &i))) return 1;
        } else {
            return cli_error("unknown option '%s' for vkllm info", a);
        }
    }
    if (!path) {
        fputs("usage: vkllm info [-m] MODEL.gguf [-c N] [-ctk f16|q8_0] [-ctv f16|q8_0] [--device "
              "N|NAME]\n",
              stderr);
        return 1;
    }
    struct vkllm_error err = {0};
    vkllm_gguf *g = NULL;
    if (vkllm_gguf_open(path, &g, &err)) return cli_error("%s", err.msg);

    print_text(path, strlen(path));
    printf(": GGUF v%u, %" PRIu64 " bytes, %" PRIu64 " metadata keys, %" PRIu64
           " tensors, alignment %" PRIu64 "\n",
           vkllm_gguf_version(g), vkllm_gguf_file_size(g), vkllm_gguf_kv_count(g),
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
        char name[4 * 64 + 1]; /* the parser refuses names of 64 bytes or more */
        vkllm_printable(name, sizeof name, t->name.ptr, t->name.len);
        printf("  %-32s %-7s %-24s %12" PRIu64 " %12" PRIu64 "\n", name, ti ? ti->name : "?", shape,
               t->size, t->offset);
        total += t->size;
    }
    printf("  %" PRIu64 " tensors, %.2f MiB\n", vkllm_gguf_tensor_count(g), total / 1048576.0);
    if (is_adapter(g)) {
        print_adapter(g);
        print_adapter_refusal(g);
        vkllm_gguf_close(g);
        return 0;
    }
    print_model(g);
    int rc = print_memory(g, device, &sp);
    vkllm_gguf_close(g);
    return rc;
}
