/*
 * runner.c: train one variant on a task, then score it (runner.h, docs/run.md).
 */
#include "runner/runner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "model_gpu.h"

void runner_model_default(runner_model *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->variant, sizeof m->variant, "mha");
    m->d_model = 64;
    m->n_layers = 2;
    m->n_heads = 4;
    m->n_kv_heads = 2;
    m->window = 64;
    m->steps = 100;
    m->batch_size = 8;
    m->lr = 3e-3;
    m->warmup = -1;
    m->weight_decay = -1;
    m->seed = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static task_status from_model(model_status s) {
    switch (s) {
    case MODEL_OK: return TASK_OK;
    case MODEL_ERR_OOM: return TASK_ERR_OOM;
    case MODEL_ERR_IO: return TASK_ERR_IO;
    case MODEL_ERR_ARG:
    case MODEL_ERR_CONFIG: return TASK_ERR_ARG;
    default: return TASK_ERR_DATA;
    }
}

/* ---- task_batcher -> model_data ---- */

static int adapt_get(model_data *d, int64_t i, int bs, int ctx, int32_t *ids, int32_t *labels, char *err,
                     size_t err_len) {
    task_batcher *b = d->ctx;
    return b->get_batch(b, i, bs, ctx, ids, labels, err, err_len) == TASK_OK ? 0 : -1;
}

static void adapt_init(model_data *d, task_batcher *b) {
    memset(d, 0, sizeof *d);
    d->get_batch = adapt_get;
    d->free = NULL;
    d->max_context = b->max_context;
    d->vocab_needed = b->vocab_needed;
    d->n_tokens = b->n_tokens;
    d->ctx = b;
}

/* ---- building and training the model ---- */

static task_status build_model(const runner_model *rm, int vocab, int train_ctx, int max_len, model **out,
                               char *err, size_t err_len) {
    model_config c;
    model_config_default(&c);
    attn_variant v;
    if (attn_variant_parse(rm->variant, &v) != 0) {
        task_errf(err, err_len, "unknown variant '%s' (use mha, swa, dma or nsa)", rm->variant);
        return TASK_ERR_ARG;
    }
    if (rm->d_model < 2 || rm->n_heads < 1 || rm->d_model % rm->n_heads) {
        task_errf(err, err_len, "d_model %d must be a multiple of heads %d", rm->d_model, rm->n_heads);
        return TASK_ERR_ARG;
    }
    c.vocab_size = vocab;
    if (vocab < TASK_BYTE_VOCAB) c.bos_token_id = c.eos_token_id = c.pad_token_id = -1; /* mqar: no specials */
    c.hidden_size = rm->d_model;
    c.intermediate_size = rm->ffn > 0 ? rm->ffn : 2 * rm->d_model;
    c.num_hidden_layers = rm->n_layers;
    c.num_attention_heads = rm->n_heads;
    c.num_key_value_heads = rm->n_kv_heads > 0 ? rm->n_kv_heads : rm->n_heads;
    c.head_dim = rm->d_model / rm->n_heads;
    c.max_position_embeddings = max_len > train_ctx ? max_len : train_ctx;
    c.variant = v;
    c.window = rm->window;
    c.keep_window_size = v == ATTN_DMA ? rm->window : c.max_position_embeddings;
    if (rm->nsa_l > 0) c.nsa_l = rm->nsa_l;
    if (rm->nsa_d > 0) c.nsa_d = rm->nsa_d;
    if (rm->nsa_ls > 0) c.nsa_ls = rm->nsa_ls;
    if (rm->nsa_n > 0) c.nsa_n = rm->nsa_n;
    if (rm->nsa_mean) c.nsa_cmp = NSA_CMP_MEAN;
    if (rm->nsa_gates_fixed) {
        c.nsa_gates_fixed = 1;
        memcpy(c.nsa_gates, rm->nsa_gates, sizeof c.nsa_gates);
    }
    c.train.steps = rm->steps;
    c.train.batch_size = rm->batch_size;
    c.train.context = train_ctx;
    c.train.lr = rm->lr;
    c.train.warmup = rm->warmup >= 0 ? rm->warmup : rm->steps / 10;
    if (c.train.warmup >= rm->steps) c.train.warmup = rm->steps > 1 ? rm->steps - 1 : 0;
    if (rm->weight_decay >= 0) c.train.weight_decay = rm->weight_decay;
    c.train.seed = rm->seed;
    c.train.log_every = 1000000;
    c.train.ckpt_every = 0;
    if (model_config_check(&c, err, err_len) != 0) return TASK_ERR_ARG;
    return from_model(model_create(&c, out, err, err_len));
}

typedef struct {
    runner_progress cb;
    void *user;
    double *losses;
    int64_t n;
    int stopped;
} train_cb_ctx;

static int on_step(const model_step_info *info, void *user) {
    train_cb_ctx *t = user;
    if (t->n < info->steps) t->losses[t->n++] = info->loss;
    if (t->cb && t->cb("train", info->step, info->steps, info->loss, t->user)) {
        t->stopped = 1;
        return 1;
    }
    return 0;
}

/* Called every `every` steps of train_ex (and not after the last step unless it
 * falls on a multiple): a non-zero return stops training early (not an error). */
typedef int (*train_hook)(model *m, int64_t step, void *user, task_status *s);

static task_status train_ex(model *m, int gpu, task_batcher *b, runner_stats *st, runner_progress cb, void *user,
                            int64_t every, train_hook hook, void *hook_user, int64_t *steps_done, char *err,
                            size_t err_len) {
    model_data d;
    adapt_init(&d, b);
    model_trainer *tr = NULL;
    const model_config *c = model_get_config(m);
    model_status ms = model_trainer_create(m, &d, &tr, err, err_len);
    if (ms == MODEL_OK && gpu) ms = model_trainer_use_gpu(tr, err, err_len);
    if (ms != MODEL_OK) {
        model_trainer_free(tr);
        return from_model(ms);
    }
    train_cb_ctx t = {cb, user, calloc((size_t)c->train.steps + 1, sizeof(double)), 0, 0};
    if (!t.losses) {
        model_trainer_free(tr);
        task_errf(err, err_len, "out of memory");
        return TASK_ERR_OOM;
    }
    task_status hs = TASK_OK;
    double t0 = now_s();
    if (every > 0 && hook) {
        for (;;) {
            ms = model_train(tr, every, 0, on_step, &t, err, err_len);
            if (ms != MODEL_OK || t.stopped) break;
            int64_t k = model_trainer_step_count(tr);
            /* the hook scores the host model: bring the GPU's weights back first */
            if ((ms = model_trainer_sync_host(tr, err, err_len)) != MODEL_OK) break;
            if (hook(m, k, hook_user, &hs) || hs != TASK_OK) break;
            if (k >= c->train.steps) break;
        }
    } else {
        ms = model_train(tr, 0, 0, on_step, &t, err, err_len);
    }
    double dt = now_s() - t0;
    if (steps_done) *steps_done = model_trainer_step_count(tr);
    if (ms == MODEL_OK) ms = model_trainer_sync_host(tr, err, err_len); /* scoring runs on the host model */
    model_trainer_free(tr);
    task_status s = from_model(ms);
    if (s == TASK_OK && hs != TASK_OK) s = hs;
    if (s == TASK_OK && t.stopped) {
        task_errf(err, err_len, "interrupted");
        s = TASK_ERR_DATA;
    }
    if (st) {
        int64_t k = t.n / 10 > 0 ? t.n / 10 : 1, first = t.n - k;
        double sum = 0;
        for (int64_t i = first < 0 ? 0 : first; i < t.n; i++) sum += t.losses[i];
        st->final_loss = t.n ? sum / (double)(t.n - (first < 0 ? 0 : first)) : NAN;
        st->train_s = dt;
        st->tokens_per_s = dt > 0 ? (double)t.n * c->train.batch_size * c->train.context / dt : 0;
        st->n_params = (int64_t)model_num_params(m);
    }
    free(t.losses);
    return s;
}

static task_status train(model *m, int gpu, task_batcher *b, runner_stats *st, runner_progress cb, void *user,
                         char *err, size_t err_len) {
    return train_ex(m, gpu, b, st, cb, user, 0, NULL, NULL, NULL, err, err_len);
}

/* ---- scoring on the GPU ----
 * When a run trains on the GPU it also scores there: a model_gpu made from the host
 * model's weights (brought back after training) for the largest batch the scoring
 * uses. Greedy decoding reruns the whole forward for every new token (no KV cache
 * on the GPU yet): a few forwards of a prompt, cheap next to the training. */

typedef struct {
    model_gpu *g;
    int B, T;
} gpu_scorer;

static void scorer_free(gpu_scorer *sc) {
    model_gpu_free(sc->g);
    memset(sc, 0, sizeof *sc);
}

/* sc->g for batches up to B x T with m's current weights. */
static task_status scorer_get(gpu_scorer *sc, model *m, int B, int T, char *err, size_t err_len) {
    if (sc->g && B <= sc->B && T <= sc->T) return from_model(model_gpu_upload(sc->g, err, err_len));
    scorer_free(sc);
    model_status ms = model_gpu_create(m, B, T, &sc->g, err, err_len);
    if (ms != MODEL_OK) return from_model(ms);
    sc->B = B, sc->T = T;
    return TASK_OK;
}

task_status runner_greedy_by_forward(runner_predict_fn predict, void *ctx, const int32_t *prompts, int B, int n,
                                     int n_new, int32_t *out, char *err, size_t err_len) {
    if (B < 1 || n < 1 || n_new < 0) {
        task_errf(err, err_len, "greedy: bad sizes");
        return TASK_ERR_ARG;
    }
    const int Lm = n + n_new;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)B * Lm), *pred = malloc(sizeof(int32_t) * (size_t)B * Lm);
    task_status s = seq && pred ? TASK_OK : TASK_ERR_OOM;
    if (s == TASK_ERR_OOM) task_errf(err, err_len, "out of memory (greedy decoding)");
    for (int t = 0; t < n_new && s == TASK_OK; t++) {
        const int L = n + t; /* the prompt and the t tokens so far, row by row */
        for (int b = 0; b < B; b++) {
            memcpy(seq + (size_t)b * L, prompts + (size_t)b * n, sizeof(int32_t) * (size_t)n);
            memcpy(seq + (size_t)b * L + n, out + (size_t)b * n_new, sizeof(int32_t) * (size_t)t);
        }
        s = predict(ctx, seq, B, L, pred, err, err_len);
        for (int b = 0; b < B && s == TASK_OK; b++) out[(size_t)b * n_new + t] = pred[(size_t)b * L + L - 1];
    }
    free(seq);
    free(pred);
    return s;
}

static task_status gpu_predict(void *ctx, const int32_t *ids, int B, int T, int32_t *pred, char *err, size_t err_len) {
    return from_model(model_gpu_predict(((gpu_scorer *)ctx)->g, ids, B, T, pred, err, err_len));
}

/* Greedy decoding on the GPU: through the KV cache in device memory
 * (model_gpu_greedy_batch), or, with DMABENCH_GPU_KV_CACHE=0, one full forward
 * per new token. */
static task_status scorer_greedy(gpu_scorer *sc, const int32_t *prompts, int B, int n, int n_new, int32_t *out, char *err,
                                 size_t err_len) {
    const char *e = getenv("DMABENCH_GPU_KV_CACHE");
    if (!(e && !strcmp(e, "0"))) return from_model(model_gpu_greedy_batch(sc->g, prompts, B, n, n_new, out, err, err_len));
    return runner_greedy_by_forward(gpu_predict, sc, prompts, B, n, n_new, out, err, err_len);
}

/* ---- MQAR ---- */

/* Accuracy of m on examples 0 .. n-1 of the test stream of mc (cb: "eval"
 * progress, may be NULL). */
static task_status mqar_score(model *m, int gpu, const mqar_config *mc, int n_ex, int eb, double *acc, double *acc_se,
                              runner_progress cb, void *user, char *err, size_t err_len) {
    const int L = mc->seq_len, V = mc->vocab_size;
    task_status s = TASK_OK;
    gpu_scorer sc = {0};
    if (gpu && (s = scorer_get(&sc, m, eb, L, err, err_len)) != TASK_OK) return s;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)eb * L);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)eb * L);
    int32_t *preds = malloc(sizeof(int32_t) * (size_t)eb * L);
    float *logits = gpu ? NULL : malloc(sizeof(float) * (size_t)eb * L * V);
    if (!ids || !labels || !preds || (!gpu && !logits)) {
        task_errf(err, err_len, "out of memory (mqar evaluation)");
        s = TASK_ERR_OOM;
        goto done;
    }
    mqar_acc a;
    mqar_acc_init(&a);
    for (int first = 0; first < n_ex; first += eb) {
        int n = n_ex - first < eb ? n_ex - first : eb;
        if ((s = mqar_test_examples(mc, first, n, ids, labels, err, err_len)) != TASK_OK) goto done;
        model_status ms = gpu ? model_gpu_predict(sc.g, ids, n, L, preds, err, err_len)
                              : model_logits(m, ids, n, L, logits, err, err_len);
        if (ms != MODEL_OK) {
            s = from_model(ms);
            goto done;
        }
        for (int64_t p = 0; p < (int64_t)n * L; p++)
            preds[p] = labels[p] == TASK_IGNORE ? -1 : gpu ? preds[p] : task_argmax(logits + p * V, V);
        mqar_acc_add(&a, preds, labels, n, L);
        if (cb && cb("eval", first + n, n_ex, NAN, user)) {
            task_errf(err, err_len, "interrupted");
            s = TASK_ERR_DATA;
            goto done;
        }
    }
    *acc = mqar_acc_accuracy(&a);
    if (acc_se) *acc_se = mqar_acc_stderr(&a);
done:
    free(ids);
    free(labels);
    free(preds);
    free(logits);
    scorer_free(&sc);
    return s;
}

task_status runner_mqar(const runner_model *rm, const mqar_config *mc, int n_test, double *acc, double *acc_se,
                        runner_stats *st, runner_progress cb, void *user, char *err, size_t err_len) {
    return runner_mqar_ex(rm, mc, n_test, NULL, NULL, acc, acc_se, st, cb, user, err, err_len);
}

void runner_mqar_sweep_default(runner_mqar_sweep *sw) {
    memset(sw, 0, sizeof *sw);
    sw->n_val = 256;
    sw->val_seed = 20;
}

typedef struct {
    const runner_mqar_sweep *sw;
    const mqar_config *val; /* the validation stream (test_seed = val_seed) */
    int eb;
    double last_acc;
    int64_t last_step;
    int gpu;
} val_ctx;

static int val_hook(model *m, int64_t step, void *user, task_status *s) {
    val_ctx *v = user;
    char e[256];
    double a = NAN;
    *s = mqar_score(m, v->gpu, v->val, v->sw->n_val, v->eb, &a, NULL, NULL, NULL, e, sizeof e);
    if (*s != TASK_OK) return 1;
    v->last_acc = a;
    v->last_step = step;
    return v->sw->early_stop > 0 && a >= v->sw->early_stop;
}

/* per-lr progress: steps of all the runs of the sweep as one count */
typedef struct {
    runner_progress cb;
    void *user;
    int64_t offset, total;
} sweep_cb_ctx;

static int sweep_cb(const char *phase, int64_t done, int64_t total, double loss, void *user) {
    sweep_cb_ctx *c = user;
    (void)total;
    return c->cb ? c->cb(phase, c->offset + done, c->total, loss, c->user) : 0;
}

task_status runner_mqar_ex(const runner_model *rm, const mqar_config *mc, int n_test, const runner_mqar_sweep *sw,
                           runner_mqar_result *res, double *acc, double *acc_se, runner_stats *st, runner_progress cb,
                           void *user, char *err, size_t err_len) {
    runner_mqar_result local;
    if (!res) res = &local;
    if (st) memset(st, 0, sizeof *st);
    memset(res, 0, sizeof *res);
    task_status s = mqar_validate(mc, err, err_len);
    if (s != TASK_OK) return s;
    if (n_test < 1) {
        task_errf(err, err_len, "mqar needs at least one test example");
        return TASK_ERR_ARG;
    }
    if (sw && (sw->n_lrs < 0 || sw->n_lrs > RUNNER_MAX_LRS || (sw->n_lrs > 0 && !sw->lrs) || sw->n_val < 1 ||
               sw->early_stop < 0 || sw->early_stop > 1)) {
        task_errf(err, err_len, "mqar sweep: 0 to %d learning rates, n_val >= 1 and early_stop in [0, 1]",
                  RUNNER_MAX_LRS);
        return TASK_ERR_ARG;
    }
    const int L = mc->seq_len, V = mc->vocab_size;
    int eb = rm->batch_size > 0 ? rm->batch_size : 8;
    model *m = NULL, *best = NULL;
    task_batcher *b = NULL;
    if ((s = mqar_batcher_create(mc, &b, err, err_len)) != TASK_OK) goto done;
    if (!sw) {
        /* the plain path: train the whole budget, then score */
        if ((s = build_model(rm, V, L, L, &m, err, err_len)) != TASK_OK) goto done;
        if ((s = train(m, rm->cuda, b, st, cb, user, err, err_len)) != TASK_OK) goto done;
        best = m;
        m = NULL;
    } else {
        mqar_config val = *mc;
        val.test_seed = sw->val_seed;
        int n_lrs = sw->n_lrs > 0 ? sw->n_lrs : 1;
        int64_t every = sw->early_stop > 0 ? (sw->eval_every > 0 ? sw->eval_every : (rm->steps + 9) / 10) : 0;
        sweep_cb_ctx sc = {cb, user, 0, (int64_t)n_lrs * rm->steps};
        runner_stats best_st, one;
        memset(&best_st, 0, sizeof best_st);
        double train_s = 0;
        for (int i = 0; i < n_lrs; i++) {
            runner_model r = *rm;
            if (sw->n_lrs > 0) r.lr = sw->lrs[i];
            val_ctx vc = {sw, &val, eb, NAN, -1, rm->cuda};
            int64_t done_steps = 0;
            sc.offset = (int64_t)i * rm->steps;
            if ((s = build_model(&r, V, L, L, &m, err, err_len)) != TASK_OK) goto done;
            if ((s = train_ex(m, rm->cuda, b, &one, sweep_cb, &sc, every, val_hook, &vc, &done_steps, err, err_len)) !=
                TASK_OK)
                goto done;
            if (vc.last_step != done_steps &&
                (s = mqar_score(m, rm->cuda, &val, sw->n_val, eb, &vc.last_acc, NULL, NULL, NULL, err, err_len)) != TASK_OK)
                goto done;
            train_s += one.train_s;
            runner_mqar_trial *tr = &res->trials[i];
            {
                tr->lr = r.lr;
                tr->steps = done_steps;
                tr->val_acc = vc.last_acc;
                tr->early_stopped = sw->early_stop > 0 && vc.last_acc >= sw->early_stop;
                tr->final_loss = one.final_loss;
            }
            /* the best: highest validation accuracy; ties go to fewer steps, then the first listed */
            int better = !best;
            if (best) {
                const runner_mqar_trial *bt = &res->trials[res->best];
                better = vc.last_acc > bt->val_acc || (vc.last_acc == bt->val_acc && done_steps < bt->steps);
            }
            if (better) {
                model_free(best);
                best = m;
                best_st = one;
                res->best = i;
            } else {
                model_free(m);
            }
            m = NULL;
            res->n_trials = i + 1;
        }
        if (st) {
            *st = best_st;
            st->train_s = train_s; /* the whole sweep */
        }
    }
    double t0 = now_s();
    if ((s = mqar_score(best, rm->cuda, mc, n_test, eb, acc, acc_se, cb, user, err, err_len)) != TASK_OK) goto done;
    if (st) st->eval_s = now_s() - t0;
done:
    task_batcher_free(b);
    model_free(m);
    model_free(best);
    return s;
}

/* ---- NIAH ---- */

task_status runner_niah(const runner_model *rm, const niah_config *nc, int train_len, const int *lens, int n_lens,
                        const double *depths, int n_depths, int samples, niah_grid *grid, runner_stats *st,
                        runner_progress cb, void *user, char *err, size_t err_len) {
    if (st) memset(st, 0, sizeof *st);
    memset(grid, 0, sizeof *grid);
    task_status s = niah_validate(nc, err, err_len);
    if (s != TASK_OK) return s;
    if (samples < 1 || n_lens < 1 || n_depths < 1) {
        task_errf(err, err_len, "niah needs at least one length, one depth and one sample");
        return TASK_ERR_ARG;
    }
    int max_len = train_len;
    for (int i = 0; i < n_lens; i++) {
        if (lens[i] < niah_min_prompt_len(nc)) {
            task_errf(err, err_len, "niah context length %d is below the shortest prompt (%d)", lens[i],
                      niah_min_prompt_len(nc));
            return TASK_ERR_ARG;
        }
        if (lens[i] > max_len) max_len = lens[i];
    }
    int n_new = niah_answer_len(nc) + 2;
    model *m = NULL;
    task_batcher *b = NULL;
    int32_t *prompts = NULL, *gen = NULL;
    niah_example *ex = NULL;
    gpu_scorer sc = {0};
    if ((s = niah_grid_init(grid, lens, n_lens, depths, n_depths, err, err_len)) != TASK_OK) return s;
    if ((s = build_model(rm, TASK_BYTE_VOCAB, train_len, max_len + n_new, &m, err, err_len)) != TASK_OK) goto done;
    if ((s = niah_batcher_create(nc, &b, err, err_len)) != TASK_OK) goto done;
    if ((s = train(m, rm->cuda, b, st, cb, user, err, err_len)) != TASK_OK) goto done;
    if (rm->cuda && (s = scorer_get(&sc, m, samples, max_len + n_new, err, err_len)) != TASK_OK) goto done;
    double t0 = now_s();
    prompts = malloc(sizeof(int32_t) * (size_t)samples * max_len);
    gen = malloc(sizeof(int32_t) * (size_t)samples * n_new);
    ex = calloc((size_t)samples, sizeof *ex);
    if (!prompts || !gen || !ex) {
        task_errf(err, err_len, "out of memory (niah evaluation)");
        s = TASK_ERR_OOM;
        goto done;
    }
    /* cost of a cell ~ its length: report progress in tokens */
    int64_t total = 0, done_tok = 0;
    for (int li = 0; li < n_lens; li++) total += (int64_t)lens[li] * n_depths;
    for (int li = 0; li < n_lens; li++) {
        int L = lens[li];
        for (int di = 0; di < n_depths; di++) {
            for (int k = 0; k < samples; k++) {
                if ((s = niah_eval_example(nc, L, depths[di], k, &ex[k], err, err_len)) != TASK_OK) goto done;
                memcpy(prompts + (size_t)k * L, ex[k].ids, sizeof(int32_t) * (size_t)L);
            }
            if (rm->cuda) {
                if ((s = scorer_greedy(&sc, prompts, samples, L, n_new, gen, err, err_len)) != TASK_OK) goto done;
            } else {
                model_status ms = model_greedy_batch(m, prompts, samples, L, n_new, gen, err, err_len);
                if (ms != MODEL_OK) {
                    s = from_model(ms);
                    goto done;
                }
            }
            for (int k = 0; k < samples; k++) {
                const int32_t *gk = gen + (size_t)k * n_new;
                niah_grid_add(grid, li, di, niah_score(&ex[k], gk, n_new), niah_recall(&ex[k], gk, n_new));
                niah_example_free(&ex[k]);
            }
            done_tok += L;
            if (cb && cb("eval", done_tok, total, NAN, user)) {
                task_errf(err, err_len, "interrupted");
                s = TASK_ERR_DATA;
                goto done;
            }
        }
    }
    if (st) st->eval_s = now_s() - t0;
done:
    scorer_free(&sc);
    if (ex)
        for (int k = 0; k < samples; k++) niah_example_free(&ex[k]);
    free(ex);
    free(prompts);
    free(gen);
    task_batcher_free(b);
    model_free(m);
    if (s != TASK_OK) niah_grid_free(grid);
    return s;
}

/* ---- PPL ---- */

task_status runner_ppl(const runner_model *rm, const ppl_corpus *corpus, int train_context, runner_ppl_eval *evals,
                       int n_evals, int64_t max_eval_tokens, runner_stats *st, runner_progress cb, void *user,
                       char *err, size_t err_len) {
    if (st) memset(st, 0, sizeof *st);
    if (n_evals < 1) {
        task_errf(err, err_len, "ppl needs at least one evaluation context");
        return TASK_ERR_ARG;
    }
    ppl_tokens test = corpus->test;
    if (max_eval_tokens > 0 && test.n > max_eval_tokens) test.n = max_eval_tokens;
    int max_len = train_context;
    int64_t total = 0;
    for (int i = 0; i < n_evals; i++) {
        int64_t nw = ppl_num_windows(test.n, evals[i].context, evals[i].mode);
        if (nw < 1) {
            task_errf(err, err_len, "the test split (%lld tokens) has no %s window of %d tokens",
                      (long long)test.n, ppl_mode_name(evals[i].mode), evals[i].context);
            return TASK_ERR_DATA;
        }
        if (evals[i].context > max_len) max_len = evals[i].context;
        total += nw * evals[i].context;
    }
    model *m = NULL;
    task_batcher *b = NULL;
    int32_t *ids = NULL, *labels = NULL;
    float *losses = NULL;
    gpu_scorer sc = {0};
    task_status s;
    if ((s = build_model(rm, TASK_BYTE_VOCAB, train_context, max_len, &m, err, err_len)) != TASK_OK) goto done;
    if ((s = ppl_batcher_create(corpus, rm->seed, &b, err, err_len)) != TASK_OK) goto done;
    if ((s = train(m, rm->cuda, b, st, cb, user, err, err_len)) != TASK_OK) goto done;
    const int WB = 8; /* windows per forward */
    if (rm->cuda && (s = scorer_get(&sc, m, WB, max_len, err, err_len)) != TASK_OK) goto done;
    double t0 = now_s();
    ids = malloc(sizeof(int32_t) * (size_t)WB * max_len);
    labels = malloc(sizeof(int32_t) * (size_t)WB * max_len);
    losses = malloc(sizeof(float) * (size_t)WB * max_len);
    if (!ids || !labels || !losses) {
        task_errf(err, err_len, "out of memory (ppl evaluation)");
        s = TASK_ERR_OOM;
        goto done;
    }
    int64_t done_tok = 0;
    for (int i = 0; i < n_evals; i++) {
        int ctx = evals[i].context;
        ppl_mode md = evals[i].mode;
        int64_t nw = ppl_num_windows(test.n, ctx, md);
        ppl_acc a;
        ppl_acc_init(&a);
        for (int64_t w0 = 0; w0 < nw; w0 += WB) {
            int n = nw - w0 < WB ? (int)(nw - w0) : WB;
            for (int k = 0; k < n; k++)
                if ((s = ppl_window(&test, ctx, md, 0, w0 + k, ids + (size_t)k * ctx, labels + (size_t)k * ctx, NULL,
                                    err, err_len)) != TASK_OK)
                    goto done;
            model_status ms = rm->cuda ? model_gpu_token_losses(sc.g, ids, labels, n, ctx, losses, NULL, NULL, err, err_len)
                                       : model_token_losses(m, ids, labels, n, ctx, losses, NULL, NULL, NULL, err, err_len);
            if (ms != MODEL_OK) {
                s = from_model(ms);
                goto done;
            }
            for (int k = 0; k < n; k++) ppl_acc_add_window(&a, losses + (size_t)k * ctx, labels + (size_t)k * ctx, ctx);
            done_tok += (int64_t)n * ctx;
            if (cb && cb("eval", done_tok, total, NAN, user)) {
                task_errf(err, err_len, "interrupted");
                s = TASK_ERR_DATA;
                goto done;
            }
        }
        ppl_acc_metrics(&a, &evals[i].m);
        evals[i].floor_exact = 0;
        evals[i].floor_bpb = NAN;
        if (corpus->synthetic) {
            ppl_corpus cc = *corpus;
            cc.test = test;
            evals[i].floor_bpb = ppl_synth_floor_bpb(&cc, ctx, md, &evals[i].floor_exact);
        }
    }
    if (st) st->eval_s = now_s() - t0;
done:
    scorer_free(&sc);
    free(ids);
    free(labels);
    free(losses);
    task_batcher_free(b);
    model_free(m);
    return s;
}
