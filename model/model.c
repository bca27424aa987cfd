/*
 * model.c: the Doge-style model: parameter table (HF names), initialisation,
 * activations, and the forward and backward of every layer in fp32. GEMMs go
 * through mops_gemm (OpenBLAS), attention through the registry's operator.
 * The math of each step is written next to it; docs/model.md has the whole
 * picture.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "rng.h"

static const char *const status_names[] = {"ok",           "invalid argument", "config error",
                                           "I/O error",    "malformed checkpoint", "out of memory",
                                           "attention error", "data error", "non-finite values"};

const char *model_status_str(model_status s) {
    return (unsigned)s <= MODEL_ERR_NONFINITE ? status_names[s] : "unknown status";
}

model_status model_errf(model_status st, char *err, size_t err_len, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

#define TP(m, i) ((m)->p + (m)->t[i].offset) /* parameter data of tensor i */
#define TG(m, i) ((m)->g + (m)->t[i].offset) /* its gradient */

/* ---- parameter table ---- */

/* Each tensor starts on a 64-float (256-byte) boundary, so that the bf16 and fp32
 * copies on the GPU meet cuBLASLt's 16-byte alignment whatever the sizes before
 * it (dma's A has num_key_value_heads floats); the gaps hold zeros. A tensor
 * that continues a fused GEMM's weight (k and v after q, g after v, up after
 * gate) goes right after the one before it instead (decay | ADJ). */
#define ADJ 2
#define TENSOR_ALIGN 64
static int add_tensor(model *m, int cap, int decay, int ndim, int64_t s0, int64_t s1, int64_t s2, const char *fmt,
                      ...) {
    if (m->nt >= cap) return -1;
    if (!(decay & ADJ)) m->np = (m->np + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
    decay &= 1;
    model_tensor *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    t->shape[0] = s0, t->shape[1] = s1, t->shape[2] = s2;
    t->numel = (size_t)s0 * (ndim > 1 ? (size_t)s1 : 1) * (ndim > 2 ? (size_t)s2 : 1);
    t->offset = m->np;
    t->decay = decay;
    m->np += t->numel;
    m->nparams += t->numel;
    return m->nt++;
}

static int build_table(model *m) {
    const model_config *c = &m->cfg;
    int L = m->L, C = m->C, H = m->H, K = m->K, D = m->D, F = m->F, V = m->V;
    int cap = 4 + L * 24;
    m->t = calloc((size_t)cap, sizeof *m->t);
    m->li = calloc((size_t)L, sizeof *m->li);
    if (!m->t || !m->li) return -1;
    m->emb = add_tensor(m, cap, 1, 2, V, C, 0, "model.embed_tokens.weight");
    for (int l = 0; l < L; l++) {
        layer_idx *li = &m->li[l];
        memset(li, -1, sizeof *li);
        const char *pre = "model.layers";
        li->in_norm = add_tensor(m, cap, 0, 1, C, 0, 0, "%s.%d.input_layernorm.weight", pre, l);
        /* q, k, v (and g) adjacent: one fused GEMM */
        li->q = add_tensor(m, cap, 1, 2, (int64_t)H * D, C, 0, "%s.%d.self_attn.q_proj.weight", pre, l);
        li->k = add_tensor(m, cap, 1 | ADJ, 2, (int64_t)K * D, C, 0, "%s.%d.self_attn.k_proj.weight", pre, l);
        li->v = add_tensor(m, cap, 1 | ADJ, 2, (int64_t)K * D, C, 0, "%s.%d.self_attn.v_proj.weight", pre, l);
        if (c->variant == ATTN_NSA && !c->nsa_gates_fixed)
            li->g = add_tensor(m, cap, 1 | ADJ, 2, 3 * (int64_t)H, C, 0, "%s.%d.self_attn.g_proj.weight", pre, l);
        /* the fused weight's m->Wd rows end on a multiple of 8, zero rows after them (a
         * gap: no tensor, the optimizer leaves it alone), so that the GPU's three GEMMs
         * of it run whole at qkv_ld's width (model_gpu.c); nsa's learned gates make it
         * 1554 rows, say */
        m->np += (size_t)((8 - m->Wd % 8) % 8) * (size_t)C;
        li->q_norm = add_tensor(m, cap, 0, 1, D, 0, 0, "%s.%d.self_attn.q_norm.weight", pre, l);
        li->k_norm = add_tensor(m, cap, 0, 1, D, 0, 0, "%s.%d.self_attn.k_norm.weight", pre, l);
        if (c->variant == ATTN_DMA) {
            li->dt = add_tensor(m, cap, 1, 2, K, (int64_t)K * D, 0, "%s.%d.self_attn.dt_proj.weight", pre, l);
            li->A = add_tensor(m, cap, 0, 1, K, 0, 0, "%s.%d.self_attn.A", pre, l);
        }
        li->o = add_tensor(m, cap, 1, 2, C, (int64_t)H * D, 0, "%s.%d.self_attn.o_proj.weight", pre, l);
        if (c->variant == ATTN_NSA && c->nsa_cmp == NSA_CMP_LINEAR) {
            int64_t lD = (int64_t)c->nsa_l * D;
            li->ck = add_tensor(m, cap, 1, 3, K, lD, D, "%s.%d.self_attn.k_compress.weight", pre, l);
            li->cv = add_tensor(m, cap, 1, 3, K, lD, D, "%s.%d.self_attn.v_compress.weight", pre, l);
            li->pk = add_tensor(m, cap, 0, 3, K, c->nsa_l, D, "%s.%d.self_attn.k_compress.pos", pre, l);
            li->pv = add_tensor(m, cap, 0, 3, K, c->nsa_l, D, "%s.%d.self_attn.v_compress.pos", pre, l);
        }
        li->res_in = add_tensor(m, cap, 0, 1, C, 0, 0, "%s.%d.input_residual", pre, l);
        li->post_norm = add_tensor(m, cap, 0, 1, C, 0, 0, "%s.%d.post_attention_layernorm.weight", pre, l);
        li->res_post = add_tensor(m, cap, 0, 1, C, 0, 0, "%s.%d.post_attention_residual", pre, l);
        /* gate and up adjacent: one fused GEMM */
        li->gate = add_tensor(m, cap, 1, 2, F, C, 0, "%s.%d.mlp.gate_proj.weight", pre, l);
        li->up = add_tensor(m, cap, 1 | ADJ, 2, F, C, 0, "%s.%d.mlp.up_proj.weight", pre, l);
        li->down = add_tensor(m, cap, 1, 2, C, F, 0, "%s.%d.mlp.down_proj.weight", pre, l);
        if (li->in_norm < 0 || li->down < 0) return -1;
    }
    m->fnorm = add_tensor(m, cap, 0, 1, C, 0, 0, "model.norm.weight");
    m->head = c->tie_word_embeddings ? m->emb : add_tensor(m, cap, 1, 2, V, C, 0, "lm_head.weight");
    return m->fnorm < 0 || m->head < 0 ? -1 : 0;
}

void model_init_params(model *m, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed ^ 0x5EEDC0DE1234ull);
    double std = m->cfg.initializer_range;
    for (int i = 0; i < m->nt; i++) {
        model_tensor *t = &m->t[i];
        float *p = m->p + t->offset;
        const char *nm = t->name;
        size_t len = strlen(nm);
#define ENDS(s) (len >= strlen(s) && !strcmp(nm + len - strlen(s), s))
        if (ENDS("norm.weight") || ENDS("_residual") || ENDS("layernorm.weight")) {
            for (size_t e = 0; e < t->numel; e++) p[e] = 1.0f;
        } else if (ENDS(".A") || ENDS("_compress.pos")) {
            memset(p, 0, t->numel * sizeof(float));
        } else if (ENDS("_compress.weight")) {
            /* the block mean: w[h, t*D + d, e] = (d == e) / l, so compression starts as mean pooling */
            int64_t lD = t->shape[1], D = t->shape[2], l = lD / D;
            memset(p, 0, t->numel * sizeof(float));
            for (int64_t h = 0; h < t->shape[0]; h++)
                for (int64_t tt = 0; tt < l; tt++)
                    for (int64_t d = 0; d < D; d++) p[(h * lD + tt * D + d) * D + d] = (float)(1.0 / (double)l);
        } else {
            for (size_t e = 0; e < t->numel; e++) p[e] = (float)(std * rng_normal(&r));
        }
#undef ENDS
    }
    /* HF's nn.Embedding(padding_idx=pad_token_id) starts the pad row at zero */
    int pad = m->cfg.pad_token_id;
    if (pad >= 0 && pad < m->V) memset(TP(m, m->emb) + (size_t)pad * m->C, 0, (size_t)m->C * sizeof(float));
}

void model_set_threads(int n) {
    /* OpenBLAS always single-threaded: mops_gemm splits the GEMMs over OpenMP */
    openblas_set_num_threads(1);
    if (n > 0) omp_set_num_threads(n);
}

model_status model_create(const model_config *cfg, model **out, char *err, size_t err_len) {
    *out = NULL;
    char why[256];
    if (model_config_check(cfg, why, sizeof why)) return model_errf(MODEL_ERR_CONFIG, err, err_len, "%s", why);
    model *m = calloc(1, sizeof *m);
    if (!m) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    m->cfg = *cfg;
    m->L = cfg->num_hidden_layers, m->C = cfg->hidden_size, m->H = cfg->num_attention_heads;
    m->K = cfg->num_key_value_heads, m->D = cfg->head_dim, m->F = cfg->intermediate_size, m->V = cfg->vocab_size;
    m->HD = m->H * m->D, m->KD = m->K * m->D;
    m->Wd = (m->H + 2 * m->K) * m->D + (cfg->variant == ATTN_NSA && !cfg->nsa_gates_fixed ? 3 * m->H : 0);
    openblas_set_num_threads(1); /* mops_gemm threads the GEMMs itself */
    m->op = attn_registry_find(cfg->variant, cfg->backend);
    if (!m->op) {
        model_free(m);
        return model_errf(MODEL_ERR_ATTN, err, err_len, "no %s backend of %s is built in", attn_backend_name(cfg->backend),
                     attn_variant_name(cfg->variant));
    }
    if (build_table(m)) {
        model_free(m);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    }
    m->p = attn_calloc(m->np, sizeof(float));
    m->g = attn_calloc(m->np, sizeof(float));
    if (cfg->variant == ATTN_DMA) m->wdt_t = attn_alloc((size_t)m->L * m->KD * m->K * sizeof(float));
    if (!m->p || !m->g || (cfg->variant == ATTN_DMA && !m->wdt_t)) {
        model_free(m);
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for %zu parameters", m->np);
    }
    model_init_params(m, cfg->train.seed);
    *out = m;
    return MODEL_OK;
}

void model_free(model *m) {
    if (!m) return;
    model_acts_free(&m->acts);
    attn_free(m->p);
    attn_free(m->g);
    attn_free(m->wdt_t);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->t);
    free(m->li);
    free(m);
}

const model_config *model_get_config(const model *m) { return &m->cfg; }
void model_set_train_config(model *m, const model_train_config *t) { m->cfg.train = *t; }
int model_num_tensors(const model *m) { return m->nt; }
const model_tensor *model_tensor_at(const model *m, int i) { return i >= 0 && i < m->nt ? &m->t[i] : NULL; }
const model_tensor *model_find_tensor(const model *m, const char *name) {
    for (int i = 0; i < m->nt; i++)
        if (!strcmp(m->t[i].name, name)) return &m->t[i];
    return NULL;
}
float *model_params(model *m) { return m->p; }
float *model_grads(model *m) { return m->g; }
size_t model_num_params(const model *m) { return m->nparams; }
size_t model_params_len(const model *m) { return m->np; }
void model_zero_grads(model *m) { memset(m->g, 0, m->np * sizeof(float)); }
void model_get_timers(const model *m, model_timers *t) { *t = m->tm; }
void model_reset_timers(model *m) { memset(&m->tm, 0, sizeof m->tm); }

/* ---- RoPE table: HF's default rope in fp32 (inv_freq = 1 / theta^(2j/D), angle = pos * inv_freq) ---- */

model_status model_rope_ensure(model *m, int len) {
    if (len <= m->rope_len) return MODEL_OK;
    int n = m->rope_len ? m->rope_len : 1;
    while (n < len) n *= 2;
    if (n < m->cfg.max_position_embeddings) n = m->cfg.max_position_embeddings;
    int h = m->D / 2;
    float *c = malloc((size_t)n * h * sizeof(float)), *s = malloc((size_t)n * h * sizeof(float));
    if (!c || !s) {
        free(c), free(s);
        return MODEL_ERR_OOM;
    }
    for (int j = 0; j < h; j++) {
        float e = (float)(2 * j) / (float)m->D;
        float inv = 1.0f / (float)pow(m->cfg.rope_theta, (double)e);
        for (int p = 0; p < n; p++) {
            float ang = inv * (float)p;
            c[(size_t)p * h + j] = (float)cos((double)ang);
            s[(size_t)p * h + j] = (float)sin((double)ang);
        }
    }
    free(m->rope_cos), free(m->rope_sin);
    m->rope_cos = c, m->rope_sin = s, m->rope_len = n;
    return MODEL_OK;
}

/* ---- activations ---- */

void model_acts_free(model_acts *a) {
    attn_free(a->block);
    free(a->x);
    free(a->la);
    memset(a, 0, sizeof *a);
}

/* Carves every buffer out of one block: pass 1 (base NULL) measures, pass 2 assigns. */
typedef struct {
    char *base;
    size_t off;
} carver;

static void *take(carver *cv, size_t bytes) {
    size_t o = cv->off;
    cv->off += (bytes + 63) / 64 * 64;
    return cv->base ? cv->base + o : NULL;
}
#define TAKEF(cv, n) ((float *)take(cv, (size_t)(n) * sizeof(float)))

static void carve_acts(model *m, model_acts *a, carver *cv, size_t M, int B, int n) {
    int C = m->C, H = m->H, K = m->K, F = m->F, V = m->V, Wd = m->Wd, nsa = m->cfg.variant == ATTN_NSA;
    int nx = a->train ? m->L + 1 : 2;
    (void)n;
    for (int i = 0; i < nx; i++) a->x[i] = TAKEF(cv, M * C);
    for (int l = 0; l < a->nla; l++) {
        layer_acts *la = &a->la[l];
        la->xn = TAKEF(cv, M * C);
        la->r1 = TAKEF(cv, M);
        la->qkv = TAKEF(cv, M * Wd);
        la->qf = TAKEF(cv, M * m->HD);
        la->kf = TAKEF(cv, M * m->KD);
        la->rq = TAKEF(cv, M * H);
        la->rk = TAKEF(cv, M * K);
        la->o = TAKEF(cv, M * m->HD);
        la->lse = TAKEF(cv, M * H * (nsa ? 3 : 1));
        la->gs = nsa ? TAKEF(cv, M * 3 * H) : NULL;
        la->h = TAKEF(cv, M * C);
        la->hn = TAKEF(cv, M * C);
        la->r2 = TAKEF(cv, M);
        la->gu = TAKEF(cv, M * 2 * F);
        la->act = TAKEF(cv, M * F);
    }
    a->xf = TAKEF(cv, M * C);
    a->rf = TAKEF(cv, M);
    a->logits = TAKEF(cv, M * V);
    a->rowloss = (double *)take(cv, M * sizeof(double));
    size_t pw = (size_t)C;
    if ((size_t)2 * m->D > pw) pw = 2 * (size_t)m->D;
    a->part = (double *)take(cv, (size_t)MODEL_NCHUNK * pw * sizeof(double));
    if (!a->train) return;
    a->dx[0] = TAKEF(cv, M * C);
    a->dx[1] = TAKEF(cv, M * C);
    a->dh = TAKEF(cv, M * C);
    a->dhn = TAKEF(cv, M * C);
    a->dxn = TAKEF(cv, M * C);
    a->dqkv = TAKEF(cv, M * Wd);
    a->dqf = TAKEF(cv, M * m->HD);
    a->dkf = TAKEF(cv, M * m->KD);
    a->dout = TAKEF(cv, M * m->HD);
    a->dgu = TAKEF(cv, M * 2 * F);
    a->dact = TAKEF(cv, M * F);
    a->dgs = nsa ? TAKEF(cv, M * 3 * H) : NULL;
    a->dlogits = TAKEF(cv, M * V);
    size_t aux = (size_t)m->KD * K + K;
    if (nsa && m->cfg.nsa_cmp == NSA_CMP_LINEAR) aux = 2 * (size_t)K * m->cfg.nsa_l * m->D * (m->D + 1);
    a->aux = TAKEF(cv, aux);
    (void)B;
}

model_status model_acts_ensure(model *m, model_acts *a, int B, int n, int train) {
    size_t M = (size_t)B * n;
    if (a->block && M <= a->M && (a->train || !train)) {
        a->B = B, a->n = n;
        return MODEL_OK;
    }
    model_acts_free(a);
    a->train = train;
    a->nla = train ? m->L : 1;
    a->x = calloc((size_t)(train ? m->L + 1 : 2), sizeof(float *));
    a->la = calloc((size_t)a->nla, sizeof(layer_acts));
    if (!a->x || !a->la) {
        model_acts_free(a);
        return MODEL_ERR_OOM;
    }
    carver cv = {NULL, 0};
    carve_acts(m, a, &cv, M, B, n);
    a->block = attn_alloc(cv.off);
    if (!a->block) {
        model_acts_free(a);
        return MODEL_ERR_OOM;
    }
    cv.base = a->block;
    cv.off = 0;
    carve_acts(m, a, &cv, M, B, n);
    a->B = B, a->n = n, a->M = M;
    return MODEL_OK;
}

/* ---- attention parameters ---- */

void model_attn_settings(const model_config *c, attn_params *p) {
    p->w = c->variant == ATTN_MHA ? 1 : model_config_attn_w(c);
    p->dma_mode = c->dma_mode;
    p->nsa_cmp = c->nsa_cmp;
    p->nsa_l = c->nsa_l, p->nsa_d = c->nsa_d, p->nsa_ls = c->nsa_ls, p->nsa_n = c->nsa_n;
}

/* The operator's params for layer l over queries (B, n) and keys (B, Nk) at k/v. */
static void attn_setup(model *m, int l, layer_acts *la, int B, int n, int Nk, attn_params *p) {
    const model_config *c = &m->cfg;
    const layer_idx *li = &m->li[l];
    attn_params_init(p, B, n, Nk, m->H, m->K, m->D, ATTN_DTYPE_F32, 1);
    model_attn_settings(c, p);
    p->q = la->qf;
    p->o = la->o;
    p->lse = la->lse;
    if (c->variant == ATTN_NSA) {
        p->g = la->gs;
        if (c->nsa_cmp == NSA_CMP_LINEAR) {
            p->w_ck = TP(m, li->ck), p->w_cv = TP(m, li->cv);
            p->p_k = TP(m, li->pk), p->p_v = TP(m, li->pv);
        }
    }
}

static model_status attn_fail(model *m, const attn_params *p, attn_status st, int backward, char *err,
                              size_t err_len) {
    char why[256] = "";
    if (!m->op->supports(p, backward, why, sizeof why) && why[0])
        return model_errf(MODEL_ERR_ATTN, err, err_len, "%s %s %s: %s", attn_variant_name(m->op->variant),
                     attn_backend_name(m->op->backend), backward ? "backward" : "forward", why);
    if (st == ATTN_ERR_NONFINITE)
        return model_errf(MODEL_ERR_NONFINITE, err, err_len, "NaN or Inf reached the attention (the model diverged?)");
    if (st == ATTN_ERR_OOM) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory in the attention operator");
    return model_errf(MODEL_ERR_ATTN, err, err_len, "%s %s %s failed: %s", attn_variant_name(m->op->variant),
                 attn_backend_name(m->op->backend), backward ? "backward" : "forward", attn_status_str(st));
}

/* dt_proj (K, K*D) -> w_dt (K*D, K), as the operator wants it. */
static void refresh_wdt(model *m) {
    if (m->cfg.variant != ATTN_DMA) return;
    int K = m->K, KD = m->KD;
    for (int l = 0; l < m->L; l++) {
        const float *w = TP(m, m->li[l].dt);
        float *wt = m->wdt_t + (size_t)l * KD * K;
        for (int h = 0; h < K; h++)
            for (int c = 0; c < KD; c++) wt[(size_t)c * K + h] = w[(size_t)h * KD + c];
    }
}

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- one layer forward ---- */

static model_status layer_forward(model *m, int l, layer_acts *la, const float *x, float *y, int B, int n, int pos0,
                                  struct model_cache *cache, char *err, size_t err_len) {
    const model_config *c = &m->cfg;
    const layer_idx *li = &m->li[l];
    size_t M = (size_t)B * n;
    int C = m->C, H = m->H, K = m->K, D = m->D, F = m->F, Wd = m->Wd, HD = m->HD, KD = m->KD, hD = D / 2;
    int nsa = c->variant == ATTN_NSA;
    float eps = (float)c->rms_norm_eps;

    /* xn = RMSNorm(x); qkv = xn [Wq; Wk; Wv; Wg]^T */
    mops_rmsnorm_fwd(x, TP(m, li->in_norm), M, C, c->rms_norm_eps, la->xn, la->r1);
    mops_gemm(m, 0, 1, (int)M, Wd, C, 1.0f, la->xn, C, TP(m, li->q), C, 0.0f, la->qkv, Wd);

    /* per head: q_norm / k_norm (RMSNorm over D), then RoPE at position pos0 + t; nsa gates */
    const float *qnw = TP(m, li->q_norm), *knw = TP(m, li->k_norm);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++) {
        int pos = pos0 + (int)(i % (size_t)n);
        const float *cs = m->rope_cos + (size_t)pos * hD, *sn = m->rope_sin + (size_t)pos * hD;
        const float *row = la->qkv + i * Wd;
        for (int hh = 0; hh < H + K; hh++) {
            int isq = hh < H;
            const float *src = row + (size_t)hh * D;
            float *dst = isq ? la->qf + (i * H + hh) * D : la->kf + (i * K + (hh - H)) * D;
            const float *w = isq ? qnw : knw;
            float ss = 0;
            for (int d = 0; d < D; d++) ss += src[d] * src[d];
            float r = 1.0f / sqrtf(ss / D + eps);
            if (isq) la->rq[i * H + hh] = r;
            else la->rk[i * K + hh - H] = r;
            for (int d = 0; d < D; d++) dst[d] = w[d] * (src[d] * r);
            mops_rope(dst, D, cs, sn);
        }
        if (nsa && c->nsa_gates_fixed)
            for (int j = 0; j < 3 * H; j++) la->gs[i * 3 * H + j] = c->nsa_gates[j % 3];
        else if (nsa)
            for (int j = 0; j < 3 * H; j++) la->gs[i * 3 * H + j] = sigmoidf_(row[(size_t)(H + 2 * K) * D + j]);
    }

    /* attention */
    attn_params p;
    int Nk = cache ? pos0 + n : n;
    attn_setup(m, l, la, B, n, Nk, &p);
    const float *vsrc = la->qkv + (size_t)(H + K) * D;
    attn_stride vst = {(int64_t)n * Wd, Wd, D};
    if (!cache) {
        p.k = la->kf;
        p.v = vsrc;
        p.v_st = vst;
        if (c->variant == ATTN_DMA) p.w_dt = m->wdt_t + (size_t)l * KD * K, p.a = TP(m, li->A);
    } else {
        int ml = cache->max_len;
        size_t lay = (size_t)l * B * ml * KD;
        float *kc = cache->k + lay, *vc = cache->v + lay;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < M; i++) {
            int b = (int)(i / (size_t)n), t = (int)(i % (size_t)n);
            size_t dst = ((size_t)b * ml + pos0 + t) * KD;
            memcpy(kc + dst, la->kf + i * KD, (size_t)KD * sizeof(float));
            memcpy(vc + dst, vsrc + i * Wd, (size_t)KD * sizeof(float));
        }
        attn_stride cst = {(int64_t)ml * KD, KD, D};
        p.k = kc, p.k_st = cst;
        p.v = vc, p.v_st = cst;
        if (c->variant == ATTN_DMA) {
            /* z of the new keys: the operator computes it from v (one query row, Nk = n), so
             * the cached scores are bit-identical to what a full forward uses */
            attn_params pz;
            attn_setup(m, l, la, B, 1, n, &pz);
            attn_stride qst = {(int64_t)n * HD, HD, D};
            pz.q_st = qst;
            pz.k = la->kf;
            pz.v = vsrc;
            pz.v_st = vst;
            pz.w_dt = m->wdt_t + (size_t)l * KD * K, pz.a = TP(m, li->A);
            pz.z_out = cache->znew;
            double t0 = omp_get_wtime();
            attn_status st = m->op->forward(&pz);
            m->tm.attn_fwd_s += omp_get_wtime() - t0;
            if (st != ATTN_OK) return attn_fail(m, &pz, st, 0, err, err_len);
            float *zl = cache->z + (size_t)l * B * K * ml;
            for (int b = 0; b < B; b++)
                for (int g = 0; g < K; g++) {
                    memcpy(zl + ((size_t)b * K + g) * ml + pos0, cache->znew + ((size_t)b * K + g) * n,
                           (size_t)n * sizeof(float));
                    memcpy(cache->zc + ((size_t)b * K + g) * Nk, zl + ((size_t)b * K + g) * ml,
                           (size_t)Nk * sizeof(float));
                }
            p.z = cache->zc;
        }
    }
    double t0 = omp_get_wtime();
    attn_status st = m->op->forward(&p);
    m->tm.attn_fwd_s += omp_get_wtime() - t0;
    if (st != ATTN_OK) return attn_fail(m, &p, st, 0, err, err_len);

    /* h = input_residual * x + o Wo^T */
    const float *rin = TP(m, li->res_in), *rpost = TP(m, li->res_post);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++)
        for (int j = 0; j < C; j++) la->h[i * C + j] = rin[j] * x[i * C + j];
    mops_gemm(m, 0, 1, (int)M, C, HD, 1.0f, la->o, HD, TP(m, li->o), HD, 1.0f, la->h, C);

    /* MLP: hn = RMSNorm(h); gu = hn [Wgate; Wup]^T; act = silu(gate) * up;
     * y = post_attention_residual * h + act Wdown^T */
    mops_rmsnorm_fwd(la->h, TP(m, li->post_norm), M, C, c->rms_norm_eps, la->hn, la->r2);
    mops_gemm(m, 0, 1, (int)M, 2 * F, C, 1.0f, la->hn, C, TP(m, li->gate), C, 0.0f, la->gu, 2 * F);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++) {
        const float *g = la->gu + i * 2 * F, *u = g + F;
        float *a = la->act + i * F;
        for (int j = 0; j < F; j++) a[j] = g[j] * sigmoidf_(g[j]) * u[j];
        for (int j = 0; j < C; j++) y[i * C + j] = rpost[j] * la->h[i * C + j];
    }
    mops_gemm(m, 0, 1, (int)M, C, F, 1.0f, la->act, F, TP(m, li->down), F, 1.0f, y, C);
    return MODEL_OK;
}

model_status model_stack_forward(model *m, model_acts *a, const int32_t *ids, int B, int n, int pos0,
                                 struct model_cache *cache, char *err, size_t err_len) {
    size_t M = (size_t)B * n;
    int C = m->C;
    if (model_rope_ensure(m, pos0 + n) != MODEL_OK) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    refresh_wdt(m);
    const float *E = TP(m, m->emb);
    float *x0 = a->x[0];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++) memcpy(x0 + i * C, E + (size_t)ids[i] * C, (size_t)C * sizeof(float));
    for (int l = 0; l < m->L; l++) {
        layer_acts *la = a->train ? &a->la[l] : &a->la[0];
        float *x = a->train ? a->x[l] : a->x[l & 1], *y = a->train ? a->x[l + 1] : a->x[(l + 1) & 1];
        model_status st = layer_forward(m, l, la, x, y, B, n, pos0, cache, err, err_len);
        if (st != MODEL_OK) return st;
    }
    const float *xl = a->train ? a->x[m->L] : a->x[m->L & 1];
    mops_rmsnorm_fwd(xl, TP(m, m->fnorm), M, C, m->cfg.rms_norm_eps, a->xf, a->rf);
    return MODEL_OK;
}

int model_head_rows(const int32_t *labels, size_t M, int64_t n, int32_t **rows) {
    *rows = NULL;
    const char *all_rows = getenv("DMABENCH_HEAD_ALL_ROWS"); /* "1": every row, as before (for comparisons) */
    if ((all_rows && !strcmp(all_rows, "1")) || (size_t)n * 2 > M) return 0;
    int32_t *r = malloc((size_t)n * 2 * sizeof *r);
    if (!r) return -1;
    size_t k = 0;
    for (size_t i = 0; i < M; i++)
        if (labels[i] != MODEL_IGNORE) r[k] = (int32_t)i, r[n + k] = labels[i], k++;
    *rows = r;
    return 1;
}

void model_lm_head(model *m, const float *xf, size_t rows, float *logits) {
    mops_gemm(m, 0, 1, (int)rows, m->V, m->C, 1.0f, xf, m->C, TP(m, m->head), m->C, 0.0f, logits, m->V);
}

/* ---- one layer backward: dy (M, C) in, dx (M, C) out; parameter gradients added ---- */

static model_status layer_backward(model *m, int l, model_acts *a, int B, int n, const float *dy, float *dx,
                                   char *err, size_t err_len) {
    const model_config *c = &m->cfg;
    const layer_idx *li = &m->li[l];
    layer_acts *la = &a->la[l];
    const float *x = a->x[l];
    size_t M = (size_t)B * n;
    int C = m->C, H = m->H, K = m->K, D = m->D, F = m->F, Wd = m->Wd, HD = m->HD, KD = m->KD, hD = D / 2;
    int nsa = c->variant == ATTN_NSA;
    
    /* y = rpost * h + act Wdown^T */
    mops_colsum_prod(dy, la->h, M, C, TG(m, li->res_post), a->part);
    mops_gemm(m, 0, 0, (int)M, F, C, 1.0f, dy, C, TP(m, li->down), F, 0.0f, a->dact, F);
    mops_gemm(m, 1, 0, C, F, (int)M, 1.0f, dy, C, la->act, F, 1.0f, TG(m, li->down), F);
    /* act = silu(g) u: du = dact silu(g); dg = dact u s (1 + g (1 - s)) */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++) {
        const float *g = la->gu + i * 2 * F, *u = g + F, *da = a->dact + i * F;
        float *dg = a->dgu + i * 2 * F, *du = dg + F;
        for (int j = 0; j < F; j++) {
            float s = sigmoidf_(g[j]);
            du[j] = da[j] * g[j] * s;
            dg[j] = da[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
        }
    }
    mops_gemm(m, 0, 0, (int)M, C, 2 * F, 1.0f, a->dgu, 2 * F, TP(m, li->gate), C, 0.0f, a->dhn, C);
    mops_gemm(m, 1, 0, 2 * F, C, (int)M, 1.0f, a->dgu, 2 * F, la->hn, C, 1.0f, TG(m, li->gate), C);
    /* dh = rpost dy + RMSNorm'(h) dhn */
    const float *rpost = TP(m, li->res_post), *rin = TP(m, li->res_in);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++)
        for (int j = 0; j < C; j++) a->dh[i * C + j] = rpost[j] * dy[i * C + j];
    mops_rmsnorm_bwd(la->h, la->r2, TP(m, li->post_norm), a->dhn, M, C, a->dh, 1, TG(m, li->post_norm), a->part);

    /* h = rin * x + o Wo^T */
    mops_colsum_prod(a->dh, x, M, C, TG(m, li->res_in), a->part);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < M; i++)
        for (int j = 0; j < C; j++) dx[i * C + j] = rin[j] * a->dh[i * C + j];
    mops_gemm(m, 0, 0, (int)M, HD, C, 1.0f, a->dh, C, TP(m, li->o), HD, 0.0f, a->dout, HD);
    mops_gemm(m, 1, 0, C, HD, (int)M, 1.0f, a->dh, C, la->o, HD, 1.0f, TG(m, li->o), HD);

    /* attention backward: dq, dk into dqf, dkf; dv straight into dqkv's v columns */
    attn_params p;
    attn_setup(m, l, la, B, n, n, &p);
    attn_stride vst = {(int64_t)n * Wd, Wd, D};
    p.k = la->kf;
    p.v = la->qkv + (size_t)(H + K) * D;
    p.v_st = vst;
    p.dout = a->dout;
    p.dq = a->dqf;
    p.dk = a->dkf;
    p.dv = a->dqkv + (size_t)(H + K) * D;
    p.dv_st = vst;
    float *aux = a->aux;
    if (c->variant == ATTN_DMA) {
        p.w_dt = m->wdt_t + (size_t)l * KD * K, p.a = TP(m, li->A);
        p.dw_dt = aux, p.da = aux + (size_t)KD * K;
    }
    size_t ncw = 0, ncp = 0;
    if (nsa) {
        p.dg = a->dgs;
        if (c->nsa_cmp == NSA_CMP_LINEAR) {
            ncw = (size_t)K * c->nsa_l * D * D, ncp = (size_t)K * c->nsa_l * D;
            p.dw_ck = aux, p.dw_cv = aux + ncw, p.dp_k = aux + 2 * ncw, p.dp_v = aux + 2 * ncw + ncp;
        }
    }
    double t0 = omp_get_wtime();
    attn_status st = m->op->backward(&p);
    m->tm.attn_bwd_s += omp_get_wtime() - t0;
    if (st != ATTN_OK) return attn_fail(m, &p, st, 1, err, err_len);
    if (c->variant == ATTN_DMA) {
        float *gdt = TG(m, li->dt), *gA = TG(m, li->A);
        for (int h = 0; h < K; h++) {
            for (int cc = 0; cc < KD; cc++) gdt[(size_t)h * KD + cc] += aux[(size_t)cc * K + h];
            gA[h] += aux[(size_t)KD * K + h];
        }
    }
    if (nsa && c->nsa_cmp == NSA_CMP_LINEAR) {
        float *g1 = TG(m, li->ck), *g2 = TG(m, li->cv), *g3 = TG(m, li->pk), *g4 = TG(m, li->pv);
        for (size_t e = 0; e < ncw; e++) g1[e] += aux[e], g2[e] += aux[ncw + e];
        for (size_t e = 0; e < ncp; e++) g3[e] += aux[2 * ncw + e], g4[e] += aux[2 * ncw + ncp + e];
    }

    /* RoPE^T, then the per-head RMSNorm backward into dqkv's q and k columns; nsa gates */
    const float *qnw = TP(m, li->q_norm), *knw = TP(m, li->k_norm);
    double *part = a->part;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < MODEL_NCHUNK; ch++) {
        double *pq = part + (size_t)ch * 2 * D, *pk = pq + D;
        memset(pq, 0, (size_t)2 * D * sizeof(double));
        size_t lo = M * (size_t)ch / MODEL_NCHUNK, hi = M * (size_t)(ch + 1) / MODEL_NCHUNK;
        float tmp[ATTN_MAX_D];
        for (size_t i = lo; i < hi; i++) {
            int pos = (int)(i % (size_t)n);
            const float *cs = m->rope_cos + (size_t)pos * hD, *sn = m->rope_sin + (size_t)pos * hD;
            for (int hh = 0; hh < H + K; hh++) {
                int isq = hh < H;
                const float *src = la->qkv + i * Wd + (size_t)hh * D;
                const float *gsrc = isq ? a->dqf + (i * H + hh) * D : a->dkf + (i * K + hh - H) * D;
                const float *w = isq ? qnw : knw;
                float r = isq ? la->rq[i * H + hh] : la->rk[i * K + hh - H];
                double *pw = isq ? pq : pk;
                memcpy(tmp, gsrc, (size_t)D * sizeof(float));
                mops_rope_bwd(tmp, D, cs, sn);
                float s = 0;
                for (int d = 0; d < D; d++) {
                    float xh = src[d] * r;
                    pw[d] += (double)(tmp[d] * xh);
                    s += tmp[d] * w[d] * xh;
                }
                s /= D;
                float *dst = a->dqkv + i * Wd + (size_t)hh * D;
                for (int d = 0; d < D; d++) dst[d] = r * (tmp[d] * w[d] - src[d] * r * s);
            }
            if (nsa && !c->nsa_gates_fixed)
                for (int j = 0; j < 3 * H; j++) {
                    float sg = la->gs[i * 3 * H + j];
                    a->dqkv[i * Wd + (size_t)(H + 2 * K) * D + j] = a->dgs[i * 3 * H + j] * sg * (1.0f - sg);
                }
        }
    }
    float *gq = TG(m, li->q_norm), *gk = TG(m, li->k_norm);
    for (int d = 0; d < D; d++) {
        double sq = 0, sk = 0;
        for (int ch = 0; ch < MODEL_NCHUNK; ch++) sq += part[(size_t)ch * 2 * D + d], sk += part[(size_t)ch * 2 * D + D + d];
        gq[d] += (float)sq, gk[d] += (float)sk;
    }

    /* qkv = xn Wqkv^T: dxn = dqkv Wqkv; dWqkv += dqkv^T xn; then the input norm */
    mops_gemm(m, 0, 0, (int)M, C, Wd, 1.0f, a->dqkv, Wd, TP(m, li->q), C, 0.0f, a->dxn, C);
    mops_gemm(m, 1, 0, Wd, C, (int)M, 1.0f, a->dqkv, Wd, la->xn, C, 1.0f, TG(m, li->q), C);
    mops_rmsnorm_bwd(x, la->r1, TP(m, li->in_norm), a->dxn, M, C, dx, 1, TG(m, li->in_norm), a->part);
    return MODEL_OK;
}

/* ---- public forward / backward ---- */

static model_status check_ids(const model *m, const int32_t *ids, const int32_t *labels, size_t M, char *err,
                              size_t err_len) {
    for (size_t i = 0; i < M; i++) {
        if (ids[i] < 0 || ids[i] >= m->V)
            return model_errf(MODEL_ERR_ARG, err, err_len, "token id %d at position %zu is outside the vocabulary (0..%d)",
                         ids[i], i, m->V - 1);
        if (labels && labels[i] != MODEL_IGNORE && (labels[i] < 0 || labels[i] >= m->V))
            return model_errf(MODEL_ERR_ARG, err, err_len, "label %d at position %zu is neither a token id (0..%d) nor %d",
                         labels[i], i, m->V - 1, MODEL_IGNORE);
    }
    return MODEL_OK;
}

static model_status check_shape(const model *m, int B, int T, char *err, size_t err_len) {
    if (B < 1 || T < 1) return model_errf(MODEL_ERR_ARG, err, err_len, "batch and length must be >= 1 (got %d, %d)", B, T);
    if ((double)B * T * (m->Wd > m->V ? m->Wd : m->V) > 4e9)
        return model_errf(MODEL_ERR_ARG, err, err_len, "batch %d x length %d is too large", B, T);
    return MODEL_OK;
}

/* The forward for scoring: activations sized (B, T) in inference mode, unless
 * the training activations already fit. */
static model_status score_forward(model *m, const int32_t *ids, int B, int T, char *err, size_t err_len) {
    model_status st = check_shape(m, B, T, err, err_len);
    if (st == MODEL_OK) st = check_ids(m, ids, NULL, (size_t)B * T, err, err_len);
    if (st != MODEL_OK) return st;
    if (model_acts_ensure(m, &m->acts, B, T, m->acts.train) != MODEL_OK)
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for the activations of %d x %d tokens", B, T);
    st = model_stack_forward(m, &m->acts, ids, B, T, 0, NULL, err, err_len);
    if (st == MODEL_OK) model_lm_head(m, m->acts.xf, (size_t)B * T, m->acts.logits);
    return st;
}

model_status model_logits(model *m, const int32_t *ids, int B, int T, float *logits, char *err, size_t err_len) {
    double t0 = omp_get_wtime();
    model_status st = score_forward(m, ids, B, T, err, err_len);
    if (st == MODEL_OK) memcpy(logits, m->acts.logits, (size_t)B * T * m->V * sizeof(float));
    m->tm.total_s += omp_get_wtime() - t0;
    return st;
}

model_status model_token_losses(model *m, const int32_t *ids, const int32_t *labels, int B, int T, float *losses,
                                double *mean, int64_t *count, float *logits, char *err, size_t err_len) {
    double t0 = omp_get_wtime();
    size_t M = (size_t)B * T;
    model_status st = check_shape(m, B, T, err, err_len);
    if (st == MODEL_OK) st = check_ids(m, ids, labels, M, err, err_len);
    if (st == MODEL_OK) st = score_forward(m, ids, B, T, err, err_len);
    if (st != MODEL_OK) return st;
    int64_t n = mops_cross_entropy(m->acts.logits, labels, M, m->V, m->acts.rowloss, NULL, 0);
    double s = 0;
    for (size_t i = 0; i < M; i++) {
        s += m->acts.rowloss[i];
        if (losses) losses[i] = (float)m->acts.rowloss[i];
    }
    if (mean) *mean = n ? s / (double)n : 0.0;
    if (count) *count = n;
    if (logits) memcpy(logits, m->acts.logits, M * m->V * sizeof(float));
    m->tm.total_s += omp_get_wtime() - t0;
    return isfinite(s) ? MODEL_OK : model_errf(MODEL_ERR_NONFINITE, err, err_len, "the loss is not finite");
}

model_status model_forward_backward(model *m, const int32_t *ids, const int32_t *labels, int B, int T, double scale,
                                    double *loss, char *err, size_t err_len) {
    double t0 = omp_get_wtime();
    size_t M = (size_t)B * T;
    int C = m->C, V = m->V;
    model_status st = check_shape(m, B, T, err, err_len);
    if (st == MODEL_OK) st = check_ids(m, ids, labels, M, err, err_len);
    if (st != MODEL_OK) return st;
    if (loss) *loss = 0;
    model_acts *a = &m->acts;
    if (model_acts_ensure(m, a, B, T, 1) != MODEL_OK)
        return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for the training activations of %d x %d tokens", B, T);
    int64_t n = 0;
    for (size_t i = 0; i < M; i++) n += labels[i] != MODEL_IGNORE;
    if (n == 0) return MODEL_OK;
    st = model_stack_forward(m, a, ids, B, T, 0, NULL, err, err_len);
    if (st != MODEL_OK) return st;
    /* The head and the loss over the counted rows only when at most half count
     * (MQAR: one row in 16 at 64 pairs of 1024 tokens): the rows of xf gathered
     * into dx[1], their dxf into dx[0] and scattered into dxn (zero elsewhere:
     * an ignored row's dlogits are zero). Both buffers are free until the layers'
     * backward. The same sums over fewer rows (in another order: results agree to
     * rounding, and a long training run can end elsewhere). */
    int32_t *rows = NULL;
    const int compact = model_head_rows(labels, M, n, &rows);
    if (compact < 0) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory for the counted rows' index");
    const float *hx = a->xf;
    const int32_t *hl = labels;
    size_t hm = M;
    if (compact) {
        float *xc = a->dx[1];
#pragma omp parallel for schedule(static)
        for (int64_t k2 = 0; k2 < n; k2++) memcpy(xc + k2 * C, a->xf + (size_t)rows[k2] * C, (size_t)C * sizeof *xc);
        hx = xc, hl = rows + n, hm = (size_t)n;
    }
    model_lm_head(m, hx, hm, a->logits);
    mops_cross_entropy(a->logits, hl, hm, V, a->rowloss, a->dlogits, scale / (double)n);
    double s = 0;
    for (size_t i = 0; i < hm; i++) s += a->rowloss[i];
    if (!isfinite(s)) {
        free(rows);
        return model_errf(MODEL_ERR_NONFINITE, err, err_len, "the loss is not finite (the model diverged?)");
    }
    if (loss) *loss = s / (double)n;

    /* logits = xf E^T: dxf = dlogits E; dE += dlogits^T xf */
    float *dh = compact ? a->dx[0] : a->dxn;
    mops_gemm(m, 0, 0, (int)hm, C, V, 1.0f, a->dlogits, V, TP(m, m->head), C, 0.0f, dh, C);
    mops_gemm(m, 1, 0, V, C, (int)hm, 1.0f, a->dlogits, V, hx, C, 1.0f, TG(m, m->head), C);
    if (compact) {
        memset(a->dxn, 0, M * C * sizeof *a->dxn);
#pragma omp parallel for schedule(static)
        for (int64_t k2 = 0; k2 < n; k2++) memcpy(a->dxn + (size_t)rows[k2] * C, dh + k2 * C, (size_t)C * sizeof *dh);
        free(rows);
    }
    float *dcur = a->dx[0], *dnext = a->dx[1];
    mops_rmsnorm_bwd(a->x[m->L], a->rf, TP(m, m->fnorm), a->dxn, M, C, dcur, 0, TG(m, m->fnorm), a->part);
    for (int l = m->L - 1; l >= 0; l--) {
        st = layer_backward(m, l, a, B, T, dcur, dnext, err, err_len);
        if (st != MODEL_OK) return st;
        float *tmp = dcur;
        dcur = dnext, dnext = tmp;
    }
    /* embedding rows: column blocks in parallel, rows in order (deterministic);
     * the pad row gets no gradient from the lookup (nn.Embedding padding_idx) */
    float *gE = TG(m, m->emb);
    int pad = m->cfg.pad_token_id;
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < C; cb += 16) {
        int ce = cb + 16 < C ? cb + 16 : C;
        for (size_t i = 0; i < M; i++) {
            if (ids[i] == pad) continue;
            float *gr = gE + (size_t)ids[i] * C;
            const float *dr = dcur + i * C;
            for (int j = cb; j < ce; j++) gr[j] += dr[j];
        }
    }
    m->tm.total_s += omp_get_wtime() - t0;
    return MODEL_OK;
}
