/*
 * test_run.c: the suite parser and cell expansion (harness/run_suite.c) and the
 * task runners' argument checks (tasks/runner/runner.c), without training.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run_suite.h"
#include "runner/runner.h"

static int parse_fails(const char *json, const char *want) {
    suite s;
    char err[512] = "";
    int rc = suite_parse(json, "t", &s, err, sizeof err);
    if (rc == 0) {
        suite_free(&s);
        return 0;
    }
    return strstr(err, want) != NULL && !strchr(err, '\n');
}

int main(void) {
    suite s;
    char err[512] = "";
    /* the embedded default parses and expands */
    int rc = suite_parse(suite_quick_json, "quick", &s, err, sizeof err);
    CHECK(rc == 0, "quick_parses", "%s", err);
    if (rc == 0) {
        suite_cell *c = NULL;
        int n = suite_cells(&s, &c, err, sizeof err);
        CHECK(n == 12, "quick_cells", "%d cells", n);
        int distinct = 1;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (!strcmp(c[i].key, c[j].key)) distinct = 0;
        CHECK(distinct, "cell_keys_distinct", "two cells share a key");
        CHECK(n > 0 && c[0].task == SUITE_MQAR && !strcmp(s.variants[c[0].variant], "mha"), "cell_order",
              "first cell %s", n > 0 ? c[0].key : "none");
        CHECK(s.kernel_argc > 0 && !strcmp(s.kernel_argv[0], "--variants"), "kernel_args", "argc %d", s.kernel_argc);
        free(c);
        suite_free(&s);
    }
    /* overrides: task keys over the model/train blocks; lists cross */
    rc = suite_parse("{\"variants\":[\"dma\"],\"seeds\":[1,2],\"model\":{\"window\":8,\"d_model\":32},"
                     "\"train\":{\"steps\":7,\"batch_size\":3},\"tasks\":{\"mqar\":{\"seq_len\":[32,64],\"num_kv_pairs\":[2,4],"
                     "\"vocab_size\":128,\"window\":4,\"d_model\":[16,32]}}}",
                     "t", &s, err, sizeof err);
    CHECK(rc == 0, "overrides_parse", "%s", err);
    if (rc == 0) {
        CHECK(s.task[SUITE_MQAR].base.batch_size == 3, "train_block_batch_size", "batch %d",
              s.task[SUITE_MQAR].base.batch_size);
        CHECK(s.task[SUITE_MQAR].base.window == 4 && s.task[SUITE_MQAR].base.steps == 7, "task_overrides",
              "window %d steps %lld", s.task[SUITE_MQAR].base.window, (long long)s.task[SUITE_MQAR].base.steps);
        suite_cell *c = NULL;
        int n = suite_cells(&s, &c, err, sizeof err);
        CHECK(n == 2 * 2 * 2 * 2, "cross_product", "%d cells, want 16", n);
        free(c);
        suite_free(&s);
    }
    CHECK(parse_fails("{\"tasks\":{\"mqar\":{\"seq_len\":[64],\"num_kv_pairs\":[32]}}}", "num_kv_pairs must be"), "mqar_rule_checked",
          "no error naming the rule");
    CHECK(parse_fails("{\"tasks\":{\"niah\":{\"train_context_len\":128,\"context_len\":[20]}}}", "context_len 20"),
          "niah_too_short", "accepted");
    CHECK(parse_fails("{\"tasks\":{\"ppl\":{\"train_context\":64,\"synth\":{\"branching\":3}}}}", "synth"),
          "synth_checked", "accepted");
    CHECK(parse_fails("{\"seeds\":[1,1],\"tasks\":{\"ppl\":{\"train_context\":64}}}", "twice"), "seed_twice",
          "accepted");
    CHECK(parse_fails("{\"backend\":\"tpu\",\"tasks\":{\"ppl\":{\"train_context\":64}}}", "backend"), "bad_backend",
          "accepted");
    CHECK(parse_fails("[1,2]", "object"), "not_object", "accepted");
    CHECK(parse_fails("{\"kernels\":{\"n\":[]}}", "empty"), "kernels_empty_list", "accepted");

    /* the runners refuse bad input with a message, before training */
    runner_model rm;
    runner_model_default(&rm);
    snprintf(rm.variant, sizeof rm.variant, "flash");
    mqar_config mc;
    mqar_config_default(&mc);
    mc.vocab_size = 128;
    mc.seq_len = 32;
    mc.num_kv_pairs = 2;
    double acc;
    runner_stats st;
    task_status ts = runner_mqar(&rm, &mc, 4, &acc, NULL, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_ERR_ARG && strstr(err, "flash"), "runner_bad_variant", "status %d: %s", ts, err);
    snprintf(rm.variant, sizeof rm.variant, "mha");
    ts = runner_mqar(&rm, &mc, 0, &acc, NULL, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_ERR_ARG, "runner_no_test_examples", "status %d", ts);
    /* one tiny mqar run end to end: finite accuracy in [0, 1] */
    rm.d_model = 16;
    rm.n_heads = 2;
    rm.n_kv_heads = 1;
    rm.n_layers = 1;
    rm.steps = 3;
    rm.batch_size = 2;
    double se = NAN;
    ts = runner_mqar(&rm, &mc, 8, &acc, &se, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_OK && acc >= 0 && acc <= 1 && st.n_params > 0, "runner_mqar_tiny", "status %d acc %g: %s", ts,
          acc, err);
    return check_exit();
}
