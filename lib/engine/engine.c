/* Engine.IO v4 sessions: request validation and handshake, packets, the send queue and its
 * per-turn flush, heartbeats, the probe upgrade, and closing.
 *
 * A session is referenced by the table, by each of its transports, and by whoever is inside a
 * callback for it; it is freed when the last reference goes, never while a callback runs. */
#include "engine/internal.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/assert.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/wallclock.h"
#include <cjson/cJSON.h>

/* Queue entries are kept for reuse per server, so that queuing a packet does not call malloc
 * in steady state. */
#define QENTRY_CACHE_MAX 4096
/* Packets a replay buffer holds at most, besides its byte bound (entries cost memory too). */
#define SENT_MAX 65536
/* Transport reports taken per session per minute (docs/protocol.md "Reports"). */
#define REPORTS_PER_MINUTE 30
/* Backpressure: drain calls (and the flushes after them) per session per flush. */
#define DRAIN_ROUNDS 16
#define REPORT_MAX_BYTES 512

static ferry_qentry *qentry_alloc(ferry_engine *eng)
{
    ferry_qentry *e = eng->qcache;
    if (e != NULL) {
        eng->qcache = (ferry_qentry *)e->link.next;
        eng->qcached--;
    } else {
        e = ferry_mem_alloc(sizeof(*e));
        if (e == NULL)
            return NULL;
    }
    e->msgno = 0;
    e->seq = 0;
    e->key = NULL;
    e->flags = 0;
    return e;
}

static void qentry_free(ferry_engine *eng, ferry_qentry *e)
{
    if (e->key != NULL) {
        ferry_buf_release(e->key);
        e->key = NULL;
    }
    if (eng->qcached >= QENTRY_CACHE_MAX) {
        ferry_mem_free(e);
        return;
    }
    e->link.next = (ferry_list *)eng->qcache;
    eng->qcache = e;
    eng->qcached++;
}

void ferry_engine_drop_cache(ferry_engine *eng)
{
    while (eng->qcache != NULL) {
        ferry_qentry *e = eng->qcache;
        eng->qcache = (ferry_qentry *)e->link.next;
        ferry_mem_free(e);
    }
    eng->qcached = 0;
}

/* ------------------------------------------------------------------ references */

static void session_free(ferry_session *s)
{
    ferry_mem_free(s->hs);
    ferry_mem_free(s->history);
    ferry_mem_free(s);
}

void ferry_session_retain(ferry_session *s)
{
    ferry_life_hold(&s->life);
}

void ferry_session_release(ferry_session *s)
{
    if (ferry_life_drop(&s->life))
        session_free(s);
}

/* The session is closed: its own reference (the table's) goes. The caller holds one. */
static void session_closed(ferry_session *s)
{
    s->state = SESSION_CLOSED;
    int last = ferry_life_close(&s->life);
    FERRY_ASSERT(!last);
}

/* ------------------------------------------------------------------ queue and flush */

static void on_prepare(uv_prepare_t *h)
{
    ferry_engine_flush_all(h->data);
}

static void mark_dirty(ferry_session *s)
{
    ferry_engine *eng = s->engine;
    if (ferry_list_linked(&s->dirty))
        return;
    ferry_list_insert_tail(&eng->dirty, &s->dirty);
    /* One flush per loop turn, just before the loop blocks (Redis beforeSleep). */
    if (!eng->handles_closing)
        uv_prepare_start(&eng->flush_prepare, on_prepare);
}

static void drop_list(ferry_session *s, ferry_list *l)
{
    while (!ferry_list_empty(l)) {
        ferry_qentry *e = ferry_list_entry(l->next, ferry_qentry, link);
        ferry_list_remove(&e->link);
        ferry_buf_release(e->buf);
        qentry_free(s->engine, e);
    }
}

static void drop_queue(ferry_session *s)
{
    drop_list(s, &s->queue);
    drop_list(s, &s->sent);
    s->queued_bytes = 0;
    s->sent_bytes = 0;
    s->nsent = 0;
    s->cping = NULL;
}

/* An Engine.IO message (type 4, text or binary): the only packets the extensions number. */
static int is_message(const ferry_buf *b)
{
    return (b->flags & FERRY_BUF_BINARY) || (b->len > 0 && b->data[0] == '0' + EIO_MESSAGE);
}

/* ---- the replay buffer (extension sessions; docs/protocol.md "Replay buffer") */

/* Drop the oldest sent packet; a message remembers its number, so that a later resume or
 * attach that needs it is refused as a gap. */
static void sent_drop_oldest(ferry_session *s)
{
    ferry_qentry *e = ferry_list_entry(s->sent.next, ferry_qentry, link);
    ferry_list_remove(&e->link);
    if (e->msgno != 0) {
        s->drop_msg = e->msgno;
        s->drop_msg_seq = e->seq;
    }
    s->sent_bytes -= e->buf->len;
    s->nsent--;
    ferry_buf_release(e->buf);
    qentry_free(s->engine, e);
}

/* One bound for what a session pins: its queue and its replay buffer together stay within
 * max_session_queue_bytes (the queue alone going over closes the session, see
 * ferry_engine_queue); the replay buffer gives way first, oldest first. */
static void sent_bound(ferry_session *s)
{
    size_t max = s->engine->cfg->max_session_queue_bytes;
    while (s->nsent > 0 && (s->queued_bytes + s->sent_bytes > max || s->nsent > SENT_MAX)) {
        s->engine->stats.replay_dropped++;
        ferry_qentry *e = ferry_list_entry(s->sent.next, ferry_qentry, link);
        if (e->msgno != 0)
            s->gap_msg_seq = e->seq; /* a message the client may lack: a gap */
        sent_drop_oldest(s);
    }
}

/* The client has every message up to rx: drop them, and every other packet before the first
 * message it still lacks (a lost ping is sent again on resume or attach). */
static void sent_ack(ferry_session *s, uint64_t rx)
{
    while (!ferry_list_empty(&s->sent)) {
        ferry_qentry *e = ferry_list_entry(s->sent.next, ferry_qentry, link);
        if (e->msgno > rx)
            break;
        sent_drop_oldest(s);
    }
}

static int queue_packet_marked(ferry_session *s, ferry_buf *pkt, unsigned flags, ferry_buf *key)
{
    ferry_qentry *e = qentry_alloc(s->engine);
    if (e == NULL)
        return -FERRY_ENOMEM;
    e->buf = ferry_buf_retain(pkt);
    e->flags = flags;
    e->key = key != NULL ? ferry_buf_retain(key) : NULL;
    if (s->extensions && is_message(pkt))
        e->msgno = ++s->tx_msgs;
    ferry_list_insert_tail(&s->queue, &e->link);
    s->queued_bytes += pkt->len;
    if (s->nsent > 0)
        sent_bound(s);
    mark_dirty(s);
    return 0;
}

static int queue_packet(ferry_session *s, ferry_buf *pkt)
{
    return queue_packet_marked(s, pkt, 0, NULL);
}

void ferry_engine_overflow(ferry_session *s)
{
    if (s->overflowed || s->state != SESSION_OPEN)
        return;
    /* A slow consumer: close it rather than grow without bound (Redis
     * client-output-buffer-limit). The close happens at the next flush, not inside the
     * caller's send (closeClientOnOutputBufferLimitReached defers too): a caller outside any
     * callback keeps a valid pointer until it returns to the loop. */
    s->overflowed = 1;
    s->engine->stats.queue_overflows++;
    FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid,
              "send queue over its bound (%zu bytes queued): closing", s->queued_bytes);
    mark_dirty(s);
}

int ferry_engine_queue_marked(ferry_session *s, ferry_buf *pkt, unsigned flags, ferry_buf *key)
{
    if (s->state != SESSION_OPEN || s->overflowed)
        return -FERRY_ECLOSED;
    int rc = queue_packet_marked(s, pkt, flags, key);
    if (rc != 0)
        return rc;
    /* The send itself was accepted; the session closes at the next flush. */
    if (s->queued_bytes > s->engine->cfg->max_session_queue_bytes)
        ferry_engine_overflow(s);
    return 0;
}

int ferry_engine_queue(ferry_session *s, ferry_buf *pkt)
{
    return ferry_engine_queue_marked(s, pkt, 0, NULL);
}

/* Remove a queued entry no transport took. On an extension session the messages queued after
 * it are numbered one less, so that the client's positional count stays right (section 5). */
static void queue_remove(ferry_session *s, ferry_qentry *e)
{
    if (e->msgno != 0) {
        for (ferry_list *l = e->link.next; l != &s->queue; l = l->next) {
            ferry_qentry *n = ferry_list_entry(l, ferry_qentry, link);
            if (n->msgno != 0)
                n->msgno--;
        }
        s->tx_msgs--;
    }
    ferry_list_remove(&e->link);
    s->queued_bytes -= e->buf->len;
    ferry_buf_release(e->buf);
    qentry_free(s->engine, e);
}

size_t ferry_engine_shed_volatile(ferry_session *s)
{
    size_t freed = 0;
    ferry_list *l = s->queue.next;
    while (l != &s->queue) {
        ferry_qentry *e = ferry_list_entry(l, ferry_qentry, link);
        l = l->next;
        if (e->flags & FERRY_QUEUE_VOLATILE) {
            freed += e->buf->len;
            queue_remove(s, e);
        }
    }
    return freed;
}

int ferry_engine_drop_key(ferry_session *s, const ferry_buf *key, size_t max_scan)
{
    size_t n = 0;
    for (ferry_list *l = s->queue.prev; l != &s->queue && n < max_scan; l = l->prev, n++) {
        ferry_qentry *e = ferry_list_entry(l, ferry_qentry, link);
        if (e->key != NULL && e->key->len == key->len &&
            memcmp(e->key->data, key->data, key->len) == 0) {
            queue_remove(s, e);
            return 1;
        }
    }
    return 0;
}

/* More drain rounds are due (flush_session): a flush on the next loop turn. */
static void on_drain_timer(ferry_timer *tm)
{
    ferry_session *s = container_of(tm, ferry_session, drain_timer);
    if (s->state == SESSION_OPEN)
        mark_dirty(s);
}

void ferry_session_watch_drain(ferry_session *s, ferry_session_drain_cb cb, void *ud)
{
    s->on_drain = cb;
    s->on_drain_ud = ud;
    s->drained = 0;
}

static int queue_simple(ferry_session *s, int type, const char *data)
{
    ferry_buf *b = eio_packet_new(type, data, data ? strlen(data) : 0);
    if (b == NULL)
        return -FERRY_ENOMEM;
    int rc = queue_packet(s, b);
    ferry_buf_release(b);
    return rc;
}

/* Between "3probe" and "5", may t still take packets? A polling transport may, as the
 * reference server's does (its flush() ignores the upgrade): the client reads every poll's
 * answer whole before it sends "5" (Engine.IO's pause waits for the poll out), so nothing it
 * takes can come after what the new transport carries; and a client that gave the probe up
 * (its close lost on the way) gets its messages at its next poll instead of after the upgrade
 * timeout (docs/protocol.md 3.7). A stream or a WebSocket may not: the client
 * cannot tell whether more of it is still on its way when it sends "5". */
static int takes_while_upgrading(const ferry_transport *t)
{
    return !(t->ops->flags & (FERRY_TR_STREAMING | FERRY_TR_FULL_DUPLEX));
}

size_t ferry_engine_take(ferry_transport *t, ferry_buf **out, uint64_t *seqs, size_t max,
                         size_t max_bytes)
{
    ferry_session *s = t->session;
    if (t != s->transport || (s->upgrade == UPGRADE_UPGRADING && !takes_while_upgrading(t)))
        return 0;
    size_t n = 0, bytes = 0, nmsg = 0;
    while (n < max && !ferry_list_empty(&s->queue)) {
        ferry_qentry *e = ferry_list_entry(s->queue.next, ferry_qentry, link);
        if (n > 0 && bytes + e->buf->len > max_bytes)
            break;
        ferry_list_remove(&e->link);
        bytes += e->buf->len;
        s->queued_bytes -= e->buf->len;
        if (e->key != NULL) {
            ferry_buf_release(e->key);
            e->key = NULL;
        }
        if (is_message(e->buf)) {
            nmsg++;
            s->counters.messages_out++;
            /* The data: a text message's bytes after its type digit, a binary one whole. */
            s->counters.message_bytes_out +=
                e->buf->len - ((e->buf->flags & FERRY_BUF_BINARY) ? 0 : 1);
        }
        if (e == s->cping)
            s->cping = NULL;
        if (s->extensions) {
            /* Kept for replay until acknowledged; the caller gets a reference of its own. */
            e->seq = ++s->out_seq;
            if (e->msgno > s->tx_sent)
                s->tx_sent = e->msgno;
            if (seqs != NULL)
                seqs[n] = e->seq;
            out[n++] = ferry_buf_retain(e->buf);
            ferry_list_insert_tail(&s->sent, &e->link);
            s->sent_bytes += e->buf->len;
            s->nsent++;
        } else {
            if (seqs != NULL)
                seqs[n] = 0;
            out[n++] = e->buf; /* the entry's reference moves to the caller */
            qentry_free(s->engine, e);
        }
    }
    if (s->nsent > SENT_MAX)
        sent_bound(s);
    s->engine->stats.packets_out += n;
    s->counters.packets_out += n;
    ferry_engine_tmetrics *tm = &s->engine->metrics.t[ferry_engine_transport_index(t->ops)];
    tm->packets_out += n;
    tm->messages_out += nmsg;
    if (n > 0 && s->on_drain != NULL) {
        s->drained = 1;
        if (!s->flushing)
            mark_dirty(s); /* taken outside a flush: the drain call runs at the next one */
    }
    /* A graceful close ends once its close packet was taken: the next flush closes the
     * transport instead of waiting for the bound on the close (upgrade_timer). */
    if (s->state == SESSION_CLOSING && n > 0 && ferry_list_empty(&s->queue))
        mark_dirty(s);
    return n;
}

/* A server ping the client may never have seen (it went out on a transport that failed): ask
 * again, with a fresh deadline, since the client has just shown it is there. */
static void reping(ferry_session *s);
static void history_add(ferry_session *s, int kind, const ferry_transport_ops *from,
                        const ferry_transport_ops *to, unsigned reason);

int ferry_engine_resume(ferry_transport *t, uint64_t last)
{
    ferry_session *s = t->session;
    if (last > s->out_seq)
        return -FERRY_EINVAL;
    /* Only a message dropped by the bound is a gap: those a client ping acknowledged (maybe
     * received on another transport than this stream) the client has. */
    if (last < s->gap_msg_seq)
        return -FERRY_ELIMIT;
    while (!ferry_list_empty(&s->sent)) {
        ferry_qentry *e = ferry_list_entry(s->sent.next, ferry_qentry, link);
        if (e->seq > last)
            break;
        sent_drop_oldest(s);
    }
    reping(s);
    return 0;
}

int ferry_engine_replay(ferry_transport *t, int (*cb)(void *ud, ferry_buf *pkt, uint64_t seq),
                        void *ud)
{
    ferry_session *s = t->session;
    for (ferry_list *l = s->sent.next; l != &s->sent; l = l->next) {
        ferry_qentry *e = ferry_list_entry(l, ferry_qentry, link);
        int rc = cb(ud, e->buf, e->seq);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ferry_engine_upgrading(const ferry_transport *t)
{
    return t->session->upgrade == UPGRADE_UPGRADING;
}

int ferry_engine_extended(const ferry_transport *t)
{
    return t->session->extensions;
}

const ferry_server_config *ferry_engine_config(const ferry_transport *t)
{
    return t->session->engine->cfg;
}

const char *ferry_engine_sid(const ferry_transport *t)
{
    return t->session->sid;
}

static void flush_session(ferry_session *s)
{
    ferry_transport *t = s->transport;
    if (s->overflowed && s->state == SESSION_OPEN) {
        ferry_engine_close_session(s, FERRY_REASON_QUEUE_FULL, 0);
        return;
    }
    if (t == NULL)
        return; /* an extension session between transports */
    s->flushing = 1;
    t->ops->flush(t);
    s->flushing = 0;
    /* The socket layer's drain callbacks and spill catch-up may queue more: written in this
     * flush rather than after the loop's next wake-up (which may be a heartbeat away: a write
     * the kernel takes at once ends with no write callback to wake it). While the transport
     * keeps taking, a few rounds here; then the drain timer, which wakes the loop. */
    for (unsigned round = 0; s->drained && s->on_drain != NULL && s->state == SESSION_OPEN;
         round++) {
        if (round == DRAIN_ROUNDS) {
            ferry_timer_start(s->engine->wheel, &s->drain_timer, 0);
            break;
        }
        s->drained = 0;
        s->on_drain(s, s->on_drain_ud);
        if (!ferry_list_linked(&s->dirty) || s->state != SESSION_OPEN || s->transport == NULL ||
            s->overflowed)
            break;
        ferry_list_remove(&s->dirty);
        t = s->transport;
        s->flushing = 1;
        t->ops->flush(t);
        s->flushing = 0;
    }
    t = s->transport;
    if (t == NULL)
        return;
    /* A graceful close ends once everything, the close packet last, was handed over. */
    if (s->state == SESSION_CLOSING && ferry_list_empty(&s->queue) && s->transport == t)
        t->ops->close(t, s->close_reason);
}

void ferry_engine_flush_all(ferry_engine *eng)
{
    ferry_list local;
    ferry_list_move(&eng->dirty, &local);
    while (!ferry_list_empty(&local)) {
        ferry_session *s = ferry_list_entry(local.next, ferry_session, dirty);
        ferry_list_remove(&s->dirty);
        ferry_session_retain(s);
        flush_session(s);
        ferry_session_release(s);
    }
    if (ferry_list_empty(&eng->dirty))
        uv_prepare_stop(&eng->flush_prepare);
}

void ferry_engine_on_drain(ferry_transport *t)
{
    /* A drain call still due (the socket layer may queue more: spill, drain callbacks) also
     * wants a flush. */
    if (t == t->session->transport &&
        (!ferry_list_empty(&t->session->queue) || t->session->drained))
        mark_dirty(t->session);
}

/* ------------------------------------------------------------------ closing */

static void finalize(ferry_session *s, ferry_reason reason)
{
    ferry_engine *eng = s->engine;
    if (s->state == SESSION_CLOSED)
        return;
    ferry_session_retain(s); /* ours, for the calls out below */
    session_closed(s);
    ferry_timer_stop(eng->wheel, &s->heartbeat);
    ferry_timer_stop(eng->wheel, &s->upgrade_timer);
    ferry_timer_stop(eng->wheel, &s->drain_timer);
    ferry_list_remove(&s->dirty);
    ferry_session_table_remove(&eng->sessions, s);
    drop_queue(s);
    eng->stats.sessions_closed++;
    eng->metrics.closes[(size_t)reason < FERRY_ENGINE_REASONS ? (size_t)reason
                                                               : FERRY_ENGINE_REASONS - 1]++;
    if (s->probe != NULL) {
        ferry_transport *p = s->probe;
        s->probe = NULL;
        p->ops->close(p, reason);
    }
    if (s->announced) {
        /* One line per session end, with what an operator asks first: on which transport,
         * after how long, why, and what it cost. */
        const ferry_transport_ops *on = s->transport ? s->transport->ops : s->lost_ops;
        uint64_t now = ferry_wall_ms();
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid,
                  "closed on %s after %.1f s: %s (%llu bytes in, %llu out)",
                  on ? on->name : "none",
                  now > s->time_ms ? (double)(now - s->time_ms) / 1000.0 : 0.0,
                  ferry_reason_str(reason), (unsigned long long)s->counters.wire.bytes_in,
                  (unsigned long long)s->counters.wire.bytes_out);
    }
    if (s->announced && s->on_close != NULL)
        s->on_close(s, reason, s->on_close_ud);
    ferry_session_release(s); /* ours: frees s unless someone else still holds it */
}

void ferry_engine_close_session(ferry_session *s, ferry_reason reason, int graceful)
{
    if (s->state == SESSION_CLOSED)
        return;
    /* A graceful close sends the close packet first. When it cannot be queued (out of
     * memory) the session closes at once instead, rather than waiting for a packet that will
     * never go out (issue 9). */
    if (s->state == SESSION_OPEN && graceful && s->transport != NULL &&
        queue_simple(s, EIO_CLOSE, NULL) == 0) {
        s->state = SESSION_CLOSING;
        s->close_reason = reason;
        /* A polling client may never come back for the close packet: bound the wait. */
        ferry_timer_start(s->engine->wheel, &s->upgrade_timer, s->engine->cfg->ping_timeout_ms);
        ferry_timer_stop(s->engine->wheel, &s->heartbeat);
        return;
    }
    if (s->state == SESSION_OPEN)
        s->close_reason = reason;
    s->state = SESSION_CLOSING;
    ferry_session_retain(s);
    ferry_transport *t = s->transport;
    if (t != NULL)
        t->ops->close(t, s->close_reason); /* finalize comes through on_transport_closed */
    else
        finalize(s, s->close_reason);
    ferry_session_release(s);
}

void ferry_engine_on_transport_closed(ferry_transport *t, ferry_reason reason)
{
    ferry_session *s = t->session;
    if (t == s->probe) {
        s->probe = NULL;
        s->upgrade = UPGRADE_NONE;
        ferry_timer_stop(s->engine->wheel, &s->upgrade_timer);
        int timed_out = s->probe_timed_out;
        s->probe_timed_out = 0;
        if (s->state == SESSION_OPEN) {
            s->engine->stats.upgrade_failures++;
            size_t from = ferry_engine_transport_index(s->transport ? s->transport->ops : NULL);
            history_add(s, FERRY_TREV_PROBE_FAILED, s->transport ? s->transport->ops : NULL,
                        t->ops,
                        timed_out ? FERRY_PROBE_FAILED_TIMEOUT : FERRY_PROBE_FAILED_CLOSED);
            s->engine->metrics.t[from].probe_failures[ferry_engine_transport_index(t->ops)]
                                                     [timed_out
                                                          ? FERRY_PROBE_FAILED_TIMEOUT
                                                          : FERRY_PROBE_FAILED_CLOSED]++;
            FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "upgrade to %s failed", t->ops->name);
            mark_dirty(s); /* the old transport takes packets again */
        }
        return;
    }
    if (t != s->transport)
        return; /* a transport the session upgraded away from */
    s->transport = NULL;
    if (s->state == SESSION_CLOSED)
        return;
    if (s->state == SESSION_OPEN && s->extensions && t->lost) {
        /* The peer's connection went away (the engine closing a session sets CLOSING first).
         * An extension session waits for the client to attach again; the heartbeat decides
         * whether it ever does (docs/protocol.md "Losing a transport"). */
        FERRY_LOG(FERRY_LOG_DEBUG, "engine", s->sid, "%s lost (%s): waiting for an attach",
                  t->ops->name, ferry_reason_str(reason));
        s->lost_ops = t->ops;
        return;
    }
    s->lost_ops = t->ops; /* for the close line */
    finalize(s, s->state == SESSION_CLOSING ? s->close_reason : reason);
}

void ferry_engine_on_transport_lost(ferry_transport *t)
{
    ferry_session *s = t->session;
    if (s->extensions && s->state == SESSION_OPEN && t == s->transport)
        return; /* the client comes back with a new request or an attach */
    if (t == s->probe) {
        /* A POST of a probe (SSE's "2probe" or "5") cut under it: the probe fails, as when its
         * stream closes; the session goes on on its transport (it used to close). */
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "a request of the %s probe was cut",
                  t->ops->name);
        t->ops->close(t, FERRY_REASON_TRANSPORT_ERROR);
        return;
    }
    ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
}

void ferry_engine_close_all(ferry_engine *eng, ferry_reason reason)
{
    /* Closing removes sessions from the table: collect them first. */
    ferry_list all;
    ferry_list_init(&all);
    for (size_t i = 0; i < eng->sessions.nbuckets; i++)
        for (ferry_session *s = eng->sessions.buckets[i]; s; s = s->hash_next) {
            ferry_list_remove(&s->dirty);
            ferry_list_insert_tail(&all, &s->dirty);
            ferry_session_retain(s);
        }
    while (!ferry_list_empty(&all)) {
        ferry_session *s = ferry_list_entry(all.next, ferry_session, dirty);
        ferry_list_remove(&s->dirty);
        ferry_engine_close_session(s, reason, 0);
        ferry_session_release(s);
    }
}

/* ------------------------------------------------------------------ timers */

/* How long a client may take to answer a ping on its current transport: a client that
 * fetches at an interval sees the ping only at its next fetch. */
static uint64_t pong_wait(const ferry_session *s)
{
    uint64_t wait = s->engine->cfg->ping_timeout_ms;
    if (s->transport != NULL && (s->transport->ops->flags & FERRY_TR_POLLED))
        wait += s->engine->cfg->short_poll_interval_ms;
    return wait;
}

/* Queue a server ping ahead of every queued message (docs/reliability.md "Heartbeats behind a
 * backlog"): behind the engine's own packets at the head (the open packet, an attach's noop,
 * an earlier ping or a client ping's answer), never behind data a transport has not taken.
 * A client that reads slower than the app emits still gets each ping within one transport
 * write (a poll's answer begins with it), so its heartbeat measures the client, not the
 * backlog. Moving a ping changes no message's number nor any message's order. */
static int queue_ping(ferry_session *s)
{
    ferry_buf *b = eio_packet_new(EIO_PING, NULL, 0);
    ferry_qentry *e = b != NULL ? qentry_alloc(s->engine) : NULL;
    if (e == NULL) {
        ferry_buf_release(b);
        return -FERRY_ENOMEM;
    }
    e->buf = b; /* the entry's reference */
    ferry_list *at = s->queue.next;
    while (at != &s->queue && !is_message(ferry_list_entry(at, ferry_qentry, link)->buf))
        at = at->next;
    ferry_list_insert_tail(at, &e->link); /* before at */
    s->queued_bytes += b->len;
    if (s->nsent > 0)
        sent_bound(s);
    mark_dirty(s);
    return 0;
}

static void reping(ferry_session *s)
{
    ferry_engine *eng = s->engine;
    if (!s->awaiting_pong || s->state != SESSION_OPEN)
        return;
    queue_ping(s);
    uint64_t wait = pong_wait(s);
    s->pong_deadline = uv_now(eng->loop) + wait;
    s->ping_at = uv_now(eng->loop);
    ferry_timer_start(eng->wheel, &s->heartbeat, wait);
}

static void on_heartbeat(ferry_timer *tm)
{
    ferry_session *s = container_of(tm, ferry_session, heartbeat);
    ferry_engine *eng = s->engine;
    if (s->state != SESSION_OPEN)
        return;
    if (s->awaiting_pong) {
        eng->stats.ping_timeouts++;
        eng->metrics.t[ferry_engine_transport_index(s->transport ? s->transport->ops : NULL)]
            .ping_timeouts++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "ping timeout");
        ferry_engine_close_session(s, FERRY_REASON_PING_TIMEOUT, 0);
        return;
    }
    if (queue_ping(s) != 0) {
        /* Out of memory: a ping that never goes out would end in a ping timeout anyway;
         * close now, with the cause in the log (issue 9). */
        FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid, "cannot queue a ping (out of memory): closing");
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    s->awaiting_pong = 1;
    uint64_t deadline = pong_wait(s);
    s->pong_deadline = uv_now(eng->loop) + deadline;
    s->ping_at = uv_now(eng->loop);
    ferry_timer_start(eng->wheel, &s->heartbeat, deadline);
}

static void on_upgrade_timer(ferry_timer *tm)
{
    ferry_session *s = container_of(tm, ferry_session, upgrade_timer);
    if (s->state == SESSION_CLOSING) {
        /* The close packet was never fetched. */
        ferry_engine_close_session(s, s->close_reason, 0);
        return;
    }
    if (s->probe != NULL) {
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "upgrade timeout");
        ferry_transport *p = s->probe;
        s->probe_timed_out = 1;
        p->ops->close(p, FERRY_REASON_TRANSPORT_ERROR);
    }
}

/* ------------------------------------------------------------------ packets */

static void deliver_message(ferry_session *s, const char *data, size_t len, int binary)
{
    if (s->on_message == NULL)
        return;
    ferry_session_retain(s);
    s->on_message(s, data, len, binary, s->on_message_ud);
    ferry_session_release(s);
}

static int on_probe_packet(ferry_session *s, ferry_transport *t, int type, const char *data,
                           size_t len)
{
    if (type == EIO_PING && len == 5 && memcmp(data, "probe", 5) == 0) {
        ferry_buf *pong = eio_packet_new(EIO_PONG, "probe", 5);
        int rc = pong ? t->ops->send_now(t, pong) : -FERRY_ENOMEM;
        ferry_buf_release(pong);
        if (rc != 0) {
            /* No "3probe" (out of memory): the upgrade fails now, the probe is closed, and
             * the client falls back at once instead of waiting for its probe deadline with a
             * transport that will never answer (seen by tests/unit/transports/test_probe.c). */
            FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid, "probe answer: %s: closing the probe",
                      ferry_strerror(rc));
            if (s->probe == t)
                t->ops->close(t, FERRY_REASON_TRANSPORT_ERROR);
            return rc;
        }
        /* The old transport now takes nothing but a poll's answer (ferry_engine_take). */
        s->upgrade = UPGRADE_UPGRADING;
        s->upgrade_posts = 0;
        mark_dirty(s);
        return 0;
    }
    if (type == EIO_UPGRADE) {
        ferry_transport *old = s->transport;
        s->transport = t;
        s->probe = NULL;
        s->upgrade = UPGRADE_NONE;
        ferry_timer_stop(s->engine->wheel, &s->upgrade_timer);
        s->engine->stats.upgrades++;
        s->engine->metrics.t[ferry_engine_transport_index(old ? old->ops : s->lost_ops)]
            .moves[ferry_engine_transport_index(t->ops)][FERRY_MOVE_PROBE]++;
        history_add(s, FERRY_TREV_UPGRADE, old ? old->ops : s->lost_ops, t->ops, 0);
        s->lost_ops = NULL;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "upgraded %s -> %s",
                  old ? old->ops->name : "none", t->ops->name);
        if (old != NULL) /* NULL: an extension session lost it during the probe */
            old->ops->close(old, FERRY_REASON_TRANSPORT_CLOSE);
        mark_dirty(s); /* what was queued meanwhile goes out on the new transport, in order */
        return 0;
    }
    /* Anything else during a probe aborts the upgrade, as the reference server does. */
    t->ops->close(t, FERRY_REASON_TRANSPORT_ERROR);
    return 0;
}

/* Parse decimal digits (1..maxdigits) at p[0..len); returns 0 and *out or -1. */
static int parse_uint(const char *p, size_t len, size_t maxdigits, uint64_t *out)
{
    if (len == 0 || len > maxdigits)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* A client ping "c<id>:<rx>" (docs/protocol.md "Client pings"): answer "3c<id>:<srx>" in
 * order with the session's packets, and forget what the client has. At most one answer waits
 * unsent: a later ping rewrites it. Returns 0, or -FERRY_EPROTO after closing the session. */
static int client_ping(ferry_session *s, const char *data, size_t len)
{
    const char *colon = len > 1 ? memchr(data, ':', len) : NULL;
    uint64_t id, rx;
    if (colon == NULL || parse_uint(data + 1, (size_t)(colon - data - 1), 10, &id) != 0 ||
        parse_uint(colon + 1, len - (size_t)(colon + 1 - data), 19, &rx) != 0 ||
        rx > s->tx_sent) {
        s->engine->stats.parse_errors++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "malformed client ping: closing");
        ferry_engine_close_session(s, FERRY_REASON_PARSE_ERROR, 0);
        return -FERRY_EPROTO;
    }
    if (s->state != SESSION_OPEN)
        return 0;
    s->engine->stats.client_pings++;
    sent_ack(s, rx);
    char ans[48];
    int n = snprintf(ans, sizeof(ans), "c%llu:%llu", (unsigned long long)id,
                     (unsigned long long)s->rx_msgs);
    FERRY_ASSERT(n > 0 && (size_t)n < sizeof(ans));
    ferry_buf *b = eio_packet_new(EIO_PONG, ans, (size_t)n);
    if (b == NULL)
        return 0; /* no answer: the client pings again */
    if (s->cping != NULL) {
        s->queued_bytes -= s->cping->buf->len;
        ferry_buf_release(s->cping->buf);
        s->cping->buf = b;
        s->queued_bytes += b->len;
        mark_dirty(s);
        return 0;
    }
    if (queue_packet(s, b) == 0)
        s->cping = ferry_list_entry(s->queue.prev, ferry_qentry, link);
    ferry_buf_release(b);
    return 0;
}

/* The reasons ferry's client reports (docs/client.md "Reasons"), counted by name; any other
 * code is counted as "other", so that a client cannot grow the metrics. */
static const char *const report_reasons[] = {
    "start",       "forced",       "remembered",   "reconnect",     "network-online",
    "promoted",    "ws-refused",   "ws-mute",      "ws-closed",     "sse-refused",
    "sse-buffered", "sse-mute",    "poll-cut",     "poll-mute",     "poll-error",
    "post-error",  "probe-timeout", NULL};

const char *ferry_engine_report_reason(size_t i)
{
    for (size_t k = 0; report_reasons[k] != NULL && k < FERRY_ENGINE_REPORT_REASONS; k++)
        if (k == i)
            return report_reasons[k];
    return NULL;
}

static size_t report_reason_index(const char *r)
{
    for (size_t k = 0; report_reasons[k] != NULL && k < FERRY_ENGINE_REPORT_REASONS; k++)
        if (strcmp(report_reasons[k], r) == 0)
            return k;
    return FERRY_ENGINE_REPORT_REASONS;
}

static int report_reason_ok(const char *r)
{
    size_t n = strlen(r);
    if (n < 1 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return 0;
    return 1;
}

/* The registry's name for a reported transport (static), or NULL. */
static const char *report_transport(const cJSON *v, int allow_empty)
{
    if (!cJSON_IsString(v))
        return NULL;
    if (allow_empty && v->valuestring[0] == '\0')
        return "";
    const ferry_transport_ops *ops = ferry_transport_find(v->valuestring);
    return ops ? ops->name : NULL;
}

/* A transport report: a noop "6" whose data is a JSON object (docs/protocol.md "Reports").
 * Malformed reports and those over the rate are ignored (a DEBUG line and a counter). */
static void report(ferry_session *s, const char *data, size_t len)
{
    ferry_engine *eng = s->engine;
    uint64_t now = uv_now(eng->loop);
    if (s->reports == 0 || now - s->report_window >= 60000) {
        s->report_window = now;
        s->reports = 0;
    }
    if (s->reports >= REPORTS_PER_MINUTE) {
        eng->stats.reports_ignored++;
        FERRY_LOG(FERRY_LOG_DEBUG, "engine", s->sid, "transport report over the rate: ignored");
        return;
    }
    s->reports++;
    cJSON *j = len <= REPORT_MAX_BYTES ? cJSON_ParseWithLength(data, len) : NULL;
    const char *from = j ? report_transport(cJSON_GetObjectItemCaseSensitive(j, "from"), 1) : NULL;
    const char *to = j ? report_transport(cJSON_GetObjectItemCaseSensitive(j, "to"), 0) : NULL;
    const cJSON *reason = j ? cJSON_GetObjectItemCaseSensitive(j, "reason") : NULL;
    const cJSON *ms = j ? cJSON_GetObjectItemCaseSensitive(j, "ms") : NULL;
    int64_t msv = -1;
    int ok = cJSON_IsObject(j) && from != NULL && to != NULL && cJSON_IsString(reason) &&
             report_reason_ok(reason->valuestring);
    if (ok && ms != NULL) {
        /* An integer of milliseconds, at most a day. */
        ok = cJSON_IsNumber(ms) && ms->valuedouble >= 0 && ms->valuedouble <= 86400000.0 &&
             ms->valuedouble == (double)(int64_t)ms->valuedouble;
        msv = ok ? (int64_t)ms->valuedouble : -1;
    }
    if (!ok) {
        eng->stats.reports_ignored++;
        FERRY_LOG(FERRY_LOG_DEBUG, "engine", s->sid, "malformed transport report: ignored");
        cJSON_Delete(j);
        return;
    }
    eng->stats.reports++;
    size_t rr = report_reason_index(reason->valuestring);
    eng->metrics.t[ferry_engine_transport_index(from[0] ? ferry_transport_find(from) : NULL)]
        .reports[ferry_engine_transport_index(ferry_transport_find(to))][rr]++;
    history_add(s, FERRY_TREV_REPORT, from[0] ? ferry_transport_find(from) : NULL,
                ferry_transport_find(to), (unsigned)rr);
    char shortsid[9]; /* the log line names the session by its first 8 characters */
    memcpy(shortsid, s->sid, sizeof(shortsid) - 1);
    shortsid[sizeof(shortsid) - 1] = '\0';
    if (msv >= 0)
        FERRY_LOG(FERRY_LOG_INFO, "engine", shortsid, "transport %s -> %s: %s (%lld ms)",
                  from[0] ? from : "-", to, reason->valuestring, (long long)msv);
    else
        FERRY_LOG(FERRY_LOG_INFO, "engine", shortsid, "transport %s -> %s: %s",
                  from[0] ? from : "-", to, reason->valuestring);
    if (eng->on_report != NULL) {
        ferry_session_retain(s);
        eng->on_report(s, from, to, reason->valuestring, msv, eng->on_report_ud);
        ferry_session_release(s);
    }
    cJSON_Delete(j);
}

int ferry_engine_on_packet(ferry_transport *t, int type, const char *data, size_t len,
                           int binary)
{
    ferry_session *s = t->session;
    if (s->state == SESSION_CLOSED)
        return -FERRY_ECLOSED;
    s->engine->stats.packets_in++;
    s->counters.packets_in++;
    ferry_engine_tmetrics *tm = &s->engine->metrics.t[ferry_engine_transport_index(t->ops)];
    tm->packets_in++;
    if (type == EIO_MESSAGE) {
        tm->messages_in++;
        s->counters.messages_in++;
        s->counters.message_bytes_in += len;
    }
    if (t == s->probe)
        return on_probe_packet(s, t, type, data, len);
    if (t != s->transport)
        return 0; /* late packets of a transport the session left */
    switch (type) {
    case EIO_MESSAGE:
        s->rx_msgs++; /* counted positionally for the extensions' client pings */
        if (s->state == SESSION_OPEN)
            deliver_message(s, data, len, binary);
        return 0;
    case EIO_PONG:
        if (s->awaiting_pong && s->state == SESSION_OPEN) {
            s->awaiting_pong = 0;
            uint64_t rtt = uv_now(s->engine->loop) - s->ping_at;
            s->rtt_ms = rtt > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)rtt;
            ferry_timer_start(s->engine->wheel, &s->heartbeat, s->engine->cfg->ping_interval_ms);
        }
        return 0;
    case EIO_CLOSE:
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_CLOSE, 0);
        return -FERRY_ECLOSED;
    case EIO_PING:
        if (s->extensions && len > 0 && data[0] == 'c')
            return client_ping(s, data, len);
        /* v4: only the server pings ("invalid heartbeat direction"). */
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "ping from the client: closing");
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return -FERRY_EPROTO;
    case EIO_NOOP:
        if (s->extensions && len > 0 && s->state == SESSION_OPEN)
            report(s, data, len);
        return 0;
    default:
        return 0; /* open and upgrade from a client carry nothing */
    }
}

typedef struct payload_ctx {
    ferry_transport *t;
    uint64_t skip; /* messages at the head taken already (docs/protocol.md 5.3) */
    uint64_t lost; /* messages not taken: their transport is not the session's (an aborted probe) */
    int closed;
    int bad_text;
} payload_ctx;

static int on_payload_packet(void *ud, const eio_packet *pkt)
{
    payload_ctx *ctx = ud;
    /* A payload is UTF-8 text (binary travels as base64): a text packet that is not valid
     * UTF-8 is a parse error, as an invalid WebSocket text frame is (1007). The application
     * only ever sees valid text. */
    if (!pkt->binary && !ferry_utf8_valid(pkt->data, pkt->len)) {
        ctx->bad_text = 1;
        return 1;
    }
    if (ctx->skip > 0 && pkt->type == EIO_MESSAGE) {
        ctx->skip--;
        return 0;
    }
    if (pkt->type == EIO_MESSAGE && ctx->t != ctx->t->session->transport)
        ctx->lost++; /* on a probe it also aborts the upgrade */
    int rc = ferry_engine_on_packet(ctx->t, pkt->type, pkt->data, pkt->len, pkt->binary);
    if (rc != 0 || ctx->t->session->state != SESSION_OPEN) {
        ctx->closed = 1;
        return 1;
    }
    return 0;
}

int ferry_engine_on_payload(ferry_transport *t, char *data, size_t len)
{
    return ferry_engine_on_payload_skip(t, data, len, 0);
}

int ferry_engine_on_payload_skip(ferry_transport *t, char *data, size_t len, uint64_t skip)
{
    ferry_session *s = t->session;
    payload_ctx ctx = {t, skip, 0, 0, 0};
    eio_payload_decoder d;
    ferry_session_retain(s);
    eio_payload_decoder_init(&d, s->engine->cfg->max_payload, on_payload_packet, &ctx);
    int rc = eio_payload_feed(&d, data, len);
    if (rc == 0)
        rc = eio_payload_finish(&d);
    eio_payload_decoder_free(&d);
    if (rc != 0 && !ctx.closed) {
        s->engine->stats.parse_errors++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "undecodable payload: closing");
        ferry_engine_close_session(s, FERRY_REASON_PARSE_ERROR, 0);
        rc = -FERRY_EPROTO;
    } else if (ctx.closed) {
        rc = 0; /* the packets themselves closed the session (close packet): not an error */
    } else if (ctx.lost > 0 && s->extensions) {
        FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid,
                  "%llu messages of a POST not taken (not on the session's transport): "
                  "the client resends after an attach",
                  (unsigned long long)ctx.lost);
        rc = 1;
    }
    ferry_session_release(s);
    return rc;
}

/* ------------------------------------------------------------------ requests */

/* Append the strings of n pairs to the handshake block at *at. */
static void hs_put_pairs(char *hs, size_t *at, const ferry_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t ln = strlen(kv[i].name) + 1, lv = strlen(kv[i].value) + 1;
        memcpy(hs + *at, kv[i].name, ln);
        memcpy(hs + *at + ln, kv[i].value, lv);
        *at += ln + lv;
    }
}

static size_t hs_pairs_len(const ferry_kv *kv, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(kv[i].name) + strlen(kv[i].value) + 2;
    return len;
}

/* Keep what the application may read of the handshake request (ferry_session_url, _query,
 * _header, _remote_addr) and the POST token in one block (struct ferry_session.hs). */
static int hs_keep(ferry_session *s, const ferry_req *req, const char *token)
{
    char addr[48];
    ferry_req_remote_addr(req, addr, sizeof(addr));
    const char *url = req->url != NULL ? req->url : "";
    size_t lu = strlen(url) + 1, la = strlen(addr) + 1, lt = strlen(token) + 1;
    size_t lq = hs_pairs_len(req->query, req->nquery);
    size_t total = lu + la + lt + lq + hs_pairs_len(req->headers, req->nheaders);
    if (total > UINT32_MAX || req->nquery > UINT32_MAX || req->nheaders > UINT32_MAX)
        return -FERRY_ETOOBIG;
    char *hs = ferry_mem_alloc(total);
    if (hs == NULL)
        return -FERRY_ENOMEM;
    memcpy(hs, url, lu);
    memcpy(hs + lu, addr, la);
    memcpy(hs + lu + la, token, lt);
    size_t at = lu + la + lt;
    hs_put_pairs(hs, &at, req->query, req->nquery);
    hs_put_pairs(hs, &at, req->headers, req->nheaders);
    s->hs = hs;
    s->hs_addr = (uint32_t)lu;
    s->hs_token = (uint32_t)(lu + la);
    s->hs_query = (uint32_t)(lu + la + lt);
    s->hs_headers = (uint32_t)(lu + la + lt + lq);
    s->nquery = (uint32_t)req->nquery;
    s->nheaders = (uint32_t)req->nheaders;
    return 0;
}

/* The i-th of n pairs packed from p: its name (value in *value), or NULL past the last. */
static const char *hs_at(const char *p, uint32_t n, size_t i, const char **value)
{
    if (i >= n) {
        if (value != NULL)
            *value = NULL;
        return NULL;
    }
    for (; i > 0; i--) {
        p += strlen(p) + 1;
        p += strlen(p) + 1;
    }
    if (value != NULL)
        *value = p + strlen(p) + 1;
    return p;
}

/* The value of the first of n pairs packed from p named name, or NULL. */
static const char *hs_find(const char *p, uint32_t n, const char *name, int nocase)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *v = p + strlen(p) + 1;
        if ((nocase ? strcasecmp(p, name) : strcmp(p, name)) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

static ferry_session *session_new(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req)
{
    ferry_session *s = ferry_mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->engine = eng;
    ferry_life_init(&s->life); /* its own: the table's */
    s->state = SESSION_OPEN;
    ferry_list_init(&s->queue);
    ferry_list_init(&s->sent);
    ferry_list_init(&s->dirty);
    ferry_timer_init(&s->heartbeat, on_heartbeat);
    s->rtt_ms = UINT32_MAX;
    ferry_timer_init(&s->upgrade_timer, on_upgrade_timer);
    ferry_timer_init(&s->drain_timer, on_drain_timer);
    uint8_t raw[16];
    if (eng->cluster.on) {
        /* A cluster node's sid names it, signed (sid.c). */
        if (ferry_sid_mint(eng, s->sid) != 0) {
            ferry_mem_free(s);
            return NULL;
        }
    } else {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            ferry_mem_free(s);
            return NULL;
        }
        s->sid[ferry_base64url_encode(s->sid, raw, sizeof(raw))] = '\0';
    }
    s->time_ms = ferry_wall_ms();
    char token[FERRY_SID_LEN + 1] = "";
    /* The POST token (docs/protocol.md section 12): 128 random bits of its own. */
    if (eng->cfg->require_post_token && RAND_bytes(raw, sizeof(raw)) == 1)
        token[ferry_base64url_encode(token, raw, sizeof(raw))] = '\0';
    if ((eng->cfg->require_post_token && token[0] == '\0') || hs_keep(s, req, token) != 0) {
        s->state = SESSION_CLOSED;
        if (ferry_life_close(&s->life)) /* nobody else holds it yet: the last reference */
            session_free(s);
        return NULL;
    }
    s->secure = ferry_req_is_tls(req);
    const char *ext = ferry_req_query_get(req, "ferry");
    /* Opening on an extension transport is asking for the extensions too. */
    s->extensions = (ext != NULL && strcmp(ext, "1") == 0) || (ops->flags & FERRY_TR_EXTENSION);
    return s;
}

/* A POST of session s carries its token in X-Ferry-Post-Token, when the server asks for one
 * (require_post_token): compared in constant time. */
static int post_token_ok(const ferry_session *s, const ferry_req *req)
{
    if (!s->engine->cfg->require_post_token || strcmp(req->method, "POST") != 0)
        return 1;
    const char *got = ferry_req_header_get(req, "X-Ferry-Post-Token");
    return got != NULL && strlen(got) == FERRY_SID_LEN &&
           CRYPTO_memcmp(got, s->hs + s->hs_token, FERRY_SID_LEN) == 0;
}

static int transport_enabled(const ferry_engine *eng, const ferry_transport_ops *ops)
{
    return (eng->cfg->transports & ferry_transport_ops_bit(ops)) != 0;
}

/* The position of ops in the server's order of preference (the registry's order). */
static size_t rank(const ferry_transport_ops *ops)
{
    size_t i = 0;
    while (ferry_transports[i] != NULL && ferry_transports[i] != ops)
        i++;
    return i;
}

size_t ferry_engine_transport_index(const ferry_transport_ops *ops)
{
    if (ops == NULL)
        return FERRY_ENGINE_NO_TRANSPORT;
    size_t i = rank(ops);
    return i < FERRY_ENGINE_NO_TRANSPORT ? i : FERRY_ENGINE_NO_TRANSPORT - 1;
}

/* Record a transport event in the session's history ring. */
static void history_add(ferry_session *s, int kind, const ferry_transport_ops *from,
                        const ferry_transport_ops *to, unsigned reason)
{
    uint64_t now = ferry_wall_ms();
    if (s->nhistory >= 1 && s->history == NULL) {
        s->history = ferry_mem_alloc(FERRY_TR_HISTORY * sizeof(*s->history));
        if (s->history == NULL)
            return; /* diagnostics only: the event is not kept */
        s->history[0] = s->history0;
    }
    ferry_tr_event *e =
        s->history != NULL ? &s->history[s->nhistory % FERRY_TR_HISTORY] : &s->history0;
    uint64_t at = now > s->time_ms ? now - s->time_ms : 0;
    e->at_ms = at > UINT32_MAX ? UINT32_MAX : (uint32_t)at;
    e->kind = (uint8_t)kind;
    e->from = (uint8_t)ferry_engine_transport_index(from);
    e->to = (uint8_t)ferry_engine_transport_index(to);
    e->reason = (uint8_t)reason;
    s->nhistory++;
}

const char *ferry_engine_transport_label(size_t i)
{
    if (i == FERRY_ENGINE_NO_TRANSPORT)
        return "none";
    for (size_t k = 0; ferry_transports[k] != NULL; k++)
        if (k == i)
            return ferry_transports[k]->name;
    return NULL;
}


/* Is a better than b in the server's order? */
static int better(const ferry_transport_ops *a, const ferry_transport_ops *b)
{
    return rank(a) < rank(b);
}

/* The open packet's JSON: exactly the five keys of the specification, unless the client asked
 * for ferry's extensions (docs/protocol.md). */
static ferry_buf *open_packet(ferry_session *s)
{
    ferry_engine *eng = s->engine;
    /* The sid, the transport names and five numbers: far below 512 bytes; a longer one (a new
     * key added without growing this) fails the handshake with 503 instead of being cut. */
    char json[512];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, json, sizeof(json));
    ferry_strbuf_printf(&sb, "{\"sid\":\"%s\",\"upgrades\":[", s->sid);
    const ferry_transport_ops *cur = s->transport->ops;
    int first = 1;
    if (eng->cfg->allow_upgrades && ((cur->flags & FERRY_TR_UPGRADABLE) || s->extensions)) {
        for (size_t i = 0; ferry_transports[i] != NULL; i++) {
            const ferry_transport_ops *o = ferry_transports[i];
            if (!(o->flags & FERRY_TR_PROBE_TARGET) || !transport_enabled(eng, o))
                continue;
            if (s->extensions && !better(o, cur))
                continue; /* the extensions' promotion: only up the server's order */
            if ((o->flags & FERRY_TR_EXTENSION) && !s->extensions)
                continue;
            ferry_strbuf_printf(&sb, "%s\"%s\"", first ? "" : ",", o->name);
            first = 0;
        }
    }
    ferry_strbuf_printf(&sb, "],\"pingInterval\":%u,\"pingTimeout\":%u,\"maxPayload\":%zu",
                        eng->cfg->ping_interval_ms, eng->cfg->ping_timeout_ms,
                        eng->cfg->max_payload);
    if (s->extensions)
        ferry_strbuf_printf(&sb,
                            ",\"shortPollInterval\":%u,\"ext\":[\"resume\",\"ping\",\"report\",\"tabs\"]",
                            eng->cfg->short_poll_interval_ms);
    if (eng->cfg->require_post_token)
        ferry_strbuf_printf(&sb, ",\"postToken\":\"%s\"", s->hs + s->hs_token);
    ferry_strbuf_puts(&sb, "}");
    if (ferry_strbuf_error(&sb) != 0)
        return NULL;
    return eio_packet_new(EIO_OPEN, json, sb.len);
}

static void reject(ferry_engine *eng, ferry_req *req, int code)
{
    eng->stats.bad_requests++;
    if (code >= 0 && code < 6)
        eng->stats.rejected_code[code]++;
    /* Not the URL: its query may hold a live session's id (logged only shortened, through the
     * sid argument) and whatever bytes a client chose. */
    FERRY_LOG(FERRY_LOG_INFO, "engine", NULL, "bad request %s: code %d", req->method, code);
    ferry_req_respond_error(req, code);
}

/* Over the per-address new-session rate (rate_limit.c): 429 with Retry-After, a fixed body in
 * the engine's error shape. Official clients treat it as any failed handshake and reconnect
 * with their backoff. */
static void rate_limited(ferry_engine *eng, ferry_req *req)
{
    static const char body[] = "{\"code\":4,\"message\":\"Too many new sessions\"}";
    eng->stats.rate_limited++;
    FERRY_LOG(FERRY_LOG_DEBUG, "engine", NULL, "new session over the per-address rate: 429");
    ferry_slice sl = {.base = body, .len = sizeof(body) - 1, .ref = NULL};
    ferry_req_respond(req, 429, "application/json", "Retry-After: 1\r\n", &sl, 1);
}

static void handshake(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req)
{
    ferry_session *s = session_new(eng, ops, req);
    ferry_transport *t = s ? ops->create(s) : NULL;
    if (t == NULL) {
        if (s != NULL) {
            s->state = SESSION_CLOSED;
            if (ferry_life_close(&s->life)) /* the last reference: nobody else has it */
                session_free(s);
        }
        eng->stats.unavailable++;
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    s->transport = t;
    ferry_session_retain(s); /* ours, for the callbacks below */
    ferry_req_set_meter(req, &s->counters.wire);
    int code = ops->open(t, req);
    if (code != 0) {
        s->transport = NULL;
        ferry_req_set_meter(req, NULL); /* the session goes before the answer */
        reject(eng, req, code);
        ops->destroy(t);
        session_closed(s); /* never inserted (a refused WebSocket) */
        ferry_session_release(s); /* ours */
        return;
    }
    /* A session missing from the table could never be found by its sid: its client would
     * hold an id that every later request gets "Session ID unknown" for. */
    int inserted = ferry_session_table_insert(&eng->sessions, s) == 0;
    eng->stats.sessions_opened++;
    eng->metrics.t[ferry_engine_transport_index(ops)].handshakes++;
    history_add(s, FERRY_TREV_OPEN, NULL, ops, 0);
    ferry_buf *open = inserted ? open_packet(s) : NULL;
    if (open == NULL || queue_packet(s, open) != 0) {
        FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid, "handshake: out of memory");
        ferry_buf_release(open);
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        ferry_session_release(s);
        return;
    }
    ferry_buf_release(open);
    ferry_timer_start(eng->wheel, &s->heartbeat, eng->cfg->ping_interval_ms);
    FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "open on %s from %s%s", ops->name,
              s->hs + s->hs_addr, s->extensions ? " (ferry's client)" : "");
    s->announced = 1;
    if (eng->on_session != NULL)
        eng->on_session(s, eng->on_session_ud);
    ferry_session_release(s);
}

static void probe(ferry_engine *eng, ferry_session *s, const ferry_transport_ops *ops,
                  ferry_req *req)
{
    ferry_transport *t = ops->create(s);
    if (t == NULL) {
        eng->stats.unavailable++;
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    s->probe = t;
    s->upgrade = UPGRADE_PROBING;
    int code = ops->open(t, req);
    if (code != 0) {
        s->probe = NULL;
        s->upgrade = UPGRADE_NONE;
        reject(eng, req, code);
        ops->destroy(t);
        return;
    }
    ferry_timer_start(eng->wheel, &s->upgrade_timer, eng->cfg->upgrade_timeout_ms);
}

/* Attach (docs/protocol.md "Attach"): the session moves to a new transport opened by req,
 * without a probe; the old one is closed without closing the session; every message after
 * rx goes out again, first, in order. */
/* The client has every message up to rx and lacks the later ones it was sent: forget the
 * former, put the latter back at the head of the queue in order, and drop the other packets
 * sent after them (a lost ping is asked again by the caller). Returns the messages requeued. */
static size_t requeue_unacked(ferry_session *s, uint64_t rx)
{
    sent_ack(s, rx);
    size_t replayed = 0;
    while (!ferry_list_empty(&s->sent)) {
        ferry_qentry *e = ferry_list_entry(s->sent.prev, ferry_qentry, link);
        ferry_list_remove(&e->link);
        s->sent_bytes -= e->buf->len;
        s->nsent--;
        if (e->msgno == 0) {
            ferry_buf_release(e->buf);
            qentry_free(s->engine, e);
            continue;
        }
        ferry_list_insert_head(&s->queue, &e->link);
        s->queued_bytes += e->buf->len;
        replayed++;
    }
    return replayed;
}

int ferry_engine_poll_got(ferry_transport *t, const ferry_req *req)
{
    ferry_session *s = t->session;
    const char *gs = ferry_req_query_get(req, "got");
    if (gs == NULL || !s->extensions || t != s->transport || s->state != SESSION_OPEN)
        return 0;
    uint64_t got;
    if (parse_uint(gs, strlen(gs), 19, &got) != 0 || got > s->tx_sent) {
        s->engine->stats.parse_errors++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "poll with a bad got= (sent %llu): closing",
                  (unsigned long long)s->tx_sent);
        ferry_engine_close_session(s, FERRY_REASON_PARSE_ERROR, 0);
        return -FERRY_EPROTO;
    }
    if (got == s->tx_sent) {
        sent_ack(s, got); /* every answer arrived */
        return 0;
    }
    /* An earlier answer never reached the client, though its connection looked whole to us
     * (a browser retries a request whose answer was lost: this is that retry). */
    if (got < s->drop_msg) {
        s->engine->stats.attach_refused++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid,
                  "poll lost messages no longer held (got %llu, held from %llu): closing",
                  (unsigned long long)got, (unsigned long long)s->drop_msg + 1);
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return -FERRY_ELIMIT;
    }
    size_t again = requeue_unacked(s, got);
    FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "a poll's answer was lost (got %llu, sent %llu): %zu again",
              (unsigned long long)got, (unsigned long long)s->tx_sent, again);
    reping(s);
    mark_dirty(s);
    return 0;
}

/* Does a polling payload hold a message ("4..." or a binary "b...")? Read, not decoded. */
static int payload_has_message(const char *d, size_t len)
{
    for (size_t i = 0; i < len;) {
        if (d[i] == '0' + EIO_MESSAGE || d[i] == 'b')
            return 1;
        const char *sep = memchr(d + i, 0x1e, len - i);
        if (sep == NULL)
            break;
        i = (size_t)(sep - d) + 1;
    }
    return 0;
}

int ferry_engine_post_taken(ferry_transport *t, const ferry_req *req, uint64_t *skip)
{
    ferry_session *s = t->session;
    const char *txs = ferry_req_query_get(req, "tx");
    uint64_t tx;
    *skip = 0;
    if (txs == NULL || !s->extensions || parse_uint(txs, strlen(txs), 19, &tx) != 0 ||
        tx == s->rx_msgs)
        return 0;
    if (tx > s->rx_msgs) {
        /* Messages before this body's were never taken (their POST was lost, or answered
         * while its packets were not taken): taking these would number them as those. */
        if (!payload_has_message(req->body.base, req->body.len))
            return 0;
        s->engine->stats.bad_requests++;
        FERRY_LOG(FERRY_LOG_WARN, "engine", s->sid,
                  "a POST after a gap (tx %llu, taken %llu): refused, "
                  "the client resends after an attach",
                  (unsigned long long)tx, (unsigned long long)s->rx_msgs);
        return -FERRY_ELIMIT;
    }
    FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid,
              "a POST taken already came again (tx %llu, taken %llu): not taken twice",
              (unsigned long long)tx, (unsigned long long)s->rx_msgs);
    *skip = s->rx_msgs - tx;
    return 0;
}

static void attach(ferry_engine *eng, ferry_session *s, const ferry_transport_ops *ops,
                   ferry_req *req, const char *rxs)
{
    uint64_t rx;
    if (parse_uint(rxs, strlen(rxs), 19, &rx) != 0 || rx > s->tx_sent || rx < s->drop_msg ||
        s->state != SESSION_OPEN) {
        /* Garbage, more than was sent, or messages after rx no longer held: the session
         * cannot go on whole. The client starts a new one. */
        eng->stats.attach_refused++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid,
                  "attach on %s refused (rx %s, sent %llu, held from %llu): closing", ops->name,
                  rxs, (unsigned long long)s->tx_sent, (unsigned long long)s->drop_msg + 1);
        reject(eng, req, 3);
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    if (s->probe != NULL) {
        ferry_transport *p = s->probe; /* an upgrade in progress is abandoned */
        p->ops->close(p, FERRY_REASON_TRANSPORT_CLOSE);
    }
    if (s->state != SESSION_OPEN) {
        reject(eng, req, 1);
        return;
    }
    ferry_transport *t = ops->create(s);
    if (t == NULL) {
        eng->stats.unavailable++;
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ferry_transport *old = s->transport;
    /* The new transport is the session's before it answers, so that it takes from the
     * queue; the old one still is if the request is refused. */
    s->transport = t;
    int code = ops->open(t, req);
    if (code != 0) {
        s->transport = old;
        reject(eng, req, code);
        ops->destroy(t);
        return;
    }
    /* Forget what the client has; what it lacks goes back to the head of the queue, in
     * order, and other packets sent on the old transport are dropped (pings are asked
     * again below). */
    size_t replayed = requeue_unacked(s, rx);
    /* A noop first: it ends a poll at once, so that every transport tells the client the
     * attach took before it sends on the new one. */
    ferry_buf *noop = eio_packet_new(EIO_NOOP, NULL, 0);
    ferry_qentry *ne = noop ? qentry_alloc(eng) : NULL;
    if (ne != NULL) {
        ne->buf = ferry_buf_retain(noop);
        ferry_list_insert_head(&s->queue, &ne->link);
        s->queued_bytes += noop->len;
    }
    ferry_buf_release(noop);
    s->upgrade = UPGRADE_NONE;
    eng->stats.attaches++;
    eng->metrics.t[ferry_engine_transport_index(old ? old->ops : s->lost_ops)]
        .moves[ferry_engine_transport_index(ops)][FERRY_MOVE_ATTACH]++;
    history_add(s, FERRY_TREV_ATTACH, old ? old->ops : s->lost_ops, ops, 0);
    s->lost_ops = NULL;
    FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "attached %s -> %s at rx %llu (%zu again)",
              old ? old->ops->name : "none", ops->name, (unsigned long long)rx, replayed);
    if (old != NULL)
        old->ops->close(old, FERRY_REASON_TRANSPORT_CLOSE);
    if (s->state == SESSION_OPEN && s->transport == t) {
        reping(s);
        mark_dirty(s);
    }
}

static int pong_overdue(const ferry_session *s)
{
    return s->state == SESSION_OPEN && s->awaiting_pong &&
           uv_now(s->engine->loop) >= s->pong_deadline;
}

/* Which check fails first follows the reference server's verify(): transport, origin, then
 * the sid or, for a handshake, the method and the protocol version. */
static int validate(ferry_engine *eng, ferry_req *req, const ferry_transport_ops **ops_out,
                    ferry_session **s_out)
{
    const char *tname = ferry_req_query_get(req, "transport");
    const ferry_transport_ops *ops = tname ? ferry_transport_find(tname) : NULL;
    if (ops == NULL || !transport_enabled(eng, ops))
        return 0;
    if (!ferry_req_origin_allowed(req))
        return 4;
    *ops_out = ops;
    const char *sid = ferry_req_query_get(req, "sid");
    char named[FERRY_SID_MAX + 1];
    if (sid == NULL && ops->request_sid != NULL && ops->request_sid(req, named))
        sid = named;
    if (sid != NULL) {
        ferry_session *s = ferry_engine_lookup(eng, sid);
        if (s == NULL)
            return 1;
        if (pong_overdue(s)) {
            /* The wheel fires a little late at times; a request must not slip a pong in
             * after its deadline. The session is gone as if the timer had fired. */
            eng->stats.ping_timeouts++;
            eng->metrics
                .t[ferry_engine_transport_index(s->transport ? s->transport->ops : NULL)]
                .ping_timeouts++;
            FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "ping timeout (seen on a request)");
            ferry_engine_close_session(s, FERRY_REASON_PING_TIMEOUT, 0);
            return 1;
        }
        *s_out = s;
        return -1;
    }
    if (strcmp(req->method, "GET") != 0)
        return 2;
    const char *eio = ferry_req_query_get(req, "EIO");
    if (eio == NULL || strcmp(eio, "4") != 0)
        return 5;
    return -1;
}

/* A request for a session this node does not hold: another node's, signed with the
 * cluster's key, not forwarded already? Then the forwarder takes it (0). */
static int forward(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req)
{
    if (!eng->cluster.on || eng->cluster.forward == NULL || ops == NULL ||
        ferry_req_header_get(req, "x-ferry-forwarded") != NULL)
        return -1;
    const char *sid = ferry_req_query_get(req, "sid");
    char named[FERRY_SID_MAX + 1];
    if (sid == NULL && ops->request_sid != NULL && ops->request_sid(req, named))
        sid = named;
    uint8_t tag[FERRY_SID_TAG_LEN];
    if (!ferry_engine_sid_tag(eng, sid, tag) ||
        memcmp(tag, eng->cluster.tag, FERRY_SID_TAG_LEN) == 0 ||
        ferry_engine_lookup(eng, sid) != NULL)
        return -1; /* forged, or this node's own (gone) */
    return eng->cluster.forward(req, tag, eng->cluster.forward_ud);
}

/* A POST's head for t. While the session waits for "5", a stream transport (SSE) takes nothing
 * (ferry_engine_take), and its client, paused, sends no POST on it: one may still come that it
 * sent before it saw "3probe", but a second one means it gave the probe up (its close lost on
 * the way). The probe is dropped then, and the stream takes the session's packets again at
 * once rather than at the upgrade timeout (a poll needs no such rule: it takes them anyway). */
static void upgrade_post(ferry_session *s, ferry_transport *t, const ferry_req *req)
{
    if (t != s->transport || s->upgrade != UPGRADE_UPGRADING || s->probe == NULL ||
        takes_while_upgrading(t) || strcmp(req->method, "POST") != 0)
        return;
    if (++s->upgrade_posts < 2)
        return;
    FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid,
              "POSTs on %s go on while the upgrade to %s waits for 5: the probe was given up",
              t->ops->name, s->probe->ops->name);
    ferry_transport *p = s->probe;
    ferry_session_retain(s);
    p->ops->close(p, FERRY_REASON_TRANSPORT_CLOSE);
    ferry_session_release(s);
}

void ferry_engine_on_request_head(ferry_req *req, void *ud)
{
    ferry_engine *eng = ud;
    const ferry_transport_ops *ops = NULL;
    ferry_session *s = NULL;
    if (eng->closing || validate(eng, req, &ops, &s) >= 0 || s == NULL || !post_token_ok(s, req))
        return; /* a forged POST never reaches the transport: it cannot close the session */
    ferry_transport *t = s->transport;
    if (t != NULL && t->ops != ops)
        t = s->probe;
    if (t != NULL && t->ops == ops)
        upgrade_post(s, t, req);
    if (t != NULL && t->ops == ops && ops->on_request_head != NULL && s->state != SESSION_CLOSED)
        ops->on_request_head(t, req);
}

void ferry_engine_on_request(ferry_req *req, void *ud)
{
    ferry_engine *eng = ud;
    const ferry_transport_ops *ops = NULL;
    ferry_session *s = NULL;
    if (eng->closing) {
        eng->stats.unavailable++;
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    int code = validate(eng, req, &ops, &s);
    if (ops != NULL) /* counted by the transport it names, whatever the answer */
        ferry_req_set_total(req, &eng->metrics.t[ferry_engine_transport_index(ops)].wire);
    if (code == 1 && forward(eng, ops, req) == 0)
        return; /* another node's session: the forwarder answers */
    if (code >= 0) {
        reject(eng, req, code);
        return;
    }
    if (s == NULL) {
        if (ferry_rate_limit_take(eng, req) != 0) {
            rate_limited(eng, req);
            return;
        }
        ferry_admission_begin(eng, ops, req); /* then ferry_engine_handshake() */
        return;
    }
    if (!post_token_ok(s, req)) {
        /* Without the session's token (a cross-site form, a forged request): refused, and the
         * session goes on untouched. */
        static const char body[] = "{\"code\":4,\"message\":\"Bad post token\"}";
        eng->stats.bad_requests++;
        FERRY_LOG(FERRY_LOG_INFO, "engine", s->sid, "POST without its session's token: 403");
        ferry_req_respond_text(req, 403, "application/json", body, sizeof(body) - 1);
        return;
    }
    /* Counted as the session's when answered or taken: whoever holds the request from here
     * on (a transport) holds the session too. */
    ferry_req_set_meter(req, &s->counters.wire);
    ferry_transport *cur = s->transport;
    if (s->state == SESSION_CLOSED || (cur == NULL && !s->extensions)) {
        reject(eng, req, 1);
        return;
    }
    /* The extensions' attach: a GET with rx=, on any transport, the current kind too. */
    const char *rxs = ferry_req_query_get(req, "rx");
    if (rxs != NULL && ops->resumes != NULL && ops->resumes(req)) {
        /* A request that resumes its transport by itself (a browser's EventSource
         * reconnecting to its URL, rx= and all, with Last-Event-ID) is no attach. */
        rxs = NULL;
    }
    if (rxs != NULL && s->extensions && strcmp(req->method, "GET") == 0) {
        ferry_session_retain(s);
        attach(eng, s, ops, req, rxs);
        ferry_session_release(s);
        return;
    }
    if (cur == NULL) {
        reject(eng, req, 3); /* between transports: only an attach goes on */
        return;
    }
    /* A request for the current transport, or for the one being probed (a second WebSocket:
     * 101, then closed, as the reference; the probe's POSTs on a half-duplex transport). */
    ferry_transport *to = cur->ops == ops                             ? cur
                          : s->probe != NULL && s->probe->ops == ops ? s->probe
                                                                      : NULL;
    if (to != NULL) {
        ferry_session_retain(s);
        ops->on_request(to, req);
        ferry_session_release(s);
        return;
    }
    /* Another transport for a live session: only a probe from an upgradable one, or on an
     * extension session from any one to a better one (promotion). */
    if (eng->cfg->allow_upgrades && (ops->flags & FERRY_TR_PROBE_TARGET) &&
        ((cur->ops->flags & FERRY_TR_UPGRADABLE) || (s->extensions && better(ops, cur->ops))) &&
        (!s->extensions || better(ops, cur->ops)) && s->probe == NULL && s->state == SESSION_OPEN &&
        strcmp(req->method, "GET") == 0 && (!(ops->flags & FERRY_TR_EXTENSION) || s->extensions)) {
        ferry_session_retain(s);
        probe(eng, s, ops, req);
        ferry_session_release(s);
        return;
    }
    reject(eng, req, 3);
}

void ferry_engine_handshake(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req)
{
    handshake(eng, ops, req);
}

ferry_session *ferry_engine_lookup(ferry_engine *eng, const char *sid)
{
    return ferry_session_table_get(&eng->sessions, sid);
}

/* ------------------------------------------------------------------ public API */

void ferry_session_on_message(ferry_session *s, ferry_message_cb cb, void *user_data)
{
    s->on_message = cb;
    s->on_message_ud = user_data;
}

void ferry_session_on_close(ferry_session *s, ferry_session_close_cb cb, void *user_data)
{
    s->on_close = cb;
    s->on_close_ud = user_data;
}

int ferry_session_send(ferry_session *s, const void *data, size_t len, int binary)
{
    if (s->state != SESSION_OPEN || s->overflowed)
        return -FERRY_ECLOSED;
    if (len > s->engine->cfg->max_payload)
        return -FERRY_ETOOBIG;
    if (!binary && !ferry_utf8_valid(data, len))
        return -FERRY_EUTF8;
    ferry_buf *b = binary ? eio_binary_new(data, len) : eio_packet_new(EIO_MESSAGE, data, len);
    if (b == NULL)
        return -FERRY_ENOMEM;
    int rc = ferry_engine_queue(s, b);
    ferry_buf_release(b);
    return rc;
}

void ferry_session_close(ferry_session *s)
{
    if (s->state == SESSION_OPEN)
        ferry_engine_close_session(s, FERRY_REASON_FORCED_CLOSE, 1);
}

const char *ferry_session_id(const ferry_session *s)
{
    return s->sid;
}

const char *ferry_session_transport(const ferry_session *s)
{
    return s->transport ? s->transport->ops->name : "closed";
}

const char *ferry_session_query(const ferry_session *s, const char *name)
{
    /* Case-sensitive, as URLSearchParams and the reference server's req._query are. */
    return hs_find(s->hs + s->hs_query, s->nquery, name, 0);
}

const char *ferry_session_header(const ferry_session *s, const char *name)
{
    return hs_find(s->hs + s->hs_headers, s->nheaders, name, 1);
}

const char *ferry_session_query_at(const ferry_session *s, size_t i, const char **value)
{
    return hs_at(s->hs + s->hs_query, s->nquery, i, value);
}

const char *ferry_session_header_at(const ferry_session *s, size_t i, const char **value)
{
    return hs_at(s->hs + s->hs_headers, s->nheaders, i, value);
}

const char *ferry_session_url(const ferry_session *s)
{
    return s->hs;
}

uint64_t ferry_session_time(const ferry_session *s)
{
    return s->time_ms;
}

const char *ferry_session_remote_addr(const ferry_session *s)
{
    return s->hs + s->hs_addr;
}

int ferry_session_secure(const ferry_session *s)
{
    return s->secure;
}

void ferry_session_set_data(ferry_session *s, void *data)
{
    s->data = data;
}

void *ferry_session_get_data(const ferry_session *s)
{
    return s->data;
}

uint64_t ferry_session_counter(const ferry_session *s, ferry_counter which)
{
    const ferry_session_counters *c = &s->counters;
    switch (which) {
    case FERRY_COUNTER_BYTES_IN:
        return c->wire.bytes_in;
    case FERRY_COUNTER_BYTES_OUT:
        return c->wire.bytes_out;
    case FERRY_COUNTER_REQUESTS:
        return c->wire.requests;
    case FERRY_COUNTER_PACKETS_IN:
        return c->packets_in;
    case FERRY_COUNTER_PACKETS_OUT:
        return c->packets_out;
    case FERRY_COUNTER_MESSAGES_IN:
        return c->messages_in;
    case FERRY_COUNTER_MESSAGES_OUT:
        return c->messages_out;
    case FERRY_COUNTER_MESSAGE_BYTES_IN:
        return c->message_bytes_in;
    case FERRY_COUNTER_MESSAGE_BYTES_OUT:
        return c->message_bytes_out;
    case FERRY_COUNTERS:
        break;
    }
    return 0;
}

const char *ferry_counter_name(ferry_counter which)
{
    static const char *const names[FERRY_COUNTERS] = {
        [FERRY_COUNTER_BYTES_IN] = "bytes_in",
        [FERRY_COUNTER_BYTES_OUT] = "bytes_out",
        [FERRY_COUNTER_REQUESTS] = "requests",
        [FERRY_COUNTER_PACKETS_IN] = "packets_in",
        [FERRY_COUNTER_PACKETS_OUT] = "packets_out",
        [FERRY_COUNTER_MESSAGES_IN] = "messages_in",
        [FERRY_COUNTER_MESSAGES_OUT] = "messages_out",
        [FERRY_COUNTER_MESSAGE_BYTES_IN] = "message_bytes_in",
        [FERRY_COUNTER_MESSAGE_BYTES_OUT] = "message_bytes_out",
    };
    return (unsigned)which < FERRY_COUNTERS ? names[which] : NULL;
}

ferry_server *ferry_session_server(const ferry_session *s)
{
    return s->engine->owner;
}

/* ------------------------------------------------------------------ called by the root */

int ferry_engine_new(uv_loop_t *loop, const ferry_server_config *cfg, ferry_wheel *wheel,
                     ferry_server *owner, ferry_engine **out)
{
    ferry_engine *eng = ferry_mem_calloc(1, sizeof(*eng));
    if (eng == NULL)
        return -FERRY_ENOMEM;
    eng->owner = owner;
    eng->loop = loop;
    eng->cfg = cfg;
    if (ferry_transport_options_init(eng->transport_options, cfg) != 0) {
        ferry_mem_free(eng);
        return -FERRY_EINVAL; /* ferry_engine_check_config() said no first */
    }
    eng->wheel = wheel;
    ferry_list_init(&eng->dirty);
    ferry_list_init(&eng->admissions);
    ferry_rate_limit_init(&eng->rate);
    uv_prepare_init(loop, &eng->flush_prepare);
    eng->flush_prepare.data = eng;
    *out = eng;
    return 0;
}

void ferry_engine_shutdown(ferry_engine *eng, ferry_reason reason)
{
    eng->closing = 1;
    ferry_admission_cancel_all(eng);
    ferry_engine_close_all(eng, reason);
}

void ferry_engine_close_handles(ferry_engine *eng, uv_close_cb cb, void *data)
{
    uv_prepare_stop(&eng->flush_prepare);
    eng->handles_closing = 1;
    eng->flush_prepare.data = data;
    uv_close((uv_handle_t *)&eng->flush_prepare, cb);
}

void ferry_engine_free(ferry_engine *eng)
{
    ferry_session_table_free(&eng->sessions);
    ferry_rate_limit_free(&eng->rate);
    ferry_engine_drop_cache(eng);
    ferry_mem_free(eng);
}

void ferry_engine_on_session(ferry_engine *eng, ferry_session_cb cb, void *user_data)
{
    eng->on_session = cb;
    eng->on_session_ud = user_data;
}

ferry_session_cb ferry_engine_session_hook(const ferry_engine *eng)
{
    return eng->on_session;
}

void ferry_engine_on_report(ferry_engine *eng, ferry_transport_report_cb cb, void *user_data)
{
    eng->on_report = cb;
    eng->on_report_ud = user_data;
}

const ferry_engine_metrics *ferry_engine_get_metrics(const ferry_engine *eng)
{
    return &eng->metrics;
}

void ferry_engine_get_gauges(const ferry_engine *eng, ferry_engine_gauges *g)
{
    memset(g, 0, sizeof(*g));
    for (size_t i = 0; i < eng->sessions.nbuckets; i++)
        for (const ferry_session *s = eng->sessions.buckets[i]; s; s = s->hash_next) {
            g->sessions[ferry_engine_transport_index(s->transport ? s->transport->ops : NULL)]++;
            g->upgrading += s->probe != NULL;
            g->queued_bytes += s->queued_bytes;
            g->replay_bytes += s->sent_bytes;
            g->extensions += s->extensions != 0;
        }
}

const ferry_engine_stats *ferry_engine_get_stats(const ferry_engine *eng)
{
    return &eng->stats;
}

size_t ferry_engine_session_count(const ferry_engine *eng)
{
    return eng->sessions.count;
}

/* ------------------------------------------------------------------ read by upper layers */

uv_loop_t *ferry_engine_loop(const ferry_engine *eng)
{
    return eng->loop;
}

ferry_wheel *ferry_engine_wheel(const ferry_engine *eng)
{
    return eng->wheel;
}

const ferry_server_config *ferry_engine_server_config(const ferry_engine *eng)
{
    return eng->cfg;
}

ferry_engine *ferry_session_engine(const ferry_session *s)
{
    return s->engine;
}

size_t ferry_session_queued_bytes(const ferry_session *s)
{
    return s->queued_bytes;
}

int ferry_session_upgrading(const ferry_session *s)
{
    return s->upgrade != UPGRADE_NONE;
}

int ferry_session_is_open(const ferry_session *s)
{
    return s->state == SESSION_OPEN;
}

int ferry_session_extensions(const ferry_session *s)
{
    return s->extensions;
}

void ferry_engine_count_parse_error(ferry_session *s)
{
    s->engine->stats.parse_errors++;
}

/* ------------------------------------------------------------------ read by transports */

ferry_wheel *ferry_engine_wheel_of(const ferry_transport *t)
{
    return t->session->engine->wheel;
}

int ferry_engine_is_current(const ferry_transport *t)
{
    return t->session->transport == t;
}

int ferry_engine_left_behind(const ferry_transport *t)
{
    const ferry_session *s = t->session;
    return s->transport != NULL && s->transport != t && s->probe != t;
}

int64_t ferry_session_rtt_ms(const ferry_session *s)
{
    return s->rtt_ms == UINT32_MAX ? -1 : (int64_t)s->rtt_ms;
}

size_t ferry_session_transport_history(const ferry_session *s, ferry_transport_event *out,
                                       size_t max)
{
    static const char *const kinds[] = {"open", "upgrade", "attach", "probe-failed", "report"};
    static const char *const fails[] = {"timeout", "closed"};
    uint32_t n = s->nhistory < FERRY_TR_HISTORY ? s->nhistory : FERRY_TR_HISTORY;
    size_t k = 0;
    for (uint32_t i = s->nhistory - n; i < s->nhistory && k < max; i++) {
        const ferry_tr_event *e =
            s->history != NULL ? &s->history[i % FERRY_TR_HISTORY] : &s->history0;
        const char *from = ferry_engine_transport_label(e->from);
        const char *to = ferry_engine_transport_label(e->to);
        const char *reason = "";
        if (e->kind == FERRY_TREV_REPORT) {
            reason = ferry_engine_report_reason(e->reason);
            reason = reason ? reason : "other";
        } else if (e->kind == FERRY_TREV_PROBE_FAILED) {
            reason = fails[e->reason < 2 ? e->reason : 1];
        } else if (e->kind == FERRY_TREV_UPGRADE) {
            reason = "probe";
        }
        out[k].time_ms = s->time_ms + e->at_ms;
        out[k].kind = kinds[e->kind < 5 ? e->kind : 0];
        out[k].from = from ? from : "none";
        out[k].to = to ? to : "none";
        out[k].reason = reason;
        k++;
    }
    return k;
}
