/*
 * mqar.c: the Zoology MQAR generator and its accuracy metric (mqar.h).
 *
 * Zoology draws the gaps with numpy's choice(space, N, replace=False, p): it
 * keeps the distinct values of an i.i.d. stream from p in order of first
 * appearance (redrawing only the missing ones), which is successive sampling:
 * draw j comes from p restricted to the values not drawn yet, renormalised. We
 * draw the same way, from a Fenwick tree of the remaining weights, so a draw
 * costs O(log space) and removing a value O(log space).
 */
#include "mqar/mqar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define SALT_TRAIN 0x6d7161722d747261ull /* "mqar-tra" */
#define SALT_TEST 0x6d7161722d746573ull  /* "mqar-tes" */

void mqar_config_default(mqar_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 8192;
    c->seq_len = 256;
    c->num_kv_pairs = 16;
    c->power_a = 0.01;
    c->num_passes = 1;
    c->random_non_queries = 1;
    c->train_seed = 0;
    c->test_seed = 10;
}

task_status mqar_validate(const mqar_config *c, char *err, size_t err_len) {
    if (!c) {
        task_errf(err, err_len, "mqar: no config");
        return TASK_ERR_ARG;
    }
    int L = c->seq_len, V = c->vocab_size, N = c->num_kv_pairs, P = c->num_passes;
    if (L < 2 || L % 2 != 0) {
        task_errf(err, err_len, "mqar: seq_len must be even and at least 2 (got %d)", L);
        return TASK_ERR_ARG;
    }
    if (V <= L) {
        task_errf(err, err_len, "mqar: vocab_size must be greater than seq_len (got vocab %d, seq_len %d)", V, L);
        return TASK_ERR_ARG;
    }
    if (N < 1) {
        task_errf(err, err_len, "mqar: num_kv_pairs must be at least 1 (got %d)", N);
        return TASK_ERR_ARG;
    }
    if (P < 1) {
        task_errf(err, err_len, "mqar: num_passes must be at least 1 (got %d)", P);
        return TASK_ERR_ARG;
    }
    if ((int64_t)2 * N * P + (int64_t)2 * N > L) {
        if (P == 1)
            task_errf(err, err_len, "mqar: 4 * num_kv_pairs must be <= seq_len (got 4 * %d = %d > %d)", N, 4 * N, L);
        else
            task_errf(err, err_len,
                      "mqar: 2 * num_kv_pairs * (num_passes + 1) must be <= seq_len (got %lld > %d)",
                      (long long)2 * N * (P + 1), L);
        return TASK_ERR_ARG;
    }
    if (!(c->power_a > 0) || !isfinite(c->power_a)) {
        task_errf(err, err_len, "mqar: power_a must be a positive number (got %g)", c->power_a);
        return TASK_ERR_ARG;
    }
    return TASK_OK;
}

int mqar_space(const mqar_config *c) { return (c->seq_len - 2 * c->num_kv_pairs * c->num_passes) / 2; }

/* unnormalised weight of gap g: a (g+1)^(a-1), as Zoology writes it */
static double gap_weight(double a, int g) { return a * pow((double)(g + 1), a - 1); }

task_status mqar_gap_probs(const mqar_config *c, double *p, char *err, size_t err_len) {
    task_status st = mqar_validate(c, err, err_len);
    if (st) return st;
    int space = mqar_space(c);
    double s = 0;
    for (int g = 0; g < space; g++) s += (p[g] = gap_weight(c->power_a, g));
    for (int g = 0; g < space; g++) p[g] /= s;
    return TASK_OK;
}

/* ---- scratch shared by the examples of one call ---- */

typedef struct {
    int space, V;
    double *w;     /* base weights (space) */
    double *tree;  /* Fenwick tree (space + 1), 1-based */
    uint8_t *used; /* marks: drawn gaps (space) */
    uint8_t *tok;  /* marks: tokens taken (V) */
    int top;       /* the highest power of two <= space */
} scratch;

static void scratch_free(scratch *s) {
    free(s->w), free(s->tree), free(s->used), free(s->tok);
    memset(s, 0, sizeof *s);
}

static task_status scratch_init(scratch *s, const mqar_config *c, char *err, size_t err_len) {
    memset(s, 0, sizeof *s);
    s->space = mqar_space(c);
    s->V = c->vocab_size;
    s->w = malloc(sizeof(double) * (size_t)s->space);
    s->tree = malloc(sizeof(double) * ((size_t)s->space + 1));
    s->used = malloc((size_t)s->space);
    s->tok = calloc((size_t)s->V, 1);
    if (!s->w || !s->tree || !s->used || !s->tok) {
        scratch_free(s);
        task_errf(err, err_len, "mqar: out of memory for the generator's scratch");
        return TASK_ERR_OOM;
    }
    for (int g = 0; g < s->space; g++) s->w[g] = gap_weight(c->power_a, g);
    s->top = 1;
    while (s->top * 2 <= s->space) s->top *= 2;
    return TASK_OK;
}

/* Fenwick tree over the base weights, built in O(space). */
static void tree_build(scratch *s) {
    int n = s->space;
    double *t = s->tree;
    t[0] = 0;
    for (int i = 1; i <= n; i++) t[i] = s->w[i - 1];
    for (int i = 1; i <= n; i++) {
        int j = i + (i & -i);
        if (j <= n) t[j] += t[i];
    }
    memset(s->used, 0, (size_t)n);
}

static void tree_remove(scratch *s, int g) {
    double d = s->w[g];
    for (int i = g + 1; i <= s->space; i += i & -i) s->tree[i] -= d;
}

static double tree_total(const scratch *s) {
    double t = 0;
    for (int i = s->space; i > 0; i -= i & -i) t += s->tree[i];
    return t;
}

/* One draw from the remaining weights: the smallest g with prefix(g+1) > u. */
static int tree_draw(scratch *s, rng_t *r) {
    for (int attempt = 0; attempt < 64; attempt++) {
        double u = rng_uniform(r) * tree_total(s);
        int pos = 0;
        for (int step = s->top; step; step >>= 1) {
            int nx = pos + step;
            if (nx <= s->space && s->tree[nx] <= u) {
                pos = nx;
                u -= s->tree[nx];
            }
        }
        /* pos is 0-based gap; rounding can land on a removed one or past the end */
        if (pos < s->space && !s->used[pos]) return pos;
    }
    /* fallback (never seen in practice): linear scan of the remaining weights */
    double tot = 0;
    for (int g = 0; g < s->space; g++)
        if (!s->used[g]) tot += s->w[g];
    double u = rng_uniform(r) * tot, acc = 0;
    int last = -1;
    for (int g = 0; g < s->space; g++) {
        if (s->used[g]) continue;
        last = g;
        acc += s->w[g];
        if (u < acc) return g;
    }
    return last;
}

/* N distinct tokens uniform from [lo, hi) into out (hi - lo >= N). */
static void draw_distinct(scratch *s, rng_t *r, int lo, int hi, int N, int32_t *out) {
    for (int j = 0; j < N; j++) {
        int t;
        do t = lo + (int)rng_below(r, (uint64_t)(hi - lo));
        while (s->tok[t]);
        s->tok[t] = 1;
        out[j] = t;
    }
}

static void one_example(const mqar_config *c, scratch *s, uint64_t stream_seed, int32_t *ids, int32_t *labels,
                        int32_t *gaps_out, int32_t *keys, int32_t *vals, int32_t *gaps) {
    int L = c->seq_len, V = c->vocab_size, N = c->num_kv_pairs, P = c->num_passes;
    int half = V / 2, ctx = 2 * N * P;
    rng_t r;
    rng_seed(&r, stream_seed);

    /* keys, then values, then gaps: Zoology's order of draws */
    draw_distinct(s, &r, 1, half, N, keys);
    draw_distinct(s, &r, half, V, N, vals);
    for (int j = 0; j < N; j++) s->tok[keys[j]] = 0, s->tok[vals[j]] = 0;
    tree_build(s);
    for (int j = 0; j < N; j++) {
        int g = tree_draw(s, &r);
        s->used[g] = 1;
        tree_remove(s, g);
        gaps[j] = g;
    }

    for (int t = 0; t < L; t++) ids[t] = 0, labels[t] = TASK_IGNORE;
    for (int p = 0; p < P; p++)
        for (int j = 0; j < N; j++) {
            ids[2 * N * p + 2 * j] = keys[j];
            ids[2 * N * p + 2 * j + 1] = vals[j];
        }
    for (int j = 0; j < N; j++) {
        int q = ctx + 2 * gaps[j];
        ids[q] = keys[j];
        labels[q] = vals[j];
    }
    if (c->random_non_queries)
        for (int t = 0; t < L; t++)
            if (ids[t] == 0) ids[t] = (int32_t)rng_below(&r, (uint64_t)V);
    if (gaps_out) memcpy(gaps_out, gaps, sizeof(int32_t) * (size_t)N);
}

task_status mqar_examples(const mqar_config *c, uint64_t seed, int64_t first, int n, int32_t *ids,
                          int32_t *labels, int32_t *gaps, char *err, size_t err_len) {
    task_status st = mqar_validate(c, err, err_len);
    if (st) return st;
    if (n < 0 || first < 0 || (n > 0 && (!ids || !labels))) {
        task_errf(err, err_len, "mqar: bad example range or missing buffers");
        return TASK_ERR_ARG;
    }
    scratch s;
    if ((st = scratch_init(&s, c, err, err_len))) return st;
    int N = c->num_kv_pairs, L = c->seq_len;
    int32_t *tmp = malloc(sizeof(int32_t) * 3 * (size_t)N);
    if (!tmp) {
        scratch_free(&s);
        task_errf(err, err_len, "mqar: out of memory");
        return TASK_ERR_OOM;
    }
    for (int e = 0; e < n; e++) {
        uint64_t ss = task_stream_seed(seed, 0x6d716172ull /* "mqar" */, (uint64_t)(first + e));
        one_example(c, &s, ss, ids + (size_t)e * L, labels + (size_t)e * L, gaps ? gaps + (size_t)e * N : NULL,
                    tmp, tmp + N, tmp + 2 * N);
    }
    free(tmp);
    scratch_free(&s);
    return TASK_OK;
}

task_status mqar_example(const mqar_config *c, uint64_t seed, int64_t index, int32_t *ids, int32_t *labels,
                         int32_t *gaps, char *err, size_t err_len) {
    return mqar_examples(c, seed, index, 1, ids, labels, gaps, err, err_len);
}

task_status mqar_train_batch(const mqar_config *c, int64_t i, int batch_size, int32_t *ids, int32_t *labels,
                             char *err, size_t err_len) {
    if (i < 0 || batch_size < 1) {
        task_errf(err, err_len, "mqar: batch index must be >= 0 and batch size >= 1");
        return TASK_ERR_ARG;
    }
    return mqar_examples(c, c->train_seed ^ SALT_TRAIN, i * batch_size, batch_size, ids, labels, NULL, err,
                         err_len);
}

task_status mqar_test_examples(const mqar_config *c, int64_t first, int n, int32_t *ids, int32_t *labels,
                               char *err, size_t err_len) {
    return mqar_examples(c, c->test_seed ^ SALT_TEST, first, n, ids, labels, NULL, err, err_len);
}

/* ---- batch source ---- */

static task_status batcher_get(task_batcher *b, int64_t i, int bs, int context, int32_t *ids, int32_t *labels,
                               char *err, size_t err_len) {
    const mqar_config *c = b->ctx;
    if (context != c->seq_len) {
        task_errf(err, err_len, "mqar: the context asked for (%d) must equal seq_len (%d)", context, c->seq_len);
        return TASK_ERR_ARG;
    }
    return mqar_train_batch(c, i, bs, ids, labels, err, err_len);
}

static void batcher_free(task_batcher *b) {
    free(b->ctx);
    free(b);
}

task_status mqar_batcher_create(const mqar_config *c, task_batcher **out, char *err, size_t err_len) {
    *out = NULL;
    task_status st = mqar_validate(c, err, err_len);
    if (st) return st;
    task_batcher *b = calloc(1, sizeof *b);
    mqar_config *cc = malloc(sizeof *cc);
    if (!b || !cc) {
        free(b), free(cc);
        task_errf(err, err_len, "mqar: out of memory");
        return TASK_ERR_OOM;
    }
    *cc = *c;
    b->ctx = cc;
    b->get_batch = batcher_get;
    b->free = batcher_free;
    b->max_context = c->seq_len;
    b->vocab_needed = c->vocab_size;
    b->n_tokens = 0;
    *out = b;
    return TASK_OK;
}

/* ---- accuracy ---- */

double mqar_example_accuracy(const int32_t *preds, const int32_t *labels, int L) {
    int n = 0, k = 0;
    for (int t = 0; t < L; t++) {
        if (labels[t] == TASK_IGNORE) continue;
        n++;
        k += preds[t] == labels[t];
    }
    return n ? (double)k / n : NAN;
}

void mqar_acc_init(mqar_acc *a) { memset(a, 0, sizeof *a); }

void mqar_acc_add(mqar_acc *a, const int32_t *preds, const int32_t *labels, int n, int L) {
    for (int e = 0; e < n; e++) {
        const int32_t *p = preds + (size_t)e * L, *l = labels + (size_t)e * L;
        int q = 0, k = 0;
        for (int t = 0; t < L; t++) {
            if (l[t] == TASK_IGNORE) continue;
            q++;
            k += p[t] == l[t];
        }
        if (!q) continue;
        double f = (double)k / q;
        a->sum += f;
        a->sum_sq += f * f;
        a->n_examples++;
        a->n_correct += k;
        a->n_queries += q;
    }
}

double mqar_acc_accuracy(const mqar_acc *a) { return a->n_examples ? a->sum / (double)a->n_examples : NAN; }

double mqar_acc_stderr(const mqar_acc *a) {
    if (a->n_examples < 2) return NAN;
    double n = (double)a->n_examples, m = a->sum / n;
    double var = (a->sum_sq - n * m * m) / (n - 1);
    return var > 0 ? sqrt(var / n) : 0;
}

double mqar_accuracy(const int32_t *preds, const int32_t *labels, int n, int L) {
    mqar_acc a;
    mqar_acc_init(&a);
    mqar_acc_add(&a, preds, labels, n, L);
    return mqar_acc_accuracy(&a);
}

void mqar_argmax_preds(const float *logits, int64_t n_pos, int vocab, int32_t *preds) {
    for (int64_t i = 0; i < n_pos; i++) preds[i] = task_argmax(logits + (size_t)i * vocab, vocab);
}
