/*
 * model_gpu.c: the model on the GPU (model_gpu.h). The same steps as model.c's
 * layer_forward / layer_backward, op for op, on model_cuda.h's ops and the CUDA
 * attention operators:
 *
 *   x0 = embed(ids)                                          fp32 residual stream
 *   xn = RMSNorm(x) (bf16); qkv = xn Wqkv^T (bf16)
 *   qf, kf = RoPE(norm(q)), RoPE(norm(k)) (bf16); o = Attn(qf, kf, v) (bf16)
 *   h = rin x + o Wo^T (fp32); hn = RMSNorm(h) (bf16); gu = hn Wgu^T (bf16)
 *   act = silu(gate) up (bf16); y = rpost h + act Wdown^T (fp32)
 *   xf = RMSNorm(x_L) (bf16); loss = CE(xf Whead^T) in vocabulary chunks
 *
 * Weights: fp32 master copy (d_p, the host model's flat layout) and its bf16
 * compute copy (d_pb), refreshed by the fused AdamW. Gradients fp32 (d_g, same
 * layout). Backward GEMMs take bf16 copies of the fp32 gradients they multiply.
 */
#include "model_gpu.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

int model_gpu_head_dim_ok(int d) { return d == 16 || d == 32 || d == 64 || d == 128; }

#ifndef DMABENCH_CUDA

model_status model_gpu_create(model *m, int B, int T, model_gpu **out, char *err, size_t err_len) {
    (void)m, (void)B, (void)T;
    *out = NULL;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
void model_gpu_free(model_gpu *g) { (void)g; }
void model_gpu_memory(const model_gpu *g, model_gpu_mem *mem) {
    (void)g;
    memset(mem, 0, sizeof *mem);
}
model_status model_gpu_forward_backward(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                        double scale, double *loss, char *err, size_t err_len) {
    (void)g, (void)ids, (void)labels, (void)B, (void)T, (void)scale, (void)loss;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_token_losses(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                    float *losses, double *mean, int64_t *count, char *err, size_t err_len) {
    (void)g, (void)ids, (void)labels, (void)B, (void)T, (void)losses, (void)mean, (void)count;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_predict(model_gpu *g, const int32_t *ids, int B, int T, int32_t *pred, char *err, size_t err_len) {
    (void)g, (void)ids, (void)B, (void)T, (void)pred;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
void model_gpu_zero_grads(model_gpu *g) { (void)g; }
model_status model_gpu_download_grads(model_gpu *g, float *out, char *err, size_t err_len) {
    (void)g, (void)out;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_grad_norm(model_gpu *g, double *norm, char *err, size_t err_len) {
    (void)g, (void)norm;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_adamw_step(model_gpu *g, double lr, float gscale, char *err, size_t err_len) {
    (void)g, (void)lr, (void)gscale;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
int64_t model_gpu_adamw_steps(const model_gpu *g) {
    (void)g;
    return 0;
}
model_status model_gpu_download(model_gpu *g, char *err, size_t err_len) {
    (void)g;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_upload(model_gpu *g, char *err, size_t err_len) {
    (void)g;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_adamw_download(model_gpu *g, model_adamw *o, char *err, size_t err_len) {
    (void)g, (void)o;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_adamw_upload(model_gpu *g, const model_adamw *o, char *err, size_t err_len) {
    (void)g, (void)o;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_cache_create(model_gpu *g, int B, int max_len, model_gpu_cache **out, char *err, size_t err_len) {
    (void)g, (void)B, (void)max_len;
    *out = NULL;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
void model_gpu_cache_free(model_gpu_cache *c) { (void)c; }
void model_gpu_cache_reset(model_gpu_cache *c) { (void)c; }
int model_gpu_cache_len(const model_gpu_cache *c) {
    (void)c;
    return 0;
}
model_status model_gpu_cache_step(model_gpu *g, model_gpu_cache *c, const int32_t *ids, int n, float *logits, char *err,
                                  size_t err_len) {
    (void)g, (void)c, (void)ids, (void)n, (void)logits;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_greedy_batch(model_gpu *g, const int32_t *prompts, int B, int n_prompt, int n_new, int32_t *out,
                                    char *err, size_t err_len) {
    (void)g, (void)prompts, (void)B, (void)n_prompt, (void)n_new, (void)out;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}
model_status model_gpu_generate(model_gpu *g, const int32_t *prompt, int n_prompt, const model_gen_opts *o, int32_t *out,
                                int *n_out, char *err, size_t err_len) {
    (void)g, (void)prompt, (void)n_prompt, (void)o, (void)out;
    *n_out = 0;
    return model_errf(MODEL_ERR_ATTN, err, err_len, "CUDA is not built into this binary");
}

#else

#include "cuda_info.h"
#include "cuda_rt.h"
#include "model_cuda.h"
#include "model_gpu_kern.h"
#include "registry.h"
#include <omp.h>

/* DMABENCH_GPU_PHASES=1: each forward/backward prints to stderr, per phase, the
 * host's time to issue its work and the time until the GPU has finished it (a
 * device synchronisation closes every phase, so this slows the step down). For
 * finding where a training step's time goes. */
static int phases_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("DMABENCH_GPU_PHASES");
        on = e && !strcmp(e, "1");
    }
    return on;
}
static double phase_t0;
static void phase_begin(void) {
    if (phases_on() && dm_cuda_sync() == ATTN_OK) phase_t0 = omp_get_wtime();
}
static void phase_end(const char *name) {
    if (!phases_on()) return;
    double issued = omp_get_wtime();
    dm_cuda_sync();
    double done = omp_get_wtime();
    fprintf(stderr, "gpu phase %-9s issued %8.3f ms, done %8.3f ms\n", name, 1e3 * (issued - phase_t0),
            1e3 * (done - phase_t0));
    phase_t0 = done;
}

typedef mcuda_bf16 bf16;

/* One layer's saved activations (device). */
typedef struct {
    bf16 *xn, *qkv, *qf, *kf, *o, *hn, *gu, *act;
    float *r1, *rq, *rk, *lse, *h, *r2;
    float *gs; /* nsa: (M, 3H) gates */
    bf16 *vc;  /* nsa: (M, K*D) v copied out of qkv, contiguous for the operator's compression */
    void *saved; /* what the attention operator's forward keeps for its backward (op->saved_bytes) */
} glayer;

/* Device allocations in one list, freed together. */
typedef struct {
    void **ptrs;
    int n, cap;
    size_t bytes;
} alist;

static int take(alist *a, void **out, size_t bytes) {
    if (a->n == a->cap) {
        int nc = a->cap ? 2 * a->cap : 64;
        void **np = realloc(a->ptrs, (size_t)nc * sizeof *np);
        if (!np) return -1;
        a->ptrs = np, a->cap = nc;
    }
    if (dm_cuda_alloc(out, bytes ? bytes : 16) != ATTN_OK) return -1;
    a->ptrs[a->n++] = *out;
    a->bytes += bytes;
    return 0;
}

struct model_gpu {
    model *m;
    const attn_op *op;
    int Bmax, Tmax;
    size_t saved_b; /* each layer's saved area (op->saved_bytes at Bmax x Tmax), or 0 */
    size_t np;
    float *p, *g;   /* master weights, gradients (np) */
    bf16 *pb;       /* compute copy (np) */
    mcuda_adamw *opt;
    float *cos, *sin; /* RoPE tables (rope_len, D/2) */
    int rope_len;
    float *wdt;     /* dma: (L, K*D, K) dt_proj transposed for the operator */
    float *aux;     /* dma: dw_dt (K*D, K) and da (K) of one layer */
    int32_t *ids, *labels; /* (Bmax * Tmax) */
    int32_t *crow;         /* (Bmax * Tmax) the labelled rows of a step, when they are few */
    float **x;      /* L + 1 residual streams (M, C) */
    glayer *la;
    bf16 *xf;       /* (M, C) final norm */
    float *rf, *rowloss;
    /* backward scratch */
    float *dx[2], *dh, *dhn, *dxn, *dxf;
    bf16 *dyb, *dact, *dgu, *dout, *dqf, *dkf, *dqkv;
    float *dgs; /* nsa: (M, 3H) */
    bf16 *dvc;  /* nsa: (M, K*D) */
    float *plog;   /* (pchunk, V) logits of a chunk of rows (model_gpu_predict) */
    int *ppred;    /* (M) */
    int pchunk;
    size_t act_bytes;
    alist mem; /* every device allocation, freed together */
};

struct model_gpu_cache {
    int B, max_len, len;
    bf16 *k, *v; /* (L, B, max_len, K, D) */
};

#define DP(g, i) ((g)->p + (g)->m->t[i].offset)
#define DPB(g, i) ((g)->pb + (g)->m->t[i].offset)
#define DG(g, i) ((g)->g + (g)->m->t[i].offset)

/* The row stride of qkv and dqkv: the fused projection's width (nsa's gates make
 * it odd) rounded up to 8, so that every row starts 16-byte aligned, as
 * cuBLASLt's fast kernels and the attention's vector loads of v want. The fused
 * weight has that many rows too, the last Wq - Wd of them zero (model.c's
 * build_table), and dqkv's last Wq - Wd columns are zero (set once, never
 * written), so the projection's three GEMMs run at the whole width Wq: split at
 * Wd rounded down to 8, the remainder of fewer than 8 columns took cuBLASLt's
 * 1-element-aligned kernels (docs/perf-notes.md n51). */
static int qkv_ld(const model *m) { return (m->Wd + 7) / 8 * 8; }

/* qkv = xn Wqkv^T (its last Wq - Wd columns zero) */
static attn_status qkv_gemm_fwd(const model *m, int M, const mcuda_bf16 *xn, const mcuda_bf16 *w, mcuda_bf16 *qkv) {
    const int C = m->C, Wq = qkv_ld(m);
    return mcuda_gemm(0, 1, M, Wq, C, 1.0f, xn, C, w, C, 0.0f, qkv, Wq, ATTN_DTYPE_BF16);
}

/* dxn = dqkv Wqkv */
static attn_status qkv_gemm_dx(const model *m, int M, const mcuda_bf16 *dqkv, const mcuda_bf16 *w, float *dxn) {
    const int C = m->C, Wq = qkv_ld(m);
    return mcuda_gemm(0, 0, M, C, Wq, 1.0f, dqkv, Wq, w, C, 0.0f, dxn, C, ATTN_DTYPE_F32);
}

/* dWqkv += dqkv^T xn (the zero rows' gradient stays zero) */
static attn_status qkv_gemm_dw(const model *m, int M, const mcuda_bf16 *dqkv, const mcuda_bf16 *xn, float *dw) {
    const int C = m->C, Wq = qkv_ld(m);
    return mcuda_gemm(1, 0, Wq, C, M, 1.0f, dqkv, Wq, xn, C, 1.0f, dw, C, ATTN_DTYPE_F32);
}

/* A CUDA-side failure as a model status with the op's reason. */
static model_status cfail(attn_status st, char *err, size_t err_len, const char *what) {
    if (st == ATTN_ERR_OOM) return model_errf(MODEL_ERR_OOM, err, err_len, "out of GPU memory in %s", what);
    const char *why = mcuda_last_error();
    if (!why || !why[0]) why = dm_cuda_last_error();
    return model_errf(MODEL_ERR_ATTN, err, err_len, "%s failed: %s (%s)", what, attn_status_str(st), why ? why : "");
}
#define CK(call, what)                                                \
    do {                                                              \
        attn_status s_ = (call);                                      \
        if (s_ != ATTN_OK) return cfail(s_, err, err_len, what);      \
    } while (0)


void model_gpu_free(model_gpu *g) {
    if (!g) return;
    alist *a = &g->mem;
    for (int i = 0; i < a->n; i++) dm_cuda_free(a->ptrs[i]);
    free(a->ptrs);
    mcuda_adamw_free(g->opt);
    free(g->x);
    free(g->la);
    free(g);
}

void model_gpu_memory(const model_gpu *g, model_gpu_mem *mem) {
    memset(mem, 0, sizeof *mem);
    if (!g) return;
    mem->params = g->np * (sizeof(float) + sizeof(bf16)); /* master and compute copies */
    mem->grads = g->np * sizeof(float);
    mem->optimizer = 2 * g->np * sizeof(float);
    mem->activations = g->act_bytes;
    mem->peak = dm_cuda_mem_peak();
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* dt_proj (K, K*D) of every layer -> (K*D, K) as the operator wants it */
static model_status refresh_wdt(model_gpu *g, char *err, size_t err_len) {
    model *m = g->m;
    if (m->cfg.variant != ATTN_DMA) return MODEL_OK;
    for (int l = 0; l < m->L; l++)
        CK(mgk_transpose(DP(g, m->li[l].dt), g->wdt + (size_t)l * m->KD * m->K, m->K, m->KD, 0), "dt_proj transpose");
    return MODEL_OK;
}

model_status model_gpu_create(model *m, int B, int T, model_gpu **out, char *err, size_t err_len) {
    *out = NULL;
    const model_config *c = &m->cfg;
    const attn_op *op = attn_registry_find(c->variant, ATTN_BACKEND_CUDA);
    if (!op) return model_errf(MODEL_ERR_ATTN, err, err_len, "no cuda backend of %s is built in", attn_variant_name(c->variant));
    if (B < 1 || T < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "batch and length must be >= 1");
    cuda_info ci;
    if (cuda_query(&ci) != 0) return model_errf(MODEL_ERR_ATTN, err, err_len, "no usable CUDA device on this machine");
    /* what the CUDA attention takes, before any allocation */
    if (!model_gpu_head_dim_ok(m->D))
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "the cuda attention takes head_dim 16, 32, 64 or 128 (this model has %d)",
                     m->D);
    {   /* the ops index rows x width in 32 bits */
        size_t wmax = (size_t)(qkv_ld(m) > 2 * m->F ? qkv_ld(m) : 2 * m->F);
        if (wmax < (size_t)m->C) wmax = (size_t)m->C;
        if ((size_t)B * T * wmax > 2147483647u)
            return model_errf(MODEL_ERR_ARG, err, err_len, "batch %d x %d is too large for the GPU path (%zu elements per "
                         "activation, the limit is 2^31)", B, T, (size_t)B * T * wmax);
    }
    if (m->H % m->K)
        return model_errf(MODEL_ERR_CONFIG, err, err_len, "num_attention_heads %d is not a multiple of num_key_value_heads %d",
                     m->H, m->K);
    size_t saved_b = 0; /* per layer: what the operator keeps from its forward for its backward */
    {   /* the operator's own limits at this shape (dma's window and heads, nsa's group size, ...),
         * asked with stand-in pointers before anything is allocated */
        void *fake = (void *)(uintptr_t)256;
        attn_params p;
        attn_params_init(&p, B, T, T, m->H, m->K, m->D, ATTN_DTYPE_BF16, 1);
        model_attn_settings(c, &p);
        attn_stride vst = {(int64_t)T * qkv_ld(m), qkv_ld(m), m->D};
        if (c->variant != ATTN_NSA) p.v_st = vst; /* v inside the fused projection (nsa copies it out) */
        p.q = p.k = p.v = p.dout = p.w_dt = p.a = p.g = p.w_ck = p.w_cv = p.p_k = p.p_v = fake;
        p.o = p.lse = p.dq = p.dk = p.dv = p.dw_dt = p.da = fake;
        p.dg = p.dw_ck = p.dw_cv = p.dp_k = p.dp_v = fake;
        char why[256] = "";
        if (!op->supports(&p, 1, why, sizeof why))
            return model_errf(MODEL_ERR_CONFIG, err, err_len, "the cuda %s cannot run this model: %s",
                         attn_variant_name(c->variant), why[0] ? why : "unsupported shape");
        if (op->saved_bytes) saved_b = op->saved_bytes(&p);
    }
    if (model_rope_ensure(m, T) != MODEL_OK) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    model_gpu *g = calloc(1, sizeof *g);
    if (!g) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    alist *a = &g->mem;
    g->m = m, g->op = op, g->Bmax = B, g->Tmax = T, g->np = m->np, g->saved_b = saved_b;
    int L = m->L, C = m->C, H = m->H, K = m->K, D = m->D, F = m->F, Wq = qkv_ld(m), HD = m->HD, KD = m->KD;
    size_t M = (size_t)B * T;
    g->x = calloc((size_t)L + 1, sizeof *g->x);
    g->la = calloc((size_t)L, sizeof *g->la);
    int bad = !g->x || !g->la;
    /* parameters, gradients, optimizer */
    bad = bad || take(a, (void **)&g->p, m->np * sizeof(float)) || take(a, (void **)&g->pb, m->np * sizeof(bf16)) ||
          take(a, (void **)&g->g, m->np * sizeof(float));
    g->rope_len = m->rope_len;
    bad = bad || take(a, (void **)&g->cos, (size_t)m->rope_len * (D / 2) * sizeof(float)) ||
          take(a, (void **)&g->sin, (size_t)m->rope_len * (D / 2) * sizeof(float));
    const int nsa = c->variant == ATTN_NSA;
    if (c->variant == ATTN_DMA)
        bad = bad || take(a, (void **)&g->wdt, (size_t)L * KD * K * sizeof(float)) ||
              take(a, (void **)&g->aux, ((size_t)KD * K + K) * sizeof(float));
    if (nsa && c->nsa_cmp == NSA_CMP_LINEAR) /* dw_ck, dw_cv, dp_k, dp_v of one layer */
        bad = bad || take(a, (void **)&g->aux, 2 * (size_t)K * c->nsa_l * D * (D + 1) * sizeof(float));
    size_t before = a->bytes;
    bad = bad || take(a, (void **)&g->ids, M * sizeof(int32_t)) || take(a, (void **)&g->labels, M * sizeof(int32_t)) ||
          take(a, (void **)&g->crow, M * sizeof(int32_t));
    /* activations: every layer's saved tensors and the residual streams */
    for (int l = 0; l <= L && !bad; l++) bad = take(a, (void **)&g->x[l], M * C * sizeof(float));
    for (int l = 0; l < L && !bad; l++) {
        glayer *la = &g->la[l];
        bad = take(a, (void **)&la->xn, align256(M * C * 2)) || take(a, (void **)&la->qkv, align256(M * Wq * 2)) ||
              take(a, (void **)&la->qf, align256(M * HD * 2)) || take(a, (void **)&la->kf, align256(M * KD * 2)) ||
              take(a, (void **)&la->o, align256(M * HD * 2)) || take(a, (void **)&la->hn, align256(M * C * 2)) ||
              take(a, (void **)&la->gu, align256(M * 2 * F * 2)) || take(a, (void **)&la->act, align256(M * F * 2)) ||
              take(a, (void **)&la->r1, M * sizeof(float)) || take(a, (void **)&la->rq, M * H * sizeof(float)) ||
              take(a, (void **)&la->rk, M * K * sizeof(float)) ||
              take(a, (void **)&la->lse, M * H * (nsa ? 3 : 1) * sizeof(float)) ||
              take(a, (void **)&la->h, M * C * sizeof(float)) || take(a, (void **)&la->r2, M * sizeof(float));
        if (nsa && !bad)
            bad = take(a, (void **)&la->gs, M * 3 * H * sizeof(float)) || take(a, (void **)&la->vc, align256(M * KD * 2));
        if (saved_b && !bad) bad = take(a, &la->saved, saved_b);
    }
    bad = bad || take(a, (void **)&g->xf, align256(M * C * 2)) || take(a, (void **)&g->rf, M * sizeof(float)) ||
          take(a, (void **)&g->rowloss, M * sizeof(float));
    /* backward scratch */
    bad = bad || take(a, (void **)&g->dx[0], M * C * sizeof(float)) || take(a, (void **)&g->dx[1], M * C * sizeof(float)) ||
          take(a, (void **)&g->dh, M * C * sizeof(float)) || take(a, (void **)&g->dhn, M * C * sizeof(float)) ||
          take(a, (void **)&g->dxn, M * C * sizeof(float)) || take(a, (void **)&g->dxf, M * C * sizeof(float)) ||
          take(a, (void **)&g->dyb, align256(M * C * 2)) || take(a, (void **)&g->dact, align256(M * F * 2)) ||
          take(a, (void **)&g->dgu, align256(M * 2 * F * 2)) || take(a, (void **)&g->dout, align256(M * HD * 2)) ||
          take(a, (void **)&g->dqf, align256(M * HD * 2)) || take(a, (void **)&g->dkf, align256(M * KD * 2)) ||
          take(a, (void **)&g->dqkv, align256(M * Wq * 2));
    if (nsa)
        bad = bad || take(a, (void **)&g->dgs, M * 3 * H * sizeof(float)) || take(a, (void **)&g->dvc, align256(M * KD * 2));
    {   /* prediction: logits of up to 64 MiB of rows at a time */
        size_t pc = ((size_t)64 << 20) / ((size_t)m->V * sizeof(float));
        g->pchunk = (int)(pc < 1 ? 1 : pc > M ? M : pc);
        bad = bad || take(a, (void **)&g->plog, (size_t)g->pchunk * m->V * sizeof(float)) ||
              take(a, (void **)&g->ppred, M * sizeof(int));
    }
    g->act_bytes = a->bytes - before;
    if (bad) {
        size_t need = a->bytes;
        model_gpu_free(g);
        size_t fr = 0, tot = 0;
        dm_cuda_mem_info(&fr, &tot);
        return model_errf(MODEL_ERR_OOM, err, err_len,
                     "the model does not fit on the GPU for batches of %d x %d tokens: %.2f GiB taken when an "
                     "allocation failed (%.2f of %.2f GiB free); use a smaller batch or context",
                     B, T, need / 1073741824.0, fr / 1073741824.0, tot / 1073741824.0);
    }
    attn_status st = mcuda_adamw_create(m->t, m->nt, m->np, &g->opt);
    if (st != ATTN_OK) {
        model_gpu_free(g);
        return cfail(st, err, err_len, "the optimizer state");
    }
    st = dm_cuda_h2d(g->cos, m->rope_cos, (size_t)m->rope_len * (D / 2) * sizeof(float));
    if (st == ATTN_OK) st = dm_cuda_h2d(g->sin, m->rope_sin, (size_t)m->rope_len * (D / 2) * sizeof(float));
    if (st != ATTN_OK) {
        model_gpu_free(g);
        return cfail(st, err, err_len, "the RoPE tables' upload");
    }
    /* dqkv's columns past Wd stay zero: the projection's backward GEMMs read them (qkv_ld) */
    if ((st = dm_cuda_memset(g->dqkv, 0, M * Wq * 2)) != ATTN_OK) {
        model_gpu_free(g);
        return cfail(st, err, err_len, "the projection's gradient buffer");
    }
    if (nsa && c->nsa_gates_fixed) {
        /* fixed gates: every row's (g_cmp, g_slc, g_win) per head, uploaded once; nothing else
         * writes la->gs then */
        size_t ng = M * 3 * H;
        float *hg = malloc(ng * sizeof(float));
        st = hg ? ATTN_OK : ATTN_ERR_OOM;
        for (size_t j = 0; hg && j < ng; j++) hg[j] = c->nsa_gates[j % 3];
        for (int l = 0; l < L && st == ATTN_OK; l++) st = dm_cuda_h2d(g->la[l].gs, hg, ng * sizeof(float));
        free(hg);
        if (st != ATTN_OK) {
            model_gpu_free(g);
            return cfail(st, err, err_len, "the fixed nsa gates' upload");
        }
    }
    model_status ms = model_gpu_upload(g, err, err_len);
    if (ms != MODEL_OK) {
        model_gpu_free(g);
        return ms;
    }
    model_gpu_zero_grads(g);
    *out = g;
    return MODEL_OK;
}

model_status model_gpu_upload(model_gpu *g, char *err, size_t err_len) {
    CK(dm_cuda_h2d(g->p, g->m->p, g->np * sizeof(float)), "the parameters' upload");
    CK(mcuda_f32_to_bf16(g->p, g->pb, g->np), "the bf16 copy of the parameters");
    return refresh_wdt(g, err, err_len);
}

model_status model_gpu_download(model_gpu *g, char *err, size_t err_len) {
    CK(dm_cuda_d2h(g->m->p, g->p, g->np * sizeof(float)), "the parameters' download");
    return MODEL_OK;
}

model_status model_gpu_adamw_download(model_gpu *g, model_adamw *o, char *err, size_t err_len) {
    CK(dm_cuda_d2h(model_adamw_m1(o), mcuda_adamw_m1(g->opt), g->np * sizeof(float)), "the optimizer download");
    CK(dm_cuda_d2h(model_adamw_m2(o), mcuda_adamw_m2(g->opt), g->np * sizeof(float)), "the optimizer download");
    model_adamw_set_steps(o, mcuda_adamw_steps(g->opt));
    return MODEL_OK;
}

model_status model_gpu_adamw_upload(model_gpu *g, const model_adamw *o, char *err, size_t err_len) {
    model_adamw *oo = (model_adamw *)o;
    CK(dm_cuda_h2d(mcuda_adamw_m1(g->opt), model_adamw_m1(oo), g->np * sizeof(float)), "the optimizer upload");
    CK(dm_cuda_h2d(mcuda_adamw_m2(g->opt), model_adamw_m2(oo), g->np * sizeof(float)), "the optimizer upload");
    mcuda_adamw_set_steps(g->opt, model_adamw_steps(o));
    return MODEL_OK;
}

void model_gpu_zero_grads(model_gpu *g) {
    phase_begin();
    dm_cuda_memset(g->g, 0, g->np * sizeof(float));
    phase_end("zero grad");
}

model_status model_gpu_download_grads(model_gpu *g, float *out, char *err, size_t err_len) {
    CK(dm_cuda_d2h(out, g->g, g->np * sizeof(float)), "the gradients' download");
    return MODEL_OK;
}

model_status model_gpu_grad_norm(model_gpu *g, double *norm, char *err, size_t err_len) {
    phase_begin();
    CK(mcuda_grad_norm(g->g, g->np, norm), "the gradient norm");
    phase_end("grad norm");
    return MODEL_OK;
}

model_status model_gpu_adamw_step(model_gpu *g, double lr, float gscale, char *err, size_t err_len) {
    phase_begin();
    CK(mcuda_adamw_update(g->opt, g->p, g->g, g->pb, lr, &g->m->cfg.train, gscale), "the AdamW update");
    model_status st = refresh_wdt(g, err, err_len);
    phase_end("adamw");
    return st;
}

int64_t model_gpu_adamw_steps(const model_gpu *g) { return mcuda_adamw_steps(g->opt); }

/* ---- forward ---- */

/* The attention operator's params for layer l (device pointers, bf16). */
static void attn_setup(model_gpu *g, int l, int B, int n, attn_params *p) {
    model *m = g->m;
    const model_config *c = &m->cfg;
    glayer *la = &g->la[l];
    attn_params_init(p, B, n, n, m->H, m->K, m->D, ATTN_DTYPE_BF16, 1);
    model_attn_settings(c, p);
    p->q = la->qf;
    p->k = la->kf;
    p->v = la->qkv + (size_t)(m->H + m->K) * m->D;
    attn_stride vst = {(int64_t)n * qkv_ld(m), qkv_ld(m), m->D};
    p->v_st = vst;
    p->o = la->o;
    p->lse = la->lse;
    p->saved = la->saved; /* the forward fills it, the backward of the same step reads it */
    if (c->variant == ATTN_DMA) {
        p->w_dt = g->wdt + (size_t)l * m->KD * m->K;
        p->a = DP(g, m->li[l].A);
    }
    if (c->variant == ATTN_NSA) {
        const layer_idx *li = &m->li[l];
        attn_stride cst = {(int64_t)n * m->KD, m->KD, m->D};
        p->v = la->vc, p->v_st = cst;
        p->g = la->gs;
        if (c->nsa_cmp == NSA_CMP_LINEAR) {
            p->w_ck = DP(g, li->ck), p->w_cv = DP(g, li->cv);
            p->p_k = DP(g, li->pk), p->p_v = DP(g, li->pv);
        }
    }
}

static model_status attn_error(model_gpu *g, const attn_params *p, attn_status st, int backward, char *err,
                               size_t err_len) {
    char why[256] = "";
    if (!g->op->supports(p, backward, why, sizeof why) && why[0])
        return model_errf(MODEL_ERR_ATTN, err, err_len, "%s cuda %s: %s", attn_variant_name(g->op->variant),
                     backward ? "backward" : "forward", why);
    if (st == ATTN_ERR_OOM) return model_errf(MODEL_ERR_OOM, err, err_len, "out of GPU memory in the attention");
    return model_errf(MODEL_ERR_ATTN, err, err_len, "%s cuda %s failed: %s (%s)", attn_variant_name(g->op->variant),
                 backward ? "backward" : "forward", attn_status_str(st), dm_cuda_last_error());
}

/* Layer l over B x n tokens; with a cache c, the tokens sit at positions c->len ..
 * c->len + n - 1, their keys and values join the cache and the attention runs over
 * all of it. */
static model_status layer_forward(model_gpu *g, int l, int B, int n, model_gpu_cache *c, char *err, size_t err_len) {
    model *m = g->m;
    const layer_idx *li = &m->li[l];
    glayer *la = &g->la[l];
    int M = B * n, C = m->C, F = m->F, Wq = qkv_ld(m), HD = m->HD;
    float eps = (float)m->cfg.rms_norm_eps;
    const float *x = g->x[l];
    float *y = g->x[l + 1];
    const int pos0 = c ? c->len : 0;

    /* the input norm, and h = rin x for the o GEMM to add to */
    CK(mcuda_rmsnorm_forward_res(x, DP(g, li->in_norm), M, C, eps, la->xn, la->r1, DP(g, li->res_in), la->h), "rmsnorm");
    CK(qkv_gemm_fwd(m, M, la->xn, DPB(g, li->q), la->qkv), "qkv gemm");
    mcuda_qk_shape qs = {M, Wq, m->H, m->K, m->D, n, pos0, g->cos, g->sin, g->rope_len, eps};
    CK(mcuda_qk_norm_rope_forward(&qs, la->qkv, DP(g, li->q_norm), DP(g, li->k_norm), la->qf, la->kf, la->rq, la->rk,
                                  ATTN_DTYPE_BF16),
       "q/k norm and RoPE");
    if (m->cfg.variant == ATTN_NSA) {
        const int H = m->H, K = m->K, D = m->D;
        if (!m->cfg.nsa_gates_fixed) CK(mgk_sigmoid_cols(la->qkv, Wq, (H + 2 * K) * D, 3 * H, M, la->gs), "nsa gates");
        CK(mgk_copy_cols(la->qkv, Wq, (H + K) * D, la->vc, m->KD, 0, m->KD, M), "nsa v copy");
    }
    attn_params p;
    attn_setup(g, l, B, n, &p);
    if (c) { /* the new keys and values into the cache; the attention over all of it */
        const int KD = m->KD, Nk = pos0 + n;
        bf16 *kc = c->k + (size_t)l * c->B * c->max_len * KD, *vc = c->v + (size_t)l * c->B * c->max_len * KD;
        for (int b = 0; b < B; b++) {
            bf16 *kd = kc + ((size_t)b * c->max_len + pos0) * KD, *vd = vc + ((size_t)b * c->max_len + pos0) * KD;
            CK(mgk_copy_cols(la->kf + (size_t)b * n * KD, KD, 0, kd, KD, 0, KD, n), "k into the cache");
            CK(mgk_copy_cols(la->qkv + (size_t)b * n * Wq, Wq, (m->H + m->K) * m->D, vd, KD, 0, KD, n),
               "v into the cache");
        }
        attn_stride cst = {(int64_t)c->max_len * KD, KD, m->D};
        p.Nk = Nk;
        p.k = kc, p.k_st = cst;
        p.v = vc, p.v_st = cst;
    }
    /* the saved area serves a training step's backward: none with the KV cache
     * (inference, and keys beyond Tmax), nor for a call it would not hold */
    if (c || (p.saved && g->op->saved_bytes(&p) > g->saved_b)) p.saved = NULL;
    attn_status st = g->op->forward(&p);
    if (st != ATTN_OK) return attn_error(g, &p, st, 0, err, err_len);
    /* h = rin x + o Wo^T */
    CK(mcuda_gemm(0, 1, M, C, HD, 1.0f, la->o, HD, DPB(g, li->o), HD, 1.0f, la->h, C, ATTN_DTYPE_F32), "o gemm");
    /* MLP: the post norm, and y = rpost h for the down GEMM to add to */
    CK(mcuda_rmsnorm_forward_res(la->h, DP(g, li->post_norm), M, C, eps, la->hn, la->r2, DP(g, li->res_post), y),
       "rmsnorm");
    CK(mcuda_gemm(0, 1, M, 2 * F, C, 1.0f, la->hn, C, DPB(g, li->gate), C, 0.0f, la->gu, 2 * F, ATTN_DTYPE_BF16),
       "gate/up gemm");
    CK(mcuda_swiglu_forward(la->gu, la->act, M, F, ATTN_DTYPE_BF16), "swiglu");
    CK(mcuda_gemm(0, 1, M, C, F, 1.0f, la->act, F, DPB(g, li->down), F, 1.0f, y, C, ATTN_DTYPE_F32), "down gemm");
    return MODEL_OK;
}

static model_status check_batch(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T, char *err,
                                size_t err_len) {
    if (B < 1 || T < 1 || (size_t)B * T > (size_t)g->Bmax * g->Tmax || T > g->rope_len)
        return model_errf(MODEL_ERR_ARG, err, err_len, "batch %d x %d is larger than the GPU model was set up for (%d x %d)",
                     B, T, g->Bmax, g->Tmax);
    size_t M = (size_t)B * T;
    int V = g->m->V;
    for (size_t i = 0; i < M; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return model_errf(MODEL_ERR_ARG, err, err_len, "token id %d at position %zu is outside the vocabulary (0..%d)",
                         ids[i], i, V - 1);
        if (labels && labels[i] != MODEL_IGNORE && (labels[i] < 0 || labels[i] >= V))
            return model_errf(MODEL_ERR_ARG, err, err_len, "label %d at position %zu is neither a token id (0..%d) nor %d",
                         labels[i], i, V - 1, MODEL_IGNORE);
    }
    return MODEL_OK;
}

/* The embedding, the layers and (final_norm) the final norm over every row */
static model_status stack_forward(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T, int final_norm,
                                  char *err, size_t err_len) {
    model *m = g->m;
    size_t M = (size_t)B * T;
    CK(dm_cuda_h2d(g->ids, ids, M * sizeof(int32_t)), "the ids' upload");
    if (labels) CK(dm_cuda_h2d(g->labels, labels, M * sizeof(int32_t)), "the labels' upload");
    CK(mcuda_embed_forward(g->ids, (int)M, DP(g, m->emb), m->V, m->C, g->x[0], NULL), "embedding");
    for (int l = 0; l < m->L; l++) {
        model_status st = layer_forward(g, l, B, T, NULL, err, err_len);
        if (st != MODEL_OK) return st;
    }
    if (final_norm)
        CK(mcuda_rmsnorm_forward(g->x[m->L], DP(g, m->fnorm), (int)M, m->C, (float)m->cfg.rms_norm_eps, NULL, g->xf,
                                 g->rf),
           "final rmsnorm");
    return MODEL_OK;
}

model_status model_gpu_token_losses(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                    float *losses, double *mean, int64_t *count, char *err, size_t err_len) {
    model *m = g->m;
    if (!labels) return model_errf(MODEL_ERR_ARG, err, err_len, "token losses need labels");
    model_status st = check_batch(g, ids, labels, B, T, err, err_len);
    if (st == MODEL_OK) st = stack_forward(g, ids, labels, B, T, 1, err, err_len);
    if (st != MODEL_OK) return st;
    size_t M = (size_t)B * T;
    int64_t n = 0;
    double s = 0;
    CK(mcuda_cross_entropy(g->xf, DPB(g, m->head), ATTN_DTYPE_BF16, g->labels, (int)M, m->C, m->V, 0, 0.0, g->rowloss,
                           NULL, NULL, &n, &s),
       "cross-entropy");
    if (losses) CK(dm_cuda_d2h(losses, g->rowloss, M * sizeof(float)), "the losses' download");
    if (mean) *mean = n ? s / (double)n : 0.0;
    if (count) *count = n;
    return isfinite(s) ? MODEL_OK : model_errf(MODEL_ERR_NONFINITE, err, err_len, "the loss is not finite");
}

model_status model_gpu_predict(model_gpu *g, const int32_t *ids, int B, int T, int32_t *pred, char *err, size_t err_len) {
    model *m = g->m;
    model_status st = check_batch(g, ids, NULL, B, T, err, err_len);
    if (st == MODEL_OK) st = stack_forward(g, ids, NULL, B, T, 1, err, err_len);
    if (st != MODEL_OK) return st;
    const int M = B * T;
    for (int r0 = 0; r0 < M; r0 += g->pchunk) {
        const int rows = M - r0 < g->pchunk ? M - r0 : g->pchunk;
        CK(mcuda_gemm(0, 1, rows, m->V, m->C, 1.0f, g->xf + (size_t)r0 * m->C, m->C, DPB(g, m->head), m->C, 0.0f, g->plog,
                      m->V, ATTN_DTYPE_F32),
           "logits gemm");
        CK(mgk_argmax_rows(g->plog, rows, m->V, g->ppred + r0), "argmax");
    }
    CK(dm_cuda_d2h(pred, g->ppred, (size_t)M * sizeof(int32_t)), "the predictions' download");
    return MODEL_OK;
}

/* ---- incremental decoding ---- */

model_status model_gpu_cache_create(model_gpu *g, int B, int max_len, model_gpu_cache **out, char *err, size_t err_len) {
    model *m = g->m;
    *out = NULL;
    if (B < 1 || max_len < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "cache: batch and length must be >= 1");
    if (B > g->pchunk)
        return model_errf(MODEL_ERR_ARG, err, err_len, "cache: %d sequences, the GPU model takes %d at a time", B, g->pchunk);
    if (max_len > g->rope_len) { /* RoPE tables as long as the cache */
        if (model_rope_ensure(m, max_len) != MODEL_OK) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
        float *cs = NULL, *sn = NULL;
        const size_t tb = (size_t)m->rope_len * (m->D / 2) * sizeof(float);
        if (take(&g->mem, (void **)&cs, tb) || take(&g->mem, (void **)&sn, tb))
            return model_errf(MODEL_ERR_OOM, err, err_len, "out of GPU memory for RoPE tables of %d positions", max_len);
        CK(dm_cuda_h2d(cs, m->rope_cos, tb), "the RoPE tables' upload");
        CK(dm_cuda_h2d(sn, m->rope_sin, tb), "the RoPE tables' upload");
        g->cos = cs, g->sin = sn, g->rope_len = m->rope_len;
    }
    model_gpu_cache *c = calloc(1, sizeof *c);
    if (!c) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    c->B = B, c->max_len = max_len;
    const size_t kv = (size_t)m->L * B * max_len * m->KD * sizeof(bf16);
    if (dm_cuda_alloc((void **)&c->k, kv) != ATTN_OK || dm_cuda_alloc((void **)&c->v, kv) != ATTN_OK) {
        model_gpu_cache_free(c);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of GPU memory for a cache of %d x %d tokens (%.2f GiB)", B,
                          max_len, 2.0 * kv / 1073741824.0);
    }
    *out = c;
    return MODEL_OK;
}

void model_gpu_cache_free(model_gpu_cache *c) {
    if (!c) return;
    dm_cuda_free(c->k);
    dm_cuda_free(c->v);
    free(c);
}

void model_gpu_cache_reset(model_gpu_cache *c) { c->len = 0; }
int model_gpu_cache_len(const model_gpu_cache *c) { return c->len; }

model_status model_gpu_cache_step(model_gpu *g, model_gpu_cache *c, const int32_t *ids, int n, float *logits, char *err,
                                  size_t err_len) {
    model *m = g->m;
    if (n < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "cache step: no tokens");
    if (c->len + n > c->max_len)
        return model_errf(MODEL_ERR_ARG, err, err_len, "the cache holds %d tokens at most (%d + %d asked)", c->max_len,
                          c->len, n);
    const int B = c->B;
    model_status st = check_batch(g, ids, NULL, B, n, err, err_len);
    if (st != MODEL_OK) return st;
    const size_t M = (size_t)B * n;
    CK(dm_cuda_h2d(g->ids, ids, M * sizeof(int32_t)), "the ids' upload");
    CK(mcuda_embed_forward(g->ids, (int)M, DP(g, m->emb), m->V, m->C, g->x[0], NULL), "embedding");
    for (int l = 0; l < m->L; l++)
        if ((st = layer_forward(g, l, B, n, c, err, err_len)) != MODEL_OK) return st;
    c->len += n;
    CK(mcuda_rmsnorm_forward(g->x[m->L], DP(g, m->fnorm), (int)M, m->C, (float)m->cfg.rms_norm_eps, NULL, g->xf, g->rf),
       "final rmsnorm");
    /* each sequence's last new row: rows n - 1, 2n - 1, ... of xf, read with stride n C */
    CK(mcuda_gemm(0, 1, B, m->V, m->C, 1.0f, g->xf + (size_t)(n - 1) * m->C, n * m->C, DPB(g, m->head), m->C, 0.0f,
                  g->plog, m->V, ATTN_DTYPE_F32),
       "logits gemm");
    CK(dm_cuda_d2h(logits, g->plog, (size_t)B * m->V * sizeof(float)), "the logits' download");
    return MODEL_OK;
}

typedef struct {
    model_gpu *g;
    model_gpu_cache *c;
} gpu_step_ctx;

static model_status gpu_step(void *ctx, const int32_t *ids, int n, float *logits, char *err, size_t err_len) {
    gpu_step_ctx *x = ctx;
    return model_gpu_cache_step(x->g, x->c, ids, n, logits, err, err_len);
}

model_status model_gpu_greedy_batch(model_gpu *g, const int32_t *prompts, int B, int n_prompt, int n_new, int32_t *out,
                                    char *err, size_t err_len) {
    if (n_prompt < 1 || B < 1 || n_new < 0) return model_errf(MODEL_ERR_ARG, err, err_len, "greedy: bad sizes");
    if (n_new == 0) return MODEL_OK;
    gpu_step_ctx x = {g, NULL};
    model_status st = model_gpu_cache_create(g, B, n_prompt + n_new, &x.c, err, err_len);
    if (st == MODEL_OK) st = model_greedy_loop(gpu_step, &x, g->m->V, prompts, B, n_prompt, n_new, out, err, err_len);
    model_gpu_cache_free(x.c);
    return st;
}

model_status model_gpu_generate(model_gpu *g, const int32_t *prompt, int n_prompt, const model_gen_opts *o, int32_t *out,
                                int *n_out, char *err, size_t err_len) {
    *n_out = 0;
    if (n_prompt < 1 || o->max_new <= 0)
        return model_generate_loop(gpu_step, NULL, g->m->V, prompt, n_prompt, o, out, n_out, NULL, err, err_len);
    gpu_step_ctx x = {g, NULL};
    model_status st = model_gpu_cache_create(g, 1, n_prompt + o->max_new, &x.c, err, err_len);
    if (st == MODEL_OK) st = model_generate_loop(gpu_step, &x, g->m->V, prompt, n_prompt, o, out, n_out, NULL, err, err_len);
    model_gpu_cache_free(x.c);
    return st;
}

/* ---- backward ---- */

static model_status layer_backward(model_gpu *g, int l, int B, int n, const float *dy, float *dx, char *err,
                                   size_t err_len) {
    model *m = g->m;
    const model_config *c = &m->cfg;
    const layer_idx *li = &m->li[l];
    glayer *la = &g->la[l];
    const float *x = g->x[l];
    int M = B * n, C = m->C, K = m->K, F = m->F, Wq = qkv_ld(m), HD = m->HD, KD = m->KD;

    /* y = rpost h + act Wdown^T: rpost's gradient, dh = rpost dy (the norm's
     * backward adds the rest below) and dy in bf16 for the GEMMs, in one pass */
    CK(mcuda_residual_backward(dy, la->h, DP(g, li->res_post), M, C, g->dh, g->dyb, DG(g, li->res_post)), "residual");
    CK(mcuda_gemm(0, 0, M, F, C, 1.0f, g->dyb, C, DPB(g, li->down), F, 0.0f, g->dact, F, ATTN_DTYPE_BF16), "down^T gemm");
    CK(mcuda_gemm(1, 0, C, F, M, 1.0f, g->dyb, C, la->act, F, 1.0f, DG(g, li->down), F, ATTN_DTYPE_F32), "down grad gemm");
    CK(mcuda_swiglu_backward(la->gu, g->dact, g->dgu, M, F, ATTN_DTYPE_BF16), "swiglu backward");
    CK(mcuda_gemm(0, 0, M, C, 2 * F, 1.0f, g->dgu, 2 * F, DPB(g, li->gate), C, 0.0f, g->dhn, C, ATTN_DTYPE_F32),
       "gate/up^T gemm");
    CK(mcuda_gemm(1, 0, 2 * F, C, M, 1.0f, g->dgu, 2 * F, la->hn, C, 1.0f, DG(g, li->gate), C, ATTN_DTYPE_F32),
       "gate/up grad gemm");
    /* dh = rpost dy + RMSNorm'(h) dhn */
    CK(mcuda_rmsnorm_backward(la->h, la->r2, DP(g, li->post_norm), g->dhn, M, C, g->dh, 1, DG(g, li->post_norm)),
       "rmsnorm backward");
    /* h = rin x + o Wo^T: rin's gradient, dx = rin dh and dh in bf16, in one pass */
    CK(mcuda_residual_backward(g->dh, x, DP(g, li->res_in), M, C, dx, g->dyb, DG(g, li->res_in)), "residual");
    CK(mcuda_gemm(0, 0, M, HD, C, 1.0f, g->dyb, C, DPB(g, li->o), HD, 0.0f, g->dout, HD, ATTN_DTYPE_BF16), "o^T gemm");
    CK(mcuda_gemm(1, 0, C, HD, M, 1.0f, g->dyb, C, la->o, HD, 1.0f, DG(g, li->o), HD, ATTN_DTYPE_F32), "o grad gemm");

    /* attention: dq, dk into dqf, dkf; dv straight into dqkv's v columns */
    attn_params p;
    attn_setup(g, l, B, n, &p);
    attn_stride vst = {(int64_t)n * Wq, Wq, m->D};
    p.dout = g->dout;
    p.dq = g->dqf;
    p.dk = g->dkf;
    p.dv = g->dqkv + (size_t)(m->H + K) * m->D;
    p.dv_st = vst;
    if (c->variant == ATTN_DMA) p.dw_dt = g->aux, p.da = g->aux + (size_t)KD * K;
    const int nsa = c->variant == ATTN_NSA;
    size_t ncw = 0, ncp = 0;
    if (nsa) {
        attn_stride cst = {(int64_t)n * KD, KD, m->D};
        p.dv = g->dvc, p.dv_st = cst;
        p.dg = g->dgs;
        if (c->nsa_cmp == NSA_CMP_LINEAR) {
            ncw = (size_t)K * c->nsa_l * m->D * m->D, ncp = (size_t)K * c->nsa_l * m->D;
            p.dw_ck = g->aux, p.dw_cv = g->aux + ncw, p.dp_k = g->aux + 2 * ncw, p.dp_v = g->aux + 2 * ncw + ncp;
        }
    }
    if (p.saved && g->op->saved_bytes(&p) > g->saved_b) p.saved = NULL; /* as its forward did */
    attn_status st = g->op->backward(&p);
    if (st != ATTN_OK) return attn_error(g, &p, st, 1, err, err_len);
    if (nsa) {
        const int H = m->H, D = m->D;
        CK(mgk_copy_cols(g->dvc, KD, 0, g->dqkv, Wq, (H + K) * D, KD, M), "nsa dv copy");
        if (!c->nsa_gates_fixed)
            CK(mgk_sigmoid_bwd_cols(la->gs, g->dgs, g->dqkv, Wq, (H + 2 * K) * D, 3 * H, M), "nsa gate backward");
        if (c->nsa_cmp == NSA_CMP_LINEAR) {
            CK(mgk_add(g->aux, DG(g, li->ck), (long long)ncw), "nsa grads");
            CK(mgk_add(g->aux + ncw, DG(g, li->cv), (long long)ncw), "nsa grads");
            CK(mgk_add(g->aux + 2 * ncw, DG(g, li->pk), (long long)ncp), "nsa grads");
            CK(mgk_add(g->aux + 2 * ncw + ncp, DG(g, li->pv), (long long)ncp), "nsa grads");
        }
    }
    if (c->variant == ATTN_DMA) {
        /* dw_dt (K*D, K) is dt_proj's (K, K*D) gradient transposed */
        CK(mgk_transpose(g->aux, DG(g, li->dt), KD, K, 1), "dt_proj grad");
        CK(mgk_add(g->aux + (size_t)KD * K, DG(g, li->A), K), "A grad");
    }
    mcuda_qk_shape qs = {M, Wq, m->H, K, m->D, n, 0, g->cos, g->sin, g->rope_len, (float)c->rms_norm_eps};
    CK(mcuda_qk_norm_rope_backward(&qs, la->qkv, DP(g, li->q_norm), DP(g, li->k_norm), la->rq, la->rk, g->dqf, g->dkf,
                                   g->dqkv, DG(g, li->q_norm), DG(g, li->k_norm), ATTN_DTYPE_BF16),
       "q/k norm and RoPE backward");
    /* qkv = xn Wqkv^T, then the input norm */
    CK(qkv_gemm_dx(m, M, g->dqkv, DPB(g, li->q), g->dxn), "qkv^T gemm");
    CK(qkv_gemm_dw(m, M, g->dqkv, la->xn, DG(g, li->q)), "qkv grad gemm");
    CK(mcuda_rmsnorm_backward(x, la->r1, DP(g, li->in_norm), g->dxn, M, C, dx, 1, DG(g, li->in_norm)),
       "rmsnorm backward");
    return MODEL_OK;
}

model_status model_gpu_forward_backward(model_gpu *g, const int32_t *ids, const int32_t *labels, int B, int T,
                                        double scale, double *loss, char *err, size_t err_len) {
    model *m = g->m;
    if (loss) *loss = 0;
    model_status st = check_batch(g, ids, labels, B, T, err, err_len);
    if (st != MODEL_OK) return st;
    size_t M = (size_t)B * T;
    int64_t n = 0;
    for (size_t i = 0; i < M; i++) n += labels[i] != MODEL_IGNORE;
    if (n == 0) return MODEL_OK;
    /* dlogits = scale / n (p - onehot); dxf = dlogits Whead; dWhead += dlogits^T xf.
     * With at most half of the rows labelled (MQAR), the final norm, the head and
     * the loss run over those rows alone: x[L]'s labelled rows gathered into
     * dx[1] (free until the layers' backward), their norm into xf and rf (the
     * first n rows), and the norm's backward scattered into dcur (zero elsewhere:
     * an unlabelled row gets no gradient from the loss); the embedding's gather and
     * scatter kernels move the rows. The CPU model's rule and switch
     * (model_head_rows). */
    int32_t *h = NULL;
    const int compact = model_head_rows(labels, M, n, &h);
    if (compact < 0) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for the labelled rows' index");
    phase_begin();
    /* the labels go up with their rows' index below when compact */
    st = stack_forward(g, ids, compact ? NULL : labels, B, T, !compact, err, err_len);
    if (st != MODEL_OK) {
        free(h);
        return st;
    }
    phase_end("forward");
    int64_t cnt = 0;
    double s = 0;
    float *dcur = g->dx[0], *dnext = g->dx[1];
    if (compact) {
        attn_status ast = dm_cuda_h2d(g->crow, h, (size_t)n * sizeof *h);
        if (ast == ATTN_OK) ast = dm_cuda_h2d(g->labels, h + n, (size_t)n * sizeof *h);
        free(h);
        CK(ast, "the labelled rows' upload");
        float *xc = g->dx[1];
        CK(mcuda_embed_forward(g->crow, (int)n, g->x[m->L], (int)M, m->C, xc, NULL), "the labelled rows' gather");
        CK(mcuda_rmsnorm_forward(xc, DP(g, m->fnorm), (int)n, m->C, (float)m->cfg.rms_norm_eps, NULL, g->xf, g->rf),
           "final rmsnorm of the labelled rows");
        CK(mcuda_cross_entropy(g->xf, DPB(g, m->head), ATTN_DTYPE_BF16, g->labels, (int)n, m->C, m->V, 0,
                               scale / (double)n, g->rowloss, g->dxf, DG(g, m->head), &cnt, &s),
           "cross-entropy");
    } else {
        CK(mcuda_cross_entropy(g->xf, DPB(g, m->head), ATTN_DTYPE_BF16, g->labels, (int)M, m->C, m->V, 0,
                               scale / (double)n, g->rowloss, g->dxf, DG(g, m->head), &cnt, &s),
           "cross-entropy");
    }
    if (!isfinite(s)) return model_errf(MODEL_ERR_NONFINITE, err, err_len, "the loss is not finite (the model diverged?)");
    if (loss) *loss = s / (double)n;
    phase_end("loss");
    if (compact) {
        CK(mcuda_rmsnorm_backward(g->dx[1], g->rf, DP(g, m->fnorm), g->dxf, (int)n, m->C, g->dh, 0, DG(g, m->fnorm)),
           "final rmsnorm backward of the labelled rows");
        CK(dm_cuda_memset(dcur, 0, M * m->C * sizeof(float)), "the final norm's gradient");
        CK(mcuda_embed_backward(g->crow, (int)n, g->dh, (int)M, m->C, -1, dcur), "the labelled rows' scatter");
    } else {
        CK(mcuda_rmsnorm_backward(g->x[m->L], g->rf, DP(g, m->fnorm), g->dxf, (int)M, m->C, dcur, 0, DG(g, m->fnorm)),
           "final rmsnorm backward");
    }
    for (int l = m->L - 1; l >= 0; l--) {
        st = layer_backward(g, l, B, T, dcur, dnext, err, err_len);
        if (st != MODEL_OK) return st;
        float *tmp = dcur;
        dcur = dnext, dnext = tmp;
    }
    CK(mcuda_embed_backward(g->ids, (int)M, dcur, m->V, m->C, m->cfg.pad_token_id, DG(g, m->emb)), "embedding backward");
    phase_end("backward");
    return MODEL_OK;
}

#endif
