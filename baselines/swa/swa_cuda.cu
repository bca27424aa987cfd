/*
 * swa_cuda.cu: swa on the GPU, on the CUDA attention engine (kernels/common/cuda_attn.cu):
 * bf16/f16 in, fp32 accumulation, tensor cores.
 * Each query tile visits only the key blocks its rows window over.
 */
#include "cuda_attn.h"
#include "cuda_decode.h"
#include "swa.h"

extern "C" int swa_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cuda_attn_supports(p, ATTN_SWA, backward, why, why_len);
}

extern "C" attn_status swa_cuda_forward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && swa_cuda_supports(p, 0, nullptr, 0)) return cuda_f32_forward(p, swa_cuda_forward);
    if (!swa_cuda_supports(p, 0, nullptr, 0))
        return attn_params_check(p, ATTN_SWA, 0, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    if (cuda_decode_applies(p, ATTN_SWA)) return cuda_decode_forward(p, p->w); /* few queries: split-K */
    cuda_attn_spec s = {};
    s.window = p->w;
    return cuda_attn_forward(p, &s);
}

extern "C" attn_status swa_cuda_backward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && swa_cuda_supports(p, 1, nullptr, 0)) return cuda_f32_backward(p, swa_cuda_backward);
    if (!swa_cuda_supports(p, 1, nullptr, 0))
        return attn_params_check(p, ATTN_SWA, 1, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cuda_attn_spec s = {};
    s.window = p->w;
    return cuda_attn_backward(p, &s, nullptr);
}
