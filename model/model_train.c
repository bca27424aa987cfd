/*
 * model_train.c: the training loop. One optimizer step = grad_accum
 * micro-batches (batch i of the data source, i counting on from the last
 * step), together weighted as one batch: micro-batch a contributes its mean
 * loss times n_a / N, n_a its counted label positions and N the step's, so the
 * step's loss and gradient are those of the mean over all N positions (with
 * ignored labels, as in MQAR, the n_a differ). Then clipping by the global
 * norm, then AdamW at the schedule's learning rate. The trainer's whole
 * state is the weights, the AdamW moments, the step and the data index, so a
 * checkpoint resumes exactly.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_gpu.h"
#include "model_internal.h"

struct model_trainer {
    model *m;
    model_data *data;
    model_adamw *opt;
    int64_t step;       /* optimizer steps done */
    int64_t data_index; /* the next batch index */
    int32_t *ids, *labels; /* (grad_accum, batch_size, context) */
    int64_t *counts;       /* (grad_accum) counted label positions */
    model_gpu *gpu;        /* training on the GPU (model_trainer_use_gpu), else NULL */
};

model_status model_trainer_create(model *m, model_data *data, model_trainer **out, char *err, size_t err_len) {
    *out = NULL;
    const model_train_config *tc = &m->cfg.train;
    char why[256];
    if (model_train_config_check(tc, why, sizeof why)) return model_errf(MODEL_ERR_CONFIG, err, err_len, "%s", why);
    if (!data || !data->get_batch) return model_errf(MODEL_ERR_ARG, err, err_len, "no data source");
    if (data->vocab_needed > m->V)
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "the data holds token ids up to %d but vocab_size is %d",
                     data->vocab_needed - 1, m->V);
    if (data->max_context > 0 && tc->context > data->max_context)
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "train.context %d is longer than the data allows (%d)",
                     tc->context, data->max_context);
    model_trainer *t = calloc(1, sizeof *t);
    if (!t) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    t->m = m, t->data = data;
    size_t n = (size_t)tc->batch_size * tc->context * tc->grad_accum;
    t->ids = malloc(n * sizeof(int32_t));
    t->labels = malloc(n * sizeof(int32_t));
    t->counts = malloc((size_t)tc->grad_accum * sizeof(int64_t));
    if (!t->ids || !t->labels || !t->counts || model_adamw_create(m, &t->opt) != MODEL_OK) {
        model_trainer_free(t);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    }
    *out = t;
    return MODEL_OK;
}

void model_trainer_free(model_trainer *t) {
    if (!t) return;
    model_gpu_free(t->gpu);
    model_adamw_free(t->opt);
    free(t->ids);
    free(t->labels);
    free(t->counts);
    free(t);
}

int64_t model_trainer_step_count(const model_trainer *t) { return t->step; }

model_status model_trainer_step(model_trainer *t, model_step_info *info, char *err, size_t err_len) {
    model *m = t->m;
    const model_train_config *tc = &m->cfg.train;
    int B = tc->batch_size, T = tc->context, A = tc->grad_accum;
    size_t BT = (size_t)B * T;
    double t0 = omp_get_wtime();
    if (!t->gpu) model_zero_grads(m); /* the GPU's gradients live on the GPU (zeroed below) */
    char why[384];
    /* all micro-batches first: each one's weight is its share of the step's
     * counted (not ignored) label positions */
    int64_t total = 0;
    for (int a = 0; a < A; a++) {
        int64_t bi = t->data_index + a;
        int32_t *ids = t->ids + a * BT, *labels = t->labels + a * BT;
        if (t->data->get_batch(t->data, bi, B, T, ids, labels, why, sizeof why))
            return model_errf(MODEL_ERR_DATA, err, err_len, "batch %lld: %s", (long long)bi, why);
        int64_t n = 0;
        for (size_t i = 0; i < BT; i++) n += labels[i] != MODEL_IGNORE;
        t->counts[a] = n;
        total += n;
    }
    double lsum = 0;
    if (t->gpu) model_gpu_zero_grads(t->gpu);
    for (int a = 0; a < A && total > 0; a++) {
        if (t->counts[a] == 0) continue;
        double l = 0, w = (double)t->counts[a] / (double)total;
        model_status st =
            t->gpu ? model_gpu_forward_backward(t->gpu, t->ids + a * BT, t->labels + a * BT, B, T, w, &l, err, err_len)
                   : model_forward_backward(m, t->ids + a * BT, t->labels + a * BT, B, T, w, &l, err, err_len);
        if (st != MODEL_OK) return st;
        lsum += l * w;
    }
    double gn = 0;
    if (t->gpu) {
        model_status st = model_gpu_grad_norm(t->gpu, &gn, err, err_len);
        if (st != MODEL_OK) return st;
    } else {
        gn = model_grad_norm(m);
    }
    if (!isfinite(gn))
        return model_errf(MODEL_ERR_NONFINITE, err, err_len, "step %lld: the gradient norm is not finite",
                     (long long)t->step + 1);
    float clip_scale = 1.0f;
    if (tc->clip > 0 && gn > tc->clip) clip_scale = (float)(tc->clip / gn);
    double lr = model_lr_at(tc, t->step);
    if (t->gpu) {
        model_status st = model_gpu_adamw_step(t->gpu, lr, clip_scale, err, err_len);
        if (st != MODEL_OK) return st;
    } else {
        if (clip_scale != 1.0f) {
            float *g = m->g;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < m->np; i++) g[i] *= clip_scale;
        }
        model_adamw_update(m, t->opt, lr, tc);
    }
    t->data_index += A;
    t->step++;
    double dt = omp_get_wtime() - t0;
    if (info) {
        info->step = t->step;
        info->steps = tc->steps;
        info->loss = lsum;
        info->label_tokens = total;
        info->lr = lr;
        info->grad_norm = gn;
        info->tokens = t->step * (int64_t)B * T * A;
        info->step_s = dt;
        info->tokens_per_s = dt > 0 ? (double)B * T * A / dt : 0;
    }
    return MODEL_OK;
}

model_status model_trainer_use_gpu(model_trainer *t, char *err, size_t err_len) {
    if (t->gpu) return MODEL_OK;
    const model_train_config *tc = &t->m->cfg.train;
    model_status st = model_gpu_create(t->m, tc->batch_size, tc->context, &t->gpu, err, err_len);
    if (st != MODEL_OK) return st;
    /* the optimizer state as it stands (fresh, or loaded by model_trainer_resume) */
    st = model_gpu_adamw_upload(t->gpu, t->opt, err, err_len);
    if (st != MODEL_OK) {
        model_gpu_free(t->gpu);
        t->gpu = NULL;
    }
    return st;
}

model_gpu *model_trainer_gpu(const model_trainer *t) { return t->gpu; }

model_status model_trainer_sync_host(const model_trainer *t, char *err, size_t err_len) {
    return t->gpu ? model_gpu_download(t->gpu, err, err_len) : MODEL_OK;
}

model_status model_trainer_save(const model_trainer *t, const char *dir, char *err, size_t err_len) {
    /* from the GPU: the weights, and the optimizer state the checkpoint holds too */
    model_status st = model_trainer_sync_host(t, err, err_len);
    if (st == MODEL_OK && t->gpu) st = model_gpu_adamw_download(t->gpu, t->opt, err, err_len);
    if (st == MODEL_OK) st = model_save(t->m, dir, t->step, err, err_len);
    if (st == MODEL_OK) st = model_adamw_save(t->m, t->opt, dir, t->data_index, err, err_len);
    return st;
}

model_status model_trainer_resume(model_trainer *t, const char *dir, char *err, size_t err_len) {
    int64_t di = 0;
    model_status st = model_adamw_load(t->m, t->opt, dir, &di, err, err_len);
    if (st != MODEL_OK) return st;
    int64_t s = model_adamw_steps(t->opt);
    if (s != t->m->ckpt_step)
        return model_errf(MODEL_ERR_FORMAT, err, err_len,
                     "checkpoint '%s' is inconsistent: the weights are from step %lld, the optimizer from step %lld",
                     dir, (long long)t->m->ckpt_step, (long long)s);
    const model_train_config *tc = &t->m->cfg.train;
    if (di != s * tc->grad_accum)
        return model_errf(MODEL_ERR_CONFIG, err, err_len,
                     "checkpoint '%s' was at batch %lld after %lld steps: train.grad_accum changed since (now %d)", dir,
                     (long long)di, (long long)s, tc->grad_accum);
    t->step = s;
    t->data_index = di;
    if (t->gpu) { /* the checkpoint's weights and optimizer state onto the device */
        st = model_gpu_upload(t->gpu, err, err_len);
        if (st == MODEL_OK) st = model_gpu_adamw_upload(t->gpu, t->opt, err, err_len);
        if (st != MODEL_OK) return st;
    }
    return MODEL_OK;
}

model_status model_train(model_trainer *t, int64_t max_steps, double max_seconds, model_step_cb cb, void *user,
                         char *err, size_t err_len) {
    double t0 = omp_get_wtime();
    int64_t done = 0;
    while (t->step < t->m->cfg.train.steps) {
        if (max_steps > 0 && done >= max_steps) break;
        if (max_seconds > 0 && omp_get_wtime() - t0 >= max_seconds) break;
        model_step_info info;
        model_status st = model_trainer_step(t, &info, err, err_len);
        if (st != MODEL_OK) return st;
        done++;
        if (cb && cb(&info, user)) break;
    }
    return MODEL_OK;
}

model_status model_evaluate(model *m, model_data *data, int64_t first, int n_batches, int batch_size, int context,
                            double *mean, int64_t *count, char *err, size_t err_len) {
    if (mean) *mean = 0;
    if (count) *count = 0;
    if (!data || !data->get_batch) return model_errf(MODEL_ERR_ARG, err, err_len, "no data source");
    if (n_batches < 1 || batch_size < 1 || context < 1)
        return model_errf(MODEL_ERR_ARG, err, err_len, "evaluation needs at least one batch of at least one token");
    if (data->vocab_needed > m->V)
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "the data holds token ids up to %d but vocab_size is %d",
                     data->vocab_needed - 1, m->V);
    if (data->max_context > 0 && context > data->max_context)
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "a context of %d is longer than the data allows (%d)", context,
                     data->max_context);
    size_t BT = (size_t)batch_size * context;
    int32_t *ids = malloc(BT * sizeof(int32_t)), *labels = malloc(BT * sizeof(int32_t));
    if (!ids || !labels) {
        free(ids);
        free(labels);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    }
    model_status st = MODEL_OK;
    double sum = 0;
    int64_t total = 0;
    char why[384];
    for (int k = 0; k < n_batches && st == MODEL_OK; k++) {
        int64_t bi = first + k;
        if (data->get_batch(data, bi, batch_size, context, ids, labels, why, sizeof why)) {
            st = model_errf(MODEL_ERR_DATA, err, err_len, "batch %lld: %s", (long long)bi, why);
            break;
        }
        double mb = 0;
        int64_t nb = 0;
        st = model_token_losses(m, ids, labels, batch_size, context, NULL, &mb, &nb, NULL, err, err_len);
        sum += mb * (double)nb;
        total += nb;
    }
    free(ids);
    free(labels);
    if (st != MODEL_OK) return st;
    if (mean) *mean = total ? sum / (double)total : 0.0;
    if (count) *count = total;
    return MODEL_OK;
}
