/*
 * task.h: what the three long-context tasks (mqar/, niah/, ppl/) share: status
 * codes, the token conventions, seed derivation, a training-batch source the
 * task runner hands to the trainer, and the small metric helpers (argmax, NLL
 * from logits, the Wilson interval). docs/tasks.md describes the tasks.
 *
 * Conventions (the same as the model layer's data sources): ids and labels are
 * (batch, context) int32, row-major; labels[b, t] is the token position t must
 * predict (the input/label shift is already applied), or TASK_IGNORE where the
 * position does not count. Byte-level tasks use tokens 0..255 for bytes and the
 * specials below. Library code never prints: functions return a task_status and,
 * given err, write one line saying why.
 *
 * Randomness: every example is a pure function of (seed, example index) through
 * kernels/common/rng.h, so any batch can be regenerated alone, on any machine,
 * in any order (which is what makes a resumed run repeat an uninterrupted one).
 */
#ifndef DMABENCH_TASK_H
#define DMABENCH_TASK_H

#include <stddef.h>
#include <stdint.h>

#define TASK_IGNORE (-100) /* the label of a position that does not count */

/* Byte-level vocabulary: 0..255 are bytes, then the specials (the same ids as the
 * model layer's MODEL_TOK_*). */
#define TASK_TOK_BOS 256   /* start of a sequence (niah prompts begin with it) */
#define TASK_TOK_EOS 257   /* end of a document: the document separator in corpora */
#define TASK_TOK_PAD 258   /* padding after a short training example (never a label) */
#define TASK_BYTE_VOCAB 259

typedef enum {
    TASK_OK = 0,
    TASK_ERR_ARG,   /* invalid settings or arguments (the message says which rule) */
    TASK_ERR_IO,    /* a file could not be read */
    TASK_ERR_OOM,   /* out of memory */
    TASK_ERR_DATA,  /* the data cannot serve the request (too short, empty, ...) */
} task_status;

const char *task_status_str(task_status s);

/* Writes a one-line message into err (when err and err_len are non-zero). */
void task_errf(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- seeds ---- */

/* A well-mixed 64-bit hash of its input (the splitmix64 finaliser). */
static inline uint64_t task_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The seed of one stream: (user seed, a per-task/per-purpose salt, an index).
 * Distinct salts or indices give unrelated streams. */
static inline uint64_t task_stream_seed(uint64_t seed, uint64_t salt, uint64_t index) {
    return task_mix64(task_mix64(task_mix64(seed) ^ salt) ^ index);
}

/* ---- training batches ---- */

/* A source of training batches: batch i (i = 0, 1, 2, ...) of batch_size rows
 * of `context` positions. The same i always gives the same batch. The runner
 * adapts it to the model layer's model_data (the fields match one to one). */
typedef struct task_batcher task_batcher;
struct task_batcher {
    task_status (*get_batch)(task_batcher *b, int64_t i, int batch_size, int context, int32_t *ids,
                             int32_t *labels, char *err, size_t err_len);
    void (*free)(task_batcher *b); /* releases b itself */
    int max_context;   /* the longest context the source can give (0: any) */
    int vocab_needed;  /* ids and labels are < this */
    int64_t n_tokens;  /* size of the underlying data in tokens (0: generated, unbounded) */
    void *ctx;
};

void task_batcher_free(task_batcher *b); /* NULL is fine */

/* ---- metric helpers ---- */

/* The index of the largest of x[0..n) (ties: the lowest index, as greedy decoding). */
int task_argmax(const float *x, int n);

/* -log softmax(logits)[label] in nats, computed in double. */
double task_nll_from_logits(const float *logits, int vocab, int label);

/* Wilson score interval for k successes in n trials at normal quantile z
 * (1.959963984540054 for 95%). n = 0 gives [0, 1]. */
void task_wilson(int64_t k, int64_t n, double z, double *lo, double *hi);
#define TASK_Z95 1.959963984540054

#endif
