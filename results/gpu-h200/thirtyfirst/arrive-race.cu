// arrive-race.cu: does compute-sanitizer's racecheck take bar.arrive / bar.sync on a
// named barrier as ordering? Warps 0-3 (consumers) write a shared buffer and arrive on
// barrier FULL; warps 4-7 (reducer) sync on FULL, read it, and arrive on FREE; the
// consumers sync on FREE before writing it again. The PTX barrier rules make this
// race-free (the pattern of rw1's reducer). Mode 1 replaces every arrive with a sync of
// the same barrier (all 256 threads block), mode 2 drops the FREE hand-off (a real race).
#include <cstdio>
#include <cstdlib>
__device__ __forceinline__ void nb_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void nb_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__global__ void k(float *out, int iters, int mode) {
    __shared__ float buf[128];
    const int t = threadIdx.x;
    float acc = 0.f;
    if (t < 128) {
        for (int i = 0; i < iters; i++) {
            if (i > 0 && mode != 2) nb_sync(2, 256); // FREE: the reducer has read the last one
            buf[t] = (float)(i + t);
            if (mode == 1) nb_sync(1, 256); else nb_arrive(1, 256); // FULL
        }
    } else {
        for (int i = 0; i < iters; i++) {
            nb_sync(1, 256);
            acc += buf[(t + 5) & 127];
            if (i + 1 < iters && mode != 2) { if (mode == 1) nb_sync(2, 256); else nb_arrive(2, 256); }
        }
        out[t - 128] = acc;
    }
}
int main(int argc, char **argv) {
    const int mode = argc > 1 ? atoi(argv[1]) : 0, iters = 64;
    float *d;
    cudaMalloc(&d, 128 * sizeof(float));
    k<<<1, 256>>>(d, iters, mode);
    float h[128];
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaError_t e = cudaGetLastError();
    double want = 0; // sum over i of (i + (t + 5) % 128) for t = 128: (t+5)&127 = 5
    for (int i = 0; i < iters; i++) want += i + 5;
    printf("mode %d: %s, out[0] %.0f (expected %.0f)\n", mode, cudaGetErrorString(e), h[0], want);
    return e != cudaSuccess;
}
