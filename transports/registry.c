/* Every transport the engine knows, in the server's order of preference: the order of the
 * handshake's "upgrades" list. Adding a transport is one file in transports/ and one line
 * here. */
#include <string.h>

#include "engine/engine.h"

extern const ferry_transport_ops ferry_polling_ops;
extern const ferry_transport_ops ferry_websocket_ops;
extern const ferry_transport_ops ferry_sse_ops;
extern const ferry_transport_ops ferry_short_polling_ops;

const ferry_transport_ops *const ferry_transports[] = {
    &ferry_websocket_ops,
    &ferry_sse_ops,
    &ferry_polling_ops,
    &ferry_short_polling_ops,
    NULL,
};

const ferry_transport_ops *ferry_transport_find(const char *name)
{
    for (size_t i = 0; ferry_transports[i] != NULL; i++)
        if (strcmp(ferry_transports[i]->name, name) == 0)
            return ferry_transports[i];
    return NULL;
}
