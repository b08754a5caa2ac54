/* Socket.IO v5 packets (sans-I/O): the encoder and the decoder of socket.io-parser's format
 *
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 *
 * followed, for BINARY_EVENT and BINARY_ACK, by that many binary Engine.IO messages.
 * PROTOCOL.md "Socket.IO v5" lists the rules; every violation is an error, and the socket layer
 * closes the Engine.IO session on any error (the spec: "the receiver MUST close the
 * connection").
 *
 * Binary arguments are ferry_binary_new() objects in the cJSON tree (ferry.h "Binary
 * arguments"): the encoder swaps them for {"_placeholder":true,"num":i} and emits their bytes
 * as attachments (copied from the argument, no base64); the decoder puts each attachment's
 * bytes back in the same form (copied from the message, no base64). */
#ifndef FERRY_SOCKET_PACKET_H
#define FERRY_SOCKET_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "common/buf.h"
#include "ferry.h"

enum {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
};

#define SIO_NO_ID (-1)
/* Ack ids are JavaScript numbers on the other side: keep them exact there. */
#define SIO_MAX_ID 9007199254740991LL
/* A hard ceiling on attachments whatever the configuration says. */
#define SIO_MAX_ATTACHMENTS_CEILING 1000

typedef struct sio_packet {
    int type;
    char *nsp;          /* owned, NUL-terminated; "/" for the main namespace */
    int64_t id;         /* SIO_NO_ID when absent */
    cJSON *data;        /* owned; NULL when the packet has no payload */
    unsigned nattach;   /* attachments announced (binary types) */
} sio_packet;

void sio_packet_clear(sio_packet *p);

/* ---- decoder */

typedef struct sio_decoder {
    unsigned max_attachments;
    size_t max_name;      /* bytes of a namespace name */
    sio_packet pending;   /* a binary packet waiting for its attachments */
    cJSON **slots;        /* placeholders of pending, by attachment index (owned array) */
    unsigned got;         /* attachments received */
    int waiting;          /* pending is in use */
} sio_decoder;

void sio_decoder_init(sio_decoder *d, unsigned max_attachments);
void sio_decoder_free(sio_decoder *d);

/* Decode one text message (an Engine.IO message packet's data, without its "4"). Returns 1 and
 * fills *out (the caller owns it; sio_packet_clear() it) when a packet is complete, 0 when it
 * waits for attachments, -FERRY_EPROTO for a malformed packet, -FERRY_ELIMIT for too many
 * attachments, -FERRY_ENOMEM. After an error the decoder must not be used again (the session
 * closes). */
int sio_decode_text(sio_decoder *d, const char *p, size_t len, sio_packet *out);
/* Decode one binary message: an attachment of the waiting packet. Same returns; a binary
 * message with no packet waiting is -FERRY_EPROTO. */
int sio_decode_binary(sio_decoder *d, const void *p, size_t len, sio_packet *out);

/* ---- encoder
 *
 * An encoded packet is the Engine.IO message ("4" + the Socket.IO text) followed by its binary
 * attachments, each a refcounted ferry_buf ready for ferry_engine_queue(). Built once and
 * shared by every recipient of a broadcast. */
#define SIO_ENC_INLINE 4
typedef struct sio_encoded {
    size_t n;                        /* buffers in bufs: 1 + attachments */
    ferry_buf **bufs;                /* = inline_bufs, or allocated beyond SIO_ENC_INLINE */
    ferry_buf *inline_bufs[SIO_ENC_INLINE];
} sio_encoded;

/* Encode type/nsp/id with data as the payload (NULL: none). data is borrowed and not changed.
 * For SIO_EVENT and SIO_ACK the type becomes BINARY_* when data holds binary arguments.
 * Returns 0, -FERRY_EINVAL or -FERRY_ENOMEM. */
int sio_encode(int type, const char *nsp, int64_t id, const cJSON *data, sio_encoded *out);
/* An EVENT whose payload is [event, ...args] without building that array: args (an array or
 * NULL) is borrowed. */
int sio_encode_event(const char *nsp, int64_t id, const char *event, const cJSON *args,
                     sio_encoded *out);
/* The same with offset (digits only) appended as a last string argument (recovery). */
int sio_encode_event_offset(const char *nsp, const char *event, const cJSON *args,
                            const char *offset, sio_encoded *out);
/* Total bytes of the encoded packet (for max_payload checks). */
size_t sio_encoded_size(const sio_encoded *e);
void sio_encoded_release(sio_encoded *e);

/* Is event a name Socket.IO reserves (connect, connect_error, disconnect, disconnecting,
 * newListener, removeListener)? */
int sio_reserved_event(const char *event);

/* ---- binary arguments (binary.c; ferry.h "Binary arguments") */
#define SIO_BINARY_KEY "_ferry_binary"
/* Is item a binary argument (either form)? */
int sio_binary_is(const cJSON *item);
/* The bytes of a binary argument in the bytes form (borrowed: valid while item lives), or NULL
 * (not a binary argument, or the text form). */
const void *sio_binary_raw(const cJSON *item, size_t *len);
/* The base64 of a binary argument in the text form, or NULL (not one, or the bytes form). */
const char *sio_binary_b64(const cJSON *item);
/* Make obj (its members are replaced) a binary argument holding a copy of len bytes. */
int sio_binary_fill(cJSON *obj, const void *data, size_t len);
/* Decode base64 text into a new buffer *out. Returns the length or -FERRY_EINVAL/-ENOMEM. */
long sio_binary_decode(const char *b64, ferry_buf **out);

#endif
