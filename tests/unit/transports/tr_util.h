/* Shared by the transports' unit tests (tests/unit/transports): a server on the loop harness
 * whose session callbacks can close the session or the whole server from inside themselves,
 * and one small raw client per transport behind a common interface (open, send a packet, take
 * the next packet, end), so that each transport runs the same scenarios byte for byte.
 *
 * A client's view of "the session ended" is what a real client would see: a close packet "1",
 * a WebSocket close frame, the stream or connection ending, or 400 "Session ID unknown". */
#ifndef FERRY_TEST_TR_UTIL_H
#define FERRY_TEST_TR_UTIL_H

#include "failmalloc.h"
#include "loop_harness.h"

#include <stdlib.h>

#include "common/base64.h"
#include "ws/frame.h"

#define TR_WAIT 3000 /* per step; loopback answers in well under a millisecond */

/* ------------------------------------------------------------------ the server side */

typedef enum tr_act {
    ACT_NONE,
    ACT_CLOSE_SESSION, /* ferry_session_close(), twice */
    ACT_CLOSE_SERVER,  /* ferry_server_close() */
} tr_act;

typedef struct tr_world {
    h_server *h;
    int opened;
    int closes;
    int messages;
    ferry_reason reason;
    ferry_session *s; /* valid between its open and its close callback */
    char last[512];   /* the last message (text, or raw binary bytes) */
    size_t last_len;
    int last_binary;
    /* What each callback does. */
    tr_act in_open, in_message, in_close;
    int acted;      /* the action ran */
    int send_rc;    /* ferry_session_send() right after the action */
    int closing_rc; /* ferry_server_close()'s answer */
    int server_closing;
    int echo; /* on_message echoes (when it does not act) */
    /* Allocation-failure runs: any clean outcome is accepted (an error status, the session or
     * connection ended), and a message "bye" closes the session from its callback. */
    int tolerant;
} tr_world;

static tr_world W;
static long tr_current_n = -1; /* the allocation failing in this run (tr_nomem), for messages */

static void tr_on_server_closed(ferry_server *srv, void *ud)
{
    (void)srv;
    ((h_server *)ud)->closed = 1;
}

static void tr_act_on(ferry_session *s, tr_act a)
{
    if (a == ACT_NONE)
        return;
    W.acted++;
    if (a == ACT_CLOSE_SESSION) {
        ferry_session_close(s);
        ferry_session_close(s); /* a second call does nothing */
    } else {
        W.closing_rc = ferry_server_close(W.h->srv, tr_on_server_closed, W.h);
        W.server_closing = 1;
    }
    W.send_rc = ferry_session_send(s, "late", 4, 0);
}

static void tr_on_close(ferry_session *s, ferry_reason reason, void *ud)
{
    (void)ud;
    W.closes++;
    W.reason = reason;
    tr_act_on(s, W.in_close);
    if (s == W.s)
        W.s = NULL;
}

static void tr_on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    (void)ud;
    W.messages++;
    if (len < sizeof(W.last)) {
        memcpy(W.last, data, len);
        W.last[len] = '\0';
        W.last_len = len;
        W.last_binary = binary;
    }
    if (W.in_message != ACT_NONE) {
        tr_act_on(s, W.in_message);
        return;
    }
    if (W.tolerant) {
        /* Out of memory is an error the app hears; it ends the session then, so that its
         * client is not left waiting for an echo that will not come. */
        if ((len == 3 && memcmp(data, "bye", 3) == 0) ||
            ferry_session_send(s, data, len, binary) != 0)
            ferry_session_close(s);
        return;
    }
    if (W.echo)
        assert_int_equal(ferry_session_send(s, data, len, binary), 0);
}

static void tr_on_session(ferry_session *s, void *ud)
{
    (void)ud;
    W.opened++;
    W.s = s;
    ferry_session_on_message(s, tr_on_message, NULL);
    ferry_session_on_close(s, tr_on_close, NULL);
    tr_act_on(s, W.in_open);
}

/* A server with every transport, pings far away (nothing but the test's packets on the wire).
 * tweak may change the configuration. */
static h_server *tr_start(void (*tweak)(ferry_server_config *cfg))
{
    memset(&W, 0, sizeof(W));
    W.echo = 1;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.transports = FERRY_TRANSPORT_ALL;
    cfg.ping_interval_ms = 60000;
    cfg.ping_timeout_ms = 60000;
    if (tweak != NULL)
        tweak(&cfg);
    h_server *h = h_start(&cfg);
    W.h = h;
    assert_int_equal(ferry_server_on_session(h->srv, tr_on_session, NULL), 0);
    return h;
}

static int tr_cond_closes(void *ud)
{
    return W.closes >= *(int *)ud;
}

/* Wait for n close callbacks. */
static int tr_wait_closes(int n)
{
    return h_run_until(W.h, tr_cond_closes, &n, TR_WAIT);
}

/* Stop the server (unless a callback already closed it) and require a clean loop. */
static void tr_stop(h_server *h)
{
    if (!W.server_closing) {
        h_stop(h);
        return;
    }
    assert_int_equal(W.closing_rc, 0);
    assert_true(h_run_until(h, h_cond_flag, &h->closed, 5000));
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

/* ------------------------------------------------------------------ HTTP requests */

/* A handshake or poll request head: method, query after "EIO=4&", extra header lines (each
 * ending in CRLF), Content-Length of blen. Malloc'd. */
static char *tr_head(const char *method, const char *query, const char *extra, size_t blen)
{
    size_t cap = 256 + strlen(query) + (extra ? strlen(extra) : 0);
    char *raw = malloc(cap);
    assert_non_null(raw);
    snprintf(raw, cap,
             "%s /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n", method,
             query, extra ? extra : "", blen);
    return raw;
}

/* One request on a fresh connection. The body goes into r->body; the head (any length) into
 * *head when head is not NULL (malloc'd). Returns the status, 0 when the connection ended
 * without an answer. */
static int tr_http(h_server *h, const char *method, const char *query, const char *body,
                   const char *extra, h_response *r, char **head)
{
    size_t blen = body ? strlen(body) : 0;
    char *raw = tr_head(method, query, extra, blen);
    memset(r, 0, sizeof(*r));
    h_client *c = hc_connect(h);
    hc_sends(c, raw);
    if (blen > 0)
        hc_send(c, body, blen);
    free(raw);
    h_run_until(h, hc_cond_response, c, TR_WAIT);
    size_t n = hc_complete(c);
    if (n > 0) {
        const char *end = strstr(c->in, "\r\n\r\n");
        size_t hl = (size_t)(end - c->in);
        r->status = atoi(c->in + 9);
        r->body_len = n - hl - 4;
        assert_true(r->body_len < sizeof(r->body));
        memcpy(r->body, end + 4, r->body_len);
        r->body[r->body_len] = '\0';
        if (hl < sizeof(r->head)) {
            memcpy(r->head, c->in, hl);
            r->head[hl] = '\0';
        }
        if (head != NULL) {
            *head = malloc(hl + 1);
            assert_non_null(*head);
            memcpy(*head, c->in, hl);
            (*head)[hl] = '\0';
        }
    } else {
        assert_true(c->eof); /* no answer only when the server closed */
    }
    hc_close(c);
    return r->status;
}

/* The sid in an open packet, or "". */
static void tr_sid_of(const char *text, char *sid, size_t cap)
{
    sid[0] = '\0';
    const char *p = strstr(text, "\"sid\":\"");
    if (p == NULL)
        return;
    p += 7;
    size_t n = strcspn(p, "\"");
    if (n >= cap)
        return;
    memcpy(sid, p, n);
    sid[n] = '\0';
}

/* ------------------------------------------------------------------ the clients */

typedef struct tr_client tr_client;

typedef struct tr_driver {
    const char *name; /* the transport query value */
    /* Handshake (with k->extra header lines); 1 with the open packet in k->open and the
     * response head in k->head, 0 when the session ended at once, or -status when the request
     * was refused. */
    int (*open)(tr_client *k);
    /* Send packets (Engine.IO text, e.g. "4hello"), all in one write where the transport can
     * (one POST payload, frames in one segment). */
    void (*send)(tr_client *k, const char *const *pkts, size_t n);
    /* The next packet from the server into out: 1, or 0 when the session ended without one. */
    int (*recv)(tr_client *k, char *out, size_t cap);
    void (*end)(tr_client *k); /* free the client (its connection closed by us) */
} tr_driver;

struct tr_client {
    const tr_driver *d;
    h_server *h;
    h_client *c; /* the stream or WebSocket connection; NULL for polling */
    char sid[64];
    char open[512];
    const char *extra; /* header lines for the handshake */
    char *head;        /* the handshake's response head */
    int ended;
    /* Packets received but not yet taken (a polling payload holds several). */
    char pending[8192];
    size_t npending;
};

/* Queue the packets of a polling payload in k->pending (NUL-separated). */
static void tr_pend_payload(tr_client *k, const char *body, size_t len)
{
    assert_true(k->npending + len + 1 < sizeof(k->pending));
    for (size_t i = 0; i < len; i++)
        k->pending[k->npending++] = body[i] == '\x1e' ? '\0' : body[i];
    k->pending[k->npending++] = '\0';
}

static int tr_take_pending(tr_client *k, char *out, size_t cap)
{
    if (k->npending == 0)
        return 0;
    size_t n = strlen(k->pending);
    assert_true(n < cap);
    memcpy(out, k->pending, n + 1);
    memmove(k->pending, k->pending + n + 1, k->npending - n - 1);
    k->npending -= n + 1;
    return 1;
}

/* ---- long- and short-polling */

static int pl_open(tr_client *k)
{
    char q[64];
    snprintf(q, sizeof(q), "transport=%s", k->d->name);
    h_response r;
    int st = tr_http(k->h, "GET", q, NULL, k->extra, &r, &k->head);
    if (st == 0 && W.server_closing) {
        k->ended = 1; /* a callback closed the server: connection closed */
        return 0;
    }
    if (st == 0 && W.tolerant) {
        k->ended = 1; /* the connection was aborted: out of memory writing */
        return 0;
    }
    if (st != 200)
        return -st;
    tr_pend_payload(k, r.body, r.body_len);
    char first[512];
    assert_true(tr_take_pending(k, first, sizeof(first)));
    if (strcmp(first, "1") == 0) {
        k->ended = 1;
        return 0;
    }
    assert_memory_equal(first, "0{\"sid\":\"", 9);
    snprintf(k->open, sizeof(k->open), "%s", first);
    tr_sid_of(first, k->sid, sizeof(k->sid));
    return 1;
}

static void pl_query(tr_client *k, char *q, size_t cap)
{
    snprintf(q, cap, "transport=%s&sid=%s", k->d->name, k->sid);
}

static void pl_send(tr_client *k, const char *const *pkts, size_t n)
{
    char body[4096] = "", q[128];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%s", i ? "\x1e" : "", pkts[i]);
    assert_true(len < sizeof(body));
    pl_query(k, q, sizeof(q));
    h_response r;
    int st = tr_http(k->h, "POST", q, body, NULL, &r, NULL);
    /* "ok"; or, once the session is gone (a close raced the POST), "Session ID unknown"; or
     * nothing when a callback closed the whole server. */
    if (W.tolerant) {
        assert_true(st == 200 || st == 0 || st == 400 || st == 500 || st == 503);
        if (st != 200)
            k->ended = 1; /* refused: the session may live on, but this client gives up */
        return;
    }
    assert_true(st == 200 || st == 400 || (st == 0 && W.server_closing));
    if (st == 200)
        assert_string_equal(r.body, "ok");
}

static int pl_recv(tr_client *k, char *out, size_t cap)
{
    if (tr_take_pending(k, out, cap))
        return 1;
    if (k->ended)
        return 0;
    if (W.server_closing) {
        k->ended = 1; /* nothing listens any more: a client sees the connection refused */
        return 0;
    }
    char q[128];
    pl_query(k, q, sizeof(q));
    h_response r;
    int st = tr_http(k->h, "GET", q, NULL, NULL, &r, NULL);
    if (st == 400) {
        assert_string_equal(r.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
        k->ended = 1;
        return 0;
    }
    if (st == 0 || (W.tolerant && (st == 500 || st == 503))) {
        k->ended = 1; /* the server closed the connection (shutting down, out of memory) */
        return 0;
    }
    assert_int_equal(st, 200);
    tr_pend_payload(k, r.body, r.body_len);
    return tr_take_pending(k, out, cap);
}

static void pl_end(tr_client *k)
{
    (void)k;
}

static const tr_driver tr_polling = {"polling", pl_open, pl_send, pl_recv, pl_end};
static const tr_driver tr_short_polling = {"short-polling", pl_open, pl_send, pl_recv, pl_end};

/* ---- WebSocket */

#define WS_KEY_HEAD                                                                                \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                                \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

/* A whole server frame at the front of c->in: its total length, 0 if incomplete. */
static size_t ws_frame_len(const h_client *c, size_t *hdr, size_t *plen)
{
    if (c->len < 2)
        return 0;
    uint8_t b1 = (uint8_t)c->in[1];
    assert_int_equal(b1 & 0x80, 0); /* server frames are not masked */
    size_t len = b1 & 0x7f, h = 2;
    if (len == 126) {
        if (c->len < 4)
            return 0;
        len = ((size_t)(uint8_t)c->in[2] << 8) | (uint8_t)c->in[3];
        h = 4;
    } else {
        assert_true(len < 127); /* nothing this large in these tests */
    }
    *hdr = h;
    *plen = len;
    return c->len >= h + len ? h + len : 0;
}

static int ws_cond_frame(void *ud)
{
    h_client *c = ud;
    size_t h, l;
    return c->eof || ws_frame_len(c, &h, &l) > 0;
}

/* The next frame: its opcode and payload (NUL-terminated), or -1 when the connection ended. */
static int ws_next_frame(h_client *c, char *out, size_t cap, size_t *outlen)
{
    h_run_until(c->h, ws_cond_frame, c, TR_WAIT);
    size_t h, l, n = ws_frame_len(c, &h, &l);
    if (n == 0) {
        if (!c->eof) /* nothing may be left hanging */
            fail_msg("allocation %ld failing: no frame and no end", tr_current_n);
        return -1;
    }
    assert_true(l < cap);
    memcpy(out, c->in + h, l);
    out[l] = '\0';
    if (outlen != NULL)
        *outlen = l;
    int op = c->in[0] & 0x0f;
    memmove(c->in, c->in + n, c->len - n);
    c->len -= n;
    return op;
}

/* Send the upgrade request; the 101 head is checked and taken off the input. */
static int ws_upgrade(h_client *c, const char *query, const char *extra, char **head)
{
    size_t cap = 512 + strlen(query) + (extra ? strlen(extra) : 0);
    char *raw = malloc(cap);
    assert_non_null(raw);
    snprintf(raw, cap, "GET /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\n" WS_KEY_HEAD "%s\r\n",
             query, extra ? extra : "");
    hc_sends(c, raw);
    free(raw);
    h_run_until(c->h, hc_cond_response, c, TR_WAIT);
    char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return 0;
    int st = atoi(c->in + 9);
    if (head != NULL) {
        size_t hl = (size_t)(end - c->in);
        *head = malloc(hl + 1);
        assert_non_null(*head);
        memcpy(*head, c->in, hl);
        (*head)[hl] = '\0';
    }
    if (st == 101) {
        assert_non_null(strstr(c->in, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        size_t n = (size_t)(end + 4 - c->in);
        memmove(c->in, c->in + n, c->len - n);
        c->len -= n;
    }
    return st;
}

static int ws_recv(tr_client *k, char *out, size_t cap)
{
    if (k->ended)
        return 0;
    size_t len;
    int op;
    while ((op = ws_next_frame(k->c, out, cap, &len)) == WS_OP_PING)
        ;
    if (op < 0 || op == WS_OP_CLOSE) {
        k->ended = 1;
        return 0;
    }
    if (op == WS_OP_BINARY) {
        /* As a polling client sees it: "b" + base64 is not needed here; mark it. */
        assert_true(len + 1 < cap);
        memmove(out + 1, out, len + 1);
        out[0] = 'B';
        return 1;
    }
    assert_int_equal(op, WS_OP_TEXT);
    return 1;
}

static int ws_open(tr_client *k)
{
    k->c = hc_connect(k->h);
    int st = ws_upgrade(k->c, "transport=websocket", k->extra, &k->head);
    if (st != 101)
        return -st;
    char p[512];
    if (!ws_recv(k, p, sizeof(p)))
        return 0;
    if (strcmp(p, "1") == 0) {
        k->ended = 1;
        return 0;
    }
    assert_memory_equal(p, "0{\"sid\":\"", 9);
    snprintf(k->open, sizeof(k->open), "%s", p);
    tr_sid_of(p, k->sid, sizeof(k->sid));
    return 1;
}

static void ws_send(tr_client *k, const char *const *pkts, size_t n)
{
    /* Every frame in one write: the server reads them in one callback. */
    uint8_t buf[4096];
    size_t o = 0;
    static const uint8_t key[4] = {0x01, 0x02, 0x03, 0x04};
    for (size_t i = 0; i < n; i++) {
        /* "b<base64>" (the polling form) goes as a binary frame of the decoded bytes. */
        uint8_t bin[256];
        const uint8_t *data = (const uint8_t *)pkts[i];
        size_t len = strlen(pkts[i]);
        int op = WS_OP_TEXT;
        if (pkts[i][0] == 'b') {
            assert_true(len < sizeof(bin));
            long bl = ferry_base64_decode(bin, pkts[i] + 1, len - 1);
            assert_true(bl >= 0);
            data = bin;
            len = (size_t)bl;
            op = WS_OP_BINARY;
        }
        assert_true(len < 126 && o + len + 6 < sizeof(buf));
        buf[o++] = (uint8_t)(0x80 | op);
        buf[o++] = (uint8_t)(0x80 | len);
        memcpy(buf + o, key, 4);
        o += 4;
        for (size_t j = 0; j < len; j++)
            buf[o++] = data[j] ^ key[j & 3];
    }
    hc_send(k->c, buf, o);
}

static void ws_end(tr_client *k)
{
    if (k->c != NULL)
        hc_close(k->c);
    k->c = NULL;
}

static const tr_driver tr_websocket = {"websocket", ws_open, ws_send, ws_recv, ws_end};

/* ---- SSE */

static int sse_cond(void *ud)
{
    const void *const *w = ud;
    const h_client *c = w[0];
    return c->eof || strstr(c->in, (const char *)w[1]) != NULL;
}

/* Wait for needle in the stream; 1 when it came. */
static int sse_wait(h_client *c, const char *needle)
{
    const void *w[2] = {c, needle};
    h_run_until(c->h, sse_cond, (void *)w, TR_WAIT);
    return strstr(c->in, needle) != NULL;
}

/* Take the next event's data off the stream: 1, or 0 when the stream ended first. Comment
 * lines (keep-alive, padding) and the retry line are skipped. */
static int sse_event(h_client *c, char *out, size_t cap)
{
    for (;;) {
        char *end = strstr(c->in, "\n\n");
        if (end == NULL) {
            if (c->eof)
                return 0;
            if (!sse_wait(c, "\n\n")) {
                /* Neither an event nor the end: a stream left hanging (allocation-failure
                 * runs accept it: the client gives up, see sse_recv). */
                if (!c->eof && !W.tolerant)
                    fail_msg("the stream neither sent an event nor ended");
                return 0;
            }
            continue;
        }
        size_t n = (size_t)(end + 2 - c->in);
        const char *data = strstr(c->in, "data: ");
        int found = data != NULL && data < end;
        if (found) {
            data += 6;
            size_t len = (size_t)(end - data);
            assert_true(len < cap);
            memcpy(out, data, len);
            out[len] = '\0';
        }
        memmove(c->in, c->in + n, c->len - n);
        c->len -= n;
        c->in[c->len] = '\0';
        if (found)
            return 1;
    }
}

static int sse_recv(tr_client *k, char *out, size_t cap)
{
    if (k->ended)
        return 0;
    if (W.tolerant && !sse_wait(k->c, "\n\n")) {
        /* Nothing more: only a stream that ended is clean (an extension session whose POST
         * failed keeps its stream; the client gave up on it, see pl_send). */
        k->ended = 1;
        return 0;
    }
    if (!sse_event(k->c, out, cap)) {
        k->ended = 1;
        return 0;
    }
    return 1;
}

/* Open the stream; the response head is checked and taken off the input. */
static int sse_stream(h_client *c, const char *query, const char *extra, char **head)
{
    size_t cap = 512 + strlen(query) + (extra ? strlen(extra) : 0);
    char *raw = malloc(cap);
    assert_non_null(raw);
    snprintf(raw, cap,
             "GET /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
             "%s\r\n",
             query, extra ? extra : "");
    hc_sends(c, raw);
    free(raw);
    if (!sse_wait(c, "\r\n\r\n"))
        return 0;
    int st = atoi(c->in + 9);
    if (head != NULL) {
        size_t hl = (size_t)(strstr(c->in, "\r\n\r\n") - c->in);
        *head = malloc(hl + 1);
        assert_non_null(*head);
        memcpy(*head, c->in, hl);
        (*head)[hl] = '\0';
    }
    if (st == 200) {
        assert_non_null(strstr(c->in, "\r\nContent-Type: text/event-stream\r\n"));
        assert_non_null(strstr(c->in, "\r\nCache-Control: no-cache, no-transform\r\n"));
        assert_non_null(strstr(c->in, "\r\nX-Accel-Buffering: no\r\n"));
        char *end = strstr(c->in, "\r\n\r\n");
        size_t n = (size_t)(end + 4 - c->in);
        memmove(c->in, c->in + n, c->len - n);
        c->len -= n;
        c->in[c->len] = '\0';
    }
    return st;
}

static int sse_open(tr_client *k)
{
    k->c = hc_connect(k->h);
    int st = sse_stream(k->c, "transport=sse", k->extra, &k->head);
    if (st != 200)
        return -st;
    char p[512];
    if (!sse_recv(k, p, sizeof(p)))
        return 0;
    if (strcmp(p, "1") == 0) {
        k->ended = 1;
        return 0;
    }
    assert_memory_equal(p, "0{\"sid\":\"", 9);
    snprintf(k->open, sizeof(k->open), "%s", p);
    tr_sid_of(p, k->sid, sizeof(k->sid));
    return 1;
}

static const tr_driver tr_sse = {"sse", sse_open, pl_send, sse_recv, ws_end};

/* ---- common */

static tr_client *tr_client_new(h_server *h, const tr_driver *d)
{
    tr_client *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    k->d = d;
    k->h = h;
    return k;
}

static void tr_client_free(tr_client *k)
{
    k->d->end(k);
    free(k->head);
    free(k);
}

static void tr_send1(tr_client *k, const char *pkt)
{
    k->d->send(k, &pkt, 1);
}

/* Read until the session ends (a close packet or the end of the transport); packets before
 * it are only counted. Bounded in count. 1 when it ended. */
static int tr_until_end(tr_client *k, int *before)
{
    char p[512];
    for (int i = 0; i < 16; i++) {
        if (!k->d->recv(k, p, sizeof(p)))
            return 1;
        if (strcmp(p, "1") == 0) {
            k->ended = 1;
            return 1;
        }
        if (before != NULL)
            (*before)++;
    }
    return 0;
}

/* ------------------------------------------------------------------ scenarios for every transport
 */

static int tr_cond_acted(void *ud)
{
    (void)ud;
    return W.acted > 0;
}

static ferry_reason tr_reason_of(tr_act a, ferry_reason otherwise)
{
    if (a == ACT_CLOSE_SESSION)
        return FERRY_REASON_FORCED_CLOSE;
    if (a == ACT_CLOSE_SERVER)
        return FERRY_REASON_SERVER_SHUTTING_DOWN;
    return otherwise;
}

/* The session callback closes the session (graceful: the client still gets the open packet,
 * then the close) or the whole server. */
static void tr_close_in_open(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    W.in_open = a;
    tr_client *k = tr_client_new(h, d);
    int rc = d->open(k);
    assert_true(rc >= 0);
    if (a == ACT_CLOSE_SESSION)
        assert_int_equal(rc, 1);
    assert_int_equal(W.opened, 1);
    assert_int_equal(W.acted, 1);
    assert_int_equal(W.send_rc, -FERRY_ECLOSED);
    assert_true(tr_until_end(k, NULL));
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, tr_reason_of(a, 0));
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
    assert_int_equal(W.messages, 0);
}

/* The message callback closes: the second message of the same read or payload is not
 * delivered, the client sees the end, the close is reported once. */
static void tr_close_in_message(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    tr_client *k = tr_client_new(h, d);
    assert_int_equal(d->open(k), 1);
    W.in_message = a;
    const char *two[] = {"4a", "4b"};
    d->send(k, two, 2);
    assert_true(h_run_until(h, tr_cond_acted, NULL, TR_WAIT));
    assert_int_equal(W.messages, 1);
    assert_string_equal(W.last, "a");
    assert_int_equal(W.send_rc, -FERRY_ECLOSED);
    int before = 0;
    assert_true(tr_until_end(k, &before));
    assert_int_equal(before, 0); /* no echo: the callback closed instead */
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, tr_reason_of(a, 0));
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
    assert_int_equal(W.messages, 1);
}

/* The close callback (the client sent a close packet) closes again: the session's close does
 * nothing, the server's shuts down cleanly. */
static void tr_close_in_close(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    tr_client *k = tr_client_new(h, d);
    assert_int_equal(d->open(k), 1);
    W.in_close = a;
    tr_send1(k, "1");
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, FERRY_REASON_TRANSPORT_CLOSE);
    assert_int_equal(W.acted, 1);
    assert_int_equal(W.send_rc, -FERRY_ECLOSED);
    assert_true(tr_until_end(k, NULL));
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
}

/* The happy path every transport shares: the open packet says what the handshake should, a
 * text and a binary message are echoed, a message sent by the server from outside any
 * callback arrives, and the client's close is reported as "transport close". binary is the
 * form the client sees for a binary echo of 0x01 0x02. */
static void tr_echo_and_close(const tr_driver *d, const char *upgrades, const char *binary)
{
    h_server *h = tr_start(NULL);
    tr_client *k = tr_client_new(h, d);
    assert_int_equal(d->open(k), 1);
    assert_int_equal(strlen(k->sid), 22); /* 128 bits, base64url */
    char want[128];
    snprintf(want, sizeof(want),
             "\"upgrades\":%s,\"pingInterval\":60000,\"pingTimeout\":60000,"
             "\"maxPayload\":1000000",
             upgrades);
    assert_non_null(strstr(k->open, want));
    assert_string_equal(ferry_session_transport(W.s), d->name);
    assert_string_equal(ferry_session_id(W.s), k->sid);
    char p[512];
    tr_send1(k, "4hello");
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "4hello");
    assert_int_equal(W.messages, 1);
    assert_string_equal(W.last, "hello");
    assert_int_equal(W.last_binary, 0);
    tr_send1(k, "bAQI=");
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, binary);
    assert_int_equal(W.last_binary, 1);
    assert_int_equal(W.last_len, 2);
    assert_memory_equal(W.last, "\x01\x02", 2);
    assert_int_equal(ferry_session_send(W.s, "from server", 11, 0), 0);
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "4from server");
    tr_send1(k, "1");
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, FERRY_REASON_TRANSPORT_CLOSE);
    assert_true(tr_until_end(k, NULL));
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
}

/* ---- long headers */

#define TR_HEADER_MAX 4096

static void tr_long_cfg(ferry_server_config *cfg)
{
    cfg->max_header_bytes = TR_HEADER_MAX;
    cfg->cors_origins = "*";
}

/* The handshake request's head size with the given extra lines (as the driver sends it). */
static size_t tr_handshake_size(const tr_driver *d, const char *extra)
{
    char q[64], *raw;
    snprintf(q, sizeof(q), "transport=%s", d->name);
    if (d == &tr_websocket) {
        size_t cap = 512 + strlen(extra);
        raw = malloc(cap);
        assert_non_null(raw);
        snprintf(raw, cap, "GET /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\n" WS_KEY_HEAD "%s\r\n",
                 q, extra);
    } else if (d == &tr_sse) {
        size_t cap = 512 + strlen(extra);
        raw = malloc(cap);
        assert_non_null(raw);
        snprintf(raw, cap,
                 "GET /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 "%s\r\n",
                 q, extra);
    } else {
        raw = tr_head("GET", q, extra, 0);
    }
    size_t n = strlen(raw);
    free(raw);
    return n;
}

/* "X-Pad: ppp...\r\n" making the handshake head exactly n bytes. */
static char *tr_pad_to(const tr_driver *d, size_t n)
{
    size_t fixed = tr_handshake_size(d, "X-Pad: \r\n");
    assert_true(n > fixed);
    size_t pad = n - fixed;
    char *x = malloc(pad + 16);
    assert_non_null(x);
    memcpy(x, "X-Pad: ", 7);
    memset(x + 7, 'p', pad);
    memcpy(x + 7 + pad, "\r\n", 3);
    assert_int_equal(tr_handshake_size(d, x), n);
    return x;
}

/* A handshake head of exactly max_header_bytes opens a session on the transport; one byte more
 * is refused with 431 and opens nothing; an Origin of 3000 bytes is echoed whole in the CORS
 * headers of a transport that answers with HTTP headers (polling, SSE), and the session works. */
static void tr_long_headers(const tr_driver *d)
{
    h_server *h = tr_start(tr_long_cfg);
    char *at = tr_pad_to(d, TR_HEADER_MAX);
    tr_client *k = tr_client_new(h, d);
    k->extra = at;
    assert_int_equal(d->open(k), 1);
    assert_int_equal(W.opened, 1);
    tr_send1(k, "4x");
    char p[512];
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "4x");
    tr_client_free(k);
    free(at);

    char *over = tr_pad_to(d, TR_HEADER_MAX + 1);
    k = tr_client_new(h, d);
    k->extra = over;
    assert_int_equal(d->open(k), -431);
    assert_int_equal(W.opened, 1);
    tr_client_free(k);
    free(over);

    size_t olen = 3000;
    char *origin = malloc(olen + 32);
    assert_non_null(origin);
    int m = snprintf(origin, 32, "Origin: http://");
    memset(origin + m, 'o', olen);
    memcpy(origin + m + olen, "\r\n", 3);
    k = tr_client_new(h, d);
    k->extra = origin;
    assert_int_equal(d->open(k), 1);
    assert_int_equal(W.opened, 2);
    if (d != &tr_websocket) {
        char *acao = malloc(olen + 64);
        assert_non_null(acao);
        snprintf(acao, olen + 64, "\r\nAccess-Control-Allow-Origin: %.*s\r\n", (int)(olen + 7),
                 origin + 8);
        assert_non_null(strstr(k->head, acao));
        free(acao);
    }
    tr_send1(k, "4y");
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "4y");
    tr_send1(k, "1");
    assert_true(tr_until_end(k, NULL));
    tr_client_free(k);
    free(origin);
    tr_stop(h);
}

/* ---- allocation failure (failmalloc.h) */

/* Handshake, a message and its echo, then "bye", which the message callback answers by
 * closing the session. 1 when everything went through. Any step may end cleanly instead. */
static int tr_cycle(h_server *h, const tr_driver *d)
{
    tr_client *k = tr_client_new(h, d);
    char p[512];
    int ok = 0, rc = d->open(k);
    assert_true(rc == 1 || rc == 0 || rc == -500 || rc == -503);
    if (rc != 1)
        goto done;
    tr_send1(k, "4hello");
    do {
        if (!d->recv(k, p, sizeof(p)))
            goto done;
    } while (strcmp(p, "6") == 0);
    if (strcmp(p, "1") == 0)
        goto done; /* the session closed: it could not queue the echo */
    assert_string_equal(p, "4hello");
    tr_send1(k, "4bye");
    if (k->ended)
        goto done;
    int before = 0;
    assert_true(tr_until_end(k, &before));
    ok = 1;
done:
    tr_client_free(k);
    return ok;
}

/* The cycle with the Nth allocation failing, for N = 0, 1, ... until it needs no more: every
 * run ends cleanly, gives back every allocation once the server is stopped, and the same
 * server serves a whole cycle right after the failure. */
static void tr_nomem_with(const tr_driver *d, int (*cycle)(h_server *h, const tr_driver *d))
{
    assert_int_equal(failmalloc_install(), 0);
    int runs = 0, done = 0;
    for (long n = 0; n < 3000 && !done; n++) {
        long before = failmalloc_live;
        h_server *h = tr_start(NULL);
        W.tolerant = 1;
        failmalloc_countdown = n;
        tr_current_n = n;
        failmalloc_failed = 0;
        uint64_t t0 = h_now(h);
        int ok = cycle(h, d);
        failmalloc_countdown = -1;
        /* A step the client gave up on was never answered: a hang, not an error. */
        if (h_now(h) - t0 >= TR_WAIT - 100)
            fail_msg("allocation %ld failing: a step hung", n);
        done = !failmalloc_failed;
        if (done)
            assert_true(ok);
        assert_true(cycle(h, d));
        tr_stop(h);
        if (failmalloc_live != before)
            fail_msg("allocation %ld failing: %ld allocations not given back", n, failmalloc_live - before);
        runs++;
    }
    assert_true(done);
    print_message("%d runs, one per allocation of the cycle\n", runs);
}

static void tr_nomem(const tr_driver *d)
{
    tr_nomem_with(d, tr_cycle);
}

#endif
