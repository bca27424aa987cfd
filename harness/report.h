/*
 * report.h: JSON master records and report files (docs/report-schema.md).
 * A report is {"schema_version", "provenance", "records": [...]}; files are
 * written atomically (temp file in the same folder, then rename).
 */
#ifndef DMABENCH_REPORT_H
#define DMABENCH_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "attn.h"

#define REPORT_SCHEMA_VERSION 1

/* The provenance block: build (commit, dirty, compiler, flags), machine (CPU, threads,
 * CUDA runtime/driver, GPU name and clocks when built with CUDA and a GPU is present),
 * run (seed, UTC time, command line). */
cJSON *report_provenance(int argc, char **argv, uint64_t seed);
/* The device this process runs backend on, as the tables name it: the GPU's name
 * for "cuda" (when one is usable), else the CPU's model. */
void report_card(const char *backend, char *out, size_t n);

/* A new report object holding prov (ownership taken) and an empty records array. */
cJSON *report_new(cJSON *prov);
/* Appends a record (ownership taken). */
void report_add(cJSON *report, cJSON *record);

/* A kernel record's "what ran" part: variant, backend, mode, shape, dtype, causal,
 * the variant's settings, and status. */
cJSON *record_kernel(const attn_params *p, attn_variant v, attn_backend b, attn_mode m,
                     const char *status);

/* Writes text atomically; returns 0, or -1 with a one-line reason in err. */
int write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t err_len);
/* Serialises obj (formatted) and writes it atomically. */
int report_write(const char *path, const cJSON *obj, char *err, size_t err_len);
/* Appends one compact JSON line to a JSONL stream and flushes it. */
int report_append_jsonl(const char *path, const cJSON *record, char *err, size_t err_len);

/* Reads and parses a JSON file; NULL with a reason on failure. */
cJSON *report_read(const char *path, char *err, size_t err_len);

/* Time samples' summaries, one rule for every command: report_sort puts n values in
 * ascending order; report_percentile gives percentile q in [0, 1] of sorted values,
 * linear between neighbours (the median of an even count: the middle two's mean). */
void report_sort(double *v, int n);
double report_percentile(const double *sorted, int n, double q);

#endif
