/*
 * model_config.c: the model config JSON (HF DogeConfig keys + "attention" and
 * "train" blocks): defaults, parsing with full validation, and writing.
 */
#include "model_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sched_names[] = {"cosine", "wsd", "constant"};

const char *model_schedule_name(model_schedule s) {
    return (unsigned)s <= SCHED_CONSTANT ? sched_names[s] : "?";
}

void model_config_default(model_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 259; /* 256 bytes + bos, eos, pad */
    c->hidden_size = 64;
    c->intermediate_size = 128;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = 0; /* 0: hidden_size / num_attention_heads */
    c->max_position_embeddings = 2048;
    c->keep_window_size = 2048;
    c->tie_word_embeddings = 1;
    c->rope_theta = 10000.0;
    c->rms_norm_eps = 1e-6;
    c->initializer_range = 0.02;
    c->bos_token_id = 256;
    c->eos_token_id = 257;
    c->pad_token_id = 258;
    c->variant = ATTN_DMA;
    c->backend = ATTN_BACKEND_CPU;
    c->window = 0; /* 0: keep_window_size */
    c->dma_mode = DMA_MODE_EXP;
    c->nsa_cmp = NSA_CMP_LINEAR;
    c->nsa_gates_fixed = 0;
    c->nsa_gates[0] = c->nsa_gates[1] = c->nsa_gates[2] = 0.5f;
    c->nsa_l = 32, c->nsa_d = 16, c->nsa_ls = 64, c->nsa_n = 16;
    model_train_config *t = &c->train;
    t->steps = 100;
    t->batch_size = 8;
    t->context = 256;
    t->grad_accum = 1;
    t->lr = 1e-3;
    t->min_lr_ratio = 0.1;
    t->schedule = SCHED_COSINE;
    t->warmup = 10;
    t->decay_frac = 0.1;
    t->weight_decay = 0.1;
    t->beta1 = 0.9, t->beta2 = 0.95, t->adam_eps = 1e-8;
    t->clip = 1.0;
    t->seed = 1;
    t->log_every = 10;
    t->ckpt_every = 0;
}

/* ---- parsing helpers: each returns 0, or -1 with a message in err ---- */

typedef struct {
    const char *what; /* file name or "config" */
    char *err;
    size_t err_len;
} pctx;

static int fail(pctx *p, const char *fmt, ...) {
    if (!p->err || !p->err_len) return -1;
    int n = snprintf(p->err, p->err_len, "config '%s': ", p->what);
    if (n < 0 || (size_t)n >= p->err_len) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *jtype(const cJSON *j) {
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* Integer key (absent: *out unchanged). prefix names the block ("" or "train."). */
static int get_i64(pctx *p, const cJSON *o, const char *prefix, const char *key, int64_t lo, int64_t hi,
                   int64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || fabs(j->valuedouble) > 9e15)
        return fail(p, "key '%s%s' must be an integer, got %s", prefix, key, jtype(j));
    double v = j->valuedouble;
    if (v < (double)lo || v > (double)hi)
        return fail(p, "key '%s%s' must be in %lld..%lld, got %.17g", prefix, key, (long long)lo, (long long)hi, v);
    *out = (int64_t)v;
    return 0;
}

static int get_int(pctx *p, const cJSON *o, const char *prefix, const char *key, int lo, int hi, int *out) {
    int64_t v = *out;
    if (get_i64(p, o, prefix, key, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

/* Integer or null (null gives nullv). */
static int get_int_or_null(pctx *p, const cJSON *o, const char *key, int lo, int hi, int nullv, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (j && cJSON_IsNull(j)) {
        *out = nullv;
        return 0;
    }
    return get_int(p, o, "", key, lo, hi, out);
}

static int get_real(pctx *p, const cJSON *o, const char *prefix, const char *key, double lo, double hi,
                    int lo_open, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return fail(p, "key '%s%s' must be a number, got %s", prefix, key, jtype(j));
    double v = j->valuedouble;
    if (v < lo || v > hi || (lo_open && v == lo))
        return fail(p, "key '%s%s' must be in %s%g..%g, got %.17g", prefix, key, lo_open ? "(" : "", lo, hi, v);
    *out = v;
    return 0;
}

static int get_bool(pctx *p, const cJSON *o, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsBool(j)) return fail(p, "key '%s' must be true or false, got %s", key, jtype(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

/* String key matched against names[n]; *out receives the index. */
static int get_enum(pctx *p, const cJSON *o, const char *prefix, const char *key, const char *const *names, int n,
                    int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsString(j)) return fail(p, "key '%s%s' must be a string, got %s", prefix, key, jtype(j));
    for (int i = 0; i < n; i++)
        if (!strcmp(j->valuestring, names[i])) {
            *out = i;
            return 0;
        }
    char list[160] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return fail(p, "key '%s%s' is '%s'; expected one of: %s", prefix, key, j->valuestring, list);
}

/* A key that must hold one fixed value for this model (HF keys we do not implement). */
static int require_false(pctx *p, const cJSON *o, const char *key, const char *why) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsFalse(j) || cJSON_IsNull(j)) return 0;
    return fail(p, "key '%s' must be false: %s", key, why);
}

static int require_zero(pctx *p, const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j) || (cJSON_IsNumber(j) && j->valuedouble == 0)) return 0;
    return fail(p, "key '%s' must be 0: dmabench trains without dropout", key);
}

static int levenshtein(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static const char *const top_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "keep_window_size", "tie_word_embeddings",
    "rope_theta", "rope_parameters", "rope_scaling", "rms_norm_eps", "initializer_range", "bos_token_id",
    "eos_token_id", "pad_token_id", "hidden_act", "attention_bias", "mlp_bias", "is_moe", "hidden_dropout",
    "attention_dropout", "sliding_window", "model_type", "architectures", "use_cache", "attention", "train",
    "torch_dtype", "dtype", "transformers_version", "num_experts", "num_experts_per_tok", "norm_topk_prob",
    "output_router_logits", "router_aux_loss_coef", NULL};
static const char *const attn_keys[] = {"variant", "backend", "window", "dma_mode", "nsa_l", "nsa_d",
                                        "nsa_ls", "nsa_n", "nsa_cmp", "nsa_gates", NULL};
static const char *const train_keys[] = {"steps", "batch_size", "context", "grad_accum", "lr", "min_lr_ratio",
                                         "schedule", "warmup", "decay_frac", "weight_decay", "beta1", "beta2",
                                         "adam_eps", "clip", "seed", "log_every", "ckpt_every", NULL};

static int in_list(const char *k, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(k, list[i])) return 1;
    return 0;
}

/* Top level: a key close to a known one (edit distance 1..2) is a typo and an
 * error; other unknown keys are HF's generic PretrainedConfig keys and ignored.
 * strict: every unknown key is an error (our own blocks). */
static int check_keys(pctx *p, const cJSON *o, const char *prefix, const char *const *list, int strict) {
    for (const cJSON *j = o->child; j; j = j->next) {
        if (!j->string || in_list(j->string, list)) continue;
        const char *best = NULL;
        int bd = 3;
        for (int i = 0; list[i]; i++) {
            int d = levenshtein(j->string, list[i]);
            if (d < bd) bd = d, best = list[i];
        }
        if (best) return fail(p, "unknown key '%s%s' (did you mean '%s%s'?)", prefix, j->string, prefix, best);
        if (strict) return fail(p, "unknown key '%s%s'", prefix, j->string);
    }
    return 0;
}

static const char *const variant_names[] = {"mha", "swa", "dma", "nsa"};
static const char *const backend_names[] = {"ref", "cpu"};
static const char *const dmode_names[] = {"exp", "linear"};
static const char *const ncmp_names[] = {"linear", "mean"};

static int parse_train(pctx *p, const cJSON *t, model_train_config *tc) {
    if (!cJSON_IsObject(t)) return fail(p, "key 'train' must be an object, got %s", jtype(t));
    if (check_keys(p, t, "train.", train_keys, 1)) return -1;
    const char *pre = "train.";
    int sched = (int)tc->schedule;
    int64_t seed = (int64_t)tc->seed;
    if (get_i64(p, t, pre, "steps", 0, INT64_C(1) << 40, &tc->steps) ||
        get_int(p, t, pre, "batch_size", 1, 1 << 20, &tc->batch_size) ||
        get_int(p, t, pre, "context", 1, 1 << 24, &tc->context) ||
        get_int(p, t, pre, "grad_accum", 1, 1 << 20, &tc->grad_accum) ||
        get_real(p, t, pre, "lr", 0, 10, 0, &tc->lr) ||
        get_real(p, t, pre, "min_lr_ratio", 0, 1, 0, &tc->min_lr_ratio) ||
        get_enum(p, t, pre, "schedule", sched_names, 3, &sched) ||
        get_i64(p, t, pre, "warmup", 0, INT64_C(1) << 40, &tc->warmup) ||
        get_real(p, t, pre, "decay_frac", 0, 1, 0, &tc->decay_frac) ||
        get_real(p, t, pre, "weight_decay", 0, 10, 0, &tc->weight_decay) ||
        get_real(p, t, pre, "beta1", 0, 0.999999, 0, &tc->beta1) ||
        get_real(p, t, pre, "beta2", 0, 0.99999999, 0, &tc->beta2) ||
        get_real(p, t, pre, "adam_eps", 0, 1, 1, &tc->adam_eps) ||
        get_real(p, t, pre, "clip", 0, 1e30, 0, &tc->clip) ||
        get_i64(p, t, pre, "seed", 0, INT64_C(1) << 53, &seed) ||
        get_i64(p, t, pre, "log_every", 1, INT64_C(1) << 40, &tc->log_every) ||
        get_i64(p, t, pre, "ckpt_every", 0, INT64_C(1) << 40, &tc->ckpt_every))
        return -1;
    tc->schedule = (model_schedule)sched;
    tc->seed = (uint64_t)seed;
    return 0;
}

int model_nsa_gates_parse(const cJSON *j, float g[3], int *bad) {
    *bad = -1;
    if (!j || cJSON_IsNull(j)) return 1;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 3) return -1;
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 1)) {
            *bad = i;
            return -1;
        }
        g[i] = (float)e->valuedouble;
    }
    return 0;
}

/* "nsa_gates": three numbers in [0, 1] (g_cmp, g_slc, g_win), or null (learned). */
static int get_gates(pctx *p, const cJSON *o, const char *prefix, model_config *c) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "nsa_gates");
    if (!j) return 0;
    int bad;
    const int r = model_nsa_gates_parse(j, c->nsa_gates, &bad);
    if (r < 0 && bad < 0)
        return fail(p, "key '%snsa_gates' must be null or an array of 3 numbers in 0..1 (g_cmp, g_slc, g_win), got %s",
                    prefix, cJSON_IsArray(j) ? "an array of another length" : jtype(j));
    if (r < 0)
        return fail(p, "key '%snsa_gates' must be null or an array of 3 numbers in 0..1 (g_cmp, g_slc, g_win); "
                       "item %d is not", prefix, bad);
    c->nsa_gates_fixed = r == 0;
    return 0;
}

static int parse_attention(pctx *p, const cJSON *a, model_config *c) {
    if (!cJSON_IsObject(a)) return fail(p, "key 'attention' must be an object, got %s", jtype(a));
    if (check_keys(p, a, "attention.", attn_keys, 1)) return -1;
    const char *pre = "attention.";
    int var = (int)c->variant, be = c->backend == ATTN_BACKEND_REF ? 0 : 1, dm = (int)c->dma_mode,
        nc = (int)c->nsa_cmp;
    if (get_enum(p, a, pre, "variant", variant_names, 4, &var) ||
        get_enum(p, a, pre, "backend", backend_names, 2, &be) ||
        get_int(p, a, pre, "window", 1, 1 << 30, &c->window) ||
        get_enum(p, a, pre, "dma_mode", dmode_names, 2, &dm) ||
        get_enum(p, a, pre, "nsa_cmp", ncmp_names, 2, &nc) || get_int(p, a, pre, "nsa_l", 1, 1 << 16, &c->nsa_l) ||
        get_int(p, a, pre, "nsa_d", 1, 1 << 16, &c->nsa_d) || get_int(p, a, pre, "nsa_ls", 1, 1 << 16, &c->nsa_ls) ||
        get_int(p, a, pre, "nsa_n", 1, 1 << 16, &c->nsa_n) || get_gates(p, a, pre, c))
        return -1;
    if (!cJSON_GetObjectItemCaseSensitive(a, "variant")) return fail(p, "key 'attention.variant' is required (dma, mha, swa or nsa)");
    c->variant = (attn_variant)var;
    c->backend = be == 0 ? ATTN_BACKEND_REF : ATTN_BACKEND_CPU;
    c->dma_mode = (dma_mode)dm;
    c->nsa_cmp = (nsa_cmp)nc;
    return 0;
}

static const char *const required[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                       "num_attention_heads", NULL};

int model_config_parse(const char *json, const char *what, model_config *c, char *err, size_t err_len) {
    pctx p = {what ? what : "config", err, err_len};
    model_config_default(c);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    int rc = -1;
    if (!root) {
        size_t off = end ? (size_t)(end - json) : 0;
        return fail(&p, "not valid JSON (near byte %zu)", off);
    }
    if (!cJSON_IsObject(root)) {
        fail(&p, "the top level must be a JSON object, got %s", jtype(root));
        goto done;
    }
    if (check_keys(&p, root, "", top_keys, 0)) goto done;
    for (int i = 0; required[i]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(root, required[i])) {
            fail(&p, "key '%s' is required", required[i]);
            goto done;
        }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "doge"))) {
        fail(&p, "key 'model_type' must be \"doge\"");
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu"))) {
        fail(&p, "key 'hidden_act' must be \"silu\" (the SwiGLU MLP)");
        goto done;
    }
    if (require_false(&p, root, "is_moe", "dmabench implements the dense MLP only") ||
        require_false(&p, root, "attention_bias", "the projections have no bias") ||
        require_false(&p, root, "mlp_bias", "the projections have no bias") ||
        require_zero(&p, root, "hidden_dropout") || require_zero(&p, root, "attention_dropout"))
        goto done;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        fail(&p, "key 'rope_scaling' must be null: only the default RoPE is implemented");
        goto done;
    }
    int kvh = -1, hd = 0, sw = -1;
    if (get_int(&p, root, "", "vocab_size", 2, 1 << 24, &c->vocab_size) ||
        get_int(&p, root, "", "hidden_size", 1, 1 << 16, &c->hidden_size) ||
        get_int(&p, root, "", "intermediate_size", 1, 1 << 20, &c->intermediate_size) ||
        get_int(&p, root, "", "num_hidden_layers", 1, 1024, &c->num_hidden_layers) ||
        get_int(&p, root, "", "num_attention_heads", 1, 1024, &c->num_attention_heads) ||
        get_int_or_null(&p, root, "num_key_value_heads", 1, 1024, -1, &kvh) ||
        get_int_or_null(&p, root, "head_dim", 1, 1 << 16, 0, &hd) ||
        get_int(&p, root, "", "max_position_embeddings", 1, 1 << 24, &c->max_position_embeddings) ||
        get_int(&p, root, "", "keep_window_size", 1, 1 << 30, &c->keep_window_size) ||
        get_bool(&p, root, "tie_word_embeddings", &c->tie_word_embeddings) ||
        get_real(&p, root, "", "rope_theta", 1, 1e12, 0, &c->rope_theta) ||
        get_real(&p, root, "", "rms_norm_eps", 0, 1, 1, &c->rms_norm_eps) ||
        get_real(&p, root, "", "initializer_range", 0, 10, 1, &c->initializer_range) ||
        get_int_or_null(&p, root, "bos_token_id", 0, 1 << 24, -1, &c->bos_token_id) ||
        get_int_or_null(&p, root, "eos_token_id", 0, 1 << 24, -1, &c->eos_token_id) ||
        get_int_or_null(&p, root, "pad_token_id", 0, 1 << 24, -1, &c->pad_token_id) ||
        get_int_or_null(&p, root, "sliding_window", 1, 1 << 30, -1, &sw))
        goto done;
    c->num_key_value_heads = kvh > 0 ? kvh : c->num_attention_heads;
    c->head_dim = hd;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) {
            fail(&p, "key 'rope_parameters' must be an object, got %s", jtype(rp));
            goto done;
        }
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (rt && (!cJSON_IsString(rt) || strcmp(rt->valuestring, "default"))) {
            fail(&p, "key 'rope_parameters.rope_type' must be \"default\": only the default RoPE is implemented");
            goto done;
        }
        double th = c->rope_theta;
        if (get_real(&p, rp, "rope_parameters.", "rope_theta", 1, 1e12, 0, &th)) goto done;
        if (cJSON_GetObjectItemCaseSensitive(root, "rope_theta") && th != c->rope_theta) {
            fail(&p, "'rope_theta' (%g) and 'rope_parameters.rope_theta' (%g) disagree", c->rope_theta, th);
            goto done;
        }
        c->rope_theta = th;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "attention");
    if (!a) {
        fail(&p, "key 'attention' is required: {\"variant\": \"dma|mha|swa|nsa\", ...}");
        goto done;
    }
    if (parse_attention(&p, a, c)) goto done;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "train");
    if (t && parse_train(&p, t, &c->train)) goto done;
    if (sw > 0 && c->variant != ATTN_SWA) {
        fail(&p, "key 'sliding_window' is set (%d) but the variant is %s: only swa uses it", sw,
             attn_variant_name(c->variant));
        goto done;
    }
    if (c->variant == ATTN_SWA && sw > 0 && c->window > 0 && sw != c->window) {
        fail(&p, "'sliding_window' (%d) and 'attention.window' (%d) disagree", sw, c->window);
        goto done;
    }
    if (c->variant == ATTN_SWA && sw > 0) c->window = sw;
    if (c->variant == ATTN_DMA && c->window > 0 && c->window != c->keep_window_size &&
        cJSON_GetObjectItemCaseSensitive(root, "keep_window_size")) {
        fail(&p, "dma's window is 'keep_window_size' (%d); 'attention.window' (%d) disagrees", c->keep_window_size,
             c->window);
        goto done;
    }
    if (c->variant == ATTN_DMA && c->window > 0) c->keep_window_size = c->window;
    if (c->window <= 0) c->window = c->keep_window_size;
    if (c->head_dim == 0) {
        if (c->hidden_size % c->num_attention_heads) {
            fail(&p, "hidden_size %d is not a multiple of num_attention_heads %d: give head_dim", c->hidden_size,
                 c->num_attention_heads);
            goto done;
        }
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    rc = model_config_check(c, err, err_len);
    if (rc && err && err_len) { /* prefix the file name */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        fail(&p, "%s", tmp);
    }
done:
    cJSON_Delete(root);
    return rc;
}

int model_config_load(const char *path, model_config *c, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && err_len) snprintf(err, err_len, "cannot open config '%s': %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) {
                fclose(f);
                free(buf);
                if (err && err_len) snprintf(err, err_len, "config '%s': larger than 64 MiB", path);
                return -1;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                fclose(f);
                free(buf);
                if (err && err_len) snprintf(err, err_len, "config '%s': out of memory", path);
                return -1;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        if (err && err_len) snprintf(err, err_len, "cannot read config '%s'", path);
        return -1;
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        if (err && err_len) snprintf(err, err_len, "config '%s': not a text file (NUL byte)", path);
        return -1;
    }
    int rc = model_config_parse(buf, path, c, err, err_len);
    free(buf);
    return rc;
}

#define CFAIL(...)                                                   \
    do {                                                             \
        if (err && err_len) snprintf(err, err_len, __VA_ARGS__);     \
        return -1;                                                   \
    } while (0)

int model_train_config_check(const model_train_config *t, char *err, size_t err_len) {
    if (t->steps < 0) CFAIL("train.steps must be >= 0, got %lld", (long long)t->steps);
    if (t->batch_size < 1) CFAIL("train.batch_size must be >= 1, got %d", t->batch_size);
    if (t->context < 1) CFAIL("train.context must be >= 1, got %d", t->context);
    if (t->grad_accum < 1) CFAIL("train.grad_accum must be >= 1, got %d", t->grad_accum);
    if (!(t->lr >= 0) || !isfinite(t->lr)) CFAIL("train.lr must be a number >= 0");
    if (!(t->min_lr_ratio >= 0 && t->min_lr_ratio <= 1)) CFAIL("train.min_lr_ratio must be in 0..1");
    if ((unsigned)t->schedule > SCHED_CONSTANT) CFAIL("train.schedule is unknown");
    if (t->warmup < 0) CFAIL("train.warmup must be >= 0");
    if (!(t->decay_frac >= 0 && t->decay_frac <= 1)) CFAIL("train.decay_frac must be in 0..1");
    if (!(t->weight_decay >= 0) || !isfinite(t->weight_decay)) CFAIL("train.weight_decay must be >= 0");
    if (!(t->beta1 >= 0 && t->beta1 < 1) || !(t->beta2 >= 0 && t->beta2 < 1))
        CFAIL("train.beta1 and train.beta2 must be in [0, 1)");
    if (!(t->adam_eps > 0)) CFAIL("train.adam_eps must be > 0");
    if (!(t->clip >= 0) || !isfinite(t->clip)) CFAIL("train.clip must be >= 0 (0: no clipping)");
    if (t->log_every < 1) CFAIL("train.log_every must be >= 1");
    if (t->ckpt_every < 0) CFAIL("train.ckpt_every must be >= 0");
    if ((double)t->batch_size * t->context > 1e9) CFAIL("train.batch_size * train.context is too large");
    return 0;
}

int model_config_check(const model_config *c, char *err, size_t err_len) {
    if (c->vocab_size < 2) CFAIL("vocab_size must be >= 2, got %d", c->vocab_size);
    if (c->hidden_size < 1) CFAIL("hidden_size must be >= 1, got %d", c->hidden_size);
    if (c->intermediate_size < 1) CFAIL("intermediate_size must be >= 1, got %d", c->intermediate_size);
    if (c->num_hidden_layers < 1) CFAIL("num_hidden_layers must be >= 1, got %d", c->num_hidden_layers);
    if (c->num_attention_heads < 1 || c->num_key_value_heads < 1)
        CFAIL("num_attention_heads and num_key_value_heads must be >= 1");
    if (c->num_attention_heads % c->num_key_value_heads)
        CFAIL("num_attention_heads %d is not a multiple of num_key_value_heads %d", c->num_attention_heads,
              c->num_key_value_heads);
    if (c->head_dim < 2 || c->head_dim % 2) CFAIL("head_dim must be even and >= 2 (RoPE), got %d", c->head_dim);
    if (c->head_dim > ATTN_MAX_D) CFAIL("head_dim %d exceeds the operators' limit %d", c->head_dim, ATTN_MAX_D);
    if (c->max_position_embeddings < 1) CFAIL("max_position_embeddings must be >= 1");
    if (c->keep_window_size < 1) CFAIL("keep_window_size must be >= 1");
    if (!(c->rope_theta > 1) || !isfinite(c->rope_theta)) CFAIL("rope_theta must be > 1");
    if (!(c->rms_norm_eps > 0) || !(c->rms_norm_eps < 1)) CFAIL("rms_norm_eps must be in (0, 1)");
    if (!(c->initializer_range > 0) || !isfinite(c->initializer_range)) CFAIL("initializer_range must be > 0");
    if (c->bos_token_id >= c->vocab_size || c->eos_token_id >= c->vocab_size || c->pad_token_id >= c->vocab_size)
        CFAIL("bos/eos/pad token ids must be < vocab_size %d (or null)", c->vocab_size);
    if ((unsigned)c->variant >= ATTN_NVARIANTS) CFAIL("unknown attention variant");
    if (c->backend != ATTN_BACKEND_CPU && c->backend != ATTN_BACKEND_REF)
        CFAIL("attention.backend must be cpu or ref");
    if (c->window < 1) CFAIL("attention.window must be >= 1");
    if (c->variant == ATTN_NSA) {
        if (c->nsa_d > c->nsa_l) CFAIL("attention.nsa_d %d must not exceed attention.nsa_l %d", c->nsa_d, c->nsa_l);
        if (c->nsa_l < 1 || c->nsa_ls < 1 || c->nsa_n < 1) CFAIL("attention.nsa_l, nsa_ls and nsa_n must be >= 1");
        if (c->nsa_gates_fixed)
            for (int i = 0; i < 3; i++)
                if (!(c->nsa_gates[i] >= 0 && c->nsa_gates[i] <= 1)) CFAIL("attention.nsa_gates must be in 0..1");
    }
    double params = (double)c->vocab_size * c->hidden_size +
                    (double)c->num_hidden_layers * c->hidden_size *
                        ((double)(c->num_attention_heads * 2 + c->num_key_value_heads * 2) * c->head_dim +
                         3.0 * c->intermediate_size);
    if (params > 4e9) CFAIL("the model would have %.3g parameters; dmabench's CPU model is for small models", params);
    return model_train_config_check(&c->train, err, err_len);
}

int model_config_attn_w(const model_config *c) {
    if (c->variant == ATTN_DMA) return c->keep_window_size;
    if (c->variant == ATTN_MHA) return 0;
    return c->window;
}

/* A JSON number that always reads back as a float (transformers' strict config
 * fields reject 0 where they declare float, and cJSON writes 0.0 as 0). */
static void add_float(cJSON *o, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".eEni")) strncat(buf, ".0", sizeof buf - strlen(buf) - 1);
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

char *model_config_to_json(const model_config *c) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    int nsa = c->variant == ATTN_NSA;
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(nsa ? "DmabenchNsaForCausalLM" : "DogeForCausalLM"));
    cJSON_AddStringToObject(r, "model_type", "doge");
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->num_key_value_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    int kws = c->keep_window_size;
    if (c->variant == ATTN_MHA || c->variant == ATTN_SWA) { /* no dynamic masking in HF's Doge */
        if (kws < c->max_position_embeddings) kws = c->max_position_embeddings;
        if (kws < c->train.context) kws = c->train.context;
    }
    cJSON_AddNumberToObject(r, "keep_window_size", kws);
    if (c->variant == ATTN_SWA) cJSON_AddNumberToObject(r, "sliding_window", c->window);
    else cJSON_AddNullToObject(r, "sliding_window");
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
    add_float(r, "rope_theta", c->rope_theta);
    cJSON *rp = cJSON_AddObjectToObject(r, "rope_parameters");
    add_float(rp, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(rp, "rope_type", "default");
    add_float(r, "rms_norm_eps", c->rms_norm_eps);
    add_float(r, "initializer_range", c->initializer_range);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddBoolToObject(r, "attention_bias", 0);
    cJSON_AddBoolToObject(r, "mlp_bias", 0);
    cJSON_AddBoolToObject(r, "is_moe", 0);
    add_float(r, "hidden_dropout", 0);
    add_float(r, "attention_dropout", 0);
    cJSON_AddBoolToObject(r, "use_cache", 1);
    cJSON_AddStringToObject(r, "dtype", "float32");
#define TOK(key, v)                                  \
    if ((v) >= 0) cJSON_AddNumberToObject(r, key, v); \
    else cJSON_AddNullToObject(r, key)
    TOK("bos_token_id", c->bos_token_id);
    TOK("eos_token_id", c->eos_token_id);
    TOK("pad_token_id", c->pad_token_id);
#undef TOK
    cJSON *a = cJSON_AddObjectToObject(r, "attention");
    cJSON_AddStringToObject(a, "variant", attn_variant_name(c->variant));
    cJSON_AddStringToObject(a, "backend", attn_backend_name(c->backend));
    if (c->variant == ATTN_SWA || c->variant == ATTN_NSA) cJSON_AddNumberToObject(a, "window", c->window);
    if (c->variant == ATTN_DMA) cJSON_AddStringToObject(a, "dma_mode", c->dma_mode == DMA_MODE_EXP ? "exp" : "linear");
    if (nsa) {
        cJSON_AddNumberToObject(a, "nsa_l", c->nsa_l);
        cJSON_AddNumberToObject(a, "nsa_d", c->nsa_d);
        cJSON_AddNumberToObject(a, "nsa_ls", c->nsa_ls);
        cJSON_AddNumberToObject(a, "nsa_n", c->nsa_n);
        cJSON_AddStringToObject(a, "nsa_cmp", c->nsa_cmp == NSA_CMP_LINEAR ? "linear" : "mean");
        if (c->nsa_gates_fixed) cJSON_AddItemToObject(a, "nsa_gates", cJSON_CreateFloatArray(c->nsa_gates, 3));
    }
    const model_train_config *t = &c->train;
    cJSON *tr = cJSON_AddObjectToObject(r, "train");
    cJSON_AddNumberToObject(tr, "steps", (double)t->steps);
    cJSON_AddNumberToObject(tr, "batch_size", t->batch_size);
    cJSON_AddNumberToObject(tr, "context", t->context);
    cJSON_AddNumberToObject(tr, "grad_accum", t->grad_accum);
    cJSON_AddNumberToObject(tr, "lr", t->lr);
    cJSON_AddNumberToObject(tr, "min_lr_ratio", t->min_lr_ratio);
    cJSON_AddStringToObject(tr, "schedule", model_schedule_name(t->schedule));
    cJSON_AddNumberToObject(tr, "warmup", (double)t->warmup);
    cJSON_AddNumberToObject(tr, "decay_frac", t->decay_frac);
    cJSON_AddNumberToObject(tr, "weight_decay", t->weight_decay);
    cJSON_AddNumberToObject(tr, "beta1", t->beta1);
    cJSON_AddNumberToObject(tr, "beta2", t->beta2);
    cJSON_AddNumberToObject(tr, "adam_eps", t->adam_eps);
    cJSON_AddNumberToObject(tr, "clip", t->clip);
    cJSON_AddNumberToObject(tr, "seed", (double)t->seed);
    cJSON_AddNumberToObject(tr, "log_every", (double)t->log_every);
    cJSON_AddNumberToObject(tr, "ckpt_every", (double)t->ckpt_every);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}
