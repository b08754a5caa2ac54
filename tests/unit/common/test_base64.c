/* lib/common/base64.c: both alphabets round trip every length, each decoder refuses the other
 * alphabet's two characters and a malformed tail, and padding is taken only by standard base64. */
#include "ferry_test.h"

#include "common/base64.h"

static void round_trip_every_length(void **state)
{
    (void)state;
    uint8_t in[64], out[64];
    char text[FERRY_BASE64_LEN(64) + 1];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 250); /* every value class, '+' '/' '-' '_' among the digits */
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t m = ferry_base64_encode(text, in, n);
        assert_int_equal(ferry_base64_decode(out, text, m), (long)n);
        assert_memory_equal(out, in, n);
        m = ferry_base64url_encode(text, in, n);
        assert_int_equal(m, (4 * n + 2) / 3);
        assert_int_equal(ferry_base64url_decode(out, text, m), (long)n);
        assert_memory_equal(out, in, n);
    }
}

static void alphabets_and_tails(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(ferry_base64url_decode(out, "-_-_", 4), 3);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(ferry_base64url_decode(out, "+/+/", 4), -1);
    assert_int_equal(ferry_base64_decode(out, "-_-_", 4), -1);
    assert_int_equal(ferry_base64_decode(out, "+/+/", 4), 3);
    assert_int_equal(ferry_base64_decode(out, "QQ==", 4), 1);   /* padding: standard only */
    assert_int_equal(ferry_base64url_decode(out, "QQ==", 4), -1);
    assert_int_equal(ferry_base64url_decode(out, "QUJDR", 5), -1); /* 4k + 1 characters */
    assert_int_equal(ferry_base64url_decode(out, "", 0), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(round_trip_every_length),
    cmocka_unit_test(alphabets_and_tails),
};

FERRY_TEST_MAIN(tests)
