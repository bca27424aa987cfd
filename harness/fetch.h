/*
 * fetch.h: downloads and uploads over libcurl, for `dmabench fetch` and `dmabench
 * upload` (harness/fetch.c); the test suite drives them against a loopback server.
 */
#ifndef DMABENCH_FETCH_H
#define DMABENCH_FETCH_H

#include <stddef.h>

typedef struct {
    int retries;              /* attempts after the first one (default 5) */
    long backoff_ms;          /* wait before the first retry; doubles each time, at most 60 s (default 1000) */
    long connect_timeout_s;   /* connection set-up (default 30) */
    long low_speed_time_s;    /* abort a transfer slower than low_speed_bps for this long (default 60) */
    long low_speed_bps;       /* (default 1024) */
    long timeout_s;           /* whole request, uploads only (default 120) */
    int progress;             /* draw a progress bar on stderr */
    int quiet;                /* no messages on stderr but errors */
} net_opts;

void net_opts_default(net_opts *o);

typedef struct {
    int attempts;      /* transfers tried */
    int resumed;       /* a transfer continued from a partial file */
    long http_status;  /* of the last response (0 for file://) */
    double bytes;      /* size of the file */
    char sha256[65];   /* of the file */
} fetch_result;

/* Downloads url to path: the bytes go to path.part (resumed with a Range request
 * when it exists), and path.part becomes path only when the transfer is complete
 * and, when sha256 (hex) is given, its checksum matches. A wrong checksum deletes
 * path.part; a failed transfer keeps it for the next try. Transient failures
 * (connection errors, timeouts, dropped connections, HTTP 408/429/5xx) are retried
 * with exponential backoff. Returns 0, or -1 with a one-line reason in err. */
int fetch_url(const char *url, const char *path, const char *sha256, const net_opts *o, fetch_result *r, char *err,
              size_t err_len);

/* POSTs body (JSON) to url with the extra "Key: Value" headers, retrying transient
 * failures. Returns 0 on a 2xx answer, or -1 with the reason (HTTP status and the
 * start of the server's answer) in err. *status receives the last HTTP status. */
int http_post_json(const char *url, const char *body, size_t len, const char *const *headers, int nheaders,
                   const net_opts *o, long *status, char *err, size_t err_len);

/* The download cache: $XDG_CACHE_HOME/dmabench or ~/.cache/dmabench, created when
 * missing. 0, or -1 with a reason. */
int fetch_cache_dir(char *out, size_t len, char *err, size_t err_len);

#endif
