/*
 * ppl_synth.c: the synthetic byte source with a known entropy rate (ppl.h).
 *
 * Everything the ideal model pays is one of three kinds of choice: a key letter
 * (uniform over 16 letters: 4 bits), a word (uniform over the `branching`
 * successors of the previous word: log2 b bits, spread over the word's letters
 * by how many successors share the prefix so far), and the copied key letters
 * (0 bits when the definition is in view, else 4). Every other byte is fixed by
 * the layout, which a context of c_min bytes always reveals.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ppl/ppl.h"
#include "rng.h"

#define N_WORDS 32
#define WORD_LEN 5
#define KEY_ALPHABET 16

static const char *const WORDS[N_WORDS] = {
    "apple", "brave", "cloud", "dream", "eagle", "flame", "grape", "house", "ivory", "jolly", "knife",
    "lemon", "mango", "night", "ocean", "piano", "queen", "river", "stone", "tiger", "urban", "vivid",
    "water", "xenon", "young", "zebra", "amber", "blaze", "crisp", "delta", "ember", "frost"};

#define SUCC_SEED 0x73756363ull /* "succ": the successor table is part of the source's definition */

void ppl_synth_config_default(ppl_synth_config *c) {
    c->key_len = 16;
    c->n_lines = 8;
    c->words_per_line = 10;
    c->branching = 4;
}

task_status ppl_synth_validate(const ppl_synth_config *c, char *err, size_t err_len) {
    if (c->key_len < 1 || c->key_len > 64) {
        task_errf(err, err_len, "ppl synthetic: key_len must be in 1..64 (got %d)", c->key_len);
        return TASK_ERR_ARG;
    }
    if (c->n_lines < 1 || c->n_lines > 10) {
        task_errf(err, err_len, "ppl synthetic: n_lines must be in 1..10 (got %d)", c->n_lines);
        return TASK_ERR_ARG;
    }
    if (c->words_per_line < 1 || c->words_per_line > 32) {
        task_errf(err, err_len, "ppl synthetic: words_per_line must be in 1..32 (got %d)", c->words_per_line);
        return TASK_ERR_ARG;
    }
    int b = c->branching;
    if (b != 1 && b != 2 && b != 4 && b != 8 && b != 16) {
        task_errf(err, err_len, "ppl synthetic: branching must be 1, 2, 4, 8 or 16 (got %d)", b);
        return TASK_ERR_ARG;
    }
    return TASK_OK;
}

void ppl_synth_get_rates(const ppl_synth_config *c, ppl_synth_rates *r) {
    int K = c->key_len, S = c->n_lines, W = c->words_per_line;
    int line = 6 * W + 4;
    double wbits = log2((double)c->branching);
    r->paragraph_len = 2 * (K + 2) + S * line;
    r->copy_distance = r->paragraph_len - (K + 2);
    r->min_context = line > 2 * K + 18 ? line : 2 * K + 18;
    r->long_bits = 4.0 * K + S * W * wbits;
    r->short_bits = r->long_bits + 4.0 * K;
    r->long_bpb = r->long_bits / r->paragraph_len;
    r->short_bpb = r->short_bits / r->paragraph_len;
}

const char *ppl_synth_word(int i) { return i >= 0 && i < N_WORDS ? WORDS[i] : NULL; }

/* successors of every word: the first b entries of a fixed permutation per word */
static void succ_table(int b, int *succ) {
    for (int w = 0; w < N_WORDS; w++) {
        int perm[N_WORDS];
        for (int i = 0; i < N_WORDS; i++) perm[i] = i;
        rng_t r;
        rng_seed(&r, task_stream_seed(SUCC_SEED, 0, (uint64_t)w));
        for (int i = 0; i < b; i++) {
            int j = i + (int)rng_below(&r, (uint64_t)(N_WORDS - i));
            int t = perm[i];
            perm[i] = perm[j], perm[j] = t;
            succ[w * b + i] = perm[i];
        }
    }
}

int ppl_synth_successor(const ppl_synth_config *c, int word, int j) {
    int succ[N_WORDS * 16];
    if (word < 0 || word >= N_WORDS || j < 0 || j >= c->branching) return -1;
    succ_table(c->branching, succ);
    return succ[word * c->branching + j];
}

/* per-letter costs of word w among the candidate set cand[0..nc) */
static void word_bits(int w, const int *cand, int nc, float *out) {
    int alive[N_WORDS];
    int na = nc;
    memcpy(alive, cand, sizeof(int) * (size_t)nc);
    for (int k = 0; k < WORD_LEN; k++) {
        int keep = 0;
        for (int i = 0; i < na; i++)
            if (WORDS[alive[i]][k] == WORDS[w][k]) alive[keep++] = alive[i];
        out[k] = (float)log2((double)na / keep);
        na = keep;
    }
}

typedef struct {
    unsigned char *text;
    float *bits;
    uint8_t *recall;
    int64_t n, p; /* capacity, written */
} sink;

static void put(sink *s, unsigned char ch, float bits, int recall) {
    if (s->p < s->n) {
        s->text[s->p] = ch;
        if (s->bits) s->bits[s->p] = bits;
        if (s->recall) s->recall[s->p] = (uint8_t)recall;
    }
    s->p++;
}

task_status ppl_synth_generate(const ppl_synth_config *c, uint64_t seed, int64_t n, unsigned char *text,
                               float *bits, uint8_t *recall, char *err, size_t err_len) {
    task_status st = ppl_synth_validate(c, err, err_len);
    if (st) return st;
    if (n < 0 || (n > 0 && !text)) {
        task_errf(err, err_len, "ppl synthetic: bad length or buffer");
        return TASK_ERR_ARG;
    }
    int K = c->key_len, S = c->n_lines, W = c->words_per_line, b = c->branching;
    int succ[N_WORDS * 16];
    succ_table(b, succ);
    int all[N_WORDS];
    for (int i = 0; i < N_WORDS; i++) all[i] = i;

    rng_t r;
    rng_seed(&r, task_stream_seed(seed, 0x73796e74ull /* "synt" */, 0));
    sink s = {text, bits, recall, n, 0};
    int prev = -1; /* the previous word; -1 before the first */
    char key[64];
    while (s.p < n) {
        put(&s, '@', 0, 0);
        for (int k = 0; k < K; k++) {
            key[k] = (char)('A' + rng_below(&r, KEY_ALPHABET));
            put(&s, (unsigned char)key[k], 4.0f, 0);
        }
        put(&s, '\n', 0, 0);
        for (int l = 0; l < S; l++) {
            put(&s, (unsigned char)('0' + l), 0, 0);
            put(&s, ':', 0, 0);
            for (int wi = 0; wi < W; wi++) {
                put(&s, ' ', 0, 0);
                int w;
                float wb[WORD_LEN];
                if (prev < 0) {
                    w = (int)rng_below(&r, N_WORDS);
                    word_bits(w, all, N_WORDS, wb);
                } else {
                    w = succ[prev * b + (int)rng_below(&r, (uint64_t)b)];
                    word_bits(w, succ + prev * b, b, wb);
                }
                for (int k = 0; k < WORD_LEN; k++) put(&s, (unsigned char)WORDS[w][k], wb[k], 0);
                prev = w;
            }
            put(&s, '.', 0, 0);
            put(&s, '\n', 0, 0);
        }
        put(&s, '=', 0, 0);
        for (int k = 0; k < K; k++) put(&s, (unsigned char)key[k], 0, 1);
        put(&s, '\n', 0, 0);
    }
    return TASK_OK;
}
