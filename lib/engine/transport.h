/* How a transport plugs into the engine: one ops table per transport (STYLE.md), and three
 * calls up into the engine. The engine never knows which transport it feeds; a transport
 * never parses Socket.IO.
 *
 * Lifetime: create() makes the transport object for a session and takes a session reference.
 * The transport reports its end exactly once with ferry_engine_on_transport_closed(), for
 * whatever reason (the peer left, an error, or the engine called close()); after that call
 * returns the engine never touches it again, and the transport frees itself (and releases its
 * session reference) once its own handles are closed. */
#ifndef FERRY_ENGINE_TRANSPORT_H
#define FERRY_ENGINE_TRANSPORT_H

#include "common/buf.h"
#include "common/timerwheel.h"
#include "engine/packet.h" /* the Engine.IO packet codec: EIO_* types, payload framing */
#include "ferry.h"
#include "http/http.h"

typedef struct ferry_transport ferry_transport;

#define FERRY_SID_LEN 22 /* 128 random bits as unpadded base64url */
/* The longest sid: a cluster node's signed one (sid.c, 27 bytes as base64url). */
#define FERRY_SID_MAX 36

enum {
    FERRY_TR_FULL_DUPLEX = 1u << 0, /* one connection carries both directions (WebSocket) */
    FERRY_TR_STREAMING = 1u << 1,   /* downstream is one long response (SSE) */
    FERRY_TR_BINARY = 1u << 2,      /* carries binary messages natively (no base64) */
    FERRY_TR_POLLED = 1u << 3,      /* the client fetches at an interval: heartbeats allow it */
    FERRY_TR_PROBE_TARGET = 1u << 4, /* can be reached from a polling session by probe */
    FERRY_TR_UPGRADABLE = 1u << 5,  /* a session on it may be probed to a PROBE_TARGET */
    FERRY_TR_EXTENSION = 1u << 6,   /* not Engine.IO: offered only to clients asking (ferry=1) */
};

/* A setting of one transport, set by applications with ferry_server_transport_option() and
 * read by the transport with ferry_engine_option(): a whole number in [min, max], def until
 * someone sets it. The transport's file defines its table; nothing else lists its settings. */
typedef struct ferry_transport_option {
    const char *name; /* lower case with its unit: "keepalive_ms", "padding_bytes" */
    uint64_t def, min, max;
    /* Compatibility only: the ferry_server_config field that held the setting before options
     * existed. ferry_server_new() takes its value as the option's first value, so programs
     * that fill the field keep working. A new transport leaves both at 0 (none). */
    unsigned cfg_kind; /* FERRY_OPT_CFG_* */
    size_t cfg_offset; /* offsetof(ferry_server_config, field) */
} ferry_transport_option;

enum {
    FERRY_OPT_CFG_NONE = 0,
    FERRY_OPT_CFG_U32,  /* uint32_t field */
    FERRY_OPT_CFG_SIZE, /* size_t field */
    FERRY_OPT_CFG_BOOL, /* int field: non-zero is 1 */
};

/* The options of every transport together, per server. */
#define FERRY_TRANSPORT_OPTIONS_MAX 32

/* What a stream or WebSocket transport keeps written but not yet sent: at most this many bytes
 * in its own write buffer (it stops taking from the session's queue past them) and about as
 * many unsent in the kernel (ferry_conn_limit_unsent). Both are small so that the backlog of a
 * client that reads slowly stays in the session's queue, where a server ping goes ahead of it
 * and the backpressure policy acts on it (docs/reliability.md "Heartbeats behind a backlog"). A
 * client that reads as fast as we write never sees either bound. */
#define FERRY_TRANSPORT_WRITE_HIGH_WATER (32 * 1024)
#define FERRY_TRANSPORT_UNSENT_MAX (32 * 1024)

typedef struct ferry_transport_ops {
    const char *name; /* the transport query value: "polling", "websocket", ... */
    unsigned flags;   /* FERRY_TR_* */
    /* Its settings, ended by an entry whose name is NULL; NULL when it has none. The transport
     * reads setting i of this table with ferry_engine_option(t, i). */
    const ferry_transport_option *options;
    /* A new transport object for s (retains s); NULL when out of memory. */
    ferry_transport *(*create)(ferry_session *s);
    /* Take the request that opened the session (handshake) or the probe. Returns 0 when the
     * request is taken (held, answered or its connection taken), or an Engine.IO error code
     * (0..5) that the engine answers; then the transport is destroyed with destroy(). */
    int (*open)(ferry_transport *t, ferry_req *req);
    /* A later request for the same sid on this transport (polling GET/POST, SSE upstream). */
    void (*on_request)(ferry_transport *t, ferry_req *req);
    /* Optional: a request for this transport has sent its headers (body still to come). */
    void (*on_request_head)(ferry_transport *t, ferry_req *req);
    /* Packets are queued (ferry_engine_take), or the session's upgrade state changed: write
     * what can be written now. Never blocks; may do nothing. */
    void (*flush)(ferry_transport *t);
    /* Write one packet at once, ahead of the queue: the probe answer "3probe" on a transport
     * that is not (yet) the session's. Returns 0 or -FERRY_E*. */
    int (*send_now)(ferry_transport *t, ferry_buf *pkt);
    /* Close, flushing what was already written when the transport can. Asynchronous or not;
     * ferry_engine_on_transport_closed() follows exactly once either way. */
    void (*close)(ferry_transport *t, ferry_reason reason);
    /* Optional: the session a request names without a sid query (SSE: a browser's EventSource
     * reconnects to its first URL, and its Last-Event-ID "<sid>:<n>" names the session). Copies
     * the sid into out (size FERRY_SID_MAX + 1) and returns 1, or returns 0. */
    int (*request_sid)(const ferry_req *req, char *out);
    /* Optional: does req continue this transport by itself (SSE: it carries Last-Event-ID)?
     * Then an rx= on it (the extensions' attach) is ignored: a browser's EventSource
     * reconnects to its first URL, rx= included. */
    int (*resumes)(const ferry_req *req);
    /* Free a transport whose open() failed (it was never announced to the engine). */
    void (*destroy)(ferry_transport *t);
} ferry_transport_ops;

struct ferry_transport {
    const ferry_transport_ops *ops;
    ferry_session *session; /* the transport holds a reference */
    /* Set before reporting the close when the connection ended without the peer saying goodbye
     * (a WebSocket without a close frame): an extension session then waits for an attach
     * instead of closing (docs/protocol.md section 6.4). */
    unsigned lost : 1;
};

/* ---- calls up into the engine */

/* A packet arrived on t: type is an EIO_* packet type; data is the packet's data (without the
 * type digit, or the raw bytes of a binary message), valid during the call. Returns 0, or a
 * negative code when the packet closed the session (parse error). */
int ferry_engine_on_packet(ferry_transport *t, int type, const char *data, size_t len,
                           int binary);
/* Decode a polling/SSE upstream payload (the body of a POST) and deliver its packets; data is
 * modified in place (base64 decoding). Returns 0 or -FERRY_EPROTO (the session is closed with
 * "parse error"). */
int ferry_engine_on_payload(ferry_transport *t, char *data, size_t len);
/* The same, with the first skip messages of the payload not taken (nor counted): they were
 * taken already (ferry_engine_post_taken). Other packets are taken as usual. Returns 1 (an
 * extension session) when a message of the payload was not taken because its transport is not
 * the session's (a message on a probe before its "5" aborts the upgrade): the caller must not
 * answer "ok" (docs/protocol.md 5.3: the client attaches and resends). */
int ferry_engine_on_payload_skip(ferry_transport *t, char *data, size_t len, uint64_t skip);
/* A request or connection of t died under it (a held poll or a POST cut): a plain session
 * closes ("transport error"); an extension session goes on and waits for the client's next
 * request or attach (the heartbeat decides). t stays the session's transport either way until
 * the engine closes it. When t is the session's probe, the probe fails (it is closed) and the
 * session goes on. */
void ferry_engine_on_transport_lost(ferry_transport *t);
/* The transport can write again after a flush left packets queued. */
void ferry_engine_on_drain(ferry_transport *t);
/* t is gone (see the lifetime rule above). reason matters when t is the session's transport:
 * the session closes with it. */
void ferry_engine_on_transport_closed(ferry_transport *t, ferry_reason reason);

/* ---- what a transport asks of the engine */

/* Take up to max queued packets into out[] (the caller owns those references) and stop early
 * once max_bytes would be passed (at least one packet is always taken). seqs (NULL or max
 * entries) gets each packet's downstream number: consecutive, from 1 for the session's first
 * packet, across every transport (extension sessions; 0 otherwise). On an extension session
 * the engine keeps its own reference in the replay buffer until the client acknowledges the
 * packet. Returns the count: 0 for a transport that is not the session's, and for a stream or
 * a WebSocket between "3probe" and "5" (ferry_engine_upgrading). */
size_t ferry_engine_take(ferry_transport *t, ferry_buf **out, uint64_t *seqs, size_t max,
                         size_t max_bytes);
/* A stream transport resumes after the client saw every packet up to number last (SSE's
 * Last-Event-ID): drops those from the replay buffer. Returns 0; -FERRY_EINVAL when last is
 * beyond what was sent (nothing changes); -FERRY_ELIMIT when a message after last is no longer
 * held (a gap: the caller answers 400 and closes the session). */
int ferry_engine_resume(ferry_transport *t, uint64_t last);
/* Call cb for every packet of the replay buffer, oldest first, with its number; stops when cb
 * returns non-zero and returns that. The packets stay in the buffer (cb retains what it keeps). */
int ferry_engine_replay(ferry_transport *t, int (*cb)(void *ud, ferry_buf *pkt, uint64_t seq),
                        void *ud);
/* A polling or short-polling GET of an extension session may say with got=<n> how many server
 * messages the client has (docs/protocol.md 5.3): the engine forgets those, and when an earlier
 * answer was lost on its way (got below what was sent) puts its messages back at the head of
 * the queue. Returns 0 (also without got=, or when t is not the session's transport), or a
 * negative code after closing the session (got= not a number or beyond what was sent:
 * -FERRY_EPROTO; the lost messages no longer held: -FERRY_ELIMIT). */
int ferry_engine_poll_got(ferry_transport *t, const ferry_req *req);
/* A POST of an extension session may say with tx=<n> how many client messages came before its
 * own (docs/protocol.md 5.3). Sets *skip to how many of its first messages the session took
 * already (the POST, or its head, was sent again: a browser retrying a request whose answer was
 * lost, or a resend after an attach that a late POST of the old transport partly took; 0
 * without tx= or when nothing was taken): the caller passes it to
 * ferry_engine_on_payload_skip(). Returns 0, or -FERRY_ELIMIT when tx is above the messages
 * taken and the body holds a message (a gap: messages before it were never taken): the caller
 * takes nothing of it and answers 409 (docs/protocol.md 5.3), and the session goes on. */
int ferry_engine_post_taken(ferry_transport *t, const ferry_req *req, uint64_t *skip);
/* Is the session between a probe's "2probe" and its "5"? A polling transport then answers its
 * GETs at once: with what is queued (ferry_engine_take still gives it packets), or a noop. A
 * stream or a WebSocket takes nothing then. */
int ferry_engine_upgrading(const ferry_transport *t);
/* Does t's session speak ferry's extensions (ferry's client: docs/protocol.md section 5)? */
int ferry_engine_extended(const ferry_transport *t);
/* The server configuration of t's session. */
const ferry_server_config *ferry_engine_config(const ferry_transport *t);
/* The value of t's option i (an index into t->ops->options) on t's server. */
uint64_t ferry_engine_option(const ferry_transport *t, size_t i);
/* The transport's log prefix: the session id. */
const char *ferry_engine_sid(const ferry_transport *t);
/* The server's timer wheel (for a transport's own timers). */
ferry_wheel *ferry_engine_wheel_of(const ferry_transport *t);
/* Is t the session's transport now? */
int ferry_engine_is_current(const ferry_transport *t);
/* Has the session gone on without t: it has another transport and t is not its probe (an
 * extension session's attach moved it)? */
int ferry_engine_left_behind(const ferry_transport *t);
/* Close t's session with reason: graceful sends queued packets and a close packet first. */
void ferry_engine_close_session(ferry_session *s, ferry_reason reason, int graceful);
/* Count a packet that did not parse (the caller closes as it sees fit). */
void ferry_engine_count_parse_error(ferry_session *s);
void ferry_session_retain(ferry_session *s);
void ferry_session_release(ferry_session *s);

/* ---- the registry (transports/registry.c): every transport, with its bit in
 * ferry_server_config.transports; the public side is ferry_transport_bit() and its kin. */

/* The ops of every transport in the server's order of preference, NULL-terminated. */
extern const ferry_transport_ops *const ferry_transports[];
/* The transport named name (the transport query value), or NULL (name NULL included). */
const ferry_transport_ops *ferry_transport_find(const char *name);
/* The bit of a registered transport, 0 for anything else. */
unsigned ferry_transport_ops_bit(const ferry_transport_ops *ops);
/* Options: every registered transport's options have one slot each in a server's table of
 * ferry_transport_option_count() values (at most FERRY_TRANSPORT_OPTIONS_MAX); option i of ops
 * is in slot ferry_transport_option_slot(ops, i). */
size_t ferry_transport_option_count(void);
size_t ferry_transport_option_slot(const ferry_transport_ops *ops, size_t i);
/* The option named name of ops and its index, or NULL (name NULL included). */
const ferry_transport_option *ferry_transport_option_find(const ferry_transport_ops *ops,
                                                          const char *name, size_t *index);

#endif
