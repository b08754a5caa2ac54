/* HTTP long-polling (Engine.IO v4, PROTOCOL.md "Polling encoding"), and short-polling (ferry's
 * extension, docs/protocol.md): the same code under a second ops table, whose GETs are never
 * held: answered at once with what is queued, or a noop.
 *
 * Downstream: a GET is held until packets are queued, then answered with all of them joined by
 * 0x1e (binary as "b" + base64). Upstream: a POST carries a payload, answered "ok". At most one
 * GET and one POST may be in flight per session; a second one of either kind is refused with
 * 400 and closes the session, and the held GET gets a close packet "1" (on a session of ferry's
 * client a second GET replaces the held one instead: docs/protocol.md 5.3).
 *
 * The transport borrows the held requests: if a request's connection dies first, the HTTP layer
 * calls our abort callback and the session closes with "transport error", as the reference
 * server does for a poll closed prematurely. */
#include <string.h>

#include "common/assert.h"
#include "common/life.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/transport.h"
#include "transports/upstream.h"

/* Packets per response: bounds the slice array; what is left goes out on the next GET. */
#define MAX_BATCH 256

typedef struct polling {
    ferry_transport super;
    ferry_req *get;       /* the held GET */
    ferry_upstream up;    /* POSTs */
    /* The one lifetime rule (common/life.h): closed once ferry_engine_on_transport_closed was
     * called; on_request and close hold a reference while they call out. */
    ferry_life life;
} polling;

extern const ferry_transport_ops ferry_polling_ops;
extern const ferry_transport_ops ferry_short_polling_ops;

static const char text_plain[] = "text/plain; charset=UTF-8";
/* A poll's answer is never to be reused: proxies and browsers must not cache it. */
static const char *const no_store = ferry_no_store_header;

static void respond_short(ferry_req *req, int status, const char *ctype, const char *body)
{
    ferry_slice s = {body, strlen(body), NULL}; /* static strings only */
    ferry_req_respond(req, status, ctype, no_store, &s, s.len > 0);
}

static void pl_free(polling *p)
{
    ferry_session *s = p->super.session;
    ferry_mem_free(p);
    ferry_session_release(s);
}

static ferry_transport *create(ferry_session *s, const ferry_transport_ops *ops)
{
    polling *p = ferry_mem_calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->super.ops = ops;
    p->super.session = s;
    ferry_life_init(&p->life);
    ferry_upstream_init(&p->up, &p->super, ops->name);
    ferry_session_retain(s);
    return &p->super;
}

static ferry_transport *pl_create(ferry_session *s)
{
    return create(s, &ferry_polling_ops);
}

static ferry_transport *sp_create(ferry_session *s)
{
    return create(s, &ferry_short_polling_ops);
}

static void pl_destroy(ferry_transport *t)
{
    pl_free((polling *)t);
}

static void pl_drop(polling *p)
{
    if (ferry_life_drop(&p->life))
        pl_free(p);
}

/* End the held GET with one bare packet ("6" noop, "1" close). */
static void answer_get_with(polling *p, const char *pkt)
{
    ferry_req *get = p->get;
    if (get == NULL)
        return;
    p->get = NULL;
    ferry_req_hold(get, NULL, NULL);
    respond_short(get, 200, text_plain, pkt);
}

static void on_get_abort(ferry_req *req, void *ud)
{
    polling *p = ud;
    (void)req;
    p->get = NULL;
    if (!ferry_life_closed(&p->life))
        ferry_engine_on_transport_lost(&p->super);
}

static void pl_flush(ferry_transport *t)
{
    polling *p = (polling *)t;
    if (p->get == NULL || ferry_life_closed(&p->life))
        return;
    ferry_buf *pkts[MAX_BATCH];
    /* One response carries at most about maxPayload bytes (always at least one packet); the
     * rest waits for the next poll, which the client sends at once. During an upgrade ("3probe"
     * sent) a poll still takes what is queued, as the reference server's does: the client
     * reads it whole before it sends "5", and a client that gave the probe up gets its
     * messages now rather than at the upgrade timeout. */
    size_t n = ferry_engine_take(t, pkts, NULL, MAX_BATCH, ferry_engine_config(t)->max_payload);
    if (n == 0) {
        /* Long-polling holds the GET until something is queued; short-polling never does;
         * during an upgrade the poll ends at once, so that the client's pause ends. */
        if (t->ops == &ferry_short_polling_ops || ferry_engine_upgrading(t))
            answer_get_with(p, "6");
        return;
    }
    ferry_slice sl[2 * MAX_BATCH];
    size_t ns = 0;
    static const char sep[] = {EIO_SEPARATOR};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ferry_buf *text = eio_text_form(pkts[i]);
        if (text == NULL) {
            rc = -FERRY_ENOMEM;
            break;
        }
        if (i > 0)
            sl[ns++] = (ferry_slice){sep, 1, NULL};
        /* The text form lives on the packet: holding the packet holds both. */
        sl[ns++] = (ferry_slice){text->data, text->len, pkts[i]};
    }
    ferry_req *get = p->get;
    p->get = NULL;
    ferry_req_hold(get, NULL, NULL);
    if (rc == 0)
        ferry_req_respond(get, 200, text_plain, no_store, sl, ns);
    else
        ferry_req_respond_text(get, 503, NULL, NULL, 0);
    for (size_t i = 0; i < n; i++)
        ferry_buf_release(pkts[i]);
    if (rc != 0)
        ferry_engine_close_session(t->session, FERRY_REASON_TRANSPORT_ERROR, 0);
}

static int pl_open(ferry_transport *t, ferry_req *req)
{
    polling *p = (polling *)t;
    /* The handshake GET is held like any poll: the open packet is queued next. */
    p->get = req;
    ferry_req_hold(req, on_get_abort, p);
    return 0;
}

static void on_get(polling *p, ferry_req *req)
{
    if (p->get != NULL) {
        if (!ferry_engine_extended(&p->super)) {
            /* "overlap from client": refuse this one, then close; the held GET gets "1". */
            FERRY_LOG(FERRY_LOG_INFO, "polling", ferry_engine_sid(&p->super), "second GET in flight");
            respond_short(req, 400, NULL, "");
            ferry_engine_close_session(p->super.session, FERRY_REASON_TRANSPORT_ERROR, 0);
            return;
        }
        /* ferry's client (docs/protocol.md 5.3): a browser sends a GET again by itself when
         * its connection died before any byte of the answer, and we may not have seen that
         * connection close yet. The new GET replaces the held one, which carries nothing (a
         * GET is held only while nothing is queued): it ends with a noop, and got= below says
         * what the client has. */
        FERRY_LOG(FERRY_LOG_INFO, "polling", ferry_engine_sid(&p->super),
                  "second GET in flight: it replaces the held one");
        answer_get_with(p, "6");
    }
    /* What the client got so far: an answer lost on its way comes again in this one. */
    if (ferry_engine_poll_got(&p->super, req) != 0) {
        ferry_req_respond_error(req, 3);
        return;
    }
    p->get = req;
    ferry_req_hold(req, on_get_abort, p);
    pl_flush(&p->super);
}

static void pl_on_request_head(ferry_transport *t, ferry_req *req)
{
    ferry_upstream_head(&((polling *)t)->up, req);
}

static void pl_close(ferry_transport *t, ferry_reason reason);

static void pl_on_request(ferry_transport *t, ferry_req *req)
{
    polling *p = (polling *)t;
    if (ferry_life_closed(&p->life)) {
        ferry_req_respond_error(req, 1);
        return;
    }
    ferry_life_hold(&p->life);
    if (strcmp(req->method, "GET") == 0)
        on_get(p, req);
    else if (strcmp(req->method, "POST") == 0)
        ferry_upstream_post(&p->up, req);
    else
        ferry_req_respond_error(req, 3);
    pl_drop(p);
}

static void pl_close(ferry_transport *t, ferry_reason reason)
{
    polling *p = (polling *)t;
    if (ferry_life_closed(&p->life))
        return;
    ferry_life_hold(&p->life);
    ferry_life_close(&p->life); /* held: never the last reference here */
    /* The client closed (or upgraded away): its poll ends with a noop. Otherwise the server
     * closes and says so with a close packet (reference polling.ts onClose / doClose). */
    answer_get_with(p, reason == FERRY_REASON_TRANSPORT_CLOSE ? "6" : "1");
    ferry_upstream_drop(&p->up);
    ferry_engine_on_transport_closed(t, reason);
    pl_drop(p); /* frees p unless on_request is on the stack: its drop does */
}

static int pl_send_now(ferry_transport *t, ferry_buf *pkt)
{
    (void)t;
    (void)pkt;
    return -FERRY_EUNSUPPORTED; /* never a probe target */
}

const ferry_transport_ops ferry_polling_ops = {
    .name = "polling",
    .flags = FERRY_TR_UPGRADABLE,
    .create = pl_create,
    .open = pl_open,
    .on_request = pl_on_request,
    .on_request_head = pl_on_request_head,
    .flush = pl_flush,
    .send_now = pl_send_now,
    .close = pl_close,
    .destroy = pl_destroy,
};

/* Short-polling: the client asks at the interval the handshake announces; the heartbeat's
 * deadlines add that interval (FERRY_TR_POLLED). */
const ferry_transport_ops ferry_short_polling_ops = {
    .name = "short-polling",
    .flags = FERRY_TR_UPGRADABLE | FERRY_TR_POLLED | FERRY_TR_EXTENSION,
    .create = sp_create,
    .open = pl_open,
    .on_request = pl_on_request,
    .on_request_head = pl_on_request_head,
    .flush = pl_flush,
    .send_now = pl_send_now,
    .close = pl_close,
    .destroy = pl_destroy,
};
