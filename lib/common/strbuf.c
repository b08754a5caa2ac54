#include "common/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "ferry.h"

void ferry_strbuf_init(ferry_strbuf *sb, char *mem, size_t cap)
{
    FERRY_ASSERT(mem != NULL && cap >= 1);
    sb->base = mem;
    sb->len = 0;
    sb->cap = cap;
    sb->failed = 0;
    mem[0] = '\0';
}

void ferry_strbuf_append(ferry_strbuf *sb, const void *p, size_t n)
{
    if (sb->failed)
        return;
    if (n >= sb->cap - sb->len) {
        sb->failed = 1;
        return;
    }
    if (n > 0)
        memcpy(sb->base + sb->len, p, n);
    sb->len += n;
    sb->base[sb->len] = '\0';
}

void ferry_strbuf_puts(ferry_strbuf *sb, const char *s)
{
    ferry_strbuf_append(sb, s, strlen(s));
}

void ferry_strbuf_fill(ferry_strbuf *sb, char c, size_t n)
{
    if (sb->failed)
        return;
    if (n >= sb->cap - sb->len) {
        sb->failed = 1;
        return;
    }
    memset(sb->base + sb->len, c, n);
    sb->len += n;
    sb->base[sb->len] = '\0';
}

void ferry_strbuf_printf(ferry_strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    size_t room = sb->cap - sb->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->base + sb->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        /* vsnprintf wrote a truncated piece: take it back. */
        sb->base[sb->len] = '\0';
        sb->failed = 1;
        return;
    }
    sb->len += (size_t)n;
}

int ferry_strbuf_error(const ferry_strbuf *sb)
{
    return sb->failed ? -FERRY_ETOOBIG : 0;
}
