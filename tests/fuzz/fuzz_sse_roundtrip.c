/* libFuzzer target: the SSE encoder round trip (transports/sse.c, docs/protocol.md section 3):
 * the packets a session sends must come out of its event stream, decoded as a browser's
 * EventSource parser decodes it (WHATWG "Server-sent events": lines split at CR, LF or CRLF,
 * "data:" with one optional space, blank line dispatches) and then by the event forms (type
 * digit, "b" + base64, "x" + base64 of the text form), as the very same messages in the same
 * order. Streams end on their own after sse_recycle_bytes (4096 here): the client reconnects
 * with Last-Event-ID as a browser does, and nothing may be lost or repeated across that.
 *
 * Input: messages separated by 0x1e; a message starting with 'b' is binary (the bytes after
 * it), anything else text (sent only when it is UTF-8, as ferry_session_send requires). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "loopback.h"

static ferry_session *current;
static int current_closed;
static char want_sid[32];

static void on_close(ferry_session *s, ferry_reason reason, void *ud)
{
    (void)reason, (void)ud;
    if (s == current) {
        current = NULL;
        current_closed = 1;
    }
}

static void on_session(ferry_session *s)
{
    if (strcmp(ferry_session_id(s), want_sid) == 0 || want_sid[0] == '\0') {
        current = s;
        ferry_session_on_close(s, on_close, NULL);
    }
}

typedef struct parser {
    lb_bytes data;     /* the event's data buffer */
    lb_bytes line;     /* the line being read */
    int after_cr;      /* the last byte was CR: a following LF belongs to it */
    int in_body;       /* past the HTTP head */
    size_t head_match; /* bytes of "\r\n\r\n" matched */
    unsigned long long last_id;
    lb_bytes got;      /* decoded messages: type byte, 8-byte length, bytes */
} parser;

static void emit(parser *p, char type, const void *d, size_t n)
{
    uint64_t len = n;
    lb_bytes_put(&p->got, &type, 1);
    lb_bytes_put(&p->got, &len, sizeof(len));
    lb_bytes_put(&p->got, d, n);
}

static void dispatch(parser *p)
{
    if (p->data.len == 0)
        return;
    p->data.len--; /* the LF after the last data line */
    char *f = p->data.data;
    size_t n = p->data.len;
    uint8_t *dec = NULL;
    if (n > 0 && (f[0] == 'x' || f[0] == 'b')) {
        dec = malloc(3 * ((n + 3) / 4) + 1);
        long k = ferry_base64_decode(dec, f + 1, n - 1);
        if (k < 0) {
            fprintf(stderr, "bad base64 in an event: %.60s\n", f);
            abort();
        }
        if (f[0] == 'b') {
            emit(p, 'b', dec, (size_t)k);
            free(dec);
            p->data.len = 0;
            return;
        }
        f = (char *)dec;
        n = (size_t)k;
    } else if (memchr(f, '\0', n) != NULL) {
        abort(); /* NUL must travel escaped */
    }
    if (n == 0 || f[0] < '0' || f[0] > '6') {
        fprintf(stderr, "event form not a packet: %.60s\n", f);
        abort();
    }
    if (f[0] == '4')
        emit(p, 't', f + 1, n - 1);
    free(dec);
    p->data.len = 0;
}

static void line(parser *p)
{
    char *l = p->line.data ? p->line.data : (char *)"";
    size_t n = p->line.len;
    if (n == 0) {
        dispatch(p);
    } else if (l[0] != ':') {
        char *colon = memchr(l, ':', n);
        size_t fl = colon ? (size_t)(colon - l) : n;
        const char *v = colon ? colon + 1 : l + n;
        size_t vl = n - (size_t)(v - l);
        if (vl > 0 && v[0] == ' ')
            v++, vl--;
        if (fl == 4 && memcmp(l, "data", 4) == 0) {
            lb_bytes_put(&p->data, v, vl);
            lb_bytes_put(&p->data, "\n", 1);
        } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
            const char *c = memchr(v, ':', vl);
            p->last_id = strtoull(c ? c + 1 : v, NULL, 10);
        }
    }
    p->line.len = 0;
}

static void feed(parser *p, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!p->in_body) {
            static const char end[] = "\r\n\r\n";
            p->head_match = c == end[p->head_match] ? p->head_match + 1 : (c == '\r');
            if (p->head_match == 4)
                p->in_body = 1;
            continue;
        }
        if (c == '\n' && p->after_cr) {
            p->after_cr = 0;
            continue;
        }
        p->after_cr = c == '\r';
        if (c == '\r' || c == '\n')
            line(p);
        else
            lb_bytes_put(&p->line, &c, 1);
    }
}

static void stream_reset(parser *p)
{
    p->in_body = 0;
    p->head_match = 0;
    p->after_cr = 0;
    p->line.len = 0;
    p->data.len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lb_server(on_session);
    want_sid[0] = '\0';
    current = NULL;
    current_closed = 0;
    char sid[32];
    int fd;
    if (lb_open_session("sse", sid, &fd) != 0 || current == NULL ||
        strcmp(ferry_session_id(current), sid) != 0)
        abort(); /* a fresh SSE handshake on an idle server must work */
    snprintf(want_sid, sizeof(want_sid), "%s", sid);
    parser p;
    memset(&p, 0, sizeof(p));
    p.in_body = 1; /* lb_open_session read the head and the handshake event */
    lb_bytes want = {0};
    size_t i = 0;
    while (i <= size && current != NULL) {
        size_t j = i;
        while (j < size && data[j] != 0x1e)
            j++;
        const char *m = (const char *)data + i;
        size_t len = j - i;
        int binary = len > 0 && m[0] == 'b';
        if (binary)
            m++, len--;
        if (ferry_session_send(current, m, len, binary) == 0) {
            uint64_t l = len;
            char t = binary ? 'b' : 't';
            lb_bytes_put(&want, &t, 1);
            lb_bytes_put(&want, &l, sizeof(l));
            lb_bytes_put(&want, m, len);
        }
        i = j + 1;
    }
    /* Read the stream; reconnect with Last-Event-ID when the server ends it. */
    lb_bytes chunk = {0};
    for (int streams = 0, rounds = 0;
         streams < 64 && rounds < 500 && p.got.len < want.len && !current_closed; rounds++) {
        chunk.len = 0;
        int closed = lb_pump(fd, &chunk, 3);
        if (getenv("LB_DEBUG")) fprintf(stderr, "[%.*s]\n", (int)chunk.len, chunk.data);
        feed(&p, chunk.data, chunk.len);
        if (!closed)
            continue;
        lb_close(fd);
        if (current_closed)
            break;
        streams++;
        stream_reset(&p);
        fd = lb_connect();
        char req[256];
        int n = snprintf(req, sizeof(req),
                         "GET /socket.io/?EIO=4&transport=sse&sid=%s HTTP/1.1\r\nHost: x\r\n"
                         "Accept: text/event-stream\r\nLast-Event-ID: %llu\r\n\r\n",
                         sid, p.last_id);
        lb_send(fd, req, (size_t)n);
    }
    lb_close(fd);
    /* The session may have died (ping timeout under a slow run, queue bound); then what came
     * must still be a prefix of what was sent. Otherwise all of it must have come. */
    if (p.got.len > want.len || (p.got.len > 0 && memcmp(p.got.data, want.data, p.got.len) != 0) ||
        (!current_closed && p.got.len != want.len)) {
        fprintf(stderr, "SSE round trip: got %zu bytes of records, want %zu (closed %d)\n",
                p.got.len, want.len, current_closed);
        abort();
    }
    if (current != NULL)
        ferry_session_close(current);
    current = NULL;
    lb_bytes_free(&want);
    lb_bytes_free(&chunk);
    lb_bytes_free(&p.got);
    lb_bytes_free(&p.data);
    lb_bytes_free(&p.line);
    return 0;
}
