/* The engine session under the one lifetime rule (common/life.h). The session callbacks (open,
 * message, close) are closed from inside on every transport by tests/unit/transports; here the
 * one callback left, the transport report of ferry's extensions (docs/protocol.md section 9),
 * closes the session or the whole server from inside, on the two extension transports, with a
 * message behind the report in the same payload that must not be delivered. */
/* The transports' shared harness; its scenarios that this file does not run are unused here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "transports/tr_util.h"

static int reports;

static void on_report(ferry_session *s, const char *from, const char *to, const char *reason,
                      int64_t ms, void *ud)
{
    (void)from, (void)to, (void)reason, (void)ms, (void)ud;
    reports++;
    tr_act_on(s, W.in_message);
    W.in_message = ACT_NONE; /* the action was for the report, not for messages */
}

static void close_in_report(const tr_driver *d, tr_act a)
{
    h_server *h = tr_start(NULL);
    reports = 0;
    ferry_server_on_transport_report(h->srv, on_report, NULL);
    tr_client *k = tr_client_new(h, d);
    assert_int_equal(d->open(k), 1);
    W.in_message = a;
    const char *pkts[] = {"6{\"from\":\"\",\"to\":\"sse\",\"reason\":\"first\"}", "4after"};
    d->send(k, pkts, 2);
    assert_true(h_run_until(h, h_cond_flag, &W.acted, TR_WAIT));
    assert_int_equal(reports, 1);
    assert_int_equal(W.send_rc, -FERRY_ECLOSED);
    assert_true(tr_until_end(k, NULL));
    assert_true(tr_wait_closes(1));
    assert_int_equal(W.reason, a == ACT_CLOSE_SESSION ? FERRY_REASON_FORCED_CLOSE
                                                      : FERRY_REASON_SERVER_SHUTTING_DOWN);
    tr_client_free(k);
    tr_stop(h);
    assert_int_equal(W.messages, 0); /* "4after" came after the close */
    assert_int_equal(W.closes, 1);
}

static void close_in_report_sse(void **state)
{
    (void)state;
    close_in_report(&tr_sse, ACT_CLOSE_SESSION);
    close_in_report(&tr_sse, ACT_CLOSE_SERVER);
}

static void close_in_report_short_polling(void **state)
{
    (void)state;
    close_in_report(&tr_short_polling, ACT_CLOSE_SESSION);
    close_in_report(&tr_short_polling, ACT_CLOSE_SERVER);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(close_in_report_sse),
    cmocka_unit_test(close_in_report_short_polling),
};

FERRY_TEST_MAIN(tests)
