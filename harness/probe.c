/*
 * probe.c: `dmabench probe`: how fast the GPU takes the query-tile backward's
 * memory traffic when nothing else runs (kernels/common/cuda_probe.h): its dK/dV
 * sums (fp32 reductions in the backward's pattern, by instruction kind, each run's
 * adds counted back from the accumulators) and its K/V row gathers (cp.async as
 * the kernels issue them, or the tensor memory accelerator a row at a time, alone
 * or shared by a cluster's two CTAs; the layout each leaves in shared memory
 * checked), by CTAs per SM. A kernel whose traffic costs about what the probe
 * takes for the same bytes is bound by it. It also times the forward's two wgmma
 * products alone, by shared-memory layout (the accumulators checked exactly).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "cuda_info.h"
#include "cuda_probe.h"
#include "cuda_rt.h"
#include "report.h"

static const char *const probe_names[PROBE_NOPS] = {"red2",     "red4",     "bulk",  "store2",   "rows-cp",
                                                    "rows-tma", "rows-tma2", "wg-ss", "wg-ss-sw", "wg-ss64",
                                                    "wg-rs",    "wg-rs-sw"};
#define PROBE_OPS "red2, red4, bulk, store2, rows-cp, rows-tma, rows-tma2, wg-ss, wg-ss-sw, wg-ss64, wg-rs, wg-rs-sw"

static void usage(void) {
    printf("usage: dmabench probe [options]\n\n"
           "Times the query-tile backward's memory traffic alone on the GPU: per CTA of 8\n"
           "warps, blocks of 64 scattered keys. The sums add 2 x 64 x 128 fp32 (dV and dK) a\n"
           "block into accumulators laid out as the backward's, 8 rows of 32 bytes per warp\n"
           "instruction; every run's adds are counted back (check). The gathers copy the\n"
           "block's K and V rows (128 bf16 each, the keys x kv heads rows of two tensors)\n"
           "into one of two stages of shared memory; CTA 0's last K stage is compared with\n"
           "the layout, chunk by chunk (check). The products run the forward's wgmma\n"
           "products alone, per block and warpgroup (two a CTA) S = Q K^T or O += P V over\n"
           "128 keys at D 128, from shared memory filled once; CTA 0's first warpgroup's\n"
           "accumulators are compared with the exact product (check).\n\n"
           "  --ops LIST          sums: red2 (red.global.add.v2.f32, the backward's), red4\n"
           "                      (.v4), bulk (cp.reduce.async.bulk per 512-byte row, sm_90),\n"
           "                      store2 (plain st.global.v2 of the same bytes, no check);\n"
           "                      gathers: rows-cp (cp.async, 16 bytes a thread, the\n"
           "                      core-matrix layout, as the kernels), rows-tma (tensor\n"
           "                      memory accelerator, a box of 64 x 1 per half row, the\n"
           "                      128-byte swizzle, sm_90), rows-tma2 (the same in clusters\n"
           "                      of 2 CTAs that share their keys, each loading half the rows\n"
           "                      into both); products (sm_90): wg-ss (S, m64n128k16, both\n"
           "                      operands in the core-matrix layout, no swizzle), wg-ss-sw (the\n"
           "                      128-byte swizzle), wg-ss64 (S of 64 keys, m64n64k16), wg-rs\n"
           "                      (P V: P from registers, V MN-major, no swizzle), wg-rs-sw (V\n"
           "                      in the 128-byte swizzle); default all\n"
           "  --ctas-per-sm LIST  CTAs of 256 threads per SM in the grid (default 1,4)\n"
           "  --keys N            keys (default 8192)\n"
           "  --hkv N             kv heads (default 8): keys x hkv rows of 128 fp32 (the\n"
           "                      sums' accumulators) or 128 bf16 (the gathers' K and V)\n"
           "  --iters N           blocks per CTA (default 256: at 1 CTA per SM of an H200\n"
           "                      about the 2.2 GB of sums and the 1.2 GB of K/V rows of\n"
           "                      dma's backward at N 8192)\n"
           "  --warmup N          untimed runs first (default 1)\n"
           "  --repeats N         timed runs (default 5)\n"
           "  --out FILE          a JSON report (records of kind \"probe\") with provenance\n");
}

int cmd_probe(int argc, char **argv) {
    cli_args a;
    char *ops[PROBE_NOPS * 4];
    int nops = 0, rc = 0;
    long long cps[64];
    cJSON *rep = NULL;
    if (cli_parse(&a, "probe", argc, argv, 2, "--help -h") != 0) goto bad;
    if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
        usage();
        return 0;
    }
    long long keys, hkv, iters, warmup, repeats;
    if (cli_int(&a, "--keys", 8192, 64, 1 << 24, &keys) || cli_int(&a, "--hkv", 8, 1, 256, &hkv) ||
        cli_int(&a, "--iters", 256, 1, 1 << 20, &iters) || cli_int(&a, "--warmup", 1, 0, 100, &warmup) ||
        cli_int(&a, "--repeats", 5, 1, 1000, &repeats))
        goto bad;
    const char *ops_s =
        cli_str(&a, "--ops", "red2,red4,bulk,store2,rows-cp,rows-tma,rows-tma2,wg-ss,wg-ss-sw,wg-ss64,wg-rs,wg-rs-sw");
    const char *cps_s = cli_str(&a, "--ctas-per-sm", "1,4");
    const char *out = cli_str(&a, "--out", NULL);
    if (cli_finish(&a) != 0) goto bad;
    probe_op opv[PROBE_NOPS * 4];
    nops = cli_list(ops_s, ops, PROBE_NOPS * 4);
    for (int i = 0; i < nops; i++) {
        int k = 0;
        while (k < PROBE_NOPS && strcmp(ops[i], probe_names[k])) k++;
        if (k == PROBE_NOPS) {
            fprintf(stderr, "dmabench probe: unknown op '%s' (" PROBE_OPS ")\n", ops[i]);
            cli_list_free(ops, nops);
            return 2;
        }
        opv[i] = (probe_op)k;
    }
    char err[256];
    int ncps = cli_int_list(cps_s, cps, 64, err, sizeof err);
    if (ncps <= 0) {
        fprintf(stderr, "dmabench probe: --ctas-per-sm '%s': %s\n", cps_s, ncps < 0 ? err : "empty");
        cli_list_free(ops, nops);
        return 2;
    }
    for (int i = 0; i < ncps; i++)
        if (cps[i] < 1 || cps[i] > 32) {
            fprintf(stderr, "dmabench probe: --ctas-per-sm %lld is not in 1..32\n", cps[i]);
            cli_list_free(ops, nops);
            return 2;
        }
    cuda_info info;
    if (!cuda_built()) {
        fprintf(stderr, "dmabench probe: this build has no CUDA (build where nvcc is found)\n");
        cli_list_free(ops, nops);
        return 1;
    }
    if (cuda_query(&info) != 0) {
        fprintf(stderr, "dmabench probe: no CUDA device can be used\n");
        cli_list_free(ops, nops);
        return 1;
    }
    if (out) rep = report_new(report_provenance(argc, argv, 0));
    printf("%s (%d SMs): %lld keys x %lld kv heads: accumulators of 128 fp32 a row, twice (%.1f MB), "
           "K and V of 128 bf16 a row (%.1f MB); %lld blocks a CTA; medians of %lld\n\n",
           info.name, info.sm_count, keys, hkv, 2.0 * keys * hkv * 128 * 4 / 1e6, 2.0 * keys * hkv * 128 * 2 / 1e6,
           iters, repeats);
    printf("| op | CTAs/SM | CTAs | GB moved | median ms | min-max | GB/s | G sectors/s | TFLOP/s | check |\n"
           "|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n");
    double *ms = malloc((size_t)repeats * sizeof *ms), *srt = malloc((size_t)repeats * sizeof *srt);
    if (!ms || !srt) {
        fprintf(stderr, "dmabench probe: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 0; i < nops; i++)
        for (int c = 0; c < ncps; c++) {
            probe_cfg cfg = {opv[i], (int)keys, (int)hkv, (int)(info.sm_count * cps[c]), (int)iters};
            double sum = 0, adds = cuda_probe_adds(&cfg), bytes = cuda_probe_bytes(&cfg),
                   flops = cuda_probe_flops(&cfg);
            const int wg = cuda_probe_is_wg(opv[i]);
            attn_status st = cuda_probe_run(&cfg, (int)warmup, (int)repeats, ms, &sum);
            const char *status = st == ATTN_OK ? "ok" : st == ATTN_ERR_UNSUPPORTED ? "unsupported"
                                                      : st == ATTN_ERR_OOM         ? "oom"
                                                                                   : "error";
            char check[96] = "-";
            double med = NAN;
            if (st == ATTN_OK) {
                memcpy(srt, ms, (size_t)repeats * sizeof *srt);
                report_sort(srt, (int)repeats);
                med = report_percentile(srt, (int)repeats, 0.5);
                if (opv[i] != PROBE_STORE2) {
                    if (sum == adds) snprintf(check, sizeof check, "ok");
                    else {
                        snprintf(check, sizeof check, "FAILED: %.0f of %.0f %s", sum, adds,
                                 cuda_probe_is_rows(opv[i]) ? "chunks in place"
                                 : wg                       ? "accumulators exact"
                                                            : "adds");
                        rc = 1;
                    }
                }
                if (wg)
                    printf("| %s | %lld | %d | - | %.4g | %.4g-%.4g | - | - | %.1f | %s |\n", probe_names[opv[i]],
                           cps[c], cfg.ctas, med, srt[0], srt[repeats - 1], flops / med / 1e9, check);
                else
                    printf("| %s | %lld | %d | %.2f | %.4g | %.4g-%.4g | %.0f | %.2f | - | %s |\n",
                           probe_names[opv[i]], cps[c], cfg.ctas, bytes / 1e9, med, srt[0], srt[repeats - 1],
                           bytes / med / 1e6, bytes / 32 / med / 1e6, check);
            } else {
                if (st != ATTN_ERR_UNSUPPORTED && st != ATTN_ERR_OOM) rc = 1;
                printf("| %s | %lld | %d | %.2f | - | - | - | - | - | %s%s%s |\n", probe_names[opv[i]], cps[c],
                       cfg.ctas, bytes / 1e9, status, st == ATTN_ERR_CUDA ? ": " : "",
                       st == ATTN_ERR_CUDA ? dm_cuda_last_error() : "");
            }
            fflush(stdout);
            if (rep) {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "kind", "probe");
                cJSON_AddStringToObject(r, "op", probe_names[opv[i]]);
                cJSON_AddNumberToObject(r, "ctas_per_sm", (double)cps[c]);
                cJSON_AddNumberToObject(r, "ctas", cfg.ctas);
                cJSON_AddNumberToObject(r, "keys", (double)keys);
                cJSON_AddNumberToObject(r, "hkv", (double)hkv);
                cJSON_AddNumberToObject(r, "iters", (double)iters);
                cJSON_AddNumberToObject(r, "bytes", bytes);
                cJSON_AddStringToObject(r, "status", status);
                if (st == ATTN_OK) {
                    cJSON *t = cJSON_AddObjectToObject(r, "time_ms");
                    cJSON_AddNumberToObject(t, "median", med);
                    cJSON_AddNumberToObject(t, "min", srt[0]);
                    cJSON_AddNumberToObject(t, "max", srt[repeats - 1]);
                    cJSON_AddItemToObject(t, "samples", cJSON_CreateDoubleArray(ms, (int)repeats));
                    if (wg) {
                        cJSON_AddNumberToObject(r, "flops", flops);
                        cJSON_AddNumberToObject(r, "tflop_per_s", flops / med / 1e9);
                    } else {
                        cJSON_AddNumberToObject(r, "gb_per_s", bytes / med / 1e6);
                        cJSON_AddNumberToObject(r, "gsectors_per_s", bytes / 32 / med / 1e6);
                    }
                    cJSON_AddStringToObject(r, "check", check);
                } else if (st == ATTN_ERR_CUDA) cJSON_AddStringToObject(r, "error", dm_cuda_last_error());
                report_add(rep, r);
            }
        }
    if (rep && report_write(out, rep, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench probe: %s\n", err);
        rc = 1;
    } else if (rep) printf("\nreport: %s\n", out);
done:
    free(ms);
    free(srt);
    cJSON_Delete(rep);
    cli_list_free(ops, nops);
    return rc;
bad:
    fprintf(stderr, "dmabench %s\n", a.err);
    return 2;
}
