/* The registry: every transport the library has, and the single source of their names and bits.
 *
 * Adding a transport is one file in transports/ (its ferry_transport_ops, lib/engine/transport.h)
 * and one line in FERRY_TRANSPORT_REGISTRY below: the ops table's symbol and the transport's bit
 * in ferry_server_config.transports. Nothing else names a transport: the engine, tools/ferry's
 * --transports flag and the test servers ask the functions below (ferry.h, "transports").
 *
 * The lines are in the server's order of preference: the order of the handshake's "upgrades"
 * list and of the extensions' promotions. A bit is part of the ABI (applications compile
 * FERRY_TRANSPORT_* into their programs): never renumber or reuse one; take the next free bit
 * (the unit test tests/unit/engine/test_registry.c fails on a duplicate). */
#include <string.h>

#include "common/assert.h"
#include "engine/transport.h"

#define FERRY_TRANSPORT_REGISTRY(X)                                                                \
    X(ferry_websocket_ops, 1u << 1)                                                                \
    X(ferry_sse_ops, 1u << 2)                                                                      \
    X(ferry_polling_ops, 1u << 0)                                                                  \
    X(ferry_short_polling_ops, 1u << 3)                                                            \
    /* end of the list: every line above ends with a backslash */

#define DECLARE(ops, bit) extern const ferry_transport_ops ops;
FERRY_TRANSPORT_REGISTRY(DECLARE)
#undef DECLARE

#define OPS(ops, bit) &ops,
const ferry_transport_ops *const ferry_transports[] = {FERRY_TRANSPORT_REGISTRY(OPS) NULL};
#undef OPS

#define BIT(ops, bit) bit,
static const unsigned bits[] = {FERRY_TRANSPORT_REGISTRY(BIT)};
#undef BIT

#define COUNT (sizeof(bits) / sizeof(bits[0]))

const ferry_transport_ops *ferry_transport_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < COUNT; i++)
        if (strcmp(ferry_transports[i]->name, name) == 0)
            return ferry_transports[i];
    return NULL;
}

unsigned ferry_transport_ops_bit(const ferry_transport_ops *ops)
{
    for (size_t i = 0; i < COUNT; i++)
        if (ferry_transports[i] == ops)
            return bits[i];
    return 0;
}

unsigned ferry_transport_bit(const char *name)
{
    return ferry_transport_ops_bit(ferry_transport_find(name));
}

const char *ferry_transport_name(unsigned bit)
{
    for (size_t i = 0; i < COUNT; i++)
        if (bits[i] == bit)
            return ferry_transports[i]->name;
    return NULL;
}

const char *ferry_transport_at(size_t i, unsigned *bit)
{
    /* In the order of the bits: the i-th lowest registered bit. */
    unsigned all = ferry_transport_all(), b = 0;
    for (unsigned k = 0; k < 32; k++) {
        if (!(all & (1u << k)))
            continue;
        if (i-- == 0) {
            b = 1u << k;
            break;
        }
    }
    if (bit != NULL)
        *bit = b;
    return b != 0 ? ferry_transport_name(b) : NULL;
}

unsigned ferry_transport_all(void)
{
    unsigned all = 0;
    for (size_t i = 0; i < COUNT; i++)
        all |= bits[i];
    return all;
}

/* ------------------------------------------------------------------ options */

static size_t noptions(const ferry_transport_ops *ops)
{
    size_t n = 0;
    while (ops->options != NULL && ops->options[n].name != NULL)
        n++;
    return n;
}

size_t ferry_transport_option_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < COUNT; i++)
        n += noptions(ferry_transports[i]);
    return n;
}

size_t ferry_transport_option_slot(const ferry_transport_ops *ops, size_t i)
{
    size_t base = 0, k = 0;
    for (; k < COUNT && ferry_transports[k] != ops; k++)
        base += noptions(ferry_transports[k]);
    /* A registered transport's own option: anything else would read another's slot. */
    FERRY_ASSERT(k < COUNT && i < noptions(ops) && base + i < FERRY_TRANSPORT_OPTIONS_MAX);
    return base + i;
}

const ferry_transport_option *ferry_transport_option_find(const ferry_transport_ops *ops,
                                                          const char *name, size_t *index)
{
    if (ops == NULL || name == NULL || ops->options == NULL)
        return NULL;
    for (size_t i = 0; ops->options[i].name != NULL; i++)
        if (strcmp(ops->options[i].name, name) == 0) {
            if (index != NULL)
                *index = i;
            return &ops->options[i];
        }
    return NULL;
}

const char *ferry_transport_option_at(const char *transport, size_t i)
{
    const ferry_transport_ops *ops = ferry_transport_find(transport);
    if (ops == NULL || i >= noptions(ops))
        return NULL;
    return ops->options[i].name;
}
