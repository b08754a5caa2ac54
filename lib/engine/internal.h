/* The engine layer's private header: Engine.IO v4 sessions whatever their transport.
 *
 * Only the .c files of lib/engine include this file (scripts/check-includes.sh keeps it so;
 * unit tests and test servers may look inside). Layers above the engine use engine/engine.h,
 * transports use engine/transport.h. struct ferry_engine belongs to the composition root
 * (lib/server), which hands it the loop, the configuration and the timer wheel; the engine owns the
 * session table, the per-turn flush and the admissions. */
#ifndef FERRY_ENGINE_INTERNAL_H
#define FERRY_ENGINE_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "common/life.h"
#include "common/list.h"
#include "common/timerwheel.h"
#include "engine/engine.h"
#include "engine/packet.h"
#include "engine/transport.h"
#include "http/http.h"
#include "ferry.h"

typedef enum session_state {
    SESSION_OPEN,
    SESSION_CLOSING, /* a graceful close waits for the queue to drain */
    SESSION_CLOSED,  /* the close callback has run; waiting for the last reference */
} session_state;

typedef enum upgrade_state {
    UPGRADE_NONE,
    UPGRADE_PROBING,   /* a probe transport exists; no "2probe" yet */
    UPGRADE_UPGRADING, /* "3probe" sent: the old transport takes nothing, waits for "5" */
} upgrade_state;

/* A queued packet: the shared encoded buffer, one reference per queue entry. On an extension
 * session the entry moves to the session's replay buffer (sent) when a transport takes it. */
typedef struct ferry_qentry {
    ferry_list link;
    ferry_buf *buf;
    uint64_t msgno; /* extension sessions: the message's number (from 1), 0 for other packets */
    uint64_t seq;   /* extension sessions: the downstream packet number given when taken */
    ferry_buf *key; /* backpressure: a keyed packet's key (a reference), or NULL */
    unsigned flags; /* backpressure: FERRY_QUEUE_VOLATILE */
} ferry_qentry;

/* A session's counters (ferry_session_counter()): the wire's side is counted by lib/http where
 * the bytes pass (a meter given to every request of the session, and kept by the connections
 * its WebSocket and SSE transports take); the engine counts packets and messages. */
typedef struct ferry_session_counters {
    ferry_wire_meter wire;
    uint64_t packets_in;
    uint64_t packets_out;
    uint64_t messages_in;
    uint64_t messages_out;
    uint64_t message_bytes_in;
    uint64_t message_bytes_out;
} ferry_session_counters;

/* A hash table of sessions by sid (chained, power-of-two buckets, grown at load 1). */
/* One entry of a session's transport history (ferry_session_transport_history()): 8 bytes. */
typedef struct ferry_tr_event {
    uint32_t at_ms; /* after the handshake (s->time_ms) */
    uint8_t kind;   /* FERRY_TREV_* */
    uint8_t from;   /* ferry_engine_transport_index() */
    uint8_t to;
    uint8_t reason; /* reports: a report reason index; failed probes: FERRY_PROBE_FAILED_* */
} ferry_tr_event;

enum { FERRY_TREV_OPEN, FERRY_TREV_UPGRADE, FERRY_TREV_ATTACH, FERRY_TREV_PROBE_FAILED,
       FERRY_TREV_REPORT };
#define FERRY_TR_HISTORY 8 /* the last ones kept */

typedef struct ferry_session_table {
    ferry_session **buckets;
    size_t nbuckets;
    size_t count;
} ferry_session_table;

struct ferry_session {
    ferry_engine *engine;
    char sid[FERRY_SID_MAX + 1];
    /* The one lifetime rule (common/life.h): the session's own reference is the table's, given
     * up when it closes (finalize); each transport, the socket layer and every call out that
     * may close it hold one more. The last drop frees it. */
    ferry_life life;
    session_state state;
    upgrade_state upgrade;
    ferry_reason close_reason;
    int awaiting_pong;         /* a ping is out: heartbeat is the pong deadline */
    ferry_session *hash_next;
    ferry_transport *transport; /* current; NULL once closed */
    ferry_transport *probe;     /* upgrade candidate */
    /* The transport an extension session lost (NULL otherwise): where an attach moves it
     * from, for the metrics. */
    const ferry_transport_ops *lost_ops;
    ferry_list queue;           /* ferry_qentry, oldest first */
    size_t queued_bytes;
    ferry_list dirty;      /* in engine->dirty while a flush is due */
    ferry_timer heartbeat; /* next ping, or the pong deadline */
    uint64_t pong_deadline;    /* loop time by which the pong is due (when awaiting_pong) */
    uint64_t ping_at;          /* loop time the last server ping was queued */
    uint32_t rtt_ms;           /* ping to pong, last measured; UINT32_MAX: none yet */
    unsigned reports;          /* reports taken in the minute that began at report_window */
    ferry_timer upgrade_timer; /* probe deadline; also bounds a graceful close */
    /* The handshake request, kept for the application in one block of NUL-terminated strings
     * back to back (no pointer per string): the raw request target at 0, then the peer address
     * (at hs_addr), the POST token (at hs_token; "" unless require_post_token: what its POSTs
     * must carry), nquery name/value pairs (from hs_query), then nheaders (from hs_headers). */
    char *hs;
    uint32_t hs_addr, hs_token, hs_query, hs_headers;
    uint32_t nquery, nheaders;
    uint64_t time_ms; /* wall-clock time of the handshake, ms since the Unix epoch */
    int secure;     /* the handshake came over TLS */
    int extensions; /* the client asked for ferry's extensions (ferry=1) */
    /* The extensions' state (docs/protocol.md section 5 on): the replay buffer holds what a
     * transport took and the client has not acknowledged, oldest first. queued_bytes +
     * sent_bytes never stay above max_session_queue_bytes: the oldest sent leave first. */
    ferry_list sent; /* ferry_qentry, in the order taken */
    size_t sent_bytes;
    size_t nsent;
    uint64_t out_seq;       /* downstream packets taken so far (SSE event ids) */
    uint64_t tx_msgs;       /* server messages numbered so far (at queue time) */
    uint64_t tx_sent;       /* the highest message number a transport took */
    uint64_t rx_msgs;       /* client messages taken */
    uint64_t drop_msg;      /* the highest message number dropped from sent */
    uint64_t drop_msg_seq;  /* ... and its packet number */
    uint64_t gap_msg_seq;   /* the packet number of the last message the bound dropped */
    ferry_qentry *cping;    /* the still unsent answer to a client ping, or NULL */
    uint64_t report_window; /* loop time the current report-rate minute began */
    ferry_session_counters counters;
    /* Transport events: the first (the open) inline; a ring of the last FERRY_TR_HISTORY
     * (the first copied in) allocated at the second, so that a session that never changes
     * transport keeps 8 bytes of history, not 64. */
    ferry_tr_event history0;
    uint32_t nhistory;        /* events ever recorded */
    unsigned drained : 1;  /* a transport took from the queue since the last drain call */
    unsigned flushing : 1; /* inside flush_session */
    unsigned announced : 1;
    unsigned overflowed : 1; /* the queue went over max_session_queue_bytes: closing */
    unsigned probe_timed_out : 1; /* the probe is closed by upgrade_timeout_ms (metrics) */
    /* POSTs of a stream transport (SSE) begun while the session waits for "5" (at most one is
     * a client's that had not seen "3probe" yet; a second means the probe was given up). */
    unsigned upgrade_posts : 2;
    ferry_tr_event *history; /* the ring, or NULL while nhistory <= 1 */
    /* The application side (engine level or the Socket.IO layer). */
    ferry_message_cb on_message;
    void *on_message_ud;
    ferry_session_close_cb on_close;
    void *on_close_ud;
    void *data;
    /* Backpressure (the socket layer's drain callbacks and spill, ferry_session_watch_drain):
     * called after a flush in which transports took from the queue. */
    ferry_session_drain_cb on_drain;
    void *on_drain_ud;
    ferry_timer drain_timer; /* more drain rounds after a flush that did DRAIN_ROUNDS */
};

/* The per-address limit on new sessions (rate_limit.c): token buckets by address, bounded. */
typedef struct ferry_rate_entry ferry_rate_entry;
typedef struct ferry_rate_limit {
    ferry_rate_entry **buckets; /* NULL until the first handshake while the limit is on */
    size_t nbuckets;            /* a power of two */
    size_t count;
    ferry_list lru; /* entries, least recently touched first */
    uint64_t seed;
    uint64_t evict_logged_ms;
} ferry_rate_limit;

struct ferry_engine {
    ferry_server *owner; /* the public object handed to callbacks (opaque here) */
    uv_loop_t *loop;
    const ferry_server_config *cfg; /* the server's copy, alive as long as the engine */
    /* Every transport's options (options.c), by ferry_transport_option_slot(). */
    uint64_t transport_options[FERRY_TRANSPORT_OPTIONS_MAX];
    ferry_wheel *wheel; /* the server's */
    uv_prepare_t flush_prepare;
    ferry_list dirty;
    ferry_session_table sessions;
    ferry_session_cb on_session;
    void *on_session_ud;
    /* Admission (admission.c): the hook, and the handshakes waiting for its decision. */
    ferry_admission_cb on_admission;
    void *on_admission_ud;
    ferry_list admissions;
    uint32_t nadmissions;
    ferry_rate_limit rate; /* new sessions per address (rate_limit.c) */
    ferry_transport_report_cb on_report; /* transport reports (docs/protocol.md section 9) */
    void *on_report_ud;
    ferry_engine_stats stats;
    ferry_engine_metrics metrics; /* by transport (engine.h) */
    ferry_qentry *qcache; /* free queue entries, linked through link.next */
    size_t qcached;
    /* A cluster node's signed sids and forwarding (sid.c). */
    struct {
        int on;
        uint8_t key[32];
        uint8_t tag[FERRY_SID_TAG_LEN];
        ferry_engine_forward_fn forward;
        void *forward_ud;
    } cluster;
    int closing;
    int handles_closing; /* the flush prepare is being closed */
};

/* ---- sessions (engine.c) */
/* The registry position of ops, for ferry_engine_metrics (FERRY_ENGINE_NO_TRANSPORT - 1 at
 * most; NULL ops: FERRY_ENGINE_NO_TRANSPORT). */
size_t ferry_engine_transport_index(const ferry_transport_ops *ops);
ferry_session *ferry_engine_lookup(ferry_engine *eng, const char *sid);
/* Open a session for an admitted handshake request (no sid) on transport ops. */
void ferry_engine_handshake(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req);
/* ---- signed sids (sid.c) */
/* A new signed sid into out (FERRY_SID_MAX + 1 bytes): 0, or -1 without randomness. */
int ferry_sid_mint(const ferry_engine *eng, char *out);
/* ---- the per-address new-session limit (rate_limit.c) */
void ferry_rate_limit_init(ferry_rate_limit *rl);
void ferry_rate_limit_free(ferry_rate_limit *rl);
/* Take a token for a handshake request: 0 when it may go on, else the seconds to wait before
 * the next one would be admitted (always 0 while cfg->new_session_rate is 0). */
uint32_t ferry_rate_limit_take(ferry_engine *eng, const ferry_req *req);
/* Addresses the table holds now. */
size_t ferry_rate_limit_count(const ferry_engine *eng);
/* ---- admission (admission.c) */
/* Ask the app about a handshake request, or hand it to ferry_engine_handshake() at once when
 * there is no hook. */
void ferry_admission_begin(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req);
/* The server closes: answer every waiting handshake 503 and detach the handles. */
void ferry_admission_cancel_all(ferry_engine *eng);
/* Close every session (server shutdown). */
void ferry_engine_close_all(ferry_engine *eng, ferry_reason reason);
void ferry_engine_flush_all(ferry_engine *eng);
int ferry_session_table_insert(ferry_session_table *t, ferry_session *s);
ferry_session *ferry_session_table_get(const ferry_session_table *t, const char *sid);
void ferry_session_table_remove(ferry_session_table *t, ferry_session *s);
void ferry_session_table_free(ferry_session_table *t);
/* ---- transport options (options.c) */
/* Fill values (FERRY_TRANSPORT_OPTIONS_MAX slots) with every transport option's first value:
 * its default, or the value of the ferry_server_config field it replaces. Returns 0, or
 * -FERRY_EINVAL when such a field is outside the option's range. */
int ferry_transport_options_init(uint64_t *values, const ferry_server_config *cfg);
/* Free the server's cache of queue entries (when the server is freed). */
void ferry_engine_drop_cache(ferry_engine *eng);

#endif
