/*
 * attn_case.h: one operator problem with all its buffers: the params of a variant
 * at a shape, every tensor the variant uses (inputs, outputs, gradients) allocated
 * and wired into the params, filled with seeded random inputs. Used by verify,
 * kernels, attn and the tests.
 */
#ifndef DMABENCH_ATTN_CASE_H
#define DMABENCH_ATTN_CASE_H

#include <stdint.h>

#include "attn.h"
#include "slots.h"

typedef enum {
    Z_RANDOM = 0,   /* z i.i.d. normal: the selected keys are scattered */
    Z_CLUSTERED,    /* z high on a few contiguous runs of keys: selection is clustered */
    Z_RISING,       /* z grows with the key index: every query keeps its latest keys */
} z_pattern;

typedef struct {
    attn_params p;          /* shape, settings and pointers into buf */
    attn_variant variant;
    int dma_wdt;            /* dma: z computed from w_dt/b_dt/a instead of given */
    int with_bias;          /* dma: b_dt present */
    int backward;           /* gradient buffers allocated */
    void *buf[32];          /* owned buffers, indexed like attn_slot_table */
    void *saved;            /* device mirrors: the operator's saved area (p.saved), owned */
} attn_case;

/* Allocates every tensor the variant uses at the shape and settings in *shape
 * (pointers in *shape are ignored). Outputs and gradients are filled with NaN so
 * that unwritten elements show. */
attn_status attn_case_alloc(attn_case *c, attn_variant v, const attn_params *shape, int dma_wdt,
                            int with_bias, int backward);
void attn_case_free(attn_case *c);

/* Fills the inputs with seeded random values (see attn_case.c for distributions). */
void attn_case_fill(attn_case *c, uint64_t seed, z_pattern zp);

/* Multiplies every input element by (1 + u r), r uniform in [-1, 1], seeded. */
void attn_case_perturb(attn_case *c, uint64_t seed, double u);

/* Copies every input of src into dst (same variant and shape, any dtypes),
 * converting element by element. */
void attn_case_copy_inputs(attn_case *dst, const attn_case *src);

/* A device mirror of c (CUDA operators take device pointers): d gets a device
 * buffer for every buffer of c, inputs and poisoned outputs copied over, and d->p
 * pointing there. attn_case_from_device copies outputs and gradients back. */
attn_status attn_case_to_device(const attn_case *c, attn_case *d);
attn_status attn_case_from_device(attn_case *c, const attn_case *d);
void attn_case_free_device(attn_case *d);
/* Gives a device mirror a saved area of the given bytes (attn_params.saved: what an
 * operator's forward keeps for its backward; op->saved_bytes). 0 bytes: none. */
attn_status attn_case_saved_device(attn_case *d, size_t bytes);

/* Reads element e of a slot's tensor (logical row-major index over its shape). */
double attn_case_get(const attn_case *c, const attn_slot *s, int64_t e);
void attn_case_set(attn_case *c, const attn_slot *s, int64_t e, double x);

/* max |x| over a slot's tensor. */
double attn_case_maxabs(const attn_case *c, const attn_slot *s);

/* Compares one slot of a against the same slot of ref (any dtypes):
 * max |a - r| and that over max |r| (relative to the tensor's scale). Non-finite in
 * a where ref is finite, or a sign mismatch of infinities, gives +inf errors. */
void attn_case_compare(const attn_case *a, const attn_case *ref, const attn_slot *s, double *max_abs,
                       double *max_rel);

#endif
