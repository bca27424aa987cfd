/*
 * model_optim.c: AdamW (decoupled weight decay), the learning-rate schedules
 * (cosine, warmup-stable-decay, constant, each with linear warmup) and the
 * global gradient norm.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

struct model_adamw {
    float *m1, *m2; /* first and second moments, np floats each */
    size_t np;
    int64_t t;      /* updates done */
};

/* Step s (0-based) of steps: warmup ramps lr (s + 1) / warmup; then
 *   cosine:   lr_min + (lr - lr_min) (1 + cos(pi p)) / 2, p = progress after warmup
 *   wsd:      lr until the last decay_frac of the steps, then linear to lr_min
 *   constant: lr */
double model_lr_at(const model_train_config *t, int64_t s) {
    double lr = t->lr, lo = t->lr * t->min_lr_ratio;
    if (t->warmup > 0 && s < t->warmup) return lr * (double)(s + 1) / (double)t->warmup;
    int64_t total = t->steps > 0 ? t->steps : 1;
    switch (t->schedule) {
    case SCHED_CONSTANT:
        return lr;
    case SCHED_WSD: {
        int64_t nd = (int64_t)llround(t->decay_frac * (double)total);
        int64_t start = total - nd;
        if (start < t->warmup) start = t->warmup;
        if (s < start || total <= start) return lr;
        double p = (double)(s - start + 1) / (double)(total - start);
        if (p > 1) p = 1;
        return lr + (lo - lr) * p;
    }
    case SCHED_COSINE:
    default: {
        int64_t span = total - t->warmup;
        if (span <= 0) return lo;
        double p = (double)(s - t->warmup) / (double)span;
        if (p > 1) p = 1;
        return lo + (lr - lo) * 0.5 * (1.0 + cos(M_PI * p));
    }
    }
}

double model_grad_norm(model *m) {
    /* fixed chunks of the flat buffer, summed in order */
    enum { NCH = 64 };
    double part[NCH];
    size_t n = m->np;
    const float *g = m->g;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < NCH; c++) {
        size_t lo = n * (size_t)c / NCH, hi = n * (size_t)(c + 1) / NCH;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < NCH; c++) s += part[c];
    return sqrt(s);
}

model_status model_adamw_create(const model *m, model_adamw **out) {
    *out = NULL;
    model_adamw *o = calloc(1, sizeof *o);
    if (!o) return MODEL_ERR_OOM;
    o->np = m->np;
    o->m1 = attn_calloc(m->np, sizeof(float));
    o->m2 = attn_calloc(m->np, sizeof(float));
    if (!o->m1 || !o->m2) {
        model_adamw_free(o);
        return MODEL_ERR_OOM;
    }
    *out = o;
    return MODEL_OK;
}

void model_adamw_free(model_adamw *o) {
    if (!o) return;
    attn_free(o->m1);
    attn_free(o->m2);
    free(o);
}

int64_t model_adamw_steps(const model_adamw *o) { return o->t; }

/* Internal accessors for checkpoints (model_ckpt.c). */
float *model_adamw_m1(model_adamw *o) { return o->m1; }
float *model_adamw_m2(model_adamw *o) { return o->m2; }
void model_adamw_set_steps(model_adamw *o, int64_t t) { o->t = t; }

/* p -= lr (wd p) [decay tensors]; m1 = b1 m1 + (1-b1) g; m2 = b2 m2 + (1-b2) g^2;
 * p -= lr (m1 / (1 - b1^t)) / (sqrt(m2 / (1 - b2^t)) + eps) */
void model_adamw_update(model *m, model_adamw *o, double lr, const model_train_config *t) {
    o->t++;
    double b1 = t->beta1, b2 = t->beta2;
    double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2)), eps = (float)t->adam_eps;
    float fb1 = (float)b1, fb2 = (float)b2;
    for (int i = 0; i < m->nt; i++) {
        const model_tensor *tt = &m->t[i];
        float *p = m->p + tt->offset, *g = m->g + tt->offset, *m1 = o->m1 + tt->offset, *m2 = o->m2 + tt->offset;
        float decay = tt->decay ? (float)(1.0 - lr * t->weight_decay) : 1.0f;
        size_t n = tt->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t e = 0; e < n; e++) {
            float ge = g[e];
            float a = fb1 * m1[e] + (1.0f - fb1) * ge;
            float b = fb2 * m2[e] + (1.0f - fb2) * ge * ge;
            m1[e] = a, m2[e] = b;
            p[e] = p[e] * decay - step * a / (sqrtf(b) * rbc2 + eps);
        }
    }
}
