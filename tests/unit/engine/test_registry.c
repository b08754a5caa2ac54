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

/* ------------------------------------------------------------------ transport options */

typedef struct server {
    uv_loop_t loop;
    ferry_server *srv;
} server;

static int server_new(server *s, const ferry_server_config *cfg)
{
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->srv = NULL;
    int rc = ferry_server_new(&s->loop, cfg, &s->srv);
    if (rc != 0)
        assert_int_equal(uv_loop_close(&s->loop), 0);
    return rc;
}

static void server_free(server *s)
{
    assert_int_equal(ferry_server_close(s->srv, NULL, NULL), 0);
    assert_int_equal(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&s->loop), 0);
}

static uint64_t get(const server *s, const char *transport, const char *option)
{
    uint64_t v = 12345;
    assert_int_equal(ferry_server_transport_option_get(s->srv, transport, option, &v), 0);
    return v;
}

/* A default server has the documented defaults, which are also the values that
 * ferry_server_config_init() puts in the fields the options replace. */
static void options_start_from_the_defaults(void **state)
{
    (void)state;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    server s;
    assert_int_equal(server_new(&s, NULL), 0);
    assert_int_equal(get(&s, "sse", "keepalive_ms"), 15000);
    assert_int_equal(get(&s, "sse", "padding_bytes"), 0);
    assert_int_equal(get(&s, "sse", "recycle_bytes"), 4u * 1024 * 1024);
    assert_int_equal(get(&s, "websocket", "per_message_deflate"), 0);
    assert_int_equal(get(&s, "websocket", "deflate_threshold"), 1024);
    assert_int_equal(get(&s, "sse", "keepalive_ms"), cfg.sse_keepalive_ms);
    assert_int_equal(get(&s, "sse", "padding_bytes"), cfg.sse_padding_bytes);
    assert_int_equal(get(&s, "sse", "recycle_bytes"), cfg.sse_recycle_bytes);
    assert_int_equal(get(&s, "websocket", "per_message_deflate"), cfg.ws_per_message_deflate);
    assert_int_equal(get(&s, "websocket", "deflate_threshold"), cfg.ws_deflate_threshold);
    server_free(&s);
}

/* Programs that fill the old config fields keep working: the fields are the first values. */
static void old_config_fields_still_set_them(void **state)
{
    (void)state;
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.sse_keepalive_ms = 777;
    cfg.sse_padding_bytes = 2048;
    cfg.sse_recycle_bytes = 0;
    cfg.ws_per_message_deflate = 5; /* any non-zero int was "on" */
    cfg.ws_deflate_threshold = 3;
    server s;
    assert_int_equal(server_new(&s, &cfg), 0);
    assert_int_equal(get(&s, "sse", "keepalive_ms"), 777);
    assert_int_equal(get(&s, "sse", "padding_bytes"), 2048);
    assert_int_equal(get(&s, "sse", "recycle_bytes"), 0);
    assert_int_equal(get(&s, "websocket", "per_message_deflate"), 1);
    assert_int_equal(get(&s, "websocket", "deflate_threshold"), 3);
    /* An option call after ferry_server_new() wins over the field. */
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "keepalive_ms", 5), 0);
    assert_int_equal(get(&s, "sse", "keepalive_ms"), 5);
    server_free(&s);
    /* A field outside its option's range: the server is refused. */
    cfg.sse_padding_bytes = 65537;
    assert_int_equal(server_new(&s, &cfg), -FERRY_EINVAL);
    assert_null(s.srv);
}

static void option_errors(void **state)
{
    (void)state;
    server s;
    assert_int_equal(server_new(&s, NULL), 0);
    uint64_t v;
    /* Names: no such transport, no such option, a transport without options, NULLs. */
    assert_int_equal(ferry_server_transport_option(s.srv, "carrier-pigeon", "keepalive_ms", 1),
                     -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "keepalive", 1), -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "deflate_threshold", 1),
                     -FERRY_ENOTFOUND); /* another transport's option */
    assert_int_equal(ferry_server_transport_option(s.srv, "polling", "keepalive_ms", 1),
                     -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option(s.srv, NULL, "keepalive_ms", 1),
                     -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", NULL, 1), -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option(s.srv, "SSE", "keepalive_ms", 1),
                     -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option_get(s.srv, "sse", "nope", &v), -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option_get(s.srv, "nope", "keepalive_ms", &v),
                     -FERRY_ENOTFOUND);
    assert_int_equal(ferry_server_transport_option_get(s.srv, "sse", "keepalive_ms", NULL),
                     -FERRY_EINVAL);
    assert_int_equal(ferry_server_transport_option(NULL, "sse", "keepalive_ms", 1), -FERRY_EINVAL);
    /* Out of range: refused, the old value kept. */
    assert_int_equal(ferry_server_transport_option(s.srv, "websocket", "per_message_deflate", 2),
                     -FERRY_EINVAL);
    assert_int_equal(get(&s, "websocket", "per_message_deflate"), 0);
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "padding_bytes", 65537),
                     -FERRY_EINVAL);
    assert_int_equal(
        ferry_server_transport_option(s.srv, "sse", "keepalive_ms", (uint64_t)UINT32_MAX + 1),
        -FERRY_EINVAL);
    assert_int_equal(get(&s, "sse", "padding_bytes"), 0);
    assert_int_equal(get(&s, "sse", "keepalive_ms"), 15000);
    /* The bounds themselves are taken. */
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "padding_bytes", 65536), 0);
    assert_int_equal(ferry_server_transport_option(s.srv, "websocket", "per_message_deflate", 1),
                     0);
    assert_int_equal(get(&s, "sse", "padding_bytes"), 65536);
    assert_int_equal(get(&s, "websocket", "per_message_deflate"), 1);
    /* Once the server listens, settings are fixed. */
    assert_int_equal(ferry_server_listen(s.srv, "127.0.0.1", 0), 0);
    assert_int_equal(ferry_server_transport_option(s.srv, "sse", "padding_bytes", 10),
                     -FERRY_EBUSY);
    assert_int_equal(get(&s, "sse", "padding_bytes"), 65536);
    server_free(&s);
}

/* Every option of every transport can be listed, read and set to what it holds; the table of
 * a server has room for all of them. */
static void every_option_is_listed_and_settable(void **state)
{
    (void)state;
    server s;
    assert_int_equal(server_new(&s, NULL), 0);
    const char *name, *opt;
    size_t total = 0;
    for (size_t i = 0; (name = ferry_transport_at(i, NULL)) != NULL; i++) {
        size_t k = 0;
        for (; (opt = ferry_transport_option_at(name, k)) != NULL; k++, total++) {
            for (size_t j = 0; j < k; j++) /* names unique within the transport */
                assert_string_not_equal(ferry_transport_option_at(name, j), opt);
            uint64_t v = get(&s, name, opt);
            assert_int_equal(ferry_server_transport_option(s.srv, name, opt, v), 0);
        }
        assert_null(ferry_transport_option_at(name, k + 1));
    }
    assert_int_equal(total, ferry_transport_option_count());
    assert_true(total >= 5);
    assert_true(total <= FERRY_TRANSPORT_OPTIONS_MAX);
    assert_null(ferry_transport_option_at("carrier-pigeon", 0));
    assert_null(ferry_transport_option_at(NULL, 0));
    assert_null(ferry_transport_option_at("polling", 0));
    server_free(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(options_start_from_the_defaults),
    cmocka_unit_test(old_config_fields_still_set_them),
    cmocka_unit_test(option_errors),
    cmocka_unit_test(every_option_is_listed_and_settable),
    cmocka_unit_test(unknown_names_have_no_bit),
    cmocka_unit_test(bits_that_are_not_one_transport_have_no_name),
    cmocka_unit_test(every_registered_name_round_trips),
    cmocka_unit_test(public_constants_match_the_registry),
    cmocka_unit_test(server_takes_registered_bits_only),
};

FERRY_TEST_MAIN(tests)
