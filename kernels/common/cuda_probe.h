/*
 * cuda_probe.h: the GPU's rate for the query-tile backward's memory traffic,
 * measured alone. The sums: a probe CTA of 8 warps adds, per block, 64 keys' rows
 * of 128 fp32 into two accumulators laid out as the backward's ([key][kv head]
 * [128]), the keys scattered as a selection leaves them, in the backward's own
 * pattern: each warp 16 keys x 64 columns, 8 rows of 32 bytes per instruction.
 * The gathers: per block, the same 64 keys' K and V rows (128 bf16 each, [key][kv
 * head][128]) copied into shared memory in a layout the wgmma products read, by
 * cp.async as the kernels do or by the tensor memory accelerator one row at a
 * time. `dmabench probe` (harness/probe.c) times them; docs/perf-notes.md reads
 * them against the kernels. The products: the forward's two wgmma products alone
 * (no copies, no softmax), in the shared-memory layouts a forward could use, to
 * read a kernel's tensor-pipe rate against.
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
    PROBE_ROWS_CP,   /* K and V rows by cp.async (16 bytes a thread), the core-matrix layout, as the kernels */
    PROBE_ROWS_TMA,  /* the same rows by cp.async.bulk.tensor, a box of 64 columns x 1 row per half row,
                      * into the 128-byte swizzle (sm_90) */
    PROBE_ROWS_TMA2, /* the same in clusters of 2 CTAs (two heads of a GQA group: the same keys), each
                      * CTA loading half the rows for both (.multicast::cluster): half the reads */
    PROBE_WG_SS,     /* the products alone (sm_90): per block and warpgroup, S = Q K^T of 64 rows x 128 keys
                      * x D 128 (wgmma m64n128k16 x 8), both operands K-major in the core-matrix layout */
    PROBE_WG_SS_SW,  /* the same with both in the 128-byte swizzle */
    PROBE_WG_SS64,   /* S of 64 keys (m64n64k16 x 8), the core-matrix layout */
    PROBE_WG_RS,     /* O += P V of 128 keys (m64n128k16 x 8), P from registers, V MN-major, the
                      * core-matrix layout */
    PROBE_WG_RS_SW,  /* the same with V in the 128-byte swizzle */
    PROBE_NOPS
} probe_op;

typedef struct {
    probe_op op;
    int keys, hkv; /* the accumulators: keys x hkv rows of 128 fp32, two of them */
    int ctas;      /* CTAs in the grid (256 threads each) */
    int iters;     /* 64-key blocks per CTA */
} probe_cfg;

/* Runs cfg warmup + repeats times, each on zeroed accumulators (the zeroing not
 * timed); ms[i] gets repeat i's time (CUDA events). The sums: *sum gets the sum of
 * every accumulator element after the last run, in double: with the reductions it
 * must equal the count of adds (each adds 1), which the caller checks. The
 * gathers: *sum gets how many of the 16-byte chunks of the last block's K rows in
 * CTA 0's shared memory hold what the layout says (every K element a function of
 * its key and column). Returns ATTN_ERR_CUDA with no device, ATTN_ERR_OOM when the
 * buffers do not fit, ATTN_ERR_UNSUPPORTED for the bulk and tensor-memory ops
 * before sm_90. */
attn_status cuda_probe_run(const probe_cfg *cfg, int warmup, int repeats, double *ms, double *sum);

/* What cuda_probe_run's *sum must be: the sums' adds one run of cfg makes (each
 * of value 1), 2 x ctas x iters x 64 x 128; for the gathers the chunks checked,
 * 64 x 16. */
double cuda_probe_adds(const probe_cfg *cfg);

/* The bytes one run moves: the sums' fp32 adds, or the gathers' K and V rows
 * written to shared memory (2 x ctas x iters x 64 x 256). */
double cuda_probe_bytes(const probe_cfg *cfg);

/* Whether op is one of the gathers. */
int cuda_probe_is_rows(probe_op op);

/* Whether op is one of the products (wg-*); their check counts the accumulator
 * elements of CTA 0's first warpgroup that equal the exact product (cuda_probe_adds
 * gives 64 x N: every element), and they move no bytes (cuda_probe_bytes 0). */
int cuda_probe_is_wg(probe_op op);

/* The floating-point operations of one run of the products (2 x M x N x K each), 0
 * for the other ops. */
double cuda_probe_flops(const probe_cfg *cfg);

#ifdef __cplusplus
}
#endif
#endif
