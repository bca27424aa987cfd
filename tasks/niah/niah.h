/*
 * niah.h: needle in a haystack (passkey retrieval) at byte level, with RULER-
 * style multi-key and multi-value options.
 *
 * A prompt of exactly context_len tokens:
 *
 *   BOS  haystack[0:b]  NEEDLE  haystack[b:H]  QUESTION
 *
 * then the answer. With one key and one value (the default):
 *   NEEDLE   = "The pass key is 73915. Remember it. "
 *   QUESTION = "\nWhat is the pass key? The pass key is "
 *   answer   = "73915."            (the digits, then "." as the terminator)
 * With n_keys K > 1 every needle names its key ("The pass key for owl is 73915.
 * Remember it. "), K different names, and the question asks for one of them
 * ("... What is the pass key for owl? The pass key for owl is "). With n_values
 * V > 1 the asked key has V needles with different values and the question asks
 * for all ("What are all the pass keys [for owl]? The pass keys [for owl] are "),
 * answered in order of appearance: "11111, 22222, 33333.". The other K - 1 keys
 * have one needle each (distractors).
 *
 * The haystack (H bytes, H = context_len - 1 - needles - question) is either a
 * filler repeated (default: the passkey-retrieval filler "The grass is green.
 * The sky is blue. The sun is yellow. Here we go. There and back again. ") or a
 * stretch of corpus text; it always ends at a sentence end (so depth 100% puts
 * the needle right before the question) and may start mid-sentence. The asked
 * needle (the first value of the asked key) goes at the sentence boundary
 * nearest depth * H; the other needles at sentence boundaries drawn uniformly.
 * A sentence boundary is offset 0, offset H, or just after ". ", "! ", "? " or a
 * newline.
 *
 * Keys are key_digits-digit numbers without a leading zero (5 by default).
 * Evaluation cells (context_len x depth x sample) come from the test seed;
 * training examples (random length up to the training context, random depth,
 * labels only on the answer) from the train seed.
 */
#ifndef DMABENCH_NIAH_H
#define DMABENCH_NIAH_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

#define NIAH_MAX_KEYS 16   /* distinct key names available */
#define NIAH_MAX_VALUES 16
#define NIAH_MAX_NEEDLES (NIAH_MAX_KEYS - 1 + NIAH_MAX_VALUES)
#define NIAH_N_DEPTHS 11   /* 0%, 10%, ..., 100% */

typedef struct {
    int n_keys;                 /* K >= 1 (default 1) */
    int n_values;               /* V >= 1 (default 1) */
    int key_digits;             /* 1..9 (default 5) */
    const char *filler;         /* the repeated haystack (NULL: the default filler) */
    const unsigned char *text;  /* corpus text for the haystack instead (borrowed; NULL: filler) */
    size_t text_len;
    int min_train_len;          /* shortest training example (0: the shortest possible) */
    uint64_t train_seed;        /* default 0 */
    uint64_t test_seed;         /* default 1 */
} niah_config;

void niah_config_default(niah_config *c);
task_status niah_validate(const niah_config *c, char *err, size_t err_len);

/* The shortest prompt the config allows (no haystack at all), and the length of
 * the answer in tokens (digits, separators and the terminator "."). */
int niah_min_prompt_len(const niah_config *c);
int niah_answer_len(const niah_config *c);

typedef struct {
    int32_t *ids;        /* prompt then answer: n_prompt + n_answer tokens (owned) */
    int n_prompt;        /* == the context_len asked for */
    int n_answer;
    int hay_len;         /* H, haystack bytes (needles and question excluded) */
    double depth_asked;
    double depth_actual; /* b / H for the asked needle (0 when H = 0) */
    int n_needles;
    int needle_pos[NIAH_MAX_NEEDLES]; /* token offset in ids of each needle, in text order */
    int needle_len[NIAH_MAX_NEEDLES];
    int needle_is_asked[NIAH_MAX_NEEDLES]; /* 1 for the asked key's needles */
    int asked_pos;       /* token offset of the asked needle (the one placed at the depth) */
    int n_values;        /* values to produce */
    char values[NIAH_MAX_VALUES][12]; /* the asked key's values in text order */
    char key_name[8];    /* "" with one key */
    char answer[NIAH_MAX_VALUES * 12 + 4]; /* the expected answer text, terminator included */
} niah_example;

void niah_example_free(niah_example *e);

/* One example with a prompt of exactly context_len tokens and the asked needle
 * at depth (0..1), from the stream (seed, index). */
task_status niah_make(const niah_config *c, int context_len, double depth, uint64_t seed, uint64_t index,
                      niah_example *ex, char *err, size_t err_len);

/* Evaluation cell example: sample s of (context_len, depth), from the test seed.
 * The same (context_len, depth, s) always gives the same example, whatever
 * other cells are evaluated. */
task_status niah_eval_example(const niah_config *c, int context_len, double depth, int sample, niah_example *ex,
                              char *err, size_t err_len);

/* Training batch i of batch_size rows of `context` tokens (train seed): each row
 * one example of a random length in [max(min_train_len, shortest), context]
 * with a random depth, padded after its end with TASK_TOK_PAD; labels only on
 * the answer tokens (the terminator included). */
task_status niah_train_batch(const niah_config *c, int64_t i, int batch_size, int context, int32_t *ids,
                             int32_t *labels, char *err, size_t err_len);

/* A batch source over niah_train_batch (copies c; c->text stays borrowed). */
task_status niah_batcher_create(const niah_config *c, task_batcher **out, char *err, size_t err_len);

/* ---- scoring ---- */

/* The generated continuation (tokens; bytes, a special token ends it) is read
 * up to the first ".", newline or special token; the numbers in it (runs of
 * digits) are the answer produced. Exact match: with one value, exactly one
 * number and it is the value; with several, exactly the expected values, each
 * once, in any order. Returns 1 or 0. */
int niah_score(const niah_example *ex, const int32_t *gen, int n_gen);
/* RULER's lenient metric: the fraction of the expected values among the numbers
 * produced (1 or 0 with one value). */
double niah_recall(const niah_example *ex, const int32_t *gen, int n_gen);

/* The depths 0, 0.1, ..., 1 (NIAH_N_DEPTHS of them). */
void niah_default_depths(double *depths);

/* ---- the depth x length matrix ---- */

typedef struct {
    int n_lens, n_depths;
    int *lens;
    double *depths;
    int64_t *k, *n; /* (n_depths, n_lens): correct and total per cell */
    double *rs, *rss; /* (n_depths, n_lens): sum and sum of squares of the recall */
} niah_grid;

task_status niah_grid_init(niah_grid *g, const int *lens, int n_lens, const double *depths, int n_depths,
                           char *err, size_t err_len);
void niah_grid_free(niah_grid *g);
/* Records one scored sample of cell (length index li, depth index di): exact
 * match (niah_score) and recall (niah_recall). */
void niah_grid_add(niah_grid *g, int li, int di, int correct, double recall);
/* Mean recall of a cell with a 95% normal interval clipped to [0, 1] (NaN when
 * empty; with one sample the interval is [0, 1]). */
void niah_grid_recall(const niah_grid *g, int li, int di, double *mean, double *lo, double *hi);
/* Accuracy of a cell with its 95% Wilson interval (NaN accuracy when empty). */
void niah_grid_cell(const niah_grid *g, int li, int di, double *acc, double *lo, double *hi, int64_t *n);
/* Accuracy over all depths of a length (a column), with its interval. */
void niah_grid_column(const niah_grid *g, int li, double *acc, double *lo, double *hi, int64_t *n);
/* The matrix as a markdown table: rows depth (%), columns context length, cells
 * accuracy in % (or "-" when empty), then a row "all" per length. Returns the
 * length written (snprintf semantics: >= cap means truncated). */
int niah_grid_format(const niah_grid *g, char *buf, size_t cap);

#endif
