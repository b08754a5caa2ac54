/* Allocation-failure injection for unit tests (nghttp2's failmalloc): install with
 *   assert_int_equal(failmalloc_install(), 0);      (first thing in the test's process)
 * then set failmalloc_countdown = N to make the (N+1)th allocation from now fail, once;
 * failmalloc_failed tells whether it happened; -1 (the start) never fails; failmalloc_live counts
 * the allocations not given back (a leak check across one failing run). cJSON allocates
 * through ferry's allocator too (ferry_set_allocator installs its hooks). */
#ifndef FERRY_TEST_FAILMALLOC_H
#define FERRY_TEST_FAILMALLOC_H

#include <stdlib.h>

#include <ferry.h>

static long failmalloc_countdown = -1; /* allocations left before one fails; -1: never */
static int failmalloc_failed;
static long failmalloc_live;

static inline int failmalloc_should_fail(void)
{
    if (failmalloc_countdown < 0)
        return 0;
    if (failmalloc_countdown-- == 0) {
        failmalloc_failed = 1;
        return 1;
    }
    return 0;
}

static inline void *failmalloc_malloc(size_t n)
{
    void *p = failmalloc_should_fail() ? NULL : malloc(n);
    failmalloc_live += p != NULL;
    return p;
}

static inline void *failmalloc_realloc(void *p, size_t n)
{
    void *q = failmalloc_should_fail() ? NULL : realloc(p, n);
    if (p == NULL && q != NULL)
        failmalloc_live++;
    return q;
}

static inline void *failmalloc_calloc(size_t a, size_t b)
{
    void *p = failmalloc_should_fail() ? NULL : calloc(a, b);
    failmalloc_live += p != NULL;
    return p;
}

static inline void failmalloc_free(void *p)
{
    failmalloc_live -= p != NULL;
    free(p);
}

static inline int failmalloc_install(void)
{
    return ferry_set_allocator(failmalloc_malloc, failmalloc_realloc, failmalloc_calloc,
                               failmalloc_free);
}

#endif
