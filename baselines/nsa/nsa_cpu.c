/*
 * nsa_cpu.c: the fast CPU Native Sparse Attention (fp32, OpenMP, AVX-512/AVX2/portable
 * clones). A query's work grows with n l' + w + Nk/d, never with Nk; memory is O(N).
 *
 * Forward:
 *  1. compression: K~, V~ (B, nb, Hkv, D): per kv head the (nb, l D) x (l D, D)
 *     product of the flattened blocks (plus the position embedding) with w_ck, w_cv,
 *     or the block means. K, V and K~, V~ are also packed in the engine's chunk
 *     layout (cpu_attn_pack), so that no chunk is gathered twice;
 *  2. compressed branch: the tiled engine (cpu_attn.c) over K~, V~ (Nk = nb): a tile
 *     visits the blocks its last query sees, block b is kept from the first query
 *     with b d + l - 1 <= i'; lse plane 0;
 *  3. selection: per (b, kv head, query), p_cmp = exp(s q.K~ - lse_cmp) summed over
 *     the group's heads, selection block j scores sum_b p_cmp[b] overlap(b, j) / d;
 *     block 0, the query's block and the one before are forced, the rest are the
 *     best (score, then larger j) of the blocks starting at or before i'; ids kept
 *     ascending in (B, Hkv, Nq, nsel);
 *  4. selected branch: not the engine but a block-major kernel of this file: per
 *     group of NSA_QG queries of one kv head, for each selected block in ascending
 *     order, the group's rows (query x head) that selected it attend to its keys
 *     j <= i' with an online softmax kept per row. One query per tile (the engine's
 *     way) reads 16 blocks of K/V per query; here a block is read once per group;
 *     lse plane 1;
 *  5. window branch: the engine as swa (tiles' key lists start on a chunk boundary
 *     so that every chunk is read in place); lse plane 2;
 *  6. o = g_cmp O_cmp + g_slc O_slc + g_win O_win.
 * Backward: recomputes 1-5 branch by branch (nothing is kept from the forward),
 * dg = dout . O_branch, and runs each branch's backward with dout scaled by its gate:
 * window into dq, dk, dv; selected (block-major: dq per row, dk, dv per chunk of
 * groups) added; compressed into dK~, dV~, then through the compression into dk, dv
 * and (linear) dw_ck, dw_cv, dp_k, dp_v. The selection is not differentiated. Every
 * reduction has a fixed order, so results do not depend on the thread count.
 *
 * The hot loops of this file are compiled once per instruction set like the
 * engine's: the file includes itself three times with NSA_CPU_HOT defined, under a
 * matching "#pragma GCC target", and picks a copy at run time (cpu_attn_isa()).
 */
#ifndef NSA_CPU_HOT /* ---- the first pass: declarations ---- */
#include "nsa.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpu_attn.h"

#define NSA_QT 16 /* queries per selection work item */

typedef struct {
    const attn_params *p;
    int G, Dp;
    int64_t nb;       /* compressed blocks */
    int64_t ns;       /* selection blocks, ceil(Nk / l') */
    int nsel;         /* selected-block slots per query: min(max(n, 3), ns) */
    int kw;           /* compressed blocks one selection block overlaps, at most */
    float *kc, *vc;   /* (B, nb, Hkv, D) compressed keys and values */
    float *cpack;     /* K~, V~ packed for the engine (and the block scores) */
    float *kvpack;    /* K, V packed for the selected and window branches */
    int32_t *cj0;     /* (ns) first compressed block overlapping selection block j */
    int32_t *cjn;     /* (ns) how many overlap it */
    float *wj;        /* (ns, kw) overlap of block cj0 + k with j, divided by d */
    int32_t *sel;     /* (B, Hkv, Nq, nsel) selected blocks, ascending, -1 padded */
    attn_params pc;   /* the compressed branch's params: K~, V~ as keys and values */
} nsa_ctx;

/* The selected branch works on a group of NSA_QG queries at a time, block-major: for
 * each selected block (ascending), the group's queries that selected it attend to its
 * keys, read in place from the packed K/V, their softmax state kept per row. A block's
 * keys are loaded once per group instead of once per query. */
#define NSA_QG 128

/* One chunk of a selected block: CPU_KB keys from k0 (a multiple of CPU_KB), of
 * which lanes [ca, cb) belong to the block; pointers into the packed K/V. */
typedef struct {
    const float *kt, *vt, *kc, *vc; /* [Dp][KB], [Dp][KB], [KB][Dp], [KB][Dp] */
    int ca, cb;
    int32_t k0;
} slc_chunk;

/* The rows (query x head) of a group; the last row is an inert dummy that pads row
 * lists to a multiple of 4 (zero q and dout, sees no key). */
typedef struct {
    int Dp;
    float *q, *o, *dout, *dq; /* [rows][Dp]; q pre-scaled; o the output accumulator */
    float *m, *l, *lse, *di;  /* [rows] */
    int32_t *pos;             /* [rows] i' of the row's query */
    float *pb, *ds;           /* [list rows][KB]: P and dS of one chunk, by list position */
} slc_rows;

#endif /* NSA_CPU_HOT */

#ifdef NSA_CPU_HOT /* ---- the hot loops, once per instruction set ---- */

/* simd.h's vectors are VL floats here (16, 8 or 4); a chunk row of CPU_KB keys is
 * NKV of them. Register blocks as in the engine: 4 rows x 2 vectors of keys for
 * scores, 4 rows x VB vectors of dims for the updates. */
#define NKV (CPU_KB / VL)
#define rows_scores FN(rows_scores)
#define rows_pv FN(rows_pv)
#define rows_outer FN(rows_outer)
#define chunk_mask FN(chunk_mask)

/* S [4][KB] = Q K^T for 4 rows (pointers) x 32 keys (kt [Dp][KB]), 2 vectors of keys
 * at a time (8 accumulators). */
SIMD_INLINE void rows_scores(const float *const q[4], const float *kt, int Dp, float *S) {
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    for (int g = 0; g < CPU_KB; g += 2 * VL) {
        vf a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, e0 = {0}, e1 = {0};
        const float *k = kt + g;
        for (int d = 0; d < Dp; d++, k += CPU_KB) {
            vf k0 = vload(k), k1 = vload(k + VL);
            a0 += q0[d] * k0, a1 += q0[d] * k1;
            b0 += q1[d] * k0, b1 += q1[d] * k1;
            c0 += q2[d] * k0, c1 += q2[d] * k1;
            e0 += q3[d] * k0, e1 += q3[d] * k1;
        }
        float *s = S + g;
        vstore(s, a0), vstore(s + VL, a1);
        vstore(s + CPU_KB, b0), vstore(s + CPU_KB + VL, b1);
        vstore(s + 2 * CPU_KB, c0), vstore(s + 2 * CPU_KB + VL, c1);
        vstore(s + 3 * CPU_KB, e0), vstore(s + 3 * CPU_KB + VL, e1);
    }
}

/* acc[r] = alpha[r] acc[r] + sum_{c in [c0, c1)} P[r][c] X[c] for 4 rows (pointers),
 * P [4][KB], X [KB][Dp]. Rows may repeat (the dummy): each stores the same values. */
SIMD_INLINE void rows_pv(float *const acc[4], int Dp, const float *P, const float *alpha, const float *X, int c0,
                         int c1) {
    float *o0 = acc[0], *o1 = acc[1], *o2 = acc[2], *o3 = acc[3];
    const float *P0 = P, *P1 = P + CPU_KB, *P2 = P + 2 * CPU_KB, *P3 = P + 3 * CPU_KB;
    int d0 = 0;
    for (; d0 + VB * VL <= Dp; d0 += VB * VL) {
        ACCV(a);
        ACCV(b);
        ACCV(g);
        ACCV(e);
        LOADV(a, o0 + d0), LOADV(b, o1 + d0), LOADV(g, o2 + d0), LOADV(e, o3 + d0);
        SCALEV(a, alpha[0]), SCALEV(b, alpha[1]), SCALEV(g, alpha[2]), SCALEV(e, alpha[3]);
        for (int c = c0; c < c1; c++) {
            ACCV(x);
            LOADV(x, X + (size_t)c * Dp + d0);
            FMAV(a, P0[c], x);
            FMAV(b, P1[c], x);
            FMAV(g, P2[c], x);
            FMAV(e, P3[c], x);
        }
        STOREV(o0 + d0, a), STOREV(o1 + d0, b), STOREV(o2 + d0, g), STOREV(o3 + d0, e);
    }
    for (; d0 < Dp; d0 += VL) {
        vf a0 = vload(o0 + d0) * alpha[0], a1 = vload(o1 + d0) * alpha[1], a2 = vload(o2 + d0) * alpha[2],
           a3 = vload(o3 + d0) * alpha[3];
        for (int c = c0; c < c1; c++) {
            vf x0 = vload(X + (size_t)c * Dp + d0);
            a0 += P0[c] * x0, a1 += P1[c] * x0, a2 += P2[c] * x0, a3 += P3[c] * x0;
        }
        vstore(o0 + d0, a0), vstore(o1 + d0, a1), vstore(o2 + d0, a2), vstore(o3 + d0, a3);
    }
}

/* dst[c] += sum_{k < n} W[k][c] X[rows[k]] for the 4 keys c = c0 .. c0 + 3 (W [n][KB],
 * X and dst rows Dp apart). */
SIMD_INLINE void rows_outer(float *dst, int Dp, const float *W, int c0, const float *X, const int32_t *rows, int n) {
    float *t0 = dst + (size_t)c0 * Dp, *t1 = t0 + Dp, *t2 = t1 + Dp, *t3 = t2 + Dp;
    int d0 = 0;
    for (; d0 + VB * VL <= Dp; d0 += VB * VL) {
        ACCV(a);
        ACCV(b);
        ACCV(g);
        ACCV(e);
        LOADV(a, t0 + d0), LOADV(b, t1 + d0), LOADV(g, t2 + d0), LOADV(e, t3 + d0);
        for (int k = 0; k < n; k++) {
            ACCV(x);
            LOADV(x, X + (size_t)rows[k] * Dp + d0);
            const float *wr = W + (size_t)k * CPU_KB + c0;
            FMAV(a, wr[0], x);
            FMAV(b, wr[1], x);
            FMAV(g, wr[2], x);
            FMAV(e, wr[3], x);
        }
        STOREV(t0 + d0, a), STOREV(t1 + d0, b), STOREV(t2 + d0, g), STOREV(t3 + d0, e);
    }
    for (; d0 < Dp; d0 += VL) {
        vf a0 = vload(t0 + d0), a1 = vload(t1 + d0), a2 = vload(t2 + d0), a3 = vload(t3 + d0);
        for (int k = 0; k < n; k++) {
            vf x0 = vload(X + (size_t)rows[k] * Dp + d0);
            const float *wr = W + (size_t)k * CPU_KB + c0;
            a0 += wr[0] * x0, a1 += wr[1] * x0, a2 += wr[2] * x0, a3 += wr[3] * x0;
        }
        vstore(t0 + d0, a0), vstore(t1 + d0, a1), vstore(t2 + d0, a2), vstore(t3 + d0, a3);
    }
}

/* Lanes of chunk ch that row position pos keeps: in [ca, cb) and key <= pos, NKV
 * vectors. One unsigned compare per vector: GCC 12 scalarises the and of several
 * AVX-512 masks. */
SIMD_INLINE void chunk_mask(const slc_chunk *ch, int32_t pos, vi mk[NKV]) {
    int32_t hi = pos - ch->k0 < ch->cb - 1 ? pos - ch->k0 : ch->cb - 1; /* lanes [ca, hi] */
    if (hi < ch->ca) {
        SIMD_UNROLL
        for (int v = 0; v < NKV; v++) mk[v] = (vi){0};
        return;
    }
    vu lane = (vu)viota(), lo = (vu){0} + (uint32_t)ch->ca, span = (vu){0} + (uint32_t)(hi - ch->ca);
    SIMD_UNROLL
    for (int v = 0; v < NKV; v++) mk[v] = (vi)(lane + (uint32_t)(v * VL) - lo <= span); /* wraps below ca */
}

/* out[r][0..ncol) = sum_{k < m} X[r][k] W[k][0..ncol) for rows r < nr <= 4. X rows
 * are xs apart, W rows ws apart, out rows os apart; ncol is a multiple of 16. */
static void FN(gemm4)(const float *X, int64_t xs, int nr, int m, const float *W, int64_t ws, int ncol, float *out,
                      int64_t os) {
    const float *x0 = X, *x1 = X + (nr > 1 ? xs : 0), *x2 = X + (nr > 2 ? 2 * xs : 0), *x3 = X + (nr > 3 ? 3 * xs : 0);
    int c0 = 0; /* rows past nr compute row 0 again and store nothing */
    for (; c0 + VB * VL <= ncol; c0 += VB * VL) {
        ACCV(a);
        ACCV(b);
        ACCV(g);
        ACCV(e);
        ZEROV(a), ZEROV(b), ZEROV(g), ZEROV(e);
        for (int k = 0; k < m; k++) {
            ACCV(w);
            LOADV(w, W + k * ws + c0);
            FMAV(a, x0[k], w);
            FMAV(b, x1[k], w);
            FMAV(g, x2[k], w);
            FMAV(e, x3[k], w);
        }
        STOREV(out + c0, a);
        if (nr > 1) STOREV(out + os + c0, b);
        if (nr > 2) STOREV(out + 2 * os + c0, g);
        if (nr > 3) STOREV(out + 3 * os + c0, e);
    }
    for (; c0 < ncol; c0 += VL) {
        vf a0 = (vf){0}, a1 = (vf){0}, a2 = (vf){0}, a3 = (vf){0};
        for (int k = 0; k < m; k++) {
            vf w0 = vload(W + k * ws + c0);
            a0 += x0[k] * w0, a1 += x1[k] * w0, a2 += x2[k] * w0, a3 += x3[k] * w0;
        }
        vstore(out + c0, a0);
        if (nr > 1) vstore(out + os + c0, a1);
        if (nr > 2) vstore(out + 2 * os + c0, a2);
        if (nr > 3) vstore(out + 3 * os + c0, a3);
    }
}

/* acc[r][0..Dp) += sum_{c < n} (col[r][c cs] + pm[r]) Y[c][0..Dp) for r < 4 (acc rows
 * Dp apart, Y rows Dp apart, Dp a multiple of 16): the weight gradient of linear
 * compression, X^T dK~, with X's columns read straight from the keys. */
static void FN(wgrad4)(const float *const col[4], int64_t cs, const float pm[4], int64_t n, const float *Y, int Dp,
                       float *acc) {
    const float *x0 = col[0], *x1 = col[1], *x2 = col[2], *x3 = col[3];
    float *t0 = acc, *t1 = acc + Dp, *t2 = acc + 2 * Dp, *t3 = acc + 3 * Dp;
    int d0 = 0;
    for (; d0 + VB * VL <= Dp; d0 += VB * VL) {
        ACCV(a);
        ACCV(b);
        ACCV(g);
        ACCV(e);
        LOADV(a, t0 + d0), LOADV(b, t1 + d0), LOADV(g, t2 + d0), LOADV(e, t3 + d0);
        for (int64_t c = 0; c < n; c++) {
            ACCV(y);
            LOADV(y, Y + c * Dp + d0);
            FMAV(a, x0[c * cs] + pm[0], y);
            FMAV(b, x1[c * cs] + pm[1], y);
            FMAV(g, x2[c * cs] + pm[2], y);
            FMAV(e, x3[c * cs] + pm[3], y);
        }
        STOREV(t0 + d0, a), STOREV(t1 + d0, b), STOREV(t2 + d0, g), STOREV(t3 + d0, e);
    }
    for (; d0 < Dp; d0 += VL) {
        vf a0 = vload(t0 + d0), a1 = vload(t1 + d0), a2 = vload(t2 + d0), a3 = vload(t3 + d0);
        for (int64_t c = 0; c < n; c++) {
            vf y0 = vload(Y + c * Dp + d0);
            a0 += (x0[c * cs] + pm[0]) * y0, a1 += (x1[c * cs] + pm[1]) * y0;
            a2 += (x2[c * cs] + pm[2]) * y0, a3 += (x3[c * cs] + pm[3]) * y0;
        }
        vstore(t0 + d0, a0), vstore(t1 + d0, a1), vstore(t2 + d0, a2), vstore(t3 + d0, a3);
    }
}

/* psum[c] = sum_{r < G} exp(q[r] . K~_c - lse[r]) for c < nc (zero for c in [nc, nc
 * rounded up to 32)). q: [G rounded up to 4][Dp], pre-scaled, padding rows zero;
 * kt: K~ transposed in chunks of 32 blocks ([Dp][32]), chunks cs floats apart. */
static void FN(cmp_probs)(const float *q, const float *lse, int G, int Dp, const float *kt, size_t cs, int nc,
                          float *psum) {
    const vi lane = viota();
    float S[4 * CPU_KB] __attribute__((aligned(64)));
    for (int c0 = 0; c0 < nc; c0 += CPU_KB) {
        const float *k = kt + (size_t)(c0 / CPU_KB) * cs;
        float *ps = psum + c0;
        SIMD_UNROLL
        for (int v = 0; v < NKV; v++) vstore(ps + v * VL, (vf){0});
        for (int r0 = 0; r0 < G; r0 += 4) {
            const float *q4[4] = {q + (size_t)r0 * Dp, q + (size_t)(r0 + 1) * Dp, q + (size_t)(r0 + 2) * Dp,
                                  q + (size_t)(r0 + 3) * Dp};
            rows_scores(q4, k, Dp, S);
            for (int r = 0; r < 4 && r0 + r < G; r++)
                SIMD_UNROLL
                for (int v = 0; v < NKV; v++) {
                    vi m = lane + (c0 + v * VL) < (vi){0} + nc;
                    vstore(ps + v * VL, vload(ps + v * VL) + vzero_unless(m, vexp(vload(S + r * CPU_KB + v * VL) - lse[r0 + r])));
                }
        }
    }
}

/* Selected branch forward over one chunk for the rows of a block's list (n rows, a
 * multiple of 4): the online softmax update of their m, l and o. */
static void FN(slc_fwd_chunk)(const slc_chunk *ch, slc_rows *w, const int32_t *rows, int n) {
    int Dp = w->Dp;
    float P[4 * CPU_KB] __attribute__((aligned(64))), alpha[4]; /* S, then P in its place */
    for (int r0 = 0; r0 < n; r0 += 4) {
        const int32_t *rr = rows + r0;
        const float *q[4] = {w->q + (size_t)rr[0] * Dp, w->q + (size_t)rr[1] * Dp, w->q + (size_t)rr[2] * Dp,
                             w->q + (size_t)rr[3] * Dp};
        float *o[4] = {w->o + (size_t)rr[0] * Dp, w->o + (size_t)rr[1] * Dp, w->o + (size_t)rr[2] * Dp,
                       w->o + (size_t)rr[3] * Dp};
        rows_scores(q, ch->kt, Dp, P);
        vi mk[NKV];
        SIMD_UNROLL
        for (int v = 0; v < NKV; v++) mk[v] = ~(vi){0};
        int32_t mpos = INT32_MIN; /* the position the masks are for */
        int full = 0;
        for (int k = 0; k < 4; k++) {
            int r = rr[k];
            float *Pr = P + k * CPU_KB;
            if (w->pos[r] != mpos) {
                mpos = w->pos[r];
                full = ch->ca == 0 && ch->cb == CPU_KB && mpos - ch->k0 >= CPU_KB - 1;
                if (!full) chunk_mask(ch, mpos, mk);
            }
            vf sv[NKV];
            SIMD_UNROLL
            for (int v = 0; v < NKV; v++) {
                sv[v] = vload(Pr + v * VL);
                if (!full) sv[v] = vselect(mk[v], sv[v], vset1(-INFINITY));
            }
            vf mx = sv[0];
            SIMD_UNROLL
            for (int v = 1; v < NKV; v++) mx = vmax(mx, sv[v]);
            float mloc = vhmax(mx);
            float mnew = mloc > w->m[r] ? mloc : w->m[r];
            if (mnew == -INFINITY) { /* nothing kept yet */
                alpha[k] = 1.0f;
                SIMD_UNROLL
                for (int v = 0; v < NKV; v++) vstore(Pr + v * VL, (vf){0});
                continue;
            }
            alpha[k] = vexp(vset1(w->m[r] - mnew))[0]; /* no libm call: it would spill the vectors */
            vf sum = {0};
            SIMD_UNROLL
            for (int v = 0; v < NKV; v++) {
                vf pv = vexp(sv[v] - mnew);
                if (!full) pv = vzero_unless(mk[v], pv);
                sum += pv;
                vstore(Pr + v * VL, pv);
            }
            w->l[r] = w->l[r] * alpha[k] + vhsum(sum);
            w->m[r] = mnew;
        }
        rows_pv(o, Dp, P, alpha, ch->vc, ch->ca, ch->cb);
    }
}

/* Selected branch backward over one chunk for the rows of a block's list: dq of the
 * rows, and dk, dv of the chunk's keys (dk, dv: [KB][Dp] for keys k0 ..). */
static void FN(slc_bwd_chunk)(const slc_chunk *ch, slc_rows *w, const int32_t *rows, int n, float *dk, float *dv) {
    int Dp = w->Dp;
    const float one[4] = {1, 1, 1, 1};
    for (int r0 = 0; r0 < n; r0 += 4) {
        const int32_t *rr = rows + r0;
        const float *q[4], *dO[4];
        float *dq[4];
        for (int k = 0; k < 4; k++) {
            q[k] = w->q + (size_t)rr[k] * Dp;
            dO[k] = w->dout + (size_t)rr[k] * Dp;
            dq[k] = w->dq + (size_t)rr[k] * Dp;
        }
        /* S and dP, then P and dS in their places */
        float *P = w->pb + (size_t)r0 * CPU_KB, *dS = w->ds + (size_t)r0 * CPU_KB;
        rows_scores(q, ch->kt, Dp, P);
        rows_scores(dO, ch->vt, Dp, dS);
        vi mk[NKV];
        SIMD_UNROLL
        for (int v = 0; v < NKV; v++) mk[v] = ~(vi){0};
        int32_t mpos = INT32_MIN;
        int full = 0;
        for (int k = 0; k < 4; k++) {
            int r = rr[k];
            float *Pr = P + k * CPU_KB, *dSr = dS + k * CPU_KB;
            int live = w->lse[r] != -INFINITY;
            if (live && w->pos[r] != mpos) {
                mpos = w->pos[r];
                full = ch->ca == 0 && ch->cb == CPU_KB && mpos - ch->k0 >= CPU_KB - 1;
                if (!full) chunk_mask(ch, mpos, mk);
            }
            float lse = w->lse[r], di = w->di[r];
            SIMD_UNROLL
            for (int v = 0; v < NKV; v++) {
                vf pv = (vf){0};
                if (live) {
                    pv = vexp(vload(Pr + v * VL) - lse);
                    if (!full) pv = vzero_unless(mk[v], pv);
                }
                vstore(dSr + v * VL, pv * (vload(dSr + v * VL) - di));
                vstore(Pr + v * VL, pv);
            }
        }
        rows_pv(dq, Dp, dS, one, ch->kc, ch->ca, ch->cb);
    }
    /* dK += dS^T Q, dV += P^T dO over the list's rows, 4 keys at a time (keys of the
     * chunk outside [ca, cb) get exact zeros) */
    for (int c = ch->ca / 4 * 4; c < ch->cb; c += 4) {
        rows_outer(dk, Dp, w->ds, c, w->q, rows, n);
        rows_outer(dv, Dp, w->pb, c, w->dout, rows, n);
    }
}

#undef NKV
#undef rows_scores
#undef rows_pv
#undef rows_outer
#undef chunk_mask

#else /* ---- the second pass: the hot loops per instruction set, then the rest ---- */

#define NSA_CPU_HOT
#define SIMD_ISA_FILE "nsa_cpu.c"
#include "simd_isa.h"
#undef NSA_CPU_HOT

typedef void (*gemm4_fn)(const float *, int64_t, int, int, const float *, int64_t, int, float *, int64_t);
typedef void (*wgrad4_fn)(const float *const[4], int64_t, const float[4], int64_t, const float *, int, float *);
typedef void (*probs_fn)(const float *, const float *, int, int, const float *, size_t, int, float *);
typedef void (*slc_fwd_fn)(const slc_chunk *, slc_rows *, const int32_t *, int);
typedef void (*slc_bwd_fn)(const slc_chunk *, slc_rows *, const int32_t *, int, float *, float *);

typedef struct {
    gemm4_fn gemm4;
    wgrad4_fn wgrad4;
    probs_fn probs;
    slc_fwd_fn slc_fwd;
    slc_bwd_fn slc_bwd;
} nsa_kernels;

static nsa_kernels pick_kernels(void) {
    const char *isa = cpu_attn_isa();
    if (!strcmp(isa, "avx512"))
        return (nsa_kernels){gemm4_avx512, wgrad4_avx512, cmp_probs_avx512, slc_fwd_chunk_avx512,
                             slc_bwd_chunk_avx512};
    if (!strcmp(isa, "avx2"))
        return (nsa_kernels){gemm4_avx2, wgrad4_avx2, cmp_probs_avx2, slc_fwd_chunk_avx2, slc_bwd_chunk_avx2};
    return (nsa_kernels){gemm4_base, wgrad4_base, cmp_probs_base, slc_fwd_chunk_base, slc_bwd_chunk_base};
}

int nsa_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cpu_attn_supports(p, ATTN_NSA, backward, why, why_len);
}

static int pad16(int d) { return (d + CPU_DALIGN - 1) / CPU_DALIGN * CPU_DALIGN; }

static attn_stride contiguous(int N, int H, int D) {
    attn_stride s = {(int64_t)N * H * D, (int64_t)H * D, D};
    return s;
}

/* Visible compressed blocks of query i: c d + l - 1 <= i'. */
static int64_t cmp_visible(const attn_params *p, int64_t nb, int64_t i) {
    int64_t ip = attn_qpos(p, i);
    if (ip + 1 < p->nsa_l) return 0;
    int64_t n = (ip + 1 - p->nsa_l) / p->nsa_d + 1;
    return n < nb ? n : nb;
}

/* ---- engine callbacks ---- */

/* Compressed branch: the blocks the tile's last query sees. */
static int cmp_tile_keys(const cpu_attn_spec *s, const attn_params *pc, int b, int hkv, int i0, int i1, int32_t *out,
                         int cap) {
    const nsa_ctx *x = s->ctx;
    (void)pc, (void)b, (void)hkv, (void)i0;
    int64_t n = cmp_visible(x->p, x->nb, i1 - 1);
    if (n > cap) n = cap;
    for (int64_t c = 0; c < n; c++) out[c] = (int32_t)c;
    return (int)n;
}

/* Compressed branch: block c is kept from the first query with c d + l - 1 <= i'. */
static void cmp_key_rows(const cpu_attn_spec *s, const attn_params *pc, int b, int hkv, int i0, int i1, int32_t c,
                         int32_t *rlo, int32_t *rhi) {
    const nsa_ctx *x = s->ctx;
    const attn_params *p = x->p;
    (void)pc, (void)b, (void)hkv, (void)i0, (void)i1;
    int64_t lo = (int64_t)c * p->nsa_d + p->nsa_l - 1 - ((int64_t)p->Nk - p->Nq);
    *rlo = (int32_t)(lo < 0 ? 0 : lo > INT32_MAX - 1 ? INT32_MAX - 1 : lo);
    *rhi = INT32_MAX - 1;
}

/* ---- compression ---- */

/* Padded copies of the compression weights of kv head h: W [l D][Dp] (forward) and
 * W^T [Dp][l D rounded up to 16] (backward), from w (Hkv, l D, D). */
static void weights_padded(const attn_params *p, const float *w, float *wp, float *wt, int ldp) {
    int D = p->D, Dp = pad16(D), m = p->nsa_l * D;
    for (int h = 0; h < p->Hkv; h++) {
        const float *wh = w + (size_t)h * m * D;
        if (wp) {
            float *o = wp + (size_t)h * m * Dp;
            for (int k = 0; k < m; k++) {
                memcpy(o + (size_t)k * Dp, wh + (size_t)k * D, (size_t)D * sizeof(float));
                for (int e = D; e < Dp; e++) o[(size_t)k * Dp + e] = 0;
            }
        }
        if (wt) {
            float *o = wt + (size_t)h * Dp * ldp;
            memset(o, 0, (size_t)Dp * ldp * sizeof(float));
            for (int k = 0; k < m; k++)
                for (int e = 0; e < D; e++) o[(size_t)e * ldp + k] = wh[(size_t)k * D + e];
        }
    }
}

/* K~ (or V~) into out (B, nb, Hkv, D) from x (keys or values, strides st): linear
 * with padded weights wp and embedding pos, or block means (wp == NULL). */
static attn_status compress(const attn_params *p, const nsa_kernels *kn, const float *x, attn_stride st,
                            const float *wp, const float *pos, int64_t nb, float *out) {
    int D = p->D, Dp = pad16(D), l = p->nsa_l, m = l * D;
    int64_t groups = (nb + 3) / 4, items = (int64_t)p->B * p->Hkv * groups;
    int failed = 0;
#pragma omp parallel
    {
        float *xb = wp ? attn_alloc((size_t)4 * m * sizeof(float)) : NULL;
        float ob[4 * ATTN_MAX_D];
        if (wp && !xb) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            if (wp && !xb) continue;
            int b = (int)(it / ((int64_t)p->Hkv * groups)), h = (int)(it / groups % p->Hkv);
            int64_t c0 = it % groups * 4;
            int nr = nb - c0 < 4 ? (int)(nb - c0) : 4;
            for (int r = 0; r < nr; r++) {
                int64_t c = c0 + r;
                float *o = out + (((size_t)b * nb + c) * p->Hkv + h) * D;
                if (!wp) { /* block mean */
                    for (int e = 0; e < D; e++) ob[e] = 0;
                    for (int t = 0; t < l; t++) {
                        const float *xr = x + b * st.b + (c * p->nsa_d + t) * st.s + h * st.h;
                        for (int e = 0; e < D; e++) ob[e] += xr[e];
                    }
                    for (int e = 0; e < D; e++) o[e] = ob[e] / (float)l;
                    continue;
                }
                for (int t = 0; t < l; t++) { /* the flattened block plus the embedding */
                    const float *xr = x + b * st.b + (c * p->nsa_d + t) * st.s + h * st.h;
                    const float *pr = pos + ((size_t)h * l + t) * D;
                    float *d = xb + (size_t)r * m + (size_t)t * D;
                    for (int e = 0; e < D; e++) d[e] = xr[e] + pr[e];
                }
            }
            if (!wp) continue;
            kn->gemm4(xb, m, nr, m, wp + (size_t)h * m * Dp, Dp, Dp, ob, Dp);
            for (int r = 0; r < nr; r++)
                memcpy(out + (((size_t)b * nb + c0 + r) * p->Hkv + h) * D, ob + (size_t)r * Dp,
                       (size_t)D * sizeof(float));
        }
        attn_free(xb);
    }
    if (failed) return ATTN_ERR_OOM;
    size_t n = (size_t)p->B * nb * p->Hkv * D;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (size_t e = 0; e < n; e++)
        if (!isfinite(out[e])) bad = 1;
    return bad ? ATTN_ERR_NONFINITE : ATTN_OK;
}

/* Backward of one compression: dxc (B, nb, Hkv, D) into dx (strides st, added to) and,
 * in linear mode (w != NULL), into dw and dpos (written). x: the keys or values. */
static attn_status compress_backward(const attn_params *p, const nsa_kernels *kn, const float *x, attn_stride xst,
                                     const float *w, const float *pos, const float *dxc, int64_t nb, float *dx,
                                     attn_stride st, float *dw, float *dpos) {
    int D = p->D, Dp = pad16(D), l = p->nsa_l, d = p->nsa_d, m = l * D, ldp = pad16(m);
    attn_status r = ATTN_OK;
    float *wt = NULL, *gx = NULL, *dyp = NULL;
    if (!w) { /* mean: every key of block c gets dK~_c / l */
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < p->B; b++)
            for (int j = 0; j < p->Nk; j++) {
                int64_t chi = j / d < nb - 1 ? j / d : nb - 1, clo = j - l + 1 <= 0 ? 0 : (j - l + d) / d;
                for (int h = 0; h < p->Hkv; h++) {
                    float *o = dx + b * st.b + (int64_t)j * st.s + h * st.h;
                    for (int64_t c = clo; c <= chi; c++) {
                        const float *g = dxc + (((size_t)b * nb + c) * p->Hkv + h) * D;
                        for (int e = 0; e < D; e++) o[e] += g[e] / (float)l;
                    }
                }
            }
        return ATTN_OK;
    }
    size_t ngx = (size_t)p->B * p->Hkv * nb * ldp;
    wt = attn_alloc((size_t)p->Hkv * Dp * ldp * sizeof(float));
    gx = attn_alloc((ngx ? ngx : 1) * sizeof(float));
    dyp = attn_calloc((size_t)p->B * p->Hkv * nb * Dp + 1, sizeof(float));
    if (!wt || !gx || !dyp) {
        r = ATTN_ERR_OOM;
        goto done;
    }
    weights_padded(p, w, NULL, wt, ldp);
    /* dK~ as (B, Hkv, nb, Dp) rows */
    for (int b = 0; b < p->B; b++)
        for (int64_t c = 0; c < nb; c++)
            for (int h = 0; h < p->Hkv; h++)
                memcpy(dyp + (((size_t)b * p->Hkv + h) * nb + c) * Dp, dxc + (((size_t)b * nb + c) * p->Hkv + h) * D,
                       (size_t)D * sizeof(float));
    /* gx[b, h, c] = W_h dK~_c: the gradient of the flattened block (l D) */
    int64_t groups = (nb + 3) / 4, items = (int64_t)p->B * p->Hkv * groups;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int64_t u = it / groups, c0 = it % groups * 4; /* u = b Hkv + h */
        int nr = nb - c0 < 4 ? (int)(nb - c0) : 4;
        kn->gemm4(dyp + ((size_t)u * nb + c0) * Dp, Dp, nr, Dp, wt + (size_t)(u % p->Hkv) * Dp * ldp, ldp, ldp,
                  gx + ((size_t)u * nb + c0) * ldp, ldp);
    }
    /* dx[j] += gx of every block holding j, in increasing block order */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < p->B; b++)
        for (int j = 0; j < p->Nk; j++) {
            int64_t chi = j / d < nb - 1 ? j / d : nb - 1, clo = j - l + 1 <= 0 ? 0 : (j - l + d) / d;
            for (int h = 0; h < p->Hkv; h++) {
                float *o = dx + b * st.b + (int64_t)j * st.s + h * st.h;
                for (int64_t c = clo; c <= chi; c++) {
                    const float *g = gx + (((size_t)b * p->Hkv + h) * nb + c) * ldp + (j - c * d) * D;
                    for (int e = 0; e < D; e++) o[e] += g[e];
                }
            }
        }
    /* dpos[h] = sum over batches and blocks of gx */
#pragma omp parallel for collapse(2) schedule(static)
    for (int h = 0; h < p->Hkv; h++)
        for (int k0 = 0; k0 < m; k0 += 64) {
            float acc[64];
            int kn2 = m - k0 < 64 ? m - k0 : 64;
            for (int k = 0; k < kn2; k++) acc[k] = 0;
            for (int b = 0; b < p->B; b++)
                for (int64_t c = 0; c < nb; c++) {
                    const float *g = gx + (((size_t)b * p->Hkv + h) * nb + c) * ldp + k0;
                    for (int k = 0; k < kn2; k++) acc[k] += g[k];
                }
            for (int k = 0; k < kn2; k++) dpos[(size_t)h * m + k0 + k] = acc[k];
        }
    /* dw[h][k] = sum over batches and blocks of (x + pos)[c][k] dK~_c, 4 rows k at a time */
    int64_t kg = (m + 3) / 4;
#pragma omp parallel for collapse(2) schedule(static)
    for (int h = 0; h < p->Hkv; h++)
        for (int64_t g4 = 0; g4 < kg; g4++) {
            float acc[4 * ATTN_MAX_D] __attribute__((aligned(64)));
            memset(acc, 0, sizeof acc);
            int k0 = (int)g4 * 4, nr = m - k0 < 4 ? m - k0 : 4;
            float pm[4];
            const float *col[4];
            for (int b = 0; b < p->B; b++) {
                for (int r = 0; r < 4; r++) {
                    int k = k0 + (r < nr ? r : 0), t = k / D, e = k % D;
                    pm[r] = pos[((size_t)h * l + t) * D + e];
                    col[r] = x + b * xst.b + (int64_t)t * xst.s + h * xst.h + e;
                }
                kn->wgrad4(col, (int64_t)d * xst.s, pm, nb, dyp + ((size_t)b * p->Hkv + h) * nb * Dp, Dp, acc);
            }
            for (int r = 0; r < nr; r++)
                memcpy(dw + ((size_t)h * m + k0 + r) * D, acc + (size_t)r * Dp, (size_t)D * sizeof(float));
        }
done:
    attn_free(wt);
    attn_free(gx);
    attn_free(dyp);
    return r;
}

/* ---- selection ---- */

/* 1 when block (sa, ja) ranks above (sb, jb): larger score, then larger j. */
static inline int ranks_above(float sa, int32_t ja, float sb, int32_t jb) { return sa > sb || (sa == sb && ja > jb); }

/* The selected blocks of query position ip from the scores of blocks 0 .. ip / l',
 * ascending into out (nsel slots, -1 padded). */
static void select_blocks(const attn_params *p, int nsel, int64_t ip, const float *score, int32_t *top, float *ts,
                          int32_t *out) {
    int64_t jmax = ip / p->nsa_ls;
    int32_t forced[3];
    int nf = 0;
    forced[nf++] = 0;
    if (jmax > 0) forced[nf++] = (int32_t)jmax;
    if (jmax > 1) forced[nf++] = (int32_t)jmax - 1;
    int rest = p->nsa_n - nf; /* top and ts hold nsel: more than the jmax - 1 candidates */
    int nt = 0;
    if (rest > 0)
        for (int32_t j = 1; j <= jmax - 2; j++) { /* the candidates not forced */
            float s = score[j];
            if (nt == rest && !ranks_above(s, j, ts[nt - 1], top[nt - 1])) continue;
            int k = nt < rest ? nt++ : nt - 1; /* insert, dropping the last when full */
            while (k > 0 && ranks_above(s, j, ts[k - 1], top[k - 1])) {
                ts[k] = ts[k - 1], top[k] = top[k - 1];
                k--;
            }
            ts[k] = s, top[k] = j;
        }
    int n = 0;
    for (int f = 0; f < nf; f++) out[n++] = forced[f];
    for (int k = 0; k < nt; k++) out[n++] = top[k];
    for (int a = 1; a < n; a++) { /* ascending */
        int32_t v = out[a];
        int b = a;
        while (b > 0 && out[b - 1] > v) {
            out[b] = out[b - 1];
            b--;
        }
        out[b] = v;
    }
    for (; n < nsel; n++) out[n] = -1;
}

/* Block scores and selection of every (b, kv head, query) into x->sel, from the
 * compressed branch's lse (plane 0 of lse). */
static attn_status select_all(nsa_ctx *x, const nsa_kernels *kn, const float *lse) {
    const attn_params *p = x->p;
    int G = x->G, Dp = x->Dp, G4 = (G + 3) / 4 * 4, D = p->D;
    int64_t nq = (p->Nq + NSA_QT - 1) / NSA_QT, items = (int64_t)p->B * p->Hkv * nq;
    int64_t nbp = (x->nb + CPU_KB - 1) / CPU_KB * CPU_KB, nch = nbp / CPU_KB;
    size_t cs = 4 * (size_t)Dp * CPU_KB; /* packed chunk stride */
    float sc = (float)p->scale;
    int failed = 0;
#pragma omp parallel
    {
        float *q = attn_calloc((size_t)G4 * Dp, sizeof(float));
        float *psum = attn_calloc((size_t)nbp + 1, sizeof(float));
        float *score = attn_calloc((size_t)x->ns + 1, sizeof(float));
        float *lr = attn_alloc((size_t)G * sizeof(float));
        int32_t *top = attn_alloc((size_t)x->nsel * sizeof(int32_t));
        float *ts = attn_alloc((size_t)x->nsel * sizeof(float));
        int ok = q && psum && score && lr && top && ts;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            if (!ok) continue;
            int b = (int)(it / ((int64_t)p->Hkv * nq)), hkv = (int)(it / nq % p->Hkv);
            int64_t i0 = it % nq * NSA_QT, i1 = i0 + NSA_QT < p->Nq ? i0 + NSA_QT : p->Nq;
            const float *kt = x->cpack + ((size_t)b * p->Hkv + hkv) * nch * cs;
            for (int64_t i = i0; i < i1; i++) {
                int32_t *out = x->sel + (((size_t)b * p->Hkv + hkv) * p->Nq + i) * x->nsel;
                int64_t ip = attn_qpos(p, i);
                if (ip < 0) {
                    for (int k = 0; k < x->nsel; k++) out[k] = -1;
                    continue;
                }
                int64_t jmax = ip / p->nsa_ls, nc = cmp_visible(p, x->nb, i);
                if (nc == 0)
                    for (int64_t j = 0; j <= jmax; j++) score[j] = 0;
                else {
                    for (int hh = 0; hh < G; hh++) {
                        int h = hkv * G + hh;
                        const float *qr = (const float *)p->q + b * p->q_st.b + i * p->q_st.s + h * p->q_st.h;
                        for (int e = 0; e < D; e++) q[(size_t)hh * Dp + e] = qr[e] * sc;
                        lr[hh] = lse[((size_t)b * p->Hq + h) * p->Nq + i];
                    }
                    kn->probs(q, lr, G, Dp, kt, cs, (int)nc, psum);
                    for (int64_t j = 0; j <= jmax; j++) { /* the visible blocks overlapping j */
                        int64_t c0 = x->cj0[j], n = x->cjn[j] < nc - c0 ? x->cjn[j] : nc - c0;
                        const float *wv = x->wj + (size_t)j * x->kw, *ps = psum + c0;
                        float acc = 0;
                        for (int64_t k = 0; k < n; k++) acc += ps[k] * wv[k];
                        score[j] = acc;
                    }
                }
                select_blocks(p, x->nsel, ip, score, top, ts, out);
            }
        }
        attn_free(q);
        attn_free(psum);
        attn_free(score);
        attn_free(lr);
        attn_free(top);
        attn_free(ts);
    }
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}

/* ---- selected branch (block-major per query group, see NSA_QG) ---- */

typedef struct {
    slc_rows w;
    int32_t *off;   /* [ns + 1] list offsets per selection block */
    int32_t *cur;   /* [ns] fill cursors */
    int32_t *qlist; /* [NSA_QG * nsel] the group's queries, by block */
    int32_t *rows;  /* [NSA_QG * G + 4] the rows of one block's list */
} slc_ws;

static void slc_ws_free(slc_ws *s) {
    attn_free(s->w.q);
    attn_free(s->off);
    memset(s, 0, sizeof *s);
}

/* Per-thread buffers; the dummy row (index NSA_QG * G) is set up once. */
static int slc_ws_init(slc_ws *s, const nsa_ctx *x) {
    memset(s, 0, sizeof *s);
    int Dp = x->Dp, R = NSA_QG * x->G + 1; /* the group's rows and the dummy */
    size_t f = (size_t)R * Dp, nl = (size_t)NSA_QG * x->G + 4; /* a block's list, padded */
    size_t total = 4 * f + 4 * (size_t)R + 2 * nl * CPU_KB + 64;
    float *c = attn_calloc(total, sizeof(float));
    size_t ni = 2 * (size_t)x->ns + 1 + (size_t)NSA_QG * x->nsel + nl + (size_t)R;
    int32_t *ci = attn_alloc(ni * sizeof(int32_t));
    if (!c || !ci) {
        attn_free(c);
        attn_free(ci);
        return -1;
    }
    slc_rows *w = &s->w;
    w->Dp = Dp;
    w->q = c, c += f;
    w->o = c, c += f;
    w->dout = c, c += f;
    w->dq = c, c += f;
    w->m = c, c += R;
    w->l = c, c += R;
    w->lse = c, c += R;
    w->di = c, c += R;
    w->pb = c, c += nl * CPU_KB;
    w->ds = c;
    s->off = ci, ci += x->ns + 1;
    s->cur = ci, ci += x->ns;
    s->qlist = ci, ci += (size_t)NSA_QG * x->nsel;
    s->rows = ci, ci += nl;
    w->pos = ci;
    int d = R - 1; /* the dummy: zero q, dout, o; sees no key */
    w->m[d] = -INFINITY, w->l[d] = 0, w->lse[d] = -INFINITY, w->di[d] = 0, w->pos[d] = -1;
    return 0;
}

/* The group's queries by selected block (ascending queries per block). Returns the
 * number of blocks the lists cover. */
static int64_t slc_lists(const nsa_ctx *x, slc_ws *s, int b, int hkv, int i0, int i1) {
    const attn_params *p = x->p;
    int64_t ipl = attn_qpos(p, i1 - 1);
    if (ipl < 0) return 0;
    int64_t jend = ipl / p->nsa_ls + 1;
    const int32_t *sel = x->sel + (((size_t)b * p->Hkv + hkv) * p->Nq + i0) * x->nsel;
    memset(s->off, 0, (size_t)(jend + 1) * sizeof(int32_t));
    for (int q = 0; q < i1 - i0; q++)
        for (int k = 0; k < x->nsel && sel[(size_t)q * x->nsel + k] >= 0; k++) s->off[sel[(size_t)q * x->nsel + k] + 1]++;
    for (int64_t j = 0; j < jend; j++) s->off[j + 1] += s->off[j], s->cur[j] = s->off[j];
    for (int q = 0; q < i1 - i0; q++)
        for (int k = 0; k < x->nsel && sel[(size_t)q * x->nsel + k] >= 0; k++) s->qlist[s->cur[sel[(size_t)q * x->nsel + k]]++] = q;
    return jend;
}

/* The rows of block j's list, padded to a multiple of 4 with the dummy; their count. */
static int slc_block_rows(const nsa_ctx *x, slc_ws *s, int64_t j) {
    int n = 0, G = x->G;
    for (int32_t e = s->off[j]; e < s->off[j + 1]; e++)
        for (int hh = 0; hh < G; hh++) s->rows[n++] = s->qlist[e] * G + hh;
    while (n % 4) s->rows[n++] = NSA_QG * G;
    return n;
}

/* Runs the forward (dk == NULL) or backward chunk kernel on every chunk of every
 * block the group selected, blocks ascending; dk, dv: the item's (Nk rounded up to
 * CPU_KB, Dp) accumulators. */
static void slc_walk(const nsa_ctx *x, const nsa_kernels *kn, slc_ws *s, int b, int hkv, int64_t jend, float *dk,
                     float *dv) {
    const attn_params *p = x->p;
    int Dp = x->Dp;
    size_t per = (size_t)Dp * CPU_KB, nch = ((size_t)p->Nk + CPU_KB - 1) / CPU_KB;
    const float *base = x->kvpack + ((size_t)b * p->Hkv + hkv) * nch * 4 * per;
    for (int64_t j = 0; j < jend; j++) {
        if (s->off[j] == s->off[j + 1]) continue;
        int n = slc_block_rows(x, s, j);
        int64_t kb = j * p->nsa_ls, ke = kb + p->nsa_ls < p->Nk ? kb + p->nsa_ls : p->Nk;
        for (int64_t c = kb / CPU_KB; c * CPU_KB < ke; c++) {
            slc_chunk ch;
            const float *cb = base + (size_t)c * 4 * per;
            ch.kt = cb, ch.vt = cb + per, ch.kc = cb + 2 * per, ch.vc = cb + 3 * per;
            ch.k0 = (int32_t)(c * CPU_KB);
            ch.ca = kb > ch.k0 ? (int)(kb - ch.k0) : 0;
            ch.cb = ke - ch.k0 < CPU_KB ? (int)(ke - ch.k0) : CPU_KB;
            if (dk) kn->slc_bwd(&ch, &s->w, s->rows, n, dk + (size_t)ch.k0 * Dp, dv + (size_t)ch.k0 * Dp);
            else kn->slc_fwd(&ch, &s->w, s->rows, n);
        }
    }
}

/* Loads the group's rows of a bshd fp32 tensor into [rows][Dp] (times mul). */
static void slc_load(const nsa_ctx *x, const float *src, attn_stride st, int b, int hkv, int i0, int i1, float mul,
                     float *dst) {
    int G = x->G, D = x->p->D, Dp = x->Dp;
    for (int i = i0; i < i1; i++)
        for (int hh = 0; hh < G; hh++) {
            const float *sr = src + b * st.b + (int64_t)i * st.s + (hkv * G + hh) * st.h;
            float *d = dst + ((size_t)(i - i0) * G + hh) * Dp;
            for (int e = 0; e < D; e++) d[e] = sr[e] * mul;
            for (int e = D; e < Dp; e++) d[e] = 0;
        }
}

/* Selected branch forward: out (B, Nq, Hq, D) contiguous and lse (B, Hq, Nq). */
static attn_status slc_forward(const nsa_ctx *x, const nsa_kernels *kn, float *out, float *lse) {
    const attn_params *p = x->p;
    int G = x->G, D = p->D, Dp = x->Dp;
    int64_t ng = (p->Nq + NSA_QG - 1) / NSA_QG, items = (int64_t)p->B * p->Hkv * ng;
    int failed = 0;
#pragma omp parallel
    {
        slc_ws s;
        int ok = slc_ws_init(&s, x) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            if (!ok) continue;
            int b = (int)(it / ((int64_t)p->Hkv * ng)), hkv = (int)(it / ng % p->Hkv);
            int i0 = (int)(it % ng * NSA_QG), i1 = i0 + NSA_QG < p->Nq ? i0 + NSA_QG : p->Nq;
            slc_rows *w = &s.w;
            int nr = (i1 - i0) * G;
            slc_load(x, p->q, p->q_st, b, hkv, i0, i1, (float)p->scale, w->q);
            memset(w->o, 0, (size_t)nr * Dp * sizeof(float));
            for (int r = 0; r < nr; r++) {
                w->m[r] = -INFINITY, w->l[r] = 0;
                w->pos[r] = (int32_t)attn_qpos(p, i0 + r / G);
            }
            slc_walk(x, kn, &s, b, hkv, slc_lists(x, &s, b, hkv, i0, i1), NULL, NULL);
            for (int r = 0; r < nr; r++) {
                int i = i0 + r / G, h = hkv * G + r % G;
                float *dst = out + (((size_t)b * p->Nq + i) * p->Hq + h) * D;
                const float *src = w->o + (size_t)r * Dp;
                float *L = lse + ((size_t)b * p->Hq + h) * p->Nq + i;
                if (w->l[r] > 0) {
                    float inv = 1.0f / w->l[r];
                    for (int e = 0; e < D; e++) dst[e] = src[e] * inv;
                    *L = w->m[r] + logf(w->l[r]);
                } else {
                    for (int e = 0; e < D; e++) dst[e] = 0;
                    *L = -INFINITY;
                }
            }
        }
        slc_ws_free(&s);
    }
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}

/* Selected branch backward from its output o and lse (contiguous) and the gated dout
 * tdo (contiguous): dq += (strides p->dq_st), dk +=, dv += (strides of p). Work is
 * split into a fixed number of chunks of groups per (b, kv head), each with its own
 * dk, dv, reduced in a fixed order: the result does not depend on the thread count. */
static attn_status slc_backward(const nsa_ctx *x, const nsa_kernels *kn, const float *o, const float *lse,
                                const float *tdo) {
    const attn_params *p = x->p;
    int G = x->G, D = p->D, Dp = x->Dp;
    int ng = (p->Nq + NSA_QG - 1) / NSA_QG, units = p->B * p->Hkv;
    int C = units >= 4 ? 1 : (4 + units - 1) / units;
    if (C > ng) C = ng;
    size_t nkp = ((size_t)p->Nk + CPU_KB - 1) / CPU_KB * CPU_KB, per = nkp * Dp * 2;
    float *keep = attn_calloc((size_t)units * C * per + 1, sizeof(float));
    if (!keep) return ATTN_ERR_OOM;
    attn_stride ost = contiguous(p->Nq, p->Hq, D);
    float sc = (float)p->scale;
    int failed = 0;
#pragma omp parallel
    {
        slc_ws s;
        int ok = slc_ws_init(&s, x) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < units * C; it++) {
            if (!ok) continue;
            int u = it / C, cc = it % C, b = u / p->Hkv, hkv = u % p->Hkv;
            float *dk = keep + (size_t)it * per, *dv = dk + nkp * Dp;
            slc_rows *w = &s.w;
            for (int g = ng * cc / C; g < ng * (cc + 1) / C; g++) {
                int i0 = g * NSA_QG, i1 = i0 + NSA_QG < p->Nq ? i0 + NSA_QG : p->Nq, nr = (i1 - i0) * G;
                slc_load(x, p->q, p->q_st, b, hkv, i0, i1, sc, w->q);
                slc_load(x, tdo, ost, b, hkv, i0, i1, 1.0f, w->dout);
                slc_load(x, o, ost, b, hkv, i0, i1, 1.0f, w->o);
                memset(w->dq, 0, (size_t)nr * Dp * sizeof(float));
                for (int r = 0; r < nr; r++) {
                    int i = i0 + r / G, h = hkv * G + r % G;
                    w->lse[r] = lse[((size_t)b * p->Hq + h) * p->Nq + i];
                    w->pos[r] = (int32_t)attn_qpos(p, i);
                    double di = 0;
                    for (int e = 0; e < D; e++) di += (double)w->dout[(size_t)r * Dp + e] * w->o[(size_t)r * Dp + e];
                    w->di[r] = (float)di;
                }
                slc_walk(x, kn, &s, b, hkv, slc_lists(x, &s, b, hkv, i0, i1), dk, dv);
                for (int r = 0; r < nr; r++) {
                    int i = i0 + r / G, h = hkv * G + r % G;
                    float *dst = (float *)p->dq + b * p->dq_st.b + (int64_t)i * p->dq_st.s + h * p->dq_st.h;
                    const float *src = w->dq + (size_t)r * Dp;
                    for (int e = 0; e < D; e++) dst[e] += src[e] * sc;
                }
            }
        }
        slc_ws_free(&s);
    }
    if (!failed) {
        /* dk, dv += the chunks of each unit, in chunk order */
#pragma omp parallel for collapse(2) schedule(static)
        for (int u = 0; u < units; u++)
            for (int j = 0; j < p->Nk; j++) {
                int b = u / p->Hkv, hkv = u % p->Hkv;
                float *dkr = (float *)p->dk + b * p->dk_st.b + (int64_t)j * p->dk_st.s + hkv * p->dk_st.h;
                float *dvr = (float *)p->dv + b * p->dv_st.b + (int64_t)j * p->dv_st.s + hkv * p->dv_st.h;
                for (int cc = 0; cc < C; cc++) {
                    const float *ak = keep + (size_t)(u * C + cc) * per + (size_t)j * Dp, *av = ak + nkp * Dp;
                    for (int e = 0; e < D; e++) dkr[e] += ak[e], dvr[e] += av[e];
                }
            }
    }
    attn_free(keep);
    return failed ? ATTN_ERR_OOM : ATTN_OK;
}

/* ---- setup shared by forward and backward ---- */

static void ctx_free(nsa_ctx *x) {
    attn_free(x->kc);
    attn_free(x->vc);
    attn_free(x->cpack);
    attn_free(x->kvpack);
    attn_free(x->cj0);
    attn_free(x->cjn);
    attn_free(x->wj);
    attn_free(x->sel);
    memset(x, 0, sizeof *x);
}

/* Compression, packing and the overlap table (steps 1 and the layouts of 2-4). */
static attn_status ctx_init(nsa_ctx *x, const attn_params *p, const nsa_kernels *kn) {
    memset(x, 0, sizeof *x);
    x->p = p;
    x->G = p->Hq / p->Hkv;
    x->Dp = pad16(p->D);
    x->nb = nsa_num_cmp_blocks(p);
    x->ns = ((int64_t)p->Nk + p->nsa_ls - 1) / p->nsa_ls;
    int64_t nsel = p->nsa_n > 3 ? p->nsa_n : 3;
    x->nsel = (int)(nsel < x->ns ? nsel : x->ns);
    x->kw = (p->nsa_ls + p->nsa_l - 1) / p->nsa_d + 1;
    int64_t nb = x->nb;
    int linear = p->nsa_cmp == NSA_CMP_LINEAR;
    int D = p->D, Dp = x->Dp, m = p->nsa_l * D;
    size_t nc = (size_t)p->B * nb * p->Hkv * D;
    attn_status r = ATTN_OK;
    float *wp = NULL;
    x->kc = attn_alloc((nc ? nc : 1) * sizeof(float));
    x->vc = attn_alloc((nc ? nc : 1) * sizeof(float));
    x->cj0 = attn_alloc((size_t)x->ns * sizeof(int32_t));
    x->cjn = attn_alloc((size_t)x->ns * sizeof(int32_t));
    x->wj = attn_calloc((size_t)x->ns * x->kw, sizeof(float));
    x->sel = attn_alloc(((size_t)p->B * p->Hkv * p->Nq * x->nsel + 1) * sizeof(int32_t));
    if (linear) wp = attn_alloc((size_t)p->Hkv * m * Dp * sizeof(float));
    if (!x->kc || !x->vc || !x->cj0 || !x->cjn || !x->wj || !x->sel || (linear && !wp)) {
        r = ATTN_ERR_OOM;
        goto done;
    }
    for (int64_t j = 0; j < x->ns; j++) { /* blocks c with [c d, c d + l) meeting [j l', (j + 1) l') */
        int64_t ls = p->nsa_ls, d = p->nsa_d, l = p->nsa_l, a = j * ls, e = a + ls;
        int64_t c0 = a - l + 1 <= 0 ? 0 : (a - l + d) / d, c1 = (e - 1) / d < nb - 1 ? (e - 1) / d : nb - 1;
        x->cj0[j] = (int32_t)c0;
        x->cjn[j] = c1 >= c0 ? (int32_t)(c1 - c0 + 1) : 0;
        for (int64_t c = c0; c <= c1; c++) {
            int64_t lo = c * d > a ? c * d : a, hi = c * d + l < e ? c * d + l : e;
            x->wj[(size_t)j * x->kw + (c - c0)] = (float)((double)(hi - lo) / d);
        }
    }
    if (linear) weights_padded(p, p->w_ck, wp, NULL, 0);
    if ((r = compress(p, kn, p->k, p->k_st, linear ? wp : NULL, p->p_k, nb, x->kc)) != ATTN_OK) goto done;
    if (linear) weights_padded(p, p->w_cv, wp, NULL, 0);
    if ((r = compress(p, kn, p->v, p->v_st, linear ? wp : NULL, p->p_v, nb, x->vc)) != ATTN_OK) goto done;
    /* the compressed branch's params: K~, V~ are its keys and values */
    x->pc = *p;
    x->pc.Nk = (int)nb;
    x->pc.k = x->kc;
    x->pc.v = x->vc;
    x->pc.k_st = x->pc.v_st = x->pc.dk_st = x->pc.dv_st = contiguous((int)nb, p->Hkv, D);
    if (!(x->cpack = cpu_attn_pack(&x->pc)) || !(x->kvpack = cpu_attn_pack(p))) r = ATTN_ERR_OOM;
done:
    attn_free(wp);
    return r;
}

static cpu_attn_spec cmp_spec(const nsa_ctx *x) {
    cpu_attn_spec s = {0};
    s.tile_keys = cmp_tile_keys;
    s.key_rows = cmp_key_rows;
    s.max_tile_keys = (int)x->nb;
    s.ctx = x;
    s.packed = x->cpack;
    return s;
}

/* Window branch: the keys the tile's rows window over, from a multiple of CPU_KB (the
 * few extra keys are masked by the window) so that every chunk is read in place. */
static int win_tile_keys(const cpu_attn_spec *s, const attn_params *p, int b, int hkv, int i0, int i1, int32_t *out,
                         int cap) {
    (void)s, (void)b, (void)hkv;
    int64_t lo, hi, lo2, hi2;
    cpu_row_bounds(p, p->w, i0, &lo, &hi);
    cpu_row_bounds(p, p->w, i1 - 1, &lo2, &hi2);
    int n = 0;
    for (int64_t j = lo / CPU_KB * CPU_KB; j <= hi2 && n < cap; j++) out[n++] = (int32_t)j;
    return n;
}

static cpu_attn_spec win_spec(const nsa_ctx *x) {
    cpu_attn_spec s = {0};
    const attn_params *p = x->p;
    s.window = p->w;
    int64_t cap = (int64_t)p->w + CPU_MAX_TILE_Q + CPU_KB;
    s.tile_keys = win_tile_keys;
    s.max_tile_keys = (int)(cap < p->Nk ? cap : p->Nk);
    s.packed = x->kvpack;
    return s;
}

static size_t plane(const attn_params *p) { return (size_t)p->B * p->Hq * p->Nq; }

/* o (strides p->o_st) = a o + g_br t for a in {0, 1}: t contiguous (B, Nq, Hq, D). */
static void add_gated(const attn_params *p, float *o, int keep, const float *t, int br) {
    const float *g = p->g;
    int D = p->D;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < p->B; b++)
        for (int i = 0; i < p->Nq; i++)
            for (int h = 0; h < p->Hq; h++) {
                float *orow = o + b * p->o_st.b + (int64_t)i * p->o_st.s + h * p->o_st.h;
                const float *tr = t + (((size_t)b * p->Nq + i) * p->Hq + h) * D;
                float gv = g[(((size_t)b * p->Nq + i) * p->Hq + h) * 3 + br];
                if (keep)
                    for (int e = 0; e < D; e++) orow[e] += gv * tr[e];
                else
                    for (int e = 0; e < D; e++) orow[e] = gv * tr[e];
            }
}

attn_status nsa_cpu_forward(const attn_params *p) {
    if (!nsa_cpu_supports(p, 0, NULL, 0))
        return attn_params_check(p, ATTN_NSA, 0, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    nsa_kernels kn = pick_kernels();
    nsa_ctx x;
    size_t no = (size_t)p->B * p->Nq * p->Hq * p->D;
    float *t = attn_alloc((no ? no : 1) * sizeof(float));
    float *lse = p->lse;
    double t0 = omp_get_wtime(), tsel = 0;
    attn_status r = ctx_init(&x, p, &kn);
    tsel += omp_get_wtime() - t0;
    if (r == ATTN_OK && !t) r = ATTN_ERR_OOM;
    /* compressed branch into t, then the selection from its lse */
    attn_params pb = x.pc;
    pb.o = t;
    pb.o_st = contiguous(p->Nq, p->Hq, p->D);
    pb.lse = lse;
    cpu_attn_spec s = cmp_spec(&x);
    if (r == ATTN_OK) r = cpu_attn_forward(&pb, &s);
    double t1 = omp_get_wtime();
    if (r == ATTN_OK) r = select_all(&x, &kn, lse);
    tsel += omp_get_wtime() - t1;
    /* window branch straight into o; o = g_win o + g_cmp O_cmp */
    attn_params pw = *p;
    pw.lse = lse + 2 * plane(p);
    s = win_spec(&x);
    if (r == ATTN_OK) r = cpu_attn_forward(&pw, &s);
    if (r == ATTN_OK) {
        float *o = p->o;
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < p->B; b++)
            for (int i = 0; i < p->Nq; i++)
                for (int h = 0; h < p->Hq; h++) {
                    float *orow = o + b * p->o_st.b + (int64_t)i * p->o_st.s + h * p->o_st.h;
                    const float *tr = t + (((size_t)b * p->Nq + i) * p->Hq + h) * p->D;
                    const float *g = (const float *)p->g + (((size_t)b * p->Nq + i) * p->Hq + h) * 3;
                    for (int e = 0; e < p->D; e++) orow[e] = g[2] * orow[e] + g[0] * tr[e];
                }
    }
    /* selected branch into t; o += g_slc O_slc */
    if (r == ATTN_OK) r = slc_forward(&x, &kn, t, lse + plane(p));
    if (r == ATTN_OK) add_gated(p, p->o, 1, t, 1);
    if (p->stats) p->stats->select_ms += 1e3 * tsel;
    attn_free(t);
    ctx_free(&x);
    return r;
}

/* dg[.., br] = dout . O_branch (ob contiguous) and tdo = g_br dout (contiguous). */
static void gate_dout(const attn_params *p, const float *ob, int br, float *tdo) {
    const float *dout = p->dout, *g = p->g;
    float *dg = p->dg;
    int D = p->D;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < p->B; b++)
        for (int i = 0; i < p->Nq; i++)
            for (int h = 0; h < p->Hq; h++) {
                size_t u = ((size_t)b * p->Nq + i) * p->Hq + h;
                const float *dr = dout + b * p->do_st.b + (int64_t)i * p->do_st.s + h * p->do_st.h;
                const float *orow = ob + u * D;
                float *tr = tdo + u * D, gv = g[u * 3 + br];
                double acc = 0;
                for (int e = 0; e < D; e++) {
                    acc += (double)dr[e] * orow[e];
                    tr[e] = gv * dr[e];
                }
                dg[u * 3 + br] = (float)acc;
            }
}

/* The backward of one engine branch whose params pb hold its keys, values, o (=
 * O_branch, contiguous) and lse: gate_dout, then the engine's gradients into pb's dq,
 * dk, dv. */
static attn_status branch_backward(const attn_params *p, attn_params *pb, const cpu_attn_spec *s, int br, float *tdo) {
    int D = p->D;
    gate_dout(p, pb->o, br, tdo);
    pb->dout = tdo;
    pb->do_st = contiguous(p->Nq, p->Hq, D);
    return cpu_attn_backward(pb, s, NULL);
}

/* dst (strides st) += src (contiguous (B, N, H, D)). */
static void add_rows(const float *src, float *dst, attn_stride st, int B, int N, int H, int D) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            for (int h = 0; h < H; h++) {
                float *o = dst + b * st.b + (int64_t)i * st.s + h * st.h;
                const float *sr = src + (((size_t)b * N + i) * H + h) * D;
                for (int e = 0; e < D; e++) o[e] += sr[e];
            }
}

attn_status nsa_cpu_backward(const attn_params *p) {
    if (!nsa_cpu_supports(p, 1, NULL, 0))
        return attn_params_check(p, ATTN_NSA, 1, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    nsa_kernels kn = pick_kernels();
    nsa_ctx x;
    int D = p->D, linear = p->nsa_cmp == NSA_CMP_LINEAR;
    size_t no = (size_t)p->B * p->Nq * p->Hq * D, nc = (size_t)p->B * nsa_num_cmp_blocks(p) * p->Hkv * D;
    attn_stride qst = contiguous(p->Nq, p->Hq, D);
    float *oc = attn_alloc((no ? no : 1) * sizeof(float));  /* O_cmp */
    float *ob = attn_alloc((no ? no : 1) * sizeof(float));  /* O_win, O_slc, then the cmp branch's dq */
    float *tdo = attn_alloc((no ? no : 1) * sizeof(float)); /* dout times a gate */
    float *tdk = attn_alloc((nc ? nc : 1) * sizeof(float)); /* dK~ (B, nb, Hkv, D) */
    float *tdv = attn_alloc((nc ? nc : 1) * sizeof(float)); /* dV~ */
    float *lse = attn_alloc((3 * plane(p) + 1) * sizeof(float));
    double t0 = omp_get_wtime(), tsel = 0;
    attn_status r = ctx_init(&x, p, &kn);
    tsel += omp_get_wtime() - t0;
    if (r == ATTN_OK && (!oc || !ob || !tdo || !tdk || !tdv || !lse)) r = ATTN_ERR_OOM;
    /* compressed branch forward and the selection */
    attn_params pc = x.pc;
    pc.o = oc;
    pc.o_st = qst;
    pc.lse = lse;
    cpu_attn_spec sc = cmp_spec(&x);
    if (r == ATTN_OK) r = cpu_attn_forward(&pc, &sc);
    double t1 = omp_get_wtime();
    if (r == ATTN_OK) r = select_all(&x, &kn, lse);
    tsel += omp_get_wtime() - t1;
    /* window branch: its gradients go straight into dq, dk, dv */
    attn_params pw = *p;
    pw.o = ob;
    pw.o_st = qst;
    pw.lse = lse + 2 * plane(p);
    cpu_attn_spec s = win_spec(&x);
    if (r == ATTN_OK) r = cpu_attn_forward(&pw, &s);
    if (r == ATTN_OK) r = branch_backward(p, &pw, &s, 2, tdo);
    /* selected branch: its gradients added into dq, dk, dv */
    if (r == ATTN_OK) r = slc_forward(&x, &kn, ob, lse + plane(p));
    if (r == ATTN_OK) gate_dout(p, ob, 1, tdo);
    if (r == ATTN_OK) r = slc_backward(&x, &kn, ob, lse + plane(p), tdo);
    /* compressed branch: dq into ob, then added; dK~, dV~ through the compression */
    pc.dq = ob, pc.dq_st = qst;
    pc.dk = tdk;
    pc.dv = tdv;
    if (r == ATTN_OK) r = branch_backward(p, &pc, &sc, 0, tdo);
    if (r == ATTN_OK) add_rows(ob, p->dq, p->dq_st, p->B, p->Nq, p->Hq, D);
    if (r == ATTN_OK)
        r = compress_backward(p, &kn, p->k, p->k_st, linear ? p->w_ck : NULL, p->p_k, tdk, x.nb, p->dk, p->dk_st,
                              p->dw_ck, p->dp_k);
    if (r == ATTN_OK)
        r = compress_backward(p, &kn, p->v, p->v_st, linear ? p->w_cv : NULL, p->p_v, tdv, x.nb, p->dv, p->dv_st,
                              p->dw_cv, p->dp_v);
    if (p->stats) p->stats->select_ms += 1e3 * tsel;
    attn_free(oc);
    attn_free(ob);
    attn_free(tdo);
    attn_free(tdk);
    attn_free(tdv);
    attn_free(lse);
    ctx_free(&x);
    return r;
}

#endif /* NSA_CPU_HOT */
