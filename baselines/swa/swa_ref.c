/*
 * swa_ref.c: the swa reference, double accumulation, as docs/attention.md defines it.
 * S(i) = { j : i' - w < j <= i' }, the diagonal included; causal only.
 * Slow on purpose: the oracle every fast swa is tested against.
 */
#include "swa.h"

#include "ref_common.h"

int swa_ref_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return attn_params_check(p, ATTN_SWA, backward, why, why_len) == ATTN_OK;
}

attn_status swa_ref_forward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_SWA, 0, NULL, 0);
    if (st != ATTN_OK) return st;
    return ref_attention_forward(p, ref_select_window, NULL, NULL);
}

attn_status swa_ref_backward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_SWA, 1, NULL, 0);
    if (st != ATTN_OK) return st;
    return ref_attention_backward(p, ref_select_window, NULL, NULL, NULL, NULL);
}
