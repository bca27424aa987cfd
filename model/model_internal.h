/*
 * model_internal.h: the model's private structures, shared by the model/ sources only.
 *
 * Shapes: B sequences of n tokens, M = B * n rows; C hidden, H query heads, K kv
 * heads, D head dim, F intermediate, V vocab, L layers. Wd = (H + 2K) D (+ 3H for
 * nsa) is the width of the fused q|k|v(|g) projection: the four weights sit next
 * to each other in the flat parameter buffer, so one GEMM computes all of them
 * and the attention operator reads q, k, v straight out of its output rows.
 */
#ifndef DMABENCH_MODEL_INTERNAL_H
#define DMABENCH_MODEL_INTERNAL_H

#include "model.h"
#include "registry.h"

/* Indices into model->t of one layer's tensors (-1: the variant has none). */
typedef struct {
    int in_norm, q, k, v, g, q_norm, k_norm, dt, A, o, res_in, post_norm, res_post, gate, up, down;
    int ck, cv, pk, pv; /* nsa linear compression: w_ck, w_cv (K, l*D, D), p_k, p_v (K, l, D) */
} layer_idx;

/* One layer's activations (forward) kept for the backward. */
typedef struct {
    float *xn;   /* (M, C) RMSNorm(x) */
    float *r1;   /* (M) its 1/rms */
    float *qkv;  /* (M, Wd) raw projections q | k | v | g-logits */
    float *qf;   /* (M, H, D) q after q_norm and RoPE */
    float *kf;   /* (M, K, D) k after k_norm and RoPE */
    float *rq;   /* (M, H) 1/rms of each q head */
    float *rk;   /* (M, K) */
    float *o;    /* (M, H, D) attention output */
    float *lse;  /* (B, H, n), nsa (3, B, H, n) */
    float *gs;   /* (M, H, 3) nsa gates sigmoid(g-logits); NULL otherwise */
    float *h;    /* (M, C) after the attention residual */
    float *hn;   /* (M, C) RMSNorm(h) */
    float *r2;   /* (M) */
    float *gu;   /* (M, 2F) gate | up */
    float *act;  /* (M, F) silu(gate) * up */
} layer_acts;

/* Activations for a (B, n) batch. train: one layer_acts per layer and every
 * residual stream kept; else one shared layer_acts and two streams. */
typedef struct {
    int B, n, train, nla;
    size_t M;
    float **x;          /* train: L + 1 streams (M, C); else 2 */
    layer_acts *la;     /* nla entries */
    float *xf, *rf;     /* (M, C), (M) final norm */
    float *logits;      /* (M, V) */
    /* backward scratch (train only) */
    float *dx[2], *dh, *dhn, *dxn, *dqkv, *dqf, *dkf, *dout, *dgu, *dact, *dgs, *dlogits;
    float *aux;         /* dw_dt, da, dw_ck, dw_cv, dp_k, dp_v of one layer */
    double *part;       /* reduction partials (MODEL_NCHUNK, max(C, Wd, 2F)) */
    double *rowloss;    /* (M) */
    void *block;        /* the single allocation */
} model_acts;

struct model {
    model_config cfg;
    const attn_op *op;
    int L, C, H, K, D, F, V, Wd, HD, KD;
    int nt;
    model_tensor *t;
    float *p, *g; /* parameters and gradients, np floats each */
    size_t np;      /* the flat buffers' length in floats, the gaps before aligned tensors included */
    size_t nparams; /* the parameters themselves */
    int emb, fnorm, head; /* head == emb when tied */
    layer_idx *li;
    float *wdt_t;  /* (L, K*D, K) dma: dt_proj transposed for the operator */
    float *rope_cos, *rope_sin; /* (rope_len, D/2) */
    int rope_len;
    model_acts acts; /* training / scoring activations, grown on demand */
    model_timers tm;
    int64_t ckpt_step; /* the step recorded in the last weights loaded (0: fresh) */
};

/* The KV cache (model_cache_create). */
struct model_cache {
    int B, max_len, len;
    float *k, *v;   /* (L, B, max_len, K, D) after k_norm and RoPE; raw v */
    float *z;       /* dma: (L, B, K, max_len) the scores of the cached keys */
    float *zc;      /* dma: (B, K, max_len) contiguous copy of one layer's z for the operator */
    float *znew;    /* dma: (B, K, max_len) z of the keys being appended */
    model_acts acts;
};

/* Fixed number of row chunks for reductions: results do not depend on the
 * thread count. */
#define MODEL_NCHUNK 16

/* model.c */
/* Writes the one-line reason (printf format) into err when given; returns st. */
model_status model_errf(model_status st, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The attention operator's settings from the config: w, dma's mode, nsa's blocks. */
void model_attn_settings(const model_config *c, attn_params *p);
model_status model_acts_ensure(model *m, model_acts *a, int B, int n, int train);
void model_acts_free(model_acts *a);
model_status model_rope_ensure(model *m, int len);

/* One decoding step over any KV cache (model_decode.c, model_gpu.c): ids (B, n) in,
 * logits (B, V) of each sequence's last new token out. */
typedef model_status (*model_step_fn)(void *ctx, const int32_t *ids, int n, float *logits, char *err, size_t err_len);
/* model_generate's and model_greedy_batch's loops over a step function. */
model_status model_generate_loop(model_step_fn step, void *ctx, int V, const int32_t *prompt, int n_prompt,
                                 const model_gen_opts *o, int32_t *out, int *n_out, float *step_logits, char *err,
                                 size_t err_len);
model_status model_greedy_loop(model_step_fn step, void *ctx, int V, const int32_t *prompts, int B, int n_prompt,
                               int n_new, int32_t *out, char *err, size_t err_len);
/* The forward of the whole stack over ids (B, n) at positions pos0.., into a->x
 * and the final norm a->xf; with a cache, keys/values are appended to it. */
struct model_cache;
model_status model_stack_forward(model *m, model_acts *a, const int32_t *ids, int B, int n, int pos0,
                                 struct model_cache *cache, char *err, size_t err_len);
/* LM head over rows: logits (rows, V) = xf_rows E^T. */
void model_lm_head(model *m, const float *xf, size_t rows, float *logits);
/* The head and the loss over the labelled rows alone (both models' training
 * step): when at most half of the M rows count (n of them) and
 * DMABENCH_HEAD_ALL_ROWS is not "1", 1 and *rows = a malloc'd index of the n
 * labelled rows followed by their n labels; else 0 and *rows = NULL; -1: out of
 * memory. */
int model_head_rows(const int32_t *labels, size_t M, int64_t n, int32_t **rows);

/* model_optim.c: AdamW internals for checkpoints */
float *model_adamw_m1(model_adamw *o);
float *model_adamw_m2(model_adamw *o);
void model_adamw_set_steps(model_adamw *o, int64_t t);

/* model_ops.c */
void mops_gemm(model *m, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
void mops_rmsnorm_fwd(const float *x, const float *w, size_t rows, int n, double eps, float *y, float *r);
/* dx (=, or += when acc) from dy; dw += column sums (deterministic chunks). */
void mops_rmsnorm_bwd(const float *x, const float *r, const float *w, const float *dy, size_t rows, int n,
                      float *dx, int acc, float *dw, double *part);
/* Row reduction: out[c] += sum_rows a[r, c] * b[r, c]. */
void mops_colsum_prod(const float *a, const float *b, size_t rows, int n, float *out, double *part);
/* RoPE on one head row of D at table row pos (HF's rotate_half layout). */
void mops_rope(float *x, int D, const float *cs, const float *sn);
void mops_rope_bwd(float *dx, int D, const float *cs, const float *sn);
/* Cross-entropy rows: loss per row (0 for ignored), dlogits = scale (p - onehot)
 * when dlogits is not NULL. Returns the number of counted rows. */
int64_t mops_cross_entropy(const float *logits, const int32_t *labels, size_t rows, int V, double *rowloss,
                           float *dlogits, double scale);

#endif
