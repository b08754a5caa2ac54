/* Upstream by POST, shared by long-polling, short-polling and SSE (PROTOCOL.md "Polling
 * encoding"; docs/protocol.md): a POST carries a payload and is answered "ok"; one POST at a
 * time per session; a binary body or an undecodable payload closes the session.
 *
 * The holder embeds a ferry_upstream and calls head() when a POST's headers arrived and post()
 * when it is complete; drop() forgets a POST still in flight when the transport closes. */
#ifndef FERRY_TRANSPORTS_UPSTREAM_H
#define FERRY_TRANSPORTS_UPSTREAM_H

#include "engine/transport.h"

typedef struct ferry_upstream {
    ferry_transport *t; /* the owner, to deliver packets to */
    ferry_req *post;    /* a POST whose headers arrived and whose body is on its way */
    const char *log;    /* module name for log lines */
} ferry_upstream;

void ferry_upstream_init(ferry_upstream *u, ferry_transport *t, const char *log);
/* A POST's headers arrived (on_request_head): a second POST in flight closes the session. */
void ferry_upstream_head(ferry_upstream *u, ferry_req *req);
/* A complete POST: decode its payload, deliver it, answer it. */
void ferry_upstream_post(ferry_upstream *u, ferry_req *req);
/* The transport closes: a POST in flight is no longer ours to watch. */
void ferry_upstream_drop(ferry_upstream *u);

/* "Cache-Control: no-store" for the answers of polls: never to be reused by a cache. */
extern const char ferry_no_store_header[];

#endif
