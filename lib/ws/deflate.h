/* permessage-deflate (RFC 7692) through zlib: negotiation of the client's offers and the
 * per-connection compressor and decompressor.
 *
 * zlib cannot make raw deflate streams with an 8-bit window, so an offer that demands
 * server_max_window_bits=8 is declined (the next offer, if any, is tried); a client that
 * compresses with an 8-bit window is fine, since a larger inflate window reads it. */
#ifndef FERRY_WS_DEFLATE_H
#define FERRY_WS_DEFLATE_H

#include <stddef.h>

#include "common/buf.h"

typedef struct ws_deflate_params {
    int server_no_context_takeover; /* we reset our compressor after each message */
    int client_no_context_takeover; /* the client resets its compressor (we may reset too) */
    int server_max_window_bits;     /* our compressor's window: 9..15 */
    int client_max_window_bits;     /* 0: not offered, so not in the answer; else 8..15 */
} ws_deflate_params;

/* Pick the first acceptable permessage-deflate offer in the Sec-WebSocket-Extensions value
 * (NULL: none). Returns 1 and fills params and the answer line's value (NUL-terminated,
 * "permessage-deflate; ...") when one was accepted, 0 when none was (no extension), and never
 * fails: a malformed offer is declined (RFC 7692 section 5). */
int ws_deflate_negotiate(const char *header, ws_deflate_params *params, char *answer,
                         size_t answer_cap);

typedef struct ws_deflate ws_deflate;

/* A compressor/decompressor pair for one connection; NULL when out of memory or without
 * zlib. */
ws_deflate *ws_deflate_new(const ws_deflate_params *params);
void ws_deflate_free(ws_deflate *d);

/* Inflate a chunk of a compressed message, appending to out without letting it pass max bytes
 * (the bound on the decompressed size). fin: the message's last chunk. Returns 0,
 * -FERRY_ETOOBIG, -FERRY_EPROTO (corrupt data) or -FERRY_ENOMEM. */
int ws_deflate_inflate(ws_deflate *d, const char *in, size_t n, int fin, ferry_vec *out,
                       size_t max);

/* Compress one whole message; the result is a new buffer (refcnt 1) without the final
 * 00 00 FF FF, ready to be framed with RSV1. NULL when out of memory. */
ferry_buf *ws_deflate_compress(ws_deflate *d, const char *in, size_t n);

#endif
