/*
 * ferry: one realtime message stream over WebSocket, Server-Sent Events, long-polling or short
 * polling, speaking Engine.IO v4 / Socket.IO v5 on the wire.
 *
 * This is the only public header. Every type is opaque and every name starts with ferry_.
 *
 * Threads: a ferry_server lives on one libuv loop and every function below must be called on
 * that loop's thread, except ferry_set_allocator() (before anything else) and ferry_strerror().
 *
 * Errors: functions return 0 on success and a negative code on failure: -FERRY_E* for ferry's
 * own errors, or a libuv error code (UV_E*, also negative) where libuv reported the cause, as
 * ferry_server_listen() does for UV_EADDRINUSE. ferry_strerror() names both kinds.
 *
 * Callbacks: a callback may call any function of this header on the objects it is given,
 * including the close and disconnect functions; the object stays valid until the callback
 * returns and is freed afterwards (ferry defers the free, as Redis does for clients).
 */
#ifndef FERRY_H
#define FERRY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FERRY_EXTERN __attribute__((visibility("default")))
#else
#define FERRY_EXTERN
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0

/* ------------------------------------------------------------------ errors */

/* Error codes, grouped by kind in ranges of a hundred (wslay's way). Functions return them
 * negated. The ranges start far above errno values so that they never meet libuv's codes. */
enum {
    /* I/O */
    FERRY_EIO = 10100,   /* a socket or file operation failed (detail in the log) */
    FERRY_ECLOSED,       /* the object is closing or closed */
    FERRY_ETIMEDOUT,     /* a deadline passed (ack, connect, upgrade) */
    /* protocol: the peer sent something the protocol forbids */
    FERRY_EPROTO = 10200, /* malformed packet, frame or request */
    FERRY_EUTF8,          /* text that is not valid UTF-8 */
    FERRY_EUNSUPPORTED,   /* a version, transport or feature not offered */
    /* limits */
    FERRY_ELIMIT = 10300, /* a configured bound was reached (size, count, queue) */
    FERRY_ETOOBIG,        /* one message or body over its limit */
    FERRY_EQUEUEFULL,     /* a session's send queue is over max_session_queue_bytes */
    /* invalid use */
    FERRY_EINVAL = 10400, /* an argument is invalid */
    FERRY_EBUSY,          /* the object is in a state that refuses the call */
    FERRY_ENOTFOUND,      /* no such session, namespace or route */
    FERRY_EEXIST,         /* already registered */
    /* memory */
    FERRY_ENOMEM = 10500, /* the allocator failed */
    /* callbacks */
    FERRY_ECALLBACK = 10600, /* a user callback refused the operation */
};

/** Text for any code ferry returns (ferry's own or libuv's). Never NULL; the string is static. */
FERRY_EXTERN const char *ferry_strerror(int err);

/* ------------------------------------------------------------------ global set-up */

/** Replace the allocator used by ferry and by cJSON inside ferry. Call it once, before any
 * other ferry function; returns -FERRY_EBUSY if ferry has allocated already, -FERRY_EINVAL if a
 * function is NULL. The functions must behave like their C library namesakes. */
FERRY_EXTERN int ferry_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                                     void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

typedef enum ferry_log_level {
    FERRY_LOG_ERROR = 0,
    FERRY_LOG_WARN = 1,
    FERRY_LOG_INFO = 2,
    FERRY_LOG_DEBUG = 3,
} ferry_log_level;

/** Receives each log line: the level, the module ("http", "engine", ...), the session id or
 * NULL, and the formatted message without a newline. All pointers are valid only during the
 * call. */
typedef void (*ferry_log_cb)(ferry_log_level level, const char *module, const char *sid,
                             const char *msg, void *user_data);

/** Send ferry's log lines to cb (NULL restores the default: stderr). Lines above max_level are
 * dropped before they are formatted. Process-wide; call it before starting servers. */
FERRY_EXTERN void ferry_set_log_cb(ferry_log_cb cb, ferry_log_level max_level, void *user_data);

/* ------------------------------------------------------------------ reasons */

/** Why a session or socket closed. ferry_reason_str() gives Socket.IO's exact strings, which
 * official clients and users see. */
typedef enum ferry_reason {
    FERRY_REASON_TRANSPORT_CLOSE = 0,       /* "transport close": the peer closed */
    FERRY_REASON_TRANSPORT_ERROR,           /* "transport error": I/O or protocol failure */
    FERRY_REASON_PING_TIMEOUT,              /* "ping timeout": no pong in time */
    FERRY_REASON_PARSE_ERROR,               /* "parse error": undecodable packet */
    FERRY_REASON_FORCED_CLOSE,              /* "forced close": the server closed the session */
    FERRY_REASON_SERVER_SHUTTING_DOWN,      /* "server shutting down" */
    FERRY_REASON_SERVER_NAMESPACE_DISCONNECT, /* "server namespace disconnect" */
    FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT, /* "client namespace disconnect" */
    FERRY_REASON_FORCED_SERVER_CLOSE,       /* "forced server close" */
    FERRY_REASON_QUEUE_FULL,                /* "transport error" on the wire; the send queue
                                               went over max_session_queue_bytes */
} ferry_reason;

/** The reason as Socket.IO spells it. Never NULL; static. */
FERRY_EXTERN const char *ferry_reason_str(ferry_reason reason);

/* ------------------------------------------------------------------ server */

typedef struct ferry_server ferry_server;
typedef struct ferry_session ferry_session;

/** Transports, as a bit set for ferry_server_config.transports. */
enum {
    FERRY_TRANSPORT_POLLING = 1u << 0,       /* Engine.IO long-polling */
    FERRY_TRANSPORT_WEBSOCKET = 1u << 1,     /* Engine.IO WebSocket */
    FERRY_TRANSPORT_SSE = 1u << 2,           /* ferry extension: Server-Sent Events + POST */
    FERRY_TRANSPORT_SHORT_POLLING = 1u << 3, /* ferry extension: plain polling */
    FERRY_TRANSPORT_ALL = 0xfu,
};

/** Server settings. Fill with ferry_server_config_init() and then change what you need; new
 * fields always get defaults there, so callers keep compiling. The strings are copied by
 * ferry_server_new(); the caller may free them afterwards. */
typedef struct ferry_server_config {
    /* Engine.IO (defaults are the reference server's) */
    const char *path;               /* engine path, "/socket.io/"; must start and end with '/' */
    uint32_t ping_interval_ms;      /* 25000 */
    uint32_t ping_timeout_ms;       /* 20000 */
    uint32_t upgrade_timeout_ms;    /* 10000: a probe must complete within this */
    size_t max_payload;             /* 1000000: bytes per HTTP body or WebSocket message */
    size_t max_session_queue_bytes; /* 8 MiB: a session queuing more is closed (slow consumer) */
    unsigned transports;            /* FERRY_TRANSPORT_POLLING | FERRY_TRANSPORT_WEBSOCKET */
    int allow_upgrades;             /* 1 */
    uint32_t short_poll_interval_ms; /* 1000: announced to short-polling clients */

    /* HTTP */
    size_t max_header_bytes;        /* 16384: request line + headers; over it: 431 */
    uint32_t header_timeout_ms;     /* 10000: a request's headers must arrive within this */
    uint32_t idle_timeout_ms;       /* 5000: an idle keep-alive connection is closed after this */
    uint32_t max_connections;       /* 10000: further connections are accepted and closed */
    const char *static_root;        /* NULL: a folder served for GET paths outside the engine */
    /* Comma-separated allowed origins for CORS and for the Origin check on every transport,
     * or "*" for any. NULL (the default): no CORS headers and no Origin check. */
    const char *cors_origins;
    int cors_credentials;           /* 0: send Access-Control-Allow-Credentials: true when 1 */

    /* Server-Sent Events (ferry extension) */
    uint32_t sse_keepalive_ms;      /* 15000: comment line interval, below common proxy idle */
    size_t sse_padding_bytes;       /* 0: a comment prelude for proxies buffering the start */
    size_t sse_recycle_bytes;       /* 4 MiB: end the stream after this much; client resumes */

    /* WebSocket */
    int ws_per_message_deflate;     /* 0: permessage-deflate for engine WebSockets */
    size_t ws_deflate_threshold;    /* 1024: messages below this are sent uncompressed */

    /* Socket.IO */
    uint32_t connect_timeout_ms;    /* 45000: a session that joins no namespace is closed */
    uint32_t ack_timeout_ms;        /* 0: default timeout for emits with acks (0 = none) */
    unsigned max_attachments;       /* 10: binary attachments per packet */
} ferry_server_config;

/** Fill cfg with the defaults listed above. */
FERRY_EXTERN void ferry_server_config_init(ferry_server_config *cfg);

/** Create a server on loop (borrowed: the loop must outlive the server). cfg may be NULL for
 * the defaults; it is copied. On success *out is the server; nothing listens yet.
 * Returns 0, -FERRY_EINVAL for an invalid setting, or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_server_new(uv_loop_t *loop, const ferry_server_config *cfg,
                                  ferry_server **out);

/** Listen on addr (an IPv4 or IPv6 literal, e.g. "127.0.0.1") and port; port 0 picks a free
 * one (see ferry_server_port()). Can be called more than once for several addresses.
 * Returns 0, -FERRY_EINVAL, or the libuv error (UV_EADDRINUSE, UV_EACCES, ...). */
FERRY_EXTERN int ferry_server_listen(ferry_server *srv, const char *addr, int port);

/** The port of the first listener, or -1 if none. */
FERRY_EXTERN int ferry_server_port(const ferry_server *srv);

typedef void (*ferry_close_cb)(ferry_server *srv, void *user_data);

/** Stop listening, close every session (reason "server shutting down") and every connection,
 * then call cb once everything is released. Asynchronous: the server is freed after cb
 * returns, and the pointer is dead from then on. Safe inside any callback. cb may be NULL.
 * Returns 0, or -FERRY_EBUSY if the server is already closing. */
FERRY_EXTERN int ferry_server_close(ferry_server *srv, ferry_close_cb cb, void *user_data);

FERRY_EXTERN void ferry_server_set_data(ferry_server *srv, void *data);
FERRY_EXTERN void *ferry_server_get_data(const ferry_server *srv);
FERRY_EXTERN uv_loop_t *ferry_server_loop(const ferry_server *srv);

/* ------------------------------------------------------------------ Engine.IO sessions
 *
 * The engine level: one ferry_session per Engine.IO connection, whatever its transport.
 * Use it for raw Engine.IO messages; a server that uses the Socket.IO level (ferry_of())
 * hands its sessions to that level instead, and the two cannot be mixed on one server.
 */

/** A new session finished its handshake. Set per-session callbacks and data here. */
typedef void (*ferry_session_cb)(ferry_session *s, void *user_data);

/** A message arrived. data is valid only during the call; binary is 1 for a binary message.
 * Text is not NUL-terminated. */
typedef void (*ferry_message_cb)(ferry_session *s, const char *data, size_t len, int binary,
                                 void *user_data);

/** The session closed for reason; it is freed after this returns. Called exactly once per
 * session that was announced by the session callback. */
typedef void (*ferry_session_close_cb)(ferry_session *s, ferry_reason reason, void *user_data);

/** Call cb for every new session. Returns -FERRY_EBUSY if the Socket.IO level owns the
 * sessions of this server. */
FERRY_EXTERN int ferry_server_on_session(ferry_server *srv, ferry_session_cb cb, void *user_data);

/** Per-session callbacks; each replaces the previous one. */
FERRY_EXTERN void ferry_session_on_message(ferry_session *s, ferry_message_cb cb, void *user_data);
FERRY_EXTERN void ferry_session_on_close(ferry_session *s, ferry_session_close_cb cb,
                                         void *user_data);

/** Queue a text (binary = 0) or binary message. The bytes are copied before the call returns.
 * Returns 0, -FERRY_ECLOSED, -FERRY_ETOOBIG (over max_payload), -FERRY_EUTF8 (text that is
 * not UTF-8), or -FERRY_ENOMEM. A send that pushes the queue over max_session_queue_bytes is
 * accepted and then closes the session with FERRY_REASON_QUEUE_FULL. */
FERRY_EXTERN int ferry_session_send(ferry_session *s, const void *data, size_t len, int binary);

/** Close the session: queued messages are flushed first when the transport can still write,
 * then the client gets a close packet. The close callback fires with
 * FERRY_REASON_FORCED_CLOSE. Safe inside any callback; a second call does nothing. */
FERRY_EXTERN void ferry_session_close(ferry_session *s);

/** The Engine.IO session id (NUL-terminated, valid while the session lives). */
FERRY_EXTERN const char *ferry_session_id(const ferry_session *s);

/** The current transport: "polling", "websocket", "sse" or "short-polling". Static string. */
FERRY_EXTERN const char *ferry_session_transport(const ferry_session *s);

/** A query parameter or request header (name case-insensitive) of the handshake request, or
 * NULL. The string lives as long as the session. */
FERRY_EXTERN const char *ferry_session_query(const ferry_session *s, const char *name);
FERRY_EXTERN const char *ferry_session_header(const ferry_session *s, const char *name);

/** The peer address of the handshake request as text ("127.0.0.1"), valid while the session
 * lives. */
FERRY_EXTERN const char *ferry_session_remote_addr(const ferry_session *s);

FERRY_EXTERN void ferry_session_set_data(ferry_session *s, void *data);
FERRY_EXTERN void *ferry_session_get_data(const ferry_session *s);
FERRY_EXTERN ferry_server *ferry_session_server(const ferry_session *s);

/* ------------------------------------------------------------------ plain HTTP routes
 *
 * For small endpoints beside the engine (tools/ferry's POST /api/publish, health checks).
 * Requests are read whole (body up to max_payload) before the callback.
 */
typedef struct ferry_http_req ferry_http_req;

/** Called once per request; answer it with ferry_http_reply(), now or later on the loop.
 * The request stays valid until it is answered or its connection closes (then the reply
 * returns -FERRY_ECLOSED and frees it). */
typedef void (*ferry_http_cb)(ferry_http_req *req, void *user_data);

/** Route method ("GET", "POST", or NULL for any) and exact path to cb. Returns 0,
 * -FERRY_EEXIST, -FERRY_EINVAL or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_server_route(ferry_server *srv, const char *method, const char *path,
                                    ferry_http_cb cb, void *user_data);

FERRY_EXTERN const char *ferry_http_req_method(const ferry_http_req *req);
FERRY_EXTERN const char *ferry_http_req_path(const ferry_http_req *req);
/** Query parameter (percent-decoded) or header (case-insensitive) value, or NULL. */
FERRY_EXTERN const char *ferry_http_req_query(const ferry_http_req *req, const char *name);
FERRY_EXTERN const char *ferry_http_req_header(const ferry_http_req *req, const char *name);
/** The body and its length; not NUL-terminated. */
FERRY_EXTERN const char *ferry_http_req_body(const ferry_http_req *req, size_t *len);

/** Answer with status, a Content-Type (NULL: text/plain; charset=UTF-8) and a body (copied).
 * The request is freed by this call. Returns 0, -FERRY_ECLOSED or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_http_reply(ferry_http_req *req, int status, const char *content_type,
                                  const void *body, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_H */
