/* cmd_devices.c: vkllm devices: every Vulkan device, its features and limits. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(enum vkllm_device_type t)
{
    switch (t) {
    case VKLLM_DEVICE_DISCRETE: return "discrete GPU";
    case VKLLM_DEVICE_INTEGRATED: return "integrated GPU";
    case VKLLM_DEVICE_VIRTUAL: return "virtual GPU";
    case VKLLM_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

static const char *yes(bool b)
{
    return b ? "yes" : "no";
}

int cmd_devices(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
            fputs("usage: vkllm devices\n\nChoose one with --device N|NAME or VKLLM_DEVICE.\n",
                  stdout);
            return 0;
        }
        return cli_error("vkllm devices takes no arguments");
    }
    struct vkllm_error err = {0};
    struct vkllm_device_info infos[16];
    int n = vkllm_devices_list(infos, 16, &err);
    if (n < 0) return cli_error("%s", err.msg);
    if (n > 16) n = 16;

    /* the default is what a context without --device would pick. Making it
     * also reads the settings every command refuses when bad (VKLLM_FORCE,
     * VKLLM_FAULT, VKLLM_TIMEOUT, ...): VKLLM_E_INVALID. A VKLLM_DEVICE that
     * matches nothing is no reason not to list what there is. */
    vkllm_context *ctx = NULL;
    uint32_t chosen = UINT32_MAX;
    int rc = vkllm_context_create(NULL, &ctx, &err);
    if (rc == VKLLM_E_INVALID) return cli_error("%s", err.msg);
    if (rc == 0) chosen = vkllm_context_device(ctx)->index;
    vkllm_context_destroy(ctx);

    for (int i = 0; i < n; i++) {
        const struct vkllm_device_info *d = &infos[i];
        printf("%u: %s (%s)%s\n", d->index, d->name, type_name(d->type),
               d->index == chosen ? "  [default]" : "");
        printf("   driver        %s, Vulkan %u.%u.%u\n", d->driver, (d->api_version >> 22) & 0x7f,
               (d->api_version >> 12) & 0x3ff, d->api_version & 0xfff);
        printf("   memory        %.0f MiB device-local, budget %.0f MiB (%s)\n",
               d->device_local_bytes / 1048576.0, d->budget_bytes / 1048576.0,
               d->memory_budget ? "VK_EXT_memory_budget" : "the heaps' size");
        printf("   features      fp16 %s, int8 %s, 16-bit storage %s, 8-bit storage %s, "
               "integer dot %s, cooperative matrix %s\n",
               yes(d->fp16), yes(d->int8), yes(d->storage16), yes(d->storage8),
               d->int_dot_accelerated ? "yes (accelerated)" : yes(d->int_dot),
               d->coopmat && d->coopmat_nv ? "KHR and NV"
               : d->coopmat_nv             ? "NV"
               : d->coopmat                ? "KHR"
                                           : "no");
        printf("   subgroups     size %u (%u..%u%s), ops:%s%s%s%s%s%s%s%s\n", d->subgroup_size,
               d->subgroup_min_size, d->subgroup_max_size,
               d->subgroup_size_control ? ", controllable" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_BASIC ? " basic" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_VOTE ? " vote" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_ARITHMETIC ? " arithmetic" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_BALLOT ? " ballot" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_SHUFFLE ? " shuffle" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_SHUFFLE_RELATIVE ? " shuffle-relative" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_CLUSTERED ? " clustered" : "",
               d->subgroup_ops & VKLLM_SUBGROUP_QUAD ? " quad" : "");
        printf("   limits        storage buffer range %.0f MiB, allocation %.0f MiB, buffer %.0f "
               "MiB, shared memory %u KiB, workgroup %u invocations, push constants %u B\n",
               d->max_storage_buffer_range / 1048576.0, d->max_memory_allocation / 1048576.0,
               d->max_buffer_size / 1048576.0, d->max_shared_memory / 1024,
               d->max_workgroup_invocations, d->max_push_constants);
        if (d->timestamp_period_ns > 0)
            printf("   timestamps    %.3g ns per tick\n", d->timestamp_period_ns);
        else
            printf("   timestamps    not on the compute queue\n");
        /* the kernel paths vkllm would take on it (VKLLM_FORCE applies) */
        char index[16];
        snprintf(index, sizeof index, "%u", d->index);
        struct vkllm_context_params cp = {.device = index};
        if (vkllm_context_create(&cp, &ctx, &err) == 0)
            printf("   paths         %s\n", vkllm_context_paths(ctx));
        else
            printf("   paths         none: %s\n", err.msg);
        vkllm_context_destroy(ctx);
        ctx = NULL;
    }
    return 0;
}
