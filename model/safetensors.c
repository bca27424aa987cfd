/*
 * safetensors.c: our safetensors reader and writer (see safetensors.h for the
 * format and the API). The reader trusts nothing in the file: every length,
 * offset and JSON field is checked before it is used, and all tensor data is
 * read with pread into buffers sized from validated offsets. The writer builds
 * the JSON header with cJSON and writes through a temporary file that is renamed
 * over the target only once everything is on disk.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "dtype.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors data is little-endian)"
#endif

/* Largest integer a JSON number (a double) holds exactly; shape dims and offsets
 * beyond it are rejected on read and refused on write. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */
#define ST_MAX_DIM ((int64_t)1 << 53)

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ST_NDTYPES] = {
    [ST_F32] = {"F32", 4},  [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},  [ST_I8] = {"I8", 1},     [ST_I16] = {"I16", 2},
    [ST_I32] = {"I32", 4},  [ST_I64] = {"I64", 8},   [ST_U8] = {"U8", 1},
    [ST_U16] = {"U16", 2},  [ST_U32] = {"U32", 4},   [ST_U64] = {"U64", 8},
    [ST_BOOL] = {"BOOL", 1},
};

/* ---- small helpers ---- */

/* Formats one line into err (when given); control characters (say, from a tensor
 * name) become '?' so the message stays on one line. */
__attribute__((format(printf, 3, 4))) static void st_errf(char *err, size_t err_len,
                                                         const char *fmt, ...) {
    if (!err || err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

static int st_dtype_valid(st_dtype t) { return (unsigned)t < (unsigned)ST_NDTYPES; }

const char *st_status_str(st_status s) {
    switch (s) {
    case ST_OK: return "ok";
    case ST_ERR_ARG: return "invalid argument";
    case ST_ERR_IO: return "i/o error";
    case ST_ERR_FORMAT: return "malformed safetensors file";
    case ST_ERR_NOT_FOUND: return "tensor not found";
    case ST_ERR_DTYPE: return "wrong dtype";
    case ST_ERR_SHAPE: return "wrong shape";
    case ST_ERR_RANGE: return "value out of range";
    case ST_ERR_OOM: return "out of memory";
    }
    return "unknown status";
}

const char *st_dtype_name(st_dtype t) { return st_dtype_valid(t) ? st_dtypes[t].name : "?"; }

size_t st_dtype_size(st_dtype t) { return st_dtype_valid(t) ? st_dtypes[t].size : 0; }

int st_dtype_parse(const char *name, st_dtype *out) {
    if (!name) return -1;
    for (int i = 0; i < ST_NDTYPES; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) {
            if (out) *out = (st_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* "(2,3)", "()" for a scalar, "*" for a -1 (wildcard) dim. */
static void st_fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t pos = 0;
    int n = snprintf(buf, len, "(");
    if (n > 0) pos = (size_t)n;
    for (int i = 0; i < ndim && pos < len; i++) {
        if (shape[i] == -1)
            n = snprintf(buf + pos, len - pos, "%s*", i ? "," : "");
        else
            n = snprintf(buf + pos, len - pos, "%s%" PRId64, i ? "," : "", shape[i]);
        if (n < 0) break;
        pos += (size_t)n;
    }
    if (pos < len) snprintf(buf + pos, len - pos, ")");
}

/* Byte size of a tensor: product(shape) * size, 0 when any dim is 0.
 * Returns -1 when it overflows (past INT64_MAX or SIZE_MAX). Dims must be >= 0. */
static int st_shape_nbytes(st_dtype t, int ndim, const int64_t *shape, uint64_t *out) {
    uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX
                                                               : (uint64_t)SIZE_MAX;
    uint64_t n = st_dtype_size(t);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            *out = 0;
            return 0;
        }
    }
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (n > limit / d) return -1;
        n *= d;
    }
    *out = n;
    return 0;
}

int64_t st_tensor_numel(const st_tensor *t) {
    int64_t n = 1;
    if (!t) return 0;
    for (int i = 0; i < t->ndim && i < ST_MAX_DIMS; i++) n *= t->shape[i];
    return n;
}

/* RFC 3629 UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns 1 if valid,
 * else 0 and the offset of the first bad byte in *bad. */
static int st_utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
    size_t i = 0;
    int ok = 1;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            ok = 0;
            break;
        }
        if (n - i < len) {
            ok = 0;
            break;
        }
        for (size_t k = 1; k < len && ok; k++) {
            if ((s[i + k] & 0xc0) != 0x80) ok = 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = 0;
        if (!ok) break;
        i += len;
    }
    if (!ok && bad) *bad = i;
    return ok;
}

static int st_str_utf8_valid(const char *s) {
    return st_utf8_valid((const unsigned char *)s, strlen(s), NULL);
}

/* Names (or keys) sorted with their index, for duplicate checks and layouts. */
typedef struct {
    const char *name;
    size_t idx;
    uint64_t a, b; /* sort keys used by some orders */
} st_sortent;

static int st_cmp_name(const void *x, const void *y) {
    const st_sortent *p = x, *q = y;
    return strcmp(p->name, q->name);
}

static int st_cmp_range(const void *x, const void *y) {
    const st_sortent *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Larger element size first (a = size), then by name: tensors packed in this
 * order start at a multiple of their element size. */
static int st_cmp_layout(const void *x, const void *y) {
    const st_sortent *p = x, *q = y;
    if (p->a != q->a) return p->a > q->a ? -1 : 1;
    return strcmp(p->name, q->name);
}

/* Returns the first name that occurs twice among n structs of size stride at base,
 * whose name pointer sits at byte offset off, or NULL. ST_ERR_OOM in *rc when the
 * sort array cannot be allocated. */
static const char *st_find_duplicate(const void *base, size_t stride, size_t off, size_t n,
                                     st_status *rc) {
    const char *dup = NULL;
    st_sortent *s = NULL;
    *rc = ST_OK;
    if (n < 2) goto cleanup;
    s = malloc(n * sizeof *s);
    if (!s) {
        *rc = ST_ERR_OOM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(&s[i].name, (const char *)base + i * stride + off, sizeof s[i].name);
        s[i].idx = i;
    }
    qsort(s, n, sizeof *s, st_cmp_name);
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1].name, s[i].name) == 0) dup = s[i].name;
cleanup:
    free(s);
    return dup;
}

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- st_file ---- */

void st_file_init(st_file *f) {
    if (f) memset(f, 0, sizeof *f);
}

void st_file_free(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        if (f->tensors[i].owned) free(f->tensors[i].data);
    }
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    st_file_init(f);
}

static int st_reserve_tensors(st_file *f, size_t want) {
    if (want <= f->cap_tensors) return 0;
    size_t cap = f->cap_tensors ? f->cap_tensors : 8;
    while (cap < want) {
        if (cap > SIZE_MAX / 2 / sizeof(st_tensor)) return -1;
        cap *= 2;
    }
    st_tensor *t = realloc(f->tensors, cap * sizeof *t);
    if (!t) return -1;
    f->tensors = t;
    f->cap_tensors = cap;
    return 0;
}

static int st_reserve_meta(st_file *f, size_t want) {
    if (want <= f->cap_meta) return 0;
    size_t cap = f->cap_meta ? f->cap_meta : 4;
    while (cap < want) {
        if (cap > SIZE_MAX / 2 / sizeof(st_meta)) return -1;
        cap *= 2;
    }
    st_meta *m = realloc(f->meta, cap * sizeof *m);
    if (!m) return -1;
    f->meta = m;
    f->cap_meta = cap;
    return 0;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].name && strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_file_get_meta(const st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->n_meta; i++)
        if (f->meta[i].key && strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- reading ---- */

/* Reads exactly n bytes at off. Returns 0, or -1 with errno set (0 at EOF). */
static int st_pread_all(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* A short description of a JSON value for error messages. */
static void st_json_desc(const cJSON *v, char *buf, size_t len) {
    if (cJSON_IsNumber(v))
        snprintf(buf, len, "%.16g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(buf, len, "the string \"%.40s\"", v->valuestring ? v->valuestring : "");
    else if (cJSON_IsBool(v))
        snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, len, "an object");
    else
        snprintf(buf, len, "an invalid value");
}

/* A JSON number that is an integer in [0, 2^53]. */
static int st_json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return -1; /* also rejects NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return -1;
    *out = u;
    return 0;
}

/* Parses one header entry (a tensor) into t (name already set) and its offsets. */
static st_status st_parse_entry(const cJSON *e, st_tensor *t, uint64_t *begin, uint64_t *end,
                                uint64_t data_size, char *err, size_t err_len) {
    st_status rc = ST_OK;
    const cJSON *jdtype = NULL, *jshape = NULL, *joffs = NULL;
    const char *name = t->name;
    char desc[96], shp[256];
    uint64_t off[2] = {0, 0}, need = 0;

    if (!cJSON_IsObject(e)) {
        st_json_desc(e, desc, sizeof desc);
        st_errf(err, err_len, "tensor '%s': entry is %s, not a JSON object", name, desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    /* Unknown fields are ignored (as the reference implementation does); a known
     * field given twice is ambiguous and rejected. */
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (!c->string) continue;
        if (strcmp(c->string, "dtype") == 0)
            slot = &jdtype;
        else if (strcmp(c->string, "shape") == 0)
            slot = &jshape;
        else if (strcmp(c->string, "data_offsets") == 0)
            slot = &joffs;
        if (!slot) continue;
        if (*slot) {
            st_errf(err, err_len, "tensor '%s': field \"%s\" appears twice", name, c->string);
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
        *slot = c;
    }
    if (!jdtype || !jshape || !joffs) {
        st_errf(err, err_len, "tensor '%s': missing field \"%s\"", name,
                !jdtype ? "dtype" : !jshape ? "shape" : "data_offsets");
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    /* dtype */
    if (!cJSON_IsString(jdtype) || !jdtype->valuestring) {
        st_json_desc(jdtype, desc, sizeof desc);
        st_errf(err, err_len, "tensor '%s': dtype is %s, not a string", name, desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (st_dtype_parse(jdtype->valuestring, &t->dtype) != 0) {
        st_errf(err, err_len, "tensor '%s': unknown dtype '%.40s'", name, jdtype->valuestring);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    /* shape */
    if (!cJSON_IsArray(jshape)) {
        st_json_desc(jshape, desc, sizeof desc);
        st_errf(err, err_len, "tensor '%s': shape is %s, not an array", name, desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    t->ndim = 0;
    for (const cJSON *c = jshape->child; c; c = c->next) {
        uint64_t d;
        if (t->ndim == ST_MAX_DIMS) {
            st_errf(err, err_len, "tensor '%s': shape has %d dims, more than the maximum %d",
                    name, cJSON_GetArraySize(jshape), ST_MAX_DIMS);
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
        if (st_json_uint(c, &d) != 0) {
            st_json_desc(c, desc, sizeof desc);
            st_errf(err, err_len, "tensor '%s': shape[%d] is %s, not a non-negative integer",
                    name, t->ndim, desc);
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
        t->shape[t->ndim++] = (int64_t)d;
    }

    /* data_offsets */
    if (!cJSON_IsArray(joffs)) {
        st_json_desc(joffs, desc, sizeof desc);
        st_errf(err, err_len, "tensor '%s': data_offsets is %s, not an array [begin, end]",
                name, desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (cJSON_GetArraySize(joffs) != 2) {
        st_errf(err, err_len, "tensor '%s': data_offsets has %d elements, not 2 [begin, end]",
                name, cJSON_GetArraySize(joffs));
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    {
        int k = 0;
        for (const cJSON *c = joffs->child; c; c = c->next, k++) {
            if (st_json_uint(c, &off[k]) != 0) {
                st_json_desc(c, desc, sizeof desc);
                st_errf(err, err_len,
                        "tensor '%s': data_offsets[%d] is %s, not a non-negative integer", name,
                        k, desc);
                rc = ST_ERR_FORMAT;
                goto cleanup;
            }
        }
    }
    if (off[0] > off[1]) {
        st_errf(err, err_len, "tensor '%s': data_offsets begin %" PRIu64 " > end %" PRIu64, name,
                off[0], off[1]);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (off[1] > data_size) {
        st_errf(err, err_len,
                "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                "] run past the end of the data section (%" PRIu64 " bytes)",
                name, off[0], off[1], data_size);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    /* byte length against shape */
    st_fmt_shape(shp, sizeof shp, t->ndim, t->shape);
    if (st_shape_nbytes(t->dtype, t->ndim, t->shape, &need) != 0) {
        st_errf(err, err_len, "tensor '%s': shape %s of %s is too large (byte size overflows)",
                name, shp, st_dtype_name(t->dtype));
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (off[1] - off[0] != need) {
        st_errf(err, err_len,
                "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                " bytes but shape %s of %s needs %" PRIu64,
                name, off[0], off[1], off[1] - off[0], shp, st_dtype_name(t->dtype), need);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    t->nbytes = (size_t)need;
    *begin = off[0];
    *end = off[1];

cleanup:
    return rc;
}

/* Parses the "__metadata__" object into f->meta. */
static st_status st_parse_meta(const cJSON *m, st_file *f, char *err, size_t err_len) {
    st_status rc = ST_OK;
    char desc[96];
    const char *dup;
    size_t n = 0;

    if (!cJSON_IsObject(m)) {
        st_json_desc(m, desc, sizeof desc);
        st_errf(err, err_len, "__metadata__ is %s, not a JSON object", desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    for (const cJSON *c = m->child; c; c = c->next) n++;
    if (st_reserve_meta(f, n) != 0) {
        st_errf(err, err_len, "out of memory for %zu metadata entries", n);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!c->string) continue;
        if (!cJSON_IsString(c) || !c->valuestring) {
            st_json_desc(c, desc, sizeof desc);
            st_errf(err, err_len, "__metadata__ entry '%s' is %s, not a string", c->string, desc);
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
        st_meta *e = &f->meta[f->n_meta];
        e->key = st_strdup(c->string);
        e->value = st_strdup(c->valuestring);
        f->n_meta++; /* counted even when a strdup failed, so st_file_free frees the other */
        if (!e->key || !e->value) {
            st_errf(err, err_len, "out of memory for __metadata__ entry '%s'", c->string);
            rc = ST_ERR_OOM;
            goto cleanup;
        }
    }
    dup = st_find_duplicate(f->meta, sizeof(st_meta), offsetof(st_meta, key), f->n_meta, &rc);
    if (rc != ST_OK) {
        st_errf(err, err_len, "out of memory checking __metadata__ keys");
        goto cleanup;
    }
    if (dup) {
        st_errf(err, err_len, "__metadata__ has the key '%s' twice", dup);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
cleanup:
    return rc;
}

st_status st_read(const char *path, st_file *out, char *err, size_t err_len) {
    st_status rc = ST_OK;
    int fd = -1;
    char *hdr = NULL;
    cJSON *root = NULL;
    uint64_t (*offs)[2] = NULL;
    st_sortent *order = NULL;
    st_file f;
    struct stat sb;
    unsigned char lenbuf[8];
    uint64_t fsize, hlen = 0, data_start, data_size;
    size_t n_entries = 0, bad;
    int have_meta = 0;
    const char *parse_end = NULL, *dup;
    char msg[512] = ""; /* the problem; err gets "'<path>': <msg>" */

    st_file_init(&f);
    if (err && err_len) err[0] = '\0';
    if (out) st_file_init(out);
    if (!path || !out) {
        st_errf(msg, sizeof msg, "st_read: %s is NULL", !path ? "path" : "out");
        rc = ST_ERR_ARG;
        goto cleanup;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st_errf(msg, sizeof msg, "cannot open: %s", strerror(errno));
        rc = ST_ERR_IO;
        goto cleanup;
    }
    if (fstat(fd, &sb) != 0) {
        st_errf(msg, sizeof msg, "cannot stat: %s", strerror(errno));
        rc = ST_ERR_IO;
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_errf(msg, sizeof msg, "not a regular file");
        rc = ST_ERR_IO;
        goto cleanup;
    }
    fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        st_errf(msg, sizeof msg, "file is %" PRIu64 " bytes, shorter than the 8-byte header length",
                fsize);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (st_pread_all(fd, lenbuf, 8, 0) != 0) {
        st_errf(msg, sizeof msg, "cannot read the header length: %s",
                errno ? strerror(errno) : "unexpected end of file");
        rc = ST_ERR_IO;
        goto cleanup;
    }
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
    if (hlen > ST_MAX_HEADER) {
        st_errf(msg, sizeof msg, "header length %" PRIu64 " exceeds the %u-byte limit",
                hlen, (unsigned)ST_MAX_HEADER);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (hlen > fsize - 8) {
        st_errf(msg, sizeof msg,
                "header length %" PRIu64 " runs past the end of the file (%" PRIu64
                " bytes after the length field)",
                hlen, fsize - 8);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    if (hlen == 0) {
        st_errf(msg, sizeof msg, "header length is 0 (the header must be a JSON object)");
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    data_start = 8 + hlen;
    data_size = fsize - data_start;

    /* header: NUL-terminated copy, must be UTF-8 without NUL bytes */
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        st_errf(msg, sizeof msg, "out of memory for a %" PRIu64 "-byte header", hlen);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    if (st_pread_all(fd, hdr, (size_t)hlen, 8) != 0) {
        st_errf(msg, sizeof msg, "cannot read the header: %s",
                errno ? strerror(errno) : "unexpected end of file");
        rc = ST_ERR_IO;
        goto cleanup;
    }
    hdr[hlen] = '\0';
    {
        const char *nul = memchr(hdr, '\0', (size_t)hlen);
        if (nul) {
            st_errf(msg, sizeof msg, "header has a NUL byte at offset %zu",
                    (size_t)(nul - hdr));
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
    }
    if (!st_utf8_valid((const unsigned char *)hdr, (size_t)hlen, &bad)) {
        st_errf(msg, sizeof msg, "header is not valid UTF-8 (byte %zu)", bad);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &parse_end, 0);
    if (!root) {
        size_t at = parse_end ? (size_t)(parse_end - hdr) : 0;
        st_errf(msg, sizeof msg, "header is not valid JSON (error near byte %zu of %" PRIu64 ")",
                at, hlen);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }
    for (const char *p = parse_end; p && p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_errf(msg, sizeof msg, "header has data after the JSON value (byte %zu)",
                    (size_t)(p - hdr));
            rc = ST_ERR_FORMAT;
            goto cleanup;
        }
    }
    if (!cJSON_IsObject(root)) {
        char desc[96];
        st_json_desc(root, desc, sizeof desc);
        st_errf(msg, sizeof msg, "header is %s, not a JSON object", desc);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    for (const cJSON *c = root->child; c; c = c->next) n_entries++;
    offs = malloc((n_entries ? n_entries : 1) * sizeof *offs);
    if (!offs || st_reserve_tensors(&f, n_entries ? n_entries : 1) != 0) {
        st_errf(msg, sizeof msg, "out of memory for %zu header entries", n_entries);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) continue;
        if (strcmp(c->string, "__metadata__") == 0) {
            if (have_meta) {
                st_errf(msg, sizeof msg, "header has \"__metadata__\" twice");
                rc = ST_ERR_FORMAT;
                goto cleanup;
            }
            have_meta = 1;
            rc = st_parse_meta(c, &f, msg, sizeof msg);
            if (rc != ST_OK) goto cleanup;
            continue;
        }
        st_tensor *t = &f.tensors[f.n_tensors];
        memset(t, 0, sizeof *t);
        t->owned = 1;
        t->name = st_strdup(c->string);
        if (!t->name) {
            st_errf(msg, sizeof msg, "out of memory for tensor name '%s'", c->string);
            rc = ST_ERR_OOM;
            goto cleanup;
        }
        f.n_tensors++;
        rc = st_parse_entry(c, t, &offs[f.n_tensors - 1][0], &offs[f.n_tensors - 1][1],
                            data_size, msg, sizeof msg);
        if (rc != ST_OK) goto cleanup;
    }

    /* duplicate names (cJSON keeps both) */
    dup = st_find_duplicate(f.tensors, sizeof(st_tensor), offsetof(st_tensor, name), f.n_tensors,
                            &rc);
    if (rc != ST_OK) {
        st_errf(msg, sizeof msg, "out of memory checking tensor names");
        goto cleanup;
    }
    if (dup) {
        st_errf(msg, sizeof msg, "tensor '%s' appears twice in the header", dup);
        rc = ST_ERR_FORMAT;
        goto cleanup;
    }

    /* overlapping byte ranges: sort by begin, compare each non-empty range with the
     * furthest-reaching one before it */
    if (f.n_tensors > 1) {
        order = malloc(f.n_tensors * sizeof *order);
        if (!order) {
            st_errf(msg, sizeof msg, "out of memory checking tensor offsets");
            rc = ST_ERR_OOM;
            goto cleanup;
        }
        for (size_t i = 0; i < f.n_tensors; i++) {
            order[i].name = f.tensors[i].name;
            order[i].idx = i;
            order[i].a = offs[i][0];
            order[i].b = offs[i][1];
        }
        qsort(order, f.n_tensors, sizeof *order, st_cmp_range);
        uint64_t reach = 0;
        size_t reach_idx = SIZE_MAX;
        for (size_t i = 0; i < f.n_tensors; i++) {
            if (order[i].a == order[i].b) continue; /* empty ranges overlap nothing */
            if (reach_idx != SIZE_MAX && order[i].a < reach) {
                size_t j = order[i].idx;
                st_errf(msg, sizeof msg,
                        "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64
                        ", %" PRIu64 ") overlap",
                        f.tensors[reach_idx].name, offs[reach_idx][0], offs[reach_idx][1],
                        f.tensors[j].name, offs[j][0], offs[j][1]);
                rc = ST_ERR_FORMAT;
                goto cleanup;
            }
            if (reach_idx == SIZE_MAX || order[i].b > reach) {
                reach = order[i].b;
                reach_idx = order[i].idx;
            }
        }
    }

    /* data: each tensor gets its own buffer */
    for (size_t i = 0; i < f.n_tensors; i++) {
        st_tensor *t = &f.tensors[i];
        if (t->nbytes == 0) continue;
        t->data = malloc(t->nbytes);
        if (!t->data) {
            st_errf(msg, sizeof msg, "out of memory for tensor '%s' (%zu bytes)", t->name,
                    t->nbytes);
            rc = ST_ERR_OOM;
            goto cleanup;
        }
        if (st_pread_all(fd, t->data, t->nbytes, data_start + offs[i][0]) != 0) {
            st_errf(msg, sizeof msg, "cannot read tensor '%s': %s", t->name,
                    errno ? strerror(errno) : "unexpected end of file");
            rc = ST_ERR_IO;
            goto cleanup;
        }
    }

    *out = f;
    st_file_init(&f);

cleanup:
    if (rc != ST_OK) st_errf(err, err_len, "'%s': %s", path ? path : "(null)", msg);
    st_file_free(&f);
    free(order);
    free(offs);
    cJSON_Delete(root);
    free(hdr);
    if (fd >= 0) close(fd);
    return rc;
}

/* ---- shape checks and conversions ---- */

st_status st_tensor_check_shape(const st_tensor *t, int ndim, const int64_t *shape, char *err,
                                size_t err_len) {
    st_status rc = ST_OK;
    char have[256], want[256];
    int match;

    if (!t || ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        st_errf(err, err_len, "st_tensor_check_shape: %s", !t ? "tensor is NULL"
                                                          : "expected ndim/shape invalid");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    match = t->ndim == ndim;
    for (int i = 0; match && i < ndim; i++)
        if (shape[i] != -1 && shape[i] != t->shape[i]) match = 0;
    if (!match) {
        st_fmt_shape(have, sizeof have, t->ndim < 0 || t->ndim > ST_MAX_DIMS ? 0 : t->ndim,
                     t->shape);
        st_fmt_shape(want, sizeof want, ndim, shape);
        st_errf(err, err_len, "tensor '%s': shape %s but expected %s",
                t->name ? t->name : "(null)", have, want);
        rc = ST_ERR_SHAPE;
        goto cleanup;
    }
cleanup:
    return rc;
}

/* Checks that a tensor's fields agree (dtype, dims, nbytes, data); used before
 * converting or writing. Writes the element count to *numel. */
static st_status st_tensor_consistent(const st_tensor *t, int64_t *numel, char *err,
                                      size_t err_len) {
    st_status rc = ST_OK;
    const char *name = t->name ? t->name : "(null)";
    uint64_t need;
    char shp[256];

    if (!st_dtype_valid(t->dtype)) {
        st_errf(err, err_len, "tensor '%s': invalid dtype value %d", name, (int)t->dtype);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
        st_errf(err, err_len, "tensor '%s': ndim %d outside 0..%d", name, t->ndim, ST_MAX_DIMS);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || t->shape[i] > ST_MAX_DIM) {
            st_errf(err, err_len, "tensor '%s': shape[%d] is %" PRId64 ", outside 0..2^53", name,
                    i, t->shape[i]);
            rc = ST_ERR_ARG;
            goto cleanup;
        }
    }
    st_fmt_shape(shp, sizeof shp, t->ndim, t->shape);
    if (st_shape_nbytes(t->dtype, t->ndim, t->shape, &need) != 0) {
        st_errf(err, err_len, "tensor '%s': shape %s of %s is too large", name, shp,
                st_dtype_name(t->dtype));
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (need != t->nbytes) {
        st_errf(err, err_len, "tensor '%s': nbytes is %zu but shape %s of %s needs %" PRIu64,
                name, t->nbytes, shp, st_dtype_name(t->dtype), need);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (t->nbytes > 0 && !t->data) {
        st_errf(err, err_len, "tensor '%s': data is NULL for %zu bytes", name, t->nbytes);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    *numel = (int64_t)(need / st_dtype_size(t->dtype)); /* 0 exactly when a dim is 0 */
cleanup:
    return rc;
}

st_status st_tensor_to_f32(const st_tensor *t, float **out, char *err, size_t err_len) {
    st_status rc = ST_OK;
    float *y = NULL;
    int64_t n = 0;
    const unsigned char *src;

    if (out) *out = NULL;
    if (!t || !out) {
        st_errf(err, err_len, "st_tensor_to_f32: %s is NULL", !t ? "tensor" : "out");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    rc = st_tensor_consistent(t, &n, err, err_len);
    if (rc != ST_OK) goto cleanup;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
        st_errf(err, err_len, "tensor '%s': dtype %s but expected F32, F16, BF16 or F64", t->name,
                st_dtype_name(t->dtype));
        rc = ST_ERR_DTYPE;
        goto cleanup;
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(float)) {
        st_errf(err, err_len, "tensor '%s': %" PRId64 " elements are too many", t->name, n);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    y = malloc(n ? (size_t)n * sizeof(float) : 1);
    if (!y) {
        st_errf(err, err_len, "out of memory converting tensor '%s' (%" PRId64 " elements)",
                t->name, n);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    src = t->data;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST_F32: memcpy(&y[i], src + 4 * i, 4); break;
        case ST_F16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            y[i] = f16_to_f32(h);
            break;
        }
        case ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            y[i] = bf16_to_f32(h);
            break;
        }
        default: {
            double d;
            memcpy(&d, src + 8 * i, 8);
            y[i] = (float)d;
            break;
        }
        }
    }
    *out = y;
    y = NULL;
cleanup:
    free(y);
    return rc;
}

st_status st_tensor_to_i64(const st_tensor *t, int64_t **out, char *err, size_t err_len) {
    st_status rc = ST_OK;
    int64_t *y = NULL;
    int64_t n = 0;
    const unsigned char *src;

    if (out) *out = NULL;
    if (!t || !out) {
        st_errf(err, err_len, "st_tensor_to_i64: %s is NULL", !t ? "tensor" : "out");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    rc = st_tensor_consistent(t, &n, err, err_len);
    if (rc != ST_OK) goto cleanup;
    switch (t->dtype) {
    case ST_I8: case ST_I16: case ST_I32: case ST_I64:
    case ST_U8: case ST_U16: case ST_U32: case ST_U64:
        break;
    default:
        st_errf(err, err_len, "tensor '%s': dtype %s but expected an integer dtype (I32, I64, ...)",
                t->name, st_dtype_name(t->dtype));
        rc = ST_ERR_DTYPE;
        goto cleanup;
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(int64_t)) {
        st_errf(err, err_len, "tensor '%s': %" PRId64 " elements are too many", t->name, n);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    y = malloc(n ? (size_t)n * sizeof(int64_t) : 1);
    if (!y) {
        st_errf(err, err_len, "out of memory converting tensor '%s' (%" PRId64 " elements)",
                t->name, n);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    src = t->data;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST_I8: { int8_t v; memcpy(&v, src + i, 1); y[i] = v; break; }
        case ST_I16: { int16_t v; memcpy(&v, src + 2 * i, 2); y[i] = v; break; }
        case ST_I32: { int32_t v; memcpy(&v, src + 4 * i, 4); y[i] = v; break; }
        case ST_I64: memcpy(&y[i], src + 8 * i, 8); break;
        case ST_U8: y[i] = src[i]; break;
        case ST_U16: { uint16_t v; memcpy(&v, src + 2 * i, 2); y[i] = v; break; }
        case ST_U32: { uint32_t v; memcpy(&v, src + 4 * i, 4); y[i] = v; break; }
        default: {
            uint64_t v;
            memcpy(&v, src + 8 * i, 8);
            if (v > (uint64_t)INT64_MAX) {
                st_errf(err, err_len, "tensor '%s': element %" PRId64 " is %" PRIu64
                        ", beyond int64", t->name, i, v);
                rc = ST_ERR_RANGE;
                goto cleanup;
            }
            y[i] = (int64_t)v;
            break;
        }
        }
    }
    *out = y;
    y = NULL;
cleanup:
    free(y);
    return rc;
}

/* The lookup and shape check st_file_get_f32 and st_file_get_i64 share. */
static st_status find_checked(const st_file *f, const char *name, int ndim, const int64_t *shape,
                              const void *out, const char *fn, const st_tensor **t, char *err,
                              size_t err_len) {
    if (!f || !name || !out) {
        st_errf(err, err_len, "%s: %s is NULL", fn, !f ? "file" : !name ? "name" : "out");
        return ST_ERR_ARG;
    }
    *t = st_file_find(f, name);
    if (!*t) {
        st_errf(err, err_len, "no tensor named '%s'", name);
        return ST_ERR_NOT_FOUND;
    }
    return shape ? st_tensor_check_shape(*t, ndim, shape, err, err_len) : ST_OK;
}

st_status st_file_get_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                          float **out, char *err, size_t err_len) {
    const st_tensor *t;
    if (out) *out = NULL;
    st_status rc = find_checked(f, name, ndim, shape, out, "st_file_get_f32", &t, err, err_len);
    return rc != ST_OK ? rc : st_tensor_to_f32(t, out, err, err_len);
}

st_status st_file_get_i64(const st_file *f, const char *name, int ndim, const int64_t *shape,
                          int64_t **out, char *err, size_t err_len) {
    const st_tensor *t;
    if (out) *out = NULL;
    st_status rc = find_checked(f, name, ndim, shape, out, "st_file_get_i64", &t, err, err_len);
    return rc != ST_OK ? rc : st_tensor_to_i64(t, out, err, err_len);
}

/* ---- building ---- */

/* Validates the arguments of an add; writes the byte size to *nbytes. */
static st_status st_check_add(const st_file *f, const char *name, st_dtype dtype, int ndim,
                              const int64_t *shape, uint64_t *nbytes, char *err, size_t err_len) {
    st_status rc = ST_OK;
    char shp[256];

    if (!f || !name) {
        st_errf(err, err_len, "st_file_add: %s is NULL", !f ? "file" : "name");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (strcmp(name, "__metadata__") == 0 || !st_str_utf8_valid(name)) {
        st_errf(err, err_len, "tensor '%s': %s", name,
                strcmp(name, "__metadata__") == 0 ? "name is reserved" : "name is not valid UTF-8");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (!st_dtype_valid(dtype)) {
        st_errf(err, err_len, "tensor '%s': invalid dtype value %d", name, (int)dtype);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        st_errf(err, err_len, "tensor '%s': ndim %d outside 0..%d or shape NULL", name, ndim,
                ST_MAX_DIMS);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > ST_MAX_DIM) {
            st_errf(err, err_len, "tensor '%s': shape[%d] is %" PRId64 ", outside 0..2^53", name,
                    i, shape[i]);
            rc = ST_ERR_ARG;
            goto cleanup;
        }
    }
    if (st_shape_nbytes(dtype, ndim, shape, nbytes) != 0) {
        st_fmt_shape(shp, sizeof shp, ndim, shape);
        st_errf(err, err_len, "tensor '%s': shape %s of %s is too large", name, shp,
                st_dtype_name(dtype));
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (st_file_find(f, name)) {
        st_errf(err, err_len, "tensor '%s' already exists", name);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
cleanup:
    return rc;
}

/* Appends a checked tensor. mode: 0 copy, 1 borrow, 2 take ownership of data
 * (only on success). */
static st_status st_append(st_file *f, const char *name, st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, uint64_t nbytes, int mode,
                           char *err, size_t err_len) {
    st_status rc = ST_OK;
    char *nm = NULL;
    void *copy = NULL;

    if (st_reserve_tensors(f, f->n_tensors + 1) != 0 || !(nm = st_strdup(name))) {
        st_errf(err, err_len, "out of memory adding tensor '%s'", name);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    if (mode == 0 && nbytes > 0) {
        copy = malloc((size_t)nbytes);
        if (!copy) {
            st_errf(err, err_len, "out of memory copying tensor '%s' (%" PRIu64 " bytes)", name,
                    nbytes);
            rc = ST_ERR_OOM;
            goto cleanup;
        }
        memcpy(copy, data, (size_t)nbytes);
    }
    st_tensor *t = &f->tensors[f->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = (size_t)nbytes;
    t->owned = mode != 1;
    t->data = mode == 0 ? copy : (void *)data;
    nm = NULL;
    copy = NULL;
cleanup:
    free(nm);
    free(copy);
    return rc;
}

st_status st_file_add(st_file *f, const char *name, st_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, st_mem mem, char *err,
                      size_t err_len) {
    st_status rc;
    uint64_t nbytes = 0;

    rc = st_check_add(f, name, dtype, ndim, shape, &nbytes, err, err_len);
    if (rc != ST_OK) goto cleanup;
    if (nbytes > 0 && !data) {
        st_errf(err, err_len, "tensor '%s': data is NULL for %" PRIu64 " bytes", name, nbytes);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (mem != ST_COPY && mem != ST_BORROW) {
        st_errf(err, err_len, "tensor '%s': invalid st_mem value %d", name, (int)mem);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    rc = st_append(f, name, dtype, ndim, shape, data, nbytes, mem == ST_BORROW ? 1 : 0, err,
                   err_len);
cleanup:
    return rc;
}

st_status st_file_add_f32_as(st_file *f, const char *name, st_dtype dtype, int ndim,
                             const int64_t *shape, const float *src, char *err,
                             size_t err_len) {
    st_status rc;
    uint64_t nbytes = 0, n;
    unsigned char *buf = NULL;

    rc = st_check_add(f, name, dtype, ndim, shape, &nbytes, err, err_len);
    if (rc != ST_OK) goto cleanup;
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16 && dtype != ST_F64) {
        st_errf(err, err_len, "tensor '%s': cannot store float32 data as %s (F32, F16, BF16 or "
                "F64 only)", name, st_dtype_name(dtype));
        rc = ST_ERR_DTYPE;
        goto cleanup;
    }
    if (nbytes > 0 && !src) {
        st_errf(err, err_len, "tensor '%s': src is NULL", name);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    n = nbytes / st_dtype_size(dtype);
    if (nbytes > 0) {
        buf = malloc((size_t)nbytes);
        if (!buf) {
            st_errf(err, err_len, "out of memory converting tensor '%s' (%" PRIu64 " bytes)",
                    name, nbytes);
            rc = ST_ERR_OOM;
            goto cleanup;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        switch (dtype) {
        case ST_F32: memcpy(buf + 4 * i, &src[i], 4); break;
        case ST_F16: {
            uint16_t h = f32_to_f16(src[i]);
            memcpy(buf + 2 * i, &h, 2);
            break;
        }
        case ST_BF16: {
            uint16_t h = f32_to_bf16(src[i]);
            memcpy(buf + 2 * i, &h, 2);
            break;
        }
        default: {
            double d = src[i];
            memcpy(buf + 8 * i, &d, 8);
            break;
        }
        }
    }
    rc = st_append(f, name, dtype, ndim, shape, buf, nbytes, 2, err, err_len);
    if (rc == ST_OK) buf = NULL; /* owned by the tensor now */
cleanup:
    free(buf);
    return rc;
}

st_status st_file_set_meta(st_file *f, const char *key, const char *value, char *err,
                           size_t err_len) {
    st_status rc = ST_OK;
    char *k = NULL, *v = NULL;

    if (!f || !key || !value) {
        st_errf(err, err_len, "st_file_set_meta: %s is NULL",
                !f ? "file" : !key ? "key" : "value");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (!st_str_utf8_valid(key) || !st_str_utf8_valid(value)) {
        st_errf(err, err_len, "__metadata__ entry '%s': %s is not valid UTF-8", key,
                st_str_utf8_valid(key) ? "value" : "key");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (!(v = st_strdup(value))) {
        st_errf(err, err_len, "out of memory setting __metadata__ entry '%s'", key);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta[i].key, key) == 0) {
            free(f->meta[i].value);
            f->meta[i].value = v;
            v = NULL;
            goto cleanup;
        }
    }
    if (st_reserve_meta(f, f->n_meta + 1) != 0 || !(k = st_strdup(key))) {
        st_errf(err, err_len, "out of memory setting __metadata__ entry '%s'", key);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    f->meta[f->n_meta].key = k;
    f->meta[f->n_meta].value = v;
    f->n_meta++;
    k = v = NULL;
cleanup:
    free(k);
    free(v);
    return rc;
}

/* ---- writing ---- */

/* Checks a whole collection before anything is written. */
static st_status st_validate_for_write(const st_file *f, char *err, size_t err_len) {
    st_status rc = ST_OK;
    const char *dup;
    int64_t numel;

    if (f->n_tensors > 0 && !f->tensors) {
        st_errf(err, err_len, "collection has %zu tensors but no tensor array", f->n_tensors);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (f->n_meta > 0 && !f->meta) {
        st_errf(err, err_len, "collection has %zu metadata entries but no array", f->n_meta);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (!t->name) {
            st_errf(err, err_len, "tensor #%zu has no name", i);
            rc = ST_ERR_ARG;
            goto cleanup;
        }
        if (strcmp(t->name, "__metadata__") == 0 || !st_str_utf8_valid(t->name)) {
            st_errf(err, err_len, "tensor '%s': %s", t->name,
                    strcmp(t->name, "__metadata__") == 0 ? "name is reserved"
                                                         : "name is not valid UTF-8");
            rc = ST_ERR_ARG;
            goto cleanup;
        }
        rc = st_tensor_consistent(t, &numel, err, err_len);
        if (rc != ST_OK) goto cleanup;
    }
    for (size_t i = 0; i < f->n_meta; i++) {
        const st_meta *m = &f->meta[i];
        if (!m->key || !m->value) {
            st_errf(err, err_len, "__metadata__ entry #%zu has a NULL %s", i,
                    !m->key ? "key" : "value");
            rc = ST_ERR_ARG;
            goto cleanup;
        }
        if (!st_str_utf8_valid(m->key) || !st_str_utf8_valid(m->value)) {
            st_errf(err, err_len, "__metadata__ entry '%s' is not valid UTF-8", m->key);
            rc = ST_ERR_ARG;
            goto cleanup;
        }
    }
    dup = st_find_duplicate(f->tensors, sizeof(st_tensor), offsetof(st_tensor, name), f->n_tensors,
                            &rc);
    if (rc == ST_OK && dup) {
        st_errf(err, err_len, "tensor '%s' appears twice in the collection", dup);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (rc == ST_OK)
        dup = st_find_duplicate(f->meta, sizeof(st_meta), offsetof(st_meta, key), f->n_meta, &rc);
    if (rc == ST_OK && dup) {
        st_errf(err, err_len, "__metadata__ key '%s' appears twice in the collection", dup);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    if (rc != ST_OK) st_errf(err, err_len, "out of memory checking names");
cleanup:
    return rc;
}

/* cJSON array of raw integers. NULL when out of memory. */
static cJSON *st_json_int_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    char num[32];
    for (int i = 0; a && i < n; i++) {
        snprintf(num, sizeof num, "%" PRId64, v[i]);
        cJSON *x = cJSON_CreateRaw(num);
        if (!x) {
            cJSON_Delete(a);
            a = NULL;
            break;
        }
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

static int st_write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so the rename itself is durable. Best effort. */
static void st_sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    int fd = -1;
    if (!slash) {
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (!dir) goto cleanup;
        memcpy(dir, path, n);
        dir[n] = '\0';
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd >= 0) fsync(fd);
cleanup:
    if (fd >= 0) close(fd);
    free(dir);
}

static atomic_uint st_tmp_counter;

st_status st_write(const char *path, const st_file *f, char *err, size_t err_len) {
    st_status rc = ST_OK;
    st_sortent *by_name = NULL, *layout = NULL;
    uint64_t *begin = NULL;
    cJSON *root = NULL;
    char *json = NULL, *tmp = NULL;
    unsigned char *head = NULL;
    int fd = -1, tmp_exists = 0;
    size_t n, jlen, hlen, tmp_len;
    uint64_t pos = 0;

    if (err && err_len) err[0] = '\0';
    if (!path || !f) {
        st_errf(err, err_len, "st_write: %s is NULL", !path ? "path" : "file");
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    rc = st_validate_for_write(f, err, err_len);
    if (rc != ST_OK) goto cleanup;
    n = f->n_tensors;

    /* layout: larger elements first, then by name; offsets packed without holes */
    by_name = malloc((n ? n : 1) * sizeof *by_name);
    layout = malloc((n ? n : 1) * sizeof *layout);
    begin = malloc((n ? n : 1) * sizeof *begin);
    if (!by_name || !layout || !begin) {
        st_errf(err, err_len, "out of memory writing '%s'", path);
        rc = ST_ERR_OOM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        by_name[i].name = layout[i].name = f->tensors[i].name;
        by_name[i].idx = layout[i].idx = i;
        layout[i].a = st_dtype_size(f->tensors[i].dtype);
    }
    qsort(by_name, n, sizeof *by_name, st_cmp_name);
    qsort(layout, n, sizeof *layout, st_cmp_layout);
    for (size_t i = 0; i < n; i++) {
        begin[layout[i].idx] = pos;
        pos += f->tensors[layout[i].idx].nbytes;
    }
    if (pos > (uint64_t)ST_MAX_DIM) {
        st_errf(err, err_len, "'%s': %" PRIu64 " bytes of tensor data is too much", path, pos);
        rc = ST_ERR_ARG;
        goto cleanup;
    }

    /* header JSON: __metadata__ first, then the tensors sorted by name */
    root = cJSON_CreateObject();
    if (!root) goto oom;
    if (f->n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) goto oom;
        for (size_t i = 0; i < f->n_meta; i++)
            if (!cJSON_AddStringToObject(m, f->meta[i].key, f->meta[i].value)) goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = &f->tensors[by_name[i].idx];
        int64_t offs[2] = {(int64_t)begin[by_name[i].idx],
                           (int64_t)(begin[by_name[i].idx] + t->nbytes)};
        cJSON *e = cJSON_AddObjectToObject(root, t->name), *a;
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype))) goto oom;
        if (!(a = st_json_int_array(t->shape, t->ndim))) goto oom;
        if (!cJSON_AddItemToObject(e, "shape", a)) {
            cJSON_Delete(a);
            goto oom;
        }
        if (!(a = st_json_int_array(offs, 2))) goto oom;
        if (!cJSON_AddItemToObject(e, "data_offsets", a)) {
            cJSON_Delete(a);
            goto oom;
        }
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) goto oom;

    /* 8-byte length + JSON + spaces up to a multiple of 8 */
    jlen = strlen(json);
    hlen = jlen + (8 - jlen % 8) % 8;
    if (hlen > ST_MAX_HEADER) {
        st_errf(err, err_len, "'%s': header would be %zu bytes, over the %u-byte limit", path,
                hlen, (unsigned)ST_MAX_HEADER);
        rc = ST_ERR_ARG;
        goto cleanup;
    }
    head = malloc(8 + hlen);
    if (!head) goto oom;
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);

    /* temporary file next to the target */
    tmp_len = strlen(path) + 64;
    tmp = malloc(tmp_len);
    if (!tmp) goto oom;
    for (int attempt = 0; fd < 0; attempt++) {
        snprintf(tmp, tmp_len, "%s.tmp.%ld.%u", path, (long)getpid(),
                 atomic_fetch_add(&st_tmp_counter, 1u));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
            /* the temporary file is ours: name the user's path */
            st_errf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
            rc = ST_ERR_IO;
            goto cleanup;
        }
    }
    tmp_exists = 1;
    if (st_write_all(fd, head, 8 + hlen) != 0) {
        st_errf(err, err_len, "cannot write the header to '%s': %s", path, strerror(errno));
        rc = ST_ERR_IO;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = &f->tensors[layout[i].idx];
        if (t->nbytes > 0 && st_write_all(fd, t->data, t->nbytes) != 0) {
            st_errf(err, err_len, "cannot write tensor '%s' to '%s': %s", t->name, path,
                    strerror(errno));
            rc = ST_ERR_IO;
            goto cleanup;
        }
    }
    if (fsync(fd) != 0) {
        st_errf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        rc = ST_ERR_IO;
        goto cleanup;
    }
    {
        int c = close(fd);
        fd = -1;
        if (c != 0) {
            st_errf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
            rc = ST_ERR_IO;
            goto cleanup;
        }
    }
    if (rename(tmp, path) != 0) {
        st_errf(err, err_len, "cannot write '%s' (cannot rename the temporary file onto it): %s", path,
                strerror(errno));
        rc = ST_ERR_IO;
        goto cleanup;
    }
    tmp_exists = 0;
    st_sync_dir(path);
    goto cleanup;

oom:
    st_errf(err, err_len, "out of memory building the header of '%s'", path);
    rc = ST_ERR_OOM;
cleanup:
    if (fd >= 0) close(fd);
    if (tmp_exists) unlink(tmp);
    free(tmp);
    free(head);
    if (json) cJSON_free(json);
    cJSON_Delete(root);
    free(begin);
    free(layout);
    free(by_name);
    return rc;
}
