/* Server-Sent Events downstream, POST upstream: ferry's extension (docs/protocol.md).
 *
 * A GET with Accept: text/event-stream takes its connection and keeps it as one long
 * text/event-stream response (closed-delimited). Each engine packet is one event:
 *     id: <n>\ndata: <form>\n\n
 * where form is the packet's polling text form ("4hello", "b<base64>" for binary), or, when
 * that form holds CR, LF or NUL (which an EventSource would rewrite), "x" + base64 of it.
 * Upstream is a POST with a polling payload, exactly as polling (transports/upstream.c).
 *
 * Event ids are the engine's downstream packet numbers ("<sid>:<n>" on a stream opened without
 * a sid: a browser's EventSource reconnects to its first URL, and its Last-Event-ID must name
 * the session, see request_sid). Sent packets stay in the engine's replay buffer (one per
 * session, for every transport, bounded with the queue by max_session_queue_bytes) until a
 * later stream's Last-Event-ID or a client ping says they arrived: a client whose stream
 * broke, or was recycled after sse_recycle_bytes, reconnects with the last id it saw and gets
 * the rest. While no stream is attached, packets wait in the engine's queue and the heartbeat
 * decides whether the client is still there.
 *
 * Lifetime, by the one rule (common/life.h): the transport's own reference goes when the engine
 * is told it closed; an attached stream holds one until it ends; every op, stream callback and
 * timer holds one while it runs. The last drop frees the transport. Closing a stream ourselves
 * clears its handler first, so a conn never calls back into a freed transport. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "common/base64.h"
#include "common/life.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "engine/transport.h"
#include "transports/upstream.h"

/* Packets per write; the bytes held: FERRY_TRANSPORT_WRITE_HIGH_WATER (transport.h). A resumed
 * stream's replay is written whole: it is bounded by max_session_queue_bytes with the queue. */
#define MAX_BATCH 64
#define ID_LINE_MAX 64 /* "id: " + sid + ":" + 20 digits + "\ndata: " */

extern const ferry_transport_ops ferry_sse_ops;

typedef struct sse {
    ferry_transport super;
    ferry_conn *conn;    /* the attached stream; NULL between streams */
    ferry_upstream up;
    ferry_timer keepalive;
    size_t stream_bytes; /* written on the current stream, for recycling */
    /* Closed once ferry_engine_on_transport_closed was called; references: the stream, and
     * whoever is inside one of our functions. */
    ferry_life life;
    unsigned sent_close : 1; /* the last packet written was a close packet */
    unsigned qualified : 1;  /* the stream's URL has no sid: ids are "<sid>:<n>" */
} sse;

static void report_closed(sse *e, ferry_reason reason);
static void on_keepalive(ferry_timer *tm);

static void sse_free(sse *e)
{
    ferry_session *s = e->super.session;
    ferry_timer_stop(ferry_engine_wheel_of(&e->super), &e->keepalive);
    ferry_mem_free(e);
    ferry_session_release(s);
}

static void hold(sse *e)
{
    ferry_life_hold(&e->life);
}

static void unhold(sse *e)
{
    if (ferry_life_drop(&e->life))
        sse_free(e);
}

static int reported(const sse *e)
{
    return ferry_life_closed(&e->life);
}

static ferry_transport *sse_create(ferry_session *s)
{
    sse *e = ferry_mem_calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->super.ops = &ferry_sse_ops;
    e->super.session = s;
    ferry_life_init(&e->life);
    ferry_timer_init(&e->keepalive, on_keepalive);
    ferry_upstream_init(&e->up, &e->super, "sse");
    ferry_session_retain(s);
    return &e->super;
}

static void sse_destroy(ferry_transport *t)
{
    sse_free((sse *)t);
}

static int is_current(const sse *e)
{
    return ferry_engine_is_current(&e->super);
}

/* ------------------------------------------------------------------ writing events */

static int needs_escape(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return 1;
    return 0;
}

/* The event form of one packet: its text form, or "x" + base64 of it. The result is a new
 * reference (the packet itself, its alt form, or a fresh buffer). */
static ferry_buf *event_form(ferry_buf *pkt)
{
    ferry_buf *text = eio_text_form(pkt);
    if (text == NULL)
        return NULL;
    if (!needs_escape(text->data, text->len))
        return ferry_buf_retain(text);
    ferry_buf *x = ferry_buf_new(1 + FERRY_BASE64_LEN(text->len));
    if (x == NULL)
        return NULL;
    x->data[0] = 'x';
    x->len = 1 + ferry_base64_encode(x->data + 1, text->data, text->len);
    return x;
}

/* The transport's options (ferry_server_transport_option(srv, "sse", ...)). */
enum { OPT_KEEPALIVE_MS, OPT_PADDING_BYTES, OPT_RECYCLE_BYTES };
static const ferry_transport_option options[] = {
    /* a comment line this often, below common proxy idle timeouts; 0: none */
    [OPT_KEEPALIVE_MS] = {"keepalive_ms", 15000, 0, UINT32_MAX, FERRY_OPT_CFG_U32,
                          offsetof(ferry_server_config, sse_keepalive_ms)},
    /* a comment prelude of this many spaces, for proxies that buffer a response's start */
    [OPT_PADDING_BYTES] = {"padding_bytes", 0, 0, 65536, FERRY_OPT_CFG_SIZE,
                           offsetof(ferry_server_config, sse_padding_bytes)},
    /* end a stream after this many bytes (the client resumes with Last-Event-ID); 0: never */
    [OPT_RECYCLE_BYTES] = {"recycle_bytes", 4u * 1024 * 1024, 0, SIZE_MAX, FERRY_OPT_CFG_SIZE,
                           offsetof(ferry_server_config, sse_recycle_bytes)},
    {NULL, 0, 0, 0, 0, 0},
};

static void keepalive_restart(sse *e)
{
    uint64_t ms = ferry_engine_option(&e->super, OPT_KEEPALIVE_MS);
    if (ms > 0)
        ferry_timer_start(ferry_engine_wheel_of(&e->super), &e->keepalive, ms);
}

static void end_stream(sse *e);

static int write_slices(sse *e, const ferry_slice *sl, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += sl[i].len;
    int rc = ferry_conn_write(e->conn, sl, n);
    if (rc != 0)
        return rc;
    e->stream_bytes += bytes;
    keepalive_restart(e);
    return 0;
}

/* Write pkts[0..n) as events; id 0 means "no id" (the probe answer). ids[i] per packet. */
static int write_events(sse *e, ferry_buf *const *pkts, const uint64_t *ids, size_t n)
{
    ferry_slice sl[3 * MAX_BATCH];
    ferry_buf *forms[MAX_BATCH];
    ferry_buf *heads = ferry_buf_new(n * ID_LINE_MAX);
    if (heads == NULL)
        return -FERRY_ENOMEM;
    size_t ns = 0, off = 0, nf = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ferry_buf *f = event_form(pkts[i]);
        if (f == NULL) {
            rc = -FERRY_ENOMEM;
            break;
        }
        forms[nf++] = f;
        char *h = heads->data + off;
        ferry_strbuf sb;
        ferry_strbuf_init(&sb, h, ID_LINE_MAX);
        if (ids[i] == 0)
            ferry_strbuf_puts(&sb, "data: ");
        else if (e->qualified)
            ferry_strbuf_printf(&sb, "id: %s:%llu\ndata: ", ferry_engine_sid(&e->super),
                                (unsigned long long)ids[i]);
        else
            ferry_strbuf_printf(&sb, "id: %llu\ndata: ", (unsigned long long)ids[i]);
        if ((rc = ferry_strbuf_error(&sb)) != 0)
            break;
        size_t hl = sb.len;
        off += hl;
        sl[ns++] = (ferry_slice){h, hl, heads};
        sl[ns++] = (ferry_slice){f->data, f->len, f};
        sl[ns++] = (ferry_slice){"\n\n", 2, NULL};
        e->sent_close = !(pkts[i]->flags & FERRY_BUF_BINARY) && pkts[i]->len == 1 &&
                        pkts[i]->data[0] == '0' + EIO_CLOSE;
    }
    heads->len = off;
    if (rc == 0)
        rc = write_slices(e, sl, ns);
    for (size_t i = 0; i < nf; i++)
        ferry_buf_release(forms[i]);
    ferry_buf_release(heads);
    return rc;
}

/* ------------------------------------------------------------------ streams */

static void on_conn_data(ferry_conn *c, const char *data, size_t len, void *ud)
{
    /* A client sends nothing on the stream; whatever comes is ignored (bounded: not kept). */
    (void)c, (void)data, (void)len, (void)ud;
}

static void on_conn_drain(ferry_conn *c, void *ud)
{
    sse *e = ud;
    (void)c;
    if (reported(e))
        return;
    hold(e);
    ferry_engine_on_drain(&e->super);
    unhold(e);
}

static void on_conn_close(ferry_conn *c, void *ud)
{
    sse *e = ud;
    if (c != e->conn)
        return;
    hold(e);
    e->conn = NULL;
    ferry_timer_stop(ferry_engine_wheel_of(&e->super), &e->keepalive);
    /* A probe whose stream is gone has failed. The session's own stream may come back with
     * Last-Event-ID: the session lives on until the heartbeat says the client is gone. */
    if (!reported(e) && !is_current(e))
        report_closed(e, FERRY_REASON_TRANSPORT_CLOSE);
    unhold(e); /* the stream's */
    unhold(e);
}

static const ferry_conn_handler stream_handler = {
    .on_data = on_conn_data,
    .on_drain = on_conn_drain,
    .on_close = on_conn_close,
};

/* End the attached stream after what was written (recycling, takeover, close). */
static void end_stream(sse *e)
{
    ferry_conn *c = e->conn;
    if (c == NULL)
        return;
    e->conn = NULL;
    ferry_timer_stop(ferry_engine_wheel_of(&e->super), &e->keepalive);
    ferry_conn_set_handler(c, NULL, NULL);
    ferry_conn_close(c);
    /* The stream's reference. Never the last: whoever ends a stream is inside one of our
     * functions, holding one. */
    unhold(e);
}

static void on_keepalive(ferry_timer *tm)
{
    sse *e = container_of(tm, sse, keepalive);
    if (e->conn == NULL || reported(e))
        return;
    static const ferry_slice ka = {":\n\n", 3, NULL};
    hold(e);
    if (write_slices(e, &ka, 1) != 0)
        end_stream(e);
    unhold(e);
}

static int accepts_event_stream(const ferry_req *req)
{
    const char *accept = ferry_req_header_get(req, "accept");
    return accept != NULL && strstr(accept, "text/event-stream") != NULL;
}

/* Take req's connection as the stream: headers, prelude, then events. req is answered or
 * taken either way. */
static int attach(sse *e, ferry_req *req)
{
    static const char fixed[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Type: text/event-stream\r\n"
                                "Cache-Control: no-cache, no-transform\r\n"
                                "X-Accel-Buffering: no\r\n"
                                "Connection: close\r\n";
    /* EventSource's reconnection delay after a recycled or broken stream (browsers default
     * to seconds), then a blank line: the prelude dispatches no event. */
    static const char retry[] = "retry: 1000\n\n";
    size_t pad = (size_t)ferry_engine_option(&e->super, OPT_PADDING_BYTES);
    /* Every piece counted: the head, CORS (the Origin echoed whole), the blank line, the
     * padding comment ":" pad spaces "\n", the retry line and the NUL. */
    size_t cap = sizeof(fixed) + ferry_http_cors_size(req) + 2 + pad + 2 + sizeof(retry);
    ferry_buf *head = ferry_buf_new(cap);
    if (head == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return -FERRY_ENOMEM;
    }
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, head->data, cap);
    ferry_strbuf_puts(&sb, fixed);
    ferry_http_cors_append(req, &sb);
    ferry_strbuf_puts(&sb, "\r\n");
    if (pad > 0) {
        /* A comment of pad spaces: proxies that buffer the first bytes let the events by. */
        ferry_strbuf_puts(&sb, ":");
        ferry_strbuf_fill(&sb, ' ', pad);
        ferry_strbuf_puts(&sb, "\n");
    }
    ferry_strbuf_puts(&sb, retry);
    /* A head that does not fit would be a bug in cap, never bytes past what was written (an
     * Origin over ~330 bytes used to send uninitialised heap: issue 9). */
    FERRY_ASSERT(ferry_strbuf_error(&sb) == 0);
    head->len = sb.len;
    int qualified = ferry_req_query_get(req, "sid") == NULL;
    ferry_conn *c = ferry_req_take_conn(req, &stream_handler, e);
    if (c == NULL) {
        ferry_buf_release(head);
        return -FERRY_ECLOSED;
    }
    e->conn = c;
    hold(e); /* the stream's reference, until it ends */
    (void)ferry_conn_limit_unsent(c, FERRY_TRANSPORT_UNSENT_MAX); /* best effort */
    e->stream_bytes = 0;
    e->qualified = qualified;
    ferry_slice s = {head->data, head->len, head};
    int rc = write_slices(e, &s, 1);
    ferry_buf_release(head);
    if (rc != 0)
        end_stream(e);
    return rc;
}

/* Last-Event-ID: "<n>", or "<sid>:<n>" (the form of streams opened without a sid, so that a
 * browser's EventSource can resume on its first URL). Absent means 0 (nothing received).
 * Returns 0 and *id, or -1 if garbage or naming another session. */
static int last_event_id(const ferry_req *req, const char *sid, uint64_t *id)
{
    const char *v = ferry_req_header_get(req, "last-event-id");
    *id = 0;
    if (v == NULL)
        return 0;
    const char *colon = strchr(v, ':');
    if (colon != NULL) {
        if ((size_t)(colon - v) != strlen(sid) || memcmp(v, sid, strlen(sid)) != 0)
            return -1;
        v = colon + 1;
    }
    if (*v == '\0' || strlen(v) > 19)
        return -1;
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *id = x;
    return 0;
}

/* A stream request that resumes by itself: it says where (Last-Event-ID). */
static int sse_resumes(const ferry_req *req)
{
    return ferry_req_header_get(req, "last-event-id") != NULL;
}

/* The engine asks which session a request without a sid query names. */
static int sse_request_sid(const ferry_req *req, char *out)
{
    const char *v = ferry_req_header_get(req, "last-event-id");
    const char *colon = v ? strchr(v, ':') : NULL;
    if (colon == NULL || colon == v || (size_t)(colon - v) > FERRY_SID_MAX)
        return 0;
    memcpy(out, v, (size_t)(colon - v));
    out[colon - v] = '\0';
    return 1;
}

/* Replay what the engine holds after the client's last id, in batches. */
typedef struct replay_batch {
    sse *e;
    ferry_buf *pkts[MAX_BATCH];
    uint64_t ids[MAX_BATCH];
    size_t n;
} replay_batch;

static int replay_one(void *ud, ferry_buf *pkt, uint64_t seq)
{
    replay_batch *b = ud;
    b->pkts[b->n] = pkt; /* borrowed: the engine holds it while we write (the writer retains) */
    b->ids[b->n++] = seq;
    if (b->n < MAX_BATCH)
        return 0;
    int rc = write_events(b->e, b->pkts, b->ids, b->n);
    b->n = 0;
    return rc;
}

static int replay(sse *e)
{
    replay_batch b;
    b.e = e;
    b.n = 0;
    int rc = ferry_engine_replay(&e->super, replay_one, &b);
    if (rc == 0 && b.n > 0)
        rc = write_events(e, b.pkts, b.ids, b.n);
    return rc;
}

/* A GET for a session already on SSE: a new stream, resuming after Last-Event-ID. */
static void on_get(sse *e, ferry_req *req)
{
    ferry_session *s = e->super.session;
    uint64_t last;
    if (!accepts_event_stream(req) || last_event_id(req, ferry_session_id(s), &last) != 0) {
        FERRY_LOG(FERRY_LOG_INFO, "sse", ferry_session_id(s),
                  "bad stream request (Accept, Last-Event-ID)");
        ferry_req_respond_error(req, 3);
        return;
    }
    if (e->conn != NULL && ferry_req_header_get(req, "last-event-id") == NULL) {
        /* A second stream that does not say where it resumes: refused, the first goes on. */
        FERRY_LOG(FERRY_LOG_INFO, "sse", ferry_session_id(s),
                  "a second stream for this session: refused");
        ferry_req_respond_error(req, 3);
        return;
    }
    /* Everything up to last arrived: the engine forgets it. */
    int rc = ferry_engine_resume(&e->super, last);
    if (rc == -FERRY_EINVAL) {
        FERRY_LOG(FERRY_LOG_INFO, "sse", ferry_session_id(s), "Last-Event-ID %llu not sent yet",
                  (unsigned long long)last);
        ferry_req_respond_error(req, 3);
        return;
    }
    if (rc != 0) {
        /* Messages after last were dropped: the stream cannot continue whole. */
        FERRY_LOG(FERRY_LOG_INFO, "sse", ferry_session_id(s), "Last-Event-ID %llu too old: closing",
                  (unsigned long long)last);
        ferry_req_respond_error(req, 3);
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    /* A stream still attached is replaced (the client lost it, maybe without the server
     * noticing). */
    end_stream(e);
    if (attach(e, req) != 0 || replay(e) != 0) {
        end_stream(e);
        return;
    }
    ferry_engine_on_drain(&e->super); /* what waited in the queue goes out at the next flush */
}

/* ------------------------------------------------------------------ ops */

static int sse_open(ferry_transport *t, ferry_req *req)
{
    sse *e = (sse *)t;
    if (!accepts_event_stream(req) || ferry_req_header_get(req, "last-event-id") != NULL)
        return 3;
    /* A connection that dies under the headers: the transport is reported closed at its
     * first flush (as websocket.c does). */
    hold(e);
    attach(e, req);
    unhold(e);
    return 0;
}

static void sse_close(ferry_transport *t, ferry_reason reason);

static void sse_on_request(ferry_transport *t, ferry_req *req)
{
    sse *e = (sse *)t;
    if (reported(e)) {
        ferry_req_respond_error(req, 1);
        return;
    }
    hold(e);
    if (strcmp(req->method, "GET") == 0) {
        if (is_current(e))
            on_get(e, req);
        else
            ferry_req_respond_error(req, 3); /* a second stream while probing */
    } else if (strcmp(req->method, "POST") == 0) {
        ferry_upstream_post(&e->up, req);
    } else {
        ferry_req_respond_error(req, 3);
    }
    unhold(e);
}

static void sse_on_request_head(ferry_transport *t, ferry_req *req)
{
    sse *e = (sse *)t;
    hold(e);
    ferry_upstream_head(&e->up, req);
    unhold(e);
}

static void sse_flush(ferry_transport *t)
{
    sse *e = (sse *)t;
    if (reported(e))
        return;
    if (e->conn == NULL) {
        /* A probe whose connection died under the headers. Otherwise: wait for the client. */
        if (!is_current(e))
            sse_close(t, FERRY_REASON_TRANSPORT_ERROR);
        return;
    }
    hold(e);
    uint64_t recycle = ferry_engine_option(t, OPT_RECYCLE_BYTES);
    ferry_buf *pkts[MAX_BATCH];
    uint64_t ids[MAX_BATCH];
    while (e->conn != NULL &&
           ferry_conn_pending_bytes(e->conn) < FERRY_TRANSPORT_WRITE_HIGH_WATER) {
        size_t n = ferry_engine_take(t, pkts, ids, MAX_BATCH, FERRY_TRANSPORT_WRITE_HIGH_WATER);
        if (n == 0)
            break;
        /* The engine keeps the packets for replay; our references end after the write. */
        int rc = write_events(e, pkts, ids, n);
        for (size_t i = 0; i < n; i++)
            ferry_buf_release(pkts[i]);
        if (rc != 0) {
            end_stream(e); /* what was taken is in the replay buffer: a resume replays it */
            break;
        }
        if (recycle > 0 && e->stream_bytes >= recycle) {
            /* Bounded responses for buffering intermediaries: the client reconnects with
             * Last-Event-ID and the next stream goes on from there. */
            end_stream(e);
            break;
        }
    }
    unhold(e);
}

static int sse_send_now(ferry_transport *t, ferry_buf *pkt)
{
    sse *e = (sse *)t;
    if (e->conn == NULL || reported(e))
        return -FERRY_ECLOSED;
    uint64_t none = 0;
    hold(e); /* a failed write ends the stream inside it */
    int rc = write_events(e, &pkt, &none, 1);
    unhold(e);
    return rc;
}

/* The caller holds a reference: the transport's own goes here. */
static void report_closed(sse *e, ferry_reason reason)
{
    if (reported(e))
        return;
    int last = ferry_life_close(&e->life);
    FERRY_ASSERT(!last);
    ferry_upstream_drop(&e->up);
    ferry_engine_on_transport_closed(&e->super, reason);
}

static void sse_close(ferry_transport *t, ferry_reason reason)
{
    sse *e = (sse *)t;
    if (reported(e))
        return;
    hold(e);
    /* The server ends the session: say so on the stream, as a held poll gets "1". */
    if (e->conn != NULL && reason != FERRY_REASON_TRANSPORT_CLOSE && !e->sent_close &&
        is_current(e)) {
        static const ferry_slice bye = {"data: 1\n\n", 9, NULL};
        write_slices(e, &bye, 1);
    }
    end_stream(e);
    report_closed(e, reason);
    unhold(e);
}

const ferry_transport_ops ferry_sse_ops = {
    .name = "sse",
    .flags = FERRY_TR_STREAMING | FERRY_TR_PROBE_TARGET | FERRY_TR_EXTENSION,
    .options = options,
    .create = sse_create,
    .open = sse_open,
    .on_request = sse_on_request,
    .on_request_head = sse_on_request_head,
    .flush = sse_flush,
    .send_now = sse_send_now,
    .close = sse_close,
    .request_sid = sse_request_sid,
    .resumes = sse_resumes,
    .destroy = sse_destroy,
};
