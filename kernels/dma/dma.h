/*
 * dma.h: Dynamic Mask Attention (arXiv 2508.02124), the subject of dmabench.
 *
 * Content-aware part: a score z (B, Hkv, Nk) per kv head and key, shared by all
 * queries: dt = V_flat w_dt + b_dt, z = exp(a * softplus(dt)) ("exp" mode) or
 * z = a * softplus(dt) ("linear" mode); or z given directly.
 * Position-aware part: query i attends to all visible keys when there are at most w
 * of them, else to the w visible keys with the largest z (ties: larger z, then the
 * larger index). Logits s q.k + z. The heads of a GQA group share z and the selection.
 * Implementations side by side: dma_ref.c (double-precision oracle), dma_cpu.c (fast CPU),
 * dma_cuda.cu (GPU; device pointers).
 */
#ifndef DMABENCH_DMA_H
#define DMABENCH_DMA_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

int dma_ref_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status dma_ref_forward(const attn_params *p);
attn_status dma_ref_backward(const attn_params *p);

int dma_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status dma_cpu_forward(const attn_params *p);
attn_status dma_cpu_backward(const attn_params *p);

int dma_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status dma_cuda_forward(const attn_params *p);
attn_status dma_cuda_backward(const attn_params *p);
size_t dma_cuda_saved_bytes(const attn_params *p); /* the plan: thresholds, tile lists, z and dt */

/* The ordering selection uses: 1 when key a ranks above key b. */
static inline int dma_key_before(double za, int a, double zb, int b) {
    return za > zb || (za == zb && a > b);
}

#ifdef __cplusplus
}
#endif
#endif
