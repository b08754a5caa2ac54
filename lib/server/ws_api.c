/* The public plain-WebSocket API: routes, connections, send and close (ferry.h). It lives in
 * the composition root because a route belongs to the server (its HTTP layer and its wheel);
 * lib/ws itself knows nothing of the server or the engine. */
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/utf8.h"
#include "server/server.h"
#include "ws/socket.h"

typedef struct ws_route {
    ferry_server *srv;
    ferry_ws_config cfg;
    ferry_ws_callbacks cb;
    void *ud;
} ws_route;

struct ferry_ws {
    ws_socket sock; /* first: the socket callbacks get back to us with container_of */
    ws_route *route;
    void *data;
    int closing; /* ferry_ws_close was called */
};

void ferry_ws_config_init(ferry_ws_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_message = 16u * 1024 * 1024;
    cfg->max_fragments = 65536;
    cfg->per_message_deflate = 0;
    cfg->deflate_threshold = 1024;
}

static void on_message(ws_socket *w, const char *data, size_t len, int binary)
{
    ferry_ws *ws = container_of(w, ferry_ws, sock);
    if (ws->route->cb.on_message != NULL)
        ws->route->cb.on_message(ws, data, len, binary, ws->route->ud);
}

static void on_close(ws_socket *w, int code)
{
    ferry_ws *ws = container_of(w, ferry_ws, sock);
    if (ws->route->cb.on_close != NULL)
        ws->route->cb.on_close(ws, code, ws->route->ud);
    ferry_mem_free(ws);
}

static const ws_socket_handler handler = {on_message, NULL, on_close};

static void on_request(ferry_req *req, void *ud)
{
    ws_route *r = ud;
    const char *why = NULL;
    ws_handshake hs;
    if (!ferry_req_origin_allowed(req)) {
        static const char msg[] = "Origin not allowed\n";
        FERRY_LOG(FERRY_LOG_INFO, "ws", NULL, "handshake refused: origin not allowed");
        ferry_req_respond_text(req, 403, "text/plain; charset=UTF-8", msg, sizeof(msg) - 1);
        return;
    }
    if (ws_handshake_check(req, r->cfg.per_message_deflate, &hs, &why) != 0) {
        FERRY_LOG(FERRY_LOG_INFO, "ws", NULL, "handshake refused: %s", why);
        ws_handshake_reject(req, why);
        return;
    }
    ferry_ws *ws = ferry_mem_calloc(1, sizeof(*ws));
    if (ws == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ws->route = r;
    ws_socket_limits lim = {r->cfg.max_message, r->cfg.max_fragments, r->cfg.deflate_threshold};
    if (ws_socket_accept(&ws->sock, req, &hs, &r->srv->wheel, &lim, &handler) != 0) {
        ferry_mem_free(ws);
        return;
    }
    if (r->cb.on_open != NULL) {
        /* A close inside the callback defers on_close (and the free) until it returns. */
        ws_socket_hold(&ws->sock);
        r->cb.on_open(ws, r->ud);
        ws_socket_release(&ws->sock);
    }
}

int ferry_ws_route(ferry_server *srv, const char *path, const ferry_ws_config *cfg,
                   const ferry_ws_callbacks *cb, void *user_data)
{
    if (srv == NULL || path == NULL || path[0] != '/' || cb == NULL)
        return -FERRY_EINVAL;
    ws_route *r = ferry_mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return -FERRY_ENOMEM;
    r->srv = srv;
    if (cfg != NULL)
        r->cfg = *cfg;
    else
        ferry_ws_config_init(&r->cfg);
    if (r->cfg.max_message == 0 || r->cfg.max_fragments == 0) {
        ferry_mem_free(r);
        return -FERRY_EINVAL;
    }
    r->cb = *cb;
    r->ud = user_data;
    /* Every method on the path comes here, so that a plain GET learns why it failed. */
    return ferry_http_add_owned_route(&srv->http, NULL, path, 0, on_request, r, ferry_mem_free);
}

int ferry_ws_send(ferry_ws *ws, const void *data, size_t len, int binary)
{
    if (ws->closing || ws->sock.stream.state != WS_STREAM_OPEN)
        return -FERRY_ECLOSED;
    if (!binary && !ferry_utf8_valid(data, len))
        return -FERRY_EUTF8;
    ferry_buf *b = ferry_buf_from(data, len);
    if (b == NULL)
        return -FERRY_ENOMEM;
    ws_msg m = {b->data, b->len, b, binary};
    int rc = ws_socket_send(&ws->sock, &m, 1);
    ferry_buf_release(b);
    return rc;
}

int ferry_ws_close(ferry_ws *ws, int code, const char *reason)
{
    if (code != 0 && (code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 ||
                      code == 1015 || (code > 1014 && code < 3000)))
        return -FERRY_EINVAL;
    if (reason != NULL && !ferry_utf8_valid(reason, strlen(reason)))
        return -FERRY_EINVAL;
    if (ws->closing || ws->sock.stream.state != WS_STREAM_OPEN)
        return -FERRY_ECLOSED;
    ws->closing = 1;
    ws_socket_close(&ws->sock, code, reason);
    return 0;
}

size_t ferry_ws_buffered_amount(const ferry_ws *ws)
{
    return ws_socket_pending(&ws->sock);
}

void ferry_ws_set_data(ferry_ws *ws, void *data)
{
    ws->data = data;
}

void *ferry_ws_get_data(const ferry_ws *ws)
{
    return ws->data;
}

ferry_server *ferry_ws_server(const ferry_ws *ws)
{
    return ws->route->srv;
}
