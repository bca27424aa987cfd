/*
 * test_nsa_cpu.c: the fast CPU nsa (baselines/nsa/nsa_cpu.c) against the double-
 * precision reference, forward and backward, over GQA, MQA, Nq != Nk, Nq = 1,
 * Nq > Nk, odd sizes, padded strides, windows smaller and larger than N, small
 * blocks (l=8 d=4 l'=8), the paper's (l=32 d=16 l'=64 n=16) at N ~ 300-600, odd ones
 * (l' not a multiple of the 32-key chunk, d = l, Nk < l), both compression modes, on
 * every instruction-set copy; bit-identical results with 1 and 2 threads on every
 * copy; error statuses, the selection timer and the tracked allocator.
 *
 * dp_k is identically zero (p_k adds the same vector W_ck^T flatten(p_k) to every
 * compressed key of a head, and softmax ignores a shift shared by a row's logits), so
 * its reference is rounding noise (~1e-15) and a relative error says nothing; it is
 * held to the dtype's tolerance times the scale of its value-side twin dp_v.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "check.h"
#include "cpu_attn.h"
#include "nsa.h"
#include "registry.h"
#include "verify.h"

typedef struct {
    int B, Nq, Nk, Hq, Hkv, D;
    int l, d, ls, n, w;
    int padded;
} ncase;

static const ncase cases[] = {
    /* small blocks: selection matters at these sizes */
    {1, 64, 64, 4, 4, 32, 8, 4, 8, 3, 7, 0},       /* Hkv = Hq: one row per query */
    {2, 37, 37, 4, 2, 24, 8, 4, 8, 3, 8, 1},       /* GQA, odd sizes, padded strides */
    {1, 50, 50, 6, 1, 16, 8, 4, 8, 16, 55, 0},     /* MQA, group of 6, w > N */
    {1, 19, 83, 4, 2, 32, 8, 4, 8, 3, 13, 0},      /* Nq < Nk */
    {2, 1, 101, 4, 2, 64, 8, 4, 8, 3, 9, 0},       /* decode */
    {1, 70, 33, 2, 2, 16, 8, 4, 8, 3, 38, 0},      /* Nq > Nk: rows that see nothing */
    {1, 40, 40, 2, 1, 128, 8, 4, 8, 3, 8, 0},      /* D = 128 */
    {1, 133, 133, 16, 1, 8, 8, 4, 8, 5, 21, 0},    /* group of 16, D = 8 */
    /* the paper's blocks */
    {1, 300, 300, 4, 2, 16, 32, 16, 64, 16, 64, 0},
    {1, 517, 517, 4, 2, 48, 32, 16, 64, 16, 512, 0},
    {1, 331, 600, 4, 1, 32, 32, 16, 64, 16, 700, 1}, /* Nq < Nk, w > N, padded */
    /* odd blocks: l' = 48 and 24 cross the 32-key chunks, d = l, Nk < l */
    {1, 200, 200, 4, 2, 32, 16, 16, 48, 4, 30, 0},
    {2, 150, 150, 2, 1, 24, 12, 5, 24, 6, 1, 0},
    {1, 20, 20, 4, 2, 16, 32, 16, 64, 16, 8, 0},
};
#define NCASES (int)(sizeof cases / sizeof *cases)

static void shape_of(const ncase *c, nsa_cmp mode, attn_params *sh) {
    attn_params_init(sh, c->B, c->Nq, c->Nk, c->Hq, c->Hkv, c->D, ATTN_DTYPE_F32, 1);
    sh->nsa_l = c->l, sh->nsa_d = c->d, sh->nsa_ls = c->ls, sh->nsa_n = c->n, sh->w = c->w;
    sh->nsa_cmp = mode;
}

static double jget(const cJSON *errors, const char *t, const char *f) {
    const cJSON *e = cJSON_GetObjectItem(errors, t);
    const cJSON *v = e ? cJSON_GetObjectItem(e, f) : NULL;
    return v ? v->valuedouble : NAN;
}

/* Every tensor within its tolerance; dp_k by its abs error against dp_v's scale. */
static int tensors_pass(const verify_result *r, char *why, size_t n) {
    int ok = 1;
    why[0] = 0;
    for (const cJSON *e = r->errors ? r->errors->child : NULL; e; e = e->next) {
        double rel = jget(r->errors, e->string, "rel"), tol = jget(r->errors, e->string, "tol");
        if (!strcmp(e->string, "dp_k")) {
            double ma = jget(r->errors, "dp_k", "abs");
            double sv = jget(r->errors, "dp_v", "abs") / jget(r->errors, "dp_v", "rel"); /* max |dp_v| */
            if (!isfinite(sv)) sv = 1.0;
            if (!(ma <= r->tol * sv)) {
                ok = 0;
                snprintf(why + strlen(why), n - strlen(why), " dp_k abs %.2e > %.0e x %.2e;", ma, r->tol, sv);
            }
            continue;
        }
        if (!(rel <= tol)) {
            ok = 0;
            snprintf(why + strlen(why), n - strlen(why), " %s rel %.2e > %.1e;", e->string, rel, tol);
        }
    }
    return ok;
}

/* all: every case, else the small ones (the narrower instruction-set copies) */
static void against_reference(const char *isa, int all) {
    const attn_op *op = attn_registry_find(ATTN_NSA, ATTN_BACKEND_CPU);
    char name[200], why[512];
    for (int ci = 0; ci < NCASES; ci++)
        for (int mode = 0; mode < 2; mode++) {
            const ncase *c = &cases[ci];
            if (!all && (double)c->Nq * c->Nk * c->Hq * c->D > 4e6) continue;
            attn_params sh;
            shape_of(c, mode ? NSA_CMP_MEAN : NSA_CMP_LINEAR, &sh);
            verify_opts o = {0};
            o.backward = 1;
            o.padded = c->padded;
            o.seed = 4000 + (uint64_t)ci * 10 + mode;
            verify_result r;
            verify_one(op, &sh, &o, &r);
            snprintf(name, sizeof name, "nsa_cpu_vs_ref/%s/B%d_Nq%d_Nk%d_H%d-%d_D%d/l%d_d%d_ls%d_n%d_w%d/%s", isa, c->B,
                     c->Nq, c->Nk, c->Hq, c->Hkv, c->D, c->l, c->d, c->ls, c->n, c->w, mode ? "mean" : "linear");
            int ok = r.status == ATTN_OK && tensors_pass(&r, why, sizeof why);
            CHECK(ok, name, "%s%s (fwd rel %.2e, bwd rel %.2e)", r.why, r.status == ATTN_OK ? why : "", r.fwd_rel,
                  r.bwd_rel);
            cJSON_Delete(r.errors);
        }
}

static int same_outputs(const attn_case *a, const attn_case *b) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        if (tab[i].kind == SLOT_INPUT || !a->buf[i]) continue;
        int64_t n = attn_slot_numel(&tab[i], &a->p, a->variant);
        if (memcmp(a->buf[i], b->buf[i], (size_t)n * attn_dtype_size(attn_slot_dtype(&tab[i], &a->p))) != 0) return 0;
    }
    return 1;
}

static void run_threads(const attn_op *op, attn_case *c, int threads, attn_status st[2]) {
    omp_set_num_threads(threads);
    st[0] = op->forward(&c->p);
    st[1] = op->backward(&c->p);
}

/* 1 and 2 threads: B*Hkv = 1, 2 and 8 units (the selected branch's backward splits a
 * unit into 4, 2 and 1 chunks), paper and small blocks, both compressions. */
static void determinism(const char *isa) {
    const attn_op *op = attn_registry_find(ATTN_NSA, ATTN_BACKEND_CPU);
    int cfg[][3] = {{1, 1, 4}, {1, 2, 8}, {2, 4, 8}}; /* B, Hkv, Hq */
    for (int ci = 0; ci < 3; ci++)
        for (int k = 0; k < 2; k++) {
            attn_params sh;
            attn_params_init(&sh, cfg[ci][0], 517, 517, cfg[ci][2], cfg[ci][1], 64, ATTN_DTYPE_F32, 1);
            sh.w = 100;
            if (k == 1) sh.nsa_l = 8, sh.nsa_d = 4, sh.nsa_ls = 8, sh.nsa_n = 5, sh.nsa_cmp = NSA_CMP_MEAN;
            attn_case a, b;
            attn_case_alloc(&a, ATTN_NSA, &sh, 0, 0, 1);
            attn_case_alloc(&b, ATTN_NSA, &sh, 0, 0, 1);
            attn_case_fill(&a, 77, Z_RANDOM);
            attn_case_fill(&b, 77, Z_RANDOM);
            attn_status sa[2], sb[2];
            run_threads(op, &a, 1, sa);
            run_threads(op, &b, 2, sb);
            char name[96];
            snprintf(name, sizeof name, "nsa_determinism/%s/B%d_Hkv%d/%s", isa, cfg[ci][0], cfg[ci][1],
                     k ? "small_mean" : "paper_linear");
            int ok = sa[0] == ATTN_OK && sa[1] == ATTN_OK && sb[0] == ATTN_OK && sb[1] == ATTN_OK;
            CHECK(ok && same_outputs(&a, &b), name, "%s", ok ? "1 and 2 threads give different bits" : "failed");
            attn_case_free(&a);
            attn_case_free(&b);
        }
    omp_set_num_threads(omp_get_num_procs());
}

/* Statuses, the selection timer, no leaks. */
static void misc(void) {
    const attn_op *op = attn_registry_find(ATTN_NSA, ATTN_BACKEND_CPU);
    attn_params sh;
    attn_case c;
    size_t m0 = attn_mem_current();
    attn_params_init(&sh, 1, 200, 200, 4, 2, 32, ATTN_DTYPE_F32, 1);
    sh.w = 32;
    attn_case_alloc(&c, ATTN_NSA, &sh, 0, 0, 1);
    attn_case_fill(&c, 5, Z_RANDOM);
    size_t m1 = attn_mem_current();
    attn_stats stats = {0};
    c.p.stats = &stats;
    attn_status s1 = op->forward(&c.p), s2 = op->backward(&c.p);
    CHECK(s1 == ATTN_OK && s2 == ATTN_OK && stats.select_ms > 0, "nsa_cpu/stats_select_ms",
          "status %d %d, select_ms %g", s1, s2, stats.select_ms);
    CHECK(attn_mem_current() == m1, "nsa_cpu/no_leak", "%zu bytes still held", attn_mem_current() - m1);
    c.p.stats = NULL;

    c.p.causal = 0;
    char why[128] = "";
    CHECK(!op->supports(&c.p, 0, why, sizeof why) && op->forward(&c.p) == ATTN_ERR_INVALID &&
              op->backward(&c.p) == ATTN_ERR_INVALID,
          "nsa_cpu/noncausal_invalid", "non-causal nsa accepted");
    c.p.causal = 1;
    attn_params p64 = c.p;
    p64.dtype = ATTN_DTYPE_F64;
    CHECK(!op->supports(&p64, 0, why, sizeof why) && op->forward(&p64) == ATTN_ERR_UNSUPPORTED,
          "nsa_cpu/f64_unsupported", "f64 accepted");
    attn_params pg = c.p;
    pg.g = NULL;
    CHECK(op->forward(&pg) == ATTN_ERR_INVALID, "nsa_cpu/missing_gates", "no gates accepted");
    /* a NaN key makes a compressed key NaN: reported, not propagated */
    float *k = (float *)c.p.k;
    float keep = k[5];
    k[5] = NAN;
    CHECK(op->forward(&c.p) == ATTN_ERR_NONFINITE, "nsa_cpu/nonfinite", "NaN in k not reported");
    k[5] = keep;
    CHECK(attn_mem_current() == m1, "nsa_cpu/no_leak_on_errors", "%zu bytes still held", attn_mem_current() - m1);
    attn_case_free(&c);
    CHECK(attn_mem_current() == m0, "nsa_cpu/case_freed", "%zu bytes still held", attn_mem_current() - m0);
}

int main(void) {
    const char *isas[] = {"native", "avx2", "base"};
    __builtin_cpu_init();
    for (int k = 0; k < 3; k++) {
        if (k == 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) continue;
        if (k > 0) setenv("DMABENCH_ISA", isas[k], 1);
        const char *isa = k == 0 ? cpu_attn_isa() : isas[k];
        against_reference(isa, k == 0);
        determinism(isa); /* each copy has its own vector width and sums in its own order */
    }
    unsetenv("DMABENCH_ISA");
    misc();
    return check_exit();
}
