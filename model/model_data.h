/*
 * model_data.h: where training batches come from. The trainer asks a data
 * source for batch i, i = 0, 1, 2, ... (micro-batch a of optimizer step s is
 * batch s * grad_accum + a); a source must give the same batch for the same i
 * every time, which is what makes a resumed run repeat an uninterrupted one
 * exactly. The task layer implements its own sources (MQAR, needle, ...);
 * two come built in:
 *
 *   - bytes: a file read as bytes (token = byte value, vocab 256 + specials);
 *     batch i holds batch_size windows of context + 1 bytes at offsets drawn
 *     from a generator seeded by (seed, i); labels are the ids shifted by one.
 *   - safetensors: a file with "input_ids" (N, T) I32 or I64 and optionally
 *     "labels" (N, T) (-100 = ignored). Batch i takes rows (i * batch_size + r)
 *     mod N of a permutation drawn per epoch from (seed, epoch). Without
 *     "labels", labels[t] = input_ids[t + 1] and the last position is ignored.
 *
 * Conventions: ids and labels are (batch_size, context) int32, row-major.
 * labels[b, t] is the token that position t must predict, or MODEL_IGNORE.
 */
#ifndef DMABENCH_MODEL_DATA_H
#define DMABENCH_MODEL_DATA_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_IGNORE (-100) /* label of a position that does not count in the loss */

/* Byte-level tokens: 0..255 are bytes; the specials follow. */
#define MODEL_TOK_BOS 256
#define MODEL_TOK_EOS 257
#define MODEL_TOK_PAD 258

typedef struct model_data model_data;
struct model_data {
    /* Fills ids and labels (batch_size, context) for batch index i. Returns 0, or
     * -1 with a one-line reason in err. Must be deterministic in i. */
    int (*get_batch)(model_data *d, int64_t i, int batch_size, int context, int32_t *ids, int32_t *labels,
                     char *err, size_t err_len);
    void (*free)(model_data *d);  /* releases d itself; may be NULL */
    int max_context;   /* the longest context the source can give (0: any) */
    int vocab_needed;  /* ids and labels are < this (the model's vocab must be >= it) */
    int64_t n_tokens;  /* size of the source in tokens, for messages (0: unknown) */
    void *ctx;         /* the source's own state */
};

/* Releases a source (NULL is fine). */
void model_data_free(model_data *d);

/* A byte file as a source. The file is read whole into memory. Needs at least
 * context + 1 bytes when batches are drawn. 0 or -1 with err. */
int model_data_bytes_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len);
/* The same over a copy of a memory buffer. */
int model_data_bytes_from_memory(const void *buf, size_t n, uint64_t seed, model_data **out, char *err,
                                 size_t err_len);

/* A safetensors token file as a source (see above). The context asked for must
 * be <= T (windows take the first context positions of each row). */
int model_data_safetensors_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len);

/* Opens PATH by its content: a safetensors file when it parses as one with an
 * "input_ids" tensor, else bytes. */
int model_data_open(const char *path, uint64_t seed, model_data **out, char *err, size_t err_len);

#endif
