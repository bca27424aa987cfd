/*
 * dma_ref.c: the Dynamic Mask Attention reference, double accumulation, exactly as
 * docs/attention.md defines it. The selection here is the definition itself (sort
 * the visible keys of each row by (z, index) and keep the first w), not the
 * per-query threshold the fast kernels use; that is what makes it an oracle.
 */
#include "dma.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_common.h"

/* softplus(x) = log(1 + e^x), computed without overflow */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

typedef struct {
    const double *z; /* (B, Hkv, Nk) */
} dma_ctx;

static int cmp_rank(const void *pa, const void *pb, void *zv) {
    const double *z = zv;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (dma_key_before(z[a], a, z[b], b)) return -1;
    if (dma_key_before(z[b], b, z[a], a)) return 1;
    return 0;
}

static int select_topw(const attn_params *p, void *vctx, int b, int hkv, int64_t i, int *idx) {
    dma_ctx *c = vctx;
    int n = (int)attn_visible(p, i);
    for (int j = 0; j < n; j++) idx[j] = j;
    if (n <= p->w) return n;
    qsort_r(idx, (size_t)n, sizeof(int), cmp_rank, (void *)(c->z + ((int64_t)b * p->Hkv + hkv) * p->Nk));
    return p->w;
}

/* z (B, Hkv, Nk) from the inputs: copied, or computed from v and the dt projection. */
static attn_status dma_scores(const attn_params *p, double *z, double *dt_out) {
    int f64 = attn_aux_is_f64(p);
    size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    if (!p->w_dt) {
        double *zin;
        attn_status st = ref_load_aux(&zin, p->z, f64, nz);
        if (st != ATTN_OK) return st;
        memcpy(z, zin, nz * sizeof(double));
        attn_free(zin);
        return ATTN_OK;
    }
    int C = p->Hkv * p->D;
    double *w = NULL, *bdt = NULL, *a = NULL;
    ref_tensor v = {0};
    attn_status st;
    if ((st = ref_load_aux(&w, p->w_dt, f64, (size_t)C * p->Hkv)) != ATTN_OK ||
        (st = ref_load_aux(&a, p->a, f64, (size_t)p->Hkv)) != ATTN_OK ||
        (p->b_dt && (st = ref_load_aux(&bdt, p->b_dt, f64, (size_t)p->Hkv)) != ATTN_OK) ||
        (st = ref_load(&v, p->v, p->dtype, p->v_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK)
        goto done;
    for (int b = 0; b < p->B; b++)
        for (int j = 0; j < p->Nk; j++) {
            const double *vf = ref_row(&v, b, j, 0); /* V_flat row: Hkv*D contiguous */
            for (int h = 0; h < p->Hkv; h++) {
                double dt = bdt ? bdt[h] : 0.0;
                for (int c = 0; c < C; c++) dt += vf[c] * w[(size_t)c * p->Hkv + h];
                double sp = softplus(dt);
                size_t zi = ((size_t)b * p->Hkv + h) * p->Nk + j;
                z[zi] = p->dma_mode == DMA_MODE_EXP ? exp(a[h] * sp) : a[h] * sp;
                if (dt_out) dt_out[zi] = dt;
            }
        }
    for (size_t e = 0; e < nz; e++)
        if (!isfinite(z[e])) {
            st = ATTN_ERR_NONFINITE;
            break;
        }
done:
    attn_free(w);
    attn_free(bdt);
    attn_free(a);
    ref_tensor_free(&v);
    return st;
}

int dma_ref_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return attn_params_check(p, ATTN_DMA, backward, why, why_len) == ATTN_OK;
}

attn_status dma_ref_forward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_DMA, 0, NULL, 0);
    if (st != ATTN_OK) return st;
    size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    dma_ctx c = {0};
    double *z = attn_alloc(nz * sizeof(double));
    if (!z) {
        st = ATTN_ERR_OOM;
        goto done;
    }
    if ((st = dma_scores(p, z, NULL)) != ATTN_OK) goto done;
    c.z = z;
    st = ref_attention_forward(p, select_topw, &c, z);
    if (st == ATTN_OK && p->z_out) ref_store_aux(z, p->z_out, attn_aux_is_f64(p), nz);
done:
    attn_free(z);
    return st;
}

attn_status dma_ref_backward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_DMA, 1, NULL, 0);
    if (st != ATTN_OK) return st;
    int f64 = attn_aux_is_f64(p);
    size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    int C = p->Hkv * p->D;
    dma_ctx c = {0};
    double *z = attn_alloc(nz * sizeof(double)), *dt = attn_alloc(nz * sizeof(double));
    double *dz = attn_calloc(nz, sizeof(double));
    double *w = NULL, *a = NULL, *dw = NULL, *db = NULL, *da = NULL, *dv_extra = NULL;
    ref_tensor v = {0};
    if (!z || !dt || !dz) {
        st = ATTN_ERR_OOM;
        goto done;
    }
    if ((st = dma_scores(p, z, dt)) != ATTN_OK) goto done;
    c.z = z;
    if (p->w_dt) {
        /* dz flows through z(dt(V)) into w_dt, b_dt, a and back into dv */
        if ((st = ref_attention_backward(p, select_topw, &c, z, dz, NULL)) != ATTN_OK) goto done;
        if ((st = ref_load_aux(&w, p->w_dt, f64, (size_t)C * p->Hkv)) != ATTN_OK ||
            (st = ref_load_aux(&a, p->a, f64, (size_t)p->Hkv)) != ATTN_OK ||
            (st = ref_load(&v, p->v, p->dtype, p->v_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK)
            goto done;
        dw = attn_calloc((size_t)C * p->Hkv, sizeof(double));
        db = attn_calloc((size_t)p->Hkv, sizeof(double));
        da = attn_calloc((size_t)p->Hkv, sizeof(double));
        dv_extra = attn_calloc((size_t)p->B * p->Nk * C, sizeof(double));
        if (!dw || !db || !da || !dv_extra) {
            st = ATTN_ERR_OOM;
            goto done;
        }
        for (int b = 0; b < p->B; b++)
            for (int j = 0; j < p->Nk; j++) {
                const double *vf = ref_row(&v, b, j, 0);
                double *dvf = dv_extra + ((size_t)b * p->Nk + j) * C;
                for (int h = 0; h < p->Hkv; h++) {
                    size_t zi = ((size_t)b * p->Hkv + h) * p->Nk + j;
                    double sp = softplus(dt[zi]), g = dz[zi], dsp;
                    if (p->dma_mode == DMA_MODE_EXP) { /* z = exp(a sp) */
                        da[h] += g * z[zi] * sp;
                        dsp = g * z[zi] * a[h];
                    } else { /* z = a sp */
                        da[h] += g * sp;
                        dsp = g * a[h];
                    }
                    double ddt = dsp * sigmoid(dt[zi]);
                    db[h] += ddt;
                    for (int cc = 0; cc < C; cc++) {
                        dw[(size_t)cc * p->Hkv + h] += vf[cc] * ddt;
                        dvf[cc] += w[(size_t)cc * p->Hkv + h] * ddt;
                    }
                }
            }
        /* second pass writes dv with the score path included */
        if ((st = ref_attention_backward(p, select_topw, &c, z, NULL, dv_extra)) != ATTN_OK) goto done;
        ref_store_aux(dw, p->dw_dt, f64, (size_t)C * p->Hkv);
        ref_store_aux(da, p->da, f64, (size_t)p->Hkv);
        if (p->b_dt) ref_store_aux(db, p->db_dt, f64, (size_t)p->Hkv);
    } else {
        if ((st = ref_attention_backward(p, select_topw, &c, z, dz, NULL)) != ATTN_OK) goto done;
    }
    if (p->dz) ref_store_aux(dz, p->dz, f64, nz);
done:
    attn_free(z);
    attn_free(dt);
    attn_free(dz);
    attn_free(w);
    attn_free(a);
    attn_free(dw);
    attn_free(db);
    attn_free(da);
    attn_free(dv_extra);
    ref_tensor_free(&v);
    return st;
}
