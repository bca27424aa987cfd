/*
 * cli.c: option parsing for the dmabench subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_flag(const char *flags, const char *name) {
    size_t n = strlen(name);
    const char *p = flags;
    while (p && (p = strstr(p, name)) != NULL) {
        if ((p == flags || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
        p += n;
    }
    return 0;
}

int cli_parse(cli_args *a, const char *cmd, int argc, char **argv, int first, const char *flags) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->flags = flags;
    for (int i = first; i < argc; i++) {
        if (a->n >= CLI_MAX) {
            snprintf(a->err, sizeof a->err, "too many arguments");
            return -1;
        }
        const char *s = strcmp(argv[i], "-h") == 0 ? "--help" : argv[i];
        if (strncmp(s, "--", 2) == 0 && s[2]) {
            char *eq = strchr(s, '=');
            if (eq) {
                /* keep the name part in argv's memory: split a copy */
                size_t len = (size_t)(eq - s);
                char *nm = malloc(len + 1);
                if (!nm) return -1;
                memcpy(nm, s, len);
                nm[len] = 0;
                a->name[a->n] = nm; /* small, lives for the process */
                a->value[a->n] = eq + 1;
            } else if (is_flag(flags, s)) {
                a->name[a->n] = s;
            } else if (i + 1 >= argc) {
                /* unknown or missing its value: cli_finish tells which, once the
                 * command has asked for every option it knows */
                a->name[a->n] = s;
                a->novalue[a->n] = 1;
            } else {
                a->name[a->n] = s;
                a->value[a->n] = argv[++i];
            }
        } else {
            a->name[a->n] = NULL;
            a->value[a->n] = s;
        }
        a->n++;
    }
    return 0;
}

void cli_note(cli_args *a, const char *name) {
    for (int i = 0; i < a->nknown; i++)
        if (!strcmp(a->known[i], name)) return;
    if (a->nknown < CLI_MAX) a->known[a->nknown++] = name;
}

static int find_last(cli_args *a, const char *name) {
    int k = -1;
    cli_note(a, name);
    for (int i = 0; i < a->n; i++)
        if (a->name[i] && strcmp(a->name[i], name) == 0) {
            a->used[i] = 1;
            k = i;
        }
    return k;
}

const char *cli_str(cli_args *a, const char *name, const char *def) {
    int k = find_last(a, name);
    return k < 0 ? def : a->value[k] ? a->value[k] : def;
}

const char *cli_str2(cli_args *a, const char *name, const char *alias, const char *def) {
    int k = find_last(a, name), j = find_last(a, alias);
    if (j > k) k = j;
    return k < 0 ? def : a->value[k] ? a->value[k] : def;
}

int cli_flag(cli_args *a, const char *name) { return find_last(a, name) >= 0; }

/* 1 (with the message in a->err) when the option was given without its value. */
static int missing_value(cli_args *a, const char *name) {
    int k = find_last(a, name);
    if (k < 0 || !a->novalue[k]) return 0;
    snprintf(a->err, sizeof a->err, "%s: option %s needs a value", a->cmd, name);
    return 1;
}

int cli_int(cli_args *a, const char *name, long long def, long long lo, long long hi, long long *out) {
    if (missing_value(a, name)) return -1;
    const char *s = cli_str(a, name, NULL);
    if (!s) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        snprintf(a->err, sizeof a->err, "%s: %s expects an integer, got '%s'", a->cmd, name, s);
        return -1;
    }
    if (v < lo || v > hi) {
        snprintf(a->err, sizeof a->err, "%s: %s must be in %lld..%lld, got %lld", a->cmd, name, lo, hi, v);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_real(cli_args *a, const char *name, double def, double *out) {
    if (missing_value(a, name)) return -1;
    const char *s = cli_str(a, name, NULL);
    if (!s) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        snprintf(a->err, sizeof a->err, "%s: %s expects a number, got '%s'", a->cmd, name, s);
        return -1;
    }
    *out = v;
    return 0;
}

const char *cli_pos(cli_args *a, int i) {
    for (int k = 0; k < a->n; k++)
        if (!a->name[k]) {
            if (i-- == 0) {
                a->used[k] = 1;
                return a->value[k];
            }
        }
    return NULL;
}

int cli_npos(cli_args *a) {
    int n = 0;
    for (int k = 0; k < a->n; k++) n += !a->name[k];
    return n;
}

/* Edit distance with adjacent transpositions counted as one edit ("casual" is
 * one edit from "causal"). */
static int edit_distance(const char *x, const char *y) {
    size_t lx = strlen(x), ly = strlen(y);
    if (lx > 40 || ly > 40) return 99;
    int d[41][41];
    for (size_t i = 0; i <= lx; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= ly; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= lx; i++)
        for (size_t j = 1; j <= ly; j++) {
            int c = d[i - 1][j - 1] + (x[i - 1] != y[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[lx][ly];
}

/* The known option closest to name (at most 2 edits, and fewer than half its
 * letters), or NULL. */
static const char *closest(const cli_args *a, const char *name, char *buf, size_t len) {
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < a->nknown; i++) {
        int d = edit_distance(name, a->known[i]);
        if (d < bd) bd = d, best = a->known[i];
    }
    /* the flags, one by one from the space-separated list */
    for (const char *p = a->flags; p && *p;) {
        size_t n = strcspn(p, " ");
        if (n > 0 && n < len && strncmp(p, "--", 2) == 0) {
            char f[64];
            if (n < sizeof f) {
                memcpy(f, p, n);
                f[n] = 0;
                int d = edit_distance(name, f);
                if (d < bd) {
                    bd = d;
                    snprintf(buf, len, "%s", f);
                    best = buf;
                }
            }
        }
        p += n;
        while (*p == ' ') p++;
    }
    if (best && 2 * bd >= (int)strlen(name) - 2) best = NULL;
    return best;
}

int cli_finish(cli_args *a) {
    for (int k = 0; k < a->n; k++)
        if (!a->used[k]) {
            if (a->name[k]) {
                char buf[64];
                const char *hint = closest(a, a->name[k], buf, sizeof buf);
                if (hint)
                    snprintf(a->err, sizeof a->err, "%s: unknown option %s (did you mean %s?)", a->cmd, a->name[k],
                             hint);
                else
                    snprintf(a->err, sizeof a->err, "%s: unknown option %s (see dmabench %s --help)", a->cmd,
                             a->name[k], a->cmd);
            } else {
                snprintf(a->err, sizeof a->err, "%s: unexpected argument '%s'", a->cmd, a->value[k]);
            }
            return -1;
        }
    for (int k = 0; k < a->n; k++)
        if (a->novalue[k]) {
            snprintf(a->err, sizeof a->err, "%s: option %s needs a value", a->cmd, a->name[k]);
            return -1;
        }
    return 0;
}

int cli_list(const char *s, char **items, int max) {
    int n = 0;
    const char *p = s;
    while (p && *p && n < max) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        items[n] = strndup(p, len);
        if (!items[n]) break;
        n++;
        p = c ? c + 1 : NULL;
    }
    return n;
}

void cli_list_free(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
}

int cli_int_list(const char *s, long long *out, int max, char *err, size_t err_len) {
    int n = 0;
    char *items[64];
    int ni = cli_list(s, items, 64);
    for (int i = 0; i < ni; i++) {
        char *it = items[i], *end;
        long long a = strtoll(it, &end, 10), b = a, step = 1;
        char op = '+';
        if (end == it) goto bad;
        if (*end == '-') {
            char *e2;
            b = strtoll(end + 1, &e2, 10);
            if (e2 == end + 1) goto bad;
            end = e2;
            if (*end == '*' || *end == '+') {
                op = *end;
                char *e3;
                step = strtoll(end + 1, &e3, 10);
                if (e3 == end + 1) goto bad;
                end = e3;
            }
        }
        if (*end || b < a || step < 1 || (op == '*' && (step < 2 || a < 1))) goto bad;
        for (long long x = a; x <= b; x = op == '*' ? x * step : x + step) {
            if (n >= max) {
                snprintf(err, err_len, "list '%s' has more than %d values", s, max);
                cli_list_free(items, ni);
                return -1;
            }
            out[n++] = x;
        }
        continue;
    bad:
        snprintf(err, err_len, "bad list item '%s' (use 1,2,3 or A-B, A-B*K, A-B+K)", it);
        cli_list_free(items, ni);
        return -1;
    }
    cli_list_free(items, ni);
    if (n == 0) {
        snprintf(err, err_len, "empty list '%s'", s);
        return -1;
    }
    return n;
}
