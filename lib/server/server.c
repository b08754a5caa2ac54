/* The public server object (the composition root, server.h): configuration, listening, routes,
 * the hooks that reach the engine and the Socket.IO layer, and the asynchronous close. */
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/forward.h"

/* Descriptors kept for what is not a client connection: listeners, the loop's epoll, signal
 * and async pipes, libuv's EMFILE reserve, log files, static files being served. */
#define FD_RESERVE 32

/* As many connections as the process's descriptor limit (soft RLIMIT_NOFILE) allows, so that
 * max_connections says no (with a log line) before accept() runs out of descriptors (libuv then
 * closes new connections without telling anyone). */
static uint32_t default_max_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1000000;
    if (rl.rlim_cur <= 2 * FD_RESERVE)
        return (uint32_t)(rl.rlim_cur / 2);
    return rl.rlim_cur - FD_RESERVE > 1000000 ? 1000000 : (uint32_t)(rl.rlim_cur - FD_RESERVE);
}

void ferry_server_config_init(ferry_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = "/socket.io/";
    cfg->ping_interval_ms = 25000;
    cfg->ping_timeout_ms = 20000;
    cfg->upgrade_timeout_ms = 10000;
    cfg->max_payload = 1000000;
    cfg->max_session_queue_bytes = 8u * 1024 * 1024;
    cfg->transports = FERRY_TRANSPORT_POLLING | FERRY_TRANSPORT_WEBSOCKET;
    cfg->allow_upgrades = 1;
    cfg->short_poll_interval_ms = 1000;
    cfg->max_header_bytes = 16384;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 5000;
    cfg->max_connections = default_max_connections();
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->max_tls_handshakes = 256;
    cfg->sse_keepalive_ms = 15000;
    cfg->sse_recycle_bytes = 4u * 1024 * 1024;
    cfg->ws_deflate_threshold = 1024;
    cfg->connect_timeout_ms = 45000;
    cfg->max_attachments = 10;
    cfg->recovery_max_bytes = 16u * 1024 * 1024;
    cfg->recovery_max_packets = 10000;
    cfg->admission_timeout_ms = 10000;
    cfg->max_pending_admissions = 1024;
    cfg->new_session_addresses = 10000;
}

static int valid_config(const ferry_server_config *c)
{
    size_t n = c->path ? strlen(c->path) : 0;
    return n >= 1 && c->path[0] == '/' && c->path[n - 1] == '/' && c->ping_interval_ms > 0 &&
           c->ping_timeout_ms > 0 && c->max_payload > 0 && c->max_header_bytes >= 256 &&
           c->transports != 0 && (c->transports & ~ferry_transport_all()) == 0 &&
           c->max_session_queue_bytes > 0 && c->new_session_rate <= 1000000 &&
           (c->new_session_rate == 0 ||
            (c->new_session_addresses >= 1 && c->new_session_addresses <= (1u << 24)));
}

/* A write to a connection the peer has reset raises SIGPIPE, whose default action ends the
 * process: one client hanging up during a WebSocket handshake (the 101 in one write, the open
 * packet in a second that meets the reset) killed every session on the server (issue 9).
 * libuv writes streams with write()/writev(), which take no MSG_NOSIGNAL, so the only
 * protection that covers every write is the disposition: ignored, the write returns EPIPE and
 * the connection closes like any other I/O error. Only the default disposition is changed; a
 * handler or SIG_IGN the application chose is left as it is (ferry.h, "Signals"). */
static void make_sigpipe_harmless(void)
{
#ifdef SIGPIPE
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) != 0)
        return;
    if ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
#endif
}

int ferry_server_new(uv_loop_t *loop, const ferry_server_config *cfg, ferry_server **out)
{
    ferry_server_config defaults;
    if (cfg == NULL) {
        ferry_server_config_init(&defaults);
        cfg = &defaults;
    }
    if (loop == NULL || out == NULL || !valid_config(cfg) || ferry_engine_check_config(cfg) != 0)
        return -FERRY_EINVAL;
    make_sigpipe_harmless();
    ferry_server *srv = ferry_mem_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -FERRY_ENOMEM;
    srv->loop = loop;
    srv->adapters = &ferry_adapter_local;
    srv->cfg = *cfg;
    srv->cfg.path = ferry_mem_strdup(cfg->path);
    srv->cfg.static_root = NULL;
    srv->cfg.cors_origins = NULL;
    if (srv->cfg.new_session_burst == 0)
        srv->cfg.new_session_burst = srv->cfg.new_session_rate;
    if (srv->cfg.path == NULL) {
        ferry_mem_free(srv);
        return -FERRY_ENOMEM;
    }
    ferry_http_limits limits = {
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_payload,
        .header_timeout_ms = cfg->header_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
        .tls_handshake_timeout_ms = cfg->tls_handshake_timeout_ms,
        .max_tls_handshakes = cfg->max_tls_handshakes,
    };
    if (ferry_engine_new(loop, &srv->cfg, &srv->wheel, srv, &srv->engine) != 0) {
        ferry_mem_free((char *)srv->cfg.path);
        ferry_mem_free(srv);
        return -FERRY_ENOMEM;
    }
    uv_timer_init(loop, &srv->wheel_timer);
    srv->wheel_timer.data = &srv->wheel;
    ferry_wheel_init(&srv->wheel, &srv->wheel_timer);
    int rc = ferry_http_init(&srv->http, loop, &srv->wheel, &limits, cfg->static_root,
                             cfg->cors_origins, cfg->cors_credentials);
    if (rc == 0)
        rc = ferry_http_add_route(&srv->http, NULL, srv->cfg.path,
                                  FERRY_ROUTE_PREFIX | FERRY_ROUTE_CORS, ferry_engine_on_request,
                                  ferry_engine_on_request_head, srv->engine);
    srv->open_handles = 2;
    if (rc != 0) {
        /* Nothing listens yet: close synchronously-enough through the normal path. */
        ferry_server_close(srv, NULL, NULL);
        return rc;
    }
    *out = srv;
    return 0;
}

int ferry_server_listen(ferry_server *srv, const char *addr, int port)
{
    if (srv->closing)
        return -FERRY_ECLOSED;
    int rc = ferry_http_listen(&srv->http, addr, port);
    if (rc == 0)
        FERRY_LOG(FERRY_LOG_INFO, "server", NULL, "listening on %s:%d", addr,
                  ferry_http_port(&srv->http));
    return rc;
}

int ferry_server_port(const ferry_server *srv)
{
    return ferry_http_port(&srv->http);
}

int ferry_server_listen_tls(ferry_server *srv, const char *addr, int port, ferry_tls *tls)
{
    if (srv->closing)
        return -FERRY_ECLOSED;
    if (tls == NULL)
        return -FERRY_EINVAL;
    int rc = ferry_http_listen_ex(&srv->http, addr, port, tls, 0);
    if (rc == 0)
        FERRY_LOG(FERRY_LOG_INFO, "server", NULL, "listening on %s:%d (TLS)", addr, port);
    return rc;
}

int ferry_server_listen_fd(ferry_server *srv, int fd, ferry_tls *tls)
{
    if (srv->closing) {
        if (fd >= 0)
            close(fd);
        return -FERRY_ECLOSED;
    }
    int rc = ferry_http_listen_fd(&srv->http, fd, tls);
    if (rc == 0)
        FERRY_LOG(FERRY_LOG_INFO, "server", NULL, "listening on descriptor %d%s", fd,
                  tls != NULL ? " (TLS)" : "");
    return rc;
}

int ferry_server_listen_redirect(ferry_server *srv, const char *addr, int port, int https_port)
{
    if (srv->closing)
        return -FERRY_ECLOSED;
    if (https_port <= 0 || https_port > 65535)
        return -FERRY_EINVAL;
    return ferry_http_listen_ex(&srv->http, addr, port, NULL, https_port);
}

int ferry_server_set_tls(ferry_server *srv, ferry_tls *old, ferry_tls *tls)
{
    return ferry_http_set_tls(&srv->http, old, tls);
}

int ferry_server_listener_port(const ferry_server *srv, unsigned index)
{
    return ferry_http_listener_port(&srv->http, index);
}

int ferry_server_route(ferry_server *srv, const char *method, const char *path, ferry_http_cb cb,
                       void *user_data)
{
    if (cb == NULL)
        return -FERRY_EINVAL;
    return ferry_http_add_route(&srv->http, method, path, FERRY_ROUTE_CORS, (ferry_route_fn)cb,
                                NULL, user_data);
}

static void server_free(ferry_server *srv)
{
    if (srv->sio != NULL)
        sio_free(srv->sio);
    ferry_http_free(&srv->http);
    ferry_metrics_free(srv->metrics);
    ferry_engine_free(srv->engine);
    ferry_mem_free((char *)srv->cfg.path);
    ferry_mem_free(srv);
}

static void handle_closed(ferry_server *s)
{
    if (--s->open_handles > 0)
        return;
    if (s->close_cb != NULL)
        s->close_cb(s, s->close_ud);
    server_free(s);
}

static void on_handle_close(uv_handle_t *h)
{
    /* Both handles carry the server in their data once the close began. */
    handle_closed(h->data);
}

static void on_http_closed(ferry_http *http)
{
    ferry_server *srv = container_of(http, ferry_server, http);
    /* Sessions on polling hold no connection; they were closed before the HTTP layer. */
    ferry_wheel_stop(&srv->wheel);
    ferry_engine_close_handles(srv->engine, on_handle_close, srv);
    srv->wheel_timer.data = srv;
    uv_close((uv_handle_t *)&srv->wheel_timer, on_handle_close);
}

int ferry_server_close(ferry_server *srv, ferry_close_cb cb, void *user_data)
{
    if (srv->closing)
        return -FERRY_EBUSY;
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_ud = user_data;
    /* Answers written while shutting down (a held poll's close packet) end their
     * connection: Connection: close. */
    srv->http.draining = 1;
    ferry_engine_shutdown(srv->engine, FERRY_REASON_SERVER_SHUTTING_DOWN);
    if (srv->metrics != NULL) {
        /* Its timer and listener, closed beside the HTTP layer's; the server waits for them
         * as for its own handles. */
        srv->open_handles++;
        ferry_metrics_close(srv->metrics, handle_closed);
    }
    if (srv->forward != NULL) {
        /* Its requests end (their connections close with the HTTP layer's), then its handles;
         * it frees itself once no Redis reply is owed to it. */
        srv->open_handles++;
        ferry_forward_close(srv->forward, handle_closed);
        srv->forward = NULL;
    }
    ferry_http_close(&srv->http, on_http_closed);
    return 0;
}

void ferry_server_set_data(ferry_server *srv, void *data)
{
    srv->data = data;
}

void *ferry_server_get_data(const ferry_server *srv)
{
    return srv->data;
}

uv_loop_t *ferry_server_loop(const ferry_server *srv)
{
    return srv->loop;
}

/* ------------------------------------------------------------------ the engine's hooks */

int ferry_server_on_session(ferry_server *srv, ferry_session_cb cb, void *user_data)
{
    if (srv->sio != NULL)
        return -FERRY_EBUSY;
    ferry_engine_on_session(srv->engine, cb, user_data);
    return 0;
}

int ferry_server_on_admission(ferry_server *srv, ferry_admission_cb cb, void *user_data)
{
    return ferry_engine_on_admission(srv->engine, cb, user_data);
}

void ferry_server_on_transport_report(ferry_server *srv, ferry_transport_report_cb cb,
                                      void *user_data)
{
    ferry_engine_on_report(srv->engine, cb, user_data);
}

/* ------------------------------------------------------------------ the Socket.IO layer */

/* The layer, created on first use and installed as the engine's session hook; NULL when the
 * application took the engine level (ferry_server_on_session), the server closes, or memory
 * ran out. */
static ferry_sio *server_sio(ferry_server *srv)
{
    if (srv->sio != NULL)
        return srv->sio;
    if (ferry_engine_session_hook(srv->engine) != NULL || srv->closing)
        return NULL; /* the engine level is in use */
    ferry_sio *sio = sio_new(srv, srv->engine, srv->adapters);
    if (sio == NULL)
        return NULL;
    srv->sio = sio;
    ferry_engine_on_session(srv->engine, sio_on_session, sio);
    return sio;
}

ferry_namespace *ferry_of(ferry_server *srv, const char *name)
{
    char buf[FERRY_NAME_MAX + 2];
    const char *full = sio_full_name(name, buf);
    if (srv == NULL || full == NULL)
        return NULL;
    ferry_sio *sio = server_sio(srv);
    return sio != NULL ? sio_of(sio, full) : NULL;
}

int ferry_server_set_adapter(ferry_server *srv, const ferry_adapter_factory *f)
{
    if (srv == NULL || f == NULL || f->create == NULL)
        return -FERRY_EINVAL;
    if (srv->sio != NULL || ferry_engine_session_hook(srv->engine) != NULL || srv->closing)
        return -FERRY_EBUSY;
    srv->adapters = f;
    return 0;
}

int ferry_server_use_redis(ferry_server *srv, ferry_redis *r)
{
    const ferry_adapter_factory *f = ferry_redis_factory(r);
    return f != NULL ? ferry_server_set_adapter(srv, f) : -FERRY_EINVAL;
}

int ferry_server_forward(ferry_server *srv, ferry_redis *r, const ferry_forward_config *cfg)
{
    static const ferry_forward_config defaults = {0};
    if (srv == NULL || r == NULL || srv->closing)
        return -FERRY_EINVAL;
    if (ferry_redis_factory(r) == NULL)
        return -FERRY_EUNSUPPORTED;
    if (srv->forward != NULL)
        return -FERRY_EBUSY;
    return ferry_forward_new(srv, r, cfg != NULL ? cfg : &defaults, &srv->forward);
}

void ferry_server_forward_stats(const ferry_server *srv, ferry_forward_stats *out)
{
    if (srv->forward != NULL)
        ferry_forward_stats_get(srv->forward, out);
    else
        *out = (ferry_forward_stats){0};
}

int ferry_server_on_namespace_request(ferry_server *srv, ferry_namespace_request_cb cb,
                                      void *user_data)
{
    ferry_sio *sio = server_sio(srv);
    if (sio == NULL)
        return ferry_engine_session_hook(srv->engine) != NULL ? -FERRY_EBUSY : -FERRY_ENOMEM;
    sio_on_namespace_request(sio, cb, user_data);
    return 0;
}

/* ------------------------------------------------------------------ transport options */

int ferry_server_transport_option(ferry_server *srv, const char *transport, const char *option,
                                  uint64_t value)
{
    if (srv == NULL)
        return -FERRY_EINVAL;
    int rc = ferry_engine_option_check(transport, option, value);
    if (rc != 0)
        return rc;
    if (srv->closing || !ferry_list_empty(&srv->http.listeners))
        return -FERRY_EBUSY;
    return ferry_engine_option_set(srv->engine, transport, option, value);
}

int ferry_server_transport_option_get(const ferry_server *srv, const char *transport,
                                      const char *option, uint64_t *value)
{
    if (srv == NULL || value == NULL)
        return -FERRY_EINVAL;
    return ferry_engine_option_get(srv->engine, transport, option, value);
}
