/*
 * attn.c: names, parameter defaults and checks, work counts and the tracked
 * allocator shared by every attention operator.
 */
#include "attn.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {"ok", "invalid params", "unsupported", "out of memory",
                                           "non-finite input", "CUDA error"};
static const char *const dtype_names[] = {"f32", "f16", "bf16", "f64"};
static const size_t dtype_sizes[] = {4, 2, 2, 8};
static const char *const variant_names[] = {"mha", "swa", "dma", "nsa"};
static const char *const backend_names[] = {"ref", "cpu", "cuda"};
static const char *const mode_names[] = {"fwd", "bwd", "fwdbwd", "decode"};

const char *attn_status_str(attn_status s) {
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "unknown status";
}
const char *attn_dtype_name(attn_dtype t) { return (unsigned)t <= ATTN_DTYPE_F64 ? dtype_names[t] : "?"; }
size_t attn_dtype_size(attn_dtype t) { return (unsigned)t <= ATTN_DTYPE_F64 ? dtype_sizes[t] : 0; }
const char *attn_variant_name(attn_variant v) { return (unsigned)v < ATTN_NVARIANTS ? variant_names[v] : "?"; }
const char *attn_backend_name(attn_backend b) { return (unsigned)b < ATTN_NBACKENDS ? backend_names[b] : "?"; }
const char *attn_mode_name(attn_mode m) { return (unsigned)m <= ATTN_MODE_DECODE ? mode_names[m] : "?"; }

static int parse_name(const char *s, const char *const *names, int n) {
    if (!s) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int attn_dtype_parse(const char *s, attn_dtype *out) {
    int i = parse_name(s, dtype_names, 4);
    if (i < 0) {
        if (s && strcmp(s, "fp32") == 0) i = 0;
        else if (s && strcmp(s, "fp16") == 0) i = 1;
        else if (s && strcmp(s, "fp64") == 0) i = 3;
        else return -1;
    }
    *out = (attn_dtype)i;
    return 0;
}
int attn_variant_parse(const char *s, attn_variant *out) {
    int i = parse_name(s, variant_names, ATTN_NVARIANTS);
    if (i < 0) return -1;
    *out = (attn_variant)i;
    return 0;
}
int attn_backend_parse(const char *s, attn_backend *out) {
    int i = parse_name(s, backend_names, ATTN_NBACKENDS);
    if (i < 0) return -1;
    *out = (attn_backend)i;
    return 0;
}
int attn_mode_parse(const char *s, attn_mode *out) {
    int i = parse_name(s, mode_names, 4);
    if (i < 0) return -1;
    *out = (attn_mode)i;
    return 0;
}

static attn_stride contiguous(int n, int h, int d) {
    attn_stride s = {(int64_t)n * h * d, (int64_t)h * d, d};
    return s;
}

void attn_params_init(attn_params *p, int B, int Nq, int Nk, int Hq, int Hkv, int D,
                      attn_dtype dtype, int causal) {
    memset(p, 0, sizeof *p);
    p->B = B;
    p->Nq = Nq;
    p->Nk = Nk;
    p->Hq = Hq;
    p->Hkv = Hkv;
    p->D = D;
    p->dtype = dtype;
    p->causal = causal;
    p->scale = D > 0 ? 1.0 / sqrt((double)D) : 1.0;
    p->q_st = p->o_st = p->do_st = p->dq_st = contiguous(Nq, Hq, D);
    p->k_st = p->v_st = p->dk_st = p->dv_st = contiguous(Nk, Hkv, D);
    p->w = 1024;
    p->dma_mode = DMA_MODE_EXP;
    p->nsa_cmp = NSA_CMP_LINEAR;
    p->nsa_l = 32;
    p->nsa_d = 16;
    p->nsa_ls = 64;
    p->nsa_n = 16;
}

#define FAIL(...)                                             \
    do {                                                      \
        if (why && why_len) snprintf(why, why_len, __VA_ARGS__); \
        return ATTN_ERR_INVALID;                              \
    } while (0)

static int stride_ok(attn_stride s, int n, int h, int d) {
    /* Every row must be addressable without two (s, h) rows overlapping: we only
     * require positive strides covering D; overlap of distinct rows is rejected
     * for the simple, common cases (head stride < D, seq stride < h*D when heads are
     * packed inside rows). */
    if (s.h < d && h > 1) return 0;
    if (s.s <= 0 || s.h <= 0 || s.b < 0) return 0;
    (void)n;
    return 1;
}

attn_status attn_params_check(const attn_params *p, attn_variant v, int backward,
                              char *why, size_t why_len) {
    if (p->B < 1 || p->Nq < 1 || p->Nk < 1 || p->Hq < 1 || p->Hkv < 1 || p->D < 1)
        FAIL("B, Nq, Nk, Hq, Hkv and D must all be >= 1 (got B=%d Nq=%d Nk=%d Hq=%d Hkv=%d D=%d)",
             p->B, p->Nq, p->Nk, p->Hq, p->Hkv, p->D);
    if (p->Hq % p->Hkv != 0) FAIL("Hq=%d is not a multiple of Hkv=%d", p->Hq, p->Hkv);
    if (p->D > ATTN_MAX_D) FAIL("D=%d is out of range (1..%d)", p->D, ATTN_MAX_D);
    if ((unsigned)p->dtype > ATTN_DTYPE_F64) FAIL("unknown dtype %d", (int)p->dtype);
    if (!(p->scale > 0) || !isfinite(p->scale)) FAIL("scale must be a positive finite number");
    if (!p->q || !p->k || !p->v || !p->o || !p->lse) FAIL("q, k, v, o and lse are required");
    if (!stride_ok(p->q_st, p->Nq, p->Hq, p->D) || !stride_ok(p->k_st, p->Nk, p->Hkv, p->D) ||
        !stride_ok(p->v_st, p->Nk, p->Hkv, p->D) || !stride_ok(p->o_st, p->Nq, p->Hq, p->D))
        FAIL("bad strides: rows of D elements must not overlap");
    if (backward) {
        if (!p->dout || !p->dq || !p->dk || !p->dv) FAIL("backward needs dout, dq, dk and dv");
        if (!stride_ok(p->do_st, p->Nq, p->Hq, p->D) || !stride_ok(p->dq_st, p->Nq, p->Hq, p->D) ||
            !stride_ok(p->dk_st, p->Nk, p->Hkv, p->D) || !stride_ok(p->dv_st, p->Nk, p->Hkv, p->D))
            FAIL("bad gradient strides: rows of D elements must not overlap");
    }
    switch (v) {
    case ATTN_MHA:
        break;
    case ATTN_SWA:
        if (p->w < 1) FAIL("swa needs a window w >= 1 (got %d)", p->w);
        if (!p->causal) FAIL("swa is causal by definition: set causal");
        break;
    case ATTN_DMA:
        if (p->w < 1) FAIL("dma needs a keep window w >= 1 (got %d)", p->w);
        if (p->dma_mode != DMA_MODE_EXP && p->dma_mode != DMA_MODE_LINEAR) FAIL("unknown dma mode");
        if (!p->z && !p->w_dt) FAIL("dma needs either z or w_dt and a");
        if (p->w_dt && !p->a) FAIL("dma with w_dt also needs a");
        if (backward && p->w_dt && (!p->dw_dt || !p->da || (p->b_dt && !p->db_dt)))
            FAIL("dma backward with w_dt needs dw_dt, da (and db_dt when b_dt is given)");
        break;
    case ATTN_NSA:
        if (!p->causal) FAIL("nsa is causal by definition: set causal");
        if (p->w < 1) FAIL("nsa needs a window w >= 1 (got %d)", p->w);
        if (p->nsa_l < 1 || p->nsa_d < 1 || p->nsa_ls < 1 || p->nsa_n < 1)
            FAIL("nsa needs l, d, l', n >= 1 (got l=%d d=%d l'=%d n=%d)", p->nsa_l, p->nsa_d,
                 p->nsa_ls, p->nsa_n);
        if (p->nsa_d > p->nsa_l) FAIL("nsa stride d=%d must not exceed block length l=%d", p->nsa_d, p->nsa_l);
        if (p->nsa_cmp != NSA_CMP_LINEAR && p->nsa_cmp != NSA_CMP_MEAN) FAIL("unknown nsa compression");
        if (!p->g) FAIL("nsa needs the gates g");
        if (p->nsa_cmp == NSA_CMP_LINEAR && (!p->w_ck || !p->w_cv || !p->p_k || !p->p_v))
            FAIL("nsa linear compression needs w_ck, w_cv, p_k and p_v");
        if (backward && !p->dg) FAIL("nsa backward needs dg");
        if (backward && p->nsa_cmp == NSA_CMP_LINEAR && (!p->dw_ck || !p->dw_cv || !p->dp_k || !p->dp_v))
            FAIL("nsa backward with linear compression needs dw_ck, dw_cv, dp_k and dp_v");
        break;
    default:
        FAIL("unknown variant %d", (int)v);
    }
    return ATTN_OK;
}

/* ---- work counts ---- */

/* Number of (query, key) pairs in the visible sets, summed over queries (one head). */
static double visible_pairs(const attn_params *p) {
    if (!p->causal) return (double)p->Nq * p->Nk;
    double s = 0;
    for (int64_t i = 0; i < p->Nq; i++) s += (double)attn_visible(p, i);
    return s;
}

/* Pairs with a cap of w keys per row: the last min(w, visible) visible keys. */
static double capped_pairs(const attn_params *p, int w) {
    double s = 0;
    for (int64_t i = 0; i < p->Nq; i++) {
        int64_t n = attn_visible(p, i);
        s += (double)(n < w ? n : w);
    }
    return s;
}

/* NSA pairs per query head: visible compressed blocks + selected keys + window keys.
 * Selected keys: the forced blocks (block 0, the query's block and the one before)
 * and up to n blocks in all, counting only keys j <= i'. */
static double nsa_pairs(const attn_params *p) {
    int64_t nb = nsa_num_cmp_blocks(p), ls = p->nsa_ls;
    double s = 0;
    for (int64_t i = 0; i < p->Nq; i++) {
        int64_t ip = attn_qpos(p, i);
        if (ip < 0) continue;
        int64_t ncmp = ip + 1 >= p->nsa_l ? (ip + 1 - p->nsa_l) / p->nsa_d + 1 : 0;
        if (ncmp > nb) ncmp = nb;
        int64_t cur = ip / ls;                       /* the query's own block */
        int64_t cand = cur + 1;                      /* blocks 0..cur may be selected */
        int64_t forced = 1 + (cur >= 1) + (cur >= 2); /* block 0, cur, cur - 1 (distinct) */
        int64_t nsel = p->nsa_n > forced ? p->nsa_n : forced;
        if (nsel > cand) nsel = cand;
        /* the query's block holds ip % ls + 1 visible keys, every other one ls */
        int64_t sel = (nsel - 1) * ls + (ip % ls + 1);
        int64_t win = ip + 1 < p->w ? ip + 1 : p->w;
        s += (double)(ncmp + sel + win);
    }
    return s;
}

double attn_flops_dense(const attn_params *p, attn_mode m) {
    double f = 4.0 * p->B * p->Hq * (double)p->Nq * p->Nk * p->D;
    if (p->causal && p->Nq == p->Nk) f *= 0.5;
    if (m == ATTN_MODE_BWD) f *= 2.5;
    if (m == ATTN_MODE_FWDBWD) f *= 3.5;
    return f;
}

double attn_pairs(const attn_params *p, attn_variant v) {
    double per_head;
    switch (v) {
    case ATTN_MHA: per_head = visible_pairs(p); break;
    case ATTN_SWA: per_head = capped_pairs(p, p->w); break;
    case ATTN_DMA: per_head = capped_pairs(p, p->w); break;
    case ATTN_NSA: per_head = nsa_pairs(p); break;
    default: per_head = 0;
    }
    return per_head * p->B * p->Hq;
}

double attn_flops_effective(const attn_params *p, attn_variant v, attn_mode m) {
    double f = 4.0 * p->D * attn_pairs(p, v);
    double extra = 0;
    if (v == ATTN_DMA && (p->w_dt || !p->z)) /* score GEMV: 2 * Nk * Hkv*D * Hkv per batch */
        extra = 2.0 * p->B * p->Nk * (double)p->Hkv * p->D * p->Hkv;
    if (v == ATTN_NSA) {
        double nb = (double)nsa_num_cmp_blocks(p);
        if (p->nsa_cmp == NSA_CMP_LINEAR) /* two (nb, l*D) x (l*D, D) products per kv head */
            extra = 2.0 * 2.0 * p->B * p->Hkv * nb * p->nsa_l * p->D * p->D;
        else
            extra = 2.0 * p->B * p->Hkv * nb * p->nsa_l * p->D;
    }
    if (m == ATTN_MODE_BWD) return 2.5 * f + 2.0 * extra;
    if (m == ATTN_MODE_FWDBWD) return 3.5 * f + 3.0 * extra;
    return f + extra;
}

double attn_bytes(const attn_params *p, attn_variant v, attn_mode m) {
    double es = (double)attn_dtype_size(p->dtype);
    double qo = (double)p->B * p->Nq * p->Hq * p->D * es;
    double kv = (double)p->B * p->Nk * p->Hkv * p->D * es;
    double lse = (double)p->B * p->Hq * p->Nq * 4.0 * (v == ATTN_NSA ? 3 : 1);
    /* forward: read q, k, v; write o, lse */
    double fwd = 2 * qo + 2 * kv + lse;
    if (v == ATTN_DMA) fwd += (double)p->B * p->Hkv * p->Nk * 4.0;
    if (v == ATTN_NSA) fwd += (double)p->B * p->Nq * p->Hq * 3 * 4.0;
    /* backward: read q, k, v, o, dout, lse; write dq, dk, dv */
    double bwd = 4 * qo + 2 * kv + lse + qo + 2 * kv;
    if (m == ATTN_MODE_BWD) return bwd;
    if (m == ATTN_MODE_FWDBWD) return fwd + bwd;
    return fwd;
}

/* ---- tracked allocator ---- */

#define ALLOC_HDR 64 /* keeps the returned pointer 64-byte aligned */

static atomic_size_t mem_cur;
static atomic_size_t mem_peak;

void *attn_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - ALLOC_HDR) return NULL;
    void *raw = NULL;
    if (posix_memalign(&raw, ALLOC_HDR, bytes + ALLOC_HDR) != 0) return NULL;
    *(size_t *)raw = bytes;
    size_t cur = atomic_fetch_add(&mem_cur, bytes) + bytes;
    size_t pk = atomic_load(&mem_peak);
    while (cur > pk && !atomic_compare_exchange_weak(&mem_peak, &pk, cur)) {
    }
    return (char *)raw + ALLOC_HDR;
}

void *attn_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *ptr = attn_alloc(n * size);
    if (ptr) memset(ptr, 0, n * size);
    return ptr;
}

void attn_free(void *ptr) {
    if (!ptr) return;
    void *raw = (char *)ptr - ALLOC_HDR;
    atomic_fetch_sub(&mem_cur, *(size_t *)raw);
    free(raw);
}

size_t attn_mem_current(void) { return atomic_load(&mem_cur); }
size_t attn_mem_peak(void) { return atomic_load(&mem_peak); }
void attn_mem_reset_peak(void) { atomic_store(&mem_peak, atomic_load(&mem_cur)); }
