/* The HTTP publish endpoint of tools/ferry (POST /api/publish). */
#ifndef FERRY_TOOL_PUBLISH_H
#define FERRY_TOOL_PUBLISH_H

#include <ferry.h>

#include "config.h"
#include "relay.h"

/* Route POST /api/publish on srv; cfg and r are borrowed and must outlive srv. */
int publish_install(ferry_server *srv, const app_config *cfg, relay *r);

#endif
