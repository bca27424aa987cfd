/*
 * runner.h: the per-task training and evaluation loops (docs/run.md). Each
 * runner builds the model layer's Doge-style model with one attention variant,
 * trains it on the task's training stream under a fixed budget (steps, batch,
 * context, learning rate, seed), then scores it:
 *
 *   - runner_mqar: MQAR accuracy (argmax at the query positions) on the test set;
 *   - runner_niah: needle accuracy per (context length, depth) cell, greedy
 *     decoding with the KV cache, exact match, Wilson intervals (niah_grid);
 *   - runner_ppl: mean NLL, perplexity and bits per byte with standard errors
 *     over windows of the corpus's test split, in disjoint and chunk mode, at
 *     several contexts (also longer than the training context).
 *
 * Library code: nothing prints or exits. Every function returns a task_status
 * and, given err, one line saying why. Progress goes through a callback.
 */
#ifndef DMABENCH_RUNNER_H
#define DMABENCH_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "mqar/mqar.h"
#include "niah/niah.h"
#include "ppl/ppl.h"
#include "task.h"

/* The model and training budget shared by every variant of a comparison. */
typedef struct {
    char variant[8];     /* mha, swa, dma, nsa */
    int d_model;         /* hidden size */
    int n_layers;
    int n_heads, n_kv_heads; /* head_dim = d_model / n_heads */
    int ffn;             /* intermediate size (0: 2 * d_model) */
    int window;          /* swa window, dma keep window, nsa window branch */
    int nsa_l, nsa_d, nsa_ls, nsa_n; /* 0: the model layer's defaults */
    int nsa_mean;        /* 1: nsa's compression is the block mean (0: linear, the default) */
    int nsa_gates_fixed; /* 1: nsa's gates fixed to nsa_gates (0: learned, the default) */
    float nsa_gates[3];  /* g_cmp, g_slc, g_win */
    int64_t steps;
    int batch_size;
    double lr;
    int64_t warmup;      /* -1: steps / 10 */
    double weight_decay; /* < 0: the default (0.1) */
    uint64_t seed;       /* initialisation and data order */
    int cuda;            /* 1: train and score on the GPU (model_gpu.h) */
} runner_model;

void runner_model_default(runner_model *m);

/* Called during training (phase "train": done = steps done, total = steps,
 * loss = the step's loss) and evaluation (phase "eval": done/total in units of
 * the runner's choosing, loss NaN). A non-zero return stops the run
 * (TASK_ERR_DATA, "interrupted"). */
typedef int (*runner_progress)(const char *phase, int64_t done, int64_t total, double loss, void *user);

typedef struct {
    double final_loss;   /* mean loss of the last 10% of training steps */
    double train_s, eval_s;
    double tokens_per_s; /* training throughput */
    int64_t n_params;
} runner_stats;

/* Greedy decoding by full forwards (no KV cache): for each of n_new steps, predict
 * (the argmax at every position of B rows of L tokens) runs on the prompts (B, n)
 * followed by the tokens so far, and the last position's prediction is appended.
 * out (B, n_new). What the runner uses on the GPU; on the CPU it must equal
 * model_greedy_batch (tests/test_run.c). */
typedef task_status (*runner_predict_fn)(void *ctx, const int32_t *ids, int B, int L, int32_t *pred, char *err,
                                         size_t err_len);
task_status runner_greedy_by_forward(runner_predict_fn predict, void *ctx, const int32_t *prompts, int B, int n,
                                     int n_new, int32_t *out, char *err, size_t err_len);

/* ---- MQAR ---- */

/* Trains on mqar's train stream (context = seq_len) and scores n_test test
 * examples: *acc the accuracy, *acc_se its standard error over examples. */
task_status runner_mqar(const runner_model *rm, const mqar_config *mc, int n_test, double *acc, double *acc_se,
                        runner_stats *st, runner_progress cb, void *user, char *err, size_t err_len);

/* The optional learning-rate sweep and early stop (docs/run.md). For each lr
 * (lrs[0 .. n_lrs-1]; none: rm->lr alone) a fresh model is trained; with
 * early_stop > 0 the validation accuracy (n_val examples of the stream of
 * val_seed, apart from the train and test streams) is measured every
 * eval_every steps (0: steps/10, rounded up) and the run stops once it reaches
 * early_stop. Each run ends with its validation accuracy; the best (highest;
 * ties: fewer steps, then the first listed) is scored on the test set. */
#define RUNNER_MAX_LRS 16

typedef struct {
    int n_lrs;
    const double *lrs;   /* borrowed */
    double early_stop;   /* 0: train the whole budget */
    int64_t eval_every;
    int n_val;           /* default 256 */
    uint64_t val_seed;   /* default 20 */
} runner_mqar_sweep;

void runner_mqar_sweep_default(runner_mqar_sweep *sw);

typedef struct {
    double lr;
    int64_t steps;       /* steps taken (< the budget when stopped early) */
    double val_acc;      /* at the end of the run */
    int early_stopped;
    double final_loss;
} runner_mqar_trial;

typedef struct {
    int n_trials, best; /* best: the index of the chosen run */
    runner_mqar_trial trials[RUNNER_MAX_LRS];
} runner_mqar_result;

/* runner_mqar with a sweep (sw NULL: exactly runner_mqar). res (may be NULL)
 * receives every run; st describes the chosen run (train_s: the whole sweep). */
task_status runner_mqar_ex(const runner_model *rm, const mqar_config *mc, int n_test, const runner_mqar_sweep *sw,
                           runner_mqar_result *res, double *acc, double *acc_se, runner_stats *st, runner_progress cb,
                           void *user, char *err, size_t err_len);

/* ---- NIAH ---- */

/* Trains at train_len, then evaluates every (lens[li], depths[di]) cell with
 * `samples` examples into grid (initialised here; free with niah_grid_free). */
task_status runner_niah(const runner_model *rm, const niah_config *nc, int train_len, const int *lens, int n_lens,
                        const double *depths, int n_depths, int samples, niah_grid *grid, runner_stats *st,
                        runner_progress cb, void *user, char *err, size_t err_len);

/* ---- PPL ---- */

typedef struct {
    int context;
    ppl_mode mode;
    ppl_metrics m;
    double floor_bpb;    /* synthetic corpora: the ideal model's bits/byte on these windows (NaN otherwise) */
    int floor_exact;
} runner_ppl_eval;

/* Trains on the corpus's train split at train_context, then evaluates each
 * evals[i].context / evals[i].mode over at most max_eval_tokens tokens of the
 * test split (0: all), filling evals[i].m. */
task_status runner_ppl(const runner_model *rm, const ppl_corpus *corpus, int train_context, runner_ppl_eval *evals,
                       int n_evals, int64_t max_eval_tokens, runner_stats *st, runner_progress cb, void *user,
                       char *err, size_t err_len);

#endif
