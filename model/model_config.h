/*
 * model_config.h: the model's configuration, read from and written to a JSON file
 * whose keys are HF transformers' DogeConfig keys (so a checkpoint's config.json
 * loads in DogeForCausalLM) plus two blocks of dmabench's own:
 *
 *   "attention": {"variant": "dma|mha|swa|nsa", "backend": "cpu|ref", "window": w,
 *                 "dma_mode": "exp|linear", "nsa_l", "nsa_d", "nsa_ls", "nsa_n",
 *                 "nsa_cmp": "linear|mean", "nsa_gates": [g_cmp, g_slc, g_win]}
 *   "train":     {"steps", "batch_size", "context", "lr", "min_lr_ratio",
 *                 "schedule": "cosine|wsd|constant", "warmup", "decay_frac",
 *                 "weight_decay", "beta1", "beta2", "adam_eps", "clip",
 *                 "grad_accum", "seed", "log_every", "ckpt_every"}
 *
 * docs/model.md lists every key, its default and its check. Parsing validates
 * everything and reports the first problem as one line ("config 'PATH': key
 * 'hidden_size' must be an integer >= 1, got 0"). Nothing here prints.
 */
#ifndef DMABENCH_MODEL_CONFIG_H
#define DMABENCH_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "attn.h"

typedef enum { SCHED_COSINE = 0, SCHED_WSD, SCHED_CONSTANT } model_schedule;

const char *model_schedule_name(model_schedule s);

/* Training settings: the config's "train" block (flags of `dmabench train` may
 * override them). */
typedef struct {
    int64_t steps;          /* optimizer steps in the whole run */
    int batch_size;         /* sequences per micro-batch */
    int context;            /* tokens per sequence */
    int grad_accum;         /* micro-batches per optimizer step */
    double lr;              /* peak learning rate */
    double min_lr_ratio;    /* the schedule ends at lr * min_lr_ratio */
    model_schedule schedule;
    int64_t warmup;         /* linear warmup steps (from lr/warmup to lr) */
    double decay_frac;      /* wsd: the last decay_frac of the steps decay linearly */
    double weight_decay;    /* AdamW, decoupled; matrices only */
    double beta1, beta2, adam_eps;
    double clip;            /* global gradient-norm clip; 0 = none */
    uint64_t seed;          /* initialisation and data order */
    int64_t log_every;      /* progress and log line every N steps */
    int64_t ckpt_every;     /* checkpoint every N steps (0: only at the end) */
} model_train_config;

typedef struct {
    /* HF DogeConfig keys */
    int vocab_size;
    int hidden_size;              /* C */
    int intermediate_size;        /* F, the SwiGLU width */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* Hq */
    int num_key_value_heads;      /* Hkv */
    int head_dim;                 /* D (even: RoPE rotates pairs) */
    int max_position_embeddings;
    int keep_window_size;         /* dma's w; written as >= the context for mha/swa */
    int tie_word_embeddings;
    double rope_theta;
    double rms_norm_eps;
    double initializer_range;
    int bos_token_id, eos_token_id, pad_token_id; /* -1: none */

    /* "attention" block */
    attn_variant variant;
    attn_backend backend;         /* cpu (default) or ref */
    int window;                   /* swa window; nsa window branch (dma: keep_window_size) */
    dma_mode dma_mode;
    nsa_cmp nsa_cmp;
    int nsa_l, nsa_d, nsa_ls, nsa_n;
    /* nsa's gates: learned, sigmoid(x W_g) per query and head (0, the default), or
     * fixed to nsa_gates (1; then the model has no g_proj), for ablations */
    int nsa_gates_fixed;
    float nsa_gates[3]; /* g_cmp, g_slc, g_win, each in [0, 1] */

    model_train_config train;
} model_config;

/* The defaults: a tiny dma model over bytes (docs/model.md). */
void model_config_default(model_config *c);

/* Parses JSON text (what = a name for messages, e.g. the path). Starts from the
 * defaults, applies every key, then validates. 0 on success, -1 with one line in err. */
int model_config_parse(const char *json, const char *what, model_config *c, char *err, size_t err_len);
/* Reads and parses a file. */
int model_config_load(const char *path, model_config *c, char *err, size_t err_len);

/* Checks the whole config (also after flags changed it). 0 or -1 with err. */
int model_config_check(const model_config *c, char *err, size_t err_len);
int model_train_config_check(const model_train_config *t, char *err, size_t err_len);

/* The config as HF-compatible JSON text (malloc'd; NULL on OOM). For mha and swa,
 * keep_window_size is written as at least max(max_position_embeddings, context)
 * and swa also writes "sliding_window": w, so transformers' Doge computes exactly
 * the same attention with A = 0 and dt_proj = 0. */
char *model_config_to_json(const model_config *c);

/* The attention window the operator uses: keep_window_size for dma, window for
 * swa and nsa, unused (0) for mha. */
int model_config_attn_w(const model_config *c);

/* An "nsa_gates" value (a config's attention block, a suite's model block): 1 when
 * it is absent or null (learned gates), 0 when it is 3 numbers in 0..1 (g_cmp,
 * g_slc, g_win, into g), -1 otherwise, with *bad the first item that is not a
 * number in 0..1 (-1: not an array of 3). */
struct cJSON;
int model_nsa_gates_parse(const struct cJSON *j, float g[3], int *bad);

#endif
