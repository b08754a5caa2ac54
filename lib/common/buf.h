/* Buffers.
 *
 * ferry_buf: an immutable, reference-counted byte block. An encoded packet is built once and
 * shared by every queue entry and write request that points to it (h2o's shared chunks,
 * nghttp2's rcbuf); each holder releases its reference when done, the last one frees it.
 *
 * ferry_vec: a growable byte vector with an explicit upper bound, for input accumulation
 * (h2o_buffer_t's reserve -> read -> consume). */
#ifndef FERRY_COMMON_BUF_H
#define FERRY_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ferry_buf ferry_buf;
struct ferry_buf {
    uint32_t refcnt;
    uint32_t flags; /* FERRY_BUF_* */
    size_t len;
    /* A second form of the same packet built lazily for text transports (binary messages as
     * "b" + base64 on polling and SSE). Owned by this buffer; built at most once. */
    ferry_buf *alt;
    char data[];
};

enum {
    FERRY_BUF_BINARY = 1u << 0, /* the bytes are a binary message, not a text packet */
};

/* A new buffer of len bytes (contents uninitialised), refcnt 1; NULL when out of memory. */
ferry_buf *ferry_buf_new(size_t len);
/* A new buffer holding a copy of len bytes at p. */
ferry_buf *ferry_buf_from(const void *p, size_t len);
/* Take one more reference; returns b. */
ferry_buf *ferry_buf_retain(ferry_buf *b);
/* Drop one reference; frees b (and its alt form) when it was the last. NULL is ignored. */
void ferry_buf_release(ferry_buf *b);

/* A view of bytes to write: base/len, kept alive by ref (NULL for static or longer-lived
 * memory). Writers retain ref for as long as they need the bytes. */
typedef struct ferry_slice {
    const char *base;
    size_t len;
    ferry_buf *ref;
} ferry_slice;

typedef struct ferry_vec {
    char *base;
    size_t len;
    size_t cap;
} ferry_vec;

/* Make room for extra more bytes without letting len + extra exceed max.
 * Returns 0, -FERRY_ETOOBIG or -FERRY_ENOMEM. */
int ferry_vec_reserve(ferry_vec *v, size_t extra, size_t max);
int ferry_vec_append(ferry_vec *v, const void *p, size_t n, size_t max);
/* Drop the first n bytes (n <= len). */
void ferry_vec_consume(ferry_vec *v, size_t n);
void ferry_vec_free(ferry_vec *v);

#endif
