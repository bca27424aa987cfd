/*
 * table.c: `dmabench table REPORT...`: paper-style tables from report records, in
 * markdown, LaTeX (booktabs) or CSV. Kernel records give rows = shape/mode and
 * columns = variant; task records give one table per task. Each cell is the
 * median with p5-p95 (kernel timings) or the mean with a 95% interval over seeds
 * (task records); the best cell of a row is bold; --baseline adds ratio columns.
 * docs/reports.md describes the layout rules.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "records.h"

enum { TF_MD, TF_LATEX, TF_CSV };

typedef struct {
    int fmt;
    int nospread;
    const char *baseline;
    const char *rows, *cols;
    int ntables; /* tables emitted so far (csv separates them) */
    int total;   /* tables to emit */
} topts;

static void usage(void) {
    printf("usage: dmabench table REPORT... [options]\n"
           "\n"
           "Paper-style tables from the records of one or more reports (nothing is measured).\n"
           "Kernel records: rows = shape and mode, columns = variant, cells = median time with\n"
           "p5-p95. Task records: one table per task, rows = its settings, columns = variant,\n"
           "cells = mean with a 95%% interval over seeds. The best cell of each row is bold.\n"
           "\n"
           "options:\n"
           "  --format F         md|latex|csv (default md; latex uses booktabs)\n"
           "  --metric LIST      what the cells show (default: time_ms for kernels, accuracy for\n"
           "                     mqar and niah, bits_per_byte for ppl); one table per metric. Known:\n"
           "                     %s\n"
           "  --task T           only the task records of T (mqar, niah, ppl)\n"
           "  --kind K           kernel|task|verify (default: kernel and task records; verify\n"
           "                     records when there are no others)\n"
           "  --rows LIST        dimensions that make the rows (default: every dimension that\n"
           "                     varies, lengths last)\n"
           "  --cols LIST        dimensions that make the columns (default: variant, plus a\n"
           "                     variant's own setting such as w when it varies)\n"
           "  --where DIM=V,...  keep only records whose DIM is one of the values (repeatable)\n"
           "  --baseline V       add ratio columns against variant V (> 1: better than V)\n"
           "  --no-spread        the values alone, without intervals\n"
           "  --out FILE         write the table(s) to FILE (atomically) instead of stdout\n"
           "\n"
           "Dimensions: variant, backend, mode, dtype, B, N, Hq, Hkv, D, causal, threads, w,\n"
           "dma_mode, dma_z, nsa_*, card (GPU name or CPU model), task settings (seq_len,\n"
           "num_kv_pairs, d_model, context_len, depth, context, ...). Records that share a\n"
           "cell (several seeds, repeated runs) are pooled. Exit 1 when --out cannot be\n"
           "written, 2 on bad usage or input (an unknown --where key or --task included).\n",
           metric_names());
}

/* ---- escaping ---- */

static void put_latex(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': sb_puts(b, "\\textbackslash{}"); break;
        case '&': case '%': case '$': case '#': case '_': case '{': case '}': sb_printf(b, "\\%c", *s); break;
        case '~': sb_puts(b, "\\textasciitilde{}"); break;
        case '^': sb_puts(b, "\\textasciicircum{}"); break;
        case '\xc2':
            if (s[1] == '\xb1') { /* UTF-8 plus-minus */
                sb_puts(b, "$\\pm$");
                s++;
                break;
            }
            sb_printf(b, "%c", *s);
            break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

static void put_md(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') sb_puts(b, "\\|");
        else if (*s == '\n') sb_puts(b, " ");
        else sb_printf(b, "%c", *s);
    }
}

static void put_csv(sbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        sb_puts(b, s);
        return;
    }
    sb_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"') sb_puts(b, "\"\"");
        else sb_printf(b, "%c", *s);
    }
    sb_puts(b, "\"");
}

static void put_text(sbuf *b, int fmt, const char *s) {
    if (fmt == TF_LATEX) put_latex(b, s);
    else if (fmt == TF_MD) put_md(b, s);
    else put_csv(b, s);
}

/* ---- one table ---- */

typedef struct {
    int has;        /* a value */
    magg a;
    char status[32]; /* when no value: the records' status */
} tcell;

static int in_list(const dim_def *const *l, int n, const dim_def *d) {
    for (int i = 0; i < n; i++)
        if (l[i] == d) return 1;
    return 0;
}

/* Parses a dimension list; -1 with a message when a name is unknown. */
static int parse_dims(const char *s, const dim_list *L, const dim_def **out, int *n, const char *opt, char *err,
                      size_t elen) {
    char *items[DIM_MAX];
    int ni = cli_list(s, items, DIM_MAX);
    for (int i = 0; i < ni; i++) {
        const dim_def *d = dims_find(L, items[i]);
        if (!d) {
            char have[512];
            dims_names(L, have, sizeof have);
            snprintf(err, elen, "%s: no dimension '%s' in these records (they have: %s)", opt, items[i], have);
            cli_list_free(items, ni);
            return -1;
        }
        if (!in_list(out, *n, d)) out[(*n)++] = d;
    }
    cli_list_free(items, ni);
    return 0;
}

/* The label of a group along dims: string values as they are, numbers as name=value. */
static void group_label(const dim_def *const *dims, int nd, const rec_ref *r, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = 0;
    for (int k = 0; k < nd && off < len; k++) {
        char v[128];
        int isnum = 0;
        if (!dim_get(dims[k], r, v, sizeof v, NULL, &isnum) || !v[0]) continue;
        int named = isnum && strcmp(dims[k]->name, "variant") != 0;
        off += (size_t)snprintf(buf + off, len - off, "%s%s%s%s", off ? " " : "", named ? dims[k]->name : "",
                                named ? "=" : "", v);
    }
}

static void fmt_scaled(char *buf, size_t n, const metric_def *m, double v) { fmt_num(buf, n, v * m->scale); }

/* A cell's text: value, then the interval unless --no-spread. */
static void cell_text(sbuf *b, const topts *o, const metric_def *m, const tcell *c, int bold) {
    if (!c->has) {
        if (o->fmt == TF_CSV) return;
        put_text(b, o->fmt, c->status[0] ? c->status : "-");
        return;
    }
    char v[32], lo[32], hi[32], half[32];
    fmt_scaled(v, sizeof v, m, c->a.v);
    fmt_scaled(lo, sizeof lo, m, c->a.lo);
    fmt_scaled(hi, sizeof hi, m, c->a.hi);
    fmt_scaled(half, sizeof half, m, (c->a.hi - c->a.lo) / 2);
    int spread = !o->nospread && c->a.has_int;
    if (o->fmt == TF_MD) {
        sb_printf(b, bold ? "**%s**" : "%s", v);
        if (spread && c->a.sym) sb_printf(b, " ± %s", half);
        else if (spread) sb_printf(b, " [%s, %s]", lo, hi);
    } else if (o->fmt == TF_LATEX) {
        sb_printf(b, bold ? "\\textbf{%s}" : "%s", v);
        if (spread && c->a.sym) sb_printf(b, "\\,{\\scriptsize$\\pm$%s}", half);
        else if (spread) sb_printf(b, "\\,{\\scriptsize[%s, %s]}", lo, hi);
    }
}

static void csv_num(sbuf *b, const metric_def *m, double v) { sb_printf(b, "%.6g", v * m->scale); }

static void header_cell(sbuf *b, const topts *o, const char *label, const metric_def *m) {
    char h[256];
    if (m->unit[0]) snprintf(h, sizeof h, "%s (%s)", label, m->unit);
    else snprintf(h, sizeof h, "%s", label);
    put_text(b, o->fmt, h);
}

static int emit_table(sbuf *b, rec_ref **rs, int n, const metric_def *m, topts *o, const char *what, char *err,
                      size_t elen) {
    dim_list L;
    dims_collect(rs, n, &L);
    const dim_def *cols[DIM_MAX], *rows[DIM_MAX];
    int nc = 0, nr = 0;
    if (o->cols) {
        if (parse_dims(o->cols, &L, cols, &nc, "--cols", err, elen) != 0) return -1;
    } else if (dims_find(&L, "variant")) {
        cols[nc++] = dims_find(&L, "variant");
    }
    if (o->rows && parse_dims(o->rows, &L, rows, &nr, "--rows", err, elen) != 0) return -1;
    for (int i = 0; i < nr; i++)
        if (in_list(cols, nc, rows[i])) {
            snprintf(err, elen, "dimension '%s' is in both --rows and --cols", rows[i]->name);
            return -1;
        }
    /* a variant's own setting that varies joins the columns next to the variant
     * ("dma w=64", "dma w=128"); everything else that varies makes the rows */
    int var_in_cols = dims_find(&L, "variant") && in_list(cols, nc, dims_find(&L, "variant"));
    /* verify records: the label names the shape, and the settings go with the row */
    int verify = rs[0]->kind == REC_VERIFY && dims_find(&L, "label");
    for (int i = 0; i < L.n; i++) {
        const dim_def *d = &L.d[i];
        if (d->hidden || in_list(cols, nc, d) || in_list(rows, nr, d) || dim_distinct(d, rs, n) < 2) continue;
        if (verify && d->src == DSRC_SHAPE) continue;
        if (d->variant_specific && var_in_cols && !o->cols && !verify) cols[nc++] = d;
        else if (!o->rows) rows[nr++] = d;
    }
    /* what is neither row nor column: constant (said once in the caption) or pooled */
    sbuf fixed = {0}, pooled = {0};
    for (int i = 0; i < L.n; i++) {
        const dim_def *d = &L.d[i];
        if (d->hidden || in_list(cols, nc, d) || in_list(rows, nr, d) || !strcmp(d->name, "task")) continue;
        if (verify && d->src == DSRC_SHAPE) continue;
        int k = dim_distinct(d, rs, n);
        if (k == 1) {
            char v[128];
            for (int j = 0; j < n; j++)
                if (dim_get(d, rs[j], v, sizeof v, NULL, NULL)) break;
            sb_printf(&fixed, "%s%s=%s", fixed.len ? ", " : "", d->name, v);
        } else if (k > 1) {
            sb_printf(&pooled, "%s%s", pooled.len ? ", " : "", d->name);
        }
    }

    /* rows and columns */
    int *order = malloc((size_t)n * sizeof *order), *rstart = malloc((size_t)(n + 1) * sizeof *rstart);
    int *corder = malloc((size_t)n * sizeof *corder), *cstart = malloc((size_t)(n + 1) * sizeof *cstart);
    int *colof = malloc((size_t)n * sizeof *colof);
    rec_ref **tmp = malloc((size_t)n * sizeof *tmp);
    int ngr = order && rstart ? group_by(rs, n, rows, nr, order, rstart) : -1;
    int ngc = corder && cstart ? group_by(rs, n, cols, nc, corder, cstart) : -1;
    tcell *cells = ngr > 0 && ngc > 0 ? calloc((size_t)ngr * ngc, sizeof *cells) : NULL;
    int rc = -1, base_col = -1;
    if (!cells || !colof || !tmp) {
        snprintf(err, elen, "out of memory");
        goto done;
    }
    for (int c = 0; c < ngc; c++)
        for (int i = cstart[c]; i < cstart[c + 1]; i++) colof[corder[i]] = c;
    if (o->baseline) {
        const dim_def *vd = dims_find(&L, "variant");
        if (!vd || !in_list(cols, nc, vd)) {
            snprintf(err, elen, "--baseline needs the variant in the columns");
            goto done;
        }
        for (int c = 0; c < ngc && base_col < 0; c++) {
            char v[64];
            dim_get(vd, rs[corder[cstart[c]]], v, sizeof v, NULL, NULL);
            if (!strcmp(v, o->baseline)) base_col = c;
        }
        if (base_col < 0) {
            snprintf(err, elen, "--baseline %.64s: no column of that variant in the %.64s table", o->baseline, what);
            goto done;
        }
    }
    int hows[4] = {0};
    const char *spread_one = NULL;
    for (int r = 0; r < ngr; r++) {
        for (int c = 0; c < ngc; c++) {
            int k = 0;
            for (int i = rstart[r]; i < rstart[r + 1]; i++)
                if (colof[order[i]] == c) tmp[k++] = rs[order[i]];
            tcell *t = &cells[r * ngc + c];
            if (k && metric_pool(m, tmp, k, &t->a) == 0) {
                t->has = 1;
                if (t->a.has_int) hows[t->a.how]++;
                if (t->a.how == AGG_ONE && t->a.has_int) spread_one = t->a.spread;
            } else {
                for (int j = 0; j < k && !t->status[0]; j++)
                    if (!tmp[j]->ok) snprintf(t->status, sizeof t->status, "%s", rec_str(tmp[j]->rec, "status"));
            }
        }
    }

    /* caption */
    char title[512];
    snprintf(title, sizeof title, "%.64s: %s%s%s%s", what, m->title, m->unit[0] ? " (" : "", m->unit,
             m->unit[0] ? ")" : "");
    sbuf cap = {0};
    sb_puts(&cap, title);
    if (!o->nospread) {
        const char *sep = ", ";
        if (hows[AGG_ONE] && spread_one && !strcmp(spread_one, "p5-p95")) {
            sb_printf(&cap, "%smedian [p5, p95]", sep);
            sep = "; ";
        } else if (hows[AGG_ONE]) {
            sb_printf(&cap, "%svalue [95%% CI]", sep);
            sep = "; ";
        }
        if (hows[AGG_SAMPLES]) {
            sb_printf(&cap, "%smedian [p5, p95] of the pooled runs", sep);
            sep = "; ";
        }
        if (hows[AGG_MEAN]) sb_printf(&cap, "%smean ± 95%% CI over %s", sep, pooled.len ? "the pooled records" : "seeds");
    }
    sb_puts(&cap, ".");
    if (fixed.len) sb_printf(&cap, " %s.", fixed.s);
    if (pooled.len) sb_printf(&cap, " Pooled over %s.", pooled.s);
    if (ngc > 1) sb_printf(&cap, " Best per row in bold.");
    char base_label[256] = "";
    if (base_col >= 0) {
        group_label(cols, nc, rs[corder[cstart[base_col]]], base_label, sizeof base_label);
        sb_printf(&cap, " Ratios against %s: %s (> 1 is better).", base_label,
                  m->higher ? "value / baseline" : "baseline / value");
    }

    /* column labels */
    char (*clabel)[256] = malloc((size_t)ngc * sizeof *clabel);
    if (!clabel) {
        sb_free(&cap);
        snprintf(err, elen, "out of memory");
        goto done;
    }
    for (int c = 0; c < ngc; c++) {
        group_label(cols, nc, rs[corder[cstart[c]]], clabel[c], sizeof clabel[c]);
        if (!clabel[c][0]) snprintf(clabel[c], sizeof clabel[c], "%s", m->name);
    }
    int nratio = base_col >= 0 ? ngc - 1 : 0;

    /* ---- render ---- */
    if (o->fmt == TF_MD) {
        sb_puts(b, "Table: ");
        put_md(b, cap.s);
        sb_puts(b, "\n\n|");
        for (int k = 0; k < nr; k++) {
            sb_puts(b, " ");
            put_md(b, rows[k]->name);
            sb_puts(b, " |");
        }
        for (int c = 0; c < ngc; c++) {
            sb_puts(b, " ");
            header_cell(b, o, clabel[c], m);
            sb_puts(b, " |");
        }
        for (int c = 0; c < ngc; c++)
            if (c != base_col && base_col >= 0) {
                sb_puts(b, " ");
                put_md(b, clabel[c]);
                sb_puts(b, " vs ");
                put_md(b, base_label);
                sb_puts(b, " |");
            }
        sb_puts(b, "\n|");
        for (int k = 0; k < nr; k++) {
            double x;
            int isnum = 0;
            char v[128];
            for (int i = 0; i < n && !isnum; i++) dim_get(rows[k], rs[i], v, sizeof v, &x, &isnum);
            sb_puts(b, isnum ? "---:|" : "---|");
        }
        for (int c = 0; c < ngc + nratio; c++) sb_puts(b, "---:|");
        sb_puts(b, "\n");
    } else if (o->fmt == TF_LATEX) {
        sb_puts(b, "% needs \\usepackage{booktabs} and \\usepackage{graphicx}\n\\begin{table}[t]\n\\centering\n\\caption{");
        put_latex(b, cap.s);
        /* a table wider than the text is scaled down to the text width, never up */
        sb_puts(b, "}\n\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n\\begin{tabular}{");
        for (int k = 0; k < nr; k++) sb_puts(b, "l");
        for (int c = 0; c < ngc + nratio; c++) sb_puts(b, "r");
        sb_puts(b, "}\n\\toprule\n");
        int first = 1;
        for (int k = 0; k < nr; k++, first = 0) {
            if (!first) sb_puts(b, " & ");
            put_latex(b, rows[k]->name);
        }
        for (int c = 0; c < ngc; c++, first = 0) {
            if (!first) sb_puts(b, " & ");
            header_cell(b, o, clabel[c], m);
        }
        for (int c = 0; c < ngc; c++)
            if (c != base_col && base_col >= 0) {
                sb_puts(b, " & ");
                put_latex(b, clabel[c]);
                sb_puts(b, " vs ");
                put_latex(b, base_label);
            }
        sb_puts(b, " \\\\\n\\midrule\n");
    } else {
        if (o->total > 1) {
            if (o->ntables) sb_puts(b, "\n");
            sb_puts(b, "# ");
            sb_puts(b, cap.s);
            sb_puts(b, "\n");
        }
        int first = 1;
        for (int k = 0; k < nr; k++, first = 0) {
            if (!first) sb_puts(b, ",");
            put_csv(b, rows[k]->name);
        }
        for (int c = 0; c < ngc; c++) {
            char h[300];
            if (!first) sb_puts(b, ",");
            first = 0;
            header_cell(b, o, clabel[c], m);
            if (!o->nospread) {
                snprintf(h, sizeof h, "%s lo", clabel[c]);
                sb_puts(b, ",");
                put_csv(b, h);
                snprintf(h, sizeof h, "%s hi", clabel[c]);
                sb_puts(b, ",");
                put_csv(b, h);
            }
        }
        for (int c = 0; c < ngc; c++)
            if (c != base_col && base_col >= 0) {
                char h[600];
                snprintf(h, sizeof h, "%s vs %s", clabel[c], base_label);
                sb_puts(b, ",");
                put_csv(b, h);
            }
        if (ngc > 1) sb_puts(b, ",best");
        sb_puts(b, "\n");
    }

    char prev0[128] = "";
    for (int r = 0; r < ngr; r++) {
        const rec_ref *rr = rs[order[rstart[r]]];
        /* the best value of the row */
        int nval = 0, best = -1;
        for (int c = 0; c < ngc; c++) {
            const tcell *t = &cells[r * ngc + c];
            if (!t->has) continue;
            nval++;
            if (best < 0 || (m->higher ? t->a.v > cells[r * ngc + best].a.v : t->a.v < cells[r * ngc + best].a.v))
                best = c;
        }
        double bestv = best >= 0 ? cells[r * ngc + best].a.v : 0;
        /* a row where every value ties has no best: nothing bold */
        int nbest = 0;
        for (int c = 0; c < ngc; c++) nbest += cells[r * ngc + c].has && cells[r * ngc + c].a.v == bestv;
        const int marks = nval > 1 && nbest < nval;
        if (o->fmt == TF_MD) sb_puts(b, "|");
        if (o->fmt == TF_LATEX && nr > 1 && r > 0) {
            char v0[128];
            dim_get(rows[0], rr, v0, sizeof v0, NULL, NULL);
            if (strcmp(v0, prev0) != 0) sb_puts(b, "\\midrule\n");
        }
        int first = 1;
        for (int k = 0; k < nr; k++) {
            char v[128];
            dim_get(rows[k], rr, v, sizeof v, NULL, NULL);
            if (o->fmt == TF_MD) {
                sb_puts(b, " ");
                put_md(b, v[0] ? v : "-");
                sb_puts(b, " |");
            } else {
                if (!first) sb_puts(b, o->fmt == TF_LATEX ? " & " : ",");
                /* LaTeX: the leading dimension is written once per group */
                if (o->fmt == TF_LATEX && k == 0 && r > 0 && nr > 1 && !strcmp(v, prev0)) {
                } else {
                    put_text(b, o->fmt, o->fmt == TF_LATEX && !v[0] ? "-" : v);
                }
                if (k == 0) snprintf(prev0, sizeof prev0, "%s", v);
            }
            first = 0;
        }
        for (int c = 0; c < ngc; c++) {
            const tcell *t = &cells[r * ngc + c];
            int bold = marks && t->has && t->a.v == bestv;
            if (o->fmt == TF_MD) {
                sb_puts(b, " ");
                cell_text(b, o, m, t, bold);
                sb_puts(b, " |");
            } else if (o->fmt == TF_LATEX) {
                if (!first) sb_puts(b, " & ");
                cell_text(b, o, m, t, bold);
            } else {
                if (!first) sb_puts(b, ",");
                if (t->has) csv_num(b, m, t->a.v);
                if (!o->nospread) {
                    sb_puts(b, ",");
                    if (t->has && t->a.has_int) csv_num(b, m, t->a.lo);
                    sb_puts(b, ",");
                    if (t->has && t->a.has_int) csv_num(b, m, t->a.hi);
                }
            }
            first = 0;
        }
        for (int c = 0; c < ngc; c++) {
            if (base_col < 0 || c == base_col) continue;
            const tcell *t = &cells[r * ngc + c], *bt = &cells[r * ngc + base_col];
            char rt[32] = "";
            double ratio = NAN;
            if (t->has && bt->has && (m->higher ? bt->a.v != 0 : t->a.v != 0))
                ratio = m->higher ? t->a.v / bt->a.v : bt->a.v / t->a.v;
            if (isfinite(ratio)) snprintf(rt, sizeof rt, "%.2f", ratio);
            if (o->fmt == TF_MD) sb_printf(b, " %s |", rt[0] ? rt : "-");
            else if (o->fmt == TF_LATEX) sb_printf(b, " & %s", rt[0] ? rt : "-");
            else sb_printf(b, ",%s", rt);
        }
        if (o->fmt == TF_CSV && ngc > 1) {
            sb_puts(b, ",");
            int nb = 0;
            char bl[512] = "";
            size_t off = 0;
            for (int c = 0; c < ngc; c++) {
                const tcell *t = &cells[r * ngc + c];
                if (marks && t->has && t->a.v == bestv && off < sizeof bl)
                    off += (size_t)snprintf(bl + off, sizeof bl - off, "%s%s", nb++ ? " " : "", clabel[c]);
            }
            put_csv(b, bl);
        }
        sb_puts(b, o->fmt == TF_LATEX ? " \\\\\n" : "\n");
    }
    if (o->fmt == TF_LATEX) sb_puts(b, "\\bottomrule\n\\end{tabular}}\n\\end{table}\n");
    if (o->fmt != TF_CSV && o->ntables + 1 < o->total) sb_puts(b, "\n");
    o->ntables++;
    free(clabel);
    sb_free(&cap);
    rc = 0;
done:
    sb_free(&fixed);
    sb_free(&pooled);
    free(order);
    free(rstart);
    free(corder);
    free(cstart);
    free(colof);
    free(tmp);
    free(cells);
    return rc;
}

/* ---- the command ---- */

typedef struct {
    char what[64];       /* "kernels", "mqar", ... */
    rec_ref **rs;
    int n;
    const metric_def *m;
} tjob;

/* The default metric of a group of records. */
static const metric_def *default_metric(rec_kind k, const char *task, rec_ref **rs, int n) {
    if (k == REC_KERNEL) return metric_find("time_ms");
    if (k == REC_VERIFY) return metric_find("max_rel_err");
    static const char *order_ppl[] = {"bits_per_byte", "ppl", "nll", "accuracy"};
    static const char *order_acc[] = {"accuracy", "ppl", "bits_per_byte", "nll"};
    const char **ord = task && !strcmp(task, "ppl") ? order_ppl : order_acc;
    for (int i = 0; i < 4; i++) {
        const metric_def *m = metric_find(ord[i]);
        for (int j = 0; j < n; j++) {
            magg a;
            if (metric_value(m, rs[j], &a) == 0) return m;
        }
    }
    return metric_find(ord[0]);
}

int cmd_table(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "table", argc, argv, 2, "--help -h --no-spread") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    topts o = {0};
    const char *fmt = cli_str(&a, "--format", "md");
    const char *metric = cli_str(&a, "--metric", NULL), *task = cli_str(&a, "--task", NULL);
    const char *kind = cli_str(&a, "--kind", NULL), *out = cli_str(&a, "--out", NULL);
    o.baseline = cli_str(&a, "--baseline", NULL);
    o.rows = cli_str(&a, "--rows", NULL);
    o.cols = cli_str(&a, "--cols", NULL);
    o.nospread = cli_flag(&a, "--no-spread");
    const char *where[32];
    int nwhere = cli_all(&a, "--where", where, 32);
    int npos = cli_npos(&a);
    const char *paths[CLI_MAX];
    for (int i = 0; i < npos; i++) paths[i] = cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (!strcmp(fmt, "md")) o.fmt = TF_MD;
    else if (!strcmp(fmt, "latex")) o.fmt = TF_LATEX;
    else if (!strcmp(fmt, "csv")) o.fmt = TF_CSV;
    else {
        fprintf(stderr, "dmabench table: unknown format '%s' (use md, latex or csv)\n", fmt);
        return 2;
    }
    int kinds = REC_KERNEL | REC_TASK;
    if (kind) {
        if (!strcmp(kind, "kernel")) kinds = REC_KERNEL;
        else if (!strcmp(kind, "task")) kinds = REC_TASK;
        else if (!strcmp(kind, "verify")) kinds = REC_VERIFY;
        else {
            fprintf(stderr, "dmabench table: unknown kind '%s' (use kernel, task or verify)\n", kind);
            return 2;
        }
    }
    if (task) kinds = REC_TASK;
    if (npos == 0) {
        fprintf(stderr, "dmabench table: give at least one REPORT (see dmabench table --help)\n");
        return 2;
    }
    const metric_def *mlist[32];
    int nm = 0;
    if (metric) {
        char merr[512];
        if ((nm = metric_parse_list(metric, mlist, 32, merr, sizeof merr)) < 0) {
            fprintf(stderr, "dmabench table: %s\n", merr);
            return 2;
        }
    }

    rec_set s = {0};
    char err[1024];
    int rc = 2;
    rec_ref **sel = NULL;
    tjob jobs[64];
    int njobs = 0;
    sbuf b = {0};
    for (int i = 0; i < npos; i++)
        if (recset_load(&s, paths[i], err, sizeof err) != 0) {
            fprintf(stderr, "dmabench table: %s\n", err);
            goto done;
        }
    sel = malloc((size_t)(s.nrecs + 1) * sizeof *sel);
    if (!sel) goto oom;
    int n;
    /* verify records only when asked for, or when there is nothing else */
    int have_kt = 0;
    for (int i = 0; i < s.nrecs; i++) have_kt |= s.recs[i].kind & (REC_KERNEL | REC_TASK);
    if (!kind && !task && !have_kt) kinds = REC_VERIFY;
    rec_select q = {.kinds = kinds, .task = task, .where = where, .nwhere = nwhere};
    n = rec_select_records(&s, &q, sel, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "dmabench table: %s\n", err);
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "dmabench table: no %srecords to tabulate in %s%s\n", task ? "matching task " : "", paths[0],
                npos > 1 ? " and the others" : "");
        goto done;
    }
    /* groups: kernel records, verify records, then one per task (sorted by name) */
    rec_ref **grp = malloc((size_t)n * sizeof *grp);
    if (!grp) goto oom;
    static const rec_kind korder[] = {REC_KERNEL, REC_VERIFY, REC_TASK};
    int pos = 0;
    for (int kk = 0; kk < 3; kk++) {
        int start = pos;
        for (int i = 0; i < n; i++)
            if (sel[i]->kind == korder[kk]) grp[pos++] = sel[i];
        if (pos == start) continue;
        if (korder[kk] != REC_TASK) {
            if (njobs < 64) {
                tjob *j = &jobs[njobs++];
                snprintf(j->what, sizeof j->what, "%s", korder[kk] == REC_KERNEL ? "kernels" : "verify");
                j->rs = grp + start;
                j->n = pos - start;
                j->m = NULL;
            }
            continue;
        }
        /* split the task records by task name */
        const dim_def td = {.name = "task", .field = "task", .src = DSRC_TOP};
        const dim_def *tdp = &td;
        int *ord = malloc((size_t)(pos - start) * sizeof *ord), *st = malloc((size_t)(pos - start + 1) * sizeof *st);
        rec_ref **cp = malloc((size_t)(pos - start) * sizeof *cp);
        if (!ord || !st || !cp) {
            free(ord);
            free(st);
            free(cp);
            free(grp);
            goto oom;
        }
        memcpy(cp, grp + start, (size_t)(pos - start) * sizeof *cp);
        int ng = group_by(cp, pos - start, &tdp, 1, ord, st);
        for (int g = 0; g < ng; g++)
            for (int i = st[g]; i < st[g + 1]; i++) grp[start + i] = cp[ord[i]];
        for (int g = 0; g < ng && njobs < 64; g++) {
            tjob *j = &jobs[njobs++];
            const char *tn = rec_str(grp[start + st[g]]->rec, "task");
            snprintf(j->what, sizeof j->what, "%s", tn ? tn : "task");
            j->rs = grp + start + st[g];
            j->n = st[g + 1] - st[g];
            j->m = NULL;
        }
        free(ord);
        free(st);
        free(cp);
    }
    /* expand by metric */
    tjob exp[256];
    int nexp = 0;
    for (int j = 0; j < njobs; j++) {
        rec_kind k = jobs[j].rs[0]->kind;
        if (!nm) {
            exp[nexp] = jobs[j];
            exp[nexp++].m = default_metric(k, jobs[j].what, jobs[j].rs, jobs[j].n);
            continue;
        }
        for (int i = 0; i < nm && nexp < 256; i++)
            if (mlist[i]->kinds & k) {
                exp[nexp] = jobs[j];
                exp[nexp++].m = mlist[i];
            }
    }
    if (nexp == 0) {
        fprintf(stderr, "dmabench table: --metric %s applies to none of the selected records\n", metric);
        free(grp);
        goto done;
    }
    o.total = nexp;
    for (int j = 0; j < nexp; j++)
        if (emit_table(&b, exp[j].rs, exp[j].n, exp[j].m, &o, exp[j].what, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench table: %s\n", err);
            free(grp);
            goto done;
        }
    free(grp);
    if (sb_emit(&b, out, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench table: %s\n", err);
        rc = 1;
        goto done;
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "dmabench table: out of memory\n");
done:
    sb_free(&b);
    free(sel);
    recset_free(&s);
    return rc;
}
