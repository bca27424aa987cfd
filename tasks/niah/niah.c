/*
 * niah.c: the needle-in-a-haystack generator, its scoring and the depth x
 * length matrix (niah.h).
 */
#include "niah/niah.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define SALT_MAKE 0x6e6961682d6d6bull  /* "niah-mk" */
#define SALT_TRAIN 0x6e6961682d7472ull /* "niah-tr" */
#define SALT_TEST 0x6e6961682d7465ull  /* "niah-te" */
#define SALT_SHAPE 0x6e6961682d7368ull /* "niah-sh" */

static const char DEFAULT_FILLER[] =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";

/* key names: all three letters, so every needle of a config has the same length */
static const char *const KEY_NAMES[NIAH_MAX_KEYS] = {"owl", "cat", "dog", "fox", "bee", "ant", "elk", "yak",
                                                     "cow", "pig", "hen", "ram", "bat", "eel", "emu", "ape"};

void niah_config_default(niah_config *c) {
    memset(c, 0, sizeof *c);
    c->n_keys = 1;
    c->n_values = 1;
    c->key_digits = 5;
    c->filler = NULL;
    c->text = NULL;
    c->text_len = 0;
    c->min_train_len = 0;
    c->train_seed = 0;
    c->test_seed = 1;
}

static const char *filler_of(const niah_config *c) { return c->filler ? c->filler : DEFAULT_FILLER; }

task_status niah_validate(const niah_config *c, char *err, size_t err_len) {
    if (!c) {
        task_errf(err, err_len, "niah: no config");
        return TASK_ERR_ARG;
    }
    if (c->n_keys < 1 || c->n_keys > NIAH_MAX_KEYS) {
        task_errf(err, err_len, "niah: n_keys must be in 1..%d (got %d)", NIAH_MAX_KEYS, c->n_keys);
        return TASK_ERR_ARG;
    }
    if (c->n_values < 1 || c->n_values > NIAH_MAX_VALUES) {
        task_errf(err, err_len, "niah: n_values must be in 1..%d (got %d)", NIAH_MAX_VALUES, c->n_values);
        return TASK_ERR_ARG;
    }
    if (c->key_digits < 1 || c->key_digits > 9) {
        task_errf(err, err_len, "niah: key_digits must be in 1..9 (got %d)", c->key_digits);
        return TASK_ERR_ARG;
    }
    /* enough distinct numbers for every needle */
    double avail = 9 * pow(10, c->key_digits - 1);
    if (avail < 2.0 * (c->n_keys - 1 + c->n_values)) {
        task_errf(err, err_len, "niah: %d-digit keys are too few for %d needles", c->key_digits,
                  c->n_keys - 1 + c->n_values);
        return TASK_ERR_ARG;
    }
    if (!c->text && strlen(filler_of(c)) == 0) {
        task_errf(err, err_len, "niah: the filler is empty");
        return TASK_ERR_ARG;
    }
    if (c->text && c->text_len == 0) {
        task_errf(err, err_len, "niah: the haystack text is empty");
        return TASK_ERR_ARG;
    }
    if (c->min_train_len < 0) {
        task_errf(err, err_len, "niah: min_train_len must be >= 0");
        return TASK_ERR_ARG;
    }
    return TASK_OK;
}

/* ---- texts ---- */

static int needle_len(const niah_config *c) {
    /* "The pass key is " D ". Remember it. " or "The pass key for xxx is " D ... */
    return (c->n_keys > 1 ? 24 : 16) + c->key_digits + 15;
}

static int question(const niah_config *c, const char *name, char *q, size_t cap) {
    int named = c->n_keys > 1, multi = c->n_values > 1;
    if (!multi && !named) return snprintf(q, cap, "\nWhat is the pass key? The pass key is ");
    if (!multi) return snprintf(q, cap, "\nWhat is the pass key for %s? The pass key for %s is ", name, name);
    if (!named) return snprintf(q, cap, "\nWhat are all the pass keys? The pass keys are ");
    return snprintf(q, cap, "\nWhat are all the pass keys for %s? The pass keys for %s are ", name, name);
}

int niah_min_prompt_len(const niah_config *c) {
    char q[160];
    int ql = question(c, "owl", q, sizeof q);
    return 1 + (c->n_keys - 1 + c->n_values) * needle_len(c) + ql;
}

int niah_answer_len(const niah_config *c) { return c->n_values * c->key_digits + (c->n_values - 1) * 2 + 1; }

void niah_example_free(niah_example *e) {
    if (!e) return;
    free(e->ids);
    e->ids = NULL;
}

static int is_boundary(const unsigned char *s, int b, int n) {
    if (b <= 0 || b >= n) return 1;
    unsigned char p = s[b - 1];
    if (p == '\n') return 1;
    return b >= 2 && p == ' ' && (s[b - 2] == '.' || s[b - 2] == '!' || s[b - 2] == '?');
}

static int text_boundary(const unsigned char *s, size_t n, size_t b) {
    if (b == 0 || b == n) return 1;
    unsigned char p = s[b - 1];
    if (p == '\n') return 1;
    return b >= 2 && p == ' ' && (s[b - 2] == '.' || s[b - 2] == '!' || s[b - 2] == '?');
}

/* The haystack: H bytes ending at a sentence end. */
static task_status make_haystack(const niah_config *c, rng_t *r, int H, unsigned char *hay, char *err,
                                 size_t err_len) {
    if (H == 0) return TASK_OK;
    if (!c->text) {
        const char *F = filler_of(c);
        size_t f = strlen(F);
        size_t o = (f - (size_t)H % f) % f;
        for (int i = 0; i < H; i++) hay[i] = (unsigned char)F[(o + (size_t)i) % f];
        return TASK_OK;
    }
    if (c->text_len < (size_t)H) {
        task_errf(err, err_len, "niah: the haystack text has %zu bytes, a haystack of %d is needed", c->text_len, H);
        return TASK_ERR_DATA;
    }
    size_t lo = (size_t)H, hi = c->text_len; /* end points in [lo, hi] */
    size_t u = lo + (size_t)rng_below(r, (uint64_t)(hi - lo + 1)), e = u;
    while (e <= hi && !text_boundary(c->text, c->text_len, e)) e++;
    if (e > hi) {
        e = u;
        while (e > lo && !text_boundary(c->text, c->text_len, e)) e--;
    }
    memcpy(hay, c->text + e - (size_t)H, (size_t)H);
    return TASK_OK;
}

typedef struct {
    int b;        /* boundary in the haystack */
    int order;    /* tie-break: creation order */
    int asked;    /* belongs to the asked key */
    int name;     /* index into KEY_NAMES, or -1 */
    char value[12];
} needle;

static int cmp_needle(const void *x, const void *y) {
    const needle *a = x, *b = y;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->order - b->order;
}

task_status niah_make(const niah_config *c, int context_len, double depth, uint64_t seed, uint64_t index,
                      niah_example *ex, char *err, size_t err_len) {
    memset(ex, 0, sizeof *ex);
    task_status st = niah_validate(c, err, err_len);
    if (st) return st;
    if (!(depth >= 0 && depth <= 1)) {
        task_errf(err, err_len, "niah: depth must be in [0, 1] (got %g)", depth);
        return TASK_ERR_ARG;
    }
    int minp = niah_min_prompt_len(c);
    if (context_len < minp) {
        task_errf(err, err_len, "niah: context_len %d is shorter than the needles and question (%d tokens)",
                  context_len, minp);
        return TASK_ERR_ARG;
    }
    rng_t r;
    rng_seed(&r, task_stream_seed(seed, SALT_MAKE, index));

    int K = c->n_keys, V = c->n_values, D = c->key_digits;
    int nn = K - 1 + V;
    needle nd[NIAH_MAX_NEEDLES];

    /* names: K distinct, names[0] asked */
    int names[NIAH_MAX_KEYS];
    for (int i = 0; i < NIAH_MAX_KEYS; i++) names[i] = i;
    for (int i = 0; i < K; i++) { /* partial Fisher-Yates */
        int j = i + (int)rng_below(&r, (uint64_t)(NIAH_MAX_KEYS - i));
        int t = names[i];
        names[i] = names[j], names[j] = t;
    }
    /* values: nn distinct D-digit numbers */
    uint64_t base = 1;
    for (int i = 1; i < D; i++) base *= 10;
    uint64_t vals[NIAH_MAX_NEEDLES];
    for (int i = 0; i < nn; i++) {
        int dup;
        do {
            vals[i] = base + rng_below(&r, 9 * base);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= vals[j] == vals[i];
        } while (dup);
    }
    for (int i = 0; i < nn; i++) {
        nd[i].order = i;
        nd[i].asked = i < V;
        nd[i].name = K > 1 ? (i < V ? names[0] : names[i - V + 1]) : -1;
        snprintf(nd[i].value, sizeof nd[i].value, "%llu", (unsigned long long)vals[i]);
    }

    char q[160];
    int ql = question(c, K > 1 ? KEY_NAMES[names[0]] : "", q, sizeof q);
    int nl = needle_len(c);
    int H = context_len - 1 - nn * nl - ql;
    int na = niah_answer_len(c);

    unsigned char *hay = malloc((size_t)H + 1);
    int *bounds = malloc(sizeof(int) * ((size_t)H + 1));
    ex->ids = malloc(sizeof(int32_t) * ((size_t)context_len + (size_t)na));
    if (!hay || !bounds || !ex->ids) {
        free(hay), free(bounds), niah_example_free(ex);
        task_errf(err, err_len, "niah: out of memory for a %d-token example", context_len);
        return TASK_ERR_OOM;
    }
    if ((st = make_haystack(c, &r, H, hay, err, err_len))) {
        free(hay), free(bounds), niah_example_free(ex);
        return st;
    }
    int nb = 0;
    bounds[nb++] = 0; /* offset 0 is always a boundary */
    for (int b = 1; b <= H; b++)
        if (is_boundary(hay, b, H)) bounds[nb++] = b;
    /* the asked needle: the boundary nearest depth * H (ties: the earlier) */
    double target = depth * H;
    int best = bounds[0];
    for (int i = 1; i < nb; i++)
        if (fabs(bounds[i] - target) < fabs(best - target)) best = bounds[i];
    nd[0].b = best;
    for (int i = 1; i < nn; i++) nd[i].b = bounds[rng_below(&r, (uint64_t)nb)];
    qsort(nd, (size_t)nn, sizeof nd[0], cmp_needle);

    /* assemble: BOS hay needles question | answer */
    int p = 0, h = 0;
    ex->ids[p++] = TASK_TOK_BOS;
    int nv = 0;
    for (int i = 0; i < nn; i++) {
        while (h < nd[i].b) ex->ids[p++] = hay[h++];
        char s[96];
        int sl = nd[i].name >= 0
                     ? snprintf(s, sizeof s, "The pass key for %s is %s. Remember it. ", KEY_NAMES[nd[i].name], nd[i].value)
                     : snprintf(s, sizeof s, "The pass key is %s. Remember it. ", nd[i].value);
        ex->needle_pos[i] = p;
        ex->needle_len[i] = sl;
        ex->needle_is_asked[i] = nd[i].asked;
        if (nd[i].order == 0) ex->asked_pos = p;
        if (nd[i].asked) snprintf(ex->values[nv++], sizeof ex->values[0], "%s", nd[i].value);
        for (int j = 0; j < sl; j++) ex->ids[p++] = (unsigned char)s[j];
    }
    while (h < H) ex->ids[p++] = hay[h++];
    for (int j = 0; j < ql; j++) ex->ids[p++] = (unsigned char)q[j];
    ex->n_prompt = p;
    /* the answer */
    int al = 0;
    for (int v = 0; v < nv; v++)
        al += snprintf(ex->answer + al, sizeof ex->answer - (size_t)al, "%s%s", v ? ", " : "", ex->values[v]);
    al += snprintf(ex->answer + al, sizeof ex->answer - (size_t)al, ".");
    for (int j = 0; j < al; j++) ex->ids[p++] = (unsigned char)ex->answer[j];
    ex->n_answer = al;

    ex->hay_len = H;
    ex->depth_asked = depth;
    ex->depth_actual = H > 0 ? (double)best / H : 0;
    ex->n_needles = nn;
    ex->n_values = nv;
    snprintf(ex->key_name, sizeof ex->key_name, "%s", K > 1 ? KEY_NAMES[names[0]] : "");
    free(hay), free(bounds);
    if (ex->n_prompt != context_len || ex->n_answer != na) { /* cannot happen: a bug if it does */
        niah_example_free(ex);
        task_errf(err, err_len, "niah: internal length mismatch (%d != %d)", ex->n_prompt, context_len);
        return TASK_ERR_DATA;
    }
    return TASK_OK;
}

task_status niah_eval_example(const niah_config *c, int context_len, double depth, int sample, niah_example *ex,
                              char *err, size_t err_len) {
    if (sample < 0) {
        memset(ex, 0, sizeof *ex);
        task_errf(err, err_len, "niah: sample must be >= 0");
        return TASK_ERR_ARG;
    }
    uint64_t idx = task_stream_seed((uint64_t)context_len, (uint64_t)llround(depth * 1e6), (uint64_t)sample);
    return niah_make(c, context_len, depth, c->test_seed ^ SALT_TEST, idx, ex, err, err_len);
}

task_status niah_train_batch(const niah_config *c, int64_t i, int batch_size, int context, int32_t *ids,
                             int32_t *labels, char *err, size_t err_len) {
    task_status st = niah_validate(c, err, err_len);
    if (st) return st;
    if (i < 0 || batch_size < 1) {
        task_errf(err, err_len, "niah: batch index must be >= 0 and batch size >= 1");
        return TASK_ERR_ARG;
    }
    int na = niah_answer_len(c);
    int lo = niah_min_prompt_len(c) + na;
    if (c->min_train_len > lo) lo = c->min_train_len;
    if (context < lo) {
        task_errf(err, err_len, "niah: a training context of %d is shorter than the shortest example (%d tokens)",
                  context, lo);
        return TASK_ERR_ARG;
    }
    for (int row = 0; row < batch_size; row++) {
        uint64_t idx = (uint64_t)(i * batch_size + row);
        rng_t r;
        rng_seed(&r, task_stream_seed(c->train_seed, SALT_SHAPE, idx));
        int len = lo + (int)rng_below(&r, (uint64_t)(context - lo + 1));
        double depth = rng_uniform(&r);
        niah_example ex;
        if ((st = niah_make(c, len - na, depth, c->train_seed ^ SALT_TRAIN, idx, &ex, err, err_len))) return st;
        int32_t *ri = ids + (size_t)row * context, *rl = labels + (size_t)row * context;
        int n = ex.n_prompt + ex.n_answer;
        for (int t = 0; t < context; t++) {
            ri[t] = t < n ? ex.ids[t] : TASK_TOK_PAD;
            rl[t] = TASK_IGNORE;
        }
        for (int t = ex.n_prompt - 1; t < n - 1; t++) rl[t] = ex.ids[t + 1];
        niah_example_free(&ex);
    }
    return TASK_OK;
}

static task_status batcher_get(task_batcher *b, int64_t i, int bs, int context, int32_t *ids, int32_t *labels,
                               char *err, size_t err_len) {
    return niah_train_batch(b->ctx, i, bs, context, ids, labels, err, err_len);
}

static void batcher_free(task_batcher *b) {
    free(b->ctx);
    free(b);
}

task_status niah_batcher_create(const niah_config *c, task_batcher **out, char *err, size_t err_len) {
    *out = NULL;
    task_status st = niah_validate(c, err, err_len);
    if (st) return st;
    task_batcher *b = calloc(1, sizeof *b);
    niah_config *cc = malloc(sizeof *cc);
    if (!b || !cc) {
        free(b), free(cc);
        task_errf(err, err_len, "niah: out of memory");
        return TASK_ERR_OOM;
    }
    *cc = *c;
    b->ctx = cc;
    b->get_batch = batcher_get;
    b->free = batcher_free;
    b->max_context = 0;
    b->vocab_needed = TASK_BYTE_VOCAB;
    b->n_tokens = 0;
    *out = b;
    return TASK_OK;
}

/* ---- scoring ---- */

#define MAX_PRODUCED 32

/* The numbers in the continuation (up to the first '.', newline or special);
 * a number longer than 11 digits is kept as "x" (it matches nothing). */
static int produced_numbers(const int32_t *gen, int n, char out[][12]) {
    int k = 0, len = 0;
    char cur[12];
    for (int i = 0; i <= n; i++) {
        int t = i < n ? gen[i] : -1;
        int end = t < 0 || t > 255 || t == '.' || t == '\n';
        if (!end && t >= '0' && t <= '9') {
            if (len < 11) cur[len] = (char)t;
            len++;
            continue;
        }
        if (len) { /* a number ends */
            if (k < MAX_PRODUCED) {
                if (len <= 11) {
                    memcpy(out[k], cur, (size_t)len);
                    out[k][len] = 0;
                } else {
                    strcpy(out[k], "x");
                }
                k++;
            }
            len = 0;
        }
        if (end) break;
    }
    return k;
}

int niah_score(const niah_example *ex, const int32_t *gen, int n_gen) {
    char got[MAX_PRODUCED][12];
    int k = produced_numbers(gen, n_gen, got);
    if (k != ex->n_values) return 0;
    int used[MAX_PRODUCED] = {0};
    for (int v = 0; v < ex->n_values; v++) {
        int found = 0;
        for (int j = 0; j < k && !found; j++)
            if (!used[j] && strcmp(got[j], ex->values[v]) == 0) used[j] = 1, found = 1;
        if (!found) return 0;
    }
    return 1;
}

double niah_recall(const niah_example *ex, const int32_t *gen, int n_gen) {
    char got[MAX_PRODUCED][12];
    int k = produced_numbers(gen, n_gen, got);
    if (ex->n_values == 0) return NAN;
    int hit = 0;
    for (int v = 0; v < ex->n_values; v++)
        for (int j = 0; j < k; j++)
            if (strcmp(got[j], ex->values[v]) == 0) {
                hit++;
                break;
            }
    return (double)hit / ex->n_values;
}

void niah_default_depths(double *depths) {
    for (int i = 0; i < NIAH_N_DEPTHS; i++) depths[i] = i / 10.0;
}

/* ---- grid ---- */

task_status niah_grid_init(niah_grid *g, const int *lens, int n_lens, const double *depths, int n_depths,
                           char *err, size_t err_len) {
    memset(g, 0, sizeof *g);
    if (n_lens < 1 || n_depths < 1) {
        task_errf(err, err_len, "niah: the grid needs at least one length and one depth");
        return TASK_ERR_ARG;
    }
    g->n_lens = n_lens, g->n_depths = n_depths;
    g->lens = malloc(sizeof(int) * (size_t)n_lens);
    g->depths = malloc(sizeof(double) * (size_t)n_depths);
    g->k = calloc((size_t)n_lens * n_depths, sizeof(int64_t));
    g->n = calloc((size_t)n_lens * n_depths, sizeof(int64_t));
    g->rs = calloc((size_t)n_lens * n_depths, sizeof(double));
    g->rss = calloc((size_t)n_lens * n_depths, sizeof(double));
    if (!g->lens || !g->depths || !g->k || !g->n || !g->rs || !g->rss) {
        niah_grid_free(g);
        task_errf(err, err_len, "niah: out of memory for the grid");
        return TASK_ERR_OOM;
    }
    memcpy(g->lens, lens, sizeof(int) * (size_t)n_lens);
    memcpy(g->depths, depths, sizeof(double) * (size_t)n_depths);
    return TASK_OK;
}

void niah_grid_free(niah_grid *g) {
    free(g->lens), free(g->depths), free(g->k), free(g->n), free(g->rs), free(g->rss);
    memset(g, 0, sizeof *g);
}

void niah_grid_add(niah_grid *g, int li, int di, int correct, double recall) {
    if (li < 0 || li >= g->n_lens || di < 0 || di >= g->n_depths) return;
    size_t i = (size_t)di * g->n_lens + li;
    g->n[i]++;
    g->k[i] += correct != 0;
    g->rs[i] += recall;
    g->rss[i] += recall * recall;
}

void niah_grid_recall(const niah_grid *g, int li, int di, double *mean, double *lo, double *hi) {
    size_t i = (size_t)di * g->n_lens + li;
    int64_t n = g->n[i];
    double m = n ? g->rs[i] / n : NAN, l = 0, h = 1;
    if (n > 1) {
        double var = (g->rss[i] - n * m * m) / (n - 1);
        double half = TASK_Z95 * sqrt(var > 0 ? var / n : 0);
        l = m - half < 0 ? 0 : m - half;
        h = m + half > 1 ? 1 : m + half;
    }
    if (mean) *mean = m;
    if (lo) *lo = n ? l : NAN;
    if (hi) *hi = n ? h : NAN;
}

static void cell_stats(int64_t k, int64_t n, double *acc, double *lo, double *hi, int64_t *nout) {
    double l, h;
    task_wilson(k, n, TASK_Z95, &l, &h);
    if (acc) *acc = n ? (double)k / n : NAN;
    if (lo) *lo = l;
    if (hi) *hi = h;
    if (nout) *nout = n;
}

void niah_grid_cell(const niah_grid *g, int li, int di, double *acc, double *lo, double *hi, int64_t *n) {
    size_t i = (size_t)di * g->n_lens + li;
    cell_stats(g->k[i], g->n[i], acc, lo, hi, n);
}

void niah_grid_column(const niah_grid *g, int li, double *acc, double *lo, double *hi, int64_t *n) {
    int64_t k = 0, t = 0;
    for (int d = 0; d < g->n_depths; d++) {
        k += g->k[(size_t)d * g->n_lens + li];
        t += g->n[(size_t)d * g->n_lens + li];
    }
    cell_stats(k, t, acc, lo, hi, n);
}

#define APPEND(...)                                                                     \
    do {                                                                                \
        int w_ = snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__); \
        if (w_ > 0) len += (size_t)w_;                                                  \
    } while (0)

int niah_grid_format(const niah_grid *g, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    APPEND("| depth \\ context |");
    for (int l = 0; l < g->n_lens; l++) APPEND(" %d |", g->lens[l]);
    APPEND("\n|---|");
    for (int l = 0; l < g->n_lens; l++) APPEND("---:|");
    APPEND("\n");
    for (int d = 0; d < g->n_depths; d++) {
        APPEND("| %g%% |", g->depths[d] * 100);
        for (int l = 0; l < g->n_lens; l++) {
            double acc;
            int64_t n;
            niah_grid_cell(g, l, d, &acc, NULL, NULL, &n);
            if (n) APPEND(" %.0f |", acc * 100);
            else APPEND(" - |");
        }
        APPEND("\n");
    }
    APPEND("| all |");
    for (int l = 0; l < g->n_lens; l++) {
        double acc, lo, hi;
        int64_t n;
        niah_grid_column(g, l, &acc, &lo, &hi, &n);
        if (n) APPEND(" %.0f [%.0f, %.0f] |", acc * 100, lo * 100, hi * 100);
        else APPEND(" - |");
    }
    APPEND("\n");
    return (int)len;
}
