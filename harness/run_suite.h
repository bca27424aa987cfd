/*
 * run_suite.h: suites for `dmabench run` (docs/run.md): parsing and validating
 * a suite file, expanding it into cells, and the embedded default suite.
 */
#ifndef DMABENCH_RUN_SUITE_H
#define DMABENCH_RUN_SUITE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "runner/runner.h"

#define SUITE_MAX_LIST 64
#define SUITE_MAX_CELLS 20000

typedef enum { SUITE_MQAR = 0, SUITE_NIAH, SUITE_PPL, SUITE_NTASKS } suite_task;
#define SUITE_MAX_VARIANTS 4 /* mha, swa, dma, nsa */
const char *suite_task_name(suite_task t);

typedef struct {
    int n;
    long long v[SUITE_MAX_LIST];
} suite_ilist;

typedef struct {
    int n;
    double v[SUITE_MAX_LIST];
} suite_dlist;

/* One task's block, with the model and training settings resolved (the task's
 * own keys over the suite's "model" and "train" blocks). */
typedef struct {
    int present;
    runner_model base;    /* variant, d_model and seed are set per cell */
    suite_ilist d_model;
    /* mqar */
    suite_ilist seq_len, num_kv_pairs;
    int vocab_size, n_test;
    double power_a;
    suite_dlist lrs;      /* the learning-rate sweep (n 0: none) */
    double early_stop;    /* 0: none */
    int64_t eval_every;   /* 0: steps / 10 */
    int n_val;
    /* niah */
    int train_context_len, samples, n_keys, n_values;
    suite_ilist context_len;
    suite_dlist depths;
    char haystack[16];    /* filler | licenses */
    /* ppl */
    char corpus[512];     /* synthetic | licenses | a file path */
    ppl_synth_config synth;
    int64_t train_tokens, test_tokens, max_eval_tokens;
    int train_context;
    suite_ilist contexts;
    int n_modes;
    ppl_mode modes[2];
} suite_task_cfg;

typedef struct {
    char name[64];
    char backend[8];      /* training backend: cpu | cuda */
    int threads;          /* 0: all */
    int n_variants;
    char variants[SUITE_MAX_VARIANTS][8];
    suite_ilist seeds;
    suite_task_cfg task[SUITE_NTASKS];
    int order[SUITE_NTASKS], n_tasks; /* tasks in the file's order */
    /* the kernel profile: arguments for `dmabench kernels` */
    int kernel_argc;
    char *kernel_argv[64];
    char kernel_backend[32];
} suite;

/* One unit of work: one training run and its evaluation. */
typedef struct {
    suite_task task;
    int variant;          /* index into suite.variants */
    long long seed;
    int d_model;
    int seq_len, num_kv_pairs; /* mqar */
    char key[160];        /* stable identity, e.g. "mqar/dma/seed=1/d_model=64/seq_len=128/num_kv_pairs=8" */
    double cost;          /* relative work, for the ETA */
} suite_cell;

/* Parses and validates suite JSON text (what: the name for messages). 0, or -1
 * with one line in err. */
int suite_parse(const char *json, const char *what, suite *s, char *err, size_t err_len);
int suite_load(const char *path, suite *s, char *err, size_t err_len);
void suite_free(suite *s);

/* Expands a suite into cells (malloc'ed) in run order. Returns the count or -1. */
int suite_cells(const suite *s, suite_cell **out, char *err, size_t err_len);

/* The embedded default suite (suites/quick.json, harness/run_quick.c). */
extern const char suite_quick_json[];

/* Prints to out how long the suite's training cells take, from the throughput and
 * evaluation time that the records in path (a run's records.jsonl or report.json)
 * measured for cells of the same key, the seed aside (harness/run_estimate.c);
 * *total_s (may be NULL) gets the estimate in seconds. With budget_s > 0, also the
 * factor on every task's steps (and the steps) that would make the training cells
 * take budget_s, evaluations unchanged.
 * Returns the number of cells without a measured record, or -1 with err set. */
int suite_estimate_time(const suite *S, const suite_cell *cells, int ncells, const char *path, double budget_s,
                        FILE *out, double *total_s, char *err, size_t err_len);

#endif
