/* lib/socket/packet.c under allocation failure (nghttp2's failmalloc): the Nth allocation
 * fails, for every N until the whole exchange needs no more. Each run must end with a clean
 * error (or success) and, checked by LeakSanitizer at exit, free everything it took. cJSON
 * allocates through ferry's allocator too (ferry_set_allocator installs its hooks). */
#include "ferry_test.h"
#include "failmalloc.h"

#include <stdlib.h>

#include "socket/packet.h"

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
                /* Copies that keep the bytes (ferry_json_dup), in both forms. */
                cJSON *c1 = ferry_json_dup(p.data, 0);
                cJSON *c2 = c1 != NULL ? ferry_json_dup(c1, FERRY_JSON_BASE64) : NULL;
                if (c2 != NULL) {
                    unsigned char out[3];
                    size_t n = sizeof(out);
                    int grc = ferry_binary_get(cJSON_GetArrayItem(c2, 1), out, &n);
                    assert_true(grc == 0 || grc == -FERRY_ENOMEM); /* decodes the base64 */
                    if (grc == 0) {
                        assert_memory_equal(out, bytes, 3);
                        ok = 1;
                    }
                }
                cJSON_Delete(c2);
                cJSON_Delete(c1);
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
    assert_int_equal(failmalloc_install(), 0);
    int runs = 0;
    for (long n = 0; n < 10000; n++) {
        failmalloc_countdown = n;
        failmalloc_failed = 0;
        int ok = exchange();
        runs++;
        if (!failmalloc_failed) {
            assert_true(ok); /* no failure injected: it must have worked */
            break;
        }
    }
    failmalloc_countdown = -1;
    assert_true(runs > 10); /* the exchange does allocate: the loop really injected failures */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(every_allocation_fails_once),
};

FERRY_TEST_MAIN(tests)
