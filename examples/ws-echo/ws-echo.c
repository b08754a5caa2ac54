/* A plain WebSocket echo server (RFC 6455, no Engine.IO): every text and binary message comes
 * back unchanged on ws://127.0.0.1:PORT/ (and on Engine.IO sessions at /engine.io/, every transport,
 * for client-js's WebSocket shim). The target of the conformance client
 * (tests/conformance/run.mjs) and of the python3-websockets test.
 *
 *   ferry-ws-echo [--port N]             listen on 127.0.0.1:N (default 9001; 0 picks a free port)
 *           [--deflate]            accept permessage-deflate offers
 *           [--deflate-threshold N] compress replies of at least N bytes (default 0: all)
 *           [--max-message BYTES]  largest message accepted (default 16 MiB), then 1009
 *           [--max-fragments N]    most frames per message (default 65536), then 1009
 *           [--tls-cert FILE --tls-key FILE]  serve wss:// (PEM chain and key; docs/tls.md)
 *
 * It prints "ws-echo: listening on http://127.0.0.1:PORT" once ready and exits 0 on SIGTERM or
 * SIGINT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ferry.h>

static void on_message(ferry_ws *ws, const char *data, size_t len, int binary, void *ud)
{
    ferry_ws_send(ws, data, len, binary); /* copied: data may go once this returns */
}

/* The same echo on Engine.IO sessions at /engine.io/ (every transport), so that one page can
 * compare a native WebSocket on "/" with client-js's WebSocket shim on an Engine.IO session. */
static void on_session_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    ferry_session_send(s, data, len, binary);
}

static void on_session(ferry_session *s, void *ud)
{
    ferry_session_on_message(s, on_session_message, NULL);
}

static ferry_server *srv;
static uv_signal_t sigs[2];

static void on_signal(uv_signal_t *sig, int signum)
{
    ferry_server_close(srv, NULL, NULL); /* then uv_run returns */
    uv_close((uv_handle_t *)&sigs[0], NULL);
    uv_close((uv_handle_t *)&sigs[1], NULL);
}

static int parse_size(const char *s, unsigned long long *out)
{
    char *end;
    *out = strtoull(s, &end, 10);
    return end != s && *end == '\0';
}

static int usage(void)
{
    fprintf(stderr, "usage: ws-echo [--port N] [--deflate] [--deflate-threshold N] "
                    "[--max-message BYTES] [--max-fragments N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    ferry_ws_config wcfg;
    ferry_ws_config_init(&wcfg);
    wcfg.deflate_threshold = 0;
    int port = 9001;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        unsigned long long v;
        if (strcmp(argv[i], "--deflate") == 0) {
            wcfg.per_message_deflate = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--tls-cert") == 0) {
            cert = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--tls-key") == 0) {
            key = argv[++i];
        } else if (i + 1 < argc && parse_size(argv[i + 1], &v)) {
            if (strcmp(argv[i], "--port") == 0 && v <= 65535)
                port = (int)v;
            else if (strcmp(argv[i], "--max-message") == 0 && v > 0)
                wcfg.max_message = (size_t)v;
            else if (strcmp(argv[i], "--max-fragments") == 0 && v > 0 && v <= UINT32_MAX)
                wcfg.max_fragments = (uint32_t)v;
            else if (strcmp(argv[i], "--deflate-threshold") == 0)
                wcfg.deflate_threshold = (size_t)v;
            else
                return usage();
            i++;
        } else {
            return usage();
        }
    }
    /* TLS: the certificate is read before the loop runs; the listener keeps its own
     * reference, so ours goes at once. */
    ferry_tls *tls = NULL;
    if ((cert != NULL) != (key != NULL))
        return usage();
    if (cert != NULL) {
        int trc = ferry_tls_new(NULL, &tls);
        if (trc == 0)
            trc = ferry_tls_add_cert(tls, cert, key);
        if (trc != 0) {
            fprintf(stderr, "ws-echo: %s: %s\n", cert, ferry_strerror(trc));
            ferry_tls_release(tls);
            return 1;
        }
    }
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/"; /* the WebSocket route below takes "/" */
    cfg.transports = ferry_transport_all(); /* every transport the library has */
    uv_loop_t *loop = uv_default_loop();
    ferry_ws_callbacks cb = {.on_message = on_message};
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = ferry_ws_route(srv, "/", &wcfg, &cb, NULL);
    if (rc == 0)
        ferry_server_on_session(srv, on_session, NULL);
    if (rc == 0)
        rc = tls ? ferry_server_listen_tls(srv, "127.0.0.1", port, tls)
                 : ferry_server_listen(srv, "127.0.0.1", port);
    ferry_tls_release(tls);
    if (rc != 0) {
        fprintf(stderr, "ws-echo: %s\n", ferry_strerror(rc));
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        uv_signal_init(loop, &sigs[i]);
        uv_signal_start_oneshot(&sigs[i], on_signal, i == 0 ? SIGTERM : SIGINT);
    }
    printf("ws-echo: listening on %s://127.0.0.1:%d\n", cert ? "https" : "http",
           ferry_server_port(srv));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
