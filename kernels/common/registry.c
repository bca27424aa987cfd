/*
 * registry.c: the list of every built-in {variant, backend} operator.
 * Adding a backend of a variant means adding one line here.
 */
#include "registry.h"

#include "dma.h"
#include "mha.h"
#include "nsa.h"
#include "swa.h"

#define OP(v, b, prefix) {v, b, prefix##_supports, prefix##_forward, prefix##_backward, NULL}
/* an operator that keeps part of its forward for its backward (attn_params.saved) */
#define OP_SAVED(v, b, prefix) {v, b, prefix##_supports, prefix##_forward, prefix##_backward, prefix##_saved_bytes}

static const attn_op ops[] = {
    OP(ATTN_MHA, ATTN_BACKEND_REF, mha_ref),
    OP(ATTN_SWA, ATTN_BACKEND_REF, swa_ref),
    OP(ATTN_DMA, ATTN_BACKEND_REF, dma_ref),
    OP(ATTN_NSA, ATTN_BACKEND_REF, nsa_ref),
    OP(ATTN_MHA, ATTN_BACKEND_CPU, mha_cpu),
    OP(ATTN_SWA, ATTN_BACKEND_CPU, swa_cpu),
    OP(ATTN_DMA, ATTN_BACKEND_CPU, dma_cpu),
    OP(ATTN_NSA, ATTN_BACKEND_CPU, nsa_cpu),
#ifdef DMABENCH_CUDA
    /* CUDA operators take device pointers */
    OP(ATTN_MHA, ATTN_BACKEND_CUDA, mha_cuda),
    OP(ATTN_SWA, ATTN_BACKEND_CUDA, swa_cuda),
    OP_SAVED(ATTN_DMA, ATTN_BACKEND_CUDA, dma_cuda),
    OP_SAVED(ATTN_NSA, ATTN_BACKEND_CUDA, nsa_cuda),
#endif
};

const attn_op *attn_registry_list(int *n) {
    *n = (int)(sizeof ops / sizeof *ops);
    return ops;
}

const attn_op *attn_registry_find(attn_variant v, attn_backend b) {
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (ops[i].variant == v && ops[i].backend == b) return &ops[i];
    return NULL;
}

double attn_op_flops(const attn_op *op, const attn_params *p, attn_mode m, int effective) {
    return effective ? attn_flops_effective(p, op->variant, m) : attn_flops_dense(p, m);
}

double attn_op_bytes(const attn_op *op, const attn_params *p, attn_mode m) {
    return attn_bytes(p, op->variant, m);
}
