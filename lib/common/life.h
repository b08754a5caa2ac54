/* One lifetime rule for every object that calls out (DESIGN.md, "One rule for lifetimes").
 *
 * The problem. An object calls out: to the application (a message, a close), to its owner (a
 * WebSocket telling its transport the connection is gone), to the engine, to a connection
 * handler. The code called may close the object, or free it, and then return into a function
 * of the object that still has work to do: a use after free, or, when each object guards
 * itself in its own way, a flag that someone forgets to check. Five idioms did this job in
 * ferry (the session's refcount, the WebSocket's depth counter, busy/dead flags in SSE, in
 * polling and in the Socket.IO client, the connection's in-process flag), and some were safe
 * only because a decrement came first in an `&&` (`if (--busy == 0 && dead)`).
 *
 * The rule. An object that can be closed from inside its own callbacks embeds a ferry_life.
 *   1. It is born with one reference, its own, which it keeps until it is closed.
 *   2. Around every call out that may close it, it holds a reference:
 *          ferry_life_hold(&o->life);
 *          o->cb(o, ...);                 (may close o: o stays allocated)
 *          if (ferry_life_drop(&o->life)) (the last reference: o was closed meanwhile)
 *              o_free(o);
 *      Anything else that keeps a pointer to the object (a table, an attached stream, a
 *      request in flight, an upper layer) holds a reference the same way, for as long.
 *   3. Closing is a flag, set once, and the drop of the object's own reference:
 *      ferry_life_close(). Whatever calls close does not free; the drop that takes the count
 *      to zero frees, so the object is freed exactly once, never while a frame of its own code
 *      is on the stack, and closing it from inside any of its callbacks is safe.
 *   4. After a call out returns, the object checks ferry_life_closed() before doing more work
 *      (a close arrived during the call: stop, let the drop free it).
 * "Free" is the object's own business: release its memory, or, for an object its owner
 * embeds (a ws_socket), tell the owner, who frees it. An object that owns libuv handles
 * counts each open handle as a reference and drops it in the handle's close callback, so the
 * memory goes after the last close callback too (libuv's rule, STYLE.md smell 1).
 *
 * ferry_life is a plain counter on one loop: no atomics, no allocation. */
#ifndef FERRY_COMMON_LIFE_H
#define FERRY_COMMON_LIFE_H

#include <stdint.h>

#include "common/assert.h"

typedef struct ferry_life {
    uint32_t refs;       /* the object's own (until closed) plus one per holder */
    unsigned closed : 1; /* ferry_life_close() was called */
} ferry_life;

/* Born: one reference, the object's own; not closed. */
static inline void ferry_life_init(ferry_life *l)
{
    l->refs = 1;
    l->closed = 0;
}

/* Take a reference: around a call out, or for as long as something keeps a pointer. */
static inline void ferry_life_hold(ferry_life *l)
{
    FERRY_ASSERT(l->refs > 0);
    l->refs++;
}

/* Give a reference back. Returns 1 when it was the last one: the object is closed and the
 * caller frees it now (and touches it no more); 0 otherwise. */
static inline int ferry_life_drop(ferry_life *l)
{
    FERRY_ASSERT(l->refs > 0);
    if (--l->refs > 0)
        return 0;
    FERRY_ASSERT(l->closed); /* the object's own reference goes only with its close */
    return 1;
}

/* Close: set the flag and drop the object's own reference, the first time only. Returns 1
 * when that was the last reference (free now); 0 when holders remain (the last of them frees)
 * or the object was already closed. */
static inline int ferry_life_close(ferry_life *l)
{
    if (l->closed)
        return 0;
    l->closed = 1;
    return ferry_life_drop(l);
}

static inline int ferry_life_closed(const ferry_life *l)
{
    return l->closed;
}

/* Is a reference held besides the object's own: a call out under way, or a holder? */
static inline int ferry_life_held(const ferry_life *l)
{
    return l->refs > (l->closed ? 0u : 1u);
}

#endif
