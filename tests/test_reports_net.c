/*
 * test_reports_net.c: `dmabench fetch` and `upload` against a real HTTP/1.1 server
 * on 127.0.0.1 (tests/httpd.h, started here): a good file, a resumed transfer, a
 * server that ignores Range, a 500 and a 404, a dropped connection (retry resumes;
 * or fails cleanly), a stalled transfer, a wrong checksum (nothing left in the
 * cache), file:// URLs, refused connections, bad usage; uploads accepted, retried
 * and refused. Also SHA-256 against the FIPS 180-4 test vectors. No network beyond
 * loopback; a few seconds in all.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "commands.h"
#include "fetch.h"
#include "httpd.h"
#include "sha256.h"

static char T[128];      /* temporary folder */
static char CACHE[200];  /* $XDG_CACHE_HOME/dmabench */
static httpd S;

/* Runs a command entry point in a child with stdout and stderr in files; returns
 * its exit status (-1 when it crashed). */
static int run(int (*fn)(int, char **), char **argv, const char *tag) {
    int argc = 0;
    while (argv[argc]) argc++;
    char out[400], err[400];
    snprintf(out, sizeof out, "%s/%s.out", T, tag);
    snprintf(err, sizeof err, "%s/%s.err", T, tag);
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        int rc = fn(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static int file_has(const char *tag, const char *ext, const char *needle) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s.%s", T, tag, ext);
    char *s = slurp(p, NULL);
    int r = s && strstr(s, needle);
    free(s);
    return r;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int same_as_blob(const char *path) {
    size_t n;
    char *b = slurp(path, &n);
    int ok = b && n == S.blob_len && !memcmp(b, S.blob, n);
    free(b);
    return ok;
}

static const char *errline(const char *tag) {
    static char buf[300];
    char p[400];
    snprintf(p, sizeof p, "%s/%s.err", T, tag);
    char *s = slurp(p, NULL);
    snprintf(buf, sizeof buf, "%s", s ? s : "(no stderr)");
    buf[strcspn(buf, "\n")] = 0;
    free(s);
    return buf;
}

/* ---- SHA-256 ---- */

static void sha_vectors(void) {
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        sha256_ctx c;
        uint8_t d[32];
        char hex[65], name[64];
        sha256_init(&c);
        sha256_update(&c, v[i].msg, strlen(v[i].msg));
        sha256_final(&c, d);
        sha256_hex(d, hex);
        snprintf(name, sizeof name, "net/sha256_vector_%zu", i);
        CHECK(!strcmp(hex, v[i].hex), name, "got %s, want %s", hex, v[i].hex);
    }
    /* one million 'a', fed in uneven pieces */
    sha256_ctx c;
    uint8_t d[32];
    char hex[65];
    static char a[1000];
    memset(a, 'a', sizeof a);
    sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t k = step < left ? step : left;
        if (k > sizeof a) k = sizeof a;
        sha256_update(&c, a, k);
        left -= k;
        step = step * 7 % 997 + 1;
    }
    sha256_final(&c, d);
    sha256_hex(d, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "net/sha256_million_a",
          "got %s", hex);
    /* byte-at-a-time across block boundaries equals one update, for every length to 200 */
    int bad = -1;
    for (int n = 0; n <= 200 && bad < 0; n++) {
        sha256_ctx x, y;
        uint8_t dx[32], dy[32];
        sha256_init(&x);
        sha256_init(&y);
        sha256_update(&x, S.blob, (size_t)n);
        for (int i = 0; i < n; i++) sha256_update(&y, S.blob + i, 1);
        sha256_final(&x, dx);
        sha256_final(&y, dy);
        if (memcmp(dx, dy, 32)) bad = n;
    }
    CHECK(bad < 0, "net/sha256_streaming", "length %d differs", bad);
}

/* ---- fetch ---- */

static char BLOB_SHA[65];

static void url(char *buf, size_t n, const char *path) { snprintf(buf, n, "http://127.0.0.1:%d%s", S.port, path); }

static void fetch_tests(void) {
    char u[256], dest[600], part[620], rng[160];
    char *av[24];

    /* a good file, verified, into the cache; the path on stdout */
    url(u, sizeof u, "/file/good.bin");
    snprintf(dest, sizeof dest, "%s/good.bin", CACHE);
    char *a1[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--backoff-ms", "10", NULL};
    int rc = run(cmd_fetch, a1, "good");
    CHECK(rc == 0 && same_as_blob(dest) && file_has("good", "out", dest), "net/fetch_good",
          "rc %d, %s", rc, errline("good"));
    snprintf(part, sizeof part, "%s.part", dest);
    CHECK(!exists(part), "net/fetch_good_no_part", "%s left behind", part);

    /* already there: verified, nothing downloaded */
    int before = httpd_hits(&S, "/file/good.bin", NULL, 0);
    rc = run(cmd_fetch, a1, "again");
    CHECK(rc == 0 && httpd_hits(&S, "/file/good.bin", NULL, 0) == before && file_has("again", "err", "verified"),
          "net/fetch_cached", "rc %d, %d requests", rc, httpd_hits(&S, "/file/good.bin", NULL, 0) - before);

    /* a resumed transfer: 40% is in the .part already */
    url(u, sizeof u, "/file/resume.bin");
    snprintf(dest, sizeof dest, "%s/resume.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    size_t k = S.blob_len * 2 / 5;
    FILE *f = fopen(part, "wb");
    fwrite(S.blob, 1, k, f);
    fclose(f);
    char *a2[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a2, "resume");
    httpd_hits(&S, "/file/resume.bin", rng, sizeof rng);
    char want[64];
    snprintf(want, sizeof want, "bytes=%zu-", k);
    CHECK(rc == 0 && same_as_blob(dest) && !exists(part) && !strcmp(rng, want) && file_has("resume", "err", "resumed"),
          "net/fetch_resume", "rc %d, range '%s' (want %s), %s", rc, rng, want, errline("resume"));

    /* a complete .part: the server answers 416 with the full size, and the part is kept */
    url(u, sizeof u, "/file/complete.bin");
    snprintf(dest, sizeof dest, "%s/complete.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    f = fopen(part, "wb");
    fwrite(S.blob, 1, S.blob_len, f);
    fclose(f);
    char *a2b[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--progress", NULL};
    rc = run(cmd_fetch, a2b, "complete");
    CHECK(rc == 0 && same_as_blob(dest) && !exists(part) && httpd_hits(&S, "/file/complete.bin", NULL, 0) == 1,
          "net/fetch_part_already_complete", "rc %d, %s", rc, errline("complete"));

    /* a cached file with a wrong checksum is replaced; the progress bar reaches 100% */
    url(u, sizeof u, "/file/stale.bin");
    snprintf(dest, sizeof dest, "%s/stale.bin", CACHE);
    f = fopen(dest, "wb");
    fwrite("stale", 1, 5, f);
    fclose(f);
    char *a2c[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--progress", NULL};
    rc = run(cmd_fetch, a2c, "stale");
    CHECK(rc == 0 && same_as_blob(dest) && file_has("stale", "err", "does not match") && file_has("stale", "err", "100%"),
          "net/fetch_replaces_bad_cached_file", "rc %d, %s", rc, errline("stale"));

    /* a .part another fetch holds: refused, the part untouched */
    url(u, sizeof u, "/file/locked.bin");
    snprintf(dest, sizeof dest, "%s/locked.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    int lfd = open(part, O_RDWR | O_CREAT, 0644);
    int locked = lfd >= 0 && flock(lfd, LOCK_EX) == 0;
    char *a2d[] = {"dmabench", "fetch", u, "--retries", "0", NULL};
    rc = run(cmd_fetch, a2d, "locked");
    CHECK(locked && rc == 1 && file_has("locked", "err", "another dmabench fetch") && exists(part) && !exists(dest),
          "net/fetch_part_locked", "rc %d, %s", rc, errline("locked"));
    if (lfd >= 0) close(lfd);

    /* a redirect, with a body of its own, to the file; resumed through the redirect */
    url(u, sizeof u, "/redirect/moved.bin");
    snprintf(dest, sizeof dest, "%s/moved.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    f = fopen(part, "wb");
    fwrite(S.blob, 1, 1000, f);
    fclose(f);
    char *a2e[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, NULL};
    rc = run(cmd_fetch, a2e, "redirect");
    httpd_hits(&S, "/file/moved.bin", rng, sizeof rng);
    CHECK(rc == 0 && same_as_blob(dest) && !strcmp(rng, "bytes=1000-"), "net/fetch_redirect", "rc %d, range %s, %s", rc,
          rng, errline("redirect"));

    /* a server that ignores Range: the .part starts over */
    url(u, sizeof u, "/norange/whole.bin");
    snprintf(dest, sizeof dest, "%s/whole.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    f = fopen(part, "wb");
    fwrite("garbage garbage", 1, 15, f);
    fclose(f);
    char *a3[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, NULL};
    rc = run(cmd_fetch, a3, "norange");
    CHECK(rc == 0 && same_as_blob(dest) && !exists(part), "net/fetch_range_ignored", "rc %d, %s", rc,
          errline("norange"));

    /* a 500, always: retried, then a clean failure with the status */
    url(u, sizeof u, "/500");
    snprintf(dest, sizeof dest, "%s/500", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    char *a4[] = {"dmabench", "fetch", u, "--retries", "2", "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a4, "e500");
    int hits = httpd_hits(&S, "/500", NULL, 0);
    CHECK(rc == 1 && hits == 3 && file_has("e500", "err", "HTTP 500") && !exists(dest) && !exists(part),
          "net/fetch_500", "rc %d, %d requests (want 3), %s", rc, hits, errline("e500"));

    /* a 500 once: the retry succeeds */
    url(u, sizeof u, "/flaky/flaky.bin");
    snprintf(dest, sizeof dest, "%s/flaky.bin", CACHE);
    char *a5[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a5, "flaky");
    CHECK(rc == 0 && same_as_blob(dest) && httpd_hits(&S, "/flaky/flaky.bin", NULL, 0) == 2, "net/fetch_500_then_ok",
          "rc %d, %s", rc, errline("flaky"));

    /* a 404: no retry */
    url(u, sizeof u, "/nothing-here");
    char *a6[] = {"dmabench", "fetch", u, "--retries", "3", "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a6, "e404");
    CHECK(rc == 1 && httpd_hits(&S, "/nothing-here", NULL, 0) == 1 && file_has("e404", "err", "HTTP 404"),
          "net/fetch_404_no_retry", "rc %d, %d requests, %s", rc, httpd_hits(&S, "/nothing-here", NULL, 0),
          errline("e404"));

    /* a dropped connection: the retry resumes where the bytes stopped */
    url(u, sizeof u, "/drop-once/drop1.bin");
    snprintf(dest, sizeof dest, "%s/drop1.bin", CACHE);
    char *a7[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a7, "drop1");
    hits = httpd_hits(&S, "/drop-once/drop1.bin", rng, sizeof rng);
    snprintf(want, sizeof want, "bytes=%zu-", S.blob_len / 2);
    CHECK(rc == 0 && same_as_blob(dest) && hits == 2 && !strcmp(rng, want), "net/fetch_drop_retry_resumes",
          "rc %d, %d requests, last range %s (want %s), %s", rc, hits, rng, want, errline("drop1"));

    /* a connection that always drops: a clean failure, no file (the .part stays for a later resume) */
    url(u, sizeof u, "/drop/drop2.bin");
    snprintf(dest, sizeof dest, "%s/drop2.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    char *a8[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, "--retries", "1", "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a8, "drop2");
    struct stat st;
    int partial = stat(part, &st) == 0 && st.st_size > 0 && (size_t)st.st_size < S.blob_len;
    CHECK(rc == 1 && !exists(dest) && partial && httpd_hits(&S, "/drop/drop2.bin", NULL, 0) == 2, "net/fetch_drop_fails",
          "rc %d, final %s, partial %d, %s", rc, exists(dest) ? "exists" : "absent", partial, errline("drop2"));
    /* and a later fetch from a good server resumes that .part */
    url(u, sizeof u, "/file/drop2.bin");
    char *a9[] = {"dmabench", "fetch", u, "--sha256", BLOB_SHA, NULL};
    rc = run(cmd_fetch, a9, "drop2b");
    httpd_hits(&S, "/file/drop2.bin", rng, sizeof rng);
    CHECK(rc == 0 && same_as_blob(dest) && strcmp(rng, "-") != 0, "net/fetch_drop_then_resume", "rc %d, range %s, %s",
          rc, rng, errline("drop2b"));

    /* a wrong checksum: an error, and neither the file nor the .part in the cache */
    url(u, sizeof u, "/file/wrong.bin");
    snprintf(dest, sizeof dest, "%s/wrong.bin", CACHE);
    snprintf(part, sizeof part, "%s.part", dest);
    char bad[65];
    memset(bad, 'a', 64);
    bad[64] = 0;
    char *a10[] = {"dmabench", "fetch", u, "--sha256", bad, NULL};
    rc = run(cmd_fetch, a10, "wrongsum");
    CHECK(rc == 1 && !exists(dest) && !exists(part) && file_has("wrongsum", "err", "checksum mismatch"),
          "net/fetch_wrong_checksum", "rc %d, final %d, part %d, %s", rc, exists(dest), exists(part),
          errline("wrongsum"));

    /* a stalled transfer: the low-speed timeout ends it */
    url(u, sizeof u, "/slow/slow.bin");
    snprintf(dest, sizeof dest, "%s/slow.bin", CACHE);
    char *a11[] = {"dmabench", "fetch", u, "--retries", "0", "--low-speed-time", "1", NULL};
    time_t t0 = time(NULL);
    rc = run(cmd_fetch, a11, "slow");
    long dt = (long)(time(NULL) - t0);
    CHECK(rc == 1 && !exists(dest) && dt <= 8, "net/fetch_low_speed_timeout", "rc %d after %lds, %s", rc, dt,
          errline("slow"));

    /* file:// */
    char src[400], fu[600];
    snprintf(src, sizeof src, "%s/source.bin", T);
    f = fopen(src, "wb");
    fwrite(S.blob, 1, S.blob_len, f);
    fclose(f);
    snprintf(fu, sizeof fu, "file://%s", src);
    snprintf(dest, sizeof dest, "%s/copy.bin", T);
    char *a12[] = {"dmabench", "fetch", fu, "--sha256", BLOB_SHA, "--out", dest, NULL};
    rc = run(cmd_fetch, a12, "fileurl");
    CHECK(rc == 0 && same_as_blob(dest), "net/fetch_file_url", "rc %d, %s", rc, errline("fileurl"));
    snprintf(fu, sizeof fu, "file://%s/missing.bin", T);
    char *a13[] = {"dmabench", "fetch", fu, "--retries", "0", NULL};
    rc = run(cmd_fetch, a13, "filemissing");
    CHECK(rc == 1, "net/fetch_file_url_missing", "rc %d, %s", rc, errline("filemissing"));

    /* nobody listening */
    char *a14[] = {"dmabench", "fetch", "http://127.0.0.1:1/x.bin", "--retries", "1", "--backoff-ms", "10", NULL};
    rc = run(cmd_fetch, a14, "refused");
    CHECK(rc == 1 && file_has("refused", "err", "dmabench fetch:"), "net/fetch_refused", "rc %d, %s", rc,
          errline("refused"));

    /* bad usage: exit 2, one line */
    char *b1[] = {"dmabench", "fetch", "no-such-dataset", NULL};
    char *b2[] = {"dmabench", "fetch", u, "--sha256", "xyz", NULL};
    char *b3[] = {"dmabench", "fetch", "ftp://example.org/x", NULL};
    char *b4[] = {"dmabench", "fetch", NULL};
    CHECK(run(cmd_fetch, b1, "u1") == 2 && file_has("u1", "err", "unknown dataset"), "net/fetch_unknown_name", "%s",
          errline("u1"));
    CHECK(run(cmd_fetch, b2, "u2") == 2 && file_has("u2", "err", "64 hex"), "net/fetch_bad_sha", "%s", errline("u2"));
    CHECK(run(cmd_fetch, b3, "u3") == 2 && file_has("u3", "err", "unsupported URL"), "net/fetch_bad_scheme", "%s",
          errline("u3"));
    CHECK(run(cmd_fetch, b4, "u4") == 2, "net/fetch_no_arg", "%s", errline("u4"));
    char *b5[] = {"dmabench", "fetch", "--list", NULL};
    CHECK(run(cmd_fetch, b5, "list") == 0 && file_has("list", "out", "wikitext-2-raw") &&
              file_has("list", "out", "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"),
          "net/fetch_list", "%s", errline("list"));
    (void)av;
}

/* ---- upload ---- */

static void upload_tests(void) {
    char rep[400], u[256];
    snprintf(rep, sizeof rep, "%s/report.json", T);
    const char *doc = "{\"schema_version\": 1, \"provenance\": {}, \"records\": [{\"kind\": \"kernel\", "
                      "\"variant\": \"dma\", \"status\": \"ok\"}, {\"kind\": \"kernel\", \"variant\": \"mha\"}]}\n";
    FILE *f = fopen(rep, "w");
    fputs(doc, f);
    fclose(f);

    url(u, sizeof u, "/upload");
    char *a1[] = {"dmabench", "upload", rep, "--url", u, "--header", "X-Token: s3cret", NULL};
    int rc = run(cmd_upload, a1, "up");
    char up[400], line[1024] = "";
    snprintf(up, sizeof up, "%s/upload.json", S.dir);
    char *got = slurp(up, NULL);
    cJSON *j = got ? cJSON_Parse(got) : NULL;
    int nrec = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "records"));
    char logp[400];
    snprintf(logp, sizeof logp, "%s/httpd.log", S.dir);
    char *log = slurp(logp, NULL);
    const char *l = log ? strstr(log, "POST /upload range") : NULL;
    if (l) snprintf(line, sizeof line, "%.*s", (int)strcspn(l, "\n"), l);
    CHECK(rc == 0 && nrec == 2 && strstr(line, "type=application/json") && strstr(line, "token=s3cret") &&
              file_has("up", "err", "HTTP 201"),
          "net/upload_ok", "rc %d, %d records arrived, log '%s', %s", rc, nrec, line, errline("up"));
    CHECK(!file_has("up", "err", "s3cret") && !file_has("up", "out", "s3cret"), "net/upload_header_not_printed",
          "the header value was printed");
    cJSON_Delete(j);
    free(got);
    free(log);

    url(u, sizeof u, "/upload-flaky");
    char *a2[] = {"dmabench", "upload", rep, "--url", u, "--backoff-ms", "10", NULL};
    rc = run(cmd_upload, a2, "upflaky");
    CHECK(rc == 0 && httpd_hits(&S, "/upload-flaky", NULL, 0) == 2, "net/upload_503_then_ok", "rc %d, %s", rc,
          errline("upflaky"));

    url(u, sizeof u, "/upload-500");
    char *a3[] = {"dmabench", "upload", rep, "--url", u, "--retries", "2", "--backoff-ms", "10", NULL};
    rc = run(cmd_upload, a3, "up500");
    CHECK(rc == 1 && httpd_hits(&S, "/upload-500", NULL, 0) == 3 && file_has("up500", "err", "HTTP 500") &&
              file_has("up500", "err", "database down"),
          "net/upload_500", "rc %d, %d requests, %s", rc, httpd_hits(&S, "/upload-500", NULL, 0), errline("up500"));

    url(u, sizeof u, "/upload-403");
    char *a4[] = {"dmabench", "upload", rep, "--url", u, "--retries", "3", "--backoff-ms", "10", NULL};
    rc = run(cmd_upload, a4, "up403");
    CHECK(rc == 1 && httpd_hits(&S, "/upload-403", NULL, 0) == 1 && file_has("up403", "err", "HTTP 403"),
          "net/upload_403_no_retry", "rc %d, %s", rc, errline("up403"));

    char *a5[] = {"dmabench", "upload", rep, "--url", "http://127.0.0.1:1/upload", "--retries", "1", "--backoff-ms",
                  "10", NULL};
    rc = run(cmd_upload, a5, "uprefused");
    CHECK(rc == 1 && file_has("uprefused", "err", "dmabench upload:"), "net/upload_refused", "rc %d, %s", rc,
          errline("uprefused"));

    char notrep[400];
    snprintf(notrep, sizeof notrep, "%s/not-a-report.json", T);
    f = fopen(notrep, "w");
    fputs("[1, 2, 3]\n", f);
    fclose(f);
    url(u, sizeof u, "/upload");
    char *a6[] = {"dmabench", "upload", notrep, "--url", u, NULL};
    char *a7[] = {"dmabench", "upload", rep, NULL};
    char *a8[] = {"dmabench", "upload", rep, "--url", u, "--header", "no colon", NULL};
    CHECK(run(cmd_upload, a6, "upbad") == 2 && file_has("upbad", "err", "not a dmabench report"), "net/upload_not_a_report",
          "%s", errline("upbad"));
    CHECK(run(cmd_upload, a7, "upnourl") == 2 && file_has("upnourl", "err", "--url"), "net/upload_no_url", "%s",
          errline("upnourl"));
    CHECK(run(cmd_upload, a8, "uphdr") == 2, "net/upload_bad_header", "%s", errline("uphdr"));
}

int main(void) {
    snprintf(T, sizeof T, "/tmp/dmabench-net-XXXXXX");
    if (!mkdtemp(T)) {
        printf("not ok - net/setup: cannot create a temporary folder\n");
        return 1;
    }
    char xdg[160];
    snprintf(xdg, sizeof xdg, "%s/xdg", T);
    setenv("XDG_CACHE_HOME", xdg, 1);
    snprintf(CACHE, sizeof CACHE, "%s/dmabench", xdg);
    /* the blob: 300000 bytes of a fixed pattern */
    size_t n = 300000;
    unsigned char *blob = malloc(n);
    for (size_t i = 0; i < n; i++) blob[i] = (unsigned char)((i * 2654435761u) >> 13);
    memset(&S, 0, sizeof S);
    S.blob = blob;
    S.blob_len = n;
    snprintf(S.dir, sizeof S.dir, "%s", T);
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, blob, n);
    sha256_final(&c, d);
    sha256_hex(d, BLOB_SHA);

    sha_vectors();
    if (httpd_start(&S) != 0) {
        printf("not ok - net/server: cannot listen on 127.0.0.1\n");
        return 1;
    }
    fetch_tests();
    char cd[300], e[200];
    CHECK(fetch_cache_dir(cd, sizeof cd, e, sizeof e) == 0 && !strcmp(cd, CACHE), "net/cache_dir_xdg", "%s vs %s", cd,
          CACHE);
    upload_tests();
    httpd_stop(&S);
    free(blob);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
    if (getenv("DMABENCH_TEST_KEEP")) fprintf(stderr, "kept %s\n", T);
    else if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", T);
    return check_exit();
}
