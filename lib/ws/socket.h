/* A WebSocket connection on libuv: the message layer (stream.h) bound to a connection that
 * the HTTP layer handed over after the 101. Shared by the plain WebSocket API
 * (lib/server/ws_api.c) and the Engine.IO transport (transports/websocket.c).
 *
 * Lifetime, by the one rule (common/life.h): the socket is born with one reference, its
 * connection's, dropped when the connection is gone; every ws_socket call and connection
 * callback holds a reference while it runs. The last drop is the socket's "free": the owner
 * hears on_close, exactly once, and may free the socket from then on. So on_close never runs
 * while ws_socket code is still on the stack (as Redis defers freeing a client, STYLE.md smell
 * 4); it can run at the end of ws_socket_send/close/fail when the owner called those outside
 * of any callback. */
#ifndef FERRY_WS_SOCKET_H
#define FERRY_WS_SOCKET_H

#include "common/life.h"
#include "common/timerwheel.h"
#include "http/http.h"
#include "ws/handshake.h"
#include "ws/stream.h"

typedef struct ws_socket ws_socket;

typedef struct ws_socket_handler {
    void (*on_message)(ws_socket *w, const char *data, size_t len, int binary);
    /* Everything written so far reached the kernel (optional). */
    void (*on_drain)(ws_socket *w);
    /* The connection is gone. code: the peer's close code, 1005 for a close without one, the
     * code we failed or closed with, or 1006 when TCP ended without a closing handshake. */
    void (*on_close)(ws_socket *w, int code);
} ws_socket_handler;

typedef struct ws_socket_limits {
    size_t max_message;     /* bytes of one received message (after inflating) */
    uint32_t max_fragments; /* frames of one received message */
    size_t deflate_threshold;
} ws_socket_limits;

struct ws_socket {
    ws_stream stream;
    ferry_conn *conn; /* NULL once gone */
    ferry_wheel *wheel;
    ferry_timer timer; /* bounds the wait for the peer's close frame */
    const ws_socket_handler *h;
    /* The one lifetime rule (common/life.h): closed when the connection is gone; the last
     * reference runs on_close. */
    ferry_life life;
    int code;
    unsigned paused : 1; /* reading stopped until the writes drain */
};

/* Take req's connection, write the 101 answer for hs and start reading frames (wheel: the
 * server's, for the close deadline). The request is freed. Returns 0, or -FERRY_ECLOSED when the connection was already closing (then on_close
 * never comes and the owner frees w at once). */
int ws_socket_accept(ws_socket *w, ferry_req *req, ws_handshake *hs, ferry_wheel *wheel,
                     const ws_socket_limits *limits, const ws_socket_handler *h);

/* Send n messages in one write (payload refs are retained, not copied). Returns 0,
 * -FERRY_ECLOSED or -FERRY_ENOMEM. */
int ws_socket_send(ws_socket *w, const ws_msg *m, size_t n);
/* Bytes written and not yet taken by the kernel. */
size_t ws_socket_pending(const ws_socket *w);
/* The closing handshake: a close frame, then the connection ends when the peer answers or
 * after a short wait. */
void ws_socket_close(ws_socket *w, int code, const char *reason);
/* Fail: a close frame with code (1002, 1009, ...) and the connection closes at once. */
void ws_socket_fail(ws_socket *w, int code);
/* Keep on_close from running (and the owner from freeing w) between these two calls, around
 * a user callback made outside any ws_socket frame; the release may run on_close. */
void ws_socket_hold(ws_socket *w);
void ws_socket_release(ws_socket *w);

#endif
