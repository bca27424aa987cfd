/*
 * test_ref.c: the reference operators of mha, swa and dma against hand-computed
 * cases, their invariants, and central finite differences of every gradient.
 * (nsa has its own file, test_nsa_ref.c.)
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn_case.h"
#include "check.h"
#include "dma.h"
#include "gradcheck.h"
#include "mha.h"
#include "registry.h"
#include "swa.h"

static const attn_op *op_of(attn_variant v) { return attn_registry_find(v, ATTN_BACKEND_REF); }

/* Runs a fresh F64 case of variant v at shape sh, filled with seed. */
static void run_case(attn_case *c, attn_variant v, const attn_params *sh, int wdt, int bias, uint64_t seed) {
    attn_case_alloc(c, v, sh, wdt, bias, 1);
    attn_case_fill(c, seed, Z_RANDOM);
}

static double max_diff_slot(const attn_case *a, const attn_case *b, const char *slot) {
    double ma, mr;
    attn_case_compare(a, b, attn_slot_find(slot), &ma, &mr);
    return ma;
}

/* mha by hand: one query, two keys, D = 2. */
static void test_hand_mha(void) {
    double q[2] = {1, 0}, k[4] = {1, 0, 0, 1}, v[4] = {1, 2, 3, 4}, o[2], lse;
    attn_params p;
    attn_params_init(&p, 1, 1, 2, 1, 1, 2, ATTN_DTYPE_F64, 0);
    p.scale = 1.0;
    p.q = q, p.k = k, p.v = v, p.o = o, p.lse = &lse;
    attn_status st = mha_ref_forward(&p);
    /* logits (1, 0): P = (e/(e+1), 1/(e+1)) */
    double e = exp(1.0), p0 = e / (e + 1), p1 = 1 / (e + 1);
    CHECK(st == ATTN_OK && fabs(o[0] - (p0 * 1 + p1 * 3)) < 1e-14 && fabs(o[1] - (p0 * 2 + p1 * 4)) < 1e-14 &&
              fabs(lse - log(e + 1)) < 1e-14,
          "hand/mha_two_keys", "o = (%g, %g), lse = %g", o[0], o[1], lse);

    /* causal with Nq = 3 > Nk = 2: query 0 sits at position -1 and sees nothing */
    double q3[3] = {1, 2, 3}, k2[2] = {1, -1}, v2[2] = {10, 20}, o3[3], lse3[3];
    attn_params_init(&p, 1, 3, 2, 1, 1, 1, ATTN_DTYPE_F64, 1);
    p.scale = 1.0;
    p.q = q3, p.k = k2, p.v = v2, p.o = o3, p.lse = lse3;
    st = mha_ref_forward(&p);
    /* query 1 at position 0 sees key 0 only; query 2 at position 1 sees both */
    double l0 = 3 * 1, l1 = 3 * -1, m = exp(l0) + exp(l1);
    CHECK(st == ATTN_OK && o3[0] == 0 && isinf(lse3[0]) && lse3[0] < 0 && fabs(o3[1] - 10) < 1e-14 &&
              fabs(lse3[1] - 2) < 1e-14 && fabs(o3[2] - (10 * exp(l0) + 20 * exp(l1)) / m) < 1e-12,
          "hand/mha_causal_bottom_right", "o = (%g, %g, %g)", o3[0], o3[1], o3[2]);
}

/* dma by hand: the tie rule. One query sees 4 keys, w = 2, z = (1, 1, 0, 1):
 * the top 2 by (z, index) are keys 3 and 1. */
static void test_hand_dma_ties(void) {
    double q[1] = {0.5}, k[4] = {1, 2, 3, 4}, v[4] = {1, 10, 100, 1000}, z[4] = {1, 1, 0, 1}, o[1], lse;
    attn_params p;
    attn_params_init(&p, 1, 1, 4, 1, 1, 1, ATTN_DTYPE_F64, 1);
    p.scale = 1.0;
    p.w = 2;
    p.q = q, p.k = k, p.v = v, p.z = z, p.o = o, p.lse = &lse;
    attn_status st = dma_ref_forward(&p);
    double l1 = 0.5 * 2 + 1, l3 = 0.5 * 4 + 1;
    double want = (10 * exp(l1) + 1000 * exp(l3)) / (exp(l1) + exp(l3));
    CHECK(st == ATTN_OK && fabs(o[0] - want) < 1e-12 && fabs(lse - log(exp(l1) + exp(l3))) < 1e-12,
          "hand/dma_tie_rule", "o = %.15g, want %.15g", o[0], want);

    /* z from w_dt in exp mode: dt = v * w + b, z = exp(a softplus(dt)) */
    double w_dt[1] = {0.3}, b_dt[1] = {-0.2}, a[1] = {0.7}, zo[4];
    p.z = NULL;
    p.w_dt = w_dt, p.b_dt = b_dt, p.a = a, p.z_out = zo;
    p.w = 4;
    st = dma_ref_forward(&p);
    int ok = st == ATTN_OK;
    for (int j = 0; j < 4; j++) {
        double dt = v[j] * 0.3 - 0.2, sp = log1p(exp(dt));
        ok = ok && fabs(zo[j] - exp(0.7 * sp)) < 1e-12 * fabs(zo[j]);
    }
    CHECK(ok, "hand/dma_z_exp_mode", "z = (%g, %g, %g, %g)", zo[0], zo[1], zo[2], zo[3]);
    p.dma_mode = DMA_MODE_LINEAR;
    st = dma_ref_forward(&p);
    ok = st == ATTN_OK;
    for (int j = 0; j < 4; j++) {
        double dt = v[j] * 0.3 - 0.2, sp = dt > 0 ? dt + log1p(exp(-dt)) : log1p(exp(dt));
        ok = ok && fabs(zo[j] - 0.7 * sp) < 1e-12 * fabs(zo[j]);
    }
    CHECK(ok, "hand/dma_z_linear_mode", "z = (%g, %g, %g, %g)", zo[0], zo[1], zo[2], zo[3]);
}

/* swa by hand: with q = 0 every visible key gets the same weight, so the output is
 * the mean of the window's values: exactly w keys, the diagonal included. */
static void test_hand_swa_window(void) {
    double q[8] = {0}, k[8] = {0}, v[8], o[8], lse[8];
    for (int j = 0; j < 8; j++) v[j] = (double)(1 << j);
    attn_params p;
    attn_params_init(&p, 1, 8, 8, 1, 1, 1, ATTN_DTYPE_F64, 1);
    p.w = 3;
    p.q = q, p.k = k, p.v = v, p.o = o, p.lse = lse;
    attn_status st = swa_ref_forward(&p);
    int ok = st == ATTN_OK;
    for (int i = 0; i < 8; i++) {
        double s = 0;
        int n = 0;
        for (int j = i - 2; j <= i; j++)
            if (j >= 0) s += v[j], n++;
        ok = ok && fabs(o[i] - s / n) < 1e-14 && fabs(lse[i] - log((double)n)) < 1e-14;
    }
    CHECK(ok, "hand/swa_window_w_keys", "o[7] = %g, want %g", o[7], (v[5] + v[6] + v[7]) / 3);
}

/* Shapes the invariants and gradient checks run over. */
typedef struct {
    const char *name;
    int B, Nq, Nk, Hq, Hkv, D, causal;
} shape_t;

static const shape_t shapes[] = {
    {"mha_square", 1, 9, 9, 2, 2, 4, 1},  {"gqa", 2, 7, 7, 4, 2, 3, 1},
    {"mqa_nq_lt_nk", 1, 5, 11, 3, 1, 4, 1}, {"decode_nq1", 2, 1, 13, 2, 1, 5, 1},
    {"nq_gt_nk", 1, 6, 4, 2, 2, 2, 1},    {"noncausal", 1, 5, 8, 2, 1, 3, 0},
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

static void shape_params(attn_params *p, const shape_t *s) {
    attn_params_init(p, s->B, s->Nq, s->Nk, s->Hq, s->Hkv, s->D, ATTN_DTYPE_F64, s->causal);
}

static void test_invariants(void) {
    char name[128];
    for (int si = 0; si < NSHAPES; si++) {
        const shape_t *s = &shapes[si];
        attn_params sh;
        shape_params(&sh, s);
        attn_case mha;
        run_case(&mha, ATTN_MHA, &sh, 0, 0, 100 + si);
        op_of(ATTN_MHA)->forward(&mha.p);

        if (s->causal) { /* swa with w >= Nk equals mha */
            attn_params sw = sh;
            sw.w = s->Nk + 3;
            attn_case swa;
            run_case(&swa, ATTN_SWA, &sw, 0, 0, 100 + si);
            attn_case_copy_inputs(&swa, &mha);
            op_of(ATTN_SWA)->forward(&swa.p);
            snprintf(name, sizeof name, "invariant/swa_wide_is_mha/%s", s->name);
            CHECK(max_diff_slot(&swa, &mha, "o") < 1e-14 && max_diff_slot(&swa, &mha, "lse") < 1e-13, name,
                  "max diff %g", max_diff_slot(&swa, &mha, "o"));
            attn_case_free(&swa);
        }
        /* dma with a = 0 (z constant) and w >= Nk equals mha, in both modes */
        for (int mode = 0; mode < 2; mode++) {
            attn_params dp = sh;
            dp.w = s->Nk;
            dp.dma_mode = mode ? DMA_MODE_LINEAR : DMA_MODE_EXP;
            attn_case dma;
            run_case(&dma, ATTN_DMA, &dp, 1, 1, 100 + si);
            attn_case_copy_inputs(&dma, &mha);
            for (int h = 0; h < s->Hkv; h++) attn_case_set(&dma, attn_slot_find("a"), h, 0.0);
            op_of(ATTN_DMA)->forward(&dma.p);
            snprintf(name, sizeof name, "invariant/dma_a0_is_mha/%s/%s", mode ? "linear" : "exp", s->name);
            CHECK(max_diff_slot(&dma, &mha, "o") < 1e-13, name, "max diff %g", max_diff_slot(&dma, &mha, "o"));
            attn_case_free(&dma);
        }
        /* dma with a constant z keeps the w most recent keys (ties go to the larger
         * index) and adds the same bias to each: it is swa */
        if (s->causal) {
            attn_params dp = sh, sw = sh;
            dp.w = sw.w = 3;
            attn_case dma, swa;
            run_case(&dma, ATTN_DMA, &dp, 0, 0, 100 + si);
            run_case(&swa, ATTN_SWA, &sw, 0, 0, 100 + si);
            attn_case_copy_inputs(&dma, &mha);
            attn_case_copy_inputs(&swa, &mha);
            const attn_slot *zs = attn_slot_find("z");
            for (int64_t e = 0; e < attn_slot_numel(zs, &dma.p, ATTN_DMA); e++) attn_case_set(&dma, zs, e, 0.25);
            op_of(ATTN_DMA)->forward(&dma.p);
            op_of(ATTN_SWA)->forward(&swa.p);
            snprintf(name, sizeof name, "invariant/dma_constant_z_is_swa/%s", s->name);
            CHECK(max_diff_slot(&dma, &swa, "o") < 1e-14, name, "max diff %g", max_diff_slot(&dma, &swa, "o"));
            attn_case_free(&dma);
            attn_case_free(&swa);
        }
        attn_case_free(&mha);
    }
}

/* dma: rows with at most w visible keys keep them all (they match mha exactly apart
 * from the z bias, so compare against a dma run with w = Nk); rows with more keep w. */
static void test_dma_small_rows(void) {
    attn_params sh;
    attn_params_init(&sh, 1, 12, 12, 2, 1, 4, ATTN_DTYPE_F64, 1);
    sh.w = 5;
    attn_case small, wide;
    run_case(&small, ATTN_DMA, &sh, 0, 0, 7);
    attn_params sw = sh;
    sw.w = 12;
    run_case(&wide, ATTN_DMA, &sw, 0, 0, 7);
    op_of(ATTN_DMA)->forward(&small.p);
    op_of(ATTN_DMA)->forward(&wide.p);
    const double *os = small.p.o, *ow = wide.p.o;
    int ok = 1, changed = 0;
    for (int i = 0; i < 12; i++)
        for (int h = 0; h < 2; h++)
            for (int d = 0; d < 4; d++) {
                double a = os[(i * 2 + h) * 4 + d], b = ow[(i * 2 + h) * 4 + d];
                if (i < 5) ok = ok && a == b;
                else changed = changed || a != b;
            }
    CHECK(ok && changed, "invariant/dma_rows_within_w_keep_all", "ok=%d changed=%d", ok, changed);
    attn_case_free(&small);
    attn_case_free(&wide);
}

/* Nothing attends to the future: changing keys/values after position i' leaves
 * row i unchanged (causal variants; dma's z of future keys changed too). */
static void test_no_future(void) {
    attn_variant vs[] = {ATTN_MHA, ATTN_SWA, ATTN_DMA};
    for (int vi = 0; vi < 3; vi++) {
        attn_params sh;
        attn_params_init(&sh, 1, 10, 10, 2, 1, 3, ATTN_DTYPE_F64, 1);
        sh.w = 4;
        attn_case a, b;
        run_case(&a, vs[vi], &sh, 0, 0, 11);
        run_case(&b, vs[vi], &sh, 0, 0, 11);
        int cut = 6; /* perturb keys >= cut: rows i' < cut must not change */
        const char *names[] = {"k", "v", "z"};
        for (int t = 0; t < 3; t++) {
            const attn_slot *s = attn_slot_find(names[t]);
            if (!b.buf[s - attn_slot_find("q")]) continue;
            int64_t n = attn_slot_numel(s, &b.p, b.variant);
            for (int64_t e = 0; e < n; e++) {
                int64_t j = t < 2 ? (e / (1 * 3)) % 10 : e % 10; /* k/v: (1,10,1,3); z: (1,1,10) */
                if (j >= cut) attn_case_set(&b, s, e, attn_case_get(&b, s, e) + 5.0);
            }
        }
        op_of(vs[vi])->forward(&a.p);
        op_of(vs[vi])->forward(&b.p);
        const double *oa = a.p.o, *ob = b.p.o;
        int same = 1, later = 0;
        for (int i = 0; i < 10; i++)
            for (int e = 0; e < 2 * 3; e++) {
                if (i < cut) same = same && oa[i * 6 + e] == ob[i * 6 + e];
                else later = later || oa[i * 6 + e] != ob[i * 6 + e];
            }
        char name[64];
        snprintf(name, sizeof name, "invariant/no_future/%s", attn_variant_name(vs[vi]));
        CHECK(same && later, name, "past rows unchanged=%d, later rows changed=%d", same, later);
        attn_case_free(&a);
        attn_case_free(&b);
    }
}

static void test_gradients(void) {
    char name[160];
    for (int si = 0; si < NSHAPES; si++) {
        const shape_t *s = &shapes[si];
        attn_params sh;
        shape_params(&sh, s);
        attn_case c;
        snprintf(name, sizeof name, "grad/mha/%s", s->name);
        run_case(&c, ATTN_MHA, &sh, 0, 0, 200 + si);
        gradcheck_run(op_of(ATTN_MHA), &c, 1e-6, 1e-7, name);
        attn_case_free(&c);
        if (s->causal) {
            attn_params sw = sh;
            sw.w = 3;
            snprintf(name, sizeof name, "grad/swa/%s", s->name);
            run_case(&c, ATTN_SWA, &sw, 0, 0, 300 + si);
            gradcheck_run(op_of(ATTN_SWA), &c, 1e-6, 1e-7, name);
            attn_case_free(&c);
        }
        for (int cfg = 0; cfg < 3; cfg++) { /* z given; w_dt exp with bias; w_dt linear */
            attn_params dp = sh;
            dp.w = 3;
            dp.dma_mode = cfg == 2 ? DMA_MODE_LINEAR : DMA_MODE_EXP;
            snprintf(name, sizeof name, "grad/dma/%s/%s", cfg == 0 ? "z" : cfg == 1 ? "wdt_exp" : "wdt_linear",
                     s->name);
            run_case(&c, ATTN_DMA, &dp, cfg > 0, cfg == 1, 400 + si * 3 + cfg);
            gradcheck_run(op_of(ATTN_DMA), &c, 1e-6, 1e-7, name);
            attn_case_free(&c);
        }
    }
}

/* attn_params.saved: the CUDA operators of nsa and dma keep part of their forward.
 * nsa's saved area holds K~ and V~, O_cmp, O_slc, O_win, the selection (each 256-byte
 * aligned), 256 bytes of counts and, where the selected branch goes by pairs (G
 * divides 64, D of 16-128) with the forward's lists in one chunk of queries (its
 * partial results in 1 GiB), those lists: cnt [nl], each run's counts [nl][runs]
 * (runs of max(256, 2 ns) queries), off and boff [nl + 1], plist and pq [np], the
 * batches' lists [np + nl], with nl = B Hkv ns lists and np = B Hkv N nsel pairs.
 * Host arithmetic: runs without a GPU. */
static void test_saved_bytes(void) {
    int n;
    const attn_op *ops = attn_registry_list(&n);
    int with = 0;
    for (int i = 0; i < n; i++) {
        int expect = (ops[i].variant == ATTN_NSA || ops[i].variant == ATTN_DMA) && ops[i].backend == ATTN_BACKEND_CUDA;
        CHECK(!!ops[i].saved_bytes == expect, "saved_bytes", "%s %s: saved_bytes %s", attn_variant_name(ops[i].variant),
              attn_backend_name(ops[i].backend), ops[i].saved_bytes ? "given" : "absent");
        with += !!ops[i].saved_bytes;
    }
    const attn_op *op = attn_registry_find(ATTN_NSA, ATTN_BACKEND_CUDA);
    if (!op) {
        printf("# built without CUDA: nsa's saved area not checked\n");
        return;
    }
    for (int t = 0; t < 3; t++) {
        static const int shp[3][5] = {{1, 256, 4, 2, 64}, {2, 1100, 6, 3, 128}, {1, 8192, 32, 8, 128}}; /* B N Hq Hkv D */
        const int B = shp[t][0], N = shp[t][1], Hq = shp[t][2], Hkv = shp[t][3], D = shp[t][4];
        for (int dt = 0; dt < 3; dt++) {
            attn_dtype dty = dt == 0 ? ATTN_DTYPE_BF16 : dt == 1 ? ATTN_DTYPE_F16 : ATTN_DTYPE_F32;
            attn_params p;
            attn_params_init(&p, B, N, N, Hq, Hkv, D, dty, 1);
            /* a query selects n blocks (at least the 3 forced ones), at most all of them */
            const size_t nb = (size_t)nsa_num_cmp_blocks(&p), ns = (size_t)(N + p.nsa_ls - 1) / p.nsa_ls;
            const size_t nsel = (size_t)(p.nsa_n > 3 ? p.nsa_n : 3) < ns ? (size_t)(p.nsa_n > 3 ? p.nsa_n : 3) : ns;
            const size_t e = 2; /* fp32 runs in bf16 */
#define R256(x) (((x) + 255) & ~(size_t)255)
            size_t want = 2 * R256((size_t)B * (nb > 0 ? nb : 1) * Hkv * D * e) + 3 * R256((size_t)B * N * Hq * D * e) +
                          R256((size_t)B * Hkv * N * nsel * sizeof(int)) + 256; /* + the selected branch's counts */
            const size_t G = (size_t)(Hq / Hkv), per_q = (size_t)B * Hkv * nsel * (G * D * 2 + G * 8);
            const int one_chunk = (size_t)N <= ((size_t)1 << 30) / per_q, pairs = 64 % G == 0;
            if (pairs && one_chunk) { /* the pairs' lists kept for the backward */
                const size_t nl = (size_t)B * Hkv * ns, np = (size_t)B * Hkv * N * nsel;
                const size_t qc = 2 * ns > 256 ? 2 * ns : 256, runs = (N + qc - 1) / qc;
                want += R256(nl * 4) + R256(nl * runs * 4) + 2 * R256((nl + 1) * 4) + 2 * R256(np * 4) +
                        R256((np + nl) * 4);
            }
#undef R256
            size_t got = op->saved_bytes(&p);
            CHECK(got == want, "nsa saved_bytes", "B %d N %d Hq %d Hkv %d D %d dtype %d: %zu bytes, want %zu", B, N, Hq,
                  Hkv, D, dt, got, want);
        }
    }
    CHECK(with == 2, "saved_bytes count", "%d operators keep a saved area", with);
    /* dma keeps its plan: each query's threshold key (8 bytes), each tile's list of
     * up to w + 128 keys and its length (tiles of 128 queries), with w_dt z and dt
     * (B, Hkv, Nk) in fp32; then O's rounding residual, (B, Nq, Hq, D) in bf16 */
    const attn_op *dop = attn_registry_find(ATTN_DMA, ATTN_BACKEND_CUDA);
    for (int t = 0; t < 3; t++) {
        static const int shp[3][5] = {{1, 300, 4, 2, 1024}, {2, 1100, 6, 3, 256}, {1, 8192, 32, 8, 1024}}; /* B N Hq Hkv w */
        const int B = shp[t][0], N = shp[t][1], Hq = shp[t][2], Hkv = shp[t][3], w = shp[t][4];
        for (int wdt = 0; wdt < 2; wdt++) {
            attn_params p;
            attn_params_init(&p, B, N, N, Hq, Hkv, 128, ATTN_DTYPE_BF16, 1);
            p.w = w;
            p.w_dt = wdt ? (const void *)&p : NULL; /* only whether it is given matters */
            const size_t u = (size_t)B * Hkv, ntiles = (size_t)(N + 127) / 128, cap = (size_t)(w + 128 < N ? w + 128 : N);
#define R256(x) (((x) + 255) & ~(size_t)255)
            size_t want = R256(u * N * 8) + R256(u * ntiles * cap * 4) + R256(u * ntiles * 4) + (wdt ? 2 * R256(u * N * 4) : 0) +
                          R256((size_t)B * N * Hq * 128 * 2);
#undef R256
            size_t got = dop->saved_bytes(&p);
            CHECK(got == want, "dma saved_bytes", "B %d N %d Hkv %d w %d w_dt %d: %zu bytes, want %zu", B, N, Hkv, w, wdt,
                  got, want);
        }
    }
}

int main(void) {
    test_saved_bytes();
    test_hand_mha();
    test_hand_dma_ties();
    test_hand_swa_window();
    test_invariants();
    test_dma_small_rows();
    test_no_future();
    test_gradients();
    return check_exit();
}
