/* context.h: what a vkllm_context holds: the device and its pipelines.
 * Internal to the engine. */
#ifndef VKLLM_CONTEXT_H
#define VKLLM_CONTEXT_H

#include "tune_table.h"
#include "vk_device.h"
#include "vk_pipeline.h"

/* Which gemm_coop.comp variant block-format GEMMs run, if any */
enum gemm_coop {
    GEMM_COOP_OFF,
    GEMM_COOP_NV,       /* VK_NV_cooperative_matrix */
    GEMM_COOP_EMULATED, /* its products in plain code: its tests, on any device */
};

struct vkllm_context {
    struct vk_device dev;
    struct vk_pipelines pipes;
    uint32_t wg_size; /* workgroup size of most kernels: a power of two */
    uint32_t norm_wg; /* most threads a norm's workgroup takes: a power of two */
    /* the paths chosen for this device (vkllm_context_paths says why) */
    bool matvec_subgroup;         /* matvec reduces with subgroup shuffles, not shared memory */
    uint32_t matvec_tpr;          /* matvec threads per row: within one subgroup */
    bool matvec_int_dot;          /* Q8_0-activation matvecs use packed 4x8-bit dots */
    bool attention_subgroup;      /* attention gives each (token, head) a subgroup */
    uint32_t attention_per_group; /* (token, head) pairs per workgroup */
    bool attention_tiled;         /* prompts: a workgroup per tile of queries (ops.c) */
    uint32_t attention_splits;    /* decode: chunks a query's positions split into; 0: unsplit */
    uint32_t attention_split_heads; /* decode: most query heads a split's workgroup takes */
    bool gemm;                    /* batches go through the tiled GEMM, not matvec */
    bool fuse;                    /* forward.c records fused kernels where the graph allows */
    uint32_t gemm_wg;             /* threads per GEMM workgroup */
    uint32_t gemm_tokens;         /* tokens per GEMM workgroup */
    uint32_t gemm_thread_rows;    /* rows per GEMM thread (WG of them apart) */
    bool gemm_shuffle;            /* GEMM inputs loaded once per subgroup, shuffled */
    /* block formats' weights and inputs read by the integer-dot matvec and
     * the shuffled GEMM as uniform texel buffers, and an F16 KV cache by
     * prompt attention */
    bool texel_loads;
    bool gemm_pairs; /* GEMMs of formats.h's PAIRS: two tokens' products per integer multiply */
    enum gemm_coop gemm_coop; /* block-format GEMMs on matrix units (gemm_coop.comp) */
    struct tune_table tune;       /* variants `vkllm tune` measured fastest here */
    char paths[512];              /* the choices above, in words */
    char disk_note[1200];         /* a note of guard_shader_cache's, or "" */
};

#endif
