/* Per-session counters (ferry_session_counter(), issue 15): the bytes a session is counted for
 * must be exactly the bytes its client's sockets wrote and read, heads, bodies and framing
 * included, on every transport and across an upgrade; packets and messages as the client sent
 * and got them; requests one by one. A request that names no session is counted nowhere. */
#include "loop_harness.h"

#include <stdlib.h>

#include "engine/internal.h"
#include "ws/frame.h"

#define WAIT 5000
#define WS_HEAD                                                                                    \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                               \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

/* What the client side did, counted at its sockets. */
typedef struct tally {
    uint64_t sent;
    uint64_t got;
    uint64_t requests;
} tally;

static ferry_session *last;
static int closes;
static uint64_t final_bytes_out; /* read inside the close callback */

static void on_close(ferry_session *s, ferry_reason reason, void *ud)
{
    (void)reason, (void)ud;
    closes++;
    final_bytes_out = ferry_session_counter(s, FERRY_COUNTER_BYTES_OUT);
    last = NULL;
}

static void on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    (void)ud;
    ferry_session_send(s, data, len, binary); /* echo */
}

static void on_session(ferry_session *s, void *ud)
{
    (void)ud;
    last = s;
    ferry_session_on_message(s, on_message, NULL);
    ferry_session_on_close(s, on_close, NULL);
}

static h_server *start(void)
{
    last = NULL;
    closes = 0;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.ping_interval_ms = 60000; /* no ping in the middle of an exact count */
    cfg.transports = FERRY_TRANSPORT_ALL;
    h_server *h = h_start(&cfg);
    assert_int_equal(ferry_server_on_session(h->srv, on_session, NULL), 0);
    return h;
}

static uint64_t counter(ferry_counter which)
{
    assert_non_null(last);
    return ferry_session_counter(last, which);
}

/* One request on a fresh connection, its bytes tallied: what was written, and the whole
 * response as read (head, blank line, body). Returns the status. */
static int exchange(h_server *h, tally *t, const char *raw, h_response *r)
{
    h_client *c = hc_connect(h);
    hc_sends(c, raw);
    int status = hc_response(c, r, WAIT);
    assert_true(status > 0);
    t->sent += strlen(raw);
    t->got += strlen(r->head) + 4 + r->body_len;
    t->requests++;
    hc_close(c);
    return status;
}

static const char *sid_of(void)
{
    assert_non_null(last);
    return ferry_session_id(last);
}

static char *req(const char *method, const char *transport, const char *body)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "%s /engine.io/?EIO=4&transport=%s&sid=%s HTTP/1.1\r\nHost: counters.test\r\n"
             "User-Agent: test_counters/1.0\r\nContent-Length: %zu\r\n\r\n%s",
             method, transport, sid_of(), body ? strlen(body) : 0, body ? body : "");
    return buf;
}

static void assert_counts(const tally *t)
{
    assert_int_equal(counter(FERRY_COUNTER_BYTES_IN), t->sent);
    assert_int_equal(counter(FERRY_COUNTER_BYTES_OUT), t->got);
    assert_int_equal(counter(FERRY_COUNTER_REQUESTS), t->requests);
}

/* Long-polling: the handshake, a POST, the GET that takes its echo, a chunked POST, a GET, and
 * a request for another sid (counted nowhere). Every byte both ways, exactly. */
static void polling_counts_every_byte(void **state)
{
    (void)state;
    h_server *h = start();
    tally t = {0};
    h_response r;
    assert_int_equal(exchange(h, &t,
                              "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
                              &r),
                     200);
    assert_non_null(last);
    assert_memory_equal(r.body, "0{\"sid\":\"", 9);
    assert_counts(&t);
    assert_int_equal(counter(FERRY_COUNTER_PACKETS_OUT), 1); /* the open packet */
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_OUT), 0);

    assert_int_equal(exchange(h, &t, req("POST", "polling", "4hello\x1e" "4hi"), &r), 200);
    assert_int_equal(exchange(h, &t, req("GET", "polling", NULL), &r), 200);
    assert_string_equal(r.body, "4hello\x1e" "4hi");
    assert_counts(&t);

    /* Chunked: the chunk sizes and their CRLFs are on the wire, so they are counted. */
    char chunked[1024];
    snprintf(chunked, sizeof(chunked),
             "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n"
             "Transfer-Encoding: chunked\r\n\r\n3\r\n4ab\r\n2\r\ncd\r\n0\r\n\r\n",
             sid_of());
    assert_int_equal(exchange(h, &t, chunked, &r), 200);
    assert_int_equal(exchange(h, &t, req("GET", "polling", NULL), &r), 200);
    assert_string_equal(r.body, "4abcd");
    assert_counts(&t);

    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_IN), 3);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGE_BYTES_IN), 5 + 2 + 4);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_OUT), 3);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGE_BYTES_OUT), 5 + 2 + 4);
    assert_int_equal(counter(FERRY_COUNTER_PACKETS_IN), 3);
    assert_int_equal(counter(FERRY_COUNTER_PACKETS_OUT), 4);

    /* Bad input: an unknown sid is a 400 that no session pays for. */
    tally other = {0};
    assert_int_equal(exchange(h, &other,
                              "GET /engine.io/?EIO=4&transport=polling&sid=nosuchsessionxxxxxxxxx "
                              "HTTP/1.1\r\nHost: x\r\n\r\n",
                              &r),
                     400);
    assert_counts(&t);
    /* A payload that closes the session (a parse error): its close callback reads the figures
     * so far; the 400 that answers the POST is written after it. */
    uint64_t before = t.got;
    assert_int_equal(exchange(h, &t, req("POST", "polling", "4x\x1e"), &r), 400);
    assert_int_equal(closes, 1);
    assert_int_equal(final_bytes_out, before);
    h_stop(h);
}

/* ---- WebSocket frames (server frames are unmasked, payloads under 126 bytes here) */

typedef struct frames_wait {
    h_client *c;
    size_t skip; /* the 101's head */
    size_t want;
} frames_wait;

static int cond_frames(void *ud)
{
    frames_wait *w = ud;
    const h_client *c = w->c;
    size_t at = w->skip, n = 0;
    while (at + 2 <= c->len && at + 2 + ((uint8_t)c->in[at + 1] & 0x7f) <= c->len) {
        at += 2 + ((uint8_t)c->in[at + 1] & 0x7f);
        n++;
    }
    return c->eof || n >= w->want;
}

/* Wait until c->in holds at least n whole frames after its first skip bytes. */
static void wait_frames(h_client *c, size_t skip, size_t n)
{
    frames_wait w = {c, skip, n};
    assert_true(h_run_until(c->h, cond_frames, &w, WAIT));
    assert_false(c->eof);
}

static size_t ws_text(h_client *c, const char *text)
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
    return 6 + len;
}

static size_t head_len(const h_client *c)
{
    const char *end = strstr(c->in, "\r\n\r\n");
    assert_non_null(end);
    return (size_t)(end - c->in) + 4;
}

static int cond_head(void *ud)
{
    h_client *c = ud;
    return c->eof || strstr(c->in, "\r\n\r\n") != NULL;
}

/* WebSocket from the handshake on: the upgrade request, the 101, the frames both ways with
 * their headers and masks. */
static void websocket_counts_frames(void **state)
{
    (void)state;
    h_server *h = start();
    h_client *c = hc_connect(h);
    const char *up = "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n" WS_HEAD;
    hc_sends(c, up);
    uint64_t sent = strlen(up);
    assert_true(h_run_until(h, cond_head, c, WAIT));
    size_t head = head_len(c);
    assert_memory_equal(c->in, "HTTP/1.1 101", 12);
    wait_frames(c, head, 1); /* the open packet */
    sent += ws_text(c, "4hello");
    wait_frames(c, head, 2); /* its echo */
    assert_memory_equal(c->in + c->len - 8, "\x81\x06" "4hello", 8);
    assert_int_equal(counter(FERRY_COUNTER_BYTES_IN), sent);
    assert_int_equal(counter(FERRY_COUNTER_BYTES_OUT), c->len);
    assert_int_equal(counter(FERRY_COUNTER_REQUESTS), 1);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_IN), 1);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_OUT), 1);
    /* Protocol cost per direction: what the wire carried beyond the message's data. */
    assert_int_equal(counter(FERRY_COUNTER_MESSAGE_BYTES_OUT), 5);
    hc_close(c);
    h_stop(h);
}

/* Polling, then the probe and the upgrade to WebSocket: the session's counters are the sum of
 * both transports' bytes. */
static void counters_survive_the_upgrade(void **state)
{
    (void)state;
    h_server *h = start();
    tally t = {0};
    h_response r;
    assert_int_equal(exchange(h, &t,
                              "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
                              &r),
                     200);
    char up[1024];
    snprintf(up, sizeof(up),
             "GET /engine.io/?EIO=4&transport=websocket&sid=%s HTTP/1.1\r\nHost: x\r\n" WS_HEAD,
             sid_of());
    h_client *c = hc_connect(h);
    hc_sends(c, up);
    t.sent += strlen(up);
    t.requests++;
    assert_true(h_run_until(h, cond_head, c, WAIT));
    size_t head = head_len(c);
    t.sent += ws_text(c, "2probe");
    wait_frames(c, head, 1);
    assert_memory_equal(c->in + head, "\x81\x06" "3probe", 8);
    t.sent += ws_text(c, "5");
    t.sent += ws_text(c, "4after");
    wait_frames(c, head, 2);
    assert_memory_equal(c->in + c->len - 8, "\x81\x06" "4after", 8);
    assert_string_equal(ferry_session_transport(last), "websocket");
    t.got += c->len;
    assert_counts(&t);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_IN), 1);
    hc_close(c);
    h_stop(h);
}

static int cond_contains(void *ud)
{
    void **w = ud;
    h_client *c = w[0];
    return c->eof || strstr(c->in, w[1]) != NULL;
}

static void wait_for(h_client *c, const char *needle)
{
    void *w[2] = {c, (void *)needle};
    assert_true(h_run_until(c->h, cond_contains, w, WAIT));
    assert_non_null(strstr(c->in, needle));
}

/* SSE: the stream's head, its prelude and every event with its "data:" and "id:" lines, and
 * the upstream POSTs on their own connections. */
static void sse_counts_the_stream(void **state)
{
    (void)state;
    h_server *h = start();
    h_client *c = hc_connect(h);
    const char *get = "GET /engine.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: x\r\n"
                      "Accept: text/event-stream\r\n\r\n";
    hc_sends(c, get);
    tally t = {strlen(get), 0, 1};
    wait_for(c, "\"pingInterval\"");
    wait_for(c, "\n\n"); /* the open event whole */
    h_response r;
    assert_int_equal(exchange(h, &t, req("POST", "sse", "4hello"), &r), 200);
    wait_for(c, "4hello\n\n");
    t.got += c->len;
    assert_counts(&t);
    assert_int_equal(counter(FERRY_COUNTER_MESSAGES_OUT), 1);
    hc_close(c);
    h_stop(h);
}

/* The Socket.IO view: a socket reads its session's counters; the names are stable. */
static ferry_socket *connected;

static void on_connection(ferry_socket *s, void *ud)
{
    (void)ud;
    connected = s;
}

static void socket_reads_its_session(void **state)
{
    (void)state;
    connected = NULL;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.ping_interval_ms = 60000;
    h_server *h = h_start(&cfg);
    ferry_namespace *nsp = ferry_of(h->srv, "/");
    assert_non_null(nsp);
    ferry_namespace_on_connection(nsp, on_connection, NULL);
    h_response r;
    assert_int_equal(h_request(h, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
                               &r),
                     200);
    char sid[FERRY_SID_LEN + 1];
    memcpy(sid, r.body + 9, FERRY_SID_LEN);
    sid[FERRY_SID_LEN] = '\0';
    char post[512];
    snprintf(post, sizeof(post),
             "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 2\r\n\r\n40",
             sid);
    assert_int_equal(h_request(h, post, &r), 200);
    assert_non_null(connected);
    ferry_session *s = ferry_socket_session(connected);
    assert_non_null(s);
    for (int i = 0; i < FERRY_COUNTERS; i++) {
        assert_non_null(ferry_counter_name((ferry_counter)i));
        assert_int_equal(ferry_socket_counter(connected, (ferry_counter)i),
                         ferry_session_counter(s, (ferry_counter)i));
    }
    assert_true(ferry_socket_counter(connected, FERRY_COUNTER_BYTES_IN) > 0);
    assert_int_equal(ferry_socket_counter(connected, FERRY_COUNTER_REQUESTS), 2);
    assert_int_equal(ferry_socket_counter(connected, FERRY_COUNTER_MESSAGES_IN), 1);
    assert_string_equal(ferry_counter_name(FERRY_COUNTER_BYTES_IN), "bytes_in");
    assert_string_equal(ferry_counter_name(FERRY_COUNTER_MESSAGE_BYTES_OUT), "message_bytes_out");
    assert_null(ferry_counter_name(FERRY_COUNTERS));
    assert_null(ferry_counter_name((ferry_counter)-1));
    assert_int_equal(ferry_session_counter(s, FERRY_COUNTERS), 0);
    assert_int_equal(ferry_session_counter(s, (ferry_counter)1000), 0);
    h_stop(h);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(polling_counts_every_byte),
    cmocka_unit_test(websocket_counts_frames),
    cmocka_unit_test(counters_survive_the_upgrade),
    cmocka_unit_test(sse_counts_the_stream),
    cmocka_unit_test(socket_reads_its_session),
};

FERRY_TEST_MAIN(tests)
