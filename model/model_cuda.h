/*
 * model_cuda.h: the model's GPU ops, the layer the CUDA model path is assembled
 * from: GEMMs through cuBLASLt, the embedding lookup, RMSNorm, the per-head
 * q/k norm with RoPE, SwiGLU, a chunked cross-entropy over the vocabulary,
 * fused AdamW, the gradient norm and dtype casts. Each op has its forward and
 * backward side by side and matches the CPU op it replaces (model_ops.c,
 * model.c's layer_forward / layer_backward, model_optim.c); docs/model-gpu.md
 * says how, and tests/test_model_gpu.c checks it.
 *
 * Precision: bf16 where a tensor feeds a GEMM or the attention (activations and
 * the compute copy of the weights), fp32 for the residual stream, the norms'
 * statistics, gradients of parameters, master weights and optimizer state; every
 * accumulation is fp32 (GEMMs: CUBLAS_COMPUTE_32F) and sums over many rows are
 * double. "act" dtype arguments take ATTN_DTYPE_BF16 or ATTN_DTYPE_F32 (fp32 is
 * there for tests and references).
 *
 * Every pointer named d_* is device memory. Everything runs on the default
 * stream, in order; nothing synchronises except where a host result is returned
 * (the cross-entropy's count and loss sum, the gradient norm). Functions return
 * an attn_status (ATTN_ERR_INVALID for a bad shape or argument, ATTN_ERR_CUDA for
 * a failed CUDA or cuBLASLt call, ATTN_ERR_OOM) and never print;
 * mcuda_last_error() gives the reason as one line. Built only with CUDA
 * (DMABENCH_CUDA): CPU-only code must not call these.
 */
#ifndef DMABENCH_MODEL_CUDA_H
#define DMABENCH_MODEL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "attn.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A bf16 value as C stores it: the upper 16 bits of the fp32 pattern. */
typedef uint16_t mcuda_bf16;

/* The reason for the last failed call (one line; "" when none failed yet). */
const char *mcuda_last_error(void);

/* Frees the cuBLASLt handle, its workspace and the ops' scratch buffers (they
 * are created again on the next call). */
void mcuda_release(void);

/* ---- GEMM ---- */

/* C = alpha op(A) op(B) + beta C, row-major as mops_gemm: op(A) (M, K), op(B)
 * (K, N), C (M, N) with leading dimensions lda, ldb, ldc (elements); ta / tb
 * transpose the stored A (K, M) / B (N, K). A and B bf16, fp32 accumulation;
 * C fp32 or bf16 (c_dtype). beta = 0 ignores C's old contents. */
attn_status mcuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const mcuda_bf16 *d_A, int lda,
                       const mcuda_bf16 *d_B, int ldb, float beta, void *d_C, int ldc, attn_dtype c_dtype);
/* The same with fp32 A, B and C (plain fp32 math, no TF32): for tests and
 * references. */
attn_status mcuda_gemm_f32(int ta, int tb, int M, int N, int K, float alpha, const float *d_A, int lda,
                           const float *d_B, int ldb, float beta, float *d_C, int ldc);
/* GEMMs so far that cuBLASLt had no algorithm for (operands aligned to less than it
 * handles) and cuBLAS's cublasGemmEx ran instead, same math. */
int mcuda_gemm_fallbacks(void);

/* ---- embedding ---- */

/* out[i] = emb[ids[i]]: d_emb (V, C) fp32; d_out_f32 and/or d_out_bf16 (M, C)
 * (either may be NULL, not both). An id outside [0, V) gives a zero row (the
 * caller validates ids). */
attn_status mcuda_embed_forward(const int32_t *d_ids, int M, const float *d_emb, int V, int C, float *d_out_f32,
                                mcuda_bf16 *d_out_bf16);
/* d_gemb (V, C) += scatter of d_dy (M, C) rows by id (fp32 atomics); rows whose
 * id is pad (-1: none) or outside [0, V) add nothing, as nn.Embedding's
 * padding_idx. */
attn_status mcuda_embed_backward(const int32_t *d_ids, int M, const float *d_dy, int V, int C, int pad,
                                 float *d_gemb);

/* ---- RMSNorm over rows of n ---- */

/* y = w * (x r), r = 1 / sqrt(mean(x^2) + eps) per row: d_x (rows, n) fp32,
 * d_w (n); d_y_f32 and/or d_y_bf16 (rows, n) (one may be NULL); d_r (rows). */
attn_status mcuda_rmsnorm_forward(const float *d_x, const float *d_w, int rows, int n, float eps, float *d_y_f32,
                                  mcuda_bf16 *d_y_bf16, float *d_r);
/* As mcuda_rmsnorm_forward with a bf16 y, and in the same pass d_xs (rows, n) =
 * d_s (n) times d_x per column: the residual's scaled copy that the next GEMM adds
 * to (one read of x instead of two). */
attn_status mcuda_rmsnorm_forward_res(const float *d_x, const float *d_w, int rows, int n, float eps,
                                      mcuda_bf16 *d_y_bf16, float *d_r, const float *d_s, float *d_xs);
/* From dy (rows, n) fp32: d_dx (rows, n) = (acc: +=) r (dy w - x r s), s =
 * mean(dy w x r) per row; d_dw (n) += sum over rows of dy x r (double, fixed
 * order: deterministic). d_dw may be NULL. */
attn_status mcuda_rmsnorm_backward(const float *d_x, const float *d_r, const float *d_w, const float *d_dy, int rows,
                                   int n, float *d_dx, int acc, float *d_dw);
/* d_out (n) += sum over rows of a b (fp32 (rows, n) each; double, fixed order):
 * the residual vectors' gradients, as mops_colsum_prod. */
attn_status mcuda_colsum_prod(const float *d_a, const float *d_b, int rows, int n, float *d_out);
/* The residual's backward in one pass over d_g (rows, n): d_dr (n) += the column
 * sums of g h (as mcuda_colsum_prod, the same sums in the same order), d_gr =
 * r[col] g (fp32) and d_gb = bf16(g) (rows, n each; neither may alias d_g). */
attn_status mcuda_residual_backward(const float *d_g, const float *d_h, const float *d_r, int rows, int n,
                                   float *d_gr, mcuda_bf16 *d_gb, float *d_dr);

/* ---- per-head q/k norm and RoPE ---- */

/* The shapes of the fused q|k|v projection and the RoPE tables. Row i of the M
 * rows is token i % n of its sequence, at position pos0 + i % n. */
typedef struct {
    int M;          /* rows (B * n) */
    int ld;         /* elements from one row of qkv / dqkv to the next (>= (H + 2K) D) */
    int H, K, D;    /* query heads, kv heads, head dim (even, <= ATTN_MAX_D) */
    int n, pos0;    /* tokens per sequence, position of the first */
    const float *d_cos, *d_sin; /* (rope_len, D/2), as model_rope_ensure builds them */
    int rope_len;   /* must be >= pos0 + n */
    float eps;
} mcuda_qk_shape;

/* qf = RoPE(q_norm(q)), kf = RoPE(k_norm(k)) per head, reading q at columns
 * [0, H D) and k at [H D, (H + K) D) of d_qkv (M, ld). d_qf (M, H, D), d_kf
 * (M, K, D) contiguous; d_rq (M, H), d_rk (M, K) the 1/rms of each head (fp32).
 * d_wq, d_wk (D). d_qkv, d_qf and d_kf have dtype act. */
attn_status mcuda_qk_norm_rope_forward(const mcuda_qk_shape *s, const void *d_qkv, const float *d_wq,
                                       const float *d_wk, void *d_qf, void *d_kf, float *d_rq, float *d_rk,
                                       attn_dtype act);
/* From d_dqf (M, H, D) and d_dkf (M, K, D): RoPE^T, then the norm's backward
 * into the q and k columns of d_dqkv (M, ld) (written; v's columns untouched);
 * d_dwq, d_dwk (D) += the norm weights' gradients (double, fixed order; either
 * may be NULL). d_qkv, d_dqf, d_dkf and d_dqkv have dtype act. */
attn_status mcuda_qk_norm_rope_backward(const mcuda_qk_shape *s, const void *d_qkv, const float *d_wq,
                                        const float *d_wk, const float *d_rq, const float *d_rk, const void *d_dqf,
                                        const void *d_dkf, void *d_dqkv, float *d_dwq, float *d_dwk, attn_dtype act);

/* ---- SwiGLU ---- */

/* act (M, F) = silu(gate) * up from d_gu (M, 2F) = gate | up; dtype act. */
attn_status mcuda_swiglu_forward(const void *d_gu, void *d_act, int M, int F, attn_dtype act);
/* d_dgu (M, 2F) = dgate | dup from d_dact (M, F); dtype act. */
attn_status mcuda_swiglu_backward(const void *d_gu, const void *d_dact, void *d_dgu, int M, int F, attn_dtype act);

/* ---- cross-entropy over the vocabulary ---- */

/* For hidden rows d_x (rows, C) (the final norm's output) and the LM head d_w
 * (V, C), both of dtype (bf16; f32 for tests and references), and labels
 * d_labels (rows) (MODEL_IGNORE: not counted), `chunk` rows at a time (<= 0: as
 * many as 128 MiB of fp32 logits allow):
 *   logits = x w^T (fp32, one chunk only), loss_i = logsumexp(logits_i) - logits_i[y_i],
 *   dlogits = scale (softmax - onehot) for counted rows (0 for ignored ones), dtype,
 *   d_dx (rows, C) fp32 = dlogits w (written; NULL: not computed),
 *   d_dw (V, C) fp32 += dlogits^T x (NULL: not computed).
 * The caller applies the mean through scale (1 / counted rows, as
 * model_forward_backward), as mops_cross_entropy's `scale`. d_rowloss (rows)
 * fp32 gets each row's loss (0 for ignored rows; may be NULL). *count and
 * *loss_sum (host; either may be NULL, both NULL: no synchronisation) receive
 * the counted rows and the sum of their losses (double). A label that is
 * neither MODEL_IGNORE nor in [0, V) counts nothing and, when count or loss_sum
 * is asked for, fails the call with ATTN_ERR_INVALID. */
attn_status mcuda_cross_entropy(const void *d_x, const void *d_w, attn_dtype dtype, const int32_t *d_labels,
                                int rows, int C, int V, int chunk, double scale, float *d_rowloss, float *d_dx,
                                float *d_dw, int64_t *count, double *loss_sum);

/* ---- AdamW, gradient norm ---- */

/* The optimizer state on the device: first and second moments (fp32, np each)
 * and the tensors' decay flags. */
typedef struct mcuda_adamw mcuda_adamw;

/* For the flat parameter buffer of np floats laid out as the nt tensors say
 * (model_tensor_at: offset, numel, decay). Moments start at zero. */
attn_status mcuda_adamw_create(const model_tensor *t, int nt, size_t np, mcuda_adamw **out);
void mcuda_adamw_free(mcuda_adamw *o);
float *mcuda_adamw_m1(mcuda_adamw *o); /* (np) device: for checkpoints */
float *mcuda_adamw_m2(mcuda_adamw *o);
int64_t mcuda_adamw_steps(const mcuda_adamw *o);
void mcuda_adamw_set_steps(mcuda_adamw *o, int64_t steps);
/* One update with learning rate lr, exactly model_adamw_update's arithmetic
 * (bias correction, decoupled decay on the tensors marked decay), from the
 * gradients d_g times gscale (the clip factor, model_trainer_step's
 * (float)(clip / norm); 1: none; d_g itself is not changed). d_p (np) fp32
 * master weights; d_p_bf16 (np), when not NULL, receives their bf16 copy. */
attn_status mcuda_adamw_update(mcuda_adamw *o, float *d_p, const float *d_g, mcuda_bf16 *d_p_bf16, double lr,
                               const model_train_config *t, float gscale);
/* The global L2 norm of d_g (n): double sums, per-block partials then one block,
 * deterministic. Synchronises. */
attn_status mcuda_grad_norm(const float *d_g, size_t n, double *norm);
/* d_x (n) *= s (fp32): clipping when AdamW's gscale is not used. */
attn_status mcuda_scale(float *d_x, size_t n, float s);

/* ---- casts ---- */

/* Round to nearest even. */
attn_status mcuda_f32_to_bf16(const float *d_src, mcuda_bf16 *d_dst, size_t n);
attn_status mcuda_bf16_to_f32(const mcuda_bf16 *d_src, float *d_dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
