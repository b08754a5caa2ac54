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
} ferry_engine_stats;

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
/* Close with reason: graceful sends queued packets and a close packet first. */
void ferry_engine_close_session(ferry_session *s, ferry_reason reason, int graceful);
/* Count a packet that did not parse (the caller closes the session as it sees fit). */
void ferry_engine_count_parse_error(ferry_session *s);
/* The session's reference count: the table, each transport, each in-flight callback, the
 * socket layer. */
void ferry_session_retain(ferry_session *s);
void ferry_session_release(ferry_session *s);

#endif
