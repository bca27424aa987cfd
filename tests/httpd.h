/*
 * httpd.h: a small HTTP/1.1 server for loopback tests of `dmabench fetch` and
 * `upload` (tests/test_reports_net.c). httpd_start() forks a child that listens on
 * 127.0.0.1 at a free port and serves one request per connection, in order, until
 * httpd_stop(). Every request is logged as one line to a file:
 *   METHOD PATH range=<Range or -> type=<Content-Type or -> token=<X-Token or -> len=<body bytes>
 *
 * Routes (NAME is any file name):
 *   GET  /file/NAME        the test blob; honours "Range: bytes=K-" (206, or 416 past the end)
 *   GET  /norange/NAME     the blob, always whole (200), ignoring Range
 *   GET  /redirect/NAME    302 to /file/NAME (with a body of its own)
 *   GET  /flaky/NAME       500 on the first request of the path, then as /file
 *   GET  /drop-once/NAME   first request: headers and half of the body, then the
 *                          connection is closed; later requests as /file
 *   GET  /drop/NAME        always drops after half of the body
 *   GET  /slow/NAME        headers, then one byte a second
 *   GET  /500, /404        that status, with a short body
 *   POST /upload           201 and the body saved to DIR/upload.json (needs application/json)
 *   POST /upload-flaky     503 on the first request, then as /upload
 *   POST /upload-500       500 "database down"; POST /upload-403: 403 "bad token"
 */
#ifndef DMABENCH_TEST_HTTPD_H
#define DMABENCH_TEST_HTTPD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int port;
    char dir[256];     /* where the log and uploads go */
    const unsigned char *blob;
    size_t blob_len;
} httpd;

static int httpd_send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void httpd_reply(int fd, int code, const char *reason, const char *extra, const char *body) {
    char h[512];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n%sConnection: close\r\n\r\n",
                     code, reason, strlen(body), extra ? extra : "");
    httpd_send_all(fd, h, (size_t)n);
    httpd_send_all(fd, body, strlen(body));
}

/* Value of a header in the raw request head, or NULL. */
static const char *httpd_header(const char *head, const char *name, char *out, size_t len) {
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= len) k = len - 1;
            memcpy(out, v, k);
            out[k] = 0;
            return out;
        }
    }
    return NULL;
}

typedef struct {
    char path[128];
    int hits;
} httpd_hit;

static int httpd_count(httpd_hit *h, int *n, const char *path) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(h[i].path, path)) return ++h[i].hits;
    if (*n < 64) {
        snprintf(h[*n].path, sizeof h[*n].path, "%s", path);
        h[(*n)++].hits = 1;
    }
    return 1;
}

static void httpd_serve_blob(int fd, const httpd *s, const char *range, int honour_range, size_t stop_after,
                             int slow) {
    size_t S = s->blob_len, k = 0;
    char h[512];
    int n;
    if (honour_range && range && sscanf(range, "bytes=%zu-", &k) == 1) {
        if (k >= S) {
            char cr[64];
            snprintf(cr, sizeof cr, "Content-Range: bytes */%zu\r\n", S);
            httpd_reply(fd, 416, "Range Not Satisfiable", cr, "");
            return;
        }
        n = snprintf(h, sizeof h,
                     "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\nContent-Length: %zu\r\n"
                     "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                     k, S - 1, S, S - k);
    } else {
        k = 0;
        n = snprintf(h, sizeof h,
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nAccept-Ranges: bytes\r\n"
                     "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                     S);
    }
    if (httpd_send_all(fd, h, (size_t)n) != 0) return;
    if (slow) {
        for (size_t i = k; i < S; i++) {
            if (httpd_send_all(fd, s->blob + i, 1) != 0) return;
            sleep(1);
        }
        return;
    }
    size_t end = stop_after && stop_after < S ? stop_after : S;
    if (end > k) httpd_send_all(fd, s->blob + k, end - k);
}

static void httpd_loop(httpd *s, int lfd) {
    httpd_hit hits[64];
    int nhits = 0;
    char logp[300];
    snprintf(logp, sizeof logp, "%s/httpd.log", s->dir);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        /* the request head */
        static char req[1 << 20];
        size_t got = 0;
        char *eoh = NULL;
        while (got < sizeof req - 1) {
            ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
            req[got] = 0;
            if ((eoh = strstr(req, "\r\n\r\n"))) break;
        }
        if (!eoh) {
            close(fd);
            continue;
        }
        char method[16] = "", path[256] = "", range[128], ctype[128], token[128], clen[32];
        sscanf(req, "%15s %255s", method, path);
        const char *rg = httpd_header(req, "Range", range, sizeof range);
        const char *ct = httpd_header(req, "Content-Type", ctype, sizeof ctype);
        const char *tk = httpd_header(req, "X-Token", token, sizeof token);
        size_t body_len = httpd_header(req, "Content-Length", clen, sizeof clen) ? strtoul(clen, NULL, 10) : 0;
        /* the body (POST) */
        size_t have = got - (size_t)(eoh + 4 - req);
        while (have < body_len && got < sizeof req - 1) {
            ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
            have += (size_t)r;
        }
        const char *body = eoh + 4;
        FILE *lf = fopen(logp, "a");
        if (lf) {
            fprintf(lf, "%s %s range=%s type=%s token=%s len=%zu\n", method, path, rg ? rg : "-", ct ? ct : "-",
                    tk ? tk : "-", have);
            fclose(lf);
        }
        int hit = httpd_count(hits, &nhits, path);
        if (!strcmp(method, "GET")) {
            if (!strncmp(path, "/file/", 6)) httpd_serve_blob(fd, s, rg, 1, 0, 0);
            else if (!strncmp(path, "/norange/", 9)) httpd_serve_blob(fd, s, rg, 0, 0, 0);
            else if (!strncmp(path, "/redirect/", 10)) {
                char loc[300];
                snprintf(loc, sizeof loc, "Location: /file/%s\r\n", path + 10);
                httpd_reply(fd, 302, "Found", loc, "moved to /file/");
            }
            else if (!strncmp(path, "/flaky/", 7)) {
                if (hit == 1) httpd_reply(fd, 500, "Internal Server Error", NULL, "try again");
                else httpd_serve_blob(fd, s, rg, 1, 0, 0);
            } else if (!strncmp(path, "/drop-once/", 11)) httpd_serve_blob(fd, s, rg, 1, hit == 1 ? s->blob_len / 2 : 0, 0);
            else if (!strncmp(path, "/drop/", 6)) {
                size_t k = 0;
                if (rg) sscanf(rg, "bytes=%zu-", &k);
                httpd_serve_blob(fd, s, rg, 1, k + (s->blob_len - k) / 2 + 1, 0);
            } else if (!strncmp(path, "/slow/", 6)) httpd_serve_blob(fd, s, rg, 0, 0, 1);
            else if (!strcmp(path, "/500")) httpd_reply(fd, 500, "Internal Server Error", NULL, "internal error");
            else httpd_reply(fd, 404, "Not Found", NULL, "no such file");
        } else if (!strcmp(method, "POST")) {
            int ok_type = ct && !strncasecmp(ct, "application/json", 16);
            if (!strcmp(path, "/upload-500")) httpd_reply(fd, 500, "Internal Server Error", NULL, "database down");
            else if (!strcmp(path, "/upload-403")) httpd_reply(fd, 403, "Forbidden", NULL, "bad token");
            else if (!strcmp(path, "/upload-flaky") && hit == 1)
                httpd_reply(fd, 503, "Service Unavailable", "Retry-After: 0\r\n", "busy");
            else if (!strcmp(path, "/upload") || !strcmp(path, "/upload-flaky")) {
                if (!ok_type) {
                    httpd_reply(fd, 415, "Unsupported Media Type", NULL, "want application/json");
                } else {
                    char up[300];
                    snprintf(up, sizeof up, "%s/upload.json", s->dir);
                    FILE *f = fopen(up, "wb");
                    if (f) {
                        fwrite(body, 1, have, f);
                        fclose(f);
                    }
                    httpd_reply(fd, 201, "Created", NULL, "{\"ok\": true}");
                }
            } else httpd_reply(fd, 404, "Not Found", NULL, "no such endpoint");
        } else {
            httpd_reply(fd, 405, "Method Not Allowed", NULL, "");
        }
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

/* Starts the server; 0, or -1. */
static int httpd_start(httpd *s) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) return -1;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        close(lfd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0) {
        close(lfd);
        return -1;
    }
    if (s->pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        httpd_loop(s, lfd);
        _exit(0);
    }
    close(lfd);
    return 0;
}

static void httpd_stop(httpd *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Log lines whose request path is path (exactly), and the Range of the last one. */
static int httpd_hits(const httpd *s, const char *path, char *last_range, size_t len) {
    char logp[300], line[1024];
    snprintf(logp, sizeof logp, "%s/httpd.log", s->dir);
    FILE *f = fopen(logp, "r");
    int n = 0;
    if (last_range) last_range[0] = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        char m[16], p[256], r[160];
        if (sscanf(line, "%15s %255s range=%159s", m, p, r) == 3 && !strcmp(p, path)) {
            n++;
            if (last_range) snprintf(last_range, len, "%s", r);
        }
    }
    fclose(f);
    return n;
}

#endif
