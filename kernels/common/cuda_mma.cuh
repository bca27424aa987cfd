/*
 * cuda_mma.cuh: the tensor-core and memory primitives the CUDA attention kernels
 * share (forward engine, backward, decode): mma.sync m16n8k16 for bf16/f16,
 * ldmatrix, cp.async, the XOR-swizzled shared-memory layout, ex2 on the SFU.
 */
#ifndef DMABENCH_CUDA_MMA_CUH
#define DMABENCH_CUDA_MMA_CUH

#include <climits>

#include "cuda_common.cuh"

namespace dm {

constexpr float LOG2E = 1.4426950408889634f;

template <typename T> struct pack2;
template <> struct pack2<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t from(float a, float b) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ float2 to(uint32_t x) {
        return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&x));
    }
};
template <> struct pack2<__half> {
    static __device__ __forceinline__ uint32_t from(float a, float b) {
        __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ float2 to(uint32_t x) { return __half22float2(*reinterpret_cast<const __half2 *>(&x)); }
};

template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 2^x on the special-function unit; exp2(-inf) = 0 */
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* the same from a shared-memory byte address (a base plus an immediate offset) */
__device__ __forceinline__ void ldsm_x4_at(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t_at(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* 16-byte global -> shared copy; zero-fills when !ok. */
__device__ __forceinline__ void cp16(void *dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
/* The same copying only the first n (0 to 16) bytes of src, the rest zero-filled. */
__device__ __forceinline__ void cp16n(void *dst, const void *src, int n) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Element offset of chunk c (8 elements) of row r in a swizzled [rows][D] tile: the
 * chunk index XORed with the row's low bits (3 bits when a row holds 8 or more
 * chunks, fewer for D = 16 and 32, which then see 2- to 4-way bank conflicts). */
template <int D> __device__ __forceinline__ int swz(int r, int c) {
    constexpr int CH = D / 8;
    constexpr int M = CH < 8 ? CH - 1 : 7;
    return r * D + ((c ^ (r & M)) << 3);
}

/* Element offset of chunk c (8 elements along K) of row r in a K-major tile (the layout wgmma reads, cuda_wgmma.cuh) whose
 * rows hold KE elements, laid out as 8 x 16-byte core matrices: row blocks of 8
 * outer, K chunks inner, 64 elements per core matrix. */
template <int KE> __host__ __device__ __forceinline__ int cm_off(int r, int c) { return ((r >> 3) * (KE / 8) + c) * 64 + (r & 7) * 8; }

/* Element offset of element c of row r in a tile of R rows of 16-bit elements in the
 * 128-byte swizzle (what gmma_desc_sw128 reads and a tensor map's 64 x 1 boxes
 * write; the tile 1024-byte aligned): 64-column halves of R rows x 128 bytes, the
 * 16-byte chunk q of row r at (q ^ r % 8) 16 bytes into the row. */
template <int R> __host__ __device__ __forceinline__ int sw128_off(int r, int c) {
    return (c / 64) * R * 64 + r * 64 + ((((c % 64) >> 3) ^ (r & 7)) << 3) + (c & 7);
}

/* Shared-memory byte addresses of the first N (at most 4) k-steps of an ldmatrix
 * operand in a swizzled [rows][D] tile at base: the lane points at row r, chunk
 * c0 + 2 i + h of step i (h 0 or 1, the lane's half). Every row a lane visits over
 * the m / n tiles and k-steps has the same low bits, so step kk is at
 * addr[kk % 4] + (kk / 4) 128 bytes and the tiles are rows apart: immediates. With
 * c0 > 0, N 2 i + h stays below 8 and c0 is a multiple of 8 or the rows' swizzle
 * mask is 7. */
template <int D, int N, typename T>
__device__ __forceinline__ void ldsm_addrs(uint32_t (&addr)[4], const T *base, int r, int h, int c0) {
    constexpr int NN = N < 4 ? N : 4;
#pragma unroll
    for (int i = 0; i < 4; i++) addr[i] = 0;
#pragma unroll
    for (int i = 0; i < NN; i++) addr[i] = smem_addr(base + swz<D>(r, c0 + 2 * i + h));
}

/* fp32 reduction into global memory: a pair of adjacent floats (8-byte aligned).
 * One vector red on sm_90, two scalar ones before. */
__device__ __forceinline__ void red_add2(float *p, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
/* four adjacent floats (16-byte aligned): one vector red on sm_90, four before */
__device__ __forceinline__ void red_add4(float *p, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
#else
    atomicAdd(p, v.x);
    atomicAdd(p + 1, v.y);
    atomicAdd(p + 2, v.z);
    atomicAdd(p + 3, v.w);
#endif
}

template <typename T> __device__ __forceinline__ float to_f32(T x);
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float to_f32<__half>(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

/* 8 elements (16 bytes) to fp32 */
template <typename T> __device__ __forceinline__ void cvt8(const uint4 &r, float f[8]);
template <> __device__ __forceinline__ void cvt8<__nv_bfloat16>(const uint4 &r, float f[8]) {
    const unsigned int w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
template <> __device__ __forceinline__ void cvt8<__half>(const uint4 &r, float f[8]) {
    const unsigned int w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __half2float(__ushort_as_half((unsigned short)(w[i] & 0xffffu)));
        f[2 * i + 1] = __half2float(__ushort_as_half((unsigned short)(w[i] >> 16)));
    }
}

/* 8 consecutive elements from a 16-byte aligned address, to fp32 (read-only path) */
template <typename T> __device__ __forceinline__ void ld8f(const T *p, float f[8]) {
    cvt8<T>(__ldg(reinterpret_cast<const uint4 *>(p)), f);
}

/* 8 consecutive elements of any of the three dtypes, as fp32, from and to an
 * address aligned to 8 elements (16 bytes for the 16-bit types, two 16-byte
 * accesses for fp32); the 16-bit stores round to nearest, as from_f32. */
template <typename T> __device__ __forceinline__ void ld8_any(const T *p, float f[8]) {
    cvt8<T>(*reinterpret_cast<const uint4 *>(p), f);
}
template <> __device__ __forceinline__ void ld8_any<float>(const float *p, float f[8]) {
    const float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
template <typename T> __device__ __forceinline__ void st8_any(T *p, const float f[8]);
template <> __device__ __forceinline__ void st8_any<float>(float *p, const float f[8]) {
    reinterpret_cast<float4 *>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
    reinterpret_cast<float4 *>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
}
/* the 16-bit types: pairs rounded to nearest (T2 = __nv_bfloat162 or __half2) */
template <typename T2, typename Pack> __device__ __forceinline__ void st8_pairs(void *p, const float f[8], Pack pack) {
    uint4 r;
    unsigned int *w = reinterpret_cast<unsigned int *>(&r);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const T2 h = pack(f[2 * i], f[2 * i + 1]);
        w[i] = *reinterpret_cast<const unsigned int *>(&h);
    }
    *reinterpret_cast<uint4 *>(p) = r;
}
template <> __device__ __forceinline__ void st8_any<__nv_bfloat16>(__nv_bfloat16 *p, const float f[8]) {
    st8_pairs<__nv_bfloat162>(p, f, [](float a, float b) { return __floats2bfloat162_rn(a, b); });
}
template <> __device__ __forceinline__ void st8_any<__half>(__half *p, const float f[8]) {
    st8_pairs<__half2>(p, f, [](float a, float b) { return __floats2half2_rn(a, b); });
}

/* Whether a (B, N, H, D) tensor at p with strides st can be read 8 elements at a
 * time: D and the strides multiples of 8, p 16-byte aligned. */
static inline bool dm_vec8(const void *p, const attn_stride &st, int D) {
    return D % 8 == 0 && st.b % 8 == 0 && st.s % 8 == 0 && st.h % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/* dst[b, n, h, :] = src[b, n, h, :] for (B, N, H, D) tensors with their own
 * strides; V = 8: a thread takes 8 consecutive elements (dm_vec8 of both). */
template <typename Ti, typename To, int V>
__global__ void convert_kernel(const Ti *src, long long sb, long long ss, long long sh, To *dst, long long db,
                               long long ds, long long dh, int B, int N, int H, int D) {
    const long long e = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * V;
    const long long n = (long long)B * N * H * D;
    if (e >= n) return;
    const int d = (int)(e % D), h = (int)((e / D) % H), i = (int)((e / ((long long)D * H)) % N);
    const int b = (int)(e / ((long long)D * H * N));
    const Ti *sp = src + b * sb + (long long)i * ss + h * sh + d;
    To *dp = dst + b * db + (long long)i * ds + h * dh + d;
    if constexpr (V == 8) {
        float f[8];
        ld8_any<Ti>(sp, f);
        st8_any<To>(dp, f);
    } else {
        *dp = static_cast<To>(static_cast<float>(*sp));
    }
}

template <typename Ti, typename To>
attn_status convert(const void *src, const attn_stride &s, void *dst, const attn_stride &d, int B, int N, int H, int D) {
    const long long n = (long long)B * N * H * D;
    if (n == 0) return ATTN_OK;
    if (dm_vec8(src, s, D) && dm_vec8(dst, d, D))
        convert_kernel<Ti, To, 8><<<(unsigned)((n / 8 + 255) / 256), 256>>>(
            static_cast<const Ti *>(src), s.b, s.s, s.h, static_cast<To *>(dst), d.b, d.s, d.h, B, N, H, D);
    else
        convert_kernel<Ti, To, 1><<<(unsigned)((n + 255) / 256), 256>>>(
            static_cast<const Ti *>(src), s.b, s.s, s.h, static_cast<To *>(dst), d.b, d.s, d.h, B, N, H, D);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* acc[e] += src[e] for n contiguous elements, src in T. */
template <typename T> __global__ void acc_kernel(const T *src, float *acc, long long n) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e < n) acc[e] += static_cast<float>(src[e]);
}

template <typename T> attn_status acc_into(const void *src, float *acc, long long n) {
    if (n == 0) return ATTN_OK;
    acc_kernel<T><<<(unsigned)((n + 255) / 256), 256>>>(static_cast<const T *>(src), acc, n);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

/* The swizzle as one xor, for tiles whose rows hold at least 8 chunks (D >= 64 in
 * T of 2 bytes) at 128-byte aligned addresses: for a lane's row r and half h,
 * B = swz_lane(tile, r, h) holds the row's address and the bits that the
 * swizzle flips, and chunk c + h (c even) is at swz_at(B, c) = (B ^ (c % 8) 16) +
 * (c / 8) 128: one logic op with an immediate where swz's index arithmetic was a
 * few integer ops per ldmatrix (docs/perf-notes.md n46). */
template <int D, typename T> __device__ __forceinline__ uint32_t swz_lane(const T *tile, int r, int h) {
    constexpr uint32_t RB = D * sizeof(T);
    static_assert(D / 8 >= 8 && RB % 128 == 0, "swz_lane: rows of at least 8 chunks");
    const int m = r & 7;
    return smem_addr(tile) + (uint32_t)r * RB + ((uint32_t)((h ^ (m & 1)) | (m & 6)) << 4);
}
__device__ __forceinline__ uint32_t swz_at(uint32_t B, int c) {
    return (B ^ ((uint32_t)(c & 6) << 4)) + ((uint32_t)(c >> 3) << 7);
}

/* The m16k16 A fragment of rows m0 .. m0 + 15 and columns kk*16 .. kk*16 + 15 of a
 * swizzled [rows][KW] tile (ldmatrix matrix q: rows m0 + (q % 2) 8, column chunk
 * 2 kk + q / 2). */
template <int KW, typename T>
__device__ __forceinline__ void ld_a(uint32_t a[4], const T *s, int kk, int m0, int lane) {
    const int r = m0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    if constexpr (KW >= 64)
        ldsm_x4_at(a, swz_at(swz_lane<KW>(s, r, lane >> 4), 2 * kk));
    else
        ldsm_x4(a, s + swz<KW>(r, 2 * kk + (lane >> 4)));
}

/* A warp's S = Q K^T tile: its 16 rows from wrow of sQ ([rows][D], swizzled)
 * against the BK rows of sK ([BK][D], swizzled), fp32 accumulators in the m16n8
 * layout (s[nt][e]: row wrow + lane / 4 + 8 (e / 2), key nt 8 + 2 (lane % 4) + e % 2). */
template <typename T, int D, int BK>
__device__ __forceinline__ void warp_qk(float (&s)[BK / 8][4], const T *sQ, const T *sK, int wrow, int lane) {
#pragma unroll
    for (int t = 0; t < BK / 8; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f;
    if constexpr (D >= 64) {
        constexpr uint32_t RB = D * sizeof(T);
        const uint32_t qa = swz_lane<D>(sQ, wrow + (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
        const uint32_t ka = swz_lane<D>(sK, (lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qf[4];
            ldsm_x4_at(qf, swz_at(qa, 2 * kk));
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt += 2) {
                uint32_t kf[4];
                ldsm_x4_at(kf, swz_at(ka, 2 * kk) + nt * 8 * RB);
                mma16816<T>(s[nt], qf, kf[0], kf[1]);
                mma16816<T>(s[nt + 1], qf, kf[2], kf[3]);
            }
        }
    } else {
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qf[4];
            ld_a<D>(qf, sQ, kk, wrow, lane);
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt += 2) {
                uint32_t kf[4];
                const int rk = nt * 8 + (lane >> 4) * 8 + (lane & 7);
                ldsm_x4(kf, sK + swz<D>(rk, 2 * kk + ((lane >> 3) & 1)));
                mma16816<T>(s[nt], qf, kf[0], kf[1]);
                mma16816<T>(s[nt + 1], qf, kf[2], kf[3]);
            }
        }
    }
}

/* The m16k16 A fragment of keys 16 kk .. 16 kk + 15 of an fp32 m16n8 accumulator
 * tile c (a P or dS tile in registers), rounded to T. */
template <typename T, int N>
__device__ __forceinline__ void acc_to_a(const float (&c)[N][4], int kk, uint32_t a[4]) {
    a[0] = pack2<T>::from(c[2 * kk][0], c[2 * kk][1]);
    a[1] = pack2<T>::from(c[2 * kk][2], c[2 * kk][3]);
    a[2] = pack2<T>::from(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[3] = pack2<T>::from(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

/* What acc_to_a's rounding left out, c - hi rounded to T (hi: acc_to_a's fragment
 * of the same c and kk): with both fragments multiplied in, the product carries c
 * to about twice T's bits. */
template <typename T, int N>
__device__ __forceinline__ void acc_to_a_lo(const float (&c)[N][4], int kk, const uint32_t hi[4], uint32_t lo[4]) {
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const float *e = &c[2 * kk + (q >> 1)][(q & 1) * 2];
        const float2 h = pack2<T>::to(hi[q]);
        lo[q] = pack2<T>::from(e[0] - h.x, e[1] - h.y);
    }
}

/* The m16k16 A fragment read transposed from a swizzled [k rows][KW] tile: A's rows
 * are the tile's columns m0 .. m0 + 15, its k the tile's rows kk*16 .. kk*16 + 15
 * (ldmatrix matrix q: rows kk*16 + (q / 2) 8, column chunk m0 / 8 + q % 2). */
template <int KW, typename T>
__device__ __forceinline__ void ld_a_t(uint32_t a[4], const T *s, int kk, int m0, int lane) {
    if constexpr (KW >= 64) { /* m0 a multiple of 16 */
        const uint32_t b = swz_lane<KW>(s, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
        ldsm_x4_t_at(a, swz_at(b, m0 / 8) + kk * 16 * KW * (uint32_t)sizeof(T));
    } else {
        const int qm = lane >> 3;
        const int row = kk * 16 + (lane & 7) + (qm >> 1) * 8;
        ldsm_x4_t(a, s + swz<KW>(row, m0 / 8 + (qm & 1)));
    }
}

/* acc[t] += A x B for the NC 8-column chunks from chunk c0 of sB (a swizzled
 * [rows][D] tile whose rows kk*16 .. kk*16 + 15 are the k dimension; transposed
 * ldmatrix): A is an m16k16 fragment (acc_to_a, or ldmatrix). */
template <typename T, int D, int NC>
__device__ __forceinline__ void mma_a_rows(float (&acc)[NC][4], const uint32_t a[4], const T *sB, int kk, int c0,
                                           int lane) {
    if constexpr (D >= 64) { /* c0 even */
        const uint32_t b = swz_lane<D>(sB, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4) + kk * 16 * D * (uint32_t)sizeof(T);
#pragma unroll
        for (int dt = 0; dt < NC; dt += 2) {
            uint32_t bf[4];
            ldsm_x4_t_at(bf, swz_at(b, c0 + dt));
            mma16816<T>(acc[dt], a, bf[0], bf[1]);
            mma16816<T>(acc[dt + 1], a, bf[2], bf[3]);
        }
    } else {
#pragma unroll
        for (int dt = 0; dt < NC; dt += 2) {
            uint32_t bf[4];
            const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            ldsm_x4_t(bf, sB + swz<D>(r, c0 + dt + (lane >> 4)));
            mma16816<T>(acc[dt], a, bf[0], bf[1]);
            mma16816<T>(acc[dt + 1], a, bf[2], bf[3]);
        }
    }
}

} // namespace dm

#endif
