/* The smallest ferry program: an Engine.IO server that echoes every message back.
 *
 *   echo [--port N]     listen on 127.0.0.1:N (default 3000; 0 picks a free port)
 *   echo --suite        the settings the public engine.io-protocol test suite expects:
 *                       port 3000, path /engine.io/, pingInterval 300, pingTimeout 200
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ferry.h>

static void on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    ferry_session_send(s, data, len, binary); /* the bytes are copied: data may go now */
}

static void on_session(ferry_session *s, void *ud)
{
    ferry_session_on_message(s, on_message, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    ferry_server_close(sig->data, NULL, NULL); /* then uv_run returns */
    uv_close((uv_handle_t *)sig, NULL);
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    int port = 3000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--suite") == 0) {
            cfg.ping_interval_ms = 300;
            cfg.ping_timeout_ms = 200;
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        }
    }
    uv_loop_t *loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = ferry_server_listen(srv, "127.0.0.1", port);
    if (rc != 0) {
        fprintf(stderr, "echo: %s\n", ferry_strerror(rc));
        return 1;
    }
    ferry_server_on_session(srv, on_session, NULL);
    uv_signal_t sig;
    uv_signal_init(loop, &sig);
    sig.data = srv;
    uv_signal_start_oneshot(&sig, on_signal, SIGTERM);
    printf("echo: listening on http://127.0.0.1:%d%s\n", ferry_server_port(srv), cfg.path);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
