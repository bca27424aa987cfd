/*
 * cuda_attn.cu: the CUDA attention engine's forward (see cuda_attn.h).
 *
 * One CTA of 4 warps per (query tile of 128, query head, batch); warp w owns rows
 * 32w..32w+31 (two m16 tiles). K/V blocks of 64 keys stream through shared
 * memory, double buffered with cp.async; each warp computes S = Q K^T for its rows
 * with mma.sync m16n8k16 (Q fragments re-read from shared memory each k-step, which
 * keeps registers for the accumulators), masks it with the per-key query
 * intervals, runs the online softmax in registers (rescaling O only when a row's
 * max rises by more than FWD_TAU in log2 units), and accumulates O += P V with P
 * converted straight from the S accumulators into A fragments (RES, dma's forward
 * for a backward: P as two rounded halves, both multiplied in, and O's rounding
 * residual written beside O; cuda_attn_spec.ores).
 * Shared-memory rows are 16-byte chunks XOR-swizzled by (row & 7), so ldmatrix
 * reads 8 rows of one column without bank conflicts; every row a lane points at
 * has the same low bits, so its ldmatrix addresses are four per-thread bases plus
 * immediates. Key blocks that every row keeps in full (most of them) take a copy
 * of the softmax step without the mask (fwd_softmax<false>): with the mask in
 * every block, ptxas predicated it into all of them, and the kernel executed 1.7x
 * the instructions of FlashAttention-2's forward (docs/perf-notes.md e1).
 *
 * Tuning: 32 rows per warp read each K/V fragment from shared memory once for two
 * MMAs per m-tile pair, about 26 flops per shared-memory byte at D = 128 (16 rows
 * per warp gave 16, which left the kernel bound by shared-memory bandwidth: 160
 * TFLOP/s measured on an H200). 64 keys per block: 2 x 8 S tiles (64 accumulators)
 * beside 2 x D/8 O tiles (128 at D = 128).
 */
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_common.cuh"
#include "cuda_attn_fwd.cuh"
#include "cuda_attn_keys.cuh"
#include "cuda_mma.cuh"

namespace {
using namespace dm;

constexpr int BQ = CUDA_ATTN_BQ;
constexpr int BK = 64;
constexpr int MT = 2;                          /* m16 tiles per warp: 32 query rows */
constexpr int NTHREADS = 32 * (BQ / (16 * MT)); /* 4 warps */

/* Bias (HASZ: dma's z log2e per key) and, with MASK, the per-key row intervals of
 * block stage st; then the online softmax update of the warp's rows: s becomes
 * P, and where some row's block max exceeds its running max m by more than
 * FWD_TAU, m moves up to it and that row's l and O are rescaled. Without z the
 * max is taken on the raw scores and the scale folds into one FFMA per element
 * (scale_log2 > 0). Instantiated twice in the key loop so that blocks every row
 * keeps in full (most of them) pay for no mask: no shared-memory reads, no
 * compares, no selects. */
template <bool MASK, bool HASZ, typename T, int D>
__device__ __forceinline__ void fwd_softmax(float (&s)[MT][BK / 8][4], float (&m)[MT][2], float (&l)[MT][2],
                                            float (&oacc)[MT][D / 8][4], float scale_log2, const int *sIdx,
                                            const int *sRlo, const int *sRhi, const float *sZ, int st, int qrow0,
                                            int lane) {
    float mx[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) mx[mt][0] = mx[mt][1] = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
        for (int e01 = 0; e01 < 2; e01++) { /* one key slot, all the thread's rows */
            const int g = st * BK + nt * 8 + (lane & 3) * 2 + e01;
            const float zb = HASZ ? sZ[g] : 0.f;
            int j = 0, rl = 0, rh = 0;
            if (MASK) j = sIdx[g], rl = sRlo[g], rh = sRhi[g];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                const int qa = qrow0 + mt * 16, qb8 = qa + 8;
                float v0 = HASZ ? s[mt][nt][e01] * scale_log2 + zb : s[mt][nt][e01];
                float v1 = HASZ ? s[mt][nt][e01 + 2] * scale_log2 + zb : s[mt][nt][e01 + 2];
                if (MASK) {
                    if (j < 0 || qa < rl || qa > rh) v0 = -INFINITY;
                    if (j < 0 || qb8 < rl || qb8 > rh) v1 = -INFINITY;
                }
                s[mt][nt][e01] = v0;
                s[mt][nt][e01 + 2] = v1;
                mx[mt][0] = fmaxf(mx[mt][0], v0);
                mx[mt][1] = fmaxf(mx[mt][1], v1);
            }
        }
    bool grow = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float x = mx[mt][r];
            x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
            x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
            mx[mt][r] = HASZ ? x : x * scale_log2; /* -inf stays -inf */
            grow |= mx[mt][r] > m[mt][r] + FWD_TAU;
        }
    if (__any_sync(0xffffffff, grow)) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float alpha[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const bool up = mx[mt][r] > m[mt][r] + FWD_TAU;
                alpha[r] = up ? fast_exp2(m[mt][r] - mx[mt][r]) : 1.f; /* m = -inf: 0 */
                m[mt][r] = up ? mx[mt][r] : m[mt][r];
                l[mt][r] *= alpha[r];
            }
#pragma unroll
            for (int t = 0; t < D / 8; t++) {
                oacc[mt][t][0] *= alpha[0], oacc[mt][t][1] *= alpha[0];
                oacc[mt][t][2] *= alpha[1], oacc[mt][t][3] *= alpha[1];
            }
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        /* a row with no key yet keeps m = -inf: subtract 0 instead, so that its
         * -inf scores give 0 without a test per element */
        const float mb0 = m[mt][0] == -INFINITY ? 0.f : m[mt][0], mb1 = m[mt][1] == -INFINITY ? 0.f : m[mt][1];
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float mb = e < 2 ? mb0 : mb1;
                const float pv = fast_exp2(HASZ ? s[mt][nt][e] - mb : s[mt][nt][e] * scale_log2 - mb);
                s[mt][nt][e] = pv;
                l[mt][e >> 1] += pv;
            }
    }
}

template <typename T, int D, bool HASZ, bool RES>
__global__ void __launch_bounds__(NTHREADS) attn_fwd_kernel(const FwdArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BQ * D;
    T *sV = sK + 2 * BK * D;
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sV + 2 * BK * D); /* [BQ] thresholds */
    int *sIdx = reinterpret_cast<int *>(sT + BQ);
    int *sRlo = sIdx + 2 * BK;
    int *sRhi = sRlo + 2 * BK;
    float *sZ = reinterpret_cast<float *>(sRhi + 2 * BK);
    int *sFull = reinterpret_cast<int *>(sZ + 2 * BK); /* [2][2]: per stage, per loading warp */

    /* the last tiles first: under a causal mask they hold the most keys, and
     * starting them early leaves the short ones to fill the final wave */
    const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int hkv = h / a.G;
    const int i0 = tile * BQ;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const KeyPos kp = {a.off, a.kmul, a.kadd, a.causal, a.window};

    /* tile_keys (cuda_attn_keys.cuh) written out: through the helper ptxas spills 28
     * more bytes in this kernel at D = 128 */
    int nkeys, kstart = 0;
    const int *lst = nullptr;
    const int nrows = min(BQ, a.Nq - i0);
    if (a.tkey) {
        if (tid < BQ) sT[tid] = tid < nrows ? a.tkey[((size_t)b * a.Hkv + hkv) * a.Nq + i0 + tid] : ~0ULL;
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

    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int c = tid; c < BQ * CH; c += NTHREADS) {
        int r = c / CH, ch = c % CH, i = i0 + r;
        bool ok = i < a.Nq;
        cp16(sQ + swz<D>(r, ch), qb + (long long)(ok ? i : 0) * a.qss + ch * 8, ok);
    }
    /* A contiguous range (no list, thresholds or z; mha, swa, nsa's branches) needs
     * no per-key metadata in blocks that every row keeps in full: whether a block
     * is full follows from its position, and its rows are loaded one stride apart.
     * The others (and the range's partial blocks) take the key slots' metadata. */
    const bool contig = !lst && !a.tkey && !zrow;
    /* dma (z and a list; HASZ kernels only, to leave the others' registers alone):
     * the list entries of the next two blocks, and z of each slot's next key, are
     * loaded a block ahead in registers, so that neither a block's metadata (the
     * first two warps') nor its copies wait on a global load after the barrier */
    constexpr int EPL = BK / 32;
    const bool ahead = HASZ && lst;
    int en[EPL], enn[EPL];
    float zn = 0.f;
    auto load_zn = [&](const int(&e)[EPL]) { /* z of this slot's key in block e */
        if (tid < BK) {
            const int j = own_entry(e, tid);
            zn = j >= 0 ? zrow[j] : 0.f;
        }
    };
    auto load_kv = [&](int stage, int c0) {
        if (ahead && c0 > 0) { /* block c0 from en and zn; then the next loads */
            if (tid < BK)
                key_slot_meta_at(kp, tid, own_entry(en, tid), zn, a.tkey ? sT : nullptr, true, i0, nrows,
                                 sIdx + stage * BK, sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK,
                                 sFull + stage * 2);
            load_key_rows_at<T, D, BK, NTHREADS>(sK + stage * BK * D, sV + stage * BK * D, kb, vb, a.kss, a.vss, en,
                                                 tid);
            load_zn(enn);
#pragma unroll
            for (int q = 0; q < EPL; q++) en[q] = enn[q];
            list_entries<BK>(lst, c0 + 2 * BK, nkeys, lane, enn);
            return;
        }
        if (contig && range_block_full(kp, kstart, c0, BK, nkeys, i0, nrows)) {
            /* the z kernels read the flag (below), but z makes contig false, so
             * this store never runs; it stays because without it ptxas spills
             * more in those kernels (dma's forward 5% slower, measured) */
            if (HASZ && tid == 0) sFull[stage * 2] = sFull[stage * 2 + 1] = 1;
        } else if (tid < BK) {
            key_slot_meta(kp, tid, c0, nkeys, lst, kstart, a.tkey ? sT : nullptr, zrow, i0, nrows, sIdx + stage * BK,
                          sRlo + stage * BK, sRhi + stage * BK, sZ + stage * BK, sFull + stage * 2);
        }
        if (contig && c0 + BK <= nkeys)
            load_key_block<T, D, BK, NTHREADS>(sK + stage * BK * D, sV + stage * BK * D,
                                               kb + (long long)(kstart + c0) * a.kss, vb + (long long)(kstart + c0) * a.vss,
                                               a.kss, a.vss, tid);
        else
            load_key_rows<T, D, BK, NTHREADS>(sK + stage * BK * D, sV + stage * BK * D, kb, vb, a.kss, a.vss, c0, nkeys,
                                              lst, kstart, tid);
    };

    const int nblocks = (nkeys + BK - 1) / BK;
    if (nblocks > 0) load_kv(0, 0);
    cp_commit();
    if (ahead) {
        list_entries<BK>(lst, BK, nkeys, lane, en);
        list_entries<BK>(lst, 2 * BK, nkeys, lane, enn);
        load_zn(en);
    }

    float m[MT][2], l[MT][2];
    float oacc[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
        for (int t = 0; t < D / 8; t++) oacc[mt][t][0] = oacc[mt][t][1] = oacc[mt][t][2] = oacc[mt][t][3] = 0.f;
    }
    const int wrow = warp * 16 * MT; /* the warp's first row in the tile */

    /* ldmatrix byte addresses, computed once. Every fragment row this lane points
     * at has the same low three bits (lane % 8), so the swizzled chunk of k-step kk
     * is ((2 kk) % 8 ^ x) + 8 (kk / 4) for a lane constant x: four base addresses
     * per operand, the rest immediates (rows m-tile / n-tile / k-step apart, and
     * kk / 4, are fixed byte distances). */
    constexpr int M7 = CH < 8 ? CH - 1 : 7, NA = D / 16 < 4 ? D / 16 : 4;
    uint32_t qa[NA], ka[NA], va[NA];
    {
        const int rq = wrow + (lane & 7) + ((lane >> 3) & 1) * 8, xq = (lane >> 4) ^ (rq & M7);
        const int rk = (lane >> 4) * 8 + (lane & 7), xk = ((lane >> 3) & 1) ^ (rk & M7);
        const int rv = (lane & 7) + ((lane >> 3) & 1) * 8, xv = (lane >> 4) ^ (rv & M7);
#pragma unroll
        for (int i = 0; i < NA; i++) {
            qa[i] = smem_addr(sQ + rq * D + (((2 * i) ^ xq) << 3));
            ka[i] = smem_addr(sK + rk * D + (((2 * i) ^ xk) << 3));
            va[i] = smem_addr(sV + rv * D + (((2 * i) ^ xv) << 3));
        }
    }
    constexpr uint32_t RB = D * sizeof(T); /* bytes per tile row */

    /* One barrier per block: after it every warp is done with the other stage
     * (the previous block), so the next block's copy into it starts then, and it
     * has this block's products to arrive in. */
    for (int kbk = 0; kbk < nblocks; kbk++) {
        const int st = kbk & 1;
        cp_wait<0>();
        __syncthreads();
        if (kbk + 1 < nblocks) load_kv(st ^ 1, (kbk + 1) * BK);
        cp_commit();
        const uint32_t so = st * BK * RB; /* the stage's byte offset in sK and sV */
        float s[MT][BK / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int t = 0; t < BK / 8; t++) s[mt][t][0] = s[mt][t][1] = s[mt][t][2] = s[mt][t][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qf[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) ldsm_x4_at(qf[mt], qa[kk % 4] + mt * 16 * RB + (kk / 4) * 128);
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt += 2) {
                uint32_t kf[4];
                ldsm_x4_at(kf, ka[kk % 4] + so + nt * 8 * RB + (kk / 4) * 128);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(s[mt][nt], qf[mt], kf[0], kf[1]);
                    mma16816<T>(s[mt][nt + 1], qf[mt], kf[2], kf[3]);
                }
            }
        }
        const int qrow0 = i0 + wrow + (lane >> 2);
        /* Whether the block needs no mask: from sFull, which load_kv set, or (a
         * range in the kernels without z) again from the block's position. The
         * choice is ptxas' register allocation: with the flag everywhere swa's
         * forward spilled more and lost 2% at 65536, with the position in the z
         * kernels dma's spilled more and lost 5% (measured, H200) */
        const bool full = !HASZ && contig ? range_block_full(kp, kstart, kbk * BK, BK, nkeys, i0, nrows)
                                          : sFull[st * 2] && sFull[st * 2 + 1];
        if (full)
            fwd_softmax<false, HASZ, T, D>(s, m, l, oacc, a.scale_log2, sIdx, sRlo, sRhi, sZ, st, qrow0, lane);
        else
            fwd_softmax<true, HASZ, T, D>(s, m, l, oacc, a.scale_log2, sIdx, sRlo, sRhi, sZ, st, qrow0, lane);
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pf[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) acc_to_a<T, BK / 8>(s[mt], kk, pf[mt]);
            uint32_t pl[MT][4]; /* RES: P's low half */
            if constexpr (RES) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++) acc_to_a_lo<T, BK / 8>(s[mt], kk, pf[mt], pl[mt]);
            }
#pragma unroll
            for (int dt = 0; dt < D / 8; dt += 2) {
                uint32_t vf[4];
                ldsm_x4_t_at(vf, va[(dt / 2) % 4] + so + kk * 16 * RB + (dt / 8) * 128);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(oacc[mt][dt], pf[mt], vf[0], vf[1]);
                    mma16816<T>(oacc[mt][dt + 1], pf[mt], vf[2], vf[3]);
                    if constexpr (RES) {
                        mma16816<T>(oacc[mt][dt], pl[mt], vf[0], vf[1]);
                        mma16816<T>(oacc[mt][dt + 1], pl[mt], vf[2], vf[3]);
                    }
                }
            }
        }
    }
    cp_wait<0>();

    /* finish: full row sums, normalise, write O (RES: and its rounding residual)
     * and the natural-log lse */
    T *ob = static_cast<T *>(a.o) + b * a.osb + h * a.osh;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[mt][r];
            lr += __shfl_xor_sync(0xffffffff, lr, 1);
            lr += __shfl_xor_sync(0xffffffff, lr, 2);
            int q = i0 + wrow + mt * 16 + (lane >> 2) + 8 * r;
            if (q >= a.Nq) continue;
            float inv = lr > 0.f ? 1.f / lr : 0.f;
            T *orow = ob + (long long)q * a.oss;
            __nv_bfloat16 *rrow = RES ? static_cast<__nv_bfloat16 *>(a.ores) + (((size_t)b * a.Nq + q) * a.Hq + h) * D
                                      : nullptr;
#pragma unroll
            for (int t = 0; t < D / 8; t++) {
                int col = t * 8 + (lane & 3) * 2;
                const float o0 = oacc[mt][t][2 * r] * inv, o1 = oacc[mt][t][2 * r + 1] * inv;
                const uint32_t ov = pack2<T>::from(o0, o1);
                *reinterpret_cast<uint32_t *>(orow + col) = ov;
                if constexpr (RES) {
                    const float2 rd = pack2<T>::to(ov);
                    *reinterpret_cast<uint32_t *>(rrow + col) = pack2<__nv_bfloat16>::from(o0 - rd.x, o1 - rd.y);
                }
            }
            if ((lane & 3) == 0)
                a.lse[((size_t)b * a.Hq + h) * a.Nq + q] =
                    lr > 0.f ? (m[mt][r] + log2f(lr)) * 0.6931471805599453f : -INFINITY;
        }
}

template <typename T, int D> attn_status launch_fwd(const FwdArgs &a, int ntiles, int Hq, int B) {
    size_t smem = (size_t)(BQ * D + 4 * BK * D) * sizeof(T) + BQ * 8 + 8 * BK * sizeof(int) + 4 * sizeof(int);
    if (a.ores && !a.z) return ATTN_ERR_INVALID; /* the residual is dma's (HASZ kernels) */
    auto kern = a.ores ? attn_fwd_kernel<T, D, true, true>
                : a.z  ? attn_fwd_kernel<T, D, true, false>
                       : attn_fwd_kernel<T, D, false, false>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(ntiles, Hq, B);
    kern<<<grid, NTHREADS, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

} // namespace

extern "C" int cuda_attn_supports(const attn_params *p, attn_variant v, int backward, char *why, size_t why_len) {
    if (attn_params_check(p, v, backward, why, why_len) != ATTN_OK) return 0;
    auto no = [&](const char *msg) {
        if (why && why_len) snprintf(why, why_len, "%s", msg);
        return 0;
    };
    static int ndev = -1;
    if (ndev < 0 && cudaGetDeviceCount(&ndev) != cudaSuccess) {
        cudaGetLastError();
        ndev = 0;
    }
    if (ndev < 1) return no("no usable CUDA device on this machine");
    if (p->dtype != ATTN_DTYPE_BF16 && p->dtype != ATTN_DTYPE_F16 && p->dtype != ATTN_DTYPE_F32)
        return no("the cuda kernels take bf16, f16 or f32");
    if (p->D != 16 && p->D != 32 && p->D != 64 && p->D != 128)
        return no("the cuda kernels support head dims 16, 32, 64 and 128");
    const attn_stride *sts[] = {&p->q_st, &p->k_st, &p->v_st, &p->o_st, &p->do_st, &p->dq_st, &p->dk_st, &p->dv_st};
    const void *ptrs[] = {p->q, p->k, p->v, p->o, p->dout, p->dq, p->dk, p->dv};
    /* fp32 tensors are copied into contiguous bf16 ones (cuda_f32.cu): any strides */
    for (int t = 0; t < (p->dtype == ATTN_DTYPE_F32 ? 0 : backward ? 8 : 4); t++) {
        const attn_stride *s = sts[t];
        if (s->b % 8 || s->s % 8 || s->h % 8) return no("the cuda kernels need strides that are multiples of 8 elements");
        if ((uintptr_t)ptrs[t] % 16) return no("the cuda kernels need 16-byte aligned tensors");
    }
    return 1;
}

extern "C" attn_status cuda_attn_forward(const attn_params *p, const cuda_attn_spec *s) {
    if (s->kpos_mul > 0 && s->window > 0) return ATTN_ERR_INVALID; /* a key-position map takes no window */
    dm::FwdArgs a;
    a.q = p->q, a.k = p->k, a.v = p->v, a.o = p->o;
    a.lse = static_cast<float *>(p->lse);
    a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
    a.ksb = p->k_st.b, a.kss = p->k_st.s, a.ksh = p->k_st.h;
    a.vsb = p->v_st.b, a.vss = p->v_st.s, a.vsh = p->v_st.h;
    a.osb = p->o_st.b, a.oss = p->o_st.s, a.osh = p->o_st.h;
    a.B = p->B, a.Nq = p->Nq, a.Nk = p->Nk, a.Hq = p->Hq, a.Hkv = p->Hkv, a.G = p->Hq / p->Hkv;
    a.scale_log2 = (float)(p->scale * 1.4426950408889634);
    a.causal = p->causal;
    a.window = s->window;
    a.kmul = s->kpos_mul > 0 ? s->kpos_mul : 1;
    a.kadd = s->kpos_mul > 0 ? s->kpos_add : 0;
    a.off = s->kpos_mul > 0 ? s->qoff : (long long)p->Nk - p->Nq;
    a.z = s->z;
    a.list = s->list, a.list_len = s->list_len, a.tkey = s->tkey;
    a.list_rows = s->list_rows, a.list_zl = s->list_zl;
    a.cap = s->cap;
    a.ntiles = cuda_attn_ntiles(p);
    a.ores = s->ores;
    a.heads_first = dm_tile_heads_first(false);
    if (dm::fwd_ws_for(a.ores != nullptr, p->D, p->dtype)) {
        attn_status st = dm::launch_fwd_ws(a, p->D, p->dtype);
        if (st != ATTN_ERR_UNSUPPORTED) return st;
    }
    if (dm::fwd_wgmma_enabled()) {
        attn_status st = dm::launch_fwd_wgmma(a, p->D, p->dtype);
        if (st != ATTN_ERR_UNSUPPORTED) return st;
    }
    const bool bf = p->dtype == ATTN_DTYPE_BF16;
    switch (p->D) {
    case 16: return bf ? launch_fwd<__nv_bfloat16, 16>(a, a.ntiles, p->Hq, p->B) : launch_fwd<__half, 16>(a, a.ntiles, p->Hq, p->B);
    case 32: return bf ? launch_fwd<__nv_bfloat16, 32>(a, a.ntiles, p->Hq, p->B) : launch_fwd<__half, 32>(a, a.ntiles, p->Hq, p->B);
    case 64: return bf ? launch_fwd<__nv_bfloat16, 64>(a, a.ntiles, p->Hq, p->B) : launch_fwd<__half, 64>(a, a.ntiles, p->Hq, p->B);
    default: return bf ? launch_fwd<__nv_bfloat16, 128>(a, a.ntiles, p->Hq, p->B) : launch_fwd<__half, 128>(a, a.ntiles, p->Hq, p->B);
    }
}
