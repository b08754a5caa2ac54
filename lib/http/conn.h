/* Private to lib/http: the connection object and the glue between its files. */
#ifndef FERRY_HTTP_CONN_H
#define FERRY_HTTP_CONN_H

#include "common/life.h"
#include "http/http.h"

/* What one read of a plain connection may bring: the size of http->read_scratch. */
#define FERRY_HTTP_READ_CHUNK (64 * 1024)

typedef enum conn_state {
    CONN_HTTP,    /* parsing requests */
    CONN_TAKEN,   /* handed to a transport: raw bytes */
    CONN_CLOSING, /* uv_shutdown or uv_close under way */
} conn_state;

typedef enum conn_timer_kind {
    CONN_TIMER_NONE,
    CONN_TIMER_HEADER, /* a request must arrive whole */
    CONN_TIMER_IDLE,   /* keep-alive: a next request must start */
    CONN_TIMER_LINGER, /* closing: pending writes get this long */
    CONN_TIMER_HANDSHAKE, /* TLS: the handshake must complete */
} conn_timer_kind;

/* What only a connection parsing a request needs: allocated when a request's first bytes are
 * parsed, freed once it is parsed whole (between requests llhttp is in its initial state:
 * the next request starts on a fresh one) and when a transport takes the connection. So an
 * idle connection, a keep-alive one, one holding a long poll, or a WebSocket, carries none. */
typedef struct conn_parse {
    llhttp_t parser;
    /* Head accounting (the head's tokens themselves go into the request's store). */
    size_t header_bytes; /* lower bound from the tokens (early 431) */
    size_t head_fed;     /* bytes given to llhttp while the current head is incomplete */
    size_t body_fed;     /* bytes given to llhttp in the current body (framing included) */
    int error_status;    /* status to answer when a callback stops the parser (413, 431) */
    int busy;            /* a request has begun and is not parsed whole yet */
} conn_parse;

struct ferry_conn {
    uv_tcp_t tcp; /* first: the libuv callbacks get back to the conn by a cast */
    ferry_http *http;
    ferry_list link;      /* in http->conns */
    ferry_list deferred;  /* in the list of conns with input to process next turn */
    conn_parse *p;        /* NULL between requests and once taken */
    ferry_vec in;         /* read but not yet parsed (or not yet given to the taker) */
    ferry_req *req;       /* the request being parsed or waiting for its answer */
    /* The one lifetime rule (common/life.h): a reference is held around every call out (a
     * request dispatched, a taker's on_data/on_drain/on_close, an abort); held, the input is
     * the caller's and is not parsed again underneath it. Closed in the libuv close
     * callback, where the last reference frees the connection. */
    ferry_life life;
    conn_state state;
    conn_timer_kind timer_kind;
    ferry_timer timer;
    /* Writes in flight. */
    unsigned nwrites;
    size_t pending_bytes;
    /* The flags, in one word (every idle connection pays for this struct: keep it packed). */
    unsigned waiting : 1;     /* req was dispatched and is not answered yet */
    unsigned reading : 1;
    unsigned in_nomem : 1;    /* the input buffer could not grow: out of memory, not full */
    unsigned read_paused : 1; /* the taker paused reading */
    unsigned eof : 1;
    unsigned lingering : 1;   /* closed, FIN sent, dropping what the client still sends */
    unsigned head_paused : 1; /* llhttp paused at the end of a head (on_headers_complete) */
    unsigned in_body : 1;     /* the head was accepted; its body (maybe empty) is parsed */
    /* Bytes went out by uv_try_write: closing must still shut down (FIN after them) rather
     * than close at once, as it does after a uv_write. */
    unsigned wrote_now : 1;
    int redirect_port; /* a redirect listener's connection: every request gets a 308 */
    /* The owner after a take. */
    const ferry_conn_handler *handler;
    void *handler_ud;
    ferry_wire_meter *meter; /* the taken request's meter: every byte read or written */
    ferry_wire_meter *total; /* the taken request's second meter (ferry_req_set_total) */
    unsigned head_next : 1;  /* taken: the next write is the response head (101, SSE head) */
    /* TLS (conn.c): NULL on a plain connection. */
    struct conn_tls *tls;
};

/* Accept from server; with tls, the connection speaks TLS (see ferry_http_listen_ex). */
void ferry_conn_accept(ferry_http *http, uv_stream_t *server, ferry_tls *tls, int redirect_port);
/* The server shuts down: tell a taker (on_shutdown), before the connection is closed. */
void ferry_conn_shutdown(ferry_conn *c);
/* Parse buffered input again once the current request was answered (from the loop). */
void ferry_conn_process_deferred(ferry_http *http);
/* The router: pick the route once the headers are complete (and tell it), then call it
 * when the request is complete. */
void ferry_http_route_head(ferry_http *http, ferry_req *req);
void ferry_http_dispatch(ferry_http *http, ferry_req *req);
/* Is host[0..len) a plain host name or address literal, with an optional port? */
int ferry_http_host_ok(const char *host, size_t len);
/* Answer 308 to https://HOST:https_port/TARGET (a redirect listener). */
void ferry_http_redirect(ferry_req *req, int https_port);
void ferry_req_free(ferry_req *req);
/* Serve a GET/HEAD from the static root; answers 404 when there is no such file. */
void ferry_static_serve(ferry_req *req);
/* May this decoded request path be looked up below the static root? */
int ferry_static_path_is_safe(const char *path);

#endif
