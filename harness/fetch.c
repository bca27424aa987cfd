/*
 * fetch.c: `dmabench fetch URL|NAME` and `dmabench upload REPORT --url URL`, over
 * libcurl.
 *
 * fetch downloads into the cache ($XDG_CACHE_HOME/dmabench, or ~/.cache/dmabench)
 * or to --out. The bytes go to FILE.part, which is locked while a fetch writes it,
 * resumed with a Range request after an interruption, and renamed onto FILE only
 * when the transfer is complete and its SHA-256 matches; a file with a wrong
 * checksum is deleted, so the cache never holds a corrupt file. Transient failures
 * are retried with exponential backoff; connect and low-speed timeouts keep a dead
 * server from hanging the run. A few datasets are known by name.
 *
 * upload POSTs a report as application/json, retrying transient failures, and
 * says which HTTP status the server answered when it refuses.
 */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "records.h"
#include "report.h"
#include "sha256.h"
#include "version.h"

/* ---- the datasets known by name ---- */

typedef struct {
    const char *name;
    const char *urls[2]; /* tried in order */
    const char *file;    /* name in the cache */
    const char *sha256;  /* NULL: not published; fetch prints the digest so it can be pinned */
    long long bytes;     /* -1 when unknown */
    const char *about;
} dataset;

static const dataset datasets[] = {
    {"wikitext-2-raw",
     {"https://wikitext.smerity.com/wikitext-2-raw-v1.zip",
      "https://huggingface.co/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip"},
     "wikitext-2-raw-v1.zip",
     "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
     4721645,
     "WikiText-2, raw characters (Merity et al. 2016; CC BY-SA 3.0)"},
    {"wikitext-103-raw",
     {"https://wikitext.smerity.com/wikitext-103-raw-v1.zip", NULL},
     "wikitext-103-raw-v1.zip",
     "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794",
     191984949,
     "WikiText-103, raw characters (CC BY-SA 3.0)"},
    {"wikitext-2",
     {"https://wikitext.smerity.com/wikitext-2-v1.zip", NULL},
     "wikitext-2-v1.zip",
     "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
     -1,
     "WikiText-2, tokenized with <unk> (CC BY-SA 3.0)"},
    {"tinyshakespeare",
     {"https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt", NULL},
     "tinyshakespeare.txt",
     NULL,
     -1,
     "Tiny Shakespeare (char-rnn); no published checksum"},
};
#define NDATASETS (int)(sizeof datasets / sizeof *datasets)

/* ---- options and helpers ---- */

void net_opts_default(net_opts *o) {
    memset(o, 0, sizeof *o);
    o->retries = 5;
    o->backoff_ms = 1000;
    o->connect_timeout_s = 30;
    o->low_speed_time_s = 60;
    o->low_speed_bps = 1024;
    o->timeout_s = 120;
}

static int curl_ready(void) {
    static int done, ok;
    if (!done) {
        ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
        done = 1;
    }
    return ok;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void fmt_size(char *buf, size_t n, double b) {
    if (b >= 1073741824.0) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1048576.0) snprintf(buf, n, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024.0) snprintf(buf, n, "%.1f KiB", b / 1024.0);
    else snprintf(buf, n, "%.0f B", b);
}

/* Retryable HTTP statuses: the server may answer differently in a moment. */
static int http_transient(long code) { return code == 408 || code == 425 || code == 429 || code >= 500; }

/* Retryable curl errors: the network, not the request, failed. */
static int curl_transient(CURLcode c) {
    switch (c) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_LOGIN_DENIED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN: return 0;
    default: return 1;
    }
}

static long backoff_of(const net_opts *o, int attempt, long retry_after_s) {
    double ms = (double)o->backoff_ms * pow(2.0, attempt);
    if (ms > 60000) ms = 60000;
    if (retry_after_s > 0 && retry_after_s * 1000.0 > ms) ms = retry_after_s > 60 ? 60000 : retry_after_s * 1000.0;
    return (long)ms;
}

static void set_common(CURL *h, const char *url, const net_opts *o) {
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bps);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dmabench/" DMABENCH_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

/* ---- download ---- */

typedef struct {
    int fd;
    long long off;        /* bytes of the .part before this transfer */
    int decided;          /* the first body byte has been seen */
    int discard;          /* an error page: keep a little of it for the message */
    char errbody[256];
    size_t nerrbody;
    int range_bad;        /* a 206 for another range than the one asked for */
    int write_failed;
    int write_errno;
    long long cr_start, cr_total; /* Content-Range of the current response */
    long retry_after;
    long long written;    /* body bytes written by this transfer */
    /* progress */
    const net_opts *o;
    double t0, last_draw;
    int drawn;
} dl_ctx;

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    dl_ctx *c = arg;
    size_t len = size * n;
    char line[512];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = 0;
    if (!strncmp(line, "HTTP/", 5)) { /* a new response (after a redirect, or 100): decide again */
        c->cr_start = c->cr_total = -1;
        c->retry_after = 0;
        c->decided = c->discard = 0;
        c->nerrbody = 0;
        c->errbody[0] = 0;
    } else if (!strncasecmp(line, "Content-Range:", 14)) {
        const char *q = line + 14;
        while (*q == ' ') q++;
        long long s = -1, e = -1, t = -1;
        if (sscanf(q, "bytes %lld-%lld/%lld", &s, &e, &t) >= 2) c->cr_start = s, c->cr_total = t;
        else if (sscanf(q, "bytes */%lld", &t) == 1) c->cr_start = -1, c->cr_total = t;
    } else if (!strncasecmp(line, "Retry-After:", 12)) {
        c->retry_after = strtol(line + 12, NULL, 10);
    }
    return len;
}

static void draw_progress(dl_ctx *c, double now_b, double total, int final) {
    double t = now_s();
    if (!final && t - c->last_draw < 0.1) return;
    c->last_draw = t;
    char a[32], b[32], r[32];
    fmt_size(a, sizeof a, now_b);
    double rate = (now_b - (double)c->off) / fmax(t - c->t0, 1e-3);
    fmt_size(r, sizeof r, rate);
    if (total > 0) {
        int w = 30, fill = (int)(w * fmin(1.0, now_b / total));
        char bar[40];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[w] = 0;
        fmt_size(b, sizeof b, total);
        fprintf(stderr, "\r[%s] %3.0f%%  %s / %s  %s/s   ", bar, 100 * fmin(1.0, now_b / total), a, b, r);
    } else {
        fprintf(stderr, "\r%s  %s/s   ", a, r);
    }
    if (final) fprintf(stderr, "\n");
    c->drawn = 1;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ultotal, (void)ulnow;
    dl_ctx *c = arg;
    if (c->o->progress && c->decided && !c->discard)
        draw_progress(c, (double)(c->off + dlnow), dltotal > 0 ? (double)(c->off + dltotal) : 0, 0);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
    dl_ctx *c = arg;
    size_t len = size * n;
    if (c->discard) {
        size_t k = sizeof c->errbody - 1 - c->nerrbody;
        if (k > len) k = len;
        memcpy(c->errbody + c->nerrbody, p, k);
        c->nerrbody += k;
        c->errbody[c->nerrbody] = 0;
        return len;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(c->fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            c->write_failed = 1;
            c->write_errno = errno;
            return 0;
        }
        off += (size_t)w;
    }
    c->written += (long long)len;
    return len;
}

typedef struct {
    CURL *h;
    dl_ctx *c;
    int is_file;
} body_gate;

/* Decides, at the first body byte, what the response is: the asked range (append),
 * the whole file (start over), or an error page (discard). */
static size_t on_body_gate(char *p, size_t size, size_t n, void *arg) {
    body_gate *g = arg;
    dl_ctx *c = g->c;
    if (!c->decided) {
        long code = 0;
        curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &code);
        c->decided = 1;
        if (g->is_file) {
            /* file:// always starts from byte 0 (the .part was emptied) */
        } else if (code == 206) {
            if (c->cr_start != c->off) {
                c->range_bad = 1;
                return 0;
            }
            if (lseek(c->fd, c->off, SEEK_SET) < 0) {
                c->write_failed = 1;
                c->write_errno = errno;
                return 0;
            }
        } else if (code >= 200 && code < 300) {
            /* the server sent the whole file: start the .part over */
            if (ftruncate(c->fd, 0) != 0 || lseek(c->fd, 0, SEEK_SET) < 0) {
                c->write_failed = 1;
                c->write_errno = errno;
                return 0;
            }
            c->off = 0;
        } else {
            c->discard = 1;
        }
    }
    return on_body(p, size, n, c);
}

static long long fd_size(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
}

/* One transfer. Returns 0 complete, 1 retry (transient), -1 give up; err says why. */
static int fetch_once(const char *url, int fd, const net_opts *o, fetch_result *r, long *retry_after, char *err,
                      size_t elen) {
    int is_file = !strncasecmp(url, "file:", 5);
    dl_ctx c;
    memset(&c, 0, sizeof c);
    c.fd = fd;
    c.o = o;
    c.cr_start = c.cr_total = -1;
    if (is_file && ftruncate(fd, 0) != 0) {
        snprintf(err, elen, "cannot empty the partial file: %s", strerror(errno));
        return -1;
    }
    c.off = fd_size(fd);
    if (c.off < 0) {
        snprintf(err, elen, "cannot stat the partial file: %s", strerror(errno));
        return -1;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, elen, "cannot start libcurl");
        return -1;
    }
    body_gate g = {h, &c, is_file};
    set_common(h, url, o);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_gate);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &c);
    char range[48];
    if (c.off > 0) {
        snprintf(range, sizeof range, "%lld-", c.off);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    long long off0 = c.off;
    c.t0 = now_s();
    CURLcode res = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    r->http_status = code;
    r->attempts++;
    *retry_after = c.retry_after;
    if (c.drawn) fprintf(stderr, "\n");
    if (c.off > 0 && c.decided && !c.discard && code == 206) r->resumed = 1;

    if (c.range_bad) {
        if (ftruncate(fd, 0) != 0) {
            snprintf(err, elen, "cannot empty the partial file: %s", strerror(errno));
            return -1;
        }
        snprintf(err, elen, "the server answered another byte range than the one asked for; starting over");
        return 1;
    }
    if (c.write_failed) {
        snprintf(err, elen, "cannot write the download: %s", strerror(c.write_errno));
        return -1;
    }
    if (code == 416 && off0 > 0) {
        /* nothing left to send: the .part is complete when its size is the whole file */
        if (c.cr_total == off0) return 0;
        if (ftruncate(fd, 0) != 0) {
            snprintf(err, elen, "cannot empty the partial file: %s", strerror(errno));
            return -1;
        }
        snprintf(err, elen, "HTTP 416: the partial file does not fit the remote one; starting over");
        return 1;
    }
    if (code >= 300 || (code > 0 && code < 200)) {
        char body[160] = "";
        if (c.nerrbody) {
            size_t k = 0;
            for (size_t i = 0; i < c.nerrbody && k + 1 < sizeof body; i++)
                body[k++] = c.errbody[i] == '\n' || c.errbody[i] == '\r' ? ' ' : c.errbody[i];
            body[k] = 0;
            while (k > 0 && body[k - 1] == ' ') body[--k] = 0;
        }
        snprintf(err, elen, "HTTP %ld from %s%s%s", code, url, body[0] ? ": " : "", body);
        return http_transient(code) ? 1 : -1;
    }
    if (res != CURLE_OK) {
        snprintf(err, elen, "%s (%s)", curl_easy_strerror(res), url);
        return curl_transient(res) ? 1 : -1;
    }
    return 0;
}

/* A file:// URL must name a regular file: libcurl would "download" a folder as an
 * empty file. 0 when url is not file:// or names a regular file; -1 with a reason. */
static int check_file_url(const char *url, char *err, size_t elen) {
    if (strncasecmp(url, "file://", 7)) return 0;
    const char *p = url + 7;
    if (*p != '/') p = strchr(p, '/'); /* file://host/path: the host part goes */
    if (!p) {
        snprintf(err, elen, "%s: no path in the file:// URL", url);
        return -1;
    }
    char path[PATH_MAX];
    size_t k = 0;
    for (; *p && *p != '?' && *p != '#' && k + 1 < sizeof path; p++) {
        int hi, lo;
        if (*p == '%' && sscanf(p + 1, "%1x%1x", &hi, &lo) == 2) {
            path[k++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            path[k++] = *p;
        }
    }
    path[k] = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, elen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, elen, "%s is %s, not a regular file: a file:// URL must name a file", path,
                 S_ISDIR(st.st_mode) ? "a folder" : "a special file");
        return -1;
    }
    return 0;
}

int fetch_url(const char *url, const char *path, const char *sha256, const net_opts *o, fetch_result *r, char *err,
              size_t elen) {
    memset(r, 0, sizeof *r);
    if (!curl_ready()) {
        snprintf(err, elen, "cannot initialise libcurl");
        return -1;
    }
    if (check_file_url(url, err, elen) != 0) return -1;
    size_t pl = strlen(path) + 8;
    char *part = malloc(pl);
    if (!part) {
        snprintf(err, elen, "out of memory");
        return -1;
    }
    snprintf(part, pl, "%s.part", path);
    int fd = open(part, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        snprintf(err, elen, "cannot create %s: %s", part, strerror(errno));
        free(part);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, elen, "%s is being written by another dmabench fetch", part);
        close(fd);
        free(part);
        return -1;
    }
    int rc = -1, fresh_retry = 0;
    char why[512] = "";
    for (;;) {
        int attempt = 0, st = -1;
        for (;;) {
            long ra = 0;
            long long before = fd_size(fd);
            st = fetch_once(url, fd, o, r, &ra, why, sizeof why);
            if (st == 0 || st < 0 || attempt >= o->retries) break;
            long wait = backoff_of(o, attempt, ra);
            long long after = fd_size(fd);
            if (!o->quiet)
                fprintf(stderr, "fetch: attempt %d of %d failed: %s; %sretrying in %.1fs\n", attempt + 1,
                        o->retries + 1, why, after > before ? "kept what arrived, " : "", wait / 1000.0);
            sleep_ms(wait);
            attempt++;
        }
        if (st != 0) {
            snprintf(err, elen, "%s%s", why, attempt ? " (after retries)" : "");
            goto out;
        }
        if (fsync(fd) != 0) {
            snprintf(err, elen, "cannot write %s: %s", part, strerror(errno));
            goto out;
        }
        if (sha256_file(part, r->sha256) != 0) {
            snprintf(err, elen, "cannot read %s back: %s", part, strerror(errno));
            goto out;
        }
        r->bytes = (double)fd_size(fd);
        if (!sha256 || !strcasecmp(sha256, r->sha256)) break;
        /* a resumed file may have joined two versions of the remote file: try once from scratch */
        if (r->resumed && !fresh_retry) {
            if (!o->quiet) fprintf(stderr, "fetch: checksum mismatch after a resumed transfer; downloading again from the start\n");
            if (ftruncate(fd, 0) != 0) {
                snprintf(err, elen, "cannot empty %s: %s", part, strerror(errno));
                goto out;
            }
            fresh_retry = 1;
            r->resumed = 0;
            continue;
        }
        unlink(part);
        snprintf(err, elen, "checksum mismatch for %s: expected sha256 %s, got %s; the download was deleted", url,
                 sha256, r->sha256);
        goto out;
    }
    if (rename(part, path) != 0) {
        snprintf(err, elen, "cannot move the download onto %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    /* an empty .part is no help to the next try */
    if (rc != 0 && fd_size(fd) == 0) unlink(part);
    close(fd);
    free(part);
    return rc;
}

/* ---- upload ---- */

typedef struct {
    char buf[512];
    size_t n;
} small_body;

static size_t keep_body(char *p, size_t size, size_t n, void *arg) {
    small_body *b = arg;
    size_t len = size * n, k = sizeof b->buf - 1 - b->n;
    if (k > len) k = len;
    memcpy(b->buf + b->n, p, k);
    b->n += k;
    b->buf[b->n] = 0;
    return len;
}

static size_t ra_header(char *p, size_t size, size_t n, void *arg) {
    size_t len = size * n;
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) *(long *)arg = strtol(p + 12, NULL, 10);
    return len;
}

int http_post_json(const char *url, const char *body, size_t len, const char *const *headers, int nheaders,
                   const net_opts *o, long *status, char *err, size_t elen) {
    *status = 0;
    if (!curl_ready()) {
        snprintf(err, elen, "cannot initialise libcurl");
        return -1;
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    for (int i = 0; i < nheaders; i++) hl = curl_slist_append(hl, headers[i]);
    int rc = -1;
    for (int attempt = 0;; attempt++) {
        CURL *h = curl_easy_init();
        if (!h) {
            snprintf(err, elen, "cannot start libcurl");
            break;
        }
        small_body sb = {{0}, 0};
        long ra = 0, code = 0;
        set_common(h, url, o);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout_s);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sb);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, ra_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &ra);
        CURLcode res = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
        *status = code;
        int transient;
        if (res != CURLE_OK) {
            snprintf(err, elen, "%s (%s)", curl_easy_strerror(res), url);
            transient = curl_transient(res);
        } else if (code >= 200 && code < 300) {
            rc = 0;
            break;
        } else {
            char b[200];
            size_t k = 0;
            for (size_t i = 0; i < sb.n && k + 1 < sizeof b; i++)
                b[k++] = sb.buf[i] == '\n' || sb.buf[i] == '\r' ? ' ' : sb.buf[i];
            b[k] = 0;
            while (k > 0 && b[k - 1] == ' ') b[--k] = 0;
            snprintf(err, elen, "%s answered HTTP %ld%s%s", url, code, b[0] ? ": " : "", b);
            transient = http_transient(code);
        }
        if (!transient || attempt >= o->retries) {
            if (attempt) {
                size_t l = strlen(err);
                snprintf(err + l, elen - l, " (after %d attempts)", attempt + 1);
            }
            break;
        }
        long wait = backoff_of(o, attempt, ra);
        if (!o->quiet)
            fprintf(stderr, "upload: attempt %d of %d failed: %s; retrying in %.1fs\n", attempt + 1, o->retries + 1,
                    err, wait / 1000.0);
        sleep_ms(wait);
    }
    curl_slist_free_all(hl);
    return rc;
}

/* ---- the commands ---- */

static int mkdirs(const char *path) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int fetch_cache_dir(char *out, size_t len, char *err, size_t elen) {
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/') snprintf(out, len, "%s/dmabench", x);
    else if (home && home[0]) snprintf(out, len, "%s/.cache/dmabench", home);
    else {
        snprintf(err, elen, "no cache folder: neither XDG_CACHE_HOME nor HOME is set (use --out)");
        return -1;
    }
    if (mkdirs(out) != 0) {
        snprintf(err, elen, "cannot create the cache folder %s: %s", out, strerror(errno));
        return -1;
    }
    return 0;
}

/* The file name a URL suggests: its last path segment, with unsafe characters replaced. */
static void name_from_url(const char *url, char *out, size_t len) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "?#");
    const char *last = p;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '/') last = p + i + 1;
    size_t k = 0;
    for (const char *q = last; q < p + n && k + 1 < len; q++)
        out[k++] = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '.' ||
                           *q == '-' || *q == '_'
                       ? *q
                       : '_';
    out[k] = 0;
    if (!k || !strcmp(out, ".") || !strcmp(out, "..")) snprintf(out, len, "download");
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) return 0;
    return 1;
}

static void fetch_usage(void) {
    printf("usage: dmabench fetch URL|NAME [options]\n"
           "\n"
           "Downloads a file into the cache ($XDG_CACHE_HOME/dmabench, or ~/.cache/dmabench)\n"
           "and prints its path. The bytes go to FILE.part, which an interrupted fetch resumes\n"
           "(HTTP Range); FILE appears only once the transfer is complete and its SHA-256\n"
           "matches, and a file with a wrong checksum is deleted. Transient failures are\n"
           "retried with exponential backoff. http://, https:// and file:// URLs work.\n"
           "\n"
           "options:\n"
           "  --sha256 HEX        the expected SHA-256 (known datasets have theirs built in)\n"
           "  --out PATH          download to PATH instead of the cache (its folders are\n"
           "                      created when missing)\n"
           "  --force             download again even when the file is there\n"
           "  --retries N         attempts after the first (default 5)\n"
           "  --backoff-ms MS     first wait between attempts, doubling (default 1000)\n"
           "  --connect-timeout S give up connecting after S seconds (default 30)\n"
           "  --low-speed-time S  abort a transfer below 1 KiB/s for S seconds (default 60)\n"
           "  --progress          draw the progress bar even when stderr is not a terminal\n"
           "  --quiet             no progress or retry messages\n"
           "  --list              list the known datasets\n"
           "\n"
           "Known datasets (dmabench fetch --list for details):");
    for (int i = 0; i < NDATASETS; i++) printf("%s %s", i ? "," : "", datasets[i].name);
    printf("\nExit status: 0 done, 1 the download failed or its checksum did not match,\n"
           "2 bad usage.\n");
}

/* Reads the network options shared by fetch and upload. */
static int net_cli(cli_args *a, net_opts *o) {
    long long v;
    net_opts_default(o);
    if (cli_int(a, "--retries", o->retries, 0, 100, &v) != 0) return -1;
    o->retries = (int)v;
    if (cli_int(a, "--backoff-ms", o->backoff_ms, 0, 600000, &v) != 0) return -1;
    o->backoff_ms = (long)v;
    if (cli_int(a, "--connect-timeout", o->connect_timeout_s, 1, 3600, &v) != 0) return -1;
    o->connect_timeout_s = (long)v;
    if (cli_int(a, "--low-speed-time", o->low_speed_time_s, 1, 3600, &v) != 0) return -1;
    o->low_speed_time_s = (long)v;
    if (cli_int(a, "--timeout", o->timeout_s, 1, 86400, &v) != 0) return -1;
    o->timeout_s = (long)v;
    o->quiet = cli_flag(a, "--quiet");
    return 0;
}

int cmd_fetch(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "fetch", argc, argv, 2, "--help -h --force --quiet --progress --list") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        fetch_usage();
        return 0;
    }
    net_opts o;
    if (net_cli(&a, &o) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    const char *sha = cli_str(&a, "--sha256", NULL), *out = cli_str(&a, "--out", NULL);
    int force = cli_flag(&a, "--force"), list = cli_flag(&a, "--list"), progress = cli_flag(&a, "--progress");
    int npos = cli_npos(&a);
    const char *what = cli_pos(&a, 0);
    for (int i = 1; i < npos; i++) cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (list) {
        for (int i = 0; i < NDATASETS; i++) {
            const dataset *d = &datasets[i];
            char sz[32] = "size unknown";
            if (d->bytes >= 0) fmt_size(sz, sizeof sz, (double)d->bytes);
            printf("%-18s %s\n%-18s %s\n%-18s sha256 %s, %s\n", d->name, d->about, "", d->urls[0], "",
                   d->sha256 ? d->sha256 : "unknown (printed after the download)", sz);
        }
        return 0;
    }
    if (npos != 1) {
        fprintf(stderr, "dmabench fetch: give one URL or dataset name (see dmabench fetch --help)\n");
        return 2;
    }
    if (sha && !is_hex64(sha)) {
        fprintf(stderr, "dmabench fetch: --sha256 expects 64 hex digits, got '%s'\n", sha);
        return 2;
    }
    const dataset *ds = NULL;
    const char *urls[2] = {what, NULL};
    char fname[256];
    if (strstr(what, "://")) {
        if (strncasecmp(what, "http://", 7) && strncasecmp(what, "https://", 8) && strncasecmp(what, "file://", 7)) {
            fprintf(stderr, "dmabench fetch: unsupported URL '%s' (http://, https:// and file:// work)\n", what);
            return 2;
        }
        name_from_url(what, fname, sizeof fname);
    } else {
        for (int i = 0; i < NDATASETS; i++)
            if (!strcmp(what, datasets[i].name)) ds = &datasets[i];
        if (!ds) {
            fprintf(stderr, "dmabench fetch: unknown dataset '%s' (known:", what);
            for (int i = 0; i < NDATASETS; i++) fprintf(stderr, "%s %s", i ? "," : "", datasets[i].name);
            fprintf(stderr, "; or give a URL)\n");
            return 2;
        }
        urls[0] = ds->urls[0];
        urls[1] = ds->urls[1];
        snprintf(fname, sizeof fname, "%s", ds->file);
        if (sha && ds->sha256 && strcasecmp(sha, ds->sha256) && !o.quiet)
            fprintf(stderr, "fetch: --sha256 differs from the built-in checksum of %s; using --sha256\n", ds->name);
        if (!sha) sha = ds->sha256;
    }
    o.progress = !o.quiet && (progress || isatty(2));
    char path[PATH_MAX], err[1024];
    if (out) {
        snprintf(path, sizeof path, "%s", out);
        /* the folders of --out are created, as the cache folder is */
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (mkdirs(dir) != 0) {
                fprintf(stderr, "dmabench fetch: cannot create the folder %s: %s\n", dir, strerror(errno));
                return 1;
            }
        }
    } else {
        char dir[PATH_MAX - 300];
        if (fetch_cache_dir(dir, sizeof dir, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench fetch: %s\n", err);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s", dir, fname);
    }
    /* already there? */
    struct stat st;
    if (!force && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        char have[65];
        if (!sha) {
            if (!o.quiet) fprintf(stderr, "fetch: %s is already there (no checksum to verify; --force downloads again)\n", path);
            printf("%s\n", path);
            return 0;
        }
        if (sha256_file(path, have) == 0 && !strcasecmp(have, sha)) {
            if (!o.quiet) fprintf(stderr, "fetch: %s is already there, sha256 verified\n", path);
            printf("%s\n", path);
            return 0;
        }
        if (!o.quiet) fprintf(stderr, "fetch: %s is there but its checksum does not match; downloading again\n", path);
    }
    fetch_result r;
    int rc = -1;
    double t0 = now_s();
    for (int u = 0; u < 2 && urls[u] && rc != 0; u++) {
        if (u > 0 && !o.quiet) fprintf(stderr, "fetch: %s; trying the mirror %s\n", err, urls[u]);
        if (!o.quiet) fprintf(stderr, "fetch: %s -> %s\n", urls[u], path);
        rc = fetch_url(urls[u], path, sha, &o, &r, err, sizeof err);
        if (rc != 0 && strstr(err, "checksum mismatch")) break; /* a mirror would not fix our checksum */
    }
    if (rc != 0) {
        fprintf(stderr, "dmabench fetch: %s\n", err);
        return 1;
    }
    if (!o.quiet) {
        char sz[32];
        fmt_size(sz, sizeof sz, r.bytes);
        fprintf(stderr, "fetch: %s in %.1fs%s; sha256 %s %s\n", sz, now_s() - t0, r.resumed ? " (resumed)" : "",
                r.sha256, sha ? "verified" : "(not verified: no checksum given; pin it with --sha256)");
    }
    printf("%s\n", path);
    return 0;
}

static void upload_usage(void) {
    printf("usage: dmabench upload REPORT --url URL [options]\n"
           "\n"
           "POSTs a report (Content-Type: application/json) to a results server. Transient\n"
           "failures (no connection, timeouts, HTTP 408, 429 and 5xx) are retried with\n"
           "exponential backoff; any other answer outside 2xx is an error that shows the\n"
           "HTTP status and the start of the server's reply.\n"
           "\n"
           "options:\n"
           "  --url URL           where to POST (http:// or https://; required)\n"
           "  --header \"K: V\"     an extra request header, e.g. an authorisation token\n"
           "                      (repeatable; never printed)\n"
           "  --retries N         attempts after the first (default 5)\n"
           "  --backoff-ms MS     first wait between attempts, doubling (default 1000)\n"
           "  --connect-timeout S (default 30)   --timeout S  whole request (default 120)\n"
           "  --quiet             no retry messages\n"
           "\n"
           "Exit status: 0 accepted, 1 refused or unreachable, 2 bad usage or a file that\n"
           "is not a report.\n");
}

int cmd_upload(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "upload", argc, argv, 2, "--help -h --quiet") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        upload_usage();
        return 0;
    }
    net_opts o;
    if (net_cli(&a, &o) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    const char *url = cli_str(&a, "--url", NULL);
    const char *hdr[32];
    int nh = cli_all(&a, "--header", hdr, 32);
    int npos = cli_npos(&a);
    const char *path = cli_pos(&a, 0);
    for (int i = 1; i < npos; i++) cli_pos(&a, i);
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (npos != 1) {
        fprintf(stderr, "dmabench upload: give one REPORT (see dmabench upload --help)\n");
        return 2;
    }
    if (!url) {
        fprintf(stderr, "dmabench upload: --url is required\n");
        return 2;
    }
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
        fprintf(stderr, "dmabench upload: --url must be http:// or https://, got '%s'\n", url);
        return 2;
    }
    for (int i = 0; i < nh; i++) {
        const char *c = strchr(hdr[i], ':');
        if (!c || c == hdr[i] || strpbrk(hdr[i], "\r\n")) {
            fprintf(stderr, "dmabench upload: --header expects \"Name: value\", got '%.40s'\n", hdr[i]);
            return 2;
        }
    }
    char err[1024];
    cJSON *doc = report_read(path, err, sizeof err);
    if (!doc) {
        fprintf(stderr, "dmabench upload: %s\n", err);
        return 2;
    }
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(doc, "schema_version");
    if (!cJSON_IsObject(doc) || !cJSON_IsNumber(sv) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "records"))) {
        fprintf(stderr, "dmabench upload: %s is not a dmabench report (no schema_version or records)\n", path);
        cJSON_Delete(doc);
        return 2;
    }
    int nrec = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "records"));
    char *body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!body) {
        fprintf(stderr, "dmabench upload: out of memory\n");
        return 1;
    }
    long status = 0;
    int rc = http_post_json(url, body, strlen(body), hdr, nh, &o, &status, err, sizeof err);
    free(body);
    if (rc != 0) {
        fprintf(stderr, "dmabench upload: %s\n", err);
        return 1;
    }
    if (!o.quiet) fprintf(stderr, "upload: %s (%d record%s) accepted by %s: HTTP %ld\n", path, nrec, nrec == 1 ? "" : "s", url,
                          status);
    return 0;
}
