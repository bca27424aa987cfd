/*
 * run.c: `dmabench run [SUITE] [--out DIR]`, the main job (docs/run.md).
 *
 * Expands a suite (harness/run_suite.c) into cells, one training run each;
 * runs them through the task runners (tasks/runner/), streams every finished
 * cell's records to DIR/records.jsonl, skips cells already there on resume,
 * runs the suite's kernel profile through `dmabench kernels`, and ends with
 * DIR/report.json and DIR/tables.md (the `dmabench table` views), both written
 * atomically, and the tables on stdout. Progress and ETA go to stderr.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cuda_info.h"
#include "commands.h"
#include "model.h"
#include "model_gpu.h"
#include "records.h"
#include "report.h"
#include "run_suite.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_dur(char *out, size_t n, double s) {
    if (!(s >= 0) || !isfinite(s)) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static int mkdir_p(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    struct stat sb;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

static int cuda_available(void) {
    cuda_info ci;
    return cuda_query(&ci) == 0;
}

/* The cells whose head dim (d_model / n_heads) the CUDA attention does not take
 * (16, 32, 64 or 128): one line naming them to f, or nothing. Such a cell is
 * recorded as an error when it trains on cuda; the rest of the suite runs. */
static void warn_cuda_head_dims(const suite *S, const suite_cell *cells, int n, FILE *f) {
    int bad = 0;
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        int h = S->task[cells[i].task].base.n_heads, hd = h > 0 ? cells[i].d_model / h : 0;
        if (model_gpu_head_dim_ok(hd)) continue;
        char item[64];
        snprintf(item, sizeof item, "%s d_model %d (head dim %d)", suite_task_name(cells[i].task), cells[i].d_model, hd);
        if (!strstr(list, item) && strlen(list) + strlen(item) + 3 < sizeof list)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", item);
        bad++;
    }
    if (bad)
        fprintf(f, "warning: %d cell%s train%s on cuda with a head dim its attention does not take (16, 32, 64 or "
                   "128): %s; %s recorded as errors\n",
                bad, bad == 1 ? "" : "s", bad == 1 ? "s" : "", list, bad == 1 ? "it is" : "they are");
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Opens path with flags (mode 0644 when it creates it) and takes the file's
 * exclusive lock. When, once the lock is ours, the path names another file (a
 * run rewrote it while we waited: load_done), opens that one instead. The
 * descriptor, or -1 with errno set (EAGAIN: replaced again and again). */
static int open_locked(const char *path, int flags) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(path, flags, 0644);
        if (fd < 0) return -1;
        struct stat a, b;
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &a) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) return fd;
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

/* Appends buf to path (created if missing) with one write on an O_APPEND
 * descriptor under the file's lock, then fsync: a cell's lines land together,
 * also when several runs (one per GPU, say) append to the same records.jsonl.
 * A run that rewrites the file (load_done) holds the lock meanwhile; when the
 * path names another file once the lock is ours, the append goes to that one.
 * 0 or -1 (errno set). */
static int append_whole(const char *path, const char *buf, size_t len) {
    int fd = open_locked(path, O_WRONLY | O_APPEND | O_CREAT);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            errno = e;
            return -1;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static void usage(void) {
    printf("usage: dmabench run [SUITE.json] [--out DIR] [options]\n"
           "       dmabench run --resume DIR\n"
           "\n"
           "Runs a suite: trains the same small model with each attention variant under\n"
           "the same budget on each task (MQAR, needle in a haystack, perplexity), scores\n"
           "it, runs the suite's kernel profile, and ends with one markdown table per task\n"
           "(variants as columns, settings as rows, mean with a 95%% interval over seeds)\n"
           "and the kernel table. Without SUITE it runs the embedded default (suites/quick.json,\n"
           "about 10 minutes on 2 cores). docs/run.md explains the suite format and the tables.\n"
           "\n"
           "  --out DIR          where everything goes (default results/run-<UTC time>/):\n"
           "                     records.jsonl (one line per finished record, streamed),\n"
           "                     kernels.json, report.json, tables.md, suite.json\n"
           "  --resume DIR       continue an interrupted run in DIR (its suite.json); rerunning\n"
           "                     with the same --out also skips the cells already done\n"
           "  --fresh            with --out: start over, discarding DIR/records.jsonl\n"
           "  --report           with --resume DIR: write DIR's report and tables from the\n"
           "                     cells done so far; runs nothing (no GPU needed)\n"
           "  --only LIST        run only these parts: mqar, niah, ppl, kernels\n"
           "  --variants LIST    train only these of the suite's variants (e.g. nsa after a change to\n"
           "                     its kernels); the report still covers every cell done in DIR\n"
           "  --shard K/N        train only every N-th of the cells left (after --only and\n"
           "                     --variants), from the K-th (0-based): N runs, one per GPU, cover\n"
           "                     them all (scripts/run-gpus.sh)\n"
           "  --backend B        training backend: cpu or cuda (overrides the suite's); on\n"
           "                     cuda the models train and are scored on the GPU\n"
           "  --threads N        threads (default: the suite's, else all cores)\n"
           "  --validate         check the suite, list its cells and estimated work, run nothing\n"
           "  --timing-from F    with --validate: estimate the training cells' time from the\n"
           "                     throughput measured in F (records.jsonl or report.json of a\n"
           "                     short run of the same shapes, e.g. suites/paper-probe.json)\n"
           "  --budget DUR       with --timing-from: the steps per task that fit DUR (1h, 90m)\n"
           "  --print-suite      print the suite (the embedded default without SUITE) and exit\n"
           "  --max-cells N      stop after N newly run cells (to test resume; 0: no limit)\n"
           "  --deadline T       stop by T, a Unix time in seconds or a duration from now\n"
           "                     (9m, 540s): a cell that the run's own pace says would end\n"
           "                     past T is not started, and one still running at T is\n"
           "                     stopped (exit 130; --resume continues)\n"
           "  --quiet            no per-step progress, only one line per cell\n"
           "\n"
           "Exit status: 0 done, 1 a cell failed (its record says why) or a file could not\n"
           "be written, 2 bad usage or an invalid suite, 130 interrupted (resume it).\n");
}

/* ---- records.jsonl: which cells are done ---- */

typedef struct {
    char **keys;     /* cell keys that are complete */
    cJSON **recs;    /* their records, in file order */
    int nrecs, nkeys;
} done_set;

static void done_free(done_set *d) {
    for (int i = 0; i < d->nkeys; i++) free(d->keys[i]);
    for (int i = 0; i < d->nrecs; i++) cJSON_Delete(d->recs[i]);
    free(d->keys);
    free(d->recs);
    memset(d, 0, sizeof *d);
}

static int done_has(const done_set *d, const char *key) {
    for (int i = 0; i < d->nkeys; i++)
        if (!strcmp(d->keys[i], key)) return 1;
    return 0;
}

/* Reads DIR/records.jsonl: a cell counts as done when all of its records
 * ("cell_part": [k, n], k = 1..n) are present; torn lines and partial cells are
 * dropped, and the file is rewritten (atomically) without them. It holds the
 * file's lock from the read to the rewrite, so that a run appending to the same
 * folder (append_whole) waits, and then appends to the rewritten file. */
static int load_done(const char *path, done_set *d, int *dropped, char *err, size_t err_len) {
    memset(d, 0, sizeof *d);
    *dropped = 0;
    int fd = open_locked(path, O_RDONLY);
    if (fd < 0 && errno == ENOENT) return 0;
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        snprintf(err, err_len, "cannot read %s: %s", path, errno == EAGAIN ? "it keeps being replaced" : strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t cap = 1 << 16;
    char *line = malloc(cap);
    cJSON **all = NULL;
    int nall = 0, acap = 0;
    int rc = 0;
    if (!line) {
        fclose(f);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (;;) {
        size_t len = 0;
        int c = 0;
        while ((c = fgetc(f)) != EOF && c != '\n') {
            if (len + 2 > cap) {
                char *nl = realloc(line, cap * 2);
                if (!nl) {
                    rc = -1;
                    break;
                }
                line = nl;
                cap *= 2;
            }
            line[len++] = (char)c;
        }
        if (rc) break;
        line[len] = 0;
        if (len) {
            cJSON *r = (c == '\n') ? cJSON_Parse(line) : NULL; /* a last line without newline is torn */
            const cJSON *part = r ? cJSON_GetObjectItemCaseSensitive(r, "cell_part") : NULL;
            if (!r || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "cell")) || !cJSON_IsArray(part) ||
                cJSON_GetArraySize(part) != 2) {
                cJSON_Delete(r);
                (*dropped)++;
            } else {
                if (nall == acap) {
                    acap = acap ? 2 * acap : 64;
                    cJSON **na = realloc(all, sizeof *all * (size_t)acap);
                    if (!na) {
                        cJSON_Delete(r);
                        rc = -1;
                        break;
                    }
                    all = na;
                }
                all[nall++] = r;
            }
        }
        if (c == EOF) break;
    }
    free(line);
    if (rc) {
        fclose(f);
        for (int i = 0; i < nall; i++) cJSON_Delete(all[i]);
        free(all);
        snprintf(err, err_len, "out of memory reading %s", path);
        return -1;
    }
    /* complete cells: for each record, count the parts of its cell present */
    d->recs = calloc((size_t)nall + 1, sizeof *d->recs);
    d->keys = calloc((size_t)nall + 1, sizeof *d->keys);
    if (!d->recs || !d->keys) {
        fclose(f);
        for (int i = 0; i < nall; i++) cJSON_Delete(all[i]);
        free(all);
        done_free(d);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int i = 0; i < nall; i++) {
        if (!all[i]) continue;
        const char *key = cJSON_GetObjectItemCaseSensitive(all[i], "cell")->valuestring;
        int need = (int)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(all[i], "cell_part"), 1)->valuedouble;
        unsigned char seen[4096] = {0};
        int have = 0;
        for (int j = i; j < nall; j++) {
            if (!all[j] || strcmp(cJSON_GetObjectItemCaseSensitive(all[j], "cell")->valuestring, key)) continue;
            int k = (int)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(all[j], "cell_part"), 0)->valuedouble;
            if (k >= 1 && k <= need && k < 4096 && !seen[k]) {
                seen[k] = 1;
                have++;
            }
        }
        int complete = need >= 1 && need < 4096 && have == need && !done_has(d, key);
        if (complete) d->keys[d->nkeys++] = strdup(key);
        for (int j = i; j < nall; j++) {
            if (!all[j] || strcmp(cJSON_GetObjectItemCaseSensitive(all[j], "cell")->valuestring, key)) continue;
            int k = (int)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(all[j], "cell_part"), 0)->valuedouble;
            if (complete && k >= 1 && k <= need && seen[k] == 1) {
                seen[k] = 2;
                d->recs[d->nrecs++] = all[j];
            } else {
                cJSON_Delete(all[j]);
                (*dropped)++;
            }
            all[j] = NULL;
        }
    }
    free(all);
    if (*dropped) {
        /* rewrite the stream without the torn lines and partial cells */
        sbuf b = {0};
        for (int i = 0; i < d->nrecs; i++) {
            char *s = cJSON_PrintUnformatted(d->recs[i]);
            if (s) sb_printf(&b, "%s\n", s);
            free(s);
        }
        int w = b.oom ? -1 : write_file_atomic(path, b.s ? b.s : "", b.len, err, err_len);
        sb_free(&b);
        if (w != 0) {
            fclose(f);
            if (!err[0]) snprintf(err, err_len, "cannot rewrite %s", path);
            done_free(d);
            return -1;
        }
    }
    fclose(f); /* the lock goes with it */
    return 0;
}

/* ---- progress ---- */

typedef struct {
    int quiet, tty;
    int cell, ncells;
    const char *label;
    double t_cell0, t_last;
    double cost_done, cost_left, cost_this, secs_done; /* for the ETA */
    double t_run0;
    double deadline; /* now_s() time at which to stop; 0: none */
} progress;

static void eta_text(const progress *p, double frac_this, char *buf, size_t n) {
    double rate = p->cost_done > 0 ? p->secs_done / p->cost_done : NAN;
    double elapsed_this = now_s() - p->t_cell0;
    if (!(rate > 0) && frac_this > 0.05) rate = elapsed_this / (frac_this * p->cost_this);
    if (!(rate > 0)) {
        snprintf(buf, n, "ETA ?");
        return;
    }
    double left = p->cost_left * rate + (1 - frac_this) * p->cost_this * rate;
    if (frac_this > 0.2) left = p->cost_left * rate + elapsed_this * (1 - frac_this) / frac_this;
    char d[32];
    fmt_dur(d, sizeof d, left);
    snprintf(buf, n, "ETA %s", d);
}

static int on_progress(const char *phase, int64_t done, int64_t total, double loss, void *user) {
    progress *p = user;
    if (p->deadline > 0 && now_s() >= p->deadline) g_stop = 1;
    if (g_stop) return 1;
    if (p->quiet) return 0;
    double t = now_s();
    int last = done == total;
    if (p->tty ? (!last && t - p->t_last < 0.5) : (last || t - p->t_last < 15)) return 0;
    p->t_last = t;
    double frac = total > 0 ? (double)done / total : 0;
    /* training is most of a cell's work */
    double f = !strcmp(phase, "train") ? 0.85 * frac : 0.85 + 0.15 * frac;
    char eta[48];
    eta_text(p, f, eta, sizeof eta);
    if (!strcmp(phase, "train"))
        fprintf(stderr, "%s[%d/%d] %s: train step %lld/%lld loss %.3f  %s%s", p->tty ? "\r\033[K" : "", p->cell,
                p->ncells, p->label, (long long)done, (long long)total, loss, eta, p->tty ? "" : "\n");
    else
        fprintf(stderr, "%s[%d/%d] %s: eval %.0f%%  %s%s", p->tty ? "\r\033[K" : "", p->cell, p->ncells, p->label,
                100 * frac, eta, p->tty ? "" : "\n");
    fflush(stderr);
    return 0;
}

/* ---- records ---- */

static cJSON *task_record(const suite *s, const suite_cell *c, const char *backend) {
    static char card[256];
    if (!card[0]) report_card(backend, card, sizeof card);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "kind", "task");
    cJSON_AddStringToObject(r, "task", suite_task_name(c->task));
    cJSON_AddStringToObject(r, "variant", s->variants[c->variant]);
    cJSON_AddStringToObject(r, "backend", backend);
    cJSON_AddStringToObject(r, "card", card); /* the tables' device, also when another machine writes the report */
    cJSON_AddNumberToObject(r, "seed", (double)c->seed);
    cJSON_AddStringToObject(r, "suite", s->name);
    return r;
}

static void add_train(cJSON *r, const runner_model *rm, int context, const runner_stats *st) {
    cJSON *t = cJSON_AddObjectToObject(r, "train");
    cJSON_AddNumberToObject(t, "steps", (double)rm->steps);
    cJSON_AddNumberToObject(t, "batch_size", rm->batch_size);
    cJSON_AddNumberToObject(t, "context", context);
    cJSON_AddNumberToObject(t, "lr", rm->lr);
    cJSON_AddNumberToObject(t, "n_layers", rm->n_layers);
    cJSON_AddNumberToObject(t, "n_heads", rm->n_heads);
    cJSON_AddNumberToObject(t, "n_kv_heads", rm->n_kv_heads);
    if (st) {
        cJSON_AddNumberToObject(t, "params", (double)st->n_params);
        if (isfinite(st->final_loss)) cJSON_AddNumberToObject(t, "final_loss", st->final_loss);
        cJSON_AddNumberToObject(t, "train_s", st->train_s);
        cJSON_AddNumberToObject(t, "eval_s", st->eval_s);
        cJSON_AddNumberToObject(t, "tokens_per_s", st->tokens_per_s);
    }
}

static void add_variant_settings(cJSON *set, const char *variant, const runner_model *rm) {
    if (strcmp(variant, "mha")) cJSON_AddNumberToObject(set, "window", rm->window);
    /* recorded only when it is not the default, so that earlier records stay as they were */
    if (!strcmp(variant, "nsa") && rm->nsa_mean) cJSON_AddStringToObject(set, "nsa_cmp", "mean");
    if (!strcmp(variant, "nsa") && rm->nsa_gates_fixed)
        cJSON_AddItemToObject(set, "nsa_gates", cJSON_CreateFloatArray(rm->nsa_gates, 3));
}

/* RULER-style needles: recorded only when asked for, so that single-needle
 * records stay as they were */
static void add_niah_settings(cJSON *set, const suite_task_cfg *t) {
    if (t->n_keys > 1) cJSON_AddNumberToObject(set, "n_keys", t->n_keys);
    if (t->n_values > 1) cJSON_AddNumberToObject(set, "n_values", t->n_values);
}

static void put_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* Runs one cell; returns its records (an array) with status ok or error. */
static cJSON *run_cell(const suite *s, const suite_cell *c, const ppl_corpus *corpus, const unsigned char *hay,
                       size_t hay_len, progress *pr, int *interrupted) {
    const suite_task_cfg *t = &s->task[c->task];
    runner_model rm = t->base;
    snprintf(rm.variant, sizeof rm.variant, "%s", s->variants[c->variant]);
    rm.d_model = c->d_model;
    rm.seed = (uint64_t)c->seed;
    runner_stats st;
    char err[512] = "";
    cJSON *out = cJSON_CreateArray();
    task_status ts;
    rm.cuda = !strcmp(s->backend, "cuda");
    const char *backend = rm.cuda ? "cuda" : "cpu";
    if (c->task == SUITE_MQAR) {
        mqar_config mc;
        mqar_config_default(&mc);
        mc.vocab_size = t->vocab_size;
        mc.seq_len = c->seq_len;
        mc.num_kv_pairs = c->num_kv_pairs;
        mc.power_a = t->power_a;
        mc.train_seed = (uint64_t)c->seed * 1000;
        mc.test_seed = mc.train_seed + 10;
        double acc = NAN, se = NAN;
        int sweep = t->lrs.n > 0 || t->early_stop > 0;
        runner_mqar_sweep sw;
        runner_mqar_result res;
        memset(&res, 0, sizeof res);
        runner_mqar_sweep_default(&sw);
        sw.n_lrs = t->lrs.n;
        sw.lrs = t->lrs.v;
        sw.early_stop = t->early_stop;
        sw.eval_every = t->eval_every;
        sw.n_val = t->n_val;
        sw.val_seed = mc.train_seed + 20; /* apart from train (+0) and test (+10) */
        ts = runner_mqar_ex(&rm, &mc, t->n_test, sweep ? &sw : NULL, &res, &acc, &se, &st, on_progress, pr, err,
                            sizeof err);
        cJSON *r = task_record(s, c, backend);
        cJSON *set = cJSON_AddObjectToObject(r, "settings");
        cJSON_AddNumberToObject(set, "seq_len", c->seq_len);
        cJSON_AddNumberToObject(set, "num_kv_pairs", c->num_kv_pairs);
        cJSON_AddNumberToObject(set, "d_model", c->d_model);
        cJSON_AddNumberToObject(set, "vocab_size", t->vocab_size);
        add_variant_settings(set, rm.variant, &rm);
        if (ts == TASK_OK) {
            cJSON_AddStringToObject(r, "status", "ok");
            cJSON *m = cJSON_AddObjectToObject(r, "metrics");
            put_num(m, "accuracy", acc);
            put_num(m, "accuracy_stderr", se);
            cJSON *ci = cJSON_AddArrayToObject(m, "accuracy_ci95");
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(fmax(0, acc - TASK_Z95 * (isfinite(se) ? se : 0))));
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(fmin(1, acc + TASK_Z95 * (isfinite(se) ? se : 0))));
            cJSON_AddNumberToObject(m, "n", t->n_test);
            cJSON_AddNumberToObject(m, "chance", 1.0 / c->num_kv_pairs);
            if (sweep && res.n_trials > 0) {
                const runner_mqar_trial *b = &res.trials[res.best];
                cJSON_AddNumberToObject(m, "lr", b->lr);
                cJSON_AddNumberToObject(m, "steps_taken", (double)b->steps);
                put_num(m, "val_accuracy", b->val_acc);
                cJSON_AddNumberToObject(m, "n_val", sw.n_val);
                cJSON *sa = cJSON_AddArrayToObject(r, "lr_sweep");
                for (int i = 0; i < res.n_trials; i++) {
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddNumberToObject(o, "lr", res.trials[i].lr);
                    cJSON_AddNumberToObject(o, "steps_taken", (double)res.trials[i].steps);
                    put_num(o, "val_accuracy", res.trials[i].val_acc);
                    cJSON_AddBoolToObject(o, "early_stopped", res.trials[i].early_stopped);
                    put_num(o, "final_loss", res.trials[i].final_loss);
                    cJSON_AddItemToArray(sa, o);
                }
                rm.lr = b->lr;
            }
        }
        add_train(r, &rm, c->seq_len, &st);
        if (sweep) {
            cJSON *tr = cJSON_GetObjectItemCaseSensitive(r, "train");
            if (t->lrs.n) {
                cJSON *l = cJSON_AddArrayToObject(tr, "lrs");
                for (int i = 0; i < t->lrs.n; i++) cJSON_AddItemToArray(l, cJSON_CreateNumber(t->lrs.v[i]));
            }
            if (t->early_stop > 0) {
                cJSON_AddNumberToObject(tr, "early_stop", t->early_stop);
                cJSON_AddNumberToObject(tr, "eval_every",
                                        (double)(t->eval_every ? t->eval_every : (rm.steps + 9) / 10));
            }
            if (ts == TASK_OK && res.n_trials > 0)
                cJSON_AddNumberToObject(tr, "steps_taken", (double)res.trials[res.best].steps);
        }
        cJSON_AddItemToArray(out, r);
    } else if (c->task == SUITE_NIAH) {
        niah_config nc;
        niah_config_default(&nc);
        nc.n_keys = t->n_keys;
        nc.n_values = t->n_values;
        nc.text = hay;
        nc.text_len = hay_len;
        nc.train_seed = (uint64_t)c->seed * 1000;
        nc.test_seed = nc.train_seed + 1;
        int lens[SUITE_MAX_LIST];
        for (int i = 0; i < t->context_len.n; i++) lens[i] = (int)t->context_len.v[i];
        niah_grid g;
        ts = runner_niah(&rm, &nc, t->train_context_len, lens, t->context_len.n, t->depths.v, t->depths.n, t->samples,
                         &g, &st, on_progress, pr, err, sizeof err);
        if (ts == TASK_OK) {
            int n = g.n_lens * g.n_depths, k = 0;
            for (int li = 0; li < g.n_lens; li++)
                for (int di = 0; di < g.n_depths; di++) {
                    double acc, lo, hi;
                    int64_t cnt;
                    niah_grid_cell(&g, li, di, &acc, &lo, &hi, &cnt);
                    cJSON *r = task_record(s, c, backend);
                    cJSON *set = cJSON_AddObjectToObject(r, "settings");
                    cJSON_AddNumberToObject(set, "context_len", lens[li]);
                    cJSON_AddNumberToObject(set, "depth", t->depths.v[di]);
                    cJSON_AddNumberToObject(set, "train_context_len", t->train_context_len);
                    cJSON_AddNumberToObject(set, "d_model", c->d_model);
                    add_niah_settings(set, t);
                    add_variant_settings(set, rm.variant, &rm);
                    cJSON_AddStringToObject(r, "status", "ok");
                    cJSON *m = cJSON_AddObjectToObject(r, "metrics");
                    put_num(m, "accuracy", acc);
                    cJSON *ci = cJSON_AddArrayToObject(m, "accuracy_ci95");
                    cJSON_AddItemToArray(ci, cJSON_CreateNumber(lo));
                    cJSON_AddItemToArray(ci, cJSON_CreateNumber(hi));
                    cJSON_AddNumberToObject(m, "n", (double)cnt);
                    cJSON_AddNumberToObject(m, "correct", (double)g.k[di * g.n_lens + li]);
                    if (t->n_values > 1) { /* RULER's lenient score: the fraction of the values found */
                        double rm_, rlo, rhi;
                        niah_grid_recall(&g, li, di, &rm_, &rlo, &rhi);
                        put_num(m, "recall", rm_);
                        cJSON *rci = cJSON_AddArrayToObject(m, "recall_ci95");
                        cJSON_AddItemToArray(rci, cJSON_CreateNumber(rlo));
                        cJSON_AddItemToArray(rci, cJSON_CreateNumber(rhi));
                    }
                    add_train(r, &rm, t->train_context_len, &st);
                    cJSON *pp = cJSON_AddArrayToObject(r, "cell_part");
                    cJSON_AddItemToArray(pp, cJSON_CreateNumber(++k));
                    cJSON_AddItemToArray(pp, cJSON_CreateNumber(n));
                    cJSON_AddItemToArray(out, r);
                }
            niah_grid_free(&g);
        } else {
            cJSON *r = task_record(s, c, backend);
            cJSON *set = cJSON_AddObjectToObject(r, "settings");
            cJSON_AddNumberToObject(set, "train_context_len", t->train_context_len);
            cJSON_AddNumberToObject(set, "d_model", c->d_model);
            add_niah_settings(set, t);
            add_variant_settings(set, rm.variant, &rm);
            add_train(r, &rm, t->train_context_len, NULL);
            cJSON_AddItemToArray(out, r);
        }
    } else {
        runner_ppl_eval ev[2 * SUITE_MAX_LIST];
        int ne = 0;
        for (int i = 0; i < t->contexts.n; i++)
            for (int j = 0; j < t->n_modes; j++) {
                memset(&ev[ne], 0, sizeof ev[ne]);
                ev[ne].context = (int)t->contexts.v[i];
                ev[ne].mode = t->modes[j];
                ne++;
            }
        ts = runner_ppl(&rm, corpus, t->train_context, ev, ne, t->max_eval_tokens, &st, on_progress, pr, err,
                        sizeof err);
        double uni = ppl_unigram_bpb(&corpus->test);
        if (ts == TASK_OK) {
            for (int i = 0; i < ne; i++) {
                cJSON *r = task_record(s, c, backend);
                cJSON *set = cJSON_AddObjectToObject(r, "settings");
                cJSON_AddNumberToObject(set, "context", ev[i].context);
                cJSON_AddStringToObject(set, "eval", ppl_mode_name(ev[i].mode));
                cJSON_AddNumberToObject(set, "train_context", t->train_context);
                cJSON_AddNumberToObject(set, "d_model", c->d_model);
                add_variant_settings(set, rm.variant, &rm);
                cJSON_AddStringToObject(r, "status", "ok");
                cJSON *m = cJSON_AddObjectToObject(r, "metrics");
                const ppl_metrics *pm = &ev[i].m;
                put_num(m, "nll", pm->nll);
                put_num(m, "ppl", pm->ppl);
                put_num(m, "bits_per_byte", pm->bits_per_byte);
                put_num(m, "stderr", pm->stderr_nll);
                put_num(m, "stderr_ppl", pm->stderr_ppl);
                put_num(m, "stderr_bpb", pm->stderr_bpb);
                put_num(m, "stderr_tokens_nll", pm->stderr_tokens_nll);
                put_num(m, "unigram_bits_per_byte", uni);
                if (corpus->synthetic) {
                    put_num(m, "floor_bits_per_byte", ev[i].floor_bpb);
                    cJSON_AddBoolToObject(m, "floor_exact", ev[i].floor_exact);
                }
                cJSON_AddNumberToObject(m, "n_tokens", (double)pm->n_tokens);
                cJSON_AddNumberToObject(m, "n_windows", (double)pm->n_windows);
                cJSON *co = cJSON_AddObjectToObject(r, "corpus");
                cJSON_AddStringToObject(co, "name", corpus->name);
                cJSON_AddStringToObject(co, "source", corpus->source);
                char cs[24];
                snprintf(cs, sizeof cs, "%016llx", (unsigned long long)corpus->checksum);
                cJSON_AddStringToObject(co, "checksum", cs);
                add_train(r, &rm, t->train_context, &st);
                cJSON *pp = cJSON_AddArrayToObject(r, "cell_part");
                cJSON_AddItemToArray(pp, cJSON_CreateNumber(i + 1));
                cJSON_AddItemToArray(pp, cJSON_CreateNumber(ne));
                cJSON_AddItemToArray(out, r);
            }
        } else {
            cJSON *r = task_record(s, c, backend);
            cJSON *set = cJSON_AddObjectToObject(r, "settings");
            cJSON_AddNumberToObject(set, "train_context", t->train_context);
            cJSON_AddNumberToObject(set, "d_model", c->d_model);
            add_variant_settings(set, rm.variant, &rm);
            add_train(r, &rm, t->train_context, NULL);
            cJSON_AddItemToArray(out, r);
        }
    }
    *interrupted = ts != TASK_OK && g_stop;
    int n = cJSON_GetArraySize(out);
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_GetArrayItem(out, i);
        if (ts != TASK_OK) {
            cJSON_AddStringToObject(r, "status", "error");
            cJSON_AddStringToObject(r, "error", err[0] ? err : task_status_str(ts));
        }
        cJSON_AddStringToObject(r, "cell", c->key);
        if (!cJSON_GetObjectItemCaseSensitive(r, "cell_part")) {
            cJSON *pp = cJSON_AddArrayToObject(r, "cell_part");
            cJSON_AddItemToArray(pp, cJSON_CreateNumber(1));
            cJSON_AddItemToArray(pp, cJSON_CreateNumber(1));
        }
    }
    return out;
}

static void cell_summary(const cJSON *recs, char *buf, size_t n) {
    const cJSON *r0 = cJSON_GetArrayItem(recs, 0);
    const char *task = cJSON_GetObjectItemCaseSensitive(r0, "task")->valuestring;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r0, "status");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "ok")) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r0, "error");
        snprintf(buf, n, "error: %s", cJSON_IsString(e) ? e->valuestring : "?");
        return;
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(r0, "train");
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(tr, "final_loss");
    const cJSON *tps = cJSON_GetObjectItemCaseSensitive(tr, "tokens_per_s");
    char head[96];
    snprintf(head, sizeof head, "loss %.3f, %.0f tok/s", cJSON_IsNumber(fl) ? fl->valuedouble : NAN,
             cJSON_IsNumber(tps) ? tps->valuedouble : 0);
    if (!strcmp(task, "mqar")) {
        double a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r0, "metrics"), "accuracy")->valuedouble;
        const cJSON *lr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r0, "metrics"), "lr");
        const cJSON *sk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r0, "metrics"), "steps_taken");
        if (cJSON_IsNumber(lr) && cJSON_IsNumber(sk))
            snprintf(buf, n, "accuracy %.1f%% at lr %g after %.0f steps (%s)", 100 * a, lr->valuedouble,
                     sk->valuedouble, head);
        else snprintf(buf, n, "accuracy %.1f%% (%s)", 100 * a, head);
    } else if (!strcmp(task, "niah")) {
        /* accuracy per context length, over depths */
        char acc[256] = "";
        int nr = cJSON_GetArraySize(recs);
        double lens[64];
        int nl = 0;
        for (int i = 0; i < nr; i++) {
            double L = cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(recs, i), "settings"), "context_len")
                           ->valuedouble;
            int seen = 0;
            for (int j = 0; j < nl; j++) seen |= lens[j] == L;
            if (!seen && nl < 64) lens[nl++] = L;
        }
        for (int j = 0; j < nl; j++) {
            double k = 0, tot = 0;
            for (int i = 0; i < nr; i++) {
                const cJSON *r = cJSON_GetArrayItem(recs, i);
                if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "settings"), "context_len")
                        ->valuedouble != lens[j])
                    continue;
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "metrics");
                k += cJSON_GetObjectItemCaseSensitive(m, "correct")->valuedouble;
                tot += cJSON_GetObjectItemCaseSensitive(m, "n")->valuedouble;
            }
            size_t l = strlen(acc);
            snprintf(acc + l, sizeof acc - l, "%s%.0f:%.0f%%", j ? " " : "", lens[j], tot > 0 ? 100 * k / tot : 0);
        }
        snprintf(buf, n, "found %s (%s)", acc, head);
    } else {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(r0, "metrics");
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(r0, "settings");
        snprintf(buf, n, "%.3f bits/byte at %d %s, unigram %.2f (%s)",
                 cJSON_GetObjectItemCaseSensitive(m, "bits_per_byte")->valuedouble,
                 (int)cJSON_GetObjectItemCaseSensitive(set, "context")->valuedouble,
                 cJSON_GetObjectItemCaseSensitive(set, "eval")->valuestring,
                 cJSON_GetObjectItemCaseSensitive(m, "unigram_bits_per_byte")->valuedouble, head);
    }
}

/* ---- the kernel profile ---- */

static int run_kernels(const suite *s, const char *dir, int threads, int quiet) {
    char out[1200];
    snprintf(out, sizeof out, "%s/kernels.json", dir);
    char jsonl[1300];
    snprintf(jsonl, sizeof jsonl, "%s.jsonl", out);
    char *argv[80];
    int argc = 0;
    argv[argc++] = "dmabench";
    argv[argc++] = "kernels";
    for (int i = 0; i < s->kernel_argc; i++) argv[argc++] = s->kernel_argv[i];
    int has_threads = 0;
    for (int i = 0; i < s->kernel_argc; i += 2) has_threads |= !strcmp(s->kernel_argv[i], "--threads");
    char th[16];
    if (!has_threads && threads > 0) {
        snprintf(th, sizeof th, "%d", threads);
        argv[argc++] = "--threads";
        argv[argc++] = th;
    }
    argv[argc++] = "--out";
    argv[argc++] = out;
    if (file_exists(jsonl)) argv[argc++] = "--resume";
    argv[argc] = NULL;
    /* the sweep prints its table on stdout as it goes; ours comes at the end */
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    if (saved >= 0 && devnull >= 0) dup2(devnull, 1);
    int saved_err = -1;
    if (quiet) {
        fflush(stderr);
        saved_err = dup(2);
        if (saved_err >= 0 && devnull >= 0) dup2(devnull, 2);
    }
    int rc = cmd_kernels(argc, argv);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, 1);
        close(saved);
    }
    if (saved_err >= 0) {
        fflush(stderr);
        dup2(saved_err, 2);
        close(saved_err);
    }
    if (devnull >= 0) close(devnull);
    return rc;
}

/* ---- tables ---- */

static int append_file(sbuf *b, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf - 1, f)) > 0) {
        buf[n] = 0;
        sb_puts(b, buf);
    }
    fclose(f);
    return 0;
}

/* one `dmabench table` view of the report into b */
static int table_view(sbuf *b, const char *report, const char *dir, const char *heading, const char *const *opts) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s/.table.tmp.md", dir);
    char *argv[24];
    int argc = 0;
    argv[argc++] = "dmabench";
    argv[argc++] = "table";
    argv[argc++] = (char *)report;
    for (int i = 0; opts[i]; i++) argv[argc++] = (char *)opts[i];
    argv[argc++] = "--out";
    argv[argc++] = tmp;
    argv[argc] = NULL;
    int rc = cmd_table(argc, argv);
    sb_printf(b, "## %s\n\n", heading);
    if (rc != 0 || append_file(b, tmp) != 0) sb_puts(b, "(no table: see the message above)\n");
    sb_puts(b, "\n");
    unlink(tmp);
    return rc;
}

static int has_task(const cJSON *recs, const char *task) {
    for (const cJSON *r = recs->child; r; r = r->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "task");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, task)) return 1;
    }
    return 0;
}

static int has_kind(const cJSON *recs, const char *kind) {
    for (const cJSON *r = recs->child; r; r = r->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "kind");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, kind)) return 1;
    }
    return 0;
}

/* The needle's depth x length matrix per variant (and d_model when it varies),
 * from the niah records of the report, seeds pooled: rows depth, columns
 * context length, cells accuracy (%), then the column over all depths with its
 * 95% Wilson interval (niah_grid_format). */
static void niah_matrices(sbuf *b, const cJSON *recs, const suite *s) {
    const suite_task_cfg *t = &s->task[SUITE_NIAH];
    if (!t->present) return;
    int lens[SUITE_MAX_LIST];
    for (int i = 0; i < t->context_len.n; i++) lens[i] = (int)t->context_len.v[i];
    for (int vi = 0; vi < s->n_variants; vi++)
        for (int di = 0; di < t->d_model.n; di++) {
            niah_grid g;
            char e[200];
            if (niah_grid_init(&g, lens, t->context_len.n, t->depths.v, t->depths.n, e, sizeof e) != TASK_OK) return;
            int64_t seeds[SUITE_MAX_LIST];
            int n_seeds = 0, n_recs = 0;
            for (const cJSON *r = recs->child; r; r = r->next) {
                const cJSON *tk = cJSON_GetObjectItemCaseSensitive(r, "task");
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "variant");
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
                const cJSON *set = cJSON_GetObjectItemCaseSensitive(r, "settings");
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "metrics");
                if (!cJSON_IsString(tk) || strcmp(tk->valuestring, "niah") || !cJSON_IsString(v) ||
                    strcmp(v->valuestring, s->variants[vi]) || !cJSON_IsString(st) || strcmp(st->valuestring, "ok"))
                    continue;
                const cJSON *dm = cJSON_GetObjectItemCaseSensitive(set, "d_model");
                const cJSON *L = cJSON_GetObjectItemCaseSensitive(set, "context_len");
                const cJSON *D = cJSON_GetObjectItemCaseSensitive(set, "depth");
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(m, "correct");
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "n");
                if (!cJSON_IsNumber(dm) || dm->valuedouble != (double)t->d_model.v[di] || !cJSON_IsNumber(L) ||
                    !cJSON_IsNumber(D) || !cJSON_IsNumber(k) || !cJSON_IsNumber(n))
                    continue;
                int li = -1, dj = -1;
                for (int i = 0; i < g.n_lens; i++)
                    if (g.lens[i] == (int)L->valuedouble) li = i;
                for (int j = 0; j < g.n_depths; j++)
                    if (fabs(g.depths[j] - D->valuedouble) < 1e-9) dj = j;
                if (li < 0 || dj < 0) continue;
                g.k[(size_t)dj * g.n_lens + li] += (int64_t)k->valuedouble;
                g.n[(size_t)dj * g.n_lens + li] += (int64_t)n->valuedouble;
                n_recs++;
                const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "seed");
                int64_t seed = cJSON_IsNumber(sd) ? (int64_t)sd->valuedouble : -1, seen = 0;
                for (int i = 0; i < n_seeds; i++) seen |= seeds[i] == seed;
                if (!seen && n_seeds < SUITE_MAX_LIST) seeds[n_seeds++] = seed;
            }
            if (n_recs) {
                sb_printf(b, "## Needle in a haystack: depth x length matrix, %s", s->variants[vi]);
                if (t->d_model.n > 1) sb_printf(b, ", d_model=%lld", t->d_model.v[di]);
                sb_printf(b, "\n\nAccuracy (%%) per (depth, context length), %d seed%s pooled (seed", n_seeds,
                          n_seeds == 1 ? "" : "s");
                for (int i = 0; i < n_seeds; i++) sb_printf(b, "%s %lld", i ? "," : "", (long long)seeds[i]);
                sb_printf(b, "); trained at %d; the last row is over all depths, with its 95%% Wilson interval.\n\n",
                          t->train_context_len);
                size_t cap = 256 + (size_t)(g.n_depths + 4) * (size_t)(g.n_lens * 32 + 32);
                char *buf = malloc(cap);
                if (buf) {
                    niah_grid_format(&g, buf, cap);
                    sb_puts(b, buf);
                    free(buf);
                }
                sb_puts(b, "\n");
            }
            niah_grid_free(&g);
        }
}

static int write_tables(const cJSON *report, const char *report_path, const char *dir, const suite *s, sbuf *b) {
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(report, "records");
    sb_printf(b, "# dmabench run: suite %s\n\n", s->name);
    int rc = 0;
    if (has_task(recs, "mqar")) {
        const char *o[] = {"--task", "mqar", NULL};
        rc |= table_view(b, report_path, dir, "MQAR accuracy (chance = 1 / num_kv_pairs)", o);
    }
    if (has_task(recs, "niah")) {
        const char *o[] = {"--task", "niah", NULL};
        rc |= table_view(b, report_path, dir, "Needle in a haystack: exact-match accuracy per (context length, depth)", o);
        niah_matrices(b, recs, s);
    }
    if (has_task(recs, "ppl")) {
        const char *o[] = {"--task", "ppl", "--metric", "bits_per_byte", NULL};
        rc |= table_view(b, report_path, dir, "Perplexity: bits per byte on the test split", o);
        /* the references: unigram and (synthetic) the ideal model's floor */
        const cJSON *r0 = NULL;
        for (const cJSON *r = recs->child; r; r = r->next) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "task");
            if (cJSON_IsString(t) && !strcmp(t->valuestring, "ppl") && cJSON_GetObjectItemCaseSensitive(r, "metrics")) {
                r0 = r;
                break;
            }
        }
        if (r0) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(r0, "metrics");
            const cJSON *co = cJSON_GetObjectItemCaseSensitive(r0, "corpus");
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "unigram_bits_per_byte");
            sb_printf(b, "References (%s corpus): unigram %.3f bits/byte",
                      cJSON_IsString(cJSON_GetObjectItemCaseSensitive(co, "name"))
                          ? cJSON_GetObjectItemCaseSensitive(co, "name")->valuestring
                          : "?",
                      cJSON_IsNumber(u) ? u->valuedouble : NAN);
            /* floors per (eval, context), each once (the same for every d_model) */
            int first = 1, nseen = 0;
            char seen[64][48];
            for (const cJSON *r = recs->child; r; r = r->next) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "task");
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "variant");
                if (!cJSON_IsString(t) || strcmp(t->valuestring, "ppl") || !cJSON_IsString(v) ||
                    strcmp(v->valuestring, cJSON_GetObjectItemCaseSensitive(r0, "variant")->valuestring) ||
                    cJSON_GetObjectItemCaseSensitive(r, "seed")->valuedouble !=
                        cJSON_GetObjectItemCaseSensitive(r0, "seed")->valuedouble)
                    continue;
                const cJSON *mm = cJSON_GetObjectItemCaseSensitive(r, "metrics");
                const cJSON *fl = cJSON_GetObjectItemCaseSensitive(mm, "floor_bits_per_byte");
                const cJSON *set = cJSON_GetObjectItemCaseSensitive(r, "settings");
                if (!cJSON_IsNumber(fl)) continue;
                char key[48];
                snprintf(key, sizeof key, "%s %d", cJSON_GetObjectItemCaseSensitive(set, "eval")->valuestring,
                         (int)cJSON_GetObjectItemCaseSensitive(set, "context")->valuedouble);
                int dup = 0;
                for (int i = 0; i < nseen && !dup; i++) dup = !strcmp(seen[i], key);
                if (dup || nseen == 64) continue;
                snprintf(seen[nseen++], sizeof seen[0], "%s", key);
                sb_printf(b, "%s %s: %.3f%s", first ? "; the ideal model's floor:" : ",", key, fl->valuedouble,
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mm, "floor_exact")) ? "" : " (bound)");
                first = 0;
            }
            sb_puts(b, ".\n\n");
        }
    }
    if (has_kind(recs, "kernel")) {
        const char *o[] = {"--kind", "kernel", NULL};
        rc |= table_view(b, report_path, dir, "Kernel profile: time per call (dmabench kernels)", o);
    }
    return rc;
}

/* ---- the command ---- */

static void utc_stamp(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y%m%dT%H%M%SZ", &tm);
}

/* Whether the comma-separated list names what (every name when there is no list). */
static int list_has(const char *list, const char *what) {
    if (!list) return 1;
    char *items[16];
    int n = cli_list(list, items, 16);
    int hit = 0;
    for (int i = 0; i < n; i++) hit |= !strcmp(items[i], what);
    cli_list_free(items, n);
    return hit;
}

/* The ppl task's corpus: generated (synthetic), the license files, or a file. */
static task_status open_ppl_corpus(const suite_task_cfg *t, ppl_corpus *c, char *err, size_t err_len) {
    if (!strcmp(t->corpus, "synthetic"))
        return ppl_corpus_synthetic(&t->synth, t->train_tokens, t->test_tokens, 1, c, err, err_len);
    if (!strcmp(t->corpus, "licenses")) return ppl_corpus_licenses(NULL, PPL_DEFAULT_TEST_FRAC, c, err, err_len);
    return ppl_corpus_from_file(t->corpus, PPL_DEFAULT_TEST_FRAC, c, err, err_len);
}
static int ncells_of(const suite_cell *cells, int n, suite_task task) {
    int k = 0;
    for (int i = 0; i < n; i++) k += cells[i].task == task;
    return k;
}
/* Perplexity trains every model on one fixed corpus: more than a few passes over
 * its train split (train_n tokens) and the models memorise it, so that the test
 * scores measure how much, not the attention. Says so on out; returns 1 if so. */
#define PPL_MAX_PASSES 4.0
static int warn_ppl_passes(const suite *S, int64_t train_n, const char *what, FILE *out) {
    const suite_task_cfg *t = &S->task[SUITE_PPL];
    if (!t->present || train_n <= 0) return 0;
    const double seen = (double)t->base.steps * t->base.batch_size * t->train_context;
    const double passes = seen / (double)train_n;
    if (passes <= PPL_MAX_PASSES) return 0;
    fprintf(out,
            "%sppl: each model trains on %.3g tokens, %.0f passes over the %lld-token train split of %s: it will "
            "memorise it and the test scores then measure that; use a larger corpus (\"corpus\": FILE) or fewer "
            "steps (at most %.0f passes: %lld steps)\n",
            out == stderr ? "dmabench run: warning: " : "warning: ", seen, passes, (long long)train_n, what,
            PPL_MAX_PASSES,
            (long long)(PPL_MAX_PASSES * (double)train_n / ((double)t->base.batch_size * t->train_context)));
    return 1;
}

/* "90m", "1h", "540s" or a bare number: *unit says whether a unit was given */
static int parse_dur(const char *text, double *secs, int *unit) {
    char *end = NULL;
    double v = strtod(text, &end);
    *unit = 1;
    if (end && *end == 'h' && !end[1]) v *= 3600, end++;
    else if (end && *end == 'm' && !end[1]) v *= 60, end++;
    else if (end && *end == 's' && !end[1]) end++;
    else *unit = 0;
    if (!end || end == text || *end || !isfinite(v)) return -1;
    *secs = v;
    return 0;
}

int cmd_run(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "run", argc, argv, 2, "--help -h --validate --print-suite --quiet --fresh --report") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
        usage();
        return 0;
    }
    const char *out_opt = cli_str(&a, "--out", NULL);
    const char *resume = cli_str(&a, "--resume", NULL);
    const char *only = cli_str(&a, "--only", NULL);
    const char *variants_opt = cli_str(&a, "--variants", NULL);
    const char *shard_opt = cli_str(&a, "--shard", NULL);
    int shard_k = 0, shard_n = 1;
    if (shard_opt) {
        char tail = 0;
        if (sscanf(shard_opt, "%d/%d%c", &shard_k, &shard_n, &tail) != 2 || shard_n < 1 || shard_k < 0 ||
            shard_k >= shard_n) {
            fprintf(stderr, "dmabench run: --shard takes K/N with 0 <= K < N (got '%s')\n", shard_opt);
            return 2;
        }
    }
    const char *backend_opt = cli_str(&a, "--backend", NULL);
    const char *timing_from = cli_str(&a, "--timing-from", NULL);
    const char *budget_opt = cli_str(&a, "--budget", NULL);
    double budget_s = 0;
    int unit = 0;
    if (budget_opt && (parse_dur(budget_opt, &budget_s, &unit) || !(budget_s > 0))) {
        fprintf(stderr, "dmabench run: --budget takes a duration such as 1h, 90m or 3600s (got '%s')\n", budget_opt);
        return 2;
    }
    const char *deadline_opt = cli_str(&a, "--deadline", NULL);
    double deadline = 0; /* on now_s()'s clock */
    if (deadline_opt) {
        double v = 0;
        if (parse_dur(deadline_opt, &v, &unit) || !(v > 0) || (!unit && v < 1e9)) {
            fprintf(stderr, "dmabench run: --deadline takes a Unix time in seconds (date +%%s) or a duration from now "
                            "such as 9m or 540s (got '%s')\n", deadline_opt);
            return 2;
        }
        deadline = now_s() + (unit ? v : v - (double)time(NULL));
    }
    int validate = cli_flag(&a, "--validate"), print_suite = cli_flag(&a, "--print-suite");
    int quiet = cli_flag(&a, "--quiet"), fresh = cli_flag(&a, "--fresh");
    int report_only = cli_flag(&a, "--report");
    long long threads_opt = 0, max_cells = 0;
    if (cli_int(&a, "--threads", 0, 0, 4096, &threads_opt) || cli_int(&a, "--max-cells", 0, 0, 1 << 30, &max_cells)) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    const char *suite_path = cli_pos(&a, 0);
    if (cli_npos(&a) > 1) {
        fprintf(stderr, "dmabench run: one suite at a time (got '%s' and '%s')\n", cli_pos(&a, 0), cli_pos(&a, 1));
        return 2;
    }
    if (cli_finish(&a) != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (resume && out_opt && strcmp(resume, out_opt)) {
        fprintf(stderr, "dmabench run: --resume DIR and --out DIR name different folders\n");
        return 2;
    }
    if (budget_opt && !timing_from) {
        fprintf(stderr, "dmabench run: --budget sizes a suite from measured records: use it with --timing-from\n");
        return 2;
    }
    if (timing_from && !validate) {
        fprintf(stderr, "dmabench run: --timing-from estimates a suite's time: use it with --validate\n");
        return 2;
    }
    if (resume && suite_path) {
        fprintf(stderr, "dmabench run: --resume DIR reruns DIR/suite.json; give no SUITE with it\n");
        return 2;
    }
    if (fresh && !resume && !cli_str(&a, "--out", NULL)) {
        fprintf(stderr, "dmabench run: --fresh needs --out DIR (the folder to start over in)\n");
        return 2;
    }
    if (fresh && resume) {
        fprintf(stderr, "dmabench run: --fresh and --resume contradict each other\n");
        return 2;
    }
    if (report_only && !resume) {
        fprintf(stderr, "dmabench run: --report writes the report of a run folder: use it with --resume DIR\n");
        return 2;
    }
    if (only) {
        char *items[16];
        int n = cli_list(only, items, 16);
        for (int i = 0; i < n; i++)
            if (strcmp(items[i], "mqar") && strcmp(items[i], "niah") && strcmp(items[i], "ppl") &&
                strcmp(items[i], "kernels")) {
                fprintf(stderr, "dmabench run: --only: unknown part '%s' (use mqar, niah, ppl, kernels)\n", items[i]);
                cli_list_free(items, n);
                return 2;
            }
        cli_list_free(items, n);
    }
    if (backend_opt && strcmp(backend_opt, "cpu") && strcmp(backend_opt, "cuda")) {
        fprintf(stderr, "dmabench run: --backend must be cpu or cuda, got '%s'\n", backend_opt);
        return 2;
    }

    /* the suite: a file, DIR/suite.json on resume, or the embedded default */
    char err[1024] = "";
    suite S;
    char resume_suite[1100];
    const char *what = suite_path;
    if (resume) {
        snprintf(resume_suite, sizeof resume_suite, "%s/suite.json", resume);
        if (!file_exists(resume_suite)) {
            fprintf(stderr, "dmabench run: --resume %s: no suite.json there (not a run folder)\n", resume);
            return 2;
        }
        what = resume_suite;
    }
    if (print_suite) {
        if (!what) {
            fputs(suite_quick_json, stdout);
            return 0;
        }
    }
    int prc = what ? suite_load(what, &S, err, sizeof err) : suite_parse(suite_quick_json, "quick (embedded)", &S, err, sizeof err);
    if (prc != 0) {
        fprintf(stderr, "dmabench run: %s\n", err);
        return 2;
    }
    if (print_suite) {
        FILE *f = fopen(what, "r");
        char buf[4096];
        size_t n;
        while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
        if (f) fclose(f);
        suite_free(&S);
        return 0;
    }
    if (backend_opt) snprintf(S.backend, sizeof S.backend, "%s", backend_opt);
    /* every cell of the whole suite: the report covers them all, also when --only
     * runs some parts (records of the others come from earlier runs) */
    suite_cell *all_cells = NULL;
    int nall = suite_cells(&S, &all_cells, err, sizeof err);
    if (nall < 0) {
        fprintf(stderr, "dmabench run: %s\n", err);
        suite_free(&S);
        return 2;
    }
    const int suite_has_kernels = S.kernel_argc > 0;
    int present0[SUITE_NTASKS];
    for (int i = 0; i < SUITE_NTASKS; i++) present0[i] = S.task[i].present;
    /* drop the parts not asked for */
    if (only) {
        int k = 0;
        for (int i = 0; i < S.n_tasks; i++)
            if (list_has(only, suite_task_name((suite_task)S.order[i]))) S.order[k++] = S.order[i];
            else S.task[S.order[i]].present = 0;
        S.n_tasks = k;
        if (!list_has(only, "kernels")) {
            for (int i = 0; i < S.kernel_argc; i++) free(S.kernel_argv[i]);
            S.kernel_argc = 0;
        }
    }
    suite_cell *cells = NULL;
    int ncells = suite_cells(&S, &cells, err, sizeof err);
    if (ncells < 0) {
        fprintf(stderr, "dmabench run: %s\n", err);
        free(all_cells);
        suite_free(&S);
        return 2;
    }
    if (variants_opt) { /* keep the cells of the variants asked for */
        char *items[8];
        int n = cli_list(variants_opt, items, 8), bad = -1;
        for (int i = 0; i < n && bad < 0; i++) {
            int found = 0;
            for (int v = 0; v < S.n_variants; v++) found |= !strcmp(items[i], S.variants[v]);
            if (!found) bad = i;
        }
        if (bad >= 0 || n == 0) {
            char have[64] = "";
            for (int v = 0; v < S.n_variants; v++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", v ? ", " : "", S.variants[v]);
            if (n == 0) fprintf(stderr, "dmabench run: --variants: no variant given (suite %s has %s)\n", S.name, have);
            else
                fprintf(stderr, "dmabench run: --variants: '%s' is not one of the suite's variants (suite %s has %s)\n",
                        items[bad], S.name, have);
            cli_list_free(items, n);
            free(cells);
            free(all_cells);
            suite_free(&S);
            return 2;
        }
        cli_list_free(items, n);
        int k = 0;
        for (int c = 0; c < ncells; c++)
            if (list_has(variants_opt, S.variants[cells[c].variant])) cells[k++] = cells[c];
        ncells = k;
    }
    if (shard_n > 1) { /* every shard_n-th of the cells left, from the shard_k-th */
        int k = 0;
        for (int c = shard_k; c < ncells; c += shard_n) cells[k++] = cells[c];
        ncells = k;
    }
    double total_tokens = 0;
    for (int i = 0; i < ncells; i++) total_tokens += cells[i].cost;
    /* cost units are tokens x d_model^2 x layers; ~1.4e9 units/s measured on 2 cores at d_model 64 (less for nsa) */
    double est_cpu_s = total_tokens / 1.0e9;
    int want_cuda_train = ncells > 0 && !strcmp(S.backend, "cuda");
    int want_cuda_kern = S.kernel_argc > 0 && strstr(S.kernel_backend, "cuda") != NULL;
    if (validate) {
        char d[32];
        fmt_dur(d, sizeof d, est_cpu_s);
        printf("suite %s: valid. %d training cells (", S.name, ncells);
        for (int i = 0; i < S.n_tasks; i++) {
            int n = 0;
            for (int j = 0; j < ncells; j++) n += cells[j].task == (suite_task)S.order[i];
            printf("%s%s %d", i ? ", " : "", suite_task_name((suite_task)S.order[i]), n);
        }
        printf("), %d variants%s%s%s, %d seed%s; training backend %s; kernel profile: %s\n", S.n_variants,
               variants_opt ? " (training " : "", variants_opt ? variants_opt : "", variants_opt ? ")" : "", S.seeds.n,
               S.seeds.n == 1 ? "" : "s", S.backend, S.kernel_argc ? S.kernel_backend : "none");
        printf("estimated CPU time for the training cells: %s (2 cores)\n", d);
        if (timing_from && suite_estimate_time(&S, cells, ncells, timing_from, budget_s, stdout, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "dmabench run: %s\n", err);
            free(cells);
            free(all_cells);
            suite_free(&S);
            return 2;
        }
        if (S.task[SUITE_PPL].present && ncells_of(cells, ncells, SUITE_PPL) > 0) {
            const suite_task_cfg *t = &S.task[SUITE_PPL];
            if (!strcmp(t->corpus, "synthetic")) /* its train split is as long as asked: no need to make it */
                warn_ppl_passes(&S, t->train_tokens, "the synthetic corpus", stdout);
            else {
                ppl_corpus pc;
                memset(&pc, 0, sizeof pc);
                char perr[256];
                task_status ts = open_ppl_corpus(t, &pc, perr, sizeof perr);
                if (ts == TASK_OK) {
                    warn_ppl_passes(&S, pc.train.n, t->corpus, stdout);
                    ppl_corpus_free(&pc);
                } else printf("ppl corpus '%s' cannot be read here: %s\n", t->corpus, perr);
            }
        }
        if (want_cuda_train) {
            printf("training on cuda%s\n", cuda_available() ? "" : ": this machine has no usable GPU, so it would be "
                                                                   "refused here");
            warn_cuda_head_dims(&S, cells, ncells, stdout);
        }
        if (want_cuda_kern)
            printf("the kernel profile runs on %s%s\n", S.kernel_backend,
                   cuda_available() ? "" : ": this machine has no usable GPU, so it would be refused here");
        free(cells);
        free(all_cells);
        suite_free(&S);
        return 0;
    }
    if (!report_only && (want_cuda_train || want_cuda_kern) && !cuda_available()) {
        char d[32];
        fmt_dur(d, sizeof d, est_cpu_s);
        char parts[256] = "";
        if (want_cuda_train) {
            for (int i = 0; i < S.n_tasks; i++) {
                size_t l = strlen(parts);
                snprintf(parts + l, sizeof parts - l, "%s%s", l ? ", " : "", suite_task_name((suite_task)S.order[i]));
            }
            size_t l = strlen(parts);
            snprintf(parts + l, sizeof parts - l, " training (backend cuda: no usable GPU%s; --backend cpu would take "
                                                  "about %s here)", cuda_built() ? "" : ", CUDA not built", d);
        }
        if (want_cuda_kern && !cuda_available()) {
            size_t l = strlen(parts);
            snprintf(parts + l, sizeof parts - l, "%sthe kernel profile (backend %s: no usable GPU%s)", l ? " and " : "",
                     S.kernel_backend, cuda_built() ? "" : ", CUDA not built");
        }
        fprintf(stderr, "dmabench run: suite %s cannot run here: %s%s\n", S.name, parts,
                want_cuda_train && suite_has_kernels && cuda_available()
                    ? "; `--only kernels` runs the kernel profile alone"
                    : want_cuda_train && suite_has_kernels ? "; `--only kernels` runs the kernel profile alone on a GPU host" : "");
        free(cells);
        free(all_cells);
        suite_free(&S);
        return 2;
    }

    if (want_cuda_train) warn_cuda_head_dims(&S, cells, ncells, stderr);

    /* the output folder */
    char dir[1024];
    if (resume) snprintf(dir, sizeof dir, "%s", resume);
    else if (out_opt) snprintf(dir, sizeof dir, "%s", out_opt);
    else {
        char ts[32];
        utc_stamp(ts, sizeof ts);
        snprintf(dir, sizeof dir, "results/run-%s", ts);
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "dmabench run: cannot create %s: %s\n", dir, strerror(errno));
        free(cells);
        free(all_cells);
        suite_free(&S);
        return 1;
    }
    char p_suite[1100], p_jsonl[1100], p_report[1100], p_tables[1100], p_kern[1100];
    snprintf(p_suite, sizeof p_suite, "%s/suite.json", dir);
    snprintf(p_jsonl, sizeof p_jsonl, "%s/records.jsonl", dir);
    snprintf(p_report, sizeof p_report, "%s/report.json", dir);
    snprintf(p_tables, sizeof p_tables, "%s/tables.md", dir);
    snprintf(p_kern, sizeof p_kern, "%s/kernels.json", dir);
    /* a rerun into the same folder must be the same suite */
    if (!resume) {
        const char *text = NULL;
        char *buf = NULL;
        if (suite_path) {
            cJSON *j = report_read(suite_path, err, sizeof err);
            buf = j ? cJSON_Print(j) : NULL;
            cJSON_Delete(j);
            text = buf;
        } else {
            cJSON *j = cJSON_Parse(suite_quick_json);
            buf = j ? cJSON_Print(j) : NULL;
            cJSON_Delete(j);
            text = buf;
        }
        if (!text) {
            fprintf(stderr, "dmabench run: cannot serialise the suite\n");
            free(cells);
            free(all_cells);
            suite_free(&S);
            return 2;
        }
        if (file_exists(p_suite) && !fresh) {
            cJSON *old = report_read(p_suite, err, sizeof err);
            char *ot = old ? cJSON_Print(old) : NULL;
            cJSON_Delete(old);
            int same = ot && !strcmp(ot, text);
            free(ot);
            if (!same && file_exists(p_jsonl)) {
                fprintf(stderr, "dmabench run: %s holds a run of another suite; use another --out, or --fresh to start over\n",
                        dir);
                free(buf);
                free(cells);
                free(all_cells);
                suite_free(&S);
                return 2;
            }
        }
        if (fresh) {
            unlink(p_jsonl);
            char kj[1200];
            snprintf(kj, sizeof kj, "%s.jsonl", p_kern);
            unlink(kj);
            unlink(p_kern);
        }
        char *t2 = malloc(strlen(text) + 2);
        if (t2) sprintf(t2, "%s\n", text);
        int w = t2 ? write_file_atomic(p_suite, t2, strlen(t2), err, sizeof err) : -1;
        free(t2);
        free(buf);
        if (w != 0) {
            fprintf(stderr, "dmabench run: %s\n", err[0] ? err : "out of memory");
            free(cells);
            free(all_cells);
            suite_free(&S);
            return 1;
        }
    }

    done_set done;
    int dropped = 0;
    if (load_done(p_jsonl, &done, &dropped, err, sizeof err) != 0) {
        fprintf(stderr, "dmabench run: %s\n", err);
        free(cells);
        free(all_cells);
        suite_free(&S);
        return 1;
    }
    int nskip = 0;
    for (int i = 0; i < ncells; i++) nskip += done_has(&done, cells[i].key);
    int threads = (int)(threads_opt ? threads_opt : S.threads ? S.threads : omp_get_max_threads());
    model_set_threads(threads);
    fprintf(stderr, "run: suite %s, %d cell%s (%s), %d variant%s, %d seed%s, %d thread%s -> %s\n", S.name, ncells,
            ncells == 1 ? "" : "s", S.kernel_argc ? "plus a kernel profile" : "no kernel profile", S.n_variants,
            S.n_variants == 1 ? "" : "s", S.seeds.n, S.seeds.n == 1 ? "" : "s", threads, threads == 1 ? "" : "s", dir);
    if (nskip || dropped)
    {
        if (dropped)
            fprintf(stderr, "run: resuming: %d cell%s already done, %d torn or partial line%s dropped\n", nskip,
                    nskip == 1 ? "" : "s", dropped, dropped == 1 ? "" : "s");
        else
            fprintf(stderr, "run: resuming: %d cell%s already done\n", nskip, nskip == 1 ? "" : "s");
    }

    /* shared data: the ppl corpus and the niah haystack */
    ppl_corpus corpus;
    memset(&corpus, 0, sizeof corpus);
    int have_corpus = 0;
    unsigned char *hay = NULL;
    size_t hay_len = 0;
    int rc = 0;
    int need_ppl = 0, need_hay = 0;
    for (int i = 0; i < ncells && !report_only; i++)
        if (!done_has(&done, cells[i].key)) {
            need_ppl |= cells[i].task == SUITE_PPL;
            need_hay |= cells[i].task == SUITE_NIAH && !strcmp(S.task[SUITE_NIAH].haystack, "licenses");
        }
    if (need_ppl) {
        const suite_task_cfg *t = &S.task[SUITE_PPL];
        task_status ts = open_ppl_corpus(t, &corpus, err, sizeof err);
        if (ts != TASK_OK) {
            fprintf(stderr, "dmabench run: ppl corpus '%s': %s\n", t->corpus, err);
            rc = 2;
            goto finish;
        }
        have_corpus = 1;
        warn_ppl_passes(&S, corpus.train.n, t->corpus, stderr);
    }
    if (need_hay) {
        ppl_corpus lic;
        if (ppl_corpus_licenses(NULL, PPL_DEFAULT_TEST_FRAC, &lic, err, sizeof err) != TASK_OK ||
            ppl_tokens_text(&lic.train, &hay, &hay_len, err, sizeof err) != TASK_OK) {
            fprintf(stderr, "dmabench run: niah haystack: %s\n", err);
            if (lic.train.tok) ppl_corpus_free(&lic);
            rc = 2;
            goto finish;
        }
        ppl_corpus_free(&lic);
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    progress pr;
    memset(&pr, 0, sizeof pr);
    pr.quiet = quiet;
    pr.tty = isatty(2);
    pr.ncells = ncells;
    pr.t_run0 = now_s();
    for (int i = 0; i < ncells; i++)
        if (!done_has(&done, cells[i].key)) pr.cost_left += cells[i].cost;
    pr.deadline = deadline;
    int nrun = 0, nfail = 0;
    int stopped = 0, late = 0;
    /* the pace of each task and variant (seconds per unit of cost), from the cells
     * done in DIR before (their cell_s) and then from this run's */
    double pace_secs[SUITE_NTASKS][SUITE_MAX_VARIANTS], pace_cost[SUITE_NTASKS][SUITE_MAX_VARIANTS];
    memset(pace_secs, 0, sizeof pace_secs);
    memset(pace_cost, 0, sizeof pace_cost);
    for (int c = 0; c < nall && deadline > 0; c++) {
        for (int r = 0; r < done.nrecs; r++) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(done.recs[r], "cell");
            if (!cJSON_IsString(k) || strcmp(k->valuestring, all_cells[c].key)) continue;
            const cJSON *cs = cJSON_GetObjectItemCaseSensitive(done.recs[r], "cell_s");
            if (cJSON_IsNumber(cs) && cs->valuedouble > 0) {
                pace_secs[all_cells[c].task][all_cells[c].variant] += cs->valuedouble;
                pace_cost[all_cells[c].task][all_cells[c].variant] += all_cells[c].cost;
            }
            break;
        }
    }
    for (int i = 0; i < ncells && !g_stop && !report_only; i++) {
        if (done_has(&done, cells[i].key)) continue;
        if (max_cells && nrun >= max_cells) {
            stopped = 1;
            break;
        }
        if (deadline > 0) { /* start only what this run's pace says ends in time */
            int t = cells[i].task, v = cells[i].variant;
            double left = deadline - now_s();
            double need = pace_cost[t][v] > 0 ? cells[i].cost * pace_secs[t][v] / pace_cost[t][v] : 0;
            if (left <= 0 || need > left) {
                char dl[32], dn[32];
                fmt_dur(dl, sizeof dl, left > 0 ? left : 0);
                fmt_dur(dn, sizeof dn, need);
                fprintf(stderr, "run: deadline: %s left, and %s would take about %s; not started\n", dl,
                        cells[i].key, dn);
                late = 1;
                break;
            }
        }
        pr.cell = i + 1;
        pr.label = cells[i].key;
        pr.cost_this = cells[i].cost;
        pr.cost_left -= cells[i].cost;
        pr.t_cell0 = pr.t_last = now_s();
        int intr = 0;
        cJSON *recs = run_cell(&S, &cells[i], &corpus, hay, hay_len, &pr, &intr);
        double dt = now_s() - pr.t_cell0;
        if (intr) {
            cJSON_Delete(recs);
            if (pr.tty && !quiet) fprintf(stderr, "\n");
            break;
        }
        pr.secs_done += dt;
        pr.cost_done += cells[i].cost;
        pace_secs[cells[i].task][cells[i].variant] += dt;
        pace_cost[cells[i].task][cells[i].variant] += cells[i].cost;
        for (cJSON *r = recs->child; r; r = r->next) cJSON_AddNumberToObject(r, "cell_s", dt); /* its wall time */
        nrun++;
        /* one write for the whole cell: its lines land together */
        sbuf b = {0};
        for (const cJSON *r = recs->child; r; r = r->next) {
            char *s = cJSON_PrintUnformatted(r);
            if (s) sb_printf(&b, "%s\n", s);
            else b.oom = 1;
            free(s);
        }
        int ok = !b.oom && append_whole(p_jsonl, b.s, b.len) == 0;
        sb_free(&b);
        if (!ok) {
            fprintf(stderr, "%sdmabench run: cannot append to %s: %s\n", pr.tty && !quiet ? "\n" : "", p_jsonl,
                    strerror(errno));
            cJSON_Delete(recs);
            rc = 1;
            goto finish;
        }
        char sum[400], eta[48] = "", d[32];
        cell_summary(recs, sum, sizeof sum);
        if (strstr(sum, "error: ") == sum) nfail++;
        fmt_dur(d, sizeof d, dt);
        if (pr.cost_left > 0 && pr.cost_done > 0) {
            char e[32];
            fmt_dur(e, sizeof e, pr.cost_left * pr.secs_done / pr.cost_done);
            snprintf(eta, sizeof eta, ", ETA %s", e);
        }
        fprintf(stderr, "%s[%d/%d] %s: %s in %s%s\n", pr.tty && !quiet ? "\r\033[K" : "", i + 1, ncells, cells[i].key,
                sum, d, eta);
        cJSON_Delete(recs);
    }
    if (g_stop || stopped || late) {
        int at_deadline = late || (g_stop && deadline > 0 && now_s() >= deadline);
        fprintf(stderr, "run: %s after %d new cells; `dmabench run --resume %s` continues where it stopped\n",
                at_deadline ? "stopped at the deadline" : g_stop ? "interrupted" : "stopped (--max-cells)", nrun, dir);
        rc = g_stop || late ? 130 : 0;
        goto finish;
    }

    /* the kernel profile */
    if (S.kernel_argc && !report_only && shard_k == 0) { /* the first shard's */
        if (deadline > 0 && now_s() >= deadline) {
            fprintf(stderr, "run: stopped at the deadline before the kernel profile; `dmabench run --resume %s` "
                            "continues\n", dir);
            rc = 130;
            goto finish;
        }
        fprintf(stderr, "run: kernel profile (dmabench kernels %s ...)\n", S.kernel_argc ? S.kernel_argv[0] : "");
        int krc = run_kernels(&S, dir, threads, quiet);
        if (g_stop) {
            fprintf(stderr, "run: interrupted in the kernel profile; `dmabench run --resume %s` continues\n", dir);
            rc = 130;
            goto finish;
        }
        if (krc == 2) {
            fprintf(stderr, "dmabench run: the kernel profile's options were refused (see above)\n");
            rc = 2;
            goto finish;
        }
        if (krc) rc = 1;
    }

    /* the report: records in cell order (the same for a resumed run), then kernels */
    {
        done_set all;
        int dr2 = 0;
        if (load_done(p_jsonl, &all, &dr2, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench run: %s\n", err);
            rc = 1;
            goto finish;
        }
        cJSON *rep = report_new(report_provenance(argc, argv, S.seeds.v[0]));
        cJSON *suite_info = cJSON_CreateObject();
        cJSON_AddStringToObject(suite_info, "name", S.name);
        cJSON_AddNumberToObject(suite_info, "cells", nall);
        cJSON_AddItemToObject(rep, "suite", suite_info);
        double cells_s = 0; /* the cells' own wall times (cell_s, once per cell) */
        int ntimed = 0;
        for (int i = 0; i < nall; i++)
            for (int j = 0; j < all.nrecs; j++) {
                const cJSON *c = cJSON_GetObjectItemCaseSensitive(all.recs[j], "cell");
                if (strcmp(c->valuestring, all_cells[i].key)) continue;
                report_add(rep, cJSON_Duplicate(all.recs[j], 1));
                const cJSON *part = cJSON_GetObjectItemCaseSensitive(all.recs[j], "cell_part");
                const cJSON *cs = cJSON_GetObjectItemCaseSensitive(all.recs[j], "cell_s");
                if (cJSON_IsNumber(cs) && cJSON_GetArrayItem(part, 0)->valuedouble == 1)
                    cells_s += cs->valuedouble, ntimed++;
            }
        done_free(&all);
        if (suite_has_kernels && file_exists(p_kern)) {
            cJSON *k = report_read(p_kern, err, sizeof err);
            const cJSON *kr = k ? cJSON_GetObjectItemCaseSensitive(k, "records") : NULL;
            /* each record keeps the device of the machine that profiled it */
            const cJSON *kp = cJSON_GetObjectItemCaseSensitive(k, "provenance");
            for (const cJSON *r = kr ? kr->child : NULL; r; r = r->next) {
                cJSON *d = cJSON_Duplicate(r, 1);
                int gpu;
                const char *name = rec_device(r, kp, &gpu);
                if (d && name && !cJSON_GetObjectItemCaseSensitive(d, "card")) cJSON_AddStringToObject(d, "card", name);
                report_add(rep, d);
            }
            cJSON_Delete(k);
        }
        if (report_write(p_report, rep, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench run: %s\n", err);
            cJSON_Delete(rep);
            rc = 1;
            goto finish;
        }
        sbuf tb = {0};
        for (int i = 0; i < SUITE_NTASKS; i++) S.task[i].present = present0[i]; /* the tables cover the whole suite */
        write_tables(rep, p_report, dir, &S, &tb);
        cJSON_Delete(rep);
        if (tb.oom || write_file_atomic(p_tables, tb.s ? tb.s : "", tb.len, err, sizeof err) != 0) {
            fprintf(stderr, "dmabench run: %s\n", tb.oom ? "out of memory" : err);
            sb_free(&tb);
            rc = 1;
            goto finish;
        }
        fputs(tb.s ? tb.s : "", stdout);
        fflush(stdout);
        sb_free(&tb);
        char d[32], dc[32], took[96] = "";
        fmt_dur(d, sizeof d, now_s() - pr.t_run0);
        fmt_dur(dc, sizeof dc, cells_s);
        if (ntimed) /* over every part of a resumed run, on whatever machines ran them */
            snprintf(took, sizeof took, "; the %s%d cells took %s", ntimed < nall ? "timed " : "", ntimed, dc);
        if (report_only)
            fprintf(stderr, "run: report of the %d of %d cells done%s%s%s%s; report %s, tables %s\n", nskip, ncells,
                    nskip < ncells ? " (`dmabench run --resume " : "", nskip < ncells ? dir : "",
                    nskip < ncells ? "` runs the rest)" : "", took, p_report, p_tables);
        else
            fprintf(stderr, "run: %d cells (%d run now, %d resumed%s%d failed) in %s%s; report %s, tables %s\n", ncells,
                    nrun, nskip, ", ", nfail, d, took, p_report, p_tables);
        if (nfail) rc = 1;
    }

finish:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    done_free(&done);
    if (have_corpus) ppl_corpus_free(&corpus);
    free(hay);
    free(cells);
    free(all_cells);
    suite_free(&S);
    return rc;
}
