/* The transport registry (transports/registry.c) as an application and tools/ferry see it:
 * names to bits and back, iteration, and the server refusing bits no transport has. */
#include "ferry_test.h"

#include <uv.h>

#include "engine/transport.h"
#include "ferry.h"

static void unknown_names_have_no_bit(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Polling",
        "POLLING",
        "poll",
        "polling ",
        " polling",
        "web-socket",
        "websocket,sse",
        "short_polling",
        "shortpolling",
        "carrier-pigeon",
        "sse\n",
    };
    assert_int_equal(ferry_transport_bit(NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ferry_transport_bit(bad[i]), 0);
    assert_null(ferry_transport_find(NULL));
    assert_null(ferry_transport_find("carrier-pigeon"));
}

static void bits_that_are_not_one_transport_have_no_name(void **state)
{
    (void)state;
    assert_null(ferry_transport_name(0));
    assert_null(ferry_transport_name(FERRY_TRANSPORT_POLLING | FERRY_TRANSPORT_WEBSOCKET));
    assert_null(ferry_transport_name(ferry_transport_all()));
    assert_null(ferry_transport_name(~0u));
    for (unsigned k = 0; k < 32; k++) {
        unsigned bit = 1u << k;
        if (!(ferry_transport_all() & bit))
            assert_null(ferry_transport_name(bit));
    }
    assert_int_equal(ferry_transport_ops_bit(NULL), 0);
}

/* Every registered transport: one bit of its own, and name -> bit -> name back again, through
 * the public functions and the engine's table alike. */
static void every_registered_name_round_trips(void **state)
{
    (void)state;
    unsigned seen = 0, bit = 0;
    const char *name;
    size_t n = 0;
    for (size_t i = 0; (name = ferry_transport_at(i, &bit)) != NULL; i++, n++) {
        assert_int_not_equal(bit, 0);
        assert_int_equal(bit & (bit - 1), 0); /* exactly one bit */
        assert_int_equal(seen & bit, 0);      /* no other transport has it */
        assert_true(bit > seen);              /* in the order of the bits */
        seen |= bit;
        assert_int_equal(ferry_transport_bit(name), bit);
        assert_string_equal(ferry_transport_name(bit), name);
        const ferry_transport_ops *ops = ferry_transport_find(name);
        assert_non_null(ops);
        assert_string_equal(ops->name, name);
        assert_int_equal(ferry_transport_ops_bit(ops), bit);
    }
    assert_int_equal(seen, ferry_transport_all());
    assert_true(n >= 4);
    /* Past the last: NULL, and the bit cleared. */
    bit = 123;
    assert_null(ferry_transport_at(n, &bit));
    assert_int_equal(bit, 0);
    assert_null(ferry_transport_at(n + 100, NULL));
    /* The engine's table (order of preference) holds the same transports. */
    size_t m = 0;
    unsigned from_table = 0;
    for (; ferry_transports[m] != NULL; m++)
        from_table |= ferry_transport_ops_bit(ferry_transports[m]);
    assert_int_equal(m, n);
    assert_int_equal(from_table, ferry_transport_all());
}

/* The constants programs have compiled in keep their values, and name the same transports. */
static void public_constants_match_the_registry(void **state)
{
    (void)state;
    assert_int_equal(ferry_transport_bit("polling"), FERRY_TRANSPORT_POLLING);
    assert_int_equal(ferry_transport_bit("websocket"), FERRY_TRANSPORT_WEBSOCKET);
    assert_int_equal(ferry_transport_bit("sse"), FERRY_TRANSPORT_SSE);
    assert_int_equal(ferry_transport_bit("short-polling"), FERRY_TRANSPORT_SHORT_POLLING);
    assert_int_equal(FERRY_TRANSPORT_POLLING, 1);
    assert_int_equal(FERRY_TRANSPORT_WEBSOCKET, 2);
    assert_int_equal(FERRY_TRANSPORT_SSE, 4);
    assert_int_equal(FERRY_TRANSPORT_SHORT_POLLING, 8);
    assert_int_equal(ferry_transport_all() & FERRY_TRANSPORT_ALL, FERRY_TRANSPORT_ALL);
}

/* ferry_server_new() takes any set of registered bits and refuses the rest. */
static void server_takes_registered_bits_only(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    ferry_server *srv = NULL;
    unsigned unknown = ~ferry_transport_all();
    cfg.transports = FERRY_TRANSPORT_POLLING | (unknown & (0u - unknown)); /* lowest free bit */
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    cfg.transports = 0;
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    assert_null(srv);
    cfg.transports = ferry_transport_all();
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), 0);
    assert_int_equal(ferry_server_close(srv, NULL, NULL), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(unknown_names_have_no_bit),
    cmocka_unit_test(bits_that_are_not_one_transport_have_no_name),
    cmocka_unit_test(every_registered_name_round_trips),
    cmocka_unit_test(public_constants_match_the_registry),
    cmocka_unit_test(server_takes_registered_bits_only),
};

FERRY_TEST_MAIN(tests)
