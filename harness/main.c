/*
 * main.c: the dmabench command. Dispatches to the subcommands in harness/.
 *
 *   dmabench run [SUITE]     the main job: a suite of task runs and a kernel profile
 *   dmabench verify            check every backend against the reference
 *   dmabench attn ...          run one operator on tensors from a safetensors file
 *   dmabench env               print the provenance block
 *   dmabench help [COMMAND]
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "version.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "the main job: train and score every variant on MQAR, needle, perplexity; kernel profile"},
    {"verify", cmd_verify, "check every backend against the double-precision reference"},
    {"attn", cmd_attn, "run one attention operator on tensors from a safetensors file"},
    {"attn-inputs", cmd_attn_inputs, "write seeded random inputs for `dmabench attn`"},
    {"kernels", cmd_kernels, "speed and memory sweep of the operators (llama-bench style)"},
    {"train", cmd_train, "train the Doge-style model with any attention variant (checkpoints, exact resume)"},
    {"generate", cmd_generate, "continue a prompt with a trained model (KV cache; greedy or sampled)"},
    {"forward", cmd_forward, "logits of a model for input_ids from a safetensors file"},
    {"table", cmd_table, "paper-style tables (md, LaTeX, CSV) from report records"},
    {"plot", cmd_plot, "SVG plots: speed, memory, needle heatmap, MQAR, perplexity"},
    {"compare", cmd_compare, "regression verdicts between two reports (the CI gate)"},
    {"export", cmd_export, "github-action-benchmark or Bencher JSON from a report"},
    {"fetch", cmd_fetch, "download a dataset or URL into the cache, checksum-verified"},
    {"upload", cmd_upload, "POST a report to a results server"},
    {"env", cmd_env, "print the provenance block (build, machine, GPU) as JSON"},
    {"probe", cmd_probe, "the GPU's rate for the backward's fp32 dK/dV sums, alone"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof *commands)

static void usage(FILE *f) {
    fprintf(f,
            "dmabench %s: Dynamic Mask Attention against dense, sliding-window and native\n"
            "sparse attention: kernel speed and memory, and long-context task quality.\n"
            "\n"
            "usage: dmabench COMMAND [options]    (dmabench COMMAND --help for details)\n"
            "\n"
            "commands:\n",
            DMABENCH_VERSION);
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-12s %s\n", "help", "this text");
    fprintf(f, "  %-12s %s\n", "version", "print the version and build");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "help") || !strcmp(c, "--help") || !strcmp(c, "-h")) {
        if (argc > 2)
            for (int i = 0; i < NCOMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    char *av[] = {argv[0], argv[2], "--help", NULL};
                    return commands[i].fn(3, av);
                }
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "version") || !strcmp(c, "--version")) {
        printf("dmabench %s (commit %s%s)\n", DMABENCH_VERSION, DMABENCH_GIT_COMMIT, DMABENCH_GIT_DIRTY ? ", dirty" : "");
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].fn(argc, argv);
    fprintf(stderr, "dmabench: unknown command '%s' (run 'dmabench help' for the list)\n", c);
    return 2;
}
