/*
 * cuda_rt.h: the little of the CUDA runtime the C side needs (device memory with
 * a high-water mark, copies, events, an L2 flush), behind a C API so that harness/
 * stays plain C. Built without CUDA, every call fails with ATTN_ERR_UNSUPPORTED.
 */
#ifndef DMABENCH_CUDA_RT_H
#define DMABENCH_CUDA_RT_H

#include <stddef.h>

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device memory through one tracked allocator (like attn_alloc on the host). */
attn_status dm_cuda_alloc(void **ptr, size_t bytes);
void dm_cuda_free(void *ptr);
size_t dm_cuda_mem_current(void);
size_t dm_cuda_mem_peak(void);
void dm_cuda_mem_reset_peak(void);
/* A device buffer kept between calls and grown on demand, so that timing loops
 * do not measure cudaMalloc (zero-initialise it: {0}). */
typedef struct {
    void *ptr;
    size_t bytes;
} dm_cuda_ws;
/* *out = w's buffer of at least bytes; a smaller one is freed and replaced (its
 * contents lost), and then *fresh (may be NULL) is 1, else 0. */
attn_status dm_cuda_ws_get(dm_cuda_ws *w, size_t bytes, void **out, int *fresh);
/* Frees every workspace dm_cuda_ws_get has handed out (the next get allocates
 * afresh, with *fresh = 1): `kernels` calls it before each cell, so that the
 * cell's high-water mark includes the operator's workspaces. */
void dm_cuda_ws_release_all(void);

/* The most dynamic shared memory one block may opt in to on the current device. */
attn_status dm_cuda_smem_optin(size_t *bytes);

/* The current device's SM count, read on the first call and kept (one device per
 * process). */
attn_status dm_cuda_num_sms(int *n);

/* The driver's tensor-map encoder (cuTensorMapEncodeTiled, of the type
 * PFN_cuTensorMapEncodeTiled_v12000 in cudaTypedefs.h), looked up once at run time so
 * that nothing links against libcuda; NULL where the driver or the toolkit (before
 * 12.5) offers none, and then the tensor-memory copies are not used. */
void *dm_cuda_tmap_encoder(void);

/* Encodes into map (a CUtensorMap: 128 bytes, 64-byte aligned) a tensor map for row
 * gathers of 16-bit elements at base: rank dimensions (innermost first, in elements)
 * and rank - 1 strides (bytes, from the second dimension on), a box of 64 x 1 x ...
 * into the 128-byte swizzle, L2 promotion of 128 bytes, a row past the tensor read
 * as zeros. 0 on success, -1 where the encoder is missing or refuses the layout. */
int dm_cuda_tmap_rows16(void *map, const void *base, int rank, const unsigned long long *dims,
                        const unsigned long long *strides);
/* dm_cuda_tmap_rows16's map of K or V (16-bit, D x Hkv x Nk x B; strides sb, ss, sh
 * in elements), whose boxes the attention kernels copy a half row at a time: 0 on
 * success, -1 where the encoder is missing or refuses the strides. */
int dm_cuda_tmap_kv(void *map, const void *base, long long sb, long long ss, long long sh, int B, int Nk, int Hkv,
                    int D);

/* Free and total device memory (cudaMemGetInfo). */
attn_status dm_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

attn_status dm_cuda_h2d(void *dst, const void *src, size_t bytes);
attn_status dm_cuda_d2h(void *dst, const void *src, size_t bytes);
attn_status dm_cuda_memset(void *dst, int value, size_t bytes);
attn_status dm_cuda_sync(void);

/* Writes a buffer larger than the L2 cache so the next kernel starts cold. */
attn_status dm_cuda_flush_l2(void);

/* Times fn(arg) with CUDA events: returns milliseconds in *ms. */
attn_status dm_cuda_time(attn_status (*fn)(void *), void *arg, double *ms);

/* Spans of device work for attn_stats, timed without waiting: begin records a
 * start event on the stream and gives its slot (with s NULL, -1 and nothing
 * recorded); end records the stop and adds the span to s. When s already holds
 * ATTN_STATS_SPANS spans, begin settles them first (a wait). settle waits for the
 * spans' stops, adds their times to s->select_ms and clears them (call it after
 * the timed call's work is done). */
attn_status dm_cuda_span_begin(attn_stats *s, int *slot);
attn_status dm_cuda_span_end(attn_stats *s, int slot);
attn_status dm_cuda_stats_settle(attn_stats *s);

/* The last CUDA error as text (for messages). */
const char *dm_cuda_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
