/*
 * task.c: the helpers every task shares (task.h).
 */
#include "task.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

const char *task_status_str(task_status s) {
    switch (s) {
    case TASK_OK: return "ok";
    case TASK_ERR_ARG: return "invalid argument";
    case TASK_ERR_IO: return "i/o error";
    case TASK_ERR_OOM: return "out of memory";
    case TASK_ERR_DATA: return "data error";
    }
    return "unknown status";
}

void task_errf(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

void task_batcher_free(task_batcher *b) {
    if (b && b->free) b->free(b);
}

int task_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double task_nll_from_logits(const float *logits, int vocab, int label) {
    double mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double s = 0;
    for (int i = 0; i < vocab; i++) s += exp((double)logits[i] - mx);
    return log(s) + mx - (double)logits[label];
}

void task_wilson(int64_t k, int64_t n, double z, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0, *hi = 1;
        return;
    }
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double den = 1 + z2 / nn;
    double center = (p + z2 / (2 * nn)) / den;
    double half = z / den * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    double l = center - half, h = center + half;
    /* at k = 0 or k = n one end is exactly 0 or 1; rounding must not move it */
    if (k == 0) l = 0;
    if (k == n) h = 1;
    *lo = l < 0 ? 0 : l;
    *hi = h > 1 ? 1 : h;
}
