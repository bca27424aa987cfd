/*
 * cuda_attn.cu: the CUDA attention engine's forward (see cuda_attn.h).
 *
 * One CTA of 4 warps per (query tile of 64, query head, batch); warp w owns rows
 * 16w..16w+15. K/V blocks of 64 keys stream through shared memory, double
 * buffered with cp.async; each warp computes S = Q K^T for its 16 rows with
 * mma.sync m16n8k16 (Q fragments kept in registers), masks it with the per-key
 * query intervals, runs the online softmax in registers, and accumulates O += P V
 * with P converted straight from the S accumulators into A fragments.
 * Shared-memory rows are 16-byte chunks XOR-swizzled by (row & 7), so ldmatrix
 * reads 8 rows of one column without bank conflicts.
 *
 * Tuning: 64 keys per block give 8 S tiles per warp (32 accumulators) beside
 * D/8 O tiles (64 accumulators at D = 128).
 */
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "cuda_attn.h"
#include "cuda_common.cuh"

namespace {

constexpr int BQ = CUDA_ATTN_BQ;
constexpr int BK = 64;
constexpr int NTHREADS = 128;
constexpr float LOG2E = 1.4426950408889634f;

template <typename T> struct pack2;
template <> struct pack2<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t from(float a, float b) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct pack2<__half> {
    static __device__ __forceinline__ uint32_t from(float a, float b) {
        __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
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

/* 16-byte global -> shared copy; zero-fills when !ok. */
__device__ __forceinline__ void cp16(void *dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* Element offset of chunk c (8 elements) of row r in a swizzled [rows][D] tile. */
template <int D> __device__ __forceinline__ int swz(int r, int c) { return r * D + ((c ^ (r & 7)) << 3); }

struct FwdArgs {
    const void *q, *k, *v;
    void *o;
    float *lse;
    long long qsb, qss, qsh, ksb, kss, ksh, vsb, vss, vsh, osb, oss, osh;
    int B, Nq, Nk, Hq, Hkv, G;
    float scale_log2;
    int causal, window;
    const float *z;
    const int *list, *list_len;
    const unsigned long long *tkey;
    int cap, ntiles;
};

template <typename T, int D>
__global__ void __launch_bounds__(NTHREADS) attn_fwd_kernel(const FwdArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BQ * D;
    T *sV = sK + 2 * BK * D;
    unsigned long long *sT = reinterpret_cast<unsigned long long *>(sV + 2 * BK * D); /* [BQ] thresholds */
    int *sIdx = reinterpret_cast<int *>(sT + BQ);
    int *sRlo = sIdx + 2 * BK;
    int *sRhi = sRlo + 2 * BK;
    float *sZ = reinterpret_cast<float *>(sRhi + 2 * BK);

    const int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int hkv = h / a.G;
    const int i0 = tile * BQ;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const long long off = (long long)a.Nk - a.Nq;

    int nkeys, kstart = 0;
    const int *lst = nullptr;
    const int nrows = min(BQ, a.Nq - i0);
    if (a.tkey) {
        if (tid < BQ) sT[tid] = tid < nrows ? a.tkey[((size_t)b * a.Hkv + hkv) * a.Nq + i0 + tid] : ~0ULL;
        __syncthreads();
    }
    if (a.list) {
        size_t u = ((size_t)b * a.Hkv + hkv) * a.ntiles + tile;
        nkeys = a.list_len[u];
        lst = a.list + u * a.cap;
    } else if (a.causal) {
        int ilast = min(i0 + BQ, a.Nq) - 1;
        long long hi = min((long long)ilast + off, (long long)a.Nk - 1);
        long long lo = a.window > 0 ? max(0LL, (long long)i0 + off - a.window + 1) : 0;
        kstart = (int)lo;
        nkeys = hi >= lo ? (int)(hi - lo + 1) : 0;
    } else {
        nkeys = a.Nk;
    }

    const T *qb = static_cast<const T *>(a.q) + b * a.qsb + h * a.qsh;
    const T *kb = static_cast<const T *>(a.k) + b * a.ksb + hkv * a.ksh;
    const T *vb = static_cast<const T *>(a.v) + b * a.vsb + hkv * a.vsh;
    const float *zrow = a.z ? a.z + ((size_t)b * a.Hkv + hkv) * a.Nk : nullptr;

    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int c = tid; c < BQ * CH; c += NTHREADS) {
        int r = c / CH, ch = c % CH, i = i0 + r;
        bool ok = i < a.Nq;
        cp16(sQ + swz<D>(r, ch), qb + (long long)(ok ? i : 0) * a.qss + ch * 8, ok);
    }
    auto load_kv = [&](int stage, int c0) {
        if (tid < BK) {
            int pos = c0 + tid, j = -1, rl = INT_MAX, rh = -1;
            float zz = 0.f;
            if (pos < nkeys) {
                j = lst ? lst[pos] : kstart + pos;
                if (a.causal) {
                    long long lo = (long long)j - off;
                    long long hi = a.window > 0 ? lo + a.window - 1 : (long long)INT_MAX - 1;
                    rl = (int)max(lo, 0LL);
                    rh = (int)min(hi, (long long)INT_MAX - 1);
                } else {
                    rl = 0;
                    rh = INT_MAX - 1;
                }
                if (a.tkey) { /* last row of the tile whose threshold the key still meets */
                    unsigned long long kj = dma_key(zrow[j], j);
                    int lo2 = 0, hi2 = nrows; /* first row with sT > kj */
                    while (lo2 < hi2) {
                        int mid = (lo2 + hi2) >> 1;
                        if (sT[mid] <= kj) lo2 = mid + 1;
                        else hi2 = mid;
                    }
                    if (lo2 < nrows) rh = min(rh, i0 + lo2 - 1);
                }
                if (zrow) zz = zrow[j] * LOG2E;
            }
            sIdx[stage * BK + tid] = j;
            sRlo[stage * BK + tid] = rl;
            sRhi[stage * BK + tid] = rh;
            sZ[stage * BK + tid] = zz;
        }
        for (int c = tid; c < BK * CH; c += NTHREADS) {
            int r = c / CH, ch = c % CH, pos = c0 + r;
            bool ok = pos < nkeys;
            int j = ok ? (lst ? lst[pos] : kstart + pos) : 0;
            cp16(sK + stage * BK * D + swz<D>(r, ch), kb + (long long)j * a.kss + ch * 8, ok);
            cp16(sV + stage * BK * D + swz<D>(r, ch), vb + (long long)j * a.vss + ch * 8, ok);
        }
    };

    const int nblocks = (nkeys + BK - 1) / BK;
    if (nblocks > 0) load_kv(0, 0);
    cp_commit();

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float oacc[D / 8][4];
#pragma unroll
    for (int t = 0; t < D / 8; t++) oacc[t][0] = oacc[t][1] = oacc[t][2] = oacc[t][3] = 0.f;
    uint32_t qf[D / 16][4];
    const int row_a = warp * 16 + (lane >> 2);
    const int qa = i0 + row_a, qbi = qa + 8;

    for (int kbk = 0; kbk < nblocks; kbk++) {
        const int st = kbk & 1;
        if (kbk + 1 < nblocks) load_kv(st ^ 1, (kbk + 1) * BK);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        if (kbk == 0) {
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldsm_x4(qf[kk], sQ + swz<D>(r, 2 * kk + (lane >> 4)));
            }
        }
        const T *sKs = sK + st * BK * D, *sVs = sV + st * BK * D;
        float s[BK / 8][4];
#pragma unroll
        for (int t = 0; t < BK / 8; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int nt = 0; nt < BK / 8; nt += 2) {
                uint32_t kf[4];
                int r = nt * 8 + (lane >> 4) * 8 + (lane & 7);
                ldsm_x4(kf, sKs + swz<D>(r, 2 * kk + ((lane >> 3) & 1)));
                mma16816<T>(s[nt], qf[kk], kf[0], kf[1]);
                mma16816<T>(s[nt + 1], qf[kk], kf[2], kf[3]);
            }
        }
        /* scale, bias and mask; then the online softmax for rows qa and qbi */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int t = nt * 8 + (lane & 3) * 2 + (e & 1);
                int q = e < 2 ? qa : qbi;
                int g = st * BK + t;
                bool ok = sIdx[g] >= 0 && q >= sRlo[g] && q <= sRhi[g];
                float val = ok ? s[nt][e] * a.scale_log2 + sZ[g] : -INFINITY;
                s[nt][e] = val;
                mx[e >> 1] = fmaxf(mx[e >> 1], val);
            }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffff, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffff, mx[r], 2));
            float mnew = fmaxf(m[r], mx[r]);
            alpha[r] = mnew == -INFINITY ? 1.f : exp2f(m[r] - mnew);
            m[r] = mnew;
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int nt = 0; nt < BK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float mr = m[e >> 1];
                float pv = mr == -INFINITY ? 0.f : exp2f(s[nt][e] - mr);
                s[nt][e] = pv;
                l[e >> 1] += pv;
            }
#pragma unroll
        for (int t = 0; t < D / 8; t++) {
            oacc[t][0] *= alpha[0], oacc[t][1] *= alpha[0];
            oacc[t][2] *= alpha[1], oacc[t][3] *= alpha[1];
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pf[4] = {pack2<T>::from(s[2 * kk][0], s[2 * kk][1]), pack2<T>::from(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>::from(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>::from(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dt = 0; dt < D / 8; dt += 2) {
                uint32_t vf[4];
                int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldsm_x4_t(vf, sVs + swz<D>(r, dt + (lane >> 4)));
                mma16816<T>(oacc[dt], pf, vf[0], vf[1]);
                mma16816<T>(oacc[dt + 1], pf, vf[2], vf[3]);
            }
        }
        __syncthreads();
    }
    cp_wait<0>();

    /* finish: full row sums, normalise, write O and the natural-log lse */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 2);
    }
    T *ob = static_cast<T *>(a.o) + b * a.osb + h * a.osh;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int q = r == 0 ? qa : qbi;
        if (q >= a.Nq) continue;
        float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
        T *orow = ob + (long long)q * a.oss;
#pragma unroll
        for (int t = 0; t < D / 8; t++) {
            int col = t * 8 + (lane & 3) * 2;
            *reinterpret_cast<uint32_t *>(orow + col) = pack2<T>::from(oacc[t][2 * r] * inv, oacc[t][2 * r + 1] * inv);
        }
        if ((lane & 3) == 0)
            a.lse[((size_t)b * a.Hq + h) * a.Nq + q] = l[r] > 0.f ? (m[r] + log2f(l[r])) * 0.6931471805599453f : -INFINITY;
    }
}

template <typename T, int D> attn_status launch_fwd(const FwdArgs &a, int ntiles, int Hq, int B) {
    size_t smem = (size_t)(BQ * D + 4 * BK * D) * sizeof(T) + BQ * 8 + 8 * BK * sizeof(int);
    auto kern = attn_fwd_kernel<T, D>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(ntiles, Hq, B);
    kern<<<grid, NTHREADS, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    return ATTN_OK;
}

} // namespace

extern "C" int cuda_attn_supports(const attn_params *p, attn_variant v, int backward, char *why, size_t why_len) {
    if (attn_params_check(p, v, backward, why, why_len) != ATTN_OK) return 0;
    auto no = [&](const char *msg) {
        if (why && why_len) snprintf(why, why_len, "%s", msg);
        return 0;
    };
    static int ndev = -1;
    if (ndev < 0 && cudaGetDeviceCount(&ndev) != cudaSuccess) {
        cudaGetLastError();
        ndev = 0;
    }
    if (ndev < 1) return no("no usable CUDA device on this machine");
    if (backward) return no("the cuda backward is not built yet");
    if (p->dtype != ATTN_DTYPE_BF16 && p->dtype != ATTN_DTYPE_F16) return no("the cuda kernels take bf16 or f16");
    if (p->D != 64 && p->D != 128) return no("the cuda kernels support head dims 64 and 128");
    const attn_stride *sts[] = {&p->q_st, &p->k_st, &p->v_st, &p->o_st};
    for (const attn_stride *s : sts)
        if (s->b % 8 || s->s % 8 || s->h % 8) return no("the cuda kernels need strides that are multiples of 8 elements");
    const void *ptrs[] = {p->q, p->k, p->v, p->o};
    for (const void *q : ptrs)
        if ((uintptr_t)q % 16) return no("the cuda kernels need 16-byte aligned tensors");
    return 1;
}

extern "C" attn_status cuda_attn_forward(const attn_params *p, const cuda_attn_spec *s) {
    FwdArgs a;
    a.q = p->q, a.k = p->k, a.v = p->v, a.o = p->o;
    a.lse = static_cast<float *>(p->lse);
    a.qsb = p->q_st.b, a.qss = p->q_st.s, a.qsh = p->q_st.h;
    a.ksb = p->k_st.b, a.kss = p->k_st.s, a.ksh = p->k_st.h;
    a.vsb = p->v_st.b, a.vss = p->v_st.s, a.vsh = p->v_st.h;
    a.osb = p->o_st.b, a.oss = p->o_st.s, a.osh = p->o_st.h;
    a.B = p->B, a.Nq = p->Nq, a.Nk = p->Nk, a.Hq = p->Hq, a.Hkv = p->Hkv, a.G = p->Hq / p->Hkv;
    a.scale_log2 = (float)(p->scale * 1.4426950408889634);
    a.causal = p->causal;
    a.window = s->window;
    a.z = s->z;
    a.list = s->list, a.list_len = s->list_len, a.tkey = s->tkey;
    a.cap = s->cap;
    a.ntiles = cuda_attn_ntiles(p);
    if (p->dtype == ATTN_DTYPE_BF16)
        return p->D == 64 ? launch_fwd<__nv_bfloat16, 64>(a, a.ntiles, p->Hq, p->B)
                          : launch_fwd<__nv_bfloat16, 128>(a, a.ntiles, p->Hq, p->B);
    return p->D == 64 ? launch_fwd<__half, 64>(a, a.ntiles, p->Hq, p->B) : launch_fwd<__half, 128>(a, a.ntiles, p->Hq, p->B);
}
