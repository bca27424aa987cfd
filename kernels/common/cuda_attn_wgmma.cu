/*
 * cuda_attn_wgmma.cu: the CUDA attention engine's forward on Hopper's warpgroup
 * MMA (wgmma), behind DMABENCH_CUDA_WGMMA=1 on sm_90 devices until tests/gpu.sh
 * has verified it (cuda_attn.cu's mma.sync kernel is the default).
 *
 * One CTA of 2 warpgroups (8 warps) per (query tile of 128, query head, batch):
 * warpgroup g owns rows 64g..64g+63, warp w of the CTA rows 16w..16w+15, as in
 * cuda_attn.cu with one m16 tile per warp, so the masks, the online softmax and the
 * output are that kernel's. Per block of 64 keys:
 *   S = Q K^T: wgmma m64n64k16 with both operands in shared memory (D / 16 steps);
 *   O += P V:  wgmma m64nDk16 with P from registers (the S accumulators, rounded:
 *              the wgmma accumulator layout per warp is mma.sync's m16n8 one) and
 *              V^T in shared memory (BK / 16 steps).
 * Shared memory holds the operands in the canonical no-swizzle K-major layout:
 * core matrices of 8 rows x 16 bytes, 128 contiguous bytes each, the K direction's
 * core matrices adjacent (LBO 128 B) and the row direction's D / 8 (or BK / 8) apart
 * (SBO). Q and K go there straight from global memory (cp.async); V arrives
 * row-major (swizzled, as cuda_attn.cu has it) and is transposed into V^T with
 * ldmatrix.trans, so that both products read K-major operands.
 * The writes reach the async proxy through fence.proxy.async before the barrier
 * that precedes the wgmmas; each product is one commit group, waited for before its
 * accumulators are read.
 */
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_attn_fwd.cuh"
#include "cuda_attn_keys.cuh"
#include "cuda_common.cuh"
#include "cuda_mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DM_WGMMA 1
#endif

namespace dm {
namespace {

constexpr int WBQ = CUDA_ATTN_BQ; /* 128 query rows per CTA */
constexpr int WBK = 64;           /* keys per block */
constexpr int WNT = 256;          /* 2 warpgroups */

/* D = A B (+ D when acc): m64nNk16, A and B from shared-memory descriptors (N = 64: S). */
template <typename T, int N> __device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* D = A B, D written only (its old values dead: no dependence on the registers'
 * last writers, which the softmax's masked stores are). */
template <typename T, int N> __device__ __forceinline__ void wgmma_ss0(float (&d)[N / 2], uint64_t da, uint64_t db);
/* D += A B: m64nNk16, A from registers (mma.sync's m16k16 A fragment per warp). */
template <typename T, int N> __device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db);

/* The asm operand lists: the accumulators as %0.. and their constraints. */
#define DM_ACC32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define DM_ACC64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define DM_RW32 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define DM_W32 \
    "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), \
    "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), \
    "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), \
    "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
#define DM_RW64 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

/* the wgmma where this is compiled for sm_90a, a trap elsewhere (never launched) */
#ifdef DM_WGMMA
#define DM_WG_ASM(...) asm volatile(__VA_ARGS__)
#else
#define DM_WG_ASM(...) __trap()
#endif

/* scale-d is a predicate: p = (acc != 0) */
#define DM_WGMMA_SS(T, TY)                                                                                             \
    template <> __device__ __forceinline__ void wgmma_ss<T, 64>(float (&d)[32], uint64_t da, uint64_t db, int acc) {  \
        DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                         \
                  "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " DM_ACC32 ", %32, %33, p, 1, 1, 0, 0;\n}\n" \
                  : DM_RW32                                                                                            \
                  : "l"(da), "l"(db), "r"(acc));                                                                      \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_ss0<T, 64>(float (&d)[32], uint64_t da, uint64_t db) {           \
        DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                         \
                  "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " DM_ACC32 ", %32, %33, p, 1, 1, 0, 0;\n}\n" \
                  : DM_W32                                                                                             \
                  : "l"(da), "l"(db), "r"(0));                                                                        \
    }
#define DM_WGMMA_RS64(T, TY)                                                                                           \
    template <> __device__ __forceinline__ void wgmma_rs<T, 64>(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {  \
        DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                         \
                  "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " DM_ACC32                                   \
                  ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"                                                        \
                  : DM_RW32                                                                                            \
                  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));                                   \
    }
#define DM_WGMMA_RS128(T, TY)                                                                                          \
    template <> __device__ __forceinline__ void wgmma_rs<T, 128>(float (&d)[64], const uint32_t (&a)[4], uint64_t db) { \
        DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                         \
                  "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " DM_ACC64                                  \
                  ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"                                                        \
                  : DM_RW64                                                                                            \
                  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));                                   \
    }

DM_WGMMA_SS(__nv_bfloat16, "bf16")
DM_WGMMA_SS(__half, "f16")
DM_WGMMA_RS64(__nv_bfloat16, "bf16")
DM_WGMMA_RS64(__half, "f16")
DM_WGMMA_RS128(__nv_bfloat16, "bf16")
DM_WGMMA_RS128(__half, "f16")

__device__ __forceinline__ void wg_fence() {
#ifdef DM_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#ifdef DM_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_wait0() {
#ifdef DM_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
/* shared-memory writes of the generic proxy (st.shared, cp.async) made visible
 * to the async proxy that wgmma reads through */
__device__ __forceinline__ void fence_async_smem() {
#ifdef DM_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/* Element offset of chunk c (8 elements along K) of row r in a K-major tile whose
 * rows hold KE elements, laid out as 8 x 16-byte core matrices: row blocks of 8
 * outer, K chunks inner, 64 elements per core matrix. */
template <int KE> __device__ __forceinline__ int cm_off(int r, int c) { return ((r >> 3) * (KE / 8) + c) * 64 + (r & 7) * 8; }

/* The descriptor of a K-major, no-swizzle operand at p: LBO (the next core matrix
 * along K) 128 bytes, SBO (the next 8 rows) sbo bytes. */
__device__ __forceinline__ uint64_t gmma_desc(const void *p, uint32_t sbo) {
    const uint64_t a = smem_addr(p);
    return ((a & 0x3FFFFull) >> 4) | ((uint64_t)(128u >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32);
}

template <typename T, int D>
__global__ void __launch_bounds__(WNT) attn_fwd_wgmma_kernel(const FwdArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);  /* [WBQ][D] core-matrix K-major */
    T *sK = sQ + WBQ * D;                 /* [2][WBK][D] core-matrix K-major */
    T *sV = sK + 2 * WBK * D;             /* [2][WBK][D] row-major, swizzled (swz<D>) */
    T *sVt = sV + 2 * WBK * D;            /* [D][WBK] core-matrix K-major (K = keys) */
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sVt + D * WBK); /* [WBQ] thresholds */
    int *sIdx = reinterpret_cast<int *>(sT + WBQ);
    int *sRlo = sIdx + 2 * WBK;
    int *sRhi = sRlo + 2 * WBK;
    float *sZ = reinterpret_cast<float *>(sRhi + 2 * WBK);
    int *sFull = reinterpret_cast<int *>(sZ + 2 * WBK); /* [2][2]: per stage, per loading warp */

    const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int hkv = h / a.G;
    const int i0 = tile * WBQ;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
    const KeyPos kp = {a.off, a.kmul, a.kadd, a.causal, a.window};

    int nkeys, kstart = 0;
    const int *lst = nullptr;
    const int nrows = min(WBQ, a.Nq - i0);
    if (a.tkey) {
        if (tid < WBQ) sT[tid] = tid < nrows ? a.tkey[((size_t)b * a.Hkv + hkv) * a.Nq + i0 + tid] : ~0ULL;
        __syncthreads();
    }
    if (a.list) {
        size_t u = ((size_t)b * a.Hkv + hkv) * a.ntiles + tile;
        nkeys = a.list_len[u];
        lst = a.list + u * a.cap;
    } else {
        tile_key_range(kp, a.Nk, i0, nrows, &kstart, &nkeys);
    }

    const T *qb = static_cast<const T *>(a.q) + b * a.qsb + h * a.qsh;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    const float *zrow = a.z ? a.z + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr;

    constexpr int CH = D / 8;
    for (int c = tid; c < WBQ * CH; c += WNT) {
        const int r = c / CH, ch = c % CH, i = i0 + r;
        const bool ok = i < a.Nq;
        cp16(sQ + cm_off<D>(r, ch), qb + (long long)(ok ? i : 0) * a.qss + ch * 8, ok);
    }
    auto load_kv = [&](int stage, int c0) {
        {   /* key_slot_meta's work in every thread (a branch around it would make ptxas
             * serialise the wgmmas), stored by the first WBK threads only */
            const int slot = tid & (WBK - 1), pos = c0 + slot;
            int j = -1, rl = INT_MAX, rh = -1;
            float zz = 0.f;
            if (pos < nkeys) {
                j = lst ? lst[pos] : kstart + pos;
                key_rows(kp, j, a.tkey ? sT : nullptr, a.tkey ? dma_key(zrow[j], j) : 0ULL, i0, nrows, &rl, &rh);
                if (zrow) zz = zrow[j] * LOG2E;
            }
            const bool full = j >= 0 && rl <= i0 && rh >= i0 + nrows - 1;
            const unsigned bal = __ballot_sync(0xffffffff, full);
            if (tid < WBK) {
                sIdx[stage * WBK + slot] = j, sRlo[stage * WBK + slot] = rl, sRhi[stage * WBK + slot] = rh;
                sZ[stage * WBK + slot] = zz;
                if ((slot & 31) == 0) sFull[stage * 2 + (slot >> 5)] = bal == 0xffffffffu;
            }
        }
        for (int c = tid; c < WBK * CH; c += WNT) {
            const int r = c / CH, ch = c % CH, pos = c0 + r;
            const bool ok = pos < nkeys;
            const int j = ok ? (lst ? lst[pos] : kstart + pos) : 0;
            cp16(sK + stage * WBK * D + cm_off<D>(r, ch), kb + (long long)j * a.kss + ch * 8, ok);
            cp16(sV + stage * WBK * D + swz<D>(r, ch), vb + (long long)j * a.vss + ch * 8, ok);
        }
    };

    const int nblocks = (nkeys + WBK - 1) / WBK;
    if (nblocks > 0) load_kv(0, 0);
    cp_commit();

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float o[D / 2]; /* m64nD accumulators: o[4 t + e] is n8 block t, element e */
#pragma unroll
    for (int x = 0; x < D / 2; x++) o[x] = 0.f;
    const int wrow = warp * 16;
    const uint64_t dq0 = gmma_desc(sQ + cm_off<D>(wg * 64, 0), D * 16);

    for (int kbk = 0; kbk < nblocks; kbk++) {
        const int st = kbk & 1;
        if (kbk + 1 < nblocks) load_kv(st ^ 1, (kbk + 1) * WBK);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        /* V^T of this block: 8 x 8 blocks (keys kb, head dims db) through ldmatrix.trans */
        {
            const T *sVs = sV + st * WBK * D;
            constexpr int NBLK = (WBK / 8) * (D / 8);
#pragma unroll
            for (int it = 0; it < NBLK / 32; it++) {
                const int q = lane >> 3, blk = (warp * (NBLK / 32) + it) * 4 + q;
                const int kbl = blk / (D / 8), dbl = blk % (D / 8);
                uint32_t r4[4];
                ldsm_x4_t(r4, sVs + swz<D>(kbl * 8 + (lane & 7), dbl));
#pragma unroll
                for (int qq = 0; qq < 4; qq++) {
                    const int bq = (warp * (NBLK / 32) + it) * 4 + qq;
                    const int kq = bq / (D / 8), dq = bq % (D / 8);
                    *reinterpret_cast<uint32_t *>(sVt + cm_off<WBK>(dq * 8 + (lane >> 2), kq) + (lane & 3) * 2) = r4[qq];
                }
            }
        }
        fence_async_smem();
        __syncthreads();

        /* S = Q K^T for the warpgroup's 64 rows x 64 keys */
        float s[WBK / 8][4];
        float(&sf)[WBK / 2] = reinterpret_cast<float(&)[WBK / 2]>(s);
        const T *sKs = sK + st * WBK * D;
        wg_fence();
        wgmma_ss0<T, WBK>(sf, dq0, gmma_desc(sKs, D * 16));
#pragma unroll
        for (int kk = 1; kk < D / 16; kk++)
            wgmma_ss<T, WBK>(sf, dq0 + (uint64_t)((kk * 2 * 128) >> 4), gmma_desc(sKs + cm_off<D>(0, 2 * kk), D * 16), 1);
        wg_commit();
        wg_wait0();

        /* scale, bias and mask; then the online softmax (cuda_attn.cu's, one m16 tile) */
        const bool full = sFull[st * 2] && sFull[st * 2 + 1];
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < WBK / 8; nt++)
#pragma unroll
            for (int e01 = 0; e01 < 2; e01++) {
                const int g = st * WBK + nt * 8 + (lane & 3) * 2 + e01;
                const float zb = a.z ? sZ[g] : 0.f;
                int j = 0, rl = 0, rh = 0;
                if (!full) j = sIdx[g], rl = sRlo[g], rh = sRhi[g];
                const int qa = i0 + wrow + (lane >> 2), qb8 = qa + 8;
                float v0 = s[nt][e01] * a.scale_log2 + zb, v1 = s[nt][e01 + 2] * a.scale_log2 + zb;
                if (!full) {
                    if (j < 0 || qa < rl || qa > rh) v0 = -INFINITY;
                    if (j < 0 || qb8 < rl || qb8 > rh) v1 = -INFINITY;
                }
                s[nt][e01] = v0;
                s[nt][e01 + 2] = v1;
                mx[0] = fmaxf(mx[0], v0);
                mx[1] = fmaxf(mx[1], v1);
            }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float x = mx[r];
            x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
            x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
            const float mnew = fmaxf(m[r], x);
            alpha[r] = mnew == -INFINITY ? 1.f : fast_exp2(m[r] - mnew);
            m[r] = mnew;
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int nt = 0; nt < WBK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float mr = m[e >> 1];
                const float pv = mr == -INFINITY ? 0.f : fast_exp2(s[nt][e] - mr);
                s[nt][e] = pv;
                l[e >> 1] += pv;
            }
#pragma unroll
        for (int t = 0; t < D / 8; t++) {
            o[4 * t + 0] *= alpha[0], o[4 * t + 1] *= alpha[0];
            o[4 * t + 2] *= alpha[1], o[4 * t + 3] *= alpha[1];
        }

        /* O += P V: every A fragment first, so that one fence covers them */
        uint32_t pf[WBK / 16][4];
#pragma unroll
        for (int kk = 0; kk < WBK / 16; kk++) acc_to_a<T>(s, kk, pf[kk]);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < WBK / 16; kk++) wgmma_rs<T, D>(o, pf[kk], gmma_desc(sVt + cm_off<WBK>(0, 2 * kk), WBK * 16));
        wg_commit();
        wg_wait0();
        __syncthreads();
    }
    cp_wait<0>();

    /* finish: full row sums, normalise, write O and the natural-log lse (the
     * accumulators are read outside the row check: a read of them on a divergent
     * path makes ptxas serialise the wgmmas) */
    T *ob = static_cast<T *>(a.o) + b * a.osb + h * a.osh;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = l[r];
        lr += __shfl_xor_sync(0xffffffff, lr, 1);
        lr += __shfl_xor_sync(0xffffffff, lr, 2);
        const int q = i0 + wrow + (lane >> 2) + 8 * r;
        const float inv = lr > 0.f ? 1.f / lr : 0.f;
        uint32_t packed[D / 8];
#pragma unroll
        for (int t = 0; t < D / 8; t++) packed[t] = pack2<T>::from(o[4 * t + 2 * r] * inv, o[4 * t + 2 * r + 1] * inv);
        if (q >= a.Nq) continue;
        T *orow = ob + (long long)q * a.oss;
#pragma unroll
        for (int t = 0; t < D / 8; t++) *reinterpret_cast<uint32_t *>(orow + t * 8 + (lane & 3) * 2) = packed[t];
        if ((lane & 3) == 0)
            a.lse[((size_t)b * a.Hq + h) * a.Nq + q] = lr > 0.f ? (m[r] + log2f(lr)) * 0.6931471805599453f : -INFINITY;
    }
}

template <typename T, int D> attn_status launch_wgmma(const FwdArgs &a) {
    const size_t smem = (size_t)(WBQ * D + 5 * WBK * D) * sizeof(T) + WBQ * 8 + 8 * WBK * sizeof(int) + 4 * sizeof(int);
    auto kern = attn_fwd_wgmma_kernel<T, D>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(a.ntiles, a.Hq, a.B);
    kern<<<grid, WNT, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

} // namespace

bool fwd_wgmma_enabled() {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("DMABENCH_CUDA_WGMMA");
        int dev = 0, major = 0;
        on = e && !strcmp(e, "1") && cudaGetDevice(&dev) == cudaSuccess &&
             cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9;
        cudaGetLastError();
    }
    return on == 1;
}

attn_status launch_fwd_wgmma(const FwdArgs &a, int D, attn_dtype dt) {
    if (dt != ATTN_DTYPE_BF16 && dt != ATTN_DTYPE_F16) return ATTN_ERR_UNSUPPORTED;
    const bool bf = dt == ATTN_DTYPE_BF16;
    if (D == 64) return bf ? launch_wgmma<__nv_bfloat16, 64>(a) : launch_wgmma<__half, 64>(a);
    if (D == 128) return bf ? launch_wgmma<__nv_bfloat16, 128>(a) : launch_wgmma<__half, 128>(a);
    return ATTN_ERR_UNSUPPORTED;
}

} // namespace dm
