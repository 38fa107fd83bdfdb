/* context.c: vkllm_context, a chosen device with its pipeline registry. */
#include "context.h"

#include "number.h"
#include "quant.h"
#include "vk_fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>

/* Free bytes on the file system holding PATH (or its nearest existing
 * ancestor; a relative PATH is relative to the working directory, as the
 * driver reads it); -1 when none can be asked. */
static long long free_space(const char *path)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return -1;
    for (;;) {
        struct statvfs sv;
        if (!statvfs(p, &sv)) return (long long)sv.f_bavail * (long long)sv.f_frsize;
        if (!strcmp(p, "/") || !strcmp(p, ".")) return -1;
        char *slash = strrchr(p, '/');
        if (!slash)
            strcpy(p, "."); /* "full": its directory is the working one */
        else
            slash[slash == p] = 0; /* "/full" asks "/" next */
    }
}

/* Mesa's env_var_as_boolean: only these mean true; "false", "0" or anything
 * else leave its default (the cache on). */
static bool mesa_true(const char *v)
{
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "y") ||
                 !strcasecmp(v, "yes"));
}

/* Mesa's drivers keep a shader cache on disk in a file they map: on a full
 * file system a page of it faults with SIGBUS (lavapipe, Mesa 22) and the
 * program dies mid-run with no word. The directory is found as Mesa 22 finds
 * it: $MESA_SHADER_CACHE_DIR (else the deprecated $MESA_GLSL_CACHE_DIR),
 * else $XDG_CACHE_HOME/mesa_shader_cache, else ~/.cache/mesa_shader_cache;
 * a relative one is relative to the working directory, and an empty one
 * makes Mesa keep no cache. With less than 32 MiB free there, the cache is
 * turned off for this process, before any driver reads the variable, and
 * NOTE says so (else stays ""). */
static void guard_shader_cache(char *note, size_t cap)
{
    /* the deprecated names count where the new ones are unset */
    const char *off = getenv("MESA_SHADER_CACHE_DISABLE");
    if (!off) off = getenv("MESA_GLSL_CACHE_DISABLE");
    if (mesa_true(off)) return; /* off already ("false" leaves it on) */
    const char *dir = getenv("MESA_SHADER_CACHE_DIR");
    if (!dir) dir = getenv("MESA_GLSL_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char path[4096];
    if (dir)
        snprintf(path, sizeof path, "%s", dir);
    else if (xdg)
        snprintf(path, sizeof path, "%s%s", xdg, *xdg ? "/mesa_shader_cache" : "");
    else if (home && home[0] == '/')
        snprintf(path, sizeof path, "%s/.cache/mesa_shader_cache", home);
    else
        return;
    if (!path[0]) return; /* Mesa cannot make "": no cache */
    const long long left = free_space(path);
    if (left < 0 || left >= (32ll << 20)) return;
    setenv("MESA_SHADER_CACHE_DISABLE", "true", 1);
    char shown[1024];
    vkllm_printable(shown, sizeof shown, path, strlen(path));
    snprintf(note, cap,
             "%s: only %.1f MiB free there: the driver's shader cache is off for this run (shaders "
             "are compiled anew)",
             shown, left / 1048576.0);
}

/* True if the comma-separated LIST names the N characters at WORD. */
static bool listed(const char *list, const char *word, size_t n)
{
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, word, n)) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

static bool forced(const char *force, const char *path)
{
    return listed(force, path, strlen(path));
}

/* The fallbacks VKLLM_FORCE can name, and int-dot, texel-loads and
 * gemm-pairs: the integer-dot matvec, the texel loads and the paired GEMM
 * where the device could take them but would not (a GPU), so that the paths
 * are tested there; coopmat and coopmat-emulate: the cooperative-matrix GEMM,
 * off until it has passed on a device that has one. */
static const char force_known[] =
    "shared-reduce,no-gemm,no-memory-budget,no-tiled-attention,no-split-attention,"
    "no-grouped-attention,no-fuse,int-dot,no-int-dot,texel-loads,no-texel-loads,gemm-pairs,"
    "no-gemm-pairs,coopmat,coopmat-emulate";

/* Refuses a FORCE that names a path force_known does not, before any device
 * is made. */
static int check_force(const char *force, struct vkllm_error *err)
{
    for (const char *p = force; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len && !listed(force_known, p, len))
            return vkllm_fail(err, VKLLM_E_INVALID, "VKLLM_FORCE: unknown path '%.*s' (known: %s)",
                              (int)len, p, force_known);
        p = end ? end + 1 : NULL;
    }
    return VKLLM_OK;
}

/* Picks each kernel path from the device's features and limits; FORCE (a
 * comma-separated list from force_known) takes the fallbacks instead, so that
 * every path can be tested on any device. */
static void choose_paths(struct vkllm_context *ctx, const char *force)
{
    const struct vkllm_device_info *d = &ctx->dev.info;
    const uint32_t sg = d->subgroup_min_size ? d->subgroup_min_size : d->subgroup_size;
    ctx->matvec_subgroup =
        (d->subgroup_ops & VKLLM_SUBGROUP_SHUFFLE) && sg >= 2 && !forced(force, "shared-reduce");
    /* threads per row: one subgroup, so its shuffles see the whole row; 32 when
     * the device does not say (or has subgroups of one) */
    ctx->matvec_tpr = sg >= 2 ? sg : 32;
    if (ctx->matvec_tpr > ctx->wg_size) ctx->matvec_tpr = ctx->wg_size;
    /* matvecs of block formats sum integer products of their quants and
     * Q8_0 activations, one instruction per four, where the device has it in
     * hardware (for Q4_0 and Q8_0 the same sums as their emulated path, bit
     * for bit; the other formats' float path takes float activations), and
     * on a CPU device, where it is emulated but still cheaper than decoding
     * to floats (lavapipe: 1.5x the decode of a 1.1B Q4_K_M file, Q4_0 and
     * Q8_0 alike; docs/PERFORMANCE.md) */
    ctx->matvec_int_dot =
        d->int_dot && !forced(force, "no-int-dot") &&
        (d->int_dot_accelerated || d->type == VKLLM_DEVICE_CPU || forced(force, "int-dot"));
    /* attention: a subgroup per (token, head), counted at the largest size
     * the device may run (extra pairs find no token); its shared arrays
     * assume subgroups of 8 or more */
    const uint32_t sg_max = d->subgroup_max_size > sg ? d->subgroup_max_size : sg;
    ctx->attention_subgroup = ctx->matvec_subgroup && sg >= 8 && sg_max <= ctx->wg_size;
    ctx->attention_per_group = ctx->attention_subgroup ? ctx->wg_size / sg_max : 1;
    /* prompts share each K and V load among a tile of queries; no-tiled-attention
     * gives them the per-(token, head) kernel that decode uses */
    ctx->attention_tiled = !forced(force, "no-tiled-attention");
    /* decode: a query's positions in up to 8 chunks that workgroups take in
     * parallel (attention_decode.comp; on lavapipe 8 and 16 measured alike, 4
     * slower); no-split-attention gives decode the per-(token, head) kernel */
    ctx->attention_splits = forced(force, "no-split-attention") ? 0 : 8;
    /* a split's workgroup takes the query heads that share a KV head, on a
     * CPU device: each K and V load serves them all (on lavapipe the count of
     * loads is the cost); a GPU's registers would not hold their queries and
     * sums. no-grouped-attention gives each workgroup one head */
    ctx->attention_split_heads =
        d->type == VKLLM_DEVICE_CPU && !forced(force, "no-grouped-attention") ? 8 : 1;
    /* a norm's row in one workgroup: on a GPU, 256 threads keep a decode
     * step's few rows from being a long chain of loads on one core; a CPU
     * device runs a workgroup on one thread, where more invocations only add
     * rounds to the reduction (lavapipe: 64 as fast as 32, 256 slower) */
    ctx->norm_wg = d->type == VKLLM_DEVICE_CPU ? 64 : 256;
    ctx->gemm = !forced(force, "no-gemm");
    /* no-fuse: every op its own dispatch, the path fused ones must equal */
    ctx->fuse = !forced(force, "no-fuse");
    /* measured on lavapipe (docs/PERFORMANCE.md): with inputs shuffled, 8 rows
     * per thread beat 16, and 32 tokens amortize the K-quants' decoding;
     * workgroups of two subgroups leave narrow matrices enough of them */
    ctx->gemm_wg = 2 * sg_max < ctx->wg_size ? 2 * sg_max : ctx->wg_size;
    ctx->gemm_tokens = 32;
    ctx->gemm_thread_rows = 8;
    /* lanes 0..7 of each subgroup load a token's 32 inputs and shuffle them
     * to the others (gemm.comp): subgroups of 8 or more */
    const uint32_t sg_min = d->subgroup_min_size ? d->subgroup_min_size : sg;
    ctx->gemm_shuffle = ctx->matvec_subgroup && sg_min >= 8;
    /* on a CPU device, the integer-dot matvec and the shuffled GEMM read a
     * block format's weights and their input as uniform texel buffers:
     * lavapipe turns a storage-buffer load whose address differs between
     * lanes into a loop over the lanes, a texel fetch into 8 loads without
     * branches (docs/PERFORMANCE.md). A GPU keeps the storage buffers, not
     * known to lose there (texel-loads takes the texels on any device,
     * no-texel-loads leaves them) */
    ctx->texel_loads = d->max_texel_buffer_elements && !forced(force, "no-texel-loads") &&
                       (d->type == VKLLM_DEVICE_CPU || forced(force, "texel-loads"));
    /* a CPU device multiplies and adds floats in two instructions (lavapipe
     * fuses none), ints two tokens at a time in one (gemm.comp's PAIRS): Q4_0,
     * Q4_K and Q6_K GEMMs 1.1-1.4x faster there (docs/PERFORMANCE.md). It reads
     * its inputs as texels. A GPU has fused multiply-adds: gemm-pairs tests it */
    /* VK_NV_cooperative_matrix's GEMM only where asked (coopmat): its first
     * GPU run is still to come (issue 5). coopmat-emulate runs the same kernel
     * with its products in plain code, on any device, so that the rest of it
     * is tested. Either takes the block formats' GEMMs from the others. */
    const bool coop_fits = d->max_shared_memory >= 27u << 10; /* its tiles' 27 KiB at most */
    ctx->gemm_coop = !ctx->gemm || !coop_fits                    ? GEMM_COOP_OFF
                     : d->coopmat_nv && forced(force, "coopmat") ? GEMM_COOP_NV
                     : forced(force, "coopmat-emulate")          ? GEMM_COOP_EMULATED
                                                                 : GEMM_COOP_OFF;
    ctx->gemm_pairs = ctx->texel_loads && ctx->gemm_shuffle && !ctx->gemm_coop &&
                      !forced(force, "no-gemm-pairs") &&
                      (d->type == VKLLM_DEVICE_CPU || forced(force, "gemm-pairs"));
    char paired[64] = "";
    for (uint32_t i = 0; ctx->gemm_pairs && i < quant_format_count; i++)
        if (quant_formats[i].pairs)
            snprintf(paired + strlen(paired), sizeof paired - strlen(paired), ", %s",
                     quant_formats[i].name);
    char gemm[160] = "matvec";
    if (ctx->gemm)
        snprintf(gemm, sizeof gemm, "GEMM, %u tokens x %u rows per workgroup%s%s%s",
                 ctx->gemm_tokens, ctx->gemm_wg * ctx->gemm_thread_rows,
                 ctx->texel_loads && ctx->gemm_shuffle ? ", texel loads" : "", paired,
                 *paired ? " in token pairs" : "");
    snprintf(ctx->paths, sizeof ctx->paths,
             "matvec: %u threads per row, %s reduction; attention: %s per head%s%s; prompts: %s; "
             "int8 dot: %s; cooperative matrix: %s",
             ctx->matvec_tpr, ctx->matvec_subgroup ? "subgroup" : "shared-memory",
             ctx->attention_subgroup ? "a subgroup" : "a workgroup",
             ctx->attention_tiled ? ", prompts in tiles of queries" : "",
             !ctx->attention_splits ? ""
             : ctx->attention_split_heads > 1
                 ? ", decode split over positions, a KV head's queries together"
                 : ", decode split over positions",
             gemm,
             ctx->matvec_int_dot && ctx->matvec_subgroup && ctx->texel_loads
                 ? "block-format matvecs, texel loads"
             : ctx->matvec_int_dot ? "block-format matvecs"
             : d->int_dot          ? "available, unused"
                                   : "no",
             ctx->gemm_coop == GEMM_COOP_NV         ? "NV, block-format GEMMs"
             : ctx->gemm_coop == GEMM_COOP_EMULATED ? "emulated, block-format GEMMs"
             : d->coopmat_nv                        ? "NV, unused (VKLLM_FORCE=coopmat)"
             : d->coopmat                           ? "KHR, unused"
                                                    : "no");
}

int vkllm_context_create(const struct vkllm_context_params *params, vkllm_context **out,
                         struct vkllm_error *err)
{
    *out = NULL;
    const char *force = params && params->force ? params->force : getenv("VKLLM_FORCE");
    int rc = vk_fault_init(err);
    if (!rc) rc = check_force(force, err);
    /* strict: VKLLM_VALIDATE=false turned validation on (probe 7, M1) */
    bool validation = false, profile = false;
    if (!rc) rc = number_switch("VKLLM_VALIDATE", getenv("VKLLM_VALIDATE"), &validation, err);
    if (!rc) rc = number_switch("VKLLM_PROFILE", getenv("VKLLM_PROFILE"), &profile, err);
    if (rc) return rc;
    struct vkllm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return vkllm_fail(err, VKLLM_E_NOMEM, "out of host memory");
    guard_shader_cache(ctx->disk_note, sizeof ctx->disk_note);
    validation |= params && params->validation;
    /* no-memory-budget: the heap's size and vkllm's own count, as on a device
     * without VK_EXT_memory_budget (lavapipe), where the driver has it */
    rc = vk_device_create(&ctx->dev, params ? params->device : NULL, validation,
                          forced(force, "no-memory-budget"), forced(force, "coopmat"), err);
    if (!rc) rc = vk_pipelines_init(&ctx->pipes, &ctx->dev, err);
    if (!rc) rc = tune_table_load(&ctx->tune, &ctx->pipes.on_disk, err);
    if (rc) {
        vkllm_context_destroy(ctx);
        return rc;
    }
    ctx->dev.profile = profile || (params && params->profile);
    /* 64 threads: two warps, one AMD wave, eight lavapipe subgroups; within
     * every device's guaranteed minimum of 128 invocations */
    ctx->wg_size = 64;
    choose_paths(ctx, force);
    if (ctx->tune.n) {
        const size_t n = strlen(ctx->paths);
        snprintf(ctx->paths + n, sizeof ctx->paths - n, "; matvec tuned for %u shapes",
                 ctx->tune.n);
    }
    *out = ctx;
    return VKLLM_OK;
}

void vkllm_context_destroy(vkllm_context *ctx)
{
    if (!ctx) return;
    vk_pipelines_destroy(&ctx->pipes);
    tune_table_free(&ctx->tune);
    vk_device_destroy(&ctx->dev);
    free(ctx);
}

const struct vkllm_device_info *vkllm_context_device(const vkllm_context *ctx)
{
    return &ctx->dev.info;
}

const char *vkllm_context_paths(const vkllm_context *ctx)
{
    return ctx->paths;
}

/* The context's notes, in order; NULL past them. */
static const char *note_at(const vkllm_context *ctx, size_t i)
{
    const char *notes[] = {ctx->disk_note, ctx->pipes.note, ctx->tune.note};
    for (size_t k = 0; k < sizeof notes / sizeof *notes; k++)
        if (notes[k][0] && i-- == 0) return notes[k];
    return NULL;
}

size_t vkllm_context_note_count(const vkllm_context *ctx)
{
    size_t n = 0;
    while (note_at(ctx, n))
        n++;
    return n;
}

const char *vkllm_context_note(const vkllm_context *ctx, size_t i)
{
    return note_at(ctx, i);
}

uint32_t vkllm_context_validation_errors(const vkllm_context *ctx)
{
    return ctx->dev.validation_messages;
}

uint64_t vkllm_context_bytes_uploaded(const vkllm_context *ctx)
{
    return ctx->dev.uploaded;
}

bool vkllm_context_lost(const vkllm_context *ctx)
{
    return ctx->dev.lost;
}
