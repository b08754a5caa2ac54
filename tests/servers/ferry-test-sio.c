/* ferry-test-sio: a Socket.IO server for the interop tests (Node socket.io-client, Python
 * python-socketio) and for the public socket.io-protocol test suite (--suite).
 *
 * It prints one JSON object per line on stdout for what it sees, so that a test awaits the
 * server's view instead of sleeping:
 *   {"event":"connect","nsp":"/","id":"<socket id>","sid":"<engine sid>","auth":{...}}
 *   {"event":"event","nsp":"/","id":"...","name":"...","args":[...],"ack":true|false}
 *   {"event":"server-ack","nsp":"/","id":"...","status":"ok"|"timeout"|"closed","args":[...]}
 *   {"event":"disconnect","nsp":"/","id":"...","reason":"client namespace disconnect"}
 *   {"event":"refused","nsp":"/admin","id":"..."}
 * The first line is "ferry-test-sio: listening on http://127.0.0.1:PORT/PATH".
 *
 * Namespaces: "/" and "/custom" (the suite's), "/admin" (its middleware wants auth
 * {"token":"secret"}, else CONNECT_ERROR "Not authorized" with data {"code":401}), "/slow"
 * (a middleware that decides 50 ms later, accepting any auth), and any name starting with
 * "/dyn-" created on demand. In every namespace, on connect the server emits
 * "auth" with the CONNECT payload (the suite expects it), and answers:
 *   message ...args          -> emits "message-back" ...args (binary included)
 *   message-with-ack ...args -> acks with ...args
 *   join room / leave room   -> joins / leaves; acks with the socket's rooms
 *   to room event ...args    -> the room gets event ...args; acks with the recipient count
 *   to-many [rooms] event .. -> every socket in any of the rooms, once; acks with the count
 *   broadcast event ...args  -> everyone in the namespace but the sender; acks with the count
 *   except room event ...    -> everyone not in room; acks with the count
 *   ask event timeout ...    -> the server emits event ...args asking for an ack with
 *                               timeout (ms); the outcome is printed as "server-ack" and sent
 *                               back as "ask-result" {status, args}
 *   volatile N               -> N volatile emits "v" i at once (most are dropped: the
 *                               first one is still queued when the next comes)
 *   binary                   -> emits "binary" "text", <01 02 03>, {"nested":<ff>, "n":1}
 *   disconnect-me close      -> ferry_socket_disconnect(socket, close)
 *   close-session            -> ferry_session_close() of the socket's engine session
 * Every event is printed first.
 *
 * With recovery on, "/kept" keeps socket data across recovery (ferry_namespace_keep_socket_data,
 * released with free()): each socket holds a counter that "count" increments and acks with, and
 * the connect line carries "count"; "/short" has a recovery window of its own, 300 ms
 * (ferry_namespace_set_recovery), and "/own" bounds of its own, a 4000 ms window and a 1 MiB
 * log (the server's --recovery-bytes applies to the others). They behave as "/" otherwise.
 *
 * Flags: --port N (0), --path P (/socket.io/), --ping-interval MS, --ping-timeout MS,
 * --connect-timeout MS, --ack-timeout MS, --queue-bytes N, --recovery MS (connection-state
 * recovery; "connect" lines then carry "recovered"), --recovery-bytes N (its log's byte bound),
 * --recovery-packets N (its log's count bound),
 * --transports polling,websocket[,sse,short-polling], --max-attachments N,
 * --log-level LEVEL (info: why a recovery was refused, for the chaos runs),
 * --suite (port 3000, ping 300/200, connect timeout 1000: the public test suite's settings).
 * SIGTERM or SIGINT closes the server; exit status 0 only if the loop closed clean. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry.h>

#include "shared/test_flags.h"

static uv_loop_t *loop;

static void print_json(const char *event, ferry_socket *s, cJSON *extra)
{
    cJSON *o = extra != NULL ? extra : cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "nsp", ferry_namespace_name(ferry_socket_namespace(s)));
    cJSON_AddStringToObject(o, "id", ferry_socket_id(s));
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
}

static cJSON *args_from(const cJSON *args, int skip)
{
    cJSON *out = cJSON_CreateArray();
    int i = 0;
    for (const cJSON *c = args != NULL ? args->child : NULL; c != NULL; c = c->next, i++)
        if (i >= skip)
            cJSON_AddItemToArray(out, ferry_json_dup(c, 0));
    return out;
}

static void ack_number(ferry_ack *ack, int n)
{
    if (ack == NULL)
        return;
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(n));
    ferry_ack_send(ack, a);
    cJSON_Delete(a);
}

static void ack_rooms(ferry_socket *s, ferry_ack *ack)
{
    if (ack == NULL)
        return;
    const char *rooms[64];
    size_t n = ferry_socket_rooms(s, rooms, 64);
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < n && i < 64; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(rooms[i]));
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, list);
    ferry_ack_send(ack, a);
    cJSON_Delete(a);
}

static void on_server_ack(ferry_socket *s, int status, cJSON *args, void *ud)
{
    (void)ud;
    const char *st = status == 0 ? "ok" : status == -FERRY_ETIMEDOUT ? "timeout" : "closed";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", st);
    cJSON_AddItemToObject(o, "args", args != NULL ? ferry_json_dup(args, 0) : cJSON_CreateNull());
    if (status != -FERRY_ECLOSED) {
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, ferry_json_dup(o, 0));
        ferry_socket_emit(s, "ask-result", a);
        cJSON_Delete(a);
    }
    print_json("server-ack", s, o);
}

static const char *str_arg(const cJSON *args, int i)
{
    const cJSON *c = cJSON_GetArrayItem(args, i);
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static void on_event(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    (void)ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", event);
    cJSON_AddItemToObject(o, "args", ferry_json_dup(args, 0));
    cJSON_AddBoolToObject(o, "ack", ack != NULL);
    print_json("event", s, o);

    if (strcmp(event, "message") == 0) {
        ferry_socket_emit(s, "message-back", args);
    } else if (strcmp(event, "message-with-ack") == 0) {
        if (ack != NULL)
            ferry_ack_send(ack, args);
    } else if (strcmp(event, "join") == 0 && str_arg(args, 0) != NULL) {
        ferry_socket_join(s, str_arg(args, 0));
        ack_rooms(s, ack);
    } else if (strcmp(event, "leave") == 0 && str_arg(args, 0) != NULL) {
        ferry_socket_leave(s, str_arg(args, 0));
        ack_rooms(s, ack);
    } else if ((strcmp(event, "to") == 0 || strcmp(event, "except") == 0) &&
               str_arg(args, 0) != NULL && str_arg(args, 1) != NULL) {
        ferry_bcast b;
        ferry_bcast_init(&b, ferry_socket_namespace(s));
        if (event[0] == 't')
            ferry_bcast_to(&b, str_arg(args, 0));
        else
            ferry_bcast_except(&b, str_arg(args, 0));
        cJSON *rest = args_from(args, 2);
        int n = ferry_bcast_emit(&b, str_arg(args, 1), rest);
        cJSON_Delete(rest);
        ack_number(ack, n);
    } else if (strcmp(event, "to-many") == 0 && cJSON_IsArray(cJSON_GetArrayItem(args, 0)) &&
               str_arg(args, 1) != NULL) {
        ferry_bcast b;
        ferry_bcast_init(&b, ferry_socket_namespace(s));
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetArrayItem(args, 0)) if (cJSON_IsString(r))
            ferry_bcast_to(&b, r->valuestring);
        cJSON *rest = args_from(args, 2);
        int n = ferry_bcast_emit(&b, str_arg(args, 1), rest);
        cJSON_Delete(rest);
        ack_number(ack, n);
    } else if (strcmp(event, "broadcast") == 0 && str_arg(args, 0) != NULL) {
        ferry_bcast b;
        ferry_bcast_from(&b, s);
        cJSON *rest = args_from(args, 1);
        int n = ferry_bcast_emit(&b, str_arg(args, 0), rest);
        cJSON_Delete(rest);
        ack_number(ack, n);
    } else if (strcmp(event, "ask") == 0 && str_arg(args, 0) != NULL) {
        const cJSON *t = cJSON_GetArrayItem(args, 1);
        cJSON *rest = args_from(args, 2);
        ferry_socket_emit_ack(s, str_arg(args, 0), rest,
                              cJSON_IsNumber(t) ? (uint32_t)t->valuedouble : 0, on_server_ack,
                              NULL);
        cJSON_Delete(rest);
    } else if (strcmp(event, "volatile") == 0) {
        const cJSON *n = cJSON_GetArrayItem(args, 0);
        for (int i = 0; cJSON_IsNumber(n) && i < n->valueint && i < 10000; i++) {
            cJSON *a = cJSON_CreateArray();
            cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
            ferry_socket_emit_volatile(s, "v", a);
            cJSON_Delete(a);
        }
    } else if (strcmp(event, "binary") == 0) {
        static const unsigned char b3[] = {1, 2, 3}, bff[] = {0xff};
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, cJSON_CreateString("text"));
        cJSON_AddItemToArray(a, ferry_binary_new(b3, sizeof(b3)));
        cJSON *nested = cJSON_CreateObject();
        cJSON_AddItemToObject(nested, "nested", ferry_binary_new(bff, sizeof(bff)));
        cJSON_AddNumberToObject(nested, "n", 1);
        cJSON_AddItemToArray(a, nested);
        ferry_socket_emit(s, "binary", a);
        cJSON_Delete(a);
    } else if (strcmp(event, "disconnect-me") == 0) {
        ferry_socket_disconnect(s, cJSON_IsTrue(cJSON_GetArrayItem(args, 0)));
    } else if (strcmp(event, "close-session") == 0) {
        ferry_session_close(ferry_socket_session(s));
    }
}

static void on_disconnect(ferry_socket *s, ferry_reason reason, void *ud)
{
    (void)ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "reason", ferry_reason_str(reason));
    print_json("disconnect", s, o);
}

static void on_connection(ferry_socket *s, void *ud)
{
    (void)ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sid", ferry_session_id(ferry_socket_session(s)));
    cJSON_AddStringToObject(o, "transport", ferry_session_transport(ferry_socket_session(s)));
    cJSON_AddItemToObject(o, "auth", cJSON_Duplicate(ferry_socket_auth(s), 1));
    cJSON_AddBoolToObject(o, "recovered", ferry_socket_recovered(s));
    print_json("connect", s, o);
    ferry_socket_on_any(s, on_event, NULL);
    ferry_socket_on_disconnect(s, on_disconnect, NULL);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_Duplicate(ferry_socket_auth(s), 1));
    ferry_socket_emit(s, "auth", a);
    cJSON_Delete(a);
}

static void release_data(ferry_namespace *nsp, void *data, void *ud)
{
    (void)nsp;
    (void)ud;
    free(data);
}

static void on_count(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    (void)event;
    (void)args;
    (void)ud;
    int *n = ferry_socket_get_data(s);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(n != NULL ? ++*n : -1));
    if (ack != NULL)
        ferry_ack_send(ack, a);
    cJSON_Delete(a);
}

static void on_kept_connection(ferry_socket *s, void *ud)
{
    int *n = ferry_socket_get_data(s);
    if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL)
        ferry_socket_set_data(s, n); /* a new socket; a recovered one has its counter */
    on_connection(s, ud);
    ferry_socket_on(s, "count", on_count, NULL);
}

static void admin_mw(ferry_socket *s, void *ud)
{
    (void)ud;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(ferry_socket_auth(s), "token");
    if (cJSON_IsString(tok) && strcmp(tok->valuestring, "secret") == 0) {
        ferry_middleware_next(s, NULL, NULL);
        return;
    }
    print_json("refused", s, NULL);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "code", 401);
    ferry_middleware_next(s, "Not authorized", data);
    cJSON_Delete(data);
}

typedef struct slow_req {
    uv_timer_t timer;
    ferry_socket *s;
} slow_req;

static void slow_free(uv_handle_t *h)
{
    free(h->data);
}

static void on_slow(uv_timer_t *t)
{
    slow_req *r = t->data;
    ferry_middleware_next(r->s, NULL, NULL);
    uv_close((uv_handle_t *)&r->timer, slow_free);
}

static void slow_mw(ferry_socket *s, void *ud)
{
    (void)ud;
    slow_req *r = calloc(1, sizeof(*r));
    r->s = s;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_slow, 50, 0);
}

static void setup(ferry_namespace *nsp)
{
    ferry_namespace_on_connection(nsp, on_connection, NULL);
}

static void on_namespace_request(ferry_server *srv, const char *name, const cJSON *auth, void *ud)
{
    (void)auth;
    (void)ud;
    if (strncmp(name, "/dyn-", 5) == 0)
        setup(ferry_of(srv, name));
}

typedef struct sigs {
    uv_signal_t term, intr;
    ferry_server *srv;
} sigs;

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    sigs *g = sig->data;
    ferry_server_close(g->srv, NULL, NULL);
    uv_close((uv_handle_t *)&g->term, NULL);
    uv_close((uv_handle_t *)&g->intr, NULL);
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    int port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--suite") == 0) {
            port = 3000;
            cfg.ping_interval_ms = 300;
            cfg.ping_timeout_ms = 200;
            cfg.connect_timeout_ms = 1000;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ferry-test-sio: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--connect-timeout") == 0)
            cfg.connect_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--ack-timeout") == 0)
            cfg.ack_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--recovery") == 0)
            cfg.recovery_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--recovery-bytes") == 0)
            cfg.recovery_max_bytes = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(a, "--recovery-packets") == 0)
            cfg.recovery_max_packets = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-attachments") == 0)
            cfg.max_attachments = (unsigned)strtoul(v, NULL, 10);
        else if (!test_engine_flag(&cfg, a, v)) {
            fprintf(stderr, "ferry-test-sio: unknown flag %s\n", a);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = test_transport_options(srv);
    if (rc == 0)
        rc = ferry_server_listen(srv, "127.0.0.1", port);
    if (rc != 0) {
        fprintf(stderr, "ferry-test-sio: %s\n", ferry_strerror(rc));
        return 1;
    }
    setup(ferry_of(srv, "/"));
    setup(ferry_of(srv, "/custom"));
    ferry_namespace *kept = ferry_of(srv, "/kept");
    ferry_namespace_on_connection(kept, on_kept_connection, NULL);
    ferry_namespace_keep_socket_data(kept, release_data, NULL);
    ferry_namespace *shortw = ferry_of(srv, "/short");
    setup(shortw);
    ferry_namespace *own = ferry_of(srv, "/own");
    setup(own);
    if (cfg.recovery_ms > 0) {
        ferry_namespace_set_recovery(shortw, 300, cfg.recovery_max_bytes);
        ferry_namespace_set_recovery(own, 4000, 1u << 20);
    }
    ferry_namespace *admin = ferry_of(srv, "/admin");
    setup(admin);
    ferry_namespace_use(admin, admin_mw, NULL);
    ferry_namespace *slow = ferry_of(srv, "/slow");
    setup(slow);
    ferry_namespace_use(slow, slow_mw, NULL);
    ferry_server_on_namespace_request(srv, on_namespace_request, NULL);
    sigs g = {.srv = srv};
    uv_signal_init(loop, &g.term);
    uv_signal_init(loop, &g.intr);
    g.term.data = g.intr.data = &g;
    uv_signal_start_oneshot(&g.term, on_signal, SIGTERM);
    uv_signal_start_oneshot(&g.intr, on_signal, SIGINT);
    printf("ferry-test-sio: listening on http://127.0.0.1:%d%s\n", ferry_server_port(srv),
           cfg.path != NULL ? cfg.path : "/socket.io/");
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
