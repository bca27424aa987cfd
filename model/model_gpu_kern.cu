/*
 * model_gpu_kern.cu: the few elementwise kernels the GPU model needs besides the
 * ops of model_cuda.cu: the residual vectors' row scaling, and dma's dt_proj
 * transposed to and from the operator's layout.
 */
#include "cuda_common.cuh"
#include "model_gpu_kern.h"

namespace {

__global__ void mul_rows_kernel(const float *x, const float *w, float *y, long long n_all, int n) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < n_all) y[e] = w[e % n] * x[e];
}

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

unsigned blocks(long long n) { return (unsigned)((n + 255) / 256); }

} // namespace

extern "C" attn_status mgk_mul_rows(const float *d_x, const float *d_w, float *d_y, int rows, int n) {
    long long all = (long long)rows * n;
    if (all == 0) return ATTN_OK;
    mul_rows_kernel<<<blocks(all), 256>>>(d_x, d_w, d_y, all, n);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

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
