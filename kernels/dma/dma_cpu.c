/*
 * dma_cpu.c: the fast CPU Dynamic Mask Attention (fp32, OpenMP, SIMD clones).
 *
 * 1. z (B, Hkv, Nk): given, or dt = V_flat w_dt + b_dt (double accumulation) and
 *    z = exp(a softplus(dt)) or a softplus(dt).
 * 2. Per (batch, kv head), one pass over the keys with a min-heap of the w best
 *    (z, j) gives each query's threshold t_i: query i keeps key j <= i' iff
 *    (z_j, j) >= t_i. O(Nk log w) time, O(Nq) memory: never an Nq x Nk mask.
 * 3. Per query tile [i0, i1), the keys any of its rows may keep are
 *    { j <= (i1-1)' : (z_j, j) >= t_i0 } (t never decreases with i): at most
 *    w + (i1 - i0) keys, compacted into a list the tiled engine attends over, so
 *    the work grows with w and not with Nk, however scattered the kept keys are.
 * The backward recomputes 1-3 and adds the chain rule from dz into da, db_dt,
 * dw_dt and dv.
 */
#include "dma.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpu_attn.h"

int dma_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cpu_attn_supports(p, ATTN_DMA, backward, why, why_len);
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

typedef struct {
    const attn_params *p;
    float *z;        /* (B, Hkv, Nk) */
    float *dt;       /* (B, Hkv, Nk) when computed from w_dt, else NULL */
    float *tz;       /* (B, Hkv, Nq) */
    int32_t *tj;     /* (B, Hkv, Nq) */
    double list_s;   /* seconds spent building tile lists (summed over threads) */
} dma_state;

/* z from the inputs; returns ATTN_ERR_NONFINITE on NaN/Inf. */
static attn_status compute_z(const attn_params *p, dma_state *st) {
    size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    int bad = 0;
    if (!p->w_dt) {
        const float *zin = p->z;
        for (size_t e = 0; e < nz; e++) {
            st->z[e] = zin[e];
            if (!isfinite(zin[e])) bad = 1;
        }
        return bad ? ATTN_ERR_NONFINITE : ATTN_OK;
    }
    const float *w = p->w_dt, *bdt = p->b_dt, *a = p->a, *V = p->v;
    int Hkv = p->Hkv, D = p->D;
#pragma omp parallel for collapse(2) schedule(static) reduction(| : bad)
    for (int b = 0; b < p->B; b++)
        for (int j = 0; j < p->Nk; j++) {
            double acc[64];
            for (int h0 = 0; h0 < Hkv; h0 += 64) {
                int hn = Hkv - h0 < 64 ? Hkv - h0 : 64;
                for (int h = 0; h < hn; h++) acc[h] = bdt ? bdt[h0 + h] : 0.0;
                for (int g = 0; g < Hkv; g++) {
                    const float *vr = V + b * p->v_st.b + (int64_t)j * p->v_st.s + g * p->v_st.h;
                    for (int d = 0; d < D; d++) {
                        const float *wr = w + ((size_t)g * D + d) * Hkv + h0;
                        double x = vr[d];
                        for (int h = 0; h < hn; h++) acc[h] += x * wr[h];
                    }
                }
                for (int h = 0; h < hn; h++) {
                    size_t zi = ((size_t)b * Hkv + h0 + h) * p->Nk + j;
                    double sp = softplus(acc[h]);
                    double z = p->dma_mode == DMA_MODE_EXP ? exp(a[h0 + h] * sp) : a[h0 + h] * sp;
                    st->z[zi] = (float)z;
                    st->dt[zi] = (float)acc[h];
                    if (!isfinite(st->z[zi])) bad = 1;
                }
            }
        }
    return bad ? ATTN_ERR_NONFINITE : ATTN_OK;
}

/* (z, j) ordering of selection: 1 when (za, ja) < (zb, jb). */
static inline int key_less(float za, int32_t ja, float zb, int32_t jb) { return za < zb || (za == zb && ja < jb); }

/* Per-query thresholds for one (b, hkv) with a min-heap of the best w keys. */
static void thresholds_unit(const attn_params *p, const float *zr, float *tz, int32_t *tj, float *hz, int32_t *hj) {
    int w = p->w, n = 0;
    int64_t off = (int64_t)p->Nk - p->Nq; /* query i sits at i + off */
    for (int64_t i = 0; i < p->Nq && i + off < 0; i++) tz[i] = -INFINITY, tj[i] = INT32_MIN;
    for (int32_t j = 0; j < p->Nk; j++) {
        float z = zr[j];
        if (n < w) { /* push and sift up */
            int c = n++;
            while (c > 0) {
                int par = (c - 1) / 2;
                if (!key_less(z, j, hz[par], hj[par])) break;
                hz[c] = hz[par], hj[c] = hj[par];
                c = par;
            }
            hz[c] = z, hj[c] = j;
        } else if (key_less(hz[0], hj[0], z, j)) { /* replace the root and sift down */
            int c = 0;
            for (;;) {
                int l = 2 * c + 1, r = l + 1, m = c;
                float mz = z;
                int32_t mj = j;
                if (l < n && key_less(hz[l], hj[l], mz, mj)) m = l, mz = hz[l], mj = hj[l];
                if (r < n && key_less(hz[r], hj[r], mz, mj)) m = r;
                if (m == c) break;
                hz[c] = hz[m], hj[c] = hj[m];
                c = m;
            }
            hz[c] = z, hj[c] = j;
        }
        if (p->causal) {
            int64_t i = (int64_t)j - off;
            if (i >= 0 && i < p->Nq) {
                tz[i] = j + 1 > w ? hz[0] : -INFINITY;
                tj[i] = j + 1 > w ? hj[0] : INT32_MIN;
            }
        }
    }
    if (!p->causal)
        for (int64_t i = 0; i < p->Nq; i++) {
            tz[i] = p->Nk > w ? hz[0] : -INFINITY;
            tj[i] = p->Nk > w ? hj[0] : INT32_MIN;
        }
}

static attn_status thresholds(const attn_params *p, dma_state *st) {
    int units = p->B * p->Hkv, failed = 0;
#pragma omp parallel
    {
        float *hz = attn_alloc((size_t)p->w * sizeof(float));
        int32_t *hj = attn_alloc((size_t)p->w * sizeof(int32_t));
        if (!hz || !hj) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < units; u++)
            if (hz && hj)
                thresholds_unit(p, st->z + (size_t)u * p->Nk, st->tz + (size_t)u * p->Nq, st->tj + (size_t)u * p->Nq,
                                hz, hj);
        attn_free(hz);
        attn_free(hj);
    }
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}

/* The compacted key list of a query tile (see the file comment). */
static int tile_keys(const cpu_attn_spec *s, const attn_params *p, int b, int hkv, int i0, int i1, int32_t *out,
                     int cap) {
    dma_state *st = (dma_state *)s->ctx;
    double t0 = omp_get_wtime();
    size_t u = (size_t)b * p->Hkv + hkv;
    const float *zr = st->z + u * p->Nk;
    float tz = st->tz[u * p->Nq + i0];
    int32_t tj = st->tj[u * p->Nq + i0];
    int64_t lo, hi;
    cpu_row_bounds(p, 0, i1 - 1, &lo, &hi);
    int n = 0;
    for (int32_t j = 0; j <= hi && n < cap; j++)
        if (zr[j] > tz || (zr[j] == tz && j >= tj)) out[n++] = j;
    double dt = omp_get_wtime() - t0;
#pragma omp atomic
    st->list_s += dt;
    return n;
}

/* Allocates the state and runs steps 1 and 2. */
static attn_status prepare(const attn_params *p, dma_state *st, cpu_attn_spec *s) {
    memset(st, 0, sizeof *st);
    memset(s, 0, sizeof *s);
    st->p = p;
    size_t nz = (size_t)p->B * p->Hkv * p->Nk, nq = (size_t)p->B * p->Hkv * p->Nq;
    st->z = attn_alloc(nz * sizeof(float));
    st->dt = p->w_dt ? attn_alloc(nz * sizeof(float)) : NULL;
    st->tz = attn_alloc(nq * sizeof(float));
    st->tj = attn_alloc(nq * sizeof(int32_t));
    if (!st->z || (p->w_dt && !st->dt) || !st->tz || !st->tj) return ATTN_ERR_OOM;
    attn_status r = compute_z(p, st);
    if (r == ATTN_OK) r = thresholds(p, st);
    s->z = st->z;
    s->tz = st->tz;
    s->tj = st->tj;
    s->tile_keys = tile_keys;
    /* a tile's list holds at most w + (its queries) keys, and never more than Nk */
    int64_t cap = (int64_t)p->w + CPU_MAX_TILE_Q;
    s->max_tile_keys = (int)(cap < p->Nk ? cap : p->Nk);
    s->ctx = st;
    return r;
}

static void release(dma_state *st) {
    attn_free(st->z);
    attn_free(st->dt);
    attn_free(st->tz);
    attn_free(st->tj);
}

attn_status dma_cpu_forward(const attn_params *p) {
    if (!dma_cpu_supports(p, 0, NULL, 0))
        return attn_params_check(p, ATTN_DMA, 0, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    double t0 = omp_get_wtime();
    dma_state st;
    cpu_attn_spec s;
    attn_status r = prepare(p, &st, &s);
    double t1 = omp_get_wtime();
    if (r == ATTN_OK) r = cpu_attn_forward(p, &s);
    if (r == ATTN_OK && p->z_out) memcpy(p->z_out, st.z, (size_t)p->B * p->Hkv * p->Nk * sizeof(float));
    if (p->stats) p->stats->select_ms += 1e3 * ((t1 - t0) + st.list_s / omp_get_max_threads());
    release(&st);
    return r;
}

attn_status dma_cpu_backward(const attn_params *p) {
    if (!dma_cpu_supports(p, 1, NULL, 0))
        return attn_params_check(p, ATTN_DMA, 1, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    dma_state st;
    cpu_attn_spec s;
    size_t nz = (size_t)p->B * p->Hkv * p->Nk;
    float *dz = attn_alloc(nz * sizeof(float));
    double t0 = omp_get_wtime();
    attn_status r = dz ? prepare(p, &st, &s) : ATTN_ERR_OOM;
    double t1 = omp_get_wtime();
    if (r == ATTN_OK) r = cpu_attn_backward(p, &s, dz);
    if (dz && p->stats) p->stats->select_ms += 1e3 * ((t1 - t0) + st.list_s / omp_get_max_threads());
    if (r == ATTN_OK && p->dz) memcpy(p->dz, dz, nz * sizeof(float));
    if (r == ATTN_OK && p->w_dt) {
        /* chain rule: ddt = dz * dz/ddt; then da, db_dt, dw_dt and dv += ddt w_dt^T */
        int Hkv = p->Hkv, D = p->D, C = Hkv * D;
        const float *a = p->a, *w = p->w_dt, *V = p->v;
        float *ddt = dz; /* overwritten in place */
        double *das = attn_calloc((size_t)Hkv * 2, sizeof(double));
        if (!das) {
            r = ATTN_ERR_OOM;
            goto done;
        }
        for (int h = 0; h < Hkv; h++) { /* serial over keys: a fixed summation order */
            double sa = 0, sb = 0;
            for (int b = 0; b < p->B; b++)
                for (int j = 0; j < p->Nk; j++) {
                    size_t zi = ((size_t)b * Hkv + h) * p->Nk + j;
                    double dtv = st.dt[zi], sp = softplus(dtv), g = dz[zi], dsp;
                    if (p->dma_mode == DMA_MODE_EXP) {
                        sa += g * st.z[zi] * sp;
                        dsp = g * st.z[zi] * a[h];
                    } else {
                        sa += g * sp;
                        dsp = g * a[h];
                    }
                    double d = dsp * sigmoid(dtv);
                    sb += d;
                    ddt[zi] = (float)d;
                }
            das[2 * h] = sa, das[2 * h + 1] = sb;
        }
        for (int h = 0; h < Hkv; h++) {
            ((float *)p->da)[h] = (float)das[2 * h];
            if (p->b_dt) ((float *)p->db_dt)[h] = (float)das[2 * h + 1];
        }
        attn_free(das);
        /* dw_dt[c, h] = sum_{b, j} V_flat[b, j, c] ddt[b, h, j]: parallel over c */
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            int g = c / D, d = c % D;
            for (int h = 0; h < Hkv; h++) {
                double s2 = 0;
                for (int b = 0; b < p->B; b++) {
                    const float *vb = V + b * p->v_st.b + g * p->v_st.h + d;
                    const float *db2 = ddt + ((size_t)b * Hkv + h) * p->Nk;
                    for (int j = 0; j < p->Nk; j++) s2 += (double)vb[(int64_t)j * p->v_st.s] * db2[j];
                }
                ((float *)p->dw_dt)[(size_t)c * Hkv + h] = (float)s2;
            }
        }
        /* dv[b, j, g, d] += sum_h w_dt[g*D + d, h] ddt[b, h, j] */
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < p->B; b++)
            for (int j = 0; j < p->Nk; j++)
                for (int g = 0; g < Hkv; g++) {
                    float *dvr = (float *)p->dv + b * p->dv_st.b + (int64_t)j * p->dv_st.s + g * p->dv_st.h;
                    for (int d = 0; d < D; d++) {
                        const float *wr = w + ((size_t)g * D + d) * Hkv;
                        double s3 = 0;
                        for (int h = 0; h < Hkv; h++) s3 += (double)wr[h] * ddt[((size_t)b * Hkv + h) * p->Nk + j];
                        dvr[d] += (float)s3;
                    }
                }
    }
done:
    if (dz) release(&st);
    attn_free(dz);
    return r;
}
