/*
 * test_model_grad.c: finite-difference check of the whole model's gradients,
 * every parameter tensor, every attention variant, in fp32.
 *
 * For each tensor t with analytic gradient g_t, the loss is probed along two
 * directions u of unit norm: u = g_t / |g_t| and a random sign vector / sqrt(n).
 * The central difference (L(p + eps u) - L(p - eps u)) / (2 eps) must match
 * g_t . u. Directional probes sum the gradient over the whole tensor, which
 * keeps the fp32 signal well above the rounding noise of the loss; the gradient
 * direction catches a wrong magnitude, the random one a wrong direction.
 *
 * Tolerance: the loss (about 3.5, the mean cross-entropy over 26 tokens) is
 * computed in fp32 through two layers and carries rounding of about 1e-6
 * absolute; with eps = 1e-2 that is 1e-4 in the difference quotient, and the
 * truncation error eps^2 |L'''| / 6 is of the same order for these O(1)
 * curvatures. Errors are measured against max(|g_t|, 0.01), so 1e-2 leaves a
 * 10x margin over the worst error measured (< 1e-3, printed per variant), while
 * a real mistake (a missing term, a wrong sign, a transposed weight) is off by
 * tens of percent or more.
 *
 * Selection is discrete: dma's top-w and nsa's block choice are held fixed by
 * the backward (docs/attention.md). When a probe line crosses a selection flip,
 * the difference quotient jumps by J / (2 eps); so each probe tries eps, eps/2,
 * eps/4, ... and takes the first two that agree (a smooth function gives
 * agreeing quotients, a jump does not shrink away until eps is past it). How
 * many probes needed that is printed: it shows the selection is active.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "model_tiny.h"

#define EPS 1e-2
#define TOL 1e-2

static double loss_at(model *m, const int32_t *ids, const int32_t *labels, int B, int T) {
    double mean = NAN;
    char err[256];
    if (model_token_losses(m, ids, labels, B, T, NULL, &mean, NULL, NULL, err, sizeof err) != MODEL_OK) return NAN;
    return mean;
}

static int nflips; /* probes that had to step past a selection flip */

/* The MQAR model's shape on the CPU (results/cpu-nsa-mqar): vocabulary 2048,
 * hidden 64, head dim 16, 256 tokens, nsa with the paper suite's blocks (l 32,
 * d 16, l' 64, n 8) and a window over every key: every block is selected, so the
 * compressed branch's scores decide nothing and its gradient is all there is to
 * get wrong at this length. */
static void scale_config(model_config *c, attn_variant v) {
    tiny_config(c, v);
    c->vocab_size = 2048, c->hidden_size = 64, c->intermediate_size = 128, c->head_dim = 16;
    c->max_position_embeddings = 256;
    c->window = 512, c->keep_window_size = 512;
    c->nsa_l = 32, c->nsa_d = 16, c->nsa_ls = 64, c->nsa_n = 8;
    c->train.context = 256;
}

/* sparse: only every 5th position's label counts (as in MQAR), so that the
 * training step takes the head and the loss over the counted rows alone.
 * scale: scale_config's shape, weights spread to N(0, 0.1) (nsa's gates then
 * range far from 0.5). */
static void check_variant(attn_variant v, attn_backend be, int alt_mode, int sparse, int scale, const char *label) {
    model_config cfg;
    if (scale) scale_config(&cfg, v);
    else tiny_config(&cfg, v);
    cfg.backend = be;
    if (alt_mode == 1) cfg.dma_mode = DMA_MODE_LINEAR, cfg.nsa_cmp = NSA_CMP_MEAN;
    if (alt_mode == 2) { /* nsa's gates fixed: no g_proj, the branches weighted as given */
        cfg.nsa_gates_fixed = 1;
        cfg.nsa_gates[0] = 0.3f, cfg.nsa_gates[1] = 0.6f, cfg.nsa_gates[2] = 0.9f;
    }
    model *m = NULL;
    char err[256], name[200];
    if (model_create(&cfg, &m, err, sizeof err) != MODEL_OK) {
        snprintf(name, sizeof name, "grad/%s/create", label);
        CHECK(0, name, "%s", err);
        return;
    }
    tiny_randomize(m, 11, scale ? 0.1 : 0.3);
    int B = cfg.train.batch_size, T = cfg.train.context, V = cfg.vocab_size;
    int32_t *ids = malloc((size_t)B * T * sizeof(int32_t)), *labels = malloc((size_t)B * T * sizeof(int32_t));
    tiny_batch(5, B, T, V, ids, labels);
    tiny_distinct_ids(6, B, T, V, ids); /* no exact ties in dma's layer-0 scores (model_tiny.h) */
    if (sparse)
        for (int i = 0; i < B * T; i++)
            if (i % 5 != 2) labels[i] = MODEL_IGNORE;
    model_zero_grads(m);
    double loss = 0;
    model_status st = model_forward_backward(m, ids, labels, B, T, 1.0, &loss, err, sizeof err);
    snprintf(name, sizeof name, "grad/%s/forward_backward", label);
    CHECK(st == MODEL_OK && isfinite(loss), name, "%s", st == MODEL_OK ? "loss not finite" : err);
    if (st != MODEL_OK) {
        free(ids);
        free(labels);
        model_free(m);
        return;
    }
    double l0 = loss_at(m, ids, labels, B, T);
    snprintf(name, sizeof name, "grad/%s/loss_matches_scoring", label);
    CHECK(fabs(l0 - loss) <= 1e-6 * fabs(loss), name, "training loss %.9g, scoring loss %.9g", loss, l0);

    float *p = model_params(m), *g = model_grads(m);
    float *gcopy = malloc(model_params_len(m) * sizeof(float));
    memcpy(gcopy, g, model_params_len(m) * sizeof(float));
    double worst = 0;
    const char *worst_name = "";
    rng_t r;
    rng_seed(&r, 99);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        float *pt = p + t->offset, *gt = gcopy + t->offset;
        size_t n = t->numel;
        double gn = 0;
        for (size_t e = 0; e < n; e++) gn += (double)gt[e] * gt[e];
        gn = sqrt(gn);
        float *u = malloc(n * sizeof(float)), *save = malloc(n * sizeof(float));
        memcpy(save, pt, n * sizeof(float));
        double err_t = 0, fd_g = 0, ana_g = 0;
        for (int dir = 0; dir < 2; dir++) {
            if (dir == 0 && gn == 0) continue;
            for (size_t e = 0; e < n; e++)
                u[e] = dir == 0 ? (float)(gt[e] / gn) : (float)((rng_u64(&r) & 1 ? 1.0 : -1.0) / sqrt((double)n));
            double ana = 0;
            for (size_t e = 0; e < n; e++) ana += (double)gt[e] * u[e];
            /* eps, eps/2, eps/4, ...: the first two that agree give the numeric value.
             * A selection flip (dma's top-w, nsa's blocks) on the probe line is a jump
             * that makes the quotient scale with 1/eps; a smaller eps steps past it. */
            double fd = NAN, prev = NAN, scale = fmax(gn, 1e-2);
            for (int k = 0; k < 8; k++) {
                double h = EPS / (double)(1 << k);
                for (size_t e = 0; e < n; e++) pt[e] = save[e] + (float)(h * u[e]);
                double lp = loss_at(m, ids, labels, B, T);
                for (size_t e = 0; e < n; e++) pt[e] = save[e] - (float)(h * u[e]);
                double lm = loss_at(m, ids, labels, B, T);
                memcpy(pt, save, n * sizeof(float));
                fd = (lp - lm) / (2 * h);
                if (k > 0 && fabs(fd - prev) <= 0.5 * TOL * scale) {
                    nflips += k > 1;
                    break;
                }
                prev = fd;
            }
            double e = fabs(fd - ana) / scale;
            if (!(e <= err_t)) err_t = e;
            if (dir == 0) fd_g = fd, ana_g = ana;
        }
        snprintf(name, sizeof name, "grad/%s/%s", label, t->name);
        CHECK(err_t <= TOL, name, "relative error %.3g (|g| = %.3g; along g: numeric %.6g analytic %.6g)", err_t, gn,
              fd_g, ana_g);
        if (err_t > worst || isnan(err_t)) worst = err_t, worst_name = t->name;
        free(u);
        free(save);
    }
    printf("# %s: worst relative error %.3g (%s); %d probes stepped past a selection flip\n", label, worst,
           worst_name, nflips);
    nflips = 0;
    free(ids);
    free(labels);
    free(gcopy);
    model_free(m);
}

int main(void) {
    model_set_threads(2);
    check_variant(ATTN_MHA, ATTN_BACKEND_CPU, 0, 0, 0, "mha");
    check_variant(ATTN_SWA, ATTN_BACKEND_CPU, 0, 0, 0, "swa");
    check_variant(ATTN_DMA, ATTN_BACKEND_CPU, 0, 0, 0, "dma");
    check_variant(ATTN_DMA, ATTN_BACKEND_CPU, 1, 0, 0, "dma_linear");
    check_variant(ATTN_NSA, ATTN_BACKEND_CPU, 0, 0, 0, "nsa");
    check_variant(ATTN_NSA, ATTN_BACKEND_CPU, 1, 0, 0, "nsa_mean");
    check_variant(ATTN_DMA, ATTN_BACKEND_REF, 0, 0, 0, "dma_ref");
    check_variant(ATTN_NSA, ATTN_BACKEND_REF, 0, 0, 0, "nsa_ref");
    check_variant(ATTN_MHA, ATTN_BACKEND_CPU, 0, 1, 0, "mha_sparse_labels");
    check_variant(ATTN_DMA, ATTN_BACKEND_CPU, 0, 1, 0, "dma_sparse_labels");
    check_variant(ATTN_NSA, ATTN_BACKEND_CPU, 0, 1, 1, "nsa_mqar_scale");
    check_variant(ATTN_NSA, ATTN_BACKEND_CPU, 2, 0, 0, "nsa_fixed_gates");
    return check_exit();
}
