/* The socket layer reaches rooms only through the adapter its server was given
 * (ferry_server_set_adapter, the composition root's seam for issue 18's Redis adapter): a second
 * implementation (here a recording wrapper around the local adapter, as a Redis adapter would
 * wrap local delivery) is created once per namespace with that namespace's name, receives the
 * broadcasts and queries, and is destroyed with the server. */
#include "ferry_test.h"

#include <uv.h>

#include "adapter/adapter.h"
#include "common/mem.h"
#include "server/server.h"

typedef struct wrap {
    ferry_adapter super;
    ferry_adapter *inner;
} wrap;

static int created, destroyed, broadcasts, fetches, hases;
static char last_nsp[64];

static int w_add_all(ferry_adapter *a, ferry_socket *s, const char *sid, const char *const *rooms,
                     size_t n)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    return in->ops->add_all(in, s, sid, rooms, n);
}

static void w_del(ferry_adapter *a, const char *sid, const char *room)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    in->ops->del(in, sid, room);
}

static void w_del_all(ferry_adapter *a, const char *sid)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    in->ops->del_all(in, sid);
}

static int w_has(ferry_adapter *a, const char *sid, const char *room)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    hases++;
    return in->ops->has(in, sid, room);
}

static size_t w_socket_rooms(ferry_adapter *a, const char *sid, const char **out, size_t max)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    return in->ops->socket_rooms(in, sid, out, max);
}

static int w_fetch(ferry_adapter *a, const ferry_adapter_target *t, ferry_adapter_visit_cb cb,
                   void *ud)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    fetches++;
    return in->ops->fetch(in, t, cb, ud);
}

static int w_broadcast(ferry_adapter *a, const ferry_adapter_packet *pkt,
                       const ferry_adapter_target *t)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    broadcasts++;
    /* The packet is encoded once, before the adapter sees it. */
    assert_true(pkt->n >= 1);
    assert_non_null(pkt->bufs[0]);
    assert_memory_equal(pkt->bufs[0]->data, "42/chat,[\"news\"", 15);
    return in->ops->broadcast(in, pkt, t);
}

static void w_destroy(ferry_adapter *a)
{
    ferry_adapter *in = ((wrap *)a)->inner;
    destroyed++;
    in->ops->destroy(in);
    ferry_mem_free(a);
}

static const ferry_adapter_ops wrap_ops = {
    .name = "wrap",
    .add_all = w_add_all,
    .del = w_del,
    .del_all = w_del_all,
    .has = w_has,
    .socket_rooms = w_socket_rooms,
    .fetch = w_fetch,
    .broadcast = w_broadcast,
    .destroy = w_destroy,
};

static int wrap_create(void *ud, const char *nsp, const ferry_adapter_host *host,
                       ferry_adapter **out)
{
    assert_ptr_equal(ud, &created);
    wrap *w = ferry_mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return -FERRY_ENOMEM;
    int rc = ferry_adapter_local.create(ferry_adapter_local.ud, nsp, host, &w->inner);
    if (rc != 0) {
        ferry_mem_free(w);
        return rc;
    }
    w->super.ops = &wrap_ops;
    snprintf(last_nsp, sizeof(last_nsp), "%s", nsp);
    created++;
    *out = &w->super;
    return 0;
}

static const ferry_adapter_factory wrap_factory = {"wrap", wrap_create, &created};

static void on_closed(ferry_server *srv, void *ud)
{
    (void)srv;
    (*(int *)ud)++;
}

static void reset(void)
{
    created = destroyed = broadcasts = fetches = hases = 0;
    last_nsp[0] = '\0';
}

static void session_cb(ferry_session *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void namespaces_use_the_given_adapter(void **state)
{
    (void)state;
    reset();
    uv_loop_t loop;
    ferry_server *srv = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ferry_server_new(&loop, NULL, &srv), 0);
    assert_int_equal(ferry_server_set_adapter(srv, NULL), -FERRY_EINVAL);
    assert_int_equal(ferry_server_set_adapter(srv, &wrap_factory), 0);
    assert_int_equal(created, 0); /* nothing before the first namespace */
    ferry_namespace *chat = ferry_of(srv, "/chat");
    assert_non_null(chat);
    assert_int_equal(created, 2); /* "/" always exists, then "/chat" */
    assert_string_equal(last_nsp, "/chat");
    /* Too late for another one. */
    assert_int_equal(ferry_server_set_adapter(srv, &ferry_adapter_local), -FERRY_EBUSY);
    /* A broadcast and the queries go through it; nobody is connected. */
    cJSON *args = cJSON_CreateArray();
    ferry_bcast b;
    ferry_bcast_init(&b, chat);
    assert_int_equal(ferry_bcast_to(&b, "room"), 0);
    assert_int_equal(ferry_bcast_emit(&b, "news", args), 0);
    assert_int_equal(ferry_namespace_emit(chat, "news", args), 0);
    cJSON_Delete(args);
    assert_int_equal(broadcasts, 2);
    ferry_socket *out[1];
    assert_int_equal(ferry_namespace_sockets(chat, NULL, out, 1), 0);
    /* A lookup by id asks the adapter's index first: no socket has that id, so no walk. */
    assert_null(ferry_namespace_socket(chat, "nobody"));
    assert_int_equal(hases, 1);
    assert_int_equal(fetches, 1);
    int closed = 0;
    assert_int_equal(ferry_server_close(srv, on_closed, &closed), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(destroyed, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void adapter_only_at_the_socketio_level(void **state)
{
    (void)state;
    reset();
    uv_loop_t loop;
    ferry_server *srv = NULL;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ferry_server_new(&loop, NULL, &srv), 0);
    assert_int_equal(ferry_server_on_session(srv, session_cb, NULL), 0);
    assert_int_equal(ferry_server_set_adapter(srv, &wrap_factory), -FERRY_EBUSY);
    assert_int_equal(created, 0);
    int closed = 0;
    assert_int_equal(ferry_server_close(srv, on_closed, &closed), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(namespaces_use_the_given_adapter),
    cmocka_unit_test(adapter_only_at_the_socketio_level),
};

FERRY_TEST_MAIN(tests)
