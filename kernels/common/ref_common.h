/*
 * ref_common.h: double-precision building blocks of the reference operators
 * (<variant>_ref.c). Nothing here is fast; everything here is simple enough to
 * check by reading.
 */
#ifndef DMABENCH_REF_COMMON_H
#define DMABENCH_REF_COMMON_H

#include "attn.h"

/* A bshd tensor copied into a contiguous double array (B, N, H, D). */
typedef struct {
    double *x;
    int B, N, H, D;
} ref_tensor;

/* Copies a strided tensor of dtype t into a new contiguous double array.
 * Returns ATTN_ERR_NONFINITE if any element is NaN/Inf, ATTN_ERR_OOM on failure. */
attn_status ref_load(ref_tensor *out, const void *src, attn_dtype t, attn_stride st, int B, int N,
                     int H, int D);
attn_status ref_zeros(ref_tensor *out, int B, int N, int H, int D);
/* Writes a contiguous double tensor into a strided tensor of dtype t. */
void ref_store(const ref_tensor *in, void *dst, attn_dtype t, attn_stride st);
void ref_tensor_free(ref_tensor *t);

static inline double *ref_row(const ref_tensor *t, int b, int n, int h) {
    return t->x + (((int64_t)b * t->N + n) * t->H + h) * t->D;
}

/* Aux tensors (dtype F32, or F64 when the params dtype is F64), contiguous. */
attn_status ref_load_aux(double **out, const void *src, int f64, size_t n);
void ref_store_aux(const double *in, void *dst, int f64, size_t n);

/* Softmax attention of one query row over a list of n keys.
 * krow(j) = K + idx[j] * kstride; bias may be NULL (else one entry per list item).
 * Writes o (D) and returns the log-sum-exp (-inf when n == 0, and o = 0). */
double ref_row_forward(const double *q, const double *K, const double *V, int64_t kstride,
                       const int *idx, int n, const double *bias, double scale, int D, double *o);

/* Backward of ref_row_forward given o, lse and dout. Accumulates (+=) into dq (D),
 * dK/dV rows (same layout as K/V) and dbias (per list item, may be NULL). */
void ref_row_backward(const double *q, const double *K, const double *V, int64_t kstride,
                      const int *idx, int n, const double *bias, double scale, int D,
                      const double *o, double lse, const double *dout, double *dq, double *dK,
                      double *dV, double *dbias);

/* Row-wise log-sum-exp helper: writes lse to an aux array (F32/F64). */
void ref_set_aux(void *dst, int f64, size_t i, double v);

/* Checks an aux input for NaN/Inf. */
int ref_aux_finite(const void *src, int f64, size_t n);

/* ---- the generic reference: softmax attention over a per-row key list ---- */

/* Fills idx with the keys (ascending or any order) query row i of batch b and kv
 * head hkv attends to; returns the count (<= Nk). */
typedef int (*ref_select_fn)(const attn_params *p, void *ctx, int b, int hkv, int64_t i, int *idx);

/* Forward over q, k, v of p: writes p->o and p->lse. key_bias (B, Hkv, Nk) is added
 * to the logits of the selected keys when non-NULL. */
attn_status ref_attention_forward(const attn_params *p, ref_select_fn sel, void *ctx,
                                  const double *key_bias);

/* Backward: recomputes the forward in double, writes p->dq, p->dk, p->dv, and, when
 * dkey_bias is non-NULL, accumulates the bias gradient (B, Hkv, Nk) into it.
 * dv_extra (B, Nk, Hkv, D), when non-NULL, is added to dv before it is stored. */
attn_status ref_attention_backward(const attn_params *p, ref_select_fn sel, void *ctx,
                                   const double *key_bias, double *dkey_bias,
                                   const double *dv_extra);

/* The selectors of the dense and window variants, shared by those that build on them. */
int ref_select_visible(const attn_params *p, void *ctx, int b, int hkv, int64_t i, int *idx);
int ref_select_window(const attn_params *p, void *ctx, int b, int hkv, int64_t i, int *idx);

#endif
