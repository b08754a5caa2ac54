/* Engine.IO v4 packets and payloads (sans-I/O: bytes in, packets out; no socket, timer or
 * global). PROTOCOL.md "Packet types" and "Polling encoding".
 *
 * A packet on a text transport is one ASCII type digit and its data ("4hello"), or a binary
 * message as "b" + base64 ("bAQIDBA=="). A polling payload joins packets with the record
 * separator 0x1e. On WebSocket a binary frame is the raw bytes of a message. */
#ifndef FERRY_ENGINE_PACKET_H
#define FERRY_ENGINE_PACKET_H

#include <stddef.h>

#include "common/buf.h"

enum {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
};

#define EIO_SEPARATOR '\x1e'

typedef struct eio_packet {
    int type;         /* EIO_* */
    const char *data; /* after the type digit, or the decoded bytes of a binary message */
    size_t len;
    int binary;       /* 1 for a binary message */
} eio_packet;

/* Decode one text-transport packet of len bytes at p. A "b" packet is base64-decoded in
 * place, so p must be writable and out->data points into it. Returns 0 or -FERRY_EPROTO
 * (empty, unknown type, bad base64). */
int eio_packet_decode(char *p, size_t len, eio_packet *out);

/* Called for each decoded packet; return 0 to go on, anything else to stop decoding. */
typedef int (*eio_packet_cb)(void *ud, const eio_packet *pkt);

/* An incremental payload decoder: feed the body in pieces of any size, then finish. A packet
 * split across pieces is gathered in a buffer bounded by max bytes. */
typedef struct eio_payload_decoder {
    ferry_vec partial;
    size_t max;
    size_t count; /* packets delivered */
    int stopped;  /* an error or the callback stopped decoding */
    eio_packet_cb cb;
    void *ud;
} eio_payload_decoder;

void eio_payload_decoder_init(eio_payload_decoder *d, size_t max, eio_packet_cb cb, void *ud);
/* Decode what data completes; data is modified in place. Returns 0, -FERRY_EPROTO,
 * -FERRY_ETOOBIG, -FERRY_ENOMEM, or -FERRY_ECALLBACK when the callback stopped. */
int eio_payload_feed(eio_payload_decoder *d, char *data, size_t len);
/* The end of the payload: decodes the last packet. An empty payload is an error. */
int eio_payload_finish(eio_payload_decoder *d);
void eio_payload_decoder_free(eio_payload_decoder *d);

/* A text packet: the type digit followed by len bytes of data. NULL when out of memory. */
ferry_buf *eio_packet_new(int type, const void *data, size_t len);
/* A binary message packet: the raw bytes, flagged FERRY_BUF_BINARY. */
ferry_buf *eio_binary_new(const void *data, size_t len);
/* The form of pkt for a text transport: pkt itself for a text packet; for a binary message,
 * "b" + base64, built once and kept on pkt (pkt->alt). The result is borrowed from pkt.
 * NULL when out of memory. */
ferry_buf *eio_text_form(ferry_buf *pkt);

#endif
