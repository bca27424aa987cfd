/*
 * cuda_info.cu: device and version facts for the provenance block.
 */
#include <cstdio>
#include <cstring>

#include <cuda_runtime.h>

#include "cuda_info.h"

extern "C" int cuda_built(void) { return 1; }

extern "C" int cuda_query(cuda_info *out) {
    memset(out, 0, sizeof *out);
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return -1;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return -1;
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    snprintf(out->cc, sizeof out->cc, "%d.%d", prop.major, prop.minor);
    out->sm_count = prop.multiProcessorCount;
    out->mem_bytes = prop.totalGlobalMem;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0) == cudaSuccess) out->clock_mhz = khz / 1000;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess) out->mem_clock_mhz = khz / 1000;
    int v = 0;
    if (cudaRuntimeGetVersion(&v) == cudaSuccess) snprintf(out->runtime, sizeof out->runtime, "%d.%d", v / 1000, (v % 1000) / 10);
    if (cudaDriverGetVersion(&v) == cudaSuccess) snprintf(out->driver, sizeof out->driver, "%d.%d", v / 1000, (v % 1000) / 10);
    return 0;
}
