/*
 * cuda_decode.cu: the decode path (see cuda_decode.h).
 *
 * 1. decode_split_kernel, grid (row tile x key split, kv head, batch), 128 threads.
 *    A key's D elements are read by D/8 lanes (a "key group"), 16 bytes each; a CTA
 *    has 128 / (D/8) groups (16 at D = 128) and each group takes KU keys per step,
 *    so a step reads NG * KU keys (64 at D = 128) with all its loads issued before
 *    any arithmetic, and prefetches the next step's rows into L2. Every lane holds the rows' 8 query elements of its slice in
 *    registers (scaled by s log2 e), so a logit is 8 FMAs per lane and a butterfly
 *    over the group's lanes (which leaves the same bits in every lane: each step adds
 *    the same two numbers on both sides). Each group keeps its own online softmax
 *    (m, l, O slice); at the end the groups of a warp merge by shuffles, the warps
 *    through shared memory, and the CTA writes the split's partial (m, l, O), O
 *    unnormalised, m in log2 units.
 * 2. decode_combine_kernel, one CTA of D threads per (batch, head, query): merges
 *    the splits (rescale by 2^(m_s - M)), writes O in the input dtype and
 *    lse = (M + log2 L) ln 2, or O = 0 and lse = -inf when no split saw a key.
 * 3. dma (Nq = 1): sel_pass_kernel, one launch per 13-bit digit of the 64-bit key
 *    (5 launches: bits 63-51, 50-38, 37-25, 24-12, 11-0), grid (key chunk, kv head,
 *    batch). Each CTA histograms the digit of the keys that match the prefix found so
 *    far (shared-memory counts, lanes with the same bin add once through a leader),
 *    adds its counts to the (batch, kv head)'s global histogram, and the last CTA to
 *    arrive (threadfence + arrival counter) scans it from the top bin, extends the
 *    prefix and writes the new state. The select is done as soon as the bin holding
 *    the w-th largest key is taken whole (its count equals the rank still needed):
 *    then exactly the keys with (key & mask) >= prefix are the top w (the later
 *    launches return at once). Once few keys match the prefix (<= 65536), a pass
 *    also copies them out, and the next passes read that buffer instead of z.
 *    sel_compact_kernel then writes the indices of the selected keys (exactly w)
 *    to the (batch, kv head)'s list; their order is that of the atomics.
 *    The global histograms and counters are zero between calls: the last CTA of a
 *    pass clears what it read, and the workspace is zeroed when it is (re)allocated
 *    or when a call stopped part way.
 */
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_common.cuh"
#include "cuda_decode.h"
#include "cuda_mma.cuh"
#include "cuda_rt.h"

namespace {
using namespace dm; /* LOG2E, fast_exp2, cvt8 */

constexpr float LN2 = 0.6931471805599453f;

constexpr int DEC_THREADS = 128;
constexpr int DEC_WARPS = DEC_THREADS / 32;

/* keys per group per step: fewer when 8 rows fill the registers */
__host__ __device__ constexpr int dec_ku(int rt) { return rt >= 8 ? 2 : 4; }
/* keys per CTA per step */
__host__ __device__ constexpr int dec_step(int d, int rt) { return DEC_THREADS / (d / 8) * dec_ku(rt); }

/* Prefetch the next step's K/V rows into L2 (1) or not (0). */
constexpr bool DEC_PREFETCH = true;

__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

/* The order dma's selection uses, as one integer: larger z first, then the larger
 * index. dma_key in cuda_attn.h, kept here so that this file does not depend on the
 * engine's header, with one difference: -0 counts as +0, so that equal z (as the
 * reference compares them) always fall to the index. */
__device__ __forceinline__ unsigned long long sel_key(float z, int j) {
    unsigned int u = z == 0.f ? 0u : __float_as_uint(z);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (unsigned int)j;
}


struct DecArgs {
    const void *q, *k, *v;
    void *o;
    float *lse;
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, osb, oss, osh;
    int B, Nq, Nk, Hq, Hkv, G;
    int R;      /* rows per kv head: G * Nq; row r is query r / G of head hkv * G + r % G */
    int nrt;    /* row tiles */
    int nsplit; /* key splits */
    int chunk;  /* keys (list positions) per split, a multiple of the step */
    float scale_log2;
    int causal, window;
    const float *z;       /* (B, Hkv, Nk) logit bias, or NULL */
    const int *list;      /* (B * Hkv, list_cap) key indices, or NULL: keys klo .. klo + nkeys - 1 */
    const int *list_len;  /* (B * Hkv) valid entries of each list */
    int list_cap;
    int klo, nkeys;
    float *part_o;   /* (B, Hq, Nq, nsplit, D) */
    float2 *part_ml; /* (B, Hq, Nq, nsplit): (m in log2 units, l) */
};

template <typename T, int D, int RT>
__global__ void __launch_bounds__(DEC_THREADS) decode_split_kernel(const DecArgs a) {
    constexpr int LPK = D / 8;              /* lanes per key */
    constexpr int NG = DEC_THREADS / LPK;   /* key groups per CTA */
    constexpr int KU = dec_ku(RT);          /* keys per group per step */
    __shared__ float s_o[DEC_WARPS][RT][D];
    __shared__ float s_m[DEC_WARPS][RT], s_l[DEC_WARPS][RT];

    const int rt = blockIdx.x % a.nrt, split = blockIdx.x / a.nrt;
    const int hkv = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int grp = tid / LPK, gl = tid % LPK, d0 = gl * 8;
    const size_t unit = (size_t)b * a.Hkv + hkv;
    const long long off = (long long)a.Nk - a.Nq;

    /* the rows: query slice (pre-scaled) and the key range each may see */
    float q[RT][8];
    int rlo[RT], rhi[RT];
#pragma unroll
    for (int r = 0; r < RT; r++) {
        const int rg = rt * RT + r;
        rlo[r] = INT_MAX, rhi[r] = -1; /* padding rows see nothing */
#pragma unroll
        for (int e = 0; e < 8; e++) q[r][e] = 0.f;
        if (rg < a.R) {
            const int qi = rg / a.G, h = hkv * a.G + rg % a.G;
            const T *qp = static_cast<const T *>(a.q) + b * a.qsb + (long long)qi * a.qss + h * a.qsh + d0;
            float f[8];
            cvt8<T>(__ldg(reinterpret_cast<const uint4 *>(qp)), f);
#pragma unroll
            for (int e = 0; e < 8; e++) q[r][e] = f[e] * a.scale_log2;
            long long lo = 0, hi = (long long)a.Nk - 1;
            if (a.causal) {
                const long long qpos = qi + off;
                hi = min(qpos, hi);
                if (a.window > 0) lo = max(0LL, qpos - a.window + 1);
            }
            if (hi >= lo) rlo[r] = (int)lo, rhi[r] = (int)hi;
        }
    }

    int nk = a.nkeys;
    const int *lst = nullptr;
    if (a.list) {
        lst = a.list + unit * a.list_cap;
        nk = min(nk, a.list_len[unit]);
    }
    const long long cbeg = (long long)split * a.chunk;
    const long long cend = min(cbeg + a.chunk, (long long)nk);
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh + d0;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh + d0;
    const float *zrow = a.z ? a.z + unit * a.Nk : nullptr;

    float m[RT], l[RT], o[RT][8];
#pragma unroll
    for (int r = 0; r < RT; r++) {
        m[r] = -INFINITY, l[r] = 0.f;
#pragma unroll
        for (int e = 0; e < 8; e++) o[r][e] = 0.f;
    }

    /* every thread runs every step (the shuffles need the whole warp) */
    for (long long p0 = cbeg; p0 < cend; p0 += NG * KU) {
        int j[KU];
#pragma unroll
        for (int u = 0; u < KU; u++) {
            const long long pos = p0 + u * NG + grp;
            j[u] = pos < cend ? (lst ? __ldg(lst + pos) : a.klo + (int)pos) : -1;
        }
        if (DEC_PREFETCH) { /* the next step's rows into L2: more bytes in flight, no registers */
#pragma unroll
            for (int u = 0; u < KU; u++) {
                const long long pos = p0 + NG * KU + u * NG + grp;
                if (pos < cend) {
                    const int jn = lst ? __ldg(lst + pos) : a.klo + (int)pos;
                    prefetch_l2(kb + (long long)jn * a.kss);
                    prefetch_l2(vb + (long long)jn * a.vss);
                }
            }
        }
        uint4 kr[KU], vr[KU];
        float zb[KU];
#pragma unroll
        for (int u = 0; u < KU; u++)
            kr[u] = j[u] >= 0 ? __ldg(reinterpret_cast<const uint4 *>(kb + (long long)j[u] * a.kss)) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < KU; u++)
            vr[u] = j[u] >= 0 ? __ldg(reinterpret_cast<const uint4 *>(vb + (long long)j[u] * a.vss)) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < KU; u++) zb[u] = zrow && j[u] >= 0 ? __ldg(zrow + j[u]) * LOG2E : 0.f;

        /* logits, log2 units: partial dot products, then the butterfly over the group */
        float s[KU][RT];
#pragma unroll
        for (int u = 0; u < KU; u++) {
            float kf[8];
            cvt8<T>(kr[u], kf);
#pragma unroll
            for (int r = 0; r < RT; r++) {
                float acc = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++) acc = fmaf(q[r][e], kf[e], acc);
                s[u][r] = acc;
            }
        }
#pragma unroll
        for (int u = 0; u < KU; u++)
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int x = LPK / 2; x > 0; x >>= 1) s[u][r] += __shfl_xor_sync(0xffffffffu, s[u][r], x);

        /* mask, bias, online softmax (values identical in all lanes of a group) */
#pragma unroll
        for (int r = 0; r < RT; r++) {
            float mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < KU; u++) {
                const bool ok = j[u] >= rlo[r] && j[u] <= rhi[r]; /* j = -1 fails: rlo >= 0 */
                s[u][r] = ok ? s[u][r] + zb[u] : -INFINITY;
                mx = fmaxf(mx, s[u][r]);
            }
            const float mnew = fmaxf(m[r], mx);
            if (mnew != m[r]) { /* mnew is finite here */
                const float alpha = m[r] == -INFINITY ? 0.f : fast_exp2(m[r] - mnew);
                l[r] *= alpha;
#pragma unroll
                for (int e = 0; e < 8; e++) o[r][e] *= alpha;
                m[r] = mnew;
            }
#pragma unroll
            for (int u = 0; u < KU; u++) {
                const float pv = m[r] == -INFINITY ? 0.f : fast_exp2(s[u][r] - m[r]);
                s[u][r] = pv;
                l[r] += pv;
            }
        }
#pragma unroll
        for (int u = 0; u < KU; u++) {
            float vf[8];
            cvt8<T>(vr[u], vf);
#pragma unroll
            for (int r = 0; r < RT; r++)
#pragma unroll
                for (int e = 0; e < 8; e++) o[r][e] = fmaf(s[u][r], vf[e], o[r][e]);
        }
    }

    /* merge the groups of each warp (partners hold the same D slice) */
#pragma unroll
    for (int x = LPK; x < 32; x <<= 1)
#pragma unroll
        for (int r = 0; r < RT; r++) {
            const float m2 = __shfl_xor_sync(0xffffffffu, m[r], x);
            const float l2 = __shfl_xor_sync(0xffffffffu, l[r], x);
            const float mn = fmaxf(m[r], m2);
            const float a1 = m[r] == -INFINITY ? 0.f : fast_exp2(m[r] - mn);
            const float a2 = m2 == -INFINITY ? 0.f : fast_exp2(m2 - mn);
            l[r] = l[r] * a1 + l2 * a2;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float o2 = __shfl_xor_sync(0xffffffffu, o[r][e], x);
                o[r][e] = o[r][e] * a1 + o2 * a2;
            }
            m[r] = mn;
        }
    if (lane < LPK) {
#pragma unroll
        for (int r = 0; r < RT; r++) {
#pragma unroll
            for (int e = 0; e < 8; e++) s_o[warp][r][d0 + e] = o[r][e];
            if (lane == 0) s_m[warp][r] = m[r], s_l[warp][r] = l[r];
        }
    }
    __syncthreads();

    /* merge the warps; write the split's partial */
    for (int idx = tid; idx < RT * D; idx += DEC_THREADS) {
        const int r = idx / D, d = idx % D, rg = rt * RT + r;
        if (rg >= a.R) continue;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, s_m[w][r]);
        float L = 0.f, acc = 0.f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            const float mw = s_m[w][r];
            const float sc = mw == -INFINITY ? 0.f : fast_exp2(mw - M);
            L += s_l[w][r] * sc;
            acc += s_o[w][r][d] * sc;
        }
        const int qi = rg / a.G, h = hkv * a.G + rg % a.G;
        const size_t row = ((size_t)b * a.Hq + h) * a.Nq + qi;
        const size_t ps = row * a.nsplit + split;
        a.part_o[ps * D + d] = acc;
        if (d == 0) a.part_ml[ps] = make_float2(M, L);
    }
}

template <typename T, int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(const DecArgs a) {
    const size_t row = blockIdx.x; /* (b * Hq + h) * Nq + qi: the lse layout */
    const int d = threadIdx.x;
    const int qi = (int)(row % a.Nq), h = (int)(row / a.Nq % a.Hq), b = (int)(row / ((size_t)a.Nq * a.Hq));
    const float2 *ml = a.part_ml + row * a.nsplit;
    const float *po = a.part_o + row * a.nsplit * D + d;
    float M = -INFINITY;
    for (int s = 0; s < a.nsplit; s++) M = fmaxf(M, ml[s].x);
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY) {
#pragma unroll 4
        for (int s = 0; s < a.nsplit; s++) {
            const float2 x = ml[s];
            const float sc = x.x == -INFINITY ? 0.f : fast_exp2(x.x - M);
            L += x.y * sc;
            acc += po[(size_t)s * D] * sc;
        }
    }
    const float inv = L > 0.f ? 1.f / L : 0.f;
    T *orow = static_cast<T *>(a.o) + b * a.osb + (long long)qi * a.oss + h * a.osh;
    orow[d] = from_f32<T>(acc * inv);
    if (d == 0) a.lse[row] = L > 0.f ? (M + log2f(L)) * LN2 : -INFINITY;
}

/* ---- dma: radix select of the top w keys, then the list ---- */

constexpr int SEL_THREADS = 512;
constexpr int SEL_WARPS = SEL_THREADS / 32;
constexpr int SEL_BITS = 13;
constexpr int SEL_BINS = 1 << SEL_BITS;
constexpr int SEL_PASSES = 5; /* 13 + 13 + 13 + 13 + 12 = 64 bits */
constexpr int SEL_UNROLL = 8;
constexpr int SEL_GRAIN = SEL_THREADS * SEL_UNROLL; /* keys per CTA iteration */
constexpr int SEL_CAND_MAX = 65536;                 /* candidate buffer per (batch, kv head) */

/* Per (batch, kv head): where the select stands. 64 bytes. */
struct SelState {
    unsigned long long prefix, mask; /* digits decided so far */
    unsigned int rank;   /* the rank (1-based, from the top) still wanted among the keys matching prefix */
    unsigned int cnt;    /* keys matching prefix */
    unsigned int done;   /* the top w are exactly the keys with (key & mask) >= prefix */
    unsigned int src;    /* 0: the passes read z; 1: they read the candidate buffer */
    unsigned int nsrc;   /* keys in the candidate buffer */
    unsigned int ncand;  /* candidates written by the current pass */
    unsigned int arrive; /* CTAs of the current pass that finished */
    unsigned int pad[5];
};

struct SelArgs {
    const float *z; /* (B, Hkv, Nk) */
    int Nk, Hkv;
    int n;          /* visible keys: [0, n) */
    int w;
    int chunk;      /* keys per CTA, a multiple of SEL_GRAIN */
    int cand_cap;
    SelState *st;             /* (B * Hkv) */
    unsigned int *ghist;      /* (B * Hkv, SEL_BINS), zero between passes */
    unsigned long long *cand; /* (B * Hkv, cand_cap) */
    int *list;                /* (B * Hkv, w) */
    int *lens;                /* (B * Hkv) */
};

__device__ __forceinline__ void sel_digit(int pass, int &shift, int &width) {
    const int top = 64 - SEL_BITS * pass; /* the bits still undecided are [0, top) */
    shift = max(0, top - SEL_BITS);
    width = top - shift;
}

/* Appends the lanes' values where take is set to out[*counter ...] (capacity cap);
 * one atomic per warp. All lanes of the warp call it. */
template <typename V>
__device__ __forceinline__ void warp_append(bool take, V val, unsigned int *counter, V *out, unsigned int cap) {
    const int lane = threadIdx.x & 31;
    const unsigned int bal = __ballot_sync(0xffffffffu, take);
    if (!bal) return;
    unsigned int base = 0;
    if (lane == 0) base = atomicAdd(counter, (unsigned int)__popc(bal));
    base = __shfl_sync(0xffffffffu, base, 0);
    if (take) {
        const unsigned int slot = base + __popc(bal & ((1u << lane) - 1u));
        if (slot < cap) out[slot] = val;
    }
}

/* Where a row's select stands when a pass starts (pass 0: nothing decided yet).
 * Read through L2 (__ldcg): in the one-launch select another CTA wrote it. */
struct SelView {
    unsigned long long prefix, mask;
    unsigned int rank, cnt, src, nsrc, done;
};

__device__ __forceinline__ SelView sel_view(const SelArgs &a, const SelState *st, int pass) {
    SelView v = {0ULL, 0ULL, (unsigned int)a.w, (unsigned int)a.n, 0u, (unsigned int)a.n, 0u};
    if (pass > 0) {
        v.prefix = __ldcg(&st->prefix), v.mask = __ldcg(&st->mask);
        v.rank = __ldcg(&st->rank), v.cnt = __ldcg(&st->cnt), v.src = __ldcg(&st->src), v.nsrc = __ldcg(&st->nsrc);
        v.done = __ldcg(&st->done);
    }
    return v;
}

/* Whether pass `pass` copies the keys matching the prefix out, for the passes after
 * it (when they are few). */
__device__ __forceinline__ bool sel_write_cand(const SelArgs &a, int pass, const SelView &v) {
    return pass > 0 && pass < SEL_PASSES - 1 && v.src == 0 && v.cnt <= (unsigned int)a.cand_cap;
}

/* One CTA's share (chunk cx of its row) of pass `pass`: the histogram of the next
 * digit of the keys that match the prefix, added into the row's global histogram.
 * MATCH: the lanes of a warp that fall in the same bin add once (__match_any_sync,
 * DMABENCH_DECODE_SEL_ATOMIC=0); without it (the default) every lane adds its own
 * count: the same histogram, no match instruction per key, and on the H200 dma's
 * decode at K = 524288 took 0.106 instead of 0.130 ms (docs/perf-notes.md c6). */
template <bool MATCH>
__device__ __forceinline__ void sel_hist(const SelArgs &a, int pass, const SelView &v, SelState *st, size_t u, int cx,
                                         unsigned int *hist) {
    const int tid = threadIdx.x, lane = tid & 31;
    int shift, width;
    sel_digit(pass, shift, width);
    const unsigned int nb = 1u << width;
    for (unsigned int i = tid; i < nb; i += SEL_THREADS) hist[i] = 0;
    __syncthreads();
    const bool write_cand = sel_write_cand(a, pass, v);
    const float *zrow = a.z + u * a.Nk;
    unsigned long long *cbuf = a.cand + u * a.cand_cap;
    const long long beg = (long long)cx * a.chunk;
    const long long end = min(beg + a.chunk, (long long)v.nsrc);
    for (long long p0 = beg; p0 < end; p0 += SEL_GRAIN) {
        unsigned long long key[SEL_UNROLL];
#pragma unroll
        for (int k = 0; k < SEL_UNROLL; k++) {
            const long long pos = p0 + k * SEL_THREADS + tid;
            key[k] = 0;
            if (pos < end) key[k] = v.src == 0 ? sel_key(__ldg(zrow + pos), (int)pos) : __ldcg(cbuf + pos);
        }
#pragma unroll
        for (int k = 0; k < SEL_UNROLL; k++) {
            const long long pos = p0 + k * SEL_THREADS + tid;
            const bool in = pos < end && (key[k] & v.mask) == v.prefix;
            const unsigned int bin = in ? (unsigned int)(key[k] >> shift) & (nb - 1) : nb;
            if (MATCH) {
                const unsigned int peers = __match_any_sync(0xffffffffu, bin);
                if (in && lane == __ffs(peers) - 1) atomicAdd(&hist[bin], (unsigned int)__popc(peers));
            } else if (in) {
                atomicAdd(&hist[bin], 1u);
            }
            if (write_cand) warp_append(in, key[k], &st->ncand, cbuf, (unsigned int)a.cand_cap);
        }
    }
    __syncthreads();
    unsigned int *g = a.ghist + u * SEL_BINS;
    for (unsigned int i = tid; i < nb; i += SEL_THREADS) {
        const unsigned int c = hist[i];
        if (c) atomicAdd(&g[i], c);
    }
}

/* After every CTA of the row added its histogram of pass `pass`: the digit where
 * the count from the top reaches the rank still wanted, into the row's state (by
 * one CTA; the global histogram is left zero for the next pass). */
__device__ __forceinline__ void sel_scan(const SelArgs &a, int pass, const SelView &v, SelState *st, size_t u,
                                         unsigned int *hist, unsigned int *wsum) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int shift, width;
    sel_digit(pass, shift, width);
    const unsigned int nb = 1u << width;
    unsigned int *g = a.ghist + u * SEL_BINS;
    for (unsigned int i = tid; i < nb; i += SEL_THREADS) {
        hist[i] = __ldcg(&g[i]);
        g[i] = 0; /* clean for the next pass */
    }
    __syncthreads();

    /* thread t owns bins top - t*per .. top - t*per - per + 1 (from the top); an
     * inclusive scan of their sums finds the bin where the count reaches rank */
    const int per = (int)nb / SEL_THREADS;
    const int top = (int)nb - 1 - tid * per;
    unsigned int sum = 0;
    for (int k = 0; k < per; k++) sum += hist[top - k];
    unsigned int x = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) wsum[warp] = x;
    __syncthreads();
    if (warp == 0) {
        unsigned int t = lane < SEL_WARPS ? wsum[lane] : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned int y = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += y;
        }
        if (lane < SEL_WARPS) wsum[lane] = t;
    }
    __syncthreads();
    const unsigned int incl = x + (warp > 0 ? wsum[warp - 1] : 0u), excl = incl - sum;
    if (excl < v.rank && v.rank <= incl) { /* exactly one thread */
        unsigned int cum = excl, c = 0;
        int d = top;
        for (int k = 0; k < per; k++) {
            d = top - k;
            c = hist[d];
            if (cum + c >= v.rank) break;
            cum += c;
        }
        const unsigned int nr = v.rank - cum;
        const bool write_cand = sel_write_cand(a, pass, v);
        st->prefix = v.prefix | ((unsigned long long)d << shift);
        st->mask = v.mask | ((unsigned long long)(nb - 1) << shift);
        st->rank = nr;
        st->cnt = c;
        st->done = c == nr || pass == SEL_PASSES - 1;
        const unsigned int nc = atomicExch(&st->ncand, 0u);
        st->src = write_cand ? 1u : v.src;
        st->nsrc = write_cand ? min(nc, (unsigned int)a.cand_cap) : v.nsrc;
        st->arrive = 0;
        a.lens[u] = 0; /* the compaction counts from zero */
    }
}

/* One pass of the select per launch (SEL_PASSES launches, then the compaction):
 * the last CTA of each row to finish its histogram scans it. */
template <bool MATCH>
__global__ void __launch_bounds__(SEL_THREADS, 4) sel_pass_kernel(const SelArgs a, int pass) {
    __shared__ unsigned int hist[SEL_BINS];
    __shared__ unsigned int wsum[SEL_WARPS];
    __shared__ int s_last;
    const size_t u = (size_t)blockIdx.z * a.Hkv + blockIdx.y;
    SelState *st = a.st + u;
    const SelView v = sel_view(a, st, pass);
    if (v.done) return;
    sel_hist<MATCH>(a, pass, v, st, u, blockIdx.x, hist);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(&st->arrive, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    sel_scan(a, pass, v, st, u, hist, wsum);
}

/* The selected keys' indices of chunk cx of row u into the row's list. */
__device__ __forceinline__ void sel_compact(const SelArgs &a, size_t u, int cx) {
    const unsigned long long prefix = __ldcg(&a.st[u].prefix), mask = __ldcg(&a.st[u].mask);
    const float *zrow = a.z + u * a.Nk;
    int *out = a.list + u * a.w;
    const long long beg = (long long)cx * a.chunk;
    const long long end = min(beg + a.chunk, (long long)a.n);
    for (long long p0 = beg; p0 < end; p0 += SEL_GRAIN) {
        float zv[SEL_UNROLL];
#pragma unroll
        for (int k = 0; k < SEL_UNROLL; k++) {
            const long long pos = p0 + k * SEL_THREADS + threadIdx.x;
            zv[k] = pos < end ? __ldg(zrow + pos) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < SEL_UNROLL; k++) {
            const long long pos = p0 + k * SEL_THREADS + threadIdx.x;
            const bool take = pos < end && (sel_key(zv[k], (int)pos) & mask) >= prefix;
            warp_append(take, (int)pos, reinterpret_cast<unsigned int *>(a.lens + u), out, (unsigned int)a.w);
        }
    }
}

/* A barrier over the whole grid (launched cooperatively, so every CTA is resident):
 * bar[0] counts arrivals, bar[1] is the generation the last arrival moves on. */
__device__ __forceinline__ void grid_barrier(unsigned int *bar, unsigned int nctas) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned int *gen = bar + 1;
        const unsigned int g0 = *gen;
        __threadfence();
        if (atomicAdd(bar, 1u) == nctas - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (*gen == g0) __nanosleep(32);
        }
        __threadfence();
    }
    __syncthreads();
}

/* The whole select and the compaction in one cooperative launch (the default;
 * DMABENCH_DECODE_SEL_COOP=0 gives the launch per pass): the passes are separated
 * by grid barriers instead of launches, the first CTA of each row scans its
 * histogram, and the passes stop as soon as every row is done (two for random z
 * at K = 524288, where the launch per pass ran three more that returned at once). */
template <bool MATCH>
__global__ void __launch_bounds__(SEL_THREADS, 2) sel_coop_kernel(const SelArgs a, unsigned int *bar, int units) {
    __shared__ unsigned int hist[SEL_BINS];
    __shared__ unsigned int wsum[SEL_WARPS];
    const size_t u = (size_t)blockIdx.z * a.Hkv + blockIdx.y;
    SelState *st = a.st + u;
    const unsigned int nctas = gridDim.x * gridDim.y * gridDim.z;
    for (int pass = 0; pass < SEL_PASSES; pass++) {
        const SelView v = sel_view(a, st, pass);
        if (!v.done) sel_hist<MATCH>(a, pass, v, st, u, blockIdx.x, hist);
        grid_barrier(bar, nctas);
        if (!v.done && blockIdx.x == 0) sel_scan(a, pass, v, st, u, hist, wsum);
        grid_barrier(bar, nctas);
        /* every CTA sees the same states here, so all leave the loop together */
        const int mine = threadIdx.x < units ? (int)__ldcg(&a.st[threadIdx.x].done) : 1;
        if (__syncthreads_and(mine)) break;
    }
    sel_compact(a, u, blockIdx.x);
}

/* The selected keys' indices into the list of their (batch, kv head). */
__global__ void __launch_bounds__(SEL_THREADS) sel_compact_kernel(const SelArgs a) {
    sel_compact(a, (size_t)blockIdx.z * a.Hkv + blockIdx.y, blockIdx.x);
}

/* ---- host side ---- */

typedef void (*dec_kernel_t)(const DecArgs);

template <typename T, int D> dec_kernel_t dec_kernel_rt(int rt) {
    switch (rt) {
    case 1: return decode_split_kernel<T, D, 1>;
    case 2: return decode_split_kernel<T, D, 2>;
    case 4: return decode_split_kernel<T, D, 4>;
    default: return decode_split_kernel<T, D, 8>;
    }
}

dec_kernel_t dec_kernel(attn_dtype dt, int D, int rt) {
    if (dt == ATTN_DTYPE_BF16) return D == 64 ? dec_kernel_rt<__nv_bfloat16, 64>(rt) : dec_kernel_rt<__nv_bfloat16, 128>(rt);
    return D == 64 ? dec_kernel_rt<__half, 64>(rt) : dec_kernel_rt<__half, 128>(rt);
}

dec_kernel_t combine_kernel(attn_dtype dt, int D) {
    if (dt == ATTN_DTYPE_BF16) return D == 64 ? decode_combine_kernel<__nv_bfloat16, 64> : decode_combine_kernel<__nv_bfloat16, 128>;
    return D == 64 ? decode_combine_kernel<__half, 64> : decode_combine_kernel<__half, 128>;
}

int g_nsm = 0;
int g_occ[2][2][4]; /* resident CTAs per SM of each decode kernel: [bf16][D == 128][log2 rt] */

attn_status num_sms(int *n) {
    if (g_nsm <= 0) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&g_nsm, cudaDevAttrMultiProcessorCount, dev));
        if (g_nsm <= 0) g_nsm = 1;
    }
    *n = g_nsm;
    return ATTN_OK;
}

size_t r256(size_t x) { return (x + 255) & ~(size_t)255; }

struct DecPlan {
    int rt, nrt, nsplit, chunk;
    dec_kernel_t kern;
    size_t o_bytes, ml_bytes; /* partials */
};

/* A positive integer tuning knob from the environment (read once per name), or def.
 * DMABENCH_DECODE_WAVES: waves of resident CTAs the key splits fill (default 2);
 * DMABENCH_DECODE_SEL_CTAS: dma decode's select CTAs per SM (default 4);
 * (DMABENCH_DECODE_SEL_ATOMIC=0, read in dma_decode: the select's histogram with
 * __match_any_sync.) For measuring sweeps; reports record them
 * (provenance.run.environment). */
int env_knob(const char *name, int def) {
    const char *e = getenv(name);
    const int v = e ? atoi(e) : 0;
    return v > 0 ? v : def;
}

/* Row tiles and key splits for nkeys keys (or list entries) per (batch, kv head):
 * enough splits for one full wave of resident CTAs (DMABENCH_DECODE_WAVES). */
attn_status plan_decode(const attn_params *p, long long nkeys, DecPlan *pl) {
    const long long R = (long long)(p->Hq / p->Hkv) * p->Nq;
    pl->rt = R <= 1 ? 1 : R <= 2 ? 2 : R <= 4 ? 4 : 8;
    pl->nrt = (int)((R + pl->rt - 1) / pl->rt);
    pl->kern = dec_kernel(p->dtype, p->D, pl->rt);
    int &occ = g_occ[p->dtype == ATTN_DTYPE_BF16][p->D == 128][pl->rt == 1 ? 0 : pl->rt == 2 ? 1 : pl->rt == 4 ? 2 : 3];
    if (occ <= 0) {
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, pl->kern, DEC_THREADS, 0));
        if (occ <= 0) occ = 1;
    }
    int nsm;
    attn_status st = num_sms(&nsm);
    if (st != ATTN_OK) return st;
    const long long per_split = (long long)pl->nrt * p->Hkv * p->B;
    static const int waves = env_knob("DMABENCH_DECODE_WAVES", 2);
    const long long target = (long long)occ * nsm * waves;
    const long long want = std::max(1LL, (target + per_split - 1) / per_split);
    const long long step = dec_step(p->D, pl->rt);
    long long chunk = (nkeys + want - 1) / want;
    chunk = std::max(step, (chunk + step - 1) / step * step);
    pl->chunk = (int)std::min(chunk, (long long)INT_MAX / 2);
    pl->nsplit = nkeys > 0 ? (int)((nkeys + pl->chunk - 1) / pl->chunk) : 1;
    const size_t rows = (size_t)p->B * p->Hq * p->Nq;
    pl->o_bytes = r256(rows * pl->nsplit * p->D * sizeof(float));
    pl->ml_bytes = r256(rows * pl->nsplit * sizeof(float2));
    return ATTN_OK;
}

/* Workspaces kept between calls (timing loops must not measure cudaMalloc). */
dm_cuda_ws g_part; /* the splits' partials */
dm_cuda_ws g_sel;  /* dma: select state and histograms first, then candidates, lists, z */
/* The select's state and histograms must be zero when a select starts (the last
 * CTA of each pass clears what it used). They are cleared here when the buffer is
 * new, when the number of (batch, kv head) rows (and so their place) changed, or
 * when a call stopped after queuing part of a select. */
long long g_sel_units = -1;
bool g_sel_dirty = true;

void fill_args(const attn_params *p, int window, DecArgs *a) {
    memset(a, 0, sizeof *a);
    a->q = p->q, a->k = p->k, a->v = p->v, a->o = p->o;
    a->lse = static_cast<float *>(p->lse);
    a->qsb = p->q_st.b, a->qss = p->q_st.s, a->qsh = p->q_st.h;
    a->ksb = p->k_st.b, a->kss = p->k_st.s, a->ksh = p->k_st.h;
    a->vsb = p->v_st.b, a->vss = p->v_st.s, a->vsh = p->v_st.h;
    a->osb = p->o_st.b, a->oss = p->o_st.s, a->osh = p->o_st.h;
    a->B = p->B, a->Nq = p->Nq, a->Nk = p->Nk, a->Hq = p->Hq, a->Hkv = p->Hkv, a->G = p->Hq / p->Hkv;
    a->R = a->G * p->Nq;
    a->scale_log2 = (float)(p->scale * 1.4426950408889634);
    a->causal = p->causal;
    a->window = window;
}

attn_status run_decode(const attn_params *p, const DecPlan &pl, DecArgs *a, char *part) {
    a->nrt = pl.nrt;
    a->nsplit = pl.nsplit;
    a->chunk = pl.chunk;
    a->part_o = reinterpret_cast<float *>(part);
    a->part_ml = reinterpret_cast<float2 *>(part + pl.o_bytes);
    const dim3 grid((unsigned)(pl.nrt * pl.nsplit), (unsigned)p->Hkv, (unsigned)p->B);
    pl.kern<<<grid, DEC_THREADS>>>(*a);
    CUDA_CHECK_LAUNCH();
    const size_t rows = (size_t)p->B * p->Hq * p->Nq;
    const dec_kernel_t comb = combine_kernel(p->dtype, p->D);
    comb<<<(unsigned)rows, p->D>>>(*a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

cudaEvent_t g_ev[2];

} // namespace

extern "C" int cuda_decode_applies(const attn_params *p, attn_variant v) {
    if (p->D != 64 && p->D != 128) return 0; /* the decode kernels' head dims; others take the engine */
    if (v == ATTN_DMA) return p->Nq == 1;
    if (v == ATTN_MHA || v == ATTN_SWA) return p->Nq <= CUDA_DECODE_MAX_NQ;
    return 0;
}

extern "C" attn_status cuda_decode_forward(const attn_params *p, int window) {
    /* the keys any query of the call may see: [lo, hi] (query 0 starts the window,
     * the last query ends the causal range) */
    const long long off = (long long)p->Nk - p->Nq;
    long long lo = 0, hi = (long long)p->Nk - 1;
    if (p->causal) {
        hi = std::min(hi, (long long)p->Nq - 1 + off);
        if (window > 0) lo = std::max(0LL, off - window + 1);
    }
    const long long n = hi >= lo ? hi - lo + 1 : 0;
    DecPlan pl;
    attn_status st = plan_decode(p, n, &pl);
    if (st != ATTN_OK) return st;
    char *ws;
    if ((st = dm_cuda_ws_get(&g_part, pl.o_bytes + pl.ml_bytes, (void **)&ws, nullptr)) != ATTN_OK) return st;
    DecArgs a;
    fill_args(p, window, &a);
    a.klo = (int)(n > 0 ? lo : 0);
    a.nkeys = (int)n;
    return run_decode(p, pl, &a, ws);
}

extern "C" attn_status cuda_decode_dma_forward(const attn_params *p, cuda_decode_score_fn score) {
    const size_t units = (size_t)p->B * p->Hkv;
    const long long n = attn_visible(p, 0); /* Nq = 1: all Nk keys */
    const bool select = n > p->w;
    const long long nlist = select ? p->w : n;
    DecPlan pl;
    attn_status st = plan_decode(p, nlist, &pl);
    if (st != ATTN_OK) return st;
    int nsm;
    if ((st = num_sms(&nsm)) != ATTN_OK) return st;

    /* the select in one cooperative launch when the device takes it and every
     * (batch, kv head) row gets a resident CTA; else a launch per pass */
    static const bool sel_atomic = !dm_env_is("DMABENCH_DECODE_SEL_ATOMIC", "0");
    static const bool want_coop = !dm_env_is("DMABENCH_DECODE_SEL_COOP", "0");
    static int coop_occ = -1; /* resident CTAs per SM of the cooperative kernel; 0: no cooperative launch */
    if (coop_occ < 0) {
        int dev = 0, coop = 0, occ = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
        if (coop)
            CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &occ, sel_atomic ? sel_coop_kernel<false> : sel_coop_kernel<true>, SEL_THREADS, 0));
        coop_occ = coop ? occ : 0;
    }
    /* (the kernel checks the rows' done flags with one thread per row) */
    const bool use_coop = want_coop && coop_occ > 0 && (long long)coop_occ * nsm >= (long long)units &&
                          units <= (size_t)SEL_THREADS;
    /* select chunks: about 4 CTAs per SM over all (batch, kv head) rows; as many as
     * stay resident for the cooperative launch */
    static const int sel_ctas = env_knob("DMABENCH_DECODE_SEL_CTAS", 4);
    const long long want = use_coop ? std::max(1LL, (long long)coop_occ * nsm / (long long)units)
                                    : std::max(1LL, ((long long)sel_ctas * nsm + (long long)units - 1) / (long long)units);
    long long chunk = std::max((long long)SEL_GRAIN, ((n + want - 1) / want + SEL_GRAIN - 1) / SEL_GRAIN * SEL_GRAIN);
    const long long min_chunk = (n + 65534) / 65535; /* gridDim.x stays within 65535 */
    if (chunk < min_chunk) chunk = (min_chunk + SEL_GRAIN - 1) / SEL_GRAIN * SEL_GRAIN;
    const int nchunks = (int)((n + chunk - 1) / chunk);
    const int cand_cap = (int)std::min<long long>(n, SEL_CAND_MAX);

    /* workspaces: the partials; state | histograms | candidates | lists | lengths | z */
    const size_t sb = r256(units * sizeof(SelState) + 2 * sizeof(unsigned int)); /* + the grid barrier's words */
    const size_t hb = r256(units * SEL_BINS * sizeof(unsigned int));
    const size_t cb = r256(units * cand_cap * sizeof(unsigned long long));
    const size_t lb = r256(units * p->w * sizeof(int));
    const size_t nb = r256(units * sizeof(int));
    const size_t zb = p->w_dt ? r256(units * p->Nk * sizeof(float)) : 0;
    char *part, *ws;
    int fresh = 0;
    if ((st = dm_cuda_ws_get(&g_part, pl.o_bytes + pl.ml_bytes, (void **)&part, nullptr)) != ATTN_OK) return st;
    if ((st = dm_cuda_ws_get(&g_sel, sb + hb + cb + lb + nb + zb, (void **)&ws, &fresh)) != ATTN_OK) return st;
    if (fresh) g_sel_dirty = true;
    if (select && (g_sel_dirty || g_sel_units != (long long)units)) {
        CUDA_CHECK(cudaMemsetAsync(ws, 0, sb + hb));
        g_sel_units = (long long)units;
        g_sel_dirty = false;
    }
    SelArgs sa;
    char *cur = ws;
    sa.st = reinterpret_cast<SelState *>(cur);
    unsigned int *bar = reinterpret_cast<unsigned int *>(cur + units * sizeof(SelState));
    cur += sb;
    sa.ghist = reinterpret_cast<unsigned int *>(cur);
    cur += hb;
    sa.cand = reinterpret_cast<unsigned long long *>(cur);
    cur += cb;
    sa.list = reinterpret_cast<int *>(cur);
    cur += lb;
    sa.lens = reinterpret_cast<int *>(cur);
    cur += nb;
    float *zbuf = reinterpret_cast<float *>(cur);

    if (p->stats) {
        if (!g_ev[0]) {
            CUDA_CHECK(cudaEventCreate(&g_ev[0]));
            CUDA_CHECK(cudaEventCreate(&g_ev[1]));
        }
        CUDA_CHECK(cudaEventRecord(g_ev[0]));
    }
    const float *z = static_cast<const float *>(p->z);
    if (p->w_dt) {
        if ((st = score(p, zbuf)) != ATTN_OK) return st;
        z = zbuf;
    }
    if (select) {
        sa.z = z;
        sa.Nk = p->Nk, sa.Hkv = p->Hkv, sa.n = (int)n, sa.w = p->w;
        sa.chunk = (int)chunk, sa.cand_cap = cand_cap;
        const dim3 grid((unsigned)nchunks, (unsigned)p->Hkv, (unsigned)p->B);
        g_sel_dirty = true; /* until every pass is queued: the histograms must end clean */
        if (use_coop) {
            int iunits = (int)units;
            void *args[] = {&sa, &bar, &iunits};
            CUDA_CHECK(cudaLaunchCooperativeKernel(
                reinterpret_cast<const void *>(sel_atomic ? sel_coop_kernel<false> : sel_coop_kernel<true>), grid,
                dim3(SEL_THREADS), args, 0, 0));
        } else {
            for (int pass = 0; pass < SEL_PASSES; pass++) {
                if (sel_atomic) sel_pass_kernel<false><<<grid, SEL_THREADS>>>(sa, pass);
                else sel_pass_kernel<true><<<grid, SEL_THREADS>>>(sa, pass);
                CUDA_CHECK_LAUNCH();
            }
            sel_compact_kernel<<<grid, SEL_THREADS>>>(sa);
            CUDA_CHECK_LAUNCH();
        }
        g_sel_dirty = false;
    }
    if (p->stats) CUDA_CHECK(cudaEventRecord(g_ev[1]));

    DecArgs a;
    fill_args(p, 0, &a);
    a.z = z;
    if (select) {
        a.list = sa.list;
        a.list_len = sa.lens;
        a.list_cap = p->w;
    }
    a.klo = 0;
    a.nkeys = (int)nlist;
    if ((st = run_decode(p, pl, &a, part)) != ATTN_OK) return st;
    if (p->z_out) CUDA_CHECK(cudaMemcpyAsync(p->z_out, z, units * p->Nk * sizeof(float), cudaMemcpyDeviceToDevice));
    if (p->stats) {
        /* waits for the selection only; the attention is already queued behind it */
        CUDA_CHECK(cudaEventSynchronize(g_ev[1]));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, g_ev[0], g_ev[1]));
        p->stats->select_ms += ms;
    }
    return ATTN_OK;
}
