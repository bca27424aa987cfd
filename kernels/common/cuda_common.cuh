/*
 * cuda_common.cuh: what every .cu file of dmabench shares: the one error-check
 * macro (used after every CUDA call and every launch), and small device helpers.
 */
#ifndef DMABENCH_CUDA_COMMON_CUH
#define DMABENCH_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"

/* Records the error text for dm_cuda_last_error() and returns ATTN_ERR_CUDA from the
 * enclosing function when a CUDA call (or the launch before it) failed. */
void dm_cuda_note_error(cudaError_t e, const char *what, const char *file, int line);

#define CUDA_CHECK(call)                                                   \
    do {                                                                   \
        cudaError_t e_ = (call);                                           \
        if (e_ != cudaSuccess) {                                           \
            dm_cuda_note_error(e_, #call, __FILE__, __LINE__);             \
            return ATTN_ERR_CUDA;                                          \
        }                                                                  \
    } while (0)

/* After a <<<...>>> launch: catches bad configurations at once. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* A launch of grid x block CTAs with smem bytes of dynamic shared memory in clusters
 * of cx x cy x 1, for cudaLaunchKernelEx or cudaOccupancyMaxActiveClusters: at[0]
 * holds the cluster's dimension (a caller may add at[1] and raise numAttrs). */
static inline void dm_cluster_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute *at, dim3 grid, dim3 block,
                                     size_t smem, unsigned int cx, unsigned int cy) {
    *cfg = cudaLaunchConfig_t{};
    cfg->gridDim = grid, cfg->blockDim = block, cfg->dynamicSmemBytes = smem;
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = cx, at[0].val.clusterDim.y = cy, at[0].val.clusterDim.z = 1;
    cfg->attrs = at, cfg->numAttrs = 1;
}

/* Whether the device holds a cluster of cx x cy CTAs of kern (block threads and
 * smem bytes of dynamic shared memory a CTA, which it sets as kern's limit): false
 * on a partition too small for one, or on any error (cleared). Callers keep the
 * answer in a static. */
template <typename K>
static inline bool dm_cluster_fits(K *kern, dim3 block, size_t smem, unsigned int cx, unsigned int cy) {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[1];
    dm_cluster_config(&cfg, at, dim3(cx, cy, 1), block, smem, cx, cy);
    int n = 0;
    const bool ok = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) == cudaSuccess &&
                    cudaOccupancyMaxActiveClusters(&n, kern, &cfg) == cudaSuccess && n > 0;
    cudaGetLastError();
    return ok;
}

static inline int dm_div_up(long long a, long long b) { return (int)((a + b - 1) / b); }

/* Whether environment variable name holds value: the switches that choose kernel
 * versions (reports record them; callers keep the answer in a static). */
static inline bool dm_env_is(const char *name, const char *value) {
    const char *e = getenv(name);
    return e && !strcmp(e, value);
}

/* Whether fw1 (bwd false) or the query-tile backward takes its CTAs' (tile, head)
 * with the heads fastest (tile_head in cuda_attn_keys.cuh) rather than each head's
 * tiles in turn. By default the backward does (dma's fwd+bwd at 8192: 2.10 against
 * 2.13 ms) and fw1 does not (even); DMABENCH_CUDA_TILE_ORDER=fwd, bwd, all or none
 * names the kernels that do. */
static inline int dm_tile_heads_first(bool bwd) {
    static const char *e = getenv("DMABENCH_CUDA_TILE_ORDER");
    if (!e) return bwd;
    return !strcmp(e, "all") || !strcmp(e, bwd ? "bwd" : "fwd");
}

/* Whether the current device is an sm_90 one (Hopper's wgmma). */
static inline bool dm_cuda_sm90() {
    int dev = 0, major = 0;
    const bool yes = cudaGetDevice(&dev) == cudaSuccess &&
                     cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9;
    cudaGetLastError();
    return yes;
}

/* Exclusive prefix sum of c over the block's NT threads (in thread order) and the
 * block's total in *total; swarp: NT / 32 ints of shared memory. Called by every
 * thread of the block; holds barriers, the last one after swarp is read (so that
 * the caller may reuse it). */
template <int NT>
__device__ __forceinline__ int dm_block_scan_excl(int c, int *swarp, int *total) {
    static_assert(NT % 32 == 0 && NT <= 1024, "whole warps, at most 32");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int x = c;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) swarp[warp] = x;
    __syncthreads();
    if (warp == 0) {
        int t = lane < NT / 32 ? swarp[lane] : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += y;
        }
        if (lane < NT / 32) swarp[lane] = t;
    }
    __syncthreads();
    const int excl = x - c + (warp > 0 ? swarp[warp - 1] : 0);
    *total = swarp[NT / 32 - 1];
    __syncthreads();
    return excl;
}

/* Programmatic dependent launch (sm_90). A kernel launched by dm_launch with pdl set
 * may start while the kernel before it in the stream is still running: it must call
 * dm_pdl_wait() before it reads anything that kernel (or one before it) writes, or
 * writes anything they read. dm_pdl_trigger() in the earlier kernel lets the later
 * one launch before the earlier one's CTAs exit (otherwise it launches as they
 * exit). Both are no-ops before sm_90 and in a kernel launched without pdl; every
 * kernel of such a chain calls dm_pdl_wait(), so that waiting on the kernel before
 * also waits on all earlier ones. */
__device__ __forceinline__ void dm_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void dm_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* Launches kern on the default stream, with programmatic stream serialisation when
 * pdl is set (callers set it on sm_90 only: dm_cuda_sm90()). */
template <typename... KArgs, typename... Args>
static inline cudaError_t dm_launch(void (*kern)(KArgs...), dim3 grid, dim3 block, bool pdl, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kern, args...);
}

#endif
