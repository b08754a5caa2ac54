/* ferry: the standalone server. Serves a static folder and socket.io-client's bundle, relays
 * events between Socket.IO clients in rooms within the limits of its allowlists, and takes
 * publishes from any backend over HTTP. `ferry --help` lists the flags; docs/server.md explains
 * them. SIGTERM or SIGINT closes every session and exits 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <ferry.h>

#include "clientjs.h"
#include "config.h"
#include "publish.h"
#include "relay.h"
#include "suite.h"

typedef struct app {
    ferry_server *srv;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    publish_ctx publish;
    int closing;
} app;

static void on_closed(ferry_server *srv, void *ud)
{
    (void)srv;
    (void)ud;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app *a = sig->data;
    if (!a->closing) {
        a->closing = 1;
        fprintf(stderr, "ferry: %s, closing\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        ferry_server_close(a->srv, on_closed, a);
    }
    /* Both handles go, so that uv_run returns once the server has closed. */
    if (!uv_is_closing((uv_handle_t *)&a->sigterm))
        uv_close((uv_handle_t *)&a->sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->sigint))
        uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void print_url(const app_config *cfg, int port, const char *what)
{
    int v6 = strchr(cfg->host, ':') != NULL;
    printf("ferry: %s http://%s%s%s:%d", what, v6 ? "[" : "", cfg->host, v6 ? "]" : "", port);
}

int main(int argc, char **argv)
{
    app_config cfg;
    int prc = app_config_parse(&cfg, argc, argv);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    ferry_set_log_cb(NULL, cfg.log_level, NULL);

    ferry_server_config sc;
    ferry_server_config_init(&sc);
    sc.path = cfg.path;
    sc.ping_interval_ms = cfg.ping_interval_ms;
    sc.ping_timeout_ms = cfg.ping_timeout_ms;
    sc.max_payload = cfg.max_payload;
    if (cfg.transports != 0)
        sc.transports = cfg.transports;
    sc.static_root = cfg.static_root;
    sc.cors_origins = cfg.cors_origins;
    if (cfg.suite)
        sc.connect_timeout_ms = 1000;

    uv_loop_t *loop = uv_default_loop();
    app a = {0};
    relay *r = NULL;
    clientjs *cj = NULL;
    int found = 0;
    int rc = ferry_server_new(loop, &sc, &a.srv);
    if (rc != 0) {
        fprintf(stderr, "ferry: cannot create the server: %s\n", ferry_strerror(rc));
        return 1;
    }
    if (cfg.suite)
        rc = suite_install(a.srv);
    else
        rc = relay_new(a.srv, &cfg, &r);
    if (rc == 0 && !cfg.suite) {
        a.publish.cfg = &cfg;
        a.publish.relay = r;
        rc = publish_install(a.srv, &a.publish);
    }
    if (rc == 0)
        rc = clientjs_install(a.srv, cfg.path, cfg.client_js, &cj, &found);
    const char *step = "set up";
    if (rc == 0) {
        step = "listen";
        rc = ferry_server_listen(a.srv, cfg.host, cfg.port);
    }
    if (rc != 0) {
        fprintf(stderr, "ferry: cannot %s on %s:%d: %s%s\n", step, cfg.host, cfg.port,
                ferry_strerror(rc),
                rc == -FERRY_EINVAL && step[0] == 'l'
                    ? " (--host takes an IPv4 or IPv6 address such as 127.0.0.1 or ::1)"
                    : "");
        ferry_server_close(a.srv, NULL, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        relay_free(r);
        clientjs_free(cj);
        uv_loop_close(loop);
        return 1;
    }
    if (!found)
        fprintf(stderr,
                "ferry: socket.io-client's bundle not found (run `npm ci`, or pass "
                "--client-js): %s answers 404\n",
                CLIENTJS_PATH);

    uv_signal_init(loop, &a.sigterm);
    uv_signal_init(loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start_oneshot(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start_oneshot(&a.sigint, on_signal, SIGINT);

    int port = ferry_server_port(a.srv);
    print_url(&cfg, port, "listening on");
    printf(" (Socket.IO path %s)\n", cfg.path);
    if (cfg.static_root != NULL) {
        print_url(&cfg, port, "open");
        printf("/ in a browser (files from %s)\n", cfg.static_root);
    }
    if (cfg.suite)
        printf("ferry: socket.io-protocol test suite mode: namespaces / and /custom, "
               "ping %u/%u\n",
               (unsigned)cfg.ping_interval_ms, (unsigned)cfg.ping_timeout_ms);
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);
    relay_free(r);
    clientjs_free(cj);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
