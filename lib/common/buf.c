#include "common/buf.h"

#include <string.h>

#include "common/assert.h"
#include "common/mem.h"
#include "ferry.h"

ferry_buf *ferry_buf_new(size_t len)
{
    ferry_buf *b = ferry_mem_alloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    b->refcnt = 1;
    b->flags = 0;
    b->len = len;
    b->alt = NULL;
    return b;
}

ferry_buf *ferry_buf_from(const void *p, size_t len)
{
    ferry_buf *b = ferry_buf_new(len);
    if (b != NULL && len > 0)
        memcpy(b->data, p, len);
    return b;
}

ferry_buf *ferry_buf_retain(ferry_buf *b)
{
    FERRY_ASSERT(b->refcnt > 0);
    b->refcnt++;
    return b;
}

void ferry_buf_release(ferry_buf *b)
{
    if (b == NULL)
        return;
    FERRY_ASSERT(b->refcnt > 0);
    if (--b->refcnt > 0)
        return;
    ferry_buf_release(b->alt);
    ferry_mem_free(b);
}

int ferry_vec_reserve(ferry_vec *v, size_t extra, size_t max)
{
    if (extra > max || v->len > max - extra)
        return -FERRY_ETOOBIG;
    if (v->cap - v->len >= extra)
        return 0;
    /* Double the capacity (at least 1 KiB), but never past max and never less than needed.
     * No loop: doubling until it fits could overflow size_t and spin for ever when extra is
     * near SIZE_MAX. */
    size_t need = v->len + extra; /* cannot overflow: checked against max above */
    size_t want = v->cap >= 1024 ? v->cap : 1024;
    want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
    if (want < need)
        want = need;
    if (want > max)
        want = max;
    char *p = ferry_mem_realloc(v->base, want);
    if (p == NULL)
        return -FERRY_ENOMEM;
    v->base = p;
    v->cap = want;
    return 0;
}

int ferry_vec_append(ferry_vec *v, const void *p, size_t n, size_t max)
{
    int r = ferry_vec_reserve(v, n, max);
    if (r != 0)
        return r;
    if (n > 0)
        memcpy(v->base + v->len, p, n);
    v->len += n;
    return 0;
}

void ferry_vec_consume(ferry_vec *v, size_t n)
{
    FERRY_ASSERT(n <= v->len);
    if (n < v->len)
        memmove(v->base, v->base + n, v->len - n);
    v->len -= n;
}

void ferry_vec_free(ferry_vec *v)
{
    ferry_mem_free(v->base);
    v->base = NULL;
    v->len = v->cap = 0;
}
