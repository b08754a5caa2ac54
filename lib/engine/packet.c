#include "engine/packet.h"

#include <string.h>

#include "common/base64.h"
#include "common/mem.h"
#include "ferry.h"

int eio_packet_decode(char *p, size_t len, eio_packet *out)
{
    if (len == 0)
        return -FERRY_EPROTO;
    if (p[0] == 'b') {
        long n = ferry_base64_decode((uint8_t *)p, p + 1, len - 1);
        if (n < 0)
            return -FERRY_EPROTO;
        out->type = EIO_MESSAGE;
        out->data = p;
        out->len = (size_t)n;
        out->binary = 1;
        return 0;
    }
    if (p[0] < '0' || p[0] > '6')
        return -FERRY_EPROTO;
    out->type = p[0] - '0';
    out->data = p + 1;
    out->len = len - 1;
    out->binary = 0;
    return 0;
}

void eio_payload_decoder_init(eio_payload_decoder *d, size_t max, eio_packet_cb cb, void *ud)
{
    memset(d, 0, sizeof(*d));
    d->max = max;
    d->cb = cb;
    d->ud = ud;
}

static int deliver(eio_payload_decoder *d, char *p, size_t len)
{
    eio_packet pkt;
    if (eio_packet_decode(p, len, &pkt) != 0) {
        d->stopped = 1;
        return -FERRY_EPROTO;
    }
    d->count++;
    if (d->cb(d->ud, &pkt) != 0) {
        d->stopped = 1;
        return -FERRY_ECALLBACK;
    }
    return 0;
}

int eio_payload_feed(eio_payload_decoder *d, char *data, size_t len)
{
    if (d->stopped)
        return -FERRY_EPROTO;
    while (len > 0) {
        char *sep = memchr(data, EIO_SEPARATOR, len);
        if (sep == NULL) {
            /* The rest belongs to a packet that a later piece completes. */
            int rc = ferry_vec_append(&d->partial, data, len, d->max);
            if (rc != 0)
                d->stopped = 1;
            return rc;
        }
        size_t n = (size_t)(sep - data);
        int rc;
        if (d->partial.len > 0) {
            rc = ferry_vec_append(&d->partial, data, n, d->max);
            if (rc != 0) {
                d->stopped = 1;
                return rc;
            }
            rc = deliver(d, d->partial.base, d->partial.len);
            d->partial.len = 0;
        } else if (n > d->max) {
            /* The same bound as for a packet gathered from pieces: how the bytes were split
             * must not change the outcome. */
            d->stopped = 1;
            return -FERRY_ETOOBIG;
        } else {
            rc = deliver(d, data, n); /* whole in this piece: decode in place, no copy */
        }
        if (rc != 0)
            return rc;
        data = sep + 1;
        len -= n + 1;
    }
    return 0;
}

int eio_payload_finish(eio_payload_decoder *d)
{
    if (d->stopped)
        return -FERRY_EPROTO;
    /* The last packet has no separator after it; an empty one (empty body, trailing
     * separator) is an error, as the reference decoder reports. */
    int rc = deliver(d, d->partial.base ? d->partial.base : (char *)"", d->partial.len);
    d->partial.len = 0;
    d->stopped = 1;
    return rc;
}

void eio_payload_decoder_free(eio_payload_decoder *d)
{
    ferry_vec_free(&d->partial);
}

ferry_buf *eio_packet_new(int type, const void *data, size_t len)
{
    ferry_buf *b = ferry_buf_new(len + 1);
    if (b == NULL)
        return NULL;
    b->data[0] = (char)('0' + type);
    if (len > 0)
        memcpy(b->data + 1, data, len);
    return b;
}

ferry_buf *eio_binary_new(const void *data, size_t len)
{
    ferry_buf *b = ferry_buf_from(data, len);
    if (b != NULL)
        b->flags |= FERRY_BUF_BINARY;
    return b;
}

ferry_buf *eio_text_form(ferry_buf *pkt)
{
    if (!(pkt->flags & FERRY_BUF_BINARY))
        return pkt;
    if (pkt->alt == NULL) {
        ferry_buf *alt = ferry_buf_new(1 + FERRY_BASE64_LEN(pkt->len));
        if (alt == NULL)
            return NULL;
        alt->data[0] = 'b';
        alt->len = 1 + ferry_base64_encode(alt->data + 1, pkt->data, pkt->len);
        pkt->alt = alt;
    }
    return pkt->alt;
}
