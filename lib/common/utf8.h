/* Incremental UTF-8 validation (RFC 3629): bytes are pushed in any split, and the first
 * invalid byte is reported as soon as it arrives, even mid-sequence, which WebSocket's
 * fail-fast rule needs (Autobahn 6.4.x). Overlong forms, surrogates and code points above
 * U+10FFFF are invalid; noncharacters such as U+FFFE are valid. */
#ifndef FERRY_COMMON_UTF8_H
#define FERRY_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct ferry_utf8 {
    uint8_t need; /* continuation bytes still expected */
    uint8_t lo;   /* allowed range of the next continuation byte */
    uint8_t hi;
} ferry_utf8;

static inline void ferry_utf8_init(ferry_utf8 *st)
{
    st->need = 0;
    st->lo = 0x80;
    st->hi = 0xBF;
}

/* Validate n more bytes. Returns 0 when all are valid so far (a sequence may still be open),
 * -1 at the first invalid byte. */
int ferry_utf8_feed(ferry_utf8 *st, const uint8_t *p, size_t n);

/* Is the text fed so far complete (no open sequence)? */
static inline int ferry_utf8_complete(const ferry_utf8 *st)
{
    return st->need == 0;
}

/* Validate a whole string: 1 when valid UTF-8, 0 otherwise. */
int ferry_utf8_valid(const void *p, size_t n);

#endif
