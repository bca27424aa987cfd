/*
 * cuda_wgmma.cuh: Hopper's warpgroup MMA (wgmma) for the CUDA attention kernels
 * (cuda_attn_wgmma.cu's forward, cuda_attn_bwd.cu's wgmma backward): the
 * instruction wrappers for the shapes they use, the fences, and the canonical
 * no-swizzle K-major shared-memory layout with its descriptors. Compiled into
 * wgmma only for sm_90a (DM_WGMMA); elsewhere the wrappers trap, and the hosts
 * never launch those kernels there.
 */
#ifndef DMABENCH_CUDA_WGMMA_CUH
#define DMABENCH_CUDA_WGMMA_CUH

#include <cstdint>

#include "cuda_mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DM_WGMMA 1
#endif

namespace dm {


/* D = A B (+ D when acc): m64nNk16, A and B from shared-memory descriptors (N = 64: S; 128). */
template <typename T, int N> __device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* D = A B, D written only (its old values dead: no dependence on the registers'
 * last writers, which the softmax's masked stores are). */
template <typename T, int N> __device__ __forceinline__ void wgmma_ss0(float (&d)[N / 2], uint64_t da, uint64_t db);
/* D += A B: m64nNk16, A from registers (mma.sync's m16k16 A fragment per warp). */
template <typename T, int N> __device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db);

/* D = A B (+ D when acc): m64nNk16 from shared memory, both operands MN-major
 * (imm-trans-a and imm-trans-b 1: A's M and B's N run along the 16-byte rows of its
 * core matrices; the backward's dV and dK, N = 32, 64 or 128). */
template <typename T, int N> __device__ __forceinline__ void wgmma_ss_mn(float (&d)[N / 2], uint64_t da, uint64_t db, int acc);
/* D += A B: m64nNk16, A from registers, B MN-major from shared memory (the
 * backward's dQ, N = 64 or 128). */
template <typename T, int N> __device__ __forceinline__ void wgmma_rs_mn(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db);

/* The asm operand lists: the accumulators as %0.. and their constraints. */
#define DM_ACC16 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define DM_RW16 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
#define DM_ACC32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define DM_ACC64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define DM_RW32 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define DM_W32 \
    "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), \
    "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), \
    "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), \
    "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
#define DM_W64 \
    "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), \
    "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), \
    "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), \
    "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31]), \
    "=f"(d[32]), "=f"(d[33]), "=f"(d[34]), "=f"(d[35]), "=f"(d[36]), "=f"(d[37]), "=f"(d[38]), "=f"(d[39]), \
    "=f"(d[40]), "=f"(d[41]), "=f"(d[42]), "=f"(d[43]), "=f"(d[44]), "=f"(d[45]), "=f"(d[46]), "=f"(d[47]), \
    "=f"(d[48]), "=f"(d[49]), "=f"(d[50]), "=f"(d[51]), "=f"(d[52]), "=f"(d[53]), "=f"(d[54]), "=f"(d[55]), \
    "=f"(d[56]), "=f"(d[57]), "=f"(d[58]), "=f"(d[59]), "=f"(d[60]), "=f"(d[61]), "=f"(d[62]), "=f"(d[63])
#define DM_RW64 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

/* the wgmma where this is compiled for sm_90a, a trap elsewhere (never launched) */
#ifdef DM_WGMMA
#define DM_WG_ASM(...) asm volatile(__VA_ARGS__)
#else
#define DM_WG_ASM(...) __trap()
#endif

/* The two instruction forms, for every wrapper below: N the accumulators' count
 * times 2, ACC their list and OUT their constraints, then the other operands' numbers
 * as strings; scale-d is a predicate, p = (ACCV != 0); TR the transpose immediates
 * ("0, 0" K-major, "1, 1" MN-major; rs: B's alone). */
#define DM_WG_SS_ASM(TY, N, ACC, OUT, DA, DB, P, ACCV, TR)                                                             \
    DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" P ", 0;\n"                                                         \
              "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " ACC ", %" DA ", %" DB ", p, 1, 1, " TR  \
              ";\n}\n"                                                                                                 \
              : OUT                                                                                                    \
              : "l"(da), "l"(db), "r"(ACCV))
#define DM_WG_RS_ASM(TY, N, ACC, RW, A0, A1, A2, A3, DB, P, TRB)                                                       \
    DM_WG_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" P ", 0;\n"                                                         \
              "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " ACC ", {%" A0 ", %" A1 ", %" A2 ", %" A3 \
              "}, %" DB ", p, 1, 1, " TRB ";\n}\n"                                                                     \
              : RW                                                                                                     \
              : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))

/* K-major: S and dP (ss, N = 64; 128 for the probe's products), the forward's P V and the like (rs, N = 64, 128) */
#define DM_WGMMA_K_ALL(T, TY)                                                                                          \
    template <> __device__ __forceinline__ void wgmma_ss<T, 64>(float (&d)[32], uint64_t da, uint64_t db, int acc) {  \
        DM_WG_SS_ASM(TY, 64, DM_ACC32, DM_RW32, "32", "33", "34", acc, "0, 0");                                       \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_ss0<T, 64>(float (&d)[32], uint64_t da, uint64_t db) {           \
        DM_WG_SS_ASM(TY, 64, DM_ACC32, DM_W32, "32", "33", "34", 0, "0, 0");                                          \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_ss<T, 128>(float (&d)[64], uint64_t da, uint64_t db, int acc) { \
        DM_WG_SS_ASM(TY, 128, DM_ACC64, DM_RW64, "64", "65", "66", acc, "0, 0");                                      \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_ss0<T, 128>(float (&d)[64], uint64_t da, uint64_t db) {          \
        DM_WG_SS_ASM(TY, 128, DM_ACC64, DM_W64, "64", "65", "66", 0, "0, 0");                                         \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_rs<T, 64>(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {  \
        DM_WG_RS_ASM(TY, 64, DM_ACC32, DM_RW32, "32", "33", "34", "35", "36", "37", "0");                             \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_rs<T, 128>(float (&d)[64], const uint32_t (&a)[4], uint64_t db) { \
        DM_WG_RS_ASM(TY, 128, DM_ACC64, DM_RW64, "64", "65", "66", "67", "68", "69", "0");                            \
    }
/* MN-major (imm-trans-a for ss and imm-trans-b 1): the backward's dV and dK (ss,
 * N = 32, 64, 128) and dQ (rs, N = 64, 128) */
#define DM_WGMMA_MN_ALL(T, TY)                                                                                         \
    template <> __device__ __forceinline__ void wgmma_ss_mn<T, 32>(float (&d)[16], uint64_t da, uint64_t db, int acc) { \
        DM_WG_SS_ASM(TY, 32, DM_ACC16, DM_RW16, "16", "17", "18", acc, "1, 1");                                       \
    }                                                                                                                  \
    template <> __device__ __forceinline__ void wgmma_ss_mn<T, 64>(float (&d)[32], uint64_t da, uint64_t db, int acc) { \
        DM_WG_SS_ASM(TY, 64, DM_ACC32, DM_RW32, "32", "33", "34", acc, "1, 1");                                       \
    }                                                                                                                  \
    template <>                                                                                                        \
    __device__ __forceinline__ void wgmma_ss_mn<T, 128>(float (&d)[64], uint64_t da, uint64_t db, int acc) {          \
        DM_WG_SS_ASM(TY, 128, DM_ACC64, DM_RW64, "64", "65", "66", acc, "1, 1");                                      \
    }                                                                                                                  \
    template <>                                                                                                        \
    __device__ __forceinline__ void wgmma_rs_mn<T, 64>(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {         \
        DM_WG_RS_ASM(TY, 64, DM_ACC32, DM_RW32, "32", "33", "34", "35", "36", "37", "1");                             \
    }                                                                                                                  \
    template <>                                                                                                        \
    __device__ __forceinline__ void wgmma_rs_mn<T, 128>(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {        \
        DM_WG_RS_ASM(TY, 128, DM_ACC64, DM_RW64, "64", "65", "66", "67", "68", "69", "1");                            \
    }
DM_WGMMA_K_ALL(__nv_bfloat16, "bf16")
DM_WGMMA_K_ALL(__half, "f16")
DM_WGMMA_MN_ALL(__nv_bfloat16, "bf16")
DM_WGMMA_MN_ALL(__half, "f16")

__device__ __forceinline__ void wg_fence() {
#ifdef DM_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#ifdef DM_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_wait0() {
#ifdef DM_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
/* wait until at most one committed group is pending (the last one) */
__device__ __forceinline__ void wg_wait1() {
#ifdef DM_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
#endif
}
/* shared-memory writes of the generic proxy (st.shared, cp.async) made visible
 * to the async proxy that wgmma reads through */
__device__ __forceinline__ void fence_async_smem() {
#ifdef DM_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/* The descriptor of an MN-major, no-swizzle operand at p (PTX's canonical layout
 * ((8,1,m),(8,k)):((1,8,SBO),(8,LBO)) in elements): core matrices of 8 rows along K,
 * each 16 bytes (8 elements) along M or N; SBO the next core matrix along M or N,
 * LBO the next 8 rows along K. The fields are packed as for K-major ones. */
__device__ __forceinline__ uint64_t gmma_desc_mn(const void *p, uint32_t lbo, uint32_t sbo) {
    const uint64_t a = smem_addr(p);
    return ((a & 0x3FFFFull) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32);
}

/* The descriptor of a K-major, no-swizzle operand at p: LBO (the next core matrix
 * along K) 128 bytes, SBO (the next 8 rows) sbo bytes. */
__device__ __forceinline__ uint64_t gmma_desc(const void *p, uint32_t sbo) { return gmma_desc_mn(p, 128, sbo); }

/* The descriptor of an operand at p in the 128-byte swizzle (layout type 1), its
 * 1024-byte atoms (8 rows of 128 bytes, the 16-byte chunks of row r XORed with r % 8
 * by address) aligned to 1024 bytes. K-major: 64 elements of K a row, SBO the next
 * 8 rows (LBO unused); a k-step inside the atom moves p by its 32 bytes. MN-major:
 * 64 elements of M or N a row, LBO the next 64 of them, SBO the next 8 rows of K. */
__device__ __forceinline__ uint64_t gmma_desc_sw128(const void *p, uint32_t lbo, uint32_t sbo) {
    return gmma_desc_mn(p, lbo, sbo) | (1ull << 62);
}

/* p (in shared memory) moved up to the next 1024-byte boundary, the 128-byte
 * swizzle's period, which its descriptors and tensor-memory boxes assume; dynamic
 * shared memory is only 16-byte aligned, so the caller reserves 1024 bytes more */
__device__ __forceinline__ unsigned char *align_sw128(unsigned char *p) {
    return p + ((1024 - (smem_addr(p) & 1023)) & 1023);
}

/* One row of a tensor map's box (the 128-byte swizzle's 64 x 1 box of K or V rows)
 * into dst, at coordinates (c0, c1, c2, c3) of a 4-d map, completing on bar's
 * transaction count. No registers are held after the issue. */
__device__ __forceinline__ void tma_row4(void *dst, const void *map, int c0, int c1, int c2, int c3, uint64_t *bar) {
#ifdef DM_WGMMA
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(smem_addr(dst)),
                 "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
                 : "memory");
#endif
}
/* tma_row4 multicast to the cluster's CTAs in mask (bit r: rank r): the box lands at
 * dst's offset in each, and completes on the barrier at bar's offset in each */
__device__ __forceinline__ void tma_row4_mc(void *dst, const void *map, int c0, int c1, int c2, int c3, uint64_t *bar,
                                            uint16_t mask) {
#ifdef DM_WGMMA
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
                 " [%0], [%1, {%2, %3, %4, %5}], [%6], %7;\n" ::"r"(smem_addr(dst)),
                 "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar)), "h"(mask)
                 : "memory");
#endif
}
/* this CTA's rank in its cluster */
__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t r = 0;
#ifdef DM_WGMMA
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
#endif
    return r;
}
/* every thread of the cluster's CTAs, with release and acquire of their earlier writes */
__device__ __forceinline__ void cluster_sync() {
#ifdef DM_WGMMA
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}
/* the barrier initialisations, visible to the cluster (and its async proxy) */
__device__ __forceinline__ void fence_mbar_init_cluster() {
#ifdef DM_WGMMA
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
/* one arrival on the barrier at bar's offset in the cluster's CTA `rank`, with the
 * arrival's default semantics (release at CTA scope), as CUTLASS's cluster
 * pipelines release a stage to its producers; its waiter waits at CTA scope
 * (mbar_wait). At cluster scope the release compiles to MEMBAR.ALL.GPU before the
 * arrival, which fw1's consumer warps paid once a block each (16% of its stall
 * samples, thirty-sixth set), and the wait's acquire to a CCTL.IVALL that drops the
 * L1 */
__device__ __forceinline__ void mbar_arrive_remote(uint64_t *bar, uint32_t rank) {
#ifdef DM_WGMMA
    asm volatile("{\n"
                 ".reg .b32 ra;\n"
                 "mapa.shared::cluster.u32 ra, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [ra];\n"
                 "}\n" ::"r"(smem_addr(bar)),
                 "r"(rank)
                 : "memory");
#endif
}
/* one arrival that also expects `bytes` more of the phase's transactions */
__device__ __forceinline__ void mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
#ifdef DM_WGMMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
#endif
}

/* Warp specialisation (sm_90): named barriers (bar.sync waits, bar.arrive only
 * counts; n threads in all, whole warps), the register split between warpgroups
 * (setmaxnreg, by every thread of a warpgroup), and mbarriers in shared memory
 * (arrivals counted per phase; a wait names the phase's parity). */
__device__ __forceinline__ void nb_sync(int id, int n) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void nb_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
#ifdef DM_WGMMA
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
#ifdef DM_WGMMA
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
__device__ __forceinline__ void mbar_init(uint64_t *bar, int count) {
#ifdef DM_WGMMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#endif
}
/* one arrival, with release of this thread's earlier writes */
__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
#ifdef DM_WGMMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
/* one arrival once this thread's earlier cp.async copies have landed (counted in
 * the barrier's init count: .noinc) */
__device__ __forceinline__ void mbar_arrive_cp_async(uint64_t *bar) {
#ifdef DM_WGMMA
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
/* until the phase of the given parity has completed */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, int parity) {
#ifdef DM_WGMMA
    asm volatile("{\n"
                 ".reg .pred done;\n"
                 "WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n"
                 "}\n" ::"r"(smem_addr(bar)),
                 "r"(parity)
                 : "memory");
#endif
}

} // namespace dm

#endif
