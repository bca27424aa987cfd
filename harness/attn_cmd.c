/*
 * attn_cmd.c: `dmabench attn`: runs one attention operator on tensors read from a
 * safetensors file and writes its outputs (and, with --backward, every gradient)
 * to another, so any implementation can be checked against dmabench and back.
 * Tensor names and settings: docs/attn-command.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn_case.h"
#include "cli.h"
#include "commands.h"
#include "registry.h"
#include "safetensors.h"

static void usage(void) {
    printf("usage: dmabench attn --variant V --in IN.safetensors --out OUT.safetensors [options]\n"
           "\n"
           "Reads q, k, v (B, N, H, D) and the variant's inputs, runs the operator, writes o,\n"
           "lse and, with --backward (which needs 'do'), every gradient d<name>.\n"
           "  dma inputs: z (B, Hkv, Nk), or w_dt (Hkv*D, Hkv), a (Hkv) and optional b_dt (Hkv)\n"
           "  nsa inputs: g (B, Nq, Hq, 3); linear compression also w_ck, w_cv (Hkv, l*D, D),\n"
           "              p_k, p_v (Hkv, l, D)\n"
           "\n"
           "options:\n"
           "  --variant V        mha | swa | dma | nsa (required)\n"
           "  --backend B        ref | cpu | cuda (default ref)\n"
           "  --in FILE          input safetensors file (required)\n"
           "  --out FILE         output safetensors file (required; written atomically)\n"
           "  --backward         also run the backward pass with tensor 'do'\n"
           "  --causal           causal, bottom-right aligned (required by swa and nsa)\n"
           "  --scale S          logit scale (default 1/sqrt(D))\n"
           "  --w N              window: swa window, dma keep window, nsa window branch (default 1024)\n"
           "  --dma-mode M       exp | linear (default exp)\n"
           "  --nsa-l N --nsa-d N --nsa-ls N --nsa-n N   NSA block sizes (default 32 16 64 16)\n"
           "  --nsa-cmp C        linear | mean (default linear)\n");
}

static int dtype_from_st(st_dtype t, attn_dtype *out) {
    switch (t) {
    case ST_F32: *out = ATTN_DTYPE_F32; return 0;
    case ST_F16: *out = ATTN_DTYPE_F16; return 0;
    case ST_BF16: *out = ATTN_DTYPE_BF16; return 0;
    default: return -1;
    }
}

static st_dtype st_from_dtype(attn_dtype t) {
    return t == ATTN_DTYPE_F16 ? ST_F16 : t == ATTN_DTYPE_BF16 ? ST_BF16 : ST_F32;
}

/* The settings flags shared by attn and attn-inputs. */
typedef struct {
    int causal;
    long long w, nl, nd, nls, nn;
    double scale;
    dma_mode dmode;
    nsa_cmp ncmp;
} attn_settings;

static int parse_settings(cli_args *a, attn_settings *s) {
    const char *dmode = cli_str(a, "--dma-mode", "exp"), *ncmp = cli_str(a, "--nsa-cmp", "linear");
    s->causal = cli_flag(a, "--causal");
    if (cli_int(a, "--w", 1024, 1, 1 << 30, &s->w) || cli_int(a, "--nsa-l", 32, 1, 1 << 20, &s->nl) ||
        cli_int(a, "--nsa-d", 16, 1, 1 << 20, &s->nd) || cli_int(a, "--nsa-ls", 64, 1, 1 << 20, &s->nls) ||
        cli_int(a, "--nsa-n", 16, 1, 1 << 20, &s->nn) || cli_real(a, "--scale", 0, &s->scale))
        return -1;
    if (strcmp(dmode, "exp") && strcmp(dmode, "linear")) {
        snprintf(a->err, sizeof a->err, "%s: --dma-mode must be exp or linear, got '%s'", a->cmd, dmode);
        return -1;
    }
    if (strcmp(ncmp, "linear") && strcmp(ncmp, "mean")) {
        snprintf(a->err, sizeof a->err, "%s: --nsa-cmp must be linear or mean, got '%s'", a->cmd, ncmp);
        return -1;
    }
    if (!(s->scale >= 0) || !isfinite(s->scale)) {
        snprintf(a->err, sizeof a->err, "%s: --scale must be a positive number", a->cmd);
        return -1;
    }
    s->dmode = strcmp(dmode, "exp") ? DMA_MODE_LINEAR : DMA_MODE_EXP;
    s->ncmp = strcmp(ncmp, "linear") ? NSA_CMP_MEAN : NSA_CMP_LINEAR;
    return 0;
}

static void apply_settings(const attn_settings *s, attn_params *p) {
    p->causal = s->causal;
    if (s->scale > 0) p->scale = s->scale;
    p->w = (int)s->w;
    p->dma_mode = s->dmode;
    p->nsa_cmp = s->ncmp;
    p->nsa_l = (int)s->nl, p->nsa_d = (int)s->nd, p->nsa_ls = (int)s->nls, p->nsa_n = (int)s->nn;
}

/* One line on stderr, prefixed with the command's name (attn or attn-inputs). */
#define DIE(code, ...)                             \
    do {                                           \
        fprintf(stderr, "dmabench %s: ", a.cmd);   \
        fprintf(stderr, __VA_ARGS__);              \
        fprintf(stderr, "\n");                     \
        rc = code;                                 \
        goto done;                                 \
    } while (0)

/* 1 when a and b name the same file (the same path, or the same inode). */
static int same_file(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Why a tensor of the input file is not read: not an input of the variant at
 * all, an input only under other settings, or a gradient input (do) that only
 * --backward reads. */
static void unused_reason(const attn_slot *s, attn_variant v, const attn_params *p, char *why, size_t len) {
    const char *vn = attn_variant_name(v);
    if (!s || s->kind != SLOT_INPUT) {
        snprintf(why, len, "not an input of %s", vn);
        return;
    }
    if (!strcmp(s->name, "do")) {
        snprintf(why, len, "a gradient input, used only with --backward");
        return;
    }
    /* used by this variant under some other settings? */
    attn_params q = *p;
    int other = 0;
    for (int cmp = 0; cmp < 2 && !other; cmp++) {
        q.nsa_cmp = cmp ? NSA_CMP_MEAN : NSA_CMP_LINEAR;
        for (int wdt = 0; wdt < 2 && !other; wdt++) other = attn_slot_used(s, v, &q, wdt, wdt);
    }
    if (!other) snprintf(why, len, "not an input of %s", vn);
    else if (v == ATTN_NSA && p->nsa_cmp == NSA_CMP_MEAN)
        snprintf(why, len, "not used by %s with these settings (--nsa-cmp mean)", vn);
    else snprintf(why, len, "not used by %s with these settings", vn);
}

int cmd_attn(int argc, char **argv) {
    cli_args a;
    int rc = 0;
    st_file in, outf;
    st_file_init(&in);
    st_file_init(&outf);
    attn_case c = {0};
    char err[512];
    if (cli_parse(&a, "attn", argc, argv, 2, "--help --backward --causal") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    const char *vname = cli_str2(&a, "--variant", "--variants", NULL), *bname = cli_str(&a, "--backend", "ref");
    const char *inp = cli_str(&a, "--in", NULL), *outp = cli_str(&a, "--out", NULL);
    int backward = cli_flag(&a, "--backward");
    attn_settings set;
    if (parse_settings(&a, &set) || cli_finish(&a)) DIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    attn_variant v;
    attn_backend b;
    if (!vname) DIE(2, "--variant is required (mha, swa, dma or nsa)");
    if (attn_variant_parse(vname, &v)) DIE(2, "unknown variant '%s' (known: mha, swa, dma, nsa)", vname);
    if (attn_backend_parse(bname, &b)) DIE(2, "unknown backend '%s' (known: ref, cpu, cuda)", bname);
    const attn_op *op = attn_registry_find(v, b);
    if (!op) DIE(2, "backend '%s' of %s is not built into this binary", bname, vname);
    if (!inp || !outp) DIE(2, "--in and --out are required");
    if (same_file(inp, outp)) DIE(2, "--out '%s' is the input file: write the outputs to another file", outp);

    if (st_read(inp, &in, err, sizeof err) != ST_OK) DIE(2, "%s", err);
    const st_tensor *tq = st_file_find(&in, "q"), *tk = st_file_find(&in, "k"), *tv = st_file_find(&in, "v");
    if (!tq || !tk || !tv) DIE(2, "%s: tensors q, k and v are required", inp);
    if (tq->ndim != 4 || tk->ndim != 4)
        DIE(2, "q and k must be 4-d (B, N, H, D); got %d-d and %d-d", tq->ndim, tk->ndim);
    attn_dtype dt;
    if (dtype_from_st(tq->dtype, &dt)) DIE(2, "q is %s: use F32, F16 or BF16", st_dtype_name(tq->dtype));
    for (int i = 0; i < 4; i++)
        if (tq->shape[i] < 1 || tk->shape[i] < 1 || tq->shape[i] > (1 << 30) || tk->shape[i] > (1 << 30))
            DIE(2, "q and k dims must be in 1..2^30");
    if (tk->shape[0] != tq->shape[0] || tk->shape[3] != tq->shape[3])
        DIE(2, "k has shape (%lld,%lld,%lld,%lld): batch and head dim must match q's (%lld, ..., %lld)",
            (long long)tk->shape[0], (long long)tk->shape[1], (long long)tk->shape[2], (long long)tk->shape[3],
            (long long)tq->shape[0], (long long)tq->shape[3]);

    attn_params sh;
    attn_params_init(&sh, (int)tq->shape[0], (int)tq->shape[1], (int)tk->shape[1], (int)tq->shape[2],
                     (int)tk->shape[2], (int)tq->shape[3], dt, set.causal);
    apply_settings(&set, &sh);
    int wdt = st_file_find(&in, "w_dt") != NULL, bias = st_file_find(&in, "b_dt") != NULL;
    if (v == ATTN_DMA && wdt && st_file_find(&in, "z")) DIE(2, "give dma either z or w_dt and a, not both");
    if (v == ATTN_DMA && !wdt && !st_file_find(&in, "z")) DIE(2, "dma needs tensor z, or w_dt and a");
    if (v == ATTN_DMA && bias && !wdt) DIE(2, "b_dt is given without w_dt");

    attn_status st = attn_case_alloc(&c, v, &sh, wdt, bias, backward);
    if (st != ATTN_OK) DIE(1, "cannot allocate the tensors: %s", attn_status_str(st));

    /* every input the variant uses must be there, of the right shape, finite */
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind != SLOT_INPUT || !c.buf[i]) continue;
        const st_tensor *t = st_file_find(&in, s->name);
        if (!t) DIE(2, "%s: tensor '%s' is required%s", inp, s->name, !strcmp(s->name, "do") ? " by --backward" : "");
        int64_t dims[4];
        int nd_ = attn_slot_shape(s, &sh, v, dims);
        if (st_tensor_check_shape(t, nd_, dims, err, sizeof err) != ST_OK) DIE(2, "%s", err);
        if (!s->aux && t->dtype != tq->dtype)
            DIE(2, "tensor '%s' is %s but q is %s: q, k, v and do share one dtype", s->name,
                st_dtype_name(t->dtype), st_dtype_name(tq->dtype));
        float *x;
        if (st_tensor_to_f32(t, &x, err, sizeof err) != ST_OK) DIE(2, "%s", err);
        int64_t n = attn_slot_numel(s, &sh, v);
        for (int64_t e = 0; e < n; e++) {
            if (!isfinite(x[e])) {
                const char *what = isnan(x[e]) ? "NaN" : "Inf";
                free(x);
                DIE(2, "tensor '%s' holds %s at element %lld", s->name, what, (long long)e);
            }
            attn_case_set(&c, s, e, x[e]);
        }
        free(x);
    }
    if (!op->supports(&c.p, backward, err, sizeof err)) DIE(2, "%s %s cannot run this: %s", vname, bname, err);
    if ((st = op->forward(&c.p)) != ATTN_OK) DIE(1, "%s forward failed: %s", vname, attn_status_str(st));
    if (backward && (st = op->backward(&c.p)) != ATTN_OK)
        DIE(1, "%s backward failed: %s", vname, attn_status_str(st));

    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind == SLOT_INPUT || !c.buf[i]) continue;
        if (!strcmp(s->name, "z_out") && !wdt) continue; /* z was an input */
        int64_t dims[4];
        int nd_ = attn_slot_shape(s, &sh, v, dims);
        int64_t n = attn_slot_numel(s, &sh, v);
        float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!x) DIE(1, "out of memory");
        for (int64_t e = 0; e < n; e++) x[e] = (float)attn_case_get(&c, s, e);
        const char *name = !strcmp(s->name, "z_out") ? "z" : s->name;
        st_status ss = st_file_add_f32_as(&outf, name, s->aux ? ST_F32 : st_from_dtype(dt), nd_, dims, x, err, sizeof err);
        free(x);
        if (ss != ST_OK) DIE(1, "%s", err);
    }
    st_file_set_meta(&outf, "producer", "dmabench attn", err, sizeof err);
    st_file_set_meta(&outf, "variant", vname, err, sizeof err);
    st_file_set_meta(&outf, "backend", bname, err, sizeof err);
    if (st_write(outp, &outf, err, sizeof err) != ST_OK) DIE(1, "%s", err);
    for (size_t i = 0; i < in.n_tensors; i++) {
        const attn_slot *s = attn_slot_find(in.tensors[i].name);
        if (s && s->kind == SLOT_INPUT && c.buf[s - tab]) continue;
        char why[160];
        unused_reason(s, v, &sh, why, sizeof why);
        fprintf(stderr, "dmabench attn: note: ignoring tensor '%s' (%s)\n", in.tensors[i].name, why);
    }
    fprintf(stderr, "dmabench attn: wrote %s (%zu tensor%s)\n", outp, outf.n_tensors, outf.n_tensors == 1 ? "" : "s");

done:
    attn_case_free(&c);
    st_file_free(&in);
    st_file_free(&outf);
    return rc;
}

/* `dmabench attn-inputs`: writes seeded random inputs for a variant and shape, a
 * starting point with every tensor name and shape `dmabench attn` expects. */
int cmd_attn_inputs(int argc, char **argv) {
    cli_args a;
    int rc = 0;
    st_file outf;
    st_file_init(&outf);
    attn_case c = {0};
    char err[512];
    if (cli_parse(&a, "attn-inputs", argc, argv, 2, "--help --backward --causal --wdt --bias") != 0) {
        fprintf(stderr, "dmabench %s\n", a.err);
        return 2;
    }
    if (cli_flag(&a, "--help")) {
        printf("usage: dmabench attn-inputs --variant V --shape B,Nq,Nk,Hq,Hkv,D --out FILE [options]\n"
               "\n"
               "Writes seeded random inputs for `dmabench attn`: q, k, v, the variant's tensors\n"
               "and, with --backward, do. The shape and settings are checked as attn checks them\n"
               "(Hq a multiple of Hkv, D in 1..%d, ...) before anything is written.\n"
               "\n"
               "options:\n"
               "  --variant V        mha | swa | dma | nsa (required)\n"
               "  --shape LIST       B,Nq,Nk,Hq,Hkv,D (required)\n"
               "  --out FILE         output safetensors file (required; written atomically)\n"
               "  --backward         also write 'do', the output gradient attn --backward reads\n"
               "  --dtype T          f32 | bf16 | f16 for q, k, v, do (default f32)\n"
               "  --seed N           random seed (default 1)\n"
               "  --wdt              dma only: write w_dt and a instead of z\n"
               "  --bias             with --wdt: also write b_dt\n"
               "  --causal --scale S --w N --dma-mode M --nsa-l N --nsa-d N --nsa-ls N --nsa-n N\n"
               "  --nsa-cmp C        the settings, as for attn (they decide which tensors exist\n"
               "                     and are checked with the shape)\n",
               ATTN_MAX_D);
        return 0;
    }
    const char *vname = cli_str2(&a, "--variant", "--variants", NULL), *shape = cli_str(&a, "--shape", NULL);
    const char *outp = cli_str(&a, "--out", NULL), *dts = cli_str(&a, "--dtype", "f32");
    int backward = cli_flag(&a, "--backward"), wdt = cli_flag(&a, "--wdt"), bias = cli_flag(&a, "--bias");
    long long seed;
    attn_settings set;
    if (parse_settings(&a, &set) || cli_int(&a, "--seed", 1, 0, (long long)1 << 62, &seed) || cli_finish(&a))
        DIE(2, "%s", strchr(a.err, ':') ? strchr(a.err, ':') + 2 : a.err);
    attn_variant v;
    attn_dtype dt;
    if (!vname || attn_variant_parse(vname, &v)) DIE(2, "--variant must be one of mha, swa, dma, nsa");
    if (!outp) DIE(2, "--out is required");
    if ((wdt || bias) && v != ATTN_DMA)
        DIE(2, "%s applies to dma only (%s has no w_dt or b_dt)", wdt ? "--wdt" : "--bias", vname);
    if (bias && !wdt) DIE(2, "--bias needs --wdt (b_dt is the bias of w_dt's projection)");
    if (attn_dtype_parse(dts, &dt) || dt == ATTN_DTYPE_F64) DIE(2, "--dtype must be f32, bf16 or f16");
    long long dims[6];
    int nd = shape ? cli_int_list(shape, dims, 6, err, sizeof err) : -1;
    if (nd != 6) DIE(2, "--shape must be B,Nq,Nk,Hq,Hkv,D (six positive integers)");
    for (int i = 0; i < 6; i++)
        if (dims[i] < 1 || dims[i] > (1 << 24)) DIE(2, "--shape values must be in 1..2^24");
    attn_params sh;
    attn_params_init(&sh, (int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3], (int)dims[4], (int)dims[5], dt,
                     set.causal);
    apply_settings(&set, &sh);
    /* the checks attn makes, before anything is allocated or written: every tensor
     * the variant uses counts as present */
    {
        static const float present = 0;
        attn_params chk = sh;
        int ns0;
        const attn_slot *tab0 = attn_slot_table(&ns0);
        for (int i = 0; i < ns0; i++)
            if (attn_slot_used(&tab0[i], v, &sh, wdt, bias) &&
                (backward || (tab0[i].kind != SLOT_GRAD && strcmp(tab0[i].name, "do"))))
                *attn_slot_ptr(&tab0[i], &chk) = (void *)&present;
        if (attn_params_check(&chk, v, backward, err, sizeof err) != ATTN_OK) DIE(2, "%s", err);
    }
    attn_status st = attn_case_alloc(&c, v, &sh, v == ATTN_DMA && wdt, bias, backward);
    if (st != ATTN_OK) DIE(1, "cannot allocate the tensors: %s", attn_status_str(st));
    attn_case_fill(&c, (uint64_t)seed, Z_RANDOM);
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind != SLOT_INPUT || !c.buf[i]) continue;
        int64_t sd[4];
        int k = attn_slot_shape(s, &sh, v, sd);
        st_status ss = st_file_add(&outf, s->name, s->aux ? ST_F32 : st_from_dtype(dt), k, sd, c.buf[i], ST_BORROW,
                                   err, sizeof err);
        if (ss != ST_OK) DIE(1, "%s", err);
    }
    if (st_write(outp, &outf, err, sizeof err) != ST_OK) DIE(1, "%s", err);
    fprintf(stderr, "dmabench attn-inputs: wrote %s (%zu tensors)\n", outp, outf.n_tensors);
done:
    st_file_free(&outf);
    attn_case_free(&c);
    return rc;
}
