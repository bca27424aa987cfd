/*
 * registry.h: every {variant, backend} operator, listed once with function pointers,
 * so that the harness and the model never switch on variant names.
 */
#ifndef DMABENCH_REGISTRY_H
#define DMABENCH_REGISTRY_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    attn_variant variant;
    attn_backend backend;
    /* 1 when this operator can run p (forward, or backward too); else 0 and a
     * one-line reason. Never crashes on any params. */
    int (*supports)(const attn_params *p, int backward, char *why, size_t why_len);
    /* Writes o and lse (and z_out for dma). */
    attn_status (*forward)(const attn_params *p);
    /* Reads o and lse from the forward; writes dq, dk, dv and the variant's gradients. */
    attn_status (*backward)(const attn_params *p);
    /* Bytes of p->saved this operator fills in its forward and reads in its backward
     * at p's shape, or NULL when it keeps nothing. */
    size_t (*saved_bytes)(const attn_params *p);
} attn_op;

/* The operator for (variant, backend), or NULL when it is not built in. */
const attn_op *attn_registry_find(attn_variant v, attn_backend b);
/* All registered operators; *n receives the count. */
const attn_op *attn_registry_list(int *n);

/* Work counts through the registry entry (common to all backends of a variant). */
double attn_op_flops(const attn_op *op, const attn_params *p, attn_mode m, int effective);
double attn_op_bytes(const attn_op *op, const attn_params *p, attn_mode m);

#ifdef __cplusplus
}
#endif
#endif
