#include "common/base64.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t encode(char *out, const uint8_t *in, size_t n, const char *alpha, int pad)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        *o++ = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        if (pad) {
            *o++ = '=';
            *o++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        if (pad)
            *o++ = '=';
    }
    return (size_t)(o - out);
}

size_t ferry_base64_encode(char *out, const void *in, size_t n)
{
    return encode(out, in, n, std_alphabet, 1);
}

size_t ferry_base64url_encode(char *out, const void *in, size_t n)
{
    return encode(out, in, n, url_alphabet, 0);
}

/* The value of c in the standard alphabet (url: 0) or base64url (url: 1), or -1. */
static int value_of(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static long decode(uint8_t *out, const char *in, size_t n, int url)
{
    if (n % 4 == 1)
        return -1;
    uint8_t *o = out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of(in[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
        }
    }
    return (long)(o - out);
}

long ferry_base64_decode(uint8_t *out, const char *in, size_t n)
{
    /* Strip up to two '=' of padding, only at the end, only in a multiple-of-4 input. */
    if (n % 4 == 0 && n > 0 && in[n - 1] == '=') {
        n--;
        if (in[n - 1] == '=')
            n--;
    }
    return decode(out, in, n, 0);
}

long ferry_base64url_decode(uint8_t *out, const char *in, size_t n)
{
    return decode(out, in, n, 1);
}
