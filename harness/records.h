/*
 * records.h: reading reports back for the derived views (`dmabench table`, `plot`,
 * `compare`, `export`). Nothing here measures anything: it loads report files,
 * names the dimensions a record varies along (variant, mode, N, w, seq_len, ...),
 * extracts metric values with their spread, and pools records that describe the
 * same cell (several seeds, repeated runs). docs/reports.md describes the rules.
 */
#ifndef DMABENCH_RECORDS_H
#define DMABENCH_RECORDS_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>

#include "cli.h"

/* ---- a growable string buffer ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom; /* set when an append failed; the text is then incomplete */
} sbuf;

__attribute__((format(printf, 2, 3))) void sb_printf(sbuf *b, const char *fmt, ...);
void sb_puts(sbuf *b, const char *s);
void sb_free(sbuf *b);
/* Writes the buffer to path atomically, or to stdout when path is NULL or "-".
 * Returns 0, or -1 with a reason in err. */
int sb_emit(const sbuf *b, const char *path, char *err, size_t err_len);

/* ---- records ---- */

typedef enum { REC_KERNEL = 1, REC_VERIFY = 2, REC_TASK = 4 } rec_kind;

typedef struct {
    const cJSON *rec;  /* the record (owned by its report) */
    const cJSON *prov; /* its report's provenance, or NULL */
    const char *card;  /* GPU name (cuda backend) or CPU model, "unknown" when not recorded */
    rec_kind kind;
    int file;          /* index of the report it came from */
    int ok;            /* status "ok" or no status at all */
} rec_ref;

typedef struct {
    int nfiles;
    char **paths;
    cJSON **docs;
    rec_ref *recs;
    int nrecs, cap;
} rec_set;

/* Loads a report (or a JSON Lines record stream, *.jsonl) and appends its kernel,
 * verify and task records. A report needs schema_version 1 and a records array.
 * Returns 0, or -1 with a one-line reason in err. */
int recset_load(rec_set *s, const char *path, char *err, size_t err_len);
void recset_free(rec_set *s);

const char *rec_str(const cJSON *r, const char *key);
/* The device that provenance prov names for record rec: the GPU's name when the
 * record ran on the GPU (*gpu set), else the CPU's model; NULL when prov lacks it. */
const char *rec_device(const cJSON *rec, const cJSON *prov, int *gpu);
/* Number at a dotted path ("time_ms.median"); 0 when present. */
int rec_num(const cJSON *r, const char *path, double *out);

/* ---- metrics ---- */

typedef enum { MSRC_TIME, MSRC_RATE, MSRC_FIELD, MSRC_TASK } metric_src;

typedef struct {
    const char *name;  /* as given to --metric: time_ms, gflops_dense, accuracy, ... */
    const char *title; /* words for captions and axis labels */
    const char *unit;  /* display unit ("" when none) */
    double scale;      /* display value = stored value x scale */
    int higher;        /* 1 when a bigger value is better */
    int kinds;         /* rec_kind mask of the records that carry it */
    metric_src src;
    const char *field; /* FIELD: dotted path; RATE: the numerator (flops_dense, bytes); TASK: key in metrics */
    double rate_div;   /* RATE: numerator / seconds / rate_div */
    const char *bmf;   /* Bencher measure slug */
    double bmf_scale;  /* Bencher value = stored value x bmf_scale */
    const char *bmf_unit;
    double abs_floor;  /* compare: a change smaller than this (stored units) never counts */
    int bounded;       /* the value lies in [min, max] (stored units): intervals are cut there */
    double min, max;
} metric_def;

const metric_def *metric_find(const char *name);
/* Every known metric, for --help texts: "time_ms, gflops_dense, ..." */
const char *metric_names(void);
/* Parses a comma list of metric names into out (at most max); returns the count,
 * or -1 with "unknown metric 'x' (known: ...)" in err. */
int metric_parse_list(const char *list, const metric_def **out, int max, char *err, size_t err_len);
/* The i-th metric of the registry, NULL past the end. */
const metric_def *metric_at(int i);

enum { AGG_NONE = 0, AGG_ONE, AGG_SAMPLES, AGG_MEAN };

typedef struct {
    double v, lo, hi; /* value and interval, stored units */
    int has_int;      /* lo and hi mean something */
    int sym;          /* the interval is v +- half (mean with a t interval, stderr) */
    int n;            /* records pooled */
    int how;          /* AGG_ONE: one record's own spread; AGG_SAMPLES: median (p5-p95) of the pooled
                       * timing samples; AGG_MEAN: mean with a 95% t interval over the records */
    const char *spread; /* what lo..hi is: "p5-p95", "95% CI", "" */
} magg;

/* The metric of one record; 0, or -1 when the record does not carry it (or is not ok). */
int metric_value(const metric_def *m, const rec_ref *r, magg *out);
/* The metric pooled over records that describe the same cell. 0, or -1 when none of
 * them carries it. */
int metric_pool(const metric_def *m, rec_ref *const *rs, int n, magg *out);

/* Display formatting: 3 significant digits below 1000, whole numbers from 1000 to
 * 1e6, an exponent outside 1e-3..1e6. */
void fmt_num(char *buf, size_t n, double v);

/* ---- dimensions: what a record varies along ---- */

enum { DSRC_TOP, DSRC_SHAPE, DSRC_SETTINGS, DSRC_CARD };

typedef struct {
    char name[48];  /* "variant", "N", "w", "seq_len", ... */
    char field[48]; /* the key in its source */
    int src;
    int variant_specific; /* a setting of some variants only (w, dma_*, nsa_*) */
    int hidden;           /* derived or redundant (scale, Nq): not shown unless asked for */
    int rank;             /* canonical order */
} dim_def;

#define DIM_MAX 64
typedef struct {
    dim_def d[DIM_MAX];
    int n;
} dim_list;

/* Every dimension present in the records, in canonical order. */
void dims_collect(rec_ref *const *rs, int n, dim_list *out);
const dim_def *dims_find(const dim_list *l, const char *name);
/* The record's value along d as text (and as a number when it is one: *isnum set).
 * Returns 1 when the record has it, 0 when not (buf is then ""). */
int dim_get(const dim_def *d, const rec_ref *r, char *buf, size_t len, double *num, int *isnum);
/* Orders two values of one dimension: numbers numerically, variants and modes in
 * their usual order, other text alphabetically; absent ("") first. */
int dim_cmp(const dim_def *d, const char *a, const char *b);
/* Number of distinct present values of d over the records. */
int dim_distinct(const dim_def *d, rec_ref *const *rs, int n);

/* The stable identity of a record's cell: kind, and every dimension it has (card
 * included unless ignore_card), seed excluded. Caller frees. */
char *rec_cell_key(const rec_ref *r, int ignore_card);

/* Groups records by the values of dims; order[] receives record indices sorted by
 * group (then by position), start[g] the first index of group g; returns the group
 * count (start[] has room for n+1 entries). */
int group_by(rec_ref *const *rs, int n, const dim_def *const *dims, int nd, int *order, int *start);

/* ---- command-line helpers shared by table, plot, compare and export ---- */

/* Every value of a repeatable option (--where, --header), marking them used. */
int cli_all(cli_args *a, const char *name, const char **out, int max);
/* Keeps the records that match every DIM=V1,V2 filter; returns the new count, or -1
 * with a reason (a malformed filter) in err. A record without DIM never matches. */
int rec_filter_where(rec_ref **rs, int n, const char *const *where, int nwhere, char *err, size_t err_len);
/* Which records a view takes from a loaded set. */
typedef struct {
    int kinds;                /* rec_kind mask (0: every kind) */
    const char *task;         /* non-NULL: only task records of this task */
    int ok_only;              /* 1: only records with status ok (or none) */
    const char *const *where; /* --where filters (rec_filter_where) */
    int nwhere;
} rec_select;
/* Fills out (room for s->nrecs entries) with the records of s that q selects, in
 * their order; returns the count, or -1 with a reason (a malformed --where) in
 * err. */
int rec_select_records(const rec_set *s, const rec_select *q, rec_ref **out, char *err, size_t err_len);
/* A list of the dimension names, for error messages. */
void dims_names(const dim_list *l, char *buf, size_t len);

/* Fixed colours and markers per variant, the same in every plot. */
const char *variant_color(const char *variant);
int variant_rank(const char *variant);

#endif
