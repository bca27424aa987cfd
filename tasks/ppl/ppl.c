/*
 * ppl.c: corpora, training windows, evaluation windows and metrics for the
 * byte-level perplexity task (ppl.h).
 */
#include "ppl/ppl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define SALT_BATCH 0x70706c2d6261ull /* "ppl-ba" */
#define SALT_SYNTH 0x70706c2d7379ull /* "ppl-sy" */

/* The default corpus: these files of /usr/share/common-licenses, in this order
 * (GPL-3 last, so the test split is its tail). */
static const char *const LICENSE_FILES[] = {"Apache-2.0", "Artistic", "BSD",     "CC0-1.0",  "GFDL-1.2",
                                            "GFDL-1.3",   "GPL-1",    "GPL-2",   "LGPL-2",   "LGPL-2.1",
                                            "LGPL-3",     "MPL-1.1",  "MPL-2.0", "GPL-3"};
#define N_LICENSE_FILES ((int)(sizeof LICENSE_FILES / sizeof LICENSE_FILES[0]))

uint64_t ppl_checksum(const int32_t *tok, int64_t n, uint64_t h) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)tok[i];
        for (int k = 0; k < 4; k++) {
            h ^= (v >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

void ppl_corpus_free(ppl_corpus *c) {
    if (!c) return;
    free(c->train.tok), free(c->test.tok), free(c->test_bits), free(c->test_recall);
    memset(c, 0, sizeof *c);
}

/* Splits all[0..n) at n - round(n * test_frac) into c->train and c->test. */
static task_status split(int32_t *all, int64_t n, double test_frac, ppl_corpus *c, char *err, size_t err_len) {
    int64_t nt = (int64_t)llround((double)n * test_frac);
    int64_t ntr = n - nt;
    if (nt < 2 || ntr < 2) {
        free(all);
        task_errf(err, err_len, "ppl: %lld tokens split at test fraction %g leave a split under 2 tokens",
                  (long long)n, test_frac);
        return TASK_ERR_DATA;
    }
    c->train.tok = malloc(sizeof(int32_t) * (size_t)ntr);
    c->test.tok = malloc(sizeof(int32_t) * (size_t)nt);
    if (!c->train.tok || !c->test.tok) {
        free(all);
        ppl_corpus_free(c);
        task_errf(err, err_len, "ppl: out of memory for %lld tokens", (long long)n);
        return TASK_ERR_OOM;
    }
    memcpy(c->train.tok, all, sizeof(int32_t) * (size_t)ntr);
    memcpy(c->test.tok, all + ntr, sizeof(int32_t) * (size_t)nt);
    c->train.n = ntr, c->test.n = nt;
    c->checksum = ppl_checksum(all, n, PPL_FNV_OFFSET);
    free(all);
    return TASK_OK;
}

static int frac_ok(double f) { return f > 0 && f < 1; }

task_status ppl_corpus_from_docs(const unsigned char *const *docs, const size_t *lens, int n_docs, double test_frac,
                                 ppl_corpus *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    if (!frac_ok(test_frac)) {
        task_errf(err, err_len, "ppl: the test fraction must be in (0, 1) (got %g)", test_frac);
        return TASK_ERR_ARG;
    }
    if (n_docs < 1) {
        task_errf(err, err_len, "ppl: no documents");
        return TASK_ERR_ARG;
    }
    int64_t n = 0;
    for (int d = 0; d < n_docs; d++) n += (int64_t)lens[d] + 1;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)n);
    if (!all) {
        task_errf(err, err_len, "ppl: out of memory for %lld tokens", (long long)n);
        return TASK_ERR_OOM;
    }
    int64_t p = 0;
    for (int d = 0; d < n_docs; d++) {
        for (size_t i = 0; i < lens[d]; i++) all[p++] = docs[d][i];
        all[p++] = TASK_TOK_EOS;
    }
    snprintf(c->name, sizeof c->name, "memory");
    c->n_docs = n_docs;
    return split(all, n, test_frac, c, err, err_len);
}

task_status ppl_corpus_from_memory(const void *buf, size_t n, double test_frac, ppl_corpus *c, char *err,
                                   size_t err_len) {
    const unsigned char *d = buf;
    if (n == 0) {
        memset(c, 0, sizeof *c);
        task_errf(err, err_len, "ppl: the text is empty");
        return TASK_ERR_DATA;
    }
    return ppl_corpus_from_docs(&d, &n, 1, test_frac, c, err, err_len);
}

/* Reads a whole file. */
static task_status read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t err_len) {
    *out = NULL, *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        task_errf(err, err_len, "ppl: cannot open %s: %s", path, strerror(errno));
        return TASK_ERR_IO;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        if (len == cap) {
            unsigned char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb, cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) {
        task_errf(err, err_len, "ppl: out of memory reading %s", path);
        return TASK_ERR_OOM;
    }
    if (bad) {
        free(b);
        task_errf(err, err_len, "ppl: error reading %s", path);
        return TASK_ERR_IO;
    }
    *out = b, *n = len;
    return TASK_OK;
}

task_status ppl_corpus_from_file(const char *path, double test_frac, ppl_corpus *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    unsigned char *buf;
    size_t n;
    task_status st = read_file(path, &buf, &n, err, err_len);
    if (st) return st;
    if (n == 0) {
        free(buf);
        task_errf(err, err_len, "ppl: %s is empty", path);
        return TASK_ERR_DATA;
    }
    st = ppl_corpus_from_memory(buf, n, test_frac, c, err, err_len);
    free(buf);
    if (st) return st;
    snprintf(c->name, sizeof c->name, "file");
    snprintf(c->source, sizeof c->source, "%s", path);
    return TASK_OK;
}

/* Appends s to dst (capacity cap, current length len), truncating; returns the new length. */
static size_t cat(char *dst, size_t cap, size_t len, const char *s) {
    size_t n = strlen(s);
    if (len + n >= cap) n = cap - 1 - len;
    memcpy(dst + len, s, n);
    dst[len + n] = 0;
    return len + n;
}

task_status ppl_corpus_licenses(const char *dir, double test_frac, ppl_corpus *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    if (!dir) dir = PPL_LICENSES_DIR;
    unsigned char *docs[N_LICENSE_FILES];
    size_t lens[N_LICENSE_FILES];
    int nd = 0;
    char missing[256] = "", used[256] = "";
    size_t mlen = 0, ulen = 0;
    for (int i = 0; i < N_LICENSE_FILES; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, LICENSE_FILES[i]);
        unsigned char *b;
        size_t n;
        char e2[256];
        task_status st = read_file(path, &b, &n, e2, sizeof e2);
        if (st == TASK_ERR_OOM) {
            for (int d = 0; d < nd; d++) free(docs[d]);
            task_errf(err, err_len, "%s", e2);
            return st;
        }
        if (st || n == 0) {
            free(b);
            int w = snprintf(missing + mlen, sizeof missing - mlen, "%s%s", mlen ? " " : "", LICENSE_FILES[i]);
            if (w > 0 && mlen + (size_t)w < sizeof missing) mlen += (size_t)w;
            continue;
        }
        int w = snprintf(used + ulen, sizeof used - ulen, "%s%s", ulen ? " " : "", LICENSE_FILES[i]);
        if (w > 0 && ulen + (size_t)w < sizeof used) ulen += (size_t)w;
        docs[nd] = b, lens[nd] = n, nd++;
    }
    if (nd == 0) {
        task_errf(err, err_len,
                  "ppl: no license text found under %s (Debian's base-files package provides it); "
                  "give a text file instead",
                  dir);
        return TASK_ERR_IO;
    }
    task_status st =
        ppl_corpus_from_docs((const unsigned char *const *)docs, lens, nd, test_frac, c, err, err_len);
    for (int d = 0; d < nd; d++) free(docs[d]);
    if (st) return st;
    snprintf(c->name, sizeof c->name, "licenses");
    size_t sl = 0;
    sl = cat(c->source, sizeof c->source, sl, dir);
    sl = cat(c->source, sizeof c->source, sl, ": ");
    sl = cat(c->source, sizeof c->source, sl, used);
    if (mlen) {
        sl = cat(c->source, sizeof c->source, sl, "; missing: ");
        cat(c->source, sizeof c->source, sl, missing);
    }
    return TASK_OK;
}

task_status ppl_corpus_synthetic(const ppl_synth_config *sc, int64_t n_train, int64_t n_test, uint64_t seed,
                                 ppl_corpus *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    task_status st = ppl_synth_validate(sc, err, err_len);
    if (st) return st;
    if (n_train < 2 || n_test < 2) {
        task_errf(err, err_len, "ppl synthetic: both splits need at least 2 bytes");
        return TASK_ERR_ARG;
    }
    unsigned char *tr = malloc((size_t)n_train), *te = malloc((size_t)n_test);
    c->train.tok = malloc(sizeof(int32_t) * (size_t)n_train);
    c->test.tok = malloc(sizeof(int32_t) * (size_t)n_test);
    c->test_bits = malloc(sizeof(float) * (size_t)n_test);
    c->test_recall = malloc((size_t)n_test);
    if (!tr || !te || !c->train.tok || !c->test.tok || !c->test_bits || !c->test_recall) {
        free(tr), free(te);
        ppl_corpus_free(c);
        task_errf(err, err_len, "ppl synthetic: out of memory");
        return TASK_ERR_OOM;
    }
    ppl_synth_generate(sc, task_stream_seed(seed, SALT_SYNTH, 0), n_train, tr, NULL, NULL, NULL, 0);
    ppl_synth_generate(sc, task_stream_seed(seed, SALT_SYNTH, 1), n_test, te, c->test_bits, c->test_recall, NULL,
                       0);
    for (int64_t i = 0; i < n_train; i++) c->train.tok[i] = tr[i];
    for (int64_t i = 0; i < n_test; i++) c->test.tok[i] = te[i];
    free(tr), free(te);
    c->train.n = n_train, c->test.n = n_test;
    c->checksum = ppl_checksum(c->test.tok, n_test, ppl_checksum(c->train.tok, n_train, PPL_FNV_OFFSET));
    c->n_docs = 1;
    c->synthetic = 1;
    c->synth = *sc;
    ppl_synth_get_rates(sc, &c->rates);
    snprintf(c->name, sizeof c->name, "synthetic");
    snprintf(c->source, sizeof c->source,
             "synthetic key_len=%d n_lines=%d words_per_line=%d branching=%d seed=%llu", sc->key_len, sc->n_lines,
             sc->words_per_line, sc->branching, (unsigned long long)seed);
    return TASK_OK;
}

task_status ppl_tokens_text(const ppl_tokens *t, unsigned char **out, size_t *n, char *err, size_t err_len) {
    *out = malloc(t->n ? (size_t)t->n : 1);
    *n = 0;
    if (!*out) {
        task_errf(err, err_len, "ppl: out of memory");
        return TASK_ERR_OOM;
    }
    for (int64_t i = 0; i < t->n; i++) (*out)[i] = t->tok[i] >= 0 && t->tok[i] < 256 ? (unsigned char)t->tok[i] : '\n';
    *n = (size_t)t->n;
    return TASK_OK;
}

/* ---- training ---- */

task_status ppl_train_batch(const ppl_corpus *c, uint64_t seed, int64_t i, int batch_size, int context,
                            int32_t *ids, int32_t *labels, char *err, size_t err_len) {
    if (i < 0 || batch_size < 1 || context < 1) {
        task_errf(err, err_len, "ppl: batch index must be >= 0, batch size and context >= 1");
        return TASK_ERR_ARG;
    }
    if (c->train.n < (int64_t)context + 1) {
        task_errf(err, err_len, "ppl: the train split has %lld tokens: a context of %d needs at least %d",
                  (long long)c->train.n, context, context + 1);
        return TASK_ERR_DATA;
    }
    rng_t r;
    rng_seed(&r, task_stream_seed(seed, SALT_BATCH, (uint64_t)i));
    uint64_t span = (uint64_t)(c->train.n - context); /* offsets 0 .. n - context - 1 */
    for (int b = 0; b < batch_size; b++) {
        const int32_t *w = c->train.tok + rng_below(&r, span);
        int32_t *ri = ids + (size_t)b * context, *rl = labels + (size_t)b * context;
        for (int t = 0; t < context; t++) ri[t] = w[t], rl[t] = w[t + 1];
    }
    return TASK_OK;
}

typedef struct {
    const ppl_corpus *c;
    uint64_t seed;
} batch_ctx;

static task_status batcher_get(task_batcher *b, int64_t i, int bs, int context, int32_t *ids, int32_t *labels,
                               char *err, size_t err_len) {
    batch_ctx *x = b->ctx;
    return ppl_train_batch(x->c, x->seed, i, bs, context, ids, labels, err, err_len);
}

static void batcher_free(task_batcher *b) {
    free(b->ctx);
    free(b);
}

task_status ppl_batcher_create(const ppl_corpus *c, uint64_t seed, task_batcher **out, char *err, size_t err_len) {
    *out = NULL;
    if (!c || c->train.n < 2) {
        task_errf(err, err_len, "ppl: no corpus to train on");
        return TASK_ERR_ARG;
    }
    task_batcher *b = calloc(1, sizeof *b);
    batch_ctx *x = malloc(sizeof *x);
    if (!b || !x) {
        free(b), free(x);
        task_errf(err, err_len, "ppl: out of memory");
        return TASK_ERR_OOM;
    }
    x->c = c, x->seed = seed;
    b->ctx = x;
    b->get_batch = batcher_get;
    b->free = batcher_free;
    b->max_context = (int)(c->train.n - 1 < 0x7fffffff ? c->train.n - 1 : 0x7fffffff);
    b->vocab_needed = TASK_BYTE_VOCAB;
    b->n_tokens = c->train.n;
    *out = b;
    return TASK_OK;
}

/* ---- windows ---- */

const char *ppl_mode_name(ppl_mode m) { return m == PPL_CHUNK ? "chunk" : "disjoint"; }

int64_t ppl_num_windows(int64_t n, int ctx, ppl_mode m) {
    if (ctx < 1 || n < 2) return 0;
    if (m == PPL_CHUNK) return ctx < 3 ? 0 : n / ctx; /* ctx 2 would score nothing */
    return (n - 1) / ctx;
}

int ppl_scored_per_window(int ctx, ppl_mode m) { return m == PPL_CHUNK ? ctx - 1 - ctx / 2 : ctx; }

task_status ppl_window(const ppl_tokens *t, int ctx, ppl_mode m, int bos, int64_t w, int32_t *ids,
                       int32_t *labels, int64_t *start, char *err, size_t err_len) {
    int64_t nw = ppl_num_windows(t->n, ctx, m);
    if (w < 0 || w >= nw) {
        task_errf(err, err_len, "ppl: window %lld out of range (%lld %s windows of %d over %lld tokens)",
                  (long long)w, (long long)nw, ppl_mode_name(m), ctx, (long long)t->n);
        return TASK_ERR_ARG;
    }
    int64_t s = w * ctx;
    const int32_t *x = t->tok + s;
    for (int i = 0; i < ctx; i++) ids[i] = x[i];
    if (bos) ids[0] = TASK_TOK_BOS;
    if (m == PPL_CHUNK) {
        int first = ctx / 2;
        for (int i = 0; i < ctx; i++) labels[i] = i >= first && i <= ctx - 2 ? x[i + 1] : TASK_IGNORE;
    } else {
        for (int i = 0; i < ctx; i++) labels[i] = x[i + 1];
    }
    if (start) *start = s;
    return TASK_OK;
}

/* ---- metrics ---- */

void ppl_acc_init(ppl_acc *a) { memset(a, 0, sizeof *a); }

void ppl_acc_add_window(ppl_acc *a, const float *nll, const int32_t *labels, int ctx) {
    double s = 0;
    int64_t k = 0;
    for (int i = 0; i < ctx; i++) {
        if (labels[i] == TASK_IGNORE) continue;
        double v = nll[i];
        s += v;
        a->sum_nll_sq += v * v;
        k++;
        if (labels[i] >= 0 && labels[i] < 256) a->n_bytes++;
    }
    if (!k) return;
    a->sum_nll += s;
    a->n_tokens += k;
    double mw = s / (double)k;
    a->w_sum += mw;
    a->w_sum_sq += mw * mw;
    a->n_windows++;
}

void ppl_acc_metrics(const ppl_acc *a, ppl_metrics *m) {
    memset(m, 0, sizeof *m);
    m->n_tokens = a->n_tokens, m->n_bytes = a->n_bytes, m->n_windows = a->n_windows;
    if (!a->n_tokens) {
        m->nll = m->ppl = m->bits_per_byte = NAN;
        m->stderr_nll = m->stderr_ppl = m->stderr_bpb = m->stderr_tokens_nll = NAN;
        return;
    }
    double n = (double)a->n_tokens;
    m->nll = a->sum_nll / n;
    m->ppl = exp(m->nll);
    m->bits_per_byte = a->n_bytes ? a->sum_nll / M_LN2 / (double)a->n_bytes : NAN;
    if (a->n_windows >= 2) {
        double W = (double)a->n_windows, mean = a->w_sum / W;
        double var = (a->w_sum_sq - W * mean * mean) / (W - 1);
        m->stderr_nll = var > 0 ? sqrt(var / W) : 0;
    } else {
        m->stderr_nll = NAN;
    }
    m->stderr_ppl = m->ppl * m->stderr_nll;
    m->stderr_bpb = a->n_bytes ? m->stderr_nll / M_LN2 * n / (double)a->n_bytes : NAN;
    if (a->n_tokens >= 2) {
        double var = a->sum_nll_sq / n - m->nll * m->nll;
        m->stderr_tokens_nll = var > 0 ? sqrt(var / (n - 1)) : 0;
    } else {
        m->stderr_tokens_nll = NAN;
    }
}

double ppl_unigram_bpb(const ppl_tokens *t) {
    int64_t cnt[256] = {0}, n = 0;
    for (int64_t i = 0; i < t->n; i++)
        if (t->tok[i] >= 0 && t->tok[i] < 256) cnt[t->tok[i]]++, n++;
    if (!n) return NAN;
    double h = 0;
    for (int b = 0; b < 256; b++)
        if (cnt[b]) {
            double p = (double)cnt[b] / (double)n;
            h -= p * log2(p);
        }
    return h;
}

double ppl_synth_floor_bpb(const ppl_corpus *c, int ctx, ppl_mode m, int *exact) {
    if (exact) *exact = 0;
    if (!c->synthetic || !c->test_bits || !c->test_recall) return NAN;
    int64_t nw = ppl_num_windows(c->test.n, ctx, m);
    if (nw <= 0) return NAN;
    int D = c->rates.copy_distance, cmin = c->rates.min_context;
    int first = m == PPL_CHUNK ? ctx / 2 : 0, last = m == PPL_CHUNK ? ctx - 2 : ctx - 1;
    double bits = 0;
    int64_t nb = 0;
    int ok = 1;
    for (int64_t w = 0; w < nw; w++) {
        int64_t s = w * ctx;
        for (int i = first; i <= last; i++) {
            int64_t a = s + i + 1; /* the predicted token; the window shows i + 1 tokens before it */
            int visible = i + 1;
            if (visible < cmin) ok = 0;
            bits += c->test_bits[a] + (c->test_recall[a] && visible < D ? 4.0 : 0.0);
            nb++;
        }
    }
    if (exact) *exact = ok;
    return bits / (double)nb;
}
