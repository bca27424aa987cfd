/*
 * cuda_probe.cu: the query-tile backward's dK/dV sums and K/V row gathers, alone
 * (cuda_probe.h). Each CTA plays one tile's blocks: per block, 64 keys from a hash
 * of (CTA, block), spread over the keys as a selection's are.
 * The sums: warp w takes keys 16 (w % 4) .. + 15 and columns 64 (w / 4) .. + 63 of
 * both accumulators, as bwd_main_kernel's add_rows does. The values are all 1, so
 * the accumulators' sum after a run counts the adds that reached them.
 * The gathers: the keys' K and V rows into one of two stages of shared memory, the
 * next block's copies issued before the last block's are waited for, as the
 * kernels pipeline them (with no products between). CTA 0 then writes its last
 * block's K stage out, and the host compares it, chunk by chunk, with the layout.
 */
#include <cstdio>
#include <cstdint>
#include <cuda.h>
#include <vector>

#include "cuda_common.cuh"
#include "cuda_mma.cuh"
#include "cuda_probe.h"
#include "cuda_rt.h"
#include "cuda_wgmma.cuh"

namespace {

constexpr int PD = 128; /* columns per key row */
constexpr int PBK = 64; /* keys per block */
constexpr int PT = 256; /* threads per CTA */

__host__ __device__ __forceinline__ uint32_t probe_hash(uint32_t x) {
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

/* The gathers' source: 2 keys x hkv rows of 128 16-bit values, K's rows (key j, kv
 * head h at row j hkv + h) then V's; element (row, c) is probe_kval(row, c). */
__host__ __device__ __forceinline__ uint16_t probe_kval(long long row, int c) {
    return (uint16_t)((row * 131 + c * 7) & 0x7fff);
}
__global__ void probe_fill_kernel(uint16_t *kv, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        kv[i] = probe_kval(i / PD, (int)(i % PD));
}
/* The key of slot `slot` of block `it` for key-hash group `grp` (a CTA, or a cluster
 * of CTAs that share their keys), as both the kernels and the host's check take it */
__host__ __device__ __forceinline__ int probe_rows_key(int grp, int it, int slot, int keys) {
    const uint32_t seed = (uint32_t)grp * 0x9e3779b9u ^ (uint32_t)it * 0x85ebca6bu;
    return (int)(probe_hash(seed + (uint32_t)slot) % (uint32_t)keys);
}
constexpr int PSTAGE = 2 * PBK * PD * 2; /* bytes of a stage: K and V, 64 rows of 256 bytes */

/* rows-cp: 256 threads, 16 a row (one 16-byte chunk each), four rows of K and four
 * of V a thread per block, into the core-matrix layout (cm_off) */
__global__ void __launch_bounds__(PT) probe_rows_cp_kernel(const uint16_t *kv, int keys, int hkv, int iters,
                                                           uint16_t *dump) {
    extern __shared__ __align__(128) unsigned char smem[];
    uint16_t *buf = reinterpret_cast<uint16_t *>(smem); /* [2 stages][K, V][64][128] */
    const int h = blockIdx.x % hkv, ch = threadIdx.x % 16;
    const long long vrow0 = (long long)keys * hkv;
    for (int it = 0; it < iters; it++) {
        uint16_t *sk = buf + (it & 1) * 2 * PBK * PD, *sv = sk + PBK * PD;
#pragma unroll
        for (int i = 0; i < PBK * 16 / PT; i++) {
            const int r = threadIdx.x / 16 + i * (PT / 16);
            const long long row = (long long)probe_rows_key(blockIdx.x, it, r, keys) * hkv + h;
            dm::cp16(sk + dm::cm_off<PD>(r, ch), kv + row * PD + ch * 8, true);
            dm::cp16(sv + dm::cm_off<PD>(r, ch), kv + (vrow0 + row) * PD + ch * 8, true);
        }
        dm::cp_commit();
        dm::cp_wait<1>(); /* the last block's copies */
        __syncthreads();
    }
    dm::cp_wait<0>();
    __syncthreads();
    if (blockIdx.x == 0) {
        const uint16_t *sk = buf + ((iters - 1) & 1) * 2 * PBK * PD;
        for (int e = threadIdx.x; e < PBK * PD; e += PT) dump[e] = sk[e];
    }
}

#ifdef DM_WGMMA
/* one box of the tensor map at (c0, c1) into dst; completes on bar (CL 2: in both
 * CTAs of the cluster, at the same offsets) */
template <int CL>
__device__ __forceinline__ void probe_tma_row(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar) {
    if constexpr (CL == 1)
        asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                     " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dm::smem_addr(dst)),
                     "l"(map), "r"(c0), "r"(c1), "r"(dm::smem_addr(bar))
                     : "memory");
    else
        asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                     ".multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dm::smem_addr(dst)),
                     "l"(map), "r"(c0), "r"(c1), "r"(dm::smem_addr(bar)), "h"((uint16_t)3)
                     : "memory");
}
#endif

/* rows-tma (CL 1) and rows-tma2 (CL 2): the block's boxes, a box of 64 columns x 1
 * row for each half of a row of K and of V, one a thread (a warp's lanes issue theirs
 * one after another: one warp alone issues a box about every 50 cycles), each half row at
 * 128 bytes a row in its own 8-KB column of 128-byte swizzle atoms (the stage
 * 1024-byte aligned); an mbarrier per stage counts the bytes. CL 2: the cluster's
 * two CTAs take the same keys (two heads of one group) and each loads half the rows
 * into both; a cluster barrier per block keeps a stage from being refilled before
 * both CTAs are past it. */
template <int CL>
__global__ void __launch_bounds__(PT) probe_rows_tma_kernel(const __grid_constant__ CUtensorMap map, int keys, int hkv,
                                                            int iters, uint16_t *dump) {
#ifdef DM_WGMMA
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char *base = dm::align_sw128(smem);
    uint64_t *full = reinterpret_cast<uint64_t *>(base + 2 * PSTAGE);
    uint32_t rank = 0;
    if constexpr (CL > 1) asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
    const int grp = blockIdx.x / CL, h = grp % hkv, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int vrow0 = keys * hkv;
    if (threadIdx.x < 2) dm::mbar_init(full + threadIdx.x, 1);
    dm::fence_mbar_init_cluster();
    if constexpr (CL > 1) dm::cluster_sync();
    else __syncthreads();
    for (int it = 0; it < iters; it++) {
        const int st = it & 1;
        if constexpr (CL > 1) dm::cluster_sync(); /* both CTAs past block it - 2 (this stage) */
        if (threadIdx.x == 0) dm::mbar_expect_tx(full + st, PSTAGE);
        __syncthreads(); /* armed before any box of the block is issued */
        {
            /* box b of this CTA's 256 / CL: row r of its 64 / CL, tensor t, half hf */
            constexpr int RPC = PBK / CL;
            const int bx = warp * 32 + lane, r = (int)rank * RPC + bx % RPC, t = (bx / RPC) & 1, hf = bx / (2 * RPC);
            if (bx < 4 * RPC) {
                const int row = probe_rows_key(grp, it, r, keys) * hkv + h;
                probe_tma_row<CL>(base + st * PSTAGE + (t * 2 + hf) * (PBK * 128) + r * 128, &map, hf * 64,
                                  t * vrow0 + row, full + st);
            }
        }
        if (it > 0) dm::mbar_wait(full + (st ^ 1), ((it - 1) >> 1) & 1);
        __syncthreads();
    }
    dm::mbar_wait(full + ((iters - 1) & 1), ((iters - 1) >> 1) & 1);
    __syncthreads();
    if constexpr (CL > 1) dm::cluster_sync(); /* no CTA leaves while its peer's copies may still land in it */
    if (blockIdx.x == 0) {
        const uint16_t *sk = reinterpret_cast<const uint16_t *>(base + ((iters - 1) & 1) * PSTAGE);
        for (int e = threadIdx.x; e < PBK * PD; e += PT) dump[e] = sk[e];
    }
#else
    (void)map, (void)keys, (void)hkv, (void)iters, (void)dump;
    __trap();
#endif
}

/* The tensor map of the gathers' source for the tensor-memory ops: 2 keys hkv rows
 * of 128 16-bit values, boxes of 64 x 1, the 128-byte swizzle. The encoder comes
 * from the driver at run time (no link against libcuda). */
attn_status probe_map(CUtensorMap *map, void *kv, int keys, int hkv) {
    if (!dm_cuda_tmap_encoder()) return ATTN_ERR_UNSUPPORTED;
    const unsigned long long dims[2] = {(unsigned long long)PD, 2ull * keys * hkv}, strides[1] = {PD * sizeof(uint16_t)};
    if (dm_cuda_tmap_rows16(map, kv, 2, dims, strides) != 0) {
        dm_cuda_note_error(cudaErrorInvalidValue, "cuTensorMapEncodeTiled", __FILE__, __LINE__);
        return ATTN_ERR_CUDA;
    }
    return ATTN_OK;
}

attn_status probe_rows_launch(probe_op op, const CUtensorMap *map, uint16_t *kv, uint16_t *dump, const probe_cfg *c) {
    if (op == PROBE_ROWS_CP) {
        const int smem = 2 * PSTAGE;
        CUDA_CHECK(cudaFuncSetAttribute(probe_rows_cp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        probe_rows_cp_kernel<<<c->ctas, PT, smem>>>(kv, c->keys, c->hkv, c->iters, dump);
        CUDA_CHECK_LAUNCH();
        return ATTN_OK;
    }
    const int smem = 2 * PSTAGE + 1024 + 16;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[1];
    dm_cluster_config(&cfg, at, dim3(c->ctas), dim3(PT), smem, op == PROBE_ROWS_TMA2 ? 2 : 1, 1);
    if (op == PROBE_ROWS_TMA2) {
        CUDA_CHECK(cudaFuncSetAttribute(probe_rows_tma_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        CUDA_CHECK(cudaLaunchKernelEx(&cfg, probe_rows_tma_kernel<2>, *map, c->keys, c->hkv, c->iters, dump));
    } else {
        CUDA_CHECK(cudaFuncSetAttribute(probe_rows_tma_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        CUDA_CHECK(cudaLaunchKernelEx(&cfg, probe_rows_tma_kernel<1>, *map, c->keys, c->hkv, c->iters, dump));
    }
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* How many 16-byte chunks of CTA 0's last K stage (dump) hold what the layout puts
 * there: rows-cp the core-matrix layout, the tensor-memory ops the 128-byte swizzle
 * with its phase taken from the destination address (row r's chunk q of a half at
 * (q ^ r % 8) 16 bytes into the row's 128) */
double probe_rows_check(probe_op op, const std::vector<uint16_t> &dump, const probe_cfg *c) {
    double ok = 0;
    const int h = 0, it = c->iters - 1; /* CTA 0: group 0, kv head 0 */
    for (int r = 0; r < PBK; r++) {
        const long long row = (long long)probe_rows_key(0, it, r, c->keys) * c->hkv + h;
        for (int ch = 0; ch < 16; ch++) {
            size_t at; /* in 16-bit elements */
            if (op == PROBE_ROWS_CP) at = (size_t)dm::cm_off<PD>(r, ch);
            else at = (size_t)dm::sw128_off<PBK>(r, ch * 8);
            bool same = true;
            for (int e = 0; e < 8; e++) same = same && dump[at + e] == probe_kval(row, ch * 8 + e);
            ok += same;
        }
    }
    return ok;
}

/* The products (wg-*): values exact in bf16 whose products and sums stay exact in
 * fp32 (multiples of 1/128, sums below 2^14 in size), so that the host can compare
 * the accumulators with == */
__host__ __device__ __forceinline__ float probe_wg_a(int r, int c) { return (float)((r * 7 + c * 3) % 17 - 8) / 16.f; }
__host__ __device__ __forceinline__ float probe_wg_b(int st, int n, int c) {
    return (float)((n * 5 + c * 11 + st * 3) % 13 - 6) / 8.f;
}
constexpr int PWR = 128; /* rows of A (two warpgroups of 64) and of each B stage (keys) */

/* The element offset of (row r, column c) of a tile of PWR rows x 128: the
 * core-matrix layout (cm_off), or SW the 128-byte swizzle (sw128_off) */
template <bool SW> __host__ __device__ __forceinline__ int probe_wg_off(int r, int c) {
    if constexpr (SW) return dm::sw128_off<PWR>(r, c);
    else return dm::cm_off<PD>(r, c >> 3) + (c & 7);
}

/* wg-*: two warpgroups a CTA, A (Q's 128 rows) and two stages of B (128 keys x 128
 * each) filled once; per block each warpgroup issues its product over stage it % 2
 * (eight k16 steps, one commit group) and waits for it, as a forward without
 * overlap does. RS: A is P from registers (the same values as A's rows), B is V
 * read MN-major; its accumulators sum every block's product. SS: each block's S
 * overwrites the last. CTA 0's first warpgroup writes its accumulators to dump
 * (thread t's N / 2 from t N / 2). */
template <int N, bool SW, bool RS>
__global__ void __launch_bounds__(PT, 1) probe_wg_kernel(int iters, float *dump) {
#ifdef DM_WGMMA
    using T = __nv_bfloat16;
    extern __shared__ __align__(128) unsigned char smem[];
    T *sA = reinterpret_cast<T *>(dm::align_sw128(smem));
    T *sB = sA + PWR * PD; /* [2][PWR][128] */
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    for (int e = tid; e < PWR * PD; e += PT) {
        const int r = e / PD, c = e % PD;
        sA[probe_wg_off<SW>(r, c)] = __float2bfloat16(probe_wg_a(r, c));
        sB[probe_wg_off<SW>(r, c)] = __float2bfloat16(probe_wg_b(0, r, c));
        sB[PWR * PD + probe_wg_off<SW>(r, c)] = __float2bfloat16(probe_wg_b(1, r, c));
    }
    dm::fence_async_smem();
    __syncthreads();
    constexpr int NA = RS ? 64 : N / 2;
    float acc[NA];
#pragma unroll
    for (int i = 0; i < NA; i++) acc[i] = 0.f;
    uint32_t pf[RS ? PD / 16 : 1][4]; /* RS: the warp's m16 x k16 fragments of P, rows 64 wg + 16 warp .. */
    if constexpr (RS) {
        const int r0 = wg * 64 + warp * 16 + (lane >> 2), c0 = (lane & 3) * 2;
#pragma unroll
        for (int kk = 0; kk < PD / 16; kk++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int r = r0 + (q & 1) * 8, c = kk * 16 + c0 + (q >> 1) * 8;
                pf[kk][q] = dm::pack2<T>::from(probe_wg_a(r, c), probe_wg_a(r, c + 1));
            }
    }
    for (int it = 0; it < iters; it++) {
        const T *sBs = sB + (it & 1) * PWR * PD;
        dm::wg_fence();
        if constexpr (RS) {
#pragma unroll
            for (int kk = 0; kk < PD / 16; kk++)
                dm::wgmma_rs_mn<T, 128>(acc, pf[kk],
                                        SW ? dm::gmma_desc_sw128(sBs + kk * 16 * 64, PWR * 128, 1024)
                                           : dm::gmma_desc_mn(sBs + dm::cm_off<PD>(16 * kk, 0), PD * 16, 128));
        } else {
            auto da = [&](int kk) -> uint64_t {
                if constexpr (SW) return dm::gmma_desc_sw128(sA + (kk / 4) * PWR * 64 + wg * 64 * 64 + (kk % 4) * 16, 16, 1024);
                else return dm::gmma_desc(sA + dm::cm_off<PD>(wg * 64, 2 * kk), PD * 16);
            };
            auto db = [&](int kk) -> uint64_t {
                if constexpr (SW) return dm::gmma_desc_sw128(sBs + (kk / 4) * PWR * 64 + (kk % 4) * 16, 16, 1024);
                else return dm::gmma_desc(sBs + dm::cm_off<PD>(0, 2 * kk), PD * 16);
            };
            dm::wgmma_ss0<T, N>(acc, da(0), db(0));
#pragma unroll
            for (int kk = 1; kk < PD / 16; kk++) dm::wgmma_ss<T, N>(acc, da(kk), db(kk), 1);
        }
        dm::wg_commit();
        dm::wg_wait0();
    }
    if (blockIdx.x == 0 && wg == 0)
#pragma unroll
        for (int i = 0; i < NA; i++) dump[tid * NA + i] = acc[i];
#else
    (void)iters, (void)dump;
    __trap();
#endif
}

/* How many of CTA 0's first warpgroup's accumulators (dump) equal the exact product:
 * thread t's element i is row 16 (t / 32) + (t % 32) / 4 + 8 ((i / 2) % 2), column
 * 8 (i / 4) + 2 (t % 4) + i % 2; SS: block iters - 1's S, RS: the sum over the
 * blocks of P V of their stages */
double probe_wg_check(probe_op op, const std::vector<float> &dump, int iters) {
    const bool rs = op == PROBE_WG_RS || op == PROBE_WG_RS_SW;
    const int n = op == PROBE_WG_SS64 ? 64 : 128, na = n / 2;
    const int nb[2] = {(iters + 1) / 2, iters / 2}; /* blocks on each stage */
    double ok = 0;
    for (int t = 0; t < 128; t++)
        for (int i = 0; i < na; i++) {
            const int r = 16 * (t / 32) + (t % 32) / 4 + 8 * ((i / 2) % 2), col = 8 * (i / 4) + 2 * (t % 4) + i % 2;
            double want = 0;
            for (int st = 0; st < 2; st++) {
                if (!rs && st != (iters - 1) % 2) continue;
                double x = 0;
                for (int k = 0; k < PD; k++)
                    x += rs ? (double)probe_wg_a(r, k) * probe_wg_b(st, k, col) : (double)probe_wg_a(r, k) * probe_wg_b(st, col, k);
                want += rs ? nb[st] * x : x;
            }
            ok += (double)dump[(size_t)t * na + i] == want;
        }
    return ok;
}

attn_status probe_wg_launch(probe_op op, float *dump, const probe_cfg *c) {
    const int smem = 3 * PWR * PD * 2 + 1024;
    auto run = [&](auto kern) -> attn_status {
        CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kern<<<c->ctas, PT, smem>>>(c->iters, dump);
        CUDA_CHECK_LAUNCH();
        return ATTN_OK;
    };
    switch (op) {
    case PROBE_WG_SS: return run(probe_wg_kernel<128, false, false>);
    case PROBE_WG_SS_SW: return run(probe_wg_kernel<128, true, false>);
    case PROBE_WG_SS64: return run(probe_wg_kernel<64, false, false>);
    case PROBE_WG_RS: return run(probe_wg_kernel<128, false, true>);
    case PROBE_WG_RS_SW: return run(probe_wg_kernel<128, true, true>);
    default: return ATTN_ERR_INVALID;
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
    const bool rows = cuda_probe_is_rows(c->op);
    /* the gathers: dk's bytes hold the K and V rows (2 keys hkv x 128 x 2 bytes), dv
     * takes CTA 0's last stage */
    uint16_t *kv = reinterpret_cast<uint16_t *>(dk), *dump = reinterpret_cast<uint16_t *>(dv);
    CUtensorMap map;
    if (rows) {
        const long long n = 2LL * c->keys * c->hkv * PD;
        probe_fill_kernel<<<1024, 256>>>(kv, n);
        CUDA_CHECK_LAUNCH();
        if (c->op != PROBE_ROWS_CP) {
            attn_status mst = probe_map(&map, kv, c->keys, c->hkv);
            if (mst != ATTN_OK) return mst;
        }
    }
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    attn_status st = ATTN_OK;
    for (int i = 0; i < warmup + repeats && st == ATTN_OK; i++) {
        if (!rows && !cuda_probe_is_wg(c->op)) {
            CUDA_CHECK(cudaMemsetAsync(dk, 0, bytes));
            CUDA_CHECK(cudaMemsetAsync(dv, 0, bytes));
        }
        CUDA_CHECK(cudaEventRecord(e0));
        st = rows ? probe_rows_launch(c->op, &map, kv, dump, c)
             : cuda_probe_is_wg(c->op) ? probe_wg_launch(c->op, dv, c)
                                        : probe_launch(c->op, dk, dv, c);
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (i >= warmup) ms[i - warmup] = t;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (st != ATTN_OK) return st;
    if (cuda_probe_is_wg(c->op)) {
        std::vector<float> h((size_t)128 * 64);
        CUDA_CHECK(cudaMemcpy(h.data(), dv, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
        *sum = probe_wg_check(c->op, h, c->iters);
        return ATTN_OK;
    }
    if (rows) {
        std::vector<uint16_t> h((size_t)PBK * PD);
        CUDA_CHECK(cudaMemcpy(h.data(), dump, h.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost));
        *sum = probe_rows_check(c->op, h, c);
        return ATTN_OK;
    }
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
    if ((c->op == PROBE_BULK || c->op == PROBE_ROWS_TMA || c->op == PROBE_ROWS_TMA2 || cuda_probe_is_wg(c->op)) &&
        major < 9)
        return ATTN_ERR_UNSUPPORTED;
    if (c->op == PROBE_ROWS_TMA2 && c->ctas % 2) return ATTN_ERR_INVALID; /* whole clusters */
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
