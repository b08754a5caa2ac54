/* lib/common/strbuf.c: the bounded string builder. Exactly-at-capacity and one-past cases for
 * each append kind, sticky failure, and nothing written past what fits. */
#include "ferry_test.h"

#include "common/strbuf.h"
#include "ferry.h"

static void fits_exactly(void **state)
{
    (void)state;
    char mem[8];
    memset(mem, 'Z', sizeof(mem));
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, mem, sizeof(mem));
    ferry_strbuf_puts(&sb, "abc");
    ferry_strbuf_printf(&sb, "%d", 1234); /* 7 bytes + NUL = 8 */
    assert_int_equal(ferry_strbuf_error(&sb), 0);
    assert_int_equal(sb.len, 7);
    assert_string_equal(mem, "abc1234");
}

static void one_past_fails_and_sticks(void **state)
{
    (void)state;
    char mem[16];
    memset(mem, 'Z', sizeof(mem));
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, mem, 8);
    ferry_strbuf_puts(&sb, "abc");
    ferry_strbuf_printf(&sb, "%d", 12345); /* would need 9 */
    assert_int_equal(ferry_strbuf_error(&sb), -FERRY_ETOOBIG);
    assert_int_equal(sb.len, 3);
    assert_string_equal(mem, "abc"); /* the truncated piece is taken back */
    ferry_strbuf_puts(&sb, "d");     /* would fit, but the failure sticks */
    ferry_strbuf_append(&sb, "e", 1);
    ferry_strbuf_fill(&sb, 'f', 1);
    assert_int_equal(sb.len, 3);
    assert_string_equal(mem, "abc");
    for (size_t i = 8; i < sizeof(mem); i++)
        assert_int_equal(mem[i], 'Z'); /* nothing past cap */
}

static void append_and_fill_bounds(void **state)
{
    (void)state;
    char mem[5];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, mem, sizeof(mem));
    ferry_strbuf_fill(&sb, ' ', 4);
    assert_int_equal(ferry_strbuf_error(&sb), 0);
    assert_string_equal(mem, "    ");
    ferry_strbuf_init(&sb, mem, sizeof(mem));
    ferry_strbuf_fill(&sb, ' ', 5);
    assert_int_equal(ferry_strbuf_error(&sb), -FERRY_ETOOBIG);
    assert_string_equal(mem, "");
    ferry_strbuf_init(&sb, mem, sizeof(mem));
    ferry_strbuf_append(&sb, "abcde", 5);
    assert_int_equal(ferry_strbuf_error(&sb), -FERRY_ETOOBIG);
    assert_int_equal(sb.len, 0);
    ferry_strbuf_init(&sb, mem, 1);
    ferry_strbuf_append(&sb, "", 0);
    assert_int_equal(ferry_strbuf_error(&sb), 0);
    ferry_strbuf_puts(&sb, "x");
    assert_int_equal(ferry_strbuf_error(&sb), -FERRY_ETOOBIG);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(fits_exactly),
    cmocka_unit_test(one_past_fails_and_sticks),
    cmocka_unit_test(append_and_fill_bounds),
};

FERRY_TEST_MAIN(tests)
