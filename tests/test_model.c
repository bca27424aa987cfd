/*
 * test_model.c: the model layer apart from gradients (test_model_grad.c):
 * config parsing and its errors, deterministic initialisation, a tiny overfit,
 * checkpoint round trips (bit-exact) and malformed checkpoints, exact resume
 * (2N steps == N + resume N, with gradient accumulation, clipping and a
 * schedule), KV-cache decoding against full recomputation for every variant,
 * the schedules and the data sources, gradient accumulation weighted by
 * counted tokens (one step of K micro-batches == one step on their
 * concatenation) and token-weighted evaluation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model_tiny.h"
#include "safetensors.h"

static char tmpdir[256];

static void path_in(char *out, size_t n, const char *name) {
    if (snprintf(out, n, "%s/%s", tmpdir, name) >= (int)n) out[0] = 0;
}

/* ---- config ---- */

static const char *good_json =
    "{\"vocab_size\": 40, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 8, \"rope_parameters\":"
    " {\"rope_theta\": 5000.0, \"rope_type\": \"default\"}, \"keep_window_size\": 6, \"tie_word_embeddings\": false,"
    " \"bos_token_id\": null, \"eos_token_id\": null, \"pad_token_id\": null, \"torch_dtype\": \"float32\","
    " \"attention\": {\"variant\": \"dma\", \"dma_mode\": \"linear\"},"
    " \"train\": {\"steps\": 7, \"batch_size\": 3, \"context\": 12, \"lr\": 0.002, \"schedule\": \"wsd\"}}";

static void expect_cfg_error(const char *name, const char *json, const char *needle) {
    model_config c;
    char err[512] = "";
    int rc = model_config_parse(json, "t.json", &c, err, sizeof err);
    CHECK(rc != 0 && strstr(err, needle) && !strchr(err, '\n'), name, "rc %d, error '%s' lacks '%s'", rc, err, needle);
}

/* Replaces the first occurrence of `what` in good_json by `with`. */
static char *edit(const char *what, const char *with) {
    static char buf[4096];
    const char *p = strstr(good_json, what);
    if (!p) return strcpy(buf, "{}");
    size_t a = (size_t)(p - good_json);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)a, good_json, with, p + strlen(what));
    return buf;
}

static void test_config(void) {
    model_config c;
    char err[512] = "";
    int rc = model_config_parse(good_json, "t.json", &c, err, sizeof err);
    CHECK(rc == 0, "config/parse", "%s", err);
    CHECK(rc == 0 && c.vocab_size == 40 && c.head_dim == 8 && c.num_key_value_heads == 2 && c.rope_theta == 5000 &&
              c.variant == ATTN_DMA && c.dma_mode == DMA_MODE_LINEAR && c.keep_window_size == 6 &&
              !c.tie_word_embeddings && c.train.steps == 7 && c.train.batch_size == 3 && c.train.context == 12 &&
              c.train.schedule == SCHED_WSD && c.pad_token_id == -1,
          "config/values", "values differ from the file");
    /* round trip through the HF-style writer */
    char *js = model_config_to_json(&c);
    model_config c2;
    rc = js ? model_config_parse(js, "roundtrip", &c2, err, sizeof err) : -1;
    CHECK(rc == 0 && !memcmp(&c.train, &c2.train, sizeof c.train) && c2.vocab_size == c.vocab_size &&
              c2.rope_theta == c.rope_theta && c2.keep_window_size == c.keep_window_size && c2.dma_mode == c.dma_mode,
          "config/roundtrip", "%s", rc ? err : "values changed");
    CHECK(js && strstr(js, "\"rope_parameters\"") && strstr(js, "\"model_type\":\t\"doge\"") &&
              strstr(js, "\"is_moe\":\tfalse") && strstr(js, "DogeForCausalLM"),
          "config/hf_keys", "HF keys missing from the written config");
    free(js);
    /* mha is written with keep_window_size >= the context and max positions */
    model_config cm = c;
    cm.variant = ATTN_MHA;
    js = model_config_to_json(&cm);
    CHECK(js && strstr(js, "\"keep_window_size\":\t2048"), "config/mha_keep_window", "%s", js ? js : "null");
    free(js);

    expect_cfg_error("config/bad_json", "{\"vocab_size\": ", "not valid JSON");
    expect_cfg_error("config/not_object", "[1, 2]", "top level must be a JSON object");
    expect_cfg_error("config/missing_key", "{\"vocab_size\": 10, \"attention\": {\"variant\": \"mha\"}}",
                     "key 'hidden_size' is required");
    expect_cfg_error("config/typo", edit("\"head_dim\"", "\"head_dmi\""), "did you mean 'head_dim'");
    expect_cfg_error("config/bad_type", edit("\"hidden_size\": 16", "\"hidden_size\": \"16\""),
                     "key 'hidden_size' must be an integer");
    expect_cfg_error("config/range", edit("\"hidden_size\": 16", "\"hidden_size\": 0"), "'hidden_size' must be in");
    expect_cfg_error("config/gqa", edit("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
                     "not a multiple of num_key_value_heads");
    expect_cfg_error("config/odd_head_dim", edit("\"head_dim\": 8", "\"head_dim\": 7"), "head_dim must be even");
    expect_cfg_error("config/variant", edit("\"dma\"", "\"xyz\""), "'attention.variant' is 'xyz'");
    expect_cfg_error("config/no_attention", "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8,"
                                            " \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
                     "key 'attention' is required");
    expect_cfg_error("config/attn_unknown", edit("\"dma_mode\"", "\"dma_mod\""), "did you mean 'attention.dma_mode'");
    expect_cfg_error("config/train_unknown", edit("\"lr\": 0.002", "\"learning_rate\": 0.002"),
                     "unknown key 'train.learning_rate'");
    expect_cfg_error("config/schedule", edit("\"wsd\"", "\"linear\""), "'train.schedule' is 'linear'");
    expect_cfg_error("config/moe", edit("\"torch_dtype\"", "\"is_moe\": true, \"torch_dtype\""), "'is_moe' must be false");
    expect_cfg_error("config/rope_type", edit("\"default\"", "\"yarn\""), "only the default RoPE");
    expect_cfg_error("config/rope_disagree", edit("\"torch_dtype\"", "\"rope_theta\": 10.0, \"torch_dtype\""),
                     "disagree");
    expect_cfg_error("config/token_range", edit("\"bos_token_id\": null", "\"bos_token_id\": 40"),
                     "must be < vocab_size");
    expect_cfg_error("config/sliding_window", edit("\"torch_dtype\"", "\"sliding_window\": 4, \"torch_dtype\""),
                     "only swa uses it");
    expect_cfg_error("config/lr_negative", edit("\"lr\": 0.002", "\"lr\": -1"), "'train.lr' must be in");
    expect_cfg_error("config/nsa_gates_length",
                     edit("\"dma_mode\": \"linear\"", "\"nsa_gates\": [0, 1]"), "array of 3 numbers in 0..1");
    expect_cfg_error("config/nsa_gates_range",
                     edit("\"dma_mode\": \"linear\"", "\"nsa_gates\": [0, 1, 1.5]"), "item 2 is not");
    {   /* fixed nsa gates: parsed, written back, and the model has no g_proj */
        model_config cg;
        const char *js_g = edit("\"variant\": \"dma\", \"dma_mode\": \"linear\"",
                                "\"variant\": \"nsa\", \"nsa_gates\": [0.25, 0, 1]");
        int rg = model_config_parse(js_g, "t.json", &cg, err, sizeof err);
        char *back = rg == 0 ? model_config_to_json(&cg) : NULL;
        model_config cg2;
        int rg2 = back ? model_config_parse(back, "back.json", &cg2, err, sizeof err) : -1;
        model *mg = NULL;
        int made = rg == 0 && model_create(&cg, &mg, err, sizeof err) == MODEL_OK;
        int has_g = made && model_find_tensor(mg, "model.layers.0.self_attn.g_proj.weight") != NULL;
        CHECK(rg == 0 && cg.nsa_gates_fixed && cg.nsa_gates[0] == 0.25f && cg.nsa_gates[1] == 0 &&
                  cg.nsa_gates[2] == 1 && rg2 == 0 && cg2.nsa_gates_fixed && cg2.nsa_gates[0] == 0.25f && made &&
                  !has_g,
              "config/nsa_gates_fixed", "%s", rg || rg2 || !made ? err : has_g ? "g_proj present" : "values differ");
        model_free(mg);
        free(back);
    }
    model_config dummy;
    rc = model_config_load("/nonexistent/c.json", &dummy, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "cannot open config"), "config/missing_file", "%s", err);
}

/* ---- helpers ---- */

static model *tiny_model(attn_variant v, int steps, int accum) {
    model_config c;
    tiny_config(&c, v);
    c.train.steps = steps;
    c.train.grad_accum = accum;
    c.train.lr = 3e-3;
    c.train.warmup = 2;
    c.train.clip = 0.5; /* small enough that clipping happens */
    c.train.schedule = SCHED_COSINE;
    model *m = NULL;
    char err[256];
    if (model_create(&c, &m, err, sizeof err) != MODEL_OK) {
        printf("# create failed: %s\n", err);
        return NULL;
    }
    return m;
}

static model_data *byte_source(uint64_t seed) {
    static const char text[] = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. ";
    unsigned char buf[400];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(text[i % (sizeof text - 1)] % 32);
    model_data *d = NULL;
    char err[256];
    if (model_data_bytes_from_memory(buf, sizeof buf, seed, &d, err, sizeof err)) return NULL;
    d->vocab_needed = 32;
    return d;
}

/* ---- init, overfit ---- */

static void test_init(void) {
    model *a = tiny_model(ATTN_DMA, 1, 1), *b = tiny_model(ATTN_DMA, 1, 1);
    CHECK(a && b && !memcmp(model_params(a), model_params(b), model_params_len(a) * sizeof(float)), "init/deterministic",
          "two models from one seed differ");
    const model_tensor *tA = model_find_tensor(a, "model.layers.0.self_attn.A");
    const model_tensor *tr = model_find_tensor(a, "model.layers.1.input_residual");
    const model_tensor *tq = model_find_tensor(a, "model.layers.0.self_attn.q_proj.weight");
    int ok = tA && tr && tq;
    for (size_t e = 0; ok && e < tA->numel; e++) ok = model_params(a)[tA->offset + e] == 0.0f;
    for (size_t e = 0; ok && e < tr->numel; e++) ok = model_params(a)[tr->offset + e] == 1.0f;
    double s = 0;
    for (size_t e = 0; ok && e < tq->numel; e++) s += (double)model_params(a)[tq->offset + e] * model_params(a)[tq->offset + e];
    double sd = ok ? sqrt(s / tq->numel) : 0;
    CHECK(ok && fabs(sd - 0.02) < 0.004, "init/doge", "A = 0, residuals = 1, q_proj std %.4f (want 0.02)", sd);
    model_free(a);
    model_free(b);
}

/* The flat buffer's layout: every tensor that does not continue a fused weight
 * (k, v and g after q, up after gate) starts on a 64-float boundary, the fused
 * ones follow their first tensor without a gap, the gaps hold zeros, and the
 * parameter count leaves them out. dma's A (num_key_value_heads floats) is what
 * used to push the tensors after it off alignment. */
static void test_layout(void) {
    for (int v = 0; v < 2; v++) {
        model *m = tiny_model(v ? ATTN_NSA : ATTN_DMA, 1, 1);
        if (!m) {
            CHECK(0, v ? "layout/nsa" : "layout/dma", "model_create failed");
            continue;
        }
        size_t len = model_params_len(m), count = 0, end = 0, bad_gap = 0, q_off = 0, q_cols = 1;
        int misaligned = -1, gapped = -1, unpadded = -1;
        unsigned char *used = calloc(len, 1);
        for (int i = 0; i < model_num_tensors(m); i++) {
            const model_tensor *t = model_tensor_at(m, i);
            const char *nm = t->name;
            int follows = strstr(nm, ".k_proj.") || strstr(nm, ".v_proj.") || strstr(nm, ".g_proj.") ||
                          strstr(nm, ".up_proj.");
            if (!follows && t->offset % 64 && misaligned < 0) misaligned = i;
            if (follows && t->offset != end && gapped < 0) gapped = i;
            if (strstr(nm, ".q_proj.")) q_off = t->offset, q_cols = (size_t)t->shape[1];
            if (strstr(nm, ".q_norm.")) { /* the fused q, k, v (, g) rows, then zero rows up to a multiple of 8 */
                const size_t rows = (end - q_off) / q_cols;
                if (t->offset < q_off + (rows + 7) / 8 * 8 * q_cols && unpadded < 0) unpadded = i;
            }
            memset(used + t->offset, 1, t->numel);
            count += t->numel;
            end = t->offset + t->numel;
        }
        for (size_t e = 0; e < len; e++) bad_gap += !used[e] && model_params(m)[e] != 0.0f;
        const char *nm = v ? "layout/nsa" : "layout/dma";
        CHECK(misaligned < 0 && gapped < 0 && unpadded < 0 && !bad_gap && count == model_num_params(m) && end == len, nm,
              "misaligned tensor %d, gap before fused tensor %d, fused rows not padded to 8 before tensor %d, %zu nonzero "
              "gap floats, count %zu of %zu, end %zu of %zu",
              misaligned, gapped, unpadded, bad_gap, count, model_num_params(m), end, len);
        free(used);
        model_free(m);
    }
}

static void test_overfit(void) {
    model_config c;
    tiny_config(&c, ATTN_DMA);
    c.hidden_size = 32, c.intermediate_size = 64;
    c.train.steps = 150, c.train.lr = 1e-2, c.train.warmup = 10, c.train.weight_decay = 0.0;
    c.train.batch_size = 4;
    model *m = NULL;
    char err[256];
    model_status st = model_create(&c, &m, err, sizeof err);
    /* a periodic sequence: every next byte is determined by the previous two */
    unsigned char buf[256];
    for (int i = 0; i < 256; i++) buf[i] = (unsigned char)("abcabdabeabf"[i % 12] - 'a');
    model_data *d = NULL;
    if (st == MODEL_OK && model_data_bytes_from_memory(buf, sizeof buf, 3, &d, err, sizeof err)) st = MODEL_ERR_DATA;
    if (d) d->vocab_needed = 8;
    model_trainer *t = NULL;
    if (st == MODEL_OK) st = model_trainer_create(m, d, &t, err, sizeof err);
    double first = NAN, last = NAN;
    model_step_info info;
    while (st == MODEL_OK && model_trainer_step_count(t) < c.train.steps) {
        st = model_trainer_step(t, &info, err, sizeof err);
        if (info.step == 1) first = info.loss;
        last = info.loss;
    }
    printf("# overfit: loss %.4f -> %.4f in %lld steps\n", first, last, (long long)c.train.steps);
    /* ln(32) = 3.47 at the start; the next byte is predictable except after "ab" (4 choices) */
    CHECK(st == MODEL_OK && last < 0.6, "overfit/loss_falls", "%s; loss %.4f -> %.4f", st ? err : "ok", first, last);
    model_trainer_free(t);
    model_data_free(d);
    model_free(m);
}

/* ---- checkpoints ---- */

static int same_params(model *a, model *b) {
    return model_params_len(a) == model_params_len(b) &&
           !memcmp(model_params(a), model_params(b), model_params_len(a) * sizeof(float));
}

static void test_checkpoint(attn_variant v) {
    char dir[300], name[120], err[512];
    snprintf(name, sizeof name, "ckpt_%s", attn_variant_name(v));
    path_in(dir, sizeof dir, name);
    model *m = tiny_model(v, 1, 1);
    tiny_randomize(m, 3, 0.1);
    model_status st = model_save(m, dir, 42, err, sizeof err);
    model *r = NULL;
    int64_t step = -1;
    if (st == MODEL_OK) st = model_load(dir, &r, &step, err, sizeof err);
    snprintf(name, sizeof name, "ckpt/%s/roundtrip_bitexact", attn_variant_name(v));
    CHECK(st == MODEL_OK && step == 42 && same_params(m, r), name, "%s", st ? err : "parameters differ");
    if (st == MODEL_OK) {
        int32_t ids[32];
        tiny_batch(1, 2, 16, 32, ids, NULL);
        float *l1 = malloc(32 * 32 * sizeof(float)), *l2 = malloc(32 * 32 * sizeof(float));
        model_logits(m, ids, 2, 16, l1, err, sizeof err);
        model_logits(r, ids, 2, 16, l2, err, sizeof err);
        snprintf(name, sizeof name, "ckpt/%s/same_logits", attn_variant_name(v));
        CHECK(!memcmp(l1, l2, 32 * 32 * sizeof(float)), name, "logits differ after reload");
        free(l1), free(l2);
    }
    if (v == ATTN_MHA) { /* HF layout: dt_proj and A are written as zeros */
        char p[400];
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        st_file f;
        st_file_init(&f);
        int ok = st_read(p, &f, err, sizeof err) == ST_OK;
        const st_tensor *a = ok ? st_file_find(&f, "model.layers.1.self_attn.A") : NULL;
        const st_tensor *w = ok ? st_file_find(&f, "model.layers.0.self_attn.dt_proj.weight") : NULL;
        ok = a && w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 16 && !st_file_find(&f, "lm_head.weight");
        CHECK(ok, "ckpt/mha/hf_layout", "dt_proj/A missing or lm_head present in a tied mha checkpoint");
        st_file_free(&f);
    }
    model_free(m);
    model_free(r);
}

/* Writes a copy of src's model.safetensors with one tensor changed, into dir. */
typedef enum { MUT_DROP, MUT_SHAPE, MUT_DTYPE, MUT_NAN, MUT_EXTRA, MUT_NONZERO_A } mutation;

static void mutate_ckpt(const char *src, const char *dst, const char *tensor, mutation mu) {
    char p[400], err[512];
    mkdir(dst, 0755);
    snprintf(p, sizeof p, "%s/config.json", src);
    FILE *in = fopen(p, "rb");
    snprintf(p, sizeof p, "%s/config.json", dst);
    FILE *out = fopen(p, "wb");
    int ch;
    while (in && out && (ch = fgetc(in)) != EOF) fputc(ch, out);
    if (in) fclose(in);
    if (out) fclose(out);
    st_file f, g;
    st_file_init(&f);
    st_file_init(&g);
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    st_read(p, &f, err, sizeof err);
    for (size_t i = 0; i < f.n_tensors; i++) {
        st_tensor *t = &f.tensors[i];
        int hit = !strcmp(t->name, tensor);
        if (hit && mu == MUT_DROP) continue;
        if (hit && mu == MUT_SHAPE) {
            int64_t s[2] = {t->shape[0], t->shape[1] - 1};
            st_file_add(&g, t->name, ST_F32, 2, s, t->data, ST_BORROW, err, sizeof err);
            continue;
        }
        if (hit && mu == MUT_DTYPE) {
            st_file_add(&g, t->name, ST_I32, t->ndim, t->shape, t->data, ST_BORROW, err, sizeof err);
            continue;
        }
        if (hit && mu == MUT_NAN) ((float *)t->data)[1] = NAN;
        if (hit && mu == MUT_NONZERO_A) ((float *)t->data)[0] = 0.5f;
        st_file_add(&g, t->name, t->dtype, t->ndim, t->shape, t->data, ST_BORROW, err, sizeof err);
    }
    if (mu == MUT_EXTRA) {
        float z[4] = {0};
        int64_t s[1] = {4};
        st_file_add(&g, "model.layers.9.input_residual", ST_F32, 1, s, z, ST_COPY, err, sizeof err);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    st_write(p, &g, err, sizeof err);
    st_file_free(&g);
    st_file_free(&f);
}

static void expect_load_error(const char *name, const char *dir, const char *needle) {
    model *m = NULL;
    char err[512] = "";
    model_status st = model_load(dir, &m, NULL, err, sizeof err);
    CHECK(st != MODEL_OK && !m && strstr(err, needle), name, "status %s, error '%s' lacks '%s'", model_status_str(st),
          err, needle);
    model_free(m);
}

static void test_bad_checkpoints(void) {
    char src[300], dst[300];
    path_in(src, sizeof src, "ckpt_dma");
    path_in(dst, sizeof dst, "bad1");
    mutate_ckpt(src, dst, "model.layers.1.mlp.up_proj.weight", MUT_DROP);
    expect_load_error("ckpt/bad/missing_tensor", dst, "tensor 'model.layers.1.mlp.up_proj.weight' is missing");
    path_in(dst, sizeof dst, "bad2");
    mutate_ckpt(src, dst, "model.layers.0.self_attn.q_proj.weight", MUT_SHAPE);
    expect_load_error("ckpt/bad/shape", dst, "but expected (32,16)");
    path_in(dst, sizeof dst, "bad3");
    mutate_ckpt(src, dst, "model.norm.weight", MUT_DTYPE);
    expect_load_error("ckpt/bad/dtype", dst, "'model.norm.weight' is I32; expected F32");
    path_in(dst, sizeof dst, "bad4");
    mutate_ckpt(src, dst, "model.layers.0.self_attn.k_norm.weight", MUT_NAN);
    expect_load_error("ckpt/bad/nan", dst, "holds NaN or Inf");
    path_in(dst, sizeof dst, "bad5");
    mutate_ckpt(src, dst, "", MUT_EXTRA);
    expect_load_error("ckpt/bad/extra_layer", dst, "unexpected tensor 'model.layers.9.input_residual'");
    path_in(src, sizeof src, "ckpt_mha");
    path_in(dst, sizeof dst, "bad6");
    mutate_ckpt(src, dst, "model.layers.0.self_attn.A", MUT_NONZERO_A);
    expect_load_error("ckpt/bad/mha_with_dma_weights", dst, "this is a dma model");
    path_in(dst, sizeof dst, "nothing_here");
    expect_load_error("ckpt/bad/no_folder", dst, "is not a model folder");
    /* a truncated safetensors file */
    path_in(dst, sizeof dst, "bad7");
    mutate_ckpt(src, dst, "", MUT_EXTRA);
    char p[400];
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    if (truncate(p, 100) != 0) printf("# truncate failed\n");
    expect_load_error("ckpt/bad/truncated", dst, "model.safetensors");
}

/* ---- resume ---- */

static void test_resume(attn_variant v) {
    const int N = 3;
    char dir[300], name[120], err[512];
    snprintf(name, sizeof name, "resume_%s", attn_variant_name(v));
    path_in(dir, sizeof dir, name);
    double la[2 * N], lb[2 * N];
    model_step_info info;
    /* uninterrupted: 2N steps */
    model *a = tiny_model(v, 2 * N, 2);
    model_data *da = byte_source(9);
    model_trainer *ta = NULL;
    model_status st = model_trainer_create(a, da, &ta, err, sizeof err);
    for (int s = 0; s < 2 * N && st == MODEL_OK; s++) {
        st = model_trainer_step(ta, &info, err, sizeof err);
        la[s] = info.loss;
    }
    /* N steps, checkpoint, a fresh process's worth of state, N more */
    model *b = tiny_model(v, 2 * N, 2);
    model_data *db = byte_source(9);
    model_trainer *tb = NULL;
    if (st == MODEL_OK) st = model_trainer_create(b, db, &tb, err, sizeof err);
    for (int s = 0; s < N && st == MODEL_OK; s++) {
        st = model_trainer_step(tb, &info, err, sizeof err);
        lb[s] = info.loss;
    }
    if (st == MODEL_OK) st = model_trainer_save(tb, dir, err, sizeof err);
    model_trainer_free(tb);
    model_free(b);
    b = NULL;
    tb = NULL;
    if (st == MODEL_OK) st = model_load(dir, &b, NULL, err, sizeof err);
    if (st == MODEL_OK) st = model_trainer_create(b, db, &tb, err, sizeof err);
    if (st == MODEL_OK) st = model_trainer_resume(tb, dir, err, sizeof err);
    for (int s = N; s < 2 * N && st == MODEL_OK; s++) {
        st = model_trainer_step(tb, &info, err, sizeof err);
        lb[s] = info.loss;
    }
    snprintf(name, sizeof name, "resume/%s/same_losses", attn_variant_name(v));
    CHECK(st == MODEL_OK && !memcmp(la, lb, sizeof la), name, "%s (last %.17g vs %.17g)", st ? err : "losses differ",
          la[2 * N - 1], lb[2 * N - 1]);
    snprintf(name, sizeof name, "resume/%s/same_weights", attn_variant_name(v));
    CHECK(st == MODEL_OK && same_params(a, b), name, "%s", st ? err : "weights differ");
    snprintf(name, sizeof name, "resume/%s/loss_falls", attn_variant_name(v));
    CHECK(la[2 * N - 1] < la[0], name, "loss %.4f -> %.4f", la[0], la[2 * N - 1]);
    model_trainer_free(ta);
    model_trainer_free(tb);
    model_free(a);
    model_free(b);
    model_data_free(da);
    model_data_free(db);
}

static void test_resume_inconsistent(void) {
    /* weights from one step, optimizer from another */
    char d1[300], d2[300], err[512], p1[400], p2[400];
    path_in(d1, sizeof d1, "resume_dma");
    path_in(d2, sizeof d2, "resume_mix");
    model *m = tiny_model(ATTN_DMA, 6, 2);
    model_status st = model_save(m, d2, 1, err, sizeof err);
    snprintf(p1, sizeof p1, "%s/optimizer.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/optimizer.safetensors", d2);
    FILE *in = fopen(p1, "rb"), *out = fopen(p2, "wb");
    int ch;
    while (in && out && (ch = fgetc(in)) != EOF) fputc(ch, out);
    if (in) fclose(in);
    if (out) fclose(out);
    model_free(m);
    m = NULL;
    model_data *d = byte_source(9);
    model_trainer *t = NULL;
    if (st == MODEL_OK) st = model_load(d2, &m, NULL, err, sizeof err);
    if (st == MODEL_OK) st = model_trainer_create(m, d, &t, err, sizeof err);
    if (st == MODEL_OK) st = model_trainer_resume(t, d2, err, sizeof err);
    CHECK(st != MODEL_OK && strstr(err, "inconsistent"), "resume/inconsistent_checkpoint", "%s", st ? err : "accepted");
    model_trainer_free(t);
    model_free(m);
    model_data_free(d);
}

/* ---- decoding ---- */

static void test_decode(attn_variant v) {
    char name[120], err[512];
    model *m = tiny_model(v, 1, 1);
    tiny_randomize(m, 21, 0.35);
    const int P = 9, G = 14, V = 32; /* 23 tokens: past dma's keep window 6 and swa's 5 */
    int32_t seq[64];
    tiny_batch(4, 1, P, V, seq, NULL);
    model_gen_opts o = {.max_new = G, .temperature = 0, .top_k = 0, .seed = 1, .stop_token = -1};
    int n_out = 0;
    float *sl = malloc((size_t)G * V * sizeof(float));
    model_status st = model_generate(m, seq, P, &o, seq + P, &n_out, sl, err, sizeof err);
    snprintf(name, sizeof name, "decode/%s/generate", attn_variant_name(v));
    CHECK(st == MODEL_OK && n_out == G, name, "%s (got %d tokens)", st ? err : "short", n_out);
    /* recompute every step with the full forward */
    float *full = malloc((size_t)(P + G) * V * sizeof(float));
    int same_tok = 1;
    double maxd = 0, maxv = 0;
    for (int i = 0; i < G && st == MODEL_OK; i++) {
        int L = P + i;
        st = model_logits(m, seq, 1, L, full, err, sizeof err);
        const float *last = full + (size_t)(L - 1) * V, *inc = sl + (size_t)i * V;
        int best = 0;
        for (int j = 0; j < V; j++) {
            if (last[j] > last[best]) best = j;
            double d = fabs((double)last[j] - inc[j]);
            if (d > maxd) maxd = d;
            if (fabs(last[j]) > maxv) maxv = fabs(last[j]);
        }
        if (best != seq[P + i]) same_tok = 0;
    }
    printf("# decode %s: tokens", attn_variant_name(v));
    for (int i = 0; i < G; i++) printf(" %d", seq[P + i]);
    printf("; max |cached - full| logit %.3g\n", maxd);
    snprintf(name, sizeof name, "decode/%s/greedy_tokens_match_full_forward", attn_variant_name(v));
    CHECK(st == MODEL_OK && same_tok, name, "%s", st ? err : "a greedy token differs");
    snprintf(name, sizeof name, "decode/%s/logits_match_full_forward", attn_variant_name(v));
    CHECK(st == MODEL_OK && maxd <= 1e-5 * (1 + maxv), name, "max |diff| %.3g (scale %.3g)", maxd, maxv);
    /* batched greedy with chunked prefill gives the same tokens */
    int32_t prompts[2 * 9], outb[2 * 14];
    memcpy(prompts, seq, 9 * sizeof(int32_t));
    memcpy(prompts + 9, seq, 9 * sizeof(int32_t));
    st = model_greedy_batch(m, prompts, 2, P, G, outb, err, sizeof err);
    snprintf(name, sizeof name, "decode/%s/batch_greedy", attn_variant_name(v));
    CHECK(st == MODEL_OK && !memcmp(outb, seq + P, G * sizeof(int32_t)) && !memcmp(outb + G, seq + P, G * sizeof(int32_t)),
          name, "%s", st ? err : "tokens differ");
    /* sampling is reproducible from the seed */
    int32_t s1[14], s2[14];
    int n1 = 0, n2 = 0;
    o.temperature = 0.8, o.top_k = 5, o.seed = 77;
    model_generate(m, seq, P, &o, s1, &n1, NULL, err, sizeof err);
    model_generate(m, seq, P, &o, s2, &n2, NULL, err, sizeof err);
    snprintf(name, sizeof name, "decode/%s/sampling_seeded", attn_variant_name(v));
    CHECK(n1 == G && n2 == G && !memcmp(s1, s2, sizeof s1), name, "two seeded samples differ");
    free(sl);
    free(full);
    model_free(m);
}

/* ---- schedules, data ---- */

static void test_schedule(void) {
    model_train_config t;
    model_config c;
    model_config_default(&c);
    t = c.train;
    t.steps = 100, t.warmup = 10, t.lr = 1.0, t.min_lr_ratio = 0.1;
    t.schedule = SCHED_COSINE;
    int ok = fabs(model_lr_at(&t, 0) - 0.1) < 1e-12 && fabs(model_lr_at(&t, 9) - 1.0) < 1e-12 &&
             fabs(model_lr_at(&t, 10) - 1.0) < 1e-12 && fabs(model_lr_at(&t, 55) - 0.55) < 1e-12 &&
             model_lr_at(&t, 99) > 0.1 && model_lr_at(&t, 99) < 0.101;
    CHECK(ok, "schedule/cosine", "lr(0)=%g lr(10)=%g lr(55)=%g lr(99)=%g", model_lr_at(&t, 0), model_lr_at(&t, 10),
          model_lr_at(&t, 55), model_lr_at(&t, 99));
    t.schedule = SCHED_WSD, t.decay_frac = 0.2;
    ok = model_lr_at(&t, 79) == 1.0 && fabs(model_lr_at(&t, 89) - 0.55) < 1e-12 && fabs(model_lr_at(&t, 99) - 0.1) < 1e-12;
    CHECK(ok, "schedule/wsd", "lr(79)=%g lr(89)=%g lr(99)=%g", model_lr_at(&t, 79), model_lr_at(&t, 89),
          model_lr_at(&t, 99));
}

static void test_data(void) {
    char err[512], p[400];
    int32_t ids[2 * 5], lab[2 * 5], ids2[2 * 5], lab2[2 * 5];
    model_data *d = byte_source(4);
    int ok = d && !d->get_batch(d, 3, 2, 5, ids, lab, err, sizeof err) &&
             !d->get_batch(d, 3, 2, 5, ids2, lab2, err, sizeof err) && !memcmp(ids, ids2, sizeof ids);
    for (int i = 0; ok && i < 2; i++)
        for (int t = 0; t < 4; t++) ok = lab[i * 5 + t] == ids[i * 5 + t + 1];
    CHECK(ok, "data/bytes", "batches not deterministic or labels not shifted ids");
    model_data_free(d);
    /* a safetensors token file without labels, then with */
    int32_t tok[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int64_t shp[2] = {3, 4};
    st_file f;
    st_file_init(&f);
    st_file_add(&f, "input_ids", ST_I32, 2, shp, tok, ST_COPY, err, sizeof err);
    path_in(p, sizeof p, "tok.safetensors");
    st_write(p, &f, err, sizeof err);
    d = NULL;
    int rc = model_data_open(p, 1, &d, err, sizeof err);
    ok = rc == 0 && d->vocab_needed == 13 && !d->get_batch(d, 0, 3, 4, ids, lab, err, sizeof err);
    /* one epoch covers every row once; labels are the next id, -100 at the end */
    int seen = 0;
    for (int b = 0; ok && b < 3; b++) {
        seen |= 1 << ((ids[b * 4] - 1) / 4);
        ok = lab[b * 4] == ids[b * 4] + 1 && lab[b * 4 + 3] == MODEL_IGNORE;
    }
    CHECK(ok && seen == 7, "data/safetensors", "%s", rc ? err : "rows or labels wrong");
    model_data_free(d);
    int64_t bad[2] = {0, 0};
    st_file_free(&f);
    st_file_init(&f);
    st_file_add(&f, "labels", ST_I64, 1, (int64_t[]){2}, bad, ST_COPY, err, sizeof err);
    st_write(p, &f, err, sizeof err);
    rc = model_data_open(p, 1, &d, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "no tensor 'input_ids'"), "data/safetensors_no_ids", "%s", err);
    st_file_free(&f);
    rc = model_data_open("/nonexistent/data.bin", 1, &d, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "cannot open data"), "data/missing_file", "%s", err);
    /* vocabulary mismatch between data and model */
    model *m = tiny_model(ATTN_MHA, 1, 1);
    d = NULL;
    unsigned char big[64];
    for (int i = 0; i < 64; i++) big[i] = (unsigned char)(i * 4);
    model_data_bytes_from_memory(big, sizeof big, 1, &d, err, sizeof err);
    model_trainer *t = NULL;
    model_status st = model_trainer_create(m, d, &t, err, sizeof err);
    CHECK(st == MODEL_ERR_CONFIG && strstr(err, "vocab_size is 32"), "data/vocab_mismatch", "%s", err);
    model_trainer_free(t);
    model_data_free(d);
    model_free(m);
}

/* ---- gradient accumulation weighted by counted tokens ---- */

/* Rows of a fixed table: batch i takes rows i * bs .. i * bs + bs - 1. */
typedef struct {
    int rows, T;
    int32_t *ids, *labels;
} rows_src;

static int rows_get(model_data *d, int64_t i, int bs, int ctx, int32_t *ids, int32_t *labels, char *err,
                    size_t err_len) {
    rows_src *s = d->ctx;
    if (ctx != s->T || (i + 1) * bs > s->rows) {
        snprintf(err, err_len, "no batch %lld of %d x %d", (long long)i, bs, ctx);
        return -1;
    }
    memcpy(ids, s->ids + (size_t)i * bs * ctx, (size_t)bs * ctx * sizeof(int32_t));
    memcpy(labels, s->labels + (size_t)i * bs * ctx, (size_t)bs * ctx * sizeof(int32_t));
    return 0;
}

/* Largest |a - b| over the largest |b|, per tensor; the worst tensor. */
static double worst_rel(const model *m, const float *a, const float *b, const char **which) {
    double worst = 0;
    for (int i = 0; i < model_num_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        double d = 0, mx = 0;
        for (size_t e = 0; e < t->numel; e++) {
            double x = a[t->offset + e], y = b[t->offset + e];
            if (fabs(x - y) > d) d = fabs(x - y);
            if (fabs(y) > mx) mx = fabs(y);
        }
        double r = mx > 0 ? d / mx : d;
        if (r > worst) worst = r, *which = t->name;
    }
    return worst;
}

/* K micro-batches whose counted label positions differ (MQAR-like: most
 * labels ignored in some) make one step equal to a single step on their
 * concatenation: the same loss, gradients and updated parameters. */
static void test_accum_weighting(void) {
    enum { K = 3, BS = 2, T = 16 };
    static int32_t ids[K * BS * T], labels[K * BS * T];
    tiny_batch(41, K * BS, T, 32, ids, labels);
    tiny_distinct_ids(42, K * BS, T, 32, ids); /* no exact ties in dma's scores (model_tiny.h) */
    /* micro-batch 0: every label counts; 1: every 5th ignored (tiny_batch);
     * 2: only 3 positions count */
    for (int i = 0; i < BS * T; i++)
        if (labels[i] == MODEL_IGNORE) labels[i] = (i * 7) % 32;
    for (int i = 2 * BS * T; i < 3 * BS * T; i++)
        if (i % 11 != 4) labels[i] = MODEL_IGNORE;
    rows_src src = {K * BS, T, ids, labels};
    model_data d = {.get_batch = rows_get, .vocab_needed = 32, .max_context = T, .ctx = &src};
    model *ma = NULL, *mb = NULL;
    model_trainer *ta = NULL, *tb = NULL;
    char err[512] = "";
    model_status st = MODEL_OK;
    model_step_info ia = {0}, ib = {0};
    for (int pass = 0; pass < 2 && st == MODEL_OK; pass++) {
        model_config c;
        tiny_config(&c, ATTN_DMA);
        c.train.steps = 2, c.train.warmup = 0, c.train.lr = 1e-3, c.train.clip = 0;
        c.train.batch_size = pass ? K * BS : BS;
        c.train.grad_accum = pass ? 1 : K;
        model **mp = pass ? &mb : &ma;
        model_trainer **tp = pass ? &tb : &ta;
        st = model_create(&c, mp, err, sizeof err);
        if (st == MODEL_OK) tiny_randomize(*mp, 5, 0.3);
        if (st == MODEL_OK) st = model_trainer_create(*mp, &d, tp, err, sizeof err);
        if (st == MODEL_OK) st = model_trainer_step(*tp, pass ? &ib : &ia, err, sizeof err);
    }
    CHECK(st == MODEL_OK, "accum/steps", "%s", err);
    if (st == MODEL_OK) {
        double lrel = fabs(ia.loss - ib.loss) / fabs(ib.loss);
        CHECK(lrel < 1e-5 && ia.label_tokens == ib.label_tokens, "accum/same_loss",
              "loss %.9g vs %.9g (%lld vs %lld tokens)", ia.loss, ib.loss, (long long)ia.label_tokens,
              (long long)ib.label_tokens);
        const char *gw = "", *pw = "";
        double g = worst_rel(ma, model_grads(ma), model_grads(mb), &gw);
        double p = worst_rel(ma, model_params(ma), model_params(mb), &pw);
        printf("# accum: %lld counted tokens; gradients %.2e (%s), parameters %.2e (%s)\n",
               (long long)ib.label_tokens, g, gw, p, pw);
        CHECK(g < 1e-5, "accum/same_gradients", "relative difference %.3g in %s", g, gw);
        CHECK(p < 1e-5, "accum/same_parameters", "relative difference %.3g in %s", p, pw);
    }
    /* validation over the K batches is the token-weighted loss of all the rows */
    if (st == MODEL_OK) {
        static float losses[K * BS * T];
        double ev = 0, whole = 0;
        int64_t nev = 0, nwhole = 0;
        st = model_evaluate(ma, &d, 0, K, BS, T, &ev, &nev, err, sizeof err);
        if (st == MODEL_OK)
            st = model_token_losses(ma, ids, labels, K * BS, T, losses, &whole, &nwhole, NULL, err, sizeof err);
        CHECK(st == MODEL_OK && nev == nwhole && nev == 60 && fabs(ev - whole) <= 1e-6 * fabs(whole),
              "accum/evaluate_token_weighted", "%s: %.9g (%lld tokens) vs %.9g (%lld)", st ? err : "differ", ev,
              (long long)nev, whole, (long long)nwhole);
        st = model_evaluate(ma, &d, 2, 2, BS, T, &ev, &nev, err, sizeof err);
        CHECK(st == MODEL_ERR_DATA && strstr(err, "batch 3"), "accum/evaluate_data_error", "%s", err);
    }
    model_trainer_free(ta);
    model_trainer_free(tb);
    model_free(ma);
    model_free(mb);
}

/* The head and the loss over the labelled rows alone (at most half labelled, as
 * in MQAR) against every row (DMABENCH_HEAD_ALL_ROWS=1): the same training, step
 * for step, to rounding. */
static void test_sparse_head(void) {
    enum { K = 20, BS = 2, T = 16 };
    static int32_t ids[K * BS * T], labels[K * BS * T];
    tiny_batch(43, K * BS, T, 32, ids, labels);
    for (int i = 0; i < K * BS * T; i++)
        if (i % 5 != 2) labels[i] = MODEL_IGNORE; /* tiny_batch ignores i % 5 == 3 */
    rows_src src = {K * BS, T, ids, labels};
    model_data d = {.get_batch = rows_get, .vocab_needed = 32, .max_context = T, .ctx = &src};
    model *mm[2] = {NULL, NULL};
    model_trainer *tt[2] = {NULL, NULL};
    char err[512] = "";
    model_status st = MODEL_OK;
    double loss[2][K], worst = 0;
    for (int pass = 0; pass < 2 && st == MODEL_OK; pass++) {
        if (pass) setenv("DMABENCH_HEAD_ALL_ROWS", "1", 1);
        model_config c;
        tiny_config(&c, ATTN_MHA);
        c.train.steps = K, c.train.warmup = 2, c.train.lr = 3e-3;
        c.train.batch_size = BS;
        st = model_create(&c, &mm[pass], err, sizeof err);
        if (st == MODEL_OK) tiny_randomize(mm[pass], 7, 0.3);
        if (st == MODEL_OK) st = model_trainer_create(mm[pass], &d, &tt[pass], err, sizeof err);
        for (int k = 0; k < K && st == MODEL_OK; k++) {
            model_step_info info = {0};
            st = model_trainer_step(tt[pass], &info, err, sizeof err);
            loss[pass][k] = info.loss;
        }
        unsetenv("DMABENCH_HEAD_ALL_ROWS");
    }
    CHECK(st == MODEL_OK, "sparse_head/steps", "%s", err);
    if (st == MODEL_OK) {
        for (int k = 0; k < K; k++) {
            double r = fabs(loss[0][k] - loss[1][k]) / fabs(loss[1][k]);
            if (r > worst) worst = r;
        }
        const char *pw = "";
        double p = worst_rel(mm[0], model_params(mm[0]), model_params(mm[1]), &pw);
        printf("# sparse head: %d steps, losses within %.2e, parameters within %.2e (%s)\n", K, worst, p, pw);
        CHECK(worst < 1e-5 && loss[0][0] > 0 && isfinite(loss[0][K - 1]), "sparse_head/same_losses",
              "relative difference %.3g; loss %.4f -> %.4f", worst, loss[0][0], loss[0][K - 1]);
        CHECK(p < 1e-4, "sparse_head/same_parameters", "relative difference %.3g in %s", p, pw);
    }
    for (int i = 0; i < 2; i++) {
        model_trainer_free(tt[i]);
        model_free(mm[i]);
    }
}

/* nsa where each branch it keeps sees every key, and the one it cannot keep sees
 * none, is dense attention: with the gate weights at zero every gate is 1/2, the
 * compressed branch has no block yet (l > T), the selection takes every block
 * (n l' >= T) and the window every key (w >= T), so its output is A/2 + A/2 = A,
 * mha's. The same weights in both models (nsa's gate weights zero) give the same
 * loss and the same gradient for every tensor mha has. */
/* nsa where it must equal mha, from the same weights: with a window over every key,
 * mode 0: learned gates at zero weight (0.5 each), no compressed block, every block
 *         selected: 0.5 O_slc + 0.5 O_win = O;
 * mode 1: gates fixed to (0, 0, 1), with the tiny config's compressed blocks and
 *         selection active: only the window branch counts;
 * mode 2: gates fixed to (0, 0.5, 0.5), no compressed block, every block selected. */
static void test_nsa_dense_limit(int mode) {
    static const char *names[3] = {"nsa_dense_limit/same_loss_and_gradients", "nsa_dense_limit/fixed_window_gate",
                                   "nsa_dense_limit/fixed_half_gates"};
    model_config cm, cn;
    tiny_config(&cm, ATTN_MHA);
    tiny_config(&cn, ATTN_NSA);
    const int B = cm.train.batch_size, T = cm.train.context;
    cn.window = T;
    if (mode != 1) {
        cn.nsa_l = cn.nsa_d = T + 1;
        cn.nsa_ls = 4, cn.nsa_n = T / 4;
    }
    static const float gates[3][3] = {{0, 0, 0}, {0, 0, 1}, {0, 0.5f, 0.5f}};
    if (mode) {
        cn.nsa_gates_fixed = 1;
        memcpy(cn.nsa_gates, gates[mode], sizeof cn.nsa_gates);
    }
    char err[256];
    model *a = NULL, *b = NULL;
    int ok = model_create(&cm, &a, err, sizeof err) == MODEL_OK && model_create(&cn, &b, err, sizeof err) == MODEL_OK;
    if (!ok) {
        CHECK(0, names[mode], "model_create: %s", err);
        model_free(a);
        model_free(b);
        return;
    }
    tiny_randomize(a, 21, 0.3);
    memset(model_params(b), 0, model_params_len(b) * sizeof(float));
    int missing = 0;
    for (int i = 0; i < model_num_tensors(a); i++) {
        const model_tensor *ta = model_tensor_at(a, i), *tb = model_find_tensor(b, ta->name);
        if (!tb || tb->numel != ta->numel) {
            missing++;
            continue;
        }
        memcpy(model_params(b) + tb->offset, model_params(a) + ta->offset, ta->numel * sizeof(float));
    }
    int32_t ids[64], labels[64];
    tiny_batch(5, B, T, cm.vocab_size, ids, labels);
    double la = 0, lb = 0;
    model_zero_grads(a);
    model_zero_grads(b);
    ok = model_forward_backward(a, ids, labels, B, T, 1.0, &la, err, sizeof err) == MODEL_OK &&
         model_forward_backward(b, ids, labels, B, T, 1.0, &lb, err, sizeof err) == MODEL_OK;
    double worst = 0;
    const char *wname = "";
    for (int i = 0; ok && i < model_num_tensors(a); i++) {
        const model_tensor *ta = model_tensor_at(a, i), *tb = model_find_tensor(b, ta->name);
        if (!tb) continue;
        double d = 0, mx = 1e-6;
        for (size_t e = 0; e < ta->numel; e++) {
            d = fmax(d, fabs((double)model_grads(a)[ta->offset + e] - model_grads(b)[tb->offset + e]));
            mx = fmax(mx, fabs((double)model_grads(a)[ta->offset + e]));
        }
        if (d / mx > worst) worst = d / mx, wname = ta->name;
    }
    CHECK(ok && !missing && fabs(la - lb) <= 1e-6 * la && worst <= 1e-5, names[mode],
          "%s%d of mha's tensors missing in nsa; loss mha %.9f nsa %.9f; worst gradient %s at %.2e", ok ? "" : err,
          missing, la, lb, wname, worst);
    model_free(a);
    model_free(b);
}

int main(void) {
    model_set_threads(2);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dmabench_test_model_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("not ok - setup: cannot make a temporary folder\n");
        return 1;
    }
    test_config();
    test_init();
    test_layout();
    test_schedule();
    test_data();
    test_overfit();
    test_checkpoint(ATTN_DMA);
    test_checkpoint(ATTN_MHA);
    test_checkpoint(ATTN_NSA);
    test_bad_checkpoints();
    test_resume(ATTN_DMA);
    test_resume(ATTN_NSA);
    test_resume_inconsistent();
    test_accum_weighting();
    test_sparse_head();
    for (int mode = 0; mode < 3; mode++) test_nsa_dense_limit(mode);
    for (int v = 0; v < ATTN_NVARIANTS; v++) test_decode((attn_variant)v);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    return check_exit();
}
