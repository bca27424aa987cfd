/*
 * simd_isa.h: compiles the file named by SIMD_ISA_FILE three times, once per
 * instruction set (AVX-512, AVX2+FMA, baseline x86-64), with FN(name) giving each
 * copy's functions the suffix _avx512, _avx2 or _base. The includer picks a copy at
 * run time with cpu_attn_isa(). Include it where the copies should appear:
 *
 *   #define SIMD_ISA_FILE "cpu_attn_tile.inc"
 *   #include "simd_isa.h"
 */
#ifndef SIMD_ISA_FILE
#error "define SIMD_ISA_FILE before including simd_isa.h"
#endif

#define FN(x) x##_avx512
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi,bmi2")
#include SIMD_ISA_FILE
#pragma GCC pop_options
#undef FN

#define FN(x) x##_avx2
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
#include SIMD_ISA_FILE
#pragma GCC pop_options
#undef FN

#define FN(x) x##_base
#include SIMD_ISA_FILE
#undef FN

#undef SIMD_ISA_FILE
