/*
 * mha_ref.c: the mha reference, double accumulation, as docs/attention.md defines it.
 * S(i) = the visible keys V(i); logits s q.k.
 * Slow on purpose: the oracle every fast mha is tested against.
 */
#include "mha.h"

#include "ref_common.h"

int mha_ref_supports(const attn_params *p, int backward, char *why, size_t why_len) {
    return attn_params_check(p, ATTN_MHA, backward, why, why_len) == ATTN_OK;
}

attn_status mha_ref_forward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_MHA, 0, NULL, 0);
    if (st != ATTN_OK) return st;
    return ref_attention_forward(p, ref_select_visible, NULL, NULL);
}

attn_status mha_ref_backward(const attn_params *p) {
    attn_status st = attn_params_check(p, ATTN_MHA, 1, NULL, 0);
    if (st != ATTN_OK) return st;
    return ref_attention_backward(p, ref_select_visible, NULL, NULL, NULL, NULL);
}
