/*
 * safetensors.h: a reader and writer for the safetensors file format, our own,
 * built on cJSON for the header.
 *
 * File layout:
 *   u64 little-endian N | N bytes of JSON header | data section
 * The header is an object: one entry per tensor,
 *   "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data section, plus an optional
 * "__metadata__": {"key": "string value", ...}. Data is little-endian, row-major.
 *
 * In memory a file is an st_file: a list of named st_tensor (name, dtype, shape,
 * data, byte length) and a list of metadata string pairs. st_read validates a
 * file completely and gives every tensor its own malloc'd copy of its data;
 * st_write writes a file atomically (temporary file, fsync, rename).
 *
 * Nothing here prints or exits. Every fallible function returns an st_status and,
 * when err is not NULL, writes a one-line message naming the problem into
 * err[err_len]. Tensor data is taken to be in host byte order, which must be
 * little-endian.
 */
#ifndef DMABENCH_SAFETENSORS_H
#define DMABENCH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_OK = 0,
    ST_ERR_ARG,       /* invalid argument or inconsistent in-memory collection */
    ST_ERR_IO,        /* open / read / write / fsync / rename failed */
    ST_ERR_FORMAT,    /* malformed file */
    ST_ERR_NOT_FOUND, /* no tensor of that name */
    ST_ERR_DTYPE,     /* tensor has a dtype the operation does not accept */
    ST_ERR_SHAPE,     /* tensor shape differs from the expected one */
    ST_ERR_RANGE,     /* a value does not fit the target type */
    ST_ERR_OOM        /* allocation failed */
} st_status;

const char *st_status_str(st_status s);

typedef enum {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I8,
    ST_I16,
    ST_I32,
    ST_I64,
    ST_U8,
    ST_U16,
    ST_U32,
    ST_U64,
    ST_BOOL,
    ST_NDTYPES
} st_dtype;

/* "F32", "BF16", ...; "?" for a value out of range. */
const char *st_dtype_name(st_dtype t);
/* Bytes per element; 0 for a value out of range. */
size_t st_dtype_size(st_dtype t);
/* Parses a safetensors dtype name (case-sensitive). Returns 0 and sets *out, or -1. */
int st_dtype_parse(const char *name, st_dtype *out);

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* bytes; larger headers are rejected */

typedef struct {
    char *name;                   /* owned, NUL-terminated */
    st_dtype dtype;
    int ndim;                     /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];   /* shape[0..ndim), each >= 0 */
    void *data;                   /* nbytes bytes, row-major; may be NULL when nbytes == 0 */
    size_t nbytes;                /* numel * st_dtype_size(dtype) */
    int owned;                    /* 1: data is freed by st_file_free; 0: borrowed */
} st_tensor;

typedef struct {
    char *key;   /* owned */
    char *value; /* owned */
} st_meta;

typedef struct {
    st_tensor *tensors; /* n_tensors entries, in insertion (or file header) order */
    size_t n_tensors, cap_tensors;
    st_meta *meta;      /* n_meta entries, the "__metadata__" map */
    size_t n_meta, cap_meta;
} st_file;

/* An empty collection. st_file_free releases everything and leaves it empty again. */
void st_file_init(st_file *f);
void st_file_free(st_file *f);

/* Number of elements (product of the shape; 1 for a scalar). */
int64_t st_tensor_numel(const st_tensor *t);

/* ---- reading ---- */

/* Reads and validates the whole file at path into *out. *out is overwritten
 * without being freed (pass a fresh or freed st_file); on error it is left empty,
 * so st_file_free(out) is always safe. Read tensors own their data (one malloc'd,
 * suitably aligned buffer each) and keep the header's order. Errors read
 * "'<path>': <problem>". Checked: sizes, the header length (<= ST_MAX_HEADER),
 * UTF-8 JSON object with nothing after it, each entry's dtype / shape /
 * data_offsets, byte lengths against shapes, bounds, overlaps, duplicate names,
 * "__metadata__" (an object of strings). Tolerated, unlike the reference reader:
 * gaps between tensors, bytes after the last one, unknown fields in an entry. */
st_status st_read(const char *path, st_file *out, char *err, size_t err_len);

/* Tensor by name, or NULL. */
const st_tensor *st_file_find(const st_file *f, const char *name);
/* Metadata value by key, or NULL. */
const char *st_file_get_meta(const st_file *f, const char *key);

/* Checks t's shape against the expected (ndim, shape); an expected dim of -1
 * matches any size. Error like "tensor 'q': shape (2,3) but expected (2,4)". */
st_status st_tensor_check_shape(const st_tensor *t, int ndim, const int64_t *shape, char *err,
                                size_t err_len);

/* Converts t to a freshly malloc'd float array of numel elements (F32, F16, BF16,
 * F64 accepted). *out is never NULL on success, even for zero elements; free() it. */
st_status st_tensor_to_f32(const st_tensor *t, float **out, char *err, size_t err_len);
/* Same, to int64 (I8, I16, I32, I64, U8, U16, U32 accepted; U64 when every value fits). */
st_status st_tensor_to_i64(const st_tensor *t, int64_t **out, char *err, size_t err_len);

/* Find + shape check + conversion. shape may be NULL to skip the shape check
 * (ndim is then ignored). */
st_status st_file_get_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                          float **out, char *err, size_t err_len);
st_status st_file_get_i64(const st_file *f, const char *name, int ndim, const int64_t *shape,
                          int64_t **out, char *err, size_t err_len);

/* ---- building and writing ---- */

typedef enum {
    ST_COPY = 0, /* the collection keeps its own copy of the data */
    ST_BORROW    /* the collection points at the caller's data, which must outlive
                    it; st never writes through a borrowed pointer */
} st_mem;

/* Adds a tensor of the given dtype and shape (ndim 0..8, dims >= 0) whose data is
 * numel * st_dtype_size(dtype) bytes at data (data may be NULL when that is 0).
 * The name must be new and not "__metadata__". */
st_status st_file_add(st_file *f, const char *name, st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, st_mem mem, char *err,
                      size_t err_len);

/* Adds a tensor from a float array of numel elements, stored as dtype (F32, F16,
 * BF16 or F64; converted, round to nearest even). Always copies. */
st_status st_file_add_f32_as(st_file *f, const char *name, st_dtype dtype, int ndim,
                             const int64_t *shape, const float *src, char *err,
                             size_t err_len);

/* Sets a "__metadata__" entry, replacing an existing value of that key. */
st_status st_file_set_meta(st_file *f, const char *key, const char *value, char *err,
                           size_t err_len);

/* Writes f to path as a standard safetensors file: header entries sorted by name,
 * header padded with spaces so the data section starts at a multiple of 8, data
 * packed without holes with larger dtypes first so each tensor is aligned to its
 * element size. Atomic: writes path.tmp.<pid>.<n> in the same directory, fsyncs,
 * renames over path; on any error the temporary file is removed and path is left
 * as it was. The collection is validated before anything is created. */
st_status st_write(const char *path, const st_file *f, char *err, size_t err_len);

#endif
