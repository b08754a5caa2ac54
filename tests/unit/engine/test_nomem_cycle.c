/* A whole Engine.IO exchange under allocation failure (issue 9, defect 3; nghttp2's failmalloc
 * idea, through ferry_set_allocator): handshake -> message -> echo -> close, on polling,
 * WebSocket and SSE, with the Nth allocation failing for N = 0, 1, 2, ... until the exchange
 * needs no more. Every run must end without a crash, with a clean answer at each step (the
 * right one, an HTTP error status, a WebSocket close or the connection closed; never garbage),
 * with every allocation given back once the server is stopped (counted here, and checked by
 * LeakSanitizer), and with the server still serving a good exchange right after the failure. */
#include "loop_harness.h"

#include <stdlib.h>

#include "server/server.h"
#include "ws/frame.h"

/* ------------------------------------------------------------------ the failing allocator */

static long countdown = -1; /* allocations left before one fails; -1: never */
static int failed;
static long live; /* allocations not given back */
static long current_n; /* the allocation failing in this run, for messages */

static void show(const char *what, const h_client *c)
{
    fprintf(stderr, "allocation %ld failing, %s: eof %d, %zu bytes: \"%.*s\"\n", current_n, what,
            c->eof, c->len, (int)(c->len < 600 ? c->len : 600), c->in);
}

static int should_fail(void)
{
    if (countdown < 0)
        return 0;
    if (countdown-- == 0) {
        failed = 1;
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t n)
{
    void *p = should_fail() ? NULL : malloc(n);
    live += p != NULL;
    return p;
}

static void *t_realloc(void *p, size_t n)
{
    void *q = should_fail() ? NULL : realloc(p, n);
    if (p == NULL && q != NULL)
        live++;
    return q;
}

static void *t_calloc(size_t a, size_t b)
{
    void *p = should_fail() ? NULL : calloc(a, b);
    live += p != NULL;
    return p;
}

static void t_free(void *p)
{
    live -= p != NULL;
    free(p);
}

/* ------------------------------------------------------------------ the server */

static void on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    (void)ud;
    /* Out of memory is a clean error the app hears; this one ends the session then, so that
     * its client is not left waiting for an echo that will not come. */
    if (ferry_session_send(s, data, len, binary) != 0)
        ferry_session_close(s);
}

static void on_session(ferry_session *s, void *ud)
{
    (void)ud;
    ferry_session_on_message(s, on_message, NULL);
}

static h_server *start(void)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.transports = FERRY_TRANSPORT_ALL;
    cfg.ping_interval_ms = 60000;
    h_server *h = h_start(&cfg);
    assert_int_equal(ferry_server_on_session(h->srv, on_session, NULL), 0);
    return h;
}

#define WAIT 1500 /* per step; an answer on loopback takes well under a millisecond */

/* The sid in an open packet, or "" */
static void sid_of(const char *body, char *sid, size_t cap)
{
    sid[0] = '\0';
    const char *p = strstr(body, "\"sid\":\"");
    if (p == NULL)
        return;
    p += 7;
    size_t n = strcspn(p, "\"");
    if (n >= cap)
        return;
    memcpy(sid, p, n);
    sid[n] = '\0';
}

/* A status is clean when it is the expected one or an error ferry answers with. */
static int clean_status(int status, int expected)
{
    return status == expected || status == 0 || status == 400 || status == 403 ||
           status == 500 || status == 503;
}

static int request(h_server *h, const char *method, const char *query, const char *body,
                   h_response *r)
{
    char raw[1024];
    snprintf(raw, sizeof(raw),
             "%s /engine.io/?EIO=4&%s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             method, query, body ? strlen(body) : 0, body ? body : "");
    return h_request(h, raw, r);
}

/* polling: handshake, POST a message, GET its echo, POST close. 1 when all went through. */
static int cycle_polling(h_server *h)
{
    h_response r;
    int st = request(h, "GET", "transport=polling", NULL, &r);
    assert_true(clean_status(st, 200));
    if (st != 200)
        return 0;
    if (strcmp(r.body, "1") == 0)
        return 0; /* the session closed before its open packet could go out */
    assert_memory_equal(r.body, "0{\"sid\":\"", 9);
    char sid[64], q[128];
    sid_of(r.body, sid, sizeof(sid));
    assert_true(sid[0] != '\0');
    snprintf(q, sizeof(q), "transport=polling&sid=%s", sid);
    st = request(h, "POST", q, "4hello", &r);
    assert_true(clean_status(st, 200));
    if (st != 200)
        return 0;
    assert_string_equal(r.body, "ok");
    st = request(h, "GET", q, NULL, &r);
    assert_true(clean_status(st, 200));
    if (st != 200)
        return 0;
    /* The echo, or the close packet of a session that could not queue it. */
    if (strcmp(r.body, "4hello") != 0) {
        assert_string_equal(r.body, "1");
        return 0;
    }
    st = request(h, "POST", q, "1", &r);
    assert_true(clean_status(st, 200));
    return st == 200;
}

/* Server frames: unmasked, payloads under 126 bytes in this exchange. Takes one off c->in;
 * returns its opcode, or -1 when none is complete. */
static int take_frame(h_client *c, char *payload, size_t cap)
{
    if (c->len < 2)
        return -1;
    uint8_t b0 = (uint8_t)c->in[0], b1 = (uint8_t)c->in[1];
    assert_int_equal(b1 & 0x80, 0);
    size_t len = b1 & 0x7f;
    assert_true(len < 126 && len < cap);
    if (c->len < 2 + len)
        return -1;
    memcpy(payload, c->in + 2, len);
    payload[len] = '\0';
    memmove(c->in, c->in + 2 + len, c->len - 2 - len);
    c->len -= 2 + len;
    return b0 & 0x0f;
}

static int cond_frame_or_eof(void *ud)
{
    h_client *c = ud;
    return c->eof || (c->len >= 2 && c->len >= 2 + (size_t)((uint8_t)c->in[1] & 0x7f));
}

/* The next frame's opcode (payload in payload), or -1 when the connection ended. */
static int next_frame(h_client *c, char *payload, size_t cap)
{
    h_run_until(c->h, cond_frame_or_eof, c, WAIT);
    int op = take_frame(c, payload, cap);
    if (op < 0 && !c->eof)
        show("no frame and no end", c);
    if (op < 0)
        assert_true(c->eof); /* nothing partial is left hanging: the server closed */
    return op;
}

/* A masked client text frame (under 126 bytes). */
static void ws_send_text(h_client *c, const char *text)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t f[256];
    size_t len = strlen(text);
    assert_true(len < 126);
    f[0] = 0x80 | WS_OP_TEXT;
    f[1] = (uint8_t)(0x80 | len);
    memcpy(f + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = (uint8_t)text[i] ^ key[i & 3];
    hc_send(c, f, 6 + len);
}

static int cycle_websocket(h_server *h)
{
    h_client *c = hc_connect(h);
    hc_sends(c, "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    h_response r;
    int st = hc_response(c, &r, WAIT);
    int ok = 0;
    char p[256];
    assert_true(clean_status(st, 101));
    if (st != 101)
        goto done;
    int op = next_frame(c, p, sizeof(p));
    if (op < 0)
        goto done;
    if (op == WS_OP_CLOSE)
        goto done;
    assert_int_equal(op, WS_OP_TEXT);
    assert_memory_equal(p, "0{\"sid\":\"", 9);
    ws_send_text(c, "4hello");
    op = next_frame(c, p, sizeof(p));
    if (op < 0 || op == WS_OP_CLOSE)
        goto done;
    assert_int_equal(op, WS_OP_TEXT);
    if (strcmp(p, "1") == 0)
        goto done; /* the session closed: it could not queue the echo */
    assert_string_equal(p, "4hello");
    ws_send_text(c, "1");
    ok = 1;
    /* The server ends the session with a close frame (then TCP, once answered or after its
     * own timeout: this client just goes). */
    while ((op = next_frame(c, p, sizeof(p))) >= 0 && op != WS_OP_CLOSE)
        ;
done:
    hc_close(c);
    return ok;
}

static int cond_contains(void *ud)
{
    const char **w = ud;
    h_client *c = (h_client *)w[0];
    /* An error answer instead of the stream is complete at its blank line. */
    int refused = strncmp(c->in, "HTTP/1.1 ", 9) == 0 && strncmp(c->in, "HTTP/1.1 200", 12) != 0 &&
                  strstr(c->in, "\r\n\r\n") != NULL;
    return c->eof || refused || strstr(c->in, w[1]) != NULL;
}

static int wait_for(h_client *c, const char *needle)
{
    const void *w[2] = {c, needle};
    h_run_until(c->h, cond_contains, (void *)w, WAIT);
    return strstr(c->in, needle) != NULL;
}

static int cycle_sse(h_server *h)
{
    h_client *c = hc_connect(h);
    hc_sends(c, "GET /engine.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: x\r\n"
                "Accept: text/event-stream\r\n\r\n");
    int ok = 0;
    if (!wait_for(c, "\"pingInterval\"")) {
        /* Refused: an error status, or the connection closed. */
        assert_true(c->eof || strncmp(c->in, "HTTP/1.1 5", 10) == 0 ||
                    strncmp(c->in, "HTTP/1.1 4", 10) == 0);
        goto done;
    }
    assert_memory_equal(c->in, "HTTP/1.1 200 OK\r\n", 17);
    char sid[64], q[128];
    sid_of(c->in, sid, sizeof(sid));
    assert_true(sid[0] != '\0');
    snprintf(q, sizeof(q), "transport=sse&sid=%s", sid);
    h_response r;
    int st = request(h, "POST", q, "4hello", &r);
    assert_true(clean_status(st, 200));
    if (st != 200)
        goto done;
    if (!wait_for(c, "data: 4hello\n\n")) {
        assert_true(c->eof || strstr(c->in, "data: 1\n\n") != NULL);
        goto done;
    }
    st = request(h, "POST", q, "1", &r);
    assert_true(clean_status(st, 200));
    ok = st == 200;
    /* The close went through: the stream ends. (A refused POST never reached the session.) */
    if (ok && !hc_wait_eof(c, WAIT)) {
        show("the stream did not end after the close", c);
        fail();
    }
done:
    hc_close(c);
    return ok;
}

/* ------------------------------------------------------------------ Socket.IO over polling */

static void on_echo(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    (void)event, (void)ud;
    /* The app's clean answer to out of memory: end the socket's session. */
    if (ack != NULL && ferry_ack_send(ack, args) != 0)
        ferry_socket_disconnect(s, 1);
}

/* A GET's packets are the expected ones, or the session or socket ended: a close packet ("1")
 * or a Socket.IO DISCONNECT/CONNECT_ERROR ("41", "44") among them. */
static int sio_ended(const char *body)
{
    if (strcmp(body, "1") == 0 || strncmp(body, "41", 2) == 0 || strncmp(body, "44", 2) == 0)
        return 1;
    const char *last = strrchr(body, '\x1e');
    return last != NULL && (strcmp(last + 1, "1") == 0 || strncmp(last + 1, "41", 2) == 0);
}

static int sio_get(h_server *h, const char *q, const char *want_prefix)
{
    h_response r;
    int st = request(h, "GET", q, NULL, &r);
    assert_true(clean_status(st, 200));
    if (st != 200)
        return 0;
    if (strncmp(r.body, want_prefix, strlen(want_prefix)) == 0)
        return 1;
    if (!sio_ended(r.body)) {
        fprintf(stderr, "allocation %ld failing: GET answered \"%s\"\n", current_n, r.body);
        fail();
    }
    return 0;
}

static int sio_post(h_server *h, const char *q, const char *body)
{
    h_response r;
    int st = request(h, "POST", q, body, &r);
    assert_true(clean_status(st, 200));
    return st == 200;
}

/* handshake, CONNECT to "/", an event with an ack, its answer, close. */
static int cycle_socketio(h_server *h)
{
    h_response r;
    int st = request(h, "GET", "transport=polling", NULL, &r);
    assert_true(clean_status(st, 200));
    if (st != 200 || strcmp(r.body, "1") == 0)
        return 0;
    assert_memory_equal(r.body, "0{\"sid\":\"", 9);
    char sid[64], q[128];
    sid_of(r.body, sid, sizeof(sid));
    snprintf(q, sizeof(q), "transport=polling&sid=%s", sid);
    if (!sio_post(h, q, "40") || !sio_get(h, q, "40{\"sid\":\""))
        return 0;
    if (!sio_post(h, q, "421[\"echo\",\"hi\",{\"n\":[1,2]}]") ||
        !sio_get(h, q, "431[\"hi\",{\"n\":[1,2]}]"))
        return 0;
    return sio_post(h, q, "1");
}

static h_server *start_sio(void)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/"; /* the path request() uses; the Socket.IO layer does not care */
    cfg.ping_interval_ms = 60000;
    h_server *h = h_start(&cfg);
    ferry_namespace *nsp = ferry_of(h->srv, "/");
    assert_non_null(nsp);
    assert_int_equal(ferry_namespace_on(nsp, "echo", on_echo, NULL), 0);
    return h;
}

/* ------------------------------------------------------------------ control packets */

static int closes;
static ferry_reason close_reason;
static ferry_session *opened;
static h_server *ctl_h;

static void on_ctl_close(ferry_session *s, ferry_reason reason, void *ud)
{
    (void)s, (void)ud;
    closes++;
    close_reason = reason;
    opened = NULL;
}

static void on_ctl_session(ferry_session *s, void *ud)
{
    (void)ud;
    opened = s;
    ferry_session_on_close(s, on_ctl_close, NULL);
    /* The wheel holds still until the test has armed the failure: a loaded machine can take
     * longer than pingInterval to finish the handshake, and a ping that fired meanwhile went
     * out with memory to spare (the session then waited for its 60 s ping timeout). The
     * heartbeat was armed just before this callback; the wheel is started again below. */
    uv_timer_stop(&ctl_h->srv->wheel_timer);
}

static int cond_closed(void *ud)
{
    (void)ud;
    return closes > 0;
}

/* A ping or close packet that cannot be queued closes the session at once (issue 9): it was
 * dropped silently, and the session lingered until its ping timeout (or, for a graceful
 * close, until the bound on the close), its client none the wiser. */
static void control_packets_without_memory(void **state)
{
    (void)state;
    assert_int_equal(ferry_set_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
    for (int graceful = 0; graceful < 2; graceful++) {
        ferry_server_config cfg;
        ferry_server_config_init(&cfg);
        cfg.path = "/engine.io/";
        cfg.ping_interval_ms = graceful ? 60000 : 100;
        cfg.ping_timeout_ms = 60000; /* far beyond the waits below */
        h_server *h = h_start(&cfg);
        ctl_h = h;
        assert_int_equal(ferry_server_on_session(h->srv, on_ctl_session, NULL), 0);
        closes = 0;
        h_response r;
        assert_int_equal(request(h, "GET", "transport=polling", NULL, &r), 200);
        assert_non_null(opened);
        uint64_t t0 = h_now(h);
        failed = 0;
        countdown = 0; /* the next allocation fails: the ping's, or the close packet's */
        /* The wheel runs again: the ping fires when due (at once if the handshake was slow). */
        uv_timer_start(&h->srv->wheel_timer, ferry_wheel_on_uv_timer, 0, 0);
        if (graceful)
            ferry_session_close(opened); /* graceful: a close packet first */
        assert_true(h_run_until(h, cond_closed, NULL, 10000)); /* generous: a loaded machine */
        countdown = -1;
        assert_true(failed);
        assert_int_equal(closes, 1);
        assert_int_equal(close_reason,
                         graceful ? FERRY_REASON_FORCED_CLOSE : FERRY_REASON_TRANSPORT_ERROR);
        assert_true(h_now(h) - t0 < 10000);
        h_stop(h);
    }
}

/* ------------------------------------------------------------------ the runs */

static void fail_every_allocation_on(h_server *(*start_fn)(void), int (*cycle)(h_server *h))
{
    assert_int_equal(ferry_set_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
    int runs = 0, done = 0;
    for (long n = 0; n < 3000 && !done; n++) {
        long before = live;
        h_server *h = start_fn();
        countdown = n;
        current_n = n;
        failed = 0;
        uint64_t t0 = h_now(h);
        int ok = cycle(h);
        countdown = -1;
        uint64_t took = h_now(h) - t0;
        if (took > 500)
            fprintf(stderr, "allocation %ld failing: the exchange took %llu ms\n", n,
                    (unsigned long long)took);
        /* A request the harness gave up on (3 s) was never answered: a hang, not an error
         * (a CONNECT or an acked event dropped silently did this). */
        if (took >= 2900)
            fail_msg("allocation %ld failing: a request hung", n);
        done = !failed;
        if (done)
            assert_true(ok); /* nothing failed: the exchange went through */
        /* The same server still serves a whole exchange. */
        assert_true(cycle(h));
        h_stop(h);
        if (live != before)
            fail_msg("allocation %ld failing: %ld allocations not given back", n, live - before);
        runs++;
    }
    assert_true(done);
    print_message("%d runs, one per allocation of the exchange\n", runs);
}

static void fail_every_allocation(int (*cycle)(h_server *h))
{
    fail_every_allocation_on(start, cycle);
}

/* The same with the Socket.IO layer on top (namespaces, packets, acks): over polling. */
static void nomem_cycle_socketio(void **state)
{
    (void)state;
    fail_every_allocation_on(start_sio, cycle_socketio);
}

static void nomem_cycle_polling(void **state)
{
    (void)state;
    fail_every_allocation(cycle_polling);
}

static void nomem_cycle_websocket(void **state)
{
    (void)state;
    fail_every_allocation(cycle_websocket);
}

static void nomem_cycle_sse(void **state)
{
    (void)state;
    fail_every_allocation(cycle_sse);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(nomem_cycle_polling),
    cmocka_unit_test(nomem_cycle_websocket),
    cmocka_unit_test(nomem_cycle_sse),
    cmocka_unit_test(nomem_cycle_socketio),
    cmocka_unit_test(control_packets_without_memory),
};

FERRY_TEST_MAIN(tests)
