/*
 * model_decode.c: incremental decoding with a KV cache, greedy and
 * temperature sampling. Each step runs the stack over the new tokens only; the
 * attention operator gets Nq = new tokens and Nk = cached + new (bottom-right
 * causal), so every variant uses its own selection per step: dma keeps the z
 * score of every cached key (computed once, by the operator, from the value
 * states) and selects the top-w per query; swa its window; nsa recompresses the
 * cached keys.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "rng.h"

model_status model_cache_create(model *m, int B, int max_len, model_cache **out, char *err, size_t err_len) {
    *out = NULL;
    if (B < 1 || max_len < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "cache: batch and length must be >= 1");
    model_cache *c = calloc(1, sizeof *c);
    if (!c) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    c->B = B, c->max_len = max_len;
    size_t kv = (size_t)m->L * B * max_len * m->KD;
    c->k = attn_alloc(kv * sizeof(float));
    c->v = attn_alloc(kv * sizeof(float));
    int ok = c->k && c->v;
    if (m->cfg.variant == ATTN_DMA) {
        size_t nz = (size_t)B * m->K * max_len;
        c->z = attn_alloc(nz * m->L * sizeof(float));
        c->zc = attn_alloc(nz * sizeof(float));
        c->znew = attn_alloc(nz * sizeof(float));
        ok = ok && c->z && c->zc && c->znew;
    }
    if (!ok || model_rope_ensure(m, max_len) != MODEL_OK) {
        model_cache_free(c);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for a cache of %d x %d tokens", B, max_len);
    }
    *out = c;
    return MODEL_OK;
}

void model_cache_free(model_cache *c) {
    if (!c) return;
    attn_free(c->k);
    attn_free(c->v);
    attn_free(c->z);
    attn_free(c->zc);
    attn_free(c->znew);
    model_acts_free(&c->acts);
    free(c);
}

void model_cache_reset(model_cache *c) { c->len = 0; }
int model_cache_len(const model_cache *c) { return c->len; }

model_status model_cache_step(model *m, model_cache *c, const int32_t *ids, int n, int all_logits, float *logits,
                              char *err, size_t err_len) {
    if (n < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "cache step: no tokens");
    if (c->len + n > c->max_len)
        return model_errf(MODEL_ERR_ARG, err, err_len, "the cache holds %d tokens at most (%d + %d asked)", c->max_len, c->len,
                     n);
    size_t M = (size_t)c->B * n;
    for (size_t i = 0; i < M; i++)
        if (ids[i] < 0 || ids[i] >= m->V)
            return model_errf(MODEL_ERR_ARG, err, err_len, "token id %d is outside the vocabulary (0..%d)", ids[i], m->V - 1);
    if (model_acts_ensure(m, &c->acts, c->B, n, 0) != MODEL_OK)
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    model_status st = model_stack_forward(m, &c->acts, ids, c->B, n, c->len, c, err, err_len);
    if (st != MODEL_OK) return st;
    c->len += n;
    if (all_logits) {
        model_lm_head(m, c->acts.xf, M, logits);
    } else {
        /* the last new row of each sequence */
        float *rows = c->acts.logits; /* (M, V) >= (B, C) floats: reuse as the gathered rows */
        float *xr = c->acts.la[0].xn;  /* (M, C) scratch */
        for (int b = 0; b < c->B; b++)
            memcpy(xr + (size_t)b * m->C, c->acts.xf + ((size_t)b * n + n - 1) * m->C, (size_t)m->C * sizeof(float));
        model_lm_head(m, xr, (size_t)c->B, rows);
        memcpy(logits, rows, (size_t)c->B * m->V * sizeof(float));
    }
    return MODEL_OK;
}

/* Greedy (temperature 0; ties: the lowest id) or sampled from softmax(logits / T)
 * over the top_k largest (0: all). */
static int pick(const float *lg, int V, double temp, int top_k, rng_t *r, double *work) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (lg[j] > lg[best]) best = j;
    if (temp <= 0) return best;
    double thr = -INFINITY;
    if (top_k > 0 && top_k < V) { /* the k-th largest value */
        for (int j = 0; j < V; j++) work[j] = lg[j];
        for (int i = 0; i < top_k; i++) { /* partial selection, k small */
            int mi = i;
            for (int j = i + 1; j < V; j++)
                if (work[j] > work[mi]) mi = j;
            double t = work[i];
            work[i] = work[mi];
            work[mi] = t;
        }
        thr = work[top_k - 1];
    }
    double s = 0, mx = lg[best];
    for (int j = 0; j < V; j++) {
        double p = lg[j] >= thr ? exp((lg[j] - mx) / temp) : 0;
        work[j] = p;
        s += p;
    }
    double u = rng_uniform(r) * s, acc = 0;
    for (int j = 0; j < V; j++) {
        acc += work[j];
        if (u < acc && work[j] > 0) return j;
    }
    return best;
}

/* The generation loops over any cache: step(ctx, ids (B, n), n, logits (B, V)). */
model_status model_generate_loop(model_step_fn step, void *ctx, int V, const int32_t *prompt, int n_prompt,
                                 const model_gen_opts *o, int32_t *out, int *n_out, float *step_logits, char *err,
                                 size_t err_len) {
    *n_out = 0;
    if (n_prompt < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "generate: the prompt is empty");
    if (o->max_new < 0) return model_errf(MODEL_ERR_ARG, err, err_len, "generate: max_new must be >= 0");
    if (!(o->temperature >= 0) || !isfinite(o->temperature))
        return model_errf(MODEL_ERR_ARG, err, err_len, "generate: temperature must be >= 0");
    if (o->max_new == 0) return MODEL_OK;
    model_status st = MODEL_OK;
    float *lg = malloc((size_t)V * sizeof(float));
    double *work = malloc((size_t)V * sizeof(double));
    if (!lg || !work) {
        st = model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
        goto done;
    }
    rng_t r;
    rng_seed(&r, o->seed);
    st = step(ctx, prompt, n_prompt, lg, err, err_len);
    for (int i = 0; i < o->max_new && st == MODEL_OK; i++) {
        if (step_logits) memcpy(step_logits + (size_t)i * V, lg, (size_t)V * sizeof(float));
        int tok = pick(lg, V, o->temperature, o->top_k, &r, work);
        out[i] = tok;
        *n_out = i + 1;
        if (tok == o->stop_token || i + 1 == o->max_new) break;
        st = step(ctx, &out[i], 1, lg, err, err_len);
    }
done:
    free(lg);
    free(work);
    return st;
}

model_status model_greedy_loop(model_step_fn step, void *ctx, int V, const int32_t *prompts, int B, int n_prompt,
                               int n_new, int32_t *out, char *err, size_t err_len) {
    if (n_prompt < 1 || B < 1 || n_new < 0) return model_errf(MODEL_ERR_ARG, err, err_len, "greedy: bad sizes");
    if (n_new == 0) return MODEL_OK;
    model_status st = MODEL_OK;
    float *lg = malloc((size_t)B * V * sizeof(float));
    int32_t *next = malloc((size_t)B * sizeof(int32_t));
    if (!lg || !next) st = model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    if (st == MODEL_OK) st = step(ctx, prompts, n_prompt, lg, err, err_len);
    for (int i = 0; i < n_new && st == MODEL_OK; i++) {
        for (int b = 0; b < B; b++) {
            const float *row = lg + (size_t)b * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (row[j] > row[best]) best = j;
            next[b] = best;
            out[(size_t)b * n_new + i] = best;
        }
        if (i + 1 < n_new) st = step(ctx, next, 1, lg, err, err_len);
    }
    free(lg);
    free(next);
    return st;
}

typedef struct {
    model *m;
    model_cache *c;
} cpu_step_ctx;

static model_status cpu_step(void *ctx, const int32_t *ids, int n, float *logits, char *err, size_t err_len) {
    cpu_step_ctx *x = ctx;
    return model_cache_step(x->m, x->c, ids, n, 0, logits, err, err_len);
}

model_status model_generate(model *m, const int32_t *prompt, int n_prompt, const model_gen_opts *o, int32_t *out,
                            int *n_out, float *step_logits, char *err, size_t err_len) {
    *n_out = 0;
    if (n_prompt < 1 || o->max_new <= 0) /* the loop's argument checks, before a cache is made */
        return model_generate_loop(cpu_step, NULL, m->V, prompt, n_prompt, o, out, n_out, step_logits, err, err_len);
    cpu_step_ctx x = {m, NULL};
    model_status st = model_cache_create(m, 1, n_prompt + o->max_new, &x.c, err, err_len);
    if (st == MODEL_OK) st = model_generate_loop(cpu_step, &x, m->V, prompt, n_prompt, o, out, n_out, step_logits, err, err_len);
    model_cache_free(x.c);
    return st;
}

model_status model_greedy_batch(model *m, const int32_t *prompts, int B, int n_prompt, int n_new, int32_t *out,
                                char *err, size_t err_len) {
    if (n_prompt < 1 || B < 1 || n_new < 0) return model_errf(MODEL_ERR_ARG, err, err_len, "greedy: bad sizes");
    if (n_new == 0) return MODEL_OK;
    cpu_step_ctx x = {m, NULL};
    model_status st = model_cache_create(m, B, n_prompt + n_new, &x.c, err, err_len);
    if (st == MODEL_OK) st = model_greedy_loop(cpu_step, &x, m->V, prompts, B, n_prompt, n_new, out, err, err_len);
    model_cache_free(x.c);
    return st;
}
