/*
 * cuda_info.c: the CPU-only stand-in for cuda_info.cu (built when CUDA is off).
 */
#include "cuda_info.h"

#include <string.h>

#ifndef DMABENCH_CUDA
int cuda_built(void) { return 0; }
int cuda_query(cuda_info *out) {
    memset(out, 0, sizeof *out);
    return -1;
}
#else
typedef int cuda_info_c_unused; /* the CUDA build uses cuda_info.cu */
#endif
