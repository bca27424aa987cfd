/*
 * model.h: a small decoder-only language model, HF transformers' Doge block
 * (DogeForCausalLM with is_moe = false) with any registered attention variant,
 * trained and run on the CPU in fp32. This is the model layer's C API, the one
 * the task layer and the `train`, `generate` and `forward` commands use.
 *
 *   x = embed(ids)
 *   per layer:  h = input_residual * x + Attn(RMSNorm(x))
 *               x = post_attention_residual * h + MLP(RMSNorm(h))
 *   logits = RMSNorm(x) lm_head^T          (lm_head = embed_tokens when tied)
 *
 * Attn: q/k/v projections, RMSNorm per head on q and k (q_norm, k_norm), RoPE,
 * the variant's operator from the registry (kernels/common/registry.h), o_proj.
 * dma adds dt_proj (Hkv*D -> Hkv, from the value states) and A (Hkv):
 * z = exp(A softplus(dt)) (or A softplus(dt)); nsa adds a gate projection
 * g = sigmoid(g_proj x) (3 per query head) and its compression weights.
 * MLP: down(silu(gate(x)) * up(x)). Tensor names and shapes: docs/model.md.
 *
 * Everything returns a model_status and, given err, one line saying why.
 * Nothing prints. Threads: OpenMP for the elementwise work and the attention
 * operators, OpenBLAS (cblas_sgemm) for the GEMMs; model_set_threads sets both.
 */
#ifndef DMABENCH_MODEL_H
#define DMABENCH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "model_data.h"

typedef enum {
    MODEL_OK = 0,
    MODEL_ERR_ARG,       /* invalid argument (shape, token id out of range, ...) */
    MODEL_ERR_CONFIG,    /* the config is invalid or does not match a checkpoint */
    MODEL_ERR_IO,        /* a file could not be read or written */
    MODEL_ERR_FORMAT,    /* a checkpoint is malformed (missing tensor, shape, dtype) */
    MODEL_ERR_OOM,       /* out of memory */
    MODEL_ERR_ATTN,      /* the attention operator failed or is not available */
    MODEL_ERR_DATA,      /* the data source failed */
    MODEL_ERR_NONFINITE, /* NaN or Inf in the loss or gradients */
} model_status;

const char *model_status_str(model_status s);

typedef struct model model;

/* ---- parameters ---- */

/* One parameter tensor: its HF name, shape and place in the flat buffer. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
    size_t offset, numel;  /* in floats, into model_params() / model_grads() */
    int decay;             /* 1: AdamW weight decay applies (matrices) */
} model_tensor;

/* Creates a model from a validated config and initialises it the way HF's Doge
 * does (normal(0, initializer_range) for matrices and embeddings, A = 0, norms
 * and residual vectors = 1), from cfg->train.seed. */
model_status model_create(const model_config *cfg, model **out, char *err, size_t err_len);
void model_free(model *m);

const model_config *model_get_config(const model *m);
/* Changes the training settings (the "train" block) of a model. */
void model_set_train_config(model *m, const model_train_config *t);
int model_num_tensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);
const model_tensor *model_find_tensor(const model *m, const char *name);
float *model_params(model *m);          /* all parameters, flat (model_params_len floats) */
float *model_grads(model *m);           /* their gradients, same layout */
size_t model_num_params(const model *m); /* the parameters' count */
/* The flat buffers' length in floats: each tensor starts 256-byte aligned, and the
 * gaps between them hold zeros (model_tensor.offset places a tensor). */
size_t model_params_len(const model *m);
/* Re-initialises every parameter from seed (as model_create does). */
void model_init_params(model *m, uint64_t seed);

/* OpenMP and OpenBLAS threads (n <= 0: leave as is). */
void model_set_threads(int n);

/* ---- forward, backward ---- */

/* Logits (B, T, vocab) for ids (B, T). Positions 0..T-1. */
model_status model_logits(model *m, const int32_t *ids, int B, int T, float *logits, char *err, size_t err_len);

/* Per-token losses (B, T) (0 where the label is MODEL_IGNORE) and their mean
 * over the counted positions (*mean, may be NULL; *count, may be NULL). No
 * gradients. Also fills logits (B, T, vocab) when logits is not NULL. */
model_status model_token_losses(model *m, const int32_t *ids, const int32_t *labels, int B, int T,
                                float *losses, double *mean, int64_t *count, float *logits, char *err,
                                size_t err_len);

/* Forward and backward of scale * (mean cross-entropy over the counted
 * positions): ADDS the gradients into model_grads() (call model_zero_grads
 * first). *loss receives the unscaled mean. A batch with no counted position
 * contributes nothing. */
model_status model_forward_backward(model *m, const int32_t *ids, const int32_t *labels, int B, int T,
                                    double scale, double *loss, char *err, size_t err_len);
void model_zero_grads(model *m);

/* Time and work spent so far (seconds; FLOPs counted for the GEMMs). */
typedef struct {
    double gemm_s, gemm_flops;   /* cblas_sgemm calls */
    double attn_fwd_s, attn_bwd_s;
    double total_s;              /* inside model_* forward/backward calls */
} model_timers;
void model_get_timers(const model *m, model_timers *t);
void model_reset_timers(model *m);

/* ---- optimizer and schedule ---- */

/* Learning rate of optimizer step `step` (0-based) of a run under t. */
double model_lr_at(const model_train_config *t, int64_t step);

/* Global L2 norm of the gradients (double accumulation, fixed order). */
double model_grad_norm(model *m);

/* AdamW state (first and second moments for every parameter). */
typedef struct model_adamw model_adamw;
model_status model_adamw_create(const model *m, model_adamw **out);
void model_adamw_free(model_adamw *o);
int64_t model_adamw_steps(const model_adamw *o);
/* One update with learning rate lr from the current gradients: decoupled weight
 * decay on the tensors marked decay, bias-corrected moments. */
void model_adamw_update(model *m, model_adamw *o, double lr, const model_train_config *t);

/* ---- checkpoints ---- */

/* DIR/config.json and DIR/model.safetensors (HF Doge names, F32). Creates DIR.
 * Files are written atomically. step goes into the metadata. */
model_status model_save(const model *m, const char *dir, int64_t step, char *err, size_t err_len);
/* Loads DIR/config.json and DIR/model.safetensors, validating every tensor's
 * presence, shape and dtype (F32, F16, BF16 accepted). *step (may be NULL)
 * receives the saved step (0 when absent). */
model_status model_load(const char *dir, model **out, int64_t *step, char *err, size_t err_len);
/* Loads weights from a safetensors file into an existing model (same checks). */
model_status model_load_weights(model *m, const char *path, int64_t *step, char *err, size_t err_len);
/* The optimizer state: DIR/optimizer.safetensors ("<name>.exp_avg",
 * "<name>.exp_avg_sq" per tensor; metadata step and data_index). */
model_status model_adamw_save(const model *m, const model_adamw *o, const char *dir, int64_t data_index,
                              char *err, size_t err_len);
model_status model_adamw_load(const model *m, model_adamw *o, const char *dir, int64_t *data_index, char *err,
                              size_t err_len);

/* ---- training ---- */

typedef struct {
    int64_t step;        /* optimizer steps done (this one included) */
    int64_t steps;       /* of the whole run */
    double loss;         /* mean over the counted label positions of all the step's micro-batches */
    int64_t label_tokens; /* those positions (not MODEL_IGNORE) in the step */
    double lr, grad_norm;
    int64_t tokens;      /* tokens trained on so far in the run */
    double step_s;       /* seconds this step took */
    double tokens_per_s; /* of this step */
} model_step_info;

typedef struct model_trainer model_trainer;

/* A trainer for m under m's train config, reading batches from data (neither is
 * owned). Starts at step 0 with fresh AdamW state. */
model_status model_trainer_create(model *m, model_data *data, model_trainer **out, char *err, size_t err_len);
void model_trainer_free(model_trainer *t);
int64_t model_trainer_step_count(const model_trainer *t);
/* One optimizer step: grad_accum micro-batches, clip, AdamW. The micro-batches
 * count as one batch: each one's mean loss is weighted by its share of the
 * step's counted label positions (not 1 / grad_accum), so loss and gradient
 * equal those of a single batch holding all of them. */
model_status model_trainer_step(model_trainer *t, model_step_info *info, char *err, size_t err_len);
/* Moves training to the GPU (model_gpu.h): the model's weights and the
 * trainer's optimizer state go to the device, every later step runs there, and
 * model_trainer_save / model_trainer_sync_host bring them back. Fails (with the
 * reason) when CUDA is not built, the variant has no CUDA operator, or the
 * batch does not fit in GPU memory. */
model_status model_trainer_use_gpu(model_trainer *t, char *err, size_t err_len);
/* The trainer's GPU model, or NULL when it trains on the CPU. */
struct model_gpu *model_trainer_gpu(const model_trainer *t);
/* GPU training: the device's weights into the host model (for evaluating or
 * scoring it there; model_trainer_save brings the optimizer state too); a no-op
 * on the CPU. */
model_status model_trainer_sync_host(const model_trainer *t, char *err, size_t err_len);
/* Writes a full checkpoint into dir: config.json, model.safetensors,
 * optimizer.safetensors (with the step and the data position). */
model_status model_trainer_save(const model_trainer *t, const char *dir, char *err, size_t err_len);
/* Loads a checkpoint's optimizer state and position into t (whose model must
 * already hold the checkpoint's weights, e.g. from model_load). */
model_status model_trainer_resume(model_trainer *t, const char *dir, char *err, size_t err_len);

/* Trains until the run's steps are done or a budget runs out (each 0 = none):
 * max_steps more steps, max_seconds of wall time. cb (may be NULL) is called
 * after every step; a non-zero return stops training (MODEL_OK). */
typedef int (*model_step_cb)(const model_step_info *info, void *user);
model_status model_train(model_trainer *t, int64_t max_steps, double max_seconds, model_step_cb cb, void *user,
                         char *err, size_t err_len);

/* Validation: the mean cross-entropy of m over batches first .. first +
 * n_batches - 1 of data (batch_size x context each), weighted by token: the sum
 * of the per-token losses over all counted positions divided by their number
 * (*count, may be NULL; *mean is 0 when there are none). No gradients; the
 * weights and the training state are untouched. */
model_status model_evaluate(model *m, model_data *data, int64_t first, int n_batches, int batch_size, int context,
                            double *mean, int64_t *count, char *err, size_t err_len);

/* ---- decoding ---- */

typedef struct model_cache model_cache;

/* A KV cache for B sequences of up to max_len tokens (dma also keeps its z
 * scores, nsa recompresses from the cached keys). */
model_status model_cache_create(model *m, int B, int max_len, model_cache **out, char *err, size_t err_len);
void model_cache_free(model_cache *c);
void model_cache_reset(model_cache *c);
int model_cache_len(const model_cache *c);
/* Appends n tokens per sequence (ids (B, n)) and writes logits: (B, n, vocab)
 * when all_logits, else (B, vocab) for the last new position. The new queries
 * attend the whole cache (Nq = n, Nk = len + n, bottom-right causal). */
model_status model_cache_step(model *m, model_cache *c, const int32_t *ids, int n, int all_logits, float *logits,
                              char *err, size_t err_len);

typedef struct {
    int max_new;        /* tokens to generate at most */
    double temperature; /* 0: greedy (ties: the lowest id) */
    int top_k;          /* 0: all */
    uint64_t seed;      /* sampling */
    int stop_token;     /* -1: none */
} model_gen_opts;

/* Generates for one prompt (n_prompt >= 1 tokens) with the KV cache. out
 * receives up to opts->max_new tokens, *n_out how many (a stop token is
 * included). step_logits (may be NULL): (max_new, vocab), the logits each
 * generated token was drawn from. */
model_status model_generate(model *m, const int32_t *prompt, int n_prompt, const model_gen_opts *opts,
                            int32_t *out, int *n_out, float *step_logits, char *err, size_t err_len);

/* Greedy decoding of B prompts of the same length n_prompt (prompts (B, n_prompt))
 * for n_new tokens each: out (B, n_new). */
model_status model_greedy_batch(model *m, const int32_t *prompts, int B, int n_prompt, int n_new, int32_t *out,
                                char *err, size_t err_len);

#endif
