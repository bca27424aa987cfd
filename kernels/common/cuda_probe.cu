/*
 * cuda_probe.cu: the dK/dV sums of the query-tile backward, alone (cuda_probe.h).
 * Each CTA plays one tile's blocks: per block, 64 keys from a hash of (CTA, block),
 * spread over the accumulators as a selection's keys are; warp w takes keys
 * 16 (w % 4) .. + 15 and columns 64 (w / 4) .. + 63 of both accumulators, as
 * bwd_main_kernel's add_rows does. The values are all 1, so the accumulators'
 * sum after a run counts the adds that reached them.
 */
#include <cstdio>
#include <vector>

#include "cuda_common.cuh"
#include "cuda_mma.cuh"
#include "cuda_probe.h"
#include "cuda_wgmma.cuh"

namespace {

constexpr int PD = 128; /* columns per key row */
constexpr int PBK = 64; /* keys per block */
constexpr int PT = 256; /* threads per CTA */

__device__ __forceinline__ uint32_t probe_hash(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

__device__ __forceinline__ void probe_st2(float *p, float a, float b) {
    asm volatile("st.global.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
}

/* bytes (a multiple of 16) of fp32 at src in shared memory added into dst, as one
 * bulk operation of this thread, then waited for until its source has been read;
 * compiled where the proxy fence before it is (sm_90a: DM_WGMMA) */
__device__ __forceinline__ void probe_bulk_add(float *dst, const float *src, uint32_t bytes) {
#ifdef DM_WGMMA
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
                 "r"(dm::smem_addr(src)), "r"(bytes)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#else
    (void)dst, (void)src, (void)bytes;
#endif
}

template <probe_op OP>
__global__ void __launch_bounds__(PT) probe_kernel(float *dk, float *dv, int keys, int hkv, int iters) {
    extern __shared__ __align__(128) unsigned char smem[]; /* PROBE_BULK: [dV, dK][64 keys][128] */
    float *buf = reinterpret_cast<float *>(smem);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.x % hkv;
    const long long accs = (long long)hkv * PD; /* one key's rows, all kv heads */
    const int wkey = (warp % 4) * 16, d0 = (warp / 4) * 64;
    for (int it = 0; it < iters; it++) {
        const uint32_t seed = blockIdx.x * 0x9e3779b9u ^ (uint32_t)it * 0x85ebca6bu;
        auto key_of = [&](int slot) { return (int)(probe_hash(seed + (uint32_t)slot) % (uint32_t)keys); };
        if constexpr (OP == PROBE_BULK) {
            /* the warps' values staged as [key][128], then one row a thread */
#pragma unroll
            for (int which = 0; which < 2; which++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float *row = buf + (which * PBK + wkey + (lane >> 2) + 8 * r) * PD + d0 + (lane & 3) * 2;
#pragma unroll
                    for (int t = 0; t < 8; t++) *reinterpret_cast<float2 *>(row + t * 8) = make_float2(1.f, 1.f);
                }
            dm::fence_async_smem(); /* the staged rows, visible to the bulk reductions */
            __syncthreads();
            if (threadIdx.x < 2 * PBK) {
                const int which = threadIdx.x / PBK, slot = threadIdx.x % PBK;
                float *dst = (which ? dk : dv) + (long long)key_of(slot) * accs + h * PD;
                probe_bulk_add(dst, buf + (which * PBK + slot) * PD, PD * sizeof(float));
            }
            __syncthreads(); /* the buffer is read before the next block writes it */
        } else {
#pragma unroll
            for (int which = 0; which < 2; which++) {
                float *acc = which ? dk : dv;
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float *row = acc + (long long)key_of(wkey + (lane >> 2) + 8 * r) * accs + h * PD + d0;
                    if constexpr (OP == PROBE_RED4) {
#pragma unroll
                        for (int t = 0; t < 4; t++) dm::red_add4(row + t * 16 + (lane & 3) * 4, make_float4(1.f, 1.f, 1.f, 1.f));
                    } else {
#pragma unroll
                        for (int t = 0; t < 8; t++) {
                            if constexpr (OP == PROBE_RED2) dm::red_add2(row + t * 8 + (lane & 3) * 2, 1.f, 1.f);
                            else probe_st2(row + t * 8 + (lane & 3) * 2, 1.f, 1.f);
                        }
                    }
                }
            }
        }
    }
}

attn_status probe_launch(probe_op op, float *dk, float *dv, const probe_cfg *c) {
    const size_t smem = op == PROBE_BULK ? 2 * PBK * PD * sizeof(float) : 0;
    switch (op) {
    case PROBE_RED2: probe_kernel<PROBE_RED2><<<c->ctas, PT>>>(dk, dv, c->keys, c->hkv, c->iters); break;
    case PROBE_RED4: probe_kernel<PROBE_RED4><<<c->ctas, PT>>>(dk, dv, c->keys, c->hkv, c->iters); break;
    case PROBE_STORE2: probe_kernel<PROBE_STORE2><<<c->ctas, PT>>>(dk, dv, c->keys, c->hkv, c->iters); break;
    case PROBE_BULK:
        CUDA_CHECK(cudaFuncSetAttribute(probe_kernel<PROBE_BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)smem));
        probe_kernel<PROBE_BULK><<<c->ctas, PT, smem>>>(dk, dv, c->keys, c->hkv, c->iters);
        break;
    default: return ATTN_ERR_INVALID;
    }
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

attn_status probe_runs(const probe_cfg *c, float *dk, float *dv, size_t bytes, int warmup, int repeats, double *ms,
                       double *sum) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    attn_status st = ATTN_OK;
    for (int i = 0; i < warmup + repeats && st == ATTN_OK; i++) {
        CUDA_CHECK(cudaMemsetAsync(dk, 0, bytes));
        CUDA_CHECK(cudaMemsetAsync(dv, 0, bytes));
        CUDA_CHECK(cudaEventRecord(e0));
        st = probe_launch(c->op, dk, dv, c);
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (i >= warmup) ms[i - warmup] = t;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (st != ATTN_OK) return st;
    std::vector<float> h(bytes / sizeof(float));
    double s = 0;
    for (float *p : {dk, dv}) {
        CUDA_CHECK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
        for (float x : h) s += x;
    }
    *sum = s;
    return ATTN_OK;
}

} // namespace

extern "C" attn_status cuda_probe_run(const probe_cfg *c, int warmup, int repeats, double *ms, double *sum) {
    *sum = 0;
    if (c->op < 0 || c->op >= PROBE_NOPS || c->keys < PBK || c->hkv < 1 || c->ctas < 1 || c->iters < 1 ||
        warmup < 0 || repeats < 1)
        return ATTN_ERR_INVALID;
    int n = 0, dev = 0, major = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError();
        dm_cuda_note_error(cudaErrorNoDevice, "cudaGetDeviceCount", __FILE__, __LINE__);
        return ATTN_ERR_CUDA;
    }
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    if (c->op == PROBE_BULK && major < 9) return ATTN_ERR_UNSUPPORTED;
    const size_t bytes = (size_t)c->keys * c->hkv * PD * sizeof(float);
    float *dk = nullptr, *dv = nullptr;
    if (cudaMalloc(&dk, bytes) != cudaSuccess || cudaMalloc(&dv, bytes) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(dk);
        return ATTN_ERR_OOM;
    }
    attn_status st = probe_runs(c, dk, dv, bytes, warmup, repeats, ms, sum);
    cudaFree(dk);
    cudaFree(dv);
    return st;
}
