/* libFuzzer target for the WebSocket frame parser and message layer (lib/ws/frame.c,
 * lib/ws/stream.c, the inflate side of lib/ws/deflate.c).
 *
 * The first input byte picks the setting: bit 0 negotiates permessage-deflate, bits 1..7 the
 * size of the pieces the rest is fed in (1..128 bytes), so splits inside headers, masks and
 * UTF-8 sequences are explored too. The rest is client bytes. Whatever comes in, the stream
 * must end in a valid state, never read or write out of bounds, and never leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/stream.h"

typedef struct sink {
    ws_stream s;
    size_t messages, written;
    int ended;
} sink;

static void on_message(ws_stream *s, const char *data, size_t len, int binary)
{
    sink *k = (sink *)s;
    k->messages++;
    /* Text handed up is always complete UTF-8. */
    if (!binary && !ferry_utf8_valid(data, len))
        abort();
    if (k->messages % 7 == 0) {
        ws_msg m = {data, len, NULL, binary};
        ws_stream_send(s, &m, 1);
    }
}

static int on_write(ws_stream *s, const ferry_slice *sl, size_t n)
{
    sink *k = (sink *)s;
    for (size_t i = 0; i < n; i++)
        k->written += sl[i].len;
    return 0;
}

static void on_end(ws_stream *s, int code)
{
    sink *k = (sink *)s;
    if (k->ended++)
        abort(); /* on_end is called once */
    if (code != 1005 && !ws_close_code_valid((unsigned)code))
        abort();
}

static const ws_stream_callbacks cbs = {on_message, on_write, on_end};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    size_t piece = (size_t)(mode >> 1) + 1;
    sink k;
    memset(&k, 0, sizeof(k));
    ws_stream_init(&k.s, &cbs, 64 * 1024, 64);
    if (mode & 1) {
        ws_deflate_params p = {0, 0, 15, 15};
        ws_stream_set_deflate(&k.s, ws_deflate_new(&p), 16);
    }
    /* The parser unmasks in place: work on a copy. */
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    for (size_t off = 0; off < size - 1; off += piece) {
        size_t n = size - 1 - off < piece ? size - 1 - off : piece;
        if (ws_stream_feed(&k.s, buf + off, n) != 0)
            break;
    }
    free(buf);
    ws_stream_free(&k.s);
    return 0;
}
