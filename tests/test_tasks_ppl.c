/*
 * test_tasks_ppl.c: corpora, training and evaluation windows, the perplexity
 * metrics, and the synthetic source's entropy rates.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ppl/ppl.h"

static void check_windows(void) {
    char err[256];
    int32_t tok[103];
    for (int i = 0; i < 103; i++) tok[i] = i;
    ppl_tokens t = {tok, 103};
    int ctx = 10;
    int32_t ids[10], lab[10];

    /* disjoint: (103 - 1) / 10 = 10 windows; every token 1..100 scored once */
    int64_t nw = ppl_num_windows(t.n, ctx, PPL_DISJOINT);
    int scored[103] = {0}, ok = 1;
    for (int64_t w = 0; w < nw; w++) {
        int64_t s;
        if (ppl_window(&t, ctx, PPL_DISJOINT, 0, w, ids, lab, &s, err, sizeof err)) ok = 0;
        if (s != w * ctx) ok = 0;
        for (int i = 0; i < ctx; i++) {
            if (ids[i] != tok[s + i]) ok = 0;
            if (lab[i] == TASK_IGNORE) ok = 0;
            else if (lab[i] != tok[s + i + 1]) ok = 0;
            else scored[lab[i]]++;
        }
    }
    int once = 1;
    for (int i = 0; i < 103; i++) once &= scored[i] == (i >= 1 && i <= 100);
    CHECK(nw == 10 && ok && once, "ppl: disjoint windows cover each token once", "nw %lld ok %d once %d",
          (long long)nw, ok, once);
    CHECK(ppl_window(&t, ctx, PPL_DISJOINT, 0, 10, ids, lab, NULL, err, sizeof err) == TASK_ERR_ARG,
          "ppl: window past the end rejected", "accepted");
    CHECK(ppl_num_windows(100, 10, PPL_DISJOINT) == 9 && ppl_num_windows(101, 10, PPL_DISJOINT) == 10,
          "ppl: disjoint needs one token past the window", "%lld", (long long)ppl_num_windows(100, 10, PPL_DISJOINT));

    /* chunk: 103 / 10 = 10 chunks; positions 5..8 predict the chunk's tokens 6..9 */
    nw = ppl_num_windows(t.n, ctx, PPL_CHUNK);
    ok = 1;
    memset(scored, 0, sizeof scored);
    for (int64_t w = 0; w < nw; w++) {
        int64_t s;
        ppl_window(&t, ctx, PPL_CHUNK, 0, w, ids, lab, &s, err, sizeof err);
        int n = 0;
        for (int i = 0; i < ctx; i++) {
            if (ids[i] != tok[s + i]) ok = 0;
            int want = i >= 5 && i <= 8;
            if ((lab[i] != TASK_IGNORE) != want) ok = 0;
            if (want) {
                if (lab[i] != tok[s + i + 1]) ok = 0;
                scored[lab[i]]++;
                n++;
            }
        }
        if (n != ppl_scored_per_window(ctx, PPL_CHUNK)) ok = 0;
    }
    int second_halves = 1;
    for (int i = 0; i < 103; i++) second_halves &= scored[i] == (i < 100 && i % 10 >= 6);
    CHECK(nw == 10 && ok && second_halves && ppl_scored_per_window(10, PPL_CHUNK) == 4,
          "ppl: chunk mode scores only the second half of each chunk", "nw %lld ok %d", (long long)nw, ok);
    CHECK(ppl_num_windows(100, 10, PPL_CHUNK) == 10, "ppl: chunk mode uses n / ctx chunks", "%lld",
          (long long)ppl_num_windows(100, 10, PPL_CHUNK));
    /* odd ctx: first = 5, scored 11 - 1 - 5 = 5; llama's -c 512 scores 255 */
    CHECK(ppl_scored_per_window(11, PPL_CHUNK) == 5 && ppl_scored_per_window(512, PPL_CHUNK) == 255,
          "ppl: chunk scored counts as llama-perplexity", "%d", ppl_scored_per_window(512, PPL_CHUNK));
    ppl_window(&t, ctx, PPL_CHUNK, 1, 2, ids, lab, NULL, err, sizeof err);
    CHECK(ids[0] == TASK_TOK_BOS && ids[1] == 21 && lab[5] == 26, "ppl: chunk with BOS replaces the first token",
          "%d %d %d", ids[0], ids[1], lab[5]);
}

static void check_metrics(void) {
    /* two windows of 4 positions: NLLs 1,1,1,1 and 2,2,2,2 (one label is EOS) */
    float nll[8] = {1, 1, 1, 1, 2, 2, 2, 2};
    int32_t lab[8] = {65, 66, 67, 68, 69, 70, 71, TASK_TOK_EOS};
    ppl_acc a;
    ppl_acc_init(&a);
    ppl_acc_add_window(&a, nll, lab, 4);
    ppl_acc_add_window(&a, nll + 4, lab + 4, 4);
    ppl_metrics m;
    ppl_acc_metrics(&a, &m);
    int ok = fabs(m.nll - 1.5) < 1e-12 && fabs(m.ppl - exp(1.5)) < 1e-12 && m.n_tokens == 8 && m.n_bytes == 7 &&
             m.n_windows == 2;
    CHECK(ok, "ppl: mean NLL and perplexity", "nll %g ppl %g", m.nll, m.ppl);
    /* 12 nats over 7 bytes (the EOS counts in the NLL, not as a byte) */
    CHECK(fabs(m.bits_per_byte - 12 / M_LN2 / 7) < 1e-12, "ppl: bits per byte = total nats / ln 2 / bytes", "%g",
          m.bits_per_byte);
    /* window means 1 and 2: sd 1/sqrt 2, stderr 1/2 */
    CHECK(fabs(m.stderr_nll - 0.5) < 1e-12 && fabs(m.stderr_ppl - exp(1.5) * 0.5) < 1e-12 &&
              fabs(m.stderr_bpb - 0.5 / M_LN2 * 8 / 7) < 1e-12,
          "ppl: stderr over windows, carried to ppl and bpb", "%g %g %g", m.stderr_nll, m.stderr_ppl, m.stderr_bpb);
    /* llama's token-level: var = mean(x^2) - mean^2 = 2.5 - 2.25 = 0.25, sqrt(0.25 / 7) */
    CHECK(fabs(m.stderr_tokens_nll - sqrt(0.25 / 7)) < 1e-12, "ppl: token-level stderr as llama-perplexity", "%g",
          m.stderr_tokens_nll);
    /* ignored positions are not read; an all-ignored window is skipped */
    float junk[4] = {100, 100, 100, 100};
    int32_t ign[4] = {TASK_IGNORE, TASK_IGNORE, TASK_IGNORE, TASK_IGNORE};
    ppl_acc_add_window(&a, junk, ign, 4);
    ppl_acc_metrics(&a, &m);
    CHECK(m.n_windows == 2 && fabs(m.nll - 1.5) < 1e-12, "ppl: ignored positions do not count", "windows %lld",
          (long long)m.n_windows);
    ppl_acc_init(&a);
    ppl_acc_add_window(&a, nll, lab, 4);
    ppl_acc_metrics(&a, &m);
    CHECK(isnan(m.stderr_nll) && fabs(m.nll - 1) < 1e-12, "ppl: one window has no stderr", "%g", m.stderr_nll);
    /* NLL from logits: uniform over 4 -> ln 4 */
    float lg[4] = {3, 3, 3, 3};
    CHECK(fabs(task_nll_from_logits(lg, 4, 2) - log(4)) < 1e-12, "ppl: NLL from logits", "%g",
          task_nll_from_logits(lg, 4, 2));

    /* unigram bits per byte */
    int32_t u1[5] = {'a', 'a', 'b', 'b', TASK_TOK_EOS}, u2[4] = {'a', 'b', 'c', 'd'};
    ppl_tokens t1 = {u1, 5}, t2 = {u2, 4};
    CHECK(fabs(ppl_unigram_bpb(&t1) - 1) < 1e-12 && fabs(ppl_unigram_bpb(&t2) - 2) < 1e-12,
          "ppl: unigram bits per byte", "%g %g", ppl_unigram_bpb(&t1), ppl_unigram_bpb(&t2));
}

static void check_corpora(void) {
    char err[512];
    ppl_corpus c;
    static const char text[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghij";
    size_t n = strlen(text); /* 82 bytes + EOS = 83 tokens; test = round(8.3) = 8 */
    task_status st = ppl_corpus_from_memory(text, n, 0.1, &c, err, sizeof err);
    CHECK(!st && c.train.n == 75 && c.test.n == 8 && c.test.tok[7] == TASK_TOK_EOS && c.train.tok[0] == 'a' &&
              c.test.tok[0] == text[75],
          "ppl: a text split at 90%, EOS at the end", "%s train %lld test %lld", err, (long long)c.train.n,
          (long long)c.test.n);
    uint64_t ck = c.checksum;
    ppl_corpus_free(&c);
    ppl_corpus_from_memory(text, n, 0.1, &c, err, sizeof err);
    CHECK(c.checksum == ck && ck != 0, "ppl: checksum stable", "%llx", (unsigned long long)ck);

    /* training windows: labels are ids shifted by one, inside the train split */
    int32_t ids[4 * 16], lab[4 * 16];
    st = ppl_train_batch(&c, 5, 0, 4, 16, ids, lab, err, sizeof err);
    int ok = !st;
    for (int b = 0; b < 4 && ok; b++) {
        int off = -1;
        for (int o = 0; o + 17 <= c.train.n; o++)
            if (!memcmp(c.train.tok + o, ids + b * 16, sizeof(int32_t) * 16)) off = o;
        if (off < 0 || memcmp(c.train.tok + off + 1, lab + b * 16, sizeof(int32_t) * 16)) ok = 0;
    }
    CHECK(ok, "ppl: training windows from the train split, labels shifted", "%s", err);
    int32_t ids2[4 * 16], lab2[4 * 16];
    ppl_train_batch(&c, 5, 0, 4, 16, ids2, lab2, err, sizeof err);
    CHECK(!memcmp(ids, ids2, sizeof ids), "ppl: training batch reproducible", "differs");
    st = ppl_train_batch(&c, 5, 0, 4, 75, ids2, lab2, err, sizeof err);
    CHECK(st == TASK_ERR_DATA && strstr(err, "at least 76"), "ppl: context longer than the train split rejected",
          "'%s'", err);
    task_batcher *bt;
    st = ppl_batcher_create(&c, 5, &bt, err, sizeof err);
    if (!st) {
        st = bt->get_batch(bt, 0, 4, 16, ids2, lab2, err, sizeof err);
        CHECK(!st && !memcmp(ids, ids2, sizeof ids) && bt->vocab_needed == TASK_BYTE_VOCAB,
              "ppl: batcher = train_batch", "%s", err);
        task_batcher_free(bt);
    }
    ppl_corpus_free(&c);

    /* documents joined with EOS */
    const unsigned char *docs[2] = {(const unsigned char *)"hello world", (const unsigned char *)"second doc"};
    size_t lens[2] = {11, 10};
    st = ppl_corpus_from_docs(docs, lens, 2, 0.25, &c, err, sizeof err);
    CHECK(!st && c.train.n + c.test.n == 23 && c.train.tok[11] == TASK_TOK_EOS && c.n_docs == 2,
          "ppl: documents separated by EOS", "%s", err);
    ppl_corpus_free(&c);

    /* a file, and errors */
    char path[] = "/tmp/dmabench_ppl_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        for (int i = 0; i < 100; i++) (void)!write(fd, text, n);
        close(fd);
        st = ppl_corpus_from_file(path, 0.2, &c, err, sizeof err);
        CHECK(!st && c.train.n + c.test.n == (int64_t)(100 * n + 1) && !strcmp(c.source, path) &&
                  !strcmp(c.name, "file"),
              "ppl: a text file as corpus", "%s", err);
        ppl_corpus_free(&c);
        unlink(path);
    }
    st = ppl_corpus_from_file("/nonexistent/dmabench.txt", 0.1, &c, err, sizeof err);
    CHECK(st == TASK_ERR_IO && strstr(err, "/nonexistent/dmabench.txt"), "ppl: missing file reported", "'%s'", err);
    st = ppl_corpus_from_memory(text, n, 1.5, &c, err, sizeof err);
    CHECK(st == TASK_ERR_ARG && strstr(err, "fraction"), "ppl: bad test fraction rejected", "'%s'", err);

    /* the default corpus */
    st = ppl_corpus_licenses("/nonexistent-dir", 0.1, &c, err, sizeof err);
    CHECK(st == TASK_ERR_IO && strstr(err, "base-files"), "ppl: missing license dir reported", "'%s'", err);
    if (access(PPL_LICENSES_DIR "/GPL-3", R_OK) == 0) {
        st = ppl_corpus_licenses(NULL, PPL_DEFAULT_TEST_FRAC, &c, err, sizeof err);
        int64_t tot = c.train.n + c.test.n;
        double ub = st ? 0 : ppl_unigram_bpb(&c.test);
        CHECK(!st && tot > 100000 && c.n_docs >= 10 && fabs((double)c.test.n / tot - 0.1) < 1e-3 &&
                  strstr(c.source, "GPL-3") && ub > 3.5 && ub < 5.5,
              "ppl: the license corpus loads", "%s: %lld tokens, %d docs, unigram %.3f", err, (long long)tot,
              c.n_docs, ub);
        unsigned char *bytes;
        size_t nb;
        if (!st && !ppl_tokens_text(&c.test, &bytes, &nb, err, sizeof err)) {
            CHECK(nb == (size_t)c.test.n && memmem(bytes, nb, "GNU", 3), "ppl: a split as text (a niah haystack)",
                  "%zu bytes", nb);
            free(bytes);
        }
        ppl_corpus_free(&c);
    } else {
        CHECK(1, "ppl: the license corpus loads (skipped: no " PPL_LICENSES_DIR ")", "");
    }
}

/* Plug-in estimates from the text alone, independent of the generator's own
 * bookkeeping: H(word | previous word), H(key letter), and whether each
 * recalled key equals its definition. */
static void check_synthetic(void) {
    char err[256];
    ppl_synth_config sc;
    ppl_synth_config_default(&sc);
    ppl_synth_rates r;
    ppl_synth_get_rates(&sc, &r);
    CHECK(r.paragraph_len == 548 && r.copy_distance == 530 && r.min_context == 64 &&
              fabs(r.long_bpb - 224.0 / 548) < 1e-15 && fabs(r.short_bpb - 288.0 / 548) < 1e-15,
          "ppl: synthetic closed-form rates (defaults)", "P %d D %d long %.6f short %.6f", r.paragraph_len,
          r.copy_distance, r.long_bpb, r.short_bpb);

    int P = r.paragraph_len, K = sc.key_len, S = sc.n_lines, W = sc.words_per_line;
    int npar = 1500;
    int64_t n = (int64_t)P * npar;
    unsigned char *t = malloc((size_t)n);
    float *bits = malloc(sizeof(float) * (size_t)n);
    uint8_t *rec = malloc((size_t)n);
    task_status st = ppl_synth_generate(&sc, 77, n, t, bits, rec, err, sizeof err);
    CHECK(!st, "ppl: synthetic text generated", "%s", err);

    /* parse */
    static long trans[32][32], from[32];
    long keyhist[16] = {0}, nkeys = 0, recall_ok = 1, layout_ok = 1;
    int prev = -1;
    for (int p = 0; p < npar; p++) {
        const unsigned char *q = t + (int64_t)p * P;
        if (q[0] != '@' || q[K + 1] != '\n') layout_ok = 0;
        for (int k = 0; k < K; k++) {
            int l = q[1 + k] - 'A';
            if (l < 0 || l >= 16) layout_ok = 0;
            else keyhist[l]++, nkeys++;
        }
        const unsigned char *ln = q + K + 2;
        for (int s = 0; s < S; s++, ln += 6 * W + 4) {
            if (ln[0] != '0' + s || ln[1] != ':' || ln[6 * W + 2] != '.' || ln[6 * W + 3] != '\n') layout_ok = 0;
            for (int w = 0; w < W; w++) {
                const unsigned char *wd = ln + 2 + 6 * w;
                if (wd[0] != ' ') layout_ok = 0;
                int id = -1;
                for (int i = 0; i < 32; i++)
                    if (!memcmp(wd + 1, ppl_synth_word(i), 5)) id = i;
                if (id < 0) {
                    layout_ok = 0;
                    continue;
                }
                if (prev >= 0) trans[prev][id]++, from[prev]++;
                prev = id;
            }
        }
        if (ln[0] != '=' || ln[K + 1] != '\n' || memcmp(ln + 1, q + 1, (size_t)K)) recall_ok = 0;
    }
    CHECK(layout_ok, "ppl: synthetic layout (key line, numbered lines, recall line)", "layout broken");
    CHECK(recall_ok, "ppl: every recall copies its paragraph's key", "a recall differs");

    double hw = 0, tot = 0;
    int succ_ok = 1;
    for (int u = 0; u < 32; u++) {
        if (!from[u]) continue;
        int nz = 0;
        for (int v = 0; v < 32; v++) {
            if (!trans[u][v]) continue;
            nz++;
            double pr = (double)trans[u][v] / from[u];
            hw -= from[u] * pr * log2(pr);
        }
        tot += from[u];
        if (nz != sc.branching) succ_ok = 0;
    }
    hw /= tot;
    double hk = 0;
    for (int l = 0; l < 16; l++)
        if (keyhist[l]) hk -= (double)keyhist[l] / nkeys * log2((double)keyhist[l] / nkeys);
    CHECK(succ_ok && fabs(hw - 2) < 0.01, "ppl: empirical H(word | previous word) = log2(branching)",
          "%.4f bits (succ_ok %d)", hw, succ_ok);
    CHECK(fabs(hk - 4) < 0.01, "ppl: empirical key-letter entropy = 4 bits", "%.4f", hk);
    /* the rates from the plug-in estimates: copies cost 0 with the long context
     * (recall_ok), 4 bits without */
    double est_long = (K * hk + S * W * hw) / P, est_short = (2 * K * hk + S * W * hw) / P;
    CHECK(fabs(est_long - r.long_bpb) < 0.005 && fabs(est_short - r.short_bpb) < 0.005,
          "ppl: empirical entropy rates match the stated ones", "long %.4f vs %.4f, short %.4f vs %.4f", est_long,
          r.long_bpb, est_short, r.short_bpb);
    /* the generator's per-byte ideal costs add up to the same rates */
    double sb = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) sb += bits[i], sr += rec[i];
    CHECK(fabs(sb / n - r.long_bpb) < 1e-3 && fabs((sb + 4 * sr) / n - r.short_bpb) < 1e-3,
          "ppl: per-byte ideal costs sum to the rates", "%.5f %.5f", sb / n, (sb + 4 * sr) / n);
    free(t), free(bits), free(rec);

    /* the corpus and the ideal model's floor under each scoring */
    ppl_corpus c;
    st = ppl_corpus_synthetic(&sc, 20000, 70000, 3, &c, err, sizeof err);
    CHECK(!st && c.synthetic && c.train.n == 20000 && c.test.n == 70000 &&
              memcmp(c.train.tok, c.test.tok, 64 * sizeof(int32_t)),
          "ppl: synthetic corpus, train and test from different streams", "%s", err);
    if (!st) {
        int ex_short, ex_long, ex_dis;
        double f_short = ppl_synth_floor_bpb(&c, 256, PPL_CHUNK, &ex_short);  /* sees 129..255 < D */
        double f_long = ppl_synth_floor_bpb(&c, 2048, PPL_CHUNK, &ex_long);   /* sees >= 1025 > D */
        double f_mid = ppl_synth_floor_bpb(&c, 1024, PPL_CHUNK, NULL);        /* sees 513..1023 */
        double f_dis = ppl_synth_floor_bpb(&c, 256, PPL_DISJOINT, &ex_dis);
        CHECK(ex_short && fabs(f_short - r.short_bpb) < 0.01, "ppl: floor with a short context = short rate",
              "%.4f vs %.4f (exact %d)", f_short, r.short_bpb, ex_short);
        CHECK(ex_long && fabs(f_long - r.long_bpb) < 0.01, "ppl: floor with a long context = long rate",
              "%.4f vs %.4f (exact %d)", f_long, r.long_bpb, ex_long);
        CHECK(f_mid > f_long && f_mid < f_short, "ppl: floor in between for a context around D", "%.4f", f_mid);
        /* the floor leaves out what the first c_min positions of a window pay for
         * not seeing the layout: a lower bound, flagged as not exact */
        CHECK(!ex_dis && fabs(f_dis - r.short_bpb) < 0.01, "ppl: disjoint windows: floor is a bound, not exact",
              "exact %d, %.4f", ex_dis, f_dis);
        printf("# synthetic floors: chunk 256 %.4f, chunk 1024 %.4f, chunk 2048 %.4f, disjoint 256 %.4f\n", f_short,
               f_mid, f_long, f_dis);
        double ub = ppl_unigram_bpb(&c.test);
        CHECK(ub > 3 && ub < 5, "ppl: synthetic unigram bpb well above the rates", "%.3f", ub);
        ppl_corpus free_me = c;
        ppl_corpus_free(&free_me);
    }
    ppl_synth_config bad = sc;
    bad.branching = 3;
    CHECK(ppl_synth_validate(&bad, err, sizeof err) == TASK_ERR_ARG && strstr(err, "branching"),
          "ppl: synthetic config validated", "'%s'", err);
}

int main(void) {
    check_windows();
    check_metrics();
    check_corpora();
    check_synthetic();
    return check_exit();
}
