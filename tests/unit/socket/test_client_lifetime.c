/* lib/socket/client.c under the one lifetime rule (common/life.h): the Socket.IO client of a
 * session is closed from inside every callback it leads to: the dynamic namespace request, a
 * middleware, the connection callback, an event (with an ack asked), the ack of a server emit,
 * and the disconnect callback. Three ways to close: the session (ferry_session_close, graceful),
 * the socket with its session (ferry_socket_disconnect(s, 1), asynchronous), the whole server
 * (ferry_server_close: every session closes at once, inside the callback). Over polling with a
 * raw client; each case must end its session, run every disconnect callback once, leak nothing
 * and end with uv_loop_close() == 0. */
#include "loop_harness.h"

#include <cjson/cJSON.h>

enum { IN_REQUEST, IN_MIDDLEWARE, IN_CONNECTION, IN_EVENT, IN_ACK, IN_DISCONNECT };
enum { SESSION, DISCONNECT, SERVER };

typedef struct app {
    h_server *h;
    int in, action;
    int requests, middlewares, connections, events, acks, disconnects;
    int acted;
    int server_closing;
} app;

static app A;

static void act_server(void)
{
    if (A.server_closing)
        return;
    A.server_closing = 1;
    assert_int_equal(ferry_server_close(A.h->srv, h_on_server_closed, A.h), 0);
}

static void act(ferry_socket *s, int in)
{
    if (A.in != in)
        return;
    A.acted++;
    if (A.action == SESSION)
        ferry_session_close(ferry_socket_session(s));
    else if (A.action == DISCONNECT)
        ferry_socket_disconnect(s, 1);
    else
        act_server();
}

static void on_disconnect(ferry_socket *s, ferry_reason reason, void *ud)
{
    (void)reason, (void)ud;
    A.disconnects++;
    act(s, IN_DISCONNECT);
}

static void on_ack(ferry_socket *s, int status, cJSON *args, void *ud)
{
    (void)args, (void)ud;
    if (status == 0) {
        A.acks++;
        act(s, IN_ACK);
    }
}

static void on_event(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    (void)event, (void)ud;
    A.events++;
    act(s, IN_EVENT);
    if (ack != NULL)
        ferry_ack_send(ack, args); /* after a close: -FERRY_ECLOSED, the ack freed all the same */
}

static void on_connection(ferry_socket *s, void *ud)
{
    (void)ud;
    A.connections++;
    ferry_socket_on_disconnect(s, on_disconnect, NULL);
    assert_int_equal(ferry_socket_on(s, "ev", on_event, NULL), 0);
    ferry_socket_emit_ack(s, "ask", NULL, 0, on_ack, NULL); /* -FERRY_ECLOSED once closing */
    act(s, IN_CONNECTION);
}

static void on_middleware(ferry_socket *s, void *ud)
{
    (void)ud;
    A.middlewares++;
    act(s, IN_MIDDLEWARE);
    /* Exactly once, whatever happened: a decision on a closed session is ignored. */
    if (!A.server_closing)
        assert_int_equal(ferry_middleware_next(s, NULL, NULL), 0);
}

static void on_request(ferry_server *srv, const char *name, const cJSON *auth, void *ud)
{
    (void)auth, (void)ud;
    A.requests++;
    ferry_namespace *nsp = ferry_of(srv, name);
    assert_non_null(nsp);
    ferry_namespace_use(nsp, on_middleware, NULL);
    ferry_namespace_on_connection(nsp, on_connection, NULL);
    if (A.in == IN_REQUEST) {
        A.acted++;
        act_server(); /* no socket yet: only the server can be closed */
    }
}

static h_server *start(int in, int action)
{
    memset(&A, 0, sizeof(A));
    A.in = in;
    A.action = action;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.ping_interval_ms = 60000;
    cfg.ping_timeout_ms = 60000;
    h_server *h = h_start(&cfg);
    A.h = h;
    assert_int_equal(ferry_server_on_namespace_request(h->srv, on_request, NULL), 0);
    return h;
}

static void stop(h_server *h)
{
    if (!A.server_closing) {
        h_stop(h);
        return;
    }
    assert_true(h_run_until(h, h_cond_flag, &h->closed, 5000));
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

/* One polling request; after the server closed, nothing listens: 0. */
static int request(h_server *h, const char *method, const char *sid, const char *body,
                   h_response *r)
{
    memset(r, 0, sizeof(*r));
    if (A.server_closing)
        return 0;
    char raw[1024];
    snprintf(raw, sizeof(raw),
             "%s /engine.io/?EIO=4&transport=polling%s%s HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, sid ? "&sid=" : "", sid ? sid : "", body ? strlen(body) : 0, body ? body : "");
    return h_request(h, raw, r);
}

/* Has the session ended for the client: a close packet, "Session ID unknown", or nothing
 * listening any more? */
static int ended(int st, const h_response *r)
{
    if (st == 0 || st == 400)
        return 1;
    const char *last = strrchr(r->body, '\x1e');
    last = last ? last + 1 : r->body;
    return strcmp(last, "1") == 0;
}

/* Poll until the session ends (bounded). */
static void poll_until_end(h_server *h, const char *sid)
{
    h_response r;
    for (int i = 0; i < 8; i++) {
        int st = request(h, "GET", sid, NULL, &r);
        if (ended(st, &r))
            return;
    }
    fail_msg("the session did not end");
}

static int cond_disconnects(void *ud)
{
    return A.disconnects >= *(int *)ud;
}

static void run(int in, int action)
{
    h_server *h = start(in, action);
    h_response r;
    assert_int_equal(request(h, "GET", NULL, NULL, &r), 200);
    char sid[64];
    const char *p = strstr(r.body, "\"sid\":\"");
    assert_non_null(p);
    snprintf(sid, sizeof(sid), "%.*s", (int)strcspn(p + 7, "\""), p + 7);
    /* CONNECT to a namespace that exists only once asked for. */
    int st = request(h, "POST", sid, "40/dyn,", &r);
    assert_true(st == 200 || st == 0);
    int steps_left = in > IN_CONNECTION && A.acted == 0;
    if (steps_left) {
        assert_int_equal(request(h, "GET", sid, NULL, &r), 200);
        assert_memory_equal(r.body, "40/dyn,{\"sid\":\"", 15);
        assert_non_null(strstr(r.body, "\x1e"
                                       "42/dyn,0[\"ask\"]"));
        if (in == IN_EVENT)
            request(h, "POST", sid,
                    "42/dyn,1[\"ev\",\"a\"]\x1e"
                    "42/dyn,[\"ev\",\"b\"]",
                    &r);
        else if (in == IN_ACK)
            request(h, "POST", sid, "43/dyn,0[\"yes\"]", &r);
        else
            request(h, "POST", sid, "41/dyn,", &r); /* the client leaves the namespace */
    }
    assert_int_equal(A.acted, 1);
    if (in != IN_DISCONNECT)
        poll_until_end(h, sid);
    /* Every socket that connected has its disconnect callback, once (a namespace the client
     * left has its session open still: the server closes it at stop). */
    int want = A.connections;
    assert_true(h_run_until(h, cond_disconnects, &want, 3000));
    stop(h);
    assert_int_equal(A.disconnects, A.connections);
    assert_int_equal(A.acted, 1);
    if (in == IN_EVENT && action != DISCONNECT)
        assert_int_equal(A.events, 1); /* the second event came after the close */
}

static void close_in_namespace_request(void **state)
{
    (void)state;
    run(IN_REQUEST, SERVER);
    assert_int_equal(A.connections, 0);
}

static void close_in_middleware(void **state)
{
    (void)state;
    for (int a = SESSION; a <= SERVER; a++)
        run(IN_MIDDLEWARE, a);
}

static void close_in_connection(void **state)
{
    (void)state;
    for (int a = SESSION; a <= SERVER; a++)
        run(IN_CONNECTION, a);
}

static void close_in_event(void **state)
{
    (void)state;
    for (int a = SESSION; a <= SERVER; a++)
        run(IN_EVENT, a);
}

static void close_in_ack(void **state)
{
    (void)state;
    for (int a = SESSION; a <= SERVER; a++)
        run(IN_ACK, a);
}

static void close_in_disconnect(void **state)
{
    (void)state;
    for (int a = SESSION; a <= SERVER; a++)
        run(IN_DISCONNECT, a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(close_in_namespace_request),
    cmocka_unit_test(close_in_middleware),
    cmocka_unit_test(close_in_connection),
    cmocka_unit_test(close_in_event),
    cmocka_unit_test(close_in_ack),
    cmocka_unit_test(close_in_disconnect),
};

FERRY_TEST_MAIN(tests)
