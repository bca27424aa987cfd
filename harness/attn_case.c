/*
 * attn_case.c: allocation, seeded filling and comparison of operator problems.
 */
#include "attn_case.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_rt.h"
#include "dtype.h"
#include "rng.h"

static int64_t slot_offset(const attn_case *c, const attn_slot *s, int64_t e) {
    if (!s->stride_off) return e;
    const attn_stride *st = (const attn_stride *)((const char *)&c->p + s->stride_off);
    int64_t dims[4];
    attn_slot_shape(s, &c->p, c->variant, dims);
    int64_t d = e % dims[3];
    e /= dims[3];
    int64_t h = e % dims[2];
    e /= dims[2];
    int64_t n = e % dims[1];
    int64_t b = e / dims[1];
    return b * st->b + n * st->s + h * st->h + d;
}

static double get_raw(const void *ptr, attn_dtype t, int64_t i) {
    switch (t) {
    case ATTN_DTYPE_F32: return ((const float *)ptr)[i];
    case ATTN_DTYPE_F16: return f16_to_f32(((const uint16_t *)ptr)[i]);
    case ATTN_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)ptr)[i]);
    case ATTN_DTYPE_F64: return ((const double *)ptr)[i];
    }
    return NAN;
}

static void set_raw(void *ptr, attn_dtype t, int64_t i, double x) {
    switch (t) {
    case ATTN_DTYPE_F32: ((float *)ptr)[i] = (float)x; break;
    case ATTN_DTYPE_F16: ((uint16_t *)ptr)[i] = f32_to_f16((float)x); break;
    case ATTN_DTYPE_BF16: ((uint16_t *)ptr)[i] = f32_to_bf16((float)x); break;
    case ATTN_DTYPE_F64: ((double *)ptr)[i] = x; break;
    }
}

double attn_case_get(const attn_case *c, const attn_slot *s, int64_t e) {
    const void *ptr = *attn_slot_ptr(s, (attn_params *)&c->p);
    return get_raw(ptr, attn_slot_dtype(s, &c->p), slot_offset(c, s, e));
}

void attn_case_set(attn_case *c, const attn_slot *s, int64_t e, double x) {
    void *ptr = *attn_slot_ptr(s, &c->p);
    set_raw(ptr, attn_slot_dtype(s, &c->p), slot_offset(c, s, e), x);
}

/* Bytes a slot's buffer spans under its strides (contiguous when no strides). */
static size_t slot_bytes(const attn_case *c, const attn_slot *s) {
    int64_t n = attn_slot_numel(s, &c->p, c->variant);
    size_t es = attn_dtype_size(attn_slot_dtype(s, &c->p));
    if (n == 0) return es;
    if (s->stride_off) n = slot_offset(c, s, n - 1) + 1;
    return (size_t)n * es;
}

attn_status attn_case_alloc(attn_case *c, attn_variant v, const attn_params *shape, int dma_wdt,
                            int with_bias, int backward) {
    memset(c, 0, sizeof *c);
    c->p = *shape;
    c->variant = v;
    c->dma_wdt = dma_wdt;
    c->with_bias = with_bias;
    c->backward = backward;
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) *attn_slot_ptr(&tab[i], &c->p) = NULL;
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (!attn_slot_used(s, v, &c->p, dma_wdt, with_bias)) continue;
        if (!backward && (s->kind == SLOT_GRAD || !strcmp(s->name, "do"))) continue;
        size_t bytes = slot_bytes(c, s);
        c->buf[i] = malloc(bytes);
        if (!c->buf[i]) {
            attn_case_free(c);
            return ATTN_ERR_OOM;
        }
        *attn_slot_ptr(s, &c->p) = c->buf[i];
        if (s->kind != SLOT_INPUT) { /* poison outputs: NaN in every dtype */
            attn_dtype t = attn_slot_dtype(s, &c->p);
            size_t es = attn_dtype_size(t);
            for (size_t k = 0; k < bytes / es; k++) set_raw(c->buf[i], t, (int64_t)k, NAN);
        }
    }
    return ATTN_OK;
}

void attn_case_free(attn_case *c) {
    for (int i = 0; i < 32; i++) {
        free(c->buf[i]);
        c->buf[i] = NULL;
    }
}

/* Distributions: q, k, v, do ~ N(0, 1); z ~ N(0, 1) (or clustered, or rising); w_dt ~ N(0, 1/C)
 * so dt is O(1); b_dt ~ N(0, 0.5^2); a ~ N(0, 0.2^2), which keeps exp(a softplus(dt))
 * within a few units as in a trained model (a wider a lets one key's z dominate every
 * row, P turns one-hot and the gradients shrink to the fp32 rounding floor, which
 * says nothing about a kernel); g ~ U(0, 1); w_ck, w_cv ~ N(0, 1/(l D));
 * p_k, p_v ~ N(0, 0.5^2). */
/* Elements per independently seeded chunk: a tensor is filled in parallel, and the
 * values do not depend on the thread count (chunk 0 keeps the slot's own seed, so
 * tensors of up to FILL_CHUNK elements are what they always were). */
#define FILL_CHUNK ((int64_t)1 << 20)

void attn_case_fill(attn_case *c, uint64_t seed, z_pattern zp) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind != SLOT_INPUT || !c->buf[i]) continue;
        int64_t n = attn_slot_numel(s, &c->p, c->variant);
        double sd = 1.0;
        const char *nm = s->name;
        if (!strcmp(nm, "w_dt")) sd = 1.0 / sqrt((double)c->p.Hkv * c->p.D);
        if (!strcmp(nm, "b_dt") || !strcmp(nm, "p_k") || !strcmp(nm, "p_v")) sd = 0.5;
        if (!strcmp(nm, "a")) sd = 0.2;
        if (!strcmp(nm, "w_ck") || !strcmp(nm, "w_cv")) sd = 1.0 / sqrt((double)c->p.nsa_l * c->p.D);
        const int uniform = !strcmp(nm, "g"), clustered = !strcmp(nm, "z") && zp == Z_CLUSTERED;
        const int rising = !strcmp(nm, "z") && zp == Z_RISING;
        const int64_t nchunks = (n + FILL_CHUNK - 1) / FILL_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (nchunks > 1)
        for (int64_t k = 0; k < nchunks; k++) {
            rng_t r;
            uint64_t cs = seed * 1000003u + (uint64_t)i;
            rng_seed(&r, k == 0 ? cs : cs ^ ((uint64_t)k * 0xD1B54A32D192ED03ull));
            const int64_t e1 = (k + 1) * FILL_CHUNK < n ? (k + 1) * FILL_CHUNK : n;
            for (int64_t e = k * FILL_CHUNK; e < e1; e++) {
                double x;
                if (uniform) x = rng_uniform(&r);
                else if (clustered) {
                    /* runs of 16 keys share a level; a few runs are high */
                    int64_t j = e % c->p.Nk, run = j / 16;
                    rng_t rr;
                    rng_seed(&rr, seed ^ (uint64_t)(e / c->p.Nk) * 7919u ^ (uint64_t)run * 104729u);
                    x = (rng_uniform(&rr) < 0.25 ? 2.0 : -2.0) + 0.1 * rng_normal(&r);
                } else if (rising) {
                    x = -2.0 + 4.0 * (double)(e % c->p.Nk) / (double)c->p.Nk; /* distinct in fp32 for Nk up to 2^24 */
                } else x = sd * rng_normal(&r);
                attn_case_set(c, s, e, x);
            }
        }
    }
}

attn_status attn_case_to_device(const attn_case *c, attn_case *d) {
    *d = *c;
    memset(d->buf, 0, sizeof d->buf);
    d->saved = d->p.saved = NULL;
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (!c->buf[i]) continue;
        size_t bytes = slot_bytes(c, s);
        attn_status st = dm_cuda_alloc(&d->buf[i], bytes);
        if (st == ATTN_OK) st = dm_cuda_h2d(d->buf[i], c->buf[i], bytes);
        if (st != ATTN_OK) {
            attn_case_free_device(d);
            return st;
        }
        *attn_slot_ptr(s, &d->p) = d->buf[i];
    }
    return ATTN_OK;
}

attn_status attn_case_from_device(attn_case *c, const attn_case *d) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (!c->buf[i] || s->kind == SLOT_INPUT) continue;
        attn_status st = dm_cuda_d2h(c->buf[i], d->buf[i], slot_bytes(c, s));
        if (st != ATTN_OK) return st;
    }
    return ATTN_OK;
}

void attn_case_free_device(attn_case *d) {
    for (int i = 0; i < 32; i++) {
        dm_cuda_free(d->buf[i]);
        d->buf[i] = NULL;
    }
    dm_cuda_free(d->saved);
    d->saved = d->p.saved = NULL;
}

attn_status attn_case_saved_device(attn_case *d, size_t bytes) {
    dm_cuda_free(d->saved);
    d->saved = d->p.saved = NULL;
    if (bytes == 0) return ATTN_OK;
    attn_status st = dm_cuda_alloc(&d->saved, bytes);
    if (st == ATTN_OK) d->p.saved = d->saved;
    return st;
}

void attn_case_perturb(attn_case *c, uint64_t seed, double u) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind != SLOT_INPUT || !c->buf[i]) continue;
        int64_t n = attn_slot_numel(s, &c->p, c->variant);
        for (int64_t e = 0; e < n; e++)
            attn_case_set(c, s, e, attn_case_get(c, s, e) * (1.0 + u * (2.0 * rng_uniform(&r) - 1.0)));
    }
}

void attn_case_copy_inputs(attn_case *dst, const attn_case *src) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind != SLOT_INPUT || !src->buf[i] || !dst->buf[i]) continue;
        int64_t n = attn_slot_numel(s, &src->p, src->variant);
        for (int64_t e = 0; e < n; e++) attn_case_set(dst, s, e, attn_case_get(src, s, e));
    }
}

double attn_case_maxabs(const attn_case *c, const attn_slot *s) {
    int64_t n = attn_slot_numel(s, &c->p, c->variant);
    double m = 0;
    for (int64_t e = 0; e < n; e++) {
        double x = fabs(attn_case_get(c, s, e));
        if (x > m) m = x;
    }
    return m;
}

void attn_case_compare(const attn_case *a, const attn_case *ref, const attn_slot *s, double *max_abs,
                       double *max_rel) {
    int64_t n = attn_slot_numel(s, &ref->p, ref->variant);
    double ma = 0, mr = 0;
    for (int64_t e = 0; e < n; e++) {
        double x = attn_case_get(a, s, e), r = attn_case_get(ref, s, e);
        if (isinf(r) && isinf(x) && (r > 0) == (x > 0)) continue; /* lse = -inf on empty rows */
        if (!isfinite(x) || !isfinite(r)) {
            ma = INFINITY;
            continue;
        }
        double d = fabs(x - r);
        if (d > ma) ma = d;
        if (fabs(r) > mr) mr = fabs(r);
    }
    *max_abs = ma;
    *max_rel = ma / (mr > 1e-30 ? mr : 1e-30);
    if (ma == 0) *max_rel = 0;
}
