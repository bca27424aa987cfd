/*
 * slots.h: the named tensors of the operator interface, as data. One table says,
 * for every tensor a variant reads or writes, its name (the name used in
 * safetensors files and reports), which attn_params field holds it, its shape,
 * whether it takes the params dtype or the aux dtype, and its gradient's name.
 * The harness (attn, verify, kernels) and the tests walk this table instead of
 * naming tensors one by one.
 */
#ifndef DMABENCH_SLOTS_H
#define DMABENCH_SLOTS_H

#include "attn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SLOT_INPUT = 0, SLOT_OUTPUT, SLOT_GRAD } slot_kind;

typedef struct {
    const char *name;    /* "q", "o", "dq", ... */
    slot_kind kind;
    int aux;             /* 1: aux dtype (F32, or F64 with F64 params), contiguous */
    size_t off;          /* offsetof(attn_params, <pointer field>) */
    size_t stride_off;   /* offsetof(attn_params, <stride field>), or 0 when contiguous */
    int grad_of;         /* SLOT_GRAD: index of the input it differentiates, else -1 */
} attn_slot;

/* Every slot; *n receives the count. */
const attn_slot *attn_slot_table(int *n);
/* The slot of that name, or NULL. */
const attn_slot *attn_slot_find(const char *name);

/* 1 when the variant uses this slot under the params' settings (dma uses z or
 * w_dt/b_dt/a; nsa uses w_ck/w_cv/p_k/p_v only in linear mode). with_bias: dma's b_dt. */
int attn_slot_used(const attn_slot *s, attn_variant v, const attn_params *p, int dma_wdt, int with_bias);

/* Shape of the slot under p: returns the number of dims (<= 4) and fills dims. */
int attn_slot_shape(const attn_slot *s, const attn_params *p, attn_variant v, int64_t dims[4]);
int64_t attn_slot_numel(const attn_slot *s, const attn_params *p, attn_variant v);
attn_dtype attn_slot_dtype(const attn_slot *s, const attn_params *p);

/* The pointer field of p for the slot. */
static inline void **attn_slot_ptr(const attn_slot *s, attn_params *p) {
    return (void **)((char *)p + s->off);
}

#ifdef __cplusplus
}
#endif
#endif
