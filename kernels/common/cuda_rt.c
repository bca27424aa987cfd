/*
 * cuda_rt.c: the CPU-only stand-in for cuda_rt.cu: every call reports that CUDA is
 * not built in.
 */
#include "cuda_rt.h"

#ifndef DMABENCH_CUDA
attn_status dm_cuda_alloc(void **ptr, size_t bytes) {
    (void)bytes;
    *ptr = 0;
    return ATTN_ERR_UNSUPPORTED;
}
void dm_cuda_free(void *ptr) { (void)ptr; }
attn_status dm_cuda_ws_get(dm_cuda_ws *w, size_t bytes, void **out, int *fresh) {
    (void)w, (void)bytes;
    *out = NULL;
    if (fresh) *fresh = 0;
    return ATTN_ERR_UNSUPPORTED;
}
void dm_cuda_ws_release_all(void) {}
size_t dm_cuda_mem_current(void) { return 0; }
size_t dm_cuda_mem_peak(void) { return 0; }
void dm_cuda_mem_reset_peak(void) {}
attn_status dm_cuda_smem_optin(size_t *bytes) {
    *bytes = 0;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_num_sms(int *n) {
    *n = 0;
    return ATTN_ERR_UNSUPPORTED;
}
void *dm_cuda_tmap_encoder(void) { return NULL; }
attn_status dm_cuda_mem_info(size_t *f, size_t *t) {
    *f = *t = 0;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_h2d(void *d, const void *s, size_t n) {
    (void)d, (void)s, (void)n;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_d2h(void *d, const void *s, size_t n) {
    (void)d, (void)s, (void)n;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_memset(void *d, int v, size_t n) {
    (void)d, (void)v, (void)n;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_sync(void) { return ATTN_ERR_UNSUPPORTED; }
attn_status dm_cuda_flush_l2(void) { return ATTN_ERR_UNSUPPORTED; }
attn_status dm_cuda_time(attn_status (*fn)(void *), void *arg, double *ms) {
    (void)fn, (void)arg;
    *ms = 0;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_span_begin(attn_stats *s, int *slot) {
    (void)s;
    *slot = -1;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_span_end(attn_stats *s, int slot) {
    (void)s, (void)slot;
    return ATTN_ERR_UNSUPPORTED;
}
attn_status dm_cuda_stats_settle(attn_stats *s) {
    (void)s;
    return ATTN_OK; /* nothing can be pending without CUDA */
}
const char *dm_cuda_last_error(void) { return "CUDA is not built into this binary"; }
#else
typedef int cuda_rt_c_unused; /* the CUDA build uses cuda_rt.cu */
#endif
