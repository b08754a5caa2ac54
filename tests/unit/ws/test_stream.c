/* The message layer (lib/ws/stream.c): reassembly with control frames in between, UTF-8
 * failing at the first bad byte even inside an unfinished frame, ping/pong, the closing
 * handshake and its code checks, and the close codes 1002/1007/1009. Every script is fed
 * whole, at every split point and byte by byte, and must give the same events. */
#include "ws_test_util.h"

#include <stdlib.h>

static rec *run(const uint8_t *in, size_t len, size_t split, size_t max)
{
    rec *r = malloc(sizeof(*r));
    rec_init(r, max, 1000);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    if (split == (size_t)-1) {
        for (size_t i = 0; i < len; i++)
            ws_stream_feed(&r->s, copy + i, 1);
    } else {
        ws_stream_feed(&r->s, copy, split);
        ws_stream_feed(&r->s, copy + split, len - split);
    }
    free(copy);
    return r;
}

static void rec_free(rec *r)
{
    ws_stream_free(&r->s);
    free(r);
}

/* Feed at every split and byte by byte; each run must log exactly want and write exactly
 * out/outlen (when out is not NULL). */
static void check_all_splits(const uint8_t *in, size_t len, const char *want, const void *out,
                             size_t outlen)
{
    for (size_t split = 0; split <= len + 1; split++) {
        rec *r = run(in, len, split <= len ? split : (size_t)-1, 1 << 20);
        if (strcmp(r->log, want) != 0)
            fail_msg("split %zu: got \"%s\", want \"%s\"", split, r->log, want);
        if (out != NULL) {
            assert_int_equal(r->outlen, outlen);
            assert_memory_equal(r->out, out, outlen);
        }
        rec_free(r);
    }
}

static void text_and_binary(void **state)
{
    uint8_t in[64];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, "h\xc3\xa9llo", 6);
    len = client_frame(in, len, 1, 0, WS_OP_BINARY, "\x00\x01\x02", 3);
    len = client_frame(in, len, 1, 0, WS_OP_TEXT, "", 0);
    check_all_splits(in, len, "T:h\xc3\xa9llo|B:3|T:|", "", 0);
}

static void fragments_with_ping_between(void **state)
{
    uint8_t in[64];
    size_t len = client_frame(in, 0, 0, 0, WS_OP_TEXT, "fra", 3);
    len = client_frame(in, len, 1, 0, WS_OP_PING, "pi", 2);
    len = client_frame(in, len, 0, 0, WS_OP_CONT, "gme", 3);
    len = client_frame(in, len, 1, 0, WS_OP_PONG, "un", 2); /* unsolicited: ignored */
    len = client_frame(in, len, 1, 0, WS_OP_CONT, "nts", 3);
    /* The pong goes out at once, before the message is complete. */
    check_all_splits(in, len, "T:fragments|", "\x8a\x02pi", 4);
}

static void utf8_split_inside_code_point(void **state)
{
    /* U+20AC (E2 82 AC) and U+1F600 (F0 9F 98 80) cut across fragments. */
    uint8_t in[64];
    size_t len = client_frame(in, 0, 0, 0, WS_OP_TEXT, "\xe2\x82", 2);
    len = client_frame(in, len, 0, 0, WS_OP_CONT, "\xac\xf0", 2);
    len = client_frame(in, len, 1, 0, WS_OP_CONT, "\x9f\x98\x80", 3);
    check_all_splits(in, len, "T:\xe2\x82\xac\xf0\x9f\x98\x80|", NULL, 0);
}

static void bad_utf8_fails_at_first_bad_byte(void **state)
{
    /* One unfinished frame: 1007 must come as soon as the bad byte is in, with the rest of
     * the frame (and its FIN) still to arrive. */
    uint8_t payload[40] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
                          "edited-hello";
    uint8_t in[64];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, payload, 27);
    size_t bad_at = 6 + 13; /* bytes up to and with the 0x90 after F4 */
    for (size_t cut = bad_at; cut < len; cut++) {
        rec *r = run(in, cut, cut, 1 << 20);
        assert_string_equal(r->log, "E:1007|");
        assert_int_equal(r->outlen, 4);
        assert_memory_equal(r->out, "\x88\x02\x03\xef", 4); /* close 1007 */
        rec_free(r);
    }
    /* One byte less: nothing is known to be wrong yet. */
    rec *r = run(in, bad_at - 1, 0, 1 << 20);
    assert_string_equal(r->log, "");
    rec_free(r);
}

static void incomplete_utf8_at_end_is_1007(void **state)
{
    uint8_t in[16];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, "ab\xe2\x82", 4);
    check_all_splits(in, len, "E:1007|", "\x88\x02\x03\xef", 4);
}

static void invalid_utf8_forms(void **state)
{
    static const char *const bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xfe",
        "\x80",
        "\xf8\x88\x80\x80\x80", /* 5-byte form */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t in[32];
        size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, bad[i], strlen(bad[i]));
        check_all_splits(in, len, "E:1007|", NULL, 0);
    }
    /* Noncharacters are valid. */
    uint8_t in[32];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, "\xef\xbf\xbe\xef\xbf\xbf", 6);
    check_all_splits(in, len, "T:\xef\xbf\xbe\xef\xbf\xbf|", NULL, 0);
}

static void close_echoes_code(void **state)
{
    uint8_t in[64];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, "last", 4);
    len = client_frame(in, len, 1, 0, WS_OP_CLOSE, "\x0b\xb8reason", 8); /* 3000 */
    len = client_frame(in, len, 1, 0, WS_OP_PING, "late", 4);            /* ignored */
    len = client_frame(in, len, 1, 0, WS_OP_TEXT, "late", 4);            /* ignored */
    check_all_splits(in, len, "T:last|E:3000|", "\x88\x02\x0b\xb8", 4);
}

static void close_without_code(void **state)
{
    uint8_t in[16];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, "", 0);
    check_all_splits(in, len, "E:1005|", "\x88\x00", 2);
}

static void close_payload_rules(void **state)
{
    uint8_t in[200], reason[130];
    memset(reason, 'r', sizeof(reason));
    /* One byte: 1002. */
    size_t len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, "\x03", 1);
    check_all_splits(in, len, "E:1002|", "\x88\x02\x03\xea", 4);
    /* Invalid codes: 1002. */
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t code[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, code, 2);
        check_all_splits(in, len, "E:1002|", "\x88\x02\x03\xea", 4);
    }
    /* A reason that is not UTF-8: 1007. */
    len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc"
                                                 "\xce\xb5\xed\xa0\x80\x65\x64",
                       18);
    check_all_splits(in, len, "E:1007|", "\x88\x02\x03\xef", 4);
    /* 123 bytes of reason is the most (125 payload); 124 makes a 126-byte frame: 1002. */
    uint8_t p[126] = {0x03, 0xe8};
    memcpy(p + 2, reason, 124);
    len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, p, 125);
    check_all_splits(in, len, "E:1000|", "\x88\x02\x03\xe8", 4);
    len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, p, 126);
    check_all_splits(in, len, "E:1002|", NULL, 0);
}

static void server_close_waits_for_peer(void **state)
{
    rec r;
    rec_init(&r, 100, 10);
    assert_int_equal(ws_stream_close(&r.s, 1000, "bye"), 0);
    assert_int_equal(r.outlen, 7);
    assert_memory_equal(r.out, "\x88\x05\x03\xe8" "bye", 7);
    assert_int_equal(r.ended, 0);
    /* Sending after the close frame is refused. */
    ws_msg m = {"x", 1, NULL, 0};
    assert_int_equal(ws_stream_send(&r.s, &m, 1), -FERRY_ECLOSED);
    uint8_t in[16];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_CLOSE, "\x03\xe8", 2);
    ws_stream_feed(&r.s, (char *)in, len);
    assert_string_equal(r.log, "E:1000|");
    assert_int_equal(r.outlen, 7); /* no second close frame */
    ws_stream_free(&r.s);
}

static void too_big_is_1009(void **state)
{
    uint8_t in[300], payload[200] = {0};
    size_t len = client_frame(in, 0, 0, 0, WS_OP_BINARY, payload, 100);
    len = client_frame(in, len, 1, 0, WS_OP_CONT, payload, 100);
    rec *r = run(in, len, 0, 200);
    assert_string_equal(r->log, "B:200|");
    rec_free(r);
    r = run(in, len, 0, 199);
    assert_string_equal(r->log, "E:1009|");
    assert_memory_equal(r->out, "\x88\x02\x03\xf1", 4);
    rec_free(r);
}

static void protocol_errors_are_1002_after_earlier_echo(void **state)
{
    /* Autobahn 3.2: a valid message, then RSV bits set, then a ping that must get no pong. */
    uint8_t in[64];
    size_t len = client_frame(in, 0, 1, 0, WS_OP_TEXT, "ok", 2);
    len = client_frame(in, len, 1, 2, WS_OP_TEXT, "bad", 3);
    len = client_frame(in, len, 1, 0, WS_OP_PING, "", 0);
    check_all_splits(in, len, "T:ok|E:1002|", "\x88\x02\x03\xea", 4);
}

static void send_frames_share_payload(void **state)
{
    rec r;
    rec_init(&r, 100, 10);
    ferry_buf *payload = ferry_buf_from("4hello", 6);
    ws_msg m[2] = {{payload->data, payload->len, payload, 0}, {"\x01\x02", 2, NULL, 1}};
    assert_int_equal(ws_stream_send(&r.s, m, 2), 0);
    assert_int_equal(r.outlen, 12);
    assert_memory_equal(r.out, "\x81\x06" "4hello" "\x82\x02\x01\x02", 12);
    assert_int_equal(payload->refcnt, 1); /* the writer released what it retained */
    ferry_buf_release(payload);
    ws_stream_free(&r.s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(text_and_binary),
    cmocka_unit_test(fragments_with_ping_between),
    cmocka_unit_test(utf8_split_inside_code_point),
    cmocka_unit_test(bad_utf8_fails_at_first_bad_byte),
    cmocka_unit_test(incomplete_utf8_at_end_is_1007),
    cmocka_unit_test(invalid_utf8_forms),
    cmocka_unit_test(close_echoes_code),
    cmocka_unit_test(close_without_code),
    cmocka_unit_test(close_payload_rules),
    cmocka_unit_test(server_close_waits_for_peer),
    cmocka_unit_test(too_big_is_1009),
    cmocka_unit_test(protocol_errors_are_1002_after_earlier_echo),
    cmocka_unit_test(send_frames_share_payload),
};

FERRY_TEST_MAIN(tests)
