#include "ws/stream.h"

#include <string.h>

#include "common/mem.h"
#include "ferry.h"

/* A reassembly buffer grown past this is given back after its message, so that one large
 * message does not pin megabytes to an idle connection. */
#define KEEP_MSG_CAP (64 * 1024)
/* Messages framed per write on the stack (the WebSocket transport's batch); more take heap
 * arrays. A heap array of a few KB is not only a malloc: glibc consolidates every small free
 * chunk (a broadcast's queue entries) before serving a request that large. */
#define SMALL_BATCH 64
/* A server frame's header: 2, 4 or 10 bytes (no mask). */
#define WS_SERVER_HEADER 10

static void reset_message(ws_stream *s)
{
    if (s->msg.cap > KEEP_MSG_CAP)
        ferry_vec_free(&s->msg);
    s->msg.len = 0;
    s->utf8_done = 0;
    ferry_utf8_init(&s->utf8);
}

/* Write one control frame (close, pong) with its payload copied. */
static int send_control(ws_stream *s, int opcode, const char *a, size_t alen, const char *b,
                        size_t blen)
{
    ferry_buf *f = ferry_buf_new(2 + alen + blen);
    if (f == NULL)
        return -FERRY_ENOMEM;
    size_t h = ws_frame_header((uint8_t *)f->data, 1, 0, opcode, alen + blen);
    if (alen)
        memcpy(f->data + h, a, alen);
    if (blen)
        memcpy(f->data + h + alen, b, blen);
    f->len = h + alen + blen;
    ferry_slice sl = {f->data, f->len, f};
    int rc = s->cb->write(s, &sl, 1);
    ferry_buf_release(f);
    return rc;
}

static int send_close(ws_stream *s, int code, const char *reason)
{
    if (code == 0)
        return send_control(s, WS_OP_CLOSE, NULL, 0, NULL, 0);
    char c[2] = {(char)(code >> 8), (char)code};
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CONTROL - 2)
        rlen = WS_MAX_CONTROL - 2;
    return send_control(s, WS_OP_CLOSE, c, 2, reason, rlen);
}

static void end(ws_stream *s, int code)
{
    if (s->state == WS_STREAM_CLOSED)
        return;
    s->state = WS_STREAM_CLOSED;
    s->end_code = code;
    s->cb->on_end(s, code);
}

void ws_stream_fail(ws_stream *s, int code)
{
    if (s->state == WS_STREAM_CLOSED)
        return;
    if (s->state == WS_STREAM_OPEN)
        send_close(s, code, NULL);
    end(s, code);
}

static int deliver(ws_stream *s, const char *data, size_t len, int binary)
{
    /* After our close frame the application has said it is done: data is read, not handed
     * up (RFC 6455 7.1.2 lets the peer send until it sees our close). */
    if (s->state == WS_STREAM_OPEN)
        s->cb->on_message(s, data, len, binary);
    return s->state == WS_STREAM_CLOSED ? WS_STOP : 0;
}

static int on_data(void *ud, int opcode, int compressed, char *data, size_t len, int fin)
{
    ws_stream *s = ud;
    int text = opcode == WS_OP_TEXT;
    if (s->state == WS_STREAM_CLOSED)
        return WS_STOP;
    if (compressed) {
        if (s->deflate == NULL)
            return WS_CLOSE_PROTOCOL;
        int rc = ws_deflate_inflate(s->deflate, data, len, fin, &s->msg,
                                    (size_t)s->parser.max_message);
        if (rc == -FERRY_ETOOBIG)
            return WS_CLOSE_TOO_BIG;
        if (rc == -FERRY_ENOMEM)
            return WS_CLOSE_INTERNAL;
        if (rc != 0)
            return WS_CLOSE_INVALID_DATA; /* corrupt compressed data: the payload is bad */
        /* Validate what inflating added, as it comes. */
        if (text && ferry_utf8_feed(&s->utf8, (const uint8_t *)s->msg.base + s->utf8_done,
                                    s->msg.len - s->utf8_done) != 0)
            return WS_CLOSE_INVALID_DATA;
        s->utf8_done = s->msg.len;
    } else {
        if (text && ferry_utf8_feed(&s->utf8, (const uint8_t *)data, len) != 0)
            return WS_CLOSE_INVALID_DATA;
        if (fin && s->msg.len == 0) {
            /* A message whole in this read: deliver it from the input, no copy. */
            if (text && !ferry_utf8_complete(&s->utf8))
                return WS_CLOSE_INVALID_DATA;
            ferry_utf8_init(&s->utf8);
            return deliver(s, data ? data : "", len, !text);
        }
        int rc = ferry_vec_append(&s->msg, data, len, (size_t)s->parser.max_message);
        if (rc == -FERRY_ETOOBIG)
            return WS_CLOSE_TOO_BIG;
        if (rc != 0)
            return WS_CLOSE_INTERNAL;
    }
    if (!fin)
        return 0;
    if (text && !ferry_utf8_complete(&s->utf8))
        return WS_CLOSE_INVALID_DATA;
    int rc = deliver(s, s->msg.base ? s->msg.base : "", s->msg.len, !text);
    reset_message(s);
    return rc;
}

static int on_close_frame(ws_stream *s, char *data, size_t len)
{
    int code = WS_CLOSE_NO_STATUS;
    if (len == 1)
        return WS_CLOSE_PROTOCOL;
    if (len >= 2) {
        code = (uint8_t)data[0] << 8 | (uint8_t)data[1];
        if (!ws_close_code_valid((unsigned)code))
            return WS_CLOSE_PROTOCOL;
        if (!ferry_utf8_valid(data + 2, len - 2))
            return WS_CLOSE_INVALID_DATA;
    }
    if (s->state == WS_STREAM_OPEN) {
        /* Echo the peer's code (RFC 6455 5.5.1), then the TCP side closes first. */
        if (code == WS_CLOSE_NO_STATUS)
            send_close(s, 0, NULL);
        else
            send_control(s, WS_OP_CLOSE, data, 2, NULL, 0);
    }
    end(s, code);
    return WS_STOP;
}

static int on_control(void *ud, int opcode, char *data, size_t len)
{
    ws_stream *s = ud;
    if (s->state == WS_STREAM_CLOSED)
        return WS_STOP;
    switch (opcode) {
    case WS_OP_PING:
        if (s->state == WS_STREAM_OPEN && send_control(s, WS_OP_PONG, data, len, NULL, 0) != 0)
            return WS_CLOSE_INTERNAL;
        return 0;
    case WS_OP_PONG:
        return 0; /* unsolicited pongs are allowed and ignored */
    default:
        return on_close_frame(s, data, len);
    }
}

static const ws_parser_callbacks parser_cb = {on_data, on_control};

void ws_stream_init(ws_stream *s, const ws_stream_callbacks *cb, size_t max_message,
                    uint32_t max_fragments)
{
    memset(s, 0, sizeof(*s));
    s->cb = cb;
    ws_parser_init(&s->parser, &parser_cb, s, max_message, max_fragments);
    ferry_utf8_init(&s->utf8);
}

void ws_stream_set_deflate(ws_stream *s, ws_deflate *d, size_t threshold)
{
    s->deflate = d;
    s->deflate_threshold = threshold;
    s->parser.allow_rsv1 = d != NULL;
}

void ws_stream_free(ws_stream *s)
{
    ws_parser_free(&s->parser);
    ferry_vec_free(&s->msg);
    ws_deflate_free(s->deflate);
    s->deflate = NULL;
}

int ws_stream_feed(ws_stream *s, char *data, size_t len)
{
    if (s->state == WS_STREAM_CLOSED)
        return -FERRY_ECLOSED;
    size_t used;
    int rc = ws_parser_execute(&s->parser, data, len, &used);
    if (rc >= WS_CLOSE_NORMAL)
        ws_stream_fail(s, rc);
    return s->state == WS_STREAM_CLOSED ? -FERRY_ECLOSED : 0;
}

int ws_stream_send(ws_stream *s, const ws_msg *m, size_t n)
{
    if (s->state != WS_STREAM_OPEN)
        return -FERRY_ECLOSED;
    if (n == 0)
        return 0;
    /* The headers are built here, on the stack for a small batch, and passed without a
     * reference: the writer copies them only if they must wait (FERRY_CONN_COPY_MAX), so a
     * write the kernel takes at once allocates nothing. Each payload keeps its own shared
     * buffer (for a broadcast, one buffer for every recipient). */
    char small_hdr[SMALL_BATCH * WS_SERVER_HEADER];
    ferry_slice small[2 * SMALL_BATCH];
    char *hdr = n <= SMALL_BATCH ? small_hdr : ferry_mem_alloc(n * WS_SERVER_HEADER);
    ferry_slice *sl = n <= SMALL_BATCH ? small : ferry_mem_alloc(2 * n * sizeof(*sl));
    ferry_buf **comp = NULL;
    int rc = -FERRY_ENOMEM;
    if (hdr == NULL || sl == NULL)
        goto out;
    if (s->deflate != NULL) {
        comp = ferry_mem_calloc(n, sizeof(*comp));
        if (comp == NULL)
            goto out;
    }
    size_t off = 0, ns = 0;
    for (size_t i = 0; i < n; i++) {
        const char *base = m[i].base;
        size_t len = m[i].len;
        ferry_buf *ref = m[i].ref;
        int rsv1 = 0;
        if (comp != NULL && len >= s->deflate_threshold) {
            comp[i] = ws_deflate_compress(s->deflate, base, len);
            if (comp[i] == NULL)
                goto out;
            base = comp[i]->data;
            len = comp[i]->len;
            ref = comp[i];
            rsv1 = 1;
        }
        size_t h = ws_frame_header((uint8_t *)hdr + off, 1, rsv1,
                                   m[i].binary ? WS_OP_BINARY : WS_OP_TEXT, len);
        sl[ns++] = (ferry_slice){hdr + off, h, NULL};
        off += h;
        if (len > 0)
            sl[ns++] = (ferry_slice){base, len, ref};
    }
    rc = s->cb->write(s, sl, ns);
out:
    if (comp != NULL) {
        for (size_t i = 0; i < n; i++)
            ferry_buf_release(comp[i]);
        ferry_mem_free(comp);
    }
    if (sl != small)
        ferry_mem_free(sl);
    if (hdr != small_hdr)
        ferry_mem_free(hdr);
    return rc;
}

int ws_stream_close(ws_stream *s, int code, const char *reason)
{
    if (s->state != WS_STREAM_OPEN)
        return -FERRY_ECLOSED;
    s->state = WS_STREAM_CLOSE_SENT;
    int rc = send_close(s, code, reason);
    if (rc != 0) {
        /* No close frame went out (out of memory, or the connection failed): there is no
         * answer to wait for, so the stream ends now rather than at the close timeout. */
        end(s, WS_CLOSE_ABNORMAL);
        return rc;
    }
    return 0;
}
