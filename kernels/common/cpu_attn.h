/*
 * cpu_attn.h: the tiled CPU attention engine the fast CPU variants share
 * (FlashAttention-2 style: query tiles, key chunks, online softmax, no Nq x Nk
 * matrix; the backward recomputes P from the saved log-sum-exp).
 *
 * A variant describes, per query tile, which keys to visit (a list of key indices)
 * and, per query row, which of those keys it keeps:
 *   lo(i) <= j <= hi(i)           (causal bound and sliding window), and
 *   (z_j, j) >= (tz_i, tj_i)      (dma's per-query threshold; optional)
 * plus an optional per-key bias z_j added to the logits (dma).
 * The rows of a tile are the query heads of one GQA group times a range of
 * queries, so a group's heads share one pass over the keys.
 *
 * fp32 only. Work is split over (batch, kv head, query tile) in the forward; the
 * backward splits over (batch, kv head) and a fixed number of query-tile chunks,
 * reducing dk/dv/dz in a fixed order: the results do not depend on the thread count.
 */
#ifndef DMABENCH_CPU_ATTN_H
#define DMABENCH_CPU_ATTN_H

#include <stdint.h>

#include "attn.h"

#define CPU_MAX_TILE_Q 128 /* queries per tile at most (the default is ~128 / G) */
#define CPU_KB 32          /* keys per chunk */
#define CPU_DALIGN 16      /* head dims padded to a multiple of this (of every copy's lanes) */

typedef struct cpu_attn_spec cpu_attn_spec;

struct cpu_attn_spec {
    int window;          /* keys i' - window < j <= i' when causal; 0 = no window */
    const float *z;      /* (B, Hkv, Nk) bias added to the logits, or NULL */
    const float *tz;     /* (B, Hkv, Nq) per-query threshold score, or NULL (no threshold) */
    const int32_t *tj;   /* (B, Hkv, Nq) per-query threshold index */
    /* The keys a query tile [i0, i1) visits, ascending; returns the count (<= cap).
     * NULL: the range lo(i0) .. hi(i1 - 1). */
    int (*tile_keys)(const cpu_attn_spec *s, const attn_params *p, int b, int hkv, int i0, int i1,
                     int32_t *out, int cap);
    int max_tile_keys;   /* cap for tile_keys' output */
    /* The queries [*rlo, *rhi] of tile [i0, i1) that keep key j (see key_rows in
     * cpu_attn.c for the default: causal bound, window, thresholds). Optional: for
     * key sets that are not positions in the sequence (NSA's compressed blocks). */
    void (*key_rows)(const cpu_attn_spec *s, const attn_params *p, int b, int hkv, int i0, int i1, int32_t j,
                     int32_t *rlo, int32_t *rhi);
    int tile_q;          /* queries per tile; 0 = the engine's choice (~128 rows) */
    const void *ctx;     /* for the callbacks */
    /* Optional: p->k and p->v as cpu_attn_pack() laid them out. A chunk of the tile's
     * list that is a run of consecutive keys from a multiple of CPU_KB is then read
     * in place instead of gathered and transposed (NSA's selected blocks). */
    const float *packed;
};

/* Forward: writes p->o and p->lse (fp32). */
attn_status cpu_attn_forward(const attn_params *p, const cpu_attn_spec *s);

/* Backward: writes p->dq, p->dk, p->dv; when dz is non-NULL writes the bias
 * gradient (B, Hkv, Nk) there (sum over the group's heads and the queries). */
attn_status cpu_attn_backward(const attn_params *p, const cpu_attn_spec *s, float *dz);

/* K and V of p in chunks of CPU_KB keys from a multiple of CPU_KB: per (b, hkv, chunk)
 * K^T and V^T ([Dp][CPU_KB]) then K and V rows ([CPU_KB][Dp]), Dp = D rounded up to
 * CPU_DALIGN, zero padded. From attn_alloc (the caller frees it with attn_free); NULL when
 * out of memory. */
float *cpu_attn_pack(const attn_params *p);

/* The keys row i may see under the causal bound and window: [lo, hi], empty when
 * hi < lo. */
void cpu_row_bounds(const attn_params *p, int window, int64_t i, int64_t *lo, int64_t *hi);

/* The instruction set the engine runs with: "avx512", "avx2" or "base"
 * (DMABENCH_ISA=avx2|base forces a narrower one, for testing). */
const char *cpu_attn_isa(void);

/* Common supports() for the CPU engine: fp32, D <= ATTN_MAX_D, valid params. */
int cpu_attn_supports(const attn_params *p, attn_variant v, int backward, char *why, size_t why_len);

#endif
