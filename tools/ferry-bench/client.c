/* The client sessions of ferry-bench: HTTP/1.1 requests (llhttp in response mode), WebSocket
 * frames (lib/ws's parser in its client-side mode), SSE events, and the Engine.IO / Socket.IO
 * packets a benchmark needs (open, ping/pong, close, noop; CONNECT, EVENT, ACK).
 *
 * Every byte read or written is counted in B.bytes_in / B.bytes_out (HTTP headers included),
 * every request in B.requests: that is the wire cost. Sessions speak only to the main
 * namespace "/". Nothing here is tuned for the client's speed beyond the obvious (a write is
 * tried at once with uv_try_write, the rest queued with one copy). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/base64.h"

#define MAX_BODY (16u << 20) /* a response, a WebSocket message, an SSE line */

enum { C_DOWN, C_UP };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    sess *s;
    int role;
    int connected;
    int closing;
    int upgraded; /* WebSocket after the 101 */
    int is_sse;   /* the response is an event stream */
    int in_request;
    llhttp_t http;
    ws_parser wsp;
    ferry_vec body;    /* response body, WebSocket message, or SSE partial line */
    ferry_vec event;   /* SSE: the data of the event being read */
    ferry_vec pending; /* request bytes written once connected */
    uint8_t mask[4];
};

typedef struct wreq {
    uv_write_t req;
    size_t len;
    char data[];
} wreq;

static llhttp_settings_t http_settings;
static char read_buf[65536];

const char *transport_name(int t)
{
    static const char *names[] = {"websocket", "polling", "sse", "short-polling"};
    return names[t];
}

/* ---------------------------------------------------------------- connections */

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    ws_parser_free(&c->wsp);
    ferry_vec_free(&c->body);
    ferry_vec_free(&c->event);
    ferry_vec_free(&c->pending);
    free(c);
}

static void conn_close(conn *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    if (c->s != NULL) {
        if (c->s->down == c)
            c->s->down = NULL;
        if (c->s->up == c)
            c->s->up = NULL;
    }
    c->s = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    free(req->data);
}

/* Write two pieces (b may be empty) with one system call: a request's head and body go in one
 * segment, as a browser's usually do. */
static void conn_write2(conn *c, const char *a, size_t alen, const char *b2, size_t blen)
{
    if (c->closing)
        return;
    size_t len = alen + blen;
    B.bytes_out += len;
    if (!c->connected) {
        if ((ferry_vec_append(&c->pending, a, alen, MAX_BODY) != 0 ||
             (blen > 0 && ferry_vec_append(&c->pending, b2, blen, MAX_BODY) != 0)) &&
            c->s != NULL)
            sess_fail(c->s, "request too large");
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                        uv_buf_init((char *)b2, (unsigned)blen)};
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen > 0 ? 2 : 1);
    if (n == (int)len)
        return;
    if (n < 0)
        n = 0;
    wreq *w = malloc(sizeof(*w) + len - (size_t)n);
    if (w == NULL) {
        if (c->s != NULL)
            sess_fail(c->s, "out of memory");
        return;
    }
    w->req.data = w;
    w->len = len - (size_t)n;
    /* The unwritten tail of a then b. */
    size_t done = (size_t)n, off = 0;
    if (done < alen) {
        memcpy(w->data, a + done, alen - done);
        off = alen - done;
        done = 0;
    } else {
        done -= alen;
    }
    if (blen > done)
        memcpy(w->data + off, b2 + done, blen - done);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w);
        if (c->s != NULL)
            sess_fail(c->s, "write failed");
    }
}

static void conn_write(conn *c, const char *data, size_t len)
{
    conn_write2(c, data, len, NULL, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_connected(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (c->closing)
        return;
    if (status != 0) {
        sess *s = c->s;
        conn_close(c);
        if (s != NULL) {
            char why[128];
            snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
            sess_fail(s, why);
        }
        return;
    }
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->pending.len > 0) {
        B.bytes_out -= c->pending.len; /* counted when queued */
        conn_write(c, c->pending.base, c->pending.len);
        ferry_vec_free(&c->pending);
    }
}

static conn *conn_new(sess *s, int role)
{
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->s = s;
    c->role = role;
    llhttp_init(&c->http, HTTP_RESPONSE, &http_settings);
    c->http.data = c;
    int rc = 0;
    const struct sockaddr_storage *src = B.nsrc > 0 ? &B.src[s->idx % B.nsrc] : NULL;
    if (src != NULL) {
        /* --sources: local addresses in turn, so that more than one address's ephemeral
         * ports (28,232 by default) reach one server port. IP_BIND_ADDRESS_NO_PORT leaves the
         * port to connect(), which may reuse one for another address or peer: a bind() that
         * picked it would search the whole range for a port free on every address, a search
         * that grows with every connection held. connect() itself slows down past about
         * 14,000 connections from one address to one port (it tries even ports first). */
        uv_tcp_init_ex(B.loop, &c->tcp, src->ss_family);
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    } else {
        uv_tcp_init(B.loop, &c->tcp);
    }
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    c->creq.data = c;
    if (src != NULL)
        rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)src, 0);
    if (rc == 0)
        rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&B.addr, on_connected);
    if (rc != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return NULL;
    }
    return c;
}

/* ---------------------------------------------------------------- requests */

static const char browser_headers[] =
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Origin: http://127.0.0.1\r\n"
    "Referer: http://127.0.0.1/\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Connection: keep-alive\r\n";

/* The request line's query: EIO=4, the transport, the sid once known, ferry=1 when asked. */
static int query(sess *s, char *out, size_t cap)
{
    int ext = B.o.ferry_ext || B.o.transport == TR_SSE || B.o.transport == TR_SHORT_POLLING;
    int n = snprintf(out, cap, "%s?EIO=4&transport=%s%s%s%s", B.o.path,
                     transport_name(B.o.transport), s->sid[0] ? "&sid=" : "", s->sid,
                     ext && !s->sid[0] ? "&ferry=1" : "");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Send a request on the session's connection of that role, opening one if needed. */
static void request(sess *s, int role, const char *method, const char *extra, const char *body,
                    size_t body_len)
{
    char q[512], head[2048];
    if (query(s, q, sizeof(q)) != 0) {
        sess_fail(s, "URL too long");
        return;
    }
    char clen[64] = "";
    if (body != NULL)
        snprintf(clen, sizeof(clen),
                 "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %zu\r\n", body_len);
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", method, q,
                     B.hostport, extra ? extra : "", B.o.browser_headers ? browser_headers : "",
                     clen);
    if (n <= 0 || (size_t)n >= sizeof(head)) {
        sess_fail(s, "request too long");
        return;
    }
    conn **slot = role == C_DOWN ? &s->down : &s->up;
    if (*slot == NULL) {
        *slot = conn_new(s, role);
        if (*slot == NULL) {
            sess_fail(s, "cannot open a connection");
            return;
        }
    }
    conn *c = *slot;
    c->in_request = 1;
    B.requests++;
    conn_write2(c, head, (size_t)n, body, body != NULL ? body_len : 0);
}

static void poll_get(sess *s)
{
    if (s->state == S_DEAD || s->get_busy || B.finishing)
        return;
    s->get_busy = 1;
    request(s, C_DOWN, "GET", NULL, NULL, 0);
}

static void post_flush(sess *s)
{
    if (s->state == S_DEAD || s->post_busy || s->outq.len == 0)
        return;
    s->post_busy = 1;
    /* The queue is sent whole; new packets wait for the next POST. */
    ferry_vec body = s->outq;
    memset(&s->outq, 0, sizeof(s->outq));
    request(s, C_UP, "POST", NULL, body.base, body.len);
    ferry_vec_free(&body);
}

static void on_poll_timer(uv_timer_t *t)
{
    poll_get(t->data);
}

/* ---------------------------------------------------------------- packets */

static uint32_t parse_u32(const char **p, const char *end)
{
    uint32_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9')
        v = v * 10 + (uint32_t)(*(*p)++ - '0');
    return v;
}

/* A Socket.IO packet (the data of an Engine.IO message). */
static void on_sio(sess *s, const char *p, size_t len)
{
    const char *end = p + len;
    if (len == 0)
        return;
    char type = *p++;
    if (p < end && *p == '/') /* a namespace other than "/": not ours */
        return;
    switch (type) {
    case '0':
        if (s->state == S_OPEN) {
            s->state = S_READY;
            sample_add(&B.hs_lat, &B.hs_n, &B.hs_cap, (now_ns() - s->t_start) / 1000);
            B.ready++;
            if (B.on_ready)
                B.on_ready(s);
        }
        break;
    case '4':
        sess_fail(s, "CONNECT_ERROR");
        break;
    case '1':
        sess_fail(s, "server disconnected the namespace");
        break;
    case '2': {
        parse_u32(&p, end); /* an ack id the server asks for: not used by the benchmark */
        if (end - p < 3 || p[0] != '[' || p[1] != '"')
            return;
        const char *name = p + 2;
        const char *q = memchr(name, '"', (size_t)(end - name));
        if (q == NULL)
            return;
        if (B.on_event)
            B.on_event(s, name, (size_t)(q - name), q + 1, (size_t)(end - q - 1));
        break;
    }
    case '3': {
        uint32_t id = parse_u32(&p, end);
        B.acks++;
        if (B.on_ack)
            B.on_ack(s, id, p, (size_t)(end - p));
        break;
    }
    default:
        break;
    }
}

static void find_string(const char *p, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *k = memmem(p, len, pat, strlen(pat));
    out[0] = '\0';
    if (k == NULL)
        return;
    k += strlen(pat);
    const char *e = memchr(k, '"', (size_t)(p + len - k));
    if (e == NULL || (size_t)(e - k) >= cap)
        return;
    memcpy(out, k, (size_t)(e - k));
    out[e - k] = '\0';
}

static unsigned find_number(const char *p, size_t len, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *k = memmem(p, len, pat, strlen(pat));
    if (k == NULL)
        return 0;
    k += strlen(pat);
    return parse_u32(&k, p + len);
}

/* One Engine.IO packet in its text form. */
static void on_eio(sess *s, const char *p, size_t len)
{
    if (len == 0 || s->state == S_DEAD)
        return;
    switch (p[0]) {
    case '0':
        if (s->state != S_HANDSHAKE)
            return;
        find_string(p + 1, len - 1, "sid", s->sid, sizeof(s->sid));
        if (!s->sid[0]) {
            sess_fail(s, "open packet without sid");
            return;
        }
        s->poll_interval_ms = B.o.poll_interval_ms ? B.o.poll_interval_ms
                                                   : find_number(p + 1, len - 1, "shortPollInterval");
        if (s->poll_interval_ms == 0)
            s->poll_interval_ms = 1000;
        s->state = S_OPEN;
        sess_send(s, "40", 2);
        break;
    case '2':
        B.pings++;
        sess_send(s, "3", 1);
        break;
    case '1':
        sess_fail(s, "server closed the session");
        break;
    case '4':
        on_sio(s, p + 1, len - 1);
        break;
    default: /* 6 noop, 3 pong, binary */
        break;
    }
}

/* A polling payload: packets joined by 0x1e. */
static void on_payload(sess *s, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end && s->state != S_DEAD) {
        const char *sep = memchr(p, 0x1e, (size_t)(end - p));
        const char *e = sep ? sep : end;
        if (e > p && p[0] != 'b')
            on_eio(s, p, (size_t)(e - p));
        p = sep ? sep + 1 : end;
    }
}

void sess_send(sess *s, const char *pkt, size_t len)
{
    if (s->state == S_DEAD)
        return;
    if (B.o.transport == TR_WEBSOCKET) {
        conn *c = s->down;
        if (c == NULL || !c->upgraded)
            return;
        char stackbuf[1024];
        size_t total = len + WS_MAX_HEADER;
        char *f = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
        if (f == NULL) {
            sess_fail(s, "out of memory");
            return;
        }
        size_t h = ws_frame_header((uint8_t *)f, 1, 0, WS_OP_TEXT, len);
        f[1] = (char)(f[1] | 0x80);
        memcpy(f + h, c->mask, 4);
        h += 4;
        for (size_t i = 0; i < len; i++)
            f[h + i] = (char)(pkt[i] ^ c->mask[i & 3]);
        conn_write(c, f, h + len);
        if (f != stackbuf)
            free(f);
        return;
    }
    if (s->outq.len > 0 && ferry_vec_append(&s->outq, "\x1e", 1, MAX_BODY) != 0) {
        sess_fail(s, "upstream queue full");
        return;
    }
    if (ferry_vec_append(&s->outq, pkt, len, MAX_BODY) != 0) {
        sess_fail(s, "upstream queue full");
        return;
    }
    post_flush(s);
}

/* ---------------------------------------------------------------- SSE */

static void sse_line(conn *c, const char *line, size_t len)
{
    sess *s = c->s;
    if (len == 0) { /* dispatch */
        if (c->event.len > 0) {
            const char *d = c->event.base;
            size_t n = c->event.len;
            if (d[0] == 'x') {
                uint8_t *dec = malloc(n);
                long m = dec ? ferry_base64_decode(dec, d + 1, n - 1) : -1;
                if (m > 0)
                    on_eio(s, (const char *)dec, (size_t)m);
                free(dec);
            } else if (d[0] != 'b') {
                on_eio(s, d, n);
            }
        }
        c->event.len = 0;
        return;
    }
    if (len >= 5 && memcmp(line, "data:", 5) == 0) {
        size_t off = len > 5 && line[5] == ' ' ? 6 : 5;
        if (c->event.len > 0)
            ferry_vec_append(&c->event, "\n", 1, MAX_BODY);
        if (ferry_vec_append(&c->event, line + off, len - off, MAX_BODY) != 0)
            sess_fail(s, "SSE event too large");
    }
    /* id:, retry:, comments: nothing to do */
}

static void sse_feed(conn *c, const char *p, size_t len)
{
    if (ferry_vec_append(&c->body, p, len, MAX_BODY) != 0) {
        sess_fail(c->s, "SSE line too long");
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < c->body.len && c->s != NULL; i++) {
        if (c->body.base[i] == '\n') {
            size_t e = i > start && c->body.base[i - 1] == '\r' ? i - 1 : i;
            sse_line(c, c->body.base + start, e - start);
            start = i + 1;
        }
    }
    if (c->s != NULL)
        ferry_vec_consume(&c->body, start);
}

/* ---------------------------------------------------------------- HTTP responses */

static int on_headers_complete(llhttp_t *h)
{
    conn *c = h->data;
    if (c->s == NULL)
        return -1;
    if (B.o.transport == TR_WEBSOCKET && c->role == C_DOWN) {
        if (h->status_code != 101) {
            char why[64];
            snprintf(why, sizeof(why), "WebSocket handshake refused (HTTP %d)", h->status_code);
            sess_fail(c->s, why);
            return -1;
        }
        return 2; /* no body; llhttp pauses with HPE_PAUSED_UPGRADE */
    }
    if (h->status_code != 200) {
        char why[64];
        snprintf(why, sizeof(why), "HTTP %d", h->status_code);
        sess_fail(c->s, why);
        return -1;
    }
    c->is_sse = B.o.transport == TR_SSE && c->role == C_DOWN;
    return 0;
}

static int on_body(llhttp_t *h, const char *at, size_t len)
{
    conn *c = h->data;
    if (c->s == NULL)
        return -1;
    if (c->is_sse) {
        sse_feed(c, at, len);
        return c->s == NULL ? -1 : 0;
    }
    if (ferry_vec_append(&c->body, at, len, MAX_BODY) != 0) {
        sess_fail(c->s, "response too large");
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *h)
{
    conn *c = h->data;
    sess *s = c->s;
    if (s == NULL || c->upgraded || (B.o.transport == TR_WEBSOCKET && c->role == C_DOWN))
        return 0;
    c->in_request = 0;
    int keep = llhttp_should_keep_alive(h);
    ferry_vec body = c->body;
    memset(&c->body, 0, sizeof(c->body));
    if (!keep)
        conn_close(c);
    if (c->role == C_UP) {
        s->post_busy = 0;
        post_flush(s);
    } else if (c->is_sse) {
        sess_fail(s, "event stream ended");
    } else {
        s->get_busy = 0;
        on_payload(s, body.base, body.len);
        if (s->state != S_DEAD) {
            if (B.o.transport == TR_SHORT_POLLING && s->state != S_HANDSHAKE) {
                s->poll_timer_on = 1;
                uv_timer_start(&s->poll_timer, on_poll_timer, s->poll_interval_ms, 0);
            } else {
                poll_get(s);
            }
        }
    }
    ferry_vec_free(&body);
    return 0;
}

/* ---------------------------------------------------------------- WebSocket */

static int ws_on_data(void *ud, int opcode, int compressed, char *data, size_t len, int fin)
{
    conn *c = ud;
    if (c->s == NULL)
        return WS_STOP;
    if (fin && c->body.len == 0) {
        /* A whole message in this read (nearly all of them): from the input, no copy. */
        if (opcode == WS_OP_TEXT)
            on_eio(c->s, data, len);
        return c->s == NULL ? WS_STOP : 0;
    }
    if (len > 0 && ferry_vec_append(&c->body, data, len, MAX_BODY) != 0)
        return WS_CLOSE_TOO_BIG;
    if (fin) {
        if (opcode == WS_OP_TEXT)
            on_eio(c->s, c->body.base, c->body.len);
        c->body.len = 0;
    }
    return c->s == NULL ? WS_STOP : 0;
}

static int ws_on_control(void *ud, int opcode, char *data, size_t len)
{
    conn *c = ud;
    if (c->s == NULL)
        return WS_STOP;
    if (opcode == WS_OP_CLOSE) {
        sess_fail(c->s, "WebSocket closed by the server");
        return WS_STOP;
    }
    if (opcode == WS_OP_PING) {
        char f[WS_MAX_HEADER + WS_MAX_CONTROL];
        size_t h = ws_frame_header((uint8_t *)f, 1, 0, WS_OP_PONG, len);
        f[1] = (char)(f[1] | 0x80);
        memcpy(f + h, c->mask, 4);
        h += 4;
        for (size_t i = 0; i < len; i++)
            f[h + i] = (char)(data[i] ^ c->mask[i & 3]);
        conn_write(c, f, h + len);
    }
    return 0;
}

static const ws_parser_callbacks ws_cb = {ws_on_data, ws_on_control};

static void ws_feed(conn *c, char *p, size_t len)
{
    size_t used;
    int rc = ws_parser_execute(&c->wsp, p, len, &used);
    if (rc != 0 && rc != WS_STOP && c->s != NULL)
        sess_fail(c->s, "bad WebSocket frame");
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        sess *s = c->s;
        int busy = c->in_request || c->upgraded || c->is_sse;
        conn_close(c);
        if (s != NULL && busy)
            sess_fail(s, nread == UV_EOF ? "connection closed by the server" : "read error");
        return;
    }
    B.bytes_in += (uint64_t)nread;
    if (c->upgraded) {
        ws_feed(c, buf->base, (size_t)nread);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->http, buf->base, (size_t)nread);
    if (c->closing || c->s == NULL)
        return;
    if (e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->http);
        c->upgraded = 1;
        c->in_request = 0;
        ws_parser_init(&c->wsp, &ws_cb, c, MAX_BODY, 1024);
        c->wsp.from_server = 1;
        size_t rest = (size_t)(buf->base + nread - pos);
        if (rest > 0)
            ws_feed(c, (char *)pos, rest);
        return;
    }
    if (e != HPE_OK)
        sess_fail(c->s, "bad HTTP response");
}

/* ---------------------------------------------------------------- sessions */

void sess_start(sess *s)
{
    if (http_settings.on_body == NULL) {
        llhttp_settings_init(&http_settings);
        http_settings.on_headers_complete = on_headers_complete;
        http_settings.on_body = on_body;
        http_settings.on_message_complete = on_message_complete;
    }
    s->state = S_HANDSHAKE;
    s->t_start = now_ns();
    B.started++;
    uv_timer_init(B.loop, &s->poll_timer);
    s->poll_timer.data = s;
    s->poll_timer_on = 1; /* initialised: closed with the session */
    switch (B.o.transport) {
    case TR_WEBSOCKET: {
        uint8_t key[16];
        char k64[32], extra[128];
        for (size_t i = 0; i < sizeof(key); i++)
            key[i] = (uint8_t)rand();
        k64[ferry_base64_encode(k64, key, sizeof(key))] = '\0';
        snprintf(extra, sizeof(extra),
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n",
                 k64);
        request(s, C_DOWN, "GET", extra, NULL, 0);
        if (s->down != NULL)
            for (int i = 0; i < 4; i++)
                s->down->mask[i] = (uint8_t)rand();
        break;
    }
    case TR_SSE:
        request(s, C_DOWN, "GET", "Accept: text/event-stream\r\n", NULL, 0);
        break;
    default:
        poll_get(s);
        break;
    }
}

static void on_timer_closed(uv_handle_t *h)
{
}

void sess_close(sess *s)
{
    conn_close(s->down);
    conn_close(s->up);
    ferry_vec_free(&s->outq);
    if (s->poll_timer_on) {
        s->poll_timer_on = 0;
        uv_close((uv_handle_t *)&s->poll_timer, on_timer_closed);
    }
}

void sess_fail(sess *s, const char *why)
{
    if (s->state == S_DEAD)
        return;
    int was = s->state;
    s->state = S_DEAD;
    if (!B.finishing) {
        if (was == S_READY)
            B.closed_early++;
        else
            B.failed++;
        if (!B.first_error[0])
            snprintf(B.first_error, sizeof(B.first_error), "session %u: %s", s->idx, why);
    }
    sess_close(s);
    if (B.on_dead && !B.finishing)
        B.on_dead(s);
}
