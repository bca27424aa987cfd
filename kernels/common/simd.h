/*
 * simd.h: 16-lane float vectors for the CPU kernels, written once with GCC vector
 * extensions and compiled three times (AVX-512, AVX2+FMA, baseline SSE2) by the
 * engine (cpu_attn.c), which picks the best copy at run time on any x86-64 machine.
 *
 * Every helper is always_inline: a helper that is not inlined would be compiled for
 * the baseline target only and drag the fast clones down.
 */
#ifndef DMABENCH_SIMD_H
#define DMABENCH_SIMD_H

#include <math.h>
#include <stdint.h>

/* The 64-byte vector helpers are always inlined, so no value of these types ever
 * crosses a real call boundary: the ABI note GCC gives for them does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u32 __attribute__((vector_size(64)));
/* unaligned, aliasing access to 16 floats */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16iu __attribute__((vector_size(64), aligned(4), may_alias));

#define VL 16
#define SIMD_INLINE static inline __attribute__((always_inline))


SIMD_INLINE v16 vload(const float *p) { return *(const v16u *)p; }
SIMD_INLINE void vstore(float *p, v16 x) { *(v16u *)p = x; }
SIMD_INLINE v16 vset1(float x) { return (v16){0} + x; }
SIMD_INLINE v16i vload_i(const int32_t *p) { return *(const v16iu *)p; }

SIMD_INLINE v16 vselect(v16i m, v16 a, v16 b) { /* m ? a : b, m lanes all-ones or zero */
    return (v16)(((v16i)a & m) | ((v16i)b & ~m));
}
SIMD_INLINE v16 vmax(v16 a, v16 b) { return vselect(a > b, a, b); }
SIMD_INLINE v16 vzero_unless(v16i m, v16 a) { return (v16)((v16i)a & m); }

SIMD_INLINE float vhmax(v16 v) {
    v = vmax(v, __builtin_shuffle(v, (v16i){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7}));
    v = vmax(v, __builtin_shuffle(v, (v16i){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11}));
    v = vmax(v, __builtin_shuffle(v, (v16i){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13}));
    v = vmax(v, __builtin_shuffle(v, (v16i){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14}));
    return v[0];
}

SIMD_INLINE float vhsum(v16 v) {
    v += __builtin_shuffle(v, (v16i){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
    v += __builtin_shuffle(v, (v16i){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
    v += __builtin_shuffle(v, (v16i){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
    v += __builtin_shuffle(v, (v16i){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
    return v[0];
}

/* e^x for x in float range; relative error about 2e-7. x <= -87.3 gives ~1e-38,
 * callers zero masked lanes themselves. Range reduction to 2^n * 2^f, |f| <= 1/2,
 * and a degree-6 polynomial for 2^f. */
SIMD_INLINE v16 vexp(v16 x) {
    x = vmax(x, vset1(-87.33f));
    x = vselect(x < vset1(88.7f), x, vset1(88.7f));
    v16 t = x * 1.44269504088896341f;
    const v16 magic = vset1(12582912.0f); /* 1.5 * 2^23: rounds to nearest */
    v16 n = (t + magic) - magic;
    v16 f = t - n;
    v16 p = vset1(1.540353040e-4f);
    p = p * f + 1.333355815e-3f;
    p = p * f + 9.618129108e-3f;
    p = p * f + 5.550410866e-2f;
    p = p * f + 2.402265070e-1f;
    p = p * f + 6.931471806e-1f;
    p = p * f + 1.0f;
    v16i e = (__builtin_convertvector(n, v16i) + 127) << 23;
    return p * (v16)e;
}

#endif
