#include "ws/frame.h"

#include "common/mem.h"

#include <string.h>

void ws_parser_init(ws_parser *p, const ws_parser_callbacks *cb, void *ud, uint64_t max_message,
                    uint32_t max_fragments)
{
    memset(p, 0, sizeof(*p));
    p->state = WS_PS_HEADER;
    p->cb = cb;
    p->ud = ud;
    p->max_message = max_message;
    p->max_fragments = max_fragments;
}

void ws_parser_free(ws_parser *p)
{
    ferry_mem_free(p->ctrl);
    p->ctrl = NULL;
    p->ctrl_len = 0;
}

static int is_control(int op)
{
    return op >= 0x8;
}

static int fail(ws_parser *p, int code)
{
    ws_parser_free(p);
    p->state = WS_PS_DONE;
    p->error = code;
    return code;
}

/* The first header byte says enough to refuse most bad frames before anything else arrives. */
static int check_byte0(ws_parser *p, uint8_t b0)
{
    int fin = (b0 & 0x80) != 0, rsv1 = (b0 & 0x40) != 0, op = b0 & 0x0F;
    if (b0 & 0x30)
        return WS_CLOSE_PROTOCOL; /* RSV2/RSV3: no extension defines them */
    if (op > WS_OP_BINARY && op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG)
        return WS_CLOSE_PROTOCOL; /* reserved opcodes 3-7 and 11-15 */
    if (is_control(op)) {
        if (!fin || rsv1)
            return WS_CLOSE_PROTOCOL; /* control frames are never fragmented or compressed */
        return 0;
    }
    if (op == WS_OP_CONT) {
        if (p->msg_opcode == 0 || rsv1)
            return WS_CLOSE_PROTOCOL; /* nothing to continue; RSV1 only on a first frame */
        return 0;
    }
    if (p->msg_opcode != 0)
        return WS_CLOSE_PROTOCOL; /* a new message inside an unfinished one */
    if (rsv1 && !p->allow_rsv1)
        return WS_CLOSE_PROTOCOL;
    return 0;
}

/* The header is whole: decode it, apply the limits, and start the frame. */
static int start_frame(ws_parser *p)
{
    const uint8_t *h = p->hdr;
    p->fin = (h[0] & 0x80) != 0;
    p->rsv1 = (h[0] & 0x40) != 0;
    p->opcode = h[0] & 0x0F;
    uint64_t len = h[1] & 0x7F;
    size_t pos = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        pos = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        pos = 10;
        if (len >> 63)
            return WS_CLOSE_PROTOCOL; /* the most significant bit must be 0 */
    }
    if (p->from_server)
        memset(p->mask, 0, 4);
    else
        memcpy(p->mask, h + pos, 4);
    p->remaining = len;
    p->offset = 0;
    if (is_control(p->opcode)) {
        p->ctrl_len = 0;
        return 0;
    }
    if (p->opcode != WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->msg_compressed = p->rsv1;
        p->msg_bytes = 0;
        p->msg_frames = 0;
    }
    /* A compressed message may be a little larger on the wire than the limit it inflates to. */
    uint64_t max = p->max_message;
    if (p->msg_compressed)
        max += (max >> 3) + 1024;
    /* max_fragments bounds the pieces a message's payload arrives in (a callback, a UTF-8 feed
     * and an append each). An empty frame adds none of that: it costs its 6 header bytes of
     * input, as a ping does, and is not counted, so a message of exactly max_fragments pieces
     * plus the empty final frame some clients add is whole (issue 9). */
    if ((len > 0 && ++p->msg_frames > p->max_fragments) || len > max || p->msg_bytes > max - len)
        return WS_CLOSE_TOO_BIG;
    p->msg_bytes += len;
    return 0;
}

static void unmask(ws_parser *p, char *data, size_t n)
{
    uint8_t *d = (uint8_t *)data;
    size_t i = 0;
    /* Bring the mask index to 0, then go word by word. */
    while (i < n && ((p->offset + i) & 3) != 0) {
        d[i] ^= p->mask[(p->offset + i) & 3];
        i++;
    }
    uint32_t m;
    memcpy(&m, p->mask, 4);
    uint64_t m8 = (uint64_t)m << 32 | m;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= m8;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] ^= p->mask[(p->offset + i) & 3];
    p->offset += n;
}

/* A control frame is whole: hand on its payload (data, len), then drop what was gathered. */
static int end_control(ws_parser *p, char *data, size_t len)
{
    p->state = WS_PS_HEADER;
    p->hdr_len = 0;
    int rc = p->cb->on_control(p->ud, p->opcode, data, len);
    ws_parser_free(p);
    return rc;
}

/* The frame's payload is complete (or empty): finish it. */
static int end_frame(ws_parser *p)
{
    int rc;
    if (is_control(p->opcode)) {
        char none[1] = {0}; /* an empty payload still comes with a valid pointer */
        return end_control(p, p->ctrl != NULL ? p->ctrl : none, p->ctrl_len);
    }
    p->state = WS_PS_HEADER;
    p->hdr_len = 0;
    if (!p->fin)
        return 0;
    int op = p->msg_opcode, comp = p->msg_compressed;
    p->msg_opcode = 0;
    rc = p->cb->on_data(p->ud, op, comp, NULL, 0, 1);
    return rc;
}

int ws_parser_execute(ws_parser *p, char *data, size_t len, size_t *consumed)
{
    size_t i = 0;
    int rc = 0;
    *consumed = 0;
    if (p->state == WS_PS_DONE)
        return p->error ? p->error : WS_STOP;
    while (i < len) {
        if (p->state == WS_PS_HEADER) {
            uint8_t b = (uint8_t)data[i++];
            p->hdr[p->hdr_len++] = b;
            if (p->hdr_len == 1) {
                rc = check_byte0(p, b);
                if (rc != 0)
                    break;
                continue;
            }
            if (p->hdr_len == 2) {
                unsigned l7 = b & 0x7F;
                if (!(b & 0x80) != !!p->from_server) {
                    /* A client must mask every frame, a server none (RFC 6455 5.1). */
                    rc = WS_CLOSE_PROTOCOL;
                    break;
                }
                if (is_control(p->hdr[0] & 0x0F) && l7 > WS_MAX_CONTROL) {
                    rc = WS_CLOSE_PROTOCOL;
                    break;
                }
                p->hdr_need =
                    (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (p->from_server ? 0 : 4));
                /* An unmasked header of 2 bytes is already whole: go on to start the frame. */
            }
            if (p->hdr_len < p->hdr_need)
                continue;
            rc = start_frame(p);
            if (rc != 0)
                break;
            if (p->remaining == 0) {
                rc = end_frame(p);
                if (rc != 0)
                    break;
                continue;
            }
            p->state = WS_PS_PAYLOAD;
            continue;
        }
        /* WS_PS_PAYLOAD */
        size_t n = len - i;
        if (n > p->remaining)
            n = (size_t)p->remaining;
        char *chunk = data + i;
        if (!p->from_server)
            unmask(p, chunk, n);
        i += n;
        p->remaining -= n;
        if (is_control(p->opcode)) {
            if (p->remaining == 0 && p->ctrl == NULL) {
                /* The whole payload came in this feed: hand it on where it is. */
                rc = end_control(p, chunk, n);
                if (rc != 0)
                    break;
                continue;
            }
            if (p->ctrl == NULL && (p->ctrl = ferry_mem_alloc(WS_MAX_CONTROL)) == NULL) {
                rc = WS_CLOSE_INTERNAL;
                break;
            }
            memcpy(p->ctrl + p->ctrl_len, chunk, n);
            p->ctrl_len = (uint8_t)(p->ctrl_len + n);
            if (p->remaining == 0) {
                rc = end_frame(p);
                if (rc != 0)
                    break;
            }
            continue;
        }
        int last = p->remaining == 0 && p->fin;
        rc = p->cb->on_data(p->ud, p->msg_opcode, p->msg_compressed, chunk, n, last);
        if (rc != 0)
            break;
        if (p->remaining == 0) {
            p->state = WS_PS_HEADER;
            p->hdr_len = 0;
            if (last)
                p->msg_opcode = 0;
        }
    }
    *consumed = i;
    if (rc == WS_STOP) {
        p->state = WS_PS_DONE;
        return WS_STOP;
    }
    if (rc != 0)
        return fail(p, rc);
    return 0;
}

size_t ws_frame_header(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1; /* libraries and applications */
    /* Defined by RFC 6455 or registered with IANA; 1004-1006 and 1015 must not be sent. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}
