/*
 * simd_isa.h: compiles the file named by SIMD_ISA_FILE three times, once per
 * instruction set (AVX-512, AVX2+FMA, baseline x86-64), with FN(name) giving each
 * copy's functions the suffix _avx512, _avx2 or _base and the vectors of simd.h at
 * the copy's native width (VL = 16, 8 and 4 floats). The includer picks a copy at
 * run time with cpu_attn_isa(). Include it where the copies should appear:
 *
 *   #define SIMD_ISA_FILE "cpu_attn_tile.inc"
 *   #include "simd_isa.h"
 */
#ifndef SIMD_ISA_FILE
#error "define SIMD_ISA_FILE before including simd_isa.h"
#endif

#define FN(x) x##_avx512
#define VL 16
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi,bmi2")
#include "simd.h"
#include SIMD_ISA_FILE
#define SIMD_UNDEF
#include "simd.h"
#undef SIMD_UNDEF
#pragma GCC pop_options
#undef VL
#undef FN

#define FN(x) x##_avx2
#define VL 8
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
#include "simd.h"
#include SIMD_ISA_FILE
#define SIMD_UNDEF
#include "simd.h"
#undef SIMD_UNDEF
#pragma GCC pop_options
#undef VL
#undef FN

#define FN(x) x##_base
#define VL 4
#include "simd.h"
#include SIMD_ISA_FILE
#define SIMD_UNDEF
#include "simd.h"
#undef SIMD_UNDEF
#undef VL
#undef FN

#undef SIMD_ISA_FILE
