/* A bounded string builder for response heads, JSON bodies and other bytes put together from
 * pieces. It appends into storage of a fixed capacity that the caller owns (a stack array or
 * a ferry_buf's data) and never writes past it. Running out of room is sticky: the append that
 * does not fit marks the builder failed, the bytes already written stay as they were, and
 * every later append does nothing, so the caller checks once, at the end, with
 * ferry_strbuf_error(), and can never send a truncated head or bytes past what was written
 * (issue 9: `n += snprintf(...)` into a fixed buffer sent heap bytes when an input was long).
 * The contents are always NUL-terminated: at most cap - 1 bytes are kept. */
#ifndef FERRY_COMMON_STRBUF_H
#define FERRY_COMMON_STRBUF_H

#include <stddef.h>

typedef struct ferry_strbuf {
    char *base;
    size_t len; /* bytes written, not counting the NUL */
    size_t cap; /* size of base, NUL included */
    int failed; /* an append did not fit */
} ferry_strbuf;

/* Build into mem[0..cap); cap >= 1. */
void ferry_strbuf_init(ferry_strbuf *sb, char *mem, size_t cap);
void ferry_strbuf_append(ferry_strbuf *sb, const void *p, size_t n);
void ferry_strbuf_puts(ferry_strbuf *sb, const char *s);
/* n copies of the byte c. */
void ferry_strbuf_fill(ferry_strbuf *sb, char c, size_t n);
void ferry_strbuf_printf(ferry_strbuf *sb, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* 0, or -FERRY_ETOOBIG when some append did not fit. */
int ferry_strbuf_error(const ferry_strbuf *sb);

#endif
