/* ferry: the standalone server. Serves a static folder and socket.io-client's bundle, relays
 * events between Socket.IO clients in rooms within the limits of its allowlists, and takes
 * publishes from any backend over HTTP. `ferry --help` lists the flags; docs/server.md explains
 * them. SIGTERM or SIGINT closes every session and exits 0. With --tls-cert/--tls-key the port
 * speaks TLS, and SIGHUP reloads the certificates (read on a worker thread, then swapped in on
 * the loop; open sessions keep going). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ferry.h>

#include "clientjs.h"
#include "diagnose.h"
#include "config.h"
#include "admit.h"
#include "admin.h"
#include "publish.h"
#include "cluster_api.h"
#include "relay.h"
#include "say.h"
#include "suite.h"
#include "workers.h"

static int worker_index; /* --workers: this process is worker N (1..), else 0 */
static int exit_status;  /* 1: a worker that could not join the shared port */
#define say(level, ...) tool_say("ferry", level, __VA_ARGS__)

typedef struct app {
    ferry_server *srv;
    ferry_redis *redis; /* NULL: one node */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    publish_ctx publish;
    cluster_api_ctx cluster_api;
    int closing;
    admin *admin; /* --admin-token: the admin page */
    /* TLS */
    const app_config *cfg;
    ferry_tls *tls;      /* in use on the TLS listener (our reference) */
    uv_work_t reload;    /* loading certificates off the loop */
    ferry_tls *reloaded; /* the worker's result */
    int reload_rc;
    int reloading;    /* a load is on a worker thread */
    int reload_again; /* SIGHUP came during it: load once more afterwards */
    int has_sighup;
    /* A worker joins the shared port once the others can reach it (join_when_reachable). */
    uv_timer_t join;
    int joining;
    uint64_t join_started;
} app;

/* Read the certificates and keys of cfg into a new TLS context. Touches no loop: runs before
 * uv_run and on a worker thread for SIGHUP. */
static int load_tls(const app_config *cfg, ferry_tls **out)
{
    ferry_tls_config tc;
    ferry_tls_config_init(&tc);
    tc.min_version = cfg->tls_min_version;
    tc.ciphers = cfg->tls_ciphers;
    ferry_tls *tls = NULL;
    int rc = ferry_tls_new(&tc, &tls);
    if (rc != 0)
        say(FERRY_LOG_ERROR, "cannot set up TLS: %s", ferry_strerror(rc));
    for (size_t i = 0; rc == 0 && i < cfg->ntls_cert; i++) {
        rc = ferry_tls_add_cert(tls, cfg->tls_cert[i], cfg->tls_key[i]);
        if (rc != 0)
            say(FERRY_LOG_ERROR, "cannot use the certificate %s with the key %s: %s",
                    cfg->tls_cert[i], cfg->tls_key[i], ferry_strerror(rc));
    }
    if (rc != 0) {
        ferry_tls_release(tls);
        return rc;
    }
    *out = tls;
    return 0;
}

static void reload_work(uv_work_t *w)
{
    app *a = w->data;
    a->reloaded = NULL;
    a->reload_rc = load_tls(a->cfg, &a->reloaded);
}

static void start_reload(app *a);

static void reload_done(uv_work_t *w, int status)
{
    app *a = w->data;
    a->reloading = 0;
    ferry_tls *fresh = a->reloaded;
    a->reloaded = NULL;
    if (status != 0 || a->reload_rc != 0) {
        say(FERRY_LOG_ERROR, "SIGHUP: reload failed (%s): the certificates in use stay",
                ferry_strerror(status != 0 ? status : a->reload_rc));
    } else if (!a->closing) {
        int n = ferry_server_set_tls(a->srv, a->tls, fresh);
        if (n >= 0) {
            ferry_tls_release(a->tls);
            a->tls = fresh;
            fresh = NULL;
            say(FERRY_LOG_INFO, "SIGHUP: certificates reloaded (%zu)", a->cfg->ntls_cert);
        } else {
            say(FERRY_LOG_ERROR, "SIGHUP: reload failed (%s)", ferry_strerror(n));
        }
    }
    ferry_tls_release(fresh);
    if (a->reload_again && !a->closing) {
        a->reload_again = 0;
        start_reload(a);
    }
}

static void start_reload(app *a)
{
    if (a->reloading) {
        a->reload_again = 1;
        return;
    }
    a->reload.data = a;
    if (uv_queue_work(a->sighup.loop, &a->reload, reload_work, reload_done) == 0)
        a->reloading = 1;
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    app *a = sig->data;
    if (a->tls == NULL)
        say(FERRY_LOG_WARN, "SIGHUP: nothing to reload (no --tls-cert), going on");
    else if (!a->closing)
        start_reload(a);
}

static void on_closed(ferry_server *srv, void *ud)
{
    app *a = ud;
    (void)srv;
    /* The server's adapters are destroyed right after this returns, before the link's
     * handles finish closing (ferry_redis_close()). */
    if (a != NULL && a->redis != NULL) {
        ferry_redis_close(a->redis, NULL, NULL);
        a->redis = NULL;
    }
}

/* why: the log line (NULL: none, the caller said why). */
static void app_close(app *a, const char *why)
{
    if (!a->closing) {
        a->closing = 1;
        if (why != NULL)
            say(FERRY_LOG_INFO, "%s, closing", why);
        admin_close(a->admin);
        ferry_server_close(a->srv, on_closed, a);
    }
    /* Both handles go, so that uv_run returns once the server has closed. */
    if (!uv_is_closing((uv_handle_t *)&a->sigterm))
        uv_close((uv_handle_t *)&a->sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->sigint))
        uv_close((uv_handle_t *)&a->sigint, NULL);
    if (a->has_sighup && !uv_is_closing((uv_handle_t *)&a->sighup))
        uv_close((uv_handle_t *)&a->sighup, NULL);
    if (a->joining && !uv_is_closing((uv_handle_t *)&a->join))
        uv_close((uv_handle_t *)&a->join, NULL);
    if (worker_index > 0)
        workers_ignore_signals();
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app_close(sig->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* --workers: the kernel hands a worker connections as soon as it listens on the shared port,
 * and the requests of one polling or SSE session come on several connections, so they reach
 * every worker: the others must be able to forward to this one's sessions from the first.
 * So a worker listens on the shared port (and tells the supervisor it is ready) only once its
 * address is in Redis (the forwarder's first publish, within a few hundred ms of the Redis
 * link coming up), or after JOIN_WAIT_MS without Redis: then it serves alone until Redis is
 * back, as a node does. */
#define JOIN_CHECK_MS 10
#define JOIN_WAIT_MS 10000

static void join_shared_port(uv_timer_t *t)
{
    app *a = t->data;
    const app_config *cfg = a->cfg;
    if (a->closing)
        return;
    ferry_forward_stats st;
    ferry_server_forward_stats(a->srv, &st);
    uint64_t waited = uv_now(t->loop) - a->join_started;
    if (st.published == 0 && waited < JOIN_WAIT_MS) {
        uv_timer_start(t, join_shared_port, JOIN_CHECK_MS, 0);
        return;
    }
    if (st.published == 0)
        say(FERRY_LOG_WARN, "worker %d: its address is not in Redis after %d s: serving anyway "
            "(the other workers forward to it once Redis is reached)", worker_index,
            JOIN_WAIT_MS / 1000);
    uv_close((uv_handle_t *)t, NULL);
    a->joining = 0;
    /* Our own SO_REUSEPORT socket on the supervisor's port (workers.h). */
    int fd = -1;
    int rc = workers_listen_socket(cfg->host, cfg->port, &fd);
    if (rc == 0)
        rc = ferry_server_listen_fd(a->srv, fd, a->tls);
    if (rc != 0) {
        say(FERRY_LOG_ERROR, "worker %d cannot listen on port %d: %s", worker_index, cfg->port,
            ferry_strerror(rc));
        exit_status = 1;
        app_close(a, NULL);
        return;
    }
    /* The supervisor prints the banner once every worker listens. */
    printf("ferry: worker %d (pid %ld) is cluster node %s on port %d\n", worker_index,
           (long)getpid(), ferry_redis_node_id(a->redis), cfg->port);
    if (cfg->metrics_port >= 0)
        printf("ferry: worker %d metrics at http://%s:%d/metrics\n", worker_index,
               cfg->metrics_host, ferry_server_metrics_port(a->srv));
    fflush(stdout);
    workers_ready();
}

static void print_url(const app_config *cfg, int port, const char *what, int tls)
{
    int v6 = strchr(cfg->host, ':') != NULL;
    printf("ferry: %s %s://%s%s%s:%d", what, tls ? "https" : "http", v6 ? "[" : "", cfg->host,
           v6 ? "]" : "", port);
}

int main(int argc, char **argv)
{
    app_config cfg;
    int prc = app_config_parse(&cfg, argc, argv);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    ferry_set_log_cb(NULL, cfg.log_level, NULL);
    ferry_set_log_format(cfg.log_json ? FERRY_LOG_FORMAT_JSON : FERRY_LOG_FORMAT_TEXT);
    tool_say_json(cfg.log_json);
    worker_index = workers_index();
    if (worker_index > 0)
        workers_worker_start();
    else if (cfg.workers > 0)
        return workers_supervise(&cfg, argc, argv);

    ferry_server_config sc;
    ferry_server_config_init(&sc);
    sc.path = cfg.path;
    sc.ping_interval_ms = cfg.ping_interval_ms;
    sc.ping_timeout_ms = cfg.ping_timeout_ms;
    sc.max_payload = cfg.max_payload;
    /* Every transport by default: official clients still get the spec's handshake (the
     * extension transports are offered only to clients that ask, docs/protocol.md section 1). */
    sc.transports = cfg.transports != 0 ? cfg.transports : ferry_transport_all();
    sc.static_root = cfg.static_root;
    sc.cors_origins = cfg.cors_origins;
    sc.tls_handshake_timeout_ms = cfg.tls_handshake_timeout_ms;
    sc.max_tls_handshakes = cfg.tls_max_handshakes;
    sc.recovery_ms = cfg.recovery_ms;
    sc.recovery_max_bytes = cfg.recovery_bytes;
    sc.recovery_max_packets = cfg.recovery_packets;
    /* The policy acts at --max-queue-bytes; past twice that a session is closed whatever the
     * policy (packets neither volatile nor keyed still queue under drop-volatile and latest). */
    sc.max_session_queue_bytes = cfg.backpressure == FERRY_BACKPRESSURE_CLOSE
                                     ? (size_t)cfg.max_queue_bytes
                                     : 2 * (size_t)cfg.max_queue_bytes;
    sc.new_session_rate = cfg.new_session_rate;
    sc.new_session_burst = cfg.new_session_burst;
    sc.trust_forwarded_for = cfg.trust_forwarded_for;
    sc.require_post_token = cfg.require_post_token;
    sc.header_timeout_ms = cfg.header_timeout_ms;
    if (cfg.suite)
        sc.connect_timeout_ms = 1000;

    uv_loop_t *loop = uv_default_loop();
    app a = {0};
    a.cfg = &cfg;
    int tls = cfg.ntls_cert > 0;
    /* Certificates are read before the loop runs (and on a worker thread for SIGHUP). */
    if (tls && load_tls(&cfg, &a.tls) != 0)
        return 1;
    relay *r = NULL;
    clientjs *cj = NULL;
    int found = 0;
    int rc = ferry_server_new(loop, &sc, &a.srv);
    if (rc != 0) {
        say(FERRY_LOG_ERROR, "cannot create the server: %s", ferry_strerror(rc));
        return 1;
    }
    if (cfg.redis_url != NULL) {
        ferry_redis_config rcfg = {
            .url = cfg.redis_url, .node_id = cfg.node_id, .sharded = cfg.redis_sharded};
        rc = ferry_redis_new(loop, &rcfg, &a.redis);
        if (rc == 0)
            rc = ferry_server_use_redis(a.srv, a.redis);
        if (rc != 0) {
            fprintf(stderr, "ferry: cannot use Redis (--redis): %s\n",
                    rc == -FERRY_EUNSUPPORTED ? "built without Redis (-DFERRY_WITH_REDIS=OFF)"
                                              : ferry_strerror(rc));
            rc = -FERRY_EINVAL;
        }
    }
    if (rc != 0)
        ; /* reported above */
    else if (cfg.suite)
        rc = suite_install(a.srv);
    else
        rc = relay_new(a.srv, &cfg, &r);
    if (rc == 0 && !cfg.suite) {
        a.publish.cfg = &cfg;
        a.publish.relay = r;
        rc = publish_install(a.srv, &a.publish);
        a.cluster_api.cfg = &cfg;
        if (rc == 0)
            rc = cluster_api_install(a.srv, &a.cluster_api);
    }
    if (rc == 0)
        rc = admit_install(a.srv, &cfg);
    if (rc == 0)
        rc = clientjs_install(a.srv, cfg.path, cfg.client_js, &cj, &found);
    /* ferry's own client at /ferry/ferry.mjs and /ferry/ferry.min.js, from the library. */
    int own_client = 0;
    if (rc == 0) {
        rc = ferry_server_serve_client(a.srv);
        own_client = rc == 0;
        if (rc == -FERRY_EUNSUPPORTED)
            rc = 0; /* built with -DFERRY_WITH_CLIENT_JS=OFF */
    }
    diagnose *diag = NULL;
    if (rc == 0)
        rc = diagnose_install(a.srv, &diag);
    if (rc == 0 && cfg.admin_token != NULL)
        rc = admin_install(a.srv, cfg.admin_token, &a.admin);
    const char *step = "set up";
    int http_port = -1;
    if (rc == 0) {
        step = "listen";
        /* A worker joins the shared port later (join_shared_port). */
        if (worker_index == 0)
            rc = tls ? ferry_server_listen_tls(a.srv, cfg.host, cfg.port, a.tls)
                     : ferry_server_listen(a.srv, cfg.host, cfg.port);
    }
    if (rc == 0 && tls && cfg.http_port >= 0) {
        int https_port = ferry_server_port(a.srv);
        rc = cfg.http_redirect
                 ? ferry_server_listen_redirect(a.srv, cfg.host, cfg.http_port, https_port)
                 : ferry_server_listen(a.srv, cfg.host, cfg.http_port);
        if (rc == 0)
            http_port = ferry_server_listener_port(a.srv, worker_index > 0 ? 0 : 1);
        else
            cfg.port = cfg.http_port; /* for the message below */
    }
    if (rc == 0 && cfg.metrics_port >= 0) {
        step = "serve metrics";
        rc = ferry_server_metrics_listen(a.srv, cfg.metrics_host, cfg.metrics_port, "/metrics");
        if (rc != 0) {
            cfg.host = cfg.metrics_host; /* for the message below */
            cfg.port = cfg.metrics_port;
        }
    }
    if (rc == 0 && a.redis != NULL) {
        /* No sticky sessions: requests for other nodes' sessions go to them (docs/scaling.md).
         * The address they reach this node at: --node-address, else the listen address (the
         * plain HTTP one when the main port speaks TLS and --http-mode serve). */
        char addr[300], nhost[272];
        const char *host = cfg.host;
        int fport = tls && http_port >= 0 && !cfg.http_redirect ? http_port : ferry_server_port(a.srv);
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0)
            host = strchr(host, ':') ? "::1" : "127.0.0.1";
        if (worker_index > 0) {
            /* Workers share their port and the kernel picks the worker of each connection:
             * a forwarded request needs a port of this worker's own. A plain listener on a
             * free port (of --host with --node-address, whose host part is published with
             * it; else of the address published), serving as the main port does. */
            if (cfg.node_address != NULL) {
                const char *colon = strrchr(cfg.node_address, ':');
                const char *h = cfg.node_address;
                size_t hl = (size_t)(colon - h);
                if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
                    h++, hl -= 2;
                snprintf(nhost, sizeof(nhost), "%.*s", (int)hl, h);
            }
            rc = ferry_server_listen(a.srv, cfg.node_address != NULL ? cfg.host : host, 0);
            if (rc == 0) {
                fport = ferry_server_listener_port(a.srv, http_port >= 0 ? 1 : 0);
                if (cfg.node_address != NULL)
                    host = nhost;
            }
        }
        snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, fport);
        ferry_forward_config fc = {
            .secret = cfg.cluster_secret,
            .address = cfg.node_address && worker_index == 0 ? cfg.node_address : addr,
        };
        rc = ferry_server_forward(a.srv, a.redis, &fc);
        if (rc != 0) {
            fprintf(stderr, "ferry: cannot forward to other nodes: invalid --node-address '%s' "
                            "(use an IP address or a host name and a port, e.g. 10.0.0.5:8080 "
                            "or web1.internal:8080)\n",
                    fc.address);
            step = "forward";
        } else if (cfg.node_address == NULL && worker_index == 0 && host != cfg.host) {
            say(FERRY_LOG_WARN, "other nodes reach this one at %s (--node-address: set it "
                                "when nodes run on several machines)", addr);
        } else if (tls && !(http_port >= 0 && !cfg.http_redirect) && cfg.node_address == NULL) {
            say(FERRY_LOG_WARN, "forwarding to this node needs a plain HTTP listener: "
                                "--http-port with --http-mode serve, or --node-address");
        }
    }
    if (rc != 0) {
        say(FERRY_LOG_ERROR, "cannot %s on %s:%d: %s%s", step, cfg.host, cfg.port,
                ferry_strerror(rc),
                rc == -FERRY_EINVAL && strcmp(step, "set up") != 0
                    ? " (--host takes an IPv4 or IPv6 address such as 127.0.0.1 or ::1)"
                    : "");
        admin_close(a.admin);
        ferry_server_close(a.srv, on_closed, &a);
        uv_run(loop, UV_RUN_DEFAULT);
        relay_free(r);
        clientjs_free(cj);
        diagnose_free(diag);
        admin_free(a.admin);
        ferry_tls_release(a.tls);
        uv_loop_close(loop);
        return 1;
    }
    if (!found)
        say(FERRY_LOG_WARN, "socket.io-client's bundle not found (run `npm ci`, or pass "
                "--client-js): %s answers 404",
                CLIENTJS_PATH);

    uv_signal_init(loop, &a.sigterm);
    uv_signal_init(loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start_oneshot(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start_oneshot(&a.sigint, on_signal, SIGINT);
    /* SIGHUP reloads the certificates; without TLS it is ignored rather than ending the server
     * (its default action), so that one habit works for both. */
    uv_signal_init(loop, &a.sighup);
    a.sighup.data = &a;
    uv_signal_start(&a.sighup, on_sighup, SIGHUP);
    a.has_sighup = 1;

    int port = ferry_server_port(a.srv);
    if (worker_index > 0) {
        uv_timer_init(loop, &a.join);
        a.join.data = &a;
        a.joining = 1;
        a.join_started = uv_now(loop);
        join_shared_port(&a.join);
        goto run;
    }
    print_url(&cfg, port, "listening on", tls);
    printf(" (Socket.IO path %s)\n", cfg.path);
    if (http_port >= 0) {
        print_url(&cfg, http_port, "listening on", 0);
        printf(cfg.http_redirect ? " (redirects to https on port %d)\n"
                                 : " (plain HTTP, serving as port %d does)\n",
               port);
    }
    if (own_client) {
        print_url(&cfg, port, "ferry's client at", tls);
        printf("/ferry/ferry.mjs and /ferry/ferry.min.js\n");
    }
    if (a.admin != NULL) {
        print_url(&cfg, port, "admin page at", tls);
        printf("/ferry/admin (--admin-token)\n");
    }
    if (cfg.metrics_port >= 0) {
        int v6 = strchr(cfg.metrics_host, ':') != NULL;
        printf("ferry: metrics at http://%s%s%s:%d/metrics\n", v6 ? "[" : "", cfg.metrics_host,
               v6 ? "]" : "", ferry_server_metrics_port(a.srv));
    }
    if (cfg.static_root != NULL) {
        print_url(&cfg, port, "open", tls);
        printf("/ in a browser (files from %s)\n", cfg.static_root);
    }
    if (cfg.recovery_ms > 0)
        printf("ferry: connection-state recovery: %u ms (--recovery-ms, 0 turns it off)\n",
               (unsigned)cfg.recovery_ms);
    else
        printf("ferry: connection-state recovery: off (--recovery-ms)\n");
    if (cfg.backpressure != FERRY_BACKPRESSURE_CLOSE || cfg.max_queue_bytes != (8u << 20))
        printf("ferry: backpressure: %s at %u bytes queued per client (--backpressure, "
               "--max-queue-bytes)\n",
               ferry_backpressure_name((ferry_backpressure)cfg.backpressure),
               (unsigned)cfg.max_queue_bytes);
    if (a.redis != NULL)
        printf("ferry: cluster node %s, rooms and broadcasts shared through Redis (--redis%s)\n",
               ferry_redis_node_id(a.redis), cfg.redis_sharded ? ", sharded pub/sub" : "");
    if (cfg.suite)
        printf("ferry: socket.io-protocol test suite mode: namespaces / and /custom, "
               "ping %u/%u\n",
               (unsigned)cfg.ping_interval_ms, (unsigned)cfg.ping_timeout_ms);
    fflush(stdout);

run:
    uv_run(loop, UV_RUN_DEFAULT);
    relay_free(r);
    clientjs_free(cj);
    diagnose_free(diag);
    admin_free(a.admin);
    ferry_tls_release(a.tls);
    return uv_loop_close(loop) == 0 ? exit_status : 1;
}
