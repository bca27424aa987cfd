/*
 * report.c: provenance, master records and atomic report writes.
 */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cuda_info.h"
#include "version.h"

static void cpu_model(char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static const char *cpu_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2")) return "avx2";
    return "portable";
}

void report_card(const char *backend, char *out, size_t n) {
    cuda_info ci;
    if (backend && !strcmp(backend, "cuda") && cuda_query(&ci) == 0) snprintf(out, n, "%s", ci.name);
    else cpu_model(out, n);
}

cJSON *report_provenance(int argc, char **argv, uint64_t seed) {
    cJSON *p = cJSON_CreateObject();
    cJSON *build = cJSON_AddObjectToObject(p, "build");
    cJSON_AddStringToObject(build, "git_commit", DMABENCH_GIT_COMMIT);
    cJSON_AddBoolToObject(build, "git_dirty", DMABENCH_GIT_DIRTY);
    cJSON_AddStringToObject(build, "compiler", "gcc " __VERSION__);
    cJSON_AddStringToObject(build, "cflags", DMABENCH_CFLAGS);
    cJSON_AddBoolToObject(build, "cuda", cuda_built());

    cJSON *m = cJSON_AddObjectToObject(p, "machine");
    char buf[256];
    cpu_model(buf, sizeof buf);
    cJSON_AddStringToObject(m, "cpu", buf);
    cJSON_AddStringToObject(m, "cpu_isa", cpu_isa());
    cJSON_AddNumberToObject(m, "cpu_cores_online", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(m, "threads", omp_get_max_threads());
    if (gethostname(buf, sizeof buf) == 0) {
        buf[sizeof buf - 1] = 0;
        cJSON_AddStringToObject(m, "hostname", buf);
    }
    cuda_info ci;
    if (cuda_query(&ci) == 0) {
        cJSON *g = cJSON_AddObjectToObject(m, "gpu");
        cJSON_AddStringToObject(g, "name", ci.name);
        cJSON_AddStringToObject(g, "compute_capability", ci.cc);
        cJSON_AddNumberToObject(g, "sm_count", ci.sm_count);
        cJSON_AddNumberToObject(g, "memory_bytes", (double)ci.mem_bytes);
        cJSON_AddNumberToObject(g, "clock_mhz", ci.clock_mhz);
        cJSON_AddNumberToObject(g, "memory_clock_mhz", ci.mem_clock_mhz);
        cJSON_AddStringToObject(g, "cuda_runtime", ci.runtime);
        cJSON_AddStringToObject(g, "cuda_driver", ci.driver);
    } else {
        cJSON_AddNullToObject(m, "gpu");
    }

    cJSON *r = cJSON_AddObjectToObject(p, "run");
    cJSON_AddNumberToObject(r, "seed", (double)seed);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(r, "utc_time", buf);
    cJSON *cmd = cJSON_AddArrayToObject(r, "command_line");
    for (int i = 0; i < argc; i++) cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
    cJSON_AddStringToObject(r, "dmabench_version", DMABENCH_VERSION);
    /* the environment variables that choose kernel or op versions, where set
     * (tests/reports.sh checks that every DMABENCH_ variable the code reads is
     * here, or is one that only prints diagnostics) */
    static const char *const kernel_env[] = {
        /* the CPU kernels; the CUDA engine; decode; dma; nsa; the model */
        "DMABENCH_ISA",
        "DMABENCH_CUDA_BWD_TILE", "DMABENCH_CUDA_BWD_KEYPAR", "DMABENCH_CUDA_BWD_KPSPLIT", "DMABENCH_CUDA_BWD_W16", "DMABENCH_CUDA_WGMMA",
        "DMABENCH_CUDA_WGMMA_BWD", "DMABENCH_CUDA_BWD_WG_OVERLAP", "DMABENCH_CUDA_BWD_WG_REDUCER", "DMABENCH_CUDA_BWD_TMA", "DMABENCH_CUDA_BWD_MC", "DMABENCH_CUDA_FWD_WS", "DMABENCH_CUDA_FWD_TMA", "DMABENCH_CUDA_TILE_ORDER",
        "DMABENCH_DECODE_WAVES", "DMABENCH_DECODE_SEL_CTAS", "DMABENCH_DECODE_SEL_SAMPLE", "DMABENCH_DECODE_PDL",
        "DMABENCH_DECODE_LIST_KEYS", "DMABENCH_DECODE_FUSED",
        "DMABENCH_DMA_SAVED", "DMABENCH_DMA_RESIDUAL",
        "DMABENCH_NSA_TC", "DMABENCH_NSA_TC_BWD", "DMABENCH_NSA_PICK", "DMABENCH_NSA_CMP_BLK", "DMABENCH_NSA_CMP_TC",
        "DMABENCH_NSA_CMP_WIDE",
        "DMABENCH_NSA_SEL_WARPS", "DMABENCH_NSA_SEL_MMA", "DMABENCH_NSA_SLC", "DMABENCH_NSA_PAIR_QUERIES", "DMABENCH_NSA_PAIR_DSUM",
        "DMABENCH_NSA_SEL_STAGES", "DMABENCH_NSA_PAIR_MINB", "DMABENCH_NSA_PAIR_BWD_SUB", "DMABENCH_NSA_PAIR_BWD_W8", "DMABENCH_NSA_PAIR_FWD_SUB",
        "DMABENCH_NSA_SAVED", "DMABENCH_NSA_KEEP_LISTS", "DMABENCH_NSA_BWD_ROWS",
        "DMABENCH_GPU_KV_CACHE", "DMABENCH_GEMM_TUNE", "DMABENCH_HEAD_ALL_ROWS"};
    cJSON *env = cJSON_AddObjectToObject(r, "environment");
    for (size_t i = 0; i < sizeof kernel_env / sizeof kernel_env[0]; i++) {
        const char *v = getenv(kernel_env[i]);
        if (v) cJSON_AddStringToObject(env, kernel_env[i], v);
    }
    return p;
}

cJSON *report_new(cJSON *prov) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "schema_version", REPORT_SCHEMA_VERSION);
    cJSON_AddItemToObject(r, "provenance", prov);
    cJSON_AddArrayToObject(r, "records");
    return r;
}

void report_add(cJSON *report, cJSON *record) {
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(report, "records"), record);
}

cJSON *record_kernel(const attn_params *p, attn_variant v, attn_backend b, attn_mode m,
                     const char *status) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "kind", "kernel");
    cJSON_AddStringToObject(r, "variant", attn_variant_name(v));
    cJSON_AddStringToObject(r, "backend", attn_backend_name(b));
    cJSON_AddStringToObject(r, "mode", attn_mode_name(m));
    cJSON *s = cJSON_AddObjectToObject(r, "shape");
    cJSON_AddNumberToObject(s, "B", p->B);
    cJSON_AddNumberToObject(s, "Nq", p->Nq);
    cJSON_AddNumberToObject(s, "Nk", p->Nk);
    cJSON_AddNumberToObject(s, "Hq", p->Hq);
    cJSON_AddNumberToObject(s, "Hkv", p->Hkv);
    cJSON_AddNumberToObject(s, "D", p->D);
    cJSON_AddStringToObject(r, "dtype", attn_dtype_name(p->dtype));
    cJSON *st = cJSON_AddObjectToObject(r, "settings");
    cJSON_AddBoolToObject(st, "causal", p->causal);
    cJSON_AddNumberToObject(st, "scale", p->scale);
    if (v != ATTN_MHA) cJSON_AddNumberToObject(st, "w", p->w);
    if (v == ATTN_DMA) cJSON_AddStringToObject(st, "dma_mode", p->dma_mode == DMA_MODE_EXP ? "exp" : "linear");
    if (v == ATTN_NSA) {
        cJSON_AddNumberToObject(st, "nsa_l", p->nsa_l);
        cJSON_AddNumberToObject(st, "nsa_d", p->nsa_d);
        cJSON_AddNumberToObject(st, "nsa_ls", p->nsa_ls);
        cJSON_AddNumberToObject(st, "nsa_n", p->nsa_n);
        cJSON_AddStringToObject(st, "nsa_cmp", p->nsa_cmp == NSA_CMP_LINEAR ? "linear" : "mean");
    }
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddNumberToObject(r, "flops_dense", attn_flops_dense(p, m));
    cJSON_AddNumberToObject(r, "flops_effective", attn_flops_effective(p, v, m));
    cJSON_AddNumberToObject(r, "bytes", attn_bytes(p, v, m));
    return r;
}

int write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t err_len) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_len, "cannot write '%s' (cannot rename the temporary file onto it): %s", path,
                 strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int report_write(const char *path, const cJSON *obj, char *err, size_t err_len) {
    char *s = cJSON_Print(obj);
    if (!s) {
        snprintf(err, err_len, "out of memory serialising the report");
        return -1;
    }
    size_t len = strlen(s);
    char *t = realloc(s, len + 2);
    if (!t) {
        free(s);
        snprintf(err, err_len, "out of memory serialising the report");
        return -1;
    }
    t[len] = '\n';
    t[len + 1] = 0;
    int rc = write_file_atomic(path, t, len + 1, err, err_len);
    free(t);
    return rc;
}

int report_append_jsonl(const char *path, const cJSON *record, char *err, size_t err_len) {
    char *s = cJSON_PrintUnformatted(record);
    if (!s) {
        snprintf(err, err_len, "out of memory serialising a record");
        return -1;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        free(s);
        return -1;
    }
    int ok = fprintf(f, "%s\n", s) > 0 && fflush(f) == 0;
    ok = (fclose(f) == 0) && ok;
    free(s);
    if (!ok) {
        snprintf(err, err_len, "cannot append to %s", path);
        return -1;
    }
    return 0;
}

cJSON *report_read(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > (1 << 30)) {
        snprintf(err, err_len, "%s: not a readable file of sensible size", path);
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        snprintf(err, err_len, "out of memory reading %s", path);
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    if (!j) snprintf(err, err_len, "%s: not valid JSON (near byte %ld)", path, (long)(cJSON_GetErrorPtr() - buf));
    free(buf);
    return j;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void report_sort(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp_double); }

double report_percentile(const double *s, int n, double q) {
    if (n == 1) return s[0];
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}
