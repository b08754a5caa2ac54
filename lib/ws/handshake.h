/* The WebSocket opening handshake (RFC 6455 section 4.2) on top of the HTTP layer: checks on
 * the request, answered with a clear 400 before anything is upgraded, and the 101 answer with
 * Sec-WebSocket-Accept (SHA-1 + base64) and the negotiated extension. */
#ifndef FERRY_WS_HANDSHAKE_H
#define FERRY_WS_HANDSHAKE_H

#include "http/http.h"
#include "ws/deflate.h"

typedef struct ws_handshake {
    char accept[32];     /* base64(SHA-1(key + GUID)): 28 characters */
    int deflate;         /* permessage-deflate accepted */
    ws_deflate_params pmd;
    char extensions[160]; /* the Sec-WebSocket-Extensions answer when deflate is set */
} ws_handshake;

/* Check an upgrade request: GET, HTTP/1.1 or later, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Version: 13 and a key of 16 base64-encoded bytes. offer_deflate: negotiate
 * permessage-deflate when the client offers it. Returns 0 and fills hs, or -1 with *why set to
 * a static explanation for the 400 answer. */
int ws_handshake_check(const ferry_req *req, int offer_deflate, ws_handshake *hs,
                       const char **why);

/* Answer a failed handshake: 400 (text/plain, why in the body, Sec-WebSocket-Version: 13) and
 * close the connection. The request is freed. */
void ws_handshake_reject(ferry_req *req, const char *why);

/* The 101 answer's bytes for hs into out (NUL-terminated); returns the length, or 0 when they
 * do not fit in cap (nothing partial is returned). */
size_t ws_handshake_response(const ws_handshake *hs, char *out, size_t cap);

#endif
