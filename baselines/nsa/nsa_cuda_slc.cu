/*
 * nsa_cuda_slc.cu: NSA's selected branch on the GPU (nsa_cuda.cuh): each query
 * attends, for the G heads of its kv head (which share the selection), to the keys
 * j <= i' of its selected blocks; lse plane 1.
 *
 * Forward (nsa_slc_forward):
 * - nsa_slc_pair_kernel (the default): the pairs (query, selected block) grouped
 *   by block with a counting sort, a CTA per block and batch of up to 64 / G of
 *   the queries that chose it; each pair's normalised result and lse, merged per
 *   query in slot order (nsa_slc_pair_combine_kernel);
 * - nsa_slc_tc_kernel, with DMABENCH_NSA_SLC=union (or =auto where the tiles'
 *   unions are small against the pairs' batches, slc_choose_pairs): a tile of
 *   64 / G queries x the group's heads as 64 mma rows walks the union of the
 *   tile's selected blocks in chunks of 64 keys, each row masked to its own blocks;
 * - nsa_slc_kernel, with DMABENCH_NSA_TC=0: a warp per (batch, kv head, query) on
 *   the CUDA cores.
 * Backward (nsa_slc_backward): the same three ways (nsa_slc_pair_bwd_kernel,
 * nsa_slc_bwd_tc_kernel, nsa_slc_bwd_kernel with DMABENCH_NSA_TC_BWD=0), dK and
 * dV (and the pairs' dQ) by vector reductions into fp32 accumulators.
 * docs/perf-notes.md (n4-n15) has the timings.
 */
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_rt.h"
#include "nsa_cuda.cuh"

namespace nsa_gpu {
using namespace dm;
namespace {


/* One warp per (b, hkv, i) for the group's G heads (they share the selection):
 * online softmax over the selected keys j <= i'; a lane per key for the logits
 * (each K row read once for all G heads), a lane per head-dim slice for P V. */
template <typename T>
__global__ void nsa_slc_kernel(const SlcArgs a) {
    extern __shared__ float smem[];
    const int wpb = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *sq = smem + (size_t)warp * a.G * a.D;
    const long long item = (long long)blockIdx.x * wpb + warp;
    if (item >= (long long)a.B * a.Hkv * a.Nq) return;
    const int i = (int)(item % a.Nq), hkv = (int)((item / a.Nq) % a.Hkv), b = (int)(item / ((long long)a.Nq * a.Hkv));
    const long long ip = (long long)i + a.Nk - a.Nq;
    for (int hh = 0; hh < a.G; hh++) {
        const T *qr = static_cast<const T *>(a.q) + b * a.qsb + (long long)i * a.qss + (hkv * a.G + hh) * a.qsh;
        for (int e = lane; e < a.D; e += 32) sq[hh * a.D + e] = to_f32<T>(qr[e]) * a.scale_log2;
    }
    __syncwarp();
    const int *sel = a.sel + (((size_t)b * a.Hkv + hkv) * a.Nq + i) * a.nsel;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    constexpr int MAXD = 128;
    float acc[NSA_MAXG][MAXD / 32], m[NSA_MAXG], l[NSA_MAXG];
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++) {
        m[hh] = -INFINITY, l[hh] = 0.f;
#pragma unroll
        for (int t = 0; t < MAXD / 32; t++) acc[hh][t] = 0.f;
    }
    for (int s = 0; s < a.nsel; s++) {
        const int jb = sel[s];
        if (jb < 0) break;
        const long long j0 = (long long)jb * a.ls;
        const long long j1 = min(j0 + a.ls, min(ip + 1, (long long)a.Nk));
        for (long long c0 = j0; c0 < j1; c0 += 32) {
            const long long j = c0 + lane;
            float x[NSA_MAXG];
#pragma unroll
            for (int hh = 0; hh < NSA_MAXG; hh++) x[hh] = j < j1 ? 0.f : -INFINITY;
            if (j < j1) group_dots<T>(kb + j * a.kss, sq, a.D, a.G, x); /* a lane reads its own row */
            float p[NSA_MAXG];
#pragma unroll
            for (int hh = 0; hh < NSA_MAXG; hh++) {
                if (hh >= a.G) break;
                float cm = x[hh];
                for (int o = 16; o; o >>= 1) cm = fmaxf(cm, __shfl_xor_sync(0xffffffff, cm, o));
                const float mn = fmaxf(m[hh], cm);
                const float alpha = m[hh] == -INFINITY ? 0.f : exp2f(m[hh] - mn);
                p[hh] = x[hh] == -INFINITY ? 0.f : exp2f(x[hh] - mn);
                float ps = p[hh];
                for (int o = 16; o; o >>= 1) ps += __shfl_xor_sync(0xffffffff, ps, o);
                l[hh] = l[hh] * alpha + ps;
                m[hh] = mn;
#pragma unroll
                for (int t = 0; t < MAXD / 32; t++) acc[hh][t] *= alpha;
            }
            const int nk = (int)min((long long)32, j1 - c0);
            for (int kk = 0; kk < nk; kk++) {
                const T *vr = vb + (c0 + kk) * a.vss;
                float vv[MAXD / 32];
#pragma unroll
                for (int t = 0; t < MAXD / 32; t++) {
                    int e = t * 32 + lane;
                    vv[t] = e < a.D ? to_f32<T>(vr[e]) : 0.f;
                }
#pragma unroll
                for (int hh = 0; hh < NSA_MAXG; hh++) {
                    if (hh >= a.G) break;
                    const float pk = __shfl_sync(0xffffffff, p[hh], kk);
#pragma unroll
                    for (int t = 0; t < MAXD / 32; t++) acc[hh][t] += pk * vv[t];
                }
            }
        }
    }
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++) {
        if (hh >= a.G) break;
        const int h = hkv * a.G + hh;
        T *orow = static_cast<T *>(a.o) + (((size_t)b * a.Nq + i) * a.Hq + h) * a.D;
        const float inv = l[hh] > 0.f ? 1.f / l[hh] : 0.f;
#pragma unroll
        for (int t = 0; t < MAXD / 32; t++) {
            int e = t * 32 + lane;
            if (e < a.D) orow[e] = from_f32<T>(acc[hh][t] * inv);
        }
        if (lane == 0)
            a.lse1[((size_t)b * a.Hq + h) * a.Nq + i] = l[hh] > 0.f ? (m[hh] + log2f(l[hh])) * 0.6931471805599453f : -INFINITY;
    }
}

/* The union of the selections of queries i0 .. i0 + QS - 1 (QS <= 64) of one (batch,
 * kv head), whose selections sel holds (Nq x nsel, -1 padded): qmask[j] gets bit qi
 * when query i0 + qi chose block j, and list[0 .. n) the blocks any of them chose,
 * ascending (at most cap); returns n. Called by all 128 threads of the CTA after
 * qmask[0 .. NSB) was zeroed and a barrier; ends with a barrier. wsum: 4 ints. */
__device__ int tile_block_union(const int *sel, int Nq, int nsel, int i0, int QS, int NSB, int cap,
                                unsigned long long *qmask, int *list, int *wsum) {
    const int tid = threadIdx.x;
    for (int x = tid; x < QS * nsel; x += 128) {
        const int qi = x / nsel, i = i0 + qi;
        if (i >= Nq) continue;
        const int jb = sel[(size_t)i * nsel + x % nsel];
        if (jb >= 0 && jb < NSB) atomicOr(&qmask[jb], 1ULL << qi);
    }
    __syncthreads();
    /* compaction: thread t owns blocks [t per, (t + 1) per) */
    const int per = (NSB + 127) / 128, j0 = tid * per, j1 = min(j0 + per, NSB);
    int cnt = 0;
    for (int j = j0; j < j1; j++) cnt += qmask[j] != 0ULL;
    int total;
    int base = dm_block_scan_excl<128>(cnt, wsum, &total);
    for (int j = j0; j < j1; j++)
        if (qmask[j] != 0ULL) {
            if (base < cap) list[base] = j;
            base++;
        }
    __syncthreads();
    return min(total, cap);
}

/* The 64-key chunks of the blocks in a tile's union (tile_block_union): chunk t is
 * keys [k0, kend) of block list[t / cpb], and qmask says which of the tile's queries
 * chose it; load() copies its K and V rows into swizzled [64][D] tiles (cp.async,
 * zero past the block's end), by the CTA's 128 threads. */
template <typename T, int D> struct UnionChunks {
    const int *list;
    const unsigned long long *qmask;
    int cpb, ls, Nk;
    const T *kb, *vb;
    long long kss, vss;
    __device__ void range(int t, long long *k0, long long *kend, unsigned long long *qm) const {
        const int jb = list[t / cpb];
        *k0 = (long long)jb * ls + (long long)(t % cpb) * 64;
        *kend = min((long long)jb * ls + ls, (long long)Nk);
        *qm = qmask[jb];
    }
    __device__ void load(T *sK, T *sV, int t, int tid) const {
        constexpr int CH = D / 8;
        long long k0, kend;
        unsigned long long qm;
        range(t, &k0, &kend, &qm);
        for (int c = tid; c < 64 * CH; c += 128) {
            const int r = c / CH, ch = c % CH;
            const bool ok = k0 + r < kend;
            const long long j = ok ? k0 + r : 0;
            cp16(sK + swz<D>(r, ch), kb + j * kss + ch * 8, ok);
            cp16(sV + swz<D>(r, ch), vb + j * vss + ch * 8, ok);
        }
    }
};

/* The start of the union kernels' walk, for the tile of QS queries from i0 of batch
 * b, kv head hkv (A: SlcArgs or SlcBwdArgs), after the caller has zeroed qmask
 * [NSB], started its rows' copies and passed a barrier: the union of the tile's
 * selections into qmask and list (tile_block_union), its chunks, and the first
 * chunk's K and V rows into sK, sV (one commit group, empty when the union is).
 * *nchunks: how many chunks to walk. Every thread calls it. */
template <typename T, int D, typename A>
__device__ __forceinline__ UnionChunks<T, D> union_begin(const A &a, int b, int hkv, int i0, int QS, int NSB, int cap,
                                                         unsigned long long *qmask, int *list, int *wsum, T *sK, T *sV,
                                                         int tid, int *nchunks) {
    const int nlist = tile_block_union(a.sel + ((size_t)b * a.Hkv + hkv) * a.Nq * a.nsel, a.Nq, a.nsel, i0, QS, NSB, cap,
                                       qmask, list, wsum);
    const UnionChunks<T, D> uc = {list, qmask, (a.ls + 63) / 64, a.ls, a.Nk,
                                  static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh,
                                  static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh, a.kss, a.vss};
    *nchunks = nlist * uc.cpb;
    if (*nchunks > 0) uc.load(sK, sV, 0, tid);
    cp_commit();
    return uc;
}

/* A chunk of 64 keys from k0 (keys from kend on masked) and a row of query position
 * ip (on: the row takes keys): the row sees keys k0 + jr for jr < the returned
 * limit, jr = base + c with base the thread's column offset ((lane & 3) 2); so the
 * mask per element is one 32-bit compare, c < chunk_lim(...), instead of three
 * 64-bit ones. */
__device__ __forceinline__ int chunk_lim(long long k0, long long kend, bool on, long long ip, int base) {
    long long l = on ? (kend < ip + 1 ? kend : ip + 1) - k0 : 0;
    l = l < 0 ? 0 : l > 64 ? 64 : l;
    return (int)l - base;
}

/* One chunk of 64 keys (from k0; keys from kend on masked) of the selected branch's
 * forward on the tensor cores, for the warp's 16 rows from wrow: the thread's rows
 * x0 (wrow + lane / 4) and x1 (8 below) take keys j <= ip0, ip1 where on0, on1.
 * S = q K^T, the online softmax (m, l: the quad's partial sums), O += P V;
 * nsa_slc_tc_kernel and nsa_slc_pair_kernel. */
template <typename T, int D>
__device__ __forceinline__ void slc_fwd_chunk(const T *sQ, const T *sK, const T *sV, int wrow, int lane, long long k0,
                                              long long kend, bool on0, bool on1, long long ip0, long long ip1,
                                              float scale_log2, float &m0, float &m1, float &l0, float &l1,
                                              float (&o)[D / 8][4]) {
    constexpr int BK = 64;
    float s[BK / 8][4];
    warp_qk<T, D, BK>(s, sQ, sK, wrow, lane);
    /* mask, scale to log2 units, the rows' new maxima */
    float mx0 = -INFINITY, mx1 = -INFINITY;
    const int lim0 = chunk_lim(k0, kend, on0, ip0, (lane & 3) * 2), lim1 = chunk_lim(k0, kend, on1, ip1, (lane & 3) * 2);
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const bool r1 = e >= 2;
            const bool vis = nt * 8 + (e & 1) < (r1 ? lim1 : lim0);
            const float x = vis ? s[nt][e] * scale_log2 : -INFINITY;
            s[nt][e] = x;
            if (r1) mx1 = fmaxf(mx1, x);
            else mx0 = fmaxf(mx0, x);
        }
#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, o2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, o2));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    const float al0 = fast_exp2(m0 - mu0), al1 = fast_exp2(m1 - mu1); /* 0 while m = -inf */
    float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const bool r1 = e >= 2;
            const float pv = fast_exp2(s[nt][e] - (r1 ? mu1 : mu0));
            s[nt][e] = pv;
            if (r1) rs1 += pv;
            else rs0 += pv;
        }
    l0 = l0 * al0 + rs0, l1 = l1 * al1 + rs1; /* the quad's partial sums: reduced at the end */
    m0 = mn0, m1 = mn1;
#pragma unroll
    for (int x = 0; x < D / 8; x++) o[x][0] *= al0, o[x][1] *= al0, o[x][2] *= al1, o[x][3] *= al1;
    /* O += P V */
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t af[4];
        acc_to_a<T>(s, kk, af);
        mma_a_rows<T, D, D / 8>(o, af, sV, kk, 0, lane);
    }
}

/* Dsum = dO . O of row rr of sdO (a swizzled [64][D] tile) and O's row orow (0 where
 * orow is null), by the two threads of a lane pair, half of D each (half: 0 or 1);
 * both get the sum. */
template <typename T, int D>
__device__ __forceinline__ float row_dsum(const T *sdO, int rr, int half, const T *orow) {
    float ds = 0.f;
    if (orow)
        for (int d = half * (D / 2); d < (half + 1) * (D / 2); d++)
            ds += to_f32<T>(sdO[swz<D>(rr, d >> 3) + (d & 7)]) * to_f32<T>(orow[d]);
    return ds + __shfl_xor_sync(0xffffffff, ds, 1);
}

/* The first half of a chunk's backward for the warp's 16 rows from wrow: S = q K^T
 * and dP = dO V^T, P = exp2(sl2 S - lse2) (sl2 = s log2 e) on the rows' visible
 * keys (j < kend, the row on, j <= i'), dS = P (dP - Dsum) left in dp, and P and
 * s dS to sP, sdS ([64 rows][64 keys], swizzled). The warp takes BK keys (64, or
 * 32 of the chunk: sK and sV then point at its first, k0 is its position and kc
 * its first 8-key column of sP and sdS). slc_bwd_chunk, the pairs' sub-batch
 * kernels. */
template <typename T, int D, int BK = 64>
__device__ __forceinline__ void slc_bwd_pds(const T *sQ, const T *sdO, const T *sK, const T *sV, T *sP, T *sdS,
                                            int wrow, int lane, long long k0, long long kend, bool on0, bool on1,
                                            long long ip0, long long ip1, float lse20, float lse21, float dsm0,
                                            float dsm1, float scale, float sl2, float (&dp)[BK / 8][4], int kc = 0) {
    static_assert(BK == 64 || BK == 32, "slc_bwd_pds: a chunk or half of one");
    float s[BK / 8][4];
    warp_qk<T, D, BK>(s, sQ, sK, wrow, lane);
    warp_qk<T, D, BK>(dp, sdO, sV, wrow, lane);
    const int lim0 = chunk_lim(k0, kend, on0, ip0, (lane & 3) * 2), lim1 = chunk_lim(k0, kend, on1, ip1, (lane & 3) * 2);
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const bool r1 = e >= 2;
            const bool vis = nt * 8 + (e & 1) < (r1 ? lim1 : lim0);
            const float pv = vis ? fast_exp2(s[nt][e] * sl2 - (r1 ? lse21 : lse20)) : 0.f;
            s[nt][e] = pv;
            dp[nt][e] = pv * (dp[nt][e] - (r1 ? dsm1 : dsm0));
        }
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = wrow + (lane >> 2) + 8 * r;
            const int idx = swz<64>(row, kc + nt) + (lane & 3) * 2;
            *reinterpret_cast<uint32_t *>(sP + idx) = pack2<T>::from(s[nt][2 * r], s[nt][2 * r + 1]);
            *reinterpret_cast<uint32_t *>(sdS + idx) =
                pack2<T>::from(dp[nt][2 * r] * scale, dp[nt][2 * r + 1] * scale);
        }
}

/* One chunk of 64 keys (from k0; keys from kend on masked) of the selected branch's
 * backward on the tensor cores, rows as slc_fwd_chunk's (the warp's 16 from wrow =
 * 16 warp): S = q K^T and dP = dO V^T, P = exp2(s S - lse2) (lse2: the rows' lse in
 * log2 units), dS = P (dP - Dsum); dQ += dS K in registers; P and s dS through
 * sP, sdS ([64 rows][64 keys]) for dV += P^T dO and dK += (s dS)^T Q over the
 * CTA's 64 rows, the warp's 16 keys added into dkb, dvb (row stride accs) with
 * vector reductions. Holds a barrier between the two halves (every thread of the
 * CTA calls it); nsa_slc_bwd_tc_kernel and nsa_slc_pair_bwd_kernel. */
template <typename T, int D>
__device__ __forceinline__ void slc_bwd_chunk(const T *sQ, const T *sdO, const T *sK, const T *sV, T *sP, T *sdS,
                                              int warp, int lane, long long k0, long long kend, bool on0, bool on1,
                                              long long ip0, long long ip1, float lse20, float lse21, float dsm0,
                                              float dsm1, float scale, float (&dq)[D / 8][4], float *dkb, float *dvb,
                                              long long accs) {
    constexpr int BK = 64;
    const int wrow = warp * 16;
    float dp[BK / 8][4];
    slc_bwd_pds<T, D>(sQ, sdO, sK, sV, sP, sdS, wrow, lane, k0, kend, on0, on1, ip0, ip1, lse20, lse21, dsm0, dsm1,
                      scale, scale * LOG2E, dp);
    /* dQ += dS K (the scale at the end) */
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t af[4];
        acc_to_a<T>(dp, kk, af);
        mma_a_rows<T, D, D / 8>(dq, af, sK, kk, 0, lane);
    }
    __syncthreads();
    /* dV += P^T dO, dK += (s dS)^T Q: the warp's 16 keys over the 64 rows */
    const int wkey = warp * 16;
#pragma unroll
    for (int which = 0; which < 2; which++) {
        const T *sA = which ? sdS : sP;
        const T *sB = which ? sQ : sdO;
        float *dst = which ? dkb : dvb;
        float acc[D / 8][4];
#pragma unroll
        for (int x = 0; x < D / 8; x++) acc[x][0] = acc[x][1] = acc[x][2] = acc[x][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < 64 / 16; kk++) {
            uint32_t af[4];
            ld_a_t<BK>(af, sA, kk, wkey, lane);
            mma_a_rows<T, D, D / 8>(acc, af, sB, kk, 0, lane);
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const long long j = k0 + wkey + (lane >> 2) + 8 * r;
            if (j >= kend) continue;
            float *row = dst + j * accs + (lane & 3) * 2;
#pragma unroll
            for (int x = 0; x < D / 8; x++) {
                const float x0 = acc[x][2 * r], x1 = acc[x][2 * r + 1];
                if (x0 != 0.f || x1 != 0.f) red_add2(row + x * 8, x0, x1);
            }
        }
    }
}

/* The selected branch on the tensor cores (the default): one CTA of
 * 4 warps per (tile of QS = 64 / G queries, kv head, batch), 64 mma rows
 * r = hh QS + qi as in nsa_select_tc_kernel. The tile's queries select blocks that
 * mostly coincide, so the CTA walks the union of their selections (ascending, with a
 * bit mask of the queries that chose each block) in chunks of 64 keys through shared
 * memory (cp.async, double buffered), each row masked to its own query's blocks and
 * keys j <= i': S = q K^T and O += P V on the tensor cores, online softmax in fp32
 * (FlashAttention-2's forward over a gathered key list). */
template <typename T, int D>
__global__ void __launch_bounds__(128) nsa_slc_tc_kernel(const SlcArgs a, const int QS, const int NSB, const int cap) {
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char slc_smem[];
    T *sQ = reinterpret_cast<T *>(slc_smem);  /* [64 rows][D] */
    T *sK = sQ + 64 * D;                       /* [2][BK][D] */
    T *sV = sK + 2 * BK * D;                   /* [2][BK][D] */
    unsigned long long *qmask = reinterpret_cast<unsigned long long *>(sV + 2 * BK * D); /* [NSB] */
    int *list = reinterpret_cast<int *>(qmask + NSB);                                    /* [cap] */
    int *wsum = list + cap;                                                              /* [4] + count */
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int i0 = blockIdx.x * QS;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int nrows = a.G * QS;
    const long long off = (long long)a.Nk - a.Nq;

    /* the union of the tile's selections */
    for (int x = tid; x < NSB; x += 128) qmask[x] = 0ULL;
    load_group_q<T, D>(sQ, a, b, hkv, i0, QS, tid);
    cp_commit();
    __syncthreads();
    int nchunks;
    const auto uc = union_begin<T, D>(a, b, hkv, i0, QS, NSB, cap, qmask, list, wsum, sK, sV, tid, &nchunks);

    /* the thread's two rows (x0: wrow + lane/4, x1: 8 below) */
    const int wrow = warp * 16;
    int qi0 = 0, qi1 = 0;
    long long ip0 = -1, ip1 = -1; /* -1: the row takes no key */
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, qi = rr % QS;
        const long long ip = rr < nrows && i0 + qi < a.Nq ? (long long)(i0 + qi) + off : -1;
        if (r2 == 0) qi0 = qi, ip0 = ip;
        else qi1 = qi, ip1 = ip;
    }
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    float o[D / 8][4];
#pragma unroll
    for (int t = 0; t < D / 8; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.f;

    for (int t = 0; t < nchunks; t++) {
        const int st = t & 1;
        if (t + 1 < nchunks) uc.load(sK + (st ^ 1) * BK * D, sV + (st ^ 1) * BK * D, t + 1, tid);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
        long long k0, kend;
        unsigned long long qm;
        uc.range(t, &k0, &kend, &qm);
        const bool on0 = (qm >> qi0) & 1ULL, on1 = (qm >> qi1) & 1ULL;
        slc_fwd_chunk<T, D>(sQ, sKs, sVs, wrow, lane, k0, kend, on0, on1, ip0, ip1, a.scale_log2, m0, m1, l0, l1, o);
        __syncthreads();
    }
    cp_wait<0>();
#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l0 += __shfl_xor_sync(0xffffffff, l0, o2);
        l1 += __shfl_xor_sync(0xffffffff, l1, o2);
    }
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, hh = rr / QS, qi = rr % QS, i = i0 + qi;
        if (rr < nrows && i < a.Nq) {
            const int h = hkv * a.G + hh;
            const float L = r2 ? l1 : l0, M = r2 ? m1 : m0;
            const float inv = L > 0.f ? 1.f / L : 0.f;
            T *orow = static_cast<T *>(a.o) + (((size_t)b * a.Nq + i) * a.Hq + h) * D;
#pragma unroll
            for (int x = 0; x < D / 8; x++)
                *reinterpret_cast<uint32_t *>(orow + x * 8 + (lane & 3) * 2) =
                    pack2<T>::from(o[x][2 * r2] * inv, o[x][2 * r2 + 1] * inv);
            if ((lane & 3) == 0)
                a.lse1[((size_t)b * a.Hq + h) * a.Nq + i] = L > 0.f ? (M + log2f(L)) * 0.6931471805599453f : -INFINITY;
        }
    }
}

/* The selected branch by key block (slc_choose_pairs says when). Where
 * neighbouring queries choose different blocks (random inputs: a tile's 16 queries
 * make up to 16 x 13 free picks), the union kernels walk most blocks a tile can see
 * with one row in ten or fewer using each. Here the pairs (query, selected block)
 * are grouped by block instead: each CTA takes one block of one (batch, kv head) and
 * up to 64 / G of the queries that chose it, and writes each row's attention over
 * that block alone (normalised; fp16 with a power-of-two scale per row,
 * pair_row_scale) and its lse; nsa_slc_pair_combine_kernel then merges a query's
 * nsel partial results in slot order. A row's result depends only on its query and
 * its block, not on which other queries share its CTA, so the order the grouping
 * lands in does not change a bit of the output. Queries go in
 * chunks of cq (the partial results of a chunk are what the workspace holds); a
 * chunk's pairs are indexed p = ((b Hkv + hkv) cq + qi) nsel + s. */

/* Pairs per block list l = (b Hkv + hkv) ns + j of the chunk's queries q0 .. q0 + cq - 1,
 * as a partition: the chunk's queries of each (b, hkv) in runs of qc
 * (pair_run_queries), a CTA each, which counts its run's pairs per block in shared
 * memory (nsa_pair_count_kernel), one global add per block it holds; after the scan,
 * the same CTA places its pairs from its own offset in each list, the lists' offset
 * plus the runs' before it (nsa_pair_place_kernel). Shared-memory atomics only
 * where the pairs are (the earlier count and scatter added every run of equal
 * blocks into the lists' global counters, about 0.1 ms at the model's shape at
 * 8192, docs/perf-notes.md n49). Within a run a list's pairs land in the order the
 * shared-memory atomics give. */
constexpr int PAIR_THREADS = 256;

/* Queries per CTA of the count and the place: at least 256, more with many blocks
 * so that the runs' counts (runs x ns per (b, hkv)) stay small. */
int pair_run_queries(int ns) { return std::max(256, 2 * ns); }

/* Pair e of the run of the CTA (blockIdx.x, (b Hkv + hkv) = blockIdx.y) of the
 * chunk: query q0 + blockIdx.x qc + e / nsel of the selection, slot e % nsel */
__device__ __forceinline__ int pair_run_block(const int *sel, int Nq, int nsel, int ns, int q0, int e) {
    const int v = sel[((size_t)blockIdx.y * Nq + q0) * nsel + e];
    return v >= 0 && v < ns ? v : -1;
}

/* cnt[l] += the chunk's pairs in list l; rcnt (or null): [b Hkv + hkv][run][block]
 * the run's own counts. Shared memory: ns ints. */
__global__ void __launch_bounds__(PAIR_THREADS) nsa_pair_count_kernel(const int *sel, int Nq, int nsel, int ns, int q0,
                                                                      int cq, int qc, int *cnt, int *rcnt) {
    extern __shared__ int hist[];
    for (int j = threadIdx.x; j < ns; j += PAIR_THREADS) hist[j] = 0;
    __syncthreads();
    const int r0 = blockIdx.x * qc, n = min(qc, cq - r0) * nsel;
    for (int e = threadIdx.x; e < n; e += PAIR_THREADS) {
        const int j = pair_run_block(sel, Nq, nsel, ns, q0 + r0, e);
        if (j >= 0) atomicAdd(&hist[j], 1);
    }
    __syncthreads();
    int *own = rcnt ? rcnt + ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * ns : nullptr;
    for (int j = threadIdx.x; j < ns; j += PAIR_THREADS) {
        const int h = hist[j];
        if (own) own[j] = h;
        if (h) atomicAdd(&cnt[(size_t)blockIdx.y * ns + j], h);
    }
}

/* One CTA: off[l] = pairs of the lists before l (unless off is null: lists built
 * already, batched again), boff[l] = their batches of qb (boff[nl]: all of them). */
__global__ void __launch_bounds__(1024) nsa_pair_scan_kernel(const int *cnt, int nl, int qb, int *off, int *boff) {
    __shared__ int sw[32];
    const int per = (nl + 1023) / 1024, j0 = threadIdx.x * per, j1 = min(j0 + per, nl);
    int c = 0, nbt = 0;
    for (int j = j0; j < j1; j++) c += cnt[j], nbt += (cnt[j] + qb - 1) / qb;
    int tot, totb;
    int e = dm_block_scan_excl<1024>(c, sw, &tot);
    int eb = dm_block_scan_excl<1024>(nbt, sw, &totb);
    for (int j = j0; j < j1; j++) {
        if (off) off[j] = e;
        boff[j] = eb;
        e += cnt[j], eb += (cnt[j] + qb - 1) / qb;
    }
    if (threadIdx.x == 0) {
        if (off) off[nl] = tot;
        boff[nl] = totb;
    }
}

/* Each pair into its block's list (the CTAs of nsa_pair_count_kernel, after the
 * scan): plist the pair's index in the chunk, ((b Hkv + hkv) cq + qi) nsel + s, and
 * pq beside it the pair's query in the chunk, so that the kernels that read the
 * lists need no division. Shared memory: ns ints. */
__global__ void __launch_bounds__(PAIR_THREADS) nsa_pair_place_kernel(const int *sel, int Nq, int nsel, int ns, int q0,
                                                                      int cq, int qc, const int *off, const int *rcnt,
                                                                      int *plist, int *pq) {
    extern __shared__ int at[];
    const size_t bh = blockIdx.y;
    for (int j = threadIdx.x; j < ns; j += PAIR_THREADS) { /* the list's offset plus the runs' before this one */
        int o = off[bh * ns + j];
        for (int r = 0; r < (int)blockIdx.x; r++) o += rcnt[(bh * gridDim.x + r) * ns + j];
        at[j] = o;
    }
    __syncthreads();
    const int r0 = blockIdx.x * qc, n = min(qc, cq - r0) * nsel;
    const long long p0 = ((long long)bh * cq + r0) * nsel;
    for (int e = threadIdx.x; e < n; e += PAIR_THREADS) {
        const int j = pair_run_block(sel, Nq, nsel, ns, q0 + r0, e);
        if (j < 0) continue;
        const int x = atomicAdd(&at[j], 1);
        plist[x] = (int)(p0 + e);
        pq[x] = r0 + e / nsel;
    }
}

/* bmap[t] = the list of batch t (boff[l] <= t < boff[l + 1]): a warp per list (a
 * block all of a chunk's queries select has cq / QB batches). */
__global__ void nsa_pair_bmap_kernel(const int *boff, int nl, int *bmap) {
    const int l = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (l >= nl) return;
    for (int t = boff[l] + lane; t < boff[l + 1]; t += 32) bmap[t] = l;
}

/* The chunks of 64 keys (cpb per block) that the union kernels walk for the tile of
 * QS queries blockIdx.x of (batch blockIdx.z, kv head blockIdx.y), added into *u:
 * the union of the tile's selected blocks as a bit set in shared memory. */
__global__ void nsa_union_size_kernel(const int *sel, int Nq, int Hkv, int nsel, int ns, int QS, int cpb,
                                      unsigned long long *u) {
    extern __shared__ unsigned int ubits[]; /* [(ns + 31) / 32] */
    __shared__ int ucount;
    const int i0 = blockIdx.x * QS, hkv = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int words = (ns + 31) / 32;
    for (int x = tid; x < words; x += blockDim.x) ubits[x] = 0u;
    if (tid == 0) ucount = 0;
    __syncthreads();
    const int *sl = sel + ((size_t)b * Hkv + hkv) * Nq * nsel;
    for (int x = tid; x < QS * nsel; x += blockDim.x) {
        const int i = i0 + x / nsel;
        if (i >= Nq) continue;
        const int j = sl[(size_t)i * nsel + x % nsel];
        if (j >= 0 && j < ns) atomicOr(&ubits[j >> 5], 1u << (j & 31));
    }
    __syncthreads();
    int c = 0;
    for (int x = tid; x < words; x += blockDim.x) c += __popc(ubits[x]);
    for (int o = 16; o; o >>= 1) c += __shfl_xor_sync(0xffffffff, c, o);
    if ((tid & 31) == 0) atomicAdd(&ucount, c);
    __syncthreads();
    if (tid == 0) atomicAdd(u, (unsigned long long)ucount * cpb);
}

/* A chunk's pair lists (nsa_pair_*_kernel). */
struct PairList {
    const int *cnt, *off, *boff, *plist;
    const int *pq;   /* beside plist: each pair's query in the chunk */
    const int *bmap; /* per batch: its list */
    int nl, ns, nsel, q0, cq;
};

/* Batch t of QB pairs: where in plist it starts, its pairs (1..QB) and its list's
 * (b, hkv, block) (list l = (b Hkv + hkv) ns + block); false past the last batch
 * (grids are upper bounds).
 * The list comes from bmap (nsa_pair_bmap_kernel): a search over boff here took a
 * quarter of the pairs' forward's stall samples with the rows' queries below
 * (docs/perf-notes.md n34). */
struct PairPos {
    int start, nq, b, hkv, jb; /* plist's first pair and the pairs; the list's batch, kv head and block */
};
__device__ __forceinline__ bool pair_batch(const PairList &pl, int t, int QB, int Hkv, PairPos *p) {
    if (t >= pl.boff[pl.nl]) return false;
    const int lo = pl.bmap[t], kb = t - pl.boff[lo], bh = lo / pl.ns;
    p->start = pl.off[lo] + kb * QB, p->nq = min(QB, pl.cnt[lo] - kb * QB);
    p->b = bh / Hkv, p->hkv = bh % Hkv, p->jb = lo % pl.ns;
    return true;
}

/* Where a batch's rows lie in one (B, N, H, D) tensor: sOff[r] = i ss + hh sh for
 * row r (query i, head hh of the group), -1 where the row takes no pair
 * (load_pair_rows). */
struct PairRowOff {
    long long *sOff;
    long long ss, sh;
};

/* A batch's 64 mma rows r = hh QB + qi (head hh of the group, pair qi of the
 * batch of nq pairs from start; QB = 64 / G, a power of two: qbs = log2 QB), as
 * thread r (< 64) reads them from the lists: the pair qi = r (-1 past nq; only
 * with `pairs`, which the backward kernels do not read) and row r's query (-1
 * where the row takes no pair). Kernels that run several batches fetch the next
 * batch's while they compute, so that the lists' latency is off the batch's
 * path (docs/perf-notes.md n44). */
struct PairRow {
    int pair, q;
};
__device__ __forceinline__ PairRow pair_fetch(const PairList &pl, int start, int nq, int G, int qbs, bool pairs,
                                              int tid) {
    PairRow p = {-1, -1};
    if (tid >= 64) return p;
    if (pairs && tid < nq) p.pair = pl.plist[start + tid];
    const int hh = tid >> qbs, qi = tid & ((1 << qbs) - 1);
    if (hh < G && qi < nq) p.q = pl.q0 + pl.pq[start + qi];
    return p;
}

/* A batch's rows (pair_fetch's p of thread tid) into shared memory by the first
 * 64 threads, before a barrier: sPair[qi] (where sPair is not null), sRowQ[r],
 * and where given (sOff not null) the rows' offsets in the tensors o0 and o1,
 * so that the loads and stores per row need no division and the backward's
 * copies no multiply. */
__device__ __forceinline__ void pair_rows(const PairRow &p, int qbs, int *sPair, int *sRowQ, const PairRowOff &o0,
                                          const PairRowOff &o1, int tid) {
    if (tid >= 64) return;
    if (sPair) sPair[tid] = p.pair;
    const int hh = tid >> qbs, i = p.q;
    sRowQ[tid] = i;
    if (o0.sOff) o0.sOff[tid] = i >= 0 ? i * o0.ss + hh * o0.sh : -1;
    if (o1.sOff) o1.sOff[tid] = i >= 0 ? i * o1.ss + hh * o1.sh : -1;
}

/* Rows r = hh QB + qi (head hh of the group of kv head hkv, query sRowQ[r]) of x
 * into the swizzled [64][D] tile s (cp.async); rows without a pair are zero. By
 * 128 threads: thread tid copies chunk tid % CH of rows tid / CH + k RS, so its
 * chunk, its swizzle and its base address are worked out once (the loop over
 * c = tid + 128 k divided each c; docs/perf-notes.md n40). The pairs' forward. */
template <typename T, int D>
__device__ __forceinline__ void load_pair_rows(T *s, const void *x, long long xsb, long long xss, long long xsh, int b,
                                               int hkv, int G, int qbs, const int *sRowQ, int tid) {
    constexpr int CH = D / 8, RS = 128 / CH; /* chunks per row; rows per pass */
    static_assert(128 % CH == 0 && 64 % RS == 0, "load_pair_rows: 128 threads over whole rows");
    const int ch = tid % CH, r0 = tid / CH;
    const T *base = static_cast<const T *>(x) + b * xsb + (long long)hkv * G * xsh + ch * 8;
#pragma unroll 2
    for (int k = 0; k < 64 / RS; k++) {
        const int r = r0 + k * RS, i = sRowQ[r];
        const bool ok = i >= 0;
        cp16(s + swz<D>(r, ch), ok ? base + (long long)i * xss + (long long)(r >> qbs) * xsh : base, ok);
    }
}

/* load_pair_rows from per-row offsets: row r from x's batch b and the group's
 * first head plus sOff[r] (pair_rows; -1: a zero row), so that each row costs a
 * shared load and an add, and the destination's swizzle is the same on every
 * pass. The backward kernels, which copy Q and dO per batch (docs/perf-notes.md
 * n43: in the forward it cost more registers than it saved). */
template <typename T, int D>
__device__ __forceinline__ void load_pair_rows_off(T *s, const void *x, long long xsb, long long xsh, int b, int hkv,
                                                   int G, const long long *sOff, int tid) {
    constexpr int CH = D / 8, RS = 128 / CH; /* chunks per row; rows per pass */
    static_assert(128 % CH == 0 && 64 % RS == 0, "load_pair_rows_off: 128 threads over whole rows");
    const int ch = tid % CH, r0 = tid / CH;
    const T *base = static_cast<const T *>(x) + b * xsb + (long long)hkv * G * xsh + ch * 8;
    T *dst = s + swz<D>(r0, ch); /* row r0 + k RS: the same swizzle (RS a multiple of 8) */
#pragma unroll 2
    for (int k = 0; k < 64 / RS; k++) {
        const long long off = sOff[r0 + k * RS];
        cp16(dst + k * RS * D, base + (off >= 0 ? off : 0), off >= 0);
    }
}

/* Keys [k0, kend) (at most 64) of K and V rows into swizzled [64][D] tiles (cp.async,
 * zero past kend); by 128 threads, as load_pair_rows. */
template <typename T, int D>
__device__ __forceinline__ void load_block_kv(T *sK, T *sV, const T *kbase, long long kss, const T *vbase, long long vss,
                                              long long k0, long long kend, int tid) {
    constexpr int CH = D / 8, RS = 128 / CH;
    static_assert(128 % CH == 0 && 64 % RS == 0, "load_block_kv: 128 threads over whole rows");
    const int ch = tid % CH, r0 = tid / CH, nk = (int)(kend - k0 < 64 ? kend - k0 : 64);
    const T *kb = kbase + k0 * kss + ch * 8, *vb = vbase + k0 * vss + ch * 8;
#pragma unroll
    for (int k = 0; k < 64 / RS; k++) {
        const int r = r0 + k * RS;
        const bool ok = r < nk;
        cp16(sK + swz<D>(r, ch), ok ? kb + (long long)r * kss : kbase, ok);
        cp16(sV + swz<D>(r, ch), ok ? vb + (long long)r * vss : vbase, ok);
    }
}

/* A pair's row of normalised O (|O| <= max |V| of its block, any float) goes to the
 * combine in fp16 as O 2^-e, e from the row's largest |O| (mx): the stored values are
 * below 1 in magnitude, the row keeps fp16's 11 bits relative to its largest element
 * (more than the bf16 output's 8) at half the bytes of fp32, and the power of two is
 * exact both ways. Returns 2^-e; *up = 2^e. */
__device__ __forceinline__ float pair_row_scale(float mx, float *up) {
    int e = 0;
    if (mx > 0.f && mx == mx && mx != INFINITY) frexpf(mx, &e); /* mx = f 2^e, f in [0.5, 1) */
    e = max(-120, min(e, 120));
    *up = ldexpf(1.f, e);
    return ldexpf(1.f, -e);
}

struct SlcPairArgs {
    const void *q, *k, *v;
    __half *po;   /* [pairs][G][D]: each row normalised, then scaled by 2^-e (pair_row_scale) */
    float2 *plse; /* [pairs][G]: (lse in log2 units, 2^e) */
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh;
    int Nq, Nk, Hkv, G, ls;
    float scale_log2;
};

/* The pairs' forward, a warp's 16 rows from wrow done (m, l: the rows' maxima and
 * the quads' partial sums, o: unnormalised O): each row's O normalised and scaled
 * (pair_row_scale) into its pair's partial result, and (lse in log2 units, 2^e)
 * beside it; rows without a pair write nothing. */
template <int D>
__device__ __forceinline__ void pair_fwd_store(const SlcPairArgs &a, const int *sPair, const int *sRowQ, int wrow,
                                               int lane, int qbs, int QB, float m0, float m1, float l0, float l1,
                                               const float (&o)[D / 8][4]) {
#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l0 += __shfl_xor_sync(0xffffffff, l0, o2);
        l1 += __shfl_xor_sync(0xffffffff, l1, o2);
    }
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, hh = rr >> qbs;
        const float L = r2 ? l1 : l0, M = r2 ? m1 : m0;
        const float inv = L > 0.f ? 1.f / L : 0.f;
        float mx = 0.f; /* the row's largest |O|: its quad holds it */
#pragma unroll
        for (int x = 0; x < D / 8; x++) mx = fmaxf(mx, fmaxf(fabsf(o[x][2 * r2]), fabsf(o[x][2 * r2 + 1])));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
        float up;
        const float sc = inv * pair_row_scale(mx * inv, &up);
        if (sRowQ[rr] < 0) continue;
        const int pr = sPair[rr & (QB - 1)];
        __half *orow = a.po + ((size_t)pr * a.G + hh) * D;
#pragma unroll
        for (int x = 0; x < D / 8; x++)
            *reinterpret_cast<__half2 *>(orow + x * 8 + (lane & 3) * 2) =
                __floats2half2_rn(o[x][2 * r2] * sc, o[x][2 * r2 + 1] * sc);
        if ((lane & 3) == 0) a.plse[(size_t)pr * a.G + hh] = make_float2(L > 0.f ? M + log2f(L) : -INFINITY, up);
    }
}

/* One CTA of 4 warps per batch of up to QB = 64 / G pairs of one block list: 64 mma
 * rows r = hh QB + qi (head hh of the group, pair qi of the batch); the block's keys
 * in chunks of 64 (stages 2 when a block has more than one), each row masked to keys
 * j <= i' of its query; S = q K^T and O += P V on the tensor cores with the online
 * softmax of nsa_slc_tc_kernel. */
template <typename T, int D, int MINB>
__global__ void __launch_bounds__(128, MINB) nsa_slc_pair_kernel(const SlcPairArgs a, const PairList pl, const int QB,
                                                                 const int stages) {
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char pr_smem[];
    T *sQ = reinterpret_cast<T *>(pr_smem); /* [64 rows][D] */
    T *sK = sQ + 64 * D;                     /* [stages][BK][D] */
    T *sV = sK + stages * BK * D;            /* [stages][BK][D] */
    __shared__ int sPair[64], sRowQ[64];
    PairPos pp;
    if (!pair_batch(pl, blockIdx.x, QB, a.Hkv, &pp)) return;
    const auto [start, nq, b, hkv, jb] = pp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, qbs = __ffs(QB) - 1;
    pair_rows(pair_fetch(pl, start, nq, a.G, qbs, true, tid), qbs, sPair, sRowQ, {nullptr, 0, 0}, {nullptr, 0, 0}, tid);
    __syncthreads();
    load_pair_rows<T, D>(sQ, a.q, a.qsb, a.qss, a.qsh, b, hkv, a.G, qbs, sRowQ, tid);
    const long long kbeg = (long long)jb * a.ls, kend = min(kbeg + a.ls, (long long)a.Nk);
    const int nch = (int)((kend - kbeg + BK - 1) / BK);
    const T *kbase = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vbase = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    load_block_kv<T, D>(sK, sV, kbase, a.kss, vbase, a.vss, kbeg, min(kbeg + BK, kend), tid);
    cp_commit();

    const int wrow = warp * 16;
    const long long offq = (long long)a.Nk - a.Nq;
    long long ip0 = -1, ip1 = -1; /* -1: the row takes no key */
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int i = sRowQ[wrow + (lane >> 2) + 8 * r2];
        const long long ip = i >= 0 ? i + offq : -1;
        if (r2 == 0) ip0 = ip;
        else ip1 = ip;
    }
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    float o[D / 8][4];
#pragma unroll
    for (int x = 0; x < D / 8; x++) o[x][0] = o[x][1] = o[x][2] = o[x][3] = 0.f;

    for (int c = 0; c < nch; c++) {
        const int st = stages > 1 ? (c & 1) : 0;
        const long long k0 = kbeg + (long long)c * BK;
        if (c + 1 < nch)
            load_block_kv<T, D>(sK + (st ^ 1) * BK * D, sV + (st ^ 1) * BK * D, kbase, a.kss, vbase, a.vss, k0 + BK,
                                min(k0 + 2 * BK, kend), tid);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
        slc_fwd_chunk<T, D>(sQ, sKs, sVs, wrow, lane, k0, kend, true, true, ip0, ip1, a.scale_log2, m0, m1, l0, l1, o);
        __syncthreads();
    }
    cp_wait<0>();
    pair_fwd_store<D>(a, sPair, sRowQ, wrow, lane, qbs, QB, m0, m1, l0, l1, o);
}

/* nsa_slc_pair_kernel for blocks of at most 64 keys (l' <= 64: one chunk), with
 * up to `sub` batches of one list per CTA: the block's K and V are copied once,
 * then per batch its rows, S, the softmax, O = P V and the pairs' partial results
 * (a batch alone is 2 MFLOP against a 32 KB copy of K and V at D 128). */
template <typename T, int D, int MINB>
__global__ void __launch_bounds__(128, MINB) nsa_slc_pair_sub_kernel(const SlcPairArgs a, const PairList pl,
                                                                     const int QB, const int sub) {
    extern __shared__ __align__(128) unsigned char ps_smem[];
    T *sQ = reinterpret_cast<T *>(ps_smem); /* [64 rows][D] */
    T *sK = sQ + 64 * D;                     /* [64][D] */
    T *sV = sK + 64 * D;                     /* [64][D] */
    __shared__ int sPair[64], sRowQ[64];
    PairPos pp;
    if (!pair_batch(pl, blockIdx.x, QB * sub, a.Hkv, &pp)) return;
    const auto [start, nq, b, hkv, jb] = pp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, qbs = __ffs(QB) - 1;
    const long long kbeg = (long long)jb * a.ls, kend = min(kbeg + a.ls, (long long)a.Nk);
    load_block_kv<T, D>(sK, sV, static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh, a.kss,
                        static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh, a.vss, kbeg, kend, tid);
    cp_commit();
    const int wrow = warp * 16;
    const long long offq = (long long)a.Nk - a.Nq;
    PairRow pr = pair_fetch(pl, start, min(QB, nq), a.G, qbs, true, tid);
    for (int q0 = 0; q0 < nq; q0 += QB) {
        if (q0 > 0) __syncthreads(); /* every warp is done with the last batch's rows */
        pair_rows(pr, qbs, sPair, sRowQ, {nullptr, 0, 0}, {nullptr, 0, 0}, tid);
        __syncthreads();
        load_pair_rows<T, D>(sQ, a.q, a.qsb, a.qss, a.qsh, b, hkv, a.G, qbs, sRowQ, tid);
        cp_commit();
        if (q0 + QB < nq) pr = pair_fetch(pl, start + q0 + QB, min(QB, nq - q0 - QB), a.G, qbs, true, tid);
        cp_wait<0>(); /* and K, V the first time */
        __syncthreads();
        const int i0 = sRowQ[wrow + (lane >> 2)], i1 = sRowQ[wrow + (lane >> 2) + 8];
        const long long ip0 = i0 >= 0 ? i0 + offq : -1, ip1 = i1 >= 0 ? i1 + offq : -1;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        float o[D / 8][4];
#pragma unroll
        for (int x = 0; x < D / 8; x++) o[x][0] = o[x][1] = o[x][2] = o[x][3] = 0.f;
        slc_fwd_chunk<T, D>(sQ, sK, sV, wrow, lane, kbeg, kend, true, true, ip0, ip1, a.scale_log2, m0, m1, l0, l1, o);
        pair_fwd_store<D>(a, sPair, sRowQ, wrow, lane, qbs, QB, m0, m1, l0, l1, o);
    }
}

/* O_slc and lse plane 1 of the chunk's queries from their pairs, the slots in order
 * (the same sum in every run): a row (b, query, head) on D / 8 lanes of 8 elements
 * (16-byte loads; D of 16-128), so that a warp takes 32 / (D / 8) of the group's
 * heads of one (b, query, kv head), whose pairs' rows lie side by side and share
 * the selection's reads (nsa_pair_combine_rows; docs/perf-notes.md n53: one head
 * of 4 elements a lane before, the index arithmetic per slot taking most of the
 * kernel's issue). */
__host__ __device__ inline int nsa_pair_combine_rows(int D) { return 32 / (D / 8); }

template <typename T>
__global__ void nsa_slc_pair_combine_kernel(const __half *po, const float2 *plse, const int *sel, T *oslc, float *lse1,
                                            int B, int Nq, int Hq, int Hkv, int G, int D, int nsel, int ns, int q0,
                                            int cq) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int lpr = D / 8, rpw = 32 / lpr, ngr = (G + rpw - 1) / rpw;
    const long long item = (long long)blockIdx.x * (blockDim.x >> 5) + warp;
    if (item >= (long long)B * cq * Hkv * ngr) return;
    const int gr = (int)(item % ngr);
    const long long t = item / ngr;
    const int hkv = (int)(t % Hkv), qi = (int)((t / Hkv) % cq), b = (int)(t / ((long long)Hkv * cq));
    const int hh = gr * rpw + lane / lpr, c = (lane % lpr) * 8, i = q0 + qi;
    const bool mine = hh < G;
    const int *sl = sel + (((size_t)b * Hkv + hkv) * Nq + i) * nsel;
    const size_t p0 = (((size_t)b * Hkv + hkv) * cq + qi) * nsel;
    const __half *pr = po + (p0 * G + hh) * D + c; /* slot s: pr + s G D */
    const float2 *lr = plse + p0 * G + hh;         /* slot s: lr + s G */
    /* four slots at a time, their loads issued together, merged with a running max */
    float M = -INFINITY, L = 0.f, acc[8];
#pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.f;
    for (int s0 = 0; s0 < nsel; s0 += 4) {
        float2 ls[4];
        uint4 u[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int s = s0 + k, j = s < nsel ? sl[s] : -1;
            const bool ok = j >= 0 && j < ns && mine;
            ls[k] = ok ? lr[(size_t)s * G] : make_float2(-INFINITY, 0.f);
            u[k] = ok ? *reinterpret_cast<const uint4 *>(pr + (size_t)s * G * D) : make_uint4(0u, 0u, 0u, 0u);
        }
        float mn = M;
#pragma unroll
        for (int k = 0; k < 4; k++) mn = fmaxf(mn, ls[k].x);
        if (mn == -INFINITY) continue;
        const float rs = exp2f(M - mn); /* 0 while M is -inf */
        L *= rs;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] *= rs;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float w = exp2f(ls[k].x - mn), ws = w * ls[k].y;
            L += w;
            const __half2 *h2 = reinterpret_cast<const __half2 *>(&u[k]);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float2 f = __half22float2(h2[e]);
                acc[2 * e] += ws * f.x, acc[2 * e + 1] += ws * f.y;
            }
        }
        M = mn;
    }
    if (!mine) return;
    const float inv = L > 0.f ? 1.f / L : 0.f;
    const int h = hkv * G + hh;
    uint4 u;
    u.x = pack2<T>::from(acc[0] * inv, acc[1] * inv);
    u.y = pack2<T>::from(acc[2] * inv, acc[3] * inv);
    u.z = pack2<T>::from(acc[4] * inv, acc[5] * inv);
    u.w = pack2<T>::from(acc[6] * inv, acc[7] * inv);
    *reinterpret_cast<uint4 *>(oslc + (((size_t)b * Nq + i) * Hq + h) * D + c) = u;
    if (c == 0) lse1[((size_t)b * Hq + h) * Nq + i] = L > 0.f ? (M + log2f(L)) * 0.6931471805599453f : -INFINITY;
}


/* The selected branch's backward, one warp per (b, hkv, i) for the group's heads:
 * P from lse plane 1, dS = P (dP - Dsum); dq in registers (the warp owns the rows),
 * dk and dv of the scattered keys by fp32 atomics. */
template <typename T>
__global__ void nsa_slc_bwd_kernel(const SlcBwdArgs a) {
    extern __shared__ float smem[];
    const int wpb = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int GD = a.G * a.D;
    float *sq = smem + (size_t)warp * 3 * GD; /* q, log2-scaled */
    float *sqr = sq + GD;                     /* q */
    float *sdo = sqr + GD;                    /* dO_slc */
    const long long item = (long long)blockIdx.x * wpb + warp;
    if (item >= (long long)a.B * a.Hkv * a.Nq) return;
    const int i = (int)(item % a.Nq), hkv = (int)((item / a.Nq) % a.Hkv), b = (int)(item / ((long long)a.Nq * a.Hkv));
    const long long ip = (long long)i + a.Nk - a.Nq;
    float dsum[NSA_MAXG], lse2[NSA_MAXG];
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++) {
        dsum[hh] = 0.f, lse2[hh] = INFINITY;
        if (hh >= a.G) continue;
        const int h = hkv * a.G + hh;
        const T *qr = static_cast<const T *>(a.q) + b * a.qsb + (long long)i * a.qss + h * a.qsh;
        const size_t ro = (((size_t)b * a.Nq + i) * a.Hq + h) * a.D;
        const T *dr = static_cast<const T *>(a.dout) + ro;
        const T *orr = static_cast<const T *>(a.oslc) + ro;
        float ds = 0.f;
        for (int e = lane; e < a.D; e += 32) {
            float qv = to_f32<T>(qr[e]);
            sq[hh * a.D + e] = qv * a.scale * LOG2E;
            sqr[hh * a.D + e] = qv;
            float dv = to_f32<T>(dr[e]);
            sdo[hh * a.D + e] = dv;
            ds += dv * to_f32<T>(orr[e]);
        }
        for (int k = 16; k; k >>= 1) ds += __shfl_xor_sync(0xffffffff, ds, k);
        dsum[hh] = ds;
        float L = a.lse1[((size_t)b * a.Hq + h) * a.Nq + i];
        lse2[hh] = L == -INFINITY ? INFINITY : L * LOG2E;
    }
    __syncwarp();
    const int *sel = a.sel + (((size_t)b * a.Hkv + hkv) * a.Nq + i) * a.nsel;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    float *dkb = a.dk + ((size_t)b * a.Nk * a.Hkv + hkv) * a.D;
    float *dvb = a.dv + ((size_t)b * a.Nk * a.Hkv + hkv) * a.D;
    const long long accs = (long long)a.Hkv * a.D;
    constexpr int MAXD = 128;
    float dq[NSA_MAXG][MAXD / 32];
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++)
#pragma unroll
        for (int t = 0; t < MAXD / 32; t++) dq[hh][t] = 0.f;
    for (int s = 0; s < a.nsel; s++) {
        const int jb = sel[s];
        if (jb < 0) break;
        const long long j0 = (long long)jb * a.ls;
        const long long j1 = min(j0 + a.ls, min(ip + 1, (long long)a.Nk));
        for (long long c0 = j0; c0 < j1; c0 += 32) {
            const long long j = c0 + lane;
            float pr[NSA_MAXG], dsr[NSA_MAXG];
#pragma unroll
            for (int hh = 0; hh < NSA_MAXG; hh++) pr[hh] = dsr[hh] = 0.f;
            if (j < j1) {
                const T *kr = kb + j * a.kss, *vr = vb + j * a.vss;
                float x[NSA_MAXG], dp[NSA_MAXG];
#pragma unroll
                for (int hh = 0; hh < NSA_MAXG; hh++) x[hh] = dp[hh] = 0.f;
                for (int e0 = 0; e0 < a.D; e0 += 8) { /* 16-byte loads: a lane reads its own rows */
                    float kv[8], vv[8];
                    ld8f<T>(kr + e0, kv);
                    ld8f<T>(vr + e0, vv);
#pragma unroll
                    for (int k = 0; k < 8; k++)
#pragma unroll
                        for (int hh = 0; hh < NSA_MAXG; hh++)
                            if (hh < a.G) {
                                x[hh] += sq[hh * a.D + e0 + k] * kv[k];
                                dp[hh] += sdo[hh * a.D + e0 + k] * vv[k];
                            }
                }
#pragma unroll
                for (int hh = 0; hh < NSA_MAXG; hh++)
                    if (hh < a.G) {
                        pr[hh] = exp2f(x[hh] - lse2[hh]);
                        dsr[hh] = pr[hh] * (dp[hh] - dsum[hh]);
                    }
            }
            const int nk = (int)min((long long)32, j1 - c0);
            for (int kk = 0; kk < nk; kk++) {
                const long long jj = c0 + kk;
                const T *kr = kb + jj * a.kss;
                float kv[MAXD / 32];
#pragma unroll
                for (int t = 0; t < MAXD / 32; t++) {
                    int e = t * 32 + lane;
                    kv[t] = e < a.D ? to_f32<T>(kr[e]) : 0.f;
                }
                float gk[MAXD / 32], gv[MAXD / 32];
#pragma unroll
                for (int t = 0; t < MAXD / 32; t++) gk[t] = gv[t] = 0.f;
#pragma unroll
                for (int hh = 0; hh < NSA_MAXG; hh++) {
                    if (hh >= a.G) break;
                    const float dsk = __shfl_sync(0xffffffff, dsr[hh], kk);
                    const float pk = __shfl_sync(0xffffffff, pr[hh], kk);
#pragma unroll
                    for (int t = 0; t < MAXD / 32; t++) {
                        int e = t * 32 + lane;
                        if (e < a.D) {
                            dq[hh][t] += dsk * kv[t];
                            gk[t] += dsk * sqr[hh * a.D + e];
                            gv[t] += pk * sdo[hh * a.D + e];
                        }
                    }
                }
#pragma unroll
                for (int t = 0; t < MAXD / 32; t++) {
                    int e = t * 32 + lane;
                    if (e < a.D) {
                        if (gk[t] != 0.f) atomicAdd(dkb + jj * accs + e, gk[t] * a.scale);
                        if (gv[t] != 0.f) atomicAdd(dvb + jj * accs + e, gv[t]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++) {
        if (hh >= a.G) break;
        float *qrow = a.dq + (((size_t)b * a.Nq + i) * a.Hq + hkv * a.G + hh) * a.D;
#pragma unroll
        for (int t = 0; t < MAXD / 32; t++) {
            int e = t * 32 + lane;
            if (e < a.D) qrow[e] += dq[hh][t] * a.scale;
        }
    }
}

/* Rows of a (B, N, heads, D) tensor for load_group_q: dO of the selected branch. */
struct GroupRows {
    const void *q;
    long long qsb, qss, qsh;
    int G, Nq;
};

/* The selected branch's backward on the tensor cores (the default;
 * DMABENCH_NSA_TC_BWD=0 runs nsa_slc_bwd_kernel): one CTA of 4 warps per (tile of QS = 64 / G
 * queries, kv head, batch), the 64 mma rows and the union of the tile's selected
 * blocks as nsa_slc_tc_kernel has them. Per chunk of 64 keys: S = q K^T and
 * dP = dO V^T, P from lse plane 1 (masked to the row's own blocks and j <= i'),
 * dS = P (dP - Dsum); dQ += dS K in registers (the CTA owns its rows); P and s dS
 * go to shared memory, and each warp forms dV += P^T dO and dK += (s dS)^T Q for
 * 16 of the chunk's keys over the tile's rows and adds them into the fp32
 * accumulators with vector reductions. Dsum = dO . O_slc per row, as the CUDA-core
 * kernel takes it. */
template <typename T, int D>
__global__ void __launch_bounds__(128) nsa_slc_bwd_tc_kernel(const SlcBwdArgs a, const int QS, const int NSB,
                                                             const int cap) {
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char sbw_smem[];
    T *sQ = reinterpret_cast<T *>(sbw_smem); /* [64 rows][D] */
    T *sdO = sQ + 64 * D;                     /* [64 rows][D] */
    T *sK = sdO + 64 * D;                     /* [2][BK][D] */
    T *sV = sK + 2 * BK * D;                  /* [2][BK][D] */
    T *sP = sV + 2 * BK * D;                  /* [64 rows][BK] */
    T *sdS = sP + 64 * BK;                    /* [64 rows][BK] */
    float *sDs = reinterpret_cast<float *>(sdS + 64 * BK);                         /* [64] */
    unsigned long long *qmask = reinterpret_cast<unsigned long long *>(sDs + 64); /* [NSB] */
    int *list = reinterpret_cast<int *>(qmask + NSB);                             /* [cap] */
    int *wsum = list + cap;                                                       /* [4] + count */
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int i0 = blockIdx.x * QS;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int nrows = a.G * QS;
    const long long off = (long long)a.Nk - a.Nq;

    for (int x = tid; x < NSB; x += 128) qmask[x] = 0ULL;
    load_group_q<T, D>(sQ, a, b, hkv, i0, QS, tid);
    const GroupRows gd = {a.dout, (long long)a.Nq * a.Hq * D, (long long)a.Hq * D, D, a.G, a.Nq};
    load_group_q<T, D>(sdO, gd, b, hkv, i0, QS, tid);
    cp_commit();
    __syncthreads();
    int nchunks;
    const auto uc = union_begin<T, D>(a, b, hkv, i0, QS, NSB, cap, qmask, list, wsum, sK, sV, tid, &nchunks);
    cp_wait<1>(); /* Q and dO */
    __syncthreads();
    {   /* Dsum of the 64 rows: two threads per row, each half of D */
        const int rr = tid >> 1, half = tid & 1, hh = rr / QS, qi = rr % QS, i = i0 + qi;
        const T *orow = static_cast<const T *>(a.oslc) + (((size_t)b * a.Nq + i) * a.Hq + hkv * a.G + hh) * D;
        const float ds = row_dsum<T, D>(sdO, rr, half, rr < nrows && i < a.Nq ? orow : nullptr);
        if (!half) sDs[rr] = ds;
    }
    __syncthreads();

    /* the thread's two rows (wrow + lane/4 and 8 below): query bit, position, lse in
     * log2 units (+inf where the row takes no key, so that its P is 0), Dsum */
    const int wrow = warp * 16;
    int qi0 = 0, qi1 = 0;
    long long ip0 = -1, ip1 = -1;
    float lse20 = INFINITY, lse21 = INFINITY, dsm0 = 0.f, dsm1 = 0.f;
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, hh = rr / QS, qi = rr % QS, i = i0 + qi;
        long long ip = -1;
        float l2 = INFINITY;
        if (rr < nrows && i < a.Nq) {
            ip = (long long)i + off;
            const float L = a.lse1[((size_t)b * a.Hq + hkv * a.G + hh) * a.Nq + i];
            l2 = L == -INFINITY ? INFINITY : L * LOG2E;
        }
        if (r2 == 0) qi0 = qi, ip0 = ip, lse20 = l2, dsm0 = sDs[rr];
        else qi1 = qi, ip1 = ip, lse21 = l2, dsm1 = sDs[rr];
    }
    float dq[D / 8][4];
#pragma unroll
    for (int t = 0; t < D / 8; t++) dq[t][0] = dq[t][1] = dq[t][2] = dq[t][3] = 0.f;
    float *dkb = a.dk + ((size_t)b * a.Nk * a.Hkv + hkv) * D;
    float *dvb = a.dv + ((size_t)b * a.Nk * a.Hkv + hkv) * D;
    const long long accs = (long long)a.Hkv * D;

    for (int t = 0; t < nchunks; t++) {
        const int st = t & 1;
        if (t + 1 < nchunks) uc.load(sK + (st ^ 1) * BK * D, sV + (st ^ 1) * BK * D, t + 1, tid);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
        long long k0, kend;
        unsigned long long qm;
        uc.range(t, &k0, &kend, &qm);
        const bool on0 = (qm >> qi0) & 1ULL, on1 = (qm >> qi1) & 1ULL;
        slc_bwd_chunk<T, D>(sQ, sdO, sKs, sVs, sP, sdS, warp, lane, k0, kend, on0, on1, ip0, ip1, lse20, lse21, dsm0,
                            dsm1, a.scale, dq, dkb, dvb, accs);
        __syncthreads();
    }
    cp_wait<0>();
    /* dQ into the fp32 accumulator: the CTA owns these rows in this kernel */
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, hh = rr / QS, qi = rr % QS, i = i0 + qi;
        if (rr >= nrows || i >= a.Nq) continue;
        float *qrow = a.dq + (((size_t)b * a.Nq + i) * a.Hq + hkv * a.G + hh) * D + (lane & 3) * 2;
#pragma unroll
        for (int x = 0; x < D / 8; x++) {
            qrow[x * 8] += dq[x][2 * r2] * a.scale;
            qrow[x * 8 + 1] += dq[x][2 * r2 + 1] * a.scale;
        }
    }
}

/* Dsum = dO . O_slc of each (b, query, head) into dsum[(b Hq + h) Nq + i] for
 * nsa_slc_pair_bwd_kernel, whose CTAs would otherwise each read O_slc's rows again
 * (a query's rows nsel times): one warp per row, dO and O_slc (B, Nq, Hq, D)
 * contiguous. */
template <typename T>
__global__ void nsa_dsum_kernel(const T *dout, const T *oslc, float *dsum, int B, int Nq, int Hq, int D) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + warp; /* (b, i, h) */
    if (row >= (long long)B * Nq * Hq) return;
    const T *x = dout + (size_t)row * D, *y = oslc + (size_t)row * D;
    float ds = 0.f;
    for (int d = lane; d < D; d += 32) ds += to_f32<T>(x[d]) * to_f32<T>(y[d]);
    for (int o = 16; o; o >>= 1) ds += __shfl_xor_sync(0xffffffff, ds, o);
    const int h = (int)(row % Hq), i = (int)((row / Hq) % Nq), b = (int)(row / ((long long)Hq * Nq));
    if (lane == 0) dsum[((size_t)b * Hq + h) * Nq + i] = ds;
}

/* A thread's two mma rows of a pairs' batch in the backward: position i' (-1
 * where the row takes no key), lse in log2 units (+inf there, so that its P is 0)
 * and Dsum. */
struct PairBwdRow {
    long long ip[2];
    float lse2[2], dsm[2];
};

/* Row r's lse (plane 1) and Dsum (a.dsum's, formed once per query and head by
 * nsa_dsum_kernel; 0 without it) as thread r (< 64) reads them for query q of a
 * batch (pair_fetch's; -1: none, lse -inf). Kept raw until pair_bwd_put, so that
 * a kernel can issue the reads for the next batch and use them a batch later. */
struct PairBwdPre {
    float lse, dsum;
};
__device__ __forceinline__ PairBwdPre pair_bwd_fetch(const SlcBwdArgs &a, int b, int hkv, int qbs, int q, int tid) {
    PairBwdPre p = {-INFINITY, 0.f};
    if (tid >= 64 || q < 0) return p;
    const size_t u = ((size_t)b * a.Hq + hkv * a.G + (tid >> qbs)) * a.Nq + q;
    p.lse = a.lse1[u];
    if (a.dsum) p.dsum = a.dsum[u];
    return p;
}

/* pair_bwd_fetch's values into shared memory by the first 64 threads, before a
 * barrier: sL2[r] the lse in log2 units (+inf for -inf, so that the row's P is
 * 0), and with a.dsum sDs[r]. */
__device__ __forceinline__ void pair_bwd_put(const SlcBwdArgs &a, const PairBwdPre &p, float *sL2, float *sDs, int tid) {
    if (tid >= 64) return;
    sL2[tid] = p.lse == -INFINITY ? INFINITY : p.lse * LOG2E;
    if (a.dsum) sDs[tid] = p.dsum;
}

/* The batch's rows once sRowQ, sL2, sDs (pair_bwd_put) and sdO are in shared
 * memory: without a.dsum each row's Dsum into sDs from dO and O_slc (two of the
 * first 128 threads per row, each half of D) and a barrier; then the thread's two
 * rows (wrow + lane / 4 and 8 below it) into *rw. By all the CTA's threads (128
 * or 256). */
template <typename T, int D>
__device__ __forceinline__ void pair_bwd_rows(const SlcBwdArgs &a, int b, int hkv, int qbs, const int *sRowQ,
                                              const T *sdO, const float *sL2, float *sDs, int wrow, int tid,
                                              PairBwdRow *rw) {
    if (!a.dsum) {
        if (tid < 128) {
            const int rr = tid >> 1, half = tid & 1, hh = rr >> qbs, iq = sRowQ[rr];
            const long long i = iq >= 0 ? iq : 0;
            const T *orow = static_cast<const T *>(a.oslc) + (((size_t)b * a.Nq + i) * a.Hq + hkv * a.G + hh) * D;
            const float ds = row_dsum<T, D>(sdO, rr, half, iq >= 0 ? orow : nullptr);
            if (!half) sDs[rr] = ds;
        }
        __syncthreads();
    }
    const long long offq = (long long)a.Nk - a.Nq;
    const int lane = tid & 31;
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, iq = sRowQ[rr];
        rw->ip[r2] = iq >= 0 ? iq + offq : -1;
        rw->lse2[r2] = sL2[rr];
        rw->dsm[r2] = sDs[rr];
    }
}

/* The pairs' backward kernels' shared memory: the dynamic tiles (Q and dO of the
 * batch's 64 rows, `stages` of K and V, P and s dS, each row's Dsum) and the
 * rows' arrays (pair_rows, pair_bwd_put). */
template <typename T, int D> struct PairBwdTiles {
    T *sQ, *sdO, *sK, *sV, *sP, *sdS;
    float *sDs;
    __device__ __forceinline__ PairBwdTiles(unsigned char *smem, int stages) {
        sQ = reinterpret_cast<T *>(smem);   /* [64 rows][D] */
        sdO = sQ + 64 * D;                   /* [64 rows][D] */
        sK = sdO + 64 * D;                   /* [stages][64][D] */
        sV = sK + stages * 64 * D;           /* [stages][64][D] */
        sP = sV + stages * 64 * D;           /* [64 rows][64] */
        sdS = sP + 64 * 64;                  /* [64 rows][64] */
        sDs = reinterpret_cast<float *>(sdS + 64 * 64); /* [64] */
    }
    static size_t bytes(int stages) { return (2 * 64 + 2 * (size_t)stages * 64) * D * sizeof(T) + 2 * 64 * 64 * sizeof(T) + 64 * sizeof(float); }
};
struct PairBwdRows {
    int sRowQ[64];
    long long sOffQ[64], sOffO[64];
    float sL2[64];
};

/* A batch's rows in: pair_rows and pair_bwd_put (pr, pb: pair_fetch's and
 * pair_bwd_fetch's), a barrier, then the Q and dO row copies (cp.async, committed)
 * by NT threads (128: each copies both; 256: the first half Q, the other dO). */
template <typename T, int D, int NT>
__device__ __forceinline__ void pair_bwd_batch_rows(const SlcBwdArgs &a, const PairRow &pr, const PairBwdPre &pb,
                                                    const PairBwdTiles<T, D> &t, PairBwdRows &r, int b, int hkv,
                                                    int qbs, int tid) {
    pair_rows(pr, qbs, nullptr, r.sRowQ, {r.sOffQ, a.qss, a.qsh}, {r.sOffO, (long long)a.Hq * D, D}, tid);
    pair_bwd_put(a, pb, r.sL2, t.sDs, tid);
    __syncthreads();
    const long long dosb = (long long)a.Nq * a.Hq * D;
    if (NT == 128 || tid < 128) load_pair_rows_off<T, D>(t.sQ, a.q, a.qsb, a.qsh, b, hkv, a.G, r.sOffQ, tid);
    if (NT == 128 || tid >= 128)
        load_pair_rows_off<T, D>(t.sdO, a.dout, dosb, D, b, hkv, a.G, r.sOffO, NT == 128 ? tid : tid - 128);
    cp_commit();
}

/* One batch's start in the sub-batch kernels, after the barrier that ends the last
 * batch: its rows in (pair_bwd_batch_rows, from pr and pb), the next batch's
 * pairs read into pr (nnext of them from plist's next; none where nnext <= 0)
 * while the copies and K, V (the first time) land, a barrier, and the thread's
 * two rows (pair_bwd_rows). */
template <typename T, int D, int NT>
__device__ __forceinline__ PairBwdRow pair_bwd_batch(const SlcBwdArgs &a, const PairList &pl, PairRow &pr,
                                                     const PairBwdPre &pb, const PairBwdTiles<T, D> &t, PairBwdRows &r,
                                                     int b, int hkv, int qbs, int next, int nnext, int wrow, int tid) {
    pair_bwd_batch_rows<T, D, NT>(a, pr, pb, t, r, b, hkv, qbs, tid);
    if (nnext > 0) pr = pair_fetch(pl, next, nnext, a.G, qbs, false, tid);
    cp_wait<0>();
    __syncthreads();
    PairBwdRow rw;
    pair_bwd_rows<T, D>(a, b, hkv, qbs, r.sRowQ, t.sdO, r.sL2, t.sDs, wrow, tid, &rw);
    return rw;
}

/* The sub-batch backward kernels' start (NT threads): the block's keys [kbeg, kend)
 * of the batch pp and their K and V rows into t by the first 128 threads (cp.async,
 * committed). */
template <typename T, int D, int NT>
__device__ __forceinline__ void pair_bwd_sub_kv(const SlcBwdArgs &a, const PairPos &pp, const PairBwdTiles<T, D> &t,
                                                long long kbeg, long long kend, int tid) {
    if (NT == 128 || tid < 128)
        load_block_kv<T, D>(t.sK, t.sV, static_cast<const T *>(a.k) + pp.b * a.ksb + pp.hkv * a.ksh, a.kss,
                            static_cast<const T *>(a.v) + pp.b * a.vsb + pp.hkv * a.vsh, a.vss, kbeg, kend, tid);
    cp_commit();
}

/* dQ of a warp's two rows per thread (wrow + lane / 4 and 8 below), NC 8-column
 * chunks from chunk c0, times sc, added into a.dq (a query's blocks are in
 * different CTAs: vector reductions). */
template <int D, int NC>
__device__ __forceinline__ void pair_add_dq(const SlcBwdArgs &a, const int *sRowQ, const float (&dq)[NC][4], int b,
                                            int hkv, int qbs, int wrow, int c0, float sc, int lane) {
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, iq = sRowQ[rr];
        if (iq < 0) continue;
        float *qrow = a.dq + (((size_t)b * a.Nq + iq) * a.Hq + hkv * a.G + (rr >> qbs)) * D + c0 * 8 + (lane & 3) * 2;
#pragma unroll
        for (int x = 0; x < NC; x++) red_add2(qrow + x * 8, dq[x][2 * r2] * sc, dq[x][2 * r2 + 1] * sc);
    }
}

/* A warp's dK or dV of keys kbeg + wkey .. + 15 (acc: the m16n8 layout over D)
 * added into base (row stride accs), the elements that are 0 left out. */
template <int D>
__device__ __forceinline__ void pair_add_keys(const float (&acc)[D / 8][4], float *base, long long accs,
                                              long long kbeg, long long kend, int wkey, int lane) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const long long j = kbeg + wkey + (lane >> 2) + 8 * r;
        if (j >= kend) continue;
        float *row = base + j * accs + (lane & 3) * 2;
#pragma unroll
        for (int x = 0; x < D / 8; x++)
            if (acc[x][2 * r] != 0.f || acc[x][2 * r + 1] != 0.f) red_add2(row + x * 8, acc[x][2 * r], acc[x][2 * r + 1]);
    }
}

/* The selected branch's backward by key block (slc_choose_pairs says when): one CTA of 4 warps per batch of up to QB = 64 / G pairs of one
 * block list, the rows as the forward has them. Per chunk of 64 keys of the block:
 * S = q K^T and dP = dO V^T, P from lse plane 1 (the row's keys j <= i'), dS = P (dP -
 * Dsum); dQ += dS K in registers, added into the fp32 accumulator at the end (a query's
 * nsel blocks are in different CTAs: vector reductions); dV += P^T dO and dK +=
 * (s dS)^T Q for the warp's 16 keys over the batch's rows, added the same way as
 * nsa_slc_bwd_tc_kernel does. */
template <typename T, int D>
__global__ void __launch_bounds__(128) nsa_slc_pair_bwd_kernel(const SlcBwdArgs a, const PairList pl, const int QB,
                                                               const int stages) {
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char pbw_smem[];
    const PairBwdTiles<T, D> tl(pbw_smem, stages);
    T *const sQ = tl.sQ, *const sdO = tl.sdO, *const sK = tl.sK, *const sV = tl.sV, *const sP = tl.sP, *const sdS = tl.sdS;
    __shared__ PairBwdRows rs;
    PairPos pp;
    if (!pair_batch(pl, blockIdx.x, QB, a.Hkv, &pp)) return;
    const auto [start, nq, b, hkv, jb] = pp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, qbs = __ffs(QB) - 1;
    const PairRow pr = pair_fetch(pl, start, nq, a.G, qbs, false, tid);
    pair_bwd_batch_rows<T, D, 128>(a, pr, pair_bwd_fetch(a, b, hkv, qbs, pr.q, tid), tl, rs, b, hkv, qbs, tid);
    const long long kbeg = (long long)jb * a.ls, kend = min(kbeg + a.ls, (long long)a.Nk);
    const int nch = (int)((kend - kbeg + BK - 1) / BK);
    const T *kbase = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vbase = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    load_block_kv<T, D>(sK, sV, kbase, a.kss, vbase, a.vss, kbeg, min(kbeg + BK, kend), tid);
    cp_commit();
    cp_wait<1>(); /* Q and dO */
    __syncthreads();
    const int wrow = warp * 16;
    PairBwdRow rw;
    pair_bwd_rows<T, D>(a, b, hkv, qbs, rs.sRowQ, sdO, rs.sL2, tl.sDs, wrow, tid, &rw);
    const long long ip0 = rw.ip[0], ip1 = rw.ip[1];
    const float lse20 = rw.lse2[0], lse21 = rw.lse2[1], dsm0 = rw.dsm[0], dsm1 = rw.dsm[1];
    float dq[D / 8][4];
#pragma unroll
    for (int t = 0; t < D / 8; t++) dq[t][0] = dq[t][1] = dq[t][2] = dq[t][3] = 0.f;
    float *dkb = a.dk + ((size_t)b * a.Nk * a.Hkv + hkv) * D;
    float *dvb = a.dv + ((size_t)b * a.Nk * a.Hkv + hkv) * D;
    const long long accs = (long long)a.Hkv * D;

    for (int c = 0; c < nch; c++) {
        const int st = stages > 1 ? (c & 1) : 0;
        const long long k0 = kbeg + (long long)c * BK;
        if (c + 1 < nch)
            load_block_kv<T, D>(sK + (st ^ 1) * BK * D, sV + (st ^ 1) * BK * D, kbase, a.kss, vbase, a.vss, k0 + BK,
                                min(k0 + 2 * BK, kend), tid);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
        slc_bwd_chunk<T, D>(sQ, sdO, sKs, sVs, sP, sdS, warp, lane, k0, kend, true, true, ip0, ip1, lse20, lse21, dsm0,
                            dsm1, a.scale, dq, dkb, dvb, accs);
        __syncthreads();
    }
    cp_wait<0>();
    pair_add_dq<D, D / 8>(a, rs.sRowQ, dq, b, hkv, qbs, wrow, 0, a.scale, lane);
}

/* nsa_slc_pair_bwd_kernel for blocks of at most 64 keys (l' <= 64: one chunk),
 * with up to `sub` batches of one list per CTA: the block's K and V are loaded
 * once, and dV and dK of the warp's 16 keys stay in registers over the batches,
 * added to global memory once at the end. The reductions of dK and dV (two
 * thirds of the pairs' backward's, which keep the L2 busy) fall by up to `sub`.
 * Per batch: its rows (Q, dO, Dsum, lse), S and dP for the warp's 16 rows, P and
 * s dS to shared memory, dQ = dS K added to global memory at once (in two parts
 * of D, to spare registers), a barrier, dV += P^T dO and dK += (s dS)^T Q. */
template <typename T, int D>
__global__ void __launch_bounds__(128) nsa_slc_pair_bwd_sub_kernel(const SlcBwdArgs a, const PairList pl, const int QB,
                                                                   const int sub) {
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char pbs_smem[];
    const PairBwdTiles<T, D> tl(pbs_smem, 1);
    T *const sQ = tl.sQ, *const sdO = tl.sdO, *const sK = tl.sK, *const sV = tl.sV, *const sP = tl.sP, *const sdS = tl.sdS;
    __shared__ PairBwdRows rs;
    PairPos pp;
    if (!pair_batch(pl, blockIdx.x, QB * sub, a.Hkv, &pp)) return;
    const auto [start, nq, b, hkv, jb] = pp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, qbs = __ffs(QB) - 1;
    const long long kbeg = (long long)jb * a.ls, kend = min(kbeg + a.ls, (long long)a.Nk);
    pair_bwd_sub_kv<T, D, 128>(a, pp, tl, kbeg, kend, tid);
    const int wrow = warp * 16, wkey = warp * 16;
    const float sl2 = a.scale * LOG2E;
    float dv[D / 8][4], dk[D / 8][4];
#pragma unroll
    for (int x = 0; x < D / 8; x++)
#pragma unroll
        for (int e = 0; e < 4; e++) dv[x][e] = dk[x][e] = 0.f;

    PairRow pr = pair_fetch(pl, start, min(QB, nq), a.G, qbs, false, tid);
    PairBwdPre pb = pair_bwd_fetch(a, b, hkv, qbs, pr.q, tid);
    for (int q0 = 0; q0 < nq; q0 += QB) {
        if (q0 > 0) __syncthreads(); /* every warp is done with the last batch's rows, P and dS */
        const PairBwdRow rw = pair_bwd_batch<T, D, 128>(a, pl, pr, pb, tl, rs, b, hkv, qbs, start + q0 + QB,
                                                       min(QB, nq - q0 - QB), wrow, tid);

        float dp[BK / 8][4];
        slc_bwd_pds<T, D>(sQ, sdO, sK, sV, sP, sdS, wrow, lane, kbeg, kend, true, true, rw.ip[0], rw.ip[1], rw.lse2[0],
                          rw.lse2[1], rw.dsm[0], rw.dsm[1], a.scale, sl2, dp);
        /* dQ = dS K (the scale at the end) for the warp's rows, in DH parts of D
         * (mma_a_rows takes its column chunks in pairs) */
        constexpr int DH = D >= 32 ? 2 : 1, NC = D / 8 / DH;
#pragma unroll
        for (int h = 0; h < DH; h++) {
            float dq[NC][4];
#pragma unroll
            for (int x = 0; x < NC; x++) dq[x][0] = dq[x][1] = dq[x][2] = dq[x][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                uint32_t af[4];
                acc_to_a<T>(dp, kk, af);
                mma_a_rows<T, D, NC>(dq, af, sK, kk, h * NC, lane);
            }
            pair_add_dq<D, NC>(a, rs.sRowQ, dq, b, hkv, qbs, wrow, h * NC, a.scale, lane);
        }
        __syncthreads();
        if (q0 + QB < nq) pb = pair_bwd_fetch(a, b, hkv, qbs, pr.q, tid); /* the next batch's */
        /* dV += P^T dO, dK += (s dS)^T Q: the warp's 16 keys over the batch's rows */
#pragma unroll
        for (int kk = 0; kk < 64 / 16; kk++) {
            uint32_t af[4];
            ld_a_t<BK>(af, sP, kk, wkey, lane);
            mma_a_rows<T, D, D / 8>(dv, af, sdO, kk, 0, lane);
            ld_a_t<BK>(af, sdS, kk, wkey, lane);
            mma_a_rows<T, D, D / 8>(dk, af, sQ, kk, 0, lane);
        }
    }
    const long long accs = (long long)a.Hkv * D, kvo = ((long long)b * a.Nk * a.Hkv + hkv) * D;
    pair_add_keys<D>(dv, a.dv + kvo, accs, kbeg, kend, wkey, lane);
    pair_add_keys<D>(dk, a.dk + kvo, accs, kbeg, kend, wkey, lane);
}

/* nsa_slc_pair_bwd_sub_kernel on 8 warps of at most 128 registers (the 4-warp
 * kernel holds dK and dV of its 16 keys, 128 fp32 registers a thread, and runs at
 * 255 with 8 warps an SM). Warp w takes rows rg = w % 4 (16 of the batch's 64) and
 * half kh = w / 4: S and dP of its rows over keys 32 kh .. 32 kh + 31 of the
 * block (slc_bwd_pds at 32 keys), P and s dS to shared memory; after a barrier dQ
 * of its rows over all 64 keys for columns kh D / 2 .. (kh + 1) D / 2 - 1 (dS read
 * back from sdS, 32 columns a pass); then dV (kh 0) or dK (kh 1) of keys 16 rg ..
 * 16 rg + 15 over the batch's rows, one D-wide accumulator kept over the batches.
 * D 64 and 128 (dQ's passes take 8-column chunks in pairs). Shared memory as the
 * 4-warp kernel's, so 2 CTAs (16 warps) an SM at D 128. */
template <typename T, int D>
__global__ void __launch_bounds__(256, 2) nsa_slc_pair_bwd_w8_kernel(const SlcBwdArgs a, const PairList pl,
                                                                     const int QB, const int sub) {
    static_assert(D == 64 || D == 128, "nsa_slc_pair_bwd_w8_kernel: D 64 or 128");
    constexpr int BK = 64;
    extern __shared__ __align__(128) unsigned char pb8_smem[];
    const PairBwdTiles<T, D> tl(pb8_smem, 1);
    T *const sQ = tl.sQ, *const sdO = tl.sdO, *const sK = tl.sK, *const sV = tl.sV, *const sP = tl.sP, *const sdS = tl.sdS;
    __shared__ PairBwdRows rs;
    PairPos pp;
    if (!pair_batch(pl, blockIdx.x, QB * sub, a.Hkv, &pp)) return;
    const auto [start, nq, b, hkv, jb] = pp;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, qbs = __ffs(QB) - 1;
    const int rg = warp & 3, kh = warp >> 2, wrow = rg * 16, wkey = rg * 16;
    const long long kbeg = (long long)jb * a.ls, kend = min(kbeg + a.ls, (long long)a.Nk);
    pair_bwd_sub_kv<T, D, 256>(a, pp, tl, kbeg, kend, tid);
    const float sl2 = a.scale * LOG2E;
    /* kh 0: dV += P^T dO; kh 1: dK += (s dS)^T Q */
    const T *sA = kh ? sdS : sP, *sB = kh ? sQ : sdO;
    float acc[D / 8][4];
#pragma unroll
    for (int x = 0; x < D / 8; x++) acc[x][0] = acc[x][1] = acc[x][2] = acc[x][3] = 0.f;

    PairRow pr = pair_fetch(pl, start, min(QB, nq), a.G, qbs, false, tid);
    PairBwdPre pb = pair_bwd_fetch(a, b, hkv, qbs, pr.q, tid);
    for (int q0 = 0; q0 < nq; q0 += QB) {
        if (q0 > 0) __syncthreads(); /* every warp is done with the last batch's rows, P and dS */
        const PairBwdRow rw = pair_bwd_batch<T, D, 256>(a, pl, pr, pb, tl, rs, b, hkv, qbs, start + q0 + QB,
                                                       min(QB, nq - q0 - QB), wrow, tid);
        {
            float dp[BK / 16][4];
            slc_bwd_pds<T, D, 32>(sQ, sdO, sK + kh * 32 * D, sV + kh * 32 * D, sP, sdS, wrow, lane, kbeg + kh * 32,
                                  kend, true, true, rw.ip[0], rw.ip[1], rw.lse2[0], rw.lse2[1], rw.dsm[0], rw.dsm[1],
                                  a.scale, sl2, dp, kh * 4);
        }
        __syncthreads();
        /* dQ = (s dS) K: the warp's rows, columns from kh D / 2, in passes of NC
         * 8-column chunks (sdS holds dS times the scale) */
        constexpr int NC = 4, NP = D / 2 / 8 / NC;
#pragma unroll
        for (int p = 0; p < NP; p++) {
            const int c0 = kh * (D / 16) + p * NC;
            float dq[NC][4];
#pragma unroll
            for (int x = 0; x < NC; x++) dq[x][0] = dq[x][1] = dq[x][2] = dq[x][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                uint32_t af[4];
                ld_a<BK>(af, sdS, kk, wrow, lane);
                mma_a_rows<T, D, NC>(dq, af, sK, kk, c0, lane);
            }
            pair_add_dq<D, NC>(a, rs.sRowQ, dq, b, hkv, qbs, wrow, c0, 1.f, lane);
        }
        if (q0 + QB < nq) pb = pair_bwd_fetch(a, b, hkv, qbs, pr.q, tid); /* the next batch's */
        /* dV or dK of the warp's 16 keys over the batch's 64 rows */
#pragma unroll
        for (int kk = 0; kk < 64 / 16; kk++) {
            uint32_t af[4];
            ld_a_t<BK>(af, sA, kk, wkey, lane);
            mma_a_rows<T, D, D / 8>(acc, af, sB, kk, 0, lane);
        }
    }
    pair_add_keys<D>(acc, (kh ? a.dk : a.dv) + ((long long)b * a.Nk * a.Hkv + hkv) * D, (long long)a.Hkv * D, kbeg,
                     kend, wkey, lane);
}

/* The tile of a kernel over the union of a tile's selected blocks (the selected
 * branch's forward and backward on the tensor cores): *qs = 64 / G queries, the
 * union list's capacity and the shared-memory bytes, fixed bytes for the kernel's
 * own tiles besides the block masks and the list; *qs = 0 when it does not apply
 * (G does not divide 64, or it does not fit the device's shared memory). */
attn_status union_tile(int G, int ns, int nsel, int D, size_t fixed, int *qs, int *cap, size_t *smem) {
    *qs = 0, *cap = 0, *smem = 0;
    if (G < 1 || 64 % G != 0 || (D != 16 && D != 32 && D != 64 && D != 128)) return ATTN_OK;
    size_t optin = 0;
    attn_status st = dm_cuda_smem_optin(&optin);
    if (st != ATTN_OK) return st;
    const int q = 64 / G;
    const int c = std::min(ns, q * nsel);
    const size_t need = fixed + (size_t)ns * 8 + (size_t)c * 4 + 8 * sizeof(int);
    if (need > optin) return ATTN_OK;
    *qs = q, *cap = c, *smem = need;
    return ATTN_OK;
}

/* nsa_slc_tc_kernel: Q and two stages of K and V */
attn_status slc_tc_tile(int G, int ns, int nsel, int D, size_t esize, int *qs, int *cap, size_t *smem) {
    return union_tile(G, ns, nsel, D, 5 * 64 * (size_t)D * esize, qs, cap, smem);
}

/* The selected branch's backward on the tensor cores (nsa_slc_bwd_tc_kernel) by
 * default; DMABENCH_NSA_TC_BWD=0 runs nsa_slc_bwd_kernel on the CUDA cores. */
int nsa_tc_bwd_enabled() {
    static const bool on = !dm_env_is("DMABENCH_NSA_TC_BWD", "0");
    return on;
}

/* nsa_slc_bwd_tc_kernel: as nsa_slc_tc_kernel's, with dO, P, dS and the rows' Dsum besides */
attn_status slc_bwd_tc_tile(int G, int ns, int nsel, int D, size_t esize, int *qs, int *cap, size_t *smem) {
    return union_tile(G, ns, nsel, D, 6 * 64 * (size_t)D * esize + 2 * 64 * 64 * esize + 64 * sizeof(float), qs, cap,
                      smem);
}

/* A union-tile kernel (nsa_slc_tc_kernel, nsa_slc_bwd_tc_kernel): one CTA of 128 per
 * (tile of qs queries, kv head, batch). */
template <typename A>
attn_status launch_union_kernel(void (*kern)(A, int, int, int), const A &a, int qs, int ns, int cap, size_t smem) {
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)((a.Nq + qs - 1) / qs), (unsigned)a.Hkv, (unsigned)a.B);
    kern<<<grid, 128, smem>>>(a, qs, ns, cap);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T> attn_status launch_slc_bwd_tc(const SlcBwdArgs &a, int qs, int ns, int cap, size_t smem) {
    switch (a.D) {
    case 16: return launch_union_kernel(nsa_slc_bwd_tc_kernel<T, 16>, a, qs, ns, cap, smem);
    case 32: return launch_union_kernel(nsa_slc_bwd_tc_kernel<T, 32>, a, qs, ns, cap, smem);
    case 64: return launch_union_kernel(nsa_slc_bwd_tc_kernel<T, 64>, a, qs, ns, cap, smem);
    default: return launch_union_kernel(nsa_slc_bwd_tc_kernel<T, 128>, a, qs, ns, cap, smem);
    }
}

template <typename T> attn_status launch_slc_tc(const SlcArgs &a, int qs, int ns, int cap, size_t smem) {
    switch (a.D) {
    case 16: return launch_union_kernel(nsa_slc_tc_kernel<T, 16>, a, qs, ns, cap, smem);
    case 32: return launch_union_kernel(nsa_slc_tc_kernel<T, 32>, a, qs, ns, cap, smem);
    case 64: return launch_union_kernel(nsa_slc_tc_kernel<T, 64>, a, qs, ns, cap, smem);
    default: return launch_union_kernel(nsa_slc_tc_kernel<T, 128>, a, qs, ns, cap, smem);
    }
}

/* Whether the selected branch may go by key block (nsa_slc_pair_kernel,
 * nsa_slc_pair_bwd_kernel): where the tensor-core kernels apply (G divides 64, D of
 * 16-128), unless DMABENCH_NSA_SLC=union. */
int nsa_slc_pairs(int G, int D) {
    static const bool on = !dm_env_is("DMABENCH_NSA_SLC", "union");
    return on && G >= 1 && 64 % G == 0 && (D == 16 || D == 32 || D == 64 || D == 128);
}

dm_cuda_ws g_pws;  /* the forward's pair lists and partial results */
dm_cuda_ws g_pbws; /* the backward's pair lists */

constexpr size_t PAIR_PART_BYTES = (size_t)1 << 30; /* partial results per chunk of queries, at most */

/* The pair lists of a chunk of cq queries at the start of a workspace: each array's
 * byte offset (256-aligned) and the bytes in all, for nl = B Hkv ns lists of np = B
 * Hkv cq nsel pairs at most: cnt [nl], the runs' counts rcnt [B Hkv][runs][ns]
 * (nsa_pair_count_kernel), off and boff [nl + 1], plist and pq [np], bmap (a list
 * per batch) [np / qb + nl] at most. */
struct PairLayout {
    int nl, runs, qc;
    size_t np, cnt, rcnt, off, boff, plist, pq, bmap, bytes;
};

PairLayout pair_layout(int B, int Hkv, int ns, int cq, int nsel) {
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    PairLayout L;
    L.nl = B * Hkv * ns, L.np = (size_t)B * Hkv * cq * nsel;
    L.qc = pair_run_queries(ns), L.runs = (cq + L.qc - 1) / L.qc;
    const size_t cntb = r256((size_t)L.nl * sizeof(int)), offb = r256((size_t)(L.nl + 1) * sizeof(int));
    const size_t pb = r256(L.np * sizeof(int));
    L.cnt = 0, L.rcnt = cntb, L.off = L.rcnt + r256((size_t)L.nl * L.runs * sizeof(int));
    L.boff = L.off + offb, L.plist = L.boff + offb;
    L.pq = L.plist + pb, L.bmap = L.pq + pb, L.bytes = L.bmap + r256((L.np + L.nl) * sizeof(int));
    return L;
}

/* The PairList of lists built in ws (layout L) whose batches of qb pairs are in
 * boff and bmap, and *grid: an upper bound on those batches (every list's last
 * batch may be partial). */
void pair_list_at(const char *ws, const PairLayout &L, const int *boff, const int *bmap, int nsel, int ns, int q0,
                  int cq, int qb, PairList *pl, unsigned *grid) {
    auto at = [ws](size_t o) { return reinterpret_cast<const int *>(ws + o); };
    pl->cnt = at(L.cnt), pl->off = at(L.off), pl->boff = boff, pl->plist = at(L.plist), pl->pq = at(L.pq);
    pl->bmap = bmap;
    pl->nl = L.nl, pl->ns = ns, pl->nsel = nsel, pl->q0 = q0, pl->cq = cq;
    *grid = (unsigned)(((long long)L.np + qb - 1) / qb + L.nl);
}

/* The lists of the pairs of queries q0 .. q0 + cq - 1 (sel: the selection, nsel per
 * query), built in ws (pair_layout's bytes for at least these pairs); *grid: an
 * upper bound on their batches of qb. */
attn_status pair_lists(char *ws, const int *sel, int B, int Hkv, int Nq, int nsel, int ns, int q0, int cq, int qb,
                       PairList *pl, unsigned *grid) {
    const PairLayout L = pair_layout(B, Hkv, ns, cq, nsel);
    const int nl = L.nl;
    auto at = [ws](size_t o) { return reinterpret_cast<int *>(ws + o); };
    int *cnt = at(L.cnt), *rcnt = at(L.rcnt), *off = at(L.off), *boff = at(L.boff);
    int *plist = at(L.plist), *pq = at(L.pq), *bmap = at(L.bmap);
    CUDA_CHECK(cudaMemsetAsync(cnt, 0, L.rcnt));
    const dim3 pg((unsigned)L.runs, (unsigned)(B * Hkv));
    const size_t hs = (size_t)ns * sizeof(int);
    nsa_pair_count_kernel<<<pg, PAIR_THREADS, hs>>>(sel, Nq, nsel, ns, q0, cq, L.qc, cnt, rcnt);
    CUDA_CHECK_LAUNCH();
    nsa_pair_scan_kernel<<<1, 1024>>>(cnt, nl, qb, off, boff);
    CUDA_CHECK_LAUNCH();
    nsa_pair_bmap_kernel<<<(unsigned)((nl + 7) / 8), 256>>>(boff, nl, bmap);
    CUDA_CHECK_LAUNCH();
    nsa_pair_place_kernel<<<pg, PAIR_THREADS, hs>>>(sel, Nq, nsel, ns, q0, cq, L.qc, off, rcnt, plist, pq);
    CUDA_CHECK_LAUNCH();
    pair_list_at(ws, L, boff, bmap, nsel, ns, q0, cq, qb, pl, grid);
    return ATTN_OK;
}

/* The forward's batches of the lists over queries q0 .. q0 + cq - 1 built in ws as
 * pair_lists leaves them, for batches of qb pairs: only boff and bmap again, into
 * boff and bmap (the caller's: ws is read only). */
attn_status pair_lists_rebatch(const char *ws, int B, int Hkv, int nsel, int ns, int q0, int cq, int qb, int *boff,
                               int *bmap, PairList *pl, unsigned *grid) {
    const PairLayout L = pair_layout(B, Hkv, ns, cq, nsel);
    const int nl = L.nl;
    nsa_pair_scan_kernel<<<1, 1024>>>(reinterpret_cast<const int *>(ws + L.cnt), nl, qb, nullptr, boff);
    CUDA_CHECK_LAUNCH();
    nsa_pair_bmap_kernel<<<(unsigned)((nl + 7) / 8), 256>>>(boff, nl, bmap);
    CUDA_CHECK_LAUNCH();
    pair_list_at(ws, L, boff, bmap, nsel, ns, q0, cq, qb, pl, grid);
    return ATTN_OK;
}

/* The queries of one chunk of the pairs' forward: as many as PAIR_PART_BYTES of
 * partial results hold, at most DMABENCH_NSA_PAIR_QUERIES=n (so that the tests
 * reach several chunks at small sizes). */
int slc_pair_chunk(int B, int Hkv, int Nq, int G, int D, int nsel) {
    static const long long cap_q = getenv("DMABENCH_NSA_PAIR_QUERIES") ? atoll(getenv("DMABENCH_NSA_PAIR_QUERIES")) : 0;
    const size_t per_q = (size_t)B * Hkv * nsel * ((size_t)G * D * sizeof(__half) + G * sizeof(float2));
    size_t cqs = std::min<size_t>((size_t)Nq, PAIR_PART_BYTES / per_q);
    if (cap_q > 0) cqs = std::min<size_t>(cqs, (size_t)cap_q);
    return (int)std::max<size_t>(1, cqs);
}

/* The union kernels walk U chunks of 64 keys (a chunk: 64 mma rows by 64 keys); the
 * pairs run P batches, each one chunk's work but with its own rows to gather and,
 * forward, its partial results to write and merge (U >= P: a block in a batch of
 * qb of its queries is in at least that many tiles' unions). Since n23-n29 the
 * pairs win both on random inputs and in the 131M model's training at 8192, where
 * U / P was 1.5-4 (docs/perf-notes.md n30), so they are the default, with no count
 * and no read back. DMABENCH_NSA_SLC=union fixes the union; =auto goes by pairs
 * when U >= ratio P (PAIR_RATIO_FWD, PAIR_RATIO_BWD), counted from the selection on
 * the device (one small read back per call); DMABENCH_NSA_SLC_STATS=1 counts and
 * prints U, P and the choice to stderr. docs/perf-notes.md n12, n14, n30. */
constexpr double PAIR_RATIO_FWD = 4.0, PAIR_RATIO_BWD = 2.5;

dm_cuda_ws g_sws; /* the choice's counts */

/* kept: NSA_COUNTS_BYTES of device memory for (U, P) as two 64-bit counts, or NULL.
 * have: they already hold this selection's counts (the forward's, in the saved area:
 * the backward reads them instead of counting again); otherwise they are counted,
 * into kept when given. */
attn_status slc_choose_pairs(const int *sel, int B, int Hkv, int Nq, int nsel, int ns, int G, int ls, double ratio,
                             unsigned long long *kept, bool have, bool *pairs) {
    static const bool counted = dm_env_is("DMABENCH_NSA_SLC", "auto");
    static const bool stats = dm_env_is("DMABENCH_NSA_SLC_STATS", "1");
    *pairs = Nq > 0;
    if (Nq <= 0 || (!counted && !stats)) return ATTN_OK;
    unsigned long long *u = kept;
    if (!(kept && have)) {
        /* the lists' counts of every query at once, in pair_layout's places up to its
         * pair arrays (after 256 bytes for u) */
        const int qb = 64 / G, cpb = (ls + 63) / 64;
        const PairLayout L = pair_layout(B, Hkv, ns, Nq, nsel);
        const int nl = L.nl;
        char *ws = nullptr;
        attn_status st = dm_cuda_ws_get(&g_sws, 256 + L.plist, (void **)&ws, nullptr);
        if (st != ATTN_OK) return st;
        if (!u) u = reinterpret_cast<unsigned long long *>(ws);
        auto at = [ws](size_t o) { return reinterpret_cast<int *>(ws + 256 + o); };
        int *cnt = at(L.cnt), *off = at(L.off), *boff = at(L.boff);
        CUDA_CHECK(cudaMemsetAsync(cnt, 0, L.rcnt)); /* cnt's bytes */
        CUDA_CHECK(cudaMemsetAsync(u, 0, 2 * sizeof *u));
        nsa_pair_count_kernel<<<dim3((unsigned)L.runs, (unsigned)(B * Hkv)), PAIR_THREADS, (size_t)ns * sizeof(int)>>>(
            sel, Nq, nsel, ns, 0, Nq, L.qc, cnt, nullptr);
        CUDA_CHECK_LAUNCH();
        nsa_pair_scan_kernel<<<1, 1024>>>(cnt, nl, qb, off, boff);
        CUDA_CHECK_LAUNCH();
        nsa_union_size_kernel<<<dim3((unsigned)((Nq + qb - 1) / qb), (unsigned)Hkv, (unsigned)B), 128,
                                (size_t)(ns + 31) / 32 * sizeof(unsigned)>>>(sel, Nq, Hkv, nsel, ns, qb, cpb, u);
        CUDA_CHECK_LAUNCH();
        /* P (an int, >= 0) into the low half of u[1], whose high half the memset cleared */
        CUDA_CHECK(cudaMemcpyAsync(u + 1, boff + nl, sizeof(int), cudaMemcpyDeviceToDevice));
    }
    unsigned long long h[2] = {0, 0};
    CUDA_CHECK(cudaMemcpy(h, u, sizeof h, cudaMemcpyDeviceToHost));
    const unsigned long long U = h[0];
    const int P = (int)h[1];
    *pairs = !counted || (double)U >= ratio * (double)P;
    if (stats)
        fprintf(stderr, "nsa: selected branch: union chunks %llu, pair batches %d (ratio %.2f): %s\n", U, P,
                P > 0 ? (double)U / P : 0.0, *pairs ? "pairs" : "union");
    return ATTN_OK;
}

template <typename T, int D>
attn_status launch_slc_pair_d(const SlcPairArgs &a, const PairList &pl, int qb, int stages, int sub, unsigned grid) {
    const size_t smem = (64 + 2 * (size_t)stages * 64) * D * sizeof(T);
    /* Registers for 4 CTAs per SM (128 a thread; 48 KB of shared memory each at
     * D 128): the kernel waits on its loads and stores, and more CTAs cover them.
     * ptxas' own choice (174 registers at D 128: 2 CTAs) with
     * DMABENCH_NSA_PAIR_MINB=0, 3 CTAs with =3. */
    static const int minb = dm_env_is("DMABENCH_NSA_PAIR_MINB", "0") ? 0 : dm_env_is("DMABENCH_NSA_PAIR_MINB", "3") ? 3 : 4;
    if (sub > 1) {
        auto ks = minb == 0   ? nsa_slc_pair_sub_kernel<T, D, 0>
                  : minb == 3 ? nsa_slc_pair_sub_kernel<T, D, 3>
                              : nsa_slc_pair_sub_kernel<T, D, 4>;
        CUDA_CHECK(cudaFuncSetAttribute(ks, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        ks<<<grid, 128, smem>>>(a, pl, qb, sub);
        CUDA_CHECK_LAUNCH();
        return ATTN_OK;
    }
    auto kern = minb == 0 ? nsa_slc_pair_kernel<T, D, 0> : minb == 3 ? nsa_slc_pair_kernel<T, D, 3> : nsa_slc_pair_kernel<T, D, 4>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kern<<<grid, 128, smem>>>(a, pl, qb, stages);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* O_slc and lse plane 1 (sa: the selected branch's arguments) through the pairs,
 * chunk by chunk of queries. lists: where the lists are kept for the backward
 * (nsa_slc_lists_bytes; one chunk), or null. */
template <typename T> attn_status slc_pairs(const SlcArgs &sa, int ns, char *lists) {
    const int B = sa.B, Nq = sa.Nq, Hkv = sa.Hkv, G = sa.G, D = sa.D, nsel = sa.nsel;
    const int qb = 64 / G, stages = sa.ls > 64 ? 2 : 1;
    /* Blocks of one chunk (l' <= 64): up to `sub` batches of a list per CTA
     * (nsa_slc_pair_sub_kernel; DMABENCH_NSA_PAIR_FWD_SUB=2, 4 or 16 instead of
     * 8, 1 for the kernel of one batch) */
    static const int sub_env = dm_env_is("DMABENCH_NSA_PAIR_FWD_SUB", "1")    ? 1
                               : dm_env_is("DMABENCH_NSA_PAIR_FWD_SUB", "2")  ? 2
                               : dm_env_is("DMABENCH_NSA_PAIR_FWD_SUB", "4")  ? 4
                               : dm_env_is("DMABENCH_NSA_PAIR_FWD_SUB", "16") ? 16
                                                                               : 8;
    const int sub = stages == 1 ? sub_env : 1;
    const int cq = slc_pair_chunk(B, Hkv, Nq, G, D, nsel);
    if (lists && cq < Nq) return ATTN_ERR_INVALID; /* nsa_slc_lists_bytes keeps none then */
    const size_t np = (size_t)B * Hkv * cq * nsel;
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    const size_t lb = lists ? 0 : pair_layout(B, Hkv, ns, cq, nsel).bytes, pob = r256(np * G * D * sizeof(__half));
    char *ws = nullptr;
    attn_status st = dm_cuda_ws_get(&g_pws, lb + pob + r256(np * G * sizeof(float2)), (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    SlcPairArgs a;
    a.q = sa.q, a.k = sa.k, a.v = sa.v;
    a.po = reinterpret_cast<__half *>(ws + lb), a.plse = reinterpret_cast<float2 *>(ws + lb + pob);
    a.qsb = sa.qsb, a.qss = sa.qss, a.qsh = sa.qsh, a.ksb = sa.ksb, a.kss = sa.kss, a.ksh = sa.ksh;
    a.vsb = sa.vsb, a.vss = sa.vss, a.vsh = sa.vsh;
    a.Nq = Nq, a.Nk = sa.Nk, a.Hkv = Hkv, a.G = G, a.ls = sa.ls;
    a.scale_log2 = sa.scale_log2;
    for (int q0 = 0; q0 < Nq; q0 += cq) {
        const int c = std::min(cq, Nq - q0);
        PairList pl;
        unsigned grid = 0;
        if ((st = pair_lists(lists ? lists : ws, sa.sel, B, Hkv, Nq, nsel, ns, q0, c, qb * sub, &pl, &grid)) != ATTN_OK)
            return st;
        switch (D) {
        case 16: st = launch_slc_pair_d<T, 16>(a, pl, qb, stages, sub, grid); break;
        case 32: st = launch_slc_pair_d<T, 32>(a, pl, qb, stages, sub, grid); break;
        case 64: st = launch_slc_pair_d<T, 64>(a, pl, qb, stages, sub, grid); break;
        default: st = launch_slc_pair_d<T, 128>(a, pl, qb, stages, sub, grid);
        }
        if (st != ATTN_OK) return st;
        const int rpw = nsa_pair_combine_rows(D);
        const long long items = (long long)B * c * Hkv * ((G + rpw - 1) / rpw);
        nsa_slc_pair_combine_kernel<T><<<(unsigned)((items + 7) / 8), 256>>>(
            a.po, a.plse, sa.sel, static_cast<T *>(sa.o), sa.lse1, B, Nq, sa.Hq, Hkv, G, D, nsel, ns, q0, c);
        CUDA_CHECK_LAUNCH();
    }
    return ATTN_OK;
}

template <typename T, int D>
attn_status launch_slc_pair_bwd_d(const SlcBwdArgs &a, const PairList &pl, int qb, int stages, unsigned grid) {
    const size_t smem = PairBwdTiles<T, D>::bytes(stages);
    CUDA_CHECK(
        cudaFuncSetAttribute(nsa_slc_pair_bwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    nsa_slc_pair_bwd_kernel<T, D><<<grid, 128, smem>>>(a, pl, qb, stages);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T, int D>
attn_status launch_slc_pair_bwd_sub_d(const SlcBwdArgs &a, const PairList &pl, int qb, int sub, unsigned grid) {
    const size_t smem = PairBwdTiles<T, D>::bytes(1);
    CUDA_CHECK(cudaFuncSetAttribute(nsa_slc_pair_bwd_sub_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem));
    nsa_slc_pair_bwd_sub_kernel<T, D><<<grid, 128, smem>>>(a, pl, qb, sub);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T, int D>
attn_status launch_slc_pair_bwd_w8_d(const SlcBwdArgs &a, const PairList &pl, int qb, int sub, unsigned grid) {
    const size_t smem = PairBwdTiles<T, D>::bytes(1);
    CUDA_CHECK(cudaFuncSetAttribute(nsa_slc_pair_bwd_w8_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem));
    nsa_slc_pair_bwd_w8_kernel<T, D><<<grid, 256, smem>>>(a, pl, qb, sub);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* The selected branch's backward through the pairs (the lists of all queries at once:
 * no partial results to hold). lists: the forward's (slc_pairs), or null: built
 * here. */
template <typename T> attn_status slc_pairs_bwd(const SlcBwdArgs &a0, int ns, const char *lists) {
    /* DMABENCH_NSA_PAIR_DSUM=0: each CTA forms its rows' Dsum from O_slc itself */
    static const bool pre = !dm_env_is("DMABENCH_NSA_PAIR_DSUM", "0");
    const int qb = 64 / a0.G, stages = a0.ls > 64 ? 2 : 1;
    const size_t nrow = (size_t)a0.B * a0.Nq * a0.Hq;
    const PairLayout L = pair_layout(a0.B, a0.Hkv, ns, a0.Nq, a0.nsel);
    /* with the forward's lists, only boff and bmap here */
    const size_t lb = lists ? L.bytes - L.boff - (L.bmap - L.plist) : L.bytes;
    char *ws = nullptr;
    attn_status st = dm_cuda_ws_get(&g_pbws, lb + (pre && !a0.dsum ? nrow * sizeof(float) : 0), (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    SlcBwdArgs a = a0;
    if (!pre) a.dsum = nullptr;
    if (pre && !a0.dsum) {
        float *dsum = reinterpret_cast<float *>(ws + lb);
        nsa_dsum_kernel<T><<<(unsigned)((nrow + 7) / 8), 256>>>(static_cast<const T *>(a.dout),
                                                               static_cast<const T *>(a.oslc), dsum, a.B, a.Nq, a.Hq, a.D);
        CUDA_CHECK_LAUNCH();
        a.dsum = dsum;
    }
    /* Blocks of one chunk (l' <= 64): up to `sub` batches of a list per CTA
     * (nsa_slc_pair_bwd_sub_kernel; DMABENCH_NSA_PAIR_BWD_SUB=2, 4 or 8 instead
     * of 16, 1 for the kernel of one batch); the lists' batches are then of sub qb
     * pairs */
    static const int sub_env = dm_env_is("DMABENCH_NSA_PAIR_BWD_SUB", "1")   ? 1
                               : dm_env_is("DMABENCH_NSA_PAIR_BWD_SUB", "2") ? 2
                               : dm_env_is("DMABENCH_NSA_PAIR_BWD_SUB", "4") ? 4
                               : dm_env_is("DMABENCH_NSA_PAIR_BWD_SUB", "8") ? 8
                                                                              : 16;
    const int sub = stages == 1 ? sub_env : 1;
    PairList pl;
    unsigned grid = 0;
    if (lists) {
        int *boff = reinterpret_cast<int *>(ws), *bmap = reinterpret_cast<int *>(ws + (L.plist - L.boff));
        st = pair_lists_rebatch(lists, a.B, a.Hkv, a.nsel, ns, 0, a.Nq, qb * sub, boff, bmap, &pl, &grid);
    } else {
        st = pair_lists(ws, a.sel, a.B, a.Hkv, a.Nq, a.nsel, ns, 0, a.Nq, qb * sub, &pl, &grid);
    }
    if (st != ATTN_OK) return st;
    /* DMABENCH_NSA_PAIR_BWD_W8=1: at D 64 and 128 the sub-batch kernel on 8 warps
     * (nsa_slc_pair_bwd_w8_kernel), slower than the kernel of 4 so far
     * (docs/perf-notes.md n41) */
    static const bool w8 = dm_env_is("DMABENCH_NSA_PAIR_BWD_W8", "1");
    if (sub > 1 && w8 && (a.D == 64 || a.D == 128))
        return a.D == 64 ? launch_slc_pair_bwd_w8_d<T, 64>(a, pl, qb, sub, grid)
                         : launch_slc_pair_bwd_w8_d<T, 128>(a, pl, qb, sub, grid);
    if (sub > 1) {
        switch (a.D) {
        case 16: return launch_slc_pair_bwd_sub_d<T, 16>(a, pl, qb, sub, grid);
        case 32: return launch_slc_pair_bwd_sub_d<T, 32>(a, pl, qb, sub, grid);
        case 64: return launch_slc_pair_bwd_sub_d<T, 64>(a, pl, qb, sub, grid);
        default: return launch_slc_pair_bwd_sub_d<T, 128>(a, pl, qb, sub, grid);
        }
    }
    switch (a.D) {
    case 16: return launch_slc_pair_bwd_d<T, 16>(a, pl, qb, stages, grid);
    case 32: return launch_slc_pair_bwd_d<T, 32>(a, pl, qb, stages, grid);
    case 64: return launch_slc_pair_bwd_d<T, 64>(a, pl, qb, stages, grid);
    default: return launch_slc_pair_bwd_d<T, 128>(a, pl, qb, stages, grid);
    }
}

} // namespace

size_t nsa_slc_lists_bytes(int B, int Hkv, int Nq, int nsel, int ns, int G, int D) {
    static const bool off = dm_env_is("DMABENCH_NSA_KEEP_LISTS", "0") || dm_env_is("DMABENCH_NSA_SLC", "auto");
    if (off || Nq <= 0 || !nsa_tc_enabled() || !nsa_tc_bwd_enabled() || !nsa_slc_pairs(G, D)) return 0;
    if (slc_pair_chunk(B, Hkv, Nq, G, D, nsel) < Nq) return 0;
    return pair_layout(B, Hkv, ns, Nq, nsel).bytes;
}

template <typename T> attn_status nsa_slc_forward(const SlcArgs &a, int ns, unsigned long long *counts, char *lists) {
    const int G = a.G, D = a.D;
    attn_status st;
    int qs = 0, cap = 0;
    size_t tc_smem = 0;
    if (nsa_tc_enabled() && (st = slc_tc_tile(G, ns, a.nsel, D, sizeof(T), &qs, &cap, &tc_smem)) != ATTN_OK) return st;
    /* with a saved area the counts are made for the backward even where this
     * forward does not use them (DMABENCH_NSA_TC=0 with the backward's on) */
    bool by_pairs = false;
    if ((nsa_tc_enabled() || counts) && nsa_slc_pairs(G, D) &&
        (st = slc_choose_pairs(a.sel, a.B, a.Hkv, a.Nq, a.nsel, ns, G, a.ls, PAIR_RATIO_FWD, counts, false,
                               &by_pairs)) != ATTN_OK)
        return st;
    by_pairs = by_pairs && nsa_tc_enabled();
    if (by_pairs) return slc_pairs<T>(a, ns, lists);
    if (qs > 0) return launch_slc_tc<T>(a, qs, ns, cap, tc_smem);
    const int wpb = 4;
    const long long items = (long long)a.B * a.Hkv * a.Nq;
    nsa_slc_kernel<T><<<(unsigned)((items + wpb - 1) / wpb), wpb * 32, (size_t)wpb * G * D * sizeof(float)>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T>
attn_status nsa_slc_backward(const SlcBwdArgs &a, int ns, unsigned long long *counts, bool have, const char *lists) {
    const int G = a.G, D = a.D;
    attn_status st;
    int qs = 0, cap = 0;
    size_t tc_smem = 0;
    if (nsa_tc_bwd_enabled() && (st = slc_bwd_tc_tile(G, ns, a.nsel, D, sizeof(T), &qs, &cap, &tc_smem)) != ATTN_OK)
        return st;
    bool by_pairs = false;
    if (nsa_tc_bwd_enabled() && nsa_slc_pairs(G, D) &&
        (st = slc_choose_pairs(a.sel, a.B, a.Hkv, a.Nq, a.nsel, ns, G, a.ls, PAIR_RATIO_BWD, counts, have,
                               &by_pairs)) != ATTN_OK)
        return st;
    if (by_pairs) return slc_pairs_bwd<T>(a, ns, lists);
    if (qs > 0) return launch_slc_bwd_tc<T>(a, qs, ns, cap, tc_smem);
    const int wpb = 4;
    const size_t smem = (size_t)wpb * 3 * G * D * sizeof(float);
    CUDA_CHECK(cudaFuncSetAttribute(nsa_slc_bwd_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const long long items = (long long)a.B * a.Hkv * a.Nq;
    nsa_slc_bwd_kernel<T><<<(unsigned)((items + wpb - 1) / wpb), wpb * 32, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template attn_status nsa_slc_forward<__nv_bfloat16>(const SlcArgs &, int, unsigned long long *, char *);
template attn_status nsa_slc_forward<__half>(const SlcArgs &, int, unsigned long long *, char *);
template attn_status nsa_slc_backward<__nv_bfloat16>(const SlcBwdArgs &, int, unsigned long long *, bool, const char *);
template attn_status nsa_slc_backward<__half>(const SlcBwdArgs &, int, unsigned long long *, bool, const char *);

} // namespace nsa_gpu
