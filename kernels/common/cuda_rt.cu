/*
 * cuda_rt.cu: device memory with a high-water mark, copies, events, L2 flush.
 */
#include <atomic>
#include <cstdio>
#include <cstring>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <mutex>
#include <unordered_map>

#include "cuda_common.cuh"
#include "cuda_rt.h"

static char last_error[512];
static std::mutex mem_mu;
static std::unordered_map<void *, size_t> live;
static size_t cur_bytes, peak_bytes;

void dm_cuda_note_error(cudaError_t e, const char *what, const char *file, int line) {
    snprintf(last_error, sizeof last_error, "%s at %s:%d: %s", cudaGetErrorString(e), file, line, what);
}

extern "C" const char *dm_cuda_last_error(void) { return last_error; }

extern "C" attn_status dm_cuda_alloc(void **ptr, size_t bytes) {
    *ptr = nullptr;
    cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return ATTN_ERR_OOM;
    }
    CUDA_CHECK(e);
    std::lock_guard<std::mutex> g(mem_mu);
    live[*ptr] = bytes;
    cur_bytes += bytes;
    if (cur_bytes > peak_bytes) peak_bytes = cur_bytes;
    return ATTN_OK;
}

extern "C" void dm_cuda_free(void *ptr) {
    if (!ptr) return;
    {
        std::lock_guard<std::mutex> g(mem_mu);
        auto it = live.find(ptr);
        if (it != live.end()) {
            cur_bytes -= it->second;
            live.erase(it);
        }
    }
    cudaFree(ptr);
}

static dm_cuda_ws *ws_seen[64]; /* every workspace handed out, for release_all */
static int n_ws_seen;

extern "C" void dm_cuda_ws_release_all(void) {
    for (int i = 0; i < n_ws_seen; i++) {
        dm_cuda_free(ws_seen[i]->ptr);
        ws_seen[i]->ptr = nullptr;
        ws_seen[i]->bytes = 0;
    }
}

extern "C" attn_status dm_cuda_ws_get(dm_cuda_ws *w, size_t bytes, void **out, int *fresh) {
    if (fresh) *fresh = 0;
    {
        std::lock_guard<std::mutex> g(mem_mu);
        int known = 0;
        for (int i = 0; i < n_ws_seen && !known; i++) known = ws_seen[i] == w;
        if (!known && n_ws_seen < (int)(sizeof ws_seen / sizeof ws_seen[0])) ws_seen[n_ws_seen++] = w;
    }
    if (w->bytes < bytes) {
        dm_cuda_free(w->ptr);
        w->ptr = nullptr;
        w->bytes = 0;
        attn_status st = dm_cuda_alloc(&w->ptr, bytes);
        if (st != ATTN_OK) return st;
        w->bytes = bytes;
        if (fresh) *fresh = 1;
    }
    *out = w->ptr;
    return ATTN_OK;
}

extern "C" size_t dm_cuda_mem_current(void) { return cur_bytes; }
extern "C" size_t dm_cuda_mem_peak(void) { return peak_bytes; }
extern "C" void dm_cuda_mem_reset_peak(void) { peak_bytes = cur_bytes; }

extern "C" attn_status dm_cuda_smem_optin(size_t *bytes) {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    *bytes = (size_t)v;
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_num_sms(int *n) {
    static int nsm = 0;
    if (nsm <= 0) {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
        nsm = v > 0 ? v : 1;
    }
    *n = nsm;
    return ATTN_OK;
}

extern "C" void *dm_cuda_tmap_encoder(void) {
    static void *const fn = [] {
        void *f = nullptr;
#if CUDART_VERSION >= 12050
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess) {
            cudaGetLastError();
            f = nullptr;
        }
#endif
        return f;
    }();
    return fn;
}

extern "C" int dm_cuda_tmap_rows16(void *map, const void *base, int rank, const unsigned long long *dims,
                                   const unsigned long long *strides) {
    const auto enc = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(dm_cuda_tmap_encoder());
    if (!enc || rank < 1 || rank > 5) return -1;
    cuuint64_t d[5], st[4];
    cuuint32_t box[5], estr[5];
    for (int i = 0; i < rank; i++) {
        d[i] = dims[i];
        box[i] = i == 0 ? 64 : 1;
        estr[i] = 1;
        if (i > 0) st[i - 1] = strides[i - 1];
    }
    return enc(static_cast<CUtensorMap *>(map), CU_TENSOR_MAP_DATA_TYPE_UINT16, (cuuint32_t)rank, const_cast<void *>(base),
               d, st, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS
               ? 0
               : -1;
}

extern "C" int dm_cuda_tmap_kv(void *map, const void *base, long long sb, long long ss, long long sh, int B, int Nk,
                               int Hkv, int D) {
    const unsigned long long dims[4] = {(unsigned long long)D, (unsigned long long)Hkv, (unsigned long long)Nk,
                                        (unsigned long long)B};
    const unsigned long long strides[3] = {(unsigned long long)sh * 2, (unsigned long long)ss * 2,
                                           (unsigned long long)sb * 2};
    return dm_cuda_tmap_rows16(map, base, 4, dims, strides);
}

extern "C" attn_status dm_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_h2d(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return ATTN_OK;
}
extern "C" attn_status dm_cuda_d2h(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return ATTN_OK;
}
extern "C" attn_status dm_cuda_memset(void *dst, int value, size_t bytes) {
    CUDA_CHECK(cudaMemset(dst, value, bytes));
    return ATTN_OK;
}
extern "C" attn_status dm_cuda_sync(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_flush_l2(void) {
    static void *buf = nullptr;
    static size_t bytes = 0;
    if (!buf) {
        int dev = 0, l2 = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
        bytes = (size_t)(l2 > 0 ? l2 : 64 << 20) * 2;
        CUDA_CHECK(cudaMalloc(&buf, bytes));
    }
    CUDA_CHECK(cudaMemsetAsync(buf, 0, bytes));
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_time(attn_status (*fn)(void *), void *arg, double *ms) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    CUDA_CHECK(cudaEventRecord(a));
    attn_status st = fn(arg);
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    *ms = t;
    return st;
}

/* The spans' events: a pool handed out in turn, so that recording a span creates
 * nothing inside a timed call. A slot is reused after SPAN_POOL more spans, by when
 * its span has long been settled (attn_stats holds at most ATTN_STATS_SPANS). */
static constexpr int SPAN_POOL = 64;
static cudaEvent_t span_ev[SPAN_POOL][2];
static int span_next;

extern "C" attn_status dm_cuda_span_begin(attn_stats *s, int *slot) {
    *slot = -1;
    if (!s) return ATTN_OK;
    if (s->nspan >= ATTN_STATS_SPANS) {
        attn_status st = dm_cuda_stats_settle(s);
        if (st != ATTN_OK) return st;
    }
    const int i = span_next;
    if (!span_ev[i][0]) {
        CUDA_CHECK(cudaEventCreate(&span_ev[i][0]));
        CUDA_CHECK(cudaEventCreate(&span_ev[i][1]));
    }
    CUDA_CHECK(cudaEventRecord(span_ev[i][0]));
    span_next = (i + 1) % SPAN_POOL;
    *slot = i;
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_span_end(attn_stats *s, int slot) {
    if (!s || slot < 0 || slot >= SPAN_POOL) return ATTN_OK;
    CUDA_CHECK(cudaEventRecord(span_ev[slot][1]));
    if (s->nspan >= ATTN_STATS_SPANS) { /* spans begun together: room for this one */
        attn_status st = dm_cuda_stats_settle(s);
        if (st != ATTN_OK) return st;
    }
    s->span[s->nspan++] = slot;
    return ATTN_OK;
}

extern "C" attn_status dm_cuda_stats_settle(attn_stats *s) {
    if (!s) return ATTN_OK;
    for (int k = 0; k < s->nspan; k++) {
        const int i = s->span[k];
        CUDA_CHECK(cudaEventSynchronize(span_ev[i][1]));
        float ms = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, span_ev[i][0], span_ev[i][1]));
        s->select_ms += ms;
    }
    s->nspan = 0;
    return ATTN_OK;
}
