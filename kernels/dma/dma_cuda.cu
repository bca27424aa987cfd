/*
 * dma_cuda.cu: Dynamic Mask Attention on the GPU (bf16/f16 in, fp32 accumulate).
 *
 * 1. dma_score_kernel: z = exp(a softplus(V_flat w_dt + b_dt)) (or the linear mode),
 *    one warp per (batch, key), w_dt staged in shared memory. Skipped when z is given.
 * 2. dma_coarse_kernel: for the first query of every 8th tile, its threshold (the
 *    w-th largest dma_key(z_j, j) over j <= i') by radix select over 8-bit digits
 *    of the 64-bit key (cuda_select.cuh), stopping at the first digit whose bin
 *    holding it is taken whole. Thresholds never decrease with the query, so this
 *    bounds every later tile's from below.
 * 3. dma_plan_kernel, one CTA per (batch, kv head, query tile of 128), one pass
 *    over the tile's visible keys: those at or above the coarse bound (at most
 *    w + 9 x 128) go to shared memory. The rows' thresholds (each the w-th key the
 *    row sees) all lie in a band of at most 255 keys found by two radix selects in
 *    shared memory; only the band is sorted, and each row's threshold is a binary
 *    search over it. The tile's list holds every key at or above the first row's
 *    threshold (at most w + 127, since thresholds never decrease), those every row
 *    keeps placed first so that only the last few key blocks of the attention need
 *    a mask. Tiles whose first row sees at most w keys sort all their candidates.
 *    No Nq x Nk mask exists anywhere: the list is O(w) per tile and the thresholds
 *    O(Nq).
 * 4. The attention engine over the lists; a listed key is kept by query i while
 *    its key is >= tkey[i] (found by binary search over the tile's 64 thresholds).
 */
#include <climits>
#include <cstdio>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_attn_fwd.cuh"
#include "cuda_attn_keys.cuh"
#include "cuda_common.cuh"
#include "cuda_decode.h"
#include "cuda_rt.h"
#include "cuda_select.cuh"
#include "dma.h"

namespace {
using namespace dm; /* block_radix_select, sel_cut_key */

constexpr int PLAN_THREADS = 256;
constexpr int COARSE_THREADS = 1024; /* the coarse select: eight loads in flight per thread over up to Nk keys */
constexpr int MAX_CAP = 4096 + CUDA_ATTN_BQ; /* list entries a tile can hold */

__device__ __forceinline__ float softplusf(float x) { return x > 20.f ? x : log1pf(expf(x)); }

template <typename T> __device__ __forceinline__ float tof(T x);
template <> __device__ __forceinline__ float tof<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float tof<__half>(__half x) { return __half2float(x); }

/* One warp per (b, j): dt[h] = sum_c V_flat[c] w[c, h] + b[h]. Hkv <= 32. */
template <typename T>
__global__ void dma_score_kernel(const T *v, long long vsb, long long vss, long long vsh, int B, int Nk, int Hkv, int D,
                                 const float *w, const float *bdt, const float *A, int linear, float *z, float *dt_out) {
    extern __shared__ float sw[]; /* (Hkv*D, Hkv) */
    int C = Hkv * D;
    for (int e = threadIdx.x; e < C * Hkv; e += blockDim.x) sw[e] = w[e];
    __syncthreads();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    long long row = (long long)blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= (long long)B * Nk) return;
    int b = (int)(row / Nk), j = (int)(row % Nk);
    float acc[32];
#pragma unroll
    for (int h = 0; h < 32; h++) acc[h] = 0.f;
    for (int c = lane; c < C; c += 32) {
        int g = c / D, d = c % D;
        float x = tof<T>(v[b * vsb + (long long)j * vss + g * vsh + d]);
#pragma unroll
        for (int h = 0; h < 32; h++)
            if (h < Hkv) acc[h] += x * sw[c * Hkv + h];
    }
#pragma unroll
    for (int h = 0; h < 32; h++) {
        if (h >= Hkv) break;
        float s = acc[h];
        for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if (lane == 0) {
            float dt = s + (bdt ? bdt[h] : 0.f);
            float sp = softplusf(dt);
            size_t zi = ((size_t)b * Hkv + h) * Nk + j;
            z[zi] = linear ? A[h] * sp : expf(A[h] * sp);
            if (dt_out) dt_out[zi] = dt;
        }
    }
}

constexpr int COARSE = 8; /* tiles per coarse threshold */

struct PlanArgs {
    const float *z;
    int B, Nq, Nk, Hkv, w, causal, ntiles, cap, ncoarse, cand_cap;
    int *list, *list_len;
    unsigned long long *tkey, *tcoarse;
    /* or NULL: each list entry's rows of its tile that keep it (2 ints: first and
     * last query index) and its bias z log2e, as cuda_attn_spec.list_rows and list_zl */
    int *list_rows;
    float *list_zl;
};

/* The rank-th largest key (1-based) among j in [0, n) of zrow, by radix select
 * (cuda_select.cuh), eight loads in flight per thread: a CTA walks up to Nk keys
 * alone, so a pass is bound by load latency, not bandwidth. All threads of the
 * block call it. */
__device__ unsigned long long select_rank(const float *zrow, int n, int rank, unsigned int *hist, unsigned int *sred,
                                          unsigned long long *smin) {
    auto each = [&](auto f) {
        constexpr int U = 8;
        for (int j0 = 0; j0 < n; j0 += U * COARSE_THREADS) {
            float zz[U];
#pragma unroll
            for (int t = 0; t < U; t++) {
                const int j = j0 + t * COARSE_THREADS + threadIdx.x;
                zz[t] = j < n ? zrow[j] : 0.f;
            }
#pragma unroll
            for (int t = 0; t < U; t++) {
                const int j = j0 + t * COARSE_THREADS + threadIdx.x;
                f(j < n ? dma_key(zz[t], j) : 0ULL, j < n);
            }
        }
    };
    const SelCut c = block_radix_select<true>(each, (unsigned int)rank, hist, sred);
    return sel_cut_key(each, c, smin);
}

/* Keys visible to query i: [0, n). */
__device__ __forceinline__ long long visible_keys(const PlanArgs &a, long long i) {
    long long off = (long long)a.Nk - a.Nq;
    return a.causal ? min(max(i + off + 1, 0LL), (long long)a.Nk) : (long long)a.Nk;
}

/* Threshold of the first query of every COARSE-th tile, by radix select over its
 * whole prefix: a lower bound for the thresholds of the tiles that follow. */
__global__ void __launch_bounds__(COARSE_THREADS) dma_coarse_kernel(const PlanArgs a) {
    __shared__ unsigned int hist[256], sred[3];
    __shared__ unsigned long long key_found;
    const int c = blockIdx.x, hkv = blockIdx.y, b = blockIdx.z;
    const size_t u = (size_t)b * a.Hkv + hkv;
    long long n = visible_keys(a, (long long)c * COARSE * CUDA_ATTN_BQ);
    unsigned long long t = n > a.w ? select_rank(a.z + u * a.Nk, (int)n, a.w, hist, sred, &key_found) : 0ULL;
    if (threadIdx.x == 0) a.tcoarse[u * a.ncoarse + c] = t;
}

/* Sorts skeys[0, np2) descending (np2 a power of two): bitonic, each thread
 * taking whole compare-exchange pairs (no idle half per step). */
__device__ void bitonic_desc(unsigned long long *skeys, int np2) {
    for (int k = 2; k <= np2; k <<= 1)
        for (int jj = k >> 1; jj > 0; jj >>= 1) {
            for (int q = threadIdx.x; q < np2 / 2; q += blockDim.x) {
                const int i = ((q & ~(jj - 1)) << 1) | (q & (jj - 1)), l = i + jj;
                const unsigned long long x = skeys[i], y = skeys[l];
                const bool desc = (i & k) == 0;
                if (desc ? x < y : x > y) skeys[i] = y, skeys[l] = x;
            }
            __syncthreads();
        }
}

/* Inclusive prefix sums of flag(p) over p in [0, n) into out[0, n), by the whole
 * block (PLAN_THREADS threads, each a contiguous run); returns the total. Ends with
 * a barrier. swarp: PLAN_THREADS / 32 ints. */
template <typename F>
__device__ int block_scan_flags(int n, F flag, int *out, int *swarp) {
    const int tid = threadIdx.x;
    const int per = (n + PLAN_THREADS - 1) / PLAN_THREADS, p0 = tid * per, p1 = min(p0 + per, n);
    int c = 0;
    for (int p = p0; p < p1; p++) c += flag(p);
    int total;
    int run = dm_block_scan_excl<PLAN_THREADS>(c, swarp, &total);
    for (int p = p0; p < p1; p++) out[p] = (run += flag(p));
    __syncthreads();
    return total;
}

/* The rank-th largest (1-based) of the keys skeys[p], p < n, with flag(p), by
 * radix select in shared memory (cuda_select.cuh). The caller makes sure at least
 * rank keys are flagged. Every thread of the block calls it. */
template <typename F>
__device__ unsigned long long block_select(const unsigned long long *skeys, int n, F flag, int rank,
                                           unsigned int *hist, unsigned int *sred, unsigned long long *smin) {
    auto each = [&](auto f) {
        for (int p0 = 0; p0 < n; p0 += PLAN_THREADS) {
            const int p = p0 + threadIdx.x;
            const bool valid = p < n && flag(p);
            f(valid ? skeys[p] : 0ULL, valid);
        }
    };
    /* a tile's candidates spread over more bins than a row of z: every lane adds */
    const SelCut c = block_radix_select<false>(each, (unsigned int)rank, hist, sred);
    return sel_cut_key(each, c, smin);
}

/* 128-bit masks of row offsets: bit o stands for the tile's row o */
struct Mask128 {
    unsigned int w[4];
};
__device__ __forceinline__ int popc_below(const Mask128 &m, int r) { /* bits below r (0..128) */
    int c = 0;
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const int lo = 32 * q;
        const unsigned int sel = r >= lo + 32 ? 0xffffffffu : r <= lo ? 0u : (1u << (r - lo)) - 1u;
        c += __popc(m.w[q] & sel);
    }
    return c;
}

/* Per (batch, kv head, query tile of 128): every key the tile could keep is at or
 * above its coarse bound; those go to shared memory. Old keys are those every row
 * sees (index below the first row's visible count), new ones the at most 127 on
 * the tile's diagonal, which row o of the tile sees when their index is below
 * n_first + o. Adding at most 127 keys moves the w-th largest up by at most 127
 * places, so every row's threshold is a new key at or above the w-th largest old
 * key or an old one between that and the (w - 127)-th (radix selects in shared
 * memory): only that band (at most 255 keys) is sorted, and each row's threshold is the first
 * band position where the keys it sees reach w (binary search; the old keys by a
 * prefix count, the new ones by prefix masks of their row offsets). The tile's
 * list is every key at or above the first row's threshold (at most w + 127), those
 * every row keeps (old, at or above the last row's threshold) first, so that only
 * the last few key blocks of the attention need a mask. Tiles whose first row sees
 * fewer than w keys (near the start) sort all their candidates instead. */
__global__ void __launch_bounds__(PLAN_THREADS) dma_plan_kernel(const PlanArgs a) {
    extern __shared__ unsigned long long skeys[]; /* [a.cand_cap], then int c1[a.cand_cap], c2[a.cand_cap] */
    int *c1 = reinterpret_cast<int *>(skeys + a.cand_cap), *c2 = c1 + a.cand_cap;
    __shared__ int count, nband, swarp[PLAN_THREADS / 32];
    __shared__ unsigned int sred[3];
    __shared__ unsigned int hist[256];
    __shared__ unsigned long long bkeys[2 * CUDA_ATTN_BQ], found, tlast, tfirst;
    __shared__ Mask128 pm[CUDA_ATTN_BQ + 1]; /* prefix masks of the band's new keys */
    __shared__ int npos[CUDA_ATTN_BQ], nidx[CUDA_ATTN_BQ]; /* sorting path: new keys' positions and indices */
    __shared__ unsigned long long srow[CUDA_ATTN_BQ];     /* the rows' thresholds, for list_rows */
    const int tile = blockIdx.x, hkv = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const size_t u = (size_t)b * a.Hkv + hkv;
    const float *zrow = a.z + u * a.Nk;
    const int i0 = tile * CUDA_ATTN_BQ, i1 = min(i0 + CUDA_ATTN_BQ, a.Nq), nrow = i1 - i0;
    const long long n_first = visible_keys(a, i0), n_last = visible_keys(a, i1 - 1);
    const unsigned long long tc = a.tcoarse[u * a.ncoarse + tile / COARSE];
    if (tid == 0) count = 0, nband = 0, tlast = 0;
    __syncthreads();
    /* the candidates, four loads in flight per thread, one shared atomic per warp */
    for (long long b0 = 0; b0 < n_last; b0 += 4 * PLAN_THREADS) {
        float zz[4];
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const long long j = b0 + t * PLAN_THREADS + tid;
            zz[t] = j < n_last ? zrow[j] : 0.f;
        }
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const long long j = b0 + t * PLAN_THREADS + tid;
            const unsigned long long k = j < n_last ? dma_key(zz[t], (int)j) : 0ULL;
            const bool take = j < n_last && k >= tc;
            const unsigned int bal = __ballot_sync(0xffffffffu, take);
            int base = 0;
            if ((tid & 31) == 0 && bal) base = atomicAdd(&count, __popc(bal));
            base = __shfl_sync(0xffffffffu, base, 0);
            if (take) {
                const int slot = base + __popc(bal & ((1u << (tid & 31)) - 1u));
                if (slot < a.cand_cap) skeys[slot] = k;
            }
        }
    }
    __syncthreads();
    const int n = min(count, a.cand_cap);
    auto idx_of = [&](int p) { return (long long)(skeys[p] & 0xffffffffu); };
    auto is_old = [&](int p) { return idx_of(p) < n_first; };
    unsigned long long trow = 0;
    if (n_first > a.w) {
        /* the band: old ranks w - 127 .. w */
        const int hi_rank = max(1, a.w - (CUDA_ATTN_BQ - 1));
        const unsigned long long tA = block_select(skeys, n, is_old, a.w, hist, sred, &found);
        const unsigned long long tB = block_select(skeys, n, is_old, hi_rank, hist, sred, &found);
        for (int p = tid; p < n; p += PLAN_THREADS) {
            const unsigned long long k = skeys[p];
            if (k >= tA && (k <= tB || !is_old(p))) {
                const int slot = atomicAdd(&nband, 1);
                if (slot < 2 * CUDA_ATTN_BQ) bkeys[slot] = k;
            }
        }
        __syncthreads();
        const int nb = min(nband, 2 * CUDA_ATTN_BQ);
        for (int i = nb + tid; i < 2 * CUDA_ATTN_BQ; i += PLAN_THREADS) bkeys[i] = 0;
        __syncthreads();
        bitonic_desc(bkeys, 2 * CUDA_ATTN_BQ);
        auto bold = [&](int p) { return (long long)(bkeys[p] & 0xffffffffu) < n_first ? 1 : 0; };
        block_scan_flags(nb, bold, c1, swarp);
        if (tid == 0) { /* prefix masks over the band's new keys, in band order */
            Mask128 m = {{0u, 0u, 0u, 0u}};
            int e = 0;
            pm[0] = m;
            for (int p = 0; p < nb; p++)
                if (!bold(p)) {
                    const int o = (int)((long long)(bkeys[p] & 0xffffffffu) - n_first);
                    m.w[o >> 5] |= 1u << (o & 31);
                    pm[++e] = m;
                }
            tfirst = tA;
        }
        __syncthreads();
        if (tid < nrow) {
            const long long vis = visible_keys(a, i0 + tid);
            if (vis > a.w) {
                const int r = (int)min(vis - n_first, (long long)CUDA_ATTN_BQ);
                const int base = hi_rank - 1; /* the old keys above the band */
                int lo = 0, hi = nb - 1;
                while (lo < hi) {
                    const int mid = (lo + hi) >> 1;
                    const int c = base + c1[mid] + popc_below(pm[mid + 1 - c1[mid]], r);
                    if (c >= a.w) hi = mid;
                    else lo = mid + 1;
                }
                trow = bkeys[lo];
            }
        }
    } else {
        /* near the start: sort every candidate */
        int np2 = 1;
        while (np2 < n) np2 <<= 1;
        for (int i = n + tid; i < np2; i += PLAN_THREADS) skeys[i] = 0; /* pads sort last */
        __syncthreads();
        bitonic_desc(skeys, np2);
        const int nold = block_scan_flags(n, [&](int p) { return is_old(p) ? 1 : 0; }, c1, swarp);
        for (int p = tid; p < n; p += PLAN_THREADS) /* the new keys, in sorted order */
            if (!is_old(p)) {
                const int q = p - c1[p];
                if (q < CUDA_ATTN_BQ) npos[q] = p, nidx[q] = (int)idx_of(p);
            }
        const int nnew = min(n - nold, CUDA_ATTN_BQ);
        __syncthreads();
        /* the first sorted position where the keys a row sees reach w */
        auto row_pos = [&](long long vis) -> int {
            int lo = 0, hi = n - 1;
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                int c = c1[mid];
                for (int e = 0; e < nnew && npos[e] <= mid; e++) c += nidx[e] < vis;
                if (c >= a.w) hi = mid;
                else lo = mid + 1;
            }
            return lo;
        };
        if (tid == 0) tfirst = n_first > a.w ? skeys[row_pos(n_first)] : 0ULL;
        if (tid < nrow) {
            const long long vis = visible_keys(a, i0 + tid);
            trow = vis > a.w ? skeys[row_pos(vis)] : 0ULL;
        }
    }
    if (tid < nrow) {
        a.tkey[u * a.Nq + i0 + tid] = trow;
        srow[tid] = trow;
        if (tid == nrow - 1) tlast = trow; /* thresholds never decrease with the row */
    }
    __syncthreads();
    /* the list: keys every row keeps (old, >= the last row's threshold) first, then
     * the rest down to the first row's threshold */
    const unsigned long long tl = tlast, tf = tfirst;
    auto every = [&](int p) { return is_old(p) && skeys[p] >= tl ? 1 : 0; };
    auto rest = [&](int p) { return !every(p) && skeys[p] >= tf ? 1 : 0; };
    const int nall = block_scan_flags(n, every, c1, swarp);
    const int nrest = block_scan_flags(n, rest, c2, swarp);
    const size_t lbase = (u * a.ntiles + tile) * a.cap;
    int *lst = a.list + lbase;
    const KeyPos kp = {(long long)a.Nk - a.Nq, 1, 0, a.causal, 0};
    for (int p = tid; p < n; p += PLAN_THREADS) {
        const int at = every(p) ? c1[p] - 1 : rest(p) ? nall + c2[p] - 1 : -1;
        if (at < 0) continue;
        const int j = (int)idx_of(p);
        lst[at] = j;
        if (a.list_rows) { /* the rows that keep it as the forward would form them */
            int rl, rh;
            key_rows(kp, j, srow, skeys[p], i0, nrow, &rl, &rh);
            a.list_rows[2 * (lbase + at)] = rl;
            a.list_rows[2 * (lbase + at) + 1] = rh;
            a.list_zl[lbase + at] = zrow[j] * LOG2E;
        }
    }
    if (tid == 0) a.list_len[u * a.ntiles + tile] = nall + nrest;
}

dm_cuda_ws g_ws; /* plan and selection state, kept between calls */

/* z from v and w_dt with dma_score_kernel; dt too when dt_out is not NULL. */
attn_status score_launch(const attn_params *p, float *z, float *dt_out) {
    const int wpb = 8;
    const dim3 grid((unsigned)(((size_t)p->B * p->Nk + wpb - 1) / wpb));
    const size_t smem = (size_t)p->Hkv * p->D * p->Hkv * sizeof(float);
    const int linear = p->dma_mode == DMA_MODE_LINEAR;
    const float *w = (const float *)p->w_dt, *bdt = (const float *)p->b_dt, *A = (const float *)p->a;
    if (p->dtype == ATTN_DTYPE_BF16) {
        CUDA_CHECK(cudaFuncSetAttribute(dma_score_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        dma_score_kernel<__nv_bfloat16><<<grid, wpb * 32, smem>>>((const __nv_bfloat16 *)p->v, p->v_st.b, p->v_st.s, p->v_st.h,
                                                                  p->B, p->Nk, p->Hkv, p->D, w, bdt, A, linear, z, dt_out);
    } else {
        CUDA_CHECK(cudaFuncSetAttribute(dma_score_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        dma_score_kernel<__half><<<grid, wpb * 32, smem>>>((const __half *)p->v, p->v_st.b, p->v_st.s, p->v_st.h, p->B, p->Nk,
                                                           p->Hkv, p->D, w, bdt, A, linear, z, dt_out);
    }
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* The decode path's entry (cuda_decode.h): z only. */
attn_status dma_score_launch(const attn_params *p, float *z) { return score_launch(p, z, nullptr); }

} // namespace

namespace {

/* What forward and backward share: z (given or computed), the thresholds and the
 * per-tile key lists, all in the workspace. With backward, also dt (when z is
 * computed), dz and ddt. */
struct DmaPlan {
    float *z, *dt, *dz, *ddt;
    float *dadb; /* [2 * Hkv]: da, db_dt accumulators */
    cuda_attn_spec s;
};

/* The plan's pieces, each rounded up to 256 bytes so that every piece stays aligned
 * for its type: the thresholds (tb), the tiles' lists (lb) and lengths (nb), and
 * with w_dt z and dt (zb each). These are what the forward keeps in a saved area
 * (attn_params.saved, in this order), and then O's rounding residual (rb, bf16 of
 * O's shape; cuda_attn_spec.ores), from which the backward forms Dsum without a
 * first pass over the keys. */
struct DmaSaved {
    size_t tb, lb, nb, zb, rb;
    size_t total() const { return tb + lb + nb + 2 * zb + rb; }
    size_t res_at() const { return tb + lb + nb + 2 * zb; }
};

/* DMABENCH_DMA_RESIDUAL=0: the saved area without the residual (the backward's
 * first pass forms Dsum, as without an area). */
bool dma_residual_on() {
    static const bool off = dm_env_is("DMABENCH_DMA_RESIDUAL", "0");
    return !off;
}

DmaSaved dma_saved_layout(const attn_params *p) {
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    const int ntiles = cuda_attn_ntiles(p);
    const size_t units = (size_t)p->B * p->Hkv;
    const int cap = (int)std::min<long long>((long long)p->w + CUDA_ATTN_BQ, p->Nk);
    DmaSaved s;
    s.tb = r256(units * p->Nq * sizeof(unsigned long long));
    s.lb = r256(units * ntiles * (size_t)cap * sizeof(int));
    s.nb = r256(units * ntiles * sizeof(int));
    s.zb = p->w_dt ? r256(units * p->Nk * sizeof(float)) : 0;
    s.rb = dma_residual_on() ? r256((size_t)p->B * p->Nq * p->Hq * p->D * sizeof(__nv_bfloat16)) : 0;
    return s;
}

/* The caller's saved area (attn_params.saved), or NULL: with DMABENCH_DMA_SAVED=0
 * the operator ignores it (the backward plans again, as without one), and so it
 * does at Nq = 1, where the forward takes the decode path and plans nothing. */
char *dma_saved_area(const attn_params *p) {
    static const bool off = dm_env_is("DMABENCH_DMA_SAVED", "0");
    return off || cuda_decode_applies(p, ATTN_DMA) ? nullptr : static_cast<char *>(p->saved);
}

/* With a saved area, the forward plans into it and the backward reads the plan
 * there (z and dt too when they are computed) instead of planning again. */
attn_status dma_plan(const attn_params *p, int backward, DmaPlan *pl) {
    const int ntiles = cuda_attn_ntiles(p);
    const size_t units = (size_t)p->B * p->Hkv;
    const int cap = (int)std::min<long long>((long long)p->w + CUDA_ATTN_BQ, p->Nk);
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    const DmaSaved sv = dma_saved_layout(p);
    char *kept = dma_saved_area(p);
    const size_t nzb = r256(units * p->Nk * sizeof(float));
    const int ncoarse = (ntiles + COARSE - 1) / COARSE;
    size_t cb = r256(units * ncoarse * sizeof(unsigned long long));
    /* the workspace: the plan (unless kept) and the coarse bounds, then the backward's
     * dz (and with w_dt, dt unless kept, ddt and the da/db accumulators) */
    size_t planb = kept ? 0 : sv.tb + sv.lb + sv.nb + sv.zb;
    size_t bwb = backward ? (p->w_dt ? (kept ? 2 : 3) * nzb + r256(2 * p->Hkv * sizeof(float)) : nzb) : 0;
    /* for the warp-specialised forward (fw1), each entry's rows and bias beside the
     * list (in the workspace: only this forward call reads them) */
    const bool rows = !backward && dm::fwd_ws_for(kept && sv.rb, p->D, p->dtype);
    const size_t entries = units * ntiles * (size_t)cap;
    size_t rowsb = rows ? r256(entries * 2 * sizeof(int)) + r256(entries * sizeof(float)) : 0;
    char *ws;
    attn_status st = dm_cuda_ws_get(&g_ws, planb + cb + bwb + rowsb + 256, (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    char *pb = kept ? kept : ws; /* the plan's base */
    unsigned long long *tkey = reinterpret_cast<unsigned long long *>(pb);
    int *list = reinterpret_cast<int *>(pb + sv.tb);
    int *len = reinterpret_cast<int *>(pb + sv.tb + sv.lb);
    float *z = p->w_dt ? reinterpret_cast<float *>(pb + sv.tb + sv.lb + sv.nb) : (float *)p->z;
    /* dt: kept beside z, else in the backward's part of the workspace */
    float *dt_kept = kept && p->w_dt ? reinterpret_cast<float *>(kept + sv.tb + sv.lb + sv.nb + sv.zb) : nullptr;
    unsigned long long *tcoarse = reinterpret_cast<unsigned long long *>(ws + planb);
    char *rest = ws + planb + cb;
    pl->dt = pl->dz = pl->ddt = pl->dadb = nullptr;
    if (backward) {
        pl->dz = reinterpret_cast<float *>(rest);
        if (p->w_dt) {
            pl->dt = dt_kept ? dt_kept : reinterpret_cast<float *>(rest + nzb);
            const size_t o = dt_kept ? nzb : 2 * nzb;
            pl->ddt = reinterpret_cast<float *>(rest + o);
            pl->dadb = reinterpret_cast<float *>(rest + o + nzb);
        }
    }
    pl->z = z;
    pl->s = cuda_attn_spec{};
    pl->s.z = z;
    pl->s.list = list;
    pl->s.list_len = len;
    pl->s.cap = cap;
    pl->s.tkey = tkey;
    pl->s.ores = kept && sv.rb ? kept + sv.res_at() : nullptr;
    int *list_rows = rows ? reinterpret_cast<int *>(rest + bwb) : nullptr;
    float *list_zl = rows ? reinterpret_cast<float *>(rest + bwb + r256(entries * 2 * sizeof(int))) : nullptr;
    pl->s.list_rows = list_rows;
    pl->s.list_zl = list_zl;
    if (kept && backward) return ATTN_OK; /* the forward's plan, z and dt */

    int span;
    attn_status spst = dm_cuda_span_begin(p->stats, &span);
    if (spst != ATTN_OK) return spst;
    if (p->w_dt) {
        attn_status sst = score_launch(p, z, kept ? dt_kept : pl->dt);
        if (sst != ATTN_OK) return sst;
    }
    PlanArgs pa;
    pa.z = z;
    pa.B = p->B, pa.Nq = p->Nq, pa.Nk = p->Nk, pa.Hkv = p->Hkv, pa.w = p->w, pa.causal = p->causal;
    pa.ntiles = ntiles, pa.cap = cap, pa.list = list, pa.list_len = len, pa.tkey = tkey;
    pa.ncoarse = ncoarse, pa.tcoarse = tcoarse;
    pa.list_rows = list_rows, pa.list_zl = list_zl;
    /* candidates of a tile: w keys at its coarse tile's start, plus every key after;
     * tiles whose first row sees at most w keys sort theirs (at most w + 127) */
    long long cand = std::min<long long>((long long)p->w + (long long)(COARSE + 1) * CUDA_ATTN_BQ, p->Nk);
    int np2 = 1;
    while (np2 < std::min<long long>((long long)p->w + CUDA_ATTN_BQ, p->Nk)) np2 <<= 1;
    pa.cand_cap = (int)std::max<long long>(cand, np2);
    size_t psmem = (size_t)pa.cand_cap * (sizeof(unsigned long long) + 2 * sizeof(int));
    dma_coarse_kernel<<<dim3(ncoarse, p->Hkv, p->B), COARSE_THREADS>>>(pa);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaFuncSetAttribute(dma_plan_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)psmem));
    dma_plan_kernel<<<dim3(ntiles, p->Hkv, p->B), PLAN_THREADS, psmem>>>(pa);
    CUDA_CHECK_LAUNCH();
    return dm_cuda_span_end(p->stats, span);
}

/* Chain rule from dz to dt, per (b, h, key): ddt = dz dz/ddt; da[h] and db[h] are
 * sums over (b, key), reduced per block and added with one atomic each. */
__global__ void dma_ddt_kernel(const float *dz, const float *z, const float *dt, const float *A, int linear, int Hkv,
                               int Nk, float *ddt, float *dadb) {
    const int h = blockIdx.y, b = blockIdx.z;
    const size_t u = ((size_t)b * Hkv + h) * Nk;
    float sa = 0.f, sb = 0.f;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < Nk; j += gridDim.x * blockDim.x) {
        float x = dt[u + j], g = dz[u + j];
        float sp = softplusf(x), sg = 1.f / (1.f + expf(-x));
        float dsp = linear ? g * A[h] : g * z[u + j] * A[h];
        sa += linear ? g * sp : g * z[u + j] * sp;
        float d = dsp * sg;
        sb += d;
        ddt[u + j] = d;
    }
    __shared__ float ra[32], rb[32];
    for (int o = 16; o; o >>= 1) sa += __shfl_xor_sync(0xffffffff, sa, o), sb += __shfl_xor_sync(0xffffffff, sb, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0) ra[warp] = sa, rb[warp] = sb;
    __syncthreads();
    if (threadIdx.x == 0) {
        float ta = 0.f, tb = 0.f;
        for (int w = 0; w < nw; w++) ta += ra[w], tb += rb[w];
        atomicAdd(&dadb[h], ta);
        atomicAdd(&dadb[Hkv + h], tb);
    }
}

/* dw_dt[c, h] = sum_{b, j} V_flat[b, j, c] ddt[b, h, j]: a block per chunk of
 * DW_TOK keys of one batch, a thread per column c (strided), Hkv accumulators. */
constexpr int DW_TOK = 64;
template <typename T>
__global__ void dma_dw_kernel(const T *v, long long vsb, long long vss, long long vsh, int Nk, int Hkv, int D,
                              const float *ddt, float *dw) {
    __shared__ float sd[DW_TOK][32];
    const int b = blockIdx.y, j0 = blockIdx.x * DW_TOK;
    const int nt = min(DW_TOK, Nk - j0);
    for (int e = threadIdx.x; e < DW_TOK * Hkv; e += blockDim.x) {
        int t = e / Hkv, h = e % Hkv;
        sd[t][h] = t < nt ? ddt[((size_t)b * Hkv + h) * Nk + j0 + t] : 0.f;
    }
    __syncthreads();
    const int C = Hkv * D;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        int g = c / D, d = c % D;
        float acc[32];
#pragma unroll
        for (int h = 0; h < 32; h++) acc[h] = 0.f;
        for (int t = 0; t < nt; t++) {
            float x = tof<T>(v[b * vsb + (long long)(j0 + t) * vss + g * vsh + d]);
#pragma unroll
            for (int h = 0; h < 32; h++)
                if (h < Hkv) acc[h] += x * sd[t][h];
        }
#pragma unroll
        for (int h = 0; h < 32; h++)
            if (h < Hkv) atomicAdd(&dw[(size_t)c * Hkv + h], acc[h]);
    }
}

struct ChainCtx {
    const attn_params *p;
    DmaPlan *pl;
};

/* Runs between the engine's main kernel and its finish: dz out, then dt's chain. */
attn_status dma_after_main(void *vctx) {
    ChainCtx *c = static_cast<ChainCtx *>(vctx);
    const attn_params *p = c->p;
    DmaPlan *pl = c->pl;
    const size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    if (p->dz) CUDA_CHECK(cudaMemcpyAsync(p->dz, pl->dz, nz * sizeof(float), cudaMemcpyDeviceToDevice));
    if (!p->w_dt) return ATTN_OK;
    CUDA_CHECK(cudaMemsetAsync(pl->dadb, 0, 2 * p->Hkv * sizeof(float)));
    CUDA_CHECK(cudaMemsetAsync(p->dw_dt, 0, (size_t)p->Hkv * p->D * p->Hkv * sizeof(float)));
    int nbx = std::max(1, std::min(64, dm_div_up(p->Nk, 256)));
    dma_ddt_kernel<<<dim3(nbx, p->Hkv, p->B), 256>>>(pl->dz, pl->z, pl->dt, (const float *)p->a,
                                                     p->dma_mode == DMA_MODE_LINEAR, p->Hkv, p->Nk, pl->ddt, pl->dadb);
    CUDA_CHECK_LAUNCH();
    dim3 g(dm_div_up(p->Nk, DW_TOK), p->B);
    if (p->dtype == ATTN_DTYPE_BF16)
        dma_dw_kernel<__nv_bfloat16><<<g, 256>>>((const __nv_bfloat16 *)p->v, p->v_st.b, p->v_st.s, p->v_st.h, p->Nk,
                                                  p->Hkv, p->D, pl->ddt, (float *)p->dw_dt);
    else
        dma_dw_kernel<__half><<<g, 256>>>((const __half *)p->v, p->v_st.b, p->v_st.s, p->v_st.h, p->Nk, p->Hkv, p->D,
                                           pl->ddt, (float *)p->dw_dt);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(p->da, pl->dadb, p->Hkv * sizeof(float), cudaMemcpyDeviceToDevice));
    if (p->b_dt) CUDA_CHECK(cudaMemcpyAsync(p->db_dt, pl->dadb + p->Hkv, p->Hkv * sizeof(float), cudaMemcpyDeviceToDevice));
    return ATTN_OK;
}

} // namespace

extern "C" int dma_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    if (!cuda_attn_supports(p, ATTN_DMA, backward, why, why_len)) return 0;
    if (p->w > MAX_CAP - CUDA_ATTN_BQ) {
        if (why && why_len) snprintf(why, why_len, "the cuda dma keeps at most %d keys per query", MAX_CAP - CUDA_ATTN_BQ);
        return 0;
    }
    if (p->w_dt && (size_t)p->Hkv * p->Hkv * p->D * sizeof(float) > 200 * 1024) {
        if (why && why_len)
            snprintf(why, why_len, "the cuda dma score kernel keeps w_dt (Hkv * D x Hkv floats) in 200 KB of shared memory");
        return 0;
    }
    if (p->w_dt && p->Hkv > 32) {
        if (why && why_len) snprintf(why, why_len, "the cuda dma score kernel takes at most 32 kv heads");
        return 0;
    }
    return 1;
}

extern "C" size_t dma_cuda_saved_bytes(const attn_params *p) { return dma_saved_layout(p).total(); }

extern "C" attn_status dma_cuda_forward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && dma_cuda_supports(p, 0, nullptr, 0)) return cuda_f32_forward(p, dma_cuda_forward);
    if (!dma_cuda_supports(p, 0, nullptr, 0))
        return attn_params_check(p, ATTN_DMA, 0, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    if (cuda_decode_applies(p, ATTN_DMA)) return cuda_decode_dma_forward(p, dma_score_launch); /* Nq = 1 */
    DmaPlan pl;
    attn_status st = dma_plan(p, 0, &pl);
    if (st != ATTN_OK) return st;
    st = cuda_attn_forward(p, &pl.s);
    if (st == ATTN_OK && p->z_out)
        CUDA_CHECK(cudaMemcpy(p->z_out, pl.z, (size_t)p->B * p->Hkv * p->Nk * sizeof(float), cudaMemcpyDeviceToDevice));
    return st;
}

extern "C" attn_status dma_cuda_backward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && dma_cuda_supports(p, 1, nullptr, 0)) return cuda_f32_backward(p, dma_cuda_backward);
    if (!dma_cuda_supports(p, 1, nullptr, 0))
        return attn_params_check(p, ATTN_DMA, 1, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    DmaPlan pl;
    attn_status st = dma_plan(p, 1, &pl);
    if (st != ATTN_OK) return st;
    ChainCtx ctx = {p, &pl};
    pl.s.after_main = dma_after_main;
    pl.s.after_main_ctx = &ctx;
    if (p->w_dt) {
        pl.s.dv_ddt = pl.ddt;
        pl.s.dv_w = (const float *)p->w_dt;
    }
    return cuda_attn_backward(p, &pl.s, pl.dz);
}
