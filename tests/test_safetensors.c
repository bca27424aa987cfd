/*
 * test_safetensors.c: tests of model/safetensors.c. Round trips (F32/F16/BF16
 * bit-exact, odd shapes, 0-d scalars, zero-size dims, integers, metadata), the
 * on-disk layout, the conversion helpers, rejection of malformed files built byte
 * by byte (each must fail with a message, never crash), and atomic writes that
 * leave nothing behind on failure. Pure C; files live in a mkdtemp directory.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtype.h"
#include "safetensors.h"

static char tdir[64];
static char errbuf[512];

/* tdir/name in a static rotating buffer. */
static const char *tpath(const char *name) {
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tdir, name);
    return b;
}

static int write_bytes(const char *path, const void *buf, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = n ? fwrite(buf, 1, n, fp) : 0;
    return (fclose(fp) == 0 && w == n) ? 0 : -1;
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;
    long len;
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
        *n = (size_t)len;
    }
    fclose(fp);
    return buf;
}

/* A safetensors file: declared header length hlen_field, header text, data. */
static int make_file_len(const char *path, uint64_t hlen_field, const char *header,
                         size_t header_len, const void *data, size_t data_len) {
    size_t n = 8 + header_len + data_len;
    unsigned char *b = malloc(n);
    int rc;
    if (!b) return -1;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, header, header_len);
    if (data_len) memcpy(b + 8 + header_len, data, data_len);
    rc = write_bytes(path, b, n);
    free(b);
    return rc;
}

static int make_file(const char *path, const char *header, const void *data, size_t data_len) {
    return make_file_len(path, strlen(header), header, strlen(header), data, data_len);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Number of entries in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static int one_line(const char *s) { return s[0] != '\0' && !strchr(s, '\n'); }

/* Expects st_read to reject path with status want (0: any error). */
static void expect_reject(const char *name, const char *path, st_status want) {
    st_file f;
    char msg[600];
    errbuf[0] = '\0';
    st_status rc = st_read(path, &f, errbuf, sizeof errbuf);
    int ok = rc != ST_OK && (want == ST_OK || rc == want) && one_line(errbuf) &&
             f.n_tensors == 0 && f.tensors == NULL && f.n_meta == 0;
    snprintf(msg, sizeof msg, "status %d (%s), err '%s'", (int)rc, st_status_str(rc), errbuf);
    CHECK(ok, name, "%s", msg);
    if (getenv("ST_TEST_VERBOSE")) printf("# %s: %s\n", name, errbuf);
    st_file_free(&f);
}

/* Expects the header text (with 8 data bytes of zeros unless data given) rejected. */
static void reject_header(const char *name, const char *header, size_t data_len,
                          st_status want) {
    static const unsigned char zeros[64];
    const char *p = tpath("bad.safetensors");
    if (make_file(p, header, zeros, data_len) != 0) {
        CHECK(0, name, "could not write the test file");
        return;
    }
    expect_reject(name, p, want);
}

static int tensor_is(const st_tensor *t, st_dtype dt, int ndim, const int64_t *shape,
                     const void *data, size_t nbytes) {
    if (!t || t->dtype != dt || t->ndim != ndim || t->nbytes != nbytes) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return nbytes == 0 || (t->data && memcmp(t->data, data, nbytes) == 0);
}

/* ---- round trips ---- */

static void test_roundtrip(void) {
    st_file w, r;
    st_status rc;
    /* F32 (3,5,7) with awkward bit patterns: NaN payloads, -0, inf, subnormals */
    int64_t s32[3] = {3, 5, 7};
    uint32_t f32[105];
    for (int i = 0; i < 105; i++) f32[i] = 0x9e3779b9u * (uint32_t)(i + 1);
    f32[0] = 0x7fc00001u, f32[1] = 0x80000000u, f32[2] = 0x7f800000u, f32[3] = 0x00000001u;
    f32[4] = 0xffbfffffu;
    /* F16 (1,3) and (11,) ; BF16 (2,1,3) */
    int64_t s16a[2] = {1, 3}, s16b[1] = {11}, sbf[3] = {2, 1, 3};
    uint16_t f16a[3] = {0x7c01, 0x8000, 0x0001};
    uint16_t f16b[11], bf[6] = {0x7fc1, 0xff80, 0x0001, 0x3f80, 0xc2f7, 0x8000};
    for (int i = 0; i < 11; i++) f16b[i] = (uint16_t)(0x1234 * (i + 3));
    /* scalar, zero dims, ints, odd-sized mixing */
    float scalar = -3.25f;
    int64_t s0[3] = {4, 0, 3}, s00[1] = {0};
    int64_t si32[2] = {2, 2}, si64[1] = {3}, su8[1] = {5}, sf64[1] = {2};
    int32_t i32[4] = {-1, 0, 2147483647, -2147483647 - 1};
    int64_t i64[3] = {-5, INT64_MAX, INT64_MIN};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    double f64[2] = {1.0 / 3.0, -1e300};

    st_file_init(&w);
    st_file_init(&r);
    rc = ST_OK;
    rc |= st_file_add(&w, "f32", ST_F32, 3, s32, f32, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "f16.a", ST_F16, 2, s16a, f16a, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "f16.b", ST_F16, 1, s16b, f16b, ST_BORROW, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "bf16", ST_BF16, 3, sbf, bf, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "scalar", ST_F32, 0, NULL, &scalar, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "zero", ST_F32, 3, s0, NULL, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "zero16", ST_BF16, 1, s00, NULL, ST_BORROW, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "i32", ST_I32, 2, si32, i32, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "i64", ST_I64, 1, si64, i64, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "u8", ST_U8, 1, su8, u8, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "f64", ST_F64, 1, sf64, f64, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "\xc3\xa9t\xc3\xa9 \"quoted\\\"", ST_U8, 1, su8, u8, ST_COPY, errbuf,
                      sizeof errbuf);
    CHECK(rc == ST_OK && w.n_tensors == 12, "roundtrip: build collection", "%s", errbuf);

    rc = st_file_set_meta(&w, "format", "pt", errbuf, sizeof errbuf);
    rc |= st_file_set_meta(&w, "note", "line1\nline2 \"q\" \xe2\x82\xac", errbuf, sizeof errbuf);
    rc |= st_file_set_meta(&w, "format", "np", errbuf, sizeof errbuf); /* replaces */
    rc |= st_file_set_meta(&w, "empty", "", errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && w.n_meta == 3, "roundtrip: set metadata", "%s", errbuf);

    f16b[0] = 0x3c00; /* borrowed: the write must see this */
    rc = st_write(tpath("rt.safetensors"), &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK, "roundtrip: write", "%s", errbuf);
    rc = st_read(tpath("rt.safetensors"), &r, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && r.n_tensors == 12 && r.n_meta == 3, "roundtrip: read", "rc %d: %s",
          (int)rc, errbuf);

    CHECK(tensor_is(st_file_find(&r, "f32"), ST_F32, 3, s32, f32, sizeof f32),
          "roundtrip: F32 (3,5,7) bit-exact", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "f16.a"), ST_F16, 2, s16a, f16a, sizeof f16a),
          "roundtrip: F16 (1,3) bit-exact", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "f16.b"), ST_F16, 1, s16b, f16b, sizeof f16b),
          "roundtrip: F16 (11) borrowed, bit-exact", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "bf16"), ST_BF16, 3, sbf, bf, sizeof bf),
          "roundtrip: BF16 (2,1,3) bit-exact", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "scalar"), ST_F32, 0, NULL, &scalar, 4),
          "roundtrip: 0-d scalar", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "zero"), ST_F32, 3, s0, NULL, 0) &&
              st_tensor_numel(st_file_find(&r, "zero")) == 0,
          "roundtrip: zero dim (4,0,3)", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "zero16"), ST_BF16, 1, s00, NULL, 0),
          "roundtrip: zero dim (0)", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "i32"), ST_I32, 2, si32, i32, sizeof i32) &&
              tensor_is(st_file_find(&r, "i64"), ST_I64, 1, si64, i64, sizeof i64) &&
              tensor_is(st_file_find(&r, "u8"), ST_U8, 1, su8, u8, sizeof u8),
          "roundtrip: I32, I64, U8", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "f64"), ST_F64, 1, sf64, f64, sizeof f64),
          "roundtrip: F64", "mismatch");
    CHECK(tensor_is(st_file_find(&r, "\xc3\xa9t\xc3\xa9 \"quoted\\\""), ST_U8, 1, su8, u8, 5),
          "roundtrip: UTF-8 name with quotes and backslash", "mismatch");
    CHECK(st_file_find(&r, "nope") == NULL, "roundtrip: find of a missing name", "found");

    const char *fm = st_file_get_meta(&r, "format"), *nm = st_file_get_meta(&r, "note"),
               *em = st_file_get_meta(&r, "empty");
    CHECK(fm && strcmp(fm, "np") == 0 && nm &&
              strcmp(nm, "line1\nline2 \"q\" \xe2\x82\xac") == 0 && em && em[0] == '\0' &&
              st_file_get_meta(&r, "missing") == NULL,
          "roundtrip: metadata", "format=%s", fm ? fm : "(null)");

    /* a read file can be written again unchanged */
    rc = st_write(tpath("rt2.safetensors"), &r, errbuf, sizeof errbuf);
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = read_bytes(tpath("rt.safetensors"), &n1);
    unsigned char *b2 = read_bytes(tpath("rt2.safetensors"), &n2);
    CHECK(rc == ST_OK && b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0,
          "roundtrip: rewrite of a read file is byte-identical", "%s", errbuf);
    free(b1);
    free(b2);

    st_file_free(&w);
    st_file_free(&r);
    CHECK(w.n_tensors == 0 && w.tensors == NULL && r.n_meta == 0,
          "st_file_free leaves an empty collection", "not empty");
    st_file_free(&w); /* twice is fine */
    remove(tpath("rt.safetensors"));
    remove(tpath("rt2.safetensors"));
}

/* ---- on-disk layout ---- */

static void test_layout(void) {
    st_file w;
    size_t n = 0;
    unsigned char *b;
    float a[2] = {1.0f, 2.0f};
    int64_t s2[1] = {2};
    const char *want = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    st_file_init(&w);
    st_file_add(&w, "a", ST_F32, 1, s2, a, ST_COPY, errbuf, sizeof errbuf);
    st_status rc = st_write(tpath("one.safetensors"), &w, errbuf, sizeof errbuf);
    b = read_bytes(tpath("one.safetensors"), &n);
    {
        size_t jl = strlen(want), hl = (jl + 7) / 8 * 8;
        int ok = rc == ST_OK && b && n == 8 + hl + 8;
        uint64_t h = 0;
        for (int i = 7; ok && i >= 0; i--) h = (h << 8) | b[i];
        ok = ok && h == hl && memcmp(b + 8, want, jl) == 0;
        for (size_t i = jl; ok && i < hl; i++) ok = b[8 + i] == ' ';
        ok = ok && memcmp(b + 8 + hl, a, 8) == 0;
        CHECK(ok, "layout: exact bytes of a one-tensor file", "%s", errbuf);
    }
    free(b);
    st_file_free(&w);

    /* mixed dtypes: header a multiple of 8, data packed without holes, each tensor
     * aligned to its element size, header keys sorted by name */
    uint8_t u8[3] = {1, 2, 3};
    uint16_t h16[5] = {1, 2, 3, 4, 5};
    double d64[3] = {1, 2, 3};
    float f32[3] = {1, 2, 3};
    int64_t s3[1] = {3}, s5[1] = {5};
    st_file_init(&w);
    st_file_add(&w, "z_u8", ST_U8, 1, s3, u8, ST_COPY, errbuf, sizeof errbuf);
    st_file_add(&w, "m_f16", ST_F16, 1, s5, h16, ST_COPY, errbuf, sizeof errbuf);
    st_file_add(&w, "b_f64", ST_F64, 1, s3, d64, ST_COPY, errbuf, sizeof errbuf);
    st_file_add(&w, "a_f32", ST_F32, 1, s3, f32, ST_COPY, errbuf, sizeof errbuf);
    st_file_add(&w, "q_u8", ST_U8, 1, s3, u8, ST_COPY, errbuf, sizeof errbuf);
    st_file_set_meta(&w, "k", "v", errbuf, sizeof errbuf);
    rc = st_write(tpath("mix.safetensors"), &w, errbuf, sizeof errbuf);
    b = read_bytes(tpath("mix.safetensors"), &n);
    int ok = rc == ST_OK && b && n >= 8;
    uint64_t hl = 0, total = 0;
    for (int i = 7; ok && i >= 0; i--) hl = (hl << 8) | b[i];
    ok = ok && hl % 8 == 0 && 8 + hl <= n;
    cJSON *root = ok ? cJSON_ParseWithLength((const char *)b + 8, hl) : NULL;
    ok = ok && cJSON_IsObject(root);
    const char *prev = "";
    int entries = 0;
    for (cJSON *e = ok ? root->child : NULL; e && ok; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            ok = entries == 0; /* first */
            continue;
        }
        entries++;
        ok = strcmp(prev, e->string) < 0;
        prev = e->string;
        cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        st_dtype t;
        ok = ok && cJSON_GetArraySize(off) == 2 && cJSON_IsString(dt) &&
             st_dtype_parse(dt->valuestring, &t) == 0;
        if (!ok) break;
        uint64_t lo = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        uint64_t hi = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        ok = lo % st_dtype_size(t) == 0 && hi <= n - 8 - hl;
        total += hi - lo;
    }
    ok = ok && entries == 5 && total == n - 8 - hl;
    CHECK(ok, "layout: sorted keys, aligned, packed data, padded header", "%s", errbuf);
    cJSON_Delete(root);
    free(b);
    st_file_free(&w);

    /* a file as the reference writer produces it reads back */
    float v[4] = {0.5f, -1.0f, 2.0f, 1e-3f};
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,"
                      "2],\"data_offsets\":[0,16]}}    ";
    st_file r;
    make_file(tpath("ref.safetensors"), hdr, v, sizeof v);
    rc = st_read(tpath("ref.safetensors"), &r, errbuf, sizeof errbuf);
    int64_t s22[2] = {2, 2};
    CHECK(rc == ST_OK && r.n_tensors == 1 && tensor_is(&r.tensors[0], ST_F32, 2, s22, v, 16) &&
              strcmp(r.tensors[0].name, "w") == 0 && st_file_get_meta(&r, "format") &&
              strcmp(st_file_get_meta(&r, "format"), "pt") == 0,
          "layout: reads a hand-written standard file", "%s", errbuf);
    st_file_free(&r);

    /* tolerated: whitespace, unknown fields, an empty header, zero-size tensors at any
     * offset (they overlap nothing) */
    const char *hdr2 = " {\n\"w\" : {\"shape\":[4], \"extra\":{\"x\":[1]}, \"dtype\":\"F32\","
                       "\"data_offsets\":[0,16]},\"e\":{\"dtype\":\"F16\",\"shape\":[0,3],"
                       "\"data_offsets\":[4,4]}} \t\r\n";
    make_file(tpath("ws.safetensors"), hdr2, v, sizeof v);
    rc = st_read(tpath("ws.safetensors"), &r, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && r.n_tensors == 2 && st_file_find(&r, "e") &&
              st_file_find(&r, "e")->nbytes == 0,
          "layout: whitespace, unknown fields and zero-size tensors accepted", "%s", errbuf);
    st_file_free(&r);
    make_file(tpath("empty.safetensors"), "{}      ", NULL, 0);
    rc = st_read(tpath("empty.safetensors"), &r, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && r.n_tensors == 0 && r.n_meta == 0, "layout: empty header {} accepted",
          "%s", errbuf);
    st_file_free(&r);
    remove(tpath("one.safetensors"));
    remove(tpath("mix.safetensors"));
    remove(tpath("ref.safetensors"));
    remove(tpath("ws.safetensors"));
    remove(tpath("empty.safetensors"));
}

/* ---- conversion helpers ---- */

static void test_convert(void) {
    st_file w, r;
    st_status rc;
    float vals[6] = {0.5f, -2.0f, 1.25f, 3.0f, -0.0f, 65504.0f};
    float odd[5] = {0.1f, -1e-7f, 3.14159265f, 1e30f, 70000.0f};
    int64_t s23[2] = {2, 3}, s5[1] = {5}, s4[1] = {4}, s2[1] = {2};
    int32_t i32[4] = {-7, 0, 7, 2147483647};
    int64_t i64[2] = {-3, 1234567890123LL};
    uint64_t u64ok[2] = {5, (uint64_t)INT64_MAX}, u64bad[2] = {1, (uint64_t)INT64_MAX + 1};
    float *y = NULL;
    int64_t *z = NULL;

    st_file_init(&w);
    rc = ST_OK;
    rc |= st_file_add_f32_as(&w, "q", ST_F32, 2, s23, vals, errbuf, sizeof errbuf);
    rc |= st_file_add_f32_as(&w, "h", ST_F16, 2, s23, vals, errbuf, sizeof errbuf);
    rc |= st_file_add_f32_as(&w, "b", ST_BF16, 2, s23, vals, errbuf, sizeof errbuf);
    rc |= st_file_add_f32_as(&w, "d", ST_F64, 2, s23, vals, errbuf, sizeof errbuf);
    rc |= st_file_add_f32_as(&w, "ho", ST_F16, 1, s5, odd, errbuf, sizeof errbuf);
    rc |= st_file_add_f32_as(&w, "bo", ST_BF16, 1, s5, odd, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "i32", ST_I32, 1, s4, i32, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "i64", ST_I64, 1, s2, i64, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "u64ok", ST_U64, 1, s2, u64ok, ST_COPY, errbuf, sizeof errbuf);
    rc |= st_file_add(&w, "u64bad", ST_U64, 1, s2, u64bad, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK, "convert: build", "%s", errbuf);
    rc = st_file_add_f32_as(&w, "x", ST_I32, 1, s2, vals, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_DTYPE && one_line(errbuf), "convert: f32 stored as I32 refused", "%s",
          errbuf);
    rc = st_write(tpath("cv.safetensors"), &w, errbuf, sizeof errbuf);
    st_file_free(&w);
    rc |= st_read(tpath("cv.safetensors"), &r, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK, "convert: write and read", "%s", errbuf);

    /* F32/F16/BF16/F64 of exactly representable values come back exact */
    const char *names[4] = {"q", "h", "b", "d"};
    for (int k = 0; k < 4; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "convert: get_f32 from %s exact", names[k]);
        rc = st_file_get_f32(&r, names[k], 2, s23, &y, errbuf, sizeof errbuf);
        int ok = rc == ST_OK && y;
        for (int i = 0; ok && i < 6; i++) {
            float want = vals[i];
            if (names[k][0] == 'b' && i == 5) want = bf16_to_f32(f32_to_bf16(vals[i]));
            ok = memcmp(&y[i], &want, 4) == 0;
        }
        CHECK(ok, nm, "%s", errbuf);
        free(y);
        y = NULL;
    }
    /* stored 16-bit patterns are the dtype.h conversions, and read back through them */
    {
        const st_tensor *th = st_file_find(&r, "ho"), *tb = st_file_find(&r, "bo");
        int ok = th && tb && th->dtype == ST_F16 && tb->dtype == ST_BF16;
        for (int i = 0; ok && i < 5; i++) {
            uint16_t h, bb;
            memcpy(&h, (const char *)th->data + 2 * i, 2);
            memcpy(&bb, (const char *)tb->data + 2 * i, 2);
            ok = h == f32_to_f16(odd[i]) && bb == f32_to_bf16(odd[i]);
        }
        CHECK(ok, "convert: add_f32_as F16/BF16 stores rounded bits", "mismatch");
        rc = st_file_get_f32(&r, "ho", 1, s5, &y, errbuf, sizeof errbuf);
        ok = rc == ST_OK;
        for (int i = 0; ok && i < 5; i++) ok = y[i] == f16_to_f32(f32_to_f16(odd[i]));
        CHECK(ok && y[4] > 3e38f, "convert: F16 back to f32 (70000 -> inf)", "%s", errbuf);
        free(y);
        rc = st_file_get_f32(&r, "bo", 0, NULL, &y, errbuf, sizeof errbuf);
        ok = rc == ST_OK;
        for (int i = 0; ok && i < 5; i++) ok = y[i] == bf16_to_f32(f32_to_bf16(odd[i]));
        CHECK(ok, "convert: BF16 back to f32, shape check skipped", "%s", errbuf);
        free(y);
        y = NULL;
    }
    /* integers */
    rc = st_file_get_i64(&r, "i32", 1, s4, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && z[0] == -7 && z[1] == 0 && z[2] == 7 && z[3] == 2147483647,
          "convert: get_i64 from I32", "%s", errbuf);
    free(z);
    rc = st_file_get_i64(&r, "i64", 1, s2, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && z[0] == -3 && z[1] == 1234567890123LL, "convert: get_i64 from I64",
          "%s", errbuf);
    free(z);
    rc = st_file_get_i64(&r, "u64ok", 1, s2, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && z[1] == INT64_MAX, "convert: get_i64 from U64 in range", "%s", errbuf);
    free(z);
    rc = st_file_get_i64(&r, "u64bad", 1, s2, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_RANGE && z == NULL && one_line(errbuf), "convert: U64 past int64 refused",
          "%s", errbuf);
    /* shape and dtype mismatches, missing names, wildcards */
    int64_t s24[2] = {2, 4}, sw[2] = {-1, 3}, s6[1] = {6};
    rc = st_file_get_f32(&r, "q", 2, s24, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_SHAPE && y == NULL &&
              strcmp(errbuf, "tensor 'q': shape (2,3) but expected (2,4)") == 0,
          "convert: shape mismatch message", "%s", errbuf);
    rc = st_file_get_f32(&r, "q", 1, s6, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_SHAPE && strcmp(errbuf, "tensor 'q': shape (2,3) but expected (6)") == 0,
          "convert: rank mismatch message", "%s", errbuf);
    rc = st_file_get_f32(&r, "q", 2, sw, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && y && y[0] == 0.5f, "convert: -1 matches any dim", "%s", errbuf);
    free(y);
    y = NULL;
    rc = st_file_get_f32(&r, "i32", 1, s4, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_DTYPE && y == NULL && strstr(errbuf, "'i32'") && strstr(errbuf, "I32"),
          "convert: get_f32 of I32 refused", "%s", errbuf);
    rc = st_file_get_i64(&r, "q", 2, s23, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_DTYPE && strstr(errbuf, "'q'") && strstr(errbuf, "F32"),
          "convert: get_i64 of F32 refused", "%s", errbuf);
    rc = st_file_get_f32(&r, "nope", 0, NULL, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_NOT_FOUND && strstr(errbuf, "'nope'"), "convert: missing tensor", "%s",
          errbuf);
    st_file_free(&r);

    /* scalar and empty tensors convert to non-NULL arrays */
    float sc = 7.5f;
    int64_t s0[2] = {0, 4};
    st_file_init(&w);
    st_file_add(&w, "s", ST_F32, 0, NULL, &sc, ST_BORROW, errbuf, sizeof errbuf);
    st_file_add(&w, "e", ST_I32, 2, s0, NULL, ST_COPY, errbuf, sizeof errbuf);
    rc = st_file_get_f32(&w, "s", 0, s0, &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && y && y[0] == 7.5f, "convert: 0-d scalar, expected ()", "%s", errbuf);
    free(y);
    rc = st_file_get_i64(&w, "e", 2, s0, &z, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && z != NULL, "convert: (0,4) gives a non-NULL empty array", "%s", errbuf);
    free(z);
    /* a hand-corrupted tensor is caught, not read past */
    w.tensors[0].nbytes = 400;
    rc = st_tensor_to_f32(&w.tensors[0], &y, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && y == NULL && one_line(errbuf),
          "convert: inconsistent nbytes refused", "%s", errbuf);
    w.tensors[0].nbytes = 4;
    st_file_free(&w);
    remove(tpath("cv.safetensors"));
}

/* ---- building errors ---- */

static void test_add_errors(void) {
    st_file w;
    float v[4] = {0};
    int64_t s[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-2}, big[3] = {1LL << 40, 1LL << 40, 4};
    st_status rc;

    st_file_init(&w);
    rc = st_file_add(&w, "a", ST_F32, 1, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK, "add: ok", "%s", errbuf);
    rc = st_file_add(&w, "a", ST_F32, 1, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && strstr(errbuf, "'a'"), "add: duplicate name refused", "%s", errbuf);
    rc = st_file_add(&w, "__metadata__", ST_F32, 1, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: reserved name refused", "%s", errbuf);
    rc = st_file_add(&w, "b", ST_F32, 9, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: 9 dims refused", "%s", errbuf);
    rc = st_file_add(&w, "b", ST_F32, 1, neg, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && strstr(errbuf, "-2"), "add: negative dim refused", "%s", errbuf);
    rc = st_file_add(&w, "b", ST_F32, 3, big, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: overflowing shape refused", "%s", errbuf);
    rc = st_file_add(&w, "b", ST_F32, 1, s, NULL, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: NULL data refused", "%s", errbuf);
    rc = st_file_add(&w, "b", (st_dtype)99, 1, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: bad dtype refused", "%s", errbuf);
    rc = st_file_add(&w, "b\xff", ST_F32, 1, s, v, ST_COPY, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: non-UTF-8 name refused", "%s", errbuf);
    rc = st_file_set_meta(&w, "k", NULL, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && one_line(errbuf), "add: NULL metadata value refused", "%s", errbuf);
    CHECK(w.n_tensors == 1 && w.n_meta == 0, "add: failures leave the collection unchanged",
          "%zu tensors", w.n_tensors);
    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && st_dtype_size(ST_BF16) == 2 &&
              st_dtype_size(ST_I64) == 8 && st_dtype_size((st_dtype)-1) == 0 &&
              strcmp(st_dtype_name(ST_NDTYPES), "?") == 0 && st_dtype_parse("bf16", NULL) != 0,
          "dtype helpers", "mismatch");
    st_file_free(&w);
}

/* ---- malformed files ---- */

static void test_malformed(void) {
    const char *p = tpath("bad.safetensors");
    char hdr[512];
    unsigned char raw[16] = {0};

    write_bytes(p, raw, 0);
    expect_reject("reject: empty file", p, ST_ERR_FORMAT);
    write_bytes(p, raw, 7);
    expect_reject("reject: 7-byte file", p, ST_ERR_FORMAT);
    raw[0] = 0; /* header length 0 */
    write_bytes(p, raw, 8);
    expect_reject("reject: header length 0", p, ST_ERR_FORMAT);
    make_file_len(p, 1000, "{}", 2, raw, 8);
    expect_reject("reject: header length past EOF", p, ST_ERR_FORMAT);
    make_file_len(p, UINT64_MAX, "{}", 2, NULL, 0);
    expect_reject("reject: header length 2^64-1", p, ST_ERR_FORMAT);
    make_file_len(p, 11, "{}", 2, NULL, 0);
    expect_reject("reject: header length one past EOF", p, ST_ERR_FORMAT);
    expect_reject("reject: missing file", tpath("does-not-exist"), ST_ERR_IO);
    expect_reject("reject: a directory", tdir, ST_ERR_IO);
    /* header length over the cap in a (sparse) file big enough to hold it */
    {
        uint64_t big = (uint64_t)ST_MAX_HEADER + 1;
        make_file_len(p, big, "{}", 2, NULL, 0);
        int ok = truncate(p, (off_t)(big + 16)) == 0;
        if (ok)
            expect_reject("reject: header length over the 100 MB cap", p, ST_ERR_FORMAT);
        else
            CHECK(0, "reject: header length over the 100 MB cap", "truncate failed");
        if (truncate(p, 0) != 0) remove(p);
    }

    reject_header("reject: invalid JSON", "{\"a\":", 0, ST_ERR_FORMAT);
    reject_header("reject: invalid JSON (unterminated string)", "{\"a", 0, ST_ERR_FORMAT);
    reject_header("reject: data after the JSON value", "{} x", 0, ST_ERR_FORMAT);
    reject_header("reject: two JSON values", "{}{}", 0, ST_ERR_FORMAT);
    reject_header("reject: header is an array", "[]", 0, ST_ERR_FORMAT);
    reject_header("reject: header is a string", "\"abc\"", 0, ST_ERR_FORMAT);
    reject_header("reject: header is a number", "42", 0, ST_ERR_FORMAT);
    reject_header("reject: header is null", "null", 0, ST_ERR_FORMAT);
    reject_header("reject: header is blank", "        ", 0, ST_ERR_FORMAT);
    {
        char nul[] = "{}\0     ";
        make_file_len(p, 8, nul, 8, NULL, 0);
        expect_reject("reject: NUL byte in the header", p, ST_ERR_FORMAT);
        char bad8[] = "{\"\xc0\xaf\":{}}";
        make_file(p, bad8, NULL, 0);
        expect_reject("reject: invalid UTF-8 in the header", p, ST_ERR_FORMAT);
    }
    {
        /* 5000 nested arrays: past cJSON's nesting limit, must not blow the stack */
        size_t depth = 5000;
        char *deep = malloc(2 * depth + 8);
        if (deep) {
            strcpy(deep, "{\"a\":");
            memset(deep + 5, '[', depth);
            memset(deep + 5 + depth, ']', depth);
            strcpy(deep + 5 + 2 * depth, "}");
            make_file(p, deep, NULL, 0);
            expect_reject("reject: deeply nested JSON", p, ST_ERR_FORMAT);
            free(deep);
        }
    }

#define ENT(dt, shape, offs) "{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}"
    reject_header("reject: entry not an object", "{\"a\":5}", 0, ST_ERR_FORMAT);
    reject_header("reject: entry an array", "{\"a\":[\"F32\",[1],[0,4]]}", 4, ST_ERR_FORMAT);
    reject_header("reject: missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
                  4, ST_ERR_FORMAT);
    reject_header("reject: missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: field given twice",
                  "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],"
                  "\"data_offsets\":[0,4]}}",
                  4, ST_ERR_FORMAT);
    reject_header("reject: unknown dtype", "{\"a\":" ENT("\"Q4\"", "[1]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: lower-case dtype", "{\"a\":" ENT("\"f32\"", "[1]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: dtype not a string", "{\"a\":" ENT("4", "[1]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: negative shape", "{\"a\":" ENT("\"F32\"", "[-1]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: non-integer shape", "{\"a\":" ENT("\"F32\"", "[1.5]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: string in shape", "{\"a\":" ENT("\"F32\"", "[\"1\"]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: shape not an array", "{\"a\":" ENT("\"F32\"", "1", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: shape with 9 dims",
                  "{\"a\":" ENT("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, ST_ERR_FORMAT);
    reject_header("reject: huge shape dim", "{\"a\":" ENT("\"F32\"", "[1e300]", "[0,4]") "}", 4,
                  ST_ERR_FORMAT);
    reject_header("reject: shape product overflows",
                  "{\"a\":" ENT("\"F32\"", "[4294967296,4294967296,4294967296]", "[0,4]") "}",
                  4, ST_ERR_FORMAT);
    reject_header("reject: data_offsets past the data section",
                  "{\"a\":" ENT("\"F32\"", "[4]", "[0,16]") "}", 8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets begin > end", "{\"a\":" ENT("\"F32\"", "[1]", "[8,4]") "}",
                  8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets negative", "{\"a\":" ENT("\"F32\"", "[1]", "[-4,0]") "}",
                  8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets non-integer",
                  "{\"a\":" ENT("\"F32\"", "[1]", "[0.5,4.5]") "}", 8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets one element", "{\"a\":" ENT("\"F32\"", "[1]", "[4]") "}",
                  8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets three elements",
                  "{\"a\":" ENT("\"F32\"", "[1]", "[0,4,8]") "}", 8, ST_ERR_FORMAT);
    reject_header("reject: data_offsets not an array",
                  "{\"a\":" ENT("\"F32\"", "[1]", "\"0-4\"") "}", 8, ST_ERR_FORMAT);
    reject_header("reject: byte length not matching shape",
                  "{\"a\":" ENT("\"F32\"", "[3]", "[0,8]") "}", 12, ST_ERR_FORMAT);
    reject_header("reject: byte length not matching dtype",
                  "{\"a\":" ENT("\"F16\"", "[2,2]", "[0,16]") "}", 16, ST_ERR_FORMAT);
    reject_header("reject: scalar with no bytes", "{\"a\":" ENT("\"F32\"", "[]", "[0,0]") "}", 8,
                  ST_ERR_FORMAT);
    reject_header("reject: overlapping tensors",
                  "{\"a\":" ENT("\"F32\"", "[2]", "[0,8]") ",\"b\":" ENT("\"F32\"", "[2]",
                                                                          "[4,12]") "}",
                  12, ST_ERR_FORMAT);
    reject_header("reject: identical ranges",
                  "{\"a\":" ENT("\"F32\"", "[2]", "[0,8]") ",\"b\":" ENT("\"U8\"", "[8]",
                                                                          "[0,8]") "}",
                  12, ST_ERR_FORMAT);
    reject_header("reject: range nested in an earlier one",
                  "{\"c\":" ENT("\"U8\"", "[2]", "[10,12]") ",\"a\":" ENT("\"U8\"", "[16]",
                                                                           "[0,16]") ",\"b\":"
                      ENT("\"U8\"", "[1]", "[2,3]") "}",
                  16, ST_ERR_FORMAT);
    reject_header("reject: duplicate tensor names",
                  "{\"a\":" ENT("\"F32\"", "[1]", "[0,4]") ",\"a\":" ENT("\"F32\"", "[1]",
                                                                          "[4,8]") "}",
                  8, ST_ERR_FORMAT);
    CHECK(strstr(errbuf, "'a'") != NULL, "reject: duplicate message names the tensor", "%s",
          errbuf);
    reject_header("reject: metadata with a number value",
                  "{\"__metadata__\":{\"k\":\"v\",\"n\":1}}", 0, ST_ERR_FORMAT);
    CHECK(strstr(errbuf, "'n'") != NULL, "reject: metadata message names the key", "%s", errbuf);
    reject_header("reject: metadata with a null value", "{\"__metadata__\":{\"k\":null}}", 0,
                  ST_ERR_FORMAT);
    reject_header("reject: metadata with an object value", "{\"__metadata__\":{\"k\":{}}}", 0,
                  ST_ERR_FORMAT);
    reject_header("reject: metadata not an object", "{\"__metadata__\":\"x\"}", 0, ST_ERR_FORMAT);
    reject_header("reject: metadata given twice",
                  "{\"__metadata__\":{},\"__metadata__\":{}}", 0, ST_ERR_FORMAT);
    reject_header("reject: metadata key given twice",
                  "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, ST_ERR_FORMAT);
    reject_header("reject: newline in a name stays one line",
                  "{\"a\\nb\":" ENT("\"Q4\"", "[1]", "[0,4]") "}", 4, ST_ERR_FORMAT);
    snprintf(hdr, sizeof hdr, "%s", "{\"x\":" ENT("\"F32\"", "[2]", "[0,8]") "}");
    reject_header("reject: data section shorter than the offsets", hdr, 4, ST_ERR_FORMAT);
#undef ENT
    remove(p);
}

/* Every truncation of a valid file fails cleanly; flipping header bytes never crashes. */
static void test_mutations(void) {
    st_file w, r;
    float v[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[3] = {1, 2, 3};
    int64_t s23[2] = {2, 3}, s3[1] = {3};
    unsigned char *b;
    size_t n = 0;
    const char *src = tpath("good.safetensors"), *p = tpath("mut.safetensors");
    int all_fail = 1, no_crash = 1, accepted = 0;

    st_file_init(&w);
    st_file_add(&w, "w", ST_F32, 2, s23, v, ST_COPY, errbuf, sizeof errbuf);
    st_file_add(&w, "ids", ST_I32, 1, s3, ids, ST_COPY, errbuf, sizeof errbuf);
    st_file_set_meta(&w, "k", "v", errbuf, sizeof errbuf);
    st_write(src, &w, errbuf, sizeof errbuf);
    st_file_free(&w);
    b = read_bytes(src, &n);
    if (!b) {
        CHECK(0, "mutations: setup", "cannot read back %s", src);
        return;
    }
    for (size_t len = 0; len < n; len++) {
        write_bytes(p, b, len);
        errbuf[0] = '\0';
        st_status rc = st_read(p, &r, errbuf, sizeof errbuf);
        if (rc == ST_OK || !one_line(errbuf)) {
            all_fail = 0;
            printf("# truncation to %zu: rc %d '%s'\n", len, (int)rc, errbuf);
        }
        st_file_free(&r);
    }
    CHECK(all_fail, "mutations: every truncation rejected", "see above");

    static const unsigned char flips[] = {0x00, 0x01, 0x20, 0x22, 0x2c, 0x2d, 0x30, 0x39,
                                          0x5b, 0x5d, 0x7b, 0x7d, 0x80, 0xff};
    for (size_t i = 0; i < n && i < 8 + 256; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            unsigned char save = b[i];
            if (save == flips[k]) continue;
            b[i] = flips[k];
            write_bytes(p, b, n);
            errbuf[0] = '\0';
            st_status rc = st_read(p, &r, errbuf, sizeof errbuf);
            if (rc == ST_OK) {
                accepted++;
                /* whatever was accepted must be internally consistent */
                for (size_t t = 0; t < r.n_tensors; t++) {
                    const st_tensor *x = &r.tensors[t];
                    uint64_t need = st_dtype_size(x->dtype);
                    for (int d = 0; d < x->ndim; d++) need *= (uint64_t)x->shape[d];
                    if (need != x->nbytes || x->nbytes > n) no_crash = 0;
                }
            } else if (!one_line(errbuf)) {
                no_crash = 0;
            }
            st_file_free(&r);
            b[i] = save;
        }
    }
    CHECK(no_crash, "mutations: byte flips in the header give errors or consistent files",
          "inconsistent result");
    printf("# mutations: %d byte flips still parsed\n", accepted);
    free(b);
    remove(src);
    remove(p);
}

/* ---- atomic writes ---- */

static void test_write_failures(void) {
    st_file w, r;
    float v[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    st_status rc;
    char path[600];

    st_file_init(&w);
    st_file_add(&w, "a", ST_F32, 1, s4, v, ST_COPY, errbuf, sizeof errbuf);

    /* into a directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", tdir);
    rc = st_write(path, &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_IO && one_line(errbuf) && !file_exists(path) &&
              count_prefix(tdir, "no") == 0,
          "write: missing directory fails cleanly", "rc %d: %s", (int)rc, errbuf);
    /* the message names the caller's path, not the temporary file next to it */
    {
        char want[1200];
        snprintf(want, sizeof want, "cannot write '%s': No such file or directory", path);
        CHECK(strstr(errbuf, want) && !strstr(errbuf, ".tmp."), "write: missing directory names the target path",
              "'%s'", errbuf);
    }

    /* the target is a directory: the rename fails after the temp file was written */
    const char *dir_target = tpath("target.safetensors");
    mkdir(dir_target, 0755);
    rc = st_write(dir_target, &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_IO && strstr(errbuf, "rename") &&
              count_prefix(tdir, "target.safetensors.tmp") == 0,
          "write: failed rename removes the temporary file", "rc %d: %s (%d left)", (int)rc,
          errbuf, count_prefix(tdir, "target.safetensors.tmp"));
    rmdir(dir_target);

    /* an invalid entry: nothing is created */
    const char *bad = tpath("invalid.safetensors");
    w.tensors[0].nbytes = 12;
    rc = st_write(bad, &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && strstr(errbuf, "'a'") && !file_exists(bad) &&
              count_prefix(tdir, "invalid") == 0,
          "write: invalid nbytes leaves no file", "rc %d: %s", (int)rc, errbuf);
    w.tensors[0].nbytes = 16;
    w.tensors[0].dtype = (st_dtype)42;
    rc = st_write(bad, &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && !file_exists(bad), "write: invalid dtype leaves no file", "%s",
          errbuf);
    w.tensors[0].dtype = ST_F32;

    /* a good write over an existing file replaces it; a failed one leaves it intact */
    const char *tgt = tpath("keep.safetensors");
    write_bytes(tgt, "old", 3);
    rc = st_write(tgt, &w, errbuf, sizeof errbuf);
    rc |= st_read(tgt, &r, errbuf, sizeof errbuf);
    CHECK(rc == ST_OK && r.n_tensors == 1 && memcmp(r.tensors[0].data, v, 16) == 0,
          "write: replaces an existing file", "%s", errbuf);
    st_file_free(&r);
    {
        float v2[1] = {9};
        int64_t s1[1] = {1};
        size_t n0 = 0, n1 = 0;
        unsigned char *before = read_bytes(tgt, &n0);
        st_file_add(&w, "b", ST_F32, 1, s1, v2, ST_COPY, errbuf, sizeof errbuf);
        free(w.tensors[1].name);
        w.tensors[1].name = NULL; /* invalid entry */
        rc = st_write(tgt, &w, errbuf, sizeof errbuf);
        unsigned char *after = read_bytes(tgt, &n1);
        CHECK(rc == ST_ERR_ARG && before && after && n0 == n1 && memcmp(before, after, n0) == 0 &&
                  count_prefix(tdir, "keep.safetensors.tmp") == 0,
              "write: failed write leaves the old file intact", "rc %d: %s", (int)rc, errbuf);
        free(before);
        free(after);
        w.tensors[1].name = malloc(2);
        strcpy(w.tensors[1].name, "b");
    }
    /* a duplicate introduced behind the API's back */
    strcpy(w.tensors[1].name, "a");
    rc = st_write(tpath("dup.safetensors"), &w, errbuf, sizeof errbuf);
    CHECK(rc == ST_ERR_ARG && strstr(errbuf, "'a'") && !file_exists(tpath("dup.safetensors")),
          "write: duplicate names refused", "%s", errbuf);
    remove(tgt);
    st_file_free(&w);
    CHECK(count_prefix(tdir, "") == 2, "write: nothing else left in the directory", "%d entries",
          count_prefix(tdir, ""));
}

int main(void) {
    snprintf(tdir, sizeof tdir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(tdir)) {
        CHECK(0, "mkdtemp", "cannot create a temporary directory");
        return check_exit();
    }
    test_roundtrip();
    test_layout();
    test_convert();
    test_add_errors();
    test_malformed();
    test_mutations();
    test_write_failures();

    /* clean up whatever is left */
    DIR *d = opendir(tdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        remove(tpath(e->d_name));
    }
    if (d) closedir(d);
    CHECK(rmdir(tdir) == 0, "temporary directory removed", "%s", tdir);
    return check_exit();
}
