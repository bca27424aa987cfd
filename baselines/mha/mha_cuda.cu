/*
 * mha_cuda.cu: mha on the GPU, on the CUDA attention engine (kernels/common/cuda_attn.cu):
 * bf16/f16 in, fp32 accumulation, tensor cores.
 */
#include "cuda_attn.h"
#include "cuda_decode.h"
#include "mha.h"

extern "C" int mha_cuda_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cuda_attn_supports(p, ATTN_MHA, backward, why, why_len);
}

extern "C" attn_status mha_cuda_forward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && mha_cuda_supports(p, 0, nullptr, 0)) return cuda_f32_forward(p, mha_cuda_forward);
    if (!mha_cuda_supports(p, 0, nullptr, 0))
        return attn_params_check(p, ATTN_MHA, 0, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    if (cuda_decode_applies(p, ATTN_MHA)) return cuda_decode_forward(p, 0); /* few queries: split-K */
    cuda_attn_spec s = {};
    s.window = 0;
    return cuda_attn_forward(p, &s);
}

extern "C" attn_status mha_cuda_backward(const attn_params *p) {
    if (p->dtype == ATTN_DTYPE_F32 && mha_cuda_supports(p, 1, nullptr, 0)) return cuda_f32_backward(p, mha_cuda_backward);
    if (!mha_cuda_supports(p, 1, nullptr, 0))
        return attn_params_check(p, ATTN_MHA, 1, nullptr, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cuda_attn_spec s = {};
    s.window = 0;
    return cuda_attn_backward(p, &s, nullptr);
}
