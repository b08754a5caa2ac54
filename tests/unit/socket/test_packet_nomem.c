/* lib/socket/packet.c under allocation failure (nghttp2's failmalloc): the Nth allocation
 * fails, for every N until the whole exchange needs no more. Each run must end with a clean
 * error (or success) and, checked by LeakSanitizer at exit, free everything it took. cJSON
 * allocates through ferry's allocator too (ferry_set_allocator installs its hooks). */
#include "ferry_test.h"

#include <stdlib.h>

#include "socket/packet.h"

static long countdown = -1; /* allocations left before one fails; -1: never */
static int failed;

static int should_fail(void)
{
    if (countdown < 0)
        return 0;
    if (countdown-- == 0) {
        failed = 1;
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static void *t_calloc(size_t a, size_t b)
{
    return should_fail() ? NULL : calloc(a, b);
}

static void t_free(void *p)
{
    free(p);
}

static const unsigned char bytes[] = {1, 2, 3, 4, 5, 6};

/* Decode a binary event with two attachments, then encode a binary ack of its arguments.
 * Returns 1 when everything succeeded. */
static int exchange(void)
{
    static const char text[] = "52-/admin,77[\"e\",{\"_placeholder\":true,\"num\":0},"
                               "{\"k\":[{\"_placeholder\":true,\"num\":1}]}]";
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    int ok = 0;
    int rc = sio_decode_text(&d, text, sizeof(text) - 1, &p);
    /* cJSON cannot tell a parse error from a failed allocation: -FERRY_EPROTO, and the
     * session would close as for bad input, which is what an allocation failure does too. */
    assert_true(rc == 0 || rc == -FERRY_ENOMEM || rc == -FERRY_EPROTO);
    if (rc == 0) {
        rc = sio_decode_binary(&d, bytes, 3, &p);
        assert_true(rc == 0 || rc == -FERRY_ENOMEM);
    }
    if (rc == 0) {
        rc = sio_decode_binary(&d, bytes + 3, 3, &p);
        assert_true(rc == 1 || rc == -FERRY_ENOMEM);
    }
    if (rc == 1) {
        sio_encoded e;
        int erc = sio_encode(SIO_ACK, p.nsp, p.id, p.data, &e);
        assert_true(erc == 0 || erc == -FERRY_ENOMEM);
        if (erc == 0) {
            assert_int_equal(e.n, 3);
            sio_encoded_release(&e);
            sio_encoded e2;
            erc = sio_encode_event(p.nsp, 5, "again", p.data, &e2);
            assert_true(erc == 0 || erc == -FERRY_ENOMEM);
            if (erc == 0) {
                sio_encoded_release(&e2);
                ok = 1;
            }
        }
        sio_packet_clear(&p);
    }
    sio_decoder_free(&d);
    return ok;
}

static void every_allocation_fails_once(void **state)
{
    (void)state;
    assert_int_equal(ferry_set_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
    int runs = 0;
    for (long n = 0; n < 10000; n++) {
        countdown = n;
        failed = 0;
        int ok = exchange();
        runs++;
        if (!failed) {
            assert_true(ok); /* no failure injected: it must have worked */
            break;
        }
    }
    countdown = -1;
    assert_true(runs > 10); /* the exchange does allocate: the loop really injected failures */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(every_allocation_fails_once),
};

FERRY_TEST_MAIN(tests)
