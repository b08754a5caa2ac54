/* The per-address limit on new sessions (ferry_server_config.new_session_rate): a token bucket
 * per client address, checked on every Engine.IO handshake before the admission hook.
 *
 * A bucket holds up to new_session_burst tokens and gains new_session_rate per second; a
 * handshake takes one, and a handshake that finds less than one is answered 429 with
 * Retry-After. The table is bounded (new_session_addresses): an address whose bucket has
 * refilled is the same as an unknown one, so such entries are dropped first (they are the
 * least recently used: every touch moves an entry to the tail and refills take the same time
 * for all), and when the table is full of live entries the least recently used one goes (its
 * address starts again with a full bucket; logged at warn once a second).
 *
 * The key is the address, IPv6 ones cut to their /64 (one host usually holds a whole /64), or
 * with trust_forwarded_for the last address of X-Forwarded-For (the one the nearest proxy
 * wrote). The hash is seeded per server, so a client cannot choose addresses that share a
 * bucket chain. */
#include <string.h>

#include <openssl/rand.h>

#include "common/log.h"
#include "common/mem.h"
#include "engine/internal.h"

struct ferry_rate_entry {
    ferry_list lru;                /* in rl->lru, least recently touched first */
    struct ferry_rate_entry *next; /* hash chain */
    uint8_t key[16];
    uint64_t last_ms; /* loop time of the last refill */
    double tokens;
};

/* ---- the key */

/* Text address to a 16-byte key: IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64 (IPv4-mapped
 * ones whole). Returns 0, or -1 when s is no address. */
static int addr_key(const char *s, size_t len, uint8_t key[16])
{
    char buf[64];
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') { /* [v6] */
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(key, 0, 16);
    uint8_t a[16];
    if (uv_inet_pton(AF_INET, buf, a) == 0) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, a, 4);
        return 0;
    }
    if (uv_inet_pton(AF_INET6, buf, a) != 0)
        return -1;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
    return 0;
}

/* The address a handshake is counted against. */
static void request_key(const ferry_engine *eng, const ferry_req *req, uint8_t key[16])
{
    if (eng->cfg->trust_forwarded_for) {
        const char *xff = ferry_req_header_get(req, "X-Forwarded-For");
        if (xff != NULL) {
            const char *last = strrchr(xff, ',');
            last = last != NULL ? last + 1 : xff;
            if (addr_key(last, strlen(last), key) == 0)
                return;
        }
    }
    char peer[64];
    ferry_req_remote_addr(req, peer, sizeof(peer));
    if (addr_key(peer, strlen(peer), key) != 0)
        memset(key, 0, 16); /* no address (a test's pipe): all such share one bucket */
}

static size_t hash_key(const ferry_rate_limit *rl, const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull ^ rl->seed;
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33; /* mix the high bits into the ones the mask keeps */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & (rl->nbuckets - 1);
}

/* ---- the table */

static void entry_remove(ferry_rate_limit *rl, ferry_rate_entry *e)
{
    ferry_rate_entry **p = &rl->buckets[hash_key(rl, e->key)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    ferry_list_remove(&e->lru);
    rl->count--;
    ferry_mem_free(e);
}

/* Has e's bucket refilled by now (so that forgetting it changes nothing)? */
static int refilled(const ferry_engine *eng, const ferry_rate_entry *e, uint64_t now)
{
    const ferry_server_config *c = eng->cfg;
    double full_ms = (c->new_session_burst - e->tokens) * 1000.0 / c->new_session_rate;
    return (double)(now - e->last_ms) >= full_ms;
}

static int table_init(ferry_rate_limit *rl, uint32_t max)
{
    size_t n = 64;
    while (n < max && n < ((size_t)1 << 24))
        n *= 2;
    rl->buckets = ferry_mem_calloc(n, sizeof(*rl->buckets));
    if (rl->buckets == NULL)
        return -FERRY_ENOMEM;
    rl->nbuckets = n;
    if (RAND_bytes((unsigned char *)&rl->seed, sizeof(rl->seed)) != 1)
        rl->seed = (uint64_t)(uintptr_t)rl ^ uv_hrtime();
    return 0;
}

void ferry_rate_limit_init(ferry_rate_limit *rl)
{
    memset(rl, 0, sizeof(*rl));
    ferry_list_init(&rl->lru);
}

void ferry_rate_limit_free(ferry_rate_limit *rl)
{
    while (!ferry_list_empty(&rl->lru)) {
        ferry_rate_entry *e = ferry_list_entry(rl->lru.next, ferry_rate_entry, lru);
        ferry_list_remove(&e->lru);
        ferry_mem_free(e);
    }
    ferry_mem_free(rl->buckets);
    rl->buckets = NULL;
    rl->count = 0;
}

uint32_t ferry_rate_limit_take(ferry_engine *eng, const ferry_req *req)
{
    const ferry_server_config *c = eng->cfg;
    ferry_rate_limit *rl = &eng->rate;
    if (c->new_session_rate == 0)
        return 0;
    if (rl->buckets == NULL && table_init(rl, c->new_session_addresses) != 0)
        return 0; /* out of memory: admit rather than refuse everyone */
    uint64_t now = uv_now(eng->loop);
    /* Forget what has refilled: the oldest first, and they are at the head. */
    while (!ferry_list_empty(&rl->lru)) {
        ferry_rate_entry *old = ferry_list_entry(rl->lru.next, ferry_rate_entry, lru);
        if (!refilled(eng, old, now))
            break;
        entry_remove(rl, old);
    }
    uint8_t key[16];
    request_key(eng, req, key);
    size_t b = hash_key(rl, key);
    ferry_rate_entry *e = rl->buckets[b];
    while (e != NULL && memcmp(e->key, key, 16) != 0)
        e = e->next;
    if (e == NULL) {
        if (rl->count >= c->new_session_addresses && !ferry_list_empty(&rl->lru)) {
            ferry_rate_entry *old = ferry_list_entry(rl->lru.next, ferry_rate_entry, lru);
            if (now - rl->evict_logged_ms >= 1000 || rl->evict_logged_ms == 0) {
                rl->evict_logged_ms = now;
                FERRY_LOG(FERRY_LOG_WARN, "engine", NULL,
                          "%u addresses are over their new-session rate "
                          "(new_session_addresses): forgetting the least recent",
                          (unsigned)rl->count);
            }
            entry_remove(rl, old);
        }
        e = ferry_mem_calloc(1, sizeof(*e));
        if (e == NULL)
            return 0;
        memcpy(e->key, key, 16);
        e->tokens = c->new_session_burst;
        e->last_ms = now;
        e->next = rl->buckets[b];
        rl->buckets[b] = e;
        rl->count++;
    } else {
        e->tokens += (double)(now - e->last_ms) * c->new_session_rate / 1000.0;
        if (e->tokens > c->new_session_burst)
            e->tokens = c->new_session_burst;
        e->last_ms = now;
        ferry_list_remove(&e->lru);
    }
    ferry_list_insert_tail(&rl->lru, &e->lru);
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        return 0;
    }
    /* Seconds until a token is back: (1 - tokens) / rate, at most one at a rate of >= 1/s. */
    return 1;
}

size_t ferry_rate_limit_count(const ferry_engine *eng)
{
    return eng->rate.count;
}
