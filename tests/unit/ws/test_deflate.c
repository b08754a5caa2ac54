/* permessage-deflate (lib/ws/deflate.c): every kind of client offer gets a valid answer or is
 * declined, compressed messages round-trip, and the inflated size is bounded. */
#include "ws_test_util.h"

#include "ws/deflate.h"

static int nego(const char *offer, char *answer, ws_deflate_params *p)
{
    answer[0] = '\0';
    return ws_deflate_negotiate(offer, p, answer, 160);
}

static void offers(void **state)
{
    char a[160];
    ws_deflate_params p;
    assert_int_equal(nego("permessage-deflate", a, &p), 1);
    assert_string_equal(a, "permessage-deflate");
    assert_int_equal(p.server_max_window_bits, 15);
    /* The browsers' offer: client_max_window_bits without a value may be left out. */
    assert_int_equal(nego("permessage-deflate; client_max_window_bits", a, &p), 1);
    assert_string_equal(a, "permessage-deflate");
    assert_int_equal(nego("permessage-deflate; client_no_context_takeover; "
                          "server_no_context_takeover",
                          a, &p),
                     1);
    assert_string_equal(a, "permessage-deflate; server_no_context_takeover; "
                           "client_no_context_takeover");
    assert_int_equal(p.server_no_context_takeover, 1);
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=9; "
                          "client_max_window_bits=10",
                          a, &p),
                     1);
    assert_string_equal(a, "permessage-deflate; server_max_window_bits=9; "
                           "client_max_window_bits=10");
    assert_int_equal(p.server_max_window_bits, 9);
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=\"12\"", a, &p), 1);
    assert_string_equal(a, "permessage-deflate; server_max_window_bits=12");
}

static void declined_offers(void **state)
{
    char a[160];
    ws_deflate_params p;
    static const char *const bad[] = {
        "permessage-deflate; server_max_window_bits=8", /* zlib cannot do 8 */
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_param",
        "x-webkit-deflate-frame",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (nego(bad[i], a, &p) != 0)
            fail_msg("accepted \"%s\" as \"%s\"", bad[i], a);
}

static void several_offers_first_acceptable_wins(void **state)
{
    char a[160];
    ws_deflate_params p;
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=8, "
                          "permessage-deflate; server_max_window_bits=10; "
                          "client_no_context_takeover, permessage-deflate",
                          a, &p),
                     1);
    assert_string_equal(a, "permessage-deflate; client_no_context_takeover; "
                           "server_max_window_bits=10");
}

static void round_trip_and_bound(void **state)
{
    for (int no_ctx = 0; no_ctx <= 1; no_ctx++) {
        ws_deflate_params p = {no_ctx, no_ctx, 9, 15};
        ws_deflate *d = ws_deflate_new(&p);
        assert_non_null(d);
        char msg[4000];
        for (size_t i = 0; i < sizeof(msg); i++)
            msg[i] = "abcdefgh"[i % 8];
        for (int round = 0; round < 3; round++) {
            ferry_buf *c = ws_deflate_compress(d, msg, sizeof(msg));
            assert_non_null(c);
            assert_true(c->len < 200);
            /* Our own output inflates back (the deflater and inflater share no state). */
            ferry_vec out = {0};
            for (size_t i = 0; i < c->len; i++)
                assert_int_equal(ws_deflate_inflate(d, c->data + i, 1, 0, &out, 4000), 0);
            assert_int_equal(ws_deflate_inflate(d, NULL, 0, 1, &out, 4000), 0);
            assert_int_equal(out.len, sizeof(msg));
            assert_memory_equal(out.base, msg, sizeof(msg));
            ferry_vec_free(&out);
            /* One byte less room: too big. */
            if (round == 2) {
                ws_deflate *d2 = ws_deflate_new(&p);
                ferry_buf *c2 = ws_deflate_compress(d2, msg, sizeof(msg));
                ferry_vec o2 = {0};
                assert_int_equal(ws_deflate_inflate(d2, c2->data, c2->len, 1, &o2, 3999),
                                 -FERRY_ETOOBIG);
                ferry_vec_free(&o2);
                ferry_buf_release(c2);
                ws_deflate_free(d2);
            }
            ferry_buf_release(c);
        }
        ws_deflate_free(d);
    }
}

/* Empty messages one after another (Autobahn 9.7.1 with deflate): each must inflate to
 * nothing, also when zlib has nothing new to flush. */
static void empty_messages(void **state)
{
    ws_deflate_params p = {0, 0, 15, 0};
    ws_deflate *server = ws_deflate_new(&p), *client = ws_deflate_new(&p);
    for (int i = 0; i < 3; i++) {
        ferry_buf *c = ws_deflate_compress(server, "", 0);
        assert_true(c->len >= 1);
        ferry_vec out = {0};
        assert_int_equal(ws_deflate_inflate(client, c->data, c->len, 1, &out, 100), 0);
        assert_int_equal(out.len, 0);
        ferry_vec_free(&out);
        ferry_buf_release(c);
    }
    ws_deflate_free(server);
    ws_deflate_free(client);
}

static void compressed_message_through_stream(void **state)
{
    ws_deflate_params p = {0, 0, 15, 0};
    ws_deflate *client = ws_deflate_new(&p);
    ferry_buf *c = ws_deflate_compress(client, "Hello", 5);
    uint8_t in[64];
    size_t len = client_frame(in, 0, 1, 4, WS_OP_TEXT, c->data, c->len);
    rec r;
    rec_init(&r, 100, 10);
    ws_stream_set_deflate(&r.s, ws_deflate_new(&p), 0);
    ws_stream_feed(&r.s, (char *)in, len);
    assert_string_equal(r.log, "T:Hello|");
    /* A decompression bomb bounded by max_message: 1009. */
    char zeros[5000] = {0};
    ferry_buf *bomb = ws_deflate_compress(client, zeros, sizeof(zeros));
    uint8_t in2[200];
    len = client_frame(in2, 0, 1, 4, WS_OP_BINARY, bomb->data, bomb->len);
    assert_true(len < sizeof(in2));
    ws_stream_feed(&r.s, (char *)in2, len);
    assert_string_equal(r.log, "T:Hello|E:1009|");
    ferry_buf_release(bomb);
    ferry_buf_release(c);
    ws_deflate_free(client);
    ws_stream_free(&r.s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(offers),
    cmocka_unit_test(declined_offers),
    cmocka_unit_test(several_offers_first_acceptable_wins),
    cmocka_unit_test(round_trip_and_bound),
    cmocka_unit_test(empty_messages),
    cmocka_unit_test(compressed_message_through_stream),
};

FERRY_TEST_MAIN(tests)
