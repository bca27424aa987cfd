/*
 * model_tiny.h: tiny model configs and helpers shared by the model tests.
 * Shapes are chosen so every code path runs: head_dim * heads != hidden (the
 * projections change width), GQA (Hq = 4, Hkv = 2), a context longer than
 * dma's keep window and swa's window (selection is active), NSA blocks small
 * enough that compression and selection both matter.
 */
#ifndef DMABENCH_MODEL_TINY_H
#define DMABENCH_MODEL_TINY_H

#include <math.h>
#include <string.h>

#include "model.h"
#include "rng.h"

static inline void tiny_config(model_config *c, attn_variant v) {
    model_config_default(c);
    c->vocab_size = 32;
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 8;
    c->max_position_embeddings = 64;
    c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
    c->variant = v;
    c->keep_window_size = 6;
    c->window = v == ATTN_DMA ? 6 : 5;
    c->nsa_l = 4, c->nsa_d = 2, c->nsa_ls = 2, c->nsa_n = 4;
    if (v == ATTN_NSA) c->window = 4;
    c->tie_word_embeddings = v != ATTN_DMA; /* dma exercises the untied head */
    c->train.batch_size = 2;
    c->train.context = 16;
    c->train.seed = 7;
}

/* Random ids (B*T) in [0, V) and labels with every 5th position ignored. */
static inline void tiny_batch(uint64_t seed, int B, int T, int V, int32_t *ids, int32_t *labels) {
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)V);
    if (labels)
        for (int i = 0; i < B * T; i++) labels[i] = i % 5 == 3 ? MODEL_IGNORE : (int32_t)rng_below(&r, (uint64_t)V);
}

/* Overwrites ids (B*T) with T distinct tokens per row (a random draw without
 * replacement from [0, V); T <= V). For checks that compare losses at nearby
 * points or across batchings: a token repeated in a row gives keys whose dma
 * scores are equal in exact arithmetic, and the CPU model's GEMMs round rows
 * differently by their place in the BLAS's tiles (OpenBLAS's Haswell and Zen
 * kernels do, on an AMD EPYC), so which of the tied keys dma keeps follows the
 * rounding, not the index: the loss then jumps under any perturbation. */
static inline void tiny_distinct_ids(uint64_t seed, int B, int T, int V, int32_t *ids) {
    rng_t r;
    rng_seed(&r, seed);
    int32_t pool[4096];
    if (T > V || V > 4096) return;
    for (int b = 0; b < B; b++) {
        for (int v = 0; v < V; v++) pool[v] = v;
        for (int i = 0; i < T; i++) {
            const int j = i + (int)rng_below(&r, (uint64_t)(V - i));
            const int32_t x = pool[j];
            pool[j] = pool[i], pool[i] = x;
            ids[(size_t)b * T + i] = x;
        }
    }
}

/* Spreads every parameter so the model is far from its symmetric start:
 * matrices ~ N(0, s), norms and residual vectors 1 + N(0, 0.2), dma's A ~ N(0, 1)
 * (z then differs from key to key, so the dynamic selection is exercised). */
static inline void tiny_randomize(model *m, uint64_t seed, double s) {
    rng_t r;
    rng_seed(&r, seed);
    float *p = model_params(m);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        size_t n = strlen(t->name);
        int vec = t->ndim == 1;
        int isA = n > 2 && !strcmp(t->name + n - 2, ".A");
        for (size_t e = 0; e < t->numel; e++) {
            double g = rng_normal(&r);
            p[t->offset + e] = (float)(isA ? g : vec ? 1.0 + 0.2 * g : s * g);
        }
    }
}

#endif
