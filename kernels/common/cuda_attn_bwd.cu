/*
 * cuda_attn_bwd.cu: the CUDA attention engine's backward (see cuda_attn.h).
 *
 * FlashAttention-2's backward with P recomputed from the forward's log-sum-exp, in
 * two orders. Contiguous key ranges (mha, swa, nsa's window and compressed
 * branches) take the key-parallel kernel (bwd_kp_kernel, below) when its grid fills
 * the GPU. The rest (dma's lists, dz, small grids) go by query tile, walking
 * the same key ranges and per-tile key lists as the forward (dma's selected keys
 * are scattered; a key-parallel pass would visit nearly every query for every key
 * block):
 *
 * 1. bwd_dot_kernel: Dsum_i = rowsum(dO_i * O_i) in fp32. With dz asked for (dma),
 *    Dsum_i must be sum_j P_ij dP_ij to fp32's accuracy: O was rounded to the output
 *    dtype (and the forward's P to the inputs' before P V), and with Dsum from the
 *    rounded O every row's dS is off by (rounding error) * P_i., which is small next
 *    to dQ and dK but not next to the sums of dz over queries and keys (da, db_dt),
 *    which cancel. So Dsum_i = dO_i . (O_i + residual_i) where the forward left O's
 *    rounding residual (cuda_attn_spec.ores), else from a first pass of
 *    bwd_main_kernel over the same key blocks (S and dP only).
 * 2. bwd_main_kernel, one CTA of 4 warps per (query tile of 64, query head, batch),
 *    warp w owning rows 16w..16w+15. Q and dO of the tile sit in shared memory;
 *    blocks of 64 keys (K, V and each key's query interval) stream through shared
 *    memory, double buffered with cp.async. Per block:
 *      S = Q K^T and dP = dO V^T (mma.sync, rows per warp),
 *      P = exp2(S log2e s + z log2e - lse log2e), masked to 0,
 *      dS = P (dP - Dsum),
 *      dQ += s dS K in registers (written once at the end: a tile owns its rows),
 *      dz_j += sum_i dS_ij (dma: z is a logit bias shared by the group's heads),
 *      dV_j += P^T dO and dK_j += s dS^T Q: P and s dS go to shared memory as
 *      bf16/f16, each warp computes 16 keys x D of both products over the tile's
 *      64 rows and adds them into fp32 accumulators in global memory with vector
 *      reductions (red.global.add.v2.f32 on sm_90).
 *    128-row tiles (8 warps) where the shared memory fits; on sm_90 at D 64 and 128
 *    their products run on wgmma (WG) and a third warpgroup issues the sums (RW).
 * 3. bwd_finish_kernel: dK, dV (fp32 accumulators) to the output dtype, plus an
 *    optional dv += ddt w_dt^T (dma's score path through V).
 * The fp32 accumulators make the sum order depend on scheduling: results agree
 * with the reference to the tolerance verify derives, not bit for bit between runs.
 */
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda.h>
#include <type_traits>
#include <vector>

#include "cuda_attn.h"
#include "cuda_common.cuh"
#include "cuda_attn_keys.cuh"
#include "cuda_mma.cuh"
#include "cuda_wgmma.cuh"
#include "cuda_rt.h"

namespace {
using namespace dm;

constexpr int BK = 64; /* keys per block */
/* Query rows per tile (BQ): 128 (8 warps) where the shared memory fits, else 64 (4
 * warps; DMABENCH_CUDA_BWD_TILE=64 everywhere), with 16 rows per warp and 2 BQ
 * threads. */

struct BwdArgs {
    const void *q, *k, *v, *dout;
    void *dq;
    const float *lse, *dsum;
    const float *dsum_in; /* the caller's Dsum (cuda_attn_spec.dsum, rows Nq apart), where it applies: else null */
    const float *lse2; /* key-parallel: lse log2 e, rows of (b, h) ldp apart as dsum's */
    int ldp;
    float *dk_acc, *dv_acc; /* (B, Nk, Hkv, D) contiguous fp32 */
    float *dz;              /* (B, Hkv, Nk) or null */
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, dosb, doss, dosh, dqsb, dqss, dqsh;
    int B, Nq, Nk, Hq, Hkv, G;
    float scale, scale_log2;
    int causal, window;
    const float *z;
    const int *list, *list_len;
    const unsigned long long *tkey;
    int cap, list_tile; /* list entries per tile; queries per list tile (the forward's) */
    int ntiles_list;
    long long off; /* query i sits at position i + off */
    int kmul, kadd; /* key j sits at position j kmul + kadd */
    int exact_dsum; /* Dsum from P and dP in a first pass instead of from dO and O */
    void *dk_out, *dv_out; /* the key-parallel kernel writes dK, dV directly */
    long long dksb, dkss, dksh, dvsb, dvss, dvsh;
    int kp_chunk; /* key-parallel: 0, a CTA per key tile; else at most this many of a
                   * tile's steps per CTA, dK and dV added into dk_acc, dv_acc */
    int heads_first; /* the query-tile kernel: tile_head's order */
};

/* TM: the tensor maps of K and V for the reducer tiles' row copies, (D, Hkv, Nk, B)
 * with the caller's strides, a box of 64 x 1 x 1 x 1 (half a row at D 128) in the
 * 128-byte swizzle; a key past Nk reads as zeros. */
struct BwdMaps {
    CUtensorMap k, v;
};

/* Dsum[b, h, i] = sum_d dO[b, i, h, d] O[b, i, h, d]: one warp per row, VEC
 * elements per load (8: 16-byte loads, dm_vec8 of both). Rows of the outputs are
 * ldp apart per (b, h). With res (dma's O residual, bf16 (B, Nq, Hq, D)
 * contiguous): O + res in place of O. With lse2: besides, lse2[b, h, i] = lse
 * log2 e (+inf for an empty row, whose P is then 0), the key-parallel kernel's copy
 * of lse. */
template <typename T, int VEC>
__global__ void bwd_dot_kernel(const T *o, long long osb, long long oss, long long osh, const T *dout, long long dsb,
                               long long dss, long long dsh, int B, int Nq, int Hq, int D, float *dsum, int ldp,
                               const __nv_bfloat16 *res, const float *lse, float *lse2, int lpr) {
    /* lpr lanes per row (a power of two): 32 / lpr rows per warp */
    const int lane = threadIdx.x & 31, sub = lane & (lpr - 1);
    const long long row = ((long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / lpr) + lane / lpr;
    const bool live = row < (long long)B * Nq * Hq;
    int h = 0, i = 0, b = 0;
    float s = 0.f;
    if (live) {
        h = (int)(row % Hq), i = (int)((row / Hq) % Nq), b = (int)(row / ((long long)Hq * Nq));
        const T *orow = o + b * osb + (long long)i * oss + h * osh;
        const T *drow = dout + b * dsb + (long long)i * dss + h * dsh;
        const __nv_bfloat16 *rrow = res ? res + (((size_t)b * Nq + i) * Hq + h) * D : nullptr;
        for (int d = sub * VEC; d < D; d += lpr * VEC) {
            if constexpr (VEC == 8) {
                float fo[8], fd[8];
                ld8_any<T>(orow + d, fo);
                ld8_any<T>(drow + d, fd);
                if (rrow) {
                    float fr[8];
                    ld8_any<__nv_bfloat16>(rrow + d, fr);
#pragma unroll
                    for (int k = 0; k < 8; k++) fo[k] += fr[k];
                }
#pragma unroll
                for (int k = 0; k < 8; k++) s += fo[k] * fd[k];
            } else {
                s += (to_f32<T>(orow[d]) + (rrow ? to_f32<__nv_bfloat16>(rrow[d]) : 0.f)) * to_f32<T>(drow[d]);
            }
        }
    }
    for (int x = lpr >> 1; x; x >>= 1) s += __shfl_xor_sync(0xffffffff, s, x);
    if (!live || sub) return;
    const size_t u = ((size_t)b * Hq + h) * ldp + i;
    dsum[u] = s;
    if (lse2) {
        const float l = lse[((size_t)b * Hq + h) * Nq + i];
        lse2[u] = l == -INFINITY ? INFINITY : l * LOG2E;
    }
}

/* P (recomputed from lse and masked to 0 with MASK) and dS = P (dP - Dsum) for a
 * warp's 16 rows x BK_ keys (64: a block; 32: half of one) from slot gbase of the
 * stages' key metadata: s becomes P and dp becomes dS; with
 * dz the column sums of dS go to dz. DOT: only the rows' sums of P dP into dacc
 * (the first pass of dma's exact Dsum), s and dp left as they are. Instantiated
 * with and without the mask so that the blocks every row keeps in full pay for no
 * mask.
 * dz: a thread holds 16 columns (8 n-tiles x 2) of two rows; the 8 lanes of equal
 * lane & 3 hold the same columns. Three halving exchanges (xor 16, 8, 4: each lane
 * keeps half of its sums and sends the other half) leave lane l the whole sums of
 * n-tile l >> 2's two columns: 14 shuffles a thread instead of 48, and every lane
 * adds its two into dz (one atomic per key, as before). At BK_ 32 (4 n-tiles) the
 * same three exchanges leave lane l one column: n-tile (l >> 3 & 1) + 2 (l >> 4),
 * column 2 (l & 3) + (l >> 2 & 1). */
template <bool MASK, bool DOT, int BK_>
__device__ __forceinline__ void bwd_p_ds(float (&s)[BK_ / 8][4], float (&dp)[BK_ / 8][4], const float (&lse2)[2],
                                         const float (&dsm)[2], float (&dacc)[2], float scale_log2, const float *z,
                                         float *dzrow, const int *sIdx, const int *sRlo, const int *sRhi,
                                         const float *sZ, int gbase, int qrow0, int lane) {
    static_assert(BK_ == 64 || BK_ == 32, "dz's exchanges take 8 or 4 n-tiles");
    /* column (nt, e01) of the thread's two rows: P and dS in place; their dS sum */
    auto col = [&](int nt, int e01) -> float {
        const int g = gbase + nt * 8 + (lane & 3) * 2 + e01;
        const float zb = z ? sZ[g] : 0.f;
        int j = 0, rl = 0, rh = 0;
        if (MASK) j = sIdx[g], rl = sRlo[g], rh = sRhi[g];
        float colsum = 0.f;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int e = e01 + 2 * r, qi = qrow0 + 8 * r;
            float pv = fast_exp2(s[nt][e] * scale_log2 + zb - lse2[r]);
            if (MASK && (j < 0 || qi < rl || qi > rh)) pv = 0.f;
            if (DOT) {
                dacc[r] += pv * dp[nt][e];
                continue;
            }
            const float ds = pv * (dp[nt][e] - dsm[r]);
            s[nt][e] = pv;
            dp[nt][e] = ds;
            colsum += ds;
        }
        return colsum;
    };
    if (DOT || !dzrow) {
#pragma unroll
        for (int nt = 0; nt < BK_ / 8; nt++) {
            col(nt, 0);
            col(nt, 1);
        }
        return;
    }
    /* keep (bit set: hi, else lo), send the other over xor x, add */
    auto halve = [&](const float (&lo)[2], const float (&hi)[2], int x, float (&out)[2]) {
        const bool bit = lane & x;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const float keep = bit ? hi[i] : lo[i], send = bit ? lo[i] : hi[i];
            out[i] = keep + __shfl_xor_sync(0xffffffffu, send, x);
        }
    };
    if constexpr (BK_ == 32) {
        float a16[2][2]; /* after xor 16: n-tile q + 2 (lane >> 4 & 1) */
#pragma unroll
        for (int q = 0; q < 2; q++) {
            const float lo[2] = {col(q, 0), col(q, 1)}, hi[2] = {col(q + 2, 0), col(q + 2, 1)};
            halve(lo, hi, 16, a16[q]);
        }
        float b2[2]; /* after xor 8: n-tile (lane >> 3 & 1) + 2 (lane >> 4 & 1), both columns */
        halve(a16[0], a16[1], 8, b2);
        const bool bit = lane & 4;
        const float c = (bit ? b2[1] : b2[0]) + __shfl_xor_sync(0xffffffffu, bit ? b2[0] : b2[1], 4);
        const int g = gbase + (((lane >> 3) & 1) + 2 * ((lane >> 4) & 1)) * 8 + (lane & 3) * 2 + ((lane >> 2) & 1);
        const int jj = sIdx[g];
        if (jj >= 0 && c != 0.f) atomicAdd(dzrow + jj, c);
    } else {
        float b2[2][2]; /* after xor 16 and 8: n-tile r + 2 (lane >> 3 & 1) + 4 (lane >> 4 & 1) */
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float a16[2][2]; /* after xor 16: n-tiles r and r + 2, plus 4 (lane >> 4 & 1) */
#pragma unroll
            for (int q = 0; q < 2; q++) {
                const int nt = r + 2 * q;
                const float lo[2] = {col(nt, 0), col(nt, 1)}, hi[2] = {col(nt + 4, 0), col(nt + 4, 1)};
                halve(lo, hi, 16, a16[q]);
            }
            halve(a16[0], a16[1], 8, b2[r]);
        }
        float c[2];
        halve(b2[0], b2[1], 4, c);
        const int g0 = gbase + ((lane >> 2) & 7) * 8 + (lane & 3) * 2;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int jj = sIdx[g0 + i];
            if (jj >= 0 && c[i] != 0.f) atomicAdd(dzrow + jj, c[i]);
        }
    }
}

/* RW (the default on the wgmma version's 128-row tiles where the shared memory
 * fits; DMABENCH_CUDA_BWD_WG_REDUCER=0 turns it off): a third warpgroup issues the
 * dK/dV sums. After each block's dV and dK products the two consumer warpgroups
 * write the partials to shared memory as fp32 [key][D] rows (dV's over sP and sdS,
 * which those products were the last to read; dK's into a buffer of its own) with
 * the block's keys, and go on; the reducer reads them back and adds them with
 * red.global.add.v4.f32, a row per warp instruction. Three mbarriers pass the
 * buffers back and forth, one phase per block: FULL (the partials are written:
 * 256 consumer arrivals), FREE_P (dV's rows are read: the next block's P and dS may
 * go there; 128 reducer arrivals) and FREE_K (dK's and the keys are read). The
 * consumers' first waits on the FREE ones name the phase before the first, which
 * counts as complete. (Named barriers with bar.arrive did the same at the same
 * speed, but compute-sanitizer's racecheck does not take bar.arrive as ordering.)
 * The reducer keeps 40 registers, enough for four rows' loads in flight before
 * their adds; the consumers get 232 (setmaxnreg; 2 x 128 x 232 + 128 x 40 = 384 x
 * 168, the launch's). Barrier 1 is the consumers' own, in place of __syncthreads. */
enum { RW_CONS = 1 };
constexpr int RW_CONS_REGS = 232, RW_RED_REGS = 40;
/* bwd_main_kernel's threads: two warps per 32 rows of the tile (KS 2: four), and RW's
 * reducer warpgroup */
constexpr int bwd_threads(int BQ, int KS, bool RW) { return 2 * BQ * KS + (RW ? 128 : 0); }
struct RwBars {
    uint64_t *full, *free_p, *free_k;
};

/* the consumers' barrier: the whole CTA's, or with RW the 8 consumer warps' */
template <bool RW> __device__ __forceinline__ void cons_sync() {
    if constexpr (RW) nb_sync(RW_CONS, 256);
    else __syncthreads();
}
/* where column c of a partial's row sits: 8-float groups permuted by the row, so
 * that the 8 rows of a fragment store and the float4 reads of a row both spread
 * over the banks */
__device__ __forceinline__ int rw_col(int row, int c) { return c ^ ((row & 7) << 3); }

/* a warp's m64 accumulator fragment (keys wkey + lane / 4 + 8 r, columns d0 + 8 t +
 * 2 (lane % 4)) into buf's [key][D] rows */
template <int D, int DW>
__device__ __forceinline__ void rw_put(float *buf, const float (&acc)[DW / 8][4], int wkey, int d0, int lane) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = wkey + (lane >> 2) + 8 * r;
#pragma unroll
        for (int t = 0; t < DW / 8; t++)
            *reinterpret_cast<float2 *>(buf + row * D + rw_col(row, d0 + t * 8 + (lane & 3) * 2)) =
                make_float2(acc[t][2 * r], acc[t][2 * r + 1]);
    }
}

/* Key 0's rows of kv head hkv in the fp32 dK and dV accumulators ((B, Nk, Hkv, D)),
 * and the stride from one key's rows to the next */
struct AccRows {
    float *dk, *dv;
    long long stride;
};
template <int D> __device__ __forceinline__ AccRows acc_rows(const BwdArgs &a, int b, int hkv) {
    return {a.dk_acc + ((size_t)b * a.Nk * a.Hkv + hkv) * D, a.dv_acc + ((size_t)b * a.Nk * a.Hkv + hkv) * D,
            (long long)a.Hkv * D};
}

/* The reducer warpgroup's loop (thread rt of 128): for each of the tile's nblocks
 * blocks, dV's rows from sdv and dK's from sdk added at their keys sRidx into the
 * accumulators' rows (acc); rows past the list's end (key -1) and all-zero float4s
 * (keys no row of the tile keeps) are left out. */
template <int D>
__device__ void rw_reduce(const AccRows acc, const float *sdv, const float *sdk, const int *sRidx, int nblocks,
                          const RwBars bars, int rt) {
    constexpr int LPR = D / 4 /* lanes a row */, RPW = 32 / LPR /* rows a warp instruction */;
    float *dkb = acc.dk, *dvb = acc.dv;
    const long long accs = acc.stride;
    const int w = rt >> 5, lane = rt & 31, col = (lane % LPR) * 4;
    for (int blk = 0; blk < nblocks; blk++) {
        mbar_wait(bars.full, blk & 1);
#pragma unroll
        for (int which = 0; which < 2; which++) {
            const float *src = which ? sdk : sdv;
            float *dst = which ? dkb : dvb;
            /* RB rows' loads in flight before their adds (RW_RED_REGS holds them) */
            constexpr int RB = 4, STEP = 4 * RPW;
#pragma unroll 1
            for (int row0 = w * RPW + lane / LPR; row0 < BK; row0 += RB * STEP) {
                int j[RB];
                float4 v[RB];
#pragma unroll
                for (int u = 0; u < RB; u++) {
                    const int row = row0 + u * STEP;
                    j[u] = row < BK ? sRidx[row] : -1;
                    v[u] = row < BK ? *reinterpret_cast<const float4 *>(src + row * D + rw_col(row, col))
                                    : make_float4(0.f, 0.f, 0.f, 0.f);
                }
#pragma unroll
                for (int u = 0; u < RB; u++)
                    if (j[u] >= 0 && (v[u].x != 0.f || v[u].y != 0.f || v[u].z != 0.f || v[u].w != 0.f))
                        red_add4(dst + (long long)j[u] * accs + col, v[u]);
            }
            mbar_arrive(which ? bars.free_k : bars.free_p);
        }
    }
}

/* WG (by default on sm_90 at D 64 and 128, BQ 64 or 128; DMABENCH_CUDA_WGMMA_BWD=0
 * takes mma.sync instead): every product on Hopper's warpgroup MMA, with Q, dO, K
 * and V in the no-swizzle core-matrix layout (cuda_wgmma.cuh) and the warps'
 * fragments where mma.sync has them:
 * - S = Q K^T and dP = dO V^T: warpgroup g's m64 are the tile's rows 64 g .. + 63
 *   (warp w's accumulators: rows 16 w .. + 15, as below), K-major both;
 * - dQ += dS K: dS from registers, K read N-major (d along the core matrices' rows);
 * - dV = P^T dO and dK = (s dS)^T Q: the block's 64 keys as m64 and warpgroup g's
 *   DW columns of D as N, over the tile's rows as K; P and s dS stored [row][key]
 *   and read M-major, dO and Q read N-major (no transposed copies).
 * Masks, Dsum, dz and the reductions as below; the look-ahead (ahead) is mma.sync's.
 * OV (the default at BQ 128; DMABENCH_CUDA_BWD_WG_OVERLAP=0 turns it off): dK's
 * product is committed right after dV's, and dV's sums wait for dV's group alone
 * (wgmma.wait_group 1).
 * TM (with RW, the default where the driver encodes tensor maps;
 * DMABENCH_CUDA_BWD_TMA=0 turns it off): K and V arrive by the tensor memory
 * accelerator instead of cp.async, a 64 x 1 box per half row (BwdMaps), a row's
 * boxes from one thread (lanes 0-7 of each consumer warp), into the 128-byte
 * swizzle (each 64-column half of a stage 64 rows of 128 bytes, the stage
 * 1024-byte aligned); thread 0 arms the stage's
 * mbarrier with the block's bytes and every thread waits on its phase instead of
 * cp.async.wait_group, so no copy holds a register of the consumers. The products
 * read K and V through 128-byte-swizzle descriptors (gmma_desc_sw128): K-major for
 * S and dP (a k-step 32 bytes along the row), N-major for dQ (LBO the next 64 of D).
 * CL (with TM; 2 by default where the GQA group's size is even,
 * DMABENCH_CUDA_BWD_MC=0 / 4 for 1 / 4): CL heads of a group run the tile as a
 * cluster (the same keys), each CTA issuing the boxes of BK / CL rows multicast
 * into all; a stage is refilled only after every peer has arrived on this CTA's
 * kvempty barrier for it (once a block, past the block's consumer barrier), the
 * arrival and the wait at CTA scope (at cluster scope: 2.21 against 2.15 ms for
 * dma's fwd+bwd at 8192, thirty-seventh set).
 * KS 2 (DMABENCH_CUDA_BWD_W16=1, BQ 128, D 64 or 128): 16 warps of at most 128
 * registers, two on each 16 rows (warp w: rows 16 (w % 8), key half kh = w / 8):
 * S, dP, P, dS and dz's column sums over 32 of the block's keys; after the barrier
 * dQ += s dS K for half of D (kh) from sdS; dV and dK over four key groups by four
 * quarters of D; an exact Dsum's first pass adds the halves through sDx. */
template <typename T, int D, int BQ, bool WG = false, int KS = 1, bool OV = false, bool RW = false, bool TM = false,
          int CL = 1>
__global__ void __launch_bounds__(bwd_threads(BQ, KS, RW), RW ? 1 : 0)
    bwd_main_kernel(const BwdArgs a, const __grid_constant__ BwdMaps tm) {
    static_assert(!OV || WG, "the overlap is the wgmma version's");
    static_assert(!TM || RW, "the tensor-map row copies are the reducer tiles'");
    static_assert(CL == 1 || (TM && (CL == 2 || CL == 4)), "the multicast rows: the tensor-map copies', 2 or 4 CTAs");
    constexpr bool MC = CL > 1;
    static_assert(!RW || (WG && BQ == 128 && KS == 1 && !OV), "the reducer warpgroup: wgmma, 128 rows, 8 warps");
    static_assert(!WG || (D == 64 || D == 128), "the wgmma version takes D 64 or 128");
    static_assert(KS == 1 || (KS == 2 && !WG && BQ == 128 && (D == 64 || D == 128)),
                  "two warps per row group: 128 rows, D 64 or 128, mma.sync");
    constexpr int NTHREADS = 2 * BQ * KS, NW = NTHREADS / 32;
    constexpr int BKW = BK / KS; /* keys per warp for S, dP and dS */
    constexpr int DQW = D / KS;  /* dQ columns per warp */
    /* the dV/dK products: warp w takes keys 16 (w % 4) .. + 15 and, with more than
     * 4 warps, a share of the head dimension (DW columns from d0) */
    constexpr int DSPLIT = NW / 4, DW = D / DSPLIT;
    static_assert(BQ == 64 || BQ == 128, "64 or 128 query rows per tile");
    static_assert(DW >= 16, "a warp's share of the head dimension holds whole ldmatrix pairs");
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sdO = sQ + BQ * D;
    T *sK = sdO + BQ * D;
    T *sV = sK + 2 * BK * D;
    T *sP = sV + 2 * BK * D;  /* [BQ rows][BK keys], swizzled */
    T *sdS = sP + BQ * BK;
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sdS + BQ * BK);
    int *sIdx = reinterpret_cast<int *>(sT + BQ);
    int *sRlo = sIdx + 2 * BK;
    int *sRhi = sRlo + 2 * BK;
    float *sZ = reinterpret_cast<float *>(sRhi + 2 * BK);
    int *sFull = reinterpret_cast<int *>(sZ + 2 * BK); /* [2 stages][2 loading warps] */
    float *sDx = reinterpret_cast<float *>(sFull + 4); /* KS 2: [2 halves][BQ rows], the exact Dsum's parts */
    /* RW: a block's dK partial, [BK keys][D] fp32 (rw_col), and its keys; dV's goes over sP and sdS */
    [[maybe_unused]] float *sRdk = sDx + (KS > 1 ? 2 * BQ : 0);
    [[maybe_unused]] int *sRidx = reinterpret_cast<int *>(sRdk + BK * D);
    [[maybe_unused]] uint64_t *sRbar = reinterpret_cast<uint64_t *>((reinterpret_cast<uintptr_t>(sRidx + BK) + 7) & ~(uintptr_t)7);
    [[maybe_unused]] const RwBars rwb = {sRbar, sRbar + 1, sRbar + 2};
    [[maybe_unused]] uint64_t *kvbar = sRbar + 3; /* TM: [2 stages], a stage's K and V rows landed */
    /* MC: [2 stages], the peer CTAs are past the stage's last block (an arrival each) */
    [[maybe_unused]] uint64_t *kvempty = sRbar + 5;
    [[maybe_unused]] const uint32_t rank = MC ? cluster_rank() : 0;

    int tile, h; /* the last tiles first (tile_head) */
    tile_head(a.heads_first, CL, &tile, &h);
    const int b = blockIdx.z;
    const int hkv = h / a.G;
    const int i0 = tile * BQ;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const KeyPos kp = {a.off, a.kmul, a.kadd, a.causal, a.window};
    const int nrows = min(BQ, a.Nq - i0);
    int nkeys, kstart;
    const int *lst; /* with a list: the forward's, of the tile that holds these rows */
    tile_keys<BQ>(kp, a.Nk, a.Nq, a.Hkv, b, hkv, i0, nrows, a.tkey, sT, a.list, a.list_len, a.cap,
                  ((size_t)b * a.Hkv + hkv) * a.ntiles_list + i0 / a.list_tile, &kstart, &nkeys, &lst);

    const T *qb = static_cast<const T *>(a.q) + b * a.qsb + h * a.qsh;
    const T *dob = static_cast<const T *>(a.dout) + b * a.dosb + h * a.dosh;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    const float *zrow = a.z ? a.z + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr;

    if constexpr (RW) { /* the reducer warpgroup: the dK/dV sums of every block, off the products' path */
        if (tid == 0) {
            mbar_init(rwb.full, NTHREADS);
            mbar_init(rwb.free_p, 128);
            mbar_init(rwb.free_k, 128);
            if constexpr (TM) {
                mbar_init(kvbar, 1), mbar_init(kvbar + 1, 1);
                if constexpr (MC) mbar_init(kvempty, CL - 1), mbar_init(kvempty + 1, CL - 1);
                fence_async_smem(); /* the initialised barriers, seen by the tensor-memory copies' completions */
                if constexpr (MC) fence_mbar_init_cluster(); /* and by the peer CTAs */
            }
        }
        if constexpr (MC) cluster_sync(); /* the peers' barriers initialised before any box or arrival */
        else __syncthreads();
        if (tid >= NTHREADS) {
            setmaxnreg_dec<RW_RED_REGS>();
            rw_reduce<D>(acc_rows<D>(a, b, hkv), reinterpret_cast<const float *>(sP), sRdk, sRidx,
                         (nkeys + BK - 1) / BK, rwb, tid - NTHREADS);
            return;
        }
        setmaxnreg_inc<RW_CONS_REGS>();
    }

    constexpr int CH = D / 8;
    /* where chunk c of row r of Q, dO, K and V sits */
    auto lay = [](int r, int c) -> int {
        if constexpr (WG) return cm_off<D>(r, c);
        else return swz<D>(r, c);
    };
    for (int c = tid; c < BQ * CH; c += NTHREADS) {
        int r = c / CH, ch = c % CH, i = i0 + r;
        bool ok = i < a.Nq;
        cp16(sQ + lay(r, ch), qb + (long long)(ok ? i : 0) * a.qss + ch * 8, ok);
        cp16(sdO + lay(r, ch), dob + (long long)(ok ? i : 0) * a.doss + ch * 8, ok);
    }
    /* dma (z and a list) on mma.sync: the list entries of the next two blocks, and z of
     * each slot's next key, are loaded a block ahead in registers (as in the forward),
     * so that neither a block's metadata (the first two warps') nor its copies wait on
     * a global load before the barrier */
    constexpr int EPL = BK / 32;
    const bool ahead = KS == 1 && lst && zrow;
    int en[EPL], enn[EPL];
    float zn = 0.f;
    [[maybe_unused]] auto load_zn = [&](const int(&e)[EPL]) { /* z of this slot's key in block e */
        if (tid < BK) {
            const int j = own_entry(e, tid);
            zn = j >= 0 ? zrow[j] : 0.f;
        }
    };
    [[maybe_unused]] int nfill = 0; /* TM: load_kv's calls so far (the stage's refills, for MC's waits) */
    auto load_kv = [&](int stage, int c0) {
        if constexpr (TM) { /* a box per half row of K and V, one a thread; the stage's barrier counts the bytes */
            const bool from_en = ahead && c0 > 0; /* the rows from en; the metadata by meta_ahead */
            if (!from_en)
                key_slot_meta_all<BK>(kp, tid, c0, nkeys, lst, kstart, a.tkey ? sT : nullptr, zrow, i0, nrows,
                                      sIdx + stage * BK, sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK,
                                      sFull + stage * 2);
            if (tid == 0) mbar_expect_tx(kvbar + stage, 2 * BK * D * sizeof(T));
            /* a row's boxes (K and V, each half) from one thread: lanes 0-7 of warp w take
             * rows 8 w .. + 7, so that a warp issues its boxes in 8 lane turns that share
             * each row's key and destination (a box a thread took 32 turns a warp). MC:
             * the cluster's CL CTAs (CL heads of a GQA group: the same keys) each issue
             * BK / CL of the rows, lanes 0 .. RPW - 1 of warp w rows BK / CL rank + RPW w
             * on, into all of them */
            constexpr int RPW = BK / (8 * CL); /* rows a warp */
            const int r = (int)rank * (BK / CL) + warp * RPW + (lane & (RPW - 1));
            int j;
            if (from_en) j = __shfl_sync(0xffffffffu, own_entry(en, r), r & 31);
            else {
                const int pos = c0 + r;
                j = pos < nkeys ? (lst ? lst[pos] : kstart + pos) : -1;
            }
            if (lane < RPW) {
                j = j >= 0 ? j : a.Nk;
                T *dk = sK + stage * BK * D + r * 64, *dv = sV + stage * BK * D + r * 64;
                if constexpr (MC) {
                    /* the stage's third fill on: the peers are past their last block there */
                    if (nfill >= 2) mbar_wait(kvempty + stage, ((nfill - 2) >> 1) & 1); /* CTA scope, as the arrivals */
#pragma unroll
                    for (int hf = 0; hf < D / 64; hf++) {
                        tma_row4_mc(dk + hf * BK * 64, &tm.k, hf * 64, hkv, j, b, kvbar + stage, (1u << CL) - 1);
                        tma_row4_mc(dv + hf * BK * 64, &tm.v, hf * 64, hkv, j, b, kvbar + stage, (1u << CL) - 1);
                    }
                } else {
#pragma unroll
                    for (int hf = 0; hf < D / 64; hf++) {
                        tma_row4(dk + hf * BK * 64, &tm.k, hf * 64, hkv, j, b, kvbar + stage);
                        tma_row4(dv + hf * BK * 64, &tm.v, hf * 64, hkv, j, b, kvbar + stage);
                    }
                }
            }
            nfill++;
            if (ahead && c0 == 0) { /* as below */
                list_entries<BK>(lst, BK, nkeys, lane, en);
                list_entries<BK>(lst, 2 * BK, nkeys, lane, enn);
                load_zn(en);
            }
            return;
        }
        if (ahead && c0 > 0) { /* block c0's rows from en; its metadata after this block's products (meta_ahead) */
            load_key_rows_at<T, D, BK, NTHREADS, WG, WG>(sK + stage * BK * D, sV + stage * BK * D, kb, vb, a.kss,
                                                         a.vss, en, tid);
            return;
        }
        if constexpr (WG)
            key_slot_meta_all<BK>(kp, tid, c0, nkeys, lst, kstart, a.tkey ? sT : nullptr, zrow, i0, nrows,
                                  sIdx + stage * BK, sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK,
                                  sFull + stage * 2);
        else if (tid < BK)
            key_slot_meta(kp, tid, c0, nkeys, lst, kstart, a.tkey ? sT : nullptr, zrow, i0, nrows, sIdx + stage * BK,
                          sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK, sFull + stage * 2);
        load_key_rows<T, D, BK, NTHREADS, WG, WG>(sK + stage * BK * D, sV + stage * BK * D, kb, vb, a.kss, a.vss, c0,
                                                  nkeys, lst, kstart, tid);
        if (ahead) { /* block 0 (again, for the second pass): the next two blocks' entries, and z */
            list_entries<BK>(lst, BK, nkeys, lane, en);
            list_entries<BK>(lst, 2 * BK, nkeys, lane, enn);
            load_zn(en);
        }
    };

    /* with ahead: the metadata of block c0 (in stage `stage`), whose rows load_kv
     * copied at the top of this iteration, from en and zn, then the next loads. The
     * first two warps form it after this block's S and dP, off the path to the
     * barrier that the other warps wait at; the next block reads it after the
     * iteration's last barrier. */
    [[maybe_unused]] auto meta_ahead = [&](int stage, int c0) {
        if (tid < BK)
            key_slot_meta_at(kp, tid, own_entry(en, tid), zn, a.tkey ? sT : nullptr, true, i0, nrows,
                             sIdx + stage * BK, sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK,
                             sFull + stage * 2);
        load_zn(enn);
#pragma unroll
        for (int q = 0; q < EPL; q++) en[q] = enn[q];
        list_entries<BK>(lst, c0 + 2 * BK, nkeys, lane, enn);
    };

    const int nblocks = (nkeys + BK - 1) / BK;
    if (nblocks > 0) load_kv(0, 0);
    cp_commit();

    /* the thread's two rows: wrow + lane/4 and 8 below; an invalid or empty row gets
     * lse = +inf so that every P of it is 0 */
    const int wrow = (warp % (BQ / 16)) * 16, kh = KS > 1 ? warp / (BQ / 16) : 0;
    float lse2[2], dsm[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int q = i0 + wrow + (lane >> 2) + 8 * r;
        float l = INFINITY, d = 0.f;
        if (q < a.Nq) {
            size_t u = ((size_t)b * a.Hq + h) * a.Nq + q;
            l = a.lse[u];
            l = l == -INFINITY ? INFINITY : l * LOG2E;
            d = a.exact_dsum ? 0.f : a.dsum[u];
        }
        lse2[r] = l;
        dsm[r] = d;
    }
    float dq[DQW / 8][4];
#pragma unroll
    for (int t = 0; t < DQW / 8; t++) dq[t][0] = dq[t][1] = dq[t][2] = dq[t][3] = 0.f;

    /* ldmatrix byte addresses of the mma.sync path, computed once (see
     * ldsm_addrs in cuda_mma.cuh); the rest are immediates */
    constexpr uint32_t RB = D * sizeof(T); /* bytes per Q / dO / K / V row */
    struct {
        uint32_t q[4], k[4], kt[4], b[4], pt;
    } ad;
    if constexpr (!WG) {
        const int wkey = (warp % 4) * 16, d0 = (warp / 4) * DW;
        ldsm_addrs<D, D / 16>(ad.q, sQ, wrow + (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, 0);
        /* KS 2: the warp's key half, 32 rows on (the same swizzle) */
        ldsm_addrs<D, D / 16>(ad.k, sK, kh * BKW + (lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1, 0);
        /* KS 2: dQ's columns from kh D / 2 */
        ldsm_addrs<D, DQW / 16>(ad.kt, sK, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, kh * (DQW / 8));
        /* dO (the B operand of dV) sits BQ rows before Q: sdO = sQ + BQ D */
        ldsm_addrs<D, DW / 16>(ad.b, sQ, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, d0 / 8);
        const int qm = lane >> 3;
        ad.pt = smem_addr(sP + swz<BK>((lane & 7) + (qm >> 1) * 8, wkey / 8 + (qm & 1)));
    }
    const AccRows acc = acc_rows<D>(a, b, hkv);
    float *dkb = acc.dk, *dvb = acc.dv;
    const long long accs = acc.stride; /* accumulator row stride */

    /* with a.exact_dsum, a first pass over the same key blocks computes Dsum as
     * sum_j P_ij dP_ij in fp32 (see the file comment); the second pass is the backward */
    const int nit = (a.exact_dsum ? 2 : 1) * nblocks;
    const int pre_end = a.exact_dsum ? nblocks : 0;
    float dacc[2] = {0.f, 0.f};
    for (int it = 0; it < nit; it++) {
        const int st = it & 1;
        if constexpr (TM) { /* this block's rows (issued under the last block's S and dP); Q and dO first */
            if (it == 0) {
                cp_wait<0>();
                fence_async_smem();
            }
            mbar_wait(kvbar + st, (it >> 1) & 1);
        } else if constexpr (WG) { /* this block's copies, issued under the last block's S and dP (below) */
            cp_wait<0>();
            fence_async_smem(); /* the stage's copies, visible to the wgmmas */
        } else {
            if (it + 1 < nit) load_kv(st ^ 1, ((it + 1) % nblocks) * BK);
            cp_commit();
            cp_wait<1>();
        }
        cons_sync<RW>();
        /* MC: every consumer here is past block it - 1, whose stage block it + 1 refills
         * (below, every CTA's share): tell the peers, one thread each */
        if constexpr (MC) {
            if (tid < CL - 1 && it >= 1 && it + 1 < nit)
                mbar_arrive_remote(kvempty + (st ^ 1), (rank + 1 + tid) % CL);
        }
        const uint32_t so = st * BK * RB; /* the stage's byte offset in sK and sV */
        if (it == pre_end && pre_end > 0) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float d = dacc[r];
                d += __shfl_xor_sync(0xffffffff, d, 1);
                d += __shfl_xor_sync(0xffffffff, d, 2);
                dsm[r] = d;
            }
            if constexpr (KS > 1) { /* the two key halves' parts, added in one order */
                if ((lane & 3) == 0) {
#pragma unroll
                    for (int r = 0; r < 2; r++) sDx[kh * BQ + wrow + (lane >> 2) + 8 * r] = dsm[r];
                }
                cons_sync<RW>();
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int row = wrow + (lane >> 2) + 8 * r;
                    dsm[r] = sDx[row] + sDx[BQ + row];
                }
            }
        }

        /* S = Q K^T and dP = dO V^T for the warp's 16 rows x BKW keys */
        float s[BKW / 8][4], dp[BKW / 8][4];
        if constexpr (WG) {
            float(&sf)[BK / 2] = reinterpret_cast<float(&)[BK / 2]>(s);
            float(&df)[BK / 2] = reinterpret_cast<float(&)[BK / 2]>(dp);
            const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
            /* warpgroup g: rows 64 g .. + 63, 8 D elements a row block apart */
            const int g0 = (warp / 4) * 64 * D;
            const uint64_t dq0 = gmma_desc(sQ + g0, D * 16), ddo0 = gmma_desc(sdO + g0, D * 16);
            wg_fence();
            /* K and V of the stage as the B operand, K-major, step kk (16 of D): the core
             * matrices, or TM the 128-byte swizzle's 64-column halves, 32 bytes a step */
            auto kvd = [&](const T *base, int kk) -> uint64_t {
                if constexpr (TM) return gmma_desc_sw128(base + (kk / 4) * BK * 64 + (kk % 4) * 16, 16, 1024);
                else return gmma_desc(base + cm_off<D>(0, 2 * kk), D * 16);
            };
            wgmma_ss0<T, BK>(sf, dq0, kvd(sKs, 0));
            wgmma_ss0<T, BK>(df, ddo0, kvd(sVs, 0));
#pragma unroll
            for (int kk = 1; kk < D / 16; kk++) {
                const uint64_t step = (uint64_t)((kk * 2 * 128) >> 4);
                wgmma_ss<T, BK>(sf, dq0 + step, kvd(sKs, kk), 1);
                wgmma_ss<T, BK>(df, ddo0 + step, kvd(sVs, kk), 1);
            }
            wg_commit();
            /* the next block's copies into the other stage, while the products run: every
             * warp has passed this block's barrier, so none still reads that stage (its
             * last reader was the previous block's dQ, waited for before it) */
            if (it + 1 < nit) load_kv(st ^ 1, ((it + 1) % nblocks) * BK);
            cp_commit();
            wg_wait0();
        } else {
#pragma unroll
        for (int t = 0; t < BKW / 8; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[t][e] = dp[t][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qf[4], df[4];
            ldsm_x4_at(qf, ad.q[kk % 4] + (kk / 4) * 128);
            ldsm_x4_at(df, ad.q[kk % 4] + (kk / 4) * 128 + BQ * RB);
#pragma unroll
            for (int nt = 0; nt < BKW / 8; nt += 2) {
                uint32_t kf[4], vf[4];
                ldsm_x4_at(kf, ad.k[kk % 4] + so + nt * 8 * RB + (kk / 4) * 128);
                ldsm_x4_at(vf, ad.k[kk % 4] + so + nt * 8 * RB + (kk / 4) * 128 + 2 * BK * RB);
                mma16816<T>(s[nt], qf, kf[0], kf[1]);
                mma16816<T>(s[nt + 1], qf, kf[2], kf[3]);
                mma16816<T>(dp[nt], df, vf[0], vf[1]);
                mma16816<T>(dp[nt + 1], df, vf[2], vf[3]);
            }
        }
        }
        if (ahead && it + 1 < nit && (it + 1) % nblocks != 0) meta_ahead(st ^ 1, ((it + 1) % nblocks) * BK);
        const bool full = sFull[st * 2] && sFull[st * 2 + 1];
        const int qrow0 = i0 + wrow + (lane >> 2);
        /* P and dS of the stage (DOT: the first pass's sums only), without the mask
         * when every row keeps the whole block */
        auto p_ds = [&](auto dot, float *dzrow) {
            constexpr bool DOT = decltype(dot)::value;
            const int gbase = st * BK + kh * BKW;
            if (full)
                bwd_p_ds<false, DOT, BKW>(s, dp, lse2, dsm, dacc, a.scale_log2, a.z, dzrow, sIdx, sRlo, sRhi, sZ,
                                          gbase, qrow0, lane);
            else
                bwd_p_ds<true, DOT, BKW>(s, dp, lse2, dsm, dacc, a.scale_log2, a.z, dzrow, sIdx, sRlo, sRhi, sZ,
                                         gbase, qrow0, lane);
        };
        if (it < pre_end) { /* first pass: Dsum only */
            p_ds(std::true_type(), nullptr);
            cons_sync<RW>();
            continue;
        }
        /* P and dS (dS kept in dp); dz column sums */
        p_ds(std::false_type(), a.dz ? a.dz + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr);
        /* RW: the reducer has read the last block's dV partial from sP and sdS */
        if constexpr (RW) mbar_wait(rwb.free_p, ((it - pre_end) & 1) ^ 1);
        /* P and s dS to shared memory as [row][key] (8 chunks of 8 keys per row), swizzled;
         * WG: in the core-matrix layout, the M-major A operands of dV and dK */
#pragma unroll
        for (int nt = 0; nt < BKW / 8; nt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = wrow + (lane >> 2) + 8 * r;
                int idx = (WG ? cm_off<BK>(row, nt) : swz<BK>(row, kh * (BKW / 8) + nt)) + (lane & 3) * 2;
                *reinterpret_cast<uint32_t *>(sP + idx) = pack2<T>::from(s[nt][2 * r], s[nt][2 * r + 1]);
                *reinterpret_cast<uint32_t *>(sdS + idx) =
                    pack2<T>::from(dp[nt][2 * r] * a.scale, dp[nt][2 * r + 1] * a.scale);
            }
        /* dQ += dS K (the scale is applied once at the end) */
        if constexpr (WG) { /* m64 rows x nD, A = dS from registers, B = K read N-major:
                              * 8 keys (K) a core matrix D * 16 bytes apart, 8 d (N) 128 */
            uint32_t pf[BK / 16][4];
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) acc_to_a<T>(dp, kk, pf[kk]);
            float(&dqf)[D / 2] = reinterpret_cast<float(&)[D / 2]>(dq);
            const T *sKs = sK + st * BK * D;
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++)
                wgmma_rs_mn<T, D>(dqf, pf[kk],
                                  TM ? gmma_desc_sw128(sKs + kk * 16 * 64, BK * 128, 1024) /* 16 keys of 128 bytes */
                                     : gmma_desc_mn(sKs + cm_off<D>(16 * kk, 0), D * 16, 128));
            wg_commit();
            wg_wait0();
        } else if constexpr (KS == 1) {
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                uint32_t af[4];
                acc_to_a<T>(dp, kk, af);
#pragma unroll
                for (int dt = 0; dt < D / 8; dt += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t_at(bf, ad.kt[(dt / 2) % 4] + so + kk * 16 * RB + (dt / 8) * 128);
                    mma16816<T>(dq[dt], af, bf[0], bf[1]);
                    mma16816<T>(dq[dt + 1], af, bf[2], bf[3]);
                }
            }
        }
        if constexpr (WG) fence_async_smem(); /* P and dS, visible to the wgmmas */
        cons_sync<RW>();
        if constexpr (KS > 1) { /* dQ += (s dS) K, the row's whole block from sdS, DQW columns */
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                uint32_t af[4];
                ld_a<BK>(af, sdS, kk, wrow, lane);
#pragma unroll
                for (int dt = 0; dt < DQW / 8; dt += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t_at(bf, ad.kt[(dt / 2) % 4] + so + kk * 16 * RB + (dt / 8) * 128);
                    mma16816<T>(dq[dt], af, bf[0], bf[1]);
                    mma16816<T>(dq[dt + 1], af, bf[2], bf[3]);
                }
            }
        }
        /* dV_j += P^T dO, then dK_j += (s dS)^T Q: the warp's 16 keys x DW columns over
         * the tile's rows */
        const int wkey = (warp % 4) * 16, d0 = (warp / 4) * DW;
        /* the warp's dV or dK rows (acc) added into dst's fp32 rows; a block every row
         * keeps in full has no all-zero key row: its sums go without the test that
         * spares masked keys' atomics */
        auto add_rows = [&](const float(&acc)[DW / 8][4], float *dst) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int j = sIdx[st * BK + wkey + (lane >> 2) + 8 * r];
                if (j < 0) continue;
                float *row = dst + (long long)j * accs + d0 + (lane & 3) * 2;
                if (full) {
#pragma unroll
                    for (int t = 0; t < DW / 8; t++) red_add2(row + t * 8, acc[t][2 * r], acc[t][2 * r + 1]);
                } else {
#pragma unroll
                    for (int t = 0; t < DW / 8; t++) {
                        float x0 = acc[t][2 * r], x1 = acc[t][2 * r + 1];
                        if (x0 != 0.f || x1 != 0.f) red_add2(row + t * 8, x0, x1);
                    }
                }
            }
        };
        /* wgmma: A = P^T or dS^T read M-major from [row][key] (8 keys a core matrix 128
         * bytes apart, 8 rows BK * 16); B = dO or Q read N-major (8 d 128 bytes apart,
         * 8 rows D * 16); m64 keys x n DW (columns d0 ..) over the tile's rows */
        [[maybe_unused]] auto wg_dvdk = [&](float(&acc)[DW / 8][4], const T *sA, const T *sB) {
            if constexpr (WG) {
                float(&af)[DW / 2] = reinterpret_cast<float(&)[DW / 2]>(acc);
#pragma unroll
                for (int kk = 0; kk < BQ / 16; kk++)
                    wgmma_ss_mn<T, DW>(af, gmma_desc_mn(sA + cm_off<BK>(16 * kk, 0), BK * 16, 128),
                                       gmma_desc_mn(sB + cm_off<D>(16 * kk, d0 / 8), D * 16, 128), kk);
                wg_commit();
            }
        };
        if constexpr (RW || OV) { /* both products committed, dV's first */
            float accv[DW / 8][4], acck[DW / 8][4];
            wg_fence();
            wg_dvdk(accv, sP, sdO);
            wg_dvdk(acck, sdS, sQ);
            if constexpr (RW) { /* the partials to shared memory for the reducer */
                wg_wait0();
                cons_sync<RW>();                     /* both warpgroups' products have read sP and sdS */
                mbar_wait(rwb.free_k, ((it - pre_end) & 1) ^ 1); /* and the reducer the last block's dK partial and keys */
                rw_put<D, DW>(reinterpret_cast<float *>(sP), accv, wkey, d0, lane);
                rw_put<D, DW>(sRdk, acck, wkey, d0, lane);
                if (tid < BK) sRidx[tid] = sIdx[st * BK + tid];
                mbar_arrive(rwb.full);
            } else { /* OV: dK's product runs while dV's sums are issued */
                wg_wait1();
                add_rows(accv, dvb);
                wg_wait0();
                add_rows(acck, dkb);
            }
        } else
#pragma unroll
        for (int which = 0; which < 2; which++) {
            const T *sA = which ? sdS : sP;
            const T *sB = which ? sQ : sdO;
            float *dst = which ? dkb : dvb;
            float acc[DW / 8][4];
            if constexpr (WG) {
                wg_fence();
                wg_dvdk(acc, sA, sB);
                wg_wait0();
            } else {
#pragma unroll
            for (int t = 0; t < DW / 8; t++) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BQ / 16; kk++) {
                uint32_t af[4];
                /* A = (stored [row][key])^T: the warp's keys; B = dO or Q, its DW columns */
                ldsm_x4_t_at(af, ad.pt + kk * 16 * BK * (uint32_t)sizeof(T) + which * BQ * BK * (uint32_t)sizeof(T));
#pragma unroll
                for (int dt = 0; dt < DW / 8; dt += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t_at(bf, ad.b[(dt / 2) % 4] + kk * 16 * RB + (dt / 8) * 128 + (which ? 0u : BQ * RB));
                    mma16816<T>(acc[dt], af, bf[0], bf[1]);
                    mma16816<T>(acc[dt + 1], af, bf[2], bf[3]);
                }
            }
            }
            add_rows(acc, dst);
        }
        /* mma.sync: with the look-ahead, the next iteration's copies (load_kv at its
         * top) write only the rows of stage st, which no warp reads after the barrier
         * before dV and dK; its metadata is written after its first barrier, which
         * every warp reaches only when done with this block. Only a wrap to block 0
         * (the plain path, writing the stage's key slots before that barrier while a
         * slow warp may still read them for its adds) needs this one. On wgmma the
         * next iteration's copies and key slots all come after its first barrier, so
         * this one is not needed there; it is kept (the kernels as measured). */
        if (!ahead || (it + 2 < nit && (it + 2) % nblocks == 0)) cons_sync<RW>();
    }
    cp_wait<0>();

    T *dqb = static_cast<T *>(a.dq) + b * a.dqsb + h * a.dqsh + kh * DQW;
    const float dqs = KS > 1 ? 1.f : a.scale; /* KS 2 read s dS from sdS */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int q = i0 + wrow + (lane >> 2) + 8 * r;
        if (q >= a.Nq) continue;
        T *row = dqb + (long long)q * a.dqss;
#pragma unroll
        for (int t = 0; t < DQW / 8; t++)
            *reinterpret_cast<uint32_t *>(row + t * 8 + (lane & 3) * 2) =
                pack2<T>::from(dq[t][2 * r] * dqs, dq[t][2 * r + 1] * dqs);
    }
}

/* dK, dV from the fp32 accumulators to the output dtype; dv += ddt w^T when given
 * (ddt (B, Hkv, Nk), w (Hkv*D, Hkv)). One thread per 2 elements. */
template <typename T>
__global__ void bwd_finish_kernel(const float *dk_acc, const float *dv_acc, T *dk, long long dksb, long long dkss,
                                  long long dksh, T *dv, long long dvsb, long long dvss, long long dvsh, int B, int Nk,
                                  int Hkv, int D, const float *ddt, const float *w) {
    long long e = 2 * ((long long)blockIdx.x * blockDim.x + threadIdx.x);
    long long n = (long long)B * Nk * Hkv * D;
    if (e >= n) return;
    int d = (int)(e % D), g = (int)((e / D) % Hkv), j = (int)((e / ((long long)D * Hkv)) % Nk);
    int b = (int)(e / ((long long)D * Hkv * Nk));
    float v0 = dv_acc[e], v1 = dv_acc[e + 1];
    if (ddt) {
        const float *w0 = w + ((size_t)g * D + d) * Hkv;
        for (int hh = 0; hh < Hkv; hh++) {
            float x = ddt[((size_t)b * Hkv + hh) * Nk + j];
            v0 += w0[hh] * x;
            v1 += w0[Hkv + hh] * x;
        }
    }
    *reinterpret_cast<uint32_t *>(dk + b * dksb + (long long)j * dkss + g * dksh + d) = pack2<T>::from(dk_acc[e], dk_acc[e + 1]);
    *reinterpret_cast<uint32_t *>(dv + b * dvsb + (long long)j * dvss + g * dvsh + d) = pack2<T>::from(v0, v1);
}

dm_cuda_ws g_bws; /* the backward's accumulators, kept between calls */

/* ---- key-parallel backward: the default for contiguous key ranges (mha, swa, nsa's
 * window and compressed branches: no lists, no z) at D 64 and 128, where its grid
 * has a CTA per SM (bwd_kp_choose) ----
 *
 * FlashAttention-2's order and warp layouts: one CTA of 8 warps per (block of 128
 * keys, kv head, batch), the key blocks with the most queries launched first. K and
 * V of the block stay in shared memory; for each of the group's heads, the blocks
 * of 64 queries that see any of the keys stream through (Q, dO and the rows' lse
 * log2 e and Dsum; cp.async, double buffered). Per step:
 *   S^T = K Q^T and dP^T = V dO^T, 4 x 2 warps of 32 keys x 32 queries;
 *   P^T = exp2(S^T s log2e - lse log2e), masked only in the steps that hold an
 *   invisible pair, and s dS^T = s P^T (dP^T - Dsum), both to shared memory as
 *   [key][query];
 *   dV += P^T dO and dK += (s dS^T) Q in registers, 4 x 2 warps of 32 keys x D/2
 *   columns (no reductions: the CTA owns its keys for every head of the group);
 *   dQ += (s dS) K, 2 x 4 warps of 32 queries x D/4 columns, reduced into an fp32
 *   accumulator with red.global.add.
 * dK and dV are written once at the end; dQ is converted by the caller. The
 * ldmatrix addresses and the copies' pointers are made once per thread, so that a
 * step's integer work is a few adds. docs/perf-notes.md (b9-b12, b8) has the
 * versions: from 1.9 to 1.06 times FlashAttention-2's kernel time. */
constexpr int KP_BQ = 64;  /* queries per step */
constexpr int KP_BK = 128; /* keys per CTA */

/* The query blocks of KP_BQ that see a key of the tile at j0: *qb0 the first, the
 * count returned. The kernel and the host's split (launch_bwd_kp) share it. */
__host__ __device__ inline int kp_tile_qblocks(const BwdArgs &a, int j0, int *qb0) {
    const int jl = (j0 + KP_BK < a.Nk ? j0 + KP_BK : a.Nk) - 1;
    long long qlo = a.causal ? (long long)j0 * a.kmul + a.kadd - a.off : 0;
    long long qhi = a.window > 0 ? (long long)jl * a.kmul + a.kadd + a.window - 1 - a.off : (long long)a.Nq - 1;
    qlo = qlo > 0 ? qlo : 0;
    qhi = qhi < a.Nq - 1 ? qhi : a.Nq - 1;
    *qb0 = qhi >= qlo ? (int)(qlo / KP_BQ) : 0;
    return qhi >= qlo ? (int)(qhi / KP_BQ) - *qb0 + 1 : 0;
}

template <typename T, int D, bool SPLIT>
__global__ void __launch_bounds__(256) bwd_kp_kernel(const BwdArgs a, float *dq_acc) {
    static_assert(D == 64 || D == 128, "bwd_kp_kernel: D 64 or 128");
    constexpr int KP_THREADS = 256;
    extern __shared__ __align__(128) unsigned char kp_smem[];
    T *sK = reinterpret_cast<T *>(kp_smem); /* [KP_BK][D] */
    T *sV = sK + KP_BK * D;                  /* [KP_BK][D] */
    T *sQ = sV + KP_BK * D;                  /* [2][KP_BQ][D] */
    T *sdO = sQ + 2 * KP_BQ * D;             /* [2][KP_BQ][D] */
    T *sPT = sdO + 2 * KP_BQ * D;            /* [KP_BK keys][KP_BQ queries] */
    T *sdST = sPT + KP_BK * KP_BQ;           /* [KP_BK keys][KP_BQ queries] */
    float *sL = reinterpret_cast<float *>(sdST + KP_BK * KP_BQ); /* [2][KP_BQ] lse log2e */
    float *sD = sL + 2 * KP_BQ;                                  /* [2][KP_BQ] Dsum */
    constexpr int CH = D / 8;
    constexpr uint32_t RB = D * sizeof(T), QST = KP_BQ * RB, PB = KP_BQ * sizeof(T); /* PB: bytes per sPT row */
    constexpr int RP = KP_THREADS / CH;
    static_assert(KP_BQ % RP == 0 && RP % 8 == 0, "bwd_kp_kernel: copy layout");
    const int nkvb = a.B * a.Hkv, kvb = blockIdx.x % nkvb;
    /* the CTA's key tile and its steps it_lo .. it_hi - 1 (a step: one query block of
     * one head of the group, nqb per head); with a.kp_chunk, tile t's steps in chunks
     * of a.kp_chunk, one per CTA, the tiles in order (SPLIT) */
    int tile = blockIdx.x / nkvb, qb0 = 0, nqb = 0, it_lo = 0, it_hi = 0;
    if constexpr (SPLIT) {
        int u = tile;
        for (tile = 0; tile * KP_BK < a.Nk; tile++) {
            nqb = kp_tile_qblocks(a, tile * KP_BK, &qb0);
            const int nc = (nqb * a.G + a.kp_chunk - 1) / a.kp_chunk;
            if (u < nc) break;
            u -= nc;
        }
        if (tile * KP_BK >= a.Nk) return; /* past the last chunk (the grid is exact) */
        it_lo = u * a.kp_chunk;
        it_hi = min(nqb * a.G, it_lo + a.kp_chunk);
    } else {
        nqb = kp_tile_qblocks(a, tile * KP_BK, &qb0);
        it_hi = nqb * a.G;
    }
    const int j0 = tile * KP_BK, hkv = kvb % a.Hkv, b = kvb / a.Hkv;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    /* query i sits at position i + off, key j at j kmul + kadd (nsa's compressed
     * blocks; kmul 1 and kadd 0 otherwise) */
    const long long off = a.off;
    auto kpos = [&](int j) -> long long { return (long long)j * a.kmul + a.kadd; };

    const int r0 = tid / CH, ch = tid % CH;
    {
        const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh + ch * 8;
        const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh + ch * 8;
#pragma unroll
        for (int k = 0; k < KP_BK / RP; k++) {
            const int r = r0 + k * RP, j = j0 + r;
            const bool ok = j < a.Nk;
            cp16(sK + swz<D>(r, ch), kb + (long long)(ok ? j : 0) * a.kss, ok);
            cp16(sV + swz<D>(r, ch), vb + (long long)(ok ? j : 0) * a.vss, ok);
        }
    }
    const int jl = min(j0 + KP_BK, a.Nk) - 1;

    const T *qt0 = static_cast<const T *>(a.q) + b * a.qsb + (long long)(hkv * a.G) * a.qsh + ch * 8 + (long long)r0 * a.qss;
    const T *dt0 = static_cast<const T *>(a.dout) + b * a.dosb + (long long)(hkv * a.G) * a.dosh + ch * 8 +
                   (long long)r0 * a.doss;
    const long long qstep = (long long)RP * a.qss, dstep = (long long)RP * a.doss;
    auto load_q = [&](int stage, int hh, int q0) {
        const int h = hkv * a.G + hh;
        const T *qp = qt0 + hh * a.qsh + (long long)q0 * a.qss;
        const T *dp = dt0 + hh * a.dosh + (long long)q0 * a.doss;
        T *sq = sQ + stage * KP_BQ * D + swz<D>(r0, ch), *sd = sdO + stage * KP_BQ * D + swz<D>(r0, ch);
#pragma unroll
        for (int k = 0; k < KP_BQ / RP; k++) {
            const bool ok = q0 + r0 + k * RP < a.Nq;
            cp16(sq + k * RP * D, ok ? qp : qt0, ok);
            cp16(sd + k * RP * D, ok ? dp : dt0, ok);
            qp += qstep, dp += dstep;
        }
        if (tid < KP_BQ / 2) {
            const int c = tid % (KP_BQ / 4), i = q0 + 4 * c, nv = max(0, min(4, a.Nq - i));
            const float *src = (tid < KP_BQ / 4 ? a.lse2 : a.dsum) + ((size_t)b * a.Hq + h) * a.ldp + (nv ? i : 0);
            cp16n((tid < KP_BQ / 4 ? sL : sD) + stage * KP_BQ + 4 * c, src, 4 * nv);
        }
    };
    /* the loads' head and query block run one step ahead of the compute's */
    int ld_hh = nqb ? it_lo / nqb : 0, ld_qb = nqb ? it_lo % nqb : 0;
    if (it_hi > it_lo) load_q(0, ld_hh, (qb0 + ld_qb) * KP_BQ);
    cp_commit();

    /* the warps' parts: S^T, dP^T, P^T, dS^T: keys kg 32.., queries qh 32..; dV, dK:
     * keys kg 32.., columns dh D/2..; dQ: queries dqq 32.., columns dqd D/4.. */
    const int kg = warp & 3, qh = warp >> 2, dh = warp >> 2, dqq = warp & 1, dqd = warp >> 1;
    constexpr int NV = D / 16; /* dV, dK: n8 tiles per warp (D/2 columns) */
    constexpr int NQ = D / 32; /* dQ: n8 tiles per warp (D/4 columns) */
    uint32_t ak[4], bq[4], apt[4], bt[4], bk[4], ast[2];
    ldsm_addrs<D, D / 16>(ak, sK, kg * 32 + (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, 0);
    ldsm_addrs<D, D / 16>(bq, sQ, qh * 32 + (lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1, 0);
    ldsm_addrs<KP_BQ, KP_BQ / 16>(apt, sPT, kg * 32 + (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, 0);
    ldsm_addrs<D, NV / 2>(bt, sQ, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, dh * (D / 16));
    ldsm_addrs<D, NQ / 2>(bk, sK, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4, dqd * (D / 32));
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
        ast[mt] = smem_addr(sdST + swz<KP_BQ>((lane & 7) + ((lane >> 4) * 8), (dqq * 32 + mt * 16) / 8 + ((lane >> 3) & 1)));
    constexpr uint32_t VOFF = KP_BK * RB, DOOFF = 2 * QST, DSOFF = KP_BK * PB;
    static_assert(KP_BQ / 8 == 8, "the [key][query] tiles' rows hold 8 chunks");
    T *const pt_row = sPT + (kg * 32 + (lane >> 2)) * KP_BQ + (lane & 3) * 2;
    const int pt_x = (lane >> 2) & 7;

    float dk[2][NV][4], dv[2][NV][4];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int t = 0; t < NV; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) dk[m][t][e] = dv[m][t][e] = 0.f;

    int hh = ld_hh, qbi = ld_qb;
    for (int it = it_lo; it < it_hi; it++) {
        const int st = (it - it_lo) & 1;
        if (it + 1 < it_hi) {
            if (++ld_qb == nqb) ld_qb = 0, ld_hh++;
            load_q(st ^ 1, ld_hh, (qb0 + ld_qb) * KP_BQ);
        }
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        const int q0 = (qb0 + qbi) * KP_BQ, h = hkv * a.G + hh;
        if (++qbi == nqb) qbi = 0, hh++;
        const uint32_t so = st * QST;

        /* S^T = K Q^T and dP^T = V dO^T: keys kg 32 + 0..31 x queries qh 32 + 0..31 */
        float s[2][4][4], dp[2][4][4];
#pragma unroll
        for (int m = 0; m < 2; m++)
#pragma unroll
            for (int t = 0; t < 4; t++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[m][t][e] = dp[m][t][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t kf[2][4], vf[2][4];
#pragma unroll
            for (int m = 0; m < 2; m++) {
                ldsm_x4_at(kf[m], ak[kk % 4] + (kk / 4) * 128 + m * 16 * RB);
                ldsm_x4_at(vf[m], ak[kk % 4] + (kk / 4) * 128 + m * 16 * RB + VOFF);
            }
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t qf[4], of[4];
                ldsm_x4_at(qf, bq[kk % 4] + so + np * 16 * RB + (kk / 4) * 128);
                ldsm_x4_at(of, bq[kk % 4] + so + np * 16 * RB + (kk / 4) * 128 + DOOFF);
#pragma unroll
                for (int m = 0; m < 2; m++) {
                    mma16816<T>(s[m][2 * np], kf[m], qf[0], qf[1]);
                    mma16816<T>(s[m][2 * np + 1], kf[m], qf[2], qf[3]);
                    mma16816<T>(dp[m][2 * np], vf[m], of[0], of[1]);
                    mma16816<T>(dp[m][2 * np + 1], vf[m], of[2], of[3]);
                }
            }
        }
        const long long qpos0 = (long long)q0 + off;
        const bool full = q0 + KP_BQ <= a.Nq && j0 + KP_BK <= a.Nk && (!a.causal || qpos0 >= kpos(jl)) &&
                          (a.window <= 0 || qpos0 + KP_BQ - 1 < kpos(j0) + a.window);
        auto p_ds = [&](auto mask) {
            constexpr bool MASK = decltype(mask)::value;
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int qc = qh * 32 + nt * 8 + (lane & 3) * 2;
                const float2 l2 = *reinterpret_cast<const float2 *>(sL + st * KP_BQ + qc);
                const float2 d2 = *reinterpret_cast<const float2 *>(sD + st * KP_BQ + qc);
#pragma unroll
                for (int m = 0; m < 2; m++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const float lv = (e & 1) ? l2.y : l2.x, dv_ = (e & 1) ? d2.y : d2.x;
                        float pv = fast_exp2(s[m][nt][e] * a.scale_log2 - lv);
                        if (MASK) {
                            const int jj = j0 + kg * 32 + m * 16 + (lane >> 2) + 8 * (e >> 1);
                            const long long ip = qpos0 + qc + (e & 1);
                            bool vis = jj < a.Nk && q0 + qc + (e & 1) < a.Nq;
                            if (a.causal) vis = vis && kpos(jj) <= ip;
                            if (a.window > 0) vis = vis && kpos(jj) > ip - a.window;
                            if (!vis) pv = 0.f;
                        }
                        s[m][nt][e] = pv;
                        dp[m][nt][e] = pv * (dp[m][nt][e] - dv_) * a.scale;
                    }
            }
        };
        if (full) p_ds(std::false_type());
        else p_ds(std::true_type());
        /* P^T and s dS^T to shared memory as [key][query] */
#pragma unroll
        for (int m = 0; m < 2; m++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    T *p = pt_row + (m * 16 + 8 * r) * KP_BQ + (((qh * 4 + nt) ^ pt_x) << 3);
                    *reinterpret_cast<uint32_t *>(p) = pack2<T>::from(s[m][nt][2 * r], s[m][nt][2 * r + 1]);
                    *reinterpret_cast<uint32_t *>(p + KP_BK * KP_BQ) = pack2<T>::from(dp[m][nt][2 * r], dp[m][nt][2 * r + 1]);
                }
        __syncthreads(); /* P^T, dS^T complete */
        /* dV += P^T dO, dK += (s dS^T) Q: keys kg 32 + 0..31 x columns dh D/2 + 0.. */
#pragma unroll
        for (int kk = 0; kk < KP_BQ / 16; kk++) {
            uint32_t pa[2][4], da[2][4];
#pragma unroll
            for (int m = 0; m < 2; m++) {
                ldsm_x4_at(pa[m], apt[kk] + m * 16 * PB);
                ldsm_x4_at(da[m], apt[kk] + m * 16 * PB + DSOFF);
            }
#pragma unroll
            for (int dt = 0; dt < NV; dt += 2) {
                uint32_t of[4], qf[4];
                const uint32_t ad = bt[(dt / 2) % 4] + so + kk * 16 * RB + (dt / 8) * 128;
                ldsm_x4_t_at(of, ad + DOOFF);
                ldsm_x4_t_at(qf, ad);
#pragma unroll
                for (int m = 0; m < 2; m++) {
                    mma16816<T>(dv[m][dt], pa[m], of[0], of[1]);
                    mma16816<T>(dv[m][dt + 1], pa[m], of[2], of[3]);
                    mma16816<T>(dk[m][dt], da[m], qf[0], qf[1]);
                    mma16816<T>(dk[m][dt + 1], da[m], qf[2], qf[3]);
                }
            }
        }
        /* dQ rows dqq 32 + 0..31 x columns dqd D/4 + 0.. += (s dS) K */
        {
            float dq[2][NQ][4];
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int t = 0; t < NQ; t++) dq[m][t][0] = dq[m][t][1] = dq[m][t][2] = dq[m][t][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KP_BK / 16; kk++) {
                uint32_t af[2][4];
#pragma unroll
                for (int m = 0; m < 2; m++) ldsm_x4_t_at(af[m], ast[m] + kk * 16 * PB);
#pragma unroll
                for (int dt = 0; dt < NQ; dt += 2) {
                    uint32_t bf[4];
                    ldsm_x4_t_at(bf, bk[dt / 2] + kk * 16 * RB);
#pragma unroll
                    for (int m = 0; m < 2; m++) {
                        mma16816<T>(dq[m][dt], af[m], bf[0], bf[1]);
                        mma16816<T>(dq[m][dt + 1], af[m], bf[2], bf[3]);
                    }
                }
            }
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int i = min(q0 + dqq * 32 + m * 16 + (lane >> 2) + 8 * r, a.Nq - 1);
                    float *row = dq_acc + (((size_t)b * a.Nq + i) * a.Hq + h) * D + dqd * (D / 4) + (lane & 3) * 2;
#pragma unroll
                    for (int t = 0; t < NQ; t++) red_add2(row + t * 8, dq[m][t][2 * r], dq[m][t][2 * r + 1]);
                }
        }
        __syncthreads(); /* the stage, P^T and dS^T are free again */
    }
    cp_wait<0>();
    __syncthreads();
    T *dkb = static_cast<T *>(a.dk_out) + b * a.dksb + hkv * a.dksh;
    T *dvb = static_cast<T *>(a.dv_out) + b * a.dvsb + hkv * a.dvsh;
    /* SPLIT: the fp32 accumulators, (B, Nk, Hkv, D) as the query tiles' */
    float *dka = a.dk_acc + ((size_t)b * a.Nk * a.Hkv + hkv) * D, *dva = a.dv_acc + ((size_t)b * a.Nk * a.Hkv + hkv) * D;
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int j = j0 + kg * 32 + m * 16 + (lane >> 2) + 8 * r;
            if (j >= a.Nk) continue;
#pragma unroll
            for (int t = 0; t < NV; t++) {
                const int col = dh * (D / 2) + t * 8 + (lane & 3) * 2;
                if constexpr (SPLIT) {
                    red_add2(dka + (long long)j * a.Hkv * D + col, dk[m][t][2 * r], dk[m][t][2 * r + 1]);
                    red_add2(dva + (long long)j * a.Hkv * D + col, dv[m][t][2 * r], dv[m][t][2 * r + 1]);
                } else {
                    *reinterpret_cast<uint32_t *>(dkb + (long long)j * a.dkss + col) =
                        pack2<T>::from(dk[m][t][2 * r], dk[m][t][2 * r + 1]);
                    *reinterpret_cast<uint32_t *>(dvb + (long long)j * a.dvss + col) =
                        pack2<T>::from(dv[m][t][2 * r], dv[m][t][2 * r + 1]);
                }
            }
        }
}

/* The key-parallel kernel's shared memory: K, V, two stages of Q and dO, P^T and
 * dS^T, two stages of lse log2 e and Dsum. */
size_t bwd_kp_smem(int D, size_t esize) {
    return (size_t)(2 * KP_BK * D + 4 * KP_BQ * D + 2 * KP_BK * KP_BQ) * esize + 4 * KP_BQ * sizeof(float);
}

/* Which backward this call takes: KP_NO the query tiles, KP_TILE the key-parallel
 * kernel with a CTA per key tile, KP_SPLIT the key-parallel kernel with each tile's
 * steps split over several CTAs. DMABENCH_CUDA_BWD_KEYPAR=0 asks for the query tiles
 * everywhere, =1 for a CTA per key tile wherever the kernel applies (contiguous key
 * ranges, at positions of their own or not: no list, no z, no dz; D 64 or 128).
 * Unset: where it applies and its shared memory fits, a CTA per key tile where
 * that grid has a CTA for every SM (a CTA loops over the group's heads, so its
 * grid has G times fewer CTAs than the query tiles': docs/perf-notes.md b9-b12),
 * and split where it has fewer (nsa's compressed branch, few heads);
 * DMABENCH_CUDA_BWD_KPSPLIT=0 sends those to the query tiles instead. */
enum { KP_NO, KP_TILE, KP_SPLIT };
int bwd_kp_choose(const attn_params *p, const cuda_attn_spec *s, const float *dz) {
    static const int mode = dm_env_is("DMABENCH_CUDA_BWD_KEYPAR", "0")   ? 0
                            : dm_env_is("DMABENCH_CUDA_BWD_KEYPAR", "1") ? 1
                                                                         : -1;
    static const bool split = !dm_env_is("DMABENCH_CUDA_BWD_KPSPLIT", "0");
    const bool applies = !dz && !s->list && !s->z && !s->tkey && !s->dv_ddt && !s->after_main &&
                         (p->causal || s->window <= 0) && (p->D == 64 || p->D == 128);
    if (mode == 0 || !applies) return KP_NO;
    if (mode == 1) return KP_TILE;
    size_t optin = 0;
    int nsm = 0;
    if (dm_cuda_smem_optin(&optin) != ATTN_OK || bwd_kp_smem(p->D, sizeof(__half)) > optin) return KP_NO;
    if (dm_cuda_num_sms(&nsm) != ATTN_OK) return KP_NO;
    const long long ctas = (long long)((p->Nk + KP_BK - 1) / KP_BK) * p->Hkv * p->B;
    return ctas >= nsm ? KP_TILE : split ? KP_SPLIT : KP_NO;
}

/* Dsum = rowsum(dO O) into dsum (rows ldp apart per (b, h)), O + res with res; with
 * lse2, lse log2 e besides (bwd_dot_kernel). */
template <typename T>
attn_status launch_dot(const attn_params *p, float *dsum, int ldp, float *lse2, const void *res = nullptr) {
    const int wpb = 8;
    const long long rows = (long long)p->B * p->Nq * p->Hq;
    auto kern = bwd_dot_kernel<T, 1>;
    int lpr = 32; /* lanes per row: a 16-byte load each where the rows allow it */
    if (dm_vec8(p->o, p->o_st, p->D) && dm_vec8(p->dout, p->do_st, p->D)) {
        kern = bwd_dot_kernel<T, 8>;
        while (lpr > 1 && lpr * 8 > p->D) lpr >>= 1;
    }
    const long long rpb = (long long)wpb * (32 / lpr); /* rows per block */
    const unsigned grid = (unsigned)((rows + rpb - 1) / rpb);
    kern<<<grid, wpb * 32>>>(static_cast<const T *>(p->o), p->o_st.b, p->o_st.s, p->o_st.h,
                             static_cast<const T *>(p->dout), p->do_st.b, p->do_st.s, p->do_st.h, p->B, p->Nq, p->Hq, p->D,
                             dsum, ldp, static_cast<const __nv_bfloat16 *>(res), static_cast<const float *>(p->lse),
                             lse2, lpr);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* The key-parallel kernel's rows from a caller's Dsum (cuda_attn_spec.dsum, rows
 * Nq apart): dsum and lse2 (lse log2 e, +inf for an empty row) ldp apart, as
 * bwd_dot_kernel leaves them. A thread per (b h, i). */
__global__ void bwd_rows_kernel(const float *dsum_in, const float *lse, int nbh, int Nq, int ldp, float *dsum,
                                float *lse2) {
    const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (x >= (long long)nbh * Nq) return;
    const long long bh = x / Nq;
    const int i = (int)(x - bh * Nq);
    const size_t u = (size_t)bh * ldp + i;
    dsum[u] = dsum_in[x];
    const float l = lse[x];
    lse2[u] = l == -INFINITY ? INFINITY : l * LOG2E;
}

dm_cuda_ws g_kws; /* the key-parallel backward's dQ accumulator and Dsum */

/* The key-parallel backward (bwd_kp_kernel): Dsum, the kernel, dQ to its dtype (or,
 * with dq_add, dQ added into that fp32 buffer by the kernel itself). With split,
 * each key tile's steps (query blocks times the group's heads) in chunks, a CTA
 * each, about four CTAs per SM in all and at least KP_MIN_CHUNK steps per CTA;
 * dK and dV then go through fp32 accumulators and bwd_finish_kernel. */
constexpr int KP_MIN_CHUNK = 8;
template <typename T, int D>
attn_status launch_bwd_kp(const attn_params *p, BwdArgs &a, float *dq_add, bool split) {
    if constexpr (D != 64 && D != 128) {
        return ATTN_ERR_UNSUPPORTED; /* bwd_kp_choose sends these to the query tiles */
    } else {
        const int ntile = (p->Nk + KP_BK - 1) / KP_BK;
        const long long nkvb = (long long)p->Hkv * p->B;
        long long nblk = ntile * nkvb;
        a.kp_chunk = 0;
        if (split) { /* the chunk from the steps of all tiles, then the exact grid */
            int nsm = 0;
            attn_status st = dm_cuda_num_sms(&nsm);
            if (st != ATTN_OK) return st;
            std::vector<long long> tsteps(ntile); /* each tile's steps: query blocks times the group's heads */
            long long steps = 0;
            for (int t = 0; t < ntile; t++) {
                int q0;
                tsteps[t] = (long long)kp_tile_qblocks(a, t * KP_BK, &q0) * a.G;
                steps += tsteps[t];
            }
            const long long want = 4LL * nsm;
            a.kp_chunk = (int)std::max<long long>(KP_MIN_CHUNK, (steps * nkvb + want - 1) / want);
            long long units = 0;
            for (long long ts : tsteps) units += (ts + a.kp_chunk - 1) / a.kp_chunk;
            nblk = units * nkvb;
        }
        if (nblk > INT_MAX) return ATTN_ERR_UNSUPPORTED;
        auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
        const size_t nq = (size_t)p->B * p->Nq * p->Hq * D;
        /* Dsum and lse log2 e with each (b, h) row padded to 4 floats, so that the
         * kernel copies them in 16-byte pieces */
        const int ldp = (p->Nq + 3) & ~3;
        const size_t qb = dq_add ? 0 : r256(nq * sizeof(float)), sb = r256((size_t)p->B * p->Hq * ldp * sizeof(float));
        const size_t accb = split ? r256((size_t)p->B * p->Nk * p->Hkv * D * sizeof(float)) : 0;
        char *ws;
        attn_status st = dm_cuda_ws_get(&g_kws, qb + 2 * sb + 2 * accb, (void **)&ws, nullptr);
        if (st != ATTN_OK) return st;
        float *dq_acc = dq_add ? dq_add : reinterpret_cast<float *>(ws);
        a.dsum = reinterpret_cast<float *>(ws + qb);
        a.lse2 = reinterpret_cast<float *>(ws + qb + sb);
        a.ldp = ldp;
        if (split) {
            a.dk_acc = reinterpret_cast<float *>(ws + qb + 2 * sb);
            a.dv_acc = reinterpret_cast<float *>(ws + qb + 2 * sb + accb);
            CUDA_CHECK(cudaMemsetAsync(a.dk_acc, 0, 2 * accb));
        }
        if (!dq_add) CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, nq * sizeof(float)));
        if (a.dsum_in) {
            const long long rows = (long long)p->B * p->Hq * p->Nq;
            bwd_rows_kernel<<<(unsigned)((rows + 255) / 256), 256>>>(a.dsum_in, static_cast<const float *>(p->lse),
                                                                     p->B * p->Hq, p->Nq, ldp,
                                                                     const_cast<float *>(a.dsum),
                                                                     const_cast<float *>(a.lse2));
            CUDA_CHECK_LAUNCH();
        } else if ((st = launch_dot<T>(p, const_cast<float *>(a.dsum), ldp, const_cast<float *>(a.lse2))) != ATTN_OK) {
            return st;
        }
        a.dk_out = p->dk, a.dv_out = p->dv;
        a.dksb = p->dk_st.b, a.dkss = p->dk_st.s, a.dksh = p->dk_st.h;
        a.dvsb = p->dv_st.b, a.dvss = p->dv_st.s, a.dvsh = p->dv_st.h;
        const size_t smem = bwd_kp_smem(D, sizeof(T));
        auto kern = split ? bwd_kp_kernel<T, D, true> : bwd_kp_kernel<T, D, false>;
        CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        if (nblk > 0) { /* split: no CTA where no tile has a query that sees it (dK, dV stay 0) */
            kern<<<(unsigned)nblk, 256, smem>>>(a, dq_acc);
            CUDA_CHECK_LAUNCH();
        }
        if (split) {
            const long long n2 = (long long)p->B * p->Nk * p->Hkv * D / 2;
            bwd_finish_kernel<T><<<(unsigned)((n2 + 255) / 256), 256>>>(
                a.dk_acc, a.dv_acc, static_cast<T *>(p->dk), p->dk_st.b, p->dk_st.s, p->dk_st.h, static_cast<T *>(p->dv),
                p->dv_st.b, p->dv_st.s, p->dv_st.h, p->B, p->Nk, p->Hkv, D, nullptr, nullptr);
            CUDA_CHECK_LAUNCH();
        }
        if (dq_add) return ATTN_OK;
        const attn_stride qs = {(int64_t)p->Nq * p->Hq * D, (int64_t)p->Hq * D, D};
        return convert<float, T>(dq_acc, qs, p->dq, p->dq_st, p->B, p->Nq, p->Hq, D);
    }
}

/* The backward's shared memory at BQ query rows per tile; KS 2 (16 warps) adds
 * two floats per row, the key halves' parts of the exact Dsum. */
size_t bwd_smem(int BQ, int D, size_t esize, int KS = 1, bool RW = false) {
    return (size_t)(2 * BQ * D + 4 * BK * D + 2 * BQ * BK) * esize + BQ * 8 + 8 * BK * sizeof(int) + 4 * sizeof(int) +
           (KS > 1 ? 2 * (size_t)BQ * sizeof(float) : 0) +
           (RW ? (size_t)BK * D * sizeof(float) + BK * sizeof(int) + 8 + 7 * sizeof(uint64_t) : 0); /* RW: sRdk, sRidx, the mbarriers (TM: two more, MC two more) */
}

/* The device's opt-in shared memory per CTA in bytes, 0 where it cannot be read. */
size_t bwd_optin() {
    size_t optin = 0;
    return dm_cuda_smem_optin(&optin) == ATTN_OK ? optin : 0;
}

/* 128-row tiles where they fit (D >= 32 and the device's shared memory);
 * DMABENCH_CUDA_BWD_TILE=64 asks for 64-row tiles everywhere. */
int bwd_tile_rows(int D, size_t esize) {
    static const bool only64 = dm_env_is("DMABENCH_CUDA_BWD_TILE", "64");
    if (only64 || D < 32) return 64;
    return bwd_smem(128, D, esize) <= bwd_optin() ? 128 : 64;
}

template <typename T, int D, int BQ, bool WG = false, int KS = 1, bool OV = false, bool RW = false, bool TM = false,
          int CL = 1>
attn_status launch_bwd_bq(const attn_params *p, BwdArgs &a, const cuda_attn_spec *s, const BwdMaps *maps = nullptr) {
    const int ntiles = (p->Nq + BQ - 1) / BQ;
    const size_t smem = bwd_smem(BQ, D, sizeof(T), KS, RW);
    auto kern = bwd_main_kernel<T, D, BQ, WG, KS, OV, RW, TM, CL>;
    const dim3 grid(ntiles, p->Hq, p->B), block(bwd_threads(BQ, KS, RW));
    if constexpr (CL > 1) { /* before any work: the caller then takes a smaller cluster */
        static const bool fits = dm_cluster_fits(kern, block, smem, 1, CL);
        if (!fits) return ATTN_ERR_UNSUPPORTED;
    }
    if (a.dsum_in) {
        a.dsum = a.dsum_in;
    } else if (!a.exact_dsum) {
        attn_status st = launch_dot<T>(p, const_cast<float *>(a.dsum), p->Nq, nullptr, s->ores);
        if (st != ATTN_OK) return st;
    }
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    if constexpr (CL > 1) { /* clusters of CL heads of a GQA group on one tile */
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[1];
        dm_cluster_config(&cfg, at, grid, block, smem, 1, CL);
        CUDA_CHECK(cudaLaunchKernelEx(&cfg, kern, a, *maps));
    } else {
        kern<<<grid, block, smem>>>(a, maps ? *maps : BwdMaps{});
    }
    CUDA_CHECK_LAUNCH();
    if (s->after_main) {
        attn_status st = s->after_main(s->after_main_ctx);
        if (st != ATTN_OK) return st;
    }
    long long n2 = (long long)p->B * p->Nk * p->Hkv * p->D / 2;
    bwd_finish_kernel<T><<<(unsigned)((n2 + 255) / 256), 256>>>(
        a.dk_acc, a.dv_acc, static_cast<T *>(p->dk), p->dk_st.b, p->dk_st.s, p->dk_st.h, static_cast<T *>(p->dv),
        p->dv_st.b, p->dv_st.s, p->dv_st.h, p->B, p->Nk, p->Hkv, p->D, s->dv_ddt, s->dv_w);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* On an sm_90 device the query-tile backward runs on wgmma (bwd_main_kernel's WG) at
 * D 64 and 128; DMABENCH_CUDA_WGMMA_BWD=0 keeps it on mma.sync. */
bool bwd_wgmma_enabled() {
    static const bool on = !dm_env_is("DMABENCH_CUDA_WGMMA_BWD", "0") && dm_cuda_sm90();
    return on;
}

/* The wgmma version's 128-row tiles issue dK's product before waiting for dV's, whose
 * sums then go out while dK's runs (bwd_main_kernel's OV); DMABENCH_CUDA_BWD_WG_OVERLAP=0
 * waits for each product before its sums */
bool bwd_wg_overlap_enabled() {
    static const bool on = !dm_env_is("DMABENCH_CUDA_BWD_WG_OVERLAP", "0");
    return on;
}

/* The wgmma version's 128-row tiles with a third warpgroup that issues the dK/dV
 * sums (bwd_main_kernel's RW); DMABENCH_CUDA_BWD_WG_REDUCER=0 leaves them to the
 * two that run the products (OV, or with DMABENCH_CUDA_BWD_WG_OVERLAP=0 neither) */
bool bwd_wg_reducer_enabled() {
    static const bool on = !dm_env_is("DMABENCH_CUDA_BWD_WG_REDUCER", "0");
    return on;
}

/* The reducer tiles copy their K and V rows with the tensor memory accelerator
 * (bwd_main_kernel's TM) where the driver encodes the maps; DMABENCH_CUDA_BWD_TMA=0
 * keeps them on cp.async */
bool bwd_tma_enabled() {
    static const bool on = !dm_env_is("DMABENCH_CUDA_BWD_TMA", "0");
    return on;
}

/* The reducer tiles of CL heads of a GQA group run as a cluster of CL CTAs that share
 * their K/V rows (bwd_main_kernel's MC: each issues 1 / CL of the boxes, multicast
 * into all) where the group's size is a multiple of CL: CL 2 by default;
 * DMABENCH_CUDA_BWD_MC=4 asks for 4 (2 where the group takes no 4), =0 keeps a CTA
 * alone. */
int bwd_mc_cluster(int G) {
    static const int want = dm_env_is("DMABENCH_CUDA_BWD_MC", "0") ? 1 : dm_env_is("DMABENCH_CUDA_BWD_MC", "4") ? 4 : 2;
    int cl = want;
    while (cl > 1 && G % cl) cl /= 2;
    return cl;
}

/* A BwdMaps map of K or V at ptr (16-bit elements): false where the encoder is
 * missing or refuses the strides */
bool bwd_map(CUtensorMap *m, const void *ptr, const attn_stride &st, int B, int Nk, int Hkv, int D) {
    return dm_cuda_tmap_kv(m, ptr, st.b, st.s, st.h, B, Nk, Hkv, D) == 0;
}

/* DMABENCH_CUDA_BWD_W16=1: the 128-row tiles at D 64 and 128 on 16 warps
 * (bwd_main_kernel's KS 2) */
bool bwd_w16_enabled() {
    static const bool on = dm_env_is("DMABENCH_CUDA_BWD_W16", "1");
    return on;
}

template <typename T, int D> attn_status launch_bwd(const attn_params *p, BwdArgs &a, const cuda_attn_spec *s) {
    if constexpr (D >= 32) {
        const int bq = bwd_tile_rows(D, sizeof(T));
        if constexpr (D == 64 || D == 128) {
            if (bq == 128 && bwd_w16_enabled() && bwd_smem(128, D, sizeof(T), 2) <= bwd_optin())
                return launch_bwd_bq<T, D, 128, false, 2>(p, a, s);
            if (bwd_wgmma_enabled()) {
                if (bq == 128 && bwd_wg_reducer_enabled() && bwd_smem(128, D, sizeof(T), 1, true) <= bwd_optin()) {
                    BwdMaps m;
                    if (bwd_tma_enabled() && bwd_map(&m.k, p->k, p->k_st, p->B, p->Nk, p->Hkv, D) &&
                        bwd_map(&m.v, p->v, p->v_st, p->B, p->Nk, p->Hkv, D)) {
                        const int cl = bwd_mc_cluster(p->Hq / p->Hkv);
                        /* a cluster size the device cannot hold (one CTA an SM: CL SMs
                         * of one GPC free together; a partition may have none) is
                         * refused before any work, and the next one tried */
                        attn_status st = ATTN_ERR_UNSUPPORTED;
                        if (cl == 4) st = launch_bwd_bq<T, D, 128, true, 1, false, true, true, 4>(p, a, s, &m);
                        if (st == ATTN_ERR_UNSUPPORTED && cl >= 2)
                            st = launch_bwd_bq<T, D, 128, true, 1, false, true, true, 2>(p, a, s, &m);
                        if (st != ATTN_ERR_UNSUPPORTED) return st;
                        return launch_bwd_bq<T, D, 128, true, 1, false, true, true>(p, a, s, &m);
                    }
                    return launch_bwd_bq<T, D, 128, true, 1, false, true>(p, a, s);
                }
                if (bq == 128 && bwd_wg_overlap_enabled()) return launch_bwd_bq<T, D, 128, true, 1, true>(p, a, s);
                return bq == 128 ? launch_bwd_bq<T, D, 128, true>(p, a, s) : launch_bwd_bq<T, D, 64, true>(p, a, s);
            }
        }
        if (bq == 128) return launch_bwd_bq<T, D, 128>(p, a, s);
    }
    return launch_bwd_bq<T, D, 64>(p, a, s);
}

} // namespace

extern "C" attn_status cuda_attn_backward(const attn_params *p, const cuda_attn_spec *s, float *dz) {
    if (s->kpos_mul > 0 && s->window > 0) return ATTN_ERR_INVALID; /* a key-position map takes no window */
    const int kpm = bwd_kp_choose(p, s, dz);
    const bool kp = kpm != KP_NO, split = kpm == KP_SPLIT;
    BwdArgs a = {};
    if (!kp) { /* the query-tile backward's fp32 dK, dV accumulators and Dsum */
        auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
        size_t nacc = (size_t)p->B * p->Nk * p->Hkv * p->D;
        size_t accb = r256(nacc * sizeof(float));
        size_t sumb = r256((size_t)p->B * p->Hq * p->Nq * sizeof(float));
        char *ws;
        attn_status st = dm_cuda_ws_get(&g_bws, 2 * accb + sumb, (void **)&ws, nullptr);
        if (st != ATTN_OK) return st;
        a.dk_acc = reinterpret_cast<float *>(ws);
        a.dv_acc = reinterpret_cast<float *>(ws + accb);
        a.dsum = reinterpret_cast<float *>(ws + 2 * accb);
        CUDA_CHECK(cudaMemsetAsync(ws, 0, 2 * accb));
    }
    if (dz) CUDA_CHECK(cudaMemsetAsync(dz, 0, (size_t)p->B * p->Hkv * p->Nk * sizeof(float)));
    a.q = p->q, a.k = p->k, a.v = p->v, a.dout = p->dout, a.dq = p->dq;
    a.lse = static_cast<const float *>(p->lse);
    a.dz = dz;
    a.heads_first = dm_tile_heads_first(true);
    a.exact_dsum = dz != nullptr && !s->ores; /* with the residual, Dsum from dO . (O + residual) */
    a.dsum_in = dz ? nullptr : s->dsum; /* dma's dz takes Dsum from its own pass */
    a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
    a.ksb = p->k_st.b, a.kss = p->k_st.s, a.ksh = p->k_st.h;
    a.vsb = p->v_st.b, a.vss = p->v_st.s, a.vsh = p->v_st.h;
    a.dosb = p->do_st.b, a.doss = p->do_st.s, a.dosh = p->do_st.h;
    a.dqsb = p->dq_st.b, a.dqss = p->dq_st.s, a.dqsh = p->dq_st.h;
    a.B = p->B, a.Nq = p->Nq, a.Nk = p->Nk, a.Hq = p->Hq, a.Hkv = p->Hkv, a.G = p->Hq / p->Hkv;
    a.scale = (float)p->scale;
    a.scale_log2 = (float)(p->scale * 1.4426950408889634);
    a.causal = p->causal;
    a.window = s->window;
    a.kmul = s->kpos_mul > 0 ? s->kpos_mul : 1;
    a.kadd = s->kpos_mul > 0 ? s->kpos_add : 0;
    a.off = s->kpos_mul > 0 ? s->qoff : (long long)p->Nk - p->Nq;
    a.z = s->z;
    a.list = s->list, a.list_len = s->list_len, a.tkey = s->tkey;
    a.cap = s->cap;
    a.list_tile = CUDA_ATTN_BQ;
    a.ntiles_list = cuda_attn_ntiles(p);
    const bool bf = p->dtype == ATTN_DTYPE_BF16;
    float *dq_add = s->dq_add;
    if (kp) switch (p->D) {
        case 16: return bf ? launch_bwd_kp<__nv_bfloat16, 16>(p, a, dq_add, split) : launch_bwd_kp<__half, 16>(p, a, dq_add, split);
        case 32: return bf ? launch_bwd_kp<__nv_bfloat16, 32>(p, a, dq_add, split) : launch_bwd_kp<__half, 32>(p, a, dq_add, split);
        case 64: return bf ? launch_bwd_kp<__nv_bfloat16, 64>(p, a, dq_add, split) : launch_bwd_kp<__half, 64>(p, a, dq_add, split);
        default:
            return bf ? launch_bwd_kp<__nv_bfloat16, 128>(p, a, dq_add, split) : launch_bwd_kp<__half, 128>(p, a, dq_add, split);
        }
    attn_status st;
    switch (p->D) {
    case 16: st = bf ? launch_bwd<__nv_bfloat16, 16>(p, a, s) : launch_bwd<__half, 16>(p, a, s); break;
    case 32: st = bf ? launch_bwd<__nv_bfloat16, 32>(p, a, s) : launch_bwd<__half, 32>(p, a, s); break;
    case 64: st = bf ? launch_bwd<__nv_bfloat16, 64>(p, a, s) : launch_bwd<__half, 64>(p, a, s); break;
    default: st = bf ? launch_bwd<__nv_bfloat16, 128>(p, a, s) : launch_bwd<__half, 128>(p, a, s);
    }
    if (st != ATTN_OK || !dq_add) return st;
    const long long nq = (long long)p->B * p->Nq * p->Hq * p->D;
    return bf ? acc_into<__nv_bfloat16>(p->dq, dq_add, nq) : acc_into<__half>(p->dq, dq_add, nq);
}
