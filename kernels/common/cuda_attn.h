/*
 * cuda_attn.h: the CUDA attention engine the CUDA variants share: FlashAttention-2
 * style tiles with tensor-core mma.sync (sm_80+), bf16 or fp16 in, fp32 accumulate,
 * online softmax, no Nq x Nk matrix. Like the CPU engine (cpu_attn.h), a query tile
 * visits either the contiguous key range its rows may see (causal bound and window)
 * or a list of keys built per tile by the variant (dma), and each listed key carries
 * the interval of queries that keep it, so masking is one compare per element.
 * All pointers in attn_params and in the spec are device pointers.
 */
#ifndef DMABENCH_CUDA_ATTN_H
#define DMABENCH_CUDA_ATTN_H

#include <stdint.h>

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CUDA_ATTN_BQ 128 /* queries per tile of the forward: 4 warps of 32 rows */

typedef struct {
    int window;              /* keys i' - window < j <= i' when causal; 0 = none */
    const float *z;          /* (B, Hkv, Nk) bias added to the logits, or NULL */
    /* Per (b, hkv, query tile) key lists, or NULL for the contiguous range. */
    const int32_t *list;     /* (B * Hkv * ntiles, cap) */
    const int32_t *list_len; /* (B * Hkv * ntiles) */
    int cap;
    /* dma's per-query thresholds as 64-bit keys (B, Hkv, Nq): query i keeps listed
     * key j iff dma_key(z_j, j) >= tkey[i] (and j <= i'); NULL: no threshold. */
    const unsigned long long *tkey;
    /* Optional beside a list (dma, for the warp-specialised forward): each entry's
     * rows of its tile that keep it, list_rows[2 e] .. list_rows[2 e + 1] (query
     * indices, INT_MAX - 1 for no bound above), and its bias z log2e in list_zl[e],
     * as the forward would form them from tkey and z (cuda_attn_keys.cuh key_meta);
     * NULL: the forward forms them. */
    const int32_t *list_rows;
    const float *list_zl;
    /* Keys at other positions than their index (nsa's compressed blocks): key j
     * sits at position j kpos_mul + kpos_add and query i at i + qoff, for the causal
     * rule (window must be 0). kpos_mul = 0: key j at j, query i at i + Nk - Nq. */
    int kpos_mul, kpos_add;
    long long qoff;
    /* backward only: dv += dv_ddt w^T at the end, with dv_ddt (B, Hkv, Nk) and dv_w
     * (Hkv*D, Hkv) (dma's z path through V), both NULL for none; after_main, when
     * set, runs between the main kernel (which has produced dz) and that step. */
    const float *dv_ddt;
    const float *dv_w;
    attn_status (*after_main)(void *ctx);
    void *after_main_ctx;
    /* With z (dma), or NULL: O's rounding residual, bf16 (B, Nq, Hq, D) contiguous.
     * The forward writes O's fp32 value less O as rounded to dtype, with P V
     * multiplied in as two rounded halves of P (so O's fp32 value is that of the
     * unrounded P, to about 16 bits); the backward forms Dsum = dO . (O + residual)
     * from it, the sum of P dP that dS's column sums (dz) need to cancel, instead of
     * a first pass over the key blocks. */
    void *ores;
    /* backward only: where set, dQ is added into this fp32 (B, Nq, Hq, D) contiguous
     * buffer instead of written to p->dq. The key-parallel backward accumulates into
     * it directly; the other paths write p->dq (then contiguous too, as scratch) and
     * add it in. */
    float *dq_add;
    /* backward only, without z: Dsum_i = dO_i . O_i, fp32 (B, Hq, Nq) contiguous,
     * formed by the caller (nsa, from the pass that gates dO), or NULL: formed here
     * from dout and o. */
    const float *dsum;
} cuda_attn_spec;

#ifdef __CUDACC__
#include <string.h>
/* The order selection uses, as one integer: larger z first, then larger index. */
__host__ __device__ static inline unsigned long long dma_key(float z, int j) {
    unsigned int u;
    memcpy(&u, &z, 4);
    if ((u & 0x7fffffffu) == 0) u = 0; /* -0 ties with +0, as the values do */
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (unsigned int)j;
}
#endif

/* Forward: writes p->o (dtype) and p->lse (fp32, (B, Hq, Nq)). */
attn_status cuda_attn_forward(const attn_params *p, const cuda_attn_spec *s);

/* Backward (cuda_attn_bwd.cu): reads q, k, v, o, lse and dout; writes dq, dk, dv
 * (dtype). dz, when non-NULL, receives the gradient of the logit bias z summed
 * over the queries and the group's heads, fp32 (B, Hkv, Nk). Uses the same key
 * ranges and lists as the forward. */
attn_status cuda_attn_backward(const attn_params *p, const cuda_attn_spec *s, float *dz);

/* fp32 tensors (cuda_f32.cu): rounds q, k, v (o, dout) to bf16 in a workspace,
 * runs inner (a variant's bf16 forward or backward) on them and widens its outputs
 * into p's fp32 tensors. bf16 accuracy. */
attn_status cuda_f32_forward(const attn_params *p, attn_status (*inner)(const attn_params *));
attn_status cuda_f32_backward(const attn_params *p, attn_status (*inner)(const attn_params *));

/* What the engine can run: bf16/f16 with 16-byte aligned rows, or f32 (through cuda_f32.cu); D in {16, 32, 64, 128}. */
int cuda_attn_supports(const attn_params *p, attn_variant v, int backward, char *why, size_t why_len);

/* Number of query tiles of p. */
static inline int cuda_attn_ntiles(const attn_params *p) { return (p->Nq + CUDA_ATTN_BQ - 1) / CUDA_ATTN_BQ; }

#ifdef __cplusplus
}
#endif
#endif
