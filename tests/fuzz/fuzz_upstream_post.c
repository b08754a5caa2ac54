/* libFuzzer target: the upstream POST body of long-polling, SSE and short-polling
 * (transports/upstream.c into lib/engine's payload decoding and the session), sent as a client
 * sends it to a live session on a real server on loopback (loopback.h).
 *
 * Input: byte 0 picks the transport (polling, sse, short-polling) and whether the body is
 * declared application/octet-stream (bit 2); byte 1 the size of the pieces the body is written
 * in (0: at once); the rest is the body. A second POST with the same body follows on the same
 * connection when the first was accepted. Checked: ASan/UBSan, and the answer is 200 "ok" or
 * an Engine.IO error 400 with a JSON body, never anything else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopback.h"

static int post(int fd, const char *tr, const char *sid, int octet, size_t piece,
                const uint8_t *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "POST /socket.io/?EIO=4&transport=%s&sid=%s HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     tr, sid, octet ? "application/octet-stream" : "text/plain;charset=UTF-8",
                     len);
    if (n < 0 || (size_t)n >= sizeof(head))
        abort();
    lb_send(fd, head, (size_t)n);
    lb_bytes out = {0};
    size_t off = 0;
    while (off < len) {
        size_t k = piece == 0 || piece > len - off ? len - off : piece;
        lb_send(fd, body + off, k);
        off += k;
        if (lb_pump(fd, &out, 1) != 0)
            break;
    }
    int closed = lb_pump(fd, &out, 3);
    lb_check_response(&out);
    int ok = out.len >= 12 && memcmp(out.data + 9, "200", 3) == 0;
    if (out.len >= 12 && !ok && memcmp(out.data + 9, "400", 3) != 0 &&
        memcmp(out.data + 9, "403", 3) != 0 && memcmp(out.data + 9, "413", 3) != 0) {
        fprintf(stderr, "unexpected answer to a POST: %.60s\n", out.data);
        abort();
    }
    if (ok && (out.len < 2 || memcmp(out.data + out.len - 2, "ok", 2) != 0)) {
        fprintf(stderr, "200 without ok: %.200s\n", out.data);
        abort();
    }
    lb_bytes_free(&out);
    return ok && !closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const transports[] = {"polling", "sse", "short-polling", "polling"};
    if (size < 2)
        return 0;
    lb_server(NULL);
    const char *tr = transports[data[0] & 3];
    int octet = (data[0] >> 2) & 1;
    size_t piece = data[1];
    char sid[32];
    int stream = -1;
    if (lb_open_session(tr, sid, &stream) != 0)
        return 0;
    int fd = lb_connect();
    if (post(fd, tr, sid, octet, piece, data + 2, size - 2))
        post(fd, tr, sid, octet, piece, data + 2, size - 2);
    lb_close(fd);
    if (stream >= 0)
        lb_close(stream);
    return 0;
}
