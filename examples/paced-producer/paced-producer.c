/* A producer that paces itself to each client (docs/reliability.md "Pacing a producer"): it
 * streams numbered messages to every client that connects, as fast as that client reads and
 * no faster. It emits while the socket's queue (ferry_socket_buffered_amount()) is under a
 * high-water mark, stops there, and goes on from the drain callback (ferry_socket_on_drain())
 * once the queue has fallen to the low-water mark: a slow client never makes the server's
 * memory grow past about the high-water mark, a fast one is never held back, and no message is
 * dropped or closed over (uWebSockets' getBufferedAmount() and drain, in Socket.IO terms).
 *
 *   client -> server   (connect)              the stream starts at once
 *   server -> client   "msg"  {n, pad}        n = 0, 1, 2, ... count - 1, in order
 *   server -> client   "done" {count}         after the last one
 *
 * One line on stdout per client when its stream ends or it leaves:
 *   paced-producer: <socket id> done: 2000 messages, 31 pauses, 31 drains, most queued 66612 bytes
 *
 *   ferry-paced-producer [--port N] [--count N] [--size BYTES] [--high-water BYTES]
 *                        [--low-water BYTES] [--ping-interval MS] [--ping-timeout MS]
 *   (defaults: 8080, 10000 messages, 1024 bytes of padding each, 65536 and 16384; Socket.IO's
 *   25000 and 20000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ferry.h>

typedef struct producer {
    unsigned long count;     /* messages per client */
    size_t high, low;        /* the marks, in bytes queued */
    char *pad;               /* the padding every message carries */
} producer;

/* One client's stream, the socket's data until it disconnects. */
typedef struct stream {
    unsigned long next;   /* the next message's number */
    unsigned long pauses; /* times it stopped at the high-water mark */
    unsigned long drains; /* times the drain callback resumed it */
    size_t most;          /* the most bytes queued for it after an emit */
    int done;
} stream;

static producer app;

static void report(ferry_socket *s, const stream *st, const char *how)
{
    printf("paced-producer: %s %s: %lu messages, %lu pauses, %lu drains, most queued %zu bytes\n",
           ferry_socket_id(s), how, st->next, st->pauses, st->drains, st->most);
    fflush(stdout);
}

static int emit_one(ferry_socket *s, const char *event, const char *field, unsigned long n,
                    const char *pad)
{
    cJSON *args = cJSON_CreateArray();
    cJSON *obj = cJSON_CreateObject();
    int rc = -FERRY_ENOMEM;
    if (args != NULL && obj != NULL && cJSON_AddItemToArray(args, obj)) {
        obj = NULL; /* the array owns it */
        cJSON *o = cJSON_GetArrayItem(args, 0);
        if (cJSON_AddNumberToObject(o, field, (double)n) != NULL &&
            (pad == NULL || cJSON_AddStringToObject(o, "pad", pad) != NULL))
            rc = ferry_socket_emit(s, event, args); /* encoded before it returns */
    }
    cJSON_Delete(obj);
    cJSON_Delete(args);
    return rc;
}

/* Emit until the queue reaches the high-water mark or the stream ends. */
static void produce(ferry_socket *s, stream *st)
{
    while (!st->done) {
        if (st->next == app.count) {
            st->done = 1;
            if (emit_one(s, "done", "count", app.count, NULL) == 0)
                report(s, st, "done");
            ferry_socket_on_drain(s, 0, NULL, NULL); /* nothing more to pace */
            return;
        }
        size_t queued = ferry_socket_buffered_amount(s);
        if (queued >= app.high) {
            st->pauses++; /* the drain callback goes on */
            return;
        }
        int rc = emit_one(s, "msg", "n", st->next, app.pad);
        if (rc != 0) {
            fprintf(stderr, "paced-producer: %s: emit %lu: %s\n", ferry_socket_id(s), st->next,
                    ferry_strerror(rc));
            st->done = 1;
            return;
        }
        st->next++;
        queued = ferry_socket_buffered_amount(s);
        if (queued > st->most)
            st->most = queued;
    }
}

/* The queue fell to the low-water mark after a transport took packets: go on. */
static void on_drain(ferry_socket *s, size_t buffered, void *ud)
{
    stream *st = ud;
    st->drains++;
    produce(s, st);
}

static void on_disconnect(ferry_socket *s, ferry_reason reason, void *ud)
{
    stream *st = ud;
    if (!st->done)
        report(s, st, ferry_reason_str(reason));
    free(st);
}

static void on_connection(ferry_socket *s, void *ud)
{
    stream *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        ferry_socket_disconnect(s, 1);
        return;
    }
    ferry_socket_on_disconnect(s, on_disconnect, st);
    /* Registered before the first emit: the mark counts from the start. */
    if (ferry_socket_on_drain(s, app.low, on_drain, st) != 0)
        return;
    produce(s, st);
}

static uv_signal_t sigterm, sigint;

/* SIGTERM or SIGINT: close every session, then uv_run returns (no handle left open). */
static void on_signal(uv_signal_t *sig, int signum)
{
    ferry_server_close(sig->data, NULL, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static int number(const char *flag, const char *v, unsigned long min, unsigned long max,
                  unsigned long *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*v == '\0' || *end != '\0' || v[0] == '-' || n < min || n > max) {
        fprintf(stderr, "paced-producer: invalid %s '%s' (%lu to %lu)\n", flag, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    unsigned long port = 8080, count = 10000, size = 1024, high = 65536, low = 16384;
    unsigned long ping_interval = cfg.ping_interval_ms, ping_timeout = cfg.ping_timeout_ms;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        int rc;
        if (strcmp(argv[i], "--port") == 0)
            rc = number("port", v, 0, 65535, &port);
        else if (strcmp(argv[i], "--count") == 0)
            rc = number("count", v, 0, 1000000000, &count);
        else if (strcmp(argv[i], "--size") == 0)
            rc = number("size", v, 0, 65536, &size);
        else if (strcmp(argv[i], "--high-water") == 0)
            rc = number("high-water", v, 1024, 1u << 30, &high);
        else if (strcmp(argv[i], "--low-water") == 0)
            rc = number("low-water", v, 0, 1u << 30, &low);
        else if (strcmp(argv[i], "--ping-interval") == 0)
            rc = number("ping-interval", v, 1, 3600000, &ping_interval);
        else if (strcmp(argv[i], "--ping-timeout") == 0)
            rc = number("ping-timeout", v, 1, 3600000, &ping_timeout);
        else {
            fprintf(stderr, "paced-producer: unknown option '%s'\n", argv[i]);
            rc = -1;
        }
        if (rc != 0)
            return 2;
    }
    if (low >= high) {
        fprintf(stderr, "paced-producer: --low-water (%lu) must be under --high-water (%lu)\n",
                low, high);
        return 2;
    }
    /* The producer stops at its own mark: the session's hard bound (a client that stops
     * reading altogether is still bounded) sits well above it. */
    cfg.max_session_queue_bytes = 4 * high + 2 * size + 65536;
    cfg.ping_interval_ms = (uint32_t)ping_interval;
    cfg.ping_timeout_ms = (uint32_t)ping_timeout;
    cfg.transports = ferry_transport_all();
    app.count = count;
    app.high = high;
    app.low = low;
    app.pad = malloc(size + 1);
    if (app.pad == NULL)
        return 1;
    memset(app.pad, 'x', size);
    app.pad[size] = '\0';

    uv_loop_t *loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    ferry_namespace *nsp = rc == 0 ? ferry_of(srv, "/") : NULL;
    if (nsp != NULL) {
        ferry_namespace_on_connection(nsp, on_connection, NULL);
        rc = ferry_server_listen(srv, "127.0.0.1", (int)port);
    }
    if (rc != 0 || nsp == NULL) {
        fprintf(stderr, "paced-producer: %s\n", ferry_strerror(rc != 0 ? rc : -FERRY_ENOMEM));
        free(app.pad);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    sigterm.data = sigint.data = srv;
    uv_signal_start_oneshot(&sigterm, on_signal, SIGTERM);
    uv_signal_start_oneshot(&sigint, on_signal, SIGINT);
    printf("paced-producer: listening on http://127.0.0.1:%d/ (%lu messages of %lu bytes per "
           "client, pausing at %lu bytes queued, resuming at %lu)\n",
           ferry_server_port(srv), count, size, high, low);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    free(app.pad);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
