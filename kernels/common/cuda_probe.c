/*
 * cuda_probe.c: the CPU-only stand-in for cuda_probe.cu (built when CUDA is off).
 */
#include "cuda_probe.h"

int cuda_probe_is_rows(probe_op op) { return op == PROBE_ROWS_CP || op == PROBE_ROWS_TMA || op == PROBE_ROWS_TMA2; }

int cuda_probe_is_wg(probe_op op) { return op >= PROBE_WG_SS && op <= PROBE_WG_RS_SW; }

/* the products' N: keys for S, D (128) for P V */
static double probe_wg_n(probe_op op) { return op == PROBE_WG_SS64 ? 64.0 : 128.0; }

double cuda_probe_adds(const probe_cfg *cfg) {
    if (cuda_probe_is_wg(cfg->op)) return 64.0 * probe_wg_n(cfg->op);
    return cuda_probe_is_rows(cfg->op) ? 64.0 * 16.0 : 2.0 * cfg->ctas * cfg->iters * 64.0 * 128.0;
}

double cuda_probe_bytes(const probe_cfg *cfg) {
    if (cuda_probe_is_wg(cfg->op)) return 0.0;
    return cuda_probe_is_rows(cfg->op) ? 2.0 * cfg->ctas * cfg->iters * 64.0 * 256.0 : cuda_probe_adds(cfg) * 4.0;
}

double cuda_probe_flops(const probe_cfg *cfg) {
    /* two warpgroups a CTA, each 64 rows x N x K 128 a block */
    return cuda_probe_is_wg(cfg->op) ? 2.0 * cfg->ctas * cfg->iters * 2.0 * 64.0 * probe_wg_n(cfg->op) * 128.0 : 0.0;
}

#ifndef DMABENCH_CUDA
attn_status cuda_probe_run(const probe_cfg *cfg, int warmup, int repeats, double *ms, double *sum) {
    (void)cfg, (void)warmup, (void)repeats, (void)ms;
    *sum = 0;
    return ATTN_ERR_CUDA;
}
#endif
