/* The HTTP layer: TCP listeners and connections on libuv, requests parsed by llhttp, responses
 * framed here, a router, CORS, static files and the limits that keep a connection bounded.
 *
 * Ownership (STYLE.md):
 *  - ferry_http (embedded in ferry_server) owns the listeners, the connection list and routes.
 *  - ferry_conn owns its uv_tcp_t, llhttp parser and input buffer; it is freed only in its
 *    libuv close callback.
 *  - ferry_http_req belongs to its connection until it is answered (ferry_req_respond*) or
 *    its connection is taken (ferry_req_take_conn). A handler may keep it (long-polling):
 *    then it must set an abort callback, which fires if the connection dies first.
 *  - A transport that takes the connection (WebSocket, SSE) owns it from then on: it writes
 *    raw bytes and receives raw reads, and hears on_close exactly once.
 *
 * Requests on one connection are handled strictly in order: the next pipelined request is
 * parsed only once the current one has been answered. */
#ifndef FERRY_HTTP_HTTP_H
#define FERRY_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <llhttp.h>

#include "common/buf.h"
#include "common/list.h"
#include "common/strbuf.h"
#include "common/timerwheel.h"
#include "ferry.h"

typedef struct ferry_http ferry_http;
typedef struct ferry_conn ferry_conn;
typedef struct ferry_http_req ferry_req;

typedef struct ferry_kv {
    char *name;
    char *value;
} ferry_kv;

/* A request handler: called once the request is complete (body read). */
typedef void (*ferry_route_fn)(ferry_req *req, void *ud);
/* Called when a request's headers are complete, before its body is read (optional): lets a
 * handler notice a request in flight, as Engine.IO's one-POST-at-a-time rule needs. It may
 * hold the request (ferry_req_hold) but must not answer it. */
typedef void (*ferry_route_head_fn)(ferry_req *req, void *ud);

enum {
    FERRY_ROUTE_PREFIX = 1u << 0,  /* match every path that starts with the route's path */
    FERRY_ROUTE_UPGRADE = 1u << 1, /* match only requests asking for a protocol upgrade */
    FERRY_ROUTE_CORS = 1u << 2,    /* add CORS headers and answer OPTIONS preflights */
};

typedef struct ferry_route {
    ferry_list link;
    char *method; /* NULL: any */
    char *path;
    unsigned flags;
    ferry_route_fn fn;
    ferry_route_head_fn head_fn;
    void *ud;
    void (*free_ud)(void *ud); /* NULL, or frees ud with the route */
} ferry_route;

typedef struct ferry_http_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint32_t header_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_connections;
    uint32_t tls_handshake_timeout_ms;
    uint32_t max_tls_handshakes;
} ferry_http_limits;

/* Counters, read by the metrics and by tests. */
typedef struct ferry_http_stats {
    uint64_t accepted;
    uint64_t refused_over_limit; /* connections closed at once: max_connections reached */
    uint64_t refused_nomem;      /* connections closed at once: no memory to take them */
    uint64_t requests;
    uint64_t bad_requests;       /* 400 from the parser */
    uint64_t header_too_large;   /* 431 */
    uint64_t body_too_large;     /* 413 */
    uint64_t timeouts;           /* header or idle timeouts */
    uint64_t tls_handshakes;     /* completed */
    uint64_t tls_failed;         /* handshakes that failed (bad or garbage ClientHello, ALPN) */
    uint64_t tls_timeouts;       /* handshakes over tls_handshake_timeout_ms */
    uint64_t tls_refused_busy;   /* connections closed at once: max_tls_handshakes reached */
    uint64_t tls_plain_http;     /* plain HTTP requests on a TLS port (answered 400) */
} ferry_http_stats;

typedef struct ferry_listener {
    ferry_list link;
    uv_tcp_t tcp;
    ferry_http *http;
    int port;
    ferry_tls *tls;    /* NULL: plain TCP; else retained */
    int redirect_port; /* 0, or answer everything with a redirect to https on this port */
    int refuse_owed;   /* a connection it holds could not be refused yet (ferry_http_refuse) */
} ferry_listener;

struct ferry_http {
    uv_loop_t *loop;
    ferry_wheel *wheel;   /* borrowed from the server */
    ferry_http_limits limits;
    char *static_root;    /* NULL: no static files */
    char **cors_origins;  /* NULL: CORS off; {"*"} for any; NULL-terminated */
    int cors_credentials;
    ferry_list listeners;
    ferry_list conns;
    ferry_list routes;
    ferry_list deferred;  /* conns with input left to parse once the loop comes back */
    uv_idle_t idle;       /* runs ferry_conn_process_deferred while deferred is not empty */
    unsigned open_handles; /* listeners + conns + idle still to close */
    uint32_t nconns;
    int closing;
    int draining; /* the server is shutting down: every answer says Connection: close */
    /* Called when the last listener and connection have closed after ferry_http_close(). */
    void (*on_closed)(ferry_http *http);
    ferry_http_stats stats;
    uint64_t limit_logged_ms; /* loop time of the last "max_connections reached" line */
    /* TLS: handshakes in flight, and scratch space shared by the TLS connections (used only
     * within one call: ciphertext just read, plaintext gathered for one SSL_write). */
    uint32_t tls_handshaking;
    char *tls_scratch;
    /* Refusing a connection there is no memory for (ferry_http_refuse): open while closing. */
    uv_tcp_t refuse;
    int refusing;
    /* Where a lingering close drops what a closing client still sends (conn.c). */
    char linger_sink[4096];
    /* Where plain connections read when they hold no unparsed input (conn.c): what a read
     * brings is parsed there, and only what is left unparsed (a request cut in the middle, a
     * pipelined follower) is copied into the connection's own buffer. So an idle connection
     * holds no input buffer, and a read costs no allocation. Allocated with the first
     * listener; used only within one read callback. */
    char *read_scratch;
};

/* Out of memory for a connection server has accepted: take it and close it at once, without
 * allocating. libuv accepts the socket before its connection callback and stops watching the
 * listener until uv_accept() takes it, so a connection left there stops the server from
 * accepting anything ever again. */
void ferry_http_refuse(ferry_http *http, uv_stream_t *server);

/* What one owner's requests and connections cost on the wire (a session's: lib/engine), counted
 * where the bytes pass: request heads and bodies as they arrived (chunked framing included),
 * response heads and bodies as written, and every byte read or written on a connection taken
 * from such a request (WebSocket frames with their headers, an SSE stream with its framing).
 * HTTP bytes, as a plain-HTTP peer sees them: under TLS, before encryption. */
typedef struct ferry_wire_meter {
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t requests; /* requests answered or taken */
    /* Of those bytes, the HTTP heads: request heads (request line, header lines, blank line),
     * response heads, and the first write on a taken connection (the 101, or an SSE stream's
     * head with its prelude). */
    uint64_t head_bytes_in;
    uint64_t head_bytes_out;
} ferry_wire_meter;

/* Called when a taken connection reads bytes, may write again, or closes. */
typedef struct ferry_conn_handler {
    void (*on_data)(ferry_conn *c, const char *data, size_t len, void *ud);
    /* Everything written so far has been handed to the kernel (optional). */
    void (*on_drain)(ferry_conn *c, void *ud);
    /* The connection is closing (peer gone, error, or ferry_conn_close): no more callbacks
     * follow, and writes fail from now on. Drop every pointer to it. */
    void (*on_close)(ferry_conn *c, void *ud);
    /* Optional: the server is shutting down and closes the connection right after this
     * returns; what is written here (a WebSocket close frame) still goes out first. */
    void (*on_shutdown)(ferry_conn *c, void *ud);
} ferry_conn_handler;

struct ferry_http_req {
    ferry_conn *conn;
    const char *method; /* static: llhttp's method name */
    /* url, path, query and headers all live in store, one allocation: while the head is
     * parsed it gathers "url\0name\0value\0...", and once the head is complete the path,
     * the query pairs and both arrays are laid out behind it (conn.c, req_build). */
    char *url;          /* the raw request target */
    char *path;         /* percent-decoded path, without the query */
    ferry_kv *query;
    size_t nquery;
    ferry_kv *headers;
    size_t nheaders;
    ferry_vec store;
    ferry_vec body;
    uint8_t http_major, http_minor;
    unsigned keep_alive : 1;
    unsigned upgrade : 1;   /* asked for a protocol upgrade (Connection: upgrade) */
    unsigned cors : 1;      /* the route asked for CORS headers */
    unsigned head : 1;      /* HEAD: answer without a body */
    ferry_route *route;     /* matched when the headers were complete; NULL: static or 404 */
    /* Set by a handler that holds the request: called if the connection closes before the
     * request is answered; the request is freed right after. */
    void (*on_abort)(ferry_req *req, void *ud);
    void *abort_ud;
    size_t wire_in;          /* the request's bytes as they arrived: head, body, framing */
    size_t head_in;          /* of which its head */
    ferry_wire_meter *meter; /* NULL, or where the request is counted (ferry_req_set_meter) */
    ferry_wire_meter *total; /* NULL, or a second, server-wide meter (ferry_req_set_total) */
};

/* ---- server-wide */
int ferry_http_init(ferry_http *http, uv_loop_t *loop, ferry_wheel *wheel,
                    const ferry_http_limits *limits, const char *static_root,
                    const char *cors_origins, int cors_credentials);
int ferry_http_listen(ferry_http *http, const char *addr, int port);
/* The same with TLS (tls retained), or answering every request with a redirect to https on
 * redirect_port (tls NULL, redirect_port > 0). */
int ferry_http_listen_ex(ferry_http *http, const char *addr, int port, ferry_tls *tls,
                         int redirect_port);
/* Listen on fd, a TCP socket the caller created and bound (taken: closed with the listener,
 * or at once when it cannot be used); tls as above, or NULL. */
int ferry_http_listen_fd(ferry_http *http, int fd, ferry_tls *tls);
/* Replace old with tls on the listeners that use old; returns how many. */
int ferry_http_set_tls(ferry_http *http, ferry_tls *old, ferry_tls *tls);
int ferry_http_listener_port(const ferry_http *http, unsigned index);
int ferry_http_port(const ferry_http *http);
int ferry_http_add_route(ferry_http *http, const char *method, const char *path, unsigned flags,
                         ferry_route_fn fn, ferry_route_head_fn head_fn, void *ud);
/* The same, and the route owns ud: free_ud(ud) runs when the routes are freed (or at once
 * when adding fails). */
int ferry_http_add_owned_route(ferry_http *http, const char *method, const char *path,
                               unsigned flags, ferry_route_fn fn, void *ud,
                               void (*free_ud)(void *ud));
/* Close listeners and connections; on_closed fires once all are gone (maybe synchronously
 * never: always from a libuv close callback, or at once when there was nothing to close). */
void ferry_http_close(ferry_http *http, void (*on_closed)(ferry_http *http));
/* Free routes and settings once closed. */
void ferry_http_free(ferry_http *http);

/* ---- requests */
/* Copy count pairs into a new array *dst (*n pairs), strings included, in one block that
 * ferry_kv_free() frees. On -FERRY_ENOMEM, *dst is NULL and *n 0. */
int ferry_kv_copy(ferry_kv **dst, size_t *n, const ferry_kv *src, size_t count);
void ferry_kv_free(ferry_kv *kv, size_t n);
/* The value of the first pair named name (nocase: compared case-insensitively), or NULL. */
const char *ferry_kv_find(const ferry_kv *kv, size_t n, const char *name, int nocase);
/* The name of pair i and its value in *value (value may be NULL); NULL past the end. */
const char *ferry_kv_at(const ferry_kv *kv, size_t n, size_t i, const char **value);
/* Query names match case-sensitively (URLSearchParams), header names case-insensitively. */
const char *ferry_req_query_get(const ferry_req *req, const char *name);
const char *ferry_req_header_get(const ferry_req *req, const char *name);
/* Does the comma-separated header contain token (case-insensitive)? */
int ferry_req_header_has_token(const ferry_req *req, const char *name, const char *token);
/* Is the request's Origin allowed by the server's allowlist? (1 when there is no Origin
 * header or no allowlist.) */
int ferry_req_origin_allowed(const ferry_req *req);
/* Did the request come over TLS? */
int ferry_req_is_tls(const ferry_req *req);
/* The peer address as text into out (at least 46 bytes). */
void ferry_req_remote_addr(const ferry_req *req, char *out, size_t outlen);

/* A request is owned by its handler from dispatch until it is answered. If its connection
 * closes first, a holder with an abort callback hears it and the request is freed; a request
 * without one is orphaned (req->conn = NULL) and the answer, whenever it comes, frees it and
 * returns -FERRY_ECLOSED. */
/* Answer the request: status line, Content-Type (NULL: none), Content-Length, connection
 * handling, CORS headers when the route asked for them, extra_headers (NULL or complete
 * "Name: value\r\n" lines), then the body slices (their refs are retained until written).
 * The request is freed. Returns 0, -FERRY_ECLOSED or -FERRY_ENOMEM (the connection is then
 * closed). */
int ferry_req_respond(ferry_req *req, int status, const char *content_type,
                      const char *extra_headers, const ferry_slice *body, size_t nbody);
/* Shorthand for a body held in one static or copied string. */
int ferry_req_respond_text(ferry_req *req, int status, const char *content_type,
                           const char *body, size_t len);
/* Engine.IO error answer: 400 (403 for code 4) with {"code":N,"message":"..."}. */
int ferry_req_respond_error(ferry_req *req, int code);

/* Count req into m (NULL: nowhere) when it is answered or its connection taken: its own bytes,
 * the answer's, one request; a connection taken from it goes on counting everything read and
 * written into m until it closes or its handler is set to NULL. m must stay valid that long
 * (a session holds its meter; its transports hold the session). */
void ferry_req_set_meter(ferry_req *req, ferry_wire_meter *m);
/* A second meter counted exactly as the first (the metrics' per-transport totals); m must
 * outlive the HTTP layer's connections (the engine's, freed after the HTTP layer closed). */
void ferry_req_set_total(ferry_req *req, ferry_wire_meter *m);

/* Hold the request: abort fires if its connection closes first. */
void ferry_req_hold(ferry_req *req, void (*on_abort)(ferry_req *req, void *ud), void *ud);

/* The CORS response headers for req (none unless its route asked for CORS and the Origin is
 * allowed): ferry_http_cors_size() is their exact length, ferry_http_cors_append() adds them to
 * sb. The Origin is echoed whole, however long (it is bounded by max_header_bytes). For every
 * response head, including a transport's own on a taken connection (SSE). */
size_t ferry_http_cors_size(const ferry_req *req);
void ferry_http_cors_append(const ferry_req *req, ferry_strbuf *sb);

/* Take the connection away from HTTP: for a streaming response or a protocol upgrade. The
 * request is freed. Bytes already read past the request are delivered to h->on_data before
 * the next read. Returns the connection, or NULL if it is closing. */
ferry_conn *ferry_req_take_conn(ferry_req *req, const ferry_conn_handler *h, void *ud);

/* ---- connections (taken ones) */
/* Write the slices in order, in one uv_write; each non-NULL ref is retained until the write
 * completes. Returns 0, -FERRY_ECLOSED or -FERRY_ENOMEM. */
int ferry_conn_write(ferry_conn *c, const ferry_slice *s, size_t n);
/* A slice without a reference (ref NULL) of at most this many bytes may live only during
 * ferry_conn_write(): it is copied if it must wait (a WebSocket frame header on the caller's
 * stack). A longer one must outlive the write (static memory). */
#define FERRY_CONN_COPY_MAX 16
/* Bytes handed to uv_write and not yet written. */
size_t ferry_conn_pending_bytes(const ferry_conn *c);
/* Bound the bytes the kernel holds for the connection and has not sent yet (TCP_NOTSENT_LOWAT
 * where the system has it; else nothing changes): a stream whose peer stops reading then
 * keeps its backlog in our queues, where a ping can pass it and a backpressure policy sees
 * it, instead of in megabytes of an autotuned send buffer. Bytes in flight are not limited.
 * Returns 0, or -FERRY_EINVAL when the option cannot be set (the connection works as before). */
int ferry_conn_limit_unsent(ferry_conn *c, size_t bytes);
/* Close after what is queued has been written (bounded by a linger timeout). Idempotent. */
void ferry_conn_close(ferry_conn *c);
/* Close at once, dropping what is queued (reset). Idempotent. */
void ferry_conn_abort(ferry_conn *c);
/* A NULL h also ends the counting into the meter of the request the connection was taken
 * from (ferry_req_set_meter): the connection has no owner left. */
void ferry_conn_set_handler(ferry_conn *c, const ferry_conn_handler *h, void *ud);
void ferry_conn_pause_reading(ferry_conn *c);
void ferry_conn_resume_reading(ferry_conn *c);
/* For the header timeout and idle handling of a taken connection: none are armed after a
 * take, the new owner runs its own timers. */
uv_loop_t *ferry_conn_loop(const ferry_conn *c);

/* Percent-decode in place ('+' stays '+' in paths, becomes ' ' in queries when plus is 1).
 * Returns the new length, or -1 for a malformed escape or a decoded NUL. */
long ferry_url_decode(char *s, size_t len, int plus);

/* A status code's reason phrase. */
const char *ferry_http_status_text(int status);

#endif
