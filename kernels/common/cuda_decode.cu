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
 * 3. dma (Nq = 1): the top w keys of each (batch, kv head) by their score z (ties
 *    to the larger index: sel_key), in three launches.
 *    sel_sample_kernel, one CTA per row: a radix select (cuda_select.cuh) over a
 *    strided sample of 4096 keys sets a threshold score that some 3-4 w keys
 *    reach. sel_filter_kernel, grid (key chunk, kv head, batch): one read of z,
 *    the keys at or above the threshold appended to the row's candidates (one
 *    atomic per warp). sel_final_kernel, one CTA per row: the exact select of the
 *    top w among the candidates in registers, and their indices into the row's
 *    list (order: that of the atomics). When the candidates are fewer than w or
 *    more than 8192 (ties, a sample that missed, a large w), that CTA selects over
 *    all of z instead, a pass per digit: slower, the same keys.
 *    DMABENCH_DECODE_SEL_SAMPLE=0 takes that path always (for tests).
 *    On sm_90 the final select and the attention over its list are one kernel,
 *    sel_final_attend_kernel: a cluster of FUS_C CTAs per row, each attending to
 *    the selected keys j with j % FUS_C equal to its rank and merging through
 *    distributed shared memory, in place of the final, split and combine launches
 *    (DMABENCH_DECODE_FUSED=0 keeps those three). It leaves out the filter too:
 *    each CTA of the cluster scans an eighth of the row's z into its shared
 *    memory, and all read the cluster's candidates (DMABENCH_DECODE_FUSED=1 keeps
 *    the filter kernel, the cluster kernel reading its candidates).
 * 4. On sm_90 every launch after a call's first goes out with programmatic
 *    dependent launch (dm_launch): it may start while the kernel before it ends,
 *    and waits (dm_pdl_wait) before it reads that kernel's output. The filter
 *    reads its chunk of z into L2 before it waits on the sample's threshold.
 *    DMABENCH_DECODE_PDL=0 launches them one after another.
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
#include "cuda_select.cuh"

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

    /* the query rows are inputs; the list comes from the select kernel before */
    dm_pdl_trigger();
    dm_pdl_wait();
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
    dm_pdl_wait(); /* the splits' partials */
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

/* ---- dma: the top w keys, then the list ---- */

constexpr int SEL_THREADS = 1024;                  /* the sample and final kernels: one CTA per row */
constexpr int SEL_SAMPLES = 4096;                  /* keys sampled per (batch, kv head) */
constexpr int SEL_SPT = SEL_SAMPLES / SEL_THREADS; /* samples per thread */
constexpr int SEL_KPT = 8;                         /* candidates per thread in the final select */
constexpr int SEL_CAP = SEL_THREADS * SEL_KPT;     /* candidates per (batch, kv head) */
constexpr int FLT_THREADS = 256;                   /* the filter */
constexpr int FLT_UNROLL = 4;                      /* 16-byte loads in flight per thread */
constexpr int FLT_GRAIN = FLT_THREADS * FLT_UNROLL * 4; /* keys per filter CTA iteration */
constexpr int FLT_STAGE = 2048;                    /* candidates a filter CTA gathers in shared memory */

struct SelArgs {
    const float *z; /* (B, Hkv, Nk) */
    int Nk;
    int n;      /* visible keys: [0, n) */
    int w;
    int stride; /* sample j of a row is key j * stride */
    int ns;     /* samples per row */
    int srank;  /* the rank among the samples whose score is the threshold */
    int chunk;  /* keys per filter CTA, a multiple of FLT_GRAIN */
    int exact;  /* 1: skip the sample (DMABENCH_DECODE_SEL_SAMPLE=0) */
    int scan;   /* 1: the fused kernel reads z itself, no filter (not with DMABENCH_DECODE_FUSED=1) */
    unsigned int *thr;        /* (B * Hkv) the threshold, as sel_ord of a score */
    unsigned int *ncand;      /* (B * Hkv) keys at or above it (may exceed SEL_CAP) */
    unsigned long long *cand; /* (B * Hkv, SEL_CAP) their keys */
    int *list;                /* (B * Hkv, w) */
    int *lens;                /* (B * Hkv) */
};

/* Appends the lanes' values where take is set to out[*counter ...] (capacity cap);
 * one atomic per warp; the counter counts past cap. All lanes of the warp call it. */
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

/* A signed integer in the order of sel_key's high half (o(z)): the float's bits,
 * with a negative's magnitude bits flipped; o(z) ^ 0x80000000 as a signed integer
 * but for -0 (-1 here, where o counts it as +0), which sel_tint allows for:
 * o(z) >= thr exactly when sel_sint(z) >= sel_tint(thr), three instructions a
 * score. */
__device__ __forceinline__ int sel_sint(float z) {
    const int b = __float_as_int(z);
    return b ^ ((b >> 31) & 0x7fffffff);
}
__device__ __forceinline__ int sel_tint(unsigned int thr) {
    const int t = (int)(thr ^ 0x80000000u);
    return t == 0 ? -1 : t; /* +0's order: -0 (-1 above) reaches it too */
}

/* The warp's set bits of m: returns how many all lanes hold (*tot) and how many
 * the lanes below this one hold. All lanes of the warp call it. */
__device__ __forceinline__ unsigned int warp_bits_before(unsigned int m, unsigned int *tot) {
    const int lane = threadIdx.x & 31;
    const unsigned int n = __popc(m);
    unsigned int x = n;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    *tot = __shfl_sync(0xffffffffu, x, 31);
    return x - n;
}

/* The warp's n slots (n the same in every lane): lane 31 adds n to *counter, and
 * every lane gets the counter's value before the add. All lanes of the warp call it. */
__device__ __forceinline__ unsigned int warp_reserve(unsigned int *counter, unsigned int n) {
    unsigned int base = 0;
    if ((threadIdx.x & 31) == 31) base = atomicAdd(counter, n);
    return __shfl_sync(0xffffffffu, base, 31);
}

/* key(i) for each set bit i of m, from the lowest, to out[slot], out[slot + 1], ...
 * (those below cap). */
template <typename V, typename Key>
__device__ __forceinline__ void write_bits(unsigned int m, unsigned int slot, V *out, unsigned int cap, Key key) {
    for (; m; m &= m - 1, slot++)
        if (slot < cap) out[slot] = key(__ffs(m) - 1);
}

/* The positions of the U * 4 scores z_groups loads (bit 4k + e: group k, score e)
 * whose sel_sint reaches t, below end (checked unless WHOLE). */
template <bool WHOLE, int U>
__device__ __forceinline__ unsigned int z_hits(const float (&zv)[U][4], long long pos0, int nt, long long end, int t) {
    unsigned int m = 0;
#pragma unroll
    for (int k = 0; k < U; k++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            bool in = true;
            if constexpr (!WHOLE) in = pos0 + 4 * (k * nt + (int)threadIdx.x) + e < end;
            if (in && sel_sint(zv[k][e]) >= t) m |= 1u << (4 * k + e);
        }
    return m;
}

/* U groups of four scores from a row of z: group k starts at pos0 + 4 (k nt + t),
 * t = threadIdx.x of nt threads; a 16-byte load where vec (the row is 16-byte
 * aligned) and the group ends below end, else four loads, 0 from end on. */
template <int U>
__device__ __forceinline__ void z_groups(const float *zrow, long long pos0, int nt, long long end, bool vec,
                                         float (&zv)[U][4]) {
#pragma unroll
    for (int k = 0; k < U; k++) {
        const long long pos = pos0 + 4 * (k * nt + (int)threadIdx.x);
        if (vec && pos + 3 < end) {
            const float4 v = __ldg(reinterpret_cast<const float4 *>(zrow + pos));
            zv[k][0] = v.x, zv[k][1] = v.y, zv[k][2] = v.z, zv[k][3] = v.w;
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) zv[k][e] = pos + e < end ? __ldg(zrow + pos + e) : 0.f;
        }
    }
}

/* One CTA per (batch, kv head): the threshold is the score order of about the
 * srank-th largest of the keys j * stride (j < ns; a cut keeping srank to
 * 1.25 srank of them); zeroes the filter's counter. With srank about w / stride
 * plus five standard deviations, some 3-4 w keys reach it (at K = 524288,
 * w = 1024: 25 of 4096 samples, about 3200-4000 keys expected); fewer than w
 * (Poisson(8) >= 25, about 1e-6) or more than 8192 (Poisson(64) < 31, about
 * 2e-6) only by chance: the final kernel then takes the exact path. */
__global__ void __launch_bounds__(SEL_THREADS) sel_sample_kernel(const SelArgs a) {
    __shared__ unsigned int hist[256], sred[3];
    dm_pdl_trigger(); /* the filter's CTAs may start reading z on the other SMs */
    const size_t u = blockIdx.x;
    const float *zrow = a.z + u * a.Nk;
    unsigned long long key[SEL_SPT];
#pragma unroll
    for (int k = 0; k < SEL_SPT; k++) {
        const int j = k * SEL_THREADS + threadIdx.x;
        const long long pos = (long long)j * a.stride;
        key[k] = j < a.ns ? sel_key(__ldg(zrow + pos), (int)pos) : 0ULL;
    }
    auto each = [&](auto f) {
#pragma unroll
        for (int k = 0; k < SEL_SPT; k++) f(key[k], k * SEL_THREADS + (int)threadIdx.x < a.ns);
    };
    const SelCut c = block_radix_select<true>(each, (unsigned int)a.srank, hist, sred, (unsigned int)a.srank / 4);
    if (threadIdx.x == 0) {
        /* every key the cut keeps has a score order at or above its high half */
        a.thr[u] = (unsigned int)(c.prefix >> 32);
        a.ncand[u] = 0;
    }
}

/* Grid (key chunk, kv head, batch): the keys whose score reaches the row's
 * threshold, into the row's candidates. They gather in shared memory first (a
 * shared atomic per warp that has any) and go out with one global atomic per CTA:
 * a global atomic per warp on the row's one counter cost a round trip each, in
 * series (call 3 of the fifth set: 24.6 us for 16 MB). A CTA whose keys overflow
 * the stage (scores that rise with the index, say) appends the rest directly.
 * VEC: the rows of z are 16-byte aligned (float4 loads). */
template <bool VEC>
__global__ void __launch_bounds__(FLT_THREADS, 4) sel_filter_kernel(const SelArgs a) {
    __shared__ unsigned long long stage[FLT_STAGE];
    __shared__ unsigned int scnt, sgap, sbase;
    const int lane = threadIdx.x & 31;
    const size_t u = (size_t)blockIdx.z * gridDim.y + blockIdx.y;
    const float *zrow = a.z + u * a.Nk;
    unsigned long long *out = a.cand + u * SEL_CAP;
    const long long beg = (long long)blockIdx.x * a.chunk;
    const long long end = min(beg + a.chunk, (long long)a.n);
    dm_pdl_trigger();
    /* while the sample kernel runs (launched with pdl): the chunk's z into L2, a
     * 128-byte line per thread and step */
    for (long long p = beg + 32LL * threadIdx.x; p < end; p += 32LL * FLT_THREADS) prefetch_l2(zrow + p);
    dm_pdl_wait(); /* the threshold, the zeroed count */
    const int t = sel_tint(__ldcg(a.thr + u));
    if (threadIdx.x == 0) scnt = 0, sgap = FLT_STAGE;
    __syncthreads();
    for (long long p0 = beg; p0 < end; p0 += FLT_GRAIN) {
        float zv[FLT_UNROLL][4];
        z_groups(zrow, p0, FLT_THREADS, end, VEC, zv);
        const unsigned int m = p0 + FLT_GRAIN <= end ? z_hits<true>(zv, p0, FLT_THREADS, end, t)
                                                     : z_hits<false>(zv, p0, FLT_THREADS, end, t);
        unsigned int tot;
        const unsigned int before = warp_bits_before(m, &tot);
        if (tot == 0) continue;
        const unsigned int base = warp_reserve(&scnt, tot);
        auto key = [&](int i) { /* bit i's key (its score again from z: in L1) */
            const long long pos = p0 + 4 * ((i >> 2) * FLT_THREADS + threadIdx.x) + (i & 3);
            return sel_key(__ldg(zrow + pos), (int)pos);
        };
        if (base + tot <= (unsigned int)FLT_STAGE) {
            write_bits(m, base + before, stage, (unsigned int)FLT_STAGE, key);
        } else { /* the stage is full: straight out, one global atomic for the warp */
            if (lane == 31 && base < (unsigned int)FLT_STAGE) sgap = base; /* the one warp across the end */
            write_bits(m, warp_reserve(a.ncand + u, tot) + before, out, (unsigned int)SEL_CAP, key);
        }
    }
    __syncthreads();
    /* the stage holds the reservations that fit whole: up to the warp across its end */
    const unsigned int ns = min(scnt, sgap);
    if (ns == 0) return;
    if (threadIdx.x == 0) sbase = atomicAdd(a.ncand + u, ns);
    __syncthreads();
    for (unsigned int i = threadIdx.x; i < ns; i += FLT_THREADS)
        if (sbase + i < (unsigned int)SEL_CAP) out[sbase + i] = stage[i];
}

/* The final select of row u: the exact top w keys, over the nc candidates when
 * between w and SEL_CAP keys reached the threshold (they hold the top w), in
 * registers (load(p) gives candidate p < nc); otherwise over all n keys of z, a
 * pass per digit.
 * The kept keys whose index satisfies mine(j) go to out (capacity cap) through the
 * shared counter *slen, as their indices (V = int) or whole keys (V = unsigned long
 * long, the score in the high half). The candidates all lie between the row's
 * threshold lo (a score order) and their largest score (*smax, a shared word):
 * the top bytes those two share are skipped (for scores of one exponent, the first
 * pass). The caller
 * zeroes *slen and *smax and then passes a barrier. Every thread calls it. */
template <typename V, typename Mine, typename Load>
__device__ __forceinline__ void sel_final_pick(const SelArgs &a, size_t u, unsigned int nc, unsigned int lo, Load load,
                                               Mine mine, V *out, unsigned int cap, unsigned int *slen,
                                               unsigned int *smax, unsigned int *hist, unsigned int *sred) {
    /* the exact top w of the keys each(f) visits (f(key, valid) in every thread,
     * the same number of calls in all), appended to out */
    auto pick = [&](auto each, SelCut from) {
        const SelCut c = block_radix_select<true>(each, (unsigned int)a.w, hist, sred, 0u, from);
        each([&](unsigned long long k, bool valid) {
            V val;
            if constexpr (sizeof(V) == 8) val = k;
            else val = (V)(unsigned int)k;
            warp_append(valid && sel_kept(k, c) && mine((int)(unsigned int)k), val, slen, out, cap);
        });
    };
    if (nc >= (unsigned int)a.w && nc <= (unsigned int)SEL_CAP) {
        const int kn = (int)((nc + SEL_THREADS - 1) / SEL_THREADS); /* the same in every thread */
        unsigned long long key[SEL_KPT];
        unsigned int hi = 0;
#pragma unroll
        for (int k = 0; k < SEL_KPT; k++) {
            const unsigned int p = k * SEL_THREADS + threadIdx.x;
            key[k] = p < nc ? load(p) : 0ULL;
            hi = max(hi, (unsigned int)(key[k] >> 32));
        }
        hi = __reduce_max_sync(0xffffffffu, hi);
        if ((threadIdx.x & 31) == 0) atomicMax(smax, hi);
        __syncthreads();
        const unsigned int x = *smax ^ lo;
        const int nb = x ? __clz(x) / 8 : 4; /* top bytes every candidate shares */
        SelCut from = {0ULL, 0ULL};
        if (nb > 0) {
            from.mask = ~0ULL << (64 - 8 * nb);
            from.prefix = ((unsigned long long)lo << 32) & from.mask;
        }
        pick(
            [&](auto f) {
#pragma unroll
                for (int k = 0; k < SEL_KPT; k++)
                    if (k < kn) f(key[k], k * SEL_THREADS + threadIdx.x < nc);
            },
            from);
    } else {
        const float *zrow = a.z + u * a.Nk;
        pick(
            [&](auto f) {
                for (long long p0 = 0; p0 < a.n; p0 += FLT_UNROLL * SEL_THREADS) {
                    float zv[FLT_UNROLL];
#pragma unroll
                    for (int k = 0; k < FLT_UNROLL; k++) {
                        const long long pos = p0 + k * SEL_THREADS + threadIdx.x;
                        zv[k] = pos < a.n ? __ldg(zrow + pos) : 0.f;
                    }
#pragma unroll
                    for (int k = 0; k < FLT_UNROLL; k++) {
                        const long long pos = p0 + k * SEL_THREADS + threadIdx.x;
                        f(sel_key(zv[k], (int)pos), pos < a.n);
                    }
                }
            },
            SelCut{0ULL, 0ULL});
    }
}

/* One CTA per (batch, kv head): the top w keys' indices into the row's list, for
 * the split kernel (DMABENCH_DECODE_FUSED=0, or where the fused kernel below does
 * not apply). */
__global__ void __launch_bounds__(SEL_THREADS) sel_final_kernel(const SelArgs a) {
    __shared__ unsigned int hist[256], sred[3], slen, smax;
    dm_pdl_trigger();
    if (threadIdx.x == 0) slen = 0, smax = 0;
    __syncthreads();
    dm_pdl_wait(); /* the candidates and their count */
    const size_t u = blockIdx.x;
    const unsigned long long *cand = a.cand + u * SEL_CAP;
    sel_final_pick(
        a, u, a.exact ? 0u : __ldcg(a.ncand + u), a.exact ? 0u : __ldcg(a.thr + u),
        [cand](unsigned int p) { return __ldcg(cand + p); }, [](int) { return true; }, a.list + u * a.w,
        (unsigned int)a.w, &slen, &smax, hist, sred);
    __syncthreads();
    if (threadIdx.x == 0) a.lens[u] = (int)min(slen, (unsigned int)a.w);
}

/* ---- dma: the final select and the attention in one kernel (sm_90) ----
 *
 * A cluster of FUS_C CTAs per (batch, kv head). Every CTA of the cluster runs the
 * same final select (the same candidates, so the same cut) and keeps the selected
 * keys j with j % FUS_C equal to its rank, whole (index and score) in shared
 * memory: the cluster's CTAs split the list between them with no exchange, and no
 * load of the list or of z waits in the attention. Each CTA copies its keys' K and
 * V rows into shared memory, every copy in flight at once (cp.async), then attends
 * its rows (the GQA group's G heads at Nq = 1) to its keys: a warp per row and
 * slice of keys, D/8 lanes per key as in the split kernel. The warps merge in shared memory, the cluster's CTAs through distributed
 * shared memory (CTA rank c writes the rows r with r % FUS_C == c). No partials in
 * global memory, no split or combine launch. Taken for w <= FUS_LIST. With
 * a.scan (unless DMABENCH_DECODE_FUSED=1) it also does the filter's work: CTA c scans the
 * c-th eighth of the row's z (prefetched to L2 before the wait on the sample)
 * into its K/V buffer, which is free until the attention, and every CTA reads
 * the cluster's candidates through distributed shared memory. */
constexpr int FUS_C = 8;        /* CTAs per row: a portable cluster size */
constexpr int FUS_MAXR = 32;    /* rows (G * Nq) a cluster takes: a warp per row at least */
[[maybe_unused]] constexpr int FUS_KU = 2;       /* keys per group per step (64 registers under 1024 threads) */
constexpr int FUS_LIST = 2048;  /* keys a CTA keeps: w at most */
constexpr int FUS_BUF = 16384;  /* bytes: the list, later the CTA's merged rows */
constexpr int FUS_CH = 256;     /* keys whose K and V rows sit in shared memory at once */
/* the dynamic shared memory of the fused kernel: FUS_CH keys' K and V rows */
constexpr size_t fus_dyn_bytes(int D, size_t esize) { return (size_t)FUS_CH * 2 * D * esize; }
static_assert(FUS_LIST * 8 <= FUS_BUF && FUS_MAXR * 128 * 4 <= FUS_BUF, "the fused kernel's buffer");
static_assert(fus_dyn_bytes(64, 2) >= SEL_CAP * 8, "the scan's candidates in the fused kernel's K/V buffer");

[[maybe_unused]] __device__ __forceinline__ unsigned int cluster_rank() {
    unsigned int r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
#endif
    return r;
}

/* All threads of the cluster: shared-memory writes before it are visible to every
 * CTA of the cluster after it. */
[[maybe_unused]] __device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

/* The 32- or 64-bit word *p (float, unsigned int or unsigned long long) in the
 * shared memory of the cluster's CTA of rank `rank` (after a cluster_sync that
 * follows its write). */
template <typename W>
[[maybe_unused]] __device__ __forceinline__ W ld_cluster(const W *p, unsigned int rank) {
    static_assert(sizeof(W) == 4 || sizeof(W) == 8, "a 32- or 64-bit word");
    W v{};
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const unsigned int a = (unsigned int)__cvta_generic_to_shared(p);
    unsigned int ra;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(ra) : "r"(a), "r"(rank));
    if constexpr (sizeof(W) == 8) {
        unsigned long long x;
        asm volatile("ld.shared::cluster.u64 %0, [%1];\n" : "=l"(x) : "r"(ra) : "memory");
        memcpy(&v, &x, 8);
    } else {
        unsigned int x;
        asm volatile("ld.shared::cluster.b32 %0, [%1];\n" : "=r"(x) : "r"(ra) : "memory");
        memcpy(&v, &x, 4);
    }
#endif
    return v;
}

/* The score z back from the high half of sel_key(z, j) (-0 comes back as +0). */
[[maybe_unused]] __device__ __forceinline__ float sel_score(unsigned long long key) {
    const unsigned int o = (unsigned int)(key >> 32);
    return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

template <typename T, int D>
__global__ void __launch_bounds__(SEL_THREADS) sel_final_attend_kernel(const SelArgs a, const DecArgs d) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    constexpr int LPK = D / 8;     /* lanes per key */
    constexpr int GPW = 32 / LPK;  /* key groups per warp */
    constexpr int NW = SEL_THREADS / 32;
    constexpr int KU = FUS_KU;
    constexpr int EPC = 16 / (int)sizeof(T);      /* elements per 16-byte copy */
    constexpr int CPR = D / EPC;                   /* copies per K or V row */
    extern __shared__ __align__(16) unsigned char fus_dyn[];
    T *s_kv = reinterpret_cast<T *>(fus_dyn); /* [FUS_CH][K row, V row][D] */
    __shared__ unsigned int hist[256], sred[3], slen, smax, s_nc, s_pref[FUS_C];
    __shared__ float s_o[NW][D], s_m[NW], s_l[NW];
    __shared__ __align__(16) unsigned char buf[FUS_BUF];
    __shared__ float c_m[FUS_MAXR], c_l[FUS_MAXR];
    unsigned long long *s_keys = reinterpret_cast<unsigned long long *>(buf); /* the select's keys it keeps */
    float (*c_o)[D] = reinterpret_cast<float (*)[D]>(buf);                    /* after the attention */

    const unsigned int rank = cluster_rank();
    const size_t u = blockIdx.x / FUS_C;
    const int b = (int)(u / d.Hkv), hkv = (int)(u % d.Hkv);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int R = d.R, nwr = NW / R;          /* warps per row: R <= FUS_MAXR = NW */
    const int r = warp / nwr, wi = warp % nwr; /* r >= R: a warp left over */
    const bool active = r < R;
    const int grp = lane / LPK, gl = lane % LPK, d0 = gl * 8;

    /* the row's query slice (an input: before the wait), kept as loaded (four
     * registers through the scan and the select) */
    uint4 qraw = make_uint4(0u, 0u, 0u, 0u);
    if (active) {
        const int qi = r / d.G, h = hkv * d.G + r % d.G;
        qraw = __ldg(reinterpret_cast<const uint4 *>(static_cast<const T *>(d.q) + b * d.qsb + (long long)qi * d.qss +
                                                     h * d.qsh + d0));
    }
    if (tid == 0) slen = 0, smax = 0, s_nc = 0;
    /* scan: the CTA's slice of the row's z (an eighth) towards L2 while the sample runs */
    const float *zrow = a.z + u * a.Nk;
    long long zlo = 0, zhi = 0;
    if (a.scan) {
        const long long per = ((a.n + FUS_C - 1) / FUS_C + 3) / 4 * 4;
        zlo = min((long long)a.n, (long long)rank * per);
        zhi = min((long long)a.n, zlo + per);
        for (long long p = zlo + 32LL * tid; p < zhi; p += 32LL * SEL_THREADS) prefetch_l2(zrow + p);
    }
    __syncthreads();
    dm_pdl_wait(); /* the threshold; without scan the candidates and their count */

    auto mine = [rank](int j) { return (unsigned int)j % FUS_C == rank; };
    if (a.scan) {
        /* the slice's keys at or above the threshold into the CTA's candidates (the
         * K/V buffer, free until the attention), then every CTA reads the cluster's */
        unsigned long long *s_cand = reinterpret_cast<unsigned long long *>(fus_dyn);
        const unsigned int thr = __ldcg(a.thr + u);
        const int t = sel_tint(thr);
        const bool vec = a.Nk % 4 == 0 && reinterpret_cast<uintptr_t>(zrow) % 16 == 0;
        constexpr long long STEP = 4LL * FLT_UNROLL * SEL_THREADS;
        for (long long b0 = zlo; b0 < zhi; b0 += STEP) {
            float zv[FLT_UNROLL][4];
            z_groups(zrow, b0, SEL_THREADS, zhi, vec, zv);
            const unsigned int m = b0 + STEP <= zhi ? z_hits<true>(zv, b0, SEL_THREADS, zhi, t)
                                                    : z_hits<false>(zv, b0, SEL_THREADS, zhi, t);
            unsigned int tot;
            const unsigned int before = warp_bits_before(m, &tot);
            if (tot == 0) continue;
            const unsigned int base = warp_reserve(&s_nc, tot);
            const float *zb = zrow + b0 + 4 * tid;
            const int j0 = (int)b0 + 4 * tid;
            write_bits(m, base + before, s_cand, (unsigned int)SEL_CAP, [zb, j0](int i) {
                const int off = (i >> 2) * 4 * SEL_THREADS + (i & 3); /* group i / 4, score i % 4 */
                return sel_key(__ldg(zb + off), j0 + off);
            });
        }
        cluster_sync(); /* every CTA's candidates and count */
        if (tid < FUS_C) s_pref[tid] = ld_cluster(&s_nc, tid);
        __syncthreads();
        unsigned int pref[FUS_C + 1];
        bool over = false;
        pref[0] = 0;
#pragma unroll
        for (int c = 0; c < FUS_C; c++) over |= s_pref[c] > (unsigned int)SEL_CAP, pref[c + 1] = pref[c] + s_pref[c];
        /* an overflow anywhere: past SEL_CAP, so the select reads all of z */
        const unsigned int nc = over ? (unsigned int)SEL_CAP + 1 : pref[FUS_C];
        sel_final_pick(
            a, u, nc, thr,
            [&](unsigned int p) {
                unsigned int c = 0, base = 0; /* the CTA whose candidates hold position p */
#pragma unroll
                for (int x = 1; x < FUS_C; x++)
                    if (p >= pref[x]) c = x, base = pref[x];
                return ld_cluster(s_cand + (p - base), c);
            },
            mine, s_keys, (unsigned int)FUS_LIST, &slen, &smax, hist, sred);
        cluster_sync(); /* no CTA reads another's candidates once the K/V rows land there */
    } else {
        const unsigned long long *cand = a.cand + u * SEL_CAP;
        sel_final_pick(
            a, u, a.exact ? 0u : __ldcg(a.ncand + u), a.exact ? 0u : __ldcg(a.thr + u),
            [cand](unsigned int p) { return __ldcg(cand + p); }, mine, s_keys, (unsigned int)FUS_LIST, &slen, &smax,
            hist, sred);
    }
    __syncthreads();
    const int nm = (int)min(slen, (unsigned int)FUS_LIST);

    float q[8]; /* pre-scaled */
    cvt8<T>(qraw, q);
#pragma unroll
    for (int e = 0; e < 8; e++) q[e] *= d.scale_log2;
    const T *kb = static_cast<const T *>(d.k) + b * d.ksb + hkv * d.ksh;
    const T *vb = static_cast<const T *>(d.v) + b * d.vsb + hkv * d.vsh;
    float m = -INFINITY, l = 0.f, o[8];
#pragma unroll
    for (int e = 0; e < 8; e++) o[e] = 0.f;
    /* FUS_CH keys at a time: their K and V rows into shared memory at once (every
     * copy in flight together), then each group's own online softmax over list
     * positions wi * GPW + grp, stepping by the row's nwr * GPW groups (the loop
     * bounds are the block's) */
    for (int c0 = 0; c0 < nm; c0 += FUS_CH) {
        const int cn = min(FUS_CH, nm - c0);
        for (int i = tid; i < cn * 2 * CPR; i += SEL_THREADS) {
            const int kk = i / (2 * CPR), rem = i % (2 * CPR), isv = rem / CPR, pc = rem % CPR;
            const long long j = (int)(unsigned int)s_keys[c0 + kk];
            const T *src = (isv ? vb + j * d.vss : kb + j * d.kss) + pc * EPC;
            cp16(s_kv + ((size_t)kk * 2 + isv) * D + pc * EPC, src, true);
        }
        cp_commit();
        cp_wait<0>();
        __syncthreads();
        if (active) {
            const int S = nwr * GPW;
            for (int base = wi * GPW; base < cn; base += S * KU) {
                int pk[KU];
                float zb[KU];
#pragma unroll
                for (int k = 0; k < KU; k++) {
                    const int pos = base + k * S + grp;
                    pk[k] = pos < cn ? pos : -1;
                    zb[k] = pos < cn ? sel_score(s_keys[c0 + pos]) * LOG2E : 0.f;
                }
                uint4 kr[KU], vr[KU];
                float s[KU];
#pragma unroll
                for (int k = 0; k < KU; k++) {
                    const T *row = s_kv + (size_t)(pk[k] >= 0 ? pk[k] : 0) * 2 * D + d0;
                    kr[k] = *reinterpret_cast<const uint4 *>(row);
                    vr[k] = *reinterpret_cast<const uint4 *>(row + D);
                }
#pragma unroll
                for (int k = 0; k < KU; k++) {
                    float kf[8];
                    cvt8<T>(kr[k], kf);
                    float acc = 0.f;
#pragma unroll
                    for (int e = 0; e < 8; e++) acc = fmaf(q[e], kf[e], acc);
                    s[k] = acc;
                }
#pragma unroll
                for (int k = 0; k < KU; k++)
#pragma unroll
                    for (int x = LPK / 2; x > 0; x >>= 1) s[k] += __shfl_xor_sync(0xffffffffu, s[k], x);
                float mx = -INFINITY;
#pragma unroll
                for (int k = 0; k < KU; k++) {
                    s[k] = pk[k] >= 0 ? s[k] + zb[k] : -INFINITY;
                    mx = fmaxf(mx, s[k]);
                }
                const float mnew = fmaxf(m, mx);
                if (mnew != m) { /* mnew is finite here */
                    const float alpha = m == -INFINITY ? 0.f : fast_exp2(m - mnew);
                    l *= alpha;
#pragma unroll
                    for (int e = 0; e < 8; e++) o[e] *= alpha;
                    m = mnew;
                }
#pragma unroll
                for (int k = 0; k < KU; k++) {
                    const float pv = m == -INFINITY ? 0.f : fast_exp2(s[k] - m);
                    l += pv;
                    float vf[8];
                    cvt8<T>(vr[k], vf);
#pragma unroll
                    for (int e = 0; e < 8; e++) o[e] = fmaf(pv, vf[e], o[e]);
                }
            }
        }
        __syncthreads(); /* the chunk is read before the next one lands */
    }
    /* the warp's groups (partners hold the same D slice), then the row's warps */
#pragma unroll
    for (int x = LPK; x < 32; x <<= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, x);
        const float l2 = __shfl_xor_sync(0xffffffffu, l, x);
        const float mn = fmaxf(m, m2);
        const float a1 = m == -INFINITY ? 0.f : fast_exp2(m - mn);
        const float a2 = m2 == -INFINITY ? 0.f : fast_exp2(m2 - mn);
        l = l * a1 + l2 * a2;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float o2 = __shfl_xor_sync(0xffffffffu, o[e], x);
            o[e] = o[e] * a1 + o2 * a2;
        }
        m = mn;
    }
    if (lane < LPK) {
#pragma unroll
        for (int e = 0; e < 8; e++) s_o[warp][d0 + e] = o[e];
        if (lane == 0) s_m[warp] = m, s_l[warp] = l;
    }
    __syncthreads(); /* also: every warp is done with s_keys, which c_o overwrites */
    for (int idx = tid; idx < R * D; idx += SEL_THREADS) {
        const int rr = idx / D, dd = idx % D;
        float M = -INFINITY;
        for (int w = rr * nwr; w < (rr + 1) * nwr; w++) M = fmaxf(M, s_m[w]);
        float L = 0.f, acc = 0.f;
        for (int w = rr * nwr; w < (rr + 1) * nwr; w++) {
            const float sc = s_m[w] == -INFINITY ? 0.f : fast_exp2(s_m[w] - M);
            L += s_l[w] * sc;
            acc += s_o[w][dd] * sc;
        }
        c_o[rr][dd] = acc;
        if (dd == 0) c_m[rr] = M, c_l[rr] = L;
    }
    cluster_sync();

    /* the cluster's CTAs: rank c writes rows c, c + FUS_C, ... */
    for (int idx = tid; idx < R * D; idx += SEL_THREADS) {
        const int rr = idx / D, dd = idx % D;
        if (rr % FUS_C != (int)rank) continue;
        float mc[FUS_C];
        float M = -INFINITY;
#pragma unroll
        for (int c = 0; c < FUS_C; c++) mc[c] = ld_cluster(&c_m[rr], c), M = fmaxf(M, mc[c]);
        float L = 0.f, acc = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int c = 0; c < FUS_C; c++) {
                const float sc = mc[c] == -INFINITY ? 0.f : fast_exp2(mc[c] - M);
                L += ld_cluster(&c_l[rr], c) * sc;
                acc += ld_cluster(&c_o[rr][dd], c) * sc;
            }
        }
        const float inv = L > 0.f ? 1.f / L : 0.f;
        const int qi = rr / d.G, h = hkv * d.G + rr % d.G;
        T *orow = static_cast<T *>(d.o) + b * d.osb + (long long)qi * d.oss + h * d.osh;
        orow[dd] = from_f32<T>(acc * inv);
        if (dd == 0) d.lse[((size_t)b * d.Hq + h) * d.Nq + qi] = L > 0.f ? (M + log2f(L)) * LN2 : -INFINITY;
    }
    cluster_sync(); /* no CTA leaves while another reads its shared memory */
#endif
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

int g_occ[2][2][4]; /* resident CTAs per SM of each decode kernel: [bf16][D == 128][log2 rt] */

size_t r256(size_t x) { return (x + 255) & ~(size_t)255; }

struct DecPlan {
    int rt, nrt, nsplit, chunk;
    dec_kernel_t kern;
    size_t o_bytes, ml_bytes; /* partials */
};

/* A positive integer tuning knob from the environment (read once per name), or def.
 * DMABENCH_DECODE_WAVES: waves of resident CTAs the key splits fill (default 2);
 * DMABENCH_DECODE_SEL_CTAS: dma decode's filter CTAs per SM (default 4).
 * For measuring sweeps; reports record them (provenance.run.environment). */
int env_knob(const char *name, int def) {
    const char *e = getenv(name);
    const int v = e ? atoi(e) : 0;
    return v > 0 ? v : def;
}

/* Whether the decode's launches after the first overlap their predecessor's tail
 * (programmatic dependent launch, sm_90; DMABENCH_DECODE_PDL=0 turns it off). */
bool dec_pdl() {
    static const int on = dm_cuda_sm90() && !dm_env_is("DMABENCH_DECODE_PDL", "0");
    return on;
}

/* Row tiles and key splits for nkeys keys (or list entries) per (batch, kv head):
 * enough splits for one full wave of resident CTAs (DMABENCH_DECODE_WAVES), each
 * split at least one step of keys, or with list set (dma's selected keys) at least
 * DMABENCH_DECODE_LIST_KEYS of them. */
attn_status plan_decode(const attn_params *p, long long nkeys, bool list, DecPlan *pl) {
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
    attn_status st = dm_cuda_num_sms(&nsm);
    if (st != ATTN_OK) return st;
    const long long per_split = (long long)pl->nrt * p->Hkv * p->B;
    static const int waves = env_knob("DMABENCH_DECODE_WAVES", 2);
    const long long target = (long long)occ * nsm * waves;
    const long long want = std::max(1LL, (target + per_split - 1) / per_split);
    const long long step = dec_step(p->D, pl->rt);
    static const int list_keys = env_knob("DMABENCH_DECODE_LIST_KEYS", 32);
    long long chunk = (nkeys + want - 1) / want;
    if (list) chunk = std::max(chunk, (long long)list_keys);
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
dm_cuda_ws g_sel;  /* dma: thresholds and counts, candidates, lists, z */

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

/* The split and combine kernels; pdl_split: the split kernel follows dma's select
 * (the combine always follows the split). */
attn_status run_decode(const attn_params *p, const DecPlan &pl, DecArgs *a, char *part, bool pdl_split) {
    a->nrt = pl.nrt;
    a->nsplit = pl.nsplit;
    a->chunk = pl.chunk;
    a->part_o = reinterpret_cast<float *>(part);
    a->part_ml = reinterpret_cast<float2 *>(part + pl.o_bytes);
    const dim3 grid((unsigned)(pl.nrt * pl.nsplit), (unsigned)p->Hkv, (unsigned)p->B);
    CUDA_CHECK(dm_launch(pl.kern, grid, dim3(DEC_THREADS), pdl_split && dec_pdl(), *a));
    const size_t rows = (size_t)p->B * p->Hq * p->Nq;
    const dec_kernel_t comb = combine_kernel(p->dtype, p->D);
    CUDA_CHECK(dm_launch(comb, dim3((unsigned)rows), dim3(p->D), dec_pdl(), *a));
    return ATTN_OK;
}

typedef void (*fused_kernel_t)(const SelArgs, const DecArgs);

fused_kernel_t fused_kernel(attn_dtype dt, int D) {
    if (dt == ATTN_DTYPE_BF16) return D == 64 ? sel_final_attend_kernel<__nv_bfloat16, 64> : sel_final_attend_kernel<__nv_bfloat16, 128>;
    return D == 64 ? sel_final_attend_kernel<__half, 64> : sel_final_attend_kernel<__half, 128>;
}

/* The fused kernel's launch: nblocks CTAs in clusters of FUS_C along x, smem bytes
 * of dynamic shared memory, programmatic stream serialisation when pdl is set; at
 * holds the attributes cfg points to. */
void fused_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute at[2], unsigned int nblocks, size_t smem, bool pdl) {
    dm_cluster_config(cfg, at, dim3(nblocks), dim3(SEL_THREADS), smem, FUS_C, 1);
    at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[1].val.programmaticStreamSerializationAllowed = 1;
    cfg->numAttrs = pdl ? 2 : 1;
}

/* Whether dma decode's final select and attention run as one cluster kernel:
 * sm_90, a GQA group of at most FUS_MAXR rows, and a cluster of FUS_C such CTAs
 * that the device can place (asked once per kernel); DMABENCH_DECODE_FUSED=0 keeps
 * the final select, split and combine kernels. */
bool dec_fused(const attn_params *p) {
    static const bool on = dm_cuda_sm90() && !dm_env_is("DMABENCH_DECODE_FUSED", "0");
    if (!on || (long long)(p->Hq / p->Hkv) * p->Nq > FUS_MAXR || p->w > FUS_LIST) return false;
    static int placeable[2][2]; /* [bf16][D == 128]: 0 not asked, 1 yes, -1 no */
    int &ok = placeable[p->dtype == ATTN_DTYPE_BF16][p->D == 128];
    if (ok == 0) {
        const size_t smem = fus_dyn_bytes(p->D, attn_dtype_size(p->dtype));
        const fused_kernel_t kern = fused_kernel(p->dtype, p->D);
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[2];
        fused_config(&cfg, at, FUS_C, smem, false);
        int nc = 0;
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) e = cudaOccupancyMaxActiveClusters(&nc, kern, &cfg);
        cudaGetLastError();
        ok = e == cudaSuccess && nc > 0 ? 1 : -1;
    }
    return ok > 0;
}

/* The fused kernel reads z itself, in place of the filter kernel, unless
 * DMABENCH_DECODE_FUSED=1. */
bool dec_scan() {
    static const bool on = !dm_env_is("DMABENCH_DECODE_FUSED", "1");
    return on;
}

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
    attn_status st = plan_decode(p, n, false, &pl);
    if (st != ATTN_OK) return st;
    char *ws;
    if ((st = dm_cuda_ws_get(&g_part, pl.o_bytes + pl.ml_bytes, (void **)&ws, nullptr)) != ATTN_OK) return st;
    DecArgs a;
    fill_args(p, window, &a);
    a.klo = (int)(n > 0 ? lo : 0);
    a.nkeys = (int)n;
    return run_decode(p, pl, &a, ws, false);
}

extern "C" attn_status cuda_decode_dma_forward(const attn_params *p, cuda_decode_score_fn score) {
    const size_t units = (size_t)p->B * p->Hkv;
    const long long n = attn_visible(p, 0); /* Nq = 1: all Nk keys */
    const bool select = n > p->w;
    const long long nlist = select ? p->w : n;
    const bool fused = select && dec_fused(p);
    static const bool exact = dm_env_is("DMABENCH_DECODE_SEL_SAMPLE", "0");
    const bool scan = fused && !exact && dec_scan(); /* no filter: the fused kernel reads z */
    DecPlan pl = {};
    attn_status st = fused ? ATTN_OK : plan_decode(p, nlist, select, &pl); /* the split kernel's */
    if (st != ATTN_OK) return st;
    int nsm;
    if ((st = dm_cuda_num_sms(&nsm)) != ATTN_OK) return st;

    /* the filter: about DMABENCH_DECODE_SEL_CTAS CTAs per SM over all rows */
    static const int sel_ctas = env_knob("DMABENCH_DECODE_SEL_CTAS", 4);
    const long long want = std::max(1LL, ((long long)sel_ctas * nsm + (long long)units - 1) / (long long)units);
    long long chunk = std::max((long long)FLT_GRAIN, ((n + want - 1) / want + FLT_GRAIN - 1) / FLT_GRAIN * FLT_GRAIN);
    const long long min_chunk = (n + 65534) / 65535; /* gridDim.x stays within 65535 */
    if (chunk < min_chunk) chunk = (min_chunk + FLT_GRAIN - 1) / FLT_GRAIN * FLT_GRAIN;
    const int nchunks = (int)((n + chunk - 1) / chunk);
    /* the sample: every stride-th key, SEL_SAMPLES of them (all keys when fewer);
     * its threshold rank leaves about w / stride + 5 sqrt(w / stride) + 2 samples
     * at or above it */
    const long long stride = std::max(1LL, n / SEL_SAMPLES);
    const long long ns = stride == 1 ? n : SEL_SAMPLES;
    long long srank = p->w;
    if (stride > 1) {
        const double e = (double)p->w / (double)stride;
        srank = std::min(ns, (long long)std::ceil(e + 5.0 * std::sqrt(e) + 2.0));
    }

    /* workspaces: the partials (not with the fused kernel); thresholds | counts |
     * candidates | lists (not with the fused kernel) | lengths | z */
    const size_t tb = r256(units * sizeof(unsigned int));
    const size_t cb = r256(units * SEL_CAP * sizeof(unsigned long long));
    const size_t lb = fused ? 0 : r256(units * p->w * sizeof(int));
    const size_t nb = r256(units * sizeof(int));
    const size_t zb = p->w_dt ? r256(units * p->Nk * sizeof(float)) : 0;
    char *part = nullptr, *ws;
    if (!fused && (st = dm_cuda_ws_get(&g_part, pl.o_bytes + pl.ml_bytes, (void **)&part, nullptr)) != ATTN_OK)
        return st;
    if ((st = dm_cuda_ws_get(&g_sel, 2 * tb + cb + lb + nb + zb, (void **)&ws, nullptr)) != ATTN_OK) return st;
    SelArgs sa;
    char *cur = ws;
    sa.thr = reinterpret_cast<unsigned int *>(cur);
    cur += tb;
    sa.ncand = reinterpret_cast<unsigned int *>(cur);
    cur += tb;
    sa.cand = reinterpret_cast<unsigned long long *>(cur);
    cur += cb;
    sa.list = fused ? nullptr : reinterpret_cast<int *>(cur);
    cur += lb;
    sa.lens = reinterpret_cast<int *>(cur);
    cur += nb;
    float *zbuf = reinterpret_cast<float *>(cur);

    int span;
    if ((st = dm_cuda_span_begin(p->stats, &span)) != ATTN_OK) return st;
    const float *z = static_cast<const float *>(p->z);
    if (p->w_dt) {
        if ((st = score(p, zbuf)) != ATTN_OK) return st;
        z = zbuf;
    }
    if (select) {
        sa.z = z;
        sa.Nk = p->Nk, sa.n = (int)n, sa.w = p->w;
        sa.stride = (int)stride, sa.ns = (int)ns, sa.srank = (int)srank;
        sa.chunk = (int)chunk, sa.exact = exact, sa.scan = scan;
        if (!exact) {
            sel_sample_kernel<<<(unsigned)units, SEL_THREADS>>>(sa);
            CUDA_CHECK_LAUNCH();
        }
        if (!exact && !scan) {
            const dim3 fgrid((unsigned)nchunks, (unsigned)p->Hkv, (unsigned)p->B);
            const bool vec = p->Nk % 4 == 0 && reinterpret_cast<uintptr_t>(z) % 16 == 0;
            CUDA_CHECK(dm_launch(vec ? sel_filter_kernel<true> : sel_filter_kernel<false>, fgrid, dim3(FLT_THREADS),
                                 dec_pdl(), sa));
        }
    }
    DecArgs a;
    fill_args(p, 0, &a);
    a.z = z;
    if (fused) {
        /* after the sample or filter it may overlap their tail; on the exact path it comes first */
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[2];
        fused_config(&cfg, at, (unsigned)(units * FUS_C), fus_dyn_bytes(p->D, attn_dtype_size(p->dtype)),
                     !exact && dec_pdl());
        CUDA_CHECK(cudaLaunchKernelEx(&cfg, fused_kernel(p->dtype, p->D), sa, a));
    } else if (select) {
        CUDA_CHECK(dm_launch(sel_final_kernel, dim3((unsigned)units), dim3(SEL_THREADS), !exact && dec_pdl(), sa));
    }
    /* the selection's span (with the fused kernel, the attention too: one kernel) */
    if ((st = dm_cuda_span_end(p->stats, span)) != ATTN_OK) return st;

    if (select) {
        a.list = sa.list;
        a.list_len = sa.lens;
        a.list_cap = p->w;
    }
    a.klo = 0;
    a.nkeys = (int)nlist;
    if (!fused && (st = run_decode(p, pl, &a, part, select)) != ATTN_OK) return st;
    if (p->z_out) CUDA_CHECK(cudaMemcpyAsync(p->z_out, z, units * p->Nk * sizeof(float), cudaMemcpyDeviceToDevice));
    return ATTN_OK;
}
