/*
 * cuda_attn_keys.cuh: how a query tile of the CUDA attention engine (forward and
 * backward) finds its keys: a contiguous range (the causal bound and the window)
 * or the variant's list for the tile, and for each key the interval of the
 * tile's rows that keep it, so that masking is two compares (cuda_attn.h).
 */
#ifndef DMABENCH_CUDA_ATTN_KEYS_CUH
#define DMABENCH_CUDA_ATTN_KEYS_CUH

#include <climits>

#include "cuda_attn.h"
#include "cuda_mma.cuh"

namespace dm {

/* Where queries and keys sit for the causal rule: query i at i + off, key j at
 * j kmul + kadd (kmul 1, kadd 0 but for nsa's compressed blocks); the window
 * keeps keys i' - window < j <= i' (0: none). */
struct KeyPos {
    long long off;
    int kmul, kadd, causal, window;
};

/* The rows of a query tile that keep key j, as an interval [*rl, *rh] of query
 * indices: the causal bound, the window, and for dma the tile's thresholds
 * sT[0..nrows) (non-decreasing; row r keeps j while key_j >= sT[r]). */
__device__ __forceinline__ void key_rows(const KeyPos &kp, int j, const unsigned long long *sT, unsigned long long keyj,
                                         int i0, int nrows, int *rl, int *rh) {
    int lo = 0, hi = INT_MAX - 1;
    if (kp.causal) {
        long long l = (long long)j * kp.kmul + kp.kadd - kp.off;
        long long h = kp.window > 0 ? l + kp.window - 1 : (long long)INT_MAX - 1;
        lo = (int)max(l, 0LL);
        hi = (int)min(h, (long long)INT_MAX - 1);
    }
    if (sT) { /* first row whose threshold is above the key */
        int a = 0, b = nrows;
        while (a < b) {
            int mid = (a + b) >> 1;
            if (sT[mid] <= keyj) a = mid + 1;
            else b = mid;
        }
        if (a < nrows) hi = min(hi, i0 + a - 1);
    }
    *rl = lo;
    *rh = hi;
}

/* The contiguous key range [*kstart, *kstart + *nkeys) of a tile of rows [i0, i0 +
 * nrows) when the variant gives no list: the keys up to the last row's causal
 * bound, from the first row's window start; all Nk keys when not causal. */
__device__ __forceinline__ void tile_key_range(const KeyPos &kp, int Nk, int i0, int nrows, int *kstart, int *nkeys) {
    *kstart = 0;
    if (!kp.causal) {
        *nkeys = Nk;
        return;
    }
    long long lim = (long long)i0 + nrows - 1 + kp.off - kp.kadd; /* the last key position the tile sees */
    long long hi = lim < 0 ? -1 : min(lim / kp.kmul, (long long)Nk - 1);
    long long lo = kp.window > 0 ? max(0LL, (long long)i0 + kp.off - kp.window + 1) : 0;
    *kstart = (int)lo;
    *nkeys = hi >= lo ? (int)(hi - lo + 1) : 0;
}

/* Whether every row of the tile [i0, i0 + nrows) keeps every key of the block of
 * bk keys from position c0 of its contiguous range (from kstart), all of them in
 * the range: key_slot_meta's full flag from the positions alone, for a tile with
 * no list, thresholds or z. The causal bound of the block's last key and the
 * window of its first decide, as in key_rows. */
__device__ __forceinline__ bool range_block_full(const KeyPos &kp, int kstart, int c0, int bk, int nkeys, int i0,
                                                 int nrows) {
    if (c0 + bk > nkeys) return false;
    if (!kp.causal) return true;
    const long long first = (long long)(kstart + c0) * kp.kmul + kp.kadd - kp.off; /* first row keeping the first key */
    if (first + (long long)(bk - 1) * kp.kmul > i0) return false;
    return kp.window <= 0 || first + kp.window - 1 >= (long long)i0 + nrows - 1;
}

/* The CTA's query tile and head, the last tiles first (under a causal mask they
 * hold the most keys, and the short ones left to the end fill the final wave).
 * heads_first 0: blockIdx.x is the tile and blockIdx.y the head, so each head's
 * tiles run in turn and its short ones sit among the next head's long ones; 1:
 * the grid's (x, y) as one sequence of clusters of cl heads (blockIdx.y's, cl
 * dividing gridDim.y), the heads fastest: every head's long tiles start before
 * any short one, and the heads of a GQA group walk the same keys at once (the
 * backward's default: dma's fwd+bwd at 8192 2.13 -> 2.10 ms; fw1's was even). A
 * cluster's CTAs share the tile; blockIdx.y % cl is the CTA's rank. */
__device__ __forceinline__ void tile_head(int heads_first, int cl, int *tile, int *h) {
    if (!heads_first) {
        *tile = gridDim.x - 1 - blockIdx.x, *h = blockIdx.y;
        return;
    }
    const int nhc = gridDim.y / cl;                             /* clusters across the heads */
    const int c = blockIdx.x + gridDim.x * (blockIdx.y / cl); /* the cluster's place in launch order */
    *tile = gridDim.x - 1 - c / nhc;
    *h = (c % nhc) * cl + blockIdx.y % cl;
}

/* The keys a query tile of rows [i0, i0 + nrows) of (batch b, kv head hkv) walks:
 * with a list, the *nkeys entries *lst of list row u (the forward tile that holds the
 * rows); else the contiguous range from *kstart. With thresholds (dma) the tile's go
 * to sT[0..BQ) first (~0 past the last row), then a barrier. Called by every thread. */
template <int BQ>
__device__ __forceinline__ void tile_keys(const KeyPos &kp, int Nk, int Nq, int Hkv, int b, int hkv, int i0, int nrows,
                                          const unsigned long long *tkey, unsigned long long *sT, const int *list,
                                          const int *list_len, int cap, size_t u, int *kstart, int *nkeys,
                                          const int **lst) {
    const int tid = threadIdx.x;
    if (tkey) {
        if (tid < BQ) sT[tid] = tid < nrows ? tkey[((size_t)b * Hkv + hkv) * Nq + i0 + tid] : ~0ULL;
        __syncthreads();
    }
    if (list) {
        *kstart = 0;
        *nkeys = list_len[u];
        *lst = list + u * cap;
    } else {
        *lst = nullptr;
        tile_key_range(kp, Nk, i0, nrows, kstart, nkeys);
    }
}

/* For key j (not past the end) with z zj: the rows rl .. rh of the tile that keep
 * it (none: rl > rh) and, with hasz, its bias z log2e. */
__device__ __forceinline__ void key_meta(const KeyPos &kp, int j, float zj, const unsigned long long *sT, bool hasz,
                                         int i0, int nrows, int *rl, int *rh, float *zz) {
    key_rows(kp, j, sT, sT ? dma_key(zj, j) : 0ULL, i0, nrows, rl, rh);
    if (hasz) *zz = zj * LOG2E;
}

/* Key slot `slot` of a block, by thread `slot` of the first BK / 32 warps (each
 * warp's slots together), given the slot's key j (-1 past the end) and its z
 * (hasz; 0 without): the key's index, the rows that keep it, its bias z log2e,
 * and per warp in sFull whether every row of the tile keeps all its slots' keys. */
__device__ __forceinline__ void key_slot_meta_at(const KeyPos &kp, int slot, int j, float zj,
                                                 const unsigned long long *sT, bool hasz, int i0, int nrows, int *sIdx,
                                                 int *sRlo, int *sRhi, float *sZ, int *sFull) {
    int rl = INT_MAX, rh = -1;
    float zz = 0.f;
    if (j >= 0) key_meta(kp, j, zj, sT, hasz, i0, nrows, &rl, &rh, &zz);
    sIdx[slot] = j;
    sRlo[slot] = rl;
    sRhi[slot] = rh;
    sZ[slot] = zz;
    /* the block needs no mask when every row of the tile keeps every key */
    bool full = j >= 0 && rl <= i0 && rh >= i0 + nrows - 1;
    unsigned bal = __ballot_sync(0xffffffff, full);
    if ((slot & 31) == 0) sFull[slot >> 5] = bal == 0xffffffffu;
}

/* key_slot_meta_at for slot `slot` of the block of BK keys from position c0 of the
 * tile's keys: the key read from the list (or the range) and its z from zrow. */
__device__ __forceinline__ void key_slot_meta(const KeyPos &kp, int slot, int c0, int nkeys, const int *lst, int kstart,
                                              const unsigned long long *sT, const float *zrow, int i0, int nrows,
                                              int *sIdx, int *sRlo, int *sRhi, float *sZ, int *sFull) {
    const int pos = c0 + slot;
    int j = -1;
    float zj = 0.f;
    if (pos < nkeys) {
        j = lst ? lst[pos] : kstart + pos;
        if (zrow) zj = zrow[j];
    }
    key_slot_meta_at(kp, slot, j, zj, sT, zrow != nullptr, i0, nrows, sIdx, sRlo, sRhi, sZ, sFull);
}

/* A key slot's metadata stored (slot tid % BK of the stage: key j, -1 none; its rows
 * rl .. rh; its bias zz) with the warp's fullness: whether every slot of the warp
 * holds a key that every row of the tile keeps. By whole warps; the first BK
 * threads store. */
template <int BK>
__device__ __forceinline__ void key_slot_store(int tid, int j, int rl, int rh, float zz, int i0, int nrows, int *sIdx,
                                               int *sRlo, int *sRhi, float *sZ, int *sFull) {
    const int slot = tid & (BK - 1);
    const bool full = j >= 0 && rl <= i0 && rh >= i0 + nrows - 1;
    const unsigned bal = __ballot_sync(0xffffffff, full);
    if (tid < BK) {
        sIdx[slot] = j, sRlo[slot] = rl, sRhi[slot] = rh;
        sZ[slot] = zz;
        if ((slot & 31) == 0) sFull[slot >> 5] = bal == 0xffffffffu;
    }
}

/* key_slot_meta computed by every thread of the CTA (slot tid % BK) and stored by
 * the first BK only: for the wgmma kernels, where a branch around the metadata
 * inside the key loop makes ptxas serialise the wgmmas. */
template <int BK>
__device__ __forceinline__ void key_slot_meta_all(const KeyPos &kp, int tid, int c0, int nkeys, const int *lst, int kstart,
                                                  const unsigned long long *sT, const float *zrow, int i0, int nrows,
                                                  int *sIdx, int *sRlo, int *sRhi, float *sZ, int *sFull) {
    const int slot = tid & (BK - 1), pos = c0 + slot;
    int j = -1, rl = INT_MAX, rh = -1;
    float zz = 0.f;
    if (pos < nkeys) {
        j = lst ? lst[pos] : kstart + pos;
        key_meta(kp, j, zrow ? zrow[j] : 0.f, sT, zrow != nullptr, i0, nrows, &rl, &rh, &zz);
    }
    key_slot_store<BK>(tid, j, rl, rh, zz, i0, nrows, sIdx, sRlo, sRhi, sZ, sFull);
}
/* The same with the slot's key j (-1: none) and its z zj read by the caller ahead
 * of time (fw1's producer). Kept apart from key_slot_meta_all, whose loads inside
 * the test give the backward's kernels their register allocation. */
template <int BK>
__device__ __forceinline__ void key_slot_meta_all_at(const KeyPos &kp, int tid, int j, float zj,
                                                     const unsigned long long *sT, bool hasz, int i0, int nrows,
                                                     int *sIdx, int *sRlo, int *sRhi, float *sZ, int *sFull) {
    int rl = INT_MAX, rh = -1;
    float zz = 0.f;
    if (j >= 0) key_meta(kp, j, zj, sT, hasz, i0, nrows, &rl, &rh, &zz);
    key_slot_store<BK>(tid, j, rl, rh, zz, i0, nrows, sIdx, sRlo, sRhi, sZ, sFull);
}

/* key_slot_meta_all_at with the slot's rows (rl .. rh) and bias zz given (formed by
 * dma's plan beside the list): no search. By whole warps, as key_slot_store. */
template <int BK>
__device__ __forceinline__ void key_slot_meta_given(int tid, int j, int rl, int rh, float zz, int i0, int nrows,
                                                    int *sIdx, int *sRlo, int *sRhi, float *sZ, int *sFull) {
    if (j < 0) rl = INT_MAX, rh = -1, zz = 0.f;
    key_slot_store<BK>(tid, j, rl, rh, zz, i0, nrows, sIdx, sRlo, sRhi, sZ, sFull);
}

/* A list's entries c0 .. c0 + BK - 1 as BK / 32 per lane: e[q] of lane l is entry
 * c0 + 32 q + l (-1 past the list's end). Coalesced; by every lane of a warp. */
template <int BK>
__device__ __forceinline__ void list_entries(const int *lst, int c0, int nkeys, int lane, int (&e)[(BK + 31) / 32]) {
#pragma unroll
    for (int q = 0; q < (BK + 31) / 32; q++) {
        const int pos = c0 + q * 32 + lane;
        e[q] = q * 32 + lane < BK && pos < nkeys ? lst[pos] : -1;
    }
}

/* Entry `slot` (below BK) of a block held as list_entries lays it out, from the
 * lane that holds it when slot % 32 is the caller's lane. */
template <int EPL> __device__ __forceinline__ int own_entry(const int (&e)[EPL], int slot) {
    int v = e[0];
#pragma unroll
    for (int q = 1; q < EPL; q++) v = (slot >> 5) == q ? e[q] : v;
    return v;
}

/* Where thread tid copies in the key loads below: chunk ch = tid % CH of rows
 * lrow = tid / CH + i RPI (RPI = NT / CH rows per pass), into kd and vd (swizzled,
 * or the core-matrix layout with KCM / VCM), from column 8 ch of the rows at ks
 * and vs. With RPI a multiple of 8 both layouts put row r + RPI at a fixed
 * distance from row r, so these are computed once per call. */
template <typename T, int D, int NT, bool KCM = false, bool VCM = false> struct KeyRowCopy {
    static constexpr int CH = D / 8, RPI = NT / CH;
    static_assert(NT % CH == 0 && RPI % 8 == 0, "key loads: rows per pass must be a multiple of 8");
    static_assert(NT % 32 == 0 && 32 % CH == 0, "key loads: whole warps, a row's chunks within one warp");
    int lrow;
    T *kd, *vd;
    const T *ks, *vs;
    __device__ __forceinline__ KeyRowCopy(T *sK, T *sV, const T *kb, const T *vb, int tid) {
        const int ch = tid % CH;
        lrow = tid / CH;
        kd = sK + (KCM ? cm_off<D>(lrow, ch) : swz<D>(lrow, ch));
        vd = sV + (VCM ? cm_off<D>(lrow, ch) : swz<D>(lrow, ch));
        ks = kb + ch * 8, vs = vb + ch * 8;
    }
};

/* load_key_rows for a block whose key indices e (list_entries' layout; -1: none)
 * each warp holds: every row takes its entry from the lane that holds it, one
 * shuffle. The rows a warp copies in one pass lie in one 32-row group (its 32 /
 * CH rows start at a multiple of 32 / CH), so which of the lane's entries a
 * shuffle reads is the same across the warp. By all NT threads. */
template <typename T, int D, int BK, int NT, bool KCM = false, bool VCM = false>
__device__ __forceinline__ void load_key_rows_at(T *sK, T *sV, const T *kb, const T *vb, long long kss, long long vss,
                                                 const int (&e)[(BK + 31) / 32], int tid) {
    using C = KeyRowCopy<T, D, NT, KCM, VCM>;
    constexpr int RPI = C::RPI, ITERS = (BK * C::CH + NT - 1) / NT;
    const C c(sK, sV, kb, vb, tid);
#pragma unroll
    for (int i = 0; i < ITERS; i++) {
        const int r = c.lrow + i * RPI;
        const int j = __shfl_sync(0xffffffffu, own_entry(e, r), r & 31);
        if ((BK * C::CH) % NT != 0 && r >= BK) break; /* after the shuffle: every lane takes part */
        const bool ok = j >= 0;
        const long long jj = ok ? j : 0;
        cp16(c.kd + i * RPI * D, c.ks + jj * kss, ok);
        cp16(c.vd + i * RPI * D, c.vs + jj * vss, ok);
    }
}

/* K and V rows of the block of BK keys from position c0 of the tile's keys into
 * the stage's [BK][D] tiles (cp.async, 16 bytes at a time; rows past the end
 * zero-filled), by all NT threads of the CTA: swizzled (swz), or with KCM / VCM in
 * the core-matrix layout (cm_off) that the wgmma kernels read; each thread's
 * chunks as KeyRowCopy says. With a list, each warp reads the block's BK entries
 * once (list_entries) and every row takes its entry by a shuffle
 * (load_key_rows_at) instead of a dependent load per row. */
template <typename T, int D, int BK, int NT, bool KCM = false, bool VCM = false>
__device__ __forceinline__ void load_key_rows(T *sK, T *sV, const T *kb, const T *vb, long long kss, long long vss, int c0,
                                              int nkeys, const int *lst, int kstart, int tid) {
    if (lst) {
        int e[(BK + 31) / 32];
        list_entries<BK>(lst, c0, nkeys, tid & 31, e);
        load_key_rows_at<T, D, BK, NT, KCM, VCM>(sK, sV, kb, vb, kss, vss, e, tid);
        return;
    }
    using C = KeyRowCopy<T, D, NT, KCM, VCM>;
    constexpr int RPI = C::RPI, ITERS = (BK * C::CH + NT - 1) / NT;
    const C c(sK, sV, kb, vb, tid);
#pragma unroll
    for (int i = 0; i < ITERS; i++) {
        const int r = c.lrow + i * RPI;
        if ((BK * C::CH) % NT != 0 && r >= BK) break;
        const int pos = c0 + r;
        const bool ok = pos < nkeys;
        const int j = ok ? kstart + pos : 0;
        cp16(c.kd + i * RPI * D, c.ks + (long long)j * kss, ok);
        cp16(c.vd + i * RPI * D, c.vs + (long long)j * vss, ok);
    }
}

/* load_key_rows for a block of BK consecutive key rows, all in range: kb and vb
 * point at the block's first row. No per-row index, predicate or list read: each
 * thread's rows are RPI rows apart, one stride each. */
template <typename T, int D, int BK, int NT>
__device__ __forceinline__ void load_key_block(T *sK, T *sV, const T *kb, const T *vb, long long kss, long long vss,
                                               int tid) {
    using C = KeyRowCopy<T, D, NT>;
    constexpr int RPI = C::RPI, ITERS = BK * C::CH / NT;
    static_assert((BK * C::CH) % NT == 0, "load_key_block: whole passes");
    const C c(sK, sV, kb, vb, tid);
    const T *ks = c.ks + c.lrow * kss, *vs = c.vs + c.lrow * vss;
#pragma unroll
    for (int i = 0; i < ITERS; i++) {
        cp16(c.kd + i * RPI * D, ks + i * RPI * kss, true);
        cp16(c.vd + i * RPI * D, vs + i * RPI * vss, true);
    }
}

} // namespace dm

#endif
