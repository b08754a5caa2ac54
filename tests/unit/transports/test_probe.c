/* Probe transports (a WebSocket or an SSE stream probed from a long-polling session) under the
 * one lifetime rule (common/life.h): the session, or the whole server, is closed from inside
 * the message callback while the probe is open (after "3probe", before "5"), and after the
 * upgrade completed, from a message on the new transport. The probe transport is not the
 * session's: it reports its own close, and both it and the session must be freed exactly once,
 * with every client seeing the end. */
#pragma GCC diagnostic ignored "-Wunused-function" /* the shared scenarios not run here */
#include "tr_util.h"

/* A long-polling session (ferry=1 for an SSE probe); its sid into k->sid. */
static void poll_open(h_server *h, tr_client *k, int ext)
{
    h_response r;
    assert_int_equal(tr_http(h, "GET", ext ? "transport=polling&ferry=1" : "transport=polling",
                             NULL, NULL, &r, NULL),
                     200);
    tr_sid_of(r.body, k->sid, sizeof(k->sid));
    assert_true(k->sid[0] != '\0');
}

static int poll_post(h_server *h, const char *sid, const char *body)
{
    char q[128];
    snprintf(q, sizeof(q), "transport=polling&sid=%s", sid);
    h_response r;
    return tr_http(h, "POST", q, body, NULL, &r, NULL);
}

/* The probe: a WebSocket or an SSE stream for the session, up to "3probe". */
static tr_client *probe(h_server *h, const tr_driver *d, const char *sid)
{
    tr_client *k = tr_client_new(h, d);
    snprintf(k->sid, sizeof(k->sid), "%s", sid);
    char q[128], p[512];
    snprintf(q, sizeof(q), "transport=%s&sid=%s", d->name, sid);
    k->c = hc_connect(h);
    if (d == &tr_websocket) {
        assert_int_equal(ws_upgrade(k->c, q, NULL, NULL), 101);
        tr_send1(k, "2probe");
    } else {
        assert_int_equal(sse_stream(k->c, q, NULL, NULL), 200);
        char pq[128];
        snprintf(pq, sizeof(pq), "transport=sse&sid=%s", sid);
        h_response r;
        assert_int_equal(tr_http(h, "POST", pq, "2probe", NULL, &r, NULL), 200);
    }
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "3probe");
    return k;
}

static void complete_upgrade(h_server *h, const tr_driver *d, tr_client *k, const char *sid)
{
    if (d == &tr_websocket) {
        tr_send1(k, "5");
        return;
    }
    char pq[128];
    snprintf(pq, sizeof(pq), "transport=sse&sid=%s", sid);
    h_response r;
    assert_int_equal(tr_http(h, "POST", pq, "5", NULL, &r, NULL), 200);
}

static void close_while_probing(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    tr_client poll = {0};
    poll_open(h, &poll, d == &tr_sse);
    tr_client *k = probe(h, d, poll.sid);
    W.in_message = a;
    int st = poll_post(h, poll.sid, "4x");
    assert_true(st == 200 || (st == 0 && a == ACT_CLOSE_SERVER));
    assert_true(h_run_until(h, h_cond_flag, &W.acted, TR_WAIT));
    assert_int_equal(W.send_rc, -FERRY_ECLOSED);
    if (a == ACT_CLOSE_SESSION) {
        /* Graceful: the close packet waits in the queue (polling answers "6" while the probe
         * is on); the client completes the upgrade and gets it on the new transport. */
        complete_upgrade(h, d, k, poll.sid);
    }
    /* The probe sees its end: the close packet, a close frame or the stream closing. */
    assert_true(tr_until_end(k, NULL));
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, a == ACT_CLOSE_SESSION ? FERRY_REASON_FORCED_CLOSE
                                                      : FERRY_REASON_SERVER_SHUTTING_DOWN);
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
    assert_int_equal(W.messages, 1);
}

static void close_after_upgrade(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    tr_client poll = {0};
    poll_open(h, &poll, d == &tr_sse);
    /* The transport history: the open alone (kept inline), then the upgrade too (the ring
     * allocated at the second event), oldest first. */
    ferry_transport_event ev[8];
    assert_int_equal(ferry_session_transport_history(W.s, ev, 8), 1);
    assert_string_equal(ev[0].kind, "open");
    assert_string_equal(ev[0].to, "polling");
    tr_client *k = probe(h, d, poll.sid);
    complete_upgrade(h, d, k, poll.sid);
    /* Upgraded: a message on the new transport is echoed there. */
    char p[512];
    tr_send1(k, "4up");
    assert_true(d->recv(k, p, sizeof(p)));
    assert_string_equal(p, "4up");
    assert_string_equal(ferry_session_transport(W.s), d->name);
    assert_int_equal(ferry_session_transport_history(W.s, ev, 8), 2);
    assert_string_equal(ev[0].kind, "open");
    assert_string_equal(ev[1].kind, "upgrade");
    assert_string_equal(ev[1].from, "polling");
    assert_string_equal(ev[1].to, d->name);
    assert_int_equal(ferry_session_transport_history(W.s, ev, 1), 1);
    W.in_message = a;
    tr_send1(k, "4x");
    assert_true(h_run_until(h, h_cond_flag, &W.acted, TR_WAIT));
    assert_true(tr_until_end(k, NULL));
    assert_true(tr_wait_closes(1));
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.closes, 1);
    assert_int_equal(W.messages, 2);
}

static void close_while_probing_websocket(void **state)
{
    (void)state;
    close_while_probing(&tr_websocket, ACT_CLOSE_SESSION);
    close_while_probing(&tr_websocket, ACT_CLOSE_SERVER);
}

static void close_while_probing_sse(void **state)
{
    (void)state;
    close_while_probing(&tr_sse, ACT_CLOSE_SESSION);
    close_while_probing(&tr_sse, ACT_CLOSE_SERVER);
}

static void close_after_upgrade_websocket(void **state)
{
    (void)state;
    close_after_upgrade(&tr_websocket, ACT_CLOSE_SESSION);
    close_after_upgrade(&tr_websocket, ACT_CLOSE_SERVER);
}

static void close_after_upgrade_sse(void **state)
{
    (void)state;
    close_after_upgrade(&tr_sse, ACT_CLOSE_SESSION);
    close_after_upgrade(&tr_sse, ACT_CLOSE_SERVER);
}

/* Handshake on long-polling, probe d, upgrade, a message and its echo on the new transport,
 * then "bye", which the message callback answers by closing the session: 1 when all of it
 * went through. Under allocation failure any step may end cleanly instead (an error status,
 * the probe refused or closed, the session closed). */
static int probe_cycle(h_server *h, const tr_driver *d)
{
    h_response r;
    char sid[64], q[128], pq[128], p[512];
    int st = tr_http(h, "GET", "transport=polling&ferry=1", NULL, NULL, &r, NULL);
    assert_true(st == 200 || st == 0 || st == 503);
    if (st != 200 || strncmp(r.body, "0{", 2) != 0)
        return 0;
    tr_sid_of(r.body, sid, sizeof(sid));
    tr_client *k = tr_client_new(h, d);
    snprintf(k->sid, sizeof(k->sid), "%s", sid);
    snprintf(q, sizeof(q), "transport=%s&sid=%s", d->name, sid);
    snprintf(pq, sizeof(pq), "transport=sse&sid=%s", sid);
    int ok = 0;
    k->c = hc_connect(h);
    if (d == &tr_websocket) {
        st = ws_upgrade(k->c, q, NULL, NULL);
        assert_true(st == 101 || st == 0 || st == 400 || st == 503);
        if (st != 101)
            goto done;
        tr_send1(k, "2probe");
    } else {
        st = sse_stream(k->c, q, NULL, NULL);
        assert_true(st == 200 || st == 0 || st == 400 || st == 503);
        if (st != 200)
            goto done;
        tr_send1(k, "2probe");
        if (k->ended)
            goto done;
    }
    if (!d->recv(k, p, sizeof(p)) || strcmp(p, "3probe") != 0)
        goto done; /* the probe failed: the session stays on polling */
    if (d == &tr_websocket) {
        tr_send1(k, "5");
    } else {
        st = tr_http(h, "POST", pq, "5", NULL, &r, NULL);
        if (st != 200)
            goto done;
    }
    tr_send1(k, "4hello");
    if (k->ended || !d->recv(k, p, sizeof(p)) || strcmp(p, "1") == 0)
        goto done;
    assert_string_equal(p, "4hello");
    tr_send1(k, "4bye");
    if (k->ended)
        goto done;
    assert_true(tr_until_end(k, NULL));
    ok = 1;
done:
    tr_client_free(k);
    return ok;
}

static void nomem_probe_websocket(void **state)
{
    (void)state;
    tr_nomem_with(&tr_websocket, probe_cycle);
}

static void nomem_probe_sse(void **state)
{
    (void)state;
    tr_nomem_with(&tr_sse, probe_cycle);
}

/* One case per line: CMake registers each line's case with ctest. */
/* clang-format off */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test(close_while_probing_websocket),
    cmocka_unit_test(close_while_probing_sse),
    cmocka_unit_test(close_after_upgrade_websocket),
    cmocka_unit_test(close_after_upgrade_sse),
    cmocka_unit_test(nomem_probe_websocket),
    cmocka_unit_test(nomem_probe_sse),
};
/* clang-format on */

FERRY_TEST_MAIN(tests)
