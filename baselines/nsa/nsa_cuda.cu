/*
 * nsa_cuda.cu: Native Sparse Attention on the GPU, forward (bf16/f16 in, fp32
 * accumulate; fp32 inputs through cuda_f32.cu). The three branches:
 *
 * 1. nsa_compress_kernel: K~, V~ (B, nb, Hkv, D) in the input dtype, one CTA per
 *    (block, kv head, batch): the block's l rows (plus the position embedding) in
 *    shared memory, thread e computing column e of flatten(.) W_c (linear mode), or
 *    the block mean. By default the linear mode runs as a GEMM on the tensor cores
 *    instead (nsa_compress_tc_kernel, 64 blocks per CTA; DMABENCH_NSA_CMP_TC=0 keeps
 *    the fp32 kernel).
 * 2. compressed branch: the attention engine (cuda_attn.cu) over K~, V~, with block
 *    c at key position c d + l - 1 (it is visible to query i iff c d + l - 1 <= i');
 *    lse plane 0.
 * 3. nsa_select_kernel, one warp per (batch, kv head, query), a lane per block:
 *    p_cmp[c] = exp(s q.K~_c - lse_cmp) for the visible blocks, each K~ row read
 *    once for the group's heads and summed over them, spread over the selection blocks by overlap / d into shared memory; block
 *    0, the query's block and the one before are forced; the rest by repeated warp
 *    argmax over (score, larger j); ids written ascending, -1 padded.
 *    By default nsa_select_tc_kernel instead (DMABENCH_NSA_TC=0 keeps the kernel
 *    above): the same scores from S = q K~^T on the tensor cores for a tile of queries x the group's heads,
 *    spread over the selection blocks as a second product (p times the overlaps) where the
 *    settings allow, accumulated in shared memory, and the same pick (nsa_pick_blocks).
 * 4. the selected branch (nsa_cuda_slc.cu: nsa_slc_forward): each query's selected
 *    blocks, for the group's heads, which share the selection; lse plane 1.
 * 5. window branch: the engine as swa; lse plane 2.
 * 6. nsa_combine_kernel: o = g_cmp O_cmp + g_slc O_slc + g_win O_win.
 * The CUDA-core versions of steps 3 and 4 stay as the simpler reading of the
 * same sums (and what DMABENCH_NSA_TC=0 runs); docs/perf-notes.md has the timings.
 * nsa_cuda.cuh has what this file and nsa_cuda_slc.cu share.
 *
 * Saved area (attn_params.saved, nsa_cuda_saved_bytes): given one, the forward
 * keeps K~, V~, O_cmp, O_slc, O_win, the selection and the selected branch's two
 * counts there (O_win then apart from o), and the backward reads them with the
 * caller's lse planes.
 *
 * Backward: without a saved area, the branches again (into scratch: o and lse are
 * the caller's inputs); dg = dout . O_branch, then each branch's backward with dout times its gate: the
 * window and the compressed branch through the engine's backward, the selected one
 * by nsa_slc_backward (nsa_cuda_slc.cu), and dK~,
 * dV~ through the compression into dk, dv and (linear) dw_c, dp (8 blocks per CTA,
 * dpos from the sum of dK~, dW as a GEMM on the tensor cores;
 * DMABENCH_NSA_CMP_BLK=0: one block per CTA). Gradients are summed in fp32 and
 * written once.
 */
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_common.cuh"
#include "cuda_mma.cuh"
#include "cuda_rt.h"
#include "nsa.h"
#include "nsa_cuda.cuh"

namespace {
using namespace dm;
using namespace nsa_gpu;



/* K~ or V~: one CTA of D threads per (block c, kv head h, batch b). */
template <typename T>
__global__ void nsa_compress_kernel(const T *x, long long xsb, long long xss, long long xsh, int Nk, int Hkv, int D,
                                    int l, int d, int nb, const float *w, const float *pos, T *out) {
    extern __shared__ float sx[]; /* [l][D] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, e = threadIdx.x;
    for (int t = 0; t < l; t++) {
        float v = to_f32<T>(x[b * xsb + (long long)(c * d + t) * xss + h * xsh + e]);
        if (w) v += pos[((size_t)h * l + t) * D + e];
        sx[t * D + e] = v;
    }
    __syncthreads();
    float acc = 0.f;
    if (w) {
        const float *wh = w + (size_t)h * l * D * D; /* (l*D, D) */
        for (int r = 0; r < l * D; r++) acc += sx[r] * wh[(size_t)r * D + e];
    } else {
        for (int t = 0; t < l; t++) acc += sx[t * D + e];
        acc /= (float)l;
    }
    out[(((size_t)b * nb + c) * Hkv + h) * D + e] = from_f32<T>(acc);
}

/* Linear compression, CB consecutive blocks per CTA (DMABENCH_NSA_CMP_BLK=1; not
 * the default forward, see nsa_cmp_blk_fwd): the kernel above reads the head's whole W
 * (l D x D floats, 2 MB at l 32, D 128) once per block, 128 GB of L2 traffic for
 * K~ and V~ at N = 65536; here once per CB blocks. The rows the CTA's blocks cover,
 * (CB - 1) d + l of them, sit in shared memory; thread e keeps CB sums, and the
 * position term, the same for every block, as one more:
 * out[c] = sum_t (x[c d + t] + pos[t]) W_t = sum_t x[c d + t] W_t + sum_t pos[t] W_t. */
constexpr int NSA_CB = 8;
template <typename T>
__global__ void nsa_compress_blk_kernel(const T *x, long long xsb, long long xss, long long xsh, int Nk, int Hkv, int D,
                                        int l, int d, int nb, const float *w, const float *pos, T *out) {
    extern __shared__ float sxb[]; /* [(NSA_CB - 1) d + l][D] */
    const int c0 = blockIdx.x * NSA_CB, h = blockIdx.y, b = blockIdx.z, e = threadIdx.x;
    const int R = (NSA_CB - 1) * d + l;
    const long long r0 = (long long)c0 * d;
    for (int r = 0; r < R; r++) {
        const long long row = r0 + r;
        sxb[r * D + e] = row < Nk ? to_f32<T>(x[b * xsb + row * xss + h * xsh + e]) : 0.f;
    }
    __syncthreads();
    float acc[NSA_CB], bias = 0.f;
#pragma unroll
    for (int cc = 0; cc < NSA_CB; cc++) acc[cc] = 0.f;
    const float *wh = w + (size_t)h * l * D * D; /* (l*D, D) */
    const float *ph = pos + (size_t)h * l * D;
    for (int t = 0; t < l; t++)
        for (int e2 = 0; e2 < D; e2++) {
            const float wv = wh[(size_t)(t * D + e2) * D + e];
            bias += ph[t * D + e2] * wv;
#pragma unroll
            for (int cc = 0; cc < NSA_CB; cc++) acc[cc] += sxb[(cc * d + t) * D + e2] * wv;
        }
#pragma unroll
    for (int cc = 0; cc < NSA_CB; cc++)
        if (c0 + cc < nb) out[(((size_t)b * nb + c0 + cc) * Hkv + h) * D + e] = from_f32<T>(acc[cc] + bias);
}

/* Linear compression on the tensor cores (the default when D is 16, 32, 64 or 128
 * and k, v are 16-byte aligned with strides of whole 8-element pieces;
 * DMABENCH_NSA_CMP_TC=0 runs the kernels above). Per kv head and batch it is one
 * GEMM, out = X W + bias, X (nb x l D) with row c the l rows of block c, read from
 * x in place (k-chunk (t, e0) of row c is x[c d + t, e0 .. e0 + 15]), and bias the
 * position term sum_r pos[r] W[r], the same for every block. W is fp32: it goes
 * through as two halves, hi = T(W) and lo = T(W - hi), both multiplied in (mma
 * m16n8k16, fp32 accumulation), so with X exact in T the products keep about 16
 * bits of W, close to the fp32 kernels above, whose sums are rounded to T at the
 * end anyway.
 * nsa_cmp_w_split_kernel writes hi and lo in the order the GEMM reads them (per
 * k-chunk of 16 rows, per column, the chunk's 16 values) and the bias; then
 * nsa_compress_tc_kernel: a CTA of 4 warps takes 64 blocks (16 rows per warp) by
 * DN columns (D split in four at 128, for more CTAs: 96 at the 131M model's
 * training shape with two), and streams W's halves and X through shared memory
 * with cp.async in stages of 32 k (two of W's 16-row chunks; 16 at D 16), 3 to 5
 * deep, one barrier per stage; fragments by ldmatrix. A stage of one 16-row chunk
 * with 32-bit fragment loads spent 15 instructions per mma on loads and addresses
 * (docs/perf-notes.md n38); five stages of those, because a chunk's 16 mma per warp
 * take less than the L2's latency (n31). */
constexpr int CTC_ROWS = 64, CTC_ST = 5; /* blocks per CTA; stages at 16 k (D 16) */

/* One CTA of D threads per (t, kv head): W's rows t D .. t D + D - 1, thread n
 * its column n, 16 rows (one k-chunk) at a time. bias must be zero before. */
template <typename T>
__global__ void nsa_cmp_w_split_kernel(const float *w, const float *pos, int l, int D, T *whi, T *wlo, float *bias) {
    const int t = blockIdx.x, h = blockIdx.y, n = threadIdx.x;
    const int Q = l * D / 16;
    const float *wh = w + (size_t)h * l * D * D, *ph = pos + (size_t)h * l * D;
    float bs = 0.f;
    for (int q = t * D / 16; q < (t + 1) * D / 16; q++) {
        uint32_t hi[8], lo[8];
#pragma unroll
        for (int kk = 0; kk < 16; kk += 2) {
            const float v0 = wh[(size_t)(q * 16 + kk) * D + n], v1 = wh[(size_t)(q * 16 + kk + 1) * D + n];
            bs += ph[q * 16 + kk] * v0 + ph[q * 16 + kk + 1] * v1;
            const float h0 = to_f32<T>(from_f32<T>(v0)), h1 = to_f32<T>(from_f32<T>(v1));
            hi[kk / 2] = pack2<T>::from(h0, h1);
            lo[kk / 2] = pack2<T>::from(v0 - h0, v1 - h1);
        }
        const size_t o = (((size_t)h * Q + q) * D + n) * 16;
        uint4 *dh = reinterpret_cast<uint4 *>(whi + o), *dl = reinterpret_cast<uint4 *>(wlo + o);
        dh[0] = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        dh[1] = make_uint4(hi[4], hi[5], hi[6], hi[7]);
        dl[0] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
        dl[1] = make_uint4(lo[4], lo[5], lo[6], lo[7]);
    }
    atomicAdd(&bias[(size_t)h * D + n], bs);
}

/* Two n-tiles (c0, c1) of a product with W in bf16/f16 halves: B's hi and lo
 * fragments by ldmatrix.x4 from bh and bl (rows = columns n of the pair of n-tiles,
 * 16 k), then c += a hi + a lo, and with LO also al hi (the A operand's lo half;
 * lo lo is below the sums' precision). The compression's forward and its backward
 * into the rows. */
template <typename T, bool LO>
__device__ __forceinline__ void mma_w_halves(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                             const uint32_t (&al)[4], const T *bh, const T *bl) {
    uint32_t h[4], o[4];
    ldsm_x4(h, bh);
    ldsm_x4(o, bl);
    mma16816<T>(c0, a, h[0], h[1]);
    mma16816<T>(c0, a, o[0], o[1]);
    if (LO) mma16816<T>(c0, al, h[0], h[1]);
    mma16816<T>(c1, a, h[2], h[3]);
    mma16816<T>(c1, a, o[2], o[3]);
    if (LO) mma16816<T>(c1, al, h[2], h[3]);
}

/* A lane's ldmatrix rows and k offsets in the products with W (mma_w_halves), for
 * warp w of a CTA of 16-row warps: A rows 16 w + (lane & 15) at k (lane >> 4) 8;
 * B rows (columns n) (lane >> 4) 8 + (lane & 7) of each pair of n-tiles at k
 * ((lane >> 3) & 1) 8. */
struct WLanes {
    int arow, ak, bn, bk;
    __device__ __forceinline__ WLanes(int warp, int lane)
        : arow(warp * 16 + (lane & 15)), ak((lane >> 4) * 8), bn(((lane >> 4) << 3) + (lane & 7)),
          bk(((lane >> 3) & 1) * 8) {}
};

template <typename T, int D, int DN>
__global__ void __launch_bounds__(128) nsa_compress_tc_kernel(const T *x, long long xsb, long long xss, long long xsh,
                                                              int Hkv, int l, int d, int nb, const T *whi,
                                                              const T *wlo, const float *bias, T *out, int ks,
                                                              float *part) {
    /* KC of k per stage (one offset t: D >= KC), KS mma k-steps; rows padded to KP
     * (80 or 48 bytes: ldmatrix's eight rows fall in distinct banks); NST stages
     * within the 48 KB of static shared memory */
    constexpr int KC = D >= 32 ? 32 : 16, KS = KC / 16, KP = KC + 8;
    constexpr int NST = KC == 32 ? (DN > 32 ? 3 : 4) : CTC_ST;
    __shared__ __align__(16) T shi[NST][DN][KP];
    __shared__ __align__(16) T slo[NST][DN][KP];
    __shared__ __align__(16) T sx[NST][CTC_ROWS][KP];
    constexpr int NP = D / DN; /* column parts */
    const int kq = blockIdx.x % ks, tile = blockIdx.x / ks; /* k part, (rows, columns) tile */
    const int c0 = (tile / NP) * CTC_ROWS, n0 = (tile % NP) * DN, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tq = lane % 4;
    const int Q16 = l * (D / 16), Qs = l * (D / KC); /* 16-chunks of W's layout; stages of KC */
    const int qper = (Qs + ks - 1) / ks, qa = kq * qper, nq = max(0, min(Qs, qa + qper) - qa);
    const T *xh = x + b * xsb + h * xsh;
    const T *hh = whi + ((size_t)h * Q16 * D + n0) * 16, *lh = wlo + ((size_t)h * Q16 * D + n0) * 16;
    auto load = [&](int qi, int st) {
        const int q = qa + qi, t = q * KC / D, e0 = q * KC % D;
        for (int i = tid; i < DN * KS * 2; i += 128) { /* W: per column, KS chunks of 32 bytes, each half */
            const int n = i / (KS * 2), s = (i / 2) % KS, pt = (i % 2) * 8;
            const size_t o = ((size_t)(q * KS + s) * D + n) * 16 + pt;
            cp16(&shi[st][n][s * 16 + pt], hh + o, true);
            cp16(&slo[st][n][s * 16 + pt], lh + o, true);
        }
        for (int i = tid; i < CTC_ROWS * (KC / 8); i += 128) { /* X: 64 rows of KC */
            const int row = i / (KC / 8), pt = (i % (KC / 8)) * 8, c = c0 + row;
            const bool ok = c < nb;
            cp16(&sx[st][row][pt], ok ? xh + (long long)(c * d + t) * xss + e0 + pt : x, ok);
        }
    };
    float acc[DN / 8][4];
#pragma unroll
    for (int j = 0; j < DN / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
    for (int st = 0; st < NST - 1; st++) {
        if (st < nq) load(st, st);
        cp_commit();
    }
    const int ra = warp * 16 + g; /* this lane's accumulator rows in the tile: ra, ra + 8 */
    const WLanes wln(warp, lane);
    const int arow = wln.arow, ak = wln.ak, bn = wln.bn, bk = wln.bk;
    for (int q = 0; q < nq; q++) {
        cp_wait<NST - 2>();
        __syncthreads(); /* stage q is in; every warp is done with stage q - 1's buffers */
        if (q + NST - 1 < nq) load(q + NST - 1, (q + NST - 1) % NST);
        cp_commit();
        const int st = q % NST;
#pragma unroll
        for (int s = 0; s < KS; s++) {
            uint32_t a[4];
            ldsm_x4(a, &sx[st][arow][s * 16 + ak]);
#pragma unroll
            for (int j = 0; j < DN / 8; j += 2)
                mma_w_halves<T, false>(acc[j], acc[j + 1], a, a, &shi[st][j * 8 + bn][s * 16 + bk],
                                       &slo[st][j * 8 + bn][s * 16 + bk]);
        }
    }
    cp_wait<0>();
    const int rowa = c0 + ra, rowb = rowa + 8;
    if (ks > 1) { /* this k part's sums, for nsa_compress_sum_kernel */
        float *pp = part + (size_t)kq * gridDim.z * nb * Hkv * D;
#pragma unroll
        for (int j = 0; j < DN / 8; j++) {
            const int col = n0 + j * 8 + 2 * tq;
            if (rowa < nb)
                *reinterpret_cast<float2 *>(pp + (((size_t)b * nb + rowa) * Hkv + h) * D + col) =
                    make_float2(acc[j][0], acc[j][1]);
            if (rowb < nb)
                *reinterpret_cast<float2 *>(pp + (((size_t)b * nb + rowb) * Hkv + h) * D + col) =
                    make_float2(acc[j][2], acc[j][3]);
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < DN / 8; j++) {
        const int col = n0 + j * 8 + 2 * tq;
        const float b0 = bias[(size_t)h * D + col], b1 = bias[(size_t)h * D + col + 1];
        if (rowa < nb)
            *reinterpret_cast<uint32_t *>(out + (((size_t)b * nb + rowa) * Hkv + h) * D + col) =
                pack2<T>::from(acc[j][0] + b0, acc[j][1] + b1);
        if (rowb < nb)
            *reinterpret_cast<uint32_t *>(out + (((size_t)b * nb + rowb) * Hkv + h) * D + col) =
                pack2<T>::from(acc[j][2] + b0, acc[j][3] + b1);
    }
}

/* out = T(the ks parts' sums, added in order, + bias): n = B nb Hkv D elements, 4
 * a thread (16-byte loads; D is a multiple of 16). */
template <typename T>
__global__ void nsa_compress_sum_kernel(const float *part, int ks, size_t n, int Hkv, int D, const float *bias, T *out) {
    const size_t n4 = n / 4, hd = (size_t)Hkv * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int k = 0; k < ks; k++) {
            const float4 p = reinterpret_cast<const float4 *>(part + (size_t)k * n)[i];
            v.x += p.x, v.y += p.y, v.z += p.z, v.w += p.w;
        }
        const float4 bs = *reinterpret_cast<const float4 *>(bias + (4 * i) % hd);
        uint2 o;
        o.x = pack2<T>::from(v.x + bs.x, v.y + bs.y);
        o.y = pack2<T>::from(v.z + bs.z, v.w + bs.w);
        reinterpret_cast<uint2 *>(out)[i] = o;
    }
}

/* The linear compression's forward at D 64 and 128 in wide tiles (the default
 * there; DMABENCH_NSA_CMP_WIDE=0 runs nsa_compress_tc_kernel): the same GEMM, out =
 * X (W hi + W lo) + bias, with W in nsa_cmp_w_split_kernel's layout, but a CTA of 8
 * warps takes 128 blocks by all D columns, warp w rows 32 (w % 4) .. + 31 by columns
 * (w / 4) D / 2 .. + D / 2 - 1. Each of W's fragments then serves two m16 tiles, and
 * W is read once per 128 blocks and X once: nsa_compress_tc_kernel reads W once per
 * 64 blocks and X once per quarter of D, about 200 MB from the L2 a launch at the
 * 131M model's shape (B 2, 3 kv heads, N 8192) against about 75 MB here. Stages of
 * CWD_KC k (two of W's 16-row chunks) through cp.async, CWD_ST deep, one barrier
 * each; the k dimension in ks parts where the tiles alone leave SMs idle (their
 * sums added in order by nsa_compress_sum_kernel). Products per 16 k in the order
 * of nsa_compress_tc_kernel's: hi, then lo. */
constexpr int CWD_ROWS = 128, CWD_KC = 32, CWD_KP = CWD_KC + 8, CWD_ST = 3;
template <int D> constexpr size_t cwd_smem_bytes() { return (size_t)CWD_ST * (2 * D + CWD_ROWS) * CWD_KP * 2; }

template <typename T, int D>
__global__ void __launch_bounds__(256, 2) nsa_compress_wide_kernel(const T *x, long long xsb, long long xss,
                                                                   long long xsh, int Hkv, int l, int d, int nb,
                                                                   const T *whi, const T *wlo, const float *bias,
                                                                   T *out, int ks, float *part) {
    static_assert(D == 64 || D == 128, "nsa_compress_wide_kernel: D 64 or 128");
    constexpr int KS = CWD_KC / 16, KP = CWD_KP, NT = D / 16; /* mma k-steps a stage; a warp's n8 tiles */
    extern __shared__ __align__(16) unsigned char cwd_smem[];
    T(*shi)[D][KP] = reinterpret_cast<T(*)[D][KP]>(cwd_smem); /* [CWD_ST][D][KP], W's columns as rows */
    T(*slo)[D][KP] = shi + CWD_ST;
    T(*sx)[CWD_ROWS][KP] = reinterpret_cast<T(*)[CWD_ROWS][KP]>(slo + CWD_ST); /* [CWD_ST][CWD_ROWS][KP] */
    const int kq = blockIdx.x % ks, c0 = (blockIdx.x / ks) * CWD_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int wr = (warp & 3) * 32, wc = (warp >> 2) * (D / 2);
    const int Q16 = l * (D / 16), Qs = l * (D / CWD_KC); /* 16-chunks of W's layout; stages */
    const int qper = (Qs + ks - 1) / ks, qa = kq * qper, nq = max(0, min(Qs, qa + qper) - qa);
    const T *xh = x + b * xsb + h * xsh;
    const T *hh = whi + (size_t)h * Q16 * D * 16, *lh = wlo + (size_t)h * Q16 * D * 16;
    auto load = [&](int qi, int st) {
        const int q = qa + qi, t = q * CWD_KC / D, e0 = q * CWD_KC % D;
        for (int i = tid; i < D * KS * 2; i += 256) { /* W: per column, KS chunks of 32 bytes, each half */
            const int n = i / (KS * 2), s = (i / 2) % KS, pt = (i % 2) * 8;
            const size_t o = ((size_t)(q * KS + s) * D + n) * 16 + pt;
            cp16(&shi[st][n][s * 16 + pt], hh + o, true);
            cp16(&slo[st][n][s * 16 + pt], lh + o, true);
        }
        for (int i = tid; i < CWD_ROWS * (CWD_KC / 8); i += 256) { /* X: 128 rows of CWD_KC */
            const int row = i / (CWD_KC / 8), pt = (i % (CWD_KC / 8)) * 8, c = c0 + row;
            const bool ok = c < nb;
            cp16(&sx[st][row][pt], ok ? xh + (long long)(c * d + t) * xss + e0 + pt : x, ok);
        }
    };
    float acc[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.f;
#pragma unroll
    for (int st = 0; st < CWD_ST - 1; st++) {
        if (st < nq) load(st, st);
        cp_commit();
    }
    /* ldmatrix lanes: A rows wr + (lane & 15) (+ 16) at k (lane >> 4) 8; B rows (columns
     * n) ((lane >> 4) << 3) + (lane & 7) of each pair of n8 tiles at k ((lane >> 3) & 1) 8 */
    const int arow = wr + (lane & 15), ak = (lane >> 4) * 8;
    const int bn = wc + ((lane >> 4) << 3) + (lane & 7), bk = ((lane >> 3) & 1) * 8;
    for (int q = 0; q < nq; q++) {
        cp_wait<CWD_ST - 2>();
        __syncthreads(); /* stage q is in; every warp is done with stage q - 1's buffers */
        if (q + CWD_ST - 1 < nq) load(q + CWD_ST - 1, (q + CWD_ST - 1) % CWD_ST);
        cp_commit();
        const int st = q % CWD_ST;
#pragma unroll
        for (int s = 0; s < KS; s++) {
            uint32_t a0[4], a1[4];
            ldsm_x4(a0, &sx[st][arow][s * 16 + ak]);
            ldsm_x4(a1, &sx[st][arow + 16][s * 16 + ak]);
#pragma unroll
            for (int j = 0; j < NT; j += 2) {
                uint32_t hv[4], lv[4];
                ldsm_x4(hv, &shi[st][bn + j * 8][s * 16 + bk]);
                ldsm_x4(lv, &slo[st][bn + j * 8][s * 16 + bk]);
                mma16816<T>(acc[0][j], a0, hv[0], hv[1]);
                mma16816<T>(acc[0][j], a0, lv[0], lv[1]);
                mma16816<T>(acc[0][j + 1], a0, hv[2], hv[3]);
                mma16816<T>(acc[0][j + 1], a0, lv[2], lv[3]);
                mma16816<T>(acc[1][j], a1, hv[0], hv[1]);
                mma16816<T>(acc[1][j], a1, lv[0], lv[1]);
                mma16816<T>(acc[1][j + 1], a1, hv[2], hv[3]);
                mma16816<T>(acc[1][j + 1], a1, lv[2], lv[3]);
            }
        }
    }
    cp_wait<0>();
    float *pp = ks > 1 ? part + (size_t)kq * gridDim.z * nb * Hkv * D : nullptr; /* this k part's sums */
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int row = c0 + wr + mt * 16 + g + 8 * hf;
            if (row >= nb) continue;
            const size_t o = (((size_t)b * nb + row) * Hkv + h) * D;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const int col = wc + j * 8 + 2 * tq;
                const float v0 = acc[mt][j][2 * hf], v1 = acc[mt][j][2 * hf + 1];
                if (pp)
                    *reinterpret_cast<float2 *>(pp + o + col) = make_float2(v0, v1);
                else
                    *reinterpret_cast<uint32_t *>(out + o + col) =
                        pack2<T>::from(v0 + bias[(size_t)h * D + col], v1 + bias[(size_t)h * D + col + 1]);
            }
        }
}

struct SelArgs {
    const void *q;
    long long qsb, qss, qsh;
    const void *kc; /* (B, nb, Hkv, D) */
    const float *lse0; /* (B, Hq, Nq) natural */
    int *sel;          /* (B, Hkv, Nq, nsel) */
    int B, Nq, Nk, Hq, Hkv, G, D, nb, ns, nsel, l, d, ls, n;
    int pick_top; /* nsa_pick_blocks' single-scan version (default; 0: DMABENCH_NSA_PICK=argmax) */
    /* nsa_select_tc_kernel's block scores as a product (sel_mma_cols > 0; see
     * nsa_sel_mma_cols): the step's selection blocks, and how far they move per step */
    int sel_mma_cols, sel_mma_step;
    /* nsa_select_tc_kernel's shared-memory layout (select_tc_tile): K~ stages (2, or
     * 1 where that lets two CTAs share an SM), sS's row stride, the floats before
     * the scores (sP or sS), and whether the pick's flags reuse the K~ stages */
    int sel_stages, sel_ss, sel_p_floats, sel_chosen_in_k;
    float scale;
};

/* (s, j) ranks above (s2, j2): the larger score, then the larger block. */
__device__ __forceinline__ bool nsa_better(float s, int j, float s2, int j2) {
    return j >= 0 && (j2 < 0 || s > s2 || (s == s2 && j > j2));
}

/* Inserts (s, j) into the lane's best four, kept sorted in registers (t0 best). */
__device__ __forceinline__ void nsa_top4_insert(float s, int j, float (&ts)[4], int (&tj)[4]) {
    if (s != s || !nsa_better(s, j, ts[3], tj[3])) return; /* a NaN score is never picked, as in the rounds */
    ts[3] = s, tj[3] = j;
#pragma unroll
    for (int k = 3; k > 0; k--)
        if (nsa_better(ts[k], tj[k], ts[k - 1], tj[k - 1])) {
            const float x = ts[k];
            const int y = tj[k];
            ts[k] = ts[k - 1], tj[k] = tj[k - 1];
            ts[k - 1] = x, tj[k - 1] = y;
        }
}

/* The lane's best four blocks j = lane + 32 k <= jmax not yet chosen; *more: the
 * lane has candidates beyond them. */
__device__ __forceinline__ void nsa_top4_scan(const float *sc, const unsigned char *chosen, int jmax, int lane,
                                              float (&ts)[4], int (&tj)[4], bool *more) {
    int cnt = 0;
#pragma unroll
    for (int k = 0; k < 4; k++) ts[k] = -1.f, tj[k] = -1;
    for (int j = lane; j <= jmax; j += 32)
        if (!chosen[j]) {
            nsa_top4_insert(sc[j], j, ts, tj);
            cnt++;
        }
    *more = cnt > 4;
}

/* The warp's best (s, j) by nsa_better over its lanes' candidates (j < 0: none):
 * its j, or -1 where no lane has one; every lane gets it. On sm_80 and later two
 * warp reductions of 32-bit keys: the score's bits in an order that compares as
 * the floats do (-0 as +0; a lane without a candidate 0, below every score), then
 * j + 1 over the lanes that hold the best score (the larger j on a tie); before,
 * five rounds of two shuffles and a branchy compare (docs/perf-notes.md n52). */
__device__ __forceinline__ int nsa_warp_best(float s, int j) {
#if __CUDA_ARCH__ >= 800
    unsigned u = __float_as_uint(s);
    if ((u & 0x7fffffffu) == 0) u = 0;
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* >= 0x007fffff for any score but NaN */
    const unsigned k = j >= 0 ? u : 0u;
    const unsigned mk = __reduce_max_sync(0xffffffffu, k);
    const unsigned mj = __reduce_max_sync(0xffffffffu, j >= 0 && k == mk ? (unsigned)j + 1u : 0u);
    return mk ? (int)mj - 1 : -1;
#else
    for (int o = 16; o; o >>= 1) {
        const float os = __shfl_xor_sync(0xffffffff, s, o);
        const int oj = __shfl_xor_sync(0xffffffff, j, o);
        if (nsa_better(os, oj, s, j)) s = os, j = oj;
    }
    return j;
#endif
}

/* One warp picks a query's blocks from its block scores sc[0..jmax]: block 0, jmax
 * and jmax - 1 forced, then the best of the rest by (score, larger j) up to n in
 * all; the ids go to out[0..nsel) ascending, -1 padded. chosen: jmax + 1 bytes. */
__device__ __forceinline__ void nsa_pick_blocks(const float *sc, unsigned char *chosen, int jmax, int n, int nsel, int *out,
                                                int top) {
    const int lane = threadIdx.x & 31;
    for (int j = lane; j <= jmax; j += 32) chosen[j] = 0;
    __syncwarp();
    /* 0, jmax and jmax - 1, each counted once (the same in every lane) */
    const int nforced = 1 + (jmax > 0) + (jmax - 1 > 0);
    if (lane == 0) {
        chosen[0] = 1;
        chosen[jmax] = 1;
        if (jmax > 0) chosen[jmax - 1] = 1;
    }
    __syncwarp();
    if (top) {
        /* one scan: each lane keeps its best four in registers; every round the
         * warp takes the best of the lanes' heads, the winner pops its head and
         * scans again only when its four are spent and it has more. The same picks
         * as the rounds below (the same order, the same ties). */
        float ts[4];
        int tj[4];
        bool more = false;
        if (n - nforced > 0) nsa_top4_scan(sc, chosen, jmax, lane, ts, tj, &more);
        for (int r = 0; r < n - nforced; r++) {
            const int bj = nsa_warp_best(ts[0], tj[0]);
            if (bj < 0) break; /* no candidate left */
            const bool won = tj[0] == bj;
            if (won) {
                chosen[bj] = 1;
#pragma unroll
                for (int k = 0; k < 3; k++) ts[k] = ts[k + 1], tj[k] = tj[k + 1];
                ts[3] = -1.f, tj[3] = -1;
            }
            __syncwarp();
            if (won && tj[0] < 0 && more) nsa_top4_scan(sc, chosen, jmax, lane, ts, tj, &more);
        }
        __syncwarp();
    } else
    for (int r = 0; r < n - nforced; r++) {
        float bs = -1.f;
        int bj = -1;
        for (int j = lane; j <= jmax; j += 32)
            if (!chosen[j] && (sc[j] > bs || (sc[j] == bs && j > bj))) bs = sc[j], bj = j;
        bj = nsa_warp_best(bs, bj);
        if (bj < 0) break; /* no candidate left */
        if (lane == 0) chosen[bj] = 1;
        __syncwarp();
    }
    /* the chosen ids, ascending */
    int base = 0;
    for (int j0 = 0; j0 <= jmax; j0 += 32) {
        int j = j0 + lane;
        bool on = j <= jmax && chosen[j];
        unsigned bal = __ballot_sync(0xffffffff, on);
        if (on) {
            int k = base + __popc(bal & ((1u << lane) - 1));
            if (k < nsel) out[k] = j;
        }
        base += __popc(bal);
    }
    for (int k = base + lane; k < nsel; k += 32) out[k] = -1;
}

/* One warp per (b, hkv, i); scores of the ns selection blocks in shared memory. */
template <typename T>
__global__ void nsa_select_kernel(const SelArgs a) {
    extern __shared__ float smem[];
    const int wpb = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *sc = smem + (size_t)warp * (a.ns + 1);       /* scores */
    unsigned char *chosen = reinterpret_cast<unsigned char *>(smem + (size_t)wpb * (a.ns + 1)) + (size_t)warp * a.ns;
    float *sq = reinterpret_cast<float *>(reinterpret_cast<unsigned char *>(smem + (size_t)wpb * (a.ns + 1)) +
                                          (((size_t)wpb * a.ns + 15) & ~(size_t)15)) +
                (size_t)warp * a.G * a.D;
    const long long item = (long long)blockIdx.x * wpb + warp;
    if (item >= (long long)a.B * a.Hkv * a.Nq) return;
    const int i = (int)(item % a.Nq), hkv = (int)((item / a.Nq) % a.Hkv), b = (int)(item / ((long long)a.Nq * a.Hkv));
    int *out = a.sel + (((size_t)b * a.Hkv + hkv) * a.Nq + i) * a.nsel;
    const long long ip = (long long)i + a.Nk - a.Nq;
    if (ip < 0) {
        for (int k = lane; k < a.nsel; k += 32) out[k] = -1;
        return;
    }
    const int jmax = (int)(ip / a.ls);
    long long ncl = ip + 1 >= a.l ? (ip + 1 - a.l) / a.d + 1 : 0;
    const int nc = (int)min(ncl, (long long)a.nb);
    for (int j = lane; j <= jmax; j += 32) sc[j] = 0.f;
    __syncwarp();
    const T *Kc = static_cast<const T *>(a.kc) + (size_t)b * a.nb * a.Hkv * a.D + (size_t)hkv * a.D;
    const long long kcs = (long long)a.Hkv * a.D;
    /* the group's queries (scaled) and lse, then one pass over the blocks: each K~
     * row is read once for all the group's heads */
    for (int hh = 0; hh < a.G; hh++) {
        const T *qr = static_cast<const T *>(a.q) + b * a.qsb + (long long)i * a.qss + (hkv * a.G + hh) * a.qsh;
        for (int e = lane; e < a.D; e += 32) sq[hh * a.D + e] = to_f32<T>(qr[e]) * a.scale;
    }
    __syncwarp();
    float lse[NSA_MAXG];
#pragma unroll
    for (int hh = 0; hh < NSA_MAXG; hh++)
        lse[hh] = hh < a.G ? a.lse0[((size_t)b * a.Hq + hkv * a.G + hh) * a.Nq + i] : 0.f;
    for (int c = lane; c < nc; c += 32) {
        const T *kr = Kc + (long long)c * kcs;
        float dot[NSA_MAXG];
#pragma unroll
        for (int hh = 0; hh < NSA_MAXG; hh++) dot[hh] = 0.f;
        group_dots<T>(kr, sq, a.D, a.G, dot); /* a lane reads its own row */
        float P = 0.f;
#pragma unroll
        for (int hh = 0; hh < NSA_MAXG; hh++)
            if (hh < a.G) P += expf(dot[hh] - lse[hh]);
        long long lo = (long long)c * a.d, hi = lo + a.l; /* keys [lo, hi) */
        for (long long j = lo / a.ls; j <= (hi - 1) / a.ls && j <= jmax; j++) {
            long long s0 = lo > j * a.ls ? lo : j * a.ls, e0 = hi < (j + 1) * a.ls ? hi : (j + 1) * a.ls;
            atomicAdd(&sc[j], P * (float)(e0 - s0) / (float)a.d);
        }
    }
    __syncwarp();
    nsa_pick_blocks(sc, chosen, jmax, a.n, a.nsel, out, a.pick_top);
}

/* Compressed blocks visible at position ip: block c covers keys [c d, c d + l). */
__host__ __device__ __forceinline__ int nsa_visible_blocks(long long ip, int l, int d, int nb) {
    if (ip + 1 < l) return 0;
    const long long nc = (ip + 1 - l) / d + 1;
    return (int)(nc < nb ? nc : nb);
}

/* The selection on the tensor cores (the default): one CTA of 4
 * warps per (tile of QT queries, kv head, batch) with 64 mma rows r = hh QT + qi
 * (head hh of the group, query i0 + qi; rows from G QT on are idle). Blocks of 64
 * compressed keys stream through shared memory (cp.async, double buffered);
 * S = q K~^T on the tensor cores, p = exp(s S - lse_cmp) / d per row. Then the
 * step's selection-block scores, sum over the compressed blocks c of p
 * overlap(c, j), in one of two ways:
 * - as a product (a.sel_mma_cols > 0, nsa_sel_mma_cols): where a step of 64
 *   compressed blocks moves the selection blocks by a whole number, the overlaps
 *   form the same matrix W (64 x cols, small integers) in every step, so each warp
 *   multiplies its p (in registers, as two rounded halves for about 16 bits) into
 *   W on the tensor cores, its rows x cols partial sums go to shared memory (sS),
 *   and each (query, selection block) pair is owned by one thread, which adds the
 *   group's heads and the column halves into the tile's scores;
 * - otherwise p goes to a step buffer sP, and the thread that owns a pair adds
 *   sum over the group's heads and the step's compressed blocks c of p
 *   overlap(c, j) itself (DMABENCH_NSA_SEL_MMA=0 takes this way everywhere).
 * No atomics either way, and the same sum in every run. Then warp w picks the
 * blocks of queries w, w + 4, ... as nsa_select_kernel does. */
constexpr int SEL_BKC = 64;           /* compressed blocks per step */
constexpr int SEL_PS = SEL_BKC + 8;   /* sP's row stride in floats */
constexpr int SEL_MC = 32;            /* the product's columns at most (4 n-tiles) */

/* Keys shared by compressed block c (keys [c d, c d + l)) and selection block j
 * (keys [j l', (j + 1) l')). */
__host__ __device__ __forceinline__ int nsa_overlap(int c, int j, int l, int d, int ls) {
    const int lo = max(c * d, j * ls), hi = min(c * d + l, (j + 1) * ls);
    return hi > lo ? hi - lo : 0;
}
template <typename T, int D, int NW>
__global__ void __launch_bounds__(NW * 32, 16 / NW) nsa_select_tc_kernel(const SelArgs a, const int QT, const int NS) {
    constexpr int BKC = SEL_BKC;
    constexpr int NT = NW * 32, CS = NW / 4, BKW = BKC / CS; /* column parts, each warp's columns */
    constexpr int CH = D / 8;
    extern __shared__ __align__(128) unsigned char tc_smem[];
    const int nst = a.sel_stages, SS = a.sel_ss;
    T *sQ = reinterpret_cast<T *>(tc_smem);                   /* [64 rows][D], swizzled */
    T *sK = sQ + 64 * D;                                      /* [nst stages][BKC][D] */
    float *sP = reinterpret_cast<float *>(sK + nst * BKC * D); /* [64 rows][SEL_PS], or sS */
    float *sc = sP + a.sel_p_floats;                          /* [QT][NS] */
    /* [NW][NS], after the scores or (used only after the last step) over sK */
    unsigned char *chosen = a.sel_chosen_in_k ? reinterpret_cast<unsigned char *>(sK)
                                              : reinterpret_cast<unsigned char *>(sc + (size_t)QT * NS);
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int i0 = blockIdx.x * QT;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int nrows = a.G * QT;
    const long long off = (long long)a.Nk - a.Nq;

    for (int x = tid; x < QT * NS; x += NT) sc[x] = 0.f;
    load_group_q<T, D, NT>(sQ, a, b, hkv, i0, QT, tid);
    /* the tile's last query sees the most blocks */
    const int nc_tile = nsa_visible_blocks((long long)min(i0 + QT, a.Nq) - 1 + off, a.l, a.d, a.nb);
    const T *Kc = static_cast<const T *>(a.kc) + (size_t)b * a.nb * a.Hkv * D + (size_t)hkv * D;
    const long long kcs = (long long)a.Hkv * D;
    auto load_kc = [&](int stage, int c0) {
        for (int c = tid; c < BKC * CH; c += NT) {
            const int r = c / CH, ch = c % CH;
            const bool ok = c0 + r < nc_tile;
            cp16(sK + stage * BKC * D + swz<D>(r, ch), Kc + (long long)(ok ? c0 + r : 0) * kcs + ch * 8, ok);
        }
    };
    const int nsteps = (nc_tile + BKC - 1) / BKC;
    if (nsteps > 0) load_kc(0, 0);
    cp_commit();

    /* the warp's 16 rows from wrow and its BKW columns from wcol; the thread's two
     * rows: wrow + lane/4 (x0) and 8 below (x1), as scalars */
    const int wrow = (warp & 3) * 16, wcol = (warp >> 2) * BKW;
    float lse20 = 0.f, lse21 = 0.f;
    int nc0 = 0, nc1 = 0;
#pragma unroll
    for (int r2 = 0; r2 < 2; r2++) {
        const int rr = wrow + (lane >> 2) + 8 * r2, hh = rr / QT, qi = rr % QT;
        const long long ip = (long long)(i0 + qi) + off;
        const bool ok = rr < nrows && i0 + qi < a.Nq && ip >= 0;
        const int nc = ok ? nsa_visible_blocks(ip, a.l, a.d, a.nb) : 0;
        const float l2 = nc > 0 ? a.lse0[((size_t)b * a.Hq + hkv * a.G + hh) * a.Nq + i0 + qi] * LOG2E : 0.f;
        if (r2 == 0) nc0 = nc, lse20 = l2;
        else nc1 = nc, lse21 = l2;
    }
    const float sl2 = a.scale * LOG2E, inv_d = 1.f / (float)a.d;
    /* the product's W fragments (B operand, k = the warp's compressed blocks, n =
     * selection blocks), the same in every step; and the pairs this thread owns:
     * query qp, selection blocks jp0, jp0 + jps, ... of the step (QT divides NT) */
    const int mcols = a.sel_mma_cols;
    uint32_t wf[BKW / 16][SEL_MC / 8][2];
    if (mcols > 0) {
#pragma unroll
        for (int kk = 0; kk < BKW / 16; kk++)
#pragma unroll
            for (int nt = 0; nt < SEL_MC / 8; nt++) {
                const int c = wcol + kk * 16 + 2 * (lane & 3), j = nt * 8 + (lane >> 2);
#pragma unroll
                for (int h = 0; h < 2; h++)
                    wf[kk][nt][h] = pack2<T>::from((float)nsa_overlap(c + 8 * h, j, a.l, a.d, a.ls),
                                                   (float)nsa_overlap(c + 8 * h + 1, j, a.l, a.d, a.ls));
            }
    }
    const int qp = tid % QT, jp0 = tid / QT, jps = NT / QT;
    float *sS = sP; /* the product's partial sums: [CS][64 rows][SS] */
    __syncthreads(); /* the zeroed scores */

    /* With two stages the next step's K~ copy starts before this step's products;
     * with one, after the barrier that ends every warp's use of sK (the other CTA
     * on the SM covers the wait) */
    for (int step = 0; step < nsteps; step++) {
        const int st = nst == 2 ? step & 1 : 0;
        if (nst == 2 && step + 1 < nsteps) load_kc(st ^ 1, (step + 1) * BKC);
        cp_commit();
        if (nst == 2) cp_wait<1>();
        else cp_wait<0>();
        __syncthreads();
        float s[BKW / 8][4];
        warp_qk<T, D, BKW>(s, sQ, sK + st * BKC * D + wcol * D, wrow, lane);
        const int c0 = step * BKC;
        /* p of score x at the step's column col, in the fragment's row half r2 (0
         * where the row does not see block c0 + col) */
        auto pexp = [&](float x, int col, int r2) {
            return c0 + col < (r2 ? nc1 : nc0) ? fast_exp2(x * sl2 - (r2 ? lse21 : lse20)) * inv_d : 0.f;
        };
        if (mcols > 0) {
            /* p in the accumulators, then p W: hi and lo halves of p against the same W */
#pragma unroll
            for (int nt = 0; nt < BKW / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] = pexp(s[nt][e], wcol + nt * 8 + (lane & 3) * 2 + (e & 1), e >> 1);
            float cs[SEL_MC / 8][4];
#pragma unroll
            for (int nt = 0; nt < SEL_MC / 8; nt++) cs[nt][0] = cs[nt][1] = cs[nt][2] = cs[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BKW / 16; kk++) {
                uint32_t ah[4], al[4];
                acc_to_a<T, BKW / 8>(s, kk, ah);
                acc_to_a_lo<T, BKW / 8>(s, kk, ah, al);
#pragma unroll
                for (int nt = 0; nt < SEL_MC / 8; nt++)
                    if (nt * 8 < mcols) {
                        mma16816<T>(cs[nt], ah, wf[kk][nt][0], wf[kk][nt][1]);
                        mma16816<T>(cs[nt], al, wf[kk][nt][0], wf[kk][nt][1]);
                    }
            }
            float *srow = sS + ((size_t)(warp >> 2) * 64 + wrow + (lane >> 2)) * SS + (lane & 3) * 2;
#pragma unroll
            for (int nt = 0; nt < SEL_MC / 8; nt++)
                if (nt * 8 < mcols) {
                    *reinterpret_cast<float2 *>(srow + nt * 8) = make_float2(cs[nt][0], cs[nt][1]);
                    *reinterpret_cast<float2 *>(srow + 8 * SS + nt * 8) = make_float2(cs[nt][2], cs[nt][3]);
                }
            __syncthreads();
            if (nst == 1 && step + 1 < nsteps) load_kc(0, (step + 1) * BKC);
            /* the step's selection blocks jlo + jj: each pair's heads and column
             * halves into the tile's scores (the next step's first barrier keeps
             * its sS writes behind these reads) */
            const int jlo = step * a.sel_mma_step, nj = min(mcols, NS - jlo);
            for (int jj = jp0; jj < nj; jj += jps) {
                float acc = 0.f;
#pragma unroll
                for (int h2 = 0; h2 < CS; h2++)
                    for (int hh = 0; hh < a.G; hh++) acc += sS[((size_t)h2 * 64 + hh * QT + qp) * SS + jj];
                sc[(size_t)qp * NS + jlo + jj] += acc;
            }
            continue;
        }
        /* p of the thread's fragment into sP */
#pragma unroll
        for (int nt = 0; nt < BKW / 8; nt++)
#pragma unroll
            for (int r2 = 0; r2 < 2; r2++) {
                const int col = wcol + nt * 8 + (lane & 3) * 2;
                *reinterpret_cast<float2 *>(sP + (wrow + (lane >> 2) + 8 * r2) * SEL_PS + col) =
                    make_float2(pexp(s[nt][2 * r2], col, r2), pexp(s[nt][2 * r2 + 1], col + 1, r2));
            }
        __syncthreads();
        if (nst == 1 && step + 1 < nsteps) load_kc(0, (step + 1) * BKC);
        /* the selection blocks the step's compressed blocks overlap: block c covers
         * keys [c d, c d + l), selection block j keys [j l', (j + 1) l') */
        /* key positions fit an int (the keys' count does, and a block ends at most
         * l - 1 past its start): 32-bit divisions, several times cheaper than the
         * 64-bit ones */
        const int cend = min(c0 + BKC, nc_tile);
        const int jlo = c0 * a.d / a.ls;
        const int jhi = min(((cend - 1) * a.d + a.l - 1) / a.ls, NS - 1);
        const int nj = jhi - jlo + 1;
        for (int x = tid; x < QT * nj; x += NT) {
            const int qi = x / nj, j = jlo + x - qi * nj;
            const int k0 = j * a.ls, k1 = k0 + a.ls;
            /* c d < k1 and c d + l > k0 */
            const int cl = max(c0, k0 - a.l + 1 <= 0 ? 0 : (k0 - a.l + a.d) / a.d);
            const int ch = min(cend - 1, (k1 - 1) / a.d);
            float acc = 0.f;
            for (int c = cl; c <= ch; c++) {
                float ps = 0.f;
                for (int hh = 0; hh < a.G; hh++) ps += sP[(hh * QT + qi) * SEL_PS + (c - c0)];
                acc += ps * (float)nsa_overlap(c, j, a.l, a.d, a.ls);
            }
            sc[(size_t)qi * NS + j] += acc;
        }
        __syncthreads();
    }
    cp_wait<0>();
    __syncthreads();
    for (int qi = warp; qi < QT; qi += NW) {
        const int i = i0 + qi;
        if (i >= a.Nq) break;
        int *out = a.sel + (((size_t)b * a.Hkv + hkv) * a.Nq + i) * a.nsel;
        const long long ip = (long long)i + off;
        if (ip < 0) {
            for (int k = lane; k < a.nsel; k += 32) out[k] = -1;
            continue;
        }
        nsa_pick_blocks(sc + (size_t)qi * NS, chosen + (size_t)warp * NS, (int)(ip / a.ls), a.n, a.nsel, out, a.pick_top);
    }
}

/* o = g0 O_cmp + g1 O_slc + g2 O_win, per element; O_cmp, O_slc and owin contiguous;
 * O_win in o itself when owin is NULL. V = 8: a thread takes 8 consecutive
 * elements of a row (dm_vec8 of o; D a multiple of 8), the same arithmetic. */
template <typename T, int V>
__global__ void nsa_combine_kernel(T *o, long long osb, long long oss, long long osh, const T *ocmp, const T *oslc,
                                   const T *owin, const float *g, int B, int Nq, int Hq, int D) {
    const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    const long long n = (long long)B * Nq * Hq * D;
    if (e >= n) return;
    const int d = (int)(e % D), h = (int)((e / D) % Hq), i = (int)((e / ((long long)D * Hq)) % Nq);
    const int b = (int)(e / ((long long)D * Hq * Nq));
    const float *gr = g + (((size_t)b * Nq + i) * Hq + h) * 3;
    T *op = o + b * osb + (long long)i * oss + h * osh + d;
    if constexpr (V == 8) {
        float fc[8], fs[8], fw[8], x[8];
        ld8_any<T>(ocmp + e, fc);
        ld8_any<T>(oslc + e, fs);
        ld8_any<T>(owin ? owin + e : op, fw);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = gr[0] * fc[k] + gr[1] * fs[k] + gr[2] * fw[k];
        st8_any<T>(op, x);
    } else {
        const T w = owin ? owin[e] : *op;
        const float x = gr[0] * to_f32<T>(ocmp[e]) + gr[1] * to_f32<T>(oslc[e]) + gr[2] * to_f32<T>(w);
        *op = from_f32<T>(x);
    }
}


/* ---- backward kernels ---- */

/* The backward's row pass in one read of dO and the three branches' outputs
 * (docs/perf-notes.md n48), for each row (b, i, h): dg[row, w] = dout . O_w, gd[w] =
 * g_w dout rounded to T (B, Nq, Hq, D) contiguous, and dsum[w] (B, Hq, Nq) = gd[w] .
 * O_w from the rounded values, the Dsum each branch's backward would form from its
 * gated dO. w: 0 compressed, 1 selected, 2 window. lpr lanes per row (a power of
 * two), V elements per lane and load: 8 (dm_vec8 of dout; D a multiple of 8) or 1. */
template <typename T, int V>
__global__ void nsa_bwd_rows_kernel(const T *dout, long long sb, long long ss, long long sh, const T *ocmp,
                                    const T *oslc, const T *owin, const float *g, float *dg, T *gd, size_t gstride,
                                    float *dsum, size_t plane, int B, int Nq, int Hq, int D, int lpr) {
    const int lane = threadIdx.x & 31, sub = lane & (lpr - 1);
    const long long row = ((long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / lpr) + lane / lpr;
    const bool live = row < (long long)B * Nq * Hq;
    const long long r = live ? row : 0;
    const int h = (int)(r % Hq), i = (int)((r / Hq) % Nq), b = (int)(r / ((long long)Hq * Nq));
    const T *dr = dout + b * sb + (long long)i * ss + h * sh;
    const T *ow[3] = {ocmp + (size_t)r * D, oslc + (size_t)r * D, owin + (size_t)r * D};
    float gv[3] = {0.f, 0.f, 0.f}, sg[3] = {0.f, 0.f, 0.f}, sd[3] = {0.f, 0.f, 0.f};
    if (live) {
#pragma unroll
        for (int w = 0; w < 3; w++) gv[w] = g[(size_t)r * 3 + w];
        for (int d = sub * V; d < D; d += lpr * V) {
            float x[V];
            if constexpr (V == 8) ld8_any<T>(dr + d, x);
            else x[0] = to_f32<T>(dr[d]);
#pragma unroll
            for (int w = 0; w < 3; w++) {
                float o[V], y[V];
                if constexpr (V == 8) ld8_any<T>(ow[w] + d, o);
                else o[0] = to_f32<T>(ow[w][d]);
#pragma unroll
                for (int k = 0; k < V; k++) {
                    sg[w] += x[k] * o[k];
                    y[k] = to_f32<T>(from_f32<T>(gv[w] * x[k]));
                    sd[w] += y[k] * o[k];
                }
                if constexpr (V == 8) st8_any<T>(gd + w * gstride + (size_t)r * D + d, y);
                else gd[w * gstride + (size_t)r * D + d] = from_f32<T>(y[0]);
            }
        }
    }
#pragma unroll
    for (int w = 0; w < 3; w++)
        for (int x = lpr >> 1; x; x >>= 1) {
            sg[w] += __shfl_xor_sync(0xffffffff, sg[w], x);
            sd[w] += __shfl_xor_sync(0xffffffff, sd[w], x);
        }
    if (!live || sub) return;
    const size_t u = ((size_t)b * Hq + h) * Nq + i;
#pragma unroll
    for (int w = 0; w < 3; w++) {
        dg[(size_t)r * 3 + w] = sg[w];
        dsum[w * plane + u] = sd[w];
    }
}

/* The compression's backward into the rows: dX[t] = dK~_c W[t]^T (linear) or
 * dK~_c / l (mean), added to dk_acc at row c d + t (blocks overlap: atomics) and,
 * linear, to dpos[h, t]. One CTA of D threads per (c, h, b). */
__global__ void nsa_cmp_bwd_rows_kernel(const float *dkc, int nb, int Hkv, int D, int l, int d, int Nk, const float *w,
                                        float *dacc, float *dpos) {
    extern __shared__ float sd[]; /* [D] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, e = threadIdx.x;
    sd[e] = dkc[(((size_t)b * nb + c) * Hkv + h) * D + e];
    __syncthreads();
    for (int t = 0; t < l; t++) {
        float x;
        if (w) {
            const float *wr = w + (((size_t)h * l + t) * D + e) * D; /* row t*D + e of W_c[h] */
            x = 0.f;
            for (int col = 0; col < D; col++) x += wr[col] * sd[col];
        } else {
            x = sd[e] / (float)l;
        }
        atomicAdd(&dacc[(((size_t)b * Nk + (size_t)c * d + t) * Hkv + h) * D + e], x);
        if (w) atomicAdd(&dpos[((size_t)h * l + t) * D + e], x);
    }
}

/* dW_c[h, r, col] = sum_{b, c} (X[b, c d + r / D, h, r % D] + P[h, r / D, r % D]) dK~[b, c, h, col]:
 * one CTA of D threads per (r, h). */
template <typename T>
__global__ void nsa_cmp_bwd_w_kernel(const T *x, long long xsb, long long xss, long long xsh, const float *pos,
                                     const float *dkc, int B, int nb, int Hkv, int D, int l, int d, float *dw) {
    const int r = blockIdx.x, h = blockIdx.y, col = threadIdx.x;
    const int t = r / D, e = r % D;
    const float pv = pos[((size_t)h * l + t) * D + e];
    float acc = 0.f;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < nb; c++) {
            float xv = to_f32<T>(x[b * xsb + (long long)(c * d + t) * xss + h * xsh + e]) + pv;
            acc += xv * dkc[(((size_t)b * nb + c) * Hkv + h) * D + col];
        }
    dw[((size_t)h * l * D + r) * D + col] = acc;
}

/* The compression's backward (the default; DMABENCH_NSA_CMP_BLK=0 runs the two above):
 * the two kernels above read the head's W (rows) or all of dK~ (weights) once per
 * CTA, and add dpos with one atomic per (block, t, e) into the same l D addresses.
 * Here:
 * - rows: NSA_CB blocks per CTA; thread e takes W's rows (t, e), dotted with the
 *   CTA's NSA_CB dK~ vectors, the sums gathered per row in shared memory and added
 *   to dk_acc once per row (atomically: neighbouring CTAs share l - d rows);
 * - dpos[h, t, e] = sum_col W[h, t, e, col] S[h, col] with S = sum over blocks of
 *   dK~ (nsa_cmp_colsum_kernel, then nsa_cmp_bwd_pos_kernel), the same sum in
 *   another order;
 * - dW as a GEMM on the tensor cores, dW_h = X_h^T dK~_h over the blocks (X_h's
 *   row c is block c's l D inputs), plus pos[t, e] S[col]
 *   (nsa_cmp_dw_kernel; D 64 or 128). */
__global__ void nsa_cmp_bwd_rows_blk_kernel(const float *dkc, int nb, int Hkv, int D, int l, int d, int Nk,
                                            const float *w, float *dacc) {
    extern __shared__ float sbw[]; /* sd [NSA_CB][D], then rows [(NSA_CB - 1) d + l][D] */
    float *sd = sbw, *srow = sbw + NSA_CB * D;
    const int c0 = blockIdx.x * NSA_CB, h = blockIdx.y, b = blockIdx.z, e = threadIdx.x;
    const int R = (NSA_CB - 1) * d + l;
    for (int cc = 0; cc < NSA_CB; cc++)
        sd[cc * D + e] = c0 + cc < nb ? dkc[(((size_t)b * nb + c0 + cc) * Hkv + h) * D + e] : 0.f;
    for (int r = 0; r < R; r++) srow[r * D + e] = 0.f; /* thread e owns column e */
    __syncthreads();
    for (int t = 0; t < l; t++) {
        float xs[NSA_CB];
#pragma unroll
        for (int cc = 0; cc < NSA_CB; cc++) xs[cc] = 0.f;
        if (w) {
            const float4 *wr = reinterpret_cast<const float4 *>(w + (((size_t)h * l + t) * D + e) * D);
            for (int q = 0; q < D / 4; q++) {
                const float4 wv = wr[q];
#pragma unroll
                for (int cc = 0; cc < NSA_CB; cc++) {
                    const float *s4 = sd + cc * D + 4 * q;
                    xs[cc] += wv.x * s4[0] + wv.y * s4[1] + wv.z * s4[2] + wv.w * s4[3];
                }
            }
        } else {
#pragma unroll
            for (int cc = 0; cc < NSA_CB; cc++) xs[cc] = sd[cc * D + e] / (float)l;
        }
#pragma unroll
        for (int cc = 0; cc < NSA_CB; cc++) srow[(cc * d + t) * D + e] += xs[cc];
    }
    for (int r = 0; r < R; r++) {
        const long long row = (long long)c0 * d + r;
        const float v = srow[r * D + e];
        if (row < Nk && v != 0.f) atomicAdd(&dacc[(((size_t)b * Nk + row) * Hkv + h) * D + e], v);
    }
}

/* The linear compression's backward into the rows on the tensor cores (the default
 * where it applies, nsa_cmp_bwd_tc_ok; DMABENCH_NSA_CMP_TC=0 keeps the kernels above):
 * dX[r] = sum over the blocks c and offsets t with c d + t = r of dK~[c] W_t^T, W_t
 * the (D x D) rows t D .. t D + D - 1 of W. With l a multiple of d, row r = c' d + t'
 * (t' < d) takes the blocks c = c' - j for j < l / d, at t = t' + j d; so for a tile
 * of 64 consecutive c' and one t' the rows are a GEMM, (64 x (l/d) D) by
 * ((l/d) D x D), that no other CTA writes: added to dacc in place, no atomics.
 * dK~ is fp32 and so is W: both go through as bf16 halves, hi and lo, and three
 * products (hi hi, hi lo, lo hi) keep about 16 bits of each; dK~ is the engine's
 * output in T, so with bf16 its lo is zero and (LO false) that product is left
 * out. The CTA keeps the
 * 65 dK~ rows it needs (c' - 1 .. c' + 63 for l = 2 d; (l/d) - 1 more in general)
 * in shared memory as hi and lo, and streams W_t's columns (split by
 * nsa_cmp_w_nat_kernel, in W's own layout) through CBT_ST cp.async stages of 32
 * columns (16 at D 16), fragments by ldmatrix (as the forward's; n38-n39 in
 * docs/perf-notes.md).
 * CTA: 4 warps of 16 rows by DN columns, for CBT_TS consecutive t' of the d (the
 * t' split over CBT_TS CTAs: at the 131M model's B 2, 3 kv heads and N 8192 the
 * tiles alone made 96 CTAs for 132 SMs). */
constexpr int CBT_J = 4, CBT_TS = 4; /* l / d at most; CTAs over the t' */
/* The columns one CTA takes at head dim D (all up to 64, half at 128), W's k per
 * stage (32; 16 at D 16) and its padded row, and the stages. */
__host__ __device__ constexpr int cbt_cols(int D) { return D > 64 ? 64 : D; }
__host__ __device__ constexpr int cbt_kw(int D) { return D >= 32 ? 32 : 16; }
constexpr int CBT_ST = 3; /* 66 KB at D 128, as before: three CTAs per SM */

/* hi = bf16(W), lo = bf16(W - hi), in W's layout (Hkv, l D, D). */
__global__ void nsa_cmp_w_nat_kernel(const float *w, size_t n, __nv_bfloat16 *whi, __nv_bfloat16 *wlo) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = w[i];
        const __nv_bfloat16 hv = __float2bfloat16_rn(v);
        whi[i] = hv;
        wlo[i] = __float2bfloat16_rn(v - __bfloat162float(hv));
    }
}

template <int D, int DN, bool LO>
__global__ void __launch_bounds__(128) nsa_cmp_bwd_rows_tc_kernel(const float *dkc, int nb, int Hkv, int l, int d,
                                                                  int Nk, const __nv_bfloat16 *whi,
                                                                  const __nv_bfloat16 *wlo, float *dacc) {
    typedef __nv_bfloat16 bf;
    constexpr int AP = D + 8;  /* padded dK~ row (ldmatrix's eight rows in distinct banks) */
    constexpr int NP = D / DN; /* column parts */
    constexpr int KW = cbt_kw(D), KS = KW / 16, KP = KW + 8; /* W's k per stage, its mma steps, padded row */
    extern __shared__ __align__(16) unsigned char cbt_smem[];
    const int J = l / d, AR = CTC_ROWS + J - 1; /* dK~ rows kept: c' - (J - 1) .. c' + 63 */
    bf *ahi = reinterpret_cast<bf *>(cbt_smem), *alo = ahi + (size_t)AR * AP;
    bf (*shi)[DN][KP] = reinterpret_cast<bf (*)[DN][KP]>(alo + (size_t)AR * AP);
    bf (*slo)[DN][KP] = shi + CBT_ST;
    const int tile = blockIdx.x / CBT_TS, tper = (d + CBT_TS - 1) / CBT_TS;
    const int tp0 = (blockIdx.x % CBT_TS) * tper, tp1 = min(d, tp0 + tper);
    if (tp0 >= tp1) return; /* d < CBT_TS: nothing for this CTA */
    const int cp0 = (tile / NP) * CTC_ROWS, n0 = (tile % NP) * DN, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tq = lane % 4;
    /* dK~ rows c = cp0 - (J - 1) + i, zero outside 0 .. nb - 1 */
    for (int i = tid; i < AR * D; i += 128) {
        const int rr = i / D, col = i % D, c = cp0 - (J - 1) + rr;
        const float v = c >= 0 && c < nb ? dkc[(((size_t)b * nb + c) * Hkv + h) * D + col] : 0.f;
        const bf hv = __float2bfloat16_rn(v);
        ahi[(size_t)rr * AP + col] = hv;
        if (LO) alo[(size_t)rr * AP + col] = __float2bfloat16_rn(v - __bfloat162float(hv));
    }
    const bf *wh = whi + (size_t)h * l * D * D, *wl = wlo + (size_t)h * l * D * D;
    constexpr int KC = D / KW; /* stages of one W_t */
    const int Q = J * KC;      /* stages per t' */
    /* stage (t', j, kc): W rows (t' + j d) D + n0 + n, columns KW kc .. KW kc + KW - 1 */
    auto load = [&](int tp, int q, int st) {
        const int j = q / KC, k0 = (q % KC) * KW, t = tp + j * d;
        for (int i = tid; i < DN * (KW / 8); i += 128) {
            const int n = i / (KW / 8), pt = (i % (KW / 8)) * 8;
            const size_t o = ((size_t)t * D + n0 + n) * D + k0 + pt;
            cp16(&shi[st][n][pt], wh + o, true);
            cp16(&slo[st][n][pt], wl + o, true);
        }
    };
    const int ra = warp * 16 + g; /* this lane's accumulator rows: ra, ra + 8 (c' = cp0 + ra) */
    const WLanes wln(warp, lane);
    const int arow = wln.arow, ak = wln.ak, bn = wln.bn, bk = wln.bk;
    for (int tp = tp0; tp < tp1; tp++) {
        float acc[DN / 8][4];
#pragma unroll
        for (int jn = 0; jn < DN / 8; jn++) acc[jn][0] = acc[jn][1] = acc[jn][2] = acc[jn][3] = 0.f;
        __syncthreads(); /* the dK~ rows are in (first t'); every warp is done with the last t's stages */
#pragma unroll
        for (int st = 0; st < CBT_ST - 1; st++) {
            if (st < Q) load(tp, st, st);
            cp_commit();
        }
        for (int q = 0; q < Q; q++) {
            cp_wait<CBT_ST - 2>();
            __syncthreads();
            if (q + CBT_ST - 1 < Q) load(tp, q + CBT_ST - 1, (q + CBT_ST - 1) % CBT_ST);
            cp_commit();
            const int st = q % CBT_ST, j = q / KC, k0 = (q % KC) * KW;
            /* A rows: block c = c' - j, kept at index (J - 1) + c' - cp0 - j */
            const size_t a0 = (size_t)((J - 1) + arow - j) * AP + k0 + ak;
#pragma unroll
            for (int s = 0; s < KS; s++) {
                uint32_t ah[4], al[4] = {0, 0, 0, 0};
                ldsm_x4(ah, ahi + a0 + s * 16);
                if (LO) ldsm_x4(al, alo + a0 + s * 16);
#pragma unroll
                for (int jn = 0; jn < DN / 8; jn += 2)
                    mma_w_halves<bf, LO>(acc[jn], acc[jn + 1], ah, al, &shi[st][jn * 8 + bn][s * 16 + bk],
                                         &slo[st][jn * 8 + bn][s * 16 + bk]);
            }
        }
        cp_wait<0>();
        /* rows r = c' d + t' of this tile: this CTA's alone */
        const long long ra_r = (long long)(cp0 + ra) * d + tp, rb_r = ra_r + 8LL * d;
#pragma unroll
        for (int jn = 0; jn < DN / 8; jn++) {
            const int col = n0 + jn * 8 + 2 * tq;
            if (ra_r < Nk) {
                float2 *o = reinterpret_cast<float2 *>(dacc + (((size_t)b * Nk + ra_r) * Hkv + h) * D + col);
                float2 v = *o;
                v.x += acc[jn][0], v.y += acc[jn][1];
                *o = v;
            }
            if (rb_r < Nk) {
                float2 *o = reinterpret_cast<float2 *>(dacc + (((size_t)b * Nk + rb_r) * Hkv + h) * D + col);
                float2 v = *o;
                v.x += acc[jn][2], v.y += acc[jn][3];
                *o = v;
            }
        }
    }
}

/* nsa_cmp_bwd_rows_tc_kernel's GEMM in wide tiles at D 64 and 128 (the default
 * there; DMABENCH_NSA_CMP_WIDE=0 runs the kernel above): a CTA of 8 warps takes 128
 * consecutive c' by all D columns for tper consecutive t', warp w rows 32 (w % 4) ..
 * + 31 by columns (w / 4) D / 2 .. + D / 2 - 1, so that each of W's fragments serves
 * two m16 tiles and W_t is read once per 128 c' (the kernel above: once per 64 c' by
 * half of D). The dK~ rows c' - (J - 1) .. c' + 127 as hi (and lo) halves in shared
 * memory, W's columns through CBT_ST cp.async stages of CBT_KW k; products per 16 k
 * in the kernel above's order (hi hi, hi lo, then lo hi). */
constexpr int CBW_ROWS = 128;
template <int D> constexpr size_t cbw_smem_bytes(int J, bool lo) {
    return (size_t)(lo ? 2 : 1) * (CBW_ROWS + J - 1) * (D + 8) * 2 + 2 * (size_t)CBT_ST * D * (cbt_kw(D) + 8) * 2;
}

template <typename T, int D, bool LO>
__global__ void __launch_bounds__(256, 2) nsa_cmp_bwd_rows_wide_kernel(const float *dkc, int nb, int Hkv, int l,
                                                                       int d, int Nk, int tper,
                                                                       const __nv_bfloat16 *whi,
                                                                       const __nv_bfloat16 *wlo, float *dacc, T *out,
                                                                       attn_stride os, const __nv_bfloat16 *dkcb) {
    static_assert(D == 64 || D == 128, "nsa_cmp_bwd_rows_wide_kernel: D 64 or 128");
    typedef __nv_bfloat16 bf;
    constexpr int AP = D + 8, NT = D / 16; /* padded dK~ row; a warp's n8 tiles */
    constexpr int KW = cbt_kw(D), KS = KW / 16, KP = KW + 8, KC = D / KW;
    extern __shared__ __align__(16) unsigned char cbw_smem[];
    const int J = l / d, AR = CBW_ROWS + J - 1; /* dK~ rows kept: c' - (J - 1) .. c' + 127 */
    bf *ahi = reinterpret_cast<bf *>(cbw_smem), *alo = ahi + (size_t)AR * AP; /* alo only with LO */
    bf(*shi)[D][KP] = reinterpret_cast<bf(*)[D][KP]>(ahi + (size_t)(LO ? 2 : 1) * AR * AP);
    bf(*slo)[D][KP] = shi + CBT_ST;
    const int tsplit = (d + tper - 1) / tper, tile = blockIdx.x / tsplit;
    const int tp0 = (blockIdx.x % tsplit) * tper, tp1 = min(d, tp0 + tper);
    const int cp0 = tile * CBW_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int wr = (warp & 3) * 32, wc = (warp >> 2) * (D / 2);
    /* dK~ rows c = cp0 - (J - 1) + i, zero outside 0 .. nb - 1: given dkcb (dK~ in
     * bf16, without LO, whose hi half it is), copied as they are (cp.async, waited for
     * with the first stage); else from the fp32 copy, 4 columns a step */
    if (!LO && dkcb) {
        for (int i = tid; i < AR * (D / 8); i += 256) {
            const int rr = i / (D / 8), col = (i % (D / 8)) * 8, c = cp0 - (J - 1) + rr;
            const bool ok = c >= 0 && c < nb;
            cp16(ahi + (size_t)rr * AP + col, ok ? dkcb + (((size_t)b * nb + c) * Hkv + h) * D + col : dkcb, ok);
        }
        cp_commit();
    } else
    for (int i = tid; i < AR * (D / 4); i += 256) {
        const int rr = i / (D / 4), col = (i % (D / 4)) * 4, c = cp0 - (J - 1) + rr;
        const float4 v = c >= 0 && c < nb ? *reinterpret_cast<const float4 *>(dkc + (((size_t)b * nb + c) * Hkv + h) * D + col)
                                         : make_float4(0.f, 0.f, 0.f, 0.f);
        const float f[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const bf hv = __float2bfloat16_rn(f[e]);
            ahi[(size_t)rr * AP + col + e] = hv;
            if (LO) alo[(size_t)rr * AP + col + e] = __float2bfloat16_rn(f[e] - __bfloat162float(hv));
        }
    }
    const bf *wh = whi + (size_t)h * l * D * D, *wl = wlo + (size_t)h * l * D * D;
    const int Q = J * KC; /* stages per t' */
    /* stage (t', j, kc): W rows (t' + j d) D + n, columns KW kc .. KW kc + KW - 1 */
    auto load = [&](int tp, int q, int st) {
        const int j = q / KC, k0 = (q % KC) * KW, t = tp + j * d;
        for (int i = tid; i < D * (KW / 8); i += 256) {
            const int n = i / (KW / 8), pt = (i % (KW / 8)) * 8;
            const size_t o = ((size_t)t * D + n) * D + k0 + pt;
            cp16(&shi[st][n][pt], wh + o, true);
            cp16(&slo[st][n][pt], wl + o, true);
        }
    };
    const int arow = wr + (lane & 15), ak = (lane >> 4) * 8;
    const int bn = wc + ((lane >> 4) << 3) + (lane & 7), bk = ((lane >> 3) & 1) * 8;
    for (int tp = tp0; tp < tp1; tp++) {
        float acc[2][NT][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int jn = 0; jn < NT; jn++) acc[mt][jn][0] = acc[mt][jn][1] = acc[mt][jn][2] = acc[mt][jn][3] = 0.f;
        __syncthreads(); /* the dK~ rows are in (first t'); every warp is done with the last t's stages */
#pragma unroll
        for (int st = 0; st < CBT_ST - 1; st++) {
            if (st < Q) load(tp, st, st);
            cp_commit();
        }
        for (int q = 0; q < Q; q++) {
            cp_wait<CBT_ST - 2>();
            __syncthreads();
            if (q + CBT_ST - 1 < Q) load(tp, q + CBT_ST - 1, (q + CBT_ST - 1) % CBT_ST);
            cp_commit();
            const int st = q % CBT_ST, j = q / KC, k0 = (q % KC) * KW;
            /* A rows: block c = c' - j, kept at index (J - 1) + c' - cp0 - j */
            const size_t a0 = (size_t)((J - 1) + arow - j) * AP + k0 + ak;
#pragma unroll
            for (int s = 0; s < KS; s++) {
                uint32_t ah[2][4], al[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    ldsm_x4(ah[mt], ahi + a0 + (size_t)mt * 16 * AP + s * 16);
                    if (LO) ldsm_x4(al[mt], alo + a0 + (size_t)mt * 16 * AP + s * 16);
                }
#pragma unroll
                for (int jn = 0; jn < NT; jn += 2) {
                    uint32_t hv[4], lv[4];
                    ldsm_x4(hv, &shi[st][bn + jn * 8][s * 16 + bk]);
                    ldsm_x4(lv, &slo[st][bn + jn * 8][s * 16 + bk]);
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        mma16816<bf>(acc[mt][jn], ah[mt], hv[0], hv[1]);
                        mma16816<bf>(acc[mt][jn], ah[mt], lv[0], lv[1]);
                        if (LO) mma16816<bf>(acc[mt][jn], al[mt], hv[0], hv[1]);
                        mma16816<bf>(acc[mt][jn + 1], ah[mt], hv[2], hv[3]);
                        mma16816<bf>(acc[mt][jn + 1], ah[mt], lv[2], lv[3]);
                        if (LO) mma16816<bf>(acc[mt][jn + 1], al[mt], hv[2], hv[3]);
                    }
                }
            }
        }
        cp_wait<0>();
        /* rows r = c' d + t' of this tile: this CTA's alone; with out, the last
         * writer: the sums go to out in T instead of back to dacc. A row's sums are
         * all loaded before any store: the stores may alias the loads as far as the
         * compiler knows, so loads and stores interleaved waited out one load's
         * latency per 8 columns (the kernel's stall samples at the adds, 54%) */
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                const long long r = (long long)(cp0 + wr + mt * 16 + g + 8 * hf) * d + tp;
                if (r >= Nk) continue;
                float *arow = dacc + (((size_t)b * Nk + r) * Hkv + h) * D + wc + 2 * tq;
                float2 v[NT];
#pragma unroll
                for (int jn = 0; jn < NT; jn++) v[jn] = *reinterpret_cast<const float2 *>(arow + jn * 8);
#pragma unroll
                for (int jn = 0; jn < NT; jn++) v[jn].x += acc[mt][jn][2 * hf], v[jn].y += acc[mt][jn][2 * hf + 1];
                if (out) {
                    T *trow = out + b * os.b + r * os.s + h * os.h + wc + 2 * tq;
#pragma unroll
                    for (int jn = 0; jn < NT; jn++)
                        *reinterpret_cast<uint32_t *>(trow + jn * 8) = pack2<T>::from(v[jn].x, v[jn].y);
                } else {
#pragma unroll
                    for (int jn = 0; jn < NT; jn++) *reinterpret_cast<float2 *>(arow + jn * 8) = v[jn];
                }
            }
    }
}

/* The column sums the position term's gradient needs, S[h, :] = sum_{b, c}
 * dK~[b, c, h, :], in NSA_CS_SPLIT parts per kv head: grid (Hkv, NSA_CS_SPLIT), a
 * CTA of 256 threads sums a contiguous range of the B nb rows into
 * part[split, h, :] (256 / D rows at a time, added in a fixed order: the same bits
 * every run). Enough CTAs to keep the reads in flight: one CTA per kv head was
 * bound by its loads' latency. */
constexpr int NSA_CS_SPLIT = 32, NSA_CS_THREADS = 256;
__global__ void __launch_bounds__(NSA_CS_THREADS) nsa_cmp_colsum_kernel(const float *dkc, long long K, int Hkv, int D,
                                                                        float *part) {
    __shared__ float red[NSA_CS_THREADS];
    const int h = blockIdx.x, split = blockIdx.y, tid = threadIdx.x, e = tid % D, pi = tid / D;
    const int P = NSA_CS_THREADS / D;
    const long long per = (K + NSA_CS_SPLIT - 1) / NSA_CS_SPLIT;
    const long long k0 = split * per, k1 = min(K, k0 + per);
    float s0 = 0.f, s1 = 0.f;
    if (pi < P) {
        long long k = k0 + pi;
        for (; k + P < k1; k += 2 * P) {
            s0 += dkc[((size_t)k * Hkv + h) * D + e];
            s1 += dkc[((size_t)(k + P) * Hkv + h) * D + e];
        }
        if (k < k1) s0 += dkc[((size_t)k * Hkv + h) * D + e];
    }
    red[tid] = s0 + s1;
    __syncthreads();
    if (pi == 0) {
        float s = 0.f;
        for (int j = 0; j < P; j++) s += red[j * D + e];
        part[((size_t)split * Hkv + h) * D + e] = s;
    }
}

/* S[h, e] from nsa_cmp_colsum_kernel's parts, added in order (its readers, each a
 * CTA per (t, kv head), get the same bits). */
__device__ __forceinline__ float colsum_total(const float *part, int Hkv, int D, int h, int e) {
    float s = 0.f;
    for (int sp = 0; sp < NSA_CS_SPLIT; sp++) s += part[((size_t)sp * Hkv + h) * D + e];
    return s;
}

/* dpos[h, t, e] += sum_col W[h, t, e, col] S[h, col]: one CTA of D threads per
 * (t, kv head), S the sum of nsa_cmp_colsum_kernel's parts (in order). (Each CTA
 * summed all of dK~ for S itself before: l Hkv passes over B nb D floats, 2.17 ms
 * of nsa's training step at 8192.) */
__global__ void nsa_cmp_bwd_pos_kernel(const float *part, int Hkv, int D, int l, const float *w, float *dpos) {
    extern __shared__ float sS[]; /* [D] */
    const int t = blockIdx.x, h = blockIdx.y, e = threadIdx.x;
    sS[e] = colsum_total(part, Hkv, D, h, e);
    __syncthreads();
    const float *wr = w + (((size_t)h * l + t) * D + e) * D;
    float x = 0.f;
    for (int col = 0; col < D; col++) x += wr[col] * sS[col];
    dpos[((size_t)h * l + t) * D + e] += x;
}

/* dW_h[t D + e, col] = sum_{b, c} X[b, c d + t, h, e] dK~[b, c, h, col] + pos[h, t, e] S[h, col]
 * on the tensor cores (mma.sync m16n8k16, fp32 accumulate): one CTA of 8 warps per
 * (t, kv head), its D x D tile of dW_h (a warp: D/4 rows e by D/2 columns), the k
 * dimension the B nb blocks in chunks of CDW_K. Each chunk's rows of X (block c's
 * row c d + t) and of dK~ (the compressed branch's output in T, whose fp32 copy
 * the other kernels read: the same values) go through CDW_ST cp.async stages in
 * their own [k][D] layout, rows padded by 16 bytes so that ldmatrix's 8 rows fall
 * in distinct banks; ldmatrix.trans makes the fragments (A = X^T, B = dK~). S is
 * dK~'s column sums in fp32, nsa_cmp_colsum_kernel's parts summed in order. The
 * inputs must be 16-byte aligned rows (dm_vec8); D 64 or 128. */
constexpr int CDW_K = 32, CDW_ST = 3; /* k chunk (blocks), stages */
template <int D> constexpr size_t cdw_smem_bytes() { return (size_t)2 * CDW_ST * CDW_K * (D + 8) * 2; }
template <typename T> struct CmpDwArgs {
    const T *x[2];      /* K, V */
    attn_stride xs[2];
    const T *dkc[2];    /* dK~, dV~ in T, (B, nb, Hkv, D) contiguous */
    const float *pos[2], *csum[2];
    float *dw[2];
    int B, nb, Hkv, l, d;
};
template <typename T, int D>
__global__ void __launch_bounds__(256) nsa_cmp_dw_kernel(const CmpDwArgs<T> a) {
    /* tensor u = blockIdx.z (0 K, 1 V): its fields by selects, not by an index into
     * the parameters (which would copy them to local memory) */
    const int u = blockIdx.z;
    const T *x = u ? a.x[1] : a.x[0], *dkc = u ? a.dkc[1] : a.dkc[0];
    const long long xsb = u ? a.xs[1].b : a.xs[0].b, xss = u ? a.xs[1].s : a.xs[0].s, xsh = u ? a.xs[1].h : a.xs[0].h;
    const float *pos = u ? a.pos[1] : a.pos[0], *csum = u ? a.csum[1] : a.csum[0];
    float *dw = u ? a.dw[1] : a.dw[0];
    const int B = a.B, nb = a.nb, Hkv = a.Hkv, l = a.l, d = a.d;
    constexpr int RP = D + 8;               /* padded row (elements) */
    constexpr int PR = D / 8;               /* 16-byte pieces per row */
    constexpr int MT = D / 64, NT = D / 16; /* a warp's m16 tiles (rows e) and n8 tiles (columns) */
    extern __shared__ __align__(16) unsigned char cdw_smem[];
    T *sx = reinterpret_cast<T *>(cdw_smem), *sd = sx + CDW_ST * CDW_K * RP; /* [CDW_ST][CDW_K][RP] each */
    __shared__ float sS[D];
    const int t = blockIdx.x, h = blockIdx.y;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, q = lane >> 3, r8 = lane & 7;
    const int wm = (warp & 3) * (D / 4), wn = (warp >> 2) * (D / 2);
    const long long K = (long long)B * nb, nch = (K + CDW_K - 1) / CDW_K;
    const auto load = [&](long long ch, int st) {
        for (int i = tid; i < CDW_K * PR; i += 256) {
            const int r = i / PR, pc = (i % PR) * 8;
            const long long k = ch * CDW_K + r;
            const bool ok = k < K;
            const int bb = ok ? (int)(k / nb) : 0, c = ok ? (int)(k - (long long)bb * nb) : 0;
            cp16(sx + (st * CDW_K + r) * RP + pc, ok ? x + bb * xsb + (long long)(c * d + t) * xss + h * xsh + pc : x,
                 ok);
            cp16(sd + (st * CDW_K + r) * RP + pc, ok ? dkc + ((size_t)k * Hkv + h) * D + pc : dkc, ok);
        }
    };
    float acc[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.f;
#pragma unroll
    for (int st = 0; st < CDW_ST - 1; st++) {
        if (st < nch) load(st, st);
        cp_commit();
    }
    for (long long ch = 0; ch < nch; ch++) {
        cp_wait<CDW_ST - 2>();
        __syncthreads(); /* chunk ch is in; every warp is done with chunk ch - 1's stage */
        if (ch + CDW_ST - 1 < nch) load(ch + CDW_ST - 1, (int)((ch + CDW_ST - 1) % CDW_ST));
        cp_commit();
        const int st = (int)(ch % CDW_ST);
        const T *ax = sx + st * CDW_K * RP, *bd = sd + st * CDW_K * RP;
#pragma unroll
        for (int kk = 0; kk < CDW_K; kk += 16) {
            /* A's 8x8 blocks (e, k) are the stage's (k, e) blocks transposed: matrix i
             * at k + (i / 2) 8, e + (i % 2) 8; B's (k, col) at k + (i % 2) 8, col + (i / 2) 8 */
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldsm_x4_t(a[mt], ax + (kk + (q >> 1) * 8 + r8) * RP + wm + mt * 16 + (q & 1) * 8);
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t b4[4];
                ldsm_x4_t(b4, bd + (kk + (q & 1) * 8 + r8) * RP + wn + np * 16 + (q >> 1) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(acc[mt][2 * np], a[mt], b4[0], b4[1]);
                    mma16816<T>(acc[mt][2 * np + 1], a[mt], b4[2], b4[3]);
                }
            }
        }
    }
    cp_wait<0>();
    if (tid < D) sS[tid] = colsum_total(csum, Hkv, D, h, tid);
    __syncthreads();
    const int g = lane >> 2, c2 = (lane & 3) * 2;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int e = wm + mt * 16 + g + 8 * hf;
            const float pv = pos[((size_t)h * l + t) * D + e];
            float *dst = dw + (((size_t)h * l + t) * D + e) * D;
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int col = wn + nt * 8 + c2;
                *reinterpret_cast<float2 *>(dst + col) = make_float2(acc[mt][nt][2 * hf] + pv * sS[col],
                                                                     acc[mt][nt][2 * hf + 1] + pv * sS[col + 1]);
            }
        }
}

/* Whether nsa_cmp_dw_kernel takes x (the keys or values) and dkc_t (dK~ in T): D 64
 * or 128, 16-byte aligned rows. */
template <typename T> bool cmp_dw_applies(const void *x, const attn_stride &xs, const T *dkc_t, int D) {
    return (D == 64 || D == 128) && dm_vec8(x, xs, D) && reinterpret_cast<uintptr_t>(dkc_t) % 16 == 0;
}
/* nsa_cmp_dw_kernel for K~ and V~ in one launch (a.csum: each one's column sums'
 * parts), where cmp_dw_applies to both. */
template <typename T> attn_status launch_cmp_dw(const CmpDwArgs<T> &a, int D) {
    const dim3 grid((unsigned)a.l, (unsigned)a.Hkv, 2);
    if (D == 128) {
        CUDA_CHECK(cudaFuncSetAttribute(nsa_cmp_dw_kernel<T, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)cdw_smem_bytes<128>()));
        nsa_cmp_dw_kernel<T, 128><<<grid, 256, cdw_smem_bytes<128>()>>>(a);
    } else {
        nsa_cmp_dw_kernel<T, 64><<<grid, 256, cdw_smem_bytes<64>()>>>(a);
    }
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

dm_cuda_ws g_nws; /* compressed keys, branch outputs, selection and gradients, kept between calls */

/* Sizes every step shares. */
/* Warps per CTA of the tensor-core selection: 8 (two column halves of each step's
 * compressed blocks), or 4 with DMABENCH_NSA_SEL_WARPS=4. At N = 65536 the tile's
 * scores (64 KB) leave room for one CTA per SM, and 4 warps issued once every 5
 * cycles each (docs/perf-notes.md n13). */
int nsa_sel_warps() {
    static const int nw = dm_env_is("DMABENCH_NSA_SEL_WARPS", "4") ? 4 : 8;
    return nw;
}

/* The tensor-core selection's tile: *qt queries (64 / G, halved until the tile's
 * block scores fit the device's shared memory; 0 when even one query's do not, or
 * G does not divide 64), its shared-memory bytes, and the layout in a (sel_*).
 * Per CTA: Q (64 rows), the K~ stages, sP (the pair loop) or sS (the product,
 * a->sel_mma_cols > 0: CS x 64 rows of ss floats), the scores (qt x ns floats) and the
 * pick's flags (NW x ns bytes; over the K~ stages where they fit, as the pick
 * comes after the last step). Two K~ stages, or one where that lets two CTAs
 * share an SM and two do not (at N = 65536, 108 KB against 138: the other CTA
 * covers the copy's wait); DMABENCH_NSA_SEL_STAGES=1 or 2 fixes it. */
attn_status select_tc_tile(int G, int ns, int D, size_t esize, SelArgs *a, int *qt, size_t *smem) {
    *qt = 0, *smem = 0;
    if (G < 1 || 64 % G != 0 || (D != 16 && D != 32 && D != 64 && D != 128)) return ATTN_OK;
    size_t optin = 0;
    attn_status st = dm_cuda_smem_optin(&optin);
    if (st != ATTN_OK) return st;
    const int nw = nsa_sel_warps(), cs = nw / 4;
    const int mcols = a->sel_mma_cols;
    const int ss = (mcols + 7) & ~7; /* whole n-tiles of 8 columns: the product writes each in full */
    const size_t pf = mcols > 0 ? (size_t)cs * 64 * ss : (size_t)64 * SEL_PS;
    auto bytes = [&](int nst, int q, int *in_k) {
        const size_t kb = (size_t)nst * SEL_BKC * D * esize, cb = (size_t)nw * ns;
        *in_k = cb <= kb;
        return (size_t)64 * D * esize + kb + pf * sizeof(float) + (size_t)q * ns * sizeof(float) +
               (*in_k ? 0 : ((cb + 15) & ~(size_t)15));
    };
    int in_k = 0;
    int q = 64 / G;
    while (q > 1 && bytes(2, q, &in_k) > optin) q /= 2;
    if (bytes(2, q, &in_k) > optin) return ATTN_OK;
    static const int force = dm_env_is("DMABENCH_NSA_SEL_STAGES", "1") ? 1 : dm_env_is("DMABENCH_NSA_SEL_STAGES", "2") ? 2 : 0;
    const size_t two_per_sm = (228 * 1024) / 2 - 1024; /* an SM's 228 KB, 1 KB reserved per CTA */
    int nst = 2;
    if (force == 1 || (force == 0 && bytes(2, q, &in_k) > two_per_sm && bytes(1, q, &in_k) <= two_per_sm)) nst = 1;
    *smem = bytes(nst, q, &in_k);
    *qt = q;
    a->sel_stages = nst, a->sel_ss = ss, a->sel_p_floats = (int)pf, a->sel_chosen_in_k = in_k;
    return ATTN_OK;
}

/* The tensor-core selection's block scores as a product with the overlaps (W, the
 * same in every step): its columns, or 0 for the pair loop. It needs a step of
 * SEL_BKC compressed blocks to move the selection blocks by a whole number
 * (SEL_BKC d a multiple of l'), the columns one step touches to fit SEL_MC, and the
 * overlaps (at most min(l, l') keys) to be whole numbers that 16-bit floats hold
 * exactly (up to 256). DMABENCH_NSA_SEL_MMA=0: 0 everywhere. */
int nsa_sel_mma_cols(int l, int d, int ls, int *step) {
    static const bool off = dm_env_is("DMABENCH_NSA_SEL_MMA", "0");
    *step = 0;
    if (off || ((long long)SEL_BKC * d) % ls != 0 || std::min(l, ls) > 256) return 0;
    const long long cols = ((long long)(SEL_BKC - 1) * d + l - 1) / ls + 1;
    if (cols > SEL_MC) return 0;
    *step = (int)((long long)SEL_BKC * d / ls);
    return (int)cols;
}

template <typename T, int D> attn_status launch_select_tc_d(const SelArgs &a, int qt, size_t smem) {
    const int nw = nsa_sel_warps();
    auto kern = nw == 4 ? nsa_select_tc_kernel<T, D, 4> : nsa_select_tc_kernel<T, D, 8>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)((a.Nq + qt - 1) / qt), (unsigned)a.Hkv, (unsigned)a.B);
    kern<<<grid, 32 * nw, smem>>>(a, qt, a.ns);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

template <typename T> attn_status launch_select_tc(const SelArgs &a, int qt, size_t smem) {
    switch (a.D) {
    case 16: return launch_select_tc_d<T, 16>(a, qt, smem);
    case 32: return launch_select_tc_d<T, 32>(a, qt, smem);
    case 64: return launch_select_tc_d<T, 64>(a, qt, smem);
    default: return launch_select_tc_d<T, 128>(a, qt, smem);
    }
}

/* The linear compression NSA_CB blocks per CTA. Its backward is the default
 * (DMABENCH_NSA_CMP_BLK=0 runs the per-block kernels); its forward
 * (nsa_compress_blk_kernel) only with DMABENCH_NSA_CMP_BLK=1: on the H200 it was
 * 1.9 ms slower at N = 8192 and 1% faster at 65536 (docs/perf-notes.md n8). */
int nsa_cmp_blk_fwd() {
    static const bool on = dm_env_is("DMABENCH_NSA_CMP_BLK", "1");
    return on;
}
int nsa_cmp_blk_bwd() {
    static const bool on = !dm_env_is("DMABENCH_NSA_CMP_BLK", "0");
    return on;
}

/* The linear compression's forward on the tensor cores (nsa_compress_tc_kernel) where
 * it applies: D of 16, 32, 64 or 128, k and v 16-byte aligned with strides that are
 * multiples of 8 elements (cp.async of 8-element pieces); DMABENCH_NSA_CMP_TC=0 runs
 * the fp32 kernels. */
int nsa_cmp_tc_ok(const attn_params *p) {
    static const bool on = !dm_env_is("DMABENCH_NSA_CMP_TC", "0");
    const int D = p->D;
    if (!on || (D != 16 && D != 32 && D != 64 && D != 128)) return 0;
    const attn_stride sts[2] = {p->k_st, p->v_st};
    for (const attn_stride &x : sts)
        if ((x.b | x.s | x.h) & 7) return 0;
    return !(((uintptr_t)p->k | (uintptr_t)p->v) & 15);
}

/* The compression's GEMMs in wide tiles at D 64 and 128 (nsa_compress_wide_kernel,
 * nsa_cmp_bwd_rows_wide_kernel) by default; DMABENCH_NSA_CMP_WIDE=0 runs
 * nsa_compress_tc_kernel and nsa_cmp_bwd_rows_tc_kernel. */
int nsa_cmp_wide() {
    static const bool on = !dm_env_is("DMABENCH_NSA_CMP_WIDE", "0");
    return on;
}

dm_cuda_ws g_cws; /* the tensor-core compression's W halves and position term */

/* The columns of K~ / V~ one CTA of nsa_compress_tc_kernel takes at head dim D: all
 * of them up to 64, a quarter at 128 (4 CTAs per tile; docs/perf-notes.md n32). */
constexpr int ctc_cols(int D) { return D > 64 ? D / 4 : D; }

/* K~ or V~ of x through W (w, pos): W's halves and bias into the workspace, then the GEMM. */
template <typename T>
attn_status launch_compress_tc(const attn_params *p, const T *x, const attn_stride &xs, const float *w,
                               const float *pos, int nb, T *out) {
    const int D = p->D, l = p->nsa_l, Hkv = p->Hkv;
    const size_t nw = (size_t)Hkv * l * D * D, nout = (size_t)p->B * nb * Hkv * D;
    const unsigned tiles = (unsigned)((nb + CTC_ROWS - 1) / CTC_ROWS);
    /* the k dimension (l D) in ks parts where the tiles alone would leave the SMs
     * short of CTAs (the 131M model's B 2, 3 kv heads and N 8192: 24 wide tiles,
     * 11 parts; 192 narrow ones, 4 parts); the parts' sums in fp32, added in
     * order by nsa_compress_sum_kernel */
    int sms = 0;
    attn_status st = dm_cuda_num_sms(&sms);
    if (st != ATTN_OK) return st;
    const bool wide = (D == 64 || D == 128) && nsa_cmp_wide();
    const unsigned wtiles = (unsigned)((nb + CWD_ROWS - 1) / CWD_ROWS);
    int ks;
    if (wide) {
        /* two CTAs an SM: one wave of them, the k dimension split where the tiles
         * leave more than a quarter of the places empty (at most 16 parts) */
        const long long ctas = (long long)wtiles * Hkv * p->B, slots = 2LL * sms;
        ks = 4 * ctas >= 3 * slots ? 1 : (int)std::min<long long>((slots + ctas - 1) / ctas, 16);
        ks = std::min(ks, l * D / CWD_KC);
    } else {
        const long long ctas = (long long)tiles * (D / ctc_cols(D)) * Hkv * p->B;
        ks = ctas >= 4LL * sms ? 1 : 2 * ctas >= 4LL * sms ? 2 : 4;
    }
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    char *ws = nullptr;
    const size_t wb = r256(2 * nw * sizeof(T)), bb = r256((size_t)Hkv * D * sizeof(float));
    st = dm_cuda_ws_get(&g_cws, wb + bb + (ks > 1 ? (size_t)ks * nout * sizeof(float) : 0), (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    T *whi = reinterpret_cast<T *>(ws), *wlo = whi + nw;
    float *bias = reinterpret_cast<float *>(ws + wb), *part = reinterpret_cast<float *>(ws + wb + bb);
    CUDA_CHECK(cudaMemsetAsync(bias, 0, (size_t)Hkv * D * sizeof(float)));
    nsa_cmp_w_split_kernel<T><<<dim3((unsigned)l, (unsigned)Hkv), D>>>(w, pos, l, D, whi, wlo, bias);
    CUDA_CHECK_LAUNCH();
#define NSA_CTC(DD)                                                                                                   \
    nsa_compress_tc_kernel<T, DD, ctc_cols(DD)>                                                                        \
        <<<dim3(tiles * (DD / ctc_cols(DD)) * ks, (unsigned)Hkv, (unsigned)p->B), 128>>>(                             \
            x, xs.b, xs.s, xs.h, Hkv, l, p->nsa_d, nb, whi, wlo, bias, out, ks, part)
#define NSA_CWD(DD)                                                                                                   \
    do {                                                                                                              \
        CUDA_CHECK(cudaFuncSetAttribute(nsa_compress_wide_kernel<T, DD>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                        (int)cwd_smem_bytes<DD>()));                                                  \
        nsa_compress_wide_kernel<T, DD><<<dim3(wtiles * ks, (unsigned)Hkv, (unsigned)p->B), 256,                       \
                                          cwd_smem_bytes<DD>()>>>(x, xs.b, xs.s, xs.h, Hkv, l, p->nsa_d, nb, whi, wlo, \
                                                                  bias, out, ks, part);                               \
    } while (0)
    if (wide && D == 128) NSA_CWD(128);
    else if (wide) NSA_CWD(64);
    else switch (D) {
    case 16: NSA_CTC(16); break;
    case 32: NSA_CTC(32); break;
    case 64: NSA_CTC(64); break;
    default: NSA_CTC(128);
    }
#undef NSA_CTC
#undef NSA_CWD
    CUDA_CHECK_LAUNCH();
    if (ks > 1) {
        nsa_compress_sum_kernel<T><<<(unsigned)std::min<size_t>((nout / 4 + 255) / 256, 4096), 256>>>(
            part, ks, nout, Hkv, D, bias, out);
        CUDA_CHECK_LAUNCH();
    }
    return ATTN_OK;
}

/* The compression's backward into the rows on the tensor cores
 * (nsa_cmp_bwd_rows_tc_kernel) where it applies: the linear compression, D of 16,
 * 32, 64 or 128, l a multiple of d with l / d <= CBT_J, and its shared memory within
 * what the device allows; DMABENCH_NSA_CMP_TC=0 runs the fp32 kernels. *smem: its
 * dynamic shared memory. */
int nsa_cmp_bwd_tc_ok(const attn_params *p, size_t optin, size_t *smem) {
    static const bool on = !dm_env_is("DMABENCH_NSA_CMP_TC", "0");
    const int D = p->D, l = p->nsa_l, d = p->nsa_d;
    if (!on || p->nsa_cmp != NSA_CMP_LINEAR || (D != 16 && D != 32 && D != 64 && D != 128)) return 0;
    if (l % d || l / d > CBT_J) return 0;
    const int AR = CTC_ROWS + l / d - 1;
    *smem = 2 * (size_t)AR * (D + 8) * 2 + 2 * (size_t)CBT_ST * cbt_cols(D) * (cbt_kw(D) + 8) * 2;
    return *smem <= optin;
}

dm_cuda_ws g_cbw; /* W's bf16 halves in W's layout, for the rows' backward */

/* dacc += the rows' share of dK~ through W (w): W's halves into the workspace, then the GEMM. */
template <typename T>
attn_status launch_cmp_bwd_rows_tc(const attn_params *p, const float *dkc, const T *dkc_t, const float *w, int nb,
                                   size_t smem, float *dacc, T *out, const attn_stride &os, bool *wrote) {
    *wrote = false;
    const int D = p->D, l = p->nsa_l, d = p->nsa_d, Hkv = p->Hkv, Nk = p->Nk;
    const size_t nw = (size_t)Hkv * l * D * D;
    __nv_bfloat16 *whi = nullptr;
    attn_status st = dm_cuda_ws_get(&g_cbw, 2 * nw * sizeof(__nv_bfloat16), (void **)&whi, nullptr);
    if (st != ATTN_OK) return st;
    __nv_bfloat16 *wlo = whi + nw;
    nsa_cmp_w_nat_kernel<<<(unsigned)std::min<size_t>((nw + 255) / 256, 4096), 256>>>(w, nw, whi, wlo);
    CUDA_CHECK_LAUNCH();
    const long long ncp = ((long long)Nk + d - 1) / d;
    const unsigned tiles = (unsigned)((ncp + CTC_ROWS - 1) / CTC_ROWS);
    /* dK~ came out of the engine in T and went to fp32 unchanged (convert): with bf16
     * its lo half is zero, and the product lo hi is left out */
    const bool lo = p->dtype != ATTN_DTYPE_BF16;
    size_t optin = 0;
    if ((st = dm_cuda_smem_optin(&optin)) != ATTN_OK) return st;
    const size_t wsmem = D == 128 ? cbw_smem_bytes<128>(l / d, lo) : cbw_smem_bytes<64>(l / d, lo);
    if ((D == 64 || D == 128) && nsa_cmp_wide() && wsmem <= optin) {
        /* (tile, t') units over two CTAs an SM: tper consecutive t' a CTA where there
         * are more units than places, spread evenly over the d */
        int sms = 0;
        if ((st = dm_cuda_num_sms(&sms)) != ATTN_OK) return st;
        const unsigned wtiles = (unsigned)((ncp + CBW_ROWS - 1) / CBW_ROWS);
        const long long units = (long long)wtiles * Hkv * p->B * d;
        int tper = (int)std::max<long long>(1, std::min<long long>(d, units / (2LL * sms)));
        tper = (d + (d + tper - 1) / tper - 1) / ((d + tper - 1) / tper);
        const int tsplit = (d + tper - 1) / tper; /* as the kernel works it out */
        /* dK~ in bf16 as the engine wrote it (its fp32 copy holds the same values) */
        const __nv_bfloat16 *dkcb = lo ? nullptr : reinterpret_cast<const __nv_bfloat16 *>(dkc_t);
        /* the caller's dK (or dV) in T where its rows take 4-byte stores */
        T *to = out && !((os.b | os.s | os.h) & 1) && !(reinterpret_cast<uintptr_t>(out) & 3) ? out : nullptr;
#define NSA_CBW(DD, LO)                                                                                              \
    do {                                                                                                             \
        CUDA_CHECK(cudaFuncSetAttribute(nsa_cmp_bwd_rows_wide_kernel<T, DD, LO>,                                     \
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)wsmem));                  \
        nsa_cmp_bwd_rows_wide_kernel<T, DD, LO>                                                                      \
            <<<dim3(wtiles * tsplit, (unsigned)Hkv, (unsigned)p->B), 256, wsmem>>>(dkc, nb, Hkv, l, d, Nk, tper, whi, \
                                                                                   wlo, dacc, to, os, dkcb);         \
    } while (0)
        if (D == 128 && lo) NSA_CBW(128, true);
        else if (D == 128) NSA_CBW(128, false);
        else if (lo) NSA_CBW(64, true);
        else NSA_CBW(64, false);
#undef NSA_CBW
        CUDA_CHECK_LAUNCH();
        *wrote = to != nullptr;
        return ATTN_OK;
    }
#define NSA_CBT_L(DD, DN, LO)                                                                                        \
    do {                                                                                                             \
        CUDA_CHECK(cudaFuncSetAttribute(nsa_cmp_bwd_rows_tc_kernel<DD, DN, LO>,                                      \
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));                   \
        nsa_cmp_bwd_rows_tc_kernel<DD, DN, LO>                                                                       \
            <<<dim3(tiles * (DD / DN) * CBT_TS, (unsigned)Hkv, (unsigned)p->B), 128, smem>>>(                        \
            dkc, nb, Hkv, l, d, Nk, whi, wlo, dacc);                                                                 \
    } while (0)
#define NSA_CBT(DD)                                                                                                  \
    do {                                                                                                             \
        if (lo) NSA_CBT_L(DD, cbt_cols(DD), true);                                                                   \
        else NSA_CBT_L(DD, cbt_cols(DD), false);                                                                     \
    } while (0)
    switch (D) {
    case 16: NSA_CBT(16); break;
    case 32: NSA_CBT(32); break;
    case 64: NSA_CBT(64); break;
    default: NSA_CBT(128);
    }
#undef NSA_CBT
#undef NSA_CBT_L
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* nsa_pick_blocks' single-scan version (each lane's best four in registers) by
 * default; DMABENCH_NSA_PICK=argmax runs the repeated warp argmax. */
int nsa_pick_top() {
    static const bool on = !dm_env_is("DMABENCH_NSA_PICK", "argmax");
    return on;
}

struct NsaDims {
    int B, Nq, Nk, Hq, Hkv, D, G, l, d, ls, nb, ns, nsel;
};

NsaDims nsa_dims(const attn_params *p) {
    NsaDims z;
    z.B = p->B, z.Nq = p->Nq, z.Nk = p->Nk, z.Hq = p->Hq, z.Hkv = p->Hkv, z.D = p->D, z.G = p->Hq / p->Hkv;
    z.l = p->nsa_l, z.d = p->nsa_d, z.ls = p->nsa_ls;
    z.nb = (int)nsa_num_cmp_blocks(p);
    z.ns = (int)(((long long)p->Nk + z.ls - 1) / z.ls);
    z.nsel = (int)std::min<long long>(std::max(p->nsa_n, 3), z.ns);
    return z;
}

/* Where the branches go: K~, V~ (kc, vc, kcb bytes each), O_cmp and O_slc
 * (contiguous), O_win (owin, owin_st), the selection and the three lse planes. */
template <typename T> struct NsaBufs {
    T *kc, *vc, *ocmp, *oslc, *owin;
    attn_stride owin_st;
    int *sel;
    float *lse;
    size_t kcb;
    unsigned long long *counts = nullptr; /* in a saved area: the selected branch's counts */
    char *lists = nullptr;                /* in a saved area: the pairs' lists (nsa_slc_lists_bytes) */
};

/* Steps 1-5: compression, the three branches and the selection. */
template <typename T> attn_status nsa_branches(const attn_params *p, const NsaBufs<T> &bf) {
    const NsaDims z = nsa_dims(p);
    const int B = z.B, Nq = z.Nq, Nk = z.Nk, Hq = z.Hq, Hkv = z.Hkv, D = z.D, G = z.G;
    const int l = z.l, d = z.d, ls = z.ls, nb = z.nb, ns = z.ns, nsel = z.nsel;
    T *kc = bf.kc, *vc = bf.vc, *ocmp = bf.ocmp, *oslc = bf.oslc;
    int *sel = bf.sel;
    const size_t kcb = bf.kcb;
    const size_t plane = (size_t)B * Hq * Nq;
    float *lse = bf.lse;
    const attn_stride cst = {(int64_t)Nq * Hq * D, (int64_t)Hq * D, D};
    attn_status st;
    /* the selection time: the compression and the selection, two spans */
    int span;
    if ((st = dm_cuda_span_begin(p->stats, &span)) != ATTN_OK) return st;
    /* 1. compression */
    const int linear = p->nsa_cmp == NSA_CMP_LINEAR;
    const size_t blk_smem = (size_t)((NSA_CB - 1) * d + l) * D * sizeof(float);
    size_t optin = 0;
    const bool tc = linear && nb > 0 && nsa_cmp_tc_ok(p);
    if (!tc && linear && nb > 0 && nsa_cmp_blk_fwd() && (st = dm_cuda_smem_optin(&optin)) != ATTN_OK) return st;
    if (tc) {
        if ((st = launch_compress_tc<T>(p, static_cast<const T *>(p->k), p->k_st, (const float *)p->w_ck,
                                        (const float *)p->p_k, nb, kc)) != ATTN_OK ||
            (st = launch_compress_tc<T>(p, static_cast<const T *>(p->v), p->v_st, (const float *)p->w_cv,
                                        (const float *)p->p_v, nb, vc)) != ATTN_OK)
            return st;
    } else if (linear && nb > 0 && nsa_cmp_blk_fwd() && blk_smem <= optin) {
        CUDA_CHECK(cudaFuncSetAttribute(nsa_compress_blk_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)blk_smem));
        dim3 grid((nb + NSA_CB - 1) / NSA_CB, Hkv, B);
        nsa_compress_blk_kernel<T><<<grid, D, blk_smem>>>(static_cast<const T *>(p->k), p->k_st.b, p->k_st.s, p->k_st.h,
                                                          Nk, Hkv, D, l, d, nb, (const float *)p->w_ck,
                                                          (const float *)p->p_k, kc);
        CUDA_CHECK_LAUNCH();
        nsa_compress_blk_kernel<T><<<grid, D, blk_smem>>>(static_cast<const T *>(p->v), p->v_st.b, p->v_st.s, p->v_st.h,
                                                          Nk, Hkv, D, l, d, nb, (const float *)p->w_cv,
                                                          (const float *)p->p_v, vc);
        CUDA_CHECK_LAUNCH();
    } else if (nb > 0) {
        const size_t smem = (size_t)l * D * sizeof(float);
        CUDA_CHECK(cudaFuncSetAttribute(nsa_compress_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        dim3 grid(nb, Hkv, B);
        nsa_compress_kernel<T><<<grid, D, smem>>>(static_cast<const T *>(p->k), p->k_st.b, p->k_st.s, p->k_st.h, Nk, Hkv,
                                                  D, l, d, nb, linear ? (const float *)p->w_ck : nullptr,
                                                  linear ? (const float *)p->p_k : nullptr, kc);
        CUDA_CHECK_LAUNCH();
        nsa_compress_kernel<T><<<grid, D, smem>>>(static_cast<const T *>(p->v), p->v_st.b, p->v_st.s, p->v_st.h, Nk, Hkv,
                                                  D, l, d, nb, linear ? (const float *)p->w_cv : nullptr,
                                                  linear ? (const float *)p->p_v : nullptr, vc);
        CUDA_CHECK_LAUNCH();
    }
    if ((st = dm_cuda_span_end(p->stats, span)) != ATTN_OK) return st;
    /* 2. compressed branch: block c at key position c d + l - 1 */
    {
        attn_params pc = *p;
        pc.Nk = nb > 0 ? nb : 1; /* no block: every row is empty */
        pc.k = kc, pc.v = vc;
        attn_stride kst = {(int64_t)(nb > 0 ? nb : 1) * Hkv * D, (int64_t)Hkv * D, D};
        pc.k_st = pc.v_st = kst;
        pc.o = ocmp, pc.o_st = cst;
        pc.lse = lse;
        cuda_attn_spec s = {};
        s.kpos_mul = d;
        s.kpos_add = nb > 0 ? l - 1 : INT_MAX / 2; /* with no block, the one placeholder is never visible */
        s.qoff = (long long)Nk - Nq;
        if (nb == 0) {
            CUDA_CHECK(cudaMemsetAsync(kc, 0, kcb));
            CUDA_CHECK(cudaMemsetAsync(vc, 0, kcb));
        }
        st = cuda_attn_forward(&pc, &s);
        if (st != ATTN_OK) return st;
    }
    /* 3. selection */
    {
        if ((st = dm_cuda_span_begin(p->stats, &span)) != ATTN_OK) return st;
        SelArgs a;
        a.q = p->q, a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
        a.kc = kc, a.lse0 = lse, a.sel = sel;
        a.B = B, a.Nq = Nq, a.Nk = Nk, a.Hq = Hq, a.Hkv = Hkv, a.G = G, a.D = D, a.nb = nb, a.ns = ns, a.nsel = nsel;
        a.l = l, a.d = d, a.ls = ls, a.n = p->nsa_n;
        a.scale = (float)p->scale;
        a.pick_top = nsa_pick_top();
        a.sel_mma_cols = nsa_sel_mma_cols(l, d, ls, &a.sel_mma_step);
        int qt = 0;
        size_t tc_smem = 0;
        if (nsa_tc_enabled() && (st = select_tc_tile(G, ns, D, sizeof(T), &a, &qt, &tc_smem)) != ATTN_OK)
            return st;
        if (qt > 0) {
            if ((st = launch_select_tc<T>(a, qt, tc_smem)) != ATTN_OK) return st;
        } else {
            const int wpb = 4;
            const size_t smem = (size_t)wpb * (ns + 1) * sizeof(float) + (((size_t)wpb * ns + 15) & ~(size_t)15) +
                                (size_t)wpb * G * D * sizeof(float);
            CUDA_CHECK(cudaFuncSetAttribute(nsa_select_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            const long long items = (long long)B * Hkv * Nq;
            nsa_select_kernel<T><<<(unsigned)((items + wpb - 1) / wpb), wpb * 32, smem>>>(a);
            CUDA_CHECK_LAUNCH();
        }
        if ((st = dm_cuda_span_end(p->stats, span)) != ATTN_OK) return st;
    }
    /* 4. selected branch */
    {
        SlcArgs a;
        a.q = p->q, a.k = p->k, a.v = p->v, a.o = oslc, a.lse1 = lse + plane, a.sel = sel;
        a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
        a.ksb = p->k_st.b, a.kss = p->k_st.s, a.ksh = p->k_st.h;
        a.vsb = p->v_st.b, a.vss = p->v_st.s, a.vsh = p->v_st.h;
        a.B = B, a.Nq = Nq, a.Nk = Nk, a.Hq = Hq, a.Hkv = Hkv, a.G = G, a.D = D, a.nsel = nsel, a.ls = ls;
        a.scale_log2 = (float)(p->scale * 1.4426950408889634);
        if ((st = nsa_slc_forward<T>(a, ns, bf.counts, bf.lists)) != ATTN_OK) return st;
    }
    /* 5. window branch, lse plane 2 */
    {
        attn_params pw = *p;
        pw.o = bf.owin, pw.o_st = bf.owin_st;
        pw.lse = lse + 2 * plane;
        cuda_attn_spec s = {};
        s.window = p->w;
        st = cuda_attn_forward(&pw, &s);
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}


/* What the forward keeps for the backward in attn_params.saved, in this order:
 * K~, V~ (kcb bytes each), O_cmp, O_slc, O_win (ob each, (B, Nq, Hq, D) contiguous),
 * the selection (selb), the selected branch's counts (NSA_COUNTS_BYTES) and its
 * pairs' lists (listb, 0 where none are kept). The lse planes are the caller's
 * (attn_params.lse). */
constexpr size_t NSA_COUNTS_BYTES = 256; /* the selected branch's two counts (slc_choose_pairs) */

struct NsaSaved {
    size_t kcb, ob, selb, listb;
    size_t total() const { return 2 * kcb + 3 * ob + selb + NSA_COUNTS_BYTES + listb; }
};

NsaSaved nsa_saved_layout(const NsaDims &z, size_t esize) {
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    NsaSaved s;
    s.kcb = r256((size_t)z.B * (z.nb > 0 ? z.nb : 1) * z.Hkv * z.D * esize);
    s.ob = r256((size_t)z.B * z.Nq * z.Hq * z.D * esize);
    s.selb = r256((size_t)z.B * z.Hkv * z.Nq * z.nsel * sizeof(int));
    s.listb = nsa_slc_lists_bytes(z.B, z.Hkv, z.Nq, z.nsel, z.ns, z.G, z.D);
    return s;
}

/* The branches' buffers inside a saved area laid out as nsa_saved_layout says. */
template <typename T> void nsa_saved_bufs(char *base, const NsaSaved &s, const NsaDims &z, NsaBufs<T> *bf) {
    bf->kcb = s.kcb;
    bf->kc = reinterpret_cast<T *>(base), bf->vc = reinterpret_cast<T *>(base + s.kcb);
    bf->ocmp = reinterpret_cast<T *>(base + 2 * s.kcb), bf->oslc = reinterpret_cast<T *>(base + 2 * s.kcb + s.ob);
    bf->owin = reinterpret_cast<T *>(base + 2 * s.kcb + 2 * s.ob);
    bf->owin_st = {(int64_t)z.Nq * z.Hq * z.D, (int64_t)z.Hq * z.D, z.D};
    bf->sel = reinterpret_cast<int *>(base + 2 * s.kcb + 3 * s.ob);
    bf->counts = reinterpret_cast<unsigned long long *>(base + 2 * s.kcb + 3 * s.ob + s.selb);
    bf->lists = s.listb ? base + 2 * s.kcb + 3 * s.ob + s.selb + NSA_COUNTS_BYTES : nullptr;
}

/* The caller's saved area (attn_params.saved), or NULL: with DMABENCH_NSA_SAVED=0
 * the operator ignores it, the forward keeping nothing and the backward running the
 * branches again, as without one. */
char *nsa_saved_area(const attn_params *p) {
    static const bool off = dm_env_is("DMABENCH_NSA_SAVED", "0");
    return off ? nullptr : static_cast<char *>(p->saved);
}

template <typename T> attn_status nsa_forward_t(const attn_params *p) {
    const NsaDims z = nsa_dims(p);
    const NsaSaved sv = nsa_saved_layout(z, sizeof(T));
    NsaBufs<T> bf;
    attn_status st;
    char *kept = nsa_saved_area(p);
    if (kept) { /* everything the backward reads, kept; O_win too */
        nsa_saved_bufs<T>(kept, sv, z, &bf);
    } else {
        char *ws;
        st = dm_cuda_ws_get(&g_nws, 2 * sv.kcb + 2 * sv.ob + sv.selb, (void **)&ws, nullptr);
        if (st != ATTN_OK) return st;
        bf.kcb = sv.kcb;
        bf.kc = reinterpret_cast<T *>(ws), bf.vc = reinterpret_cast<T *>(ws + sv.kcb);
        bf.ocmp = reinterpret_cast<T *>(ws + 2 * sv.kcb), bf.oslc = reinterpret_cast<T *>(ws + 2 * sv.kcb + sv.ob);
        bf.sel = reinterpret_cast<int *>(ws + 2 * sv.kcb + 2 * sv.ob);
        bf.owin = static_cast<T *>(p->o), bf.owin_st = p->o_st; /* the window branch straight into o */
    }
    bf.lse = static_cast<float *>(p->lse);
    if ((st = nsa_branches<T>(p, bf)) != ATTN_OK) return st;
    /* 6. o = g_cmp O_cmp + g_slc O_slc + g_win O_win */
    const long long n = (long long)z.B * z.Nq * z.Hq * z.D;
    const auto al16 = [](const void *x) { return reinterpret_cast<uintptr_t>(x) % 16 == 0; };
    if (dm_vec8(p->o, p->o_st, z.D) && al16(bf.ocmp) && al16(bf.oslc) && (!kept || al16(bf.owin)))
        nsa_combine_kernel<T, 8><<<(unsigned)((n / 8 + 255) / 256), 256>>>(
            static_cast<T *>(p->o), p->o_st.b, p->o_st.s, p->o_st.h, bf.ocmp, bf.oslc, kept ? bf.owin : nullptr,
            (const float *)p->g, z.B, z.Nq, z.Hq, z.D);
    else
        nsa_combine_kernel<T, 1><<<(unsigned)((n + 255) / 256), 256>>>(
            static_cast<T *>(p->o), p->o_st.b, p->o_st.s, p->o_st.h, bf.ocmp, bf.oslc, kept ? bf.owin : nullptr,
            (const float *)p->g, z.B, z.Nq, z.Hq, z.D);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}


template <typename T> attn_status nsa_backward_t(const attn_params *p) {
    const NsaDims z = nsa_dims(p);
    const int B = z.B, Nq = z.Nq, Nk = z.Nk, Hq = z.Hq, Hkv = z.Hkv, D = z.D, G = z.G, nb = z.nb;
    const int linear = p->nsa_cmp == NSA_CMP_LINEAR;
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    const size_t nqe = (size_t)B * Nq * Hq * D, nke = (size_t)B * Nk * Hkv * D;
    const size_t nce = (size_t)B * (nb > 0 ? nb : 1) * Hkv * D;
    const size_t kcb = r256(nce * sizeof(T)), ob = r256(nqe * sizeof(T)), kb = r256(nke * sizeof(T));
    const size_t selb = r256((size_t)B * Hkv * Nq * z.nsel * sizeof(int)), lseb = r256(3 * (size_t)B * Hq * Nq * 4);
    const size_t qa = r256(nqe * 4), ka = r256(nke * 4), ca = r256(nce * 4), sb = r256((size_t)NSA_CS_SPLIT * Hkv * D * 4);
    /* with the forward's saved area, the branches' buffers are there and the lse
     * planes are the caller's */
    char *kept = nsa_saved_area(p);
    /* one pass over the rows for dg, the gated dO of all three branches and their
     * Dsum (nsa_bwd_rows_kernel): 16-byte loads where dO takes them, else (and with
     * DMABENCH_NSA_BWD_ROWS=scalar) one element a load */
    static const bool scalar = dm_env_is("DMABENCH_NSA_BWD_ROWS", "scalar");
    const bool vec8 = !scalar && D % 8 == 0 && dm_vec8(p->dout, p->do_st, D);
    const size_t plane = (size_t)B * Hq * Nq;
    const size_t gdb = 3 * ob, dsb = r256(3 * plane * sizeof(float));
    /* T: [kc vc ocmp oslc owin] dout_s (x3) dq_t dk_t dv_t dkc_t dvc_t; [sel; lse]; fp32: dq dk dv dkc
     * dvc, the column sums of dkc or dvc, [the three Dsum planes] */
    const size_t total =
        (kept ? 2 * kcb + ob : 4 * kcb + 4 * ob + selb + lseb) + gdb + 2 * kb + qa + 2 * ka + 2 * ca + 2 * sb + dsb;
    char *ws;
    attn_status st = dm_cuda_ws_get(&g_nws, total, (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    char *c = ws;
    auto take = [&](size_t n) {
        char *r = c;
        c += n;
        return r;
    };
    NsaBufs<T> bf;
    if (kept) {
        nsa_saved_bufs<T>(kept, nsa_saved_layout(z, sizeof(T)), z, &bf);
    } else {
        bf.kcb = kcb;
        bf.kc = reinterpret_cast<T *>(take(kcb)), bf.vc = reinterpret_cast<T *>(take(kcb));
        bf.ocmp = reinterpret_cast<T *>(take(ob)), bf.oslc = reinterpret_cast<T *>(take(ob));
        bf.owin = reinterpret_cast<T *>(take(ob));
    }
    const attn_stride cst = {(int64_t)Nq * Hq * D, (int64_t)Hq * D, D};
    const attn_stride kst = {(int64_t)Nk * Hkv * D, (int64_t)Hkv * D, D};
    const attn_stride ccst = {(int64_t)(nb > 0 ? nb : 1) * Hkv * D, (int64_t)Hkv * D, D};
    bf.owin_st = cst;
    T *dout_s = reinterpret_cast<T *>(take(gdb)), *dq_t = reinterpret_cast<T *>(take(ob));
    T *dk_t = reinterpret_cast<T *>(take(kb)), *dv_t = reinterpret_cast<T *>(take(kb));
    T *dkc_t = reinterpret_cast<T *>(take(kcb)), *dvc_t = reinterpret_cast<T *>(take(kcb));
    if (kept) {
        bf.lse = static_cast<float *>(p->lse);
    } else {
        bf.sel = reinterpret_cast<int *>(take(selb));
        bf.lse = reinterpret_cast<float *>(take(lseb));
    }
    float *dq_a = reinterpret_cast<float *>(take(qa));
    float *dk_a = reinterpret_cast<float *>(take(ka)), *dv_a = reinterpret_cast<float *>(take(ka));
    float *dkc_a = reinterpret_cast<float *>(take(ca)), *dvc_a = reinterpret_cast<float *>(take(ca));
    float *colsum = reinterpret_cast<float *>(take(2 * sb)); /* dK~'s, then dV~'s */
    float *dsum = reinterpret_cast<float *>(take(dsb));

    /* without a saved area: the forward's branches again, into scratch (o and lse as
     * the caller gave them are inputs) */
    if (!kept && (st = nsa_branches<T>(p, bf)) != ATTN_OK) return st;
    const size_t gstride = ob / sizeof(T);
    {
        const int v = vec8 ? 8 : 1;
        int lpr = 32; /* lanes per row */
        while (lpr > 1 && lpr * v > D) lpr >>= 1;
        const long long rpb = 8LL * (32 / lpr); /* rows per block of 8 warps */
        const unsigned nblk = (unsigned)((plane + rpb - 1) / rpb);
        if (vec8)
            nsa_bwd_rows_kernel<T, 8><<<nblk, 256>>>(static_cast<const T *>(p->dout), p->do_st.b, p->do_st.s,
                                                     p->do_st.h, bf.ocmp, bf.oslc, bf.owin, (const float *)p->g,
                                                     static_cast<float *>(p->dg), dout_s, gstride, dsum, plane, B, Nq,
                                                     Hq, D, lpr);
        else
            nsa_bwd_rows_kernel<T, 1><<<nblk, 256>>>(static_cast<const T *>(p->dout), p->do_st.b, p->do_st.s,
                                                     p->do_st.h, bf.ocmp, bf.oslc, bf.owin, (const float *)p->g,
                                                     static_cast<float *>(p->dg), dout_s, gstride, dsum, plane, B, Nq,
                                                     Hq, D, lpr);
        CUDA_CHECK_LAUNCH();
    }
    CUDA_CHECK(cudaMemsetAsync(dq_a, 0, qa));
    /* branch w's gated dO (w: 0 compressed, 1 selected, 2 window) and its Dsum */
    auto gated = [&](int w) { return dout_s + w * gstride; };
    auto branch_dsum = [&](int w) -> const float * { return dsum + w * plane; };
    /* window branch */
    {
        attn_params pw = *p;
        pw.o = bf.owin, pw.o_st = cst;
        pw.lse = bf.lse + 2 * plane;
        pw.dout = gated(2), pw.do_st = cst;
        pw.dq = dq_t, pw.dq_st = cst;
        pw.dk = dk_t, pw.dk_st = kst;
        pw.dv = dv_t, pw.dv_st = kst;
        cuda_attn_spec s = {};
        s.window = p->w;
        s.dq_add = dq_a;
        s.dsum = branch_dsum(2);
        if ((st = cuda_attn_backward(&pw, &s, nullptr)) != ATTN_OK) return st;
        /* the first branch into dk_a and dv_a: set, not added (no memset before) */
        if ((st = convert<T, float>(dk_t, kst, dk_a, kst, B, Nk, Hkv, D)) != ATTN_OK ||
            (st = convert<T, float>(dv_t, kst, dv_a, kst, B, Nk, Hkv, D)) != ATTN_OK)
            return st;
    }
    /* selected branch */
    {
        SlcBwdArgs a;
        a.q = p->q, a.k = p->k, a.v = p->v, a.oslc = bf.oslc, a.dout = gated(1);
        a.lse1 = bf.lse + plane, a.sel = bf.sel;
        a.dq = dq_a, a.dk = dk_a, a.dv = dv_a, a.dsum = branch_dsum(1);
        a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
        a.ksb = p->k_st.b, a.kss = p->k_st.s, a.ksh = p->k_st.h;
        a.vsb = p->v_st.b, a.vss = p->v_st.s, a.vsh = p->v_st.h;
        a.B = B, a.Nq = Nq, a.Nk = Nk, a.Hq = Hq, a.Hkv = Hkv, a.G = G, a.D = D, a.nsel = z.nsel, a.ls = z.ls;
        a.scale = (float)p->scale;
        if ((st = nsa_slc_backward<T>(a, z.ns, bf.counts, kept != nullptr, kept ? bf.lists : nullptr)) != ATTN_OK)
            return st;
    }
    /* compressed branch, then through the compression */
    bool dk_done = false, dv_done = false; /* the compression's rows wrote p->dk, p->dv */
    const size_t nw = (size_t)Hkv * z.l * D * D, np = (size_t)Hkv * z.l * D;
    if (linear) {
        CUDA_CHECK(cudaMemsetAsync(p->dp_k, 0, np * 4));
        CUDA_CHECK(cudaMemsetAsync(p->dp_v, 0, np * 4));
    }
    if (nb > 0) {
        attn_params pc = *p;
        pc.Nk = nb;
        pc.k = bf.kc, pc.v = bf.vc, pc.k_st = pc.v_st = ccst;
        pc.o = bf.ocmp, pc.o_st = cst;
        pc.lse = bf.lse;
        pc.dout = gated(0), pc.do_st = cst;
        pc.dq = dq_t, pc.dq_st = cst;
        pc.dk = dkc_t, pc.dk_st = ccst;
        pc.dv = dvc_t, pc.dv_st = ccst;
        cuda_attn_spec s = {};
        s.kpos_mul = z.d;
        s.kpos_add = z.l - 1;
        s.qoff = (long long)Nk - Nq;
        s.dq_add = dq_a;
        s.dsum = branch_dsum(0);
        if ((st = cuda_attn_backward(&pc, &s, nullptr)) != ATTN_OK) return st;
        /* the first writer of dkc_a and dvc_a: set, not added (no memset before) */
        if ((st = convert<T, float>(dkc_t, ccst, dkc_a, ccst, B, nb, Hkv, D)) != ATTN_OK ||
            (st = convert<T, float>(dvc_t, ccst, dvc_a, ccst, B, nb, Hkv, D)) != ATTN_OK)
            return st;
        const size_t rb_smem = (size_t)(NSA_CB + (NSA_CB - 1) * z.d + z.l) * D * sizeof(float);
        size_t optin = 0, tc_smem = 0;
        if ((st = dm_cuda_smem_optin(&optin)) != ATTN_OK) return st;
        /* into the rows: dK += dK~ W^T (linear) or dK~ / l (mean) */
        bool rows_pos = false; /* whether the rows' kernel added dpos too */
        if (nsa_cmp_bwd_tc_ok(p, optin, &tc_smem)) {
            if ((st = launch_cmp_bwd_rows_tc<T>(p, dkc_a, dkc_t, (const float *)p->w_ck, nb, tc_smem, dk_a,
                                                static_cast<T *>(p->dk), p->dk_st, &dk_done)) != ATTN_OK ||
                (st = launch_cmp_bwd_rows_tc<T>(p, dvc_a, dvc_t, (const float *)p->w_cv, nb, tc_smem, dv_a,
                                                static_cast<T *>(p->dv), p->dv_st, &dv_done)) != ATTN_OK)
                return st;
        } else if (nsa_cmp_blk_bwd() && rb_smem <= optin) {
            CUDA_CHECK(cudaFuncSetAttribute(nsa_cmp_bwd_rows_blk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)rb_smem));
            dim3 gb((nb + NSA_CB - 1) / NSA_CB, Hkv, B);
            nsa_cmp_bwd_rows_blk_kernel<<<gb, D, rb_smem>>>(dkc_a, nb, Hkv, D, z.l, z.d, Nk,
                                                            linear ? (const float *)p->w_ck : nullptr, dk_a);
            CUDA_CHECK_LAUNCH();
            nsa_cmp_bwd_rows_blk_kernel<<<gb, D, rb_smem>>>(dvc_a, nb, Hkv, D, z.l, z.d, Nk,
                                                            linear ? (const float *)p->w_cv : nullptr, dv_a);
            CUDA_CHECK_LAUNCH();
        } else {
            dim3 grid(nb, Hkv, B);
            nsa_cmp_bwd_rows_kernel<<<grid, D, D * sizeof(float)>>>(dkc_a, nb, Hkv, D, z.l, z.d, Nk,
                                                                    linear ? (const float *)p->w_ck : nullptr, dk_a,
                                                                    linear ? (float *)p->dp_k : nullptr);
            CUDA_CHECK_LAUNCH();
            nsa_cmp_bwd_rows_kernel<<<grid, D, D * sizeof(float)>>>(dvc_a, nb, Hkv, D, z.l, z.d, Nk,
                                                                    linear ? (const float *)p->w_cv : nullptr, dv_a,
                                                                    linear ? (float *)p->dp_v : nullptr);
            CUDA_CHECK_LAUNCH();
            rows_pos = true;
        }
        /* linear, per tensor u (0 K, 1 V): dK~'s column sums per kv head (in parts, into
         * colsum + u sb), where a reader below takes them; dpos += W S (where the rows'
         * kernel did not add it); dW = X^T dK~ + pos S^T, for both tensors in one
         * launch of nsa_cmp_dw_kernel where it applies to both (the
         * one-thread-per-weight kernel sums its own) */
        if (linear) {
            CmpDwArgs<T> wa;
            wa.x[0] = static_cast<const T *>(p->k), wa.x[1] = static_cast<const T *>(p->v);
            wa.xs[0] = p->k_st, wa.xs[1] = p->v_st;
            wa.dkc[0] = dkc_t, wa.dkc[1] = dvc_t;
            wa.pos[0] = (const float *)p->p_k, wa.pos[1] = (const float *)p->p_v;
            wa.dw[0] = (float *)p->dw_ck, wa.dw[1] = (float *)p->dw_cv;
            wa.B = B, wa.nb = nb, wa.Hkv = Hkv, wa.l = z.l, wa.d = z.d;
            const float *dc[2] = {dkc_a, dvc_a}, *w[2] = {(const float *)p->w_ck, (const float *)p->w_cv};
            float *dpos[2] = {(float *)p->dp_k, (float *)p->dp_v};
            const bool tc_dw = nsa_cmp_blk_bwd() && cmp_dw_applies<T>(p->k, p->k_st, dkc_t, D) &&
                               cmp_dw_applies<T>(p->v, p->v_st, dvc_t, D);
            for (int u = 0; u < 2; u++) {
                float *cs = colsum + u * (sb / sizeof(float));
                wa.csum[u] = cs;
                if (!rows_pos || tc_dw) {
                    nsa_cmp_colsum_kernel<<<dim3((unsigned)Hkv, NSA_CS_SPLIT), NSA_CS_THREADS>>>(
                        dc[u], (long long)B * nb, Hkv, D, cs);
                    CUDA_CHECK_LAUNCH();
                }
                if (!rows_pos) {
                    nsa_cmp_bwd_pos_kernel<<<dim3((unsigned)z.l, (unsigned)Hkv), D, D * sizeof(float)>>>(
                        cs, Hkv, D, z.l, w[u], dpos[u]);
                    CUDA_CHECK_LAUNCH();
                }
                if (!tc_dw) {
                    nsa_cmp_bwd_w_kernel<T><<<dim3((unsigned)(z.l * D), (unsigned)Hkv), D>>>(
                        wa.x[u], wa.xs[u].b, wa.xs[u].s, wa.xs[u].h, wa.pos[u], dc[u], B, nb, Hkv, D, z.l, z.d,
                        wa.dw[u]);
                    CUDA_CHECK_LAUNCH();
                }
            }
            if (tc_dw && (st = launch_cmp_dw<T>(wa, D)) != ATTN_OK) return st;
        }
    } else if (linear) {
        CUDA_CHECK(cudaMemsetAsync(p->dw_ck, 0, nw * 4));
        CUDA_CHECK(cudaMemsetAsync(p->dw_cv, 0, nw * 4));
    }
    /* the accumulated gradients into the caller's tensors (dK and dV where the
     * compression's rows did not write them) */
    if ((st = convert<float, T>(dq_a, cst, p->dq, p->dq_st, B, Nq, Hq, D)) != ATTN_OK) return st;
    if (!dk_done && (st = convert<float, T>(dk_a, kst, p->dk, p->dk_st, B, Nk, Hkv, D)) != ATTN_OK) return st;
    return dv_done ? ATTN_OK : convert<float, T>(dv_a, kst, p->dv, p->dv_st, B, Nk, Hkv, D);
}

} // namespace

extern "C" int nsa_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    if (!cuda_attn_supports(p, ATTN_NSA, backward, why, why_len)) return 0;
    auto no = [&](const char *msg) {
        if (why && why_len) snprintf(why, why_len, "%s", msg);
        return 0;
    };
    if (p->D > 128) return no("the cuda nsa takes head dims up to 128");
    if (p->Hq / p->Hkv > NSA_MAXG) return no("the cuda nsa takes at most 16 query heads per kv head");
    long long ns = ((long long)p->Nk + p->nsa_ls - 1) / p->nsa_ls;
    if ((ns + 1) * 4 * 5 + 4LL * 16 * 128 * 4 > 200 * 1024) return no("the cuda nsa keeps at most about 8000 selection blocks");
    if ((long long)p->nsa_l * p->D * 4 > 200 * 1024) return no("the cuda nsa compresses blocks of at most 200 KB");
    return 1;
}

extern "C" size_t nsa_cuda_saved_bytes(const attn_params *p) {
    const size_t esize = p->dtype == ATTN_DTYPE_F16 ? sizeof(__half) : sizeof(__nv_bfloat16); /* fp32 runs in bf16 */
    return nsa_saved_layout(nsa_dims(p), esize).total();
}

extern "C" attn_status nsa_cuda_forward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && nsa_cuda_supports(p, 0, nullptr, 0)) return cuda_f32_forward(p, nsa_cuda_forward);
    if (!nsa_cuda_supports(p, 0, nullptr, 0))
        return attn_params_check(p, ATTN_NSA, 0, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    return p->dtype == ATTN_DTYPE_BF16 ? nsa_forward_t<__nv_bfloat16>(p) : nsa_forward_t<__half>(p);
}

extern "C" attn_status nsa_cuda_backward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && nsa_cuda_supports(p, 1, nullptr, 0)) return cuda_f32_backward(p, nsa_cuda_backward);
    if (!nsa_cuda_supports(p, 1, nullptr, 0))
        return attn_params_check(p, ATTN_NSA, 1, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    return p->dtype == ATTN_DTYPE_BF16 ? nsa_backward_t<__nv_bfloat16>(p) : nsa_backward_t<__half>(p);
}
