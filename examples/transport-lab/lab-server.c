/* The transport lab's server (examples/transport-lab, run by lab.mjs): ferry's own browser
 * client at /ferry/ferry.min.js, all four transports, and on the Socket.IO namespace "/":
 *
 *   "tick"  {seq}   sent to every socket --rate times a second: the stream the page compares;
 *   "ping"  (ack)   answered at once with the client's own arguments: the round trip;
 *   "stats" (ack)   the socket's session counters (ferry_socket_counter()): bytes on the wire
 *                   both ways with HTTP heads and framing, requests, packets, messages.
 *
 *   ferry-transport-lab [--host ADDR] [--port N] [--rate N] [--cors-origins LIST]
 *
 * Prints "ferry-transport-lab: listening on http://HOST:PORT" once ready; SIGTERM or SIGINT
 * closes every session and exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ferry.h>

typedef struct lab {
    ferry_server *srv;
    ferry_namespace *nsp;
    uv_timer_t ticker;
    uv_signal_t sigterm, sigint;
    double seq;
} lab;

static void on_tick(uv_timer_t *t)
{
    lab *l = t->data;
    cJSON *args = cJSON_CreateArray();
    cJSON *tick = cJSON_CreateObject();
    if (args != NULL && tick != NULL) {
        cJSON_AddNumberToObject(tick, "seq", ++l->seq);
        cJSON_AddItemToArray(args, tick);
        tick = NULL;
        ferry_namespace_emit(l->nsp, "tick", args); /* encoded once for every socket */
    }
    cJSON_Delete(tick);
    cJSON_Delete(args);
}

static void on_ping(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    if (ack != NULL)
        ferry_ack_send(ack, args); /* the client's timestamp comes back as it went */
}

static void on_stats(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    if (ack == NULL)
        return;
    cJSON *answer = cJSON_CreateArray();
    cJSON *stats = cJSON_CreateObject();
    ferry_session *session = ferry_socket_session(s);
    if (answer == NULL || stats == NULL || session == NULL) {
        cJSON_Delete(stats);
        cJSON_Delete(answer);
        ferry_ack_send(ack, NULL);
        return;
    }
    cJSON_AddStringToObject(stats, "sid", ferry_session_id(session));
    cJSON_AddStringToObject(stats, "transport", ferry_session_transport(session));
    for (int i = 0; i < FERRY_COUNTERS; i++)
        cJSON_AddNumberToObject(stats, ferry_counter_name((ferry_counter)i),
                                (double)ferry_socket_counter(s, (ferry_counter)i));
    cJSON_AddItemToArray(answer, stats);
    ferry_ack_send(ack, answer);
    cJSON_Delete(answer);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    lab *l = sig->data;
    fprintf(stderr, "ferry-transport-lab: %s, closing\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_close((uv_handle_t *)&l->ticker, NULL);
    uv_close((uv_handle_t *)&l->sigterm, NULL);
    uv_close((uv_handle_t *)&l->sigint, NULL);
    ferry_server_close(l->srv, NULL, NULL); /* then uv_run returns */
}

static int usage(const char *why)
{
    fprintf(stderr, "ferry-transport-lab: %s\nusage: ferry-transport-lab [--host ADDR] [--port N] "
                    "[--rate N] [--cors-origins LIST]\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8091;
    long rate = 20;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.transports = ferry_transport_all();
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage("a flag without its value");
        if (strcmp(argv[i], "--host") == 0)
            host = v;
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(v);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = strtol(v, NULL, 10);
        else if (strcmp(argv[i], "--cors-origins") == 0)
            cfg.cors_origins = v;
        else
            return usage("unknown flag");
        i++;
    }
    if (rate < 1 || rate > 1000 || port < 0 || port > 65535)
        return usage("--rate is 1 to 1000 a second, --port 0 to 65535");

    lab l = {0};
    uv_loop_t *loop = uv_default_loop();
    int rc = ferry_server_new(loop, &cfg, &l.srv);
    if (rc == 0)
        rc = ferry_server_serve_client(l.srv);
    if (rc == 0)
        rc = ferry_server_listen(l.srv, host, port);
    l.nsp = rc == 0 ? ferry_of(l.srv, "/") : NULL;
    if (rc == 0 && l.nsp == NULL)
        rc = -FERRY_ENOMEM;
    if (rc == 0)
        rc = ferry_namespace_on(l.nsp, "ping", on_ping, NULL);
    if (rc == 0)
        rc = ferry_namespace_on(l.nsp, "stats", on_stats, NULL);
    if (rc != 0) {
        fprintf(stderr, "ferry-transport-lab: %s\n", ferry_strerror(rc));
        return 1;
    }
    uv_timer_init(loop, &l.ticker);
    l.ticker.data = &l;
    uv_timer_start(&l.ticker, on_tick, 1000 / (uint64_t)rate, 1000 / (uint64_t)rate);
    uv_signal_init(loop, &l.sigterm);
    uv_signal_init(loop, &l.sigint);
    l.sigterm.data = l.sigint.data = &l;
    uv_signal_start_oneshot(&l.sigterm, on_signal, SIGTERM);
    uv_signal_start_oneshot(&l.sigint, on_signal, SIGINT);
    printf("ferry-transport-lab: listening on http://%s:%d (%ld ticks a second)\n", host,
           ferry_server_port(l.srv), rate);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
