/*
 * nsa.h: Native Sparse Attention (arXiv 2502.11089), a baseline.
 *
 * O_i = g_cmp O_cmp + g_slc O_slc + g_win O_win over one shared K/V:
 *  - compressed branch: blocks of l keys every d keys, compressed linearly
 *    (W_c^T flatten(K_block + P)) or by the block mean, attended causally;
 *  - selected branch: top-n blocks of l' keys per kv head and query, scored from the
 *    compressed branch's probabilities (summed over the GQA group), with block 0 and
 *    the query's own block and the one before it always selected;
 *  - window branch: sliding window of w keys.
 * lse is (3, B, Hq, Nq): one plane per branch (cmp, slc, win).
 * Implementations side by side: nsa_ref.c (double-precision oracle), nsa_cpu.c (fast
 * CPU, fp32: the tiled engine for the compressed and window branches, a block-major
 * kernel of its own for the selected one), nsa_cuda.cu (GPU forward; device pointers).
 */
#ifndef DMABENCH_NSA_H
#define DMABENCH_NSA_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

int nsa_ref_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status nsa_ref_forward(const attn_params *p);
attn_status nsa_ref_backward(const attn_params *p);

int nsa_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status nsa_cpu_forward(const attn_params *p);
attn_status nsa_cpu_backward(const attn_params *p);

int nsa_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len);
attn_status nsa_cuda_forward(const attn_params *p);
attn_status nsa_cuda_backward(const attn_params *p);
size_t nsa_cuda_saved_bytes(const attn_params *p); /* kc, vc, O_cmp, O_slc, O_win, the selection */

#ifdef __cplusplus
}
#endif
#endif
