/*
 * sha256.h: SHA-256 (FIPS 180-4), written here for `dmabench fetch` to verify
 * downloads. Streaming: init, update any number of times, final.
 */
#ifndef DMABENCH_SHA256_H
#define DMABENCH_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;   /* message length so far */
    uint8_t buf[64];   /* a partial block */
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* The digest as 64 lower-case hex digits (hex has room for 65 bytes). */
void sha256_hex(const uint8_t d[32], char hex[65]);
/* The SHA-256 of a file as hex; 0, or -1 (errno set) when it cannot be read. */
int sha256_file(const char *path, char hex[65]);

#endif
