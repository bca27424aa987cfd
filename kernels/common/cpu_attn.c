/*
 * cpu_attn.c: the tiled CPU attention engine (see cpu_attn.h).
 *
 * Forward, per work item (batch b, kv head hkv, query tile):
 *   gather the tile's rows (G heads x bq queries) into Q (pre-scaled by s), then for
 *   each chunk of CPU_KB keys from the tile's key list: transpose K into KT, copy V,
 *   and for each block of 4 rows compute S = Q KT (+ z) in registers, mask, update
 *   the running max m and sum l, and accumulate O = alpha O + P V.
 * Backward, per work item (b, hkv, chunk of query tiles): the same walk over keys,
 *   recomputing P = exp(S - lse), then dP = dO VT, dS = P (dP - Di), dQ += dS K,
 *   and per group of 4 keys dK += dS^T Q, dV += P^T dO into the item's buffers.
 *
 * Tuning: rows per tile ~128 (a tile's Q, O and dO stay in L2 while the keys
 * stream through L1). The loops over vectors live in cpu_attn_tile.inc, compiled
 * once per instruction set at its native width (simd.h); their register blocks
 * are 4 rows x 2 vectors of keys for S (8 accumulators) and 4 rows x VB vectors
 * of dims for the P V and dS^T Q updates (16 accumulators with AVX-512, 8 with
 * AVX2 and SSE2).
 */
#include "cpu_attn.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CPU_ROWS 128 /* target rows (heads x queries) per tile */
#define RB 4         /* rows per register block */

static int tile_queries(const attn_params *p, const cpu_attn_spec *s) {
    if (s->tile_q > 0) return s->tile_q < CPU_MAX_TILE_Q ? s->tile_q : CPU_MAX_TILE_Q;
    int g = p->Hq / p->Hkv;
    int bq = CPU_ROWS / g;
    return bq < 1 ? 1 : bq;
    _Static_assert(CPU_ROWS <= CPU_MAX_TILE_Q, "tiles must not exceed CPU_MAX_TILE_Q queries");
}

static int pad16(int d) { return (d + CPU_DALIGN - 1) / CPU_DALIGN * CPU_DALIGN; }

void cpu_row_bounds(const attn_params *p, int window, int64_t i, int64_t *lo, int64_t *hi) {
    if (!p->causal) {
        *lo = 0;
        *hi = p->Nk - 1;
        return;
    }
    int64_t ip = attn_qpos(p, i);
    *hi = ip < p->Nk - 1 ? ip : p->Nk - 1;
    *lo = window > 0 ? ip - window + 1 : 0;
    if (*lo < 0) *lo = 0;
}

int cpu_attn_supports(const attn_params *p, attn_variant v, int backward, char *why, size_t why_len) {
    if (attn_params_check(p, v, backward, why, why_len) != ATTN_OK) return 0;
    if (p->dtype != ATTN_DTYPE_F32) {
        if (why && why_len) snprintf(why, why_len, "the cpu backend computes in f32 only (got %s)", attn_dtype_name(p->dtype));
        return 0;
    }
    if ((int64_t)p->Nk > INT32_MAX - 64 || (int64_t)p->Nq > INT32_MAX - 64) {
        if (why && why_len) snprintf(why, why_len, "sequence too long for the cpu backend");
        return 0;
    }
    return 1;
}

/* ---- per-thread workspace ---- */

typedef struct {
    int R, Dp, nkeys_cap;
    float *q, *o, *dout, *dq;      /* [R][Dp] */
    float *m, *l, *lse, *di;       /* [R] */
    int32_t *qi;                   /* [R] query index of each row, -1 for padding */
    float *kt, *vt;                /* [Dp][KB] */
    float *kc, *vc;                /* [KB][Dp] */
    float *kt0, *vt0, *kc0, *vc0;  /* the own buffers of kt, vt, kc, vc (those point into
                                      spec->packed for a packed chunk) */
    float *zc;                     /* [KB] */
    int32_t *kidx;                 /* [KB] */
    int32_t *rlo, *rhi;            /* [KB] the queries that keep each key: [rlo, rhi] */
    float *pb, *ds;                /* [R][KB] */
    int32_t *keys;                 /* [nkeys_cap] */
} cpu_ws;

static void ws_free(cpu_ws *w) {
    attn_free(w->q);
    memset(w, 0, sizeof *w);
}

/* One allocation carved into every buffer. */
static int ws_init(cpu_ws *w, int R, int Dp, int nkeys_cap) {
    memset(w, 0, sizeof *w);
    w->R = R, w->Dp = Dp, w->nkeys_cap = nkeys_cap;
    size_t f = (size_t)R * Dp;
    size_t total = 4 * f + 8 * (size_t)R + 2 * (size_t)Dp * CPU_KB + 2 * (size_t)CPU_KB * Dp + 4 * CPU_KB +
                   2 * (size_t)R * CPU_KB + (size_t)nkeys_cap + 64;
    float *base = attn_alloc(total * sizeof(float));
    if (!base) return -1;
    float *c = base;
#define TAKE(ptr, n, T)            \
    do {                           \
        ptr = (T *)c;              \
        c += ((n) + 15) / 16 * 16; \
    } while (0)
    TAKE(w->q, f, float);
    TAKE(w->o, f, float);
    TAKE(w->dout, f, float);
    TAKE(w->dq, f, float);
    TAKE(w->m, R, float);
    TAKE(w->l, R, float);
    TAKE(w->lse, R, float);
    TAKE(w->di, R, float);
    TAKE(w->qi, R, int32_t);
    TAKE(w->kt, (size_t)Dp * CPU_KB, float);
    TAKE(w->vt, (size_t)Dp * CPU_KB, float);
    TAKE(w->kc, (size_t)CPU_KB * Dp, float);
    TAKE(w->vc, (size_t)CPU_KB * Dp, float);
    TAKE(w->zc, CPU_KB, float);
    TAKE(w->kidx, CPU_KB, int32_t);
    TAKE(w->rlo, CPU_KB, int32_t);
    TAKE(w->rhi, CPU_KB, int32_t);
    TAKE(w->pb, (size_t)R * CPU_KB, float);
    TAKE(w->ds, (size_t)R * CPU_KB, float);
    TAKE(w->keys, nkeys_cap, int32_t);
#undef TAKE
    w->kt0 = w->kt, w->vt0 = w->vt, w->kc0 = w->kc, w->vc0 = w->vc;
    return 0; /* w->q is the first buffer: ws_free frees all */
}

/* ---- tile setup shared by forward and backward ---- */

typedef struct {
    int b, hkv, i0, i1, G, nrows, R, nkeys;
} tile_info;

static int default_tile_keys(const attn_params *p, int window, int i0, int i1, int32_t *out, int cap) {
    int64_t lo, hi, lo2, hi2;
    cpu_row_bounds(p, window, i0, &lo, &hi);
    cpu_row_bounds(p, window, i1 - 1, &lo2, &hi2);
    int n = 0;
    for (int64_t j = lo; j <= hi2 && n < cap; j++) out[n++] = (int32_t)j;
    return n;
}

/* Fills the row metadata of a tile (rows are r = qi * G + hh) and its key list. */
static void tile_rows(const attn_params *p, const cpu_attn_spec *s, cpu_ws *w, tile_info *t) {
    for (int r = 0; r < t->R; r++) w->qi[r] = r < t->nrows ? t->i0 + r / t->G : -1;
    if (s->tile_keys)
        t->nkeys = s->tile_keys(s, p, t->b, t->hkv, t->i0, t->i1, w->keys, w->nkeys_cap);
    else
        t->nkeys = default_tile_keys(p, s->window, t->i0, t->i1, w->keys, w->nkeys_cap);
}

/* The queries of tile t that keep key j: [*rlo, *rhi] (empty when rhi < rlo).
 * Causal: from query j - (Nk - Nq) on; with a window, for w queries; with dma's
 * thresholds, up to the last query whose threshold (z_j, j) still passes (the
 * thresholds never decrease, so that set is an interval too). */
static void key_rows(const attn_params *p, const cpu_attn_spec *s, const tile_info *t, int32_t j, float zj,
                     int32_t *rlo, int32_t *rhi) {
    int64_t lo = 0, hi = INT32_MAX - 1;
    if (p->causal) {
        lo = (int64_t)j - ((int64_t)p->Nk - p->Nq);
        if (s->window > 0) hi = lo + s->window - 1;
        if (lo < 0) lo = 0;
    }
    if (s->tz) { /* last query in [i0, i1) with (tz_i, tj_i) <= (zj, j) */
        size_t u = ((size_t)t->b * p->Hkv + t->hkv) * p->Nq;
        const float *tz = s->tz + u;
        const int32_t *tj = s->tj + u;
        int a = t->i0, b = t->i1; /* answer in [a - 1, b - 1] */
        while (a < b) {
            int mid = a + (b - a) / 2;
            if (tz[mid] < zj || (tz[mid] == zj && tj[mid] <= j)) a = mid + 1;
            else b = mid;
        }
        int last = a - 1;
        if (last < t->i1 - 1 && last < hi) hi = last;
    }
    *rlo = (int32_t)lo;
    *rhi = (int32_t)(hi > INT32_MAX - 1 ? INT32_MAX - 1 : hi);
}

/* Copies rows of a bshd fp32 tensor into a [R][Dp] tile (times mul), zero padded. */
static void load_rows(const float *src, attn_stride st, const tile_info *t, int D, int Dp, float mul, float *dst) {
    for (int r = 0; r < t->R; r++) {
        float *row = dst + (size_t)r * Dp;
        if (r >= t->nrows) {
            memset(row, 0, (size_t)Dp * sizeof(float));
            continue;
        }
        int64_t i = t->i0 + r / t->G;
        int h = t->hkv * t->G + r % t->G;
        const float *s = src + t->b * st.b + i * st.s + h * st.h;
        for (int d = 0; d < D; d++) row[d] = s[d] * mul;
        for (int d = D; d < Dp; d++) row[d] = 0;
    }
}

/* Gathers key chunk [c0, c0 + n) of the tile's list. kt/vt: [Dp][KB] transposed;
 * kc/vc: [KB][Dp] rows. Missing keys are zero with index INT32_MAX (always masked).
 * With spec->packed, a run of keys from a chunk boundary points kt/vt/kc/vc into it
 * instead (the keys past the run hold finite data and are masked the same way). */
static void gather_chunk(const attn_params *p, const cpu_attn_spec *s, cpu_ws *w, const tile_info *t, int c0,
                         int n, int want_kt, int want_vt, int want_kc, int want_vc) {
    const float *K = p->k, *V = p->v;
    const float *zrow = s->z ? s->z + ((size_t)t->b * p->Hkv + t->hkv) * p->Nk : NULL;
    int D = p->D, Dp = w->Dp;
    if (s->packed && n > 0 && w->keys[c0] % CPU_KB == 0 && w->keys[c0 + n - 1] - w->keys[c0] == n - 1) {
        /* a run from a chunk boundary: read in place (keys past the run are masked) */
        int32_t j0 = w->keys[c0];
        size_t nch = ((size_t)p->Nk + CPU_KB - 1) / CPU_KB, per = (size_t)Dp * CPU_KB;
        float *base = (float *)s->packed + (((size_t)t->b * p->Hkv + t->hkv) * nch + j0 / CPU_KB) * 4 * per;
        w->kt = base, w->vt = base + per, w->kc = base + 2 * per, w->vc = base + 3 * per;
        for (int c = 0; c < CPU_KB; c++) {
            if (c < n) {
                w->kidx[c] = j0 + c;
                w->zc[c] = zrow ? zrow[j0 + c] : 0.0f;
                if (s->key_rows) s->key_rows(s, p, t->b, t->hkv, t->i0, t->i1, j0 + c, &w->rlo[c], &w->rhi[c]);
                else key_rows(p, s, t, j0 + c, w->zc[c], &w->rlo[c], &w->rhi[c]);
                if (w->rhi[c] < w->rlo[c]) w->rlo[c] = w->rhi[c] = INT32_MAX; /* kept by no query */
            } else {
                w->kidx[c] = INT32_MAX;
                w->zc[c] = 0.0f;
                w->rlo[c] = w->rhi[c] = INT32_MAX;
            }
        }
        return;
    }
    w->kt = w->kt0, w->vt = w->vt0, w->kc = w->kc0, w->vc = w->vc0;
    for (int c = 0; c < CPU_KB; c++) {
        const float *kr = NULL, *vr = NULL; /* NULL: a missing key, all zeros */
        if (c < n) {
            int32_t j = w->keys[c0 + c];
            kr = K + t->b * p->k_st.b + (int64_t)j * p->k_st.s + t->hkv * p->k_st.h;
            vr = V + t->b * p->v_st.b + (int64_t)j * p->v_st.s + t->hkv * p->v_st.h;
            w->kidx[c] = j;
            w->zc[c] = zrow ? zrow[j] : 0.0f;
            if (s->key_rows) s->key_rows(s, p, t->b, t->hkv, t->i0, t->i1, j, &w->rlo[c], &w->rhi[c]);
            else key_rows(p, s, t, j, w->zc[c], &w->rlo[c], &w->rhi[c]);
            if (w->rhi[c] < w->rlo[c]) w->rlo[c] = w->rhi[c] = INT32_MAX; /* kept by no query */
        } else {
            w->kidx[c] = INT32_MAX;
            w->zc[c] = 0.0f;
            w->rlo[c] = w->rhi[c] = INT32_MAX; /* kept by no query */
        }
        /* one flag test per buffer and row, not per element; rows copy whole */
        if (want_kc) {
            if (kr) memcpy(w->kc + c * Dp, kr, (size_t)D * sizeof(float));
            else memset(w->kc + c * Dp, 0, (size_t)D * sizeof(float));
            if (D < Dp) memset(w->kc + c * Dp + D, 0, (size_t)(Dp - D) * sizeof(float));
        }
        if (want_vc) {
            if (vr) memcpy(w->vc + c * Dp, vr, (size_t)D * sizeof(float));
            else memset(w->vc + c * Dp, 0, (size_t)D * sizeof(float));
            if (D < Dp) memset(w->vc + c * Dp + D, 0, (size_t)(Dp - D) * sizeof(float));
        }
        if (want_kt) {
            float *dst = w->kt + c;
            if (kr)
                for (int d = 0; d < D; d++) dst[d * CPU_KB] = kr[d];
            else
                for (int d = 0; d < D; d++) dst[d * CPU_KB] = 0;
            for (int d = D; d < Dp; d++) dst[d * CPU_KB] = 0;
        }
        if (want_vt) {
            float *dst = w->vt + c;
            if (vr)
                for (int d = 0; d < D; d++) dst[d * CPU_KB] = vr[d];
            else
                for (int d = 0; d < D; d++) dst[d * CPU_KB] = 0;
            for (int d = D; d < Dp; d++) dst[d * CPU_KB] = 0;
        }
    }
}

/* ---- the tile loops, compiled once per instruction set ---- */

#define SIMD_ISA_FILE "cpu_attn_tile.inc"
#include "simd_isa.h"

typedef void (*fwd_tile_fn)(const attn_params *, const cpu_attn_spec *, cpu_ws *, tile_info *);
typedef void (*bwd_tile_fn)(const attn_params *, const cpu_attn_spec *, cpu_ws *, tile_info *, float *, float *,
                            float *);

/* The widest instruction set this CPU has; DMABENCH_ISA=avx512|avx2|base overrides. */
const char *cpu_attn_isa(void) {
    const char *env = getenv("DMABENCH_ISA");
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (env && !strcmp(env, "base")) return "base";
    if (env && !strcmp(env, "avx2") && has2) return "avx2";
    if (has512) return "avx512";
    if (has2) return "avx2";
    return "base";
}

static void pick(fwd_tile_fn *f, bwd_tile_fn *b) {
    const char *isa = cpu_attn_isa();
    if (!strcmp(isa, "avx512")) *f = fwd_tile_avx512, *b = bwd_tile_avx512;
    else if (!strcmp(isa, "avx2")) *f = fwd_tile_avx2, *b = bwd_tile_avx2;
    else *f = fwd_tile_base, *b = bwd_tile_base;
}

float *cpu_attn_pack(const attn_params *p) {
    int Dp = pad16(p->D), D = p->D;
    int64_t nch = ((int64_t)p->Nk + CPU_KB - 1) / CPU_KB, items = (int64_t)p->B * p->Hkv * nch;
    size_t per = 4 * (size_t)Dp * CPU_KB;
    float *out = attn_alloc((items ? (size_t)items * per : 1) * sizeof(float));
    if (!out) return NULL;
    const float *K = p->k, *V = p->v;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int b = (int)(it / ((int64_t)p->Hkv * nch)), hkv = (int)(it / nch % p->Hkv);
        int64_t j0 = it % nch * CPU_KB;
        float *kt = out + (size_t)it * per, *vt = kt + (size_t)Dp * CPU_KB, *kc = vt + (size_t)Dp * CPU_KB,
              *vc = kc + (size_t)CPU_KB * Dp;
        memset(kt, 0, per * sizeof(float));
        for (int c = 0; c < CPU_KB && j0 + c < p->Nk; c++) {
            const float *kr = K + b * p->k_st.b + (j0 + c) * p->k_st.s + hkv * p->k_st.h;
            const float *vr = V + b * p->v_st.b + (j0 + c) * p->v_st.s + hkv * p->v_st.h;
            memcpy(kc + (size_t)c * Dp, kr, (size_t)D * sizeof(float));
            memcpy(vc + (size_t)c * Dp, vr, (size_t)D * sizeof(float));
            for (int d = 0; d < D; d++) kt[d * CPU_KB + c] = kr[d], vt[d * CPU_KB + c] = vr[d];
        }
    }
    return out;
}

static int tile_key_cap(const attn_params *p, const cpu_attn_spec *s) {
    if (s->tile_keys) return s->max_tile_keys;
    return p->Nk;
}

attn_status cpu_attn_forward(const attn_params *p, const cpu_attn_spec *s) {
    int G = p->Hq / p->Hkv, bq = tile_queries(p, s);
    int ntiles = (p->Nq + bq - 1) / bq;
    int64_t items = (int64_t)p->B * p->Hkv * ntiles;
    int R = ((G * bq) + RB - 1) / RB * RB, Dp = pad16(p->D), cap = tile_key_cap(p, s);
    int failed = 0;
    fwd_tile_fn fwd;
    bwd_tile_fn bwd;
    pick(&fwd, &bwd);
#pragma omp parallel
    {
        cpu_ws w;
        int ok = ws_init(&w, R, Dp, cap) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            if (!ok) continue;
            tile_info t;
            t.b = (int)(it / ((int64_t)p->Hkv * ntiles));
            t.hkv = (int)(it / ntiles % p->Hkv);
            int tile = (int)(it % ntiles);
            t.i0 = tile * bq;
            t.i1 = t.i0 + bq < p->Nq ? t.i0 + bq : p->Nq;
            t.G = G;
            t.nrows = (t.i1 - t.i0) * G;
            t.R = (t.nrows + RB - 1) / RB * RB;
            fwd(p, s, &w, &t);
        }
        ws_free(&w);
    }
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}

static void store_kv_grad(const attn_params *p, int b, int hkv, const float *acc, int Dp, float *dst,
                          attn_stride st) {
    for (int64_t j = 0; j < p->Nk; j++) {
        float *row = dst + b * st.b + j * st.s + hkv * st.h;
        const float *a = acc + (size_t)j * Dp;
        for (int d = 0; d < p->D; d++) row[d] = a[d];
    }
}

attn_status cpu_attn_backward(const attn_params *p, const cpu_attn_spec *s, float *dz) {
    int G = p->Hq / p->Hkv, bq = tile_queries(p, s);
    int ntiles = (p->Nq + bq - 1) / bq;
    int units = p->B * p->Hkv;
    /* a fixed number of chunks per unit, independent of the thread count, so that
     * the reduction order (and so the result) never depends on it */
    int C = units >= 4 ? 1 : (4 + units - 1) / units;
    if (C > ntiles) C = ntiles;
    int R = ((G * bq) + RB - 1) / RB * RB, Dp = pad16(p->D), cap = tile_key_cap(p, s);
    size_t per = (size_t)p->Nk * Dp * 2 + (size_t)p->Nk; /* dk, dv, dz of one item */
    float *keep = NULL;
    if (C > 1) {
        keep = attn_calloc((size_t)units * C * per, sizeof(float));
        if (!keep) return ATTN_ERR_OOM;
    }
    int failed = 0;
    fwd_tile_fn fwd;
    bwd_tile_fn bwd;
    pick(&fwd, &bwd);
#pragma omp parallel
    {
        cpu_ws w;
        int ok = ws_init(&w, R, Dp, cap) == 0;
        float *own = NULL;
        if (ok && C == 1) {
            own = attn_alloc(per * sizeof(float));
            ok = own != NULL;
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < units * C; it++) {
            if (!ok) continue;
            int u = it / C, c = it % C;
            float *acc = C > 1 ? keep + (size_t)it * per : own;
            if (C == 1) memset(acc, 0, per * sizeof(float));
            float *dk = acc, *dv = acc + (size_t)p->Nk * Dp, *dzz = acc + (size_t)p->Nk * Dp * 2;
            tile_info t;
            t.b = u / p->Hkv;
            t.hkv = u % p->Hkv;
            t.G = G;
            int tb = ntiles * c / C, te = ntiles * (c + 1) / C;
            for (int tile = tb; tile < te; tile++) {
                t.i0 = tile * bq;
                t.i1 = t.i0 + bq < p->Nq ? t.i0 + bq : p->Nq;
                t.nrows = (t.i1 - t.i0) * G;
                t.R = (t.nrows + RB - 1) / RB * RB;
                bwd(p, s, &w, &t, dk, dv, dz ? dzz : NULL);
            }
            if (C == 1) {
                store_kv_grad(p, t.b, t.hkv, dk, Dp, p->dk, p->dk_st);
                store_kv_grad(p, t.b, t.hkv, dv, Dp, p->dv, p->dv_st);
                if (dz) memcpy(dz + ((size_t)t.b * p->Hkv + t.hkv) * p->Nk, dzz, (size_t)p->Nk * sizeof(float));
            }
        }
        attn_free(own);
        ws_free(&w);
    }
    if (!failed && C > 1) {
        /* fixed-order reduction of the chunks of each unit, in parallel over units
         * and key rows */
#pragma omp parallel for schedule(static)
        for (int u = 0; u < units; u++) {
            float *base = keep + (size_t)u * C * per;
            for (int c = 1; c < C; c++) {
                const float *src = base + (size_t)c * per;
                for (size_t e = 0; e < per; e++) base[e] += src[e];
            }
            int b = u / p->Hkv, hkv = u % p->Hkv;
            store_kv_grad(p, b, hkv, base, Dp, p->dk, p->dk_st);
            store_kv_grad(p, b, hkv, base + (size_t)p->Nk * Dp, Dp, p->dv, p->dv_st);
            if (dz) memcpy(dz + ((size_t)b * p->Hkv + hkv) * p->Nk, base + (size_t)p->Nk * Dp * 2, (size_t)p->Nk * sizeof(float));
        }
    }
    attn_free(keep);
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}
