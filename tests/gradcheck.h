/*
 * gradcheck.h: central finite differences of every gradient an operator writes,
 * in double precision (dtype F64), against its backward. Generic over variants:
 * it walks the slot table, so every input the variant uses is checked.
 *
 * loss = sum(O * R) with R = dout, so dloss/dx = the backward's gradient of x.
 */
#ifndef DMABENCH_GRADCHECK_H
#define DMABENCH_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn_case.h"
#include "check.h"
#include "registry.h"

static double gradcheck_loss(const attn_op *op, attn_case *c) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    if (op->forward(&c->p) != ATTN_OK) return NAN;
    const attn_slot *o = attn_slot_find("o"), *r = attn_slot_find("do");
    int64_t n = attn_slot_numel(o, &c->p, c->variant);
    double s = 0;
    for (int64_t e = 0; e < n; e++) s += attn_case_get(c, o, e) * attn_case_get(c, r, e);
    (void)tab;
    return s;
}

/* Checks every gradient of c (an F64 case with backward buffers, inputs filled).
 * One CHECK line per gradient tensor, named "<name>/<grad>". The selection of
 * dma and nsa is discrete: an element whose +eps and -eps runs select differently
 * would show as a jump; callers pick inputs with well-separated scores. */
static void gradcheck_run(const attn_op *op, attn_case *c, double eps, double tol, const char *name) {
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    attn_status st = op->forward(&c->p);
    if (st == ATTN_OK) st = op->backward(&c->p);
    if (st != ATTN_OK) {
        CHECK(0, name, "forward/backward failed: %s", attn_status_str(st));
        return;
    }
    /* keep a copy of every analytic gradient before the forwards overwrite nothing:
     * forward writes only o, lse, z_out, so gradients stay in place */
    for (int gi = 0; gi < ns; gi++) {
        const attn_slot *gs = &tab[gi];
        if (gs->kind != SLOT_GRAD || !c->buf[gi]) continue;
        const attn_slot *in = &tab[gs->grad_of];
        if (!c->buf[gs->grad_of]) continue; /* e.g. dz when z is computed from w_dt */
        int64_t n = attn_slot_numel(in, &c->p, c->variant);
        double max_err = 0, max_ana = 0;
        int64_t worst = -1;
        for (int64_t e = 0; e < n; e++) {
            double x0 = attn_case_get(c, in, e);
            attn_case_set(c, in, e, x0 + eps);
            double lp = gradcheck_loss(op, c);
            attn_case_set(c, in, e, x0 - eps);
            double lm = gradcheck_loss(op, c);
            attn_case_set(c, in, e, x0);
            double num = (lp - lm) / (2 * eps);
            double ana = attn_case_get(c, gs, e);
            double err = fabs(num - ana);
            if (!(err <= max_err)) { /* also catches NaN */
                max_err = err;
                worst = e;
            }
            if (fabs(ana) > max_ana) max_ana = fabs(ana);
        }
        double rel = max_err / (max_ana > 1 ? max_ana : 1);
        char full[160];
        snprintf(full, sizeof full, "%s/%s", name, gs->name);
        CHECK(rel <= tol, full, "max |numeric - analytic| = %.3g (scale %.3g) at element %lld", max_err,
              max_ana, (long long)worst);
    }
    op->forward(&c->p); /* leave o consistent with the inputs */
}

#endif
