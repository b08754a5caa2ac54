/* The engine as the layers above it see it: the composition root (lib/server) creates and
 * closes it, the Socket.IO layer (lib/socket) reads and drives sessions through it. Nothing
 * here exposes the engine's structs (they are in engine/internal.h, private to lib/engine);
 * transports use engine/transport.h instead.
 *
 * The engine owns the session table, the queues and their per-turn flush, the heartbeats and
 * the admissions. It does not own the loop, the timer wheel, the HTTP layer or the
 * configuration: the server passes them in and outlives the engine's use of them. */
#ifndef FERRY_ENGINE_ENGINE_H
#define FERRY_ENGINE_ENGINE_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/timerwheel.h"
#include "http/http.h"
#include "ferry.h"

typedef struct ferry_engine ferry_engine;

/* Engine counters (ferry_engine_get_stats), read by tests and test servers; nothing serves
 * them yet (metrics: issue 19). */
typedef struct ferry_engine_stats {
    uint64_t sessions_opened;
    uint64_t sessions_closed;
    uint64_t upgrades;
    uint64_t upgrade_failures;
    uint64_t ping_timeouts;
    uint64_t parse_errors;
    uint64_t bad_requests;   /* answered with an Engine.IO error code */
    uint64_t rate_limited;   /* handshakes answered 429 (new_session_rate) */
    uint64_t queue_overflows;
    uint64_t packets_in;
    uint64_t packets_out;
    /* ferry's extensions (docs/protocol.md sections 5-9) */
    uint64_t client_pings;     /* "2c<id>:<rx>" answered */
    uint64_t attaches;         /* sessions moved by an attach (rx=) */
    uint64_t attach_refused;   /* attaches answered 400 (gap, rx beyond what was sent) */
    uint64_t reports;          /* transport reports passed to the app */
    uint64_t reports_ignored;  /* malformed or over the rate */
    uint64_t replay_dropped;   /* packets dropped from replay buffers by the byte bound */
    /* admission (admission.c) */
    uint64_t admission_refused;  /* the hook refused: 403 */
    uint64_t admission_timeouts; /* no decision within admission_timeout_ms: 403 */
    uint64_t admission_busy;     /* over max_pending_admissions: 503 */
    uint64_t unavailable;        /* requests answered 503: no memory, or shutting down */
    uint64_t rejected_code[6];   /* bad_requests by Engine.IO error code (0..5) */
} ferry_engine_stats;

/* ---- server-wide counters by transport, for the metrics (lib/server/metrics.c)
 *
 * Indexed by the transport's position in the registry (ferry_engine_transport_index()); slot
 * FERRY_ENGINE_NO_TRANSPORT stands for "none": a session between transports, or the first
 * choice of a client report. Counted where the events happen, read at scrape time. */
#define FERRY_ENGINE_TRANSPORTS 8 /* the registry has 4; more fold into the last slot */
#define FERRY_ENGINE_NO_TRANSPORT (FERRY_ENGINE_TRANSPORTS - 1)
#define FERRY_ENGINE_REASONS 16       /* ferry_reason values counted apart; more fold in */
#define FERRY_ENGINE_REPORT_REASONS 24 /* client report reasons known by name (+ "other") */

enum {
    FERRY_MOVE_PROBE = 0, /* Engine.IO's upgrade: probe, then "5" */
    FERRY_MOVE_ATTACH,    /* ferry's attach (docs/protocol.md 6.2): a new transport, no probe */
    FERRY_MOVES
};

enum {
    FERRY_PROBE_FAILED_TIMEOUT = 0, /* no "5" within upgrade_timeout_ms */
    FERRY_PROBE_FAILED_CLOSED,      /* the probe transport closed or failed */
    FERRY_PROBE_FAILS
};

typedef struct ferry_engine_tmetrics {
    /* Every request that named this transport (transport=...), and every byte of a
     * connection it took; the HTTP heads apart (lib/http counts). */
    ferry_wire_meter wire;
    uint64_t handshakes; /* sessions opened on it */
    uint64_t packets_in, packets_out;
    uint64_t messages_in, messages_out;
    uint64_t ping_timeouts; /* sessions that timed out on it (slot "none": between transports) */
    /* Sessions that moved from this transport to [to], by FERRY_MOVE_*. */
    uint64_t moves[FERRY_ENGINE_TRANSPORTS][FERRY_MOVES];
    /* Probes from this transport to [to] that failed, by FERRY_PROBE_FAILED_*. */
    uint64_t probe_failures[FERRY_ENGINE_TRANSPORTS][FERRY_PROBE_FAILS];
    /* Client reports from this transport ("none": the first choice) to [to], by reason
     * (ferry_engine_report_reason(); the last slot is every other reason). */
    uint64_t reports[FERRY_ENGINE_TRANSPORTS][FERRY_ENGINE_REPORT_REASONS + 1];
} ferry_engine_tmetrics;

typedef struct ferry_engine_metrics {
    ferry_engine_tmetrics t[FERRY_ENGINE_TRANSPORTS];
    uint64_t closes[FERRY_ENGINE_REASONS]; /* sessions closed, by ferry_reason */
} ferry_engine_metrics;

/* What is open now, counted by walking the session table (at scrape time). */
typedef struct ferry_engine_gauges {
    uint64_t sessions[FERRY_ENGINE_TRANSPORTS]; /* open sessions by current transport */
    uint64_t upgrading;                         /* of which a probe is out */
    uint64_t queued_bytes;                      /* queued, not yet taken by a transport */
    uint64_t replay_bytes;                      /* taken, kept until acknowledged */
    uint64_t extensions;                        /* sessions of ferry's client (ferry=1) */
} ferry_engine_gauges;

/* The name of the transport at index i, "none" for FERRY_ENGINE_NO_TRANSPORT, NULL past the
 * registry. */
const char *ferry_engine_transport_label(size_t i);
/* The client report reason named at index i (NULL past the known ones). */
const char *ferry_engine_report_reason(size_t i);
const ferry_engine_metrics *ferry_engine_get_metrics(const ferry_engine *eng);
void ferry_engine_get_gauges(const ferry_engine *eng, ferry_engine_gauges *out);

/* ---- the composition root's calls (lib/server) */

/* Are the transport options that cfg's old fields set (sse_*, ws_*) in their ranges?
 * 0 or -FERRY_EINVAL. */
int ferry_engine_check_config(const ferry_server_config *cfg);
/* A new engine on loop, for a cfg that passed ferry_engine_check_config(). cfg and wheel are
 * the server's and must outlive the engine; owner is the public object handed to the
 * application's callbacks (ferry_session_server(), ...). Returns 0, -FERRY_ENOMEM. */
int ferry_engine_new(uv_loop_t *loop, const ferry_server_config *cfg, ferry_wheel *wheel,
                     ferry_server *owner, ferry_engine **out);
/* Transport options (options.c). */
/* Is value valid for transport's option? 0, -FERRY_ENOTFOUND (no such transport or option) or
 * -FERRY_EINVAL (out of range). */
int ferry_engine_option_check(const char *transport, const char *option, uint64_t value);
/* Set or read an option of eng's transports; the same errors. */
int ferry_engine_option_set(ferry_engine *eng, const char *transport, const char *option,
                            uint64_t value);
int ferry_engine_option_get(const ferry_engine *eng, const char *transport, const char *option,
                            uint64_t *value);
/* The engine route (GET/POST/upgrade on cfg->path); ud is the engine. */
void ferry_engine_on_request(ferry_req *req, void *ud);
void ferry_engine_on_request_head(ferry_req *req, void *ud);
/* Cluster nodes (sid.c, docs/scaling.md "Forwarding"): from now on the engine mints signed
 * sids naming this node by tag (a node's random tag, published with its address), with key
 * (HMAC-SHA256, the cluster's). A request whose sid is not held here but is signed by key for
 * another tag, and that no node forwarded already (X-Ferry-Forwarded), goes to fn once it is
 * complete: fn returns 0 when it took the request (it answers it or takes its connection),
 * else the engine answers "Session ID unknown" as for any unknown sid. key and tag are
 * copied. 0 or -FERRY_EINVAL. */
#define FERRY_SID_TAG_LEN 6
typedef int (*ferry_engine_forward_fn)(ferry_req *req, const uint8_t tag[FERRY_SID_TAG_LEN],
                                       void *ud);
int ferry_engine_set_cluster(ferry_engine *eng, const uint8_t key[32],
                             const uint8_t tag[FERRY_SID_TAG_LEN], ferry_engine_forward_fn fn,
                             void *ud);
/* Forward nothing any more (the forwarder closes); sids stay signed. */
void ferry_engine_clear_forward(ferry_engine *eng);
/* Is sid signed by the cluster's key? Then 1 with its node's tag in tag, else 0. */
int ferry_engine_sid_tag(const ferry_engine *eng, const char *sid, uint8_t tag[FERRY_SID_TAG_LEN]);
/* The server closes: take no more requests, answer waiting handshakes 503, close every
 * session with reason. */
void ferry_engine_shutdown(ferry_engine *eng, ferry_reason reason);
/* Close the engine's loop handles (one: the flush prepare); cb runs with the handle's data set
 * to data. Call after the HTTP layer closed. */
void ferry_engine_close_handles(ferry_engine *eng, uv_close_cb cb, void *data);
/* Free the engine once its handles are closed. */
void ferry_engine_free(ferry_engine *eng);
/* The hooks (ferry.h: ferry_server_on_session, _on_admission, _on_transport_report).
 * ferry_engine_on_admission returns -FERRY_ECLOSED once the engine shuts down. */
void ferry_engine_on_session(ferry_engine *eng, ferry_session_cb cb, void *user_data);
ferry_session_cb ferry_engine_session_hook(const ferry_engine *eng);
int ferry_engine_on_admission(ferry_engine *eng, ferry_admission_cb cb, void *user_data);
void ferry_engine_on_report(ferry_engine *eng, ferry_transport_report_cb cb, void *user_data);
const ferry_engine_stats *ferry_engine_get_stats(const ferry_engine *eng);
/* Sessions open now. */
size_t ferry_engine_session_count(const ferry_engine *eng);

/* ---- what the layers above read */
uv_loop_t *ferry_engine_loop(const ferry_engine *eng);
ferry_wheel *ferry_engine_wheel(const ferry_engine *eng);
const ferry_server_config *ferry_engine_server_config(const ferry_engine *eng);
ferry_engine *ferry_session_engine(const ferry_session *s);
/* Bytes queued for the session and not yet taken by a transport. */
size_t ferry_session_queued_bytes(const ferry_session *s);
/* A probe or an upgrade is in progress. */
int ferry_session_upgrading(const ferry_session *s);
/* The session is open (not closing or closed). */
int ferry_session_is_open(const ferry_session *s);
/* The client asked for ferry's extensions (docs/protocol.md section 1). */
int ferry_session_extensions(const ferry_session *s);

/* ---- what they do */

/* Queue an encoded packet (the queue takes its own reference) and schedule a flush. Returns 0,
 * -FERRY_ECLOSED, or 0 after closing the session when its queue overflowed. */
int ferry_engine_queue(ferry_session *s, ferry_buf *pkt);
/* ---- backpressure (the socket layer's policies, lib/socket/backpressure.c) */
#define FERRY_QUEUE_VOLATILE 1u /* a packet ferry_engine_shed_volatile() may remove */
/* Queue pkt as ferry_engine_queue() does, marked: flags (FERRY_QUEUE_VOLATILE) and key (a
 * keyed packet for ferry_engine_drop_key(); the queue takes a reference; NULL for none). */
int ferry_engine_queue_marked(ferry_session *s, ferry_buf *pkt, unsigned flags, ferry_buf *key);
/* Remove from the queue every volatile packet no transport has taken yet; returns the bytes
 * freed. Never touches unmarked packets (control packets are never marked). */
size_t ferry_engine_shed_volatile(ferry_session *s);
/* Remove the newest queued (not yet taken) packet whose key has the same bytes as key, looking
 * at most max_scan entries back from the newest; returns 1 when one was removed, else 0. */
int ferry_engine_drop_key(ferry_session *s, const ferry_buf *key, size_t max_scan);
/* Close the session as a slow consumer (FERRY_REASON_QUEUE_FULL) at the next flush, never
 * inside the caller's send. */
void ferry_engine_overflow(ferry_session *s);
/* cb(s, ud) runs after a flush in which a transport took packets from the session's queue
 * (so ferry_session_queued_bytes() went down), on the loop, never inside a queue call; cb
 * NULL stops it. One watcher per session (the socket layer's). */
typedef void (*ferry_session_drain_cb)(ferry_session *s, void *ud);
void ferry_session_watch_drain(ferry_session *s, ferry_session_drain_cb cb, void *ud);
/* Close with reason: graceful sends queued packets and a close packet first. */
void ferry_engine_close_session(ferry_session *s, ferry_reason reason, int graceful);
/* Count a packet that did not parse (the caller closes the session as it sees fit). */
void ferry_engine_count_parse_error(ferry_session *s);
/* The session's reference count: the table, each transport, each in-flight callback, the
 * socket layer. */
void ferry_session_retain(ferry_session *s);
void ferry_session_release(ferry_session *s);

#endif
