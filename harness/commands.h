/*
 * commands.h: the dmabench subcommands. Each takes the whole argv (argv[1] is
 * the command name) and returns the process exit status: 0 success, 1 a failed
 * check or run, 2 bad usage or input.
 */
#ifndef DMABENCH_COMMANDS_H
#define DMABENCH_COMMANDS_H

int cmd_env(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_attn_inputs(int argc, char **argv);
int cmd_kernels(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_upload(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_probe(int argc, char **argv);

#endif
