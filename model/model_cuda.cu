/*
 * model_cuda.cu: the model's GPU ops (model_cuda.h): cuBLASLt GEMMs, embedding,
 * RMSNorm, q/k norm + RoPE, SwiGLU, chunked cross-entropy, AdamW, gradient norm,
 * casts. Each kernel computes what the CPU op next to it in model_ops.c / model.c /
 * model_optim.c computes, in the same order of operations where that is cheap;
 * tests/test_model_gpu.c holds them to it.
 *
 * Layout rules: row-wise ops give one warp a row (or a (row, head) pair), so the
 * row's reductions are shuffles; elementwise ops move 16 bytes per thread when
 * the row length and the pointers allow it and fall back to one element
 * otherwise. Sums over rows (norm-weight gradients, residual-vector gradients,
 * the gradient norm, the loss) go through per-block partials in double reduced
 * by one final pass in a fixed order, so they do not depend on scheduling.
 */
#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda_common.cuh"
#include "cuda_rt.h"
#include "model_cuda.h"

namespace {

typedef __nv_bfloat16 bf16;

/* ---- errors ---- */

char g_err[512];
int g_own_err; /* 1: g_err holds the last failure; 0: cuda_rt's buffer does */

attn_status fail(attn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    g_own_err = 1;
    return st;
}

/* CUDA_CHECK that also points mcuda_last_error() at the CUDA error's text. */
#define MC_CHECK(call)                                                                                     \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        if (e_ != cudaSuccess) {                                                                           \
            dm_cuda_note_error(e_, #call, __FILE__, __LINE__);                                             \
            g_own_err = 0;                                                                                 \
            return ATTN_ERR_CUDA;                                                                          \
        }                                                                                                  \
    } while (0)
#define MC_LAUNCH() MC_CHECK(cudaGetLastError())

#define LT_CHECK(call)                                                                                     \
    do {                                                                                                   \
        cublasStatus_t s_ = (call);                                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                   \
            return fail(s_ == CUBLAS_STATUS_ALLOC_FAILED ? ATTN_ERR_OOM : ATTN_ERR_CUDA, "%s at %s:%d: %s", \
                        cublasLtGetStatusString(s_), __FILE__, __LINE__, #call);                          \
    } while (0)

#define BLAS_CHECK(call)                                                                                   \
    do {                                                                                                   \
        cublasStatus_t s_ = (call);                                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                   \
            return fail(s_ == CUBLAS_STATUS_ALLOC_FAILED ? ATTN_ERR_OOM : ATTN_ERR_CUDA, "%s at %s:%d: %s", \
                        cublasGetStatusString(s_), __FILE__, __LINE__, #call);                            \
    } while (0)

#define MC_OK(expr)                                                                                        \
    do {                                                                                                   \
        attn_status st_ = (expr);                                                                          \
        if (st_ != ATTN_OK) return st_;                                                                    \
    } while (0)

/* ---- scratch: grown on demand, one buffer per use so that no two live uses share one ---- */

enum { SCR_PART = 0, SCR_LOGITS, SCR_DLOGITS, SCR_ROWS, SCR_N };
struct Scratch {
    void *p = nullptr;
    size_t bytes;
};
Scratch g_scr[SCR_N];

attn_status scratch(int slot, size_t bytes, void **out) {
    Scratch *s = &g_scr[slot];
    if (s->bytes < bytes) {
        dm_cuda_free(s->p); /* cudaFree waits for the kernels that used it */
        s->p = nullptr, s->bytes = 0;
        size_t want = bytes + bytes / 4;
        attn_status st = dm_cuda_alloc(&s->p, want);
        if (st != ATTN_OK) {
            if (st == ATTN_ERR_CUDA) g_own_err = 0;
            return st == ATTN_ERR_OOM ? fail(st, "out of device memory for %zu bytes of scratch", want) : st;
        }
        s->bytes = want;
    }
    *out = s->p;
    return ATTN_OK;
}

inline bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

inline int grid_for(long long threads, int block) {
    long long b = (threads + block - 1) / block;
    if (b < 1) b = 1;
    return (int)(b < (1LL << 20) ? b : (1LL << 20)); /* kernels loop when there are more */
}

/* ---- device helpers ---- */

template <int BYTES> struct Raw;
template <> struct Raw<2> { typedef unsigned short t; };
template <> struct Raw<4> { typedef unsigned int t; };
template <> struct Raw<8> { typedef uint2 t; };
template <> struct Raw<16> { typedef uint4 t; };

/* VEC consecutive elements as floats; one load of sizeof(T) * VEC bytes. */
template <int VEC> __device__ __forceinline__ void ldv(const float *p, float (&v)[VEC]) {
    union {
        typename Raw<4 * VEC>::t r;
        float f[VEC];
    } u;
    u.r = *reinterpret_cast<const typename Raw<4 * VEC>::t *>(p);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = u.f[k];
}
template <int VEC> __device__ __forceinline__ void ldv(const bf16 *p, float (&v)[VEC]) {
    union {
        typename Raw<2 * VEC>::t r;
        unsigned short s[VEC];
    } u;
    u.r = *reinterpret_cast<const typename Raw<2 * VEC>::t *>(p);
#pragma unroll
    for (int k = 0; k < VEC; k++) v[k] = __bfloat162float(__ushort_as_bfloat16(u.s[k]));
}
template <int VEC> __device__ __forceinline__ void stv(float *p, const float (&v)[VEC]) {
    union {
        typename Raw<4 * VEC>::t r;
        float f[VEC];
    } u;
#pragma unroll
    for (int k = 0; k < VEC; k++) u.f[k] = v[k];
    *reinterpret_cast<typename Raw<4 * VEC>::t *>(p) = u.r;
}
template <int VEC> __device__ __forceinline__ void stv(bf16 *p, const float (&v)[VEC]) {
    union {
        typename Raw<2 * VEC>::t r;
        unsigned short s[VEC];
    } u;
#pragma unroll
    for (int k = 0; k < VEC; k++) u.s[k] = __bfloat16_as_ushort(__float2bfloat16_rn(v[k]));
    *reinterpret_cast<typename Raw<2 * VEC>::t *>(p) = u.r;
}

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of NT threads (a multiple of 32), in a fixed order; every
 * thread gets the result. sh: NT / 32 doubles. */
template <int NT> __device__ double block_sum(double v, double *sh) {
    v = warp_sum(v);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double s = 0;
#pragma unroll
    for (int w = 0; w < NT / 32; w++) s += sh[w];
    return s;
}
template <int NT> __device__ float block_max(float v, float *sh) {
    v = warp_max(v);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float m = sh[0];
#pragma unroll
    for (int w = 1; w < NT / 32; w++) m = fmaxf(m, sh[w]);
    return m;
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

constexpr int NT = 256;          /* threads per block of the elementwise and row kernels */
constexpr int WARPS = NT / 32;   /* rows (or row-heads) per block of the row kernels */

/* ---- GEMM helpers ---- */

template <typename T>
__global__ void k_scale_matrix(T *c, int M, int N, int ldc, float beta) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)M * N;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e / N, j = e % N;
        T *p = c + i * ldc + j;
        *p = from_f<T>(beta == 0.0f ? 0.0f : beta * to_f(*p));
    }
}

/* ---- embedding ---- */

template <int VEC>
__global__ void k_embed_fwd(const int32_t *ids, int M, const float *emb, int V, int C, float *of, bf16 *ob) {
    const int cv = C / VEC;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)M * cv;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e / cv;
        int c = (int)(e % cv) * VEC;
        int id = ids[i];
        float v[VEC];
        if (id >= 0 && id < V) ldv<VEC>(emb + (size_t)id * C + c, v);
        else
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = 0.0f;
        if (of) stv<VEC>(of + i * C + c, v);
        if (ob) stv<VEC>(ob + i * C + c, v);
    }
}

__global__ void k_embed_bwd(const int32_t *ids, int M, const float *dy, int V, int C, int pad, float *g) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)M * C;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e / C;
        int c = (int)(e % C);
        int id = ids[i];
        if (id == pad || id < 0 || id >= V) continue;
        atomicAdd(g + (size_t)id * C + c, dy[e]);
    }
}

/* ---- RMSNorm: one warp per row ---- */

/* With xs: besides, xs = s x per column (the residual's scaled copy). */
template <int VEC>
__global__ void __launch_bounds__(NT) k_rmsnorm_fwd(const float *x, const float *w, int rows, int n, float eps,
                                                    float *yf, bf16 *yb, float *r, const float *s, float *xs) {
    const int row = blockIdx.x * WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *xr = x + (size_t)row * n;
    float ss = 0.0f;
    for (int j = lane * VEC; j < n; j += 32 * VEC) {
        float v[VEC];
        ldv<VEC>(xr + j, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) ss += v[k] * v[k];
    }
    ss = warp_sum(ss);
    const float rs = 1.0f / sqrtf(ss / n + eps);
    if (lane == 0) r[row] = rs;
    for (int j = lane * VEC; j < n; j += 32 * VEC) {
        float v[VEC], wv[VEC];
        ldv<VEC>(xr + j, v);
        ldv<VEC>(w + j, wv);
        if (xs) {
            float sv[VEC], o[VEC];
            ldv<VEC>(s + j, sv);
#pragma unroll
            for (int k = 0; k < VEC; k++) o[k] = sv[k] * v[k];
            stv<VEC>(xs + (size_t)row * n + j, o);
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = wv[k] * (v[k] * rs);
        if (yf) stv<VEC>(yf + (size_t)row * n + j, v);
        if (yb) stv<VEC>(yb + (size_t)row * n + j, v);
    }
}

/* dx = r (dy w - x r s), s = mean(dy w x r): mops_rmsnorm_bwd's order of operations. */
template <int VEC>
__global__ void __launch_bounds__(NT) k_rmsnorm_dx(const float *x, const float *r, const float *w, const float *dy,
                                                   int rows, int n, float *dx, int acc) {
    const int row = blockIdx.x * WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const size_t o = (size_t)row * n;
    const float rs = r[row];
    float s = 0.0f;
    for (int j = lane * VEC; j < n; j += 32 * VEC) {
        float xv[VEC], gv[VEC], wv[VEC];
        ldv<VEC>(x + o + j, xv);
        ldv<VEC>(dy + o + j, gv);
        ldv<VEC>(w + j, wv);
#pragma unroll
        for (int k = 0; k < VEC; k++) s += gv[k] * wv[k] * (xv[k] * rs);
    }
    s = warp_sum(s) / n;
    for (int j = lane * VEC; j < n; j += 32 * VEC) {
        float xv[VEC], gv[VEC], wv[VEC], out[VEC];
        ldv<VEC>(x + o + j, xv);
        ldv<VEC>(dy + o + j, gv);
        ldv<VEC>(w + j, wv);
        if (acc) ldv<VEC>(dx + o + j, out);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float v = rs * (gv[k] * wv[k] - xv[k] * rs * s);
            out[k] = acc ? out[k] + v : v;
        }
        stv<VEC>(dx + o + j, out);
    }
}

/* Column sums of a b (times rs[row] when given) over rows: block (32 columns x 8
 * row lanes) per (column slab, row chunk) writes part[chunk, column]; k_colsum_final
 * adds the chunks in order. */
constexpr int CS_ROWS = 8;
__global__ void __launch_bounds__(32 * CS_ROWS) k_colsum_part(const float *a, const float *b, const float *rs,
                                                              int rows, int n, int nch, double *part) {
    __shared__ double sh[CS_ROWS][32];
    const int col = blockIdx.x * 32 + threadIdx.x, ch = blockIdx.y;
    const int lo = (int)((long long)rows * ch / nch), hi = (int)((long long)rows * (ch + 1) / nch);
    double acc = 0.0;
    if (col < n)
        for (int i = lo + threadIdx.y; i < hi; i += CS_ROWS) {
            size_t e = (size_t)i * n + col;
            float prod = rs ? a[e] * (b[e] * rs[i]) : a[e] * b[e];
            acc += (double)prod;
        }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < n) {
        double s = 0.0;
#pragma unroll
        for (int k = 0; k < CS_ROWS; k++) s += sh[k][threadIdx.x];
        part[(size_t)ch * n + col] = s;
    }
}

/* The residual's backward, y = r h + f(h) at one place: the column sums of g h into
 * part (as k_colsum_part, the same chunks and order), and in the same pass over g
 * its copy scaled by the residual vector, gr = r[col] g, and its bf16 copy gb (one
 * read of g instead of three). */
__global__ void __launch_bounds__(32 * CS_ROWS) k_resid_bwd_part(const float *g, const float *h, const float *r,
                                                                 int rows, int n, int nch, double *part, float *gr,
                                                                 bf16 *gb) {
    __shared__ double sh[CS_ROWS][32];
    const int col = blockIdx.x * 32 + threadIdx.x, ch = blockIdx.y;
    const int lo = (int)((long long)rows * ch / nch), hi = (int)((long long)rows * (ch + 1) / nch);
    double acc = 0.0;
    if (col < n) {
        const float rc = r[col];
        for (int i = lo + threadIdx.y; i < hi; i += CS_ROWS) {
            const size_t e = (size_t)i * n + col;
            const float gv = g[e];
            acc += (double)(gv * h[e]);
            gr[e] = rc * gv;
            gb[e] = __float2bfloat16_rn(gv);
        }
    }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < n) {
        double s = 0.0;
#pragma unroll
        for (int k = 0; k < CS_ROWS; k++) s += sh[k][threadIdx.x];
        part[(size_t)ch * n + col] = s;
    }
}

/* out[col] += the sum over the nch rows (ld apart) of part's column col, for col < n:
 * one warp per column, lane l adding rows l, l + 32, ..., then a fixed butterfly (the
 * same result every run). */
__global__ void k_colsum_final(const double *part, int nch, int n, int ld, float *out) {
    const int col = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (col >= n) return;
    double s = 0.0;
    for (int c = lane; c < nch; c += 32) s += part[(size_t)c * ld + col];
#pragma unroll
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if (lane == 0) out[col] += (float)s;
}

/* colsum's and k_resid_bwd_part's chunks of rows */
int colsum_chunks(int rows) {
    const int c = (rows + 127) / 128;
    return c > 128 ? 128 : c;
}

/* out[j] += sum_i a[i, j] b[i, j] (rs[i]) */
attn_status colsum(const float *a, const float *b, const float *rs, int rows, int n, float *out) {
    if (rows <= 0 || n <= 0) return ATTN_OK;
    const int nch = colsum_chunks(rows);
    void *p = nullptr;
    MC_OK(scratch(SCR_PART, (size_t)nch * n * sizeof(double), &p));
    double *part = static_cast<double *>(p);
    dim3 grid((n + 31) / 32, nch), block(32, CS_ROWS);
    k_colsum_part<<<grid, block>>>(a, b, rs, rows, n, nch, part);
    MC_LAUNCH();
    k_colsum_final<<<(n + 7) / 8, 256>>>(part, nch, n, n, out);
    MC_LAUNCH();
    return ATTN_OK;
}

/* ---- q/k norm + RoPE: one warp per (row, head); lane l holds rotation pairs
 * j = l + 32 t (t < NP), i.e. elements j and j + D/2 ---- */

struct QkArgs {
    int M, ld, H, K, D, n, pos0;
    const float *cs, *sn;
    float eps;
    const float *wq, *wk;
};

template <typename T, int NP>
__global__ void __launch_bounds__(NT) k_qk_fwd(const QkArgs a, const T *qkv, T *qf, T *kf, float *rq, float *rk) {
    const long long item = (long long)blockIdx.x * WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, HK = a.H + a.K, h = a.D / 2;
    if (item >= (long long)a.M * HK) return;
    const int i = (int)(item / HK), hh = (int)(item % HK);
    const bool isq = hh < a.H;
    const T *src = qkv + (size_t)i * a.ld + (size_t)hh * a.D;
    float av[NP], bv[NP], ss = 0.0f;
#pragma unroll
    for (int t = 0; t < NP; t++) {
        const int j = lane + 32 * t;
        av[t] = j < h ? to_f(src[j]) : 0.0f;
        bv[t] = j < h ? to_f(src[j + h]) : 0.0f;
        ss += av[t] * av[t] + bv[t] * bv[t];
    }
    ss = warp_sum(ss);
    const float r = 1.0f / sqrtf(ss / a.D + a.eps);
    const int pos = a.pos0 + i % a.n;
    const float *cs = a.cs + (size_t)pos * h, *sn = a.sn + (size_t)pos * h;
    const float *w = isq ? a.wq : a.wk;
    T *dst = isq ? qf + ((size_t)i * a.H + hh) * a.D : kf + ((size_t)i * a.K + (hh - a.H)) * a.D;
#pragma unroll
    for (int t = 0; t < NP; t++) {
        const int j = lane + 32 * t;
        if (j < h) {
            float ya = w[j] * (av[t] * r), yb = w[j + h] * (bv[t] * r);
            dst[j] = from_f<T>(ya * cs[j] - yb * sn[j]);
            dst[j + h] = from_f<T>(yb * cs[j] + ya * sn[j]);
        }
    }
    if (lane == 0) {
        if (isq) rq[(size_t)i * a.H + hh] = r;
        else rk[(size_t)i * a.K + hh - a.H] = r;
    }
}

/* Block b takes rows [M b / G, M (b + 1) / G) (all their heads); each warp keeps
 * its norm-weight partial sums per lane, the block adds the warps in order and
 * writes part[b, 2D] (q then k), k_colsum_final adds the blocks in order. */
template <typename T, int NP>
__global__ void __launch_bounds__(NT) k_qk_bwd(const QkArgs a, const T *qkv, const float *rq, const float *rk,
                                               const T *dqf, const T *dkf, T *dqkv, double *part) {
    __shared__ double sh[WARPS][2][ATTN_MAX_D];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, HK = a.H + a.K, h = a.D / 2, G = gridDim.x;
    const int r0 = (int)((long long)a.M * blockIdx.x / G), r1 = (int)((long long)a.M * (blockIdx.x + 1) / G);
    double acc[2][NP][2];
#pragma unroll
    for (int q = 0; q < 2; q++)
#pragma unroll
        for (int t = 0; t < NP; t++) acc[q][t][0] = acc[q][t][1] = 0.0;
    for (long long item = (long long)r0 * HK + warp; item < (long long)r1 * HK; item += WARPS) {
        const int i = (int)(item / HK), hh = (int)(item % HK);
        const bool isq = hh < a.H;
        const T *src = qkv + (size_t)i * a.ld + (size_t)hh * a.D;
        const T *g = isq ? dqf + ((size_t)i * a.H + hh) * a.D : dkf + ((size_t)i * a.K + (hh - a.H)) * a.D;
        const float r = isq ? rq[(size_t)i * a.H + hh] : rk[(size_t)i * a.K + hh - a.H];
        const float *w = isq ? a.wq : a.wk;
        const int pos = a.pos0 + i % a.n;
        const float *cs = a.cs + (size_t)pos * h, *sn = a.sn + (size_t)pos * h;
        float ta[NP], tb[NP], xa[NP], xb[NP], s = 0.0f;
#pragma unroll
        for (int t = 0; t < NP; t++) {
            const int j = lane + 32 * t;
            if (j < h) {
                float ga = to_f(g[j]), gb = to_f(g[j + h]);
                ta[t] = ga * cs[j] + gb * sn[j];
                tb[t] = gb * cs[j] - ga * sn[j];
                xa[t] = to_f(src[j]);
                xb[t] = to_f(src[j + h]);
                float ha = xa[t] * r, hb = xb[t] * r;
                double pa = (double)(ta[t] * ha), pb = (double)(tb[t] * hb);
                if (isq) acc[0][t][0] += pa, acc[0][t][1] += pb;
                else acc[1][t][0] += pa, acc[1][t][1] += pb;
                s += ta[t] * w[j] * ha + tb[t] * w[j + h] * hb;
            } else {
                ta[t] = tb[t] = xa[t] = xb[t] = 0.0f;
            }
        }
        s = warp_sum(s) / a.D;
        T *dst = dqkv + (size_t)i * a.ld + (size_t)hh * a.D;
#pragma unroll
        for (int t = 0; t < NP; t++) {
            const int j = lane + 32 * t;
            if (j < h) {
                dst[j] = from_f<T>(r * (ta[t] * w[j] - xa[t] * r * s));
                dst[j + h] = from_f<T>(r * (tb[t] * w[j + h] - xb[t] * r * s));
            }
        }
    }
    if (!part) return; /* uniform over the block */
#pragma unroll
    for (int q = 0; q < 2; q++)
#pragma unroll
        for (int t = 0; t < NP; t++) {
            const int j = lane + 32 * t;
            if (j < h) sh[warp][q][j] = acc[q][t][0], sh[warp][q][j + h] = acc[q][t][1];
        }
    __syncthreads();
    for (int e = threadIdx.x; e < 2 * a.D; e += NT) {
        const int q = e / a.D, d = e % a.D;
        double s = 0.0;
#pragma unroll
        for (int w = 0; w < WARPS; w++) s += sh[w][q][d];
        part[(size_t)blockIdx.x * 2 * a.D + e] = s;
    }
}


/* ---- SwiGLU ---- */

template <typename T, int VEC>
__global__ void k_swiglu_fwd(const T *gu, T *act, int M, int F) {
    const int fv = F / VEC;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)M * fv;
         e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / fv;
        const int c = (int)(e % fv) * VEC;
        float g[VEC], u[VEC], o[VEC];
        ldv<VEC>(gu + i * 2 * F + c, g);
        ldv<VEC>(gu + i * 2 * F + F + c, u);
#pragma unroll
        for (int k = 0; k < VEC; k++) o[k] = g[k] * sigmoidf_(g[k]) * u[k];
        stv<VEC>(act + i * F + c, o);
    }
}

/* du = da g s; dg = da u s (1 + g (1 - s)), s = sigmoid(g): layer_backward's order. */
template <typename T, int VEC>
__global__ void k_swiglu_bwd(const T *gu, const T *dact, T *dgu, int M, int F) {
    const int fv = F / VEC;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < (long long)M * fv;
         e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / fv;
        const int c = (int)(e % fv) * VEC;
        float g[VEC], u[VEC], da[VEC], dg[VEC], du[VEC];
        ldv<VEC>(gu + i * 2 * F + c, g);
        ldv<VEC>(gu + i * 2 * F + F + c, u);
        ldv<VEC>(dact + i * F + c, da);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float s = sigmoidf_(g[k]);
            du[k] = da[k] * g[k] * s;
            dg[k] = da[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
        }
        stv<VEC>(dgu + i * 2 * F + c, dg);
        stv<VEC>(dgu + i * 2 * F + F + c, du);
    }
}

/* ---- cross-entropy: one block per row of a logits chunk ---- */

struct CeStats {
    double loss_sum;
    long long count;
    int bad; /* a label outside [0, V) and not MODEL_IGNORE */
};

template <typename T, int VEC>
__global__ void __launch_bounds__(NT) k_ce_rows(const float *logits, const int32_t *labels, int V, float scale,
                                                float *rowloss, double *rowloss_d, T *dlog, CeStats *st) {
    __shared__ double shd[WARPS];
    __shared__ float shf[WARPS];
    const int row = blockIdx.x;
    const float *lr = logits + (size_t)row * V;
    const int y = labels[row];
    const bool valid = y >= 0 && y < V;
    if (!valid) { /* uniform over the block */
        if (y != MODEL_IGNORE && threadIdx.x == 0) st->bad = 1;
        if (threadIdx.x == 0) {
            rowloss_d[row] = 0.0;
            if (rowloss) rowloss[row] = 0.0f;
        }
        if (dlog)
            for (int j = threadIdx.x; j < V; j += NT) dlog[(size_t)row * V + j] = from_f<T>(0.0f);
        return;
    }
    /* one pass for the maximum and the sum of exponentials (each thread rescales its
     * running sum when its maximum grows), then the block's: the row is read twice
     * in all instead of three times */
    float tm = -INFINITY, ts = 0.0f;
    for (int j = threadIdx.x * VEC; j < V; j += NT * VEC) {
        float v[VEC];
        ldv<VEC>(lr + j, v);
        float vm = v[0];
#pragma unroll
        for (int k = 1; k < VEC; k++) vm = fmaxf(vm, v[k]);
        if (vm > tm) {
            ts = tm == -INFINITY ? 0.0f : ts * expf(tm - vm);
            tm = vm;
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) ts += expf(v[k] - tm);
    }
    const float mx = block_max<NT>(tm, shf);
    const float s = tm == -INFINITY ? 0.0f : ts * expf(tm - mx);
    const double lse = (double)mx + log(block_sum<NT>((double)s, shd));
    if (threadIdx.x == 0) {
        double l = lse - (double)lr[y];
        rowloss_d[row] = l;
        if (rowloss) rowloss[row] = (float)l;
    }
    if (!dlog) return;
    const float lsef = (float)lse;
    T *dr = dlog + (size_t)row * V;
    for (int j = threadIdx.x * VEC; j < V; j += NT * VEC) {
        float v[VEC];
        ldv<VEC>(lr + j, v);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = scale * expf(v[k] - lsef) - (j + k == y ? scale : 0.0f);
        stv<VEC>(dr + j, v); /* V % VEC == 0: aligned */
    }
}

constexpr int FIN = 1024; /* threads of the one-block final reductions */

__global__ void __launch_bounds__(FIN) k_ce_final(const double *rowloss_d, const int32_t *labels, int rows, int V,
                                                  CeStats *st) {
    __shared__ double sh[FIN / 32];
    double s = 0.0, c = 0.0;
    for (int i = threadIdx.x; i < rows; i += FIN)
        if (labels[i] >= 0 && labels[i] < V) s += rowloss_d[i], c += 1.0;
    s = block_sum<FIN>(s, sh);
    c = block_sum<FIN>(c, sh);
    if (threadIdx.x == 0) st->loss_sum = s, st->count = (long long)c;
}

/* ---- AdamW over the flat buffer: runs of tensors with one decay flag; block b
 * takes 1024 elements of the run whose first block is the last <= b ---- */

constexpr int ADAM_PER_BLOCK = 4 * NT;

struct AdamArgs {
    float *p, *m1, *m2;
    const float *g;
    bf16 *pb;
    const unsigned long long *run_start; /* (nr + 1) element offsets */
    const int *run_block;                /* (nr + 1) first block of each run */
    const int *run_decay;                /* (nr): 1 decay, 0 none, -1 a gap between tensors (left alone) */
    int nr;
    float b1, b2, step, rbc2, eps, decay, gscale;
};

/* model_adamw_update's expression, each operation rounded on its own (no
 * contraction into FMAs), so the result is the CPU's bit for bit. */
__global__ void __launch_bounds__(NT) k_adamw(const AdamArgs a) {
    const int b = blockIdx.x;
    int lo = 0, hi = a.nr - 1;
    while (lo < hi) { /* the last run whose first block is <= b */
        int mid = (lo + hi + 1) / 2;
        if (a.run_block[mid] <= b) lo = mid;
        else hi = mid - 1;
    }
    if (a.run_decay[lo] < 0) return;
    const size_t base = a.run_start[lo] + (size_t)(b - a.run_block[lo]) * ADAM_PER_BLOCK, end = a.run_start[lo + 1];
    const float decay = a.run_decay[lo] ? a.decay : 1.0f;
    const float c1 = __fsub_rn(1.0f, a.b1), c2 = __fsub_rn(1.0f, a.b2);
#pragma unroll
    for (int k = 0; k < ADAM_PER_BLOCK / NT; k++) {
        const size_t e = base + threadIdx.x + (size_t)k * NT;
        if (e >= end) break;
        const float ge = __fmul_rn(a.g[e], a.gscale);
        const float m1 = __fadd_rn(__fmul_rn(a.b1, a.m1[e]), __fmul_rn(c1, ge));
        const float m2 = __fadd_rn(__fmul_rn(a.b2, a.m2[e]), __fmul_rn(__fmul_rn(c2, ge), ge));
        a.m1[e] = m1, a.m2[e] = m2;
        const float den = __fadd_rn(__fmul_rn(__fsqrt_rn(m2), a.rbc2), a.eps);
        const float p = __fsub_rn(__fmul_rn(a.p[e], decay), __fdiv_rn(__fmul_rn(a.step, m1), den));
        a.p[e] = p;
        if (a.pb) a.pb[e] = __float2bfloat16_rn(p);
    }
}

/* ---- sum of squares: per-block double partials, then one block ---- */

__global__ void __launch_bounds__(NT) k_sumsq_part(const float *g, size_t n, int vec4, double *part) {
    __shared__ double sh[WARPS];
    const size_t tid = blockIdx.x * (size_t)NT + threadIdx.x, stride = (size_t)gridDim.x * NT;
    double s = 0.0;
    size_t done = 0;
    if (vec4) {
        const size_t n4 = n / 4;
        for (size_t i = tid; i < n4; i += stride) {
            float v[4];
            ldv<4>(g + 4 * i, v);
#pragma unroll
            for (int k = 0; k < 4; k++) s += (double)v[k] * v[k];
        }
        done = n4 * 4;
    }
    for (size_t i = done + tid; i < n; i += stride) s += (double)g[i] * g[i];
    s = block_sum<NT>(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void __launch_bounds__(FIN) k_sum_final(const double *part, int n, double *out) {
    __shared__ double sh[FIN / 32];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += FIN) s += part[i];
    s = block_sum<FIN>(s, sh);
    if (threadIdx.x == 0) *out = s;
}

/* ---- elementwise over n: the first nv threads move VEC elements each (16-byte
 * accesses), the rest one element of the tail ---- */

template <typename TI, typename TO, int VEC>
__global__ void k_convert(const TI *src, TO *dst, size_t n, size_t nv, float s) {
    const size_t total = nv + (n - nv * VEC);
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        if (t < nv) {
            float v[VEC];
            ldv<VEC>(src + t * VEC, v);
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = v[k] * s;
            stv<VEC>(dst + t * VEC, v);
        } else {
            const size_t e = nv * VEC + (t - nv);
            dst[e] = from_f<TO>(to_f(src[e]) * s);
        }
    }
}

template <typename TI, typename TO, int VEC>
attn_status convert(const TI *src, TO *dst, size_t n, float s) {
    if (n == 0) return ATTN_OK;
    const size_t nv = aligned(src, sizeof(TI) * VEC) && aligned(dst, sizeof(TO) * VEC) ? n / VEC : 0;
    k_convert<TI, TO, VEC><<<grid_for((long long)(nv + n - nv * VEC), NT), NT>>>(src, dst, n, nv, s);
    MC_LAUNCH();
    return ATTN_OK;
}

/* ---- cuBLASLt ---- */

cublasLtHandle_t g_lt;
void *g_ws;
constexpr size_t WS_BYTES = 32u << 20; /* what cuBLASLt's Hopper kernels want at most */

struct AlgoKey {
    int ta, tb, M, N, K, lda, ldb, ldc, abt, ct;
    unsigned al_a, al_b, al_c;
    bool operator==(const AlgoKey &o) const { return !memcmp(this, &o, sizeof o); }
};
struct AlgoEntry {
    AlgoKey k;
    cublasLtMatmulAlgo_t algo;
    int used;
    int fallback; /* cuBLASLt had no algorithm: cublasGemmEx runs it */
};
constexpr int NALGO = 128;
AlgoEntry g_algo[NALGO];
int g_algo_next;
cublasHandle_t g_blas; /* for the fallback only */
int g_fallbacks;

/* The first call of each GEMM shape times cuBLASLt's first TUNE_CANDIDATES
 * heuristic answers on its own operands (into a scratch C) and keeps the fastest;
 * DMABENCH_GEMM_TUNE=0 takes the first answer instead. Which candidate wins can
 * differ between runs when two are close, and with it the rounding of the results
 * (as the attention backward's fp32 reductions already make it). */
constexpr int TUNE_CANDIDATES = 8, TUNE_REPS = 3;
struct LtDescsRef { /* a GEMM's descriptors, as gemm_lt made them */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
};
bool gemm_tune() {
    static const bool on = !dm_env_is("DMABENCH_GEMM_TUNE", "0");
    return on;
}
/* Of the nres candidates, the index of the fastest on these operands (median of
 * TUNE_REPS after one untimed run, C in scratch); -1 when none runs. */
int gemm_pick(const LtDescsRef &d, const cublasLtMatmulHeuristicResult_t *res, int nres, float alpha, const void *A,
              const void *B, float beta, size_t cbytes) {
    void *C = nullptr; /* freed again below: the timings' memory is not kept */
    if (dm_cuda_alloc(&C, cbytes) != ATTN_OK) {
        cudaGetLastError();
        return -1;
    }
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    if (cudaMemsetAsync(C, 0, cbytes) != cudaSuccess || cudaEventCreate(&e0) != cudaSuccess ||
        cudaEventCreate(&e1) != cudaSuccess) {
        if (e0) cudaEventDestroy(e0);
        dm_cuda_free(C);
        cudaGetLastError();
        return -1;
    }
    int best = -1;
    float best_ms = 0.f;
    for (int i = 0; i < nres; i++) {
        auto run = [&]() {
            return cublasLtMatmul(g_lt, d.op, &alpha, B, d.a, A, d.b, &beta, C, d.c, C, d.c, &res[i].algo, g_ws, WS_BYTES,
                                  0);
        };
        if (run() != CUBLAS_STATUS_SUCCESS) continue;
        float t[TUNE_REPS];
        bool ok = true;
        for (int r = 0; r < TUNE_REPS && ok; r++) {
            ok = cudaEventRecord(e0) == cudaSuccess && run() == CUBLAS_STATUS_SUCCESS &&
                 cudaEventRecord(e1) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
                 cudaEventElapsedTime(&t[r], e0, e1) == cudaSuccess;
        }
        if (!ok) continue;
        std::sort(t, t + TUNE_REPS);
        const float med = t[TUNE_REPS / 2];
        if (best < 0 || med < best_ms) best = i, best_ms = med;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaDeviceSynchronize();
    dm_cuda_free(C);
    cudaGetLastError(); /* a candidate that failed leaves no error behind */
    return best;
}

/* Largest power of two (<= 256) dividing the address of every column: the
 * pointer and the leading dimension in bytes. */
unsigned align_of(const void *p, long long ld_bytes) {
    unsigned long long v = (unsigned long long)(uintptr_t)p | (unsigned long long)ld_bytes | 256ull;
    return (unsigned)(v & (~v + 1));
}

/* Releases the descriptors on every path out of gemm_lt. */
struct LtDescs {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~LtDescs() {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

attn_status lt_ready() {
    if (!g_lt) LT_CHECK(cublasLtCreate(&g_lt));
    if (!g_ws) {
        attn_status st = dm_cuda_alloc(&g_ws, WS_BYTES);
        if (st == ATTN_ERR_CUDA) g_own_err = 0;
        if (st != ATTN_OK) return st == ATTN_ERR_OOM ? fail(st, "out of device memory for the GEMM workspace") : st;
    }
    return ATTN_OK;
}

/* Row-major C (M, N) = alpha op(A) op(B) + beta C is column-major C^T (N, M) =
 * alpha op(B)^T op(A)^T + beta C^T: cuBLASLt's first operand is our B, its second
 * our A, each seen column-major as the transpose of what is stored. */
attn_status gemm_lt(int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B, int ldb,
                    cudaDataType_t abt, size_t abs, float beta, void *C, int ldc, cudaDataType_t ct, size_t cs) {
    if (M == 0 || N == 0) return ATTN_OK;
    if (K == 0) { /* C = beta C */
        if (ct == CUDA_R_32F) k_scale_matrix<float><<<grid_for((long long)M * N, NT), NT>>>((float *)C, M, N, ldc, beta);
        else k_scale_matrix<bf16><<<grid_for((long long)M * N, NT), NT>>>((bf16 *)C, M, N, ldc, beta);
        MC_LAUNCH();
        return ATTN_OK;
    }
    MC_OK(lt_ready());
    LtDescs d;
    LT_CHECK(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&d.a, abt, tb ? K : N, tb ? N : K, ldb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&d.b, abt, ta ? M : K, ta ? K : M, lda));
    LT_CHECK(cublasLtMatrixLayoutCreate(&d.c, ct, N, M, ldc));

    AlgoKey key;
    memset(&key, 0, sizeof key);
    key.ta = ta, key.tb = tb, key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.abt = (int)abt, key.ct = (int)ct;
    key.al_a = align_of(B, (long long)ldb * abs); /* cuBLASLt's A is our B */
    key.al_b = align_of(A, (long long)lda * abs);
    key.al_c = align_of(C, (long long)ldc * cs);
    const cublasLtMatmulAlgo_t *algo = nullptr;
    int fb = 0;
    for (int e = 0; e < NALGO && !algo; e++)
        if (g_algo[e].used && g_algo[e].k == key) algo = &g_algo[e].algo, fb = g_algo[e].fallback;
    if (!algo) {
        LT_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
        uint64_t ws = WS_BYTES;
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.al_a,
                                                      sizeof key.al_a));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.al_b,
                                                      sizeof key.al_b));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.al_c,
                                                      sizeof key.al_c));
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.al_c,
                                                      sizeof key.al_c));
        cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
        int nres = 0;
        /* no algorithm shows either as nres = 0 or as CUBLAS_STATUS_NOT_SUPPORTED: both
         * mean the fallback, which is remembered for the shape like an algorithm */
        cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(g_lt, d.op, d.a, d.b, d.c, d.c, d.pref,
                                                           gemm_tune() ? TUNE_CANDIDATES : 1, res, &nres);
        if (hs == CUBLAS_STATUS_NOT_SUPPORTED) nres = 0;
        else LT_CHECK(hs);
        int pick = 0;
        if (nres > 1) { /* DMABENCH_GEMM_TUNE=1 */
            const size_t cbytes = ((size_t)(M - 1) * ldc + N) * cs;
            pick = gemm_pick(LtDescsRef{d.op, d.a, d.b, d.c}, res, nres, alpha, A, B, beta, cbytes);
            if (pick < 0) pick = 0;
        }
        AlgoEntry *en = &g_algo[g_algo_next];
        g_algo_next = (g_algo_next + 1) % NALGO;
        en->k = key, en->used = 1, en->fallback = nres < 1;
        if (nres >= 1) en->algo = res[pick].algo;
        fb = en->fallback;
        algo = &en->algo;
    }
    if (!fb) {
        LT_CHECK(cublasLtMatmul(g_lt, d.op, &alpha, B, d.a, A, d.b, &beta, C, d.c, C, d.c, algo, g_ws, WS_BYTES, 0));
        MC_LAUNCH();
        return ATTN_OK;
    }
    /* no cuBLASLt algorithm for these alignments: cuBLAS's cublasGemmEx, same operands, same fp32 accumulation */
    g_fallbacks++;
    if (!g_blas) BLAS_CHECK(cublasCreate(&g_blas));
    BLAS_CHECK(cublasGemmEx(g_blas, opa, opb, N, M, K, &alpha, B, abt, ldb, A, abt, lda, &beta, C, ct, ldc,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    MC_LAUNCH();
    return ATTN_OK;
}

attn_status gemm_check(int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                       const void *C, int ldc) {
    if (M < 0 || N < 0 || K < 0) return fail(ATTN_ERR_INVALID, "GEMM sizes must be >= 0 (M %d, N %d, K %d)", M, N, K);
    const int wa = ta ? M : K, wb = tb ? K : N; /* row lengths of the stored A and B */
    if (M && N && K && (lda < (wa > 1 ? wa : 1) || ldb < (wb > 1 ? wb : 1)))
        return fail(ATTN_ERR_INVALID, "GEMM leading dimensions too small: lda %d (need %d), ldb %d (need %d)", lda, wa,
                    ldb, wb);
    if (M && N && ldc < N) return fail(ATTN_ERR_INVALID, "GEMM ldc %d < N %d", ldc, N);
    if (M && N && (!C || (K && (!A || !B)))) return fail(ATTN_ERR_INVALID, "GEMM with a NULL matrix");
    return ATTN_OK;
}

/* ---- q/k launch ---- */

template <typename T>
attn_status qk_forward(const QkArgs &a, const void *qkv, void *qf, void *kf, float *rq, float *rk) {
    const int h = a.D / 2, np = (h + 31) / 32;
    const int grid = dm_div_up((long long)a.M * (a.H + a.K), WARPS);
    const T *x = static_cast<const T *>(qkv);
    T *q = static_cast<T *>(qf), *k = static_cast<T *>(kf);
    switch (np) {
    case 1: k_qk_fwd<T, 1><<<grid, NT>>>(a, x, q, k, rq, rk); break;
    case 2: k_qk_fwd<T, 2><<<grid, NT>>>(a, x, q, k, rq, rk); break;
    case 3: k_qk_fwd<T, 3><<<grid, NT>>>(a, x, q, k, rq, rk); break;
    default: k_qk_fwd<T, 4><<<grid, NT>>>(a, x, q, k, rq, rk); break;
    }
    MC_LAUNCH();
    return ATTN_OK;
}

template <typename T>
attn_status qk_backward(const QkArgs &a, int G, const void *qkv, const float *rq, const float *rk, const void *dqf,
                        const void *dkf, void *dqkv, double *part) {
    const int h = a.D / 2, np = (h + 31) / 32;
    const T *x = static_cast<const T *>(qkv), *gq = static_cast<const T *>(dqf), *gk = static_cast<const T *>(dkf);
    T *out = static_cast<T *>(dqkv);
    switch (np) {
    case 1: k_qk_bwd<T, 1><<<G, NT>>>(a, x, rq, rk, gq, gk, out, part); break;
    case 2: k_qk_bwd<T, 2><<<G, NT>>>(a, x, rq, rk, gq, gk, out, part); break;
    case 3: k_qk_bwd<T, 3><<<G, NT>>>(a, x, rq, rk, gq, gk, out, part); break;
    default: k_qk_bwd<T, 4><<<G, NT>>>(a, x, rq, rk, gq, gk, out, part); break;
    }
    MC_LAUNCH();
    return ATTN_OK;
}

attn_status qk_check(const mcuda_qk_shape *s, attn_dtype act) {
    if (!s) return fail(ATTN_ERR_INVALID, "q/k norm: no shape");
    if (act != ATTN_DTYPE_F32 && act != ATTN_DTYPE_BF16)
        return fail(ATTN_ERR_INVALID, "q/k norm: dtype %s (bf16 or f32 only)", attn_dtype_name(act));
    if (s->M < 0 || s->H < 1 || s->K < 1 || s->n < 1 || s->pos0 < 0)
        return fail(ATTN_ERR_INVALID, "q/k norm: bad shape (M %d, H %d, K %d, n %d, pos0 %d)", s->M, s->H, s->K, s->n,
                    s->pos0);
    if (s->D < 2 || s->D % 2 || s->D > ATTN_MAX_D)
        return fail(ATTN_ERR_INVALID, "q/k norm: head dim %d must be even and in [2, %d]", s->D, ATTN_MAX_D);
    if (s->ld < (s->H + 2 * s->K) * s->D)
        return fail(ATTN_ERR_INVALID, "q/k norm: row stride %d < (H + 2K) D = %d", s->ld, (s->H + 2 * s->K) * s->D);
    if (s->rope_len < s->pos0 + (s->M < s->n ? s->M : s->n) || !s->d_cos || !s->d_sin)
        return fail(ATTN_ERR_INVALID, "q/k norm: the RoPE tables (%d positions) do not reach position %d",
                    s->rope_len, s->pos0 + s->n - 1);
    return ATTN_OK;
}

QkArgs qk_args(const mcuda_qk_shape *s, const float *wq, const float *wk) {
    QkArgs a;
    a.M = s->M, a.ld = s->ld, a.H = s->H, a.K = s->K, a.D = s->D, a.n = s->n, a.pos0 = s->pos0;
    a.cs = s->d_cos, a.sn = s->d_sin, a.eps = s->eps, a.wq = wq, a.wk = wk;
    return a;
}

} /* namespace */

/* ==== the C API ==== */

extern "C" const char *mcuda_last_error(void) { return g_own_err ? g_err : dm_cuda_last_error(); }

extern "C" int mcuda_gemm_fallbacks(void) { return g_fallbacks; }

extern "C" void mcuda_release(void) {
    if (g_lt) cublasLtDestroy(g_lt);
    g_lt = nullptr;
    if (g_blas) cublasDestroy(g_blas);
    g_blas = nullptr;
    dm_cuda_free(g_ws);
    g_ws = nullptr;
    memset(g_algo, 0, sizeof g_algo);
    g_algo_next = 0;
    for (int s = 0; s < SCR_N; s++) {
        dm_cuda_free(g_scr[s].p);
        g_scr[s].p = nullptr, g_scr[s].bytes = 0;
    }
}

extern "C" attn_status mcuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const mcuda_bf16 *d_A, int lda,
                                  const mcuda_bf16 *d_B, int ldb, float beta, void *d_C, int ldc, attn_dtype c_dtype) {
    MC_OK(gemm_check(ta, tb, M, N, K, d_A, lda, d_B, ldb, d_C, ldc));
    if (c_dtype != ATTN_DTYPE_F32 && c_dtype != ATTN_DTYPE_BF16)
        return fail(ATTN_ERR_INVALID, "GEMM output dtype %s (f32 or bf16 only)", attn_dtype_name(c_dtype));
    const bool cf = c_dtype == ATTN_DTYPE_F32;
    return gemm_lt(ta, tb, M, N, K, alpha, d_A, lda, d_B, ldb, CUDA_R_16BF, 2, beta, d_C, ldc,
                   cf ? CUDA_R_32F : CUDA_R_16BF, cf ? 4 : 2);
}

extern "C" attn_status mcuda_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *d_A, int lda,
                                      const float *d_B, int ldb, float beta, float *d_C, int ldc) {
    MC_OK(gemm_check(ta, tb, M, N, K, d_A, lda, d_B, ldb, d_C, ldc));
    return gemm_lt(ta, tb, M, N, K, alpha, d_A, lda, d_B, ldb, CUDA_R_32F, 4, beta, d_C, ldc, CUDA_R_32F, 4);
}

extern "C" attn_status mcuda_embed_forward(const int32_t *d_ids, int M, const float *d_emb, int V, int C,
                                           float *d_out_f32, mcuda_bf16 *d_out_bf16) {
    if (M < 0 || V < 1 || C < 1) return fail(ATTN_ERR_INVALID, "embedding: bad shape (M %d, V %d, C %d)", M, V, C);
    if (!d_out_f32 && !d_out_bf16) return fail(ATTN_ERR_INVALID, "embedding: no output");
    if (M == 0) return ATTN_OK;
    bf16 *ob = reinterpret_cast<bf16 *>(d_out_bf16);
    const bool v4 =
        C % 4 == 0 && aligned(d_emb, 16) && (!d_out_f32 || aligned(d_out_f32, 16)) && (!ob || aligned(ob, 8));
    if (v4) k_embed_fwd<4><<<grid_for((long long)M * C / 4, NT), NT>>>(d_ids, M, d_emb, V, C, d_out_f32, ob);
    else k_embed_fwd<1><<<grid_for((long long)M * C, NT), NT>>>(d_ids, M, d_emb, V, C, d_out_f32, ob);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_embed_backward(const int32_t *d_ids, int M, const float *d_dy, int V, int C, int pad,
                                            float *d_gemb) {
    if (M < 0 || V < 1 || C < 1) return fail(ATTN_ERR_INVALID, "embedding: bad shape (M %d, V %d, C %d)", M, V, C);
    if (M == 0) return ATTN_OK;
    k_embed_bwd<<<grid_for((long long)M * C, NT), NT>>>(d_ids, M, d_dy, V, C, pad, d_gemb);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_rmsnorm_forward(const float *d_x, const float *d_w, int rows, int n, float eps,
                                             float *d_y_f32, mcuda_bf16 *d_y_bf16, float *d_r) {
    if (rows < 0 || n < 1) return fail(ATTN_ERR_INVALID, "RMSNorm: bad shape (rows %d, n %d)", rows, n);
    if (!d_y_f32 && !d_y_bf16) return fail(ATTN_ERR_INVALID, "RMSNorm: no output");
    if (rows == 0) return ATTN_OK;
    bf16 *yb = reinterpret_cast<bf16 *>(d_y_bf16);
    const bool v4 = n % 4 == 0 && aligned(d_x, 16) && aligned(d_w, 16) && (!d_y_f32 || aligned(d_y_f32, 16)) &&
                    (!yb || aligned(yb, 8));
    const int grid = dm_div_up(rows, WARPS);
    if (v4) k_rmsnorm_fwd<4><<<grid, NT>>>(d_x, d_w, rows, n, eps, d_y_f32, yb, d_r, nullptr, nullptr);
    else k_rmsnorm_fwd<1><<<grid, NT>>>(d_x, d_w, rows, n, eps, d_y_f32, yb, d_r, nullptr, nullptr);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_rmsnorm_forward_res(const float *d_x, const float *d_w, int rows, int n, float eps,
                                                 mcuda_bf16 *d_y_bf16, float *d_r, const float *d_s, float *d_xs) {
    if (rows < 0 || n < 1) return fail(ATTN_ERR_INVALID, "RMSNorm: bad shape (rows %d, n %d)", rows, n);
    if (!d_y_bf16 || !d_s || !d_xs) return fail(ATTN_ERR_INVALID, "RMSNorm with the residual: an output is missing");
    if (rows == 0) return ATTN_OK;
    bf16 *yb = reinterpret_cast<bf16 *>(d_y_bf16);
    const bool v4 = n % 4 == 0 && aligned(d_x, 16) && aligned(d_w, 16) && aligned(yb, 8) && aligned(d_s, 16) &&
                    aligned(d_xs, 16);
    const int grid = dm_div_up(rows, WARPS);
    if (v4) k_rmsnorm_fwd<4><<<grid, NT>>>(d_x, d_w, rows, n, eps, nullptr, yb, d_r, d_s, d_xs);
    else k_rmsnorm_fwd<1><<<grid, NT>>>(d_x, d_w, rows, n, eps, nullptr, yb, d_r, d_s, d_xs);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_rmsnorm_backward(const float *d_x, const float *d_r, const float *d_w,
                                              const float *d_dy, int rows, int n, float *d_dx, int acc, float *d_dw) {
    if (rows < 0 || n < 1) return fail(ATTN_ERR_INVALID, "RMSNorm: bad shape (rows %d, n %d)", rows, n);
    if (rows == 0) return ATTN_OK;
    const bool v4 = n % 4 == 0 && aligned(d_x, 16) && aligned(d_w, 16) && aligned(d_dy, 16) && aligned(d_dx, 16);
    const int grid = dm_div_up(rows, WARPS);
    if (v4) k_rmsnorm_dx<4><<<grid, NT>>>(d_x, d_r, d_w, d_dy, rows, n, d_dx, acc);
    else k_rmsnorm_dx<1><<<grid, NT>>>(d_x, d_r, d_w, d_dy, rows, n, d_dx, acc);
    MC_LAUNCH();
    if (d_dw) MC_OK(colsum(d_dy, d_x, d_r, rows, n, d_dw));
    return ATTN_OK;
}

extern "C" attn_status mcuda_colsum_prod(const float *d_a, const float *d_b, int rows, int n, float *d_out) {
    if (rows < 0 || n < 0) return fail(ATTN_ERR_INVALID, "column sums: bad shape (rows %d, n %d)", rows, n);
    return colsum(d_a, d_b, nullptr, rows, n, d_out);
}

extern "C" attn_status mcuda_residual_backward(const float *d_g, const float *d_h, const float *d_r, int rows, int n,
                                               float *d_gr, mcuda_bf16 *d_gb, float *d_dr) {
    if (rows < 0 || n < 0) return fail(ATTN_ERR_INVALID, "residual backward: bad shape (rows %d, n %d)", rows, n);
    if (rows == 0 || n == 0) return ATTN_OK;
    const int nch = colsum_chunks(rows);
    void *p = nullptr;
    MC_OK(scratch(SCR_PART, (size_t)nch * n * sizeof(double), &p));
    double *part = static_cast<double *>(p);
    dim3 grid((n + 31) / 32, nch), block(32, CS_ROWS);
    k_resid_bwd_part<<<grid, block>>>(d_g, d_h, d_r, rows, n, nch, part, d_gr, reinterpret_cast<bf16 *>(d_gb));
    MC_LAUNCH();
    k_colsum_final<<<(n + 7) / 8, 256>>>(part, nch, n, n, d_dr);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_qk_norm_rope_forward(const mcuda_qk_shape *s, const void *d_qkv, const float *d_wq,
                                                  const float *d_wk, void *d_qf, void *d_kf, float *d_rq,
                                                  float *d_rk, attn_dtype act) {
    MC_OK(qk_check(s, act));
    if (s->M == 0) return ATTN_OK;
    QkArgs a = qk_args(s, d_wq, d_wk);
    return act == ATTN_DTYPE_BF16 ? qk_forward<bf16>(a, d_qkv, d_qf, d_kf, d_rq, d_rk)
                                  : qk_forward<float>(a, d_qkv, d_qf, d_kf, d_rq, d_rk);
}

extern "C" attn_status mcuda_qk_norm_rope_backward(const mcuda_qk_shape *s, const void *d_qkv, const float *d_wq,
                                                   const float *d_wk, const float *d_rq, const float *d_rk,
                                                   const void *d_dqf, const void *d_dkf, void *d_dqkv, float *d_dwq,
                                                   float *d_dwk, attn_dtype act) {
    MC_OK(qk_check(s, act));
    if (s->M == 0) return ATTN_OK;
    QkArgs a = qk_args(s, d_wq, d_wk);
    int G = dm_div_up(s->M, 16); /* about 16 rows of all heads per block */
    if (G > 1024) G = 1024;
    double *part = nullptr;
    if (d_dwq || d_dwk) {
        void *p = nullptr;
        MC_OK(scratch(SCR_PART, (size_t)G * 2 * s->D * sizeof(double), &p));
        part = static_cast<double *>(p);
    }
    MC_OK(act == ATTN_DTYPE_BF16 ? qk_backward<bf16>(a, G, d_qkv, d_rq, d_rk, d_dqf, d_dkf, d_dqkv, part)
                                 : qk_backward<float>(a, G, d_qkv, d_rq, d_rk, d_dqf, d_dkf, d_dqkv, part));
    /* the blocks' partial sums (q then k, 2 D per block) in fixed order */
    if (d_dwq) {
        k_colsum_final<<<dm_div_up(s->D, 8), 256>>>(part, G, s->D, 2 * s->D, d_dwq);
        MC_LAUNCH();
    }
    if (d_dwk) {
        k_colsum_final<<<dm_div_up(s->D, 8), 256>>>(part + s->D, G, s->D, 2 * s->D, d_dwk);
        MC_LAUNCH();
    }
    return ATTN_OK;
}

extern "C" attn_status mcuda_swiglu_forward(const void *d_gu, void *d_act, int M, int F, attn_dtype act) {
    if (M < 0 || F < 1) return fail(ATTN_ERR_INVALID, "SwiGLU: bad shape (M %d, F %d)", M, F);
    if (act != ATTN_DTYPE_F32 && act != ATTN_DTYPE_BF16)
        return fail(ATTN_ERR_INVALID, "SwiGLU: dtype %s (bf16 or f32 only)", attn_dtype_name(act));
    if (M == 0) return ATTN_OK;
    const bool v = aligned(d_gu, 16) && aligned(d_act, 16);
    if (act == ATTN_DTYPE_BF16) {
        const bf16 *gu = static_cast<const bf16 *>(d_gu);
        bf16 *o = static_cast<bf16 *>(d_act);
        if (v && F % 8 == 0) k_swiglu_fwd<bf16, 8><<<grid_for((long long)M * F / 8, NT), NT>>>(gu, o, M, F);
        else k_swiglu_fwd<bf16, 1><<<grid_for((long long)M * F, NT), NT>>>(gu, o, M, F);
    } else {
        const float *gu = static_cast<const float *>(d_gu);
        float *o = static_cast<float *>(d_act);
        if (v && F % 4 == 0) k_swiglu_fwd<float, 4><<<grid_for((long long)M * F / 4, NT), NT>>>(gu, o, M, F);
        else k_swiglu_fwd<float, 1><<<grid_for((long long)M * F, NT), NT>>>(gu, o, M, F);
    }
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_swiglu_backward(const void *d_gu, const void *d_dact, void *d_dgu, int M, int F,
                                             attn_dtype act) {
    if (M < 0 || F < 1) return fail(ATTN_ERR_INVALID, "SwiGLU: bad shape (M %d, F %d)", M, F);
    if (act != ATTN_DTYPE_F32 && act != ATTN_DTYPE_BF16)
        return fail(ATTN_ERR_INVALID, "SwiGLU: dtype %s (bf16 or f32 only)", attn_dtype_name(act));
    if (M == 0) return ATTN_OK;
    const bool v = aligned(d_gu, 16) && aligned(d_dact, 16) && aligned(d_dgu, 16);
    if (act == ATTN_DTYPE_BF16) {
        const bf16 *gu = static_cast<const bf16 *>(d_gu), *da = static_cast<const bf16 *>(d_dact);
        bf16 *o = static_cast<bf16 *>(d_dgu);
        if (v && F % 8 == 0) k_swiglu_bwd<bf16, 8><<<grid_for((long long)M * F / 8, NT), NT>>>(gu, da, o, M, F);
        else k_swiglu_bwd<bf16, 1><<<grid_for((long long)M * F, NT), NT>>>(gu, da, o, M, F);
    } else {
        const float *gu = static_cast<const float *>(d_gu), *da = static_cast<const float *>(d_dact);
        float *o = static_cast<float *>(d_dgu);
        if (v && F % 4 == 0) k_swiglu_bwd<float, 4><<<grid_for((long long)M * F / 4, NT), NT>>>(gu, da, o, M, F);
        else k_swiglu_bwd<float, 1><<<grid_for((long long)M * F, NT), NT>>>(gu, da, o, M, F);
    }
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_cross_entropy(const void *d_x, const void *d_w, attn_dtype dtype,
                                           const int32_t *d_labels, int rows, int C, int V, int chunk, double scale,
                                           float *d_rowloss, float *d_dx, float *d_dw, int64_t *count, double *loss_sum) {
    if (rows < 0 || C < 1 || V < 1)
        return fail(ATTN_ERR_INVALID, "cross-entropy: bad shape (rows %d, C %d, V %d)", rows, C, V);
    if (dtype != ATTN_DTYPE_BF16 && dtype != ATTN_DTYPE_F32)
        return fail(ATTN_ERR_INVALID, "cross-entropy: dtype %s (bf16 or f32 only)", attn_dtype_name(dtype));
    const bool bf = dtype == ATTN_DTYPE_BF16;
    const size_t es = bf ? 2 : 4;
    const cudaDataType_t dt = bf ? CUDA_R_16BF : CUDA_R_32F;
    if (rows == 0) {
        if (count) *count = 0;
        if (loss_sum) *loss_sum = 0;
        return ATTN_OK;
    }
    if (chunk <= 0) {
        long long c = (128ll << 20) / ((long long)V * 4);
        chunk = (int)(c < 1 ? 1 : c);
    }
    if (chunk > rows) chunk = rows;
    const bool grad = d_dx || d_dw;
    void *lp = nullptr, *dp = nullptr, *rp = nullptr;
    MC_OK(scratch(SCR_LOGITS, (size_t)chunk * V * sizeof(float), &lp));
    if (grad) MC_OK(scratch(SCR_DLOGITS, (size_t)chunk * V * es, &dp));
    MC_OK(scratch(SCR_ROWS, (size_t)rows * sizeof(double) + sizeof(CeStats), &rp));
    float *logits = static_cast<float *>(lp);
    double *rowloss_d = static_cast<double *>(rp);
    CeStats *st = reinterpret_cast<CeStats *>(rowloss_d + rows);
    MC_CHECK(cudaMemsetAsync(st, 0, sizeof(CeStats)));
    const bool v4 = V % 4 == 0; /* logits rows start 16-byte aligned */
    for (int r0 = 0; r0 < rows; r0 += chunk) {
        const int cr = rows - r0 < chunk ? rows - r0 : chunk;
        const void *xc = static_cast<const char *>(d_x) + (size_t)r0 * C * es;
        /* logits (cr, V) = x_chunk W^T */
        MC_OK(gemm_lt(0, 1, cr, V, C, 1.0f, xc, C, d_w, C, dt, es, 0.0f, logits, V, CUDA_R_32F, 4));
        float *rl = d_rowloss ? d_rowloss + r0 : nullptr;
        const float sc = (float)scale;
        const int32_t *lab = d_labels + r0;
        if (bf) {
            bf16 *dl = static_cast<bf16 *>(dp);
            if (v4) k_ce_rows<bf16, 4><<<cr, NT>>>(logits, lab, V, sc, rl, rowloss_d + r0, dl, st);
            else k_ce_rows<bf16, 1><<<cr, NT>>>(logits, lab, V, sc, rl, rowloss_d + r0, dl, st);
        } else {
            float *dl = static_cast<float *>(dp);
            if (v4) k_ce_rows<float, 4><<<cr, NT>>>(logits, lab, V, sc, rl, rowloss_d + r0, dl, st);
            else k_ce_rows<float, 1><<<cr, NT>>>(logits, lab, V, sc, rl, rowloss_d + r0, dl, st);
        }
        MC_LAUNCH();
        /* dx_chunk (cr, C) = dlogits W;  dW (V, C) += dlogits^T x_chunk */
        if (d_dx)
            MC_OK(gemm_lt(0, 0, cr, C, V, 1.0f, dp, V, d_w, C, dt, es, 0.0f, d_dx + (size_t)r0 * C, C, CUDA_R_32F, 4));
        if (d_dw) MC_OK(gemm_lt(1, 0, V, C, cr, 1.0f, dp, V, xc, C, dt, es, 1.0f, d_dw, C, CUDA_R_32F, 4));
    }
    if (!count && !loss_sum) return ATTN_OK;
    k_ce_final<<<1, FIN>>>(rowloss_d, d_labels, rows, V, st);
    MC_LAUNCH();
    CeStats h;
    MC_CHECK(cudaMemcpy(&h, st, sizeof h, cudaMemcpyDeviceToHost));
    if (h.bad) return fail(ATTN_ERR_INVALID, "cross-entropy: a label is neither %d nor in [0, %d)", MODEL_IGNORE, V);
    if (count) *count = h.count;
    if (loss_sum) *loss_sum = h.loss_sum;
    return ATTN_OK;
}

/* ---- AdamW ---- */

struct mcuda_adamw {
    float *m1, *m2;           /* (np) */
    size_t np;
    int64_t t;                /* updates done */
    int nr, nblocks;          /* decay runs; blocks of one update */
    unsigned long long *run_start; /* device (nr + 1) */
    int *run_block, *run_decay;    /* device (nr + 1), (nr) */
};

extern "C" attn_status mcuda_adamw_create(const model_tensor *t, int nt, size_t np, mcuda_adamw **out) {
    *out = nullptr;
    if (!t || nt < 1 || np == 0) return fail(ATTN_ERR_INVALID, "AdamW: no tensors");
    /* runs of adjacent tensors with one decay flag, and the gaps before aligned
     * tensors as runs of their own that the kernel leaves alone, together covering
     * [0, np) exactly */
    unsigned long long *rs = (unsigned long long *)calloc(2 * (size_t)nt + 2, sizeof *rs);
    int *rb = (int *)calloc(2 * (size_t)nt + 2, sizeof *rb), *rd = (int *)calloc(2 * (size_t)nt + 1, sizeof *rd);
    if (!rs || !rb || !rd) {
        free(rs), free(rb), free(rd);
        return fail(ATTN_ERR_OOM, "AdamW: out of host memory");
    }
    int nr = 0;
    size_t at = 0;
    long long blocks = 0;
    attn_status st = ATTN_OK;
    for (int i = 0; i < nt && st == ATTN_OK; i++) {
        if (t[i].offset < at)
            st = fail(ATTN_ERR_INVALID, "AdamW: tensor %d (%s) overlaps the one before", i, t[i].name);
        if (t[i].numel == 0 || st != ATTN_OK) continue;
        if (t[i].offset > at) rs[nr] = at, rd[nr] = -1, nr++; /* a gap */
        at = t[i].offset;
        int dec = t[i].decay ? 1 : 0;
        if (nr == 0 || rd[nr - 1] != dec) rs[nr] = at, rd[nr] = dec, nr++;
        at += t[i].numel;
    }
    if (st == ATTN_OK && at != np) st = fail(ATTN_ERR_INVALID, "AdamW: the tensors end at %zu of %zu floats", at, np);
    if (st == ATTN_OK) {
        rs[nr] = np;
        for (int r = 0; r < nr; r++) {
            rb[r] = (int)blocks;
            blocks += (long long)((rs[r + 1] - rs[r] + ADAM_PER_BLOCK - 1) / ADAM_PER_BLOCK);
        }
        rb[nr] = (int)blocks;
        if (blocks > INT32_MAX) st = fail(ATTN_ERR_INVALID, "AdamW: %zu parameters are too many", np);
    }
    mcuda_adamw *o = nullptr;
    if (st == ATTN_OK) {
        o = (mcuda_adamw *)calloc(1, sizeof *o);
        if (!o) st = fail(ATTN_ERR_OOM, "AdamW: out of host memory");
    }
    if (st == ATTN_OK) {
        o->np = np, o->nr = nr, o->nblocks = (int)blocks;
        void *p[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
        size_t sz[5] = {np * sizeof(float), np * sizeof(float), ((size_t)nr + 1) * sizeof *rs,
                        ((size_t)nr + 1) * sizeof(int), (size_t)nr * sizeof(int)};
        for (int k = 0; k < 5 && st == ATTN_OK; k++) {
            st = dm_cuda_alloc(&p[k], sz[k]);
            if (st == ATTN_ERR_CUDA) g_own_err = 0;
            if (st == ATTN_ERR_OOM) fail(st, "AdamW: out of device memory for %zu parameters", np);
        }
        o->m1 = (float *)p[0], o->m2 = (float *)p[1];
        o->run_start = (unsigned long long *)p[2], o->run_block = (int *)p[3], o->run_decay = (int *)p[4];
        if (st == ATTN_OK) st = dm_cuda_memset(o->m1, 0, sz[0]);
        if (st == ATTN_OK) st = dm_cuda_memset(o->m2, 0, sz[1]);
        if (st == ATTN_OK) st = dm_cuda_h2d(o->run_start, rs, sz[2]);
        if (st == ATTN_OK) st = dm_cuda_h2d(o->run_block, rb, sz[3]);
        if (st == ATTN_OK) st = dm_cuda_h2d(o->run_decay, rd, sz[4]);
        if (st == ATTN_ERR_CUDA) g_own_err = 0;
    }
    free(rs), free(rb), free(rd);
    if (st != ATTN_OK) {
        mcuda_adamw_free(o);
        return st;
    }
    *out = o;
    return ATTN_OK;
}

extern "C" void mcuda_adamw_free(mcuda_adamw *o) {
    if (!o) return;
    dm_cuda_free(o->m1);
    dm_cuda_free(o->m2);
    dm_cuda_free(o->run_start);
    dm_cuda_free(o->run_block);
    dm_cuda_free(o->run_decay);
    free(o);
}

extern "C" float *mcuda_adamw_m1(mcuda_adamw *o) { return o->m1; }
extern "C" float *mcuda_adamw_m2(mcuda_adamw *o) { return o->m2; }
extern "C" int64_t mcuda_adamw_steps(const mcuda_adamw *o) { return o->t; }
extern "C" void mcuda_adamw_set_steps(mcuda_adamw *o, int64_t steps) { o->t = steps; }

extern "C" attn_status mcuda_adamw_update(mcuda_adamw *o, float *d_p, const float *d_g, mcuda_bf16 *d_p_bf16,
                                          double lr, const model_train_config *t, float gscale) {
    if (!o || !d_p || !d_g || !t) return fail(ATTN_ERR_INVALID, "AdamW: NULL argument");
    o->t++;
    /* the host-side constants exactly as model_adamw_update computes them */
    double b1 = t->beta1, b2 = t->beta2;
    double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    AdamArgs a;
    a.p = d_p, a.m1 = o->m1, a.m2 = o->m2, a.g = d_g, a.pb = reinterpret_cast<bf16 *>(d_p_bf16);
    a.run_start = o->run_start, a.run_block = o->run_block, a.run_decay = o->run_decay, a.nr = o->nr;
    a.b1 = (float)b1, a.b2 = (float)b2;
    a.step = (float)(lr / bc1), a.rbc2 = (float)(1.0 / sqrt(bc2)), a.eps = (float)t->adam_eps;
    a.decay = (float)(1.0 - lr * t->weight_decay);
    a.gscale = gscale;
    k_adamw<<<o->nblocks, NT>>>(a);
    MC_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mcuda_grad_norm(const float *d_g, size_t n, double *norm) {
    *norm = 0;
    if (n == 0) return ATTN_OK;
    int G = grid_for((long long)((n + 7) / 8), NT); /* about 8 elements a thread */
    if (G > 1024) G = 1024;
    void *p = nullptr;
    MC_OK(scratch(SCR_PART, ((size_t)G + 1) * sizeof(double), &p));
    double *part = static_cast<double *>(p);
    k_sumsq_part<<<G, NT>>>(d_g, n, aligned(d_g, 16) ? 1 : 0, part);
    MC_LAUNCH();
    k_sum_final<<<1, FIN>>>(part, G, part + G);
    MC_LAUNCH();
    double s = 0;
    MC_CHECK(cudaMemcpy(&s, part + G, sizeof s, cudaMemcpyDeviceToHost));
    *norm = sqrt(s);
    return ATTN_OK;
}

extern "C" attn_status mcuda_scale(float *d_x, size_t n, float s) { return convert<float, float, 4>(d_x, d_x, n, s); }

extern "C" attn_status mcuda_f32_to_bf16(const float *d_src, mcuda_bf16 *d_dst, size_t n) {
    return convert<float, bf16, 4>(d_src, reinterpret_cast<bf16 *>(d_dst), n, 1.0f);
}

extern "C" attn_status mcuda_bf16_to_f32(const mcuda_bf16 *d_src, float *d_dst, size_t n) {
    return convert<bf16, float, 4>(reinterpret_cast<const bf16 *>(d_src), d_dst, n, 1.0f);
}
