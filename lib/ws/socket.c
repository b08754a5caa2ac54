#include "ws/socket.h"

#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "ferry.h"

/* How long a close frame we sent waits for the peer's answer before the connection is cut. */
#define CLOSE_WAIT_MS 2000
/* Written but unsent bytes past which reading pauses: a peer that sends faster than it reads
 * (a ping flood, an echo it never reads) cannot grow our memory without bound. */
#define HIGH_WATER (4u * 1024 * 1024)

/* ws_stream passes frame headers without a reference, living only during the write: the
 * connection copies slices that short when they must wait. */
_Static_assert(FERRY_CONN_COPY_MAX >= WS_MAX_HEADER, "frame headers are copied when queued");

/* Every ws_socket frame holds a reference (common/life.h)... */
static void enter(ws_socket *w)
{
    ferry_life_hold(&w->life);
}

/* ...and the last one to leave, once the connection is gone, tells the owner. */
static void leave(ws_socket *w)
{
    if (ferry_life_drop(&w->life)) {
        ws_stream_free(&w->stream);
        w->h->on_close(w, w->code); /* the owner may free w here */
    }
}

void ws_socket_hold(ws_socket *w)
{
    enter(w);
}

void ws_socket_release(ws_socket *w)
{
    leave(w);
}

static void on_conn_data(ferry_conn *c, const char *data, size_t len, void *ud)
{
    ws_socket *w = ud;
    enter(w);
    /* The HTTP layer's input buffer is ours during the call: unmask in place. */
    ws_stream_feed(&w->stream, (char *)data, len);
    if (w->conn != NULL && !w->paused && ferry_conn_pending_bytes(w->conn) > HIGH_WATER) {
        w->paused = 1;
        ferry_conn_pause_reading(w->conn);
    }
    leave(w);
}

static void on_conn_drain(ferry_conn *c, void *ud)
{
    ws_socket *w = ud;
    enter(w);
    if (w->paused && w->conn != NULL) {
        w->paused = 0;
        ferry_conn_resume_reading(w->conn);
    }
    if (w->h->on_drain != NULL && w->stream.state == WS_STREAM_OPEN)
        w->h->on_drain(w);
    leave(w);
}

static void on_conn_close(ferry_conn *c, void *ud)
{
    ws_socket *w = ud;
    enter(w);
    w->conn = NULL;
    ferry_life_close(&w->life); /* the connection's reference: held, never the last here */
    ferry_timer_stop(w->wheel, &w->timer);
    /* Without a closing handshake: 1006, unless we had sent a close (its code stands). */
    if (w->stream.state == WS_STREAM_OPEN)
        w->code = WS_CLOSE_ABNORMAL;
    w->stream.state = WS_STREAM_CLOSED;
    leave(w);
}

/* Server shutdown: say so (1001 Going Away) before the HTTP layer closes the connection. */
static void on_conn_shutdown(ferry_conn *c, void *ud)
{
    ws_socket *w = ud;
    enter(w);
    if (w->stream.state == WS_STREAM_OPEN) {
        w->code = WS_CLOSE_GOING_AWAY;
        ws_stream_close(&w->stream, WS_CLOSE_GOING_AWAY, NULL);
    }
    leave(w);
}

static const ferry_conn_handler conn_handler = {
    .on_data = on_conn_data,
    .on_drain = on_conn_drain,
    .on_close = on_conn_close,
    .on_shutdown = on_conn_shutdown,
};

static void on_message(ws_stream *s, const char *data, size_t len, int binary)
{
    ws_socket *w = container_of(s, ws_socket, stream);
    w->h->on_message(w, data, len, binary);
}

static int on_write(ws_stream *s, const ferry_slice *sl, size_t n)
{
    ws_socket *w = container_of(s, ws_socket, stream);
    if (w->conn == NULL)
        return -FERRY_ECLOSED;
    return ferry_conn_write(w->conn, sl, n);
}

static void on_end(ws_stream *s, int code)
{
    ws_socket *w = container_of(s, ws_socket, stream);
    w->code = code;
    ferry_timer_stop(w->wheel, &w->timer);
    /* The server closes TCP first once the handshake is over (RFC 6455 7.1.1). */
    if (w->conn != NULL)
        ferry_conn_close(w->conn);
}

static const ws_stream_callbacks stream_cb = {on_message, on_write, on_end};

static void on_close_timeout(ferry_timer *t)
{
    ws_socket *w = container_of(t, ws_socket, timer);
    enter(w);
    if (w->conn != NULL)
        ferry_conn_abort(w->conn);
    leave(w);
}

int ws_socket_accept(ws_socket *w, ferry_req *req, ws_handshake *hs, ferry_wheel *wheel,
                     const ws_socket_limits *limits, const ws_socket_handler *h)
{
    memset(w, 0, sizeof(*w));
    w->h = h;
    w->wheel = wheel;
    ferry_life_init(&w->life); /* the connection's reference, once taken */
    ferry_timer_init(&w->timer, on_close_timeout);
    ws_stream_init(&w->stream, &stream_cb, limits->max_message, limits->max_fragments);
    if (hs->deflate) {
        ws_deflate *d = ws_deflate_new(&hs->pmd);
        if (d == NULL)
            hs->deflate = 0; /* answer without the extension rather than fail */
        else
            ws_stream_set_deflate(&w->stream, d, limits->deflate_threshold);
    }
    char head[512];
    size_t n = ws_handshake_response(hs, head, sizeof(head));
    ferry_buf *b = n > 0 ? ferry_buf_from(head, n) : NULL;
    if (b == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        ws_stream_free(&w->stream);
        return -FERRY_ENOMEM;
    }
    ferry_conn *c = ferry_req_take_conn(req, &conn_handler, w);
    if (c == NULL) {
        ferry_buf_release(b);
        ws_stream_free(&w->stream);
        return -FERRY_ECLOSED;
    }
    w->conn = c;
    ferry_slice s = {b->data, b->len, b};
    enter(w);
    ferry_conn_write(c, &s, 1);
    ferry_buf_release(b);
    if (ferry_life_drop(&w->life)) {
        /* The write failed and closed the connection: the owner frees w without on_close. */
        ws_stream_free(&w->stream);
        return -FERRY_ECLOSED;
    }
    return 0;
}

int ws_socket_send(ws_socket *w, const ws_msg *m, size_t n)
{
    if (w->conn == NULL)
        return -FERRY_ECLOSED;
    enter(w);
    int rc = ws_stream_send(&w->stream, m, n);
    leave(w);
    return rc;
}

size_t ws_socket_pending(const ws_socket *w)
{
    return w->conn ? ferry_conn_pending_bytes(w->conn) : 0;
}

void ws_socket_close(ws_socket *w, int code, const char *reason)
{
    if (w->conn == NULL)
        return; /* gone: on_close ran or is about to */
    enter(w);
    if (w->conn != NULL && w->stream.state == WS_STREAM_OPEN) {
        w->code = code ? code : WS_CLOSE_NO_STATUS;
        ws_stream_close(&w->stream, code, reason);
        if (w->stream.state == WS_STREAM_CLOSE_SENT)
            ferry_timer_start(w->wheel, &w->timer, CLOSE_WAIT_MS);
    }
    leave(w);
}

void ws_socket_fail(ws_socket *w, int code)
{
    if (w->conn == NULL)
        return;
    enter(w);
    if (w->conn != NULL) {
        if (w->stream.state == WS_STREAM_CLOSED)
            ferry_conn_close(w->conn);
        else
            ws_stream_fail(&w->stream, code);
    }
    leave(w);
}
