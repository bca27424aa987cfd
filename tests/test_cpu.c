/*
 * test_cpu.c: the fast CPU kernels against the double-precision reference (the
 * verify grid's kinds of shapes: GQA, MQA, Nq != Nk, Nq = 1, odd sizes, padded
 * strides, windows smaller and larger than N; scattered and clustered z), on every
 * instruction-set copy of the engine, and bit-identical results with 1 and 2
 * threads on every copy.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "check.h"
#include "cpu_attn.h"
#include "registry.h"
#include "verify.h"

typedef struct {
    int B, Nq, Nk, Hq, Hkv, D, causal;
} shp;

static const shp shapes[] = {
    {1, 70, 70, 4, 4, 32, 1},  {2, 37, 37, 4, 2, 24, 1},  {1, 50, 50, 6, 1, 16, 1}, {1, 19, 83, 4, 2, 32, 1},
    {2, 1, 101, 4, 2, 64, 1},  {1, 70, 33, 2, 2, 16, 1},  {1, 29, 45, 2, 1, 40, 0}, {1, 40, 40, 2, 1, 128, 1},
    {1, 300, 300, 8, 2, 64, 1}, {1, 133, 133, 16, 1, 8, 1},
};
#define NSH (int)(sizeof shapes / sizeof *shapes)

static void against_reference(const char *isa) {
    char name[160];
    attn_variant vs[] = {ATTN_MHA, ATTN_SWA, ATTN_DMA};
    for (int vi = 0; vi < 3; vi++) {
        const attn_op *op = attn_registry_find(vs[vi], ATTN_BACKEND_CPU);
        for (int si = 0; si < NSH; si++) {
            const shp *s = &shapes[si];
            if (vs[vi] == ATTN_SWA && !s->causal) continue;
            for (int k = 0; k < (vs[vi] == ATTN_DMA ? 4 : 1); k++)
                for (int wi = 0; wi < (vs[vi] == ATTN_MHA ? 1 : 2); wi++) {
                    attn_params sh;
                    attn_params_init(&sh, s->B, s->Nq, s->Nk, s->Hq, s->Hkv, s->D, ATTN_DTYPE_F32, s->causal);
                    sh.w = wi == 0 ? 13 : s->Nk + 2;
                    verify_opts o = {0};
                    o.backward = 1;
                    o.seed = 1000 + si * 10 + k;
                    o.padded = si == 1;
                    o.zp = k == 1 ? Z_CLUSTERED : Z_RANDOM;
                    o.dma_wdt = k >= 2;
                    o.dma_bias = k == 2;
                    sh.dma_mode = k == 3 ? DMA_MODE_LINEAR : DMA_MODE_EXP;
                    verify_result r;
                    verify_one(op, &sh, &o, &r);
                    snprintf(name, sizeof name, "cpu_vs_ref/%s/%s/B%d_Nq%d_Nk%d_H%d-%d_D%d%s/w%d/z%d",
                             isa, attn_variant_name(vs[vi]), s->B, s->Nq, s->Nk, s->Hq, s->Hkv, s->D,
                             s->causal ? "" : "_noncausal", sh.w, k);
                    CHECK(r.status == ATTN_OK && r.pass, name, "%s fwd rel %.2e bwd rel %.2e (tol %.0e)",
                          r.why[0] ? r.why : "", r.fwd_rel, r.bwd_rel, r.tol);
                    cJSON_Delete(r.errors);
                }
        }
    }
}

/* Runs fwd + bwd with the given thread count into c's buffers. */
static void run_threads(const attn_op *op, attn_case *c, int threads) {
    omp_set_num_threads(threads);
    op->forward(&c->p);
    op->backward(&c->p);
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

static void determinism(const char *isa) {
    attn_variant vs[] = {ATTN_MHA, ATTN_SWA, ATTN_DMA};
    /* B*Hkv = 1, 2 and 8 units: the backward's chunked and direct paths */
    int cfg[][3] = {{1, 1, 4}, {1, 2, 8}, {2, 4, 8}};
    for (int vi = 0; vi < 3; vi++)
        for (int ci = 0; ci < 3; ci++) {
            attn_params sh;
            attn_params_init(&sh, cfg[ci][0], 517, 517, cfg[ci][2], cfg[ci][1], 64, ATTN_DTYPE_F32, 1);
            sh.w = 100;
            attn_case a, b;
            attn_case_alloc(&a, vs[vi], &sh, vs[vi] == ATTN_DMA, 1, 1);
            attn_case_alloc(&b, vs[vi], &sh, vs[vi] == ATTN_DMA, 1, 1);
            attn_case_fill(&a, 77, Z_RANDOM);
            attn_case_fill(&b, 77, Z_RANDOM);
            const attn_op *op = attn_registry_find(vs[vi], ATTN_BACKEND_CPU);
            run_threads(op, &a, 1);
            run_threads(op, &b, 2);
            char name[96];
            snprintf(name, sizeof name, "determinism/%s/%s/B%d_Hkv%d", isa, attn_variant_name(vs[vi]), cfg[ci][0],
                     cfg[ci][1]);
            CHECK(same_outputs(&a, &b), name, "1 and 2 threads give different bits");
            attn_case_free(&a);
            attn_case_free(&b);
        }
    omp_set_num_threads(omp_get_num_procs());
}

int main(void) {
    const char *isas[] = {"native", "avx2", "base"};
    __builtin_cpu_init();
    for (int k = 0; k < 3; k++) {
        if (k == 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) continue;
        if (k > 0) setenv("DMABENCH_ISA", isas[k], 1);
        const char *isa = k == 0 ? cpu_attn_isa() : isas[k];
        against_reference(isa);
        determinism(isa); /* each copy has its own vector width and sums in its own order */
    }
    unsetenv("DMABENCH_ISA");
    return check_exit();
}
