/*
 * run_estimate.c: how long a suite's training cells take, estimated from measured
 * records (`dmabench run SUITE --validate --timing-from RECORDS`).
 *
 * A record measured the cell's training throughput (train.tokens_per_s) and its
 * evaluation time (train.eval_s, for metrics.n test examples or samples). A cell
 * of the suite takes steps x batch x context tokens at the throughput of the
 * record with the same key (task, variant and settings; the seed aside), plus the
 * record's evaluation time scaled to the suite's n_test (mqar) or samples (niah).
 * So a short run of the same shapes (few steps, one seed, a small test set) tells
 * how long the whole suite will take on that machine. Where F holds records of
 * the suite's own cells (same key, seed included) with their cell_s, their sum is
 * printed too: what those cells took as they ran, early stops included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "records.h"
#include "run_suite.h"

typedef struct {
    char key[160];  /* the cell's whole key */
    char base[160]; /* the same without its seed */
    double tps, eval_s, n;
    double cell_s; /* its wall time as it ran, 0 when the record has none */
} measured;

/* key without its "seed=N/" part */
static void strip_seed(const char *key, char *out, size_t n) {
    const char *s = strstr(key, "seed=");
    if (!s) {
        snprintf(out, n, "%s", key);
        return;
    }
    const char *e = strchr(s, '/');
    snprintf(out, n, "%.*s%s", (int)(s - key), key, e ? e + 1 : "");
}

static double num(const cJSON *o, const char *name) {
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

static int add_record(const cJSON *r, measured **m, int *n, int *cap) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(r, "kind"), *status = cJSON_GetObjectItemCaseSensitive(r, "status");
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(r, "cell"), *train = cJSON_GetObjectItemCaseSensitive(r, "train");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "task") || !cJSON_IsString(status) ||
        strcmp(status->valuestring, "ok") || !cJSON_IsString(cell) || !cJSON_IsObject(train))
        return 0;
    double tps = num(train, "tokens_per_s"), ev = num(train, "eval_s");
    if (!(tps > 0) || ev < 0) return 0;
    for (int i = 0; i < *n; i++)
        if (!strcmp((*m)[i].key, cell->valuestring)) return 0; /* a cell's first record counts */
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        measured *nm = realloc(*m, sizeof *nm * (size_t)nc);
        if (!nm) return -1;
        *m = nm, *cap = nc;
    }
    measured *x = &(*m)[(*n)++];
    snprintf(x->key, sizeof x->key, "%s", cell->valuestring);
    strip_seed(cell->valuestring, x->base, sizeof x->base);
    x->tps = tps, x->eval_s = ev;
    x->n = num(cJSON_GetObjectItemCaseSensitive(r, "metrics"), "n");
    const double cs = num(r, "cell_s");
    x->cell_s = cs > 0 ? cs : 0;
    return 0;
}

/* The task records of a report or of a records.jsonl stream (recset_load). */
static int load_measured(const char *path, measured **m, int *n, char *err, size_t err_len) {
    *m = NULL, *n = 0;
    int cap = 0, rc = 0;
    rec_set set = {0};
    if (recset_load(&set, path, err, err_len) != 0) {
        recset_free(&set);
        return -1;
    }
    for (int i = 0; i < set.nrecs && rc == 0; i++)
        if (set.recs[i].kind == REC_TASK) rc = add_record(set.recs[i].rec, m, n, &cap);
    recset_free(&set);
    if (rc) {
        free(*m);
        *m = NULL, *n = 0;
        snprintf(err, err_len, "out of memory reading %s", path);
        return -1;
    }
    if (*n == 0) {
        snprintf(err, err_len, "%s holds no finished task records (a run's records.jsonl or report.json)", path);
        return -1;
    }
    return 0;
}

int suite_estimate_time(const suite *S, const suite_cell *cells, int ncells, const char *path, double budget_s,
                        FILE *out, double *total_s, char *err, size_t err_len) {
    if (total_s) *total_s = 0;
    measured *m = NULL;
    int nm = 0;
    if (load_measured(path, &m, &nm, err, err_len)) return -1;
    double ran_s = 0; /* the suite's own cells that F ran: their cell_s */
    int nran = 0;
    double per_task[SUITE_NTASKS] = {0}, train_task[SUITE_NTASKS] = {0}, total = 0, train_total = 0;
    int found = 0, missing = 0;
    for (int i = 0; i < ncells; i++) {
        const suite_cell *c = &cells[i];
        const suite_task_cfg *t = &S->task[c->task];
        char key[160];
        strip_seed(c->key, key, sizeof key);
        const measured *x = NULL; /* the first record of this key, the seed aside */
        for (int j = 0; j < nm; j++) {
            if (!x && !strcmp(m[j].base, key)) x = &m[j];
            if (m[j].cell_s > 0 && !strcmp(m[j].key, c->key)) ran_s += m[j].cell_s, nran++;
        }
        if (!x) {
            if (missing++ < 5) fprintf(out, "  no measured record for %s\n", c->key);
            continue;
        }
        found++;
        const int ctx = c->task == SUITE_MQAR ? c->seq_len
                        : c->task == SUITE_NIAH ? t->train_context_len
                                                : t->train_context;
        const double runs = c->task == SUITE_MQAR && t->lrs.n > 0 ? t->lrs.n : 1;
        double ev = x->eval_s;
        if (c->task == SUITE_MQAR && x->n > 0) ev *= t->n_test / x->n;
        if (c->task == SUITE_NIAH && x->n > 0) ev *= t->samples / x->n;
        const double tr = runs * (double)t->base.steps * t->base.batch_size * ctx / x->tps;
        per_task[c->task] += tr + ev;
        train_task[c->task] += tr;
        train_total += tr;
        total += tr + ev;
    }
    free(m);
    if (missing > 5) fprintf(out, "  ... and %d more cells without a measured record\n", missing - 5);
    char d[32];
    const double h = total / 3600;
    if (total_s) *total_s = total;
    fprintf(out, "estimated time for the %d training cells with a measured record: %.2f h, %.0f s (", found, h, total);
    for (int k = 0, first = 1; k < S->n_tasks; k++) {
        const int tk = S->order[k];
        snprintf(d, sizeof d, "%.2f h", per_task[tk] / 3600);
        fprintf(out, "%s%s %s", first ? "" : ", ", suite_task_name((suite_task)tk), d);
        first = 0;
    }
    fprintf(out, "), from the throughput measured in %s\n", path);
    if (nran > 0)
        fprintf(out, "%s ran %d of these %d cells: they took %.2f h, %.0f s as they ran (cell_s; early stops included)\n",
                path, nran, ncells, ran_s / 3600, ran_s);
    if (budget_s > 0 && found > 0) {
        /* training time scales with the steps, evaluation does not */
        const double eval = total - train_total, f = train_total > 0 ? (budget_s - eval) / train_total : 0;
        if (f <= 0) {
            fprintf(out, "a budget of %.2f h: the evaluations alone take %.2f h\n", budget_s / 3600, eval / 3600);
        } else {
            fprintf(out, "a budget of %.2f h: the training steps times %.3f, i.e.", budget_s / 3600, f);
            for (int k = 0, first = 1; k < S->n_tasks; k++) {
                const int tk = S->order[k];
                if (train_task[tk] <= 0) continue;
                long long st = (long long)(S->task[tk].base.steps * f + 0.5);
                fprintf(out, "%s %s \"steps\": %lld", first ? "" : ",", suite_task_name((suite_task)tk), st < 1 ? 1 : st);
                first = 0;
            }
            fprintf(out, "\n");
        }
    }
    return missing;
}
