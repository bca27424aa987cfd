/*
 * model_data.c: the built-in data sources (model_data.h): a byte file and a
 * safetensors token file. Both are pure functions of the batch index.
 */
#include "model_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "safetensors.h"

#define DERR(...)                                                 \
    do {                                                          \
        if (err && err_len) snprintf(err, err_len, __VA_ARGS__);  \
    } while (0)

void model_data_free(model_data *d) {
    if (d && d->free) d->free(d);
}

/* A generator for batch i: splitmix over (seed, i, salt). */
static void batch_rng(rng_t *r, uint64_t seed, int64_t i, uint64_t salt) {
    rng_seed(r, seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1)) ^ (salt * 0x8CB92BA72F3D8DD7ull));
    rng_u64(r);
}

/* ---- bytes ---- */

typedef struct {
    unsigned char *buf;
    size_t n;
    uint64_t seed;
} bytes_ctx;

static int bytes_batch(model_data *d, int64_t i, int bs, int ctx, int32_t *ids, int32_t *labels, char *err,
                       size_t err_len) {
    bytes_ctx *c = d->ctx;
    if (c->n < (size_t)ctx + 1) {
        DERR("the byte data has %zu bytes: a context of %d needs at least %d", c->n, ctx, ctx + 1);
        return -1;
    }
    rng_t r;
    batch_rng(&r, c->seed, i, 1);
    uint64_t span = (uint64_t)(c->n - (size_t)ctx); /* offsets 0 .. n - ctx - 1 */
    for (int b = 0; b < bs; b++) {
        size_t off = (size_t)rng_below(&r, span);
        const unsigned char *w = c->buf + off;
        for (int t = 0; t < ctx; t++) {
            ids[(size_t)b * ctx + t] = w[t];
            labels[(size_t)b * ctx + t] = w[t + 1];
        }
    }
    return 0;
}

static void bytes_free(model_data *d) {
    bytes_ctx *c = d->ctx;
    if (c) free(c->buf);
    free(c);
    free(d);
}

int model_data_bytes_from_memory(const void *buf, size_t n, uint64_t seed, model_data **out, char *err,
                                 size_t err_len) {
    *out = NULL;
    model_data *d = calloc(1, sizeof *d);
    bytes_ctx *c = calloc(1, sizeof *c);
    unsigned char *copy = malloc(n ? n : 1);
    if (!d || !c || !copy) {
        free(d), free(c), free(copy);
        DERR("out of memory for %zu bytes of data", n);
        return -1;
    }
    if (n) memcpy(copy, buf, n);
    c->buf = copy, c->n = n, c->seed = seed;
    d->ctx = c;
    d->get_batch = bytes_batch;
    d->free = bytes_free;
    d->max_context = n > 1 ? (n - 1 > (size_t)(1 << 30) ? 1 << 30 : (int)(n - 1)) : 0;
    d->vocab_needed = 256;
    d->n_tokens = (int64_t)n;
    *out = d;
    if (n < 2) {
        model_data_free(d);
        *out = NULL;
        DERR("the byte data has %zu bytes: at least 2 are needed", n);
        return -1;
    }
    return 0;
}

static int read_whole(const char *path, unsigned char **buf, size_t *n, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        DERR("cannot open data '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        DERR("data '%s': cannot seek (not a regular file?)", path);
        return -1;
    }
    long len = ftell(f);
    rewind(f);
    if (len < 0) {
        fclose(f);
        DERR("data '%s': cannot tell its size", path);
        return -1;
    }
    unsigned char *b = malloc((size_t)len + 1);
    if (!b) {
        fclose(f);
        DERR("data '%s': out of memory for %ld bytes", path, len);
        return -1;
    }
    size_t got = fread(b, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(b);
        DERR("data '%s': short read", path);
        return -1;
    }
    *buf = b, *n = (size_t)len;
    return 0;
}

int model_data_bytes_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len) {
    unsigned char *b;
    size_t n;
    *out = NULL;
    if (read_whole(path, &b, &n, err, err_len)) return -1;
    int rc = model_data_bytes_from_memory(b, n, seed, out, err, err_len);
    free(b);
    if (rc && err && err_len) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", err);
        DERR("data '%s': %s", path, tmp);
    }
    return rc;
}

/* ---- safetensors ---- */

typedef struct {
    int64_t N, T;
    int32_t *ids;    /* (N, T) */
    int32_t *labels; /* (N, T) */
    uint64_t seed;
    int64_t perm_epoch; /* epoch of perm, -1 none */
    int64_t *perm;      /* (N) */
} st_ctx;

static void make_perm(st_ctx *c, int64_t epoch) {
    if (c->perm_epoch == epoch) return;
    for (int64_t r = 0; r < c->N; r++) c->perm[r] = r;
    rng_t g;
    batch_rng(&g, c->seed, epoch, 2);
    for (int64_t r = c->N - 1; r > 0; r--) {
        int64_t j = (int64_t)rng_below(&g, (uint64_t)r + 1);
        int64_t t = c->perm[r];
        c->perm[r] = c->perm[j];
        c->perm[j] = t;
    }
    c->perm_epoch = epoch;
}

static int st_batch(model_data *d, int64_t i, int bs, int ctx, int32_t *ids, int32_t *labels, char *err,
                    size_t err_len) {
    st_ctx *c = d->ctx;
    if (ctx > c->T) {
        DERR("the token file's rows hold %lld tokens: a context of %d does not fit", (long long)c->T, ctx);
        return -1;
    }
    for (int b = 0; b < bs; b++) {
        int64_t k = i * bs + b, epoch = k / c->N;
        make_perm(c, epoch);
        int64_t row = c->perm[k % c->N];
        memcpy(ids + (size_t)b * ctx, c->ids + row * c->T, (size_t)ctx * sizeof(int32_t));
        memcpy(labels + (size_t)b * ctx, c->labels + row * c->T, (size_t)ctx * sizeof(int32_t));
    }
    return 0;
}

static void st_free_src(model_data *d) {
    st_ctx *c = d->ctx;
    if (c) {
        free(c->ids);
        free(c->labels);
        free(c->perm);
    }
    free(c);
    free(d);
}

int model_data_safetensors_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len) {
    *out = NULL;
    st_file f;
    st_file_init(&f);
    char e[400];
    int64_t *ids64 = NULL, *lab64 = NULL;
    model_data *d = NULL;
    st_ctx *c = NULL;
    if (st_read(path, &f, e, sizeof e) != ST_OK) {
        DERR("%s", e);
        goto fail;
    }
    const st_tensor *ti = st_file_find(&f, "input_ids");
    if (!ti) {
        DERR("data '%s': no tensor 'input_ids' (N, T) of I32 or I64", path);
        goto fail;
    }
    if (ti->ndim != 2 || ti->shape[0] < 1 || ti->shape[1] < 1) {
        DERR("data '%s': 'input_ids' must be 2-d (N, T) with N, T >= 1", path);
        goto fail;
    }
    if (ti->dtype != ST_I32 && ti->dtype != ST_I64) {
        DERR("data '%s': 'input_ids' is %s; expected I32 or I64", path, st_dtype_name(ti->dtype));
        goto fail;
    }
    int64_t N = ti->shape[0], T = ti->shape[1];
    if (N * T > (INT64_C(1) << 34)) {
        DERR("data '%s': too many tokens", path);
        goto fail;
    }
    if (st_tensor_to_i64(ti, &ids64, e, sizeof e) != ST_OK) {
        DERR("data '%s': %s", path, e);
        goto fail;
    }
    const st_tensor *tl = st_file_find(&f, "labels");
    if (tl) {
        if (tl->dtype != ST_I32 && tl->dtype != ST_I64) {
            DERR("data '%s': 'labels' is %s; expected I32 or I64", path, st_dtype_name(tl->dtype));
            goto fail;
        }
        int64_t shp[2] = {N, T};
        if (st_tensor_check_shape(tl, 2, shp, e, sizeof e) != ST_OK) {
            DERR("data '%s': %s (labels must match input_ids)", path, e);
            goto fail;
        }
        if (st_tensor_to_i64(tl, &lab64, e, sizeof e) != ST_OK) {
            DERR("data '%s': %s", path, e);
            goto fail;
        }
    }
    d = calloc(1, sizeof *d);
    c = calloc(1, sizeof *c);
    if (!d || !c) goto oom;
    c->N = N, c->T = T, c->seed = seed, c->perm_epoch = -1;
    c->ids = malloc((size_t)(N * T) * sizeof(int32_t));
    c->labels = malloc((size_t)(N * T) * sizeof(int32_t));
    c->perm = malloc((size_t)N * sizeof(int64_t));
    if (!c->ids || !c->labels || !c->perm) goto oom;
    int64_t vmax = 0;
    for (int64_t k = 0; k < N * T; k++) {
        int64_t v = ids64[k];
        if (v < 0 || v > INT32_MAX) {
            DERR("data '%s': input_ids[%lld, %lld] = %lld is not a token id (0..2^31-1)", path, (long long)(k / T),
                 (long long)(k % T), (long long)v);
            goto fail;
        }
        c->ids[k] = (int32_t)v;
        if (v + 1 > vmax) vmax = v + 1;
    }
    for (int64_t k = 0; k < N * T; k++) {
        int64_t v;
        if (lab64) v = lab64[k];
        else v = (k % T == T - 1) ? MODEL_IGNORE : ids64[k + 1];
        if (v != MODEL_IGNORE && (v < 0 || v > INT32_MAX)) {
            DERR("data '%s': labels[%lld, %lld] = %lld is neither a token id nor %d", path, (long long)(k / T),
                 (long long)(k % T), (long long)v, MODEL_IGNORE);
            goto fail;
        }
        c->labels[k] = (int32_t)v;
        if (v + 1 > vmax) vmax = v + 1;
    }
    d->ctx = c;
    d->get_batch = st_batch;
    d->free = st_free_src;
    d->max_context = (int)(T > (1 << 30) ? 1 << 30 : T);
    d->vocab_needed = (int)(vmax > INT32_MAX ? INT32_MAX : vmax);
    d->n_tokens = N * T;
    free(ids64);
    free(lab64);
    st_file_free(&f);
    *out = d;
    return 0;
oom:
    DERR("data '%s': out of memory", path);
fail:
    if (c) {
        free(c->ids);
        free(c->labels);
        free(c->perm);
    }
    free(c);
    free(d);
    free(ids64);
    free(lab64);
    st_file_free(&f);
    return -1;
}

int model_data_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        DERR("cannot open data '%s': %s", path, strerror(errno));
        return -1;
    }
    unsigned char h[9];
    size_t got = fread(h, 1, 9, f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    if (got == 9 && h[8] == '{' && len > 9) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | h[i];
        if (hl >= 2 && hl <= (uint64_t)len - 8) return model_data_safetensors_open(path, seed, out, err, err_len);
    }
    return model_data_bytes_open(path, seed, out, err, err_len);
}
