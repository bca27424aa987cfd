/*
 * swa.h: sliding-window attention: each query sees the w most recent visible keys.
 * S(i) = { j : i' - w < j <= i' }, the diagonal included; causal only.
 * Implementations side by side: swa_ref.c (double-precision oracle), swa_cpu.c (fast CPU),
 * swa_cuda.cu (GPU; device pointers).
 */
#ifndef DMABENCH_SWA_H
#define DMABENCH_SWA_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

int swa_ref_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status swa_ref_forward(const attn_params *p);
attn_status swa_ref_backward(const attn_params *p);

int swa_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status swa_cpu_forward(const attn_params *p);
attn_status swa_cpu_backward(const attn_params *p);

int swa_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status swa_cuda_forward(const attn_params *p);
attn_status swa_cuda_backward(const attn_params *p);

#ifdef __cplusplus
}
#endif
#endif
