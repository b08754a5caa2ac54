/* lib/engine/packet.c: Engine.IO v4 packets and payloads.
 *
 * The payload decoder is incremental: every payload here is also fed split at every point and
 * byte by byte, and must give the same packets (or the same error) whatever the split. */
#include "ferry_test.h"

#include <stdlib.h>

#include "common/base64.h"
#include "engine/packet.h"
#include "ferry.h"

#define MAX_SEEN 64

typedef struct seen {
    int n;
    int stop_after; /* the callback asks to stop after this many (0: never) */
    int type[MAX_SEEN];
    int binary[MAX_SEEN];
    size_t len[MAX_SEEN];
    char data[MAX_SEEN][256];
} seen;

static int collect(void *ud, const eio_packet *pkt)
{
    seen *s = ud;
    assert_true(s->n < MAX_SEEN);
    assert_true(pkt->len <= sizeof(s->data[0]));
    s->type[s->n] = pkt->type;
    s->binary[s->n] = pkt->binary;
    s->len[s->n] = pkt->len;
    memcpy(s->data[s->n], pkt->data, pkt->len);
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* Decode body (a private copy: decoding is in place) fed in the given piece sizes (a 0 size
 * list means one piece); returns the first error or 0. */
static int decode_pieces(const char *body, size_t len, const size_t *cuts, size_t ncuts,
                         size_t max, seen *out)
{
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    memset(out, 0, sizeof(*out));
    eio_payload_decoder d;
    eio_payload_decoder_init(&d, max, collect, out);
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = eio_payload_feed(&d, copy + off, end - off);
        off = end;
    }
    if (rc == 0)
        rc = eio_payload_finish(&d);
    eio_payload_decoder_free(&d);
    free(copy);
    return rc;
}

static void assert_same(const seen *a, const seen *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->type[i], b->type[i]);
        assert_int_equal(a->binary[i], b->binary[i]);
        assert_int_equal(a->len[i], b->len[i]);
        assert_memory_equal(a->data[i], b->data[i], a->len[i]);
    }
}

/* The whole payload, then every single split point, then every byte on its own: the same
 * result each time. Returns the result of the whole feed. */
static int decode_every_way(const char *body, size_t len, size_t max, seen *whole)
{
    int rc = decode_pieces(body, len, NULL, 0, max, whole);
    seen other;
    for (size_t k = 0; k <= len; k++) {
        int rk = decode_pieces(body, len, &k, 1, max, &other);
        assert_int_equal(rk, rc);
        if (rc == 0)
            assert_same(whole, &other);
    }
    size_t *cuts = malloc((len + 1) * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    int rb = decode_pieces(body, len, cuts, len ? len - 1 : 0, max, &other);
    free(cuts);
    assert_int_equal(rb, rc);
    if (rc == 0)
        assert_same(whole, &other);
    return rc;
}

static void payload_with_binary(void **state)
{
    (void)state;
    static const char body[] = "4hello\x1e"
                               "bAQIDBA==\x1e"
                               "2";
    seen s;
    assert_int_equal(decode_every_way(body, sizeof(body) - 1, 1000, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.type[0], EIO_MESSAGE);
    assert_int_equal(s.len[0], 5);
    assert_memory_equal(s.data[0], "hello", 5);
    assert_int_equal(s.binary[1], 1);
    assert_int_equal(s.type[1], EIO_MESSAGE);
    assert_int_equal(s.len[1], 4);
    assert_memory_equal(s.data[1], "\x01\x02\x03\x04", 4);
    assert_int_equal(s.type[2], EIO_PING);
    assert_int_equal(s.len[2], 0);
}

static void every_packet_type(void **state)
{
    (void)state;
    static const char body[] = "0\x1e"
                               "1\x1e"
                               "2probe\x1e"
                               "3\x1e"
                               "4\x1e"
                               "5\x1e"
                               "6";
    seen s;
    assert_int_equal(decode_every_way(body, sizeof(body) - 1, 1000, &s), 0);
    assert_int_equal(s.n, 7);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(s.type[i], i);
        assert_int_equal(s.binary[i], 0);
    }
    assert_int_equal(s.len[2], 5);
    assert_memory_equal(s.data[2], "probe", 5);
    assert_int_equal(s.len[4], 0); /* an empty message is a message */
}

static void utf8_and_control_bytes_pass_unchanged(void **state)
{
    (void)state;
    /* Multi-byte UTF-8 split anywhere, NUL, CR and LF inside a message. */
    static const char body[] = "4h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\xa2\x1e"
                               "4a\0b\r\nc";
    seen s;
    assert_int_equal(decode_every_way(body, sizeof(body) - 1, 1000, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.len[0], 15);
    assert_memory_equal(s.data[0], "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\xa2", 15);
    assert_int_equal(s.len[1], 6);
    assert_memory_equal(s.data[1], "a\0b\r\nc", 6);
}

static void binary_with_and_without_padding(void **state)
{
    (void)state;
    static const char body[] = "bAQ==\x1e"
                               "bAQI=\x1e"
                               "bAQID\x1e"
                               "bAQ\x1e"
                               "b";
    seen s;
    assert_int_equal(decode_every_way(body, sizeof(body) - 1, 1000, &s), 0);
    assert_int_equal(s.n, 5);
    size_t want[] = {1, 2, 3, 1, 0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.binary[i], 1);
        assert_int_equal(s.len[i], want[i]);
    }
    assert_memory_equal(s.data[2], "\x01\x02\x03", 3);
}

static void many_packets(void **state)
{
    (void)state;
    char body[2048];
    size_t len = 0;
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s4m%d", i ? "\x1e" : "", i);
    seen s;
    assert_int_equal(decode_every_way(body, len, 1000, &s), 0);
    assert_int_equal(s.n, 50);
    for (int i = 0; i < 50; i++) {
        char want[8];
        int n = snprintf(want, sizeof(want), "m%d", i);
        assert_int_equal(s.len[i], (size_t)n);
        assert_memory_equal(s.data[i], want, (size_t)n);
    }
}

/* Malformed payloads fail the same way whatever the split; packets before the bad one have
 * been delivered (the engine closes the session on the error). */
static void malformed_payloads(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        size_t len;
        int good_before;
    } bad[] = {
        {"", 0, 0},                         /* empty body */
        {"abc", 3, 0},                      /* unknown type */
        {"7", 1, 0},                        /* type out of range */
        {"4a\x1e", 3, 1},                   /* trailing separator: an empty last packet */
        {"\x1e", 1, 0},                     /* an empty first packet */
        {"4a\x1e\x1e" "4b", 5, 1},          /* an empty packet in the middle */
        {"b!!!!", 5, 0},                    /* not base64 */
        {"bAQ=I", 5, 0},                    /* data after the padding */
        {"4ok\x1e" "b\xff", 6, 1},          /* a byte outside the alphabet */
        {"\xff\xfe", 2, 0},                 /* garbage */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen s;
        int rc = decode_every_way(bad[i].body, bad[i].len, 1000, &s);
        assert_int_equal(rc, -FERRY_EPROTO);
        assert_int_equal(s.n, bad[i].good_before);
    }
}

/* A packet of exactly max bytes passes, one more fails, at every split point. */
static void packet_size_bound(void **state)
{
    (void)state;
    char body[64];
    memset(body, 'x', sizeof(body));
    body[0] = '4';
    seen s;
    assert_int_equal(decode_every_way(body, 20, 20, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.len[0], 19);
    assert_int_equal(decode_every_way(body, 21, 20, &s), -FERRY_ETOOBIG);
    /* The bound is per packet: two packets of max bytes each are fine. */
    char two[41];
    memcpy(two, body, 20);
    two[20] = EIO_SEPARATOR;
    memcpy(two + 21, body, 20);
    assert_int_equal(decode_every_way(two, 41, 20, &s), 0);
    assert_int_equal(s.n, 2);
}

static void callback_can_stop_decoding(void **state)
{
    (void)state;
    static const char body[] = "4a\x1e"
                               "1\x1e"
                               "4b";
    char copy[sizeof(body)];
    memcpy(copy, body, sizeof(body));
    seen s;
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    eio_payload_decoder d;
    eio_payload_decoder_init(&d, 1000, collect, &s);
    assert_int_equal(eio_payload_feed(&d, copy, sizeof(body) - 1), -FERRY_ECALLBACK);
    /* Once stopped, nothing more is decoded. */
    assert_int_equal(eio_payload_feed(&d, copy, 2), -FERRY_EPROTO);
    assert_int_equal(eio_payload_finish(&d), -FERRY_EPROTO);
    eio_payload_decoder_free(&d);
    assert_int_equal(s.n, 2);
}

static void single_packet_decode(void **state)
{
    (void)state;
    eio_packet pkt;
    char ok[] = "4hi";
    assert_int_equal(eio_packet_decode(ok, 3, &pkt), 0);
    assert_int_equal(pkt.type, EIO_MESSAGE);
    assert_int_equal(pkt.len, 2);
    char empty[] = "";
    assert_int_equal(eio_packet_decode(empty, 0, &pkt), -FERRY_EPROTO);
    for (int c = 0; c < 256; c++) {
        char one[2] = {(char)c, 0};
        int rc = eio_packet_decode(one, 1, &pkt);
        if ((c >= '0' && c <= '6') || c == 'b')
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, -FERRY_EPROTO);
    }
}

/* Encoding: text packets, binary as itself and as "b" + base64 (built once, kept). */
static void encode_and_round_trip(void **state)
{
    (void)state;
    ferry_buf *t = eio_packet_new(EIO_MESSAGE, "hello", 5);
    assert_non_null(t);
    assert_int_equal(t->len, 6);
    assert_memory_equal(t->data, "4hello", 6);
    assert_ptr_equal(eio_text_form(t), t);
    ferry_buf *e = eio_packet_new(EIO_PING, NULL, 0);
    assert_int_equal(e->len, 1);
    assert_int_equal(e->data[0], '2');

    unsigned char raw[256];
    for (int i = 0; i < 256; i++)
        raw[i] = (unsigned char)i;
    for (size_t n = 0; n <= sizeof(raw); n += (n < 8 ? 1 : 61)) {
        ferry_buf *b = eio_binary_new(raw, n);
        assert_non_null(b);
        assert_true(b->flags & FERRY_BUF_BINARY);
        assert_int_equal(b->len, n);
        ferry_buf *text = eio_text_form(b);
        assert_non_null(text);
        assert_ptr_equal(eio_text_form(b), text); /* built once */
        assert_int_equal(text->data[0], 'b');
        assert_int_equal(text->len, 1 + FERRY_BASE64_LEN(n));
        /* The text form decodes back to the bytes. */
        char copy[1 + FERRY_BASE64_LEN(256)];
        memcpy(copy, text->data, text->len);
        eio_packet pkt;
        assert_int_equal(eio_packet_decode(copy, text->len, &pkt), 0);
        assert_int_equal(pkt.binary, 1);
        assert_int_equal(pkt.len, n);
        if (n > 0)
            assert_memory_equal(pkt.data, raw, n);
        ferry_buf_release(b);
    }
    ferry_buf_release(t);
    ferry_buf_release(e);
}

static void vec_reserve_is_bounded(void **state)
{
    (void)state;
    ferry_vec v = {0};
    assert_int_equal(ferry_vec_reserve(&v, 10, 100), 0);
    assert_true(v.cap >= 10 && v.cap <= 100);
    assert_int_equal(ferry_vec_append(&v, "0123456789", 10, 100), 0);
    assert_int_equal(ferry_vec_reserve(&v, 90, 100), 0);
    assert_int_equal(v.cap, 100);
    assert_int_equal(ferry_vec_reserve(&v, 91, 100), -FERRY_ETOOBIG);
    /* Sizes near SIZE_MAX must fail at once, not loop or overflow. */
    assert_int_equal(ferry_vec_reserve(&v, SIZE_MAX, SIZE_MAX), -FERRY_ETOOBIG);
    assert_int_equal(ferry_vec_reserve(&v, SIZE_MAX - 5, SIZE_MAX), -FERRY_ETOOBIG);
    ferry_vec_consume(&v, 4);
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.base, "456789", 6);
    ferry_vec_free(&v);
    assert_null(v.base);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(payload_with_binary),
    cmocka_unit_test(every_packet_type),
    cmocka_unit_test(utf8_and_control_bytes_pass_unchanged),
    cmocka_unit_test(binary_with_and_without_padding),
    cmocka_unit_test(many_packets),
    cmocka_unit_test(malformed_payloads),
    cmocka_unit_test(packet_size_bound),
    cmocka_unit_test(callback_can_stop_decoding),
    cmocka_unit_test(single_packet_decode),
    cmocka_unit_test(encode_and_round_trip),
    cmocka_unit_test(vec_reserve_is_bounded),
};

FERRY_TEST_MAIN(tests)
