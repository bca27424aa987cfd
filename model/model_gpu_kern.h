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

/* dst (Cc, R) = src (R, Cc)^T, or += when add. */
attn_status mgk_transpose(const float *d_src, float *d_dst, int R, int Cc, int add);
/* dst (n) += src (n). */
attn_status mgk_add(const float *d_src, float *d_dst, long long n);
/* nsa's gates: out (M, n) = sigmoid of columns col0 .. col0 + n of the bf16 (M, ld)
 * matrix x; and back: dx's columns = ds s (1 - s) (bf16). */
attn_status mgk_sigmoid_cols(const void *d_x, int ld, int col0, int n, int M, float *d_out);
attn_status mgk_sigmoid_bwd_cols(const float *d_s, const float *d_ds, void *d_dx, int ld, int col0, int n, int M);
/* out (rows) = the index of each row's largest value (the first of equal ones). */
attn_status mgk_argmax_rows(const float *d_x, int rows, int n, int *d_out);
/* Columns of one bf16 matrix into another: dst[:, dcol + j] = src[:, scol + j]. */
attn_status mgk_copy_cols(const void *d_src, int lds, int scol, void *d_dst, int ldd, int dcol, int n, int M);

#ifdef __cplusplus
}
#endif
#endif
