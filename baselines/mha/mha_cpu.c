/*
 * mha_cpu.c: the fast CPU mha (fp32, OpenMP, AVX-512/AVX2/portable clones) on the
 * tiled engine in kernels/common/cpu_attn.c.
 */
#include "mha.h"

#include "cpu_attn.h"

int mha_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cpu_attn_supports(p, ATTN_MHA, backward, why, why_len);
}

static cpu_attn_spec spec(const attn_params *p) {
    cpu_attn_spec s = {0};
    s.window = 0;
    (void)p;
    return s;
}

attn_status mha_cpu_forward(const attn_params *p) {
    char why[8];
    if (!mha_cpu_supports(p, 0, why, sizeof why))
        return attn_params_check(p, ATTN_MHA, 0, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cpu_attn_spec s = spec(p);
    return cpu_attn_forward(p, &s);
}

attn_status mha_cpu_backward(const attn_params *p) {
    char why[8];
    if (!mha_cpu_supports(p, 1, why, sizeof why))
        return attn_params_check(p, ATTN_MHA, 1, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cpu_attn_spec s = spec(p);
    return cpu_attn_backward(p, &s, NULL);
}
