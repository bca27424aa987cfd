/*
 * nsa_cuda.cuh: what the two halves of nsa's CUDA operator share. nsa_cuda.cu
 * holds the compression, the selection and the order of the steps, forward and
 * backward; nsa_cuda_slc.cu the selected branch (attention over each query's
 * selected blocks: by the union of a query tile's blocks, or by pairs grouped by
 * block, or on the CUDA cores), whose entry points are nsa_slc_forward and
 * nsa_slc_backward.
 */
#ifndef DMABENCH_NSA_CUDA_CUH
#define DMABENCH_NSA_CUDA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attn.h"
#include "cuda_common.cuh"
#include "cuda_mma.cuh"

namespace nsa_gpu {

constexpr int NSA_MAXG = 16; /* query heads per kv head the CUDA-core kernels take */

/* The selection and the selected branch run on the tensor cores
 * (nsa_select_tc_kernel, nsa_slc_tc_kernel); DMABENCH_NSA_TC=0 asks for the
 * CUDA-core kernels. */
inline int nsa_tc_enabled() {
    static const bool on = !dm_env_is("DMABENCH_NSA_TC", "0");
    return on;
}

/* x[hh] += q_hh . kr for the group's G heads (the CUDA-core kernels): kr is one
 * key row of D elements (16-byte aligned), sq the heads' queries as floats,
 * [G][D]; each 16-byte load of the row serves every head. */
template <typename T>
__device__ __forceinline__ void group_dots(const T *kr, const float *sq, int D, int G, float (&x)[NSA_MAXG]) {
    for (int e0 = 0; e0 < D; e0 += 8) {
        float kv[8];
        dm::ld8f<T>(kr + e0, kv);
#pragma unroll
        for (int k = 0; k < 8; k++)
#pragma unroll
            for (int hh = 0; hh < NSA_MAXG; hh++)
                if (hh < G) x[hh] += sq[hh * D + e0 + k] * kv[k];
    }
}

/* The 64 mma rows of a (tile of QT queries, kv head) into sQ ([64][D], swizzled,
 * cp.async): row r = hh QT + qi holds query i0 + qi of head hkv G + hh; rows past
 * the group's heads or the queries are zero. A: SelArgs or SlcArgs. */
template <typename T, int D, int NT = 128, typename A>
__device__ __forceinline__ void load_group_q(T *sQ, const A &a, int b, int hkv, int i0, int QT, int tid) {
    constexpr int CH = D / 8;
    for (int c = tid; c < 64 * CH; c += NT) {
        const int r = c / CH, ch = c % CH, hh = r / QT, qi = r % QT;
        const bool ok = r < a.G * QT && i0 + qi < a.Nq;
        const T *src = static_cast<const T *>(a.q) + b * a.qsb + (long long)(ok ? i0 + qi : 0) * a.qss +
                       (long long)(hkv * a.G + (ok ? hh : 0)) * a.qsh + ch * 8;
        dm::cp16(sQ + dm::swz<D>(r, ch), src, ok);
    }
}

/* The selected branch's forward: O_slc and lse plane 1 of the selection sel. */
struct SlcArgs {
    const void *q, *k, *v;
    void *o; /* (B, Nq, Hq, D) contiguous */
    float *lse1;
    const int *sel;
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh;
    int B, Nq, Nk, Hq, Hkv, G, D, nsel, ls;
    float scale_log2;
};

/* Its backward: dq, dk, dv (fp32 accumulators, added to) from dout times g_slc. */
struct SlcBwdArgs {
    const void *q, *k, *v, *oslc, *dout; /* dout: (B, Nq, Hq, D) contiguous, already times g_slc */
    const float *lse1;
    const int *sel;
    float *dq, *dk, *dv; /* fp32 accumulators: (B, Nq, Hq, D), (B, Nk, Hkv, D) x 2 */
    const float *dsum;   /* Dsum = dO . O_slc (B, Hq, Nq), or null: formed here (the union
                          * and CUDA-core kernels always form their own) */
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh;
    int B, Nq, Nk, Hq, Hkv, G, D, nsel, ls;
    float scale;
};

/* The bytes of the pairs' lists that a forward with a saved area keeps for the
 * backward, which then only batches them again (docs/perf-notes.md n47): where
 * both passes go by pairs and the forward builds its lists in one chunk; 0 where
 * none are kept (and with DMABENCH_NSA_KEEP_LISTS=0). */
size_t nsa_slc_lists_bytes(int B, int Hkv, int Nq, int nsel, int ns, int G, int D);

/* The selected branch forward (a) over ns selection blocks. counts: with a saved
 * area, where the choice between the union kernels and the pairs keeps its two
 * counts for the backward (NULL: counted in a workspace). lists: where the
 * pairs' lists are kept for the backward (nsa_slc_lists_bytes of them), or NULL. */
template <typename T> attn_status nsa_slc_forward(const SlcArgs &a, int ns, unsigned long long *counts, char *lists);
/* Its backward; have: counts already holds the forward's counts of this selection;
 * lists: the forward's kept lists, or NULL. */
template <typename T>
attn_status nsa_slc_backward(const SlcBwdArgs &a, int ns, unsigned long long *counts, bool have, const char *lists);

} // namespace nsa_gpu

#endif
