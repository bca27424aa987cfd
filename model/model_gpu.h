/*
 * model_gpu.h: the model on the GPU: the same Doge block as model.c, forward and
 * backward, on the GPU ops of model_cuda.h and the CUDA attention operators, in
 * mixed precision (bf16 activations and compute weights, fp32 master weights,
 * gradients, optimizer state and residual stream).
 *
 * A model_gpu mirrors one host model (model.h): model_gpu_create uploads its
 * parameters; training runs on the device; model_gpu_download writes the master
 * weights back into the host model, so checkpoints are the host path's files
 * (model_save) and a model trained here loads on the CPU and the other way round.
 * Every variant (nsa's gates and compression weights included).
 *
 * Built only with CUDA (DMABENCH_CUDA); without it every call returns
 * MODEL_ERR_ATTN with "CUDA is not built into this binary".
 */
#ifndef DMABENCH_MODEL_GPU_H
#define DMABENCH_MODEL_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct model_gpu model_gpu;

/* Uploads m's parameters (m stays owned by the caller and must outlive g). The
 * activations for batches of B x T tokens are allocated here, so a size that does
 * not fit fails now, with the bytes it needed, not in the middle of training. */
model_status model_gpu_create(model *m, int B, int T, model_gpu **out, char *err, size_t err_len);
/* Whether the CUDA attention takes head dim d (16, 32, 64 or 128): what
 * model_gpu_create checks first, and what `dmabench run` warns about. */
int model_gpu_head_dim_ok(int d);
void model_gpu_free(model_gpu *g);

/* Device bytes the model holds: parameters, gradients, optimizer state,
 * activations (sum of the parts) and the allocator's high-water mark. */
typedef struct {
    size_t params, grads, optimizer, activations, peak;
} model_gpu_mem;
void model_gpu_memory(const model_gpu *g, model_gpu_mem *mem);

/* Forward and backward of scale * (mean cross-entropy over the counted positions)
 * for ids, labels (B, T) (host arrays, B x T at most the create size): ADDS into
 * the device gradients. *loss receives the unscaled mean (NULL: not wanted). */
model_status model_gpu_forward_backward(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                        double scale, double *loss, char *err, size_t err_len);
/* Per-token losses (B, T) (host, may be NULL), their mean and count, no gradients. */
model_status model_gpu_token_losses(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                    float *losses, double *mean, int64_t *count, char *err, size_t err_len);

/* pred (B, T) (host) = the argmax of the logits at every position (the first of
 * equal maxima), the logits made a chunk of rows at a time. */
model_status model_gpu_predict(model_gpu *g, const int32_t *ids, int B, int T, int32_t *pred, char *err, size_t err_len);

void model_gpu_zero_grads(model_gpu *g);
/* The device gradients into out (model_params_len floats, the host layout). */
model_status model_gpu_download_grads(model_gpu *g, float *out, char *err, size_t err_len);
/* Global L2 norm of the device gradients (deterministic). */
model_status model_gpu_grad_norm(model_gpu *g, double *norm, char *err, size_t err_len);
/* One AdamW update with learning rate lr from the gradients times gscale (the
 * clip factor; 1: none), exactly model_adamw_update's arithmetic. */
model_status model_gpu_adamw_step(model_gpu *g, double lr, float gscale, char *err, size_t err_len);
int64_t model_gpu_adamw_steps(const model_gpu *g);

/* Master weights device -> host model (before model_save) and host -> device
 * (after loading weights into the host model). */
model_status model_gpu_download(model_gpu *g, char *err, size_t err_len);
model_status model_gpu_upload(model_gpu *g, char *err, size_t err_len);
/* Optimizer moments and step count, device <-> a host model_adamw (checkpoints). */
model_status model_gpu_adamw_download(model_gpu *g, model_adamw *o, char *err, size_t err_len);
model_status model_gpu_adamw_upload(model_gpu *g, const model_adamw *o, char *err, size_t err_len);

/* Incremental decoding on the GPU: a cache of the keys (after k_norm and RoPE) and
 * values of B sequences of up to max_len tokens, every layer, in bf16 device
 * memory. A step runs the stack over the n new tokens of each sequence (B x n at
 * most the create size of g) with the attention's Nq = n, Nk = cached + n, so every
 * variant uses its own selection (dma recomputes z from the cached values; nsa
 * recompresses) and Nq = 1 goes through the operators' decode paths. */
typedef struct model_gpu_cache model_gpu_cache;
model_status model_gpu_cache_create(model_gpu *g, int B, int max_len, model_gpu_cache **out, char *err, size_t err_len);
void model_gpu_cache_free(model_gpu_cache *c);
void model_gpu_cache_reset(model_gpu_cache *c);
int model_gpu_cache_len(const model_gpu_cache *c);
/* ids (B, n) (host); logits (B, V) (host, fp32) of each sequence's last new token. */
model_status model_gpu_cache_step(model_gpu *g, model_gpu_cache *c, const int32_t *ids, int n, float *logits, char *err,
                                  size_t err_len);
/* Greedy continuation of B prompts (B, n_prompt) by n_new tokens into out (B, n_new)
 * (the first of equal maxima), through a cache. */
model_status model_gpu_greedy_batch(model_gpu *g, const int32_t *prompts, int B, int n_prompt, int n_new, int32_t *out,
                                    char *err, size_t err_len);
/* model_generate on the GPU: one prompt, greedy or sampled (opts as there). */
model_status model_gpu_generate(model_gpu *g, const int32_t *prompt, int n_prompt, const model_gen_opts *opts,
                                int32_t *out, int *n_out, char *err, size_t err_len);

#endif
