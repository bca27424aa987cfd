/*
 * check.h: the tiny test protocol every test binary speaks. Each check prints one
 * line, "ok - NAME" or "not ok - NAME: WHY"; scripts/run-tests.sh counts them.
 * main() returns check_exit(), non-zero when anything failed.
 */
#ifndef DMABENCH_CHECK_H
#define DMABENCH_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int check_npass, check_nfail;

static inline void check_report(int ok, const char *name, const char *fmt, ...) {
    if (ok) {
        check_npass++;
        printf("ok - %s\n", name);
    } else {
        check_nfail++;
        printf("not ok - %s: ", name);
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

/* CHECK(cond, name, fmt, ...): one test line. */
#define CHECK(cond, name, ...) check_report(!!(cond), (name), __VA_ARGS__)

static inline int check_exit(void) { return check_nfail ? 1 : 0; }

#endif
