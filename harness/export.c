/*
 * export.c: `dmabench export REPORT --format gab|bmf`: a report's cells in the
 * formats of two benchmark-tracking services:
 *   gab  github-action-benchmark's custom tools: a JSON array of {name, unit, value,
 *        range?, extra?}; one file holds one direction (customSmallerIsBetter or
 *        customBiggerIsBetter, --tool).
 *   bmf  Bencher Metric Format: {benchmark name: {measure slug: {value, lower_value,
 *        upper_value}}}.
 * Benchmark names are built from the cell's key alone (variant, backend, mode,
 * dtype, shape, settings; task and its settings), never from the machine or the
 * run, so they stay the same from run to run. docs/reports.md lists them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "records.h"

static void usage(void) {
    printf("usage: dmabench export REPORT... --format gab|bmf [options]\n"
           "\n"
           "The report's cells for a benchmark-tracking service (seeds and repeated runs\n"
           "pooled, cells that are not ok left out):\n"
           "  gab  github-action-benchmark, tool customSmallerIsBetter or customBiggerIsBetter:\n"
           "       [{\"name\", \"unit\", \"value\", \"range\": \"± half-width\", \"extra\"}, ...]\n"
           "  bmf  Bencher Metric Format: {\"NAME\": {\"latency\": {\"value\", \"lower_value\",\n"
           "       \"upper_value\"}, ...}} (latency in ns; other measures in their units)\n"
           "\n"
           "options:\n"
           "  --format F         gab|bmf (required)\n"
           "  --tool T           gab: customSmallerIsBetter (default: times, memory, NLL,\n"
           "                     perplexity, bits per byte) or customBiggerIsBetter (GFLOP/s,\n"
           "                     accuracy)\n"
           "  --metric LIST      what to export (default: time_ms, peak_mem_bytes,\n"
           "                     gflops_dense, gflops_effective for kernels; accuracy; nll,\n"
           "                     ppl, bits_per_byte; gab keeps those of the tool's direction)\n"
           "  --where DIM=V,...  only records whose DIM is one of the values (repeatable)\n"
           "  --prefix P         put P in front of every benchmark name\n"
           "  --out FILE         write to FILE (atomically) instead of stdout\n"
           "\n"
           "Names: kernels VARIANT/BACKEND/MODE/DTYPE/B=..,N=..,Hq=..,Hkv=..,D=../SETTINGS,\n"
           "tasks TASK/VARIANT[/BACKEND]/SETTINGS (seed left out). Units: as the metric's name\n"
           "says (time_ms in ms, *_bytes in bytes) in gab; Bencher's own units in bmf.\n"
           "Exit 1 when --out cannot be written, 2 on bad usage or when there is nothing to\n"
           "export.\n");
}

/* The stable benchmark name of a record's cell. */
static void bench_name(const rec_ref *r, const char *prefix, sbuf *b) {
    dim_list l;
    rec_ref *one = (rec_ref *)r;
    dims_collect(&one, 1, &l);
    char v[256];
    sb_puts(b, prefix);
    if (r->kind == REC_TASK) {
        const char *t = rec_str(r->rec, "task"), *var = rec_str(r->rec, "variant"), *be = rec_str(r->rec, "backend");
        sb_printf(b, "%s/%s", t ? t : "task", var ? var : "?");
        if (be) sb_printf(b, "/%s", be);
    } else {
        static const char *top[] = {"variant", "backend", "mode", "dtype"};
        for (int i = 0; i < 4; i++) {
            const char *s = rec_str(r->rec, top[i]);
            sb_printf(b, "%s%s", i ? "/" : "", s ? s : "?");
        }
        if (r->kind == REC_VERIFY && rec_str(r->rec, "label")) sb_printf(b, "/%s", rec_str(r->rec, "label"));
        /* shape: N when Nq = Nk, both otherwise */
        double nq = -1, nk = -2;
        rec_num(r->rec, "shape.Nq", &nq);
        rec_num(r->rec, "shape.Nk", &nk);
        int first = 1;
        sb_puts(b, "/");
        for (int i = 0; i < l.n; i++) {
            const dim_def *d = &l.d[i];
            if (d->src != DSRC_SHAPE || !dim_get(d, r, v, sizeof v, NULL, NULL)) continue;
            if (nq == nk && !strcmp(d->name, "Nq")) continue;
            sb_printf(b, "%s%s=%s", first ? "" : ",", !strcmp(d->name, "N") && nq != nk ? "Nk" : d->name, v);
            first = 0;
        }
    }
    /* settings in the canonical order; scale only when it is not 1/sqrt(D) */
    double D = 0, scale = 0;
    int dflt_scale = rec_num(r->rec, "shape.D", &D) == 0 && rec_num(r->rec, "settings.scale", &scale) == 0 &&
                     fabs(scale * sqrt(D) - 1) < 1e-9;
    int first = 1;
    for (int i = 0; i < l.n; i++) {
        const dim_def *d = &l.d[i];
        if (d->src != DSRC_SETTINGS || (dflt_scale && !strcmp(d->name, "scale"))) continue;
        if (!dim_get(d, r, v, sizeof v, NULL, NULL)) continue;
        sb_printf(b, "%s%s=%s", first ? "/" : ",", d->name, v);
        first = 0;
    }
}

/* Six significant digits: enough, and the same text from run to run. */
static double round6(double v) {
    char t[32];
    snprintf(t, sizeof t, "%.6g", v);
    return strtod(t, NULL);
}

static int cell_sort(const void *a, const void *b, void *arg) {
    const dim_list *L = arg;
    const rec_ref *x = *(rec_ref *const *)a, *y = *(rec_ref *const *)b;
    if (x->kind != y->kind) return x->kind - y->kind;
    for (int i = 0; i < L->n; i++) {
        char u[256], v[256];
        if (L->d[i].src == DSRC_CARD) continue; /* names leave the machine out */
        dim_get(&L->d[i], x, u, sizeof u, NULL, NULL);
        dim_get(&L->d[i], y, v, sizeof v, NULL, NULL);
        int c = dim_cmp(&L->d[i], u, v);
        if (c) return c;
    }
    return 0;
}

int cmd_export(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "export", argc, argv, 2, "--help -h") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    const char *fmt = cli_str(&a, "--format", NULL), *tool = cli_str(&a, "--tool", NULL);
    const char *metric = cli_str(&a, "--metric", NULL), *out = cli_str(&a, "--out", NULL);
    const char *prefix = cli_str(&a, "--prefix", "");
    const char *where[32];
    int nwhere = cli_all(&a, "--where", where, 32);
    int npos = cli_npos(&a);
    const char *paths[CLI_MAX];
    for (int i = 0; i < npos; i++) paths[i] = cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (!fmt || (strcmp(fmt, "gab") && strcmp(fmt, "bmf"))) {
        fprintf(stderr, "dmabench export: --format gab or --format bmf is required%s%s%s\n", fmt ? " (got '" : "",
                fmt ? fmt : "", fmt ? "')" : "");
        return 2;
    }
    int gab = !strcmp(fmt, "gab"), bigger = 0;
    if (tool && !gab) {
        fprintf(stderr, "dmabench export: --tool applies to --format gab only\n");
        return 2;
    }
    if (tool) {
        if (!strcmp(tool, "customBiggerIsBetter")) bigger = 1;
        else if (strcmp(tool, "customSmallerIsBetter") != 0) {
            fprintf(stderr, "dmabench export: unknown --tool '%s' (customSmallerIsBetter or customBiggerIsBetter)\n",
                    tool);
            return 2;
        }
    }
    if (npos == 0) {
        fprintf(stderr, "dmabench export: give a REPORT (see dmabench export --help)\n");
        return 2;
    }
    const metric_def *ms[32];
    int nm = 0;
    if (metric) {
        char merr[512];
        if ((nm = metric_parse_list(metric, ms, 32, merr, sizeof merr)) < 0) {
            fprintf(stderr, "dmabench export: %s\n", merr);
            return 2;
        }
        for (int i = 0; i < nm; i++)
            if (gab && ms[i]->higher != bigger) {
                fprintf(stderr, "dmabench export: %s is %s-is-better; it goes into a --tool %s file\n", ms[i]->name,
                        ms[i]->higher ? "bigger" : "smaller",
                        ms[i]->higher ? "customBiggerIsBetter" : "customSmallerIsBetter");
                return 2;
            }
    } else {
        static const char *dflt[] = {"time_ms", "peak_mem_bytes", "gflops_dense", "gflops_effective",
                                     "accuracy", "nll",            "ppl",          "bits_per_byte"};
        for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++) {
            const metric_def *m = metric_find(dflt[i]);
            if (!gab || m->higher == bigger) ms[nm++] = m;
        }
    }

    rec_set s = {0};
    char err[1024];
    int rc = 2;
    rec_ref **sel = NULL;
    cJSON *root = gab ? cJSON_CreateArray() : cJSON_CreateObject();
    sbuf name = {0};
    for (int i = 0; i < npos; i++)
        if (recset_load(&s, paths[i], err, sizeof err) != 0) {
            fprintf(stderr, "dmabench export: %s\n", err);
            goto done;
        }
    sel = malloc((size_t)(s.nrecs + 1) * sizeof *sel);
    if (!sel || !root) {
        fprintf(stderr, "dmabench export: out of memory\n");
        goto done;
    }
    rec_select q = {.kinds = REC_KERNEL | REC_TASK, .where = where, .nwhere = nwhere};
    int n = rec_select_records(&s, &q, sel, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "dmabench export: %s\n", err);
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "dmabench export: nothing to export: no kernel or task records in %s%s\n", paths[0],
                nwhere ? " match --where" : "");
        goto done;
    }
    /* cells: records with the same key (without the card) pooled, in table order */
    dim_list L;
    dims_collect(sel, n, &L);
    qsort_r(sel, (size_t)n, sizeof *sel, cell_sort, &L);
    int nout = 0;
    for (int i = 0; i < n;) {
        char *key = rec_cell_key(sel[i], 1);
        int j = i + 1;
        /* equal keys are adjacent after the sort unless dimensions differ in presence;
         * gather them all */
        rec_ref **cell = malloc((size_t)n * sizeof *cell);
        if (!key || !cell) {
            free(key);
            free(cell);
            fprintf(stderr, "dmabench export: out of memory\n");
            goto done;
        }
        int k = 0;
        cell[k++] = sel[i];
        while (j < n) {
            char *k2 = rec_cell_key(sel[j], 1);
            int same = k2 && !strcmp(k2, key);
            free(k2);
            if (!same) break;
            cell[k++] = sel[j++];
        }
        name.len = 0;
        if (name.s) name.s[0] = 0;
        bench_name(sel[i], prefix, &name);
        cJSON *bench = NULL;
        for (int mi = 0; mi < nm; mi++) {
            magg g;
            if (!(ms[mi]->kinds & sel[i]->kind) || metric_pool(ms[mi], cell, k, &g) != 0) continue;
            if (gab) {
                cJSON *e = cJSON_CreateObject();
                char nb[1200], rb[64], extra[512], lo[32], hi[32];
                snprintf(nb, sizeof nb, "%s - %s", name.s, ms[mi]->name);
                int dup = 0;
                const cJSON *x;
                cJSON_ArrayForEach(x, root) dup |= !strcmp(rec_str(x, "name"), nb);
                if (dup) {
                    cJSON_Delete(e);
                    continue;
                }
                /* the unit the metric's name says: *_bytes in bytes (the display unit
                 * of table and plot is MiB), the others in their display units */
                size_t nl = strlen(ms[mi]->name);
                int in_bytes = nl > 6 && !strcmp(ms[mi]->name + nl - 6, "_bytes");
                double sc = in_bytes ? 1 : ms[mi]->scale;
                const char *unit = in_bytes ? "bytes" : ms[mi]->unit[0] ? ms[mi]->unit : "1";
                cJSON_AddStringToObject(e, "name", nb);
                cJSON_AddStringToObject(e, "unit", unit);
                cJSON_AddNumberToObject(e, "value", round6(g.v * sc));
                size_t off = 0;
                extra[0] = 0;
                if (g.has_int) {
                    char half[32];
                    fmt_num(half, sizeof half, (g.hi - g.lo) / 2 * sc);
                    snprintf(rb, sizeof rb, "± %s", half);
                    cJSON_AddStringToObject(e, "range", rb);
                    fmt_num(lo, sizeof lo, g.lo * sc);
                    fmt_num(hi, sizeof hi, g.hi * sc);
                    off += (size_t)snprintf(extra + off, sizeof extra - off, "%s: %s to %s %s\n", g.spread, lo, hi,
                                            unit);
                }
                if (g.how == AGG_MEAN && off < sizeof extra)
                    off += (size_t)snprintf(extra + off, sizeof extra - off, "mean of %d runs\n", g.n);
                if (off < sizeof extra) off += (size_t)snprintf(extra + off, sizeof extra - off, "machine: %s", sel[i]->card);
                cJSON_AddStringToObject(e, "extra", extra);
                cJSON_AddItemToArray(root, e);
            } else {
                if (!bench) bench = cJSON_GetObjectItemCaseSensitive(root, name.s);
                if (!bench) bench = cJSON_AddObjectToObject(root, name.s);
                if (cJSON_GetObjectItemCaseSensitive(bench, ms[mi]->bmf)) continue;
                cJSON *mo = cJSON_AddObjectToObject(bench, ms[mi]->bmf);
                cJSON_AddNumberToObject(mo, "value", round6(g.v * ms[mi]->bmf_scale));
                if (g.has_int) {
                    cJSON_AddNumberToObject(mo, "lower_value", round6(fmin(g.lo, g.v) * ms[mi]->bmf_scale));
                    cJSON_AddNumberToObject(mo, "upper_value", round6(fmax(g.hi, g.v) * ms[mi]->bmf_scale));
                }
            }
            nout++;
        }
        free(key);
        free(cell);
        i = j;
    }
    if (nout == 0) {
        fprintf(stderr, "dmabench export: nothing to export: no ok cell of %s has %s\n", paths[0],
                gab ? (bigger ? "a bigger-is-better metric" : "a smaller-is-better metric") : "the metrics asked for");
        goto done;
    }
    char *txt = cJSON_Print(root);
    sbuf o = {0};
    if (txt) {
        sb_puts(&o, txt);
        sb_puts(&o, "\n");
    }
    free(txt);
    if (!txt || sb_emit(&o, out, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench export: %s\n", txt ? err : "out of memory");
        sb_free(&o);
        rc = 1;
        goto done;
    }
    sb_free(&o);
    rc = 0;
done:
    sb_free(&name);
    cJSON_Delete(root);
    free(sel);
    recset_free(&s);
    return rc;
}
