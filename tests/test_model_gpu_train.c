/*
 * test_model_gpu_train.c: the whole model on the GPU against the CPU model.
 *
 * For every variant at a small config the CUDA kernels take (head_dim 64):
 *  - one forward/backward: the loss within 1% and the gradient direction (cosine
 *    similarity > 0.99) of the fp32 CPU model's, from the same weights;
 *  - 200 training steps from the same seed on each: the logged losses within 2%
 *    of each other at every 10th step (bf16 compute against fp32); dma also with
 *    its keep window as long as the context, held to 2%, because at w 24 of 64
 *    its top-w selection makes runs chaotic: there within 2% or 1.5 times the
 *    largest gap between the CPU run and three CPU runs from weights perturbed by
 *    bf16's rounding;
 *  - KV-cache decoding (a prefill, then single tokens) against the CPU's cache, same
 *    weights: the logits within 3% of the largest;
 *  - checkpoints: a GPU-trained model saved and loaded on the CPU scores the same
 *    batch within 1% of what the GPU scored; a CPU checkpoint continues on the GPU
 *    (dma's from its runs with the keep window as long as the context);
 *  - a batch that cannot fit fails at set-up with MODEL_ERR_OOM and leaves no
 *    device memory behind.
 * Runs only with DMABENCH_GPU=1 on a machine with a CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef DMABENCH_CUDA
int main(void) {
    printf("# skipped: built without CUDA (the GPU model)\n");
    return 0;
}
#else

#include <unistd.h>

#include "cuda_info.h"
#include "cuda_rt.h"
#include "model_gpu.h"
#include "model_internal.h"
#include "model_tiny.h"

/* 1: nsa runs with its gates fixed (no g_proj; the GPU uploads them once) */
static int nsa_fixed_gates;

static void gpu_config(model_config *c, attn_variant v) {
    tiny_config(c, v);
    if (v == ATTN_NSA && nsa_fixed_gates) {
        c->nsa_gates_fixed = 1;
        c->nsa_gates[0] = 0.25f, c->nsa_gates[1] = 0.5f, c->nsa_gates[2] = 0.75f;
    }
    c->vocab_size = 259; /* bytes and the special tokens */
    c->hidden_size = 128;
    c->intermediate_size = 192;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 64;
    c->max_position_embeddings = 128;
    c->keep_window_size = 24;
    c->window = 24;
    c->train.batch_size = 4;
    c->train.context = 64;
    c->train.steps = 200;
    /* at 2e-3 the runs are chaotic: fp32 CPU runs whose initial weights differ by
     * 2^-9 relative (bf16's rounding) end 2.8% (mha) to 30% (dma) apart at some
     * logged step; at 1e-3, 0.1-0.3% for mha, swa and nsa (dma: below) */
    c->train.lr = 1e-3;
    c->train.warmup = 10;
    c->train.log_every = 10;
}

/* A text with structure at several ranges, so that every variant's loss falls. */
static char *make_text(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *t = malloc(cap);
    rng_t r;
    rng_seed(&r, 99);
    static const char *const words[] = {"attention", "mask", "dynamic", "window", "sparse", "key", "value",
                                        "query", "token", "the", "a", "of", "and", "to", "in"};
    while (len + 64 < cap) {
        int k = (int)rng_below(&r, 15);
        len += (size_t)snprintf(t + len, cap - len, "%s%s", words[k], rng_below(&r, 9) == 0 ? ".\n" : " ");
    }
    *n = len;
    return t;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Trains mc on the CPU and mg on the GPU for cfg->train.steps steps (their
 * trainers come back in *tc and *tg), and nper CPU runs from mc's initial weights
 * perturbed by 2^-9 relative (bf16's rounding), each from another seed. Out: the
 * worst relative gap between the GPU's and the CPU's loss at every 10th step and
 * where, the largest gap of a perturbed run, and the first and last logged losses. */
static model_status train_curves(const model_config *cfg, model_data *data, model *mc, model *mg, model_trainer **tc,
                                 model_trainer **tg, int nper, double *worst, int *at, double *wper, int *nlog,
                                 double *l0c, double *l1c, double *l0g, double *l1g, char *err, size_t errlen) {
    enum { NP = 3, NL = 32 };
    double lcpu[NL], lgpu[NL], lper[NP][NL];
    model *mp[NP] = {0};
    model_trainer *tp[NP] = {0};
    model_status st = MODEL_OK;
    *nlog = 0, *worst = 0, *wper = 0, *at = 0;
    for (int k = 0; k < nper && k < NP && st == MODEL_OK; k++) {
        st = model_create(cfg, &mp[k], err, errlen);
        if (st != MODEL_OK) break;
        memcpy(model_params(mp[k]), model_params(mc), sizeof(float) * model_params_len(mc));
        rng_t r;
        rng_seed(&r, 7 + (uint64_t)k);
        float *pp = model_params(mp[k]);
        for (size_t i = 0; i < model_params_len(mp[k]); i++) pp[i] *= (float)(1.0 + 0x1p-9 * (2 * rng_uniform(&r) - 1));
        st = model_trainer_create(mp[k], data, &tp[k], err, errlen);
    }
    if (st == MODEL_OK) st = model_trainer_create(mc, data, tc, err, errlen);
    if (st == MODEL_OK) st = model_trainer_create(mg, data, tg, err, errlen);
    if (st == MODEL_OK) st = model_trainer_use_gpu(*tg, err, errlen);
    for (int s = 0; s < cfg->train.steps && st == MODEL_OK; s++) {
        model_step_info ic, ig, ip;
        st = model_trainer_step(*tc, &ic, err, errlen);
        if (st == MODEL_OK) st = model_trainer_step(*tg, &ig, err, errlen);
        for (int k = 0; k < nper && k < NP && st == MODEL_OK; k++) {
            st = model_trainer_step(tp[k], &ip, err, errlen);
            if ((s + 1) % 10 == 0 && *nlog < NL) lper[k][*nlog] = ip.loss;
        }
        if (st == MODEL_OK && (s + 1) % 10 == 0 && *nlog < NL) lcpu[*nlog] = ic.loss, lgpu[(*nlog)++] = ig.loss;
    }
    for (int i = 0; i < *nlog; i++) {
        double r = fabs(lgpu[i] - lcpu[i]) / lcpu[i];
        if (r > *worst) *worst = r, *at = (i + 1) * 10;
        for (int k = 0; k < nper && k < NP; k++) {
            double rp = fabs(lper[k][i] - lcpu[i]) / lcpu[i];
            if (rp > *wper) *wper = rp;
        }
    }
    if (*nlog) *l0c = lcpu[0], *l1c = lcpu[*nlog - 1], *l0g = lgpu[0], *l1g = lgpu[*nlog - 1];
    for (int k = 0; k < NP; k++) model_trainer_free(tp[k]), model_free(mp[k]);
    return st;
}

static void run_variant(attn_variant v, const char *text, size_t tn) {
    char name[128], err[512];
    const char *vn = v == ATTN_NSA && nsa_fixed_gates ? "nsa (gates fixed)" : attn_variant_name(v);
    model_config cfg;
    gpu_config(&cfg, v);
    model *mc = NULL, *mg = NULL;
    model_data *data = NULL;
    model_trainer *tc = NULL, *tg = NULL;
    /* dma's runs with the keep window as long as the context (section 2), kept for
     * section 3: CPU and GPU trainers, the GPU trainer's host model */
    model *fc = NULL, *fg = NULL;
    model_trainer *ftc = NULL, *ftg = NULL;
    if (model_data_bytes_from_memory(text, tn, 5, &data, err, sizeof err) || model_create(&cfg, &mc, err, sizeof err) ||
        model_create(&cfg, &mg, err, sizeof err)) {
        snprintf(name, sizeof name, "gpu model %s: set-up", vn);
        CHECK(0, name, "%s", err);
        goto done;
    }

    /* 1. one forward/backward from the same weights; again with only every 5th
     * label counted (as in MQAR: the head and the loss over those rows alone) */
    for (int sparse = 0; sparse < 2; sparse++) {
        int B = cfg.train.batch_size, T = cfg.train.context;
        int32_t *ids = malloc(sizeof(int32_t) * B * T), *labels = malloc(sizeof(int32_t) * B * T);
        data->get_batch(data, 0, B, T, ids, labels, err, sizeof err);
        if (sparse)
            for (int i = 0; i < B * T; i++)
                if (i % 5 != 2) labels[i] = MODEL_IGNORE;
        model_gpu *g = NULL;
        double lc = 0, lg = 0;
        model_zero_grads(mc);
        model_status s1 = model_forward_backward(mc, ids, labels, B, T, 1.0, &lc, err, sizeof err);
        model_status s2 = s1 == MODEL_OK ? model_gpu_create(mg, B, T, &g, err, sizeof err) : s1;
        if (s2 == MODEL_OK) s2 = model_gpu_forward_backward(g, ids, labels, B, T, 1.0, &lg, err, sizeof err);
        size_t np = model_params_len(mg);
        float *gg = malloc(sizeof(float) * np);
        if (s2 == MODEL_OK) s2 = model_gpu_download_grads(g, gg, err, sizeof err);
        double cs = s2 == MODEL_OK ? cosine(model_grads(mc), gg, np) : 0;
        /* every tensor on its own, so that a small one (dt_proj, A, a norm, nsa's
         * compression) cannot hide behind the embedding: relative error of the
         * gradient within 10% (bf16 compute against fp32) */
        double worst = 0, nmax = 0;
        const char *wname = "";
        for (int t = 0; t < model_num_tensors(mc); t++) { /* the largest tensor's gradient norm */
            const model_tensor *mt = model_tensor_at(mc, t);
            double nn = 0;
            for (size_t e = 0; e < mt->numel; e++) nn += (double)model_grads(mc)[mt->offset + e] * model_grads(mc)[mt->offset + e];
            if (nn > nmax) nmax = nn;
        }
        for (int t = 0; s2 == MODEL_OK && t < model_num_tensors(mc); t++) {
            const model_tensor *mt = model_tensor_at(mc, t);
            const float *a = model_grads(mc) + mt->offset, *gt = gg + mt->offset;
            double dd = 0, nn = 0;
            for (size_t e = 0; e < mt->numel; e++) dd += ((double)gt[e] - a[e]) * ((double)gt[e] - a[e]), nn += (double)a[e] * a[e];
            /* a gradient a million times smaller than the largest is rounding noise at bf16 */
            if (nn <= 1e-6 * nmax) continue;
            double r = sqrt(dd / nn);
            if (r > worst) worst = r, wname = mt->name;
        }
        snprintf(name, sizeof name,
                 "gpu model %s%s: one step's loss (1%%) and every tensor's gradient (10%%) match the CPU's", vn,
                 sparse ? " (every 5th label)" : "");
        CHECK(s2 == MODEL_OK && fabs(lg - lc) <= 0.01 * fabs(lc) && cs > 0.99 && worst <= 0.1, name,
              "cpu %.6f gpu %.6f, cosine %.5f, worst tensor %s at %.3f (%s)", lc, lg, cs, wname, worst,
              s2 == MODEL_OK ? "" : err);
        free(gg);
        model_gpu_free(g);
        free(ids);
        free(labels);
    }

    /* 2. 200 steps each, same seed, on the CPU (fp32) and the GPU (bf16 compute):
     * the logged losses within 2% at every 10th step. dma at this config is chaotic:
     * its top-w of z (z starts tied, A = 0, and stays close for many steps) flips on
     * rounding, and fp32 CPU runs from weights perturbed by 2^-9 relative (bf16's
     * rounding) end 5-11% apart, where mha, swa and nsa stay within 0.3%. So dma
     * runs twice: with the keep window as long as the context (no selection, the z
     * bias and its gradients alone), held to 2%; and at w = 24 (the selection
     * trained), held to 1.5 times the largest gap of three such perturbed CPU runs.
     * nsa with its gates fixed is the other chaotic one: its perturbed CPU run ends
     * 2.12% from the CPU's at step 100 (its top-n blocks flip), so it is held the
     * same way (2% where its perturbed runs stay within 1.33%). */
    {
        double worst = 0, wper = 0, l0c = NAN, l1c = NAN, l0g = NAN, l1g = NAN;
        int at = 0, nlog = 0;
        model_init_params(mc, cfg.train.seed);
        model_init_params(mg, cfg.train.seed);
        const int chaotic = v == ATTN_DMA || (v == ATTN_NSA && nsa_fixed_gates);
        model_status st = train_curves(&cfg, data, mc, mg, &tc, &tg, chaotic ? 3 : 1, &worst, &at, &wper, &nlog, &l0c,
                                       &l1c, &l0g, &l1g, err, sizeof err);
        const double bound = chaotic && 1.5 * wper > 0.02 ? 1.5 * wper : 0.02;
        snprintf(name, sizeof name, "gpu model %s%s: 200 steps, losses within %.1f%% of the CPU's at every 10th step", vn,
                 v == ATTN_DMA ? " (w 24 of 64)" : "", 100 * bound);
        CHECK(st == MODEL_OK && nlog == 20 && worst <= bound && l1c < 0.8 * l0c, name,
              "worst %.2f%% at step %d (CPU runs from weights perturbed by 2^-9: up to %.2f%%); cpu %.4f -> %.4f, "
              "gpu %.4f -> %.4f (%s)",
              100 * worst, at, 100 * wper, l0c, l1c, l0g, l1g, st == MODEL_OK ? "" : err);
        if (st == MODEL_OK) printf("# %s: gpu vs cpu %.2f%%, perturbed cpu vs cpu up to %.2f%%\n", vn, 100 * worst, 100 * wper);
        if (st != MODEL_OK) goto done;
        if (v == ATTN_DMA) {
            model_config c2 = cfg;
            c2.keep_window_size = c2.train.context;
            st = model_create(&c2, &fc, err, sizeof err);
            if (st == MODEL_OK) st = model_create(&c2, &fg, err, sizeof err);
            if (st == MODEL_OK) {
                model_init_params(fc, c2.train.seed);
                model_init_params(fg, c2.train.seed);
                st = train_curves(&c2, data, fc, fg, &ftc, &ftg, 1, &worst, &at, &wper, &nlog, &l0c, &l1c, &l0g, &l1g,
                                  err, sizeof err);
            }
            CHECK(st == MODEL_OK && nlog == 20 && worst <= 0.02 && l1c < 0.8 * l0c,
                  "gpu model dma (w 64 of 64): 200 steps, losses within 2.0% of the CPU's at every 10th step",
                  "worst %.2f%% at step %d (a CPU run from weights perturbed by 2^-9: %.2f%%); cpu %.4f -> %.4f, "
                  "gpu %.4f -> %.4f (%s)",
                  100 * worst, at, 100 * wper, l0c, l1c, l0g, l1g, st == MODEL_OK ? "" : err);
            if (st != MODEL_OK) goto done;
        }
    }

    /* 2b. KV-cache decoding on the GPU against the CPU's, same (trained) weights: a
     * prefill of 24 tokens (the operators' prefill path), then 8 single tokens (their
     * decode paths); the last position's logits within 3% of the largest */
    {
        enum { CB = 2, T0 = 24, NN = 8 };
        int32_t ids[CB * (T0 + NN)], labels[CB * (T0 + NN)], pr[CB * T0], one[CB];
        float lc[CB * 259], lg[CB * 259];
        model_gpu *g2 = NULL;
        model_gpu_cache *gc = NULL;
        model_cache *cc = NULL;
        double worst = 0;
        int steps = 0;
        model_status st = data->get_batch(data, 3, CB, T0 + NN, ids, labels, err, sizeof err);
        if (st == MODEL_OK) st = model_gpu_create(mc, CB, T0 + NN, &g2, err, sizeof err);
        if (st == MODEL_OK) st = model_gpu_cache_create(g2, CB, T0 + NN, &gc, err, sizeof err);
        if (st == MODEL_OK) st = model_cache_create(mc, CB, T0 + NN, &cc, err, sizeof err);
        for (int b = 0; b < CB; b++) memcpy(pr + b * T0, ids + b * (T0 + NN), T0 * sizeof(int32_t));
        for (int k = -1; k < NN && st == MODEL_OK; k++) {
            const int32_t *in = pr;
            int n = T0;
            if (k >= 0) {
                for (int b = 0; b < CB; b++) one[b] = ids[b * (T0 + NN) + T0 + k];
                in = one, n = 1;
            }
            st = model_cache_step(mc, cc, in, n, 0, lc, err, sizeof err);
            if (st == MODEL_OK) st = model_gpu_cache_step(g2, gc, in, n, lg, err, sizeof err);
            if (st != MODEL_OK) break;
            double mx = 0, d = 0;
            for (int i = 0; i < CB * cfg.vocab_size; i++) {
                if (fabs(lc[i]) > mx) mx = fabs(lc[i]);
                if (fabs((double)lg[i] - lc[i]) > d) d = fabs((double)lg[i] - lc[i]);
            }
            if (d / mx > worst) worst = d / mx;
            steps++;
        }
        snprintf(name, sizeof name,
                 "gpu model %s: KV-cache decoding (prefill of %d, then %d single tokens) gives the CPU cache's logits (3%%)",
                 vn, T0, NN);
        CHECK(st == MODEL_OK && steps == NN + 1 && worst <= 0.03, name, "worst %.4f over %d steps (%s)", worst, steps,
              st == MODEL_OK ? "" : err);
        model_cache_free(cc);
        model_gpu_cache_free(gc);
        model_gpu_free(g2);
    }

    /* 3. checkpoints both ways */
    {
        char dir[] = "/tmp/dmabench-gpuckpt-XXXXXX";
        if (!mkdtemp(dir)) {
            CHECK(0, "gpu model: a temporary folder for the checkpoints", "mkdtemp failed");
            goto done;
        }
        /* dma's from the runs without selection (section 2's w 64 of 64): at w 24 the
         * trained top-24 of z sits near ties that bf16's rounding flips, and a GPU
         * checkpoint then scored up to 1.25% from the CPU's, in one of six runs outside
         * what three perturbed CPU scores bounded (twenty-first H200 set): a property
         * of the selection on those weights, not of the files, which these checks are
         * about. The selection's GPU/CPU agreement is section 1's and the kernels'. */
        model_trainer *xc = v == ATTN_DMA ? ftc : tc, *xg = v == ATTN_DMA ? ftg : tg;
        model *xm = v == ATTN_DMA ? fg : mg;
        int B = cfg.train.batch_size, T = cfg.train.context;
        int32_t *ids = malloc(sizeof(int32_t) * B * T), *labels = malloc(sizeof(int32_t) * B * T);
        data->get_batch(data, 12345, B, T, ids, labels, err, sizeof err);
        double lg = 0, lh = 0;
        model *ml = NULL;
        model_status st = model_gpu_token_losses(model_trainer_gpu(xg), ids, labels, B, T, NULL, &lg, NULL, err,
                                                 sizeof err);
        if (st == MODEL_OK) st = model_trainer_save(xg, dir, err, sizeof err);
        if (st == MODEL_OK) st = model_load(dir, &ml, NULL, err, sizeof err);
        if (st == MODEL_OK) st = model_token_losses(ml, ids, labels, B, T, NULL, &lh, NULL, NULL, err, sizeof err);
        /* the files hold the GPU's fp32 master weights exactly (the save brought
         * them into xm, the trainer's host model) */
        int same = st == MODEL_OK && model_params_len(ml) == model_params_len(xm) &&
                   !memcmp(model_params(ml), model_params(xm), sizeof(float) * model_params_len(xm));
        snprintf(name, sizeof name, "gpu model %s: a GPU checkpoint loads on the CPU with the same weights, bit for bit",
                 vn);
        CHECK(same, name, "%s", st == MODEL_OK ? "the loaded weights differ" : err);
        /* its score on the CPU (fp32) within 1% of the GPU's (bf16) */
        snprintf(name, sizeof name, "gpu model %s: a GPU checkpoint scores the same on the CPU (1%%)", vn);
        CHECK(st == MODEL_OK && fabs(lh - lg) <= 0.01 * lh, name, "gpu %.6f cpu %.6f (%s)", lg, lh,
              st == MODEL_OK ? "" : err);
        if (st == MODEL_OK) printf("# %s checkpoint: gpu vs cpu score %.2f%%\n", vn, 100 * fabs(lh - lg) / lh);
        /* the CPU model's checkpoint, continued on the GPU and, from the same files,
         * on the CPU: the same loss, and the same update (so the optimizer state
         * made the trip too: with zeroed moments the first AdamW update is about
         * lr sign(g), far from what the saved moments give) */
        model_trainer *t2 = NULL, *t3 = NULL;
        model *m3 = NULL;
        double l0 = 0, l1 = 0;
        if (st == MODEL_OK) st = model_trainer_save(xc, dir, err, sizeof err);
        model_free(ml);
        ml = NULL;
        if (st == MODEL_OK) st = model_load(dir, &ml, NULL, err, sizeof err);
        if (st == MODEL_OK) st = model_load(dir, &m3, NULL, err, sizeof err);
        if (st == MODEL_OK) st = model_token_losses(ml, ids, labels, B, T, NULL, &l0, NULL, NULL, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_create(ml, data, &t2, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_resume(t2, dir, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_use_gpu(t2, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_create(m3, data, &t3, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_resume(t3, dir, err, sizeof err);
        if (st == MODEL_OK)
            st = model_gpu_token_losses(model_trainer_gpu(t2), ids, labels, B, T, NULL, &l1, NULL, err, sizeof err);
        int64_t s0 = t2 ? model_trainer_step_count(t2) : -1;
        size_t np = model_params_len(m3 ? m3 : mc);
        float *before = malloc(sizeof(float) * np);
        if (m3) memcpy(before, model_params(m3), sizeof(float) * np);
        model_step_info ig, ic;
        if (st == MODEL_OK) st = model_trainer_step(t2, &ig, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_step(t3, &ic, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_sync_host(t2, err, sizeof err);
        double du = 0, nu = 0;
        for (size_t e = 0; st == MODEL_OK && e < np; e++) {
            double a = (double)model_params(m3)[e] - before[e], g2 = (double)model_params(ml)[e] - before[e];
            du += (g2 - a) * (g2 - a), nu += a * a;
        }
        double ur = nu > 0 ? sqrt(du / nu) : 1;
        snprintf(name, sizeof name, "gpu model %s: a CPU checkpoint continues on the GPU as on the CPU", vn);
        CHECK(st == MODEL_OK && fabs(l1 - l0) <= 0.01 * l0 && s0 == cfg.train.steps && fabs(ig.loss - ic.loss) <= 0.01 * ic.loss &&
                  ur <= 0.2,
              name, "scores cpu %.6f gpu %.6f; step %lld losses cpu %.6f gpu %.6f; update differs by %.3f (%s)", l0, l1,
              (long long)s0, st == MODEL_OK ? ic.loss : NAN, st == MODEL_OK ? ig.loss : NAN, ur, st == MODEL_OK ? "" : err);
        free(before);
        model_trainer_free(t2);
        model_trainer_free(t3);
        model_free(ml);
        model_free(m3);
        free(ids);
        free(labels);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) {
        }
    }
done:
    model_trainer_free(tc);
    model_trainer_free(tg);
    model_trainer_free(ftc);
    model_trainer_free(ftg);
    model_free(fc);
    model_free(fg);
    model_data_free(data);
    model_free(mc);
    model_free(mg);
}

int main(void) {
    const char *gpu = getenv("DMABENCH_GPU");
    if (!gpu || strcmp(gpu, "1")) {
        printf("# skipped: the GPU model tests run with DMABENCH_GPU=1\n");
        return 0;
    }
    cuda_info ci;
    if (cuda_query(&ci)) {
        printf("# skipped: no CUDA device\n");
        return 0;
    }
    printf("# %s (sm %s)\n", ci.name, ci.cc);
    model_set_threads(0);
    size_t tn;
    char *text = make_text(&tn);
    attn_variant vs[] = {ATTN_MHA, ATTN_SWA, ATTN_DMA, ATTN_NSA};
    for (int i = 0; i < 4; i++) run_variant(vs[i], text, tn);
    nsa_fixed_gates = 1;
    run_variant(ATTN_NSA, text, tn);
    nsa_fixed_gates = 0;
    free(text);

    /* a batch that cannot fit: a clear error at set-up, nothing left allocated */
    {
        model_config cfg;
        gpu_config(&cfg, ATTN_MHA);
        cfg.num_hidden_layers = 64; /* about 330 KB of GPU memory per token */
        cfg.max_position_embeddings = 2048;
        model *m = NULL;
        model_gpu *g = NULL;
        char err[512] = "";
        size_t before = dm_cuda_mem_current();
        model_status st = model_create(&cfg, &m, err, sizeof err);
        if (st == MODEL_OK) st = model_gpu_create(m, 512, 2048, &g, err, sizeof err); /* ~350 GB */
        CHECK(st == MODEL_ERR_OOM && !g && strstr(err, "does not fit") && dm_cuda_mem_current() == before,
              "gpu model: a batch that cannot fit fails at set-up", "status %d, '%s', %zu bytes left", (int)st, err,
              dm_cuda_mem_current() - before);
        model_gpu_free(g);
        model_free(m);
    }
    return check_exit();
}
#endif
