/* Upstream by POST, as long-polling does it; SSE and short-polling use the very same rules. */
#include "transports/upstream.h"

#include <string.h>

#include "common/log.h"
#include "engine/transport.h"

const char ferry_no_store_header[] = "Cache-Control: no-store\r\n";

void ferry_upstream_init(ferry_upstream *u, ferry_transport *t, const char *log)
{
    u->t = t;
    u->post = NULL;
    u->log = log;
}

static void on_post_abort(ferry_req *req, void *ud)
{
    ferry_upstream *u = ud;
    (void)req;
    u->post = NULL;
    ferry_engine_on_transport_lost(u->t);
}

void ferry_upstream_head(ferry_upstream *u, ferry_req *req)
{
    if (strcmp(req->method, "POST") != 0)
        return;
    if (u->post != NULL) {
        /* "data request overlap from client": one POST at a time. The session closes now;
         * this request, once complete, finds no session (400, code 1). */
        FERRY_LOG(FERRY_LOG_INFO, u->log, ferry_engine_sid(u->t), "second POST in flight");
        ferry_engine_close_session(u->t->session, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    u->post = req;
    ferry_req_hold(req, on_post_abort, u);
}

/* Marks a POST whose transport closed while its body was still coming: when it completes it
 * belongs to no transport. (After an attach to the same kind, it would otherwise reach the new
 * transport and be counted there, after the client's resend.) */
static void on_stale_abort(ferry_req *req, void *ud)
{
    (void)req;
    (void)ud;
}

void ferry_upstream_post(ferry_upstream *u, ferry_req *req)
{
    ferry_session *s = u->t->session;
    if (req->on_abort == on_stale_abort) {
        ferry_req_hold(req, NULL, NULL);
        FERRY_LOG(FERRY_LOG_INFO, u->log, ferry_engine_sid(u->t),
                  "a POST of a transport the session left: ignored");
        ferry_req_respond_error(req, 3);
        return;
    }
    if (u->post == req) {
        u->post = NULL;
        ferry_req_hold(req, NULL, NULL);
    }
    /* v4 sends binary as base64 text; a binary body is a protocol error (reference v4). */
    const char *ctype = ferry_req_header_get(req, "content-type");
    if (ctype != NULL && strncasecmp(ctype, "application/octet-stream", 24) == 0) {
        ferry_req_respond_error(req, 3);
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    /* Messages taken already (a POST sent again, or a resend a late POST partly took): not
     * taken twice. Messages after a gap, or not taken: never answered "ok" (docs/protocol.md
     * 5.3), the client attaches and sends again what the server lacks. */
    uint64_t skip;
    int rc = ferry_engine_post_taken(u->t, req, &skip);
    if (rc == 0)
        rc = ferry_engine_on_payload_skip(u->t, req->body.base ? req->body.base : (char *)"",
                                          req->body.len, skip);
    if (rc == -FERRY_ELIMIT || rc == 1) {
        static const char body[] =
            "{\"code\":3,\"message\":\"Messages missing: attach and resend\"}";
        ferry_req_respond_text(req, 409, "application/json", body, sizeof(body) - 1);
        return;
    }
    if (rc != 0) {
        ferry_req_respond_error(req, 3);
        return;
    }
    ferry_slice ok = {"ok", 2, NULL};
    ferry_req_respond(req, 200, "text/html", ferry_no_store_header, &ok, 1);
}

void ferry_upstream_drop(ferry_upstream *u)
{
    if (u->post != NULL) {
        ferry_req_hold(u->post, on_stale_abort, NULL);
        u->post = NULL;
    }
}
