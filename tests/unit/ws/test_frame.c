/* The frame parser (lib/ws/frame.c): lengths at the 7/16/64-bit boundaries fed at every split
 * point and byte by byte, masking, RSV bits, opcodes and control-frame rules, limits. */
#include "ws_test_util.h"

#include <stdlib.h>

typedef struct seen {
    size_t data_bytes;
    int opcode;
    int fins;
    int controls;
    uint8_t first, last;
    size_t ctrl_len;
    uint8_t ctrl_first, ctrl_last;
} seen;

static int on_data(void *ud, int opcode, int compressed, char *data, size_t len, int fin)
{
    seen *s = ud;
    if (len > 0) {
        if (s->data_bytes == 0)
            s->first = (uint8_t)data[0];
        s->last = (uint8_t)data[len - 1];
    }
    s->data_bytes += len;
    s->opcode = opcode;
    s->fins += fin;
    return 0;
}

static int on_control(void *ud, int opcode, char *data, size_t len)
{
    seen *s = ud;
    s->controls++;
    s->ctrl_len = len;
    assert_non_null(data); /* also for an empty payload */
    if (len > 0) {
        s->ctrl_first = (uint8_t)data[0];
        s->ctrl_last = (uint8_t)data[len - 1];
    }
    return 0;
}

static const ws_parser_callbacks cbs = {on_data, on_control};

/* Parse buf (copied each time, since parsing unmasks in place) split at split, and byte by
 * byte when split is (size_t)-1. Returns the parser's last result. */
static int parse(const uint8_t *buf, size_t len, size_t split, seen *s, uint64_t max_msg,
                 uint32_t max_frag)
{
    ws_parser p;
    memset(s, 0, sizeof(*s));
    ws_parser_init(&p, &cbs, s, max_msg, max_frag);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    int rc = 0;
    size_t used;
    if (split == (size_t)-1) {
        for (size_t i = 0; i < len && rc == 0; i++) {
            rc = ws_parser_execute(&p, copy + i, 1, &used);
            if (rc == 0)
                assert_int_equal(used, 1);
        }
    } else {
        rc = ws_parser_execute(&p, copy, split, &used);
        if (rc == 0) {
            assert_int_equal(used, split);
            rc = ws_parser_execute(&p, copy + split, len - split, &used);
        }
    }
    free(copy);
    ws_parser_free(&p); /* input may stop inside a control frame */
    return rc;
}

static void lengths_at_boundaries(void **state)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 128, 65535, 65536, 70001};
    uint8_t *buf = malloc(80000);
    uint8_t *payload = malloc(80000);
    for (size_t i = 0; i < 80000; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        size_t len = client_frame(buf, 0, 1, 0, WS_OP_BINARY, payload, n);
        /* The header is 2+4, 4+4 or 10+4 bytes. */
        assert_int_equal(len - n, n < 126 ? 6 : n <= 65535 ? 8 : 14);
        /* Every split in the header and around the payload's start and end; byte by byte. */
        for (size_t split = 0; split <= len; split++) {
            if (split > 20 && split + 20 < len && split % 4093 != 0)
                continue;
            seen s;
            assert_int_equal(parse(buf, len, split, &s, 1 << 20, 10), 0);
            assert_int_equal(s.data_bytes, n);
            assert_int_equal(s.fins, 1);
            assert_int_equal(s.opcode, WS_OP_BINARY);
            if (n > 0) {
                assert_int_equal(s.first, payload[0]);
                assert_int_equal(s.last, payload[n - 1]);
            }
        }
        seen s;
        assert_int_equal(parse(buf, len, (size_t)-1, &s, 1 << 20, 10), 0);
        assert_int_equal(s.data_bytes, n);
    }
    free(buf);
    free(payload);
}

static void header_writer(void **state)
{
    uint8_t h[WS_MAX_HEADER];
    assert_int_equal(ws_frame_header(h, 1, 0, WS_OP_TEXT, 5), 2);
    assert_memory_equal(h, "\x81\x05", 2);
    assert_int_equal(ws_frame_header(h, 1, 0, WS_OP_BINARY, 125), 2);
    assert_memory_equal(h, "\x82\x7d", 2);
    assert_int_equal(ws_frame_header(h, 1, 0, WS_OP_TEXT, 126), 4);
    assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);
    assert_int_equal(ws_frame_header(h, 1, 0, WS_OP_TEXT, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
    assert_int_equal(ws_frame_header(h, 1, 1, WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\xc1\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    /* Server frames are never masked: the mask bit of byte 2 stays clear. */
    assert_int_equal(h[1] & 0x80, 0);
}

static void unmasked_frame_is_1002(void **state)
{
    const uint8_t frame[] = {0x81, 0x02, 'h', 'i'};
    seen s;
    assert_int_equal(parse(frame, sizeof(frame), 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    assert_int_equal(s.data_bytes, 0);
}

static void reserved_bits_and_opcodes_are_1002(void **state)
{
    uint8_t buf[64];
    for (int rsv = 1; rsv < 8; rsv++) {
        size_t len = client_frame(buf, 0, 1, rsv, WS_OP_TEXT, "x", 1);
        seen s;
        assert_int_equal(parse(buf, len, (size_t)-1, &s, 100, 10), WS_CLOSE_PROTOCOL);
    }
    static const int ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t len = client_frame(buf, 0, 1, 0, ops[i], "", 0);
        seen s;
        assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    }
}

static void control_frame_rules(void **state)
{
    uint8_t buf[300], payload[126] = {0};
    seen s;
    /* 125 bytes is the most a ping carries; 126 is a protocol error. */
    size_t len = client_frame(buf, 0, 1, 0, WS_OP_PING, payload, 125);
    assert_int_equal(parse(buf, len, 3, &s, 100, 10), 0);
    assert_int_equal(s.controls, 1);
    assert_int_equal(s.ctrl_len, 125);
    /* The payload arrives intact whether it comes in one feed (handed on in place) or split
     * over many (gathered), and a parser dropped inside a control frame leaks nothing. */
    for (size_t i = 0; i < 125; i++)
        payload[i] = (uint8_t)(i * 5 + 1);
    len = client_frame(buf, 0, 1, 0, WS_OP_PING, payload, 125);
    static const size_t splits[] = {0, 3, 6, 7, 60, 130, (size_t)-1};
    for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
        assert_int_equal(parse(buf, len, splits[k], &s, 100, 10), 0);
        assert_int_equal(s.controls, 1);
        assert_int_equal(s.ctrl_len, 125);
        assert_int_equal(s.ctrl_first, 1);
        assert_int_equal(s.ctrl_last, (uint8_t)(124 * 5 + 1));
    }
    assert_int_equal(parse(buf, 60, (size_t)-1, &s, 100, 10), 0);
    assert_int_equal(s.controls, 0);
    memset(payload, 0, sizeof(payload));
    len = client_frame(buf, 0, 1, 0, WS_OP_PING, payload, 126);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    /* A fragmented ping. */
    len = client_frame(buf, 0, 0, 0, WS_OP_PING, "a", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    /* A ping between two fragments is fine. */
    len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "ab", 2);
    len = client_frame(buf, len, 1, 0, WS_OP_PING, "p", 1);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "cd", 2);
    assert_int_equal(parse(buf, len, 9, &s, 100, 10), 0);
    assert_int_equal(s.data_bytes, 4);
    assert_int_equal(s.controls, 1);
    assert_int_equal(s.fins, 1);
    assert_int_equal(s.opcode, WS_OP_TEXT);
}

static void continuation_rules(void **state)
{
    uint8_t buf[64];
    seen s;
    /* Nothing to continue. */
    size_t len = client_frame(buf, 0, 1, 0, WS_OP_CONT, "x", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    /* A new text message inside an unfinished one. */
    len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "a", 1);
    len = client_frame(buf, len, 1, 0, WS_OP_TEXT, "b", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
    /* RSV1 without permessage-deflate. */
    len = client_frame(buf, 0, 1, 4, WS_OP_TEXT, "a", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_PROTOCOL);
}

static void msb_of_64bit_length_is_1002(void **state)
{
    const uint8_t frame[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    seen s;
    assert_int_equal(parse(frame, sizeof(frame), (size_t)-1, &s, UINT64_MAX >> 1, 10),
                     WS_CLOSE_PROTOCOL);
}

static void message_limit_exact_and_over(void **state)
{
    uint8_t buf[256], payload[100] = {0};
    seen s;
    size_t len = client_frame(buf, 0, 1, 0, WS_OP_BINARY, payload, 100);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), 0);
    assert_int_equal(parse(buf, len, 0, &s, 99, 10), WS_CLOSE_TOO_BIG);
    /* Over the limit across fragments: refused at the header, before the payload. */
    len = client_frame(buf, 0, 0, 0, WS_OP_BINARY, payload, 60);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, payload, 41);
    assert_int_equal(parse(buf, len, 0, &s, 100, 10), WS_CLOSE_TOO_BIG);
    assert_int_equal(s.data_bytes, 60);
}

static void fragment_limit_exact_and_over(void **state)
{
    uint8_t buf[256];
    size_t len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "a", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "b", 1);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "c", 1);
    seen s;
    assert_int_equal(parse(buf, len, 0, &s, 100, 3), 0);
    assert_int_equal(s.fins, 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 2), WS_CLOSE_TOO_BIG);
}

/* Empty frames carry no payload and are not counted (issue 9): exactly the limit of non-empty
 * fragments plus an empty final frame (as Autobahn's client sends) is a whole message; many
 * empty frames around them too; one more non-empty fragment is 1009. */
static void fragment_limit_ignores_empty_frames(void **state)
{
    uint8_t buf[512];
    seen s;
    size_t len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "a", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "b", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "c", 1);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "", 0);
    assert_int_equal(parse(buf, len, 0, &s, 100, 3), 0);
    assert_int_equal(s.fins, 1);
    assert_int_equal(s.data_bytes, 3);
    assert_int_equal(parse(buf, len, (size_t)-1, &s, 100, 3), 0);
    /* An empty first frame and empty continuations between the pieces. */
    len = client_frame(buf, 0, 0, 0, WS_OP_BINARY, "", 0);
    for (int i = 0; i < 20; i++)
        len = client_frame(buf, len, 0, 0, WS_OP_CONT, "", 0);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "x", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "", 0);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "y", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 2), 0);
    assert_int_equal(s.fins, 1);
    assert_int_equal(s.data_bytes, 2);
    /* limit + 1 non-empty: refused at the header of the extra piece. */
    len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "a", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "", 0);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "b", 1);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "c", 1);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "d", 1);
    assert_int_equal(parse(buf, len, 0, &s, 100, 3), WS_CLOSE_TOO_BIG);
    assert_int_equal(s.data_bytes, 3);
    /* A message of empty frames only is whole at any limit. */
    len = client_frame(buf, 0, 0, 0, WS_OP_TEXT, "", 0);
    len = client_frame(buf, len, 0, 0, WS_OP_CONT, "", 0);
    len = client_frame(buf, len, 1, 0, WS_OP_CONT, "", 0);
    assert_int_equal(parse(buf, len, 0, &s, 100, 1), 0);
    assert_int_equal(s.fins, 1);
}

static void stays_failed(void **state)
{
    ws_parser p;
    seen s = {0};
    ws_parser_init(&p, &cbs, &s, 100, 10);
    char bad[] = {0x81, 0x01, 'x'};
    size_t used;
    assert_int_equal(ws_parser_execute(&p, bad, sizeof(bad), &used), WS_CLOSE_PROTOCOL);
    uint8_t good[16];
    size_t len = client_frame(good, 0, 1, 0, WS_OP_TEXT, "ok", 2);
    assert_int_equal(ws_parser_execute(&p, (char *)good, len, &used), WS_CLOSE_PROTOCOL);
    assert_int_equal(s.data_bytes, 0);
}

/* from_server (ferry-bench's client side): unmasked server frames at 7/16-bit lengths, byte by
 * byte too; a masked frame from a server is 1002. */
static void server_frames_client_side(void **state)
{
    static char payload[300];
    memset(payload, 'x', sizeof(payload));
    payload[0] = 'a';
    payload[299] = 'z';
    static const size_t lens[] = {0, 5, 125, 126, 300};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        uint8_t buf[320];
        size_t h = ws_frame_header(buf, 1, 0, WS_OP_TEXT, lens[k]);
        memcpy(buf + h, payload, lens[k]);
        for (size_t step = 1; step <= h + lens[k]; step += h + lens[k] - 1) {
            ws_parser p;
            seen s = {0};
            ws_parser_init(&p, &cbs, &s, 1000, 10);
            p.from_server = 1;
            int rc = 0;
            for (size_t i = 0; i < h + lens[k] && rc == 0; i += step) {
                size_t n = h + lens[k] - i < step ? h + lens[k] - i : step, used;
                rc = ws_parser_execute(&p, (char *)buf + i, n, &used);
            }
            assert_int_equal(rc, 0);
            assert_int_equal(s.data_bytes, lens[k]);
            assert_int_equal(s.fins, 1);
            if (lens[k] == 300)
                assert_true(s.first == 'a' && s.last == 'z');
        }
    }
    ws_parser p;
    seen s = {0};
    ws_parser_init(&p, &cbs, &s, 1000, 10);
    p.from_server = 1;
    char masked[] = {(char)0x81, (char)0x81, 1, 2, 3, 4, 'x'};
    size_t used;
    assert_int_equal(ws_parser_execute(&p, masked, sizeof(masked), &used), WS_CLOSE_PROTOCOL);
}

static void close_codes(void **state)
{
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                     3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000,
                                       65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_true(ws_close_code_valid(valid[i]));
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_false(ws_close_code_valid(invalid[i]));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(lengths_at_boundaries),
    cmocka_unit_test(header_writer),
    cmocka_unit_test(unmasked_frame_is_1002),
    cmocka_unit_test(reserved_bits_and_opcodes_are_1002),
    cmocka_unit_test(control_frame_rules),
    cmocka_unit_test(continuation_rules),
    cmocka_unit_test(msb_of_64bit_length_is_1002),
    cmocka_unit_test(message_limit_exact_and_over),
    cmocka_unit_test(fragment_limit_exact_and_over),
    cmocka_unit_test(fragment_limit_ignores_empty_frames),
    cmocka_unit_test(stays_failed),
    cmocka_unit_test(close_codes),
    cmocka_unit_test(server_frames_client_side),
};

FERRY_TEST_MAIN(tests)
