/*
 * run_suite.c: suite files for `dmabench run`: parse, validate, expand into
 * cells (run_suite.h, docs/run.md). Nothing here prints.
 */
#include "run_suite.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_config.h"
#include "report.h"

static const char *const task_names[SUITE_NTASKS] = {"mqar", "niah", "ppl"};
const char *suite_task_name(suite_task t) { return t < SUITE_NTASKS ? task_names[t] : "?"; }

typedef struct {
    const char *what;
    char *err;
    size_t err_len;
    int failed;
} pctx;

__attribute__((format(printf, 2, 3))) static int fail(pctx *p, const char *fmt, ...) {
    if (p->failed) return -1;
    p->failed = 1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_len, "suite '%s': %s", p->what, msg);
    return -1;
}

static int check_keys(pctx *p, const cJSON *o, const char *where, const char *const *allowed) {
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            if (!strcmp(c->string, allowed[i])) ok = 1;
        if (!ok) {
            char list[600] = "";
            for (int i = 0; allowed[i]; i++) {
                strncat(list, allowed[i], sizeof list - strlen(list) - 3);
                if (allowed[i + 1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            return fail(p, "unknown key '%s%s' (known: %s)", where, c->string, list);
        }
    }
    return 0;
}

/* the task's own key, else the suite-level block's */
static const cJSON *lookup(const cJSON *task, const cJSON *block, const char *key) {
    const cJSON *v = task ? cJSON_GetObjectItemCaseSensitive(task, key) : NULL;
    if (!v && block) v = cJSON_GetObjectItemCaseSensitive(block, key);
    return v;
}

static int get_int(pctx *p, const cJSON *v, const char *name, long long lo, long long hi, long long *out) {
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return fail(p, "%s must be an integer in [%lld, %lld]", name, lo, hi);
    *out = (long long)v->valuedouble;
    return 0;
}

static int get_real(pctx *p, const cJSON *v, const char *name, double lo, double hi, double *out) {
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo) || !(v->valuedouble <= hi))
        return fail(p, "%s must be a number in [%g, %g]", name, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* an integer or a list of integers */
static int get_ilist(pctx *p, const cJSON *v, const char *name, long long lo, long long hi, suite_ilist *out) {
    if (!v) return 0;
    out->n = 0;
    if (cJSON_IsNumber(v)) {
        long long x = 0;
        if (get_int(p, v, name, lo, hi, &x)) return -1;
        out->v[out->n++] = x;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > SUITE_MAX_LIST)
        return fail(p, "%s must be an integer or a list of 1 to %d integers", name, SUITE_MAX_LIST);
    for (const cJSON *c = v->child; c; c = c->next) {
        long long x = 0;
        if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) || c->valuedouble < (double)lo ||
            c->valuedouble > (double)hi)
            return fail(p, "%s must hold integers in [%lld, %lld]", name, lo, hi);
        x = (long long)c->valuedouble;
        for (int i = 0; i < out->n; i++)
            if (out->v[i] == x) return fail(p, "%s lists %lld twice", name, x);
        out->v[out->n++] = x;
    }
    return 0;
}

static int get_dlist(pctx *p, const cJSON *v, const char *name, double lo, double hi, suite_dlist *out) {
    if (!v) return 0;
    out->n = 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > SUITE_MAX_LIST)
        return fail(p, "%s must be a list of 1 to %d numbers", name, SUITE_MAX_LIST);
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || !(c->valuedouble >= lo) || !(c->valuedouble <= hi))
            return fail(p, "%s must hold numbers in [%g, %g]", name, lo, hi);
        out->v[out->n++] = c->valuedouble;
    }
    return 0;
}

static int get_str(pctx *p, const cJSON *v, const char *name, char *out, size_t n) {
    if (!v) return 0;
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= n)
        return fail(p, "%s must be a non-empty string (at most %zu characters)", name, n - 1);
    snprintf(out, n, "%s", v->valuestring);
    return 0;
}

#define MODEL_KEYS "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn", "window", "nsa_l", "nsa_d", "nsa_ls", "nsa_n", \
                   "nsa_cmp", "nsa_gates"
#define TRAIN_KEYS "steps", "batch_size", "lr", "warmup", "weight_decay"

/* The name a value is reported under: where it was written, the task's own key
 * or the suite-level block's ("tasks.mqar.window" or "model.window"). */
static const char *key_name(char *buf, size_t n, const cJSON *task, const char *tn, const char *block,
                            const char *key) {
    if (task && cJSON_GetObjectItemCaseSensitive(task, key)) snprintf(buf, n, "tasks.%s.%s", tn, key);
    else snprintf(buf, n, "%s.%s", block, key);
    return buf;
}

static int parse_model_train(pctx *p, const cJSON *t, const cJSON *model, const cJSON *train, const char *tn,
                             suite_task_cfg *c) {
    char name[64];
    runner_model *m = &c->base;
    runner_model_default(m);
    long long x;
#define MI(key, field, lo, hi)                                                              \
    x = m->field;                                                                           \
    key_name(name, sizeof name, t, tn, "model", key);                                       \
    if (get_int(p, lookup(t, model, key), name, lo, hi, &x)) return -1;                     \
    m->field = (int)x;
    MI("n_layers", n_layers, 1, 64)
    MI("n_heads", n_heads, 1, 64)
    MI("n_kv_heads", n_kv_heads, 1, 64)
    MI("ffn", ffn, 0, 1 << 16)
    MI("window", window, 1, 1 << 24)
    MI("nsa_l", nsa_l, 0, 4096)
    MI("nsa_d", nsa_d, 0, 4096)
    MI("nsa_ls", nsa_ls, 0, 4096)
    MI("nsa_n", nsa_n, 0, 4096)
#undef MI
    const cJSON *cmp = lookup(t, model, "nsa_cmp");
    if (cmp) {
        char mode[16];
        key_name(name, sizeof name, t, tn, "model", "nsa_cmp");
        if (get_str(p, cmp, name, mode, sizeof mode)) return -1;
        if (strcmp(mode, "linear") && strcmp(mode, "mean"))
            return fail(p, "%s must be \"linear\" or \"mean\", got \"%s\"", name, mode);
        m->nsa_mean = !strcmp(mode, "mean");
    }
    int bad;
    const int gr = model_nsa_gates_parse(lookup(t, model, "nsa_gates"), m->nsa_gates, &bad);
    if (gr < 0) {
        key_name(name, sizeof name, t, tn, "model", "nsa_gates");
        return fail(p, "%s must be null (learned gates) or 3 numbers in 0..1: [g_cmp, g_slc, g_win]", name);
    }
    if (gr == 0) m->nsa_gates_fixed = 1;
    x = m->batch_size;
    key_name(name, sizeof name, t, tn, "train", "batch_size");
    if (get_int(p, lookup(t, train, "batch_size"), name, 1, 1 << 16, &x)) return -1;
    m->batch_size = (int)x;
    x = m->steps;
    key_name(name, sizeof name, t, tn, "train", "steps");
    if (get_int(p, lookup(t, train, "steps"), name, 1, 100000000, &x)) return -1;
    m->steps = x;
    x = m->warmup;
    key_name(name, sizeof name, t, tn, "train", "warmup");
    if (get_int(p, lookup(t, train, "warmup"), name, 0, 100000000, &x)) return -1;
    m->warmup = x;
    key_name(name, sizeof name, t, tn, "train", "lr");
    if (get_real(p, lookup(t, train, "lr"), name, 1e-7, 1, &m->lr)) return -1;
    key_name(name, sizeof name, t, tn, "train", "weight_decay");
    if (get_real(p, lookup(t, train, "weight_decay"), name, 0, 10, &m->weight_decay)) return -1;
    if (m->n_heads % m->n_kv_heads)
        return fail(p, "tasks.%s: n_heads %d is not a multiple of n_kv_heads %d", tn, m->n_heads, m->n_kv_heads);
    c->d_model.n = 1;
    c->d_model.v[0] = 64;
    key_name(name, sizeof name, t, tn, "model", "d_model");
    if (get_ilist(p, lookup(t, model, "d_model"), name, 2, 8192, &c->d_model)) return -1;
    for (int i = 0; i < c->d_model.n; i++) {
        long long d = c->d_model.v[i];
        if (d % m->n_heads || (d / m->n_heads) % 2 || d / m->n_heads > 256)
            return fail(p, "%s %lld must split into %d heads of an even size <= 256", name, d, m->n_heads);
    }
    return 0;
}

static int parse_task(pctx *p, suite_task k, const cJSON *t, const cJSON *model, const cJSON *train, suite_task_cfg *c) {
    const char *tn = task_names[k];
    char where[32], name[80];
    snprintf(where, sizeof where, "tasks.%s.", tn);
    static const char *const mqar_keys[] = {MODEL_KEYS, TRAIN_KEYS, "seq_len", "num_kv_pairs", "vocab_size",
                                            "power_a", "n_test", "lrs", "early_stop", "eval_every",
                                            "n_val", NULL};
    static const char *const niah_keys[] = {MODEL_KEYS, TRAIN_KEYS, "train_context_len", "context_len", "depths",
                                            "samples", "n_keys", "n_values", "haystack", NULL};
    static const char *const ppl_keys[] = {MODEL_KEYS, TRAIN_KEYS, "corpus", "synth", "train_tokens", "test_tokens",
                                           "train_context", "contexts", "modes", "max_eval_tokens", NULL};
    const char *const *keys = k == SUITE_MQAR ? mqar_keys : k == SUITE_NIAH ? niah_keys : ppl_keys;
    if (!cJSON_IsObject(t)) return fail(p, "tasks.%s must be an object", tn);
    if (check_keys(p, t, where, keys)) return -1;
    memset(c, 0, sizeof *c);
    c->present = 1;
    if (parse_model_train(p, t, model, train, tn, c)) return -1;
    long long x;
#define REQ(key)                                                              \
    if (!cJSON_GetObjectItemCaseSensitive(t, key)) return fail(p, "tasks.%s needs '%s'", tn, key); \
    snprintf(name, sizeof name, "tasks.%s.%s", tn, key);
#define OPT(key) snprintf(name, sizeof name, "tasks.%s.%s", tn, key);
    if (k == SUITE_MQAR) {
        mqar_config mc;
        mqar_config_default(&mc);
        REQ("seq_len")
        if (get_ilist(p, cJSON_GetObjectItemCaseSensitive(t, "seq_len"), name, 4, 1 << 20, &c->seq_len)) return -1;
        REQ("num_kv_pairs")
        if (get_ilist(p, cJSON_GetObjectItemCaseSensitive(t, "num_kv_pairs"), name, 1, 1 << 20, &c->num_kv_pairs))
            return -1;
        x = mc.vocab_size;
        OPT("vocab_size")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "vocab_size"), name, 4, 1 << 20, &x)) return -1;
        c->vocab_size = (int)x;
        c->power_a = mc.power_a;
        OPT("power_a")
        if (get_real(p, cJSON_GetObjectItemCaseSensitive(t, "power_a"), name, 1e-6, 100, &c->power_a)) return -1;
        x = 1000;
        OPT("n_test")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "n_test"), name, 1, 1 << 24, &x)) return -1;
        c->n_test = (int)x;
        OPT("lrs")
        if (get_dlist(p, cJSON_GetObjectItemCaseSensitive(t, "lrs"), name, 1e-7, 1, &c->lrs)) return -1;
        if (c->lrs.n > RUNNER_MAX_LRS) return fail(p, "tasks.mqar.lrs holds at most %d learning rates", RUNNER_MAX_LRS);
        for (int i = 0; i < c->lrs.n; i++)
            for (int j = 0; j < i; j++)
                if (c->lrs.v[i] == c->lrs.v[j]) return fail(p, "tasks.mqar.lrs lists %g twice", c->lrs.v[i]);
        OPT("early_stop")
        if (get_real(p, cJSON_GetObjectItemCaseSensitive(t, "early_stop"), name, 0, 1, &c->early_stop)) return -1;
        x = 0;
        OPT("eval_every")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "eval_every"), name, 1, 100000000, &x)) return -1;
        c->eval_every = x;
        x = 256;
        OPT("n_val")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "n_val"), name, 1, 1 << 24, &x)) return -1;
        c->n_val = (int)x;
        if ((cJSON_GetObjectItemCaseSensitive(t, "eval_every") || cJSON_GetObjectItemCaseSensitive(t, "n_val")) &&
            !c->lrs.n && !(c->early_stop > 0))
            return fail(p, "tasks.mqar: eval_every and n_val need lrs or early_stop");
        for (int i = 0; i < c->seq_len.n; i++)
            for (int j = 0; j < c->num_kv_pairs.n; j++) {
                mc.vocab_size = c->vocab_size;
                mc.seq_len = (int)c->seq_len.v[i];
                mc.num_kv_pairs = (int)c->num_kv_pairs.v[j];
                mc.power_a = c->power_a;
                char e[200];
                if (mqar_validate(&mc, e, sizeof e) != TASK_OK)
                    return fail(p, "tasks.mqar: seq_len %d with num_kv_pairs %d: %s", mc.seq_len, mc.num_kv_pairs, e);
            }
    } else if (k == SUITE_NIAH) {
        niah_config nc;
        niah_config_default(&nc);
        REQ("train_context_len")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "train_context_len"), name, 16, 1 << 20, &x)) return -1;
        c->train_context_len = (int)x;
        REQ("context_len")
        if (get_ilist(p, cJSON_GetObjectItemCaseSensitive(t, "context_len"), name, 16, 1 << 22, &c->context_len))
            return -1;
        c->depths.n = NIAH_N_DEPTHS;
        niah_default_depths(c->depths.v);
        OPT("depths")
        if (get_dlist(p, cJSON_GetObjectItemCaseSensitive(t, "depths"), name, 0, 1, &c->depths)) return -1;
        x = 10;
        OPT("samples")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "samples"), name, 1, 100000, &x)) return -1;
        c->samples = (int)x;
        x = 1;
        OPT("n_keys")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "n_keys"), name, 1, NIAH_MAX_KEYS, &x)) return -1;
        c->n_keys = (int)x;
        x = 1;
        OPT("n_values")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "n_values"), name, 1, NIAH_MAX_VALUES, &x)) return -1;
        c->n_values = (int)x;
        snprintf(c->haystack, sizeof c->haystack, "filler");
        OPT("haystack")
        if (get_str(p, cJSON_GetObjectItemCaseSensitive(t, "haystack"), name, c->haystack, sizeof c->haystack))
            return -1;
        if (strcmp(c->haystack, "filler") && strcmp(c->haystack, "licenses"))
            return fail(p, "tasks.niah.haystack must be \"filler\" or \"licenses\", got \"%s\"", c->haystack);
        nc.n_keys = c->n_keys;
        nc.n_values = c->n_values;
        int minlen = niah_min_prompt_len(&nc);
        if (c->train_context_len < minlen + 16)
            return fail(p, "tasks.niah.train_context_len %d is too short (the shortest prompt is %d)",
                        c->train_context_len, minlen);
        for (int i = 0; i < c->context_len.n; i++)
            if (c->context_len.v[i] < minlen)
                return fail(p, "tasks.niah.context_len %lld is below the shortest prompt (%d)", c->context_len.v[i],
                            minlen);
    } else {
        snprintf(c->corpus, sizeof c->corpus, "synthetic");
        OPT("corpus")
        if (get_str(p, cJSON_GetObjectItemCaseSensitive(t, "corpus"), name, c->corpus, sizeof c->corpus)) return -1;
        ppl_synth_config_default(&c->synth);
        const cJSON *sy = cJSON_GetObjectItemCaseSensitive(t, "synth");
        if (sy) {
            static const char *const synth_keys[] = {"key_len", "n_lines", "words_per_line", "branching", NULL};
            if (!cJSON_IsObject(sy)) return fail(p, "tasks.ppl.synth must be an object");
            if (check_keys(p, sy, "tasks.ppl.synth.", synth_keys)) return -1;
            x = c->synth.key_len;
            if (get_int(p, cJSON_GetObjectItemCaseSensitive(sy, "key_len"), "tasks.ppl.synth.key_len", 1, 64, &x))
                return -1;
            c->synth.key_len = (int)x;
            x = c->synth.n_lines;
            if (get_int(p, cJSON_GetObjectItemCaseSensitive(sy, "n_lines"), "tasks.ppl.synth.n_lines", 1, 10, &x))
                return -1;
            c->synth.n_lines = (int)x;
            x = c->synth.words_per_line;
            if (get_int(p, cJSON_GetObjectItemCaseSensitive(sy, "words_per_line"), "tasks.ppl.synth.words_per_line", 1,
                        32, &x))
                return -1;
            c->synth.words_per_line = (int)x;
            x = c->synth.branching;
            if (get_int(p, cJSON_GetObjectItemCaseSensitive(sy, "branching"), "tasks.ppl.synth.branching", 1, 16, &x))
                return -1;
            c->synth.branching = (int)x;
            char e[200];
            if (ppl_synth_validate(&c->synth, e, sizeof e) != TASK_OK) return fail(p, "tasks.ppl.synth: %s", e);
        }
        c->train_tokens = 1 << 20;
        c->test_tokens = 1 << 16;
        OPT("train_tokens")
        long long y = c->train_tokens;
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "train_tokens"), name, 1024, 1LL << 34, &y)) return -1;
        c->train_tokens = y;
        y = c->test_tokens;
        OPT("test_tokens")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "test_tokens"), name, 256, 1LL << 34, &y)) return -1;
        c->test_tokens = y;
        y = 0;
        OPT("max_eval_tokens")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "max_eval_tokens"), name, 0, 1LL << 40, &y)) return -1;
        c->max_eval_tokens = y;
        REQ("train_context")
        if (get_int(p, cJSON_GetObjectItemCaseSensitive(t, "train_context"), name, 4, 1 << 22, &x)) return -1;
        c->train_context = (int)x;
        c->contexts.n = 1;
        c->contexts.v[0] = c->train_context;
        OPT("contexts")
        if (get_ilist(p, cJSON_GetObjectItemCaseSensitive(t, "contexts"), name, 4, 1 << 22, &c->contexts)) return -1;
        c->n_modes = 2;
        c->modes[0] = PPL_DISJOINT;
        c->modes[1] = PPL_CHUNK;
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(t, "modes");
        if (mo) {
            if (!cJSON_IsArray(mo) || cJSON_GetArraySize(mo) < 1 || cJSON_GetArraySize(mo) > 2)
                return fail(p, "tasks.ppl.modes must be a list of \"disjoint\" and/or \"chunk\"");
            c->n_modes = 0;
            for (const cJSON *e = mo->child; e; e = e->next) {
                if (!cJSON_IsString(e) || (strcmp(e->valuestring, "disjoint") && strcmp(e->valuestring, "chunk")))
                    return fail(p, "tasks.ppl.modes must be a list of \"disjoint\" and/or \"chunk\"");
                ppl_mode md = strcmp(e->valuestring, "chunk") ? PPL_DISJOINT : PPL_CHUNK;
                if (c->n_modes == 1 && c->modes[0] == md) return fail(p, "tasks.ppl.modes lists a mode twice");
                c->modes[c->n_modes++] = md;
            }
        }
    }
#undef REQ
#undef OPT
    return 0;
}

/* kernel profile keys: `dmabench kernels` options (docs/kernels.md) */
static const char *const kernel_keys[] = {"variants", "backend", "mode", "dtype", "n", "b", "hq", "hkv", "d",
                                          "causal", "w", "dma_mode", "dma_z", "nsa_l", "nsa_d", "nsa_ls", "nsa_n",
                                          "nsa_cmp", "threads", "warmup", "repeats", "check_n", "max_mem_gb", "seed",
                                          NULL};

static int parse_kernels(pctx *p, const cJSON *k, suite *s) {
    if (!cJSON_IsObject(k)) return fail(p, "kernels must be an object of `dmabench kernels` options");
    if (check_keys(p, k, "kernels.", kernel_keys)) return -1;
    s->kernel_argc = 0;
    snprintf(s->kernel_backend, sizeof s->kernel_backend, "cpu");
    for (const cJSON *c = k->child; c; c = c->next) {
        char opt[40], val[512] = "";
        snprintf(opt, sizeof opt, "--%s", c->string);
        for (char *q = opt; *q; q++)
            if (*q == '_') *q = '-';
        const cJSON *items = cJSON_IsArray(c) ? c->child : c;
        int first = 1;
        for (const cJSON *e = items; e; e = cJSON_IsArray(c) ? e->next : NULL) {
            char one[64];
            if (cJSON_IsNumber(e)) snprintf(one, sizeof one, "%.17g", e->valuedouble);
            else if (cJSON_IsString(e) && e->valuestring[0] && strlen(e->valuestring) < sizeof one)
                snprintf(one, sizeof one, "%s", e->valuestring);
            else return fail(p, "kernels.%s must be a number, a string or a list of them", c->string);
            if (strlen(val) + strlen(one) + 2 >= sizeof val) return fail(p, "kernels.%s is too long", c->string);
            if (!first) strcat(val, ",");
            strcat(val, one);
            first = 0;
            if (!cJSON_IsArray(c)) break;
        }
        if (first) return fail(p, "kernels.%s is an empty list", c->string);
        if (!strcmp(c->string, "backend")) snprintf(s->kernel_backend, sizeof s->kernel_backend, "%s", val);
        if (s->kernel_argc + 2 > 60) return fail(p, "kernels has too many options");
        s->kernel_argv[s->kernel_argc++] = strdup(opt);
        s->kernel_argv[s->kernel_argc++] = strdup(val);
        if (!s->kernel_argv[s->kernel_argc - 1] || !s->kernel_argv[s->kernel_argc - 2])
            return fail(p, "out of memory");
    }
    return 0;
}

int suite_parse(const char *json, const char *what, suite *s, char *err, size_t err_len) {
    memset(s, 0, sizeof *s);
    pctx p = {what, err, err_len, 0};
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        if (at)
            for (const char *q = json; q < at && *q; q++) line += *q == '\n';
        fail(&p, "not valid JSON (near line %d)", line);
        return -1;
    }
    static const char *const top_keys[] = {"name", "description", "backend", "threads", "variants", "seeds",
                                           "model", "train", "tasks", "kernels", NULL};
    static const char *const model_keys[] = {MODEL_KEYS, NULL};
    static const char *const train_keys[] = {TRAIN_KEYS, NULL};
    static const char *const tasks_keys[] = {"mqar", "niah", "ppl", NULL};
    const cJSON *model = NULL, *train = NULL, *tasks = NULL, *v;
    long long x;
    if (!cJSON_IsObject(root)) {
        fail(&p, "the top level must be an object");
        goto out;
    }
    if (check_keys(&p, root, "", top_keys)) goto out;
    snprintf(s->name, sizeof s->name, "suite");
    if (get_str(&p, cJSON_GetObjectItemCaseSensitive(root, "name"), "name", s->name, sizeof s->name)) goto out;
    v = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (v && !cJSON_IsString(v)) {
        fail(&p, "description must be a string");
        goto out;
    }
    snprintf(s->backend, sizeof s->backend, "cpu");
    if (get_str(&p, cJSON_GetObjectItemCaseSensitive(root, "backend"), "backend", s->backend, sizeof s->backend))
        goto out;
    if (strcmp(s->backend, "cpu") && strcmp(s->backend, "cuda")) {
        fail(&p, "backend must be \"cpu\" or \"cuda\", got \"%s\"", s->backend);
        goto out;
    }
    x = 0;
    if (get_int(&p, cJSON_GetObjectItemCaseSensitive(root, "threads"), "threads", 0, 4096, &x)) goto out;
    s->threads = (int)x;
    v = cJSON_GetObjectItemCaseSensitive(root, "variants");
    if (!v) {
        s->n_variants = SUITE_MAX_VARIANTS;
        const char *def[4] = {"mha", "swa", "dma", "nsa"};
        for (int i = 0; i < SUITE_MAX_VARIANTS; i++) snprintf(s->variants[i], 8, "%s", def[i]);
    } else {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > SUITE_MAX_VARIANTS) {
            fail(&p, "variants must be a list of 1 to 4 of mha, swa, dma, nsa");
            goto out;
        }
        for (const cJSON *e = v->child; e; e = e->next) {
            attn_variant av;
            if (!cJSON_IsString(e) || attn_variant_parse(e->valuestring, &av) != 0) {
                fail(&p, "unknown variant %s%s%s (use mha, swa, dma, nsa)", cJSON_IsString(e) ? "'" : "",
                     cJSON_IsString(e) ? e->valuestring : "(not a string)", cJSON_IsString(e) ? "'" : "");
                goto out;
            }
            for (int i = 0; i < s->n_variants; i++)
                if (!strcmp(s->variants[i], e->valuestring)) {
                    fail(&p, "variants lists '%s' twice", e->valuestring);
                    goto out;
                }
            snprintf(s->variants[s->n_variants++], 8, "%s", e->valuestring);
        }
    }
    s->seeds.n = 1;
    s->seeds.v[0] = 1;
    if (get_ilist(&p, cJSON_GetObjectItemCaseSensitive(root, "seeds"), "seeds", 0, (1LL << 53), &s->seeds)) goto out;
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && (!cJSON_IsObject(model) || check_keys(&p, model, "model.", model_keys))) {
        if (!p.failed) fail(&p, "model must be an object");
        goto out;
    }
    train = cJSON_GetObjectItemCaseSensitive(root, "train");
    if (train && (!cJSON_IsObject(train) || check_keys(&p, train, "train.", train_keys))) {
        if (!p.failed) fail(&p, "train must be an object");
        goto out;
    }
    tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
    if (tasks && (!cJSON_IsObject(tasks) || check_keys(&p, tasks, "tasks.", tasks_keys))) {
        if (!p.failed) fail(&p, "tasks must be an object with mqar, niah and/or ppl");
        goto out;
    }
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        suite_task k = !strcmp(t->string, "mqar") ? SUITE_MQAR : !strcmp(t->string, "niah") ? SUITE_NIAH : SUITE_PPL;
        if (s->task[k].present) {
            fail(&p, "tasks.%s is given twice", t->string);
            goto out;
        }
        if (parse_task(&p, k, t, model, train, &s->task[k])) goto out;
        s->order[s->n_tasks++] = k;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "kernels");
    if (v && parse_kernels(&p, v, s)) goto out;
    if (!s->n_tasks && !s->kernel_argc) fail(&p, "nothing to run: no tasks and no kernels section");
out:
    cJSON_Delete(root);
    if (p.failed) {
        suite_free(s);
        return -1;
    }
    return 0;
}

int suite_load(const char *path, suite *s, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot read suite '%s': %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            if (cap > (64u << 20)) {
                free(buf);
                fclose(f);
                snprintf(err, err_len, "suite '%s' is larger than 64 MiB", path);
                return -1;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, err_len, "out of memory reading '%s'", path);
                return -1;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, err_len, "cannot read suite '%s'", path);
        return -1;
    }
    buf[n] = 0;
    int rc = suite_parse(buf, path, s, err, err_len);
    free(buf);
    return rc;
}

void suite_free(suite *s) {
    for (int i = 0; i < s->kernel_argc; i++) free(s->kernel_argv[i]);
    s->kernel_argc = 0;
}

int suite_cells(const suite *s, suite_cell **out, char *err, size_t err_len) {
    int cap = 64, n = 0;
    suite_cell *c = malloc(sizeof *c * (size_t)cap);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int ti = 0; ti < s->n_tasks; ti++) {
        suite_task k = (suite_task)s->order[ti];
        const suite_task_cfg *t = &s->task[k];
        int nl = k == SUITE_MQAR ? t->seq_len.n : 1, np = k == SUITE_MQAR ? t->num_kv_pairs.n : 1;
        for (int di = 0; di < t->d_model.n; di++)
            for (int li = 0; li < nl; li++)
                for (int pi = 0; pi < np; pi++)
                    for (int si = 0; si < s->seeds.n; si++)
                        for (int vi = 0; vi < s->n_variants; vi++) {
                            if (n == SUITE_MAX_CELLS) {
                                free(c);
                                snprintf(err, err_len, "the suite has more than %d cells", SUITE_MAX_CELLS);
                                return -1;
                            }
                            if (n == cap) {
                                cap *= 2;
                                suite_cell *nc = realloc(c, sizeof *c * (size_t)cap);
                                if (!nc) {
                                    free(c);
                                    snprintf(err, err_len, "out of memory");
                                    return -1;
                                }
                                c = nc;
                            }
                            suite_cell *x = &c[n++];
                            memset(x, 0, sizeof *x);
                            x->task = k;
                            x->variant = vi;
                            x->seed = s->seeds.v[si];
                            x->d_model = (int)t->d_model.v[di];
                            double d = x->d_model, tokens = (double)t->base.steps * t->base.batch_size, ev = 0;
                            if (k == SUITE_MQAR) {
                                x->seq_len = (int)t->seq_len.v[li];
                                x->num_kv_pairs = (int)t->num_kv_pairs.v[pi];
                                snprintf(x->key, sizeof x->key, "mqar/%s/seed=%lld/d_model=%d/seq_len=%d/num_kv_pairs=%d",
                                         s->variants[vi], x->seed, x->d_model, x->seq_len, x->num_kv_pairs);
                                tokens *= x->seq_len;
                                ev = (double)t->n_test * x->seq_len / 3;
                                if (t->lrs.n || t->early_stop > 0) { /* at worst: every run to the end */
                                    int nl = t->lrs.n ? t->lrs.n : 1;
                                    int64_t k = t->early_stop > 0 ? (t->eval_every ? t->eval_every
                                                                                   : (t->base.steps + 9) / 10)
                                                                  : t->base.steps;
                                    tokens *= nl;
                                    ev += (double)nl * ((t->base.steps + k - 1) / k) * t->n_val * x->seq_len / 3;
                                }
                            } else if (k == SUITE_NIAH) {
                                snprintf(x->key, sizeof x->key, "niah/%s/seed=%lld/d_model=%d/train_context_len=%d",
                                         s->variants[vi], x->seed, x->d_model, t->train_context_len);
                                tokens *= t->train_context_len * 0.6;
                                for (int i = 0; i < t->context_len.n; i++)
                                    ev += (double)t->context_len.v[i] * t->depths.n * t->samples / 3;
                            } else {
                                snprintf(x->key, sizeof x->key, "ppl/%s/seed=%lld/d_model=%d/train_context=%d",
                                         s->variants[vi], x->seed, x->d_model, t->train_context);
                                tokens *= t->train_context;
                                int64_t te = t->max_eval_tokens > 0 && t->max_eval_tokens < t->test_tokens
                                                 ? t->max_eval_tokens
                                                 : t->test_tokens;
                                ev = (double)te * t->contexts.n * t->n_modes / 3;
                            }
                            x->cost = (tokens + ev) * d * d * t->base.n_layers;
                            if (!strcmp(s->variants[vi], "nsa")) x->cost *= 1.7; /* measured on the CPU */
                        }
    }
    *out = c;
    return n;
}
