/*
 * verify.h: one backend against the reference on fresh random inputs, forward and
 * backward, and the `dmabench verify` command that runs a grid of such checks.
 */
#ifndef DMABENCH_VERIFY_H
#define DMABENCH_VERIFY_H

#include <cjson/cJSON.h>

#include "attn.h"
#include "attn_case.h"
#include "registry.h"

typedef struct {
    int dma_wdt;      /* dma: z from w_dt (with b_dt when dma_bias) instead of given */
    int dma_bias;
    z_pattern zp;
    int padded;       /* give q/k/v/o non-contiguous strides */
    int backward;     /* also check the gradients */
    uint64_t seed;
} verify_opts;

typedef struct {
    attn_status status;     /* of the backend's forward/backward */
    char why[256];          /* unsupported or failed: one line */
    double fwd_abs, fwd_rel; /* max over o and lse */
    double bwd_abs, bwd_rel; /* max over every gradient */
    double tol;             /* relative tolerance applied */
    int pass;
    int forward_only;       /* the backend has no backward for this case: forward checked */
    cJSON *errors;          /* {"o": {"abs", "rel"}, "dq": ...} (owned by caller) */
} verify_result;

/* Relative tolerance for a backend at a dtype (see docs/verify.md). */
double verify_tolerance(attn_backend b, attn_dtype t);
/* The dtype's unit roundoff (2^-24 for f32). */
double verify_unit_roundoff(attn_dtype t);
/* A tensor's tolerance given the dtype's and the tensor's conditioning floor. */
double verify_tensor_tolerance(double tol, double floor);

/* Runs op at shape (dtype, settings from *shape) against the F64 reference.
 * Never fails hard: problems land in r->status / r->why. */
void verify_one(const attn_op *op, const attn_params *shape, const verify_opts *o, verify_result *r);

/* The `dmabench verify` command. */
#include "commands.h"

#endif
