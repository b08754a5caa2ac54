/* Who may connect to tools/ferry: --client-token, through the library's admission hook. */
#ifndef FERRY_TOOL_ADMIT_H
#define FERRY_TOOL_ADMIT_H

#include <ferry.h>

#include "config.h"

/* With cfg->client_token set, refuse every Engine.IO handshake that does not carry it (query
 * parameter token, or Authorization: Bearer) with 403 "Invalid client token". cfg must outlive
 * the server. Returns 0 or the error of ferry_server_on_admission(). */
int admit_install(ferry_server *srv, const app_config *cfg);

#endif
