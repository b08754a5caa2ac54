/* libFuzzer target: permessage-deflate inflation with its limit (lib/ws/deflate.c).
 *
 * Input: byte 0 the parameters (bits 0..2: client window bits 8..15, bit 3: client no context
 * takeover), byte 1 the size of the pieces (1..256), byte 2 the bound on the inflated size
 * (64 * (byte + 1) bytes); the rest is a compressed message body (without the final
 * 00 00 FF FF, as on the wire).
 * Checked, beyond ASan/UBSan:
 *  - inflating the body in pieces gives the same result as inflating it whole (same outcome;
 *    the same bytes when it succeeds), and never more than the bound;
 *  - the same bytes, compressed by our own compressor and inflated by a fresh decompressor
 *    of the same parameters, come back unchanged (or over the bound: -FERRY_ETOOBIG). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "ws/deflate.h"

static int inflate_all(const ws_deflate_params *p, const char *in, size_t n, size_t piece,
                       size_t max, ferry_vec *out)
{
    ws_deflate *d = ws_deflate_new(p);
    if (d == NULL)
        abort();
    int rc = 0;
    size_t off = 0;
    do {
        size_t k = piece == 0 || piece > n - off ? n - off : piece;
        rc = ws_deflate_inflate(d, in + off, k, off + k == n, out, max);
        off += k;
        if (out->len > max)
            abort(); /* the bound was passed */
    } while (rc == 0 && off < n);
    ws_deflate_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    ws_deflate_params p = {0, (data[0] >> 3) & 1, 15, 8 + (data[0] & 7)};
    size_t piece = (size_t)data[1] + 1;
    size_t max = 64 * ((size_t)data[2] + 1);
    const char *body = (const char *)data + 3;
    size_t n = size - 3;

    ferry_vec whole = {0}, pieces = {0};
    int a = inflate_all(&p, body, n, 0, max, &whole);
    int b = inflate_all(&p, body, n, piece, max, &pieces);
    if (a == -FERRY_ENOMEM || b == -FERRY_ENOMEM)
        goto out;
    if (a != b || (a == 0 && (whole.len != pieces.len ||
                              (whole.len && memcmp(whole.base, pieces.base, whole.len) != 0)))) {
        fprintf(stderr, "whole %d (%zu bytes) vs pieces of %zu %d (%zu bytes)\n", a, whole.len,
                piece, b, pieces.len);
        abort();
    }

    /* Our compressor (server side, window 15) into a decompressor that reads any window. */
    ws_deflate_params q = {0, 0, 15, 15};
    ws_deflate *c = ws_deflate_new(&q);
    ferry_buf *z = c ? ws_deflate_compress(c, body, n) : NULL;
    if (z != NULL) {
        ferry_vec back = {0};
        int r = inflate_all(&q, z->data, z->len, piece, max, &back);
        if (r == 0 && (back.len != n || (n && memcmp(back.base, body, n) != 0)))
            abort(); /* compress + inflate changed the bytes */
        if (r != 0 && !(r == -FERRY_ETOOBIG && n > max) && r != -FERRY_ENOMEM) {
            fprintf(stderr, "our own compressed %zu bytes do not inflate: %d\n", n, r);
            abort();
        }
        ferry_vec_free(&back);
        ferry_buf_release(z);
    }
    if (c != NULL)
        ws_deflate_free(c);
out:
    ferry_vec_free(&whole);
    ferry_vec_free(&pieces);
    return 0;
}
