/* libFuzzer target: Last-Event-ID and query parsing (lib/http/conn.c's query split and
 * percent-decoding, transports/sse.c's Last-Event-ID forms "<n>" and "<sid>:<n>", the engine's
 * sid/transport/EIO lookups), through a real server on loopback (loopback.h).
 *
 * Input: the query string, a 0x00, then the Last-Event-ID value (absent when there is no 0x00);
 * "SID" in either is replaced by the id of a live SSE session whose stream stays open, and
 * whose events the request may resume. Byte 0 picks whether the request carries
 * "Accept: text/event-stream" (bit 0) and an Origin (bit 1: allowed, bit 2: another).
 * Checked: ASan/UBSan; every answer starts with a status line; a 200 is an event stream. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopback.h"

static ferry_session *current;

static void on_session(ferry_session *s)
{
    current = s;
    /* Some events to resume from. */
    ferry_session_send(s, "one", 3, 0);
    ferry_session_send(s, "two\n", 4, 0);
    ferry_session_send(s, "\x01\x02", 2, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    lb_server(on_session);
    uint8_t mode = data[0];
    data++, size--;
    char sid[32];
    int stream;
    if (lb_open_session("sse", sid, &stream) != 0)
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t qlen = nul ? (size_t)(nul - data) : size;
    lb_bytes req = {0}, out = {0};
    lb_bytes_put(&req, "GET /socket.io/?", 16);
    lb_subst_sid(data, qlen, sid, &req);
    lb_bytes_put(&req, " HTTP/1.1\r\nHost: x\r\n", 20);
    if (mode & 1)
        lb_bytes_put(&req, "Accept: text/event-stream\r\n", 27);
    if (mode & 2)
        lb_bytes_put(&req, "Origin: http://good.example\r\n", 29);
    else if (mode & 4)
        lb_bytes_put(&req, "Origin: http://evil.example\r\n", 29);
    if (nul != NULL) {
        lb_bytes_put(&req, "Last-Event-ID: ", 15);
        lb_subst_sid(nul + 1, size - qlen - 1, sid, &req);
        lb_bytes_put(&req, "\r\n", 2);
    }
    lb_bytes_put(&req, "\r\n", 2);
    int fd = lb_connect();
    lb_send(fd, req.data, req.len);
    lb_pump(fd, &out, 3);
    lb_check_response(&out);
    if (out.len >= 12 && memcmp(out.data + 9, "200", 3) == 0 && strstr(out.data, "\r\n\r\n") &&
        strstr(out.data, "text/event-stream") == NULL && strstr(out.data, "\r\n\r\n0") == NULL &&
        strstr(out.data, "Content-Type: text/plain") == NULL) {
        fprintf(stderr, "200 that is neither a stream nor a poll: %.200s\n", out.data);
        abort();
    }
    lb_close(fd);
    lb_close(stream);
    lb_bytes_free(&req);
    lb_bytes_free(&out);
    return 0;
}
