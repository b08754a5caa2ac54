/* The plain WebSocket API on a real loop (lib/server/ws_api.c, lib/ws/socket.c): a raw TCP client
 * drives a ferry_ws route byte for byte, and the callbacks close the socket or the whole server
 * from inside on_message. Each case counts callbacks and ends with uv_loop_close() == 0. */
#include "loop_harness.h"
#include "ws_test_util.h"

enum { MODE_ECHO, MODE_CLOSE, MODE_SERVER_CLOSE };

typedef struct app {
    int mode;
    int opens, messages, closes, code;
    int send_after_close, close_again;
    uint64_t close_at; /* loop time of our close frame (the wheel counts from it) */
    h_server *h;
} app;

static app A;

static void on_open(ferry_ws *ws, void *ud)
{
    ((app *)ud)->opens++;
}

static void on_message(ferry_ws *ws, const char *data, size_t len, int binary, void *ud)
{
    app *a = ud;
    a->messages++;
    switch (a->mode) {
    case MODE_ECHO:
        ferry_ws_send(ws, data, len, binary);
        break;
    case MODE_CLOSE:
        a->close_at = uv_now(&a->h->loop);
        assert_int_equal(ferry_ws_close(ws, 4000, "bye"), 0);
        a->send_after_close = ferry_ws_send(ws, "x", 1, 0);
        a->close_again = ferry_ws_close(ws, 1000, NULL);
        break;
    case MODE_SERVER_CLOSE:
        assert_int_equal(ferry_server_close(a->h->srv, h_on_server_closed, a->h), 0);
        break;
    }
}

static void on_close(ferry_ws *ws, int code, void *ud)
{
    app *a = ud;
    a->closes++;
    a->code = code;
}

static const ferry_ws_callbacks cbs = {on_open, on_message, on_close};

static const char handshake[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static h_server *start(int mode)
{
    memset(&A, 0, sizeof(A));
    A.mode = mode;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = h_start(&cfg);
    A.h = h;
    assert_int_equal(ferry_ws_route(h->srv, "/ws", NULL, &cbs, &A), 0);
    return h;
}

/* Connect, upgrade, and send the frames (built with client_frame) right behind the request. */
static h_client *upgrade(h_server *h, const uint8_t *frames, size_t len)
{
    h_client *c = hc_connect(h);
    uint8_t buf[1024];
    memcpy(buf, handshake, sizeof(handshake) - 1);
    if (len > 0)
        memcpy(buf + sizeof(handshake) - 1, frames, len);
    hc_send(c, buf, sizeof(handshake) - 1 + len);
    h_response r;
    /* The 101 has no Content-Length: hc_response takes just its head. */
    assert_int_equal(hc_response(c, &r, 2000), 101);
    assert_non_null(strstr(r.head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    return c;
}

typedef struct want {
    h_client *c;
    size_t n;
} want;

static int has_bytes(void *ud)
{
    want *w = ud;
    return w->c->len >= w->n || w->c->eof;
}

/* Wait for exactly the bytes expect from the server. */
static void expect_bytes(h_client *c, const void *expect, size_t n)
{
    want w = {c, n};
    assert_true(h_run_until(c->h, has_bytes, &w, 3000));
    assert_true(c->len >= n);
    assert_memory_equal(c->in, expect, n);
    memmove(c->in, c->in + n, c->len - n);
    c->len -= n;
}

static int closed_once(void *ud)
{
    return ((app *)ud)->closes > 0;
}

static void echo_then_clean_close(void **state)
{
    h_server *h = start(MODE_ECHO);
    uint8_t f[64];
    size_t n = client_frame(f, 0, 1, 0, WS_OP_TEXT, "hi", 2);
    n = client_frame(f, n, 1, 0, WS_OP_CLOSE, "\x03\xe8", 2);
    h_client *c = upgrade(h, f, n);
    expect_bytes(c, "\x81\x02hi\x88\x02\x03\xe8", 8);
    assert_true(hc_wait_eof(c, 2000)); /* the server closes TCP first */
    assert_true(h_run_until(h, closed_once, &A, 2000));
    assert_int_equal(A.opens, 1);
    assert_int_equal(A.messages, 1);
    assert_int_equal(A.closes, 1);
    assert_int_equal(A.code, 1000);
    hc_close(c);
    h_stop(h);
}

static void close_inside_on_message(void **state)
{
    h_server *h = start(MODE_CLOSE);
    uint8_t f[64];
    size_t n = client_frame(f, 0, 1, 0, WS_OP_TEXT, "hi", 2);
    n = client_frame(f, n, 1, 0, WS_OP_TEXT, "ignored", 7); /* after our close: not echoed */
    h_client *c = upgrade(h, f, n);
    expect_bytes(c, "\x88\x05\x0f\xa0" "bye", 7);
    assert_int_equal(A.send_after_close, -FERRY_ECLOSED);
    assert_int_equal(A.close_again, -FERRY_ECLOSED);
    assert_int_equal(A.closes, 0); /* waits for the peer's answer */
    n = client_frame(f, 0, 1, 0, WS_OP_CLOSE, "\x0f\xa0", 2);
    hc_send(c, f, n);
    assert_true(hc_wait_eof(c, 2000));
    assert_true(h_run_until(h, closed_once, &A, 2000));
    assert_int_equal(A.closes, 1);
    assert_int_equal(A.code, 4000);
    assert_int_equal(c->len, 0); /* nothing after the close frame */
    hc_close(c);
    h_stop(h);
}

static void close_without_answer_times_out(void **state)
{
    h_server *h = start(MODE_CLOSE);
    uint8_t f[16];
    size_t n = client_frame(f, 0, 1, 0, WS_OP_TEXT, "hi", 2);
    h_client *c = upgrade(h, f, n);
    expect_bytes(c, "\x88\x05\x0f\xa0" "bye", 7);
    /* The connection is cut 2 s after the close frame went out (the server sends it while
     * the upgrade is still being read, so the wait is measured from the close itself, in
     * the loop time the wheel counts in), and never before; the upper bound only guards
     * against a connection held open for good. */
    assert_true(A.close_at > 0);
    assert_true(hc_wait_eof(c, 10000));
    uint64_t waited = c->eof_at - A.close_at;
    assert_true(waited >= 2000);
    assert_true(waited < 10000);
    assert_true(h_run_until(h, closed_once, &A, 2000));
    assert_int_equal(A.code, 4000);
    hc_close(c);
    h_stop(h);
}

static void server_close_inside_on_message(void **state)
{
    h_server *h = start(MODE_SERVER_CLOSE);
    uint8_t f[16];
    size_t n = client_frame(f, 0, 1, 0, WS_OP_TEXT, "hi", 2);
    h_client *c = upgrade(h, f, n);
    expect_bytes(c, "\x88\x02\x03\xe9", 4); /* 1001 Going Away */
    assert_true(hc_wait_eof(c, 2000));
    assert_true(h_run_until(h, h_cond_flag, &h->closed, 3000));
    assert_int_equal(A.closes, 1);
    assert_int_equal(A.code, 1001);
    hc_close(c);
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

static void dropped_tcp_is_1006(void **state)
{
    h_server *h = start(MODE_ECHO);
    h_client *c = upgrade(h, NULL, 0);
    assert_int_equal(A.opens, 1);
    hc_close(c);
    assert_true(h_run_until(h, closed_once, &A, 2000));
    assert_int_equal(A.code, 1006);
    h_stop(h);
}

static void bad_handshake_is_400_and_no_open(void **state)
{
    h_server *h = start(MODE_ECHO);
    h_response r;
    assert_int_equal(h_request(h, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                               &r),
                     400);
    assert_non_null(strstr(r.body, "Sec-WebSocket-Key"));
    assert_non_null(strstr(r.head, "Sec-WebSocket-Version: 13"));
    assert_int_equal(A.opens, 0);
    h_stop(h);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_then_clean_close),
    cmocka_unit_test(close_inside_on_message),
    cmocka_unit_test(close_without_answer_times_out),
    cmocka_unit_test(server_close_inside_on_message),
    cmocka_unit_test(dropped_tcp_is_1006),
    cmocka_unit_test(bad_handshake_is_400_and_no_open),
};

FERRY_TEST_MAIN(tests)
