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

static inline int dm_div_up(long long a, long long b) { return (int)((a + b - 1) / b); }

/* Whether environment variable name holds value: the switches that choose kernel
 * versions (reports record them; callers keep the answer in a static). */
static inline bool dm_env_is(const char *name, const char *value) {
    const char *e = getenv(name);
    return e && !strcmp(e, value);
}

/* Whether the current device is an sm_90 one (Hopper's wgmma). */
static inline bool dm_cuda_sm90() {
    int dev = 0, major = 0;
    const bool yes = cudaGetDevice(&dev) == cudaSuccess &&
                     cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9;
    cudaGetLastError();
    return yes;
}

#endif
