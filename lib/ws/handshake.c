#include "ws/handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/strbuf.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int key_valid(const char *key)
{
    /* 16 random bytes in base64: 22 characters and "==" (RFC 6455 4.1). */
    uint8_t raw[24];
    size_t n = strlen(key);
    return n == 24 && key[22] == '=' && key[23] == '=' &&
           ferry_base64_decode(raw, key, n) == 16;
}

int ws_handshake_check(const ferry_req *req, int offer_deflate, ws_handshake *hs,
                       const char **why)
{
    memset(hs, 0, sizeof(*hs));
    if (strcmp(req->method, "GET") != 0) {
        *why = "WebSocket handshake: the method must be GET";
        return -1;
    }
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1)) {
        *why = "WebSocket handshake: HTTP/1.1 required";
        return -1;
    }
    if (!ferry_req_header_has_token(req, "upgrade", "websocket")) {
        *why = "WebSocket handshake: missing 'Upgrade: websocket'";
        return -1;
    }
    if (!ferry_req_header_has_token(req, "connection", "upgrade")) {
        *why = "WebSocket handshake: missing 'Connection: Upgrade'";
        return -1;
    }
    const char *version = ferry_req_header_get(req, "sec-websocket-version");
    if (version == NULL || strcmp(version, "13") != 0) {
        *why = "WebSocket handshake: unsupported Sec-WebSocket-Version (13 is supported)";
        return -1;
    }
    const char *key = ferry_req_header_get(req, "sec-websocket-key");
    if (key == NULL || !key_valid(key)) {
        *why = "WebSocket handshake: missing or malformed Sec-WebSocket-Key";
        return -1;
    }
    char buf[64];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, buf, sizeof(buf));
    ferry_strbuf_puts(&sb, key); /* 24 characters: key_valid() */
    ferry_strbuf_puts(&sb, ws_guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (ferry_strbuf_error(&sb) != 0 ||
        EVP_Digest(buf, sb.len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        *why = "WebSocket handshake: internal error";
        return -1;
    }
    hs->accept[ferry_base64_encode(hs->accept, md, 20)] = '\0';
    if (offer_deflate) {
        /* Several Sec-WebSocket-Extensions lines are one list (RFC 7230 3.2.2): try each. */
        for (size_t i = 0; i < req->nheaders && !hs->deflate; i++)
            if (strcasecmp(req->headers[i].name, "sec-websocket-extensions") == 0)
                hs->deflate = ws_deflate_negotiate(req->headers[i].value, &hs->pmd,
                                                   hs->extensions, sizeof(hs->extensions));
    }
    return 0;
}

void ws_handshake_reject(ferry_req *req, const char *why)
{
    size_t n = strlen(why);
    ferry_buf *b = ferry_buf_new(n + 1);
    if (b != NULL) {
        memcpy(b->data, why, n);
        b->data[n] = '\n';
    }
    ferry_slice s = {b ? b->data : "", b ? b->len : 0, b};
    /* A failed handshake ends the connection (Connection: close), as the reference does. */
    req->keep_alive = 0;
    ferry_req_respond(req, 400, "text/plain; charset=UTF-8", "Sec-WebSocket-Version: 13\r\n", &s,
                      b ? 1 : 0);
    ferry_buf_release(b);
}

size_t ws_handshake_response(const ws_handshake *hs, char *out, size_t cap)
{
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, out, cap);
    ferry_strbuf_puts(&sb, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    ferry_strbuf_puts(&sb, hs->accept);
    ferry_strbuf_puts(&sb, "\r\n");
    if (hs->deflate) {
        ferry_strbuf_puts(&sb, "Sec-WebSocket-Extensions: ");
        ferry_strbuf_puts(&sb, hs->extensions);
        ferry_strbuf_puts(&sb, "\r\n");
    }
    ferry_strbuf_puts(&sb, "\r\n");
    return ferry_strbuf_error(&sb) == 0 ? sb.len : 0;
}
