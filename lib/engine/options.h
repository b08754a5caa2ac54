/* Transport options of a server (options.c). */
#ifndef FERRY_ENGINE_OPTIONS_H
#define FERRY_ENGINE_OPTIONS_H

#include <stdint.h>

#include "ferry.h"

/* Fill values (FERRY_TRANSPORT_OPTIONS_MAX slots) with every transport option's first value:
 * its default, or the value of the ferry_server_config field it replaces. Returns 0, or
 * -FERRY_EINVAL when such a field is outside the option's range. */
int ferry_transport_options_init(uint64_t *values, const ferry_server_config *cfg);

#endif
