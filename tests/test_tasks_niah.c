/*
 * test_tasks_niah.c: the needle-in-a-haystack generator, its scoring, the
 * Wilson interval and the depth x length matrix.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "niah/niah.h"

/* the prompt of an example as a C string (BOS dropped, specials as '#') */
static char *prompt_text(const niah_example *ex, int with_answer) {
    int n = ex->n_prompt + (with_answer ? ex->n_answer : 0);
    char *s = malloc((size_t)n + 1);
    for (int i = 0; i < n; i++) s[i] = ex->ids[i] < 256 ? (char)ex->ids[i] : '#';
    s[n] = 0;
    return s;
}

static int count_sub(const char *s, const char *sub) {
    int k = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) k++;
    return k;
}

/* The longest sentence of the default filler, + 2 (the ". " before the next). */
#define FILLER_MAX_SENTENCE 24

static void check_single(void) {
    char err[256];
    niah_config c;
    niah_config_default(&c);
    niah_example ex;
    task_status st = niah_make(&c, 512, 0.5, 1, 0, &ex, err, sizeof err);
    CHECK(!st, "niah: an example of 512 tokens", "%s", err);
    if (st) return;
    char *s = prompt_text(&ex, 1);
    CHECK(ex.n_prompt == 512 && ex.ids[0] == TASK_TOK_BOS, "niah: prompt is exactly context_len and starts with BOS",
          "n_prompt %d first %d", ex.n_prompt, ex.ids[0]);
    const char *q = "\nWhat is the pass key? The pass key is ";
    CHECK(ex.n_prompt >= (int)strlen(q) && !strncmp(s + ex.n_prompt - strlen(q), q, strlen(q)),
          "niah: prompt ends with the question", "tail '%s'", s + ex.n_prompt - 40);
    char needle[64];
    snprintf(needle, sizeof needle, "The pass key is %s. Remember it. ", ex.values[0]);
    CHECK(strlen(ex.values[0]) == 5 && ex.values[0][0] != '0' && !strncmp(s + ex.asked_pos, needle, strlen(needle)),
          "niah: the needle with a 5-digit key at asked_pos", "value '%s' at pos '%.40s'", ex.values[0],
          s + ex.asked_pos);
    CHECK(count_sub(s, "The pass key is ") == 2 && count_sub(s, ex.values[0]) == 2,
          "niah: one needle; the key appears in the needle and the answer only", "counts %d %d",
          count_sub(s, "The pass key is "), count_sub(s, ex.values[0]));
    char ans[16];
    snprintf(ans, sizeof ans, "%s.", ex.values[0]);
    CHECK(!strcmp(ex.answer, ans) && ex.n_answer == 6 && !strcmp(s + ex.n_prompt, ans) &&
              niah_answer_len(&c) == ex.n_answer,
          "niah: the answer tokens are the key and '.'", "answer '%s' tail '%s'", ex.answer, s + ex.n_prompt);
    /* the haystack is the filler, ending at a sentence end just before the needles/question */
    CHECK(ex.hay_len == 512 - 1 - 36 - (int)strlen(q), "niah: haystack length", "%d", ex.hay_len);
    CHECK(strstr(s, "The grass is green. The sky is blue.") != NULL, "niah: filler haystack", "no filler");
    free(s);
    niah_example_free(&ex);

    /* too short a context, bad depth */
    st = niah_make(&c, niah_min_prompt_len(&c) - 1, 0.5, 1, 0, &ex, err, sizeof err);
    CHECK(st == TASK_ERR_ARG && strstr(err, "shorter"), "niah: context too short rejected", "'%s'", err);
    st = niah_make(&c, niah_min_prompt_len(&c), 0.5, 1, 0, &ex, err, sizeof err);
    CHECK(!st && ex.hay_len == 0, "niah: the shortest context has no haystack", "%s", err);
    niah_example_free(&ex);
    st = niah_make(&c, 512, 1.5, 1, 0, &ex, err, sizeof err);
    CHECK(st == TASK_ERR_ARG && strstr(err, "depth"), "niah: depth outside [0, 1] rejected", "'%s'", err);
    niah_config bad = c;
    bad.n_keys = 17;
    CHECK(niah_validate(&bad, err, sizeof err) == TASK_ERR_ARG, "niah: n_keys > 16 rejected", "ok");
    bad = c;
    bad.key_digits = 0;
    CHECK(niah_validate(&bad, err, sizeof err) == TASK_ERR_ARG, "niah: key_digits 0 rejected", "ok");
}

static void check_depths(void) {
    char err[256];
    niah_config c;
    niah_config_default(&c);
    double depths[NIAH_N_DEPTHS];
    niah_default_depths(depths);
    CHECK(depths[0] == 0 && fabs(depths[10] - 1) < 1e-15 && fabs(depths[3] - 0.3) < 1e-15,
          "niah: default depths 0..100% by 10%", "%g %g", depths[0], depths[10]);
    static const int lens[] = {128, 256, 1024, 4096, 16384};
    double worst = 0;
    int pos_ok = 1, ends_ok = 1, cells = 0;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (int d = 0; d < NIAH_N_DEPTHS; d++)
            for (int smp = 0; smp < 3; smp++) {
                niah_example ex;
                if (niah_eval_example(&c, lens[l], depths[d], smp, &ex, err, sizeof err)) {
                    pos_ok = 0;
                    continue;
                }
                cells++;
                int H = ex.hay_len;
                /* the needle's haystack offset, measured from the tokens: asked_pos - BOS */
                double actual = (double)(ex.asked_pos - 1) / H;
                double tol = (double)FILLER_MAX_SENTENCE / H;
                double dev = fabs(actual - depths[d]) / tol;
                if (dev > worst) worst = dev;
                if (fabs(actual - ex.depth_actual) > 1e-12) pos_ok = 0;
                if (d == 0 && ex.asked_pos != 1) ends_ok = 0;
                if (d == NIAH_N_DEPTHS - 1 && ex.asked_pos + ex.needle_len[0] != ex.n_prompt - 39) ends_ok = 0;
                /* at a sentence boundary: after ". " (or at the start) */
                if (ex.asked_pos > 1 && !(ex.ids[ex.asked_pos - 1] == ' ' && ex.ids[ex.asked_pos - 2] == '.'))
                    pos_ok = 0;
                niah_example_free(&ex);
            }
    CHECK(cells == 5 * 11 * 3 && pos_ok, "niah: needle at a sentence boundary, depth_actual = offset / H",
          "cells %d", cells);
    CHECK(worst <= 1.0, "niah: needle within one sentence of the asked depth", "worst deviation %.2f sentences",
          worst);
    CHECK(ends_ok, "niah: depth 0 right after BOS, depth 100% right before the question", "misplaced");

    /* cells are reproducible and samples differ */
    niah_example a, b;
    niah_eval_example(&c, 1024, 0.3, 2, &a, err, sizeof err);
    niah_eval_example(&c, 1024, 0.3, 2, &b, err, sizeof err);
    int same = a.n_prompt == b.n_prompt && !memcmp(a.ids, b.ids, sizeof(int32_t) * (a.n_prompt + a.n_answer));
    niah_example_free(&b);
    niah_eval_example(&c, 1024, 0.3, 3, &b, err, sizeof err);
    int differ = strcmp(a.values[0], b.values[0]) != 0;
    CHECK(same && differ, "niah: eval cells reproducible, samples differ", "same %d differ %d", same, differ);
    niah_example_free(&a), niah_example_free(&b);
}

static void check_multi(void) {
    char err[256];
    niah_config c;
    niah_config_default(&c);

    /* multi-key: 4 named needles, one asked */
    c.n_keys = 4;
    niah_example ex;
    task_status st = niah_make(&c, 1024, 0.25, 5, 1, &ex, err, sizeof err);
    CHECK(!st && ex.n_needles == 4 && ex.n_values == 1 && ex.key_name[0], "niah: multi-key shape", "%s", err);
    if (!st) {
        char *s = prompt_text(&ex, 0);
        char q[128], nd[96];
        snprintf(q, sizeof q, "\nWhat is the pass key for %s? The pass key for %s is ", ex.key_name, ex.key_name);
        snprintf(nd, sizeof nd, "The pass key for %s is %s. Remember it. ", ex.key_name, ex.values[0]);
        CHECK(!strcmp(s + ex.n_prompt - strlen(q), q), "niah: multi-key question names the key", "'%s'",
              s + ex.n_prompt - strlen(q));
        CHECK(!strncmp(s + ex.asked_pos, nd, strlen(nd)) && count_sub(s, nd) == 1,
              "niah: the asked key's needle holds the answer", "at asked_pos '%.50s'", s + ex.asked_pos);
        /* four different names, four different values */
        int ok = 1;
        char names[4][8], vals[4][12];
        for (int i = 0; i < 4; i++) {
            if (sscanf(s + ex.needle_pos[i], "The pass key for %7s is %11[0-9]", names[i], vals[i]) != 2) ok = 0;
            for (int j = 0; j < i; j++) ok &= strcmp(names[i], names[j]) && strcmp(vals[i], vals[j]);
        }
        CHECK(ok && count_sub(s, "The pass key for ") == 5, "niah: distinct names and values across needles",
              "needles not distinct");
        free(s);
        niah_example_free(&ex);
    }

    /* multi-value: one key, 3 values, all asked, answer in text order */
    niah_config_default(&c);
    c.n_values = 3;
    st = niah_make(&c, 2048, 0.6, 5, 2, &ex, err, sizeof err);
    CHECK(!st && ex.n_needles == 3 && ex.n_values == 3, "niah: multi-value shape", "%s", err);
    if (!st) {
        char *s = prompt_text(&ex, 1);
        const char *q = "\nWhat are all the pass keys? The pass keys are ";
        CHECK(!strncmp(s + ex.n_prompt - strlen(q), q, strlen(q)), "niah: multi-value question", "'%.60s'",
              s + ex.n_prompt - strlen(q));
        char want[64];
        snprintf(want, sizeof want, "%s, %s, %s.", ex.values[0], ex.values[1], ex.values[2]);
        int order = 1;
        for (int i = 0; i < 3; i++) {
            char v[12];
            sscanf(s + ex.needle_pos[i], "The pass key is %11[0-9]", v);
            order &= !strcmp(v, ex.values[i]);
            order &= i == 0 || ex.needle_pos[i] > ex.needle_pos[i - 1];
        }
        CHECK(!strcmp(ex.answer, want) && !strcmp(s + ex.n_prompt, want) && order &&
                  ex.n_answer == niah_answer_len(&c),
              "niah: multi-value answer lists the values in text order", "answer '%s'", ex.answer);
        free(s);
        niah_example_free(&ex);
    }

    /* both: 3 keys, the asked one with 2 values: 4 needles */
    c.n_keys = 3, c.n_values = 2;
    st = niah_make(&c, 1024, 0.0, 9, 3, &ex, err, sizeof err);
    int asked = 0;
    for (int i = 0; !st && i < ex.n_needles; i++) asked += ex.needle_is_asked[i];
    CHECK(!st && ex.n_needles == 4 && asked == 2 && ex.n_values == 2, "niah: multi-key multi-value shape",
          "needles %d asked %d", ex.n_needles, asked);
    if (!st) niah_example_free(&ex);
}

static void check_corpus_haystack(void) {
    char err[256];
    static const char text[] =
        "Alpha beta gamma. Delta epsilon zeta eta! Theta iota kappa? Lambda mu nu xi omicron.\n"
        "Pi rho sigma tau. Upsilon phi chi psi omega. One two three four five. Six seven eight.\n";
    size_t tl = strlen(text);
    unsigned char *big = malloc(tl * 40);
    for (int i = 0; i < 40; i++) memcpy(big + i * tl, text, tl);
    niah_config c;
    niah_config_default(&c);
    c.text = big, c.text_len = tl * 40;
    int ok = 1, within = 1;
    for (int k = 0; k < 20; k++) {
        niah_example ex;
        double depth = k / 19.0;
        if (niah_make(&c, 1000, depth, 4, (uint64_t)k, &ex, err, sizeof err)) {
            ok = 0;
            break;
        }
        char *s = prompt_text(&ex, 0);
        /* the haystack is a piece of the text ending at a sentence end */
        char *q = strstr(s, "\nWhat is the pass key?");
        int b = ex.asked_pos;
        int boundary = b == 1 || s[b - 1] == '\n' || (s[b - 1] == ' ' && strchr(".!?", s[b - 2]));
        int pre_q = (int)(q - s) - 1; /* the byte before the question */
        int end_ok = s[pre_q] == '\n' || s[pre_q] == ' ';
        if (!boundary || !end_ok) ok = 0;
        if (fabs(ex.depth_actual - depth) > 48.0 / ex.hay_len) within = 0;
        free(s);
        niah_example_free(&ex);
    }
    CHECK(ok, "niah: corpus haystack cut at sentence ends, needle at a boundary", "%s", err);
    CHECK(within, "niah: corpus haystack depth within a sentence", "off");
    niah_example ex;
    task_status st = niah_make(&c, (int)(tl * 40) + 200, 0.5, 4, 0, &ex, err, sizeof err);
    CHECK(st == TASK_ERR_DATA && strstr(err, "haystack"), "niah: text shorter than the haystack rejected", "'%s'",
          err);
    free(big);
}

static void check_training(void) {
    char err[256];
    niah_config c;
    niah_config_default(&c);
    int B = 16, T = 384;
    int32_t *ids = malloc(sizeof(int32_t) * B * T), *lab = malloc(sizeof(int32_t) * B * T);
    task_status st = niah_train_batch(&c, 3, B, T, ids, lab, err, sizeof err);
    CHECK(!st, "niah: training batch", "%s", err);
    int ok = 1, minlen = T, maxlen = 0;
    for (int r = 0; r < B && !st; r++) {
        int32_t *x = ids + r * T, *y = lab + r * T;
        int end = T;
        while (end > 0 && x[end - 1] == TASK_TOK_PAD) end--;
        if (end < minlen) minlen = end;
        if (end > maxlen) maxlen = end;
        int nl = 0;
        char ans[32];
        for (int t = 0; t < T; t++) {
            if (y[t] == TASK_IGNORE) continue;
            if (t + 1 >= end || y[t] != x[t + 1] || nl >= 31) ok = 0;
            else ans[nl] = (char)y[t];
            nl++;
        }
        ans[nl < 31 ? nl : 31] = 0;
        /* labels: exactly the answer (5 digits and '.'), the last bytes of the example */
        if (nl != 6 || ans[5] != '.' || y[end - 7] == TASK_IGNORE || y[end - 8] != TASK_IGNORE ||
            y[end - 1] != TASK_IGNORE)
            ok = 0;
        if (x[0] != TASK_TOK_BOS) ok = 0;
        /* the labelled key is the one in the needle */
        char needle[40];
        snprintf(needle, sizeof needle, "The pass key is %.5s.", ans);
        char *s = malloc((size_t)end + 1);
        for (int t = 0; t < end; t++) s[t] = x[t] < 256 ? (char)x[t] : '#';
        s[end] = 0;
        if (!strstr(s, needle)) ok = 0;
        free(s);
    }
    CHECK(ok, "niah: training rows: BOS, padding, labels only on the answer", "row check failed");
    CHECK(minlen < maxlen && maxlen <= T && minlen >= niah_min_prompt_len(&c) + niah_answer_len(&c),
          "niah: training lengths vary up to the context", "min %d max %d", minlen, maxlen);
    /* reproducible */
    int32_t *ids2 = malloc(sizeof(int32_t) * B * T), *lab2 = malloc(sizeof(int32_t) * B * T);
    niah_train_batch(&c, 3, B, T, ids2, lab2, err, sizeof err);
    CHECK(!memcmp(ids, ids2, sizeof(int32_t) * B * T) && !memcmp(lab, lab2, sizeof(int32_t) * B * T),
          "niah: training batch reproducible", "differs");
    niah_train_batch(&c, 4, B, T, ids2, lab2, err, sizeof err);
    CHECK(memcmp(ids, ids2, sizeof(int32_t) * B * T), "niah: next batch differs", "identical");
    /* the batch source */
    task_batcher *bt;
    st = niah_batcher_create(&c, &bt, err, sizeof err);
    if (!st) {
        st = bt->get_batch(bt, 3, B, T, ids2, lab2, err, sizeof err);
        CHECK(!st && !memcmp(ids, ids2, sizeof(int32_t) * B * T) && bt->vocab_needed == TASK_BYTE_VOCAB,
              "niah: batcher = train_batch", "%s", err);
        st = bt->get_batch(bt, 0, 2, 50, ids2, lab2, err, sizeof err);
        CHECK(st == TASK_ERR_ARG && strstr(err, "shortest"), "niah: too short a training context rejected", "'%s'",
              err);
        task_batcher_free(bt);
    }
    free(ids), free(lab), free(ids2), free(lab2);
}

static int score_str(const niah_example *ex, const char *gen, double *recall) {
    int32_t t[64];
    int n = (int)strlen(gen);
    for (int i = 0; i < n; i++) t[i] = (unsigned char)gen[i];
    if (recall) *recall = niah_recall(ex, t, n);
    return niah_score(ex, t, n);
}

static void check_scoring(void) {
    niah_example ex;
    memset(&ex, 0, sizeof ex);
    ex.n_values = 1;
    strcpy(ex.values[0], "73915");
    CHECK(score_str(&ex, "73915.", NULL) == 1 && score_str(&ex, " 73915. Rem", NULL) == 1 &&
              score_str(&ex, "73915", NULL) == 1,
          "niah: exact match accepts the key", "rejected");
    CHECK(!score_str(&ex, "7391", NULL) && !score_str(&ex, "739150", NULL) && !score_str(&ex, "73916.", NULL) &&
              !score_str(&ex, "73915, 1.", NULL) && !score_str(&ex, "", NULL) && !score_str(&ex, ".73915", NULL),
          "niah: exact match rejects near misses", "accepted");
    int32_t sp[6] = {'7', '3', TASK_TOK_EOS, '9', '1', '5'};
    CHECK(!niah_score(&ex, sp, 6), "niah: a special token ends the answer", "accepted");
    ex.n_values = 2;
    strcpy(ex.values[1], "11111");
    double rc;
    CHECK(score_str(&ex, "11111, 73915.", &rc) == 1 && rc == 1, "niah: multi-value in any order", "rejected");
    CHECK(score_str(&ex, "73915.", &rc) == 0 && rc == 0.5, "niah: multi-value needs all values (recall 1/2)",
          "score or recall wrong (%g)", rc);
    CHECK(score_str(&ex, "73915, 73915.", &rc) == 0, "niah: a value twice is not all values", "accepted");
}

static void check_wilson_grid(void) {
    static const struct {
        int k, n;
        double lo, hi;
    } W[] = {{8, 10, 0.4901624715366418, 0.9433178485456248},
             {0, 20, 0.0, 0.16112515805281938},
             {20, 20, 0.8388748419471806, 1.0},
             {5, 10, 0.236593090512564, 0.7634069094874361},
             {37, 50, 0.6044684273515117, 0.8412847250644762}};
    int ok = 1;
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++) {
        double lo, hi;
        task_wilson(W[i].k, W[i].n, TASK_Z95, &lo, &hi);
        if (fabs(lo - W[i].lo) > 1e-12 || fabs(hi - W[i].hi) > 1e-12) ok = 0;
    }
    CHECK(ok, "niah: Wilson 95% intervals match known values", "mismatch");
    double lo, hi;
    task_wilson(0, 0, TASK_Z95, &lo, &hi);
    CHECK(lo == 0 && hi == 1, "niah: Wilson with no sample is [0, 1]", "[%g, %g]", lo, hi);

    char err[128];
    int lens[2] = {256, 1024};
    double depths[3] = {0, 0.5, 1};
    niah_grid g;
    niah_grid_init(&g, lens, 2, depths, 3, err, sizeof err);
    for (int i = 0; i < 10; i++) niah_grid_add(&g, 0, 1, i < 8, i < 8 ? 1.0 : 0.5);
    for (int i = 0; i < 20; i++) niah_grid_add(&g, 1, 2, 0, 0.0);
    double acc;
    int64_t n;
    niah_grid_cell(&g, 0, 1, &acc, &lo, &hi, &n);
    CHECK(n == 10 && fabs(acc - 0.8) < 1e-15 && fabs(lo - W[0].lo) < 1e-12, "niah: grid cell accuracy and interval",
          "acc %g n %lld", acc, (long long)n);
    niah_grid_cell(&g, 1, 0, &acc, &lo, &hi, &n);
    CHECK(n == 0 && isnan(acc), "niah: empty cell", "n %lld", (long long)n);
    /* recall 8 x 1 and 2 x 0.5: mean 0.9, sample variance 0.4/9, interval clipped at 1 */
    double rm, rlo, rhi;
    niah_grid_recall(&g, 0, 1, &rm, &rlo, &rhi);
    double half = 1.959963984540054 * sqrt(0.4 / 9 / 10);
    CHECK(fabs(rm - 0.9) < 1e-12 && fabs(rlo - (0.9 - half)) < 1e-9 && rhi == 1, "niah: grid cell recall and interval",
          "%g [%g, %g]", rm, rlo, rhi);
    niah_grid_recall(&g, 1, 0, &rm, &rlo, &rhi);
    CHECK(isnan(rm) && isnan(rlo), "niah: empty cell recall", "%g", rm);
    niah_grid_column(&g, 1, &acc, &lo, &hi, &n);
    CHECK(n == 20 && acc == 0 && fabs(hi - W[1].hi) < 1e-12, "niah: column over depths", "n %lld", (long long)n);
    char buf[1024];
    int len = niah_grid_format(&g, buf, sizeof buf);
    CHECK(len > 0 && len < (int)sizeof buf && strstr(buf, "| depth \\ context | 256 | 1024 |") &&
              strstr(buf, "| 50% | 80 | - |") && strstr(buf, "| 100% | - | 0 |"),
          "niah: the depth x length matrix", "\n%s", buf);
    char small[16];
    int need = niah_grid_format(&g, small, sizeof small);
    CHECK(need == len && strlen(small) == sizeof small - 1, "niah: matrix formatting truncates safely", "%d", need);
    niah_grid_free(&g);
}

int main(void) {
    check_single();
    check_depths();
    check_multi();
    check_corpus_haystack();
    check_training();
    check_scoring();
    check_wilson_grid();
    return check_exit();
}
