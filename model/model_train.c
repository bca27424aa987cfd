/*
 * model_train.c: the training loop. One optimizer step = grad_accum
 * micro-batches (batch i of the data source, i counting on from the last
 * step), each contributing (mean loss) / grad_accum, then clipping by the
 * global norm, then AdamW at the schedule's learning rate. The trainer's whole
 * state is the weights, the AdamW moments, the step and the data index, so a
 * checkpoint resumes exactly.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

struct model_trainer {
    model *m;
    model_data *data;
    model_adamw *opt;
    int64_t step;       /* optimizer steps done */
    int64_t data_index; /* the next batch index */
    int32_t *ids, *labels; /* (batch_size, context) */
};

static model_status tfail(model_status st, char *err, size_t err_len, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

model_status model_trainer_create(model *m, model_data *data, model_trainer **out, char *err, size_t err_len) {
    *out = NULL;
    const model_train_config *tc = &m->cfg.train;
    char why[256];
    if (model_train_config_check(tc, why, sizeof why)) return tfail(MODEL_ERR_CONFIG, err, err_len, "%s", why);
    if (!data || !data->get_batch) return tfail(MODEL_ERR_ARG, err, err_len, "no data source");
    if (data->vocab_needed > m->V)
        return tfail(MODEL_ERR_CONFIG, err, err_len, "the data holds token ids up to %d but vocab_size is %d",
                     data->vocab_needed - 1, m->V);
    if (data->max_context > 0 && tc->context > data->max_context)
        return tfail(MODEL_ERR_CONFIG, err, err_len, "train.context %d is longer than the data allows (%d)",
                     tc->context, data->max_context);
    model_trainer *t = calloc(1, sizeof *t);
    if (!t) return tfail(MODEL_ERR_OOM, err, err_len, "out of memory");
    t->m = m, t->data = data;
    size_t n = (size_t)tc->batch_size * tc->context;
    t->ids = malloc(n * sizeof(int32_t));
    t->labels = malloc(n * sizeof(int32_t));
    if (!t->ids || !t->labels || model_adamw_create(m, &t->opt) != MODEL_OK) {
        model_trainer_free(t);
        return tfail(MODEL_ERR_OOM, err, err_len, "out of memory");
    }
    *out = t;
    return MODEL_OK;
}

void model_trainer_free(model_trainer *t) {
    if (!t) return;
    model_adamw_free(t->opt);
    free(t->ids);
    free(t->labels);
    free(t);
}

int64_t model_trainer_step_count(const model_trainer *t) { return t->step; }

model_status model_trainer_step(model_trainer *t, model_step_info *info, char *err, size_t err_len) {
    model *m = t->m;
    const model_train_config *tc = &m->cfg.train;
    int B = tc->batch_size, T = tc->context, A = tc->grad_accum;
    double t0 = omp_get_wtime();
    model_zero_grads(m);
    double lsum = 0;
    char why[384];
    for (int a = 0; a < A; a++) {
        int64_t bi = t->data_index + a;
        if (t->data->get_batch(t->data, bi, B, T, t->ids, t->labels, why, sizeof why))
            return tfail(MODEL_ERR_DATA, err, err_len, "batch %lld: %s", (long long)bi, why);
        double l = 0;
        model_status st = model_forward_backward(m, t->ids, t->labels, B, T, 1.0 / A, &l, err, err_len);
        if (st != MODEL_OK) return st;
        lsum += l;
    }
    double gn = model_grad_norm(m);
    if (!isfinite(gn))
        return tfail(MODEL_ERR_NONFINITE, err, err_len, "step %lld: the gradient norm is not finite",
                     (long long)t->step + 1);
    if (tc->clip > 0 && gn > tc->clip) {
        float s = (float)(tc->clip / gn);
        float *g = m->g;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m->np; i++) g[i] *= s;
    }
    double lr = model_lr_at(tc, t->step);
    model_adamw_update(m, t->opt, lr, tc);
    t->data_index += A;
    t->step++;
    double dt = omp_get_wtime() - t0;
    if (info) {
        info->step = t->step;
        info->steps = tc->steps;
        info->loss = lsum / A;
        info->lr = lr;
        info->grad_norm = gn;
        info->tokens = t->step * (int64_t)B * T * A;
        info->step_s = dt;
        info->tokens_per_s = dt > 0 ? (double)B * T * A / dt : 0;
    }
    return MODEL_OK;
}

model_status model_trainer_save(const model_trainer *t, const char *dir, char *err, size_t err_len) {
    model_status st = model_save(t->m, dir, t->step, err, err_len);
    if (st == MODEL_OK) st = model_adamw_save(t->m, t->opt, dir, t->data_index, err, err_len);
    return st;
}

model_status model_trainer_resume(model_trainer *t, const char *dir, char *err, size_t err_len) {
    int64_t di = 0;
    model_status st = model_adamw_load(t->m, t->opt, dir, &di, err, err_len);
    if (st != MODEL_OK) return st;
    int64_t s = model_adamw_steps(t->opt);
    if (s != t->m->ckpt_step)
        return tfail(MODEL_ERR_FORMAT, err, err_len,
                     "checkpoint '%s' is inconsistent: the weights are from step %lld, the optimizer from step %lld",
                     dir, (long long)t->m->ckpt_step, (long long)s);
    const model_train_config *tc = &t->m->cfg.train;
    if (di != s * tc->grad_accum)
        return tfail(MODEL_ERR_CONFIG, err, err_len,
                     "checkpoint '%s' was at batch %lld after %lld steps: train.grad_accum changed since (now %d)", dir,
                     (long long)di, (long long)s, tc->grad_accum);
    t->step = s;
    t->data_index = di;
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
