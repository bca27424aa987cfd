/*
 * cli.h: a small option parser for the subcommands. Options are "--name value",
 * "--name=value" or bare flags; positional arguments are kept in order. Every
 * option a command reads is marked used; cli_finish reports any left over, so a
 * typo is an error and not silently ignored.
 */
#ifndef DMABENCH_CLI_H
#define DMABENCH_CLI_H

#include <stddef.h>
#include <stdint.h>

#define CLI_MAX 128

typedef struct {
    const char *cmd;
    int n;
    const char *name[CLI_MAX];   /* "--x" or NULL for a positional argument */
    const char *value[CLI_MAX];  /* NULL for a bare flag */
    int used[CLI_MAX];
    int novalue[CLI_MAX];        /* 1: a value-taking option last on the line, without its value */
    const char *known[CLI_MAX];  /* every option name the command asked about, for hints */
    int nknown;
    const char *flags;           /* the flags given to cli_parse */
    char err[256];
} cli_args;

/* Parses argv[first..argc); flags lists the options that take no value
 * (space separated, e.g. "--backward --causal"). Returns 0 or -1 (err set).
 * An option other than a flag at the very end of the line has no value: it is
 * kept, and cli_finish reports it as unknown (when the command never asks for
 * it) or as missing its value. */
int cli_parse(cli_args *a, const char *cmd, int argc, char **argv, int first, const char *flags);

/* The last value of an option, or def. */
const char *cli_str(cli_args *a, const char *name, const char *def);
/* The last value of either spelling of an option (e.g. "--variants" and its
 * alias "--variant"), or def. */
const char *cli_str2(cli_args *a, const char *name, const char *alias, const char *def);
/* Records name as an option of the command (for cli_finish's hints) without
 * reading it; cli_str and friends do this themselves. */
void cli_note(cli_args *a, const char *name);
int cli_flag(cli_args *a, const char *name);
/* Integer/real options: 0 on success, -1 with a message in a->err. */
int cli_int(cli_args *a, const char *name, long long def, long long lo, long long hi, long long *out);
int cli_real(cli_args *a, const char *name, double def, double *out);
/* The i-th positional argument, or NULL. */
const char *cli_pos(cli_args *a, int i);
int cli_npos(cli_args *a);
/* -1 with a message when an option was given that the command never read
 * ("unknown option --casual (did you mean --causal?)"), or when an option the
 * command reads was given without its value. */
int cli_finish(cli_args *a);

/* Splits a comma list into at most max items (strdup'd into one buffer the
 * caller frees with cli_list_free). Returns the count. */
int cli_list(const char *s, char **items, int max);
void cli_list_free(char **items, int n);

/* Integer lists in llama-bench style: "1,2,8", "1024-65536*2" (geometric),
 * "16-64+16" (arithmetic), "64-128" (step 1). Returns count or -1. */
int cli_int_list(const char *s, long long *out, int max, char *err, size_t err_len);

#endif
