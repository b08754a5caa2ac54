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
 *
 * Signals: ferry installs no signal handler. It changes one disposition: ferry_server_new()
 * sets SIGPIPE to SIG_IGN when, at that moment, SIGPIPE has its default disposition (SIG_DFL),
 * which would end the process on a write to a connection the peer has reset. Writes then fail
 * with EPIPE and the connection closes like any other I/O error. A handler or SIG_IGN that the
 * application installed before is kept as it is; the change is process-wide and is not undone
 * by ferry_server_close(). An application that restores SIG_DFL later must block SIGPIPE or
 * handle it itself.
 */
#ifndef FERRY_H
#define FERRY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <cjson/cJSON.h>

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
 * call. The id is whole here; it is a bearer credential, so the default sink (stderr) writes
 * only its first 6 characters, and a callback that writes logs others can read should too. */
typedef void (*ferry_log_cb)(ferry_log_level level, const char *module, const char *sid,
                             const char *msg, void *user_data);

/** Send ferry's log lines to cb (NULL restores the default: stderr). Lines above max_level are
 * dropped before they are formatted. Process-wide; call it before starting servers. */
FERRY_EXTERN void ferry_set_log_cb(ferry_log_cb cb, ferry_log_level max_level, void *user_data);

typedef enum ferry_log_format {
    FERRY_LOG_FORMAT_TEXT = 0, /* ferry info [engine] sid=AbC123... message */
    FERRY_LOG_FORMAT_JSON,     /* one JSON object per line (JSON Lines):
                                  {"time":"2026-12-06T17:52:42.123Z","level":"info",
                                   "module":"engine","sid":"AbC123","msg":"..."}
                                  "sid" (its first 6 characters) only when the line has one */
} ferry_log_format;

/** How the default sink (stderr) writes lines; ignored while a ferry_set_log_cb() callback is
 * installed. Process-wide; call it before starting servers. */
FERRY_EXTERN void ferry_set_log_format(ferry_log_format format);

/** Write one line of the application's through ferry's log sink (the callback, or stderr in the
 * chosen format), so that a program's own lines and ferry's share one format. module names the
 * part of the program ("app"); msg is the line without a newline (copied; cut at 511 bytes).
 * Written whatever the level threshold: the caller decided it is worth a line. */
FERRY_EXTERN void ferry_log_message(ferry_log_level level, const char *module, const char *msg);

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

/* ---- transports
 *
 * The library's transports are registered in one table (transports/registry.c), the single
 * source of their names and bits: name a transport by its wire name, the Engine.IO transport
 * query value ("polling", "websocket", "sse", "short-polling"), and ask the functions below for
 * its bit in ferry_server_config.transports. A transport added to the library needs nothing in
 * this header. The table is constant: these functions may be called from any thread at any
 * time, allocate nothing, and return static strings. */

/** The bit of the transport named name (case-sensitive), or 0 when no transport has that name
 * (NULL and "" included). */
FERRY_EXTERN unsigned ferry_transport_bit(const char *name);
/** The name of the transport whose bit is bit, or NULL when bit is not exactly one registered
 * transport's bit (0, several bits, a bit no transport has). */
FERRY_EXTERN const char *ferry_transport_name(unsigned bit);
/** The i-th registered transport (from 0, in the order of the bits): returns its name and
 * stores its bit in *bit (bit may be NULL), or returns NULL (and *bit = 0) once i is past the
 * last.  for (size_t i = 0; (name = ferry_transport_at(i, &bit)) != NULL; i++) ... */
FERRY_EXTERN const char *ferry_transport_at(size_t i, unsigned *bit);
/** The bits of every registered transport. */
FERRY_EXTERN unsigned ferry_transport_all(void);

/** The bits of the four transports this header has always named, kept for existing programs:
 * each equals ferry_transport_bit() of its name, and a bit never changes. A transport added
 * later has no constant here: use ferry_transport_bit(). FERRY_TRANSPORT_ALL is these four;
 * ferry_transport_all() is every registered transport (the same four today). */
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
    unsigned transports;            /* FERRY_TRANSPORT_POLLING | FERRY_TRANSPORT_WEBSOCKET:
                                       bits of ferry_transport_bit(); a bit no transport has
                                       makes ferry_server_new() fail with -FERRY_EINVAL */
    int allow_upgrades;             /* 1 */
    uint32_t short_poll_interval_ms; /* 1000: announced to short-polling clients (an engine
                                        setting: every extension session's open packet
                                        carries it, docs/protocol.md) */

    /* HTTP */
    size_t max_header_bytes;        /* 16384: request line, header lines and the blank line,
                                       counted exactly; one byte over: 431 */
    uint32_t header_timeout_ms;     /* 10000: a request must arrive whole (head and body) within
                                       this from its first byte, and a new connection must
                                       send one within this; otherwise 408 and close */
    uint32_t idle_timeout_ms;       /* 5000: a keep-alive connection with no new request this
                                       long after its last answer is closed */
    uint32_t max_connections;       /* the descriptor limit (soft RLIMIT_NOFILE, read by
                                       ferry_server_config_init) less 32, at most 1000000;
                                       further connections are accepted, closed and logged
                                       (warn); 0: no limit */
    uint32_t tls_handshake_timeout_ms; /* 10000: a TLS handshake must complete within this
                                          (listeners of ferry_server_listen_tls()) */
    uint32_t max_tls_handshakes;    /* 256: TLS handshakes in flight at once, counted from a
                                       connection's first byte to the handshake's end; a
                                       connection that starts one beyond is closed */
    const char *static_root;        /* NULL: a folder served for GET paths outside the engine */
    /* Comma-separated allowed origins for CORS and for the Origin check on every transport,
     * or "*" for any. NULL (the default): no CORS headers and no Origin check. */
    const char *cors_origins;
    int cors_credentials;           /* 0: send Access-Control-Allow-Credentials: true when 1 */

    /* Kept for existing programs: the first values of transport options (see "transport
     * options" below), taken by ferry_server_new(); new code sets the options instead.
     * ferry_server_new() fails with -FERRY_EINVAL when one is outside its option's range. */
    uint32_t sse_keepalive_ms;      /* 15000: option "sse" "keepalive_ms" */
    size_t sse_padding_bytes;       /* 0: option "sse" "padding_bytes" (at most 65536) */
    size_t sse_recycle_bytes;       /* 4 MiB: option "sse" "recycle_bytes" */
    int ws_per_message_deflate;     /* 0: option "websocket" "per_message_deflate" */
    size_t ws_deflate_threshold;    /* 1024: option "websocket" "deflate_threshold" */

    /* Socket.IO */
    uint32_t connect_timeout_ms;    /* 45000: a session that joins no namespace is closed */
    uint32_t ack_timeout_ms;        /* 0: default timeout for emits with acks (0 = none) */
    unsigned max_attachments;       /* 10: binary attachments per packet */
    /* 0: off. Otherwise connection-state recovery (Socket.IO >= 4.6): a socket that lost its
     * connection may come back within this many ms with the same id and rooms and get the
     * packets it missed (ferry_socket_recovered()). While on, every event that is neither
     * volatile nor acked carries an offset string as its last argument, as the reference
     * server sends it; official clients keep it to resume. */
    uint32_t recovery_ms;
    /* 16 MiB: while recovery is on, the packets kept per namespace for replay are bounded in
     * bytes (encoded packets, attachments and recipient lists) as well as in count
     * (recovery_max_packets); the oldest are dropped first. A client whose offset was dropped
     * connects as a new socket, as with the reference server. 0 keeps none. */
    size_t recovery_max_bytes;
    /* 10000: the count bound of that log, per namespace. The window is only as long as the
     * log lasts: a namespace that sends N packets a second keeps about recovery_max_packets / N
     * seconds of them, whatever recovery_ms says (docs/reliability.md, "Limits"). 0 keeps
     * none. It bounds each node's log in Redis too (ferry_redis_new(), docs/scaling.md): the
     * nodes of a cluster should share the setting; a client resumed from Redis past it is
     * refused with "gap", as on one node. */
    uint32_t recovery_max_packets;

    /* Admission (ferry_server_on_admission(); unused without a hook) */
    uint32_t admission_timeout_ms;  /* 10000: a handshake undecided this long is answered 403
                                       {"code":4,"message":"Admission timed out"}; 0: no
                                       deadline (max_pending_admissions still bounds) */
    uint32_t max_pending_admissions; /* 1024: handshakes waiting for a decision at once; one
                                       more is answered 503 {"code":4,"message":"Too many
                                       handshakes pending"} without asking the app */

    /* Per-address limit on new sessions (docs/security.md): a token bucket per client address
     * holding up to new_session_burst handshakes and refilled at new_session_rate per second.
     * Every Engine.IO handshake (a request without sid, whatever its transport, before the
     * admission hook) takes one; one that finds the bucket empty is answered HTTP 429 with
     * "Retry-After: 1" and {"code":4,"message":"Too many new sessions"}, and no session is
     * made. Requests of existing sessions are never counted. An IPv6 address counts by its /64.
     * The table of addresses is bounded: an address whose bucket is full again is forgotten,
     * and with new_session_addresses live ones the least recently seen is forgotten (it starts
     * again with a full bucket; a warning is logged). */
    uint32_t new_session_rate;      /* 0: off (the default); else handshakes per second, up to
                                       1000000 */
    uint32_t new_session_burst;     /* 0: as many as new_session_rate; else the bucket's size
                                       (at least 1) */
    uint32_t new_session_addresses; /* 10000: addresses tracked at once (1 to 16777216) */
    /* 0 (the default): the address is the TCP peer's. 1: the rate limit counts the last
     * address of the X-Forwarded-For header (the one the nearest proxy appended) when it
     * holds one, else the peer. Only behind a proxy that sets the header, and only when
     * clients cannot reach the server but through it: otherwise a client chooses its own
     * address. Nothing else reads the header (ferry_session_remote_addr() stays the peer). */
    int trust_forwarded_for;
    /* 0 (the default). 1: CSRF protection for apps that authenticate by cookie. Every session
     * gets a random token, sent as "postToken" in its open packet (docs/protocol.md section
     * 12), and every POST of the session (long-polling, short-polling, SSE upstream) must carry
     * it in the header X-Ferry-Post-Token, which a cross-site form cannot set; one without it
     * is answered 403 {"code":4,"message":"Bad post token"} and the session goes on untouched.
     * ferry's client sends it; official clients do not, so with this on they work over
     * WebSocket only (their polling POSTs are refused). */
    int require_post_token;
} ferry_server_config;

/** Fill cfg with the defaults listed above. */
FERRY_EXTERN void ferry_server_config_init(ferry_server_config *cfg);

/** Create a server on loop (borrowed: the loop must outlive the server). cfg may be NULL for
 * the defaults; it is copied. On success *out is the server; nothing listens yet. Makes
 * SIGPIPE harmless if it has its default disposition (see "Signals" at the top).
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

/* ---- transport options
 *
 * A setting that belongs to one transport lives with that transport, not in
 * ferry_server_config: a whole number named by the transport and the option, set on the server
 * between ferry_server_new() and its first listener, and then fixed for the server's life. A
 * transport added to the library brings its options with it; this header does not change.
 * The library's transports have these (default; range):
 *
 *   "websocket" "per_message_deflate"  0; 0 or 1: accept a client's permessage-deflate offer
 *                                      (RFC 7692) on engine WebSockets
 *               "deflate_threshold"    1024; any: messages shorter than this many bytes are
 *                                      sent uncompressed
 *   "sse"       "keepalive_ms"         15000; up to 2^32-1: a comment line this often, below
 *                                      common proxy idle timeouts; 0: none
 *               "padding_bytes"        0; up to 65536: a comment prelude of this many spaces
 *                                      for proxies that buffer the start of a response
 *               "recycle_bytes"        4194304; any: end a stream after this many bytes (the
 *                                      client resumes with Last-Event-ID); 0: never
 *
 * "polling" and "short-polling" have none (the short-polling interval is an engine setting,
 * ferry_server_config.short_poll_interval_ms). ferry_server_new() starts each option from the
 * ferry_server_config field that held it before (listed there), so programs that fill those
 * fields keep working; an option call made afterwards wins. */

/** Set option of transport on srv to value. transport and option are read during the call
 * only. Call it after ferry_server_new() and before the server's first listener
 * (ferry_server_listen(), ferry_server_listen_tls(), ferry_server_listen_redirect()); the
 * value then holds for every session of the server. Returns 0; -FERRY_ENOTFOUND when no
 * transport has that name or it has no option of that name (NULL included); -FERRY_EINVAL for
 * srv NULL or a value outside the option's range (the option keeps its value); -FERRY_EBUSY
 * once the server listens or is closing (nothing changes). */
FERRY_EXTERN int ferry_server_transport_option(ferry_server *srv, const char *transport,
                                               const char *option, uint64_t value);
/** Store the current value of transport's option on srv in *value. Returns 0,
 * -FERRY_ENOTFOUND, or -FERRY_EINVAL (srv or value NULL). Any time while srv lives. */
FERRY_EXTERN int ferry_server_transport_option_get(const ferry_server *srv, const char *transport,
                                                   const char *option, uint64_t *value);
/** The name of transport's i-th option (from 0, in the transport's order), or NULL once i is
 * past the last or when no transport is named transport. Static; any thread, any time.
 *   for (size_t i = 0; (opt = ferry_transport_option_at("sse", i)) != NULL; i++) ... */
FERRY_EXTERN const char *ferry_transport_option_at(const char *transport, size_t i);

/* ------------------------------------------------------------------ TLS (https, wss)
 *
 * A ferry_tls holds certificates and settings; a listener made with ferry_server_listen_tls()
 * speaks TLS on every connection it accepts, below HTTP, so every transport and every
 * ferry_ws_route() works over it unchanged. The TLS work runs on the loop through OpenSSL
 * memory BIOs: no call blocks. ALPN offers exactly "http/1.1" (a client that offers ALPN
 * without it is refused, RFC 7301). A client speaking plain HTTP to a TLS port is answered in
 * plain text and closed: 308 to the same URL over https when its request head came whole in
 * its first packet with a sane Host, else 400. Bounds: ferry_server_config.tls_handshake_timeout_ms and
 * max_tls_handshakes.
 *
 * Lifetime: ferry_tls is reference-counted. ferry_tls_new() gives the caller one reference; a
 * listener takes its own, and so does every connection set up from it, so the caller may
 * release its reference as soon as it has given the object to the server. Building one
 * (ferry_tls_new(), ferry_tls_add_cert()) reads files and touches no loop: do it before
 * uv_run() or on a worker thread (uv_queue_work()), never on a running loop, and then hand
 * it to the server on the loop's thread (ferry_server_set_tls() for a reload).
 */
typedef struct ferry_tls ferry_tls;

enum {
    FERRY_TLS_1_2 = 0x0303, /* TLS 1.2 and 1.3 (the default) */
    FERRY_TLS_1_3 = 0x0304, /* TLS 1.3 only */
};

/** TLS settings. Fill with ferry_tls_config_init(); the strings are copied by ferry_tls_new(). */
typedef struct ferry_tls_config {
    int min_version;          /* FERRY_TLS_1_2; TLS 1.3 is preferred whenever the client has it */
    /* TLS 1.2 cipher list in OpenSSL's syntax; NULL: ECDHE with AES-GCM or ChaCha20-Poly1305
     * only (forward secrecy, AEAD). */
    const char *ciphers;
    /* TLS 1.3 suites in OpenSSL's syntax; NULL: OpenSSL's default (AES-GCM, ChaCha20). */
    const char *ciphersuites;
} ferry_tls_config;

/** Fill cfg with the defaults above. */
FERRY_EXTERN void ferry_tls_config_init(ferry_tls_config *cfg);

/** A new TLS context without certificates (add at least one with ferry_tls_add_cert()). cfg
 * may be NULL for the defaults. *out holds the caller's reference. Returns 0, -FERRY_EINVAL
 * (a bad version or a cipher list OpenSSL rejects; the reason is logged) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_tls_new(const ferry_tls_config *cfg, ferry_tls **out);

/** Add a certificate: cert_file is a PEM chain (the server's certificate first, then its
 * intermediates), key_file its PEM private key (unencrypted). The first certificate added is
 * the default; a client whose SNI name matches a later certificate's names (subjectAltName
 * DNS entries, wildcards included, or its CN when there are none) gets that one. The files
 * are read during the call (blocking file I/O: see "Lifetime" above). Returns 0, -FERRY_EIO (a
 * file cannot be read or holds no PEM certificate or key), -FERRY_EINVAL (the key does not
 * match the certificate, or a NULL argument), -FERRY_EBUSY (tls is already used by a server:
 * build a new one and ferry_server_set_tls() it) or -FERRY_ENOMEM. OpenSSL's reason is
 * logged at the error level. */
FERRY_EXTERN int ferry_tls_add_cert(ferry_tls *tls, const char *cert_file, const char *key_file);

/** Drop the caller's reference; the object is freed when its last listener and connection
 * are gone. NULL is ignored. */
FERRY_EXTERN void ferry_tls_release(ferry_tls *tls);

/** Listen like ferry_server_listen(), with TLS on every connection from tls (retained by the
 * listener). Returns the errors of ferry_server_listen(), and -FERRY_EINVAL when tls holds no
 * certificate. */
FERRY_EXTERN int ferry_server_listen_tls(ferry_server *srv, const char *addr, int port,
                                         ferry_tls *tls);

/** Listen for plain HTTP on addr:port and answer every request with 308 Permanent Redirect
 * to https://HOST:https_port/TARGET (HOST from the request's Host header, without its port;
 * ":443" is left out). For an http port beside a TLS one; to serve on the http port instead,
 * use ferry_server_listen(). Returns the errors of ferry_server_listen(). */
FERRY_EXTERN int ferry_server_listen_redirect(ferry_server *srv, const char *addr, int port,
                                              int https_port);

/** Listen on fd, a TCP socket (IPv4 or IPv6) the caller created and bound, e.g. with
 * SO_REUSEPORT so that several processes serve one port (tools/ferry --workers), or one
 * inherited from a supervisor; ferry calls listen() on it (backlog 511) unless it already
 * listens. tls NULL: plain HTTP; else TLS on every connection, as ferry_server_listen_tls().
 * The server takes fd: it is closed with the listener, and at once when the call fails.
 * Returns 0, -FERRY_EINVAL (fd < 0, not a TCP/IP socket, tls without a certificate),
 * -FERRY_ECLOSED, -FERRY_ENOMEM or libuv's error (e.g. UV_EADDRINUSE from listen()). */
FERRY_EXTERN int ferry_server_listen_fd(ferry_server *srv, int fd, ferry_tls *tls);

/** Certificate reload: every listener of srv that uses old uses tls from now on (retained;
 * old's listener references are dropped). Connections already open keep the certificate they
 * started with, so no session is dropped. Returns the number of listeners changed (0 when
 * none used old), or -FERRY_EINVAL when tls holds no certificate. */
FERRY_EXTERN int ferry_server_set_tls(ferry_server *srv, ferry_tls *old, ferry_tls *tls);

/** The port of the index-th listener, in the order they were added (0 is
 * ferry_server_port()), or -1 when there is none. */
FERRY_EXTERN int ferry_server_listener_port(const ferry_server *srv, unsigned index);

/** 1 when the session's handshake request came over TLS, else 0 (Socket.IO's
 * handshake.secure). With a plain port that serves beside the TLS one, an app can refuse
 * sessions that are not secure here. */
FERRY_EXTERN int ferry_session_secure(const ferry_session *s);

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

/** The current transport's name ("polling", "websocket", "sse", "short-polling": a name of
 * ferry_transport_at()). Static string. */
FERRY_EXTERN const char *ferry_session_transport(const ferry_session *s);

/* ---- the handshake request (Socket.IO's socket.handshake, at the engine level)
 *
 * What the request that opened the session carried, copied when the session was created:
 * every string below is owned by the session, NUL-terminated, and valid while the session
 * lives (until its close callback returns). None of these calls allocates. */

/** A query parameter of the handshake request, percent-decoded ('+' as a space), or NULL.
 * Names match case-sensitively, as Node's URLSearchParams and the reference server's query
 * do ("EIO" is not "eio"); with a name given twice, the first value. */
FERRY_EXTERN const char *ferry_session_query(const ferry_session *s, const char *name);
/** A request header of the handshake request, or NULL. Names match case-insensitively (HTTP);
 * with a header sent twice, the first one's value (not joined with ", " as Node does). */
FERRY_EXTERN const char *ferry_session_header(const ferry_session *s, const char *name);

/** The i-th query parameter (from 0, in the order of the URL, repeated names included,
 * Engine.IO's own EIO, transport, t included): returns its decoded name and stores its value
 * in *value (value may be NULL), or returns NULL (and *value = NULL) once i is past the last.
 *   for (size_t i = 0; (name = ferry_session_query_at(s, i, &value)) != NULL; i++) ... */
FERRY_EXTERN const char *ferry_session_query_at(const ferry_session *s, size_t i,
                                                const char **value);
/** The i-th request header, the same way: the name as the client spelled it (Node lowercases
 * names; compare them with strcasecmp) and its value. */
FERRY_EXTERN const char *ferry_session_header_at(const ferry_session *s, size_t i,
                                                 const char **value);

/** The handshake request's target as the client sent it, not decoded: path and query
 * ("/socket.io/?EIO=4&transport=polling&t=OXy1"), Socket.IO's handshake.url. */
FERRY_EXTERN const char *ferry_session_url(const ferry_session *s);

/** When the handshake was accepted, in milliseconds since the Unix epoch (wall clock;
 * Socket.IO's handshake.issued). */
FERRY_EXTERN uint64_t ferry_session_time(const ferry_session *s);

/** The peer address of the handshake request as text ("127.0.0.1", "::1"; "" if the peer was
 * already gone), Socket.IO's handshake.address. */
FERRY_EXTERN const char *ferry_session_remote_addr(const ferry_session *s);

FERRY_EXTERN void ferry_session_set_data(ferry_session *s, void *data);
FERRY_EXTERN void *ferry_session_get_data(const ferry_session *s);
FERRY_EXTERN ferry_server *ferry_session_server(const ferry_session *s);

/* ---- what a session costs on the wire (counters)
 *
 * Every session counts, from its handshake to its end and across upgrades and attaches (the
 * sum over every transport it used), what really passed where the bytes pass: the HTTP layer
 * counts request and response heads and bodies as they were read and written (chunked framing
 * included), and every byte of a connection taken for a WebSocket (frame headers, masks, close
 * and ping frames) or an SSE stream (the response head, "data:" lines, event ids, keep-alive
 * comments). Nothing is estimated. Bytes are HTTP bytes, as a plain-HTTP peer sees them: under
 * TLS, before encryption. A request is counted once it is answered or its connection taken
 * (a held long-poll when it returns); a request that names no live session (a bad sid, a
 * refused handshake) is counted nowhere. */
typedef enum ferry_counter {
    FERRY_COUNTER_BYTES_IN = 0,     /* bytes received from the client */
    FERRY_COUNTER_BYTES_OUT,        /* bytes sent to the client */
    FERRY_COUNTER_REQUESTS,         /* HTTP requests: handshake, polls, POSTs, the WebSocket
                                       upgrade, SSE stream GETs, probes, refused ones too */
    FERRY_COUNTER_PACKETS_IN,       /* Engine.IO packets received (messages, pongs, ...) */
    FERRY_COUNTER_PACKETS_OUT,      /* Engine.IO packets handed to a transport (open, pings,
                                       messages, noops, close; again when replayed) */
    FERRY_COUNTER_MESSAGES_IN,      /* Engine.IO messages (type 4) received */
    FERRY_COUNTER_MESSAGES_OUT,     /* Engine.IO messages handed to a transport */
    FERRY_COUNTER_MESSAGE_BYTES_IN, /* the data of those messages (what the application sees:
                                       a Socket.IO packet's text, a binary message's bytes);
                                       BYTES_IN minus this is what the protocol cost */
    FERRY_COUNTER_MESSAGE_BYTES_OUT,
    FERRY_COUNTERS                  /* how many there are; not a counter */
} ferry_counter;

/** The session's counter which (0 for an unknown one), as it stands now. Valid while the
 * session lives, its close callback included (an answer to the request that ended the session
 * is written after that callback). Cheap: a field read. */
FERRY_EXTERN uint64_t ferry_session_counter(const ferry_session *s, ferry_counter which);

/** The last round trip of a server ping to its pong, in milliseconds (on polling it includes
 * the wait for the next poll; on short-polling the poll interval); -1 before the first pong. */
FERRY_EXTERN int64_t ferry_session_rtt_ms(const ferry_session *s);

/** One step of a session's transport history (ferry_session_transport_history()). */
typedef struct ferry_transport_event {
    uint64_t time_ms;   /* when, in milliseconds since the Unix epoch */
    const char *kind;   /* "open", "upgrade" (probe), "attach" (ferry's extension),
                           "probe-failed", "report" (ferry's client told why) */
    const char *from;   /* a transport name, or "none" (open; a report's first choice) */
    const char *to;     /* a transport name */
    const char *reason; /* report: the client's reason code (or "other"); probe-failed:
                           "timeout" or "closed"; upgrade: "probe"; else "" */
} ferry_transport_event;

/** The session's last transport events (at most 8 are kept), oldest first, into out[0..max);
 * returns how many. The strings are static. */
FERRY_EXTERN size_t ferry_session_transport_history(const ferry_session *s,
                                                    ferry_transport_event *out, size_t max);

/** The counter's name in snake case ("bytes_in", "message_bytes_out", ...), for logs and
 * JSON; NULL for an unknown one. Static. */
FERRY_EXTERN const char *ferry_counter_name(ferry_counter which);

/* ------------------------------------------------------------------ admission (allowRequest)
 *
 * Let the app accept or refuse each Engine.IO handshake before a session exists, now or later
 * (Socket.IO's allowRequest: check a token against a service, rate-limit an address, ...).
 *
 * The hook is asked once per handshake request (a request without a sid that passed the
 * protocol checks: known and enabled transport, allowed Origin, GET, EIO=4), on every
 * transport, and never for a session's later requests (polls, POSTs, probes, upgrades), as in
 * the reference server. Until the app decides, the request is held: nothing is written to the
 * client; a WebSocket handshake gets no 101 and an SSE request no stream before the decision.
 *
 *   ferry_admission_allow():  the handshake goes on as it would have without a hook (it can
 *                             still fail as any handshake can, e.g. a bad WebSocket upgrade).
 *   ferry_admission_refuse(): the client gets HTTP 403 {"code":4,"message":"<message>"}
 *                             (Engine.IO's Forbidden; "Forbidden" when message is NULL), on
 *                             every transport. Official clients report it as connect_error.
 *
 * The handle: the app gets it in the admission callback and must answer it exactly once, with
 * allow or refuse, inside the callback or later on the loop's thread. Until then it and every
 * string it gives stay valid, whatever happens meanwhile; the answer frees it. If the client
 * hung up, the decision timed out (admission_timeout_ms) or the server closed before the
 * answer, the client is already gone or answered (403 "Admission timed out", or 503 while the
 * server shuts down) and the late answer only frees the handle, returning -FERRY_ECLOSED or
 * -FERRY_ETIMEDOUT. ferry_admission_waiting() tells whether the answer still matters. An
 * unanswered handle is leaked (LeakSanitizer reports it), even after the server is freed.
 *
 * Bounds: at most max_pending_admissions handshakes wait for a decision at once (a client
 * that hangs up stops counting at once); further ones are answered 503 without calling the
 * hook. Each waiting handshake holds a copy of its request (at most max_header_bytes).
 */
typedef struct ferry_admission ferry_admission;

/** A handshake asks to be admitted. Read the request with the accessors below; answer with
 * ferry_admission_allow() or ferry_admission_refuse(), now or later. Called on the loop, never
 * inside a call of this header. */
typedef void (*ferry_admission_cb)(ferry_admission *a, void *user_data);

/** Install the admission hook (cb NULL removes it: later handshakes are admitted at once;
 * those waiting still need their answer). Works for the engine and the Socket.IO level.
 * Returns 0, or -FERRY_ECLOSED when the server is closing. */
FERRY_EXTERN int ferry_server_on_admission(ferry_server *srv, ferry_admission_cb cb,
                                           void *user_data);

/** Admit the handshake and free a. Returns 0 (the handshake went ahead: the session callback
 * has run by the time this returns when the handshake succeeded), -FERRY_ECLOSED (the client
 * left or the server closed first) or -FERRY_ETIMEDOUT (the client was already refused). */
FERRY_EXTERN int ferry_admission_allow(ferry_admission *a);

/** Refuse the handshake with HTTP 403 {"code":4,"message":message} and free a. message
 * (NULL: "Forbidden") is copied and JSON-escaped; over 512 bytes or not UTF-8, the client gets
 * "Forbidden" and the call returns -FERRY_EINVAL (a is freed all the same). Otherwise returns
 * 0, -FERRY_ECLOSED or -FERRY_ETIMEDOUT as ferry_admission_allow(). */
FERRY_EXTERN int ferry_admission_refuse(ferry_admission *a, const char *message);

/** 1 while the client still waits for this decision; 0 once it left, timed out or the server
 * closed (the answer then only frees a). */
FERRY_EXTERN int ferry_admission_waiting(const ferry_admission *a);

/** The request, as the ferry_session_* accessors of the same names give it for a session
 * (query names case-sensitive, header names case-insensitive; see there). Every string is
 * owned by a and valid until the answer. */
FERRY_EXTERN const char *ferry_admission_url(const ferry_admission *a);
FERRY_EXTERN const char *ferry_admission_query(const ferry_admission *a, const char *name);
FERRY_EXTERN const char *ferry_admission_header(const ferry_admission *a, const char *name);
FERRY_EXTERN const char *ferry_admission_query_at(const ferry_admission *a, size_t i,
                                                  const char **value);
FERRY_EXTERN const char *ferry_admission_header_at(const ferry_admission *a, size_t i,
                                                   const char **value);
/** The peer address as text ("127.0.0.1"). */
FERRY_EXTERN const char *ferry_admission_remote_addr(const ferry_admission *a);
/** The transport asked for, a name of ferry_transport_at() such as "polling" (static). */
FERRY_EXTERN const char *ferry_admission_transport(const ferry_admission *a);
/** When the request arrived, in milliseconds since the Unix epoch. */
FERRY_EXTERN uint64_t ferry_admission_time(const ferry_admission *a);
/** 1 when the request came over TLS (see ferry_session_secure()): refuse plain-port handshakes
 * here, before any session exists. */
FERRY_EXTERN int ferry_admission_secure(const ferry_admission *a);
/** The server, or NULL once it has closed. */
FERRY_EXTERN ferry_server *ferry_admission_server(const ferry_admission *a);
FERRY_EXTERN void ferry_admission_set_data(ferry_admission *a, void *data);
FERRY_EXTERN void *ferry_admission_get_data(const ferry_admission *a);

/* ------------------------------------------------------------------ transport reports
 *
 * ferry's browser client tells the server why it chose or left a transport (docs/protocol.md
 * "Reports"): the first choice, a demotion (a WebSocket that went mute, a buffered stream),
 * a promotion. Operators see why clients fall back. Each report is also logged at INFO.
 */

/** A client of ferry's extensions reported a transport decision. from and to are transport
 * names ("websocket", "sse", "polling", "short-polling"; from is "" for the first choice);
 * reason is a code such as "ws-mute" or "promoted" ([a-z0-9-], 1 to 32 bytes; docs/client.md
 * lists them); ms is how long the decision took in milliseconds, or -1 when the client did not
 * say. All strings are valid only during the call. s is the reporting session (its transport
 * may already be the new one, or not yet). Called on the loop while ferry handles the client's
 * packet, never inside a ferry call of the app; malformed reports and those over 30 per
 * session per minute never reach it. */
typedef void (*ferry_transport_report_cb)(ferry_session *s, const char *from, const char *to,
                                          const char *reason, int64_t ms, void *user_data);

/** Call cb for every transport report of every session of srv (at the engine or the Socket.IO
 * level); cb NULL stops the calls. Replaces the previous callback. */
FERRY_EXTERN void ferry_server_on_transport_report(ferry_server *srv, ferry_transport_report_cb cb,
                                                   void *user_data);

/* ------------------------------------------------------------------ ferry's browser client
 *
 * The library carries client-js, built at build time (CMake option FERRY_WITH_CLIENT_JS, on by
 * default), and the pages listed with it.
 */

/** Serve the built-in client on srv, from memory: `/ferry/ferry.mjs` (an ES module exporting io
 * and WebSocket), `/ferry/ferry.min.js` (a classic script defining window.ferry), and every
 * further page of the build's embed list (e.g. `/ferry/diagnose`). Each answers GET with its
 * content type, `Cache-Control: public, max-age=3600` and a strong ETag (If-None-Match: 304).
 * Exact routes: they win over the static folder. Call it once, before listening. Returns 0,
 * -FERRY_EUNSUPPORTED when the library was built without the client, -FERRY_EEXIST when a
 * path is routed already, or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_server_serve_client(ferry_server *srv);

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
/** Query parameter (percent-decoded, name case-sensitive) or header (name case-insensitive)
 * value, or NULL. */
FERRY_EXTERN const char *ferry_http_req_query(const ferry_http_req *req, const char *name);
FERRY_EXTERN const char *ferry_http_req_header(const ferry_http_req *req, const char *name);
/** The body and its length; not NUL-terminated. */
FERRY_EXTERN const char *ferry_http_req_body(const ferry_http_req *req, size_t *len);

/** Answer with status, a Content-Type (NULL: text/plain; charset=UTF-8) and a body (copied).
 * The request is freed by this call. Returns 0, -FERRY_ECLOSED or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_http_reply(ferry_http_req *req, int status, const char *content_type,
                                  const void *body, size_t len);

/* ------------------------------------------------------------------ metrics (Prometheus)
 *
 * The server's counters in the Prometheus text exposition format (text/plain; version=0.0.4),
 * every name starting with ferry_: sessions open by transport, handshakes, upgrades and
 * downgrades by from, to and reason, the reasons ferry's client reports for its transport
 * choices, packets, messages and bytes by transport (HTTP heads apart), heartbeat timeouts,
 * closes by reason, errors and rejections by kind, queued bytes, the event loop's lag (a
 * histogram) and the process's memory, descriptors and CPU. docs/observability.md lists every
 * metric. Labels take their values from fixed sets (transport names, reason codes): no session
 * id, room or namespace ever becomes a label. A scrape costs one walk of the session table.
 * Counting is always on (a few integer increments per event); these calls only serve it.
 */

/** Serve the metrics at path (e.g. "/metrics", exact, GET) on the server's own listeners,
 * beside the application. Call before or after listening. Returns 0, -FERRY_EINVAL (path not
 * starting with '/'), -FERRY_EEXIST (path routed already), -FERRY_ECLOSED or -FERRY_ENOMEM.
 * The metrics are as public as the server's port: prefer ferry_server_metrics_listen() on a
 * private address. */
FERRY_EXTERN int ferry_server_metrics(ferry_server *srv, const char *path);

/** Serve the metrics at path (NULL: "/metrics") on a listener of their own at addr:port (port
 * 0 picks a free one: ferry_server_metrics_port()), which serves nothing else (404). It closes
 * with the server. Once per server: a second call returns -FERRY_EBUSY. Returns 0,
 * -FERRY_EINVAL, -FERRY_ECLOSED, -FERRY_ENOMEM or libuv's error when it cannot listen
 * (UV_EADDRINUSE, ...). */
FERRY_EXTERN int ferry_server_metrics_listen(ferry_server *srv, const char *addr, int port,
                                             const char *path);

/** The port of the metrics listener, or -FERRY_ENOTFOUND when there is none. */
FERRY_EXTERN int ferry_server_metrics_port(const ferry_server *srv);

/** The exposition text now, handed to cb (valid only during the call, which happens before
 * this returns), for an application that serves or forwards it itself. Returns 0,
 * -FERRY_ECLOSED or -FERRY_ENOMEM (cb not called). */
FERRY_EXTERN int ferry_server_metrics_text(ferry_server *srv,
                                           void (*cb)(const char *text, size_t len, void *ud),
                                           void *ud);

/* ------------------------------------------------------------------ Socket.IO: the app level
 *
 * Socket.IO v5 over the engine, in the style of Socket.IO's server API:
 *
 *     ferry_namespace *chat = ferry_of(srv, "/chat");
 *     ferry_namespace_on_connection(chat, on_connection, app);
 *     ferry_namespace_on(chat, "message", on_message, app);      // for every socket of /chat
 *     ...
 *     static void on_message(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack,
 *                            void *app) {
 *         ferry_bcast b;
 *         ferry_bcast_from(&b, s);                               // socket.broadcast
 *         ferry_bcast_to(&b, "room1");                           //   .to("room1")
 *         ferry_bcast_emit(&b, "message", args);                 //   .emit("message", ...args)
 *         if (ack != NULL)
 *             ferry_ack_send(ack, NULL);                         // callback()
 *     }
 *
 * Objects: a ferry_namespace lives as long as its server. A ferry_socket is one client's
 * connection to one namespace (several sockets can share one Engine.IO session); it is valid
 * from the middleware or connection callback until its disconnect callback returns (or, for a
 * socket a middleware refused, until ferry_middleware_next() returns). The disconnect callback
 * fires exactly once for every socket that reached the connection callback.
 *
 * Arguments: event arguments are a cJSON array (the event name excluded).
 * - Arguments ferry hands to a callback are owned by ferry and freed when the callback returns;
 *   the callback may read them, change them and detach items (cJSON_DetachItemFromArray) to keep
 *   them.
 * - Arguments given to an emit or ack function are borrowed: the packet is encoded before the
 *   call returns, and the caller keeps ownership and frees them as it likes. NULL means "no
 *   arguments". Anything else than an array (or NULL) is -FERRY_EINVAL.
 *
 * Binary: a binary argument (anywhere inside the arguments, nested too) is sent as a Socket.IO
 * binary attachment (BINARY_EVENT / BINARY_ACK with {"_placeholder":true,"num":i}); see
 * "Binary arguments" below for how one is made, read, owned and copied.
 *
 * Timing: every callback runs on the loop; none runs inside the function that caused it (an
 * emit never calls back synchronously), except that a refusal or acceptance by
 * ferry_middleware_next() may run the next middleware and the connection callback inside it.
 * All functions here are safe inside any callback, including ferry_socket_disconnect() on the
 * socket the callback is about.
 */
typedef struct ferry_namespace ferry_namespace;
typedef struct ferry_socket ferry_socket;
typedef struct ferry_ack ferry_ack;

/** Socket.IO's limits that the app may meet. */
#define FERRY_BCAST_MAX_ROOMS 16  /* rooms in one ferry_bcast's to() or except() list */
#define FERRY_NAME_MAX 256        /* bytes of a namespace, room or event name */

/* ---- namespaces */

/** The namespace called name ("/", "/chat"; a name without a leading '/' gets one), created on
 * first use. The first call switches the server to the Socket.IO level (and creates "/", which
 * always exists, as in Socket.IO); from then on ferry_server_on_session() returns
 * -FERRY_EBUSY. name is copied. Returns NULL when out of memory, when name is empty, longer
 * than FERRY_NAME_MAX or not UTF-8, or when the server is already used at the engine level
 * (ferry_server_on_session() was called). The namespace lives until the server is freed. */
FERRY_EXTERN ferry_namespace *ferry_of(ferry_server *srv, const char *name);

/** The namespace's name, as given to ferry_of() (with its leading '/'). Static for its life. */
FERRY_EXTERN const char *ferry_namespace_name(const ferry_namespace *nsp);
FERRY_EXTERN ferry_server *ferry_namespace_server(const ferry_namespace *nsp);
FERRY_EXTERN void ferry_namespace_set_data(ferry_namespace *nsp, void *data);
FERRY_EXTERN void *ferry_namespace_get_data(const ferry_namespace *nsp);

/** Called when a client asks for a namespace that does not exist (Socket.IO's dynamic
 * namespaces, io.of(regex or function)). auth is the CONNECT payload (an object, {} when the
 * client sent none), valid during the call. To allow the namespace, call ferry_of(srv, name)
 * inside the callback and set its callbacks; if the namespace still does not exist when the
 * callback returns, the client gets CONNECT_ERROR {"message":"Invalid namespace"}. Runs at
 * most once per CONNECT packet for a missing name. */
typedef void (*ferry_namespace_request_cb)(ferry_server *srv, const char *name,
                                           const cJSON *auth, void *user_data);

/** Set (or with cb NULL, remove) the dynamic namespace callback. Switches the server to the
 * Socket.IO level like ferry_of(). Returns 0, -FERRY_EBUSY (engine level in use) or
 * -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_server_on_namespace_request(ferry_server *srv, ferry_namespace_request_cb cb,
                                                   void *user_data);

/** A client's socket joined the namespace (every middleware accepted it; the CONNECT reply is
 * queued). Register per-socket callbacks, join rooms and emit here. Once per socket. */
typedef void (*ferry_connection_cb)(ferry_socket *s, void *user_data);

/** Set the namespace's connection callback (replaces the previous one; NULL removes it). */
FERRY_EXTERN void ferry_namespace_on_connection(ferry_namespace *nsp, ferry_connection_cb cb,
                                                void *user_data);

/** A middleware runs for each CONNECT to the namespace, before the connection callback, in
 * the order they were added (Socket.IO's nsp.use()). It must call ferry_middleware_next(s,
 * ...) exactly once, now or later on the loop (after a database look-up, say). ferry_socket_auth(),
 * _query(), _header(), _id() and set_data() work on s; emitting or joining rooms does not
 * yet (-FERRY_EBUSY). */
typedef void (*ferry_middleware_cb)(ferry_socket *s, void *user_data);

/** Add a middleware. Returns 0, -FERRY_ELIMIT (more than 16 per namespace) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_namespace_use(ferry_namespace *nsp, ferry_middleware_cb cb, void *user_data);

/** The decision of the running middleware on s. error_message NULL: accept, so the next
 * middleware runs, or after the last one the socket connects (CONNECT reply, then the
 * connection callback, both inside this call). Otherwise refuse: the client gets CONNECT_ERROR
 * {"message": error_message, "data": error_data} (data omitted when NULL; both are copied) and
 * s is freed: do not use it after this call (when called inside the middleware callback, s
 * stays valid until that callback returns). If the client's session closed while the
 * middleware ran, the decision is ignored and s is freed the same way. Must be called exactly
 * once per middleware call and before the server's close callback returns (a server closing
 * drops sockets still waiting). Returns 0 or -FERRY_EINVAL (s is not waiting for a decision). */
FERRY_EXTERN int ferry_middleware_next(ferry_socket *s, const char *error_message,
                                       const cJSON *error_data);

/** An event arrived from the client. event is the name (a numeric event name arrives as its
 * decimal text), args the arguments after it (see "Arguments" above: owned by ferry, freed
 * after the call). ack is non-NULL when the client asked for an acknowledgement: answer it with
 * ferry_ack_send(), now or later. A socket holds at most 1024 unanswered acks: a client that
 * asks for more gets its session closed ("transport error"). */
typedef void (*ferry_event_cb)(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack,
                               void *user_data);

/** Handle event for every socket of the namespace (registered once; no per-socket cost).
 * A handler set on the socket itself with ferry_socket_on() for the same event wins. cb NULL
 * removes it. Returns 0, -FERRY_EINVAL or -FERRY_ENOMEM. event is copied. */
FERRY_EXTERN int ferry_namespace_on(ferry_namespace *nsp, const char *event, ferry_event_cb cb,
                                    void *user_data);

/** Emit to every socket of the namespace (io.of(name).emit()). Same as a ferry_bcast with no
 * rooms. Returns the number of sockets the packet was queued for, or a negative error. */
FERRY_EXTERN int ferry_namespace_emit(ferry_namespace *nsp, const char *event, const cJSON *args);

/** The sockets of the namespace in room (NULL: all of them), written to out[0..max). Returns
 * the total count, which may be larger than max. The pointers are valid until control returns
 * to the loop or a socket disconnects, whichever is first. No allocation. */
FERRY_EXTERN size_t ferry_namespace_sockets(ferry_namespace *nsp, const char *room,
                                            ferry_socket **out, size_t max);

/** The socket of the namespace with the Socket.IO id id, or NULL. */
FERRY_EXTERN ferry_socket *ferry_namespace_socket(ferry_namespace *nsp, const char *id);

/* ---- sockets */

/** The socket id (20 characters of base64url, distinct from the Engine.IO session id, as in
 * Socket.IO), NUL-terminated, valid while the socket lives. Also the name of the socket's own
 * room. */
FERRY_EXTERN const char *ferry_socket_id(const ferry_socket *s);
/** 1 when name has the form of a socket id, any node's (exactly 20 characters of base64url:
 * A-Z a-z 0-9 - _), else 0 (NULL included). A socket's own room is its private channel on
 * every node of a cluster, and whether an id is a live socket on another node cannot be asked
 * without a round trip: an application that lets clients pick rooms should refuse such names
 * except the client's own id (tools/ferry's relay does, docs/scaling.md). ferry_socket_join()
 * itself does not refuse them: the server may join a socket to any room, as in Socket.IO. */
FERRY_EXTERN int ferry_is_socket_id(const char *name);
FERRY_EXTERN ferry_namespace *ferry_socket_namespace(const ferry_socket *s);
/** The Engine.IO session the socket travels on (shared by the client's other namespaces).
 * Useful for ferry_session_transport(); do not set its callbacks. */
FERRY_EXTERN ferry_session *ferry_socket_session(const ferry_socket *s);
/** The counter which of the socket's Engine.IO session (ferry_session_counter()): every
 * namespace of one client shares it. 0 once the socket has left its client (ferry_socket_session() is NULL). */
FERRY_EXTERN uint64_t ferry_socket_counter(const ferry_socket *s, ferry_counter which);
FERRY_EXTERN void ferry_socket_set_data(ferry_socket *s, void *data);
FERRY_EXTERN void *ferry_socket_get_data(const ferry_socket *s);

/** Handshake access (Socket.IO's socket.handshake). The CONNECT payload (handshake.auth): an
 * object, {} when the client sent none; owned by the socket, valid while it lives, do not
 * modify. */
FERRY_EXTERN const cJSON *ferry_socket_auth(const ferry_socket *s);
/** A query parameter (name case-sensitive, as ferry_session_query()) or header (name
 * case-insensitive) of the Engine.IO handshake request of the socket's session, or NULL;
 * valid while the socket lives. handshake.query[name], handshake.headers[name]. */
FERRY_EXTERN const char *ferry_socket_query(const ferry_socket *s, const char *name);
FERRY_EXTERN const char *ferry_socket_header(const ferry_socket *s, const char *name);
/** Iterate over the query parameters and headers of the handshake request, as
 * ferry_session_query_at() and ferry_session_header_at() do; strings valid while the socket
 * lives. */
FERRY_EXTERN const char *ferry_socket_query_at(const ferry_socket *s, size_t i,
                                               const char **value);
FERRY_EXTERN const char *ferry_socket_header_at(const ferry_socket *s, size_t i,
                                                const char **value);
/** handshake.url (the engine handshake's raw request target) and handshake.address (the
 * peer's address as text), as ferry_session_url() and ferry_session_remote_addr(); valid while
 * the socket lives. */
FERRY_EXTERN const char *ferry_socket_url(const ferry_socket *s);
FERRY_EXTERN const char *ferry_socket_address(const ferry_socket *s);
/** handshake.issued: when the socket's CONNECT arrived (Socket.IO builds the handshake then,
 * not at the engine handshake), in milliseconds since the Unix epoch. handshake.time is this
 * as a date string. */
FERRY_EXTERN uint64_t ferry_socket_time(const ferry_socket *s);
/** handshake.secure: 1 when the socket's Engine.IO handshake came over TLS
 * (ferry_session_secure()). */
FERRY_EXTERN int ferry_socket_secure(const ferry_socket *s);

/** Handle event on this socket only (replaces an earlier handler of the same event on this
 * socket; cb NULL removes it). event is copied. Returns 0, -FERRY_EINVAL, -FERRY_ELIMIT (more
 * than 64 events on one socket) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_socket_on(ferry_socket *s, const char *event, ferry_event_cb cb,
                                 void *user_data);

/** The catch-all: called for each event that has no handler of its own, neither on the socket
 * nor on its namespace. Without one, such events are dropped (and a requested ack never
 * answered, as in Socket.IO). Replaces the previous catch-all; cb NULL removes it. */
FERRY_EXTERN void ferry_socket_on_any(ferry_socket *s, ferry_event_cb cb, void *user_data);

/** The socket left its namespace for reason: FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT ("client
 * namespace disconnect"), SERVER_NAMESPACE_DISCONNECT (ferry_socket_disconnect(s, 0)),
 * FORCED_SERVER_CLOSE (ferry_socket_disconnect(s, 1)), TRANSPORT_CLOSE, TRANSPORT_ERROR,
 * PING_TIMEOUT, PARSE_ERROR, SERVER_SHUTTING_DOWN, or FORCED_CLOSE (ferry_session_close()).
 * During the call the socket is still in its rooms (Socket.IO's "disconnecting"), so that a
 * ferry_bcast can tell them; emits to s itself return -FERRY_ECLOSED. s is freed after the
 * call. Exactly once per connected socket. */
typedef void (*ferry_disconnect_cb)(ferry_socket *s, ferry_reason reason, void *user_data);

/** Set the socket's disconnect callback (replaces the previous one). */
FERRY_EXTERN void ferry_socket_on_disconnect(ferry_socket *s, ferry_disconnect_cb cb,
                                             void *user_data);

/** Emit event with args (borrowed; see "Arguments") to this socket. The packet is encoded and
 * queued before the call returns. Returns 0, -FERRY_EINVAL (event NULL, empty, reserved
 * ("connect", "connect_error", "disconnect", "disconnecting", "newListener",
 * "removeListener") or args not an array), -FERRY_ECLOSED, -FERRY_EBUSY (still in a
 * middleware), -FERRY_ETOOBIG (over max_payload) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_socket_emit(ferry_socket *s, const char *event, const cJSON *args);

/** Like ferry_socket_emit(), but dropped (returning 0) when the client cannot take it right
 * now: the session still has earlier packets waiting to be written, or is being upgraded
 * (Socket.IO's socket.volatile.emit()). For data where only the latest value matters. */
FERRY_EXTERN int ferry_socket_emit_volatile(ferry_socket *s, const char *event, const cJSON *args);

/** The client answered an emit that asked for an acknowledgement (status 0, args the client's
 * arguments, owned by ferry, freed after the call), or it did not: status -FERRY_ETIMEDOUT
 * when timeout_ms passed first, -FERRY_ECLOSED when the socket disconnected first (args NULL
 * both times; the callback runs before the disconnect callback). Exactly once per successful
 * ferry_socket_emit_ack(). */
typedef void (*ferry_ack_cb)(ferry_socket *s, int status, cJSON *args, void *user_data);

/** Emit and ask for an acknowledgement (Socket.IO's socket.timeout(ms).emit(..., cb)).
 * timeout_ms 0 takes the server's ack_timeout_ms; if that is 0 too, the ack waits until the
 * socket disconnects. Returns 0 (cb will run exactly once) or the errors of
 * ferry_socket_emit(), plus -FERRY_ELIMIT when 1024 acks are already pending on the socket
 * (cb never runs then). */
FERRY_EXTERN int ferry_socket_emit_ack(ferry_socket *s, const char *event, const cJSON *args,
                                       uint32_t timeout_ms, ferry_ack_cb cb, void *user_data);

/** Answer a client's acknowledgement request with args (borrowed; NULL for none). Frees ack:
 * call it at most once. An ack not answered is freed when its socket is, after the disconnect
 * callback returns. Returns 0, -FERRY_EINVAL, -FERRY_ECLOSED (the socket disconnected; ack is
 * freed all the same), -FERRY_ETOOBIG or -FERRY_ENOMEM (ack freed in both cases too). */
FERRY_EXTERN int ferry_ack_send(ferry_ack *ack, const cJSON *args);
/** The socket an ack belongs to. */
FERRY_EXTERN ferry_socket *ferry_ack_socket(const ferry_ack *ack);

/** Join or leave a room of the socket's namespace. name is copied. Joining twice or leaving a
 * room the socket is not in does nothing and returns 0. Every socket is in the room named by
 * its id from its connection on. Returns 0, -FERRY_EINVAL (empty, too long or not UTF-8),
 * -FERRY_ECLOSED, -FERRY_EBUSY (still in a middleware), -FERRY_ELIMIT (a socket is in at most
 * 256 rooms) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_socket_join(ferry_socket *s, const char *room);
FERRY_EXTERN int ferry_socket_leave(ferry_socket *s, const char *room);
/** Is the socket in room? */
FERRY_EXTERN int ferry_socket_in(const ferry_socket *s, const char *room);
/** The socket's rooms (its own id room first) into out[0..max); returns the total count. The
 * strings live until the socket leaves the room. */
FERRY_EXTERN size_t ferry_socket_rooms(const ferry_socket *s, const char **out, size_t max);

/** Leave the namespace: the client gets DISCONNECT and the disconnect callback runs with
 * SERVER_NAMESPACE_DISCONNECT (close_session 0), or every namespace of the client's session is
 * left and the session closed (close_session 1; reason FORCED_SERVER_CLOSE for every socket of
 * it). Packets queued before are still delivered. Asynchronous: the disconnect callback runs
 * later on the loop, never inside this call. A second call does nothing. */
FERRY_EXTERN void ferry_socket_disconnect(ferry_socket *s, int close_session);

/** Did the socket come back through connection-state recovery (recovery_ms)? Then it has its
 * old id and rooms, and the packets it missed were queued before the connection callback. Its
 * data pointer is kept when the namespace keeps socket data (ferry_namespace_keep_socket_data(),
 * below); callbacks are not kept: set them again in the connection callback. */
FERRY_EXTERN int ferry_socket_recovered(const ferry_socket *s);

/* ---- connection-state recovery per namespace (docs/reliability.md) */

/** Frees a socket's data pointer once no socket can use it any more. */
typedef void (*ferry_socket_data_release_cb)(ferry_namespace *nsp, void *data, void *user_data);

/** Keep per-socket data across recovery (Socket.IO's socket.data). From this call on, ferry
 * owns the pointer each socket of nsp holds (ferry_socket_set_data()): when a socket is lost
 * for a recoverable reason, its data (as it is after the disconnect callback) is kept with its
 * saved state, and a socket that recovers has it again from its middlewares on. ferry calls
 * release(nsp, data, user_data) for a pointer no socket will use: after the
 * disconnect callback of a socket that will not be recovered, when a saved state expires or
 * is dropped (window, bounds, shutdown: ferry_server_free()), when a socket refused by a
 * middleware is freed, and for the old pointer when ferry_socket_set_data() replaces a
 * non-NULL one with another. So the app must not free data in its disconnect callback. release
 * may run inside any ferry call that prunes the recovery state (an emit, a CONNECT, the
 * server's free), an exception to the timing rule above: it must only free the data, not call
 * ferry. release NULL goes back to the default (data is the app's alone and a recovered socket
 * starts with NULL). Never NULL data pointers are passed to release. */
FERRY_EXTERN void ferry_namespace_keep_socket_data(ferry_namespace *nsp,
                                                   ferry_socket_data_release_cb release,
                                                   void *user_data);

/** The recovery bounds of one namespace, instead of the server's recovery_ms and
 * recovery_max_bytes: window_ms (0: recovery off for this namespace; sockets that connect
 * then get no pid) and max_bytes (the log's byte bound, as recovery_max_bytes). The log of
 * sent packets is pruned by age (window_ms), bytes and count (the server's
 * recovery_max_packets); a saved socket expires after window_ms. Applies from the next packet
 * or connection on. */
FERRY_EXTERN void ferry_namespace_set_recovery(ferry_namespace *nsp, uint32_t window_ms,
                                               size_t max_bytes);

/** Is the socket connected (past its middlewares and not yet disconnecting)? */
FERRY_EXTERN int ferry_socket_connected(const ferry_socket *s);

/* ---- backpressure per namespace (docs/reliability.md "Backpressure")
 *
 * Each Engine.IO session has one send queue: the packets of every namespace the client joined,
 * waiting for a transport to take them (a transport takes what it can write: a WebSocket at
 * most 32 KiB in its write buffer and about 32 KiB unsent in the kernel, an SSE stream the
 * same, a long-poll one response). A client that reads slower
 * than the app emits makes the queue grow. Each
 * namespace bounds it for the packets it sends (max_bytes, compared with the session's
 * queued bytes) and chooses what happens to a packet of its own that would pass the bound:
 *
 * - CLOSE (the default, bound max_session_queue_bytes): the packet is queued and the session
 *   closed at the next flush with FERRY_REASON_QUEUE_FULL ("transport error" on the wire and
 *   in disconnect callbacks); a socket lost that way is recoverable (recovery_ms).
 * - DROP_VOLATILE: volatile packets waiting in the queue are removed and new ones dropped;
 *   every other packet is queued, in order; the session closes only past
 *   max_session_queue_bytes.
 * - LATEST: as DROP_VOLATILE, and a keyed packet (ferry_socket_emit_keyed(),
 *   ferry_bcast_keyed()) replaces the newest packet with the same key still waiting in the
 *   queue (the old one is removed, the new one queued at the end): for each key the client
 *   gets the latest value, and values of one key in order, intermediate ones skipped. The
 *   search looks at the 4096 newest queued packets; packets with binary attachments are
 *   never replaced. Unkeyed packets are queued as with DROP_VOLATILE.
 * - SPILL: needs connection-state recovery on for the namespace (recovery_ms or
 *   ferry_namespace_set_recovery()). A logged event (not volatile, asking no ack) is not
 *   queued: it stays in the namespace's recovery log, and the socket catches up from the log
 *   as the queue drains under the bound, on the same session, in order, none twice (no
 *   reconnection). Packets that are not logged (acks, emits asking for an ack) are queued at
 *   once and may overtake spilled events; volatile ones are dropped. When an event the socket
 *   may need has left the log meanwhile (the log's bounds, its window), the session is closed
 *   with FERRY_REASON_QUEUE_FULL and the client's recovery says "gap".
 *
 * Whatever the policy: a packet is queued when the queue is empty; a volatile packet is
 * dropped when the session has packets waiting (ferry_socket_emit_volatile()); control
 * packets (Engine.IO pong, ping, close; Socket.IO CONNECT, DISCONNECT, CONNECT_ERROR, ack
 * answers) are never dropped or replaced; and a session whose queue passes
 * max_session_queue_bytes is closed (FERRY_REASON_QUEUE_FULL). */
typedef enum ferry_backpressure {
    FERRY_BACKPRESSURE_CLOSE = 0,
    FERRY_BACKPRESSURE_DROP_VOLATILE,
    FERRY_BACKPRESSURE_LATEST,
    FERRY_BACKPRESSURE_SPILL,
} ferry_backpressure;

/** Set the namespace's policy and bound (bytes; 0: max_session_queue_bytes). Applies from the
 * next packet on. Returns 0, or -FERRY_EINVAL: policy unknown, max_bytes over
 * max_session_queue_bytes, or SPILL while recovery is off for the namespace (should it be
 * turned off later, SPILL acts as CLOSE). */
FERRY_EXTERN int ferry_namespace_set_backpressure(ferry_namespace *nsp, ferry_backpressure policy,
                                                  size_t max_bytes);
/** The namespace's policy and bound (max_session_queue_bytes when not set). */
FERRY_EXTERN ferry_backpressure ferry_namespace_backpressure(const ferry_namespace *nsp,
                                                             size_t *max_bytes);
/** The policy's name ("close", "drop-volatile", "latest", "spill"; static), NULL when unknown;
 * and the other way: 0 and *out, or -FERRY_EINVAL. */
FERRY_EXTERN const char *ferry_backpressure_name(ferry_backpressure policy);
FERRY_EXTERN int ferry_backpressure_parse(const char *name, ferry_backpressure *out);

/** Emit to this socket as ferry_socket_emit(), with key (copied; 1 to FERRY_NAME_MAX bytes):
 * under the LATEST policy it replaces a queued packet of the socket's namespace with the same
 * key (a ticker's symbol, a document's id). Elsewhere the key is ignored. Same returns as
 * ferry_socket_emit(), and -FERRY_EINVAL for a bad key. */
FERRY_EXTERN int ferry_socket_emit_keyed(ferry_socket *s, const char *key, const char *event,
                                         const cJSON *args);

/** Bytes queued for the socket's Engine.IO session and not yet taken by a transport (what the
 * bound above counts; shared by the client's namespaces), as uWebSockets'
 * getBufferedAmount(). 0 once the socket has left its client. */
FERRY_EXTERN size_t ferry_socket_buffered_amount(const ferry_socket *s);

/** The queue drained: buffered is ferry_socket_buffered_amount() now, <= the low-water mark. */
typedef void (*ferry_drain_cb)(ferry_socket *s, size_t buffered, void *user_data);

/** Call cb each time the socket's buffered amount, having been above low_water (when a packet
 * was queued to the socket, or seen after a transport took some), falls to low_water or below
 * (uWebSockets' drain), so that a producer can pace itself: emit while
 * ferry_socket_buffered_amount() is under a mark, stop above it, go on in cb. cb runs on the
 * loop after a transport took packets, never inside an emit; it may emit, disconnect the
 * socket or close the session. Replaces an earlier callback; cb NULL removes it. Returns 0,
 * -FERRY_EINVAL (s NULL) or -FERRY_ECLOSED (not connected). */
FERRY_EXTERN int ferry_socket_on_drain(ferry_socket *s, size_t low_water, ferry_drain_cb cb,
                                       void *user_data);

/* ---- broadcasts
 *
 * A ferry_bcast describes the recipients of one broadcast (Socket.IO's operators to(),
 * except(), volatile, socket.broadcast). It lives on the caller's stack and holds borrowed
 * pointers only: fill it, emit, forget it. Nothing is allocated per recipient: the packet is
 * encoded once into a reference-counted buffer that every recipient's queue shares. Do not
 * touch its fields; use the functions. */
typedef struct ferry_bcast {
    ferry_namespace *nsp;
    const ferry_socket *exclude; /* the sender, for socket.broadcast */
    const char *to[FERRY_BCAST_MAX_ROOMS];
    const char *except[FERRY_BCAST_MAX_ROOMS];
    uint8_t nto, nexcept;
    unsigned flags;
    const char *key; /* ferry_bcast_keyed() */
} ferry_bcast;

enum {
    FERRY_BCAST_VOLATILE = 1u << 0, /* skip recipients that cannot take it now */
};

/** Every socket of nsp (io.of(name)). */
FERRY_EXTERN void ferry_bcast_init(ferry_bcast *b, ferry_namespace *nsp);
/** Every socket of s's namespace except s (socket.broadcast). s is borrowed until the emit. */
FERRY_EXTERN void ferry_bcast_from(ferry_bcast *b, const ferry_socket *s);
/** Only sockets in room (several calls: in any of them; each socket gets the packet once).
 * room is borrowed until the emit. Returns 0 or -FERRY_ELIMIT (more than
 * FERRY_BCAST_MAX_ROOMS). */
FERRY_EXTERN int ferry_bcast_to(ferry_bcast *b, const char *room);
/** Not to sockets in room (several calls add up). Returns 0 or -FERRY_ELIMIT. */
FERRY_EXTERN int ferry_bcast_except(ferry_bcast *b, const char *room);
/** Make the broadcast volatile (see ferry_socket_emit_volatile()). */
FERRY_EXTERN void ferry_bcast_volatile(ferry_bcast *b);
/** Give the broadcast a key (borrowed until the emit), as ferry_socket_emit_keyed(). Returns 0
 * or -FERRY_EINVAL (NULL, empty or longer than FERRY_NAME_MAX). A broadcast that reaches
 * other nodes through an adapter arrives there without its key. */
FERRY_EXTERN int ferry_bcast_keyed(ferry_bcast *b, const char *key);
/** Emit event with args (borrowed) to the recipients b describes. The packet is encoded once.
 * Returns the number of sockets it was queued for (0 or more), or -FERRY_EINVAL,
 * -FERRY_ETOOBIG or -FERRY_ENOMEM. No callback runs inside. */
FERRY_EXTERN int ferry_bcast_emit(const ferry_bcast *b, const char *event, const cJSON *args);

/* ---- binary arguments
 *
 * A binary argument is a cJSON object with one member "_ferry_binary", in one of two forms:
 * - the bytes form, which ferry makes: ferry_binary_new(), ferry_binary_alloc(), ferry_json_dup()
 *   and every binary attachment a client sends (event and ack arguments arrive this way). The
 *   member carries the bytes themselves, in the member's own allocation: no base64 is written
 *   or read anywhere; a received attachment is copied once out of its message, and an emit,
 *   ack or broadcast copies the bytes once into the packet, which then travels as it is (to
 *   every recipient, through the adapter and the recovery log) and is written to a WebSocket
 *   as one binary frame; polling and SSE encode it to base64 once per packet, which the
 *   Engine.IO protocol requires there.
 * - the text form {"_ferry_binary":"<base64>"}: what cJSON_Parse() gives for that JSON text, or
 *   ferry_json_dup(item, FERRY_JSON_BASE64) to make a tree printable. Still a binary argument:
 *   its base64 is decoded when it is read or sent. (A client that sends that JSON object
 *   itself gets it treated as binary too, which gives it nothing a real attachment does not.)
 * Ownership is cJSON's: a binary argument belongs to the tree that holds it and is freed with
 * it by cJSON_Delete(); moving it (cJSON_DetachItem*, cJSON_AddItemTo*) keeps its bytes, so a
 * callback may detach a received one to keep it. Its bytes never change: there is no call to
 * change them in place (make a new argument instead).
 * cJSON's own copies do not carry the bytes form's bytes: cJSON_Duplicate() and cJSON_Print()
 * see only the member's stand-in text "(N bytes)", and a copy made that way is not sendable
 * (an emit of it returns -FERRY_EINVAL, ferry_binary_get() on it too). Copy arguments that may
 * hold binary with ferry_json_dup(). */

/** A binary argument (bytes form) holding a copy of len bytes at data: a new cJSON object
 * owned by the caller, to add to an args array (which then owns it). NULL when out of memory,
 * when data is NULL with len > 0, or when len is over the hard ceiling (100 MB). */
FERRY_EXTERN cJSON *ferry_binary_new(const void *data, size_t len);
/** A binary argument (bytes form) of len bytes for the caller to write: *data is set to its
 * bytes (uninitialised), valid as long as the argument lives; write them before the argument
 * is sent or copied (either takes the bytes as they are then). Saves the copy
 * ferry_binary_new() makes. NULL (and *data NULL) as ferry_binary_new(); NULL when data is
 * NULL. */
FERRY_EXTERN cJSON *ferry_binary_alloc(size_t len, void **data);
/** Is item a binary argument (either form)? 0 for NULL. */
FERRY_EXTERN int ferry_binary_is(const cJSON *item);
/** The bytes of a binary argument in the bytes form, without copying: a pointer valid as long
 * as item lives (until its tree is deleted; for callback arguments, until the callback
 * returns unless the callback detached item), with *len (when len is not NULL) their count.
 * NULL, with *len 0, when item is not a binary argument or is in the text form (use
 * ferry_binary_get() for both forms). Zero-length bytes give a non-NULL pointer. */
FERRY_EXTERN const void *ferry_binary_data(const cJSON *item, size_t *len);
/** The bytes of a binary argument (either form), copied. With out NULL, stores the length in
 * *len and returns 0. Otherwise *len is the capacity of out on entry and the number of bytes
 * written on return. Returns 0, -FERRY_EINVAL (not a binary argument, bad base64, or a
 * cJSON_Duplicate() copy of the bytes form), -FERRY_ETOOBIG (out too small; *len then holds
 * the size needed) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_binary_get(const cJSON *item, void *out, size_t *len);

/** ferry_json_dup() flag: binary arguments in the copy take the text form (base64), so that
 * cJSON_Print() of the copy keeps their bytes (for logs, storage; cJSON_Parse() of that text
 * gives binary arguments again). */
#define FERRY_JSON_BASE64 1u
/** A deep copy of item (any cJSON value, NULL gives NULL) that keeps its binary arguments'
 * bytes: in the bytes form (copied), or with FERRY_JSON_BASE64 in the text form; text-form
 * arguments are copied as they are. The copy is owned by the caller (cJSON_Delete). NULL when
 * out of memory. */
FERRY_EXTERN cJSON *ferry_json_dup(const cJSON *item, unsigned flags);

/* ------------------------------------------------------------------ plain WebSocket endpoints
 *
 * RFC 6455 WebSocket without Engine.IO, on a path of the same server: text and binary
 * messages, ping/pong answered for you, the closing handshake, and optional permessage-deflate
 * (RFC 7692). Received text is validated as UTF-8 (invalid: close 1007), oversized messages
 * close with 1009, protocol violations with 1002.
 */
typedef struct ferry_ws ferry_ws;

/** Limits and options of a WebSocket route. Fill with ferry_ws_config_init(). */
typedef struct ferry_ws_config {
    size_t max_message;       /* 16 MiB: bytes of one received message (after inflating) */
    uint32_t max_fragments;   /* 65536: non-empty frames of one received message (empty
                               * frames carry no payload and are not counted) */
    int per_message_deflate;  /* 0: accept the client's permessage-deflate offer when 1 */
    size_t deflate_threshold; /* 1024: messages shorter than this are sent uncompressed */
} ferry_ws_config;

FERRY_EXTERN void ferry_ws_config_init(ferry_ws_config *cfg);

/** Callbacks of a WebSocket route; each gets the route's user_data. Any may be NULL. */
typedef struct ferry_ws_callbacks {
    /** The handshake succeeded (the 101 is on its way). Set per-connection data here. */
    void (*on_open)(ferry_ws *ws, void *user_data);
    /** A whole message; data is valid only during the call (text is valid UTF-8, not
     * NUL-terminated). */
    void (*on_message)(ferry_ws *ws, const char *data, size_t len, int binary, void *user_data);
    /** The connection is gone, once per opened ws: code is the peer's close code (1005 if it
     * sent none), the code ferry failed the connection with (1002, 1007, 1009), the code given
     * to ferry_ws_close(), 1001 when the server shut down (the client got a close frame with
     * 1001), or 1006 when TCP ended without a closing handshake. ws is freed after this
     * returns. */
    void (*on_close)(ferry_ws *ws, int code, void *user_data);
} ferry_ws_callbacks;

/** Serve WebSocket connections on the exact path (it must lie outside the engine path, which
 * takes every path under it). Requests on the path that are not a valid handshake get a 400
 * with the reason; an Origin outside ferry_server_config.cors_origins gets a 403. cfg may be
 * NULL for the defaults; cfg and cb are copied. Returns 0, -FERRY_EINVAL, -FERRY_EEXIST or
 * -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_ws_route(ferry_server *srv, const char *path, const ferry_ws_config *cfg,
                                const ferry_ws_callbacks *cb, void *user_data);

/** Send a text (binary = 0) or binary message; the bytes are copied before the call returns.
 * Returns 0, -FERRY_ECLOSED (closing or closed), -FERRY_EUTF8 (text that is not UTF-8) or
 * -FERRY_ENOMEM. Safe inside any callback. */
FERRY_EXTERN int ferry_ws_send(ferry_ws *ws, const void *data, size_t len, int binary);

/** Start the closing handshake with code (1000, or 3000-4999 for applications; 0 sends no
 * code) and an optional reason (UTF-8, cut at 123 bytes). The connection ends when the peer
 * answers, or after two seconds; on_close follows. Returns 0, -FERRY_EINVAL for a code that
 * may not be sent, or -FERRY_ECLOSED when already closing. Safe inside any callback. */
FERRY_EXTERN int ferry_ws_close(ferry_ws *ws, int code, const char *reason);

/** Bytes handed to the kernel's queue and not yet sent (for flow control). */
FERRY_EXTERN size_t ferry_ws_buffered_amount(const ferry_ws *ws);

FERRY_EXTERN void ferry_ws_set_data(ferry_ws *ws, void *data);
FERRY_EXTERN void *ferry_ws_get_data(const ferry_ws *ws);
FERRY_EXTERN ferry_server *ferry_ws_server(const ferry_ws *ws);

/* ------------------------------------------------------------------ across nodes: queries and commands
 *
 * Socket.IO's fetchSockets, socketsJoin, socketsLeave, disconnectSockets and serverSideEmit,
 * for every node of a cluster (ferry_server_use_redis(), docs/scaling.md "Queries and
 * commands across nodes"). On a single node they act on this node's sockets only. rooms
 * selects the sockets in any of rooms[0..nrooms) (nrooms 0: every socket of the namespace);
 * room names are at most FERRY_NAME_MAX bytes of UTF-8. Commands reach the other nodes
 * through Redis as they are sent: a node that is unreachable at that moment misses them
 * (nothing is queued); these calls return -FERRY_ECLOSED when Redis is unreachable, after
 * acting on this node's sockets. */

/** A socket as a fetch across nodes sees it; every pointer lives until the callback returns. */
typedef struct ferry_remote_socket {
    const char *id;            /* its Socket.IO id */
    const char *node;          /* the node it is connected to (this one: ferry_redis_node_id;
                                  "" on a single node) */
    const char *const *rooms;  /* its rooms, its own id room included */
    size_t nrooms;
    const cJSON *data;         /* what the namespace's info callback gave for it, or NULL */
} ferry_remote_socket;

/** The answer of ferry_cluster_fetch_sockets(): status 0 when every other node answered,
 * -FERRY_ETIMEDOUT when the timeout came first (the result is partial: sockets of
 * nodes_answered of nodes_expected other nodes, plus this node's), or another negative error
 * (then only this node's sockets). Runs once, on the loop: later, or inside the call on a single
 * node. */
typedef void (*ferry_fetch_cb)(ferry_namespace *nsp, int status, const ferry_remote_socket *sockets,
                               size_t n, size_t nodes_answered, size_t nodes_expected,
                               void *user_data);

/** The sockets in rooms on every node (this node's first), within timeout_ms. Returns 0 (cb will
 * run), -FERRY_EINVAL or -FERRY_ENOMEM (cb will not run). */
FERRY_EXTERN int ferry_cluster_fetch_sockets(ferry_namespace *nsp, const char *const *rooms,
                                             size_t nrooms, uint32_t timeout_ms,
                                             ferry_fetch_cb cb, void *user_data);

/** Make the sockets in rooms, on every node, join room (leave it). Returns 0, -FERRY_EINVAL,
 * -FERRY_ENOMEM or -FERRY_ECLOSED (see above). */
FERRY_EXTERN int ferry_cluster_sockets_join(ferry_namespace *nsp, const char *const *rooms,
                                            size_t nrooms, const char *room);
FERRY_EXTERN int ferry_cluster_sockets_leave(ferry_namespace *nsp, const char *const *rooms,
                                             size_t nrooms, const char *room);
/** Disconnect the sockets in rooms on every node (ferry_socket_disconnect(s, close_session)). */
FERRY_EXTERN int ferry_cluster_disconnect_sockets(ferry_namespace *nsp, const char *const *rooms,
                                                  size_t nrooms, int close_session);

/** A server-side event from another node (Socket.IO's serverSideEmit): from_node is the sender's
 * node id; args a JSON array (borrowed for the call). */
typedef void (*ferry_server_event_cb)(ferry_namespace *nsp, const char *from_node,
                                      const char *event, const cJSON *args, void *user_data);
/** Receive the other nodes' server-side events for this namespace (cb NULL: stop). */
FERRY_EXTERN void ferry_namespace_on_server_event(ferry_namespace *nsp, ferry_server_event_cb cb,
                                                  void *user_data);
/** Send event with args (a JSON array or NULL; copied) to every other node's server-side
 * event callback for this namespace (not to this node's, as in Socket.IO). Returns 0,
 * -FERRY_EINVAL, -FERRY_ENOMEM, -FERRY_ECLOSED, or -FERRY_EUNSUPPORTED on a single node. */
FERRY_EXTERN int ferry_cluster_server_emit(ferry_namespace *nsp, const char *event,
                                           const cJSON *args);

/** What a fetch shows of a socket's data (ferry_socket_set_data() is a C pointer that cannot
 * cross nodes): cb returns a new JSON value for s (ferry frees it) or NULL. cb NULL: none. */
typedef cJSON *(*ferry_socket_info_cb)(ferry_socket *s, void *user_data);
FERRY_EXTERN void ferry_namespace_set_socket_info(ferry_namespace *nsp, ferry_socket_info_cb cb,
                                                  void *user_data);

/* ------------------------------------------------------------------ several nodes (Redis)
 *
 * Several ferry processes (nodes) behind a load balancer share rooms and broadcasts through
 * Redis pub/sub (docs/scaling.md). A ferry_redis is one node's link to Redis: two connections
 * (publish, subscribe) on the server's loop, never blocking it (the host name is resolved on
 * libuv's thread pool). Attach it to a server before its first ferry_of(); from then on every
 * broadcast (ferry_bcast_emit, ferry_namespace_emit) also reaches the sockets of the other
 * nodes, encoded once per node, and every node delivers what the others publish to its own
 * sockets, each once. While Redis is unreachable, local delivery goes on, broadcasts are not
 * forwarded (counted in ferry_redis_stats), a warning is logged once per outage, and the link
 * reconnects with backoff (100 ms doubling to 5 s) and subscribes again.
 * Built only with -DFERRY_WITH_REDIS=ON (the default; hiredis): otherwise ferry_redis_new()
 * returns -FERRY_EUNSUPPORTED. */
typedef struct ferry_redis ferry_redis;

typedef struct ferry_redis_config {
    /* "redis://[:password@]host[:port][/db]" (port 6379 by default). Required. */
    const char *url;
    /* This node's name in every message (so that it ignores its own), 1 to 64 bytes of
     * [A-Za-z0-9._-]; NULL: a random one. */
    const char *node_id;
    /* Channel names start with this (default "ferry"): several clusters on one Redis. */
    const char *prefix;
    /* Nonzero: sharded pub/sub (Redis 7's SSUBSCRIBE/SPUBLISH) for a Redis Cluster (url names
     * any of its nodes; the others are found through CLUSTER SLOTS) or one Redis 7: each
     * channel lives on the node owning its hash slot, and this node keeps two connections to
     * every node owning slots (docs/scaling.md "Redis Cluster: sharded pub/sub"). Every node
     * of a ferry cluster must use the same mode. 0: classic PUBLISH/SUBSCRIBE on url. */
    int sharded;
} ferry_redis_config;

typedef struct ferry_redis_stats {
    int connected;            /* both connections are up */
    uint64_t published;       /* broadcasts sent to Redis */
    uint64_t received;        /* broadcasts from other nodes delivered here */
    uint64_t not_forwarded;   /* broadcasts delivered locally only: Redis was unreachable */
    uint64_t outages;         /* times Redis became unreachable */
    uint64_t reconnects;      /* connections made again after an outage */
    uint64_t bad_messages;    /* messages on our channels that could not be read */
} ferry_redis_stats;

/* With ferry_redis_config.sharded: where the sharded channels are. */
typedef struct ferry_redis_shard_stats {
    uint32_t nodes;                 /* Redis nodes owning slots in the last slot map */
    uint32_t nodes_up;              /* of them, with both of this node's connections up */
    uint64_t channels;              /* sharded channels this node wants */
    uint64_t subscribed;            /* of them, confirmed by their node (ssubscribe) */
    uint64_t map_refreshes;         /* slot maps read (CLUSTER SLOTS) */
    uint64_t redirects;             /* MOVED and ASK answers followed */
    uint64_t unsubscribed_by_redis; /* channels Redis unsubscribed on its own (slot moved) */
    uint64_t resubscribed;          /* channels subscribed again (node back, slot moved) */
} ferry_redis_shard_stats;

/** Start connecting to Redis on loop. cfg and its strings are copied. Returns 0 with *out,
 * -FERRY_EINVAL (bad URL or node id), -FERRY_EUNSUPPORTED (built without Redis) or
 * -FERRY_ENOMEM. The link reconnects by itself; an unreachable Redis is not an error here. */
FERRY_EXTERN int ferry_redis_new(uv_loop_t *loop, const ferry_redis_config *cfg,
                                 ferry_redis **out);
/** Make srv a node of r's cluster. Before the server's first ferry_of() (or namespace
 * request hook): 0, -FERRY_EINVAL or -FERRY_EBUSY. r must outlive srv: close r in (or
 * after) the server's close callback. */
FERRY_EXTERN int ferry_server_use_redis(ferry_server *srv, ferry_redis *r);
/** This node's id (NUL-terminated, lives as long as r). */
FERRY_EXTERN const char *ferry_redis_node_id(const ferry_redis *r);
FERRY_EXTERN void ferry_redis_stats_get(const ferry_redis *r, ferry_redis_stats *out);
/** The sharded pub/sub counters: 0, or -FERRY_EINVAL when r is not sharded. */
FERRY_EXTERN int ferry_redis_shard_stats_get(const ferry_redis *r, ferry_redis_shard_stats *out);

/* No sticky sessions (docs/scaling.md "Forwarding"): with forwarding on, a session id names
 * the node that owns it, signed with a key of the cluster's (HMAC-SHA256), and a request for
 * another node's session (polling, short-polling, SSE, an attach, a WebSocket upgrade) that a
 * round-robin balancer brought here is passed to the owner over a TCP connection of its own
 * and the answer (or the upgraded connection, or the event stream) passed back. A forged or
 * altered sid, an owner that is not known in Redis or does not answer within 3 s: 400
 * {"code":1,"message":"Session ID unknown"}, as for any unknown session. Each node publishes
 * "host:port" in Redis under <prefix>:node:<tag> (15 s TTL, refreshed every 5 s). */
typedef struct ferry_forward_config {
    /* The cluster's secret, the same on every node (at least 16 bytes): sids are signed with
     * a key derived from it. NULL: a key derived from the Redis link's address, credentials
     * and prefix (then every node must be given the same Redis URL; anyone who knows that
     * URL can sign sids: set a secret in production). */
    const char *secret;
    /* Where the other nodes reach this server: "IPv4:port", "[IPv6]:port" or "name:port" (a
     * host name: the other nodes resolve it with getaddrinfo on libuv's thread pool, never
     * blocking their loop, take its first IPv4 address, else its first IPv6 one, and use it
     * for 30 s; a name that does not resolve is logged and its sessions' requests answered
     * 400). NULL: "127.0.0.1:<the first listener's port>". */
    const char *address;
    /* Forwarded requests at once, each holding one connection to its owner (0: 1024); beyond
     * it they are answered 503. */
    uint32_t max_requests;
} ferry_forward_config;

typedef struct ferry_forward_stats {
    uint64_t forwarded;   /* requests passed to their owner */
    uint64_t unknown;     /* refused: the owner is not known in Redis, or not reachable */
    uint64_t busy;        /* refused 503: max_requests in flight */
    uint64_t active;      /* forwarded requests and spliced connections now */
    uint64_t published;   /* times this node's address was written to Redis */
} ferry_forward_stats;

/** Forward other nodes' sessions' requests to them, through r's Redis (ferry_server_use_redis
 * first). Call after ferry_server_listen (with address NULL, the port is the first
 * listener's) and before clients connect: sessions opened before keep plain sids that other
 * nodes cannot forward. cfg and its strings are copied. Returns 0, -FERRY_EINVAL (a short
 * secret, a bad address, no listener), -FERRY_EBUSY (already on), -FERRY_EUNSUPPORTED
 * (built without Redis) or -FERRY_ENOMEM. */
FERRY_EXTERN int ferry_server_forward(ferry_server *srv, ferry_redis *r,
                                      const ferry_forward_config *cfg);
/** Counters of the forwarding (all 0 while it is off). */
FERRY_EXTERN void ferry_server_forward_stats(const ferry_server *srv, ferry_forward_stats *out);

typedef void (*ferry_redis_close_cb)(ferry_redis *r, void *user_data);
/** Close both connections and every handle; cb (may be NULL) runs once they are closed, and
 * r is freed after it returns. Call it in (or after) the close callback of every server
 * using r; broadcasts from then on stay local. */
FERRY_EXTERN void ferry_redis_close(ferry_redis *r, ferry_redis_close_cb cb, void *user_data);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_H */
