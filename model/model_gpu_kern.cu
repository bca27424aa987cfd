/*
 * model_gpu_kern.cu: the few elementwise kernels the GPU model needs besides the
 * ops of model_cuda.cu: dma's dt_proj transposed to and from the operator's
 * layout, nsa's gates and column copies, sums and argmax.
 */
#include "cuda_common.cuh"
#include <cuda_bf16.h>
#include "model_gpu_kern.h"

namespace {

/* dst (Cc, R) (+)= src (R, Cc)^T */
__global__ void transpose_kernel(const float *src, float *dst, int R, int Cc, int add) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)R * Cc) return;
    int r = (int)(e / Cc), c = (int)(e % Cc);
    float v = src[e];
    float *d = dst + (size_t)c * R + r;
    *d = add ? *d + v : v;
}

__global__ void add_kernel(const float *src, float *dst, long long n) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < n) dst[e] += src[e];
}


/* out (M, n) = sigmoid(x[:, col0 .. col0 + n)) of a bf16 (M, ld) matrix */
__global__ void sigmoid_cols_kernel(const __nv_bfloat16 *x, int ld, int col0, int n, int M, float *out) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)M * n) return;
    int i = (int)(e / n), j = (int)(e % n);
    float v = __bfloat162float(x[(size_t)i * ld + col0 + j]);
    out[e] = 1.f / (1.f + expf(-v));
}

/* dx[:, col0 + j] = ds s (1 - s) */
__global__ void sigmoid_bwd_cols_kernel(const float *sg, const float *ds, __nv_bfloat16 *dx, int ld, int col0, int n,
                                        int M) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)M * n) return;
    int i = (int)(e / n), j = (int)(e % n);
    float s = sg[e];
    dx[(size_t)i * ld + col0 + j] = __float2bfloat16(ds[e] * s * (1.f - s));
}

/* dst[:, dcol .. dcol + n) = src[:, scol .. scol + n), bf16; V = 8: 16 bytes per
 * thread (the caller checks that every row's columns start 16-byte aligned and n
 * is a multiple of 8), else one element */
template <int V>
__global__ void copy_cols_kernel(const __nv_bfloat16 *src, int lds, int scol, __nv_bfloat16 *dst, int ldd, int dcol, int n,
                                 int M) {
    const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (e >= (long long)M * n) return;
    const int i = (int)(e / n), j = (int)(e % n);
    const __nv_bfloat16 *s = src + (size_t)i * lds + scol + j;
    __nv_bfloat16 *d = dst + (size_t)i * ldd + dcol + j;
    if constexpr (V == 8)
        *reinterpret_cast<uint4 *>(d) = *reinterpret_cast<const uint4 *>(s);
    else
        *d = *s;
}

/* out[r] = argmax of row r of x (rows, n) fp32: the first of equal maxima, as the
 * host's argmax. One block per row. */
__global__ void argmax_rows_kernel(const float *x, int n, int *out) {
    __shared__ float sv[256];
    __shared__ int si[256];
    const float *row = x + (size_t)blockIdx.x * n;
    float bv = -INFINITY;
    int bi = n; /* "none" ranks last */
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        if (row[j] > bv || (row[j] == bv && j < bi)) bv = row[j], bi = j;
    sv[threadIdx.x] = bv, si[threadIdx.x] = bi;
    __syncthreads();
    for (int st = blockDim.x / 2; st > 0; st >>= 1) {
        if (threadIdx.x < st) {
            float ov = sv[threadIdx.x + st];
            int oi = si[threadIdx.x + st];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) sv[threadIdx.x] = ov, si[threadIdx.x] = oi;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = si[0] < n ? si[0] : 0;
}

unsigned blocks(long long n) { return (unsigned)((n + 255) / 256); }

} // namespace

extern "C" attn_status mgk_transpose(const float *d_src, float *d_dst, int R, int Cc, int add) {
    long long all = (long long)R * Cc;
    if (all == 0) return ATTN_OK;
    transpose_kernel<<<blocks(all), 256>>>(d_src, d_dst, R, Cc, add);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mgk_add(const float *d_src, float *d_dst, long long n) {
    if (n == 0) return ATTN_OK;
    add_kernel<<<blocks(n), 256>>>(d_src, d_dst, n);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mgk_sigmoid_cols(const void *d_x, int ld, int col0, int n, int M, float *d_out) {
    long long all = (long long)M * n;
    if (all == 0) return ATTN_OK;
    sigmoid_cols_kernel<<<blocks(all), 256>>>(static_cast<const __nv_bfloat16 *>(d_x), ld, col0, n, M, d_out);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mgk_sigmoid_bwd_cols(const float *d_s, const float *d_ds, void *d_dx, int ld, int col0, int n,
                                            int M) {
    long long all = (long long)M * n;
    if (all == 0) return ATTN_OK;
    sigmoid_bwd_cols_kernel<<<blocks(all), 256>>>(d_s, d_ds, static_cast<__nv_bfloat16 *>(d_dx), ld, col0, n, M);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mgk_copy_cols(const void *d_src, int lds, int scol, void *d_dst, int ldd, int dcol, int n, int M) {
    long long all = (long long)M * n;
    if (all == 0) return ATTN_OK;
    const auto a16 = [](const void *p, long long off) { return (reinterpret_cast<uintptr_t>(p) + 2 * off) % 16 == 0; };
    if (n % 8 == 0 && lds % 8 == 0 && ldd % 8 == 0 && a16(d_src, scol) && a16(d_dst, dcol))
        copy_cols_kernel<8><<<blocks(all / 8), 256>>>(static_cast<const __nv_bfloat16 *>(d_src), lds, scol,
                                                      static_cast<__nv_bfloat16 *>(d_dst), ldd, dcol, n, M);
    else
        copy_cols_kernel<1><<<blocks(all), 256>>>(static_cast<const __nv_bfloat16 *>(d_src), lds, scol,
                                                  static_cast<__nv_bfloat16 *>(d_dst), ldd, dcol, n, M);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

extern "C" attn_status mgk_argmax_rows(const float *d_x, int rows, int n, int *d_out) {
    if (rows == 0) return ATTN_OK;
    argmax_rows_kernel<<<rows, 256>>>(d_x, n, d_out);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}
