/* The composition root: struct ferry_server, the public object of ferry.h, and the one place
 * that knows every layer. It owns the HTTP layer, the timer wheel and the engine, and hangs the
 * Socket.IO layer on the engine's session hook when the application first asks for a
 * namespace. Nothing below includes this file (scripts/check-includes.sh); unit tests and test
 * servers may look inside.
 *
 * Close order: sessions first (their transports close their connections), then the HTTP layer
 * (listeners and remaining connections), then the loop handles (the wheel timer and the
 * engine's flush prepare); the user's callback runs after the last close callback, and the
 * memory is freed right after it returns. */
#ifndef FERRY_SERVER_SERVER_H
#define FERRY_SERVER_SERVER_H

#include <uv.h>

#include "adapter/adapter.h"
#include "common/timerwheel.h"
#include "engine/engine.h"
#include "http/http.h"
#include "socket/sio.h"
#include "ferry.h"

struct ferry_server {
    uv_loop_t *loop;
    ferry_server_config cfg; /* strings point at owned copies */
    ferry_http http;
    uv_timer_t wheel_timer;
    ferry_wheel wheel;
    ferry_engine *engine;
    ferry_sio *sio; /* the Socket.IO layer, once the application asked for a namespace */
    struct ferry_metrics *metrics; /* metrics.c, once the application asked for them */
    const ferry_adapter_factory *adapters; /* makes each namespace's adapter (rooms) */
    struct ferry_forward *forward; /* forward.c: requests for other nodes' sessions */
    void *data;
    int closing;
    unsigned open_handles; /* wheel timer + the engine's prepare, closed last */
    ferry_close_cb close_cb;
    void *close_ud;
};

/* Make the namespaces' adapters with f (borrowed for the server's life) instead of the local
 * one: the seam where a Redis adapter (issue 18) plugs in; not public until that issue gives
 * it a public form. Before the first ferry_of(): 0, -FERRY_EINVAL (f or f->create NULL) or
 * -FERRY_EBUSY (the Socket.IO layer exists already, or the engine level is in use). */
int ferry_server_set_adapter(ferry_server *srv, const ferry_adapter_factory *f);

#endif
