/*
 * ppl.h: byte-level language modelling: corpora, training windows, evaluation
 * windows and the perplexity metrics.
 *
 * Tokens are bytes (0..255) plus the specials of task.h; documents of a corpus
 * are joined with TASK_TOK_EOS after each one. A corpus has a train split and a
 * test split (a text is split at a fraction; the synthetic source generates the
 * two from different streams).
 *
 * Corpora:
 *   - any file or memory buffer (one document);
 *   - "licenses", the default every Debian/Ubuntu machine has: the license texts
 *     of /usr/share/common-licenses (package base-files, Essential: always
 *     installed), a fixed list of files in a fixed order, about 237 KB; the test
 *     split is the last 10% (the tail of GPL-3). Files missing on a machine are
 *     skipped and named in the corpus's `source`; the checksum identifies the text;
 *   - "synthetic" (ppl_synth_*, below): a source whose entropy rate is known
 *     exactly, with and without the long context.
 *
 * Evaluation windows over the test split (every window has `ctx` tokens):
 *   - PPL_DISJOINT: window w covers tokens [w ctx, (w+1) ctx) and predicts
 *     tokens w ctx + 1 .. (w+1) ctx: every token but the first is scored once;
 *     floor((n - 1) / ctx) windows.
 *   - PPL_CHUNK: llama-perplexity's mode: chunk w covers [w ctx, (w+1) ctx) and
 *     only its second half is scored: positions first = ctx/2 .. ctx-2 predict the
 *     chunk's tokens first+1 .. ctx-1 (ctx - 1 - ctx/2 tokens per chunk);
 *     floor(n / ctx) chunks. With bos, the chunk's first token is replaced by
 *     TASK_TOK_BOS (llama.cpp does that for vocabularies that add BOS).
 *
 * Metrics from per-token NLL (nats): mean NLL over scored tokens, perplexity
 * exp(NLL), bits per byte (total NLL / ln 2 / scored byte tokens; specials count
 * in the NLL but not as bytes), the standard error of the mean NLL over windows
 * (sd of the window means / sqrt(windows)), carried to ppl and bpb by the delta
 * method, and llama-perplexity's token-level error for reference.
 */
#ifndef DMABENCH_PPL_H
#define DMABENCH_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

typedef struct {
    int32_t *tok;
    int64_t n;
} ppl_tokens;

/* The synthetic source. A paragraph is
 *
 *   "@" KEY "\n"                          KEY: key_len letters from A..P (4 bits each)
 *   S lines "d: w w ... w.\n"             d = 0 .. S-1, W words of 5 letters each
 *   "=" KEY "\n"                          the same KEY again: a copy from D bytes back
 *
 * Words come from a fixed list of 32; each word is followed by one of
 * `branching` successors (a fixed table), uniformly, across lines and
 * paragraphs: log2(branching) bits per word. A line is 6W + 4 bytes, a
 * paragraph P = 2 (key_len + 2) + S (6W + 4) bytes, and each recalled letter
 * sits D = P - (key_len + 2) bytes after its definition. Entropy rates:
 *
 *   long  = (4 key_len + S W log2 b) / P          bits per byte (full context)
 *   short = (8 key_len + S W log2 b) / P          (no context reaching D back)
 *
 * An ideal model whose context is at least c_min = max(6W + 4, 2 key_len + 18)
 * bytes but shorter than D reaches `short`; with a context of D or more, `long`.
 * Defaults (key_len 16, S 8, W 10, b 4): P = 548, D = 530, c_min = 64,
 * long = 224/548 = 0.408759 bits/byte, short = 288/548 = 0.525547 bits/byte. */
typedef struct {
    int key_len;         /* 1..64 (default 16) */
    int n_lines;         /* S, 1..10 (default 8) */
    int words_per_line;  /* W, 1..32 (default 10) */
    int branching;       /* b: 1, 2, 4, 8 or 16 (default 4) */
} ppl_synth_config;

typedef struct {
    double long_bpb, short_bpb;       /* the two entropy rates, bits per byte */
    double long_bits, short_bits;     /* per paragraph */
    int paragraph_len;                /* P */
    int copy_distance;                /* D */
    int min_context;                  /* c_min */
} ppl_synth_rates;

void ppl_synth_config_default(ppl_synth_config *c);
task_status ppl_synth_validate(const ppl_synth_config *c, char *err, size_t err_len);
void ppl_synth_get_rates(const ppl_synth_config *c, ppl_synth_rates *r);
/* The five-letter word list (32 words) and the successor table: succ[i*b + j]. */
const char *ppl_synth_word(int i);
int ppl_synth_successor(const ppl_synth_config *c, int word, int j);

/* n bytes of the source from stream `seed` into text (whole paragraphs, the last
 * one cut at n). bits (may be NULL): per byte, the ideal model's cost in bits
 * given at least c_min bytes of context but not the copy; recall (may be NULL):
 * 1 at the bytes that copy a key letter (cost 4 bits more without the copy). */
task_status ppl_synth_generate(const ppl_synth_config *c, uint64_t seed, int64_t n, unsigned char *text,
                               float *bits, uint8_t *recall, char *err, size_t err_len);

typedef struct {
    char name[32];         /* "file", "memory", "licenses", "synthetic" */
    char source[512];      /* the path, or the files used, or the synthetic settings */
    uint64_t checksum;     /* FNV-1a 64 over all tokens (train then test) */
    int n_docs;
    ppl_tokens train, test;
    /* synthetic corpora only */
    int synthetic;
    ppl_synth_config synth;
    ppl_synth_rates rates;
    float *test_bits;      /* per test token, as ppl_synth_generate's bits */
    uint8_t *test_recall;
} ppl_corpus;

#define PPL_LICENSES_DIR "/usr/share/common-licenses"
#define PPL_DEFAULT_TEST_FRAC 0.1

/* A text file (one document), split at 1 - test_frac. */
task_status ppl_corpus_from_file(const char *path, double test_frac, ppl_corpus *c, char *err, size_t err_len);
/* A buffer (one document). */
task_status ppl_corpus_from_memory(const void *buf, size_t n, double test_frac, ppl_corpus *c, char *err,
                                   size_t err_len);
/* Several documents, each followed by TASK_TOK_EOS, split at 1 - test_frac. */
task_status ppl_corpus_from_docs(const unsigned char *const *docs, const size_t *lens, int n_docs, double test_frac,
                                 ppl_corpus *c, char *err, size_t err_len);
/* The default: the license texts under dir (NULL: PPL_LICENSES_DIR). */
task_status ppl_corpus_licenses(const char *dir, double test_frac, ppl_corpus *c, char *err, size_t err_len);
/* The synthetic source: n_train and n_test bytes from two streams of seed. */
task_status ppl_corpus_synthetic(const ppl_synth_config *sc, int64_t n_train, int64_t n_test, uint64_t seed,
                                 ppl_corpus *c, char *err, size_t err_len);
void ppl_corpus_free(ppl_corpus *c);

/* The bytes of a split (specials become '\n'), malloc'ed: e.g. a haystack for
 * niah. */
task_status ppl_tokens_text(const ppl_tokens *t, unsigned char **out, size_t *n, char *err, size_t err_len);

/* ---- training ---- */

/* Batch i: batch_size windows of context + 1 train tokens at offsets drawn from
 * (seed, i); ids = the first context tokens, labels = the next ones. */
task_status ppl_train_batch(const ppl_corpus *c, uint64_t seed, int64_t i, int batch_size, int context,
                            int32_t *ids, int32_t *labels, char *err, size_t err_len);
/* A batch source over ppl_train_batch (c is borrowed: it must outlive the source). */
task_status ppl_batcher_create(const ppl_corpus *c, uint64_t seed, task_batcher **out, char *err, size_t err_len);

/* ---- evaluation windows ---- */

typedef enum { PPL_DISJOINT = 0, PPL_CHUNK = 1 } ppl_mode;

const char *ppl_mode_name(ppl_mode m); /* "disjoint", "chunk" */
/* Windows of ctx tokens over n tokens in mode m (0 when n is too short, or
 * ctx < 3 in chunk mode, which would score nothing). */
int64_t ppl_num_windows(int64_t n, int ctx, ppl_mode m);
/* Scored positions per window: ctx (disjoint) or ctx - 1 - ctx/2 (chunk). */
int ppl_scored_per_window(int ctx, ppl_mode m);
/* Window w of t: ids[ctx], labels[ctx] (TASK_IGNORE where not scored); *start
 * (may be NULL) receives the token offset of ids[0] in t. */
task_status ppl_window(const ppl_tokens *t, int ctx, ppl_mode m, int bos, int64_t w, int32_t *ids,
                       int32_t *labels, int64_t *start, char *err, size_t err_len);

/* ---- metrics ---- */

typedef struct {
    double sum_nll, sum_nll_sq; /* over scored tokens */
    int64_t n_tokens, n_bytes;
    double w_sum, w_sum_sq;     /* of per-window mean NLLs */
    int64_t n_windows;
} ppl_acc;

typedef struct {
    double nll;             /* mean NLL per scored token, nats */
    double ppl;             /* exp(nll) */
    double bits_per_byte;   /* total NLL / ln 2 / scored bytes */
    double stderr_nll;      /* of the mean over windows (NaN with < 2 windows) */
    double stderr_ppl, stderr_bpb;
    double stderr_tokens_nll; /* llama-perplexity's: token-level sd / sqrt(n - 1) */
    int64_t n_tokens, n_bytes, n_windows;
} ppl_metrics;

void ppl_acc_init(ppl_acc *a);
/* One window: nll[ctx] per position (read only where labels != TASK_IGNORE). A
 * window with no scored position is skipped. */
void ppl_acc_add_window(ppl_acc *a, const float *nll, const int32_t *labels, int ctx);
void ppl_acc_metrics(const ppl_acc *a, ppl_metrics *m);

/* Bits per byte of the byte histogram of t (specials left out): the unigram
 * model's entropy, the reference a language model must beat. */
double ppl_unigram_bpb(const ppl_tokens *t);

/* The ideal model's bits per byte on the synthetic test split, scored exactly as
 * the windows (ctx, m) score it: the local cost of every scored byte, plus 4 bits
 * for a copied letter whose definition is outside the window. *exact (may be
 * NULL) is 1 when every scored position sees at least c_min tokens of its
 * window (then the number is the exact floor; else a lower bound). NaN when the
 * corpus is not synthetic or has no window. */
double ppl_synth_floor_bpb(const ppl_corpus *c, int ctx, ppl_mode m, int *exact);

/* FNV-1a 64 of tokens (the checksum corpora carry). */
uint64_t ppl_checksum(const int32_t *tok, int64_t n, uint64_t h);
#define PPL_FNV_OFFSET 0xcbf29ce484222325ull

#endif
