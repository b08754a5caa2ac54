/* Helpers for the WebSocket unit tests: masked client frames and a recording ws_stream. */
#ifndef FERRY_WS_TEST_UTIL_H
#define FERRY_WS_TEST_UTIL_H

#include "ferry_test.h"
#include "ferry.h"
#include "ws/stream.h"

/* Append a client frame (masked with a fixed key) to out; returns the new length. */
static inline size_t client_frame(uint8_t *out, size_t at, int fin, int rsv, int op, const void *payload,
                           size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *o = out + at;
    size_t h = 0;
    o[h++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    if (len < 126) {
        o[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        o[h++] = 0x80 | 126;
        o[h++] = (uint8_t)(len >> 8);
        o[h++] = (uint8_t)len;
    } else {
        o[h++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            o[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(o + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        o[h + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
    return at + h + len;
}

/* A ws_stream that records what it delivers and writes. */
typedef struct rec {
    ws_stream s;
    char log[8192];   /* "T:<text>|", "B:<len>|", "E:<code>|" */
    uint8_t out[70000]; /* bytes written (server frames) */
    size_t outlen;
    int ended;
    int close_in_message; /* call ws_stream_close from on_message */
} rec;

static inline void rec_msg(ws_stream *s, const char *data, size_t len, int binary)
{
    rec *r = (rec *)s;
    size_t n = strlen(r->log);
    if (binary || len > 200)
        snprintf(r->log + n, sizeof(r->log) - n, "%c:%zu|", binary ? 'B' : 'L', len);
    else
        snprintf(r->log + n, sizeof(r->log) - n, "T:%.*s|", (int)len, data);
    if (r->close_in_message)
        ws_stream_close(s, 1000, NULL);
}

static inline int rec_write(ws_stream *s, const ferry_slice *sl, size_t n)
{
    rec *r = (rec *)s;
    for (size_t i = 0; i < n; i++) {
        if (r->outlen + sl[i].len <= sizeof(r->out))
            memcpy(r->out + r->outlen, sl[i].base, sl[i].len);
        r->outlen += sl[i].len;
    }
    return 0;
}

static inline void rec_end(ws_stream *s, int code)
{
    rec *r = (rec *)s;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "E:%d|", code);
    r->ended++;
}

static const ws_stream_callbacks rec_cb __attribute__((unused)) = {rec_msg, rec_write, rec_end};

static inline void rec_init(rec *r, size_t max_message, uint32_t max_fragments)
{
    memset(r, 0, sizeof(*r));
    ws_stream_init(&r->s, &rec_cb, max_message, max_fragments);
}

#endif
