/*
 * nsa_ref.c: the Native Sparse Attention reference, double accumulation, exactly as
 * docs/attention.md defines it.
 *
 * For every batch b, kv head h and query i (absolute position i' = i + Nk - Nq), the
 * query heads of h's GQA group are handled together, because they share the block
 * selection:
 *  1. compressed branch: softmax attention over the compressed blocks c with
 *     c d + l - 1 <= i' (keys K~_c, values V~_c computed once per call);
 *  2. selection: block j (keys [j l', (j+1) l')) scores
 *       sum over the group's heads, sum_c p_cmp[c] * |[c d, c d + l) n [j l', (j+1) l')| / d;
 *     candidates are the blocks with j l' <= i'; block 0, block i'/l' and block
 *     i'/l' - 1 are forced; the other n - #forced are the best (score, then j) of the
 *     remaining candidates; the selected branch attends to the keys j <= i' of the
 *     selected blocks, in ascending key order;
 *  3. window branch: the keys i' - w < j <= i' (as swa).
 * O_i = g_cmp O_cmp + g_slc O_slc + g_win O_win; the lse planes are (cmp, slc, win).
 *
 * The backward recomputes everything in double (it does not read o or lse). The
 * selection is a discrete choice and is not differentiated. The compressed branch's
 * dK~/dV~ flow back through the compression into w_ck/w_cv, p_k/p_v and k/v (linear
 * mode) or k/v (mean mode).
 * Slow on purpose: the oracle every fast nsa is tested against.
 */
#include "nsa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_common.h"

typedef struct {
    ref_tensor q, k, v;    /* inputs, contiguous double */
    ref_tensor kc, vc;     /* compressed keys and values (B, nb, Hkv, D) */
    double *g;             /* (B, Nq, Hq, 3) */
    double *wck, *wcv;     /* (Hkv, l*D, D), linear mode only */
    double *pk, *pv;       /* (Hkv, l, D), linear mode only */
    int64_t nb;            /* number of compressed blocks */
    int64_t ns;            /* number of selection blocks, ceil(Nk / l') */
    int group;             /* query heads per kv head */
    /* scratch of one (b, kv head, query): the key lists the group shares */
    int *cidx, nc;         /* visible compressed blocks */
    int *sidx, nsk;        /* keys of the selected blocks */
    int *widx, nw;         /* window keys */
    int *cand;             /* (ns) non-forced candidate blocks */
    double *score;         /* (ns) block scores */
    unsigned char *chosen; /* (ns) selected blocks */
    double *obr;           /* (group, 3, D) branch outputs, unscaled by the gates */
    double *lse;           /* (group, 3) branch log-sum-exps */
} nsa_state;

static double dot(const double *a, const double *b, int D) {
    double s = 0;
    for (int e = 0; e < D; e++) s += a[e] * b[e];
    return s;
}

static void nsa_state_free(nsa_state *s) {
    ref_tensor_free(&s->q);
    ref_tensor_free(&s->k);
    ref_tensor_free(&s->v);
    ref_tensor_free(&s->kc);
    ref_tensor_free(&s->vc);
    attn_free(s->g);
    attn_free(s->wck);
    attn_free(s->wcv);
    attn_free(s->pk);
    attn_free(s->pv);
    attn_free(s->cidx);
    attn_free(s->sidx);
    attn_free(s->widx);
    attn_free(s->cand);
    attn_free(s->score);
    attn_free(s->chosen);
    attn_free(s->obr);
    attn_free(s->lse);
    memset(s, 0, sizeof *s);
}

/* K~ (or V~) of every block from x (K or V) with weights w and embedding pos
 * (linear mode), or the block mean (w == NULL). */
static void compress(const attn_params *p, const ref_tensor *x, const double *w, const double *pos,
                     ref_tensor *out, int64_t nb) {
    int D = p->D, l = p->nsa_l;
    for (int b = 0; b < p->B; b++)
        for (int64_t c = 0; c < nb; c++)
            for (int h = 0; h < p->Hkv; h++) {
                double *o = ref_row(out, b, (int)c, h);
                memset(o, 0, (size_t)D * sizeof(double));
                for (int t = 0; t < l; t++) {
                    const double *xr = ref_row(x, b, (int)(c * p->nsa_d + t), h);
                    if (!w) {
                        for (int e = 0; e < D; e++) o[e] += xr[e];
                        continue;
                    }
                    const double *pr = pos + ((size_t)h * l + t) * D;
                    for (int cc = 0; cc < D; cc++) {
                        double xv = xr[cc] + pr[cc];
                        const double *wr = w + (((size_t)h * l + t) * D + cc) * D;
                        for (int e = 0; e < D; e++) o[e] += wr[e] * xv;
                    }
                }
                if (!w)
                    for (int e = 0; e < D; e++) o[e] /= l;
            }
}

/* Loads the inputs, compresses K and V and takes the scratch. On failure the state is
 * left for nsa_state_free. */
static attn_status nsa_state_init(nsa_state *s, const attn_params *p) {
    memset(s, 0, sizeof *s);
    int f64 = attn_aux_is_f64(p);
    int linear = p->nsa_cmp == NSA_CMP_LINEAR;
    size_t nw = (size_t)p->Hkv * p->nsa_l * p->D * p->D, np = (size_t)p->Hkv * p->nsa_l * p->D;
    attn_status st;
    s->nb = nsa_num_cmp_blocks(p);
    s->ns = ((int64_t)p->Nk + p->nsa_ls - 1) / p->nsa_ls;
    s->group = p->Hq / p->Hkv;
    if ((st = ref_load(&s->q, p->q, p->dtype, p->q_st, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK ||
        (st = ref_load(&s->k, p->k, p->dtype, p->k_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK ||
        (st = ref_load(&s->v, p->v, p->dtype, p->v_st, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK ||
        (st = ref_load_aux(&s->g, p->g, f64, (size_t)p->B * p->Nq * p->Hq * 3)) != ATTN_OK)
        return st;
    if (linear && ((st = ref_load_aux(&s->wck, p->w_ck, f64, nw)) != ATTN_OK ||
                   (st = ref_load_aux(&s->wcv, p->w_cv, f64, nw)) != ATTN_OK ||
                   (st = ref_load_aux(&s->pk, p->p_k, f64, np)) != ATTN_OK ||
                   (st = ref_load_aux(&s->pv, p->p_v, f64, np)) != ATTN_OK))
        return st;
    if ((st = ref_zeros(&s->kc, p->B, (int)s->nb, p->Hkv, p->D)) != ATTN_OK ||
        (st = ref_zeros(&s->vc, p->B, (int)s->nb, p->Hkv, p->D)) != ATTN_OK)
        return st;
    s->cidx = attn_alloc((size_t)(s->nb ? s->nb : 1) * sizeof(int));
    s->sidx = attn_alloc((size_t)p->Nk * sizeof(int));
    s->widx = attn_alloc((size_t)p->Nk * sizeof(int));
    s->cand = attn_alloc((size_t)s->ns * sizeof(int));
    s->score = attn_alloc((size_t)s->ns * sizeof(double));
    s->chosen = attn_alloc((size_t)s->ns);
    s->obr = attn_alloc((size_t)s->group * 3 * p->D * sizeof(double));
    s->lse = attn_alloc((size_t)s->group * 3 * sizeof(double));
    if (!s->cidx || !s->sidx || !s->widx || !s->cand || !s->score || !s->chosen || !s->obr ||
        !s->lse)
        return ATTN_ERR_OOM;
    compress(p, &s->k, s->wck, s->pk, &s->kc, s->nb);
    compress(p, &s->v, s->wcv, s->pv, &s->vc, s->nb);
    /* finite inputs can still overflow in the compression */
    size_t nc = (size_t)p->B * s->nb * p->Hkv * p->D;
    for (size_t e = 0; e < nc; e++)
        if (!isfinite(s->kc.x[e]) || !isfinite(s->vc.x[e])) return ATTN_ERR_NONFINITE;
    return ATTN_OK;
}

/* Selection order: 1 when block a ranks above block b (larger score, then larger j). */
static int block_before(const double *score, int a, int b) {
    return score[a] > score[b] || (score[a] == score[b] && a > b);
}

static int cmp_block(const void *pa, const void *pb, void *sv) {
    const double *score = sv;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (block_before(score, a, b)) return -1;
    if (block_before(score, b, a)) return 1;
    return 0;
}

/* Row 0 of kv head hkv in a (B, nb, Hkv, D) compressed tensor; with no block at all
 * (Nk < l) the base pointer, never dereferenced. */
static double *cmp_base(const ref_tensor *t, int b, int hkv) {
    return t->N ? ref_row(t, b, 0, hkv) : t->x;
}

static const double *bq(const nsa_state *s, int b, int64_t i, int h) {
    return ref_row(&s->q, b, (int)i, h);
}
static double *obr(const nsa_state *s, const attn_params *p, int hh, int br) {
    return s->obr + ((size_t)hh * 3 + br) * p->D;
}

/* The three branches of query i for every query head of kv head hkv's group:
 * fills the key lists, s->obr and s->lse. */
static void nsa_group_forward(const attn_params *p, nsa_state *s, int b, int hkv, int64_t i) {
    int D = p->D;
    int64_t ks = (int64_t)p->Hkv * D; /* distance between consecutive keys (or blocks) */
    int64_t ip = attn_qpos(p, i);
    const double *Kc = cmp_base(&s->kc, b, hkv), *Vc = cmp_base(&s->vc, b, hkv);
    const double *K = ref_row(&s->k, b, 0, hkv), *V = ref_row(&s->v, b, 0, hkv);

    /* 1. compressed branch: blocks c with c d + l - 1 <= i' */
    int64_t nc = 0;
    if (ip >= 0 && ip + 1 >= p->nsa_l) nc = (ip + 1 - p->nsa_l) / p->nsa_d + 1;
    if (nc > s->nb) nc = s->nb;
    s->nc = (int)nc;
    for (int c = 0; c < s->nc; c++) s->cidx[c] = c;
    for (int hh = 0; hh < s->group; hh++) {
        int h = hkv * s->group + hh;
        s->lse[hh * 3 + 0] = ref_row_forward(bq(s, b, i, h), Kc, Vc, ks, s->cidx, s->nc, NULL,
                                             p->scale, D, obr(s, p, hh, 0));
    }

    /* 2. selection (none for a query before the first key) */
    s->nsk = 0;
    if (ip >= 0) {
        int64_t ls = p->nsa_ls, jmax = ip / ls; /* candidates: blocks 0 .. jmax */
        for (int64_t j = 0; j <= jmax; j++) {
            s->score[j] = 0;
            s->chosen[j] = 0;
        }
        for (int hh = 0; hh < s->group; hh++) {
            int h = hkv * s->group + hh;
            const double *qr = bq(s, b, i, h);
            double lse = s->lse[hh * 3 + 0];
            for (int c = 0; c < s->nc; c++) {
                double P = exp(p->scale * dot(qr, Kc + c * ks, D) - lse);
                int64_t lo = (int64_t)c * p->nsa_d, hi = lo + p->nsa_l; /* keys [lo, hi) */
                for (int64_t j = lo / ls; j <= (hi - 1) / ls; j++) {
                    int64_t a = lo > j * ls ? lo : j * ls;
                    int64_t e = hi < (j + 1) * ls ? hi : (j + 1) * ls;
                    s->score[j] += P * (double)(e - a) / p->nsa_d;
                }
            }
        }
        int nforced = 0;
        int64_t forced[3] = {0, jmax, jmax - 1};
        for (int f = 0; f < 3; f++)
            if (forced[f] >= 0 && !s->chosen[forced[f]]) {
                s->chosen[forced[f]] = 1;
                nforced++;
            }
        int ncand = 0;
        for (int64_t j = 0; j <= jmax; j++)
            if (!s->chosen[j]) s->cand[ncand++] = (int)j;
        int64_t rest = (int64_t)p->nsa_n - nforced;
        if (rest > 0) {
            if (rest < ncand) qsort_r(s->cand, (size_t)ncand, sizeof(int), cmp_block, s->score);
            for (int64_t r = 0; r < rest && r < ncand; r++) s->chosen[s->cand[r]] = 1;
        }
        for (int64_t j = 0; j <= jmax; j++) {
            if (!s->chosen[j]) continue;
            int64_t e = (j + 1) * ls < ip + 1 ? (j + 1) * ls : ip + 1;
            for (int64_t key = j * ls; key < e; key++) s->sidx[s->nsk++] = (int)key;
        }
    }
    for (int hh = 0; hh < s->group; hh++) {
        int h = hkv * s->group + hh;
        s->lse[hh * 3 + 1] = ref_row_forward(bq(s, b, i, h), K, V, ks, s->sidx, s->nsk, NULL,
                                             p->scale, D, obr(s, p, hh, 1));
    }

    /* 3. window branch */
    s->nw = ref_select_window(p, NULL, b, hkv, i, s->widx);
    for (int hh = 0; hh < s->group; hh++) {
        int h = hkv * s->group + hh;
        s->lse[hh * 3 + 2] = ref_row_forward(bq(s, b, i, h), K, V, ks, s->widx, s->nw, NULL,
                                             p->scale, D, obr(s, p, hh, 2));
    }
}

int nsa_ref_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return attn_params_check(p, ATTN_NSA, backward, why, why_len) == ATTN_OK;
}

attn_status nsa_ref_forward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_NSA, 0, NULL, 0);
    if (st != ATTN_OK) return st;
    nsa_state s;
    ref_tensor o = {0};
    int f64 = attn_aux_is_f64(p);
    if ((st = nsa_state_init(&s, p)) != ATTN_OK ||
        (st = ref_zeros(&o, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK)
        goto done;
    for (int b = 0; b < p->B; b++)
        for (int hkv = 0; hkv < p->Hkv; hkv++)
            for (int64_t i = 0; i < p->Nq; i++) {
                nsa_group_forward(p, &s, b, hkv, i);
                for (int hh = 0; hh < s.group; hh++) {
                    int h = hkv * s.group + hh;
                    const double *g = s.g + (((size_t)b * p->Nq + i) * p->Hq + h) * 3;
                    double *orow = ref_row(&o, b, (int)i, h);
                    const double *oc = obr(&s, p, hh, 0), *os = obr(&s, p, hh, 1),
                                 *ow = obr(&s, p, hh, 2);
                    for (int e = 0; e < p->D; e++) orow[e] = g[0] * oc[e] + g[1] * os[e] + g[2] * ow[e];
                    for (int br = 0; br < 3; br++)
                        ref_set_aux(p->lse, f64, (((size_t)br * p->B + b) * p->Hq + h) * p->Nq + i,
                                    s.lse[hh * 3 + br]);
                }
            }
    ref_store(&o, p->o, p->dtype, p->o_st);
done:
    ref_tensor_free(&o);
    nsa_state_free(&s);
    return st;
}

/* Backward of the compression of one of K/V: dxc (B, nb, Hkv, D) into dx, and in
 * linear mode into dw and dpos. */
static void compress_backward(const attn_params *p, const ref_tensor *x, const double *w,
                              const double *pos, const ref_tensor *dxc, int64_t nb, ref_tensor *dx,
                              double *dw, double *dpos) {
    int D = p->D, l = p->nsa_l;
    for (int b = 0; b < p->B; b++)
        for (int64_t c = 0; c < nb; c++)
            for (int h = 0; h < p->Hkv; h++) {
                const double *go = ref_row(dxc, b, (int)c, h);
                for (int t = 0; t < l; t++) {
                    int key = (int)(c * p->nsa_d + t);
                    double *dxr = ref_row(dx, b, key, h);
                    if (!w) {
                        for (int e = 0; e < D; e++) dxr[e] += go[e] / l;
                        continue;
                    }
                    const double *xr = ref_row(x, b, key, h);
                    const double *pr = pos + ((size_t)h * l + t) * D;
                    double *dpr = dpos + ((size_t)h * l + t) * D;
                    for (int cc = 0; cc < D; cc++) {
                        double xv = xr[cc] + pr[cc];
                        const double *wr = w + (((size_t)h * l + t) * D + cc) * D;
                        double *dwr = dw + (((size_t)h * l + t) * D + cc) * D;
                        double gx = 0;
                        for (int e = 0; e < D; e++) {
                            dwr[e] += go[e] * xv;
                            gx += wr[e] * go[e];
                        }
                        dxr[cc] += gx;
                        dpr[cc] += gx;
                    }
                }
            }
}

attn_status nsa_ref_backward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_NSA, 1, NULL, 0);
    if (st != ATTN_OK) return st;
    int f64 = attn_aux_is_f64(p);
    int linear = p->nsa_cmp == NSA_CMP_LINEAR;
    int D = p->D;
    size_t nw = (size_t)p->Hkv * p->nsa_l * D * D, np = (size_t)p->Hkv * p->nsa_l * D;
    size_t ng = (size_t)p->B * p->Nq * p->Hq * 3;
    nsa_state s;
    ref_tensor dout = {0}, dq = {0}, dk = {0}, dv = {0}, dkc = {0}, dvc = {0};
    double *dg = NULL, *dwck = NULL, *dwcv = NULL, *dpk = NULL, *dpv = NULL, *dob = NULL;
    if ((st = nsa_state_init(&s, p)) != ATTN_OK ||
        (st = ref_load(&dout, p->dout, p->dtype, p->do_st, p->B, p->Nq, p->Hq, D)) != ATTN_OK ||
        (st = ref_zeros(&dq, p->B, p->Nq, p->Hq, D)) != ATTN_OK ||
        (st = ref_zeros(&dk, p->B, p->Nk, p->Hkv, D)) != ATTN_OK ||
        (st = ref_zeros(&dv, p->B, p->Nk, p->Hkv, D)) != ATTN_OK ||
        (st = ref_zeros(&dkc, p->B, (int)s.nb, p->Hkv, D)) != ATTN_OK ||
        (st = ref_zeros(&dvc, p->B, (int)s.nb, p->Hkv, D)) != ATTN_OK)
        goto done;
    dg = attn_calloc(ng, sizeof(double));
    dob = attn_alloc((size_t)D * sizeof(double));
    if (linear) {
        dwck = attn_calloc(nw, sizeof(double));
        dwcv = attn_calloc(nw, sizeof(double));
        dpk = attn_calloc(np, sizeof(double));
        dpv = attn_calloc(np, sizeof(double));
    }
    if (!dg || !dob || (linear && (!dwck || !dwcv || !dpk || !dpv))) {
        st = ATTN_ERR_OOM;
        goto done;
    }
    int64_t ks = (int64_t)p->Hkv * D;
    for (int b = 0; b < p->B; b++)
        for (int hkv = 0; hkv < p->Hkv; hkv++)
            for (int64_t i = 0; i < p->Nq; i++) {
                nsa_group_forward(p, &s, b, hkv, i);
                /* per branch: keys (or blocks), their K/V and gradient rows */
                const int *idx[3] = {s.cidx, s.sidx, s.widx};
                int n[3] = {s.nc, s.nsk, s.nw};
                const double *K[3] = {cmp_base(&s.kc, b, hkv), ref_row(&s.k, b, 0, hkv),
                                      ref_row(&s.k, b, 0, hkv)};
                const double *V[3] = {cmp_base(&s.vc, b, hkv), ref_row(&s.v, b, 0, hkv),
                                      ref_row(&s.v, b, 0, hkv)};
                double *dK[3] = {cmp_base(&dkc, b, hkv), ref_row(&dk, b, 0, hkv),
                                 ref_row(&dk, b, 0, hkv)};
                double *dV[3] = {cmp_base(&dvc, b, hkv), ref_row(&dv, b, 0, hkv),
                                 ref_row(&dv, b, 0, hkv)};
                for (int hh = 0; hh < s.group; hh++) {
                    int h = hkv * s.group + hh;
                    size_t gi = (((size_t)b * p->Nq + i) * p->Hq + h) * 3;
                    const double *dor = ref_row(&dout, b, (int)i, h);
                    for (int br = 0; br < 3; br++) {
                        const double *ob = obr(&s, p, hh, br);
                        dg[gi + br] = dot(dor, ob, D);
                        for (int e = 0; e < D; e++) dob[e] = s.g[gi + br] * dor[e];
                        ref_row_backward(bq(&s, b, i, h), K[br], V[br], ks, idx[br], n[br], NULL,
                                         p->scale, D, ob, s.lse[hh * 3 + br], dob,
                                         ref_row(&dq, b, (int)i, h), dK[br], dV[br], NULL);
                    }
                }
            }
    compress_backward(p, &s.k, s.wck, s.pk, &dkc, s.nb, &dk, dwck, dpk);
    compress_backward(p, &s.v, s.wcv, s.pv, &dvc, s.nb, &dv, dwcv, dpv);
    ref_store(&dq, p->dq, p->dtype, p->dq_st);
    ref_store(&dk, p->dk, p->dtype, p->dk_st);
    ref_store(&dv, p->dv, p->dtype, p->dv_st);
    ref_store_aux(dg, p->dg, f64, ng);
    if (linear) {
        ref_store_aux(dwck, p->dw_ck, f64, nw);
        ref_store_aux(dwcv, p->dw_cv, f64, nw);
        ref_store_aux(dpk, p->dp_k, f64, np);
        ref_store_aux(dpv, p->dp_v, f64, np);
    }
done:
    ref_tensor_free(&dout);
    ref_tensor_free(&dq);
    ref_tensor_free(&dk);
    ref_tensor_free(&dv);
    ref_tensor_free(&dkc);
    ref_tensor_free(&dvc);
    attn_free(dg);
    attn_free(dob);
    attn_free(dwck);
    attn_free(dwcv);
    attn_free(dpk);
    attn_free(dpv);
    nsa_state_free(&s);
    return st;
}
