/*
 * verify.c: every implemented backend against the double-precision reference on
 * fresh random inputs over a grid of shapes (GQA, MQA, Nq != Nk, Nq = 1, sizes
 * that are no multiple of any tile, windows larger and smaller than N), forward
 * and backward. `dmabench verify --help` for the options.
 */
#include "verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda_info.h"
#include "cuda_rt.h"
#include "dtype.h"
#include "report.h"

double verify_tolerance(attn_backend b, attn_dtype t) {
    (void)b;
    switch (t) {
    case ATTN_DTYPE_F64: return 1e-12;
    case ATTN_DTYPE_F32: return 1e-4;
    case ATTN_DTYPE_BF16: return 3e-2;
    case ATTN_DTYPE_F16: return 1e-2;
    }
    return 0;
}

double verify_unit_roundoff(attn_dtype t) {
    switch (t) {
    case ATTN_DTYPE_F64: return 0x1p-53;
    case ATTN_DTYPE_F32: return 0x1p-24;
    case ATTN_DTYPE_F16: return 0x1p-11;
    case ATTN_DTYPE_BF16: return 0x1p-8;
    }
    return 0;
}

/* A tensor's tolerance: the dtype's, raised where the problem itself is badly
 * conditioned (the reference moves by `floor` when its inputs move by one unit
 * roundoff) to VERIFY_FLOOR_MULT times that floor, and never past
 * VERIFY_MAX_RAISE times the dtype's tolerance. */
#define VERIFY_FLOOR_MULT 16.0
/* a gradient whose reference stays below this fraction of the largest gradient is
 * zero in exact arithmetic (see verify_one) */
#define VERIFY_ZERO_GRAD 1e-9
#define VERIFY_MAX_RAISE 30.0
double verify_tensor_tolerance(double tol, double floor) {
    double t = VERIFY_FLOOR_MULT * floor;
    if (!(t <= VERIFY_MAX_RAISE * tol)) t = VERIFY_MAX_RAISE * tol;
    return t > tol ? t : tol;
}

/* Pads the strides of q, k, v, o (and their gradients) so that rows are not packed:
 * catches kernels that assume contiguity. */
static void pad_strides(attn_params *p) {
    /* 16-bit rows stay 16-byte aligned (what the CUDA kernels need), yet padded */
    int Dp = p->D + (attn_dtype_size(p->dtype) == 2 ? 8 : 3);
    attn_stride qs = {(int64_t)(p->Nq + 1) * p->Hq * Dp, (int64_t)p->Hq * Dp, Dp};
    attn_stride ks = {(int64_t)(p->Nk + 2) * p->Hkv * Dp, (int64_t)p->Hkv * Dp, Dp};
    p->q_st = p->o_st = p->do_st = p->dq_st = qs;
    p->k_st = p->v_st = p->dk_st = p->dv_st = ks;
}

void verify_one(const attn_op *op, const attn_params *shape, const verify_opts *o, verify_result *r) {
    memset(r, 0, sizeof *r);
    /* the CUDA kernels compute fp32 inputs in bf16 (cuda_f32.cu): judged as bf16 */
    attn_dtype cdt = op->backend == ATTN_BACKEND_CUDA && shape->dtype == ATTN_DTYPE_F32 ? ATTN_DTYPE_BF16 : shape->dtype;
    r->tol = verify_tolerance(op->backend, cdt);
    r->errors = cJSON_CreateObject();
    attn_params sh = *shape;
    if (o->padded) pad_strides(&sh);
    attn_params rsh = *shape;
    rsh.dtype = ATTN_DTYPE_F64;
    attn_case c = {0}, ref = {0}, pert = {0};
    const attn_op *rop = attn_registry_find(op->variant, ATTN_BACKEND_REF);
    attn_status st = attn_case_alloc(&c, op->variant, &sh, o->dma_wdt, o->dma_bias, o->backward);
    if (st == ATTN_OK) st = attn_case_alloc(&ref, op->variant, &rsh, o->dma_wdt, o->dma_bias, o->backward);
    if (st == ATTN_OK) st = attn_case_alloc(&pert, op->variant, &rsh, o->dma_wdt, o->dma_bias, o->backward);
    int backward = o->backward;
    if (st != ATTN_OK) {
        r->status = st;
        snprintf(r->why, sizeof r->why, "cannot allocate the test tensors");
        goto done;
    }
    if (!op->supports(&c.p, o->backward, r->why, sizeof r->why)) {
        /* a backend without a backward yet is still checked forward */
        if (!o->backward || !op->supports(&c.p, 0, NULL, 0)) {
            r->status = ATTN_ERR_UNSUPPORTED;
            goto done;
        }
        r->forward_only = 1;
        backward = 0;
    }
    attn_case_fill(&c, o->seed, o->zp);
    if (cdt != sh.dtype) {
        /* fp32 computed in bf16: the kernel rounds q, k, v and dout to bf16 before
         * anything else (cuda_f32.cu), so the cell's values are made bf16-exact here.
         * Otherwise a top-k (dma's keys, nsa's blocks) taken on the rounded values may
         * rightly differ from one on the unrounded, and the reference would not be
         * the operator the kernel computes. */
        static const char *main_in[] = {"q", "k", "v", "do"};
        int ns0;
        const attn_slot *tab0 = attn_slot_table(&ns0);
        for (int m = 0; m < 4; m++) {
            const attn_slot *s = attn_slot_find(main_in[m]);
            int64_t n = s && c.buf[s - tab0] ? attn_slot_numel(s, &c.p, c.variant) : 0;
            for (int64_t e = 0; e < n; e++)
                attn_case_set(&c, s, e, bf16_to_f32(f32_to_bf16((float)attn_case_get(&c, s, e))));
        }
    }
    attn_case_copy_inputs(&ref, &c); /* the reference sees exactly the rounded inputs */
    if ((st = rop->forward(&ref.p)) != ATTN_OK || (backward && (st = rop->backward(&ref.p)) != ATTN_OK)) {
        r->status = st;
        snprintf(r->why, sizeof r->why, "reference failed: %s", attn_status_str(st));
        goto done;
    }
    /* the conditioning floor: how far each output moves when every input moves by
     * the dtype's unit roundoff (see docs/verify.md) */
    attn_case_copy_inputs(&pert, &c);
    attn_case_perturb(&pert, o->seed ^ 0x5eedu, verify_unit_roundoff(cdt));
    if ((st = rop->forward(&pert.p)) != ATTN_OK || (backward && (st = rop->backward(&pert.p)) != ATTN_OK)) {
        r->status = st;
        snprintf(r->why, sizeof r->why, "reference failed on perturbed inputs: %s", attn_status_str(st));
        goto done;
    }
    if (op->backend == ATTN_BACKEND_CUDA) { /* device pointers: run on a mirror */
        attn_case dev;
        if ((st = attn_case_to_device(&c, &dev)) == ATTN_OK) {
            /* what the operator keeps from its forward for its backward, as the model gives it */
            if (op->saved_bytes) st = attn_case_saved_device(&dev, op->saved_bytes(&dev.p));
            if (st == ATTN_OK && (st = op->forward(&dev.p)) == ATTN_OK && backward) st = op->backward(&dev.p);
            if (st == ATTN_OK) st = dm_cuda_sync();
            if (st == ATTN_OK) st = attn_case_from_device(&c, &dev);
            attn_case_free_device(&dev);
        }
        if (st != ATTN_OK) {
            r->status = st;
            snprintf(r->why, sizeof r->why, "cuda: %s (%s)", attn_status_str(st), dm_cuda_last_error());
            goto done;
        }
    } else if ((st = op->forward(&c.p)) != ATTN_OK || (backward && (st = op->backward(&c.p)) != ATTN_OK)) {
        r->status = st;
        snprintf(r->why, sizeof r->why, "%s failed: %s", backward ? "forward/backward" : "forward",
                 attn_status_str(st));
        goto done;
    }
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    r->pass = 1;
    /* the largest gradient: the scale for gradients that are zero in exact arithmetic */
    double gscale = 0;
    for (int i = 0; i < ns; i++)
        if (tab[i].kind == SLOT_GRAD && c.buf[i] && backward) {
            double m = attn_case_maxabs(&ref, &tab[i]);
            if (m > gscale) gscale = m;
        }
    for (int i = 0; i < ns; i++) {
        const attn_slot *s = &tab[i];
        if (s->kind == SLOT_INPUT || !c.buf[i] || (!backward && s->kind == SLOT_GRAD)) continue;
        double ma, mr, fa, fr;
        attn_case_compare(&c, &ref, s, &ma, &mr);
        attn_case_compare(&pert, &ref, s, &fa, &fr);
        double tol = verify_tensor_tolerance(r->tol, fr);
        int degenerate = 0;
        if (s->kind == SLOT_GRAD && attn_case_maxabs(&ref, s) <= VERIFY_ZERO_GRAD * gscale) {
            /* zero in exact arithmetic (NSA's dp_k: the position embedding shifts every
             * compressed key of a head alike, and softmax ignores a shared shift): the
             * reference holds only rounding noise, so judge the absolute error against
             * the largest gradient's scale */
            degenerate = 1;
            mr = gscale > 0 ? ma / gscale : ma;
            tol = r->tol;
        }
        cJSON *e = cJSON_AddObjectToObject(r->errors, s->name);
        if (degenerate) cJSON_AddBoolToObject(e, "zero_in_exact_arithmetic", 1);
        cJSON_AddNumberToObject(e, "abs", isfinite(ma) ? ma : 1e308);
        cJSON_AddNumberToObject(e, "rel", isfinite(mr) ? mr : 1e308);
        cJSON_AddNumberToObject(e, "floor", isfinite(fr) ? fr : 1e308);
        cJSON_AddNumberToObject(e, "tol", tol);
        int fwd = s->kind == SLOT_OUTPUT;
        double *pa = fwd ? &r->fwd_abs : &r->bwd_abs, *pr = fwd ? &r->fwd_rel : &r->bwd_rel;
        if (!(ma <= *pa)) *pa = ma;
        if (!(mr <= *pr)) *pr = mr;
        if (!(mr <= tol)) r->pass = 0;
    }
done:
    attn_case_free(&c);
    attn_case_free(&ref);
    attn_case_free(&pert);
}

/* ---- the grid ---- */

typedef struct {
    const char *name;
    int B, Nq, Nk, Hq, Hkv, D, causal;
    int padded;   /* padded strides */
    int wmid;     /* a third window between the two (0: none) */
    int fwd_only; /* forward only */
    int gpu_only; /* large: checked on the cuda backend only, to keep `make test` short */
} vshape;

/* Odd sizes, GQA, MQA, Nq != Nk, decode, non-causal, padded strides. The second
 * half uses head dims 64 and 128 (the paper models' and the CUDA decode path's) at sizes that span
 * several query tiles and key blocks of the CUDA engine (128 and 64). */
static const vshape grid[] = {
    {"square", 1, 64, 64, 4, 4, 32, 1, 0, 0, 0, 0},
    {"gqa_odd", 2, 37, 37, 4, 2, 24, 1, 1, 0, 0, 0},
    {"mqa", 1, 50, 50, 6, 1, 16, 1, 0, 0, 0, 0},
    {"nq<nk", 1, 19, 83, 4, 2, 32, 1, 0, 0, 0, 0},
    {"decode", 2, 1, 101, 4, 2, 64, 1, 0, 0, 0, 0},
    {"nq>nk", 1, 70, 33, 2, 2, 16, 1, 0, 0, 0, 0},
    {"noncausal", 1, 29, 45, 2, 1, 40, 0, 0, 0, 0, 0},
    {"d128", 1, 40, 40, 2, 1, 128, 1, 0, 0, 0, 0},
    {"tiles_gqa", 1, 200, 200, 8, 2, 64, 1, 1, 0, 0, 0},
    {"mqa_d128", 2, 77, 77, 4, 1, 128, 1, 0, 0, 0, 0},
    {"nq<nk_d64", 1, 45, 261, 4, 2, 64, 1, 0, 0, 0, 0},
    {"nq>nk_d128", 1, 150, 70, 2, 2, 128, 1, 0, 0, 0, 0},
    {"noncausal_d64", 1, 130, 97, 4, 2, 64, 0, 0, 0, 0, 0},
    /* the CUDA decode path (Nq <= 16): long and odd K, windows below and above the
     * visible count (4091 + 5 stays within the cuda dma's w <= 4096), many key
     * splits and select chunks (70000), several row tiles (MQA, Nq = 5), Nq > Nk
     * with empty rows, one row per CTA (MHA), non-causal */
    {"decode_long", 2, 1, 4091, 4, 1, 128, 1, 0, 1024, 1, 0},
    {"decode_70k", 1, 1, 70000, 8, 2, 64, 0, 0, 2048, 1, 1},
    {"decode_nq5", 1, 5, 1001, 8, 2, 128, 1, 0, 0, 0, 0},
    {"decode_mqa", 1, 2, 777, 16, 1, 64, 1, 0, 300, 0, 0},
    {"decode_nq>nk", 1, 12, 9, 8, 2, 64, 1, 0, 0, 0, 0},
    {"decode_mha", 1, 1, 1000, 2, 2, 64, 1, 0, 100, 0, 0},
};
#define NGRID (int)(sizeof grid / sizeof *grid)

typedef struct {
    attn_params sh;
    verify_opts o;
    char label[96];
    char settings[96];
} vcell;

/* Expands the grid for one variant into cells. Returns the count. */
static int cells_for(attn_variant v, attn_backend be, attn_dtype dt, uint64_t seed, vcell *out, int max) {
    int n = 0;
    for (int gi = 0; gi < NGRID; gi++) {
        const vshape *g = &grid[gi];
        if ((v == ATTN_SWA || v == ATTN_NSA) && !g->causal) continue;
        if (g->gpu_only && be != ATTN_BACKEND_CUDA) continue;
        int nw = v == ATTN_MHA ? 1 : g->wmid > 0 && v != ATTN_NSA ? 3 : 2;
        for (int wi = 0; wi < nw; wi++) {
            int nvar = v == ATTN_DMA ? 4 : v == ATTN_NSA ? 2 : 1;
            for (int k = 0; k < nvar && n < max; k++) {
                vcell *c = &out[n];
                memset(c, 0, sizeof *c);
                attn_params_init(&c->sh, g->B, g->Nq, g->Nk, g->Hq, g->Hkv, g->D, dt, g->causal);
                c->sh.w = wi == 0 ? 7 : wi == 1 ? g->Nk + 5 : g->wmid; /* smaller and larger than N */
                c->o.backward = !g->fwd_only;
                c->o.seed = seed + (uint64_t)n * 7919u + (uint64_t)v * 104729u;
                c->o.padded = g->padded;
                snprintf(c->label, sizeof c->label, "%s B%d Nq%d Nk%d H%d/%d D%d%s%s", g->name, g->B, g->Nq,
                         g->Nk, g->Hq, g->Hkv, g->D, g->causal ? "" : " noncausal", g->fwd_only ? " (fwd)" : "");
                if (v == ATTN_MHA) snprintf(c->settings, sizeof c->settings, "-");
                else snprintf(c->settings, sizeof c->settings, "w=%d", c->sh.w);
                if (v == ATTN_DMA) {
                    /* z random, z clustered, w_dt exp with bias, w_dt linear */
                    c->o.zp = k == 1 ? Z_CLUSTERED : Z_RANDOM;
                    c->o.dma_wdt = k >= 2;
                    c->o.dma_bias = k == 2;
                    c->sh.dma_mode = k == 3 ? DMA_MODE_LINEAR : DMA_MODE_EXP;
                    const char *kn[] = {"z random", "z clustered", "w_dt exp", "w_dt linear"};
                    size_t L = strlen(c->settings);
                    snprintf(c->settings + L, sizeof c->settings - L, " %s", kn[k]);
                }
                if (v == ATTN_NSA) {
                    /* small blocks so that selection matters at these sizes */
                    c->sh.nsa_l = 8;
                    c->sh.nsa_d = 4;
                    c->sh.nsa_ls = 8;
                    c->sh.nsa_n = wi == 0 ? 3 : 16;
                    c->sh.w = wi == 0 ? 8 : g->Nk + 5;
                    c->sh.nsa_cmp = k == 0 ? NSA_CMP_LINEAR : NSA_CMP_MEAN;
                    snprintf(c->settings, sizeof c->settings, "w=%d l=8 d=4 l'=8 n=%d %s", c->sh.w, c->sh.nsa_n,
                             k == 0 ? "linear" : "mean");
                }
                n++;
            }
        }
    }
    /* NSA once at the paper's block sizes */
    if (v == ATTN_NSA && n < max) {
        vcell *c = &out[n];
        memset(c, 0, sizeof *c);
        attn_params_init(&c->sh, 1, 300, 300, 4, 2, 16, dt, 1);
        c->sh.w = 64;
        c->o.backward = 1;
        c->o.seed = seed + 77;
        snprintf(c->label, sizeof c->label, "paper_blocks B1 Nq300 Nk300 H4/2 D16");
        snprintf(c->settings, sizeof c->settings, "w=64 l=32 d=16 l'=64 n=16 linear");
        n++;
    }
    return n;
}

/* The table header, printed before the first row (none when no row is printed). */
static void print_header(int *done) {
    if (*done) return;
    printf("| variant | backend | dtype | shape | settings | fwd rel err | bwd rel err | tol | result |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    *done = 1;
}

static void usage(void) {
    printf("usage: dmabench verify [options]\n"
           "\n"
           "Checks every implemented backend against the double-precision reference on\n"
           "fresh random inputs, forward and backward, over a grid of shapes (GQA, MQA,\n"
           "Nq != Nk, Nq = 1, odd sizes, padded strides, windows smaller and larger than N).\n"
           "Prints a table and writes a JSON report.\n"
           "\n"
           "options:\n"
           "  --variants LIST  mha,swa,dma,nsa (default: all; --variant is the same)\n"
           "  --backend LIST   ref,cpu,cuda (default: every non-reference backend built in,\n"
           "                   cuda only when a GPU is present; 'ref' checks the\n"
           "                   reference's own f32 path against f64)\n"
           "  --dtype T        f32|bf16|f16 (default: f32 on cpu/ref, bf16 on cuda)\n"
           "  --seed N         random seed (default 1)\n"
           "  --shard K/N      check only the K-th of N equal parts of the grid (cells K,\n"
           "                   K+N, K+2N, ... in grid order), so that N processes share\n"
           "                   one slow run, e.g. under compute-sanitizer (default 1/1)\n"
           "  --out FILE       JSON report (default verify.json)\n"
           "  --quiet          print only failures and the summary\n"
           "\n"
           "Exit status: 0 every check ran passed, 1 a check failed, nothing could be\n"
           "checked (every cell unsupported or not built, e.g. --backend cuda without a\n"
           "GPU) or the report could not be written, 2 bad usage.\n");
}

int cmd_verify(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, "verify", argc, argv, 2, "--help -h --quiet") != 0) goto bad;
    if (cli_flag(&a, "--help")) {
        usage();
        return 0;
    }
    const char *vlist = cli_str2(&a, "--variants", "--variant", "mha,swa,dma,nsa");
    const char *blist = cli_str(&a, "--backend", NULL);
    const char *dts = cli_str(&a, "--dtype", NULL);
    const char *out = cli_str(&a, "--out", "verify.json");
    int quiet = cli_flag(&a, "--quiet");
    long long seed;
    const char *shs = cli_str(&a, "--shard", "1/1");
    if (cli_int(&a, "--seed", 1, 0, (long long)1 << 62, &seed) != 0 || cli_finish(&a) != 0) goto bad;
    int shard_k = 0, shard_n = 0, shard_end = 0;
    if (sscanf(shs, "%d/%d%n", &shard_k, &shard_n, &shard_end) != 2 || shs[shard_end] != '\0' || shard_n < 1 ||
        shard_n > 100000 || shard_k < 1 || shard_k > shard_n) {
        fprintf(stderr, "dmabench verify: --shard '%s' is not K/N with 1 <= K <= N (e.g. --shard 2/4)\n", shs);
        return 2;
    }

    attn_variant vars[ATTN_NVARIANTS];
    int nv = 0;
    char *items[16];
    int ni = cli_list(vlist, items, 16);
    for (int i = 0; i < ni; i++) {
        if (attn_variant_parse(items[i], &vars[nv]) != 0) {
            fprintf(stderr, "dmabench verify: unknown variant '%s' (known: mha, swa, dma, nsa)\n", items[i]);
            cli_list_free(items, ni);
            return 2;
        }
        nv++;
    }
    cli_list_free(items, ni);

    attn_backend bes[ATTN_NBACKENDS];
    int nb = 0;
    if (blist) {
        ni = cli_list(blist, items, 16);
        for (int i = 0; i < ni; i++) {
            if (attn_backend_parse(items[i], &bes[nb]) != 0) {
                fprintf(stderr, "dmabench verify: unknown backend '%s' (known: ref, cpu, cuda)\n", items[i]);
                cli_list_free(items, ni);
                return 2;
            }
            nb++;
        }
        cli_list_free(items, ni);
    } else {
        /* every non-reference backend that is built in; the reference self-check
         * when there is none */
        cuda_info ci;
        int gpu = cuda_query(&ci) == 0;
        for (int b = ATTN_BACKEND_CPU; b < ATTN_NBACKENDS; b++)
            for (int v = 0; v < ATTN_NVARIANTS && (b != ATTN_BACKEND_CUDA || gpu); v++)
                if (attn_registry_find((attn_variant)v, (attn_backend)b)) {
                    bes[nb++] = (attn_backend)b;
                    break;
                }
        if (nb == 0) bes[nb++] = ATTN_BACKEND_REF;
    }
    attn_dtype fixed_dt = ATTN_DTYPE_F32;
    if (dts && (attn_dtype_parse(dts, &fixed_dt) != 0 || fixed_dt == ATTN_DTYPE_F64)) {
        fprintf(stderr, "dmabench verify: unknown dtype '%s' (use f32, bf16 or f16)\n", dts);
        return 2;
    }

    cJSON *rep = report_new(report_provenance(argc, argv, (uint64_t)seed));
    int npass = 0, nfail = 0, nskip = 0, nfwd_only = 0, header = 0;
    long gcell = 0; /* the cell's place in the whole grid (over backends and variants), for --shard */
    char skip_why[512] = ""; /* why the first skipped cell was skipped */
    cuda_info ci;
    int have_gpu = cuda_query(&ci) == 0;
    for (int bi = 0; bi < nb; bi++)
        for (int vi = 0; vi < nv; vi++) {
            const attn_op *op = attn_registry_find(vars[vi], bes[bi]);
            attn_dtype dt = dts ? fixed_dt : bes[bi] == ATTN_BACKEND_CUDA ? ATTN_DTYPE_BF16 : ATTN_DTYPE_F32;
            if (!op) {
                print_header(&header);
                printf("| %s | %s | %s | - | - | - | - | - | not built |\n", attn_variant_name(vars[vi]),
                       attn_backend_name(bes[bi]), attn_dtype_name(dt));
                if (!skip_why[0])
                    snprintf(skip_why, sizeof skip_why, "backend %s of %s is not built into this binary",
                             attn_backend_name(bes[bi]), attn_variant_name(vars[vi]));
                attn_params sh;
                attn_params_init(&sh, 1, 1, 1, 1, 1, 1, dt, 1);
                cJSON *rec = record_kernel(&sh, vars[vi], bes[bi], ATTN_MODE_FWDBWD, "unsupported");
                cJSON_ReplaceItemInObject(rec, "kind", cJSON_CreateString("verify"));
                cJSON_AddStringToObject(rec, "note", "backend not built into this binary");
                report_add(rep, rec);
                nskip++;
                continue;
            }
            static vcell cells[256];
            int nc = cells_for(vars[vi], bes[bi], dt, (uint64_t)seed, cells, 256);
            for (int ci = 0; ci < nc; ci++) {
                if (gcell++ % shard_n != shard_k - 1) continue;
                verify_result r;
                verify_one(op, &cells[ci].sh, &cells[ci].o, &r);
                const char *status = r.status == ATTN_OK ? "ok"
                                     : r.status == ATTN_ERR_UNSUPPORTED ? "unsupported"
                                     : r.status == ATTN_ERR_OOM       ? "oom"
                                                                      : "error";
                const char *res;
                if (r.status == ATTN_ERR_UNSUPPORTED) {
                    res = "unsupported";
                    nskip++;
                    if (!skip_why[0]) {
                        if (bes[bi] == ATTN_BACKEND_CUDA && !have_gpu) snprintf(skip_why, sizeof skip_why, "no CUDA device");
                        else snprintf(skip_why, sizeof skip_why, "%s %s: %s", attn_variant_name(vars[vi]),
                                      attn_backend_name(bes[bi]), r.why[0] ? r.why : "unsupported");
                    }
                } else if (r.status != ATTN_OK || !r.pass) {
                    res = "FAIL";
                    nfail++;
                    if (r.status == ATTN_OK) status = "error";
                } else {
                    res = "pass";
                    npass++;
                }
                if (r.forward_only) nfwd_only++;
                if (r.forward_only && !strcmp(res, "pass")) res = "pass (fwd only)";
                if (!quiet || strcmp(res, "pass") != 0) {
                    /* errors only where they were measured: "-" for a cell that did not run */
                    char fe[32] = "-", be[32] = "-";
                    if (r.status == ATTN_OK) {
                        snprintf(fe, sizeof fe, "%.2e", r.fwd_rel);
                        if (!r.forward_only) snprintf(be, sizeof be, "%.2e", r.bwd_rel);
                    }
                    print_header(&header);
                    printf("| %s | %s | %s | %s | %s | %s | %s | %.0e | %s%s%s |\n", attn_variant_name(vars[vi]),
                           attn_backend_name(bes[bi]), attn_dtype_name(dt), cells[ci].label, cells[ci].settings, fe,
                           be, r.tol, res, r.why[0] ? ": " : "", r.why);
                }
                cJSON *rec = record_kernel(&cells[ci].sh, vars[vi], bes[bi],
                                           cells[ci].o.backward ? ATTN_MODE_FWDBWD : ATTN_MODE_FWD, status);
                cJSON_ReplaceItemInObject(rec, "kind", cJSON_CreateString("verify"));
                cJSON_AddStringToObject(rec, "check", res);
                cJSON_AddStringToObject(rec, "label", cells[ci].label);
                cJSON_AddNumberToObject(rec, "seed", (double)cells[ci].o.seed);
                cJSON_AddBoolToObject(rec, "padded_strides", cells[ci].o.padded);
                if (r.forward_only) {
                    cJSON_ReplaceItemInObject(rec, "mode", cJSON_CreateString("fwd"));
                    cJSON_AddStringToObject(rec, "note", "backward not available in this backend; forward checked");
                }
                if (vars[vi] == ATTN_DMA)
                    cJSON_AddStringToObject(rec, "z_source",
                                            cells[ci].o.dma_wdt ? (cells[ci].o.dma_bias ? "w_dt+b_dt" : "w_dt")
                                            : cells[ci].o.zp == Z_CLUSTERED ? "clustered"
                                            : cells[ci].o.zp == Z_RISING    ? "rising"
                                                                            : "random");
                cJSON_AddNumberToObject(rec, "max_abs_err", fmax(r.fwd_abs, r.bwd_abs));
                cJSON_AddNumberToObject(rec, "max_rel_err", fmax(r.fwd_rel, r.bwd_rel));
                cJSON_AddNumberToObject(rec, "tolerance_rel", r.tol);
                if (r.why[0]) cJSON_AddStringToObject(rec, "error", r.why);
                cJSON_AddItemToObject(rec, "errors", r.errors);
                report_add(rep, rec);
            }
        }
    char err[512];
    int wrc = report_write(out, rep, err, sizeof err);
    cJSON_Delete(rep);
    printf("%sverify: %d passed, %d failed, %d skipped", header ? "\n" : "", npass, nfail, nskip);
    if (nfwd_only) printf(" (%d checked forward only: no backward in that backend yet)", nfwd_only);
    printf("\n");
    if (wrc != 0) {
        fprintf(stderr, "dmabench verify: %s\n", err);
        return 1;
    }
    printf("report: %s\n", out);
    if (npass + nfail == 0) {
        fflush(stdout);
        fprintf(stderr, "dmabench verify: nothing was checked: %d cell%s skipped (%s)\n", nskip,
                nskip == 1 ? "" : "s", skip_why[0] ? skip_why : "no cell to check");
        return 1;
    }
    return nfail ? 1 : 0;
bad:
    fprintf(stderr, "dmabench %s\n", a.err);
    return 2;
}
