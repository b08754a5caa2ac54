/* The WebSocket message layer over the frame parser (wslay's event layer over its frame
 * layer), still sans-I/O: bytes in through ws_stream_feed(), whole messages out through
 * on_message, and every byte to send handed to the write callback.
 *
 * It reassembles fragments (bounded by max_message), validates text as UTF-8 as each chunk
 * arrives, inflates permessage-deflate messages with a bound on the inflated size, answers
 * pings, runs the closing handshake, and fails the connection with the right code:
 * 1002 protocol, 1007 bad UTF-8, 1009 too big. Server frames are never masked, so a shared
 * payload is framed without a copy: a small header slice, then the payload's own slice. */
#ifndef FERRY_WS_STREAM_H
#define FERRY_WS_STREAM_H

#include "common/buf.h"
#include "common/utf8.h"
#include "ws/deflate.h"
#include "ws/frame.h"

typedef struct ws_stream ws_stream;

typedef struct ws_stream_callbacks {
    /* A whole message; data is valid during the call. The callback may send and close. */
    void (*on_message)(ws_stream *s, const char *data, size_t len, int binary);
    /* Write the slices in order; retain each ref for as long as the bytes are needed. A
     * slice without a ref (a frame header, at most WS_MAX_HEADER bytes) lives only during
     * the call: a writer that keeps it copies it. */
    int (*write)(ws_stream *s, const ferry_slice *sl, size_t n);
    /* The closing handshake is over, or the connection failed: close the TCP connection once
     * what was written has gone. code: the peer's close code (1005 when it gave none) or the
     * code we failed with. Called once. */
    void (*on_end)(ws_stream *s, int code);
} ws_stream_callbacks;

typedef enum ws_stream_state {
    WS_STREAM_OPEN,
    WS_STREAM_CLOSE_SENT, /* we sent close and wait for the peer's */
    WS_STREAM_CLOSED,     /* on_end was called */
} ws_stream_state;

/* One message to send: bytes kept alive by ref (NULL for memory outliving the write). */
typedef struct ws_msg {
    const char *base;
    size_t len;
    ferry_buf *ref;
    int binary;
} ws_msg;

struct ws_stream {
    ws_parser parser; /* its max_message bounds a message, inflated too */
    const ws_stream_callbacks *cb;
    ferry_vec msg;       /* the message being reassembled (or inflated) */
    size_t utf8_done;    /* bytes of msg already validated (inflated text) */
    ws_deflate *deflate; /* NULL: not negotiated */
    size_t deflate_threshold;
    ws_stream_state state;
    int end_code;
    ferry_utf8 utf8; /* of the text message in progress */
};

/* max_message bounds one message (inflated), max_fragments its frame count. */
void ws_stream_init(ws_stream *s, const ws_stream_callbacks *cb, size_t max_message,
                    uint32_t max_fragments);
/* Use permessage-deflate (takes d); messages of at least threshold bytes are compressed. */
void ws_stream_set_deflate(ws_stream *s, ws_deflate *d, size_t threshold);
void ws_stream_free(ws_stream *s);

/* Feed bytes read from the peer (modified in place). Returns 0, or -FERRY_ECLOSED once the
 * stream has ended (the rest of the input is ignored). */
int ws_stream_feed(ws_stream *s, char *data, size_t len);

/* Send n messages with one write call. Returns 0, -FERRY_ECLOSED (a close was sent or
 * received) or -FERRY_ENOMEM. */
int ws_stream_send(ws_stream *s, const ws_msg *m, size_t n);

/* Start the closing handshake with code (0: no code) and a reason (at most 123 bytes, UTF-8).
 * Returns 0 or -FERRY_ECLOSED when already closing. */
int ws_stream_close(ws_stream *s, int code, const char *reason);

/* End the stream with a failure code at once: a close frame with the code, then on_end. */
void ws_stream_fail(ws_stream *s, int code);

#endif
