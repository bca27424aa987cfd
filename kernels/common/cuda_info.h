/*
 * cuda_info.h: what the provenance block says about CUDA. Built with CUDA, it
 * asks the runtime; built without, cuda_query reports that no GPU is usable.
 */
#ifndef DMABENCH_CUDA_INFO_H
#define DMABENCH_CUDA_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[256];
    char cc[16];          /* compute capability, "9.0" */
    int sm_count;
    size_t mem_bytes;
    int clock_mhz;        /* peak SM clock */
    int mem_clock_mhz;    /* peak memory clock */
    char runtime[32];     /* CUDA runtime version, "13.0" */
    char driver[32];      /* highest CUDA version the driver supports */
} cuda_info;

/* 1 when this binary was built with CUDA. */
int cuda_built(void);
/* Fills out for device 0; returns 0, or -1 when not built with CUDA or no GPU. */
int cuda_query(cuda_info *out);

#ifdef __cplusplus
}
#endif
#endif
