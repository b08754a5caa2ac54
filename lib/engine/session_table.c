/* The session table: O(1) lookup by sid. Chained buckets, doubled when the load reaches 1.
 * Session ids are 128 random bits, so their first bytes hash as well as any function would;
 * a lookup with a forged sid costs one bucket walk. */
#include <string.h>

#include "common/mem.h"
#include "engine/internal.h"

static size_t hash_sid(const char *sid)
{
    /* FNV-1a over the whole id: cheap, and a forged id cannot steer inserts (ours). */
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)sid; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static int grow(ferry_session_table *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
    ferry_session **b = ferry_mem_calloc(n, sizeof(*b));
    if (b == NULL)
        return -FERRY_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        ferry_session *s = t->buckets[i];
        while (s != NULL) {
            ferry_session *next = s->hash_next;
            size_t j = hash_sid(s->sid) & (n - 1);
            s->hash_next = b[j];
            b[j] = s;
            s = next;
        }
    }
    ferry_mem_free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

int ferry_session_table_insert(ferry_session_table *t, ferry_session *s)
{
    if (t->count + 1 > t->nbuckets) {
        int rc = grow(t);
        if (rc != 0 && t->nbuckets == 0)
            return rc; /* a full table still works, only slower */
    }
    size_t i = hash_sid(s->sid) & (t->nbuckets - 1);
    s->hash_next = t->buckets[i];
    t->buckets[i] = s;
    t->count++;
    return 0;
}

ferry_session *ferry_session_table_get(const ferry_session_table *t, const char *sid)
{
    if (t->nbuckets == 0)
        return NULL;
    ferry_session *s = t->buckets[hash_sid(sid) & (t->nbuckets - 1)];
    while (s != NULL && strcmp(s->sid, sid) != 0)
        s = s->hash_next;
    return s;
}

void ferry_session_table_remove(ferry_session_table *t, ferry_session *s)
{
    if (t->nbuckets == 0)
        return;
    ferry_session **pp = &t->buckets[hash_sid(s->sid) & (t->nbuckets - 1)];
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp == s) {
        *pp = s->hash_next;
        s->hash_next = NULL;
        t->count--;
    }
}

void ferry_session_table_free(ferry_session_table *t)
{
    ferry_mem_free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}
