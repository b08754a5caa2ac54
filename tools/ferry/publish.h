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

/* Is given the token? In the same time whatever given is (CRYPTO_memcmp over the token's
 * length), so a guess learns nothing from the timing. given may be NULL (no). */
int app_token_equal(const char *given, const char *token);
/* Is auth (an Authorization header value, may be NULL) "Bearer <token>"? */
int app_bearer_ok(const char *auth, const char *token);

/* Route POST /api/publish on srv. */
int publish_install(ferry_server *srv, publish_ctx *ctx);

#endif
