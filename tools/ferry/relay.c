/* TEMPORARY stub until the Socket.IO API lands. */
#include "relay.h"

#include <stdlib.h>

struct relay {
    ferry_server *srv;
};

int relay_new(ferry_server *srv, const app_config *cfg, relay **out)
{
    relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -FERRY_ENOMEM;
    r->srv = srv;
    *out = r;
    return 0;
}

int relay_publish(relay *r, const char *room, const char *event, const cJSON *data)
{
    return 0;
}

void relay_free(relay *r)
{
    free(r);
}
