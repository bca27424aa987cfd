/*
 * model_gpu_kern.h: elementwise kernels of the GPU model (model_gpu_kern.cu).
 * Device pointers; the default stream.
 */
#ifndef DMABENCH_MODEL_GPU_KERN_H
#define DMABENCH_MODEL_GPU_KERN_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y (rows, n) = w (n) * x (rows, n), row by row; y may be x. */
attn_status mgk_mul_rows(const float *d_x, const float *d_w, float *d_y, int rows, int n);
/* dst (Cc, R) = src (R, Cc)^T, or += when add. */
attn_status mgk_transpose(const float *d_src, float *d_dst, int R, int Cc, int add);
/* dst (n) += src (n). */
attn_status mgk_add(const float *d_src, float *d_dst, long long n);

#ifdef __cplusplus
}
#endif
#endif
