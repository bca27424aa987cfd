/*
 * mqar.h: multi-query associative recall, the Zoology generator
 * (HazyResearch/zoology, zoology/data/associative_recall.py `_mqar` and
 * multiquery_ar.py), reimplemented in C on our seeded generator.
 *
 * One example of length L over vocabulary V with N key-value pairs:
 *
 *   positions 0 .. 2N-1       the context: k_0 v_0 k_1 v_1 ... (repeated
 *                             num_passes times, JRT style; 1 by default)
 *   positions 2NP .. L-1      the query region, split into space = (L - 2NP)/2
 *                             slots of two positions; key k_j is placed at
 *                             position 2NP + 2 g_j, where the gaps g_0 .. g_{N-1}
 *                             are drawn without replacement from 0 .. space-1
 *                             with probability proportional to a (g+1)^(a-1)
 *   every other position      a uniform random token in [0, V) (random_non_queries),
 *                             or 0 when that option is off
 *
 * Keys are N distinct tokens from [1, V/2), values N distinct tokens from
 * [V/2, V) (V/2 rounded down), pair j = (k_j, v_j), gap g_j is the j-th draw.
 * Labels (after Zoology's shift: labels[t] is what position t must predict) are
 * v_j at position 2NP + 2 g_j (the query's own position) and TASK_IGNORE
 * everywhere else. Validity (Zoology's asserts): L even, V > L, 2NP + 2N <= L
 * (4N <= L for one pass), plus N >= 1 and a > 0.
 *
 * Example e of a stream is a pure function of (seed, e); the train and test
 * streams use different salts as well as different seeds, so they never
 * coincide. Zoology's default test seed is the train seed + 10; so are ours.
 */
#ifndef DMABENCH_MQAR_H
#define DMABENCH_MQAR_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

typedef struct {
    int vocab_size;         /* V (default 8192) */
    int seq_len;            /* L (default 256) */
    int num_kv_pairs;       /* N (default 16) */
    double power_a;         /* a (default 0.01); 1 gives uniform gaps */
    int num_passes;         /* P (default 1) */
    int random_non_queries; /* default 1 */
    uint64_t train_seed;    /* default 0 */
    uint64_t test_seed;     /* default 10 */
} mqar_config;

void mqar_config_default(mqar_config *c);

/* TASK_OK, or TASK_ERR_ARG with the broken rule in err. */
task_status mqar_validate(const mqar_config *c, char *err, size_t err_len);

/* The number of query slots, (L - 2NP) / 2 (for a valid config). */
int mqar_space(const mqar_config *c);

/* The gap probabilities p[g], g = 0 .. space-1: a (g+1)^(a-1), normalised. */
task_status mqar_gap_probs(const mqar_config *c, double *p, char *err, size_t err_len);

/* Example `index` of the stream of `seed` into ids[L] and labels[L]. gaps (may
 * be NULL) receives g_0 .. g_{N-1}, the gap of pair j in draw order. */
task_status mqar_example(const mqar_config *c, uint64_t seed, int64_t index, int32_t *ids, int32_t *labels,
                         int32_t *gaps, char *err, size_t err_len);

/* Examples first .. first+n-1 of the stream of `seed`: ids and labels (n, L);
 * gaps (n, N) may be NULL. */
task_status mqar_examples(const mqar_config *c, uint64_t seed, int64_t first, int n, int32_t *ids,
                          int32_t *labels, int32_t *gaps, char *err, size_t err_len);

/* Training batch i: train-stream examples i*B .. i*B+B-1. */
task_status mqar_train_batch(const mqar_config *c, int64_t i, int batch_size, int32_t *ids, int32_t *labels,
                             char *err, size_t err_len);

/* Evaluation examples first .. first+n-1 of the test stream. */
task_status mqar_test_examples(const mqar_config *c, int64_t first, int n, int32_t *ids, int32_t *labels,
                               char *err, size_t err_len);

/* A batch source over the train stream (copies c). context must equal L. */
task_status mqar_batcher_create(const mqar_config *c, task_batcher **out, char *err, size_t err_len);

/* ---- accuracy ---- */

/* The fraction of labelled positions of one example (length L) whose predicted
 * token (argmax) equals the label; NaN when the example has none. */
double mqar_example_accuracy(const int32_t *preds, const int32_t *labels, int L);

/* Accumulates examples: accuracy = mean over examples of their fractions. */
typedef struct {
    double sum, sum_sq;      /* of per-example fractions */
    int64_t n_examples;      /* examples with at least one label */
    int64_t n_correct, n_queries;
} mqar_acc;

void mqar_acc_init(mqar_acc *a);
/* preds, labels (n, L). */
void mqar_acc_add(mqar_acc *a, const int32_t *preds, const int32_t *labels, int n, int L);
double mqar_acc_accuracy(const mqar_acc *a);  /* NaN with no example */
double mqar_acc_stderr(const mqar_acc *a);    /* of the mean over examples; NaN below 2 */

/* Shortcut: the accuracy of n examples. */
double mqar_accuracy(const int32_t *preds, const int32_t *labels, int n, int L);

/* Argmax predictions from logits (n_pos, vocab) into preds[n_pos]. */
void mqar_argmax_preds(const float *logits, int64_t n_pos, int vocab, int32_t *preds);

#endif
