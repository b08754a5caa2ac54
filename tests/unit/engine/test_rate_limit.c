/* The per-address new-session limit (lib/engine/rate_limit.c) on the loop, with a raw client:
 * the bucket (burst, then 429 with its fixed body and Retry-After, refill), requests of a live
 * session never counted, X-Forwarded-For only when trusted (its last entry, IPv6 by /64), the
 * table bounded by new_session_addresses (the least recently seen forgotten) and refilled
 * entries dropped, the limit off by default, and the configuration checked. */
#include "loop_harness.h"

#include "engine/internal.h"
#include "server/server.h"

#define HS "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
#define REFUSED "{\"code\":4,\"message\":\"Too many new sessions\"}"

static h_server *start(uint32_t rate, uint32_t burst, uint32_t addresses, int trust)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    cfg.new_session_rate = rate;
    cfg.new_session_burst = burst;
    if (addresses)
        cfg.new_session_addresses = addresses;
    cfg.trust_forwarded_for = trust;
    return h_start(&cfg);
}

/* A handshake with X-Forwarded-For xff (NULL: none): the status. */
static int hs_from(h_server *h, const char *xff, h_response *r)
{
    char req[256];
    if (xff == NULL)
        snprintf(req, sizeof(req), "%s", HS);
    else
        snprintf(req, sizeof(req),
                 "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                 "X-Forwarded-For: %s\r\n\r\n", xff);
    return h_request(h, req, r);
}

static size_t tracked(h_server *h)
{
    return ferry_rate_limit_count(h->srv->engine);
}

static void off_by_default(void **state)
{
    (void)state;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    assert_int_equal(cfg.new_session_rate, 0);
    assert_int_equal(cfg.new_session_addresses, 10000);
    assert_int_equal(cfg.trust_forwarded_for, 0);
    h_server *h = start(0, 0, 0, 0);
    h_response r;
    for (int i = 0; i < 50; i++)
        assert_int_equal(hs_from(h, NULL, &r), 200);
    assert_int_equal(tracked(h), 0);
    h_stop(h);
}

static void burst_then_429_then_refill(void **state)
{
    (void)state;
    h_server *h = start(1, 3, 0, 0);
    h_response r;
    uint64_t t0 = h_now(h);
    int ok = 0, refused = 0;
    char sid[FERRY_SID_LEN + 1] = "";
    for (int i = 0; i < 10; i++) {
        int st = hs_from(h, NULL, &r);
        if (st == 200) {
            ok++;
            memcpy(sid, r.body + 9, FERRY_SID_LEN);
            sid[FERRY_SID_LEN] = '\0';
        } else {
            assert_int_equal(st, 429);
            assert_string_equal(r.body, REFUSED);
            assert_non_null(strcasestr(r.head, "Content-Type: application/json\r\n"));
            assert_non_null(strcasestr(r.head, "\r\nRetry-After: 1"));
            refused++;
        }
    }
    uint64_t took = h_now(h) - t0;
    assert_true(ok >= 3 && ok <= 3 + (int)(took / 1000) + 1);
    assert_int_equal(ok + refused, 10);
    assert_int_equal(tracked(h), 1);
    assert_int_equal(ferry_engine_get_stats(h->srv->engine)->rate_limited, (uint64_t)refused);
    /* The live session's requests are not handshakes: never counted, never refused. */
    char req[256];
    snprintf(req, sizeof(req),
             "POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 6\r\n\r\n4hello", sid);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_request(h, req, &r), 200);
    /* X-Forwarded-For is not trusted: still the same bucket. */
    assert_int_equal(hs_from(h, "203.0.113.5", &r), 429);
    /* A token comes back within a second. */
    int back = 0;
    uint64_t t1 = h_now(h);
    while (!back && h_now(h) - t1 < 3000) {
        int zero = 0;
        h_run_until(h, h_cond_flag, &zero, 100);
        back = hs_from(h, NULL, &r) == 200;
    }
    assert_true(back);
    h_stop(h);
}

static void forwarded_for_when_trusted(void **state)
{
    (void)state;
    h_server *h = start(1, 1, 0, 1);
    h_response r;
    assert_int_equal(hs_from(h, "198.51.100.1, 203.0.113.1", &r), 200);
    assert_int_equal(hs_from(h, "10.0.0.1,203.0.113.1", &r), 429);   /* the last entry counts */
    assert_int_equal(hs_from(h, "203.0.113.1 , 203.0.113.2", &r), 200);
    assert_int_equal(hs_from(h, "[2001:db8::1]", &r), 200);
    assert_int_equal(hs_from(h, "2001:db8::ffff:1", &r), 429);       /* the same /64 */
    assert_int_equal(hs_from(h, "2001:db8:0:1::1", &r), 200);        /* another /64 */
    assert_int_equal(hs_from(h, "::ffff:203.0.113.1", &r), 429);     /* IPv4-mapped: the IPv4 */
    assert_int_equal(hs_from(h, "garbage", &r), 200);                /* the peer's */
    assert_int_equal(hs_from(h, NULL, &r), 429);                     /* the peer's, again */
    assert_int_equal(tracked(h), 5);
    h_stop(h);
}

static void table_bounded(void **state)
{
    (void)state;
    /* 1 a second, bucket of 1: entries live a second after their last handshake. */
    h_server *h = start(1, 1, 4, 1);
    h_response r;
    char a[32];
    for (int i = 1; i <= 8; i++) {
        snprintf(a, sizeof(a), "10.0.0.%d", i);
        assert_int_equal(hs_from(h, a, &r), 200);
        assert_true(tracked(h) <= 4);
    }
    assert_int_equal(tracked(h), 4);
    /* 10.0.0.1 was forgotten (the least recent): a full bucket again. 10.0.0.8 was not. */
    assert_int_equal(hs_from(h, "10.0.0.1", &r), 200);
    assert_int_equal(hs_from(h, "10.0.0.8", &r), 429);
    h_stop(h);
    /* Refilled entries are dropped: at 1000/s a bucket of 1 is full again within 1 ms. */
    h = start(1000, 1, 0, 1);
    for (int i = 1; i <= 20; i++) {
        snprintf(a, sizeof(a), "10.0.1.%d", i);
        assert_int_equal(hs_from(h, a, &r), 200);
    }
    int zero = 0;
    h_run_until(h, h_cond_flag, &zero, 20);
    assert_int_equal(hs_from(h, "10.0.2.1", &r), 200);
    assert_int_equal(tracked(h), 1);
    h_stop(h);
}

static void config_checked(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ferry_server_config cfg;
    ferry_server *srv = NULL;
    ferry_server_config_init(&cfg);
    cfg.new_session_rate = 1000001;
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    ferry_server_config_init(&cfg);
    cfg.new_session_rate = 5;
    cfg.new_session_addresses = 0;
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    cfg.new_session_addresses = (1u << 24) + 1;
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(off_by_default),
    cmocka_unit_test(burst_then_429_then_refill),
    cmocka_unit_test(forwarded_for_when_trusted),
    cmocka_unit_test(table_bounded),
    cmocka_unit_test(config_checked),
};

FERRY_TEST_MAIN(tests)
