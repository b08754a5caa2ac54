/* WebSocket frames (RFC 6455 section 5): a sans-I/O incremental parser and the header writer.
 *
 * Bytes are pushed in any split (one byte at a time works); events come out through two
 * callbacks. The parser owns no socket or timer (nghttp2/llhttp style) and no heap memory
 * except, for as long as it lasts, a control frame's payload split over feeds (ws_parser_free
 * gives it back when the parser is dropped in the middle of one), and it
 * enforces everything the frame layer can see: client masking, RSV bits, reserved opcodes,
 * control frames (FIN set, at most 125 bytes), continuation rules, and the message size and
 * fragment count limits. UTF-8 and decompression belong to the message layer (stream.h),
 * which gets payload chunks as soon as they arrive, even from an unfinished frame, so that it
 * can fail fast (Autobahn 6.4.x). */
#ifndef FERRY_WS_FRAME_H
#define FERRY_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never on the wire: a close frame without a code */
    WS_CLOSE_ABNORMAL = 1006,  /* never on the wire: the TCP connection ended without close */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

#define WS_MAX_HEADER 14     /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_MAX_CONTROL 125   /* control frame payload bound */
#define WS_STOP 1            /* a callback's "stop parsing here, no error" */

typedef struct ws_parser_callbacks {
    /* A chunk of a data message's payload, unmasked in place. opcode is the message's (text or
     * binary, also for continuation frames), compressed is RSV1 of its first frame. fin is 1 on
     * the last chunk of the message (len may then be 0). Return 0, WS_STOP, or a close code
     * (1002, 1007, 1009) to fail the connection. */
    int (*on_data)(void *ud, int opcode, int compressed, char *data, size_t len, int fin);
    /* A whole control frame (ping, pong, close); data is valid during the call. Same
     * returns. */
    int (*on_control)(void *ud, int opcode, char *data, size_t len);
} ws_parser_callbacks;

typedef enum ws_parser_state {
    WS_PS_HEADER,  /* gathering the 2..14 header bytes */
    WS_PS_PAYLOAD, /* remaining payload bytes of the current frame */
    WS_PS_DONE,    /* failed or stopped: input is ignored */
} ws_parser_state;

typedef struct ws_parser {
    /* Laid out without holes: one per WebSocket connection, idle ones included. */
    ws_parser_state state;
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t hdr_len;  /* bytes gathered */
    uint8_t hdr_need; /* bytes the header has, known after byte 2 */
    /* The current frame. */
    uint8_t fin, rsv1, opcode;
    /* The data message in progress (msg_opcode 0: none). */
    uint8_t msg_opcode, msg_compressed;
    uint8_t ctrl_len;    /* control payload bytes gathered in ctrl */
    uint8_t allow_rsv1;  /* permessage-deflate was negotiated */
    uint8_t from_server; /* client side (tools/ferry-bench): frames must come unmasked */
    uint8_t mask[4];
    uint64_t remaining;
    uint64_t offset; /* payload bytes seen: the mask index */
    uint64_t msg_bytes;
    uint32_t msg_frames;
    /* Limits and settings. */
    uint32_t max_fragments; /* non-empty frames of one message (empty ones are not counted) */
    uint64_t max_message;   /* payload bytes of one message on the wire */
    int error;              /* the close code that failed the parse, or 0 */
    /* A control frame's payload split over several feeds, gathered whole (WS_MAX_CONTROL
     * bytes, allocated at the split and freed when the frame ends; NULL otherwise). A control
     * frame whose payload arrives in one feed is handed on in place. */
    char *ctrl;
    const ws_parser_callbacks *cb;
    void *ud;
} ws_parser;

void ws_parser_init(ws_parser *p, const ws_parser_callbacks *cb, void *ud, uint64_t max_message,
                    uint32_t max_fragments);
/* Free what an unfinished control frame gathered (nothing otherwise). The parser may be fed
 * again after it. */
void ws_parser_free(ws_parser *p);

/* Parse len bytes (unmasked in place, so data must be writable). Returns 0 when every byte was
 * taken (a partial frame is kept inside), WS_STOP when a callback stopped the parser, or the
 * close code of the first violation (then every later call returns it too). *consumed tells
 * how many bytes were used. */
int ws_parser_execute(ws_parser *p, char *data, size_t len, size_t *consumed);

/* Write an unmasked server frame header for a payload of len bytes into out; returns its size
 * (2, 4 or 10). */
size_t ws_frame_header(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len);

/* Is code acceptable in a close frame received from the peer? (RFC 6455 7.4, IANA registry.) */
int ws_close_code_valid(unsigned code);

#endif
