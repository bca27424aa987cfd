/*
 * compare.c: `dmabench compare BASE NEW`: the CI regression gate. Cells of the two
 * reports are matched on a stable key (kind, variant, backend, mode, dtype, shape,
 * settings, card; task and task settings for task records; seeds pooled). For each
 * metric a cell has in both, the change counts only when it is larger than the
 * threshold AND the two runs' intervals (p5-p95 of the timings, 95% CI of task
 * metrics) do not overlap. Which direction is better is known per metric. A status
 * that goes from ok to anything else is a regression. Prints a markdown summary;
 * exit 1 on a regression, 0 otherwise, 2 on unusable input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "records.h"

static void usage(void) {
    printf("usage: dmabench compare BASE NEW [options]\n"
           "\n"
           "Regression verdicts between two reports (the CI gate). Cells are matched on\n"
           "variant, backend, mode, dtype, shape, settings and card (the GPU name, or the CPU\n"
           "model); task records on task, variant and settings; seeds are pooled. A metric\n"
           "regressed (or improved) only when it moved by more than the threshold in the worse\n"
           "(better) direction AND the two runs' intervals do not overlap: p5-p95 for timings,\n"
           "95%% intervals for task metrics. A status that leaves ok is a regression.\n"
           "\n"
           "options:\n"
           "  --threshold T      relative change that can count, e.g. 5%% or 5 (default 5%%)\n"
           "  --metric LIST      metrics to judge (default: time_ms and peak_mem_bytes for\n"
           "                     kernels, accuracy for mqar and niah, bits_per_byte for ppl).\n"
           "                     Known: %s\n"
           "  --where DIM=V,...  judge only cells whose DIM is one of the values (repeatable)\n"
           "  --ignore-card      match cells across machines (the card is left out of the key)\n"
           "  --fail-on-missing  a cell of BASE that NEW lacks also fails the gate\n"
           "  --all              list the unchanged cells too\n"
           "  --out FILE         also write the summary to FILE (atomically)\n"
           "\n"
           "Exit status: 0 no regression, 1 a regression (or a missing cell with\n"
           "--fail-on-missing), or --out cannot be written (then nothing is printed),\n"
           "2 unusable input: an unreadable file, another schema_version, an unknown\n"
           "--where key, or no cell in common.\n",
           metric_names());
}

typedef struct {
    char *key;
    rec_ref **rs;
    int n;
} ccell;

typedef struct {
    rec_set s;
    rec_ref **sel;
    int n;
    ccell *cells;
    int nc;
} cside;

/* By key, then by position in the report (kept in n while sorting). */
static int key_cmp(const void *a, const void *b) {
    const ccell *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Groups a report's records into cells by key. -1 on out of memory. */
static int make_cells(cside *S, int ignore_card) {
    ccell *one = calloc((size_t)(S->n + 1), sizeof *one);
    if (!one) return -1;
    for (int i = 0; i < S->n; i++) {
        one[i].key = rec_cell_key(S->sel[i], ignore_card);
        if (!one[i].key) {
            for (int k = 0; k < i; k++) free(one[k].key);
            free(one);
            return -1;
        }
        one[i].rs = &S->sel[i];
        one[i].n = 1;
    }
    /* stable order within a key: sort (key, position) */
    for (int i = 0; i < S->n; i++) one[i].n = i; /* position, for the tie break below */
    qsort(one, (size_t)S->n, sizeof *one, key_cmp);
    S->cells = calloc((size_t)(S->n + 1), sizeof *S->cells);
    rec_ref **ordered = malloc((size_t)(S->n + 1) * sizeof *ordered);
    if (!S->cells || !ordered) {
        for (int i = 0; i < S->n; i++) free(one[i].key);
        free(one);
        free(ordered);
        return -1;
    }
    for (int i = 0; i < S->n; i++) ordered[i] = S->sel[one[i].n];
    memcpy(S->sel, ordered, (size_t)S->n * sizeof *ordered);
    free(ordered);
    for (int i = 0; i < S->n; i++) {
        if (S->nc > 0 && !strcmp(S->cells[S->nc - 1].key, one[i].key)) {
            S->cells[S->nc - 1].n++;
            free(one[i].key);
            continue;
        }
        ccell *c = &S->cells[S->nc++];
        c->key = one[i].key;
        c->rs = &S->sel[i];
        c->n = 1;
    }
    free(one);
    return 0;
}

static void side_free(cside *S) {
    for (int i = 0; i < S->nc; i++) free(S->cells[i].key);
    free(S->cells);
    free(S->sel);
    recset_free(&S->s);
}

enum { V_SAME = 0, V_NOISE, V_REGRESSED, V_IMPROVED };

/* Judges one metric of one cell; rel receives the relative change. */
static int judge(const metric_def *m, const magg *b, const magg *n, double thr, double *rel) {
    double d = n->v - b->v;
    *rel = b->v != 0 ? d / fabs(b->v) : d == 0 ? 0 : copysign(INFINITY, d);
    if (fabs(d) <= m->abs_floor || fabs(*rel) <= thr) return V_SAME;
    int worse = m->higher ? d < 0 : d > 0;
    double bl = fmin(b->lo, b->v), bh = fmax(b->hi, b->v), nl = fmin(n->lo, n->v), nh = fmax(n->hi, n->v);
    /* the new interval must lie wholly on the changed side of the base interval */
    int apart = d > 0 ? nl > bh : nh < bl;
    if (!apart) return V_NOISE;
    return worse ? V_REGRESSED : V_IMPROVED;
}

typedef struct {
    int verdict;
    const ccell *cell;    /* the new side (base side for missing) */
    const metric_def *m;  /* NULL for a status change */
    magg b, n;
    double rel;
    char bstat[32], nstat[32];
} finding;

static void fmt_val(char *buf, size_t len, const metric_def *m, const magg *a) {
    char v[32], lo[32], hi[32];
    fmt_num(v, sizeof v, a->v * m->scale);
    if (!a->has_int) {
        snprintf(buf, len, "%s", v);
        return;
    }
    fmt_num(lo, sizeof lo, a->lo * m->scale);
    fmt_num(hi, sizeof hi, a->hi * m->scale);
    snprintf(buf, len, "%s [%s, %s]", v, lo, hi);
}

/* The label of a cell: the dimensions that vary among all cells, variant first. */
static void cell_label(const dim_list *vary, const rec_ref *r, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = 0;
    for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < vary->n && off < len; i++) {
        char v[128];
        int isnum = 0;
        if ((pass == 0) != !strcmp(vary->d[i].name, "variant")) continue;
        if (!dim_get(&vary->d[i], r, v, sizeof v, NULL, &isnum) || !v[0]) continue;
        int named = isnum || !strcmp(vary->d[i].name, "card");
        off += (size_t)snprintf(buf + off, len - off, "%s%s%s%s", off ? " " : "", named ? vary->d[i].name : "",
                                named ? "=" : "", v);
    }
    if (!buf[0]) snprintf(buf, len, "(the only cell)");
}

/* Orders cells as the tables do: along the varying dimensions, variant first. */
static int label_order(const void *a, const void *b, void *arg) {
    const dim_list *vary = arg;
    const rec_ref *x = (*(const ccell *const *)a)->rs[0], *y = (*(const ccell *const *)b)->rs[0];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < vary->n; i++) {
            if ((pass == 0) != !strcmp(vary->d[i].name, "variant")) continue;
            char u[256], v[256];
            dim_get(&vary->d[i], x, u, sizeof u, NULL, NULL);
            dim_get(&vary->d[i], y, v, sizeof v, NULL, NULL);
            int c = dim_cmp(&vary->d[i], u, v);
            if (c) return c;
        }
    return 0;
}

static void put_md(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') sb_puts(b, "\\|");
        else sb_printf(b, "%c", *s);
    }
}

static const char *prov_str(const rec_set *s, const char *a, const char *k) {
    if (!s->nfiles) return "?";
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s->docs[0], "provenance");
    const char *v = rec_str(cJSON_GetObjectItemCaseSensitive(p, a), k);
    return v ? v : "?";
}

static const char *status_of(const ccell *c) {
    for (int i = 0; i < c->n; i++)
        if (c->rs[i]->ok) return "ok";
    const char *s = rec_str(c->rs[0]->rec, "status");
    return s ? s : "?";
}

/* The metrics judged for a cell: the ones asked for, or the kind's defaults. */
static int cell_metrics(const ccell *bc, const ccell *nc, const metric_def *const *asked, int nasked,
                        const metric_def **out) {
    int n = 0;
    rec_kind k = bc->rs[0]->kind;
    if (nasked) {
        for (int i = 0; i < nasked; i++)
            if (asked[i]->kinds & k) out[n++] = asked[i];
        return n;
    }
    if (k == REC_KERNEL) {
        out[n++] = metric_find("time_ms");
        out[n++] = metric_find("peak_mem_bytes");
        return n;
    }
    if (k != REC_TASK) return 0;
    const char *task = rec_str(bc->rs[0]->rec, "task");
    static const char *ppl[] = {"bits_per_byte", "nll", "ppl", "accuracy"};
    static const char *acc[] = {"accuracy", "bits_per_byte", "nll", "ppl"};
    const char **ord = task && !strcmp(task, "ppl") ? ppl : acc;
    for (int i = 0; i < 4; i++) {
        const metric_def *m = metric_find(ord[i]);
        magg a, b;
        if (metric_pool(m, bc->rs, bc->n, &a) == 0 && metric_pool(m, nc->rs, nc->n, &b) == 0) {
            out[n++] = m;
            break;
        }
    }
    return n;
}

static int load_side(cside *S, const char *path, const char *const *where, int nwhere, int ignore_card, char *err,
                     size_t elen) {
    if (recset_load(&S->s, path, err, elen) != 0) return -1;
    S->sel = malloc((size_t)(S->s.nrecs + 1) * sizeof *S->sel);
    if (!S->sel) {
        snprintf(err, elen, "out of memory");
        return -1;
    }
    rec_select q = {.where = where, .nwhere = nwhere};
    S->n = rec_select_records(&S->s, &q, S->sel, err, elen);
    if (S->n < 0) return -1;
    if (make_cells(S, ignore_card) != 0) {
        snprintf(err, elen, "out of memory");
        return -1;
    }
    return 0;
}

int cmd_compare(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "compare", argc, argv, 2, "--help -h --ignore-card --fail-on-missing --all") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    const char *ts = cli_str(&a, "--threshold", "5%"), *metric = cli_str(&a, "--metric", NULL);
    const char *out = cli_str(&a, "--out", NULL);
    int ignore_card = cli_flag(&a, "--ignore-card"), fail_missing = cli_flag(&a, "--fail-on-missing");
    int all = cli_flag(&a, "--all");
    const char *where[32];
    int nwhere = cli_all(&a, "--where", where, 32);
    int npos = cli_npos(&a);
    const char *bpath = cli_pos(&a, 0), *npath = cli_pos(&a, 1);
    for (int i = 2; i < npos; i++) cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (npos != 2) {
        fprintf(stderr, "dmabench compare: give exactly two reports, BASE and NEW (got %d)\n", npos);
        return 2;
    }
    char *end;
    double thr = strtod(ts, &end);
    if (end == ts || (*end && strcmp(end, "%") != 0) || !(thr >= 0) || thr > 1000) {
        fprintf(stderr, "dmabench compare: --threshold expects a percentage such as 5%% or 2.5, got '%s'\n", ts);
        return 2;
    }
    thr /= 100;
    const metric_def *asked[32];
    int nasked = 0;
    if (metric) {
        char merr[512];
        if ((nasked = metric_parse_list(metric, asked, 32, merr, sizeof merr)) < 0) {
            fprintf(stderr, "dmabench compare: %s\n", merr);
            return 2;
        }
    }

    cside B, N;
    memset(&B, 0, sizeof B);
    memset(&N, 0, sizeof N);
    char err[1024];
    int rc = 2;
    finding *fd = NULL;
    sbuf o = {0};
    const ccell **missing = NULL, **added = NULL;
    if (load_side(&B, bpath, where, nwhere, ignore_card, err, sizeof err) != 0 ||
        load_side(&N, npath, where, nwhere, ignore_card, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench compare: %s\n", err);
        goto done;
    }
    if (B.nc == 0 || N.nc == 0) {
        fprintf(stderr, "dmabench compare: nothing to compare: %s has no kernel, verify or task records%s\n",
                B.nc == 0 ? bpath : npath, nwhere ? " that pass --where" : "");
        goto done;
    }
    /* merge-join the sorted cells */
    int cap = (B.nc + N.nc) * 20 + 16, nf = 0, nmiss = 0, nadd = 0, matched = 0;
    fd = calloc((size_t)cap, sizeof *fd);
    missing = calloc((size_t)B.nc + 1, sizeof *missing);
    added = calloc((size_t)N.nc + 1, sizeof *added);
    if (!fd || !missing || !added) {
        fprintf(stderr, "dmabench compare: out of memory\n");
        goto done;
    }
    int counts[4] = {0}, cells_reg = 0, cells_imp = 0, judged = 0;
    for (int i = 0, j = 0; i < B.nc || j < N.nc;) {
        int c = i >= B.nc ? 1 : j >= N.nc ? -1 : strcmp(B.cells[i].key, N.cells[j].key);
        if (c < 0) {
            missing[nmiss++] = &B.cells[i++];
            continue;
        }
        if (c > 0) {
            added[nadd++] = &N.cells[j++];
            continue;
        }
        const ccell *bc = &B.cells[i++], *nc = &N.cells[j++];
        matched++;
        int creg = 0, cimp = 0;
        const char *bs = status_of(bc), *ns = status_of(nc);
        if (strcmp(bs, ns) != 0 && (!strcmp(bs, "ok") || !strcmp(ns, "ok")) && nf < cap) {
            finding *f = &fd[nf++];
            f->verdict = !strcmp(bs, "ok") ? V_REGRESSED : V_IMPROVED;
            f->cell = nc;
            snprintf(f->bstat, sizeof f->bstat, "%s", bs);
            snprintf(f->nstat, sizeof f->nstat, "%s", ns);
            counts[f->verdict]++;
            creg |= f->verdict == V_REGRESSED;
            cimp |= f->verdict == V_IMPROVED;
            judged++;
        }
        const metric_def *ms[32];
        int nm = cell_metrics(bc, nc, asked, nasked, ms);
        for (int k = 0; k < nm && nf < cap; k++) {
            finding *f = &fd[nf];
            if (metric_pool(ms[k], bc->rs, bc->n, &f->b) != 0 || metric_pool(ms[k], nc->rs, nc->n, &f->n) != 0)
                continue;
            f->m = ms[k];
            f->cell = nc;
            f->verdict = judge(ms[k], &f->b, &f->n, thr, &f->rel);
            counts[f->verdict]++;
            creg |= f->verdict == V_REGRESSED;
            cimp |= f->verdict == V_IMPROVED;
            judged++;
            nf++;
        }
        cells_reg += creg;
        cells_imp += cimp && !creg;
    }
    if (matched == 0) {
        fprintf(stderr, "dmabench compare: nothing to compare: no cell of %s matches one of %s%s\n", npath, bpath,
                ignore_card ? "" : " (another machine? --ignore-card matches across cards)");
        goto done;
    }
    if (judged == 0) {
        fprintf(stderr, "dmabench compare: nothing to compare: the %d matched cells share no metric%s\n", matched,
                metric ? " of --metric" : "");
        goto done;
    }

    /* labels: the dimensions that vary among all cells; the rest is said once */
    rec_ref **allr = malloc((size_t)(B.n + N.n + 1) * sizeof *allr);
    if (!allr) {
        fprintf(stderr, "dmabench compare: out of memory\n");
        goto done;
    }
    memcpy(allr, B.sel, (size_t)B.n * sizeof *allr);
    memcpy(allr + B.n, N.sel, (size_t)N.n * sizeof *allr);
    dim_list L, vary = {0};
    dims_collect(allr, B.n + N.n, &L);
    sbuf common = {0};
    for (int i = 0; i < L.n; i++) {
        if (ignore_card && L.d[i].src == DSRC_CARD) continue;
        int k = dim_distinct(&L.d[i], allr, B.n + N.n);
        if (k > 1 && !L.d[i].hidden) vary.d[vary.n++] = L.d[i];
        else if (k == 1 && !L.d[i].hidden) {
            char v[128];
            for (int r = 0; r < B.n + N.n; r++)
                if (dim_get(&L.d[i], allr[r], v, sizeof v, NULL, NULL)) break;
            sb_printf(&common, "%s%s=%s", common.len ? ", " : "", L.d[i].name, v);
        }
    }
    free(allr);
    /* findings, missing and new cells in table order (a stable sort keeps a cell's
     * status finding before its metrics) */
    for (int i = 1; i < nf; i++)
        for (int j = i; j > 0; j--) {
            const ccell *p = fd[j - 1].cell, *q = fd[j].cell;
            if (label_order(&p, &q, &vary) <= 0) break;
            finding t = fd[j];
            fd[j] = fd[j - 1];
            fd[j - 1] = t;
        }
    qsort_r(missing, (size_t)nmiss, sizeof *missing, label_order, &vary);
    qsort_r(added, (size_t)nadd, sizeof *added, label_order, &vary);

    sb_puts(&o, "## dmabench compare\n\n| | report | commit | machine | time |\n|---|---|---|---|---|\n");
    for (int s = 0; s < 2; s++) {
        const cside *S = s ? &N : &B;
        const cJSON *p = S->s.nfiles ? cJSON_GetObjectItemCaseSensitive(S->s.docs[0], "provenance") : NULL;
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "machine"), "gpu");
        const char *gn = rec_str(g, "name");
        sb_printf(&o, "| %s | ", s ? "new" : "base");
        put_md(&o, S->s.paths[0]);
        sb_puts(&o, " | ");
        put_md(&o, prov_str(&S->s, "build", "git_commit"));
        sb_puts(&o, " | ");
        put_md(&o, prov_str(&S->s, "machine", "cpu"));
        if (gn) {
            sb_puts(&o, ", ");
            put_md(&o, gn);
        }
        sb_puts(&o, " | ");
        put_md(&o, prov_str(&S->s, "run", "utc_time"));
        sb_puts(&o, " |\n");
    }
    char tp[32];
    snprintf(tp, sizeof tp, "%g", thr * 100);
    sb_printf(&o,
              "\nA metric counts as changed when it moves by more than %s%% and the two runs' intervals "
              "(p5-p95 of timings, 95%% CI of task metrics) do not overlap.\n",
              tp);
    if (common.len) {
        sb_puts(&o, "Common to every cell: ");
        put_md(&o, common.s);
        sb_puts(&o, ".\n");
    }
    sb_free(&common);
    sb_printf(&o, "\n**%d regressed**, %d improved, %d unchanged of %d matched cells (%d changes within noise); "
                  "%d missing, %d new.\n",
              cells_reg, cells_imp, matched - cells_reg - cells_imp, matched, counts[V_NOISE], nmiss, nadd);

    static const char *heads[] = {"Unchanged", "Within noise", "Regressions", "Improvements"};
    int order[] = {V_REGRESSED, V_IMPROVED, V_NOISE, V_SAME};
    for (int oi = 0; oi < 4; oi++) {
        int v = order[oi];
        if (!counts[v] || ((v == V_NOISE || v == V_SAME) && !all)) continue;
        sb_printf(&o, "\n### %s\n\n| cell | metric | base | new | change |\n|---|---|---:|---:|---:|\n", heads[v]);
        for (int i = 0; i < nf; i++) {
            const finding *f = &fd[i];
            if (f->verdict != v) continue;
            char lab[512], bv[128], nv[128], ch[32];
            cell_label(&vary, f->cell->rs[0], lab, sizeof lab);
            sb_puts(&o, "| ");
            put_md(&o, lab);
            if (!f->m) {
                sb_printf(&o, " | status | %s | %s | |\n", f->bstat, f->nstat);
                continue;
            }
            fmt_val(bv, sizeof bv, f->m, &f->b);
            fmt_val(nv, sizeof nv, f->m, &f->n);
            if (isinf(f->rel)) snprintf(ch, sizeof ch, "%s", f->rel > 0 ? "+inf" : "-inf");
            else snprintf(ch, sizeof ch, "%+.1f%%", f->rel * 100);
            sb_printf(&o, " | %s%s%s%s | %s | %s | %s |\n", f->m->name, f->m->unit[0] ? " (" : "", f->m->unit,
                      f->m->unit[0] ? ")" : "", bv, nv, ch);
        }
    }
    for (int s = 0; s < 2; s++) {
        int cnt = s ? nadd : nmiss;
        const ccell **lst = s ? added : missing;
        if (!cnt) continue;
        sb_printf(&o, "\n### %s (%d)\n\n", s ? "New in NEW" : "Missing from NEW", cnt);
        for (int i = 0; i < cnt && i < 50; i++) {
            char lab[512];
            cell_label(&vary, lst[i]->rs[0], lab, sizeof lab);
            sb_puts(&o, "- ");
            put_md(&o, lab);
            sb_printf(&o, " (%s)\n", status_of(lst[i]));
        }
        if (cnt > 50) sb_printf(&o, "- ... and %d more\n", cnt - 50);
    }
    int fail = cells_reg > 0 || (fail_missing && nmiss > 0);
    if (cells_reg) sb_printf(&o, "\nverdict: FAIL (%d regressed cell%s)\n", cells_reg, cells_reg == 1 ? "" : "s");
    else if (fail) sb_printf(&o, "\nverdict: FAIL (%d missing cell%s)\n", nmiss, nmiss == 1 ? "" : "s");
    else sb_puts(&o, "\nverdict: ok\n");
    /* --out first: a summary that cannot be saved is not printed as if all went well */
    if (out && strcmp(out, "-") && sb_emit(&o, out, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench compare: %s\n", err);
        rc = 1;
        goto done;
    }
    if (sb_emit(&o, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench compare: %s\n", err);
        rc = 1;
        goto done;
    }
    rc = fail ? 1 : 0;
done:
    sb_free(&o);
    free(fd);
    free(missing);
    free(added);
    side_free(&B);
    side_free(&N);
    return rc;
}
