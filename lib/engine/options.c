/* Transport options on a server (ferry.h, "transport options"): a table of whole numbers, one
 * slot per option of every registered transport (transports/registry.c), filled by
 * ferry_server_new() and changed by ferry_server_transport_option() until the server listens.
 * The engine keeps the values (struct ferry_engine); the server (lib/server) sets and reads
 * them through the calls of engine/engine.h. The transports read them with
 * ferry_engine_option(); which options exist is each transport's own business (its ops
 * table). */
#include <string.h>

#include "common/assert.h"
#include "engine/internal.h"

int ferry_transport_options_init(uint64_t *values, const ferry_server_config *cfg)
{
    FERRY_ASSERT(ferry_transport_option_count() <= FERRY_TRANSPORT_OPTIONS_MAX);
    for (size_t k = 0; ferry_transports[k] != NULL; k++) {
        const ferry_transport_ops *ops = ferry_transports[k];
        for (size_t i = 0; ops->options != NULL && ops->options[i].name != NULL; i++) {
            const ferry_transport_option *o = &ops->options[i];
            const char *field = (const char *)cfg + o->cfg_offset;
            uint64_t v = o->def;
            if (o->cfg_kind == FERRY_OPT_CFG_U32) {
                uint32_t u;
                memcpy(&u, field, sizeof(u));
                v = u;
            } else if (o->cfg_kind == FERRY_OPT_CFG_SIZE) {
                size_t z;
                memcpy(&z, field, sizeof(z));
                v = z;
            } else if (o->cfg_kind == FERRY_OPT_CFG_BOOL) {
                int b;
                memcpy(&b, field, sizeof(b));
                v = b != 0;
            }
            if (v < o->min || v > o->max)
                return -FERRY_EINVAL;
            values[ferry_transport_option_slot(ops, i)] = v;
        }
    }
    return 0;
}

int ferry_engine_check_config(const ferry_server_config *cfg)
{
    uint64_t values[FERRY_TRANSPORT_OPTIONS_MAX];
    return ferry_transport_options_init(values, cfg);
}

/* The slot of transport's option, or -FERRY_ENOTFOUND; *o is its description. */
static int lookup(const char *transport, const char *option, const ferry_transport_option **o,
                  size_t *slot)
{
    const ferry_transport_ops *ops = ferry_transport_find(transport);
    size_t i;
    *o = ferry_transport_option_find(ops, option, &i);
    if (*o == NULL)
        return -FERRY_ENOTFOUND;
    *slot = ferry_transport_option_slot(ops, i);
    return 0;
}

int ferry_engine_option_check(const char *transport, const char *option, uint64_t value)
{
    const ferry_transport_option *o;
    size_t slot;
    int rc = lookup(transport, option, &o, &slot);
    if (rc != 0)
        return rc;
    return value < o->min || value > o->max ? -FERRY_EINVAL : 0;
}

int ferry_engine_option_set(ferry_engine *eng, const char *transport, const char *option,
                            uint64_t value)
{
    const ferry_transport_option *o;
    size_t slot;
    int rc = lookup(transport, option, &o, &slot);
    if (rc != 0)
        return rc;
    if (value < o->min || value > o->max)
        return -FERRY_EINVAL;
    eng->transport_options[slot] = value;
    return 0;
}

int ferry_engine_option_get(const ferry_engine *eng, const char *transport, const char *option,
                            uint64_t *value)
{
    const ferry_transport_option *o;
    size_t slot;
    int rc = lookup(transport, option, &o, &slot);
    if (rc != 0)
        return rc;
    *value = eng->transport_options[slot];
    return 0;
}

uint64_t ferry_engine_option(const ferry_transport *t, size_t i)
{
    return t->session->engine->transport_options[ferry_transport_option_slot(t->ops, i)];
}
