/*
 * ref_common.c: double-precision helpers for the reference operators.
 */
#include "ref_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"

static double load_elem(const void *src, attn_dtype t, int64_t i) {
    switch (t) {
    case ATTN_DTYPE_F32: return ((const float *)src)[i];
    case ATTN_DTYPE_F16: return f16_to_f32(((const uint16_t *)src)[i]);
    case ATTN_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)src)[i]);
    case ATTN_DTYPE_F64: return ((const double *)src)[i];
    }
    return NAN;
}

static void store_elem(void *dst, attn_dtype t, int64_t i, double v) {
    switch (t) {
    case ATTN_DTYPE_F32: ((float *)dst)[i] = (float)v; break;
    case ATTN_DTYPE_F16: ((uint16_t *)dst)[i] = f32_to_f16((float)v); break;
    case ATTN_DTYPE_BF16: ((uint16_t *)dst)[i] = f32_to_bf16((float)v); break;
    case ATTN_DTYPE_F64: ((double *)dst)[i] = v; break;
    }
}

attn_status ref_zeros(ref_tensor *out, int B, int N, int H, int D) {
    out->B = B;
    out->N = N;
    out->H = H;
    out->D = D;
    out->x = attn_calloc((size_t)B * N * H * D, sizeof(double));
    return out->x ? ATTN_OK : ATTN_ERR_OOM;
}

attn_status ref_load(ref_tensor *out, const void *src, attn_dtype t, attn_stride st, int B, int N,
                     int H, int D) {
    attn_status s = ref_zeros(out, B, N, H, D);
    if (s != ATTN_OK) return s;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++) {
                int64_t base = b * st.b + n * st.s + h * st.h;
                double *row = ref_row(out, b, n, h);
                for (int d = 0; d < D; d++) {
                    row[d] = load_elem(src, t, base + d);
                    if (!isfinite(row[d])) {
                        ref_tensor_free(out);
                        return ATTN_ERR_NONFINITE;
                    }
                }
            }
    return ATTN_OK;
}

void ref_store(const ref_tensor *in, void *dst, attn_dtype t, attn_stride st) {
    for (int b = 0; b < in->B; b++)
        for (int n = 0; n < in->N; n++)
            for (int h = 0; h < in->H; h++) {
                int64_t base = b * st.b + n * st.s + h * st.h;
                const double *row = ref_row(in, b, n, h);
                for (int d = 0; d < in->D; d++) store_elem(dst, t, base + d, row[d]);
            }
}

void ref_tensor_free(ref_tensor *t) {
    attn_free(t->x);
    t->x = NULL;
}

attn_status ref_load_aux(double **out, const void *src, int f64, size_t n) {
    *out = attn_calloc(n ? n : 1, sizeof(double));
    if (!*out) return ATTN_ERR_OOM;
    for (size_t i = 0; i < n; i++) {
        double v = f64 ? ((const double *)src)[i] : ((const float *)src)[i];
        if (!isfinite(v)) {
            attn_free(*out);
            *out = NULL;
            return ATTN_ERR_NONFINITE;
        }
        (*out)[i] = v;
    }
    return ATTN_OK;
}

void ref_store_aux(const double *in, void *dst, int f64, size_t n) {
    for (size_t i = 0; i < n; i++) ref_set_aux(dst, f64, i, in[i]);
}

void ref_set_aux(void *dst, int f64, size_t i, double v) {
    if (f64) ((double *)dst)[i] = v;
    else ((float *)dst)[i] = (float)v;
}

int ref_aux_finite(const void *src, int f64, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = f64 ? ((const double *)src)[i] : ((const float *)src)[i];
        if (!isfinite(v)) return 0;
    }
    return 1;
}

static double dot(const double *a, const double *b, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

double ref_row_forward(const double *q, const double *K, const double *V, int64_t kstride,
                       const int *idx, int n, const double *bias, double scale, int D, double *o) {
    memset(o, 0, (size_t)D * sizeof(double));
    if (n == 0) return -INFINITY;
    double mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        double l = scale * dot(q, K + idx[j] * kstride, D) + (bias ? bias[j] : 0.0);
        if (l > mx) mx = l;
    }
    double sum = 0;
    for (int j = 0; j < n; j++) {
        double l = scale * dot(q, K + idx[j] * kstride, D) + (bias ? bias[j] : 0.0);
        double e = exp(l - mx);
        sum += e;
        const double *vr = V + idx[j] * kstride;
        for (int d = 0; d < D; d++) o[d] += e * vr[d];
    }
    for (int d = 0; d < D; d++) o[d] /= sum;
    return mx + log(sum);
}

void ref_row_backward(const double *q, const double *K, const double *V, int64_t kstride,
                      const int *idx, int n, const double *bias, double scale, int D,
                      const double *o, double lse, const double *dout, double *dq, double *dK,
                      double *dV, double *dbias) {
    if (n == 0) return;
    double Di = dot(dout, o, D);
    for (int j = 0; j < n; j++) {
        const double *kr = K + idx[j] * kstride;
        const double *vr = V + idx[j] * kstride;
        double l = scale * dot(q, kr, D) + (bias ? bias[j] : 0.0);
        double P = exp(l - lse);
        double dP = dot(dout, vr, D);
        double dS = P * (dP - Di);
        double *dkr = dK + idx[j] * kstride;
        double *dvr = dV + idx[j] * kstride;
        for (int d = 0; d < D; d++) {
            dq[d] += scale * dS * kr[d];
            dkr[d] += scale * dS * q[d];
            dvr[d] += P * dout[d];
        }
        if (dbias) dbias[j] += dS;
    }
}

/* ---- the generic reference ---- */

int ref_select_visible(const attn_params *p, void *ctx, int b, int hkv, int64_t i, int *idx) {
    (void)ctx;
    (void)b;
    (void)hkv;
    int n = (int)attn_visible(p, i);
    for (int j = 0; j < n; j++) idx[j] = j;
    return n;
}

int ref_select_window(const attn_params *p, void *ctx, int b, int hkv, int64_t i, int *idx) {
    (void)ctx;
    (void)b;
    (void)hkv;
    int64_t hi = attn_visible(p, i); /* keys [lo, hi) */
    int64_t lo = attn_qpos(p, i) + 1 - p->w;
    if (lo < 0) lo = 0;
    int n = 0;
    for (int64_t j = lo; j < hi; j++) idx[n++] = (int)j;
    return n;
}

typedef struct {
    ref_tensor q, k, v;
    int *idx;
    double *bias, *orow;
} ref_state;

static void ref_state_free(ref_state *s) {
    ref_tensor_free(&s->q);
    ref_tensor_free(&s->k);
    ref_tensor_free(&s->v);
    attn_free(s->idx);
    attn_free(s->bias);
    attn_free(s->orow);
}

static attn_status ref_state_init(ref_state *s, const attn_params *p) {
    memset(s, 0, sizeof *s);
    attn_status st;
    if ((st = ref_load(&s->q, p->q, p->dtype, p->q_st, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK ||
        (st = ref_load(&s->k, p->k, p->dtype, p->k_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK ||
        (st = ref_load(&s->v, p->v, p->dtype, p->v_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK)
        goto fail;
    s->idx = attn_alloc((size_t)p->Nk * sizeof(int));
    s->bias = attn_alloc((size_t)p->Nk * sizeof(double));
    s->orow = attn_alloc((size_t)p->D * sizeof(double));
    if (!s->idx || !s->bias || !s->orow) {
        st = ATTN_ERR_OOM;
        goto fail;
    }
    return ATTN_OK;
fail:
    ref_state_free(s);
    return st;
}

/* Gathers the bias of the selected keys; returns NULL when there is no bias. */
static const double *gather_bias(const attn_params *p, const double *key_bias, int b, int hkv,
                                 const int *idx, int n, double *out) {
    if (!key_bias) return NULL;
    const double *zb = key_bias + ((int64_t)b * p->Hkv + hkv) * p->Nk;
    for (int j = 0; j < n; j++) out[j] = zb[idx[j]];
    return out;
}

attn_status ref_attention_forward(const attn_params *p, ref_select_fn sel, void *ctx,
                                  const double *key_bias) {
    ref_state s;
    attn_status st = ref_state_init(&s, p);
    if (st != ATTN_OK) return st;
    ref_tensor o;
    if ((st = ref_zeros(&o, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK) {
        ref_state_free(&s);
        return st;
    }
    int group = p->Hq / p->Hkv;
    int f64 = attn_aux_is_f64(p);
    for (int b = 0; b < p->B; b++)
        for (int h = 0; h < p->Hq; h++) {
            int hkv = h / group;
            for (int64_t i = 0; i < p->Nq; i++) {
                int n = sel(p, ctx, b, hkv, i, s.idx);
                const double *bias = gather_bias(p, key_bias, b, hkv, s.idx, n, s.bias);
                double lse = ref_row_forward(ref_row(&s.q, b, (int)i, h), ref_row(&s.k, b, 0, hkv),
                                             ref_row(&s.v, b, 0, hkv), (int64_t)p->Hkv * p->D, s.idx,
                                             n, bias, p->scale, p->D, ref_row(&o, b, (int)i, h));
                ref_set_aux(p->lse, f64, ((size_t)b * p->Hq + h) * p->Nq + i, lse);
            }
        }
    ref_store(&o, p->o, p->dtype, p->o_st);
    ref_tensor_free(&o);
    ref_state_free(&s);
    return ATTN_OK;
}

attn_status ref_attention_backward(const attn_params *p, ref_select_fn sel, void *ctx,
                                   const double *key_bias, double *dkey_bias,
                                   const double *dv_extra) {
    ref_state s;
    attn_status st = ref_state_init(&s, p);
    if (st != ATTN_OK) return st;
    ref_tensor dout = {0}, dq = {0}, dk = {0}, dv = {0};
    double *dbias = attn_alloc((size_t)p->Nk * sizeof(double));
    if (!dbias) {
        st = ATTN_ERR_OOM;
        goto done;
    }
    if ((st = ref_load(&dout, p->dout, p->dtype, p->do_st, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK ||
        (st = ref_zeros(&dq, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK ||
        (st = ref_zeros(&dk, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK ||
        (st = ref_zeros(&dv, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK)
        goto done;
    int group = p->Hq / p->Hkv;
    int64_t ks = (int64_t)p->Hkv * p->D;
    for (int b = 0; b < p->B; b++)
        for (int h = 0; h < p->Hq; h++) {
            int hkv = h / group;
            for (int64_t i = 0; i < p->Nq; i++) {
                int n = sel(p, ctx, b, hkv, i, s.idx);
                const double *bias = gather_bias(p, key_bias, b, hkv, s.idx, n, s.bias);
                const double *qr = ref_row(&s.q, b, (int)i, h);
                const double *K = ref_row(&s.k, b, 0, hkv), *V = ref_row(&s.v, b, 0, hkv);
                double lse = ref_row_forward(qr, K, V, ks, s.idx, n, bias, p->scale, p->D, s.orow);
                for (int j = 0; j < n; j++) dbias[j] = 0;
                ref_row_backward(qr, K, V, ks, s.idx, n, bias, p->scale, p->D, s.orow, lse,
                                 ref_row(&dout, b, (int)i, h), ref_row(&dq, b, (int)i, h),
                                 ref_row(&dk, b, 0, hkv), ref_row(&dv, b, 0, hkv), dbias);
                if (dkey_bias) {
                    double *db = dkey_bias + ((int64_t)b * p->Hkv + hkv) * p->Nk;
                    for (int j = 0; j < n; j++) db[s.idx[j]] += dbias[j];
                }
            }
        }
    if (dv_extra)
        for (size_t e = 0; e < (size_t)p->B * p->Nk * p->Hkv * p->D; e++) dv.x[e] += dv_extra[e];
    ref_store(&dq, p->dq, p->dtype, p->dq_st);
    ref_store(&dk, p->dk, p->dtype, p->dk_st);
    ref_store(&dv, p->dv, p->dtype, p->dv_st);
done:
    attn_free(dbias);
    ref_tensor_free(&dout);
    ref_tensor_free(&dq);
    ref_tensor_free(&dk);
    ref_tensor_free(&dv);
    ref_state_free(&s);
    return st;
}
