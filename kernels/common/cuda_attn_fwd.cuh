/*
 * cuda_attn_fwd.cuh: what the CUDA forward kernels take (cuda_attn.cu's
 * mma.sync kernel and cuda_attn_wgmma.cu's Hopper kernel), filled once by
 * cuda_attn_forward.
 */
#ifndef DMABENCH_CUDA_ATTN_FWD_CUH
#define DMABENCH_CUDA_ATTN_FWD_CUH

#include "cuda_attn.h"

namespace dm {

struct FwdArgs {
    const void *q, *k, *v;
    void *o;
    float *lse;
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, osb, oss, osh;
    int B, Nq, Nk, Hq, Hkv, G;
    float scale_log2;
    int causal, window;
    const float *z;
    const int *list, *list_len;
    const unsigned long long *tkey;
    const int *list_rows;  /* cuda_attn_spec.list_rows and list_zl, or NULL */
    const float *list_zl;
    int cap, ntiles;
    long long off; /* query i sits at position i + off */
    int kmul, kadd; /* key j sits at position j kmul + kadd */
    void *ores; /* dma: O's rounding residual, bf16 (B, Nq, Hq, D) contiguous (cuda_attn_spec) */
    int heads_first; /* fw1: tile_head's order */
};

/* How far (in log2 units) a block's row max may rise above the running max before
 * the row is rescaled: P stays below 2^FWD_TAU, and O and l are rescaled only in
 * the blocks where some row of the warp moved that far, not in every block (at
 * N = 8192 on random inputs the forward's FMULs fell from 103 M to 4 M;
 * docs/perf-notes.md o1). The running max m is then a bound rather than the max,
 * which the output and the lse (m + log2 l) do not see. Both forwards' softmax. */
constexpr float FWD_TAU = 8.f;

/* The Hopper forward (cuda_attn_wgmma.cu): wgmma from shared memory, D 64 or 128,
 * bf16 or f16, on an sm_90 device. ATTN_ERR_UNSUPPORTED where it does not apply. */
attn_status launch_fwd_wgmma(const FwdArgs &a, int D, attn_dtype dt);
/* DMABENCH_CUDA_WGMMA=1 and the device is an sm_90 one. */
bool fwd_wgmma_enabled();
/* fw1, the warp-specialised Hopper forward (cuda_attn_wgmma.cu), O's residual
 * included: D 64 or 128, bf16 or f16, sm_90; ATTN_ERR_UNSUPPORTED elsewhere. */
attn_status launch_fwd_ws(const FwdArgs &a, int D, attn_dtype dt);
/* Whether a forward of head dim D in dt runs as fw1 (D 64 or 128, bf16 or f16, an
 * sm_90 device): with DMABENCH_CUDA_FWD_WS=1 every such forward, with =0 none, and
 * by default those that write dma's O residual (ores: the training forward, where
 * fw1 measured faster than the mma.sync forward; without the residual it is slower). */
bool fwd_ws_for(bool ores, int D, attn_dtype dt);

} // namespace dm

#endif
