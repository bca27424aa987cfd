/*
 * mha.h: dense multi-head attention (the baseline every variant is compared with).
 * S(i) = the visible keys V(i); logits s q.k.
 * Implementations side by side: mha_ref.c (double-precision oracle), mha_cpu.c (fast CPU),
 * mha_cuda.cu (GPU; device pointers).
 */
#ifndef DMABENCH_MHA_H
#define DMABENCH_MHA_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

int mha_ref_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status mha_ref_forward(const attn_params *p);
attn_status mha_ref_backward(const attn_params *p);

int mha_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status mha_cpu_forward(const attn_params *p);
attn_status mha_cpu_backward(const attn_params *p);

int mha_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status mha_cuda_forward(const attn_params *p);
attn_status mha_cuda_backward(const attn_params *p);

#ifdef __cplusplus
}
#endif
#endif
