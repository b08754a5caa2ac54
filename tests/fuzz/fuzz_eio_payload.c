/* libFuzzer driver for the Engine.IO payload decoder (lib/engine/packet.c), differential:
 * the input is decoded whole and again split at a point chosen by its first byte, and both
 * must give the same packets or the same error. A packet size bound of 64 bytes keeps the
 * bound path busy. ASan/UBSan catch the rest. Input: 1 byte split selector, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/packet.h"
#include "ferry.h"

#define MAX_PACKET 64

typedef struct trace {
    uint8_t *buf;
    size_t len, cap;
} trace;

static void put(trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = (t->len + n) * 2;
        uint8_t *nb = realloc(t->buf, cap);
        if (nb == NULL)
            abort();
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static int on_packet(void *ud, const eio_packet *pkt)
{
    trace *t = ud;
    if (pkt->type < 0 || pkt->type > 6 || (pkt->binary && pkt->type != EIO_MESSAGE) ||
        pkt->len > MAX_PACKET)
        abort(); /* the decoder promised none of these */
    uint8_t head[2] = {(uint8_t)pkt->type, (uint8_t)pkt->binary};
    size_t len = pkt->len;
    put(t, head, sizeof(head));
    put(t, &len, sizeof(len));
    put(t, pkt->data, pkt->len);
    return 0;
}

static int decode(const uint8_t *body, size_t len, size_t split, trace *t)
{
    char *copy = malloc(len + 1); /* decoding is in place */
    if (copy == NULL)
        abort();
    if (len > 0)
        memcpy(copy, body, len);
    eio_payload_decoder d;
    eio_payload_decoder_init(&d, MAX_PACKET, on_packet, t);
    int rc = eio_payload_feed(&d, copy, split);
    if (rc == 0)
        rc = eio_payload_feed(&d, copy + split, len - split);
    if (rc == 0)
        rc = eio_payload_finish(&d);
    eio_payload_decoder_free(&d);
    free(copy);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    size_t split = len ? data[0] % (len + 1) : 0;
    trace whole = {0}, pieces = {0};
    int a = decode(body, len, len, &whole);
    int b = decode(body, len, split, &pieces);
    if (a != b || whole.len != pieces.len ||
        (whole.len > 0 && memcmp(whole.buf, pieces.buf, whole.len) != 0))
        abort(); /* the split changed the outcome */
    free(whole.buf);
    free(pieces.buf);
    return 0;
}
