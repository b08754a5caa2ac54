/* The HTTP publish endpoint of tools/ferry (POST /api/publish). */
#ifndef FERRY_TOOL_PUBLISH_H
#define FERRY_TOOL_PUBLISH_H

#include <ferry.h>

#include "config.h"
#include "relay.h"

/* What the endpoint needs; the caller owns it, and it must outlive the server. */
typedef struct publish_ctx {
    const app_config *cfg;
    relay *relay;
} publish_ctx;

/* Route POST /api/publish on srv. */
int publish_install(ferry_server *srv, publish_ctx *ctx);

#endif
