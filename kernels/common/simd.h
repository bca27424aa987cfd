/*
 * simd.h: float vectors for the CPU kernels, written once with GCC vector extensions
 * and compiled once per instruction set. simd_isa.h includes this file before each
 * copy of the hot loops, with VL (lanes per vector) and FN() (the copy's suffix)
 * defined and the copy's "#pragma GCC target" in force:
 *
 *   AVX-512      VL 16  (512-bit zmm, 32 registers)
 *   AVX2 + FMA   VL 8   (256-bit ymm, 16 registers)
 *   baseline     VL 4   (128-bit SSE2 xmm, 16 registers, no FMA)
 *
 * so that no vector is wider than the target's registers: a 64-byte vector under
 * AVX2 or SSE2 is lowered through the stack (every broadcast 16 scalar stores,
 * every accumulator in memory), some 50x slower.
 *
 * The types and helpers of a copy carry FN()'s suffix; the short names below (vf,
 * vload, ...) are macros for the current copy's, removed again after it (simd_isa.h
 * includes this file a second time with SIMD_UNDEF defined). Every helper is
 * always_inline: a helper that is not inlined would be compiled for the baseline
 * target only and drag the fast copies down.
 *
 * Register blocks: the hot loops hold a block of 4 rows x VB vectors of
 * accumulators, VB = 4 with 32 registers (AVX-512: 16 accumulators) and 2 with 16
 * (8 accumulators, room for the operands). The ACCV/LOADV/... macros spell such a
 * row of VB vectors out as named variables (GCC 12 keeps arrays of vectors in
 * memory: a load and a store around every FMA).
 */
#ifndef SIMD_UNDEF

#ifndef DMABENCH_SIMD_H
#define DMABENCH_SIMD_H
#include <math.h>
#include <stdint.h>

/* The vector helpers are always inlined, so no vector ever crosses a real call
 * boundary: the ABI note GCC gives for them does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define SIMD_INLINE static inline __attribute__((always_inline))
/* before a loop over the few vectors of a chunk row: GCC 12 -O2 leaves even a
 * two-trip loop rolled, with its values in memory */
#define SIMD_UNROLL _Pragma("GCC unroll 8")
#endif

#if !defined(VL) || !defined(FN)
#error "simd.h is included by simd_isa.h, with VL and FN defined"
#endif
#if VL != 16 && VL != 8 && VL != 4
#error "VL must be 16, 8 or 4"
#endif

#define vf FN(vf)
#define vi FN(vi)
#define vu FN(vu)
#define vf_un FN(vf_un)
#define vi_un FN(vi_un)
#define vload FN(vload)
#define vstore FN(vstore)
#define vset1 FN(vset1)
#define vload_i FN(vload_i)
#define viota FN(viota)
#define vselect FN(vselect)
#define vmax FN(vmax)
#define vzero_unless FN(vzero_unless)
#define vhmax FN(vhmax)
#define vhsum FN(vhsum)
#define vexp FN(vexp)
#define vany FN(vany)

typedef float vf __attribute__((vector_size(4 * VL)));
typedef int32_t vi __attribute__((vector_size(4 * VL)));
typedef uint32_t vu __attribute__((vector_size(4 * VL)));
/* unaligned, aliasing access to VL floats or ints */
typedef float vf_un __attribute__((vector_size(4 * VL), aligned(4), may_alias));
typedef int32_t vi_un __attribute__((vector_size(4 * VL), aligned(4), may_alias));

SIMD_INLINE vf vload(const float *p) { return *(const vf_un *)p; }
SIMD_INLINE void vstore(float *p, vf x) { *(vf_un *)p = x; }
SIMD_INLINE vf vset1(float x) { return (vf){0} + x; }
SIMD_INLINE vi vload_i(const int32_t *p) { return *(const vi_un *)p; }

/* 0, 1, ..., VL - 1 */
SIMD_INLINE vi viota(void) {
#if VL == 16
    return (vi){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#elif VL == 8
    return (vi){0, 1, 2, 3, 4, 5, 6, 7};
#else
    return (vi){0, 1, 2, 3};
#endif
}

SIMD_INLINE vf vselect(vi m, vf a, vf b) { /* m ? a : b, m lanes all-ones or zero */
    return (vf)(((vi)a & m) | ((vi)b & ~m));
}
SIMD_INLINE vf vmax(vf a, vf b) { return vselect(a > b, a, b); }
SIMD_INLINE vf vzero_unless(vi m, vf a) { return (vf)((vi)a & m); }

/* Horizontal max and sum: halves folded onto each other, widest first. */
#if VL == 16
#define SIMD_FOLD(v, op)                                                                                  \
    (v = op(v, __builtin_shuffle(v, (vi){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7})),         \
     v = op(v, __builtin_shuffle(v, (vi){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11})),         \
     v = op(v, __builtin_shuffle(v, (vi){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13})),         \
     v = op(v, __builtin_shuffle(v, (vi){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14})))
#elif VL == 8
#define SIMD_FOLD(v, op)                                                  \
    (v = op(v, __builtin_shuffle(v, (vi){4, 5, 6, 7, 0, 1, 2, 3})),      \
     v = op(v, __builtin_shuffle(v, (vi){2, 3, 0, 1, 6, 7, 4, 5})),      \
     v = op(v, __builtin_shuffle(v, (vi){1, 0, 3, 2, 5, 4, 7, 6})))
#else
#define SIMD_FOLD(v, op)                                        \
    (v = op(v, __builtin_shuffle(v, (vi){2, 3, 0, 1})),        \
     v = op(v, __builtin_shuffle(v, (vi){1, 0, 3, 2})))
#endif
#define SIMD_ADD(a, b) ((a) + (b))
#define SIMD_OR(a, b) ((a) | (b))

SIMD_INLINE float vhmax(vf v) {
    SIMD_FOLD(v, vmax);
    return v[0];
}

SIMD_INLINE float vhsum(vf v) {
    SIMD_FOLD(v, SIMD_ADD);
    return v[0];
}

/* whether any lane of m is non-zero */
SIMD_INLINE int vany(vi m) {
    SIMD_FOLD(m, SIMD_OR);
    return m[0] != 0;
}

/* e^x for x in float range; relative error about 2e-7. x <= -87.3 gives ~1e-38,
 * callers zero masked lanes themselves. Range reduction to 2^n * 2^f, |f| <= 1/2,
 * and a degree-6 polynomial for 2^f. */
SIMD_INLINE vf vexp(vf x) {
    x = vmax(x, vset1(-87.33f));
    x = vselect(x < vset1(88.7f), x, vset1(88.7f));
    vf t = x * 1.44269504088896341f;
    const vf magic = vset1(12582912.0f); /* 1.5 * 2^23: rounds to nearest */
    vf n = (t + magic) - magic;
    vf f = t - n;
    vf p = vset1(1.540353040e-4f);
    p = p * f + 1.333355815e-3f;
    p = p * f + 9.618129108e-3f;
    p = p * f + 5.550410866e-2f;
    p = p * f + 2.402265070e-1f;
    p = p * f + 6.931471806e-1f;
    p = p * f + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

/* A row of a register block: VB vectors, VB * VL floats, as named variables
 * p0 .. p{VB-1}. ACCV declares, ZEROV clears, LOADV/STOREV move VB * VL floats
 * from/to ptr, FMAV adds s * x, SCALEV multiplies by s. */
#if VL == 16
#define VB 4
#define ACCV(p) vf p##0, p##1, p##2, p##3
#define ZEROV(p) (p##0 = p##1 = p##2 = p##3 = (vf){0})
#define LOADV(p, ptr) \
    (p##0 = vload(ptr), p##1 = vload((ptr) + VL), p##2 = vload((ptr) + 2 * VL), p##3 = vload((ptr) + 3 * VL))
#define STOREV(ptr, p) \
    (vstore(ptr, p##0), vstore((ptr) + VL, p##1), vstore((ptr) + 2 * VL, p##2), vstore((ptr) + 3 * VL, p##3))
#define FMAV(p, s, x) (p##0 += (s) * x##0, p##1 += (s) * x##1, p##2 += (s) * x##2, p##3 += (s) * x##3)
#define SCALEV(p, s) (p##0 *= (s), p##1 *= (s), p##2 *= (s), p##3 *= (s))
#else
#define VB 2
#define ACCV(p) vf p##0, p##1
#define ZEROV(p) (p##0 = p##1 = (vf){0})
#define LOADV(p, ptr) (p##0 = vload(ptr), p##1 = vload((ptr) + VL))
#define STOREV(ptr, p) (vstore(ptr, p##0), vstore((ptr) + VL, p##1))
#define FMAV(p, s, x) (p##0 += (s) * x##0, p##1 += (s) * x##1)
#define SCALEV(p, s) (p##0 *= (s), p##1 *= (s))
#endif

#else /* SIMD_UNDEF: the end of a copy */

#undef vf
#undef vi
#undef vu
#undef vf_un
#undef vi_un
#undef vload
#undef vstore
#undef vset1
#undef vload_i
#undef viota
#undef vselect
#undef vmax
#undef vzero_unless
#undef vhmax
#undef vhsum
#undef vexp
#undef vany
#undef SIMD_FOLD
#undef SIMD_ADD
#undef SIMD_OR
#undef VB
#undef ACCV
#undef ZEROV
#undef LOADV
#undef STOREV
#undef FMAV
#undef SCALEV

#endif
