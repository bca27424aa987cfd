/*
 * cuda_f32.cu: fp32 tensors on the CUDA operators. The kernels compute in bf16 on
 * the tensor cores with fp32 accumulation; for fp32 inputs, q, k, v (and o, dout
 * for the backward) are rounded to bf16 into a workspace, the bf16 operator runs,
 * and its outputs (o; dq, dk, dv) are widened back into the caller's fp32 tensors.
 * The variant tensors (z, w_dt, lse, dz, ...) are fp32 in both cases and pass
 * through. So an fp32 call has bf16's accuracy, not fp32's (verify checks it
 * against bf16's tolerance: docs/verify.md).
 */
#include <cstdio>

#include "cuda_attn.h"
#include "cuda_common.cuh"
#include "cuda_mma.cuh"
#include "cuda_rt.h"

namespace {
using namespace dm;

dm_cuda_ws g_f32; /* the bf16 copies, kept between calls */

attn_stride contiguous(int N, int H, int D) { return attn_stride{(int64_t)N * H * D, (int64_t)H * D, D}; }

/* The bf16 twin of p: every main tensor in the workspace, contiguous. */
attn_status make_twin(const attn_params *p, int backward, attn_params *t) {
    *t = *p;
    t->dtype = ATTN_DTYPE_BF16;
    const size_t nq = (size_t)p->B * p->Nq * p->Hq * p->D, nk = (size_t)p->B * p->Nk * p->Hkv * p->D;
    auto r256 = [](size_t x) { return (x + 255) & ~(size_t)255; };
    const size_t bq = r256(nq * 2), bk = r256(nk * 2);
    /* q, o (and dout, dq) of the queries' shape; k, v (and dk, dv) of the keys' */
    size_t total = backward ? 4 * bq + 4 * bk : 2 * bq + 2 * bk;
    char *ws;
    attn_status st = dm_cuda_ws_get(&g_f32, total, (void **)&ws, nullptr);
    if (st != ATTN_OK) return st;
    const attn_stride qs = contiguous(p->Nq, p->Hq, p->D), ks = contiguous(p->Nk, p->Hkv, p->D);
    t->q = ws, t->q_st = qs;
    t->o = ws + bq, t->o_st = qs;
    t->k = ws + 2 * bq, t->k_st = ks;
    t->v = ws + 2 * bq + bk, t->v_st = ks;
    if (backward) {
        char *b2 = ws + 2 * bq + 2 * bk;
        t->dout = b2, t->do_st = qs;
        t->dq = b2 + bq, t->dq_st = qs;
        t->dk = b2 + 2 * bq, t->dk_st = ks;
        t->dv = b2 + 2 * bq + bk, t->dv_st = ks;
    }
    typedef __nv_bfloat16 bf;
    if ((st = convert<float, bf>(p->q, p->q_st, (void *)t->q, qs, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK) return st;
    if ((st = convert<float, bf>(p->k, p->k_st, (void *)t->k, ks, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK) return st;
    if ((st = convert<float, bf>(p->v, p->v_st, (void *)t->v, ks, p->B, p->Nk, p->Hkv, p->D)) != ATTN_OK) return st;
    if (backward) {
        /* o as the forward wrote it: widened from bf16, so this rounding is exact */
        if ((st = convert<float, bf>(p->o, p->o_st, t->o, qs, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK) return st;
        if ((st = convert<float, bf>(p->dout, p->do_st, (void *)t->dout, qs, p->B, p->Nq, p->Hq, p->D)) != ATTN_OK)
            return st;
    }
    return ATTN_OK;
}

} // namespace

extern "C" attn_status cuda_f32_forward(const attn_params *p, attn_status (*inner)(const attn_params *)) {
    attn_params t;
    attn_status st = make_twin(p, 0, &t);
    if (st == ATTN_OK) st = inner(&t);
    if (st == ATTN_OK)
        st = convert<__nv_bfloat16, float>(t.o, t.o_st, p->o, p->o_st, p->B, p->Nq, p->Hq, p->D);
    return st;
}

extern "C" attn_status cuda_f32_backward(const attn_params *p, attn_status (*inner)(const attn_params *)) {
    attn_params t;
    attn_status st = make_twin(p, 1, &t);
    if (st == ATTN_OK) st = inner(&t);
    typedef __nv_bfloat16 bf;
    if (st == ATTN_OK) st = convert<bf, float>(t.dq, t.dq_st, p->dq, p->dq_st, p->B, p->Nq, p->Hq, p->D);
    if (st == ATTN_OK) st = convert<bf, float>(t.dk, t.dk_st, p->dk, p->dk_st, p->B, p->Nk, p->Hkv, p->D);
    if (st == ATTN_OK) st = convert<bf, float>(t.dv, t.dv_st, p->dv, p->dv_st, p->B, p->Nk, p->Hkv, p->D);
    return st;
}
