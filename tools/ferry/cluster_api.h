/* The cluster's sockets over HTTP (GET /api/sockets, POST /api/sockets/{join,leave,disconnect}):
 * cluster_api.c describes them. */
#ifndef FERRY_TOOL_CLUSTER_API_H
#define FERRY_TOOL_CLUSTER_API_H

#include <ferry.h>

#include "config.h"
#include "relay.h"

/* The caller owns it; it must outlive the server. */
typedef struct cluster_api_ctx {
    const app_config *cfg;
    ferry_server *srv;
} cluster_api_ctx;

int cluster_api_install(ferry_server *srv, cluster_api_ctx *ctx);

#endif
