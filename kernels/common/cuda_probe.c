/*
 * cuda_probe.c: the CPU-only stand-in for cuda_probe.cu (built when CUDA is off).
 */
#include "cuda_probe.h"

double cuda_probe_adds(const probe_cfg *cfg) { return 2.0 * cfg->ctas * cfg->iters * 64.0 * 128.0; }

#ifndef DMABENCH_CUDA
attn_status cuda_probe_run(const probe_cfg *cfg, int warmup, int repeats, double *ms, double *sum) {
    (void)cfg, (void)warmup, (void)repeats, (void)ms;
    *sum = 0;
    return ATTN_ERR_CUDA;
}
#endif
