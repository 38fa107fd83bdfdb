#version 450
#extension GL_GOOGLE_include_directive : require
/* gemm: y = W x for a batch of tokens (a prompt). A workgroup takes TB tokens
 * and WG * RPT rows: each thread holds RPT rows (WG apart, so neighbouring
 * threads read neighbouring rows). It walks the rows in steps of 32 elements:
 * every thread decodes its rows' 32-element sub-blocks into registers once,
 * then adds their dot products with each of the TB tokens' inputs. The inputs
 * are read at the same address by every thread of the workgroup (a broadcast),
 * so a decoded weight serves TB tokens and a loaded input RPT rows; no shared
 * memory or barrier is needed. TB, RPT and WG are specialization constants
 * (ops.c). With ACC the result is added to y.
 *
 * Inputs are floats. For Q4_0 and Q8_0 weights they are the Q8_0-rounded
 * activations that a decode step's matvec sees (quantize_q8.comp writes them
 * as floats for a GEMM); F16 and BF16 weights round them to their type here. */
#define KERNEL_MATVEC /* the same push constants */
#include "kernels.h"
#include "common.glsl"

layout(constant_id = 1) const uint TB = 16;  /* tokens per workgroup */
layout(constant_id = 2) const uint ACC = 0;  /* 1: y += W x */
layout(constant_id = 3) const uint RPT = 16; /* rows per thread */

layout(std430, binding = 1) readonly buffer Weights { uint weights[]; };
#include "quant.glsl"

layout(std430, binding = 2) readonly buffer X { float x[]; };
/* the same input as vec4s, for block formats (rows a multiple of 32 floats) */
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 3) buffer Y { float y[]; };

void main()
{
    const uint rows_per_wg = WG * RPT;
    const uint row_tiles = (pc.n_rows + rows_per_wg - 1u) / rows_per_wg;
    const uint row0 = (group_index() % row_tiles) * rows_per_wg + gl_LocalInvocationID.x;
    const uint tok0 = (group_index() / row_tiles) * TB;
    if (tok0 >= step.n_tokens) return; /* the whole workgroup: uniform */
    const uint n_tok = min(TB, step.n_tokens - tok0);

    /* Rows and tokens past the end repeat the last one, unused: a guard
     * inside the loops would keep them from being unrolled, and the arrays
     * from staying in registers. */
    uint rows[RPT];
    [[unroll]] for (uint r = 0u; r < RPT; r++) rows[r] = min(row0 + r * WG, pc.n_rows - 1u);
    uint toks[TB];
    [[unroll]] for (uint t = 0u; t < TB; t++) toks[t] = (tok0 + min(t, n_tok - 1u)) * pc.x_stride;

    float acc[TB][RPT];
    [[unroll]] for (uint t = 0u; t < TB; t++)
        [[unroll]] for (uint r = 0u; r < RPT; r++) acc[t][r] = 0.0;

#ifdef WTYPE_BLOCKS
    const uint nb = pc.k / QK;
    for (uint k0 = 0u; k0 < pc.k; k0 += 32u) {
        vec4 w[RPT][8];
        [[unroll]] for (uint r = 0u; r < RPT; r++)
            dequant32(rows[r] * nb + k0 / QK, (k0 % QK) / 32u, pc.scale_offset, w[r]);
        [[unroll]] for (uint t = 0u; t < TB; t++) {
            vec4 s[RPT];
            [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] = vec4(0.0);
            [[unroll]] for (uint i = 0u; i < 8u; i++) {
                const vec4 xv = x4[(toks[t] + k0) / 4u + i];
                [[unroll]] for (uint r = 0u; r < RPT; r++) s[r] += w[r][i] * xv;
            }
            [[unroll]] for (uint r = 0u; r < RPT; r++)
                acc[t][r] += (s[r].x + s[r].y) + (s[r].z + s[r].w);
        }
    }
#else
    for (uint k = 0u; k < pc.k; k++) {
        float w[RPT];
        [[unroll]] for (uint r = 0u; r < RPT; r++) w[r] = weight_at(rows[r], k, pc.k, 0u);
        [[unroll]] for (uint t = 0u; t < TB; t++) {
            const float xv = act(x[toks[t] + k]);
            [[unroll]] for (uint r = 0u; r < RPT; r++) acc[t][r] += w[r] * xv;
        }
    }
#endif

    [[unroll]] for (uint t = 0u; t < TB; t++) {
        [[unroll]] for (uint r = 0u; r < RPT; r++) {
            const uint row = row0 + r * WG;
            if (t < n_tok && row < pc.n_rows) {
                const uint o = (tok0 + t) * pc.y_stride + pc.row_offset + row;
                y[o] = ACC != 0u ? y[o] + acc[t][r] : acc[t][r];
            }
        }
    }
}
