#include "common/utf8.h"

int ferry_utf8_feed(ferry_utf8 *st, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (st->need > 0) {
            if (c < st->lo || c > st->hi)
                return -1;
            st->need--;
            st->lo = 0x80;
            st->hi = 0xBF;
            continue;
        }
        if (c < 0x80)
            continue;
        if (c >= 0xC2 && c <= 0xDF) {
            st->need = 1;
        } else if (c == 0xE0) {
            st->need = 2;
            st->lo = 0xA0; /* no overlong 3-byte forms */
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            st->need = 2;
        } else if (c == 0xED) {
            st->need = 2;
            st->hi = 0x9F; /* no UTF-16 surrogates */
        } else if (c == 0xF0) {
            st->need = 3;
            st->lo = 0x90; /* no overlong 4-byte forms */
        } else if (c >= 0xF1 && c <= 0xF3) {
            st->need = 3;
        } else if (c == 0xF4) {
            st->need = 3;
            st->hi = 0x8F; /* nothing above U+10FFFF */
        } else {
            return -1; /* 80..C1, F5..FF */
        }
    }
    return 0;
}

int ferry_utf8_valid(const void *p, size_t n)
{
    ferry_utf8 st;
    ferry_utf8_init(&st);
    return ferry_utf8_feed(&st, p, n) == 0 && ferry_utf8_complete(&st);
}
