/*
 * kernels.c: `dmabench kernels`: a speed and memory sweep in llama-bench style.
 * The cross product of the option lists gives the cells; each cell is first
 * checked against the double-precision reference at a small size, then timed at
 * full size. Records follow docs/report-schema.md; docs/kernels.md describes the
 * command, its fields and how checking and timing work.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "attn_case.h"
#include "cli.h"
#include "cuda_rt.h"
#include "commands.h"
#include "registry.h"
#include "report.h"
#include "verify.h"

#define LMAX 256              /* values per list option */
#define MAX_CELLS 100000
#define FLUSH_BYTES (64u << 20) /* scratch written between CPU repeats to flush the LLC */

enum { ZSRC_RANDOM = 0, ZSRC_CLUSTERED, ZSRC_RISING, ZSRC_WDT, ZSRC_N };
static const char *const zsrc_names[ZSRC_N] = {"random", "clustered", "rising", "wdt"};
static z_pattern zsrc_pattern(int zsrc) {
    return zsrc == ZSRC_CLUSTERED ? Z_CLUSTERED : zsrc == ZSRC_RISING ? Z_RISING : Z_RANDOM;
}

enum { FMT_MD = 0, FMT_JSON, FMT_JSONL, FMT_CSV };
static const char *const fmt_names[] = {"md", "json", "jsonl", "csv"};

typedef struct {
    long long v[LMAX];
    int n;
} ilist;

typedef struct {
    attn_variant var[16];
    int nvar;
    attn_backend be[16];
    int nbe;
    attn_mode mode[16];
    int nmode;
    attn_dtype dt[16];
    int ndt; /* 0: the backend's default (f32 on cpu/ref, bf16 on cuda) */
    dma_mode dmode[16];
    int ndmode;
    int dz[16];
    int ndz;
    nsa_cmp ncmp[16];
    int nncmp;
    ilist n, b, hq, hkv, d, w, causal, threads, nl, nd, nls, nn;
    long long warmup, repeats, check_n, seed;
    double max_mem; /* bytes */
    int format;
    const char *out;
    int resume;
    int quiet;
} kopts;

typedef struct {
    attn_params sh; /* full-size shape and settings; pointers NULL */
    attn_variant v;
    attn_backend b;
    attn_mode m;
    int zsrc;       /* dma only */
    int threads;
    char *key;
    double weight;  /* for the ETA: dense FLOPs of the runs, 0 when the cell cannot run */
} kcell;

/* ---- a small string-keyed hash map (keys and values not owned) ---- */

typedef struct {
    const char **keys;
    void **vals;
    size_t cap, n;
} kmap;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int kmap_grow(kmap *m) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    const char **nk = calloc(nc, sizeof *nk);
    void **nv = calloc(nc, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = fnv1a(m->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = nc;
    return 0;
}

/* Slot of key, or of the empty place where it would go. */
static size_t kmap_slot(const kmap *m, const char *key) {
    size_t j = fnv1a(key) & (m->cap - 1);
    while (m->keys[j] && strcmp(m->keys[j], key)) j = (j + 1) & (m->cap - 1);
    return j;
}

static void **kmap_get(const kmap *m, const char *key) {
    if (!m->cap) return NULL;
    size_t j = kmap_slot(m, key);
    return m->keys[j] ? &m->vals[j] : NULL;
}

/* Inserts or replaces; -1 when out of memory. */
static int kmap_put(kmap *m, const char *key, void *val) {
    if ((m->n + 1) * 2 > m->cap && kmap_grow(m) != 0) return -1;
    size_t j = kmap_slot(m, key);
    if (!m->keys[j]) {
        m->keys[j] = key;
        m->n++;
    }
    m->vals[j] = val;
    return 0;
}

static void kmap_free(kmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- the sweep ---- */

typedef struct {
    char *key;
    verify_result r;
} check_entry;

typedef struct {
    kopts o;
    kcell *cells;
    int ncells;
    kmap cellmap;
    check_entry *checks;
    int nchecks, capchecks;
    kmap checkmap;
    unsigned char *flush_buf;
    unsigned flush_gen;
} sweep;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Writes the scratch buffer so that the operands of the next run are not in cache. */
static void flush_llc(sweep *S) {
    if (!S->flush_buf) {
        S->flush_buf = malloc(FLUSH_BYTES);
        if (!S->flush_buf) return;
    }
    memset(S->flush_buf, (int)(++S->flush_gen & 0xff), FLUSH_BYTES);
    volatile unsigned char sink = S->flush_buf[S->flush_gen % FLUSH_BYTES];
    (void)sink;
}

/* The record's "what ran" part (record_kernel plus threads and dma_z in the settings). */
static cJSON *cell_record(const kcell *c, const char *status) {
    static const float dummy = 0;
    attn_params p = c->sh;
    /* the effective FLOPs count DMA's score GEMV only when z is computed from w_dt */
    if (c->v == ATTN_DMA) {
        if (c->zsrc == ZSRC_WDT) p.w_dt = &dummy;
        else p.z = &dummy;
    }
    cJSON *r = record_kernel(&p, c->v, c->b, c->m, status);
    cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    if (c->v == ATTN_DMA) cJSON_AddStringToObject(st, "dma_z", zsrc_names[c->zsrc]);
    cJSON_AddNumberToObject(st, "threads", c->threads);
    return r;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int jhas_num(const cJSON *o, const char *k) { return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, k)); }

static double jnum(const cJSON *o, const char *k, double def) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : def;
}

/* The stable key of a record: variant|backend|mode|dtype|shape|settings. NULL when
 * the record lacks one of them (a foreign line in a resume file). */
static char *record_key(const cJSON *r) {
    const char *v = jstr(r, "variant"), *b = jstr(r, "backend"), *m = jstr(r, "mode"), *dt = jstr(r, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    if (!v || !b || !m || !dt || !cJSON_IsObject(sh) || !cJSON_IsObject(st)) return NULL;
    char *s1 = cJSON_PrintUnformatted(sh), *s2 = cJSON_PrintUnformatted(st);
    char *key = NULL;
    if (s1 && s2) {
        size_t n = strlen(v) + strlen(b) + strlen(m) + strlen(dt) + strlen(s1) + strlen(s2) + 8;
        key = malloc(n);
        if (key) snprintf(key, n, "%s|%s|%s|%s|%s|%s", v, b, m, dt, s1, s2);
    }
    free(s1);
    free(s2);
    return key;
}

static char *cell_key(const kcell *c) {
    cJSON *r = cell_record(c, "ok");
    char *k = record_key(r);
    cJSON_Delete(r);
    return k;
}

static void fmt_bytes(char *buf, size_t n, double b) {
    if (b >= 1073741824.0) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1048576.0) snprintf(buf, n, "%.1f MiB", b / 1048576.0);
    else snprintf(buf, n, "%.1f KiB", b / 1024.0);
}

/* Bytes of every tensor the case allocates (contiguous), as attn_case_alloc does. */
static double case_bytes(const attn_params *sh, attn_variant v, int wdt, int backward) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    double total = 0;
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (!attn_slot_used(s, v, sh, wdt, wdt)) continue;
        if (!backward && (s->kind == SLOT_GRAD || !strcmp(s->name, "do"))) continue;
        int64_t dims[4];
        int nd = attn_slot_shape(s, sh, v, dims);
        double n = 1;
        for (int k = 0; k < nd; k++) n *= (double)dims[k];
        total += n * (double)attn_dtype_size(attn_slot_dtype(s, sh));
    }
    return total;
}

static int mode_backward(attn_mode m) { return m == ATTN_MODE_BWD || m == ATTN_MODE_FWDBWD; }

__attribute__((format(printf, 3, 4))) static cJSON *set_status(cJSON *rec, const char *status, const char *fmt,
                                                                ...) {
    cJSON_ReplaceItemInObject(rec, "status", cJSON_CreateString(status));
    if (fmt) {
        char why[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        why[strcspn(why, "\n")] = 0;
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "error");
        cJSON_AddStringToObject(rec, "error", why);
    }
    return rec;
}

/* The check of a cell at the small size, run once per distinct
 * {variant, backend, dtype, check shape, settings, direction} and cached. */
static const check_entry *get_check(sweep *S, const attn_op *op, const kcell *c) {
    kcell cc = *c;
    int bwd = mode_backward(c->m);
    int n = c->sh.Nk < S->o.check_n ? c->sh.Nk : (int)S->o.check_n;
    cc.sh.Nk = n;
    cc.sh.Nq = c->m == ATTN_MODE_DECODE ? 1 : n;
    cc.m = bwd ? ATTN_MODE_FWDBWD : ATTN_MODE_FWD;
    char *key = cell_key(&cc);
    if (!key) return NULL;
    void **hit = kmap_get(&S->checkmap, key);
    if (hit) {
        free(key);
        return &S->checks[(intptr_t)*hit];
    }
    if (S->nchecks == S->capchecks) {
        int nc = S->capchecks ? S->capchecks * 2 : 64;
        check_entry *t = realloc(S->checks, (size_t)nc * sizeof *t);
        if (!t) {
            free(key);
            return NULL;
        }
        /* the map holds indices, not pointers, so moving the array is fine */
        S->checks = t;
        S->capchecks = nc;
    }
    check_entry *e = &S->checks[S->nchecks];
    e->key = key;
    verify_opts vo = {0};
    vo.dma_wdt = c->v == ATTN_DMA && c->zsrc == ZSRC_WDT;
    vo.dma_bias = vo.dma_wdt;
    vo.zp = zsrc_pattern(c->zsrc);
    vo.backward = bwd;
    vo.seed = (uint64_t)S->o.seed;
    verify_one(op, &cc.sh, &vo, &e->r);
    if (kmap_put(&S->checkmap, key, (void *)(intptr_t)S->nchecks) != 0) {
        cJSON_Delete(e->r.errors);
        free(key);
        return NULL;
    }
    S->nchecks++;
    return e;
}

static attn_status run_once(const attn_op *op, const attn_params *p, attn_mode m, const char **what) {
    attn_status st;
    switch (m) {
    case ATTN_MODE_BWD:
        *what = "backward";
        return op->backward(p);
    case ATTN_MODE_FWDBWD:
        *what = "forward";
        st = op->forward(p);
        if (st != ATTN_OK) return st;
        *what = "backward";
        return op->backward(p);
    default:
        *what = "forward";
        return op->forward(p);
    }
}

typedef struct {
    const attn_op *op;
    const attn_params *p;
    attn_mode m;
    const char **what;
} timed_call;

static attn_status timed_run(void *arg) {
    timed_call *t = arg;
    return run_once(t->op, t->p, t->m, t->what);
}

/* Allocates, fills and times one cell whose check passed; fills rec. */
static void time_cell(sweep *S, const attn_op *op, const kcell *c, cJSON *rec) {
    int bwd = mode_backward(c->m), wdt = c->v == ATTN_DMA && c->zsrc == ZSRC_WDT;
    double need = case_bytes(&c->sh, c->v, wdt, bwd);
    cJSON_AddNumberToObject(rec, "tensor_bytes", need);
    char nb[32], lb[32];
    fmt_bytes(nb, sizeof nb, need);
    fmt_bytes(lb, sizeof lb, S->o.max_mem);
    if (need > S->o.max_mem) {
        set_status(rec, "oom", "the tensors need %s, over the --max-mem-gb limit of %s", nb, lb);
        return;
    }
    attn_case cs;
    attn_status st = attn_case_alloc(&cs, c->v, &c->sh, wdt, wdt, bwd);
    if (st == ATTN_ERR_OOM) {
        set_status(rec, "oom", "cannot allocate the %s of tensors", nb);
        return;
    }
    if (st != ATTN_OK) {
        set_status(rec, "error", "cannot set up the tensors: %s", attn_status_str(st));
        return;
    }
    attn_case_fill(&cs, (uint64_t)S->o.seed, zsrc_pattern(c->zsrc));
    /* CUDA operators run on a device mirror of the case, timed with CUDA events */
    attn_case dev;
    int on_dev = c->b == ATTN_BACKEND_CUDA;
    attn_params *tp = &cs.p;
    if (on_dev) {
        st = attn_case_to_device(&cs, &dev);
        /* the operator's saved area (what its forward keeps for its backward) counts
         * among the cell's tensors, as the model holds it per layer; only where a
         * backward runs */
        if (st == ATTN_OK && op->saved_bytes && bwd) {
            st = attn_case_saved_device(&dev, op->saved_bytes(&dev.p));
            if (st != ATTN_OK) attn_case_free_device(&dev);
        }
        if (st != ATTN_OK) {
            set_status(rec, st == ATTN_ERR_OOM ? "oom" : "error", "cannot put the tensors on the GPU: %s",
                       st == ATTN_ERR_OOM ? "out of device memory" : dm_cuda_last_error());
            attn_case_free(&cs);
            return;
        }
        tp = &dev.p;
    }
    char why[256] = "";
    int nrep = (int)S->o.repeats;
    double *samples = malloc((size_t)nrep * sizeof *samples), *sorted = malloc((size_t)nrep * sizeof *sorted);
    double *sel = NULL;
    const char *what = "forward";
    int cpu = c->b != ATTN_BACKEND_CUDA;
    if (!samples || !sorted) {
        set_status(rec, "oom", "cannot allocate the timing buffers");
        goto done;
    }
    if (!op->supports(tp, bwd, why, sizeof why)) {
        set_status(rec, "unsupported", "%s", why[0] ? why : "not supported at this size");
        goto done;
    }
    /* bwd times the backward alone: one untimed forward makes o and lse valid */
    /* the high-water mark counts from here: the operator's workspaces (kept between
     * calls) are freed first, so that this cell's warm-up allocates its own */
    if (on_dev) dm_cuda_ws_release_all();
    size_t cur0 = on_dev ? dm_cuda_mem_current() : attn_mem_current();
    if (on_dev) dm_cuda_mem_reset_peak();
    else attn_mem_reset_peak();
    if (c->m == ATTN_MODE_BWD && (st = op->forward(tp)) != ATTN_OK) {
        set_status(rec, "error", "forward (before the timed backward) failed: %s", attn_status_str(st));
        goto done;
    }
    for (int i = 0; i < S->o.warmup; i++)
        if ((st = run_once(op, tp, c->m, &what)) != ATTN_OK) {
            set_status(rec, "error", "%s failed in warm-up: %s", what, attn_status_str(st));
            goto done;
        }
    /* variants that choose keys report that part of the time on their own */
    attn_stats stats = {0};
    sel = malloc((size_t)nrep * sizeof *sel);
    int have_sel = 0;
    tp->stats = &stats;
    for (int i = 0; i < nrep; i++) {
        if (cpu) flush_llc(S);
        else if (dm_cuda_flush_l2() != ATTN_OK) {
            set_status(rec, "error", "cannot flush the L2 cache: %s", dm_cuda_last_error());
            goto done;
        }
        stats.select_ms = 0;
        if (on_dev) {
            timed_call tc = {op, tp, c->m, &what};
            attn_status tst = dm_cuda_time(timed_run, &tc, &samples[i]);
            /* the operator's spans, read after the timed call (which did not wait for them) */
            attn_status sst = dm_cuda_stats_settle(&stats);
            st = tst != ATTN_OK ? tst : sst;
        } else {
            double t0 = now_ms();
            st = run_once(op, tp, c->m, &what);
            samples[i] = now_ms() - t0;
        }
        if (sel) sel[i] = stats.select_ms;
        if (stats.select_ms > 0) have_sel++;
        if (st != ATTN_OK) {
            set_status(rec, "error", "%s failed: %s", what, attn_status_str(st));
            goto done;
        }
    }
    size_t pk = on_dev ? dm_cuda_mem_peak() : attn_mem_peak();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    memcpy(sorted, samples, (size_t)nrep * sizeof *sorted);
    report_sort(sorted, nrep);
    double med = report_percentile(sorted, nrep, 0.5);
    cJSON *t = cJSON_AddObjectToObject(rec, "time_ms");
    cJSON_AddNumberToObject(t, "median", med);
    cJSON_AddNumberToObject(t, "p5", report_percentile(sorted, nrep, 0.05));
    cJSON_AddNumberToObject(t, "p95", report_percentile(sorted, nrep, 0.95));
    cJSON_AddItemToObject(t, "samples", cJSON_CreateDoubleArray(samples, nrep));
    double sec = med > 0 ? med * 1e-3 : 1e-9;
    cJSON_AddNumberToObject(rec, "gflops_dense", jnum(rec, "flops_dense", 0) / sec / 1e9);
    cJSON_AddNumberToObject(rec, "gflops_effective", jnum(rec, "flops_effective", 0) / sec / 1e9);
    cJSON_AddNumberToObject(rec, "gbps", jnum(rec, "bytes", 0) / sec / 1e9);
    /* the operator's memory: its workspaces' high-water mark over the tensors, plus
     * the saved area its forward keeps for its backward (allocated with the tensors) */
    size_t saved_b = on_dev && dev.saved ? op->saved_bytes(tp) : 0;
    cJSON_AddNumberToObject(rec, "peak_mem_bytes", (double)((pk > cur0 ? pk - cur0 : 0) + saved_b));
    if (saved_b) cJSON_AddNumberToObject(rec, "saved_bytes", (double)saved_b);
    cJSON_AddNumberToObject(rec, "rss_peak_bytes", (double)ru.ru_maxrss * 1024.0);
    if (on_dev) {
        size_t fr = 0, tot = 0;
        if (dm_cuda_mem_info(&fr, &tot) == ATTN_OK) {
            cJSON_AddNumberToObject(rec, "device_mem_free_bytes", (double)fr);
            cJSON_AddNumberToObject(rec, "device_mem_total_bytes", (double)tot);
        }
    }
    if (sel && have_sel == nrep) {
        report_sort(sel, nrep);
        cJSON *so = cJSON_AddObjectToObject(rec, "select_ms");
        cJSON_AddNumberToObject(so, "median", report_percentile(sel, nrep, 0.5));
    }
    set_status(rec, "ok", NULL);
done:
    free(sel);
    free(samples);
    free(sorted);
    if (on_dev) attn_case_free_device(&dev);
    attn_case_free(&cs);
}

/* Runs one cell: never fails hard; the outcome is in the record's status. */
static cJSON *run_cell(sweep *S, const kcell *c) {
    cJSON *rec = cell_record(c, "ok");
    cJSON_AddNumberToObject(rec, "warmup", (double)S->o.warmup);
    cJSON_AddNumberToObject(rec, "repeats", (double)S->o.repeats);
    cJSON_AddNumberToObject(rec, "seed", (double)S->o.seed);
    if (c->sh.Hq % c->sh.Hkv != 0)
        return set_status(rec, "unsupported", "Hq=%d is not a multiple of Hkv=%d", c->sh.Hq, c->sh.Hkv);
    const attn_op *op = attn_registry_find(c->v, c->b);
    if (!op)
        return set_status(rec, "unsupported", "backend %s of %s is not built into this binary",
                          attn_backend_name(c->b), attn_variant_name(c->v));
    omp_set_num_threads(c->threads);

    if (S->o.check_n > 0) {
        const check_entry *e = get_check(S, op, c);
        if (!e) return set_status(rec, "error", "out of memory setting up the check");
        const verify_result *r = &e->r;
        cJSON *cs = cJSON_AddObjectToObject(rec, "check_shape");
        int n = c->sh.Nk < S->o.check_n ? c->sh.Nk : (int)S->o.check_n;
        cJSON_AddNumberToObject(cs, "Nq", c->m == ATTN_MODE_DECODE ? 1 : n);
        cJSON_AddNumberToObject(cs, "Nk", n);
        if (r->status == ATTN_ERR_UNSUPPORTED) {
            cJSON_AddStringToObject(rec, "check", "unsupported");
            return set_status(rec, "unsupported", "%s", r->why[0] ? r->why : "not supported");
        }
        if (r->status == ATTN_ERR_OOM) {
            cJSON_AddStringToObject(rec, "check", "FAIL");
            return set_status(rec, "oom", "check: %s", r->why);
        }
        if (r->status != ATTN_OK) {
            cJSON_AddStringToObject(rec, "check", "FAIL");
            return set_status(rec, "error", "check: %s", r->why[0] ? r->why : attn_status_str(r->status));
        }
        double ma = fmax(r->fwd_abs, r->bwd_abs), mr = fmax(r->fwd_rel, r->bwd_rel);
        cJSON_AddNumberToObject(rec, "max_abs_err", isfinite(ma) ? ma : 1e308);
        cJSON_AddNumberToObject(rec, "max_rel_err", isfinite(mr) ? mr : 1e308);
        cJSON_AddNumberToObject(rec, "tolerance_rel", r->tol);
        if (r->errors) cJSON_AddItemToObject(rec, "check_errors", cJSON_Duplicate(r->errors, 1));
        cJSON_AddStringToObject(rec, "check", r->pass ? "pass" : "FAIL");
        if (!r->pass)
            return set_status(rec, "error", "check failed: max rel err %.2e over the tolerance %.0e at Nq=%d Nk=%d",
                              mr, r->tol, c->m == ATTN_MODE_DECODE ? 1 : n, n);
    } else {
        cJSON_AddStringToObject(rec, "check", "skipped");
    }
    time_cell(S, op, c, rec);
    return rec;
}

/* ---- output ---- */

static void fmt_ms(char *buf, size_t n, double ms) {
    if (ms >= 100) snprintf(buf, n, "%.1f", ms);
    else if (ms >= 1) snprintf(buf, n, "%.2f", ms);
    else snprintf(buf, n, "%.4f", ms);
}

static void fmt_dur(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%lds", t);
    else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

/* Free text for a table cell or a CSV field: no separators, quotes or newlines. */
static void clean_text(char *dst, size_t n, const char *s, int csv) {
    size_t k = 0;
    for (; s && *s && k + 1 < n; s++) {
        char ch = *s;
        if (ch == '\n' || ch == '\r') ch = ' ';
        if (csv && ch == ',') ch = ';';
        if (csv && ch == '"') ch = '\'';
        if (!csv && ch == '|') ch = '/';
        dst[k++] = ch;
    }
    dst[k] = 0;
}

static int g_default_threads; /* threads when --threads is not given: not shown in labels */

/* The settings that differ from the defaults, for labels: " noncausal", dma's
 * " z=wdt linear", nsa's " l=8 d=4 l'=8 n=3 mean", " t=4". Empty when all default. */
static void settings_suffix(const cJSON *r, char *buf, size_t n) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    const char *v = jstr(r, "variant");
    size_t k = 0;
    buf[0] = 0;
#define ADD(...) (k += (size_t)snprintf(buf + k, k < n ? n - k : 0, __VA_ARGS__), k = k < n ? k : n - 1)
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(st, "causal"))) ADD(" noncausal");
    if (v && !strcmp(v, "dma")) {
        const char *z = jstr(st, "dma_z"), *m = jstr(st, "dma_mode");
        if (z && strcmp(z, "random")) ADD(" z=%s", z);
        if (m && strcmp(m, "exp")) ADD(" %s", m);
    }
    if (v && !strcmp(v, "nsa")) {
        const char *c = jstr(st, "nsa_cmp");
        double l = jnum(st, "nsa_l", 0), d = jnum(st, "nsa_d", 0), ls = jnum(st, "nsa_ls", 0), nn = jnum(st, "nsa_n", 0);
        if (l != 32 || d != 16 || ls != 64 || nn != 16) ADD(" l=%.0f d=%.0f l'=%.0f n=%.0f", l, d, ls, nn);
        if (c && strcmp(c, "linear")) ADD(" %s", c);
    }
    if (jhas_num(st, "threads") && jnum(st, "threads", 0) != g_default_threads) ADD(" t=%.0f", jnum(st, "threads", 0));
#undef ADD
}

/* One line naming a cell, for the progress lines. */
static void record_label(const cJSON *r, char *buf, size_t n) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    char w[32] = "", suf[160];
    if (jhas_num(st, "w")) snprintf(w, sizeof w, " w=%.0f", jnum(st, "w", 0));
    settings_suffix(r, suf, sizeof suf);
    snprintf(buf, n, "%s %s %s %s B=%.0f N=%.0f H=%.0f/%.0f D=%.0f%s%s", jstr(r, "variant"), jstr(r, "backend"),
             jstr(r, "mode"), jstr(r, "dtype"), jnum(sh, "B", 0), jnum(sh, "Nk", 0), jnum(sh, "Hq", 0),
             jnum(sh, "Hkv", 0), jnum(sh, "D", 0), w, suf);
}

static void print_md_header(void) {
    printf("| variant | backend | mode | B | N | Hq/Hkv | D | w | dtype | median ms | p5-p95 | "
           "GFLOP/s (dense/effective) | peak MB | err | status |\n");
    printf("|---|---|---|---:|---:|---|---:|---:|---|---:|---|---|---:|---:|---|\n");
}

static void print_md_row(const cJSON *r) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "time_ms");
    char w[32] = "-", med[32] = "-", rng[64] = "-", gf[64] = "-", pk[32] = "-", err[32] = "-", status[600];
    if (jhas_num(st, "w")) snprintf(w, sizeof w, "%.0f", jnum(st, "w", 0));
    if (cJSON_IsObject(t)) {
        char a[32], b[32];
        fmt_ms(med, sizeof med, jnum(t, "median", 0));
        fmt_ms(a, sizeof a, jnum(t, "p5", 0));
        fmt_ms(b, sizeof b, jnum(t, "p95", 0));
        snprintf(rng, sizeof rng, "%s-%s", a, b);
        snprintf(gf, sizeof gf, "%.1f / %.1f", jnum(r, "gflops_dense", 0), jnum(r, "gflops_effective", 0));
    }
    if (jhas_num(r, "peak_mem_bytes")) snprintf(pk, sizeof pk, "%.1f", jnum(r, "peak_mem_bytes", 0) / 1048576.0);
    if (jhas_num(r, "max_rel_err")) snprintf(err, sizeof err, "%.1e", jnum(r, "max_rel_err", 0));
    const char *s = jstr(r, "status"), *e = jstr(r, "error");
    char ce[512];
    clean_text(ce, sizeof ce, e, 0);
    snprintf(status, sizeof status, "%s%s%s", s ? s : "?", e ? ": " : "", e ? ce : "");
    char suf[160];
    settings_suffix(r, suf, sizeof suf);
    printf("| %s%s | %s | %s | %.0f | %.0f | %.0f/%.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
           jstr(r, "variant"), suf, jstr(r, "backend"), jstr(r, "mode"), jnum(sh, "B", 0), jnum(sh, "Nk", 0),
           jnum(sh, "Hq", 0), jnum(sh, "Hkv", 0), jnum(sh, "D", 0), w, jstr(r, "dtype"), med, rng, gf, pk, err,
           status);
}

static const char *const csv_cols[] = {
    "variant", "backend", "mode", "dtype", "B", "Nq", "Nk", "Hq", "Hkv", "D", "causal", "scale", "w", "dma_mode",
    "dma_z", "nsa_l", "nsa_d", "nsa_ls", "nsa_n", "nsa_cmp", "threads", "status", "check", "median_ms", "p5_ms",
    "p95_ms", "gflops_dense", "gflops_effective", "gbps", "flops_dense", "flops_effective", "bytes",
    "peak_mem_bytes", "rss_peak_bytes", "tensor_bytes", "max_abs_err", "max_rel_err", "error"};
#define NCSV (int)(sizeof csv_cols / sizeof *csv_cols)

static void print_csv_header(void) {
    for (int i = 0; i < NCSV; i++) printf("%s%s", i ? "," : "", csv_cols[i]);
    printf("\n");
}

static void csv_value(const cJSON *x) {
    if (cJSON_IsNumber(x)) {
        double v = x->valuedouble;
        if (v == floor(v) && fabs(v) < 1e15) printf("%.0f", v);
        else printf("%.6g", v);
    } else if (cJSON_IsBool(x)) {
        printf("%d", cJSON_IsTrue(x) ? 1 : 0);
    } else if (cJSON_IsString(x)) {
        char buf[600];
        clean_text(buf, sizeof buf, x->valuestring, 1);
        printf("%s", buf);
    }
}

static void print_csv_row(const cJSON *r) {
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "settings");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "time_ms");
    for (int i = 0; i < NCSV; i++) {
        const char *c = csv_cols[i];
        if (i) printf(",");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, c);
        if (!x) x = cJSON_GetObjectItemCaseSensitive(sh, c);
        if (!x) x = cJSON_GetObjectItemCaseSensitive(st, c);
        if (!x && !strcmp(c, "median_ms")) x = cJSON_GetObjectItemCaseSensitive(t, "median");
        if (!x && !strcmp(c, "p5_ms")) x = cJSON_GetObjectItemCaseSensitive(t, "p5");
        if (!x && !strcmp(c, "p95_ms")) x = cJSON_GetObjectItemCaseSensitive(t, "p95");
        csv_value(x);
    }
    printf("\n");
}

static void print_jsonl_row(const cJSON *r) {
    char *s = cJSON_PrintUnformatted(r);
    if (s) printf("%s\n", s);
    free(s);
}

/* ---- options ---- */

static void usage(void) {
    printf("usage: dmabench kernels [options]\n"
           "\n"
           "Speed and memory of every variant over a sweep of shapes, llama-bench style:\n"
           "every option takes a comma list and the cells are their cross product. Each\n"
           "cell is checked against the double-precision reference at a small size, then\n"
           "timed. Prints a table (or csv/json/jsonl); with --out also writes a JSON report\n"
           "and streams records to OUT.jsonl.\n"
           "\n"
           "what to run:\n"
           "  --variants LIST  mha,swa,dma,nsa (default: all)\n"
           "  --backend LIST   cpu,cuda,ref (default cpu)\n"
           "  --mode LIST      fwd,bwd,fwdbwd,decode (default fwd); decode has Nq = 1, Nk = N\n"
           "  --dtype LIST     f32,bf16,f16 (default f32 on cpu and ref, bf16 on cuda)\n"
           "shapes (integer lists: 1,2,4  1024-65536*2  16-64+16):\n"
           "  --n LIST         sequence length N, Nq = Nk = N (default 1024,2048,4096)\n"
           "  --b LIST         batch (default 1)\n"
           "  --hq LIST        query heads (default 8)\n"
           "  --hkv LIST       kv heads (default 2); Hq must be a multiple of Hkv\n"
           "  --d LIST         head dim, 1..%d (default 64)\n"
           "  --causal LIST    0,1 (default 1; swa and nsa are causal only)\n"
           "settings (each multiplies only the cells of the variants that use it):\n"
           "  --w LIST         window of swa, dma, nsa (default 1024; mha ignores it)\n"
           "  --dma-mode LIST  exp,linear (default exp)\n"
           "  --dma-z LIST     random,clustered,rising,wdt (default random): z given i.i.d.\n"
           "                   normal, in clustered runs, growing with the key index, or z\n"
           "                   computed from w_dt in the op\n"
           "  --nsa-l LIST --nsa-d LIST --nsa-ls LIST --nsa-n LIST\n"
           "                   NSA block sizes (default 32, 16, 64, 16)\n"
           "  --nsa-cmp LIST   linear,mean (default linear)\n"
           "  --threads LIST   OpenMP threads; 0 = all cores (default: all, %d here)\n"
           "timing:\n"
           "  --warmup N       untimed runs per cell (default 1)\n"
           "  --repeats N      timed runs per cell (default 5)\n"
           "  --check-n N      size of the correctness check, Nk = min(N, this); 0 skips it\n"
           "                   (default 256)\n"
           "  --max-mem-gb X   cells whose tensors need more than X GiB are recorded as oom\n"
           "                   without allocating (default: 80%% of physical memory)\n"
           "  --seed N         random seed of the inputs (default 1)\n"
           "output:\n"
           "  --format F       md|csv|json|jsonl on stdout (default md); progress on stderr\n"
           "  --out FILE       also write the JSON report to FILE (atomically, at the end) and\n"
           "                   stream each finished cell to FILE.jsonl\n"
           "  --resume         keep FILE.jsonl and skip the cells already in it (needs --out)\n"
           "  --quiet          no table and no progress lines: only the summary (and errors)\n"
           "\n"
           "Exit status: 0 when at least one cell was measured and none failed; 1 when a\n"
           "cell failed its check or ended in error, when no cell could be measured\n"
           "(every one unsupported or oom), or when an output file cannot be written;\n"
           "2 bad usage (an unknown name, a bad list, Hq not a multiple of Hkv, D out of\n"
           "range).\n",
           ATTN_MAX_D, omp_get_max_threads());
}

/* Parses a comma list of names into indices; -1 with a message on an unknown one. */
static int parse_names(cli_args *a, const char *opt, const char *what, const char *s, const char *const *names,
                       int nn, int *out, const char *known) {
    int commas = 0;
    for (const char *p = s; *p; p++) commas += *p == ',';
    if (commas >= 16) {
        snprintf(a->err, sizeof a->err, "kernels: %s has more than 16 items", opt);
        return -1;
    }
    char *items[16];
    int ni = cli_list(s, items, 16), n = 0;
    for (int i = 0; i < ni; i++) {
        int k = -1;
        for (int j = 0; j < nn; j++)
            if (!strcmp(items[i], names[j])) k = j;
        if (k < 0) {
            snprintf(a->err, sizeof a->err, "kernels: %s: unknown %s '%s' (known: %s)", opt, what, items[i],
                     known);
            cli_list_free(items, ni);
            return -1;
        }
        out[n++] = k;
    }
    cli_list_free(items, ni);
    if (n == 0) {
        snprintf(a->err, sizeof a->err, "kernels: %s is empty", opt);
        return -1;
    }
    return n;
}

static int parse_ints(cli_args *a, const char *opt, const char *def, long long lo, long long hi, ilist *l) {
    const char *s = cli_str(a, opt, def);
    char err[200];
    int n = cli_int_list(s, l->v, LMAX, err, sizeof err);
    if (n < 0) {
        snprintf(a->err, sizeof a->err, "kernels: %s: %s", opt, err);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (l->v[i] < lo || l->v[i] > hi) {
            snprintf(a->err, sizeof a->err, "kernels: %s values must be in %lld..%lld, got %lld", opt, lo, hi,
                     l->v[i]);
            return -1;
        }
    l->n = n;
    return 0;
}

static int parse_opts(cli_args *a, kopts *o) {
    static const char *const vnames[] = {"mha", "swa", "dma", "nsa"};
    static const char *const bnames[] = {"ref", "cpu", "cuda"};
    static const char *const mnames[] = {"fwd", "bwd", "fwdbwd", "decode"};
    static const char *const dnames[] = {"f32", "f16", "bf16"};
    static const char *const dmnames[] = {"exp", "linear"};
    static const char *const ncnames[] = {"linear", "mean"};
    int tmp[16], n;
    memset(o, 0, sizeof *o);

    const char *vs = cli_str2(a, "--variants", "--variant", "mha,swa,dma,nsa");
    if ((n = parse_names(a, "--variants", "variant", vs, vnames, 4, tmp, "mha, swa, dma, nsa")) < 0) return -1;
    for (int i = 0; i < n; i++) o->var[i] = (attn_variant)tmp[i];
    o->nvar = n;
    if ((n = parse_names(a, "--backend", "backend", cli_str(a, "--backend", "cpu"), bnames, 3, tmp, "cpu, cuda, ref")) < 0)
        return -1;
    for (int i = 0; i < n; i++) o->be[i] = (attn_backend)tmp[i];
    o->nbe = n;
    if ((n = parse_names(a, "--mode", "mode", cli_str(a, "--mode", "fwd"), mnames, 4, tmp, "fwd, bwd, fwdbwd, decode")) < 0)
        return -1;
    for (int i = 0; i < n; i++) o->mode[i] = (attn_mode)tmp[i];
    o->nmode = n;
    const char *dts = cli_str(a, "--dtype", NULL);
    if (dts) {
        if ((n = parse_names(a, "--dtype", "dtype", dts, dnames, 3, tmp, "f32, bf16, f16")) < 0) return -1;
        for (int i = 0; i < n; i++) o->dt[i] = (attn_dtype)tmp[i]; /* f32, f16, bf16 = enum order */
        o->ndt = n;
    }
    if ((n = parse_names(a, "--dma-mode", "dma mode", cli_str(a, "--dma-mode", "exp"), dmnames, 2, tmp, "exp, linear")) < 0)
        return -1;
    for (int i = 0; i < n; i++) o->dmode[i] = tmp[i] ? DMA_MODE_LINEAR : DMA_MODE_EXP;
    o->ndmode = n;
    if ((n = parse_names(a, "--dma-z", "z source", cli_str(a, "--dma-z", "random"), zsrc_names, ZSRC_N, o->dz,
                         "random, clustered, rising, wdt")) < 0)
        return -1;
    o->ndz = n;
    if ((n = parse_names(a, "--nsa-cmp", "compression", cli_str(a, "--nsa-cmp", "linear"), ncnames, 2, tmp, "linear, mean")) < 0)
        return -1;
    for (int i = 0; i < n; i++) o->ncmp[i] = tmp[i] ? NSA_CMP_MEAN : NSA_CMP_LINEAR;
    o->nncmp = n;
    if ((n = parse_names(a, "--format", "format", cli_str(a, "--format", "md"), fmt_names, 4, tmp, "md, csv, json, jsonl")) <
        0)
        return -1;
    if (n != 1) {
        snprintf(a->err, sizeof a->err, "kernels: --format takes one value");
        return -1;
    }
    o->format = tmp[0];

    const long long big = 1LL << 30;
    if (parse_ints(a, "--n", "1024,2048,4096", 1, big, &o->n) || parse_ints(a, "--b", "1", 1, big, &o->b) ||
        parse_ints(a, "--hq", "8", 1, 1 << 20, &o->hq) || parse_ints(a, "--hkv", "2", 1, 1 << 20, &o->hkv) ||
        parse_ints(a, "--d", "64", 1, ATTN_MAX_D, &o->d) || parse_ints(a, "--w", "1024", 1, big, &o->w) ||
        parse_ints(a, "--causal", "1", 0, 1, &o->causal) || parse_ints(a, "--threads", "0", 0, 4096, &o->threads) ||
        parse_ints(a, "--nsa-l", "32", 1, big, &o->nl) || parse_ints(a, "--nsa-d", "16", 1, big, &o->nd) ||
        parse_ints(a, "--nsa-ls", "64", 1, big, &o->nls) || parse_ints(a, "--nsa-n", "16", 1, big, &o->nn))
        return -1;
    /* 0 threads: every core, as in train and run */
    for (int i = 0; i < o->threads.n; i++)
        if (o->threads.v[i] == 0) o->threads.v[i] = omp_get_max_threads();
    /* query heads are shared by groups of Hkv: a sweep in which no pair can run is a mistake
     * (pairs that cannot run among others that can are recorded as unsupported) */
    int pairs = 0;
    for (int i = 0; i < o->hq.n; i++)
        for (int j = 0; j < o->hkv.n; j++) pairs += o->hq.v[i] % o->hkv.v[j] == 0;
    if (!pairs) {
        if (o->hq.n == 1 && o->hkv.n == 1)
            snprintf(a->err, sizeof a->err, "kernels: --hq %lld is not a multiple of --hkv %lld", o->hq.v[0],
                     o->hkv.v[0]);
        else
            snprintf(a->err, sizeof a->err, "kernels: no --hq value is a multiple of an --hkv value");
        return -1;
    }
    if (cli_int(a, "--warmup", 1, 0, 1000000, &o->warmup) || cli_int(a, "--repeats", 5, 1, 1000000, &o->repeats) ||
        cli_int(a, "--check-n", 256, 0, big, &o->check_n) ||
        cli_int(a, "--seed", 1, 0, (long long)1 << 52, &o->seed))
        return -1;
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
    double gb;
    if (cli_real(a, "--max-mem-gb", phys > 0 ? 0.8 * phys / 1073741824.0 : 1e6, &gb)) return -1;
    if (!(gb > 0) || !isfinite(gb)) {
        snprintf(a->err, sizeof a->err, "kernels: --max-mem-gb must be a positive number");
        return -1;
    }
    o->max_mem = gb * 1073741824.0;
    o->out = cli_str(a, "--out", NULL);
    o->resume = cli_flag(a, "--resume");
    o->quiet = cli_flag(a, "--quiet");
    if (o->out && !o->out[0]) {
        snprintf(a->err, sizeof a->err, "kernels: --out needs a file name");
        return -1;
    }
    if (o->resume && !o->out) {
        snprintf(a->err, sizeof a->err, "kernels: --resume needs --out (the cells done are read from OUT.jsonl)");
        return -1;
    }
    return 0;
}

/* ---- the cells: an odometer over the lists, innermost N ---- */

enum {
    DIM_BACKEND, DIM_VARIANT, DIM_MODE, DIM_DTYPE, DIM_THREADS, DIM_B, DIM_HQ, DIM_HKV, DIM_D, DIM_CAUSAL, DIM_W,
    DIM_DMAMODE, DIM_DMAZ, DIM_NSAL, DIM_NSAD, DIM_NSALS, DIM_NSAN, DIM_NSACMP, DIM_N, NDIM
};

/* Values along dimension d given the outer indices (d depends only on dims < d). */
static int dim_count(const kopts *o, int d, const int *idx) {
    attn_variant v = o->var[idx[DIM_VARIANT]];
    switch (d) {
    case DIM_BACKEND: return o->nbe;
    case DIM_VARIANT: return o->nvar;
    case DIM_MODE: return o->nmode;
    case DIM_DTYPE: return o->ndt ? o->ndt : 1;
    case DIM_THREADS: return o->threads.n;
    case DIM_B: return o->b.n;
    case DIM_HQ: return o->hq.n;
    case DIM_HKV: return o->hkv.n;
    case DIM_D: return o->d.n;
    case DIM_CAUSAL: return o->causal.n;
    case DIM_W: return v == ATTN_MHA ? 1 : o->w.n;
    case DIM_DMAMODE: return v == ATTN_DMA ? o->ndmode : 1;
    case DIM_DMAZ: return v == ATTN_DMA ? o->ndz : 1;
    case DIM_NSAL: return v == ATTN_NSA ? o->nl.n : 1;
    case DIM_NSAD: return v == ATTN_NSA ? o->nd.n : 1;
    case DIM_NSALS: return v == ATTN_NSA ? o->nls.n : 1;
    case DIM_NSAN: return v == ATTN_NSA ? o->nn.n : 1;
    case DIM_NSACMP: return v == ATTN_NSA ? o->nncmp : 1;
    case DIM_N: return o->n.n;
    }
    return 1;
}

static void cell_at(const kopts *o, const int *idx, kcell *c) {
    memset(c, 0, sizeof *c);
    c->b = o->be[idx[DIM_BACKEND]];
    c->v = o->var[idx[DIM_VARIANT]];
    c->m = o->mode[idx[DIM_MODE]];
    attn_dtype dt = o->ndt ? o->dt[idx[DIM_DTYPE]] : c->b == ATTN_BACKEND_CUDA ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
    c->threads = (int)o->threads.v[idx[DIM_THREADS]];
    int N = (int)o->n.v[idx[DIM_N]];
    attn_params_init(&c->sh, (int)o->b.v[idx[DIM_B]], c->m == ATTN_MODE_DECODE ? 1 : N, N,
                     (int)o->hq.v[idx[DIM_HQ]], (int)o->hkv.v[idx[DIM_HKV]], (int)o->d.v[idx[DIM_D]], dt,
                     (int)o->causal.v[idx[DIM_CAUSAL]]);
    if (c->v != ATTN_MHA) c->sh.w = (int)o->w.v[idx[DIM_W]];
    if (c->v == ATTN_DMA) {
        c->sh.dma_mode = o->dmode[idx[DIM_DMAMODE]];
        c->zsrc = o->dz[idx[DIM_DMAZ]];
    }
    if (c->v == ATTN_NSA) {
        c->sh.nsa_l = (int)o->nl.v[idx[DIM_NSAL]];
        c->sh.nsa_d = (int)o->nd.v[idx[DIM_NSAD]];
        c->sh.nsa_ls = (int)o->nls.v[idx[DIM_NSALS]];
        c->sh.nsa_n = (int)o->nn.v[idx[DIM_NSAN]];
        c->sh.nsa_cmp = o->ncmp[idx[DIM_NSACMP]];
    }
    int runnable = c->sh.Hq % c->sh.Hkv == 0 && attn_registry_find(c->v, c->b);
    double runs = (double)o->warmup + (double)o->repeats + (c->m == ATTN_MODE_BWD);
    c->weight = runnable ? attn_flops_dense(&c->sh, c->m) * runs : 0;
}

/* Builds the deduplicated cell list; -1 with a message in a->err. */
static int make_cells(sweep *S, cli_args *a) {
    int idx[NDIM] = {0}, cap = 0;
    for (;;) {
        kcell c;
        cell_at(&S->o, idx, &c);
        c.key = cell_key(&c);
        if (!c.key) goto oom;
        if (kmap_get(&S->cellmap, c.key)) {
            free(c.key);
        } else {
            if (S->ncells >= MAX_CELLS) {
                free(c.key);
                snprintf(a->err, sizeof a->err, "kernels: the sweep has more than %d cells", MAX_CELLS);
                return -1;
            }
            if (S->ncells == cap) {
                cap = cap ? cap * 2 : 64;
                kcell *t = realloc(S->cells, (size_t)cap * sizeof *t);
                if (!t) {
                    free(c.key);
                    goto oom;
                }
                S->cells = t;
            }
            S->cells[S->ncells] = c;
            if (kmap_put(&S->cellmap, c.key, NULL) != 0) goto oom;
            S->ncells++;
        }
        int d = NDIM - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < dim_count(&S->o, d, idx)) break;
            idx[d] = 0;
        }
        if (d < 0) break;
    }
    return 0;
oom:
    snprintf(a->err, sizeof a->err, "kernels: out of memory listing the cells");
    return -1;
}

/* Reads OUT.jsonl for --resume: every record that parses and has a key goes into
 * *done (key -> record; records owned by *arr, keys by *keys). Rewrites the file
 * with only those lines, so that a line cut short by an interruption is dropped. */
static int load_resume(const char *path, cJSON **arr, kmap *done, char ***keys, int *nkeys, int *nbad, char *err,
                       size_t err_len) {
    *arr = cJSON_CreateArray();
    *keys = NULL;
    *nkeys = 0;
    *nbad = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, capk = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        cJSON *r = cJSON_Parse(line);
        char *k = r ? record_key(r) : NULL;
        if (!k) {
            cJSON_Delete(r);
            (*nbad)++;
            continue;
        }
        if ((size_t)*nkeys == capk) {
            capk = capk ? capk * 2 : 64;
            char **t = realloc(*keys, capk * sizeof *t);
            if (!t) {
                free(k);
                cJSON_Delete(r);
                break;
            }
            *keys = t;
        }
        (*keys)[(*nkeys)++] = k;
        cJSON_AddItemToArray(*arr, r);
        kmap_put(done, k, r);
    }
    free(line);
    fclose(f);
    /* rewrite with the good lines */
    size_t tot = 0, used = 0;
    char **lines = calloc((size_t)cJSON_GetArraySize(*arr) + 1, sizeof *lines);
    int nl = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, *arr) {
        lines[nl] = cJSON_PrintUnformatted(r);
        if (lines[nl]) tot += strlen(lines[nl]) + 1;
        nl++;
    }
    char *buf = malloc(tot + 1);
    if (!buf) {
        for (int i = 0; i < nl; i++) free(lines[i]);
        free(lines);
        snprintf(err, err_len, "out of memory reading %s", path);
        return -1;
    }
    for (int i = 0; i < nl; i++) {
        if (!lines[i]) continue;
        size_t l = strlen(lines[i]);
        memcpy(buf + used, lines[i], l);
        buf[used + l] = '\n';
        used += l + 1;
        free(lines[i]);
    }
    free(lines);
    int rc = write_file_atomic(path, buf, used, err, err_len);
    free(buf);
    return rc;
}

/* The ETA: seconds per cell fitted as a + b * FLOPs (least squares over the cells
 * run so far), so that fixed costs (the check, cache flushes, allocation) and the
 * work itself are both extrapolated. */
typedef struct {
    double n, sx, sy, sxx, sxy;
} eta_fit;

static void eta_add(eta_fit *f, double x, double y) {
    x *= 1e-9; /* GFLOP: keeps the sums well scaled */
    f->n += 1, f->sx += x, f->sy += y, f->sxx += x * x, f->sxy += x * y;
}

static double eta_predict(const eta_fit *f, int ncells, double flops) {
    double a = f->sy / f->n, b = 0, det = f->n * f->sxx - f->sx * f->sx;
    if (f->n >= 2 && det > 1e-12 * f->n * f->sxx) {
        b = (f->n * f->sxy - f->sx * f->sy) / det;
        a = (f->sy - b * f->sx) / f->n;
        if (b < 0) b = 0, a = f->sy / f->n;
        if (a < 0) a = 0, b = f->sxy / f->sxx;
    }
    return a * ncells + b * flops * 1e-9;
}

int cmd_kernels(int argc, char **argv) {
    cli_args a;
    sweep S;
    memset(&S, 0, sizeof S);
    g_default_threads = omp_get_max_threads();
    if (cli_parse(&a, "kernels", argc, argv, 2, "--help -h --resume --quiet") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    if (parse_opts(&a, &S.o) != 0 || cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (make_cells(&S, &a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        for (int i = 0; i < S.ncells; i++) free(S.cells[i].key);
        free(S.cells);
        kmap_free(&S.cellmap);
        return 2;
    }
    const kopts *o = &S.o;
    int rc = 0;
    char err[512];
    char *jsonl = NULL;
    cJSON *resumed_arr = NULL;
    kmap done = {0};
    char **rkeys = NULL;
    int nrkeys = 0;
    if (o->out) {
        size_t n = strlen(o->out) + 8;
        jsonl = malloc(n);
        if (!jsonl) {
            fprintf(stderr, "dmabench kernels: out of memory\n");
            rc = 2;
            goto cleanup;
        }
        snprintf(jsonl, n, "%s.jsonl", o->out);
        if (o->resume) {
            int nbad;
            if (load_resume(jsonl, &resumed_arr, &done, &rkeys, &nrkeys, &nbad, err, sizeof err) != 0) {
                fprintf(stderr, "dmabench kernels: %s\n", err);
                rc = 1;
                goto cleanup;
            }
            if (nbad)
                fprintf(stderr, "dmabench kernels: dropped %d unreadable line%s of %s\n", nbad, nbad == 1 ? "" : "s",
                        jsonl);
        } else {
            FILE *f = fopen(jsonl, "w");
            if (!f || fclose(f) != 0) {
                fprintf(stderr, "dmabench kernels: cannot write '%s': %s\n", jsonl, strerror(errno));
                rc = 1;
                goto cleanup;
            }
        }
    }
    int nresume = 0, left_n = 0;
    double left_w = 0;
    for (int i = 0; i < S.ncells; i++) {
        if (kmap_get(&done, S.cells[i].key)) {
            nresume++;
            S.cells[i].weight = 0;
        }
        if (S.cells[i].weight > 0) {
            left_w += S.cells[i].weight;
            left_n++;
        }
    }
    if (o->resume && !o->quiet)
        fprintf(stderr, "kernels: resumed %d cell%s from %s, %d to run\n", nresume, nresume == 1 ? "" : "s", jsonl,
                S.ncells - nresume);

    omp_set_num_threads((int)o->threads.v[0]);
    cJSON *rep = report_new(report_provenance(argc, argv, (uint64_t)o->seed));
    int table = !o->quiet; /* --quiet: the summary only */
    if (table && o->format == FMT_MD) print_md_header();
    if (table && o->format == FMT_CSV) print_csv_header();
    fflush(stdout);

    int nok = 0, nuns = 0, noom = 0, nerr = 0, ntimed = 0;
    double t_start = now_ms();
    eta_fit fit = {0};
    for (int k = 0; k < S.ncells; k++) {
        kcell *c = &S.cells[k];
        void **hit = kmap_get(&done, c->key);
        cJSON *rec;
        char label[320], res[600];
        if (hit) {
            rec = cJSON_Duplicate((const cJSON *)*hit, 1);
            snprintf(res, sizeof res, "resumed (%s)", jstr(rec, "status") ? jstr(rec, "status") : "?");
        } else {
            double t0 = now_ms();
            rec = run_cell(&S, c);
            if (c->weight > 0) eta_add(&fit, c->weight, (now_ms() - t0) * 1e-3);
            if (o->out && report_append_jsonl(jsonl, rec, err, sizeof err) != 0) {
                fprintf(stderr, "dmabench kernels: %s\n", err);
                rc = 1;
            }
            const char *st = jstr(rec, "status"), *e = jstr(rec, "error");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "time_ms");
            if (t) {
                char ms[32];
                fmt_ms(ms, sizeof ms, jnum(t, "median", 0));
                snprintf(res, sizeof res, "%s ms", ms);
                ntimed++;
            } else {
                snprintf(res, sizeof res, "%s%s%s%s", st, e ? " (" : "", e ? e : "", e ? ")" : "");
            }
        }
        const char *st = jstr(rec, "status");
        if (st && !strcmp(st, "ok")) nok++;
        else if (st && !strcmp(st, "unsupported")) nuns++;
        else if (st && !strcmp(st, "oom")) noom++;
        else nerr++;
        if (c->weight > 0) {
            left_w -= c->weight;
            left_n--;
        }
        char eta[48] = "";
        if (fit.n > 0 && left_n > 0) {
            char d[32];
            fmt_dur(d, sizeof d, eta_predict(&fit, left_n, left_w));
            snprintf(eta, sizeof eta, " (ETA %s)", d);
        }
        record_label(rec, label, sizeof label);
        if (!o->quiet) fprintf(stderr, "[%d/%d] %s : %s%s\n", k + 1, S.ncells, label, res, eta);
        switch (table ? o->format : -1) {
        case FMT_MD: print_md_row(rec); break;
        case FMT_CSV: print_csv_row(rec); break;
        case FMT_JSONL: print_jsonl_row(rec); break;
        default: break;
        }
        fflush(stdout);
        report_add(rep, rec);
    }
    if (table && o->format == FMT_JSON) {
        char *s = cJSON_Print(rep);
        if (s) printf("%s\n", s);
        free(s);
        fflush(stdout);
    }
    char el[32];
    fmt_dur(el, sizeof el, (now_ms() - t_start) * 1e-3);
    fprintf(stderr, "kernels: %d cell%s: %d ok, %d unsupported, %d oom, %d error; timed %d, resumed %d, in %s\n",
            S.ncells, S.ncells == 1 ? "" : "s", nok, nuns, noom, nerr, ntimed, nresume, el);
    if (o->out) {
        if (report_write(o->out, rep, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench kernels: %s\n", err);
            rc = 1;
        } else if (!o->quiet) {
            fprintf(stderr, "report: %s (records streamed to %s)\n", o->out, jsonl);
        }
    }
    cJSON_Delete(rep);
    if (nerr) rc = 1;
    if (nok == 0) {
        /* the records say why each cell did not run; the sweep as a whole measured nothing */
        fprintf(stderr, "dmabench kernels: no cell was measured (%d unsupported, %d oom, %d error)\n", nuns, noom,
                nerr);
        rc = 1;
    }

cleanup:
    for (int i = 0; i < S.ncells; i++) free(S.cells[i].key);
    free(S.cells);
    kmap_free(&S.cellmap);
    for (int i = 0; i < S.nchecks; i++) {
        free(S.checks[i].key);
        cJSON_Delete(S.checks[i].r.errors);
    }
    free(S.checks);
    kmap_free(&S.checkmap);
    free(S.flush_buf);
    for (int i = 0; i < nrkeys; i++) free(rkeys[i]);
    free(rkeys);
    kmap_free(&done);
    cJSON_Delete(resumed_arr);
    free(jsonl);
    return rc;
}
