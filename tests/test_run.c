/*
 * test_run.c: the suite parser and cell expansion (harness/run_suite.c) and the
 * task runners' argument checks (tasks/runner/runner.c), without training.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "model_tiny.h"
#include "run_suite.h"
#include "runner/runner.h"

/* predict through the host model: logits, then the first of equal maxima */
static task_status host_predict(void *ctx, const int32_t *ids, int B, int L, int32_t *pred, char *err, size_t err_len) {
    model *m = ctx;
    int V = model_get_config(m)->vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)B * L * V);
    if (!lg) return TASK_ERR_OOM;
    model_status ms = model_logits(m, ids, B, L, lg, err, err_len);
    for (int64_t r = 0; ms == MODEL_OK && r < (int64_t)B * L; r++) {
        const float *row = lg + r * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (row[j] > row[best]) best = j;
        pred[r] = best;
    }
    free(lg);
    return ms == MODEL_OK ? TASK_OK : TASK_ERR_DATA;
}

/* The GPU runner's greedy decoding (full forwards) against the KV-cache decoding of
 * the host model, for every variant: the same tokens. */
static void greedy_by_forward(void) {
    attn_variant vs[] = {ATTN_MHA, ATTN_SWA, ATTN_DMA, ATTN_NSA};
    for (int vi = 0; vi < 4; vi++) {
        model_config c;
        tiny_config(&c, vs[vi]);
        model *m = NULL;
        char err[256] = "";
        char name[96];
        snprintf(name, sizeof name, "greedy by full forwards = KV-cache greedy (%s)", attn_variant_name(vs[vi]));
        if (model_create(&c, &m, err, sizeof err) != MODEL_OK) {
            CHECK(0, name, "%s", err);
            continue;
        }
        tiny_randomize(m, 11 + vi, 0.3);
        const int B = 2, n = 9, n_new = 7;
        int32_t prompts[B * n], a[B * n_new], b[B * n_new];
        tiny_batch(5 + vi, B, n, c.vocab_size, prompts, NULL);
        model_status ms = model_greedy_batch(m, prompts, B, n, n_new, a, err, sizeof err);
        task_status ts = runner_greedy_by_forward(host_predict, m, prompts, B, n, n_new, b, err, sizeof err);
        CHECK(ms == MODEL_OK && ts == TASK_OK && !memcmp(a, b, sizeof a), name, "%s; first tokens %d/%d", err, a[0], b[0]);
        model_free(m);
    }
}

/* suite_estimate_time against a records file written here: the cells of seed 2
 * take the throughput measured for seed 1, the evaluation time scales with
 * n_test, records that did not finish are ignored, and a cell without a record
 * is counted as missing. */
static void timing_estimate(void) {
    suite s;
    char err[512] = "";
    int rc = suite_parse("{\"variants\":[\"mha\",\"dma\"],\"seeds\":[1,2],\"model\":{\"window\":16},"
                         "\"train\":{\"batch_size\":8},\"tasks\":{\"mqar\":{\"seq_len\":[64,128],"
                         "\"num_kv_pairs\":4,\"vocab_size\":256,\"d_model\":[32,64],\"steps\":100,\"n_test\":200}}}",
                         "t", &s, err, sizeof err);
    CHECK(rc == 0, "timing estimate: the suite parses", "%s", err);
    if (rc) return;
    suite_cell *c = NULL;
    int n = suite_cells(&s, &c, err, sizeof err);
    char path[] = "/tmp/dmabench-timing-XXXXXX.jsonl"; /* a record stream: recset_load goes by the suffix */
    int fd = mkstemps(path, 6);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    double want = 0;
    int nrec = 0;
    for (int i = 0; f && i < n; i++) {
        if (c[i].seed != 1 || c[i].d_model != 32) continue; /* d_model 64: no record */
        const double tps = 1000.0 * (1 + nrec++);
        fprintf(f, "{\"kind\":\"task\",\"status\":\"ok\",\"cell\":\"%s\",\"metrics\":{\"n\":50},"
                   "\"train\":{\"tokens_per_s\":%.1f,\"eval_s\":2.0},\"cell_s\":%d}\n", c[i].key, tps, 10 * nrec);
        /* seeds 1 and 2 of this key: 100 steps x 8 x seq_len at tps, plus 2 s x 200 / 50 */
        want += 2 * (100.0 * 8 * c[i].seq_len / tps + 8.0);
    }
    if (f) {
        fprintf(f, "{\"kind\":\"task\",\"status\":\"failed\",\"cell\":\"%s\",\"train\":{\"tokens_per_s\":1,"
                   "\"eval_s\":1}}\n", n > 0 ? c[0].key : "");
        fprintf(f, "{\"kind\":\"task\",\"cell\":"); /* a torn last line */
        fclose(f);
    }
    FILE *out = tmpfile();
    double got = -1;
    int missing = n > 0 && out ? suite_estimate_time(&s, c, n, path, 0, out, &got, err, sizeof err) : -1;
    CHECK(n == 16 && nrec == 4 && missing == 8 && fabs(got - want) <= 1e-9 * want, "timing estimate from measured records",
          "cells %d, records %d, missing %d, estimate %.6f s, want %.6f s (%s)", n, nrec, missing, got, want, err);
    /* the 4 cells the file ran (seed 1, d_model 32), cell_s 10 + 20 + 30 + 40 */
    char ran[512] = "";
    if (out) {
        fflush(out);
        rewind(out);
        while (fgets(ran, sizeof ran, out) && !strstr(ran, " ran ")) {
        }
    }
    CHECK(strstr(ran, "ran 4 of these 16 cells") && strstr(ran, "100 s as they ran"), "timing estimate: the cells the file ran",
          "%s", ran);
    /* a budget of the evaluations (8 cells x 8 s) plus twice the training: steps x 2 */
    char line[512] = "";
    if (out) {
        rewind(out);
        if (ftruncate(fileno(out), 0)) {
        }
        suite_estimate_time(&s, c, n, path, 64.0 + 2 * (want - 64.0), out, &got, err, sizeof err);
        fflush(out);
        rewind(out);
        while (fgets(line, sizeof line, out) && !strstr(line, "a budget of")) {
        }
    }
    CHECK(strstr(line, "times 2.000") && strstr(line, "mqar \"steps\": 200"), "timing estimate: the steps that fit a budget",
          "%s", line);
    missing = out ? suite_estimate_time(&s, c, n, "/nonexistent/records.jsonl", 0, out, &got, err, sizeof err) : 0;
    CHECK(missing == -1 && strstr(err, "cannot open"), "timing estimate: a missing records file is an error", "%s", err);
    if (out) fclose(out);
    remove(path);
    free(c);
    suite_free(&s);
}

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
    timing_estimate();
    suite s;
    char err[512] = "";
    greedy_by_forward();
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
    /* the mqar sweep options and RULER-style needles */
    rc = suite_parse("{\"tasks\":{\"mqar\":{\"seq_len\":64,\"num_kv_pairs\":4,\"vocab_size\":96,\"steps\":100,"
                     "\"lrs\":[1e-3,3e-3],\"early_stop\":0.99,\"eval_every\":20,\"n_val\":64},"
                     "\"niah\":{\"train_context_len\":512,\"context_len\":[512],\"n_keys\":4,\"n_values\":3}}}",
                     "t", &s, err, sizeof err);
    CHECK(rc == 0, "sweep_parses", "%s", err);
    if (rc == 0) {
        const suite_task_cfg *q = &s.task[SUITE_MQAR];
        CHECK(q->lrs.n == 2 && q->lrs.v[1] == 3e-3 && q->early_stop == 0.99 && q->eval_every == 20 && q->n_val == 64,
              "sweep_fields", "lrs %d early_stop %g eval_every %lld n_val %d", q->lrs.n, q->early_stop,
              (long long)q->eval_every, q->n_val);
        CHECK(s.task[SUITE_NIAH].n_keys == 4 && s.task[SUITE_NIAH].n_values == 3, "multi_needle_fields", "%d keys %d values",
              s.task[SUITE_NIAH].n_keys, s.task[SUITE_NIAH].n_values);
        suite_free(&s);
    }
    rc = suite_parse("{\"tasks\":{\"mqar\":{\"seq_len\":64,\"num_kv_pairs\":4,\"vocab_size\":96}}}", "t", &s, err,
                     sizeof err);
    CHECK(rc == 0 && s.task[SUITE_MQAR].lrs.n == 0 && s.task[SUITE_MQAR].early_stop == 0, "no_sweep_by_default",
          "rc %d lrs %d early_stop %g", rc, s.task[SUITE_MQAR].lrs.n, s.task[SUITE_MQAR].early_stop);
    if (rc == 0) suite_free(&s);
    CHECK(parse_fails("{\"tasks\":{\"mqar\":{\"seq_len\":64,\"num_kv_pairs\":4,\"vocab_size\":96,\"lrs\":[]}}}", "lrs"),
          "sweep_empty_lrs", "accepted");
    CHECK(parse_fails("{\"tasks\":{\"mqar\":{\"seq_len\":64,\"num_kv_pairs\":4,\"vocab_size\":96,\"n_val\":8}}}",
                      "need lrs or early_stop"),
          "sweep_n_val_alone", "accepted");
    CHECK(parse_fails("{\"tasks\":{\"niah\":{\"train_context_len\":512,\"context_len\":[512],\"n_values\":17}}}",
                      "n_values"),
          "too_many_values", "accepted");
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
    /* no sweep: runner_mqar_ex is runner_mqar, bit for bit */
    double acc2 = NAN, se2 = NAN;
    ts = runner_mqar_ex(&rm, &mc, 8, NULL, NULL, &acc2, &se2, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_OK && acc2 == acc && (se2 == se || (isnan(se) && isnan(se2))), "runner_mqar_ex_plain",
          "acc %g vs %g", acc2, acc);
    /* a sweep of two lrs with early stop at any accuracy: each run stops at its
     * first evaluation, the best is kept and scored on the test set */
    double lrs[2] = {1e-4, 1e-2};
    runner_mqar_sweep sw;
    runner_mqar_sweep_default(&sw);
    sw.n_lrs = 2;
    sw.lrs = lrs;
    sw.early_stop = 1e-12;
    sw.eval_every = 1;
    sw.n_val = 8;
    rm.steps = 4;
    runner_mqar_result res;
    ts = runner_mqar_ex(&rm, &mc, 8, &sw, &res, &acc2, NULL, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_OK && res.n_trials == 2 && acc2 >= 0 && acc2 <= 1, "runner_mqar_sweep", "status %d trials %d: %s",
          ts, res.n_trials, err);
    if (ts == TASK_OK && res.n_trials == 2) {
        int okst = 1;
        for (int i = 0; i < 2; i++) {
            const runner_mqar_trial *t = &res.trials[i];
            if (t->lr != lrs[i] || t->steps < 1 || t->steps > 4 || (t->early_stopped != (t->steps < 4 || t->val_acc > 0)))
                okst = 0;
            if (t->early_stopped && t->val_acc < sw.early_stop) okst = 0;
        }
        CHECK(okst, "runner_mqar_sweep_trials", "lr %g: %lld steps, val %g; lr %g: %lld steps, val %g", res.trials[0].lr,
              (long long)res.trials[0].steps, res.trials[0].val_acc, res.trials[1].lr, (long long)res.trials[1].steps,
              res.trials[1].val_acc);
        const runner_mqar_trial *b = &res.trials[res.best], *o = &res.trials[1 - res.best];
        CHECK(b->val_acc > o->val_acc || (b->val_acc == o->val_acc && b->steps <= o->steps), "runner_mqar_sweep_best",
              "best %d (val %g) over val %g", res.best, b->val_acc, o->val_acc);
    }
    /* without early stop every run trains the whole budget */
    sw.early_stop = 0;
    ts = runner_mqar_ex(&rm, &mc, 8, &sw, &res, &acc2, NULL, &st, NULL, NULL, err, sizeof err);
    CHECK(ts == TASK_OK && res.n_trials == 2 && res.trials[0].steps == 4 && res.trials[1].steps == 4 &&
              !res.trials[0].early_stopped,
          "runner_mqar_sweep_no_stop", "status %d steps %lld %lld", ts, (long long)res.trials[0].steps,
          (long long)res.trials[1].steps);
    return check_exit();
}
