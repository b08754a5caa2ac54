/* lib/ws/socket.c under the one lifetime rule (common/life.h), through the plain WebSocket API
 * (lib/ws/api.c): the socket is closed with ferry_ws_close(), or the whole server closed, from
 * inside every callback it fires: on_open, on_message (with a second frame in the same read),
 * on_close (the peer's closing handshake, and TCP dropped). Every case must run on_close exactly
 * once, deliver nothing after the close, put the right close frame on the wire, and end with
 * no leak and uv_loop_close() == 0. */
#include "loop_harness.h"
#include "ws_test_util.h"

enum { IN_OPEN, IN_MESSAGE, IN_CLOSE };
enum { CLOSE, SERVER };

typedef struct app {
    h_server *h;
    int in, action;
    int opens, messages, closes, code;
    int acted, send_rc, close_rc, after_close;
    int server_closing;
} app;

static app A;

static void act(ferry_ws *ws, int in)
{
    if (A.in != in)
        return;
    A.acted++;
    if (A.action == CLOSE) {
        A.close_rc = ferry_ws_close(ws, 4000, "bye");
        assert_int_equal(ferry_ws_close(ws, 1000, NULL), -FERRY_ECLOSED); /* once */
    } else if (!A.server_closing) {
        A.server_closing = 1;
        A.close_rc = ferry_server_close(A.h->srv, h_on_server_closed, A.h);
    }
    A.send_rc = ferry_ws_send(ws, "late", 4, 0);
}

static void on_open(ferry_ws *ws, void *ud)
{
    (void)ud;
    A.opens++;
    act(ws, IN_OPEN);
}

static void on_message(ferry_ws *ws, const char *data, size_t len, int binary, void *ud)
{
    (void)ud;
    A.after_close += A.closes > 0;
    A.messages++;
    if (A.in == IN_MESSAGE) {
        act(ws, IN_MESSAGE);
        return;
    }
    ferry_ws_send(ws, data, len, binary);
}

static void on_close(ferry_ws *ws, int code, void *ud)
{
    (void)ud;
    A.closes++;
    A.code = code;
    act(ws, IN_CLOSE);
}

static const ferry_ws_callbacks cbs = {on_open, on_message, on_close};

static const char handshake[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static h_server *start(int in, int action)
{
    memset(&A, 0, sizeof(A));
    A.in = in;
    A.action = action;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = h_start(&cfg);
    A.h = h;
    assert_int_equal(ferry_ws_route(h->srv, "/ws", NULL, &cbs, &A), 0);
    return h;
}

static void stop(h_server *h)
{
    if (!A.server_closing) {
        h_stop(h);
        return;
    }
    assert_int_equal(A.close_rc, 0);
    assert_true(h_run_until(h, h_cond_flag, &h->closed, 5000));
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

static int closed_once(void *ud)
{
    (void)ud;
    return A.closes > 0;
}

/* Upgrade with frames right behind the request; returns the client with the 101 taken off. */
static h_client *upgrade(h_server *h, const uint8_t *frames, size_t len)
{
    h_client *c = hc_connect(h);
    uint8_t buf[1024];
    memcpy(buf, handshake, sizeof(handshake) - 1);
    if (len > 0)
        memcpy(buf + sizeof(handshake) - 1, frames, len);
    hc_send(c, buf, sizeof(handshake) - 1 + len);
    h_response r;
    assert_int_equal(hc_response(c, &r, 3000), 101);
    return c;
}

/* The close frame the server sent (the first frame left): its code, or -1 when none. */
static int close_code(h_client *c)
{
    for (size_t i = 0; i + 1 < c->len;) {
        size_t len = (uint8_t)c->in[i + 1] & 0x7f;
        if (((uint8_t)c->in[i] & 0x0f) == WS_OP_CLOSE)
            return len >= 2 ? ((uint8_t)c->in[i + 2] << 8) | (uint8_t)c->in[i + 3] : 1005;
        i += 2 + len;
    }
    return -1;
}

static void run(int in, int action)
{
    h_server *h = start(in, action);
    uint8_t f[64];
    size_t n = 0;
    if (in == IN_MESSAGE) {
        n = client_frame(f, 0, 1, 0, WS_OP_TEXT, "hi", 2);
        n = client_frame(f, n, 1, 0, WS_OP_TEXT, "ignored", 7); /* same read, after the close */
    }
    h_client *c = upgrade(h, f, n);
    assert_int_equal(A.opens, 1);
    if (in == IN_CLOSE) {
        /* The peer closes: our answer, then on_close, which acts. */
        n = client_frame(f, 0, 1, 0, WS_OP_CLOSE, "\x03\xe8", 2);
        hc_send(c, f, n);
    }
    assert_true(hc_wait_eof(c, 5000)); /* the server ends TCP (after our close answer) */
    if (action == CLOSE && in != IN_CLOSE) {
        assert_int_equal(close_code(c), 4000);
        /* No answer from this client: the server cut after its wait (2 s). */
    } else if (action == SERVER && in != IN_CLOSE) {
        assert_int_equal(close_code(c), 1001); /* Going Away */
    } else {
        assert_int_equal(close_code(c), 1000); /* the echo of the peer's close */
    }
    assert_true(h_run_until(h, closed_once, NULL, 5000));
    hc_close(c);
    stop(h);
    assert_int_equal(A.acted, 1);
    assert_int_equal(A.closes, 1);
    assert_int_equal(A.after_close, 0);
    if (in == IN_MESSAGE)
        assert_int_equal(A.messages, 1);
    if (in != IN_CLOSE || action == CLOSE)
        assert_int_equal(A.send_rc, -FERRY_ECLOSED);
    if (action == CLOSE)
        assert_int_equal(A.close_rc, in == IN_CLOSE ? -FERRY_ECLOSED : 0);
}

static void close_in_on_open(void **state)
{
    (void)state;
    run(IN_OPEN, CLOSE);
    run(IN_OPEN, SERVER);
}

static void close_in_on_message(void **state)
{
    (void)state;
    run(IN_MESSAGE, CLOSE);
    run(IN_MESSAGE, SERVER);
}

static void close_in_on_close(void **state)
{
    (void)state;
    run(IN_CLOSE, CLOSE);
    run(IN_CLOSE, SERVER);
}

/* TCP dropped without a closing handshake: on_close (1006) closes again, or closes the
 * server. */
static void close_in_on_close_after_drop(void **state)
{
    (void)state;
    for (int action = CLOSE; action <= SERVER; action++) {
        h_server *h = start(IN_CLOSE, action);
        h_client *c = upgrade(h, NULL, 0);
        hc_close(c);
        assert_true(h_run_until(h, closed_once, NULL, 3000));
        assert_int_equal(A.code, 1006);
        stop(h);
        assert_int_equal(A.closes, 1);
        assert_int_equal(A.acted, 1);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(close_in_on_open),
    cmocka_unit_test(close_in_on_message),
    cmocka_unit_test(close_in_on_close),
    cmocka_unit_test(close_in_on_close_after_drop),
};

FERRY_TEST_MAIN(tests)
