/*
 * cuda_attn_wgmma.cu: the CUDA attention engine's forward on Hopper's warpgroup
 * MMA (wgmma) on sm_90 devices: fw1, the default there for dma's training forward
 * (the one that writes O's residual) and for every forward with
 * DMABENCH_CUDA_FWD_WS=1 (=0: never), its rows by multicast tensor-memory boxes
 * where a cluster of two heads applies (TM, below); fw2 behind
 * DMABENCH_CUDA_WGMMA=1. Other forwards run cuda_attn.cu's mma.sync kernel.
 *
 * One CTA of 2 consumer warpgroups (8 warps) per (query tile of 128, query head,
 * batch): warpgroup g owns rows 64g..64g+63, warp w of the CTA rows 16w..16w+15, as
 * in cuda_attn.cu with one m16 tile per warp, so the masks, the online softmax and
 * the output are that kernel's. Per block of 64 keys:
 *   S = Q K^T: wgmma m64n64k16 with both operands in shared memory (D / 16 steps);
 *   O += P V:  wgmma m64nDk16 with P from registers (the S accumulators, rounded:
 *              the wgmma accumulator layout per warp is mma.sync's m16n8 one) and
 *              V in shared memory read N-major (BK / 16 steps); for dma's saved
 *              area also O += P_lo V, P's low half (O's rounding residual).
 * Shared memory holds Q, K and V in the canonical no-swizzle layout: core matrices
 * of 8 rows x 16 bytes, 128 contiguous bytes each, the D direction's core matrices
 * adjacent (128 B) and the row direction's D / 8 apart. Q and K are read K-major,
 * V N-major (8 keys a core matrix, the next 8 keys D * 16 bytes on). All three go
 * there straight from global memory (cp.async); the writes reach the async proxy
 * through fence.proxy.async before the barrier or mbarrier that precedes the wgmmas.
 */
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda.h>

#include "cuda_attn.h"
#include "cuda_attn_fwd.cuh"
#include "cuda_attn_keys.cuh"
#include "cuda_common.cuh"
#include "cuda_mma.cuh"
#include "cuda_rt.h"
#include "cuda_wgmma.cuh"

namespace dm {
namespace {

constexpr int WBQ = CUDA_ATTN_BQ; /* 128 query rows per CTA */
constexpr int WBK = 64;           /* keys per block */
constexpr int WNT = 256;          /* 2 warpgroups */

/* The CTA's tile and head (tile_head's order; clusters of cl heads), and
 * its keys (tile_keys: a range or the variant's list, and the rows' thresholds in
 * sT), as both kernels take them. By every thread (tile_keys has a barrier). */
struct WgTile {
    int tile, h, b, hkv, i0, nrows, nkeys, kstart;
    const int *lst;
    KeyPos kp;
};
__device__ __forceinline__ WgTile wg_tile(const FwdArgs &a, unsigned long long *sT, int heads_first, int cl) {
    WgTile t;
    tile_head(heads_first, cl, &t.tile, &t.h);
    t.b = blockIdx.z;
    t.hkv = t.h / a.G;
    t.i0 = t.tile * WBQ;
    t.kp = {a.off, a.kmul, a.kadd, a.causal, a.window};
    t.nrows = min(WBQ, a.Nq - t.i0);
    tile_keys<WBQ>(t.kp, a.Nk, a.Nq, a.Hkv, t.b, t.hkv, t.i0, t.nrows, a.tkey, sT, a.list, a.list_len, a.cap,
                   ((size_t)t.b * a.Hkv + t.hkv) * a.ntiles + t.tile, &t.kstart, &t.nkeys, &t.lst);
    return t;
}

/* The tile's Q rows (from qb, the head's row 0) into sQ, core-matrix K-major, by
 * the two warpgroups' 256 threads (cp.async; rows past Nq zero-filled) */
template <typename T, int D>
__device__ __forceinline__ void wg_load_q(T *sQ, const T *qb, const FwdArgs &a, int i0, int tid) {
    constexpr int CH = D / 8;
    for (int c = tid; c < WBQ * CH; c += WNT) {
        const int r = c / CH, ch = c % CH, i = i0 + r;
        const bool ok = i < a.Nq;
        cp16(sQ + cm_off<D>(r, ch), qb + (long long)(ok ? i : 0) * a.qss + ch * 8, ok);
    }
}

/* S = Q K^T for the warpgroup's 64 rows x 64 keys (Q's descriptor dq0, the stage's
 * K at sKs), both K-major in shared memory: issued into the current commit group */
template <typename T, int D>
__device__ __forceinline__ void wg_scores_issue(float (&sf)[WBK / 2], uint64_t dq0, const T *sKs) {
    wgmma_ss0<T, WBK>(sf, dq0, gmma_desc(sKs, D * 16));
#pragma unroll
    for (int kk = 1; kk < D / 16; kk++)
        wgmma_ss<T, WBK>(sf, dq0 + (uint64_t)((kk * 2 * 128) >> 4), gmma_desc(sKs + cm_off<D>(0, 2 * kk), D * 16), 1);
}
/* the same with the stage's K in the 128-byte swizzle (fw1's TM: [D / 64 halves][WBK
 * rows][64], each half 1024-byte aligned): a k-step 32 bytes along the row, SBO the
 * next 8 rows (1024 bytes) */
template <typename T, int D>
__device__ __forceinline__ void wg_scores_issue_sw(float (&sf)[WBK / 2], uint64_t dq0, const T *sKs) {
    wgmma_ss0<T, WBK>(sf, dq0, gmma_desc_sw128(sKs, 16, 1024));
#pragma unroll
    for (int kk = 1; kk < D / 16; kk++)
        wgmma_ss<T, WBK>(sf, dq0 + (uint64_t)((kk * 2 * 128) >> 4),
                         gmma_desc_sw128(sKs + (kk / 4) * WBK * 64 + (kk % 4) * 16, 16, 1024), 1);
}
/* the same, alone in its group, waited for (SW: K in the 128-byte swizzle) */
template <typename T, int D, bool SW = false>
__device__ __forceinline__ void wg_scores(float (&sf)[WBK / 2], uint64_t dq0, const T *sKs) {
    wg_fence();
    if constexpr (SW) wg_scores_issue_sw<T, D>(sf, dq0, sKs);
    else wg_scores_issue<T, D>(sf, dq0, sKs);
    wg_commit();
    wg_wait0();
}

/* A warp's 16 rows (qa and qa + 8) of one 64-key block (stage g0 = stage * WBK of
 * the key slots), as cuda_attn.cu's fwd_softmax does them for its m16 tiles: HASZ:
 * scale and z bias, MASK: the slots' row intervals (a slot past the list's end has
 * an empty one), then the online softmax: s becomes P, and where some row's block
 * max exceeds its running max m by more than FWD_TAU, m moves up and that row's l
 * is rescaled by alpha. Returns (the same in every lane of the warp) whether some
 * row's alpha is not 1: O is then to be rescaled by the caller (wg_rescale), which
 * so may wait for a product still adding into O. Without z the max is taken on the
 * raw scores and the scale folds into the exponent's FFMA. The callers instantiate
 * MASK both ways, so that blocks every row keeps in full read no metadata. */
template <bool MASK, bool HASZ>
__device__ __forceinline__ bool wg_softmax_p(float (&s)[WBK / 8][4], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                             float scale_log2, const int *sRlo, const int *sRhi, const float *sZ,
                                             int g0, int qa, int lane) {
    float mx[2] = {-INFINITY, -INFINITY};
    const int qb8 = qa + 8;
#pragma unroll
    for (int nt = 0; nt < WBK / 8; nt++)
#pragma unroll
        for (int e01 = 0; e01 < 2; e01++) {
            const int g = g0 + nt * 8 + (lane & 3) * 2 + e01;
            float v0 = s[nt][e01], v1 = s[nt][e01 + 2];
            if constexpr (HASZ) {
                const float zb = sZ[g];
                v0 = v0 * scale_log2 + zb, v1 = v1 * scale_log2 + zb;
            }
            if constexpr (MASK) {
                const int rl = sRlo[g], rh = sRhi[g];
                if (qa < rl || qa > rh) v0 = -INFINITY;
                if (qb8 < rl || qb8 > rh) v1 = -INFINITY;
            }
            s[nt][e01] = v0;
            s[nt][e01 + 2] = v1;
            mx[0] = fmaxf(mx[0], v0);
            mx[1] = fmaxf(mx[1], v1);
        }
    bool grow = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float x = mx[r];
        x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
        mx[r] = HASZ ? x : x * scale_log2; /* -inf stays -inf */
        grow |= mx[r] > m[r] + FWD_TAU;
    }
    alpha[0] = alpha[1] = 1.f;
    const bool any = __any_sync(0xffffffff, grow);
    if (any) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const bool up = mx[r] > m[r] + FWD_TAU;
            alpha[r] = up ? fast_exp2(m[r] - mx[r]) : 1.f; /* m = -inf: 0 */
            m[r] = up ? mx[r] : m[r];
            l[r] *= alpha[r];
        }
    }
    /* a row with no key yet keeps m = -inf: subtract 0 instead, so that its -inf
     * scores give 0 without a test per element */
    const float mb0 = m[0] == -INFINITY ? 0.f : m[0], mb1 = m[1] == -INFINITY ? 0.f : m[1];
#pragma unroll
    for (int nt = 0; nt < WBK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float mb = e < 2 ? mb0 : mb1;
            const float pv = fast_exp2(HASZ ? s[nt][e] - mb : s[nt][e] * scale_log2 - mb);
            s[nt][e] = pv;
            l[e >> 1] += pv;
        }
    return any;
}
/* O's rows (m64nD accumulators, o[4 t + e]: n8 block t, element e) times alpha */
template <int D> __device__ __forceinline__ void wg_rescale(float (&o)[D / 2], const float (&alpha)[2]) {
#pragma unroll
    for (int t = 0; t < D / 8; t++) {
        o[4 * t + 0] *= alpha[0], o[4 * t + 1] *= alpha[0];
        o[4 * t + 2] *= alpha[1], o[4 * t + 3] *= alpha[1];
    }
}
/* wg_softmax_p with O rescaled at once (no product adds into O meanwhile) */
template <bool MASK, bool HASZ, int D>
__device__ __forceinline__ void wg_softmax(float (&s)[WBK / 8][4], float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                           float scale_log2, const int *sRlo, const int *sRhi, const float *sZ, int g0,
                                           int qa, int lane) {
    float alpha[2];
    if (wg_softmax_p<MASK, HASZ>(s, m, l, alpha, scale_log2, sRlo, sRhi, sZ, g0, qa, lane)) wg_rescale<D>(o, alpha);
}
/* wg_softmax with the block's mask chosen at run time (full: every row keeps every
 * slot's key, so none) */
template <bool HASZ, int D>
__device__ __forceinline__ void wg_softmax_block(float (&s)[WBK / 8][4], float (&o)[D / 2], float (&m)[2],
                                                 float (&l)[2], float scale_log2, const int *sRlo, const int *sRhi,
                                                 const float *sZ, int g0, bool full, int qa, int lane) {
    if (full) wg_softmax<false, HASZ, D>(s, o, m, l, scale_log2, sRlo, sRhi, sZ, g0, qa, lane);
    else wg_softmax<true, HASZ, D>(s, o, m, l, scale_log2, sRlo, sRhi, sZ, g0, qa, lane);
}

/* The finish of a warp's 16 rows (wrow ..): full row sums, normalise, write O (RES:
 * and its rounding residual, bf16 (B, Nq, Hq, D)) and the natural-log lse. The
 * accumulators are read outside the row check: a read of them on a divergent path
 * makes ptxas serialise the wgmmas. */
template <typename T, int D, bool RES>
__device__ __forceinline__ void wg_finish(const float (&o)[D / 2], const float (&m)[2], const float (&l)[2],
                                          const FwdArgs &a, int b, int h, int i0, int wrow, int lane) {
    T *ob = static_cast<T *>(a.o) + b * a.osb + h * a.osh;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lr = l[r];
        lr += __shfl_xor_sync(0xffffffff, lr, 1);
        lr += __shfl_xor_sync(0xffffffff, lr, 2);
        const int q = i0 + wrow + (lane >> 2) + 8 * r;
        const float inv = lr > 0.f ? 1.f / lr : 0.f;
        uint32_t packed[D / 8], resid[RES ? D / 8 : 1];
#pragma unroll
        for (int t = 0; t < D / 8; t++) {
            const float o0 = o[4 * t + 2 * r] * inv, o1 = o[4 * t + 2 * r + 1] * inv;
            packed[t] = pack2<T>::from(o0, o1);
            if constexpr (RES) {
                const float2 rd = pack2<T>::to(packed[t]);
                resid[t] = pack2<__nv_bfloat16>::from(o0 - rd.x, o1 - rd.y);
            }
        }
        if (q >= a.Nq) continue;
        T *orow = ob + (long long)q * a.oss;
#pragma unroll
        for (int t = 0; t < D / 8; t++) *reinterpret_cast<uint32_t *>(orow + t * 8 + (lane & 3) * 2) = packed[t];
        if constexpr (RES) {
            __nv_bfloat16 *rrow = static_cast<__nv_bfloat16 *>(a.ores) + (((size_t)b * a.Nq + q) * a.Hq + h) * D;
#pragma unroll
            for (int t = 0; t < D / 8; t++) *reinterpret_cast<uint32_t *>(rrow + t * 8 + (lane & 3) * 2) = resid[t];
        }
        if ((lane & 3) == 0)
            a.lse[((size_t)b * a.Hq + h) * a.Nq + q] = lr > 0.f ? (m[r] + log2f(lr)) * 0.6931471805599453f : -INFINITY;
    }
}

/* The stage's P V (o += P V, RES: and the low half's) issued, into the current
 * commit group; pf and pl are read asynchronously until the group is waited for */
template <typename T, int D, bool RES, bool SW = false>
__device__ __forceinline__ void fw_pv(float (&o)[D / 2], const uint32_t (&pf)[WBK / 16][4],
                                      const uint32_t (&pl)[WBK / 16][RES ? 4 : 1], const T *sVs) {
#pragma unroll
    for (int kk = 0; kk < WBK / 16; kk++) {
        /* SW: V in the 128-byte swizzle as K above, read N-major: 16 keys a k-step, LBO
         * the next 64 of D (a half, WBK rows of 128 bytes), SBO the next 8 keys */
        const uint64_t dv = SW ? gmma_desc_sw128(sVs + kk * 16 * 64, WBK * 128, 1024)
                               : gmma_desc_mn(sVs + cm_off<D>(16 * kk, 0), D * 16, 128);
        wgmma_rs_mn<T, D>(o, pf[kk], dv);
        if constexpr (RES) wgmma_rs_mn<T, D>(o, pl[kk], dv);
    }
}

/* S's accumulators, now P, as A fragments (RES: and the low halves) */
template <typename T, bool RES>
__device__ __forceinline__ void fw_frags(const float (&s)[WBK / 8][4], uint32_t (&pf)[WBK / 16][4],
                                         uint32_t (&pl)[WBK / 16][RES ? 4 : 1]) {
#pragma unroll
    for (int kk = 0; kk < WBK / 16; kk++) {
        acc_to_a<T>(s, kk, pf[kk]);
        if constexpr (RES) acc_to_a_lo<T, WBK / 8>(s, kk, pf[kk], pl[kk]);
    }
}

/* fw2's stages of K and V: block j in stage j % W2S. While block j's S and block
 * j - 1's P V run, stage (j - 1) % W2S is read and block j + 1 has landed or is
 * landing; block j + 2's copies go into the fourth, last read by block j - 2's
 * P V, which every warp waited for before block j's barrier. */
constexpr int W2S = 4;

template <int D> constexpr size_t w2_smem(size_t esize) {
    return (size_t)(WBQ * D + 2 * W2S * WBK * D) * esize + WBQ * 8 + W2S * WBK * 4 * sizeof(int) +
           W2S * 2 * sizeof(int);
}

/* fw2 (DMABENCH_CUDA_WGMMA=1): the tile on two warpgroups that also gather their own
 * keys. Per block j, after one barrier (block j's copies landed in every thread):
 * S_j = Q K_j^T and O += P_{j-1} V_{j-1} (RES: and the low half's) issued as two
 * commit groups, then block j + 2's metadata and K/V copies (all 256 threads), then
 * S_j waited for and its softmax formed while P_{j-1} V_{j-1} still runs; O's rescale,
 * where some row needs one, waits for it. K and V stay in the core-matrix layout,
 * V read N-major (fw1's P V), so no transpose and no second barrier. */
template <typename T, int D, bool HASZ, bool RES>
__global__ void __launch_bounds__(WNT, 1) attn_fwd_wgmma_kernel(const FwdArgs a) {
    static_assert(HASZ || !RES, "fw2: O's residual is dma's");
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem); /* [WBQ][D] core-matrix K-major */
    T *sK = sQ + WBQ * D;                /* [W2S][WBK][D] core-matrix */
    T *sV = sK + W2S * WBK * D;          /* [W2S][WBK][D] core-matrix, read N-major */
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sV + W2S * WBK * D); /* [WBQ] thresholds */
    int *sIdx = reinterpret_cast<int *>(sT + WBQ); /* [W2S][WBK] each */
    int *sRlo = sIdx + W2S * WBK;
    int *sRhi = sRlo + W2S * WBK;
    float *sZ = reinterpret_cast<float *>(sRhi + W2S * WBK);
    int *sFull = reinterpret_cast<int *>(sZ + W2S * WBK); /* [W2S][2] */

    const WgTile t = wg_tile(a, sT, 0, 1);
    const int h = t.h, b = t.b, hkv = t.hkv, i0 = t.i0, nrows = t.nrows, nkeys = t.nkeys, kstart = t.kstart;
    const int *lst = t.lst;
    const KeyPos kp = t.kp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;

    const T *qb = static_cast<const T *>(a.q) + b * a.qsb + h * a.qsh;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    const float *zrow = HASZ && a.z ? a.z + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr;
    auto load_kv = [&](int stage, int c0) {
        key_slot_meta_all<WBK>(kp, tid, c0, nkeys, lst, kstart, a.tkey ? sT : nullptr, zrow, i0, nrows,
                               sIdx + stage * WBK, sRlo + stage * WBK, sRhi + stage * WBK, sZ + stage * WBK,
                               sFull + stage * 2);
        load_key_rows<T, D, WBK, WNT, true, true>(sK + stage * WBK * D, sV + stage * WBK * D, kb, vb, a.kss, a.vss,
                                                  c0, nkeys, lst, kstart, tid);
    };

    const int nblocks = (nkeys + WBK - 1) / WBK;
    wg_load_q<T, D>(sQ, qb, a, i0, tid);
    if (nblocks > 0) load_kv(0, 0);
    cp_commit(); /* Q and block 0 */
    if (nblocks > 1) load_kv(1, WBK);
    cp_commit(); /* block 1 */

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float o[D / 2]; /* m64nD accumulators: o[4 t + e] is n8 block t, element e */
#pragma unroll
    for (int x = 0; x < D / 2; x++) o[x] = 0.f;
    const int wrow = warp * 16;
    const int qa = i0 + wrow + (lane >> 2);
    const uint64_t dq0 = gmma_desc(sQ + cm_off<D>(wg * 64, 0), D * 16);
    float s[WBK / 8][4];
    float(&sf)[WBK / 2] = reinterpret_cast<float(&)[WBK / 2]>(s);
    uint32_t pf[WBK / 16][4], pl[WBK / 16][RES ? 4 : 1]; /* P_{j-1} (RES: and its low half) as A fragments */

    /* block j's start: its copies landed in every thread, every warp past block j - 2's
     * P V (the stage block j + 2 refills) */
    auto block_ready = [&]() {
        cp_wait<1>(); /* this thread's copies of block j (the group before the newest) */
        fence_async_smem();
        __syncthreads();
    };
    /* S_j waited for: its softmax; O's rescale (where needed) after wait_o */
    auto softmax_block = [&](int st, auto wait_o) {
        float alpha[2];
        const bool full = sFull[st * 2] && sFull[st * 2 + 1];
        const bool up = full ? wg_softmax_p<false, HASZ>(s, m, l, alpha, a.scale_log2, sRlo, sRhi, sZ, st * WBK, qa, lane)
                             : wg_softmax_p<true, HASZ>(s, m, l, alpha, a.scale_log2, sRlo, sRhi, sZ, st * WBK, qa, lane);
        wait_o();
        if (up) wg_rescale<D>(o, alpha);
        fw_frags<T, RES>(s, pf, pl);
    };
    if (nblocks > 0) { /* block 0: no P V before it */
        block_ready();
        wg_fence();
        wg_scores_issue<T, D>(sf, dq0, sK);
        wg_commit();
        if (2 < nblocks) load_kv(2 % W2S, 2 * WBK);
        cp_commit();
        wg_wait0();
        softmax_block(0, [] {});
    }
    for (int kbk = 1; kbk < nblocks; kbk++) {
        const int st = kbk % W2S;
        block_ready();
        wg_fence();
        wg_scores_issue<T, D>(sf, dq0, sK + st * WBK * D);
        wg_commit();
        fw_pv<T, D, RES>(o, pf, pl, sV + ((kbk - 1) % W2S) * WBK * D);
        wg_commit();
        if (kbk + 2 < nblocks) load_kv((kbk + 2) % W2S, (kbk + 2) * WBK);
        cp_commit();
        wg_wait1(); /* S_j; P_{j-1} V_{j-1} may still run under the softmax */
        softmax_block(st, [] { wg_wait0(); });
    }
    if (nblocks > 0) {
        wg_fence();
        fw_pv<T, D, RES>(o, pf, pl, sV + ((nblocks - 1) % W2S) * WBK * D);
        wg_commit();
        wg_wait0();
    }
    cp_wait<0>();

    wg_finish<T, D, RES>(o, m, l, a, b, h, i0, wrow, lane);
}

/* fw1 (fwd_ws_for): the same tile warp-specialised. 384 threads: two
 * consumer warpgroups (rows 64 g .. + 63, as above) and a producer warpgroup that
 * walks the tile's keys: per block it waits for a free stage of FNS, forms the key
 * slots' metadata and gathers the K and V rows with cp.async (both in the
 * core-matrix layout), and signals the stage's "full" mbarrier (each producer thread
 * once with release for its metadata stores, once when its copies land). Each
 * producer thread reads the list entries of the next block's rows it copies (and
 * of the slot whose metadata it forms) while it fills this block's stage, into
 * registers, and that slot's z after the copies, so that no global load is waited
 * for in the block that issues it (with the entries in local memory and z read
 * after them, the consumers waited for "full" 24% of their time: thirty-fifth
 * set). Where dma's plan wrote each entry's rows and bias (list_rows, list_zl),
 * the slot's metadata is three loads by position instead of a search over the
 * tile's thresholds and z read by key (0.674 -> 0.612 ms at 8192, thirty-sixth
 * set). The consumers take the stages in turn with no
 * barrier between them, so the two warpgroups drift apart and one's softmax runs
 * under the other's products: S = Q K^T as above, the softmax (without a mask in
 * blocks the whole tile keeps; HASZ: with z), O += P V with V read N-major straight
 * from its rows (the backward's dQ product reads K so), RES: and O += P_lo V (P's
 * low half, as cuda_attn.cu's residual kernel), then "empty" for the producer.
 * setmaxnreg moves the producer's registers to the consumers (224 and 56 of 168
 * each at launch). Selected before w1 where it applies; unlike w1 it writes O's
 * residual. */
constexpr int FNS = 3;   /* stages of K and V */
constexpr int FNT = 384; /* 2 consumer warpgroups + the producer */

/* TM (the default where the GQA group's size is even, the tensor maps encode and
 * the device holds a cluster of two; DMABENCH_CUDA_FWD_TMA=0: never): two heads of
 * a group run the tile as a cluster of two CTAs (their keys are the kv head's: the
 * same). Each CTA's producer issues the tensor-memory boxes of half the block's
 * rows (a 64 x 1 box per half row of K and of V, lanes 0-7 of each producer warp a
 * row each) multicast into both, into the 128-byte swizzle, and thread 0 arms the
 * stage's "full" barrier with the block's bytes; a stage is refilled once both
 * CTAs' consumers have released it (each consumer warp's lane 0 arrives on the
 * peer's "empty" too, for the blocks whose stage is refilled, so that every
 * arrival is waited for). The release and the producer's wait are at CTA scope, as
 * CUTLASS's cluster pipelines': at cluster scope they cost a MEMBAR.ALL.GPU a block
 * per consumer warp (16% of the stall samples) and dma's forward 0.6065 against
 * 0.5766 ms at 8192 (thirty-sixth and thirty-seventh sets). The consumers read K
 * and V through swizzled descriptors. */
struct FwMaps {
    CUtensorMap k, v;
};

template <int D> constexpr size_t fw_smem(size_t esize, bool tm) {
    return (size_t)(WBQ * D + 2 * FNS * WBK * D) * esize + WBQ * 8 + FNS * WBK * 4 * sizeof(int) +
           FNS * 2 * sizeof(int) + 8 /* alignment of the mbarriers */ + 2 * FNS * sizeof(uint64_t) +
           (tm ? 1024 : 0) /* TM: the base aligned to 1024 bytes for the swizzle */;
}

template <typename T, int D, bool HASZ, bool RES, bool TM>
__global__ void __launch_bounds__(FNT, 1) attn_fwd_ws_kernel(const FwdArgs a, const __grid_constant__ FwMaps tm) {
    static_assert(HASZ || !RES, "fw1: O's residual is dma's");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    unsigned char *smem = TM ? align_sw128(smem_raw) : smem_raw;
    T *sQ = reinterpret_cast<T *>(smem); /* [WBQ][D] core-matrix K-major */
    T *sK = sQ + WBQ * D;                /* [FNS][WBK][D] core-matrix (TM: [FNS][D / 64][WBK][64] swizzled) */
    T *sV = sK + FNS * WBK * D;          /* [FNS][WBK][D] as K, read N-major */
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sV + FNS * WBK * D);
    int *sIdx = reinterpret_cast<int *>(sT + WBQ); /* [FNS][WBK] each */
    int *sRlo = sIdx + FNS * WBK;
    int *sRhi = sRlo + FNS * WBK;
    float *sZ = reinterpret_cast<float *>(sRhi + FNS * WBK);
    int *sFull = reinterpret_cast<int *>(sZ + FNS * WBK); /* [FNS][2] */
    uint64_t *bars = reinterpret_cast<uint64_t *>((reinterpret_cast<uintptr_t>(sFull + FNS * 2) + 7) & ~(uintptr_t)7);
    uint64_t *full = bars, *empty = bars + FNS;

    const WgTile t = wg_tile(a, sT, a.heads_first, TM ? 2 : 1);
    const int h = t.h, b = t.b, hkv = t.hkv, i0 = t.i0, nrows = t.nrows, nkeys = t.nkeys, kstart = t.kstart;
    const int *lst = t.lst;
    const KeyPos kp = t.kp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
    [[maybe_unused]] const uint32_t rank = TM ? cluster_rank() : 0;
    const int nblocks = (nkeys + WBK - 1) / WBK;
    if (tid < FNS) {
        /* each producer thread: its copies and its metadata (TM: its metadata, thread
         * 0's arrival arming the bytes); each consumer thread (TM: and each of the
         * peer's consumer warps) */
        mbar_init(full + tid, TM ? 128 : 2 * 128);
        mbar_init(empty + tid, TM ? 256 + 8 : 256);
        if constexpr (TM) {
            fence_async_smem();        /* the barriers, seen by the boxes' completions */
            fence_mbar_init_cluster(); /* and by the peer */
        }
    }
    if constexpr (TM) cluster_sync(); /* the peer's barriers initialised before any box or arrival */
    else __syncthreads();
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;

    if (tid >= 256) { /* the producer */
        setmaxnreg_dec<56>();
        /* Thread pt copies chunk pt % 16 of rows pt / 16 + 8 i (i < WBK / 8) of K and of V
         * (KeyRowCopy: a half warp a row, coalesced), and the first WBK threads (two whole
         * warps) form a slot's metadata each. Each thread loads the entries it needs
         * itself, one per row (the half warp's lanes read the same word), the next
         * block's while this block's copies go out, into registers indexed at compile
         * time: no local memory, no shuffles, and no load consumed in the block that
         * issues it (the z of the next block's slot comes after this block's copies).
         * TM: lanes 0-7 of producer warp w issue the boxes of rows 32 rank + 8 w + lane
         * instead, each loading its row's entry a block ahead. */
        const int pt = tid - 256;
        const bool meta = pt < WBK;
        const float *zrow = HASZ && a.z ? a.z + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr;
        /* dma's plan formed each list entry's rows and bias beside the list: the
         * metadata is then three loads by position, no search and no z by key */
        const int *mrows = lst && a.list_rows ? a.list_rows + 2 * (lst - a.list) : nullptr;
        const float *mzl = mrows ? a.list_zl + (lst - a.list) : nullptr;
        using C = KeyRowCopy<T, D, 128, true, true>;
        constexpr int RPI = C::RPI, PASS = TM ? 1 : WBK / RPI;
        static_assert(WBK % RPI == 0, "fw1: whole passes a block");
        const C c(sK, sV, kb, vb, pt);
        [[maybe_unused]] const int brow = (int)rank * (WBK / 2) + (pt >> 5) * 8 + (pt & 7); /* TM: the box row */
        [[maybe_unused]] const bool boxes = TM && (pt & 31) < 8;
        auto entry = [&](int pos) -> int { return pos < nkeys ? (lst ? lst[pos] : kstart + pos) : -1; };
        /* the slot's rows and bias from the plan (pos past the end: none) */
        auto given = [&](int pos, int &rl, int &rh, float &zl) {
            rl = INT_MAX, rh = -1, zl = 0.f;
            if (pos < nkeys) rl = mrows[2 * pos], rh = mrows[2 * pos + 1], zl = mzl[pos];
        };
        auto row_entries = [&](int c0, int (&e)[PASS]) {
            if constexpr (TM) e[0] = boxes ? entry(c0 + brow) : -1;
            else {
#pragma unroll
                for (int i = 0; i < PASS; i++) e[i] = entry(c0 + c.lrow + i * RPI);
            }
        };
        int ej[PASS], em = -1, mrl = INT_MAX, mrh = -1;
        float zm = 0.f;
        if (nblocks > 0) {
            row_entries(0, ej);
            if (meta) {
                em = entry(pt);
                if (mrows) given(pt, mrl, mrh, zm);
                else if (zrow && em >= 0) zm = zrow[em];
            }
        }
        for (int kbk = 0; kbk < nblocks; kbk++) {
            const int st = kbk % FNS, n = kbk / FNS;
            const bool next = kbk + 1 < nblocks;
            int ejn[PASS], emn = -1, nrl = INT_MAX, nrh = -1;
            float nzl = 0.f;
            if (next) {
                const int c1 = (kbk + 1) * WBK;
                row_entries(c1, ejn);
                if (meta) {
                    emn = entry(c1 + pt);
                    if (mrows) given(c1 + pt, nrl, nrh, nzl);
                }
            }
            if (n > 0) mbar_wait(empty + st, (n - 1) & 1); /* TM: both CTAs' consumers, at CTA scope */
            if (meta) {
                if (mrows)
                    key_slot_meta_given<WBK>(pt, em, mrl, mrh, zm, i0, nrows, sIdx + st * WBK, sRlo + st * WBK,
                                             sRhi + st * WBK, sZ + st * WBK, sFull + st * 2);
                else
                    key_slot_meta_all_at<WBK>(kp, pt, em, zm, a.tkey ? sT : nullptr, zrow != nullptr, i0, nrows,
                                              sIdx + st * WBK, sRlo + st * WBK, sRhi + st * WBK, sZ + st * WBK,
                                              sFull + st * 2);
            }
            if constexpr (TM) {
                if (pt == 0) mbar_expect_tx(full + st, 2 * WBK * D * sizeof(T)); /* its arrival, and the bytes */
                else mbar_arrive(full + st);
                if (boxes) {
                    const int j = ej[0] >= 0 ? ej[0] : a.Nk; /* past the list: a row out of the map, zeros */
                    T *dk = sK + st * WBK * D + brow * 64, *dv = sV + st * WBK * D + brow * 64;
#pragma unroll
                    for (int hf = 0; hf < D / 64; hf++) {
                        tma_row4_mc(dk + hf * WBK * 64, &tm.k, hf * 64, hkv, j, b, full + st, 3);
                        tma_row4_mc(dv + hf * WBK * 64, &tm.v, hf * 64, hkv, j, b, full + st, 3);
                    }
                }
            } else {
#pragma unroll
                for (int i = 0; i < PASS; i++) {
                    const bool ok = ej[i] >= 0;
                    const long long jj = ok ? ej[i] : 0;
                    cp16(c.kd + (st * WBK + i * RPI) * D, c.ks + jj * a.kss, ok);
                    cp16(c.vd + (st * WBK + i * RPI) * D, c.vs + jj * a.vss, ok);
                }
                mbar_arrive_cp_async(full + st);
                mbar_arrive(full + st);
            }
            if (next) {
#pragma unroll
                for (int i = 0; i < PASS; i++) ej[i] = ejn[i];
                em = emn;
                if (mrows) mrl = nrl, mrh = nrh, zm = nzl;
                else zm = meta && zrow && em >= 0 ? zrow[em] : 0.f;
            }
        }
        if constexpr (!TM) {
            cp_commit(); /* every copy landed before the warpgroup leaves */
            cp_wait<0>();
        }
        /* TM: this CTA's boxes into the peer landed before the peer's consumers got
         * past its last block; nothing is left in flight towards this CTA either */
        return;
    }
    setmaxnreg_inc<224>();

    const T *qb = static_cast<const T *>(a.q) + b * a.qsb + h * a.qsh;
    wg_load_q<T, D>(sQ, qb, a, i0, tid);
    cp_commit();
    cp_wait<0>();
    fence_async_smem();
    nb_sync(1, 256);

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float o[D / 2];
#pragma unroll
    for (int x = 0; x < D / 2; x++) o[x] = 0.f;
    const int wrow = warp * 16;
    const uint64_t dq0 = gmma_desc(sQ + cm_off<D>(wg * 64, 0), D * 16);
    const int qa = i0 + wrow + (lane >> 2);
    float s[WBK / 8][4];
    float(&sf)[WBK / 2] = reinterpret_cast<float(&)[WBK / 2]>(s);
    uint32_t pf[WBK / 16][4], pl[WBK / 16][RES ? 4 : 1];
    for (int kbk = 0; kbk < nblocks; kbk++) {
        const int st = kbk % FNS;
        mbar_wait(full + st, (kbk / FNS) & 1);
        fence_async_smem(); /* the producer's copies, seen by this thread's wgmmas */
        wg_scores<T, D, TM>(sf, dq0, sK + st * WBK * D);
        wg_softmax_block<HASZ, D>(s, o, m, l, a.scale_log2, sRlo, sRhi, sZ, st * WBK,
                                  sFull[st * 2] && sFull[st * 2 + 1], qa, lane);
        fw_frags<T, RES>(s, pf, pl);
        wg_fence();
        fw_pv<T, D, RES, TM>(o, pf, pl, sV + st * WBK * D);
        wg_commit();
        wg_wait0();
        fence_async_smem();
        mbar_arrive(empty + st);
        if constexpr (TM) { /* the peer refills this stage only after this warp, too, is past it */
            __syncwarp();
            if (lane == 0 && kbk + FNS < nblocks) mbar_arrive_remote(empty + st, rank ^ 1);
        }
    }
    wg_finish<T, D, RES>(o, m, l, a, b, h, i0, wrow, lane);
}

/* fw1's rows by multicast boxes where they apply (DMABENCH_CUDA_FWD_TMA=0: by
 * cp.async) */
bool fwd_tma_enabled() {
    static const bool on = !dm_env_is("DMABENCH_CUDA_FWD_TMA", "0");
    return on;
}

template <typename T, int D, bool TM> attn_status launch_ws_tm(const FwdArgs &a, const FwMaps &maps) {
    const size_t smem = fw_smem<D>(sizeof(T), TM);
    size_t optin = 0;
    if (dm_cuda_smem_optin(&optin) != ATTN_OK || smem > optin) return ATTN_ERR_UNSUPPORTED;
    auto kern = a.ores ? attn_fwd_ws_kernel<T, D, true, true, TM>
                       : (a.z ? attn_fwd_ws_kernel<T, D, true, false, TM> : attn_fwd_ws_kernel<T, D, false, false, TM>);
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid(a.ntiles, a.Hq, a.B);
    if constexpr (TM) {
        static const bool fits = dm_cluster_fits(kern, dim3(FNT), smem, 1, 2); /* none on a small partition */
        if (!fits) return ATTN_ERR_UNSUPPORTED;
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[1];
        dm_cluster_config(&cfg, at, grid, dim3(FNT), smem, 1, 2);
        CUDA_CHECK(cudaLaunchKernelEx(&cfg, kern, a, maps));
    } else {
        kern<<<grid, FNT, smem>>>(a, maps);
    }
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T, int D> attn_status launch_ws(const FwdArgs &a) {
    FwMaps maps{};
    if (fwd_tma_enabled() && a.G % 2 == 0 && dm_cuda_tmap_kv(&maps.k, a.k, a.ksb, a.kss, a.ksh, a.B, a.Nk, a.Hkv, D) == 0 &&
        dm_cuda_tmap_kv(&maps.v, a.v, a.vsb, a.vss, a.vsh, a.B, a.Nk, a.Hkv, D) == 0) {
        attn_status st = launch_ws_tm<T, D, true>(a, maps);
        if (st != ATTN_ERR_UNSUPPORTED) return st;
    }
    return launch_ws_tm<T, D, false>(a, maps);
}

template <typename T, int D> attn_status launch_wgmma(const FwdArgs &a) {
    const size_t smem = w2_smem<D>(sizeof(T));
    size_t optin = 0;
    if (dm_cuda_smem_optin(&optin) != ATTN_OK || smem > optin) return ATTN_ERR_UNSUPPORTED;
    auto kern = a.ores ? attn_fwd_wgmma_kernel<T, D, true, true>
                       : (a.z ? attn_fwd_wgmma_kernel<T, D, true, false> : attn_fwd_wgmma_kernel<T, D, false, false>);
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kern<<<dim3(a.ntiles, a.Hq, a.B), WNT, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

} // namespace

bool fwd_wgmma_enabled() {
    static const bool on = dm_env_is("DMABENCH_CUDA_WGMMA", "1") && dm_cuda_sm90();
    return on;
}

bool fwd_ws_for(bool ores, int D, attn_dtype dt) {
    if ((dt != ATTN_DTYPE_BF16 && dt != ATTN_DTYPE_F16) || (D != 64 && D != 128)) return false;
    /* 1: every forward, 0: none, -1 (unset): the forwards that write O's residual */
    static const int mode = !dm_cuda_sm90()                          ? 0
                            : dm_env_is("DMABENCH_CUDA_FWD_WS", "1") ? 1
                            : dm_env_is("DMABENCH_CUDA_FWD_WS", "0") ? 0
                                                                     : -1;
    return mode == 1 || (mode < 0 && ores);
}

attn_status launch_fwd_ws(const FwdArgs &a, int D, attn_dtype dt) {
    if (dt != ATTN_DTYPE_BF16 && dt != ATTN_DTYPE_F16) return ATTN_ERR_UNSUPPORTED;
    if (a.ores && !a.z) return ATTN_ERR_INVALID; /* the residual is dma's */
    const bool bf = dt == ATTN_DTYPE_BF16;
    if (D == 64) return bf ? launch_ws<__nv_bfloat16, 64>(a) : launch_ws<__half, 64>(a);
    if (D == 128) return bf ? launch_ws<__nv_bfloat16, 128>(a) : launch_ws<__half, 128>(a);
    return ATTN_ERR_UNSUPPORTED;
}

attn_status launch_fwd_wgmma(const FwdArgs &a, int D, attn_dtype dt) {
    if (dt != ATTN_DTYPE_BF16 && dt != ATTN_DTYPE_F16) return ATTN_ERR_UNSUPPORTED;
    if (a.ores && !a.z) return ATTN_ERR_INVALID; /* the residual is dma's */
    const bool bf = dt == ATTN_DTYPE_BF16;
    if (D == 64) return bf ? launch_wgmma<__nv_bfloat16, 64>(a) : launch_wgmma<__half, 64>(a);
    if (D == 128) return bf ? launch_wgmma<__nv_bfloat16, 128>(a) : launch_wgmma<__half, 128>(a);
    return ATTN_ERR_UNSUPPORTED;
}

} // namespace dm
