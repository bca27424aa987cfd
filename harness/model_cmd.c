/*
 * model_cmd.c: the model commands (docs/model.md).
 *
 *   dmabench train --config C --data D --out DIR [overrides]   train, checkpoint, log
 *                  [--val-data V --val-every N --val-batches M] validate on held-out V
 *   dmabench train --resume DIR [--data D] [overrides]          continue exactly
 *   dmabench generate --model DIR --prompt TEXT [...]          sample with the KV cache
 *   dmabench forward --model DIR --in IN.st --out OUT.st        logits for input_ids
 *
 * Progress goes to stderr, the JSONL training log to DIR/train_log.jsonl.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "model.h"
#include "model_gpu.h"
#include "report.h"
#include "safetensors.h"

#define FMA_PEAK_ENV "DMABENCH_FMA_PEAK_GFLOPS"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* "s" for a plural count */
#define PL(n) ((n) == 1 ? "" : "s")

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void fmt_dur(double s, char *out, size_t n) {
    if (!(s >= 0) || !isfinite(s)) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* ---- train ---- */

static void train_usage(void) {
    printf("usage: dmabench train --config C.json --data D --out DIR [options]\n"
           "       dmabench train --resume DIR [--data D] [options]\n"
           "\n"
           "Trains the model of config C (HF Doge keys + \"attention\" + \"train\"; docs/model.md)\n"
           "on D: a byte file (tokens = bytes) or a safetensors file with input_ids (N, T)\n"
           "I32/I64 and optional labels. Writes DIR/config.json, DIR/model.safetensors,\n"
           "DIR/optimizer.safetensors (every --ckpt-every steps and at the end) and the\n"
           "log DIR/train_log.jsonl. --resume continues a run exactly where its last\n"
           "checkpoint left it (same losses as an uninterrupted run).\n"
           "\n"
           "validation (on held-out data: a file other than D, in either format):\n"
           "  --val-data V       validate on V: its batches 0..M-1 (batch-size x context,\n"
           "                     drawn as from D with the run's seed; the same every time)\n"
           "  --val-every N      also every N steps (default 0: only at the end)\n"
           "  --val-batches M    batches per validation (default 8)\n"
           "  The loss is the mean NLL per counted label token, and its perplexity.\n"
           "\n"
           "options (each overrides the config's \"train\" block):\n"
           "  --steps N  --batch-size N  --context N  --grad-accum N  --lr X  --min-lr-ratio X\n"
           "  --schedule cosine|wsd|constant  --warmup N  --decay-frac X  --weight-decay X\n"
           "  --clip X  --seed N  --log-every N  --ckpt-every N\n"
           "other options:\n"
           "  --backend B        cpu (default) or cuda: the whole model on the GPU, bf16\n"
           "                     compute with fp32 master weights (every variant); the\n"
           "                     checkpoints are the same files either way\n"
           "  --threads N        OpenMP and OpenBLAS threads (default: all cores)\n"
           "  --max-seconds S    stop (with a checkpoint) after S seconds\n"
           "  --force            write into an --out folder that already holds a checkpoint\n"
           "  --quiet            no progress lines\n"
           "\n"
           "Exit status: 0 done (or stopped with a checkpoint), 1 a failed step or an output\n"
           "that cannot be written (the --out folder or a file in it), 2 bad usage or input.\n");
}

/* Training FLOPs per token, the usual count: 6 per weight of every matrix product
 * (forward 2, backward 4; the embedding lookup is none, a tied head is one) plus
 * the attention's 6 L Hq D ctx (QK^T and PV, causal: half of the 12 of a full
 * context), dense-equivalent for every variant. */
static double model_flops_per_token(const model *m, int ctx) {
    const model_config *c = model_get_config(m);
    double w = 0;
    for (int i = 0; i < model_num_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        if (t->ndim != 2) continue;
        if (!strcmp(t->name, "model.embed_tokens.weight") && !c->tie_word_embeddings) continue;
        w += (double)t->numel;
    }
    return 6.0 * w + 6.0 * c->num_hidden_layers * c->num_attention_heads * c->head_dim * (double)ctx;
}

/* Applies the "train" flags on top of t; returns 0 or -1 (a->err). */
static int train_overrides(cli_args *a, model_train_config *t) {
    long long v;
    double x;
#define IOPT(flag, field, lo, hi)                                            \
    if (cli_int(a, flag, (long long)t->field, lo, hi, &v)) return -1;        \
    t->field = v;
#define ROPT(flag, field)                                                    \
    if (cli_real(a, flag, t->field, &x)) return -1;                          \
    t->field = x;
    IOPT("--steps", steps, 0, 1LL << 40);
    IOPT("--batch-size", batch_size, 1, 1 << 20);
    IOPT("--context", context, 1, 1 << 24);
    IOPT("--grad-accum", grad_accum, 1, 1 << 20);
    IOPT("--warmup", warmup, 0, 1LL << 40);
    IOPT("--log-every", log_every, 1, 1LL << 40);
    IOPT("--ckpt-every", ckpt_every, 0, 1LL << 40);
    if (cli_int(a, "--seed", (long long)t->seed, 0, 1LL << 53, &v)) return -1;
    t->seed = (uint64_t)v;
    ROPT("--lr", lr);
    ROPT("--min-lr-ratio", min_lr_ratio);
    ROPT("--decay-frac", decay_frac);
    ROPT("--weight-decay", weight_decay);
    ROPT("--clip", clip);
#undef IOPT
#undef ROPT
    const char *s = cli_str(a, "--schedule", NULL);
    if (s) {
        if (!strcmp(s, "cosine")) t->schedule = SCHED_COSINE;
        else if (!strcmp(s, "wsd")) t->schedule = SCHED_WSD;
        else if (!strcmp(s, "constant")) t->schedule = SCHED_CONSTANT;
        else {
            snprintf(a->err, sizeof a->err, "train: --schedule must be cosine, wsd or constant, got '%s'", s);
            return -1;
        }
    }
    return 0;
}

/* Keeps the log lines of steps <= step (a resumed run rewrites what followed). */
static int trim_log(const char *path, int64_t step, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap), line[65536];
    if (!out) {
        fclose(f);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
        const cJSON *ev = j ? cJSON_GetObjectItemCaseSensitive(j, "event") : NULL;
        int keep = j && cJSON_IsNumber(s) && s->valuedouble <= (double)step && !ev;
        cJSON_Delete(j);
        if (!keep) continue;
        size_t k = strlen(line);
        if (n + k + 1 > cap) {
            char *nb = realloc(out, cap = (n + k + 1) * 2);
            if (!nb) {
                free(out);
                fclose(f);
                snprintf(err, err_len, "out of memory");
                return -1;
            }
            out = nb;
        }
        memcpy(out + n, line, k + 1);
        n += k;
    }
    fclose(f);
    int rc = write_file_atomic(path, out, n, err, err_len);
    free(out);
    return rc;
}

/* Validation settings of a run (kept in train_state.json for --resume). */
typedef struct {
    const char *data; /* NULL: no validation */
    long long every, batches;
} val_opts;

static int write_state(const char *dir, const char *data, const val_opts *vo, int64_t step, char *err,
                       size_t err_len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/train_state.json", dir);
    cJSON *j = cJSON_CreateObject();
    char *abs = realpath(data, NULL);
    cJSON_AddStringToObject(j, "data", abs ? abs : data);
    free(abs);
    if (vo->data) {
        abs = realpath(vo->data, NULL);
        cJSON_AddStringToObject(j, "val_data", abs ? abs : vo->data);
        free(abs);
        cJSON_AddNumberToObject(j, "val_every", (double)vo->every);
        cJSON_AddNumberToObject(j, "val_batches", (double)vo->batches);
    }
    cJSON_AddNumberToObject(j, "step", (double)step);
    int rc = report_write(path, j, err, err_len);
    cJSON_Delete(j);
    return rc;
}

/* One validation pass: the loss of m on batches 0..M-1 of val. The time and
 * the model timers it takes are added to *val_s and *vt (the run's throughput
 * leaves them out). */
typedef struct {
    double loss, ppl;
    int64_t tokens, step; /* step: the optimizer step validated (-1: none yet) */
} val_result;

static model_status validate(model *m, model_data *val, const val_opts *vo, const model_train_config *tc,
                             int64_t step, val_result *r, double *val_s, model_timers *vt, char *err,
                             size_t err_len) {
    model_timers a, b;
    model_get_timers(m, &a);
    double t0 = omp_get_wtime();
    model_status st = model_evaluate(m, val, 0, (int)vo->batches, tc->batch_size, tc->context, &r->loss,
                                     &r->tokens, err, err_len);
    *val_s += omp_get_wtime() - t0;
    model_get_timers(m, &b);
    vt->gemm_s += b.gemm_s - a.gemm_s;
    vt->gemm_flops += b.gemm_flops - a.gemm_flops;
    vt->attn_fwd_s += b.attn_fwd_s - a.attn_fwd_s;
    vt->attn_bwd_s += b.attn_bwd_s - a.attn_bwd_s;
    vt->total_s += b.total_s - a.total_s;
    r->ppl = exp(r->loss);
    r->step = step;
    return st;
}

static void add_val(cJSON *r, const val_result *v) {
    cJSON_AddNumberToObject(r, "val_loss", v->loss);
    cJSON_AddNumberToObject(r, "val_ppl", v->ppl);
    cJSON_AddNumberToObject(r, "val_tokens", (double)v->tokens);
}

#define TDIE(code, ...)                                  \
    do {                                                 \
        fprintf(stderr, "dmabench train: ");             \
        fprintf(stderr, __VA_ARGS__);                    \
        fprintf(stderr, "\n");                           \
        rc = code;                                       \
        goto done;                                       \
    } while (0)

int cmd_train(int argc, char **argv) {
    cli_args a;
    int rc = 0;
    char err[1024], path[4200];
    model *m = NULL;
    model_data *data = NULL, *val = NULL;
    model_trainer *t = NULL;
    cJSON *state = NULL;
    val_opts vo = {NULL, 0, 8};
    if (cli_parse(&a, "train", argc, argv, 2, "--help --quiet --force") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        train_usage();
        return 0;
    }
    const char *cfg_path = cli_str(&a, "--config", NULL), *data_path = cli_str(&a, "--data", NULL);
    const char *out = cli_str(&a, "--out", NULL), *resume = cli_str(&a, "--resume", NULL);
    int quiet = cli_flag(&a, "--quiet"), force = cli_flag(&a, "--force");
    const char *backend = cli_str(&a, "--backend", "cpu");
    if (strcmp(backend, "cpu") && strcmp(backend, "cuda")) TDIE(2, "--backend must be cpu or cuda (got '%s')", backend);
    int on_gpu = !strcmp(backend, "cuda");
    long long threads;
    double max_s;
    if (cli_int(&a, "--threads", 0, 0, 4096, &threads) || cli_real(&a, "--max-seconds", 0, &max_s))
        TDIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    vo.data = cli_str(&a, "--val-data", NULL);
    int val_every_given = cli_str(&a, "--val-every", NULL) != NULL;
    int val_batches_given = cli_str(&a, "--val-batches", NULL) != NULL;
    if (resume && cfg_path) TDIE(2, "--resume takes the config from the checkpoint: drop --config");
    if (!resume && !cfg_path) TDIE(2, "--config is required (or --resume DIR)");
    if (!resume && !out) TDIE(2, "--out is required");
    if (!out) out = resume;
    model_set_threads((int)threads);

    model_config cfg;
    int64_t ckpt_step = 0;
    if (resume) {
        model_status st = model_load(resume, &m, &ckpt_step, err, sizeof err);
        if (st != MODEL_OK) TDIE(st == MODEL_ERR_IO ? 2 : 1, "%s", err);
        cfg = *model_get_config(m);
        snprintf(path, sizeof path, "%s/train_state.json", resume);
        state = exists(path) ? report_read(path, err, sizeof err) : NULL;
        if (!data_path) {
            const cJSON *d = state ? cJSON_GetObjectItemCaseSensitive(state, "data") : NULL;
            if (!cJSON_IsString(d)) TDIE(2, "--data is required: '%s' does not name the run's data", path);
            data_path = d->valuestring;
        }
        /* the run's validation settings, unless given again */
        const cJSON *vd = state ? cJSON_GetObjectItemCaseSensitive(state, "val_data") : NULL;
        const cJSON *ve = state ? cJSON_GetObjectItemCaseSensitive(state, "val_every") : NULL;
        const cJSON *vb = state ? cJSON_GetObjectItemCaseSensitive(state, "val_batches") : NULL;
        if (!vo.data && cJSON_IsString(vd)) {
            vo.data = vd->valuestring;
            if (cJSON_IsNumber(ve) && ve->valuedouble >= 0) vo.every = (long long)ve->valuedouble;
            if (cJSON_IsNumber(vb) && vb->valuedouble >= 1) vo.batches = (long long)vb->valuedouble;
        }
    } else {
        if (model_config_load(cfg_path, &cfg, err, sizeof err)) TDIE(2, "%s", err);
        if (!data_path) TDIE(2, "--data is required");
    }
    model_train_config before = cfg.train;
    if (train_overrides(&a, &cfg.train) || cli_int(&a, "--val-every", vo.every, 0, 1LL << 40, &vo.every) ||
        cli_int(&a, "--val-batches", vo.batches, 1, 1 << 20, &vo.batches) || cli_finish(&a))
        TDIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    if (!vo.data && (val_every_given || val_batches_given))
        TDIE(2, "--val-every and --val-batches need --val-data (the held-out data to validate on)");
    if (model_config_check(&cfg, err, sizeof err)) TDIE(2, "%s", err);
    if (resume && (before.batch_size != cfg.train.batch_size || before.context != cfg.train.context ||
                   before.grad_accum != cfg.train.grad_accum || before.seed != cfg.train.seed))
        TDIE(2, "--batch-size, --context, --grad-accum and --seed cannot change on --resume (the data order depends on them)");
    if (cfg.train.context > cfg.max_position_embeddings)
        TDIE(2, "train.context %d exceeds max_position_embeddings %d", cfg.train.context, cfg.max_position_embeddings);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (!resume && exists(path) && !force)
        TDIE(2, "'%s' already holds a checkpoint: use --resume %s, another --out, or --force", out, out);
    if (resume && strcmp(out, resume)) TDIE(2, "--resume continues in its own folder: drop --out");

    if (model_data_open(data_path, cfg.train.seed, &data, err, sizeof err)) TDIE(2, "%s", err);
    if (vo.data) {
        char *ra = realpath(data_path, NULL), *rb = realpath(vo.data, NULL);
        int same = ra && rb && !strcmp(ra, rb);
        free(ra);
        free(rb);
        if (same) TDIE(2, "--val-data '%s' is the training data: validate on a held-out file", vo.data);
        if (model_data_open(vo.data, cfg.train.seed, &val, err, sizeof err)) TDIE(2, "--val-data: %s", err);
        if (val->vocab_needed > cfg.vocab_size)
            TDIE(2, "--val-data '%s' holds token ids up to %d but vocab_size is %d", vo.data, val->vocab_needed - 1,
                 cfg.vocab_size);
        if (val->max_context > 0 && cfg.train.context > val->max_context)
            TDIE(2, "--val-data '%s' allows a context of %d, shorter than train.context %d", vo.data,
                 val->max_context, cfg.train.context);
    }
    if (!m) {
        model_status st = model_create(&cfg, &m, err, sizeof err);
        if (st != MODEL_OK) TDIE(2, "%s", err);
    } else {
        model_set_train_config(m, &cfg.train);
    }
    model_status st = model_trainer_create(m, data, &t, err, sizeof err);
    if (st != MODEL_OK) TDIE(2, "%s", err);
    if (on_gpu) { /* before anything is written: a model that does not fit fails here */
        st = model_trainer_use_gpu(t, err, sizeof err);
        if (st != MODEL_OK) TDIE(2, "%s", err);
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) TDIE(1, "cannot create '%s': %s", out, strerror(errno));
    char logp[4200];
    snprintf(logp, sizeof logp, "%s/train_log.jsonl", out);
    if (resume) {
        st = model_trainer_resume(t, resume, err, sizeof err);
        if (st != MODEL_OK) TDIE(2, "%s", err);
        if (trim_log(logp, ckpt_step, err, sizeof err)) TDIE(1, "%s", err);
    } else {
        FILE *lf = fopen(logp, "w");
        if (!lf) TDIE(1, "cannot write '%s': %s", logp, strerror(errno));
        fclose(lf);
    }
    /* the starting checkpoint, so a run stopped before its first one can resume */
    if (!resume) {
        st = model_trainer_save(t, out, err, sizeof err);
        if (st != MODEL_OK || write_state(out, data_path, &vo, 0, err, sizeof err)) TDIE(1, "%s", err);
    }

    const model_train_config *tc = &cfg.train;
    if (!quiet)
        fprintf(stderr,
                "train: %s, %d layer%s, hidden %d, %d/%d heads x %d, %zu parameters; %lld step%s of %d x %d tokens"
                " (x%d accum), lr %g %s; data %s (%lld tokens); %d thread%s\n",
                attn_variant_name(cfg.variant), cfg.num_hidden_layers, PL(cfg.num_hidden_layers), cfg.hidden_size,
                cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, model_num_params(m),
                (long long)tc->steps, PL(tc->steps), tc->batch_size, tc->context, tc->grad_accum, tc->lr,
                model_schedule_name(tc->schedule), data_path, (long long)data->n_tokens, omp_get_max_threads(),
                PL(omp_get_max_threads()));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!quiet && val) {
        char when[64] = "at the end";
        if (vo.every > 0) snprintf(when, sizeof when, "every %lld step%s and at the end", vo.every, PL(vo.every));
        fprintf(stderr, "validation: %lld batch%s of %d x %d from %s (%lld tokens), %s\n", vo.batches, vo.batches == 1 ? "" : "es",
                tc->batch_size, tc->context, vo.data, (long long)val->n_tokens, when);
    }
    double t0 = omp_get_wtime(), run_s = 0, val_s = 0;
    int64_t done_steps = 0;
    model_step_info info = {0};
    val_result vr = {0, 0, 0, -1};
    model_timers vt = {0};
    model_reset_timers(m);
    while (model_trainer_step_count(t) < tc->steps && !stop_requested) {
        if (max_s > 0 && omp_get_wtime() - t0 >= max_s) break;
        st = model_trainer_step(t, &info, err, sizeof err);
        if (st != MODEL_OK) TDIE(1, "step %lld: %s", (long long)model_trainer_step_count(t) + 1, err);
        done_steps++;
        int last = info.step == tc->steps;
        int do_val = val && vo.every > 0 && info.step % vo.every == 0;
        if (do_val) {
            st = model_trainer_sync_host(t, err, sizeof err);
            if (st == MODEL_OK) st = validate(m, val, &vo, tc, info.step, &vr, &val_s, &vt, err, sizeof err);
            if (st != MODEL_OK) TDIE(1, "validation at step %lld: %s", (long long)info.step, err);
        }
        run_s = omp_get_wtime() - t0;
        if (info.step % tc->log_every == 0 || last || do_val) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "step", (double)info.step);
            cJSON_AddNumberToObject(r, "loss", info.loss);
            cJSON_AddNumberToObject(r, "lr", info.lr);
            cJSON_AddNumberToObject(r, "grad_norm", info.grad_norm);
            cJSON_AddNumberToObject(r, "tokens", (double)info.tokens);
            cJSON_AddNumberToObject(r, "label_tokens", (double)info.label_tokens);
            if (do_val) add_val(r, &vr);
            cJSON_AddNumberToObject(r, "tokens_per_s", info.tokens_per_s);
            cJSON_AddNumberToObject(r, "step_s", info.step_s);
            if (on_gpu) { /* the activations are allocated once, up front; the peak is the allocator's */
                model_gpu_mem sm;
                model_gpu_memory(model_trainer_gpu(t), &sm);
                cJSON_AddNumberToObject(r, "gpu_activation_bytes", (double)sm.activations);
                cJSON_AddNumberToObject(r, "gpu_peak_bytes", (double)sm.peak);
            }
            int lrc = report_append_jsonl(logp, r, err, sizeof err);
            cJSON_Delete(r);
            if (lrc) TDIE(1, "%s", err);
            if (!quiet) {
                double avg = run_s / (double)done_steps, train_s = run_s - val_s;
                char eta[32], vtxt[64] = "";
                fmt_dur(avg * (double)(tc->steps - info.step), eta, sizeof eta);
                if (do_val) snprintf(vtxt, sizeof vtxt, "  val %.4f ppl %.3f", vr.loss, vr.ppl);
                char gtxt[64] = "";
                if (on_gpu) {
                    model_gpu_mem sm;
                    model_gpu_memory(model_trainer_gpu(t), &sm);
                    snprintf(gtxt, sizeof gtxt, "  gpu %.2f GiB (act %.2f)", sm.peak / 1073741824.0,
                             sm.activations / 1073741824.0);
                }
                fprintf(stderr, "step %6lld/%lld  loss %.4f  lr %.3e  gnorm %.3f  %.0f tok/s  eta %s%s%s\n",
                        (long long)info.step, (long long)tc->steps, info.loss, info.lr, info.grad_norm,
                        train_s > 0 ? (double)done_steps * tc->batch_size * tc->context * tc->grad_accum / train_s : 0,
                        eta, gtxt, vtxt);
            }
        }
        if (tc->ckpt_every > 0 && info.step % tc->ckpt_every == 0 && !last) {
            st = model_trainer_save(t, out, err, sizeof err);
            if (st != MODEL_OK || write_state(out, data_path, &vo, info.step, err, sizeof err)) TDIE(1, "%s", err);
        }
    }
    st = model_trainer_save(t, out, err, sizeof err);
    if (st != MODEL_OK || write_state(out, data_path, &vo, model_trainer_step_count(t), err, sizeof err)) TDIE(1, "%s", err);
    /* the final weights are validated (once: a pass at the last step counts) */
    if (val && vr.step != model_trainer_step_count(t)) {
        st = model_trainer_sync_host(t, err, sizeof err);
        if (st == MODEL_OK) st = validate(m, val, &vo, tc, model_trainer_step_count(t), &vr, &val_s, &vt, err, sizeof err);
        if (st != MODEL_OK) TDIE(1, "validation at step %lld: %s", (long long)model_trainer_step_count(t), err);
    }
    run_s = omp_get_wtime() - t0;
    double train_s = run_s - val_s;
    model_timers tm;
    model_get_timers(m, &tm);
    tm.gemm_s -= vt.gemm_s, tm.gemm_flops -= vt.gemm_flops, tm.attn_fwd_s -= vt.attn_fwd_s;
    tm.attn_bwd_s -= vt.attn_bwd_s, tm.total_s -= vt.total_s;
    double tokens = (double)done_steps * tc->batch_size * tc->context * tc->grad_accum;
    double gemm_gf = tm.gemm_s > 0 ? tm.gemm_flops / tm.gemm_s / 1e9 : 0;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "event", "end");
    cJSON_AddNumberToObject(r, "step", (double)model_trainer_step_count(t));
    cJSON_AddNumberToObject(r, "steps_run", (double)done_steps);
    cJSON_AddNumberToObject(r, "seconds", run_s);
    cJSON_AddNumberToObject(r, "tokens_per_s", train_s > 0 ? tokens / train_s : 0);
    cJSON_AddNumberToObject(r, "gemm_s", tm.gemm_s);
    cJSON_AddNumberToObject(r, "gemm_gflops_per_s", gemm_gf);
    cJSON_AddNumberToObject(r, "attn_fwd_s", tm.attn_fwd_s);
    cJSON_AddNumberToObject(r, "attn_bwd_s", tm.attn_bwd_s);
    cJSON_AddNumberToObject(r, "model_s", tm.total_s);
    cJSON_AddNumberToObject(r, "threads", omp_get_max_threads());
    const double fpt = model_flops_per_token(m, tc->context);
    const double model_tf = train_s > 0 ? fpt * tokens / train_s / 1e12 : 0;
    cJSON_AddNumberToObject(r, "model_flops_per_token", fpt);
    cJSON_AddNumberToObject(r, "model_tflops_per_s", model_tf);
    cJSON_AddStringToObject(r, "backend", on_gpu ? "cuda" : "cpu");
    model_gpu_mem gm;
    model_gpu_memory(model_trainer_gpu(t), &gm);
    if (on_gpu) {
        cJSON *g = cJSON_AddObjectToObject(r, "gpu_memory_bytes");
        cJSON_AddNumberToObject(g, "params", (double)gm.params);
        cJSON_AddNumberToObject(g, "grads", (double)gm.grads);
        cJSON_AddNumberToObject(g, "optimizer", (double)gm.optimizer);
        cJSON_AddNumberToObject(g, "activations", (double)gm.activations);
        cJSON_AddNumberToObject(g, "peak", (double)gm.peak);
    }
    if (val) {
        add_val(r, &vr);
        cJSON_AddNumberToObject(r, "val_batches", (double)vo.batches);
        cJSON_AddNumberToObject(r, "val_s", val_s);
    }
    report_append_jsonl(logp, r, err, sizeof err);
    cJSON_Delete(r);
    if (!quiet) {
        const char *peak = getenv(FMA_PEAK_ENV);
        char frac[64] = "", vtxt[128] = "";
        if (peak && atof(peak) > 0) snprintf(frac, sizeof frac, " (%.0f%% of %s GFLOP/s)", 100 * gemm_gf / atof(peak), peak);
        if (val)
            snprintf(vtxt, sizeof vtxt, "; val loss %.4f ppl %.3f (%lld tokens)", vr.loss, vr.ppl,
                     (long long)vr.tokens);
        if (on_gpu) /* the GPU's work is not split into timers: model FLOPs and memory instead */
            fprintf(stderr,
                    "train: %s at step %lld/%lld: %lld step%s in %.1fs, %.0f tokens/s, %.1f model TFLOP/s; GPU memory "
                    "%.2f GiB at peak (activations %.2f GiB)%s; checkpoint in %s\n",
                    stop_requested ? "stopped" : "done", (long long)model_trainer_step_count(t), (long long)tc->steps,
                    (long long)done_steps, PL(done_steps), run_s, train_s > 0 ? tokens / train_s : 0, model_tf,
                    gm.peak / 1073741824.0, gm.activations / 1073741824.0, vtxt, out);
        else
            fprintf(stderr,
                    "train: %s at step %lld/%lld: %lld step%s in %.1fs, %.0f tokens/s; GEMMs %.1fs at %.1f GFLOP/s%s, "
                    "attention %.1fs fwd + %.1fs bwd%s; checkpoint in %s\n",
                    stop_requested ? "stopped" : "done", (long long)model_trainer_step_count(t), (long long)tc->steps,
                    (long long)done_steps, PL(done_steps), run_s, train_s > 0 ? tokens / train_s : 0, tm.gemm_s, gemm_gf, frac,
                    tm.attn_fwd_s, tm.attn_bwd_s, vtxt, out);
    }
done:
    cJSON_Delete(state);
    model_trainer_free(t);
    model_data_free(data);
    model_data_free(val);
    model_free(m);
    return rc;
}

/* ---- generate ---- */

static void generate_usage(void) {
    printf("usage: dmabench generate --model DIR --prompt TEXT [options]\n"
           "\n"
           "Continues TEXT (bytes are tokens) with the model in DIR, using the KV cache, and\n"
           "prints the continuation on stdout. Token ids >= 256 print as <N>; the eos token\n"
           "(eos_token_id) ends the text.\n"
           "\n"
           "options:\n"
           "  --max-new N        tokens to generate (default 64)\n"
           "  --temperature T    0 = greedy (default), else sample from softmax(logits / T)\n"
           "  --top-k K          sample among the K most likely tokens (default 0: all)\n"
           "  --seed S           sampling seed (default 1)\n"
           "  --ids LIST         the prompt as token ids (1,2,3) instead of --prompt\n"
           "  --print-ids        print the generated ids instead of text\n"
           "  --echo             print the prompt before the continuation\n"
           "  --backend B        cpu (default) or cuda: the model and its KV cache on the GPU\n"
           "                     (bf16 compute; each variant's decode kernels)\n"
           "  --threads N        OpenMP and OpenBLAS threads\n");
}

#define GDIE(code, ...)                                  \
    do {                                                 \
        fprintf(stderr, "dmabench generate: ");          \
        fprintf(stderr, __VA_ARGS__);                    \
        fprintf(stderr, "\n");                           \
        rc = code;                                       \
        goto done;                                       \
    } while (0)

int cmd_generate(int argc, char **argv) {
    cli_args a;
    int rc = 0;
    char err[1024];
    model *m = NULL;
    int32_t *prompt = NULL, *outtok = NULL;
    if (cli_parse(&a, "generate", argc, argv, 2, "--help --print-ids --echo") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        generate_usage();
        return 0;
    }
    const char *dir = cli_str(&a, "--model", NULL), *text = cli_str(&a, "--prompt", NULL);
    const char *ids = cli_str(&a, "--ids", NULL);
    const char *backend = cli_str(&a, "--backend", "cpu");
    int print_ids = cli_flag(&a, "--print-ids"), echo = cli_flag(&a, "--echo");
    long long max_new, top_k, seed, threads;
    double temp;
    if (cli_int(&a, "--max-new", 64, 0, 1 << 24, &max_new) || cli_int(&a, "--top-k", 0, 0, 1 << 24, &top_k) ||
        cli_int(&a, "--seed", 1, 0, 1LL << 53, &seed) || cli_int(&a, "--threads", 0, 0, 4096, &threads) ||
        cli_real(&a, "--temperature", 0, &temp) || cli_finish(&a))
        GDIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    if (!dir) GDIE(2, "--model is required");
    if (!text == !ids) GDIE(2, "give exactly one of --prompt and --ids");
    if (!(temp >= 0) || !isfinite(temp)) GDIE(2, "--temperature must be >= 0");
    if (strcmp(backend, "cpu") && strcmp(backend, "cuda")) GDIE(2, "--backend must be cpu or cuda (got '%s')", backend);
    model_set_threads((int)threads);
    model_status st = model_load(dir, &m, NULL, err, sizeof err);
    if (st != MODEL_OK) GDIE(2, "%s", err);
    const model_config *c = model_get_config(m);
    int n = 0;
    if (text) {
        size_t len = strlen(text);
        if (len == 0) GDIE(2, "--prompt is empty");
        prompt = malloc(len * sizeof(int32_t));
        if (!prompt) GDIE(1, "out of memory");
        for (size_t i = 0; i < len; i++) {
            int b = (unsigned char)text[i];
            if (b >= c->vocab_size)
                GDIE(2, "prompt byte %d is outside the model's vocabulary (vocab_size %d)", b, c->vocab_size);
            prompt[n++] = b;
        }
    } else {
        long long v[4096];
        int k = cli_int_list(ids, v, 4096, err, sizeof err);
        if (k <= 0) GDIE(2, "--ids: %s", k < 0 ? err : "empty");
        prompt = malloc((size_t)k * sizeof(int32_t));
        if (!prompt) GDIE(1, "out of memory");
        for (int i = 0; i < k; i++) {
            if (v[i] < 0 || v[i] >= c->vocab_size) GDIE(2, "--ids: %lld is outside the vocabulary (0..%d)", v[i], c->vocab_size - 1);
            prompt[n++] = (int32_t)v[i];
        }
    }
    outtok = malloc(((size_t)max_new + 1) * sizeof(int32_t));
    if (!outtok) GDIE(1, "out of memory");
    model_gen_opts o = {.max_new = (int)max_new, .temperature = temp, .top_k = (int)top_k, .seed = (uint64_t)seed,
                        .stop_token = c->eos_token_id};
    int n_out = 0;
    if (!strcmp(backend, "cuda")) {
        model_gpu *g = NULL;
        st = model_gpu_create(m, 1, n + (int)max_new, &g, err, sizeof err);
        if (st != MODEL_OK) GDIE(st == MODEL_ERR_CONFIG || st == MODEL_ERR_ARG ? 2 : 1, "%s", err);
        st = model_gpu_generate(g, prompt, n, &o, outtok, &n_out, err, sizeof err);
        model_gpu_free(g);
    } else {
        st = model_generate(m, prompt, n, &o, outtok, &n_out, NULL, err, sizeof err);
    }
    if (st != MODEL_OK) GDIE(1, "%s", err);
    if (echo) {
        if (text) fputs(text, stdout);
        else
            for (int i = 0; i < n; i++) printf("%d%s", prompt[i], print_ids ? "," : " ");
    }
    for (int i = 0; i < n_out; i++) {
        if (print_ids) printf("%d%s", outtok[i], i + 1 < n_out ? "," : "");
        else if (outtok[i] == c->eos_token_id) break;
        else if (outtok[i] < 256) putchar(outtok[i]);
        else printf("<%d>", outtok[i]);
    }
    putchar('\n');
done:
    free(prompt);
    free(outtok);
    model_free(m);
    return rc;
}

/* ---- forward ---- */

static void forward_usage(void) {
    printf("usage: dmabench forward --model DIR --in IN.safetensors --out OUT.safetensors\n"
           "\n"
           "Writes the logits (F32, (B, T, vocab), tensor \"logits\") of the model in DIR for\n"
           "the token ids in tensor \"input_ids\" (I32 or I64, (B, T)), so another\n"
           "implementation (HF transformers: scripts/check_hf_doge.py) can be checked\n"
           "against dmabench. With a \"labels\" tensor (B, T) (-100 = ignored) it also\n"
           "writes the per-token cross-entropy \"losses\" (F32, (B, T)) and prints their mean\n"
           "over the counted positions (NLL per token), its perplexity and the count:\n"
           "  loss L  ppl P  tokens N\n"
           "\n"
           "options:\n"
           "  --threads N        OpenMP and OpenBLAS threads\n");
}

#define FDIE(code, ...)                                  \
    do {                                                 \
        fprintf(stderr, "dmabench forward: ");           \
        fprintf(stderr, __VA_ARGS__);                    \
        fprintf(stderr, "\n");                           \
        rc = code;                                       \
        goto done;                                       \
    } while (0)

int cmd_forward(int argc, char **argv) {
    cli_args a;
    int rc = 0;
    char err[1024];
    model *m = NULL;
    st_file in, outf;
    st_file_init(&in);
    st_file_init(&outf);
    int64_t *ids64 = NULL, *lab64 = NULL;
    int32_t *ids = NULL, *labels = NULL;
    float *logits = NULL, *losses = NULL;
    double mean = 0;
    int64_t count = 0;
    if (cli_parse(&a, "forward", argc, argv, 2, "--help") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        forward_usage();
        return 0;
    }
    const char *dir = cli_str(&a, "--model", NULL), *inp = cli_str(&a, "--in", NULL), *outp = cli_str(&a, "--out", NULL);
    long long threads;
    if (cli_int(&a, "--threads", 0, 0, 4096, &threads) || cli_finish(&a))
        FDIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    if (!dir || !inp || !outp) FDIE(2, "--model, --in and --out are required");
    model_set_threads((int)threads);
    model_status st = model_load(dir, &m, NULL, err, sizeof err);
    if (st != MODEL_OK) FDIE(2, "%s", err);
    if (st_read(inp, &in, err, sizeof err) != ST_OK) FDIE(2, "%s", err);
    const st_tensor *ti = st_file_find(&in, "input_ids");
    if (!ti) FDIE(2, "'%s': no tensor 'input_ids' (B, T) of I32 or I64", inp);
    if (ti->dtype != ST_I32 && ti->dtype != ST_I64)
        FDIE(2, "'%s': 'input_ids' is %s; expected I32 or I64", inp, st_dtype_name(ti->dtype));
    if (ti->ndim != 2 || ti->shape[0] < 1 || ti->shape[1] < 1 || ti->shape[0] * ti->shape[1] > (1LL << 28))
        FDIE(2, "'%s': 'input_ids' must be 2-d (B, T) with B, T >= 1", inp);
    int B = (int)ti->shape[0], T = (int)ti->shape[1];
    const model_config *c = model_get_config(m);
    if (st_tensor_to_i64(ti, &ids64, err, sizeof err) != ST_OK) FDIE(2, "%s", err);
    size_t M = (size_t)B * T;
    ids = malloc(M * sizeof(int32_t));
    logits = malloc(M * c->vocab_size * sizeof(float));
    if (!ids || !logits) FDIE(1, "out of memory for %zu logits", M * c->vocab_size);
    for (size_t i = 0; i < M; i++) {
        if (ids64[i] < 0 || ids64[i] >= c->vocab_size)
            FDIE(2, "'%s': input_ids[%zu, %zu] = %lld is outside the vocabulary (0..%d)", inp, i / T, i % T,
                 (long long)ids64[i], c->vocab_size - 1);
        ids[i] = (int32_t)ids64[i];
    }
    const st_tensor *tl = st_file_find(&in, "labels");
    if (tl) {
        int64_t shp[2] = {B, T};
        if (st_tensor_check_shape(tl, 2, shp, err, sizeof err) != ST_OK || st_tensor_to_i64(tl, &lab64, err, sizeof err))
            FDIE(2, "'%s': %s", inp, err);
        labels = malloc(M * sizeof(int32_t));
        losses = malloc(M * sizeof(float));
        if (!labels || !losses) FDIE(1, "out of memory");
        for (size_t i = 0; i < M; i++) {
            if (lab64[i] != MODEL_IGNORE && (lab64[i] < 0 || lab64[i] >= c->vocab_size))
                FDIE(2, "'%s': labels[%zu, %zu] = %lld is neither a token id nor -100", inp, i / T, i % T,
                     (long long)lab64[i]);
            labels[i] = (int32_t)lab64[i];
        }
        st = model_token_losses(m, ids, labels, B, T, losses, &mean, &count, logits, err, sizeof err);
    } else {
        st = model_logits(m, ids, B, T, logits, err, sizeof err);
    }
    if (st != MODEL_OK) FDIE(1, "%s", err);
    int64_t shp3[3] = {B, T, c->vocab_size}, shp2[2] = {B, T};
    if (st_file_add(&outf, "logits", ST_F32, 3, shp3, logits, ST_BORROW, err, sizeof err) != ST_OK ||
        (losses && st_file_add(&outf, "losses", ST_F32, 2, shp2, losses, ST_BORROW, err, sizeof err) != ST_OK) ||
        st_write(outp, &outf, err, sizeof err) != ST_OK)
        FDIE(1, "%s", err);
    if (labels) printf("loss %.9g  ppl %.9g  tokens %lld\n", mean, exp(mean), (long long)count);
done:
    st_file_free(&in);
    st_file_free(&outf);
    free(ids64);
    free(lab64);
    free(ids);
    free(labels);
    free(logits);
    free(losses);
    model_free(m);
    return rc;
}
