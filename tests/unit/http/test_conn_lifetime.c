/* lib/http/conn.c under the one lifetime rule (common/life.h): the connection is closed, aborted
 * or the whole server closed from inside every callback a connection fires: the route handler
 * (dispatch), a held request's abort, and a taker's on_data, on_drain, on_close and
 * on_shutdown. Every case must run each callback the expected number of times, never after the
 * close, answer the client cleanly (EOF), and end with no leak and uv_loop_close() == 0. */
#include "loop_harness.h"

#include "http/http.h"

enum { CLOSE, ABORT, SERVER };

typedef struct app {
    h_server *h;
    int action; /* what the callback under test does */
    int in;     /* which callback acts: one of the IN_* below */
    int routes, datas, drains, closes, shutdowns, aborts;
    int after_close;  /* a callback ran after on_close */
    ferry_conn *conn; /* the taken connection, until on_close */
    int server_closing;
} app;

enum { IN_ROUTE, IN_DATA, IN_DRAIN, IN_CLOSE, IN_SHUTDOWN, IN_ABORT };

static app A;

static void act(ferry_conn *c)
{
    if (A.action == CLOSE) {
        ferry_conn_close(c);
        ferry_conn_close(c); /* idempotent */
    } else if (A.action == ABORT) {
        ferry_conn_abort(c);
        ferry_conn_abort(c);
    } else if (!A.server_closing) {
        A.server_closing = 1;
        assert_int_equal(ferry_server_close(A.h->srv, h_on_server_closed, A.h), 0);
    }
}

static void on_data(ferry_conn *c, const char *data, size_t len, void *ud)
{
    (void)data, (void)len, (void)ud;
    A.after_close += A.closes > 0;
    A.datas++;
    if (A.in == IN_DATA)
        act(c);
}

static void on_drain(ferry_conn *c, void *ud)
{
    (void)ud;
    A.after_close += A.closes > 0;
    A.drains++;
    if (A.in == IN_DRAIN)
        act(c);
}

static void on_close(ferry_conn *c, void *ud)
{
    (void)ud;
    A.closes++;
    A.conn = NULL;
    if (A.in == IN_CLOSE)
        act(c);
    /* Writes fail from now on. */
    ferry_slice s = {"x", 1, NULL};
    assert_int_equal(ferry_conn_write(c, &s, 1), -FERRY_ECLOSED);
}

static void on_shutdown(ferry_conn *c, void *ud)
{
    (void)ud;
    A.after_close += A.closes > 0;
    A.shutdowns++;
    if (A.in == IN_SHUTDOWN)
        act(c);
}

static const ferry_conn_handler handler = {on_data, on_drain, on_close, on_shutdown};

/* /take: the connection becomes raw bytes; a large write makes the kernel queue fill so that
 * a uv_write completes later (on_drain). */
static void on_take(ferry_http_req *req, void *ud)
{
    (void)ud;
    A.routes++;
    ferry_req *r = (ferry_req *)req;
    ferry_conn *c = ferry_req_take_conn(r, &handler, NULL);
    assert_non_null(c);
    A.conn = c;
    static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    ferry_slice s = {head, sizeof(head) - 1, NULL};
    assert_int_equal(ferry_conn_write(c, &s, 1), 0);
    if (A.in == IN_DRAIN) {
        size_t big = 16u << 20;
        ferry_buf *b = ferry_buf_new(big);
        assert_non_null(b);
        memset(b->data, 'z', big);
        b->len = big;
        ferry_slice bs = {b->data, big, b};
        assert_int_equal(ferry_conn_write(c, &bs, 1), 0);
        ferry_buf_release(b);
        assert_true(ferry_conn_pending_bytes(c) > 0); /* queued: on_drain will come */
    }
}

/* /route: the handler itself closes its connection, then answers (the request is orphaned:
 * the answer frees it with -FERRY_ECLOSED). */
static void on_route(ferry_http_req *req, void *ud)
{
    (void)ud;
    A.routes++;
    act(((ferry_req *)req)->conn);
    int rc = ferry_http_reply(req, 200, NULL, "late", 4);
    assert_true(rc == -FERRY_ECLOSED || rc == 0);
}

static void on_abort(ferry_req *req, void *ud)
{
    (void)ud;
    A.aborts++;
    if (A.in == IN_ABORT)
        act(req->conn);
}

/* /hold: held without an answer until the client goes. */
static void on_hold(ferry_http_req *req, void *ud)
{
    (void)ud;
    A.routes++;
    ferry_req_hold((ferry_req *)req, on_abort, NULL);
}

static h_server *start(int in, int action)
{
    memset(&A, 0, sizeof(A));
    A.in = in;
    A.action = action;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = h_start(&cfg);
    A.h = h;
    assert_int_equal(ferry_server_route(h->srv, "GET", "/take", on_take, NULL), 0);
    assert_int_equal(ferry_server_route(h->srv, "GET", "/route", on_route, NULL), 0);
    assert_int_equal(ferry_server_route(h->srv, "GET", "/hold", on_hold, NULL), 0);
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

static int cond_closed(void *ud)
{
    (void)ud;
    return A.closes > 0;
}

/* The client reads and throws away what it got (a large body), until the flag is set. */
static int cond_discard_until(void *ud)
{
    h_client *c = ud;
    c->len = 0;
    c->in[0] = '\0';
    return A.closes > 0 || c->eof;
}

#define TAKE "GET /take HTTP/1.1\r\nHost: x\r\n\r\n"

/* A client that reads and forgets: every read reuses the start of its buffer. */
static void discard_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    h_client *c = hd->data;
    (void)suggested;
    c->len = 0;
    buf->base = c->in;
    buf->len = sizeof(c->in) - 1;
}

static void run_taken(int in, int action)
{
    h_server *h = start(in, action);
    h_client *c = hc_connect(h);
    /* The request and raw bytes after it in one write: on_data gets them once taken. */
    if (in == IN_DRAIN) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_read_start((uv_stream_t *)&c->tcp, discard_alloc, hc_read);
    }
    hc_sends(c, TAKE "raw bytes");
    assert_true(h_run_until(h, h_cond_flag, &A.routes, 3000));
    if (in == IN_DATA) {
        assert_true(h_run_until(h, cond_closed, NULL, 3000));
        hc_sends(c, "more"); /* after the close: never delivered */
    } else if (in == IN_DRAIN) {
        assert_true(h_run_until(h, cond_discard_until, c, 10000));
        assert_int_equal(A.drains, 1);
    } else if (in == IN_CLOSE) {
        assert_true(h_run_until(h, h_cond_flag, &A.datas, 3000));
        hc_close(c); /* the peer goes: on_close, which closes again */
        c = NULL;
        assert_true(h_run_until(h, cond_closed, NULL, 3000));
    } else if (in == IN_SHUTDOWN) {
        assert_true(h_run_until(h, h_cond_flag, &A.datas, 3000));
        A.server_closing = 1;
        assert_int_equal(ferry_server_close(h->srv, h_on_server_closed, h), 0);
        assert_int_equal(A.shutdowns, 1);
        assert_true(h_run_until(h, cond_closed, NULL, 3000));
    }
    if (c != NULL) {
        assert_true(h_run_until(h, cond_discard_until, c, 3000));
        assert_true(hc_wait_eof(c, 3000)); /* the client sees the end */
        hc_close(c);
    }
    stop(h);
    assert_int_equal(A.routes, 1);
    assert_int_equal(A.closes, 1);
    assert_int_equal(A.after_close, 0);
    assert_true(A.datas <= 1);
}

static void close_in_on_data(void **state)
{
    (void)state;
    run_taken(IN_DATA, CLOSE);
    assert_int_equal(A.datas, 1);
    run_taken(IN_DATA, ABORT);
    run_taken(IN_DATA, SERVER);
}

static void close_in_on_drain(void **state)
{
    (void)state;
    run_taken(IN_DRAIN, CLOSE);
    run_taken(IN_DRAIN, ABORT);
    run_taken(IN_DRAIN, SERVER);
}

static void close_in_on_close(void **state)
{
    (void)state;
    run_taken(IN_CLOSE, CLOSE);
    run_taken(IN_CLOSE, ABORT);
    run_taken(IN_CLOSE, SERVER);
}

static void close_in_on_shutdown(void **state)
{
    (void)state;
    run_taken(IN_SHUTDOWN, CLOSE);
    run_taken(IN_SHUTDOWN, ABORT);
}

/* The route handler closes its own connection: a request pipelined behind it in the same
 * write is never dispatched. */
static void close_in_route(void **state)
{
    (void)state;
    for (int action = CLOSE; action <= SERVER; action++) {
        h_server *h = start(IN_ROUTE, action);
        h_client *c = hc_connect(h);
        hc_sends(c, "GET /route HTTP/1.1\r\nHost: x\r\n\r\nGET /route HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(hc_wait_eof(c, 3000));
        assert_null(strstr(c->in, "late")); /* the answer after the close never went out */
        hc_close(c);
        stop(h);
        assert_int_equal(A.routes, 1);
    }
}

/* A held request's abort (its client went) closes the connection or the server. */
static void close_in_on_abort(void **state)
{
    (void)state;
    for (int action = CLOSE; action <= SERVER; action++) {
        h_server *h = start(IN_ABORT, action);
        h_client *c = hc_connect(h);
        hc_sends(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(h_run_until(h, h_cond_flag, &A.routes, 3000));
        hc_close(c);
        assert_true(h_run_until(h, h_cond_flag, &A.aborts, 3000));
        stop(h);
        assert_int_equal(A.aborts, 1);
    }
}

/* One case per line: CMake registers each line's case with ctest. */
/* clang-format off */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test(close_in_route),
    cmocka_unit_test(close_in_on_abort),
    cmocka_unit_test(close_in_on_data),
    cmocka_unit_test(close_in_on_drain),
    cmocka_unit_test(close_in_on_close),
    cmocka_unit_test(close_in_on_shutdown),
};
/* clang-format on */

FERRY_TEST_MAIN(tests)
