/*
 * env.c: `dmabench env` prints the provenance block every report carries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "report.h"

int cmd_env(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "env", argc, argv, 2, "--help -h") != 0) goto bad;
    if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
        printf("usage: dmabench env\n\nPrints the provenance block (build, machine, GPU, run) as JSON.\n");
        return 0;
    }
    if (cli_finish(&a) != 0) goto bad;
    cJSON *p = report_provenance(argc, argv, 0);
    char *s = cJSON_Print(p);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(p);
    return 0;
bad:
    fprintf(stderr, "dmabench %s\n", a.err);
    return 2;
}
