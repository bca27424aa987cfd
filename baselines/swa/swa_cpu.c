/*
 * swa_cpu.c: the fast CPU swa (fp32, OpenMP, AVX-512/AVX2/portable clones) on the
 * tiled engine in kernels/common/cpu_attn.c.
 * Each query tile visits only the keys its rows window over: w + tile - 1 of them.
 */
#include "swa.h"

#include "cpu_attn.h"

int swa_cpu_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return cpu_attn_supports(p, ATTN_SWA, backward, why, why_len);
}

static cpu_attn_spec spec(const attn_params *p) {
    cpu_attn_spec s = {0};
    s.window = p->w;
    (void)p;
    return s;
}

attn_status swa_cpu_forward(const attn_params *p) {
    char why[8];
    if (!swa_cpu_supports(p, 0, why, sizeof why))
        return attn_params_check(p, ATTN_SWA, 0, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cpu_attn_spec s = spec(p);
    return cpu_attn_forward(p, &s);
}

attn_status swa_cpu_backward(const attn_params *p) {
    char why[8];
    if (!swa_cpu_supports(p, 1, why, sizeof why))
        return attn_params_check(p, ATTN_SWA, 1, NULL, 0) != ATTN_OK ? ATTN_ERR_INVALID : ATTN_ERR_UNSUPPORTED;
    cpu_attn_spec s = spec(p);
    return cpu_attn_backward(p, &s, NULL);
}
