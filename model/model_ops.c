/*
 * model_ops.c: the model's elementwise and row-wise kernels (RMSNorm, RoPE,
 * cross-entropy, column reductions) and the timed GEMM wrapper.
 *
 * Row loops run under OpenMP with a static schedule; every reduction over rows
 * goes through MODEL_NCHUNK fixed chunks summed in order, so results are the
 * same whatever the thread count.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model_internal.h"

/* C = alpha op(A) op(B) + beta C, row-major. OpenBLAS runs single-threaded
 * inside an OpenMP team that splits C into row (or column) slabs: one thread
 * pool for the whole model, so OpenBLAS's spinning workers never compete with
 * OpenMP's on the cores (measured: up to 2x slower steps when both pools were
 * live on 2 cores). Every slab keeps the full K, so an element's sum does not
 * depend on the thread count. */
void mops_gemm(model *m, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
    double t0 = omp_get_wtime();
    int nt = omp_get_max_threads();
    double work = 2.0 * M * N * K;
    if (work < 4e6) nt = 1; /* not worth waking the team */
    int by_rows = M >= N;
    int extent = by_rows ? M : N;
    if (nt > extent / 16) nt = extent / 16 > 0 ? extent / 16 : 1;
    CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    if (nt <= 1) {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), n = omp_get_num_threads();
            /* slabs in multiples of 16 rows/columns */
            int blocks = (extent + 15) / 16;
            int b0 = (int)((long long)blocks * t / n), b1 = (int)((long long)blocks * (t + 1) / n);
            int lo = b0 * 16, hi = b1 * 16 < extent ? b1 * 16 : extent;
            if (hi > lo) {
                if (by_rows) {
                    const float *As = ta ? A + lo : A + (size_t)lo * lda;
                    cblas_sgemm(CblasRowMajor, TA, TB, hi - lo, N, K, alpha, As, lda, B, ldb, beta,
                                C + (size_t)lo * ldc, ldc);
                } else {
                    const float *Bs = tb ? B + (size_t)lo * ldb : B + lo;
                    cblas_sgemm(CblasRowMajor, TA, TB, M, hi - lo, K, alpha, A, lda, Bs, ldb, beta, C + lo, ldc);
                }
            }
        }
    }
    m->tm.gemm_s += omp_get_wtime() - t0;
    m->tm.gemm_flops += work;
}

void mops_rmsnorm_fwd(const float *x, const float *w, size_t rows, int n, double eps, float *y, float *r) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < rows; i++) {
        const float *xr = x + i * n;
        float *yr = y + i * n;
        float ss = 0;
        for (int j = 0; j < n; j++) ss += xr[j] * xr[j];
        float rs = 1.0f / sqrtf(ss / n + (float)eps);
        r[i] = rs;
        for (int j = 0; j < n; j++) yr[j] = w[j] * (xr[j] * rs);
    }
}

static void chunk_range(size_t rows, int c, size_t *lo, size_t *hi) {
    *lo = rows * (size_t)c / MODEL_NCHUNK;
    *hi = rows * (size_t)(c + 1) / MODEL_NCHUNK;
}

void mops_rmsnorm_bwd(const float *x, const float *r, const float *w, const float *dy, size_t rows, int n,
                      float *dx, int acc, float *dw, double *part) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < MODEL_NCHUNK; c++) {
        double *pc = part + (size_t)c * n;
        memset(pc, 0, (size_t)n * sizeof(double));
        size_t lo, hi;
        chunk_range(rows, c, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const float *xr = x + i * n, *dyr = dy + i * n;
            float *dxr = dx + i * n;
            float rs = r[i], s = 0;
            for (int j = 0; j < n; j++) {
                float xh = xr[j] * rs;
                pc[j] += (double)(dyr[j] * xh);
                s += dyr[j] * w[j] * xh;
            }
            s /= n;
            for (int j = 0; j < n; j++) {
                float v = rs * (dyr[j] * w[j] - xr[j] * rs * s);
                dxr[j] = acc ? dxr[j] + v : v;
            }
        }
    }
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int c = 0; c < MODEL_NCHUNK; c++) s += part[(size_t)c * n + j];
        dw[j] += (float)s;
    }
}

void mops_colsum_prod(const float *a, const float *b, size_t rows, int n, float *out, double *part) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < MODEL_NCHUNK; c++) {
        double *pc = part + (size_t)c * n;
        memset(pc, 0, (size_t)n * sizeof(double));
        size_t lo, hi;
        chunk_range(rows, c, &lo, &hi);
        for (size_t i = lo; i < hi; i++)
            for (int j = 0; j < n; j++) pc[j] += (double)(a[i * n + j] * b[i * n + j]);
    }
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int c = 0; c < MODEL_NCHUNK; c++) s += part[(size_t)c * n + j];
        out[j] += (float)s;
    }
}

/* HF's rotate_half: for j < D/2, (x_j, x_{j+D/2}) rotates by the angle of pair j. */
void mops_rope(float *x, int D, const float *cs, const float *sn) {
    int h = D / 2;
    for (int j = 0; j < h; j++) {
        float a = x[j], b = x[j + h];
        x[j] = a * cs[j] - b * sn[j];
        x[j + h] = b * cs[j] + a * sn[j];
    }
}

void mops_rope_bwd(float *dx, int D, const float *cs, const float *sn) {
    int h = D / 2;
    for (int j = 0; j < h; j++) {
        float a = dx[j], b = dx[j + h];
        dx[j] = a * cs[j] + b * sn[j];
        dx[j + h] = b * cs[j] - a * sn[j];
    }
}

int64_t mops_cross_entropy(const float *logits, const int32_t *labels, size_t rows, int V, double *rowloss,
                           float *dlogits, double scale) {
    int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count)
    for (size_t i = 0; i < rows; i++) {
        const float *lr = logits + i * V;
        int y = labels[i];
        if (y == MODEL_IGNORE) {
            rowloss[i] = 0;
            if (dlogits) memset(dlogits + i * V, 0, (size_t)V * sizeof(float));
            continue;
        }
        count++;
        float mx = lr[0];
        for (int j = 1; j < V; j++) mx = lr[j] > mx ? lr[j] : mx;
        double s = 0;
        for (int j = 0; j < V; j++) s += exp((double)(lr[j] - mx));
        double lse = mx + log(s);
        rowloss[i] = lse - lr[y];
        if (dlogits) {
            float *dr = dlogits + i * V;
            for (int j = 0; j < V; j++) dr[j] = (float)(scale * exp((double)lr[j] - lse));
            dr[y] -= (float)scale;
        }
    }
    return count;
}
