/* Forwarding a request to the node that owns its session (forward.c; issue 18,
 * docs/scaling.md "Forwarding"). Private to lib/server. */
#ifndef FERRY_SERVER_FORWARD_H
#define FERRY_SERVER_FORWARD_H

#include "ferry.h"

typedef struct ferry_forward ferry_forward;

/* Make srv's engine sign its sids and forward requests for other nodes' sessions (ferry.h
 * ferry_server_forward). 0 with *out, -FERRY_EINVAL, -FERRY_ENOMEM. */
int ferry_forward_new(ferry_server *srv, ferry_redis *r, const ferry_forward_config *cfg,
                      ferry_forward **out);
/* The server closes: every forwarded request ends (a held one gets 503, a spliced connection
 * is closed), the address is taken out of Redis, and done(srv) runs once the forwarder's
 * handles are closed (not inside this call). The forwarder frees itself after that, once no
 * Redis reply is owed to it any more. */
void ferry_forward_close(ferry_forward *f, void (*done)(ferry_server *srv));
void ferry_forward_stats_get(const ferry_forward *f, ferry_forward_stats *out);

#endif
