/*
 * plot.c: `dmabench plot REPORT... --kind K --out FILE.svg`: SVG figures written by
 * this file (no plotting library): kernel time or TFLOP/s vs sequence length and
 * peak memory vs length (log axes), the needle-in-a-haystack depth x length
 * heatmap per variant, MQAR accuracy vs length per d_model, and perplexity vs
 * context. Every variant has the same colour and marker in every figure. The
 * output is deterministic (golden files compare it byte for byte) and written
 * atomically.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "commands.h"
#include "records.h"

enum { PK_SPEED, PK_MEMORY, PK_NIAH, PK_MQAR, PK_PPL };
static const char *const kind_names[] = {"speed", "memory", "niah", "mqar", "ppl"};

/* layout, in SVG user units (pixels) */
#define PW 400.0  /* panel width */
#define PH 300.0  /* panel height */
#define ML 66.0   /* plot area margins inside a panel */
#define MR 18.0
#define MT 30.0
#define MB 48.0
#define PAD 10.0

static void usage(void) {
    printf("usage: dmabench plot REPORT... --kind K --out FILE.svg [options]\n"
           "\n"
           "An SVG figure from report records (nothing is measured):\n"
           "  speed   kernel time (or --metric tflops_dense, ...) vs sequence length, one line\n"
           "          per variant, log axes; one panel per mode/shape\n"
           "  memory  peak memory of the operator vs sequence length, log axes\n"
           "  niah    needle accuracy by depth (rows) and context length (columns), one\n"
           "          heatmap per variant\n"
           "  mqar    MQAR accuracy vs sequence length, one panel per d_model\n"
           "  ppl     perplexity (or --metric bits_per_byte, nll) vs context length\n"
           "\n"
           "options:\n"
           "  --kind K           speed|memory|niah|mqar|ppl (required)\n"
           "  --out FILE.svg     the SVG file, written atomically (required; the name must\n"
           "                     end in .svg, or be - for stdout)\n"
           "  --metric M         speed: time_ms (default), tflops_dense, tflops_effective,\n"
           "                     gflops_dense, gflops_effective, gbps, select_ms; memory:\n"
           "                     peak_mem_bytes (default), rss_peak_bytes, tensor_bytes;\n"
           "                     ppl: ppl (default), bits_per_byte, nll\n"
           "  --where DIM=V,...  keep only records whose DIM is one of the values (repeatable)\n"
           "  --title TEXT       the figure's title\n"
           "\n"
           "Colours: mha blue, swa orange, dma vermilion, nsa green (Okabe-Ito), with a\n"
           "marker of its own per variant. Error bars: p5-p95 for times, 95%% intervals for\n"
           "task metrics. Exit 1 when --out cannot be written, 2 on bad usage or when no\n"
           "record fits the plot.\n");
}

/* ---- SVG text helpers ---- */

static void put_xml(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') sb_printf(b, "%c", *s);
        }
    }
}

static void text(sbuf *b, double x, double y, const char *anchor, const char *extra, const char *s) {
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor, extra ? " " : "",
              extra ? extra : "");
    put_xml(b, s);
    sb_puts(b, "</text>\n");
}

/* Lengths: 512, 1K, 2K, 1M. */
static void fmt_len(char *buf, size_t n, double v) {
    if (v >= 1048576 && fmod(v, 1048576) == 0) snprintf(buf, n, "%gM", v / 1048576);
    else if (v >= 1024 && fmod(v, 1024) == 0) snprintf(buf, n, "%gK", v / 1024);
    else fmt_num(buf, n, v);
}

/* Tick labels of a log10 axis: 0.01, 0.1, 1, 10, 100, 1000, 1e4. */
static void fmt_tick(char *buf, size_t n, double v) {
    double a = fabs(v);
    if (a != 0 && (a >= 1e4 || a < 1e-3)) {
        int e = (int)floor(log10(a) + 1e-9);
        double m = v / pow(10, e);
        if (fabs(m - round(m)) < 1e-6 && round(m) == 1) snprintf(buf, n, "1e%d", e);
        else snprintf(buf, n, "%.3ge%d", m, e);
    } else {
        snprintf(buf, n, "%.4g", v);
    }
}

/* ---- axes ---- */

typedef struct {
    int log;      /* 0 linear, 2 log2, 10 log10 */
    double d0, d1; /* domain, in transformed units */
    double ticks[64];
    int nticks;
    int len_labels; /* format ticks as lengths */
    double step;    /* evenly spaced ticks: their step (labels get its decimals), else 0 */
} axis;

static double tr(const axis *a, double v) {
    if (a->log == 2) return log2(v);
    if (a->log == 10) return log10(v);
    return v;
}

static void nice_linear(axis *a, double lo, double hi, int fixed) {
    a->log = 0;
    if (!fixed) {
        if (hi <= lo) {
            double c = lo;
            lo = c - (c != 0 ? fabs(c) * 0.1 : 1);
            hi = c + (c != 0 ? fabs(c) * 0.1 : 1);
        }
        double pad = (hi - lo) * 0.05;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), step;
    double f = raw / mag;
    step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    a->step = step;
    a->d0 = fixed ? lo : floor(lo / step) * step;
    a->d1 = fixed ? hi : ceil(hi / step) * step;
    a->nticks = 0;
    for (double t = a->d0; t <= a->d1 + step * 1e-6 && a->nticks < 64; t += step)
        a->ticks[a->nticks++] = fabs(t) < step * 1e-9 ? 0 : t;
}

static void nice_log(axis *a, int base, double lo, double hi) {
    a->log = base;
    double l0 = base == 2 ? log2(lo) : log10(lo), l1 = base == 2 ? log2(hi) : log10(hi);
    double pad = l1 > l0 ? (l1 - l0) * 0.06 : (base == 2 ? 1 : 0.5);
    if (base == 2 && pad < 0.25) pad = 0.25;
    a->d0 = l0 - pad;
    a->d1 = l1 + pad;
    a->nticks = 0;
    if (base == 2) {
        int k0 = (int)ceil(a->d0), k1 = (int)floor(a->d1);
        int step = (k1 - k0) > 9 ? 2 : 1;
        for (int k = k0; k <= k1 && a->nticks < 64; k += step) a->ticks[a->nticks++] = pow(2, k);
        return;
    }
    static const double mult[3][9] = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nmult[3] = {1, 3, 9};
    for (int level = 0; level < 3; level++) {
        a->nticks = 0;
        for (int e = (int)floor(a->d0) - 1; e <= (int)ceil(a->d1) && a->nticks < 64; e++)
            for (int j = 0; j < nmult[level] && a->nticks < 64; j++) {
                double t = mult[level][j] * pow(10, e), lt = log10(t);
                if (lt >= a->d0 - 1e-9 && lt <= a->d1 + 1e-9) a->ticks[a->nticks++] = t;
            }
        if (a->nticks >= 3) break;
    }
    /* a narrow range (less than a factor of 2 or so): evenly spaced round values */
    if (a->nticks < 2) {
        double lo = pow(10, a->d0), hi = pow(10, a->d1), raw = (hi - lo) / 4;
        double mag = pow(10, floor(log10(raw))), f = raw / mag;
        double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
        a->nticks = 0;
        a->step = step;
        for (double t = ceil(lo / step) * step; t <= hi && a->nticks < 64; t += step) a->ticks[a->nticks++] = t;
    }
    /* too many ticks at level 0 (many decades): keep every other one */
    if (a->nticks > 10) {
        int k = 0;
        for (int i = 0; i < a->nticks; i += 2) a->ticks[k++] = a->ticks[i];
        a->nticks = k;
    }
}

/* Maps a value to the pixel coordinate between p0 (domain start) and p1. */
static double px(const axis *a, double v, double p0, double p1) {
    return p0 + (tr(a, v) - a->d0) / (a->d1 - a->d0) * (p1 - p0);
}

static void tick_label(const axis *a, double t, char *buf, size_t n) {
    if (a->len_labels) {
        fmt_len(buf, n, t);
    } else if (a->step > 0) {
        int dec = (int)ceil(-log10(a->step) - 1e-9);
        snprintf(buf, n, "%.*f", dec > 0 ? dec : 0, t);
    } else if (a->log) {
        fmt_tick(buf, n, t);
    } else {
        snprintf(buf, n, "%.4g", t);
    }
}

/* Frame, grid lines, ticks and axis titles of one panel's plot area. */
static void draw_axes(sbuf *b, const axis *xa, const axis *ya, double x0, double y0, double x1, double y1,
                      const char *xtitle, const char *ytitle) {
    char lb[32];
    sb_puts(b, "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
    for (int i = 0; i < xa->nticks; i++) {
        double x = px(xa, xa->ticks[i], x0, x1);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x, y0, x, y1);
    }
    for (int i = 0; i < ya->nticks; i++) {
        double y = px(ya, ya->ticks[i], y1, y0);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x0, y, x1, y);
    }
    sb_puts(b, "</g>\n");
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0,
              y0, x1 - x0, y1 - y0);
    sb_puts(b, "<g font-size=\"11\" fill=\"#222\">\n");
    for (int i = 0; i < xa->nticks; i++) {
        double x = px(xa, xa->ticks[i], x0, x1);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x, y1, x, y1 + 4);
        tick_label(xa, xa->ticks[i], lb, sizeof lb);
        text(b, x, y1 + 16, "middle", NULL, lb);
    }
    for (int i = 0; i < ya->nticks; i++) {
        double y = px(ya, ya->ticks[i], y1, y0);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x0 - 4, y, x0, y);
        tick_label(ya, ya->ticks[i], lb, sizeof lb);
        text(b, x0 - 7, y + 4, "end", NULL, lb);
    }
    sb_puts(b, "</g>\n");
    text(b, (x0 + x1) / 2, y1 + 36, "middle", "font-size=\"12\"", xtitle);
    char tf[96];
    double cy = (y0 + y1) / 2;
    snprintf(tf, sizeof tf, "font-size=\"12\" transform=\"rotate(-90 %.1f %.1f)\"", x0 - 50, cy);
    text(b, x0 - 50, cy, "middle", tf, ytitle);
}

/* ---- markers: one shape per variant ---- */

static void marker(sbuf *b, const char *variant, const char *color, double x, double y) {
    int r = variant_rank(variant);
    switch (r) {
    case 1: /* swa: square */
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"/>\n", x - 3.5, y - 3.5, color);
        break;
    case 2: /* dma: triangle */
        sb_printf(b, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\"/>\n", x, y - 4.5, x + 4.5, y + 3.5,
                  x - 4.5, y + 3.5, color);
        break;
    case 3: /* nsa: diamond */
        sb_printf(b, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\"/>\n", x, y - 4.5, x + 4.5, y,
                  x, y + 4.5, x - 4.5, y, color);
        break;
    default: /* mha and others: circle */
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", x, y, color);
    }
}

static const char *dash_of(int k) {
    static const char *d[] = {"", "6 3", "2 2", "8 3 2 3"};
    return d[k % 4];
}

/* ---- data model of a figure ---- */

typedef struct {
    double x, v, lo, hi;
    int has_int;
} ppoint;

typedef struct {
    char label[160];
    char variant[32];
    int dash;
    ppoint *p;
    int np;
} pseries;

typedef struct {
    char title[256];
    rec_ref **rs;
    int n;
    pseries *s;
    int ns;
    double train; /* training length (NAN when unknown) */
    double ref;   /* a reference level (unigram), NAN when none */
} ppanel;

typedef struct {
    int kind;
    const metric_def *m;
    const char *xdim, *ydim; /* ydim: heatmap rows */
    const char *title;
    dim_list L;
    const dim_def *pd[DIM_MAX], *sd[DIM_MAX];
    int npd, nsd;
    ppanel *panels;
    int np;
    sbuf fixed;
} figure;

static void label_of(const dim_def *const *dims, int nd, const rec_ref *r, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = 0;
    for (int k = 0; k < nd && off < len; k++) {
        char v[128];
        int isnum = 0;
        if (!dim_get(dims[k], r, v, sizeof v, NULL, &isnum) || !v[0]) continue;
        int named = isnum || !strcmp(dims[k]->name, "card");
        off += (size_t)snprintf(buf + off, len - off, "%s%s%s%s", off ? ", " : "", named ? dims[k]->name : "",
                                named ? "=" : "", v);
    }
}

static double find_train(rec_ref *const *rs, int n) {
    static const char *names[] = {"train_len", "train_context_len", "train_seq_len", "train_context"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char path[64];
        snprintf(path, sizeof path, "settings.%s", names[k]);
        for (int i = 0; i < n; i++) {
            double v;
            if (rec_num(rs[i]->rec, path, &v) == 0 || rec_num(rs[i]->rec, names[k], &v) == 0) return v;
        }
    }
    return NAN;
}

static double find_unigram(const metric_def *m, rec_ref *const *rs, int n) {
    for (int i = 0; i < n; i++) {
        double u;
        if (rec_num(rs[i]->rec, "metrics.unigram_bits_per_byte", &u) == 0 ||
            rec_num(rs[i]->rec, "unigram_bits_per_byte", &u) == 0) {
            if (!strcmp(m->name, "bits_per_byte")) return u;
            if (!strcmp(m->name, "ppl")) return pow(2, u);
            if (!strcmp(m->name, "nll")) return u * log(2.0);
            return NAN;
        }
    }
    return NAN;
}

static void figure_free(figure *f) {
    for (int p = 0; p < f->np; p++) {
        for (int s = 0; s < f->panels[p].ns; s++) free(f->panels[p].s[s].p);
        free(f->panels[p].s);
        free(f->panels[p].rs);
    }
    free(f->panels);
    sb_free(&f->fixed);
}

/* Whether d takes one value per value of x (it is set from the length). */
static int follows_x(const dim_def *d, const dim_def *x, rec_ref **rs, int n) {
    int *ord = malloc((size_t)n * sizeof *ord), *st = malloc((size_t)(n + 1) * sizeof *st);
    int ng = ord && st ? group_by(rs, n, &x, 1, ord, st) : -1, ok = ng > 0;
    rec_ref **tmp = ok ? malloc((size_t)n * sizeof *tmp) : NULL;
    ok = ok && tmp;
    for (int g = 0; g < ng && ok; g++) {
        int k = 0;
        for (int i = st[g]; i < st[g + 1]; i++) tmp[k++] = rs[ord[i]];
        ok = dim_distinct(d, tmp, k) <= 1;
    }
    free(ord);
    free(st);
    free(tmp);
    return ok;
}

/* Splits the records into panels and series of points. -1 on out of memory. */
static int build(figure *f, rec_ref **rs, int n) {
    dims_collect(rs, n, &f->L);
    const dim_def *xd = dims_find(&f->L, f->xdim), *yd = f->ydim ? dims_find(&f->L, f->ydim) : NULL;
    const dim_def *vd = dims_find(&f->L, "variant");
    if (vd) f->sd[f->nsd++] = vd;
    sbuf follows = {0};
    for (int i = 0; i < f->L.n; i++) {
        const dim_def *d = &f->L.d[i];
        if (d == xd || d == yd || d == vd || d->hidden || !strcmp(d->name, "task")) continue;
        int k = dim_distinct(d, rs, n);
        if (k >= 2 && xd && follows_x(d, xd, rs, n)) {
            /* set along with the length (num_kv_pairs = seq_len / 16, say): not a panel of its own */
            sb_printf(&follows, "%s%s", follows.len ? ", " : "", d->name);
        } else if (k >= 2) {
            if (d->variant_specific && f->kind != PK_NIAH) f->sd[f->nsd++] = d;
            else f->pd[f->npd++] = d;
        } else if (k == 1 && strncmp(d->name, "train_", 6) != 0) {
            char v[128];
            for (int j = 0; j < n; j++)
                if (dim_get(d, rs[j], v, sizeof v, NULL, NULL)) break;
            sb_printf(&f->fixed, "%s%s=%s", f->fixed.len ? ", " : "", d->name, v);
        }
    }
    if (follows.len) sb_printf(&f->fixed, "%s%s follows %s", f->fixed.len ? "; " : "", follows.s, f->xdim);
    sb_free(&follows);
    /* the heatmap has one panel per variant */
    if (f->kind == PK_NIAH) {
        memmove(f->pd + f->nsd, f->pd, (size_t)f->npd * sizeof *f->pd);
        for (int i = 0; i < f->nsd; i++) f->pd[i] = f->sd[i];
        f->npd += f->nsd;
        f->nsd = 0;
    }
    int *ord = malloc((size_t)n * sizeof *ord), *st = malloc((size_t)(n + 1) * sizeof *st);
    if (!ord || !st) goto oom;
    int ng = group_by(rs, n, f->pd, f->npd, ord, st);
    if (ng < 0) goto oom;
    f->panels = calloc((size_t)ng, sizeof *f->panels);
    if (!f->panels) goto oom;
    f->np = ng;
    for (int g = 0; g < ng; g++) {
        ppanel *P = &f->panels[g];
        P->n = st[g + 1] - st[g];
        P->rs = malloc((size_t)P->n * sizeof *P->rs);
        if (!P->rs) goto oom;
        for (int i = 0; i < P->n; i++) P->rs[i] = rs[ord[st[g] + i]];
        label_of(f->pd, f->npd, P->rs[0], P->title, sizeof P->title);
        P->train = find_train(P->rs, P->n);
        P->ref = f->kind == PK_PPL ? find_unigram(f->m, P->rs, P->n) : NAN;
        if (f->kind == PK_NIAH) continue;
        /* series, then points along x */
        int *so = malloc((size_t)P->n * sizeof *so), *ss = malloc((size_t)(P->n + 1) * sizeof *ss);
        int *xo = malloc((size_t)P->n * sizeof *xo), *xs = malloc((size_t)(P->n + 1) * sizeof *xs);
        rec_ref **sr = malloc((size_t)P->n * sizeof *sr);
        int nser = so && ss && xo && xs && sr ? group_by(P->rs, P->n, f->sd, f->nsd, so, ss) : -1;
        if (nser >= 0) P->s = calloc((size_t)(nser ? nser : 1), sizeof *P->s);
        if (nser < 0 || !P->s) {
            free(so), free(ss), free(xo), free(xs), free(sr);
            goto oom;
        }
        P->ns = nser;
        for (int s = 0; s < nser; s++) {
            pseries *S = &P->s[s];
            int k = ss[s + 1] - ss[s];
            for (int i = 0; i < k; i++) sr[i] = P->rs[so[ss[s] + i]];
            label_of(f->sd, f->nsd, sr[0], S->label, sizeof S->label);
            if (vd) dim_get(vd, sr[0], S->variant, sizeof S->variant, NULL, NULL);
            if (!S->label[0]) snprintf(S->label, sizeof S->label, "%s", f->m->name);
            int nx = group_by(sr, k, &xd, 1, xo, xs);
            S->p = calloc((size_t)(nx > 0 ? nx : 1), sizeof *S->p);
            if (nx < 0 || !S->p) {
                free(so), free(ss), free(xo), free(xs), free(sr);
                goto oom;
            }
            for (int x = 0; x < nx; x++) {
                rec_ref *tmp[4096];
                int kk = 0;
                for (int i = xs[x]; i < xs[x + 1] && kk < 4096; i++) tmp[kk++] = sr[xo[i]];
                double xv;
                int isnum = 0;
                char vb[64];
                magg a;
                if (!dim_get(xd, tmp[0], vb, sizeof vb, &xv, &isnum) || !isnum || !(xv > 0)) continue;
                if (metric_pool(f->m, tmp, kk, &a) != 0) continue;
                ppoint *pt = &S->p[S->np++];
                pt->x = xv;
                pt->v = a.v * f->m->scale;
                pt->lo = a.lo * f->m->scale;
                pt->hi = a.hi * f->m->scale;
                pt->has_int = a.has_int;
            }
        }
        /* a second or third series of one variant gets a dash pattern */
        for (int s = 0; s < nser; s++) {
            int k = 0;
            for (int t = 0; t < s; t++) k += !strcmp(P->s[t].variant, P->s[s].variant);
            P->s[s].dash = k;
        }
        free(so), free(ss), free(xo), free(xs), free(sr);
    }
    free(ord);
    free(st);
    return 0;
oom:
    free(ord);
    free(st);
    return -1;
}

/* Panels per row: 2 x 2 for four, otherwise up to three. */
static int grid_cols(int np) { return np <= 3 ? np : np == 4 ? 2 : 3; }
/* A lone panel is wider, so that the header fits. */
static double panel_w(int np) { return np == 1 ? 560.0 : PW; }

/* ---- line plots ---- */

typedef struct {
    char label[160];
    char variant[32];
    int dash;
} legend_entry;

static int legend_collect(const figure *f, legend_entry *e, int max) {
    int n = 0;
    for (int p = 0; p < f->np; p++)
        for (int s = 0; s < f->panels[p].ns; s++) {
            const pseries *S = &f->panels[p].s[s];
            if (!S->np) continue;
            int found = 0;
            for (int i = 0; i < n && !found; i++) found = !strcmp(e[i].label, S->label);
            if (found || n >= max) continue;
            snprintf(e[n].label, sizeof e[n].label, "%s", S->label);
            snprintf(e[n].variant, sizeof e[n].variant, "%s", S->variant);
            e[n].dash = S->dash;
            n++;
        }
    /* legend order: variants in their usual order, then as the series came (sorted
     * along their settings: w=64 before w=128) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            int ra = variant_rank(e[j - 1].variant), rb = variant_rank(e[j].variant);
            if (ra < rb || (ra == rb && (ra < 100 || strcmp(e[j - 1].variant, e[j].variant) <= 0))) break;
            legend_entry t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    return n;
}

/* Word-wraps the subtitle at ", " to lines of at most width pixels. */
static int wrap_lines(const char *s, double width, char lines[][512], int max) {
    int maxc = (int)(width / 6.0), n = 0;
    if (maxc < 20) maxc = 20;
    const char *p = s;
    while (*p && n < max) {
        size_t len = strlen(p);
        if ((int)len <= maxc) {
            snprintf(lines[n++], 512, "%s", p);
            break;
        }
        int cut = -1;
        for (int i = 0; i + 1 < (int)len && i <= maxc; i++)
            if (p[i] == ',' && p[i + 1] == ' ') cut = i + 1;
        if (cut < 0) cut = maxc;
        snprintf(lines[n++], 512, "%.*s", cut > 511 ? 511 : cut, p);
        p += cut;
        while (*p == ' ') p++;
    }
    return n;
}

/* The header: title, subtitle (what is fixed), legend. Returns its height. */
static double header(sbuf *b, const figure *f, double W, const legend_entry *le, int nle, int draw) {
    double y = 26;
    if (draw) text(b, W / 2, y, "middle", "font-size=\"16\" font-weight=\"bold\"", f->title);
    char lines[6][512];
    int nl = f->fixed.len ? wrap_lines(f->fixed.s, W - 2 * PAD, lines, 6) : 0;
    for (int i = 0; i < nl; i++) {
        y += 16;
        if (draw) text(b, W / 2, y, "middle", "font-size=\"11\" fill=\"#555\"", lines[i]);
    }
    if (nle) {
        /* entries flow left to right, wrapping */
        double x = PAD, rowy = y + 22;
        if (draw) sb_puts(b, "<g font-size=\"12\">\n");
        for (int i = 0; i < nle; i++) {
            double w = 40 + 7.0 * (double)strlen(le[i].label) + 18;
            if (x + w > W - PAD && x > PAD) {
                x = PAD;
                rowy += 20;
            }
            if (draw) {
                const char *c = variant_color(le[i].variant);
                const char *d = dash_of(le[i].dash);
                sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s%s%s/>\n",
                          x, rowy - 4, x + 30, rowy - 4, c, d[0] ? " stroke-dasharray=\"" : "", d, d[0] ? "\"" : "");
                marker(b, le[i].variant, c, x + 15, rowy - 4);
                text(b, x + 36, rowy, "start", NULL, le[i].label);
            }
            x += w;
        }
        if (draw) sb_puts(b, "</g>\n");
        y = rowy;
    }
    return y + 12;
}

static const char *xtitle_of(const figure *f) {
    if (!strcmp(f->xdim, "N")) return "sequence length N (keys)";
    if (!strcmp(f->xdim, "seq_len")) return "sequence length";
    if (!strcmp(f->xdim, "context")) return "context length (bytes)";
    if (!strcmp(f->xdim, "context_len")) return "context length";
    return f->xdim;
}

static void ytitle_of(const figure *f, char *buf, size_t n) {
    if (f->m->unit[0]) snprintf(buf, n, "%s (%s)", f->m->title, f->m->unit);
    else snprintf(buf, n, "%s", f->m->title);
}

static int render_lines(sbuf *b, figure *f, char *err, size_t elen) {
    legend_entry le[64];
    int nle = legend_collect(f, le, 64);
    if (!nle) {
        snprintf(err, elen, "no record has both %s and %s", f->xdim, f->m->name);
        return -1;
    }
    int cols = grid_cols(f->np), rows = (f->np + cols - 1) / cols;
    double pw = panel_w(f->np);
    double W = cols * pw + 2 * PAD;
    double H0 = header(b, f, W, le, nle, 0);
    double H = H0 + rows * PH + PAD;
    sb_printf(b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<title>",
              W, H, W, H);
    put_xml(b, f->title);
    sb_printf(b, "</title>\n<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    header(b, f, W, le, nle, 1);
    char ytitle[128];
    ytitle_of(f, ytitle, sizeof ytitle);
    int ylog = f->kind == PK_SPEED || f->kind == PK_MEMORY;
    for (int p = 0; p < f->np; p++) {
        ppanel *P = &f->panels[p];
        double ox = PAD + (p % cols) * pw, oy = H0 + (p / cols) * PH;
        double x0 = ox + ML, x1 = ox + pw - MR, y0 = oy + MT, y1 = oy + PH - MB;
        /* data ranges */
        double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
        int npts = 0, nonpos = 0;
        for (int s = 0; s < P->ns; s++)
            for (int i = 0; i < P->s[s].np; i++) {
                const ppoint *q = &P->s[s].p[i];
                xmin = fmin(xmin, q->x), xmax = fmax(xmax, q->x);
                double lo = q->has_int ? fmin(q->lo, q->v) : q->v, hi = q->has_int ? fmax(q->hi, q->v) : q->v;
                ymin = fmin(ymin, lo), ymax = fmax(ymax, hi);
                nonpos += q->v <= 0 || lo <= 0;
                npts++;
            }
        /* the reference level joins the range unless it would squash the data */
        int ref_off = 0;
        if (isfinite(P->ref) && npts) {
            double span = fmax(ymax - ymin, fabs(ymax) * 0.05);
            if (P->ref > ymax + 2 * span || P->ref < ymin - 2 * span) ref_off = P->ref > ymax ? 1 : -1;
            else ymin = fmin(ymin, P->ref), ymax = fmax(ymax, P->ref);
        }
        if (isfinite(P->train) && P->train > 0) xmin = fmin(xmin, P->train), xmax = fmax(xmax, P->train);
        if (P->title[0]) text(b, (x0 + x1) / 2, oy + 18, "middle", "font-size=\"13\" font-weight=\"bold\"", P->title);
        if (!npts) {
            text(b, (x0 + x1) / 2, (y0 + y1) / 2, "middle", "font-size=\"12\" fill=\"#777\"", "no data");
            continue;
        }
        axis xa = {0}, ya = {0};
        nice_log(&xa, 2, xmin, xmax);
        xa.len_labels = 1;
        if (f->kind == PK_MQAR) nice_linear(&ya, 0, 100, 1);
        else if (ylog && !nonpos) nice_log(&ya, 10, ymin, ymax);
        else nice_linear(&ya, ymin, ymax, 0);
        draw_axes(b, &xa, &ya, x0, y0, x1, y1, xtitle_of(f), ytitle);
        if (ref_off) {
            char rv[32], rt[64];
            fmt_num(rv, sizeof rv, P->ref);
            snprintf(rt, sizeof rt, "unigram: %s (%s)", rv, ref_off > 0 ? "above" : "below");
            text(b, x1 - 4, ref_off > 0 ? y0 + 12 : y1 - 6, "end", "font-size=\"10\" fill=\"#555\"", rt);
        } else if (isfinite(P->ref) && (ya.log == 0 || P->ref > 0)) {
            double y = px(&ya, P->ref, y1, y0);
            sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777\" stroke-dasharray=\"4 3\"/>\n",
                      x0, y, x1, y);
            text(b, x1 - 4, y - 4, "end", "font-size=\"10\" fill=\"#555\"", "unigram");
        }
        if (isfinite(P->train) && P->train > 0) {
            double x = px(&xa, P->train, x0, x1);
            sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777\" stroke-dasharray=\"4 3\"/>\n",
                      x, y0, x, y1);
            text(b, x + 3, y0 + 12, "start", "font-size=\"10\" fill=\"#555\"", "train");
        }
        for (int s = 0; s < P->ns; s++) {
            const pseries *S = &P->s[s];
            if (!S->np) continue;
            const char *c = variant_color(S->variant), *d = dash_of(S->dash);
            sb_printf(b, "<g>\n<title>");
            put_xml(b, S->label);
            sb_puts(b, "</title>\n");
            for (int i = 0; i < S->np; i++) {
                const ppoint *q = &S->p[i];
                if (!q->has_int || q->hi <= q->lo || (ya.log && q->lo <= 0)) continue;
                double x = px(&xa, q->x, x0, x1), ya0 = px(&ya, q->lo, y1, y0), ya1 = px(&ya, q->hi, y1, y0);
                sb_printf(b,
                          "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"%s\" stroke-width=\"1\" "
                          "fill=\"none\"/>\n",
                          x, ya0, ya1, x - 3, ya0, x + 3, x - 3, ya1, x + 3, c);
            }
            sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"", c,
                      d[0] ? " stroke-dasharray=\"" : "", d, d[0] ? "\"" : "");
            for (int i = 0; i < S->np; i++)
                sb_printf(b, "%s%.1f,%.1f", i ? " " : "", px(&xa, S->p[i].x, x0, x1), px(&ya, S->p[i].v, y1, y0));
            sb_puts(b, "\"/>\n");
            for (int i = 0; i < S->np; i++)
                marker(b, S->variant, c, px(&xa, S->p[i].x, x0, x1), px(&ya, S->p[i].v, y1, y0));
            sb_puts(b, "</g>\n");
        }
    }
    sb_puts(b, "</svg>\n");
    return 0;
}

/* ---- the needle heatmap ---- */

/* viridis, 0..1 */
static void viridis(double t, char *buf, size_t n) {
    static const double c[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double pos = t * 4;
    int i = (int)floor(pos);
    if (i >= 4) i = 3;
    double u = pos - i;
    int r = (int)lround(c[i][0] + u * (c[i + 1][0] - c[i][0]));
    int g = (int)lround(c[i][1] + u * (c[i + 1][1] - c[i][1]));
    int bl = (int)lround(c[i][2] + u * (c[i + 1][2] - c[i][2]));
    snprintf(buf, n, "#%02x%02x%02x", r, g, bl);
}

typedef struct {
    double v[256];
    char lab[256][32];
    int n;
} catlist;

static int cat_index(const catlist *c, double v) {
    for (int i = 0; i < c->n; i++)
        if (c->v[i] == v) return i;
    return -1;
}

static void cat_add(catlist *c, double v) {
    if (cat_index(c, v) >= 0 || c->n >= 256) return;
    int i = c->n++;
    while (i > 0 && c->v[i - 1] > v) {
        c->v[i] = c->v[i - 1];
        i--;
    }
    c->v[i] = v;
}

static int render_heatmap(sbuf *b, figure *f, char *err, size_t elen) {
    const dim_def *xd = dims_find(&f->L, f->xdim), *yd = dims_find(&f->L, f->ydim);
    if (!xd || !yd) {
        snprintf(err, elen, "the niah records lack %s", !xd ? f->xdim : f->ydim);
        return -1;
    }
    /* the categories shared by every panel */
    catlist xs = {0}, ys = {0};
    double ymaxv = 0;
    for (int p = 0; p < f->np; p++)
        for (int i = 0; i < f->panels[p].n; i++) {
            double xv, yv;
            int xn = 0, yn = 0;
            char t[64];
            if (dim_get(xd, f->panels[p].rs[i], t, sizeof t, &xv, &xn) && xn) cat_add(&xs, xv);
            if (dim_get(yd, f->panels[p].rs[i], t, sizeof t, &yv, &yn) && yn) {
                cat_add(&ys, yv);
                ymaxv = fmax(ymaxv, yv);
            }
        }
    if (!xs.n || !ys.n) {
        snprintf(err, elen, "no niah record has a numeric %s and %s", f->xdim, f->ydim);
        return -1;
    }
    double yscale = ymaxv <= 1 ? 100 : 1; /* depth as a fraction or in percent */
    for (int i = 0; i < xs.n; i++) fmt_len(xs.lab[i], sizeof xs.lab[i], xs.v[i]);
    for (int i = 0; i < ys.n; i++) snprintf(ys.lab[i], sizeof ys.lab[i], "%g%%", ys.v[i] * yscale);

    int cols = grid_cols(f->np), rows = (f->np + cols - 1) / cols;
    double pw = panel_w(f->np);
    double W = cols * pw + 2 * PAD;
    double H0 = header(b, f, W, NULL, 0, 0) + 28; /* + the colour bar */
    double H = H0 + rows * PH + PAD;
    sb_printf(b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<title>",
              W, H, W, H);
    put_xml(b, f->title);
    sb_printf(b, "</title>\n<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    double hy = header(b, f, W, NULL, 0, 1);
    /* colour bar */
    sb_puts(b, "<defs><linearGradient id=\"viridis\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">\n");
    for (int i = 0; i <= 4; i++) {
        char c[16];
        viridis(i / 4.0, c, sizeof c);
        sb_printf(b, "<stop offset=\"%d%%\" stop-color=\"%s\"/>\n", i * 25, c);
    }
    sb_puts(b, "</linearGradient></defs>\n");
    double bw = 200, bx = W / 2 - bw / 2, by = hy - 4;
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"10\" fill=\"url(#viridis)\" stroke=\"#444\"/>\n",
              bx, by, bw);
    text(b, bx - 6, by + 9, "end", "font-size=\"11\"", "accuracy 0%");
    text(b, bx + bw + 6, by + 9, "start", "font-size=\"11\"", "100%");

    for (int p = 0; p < f->np; p++) {
        ppanel *P = &f->panels[p];
        double ox = PAD + (p % cols) * pw, oy = H0 + (p / cols) * PH;
        double x0 = ox + ML, x1 = ox + pw - MR, y0 = oy + MT, y1 = oy + PH - MB;
        double cw = (x1 - x0) / xs.n, ch = (y1 - y0) / ys.n;
        /* panel title with the variant's colour */
        char vname[32] = "";
        const dim_def *vd = dims_find(&f->L, "variant");
        if (vd) dim_get(vd, P->rs[0], vname, sizeof vname, NULL, NULL);
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x0, oy + 9,
                  variant_color(vname));
        text(b, x0 + 15, oy + 18, "start", "font-size=\"13\" font-weight=\"bold\"", P->title[0] ? P->title : vname);
        /* cells */
        int *ord = malloc((size_t)P->n * sizeof *ord), *st = malloc((size_t)(P->n + 1) * sizeof *st);
        const dim_def *xy[2] = {xd, yd};
        int ng = ord && st ? group_by(P->rs, P->n, xy, 2, ord, st) : -1;
        if (ng < 0) {
            free(ord);
            free(st);
            snprintf(err, elen, "out of memory");
            return -1;
        }
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f2f2f2\"/>\n", x0, y0,
                  x1 - x0, y1 - y0);
        sb_puts(b, "<g font-size=\"10\" text-anchor=\"middle\">\n");
        for (int g = 0; g < ng; g++) {
            rec_ref *tmp[4096];
            int k = 0;
            for (int i = st[g]; i < st[g + 1] && k < 4096; i++) tmp[k++] = P->rs[ord[i]];
            double xv, yv;
            int xn = 0, yn = 0;
            char t[64];
            if (!dim_get(xd, tmp[0], t, sizeof t, &xv, &xn) || !xn || !dim_get(yd, tmp[0], t, sizeof t, &yv, &yn) ||
                !yn)
                continue;
            magg a;
            if (metric_pool(f->m, tmp, k, &a) != 0) continue;
            int ci = cat_index(&xs, xv), ri = cat_index(&ys, yv);
            char col[16];
            viridis(a.v, col, sizeof col);
            double cx = x0 + ci * cw, cy = y0 + ri * ch;
            sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"#ffffff\" "
                         "stroke-width=\"0.5\"><title>",
                      cx, cy, cw, ch, col);
            char tt[160], vv[32];
            fmt_num(vv, sizeof vv, a.v * 100);
            snprintf(tt, sizeof tt, "%s=%s, %s=%s: %s%%", f->xdim, xs.lab[ci], f->ydim, ys.lab[ri], vv);
            put_xml(b, tt);
            sb_puts(b, "</title></rect>\n");
            if (cw >= 22 && ch >= 11) {
                char pc[16];
                snprintf(pc, sizeof pc, "%.0f", a.v * 100);
                double lum = a.v < 0.55 ? 0 : 1; /* viridis is dark below about 55% */
                sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n", cx + cw / 2, cy + ch / 2 + 3.5,
                          lum ? "#000000" : "#ffffff", pc);
            }
        }
        sb_puts(b, "</g>\n");
        free(ord);
        free(st);
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
                  x0, y0, x1 - x0, y1 - y0);
        /* axes: every column and row labelled (every other one when crowded) */
        sb_puts(b, "<g font-size=\"11\" fill=\"#222\">\n");
        int xstep = xs.n > 12 ? 2 : 1, ystep = ch < 11 ? (int)ceil(11 / ch) : 1;
        for (int i = 0; i < xs.n; i += xstep) text(b, x0 + (i + 0.5) * cw, y1 + 16, "middle", NULL, xs.lab[i]);
        for (int i = 0; i < ys.n; i += ystep) text(b, x0 - 6, y0 + (i + 0.5) * ch + 4, "end", NULL, ys.lab[i]);
        sb_puts(b, "</g>\n");
        text(b, (x0 + x1) / 2, y1 + 36, "middle", "font-size=\"12\"", xtitle_of(f));
        char tf[96];
        double cy = (y0 + y1) / 2;
        snprintf(tf, sizeof tf, "font-size=\"12\" transform=\"rotate(-90 %.1f %.1f)\"", x0 - 50, cy);
        text(b, x0 - 50, cy, "middle", tf, "needle depth");
        /* the training length: a line after the last column within it */
        if (isfinite(P->train)) {
            int last = -1;
            for (int i = 0; i < xs.n; i++)
                if (xs.v[i] <= P->train) last = i;
            if (last >= 0 && last < xs.n - 1) {
                double x = x0 + (last + 1) * cw;
                sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ffffff\" "
                             "stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\n",
                          x, y0, x, y1);
                text(b, x + 3, y0 - 4, "start", "font-size=\"10\" fill=\"#555\"", "train");
            }
        }
    }
    sb_puts(b, "</svg>\n");
    return 0;
}

/* ---- the command ---- */

int cmd_plot(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "plot", argc, argv, 2, "--help -h") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    const char *kind = cli_str(&a, "--kind", NULL), *out = cli_str(&a, "--out", NULL);
    const char *metric = cli_str(&a, "--metric", NULL), *title = cli_str(&a, "--title", NULL);
    const char *where[32];
    int nwhere = cli_all(&a, "--where", where, 32);
    int npos = cli_npos(&a);
    const char *paths[CLI_MAX];
    for (int i = 0; i < npos; i++) paths[i] = cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (!kind) {
        fprintf(stderr, "dmabench plot: --kind is required (speed, memory, niah, mqar, ppl)\n");
        return 2;
    }
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(kind, kind_names[i])) k = i;
    if (k < 0) {
        fprintf(stderr, "dmabench plot: unknown kind '%s' (use speed, memory, niah, mqar or ppl)\n", kind);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "dmabench plot: --out FILE.svg is required\n");
        return 2;
    }
    size_t ol = strlen(out);
    if (strcmp(out, "-") && (ol < 5 || strcasecmp(out + ol - 4, ".svg"))) {
        fprintf(stderr, "dmabench plot: plot writes SVG; use an .svg name for --out (got '%s')\n", out);
        return 2;
    }
    if (npos == 0) {
        fprintf(stderr, "dmabench plot: give at least one REPORT (see dmabench plot --help)\n");
        return 2;
    }
    static const char *defm[] = {"time_ms", "peak_mem_bytes", "accuracy", "accuracy", "ppl"};
    static const char *allowed[] = {"time_ms tflops_dense tflops_effective gflops_dense gflops_effective gbps select_ms",
                                    "peak_mem_bytes rss_peak_bytes tensor_bytes", "accuracy", "accuracy",
                                    "ppl bits_per_byte nll"};
    const char *mn = metric ? metric : defm[k];
    const metric_def *m = metric_find(mn);
    char pat[64];
    snprintf(pat, sizeof pat, " %s ", mn);
    char al[128];
    snprintf(al, sizeof al, " %s ", allowed[k]);
    if (!m || !strstr(al, pat)) {
        fprintf(stderr, "dmabench plot: --metric %s does not fit --kind %s (use one of: %s)\n", mn, kind, allowed[k]);
        return 2;
    }
    rec_set s = {0};
    char err[1024];
    int rc = 2;
    rec_ref **sel = NULL;
    figure f;
    memset(&f, 0, sizeof f);
    sbuf b = {0};
    for (int i = 0; i < npos; i++)
        if (recset_load(&s, paths[i], err, sizeof err) != 0) {
            fprintf(stderr, "dmabench plot: %s\n", err);
            goto done;
        }
    sel = malloc((size_t)(s.nrecs + 1) * sizeof *sel);
    if (!sel) {
        fprintf(stderr, "dmabench plot: out of memory\n");
        goto done;
    }
    static const char *task_of[] = {NULL, NULL, "niah", "mqar", "ppl"};
    rec_select q = {.kinds = k <= PK_MEMORY ? REC_KERNEL : REC_TASK, .task = task_of[k], .ok_only = 1,
                    .where = where, .nwhere = nwhere};
    int n = rec_select_records(&s, &q, sel, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "dmabench plot: %s\n", err);
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "dmabench plot: no %s records with status ok in %s%s\n", k <= PK_MEMORY ? "kernel" : task_of[k],
                paths[0], npos > 1 ? " and the others" : "");
        goto done;
    }
    f.kind = k;
    f.m = m;
    static const char *xdims[] = {"N", "N", "context_len", "seq_len", "context"};
    static const char *titles[] = {"Kernel time vs sequence length", "Peak memory vs sequence length",
                                   "Needle in a haystack: accuracy by depth and context length",
                                   "MQAR accuracy vs sequence length", "Perplexity vs context length"};
    f.xdim = xdims[k];
    f.ydim = k == PK_NIAH ? "depth" : NULL;
    char tbuf[160];
    if (k == PK_SPEED && strcmp(mn, "time_ms") != 0) {
        snprintf(tbuf, sizeof tbuf, "Kernel %s vs sequence length", m->title);
        f.title = title ? title : tbuf;
    } else if (k == PK_PPL && strcmp(mn, "ppl") != 0) {
        snprintf(tbuf, sizeof tbuf, "%c%s vs context length", m->title[0] >= 'a' ? m->title[0] - 32 : m->title[0],
                 m->title + 1);
        f.title = title ? title : tbuf;
    } else {
        f.title = title ? title : titles[k];
    }
    if (build(&f, sel, n) != 0) {
        fprintf(stderr, "dmabench plot: out of memory\n");
        goto done;
    }
    {
        dim_list L;
        dims_collect(sel, n, &L);
        if (!dims_find(&L, f.xdim)) {
            fprintf(stderr, "dmabench plot: the %s records have no %s to plot along\n",
                    k <= PK_MEMORY ? "kernel" : task_of[k], f.xdim);
            goto done;
        }
    }
    int r = k == PK_NIAH ? render_heatmap(&b, &f, err, sizeof err) : render_lines(&b, &f, err, sizeof err);
    if (r != 0) {
        fprintf(stderr, "dmabench plot: %s\n", err);
        goto done;
    }
    if (sb_emit(&b, out, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench plot: %s\n", err);
        rc = 1;
        goto done;
    }
    fprintf(stderr, "plot: %s\n", out);
    rc = 0;
done:
    figure_free(&f);
    sb_free(&b);
    free(sel);
    recset_free(&s);
    return rc;
}
