/*
 * records.c: loading reports for the derived views, metric extraction with spread,
 * pooling of seeds and repeated runs, and the dimensions of a record. See
 * records.h and docs/reports.md.
 */
#include "records.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* ---- string buffer ---- */

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < b->len + extra + 1) nc *= 2;
    char *t = realloc(b->s, nc);
    if (!t) {
        b->oom = 1;
        return -1;
    }
    b->s = t;
    b->cap = nc;
    return 0;
}

void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (sb_reserve(b, (size_t)n) != 0) return;
    if ((size_t)n < sizeof tmp) {
        memcpy(b->s + b->len, tmp, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void sb_puts(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (sb_reserve(b, n) != 0) return;
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void sb_free(sbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

int sb_emit(const sbuf *b, const char *path, char *err, size_t err_len) {
    if (b->oom) {
        snprintf(err, err_len, "out of memory building the output");
        return -1;
    }
    const char *s = b->s ? b->s : "";
    if (!path || !strcmp(path, "-")) {
        if (fwrite(s, 1, b->len, stdout) != b->len || fflush(stdout) != 0) {
            snprintf(err, err_len, "cannot write to stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    return write_file_atomic(path, s, b->len, err, err_len);
}

/* ---- loading ---- */

const char *rec_str(const cJSON *r, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

int rec_num(const cJSON *r, const char *path, double *out) {
    char part[64];
    const cJSON *x = r;
    const char *p = path;
    while (x && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len >= sizeof part) return -1;
        memcpy(part, p, len);
        part[len] = 0;
        x = cJSON_GetObjectItemCaseSensitive(x, part);
        p = dot ? dot + 1 : p + len;
    }
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return -1;
    *out = x->valuedouble;
    return 0;
}

const char *rec_device(const cJSON *rec, const cJSON *prov, int *gpu) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(prov, "machine");
    const char *be = rec_str(rec, "backend"), *dev = rec_str(rec, "device");
    *gpu = (be && !strcmp(be, "cuda")) || (dev && (!strcmp(dev, "cuda") || !strcmp(dev, "gpu")));
    return *gpu ? rec_str(cJSON_GetObjectItemCaseSensitive(m, "gpu"), "name") : rec_str(m, "cpu");
}

/* The device a record ran on: its own "card" (run's records carry it, since a
 * run folder's parts may come from several machines), else the file's provenance. */
static const char *card_of(const cJSON *rec, const cJSON *prov) {
    const char *own = rec_str(rec, "card");
    if (own && *own) return own;
    int gpu;
    const char *d = rec_device(rec, prov, &gpu);
    return d ? d : gpu ? "unknown GPU" : "unknown";
}

static int add_record(rec_set *s, const cJSON *rec, const cJSON *prov, int file) {
    if (!cJSON_IsObject(rec)) return 0;
    rec_kind k;
    const char *kind = rec_str(rec, "kind");
    if (rec_str(rec, "task") || (kind && !strcmp(kind, "task"))) k = REC_TASK;
    else if (kind && !strcmp(kind, "kernel")) k = REC_KERNEL;
    else if (kind && !strcmp(kind, "verify")) k = REC_VERIFY;
    else return 0; /* a record of a kind the views don't know: ignored */
    if (s->nrecs == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        rec_ref *t = realloc(s->recs, (size_t)nc * sizeof *t);
        if (!t) return -1;
        s->recs = t;
        s->cap = nc;
    }
    rec_ref *r = &s->recs[s->nrecs++];
    r->rec = rec;
    r->prov = prov;
    r->card = card_of(rec, prov);
    r->kind = k;
    r->file = file;
    const char *st = rec_str(rec, "status");
    r->ok = !st || !strcmp(st, "ok");
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A JSONL stream: one record per line; lines that do not parse are skipped. */
static cJSON *read_jsonl(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *recs = cJSON_AddArrayToObject(doc, "records");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        if (cJSON_IsObject(j)) cJSON_AddItemToArray(recs, j);
        else cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return doc;
}

int recset_load(rec_set *s, const char *path, char *err, size_t err_len) {
    int jsonl = ends_with(path, ".jsonl");
    cJSON *doc = jsonl ? read_jsonl(path, err, err_len) : report_read(path, err, err_len);
    if (!doc) return -1;
    if (!jsonl) {
        const cJSON *sv = cJSON_GetObjectItemCaseSensitive(doc, "schema_version");
        if (!cJSON_IsObject(doc) || !cJSON_IsNumber(sv)) {
            snprintf(err, err_len, "%s: not a dmabench report (no schema_version)", path);
            cJSON_Delete(doc);
            return -1;
        }
        if (sv->valuedouble != REPORT_SCHEMA_VERSION) {
            snprintf(err, err_len, "%s: schema_version %g, this dmabench reads version %d", path,
                     sv->valuedouble, REPORT_SCHEMA_VERSION);
            cJSON_Delete(doc);
            return -1;
        }
    }
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(doc, "records");
    if (!cJSON_IsArray(recs)) {
        snprintf(err, err_len, "%s: no records array", path);
        cJSON_Delete(doc);
        return -1;
    }
    char **np = realloc(s->paths, (size_t)(s->nfiles + 1) * sizeof *np);
    if (np) s->paths = np;
    cJSON **nd = realloc(s->docs, (size_t)(s->nfiles + 1) * sizeof *nd);
    if (nd) s->docs = nd;
    char *pc = strdup(path);
    if (!np || !nd || !pc) {
        free(pc);
        cJSON_Delete(doc);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int file = s->nfiles++;
    s->paths[file] = pc;
    s->docs[file] = doc;
    const cJSON *prov = cJSON_GetObjectItemCaseSensitive(doc, "provenance");
    const cJSON *r;
    cJSON_ArrayForEach(r, recs) {
        if (add_record(s, r, cJSON_IsObject(prov) ? prov : NULL, file) != 0) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
    }
    return 0;
}

void recset_free(rec_set *s) {
    for (int i = 0; i < s->nfiles; i++) {
        free(s->paths[i]);
        cJSON_Delete(s->docs[i]);
    }
    free(s->paths);
    free(s->docs);
    free(s->recs);
    memset(s, 0, sizeof *s);
}

/* ---- metrics ---- */

#define K_KV (REC_KERNEL | REC_VERIFY)
static const metric_def metrics[] = {
    /* name, title, unit, scale, higher, kinds, src, field, rate_div, bmf, bmf_scale, bmf_unit, floor,
     * bounded, min, max */
    {"time_ms", "time", "ms", 1, 0, REC_KERNEL, MSRC_TIME, "time_ms", 0, "latency", 1e6, "ns", 0, 0, 0, 0},
    {"gflops_dense", "dense-equivalent throughput", "GFLOP/s", 1, 1, REC_KERNEL, MSRC_RATE, "flops_dense", 1e9,
     "gflops-dense", 1, "GFLOP/s", 0, 0, 0, 0},
    {"gflops_effective", "effective throughput", "GFLOP/s", 1, 1, REC_KERNEL, MSRC_RATE, "flops_effective", 1e9,
     "gflops-effective", 1, "GFLOP/s", 0, 0, 0, 0},
    {"tflops_dense", "dense-equivalent throughput", "TFLOP/s", 1, 1, REC_KERNEL, MSRC_RATE, "flops_dense", 1e12,
     "tflops-dense", 1, "TFLOP/s", 0, 0, 0, 0},
    {"tflops_effective", "effective throughput", "TFLOP/s", 1, 1, REC_KERNEL, MSRC_RATE, "flops_effective", 1e12,
     "tflops-effective", 1, "TFLOP/s", 0, 0, 0, 0},
    {"gbps", "bandwidth", "GB/s", 1, 1, REC_KERNEL, MSRC_RATE, "bytes", 1e9, "bandwidth", 1, "GB/s", 0, 0, 0, 0},
    {"peak_mem_bytes", "peak memory", "MiB", 1.0 / 1048576, 0, REC_KERNEL, MSRC_FIELD, "peak_mem_bytes", 0,
     "peak-memory", 1, "bytes", 65536, 0, 0, 0},
    {"rss_peak_bytes", "peak resident set", "MiB", 1.0 / 1048576, 0, REC_KERNEL, MSRC_FIELD, "rss_peak_bytes", 0,
     "rss-peak", 1, "bytes", 1048576, 0, 0, 0},
    {"tensor_bytes", "tensor memory", "MiB", 1.0 / 1048576, 0, REC_KERNEL, MSRC_FIELD, "tensor_bytes", 0,
     "tensor-memory", 1, "bytes", 0, 0, 0, 0},
    {"select_ms", "selection time", "ms", 1, 0, REC_KERNEL, MSRC_FIELD, "select_ms.median", 0, "select-latency",
     1e6, "ns", 0, 0, 0, 0},
    {"max_abs_err", "max abs error", "", 1, 0, K_KV, MSRC_FIELD, "max_abs_err", 0, "max-abs-error", 1, "", 0, 0, 0, 0},
    {"max_rel_err", "max rel error", "", 1, 0, K_KV, MSRC_FIELD, "max_rel_err", 0, "max-rel-error", 1, "", 0, 0, 0, 0},
    {"accuracy", "accuracy", "%", 100, 1, REC_TASK, MSRC_TASK, "accuracy", 0, "accuracy", 100, "%", 0, 1, 0, 1},
    {"recall", "recall", "%", 100, 1, REC_TASK, MSRC_TASK, "recall", 0, "recall", 100, "%", 0, 1, 0, 1},
    {"nll", "NLL", "nats", 1, 0, REC_TASK, MSRC_TASK, "nll", 0, "nll", 1, "nats", 0, 1, 0, INFINITY},
    {"ppl", "perplexity", "", 1, 0, REC_TASK, MSRC_TASK, "ppl", 0, "perplexity", 1, "", 0, 1, 1, INFINITY},
    {"bits_per_byte", "bits per byte", "bits/byte", 1, 0, REC_TASK, MSRC_TASK, "bits_per_byte", 0,
     "bits-per-byte", 1, "bits/byte", 0, 1, 0, INFINITY},
};
#define NMETRICS (int)(sizeof metrics / sizeof *metrics)

const metric_def *metric_find(const char *name) {
    for (int i = 0; i < NMETRICS; i++)
        if (!strcmp(metrics[i].name, name)) return &metrics[i];
    return NULL;
}

const metric_def *metric_at(int i) { return i >= 0 && i < NMETRICS ? &metrics[i] : NULL; }

const char *metric_names(void) {
    static char buf[512];
    if (!buf[0]) {
        size_t off = 0;
        for (int i = 0; i < NMETRICS && off < sizeof buf; i++)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? ", " : "", metrics[i].name);
    }
    return buf;
}

/* Two-sided 95% quantile of Student's t with df degrees of freedom. */
static double t975(int df) {
    static const double t[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                               2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < 1) return NAN;
    if (df <= 30) return t[df];
    return 1.96 + 2.5 / df;
}

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int jpair(const cJSON *a, double *lo, double *hi) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2) return -1;
    const cJSON *x = cJSON_GetArrayItem(a, 0), *y = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y)) return -1;
    *lo = x->valuedouble;
    *hi = y->valuedouble;
    return isfinite(*lo) && isfinite(*hi) ? 0 : -1;
}

static int jnumber(const cJSON *o, const char *k, double *v) {
    const cJSON *x = jget(o, k);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return -1;
    *v = x->valuedouble;
    return 0;
}

/* An interval written as [lo, hi] under one of the usual names, or lo/hi pairs. */
static int find_interval(const cJSON *o, const char *prefix, double *lo, double *hi) {
    static const char *arr[] = {"ci95", "ci", "interval", "ci_95"};
    static const char *pairs[][2] = {{"lo", "hi"}, {"lower", "upper"}, {"ci_lo", "ci_hi"}, {"ci95_lo", "ci95_hi"}};
    char k1[96], k2[96];
    for (size_t i = 0; i < sizeof arr / sizeof *arr; i++) {
        snprintf(k1, sizeof k1, "%s%s", prefix, arr[i]);
        if (jpair(jget(o, k1), lo, hi) == 0) return 0;
    }
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        snprintf(k1, sizeof k1, "%s%s", prefix, pairs[i][0]);
        snprintf(k2, sizeof k2, "%s%s", prefix, pairs[i][1]);
        if (jnumber(o, k1, lo) == 0 && jnumber(o, k2, hi) == 0) return 0;
    }
    return -1;
}

static void wilson(double p, double n, double *lo, double *hi) {
    const double z = 1.959964;
    double d = 1 + z * z / n, c = (p + z * z / (2 * n)) / d;
    double h = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d;
    *lo = fmax(0, c - h);
    *hi = fmin(1, c + h);
}

/* The standard error of nll, when the record gives one. */
static int nll_stderr(const cJSON *mo, double *se) {
    const cJSON *s = jget(mo, "stderr");
    if (cJSON_IsObject(s)) return jnumber(s, "nll", se);
    if (jnumber(mo, "nll_stderr", se) == 0) return 0;
    if (cJSON_IsNumber(s) && isfinite(s->valuedouble)) {
        *se = s->valuedouble;
        return 0;
    }
    const cJSON *n = jget(mo, "nll");
    return cJSON_IsObject(n) ? jnumber(n, "stderr", se) : -1;
}

static int task_value(const metric_def *m, const cJSON *rec, magg *o) {
    const cJSON *mo = jget(rec, "metrics");
    if (!cJSON_IsObject(mo)) mo = rec;
    const char *f = m->field;
    const cJSON *x = jget(mo, f);
    double lo, hi, se;
    char pre[96];
    snprintf(pre, sizeof pre, "%s_", f);
    if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
        o->v = x->valuedouble;
    } else if (cJSON_IsObject(x)) {
        if (jnumber(x, "value", &o->v) != 0 && jnumber(x, "mean", &o->v) != 0 && jnumber(x, "median", &o->v) != 0)
            return -1;
        if (find_interval(x, "", &lo, &hi) == 0) {
            o->lo = lo, o->hi = hi, o->has_int = 1;
        } else if (jnumber(x, "stderr", &se) == 0) {
            o->lo = o->v - 1.959964 * se, o->hi = o->v + 1.959964 * se, o->has_int = o->sym = 1;
        }
    } else {
        return -1;
    }
    if (!o->has_int && find_interval(mo, pre, &lo, &hi) == 0) {
        o->lo = lo, o->hi = hi, o->has_int = 1;
    }
    if (!o->has_int) {
        char k[96];
        snprintf(k, sizeof k, "%s_stderr", f);
        const cJSON *so = jget(mo, "stderr");
        int have = jnumber(mo, k, &se) == 0 || (cJSON_IsObject(so) && jnumber(so, f, &se) == 0);
        if (have) {
            o->lo = o->v - 1.959964 * se, o->hi = o->v + 1.959964 * se, o->has_int = o->sym = 1;
        } else if (!strcmp(f, "nll") || !strcmp(f, "bits_per_byte") || !strcmp(f, "ppl")) {
            double nll;
            if (nll_stderr(mo, &se) == 0) {
                if (!strcmp(f, "nll")) {
                    o->lo = o->v - 1.959964 * se, o->hi = o->v + 1.959964 * se, o->sym = 1;
                } else if (!strcmp(f, "bits_per_byte")) {
                    double s2 = se / log(2.0);
                    o->lo = o->v - 1.959964 * s2, o->hi = o->v + 1.959964 * s2, o->sym = 1;
                } else if (rec_num(mo, "nll", &nll) == 0 || rec_num(mo, "nll.value", &nll) == 0) {
                    o->lo = exp(nll - 1.959964 * se), o->hi = exp(nll + 1.959964 * se);
                } else {
                    return 0;
                }
                o->has_int = 1;
            }
        } else if (!strcmp(f, "accuracy")) {
            double n;
            if (find_interval(mo, "", &lo, &hi) == 0) {
                o->lo = lo, o->hi = hi, o->has_int = 1;
            } else if ((jnumber(mo, "n", &n) == 0 || jnumber(mo, "num_samples", &n) == 0 ||
                        jnumber(mo, "samples", &n) == 0 || jnumber(mo, "count", &n) == 0) &&
                       n >= 1) {
                double p = o->v > 1 ? o->v / 100 : o->v;
                wilson(p, n, &o->lo, &o->hi);
                if (o->v > 1) o->lo *= 100, o->hi *= 100;
                o->has_int = 1;
            }
        }
    }
    /* accuracy is a fraction; a record that wrote a percentage is read as one */
    if (!strcmp(f, "accuracy") && o->v > 1 && o->v <= 100) {
        o->v /= 100, o->lo /= 100, o->hi /= 100;
    }
    return 0;
}

/* An interval cut to the metric's range (a t interval over two seeds can reach far
 * past 0% or 100%); a cut one is no longer v +- half. */
static void clamp_interval(const metric_def *m, magg *o) {
    if (!m->bounded || !o->has_int) return;
    if (o->lo < m->min) o->lo = m->min, o->sym = 0;
    if (o->hi > m->max) o->hi = m->max, o->sym = 0;
}

int metric_value(const metric_def *m, const rec_ref *r, magg *o) {
    memset(o, 0, sizeof *o);
    if (!(m->kinds & r->kind) || !r->ok) return -1;
    const cJSON *rec = r->rec;
    double med, p5, p95, num;
    switch (m->src) {
    case MSRC_TIME:
        if (rec_num(rec, "time_ms.median", &med) != 0) return -1;
        o->v = med;
        if (rec_num(rec, "time_ms.p5", &p5) == 0 && rec_num(rec, "time_ms.p95", &p95) == 0)
            o->lo = p5, o->hi = p95, o->has_int = 1;
        break;
    case MSRC_RATE:
        if (rec_num(rec, m->field, &num) != 0 || rec_num(rec, "time_ms.median", &med) != 0 || !(med > 0)) {
            if (rec_num(rec, m->name, &o->v) != 0) return -1; /* a precomputed rate */
            break;
        }
        o->v = num / (med * 1e-3) / m->rate_div;
        if (rec_num(rec, "time_ms.p5", &p5) == 0 && rec_num(rec, "time_ms.p95", &p95) == 0 && p5 > 0 && p95 > 0)
            o->lo = num / (p95 * 1e-3) / m->rate_div, o->hi = num / (p5 * 1e-3) / m->rate_div, o->has_int = 1;
        break;
    case MSRC_FIELD:
        if (rec_num(rec, m->field, &o->v) != 0) return -1;
        break;
    case MSRC_TASK:
        if (task_value(m, rec, o) != 0) return -1;
        break;
    }
    if (!o->has_int) o->lo = o->hi = o->v;
    clamp_interval(m, o);
    o->n = 1;
    o->how = AGG_ONE;
    o->spread = !o->has_int ? "" : m->src == MSRC_TIME || m->src == MSRC_RATE ? "p5-p95" : "95% CI";
    return 0;
}

/* Pools the timing samples of the records; 0 when every one has them. */
static int pool_samples(const metric_def *m, rec_ref *const *rs, int n, magg *o) {
    int total = 0;
    double num0 = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *s = jget(jget(rs[i]->rec, "time_ms"), "samples");
        if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) == 0) return -1;
        if (m->src == MSRC_RATE) {
            double num;
            if (rec_num(rs[i]->rec, m->field, &num) != 0) return -1;
            if (i == 0) num0 = num;
            else if (num != num0) return -1; /* different work: not the same cell */
        }
        total += cJSON_GetArraySize(s);
    }
    double *v = malloc((size_t)total * sizeof *v);
    if (!v) return -1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *x;
        cJSON_ArrayForEach(x, jget(jget(rs[i]->rec, "time_ms"), "samples")) {
            if (!cJSON_IsNumber(x) || !(x->valuedouble > 0)) {
                free(v);
                return -1;
            }
            v[k++] = x->valuedouble;
        }
    }
    report_sort(v, k); /* as `dmabench kernels` summarises its samples */
    double med = report_percentile(v, k, 0.5), p5 = report_percentile(v, k, 0.05), p95 = report_percentile(v, k, 0.95);
    free(v);
    if (m->src == MSRC_TIME) {
        o->v = med, o->lo = p5, o->hi = p95;
    } else {
        o->v = num0 / (med * 1e-3) / m->rate_div;
        o->lo = num0 / (p95 * 1e-3) / m->rate_div;
        o->hi = num0 / (p5 * 1e-3) / m->rate_div;
    }
    o->has_int = 1;
    o->sym = 0;
    o->n = n;
    o->how = AGG_SAMPLES;
    o->spread = "p5-p95";
    return 0;
}

int metric_pool(const metric_def *m, rec_ref *const *rs, int n, magg *o) {
    memset(o, 0, sizeof *o);
    rec_ref **ok = malloc((size_t)(n > 0 ? n : 1) * sizeof *ok);
    double *vals = malloc((size_t)(n > 0 ? n : 1) * sizeof *vals);
    if (!ok || !vals) {
        free(ok);
        free(vals);
        return -1;
    }
    int k = 0;
    magg one = {0};
    for (int i = 0; i < n; i++) {
        magg t;
        if (metric_value(m, rs[i], &t) == 0) {
            ok[k] = rs[i];
            vals[k++] = t.v;
            one = t;
        }
    }
    int rc = 0;
    if (k == 0) {
        rc = -1;
    } else if (k == 1) {
        *o = one;
    } else if ((m->src == MSRC_TIME || m->src == MSRC_RATE) && pool_samples(m, ok, k, o) == 0) {
        /* done */
    } else {
        double mean = 0, ss = 0;
        for (int i = 0; i < k; i++) mean += vals[i];
        mean /= k;
        for (int i = 0; i < k; i++) ss += (vals[i] - mean) * (vals[i] - mean);
        double half = t975(k - 1) * sqrt(ss / (k - 1)) / sqrt((double)k);
        o->v = mean, o->lo = mean - half, o->hi = mean + half;
        o->has_int = o->sym = 1;
        clamp_interval(m, o);
        o->n = k;
        o->how = AGG_MEAN;
        o->spread = "95% CI";
    }
    free(ok);
    free(vals);
    return rc;
}

void fmt_num(char *buf, size_t n, double v) {
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
        return;
    }
    double a = fabs(v);
    if (a == 0) {
        snprintf(buf, n, "0");
        return;
    }
    if (a >= 1e6 || a < 1e-3) {
        snprintf(buf, n, "%.2e", v);
        return;
    }
    if (a >= 999.5) { /* whole numbers are not rounded to three digits */
        snprintf(buf, n, "%.0f", v);
        return;
    }
    int e = (int)floor(log10(a));
    double q = pow(10.0, e - 2), r = round(a / q) * q;
    e = (int)floor(log10(r) + 1e-12);
    int dec = 2 - e;
    if (dec < 0) dec = 0;
    snprintf(buf, n, "%.*f", dec, v < 0 ? -r : r);
}

/* ---- dimensions ---- */

/* lengths come last, so that rows read as scaling curves */
static const char *const canon[] = {
    "task",   "card",     "backend", "dtype",  "mode",   "variant",  "label",          "B",
    "Hq",     "Hkv",      "D",       "causal", "scale",  "threads",  "z_source",       "padded_strides",
    "d_model", "num_kv_pairs", "Nq", "N",      "context_len", "depth", "seq_len",       "context",
    "w",      "dma_mode", "dma_z",   "nsa_l",  "nsa_d",  "nsa_ls",   "nsa_n",          "nsa_cmp",
};
#define NCANON (int)(sizeof canon / sizeof *canon)

static int canon_rank(const char *name) {
    for (int i = 0; i < NCANON; i++)
        if (!strcmp(canon[i], name)) return i;
    return 1000;
}

static const char *const top_dims[] = {"task", "variant", "backend", "mode", "dtype", "label", "z_source",
                                       "padded_strides"};
static const char *const shape_dims[][2] = {{"B", "B"},   {"Nq", "Nq"},   {"N", "Nk"},
                                           {"Hq", "Hq"}, {"Hkv", "Hkv"}, {"D", "D"}};

static void dims_add(dim_list *l, const char *name, const char *field, int src) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->d[i].name, name)) return;
    if (l->n >= DIM_MAX) return;
    dim_def *d = &l->d[l->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->field, sizeof d->field, "%s", field);
    d->src = src;
    d->rank = canon_rank(name);
    d->variant_specific = src == DSRC_SETTINGS && (!strcmp(name, "w") || !strcmp(name, "window") ||
                                                   !strncmp(name, "dma_", 4) || !strncmp(name, "nsa_", 4));
    d->hidden = !strcmp(name, "scale") || !strcmp(name, "Nq");
}

static int dim_order(const void *a, const void *b) {
    const dim_def *x = a, *y = b;
    if (x->rank != y->rank) return x->rank - y->rank;
    return strcmp(x->name, y->name);
}

void dims_collect(rec_ref *const *rs, int n, dim_list *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        const cJSON *r = rs[i]->rec;
        for (size_t k = 0; k < sizeof top_dims / sizeof *top_dims; k++) {
            const cJSON *x = jget(r, top_dims[k]);
            if (cJSON_IsString(x) || cJSON_IsNumber(x) || cJSON_IsBool(x)) dims_add(out, top_dims[k], top_dims[k], DSRC_TOP);
        }
        const cJSON *sh = jget(r, "shape");
        for (size_t k = 0; k < sizeof shape_dims / sizeof *shape_dims; k++)
            if (cJSON_IsNumber(jget(sh, shape_dims[k][1]))) dims_add(out, shape_dims[k][0], shape_dims[k][1], DSRC_SHAPE);
        const cJSON *x;
        cJSON_ArrayForEach(x, jget(r, "settings")) {
            if (!x->string || !strcmp(x->string, "seed")) continue;
            if (!(cJSON_IsString(x) || cJSON_IsNumber(x) || cJSON_IsBool(x))) continue;
            dims_add(out, x->string, x->string, DSRC_SETTINGS);
        }
        dims_add(out, "card", "card", DSRC_CARD);
    }
    qsort(out->d, (size_t)out->n, sizeof *out->d, dim_order);
}

const dim_def *dims_find(const dim_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->d[i].name, name)) return &l->d[i];
    return NULL;
}

static int scalar_text(const cJSON *x, char *buf, size_t len, double *num, int *isnum) {
    *isnum = 0;
    if (cJSON_IsString(x)) {
        snprintf(buf, len, "%s", x->valuestring);
        return 1;
    }
    if (cJSON_IsBool(x)) {
        snprintf(buf, len, "%d", cJSON_IsTrue(x) ? 1 : 0);
        *num = cJSON_IsTrue(x);
        *isnum = 1;
        return 1;
    }
    if (cJSON_IsNumber(x)) {
        double v = x->valuedouble;
        if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, len, "%lld", (long long)v);
        else snprintf(buf, len, "%.6g", v);
        *num = v;
        *isnum = 1;
        return 1;
    }
    return 0;
}

int dim_get(const dim_def *d, const rec_ref *r, char *buf, size_t len, double *num, int *isnum) {
    double dn;
    int di;
    if (!num) num = &dn;
    if (!isnum) isnum = &di;
    *isnum = 0;
    buf[0] = 0;
    const cJSON *x = NULL;
    switch (d->src) {
    case DSRC_TOP: x = jget(r->rec, d->field); break;
    case DSRC_SHAPE: x = jget(jget(r->rec, "shape"), d->field); break;
    case DSRC_SETTINGS: x = jget(jget(r->rec, "settings"), d->field); break;
    case DSRC_CARD: snprintf(buf, len, "%s", r->card); return 1;
    }
    if (scalar_text(x, buf, len, num, isnum)) return 1;
    buf[0] = 0;
    return 0;
}

int variant_rank(const char *v) {
    static const char *order[] = {"mha", "swa", "dma", "nsa"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, order[i])) return i;
    return 100;
}

static int mode_rank(const char *m) {
    static const char *order[] = {"fwd", "bwd", "fwdbwd", "decode"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(m, order[i])) return i;
    return 100;
}

static int parse_full(const char *s, double *v) {
    char *end;
    if (!*s) return -1;
    errno = 0;
    *v = strtod(s, &end);
    return *end || errno ? -1 : 0;
}

int dim_cmp(const dim_def *d, const char *a, const char *b) {
    if (!*a || !*b) return (*a != 0) - (*b != 0);
    double x, y;
    if (parse_full(a, &x) == 0 && parse_full(b, &y) == 0 && x != y) return (x > y) - (x < y);
    if (!strcmp(d->name, "variant")) {
        int ra = variant_rank(a), rb = variant_rank(b);
        if (ra != rb) return ra - rb;
    }
    if (!strcmp(d->name, "mode")) {
        int ra = mode_rank(a), rb = mode_rank(b);
        if (ra != rb) return ra - rb;
    }
    return strcmp(a, b);
}

int dim_distinct(const dim_def *d, rec_ref *const *rs, int n) {
    /* small sets: collect distinct values in a list */
    char (*seen)[96] = NULL;
    int ns = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        char v[96];
        if (!dim_get(d, rs[i], v, sizeof v, NULL, NULL)) continue;
        int found = 0;
        for (int k = 0; k < ns && !found; k++) found = !strcmp(seen[k], v);
        if (found) continue;
        if (ns == cap) {
            cap = cap ? cap * 2 : 16;
            void *t = realloc(seen, (size_t)cap * sizeof *seen);
            if (!t) break;
            seen = t;
        }
        memcpy(seen[ns++], v, sizeof v);
    }
    free(seen);
    return ns;
}

char *rec_cell_key(const rec_ref *r, int ignore_card) {
    dim_list l;
    rec_ref *one = (rec_ref *)r;
    dims_collect(&one, 1, &l);
    sbuf b = {0};
    sb_puts(&b, r->kind == REC_KERNEL ? "kernel" : r->kind == REC_VERIFY ? "verify" : "task");
    for (int i = 0; i < l.n; i++) {
        if (ignore_card && l.d[i].src == DSRC_CARD) continue;
        char v[256];
        dim_get(&l.d[i], r, v, sizeof v, NULL, NULL);
        sb_printf(&b, "|%s=%s", l.d[i].name, v);
    }
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return b.s;
}

/* ---- grouping ---- */

typedef struct {
    char **vals; /* n x nd */
    int nd;
    const dim_def *const *dims;
} group_ctx;

static int group_cmp(const void *a, const void *b, void *arg) {
    const group_ctx *c = arg;
    int i = *(const int *)a, j = *(const int *)b;
    for (int k = 0; k < c->nd; k++) {
        int r = dim_cmp(c->dims[k], c->vals[i * c->nd + k], c->vals[j * c->nd + k]);
        if (r) return r;
    }
    return (i > j) - (i < j);
}

int group_by(rec_ref *const *rs, int n, const dim_def *const *dims, int nd, int *order, int *start) {
    group_ctx c = {calloc((size_t)(n * nd + 1), sizeof(char *)), nd, dims};
    if (!c.vals) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        for (int k = 0; k < nd; k++) {
            char v[256];
            dim_get(dims[k], rs[i], v, sizeof v, NULL, NULL);
            if (!(c.vals[i * nd + k] = strdup(v))) rc = -1;
        }
    int ng = 0;
    if (rc == 0) {
        for (int i = 0; i < n; i++) order[i] = i;
        qsort_r(order, (size_t)n, sizeof *order, group_cmp, &c);
        for (int i = 0; i < n; i++) {
            int same = i > 0;
            for (int k = 0; k < nd && same; k++)
                same = !strcmp(c.vals[order[i] * nd + k], c.vals[order[i - 1] * nd + k]);
            if (!same) start[ng++] = i;
        }
        start[ng] = n;
    }
    for (int i = 0; i < n * nd; i++) free(c.vals[i]);
    free(c.vals);
    return rc == 0 ? ng : -1;
}

/* ---- colours ---- */

const char *variant_color(const char *v) {
    /* Okabe-Ito: distinguishable with the common colour-vision deficiencies */
    if (!strcmp(v, "mha")) return "#0072B2";
    if (!strcmp(v, "swa")) return "#E69F00";
    if (!strcmp(v, "dma")) return "#D55E00";
    if (!strcmp(v, "nsa")) return "#009E73";
    static const char *other[] = {"#CC79A7", "#56B4E9", "#000000", "#999999"};
    uint32_t h = 2166136261u;
    for (const char *p = v; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return other[h % 4];
}

/* ---- command-line helpers ---- */

int cli_all(cli_args *a, const char *name, const char **out, int max) {
    int n = 0;
    cli_note(a, name);
    for (int i = 0; i < a->n; i++)
        if (a->name[i] && !strcmp(a->name[i], name)) {
            a->used[i] = 1;
            if (n < max && a->value[i]) out[n++] = a->value[i];
        }
    return n;
}

int rec_filter_where(rec_ref **rs, int n, const char *const *where, int nwhere, char *err, size_t err_len) {
    /* every key must be a dimension of some record: a misspelt key names what exists */
    dim_list all = {0};
    if (nwhere) dims_collect(rs, n, &all);
    for (int w = 0; w < nwhere; w++) {
        const char *eq = strchr(where[w], '=');
        if (!eq || eq == where[w] || !eq[1]) {
            snprintf(err, err_len, "--where expects DIM=VALUE[,VALUE...], got '%s'", where[w]);
            return -1;
        }
        char dim[64];
        snprintf(dim, sizeof dim, "%.*s", (int)(eq - where[w]), where[w]);
        if (n > 0 && !dims_find(&all, dim)) {
            char names[512];
            dims_names(&all, names, sizeof names);
            snprintf(err, err_len, "unknown --where key '%s' (known: %s)", dim, names);
            return -1;
        }
        char *items[64];
        int ni = cli_list(eq + 1, items, 64);
        int k = 0;
        for (int i = 0; i < n; i++) {
            dim_list l;
            dims_collect(&rs[i], 1, &l);
            const dim_def *d = dims_find(&l, dim);
            char v[256];
            int keep = 0;
            if (d && dim_get(d, rs[i], v, sizeof v, NULL, NULL))
                for (int j = 0; j < ni && !keep; j++) {
                    double x, y;
                    keep = !strcmp(v, items[j]) ||
                           (parse_full(v, &x) == 0 && parse_full(items[j], &y) == 0 && x == y);
                }
            if (keep) rs[k++] = rs[i];
        }
        cli_list_free(items, ni);
        n = k;
    }
    return n;
}

int rec_select_records(const rec_set *s, const rec_select *q, rec_ref **out, char *err, size_t err_len) {
    int n = 0;
    for (int i = 0; i < s->nrecs; i++) {
        rec_ref *r = &s->recs[i];
        if (q->kinds && !(r->kind & q->kinds)) continue;
        if (q->ok_only && !r->ok) continue;
        if (q->task) {
            const char *t = r->kind == REC_TASK ? rec_str(r->rec, "task") : NULL;
            if (!t || strcmp(t, q->task) != 0) continue;
        }
        out[n++] = r;
    }
    if (n == 0 && q->task) {
        /* a task name that is neither built in nor in the records is a typo: name the known ones */
        static const char *const builtin[] = {"mqar", "niah", "ppl"};
        int known = 0;
        for (int i = 0; i < 3; i++) known |= !strcmp(q->task, builtin[i]);
        if (!known) {
            size_t off = (size_t)snprintf(err, err_len, "unknown task '%s' (known: mqar, niah, ppl", q->task);
            const char *seen[16];
            int nseen = 0;
            for (int i = 0; i < s->nrecs && off < err_len && nseen < 16; i++) {
                const char *t = s->recs[i].kind == REC_TASK ? rec_str(s->recs[i].rec, "task") : NULL;
                int dup = !t;
                for (int j = 0; j < 3 && !dup; j++) dup = !strcmp(t, builtin[j]);
                for (int j = 0; j < nseen && !dup; j++) dup = !strcmp(t, seen[j]);
                if (dup) continue;
                seen[nseen++] = t;
                off += (size_t)snprintf(err + off, err_len - off, ", %s", t);
            }
            if (off < err_len) snprintf(err + off, err_len - off, ")");
            return -1;
        }
    }
    return rec_filter_where(out, n, q->where, q->nwhere, err, err_len);
}

void dims_names(const dim_list *l, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < l->n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", l->d[i].name);
}

int metric_parse_list(const char *list, const metric_def **out, int max, char *err, size_t err_len) {
    char *items[32];
    int ni = cli_list(list, items, max < 32 ? max : 32), n = 0;
    for (int i = 0; i < ni; i++) {
        if (!(out[n] = metric_find(items[i]))) {
            snprintf(err, err_len, "unknown metric '%s' (known: %s)", items[i], metric_names());
            cli_list_free(items, ni);
            return -1;
        }
        n++;
    }
    cli_list_free(items, ni);
    return n;
}
