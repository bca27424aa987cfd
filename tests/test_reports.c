/*
 * test_reports.c: the derived views on constructed records. `dmabench compare`
 * verdicts on pairs built here (noise within the spread, a real regression, an
 * improvement, the better direction of each metric, status changes, missing and
 * new cells, seeds of task records, unusable input); `dmabench export` output
 * checked against the documented shapes of github-action-benchmark's custom tools
 * and Bencher Metric Format; and the record rules of harness/records.c (metric
 * forms of task records, intervals, pooling, number formatting).
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "commands.h"
#include "records.h"

static char T[128];

static int run(int (*fn)(int, char **), char **argv, const char *tag) {
    int argc = 0;
    while (argv[argc]) argc++;
    char out[300], err[300];
    snprintf(out, sizeof out, "%s/%s.out", T, tag);
    snprintf(err, sizeof err, "%s/%s.err", T, tag);
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        int rc = fn(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static char *output(const char *tag, const char *ext) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s.%s", T, tag, ext);
    return slurp(p);
}

static int has(const char *tag, const char *ext, const char *needle) {
    char *s = output(tag, ext);
    int r = s && strstr(s, needle);
    free(s);
    return r;
}

static const char *first_line(const char *tag) {
    static char buf[300];
    char *s = output(tag, "err");
    snprintf(buf, sizeof buf, "%s", s && *s ? s : "(nothing on stderr)");
    buf[strcspn(buf, "\n")] = 0;
    free(s);
    return buf;
}

/* ---- constructed reports ---- */

static cJSON *new_report(const char *cpu) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "schema_version", 1);
    cJSON *p = cJSON_AddObjectToObject(r, "provenance");
    cJSON *m = cJSON_AddObjectToObject(p, "machine");
    cJSON_AddStringToObject(m, "cpu", cpu);
    cJSON_AddNullToObject(m, "gpu");
    cJSON *b = cJSON_AddObjectToObject(p, "build");
    cJSON_AddStringToObject(b, "git_commit", "abc");
    cJSON_AddArrayToObject(r, "records");
    return r;
}

/* A kernel record whose five timing samples are t x (1 + spread x {-1, -0.5, 0, 0.5, 1}). */
static cJSON *kernel_rec(const char *v, const char *mode, int n, double t, double spread, double mem, const char *status) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "kind", "kernel");
    cJSON_AddStringToObject(r, "variant", v);
    cJSON_AddStringToObject(r, "backend", "cpu");
    cJSON_AddStringToObject(r, "mode", mode);
    cJSON *sh = cJSON_AddObjectToObject(r, "shape");
    cJSON_AddNumberToObject(sh, "B", 1);
    cJSON_AddNumberToObject(sh, "Nq", n);
    cJSON_AddNumberToObject(sh, "Nk", n);
    cJSON_AddNumberToObject(sh, "Hq", 4);
    cJSON_AddNumberToObject(sh, "Hkv", 2);
    cJSON_AddNumberToObject(sh, "D", 64);
    cJSON_AddStringToObject(r, "dtype", "f32");
    cJSON *st = cJSON_AddObjectToObject(r, "settings");
    cJSON_AddBoolToObject(st, "causal", 1);
    cJSON_AddNumberToObject(st, "scale", 0.125);
    if (strcmp(v, "mha")) cJSON_AddNumberToObject(st, "w", 128);
    cJSON_AddNumberToObject(st, "threads", 2);
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddNumberToObject(r, "flops_dense", 4.0 * n * n * 64 * 4 / 2);
    cJSON_AddNumberToObject(r, "flops_effective", 4.0 * n * 128 * 64 * 4);
    if (strcmp(status, "ok")) return r;
    double s[5];
    for (int i = 0; i < 5; i++) s[i] = t * (1 + spread * (i - 2) / 2.0);
    cJSON *tm = cJSON_AddObjectToObject(r, "time_ms");
    cJSON_AddNumberToObject(tm, "median", s[2]);
    cJSON_AddNumberToObject(tm, "p5", s[0] + 0.2 * (s[1] - s[0]));
    cJSON_AddNumberToObject(tm, "p95", s[3] + 0.8 * (s[4] - s[3]));
    cJSON_AddItemToObject(tm, "samples", cJSON_CreateDoubleArray(s, 5));
    cJSON_AddNumberToObject(r, "peak_mem_bytes", mem);
    return r;
}

static cJSON *task_rec(const char *task, const char *v, int seq, int seed, const char *metric, double val) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "kind", "task");
    cJSON_AddStringToObject(r, "task", task);
    cJSON_AddStringToObject(r, "variant", v);
    cJSON_AddNumberToObject(r, "seed", seed);
    cJSON *st = cJSON_AddObjectToObject(r, "settings");
    cJSON_AddNumberToObject(st, !strcmp(task, "ppl") ? "context" : "seq_len", seq);
    if (!strcmp(task, "mqar")) cJSON_AddNumberToObject(st, "d_model", 64);
    cJSON_AddStringToObject(r, "status", "ok");
    cJSON *m = cJSON_AddObjectToObject(r, "metrics");
    cJSON_AddNumberToObject(m, metric, val);
    return r;
}

static void add(cJSON *rep, cJSON *rec) { cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(rep, "records"), rec); }

static void save(cJSON *rep, const char *name, char *path, size_t n) {
    snprintf(path, n, "%s/%s", T, name);
    char *s = cJSON_Print(rep);
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
    free(s);
    cJSON_Delete(rep);
}

/* The base kernel report: mha and dma, fwd, N = 1024, 2048; 2% spread. */
static cJSON *base_kernels(void) {
    cJSON *r = new_report("Test CPU");
    add(r, kernel_rec("mha", "fwd", 1024, 4.0, 0.02, 1 << 20, "ok"));
    add(r, kernel_rec("mha", "fwd", 2048, 16.0, 0.02, 1 << 20, "ok"));
    add(r, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 2 << 20, "ok"));
    add(r, kernel_rec("dma", "fwd", 2048, 2.0, 0.02, 2 << 20, "ok"));
    return r;
}

static void compare_tests(void) {
    char base[300], p[300];
    save(base_kernels(), "base.json", base, sizeof base);

    /* identical: exit 0, everything unchanged */
    char *a0[] = {"dmabench", "compare", base, base, NULL};
    int rc = run(cmd_compare, a0, "same");
    CHECK(rc == 0 && has("same", "out", "**0 regressed**, 0 improved, 4 unchanged") && has("same", "out", "verdict: ok"),
          "compare/identical", "rc %d, %s", rc, first_line("same"));

    /* noise: every time 3% slower (below the threshold), one 8% slower but inside the spread */
    cJSON *n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 4.0 * 1.03, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("mha", "fwd", 2048, 16.0 * 1.08, 0.20, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0 * 0.98, 0.02, 2 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 2048, 2.0 * 1.01, 0.02, 2 << 20, "ok"));
    save(n, "noise.json", p, sizeof p);
    char *a1[] = {"dmabench", "compare", base, p, "--all", NULL};
    rc = run(cmd_compare, a1, "noise");
    CHECK(rc == 0 && has("noise", "out", "**0 regressed**") && has("noise", "out", "1 changes within noise") &&
              has("noise", "out", "### Within noise"),
          "compare/noise_within_spread", "rc %d, %s", rc, first_line("noise"));

    /* a real regression: dma at 2048 50% slower with a tight spread */
    n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 4.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("mha", "fwd", 2048, 16.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 2 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 2048, 3.0, 0.02, 2 << 20, "ok"));
    save(n, "slower.json", p, sizeof p);
    char *a2[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a2, "slower");
    CHECK(rc == 1 && has("slower", "out", "**1 regressed**") && has("slower", "out", "| dma N=2048 | time_ms (ms)") &&
              has("slower", "out", "+50.0%") && has("slower", "out", "verdict: FAIL"),
          "compare/regression", "rc %d, %s", rc, first_line("slower"));
    /* the same change judged on throughput: lower GFLOP/s is the regression */
    char *a3[] = {"dmabench", "compare", base, p, "--metric", "gflops_effective", NULL};
    rc = run(cmd_compare, a3, "slower_gflops");
    CHECK(rc == 1 && has("slower_gflops", "out", "gflops_effective (GFLOP/s)") && has("slower_gflops", "out", "-33.3%"),
          "compare/regression_higher_is_better", "rc %d, %s", rc, first_line("slower_gflops"));
    /* a threshold above the change: unchanged */
    char *a4[] = {"dmabench", "compare", base, p, "--threshold", "60%", NULL};
    rc = run(cmd_compare, a4, "slower_thr");
    CHECK(rc == 0 && has("slower_thr", "out", "**0 regressed**"), "compare/threshold", "rc %d", rc);

    /* an improvement: mha at 1024 twice as fast; memory halved at dma 1024 */
    n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 2.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("mha", "fwd", 2048, 16.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 2048, 2.0, 0.02, 2 << 20, "ok"));
    save(n, "faster.json", p, sizeof p);
    char *a5[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a5, "faster");
    CHECK(rc == 0 && has("faster", "out", "**0 regressed**, 2 improved") && has("faster", "out", "### Improvements") &&
              has("faster", "out", "| mha N=1024 | time_ms (ms)") && has("faster", "out", "peak_mem_bytes (MiB)"),
          "compare/improvement", "rc %d, %s", rc, first_line("faster"));

    /* more memory (no spread: the threshold alone decides) */
    n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 4.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("mha", "fwd", 2048, 16.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 2 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 2048, 2.0, 0.02, 3 << 20, "ok"));
    save(n, "mem.json", p, sizeof p);
    char *a6[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a6, "mem");
    CHECK(rc == 1 && has("mem", "out", "| dma N=2048 | peak_mem_bytes (MiB) | 2.00 | 3.00 | +50.0% |"),
          "compare/memory_regression", "rc %d, %s", rc, first_line("mem"));

    /* missing and new cells; a status that leaves ok */
    n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 4.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 2 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 2048, 2.0, 0.02, 2 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 4096, 4.0, 0.02, 2 << 20, "ok"));
    save(n, "missing.json", p, sizeof p);
    char *a7[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a7, "missing");
    CHECK(rc == 0 && has("missing", "out", "1 missing, 1 new") && has("missing", "out", "### Missing from NEW") &&
              has("missing", "out", "- mha N=2048 (ok)") && has("missing", "out", "- dma N=4096 (ok)"),
          "compare/missing_and_new", "rc %d, %s", rc, first_line("missing"));
    char *a8[] = {"dmabench", "compare", base, p, "--fail-on-missing", NULL};
    rc = run(cmd_compare, a8, "missing_fail");
    CHECK(rc == 1 && has("missing_fail", "out", "verdict: FAIL (1 missing cell)"), "compare/fail_on_missing", "rc %d", rc);
    n = new_report("Test CPU");
    add(n, kernel_rec("mha", "fwd", 1024, 4.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("mha", "fwd", 2048, 16.0, 0.02, 1 << 20, "ok"));
    add(n, kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 2 << 20, "error"));
    add(n, kernel_rec("dma", "fwd", 2048, 2.0, 0.02, 2 << 20, "ok"));
    save(n, "status.json", p, sizeof p);
    char *a9[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a9, "status");
    CHECK(rc == 1 && has("status", "out", "| dma N=1024 | status | ok | error |"), "compare/status_regression",
          "rc %d, %s", rc, first_line("status"));

    /* task records: accuracy over three seeds, bits per byte over two */
    cJSON *tb = new_report("Test CPU"), *tn = new_report("Test CPU"), *tw = new_report("Test CPU");
    static const double accb[] = {0.80, 0.81, 0.79}, accn[] = {0.70, 0.71, 0.69}, accw[] = {0.60, 0.85, 0.70};
    for (int s = 0; s < 3; s++) {
        add(tb, task_rec("mqar", "dma", 512, s + 1, "accuracy", accb[s]));
        add(tn, task_rec("mqar", "dma", 512, s + 1, "accuracy", accn[s]));
        add(tw, task_rec("mqar", "dma", 512, s + 1, "accuracy", accw[s]));
    }
    for (int s = 0; s < 2; s++) {
        add(tb, task_rec("ppl", "dma", 256, s + 1, "bits_per_byte", 2.00 + 0.01 * s));
        add(tn, task_rec("ppl", "dma", 256, s + 1, "bits_per_byte", 1.80 + 0.01 * s));
        add(tw, task_rec("ppl", "dma", 256, s + 1, "bits_per_byte", 2.00 + 0.01 * s));
    }
    char tbase[300], tnew[300], twide[300];
    save(tb, "tbase.json", tbase, sizeof tbase);
    save(tn, "tnew.json", tnew, sizeof tnew);
    save(tw, "twide.json", twide, sizeof twide);
    char *a10[] = {"dmabench", "compare", tbase, tnew, NULL};
    rc = run(cmd_compare, a10, "tasks");
    CHECK(rc == 1 && has("tasks", "out", "**1 regressed**, 1 improved") && has("tasks", "out", "accuracy (%)") &&
              has("tasks", "out", "bits_per_byte (bits/byte)"),
          "compare/task_seeds", "rc %d, %s", rc, first_line("tasks"));
    char *a11[] = {"dmabench", "compare", tbase, twide, NULL};
    rc = run(cmd_compare, a11, "tasks_noise");
    CHECK(rc == 0 && has("tasks_noise", "out", "**0 regressed**") && has("tasks_noise", "out", "1 changes within noise"),
          "compare/task_seed_noise", "rc %d, %s", rc, first_line("tasks_noise"));

    /* another machine: nothing matches (exit 2) unless --ignore-card */
    cJSON *o = base_kernels();
    cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "provenance"), "machine");
    cJSON_ReplaceItemInObject(m, "cpu", cJSON_CreateString("Other CPU"));
    save(o, "other.json", p, sizeof p);
    char *a12[] = {"dmabench", "compare", base, p, NULL};
    rc = run(cmd_compare, a12, "card");
    CHECK(rc == 2 && has("card", "err", "nothing to compare") && has("card", "err", "--ignore-card"),
          "compare/other_card_exit2", "rc %d, %s", rc, first_line("card"));
    char *a13[] = {"dmabench", "compare", base, p, "--ignore-card", NULL};
    rc = run(cmd_compare, a13, "card_ignored");
    CHECK(rc == 0 && has("card_ignored", "out", "4 unchanged"), "compare/ignore_card", "rc %d, %s", rc,
          first_line("card_ignored"));
    /* nothing in common even across cards: the hint is not given again */
    cJSON *o2 = new_report("Other CPU");
    add(o2, kernel_rec("mha", "fwd", 4096, 64.0, 0.02, 1 << 20, "ok"));
    char p2[300];
    save(o2, "other_n.json", p2, sizeof p2);
    char *a13b[] = {"dmabench", "compare", base, p2, "--ignore-card", NULL};
    rc = run(cmd_compare, a13b, "card_ignored_none");
    CHECK(rc == 2 && has("card_ignored_none", "err", "nothing to compare") &&
              !has("card_ignored_none", "err", "--ignore-card"),
          "compare/ignore_card_no_repeat_hint", "rc %d, %s", rc, first_line("card_ignored_none"));

    /* unusable input: exit 2 with one line */
    char v2[300], empty[300], bad[300];
    snprintf(v2, sizeof v2, "%s/v2.json", T);
    snprintf(empty, sizeof empty, "%s/empty.json", T);
    snprintf(bad, sizeof bad, "%s/bad.json", T);
    FILE *f = fopen(v2, "w");
    fputs("{\"schema_version\": 2, \"records\": []}", f);
    fclose(f);
    f = fopen(empty, "w");
    fputs("{\"schema_version\": 1, \"records\": []}", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("{\"schema_version\": 1, \"records\": [", f);
    fclose(f);
    struct {
        const char *tag, *a, *b, *opt, *val, *want;
    } u[] = {
        {"unreadable", base, "/nonexistent/x.json", NULL, NULL, "cannot open"},
        {"schema", base, v2, NULL, NULL, "schema_version 2"},
        {"torn", bad, base, NULL, NULL, "not valid JSON"},
        {"empty", base, empty, NULL, NULL, "nothing to compare"},
        {"threshold", base, base, "--threshold", "five", "--threshold expects"},
        {"metric", base, base, "--metric", "speed", "unknown metric"},
    };
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) {
        char *av[] = {"dmabench", "compare", (char *)u[i].a, (char *)u[i].b, (char *)u[i].opt, (char *)u[i].val, NULL};
        rc = run(cmd_compare, av, u[i].tag);
        char name[64], *e = output(u[i].tag, "err");
        int lines = 0;
        for (char *q = e; q && *q; q++) lines += *q == '\n';
        snprintf(name, sizeof name, "compare/bad_input_%s", u[i].tag);
        CHECK(rc == 2 && e && strstr(e, u[i].want) && lines == 1, name, "rc %d, %d lines: %s", rc, lines,
              first_line(u[i].tag));
        free(e);
    }
    char *a14[] = {"dmabench", "compare", base, NULL};
    CHECK(run(cmd_compare, a14, "one") == 2 && has("one", "err", "exactly two"), "compare/one_report", "%s",
          first_line("one"));
}

/* ---- export ---- */

static int is_slug(const char *s) {
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-')) return 0;
    return 1;
}

/* github-action-benchmark: [{name, unit, value, range?, extra?}], names unique. */
static int check_gab(const char *tag, int expect, char *why, size_t wl) {
    char *s = output(tag, "out");
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    int n = 0, ok = cJSON_IsArray(j);
    if (!ok) snprintf(why, wl, "not a JSON array");
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!ok) break;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *u = cJSON_GetObjectItemCaseSensitive(e, "unit"),
                    *v = cJSON_GetObjectItemCaseSensitive(e, "value"), *r = cJSON_GetObjectItemCaseSensitive(e, "range"),
                    *x = cJSON_GetObjectItemCaseSensitive(e, "extra");
        if (!cJSON_IsObject(e) || !cJSON_IsString(nm) || !nm->valuestring[0] || !cJSON_IsString(u) ||
            !cJSON_IsNumber(v) || !isfinite(v->valuedouble) || (r && !cJSON_IsString(r)) ||
            (r && strncmp(r->valuestring, "± ", strlen("± "))) || (x && !cJSON_IsString(x))) {
            snprintf(why, wl, "entry %d does not have the documented shape", n);
            ok = 0;
            break;
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, e) if (strcmp(f->string, "name") && strcmp(f->string, "unit") && strcmp(f->string, "value") &&
                                     strcmp(f->string, "range") && strcmp(f->string, "extra")) {
            snprintf(why, wl, "entry %d has an unknown field %s", n, f->string);
            ok = 0;
        }
        const cJSON *g;
        int k = 0;
        cJSON_ArrayForEach(g, j) {
            if (k++ >= n) break;
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(g, "name")->valuestring, nm->valuestring)) {
                snprintf(why, wl, "name '%s' twice", nm->valuestring);
                ok = 0;
            }
        }
        if (strstr(nm->valuestring, "Test CPU")) {
            snprintf(why, wl, "name '%s' holds the machine", nm->valuestring);
            ok = 0;
        }
        n++;
    }
    if (ok && n != expect) {
        snprintf(why, wl, "%d entries, expected %d", n, expect);
        ok = 0;
    }
    cJSON_Delete(j);
    return ok;
}

/* Bencher Metric Format: {benchmark: {measure: {value, lower_value?, upper_value?}}}. */
static int check_bmf(const char *tag, int expect, char *why, size_t wl) {
    char *s = output(tag, "out");
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    int n = 0, ok = cJSON_IsObject(j);
    if (!ok) snprintf(why, wl, "not a JSON object");
    const cJSON *b;
    cJSON_ArrayForEach(b, j) {
        if (!ok) break;
        if (!cJSON_IsObject(b) || strlen(b->string) > 1024 || !b->string[0] || !cJSON_GetArraySize(b)) {
            snprintf(why, wl, "benchmark '%.60s' is not a non-empty object", b->string);
            ok = 0;
            break;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, b) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "value"),
                        *lo = cJSON_GetObjectItemCaseSensitive(m, "lower_value"),
                        *hi = cJSON_GetObjectItemCaseSensitive(m, "upper_value");
            if (!is_slug(m->string) || !cJSON_IsObject(m) || !cJSON_IsNumber(v) || (lo && !cJSON_IsNumber(lo)) ||
                (hi && !cJSON_IsNumber(hi)) || (lo && lo->valuedouble > v->valuedouble) ||
                (hi && hi->valuedouble < v->valuedouble)) {
                snprintf(why, wl, "measure %s of '%.60s' does not have the documented shape", m->string, b->string);
                ok = 0;
                break;
            }
            const cJSON *f;
            cJSON_ArrayForEach(f, m) if (strcmp(f->string, "value") && strcmp(f->string, "lower_value") &&
                                         strcmp(f->string, "upper_value")) {
                snprintf(why, wl, "measure %s has an unknown field %s", m->string, f->string);
                ok = 0;
            }
            n++;
        }
    }
    if (ok && n != expect) {
        snprintf(why, wl, "%d measures, expected %d", n, expect);
        ok = 0;
    }
    cJSON_Delete(j);
    return ok;
}

static void export_tests(void) {
    const char *K = "tests/golden/kernels.json", *TK = "tests/golden/tasks.json";
    char why[300] = "";
    /* kernels.json: 24 cells, 20 ok (3 unsupported, 1 oom) */
    char *a1[] = {"dmabench", "export", (char *)K, "--format", "gab", NULL};
    int rc = run(cmd_export, a1, "gab_small");
    CHECK(rc == 0 && check_gab("gab_small", 40, why, sizeof why) && has("gab_small", "out", "\"unit\":\t\"ms\"") &&
              has("gab_small", "out", "dma/cpu/fwd/f32/B=1,Hq=2,Hkv=1,D=32,N=512/causal=1,threads=2,w=64,dma_mode=exp,dma_z=random - time_ms"),
          "export/gab_smaller_shape", "rc %d: %s %s", rc, why, first_line("gab_small"));
    char *a2[] = {"dmabench", "export", (char *)K, "--format", "gab", "--tool", "customBiggerIsBetter", NULL};
    rc = run(cmd_export, a2, "gab_big");
    CHECK(rc == 0 && check_gab("gab_big", 40, why, sizeof why) && has("gab_big", "out", "GFLOP/s") &&
              !has("gab_big", "out", "time_ms"),
          "export/gab_bigger_shape", "rc %d: %s", rc, why);
    /* tasks: smaller = nll, ppl, bpb of 16 ppl cells; bigger = accuracy of 24 mqar + 80 niah cells */
    char *a3[] = {"dmabench", "export", (char *)TK, "--format", "gab", NULL};
    rc = run(cmd_export, a3, "gab_tasks");
    CHECK(rc == 0 && check_gab("gab_tasks", 48, why, sizeof why), "export/gab_tasks", "rc %d: %s", rc, why);
    char *a4[] = {"dmabench", "export", (char *)TK, "--format", "gab", "--tool", "customBiggerIsBetter", NULL};
    rc = run(cmd_export, a4, "gab_tasks_big");
    CHECK(rc == 0 && check_gab("gab_tasks_big", 104, why, sizeof why) &&
              has("gab_tasks_big", "out", "mqar/dma/cpu/d_model=64,num_kv_pairs=32,seq_len=512,w=64 - accuracy"),
          "export/gab_tasks_bigger", "rc %d: %s", rc, why);
    /* BMF: kernels 20 ok cells x 4 measures; tasks 24 + 80 + 16 x 3 */
    char *a5[] = {"dmabench", "export", (char *)K, "--format", "bmf", NULL};
    rc = run(cmd_export, a5, "bmf");
    CHECK(rc == 0 && check_bmf("bmf", 80, why, sizeof why) && has("bmf", "out", "\"latency\"") &&
              has("bmf", "out", "\"lower_value\""),
          "export/bmf_shape", "rc %d: %s %s", rc, why, first_line("bmf"));
    char *a6[] = {"dmabench", "export", (char *)TK, "--format", "bmf", NULL};
    rc = run(cmd_export, a6, "bmf_tasks");
    CHECK(rc == 0 && check_bmf("bmf_tasks", 24 + 80 + 48, why, sizeof why), "export/bmf_tasks", "rc %d: %s", rc, why);
    /* latency in ns: the median 0.084032 ms of mha fwd N=256 */
    CHECK(has("bmf", "out", "\"value\":\t84032"), "export/bmf_latency_ns", "no 84032 ns value");
    /* stable names: a second run gives the same bytes */
    rc = run(cmd_export, a5, "bmf2");
    char *x = output("bmf", "out"), *y = output("bmf2", "out");
    CHECK(rc == 0 && x && y && !strcmp(x, y), "export/deterministic", "two runs differ");
    free(x);
    free(y);
    /* bad usage */
    char *b1[] = {"dmabench", "export", (char *)K, NULL};
    char *b2[] = {"dmabench", "export", (char *)K, "--format", "gab", "--metric", "gflops_dense", NULL};
    char *b3[] = {"dmabench", "export", (char *)K, "--format", "bmf", "--tool", "customBiggerIsBetter", NULL};
    char *b4[] = {"dmabench", "export", (char *)K, "--format", "gab", "--where", "variant=xyz", NULL};
    CHECK(run(cmd_export, b1, "eb1") == 2 && has("eb1", "err", "--format"), "export/no_format", "%s", first_line("eb1"));
    CHECK(run(cmd_export, b2, "eb2") == 2 && has("eb2", "err", "customBiggerIsBetter"), "export/wrong_direction", "%s",
          first_line("eb2"));
    CHECK(run(cmd_export, b3, "eb3") == 2, "export/tool_needs_gab", "%s", first_line("eb3"));
    CHECK(run(cmd_export, b4, "eb4") == 2 && has("eb4", "err", "nothing to export"), "export/nothing", "%s",
          first_line("eb4"));
}

/* ---- the record rules ---- */

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static int value_of(const char *json, const char *metric, magg *out) {
    cJSON *r = cJSON_Parse(json);
    rec_ref ref = {r, NULL, "cpu", REC_TASK, 0, 1};
    int rc = metric_value(metric_find(metric), &ref, out);
    cJSON_Delete(r);
    return rc;
}

static void record_tests(void) {
    magg a;
    int rc = value_of("{\"task\":\"niah\",\"metrics\":{\"accuracy\":0.8,\"accuracy_ci95\":[0.7,0.9]}}", "accuracy", &a);
    CHECK(rc == 0 && a.v == 0.8 && a.lo == 0.7 && a.hi == 0.9 && a.has_int, "records/accuracy_ci95", "%g [%g, %g]", a.v,
          a.lo, a.hi);
    rc = value_of("{\"task\":\"niah\",\"metrics\":{\"accuracy\":{\"value\":0.8,\"lo\":0.7,\"hi\":0.9}}}", "accuracy", &a);
    CHECK(rc == 0 && a.v == 0.8 && a.lo == 0.7 && a.hi == 0.9, "records/accuracy_object", "%g [%g, %g]", a.v, a.lo, a.hi);
    rc = value_of("{\"task\":\"niah\",\"metrics\":{\"accuracy\":0.8,\"interval\":[0.75,0.85]}}", "accuracy", &a);
    CHECK(rc == 0 && a.lo == 0.75 && a.hi == 0.85, "records/accuracy_interval", "[%g, %g]", a.lo, a.hi);
    rc = value_of("{\"task\":\"mqar\",\"metrics\":{\"accuracy\":80}}", "accuracy", &a);
    CHECK(rc == 0 && near(a.v, 0.8, 1e-12), "records/accuracy_percent_read_as_fraction", "%g", a.v);
    rc = value_of("{\"task\":\"niah\",\"metrics\":{\"accuracy\":0.5,\"n\":100}}", "accuracy", &a);
    CHECK(rc == 0 && near(a.lo, 0.4038, 1e-3) && near(a.hi, 0.5962, 1e-3), "records/accuracy_wilson", "[%g, %g]", a.lo,
          a.hi);
    const char *ppl = "{\"task\":\"ppl\",\"metrics\":{\"nll\":1.0,\"ppl\":2.718281828,\"bits_per_byte\":1.442695,"
                      "\"stderr\":0.01,\"unigram_bits_per_byte\":4.5}}";
    rc = value_of(ppl, "bits_per_byte", &a);
    CHECK(rc == 0 && near(a.hi - a.v, 1.959964 * 0.01 / log(2.0), 1e-9) && a.sym, "records/bpb_from_nll_stderr",
          "half %g", a.hi - a.v);
    rc = value_of(ppl, "ppl", &a);
    CHECK(rc == 0 && near(a.lo, exp(1 - 1.959964 * 0.01), 1e-9) && near(a.hi, exp(1 + 1.959964 * 0.01), 1e-9),
          "records/ppl_interval_from_nll", "[%g, %g]", a.lo, a.hi);
    rc = value_of(ppl, "nll", &a);
    CHECK(rc == 0 && near(a.hi - a.lo, 2 * 1.959964 * 0.01, 1e-12), "records/nll_stderr", "[%g, %g]", a.lo, a.hi);
    rc = value_of("{\"task\":\"mqar\",\"metrics\":{\"nll\":1.0}}", "accuracy", &a);
    CHECK(rc == -1, "records/absent_metric", "rc %d", rc);

    /* pooling: three seeds give the mean with a t interval */
    cJSON *rs[3];
    rec_ref refs[3], *pr[3];
    for (int i = 0; i < 3; i++) {
        char j[128];
        snprintf(j, sizeof j, "{\"task\":\"mqar\",\"seed\":%d,\"metrics\":{\"accuracy\":%g}}", i, 0.1 * (i + 1));
        rs[i] = cJSON_Parse(j);
        refs[i] = (rec_ref){rs[i], NULL, "cpu", REC_TASK, 0, 1};
        pr[i] = &refs[i];
    }
    rc = metric_pool(metric_find("accuracy"), pr, 3, &a);
    CHECK(rc == 0 && near(a.v, 0.2, 1e-12) && near(a.hi - a.v, 4.303 * 0.1 / sqrt(3.0), 1e-9) && a.how == AGG_MEAN,
          "records/pool_seeds_t_interval", "%g +- %g", a.v, a.hi - a.v);
    for (int i = 0; i < 3; i++) cJSON_Delete(rs[i]);
    /* two seeds far apart: the t interval (t 12.7) is cut to accuracy's [0, 1] and is
     * no longer symmetric; bits per byte is cut at 0 */
    {
        cJSON *two[2];
        rec_ref tr[2], *tp[2];
        const double acc[2] = {0.05, 0.7}, bpb[2] = {0.5, 3.0};
        for (int i = 0; i < 2; i++) {
            char j[160];
            snprintf(j, sizeof j, "{\"task\":\"mqar\",\"seed\":%d,\"metrics\":{\"accuracy\":%g,\"bits_per_byte\":%g}}",
                     i, acc[i], bpb[i]);
            two[i] = cJSON_Parse(j);
            tr[i] = (rec_ref){two[i], NULL, "cpu", REC_TASK, 0, 1};
            tp[i] = &tr[i];
        }
        rc = metric_pool(metric_find("accuracy"), tp, 2, &a);
        CHECK(rc == 0 && near(a.v, 0.375, 1e-12) && a.lo == 0 && a.hi == 1 && !a.sym && a.has_int,
              "records/pool_interval_cut_to_range", "%g [%g, %g] sym %d", a.v, a.lo, a.hi, a.sym);
        rc = metric_pool(metric_find("bits_per_byte"), tp, 2, &a);
        CHECK(rc == 0 && a.lo == 0 && near(a.hi, 1.75 + 12.706 * 1.25, 1e-2) && !a.sym, "records/pool_bpb_cut_at_0",
              "%g [%g, %g]", a.v, a.lo, a.hi);
        for (int i = 0; i < 2; i++) cJSON_Delete(two[i]);
    }

    /* pooling kernel runs: the timing samples are merged */
    cJSON *k1 = kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 0, "ok"), *k2 = kernel_rec("dma", "fwd", 1024, 3.0, 0.02, 0, "ok");
    rec_ref r1 = {k1, NULL, "cpu", REC_KERNEL, 0, 1}, r2 = {k2, NULL, "cpu", REC_KERNEL, 0, 1};
    rec_ref *kr[2] = {&r1, &r2};
    rc = metric_pool(metric_find("time_ms"), kr, 2, &a);
    CHECK(rc == 0 && a.how == AGG_SAMPLES && near(a.v, (1.02 + 2.94) / 2, 1e-9), "records/pool_kernel_samples",
          "median %g", a.v);
    rc = metric_pool(metric_find("gflops_effective"), kr, 1, &a);
    CHECK(rc == 0 && near(a.v, 4.0 * 1024 * 128 * 64 * 4 / 1e-3 / 1e9, 1e-6) && a.lo < a.v && a.hi > a.v,
          "records/gflops_from_time", "%g [%g, %g]", a.v, a.lo, a.hi);
    /* the cell key leaves the seed out and keeps the machine unless asked */
    char *key1 = rec_cell_key(&r1, 0), *key2 = rec_cell_key(&r1, 1);
    CHECK(key1 && key2 && strstr(key1, "card=cpu") && !strstr(key2, "card=") && strstr(key1, "variant=dma") &&
              strstr(key1, "N=1024") && strstr(key1, "w=128"),
          "records/cell_key", "%s | %s", key1, key2);
    free(key1);
    free(key2);
    cJSON_Delete(k1);
    cJSON_Delete(k2);

    /* the selector table, plot, compare and export share: kind, task, status, --where */
    {
        cJSON *sr[6] = {kernel_rec("dma", "fwd", 1024, 1.0, 0.02, 0, "ok"),
                        kernel_rec("mha", "fwd", 1024, 1.0, 0.02, 0, "oom"),
                        cJSON_Parse("{\"kind\":\"verify\",\"variant\":\"dma\"}"),
                        task_rec("mqar", "dma", 64, 1, "accuracy", 0.5),
                        task_rec("niah", "mha", 64, 1, "accuracy", 0.5),
                        task_rec("mqar", "mha", 128, 1, "accuracy", 0.7)};
        static const rec_kind sk[6] = {REC_KERNEL, REC_KERNEL, REC_VERIFY, REC_TASK, REC_TASK, REC_TASK};
        rec_ref sref[6], *out[6];
        for (int i = 0; i < 6; i++) sref[i] = (rec_ref){sr[i], NULL, "cpu", sk[i], 0, i != 1};
        rec_set set = {.recs = sref, .nrecs = 6};
        char serr[256] = "";
        const char *w_dma[] = {"variant=dma"}, *w_bad[] = {"variant"};
        rec_select q1 = {.kinds = REC_KERNEL | REC_TASK};
        rec_select q2 = {.kinds = REC_KERNEL, .ok_only = 1};
        rec_select q3 = {.kinds = REC_TASK, .task = "mqar", .ok_only = 1};
        rec_select q4 = {.where = w_dma, .nwhere = 1};
        rec_select q5 = {.kinds = REC_TASK, .task = "mqar", .where = w_dma, .nwhere = 1};
        rec_select q6 = {.where = w_bad, .nwhere = 1};
        int n1 = rec_select_records(&set, &q1, out, serr, sizeof serr);
        int first_task = n1 == 5 && out[0] == &sref[0] && out[2] == &sref[3];
        int n2 = rec_select_records(&set, &q2, out, serr, sizeof serr);
        int n3 = rec_select_records(&set, &q3, out, serr, sizeof serr);
        int mqar_order = n3 == 2 && out[0] == &sref[3] && out[1] == &sref[5];
        int n4 = rec_select_records(&set, &q4, out, serr, sizeof serr);
        int n5 = rec_select_records(&set, &q5, out, serr, sizeof serr);
        int dma_mqar = n5 == 1 && out[0] == &sref[3];
        int n6 = rec_select_records(&set, &q6, out, serr, sizeof serr);
        CHECK(first_task && n2 == 1 && mqar_order && n4 == 3 && dma_mqar,
              "records/select_kind_task_status_where", "counts %d %d %d %d %d", n1, n2, n3, n4, n5);
        CHECK(n6 == -1 && strstr(serr, "--where expects DIM=VALUE"), "records/select_bad_where", "%d '%s'", n6, serr);
        for (int i = 0; i < 6; i++) cJSON_Delete(sr[i]);
    }

    /* three significant digits */
    static const struct {
        double v;
        const char *s;
    } f[] = {{0.0323, "0.0323"}, {1.8015, "1.80"}, {12345, "12345"}, {1234567, "1.23e+06"}, {9.996, "10.0"},
             {0.99951, "1.00"}, {100, "100"},      {0, "0"},         {-2.5, "-2.50"},      {0.00012, "1.20e-04"}};
    int bad = -1;
    char buf[32];
    for (size_t i = 0; i < sizeof f / sizeof *f && bad < 0; i++) {
        fmt_num(buf, sizeof buf, f[i].v);
        if (strcmp(buf, f[i].s)) bad = (int)i;
    }
    CHECK(bad < 0, "records/fmt_num", "%g gave %s, want %s", bad >= 0 ? f[bad].v : 0, buf, bad >= 0 ? f[bad].s : "");
}

int main(void) {
    snprintf(T, sizeof T, "/tmp/dmabench-reports-XXXXXX");
    if (!mkdtemp(T)) {
        printf("not ok - reports/setup: cannot create a temporary folder\n");
        return 1;
    }
    record_tests();
    compare_tests();
    export_tests();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
    if (getenv("DMABENCH_TEST_KEEP")) fprintf(stderr, "kept %s\n", T);
    else if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", T);
    return check_exit();
}
