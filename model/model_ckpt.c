/*
 * model_ckpt.c: checkpoints. DIR/config.json (HF DogeConfig keys + our blocks),
 * DIR/model.safetensors (HF Doge tensor names, F32) and, for training,
 * DIR/optimizer.safetensors (AdamW moments, step, data position). Every file
 * is written atomically; loading checks every tensor's presence, shape, dtype
 * and finiteness against the config, with one line naming the problem.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "safetensors.h"

static int join(char *out, size_t n, const char *dir, const char *file) {
    int k = snprintf(out, n, "%s/%s", dir, file);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

static model_status ensure_dir(const char *dir, char *err, size_t err_len) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return model_errf(MODEL_ERR_IO, err, err_len, "'%s' exists and is not a folder", dir);
        return MODEL_OK;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return model_errf(MODEL_ERR_IO, err, err_len, "cannot create folder '%s': %s", dir, strerror(errno));
    return MODEL_OK;
}

/* Writes text atomically: path.tmp.<pid>, fsync, rename. */
static model_status write_text_atomic(const char *path, const char *text, char *err, size_t err_len) {
    char tmp[4200];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= sizeof tmp) return model_errf(MODEL_ERR_IO, err, err_len, "path too long: '%s'", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return model_errf(MODEL_ERR_IO, err, err_len, "cannot write '%s': %s", path, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return model_errf(MODEL_ERR_IO, err, err_len, "cannot write '%s': %s", path, strerror(e));
    }
    return MODEL_OK;
}

/* ---- model ---- */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static int is_dt_or_a(const char *name) {
    return ends_with(name, ".self_attn.dt_proj.weight") || ends_with(name, ".self_attn.A");
}

model_status model_save(const model *m, const char *dir, int64_t step, char *err, size_t err_len) {
    char path[4096], e[512];
    model_status st = ensure_dir(dir, err, err_len);
    if (st != MODEL_OK) return st;
    char *json = model_config_to_json(&m->cfg);
    if (!json) return model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    if (join(path, sizeof path, dir, "config.json")) {
        free(json);
        return model_errf(MODEL_ERR_IO, err, err_len, "path too long: '%s'", dir);
    }
    st = write_text_atomic(path, json, err, err_len);
    free(json);
    if (st != MODEL_OK) return st;

    st_file f;
    st_file_init(&f);
    float *zeros = NULL;
    int hf_doge = m->cfg.variant == ATTN_MHA || m->cfg.variant == ATTN_SWA;
    for (int i = 0; i < m->nt && st == MODEL_OK; i++) {
        const model_tensor *t = &m->t[i];
        if (st_file_add(&f, t->name, ST_F32, t->ndim, t->shape, m->p + t->offset, ST_BORROW, e, sizeof e) != ST_OK)
            st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    }
    if (st == MODEL_OK && hf_doge) {
        /* mha / swa as a Doge checkpoint: A = 0 and dt_proj = 0 give z = 1 for every
         * key, a constant logit shift, so HF's Doge computes exactly this attention */
        size_t nz = (size_t)m->K * m->KD;
        zeros = calloc(nz, sizeof(float));
        if (!zeros) st = model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
        for (int l = 0; l < m->L && st == MODEL_OK; l++) {
            char nm[96];
            int64_t s2[2] = {m->K, m->KD}, s1[1] = {m->K};
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.dt_proj.weight", l);
            if (st_file_add(&f, nm, ST_F32, 2, s2, zeros, ST_BORROW, e, sizeof e) != ST_OK)
                st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.A", l);
            if (st == MODEL_OK && st_file_add(&f, nm, ST_F32, 1, s1, zeros, ST_BORROW, e, sizeof e) != ST_OK)
                st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
        }
    }
    char sv[32];
    snprintf(sv, sizeof sv, "%" PRId64, step);
    if (st == MODEL_OK &&
        (st_file_set_meta(&f, "format", "pt", e, sizeof e) != ST_OK ||
         st_file_set_meta(&f, "dmabench_step", sv, e, sizeof e) != ST_OK ||
         st_file_set_meta(&f, "dmabench_variant", attn_variant_name(m->cfg.variant), e, sizeof e) != ST_OK))
        st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    if (st == MODEL_OK && join(path, sizeof path, dir, "model.safetensors"))
        st = model_errf(MODEL_ERR_IO, err, err_len, "path too long: '%s'", dir);
    if (st == MODEL_OK && st_write(path, &f, e, sizeof e) != ST_OK) st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    st_file_free(&f);
    free(zeros);
    return st;
}

static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

/* Checks and converts one tensor of f to floats into dst (numel of t). */
static model_status load_tensor(const st_file *f, const char *path, const char *name, int ndim,
                                const int64_t *shape, float *dst, size_t numel, char *err, size_t err_len) {
    char e[512];
    const st_tensor *st = st_file_find(f, name);
    if (!st) return model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': tensor '%s' is missing", path, name);
    if (st->dtype != ST_F32 && st->dtype != ST_F16 && st->dtype != ST_BF16)
        return model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': tensor '%s' is %s; expected F32 (or F16, BF16)", path,
                     name, st_dtype_name(st->dtype));
    if (st_tensor_check_shape(st, ndim, shape, e, sizeof e) != ST_OK)
        return model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': %s (from the config)", path, e);
    float *tmp = NULL;
    if (st_tensor_to_f32(st, &tmp, e, sizeof e) != ST_OK) return model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': %s", path, e);
    for (size_t i = 0; i < numel; i++)
        if (!isfinite(tmp[i])) {
            free(tmp);
            return model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': tensor '%s' holds NaN or Inf (element %zu)", path,
                         name, i);
        }
    memcpy(dst, tmp, numel * sizeof(float));
    free(tmp);
    return MODEL_OK;
}

model_status model_load_weights(model *m, const char *path, int64_t *step, char *err, size_t err_len) {
    char e[512];
    st_file f;
    st_file_init(&f);
    if (st_read(path, &f, e, sizeof e) != ST_OK) {
        st_file_free(&f);
        return model_errf(strstr(e, "cannot open") ? MODEL_ERR_IO : MODEL_ERR_FORMAT, err, err_len, "%s", e);
    }
    model_status st = MODEL_OK;
    float *buf = attn_calloc(m->np, sizeof(float)); /* all or nothing: m is untouched on error */
    if (!buf) st = model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    for (int i = 0; i < m->nt && st == MODEL_OK; i++) {
        const model_tensor *t = &m->t[i];
        st = load_tensor(&f, path, t->name, t->ndim, t->shape, buf + t->offset, t->numel, err, err_len);
    }
    /* every tensor of the file must belong to the model */
    for (size_t i = 0; i < f.n_tensors && st == MODEL_OK; i++) {
        const st_tensor *ft = &f.tensors[i];
        if (model_find_tensor(m, ft->name)) continue;
        if (is_dt_or_a(ft->name) && m->cfg.variant != ATTN_DMA) {
            /* a Doge checkpoint of an mha/swa model: dt_proj and A must be zero */
            float *v = NULL;
            if (st_tensor_to_f32(ft, &v, e, sizeof e) != ST_OK) {
                st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': %s", path, e);
                break;
            }
            int64_t n = st_tensor_numel(ft);
            for (int64_t k = 0; k < n; k++)
                if (v[k] != 0) {
                    st = model_errf(MODEL_ERR_CONFIG, err, err_len,
                               "'%s': tensor '%s' is not zero, so this is a dma model; the config says %s", path,
                               ft->name, attn_variant_name(m->cfg.variant));
                    break;
                }
            free(v);
            continue;
        }
        if (!strcmp(ft->name, "lm_head.weight") && m->cfg.tie_word_embeddings) {
            const model_tensor *et = &m->t[m->emb];
            float *v = NULL;
            if (st_tensor_check_shape(ft, et->ndim, et->shape, e, sizeof e) != ST_OK ||
                st_tensor_to_f32(ft, &v, e, sizeof e) != ST_OK) {
                st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': %s", path, e);
                break;
            }
            if (memcmp(v, buf + et->offset, et->numel * sizeof(float)))
                st = model_errf(MODEL_ERR_CONFIG, err, err_len,
                           "'%s': holds an lm_head.weight of its own but the config ties it to the embeddings "
                           "(tie_word_embeddings: true)",
                           path);
            free(v);
            continue;
        }
        st = model_errf(MODEL_ERR_FORMAT, err, err_len,
                   "'%s': unexpected tensor '%s': not part of a %d-layer %s model with this config", path, ft->name,
                   m->L, attn_variant_name(m->cfg.variant));
    }
    if (st == MODEL_OK) {
        memcpy(m->p, buf, m->np * sizeof(float));
        int64_t s = 0;
        const char *sv = st_file_get_meta(&f, "dmabench_step");
        if (sv && parse_i64(sv, &s)) st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': bad dmabench_step metadata", path);
        if (step) *step = s;
        m->ckpt_step = s;
    }
    attn_free(buf);
    st_file_free(&f);
    return st;
}

model_status model_load(const char *dir, model **out, int64_t *step, char *err, size_t err_len) {
    *out = NULL;
    char path[4096], e[512];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return model_errf(MODEL_ERR_IO, err, err_len, "'%s' is not a model folder (config.json + model.safetensors)", dir);
    if (join(path, sizeof path, dir, "config.json")) return model_errf(MODEL_ERR_IO, err, err_len, "path too long");
    model_config cfg;
    if (model_config_load(path, &cfg, e, sizeof e)) return model_errf(MODEL_ERR_CONFIG, err, err_len, "%s", e);
    model *m = NULL;
    model_status st = model_create(&cfg, &m, err, err_len);
    if (st != MODEL_OK) return st;
    if (join(path, sizeof path, dir, "model.safetensors")) {
        model_free(m);
        return model_errf(MODEL_ERR_IO, err, err_len, "path too long");
    }
    st = model_load_weights(m, path, step, err, err_len);
    if (st != MODEL_OK) {
        model_free(m);
        return st;
    }
    *out = m;
    return MODEL_OK;
}

/* ---- optimizer ---- */

model_status model_adamw_save(const model *m, const model_adamw *o, const char *dir, int64_t data_index, char *err,
                              size_t err_len) {
    char path[4096], e[512], nm[128], sv[32];
    model_status st = ensure_dir(dir, err, err_len);
    if (st != MODEL_OK) return st;
    model_adamw *oo = (model_adamw *)o;
    st_file f;
    st_file_init(&f);
    for (int i = 0; i < m->nt && st == MODEL_OK; i++) {
        const model_tensor *t = &m->t[i];
        snprintf(nm, sizeof nm, "%s.exp_avg", t->name);
        if (st_file_add(&f, nm, ST_F32, t->ndim, t->shape, model_adamw_m1(oo) + t->offset, ST_BORROW, e, sizeof e))
            st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
        snprintf(nm, sizeof nm, "%s.exp_avg_sq", t->name);
        if (st == MODEL_OK &&
            st_file_add(&f, nm, ST_F32, t->ndim, t->shape, model_adamw_m2(oo) + t->offset, ST_BORROW, e, sizeof e))
            st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    }
    snprintf(sv, sizeof sv, "%" PRId64, model_adamw_steps(o));
    if (st == MODEL_OK && (st_file_set_meta(&f, "format", "dmabench-adamw", e, sizeof e) ||
                           st_file_set_meta(&f, "step", sv, e, sizeof e)))
        st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    snprintf(sv, sizeof sv, "%" PRId64, data_index);
    if (st == MODEL_OK && st_file_set_meta(&f, "data_index", sv, e, sizeof e))
        st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    if (st == MODEL_OK && join(path, sizeof path, dir, "optimizer.safetensors"))
        st = model_errf(MODEL_ERR_IO, err, err_len, "path too long");
    if (st == MODEL_OK && st_write(path, &f, e, sizeof e) != ST_OK) st = model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    st_file_free(&f);
    return st;
}

model_status model_adamw_load(const model *m, model_adamw *o, const char *dir, int64_t *data_index, char *err,
                              size_t err_len) {
    char path[4096], e[512], nm[128];
    if (join(path, sizeof path, dir, "optimizer.safetensors")) return model_errf(MODEL_ERR_IO, err, err_len, "path too long");
    st_file f;
    st_file_init(&f);
    if (st_read(path, &f, e, sizeof e) != ST_OK) {
        st_file_free(&f);
        return model_errf(MODEL_ERR_IO, err, err_len, "%s", e);
    }
    model_status st = MODEL_OK;
    const char *fmt = st_file_get_meta(&f, "format");
    int64_t step = 0, di = 0;
    if (!fmt || strcmp(fmt, "dmabench-adamw"))
        st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': not a dmabench optimizer file (metadata format)", path);
    else if (parse_i64(st_file_get_meta(&f, "step"), &step) || step < 0)
        st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': metadata 'step' is missing or not a count", path);
    else if (parse_i64(st_file_get_meta(&f, "data_index"), &di) || di < 0)
        st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': metadata 'data_index' is missing or not a count", path);
    float *m1 = st == MODEL_OK ? attn_calloc(m->np, sizeof(float)) : NULL;
    float *m2 = st == MODEL_OK ? attn_calloc(m->np, sizeof(float)) : NULL;
    if (st == MODEL_OK && (!m1 || !m2)) st = model_errf(MODEL_ERR_OOM, err, err_len, "out of memory");
    for (int i = 0; i < m->nt && st == MODEL_OK; i++) {
        const model_tensor *t = &m->t[i];
        snprintf(nm, sizeof nm, "%s.exp_avg", t->name);
        st = load_tensor(&f, path, nm, t->ndim, t->shape, m1 + t->offset, t->numel, err, err_len);
        snprintf(nm, sizeof nm, "%s.exp_avg_sq", t->name);
        if (st == MODEL_OK) st = load_tensor(&f, path, nm, t->ndim, t->shape, m2 + t->offset, t->numel, err, err_len);
    }
    if (st == MODEL_OK && f.n_tensors != 2 * (size_t)m->nt)
        st = model_errf(MODEL_ERR_FORMAT, err, err_len, "'%s': holds %zu tensors; this model's optimizer has %d", path,
                   f.n_tensors, 2 * m->nt);
    if (st == MODEL_OK) {
        memcpy(model_adamw_m1(o), m1, m->np * sizeof(float));
        memcpy(model_adamw_m2(o), m2, m->np * sizeof(float));
        model_adamw_set_steps(o, step);
        if (data_index) *data_index = di;
    }
    attn_free(m1);
    attn_free(m2);
    st_file_free(&f);
    return st;
}
