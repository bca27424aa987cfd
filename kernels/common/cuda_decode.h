/*
 * cuda_decode.h: the CUDA decode path (few queries, long K): split-K attention on
 * CUDA cores. The engine (cuda_attn.h) gives one CTA per (query tile, head, batch),
 * which at Nq = 1 leaves the GPU nearly idle and walks all Nk keys in one CTA; here
 * the keys are cut into splits so that the whole GPU streams K and V once.
 *
 * Grid (row tile x key split, kv head, batch): a CTA takes the query rows of one GQA
 * group (G = Hq / Hkv heads times the Nq queries; at most 8 per CTA, more rows make
 * more row tiles) against one contiguous slice of keys (or of a list of keys),
 * keeps a partial (m, l, O) in fp32, and a combine kernel merges the splits with the
 * log-sum-exp rescale and writes O and lse. Masks and windows as the engine:
 * bottom-right causal alignment, swa keeps i' - w < j <= i', an empty row gives
 * O = 0 and lse = -inf.
 *
 * dma (Nq = 1): the top-w keys by dma_key(z_j, j) (larger z, then larger index):
 * a threshold from a sample of z, one pass over z that keeps the keys reaching it,
 * and an exact radix select (cuda_select.cuh) over those, into a list of exactly w
 * keys per (batch, kv head); the split-K kernel runs over that list with z added to
 * the logits, or on sm_90 the final select's own cluster of CTAs attends to it.
 * O(Nk) work and memory, no mask.
 *
 * All pointers are device pointers. The callers (mha/swa/dma_cuda_forward) have
 * already checked the engine's requirements (cuda_attn_supports): bf16/f16,
 * D in {64, 128}, strides that are multiples of 8 elements, 16-byte aligned tensors.
 */
#ifndef DMABENCH_CUDA_DECODE_H
#define DMABENCH_CUDA_DECODE_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest Nq the split-K path takes for mha and swa; dma takes Nq = 1. */
#define CUDA_DECODE_MAX_NQ 16

/* 1 when the forward of variant v at these params goes through the decode path
 * (the params must already pass the variant's cuda supports()). */
int cuda_decode_applies(const attn_params *p, attn_variant v);

/* mha (window 0) and swa (window = p->w, causal): writes p->o and p->lse. */
attn_status cuda_decode_forward(const attn_params *p, int window);

/* Computes z (B, Hkv, Nk) from p->v, p->w_dt, p->b_dt, p->a into z (dma's score kernel). */
typedef attn_status (*cuda_decode_score_fn)(const attn_params *p, float *z);

/* dma at Nq = 1: z given (p->z) or computed with score (when p->w_dt is set);
 * writes p->o, p->lse, p->z_out when set, and records the selection (score,
 * sample, filter, final select; with the fused final kernel that includes the
 * attention over the list, one kernel with the select) as a span of p->stats when
 * set (dm_cuda_span_begin, cuda_rt.h: the caller settles it into select_ms). */
attn_status cuda_decode_dma_forward(const attn_params *p, cuda_decode_score_fn score);

#ifdef __cplusplus
}
#endif
#endif
