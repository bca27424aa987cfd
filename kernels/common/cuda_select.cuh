/*
 * cuda_select.cuh: the rank-th largest of a set of distinct 64-bit keys, by one
 * block: a radix select over 8-bit digits from the top, with a 256-bin histogram
 * in shared memory. (11-bit digits, with a scan over the block, measured slower on
 * the H200: fewer passes, but more barriers in each.) Used by dma's plan (thresholds of query tiles) and by dma's decode
 * (the top w of the keys' scores).
 *
 * The keys come from the caller through `each`: each(f) calls f(key, valid) once
 * for every key the calling thread holds, and every lane of a warp makes the same
 * number of calls (pad with valid = false), since the histogram's lanes that fall
 * in the same bin add once, through a leader (__match_any_sync): keys that agree in
 * their high bits (nearby floats) would otherwise serialise on one shared atomic.
 *
 * The select stops at the first digit whose bin (the one holding the rank-th
 * largest) is taken whole; then exactly the `rank` largest keys are those with
 * (key & mask) >= prefix (sel_kept). Where a few more will do (a threshold from a
 * sample), it can stop earlier.
 */
#pragma once

namespace dm {

struct SelCut {
    unsigned long long prefix, mask;
};

__device__ __forceinline__ bool sel_kept(unsigned long long key, const SelCut &c) {
    return (key & c.mask) >= c.prefix;
}

/* After a 256-bin histogram: the bin (from the top) that holds the rank-th
 * largest, by warp 0 (lane l sums bins 255 - 8l .. 248 - 8l, then a scan; one
 * barrier, where a scan over the block takes three). sred: 3 shared words; on
 * return sred = {bin, rank left within it, keys in it}. Every thread calls it. */
__device__ __forceinline__ void sel_digit_scan(const unsigned int *hist, unsigned int rank, unsigned int *sred) {
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        unsigned int c8 = 0;
#pragma unroll
        for (int q = 0; q < 8; q++) c8 += hist[255 - 8 * lane - q];
        unsigned int x = c8;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned int y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        const unsigned int excl = x - c8;
        if (excl < rank && rank <= x) {
            unsigned int cum = excl;
            for (int q = 0; q < 8; q++) {
                const int d = 255 - 8 * lane - q;
                if (cum + hist[d] >= rank) {
                    sred[0] = (unsigned int)d, sred[1] = rank - cum, sred[2] = hist[d];
                    break;
                }
                cum += hist[d];
            }
        }
    }
    __syncthreads();
}

/* The cut that keeps the rank largest (1 <= rank <= the number of valid keys) of
 * the keys `each` yields, or with slack > 0 up to rank + slack of them (it stops
 * at the first digit whose bin holding the rank-th largest has at most rank left +
 * slack keys); from, when given, is a cut of whole top bytes that all the valid
 * keys pass, and the select starts below it. MATCH: lanes of a warp in the same bin add once, for keys that
 * agree in their high bits; without it every lane adds, for keys that spread.
 * Every thread of the block calls it; hist (256 words) and sred (3) are in shared
 * memory. */
template <bool MATCH, typename Each>
__device__ SelCut block_radix_select(Each each, unsigned int rank, unsigned int *hist, unsigned int *sred,
                                     unsigned int slack = 0, SelCut from = {0ULL, 0ULL}) {
    /* from: a prefix of whole top bytes that every valid key shares (the caller
     * knows it), whose passes would each find all the keys in one bin */
    SelCut c = from;
    for (int digit = 7 - __popcll(from.mask) / 8; digit >= 0; digit--) {
        const int shift = 8 * digit;
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        each([&](unsigned long long key, bool valid) {
            const bool in = valid && (key & c.mask) == c.prefix;
            const unsigned int bin = in ? (unsigned int)(key >> shift) & 255u : 256u;
            if (MATCH) {
                const unsigned int peers = __match_any_sync(0xffffffffu, bin);
                if (in && (int)(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], (unsigned int)__popc(peers));
            } else if (in) {
                atomicAdd(&hist[bin], 1u);
            }
        });
        __syncthreads();
        sel_digit_scan(hist, rank, sred);
        c.prefix |= (unsigned long long)sred[0] << shift;
        c.mask |= 255ULL << shift;
        rank = sred[1];
        const unsigned int cnt = sred[2];
        __syncthreads(); /* sred is read before the next digit writes it */
        if (cnt - rank <= slack) break;
    }
    return c;
}

/* The smallest key the cut keeps: the rank-th largest itself. smin is one shared
 * word. Every thread of the block calls it. */
template <typename Each>
__device__ unsigned long long sel_cut_key(Each each, const SelCut &c, unsigned long long *smin) {
    if (threadIdx.x == 0) *smin = ~0ULL;
    __syncthreads();
    unsigned long long m = ~0ULL;
    each([&](unsigned long long key, bool valid) {
        if (valid && sel_kept(key, c) && key < m) m = key;
    });
    if (m != ~0ULL) atomicMin(smin, m);
    __syncthreads();
    const unsigned long long k = *smin;
    __syncthreads();
    return k;
}

} // namespace dm
