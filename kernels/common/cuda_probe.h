/*
 * cuda_probe.h: the GPU's rate for the query-tile backward's dK/dV sums, measured
 * alone. A probe CTA of 8 warps adds, per block, 64 keys' rows of 128 fp32 into
 * two accumulators laid out as the backward's ([key][kv head][128]), the keys
 * scattered as a selection leaves them, in the backward's own pattern: each warp
 * 16 keys x 64 columns, 8 rows of 32 bytes per instruction. `dmabench probe`
 * (harness/probe.c) times it; docs/perf-notes.md reads it against the kernel.
 */
#ifndef DMABENCH_CUDA_PROBE_H
#define DMABENCH_CUDA_PROBE_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PROBE_RED2,   /* red.global.add.v2.f32, as the backward issues them */
    PROBE_RED4,   /* red.global.add.v4.f32: half the instructions, same bytes */
    PROBE_BULK,   /* staged in shared memory, one cp.reduce.async.bulk per 512-byte row */
    PROBE_STORE2, /* st.global.v2.f32 of the same bytes: what plain writes cost */
    PROBE_NOPS
} probe_op;

typedef struct {
    probe_op op;
    int keys, hkv; /* the accumulators: keys x hkv rows of 128 fp32, two of them */
    int ctas;      /* CTAs in the grid (256 threads each) */
    int iters;     /* 64-key blocks per CTA */
} probe_cfg;

/* Runs cfg warmup + repeats times, each on zeroed accumulators (the zeroing not
 * timed); ms[i] gets repeat i's time (CUDA events). *sum gets the sum of every
 * accumulator element after the last run, in double: with the reductions it must
 * equal the count of adds (each adds 1), which the caller checks. Returns
 * ATTN_ERR_CUDA with no device, ATTN_ERR_OOM when the accumulators do not fit,
 * ATTN_ERR_UNSUPPORTED for the bulk op before sm_90. */
attn_status cuda_probe_run(const probe_cfg *cfg, int warmup, int repeats, double *ms, double *sum);

/* Adds one run of cfg makes (each of value 1): 2 x ctas x iters x 64 x 128. */
double cuda_probe_adds(const probe_cfg *cfg);

#ifdef __cplusplus
}
#endif
#endif
