/* Engine.IO over WebSocket (PROTOCOL.md "WebSocket encoding"): one packet per frame, a text
 * frame is "<type digit><data>", a binary frame the raw bytes of a message. A session opens
 * here directly (upgrades: []) or is probed from polling ("2probe"/"3probe"/"5", driven by the
 * engine).
 *
 * Frames are built around the engine's shared packet buffers: a header slice, then the
 * packet's own bytes, many packets in one writev (STYLE.md buffers). A later WebSocket for a
 * sid whose transport is already this one is answered 101 and closed at once, as the
 * reference server does.
 *
 * Lifetime: the engine hears ferry_engine_on_transport_closed() once, when the peer goes or
 * when it asked us to close; the object lives on until the connection is gone (ws_socket's
 * on_close), then frees itself and releases its session reference. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/transport.h"
#include "ws/socket.h"

/* Packets framed per write; the bytes held: FERRY_TRANSPORT_WRITE_HIGH_WATER (transport.h). */
#define MAX_BATCH 64

typedef struct ws_transport {
    ferry_transport super;
    ws_socket sock;
    unsigned accepted : 1; /* the 101 went out: sock is live */
    unsigned reported : 1; /* ferry_engine_on_transport_closed was called */
} ws_transport;

extern const ferry_transport_ops ferry_websocket_ops;

static void wt_free(ws_transport *w)
{
    ferry_session *s = w->super.session;
    ferry_mem_free(w);
    ferry_session_release(s);
}

static void report_closed(ws_transport *w, ferry_reason reason)
{
    if (w->reported)
        return;
    w->reported = 1;
    ferry_engine_on_transport_closed(&w->super, reason);
}

static ferry_transport *wt_create(ferry_session *s)
{
    ws_transport *w = ferry_mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->super.ops = &ferry_websocket_ops;
    w->super.session = s;
    ferry_session_retain(s);
    return &w->super;
}

static void wt_destroy(ferry_transport *t)
{
    wt_free((ws_transport *)t);
}

/* ------------------------------------------------------------------ from the socket */

static void on_message(ws_socket *sock, const char *data, size_t len, int binary)
{
    ws_transport *w = container_of(sock, ws_transport, sock);
    if (w->reported)
        return;
    if (binary) {
        ferry_engine_on_packet(&w->super, EIO_MESSAGE, data, len, 1);
        return;
    }
    if (len == 0 || data[0] < '0' || data[0] > '6') {
        ferry_session *s = w->super.session;
        FERRY_LOG(FERRY_LOG_INFO, "websocket", ferry_session_id(s), "undecodable packet: closing");
        ferry_engine_count_parse_error(s);
        if (ferry_engine_is_current(&w->super))
            ferry_engine_close_session(s, FERRY_REASON_PARSE_ERROR, 0);
        else
            ws_socket_fail(&w->sock, WS_CLOSE_INVALID_DATA);
        return;
    }
    ferry_engine_on_packet(&w->super, data[0] - '0', data + 1, len - 1, 0);
}

static void on_drain(ws_socket *sock)
{
    ws_transport *w = container_of(sock, ws_transport, sock);
    if (!w->reported)
        ferry_engine_on_drain(&w->super);
}

static void on_close(ws_socket *sock, int code)
{
    ws_transport *w = container_of(sock, ws_transport, sock);
    /* Failures of the peer (bad frames, bad UTF-8, too big) are transport errors; a closing
     * handshake or a dropped connection is the peer closing. */
    int error = code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_INVALID_DATA ||
                code == WS_CLOSE_TOO_BIG || code == WS_CLOSE_INTERNAL;
    /* No close frame: the connection was lost, not ended (an extension session waits). */
    w->super.lost = code == WS_CLOSE_ABNORMAL;
    report_closed(w, error ? FERRY_REASON_TRANSPORT_ERROR : FERRY_REASON_TRANSPORT_CLOSE);
    wt_free(w);
}

static const ws_socket_handler handler = {on_message, on_drain, on_close};

/* ------------------------------------------------------------------ ops */

/* The transport's options (ferry_server_transport_option(srv, "websocket", ...)). */
enum { OPT_PER_MESSAGE_DEFLATE, OPT_DEFLATE_THRESHOLD };
static const ferry_transport_option options[] = {
    /* permessage-deflate (RFC 7692) for engine WebSockets, when the client offers it */
    [OPT_PER_MESSAGE_DEFLATE] = {"per_message_deflate", 0, 0, 1, FERRY_OPT_CFG_BOOL,
                                 offsetof(ferry_server_config, ws_per_message_deflate)},
    /* messages below this many bytes are sent uncompressed */
    [OPT_DEFLATE_THRESHOLD] = {"deflate_threshold", 1024, 0, SIZE_MAX, FERRY_OPT_CFG_SIZE,
                               offsetof(ferry_server_config, ws_deflate_threshold)},
    {NULL, 0, 0, 0, 0, 0},
};

static int accept_request(ws_transport *w, ferry_req *req)
{
    const ferry_server_config *cfg = ferry_engine_config(&w->super);
    ws_handshake hs;
    const char *why;
    int deflate = ferry_engine_option(&w->super, OPT_PER_MESSAGE_DEFLATE) != 0;
    if (!req->upgrade || ws_handshake_check(req, deflate, &hs, &why) != 0)
        return 3; /* "Bad request", answered by the engine with a 400 before any 101 */
    ws_socket_limits lim = {cfg->max_payload, 65536,
                            (size_t)ferry_engine_option(&w->super, OPT_DEFLATE_THRESHOLD)};
    if (ws_socket_accept(&w->sock, req, &hs, ferry_engine_wheel_of(&w->super), &lim, &handler) != 0)
        return -1; /* the request is gone with its connection */
    w->accepted = 1;
    (void)ferry_conn_limit_unsent(w->sock.conn, FERRY_TRANSPORT_UNSENT_MAX); /* best effort */
    return 0;
}

static int wt_open(ferry_transport *t, ferry_req *req)
{
    ws_transport *w = (ws_transport *)t;
    int rc = accept_request(w, req);
    if (rc > 0)
        return rc;
    /* rc < 0: the connection died under the 101. The request is answered (freed); the
     * transport is reported closed at its first flush or at the probe's deadline. */
    return 0;
}

/* A second WebSocket for a session already on WebSocket: 101, then closed at once. */
static void on_dup_close(ferry_conn *c, void *ud)
{
}

static void on_dup_data(ferry_conn *c, const char *data, size_t len, void *ud)
{
}

static const ferry_conn_handler dup_handler = {.on_data = on_dup_data, .on_close = on_dup_close};

static void wt_on_request(ferry_transport *t, ferry_req *req)
{
    ws_handshake hs;
    const char *why;
    FERRY_LOG(FERRY_LOG_INFO, "websocket", ferry_engine_sid(t),
              "a second WebSocket for this session: closing it");
    if (!req->upgrade || ws_handshake_check(req, 0, &hs, &why) != 0) {
        ferry_req_respond_error(req, 3);
        return;
    }
    char head[512];
    size_t n = ws_handshake_response(&hs, head, sizeof(head) - 2);
    if (n > 0)
        memcpy(head + n, "\x88\x00", 2); /* a close frame without a code, as ws.close() sends */
    ferry_buf *b = n > 0 ? ferry_buf_from(head, n + 2) : NULL;
    ferry_conn *c = b ? ferry_req_take_conn(req, &dup_handler, NULL) : NULL;
    if (b == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    if (c != NULL) {
        ferry_slice s = {b->data, b->len, b};
        ferry_conn_write(c, &s, 1);
        ferry_conn_close(c);
    }
    ferry_buf_release(b);
}

static void wt_close(ferry_transport *t, ferry_reason reason);

static void wt_flush(ferry_transport *t)
{
    ws_transport *w = (ws_transport *)t;
    if (w->reported)
        return;
    if (!w->accepted) {
        wt_close(t, FERRY_REASON_TRANSPORT_ERROR);
        return;
    }
    ferry_buf *pkts[MAX_BATCH];
    ws_msg msgs[MAX_BATCH];
    /* A failed write closes the connection inside the send, and its close frees w: held
     * until the release below (the one lifetime rule, DESIGN.md). */
    ws_socket_hold(&w->sock);
    while (ws_socket_pending(&w->sock) < FERRY_TRANSPORT_WRITE_HIGH_WATER) {
        size_t n = ferry_engine_take(t, pkts, NULL, MAX_BATCH, FERRY_TRANSPORT_WRITE_HIGH_WATER);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            msgs[i] = (ws_msg){pkts[i]->data, pkts[i]->len, pkts[i],
                               (pkts[i]->flags & FERRY_BUF_BINARY) != 0};
        /* The writer retains what it keeps; the queue's references end here. */
        int rc = ws_socket_send(&w->sock, msgs, n);
        for (size_t i = 0; i < n; i++)
            ferry_buf_release(pkts[i]);
        if (rc != 0) {
            /* The packets taken are lost (no memory to frame them): a session with a hole
             * in its stream must not go on. 1011 ends it; the engine hears a transport error
             * (issue 9: the open packet was dropped this way and the client waited). */
            if (!w->reported)
                ws_socket_fail(&w->sock, WS_CLOSE_INTERNAL);
            break;
        }
        if (w->reported)
            break;
    }
    /* More is queued: on_drain asks the engine for another flush. */
    ws_socket_release(&w->sock); /* may free w */
}

static int wt_send_now(ferry_transport *t, ferry_buf *pkt)
{
    ws_transport *w = (ws_transport *)t;
    if (!w->accepted || w->reported)
        return -FERRY_ECLOSED;
    ws_msg m = {pkt->data, pkt->len, pkt, (pkt->flags & FERRY_BUF_BINARY) != 0};
    return ws_socket_send(&w->sock, &m, 1);
}

static void wt_close(ferry_transport *t, ferry_reason reason)
{
    ws_transport *w = (ws_transport *)t;
    if (w->reported)
        return;
    report_closed(w, reason);
    if (!w->accepted) {
        wt_free(w);
        return;
    }
    /* The closing handshake; on_close frees us once the connection is gone. Like the
     * reference (ws.close()), the close frame carries no code; but a WebSocket that an
     * extension session left by an attach (it is neither the session's transport nor its
     * probe) gets 1000: the session goes on elsewhere. */
    int moved = reason == FERRY_REASON_TRANSPORT_CLOSE && ferry_engine_left_behind(t);
    ws_socket_close(&w->sock, moved ? 1000 : 0, NULL);
}

const ferry_transport_ops ferry_websocket_ops = {
    .name = "websocket",
    .flags = FERRY_TR_FULL_DUPLEX | FERRY_TR_BINARY | FERRY_TR_PROBE_TARGET,
    .options = options,
    .create = wt_create,
    .open = wt_open,
    .on_request = wt_on_request,
    .flush = wt_flush,
    .send_now = wt_send_now,
    .close = wt_close,
    .destroy = wt_destroy,
};
