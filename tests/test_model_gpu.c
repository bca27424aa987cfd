/*
 * test_model_gpu.c: the model's GPU ops (model/model_cuda.h) against the CPU
 * ops they replace (model_ops.c's mops_*, the loops of model.c's layer_forward /
 * layer_backward, model_optim.c's AdamW and gradient norm), on fresh random
 * inputs at odd sizes, forward and backward.
 *
 * Tolerances follow precision. An op that computes in fp32 from fp32 inputs must
 * be within 1e-5 (norm-wise relative: max |x - ref| / max |ref|) of the CPU. An
 * op that takes bf16 inputs (or writes bf16) is held to the error the CPU op
 * itself makes at that precision: the CPU op run on the same bf16-rounded
 * inputs, its output rounded like the GPU's, gives err_cpu against the fp32
 * result; the GPU's error against the fp32 result must be <= 3 err_cpu + 1e-6.
 * AdamW must equal the CPU's update to 1e-6 relative per element (it is meant to
 * be bit-exact); the gradient norm to 1e-12. Outputs carry 256 guard bytes that
 * must stay untouched; NaN or Inf where the reference is finite fails.
 *
 * Runs only with DMABENCH_GPU=1 on a machine with a CUDA device; otherwise (or
 * built without CUDA) it prints "# skipped" and makes no checks.
 *   DMABENCH_GPU=1 ./build/tests/test_model_gpu
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef DMABENCH_CUDA
int main(void) {
    printf("# skipped: built without CUDA (the model's GPU ops)\n");
    return 0;
}
#else

#include "cuda_info.h"
#include "cuda_rt.h"
#include "model_cuda.h"
#include "model_internal.h"
#include "model_tiny.h"
#include "rng.h"

static rng_t R;

/* ---- bf16 on the host (round to nearest even) ---- */

static uint16_t f2b(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float b2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float rb(float f) { return b2f(f2b(f)); }
static void round_all(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = rb(x[i]);
}
static void to_b(const float *x, uint16_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = f2b(x[i]);
}
static void from_b(const uint16_t *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = b2f(x[i]);
}

/* ---- host buffers ---- */

static float *hnew(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(2);
    }
    return p;
}
static uint16_t *hnew16(size_t n) {
    uint16_t *p = calloc(n ? n : 1, sizeof(uint16_t));
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(2);
    }
    return p;
}
static void fill(float *x, size_t n, double mean, double sd) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + sd * rng_normal(&R));
}

/* ---- device buffers: each with GUARD bytes of 0xA5 after it ---- */

#define GUARD 256
#define MAXD 64
static void *dbuf[MAXD];
static int ndbuf, dev_bad;
static char dev_why[512];

static void dev_fail(const char *what, attn_status st) {
    if (!dev_bad) snprintf(dev_why, sizeof dev_why, "%s: %s (%s)", what, attn_status_str(st), dm_cuda_last_error());
    dev_bad = 1;
}
static void *dmal(size_t bytes) {
    void *p = NULL;
    attn_status st = ndbuf < MAXD ? dm_cuda_alloc(&p, bytes + GUARD) : ATTN_ERR_OOM;
    if (st != ATTN_OK) {
        dev_fail("device allocation", st);
        return NULL;
    }
    dbuf[ndbuf++] = p;
    st = dm_cuda_memset(p, 0xA5, bytes + GUARD);
    if (st != ATTN_OK) dev_fail("memset", st);
    return p;
}
static void dfree_all(void) {
    for (int i = 0; i < ndbuf; i++) dm_cuda_free(dbuf[i]);
    ndbuf = 0;
}
static void up(void *d, const void *h, size_t bytes) {
    attn_status st = d ? dm_cuda_h2d(d, h, bytes) : ATTN_ERR_INVALID;
    if (st != ATTN_OK) dev_fail("copy to the device", st);
}
static void down(void *h, const void *d, size_t bytes) {
    attn_status st = d ? dm_cuda_d2h(h, d, bytes) : ATTN_ERR_INVALID;
    if (st != ATTN_OK) {
        dev_fail("copy from the device", st);
        memset(h, 0, bytes);
    }
}
/* 1 when the GUARD bytes after the first `bytes` of d are untouched. */
static int guard_ok(const void *d, size_t bytes) {
    unsigned char g[GUARD];
    down(g, (const char *)d + bytes, GUARD);
    for (int k = 0; k < GUARD; k++)
        if (g[k] != 0xA5) return 0;
    return 1;
}
/* An op's status: reports and returns 0 when it failed. */
static int op_ok(attn_status st, const char *name) {
    if (st == ATTN_OK) return 1;
    CHECK(0, name, "%s: %s", attn_status_str(st), mcuda_last_error());
    return 0;
}
static int dev_ok(const char *name) {
    if (!dev_bad) return 1;
    CHECK(0, name, "%s", dev_why);
    dev_bad = 0;
    return 0;
}

/* ---- error measures ---- */

/* max |x - ref| / max |ref| (norm-wise relative); inf when x is not finite where ref is. */
static double rel_err(const float *x, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) && isfinite(ref[i])) return INFINITY;
        double d = fabs((double)x[i] - ref[i]);
        if (d > num) num = d;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return den > 0 ? num / den : num;
}
static void check_f32(const char *name, const float *gpu, const float *ref, size_t n, double tol) {
    double e = rel_err(gpu, ref, n);
    CHECK(e <= tol, name, "relative error %.3g > %.0e", e, tol);
}

/* ---- GEMM ---- */

static float el(const float *X, int ld, int t, int r, int c) { return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c]; }

/* C (M, N, ldc) = alpha op(A) op(B) + beta C0, double sums; out_bf16 rounds the result. */
static void gemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, const float *C0, float *C, int ldc, int out_bf16) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)el(A, lda, ta, i, k) * el(B, ldb, tb, k, j);
            float v = (float)(alpha * s + (beta != 0 ? beta * (double)C0[(size_t)i * ldc + j] : 0.0));
            C[(size_t)i * ldc + j] = out_bf16 ? rb(v) : v;
        }
}

/* Compact (M, N) copy of a strided matrix. */
static void compact(const float *X, int M, int N, int ld, float *out) {
    for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, X + (size_t)i * ld, (size_t)N * sizeof(float));
}

static void test_gemm(int M, int N, int K, int ta, int tb, int pad, int cbf16, float beta) {
    char name[160];
    snprintf(name, sizeof name, "model_gpu/gemm bf16 %dx%dx%d ta%d tb%d ld+%d %s-out beta %g", M, N, K, ta, tb, pad,
             cbf16 ? "bf16" : "f32", beta);
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)M * ldc;
    float *A = hnew(na), *B = hnew(nb), *C0 = hnew(nc), *Ab = hnew(na), *Bb = hnew(nb);
    float *ref = hnew(nc), *low = hnew(nc), *got = hnew(nc);
    uint16_t *A16 = hnew16(na), *B16 = hnew16(nb), *C16 = hnew16(nc);
    fill(A, na, 0, 1), fill(B, nb, 0, 1), fill(C0, nc, 0, 1);
    const float sentinel = -12345.0f;
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) C0[(size_t)i * ldc + j] = sentinel; /* the padding must survive */
    if (cbf16) round_all(C0, nc);
    memcpy(Ab, A, na * sizeof(float)), memcpy(Bb, B, nb * sizeof(float));
    round_all(Ab, na), round_all(Bb, nb);
    to_b(A, A16, na), to_b(B, B16, nb);
    const float alpha = 0.75f;
    gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ref, ldc, 0);
    gemm_ref(ta, tb, M, N, K, alpha, Ab, lda, Bb, ldb, beta, C0, low, ldc, cbf16);

    size_t cbytes = nc * (cbf16 ? 2 : 4);
    void *dA = dmal(na * 2), *dB = dmal(nb * 2), *dC = dmal(cbytes);
    up(dA, A16, na * 2), up(dB, B16, nb * 2);
    if (cbf16) {
        to_b(C0, C16, nc);
        up(dC, C16, cbytes);
    } else {
        up(dC, C0, cbytes);
    }
    if (!dev_ok(name)) goto out;
    if (!op_ok(mcuda_gemm(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc,
                          cbf16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32), name))
        goto out;
    if (cbf16) {
        down(C16, dC, cbytes);
        from_b(C16, got, nc);
    } else {
        down(got, dC, cbytes);
    }
    int pad_ok = guard_ok(dC, cbytes);
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) pad_ok &= got[(size_t)i * ldc + j] == (cbf16 ? rb(sentinel) : sentinel);
    if (!dev_ok(name)) goto out;
    {
        float *g = hnew((size_t)M * N), *r = hnew((size_t)M * N), *l = hnew((size_t)M * N);
        compact(got, M, N, ldc, g), compact(ref, M, N, ldc, r), compact(low, M, N, ldc, l);
        double eg = rel_err(g, r, (size_t)M * N), ec = rel_err(l, r, (size_t)M * N);
        CHECK(pad_ok && eg <= 3.0 * ec + 1e-6, name, "%s relative error %.3g (limit 3 x %.3g + 1e-6)",
              pad_ok ? "" : "wrote outside C;", eg, ec);
        free(g), free(r), free(l);
    }
out:
    dfree_all();
    free(A), free(B), free(C0), free(Ab), free(Bb), free(ref), free(low), free(got), free(A16), free(B16), free(C16);
}

static void test_gemm_f32(int M, int N, int K, int ta, int tb) {
    char name[160];
    snprintf(name, sizeof name, "model_gpu/gemm f32 %dx%dx%d ta%d tb%d", M, N, K, ta, tb);
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    size_t na = (size_t)ar * ac, nb = (size_t)br * bc, nc = (size_t)M * N;
    float *A = hnew(na), *B = hnew(nb), *C0 = hnew(nc), *ref = hnew(nc), *got = hnew(nc);
    fill(A, na, 0, 1), fill(B, nb, 0, 1), fill(C0, nc, 0, 1);
    gemm_ref(ta, tb, M, N, K, 1.0f, A, ac, B, bc, 1.0f, C0, ref, N, 0);
    float *dA = dmal(na * 4), *dB = dmal(nb * 4), *dC = dmal(nc * 4);
    up(dA, A, na * 4), up(dB, B, nb * 4), up(dC, C0, nc * 4);
    if (dev_ok(name) && op_ok(mcuda_gemm_f32(ta, tb, M, N, K, 1.0f, dA, ac, dB, bc, 1.0f, dC, N), name)) {
        down(got, dC, nc * 4);
        int g = guard_ok(dC, nc * 4);
        if (dev_ok(name)) {
            double e = rel_err(got, ref, nc);
            CHECK(g && e <= 1e-5, name, "%s relative error %.3g (limit 1e-5)", g ? "" : "wrote past C;", e);
        }
    }
    dfree_all();
    free(A), free(B), free(C0), free(ref), free(got);
}

static void test_gemm_edges(void) {
    const char *name = "model_gpu/gemm K = 0 scales C by beta; bad leading dimension rejected";
    float C0[6] = {1, 2, 3, 4, 5, 6}, got[6];
    float *dC = dmal(sizeof C0);
    uint16_t *dA = dmal(64), *dB = dmal(64);
    up(dC, C0, sizeof C0);
    if (!dev_ok(name)) goto out;
    if (!op_ok(mcuda_gemm(0, 0, 2, 3, 0, 1.0f, dA, 1, dB, 3, 0.5f, dC, 3, ATTN_DTYPE_F32), name)) goto out;
    down(got, dC, sizeof got);
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= got[i] == 0.5f * C0[i];
    attn_status st = mcuda_gemm(0, 0, 2, 3, 4, 1.0f, dA, 3, dB, 3, 0.0f, dC, 3, ATTN_DTYPE_F32);
    char why[256]; /* mcuda_last_error's buffer is overwritten by the next call */
    snprintf(why, sizeof why, "%s", mcuda_last_error());
    attn_status st2 = mcuda_gemm(0, 0, 2, 3, 4, 1.0f, dA, 4, dB, 3, 0.0f, dC, 3, ATTN_DTYPE_F16);
    CHECK(dev_ok(name) && ok && st == ATTN_ERR_INVALID && strstr(why, "leading") && st2 == ATTN_ERR_INVALID, name,
          "K = 0 %s; lda < K gave %s ('%s'); f16 output gave %s", ok ? "ok" : "wrong", attn_status_str(st), why,
          attn_status_str(st2));
out:
    dfree_all();
}

/* ---- embedding ---- */

static void test_embed(int M, int V, int C) {
    char name[128];
    snprintf(name, sizeof name, "model_gpu/embedding forward and backward M %d V %d C %d", M, V, C);
    const int pad = 5;
    int32_t *ids = malloc((size_t)M * sizeof *ids);
    size_t ne = (size_t)V * C, nx = (size_t)M * C;
    float *E = hnew(ne), *dy = hnew(nx), *G0 = hnew(ne), *ref = hnew(ne), *got = hnew(ne), *of = hnew(nx);
    uint16_t *ob = hnew16(nx);
    for (int i = 0; i < M; i++) ids[i] = i % 7 == 2 ? pad : i % 5 == 1 ? 11 : (int32_t)rng_below(&R, (uint64_t)V);
    fill(E, ne, 0, 1), fill(dy, nx, 0, 1), fill(G0, ne, 0, 0.1);
    memcpy(ref, G0, ne * sizeof(float));
    for (int i = 0; i < M; i++)
        if (ids[i] != pad)
            for (int c = 0; c < C; c++) ref[(size_t)ids[i] * C + c] += dy[(size_t)i * C + c];
    int32_t *dids = dmal((size_t)M * 4);
    float *dE = dmal(ne * 4), *dof = dmal(nx * 4), *ddy = dmal(nx * 4), *dG = dmal(ne * 4);
    uint16_t *dob = dmal(nx * 2);
    up(dids, ids, (size_t)M * 4), up(dE, E, ne * 4), up(ddy, dy, nx * 4), up(dG, G0, ne * 4);
    if (!dev_ok(name)) goto out;
    if (!op_ok(mcuda_embed_forward(dids, M, dE, V, C, dof, dob), name)) goto out;
    if (!op_ok(mcuda_embed_backward(dids, M, ddy, V, C, pad, dG), name)) goto out;
    down(of, dof, nx * 4), down(ob, dob, nx * 2), down(got, dG, ne * 4);
    int guards = guard_ok(dof, nx * 4) && guard_ok(dob, nx * 2) && guard_ok(dG, ne * 4);
    if (!dev_ok(name)) goto out;
    {
        int fwd = 1;
        for (int i = 0; i < M; i++)
            for (int c = 0; c < C; c++) {
                float e = E[(size_t)ids[i] * C + c];
                fwd &= of[(size_t)i * C + c] == e && ob[(size_t)i * C + c] == f2b(e);
            }
        int padrow = !memcmp(got + (size_t)pad * C, G0 + (size_t)pad * C, (size_t)C * sizeof(float));
        double e = rel_err(got, ref, ne);
        CHECK(guards && fwd && padrow && e <= 1e-5, name, "guards %d, forward rows exact %d, pad row untouched %d, "
              "gradient relative error %.3g (limit 1e-5)", guards, fwd, padrow, e);
    }
out:
    dfree_all();
    free(ids), free(E), free(dy), free(G0), free(ref), free(got), free(of), free(ob);
}

/* ---- RMSNorm and column sums ---- */

static void test_rmsnorm(int rows, int n) {
    char name[128];
    const float eps = 1e-6f;
    size_t nx = (size_t)rows * n;
    float *x = hnew(nx), *w = hnew(n), *y = hnew(nx), *r = hnew(rows), *yg = hnew(nx), *rg = hnew(rows);
    float *ylow = hnew(nx), *ybg = hnew(nx), *dy = hnew(nx), *dx0 = hnew(nx), *dx = hnew(nx), *dxg = hnew(nx);
    float *dw0 = hnew(n), *dw = hnew(n), *dwg = hnew(n), *cs = hnew(n), *csg = hnew(n);
    uint16_t *yb = hnew16(nx);
    double *part = calloc((size_t)MODEL_NCHUNK * n, sizeof(double));
    fill(x, nx, 0, 2), fill(w, n, 1, 0.2), fill(dy, nx, 0, 1), fill(dx0, nx, 0, 1), fill(dw0, n, 0, 0.1);
    mops_rmsnorm_fwd(x, w, (size_t)rows, n, eps, y, r);
    for (size_t i = 0; i < nx; i++) ylow[i] = rb(y[i]);
    memcpy(dx, dx0, nx * 4), memcpy(dw, dw0, (size_t)n * 4), memcpy(cs, dw0, (size_t)n * 4);
    mops_rmsnorm_bwd(x, r, w, dy, (size_t)rows, n, dx, 1, dw, part);
    mops_colsum_prod(dy, x, (size_t)rows, n, cs, part);

    float *dx_ = dmal(nx * 4), *dw_ = dmal((size_t)n * 4), *dyf = dmal(nx * 4), *dr = dmal((size_t)rows * 4);
    float *dyg = dmal(nx * 4), *ddx = dmal(nx * 4), *ddw = dmal((size_t)n * 4), *dcs = dmal((size_t)n * 4);
    uint16_t *dyb = dmal(nx * 2);
    up(dx_, x, nx * 4), up(dw_, w, (size_t)n * 4), up(dyg, dy, nx * 4), up(ddx, dx0, nx * 4);
    up(ddw, dw0, (size_t)n * 4), up(dcs, dw0, (size_t)n * 4);
    snprintf(name, sizeof name, "model_gpu/rmsnorm forward %dx%d (f32 and bf16 out)", rows, n);
    if (dev_ok(name) && op_ok(mcuda_rmsnorm_forward(dx_, dw_, rows, n, eps, dyf, dyb, dr), name)) {
        down(yg, dyf, nx * 4), down(yb, dyb, nx * 2), down(rg, dr, (size_t)rows * 4);
        from_b(yb, ybg, nx);
        int g = guard_ok(dyf, nx * 4) && guard_ok(dyb, nx * 2) && guard_ok(dr, (size_t)rows * 4);
        if (dev_ok(name)) {
            double ey = rel_err(yg, y, nx), er = rel_err(rg, r, (size_t)rows);
            double eb = rel_err(ybg, y, nx), ec = rel_err(ylow, y, nx);
            CHECK(g && ey <= 1e-5 && er <= 1e-5 && eb <= 3 * ec + 1e-6, name,
                  "guards %d; f32 y %.3g, r %.3g (limit 1e-5); bf16 y %.3g (limit 3 x %.3g + 1e-6)", g, ey, er, eb, ec);
        }
    }
    /* with the residual's scaled copy: the same y, and xs = s x exactly (one fp32
     * product per element, as the CPU's) */
    snprintf(name, sizeof name, "model_gpu/rmsnorm forward %dx%d with the residual's scaled copy", rows, n);
    {
        float *sv = hnew(n), *xs = hnew(nx), *xsg = hnew(nx);
        fill(sv, n, 1, 0.3);
        for (size_t i = 0; i < nx; i++) xs[i] = sv[i % n] * x[i];
        float *ds = dmal((size_t)n * 4), *dxs = dmal(nx * 4);
        up(ds, sv, (size_t)n * 4);
        if (dev_ok(name) && op_ok(mcuda_rmsnorm_forward_res(dx_, dw_, rows, n, eps, dyb, dr, ds, dxs), name)) {
            down(yb, dyb, nx * 2), down(rg, dr, (size_t)rows * 4), down(xsg, dxs, nx * 4);
            from_b(yb, ybg, nx);
            int g = guard_ok(dyb, nx * 2) && guard_ok(dr, (size_t)rows * 4) && guard_ok(dxs, nx * 4);
            if (dev_ok(name)) {
                double er = rel_err(rg, r, (size_t)rows), eb = rel_err(ybg, y, nx), ec = rel_err(ylow, y, nx);
                size_t bad = 0;
                for (size_t i = 0; i < nx; i++) bad += memcmp(&xsg[i], &xs[i], 4) != 0;
                CHECK(g && er <= 1e-5 && eb <= 3 * ec + 1e-6 && bad == 0, name,
                      "guards %d; r %.3g (limit 1e-5); bf16 y %.3g (limit 3 x %.3g + 1e-6); xs elements differing: %zu",
                      g, er, eb, ec, bad);
            }
        }
        free(sv), free(xs), free(xsg);
    }
    snprintf(name, sizeof name, "model_gpu/rmsnorm backward %dx%d (dx accumulated, dw)", rows, n);
    up(dr, r, (size_t)rows * 4); /* the CPU's r: the backward on its own */
    if (dev_ok(name) && op_ok(mcuda_rmsnorm_backward(dx_, dr, dw_, dyg, rows, n, ddx, 1, ddw), name)) {
        down(dxg, ddx, nx * 4), down(dwg, ddw, (size_t)n * 4);
        int g = guard_ok(ddx, nx * 4) && guard_ok(ddw, (size_t)n * 4);
        if (dev_ok(name)) {
            double ex = rel_err(dxg, dx, nx), ew = rel_err(dwg, dw, (size_t)n);
            CHECK(g && ex <= 1e-5 && ew <= 1e-5, name, "guards %d; dx %.3g, dw %.3g (limit 1e-5)", g, ex, ew);
        }
    }
    snprintf(name, sizeof name, "model_gpu/rmsnorm backward %dx%d (dx written, no dw)", rows, n);
    up(ddx, dx0, nx * 4);
    memset(dw, 0, (size_t)n * 4), memcpy(dx, dx0, nx * 4);
    mops_rmsnorm_bwd(x, r, w, dy, (size_t)rows, n, dx, 0, dw, part);
    if (dev_ok(name) && op_ok(mcuda_rmsnorm_backward(dx_, dr, dw_, dyg, rows, n, ddx, 0, NULL), name)) {
        down(dxg, ddx, nx * 4);
        if (dev_ok(name)) check_f32(name, dxg, dx, nx, 1e-5);
    }
    snprintf(name, sizeof name, "model_gpu/column sums of products %dx%d", rows, n);
    if (dev_ok(name) && op_ok(mcuda_colsum_prod(dyg, dx_, rows, n, dcs), name)) {
        down(csg, dcs, (size_t)n * 4);
        if (dev_ok(name)) check_f32(name, csg, cs, (size_t)n, 1e-5);
    }
    /* the residual's backward in one pass: the same column sums (from dw0 again),
     * w dy and bf16(dy) */
    snprintf(name, sizeof name, "model_gpu/residual backward %dx%d (column sums, scaled copy, bf16 copy)", rows, n);
    up(dcs, dw0, (size_t)n * 4);
    if (dev_ok(name) && op_ok(mcuda_residual_backward(dyg, dx_, dw_, rows, n, ddx, dyb, dcs), name)) {
        down(csg, dcs, (size_t)n * 4), down(dxg, ddx, nx * 4), down(yb, dyb, nx * 2);
        from_b(yb, ybg, nx);
        int g = guard_ok(ddx, nx * 4) && guard_ok(dyb, nx * 2) && guard_ok(dcs, (size_t)n * 4);
        size_t bad_gr = 0, bad_gb = 0;
        for (size_t i = 0; i < nx; i++) {
            bad_gr += dxg[i] != w[i % n] * dy[i];
            bad_gb += ybg[i] != rb(dy[i]);
        }
        double ec = rel_err(csg, cs, (size_t)n);
        if (dev_ok(name))
            CHECK(g && ec <= 1e-5 && !bad_gr && !bad_gb, name,
                  "guards %d; column sums %.3g (limit 1e-5); %zu of %zu scaled and %zu bf16 elements differ", g, ec,
                  bad_gr, nx, bad_gb);
    }
    dfree_all();
    free(x), free(w), free(y), free(r), free(yg), free(rg), free(ylow), free(ybg), free(dy), free(dx0), free(dx);
    free(dxg), free(dw0), free(dw), free(dwg), free(cs), free(csg), free(yb), free(part);
}

/* ---- q/k norm + RoPE ---- */

typedef struct {
    int M, ld, H, K, D, n, pos0;
    const float *cs, *sn;
    float eps;
} qk_cpu;

/* layer_forward's per-head loop. */
static void qk_fwd_cpu(const qk_cpu *s, const float *qkv, const float *wq, const float *wk, float *qf, float *kf,
                       float *rq, float *rk) {
    int hD = s->D / 2, D = s->D;
    for (int i = 0; i < s->M; i++) {
        int pos = s->pos0 + i % s->n;
        const float *cs = s->cs + (size_t)pos * hD, *sn = s->sn + (size_t)pos * hD;
        for (int hh = 0; hh < s->H + s->K; hh++) {
            int isq = hh < s->H;
            const float *src = qkv + (size_t)i * s->ld + (size_t)hh * D;
            float *dst = isq ? qf + ((size_t)i * s->H + hh) * D : kf + ((size_t)i * s->K + hh - s->H) * D;
            const float *w = isq ? wq : wk;
            float ss = 0;
            for (int d = 0; d < D; d++) ss += src[d] * src[d];
            float r = 1.0f / sqrtf(ss / D + s->eps);
            if (isq) rq[(size_t)i * s->H + hh] = r;
            else rk[(size_t)i * s->K + hh - s->H] = r;
            for (int d = 0; d < D; d++) dst[d] = w[d] * (src[d] * r);
            mops_rope(dst, D, cs, sn);
        }
    }
}

/* layer_backward's per-head loop; dw += (double sums). */
static void qk_bwd_cpu(const qk_cpu *s, const float *qkv, const float *wq, const float *wk, const float *rq,
                       const float *rk, const float *dqf, const float *dkf, float *dqkv, float *dwq, float *dwk) {
    int hD = s->D / 2, D = s->D;
    double *acc = calloc((size_t)2 * D, sizeof(double));
    float tmp[ATTN_MAX_D];
    for (int i = 0; i < s->M; i++) {
        int pos = s->pos0 + i % s->n;
        const float *cs = s->cs + (size_t)pos * hD, *sn = s->sn + (size_t)pos * hD;
        for (int hh = 0; hh < s->H + s->K; hh++) {
            int isq = hh < s->H;
            const float *src = qkv + (size_t)i * s->ld + (size_t)hh * D;
            const float *g = isq ? dqf + ((size_t)i * s->H + hh) * D : dkf + ((size_t)i * s->K + hh - s->H) * D;
            const float *w = isq ? wq : wk;
            float r = isq ? rq[(size_t)i * s->H + hh] : rk[(size_t)i * s->K + hh - s->H];
            double *pw = acc + (isq ? 0 : D);
            memcpy(tmp, g, (size_t)D * sizeof(float));
            mops_rope_bwd(tmp, D, cs, sn);
            float sum = 0;
            for (int d = 0; d < D; d++) {
                float xh = src[d] * r;
                pw[d] += (double)(tmp[d] * xh);
                sum += tmp[d] * w[d] * xh;
            }
            sum /= D;
            float *dst = dqkv + (size_t)i * s->ld + (size_t)hh * D;
            for (int d = 0; d < D; d++) dst[d] = r * (tmp[d] * w[d] - src[d] * r * sum);
        }
    }
    for (int d = 0; d < D; d++) dwq[d] += (float)acc[d], dwk[d] += (float)acc[D + d];
    free(acc);
}

/* The q|k columns of (M, ld) rows, compacted. */
static void qk_cols(const qk_cpu *s, const float *x, float *out) {
    int w = (s->H + s->K) * s->D;
    for (int i = 0; i < s->M; i++) memcpy(out + (size_t)i * w, x + (size_t)i * s->ld, (size_t)w * sizeof(float));
}

static void test_qk(int M, int n, int pos0, int H, int K, int D, int bf16) {
    char name[160];
    model fm; /* just enough of a model for model_rope_ensure */
    memset(&fm, 0, sizeof fm);
    fm.D = D, fm.cfg.rope_theta = 10000.0, fm.cfg.max_position_embeddings = 64;
    if (model_rope_ensure(&fm, pos0 + n) != MODEL_OK) {
        CHECK(0, "model_gpu/q-k norm rope tables", "out of memory");
        return;
    }
    qk_cpu s = {M, (H + 2 * K) * D + 8, H, K, D, n, pos0, fm.rope_cos, fm.rope_sin, 1e-6f};
    const attn_dtype act = bf16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
    const size_t es = bf16 ? 2 : 4;
    size_t nqkv = (size_t)M * s.ld, nq = (size_t)M * H * D, nk = (size_t)M * K * D, ncol = (size_t)M * (H + K) * D;
    float *qkv = hnew(nqkv), *qkvl = hnew(nqkv), *wq = hnew(D), *wk = hnew(D);
    float *qf = hnew(nq), *kf = hnew(nk), *rq = hnew((size_t)M * H), *rk = hnew((size_t)M * K);
    float *qfl = hnew(nq), *kfl = hnew(nk), *rql = hnew((size_t)M * H), *rkl = hnew((size_t)M * K);
    float *qfg = hnew(nq), *kfg = hnew(nk), *rqg = hnew((size_t)M * H), *rkg = hnew((size_t)M * K);
    float *dqf = hnew(nq), *dkf = hnew(nk), *dqfl = hnew(nq), *dkfl = hnew(nk);
    float *dqkv = hnew(nqkv), *dqkvl = hnew(nqkv), *dqkvg = hnew(nqkv), *dw0 = hnew(2 * (size_t)D);
    float *dw = hnew(2 * (size_t)D), *dwl = hnew(2 * (size_t)D), *dwg = hnew(2 * (size_t)D);
    float *c1 = hnew(ncol), *c2 = hnew(ncol), *c3 = hnew(ncol);
    void *h16 = hnew16(nqkv);
    fill(qkv, nqkv, 0, 1), fill(wq, D, 1, 0.2), fill(wk, D, 1, 0.2), fill(dqf, nq, 0, 1), fill(dkf, nk, 0, 1);
    fill(dw0, 2 * (size_t)D, 0, 0.1);
    memcpy(qkvl, qkv, nqkv * 4), memcpy(dqfl, dqf, nq * 4), memcpy(dkfl, dkf, nk * 4);
    if (bf16) round_all(qkvl, nqkv), round_all(dqfl, nq), round_all(dkfl, nk);
    /* fp32 reference, and the CPU at the GPU's precision (bf16 inputs, bf16 outputs) */
    qk_fwd_cpu(&s, qkv, wq, wk, qf, kf, rq, rk);
    qk_fwd_cpu(&s, qkvl, wq, wk, qfl, kfl, rql, rkl);
    if (bf16) round_all(qfl, nq), round_all(kfl, nk);
    memcpy(dw, dw0, 2 * (size_t)D * 4), memcpy(dwl, dw0, 2 * (size_t)D * 4);
    for (size_t e = 0; e < nqkv; e++) dqkv[e] = dqkvl[e] = -3.0f; /* v's columns and the padding stay */
    qk_bwd_cpu(&s, qkv, wq, wk, rq, rk, dqf, dkf, dqkv, dw, dw + D);
    qk_bwd_cpu(&s, qkvl, wq, wk, rql, rkl, dqfl, dkfl, dqkvl, dwl, dwl + D);
    if (bf16) round_all(dqkvl, nqkv);

    void *dqkv_in = dmal(nqkv * es), *dq = dmal(nq * es), *dk = dmal(nk * es), *ddq = dmal(nq * es);
    void *ddk = dmal(nk * es), *ddqkv = dmal(nqkv * es);
    float *dwq_ = dmal((size_t)D * 4), *dwk_ = dmal((size_t)D * 4), *drq = dmal((size_t)M * H * 4);
    float *drk = dmal((size_t)M * K * 4), *dcos = dmal((size_t)fm.rope_len * D / 2 * 4);
    float *dsin = dmal((size_t)fm.rope_len * D / 2 * 4), *ddwq = dmal((size_t)D * 4), *ddwk = dmal((size_t)D * 4);
#define UP_ACT(dst, src, cnt)                              \
    do {                                                   \
        if (bf16) to_b(src, h16, cnt), up(dst, h16, (cnt) * 2); \
        else up(dst, src, (cnt) * 4);                      \
    } while (0)
#define DOWN_ACT(dst, src, cnt)                                   \
    do {                                                          \
        if (bf16) down(h16, src, (cnt) * 2), from_b(h16, dst, cnt); \
        else down(dst, src, (cnt) * 4);                           \
    } while (0)
    UP_ACT(dqkv_in, qkvl, nqkv);
    UP_ACT(ddq, dqfl, nq);
    UP_ACT(ddk, dkfl, nk);
    {
        float *fillv = hnew(nqkv);
        for (size_t e = 0; e < nqkv; e++) fillv[e] = -3.0f;
        UP_ACT(ddqkv, fillv, nqkv);
        free(fillv);
    }
    up(dwq_, wq, (size_t)D * 4), up(dwk_, wk, (size_t)D * 4);
    up(dcos, fm.rope_cos, (size_t)fm.rope_len * D / 2 * 4), up(dsin, fm.rope_sin, (size_t)fm.rope_len * D / 2 * 4);
    up(ddwq, dw0, (size_t)D * 4), up(ddwk, dw0 + D, (size_t)D * 4);
    mcuda_qk_shape sh = {M, s.ld, H, K, D, n, pos0, dcos, dsin, fm.rope_len, s.eps};

    snprintf(name, sizeof name, "model_gpu/q-k norm + rope forward %s M %d n %d pos0 %d H %d K %d D %d",
             bf16 ? "bf16" : "f32", M, n, pos0, H, K, D);
    if (dev_ok(name) && op_ok(mcuda_qk_norm_rope_forward(&sh, dqkv_in, dwq_, dwk_, dq, dk, drq, drk, act), name)) {
        DOWN_ACT(qfg, dq, nq);
        DOWN_ACT(kfg, dk, nk);
        down(rqg, drq, (size_t)M * H * 4), down(rkg, drk, (size_t)M * K * 4);
        int g = guard_ok(dq, nq * es) && guard_ok(dk, nk * es) && guard_ok(drq, (size_t)M * H * 4) &&
                guard_ok(drk, (size_t)M * K * 4);
        if (dev_ok(name)) {
            double eq = rel_err(qfg, qf, nq), ek = rel_err(kfg, kf, nk), erq = rel_err(rqg, rq, (size_t)M * H),
                   erk = rel_err(rkg, rk, (size_t)M * K);
            if (!bf16) {
                CHECK(g && eq <= 1e-5 && ek <= 1e-5 && erq <= 1e-5 && erk <= 1e-5, name,
                      "guards %d; q %.3g k %.3g rq %.3g rk %.3g (limit 1e-5)", g, eq, ek, erq, erk);
            } else {
                double cq = rel_err(qfl, qf, nq), ck = rel_err(kfl, kf, nk), crq = rel_err(rql, rq, (size_t)M * H),
                       crk = rel_err(rkl, rk, (size_t)M * K);
                CHECK(g && eq <= 3 * cq + 1e-6 && ek <= 3 * ck + 1e-6 && erq <= 3 * crq + 1e-6 &&
                          erk <= 3 * crk + 1e-6,
                      name, "guards %d; q %.3g (CPU at bf16 %.3g), k %.3g (%.3g), rq %.3g (%.3g), rk %.3g (%.3g); "
                      "limit 3x + 1e-6", g, eq, cq, ek, ck, erq, crq, erk, crk);
            }
        }
    }
    snprintf(name, sizeof name, "model_gpu/q-k norm + rope backward %s M %d n %d pos0 %d H %d K %d D %d",
             bf16 ? "bf16" : "f32", M, n, pos0, H, K, D);
    up(drq, rql, (size_t)M * H * 4), up(drk, rkl, (size_t)M * K * 4); /* the CPU's 1/rms: the backward on its own */
    if (dev_ok(name) && op_ok(mcuda_qk_norm_rope_backward(&sh, dqkv_in, dwq_, dwk_, drq, drk, ddq, ddk, ddqkv, ddwq,
                                                          ddwk, act),
                              name)) {
        DOWN_ACT(dqkvg, ddqkv, nqkv);
        down(dwg, ddwq, (size_t)D * 4), down(dwg + D, ddwk, (size_t)D * 4);
        int g = guard_ok(ddqkv, nqkv * es) && guard_ok(ddwq, (size_t)D * 4) && guard_ok(ddwk, (size_t)D * 4);
        int vcols = 1; /* v's columns and the row padding untouched */
        for (int i = 0; i < M; i++)
            for (int c = (H + K) * D; c < s.ld; c++) vcols &= dqkvg[(size_t)i * s.ld + c] == -3.0f;
        if (dev_ok(name)) {
            qk_cols(&s, dqkvg, c1), qk_cols(&s, dqkv, c2), qk_cols(&s, dqkvl, c3);
            double ex = rel_err(c1, c2, ncol), ew = rel_err(dwg, dw, 2 * (size_t)D);
            if (!bf16) {
                CHECK(g && vcols && ex <= 1e-5 && ew <= 1e-5, name,
                      "guards %d, v columns untouched %d; dqk %.3g, dw %.3g (limit 1e-5)", g, vcols, ex, ew);
            } else {
                double cx = rel_err(c3, c2, ncol), cw = rel_err(dwl, dw, 2 * (size_t)D);
                CHECK(g && vcols && ex <= 3 * cx + 1e-6 && ew <= 3 * cw + 1e-6, name,
                      "guards %d, v columns untouched %d; dqk %.3g (CPU at bf16 %.3g), dw %.3g (%.3g); limit 3x + 1e-6",
                      g, vcols, ex, cx, ew, cw);
            }
        }
    }
#undef UP_ACT
#undef DOWN_ACT
    dfree_all();
    free(fm.rope_cos), free(fm.rope_sin);
    free(qkv), free(qkvl), free(wq), free(wk), free(qf), free(kf), free(rq), free(rk), free(qfl), free(kfl);
    free(rql), free(rkl), free(qfg), free(kfg), free(rqg), free(rkg), free(dqf), free(dkf), free(dqfl), free(dkfl);
    free(dqkv), free(dqkvl), free(dqkvg), free(dw0), free(dw), free(dwl), free(dwg), free(c1), free(c2), free(c3);
    free(h16);
}

static void test_qk_errors(void) {
    mcuda_qk_shape s = {4, 3 * 7, 1, 1, 7, 4, 0, NULL, NULL, 0, 1e-6f};
    attn_status st = mcuda_qk_norm_rope_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ATTN_DTYPE_F32);
    CHECK(st == ATTN_ERR_INVALID && strstr(mcuda_last_error(), "even"), "model_gpu/q-k norm rejects an odd head dim",
          "%s: '%s'", attn_status_str(st), mcuda_last_error());
}

/* ---- SwiGLU ---- */

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

static void swiglu_cpu(const float *gu, const float *da, float *act, float *dgu, int M, int F) {
    for (int i = 0; i < M; i++) {
        const float *g = gu + (size_t)i * 2 * F, *u = g + F, *d = da + (size_t)i * F;
        float *a = act + (size_t)i * F, *dg = dgu + (size_t)i * 2 * F, *du = dg + F;
        for (int j = 0; j < F; j++) {
            a[j] = g[j] * sigm(g[j]) * u[j];
            float s = sigm(g[j]);
            du[j] = d[j] * g[j] * s;
            dg[j] = d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
        }
    }
}

static void test_swiglu(int M, int F, int bf16) {
    char name[128];
    snprintf(name, sizeof name, "model_gpu/swiglu forward and backward %s M %d F %d", bf16 ? "bf16" : "f32", M, F);
    size_t ng = (size_t)M * 2 * F, na = (size_t)M * F, es = bf16 ? 2 : 4;
    float *gu = hnew(ng), *da = hnew(na), *gul = hnew(ng), *dal = hnew(na), *act = hnew(na), *dgu = hnew(ng);
    float *actl = hnew(na), *dgul = hnew(ng), *actg = hnew(na), *dgug = hnew(ng);
    uint16_t *h16 = hnew16(ng);
    fill(gu, ng, 0, 2), fill(da, na, 0, 1);
    memcpy(gul, gu, ng * 4), memcpy(dal, da, na * 4);
    if (bf16) round_all(gul, ng), round_all(dal, na);
    swiglu_cpu(gu, da, act, dgu, M, F);
    swiglu_cpu(gul, dal, actl, dgul, M, F);
    if (bf16) round_all(actl, na), round_all(dgul, ng);
    void *dgu_in = dmal(ng * es), *dda = dmal(na * es), *dact = dmal(na * es), *ddgu = dmal(ng * es);
    if (bf16) {
        to_b(gul, h16, ng), up(dgu_in, h16, ng * 2);
        to_b(dal, h16, na), up(dda, h16, na * 2);
    } else {
        up(dgu_in, gu, ng * 4), up(dda, da, na * 4);
    }
    if (!dev_ok(name)) goto out;
    if (!op_ok(mcuda_swiglu_forward(dgu_in, dact, M, F, bf16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32), name)) goto out;
    if (!op_ok(mcuda_swiglu_backward(dgu_in, dda, ddgu, M, F, bf16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32), name)) goto out;
    if (bf16) {
        down(h16, dact, na * 2), from_b(h16, actg, na);
        down(h16, ddgu, ng * 2), from_b(h16, dgug, ng);
    } else {
        down(actg, dact, na * 4), down(dgug, ddgu, ng * 4);
    }
    {
        int g = guard_ok(dact, na * es) && guard_ok(ddgu, ng * es);
        if (!dev_ok(name)) goto out;
        double ea = rel_err(actg, act, na), ed = rel_err(dgug, dgu, ng);
        if (!bf16) {
            CHECK(g && ea <= 1e-5 && ed <= 1e-5, name, "guards %d; act %.3g, dgu %.3g (limit 1e-5)", g, ea, ed);
        } else {
            double ca = rel_err(actl, act, na), cd = rel_err(dgul, dgu, ng);
            CHECK(g && ea <= 3 * ca + 1e-6 && ed <= 3 * cd + 1e-6, name,
                  "guards %d; act %.3g (CPU at bf16 %.3g), dgu %.3g (%.3g); limit 3x + 1e-6", g, ea, ca, ed, cd);
        }
    }
out:
    dfree_all();
    free(gu), free(da), free(gul), free(dal), free(act), free(dgu), free(actl), free(dgul), free(actg), free(dgug);
    free(h16);
}

/* ---- cross-entropy ---- */

/* The CPU's unchunked pipeline: logits = x W^T, mops_cross_entropy, dx = dlogits W,
 * dW += dlogits^T x (double sums). dl_bf16 rounds dlogits as the GPU feeds them
 * to its GEMMs. */
static int64_t ce_cpu(const float *x, const float *W, const int32_t *labels, int rows, int C, int V, double scale,
                      int dl_bf16, float *rowloss, float *dx, float *dW) {
    float *logits = hnew((size_t)rows * V), *dl = hnew((size_t)rows * V);
    double *rl = calloc((size_t)rows, sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)x[(size_t)i * C + c] * W[(size_t)v * C + c];
            logits[(size_t)i * V + v] = (float)s;
        }
    int64_t n = mops_cross_entropy(logits, labels, (size_t)rows, V, rl, dl, scale);
    if (dl_bf16) round_all(dl, (size_t)rows * V);
    for (int i = 0; i < rows; i++) {
        rowloss[i] = (float)rl[i];
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int v = 0; v < V; v++) s += (double)dl[(size_t)i * V + v] * W[(size_t)v * C + c];
            dx[(size_t)i * C + c] = (float)s;
        }
    }
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int i = 0; i < rows; i++) s += (double)dl[(size_t)i * V + v] * x[(size_t)i * C + c];
            dW[(size_t)v * C + c] = (float)(dW[(size_t)v * C + c] + s);
        }
    free(logits), free(dl), free(rl);
    return n;
}

/* bf16: the bf16 rule against the CPU at bf16 (inputs and dlogits rounded);
 * fp32: within 1e-5 of the CPU. */
static void test_ce(int rows, int C, int V, int chunk, int bf16) {
    char name[160];
    snprintf(name, sizeof name, "model_gpu/cross-entropy %s rows %d C %d V %d chunk %d (ignored rows)",
             bf16 ? "bf16" : "f32", rows, C, V, chunk);
    const size_t es = bf16 ? 2 : 4;
    const attn_dtype dt = bf16 ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
    size_t nx = (size_t)rows * C, nw = (size_t)V * C;
    int32_t *labels = malloc((size_t)rows * sizeof *labels);
    float *x = hnew(nx), *W = hnew(nw), *xl = hnew(nx), *Wl = hnew(nw), *dW0 = hnew(nw);
    float *rl = hnew(rows), *dx = hnew(nx), *dW = hnew(nw), *rll = hnew(rows), *dxl = hnew(nx), *dWl = hnew(nw);
    float *rlg = hnew(rows), *dxg = hnew(nx), *dWg = hnew(nw), *rlu = hnew(rows);
    uint16_t *h16 = hnew16(nw > nx ? nw : nx);
    for (int i = 0; i < rows; i++) labels[i] = i % 4 == 0 ? MODEL_IGNORE : (int32_t)rng_below(&R, (uint64_t)V);
    int64_t n_expect = 0;
    for (int i = 0; i < rows; i++) n_expect += labels[i] != MODEL_IGNORE;
    double scale = 1.0 / (double)n_expect;
    fill(x, nx, 0, 1), fill(W, nw, 0, 0.15), fill(dW0, nw, 0, 0.01);
    memcpy(xl, x, nx * 4), memcpy(Wl, W, nw * 4);
    if (bf16) round_all(xl, nx), round_all(Wl, nw);
    memcpy(dW, dW0, nw * 4), memcpy(dWl, dW0, nw * 4);
    int64_t n_ref = ce_cpu(x, W, labels, rows, C, V, scale, 0, rl, dx, dW);
    ce_cpu(xl, Wl, labels, rows, C, V, scale, bf16, rll, dxl, dWl);
    double sum_ref = 0, sum_low = 0;
    for (int i = 0; i < rows; i++) sum_ref += rl[i], sum_low += rll[i];

    int32_t *dlab = dmal((size_t)rows * 4);
    void *dx_in = dmal(nx * es), *dw_in = dmal(nw * es);
    float *drl = dmal((size_t)rows * 4), *ddx = dmal(nx * 4), *ddW = dmal(nw * 4);
    up(dlab, labels, (size_t)rows * 4);
    if (bf16) {
        to_b(x, h16, nx), up(dx_in, h16, nx * 2);
        to_b(W, h16, nw), up(dw_in, h16, nw * 2);
    } else {
        up(dx_in, x, nx * 4), up(dw_in, W, nw * 4);
    }
    up(ddW, dW0, nw * 4);
    if (!dev_ok(name)) goto out;
    int64_t cnt = -1;
    double lsum = 0;
    if (!op_ok(mcuda_cross_entropy(dx_in, dw_in, dt, dlab, rows, C, V, chunk, scale, drl, ddx, ddW, &cnt, &lsum),
               name))
        goto out;
    down(rlg, drl, (size_t)rows * 4), down(dxg, ddx, nx * 4), down(dWg, ddW, nw * 4);
    {
        int g = guard_ok(drl, (size_t)rows * 4) && guard_ok(ddx, nx * 4) && guard_ok(ddW, nw * 4);
        if (!dev_ok(name)) goto out;
        int zeros = 1;
        for (int i = 0; i < rows; i++) zeros &= labels[i] != MODEL_IGNORE || rlg[i] == 0.0f;
        double el = rel_err(rlg, rl, (size_t)rows), cl = rel_err(rll, rl, (size_t)rows);
        double ex = rel_err(dxg, dx, nx), cx = rel_err(dxl, dx, nx);
        double ew = rel_err(dWg, dW, nw), cw = rel_err(dWl, dW, nw);
        double esum = fabs(lsum - sum_ref) / fabs(sum_ref), cs = fabs(sum_low - sum_ref) / fabs(sum_ref);
        /* bf16: 3x the CPU's error at bf16 (+ 1e-6); fp32: 1e-5 */
#define LIM(c) (bf16 ? 3 * (c) + 1e-6 : 1e-5)
        CHECK(g && zeros && cnt == n_ref && n_ref == n_expect && el <= LIM(cl) && ex <= LIM(cx) && ew <= LIM(cw) &&
                  esum <= LIM(cs),
              name,
              "guards %d, ignored rows 0 %d, count %lld (CPU %lld); relative errors (limit %s): row losses %.3g "
              "(CPU at bf16 %.3g), loss sum %.3g (%.3g), dx %.3g (%.3g), dW %.3g (%.3g)",
              g, zeros, (long long)cnt, (long long)n_ref, bf16 ? "3 x CPU's at bf16 + 1e-6" : "1e-5", el, cl, esum,
              cs, ex, cx, ew, cw);
#undef LIM
    }
    /* unchunked and without gradients: the same losses, fp32 rounding apart */
    snprintf(name, sizeof name, "model_gpu/cross-entropy %s rows %d V %d: chunk %d equals one chunk, no gradients",
             bf16 ? "bf16" : "f32", rows, V, chunk);
    cnt = -1;
    if (op_ok(mcuda_cross_entropy(dx_in, dw_in, dt, dlab, rows, C, V, 0, scale, drl, NULL, NULL, &cnt, NULL), name)) {
        down(rlu, drl, (size_t)rows * 4);
        if (dev_ok(name)) {
            double e = rel_err(rlu, rlg, (size_t)rows);
            CHECK(cnt == n_ref && e <= 1e-5, name, "count %lld, row losses differ by %.3g (limit 1e-5)",
                  (long long)cnt, e);
        }
    }
out:
    dfree_all();
    free(labels), free(x), free(W), free(xl), free(Wl), free(dW0), free(rl), free(dx), free(dW), free(rll);
    free(dxl), free(dWl), free(rlg), free(dxg), free(dWg), free(rlu), free(h16);
}

static void test_ce_bad_label(void) {
    const char *name = "model_gpu/cross-entropy rejects a label outside the vocabulary";
    int32_t lab[3] = {1, MODEL_IGNORE, 9};
    uint16_t xw[3 * 4];
    for (int i = 0; i < 12; i++) xw[i] = f2b(0.5f);
    int32_t *dl = dmal(sizeof lab);
    uint16_t *dx = dmal(sizeof xw), *dw = dmal(sizeof xw);
    up(dl, lab, sizeof lab), up(dx, xw, sizeof xw), up(dw, xw, sizeof xw);
    if (dev_ok(name)) {
        int64_t cnt = 0;
        attn_status st = mcuda_cross_entropy(dx, dw, ATTN_DTYPE_BF16, dl, 3, 4, 3, 0, 1.0, NULL, NULL, NULL, &cnt, NULL);
        CHECK(st == ATTN_ERR_INVALID && strstr(mcuda_last_error(), "label"), name, "%s: '%s'", attn_status_str(st),
              mcuda_last_error());
    }
    dfree_all();
}

/* ---- AdamW and the gradient norm, on a real model's parameter table ---- */

static void test_adamw(void) {
    const char *name = "model_gpu/adamw";
    model_config c;
    tiny_config(&c, ATTN_MHA);
    c.vocab_size = 1000, c.hidden_size = 96, c.intermediate_size = 160, c.head_dim = 32;
    c.train.steps = 3, c.train.warmup = 1, c.train.weight_decay = 0.1, c.train.clip = 1.0;
    model *m = NULL;
    char err[256];
    if (model_create(&c, &m, err, sizeof err) != MODEL_OK) {
        CHECK(0, name, "model_create: %s", err);
        return;
    }
    tiny_randomize(m, 3, 0.5);
    size_t np = m->np;
    int ndec = 0;
    for (int i = 0; i < m->nt; i++) ndec += m->t[i].decay;
    model_adamw *o = NULL;
    mcuda_adamw *go = NULL;
    float *p = hnew(np), *m1 = hnew(np), *m2 = hnew(np);
    uint16_t *pb = hnew16(np);
    float *dp = dmal(np * 4), *dg = dmal(np * 4);
    uint16_t *dpb = dmal(np * 2);
    up(dp, m->p, np * 4);
    /* the bf16 copy of every float, gaps between tensors included, as model_gpu's upload makes it */
    if (!dev_ok(name) || !op_ok(mcuda_f32_to_bf16(dp, dpb, np), name)) goto out;
    if (model_adamw_create(m, &o) != MODEL_OK) {
        CHECK(0, name, "model_adamw_create failed");
        goto out;
    }
    if (!dev_ok(name) || !op_ok(mcuda_adamw_create(m->t, m->nt, np, &go), name)) goto out;
    for (int step = 0; step < 3; step++) {
        char nm[96];
        snprintf(nm, sizeof nm, "%s step %d%s equals the CPU update (%d of %d tensors decay)", name, step + 1,
                 step == 1 ? " (clipped)" : "", ndec, m->nt);
        fill(m->g, np, 0, step == 1 ? 0.2 : 0.01);
        up(dg, m->g, np * 4);
        float gscale = 1.0f;
        if (step == 1) { /* clip as model_trainer_step does */
            double gn = model_grad_norm(m), clip = 0.5 * gn;
            gscale = (float)(clip / gn);
            for (size_t e = 0; e < np; e++) m->g[e] *= gscale;
        }
        double lr = model_lr_at(&c.train, step);
        model_adamw_update(m, o, lr, &c.train);
        if (!op_ok(mcuda_adamw_update(go, dp, dg, dpb, lr, &c.train, gscale), nm)) goto out;
        down(p, dp, np * 4), down(m1, mcuda_adamw_m1(go), np * 4), down(m2, mcuda_adamw_m2(go), np * 4);
        down(pb, dpb, np * 2);
        int g = guard_ok(dp, np * 4) && guard_ok(dpb, np * 2);
        if (!dev_ok(nm)) goto out;
        const float *cm1 = model_adamw_m1(o), *cm2 = model_adamw_m2(o);
        size_t bad = 0, exact = 0, badb = 0;
        double worst = 0;
        for (size_t e = 0; e < np; e++) {
            const float a[3] = {p[e], m1[e], m2[e]}, b[3] = {m->p[e], cm1[e], cm2[e]};
            int same = 1;
            for (int k = 0; k < 3; k++) {
                double d = fabs((double)a[k] - b[k]), lim = 1e-6 * fabs((double)b[k]);
                if (!(d <= lim)) bad++;
                if (b[k] != 0 && d / fabs((double)b[k]) > worst) worst = d / fabs((double)b[k]);
                same &= a[k] == b[k];
            }
            exact += same;
            badb += pb[e] != f2b(p[e]);
        }
        CHECK(g && !bad && !badb && mcuda_adamw_steps(go) == step + 1, nm,
              "guards %d; %zu values beyond 1e-6 relative (worst %.3g), %zu of %zu elements bit-exact, %zu bf16 "
              "copies wrong, steps %lld",
              g, bad, worst, exact, np, badb, (long long)mcuda_adamw_steps(go));
    }
    /* gradient norm: the CPU's double sum, aligned and at an odd offset */
    {
        const char *nn = "model_gpu/gradient norm (aligned, unaligned, deterministic)";
        fill(m->g, np, 0, 0.05);
        up(dg, m->g, np * 4);
        double ref = model_grad_norm(m), g1 = 0, g2 = 0, g3 = 0;
        if (op_ok(mcuda_grad_norm(dg, np, &g1), nn) && op_ok(mcuda_grad_norm(dg, np, &g2), nn) &&
            op_ok(mcuda_grad_norm(dg + 1, np - 1, &g3), nn)) {
            double s = 0;
            for (size_t e = 1; e < np; e++) s += (double)m->g[e] * m->g[e];
            double ref3 = sqrt(s);
            double e1 = fabs(g1 - ref) / ref, e3 = fabs(g3 - ref3) / ref3;
            CHECK(e1 <= 1e-12 && e3 <= 1e-12 && g1 == g2, nn,
                  "relative error %.3g and %.3g at offset 1 (limit 1e-12), repeat %s", e1, e3,
                  g1 == g2 ? "identical" : "differs");
        }
    }
    {
        const char *ns = "model_gpu/scale (clipping) equals the CPU's multiply";
        float s = 0.3719f;
        if (op_ok(mcuda_scale(dg + 3, np - 3, s), ns)) {
            down(p, dg, np * 4);
            size_t bad = 0;
            for (size_t e = 0; e < np; e++) bad += p[e] != (e < 3 ? m->g[e] : m->g[e] * s);
            CHECK(dev_ok(ns) && !bad, ns, "%zu of %zu values differ", bad, np);
        }
    }
out:
    dfree_all();
    mcuda_adamw_free(go);
    model_adamw_free(o);
    model_free(m);
    free(p), free(m1), free(m2), free(pb);
}

/* ---- casts ---- */

static void test_casts(size_t n, int off) {
    char name[128];
    snprintf(name, sizeof name, "model_gpu/casts f32 <-> bf16 n %zu offset %d (round to nearest even)", n, off);
    float *x = hnew(n + off), *back = hnew(n + off);
    uint16_t *b = hnew16(n + off);
    fill(x, n + off, 0, 3);
    /* exact ties and specials: round-half-to-even must pick the even neighbour */
    const uint32_t pat[6] = {0x3f808000u, 0x3f818000u, 0x7f800000u, 0xff800000u, 0x00000001u, 0x80000000u};
    for (int k = 0; k < 6 && (size_t)k < n; k++) memcpy(&x[off + k], &pat[k], 4);
    float *dx = dmal((n + off) * 4), *dback = dmal((n + off) * 4);
    uint16_t *db = dmal((n + off) * 2);
    up(dx, x, (n + off) * 4);
    if (dev_ok(name) && op_ok(mcuda_f32_to_bf16(dx + off, db + off, n), name) &&
        op_ok(mcuda_bf16_to_f32(db + off, dback + off, n), name)) {
        down(b, db, (n + off) * 2), down(back, dback, (n + off) * 4);
        int g = guard_ok(db, (n + off) * 2) && guard_ok(dback, (n + off) * 4);
        size_t bad = 0;
        for (size_t e = off; e < n + off; e++) bad += b[e] != f2b(x[e]) || memcmp(&back[e], &(float){b2f(b[e])}, 4);
        CHECK(dev_ok(name) && g && !bad, name, "guards %d, %zu of %zu values differ", g, bad, n);
    }
    dfree_all();
    free(x), free(back), free(b);
}

int main(void) {
    const char *gpu = getenv("DMABENCH_GPU");
    if (!gpu || strcmp(gpu, "1")) {
        printf("# skipped: the model's GPU op tests run with DMABENCH_GPU=1\n");
        return 0;
    }
    cuda_info ci;
    if (cuda_query(&ci)) {
        printf("# skipped: no CUDA device\n");
        return 0;
    }
    printf("# %s (sm %s), CUDA runtime %s\n", ci.name, ci.cc, ci.runtime);
    rng_seed(&R, 20261128);
    size_t mem0 = dm_cuda_mem_current();

    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_gemm(37, 96, 1000, ta, tb, 8, 0, 0.5f);
            test_gemm(1000, 96, 37, ta, tb, 1, 0, 1.0f); /* odd leading dimensions */
            test_gemm_f32(37, 259, 96, ta, tb);
        }
    test_gemm(37, 1000, 96, 0, 1, 8, 1, 0.0f);
    test_gemm(37, 259, 96, 1, 0, 3, 1, 0.5f);
    test_gemm_edges();

    test_embed(37, 1000, 96);
    test_embed(37, 259, 97);

    test_rmsnorm(37, 96);
    test_rmsnorm(37, 97);
    test_rmsnorm(300, 1024);

    for (int bf16 = 0; bf16 < 2; bf16++) {
        test_qk(37, 37, 3, 4, 2, 64, bf16);
        test_qk(74, 37, 0, 4, 2, 128, bf16);
        test_qk(37, 20, 5, 3, 1, 42, bf16); /* D/2 = 21: partial lanes */
    }
    test_qk_errors();

    for (int bf16 = 0; bf16 < 2; bf16++) {
        test_swiglu(37, 96, bf16);
        test_swiglu(37, 97, bf16);
    }

    for (int bf16 = 0; bf16 < 2; bf16++) {
        test_ce(37, 96, 1000, 8, bf16);
        test_ce(37, 64, 259, 16, bf16);
    }
    test_ce_bad_label();

    test_adamw();

    test_casts(1003, 0);
    test_casts(1003, 1);

    printf("# %d GEMM calls ran on cublasGemmEx (no cuBLASLt algorithm for their alignment)\n", mcuda_gemm_fallbacks());
    mcuda_release();
    size_t mem1 = dm_cuda_mem_current();
    CHECK(mem1 == mem0, "model_gpu/no device memory left behind", "%zu bytes before, %zu after", mem0, mem1);
    return check_exit();
}
#endif
