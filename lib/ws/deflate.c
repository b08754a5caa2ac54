#include "ws/deflate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"
#include "common/strbuf.h"
#include "ferry.h"

/* ------------------------------------------------------------------ negotiation */

typedef struct offer {
    int snt, cnt; /* server/client_no_context_takeover */
    int smwb;     /* 0: absent */
    int cmwb;     /* -1: absent, 0: present without a value */
} offer;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* A window-bits value: 1*DIGIT without a leading zero, 8..15 (RFC 7692 7.1.2). */
static int parse_bits(const char *v, const char *end)
{
    if (end - v >= 2 && *v == '"' && end[-1] == '"') {
        v++;
        end--;
    }
    if (end - v < 1 || end - v > 2 || *v == '0')
        return -1;
    int n = 0;
    for (; v < end; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        n = n * 10 + (*v - '0');
    }
    return n >= 8 && n <= 15 ? n : -1;
}

static int name_is(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    return (size_t)(end - p) == n && strncasecmp(p, name, n) == 0;
}

/* Parse one offer's parameters (after the extension name). 0 when valid, -1 to decline. */
static int parse_params(const char *p, const char *end, offer *o)
{
    o->snt = o->cnt = o->smwb = 0;
    o->cmwb = -1;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *n = skip_ws(p, pe);
        const char *eq = memchr(n, '=', (size_t)(pe - n));
        const char *ne = trim_end(n, eq ? eq : pe);
        const char *v = eq ? skip_ws(eq + 1, pe) : NULL;
        const char *ve = trim_end(v ? v : pe, pe);
        if (ne == n)
            return -1; /* an empty parameter ("a;;b") */
        if (name_is(n, ne, "server_no_context_takeover")) {
            if (o->snt || v)
                return -1;
            o->snt = 1;
        } else if (name_is(n, ne, "client_no_context_takeover")) {
            if (o->cnt || v)
                return -1;
            o->cnt = 1;
        } else if (name_is(n, ne, "server_max_window_bits")) {
            if (o->smwb || !v || (o->smwb = parse_bits(v, ve)) < 0)
                return -1;
        } else if (name_is(n, ne, "client_max_window_bits")) {
            if (o->cmwb >= 0)
                return -1;
            o->cmwb = v ? parse_bits(v, ve) : 0;
            if (o->cmwb < 0)
                return -1;
        } else {
            return -1; /* a parameter this extension does not define */
        }
        p = semi ? semi + 1 : end;
    }
    return 0;
}

int ws_deflate_negotiate(const char *header, ws_deflate_params *params, char *answer,
                         size_t answer_cap)
{
    if (header == NULL)
        return 0;
    const char *p = header, *end = header + strlen(header);
    while (p < end) {
        /* Offers are separated by commas; quoted values hold no commas for this extension. */
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *oe = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(oe - p));
        const char *n = skip_ws(p, oe);
        const char *ne = trim_end(n, semi ? semi : oe);
        offer o;
        p = comma ? comma + 1 : end;
        if (!name_is(n, ne, "permessage-deflate"))
            continue;
        if (parse_params(semi ? semi + 1 : oe, oe, &o) != 0)
            continue;
        if (o.smwb == 8)
            continue; /* zlib has no raw deflate with a 256-byte window: decline */
        params->server_no_context_takeover = o.snt;
        params->client_no_context_takeover = o.cnt;
        params->server_max_window_bits = o.smwb ? o.smwb : 15;
        params->client_max_window_bits = o.cmwb < 0 ? 0 : o.cmwb ? o.cmwb : 15;
        ferry_strbuf sb;
        ferry_strbuf_init(&sb, answer, answer_cap);
        ferry_strbuf_puts(&sb, "permessage-deflate");
        if (o.snt)
            ferry_strbuf_puts(&sb, "; server_no_context_takeover");
        if (o.cnt)
            ferry_strbuf_puts(&sb, "; client_no_context_takeover");
        if (o.smwb)
            ferry_strbuf_printf(&sb, "; server_max_window_bits=%d", o.smwb);
        if (o.cmwb > 0)
            ferry_strbuf_printf(&sb, "; client_max_window_bits=%d", o.cmwb);
        return ferry_strbuf_error(&sb) == 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ zlib */

#ifdef FERRY_HAVE_ZLIB
#include <zlib.h>

struct ws_deflate {
    z_stream in;  /* inflate: client to server */
    z_stream out; /* deflate: server to client */
    ws_deflate_params params;
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return ferry_mem_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ferry_mem_free(p);
}

ws_deflate *ws_deflate_new(const ws_deflate_params *params)
{
    ws_deflate *d = ferry_mem_calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->params = *params;
    d->in.zalloc = d->out.zalloc = z_alloc;
    d->in.zfree = d->out.zfree = z_free;
    /* A 15-bit inflate window reads whatever window the client chose. */
    if (inflateInit2(&d->in, -15) != Z_OK) {
        ferry_mem_free(d);
        return NULL;
    }
    if (deflateInit2(&d->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -params->server_max_window_bits,
                     8, Z_DEFAULT_STRATEGY) != Z_OK) {
        inflateEnd(&d->in);
        ferry_mem_free(d);
        return NULL;
    }
    return d;
}

void ws_deflate_free(ws_deflate *d)
{
    if (d == NULL)
        return;
    inflateEnd(&d->in);
    deflateEnd(&d->out);
    ferry_mem_free(d);
}

/* Run inflate over n bytes, appending to out within max. */
static int inflate_some(ws_deflate *d, const char *in, size_t n, ferry_vec *out, size_t max)
{
    z_stream *z = &d->in;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    for (;;) {
        size_t room = max - out->len;
        if (room == 0) {
            /* Full: anything still coming out is over the bound. */
            unsigned char probe;
            z->next_out = &probe;
            z->avail_out = 1;
            int rc = inflate(z, Z_SYNC_FLUSH);
            if (z->avail_out == 0)
                return -FERRY_ETOOBIG;
            if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
                return -FERRY_EPROTO;
            if (rc == Z_STREAM_END)
                inflateReset(z);
            if (z->avail_in == 0 || rc == Z_BUF_ERROR)
                return 0;
            continue;
        }
        if (out->cap == out->len) {
            int rc = ferry_vec_reserve(out, room < 16384 ? room : 16384, max);
            if (rc != 0)
                return rc;
        }
        z->next_out = (Bytef *)out->base + out->len;
        z->avail_out = (uInt)(out->cap - out->len > max - out->len ? max - out->len
                                                                    : out->cap - out->len);
        uInt before = z->avail_out;
        int rc = inflate(z, Z_SYNC_FLUSH);
        out->len += before - z->avail_out;
        if (rc == Z_STREAM_END) {
            /* The client ended its deflate stream (BFINAL): start a fresh one. */
            inflateReset(z);
            if (z->avail_in == 0)
                return 0;
            continue;
        }
        if (rc == Z_BUF_ERROR && z->avail_in == 0)
            return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return rc == Z_MEM_ERROR ? -FERRY_ENOMEM : -FERRY_EPROTO;
        if (z->avail_in == 0 && z->avail_out > 0)
            return 0;
    }
}

int ws_deflate_inflate(ws_deflate *d, const char *in, size_t n, int fin, ferry_vec *out,
                       size_t max)
{
    static const char tail[4] = {0, 0, (char)0xFF, (char)0xFF};
    int rc = n > 0 ? inflate_some(d, in, n, out, max) : 0;
    if (rc == 0 && fin) {
        rc = inflate_some(d, tail, 4, out, max);
        if (rc == 0 && d->params.client_no_context_takeover)
            inflateReset(&d->in);
    }
    return rc;
}

ferry_buf *ws_deflate_compress(ws_deflate *d, const char *in, size_t n)
{
    z_stream *z = &d->out;
    size_t cap = deflateBound(z, (uLong)n) + 16;
    ferry_buf *b = ferry_buf_new(cap);
    if (b == NULL)
        return NULL;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    size_t used = 0;
    for (;;) {
        z->next_out = (Bytef *)b->data + used;
        z->avail_out = (uInt)(cap - used);
        deflate(z, Z_SYNC_FLUSH);
        used = cap - z->avail_out;
        if (z->avail_out > 0)
            break;
        /* Rare: deflateBound plus the flush marker was not enough. */
        ferry_buf *nb = ferry_mem_realloc(b, sizeof(*b) + cap * 2);
        if (nb == NULL) {
            ferry_buf_release(b);
            deflateReset(z);
            return NULL;
        }
        b = nb;
        cap *= 2;
    }
    /* RFC 7692 7.2.1: drop the empty block's 00 00 FF FF that the sync flush ended with. */
    if (used >= 4 && memcmp(b->data + used - 4, "\x00\x00\xff\xff", 4) == 0)
        used -= 4;
    /* A flush with nothing new gives no bytes at all (zlib: no progress); the peer would then
     * inflate our missing block from its own 00 00 FF FF. Send the empty block as a single
     * 0x00 (RFC 7692 7.2.3.6). */
    if (used == 0)
        b->data[used++] = 0;
    b->len = used;
    if (d->params.server_no_context_takeover)
        deflateReset(z);
    return b;
}

#else /* no zlib: permessage-deflate is never negotiated */

ws_deflate *ws_deflate_new(const ws_deflate_params *params)
{
    (void)params;
    return NULL;
}

void ws_deflate_free(ws_deflate *d)
{
    (void)d;
}

int ws_deflate_inflate(ws_deflate *d, const char *in, size_t n, int fin, ferry_vec *out,
                       size_t max)
{
    return -FERRY_EPROTO;
}

ferry_buf *ws_deflate_compress(ws_deflate *d, const char *in, size_t n)
{
    return NULL;
}
#endif
