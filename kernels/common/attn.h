/*
 * attn.h: the one operator interface shared by every attention variant and backend.
 *
 * A caller fills an attn_params (attn_params_init gives the defaults), looks up an
 * operator in the registry (registry.h) and calls its forward/backward. Operators
 * never print and never exit: they return an attn_status.
 *
 * Layout "bshd": q is (B, Nq, Hq, D), k and v are (B, Nk, Hkv, D). Each of these
 * tensors carries its own element strides for batch, sequence and head; the D
 * elements of one row are contiguous. Query head h uses kv head h / (Hq / Hkv).
 * The exact definitions every implementation computes are in docs/attention.md.
 */
#ifndef DMABENCH_ATTN_H
#define DMABENCH_ATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ATTN_OK = 0,
    ATTN_ERR_INVALID,      /* params violate the contract (shape, stride, missing pointer) */
    ATTN_ERR_UNSUPPORTED,  /* valid params this backend cannot run */
    ATTN_ERR_OOM,          /* an allocation failed */
    ATTN_ERR_NONFINITE,    /* NaN or Inf in an input */
    ATTN_ERR_CUDA,         /* a CUDA call failed */
} attn_status;

const char *attn_status_str(attn_status s);

typedef enum {
    ATTN_DTYPE_F32 = 0,
    ATTN_DTYPE_F16,
    ATTN_DTYPE_BF16,
    ATTN_DTYPE_F64,        /* references only: used by the gradient checks */
} attn_dtype;

const char *attn_dtype_name(attn_dtype t);
int attn_dtype_parse(const char *s, attn_dtype *out);  /* 0 on success */
size_t attn_dtype_size(attn_dtype t);

typedef enum { ATTN_MHA = 0, ATTN_SWA, ATTN_DMA, ATTN_NSA, ATTN_NVARIANTS } attn_variant;
typedef enum { ATTN_BACKEND_REF = 0, ATTN_BACKEND_CPU, ATTN_BACKEND_CUDA, ATTN_NBACKENDS } attn_backend;
typedef enum { ATTN_MODE_FWD = 0, ATTN_MODE_BWD, ATTN_MODE_FWDBWD, ATTN_MODE_DECODE } attn_mode;
typedef enum { DMA_MODE_EXP = 0, DMA_MODE_LINEAR } dma_mode;
typedef enum { NSA_CMP_LINEAR = 0, NSA_CMP_MEAN } nsa_cmp;

const char *attn_variant_name(attn_variant v);
const char *attn_backend_name(attn_backend b);
const char *attn_mode_name(attn_mode m);
int attn_variant_parse(const char *s, attn_variant *out);
int attn_backend_parse(const char *s, attn_backend *out);
int attn_mode_parse(const char *s, attn_mode *out);

/* Element strides of a bshd tensor; the last dimension (D) is contiguous. */
typedef struct {
    int64_t b, s, h;
} attn_stride;

/* Optional per-call measurements an operator adds to (all in milliseconds; the
 * caller zeroes them). A CUDA operator does not wait for its device work to time
 * it (a wait inside the call would put the host's wake-up into the caller's own
 * timing): it records spans of events (dm_cuda_span_begin/end, cuda_rt.h), and the
 * caller adds their times to select_ms after the call's work is done
 * (dm_cuda_stats_settle). */
#define ATTN_STATS_SPANS 8
typedef struct {
    double select_ms;      /* dma/nsa: time spent choosing keys (thresholds, lists, scores) */
    int nspan;             /* CUDA: spans recorded and not yet settled into select_ms */
    int span[ATTN_STATS_SPANS]; /* their slots in cuda_rt's event pool */
} attn_stats;

/* Limits every backend shares; a backend may support less (see its supports()). */
#define ATTN_MAX_D 256

typedef struct {
    /* shape */
    int B, Nq, Nk, Hq, Hkv, D;
    attn_dtype dtype;      /* of q, k, v, o, dout, dq, dk, dv */
    double scale;          /* logit scale s; attn_params_init sets 1/sqrt(D) */
    int causal;            /* bottom-right aligned: query i sits at i + Nk - Nq */

    /* main tensors (dtype) */
    const void *q;  attn_stride q_st;    /* (B, Nq, Hq, D) */
    const void *k;  attn_stride k_st;    /* (B, Nk, Hkv, D) */
    const void *v;  attn_stride v_st;    /* (B, Nk, Hkv, D) */
    void *o;        attn_stride o_st;    /* (B, Nq, Hq, D) output */
    /* log-sum-exp of each row's logits, natural log, -inf for an empty row.
     * aux dtype (below); contiguous. mha/swa/dma: (B, Hq, Nq);
     * nsa: (3, B, Hq, Nq), one plane per branch (cmp, slc, win). */
    void *lse;

    /* backward: dout in, gradients out (dtype). The backward reads o and lse as the
     * forward wrote them for the same inputs. */
    const void *dout; attn_stride do_st; /* (B, Nq, Hq, D) */
    void *dq;  attn_stride dq_st;        /* (B, Nq, Hq, D) */
    void *dk;  attn_stride dk_st;        /* (B, Nk, Hkv, D) */
    void *dv;  attn_stride dv_st;        /* (B, Nk, Hkv, D) */

    /* settings */
    int w;                 /* swa window; dma keep window; nsa window-branch width */
    dma_mode dma_mode;
    nsa_cmp nsa_cmp;
    int nsa_l;             /* compression block length l */
    int nsa_d;             /* compression stride d */
    int nsa_ls;            /* selection block size l' */
    int nsa_n;             /* selected blocks per query, forced ones included */

    /* Variant tensors. Their dtype ("aux dtype") is F64 when dtype is F64 and F32
     * otherwise; all are contiguous in the shapes given. */
    /* dma: either z is given, or w_dt (and optional b_dt) and a, and z is computed
     * from v: dt = V_flat w_dt + b_dt, z = exp(a * softplus(dt)) or a * softplus(dt). */
    const void *z;         /* (B, Hkv, Nk) used when w_dt == NULL */
    const void *w_dt;      /* (Hkv*D, Hkv) */
    const void *b_dt;      /* (Hkv) or NULL */
    const void *a;         /* (Hkv) */
    void *z_out;           /* (B, Hkv, Nk) optional: forward writes the z it used */
    void *dz;              /* (B, Hkv, Nk) optional gradient of z */
    void *dw_dt;           /* (Hkv*D, Hkv) written when w_dt is given */
    void *db_dt;           /* (Hkv) written when b_dt is given */
    void *da;              /* (Hkv) written when w_dt is given */
    /* nsa */
    const void *g;         /* (B, Nq, Hq, 3) gates for (cmp, slc, win) */
    const void *w_ck;      /* (Hkv, l*D, D) linear compression of keys */
    const void *w_cv;      /* (Hkv, l*D, D) linear compression of values */
    const void *p_k;       /* (Hkv, l, D) intra-block position embedding, keys */
    const void *p_v;       /* (Hkv, l, D) intra-block position embedding, values */
    void *dg, *dw_ck, *dw_cv, *dp_k, *dp_v; /* gradients, same shapes */

    attn_stats *stats;     /* optional: filled by operators that measure parts of their work */

    /* Optional: what the forward keeps for the backward, op->saved_bytes(p) bytes in
     * the operator's memory (device memory for CUDA operators). Given, the forward
     * fills it and a backward of the same inputs given the same buffer reads it
     * instead of computing those parts again (on CUDA, nsa: the branches' outputs,
     * the compressed keys and values and the selection; dma: its plan). NULL: the
     * backward recomputes what it needs. */
    void *saved;
} attn_params;

/* Fills shape, contiguous bshd strides, scale 1/sqrt(D) and the paper's settings
 * (w = 1024, dma exp mode, NSA l=32 d=16 l'=64 n=16 linear). Pointers are NULL. */
void attn_params_init(attn_params *p, int B, int Nq, int Nk, int Hq, int Hkv, int D,
                      attn_dtype dtype, int causal);

/* Checks what every backend requires (shape ranges, GQA divisibility, required
 * pointers for the variant and direction). Writes a one-line reason on failure. */
attn_status attn_params_check(const attn_params *p, attn_variant v, int backward,
                              char *why, size_t why_len);

static inline int attn_aux_is_f64(const attn_params *p) { return p->dtype == ATTN_DTYPE_F64; }

/* Absolute position of query i (bottom-right alignment when causal). */
static inline int64_t attn_qpos(const attn_params *p, int64_t i) {
    return i + (int64_t)p->Nk - (int64_t)p->Nq;
}

/* Number of keys query i may see: [0, vis) (Nk when not causal). */
static inline int64_t attn_visible(const attn_params *p, int64_t i) {
    if (!p->causal) return p->Nk;
    int64_t n = attn_qpos(p, i) + 1;
    return n < 0 ? 0 : (n > p->Nk ? p->Nk : n);
}

/* Number of NSA compression blocks for the params (0 when Nk < l). */
static inline int64_t nsa_num_cmp_blocks(const attn_params *p) {
    if (p->Nk < p->nsa_l) return 0;
    return (p->Nk - p->nsa_l) / p->nsa_d + 1;
}

/* Work counts (see docs/attention.md, "Counting work"). */
double attn_flops_dense(const attn_params *p, attn_mode m);
/* Number of (query head, query, key) pairs the variant attends, summed. */
double attn_pairs(const attn_params *p, attn_variant v);
double attn_flops_effective(const attn_params *p, attn_variant v, attn_mode m);
/* Minimum bytes moved: inputs read once, outputs written once. */
double attn_bytes(const attn_params *p, attn_variant v, attn_mode m);

/* A tracked allocator: operators take their own buffers from here so that a
 * benchmark can report the high-water mark. Thread-safe. */
void *attn_alloc(size_t bytes);
void *attn_calloc(size_t n, size_t size);
void attn_free(void *ptr);
size_t attn_mem_current(void);
size_t attn_mem_peak(void);
void attn_mem_reset_peak(void);

#ifdef __cplusplus
}
#endif
#endif
