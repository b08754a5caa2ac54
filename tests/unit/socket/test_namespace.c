/* lib/socket/namespace.c: namespace names, the switch between the engine and Socket.IO levels,
 * handler tables, and ferry_bcast bounds. A server is created on a loop but never listens. */
#include "ferry_test.h"

#include <uv.h>

#include "ferry.h"

static ferry_server *new_server(uv_loop_t *loop)
{
    ferry_server *srv = NULL;
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(ferry_server_new(loop, NULL, &srv), 0);
    return srv;
}

static void on_closed(ferry_server *srv, void *ud)
{
    (void)srv;
    (*(int *)ud)++;
}

static void close_server(uv_loop_t *loop, ferry_server *srv)
{
    int closed = 0;
    assert_int_equal(ferry_server_close(srv, on_closed, &closed), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void session_cb(ferry_session *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void names(void **state)
{
    (void)state;
    uv_loop_t loop;
    ferry_server *srv = new_server(&loop);
    ferry_namespace *chat = ferry_of(srv, "/chat");
    assert_non_null(chat);
    assert_string_equal(ferry_namespace_name(chat), "/chat");
    assert_ptr_equal(ferry_of(srv, "/chat"), chat);
    assert_ptr_equal(ferry_of(srv, "chat"), chat); /* the leading '/' is added */
    assert_string_equal(ferry_namespace_name(ferry_of(srv, "/")), "/");
    assert_ptr_equal(ferry_namespace_server(chat), srv);
    assert_null(ferry_of(srv, ""));
    assert_null(ferry_of(srv, "/\xff"));
    char longname[FERRY_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname));
    longname[0] = '/';
    longname[FERRY_NAME_MAX] = '\0'; /* exactly FERRY_NAME_MAX bytes */
    assert_non_null(ferry_of(srv, longname));
    longname[FERRY_NAME_MAX] = 'x';
    longname[FERRY_NAME_MAX + 1] = '\0'; /* one more */
    assert_null(ferry_of(srv, longname));
    /* The Socket.IO level owns the sessions now. */
    assert_int_equal(ferry_server_on_session(srv, session_cb, NULL), -FERRY_EBUSY);
    close_server(&loop, srv);
}

static void engine_level_excludes_socketio(void **state)
{
    (void)state;
    uv_loop_t loop;
    ferry_server *srv = new_server(&loop);
    assert_int_equal(ferry_server_on_session(srv, session_cb, NULL), 0);
    assert_null(ferry_of(srv, "/"));
    assert_int_equal(ferry_server_on_namespace_request(srv, NULL, NULL), -FERRY_EBUSY);
    close_server(&loop, srv);
}

static void on_ev(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    (void)s, (void)event, (void)args, (void)ack, (void)ud;
}

static void mw(ferry_socket *s, void *ud)
{
    (void)s, (void)ud;
}

static void handlers_and_middlewares(void **state)
{
    (void)state;
    uv_loop_t loop;
    ferry_server *srv = new_server(&loop);
    ferry_namespace *n = ferry_of(srv, "/");
    assert_int_equal(ferry_namespace_on(n, "a", on_ev, NULL), 0);
    assert_int_equal(ferry_namespace_on(n, "a", on_ev, NULL), 0); /* replaces */
    assert_int_equal(ferry_namespace_on(n, "a", NULL, NULL), 0);  /* removes */
    assert_int_equal(ferry_namespace_on(n, "b", NULL, NULL), 0);  /* removing nothing */
    assert_int_equal(ferry_namespace_on(n, "", on_ev, NULL), -FERRY_EINVAL);
    assert_int_equal(ferry_namespace_on(n, NULL, on_ev, NULL), -FERRY_EINVAL);
    for (int i = 0; i < 16; i++)
        assert_int_equal(ferry_namespace_use(n, mw, NULL), 0);
    assert_int_equal(ferry_namespace_use(n, mw, NULL), -FERRY_ELIMIT);
    assert_int_equal(ferry_namespace_use(n, NULL, NULL), -FERRY_EINVAL);
    assert_int_equal(ferry_namespace_emit(n, "x", NULL), 0); /* nobody connected */
    assert_int_equal(ferry_namespace_emit(n, "connect", NULL), -FERRY_EINVAL);
    cJSON *obj = cJSON_CreateObject();
    assert_int_equal(ferry_namespace_emit(n, "x", obj), -FERRY_EINVAL);
    cJSON_Delete(obj);
    ferry_socket *out[2];
    assert_int_equal(ferry_namespace_sockets(n, NULL, out, 2), 0);
    assert_null(ferry_namespace_socket(n, "nobody"));
    close_server(&loop, srv);
}

static void bcast_room_limit(void **state)
{
    (void)state;
    ferry_bcast b;
    ferry_bcast_init(&b, NULL);
    for (int i = 0; i < FERRY_BCAST_MAX_ROOMS; i++)
        assert_int_equal(ferry_bcast_to(&b, "r"), 0);
    assert_int_equal(ferry_bcast_to(&b, "r"), -FERRY_ELIMIT);
    for (int i = 0; i < FERRY_BCAST_MAX_ROOMS; i++)
        assert_int_equal(ferry_bcast_except(&b, "r"), 0);
    assert_int_equal(ferry_bcast_except(&b, "r"), -FERRY_ELIMIT);
    assert_int_equal(ferry_bcast_emit(&b, "x", NULL), -FERRY_EINVAL); /* no namespace */
}

/* The form every node's socket ids have (the relay refuses such rooms but a client's own). */
static void socket_id_form(void **state)
{
    (void)state;
    assert_true(ferry_is_socket_id("AbcdEFGH0123456789-_"));
    assert_true(ferry_is_socket_id("aaaaaaaaaaaaaaaaaaaa"));
    assert_false(ferry_is_socket_id(NULL));
    assert_false(ferry_is_socket_id(""));
    assert_false(ferry_is_socket_id("aaaaaaaaaaaaaaaaaaa"));   /* 19 */
    assert_false(ferry_is_socket_id("aaaaaaaaaaaaaaaaaaaaa")); /* 21 */
    assert_false(ferry_is_socket_id("aaaaaaaaaaaaaaaaaaa="));  /* padding */
    assert_false(ferry_is_socket_id("aaaaaaaaaaaaaaaaaa+/"));  /* base64, not base64url */
    assert_false(ferry_is_socket_id("lobby lobby lobby ab"));
    assert_false(ferry_is_socket_id("aaaaaaaaaaaaaaaaaa\xc3\xa9"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(socket_id_form),
    cmocka_unit_test(names),
    cmocka_unit_test(engine_level_excludes_socketio),
    cmocka_unit_test(handlers_and_middlewares),
    cmocka_unit_test(bcast_room_limit),
};

FERRY_TEST_MAIN(tests)
