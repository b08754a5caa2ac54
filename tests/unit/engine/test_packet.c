/* lib/engine/packet.c: Engine.IO v4 packets and payloads. */
#include "ferry_test.h"

#include "engine/packet.h"
#include "ferry.h"

typedef struct seen {
    int n;
    eio_packet pkts[16];
    char data[16][64];
} seen;

static int collect(void *ud, const eio_packet *pkt)
{
    seen *s = ud;
    s->pkts[s->n] = *pkt;
    memcpy(s->data[s->n], pkt->data, pkt->len);
    s->n++;
    return 0;
}

static void payload_with_binary(void **state)
{
    (void)state;
    char body[] = "4hello\x1e"
                  "bAQIDBA==\x1e"
                  "2";
    seen s = {0};
    eio_payload_decoder d;
    eio_payload_decoder_init(&d, 1000, collect, &s);
    assert_int_equal(eio_payload_feed(&d, body, sizeof(body) - 1), 0);
    assert_int_equal(eio_payload_finish(&d), 0);
    eio_payload_decoder_free(&d);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.pkts[0].type, EIO_MESSAGE);
    assert_int_equal(s.pkts[0].len, 5);
    assert_memory_equal(s.data[0], "hello", 5);
    assert_int_equal(s.pkts[1].binary, 1);
    assert_int_equal(s.pkts[1].len, 4);
    assert_memory_equal(s.data[1], "\x01\x02\x03\x04", 4);
    assert_int_equal(s.pkts[2].type, EIO_PING);
}

static void empty_payload_is_an_error(void **state)
{
    (void)state;
    seen s = {0};
    eio_payload_decoder d;
    eio_payload_decoder_init(&d, 1000, collect, &s);
    assert_int_equal(eio_payload_finish(&d), -FERRY_EPROTO);
    eio_payload_decoder_free(&d);
    assert_int_equal(s.n, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(payload_with_binary),
    cmocka_unit_test(empty_payload_is_an_error),
};

FERRY_TEST_MAIN(tests)
