/* The Redis adapter: several ferry nodes share rooms and broadcasts through Redis pub/sub
 * (issue 18, docs/scaling.md).
 *
 * Each namespace's adapter is a local adapter (local.c: rooms and members of this node) plus
 * forwarding. A broadcast is delivered to this node's sockets first, then published once to
 * Redis (one message per broadcast whatever the number of recipients); every other node that
 * serves its namespace (or room) receives it once, stamps it with its own recovery offset
 * (host->remote) and delivers it to its own sockets through its local adapter. Nothing is
 * encoded per recipient.
 *
 * Channels, so that a node receives only what it serves:
 *   <prefix>#<nsp>#          broadcasts to every socket or to several rooms; a node subscribes
 *                            while it has the namespace
 *   <prefix>#<nsp>#<room>#   broadcasts to exactly one room; a node subscribes while one of its
 *                            sockets is in that room (its own id room included, so a private
 *                            message reaches only the node that holds the socket)
 * Names may collide (a '#' in a room name); the message carries the namespace and the rooms,
 * and delivery filters by them, so a collision costs bandwidth, never a wrong delivery.
 *
 * A message (all integers little-endian; str = u32 length + bytes):
 *   "FRY1" u8 type(1: broadcast) u8 flags(1: volatile) str node str nsp
 *   u16 nrooms str* u16 nexcept str* str except_sid u16 nbufs (u8 binary u32 len bytes)*
 *   [u64 seq, with flag 2: the origin's recovery sequence number (redis_recovery.c)]
 * A node ignores a message carrying its own node id (it hears its own publishes).
 *
 * Connections: one to publish, one to subscribe (a subscribed Redis connection takes no other
 * command), both on the server's loop through hiredis's libuv adapter. A lost connection, a
 * refused or timed-out connect: retried after 100 ms, doubling to 5 s; one warning per outage
 * and one when it is back; while either is down, broadcasts stay local (counted). The
 * subscribe connection subscribes again to every channel it wants when it is back.
 *
 * hiredis 0.14 keeps one callback per subscribed channel and drops it when an UNSUBSCRIBE
 * reply comes, even if a SUBSCRIBE for the same channel was sent meanwhile. So each channel
 * has a state and at most one (UN)SUBSCRIBE in flight: a room that empties and fills again
 * while its UNSUBSCRIBE is on the way is subscribed again when the reply comes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "adapter/adapter.h"
#include "common/assert.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "adapter/redis_internal.h"
#include "adapter/redis_shard.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 5000
#define MAX_INFLIGHT_BYTES (64u << 20) /* published, not yet answered: beyond it, stay local */
#define NODE_ID_MAX 64
#define MAX_BUFS 1024 /* parts of one message (1 + attachments) */
/* A room channel stays subscribed this long after its last local member left: a socket lost
 * for connection-state recovery is not a member, and the broadcasts to its rooms must still be
 * logged here for it to get them when it comes back (tools/ferry's default window). */
#define LINGER_MS 120000

/* ------------------------------------------------------------------ objects */

enum { CH_IDLE, CH_SUB_SENT, CH_SUBSCRIBED, CH_UNSUB_SENT };

typedef struct channel {
    struct channel *next; /* hash chain */
    ferry_list llink;     /* in r->linger while lingering */
    int lingering;        /* unwanted, still subscribed until linger_until */
    int expired;          /* its linger is over: unsubscribe */
    uint64_t linger_until;
    uint32_t hash;
    unsigned want; /* adapters (rooms, namespaces) that need it */
    int state;
    size_t len;
    char name[];
} channel;

typedef struct rconn {
    ferry_redis *r;
    redisAsyncContext *ac; /* NULL while down */
    int up;
    int is_sub;
    uv_timer_t timer; /* connect timeout, or the wait before the next attempt */
    unsigned backoff_ms;
} rconn;

struct ferry_redis {
    uv_loop_t *loop;
    char *url; /* for log lines, without the password */
    char *host;
    int port;
    char *user, *password;
    char node_id[NODE_ID_MAX + 1];
    char *prefix;
    char ip[64]; /* the resolved address; "" until resolved */
    uv_getaddrinfo_t gai;
    int resolving;
    rconn pub, sub;
    channel **chans;
    size_t nb, nchans;
    ferry_list adapters; /* redis_adapter.link */
    ferry_list linger;   /* channel.llink, oldest first */
    ferry_redis_stats st;
    int down_logged; /* a warning was logged for the current outage */
    uint64_t down_since;
    uint64_t not_forwarded_at_down;
    int ever_up;
    size_t inflight;
    int closing;
    unsigned closing_handles;
    uv_timer_t final; /* closed last: its close callback runs after hiredis's handles closed */
    ferry_adapter_factory factory;
    ferry_redis_close_cb close_cb;
    void *close_ud;
    redis_rec *rec; /* cross-node recovery (redis_recovery.c) */
    redis_q q;      /* commands and queries across nodes (redis_query.c) */
    redis_shard *shard; /* sharded pub/sub (redis_shard.c); NULL: classic pub/sub */
};

typedef struct redis_adapter {
    ferry_adapter super;
    ferry_adapter *local; /* this node's rooms and members */
    ferry_adapter_host host;
    ferry_redis *r;
    ferry_list link; /* in r->adapters */
    char *nsp;
    char *nsp_channel;
} redis_adapter;

/* ------------------------------------------------------------------ channels */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static channel *chan_find(const ferry_redis *r, const char *name, size_t len)
{
    uint32_t h = hash_bytes(name, len);
    for (channel *c = r->chans[h & (r->nb - 1)]; c != NULL; c = c->next)
        if (c->hash == h && c->len == len && memcmp(c->name, name, len) == 0)
            return c;
    return NULL;
}

static void chan_grow(ferry_redis *r)
{
    size_t nb = r->nb * 2;
    channel **b = ferry_mem_calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* longer chains */
    for (size_t i = 0; i < r->nb; i++)
        for (channel *c = r->chans[i], *next; c != NULL; c = next) {
            next = c->next;
            c->next = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
        }
    ferry_mem_free(r->chans);
    r->chans = b;
    r->nb = nb;
}

static void chan_free(ferry_redis *r, channel *c)
{
    if (c->lingering)
        ferry_list_remove(&c->llink);
    channel **pp = &r->chans[c->hash & (r->nb - 1)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    r->nchans--;
    ferry_mem_free(c);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Bring the channel's subscription where its want says, one command in flight at a time. */
static void chan_sync(ferry_redis *r, channel *c)
{
    if (c->want > 0) {
        c->expired = 0;
        if (c->lingering) {
            ferry_list_remove(&c->llink);
            c->lingering = 0;
        }
    } else if (c->state == CH_SUBSCRIBED && !c->expired && !r->closing) {
        if (!c->lingering) {
            c->lingering = 1;
            c->linger_until = uv_now(r->loop) + LINGER_MS;
            ferry_list_insert_tail(&r->linger, &c->llink);
        }
        return;
    }
    if (c->want == 0 && c->state == CH_IDLE) {
        chan_free(r, c);
        return;
    }
    if (r->shard != NULL && !r->closing) {
        /* Sharded: redis_shard.c keeps the subscription on the slot's node, whatever comes. */
        if (c->want > 0 && c->state == CH_IDLE) {
            redis_shard_want(r->shard, c->name, c->len, 1);
            c->state = CH_SUBSCRIBED;
        } else if (c->want == 0 && c->state == CH_SUBSCRIBED) {
            redis_shard_want(r->shard, c->name, c->len, 0);
            chan_free(r, c);
        }
        return;
    }
    if (!r->sub.up || r->closing)
        return;
    const char *cmd = NULL;
    int next = c->state;
    if (c->want > 0 && c->state == CH_IDLE) {
        cmd = "SUBSCRIBE";
        next = CH_SUB_SENT;
    } else if (c->want == 0 && c->state == CH_SUBSCRIBED) {
        cmd = "UNSUBSCRIBE";
        next = CH_UNSUB_SENT;
    }
    if (cmd == NULL)
        return;
    const char *argv[2] = {cmd, c->name};
    size_t lens[2] = {strlen(cmd), c->len};
    if (redisAsyncCommandArgv(r->sub.ac, on_sub_reply, r, 2, argv, lens) == REDIS_OK)
        c->state = next;
    /* Else the connection is failing: its disconnect resets every channel. */
}

/* Unsubscribe the channels whose linger is over (checked as rooms come and go). */
static void linger_sweep(ferry_redis *r)
{
    uint64_t now = uv_now(r->loop);
    while (!ferry_list_empty(&r->linger)) {
        channel *c = ferry_list_entry(r->linger.next, channel, llink);
        if (c->linger_until > now)
            break;
        ferry_list_remove(&c->llink);
        c->lingering = 0;
        c->expired = 1;
        chan_sync(r, c);
    }
}

static void chan_want(ferry_redis *r, const char *name, size_t len)
{
    linger_sweep(r);
    channel *c = chan_find(r, name, len);
    if (c == NULL) {
        c = ferry_mem_alloc(sizeof(*c) + len + 1);
        if (c == NULL) {
            FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL, "out of memory: channel %.*s not subscribed",
                      (int)len, name);
            return;
        }
        memcpy(c->name, name, len);
        c->name[len] = '\0';
        c->len = len;
        c->hash = hash_bytes(name, len);
        c->want = 0;
        c->state = CH_IDLE;
        c->lingering = 0;
        c->expired = 0;
        ferry_list_init(&c->llink);
        if (r->nchans >= r->nb)
            chan_grow(r);
        c->next = r->chans[c->hash & (r->nb - 1)];
        r->chans[c->hash & (r->nb - 1)] = c;
        r->nchans++;
    }
    c->want++;
    chan_sync(r, c);
}

static void chan_unwant(ferry_redis *r, const char *name, size_t len)
{
    linger_sweep(r);
    channel *c = chan_find(r, name, len);
    if (c == NULL || c->want == 0)
        return;
    c->want--;
    chan_sync(r, c);
}

/* Every channel, e.g. after the subscribe connection came back or went. */
static void chans_each(ferry_redis *r, void (*fn)(ferry_redis *, channel *))
{
    for (size_t i = 0; i < r->nb; i++)
        for (channel *c = r->chans[i], *next; c != NULL; c = next) {
            next = c->next; /* fn may free c */
            fn(r, c);
        }
}

static void chan_reset(ferry_redis *r, channel *c)
{
    c->state = CH_IDLE;
    if (c->lingering) {
        ferry_list_remove(&c->llink);
        c->lingering = 0;
    }
    if (c->want == 0)
        chan_free(r, c);
}

/* "<prefix>#<nsp>#" or "<prefix>#<nsp>#<room>#": a new string, or NULL. */
static char *chan_name(const ferry_redis *r, const char *nsp, const char *room, size_t *len)
{
    size_t pl = strlen(r->prefix), nl = strlen(nsp), rl = room != NULL ? strlen(room) + 1 : 0;
    size_t n = pl + 1 + nl + 1 + rl;
    char *s = ferry_mem_alloc(n + 1);
    if (s == NULL)
        return NULL;
    char *w = s;
    memcpy(w, r->prefix, pl), w += pl;
    *w++ = '#';
    memcpy(w, nsp, nl), w += nl;
    *w++ = '#';
    if (room != NULL) {
        memcpy(w, room, rl - 1), w += rl - 1;
        *w++ = '#';
    }
    *w = '\0';
    *len = n;
    return s;
}

/* ------------------------------------------------------------------ the wire format */

typedef struct wbuf {
    char *p;
    size_t len, cap;
    int failed;
} wbuf;

static void w_bytes(wbuf *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        char *np = ferry_mem_realloc(w->p, cap);
        if (np == NULL) {
            w->failed = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void w_u8(wbuf *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    w_bytes(w, &b, 1);
}

static void w_u16(wbuf *w, size_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    w_bytes(w, b, 2);
}

static void w_u32(wbuf *w, size_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}

static void w_str(wbuf *w, const char *s, size_t n)
{
    w_u32(w, n);
    w_bytes(w, s, n);
}

typedef struct rbuf {
    const uint8_t *p;
    size_t left;
} rbuf;

static int r_take(rbuf *b, size_t n, const uint8_t **out)
{
    if (b->left < n)
        return -1;
    *out = b->p;
    b->p += n;
    b->left -= n;
    return 0;
}

static int r_uint(rbuf *b, size_t bytes, size_t *out)
{
    const uint8_t *p;
    if (r_take(b, bytes, &p) != 0)
        return -1;
    size_t v = 0;
    for (size_t i = bytes; i-- > 0;)
        v = (v << 8) | p[i];
    *out = v;
    return 0;
}

typedef struct rstr {
    const char *p;
    size_t n;
} rstr;

static int r_str(rbuf *b, rstr *s)
{
    const uint8_t *p;
    if (r_uint(b, 4, &s->n) != 0 || r_take(b, s->n, &p) != 0)
        return -1;
    s->p = (const char *)p;
    return 0;
}

/* n strings into *sw as NUL-terminated copies (the caller's block: each string's 4-byte length
 * prefix pays for its NUL), appended to names at *nn. */
static int r_names(rbuf *b, size_t n, const char **names, size_t *nn, char **sw)
{
    for (size_t i = 0; i < n; i++) {
        rstr s;
        if (r_str(b, &s) != 0)
            return -1;
        memcpy(*sw, s.p, s.n);
        (*sw)[s.n] = '\0';
        names[(*nn)++] = *sw;
        *sw += s.n + 1;
    }
    return 0;
}

#define MSG_BROADCAST 1
#define MSG_VOLATILE 1u
#define MSG_SEQ 2u /* the origin's recovery sequence number follows the parts (u64) */

/* ------------------------------------------------------------------ publishing */

static void on_published(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)reply; /* an error reply (NOAUTH...) shows in the connection's next failure */
    rconn *c = ac->data;
    size_t n = (size_t)(uintptr_t)privdata;
    c->r->inflight = c->r->inflight >= n ? c->r->inflight - n : 0;
}

static void forward(redis_adapter *a, const ferry_adapter_packet *pkt,
                    const ferry_adapter_target *t)
{
    ferry_redis *r = a->r;
    if ((r->shard == NULL && (!r->pub.up || !r->sub.up)) || r->inflight > MAX_INFLIGHT_BYTES ||
        pkt->n == 0 ||
        pkt->n > MAX_BUFS || t->nrooms > 0xffff || t->nexcept > 0xffff) {
        r->st.not_forwarded++;
        return;
    }
    wbuf w = {0};
    w_bytes(&w, "FRY1", 4);
    w_u8(&w, MSG_BROADCAST);
    w_u8(&w, ((t->flags & FERRY_ADAPTER_VOLATILE) ? MSG_VOLATILE : 0) |
                 (pkt->origin_seq != 0 ? MSG_SEQ : 0));
    w_str(&w, r->node_id, strlen(r->node_id));
    w_str(&w, a->nsp, strlen(a->nsp));
    w_u16(&w, t->nrooms);
    for (size_t i = 0; i < t->nrooms; i++)
        w_str(&w, t->rooms[i], strlen(t->rooms[i]));
    w_u16(&w, t->nexcept);
    for (size_t i = 0; i < t->nexcept; i++)
        w_str(&w, t->except[i], strlen(t->except[i]));
    w_str(&w, t->except_sid ? t->except_sid : "", t->except_sid ? strlen(t->except_sid) : 0);
    w_u16(&w, pkt->n);
    for (size_t i = 0; i < pkt->n; i++) {
        const ferry_buf *b = pkt->bufs[i];
        w_u8(&w, (b->flags & FERRY_BUF_BINARY) ? 1 : 0);
        if (i == 0 && pkt->offset_len > 0 && b->len > pkt->offset_len) {
            /* This node's recovery offset stays here: the receivers stamp their own. */
            size_t keep = b->len - 1 - pkt->offset_len;
            w_u32(&w, keep + 1);
            w_bytes(&w, b->data, keep);
            w_bytes(&w, "]", 1);
        } else {
            w_str(&w, b->data, b->len);
        }
    }
    if (pkt->origin_seq != 0) {
        w_u32(&w, (size_t)(pkt->origin_seq & 0xffffffffu));
        w_u32(&w, (size_t)(pkt->origin_seq >> 32));
    }
    size_t clen = 0;
    char *chan = t->nrooms == 1 ? chan_name(r, a->nsp, t->rooms[0], &clen) : NULL;
    const char *cname = chan != NULL ? chan : a->nsp_channel;
    if (chan == NULL)
        clen = strlen(a->nsp_channel);
    if (w.failed || (t->nrooms == 1 && chan == NULL)) {
        r->st.not_forwarded++;
    } else {
        if (pkt->origin_seq != 0) /* kept where other nodes find it, before it is heard */
            redis_rec_logged(r, a->nsp, pkt->origin_seq, w.p, w.len);
        const char *argv[3] = {"PUBLISH", cname, w.p};
        size_t lens[3] = {7, clen, w.len};
        if (r->shard != NULL) {
            /* SPUBLISH to the channel's node; redis_shard.c bounds what waits for it. */
            argv[0] = "SPUBLISH";
            lens[0] = 8;
            if (redis_shard_command(r->shard, 3, argv, lens, NULL, NULL) == 0)
                r->st.published++;
            else
                r->st.not_forwarded++;
        } else if (redisAsyncCommandArgv(r->pub.ac, on_published, (void *)(uintptr_t)w.len, 3,
                                         argv, lens) == REDIS_OK) {
            r->inflight += w.len;
            r->st.published++;
        } else {
            r->st.not_forwarded++;
        }
    }
    ferry_mem_free(chan);
    ferry_mem_free(w.p);
}

/* ------------------------------------------------------------------ receiving */

/* Read a message (the format above) into m: 0, -FERRY_EPROTO (not one of ours) or
 * -FERRY_ENOMEM. m's strings are NUL-terminated copies; redis_msg_free() frees them. */
int redis_msg_parse(const char *data, size_t len, redis_msg *m)
{
    memset(m, 0, sizeof(*m));
    rbuf b = {(const uint8_t *)data, len};
    const uint8_t *magic;
    size_t type, flags, nrooms, nexcept, nbufs;
    rstr node, nsp, sid;
    if (r_take(&b, 4, &magic) != 0 || memcmp(magic, "FRY1", 4) != 0 || r_uint(&b, 1, &type) != 0 ||
        type != MSG_BROADCAST || r_uint(&b, 1, &flags) != 0 || r_str(&b, &node) != 0 ||
        r_str(&b, &nsp) != 0)
        return -FERRY_EPROTO;
    /* The strings, NUL-terminated, in one block: the message bounds its size (each string's
     * 4-byte length prefix pays for its NUL). */
    char *sw = m->strs = ferry_mem_alloc(len + 1);
    if (sw == NULL)
        return -FERRY_ENOMEM;
    m->node = sw;
    memcpy(sw, node.p, node.n);
    sw[node.n] = '\0';
    sw += node.n + 1;
    m->nsp = sw;
    memcpy(sw, nsp.p, nsp.n);
    sw[nsp.n] = '\0';
    sw += nsp.n + 1;
    if (r_uint(&b, 2, &nrooms) != 0 || nrooms > b.left / 4)
        goto bad;
    m->names = ferry_mem_calloc(nrooms + 1 + 1, sizeof(*m->names));
    if (m->names == NULL)
        goto nomem;
    size_t nn = 0;
    if (r_names(&b, nrooms, m->names, &nn, &sw) != 0)
        goto bad;
    if (r_uint(&b, 2, &nexcept) != 0 || nexcept > b.left / 4)
        goto bad;
    if (nexcept > 0) {
        const char **grown =
            ferry_mem_realloc(m->names, (nrooms + nexcept + 1) * sizeof(*m->names));
        if (grown == NULL)
            goto nomem;
        m->names = grown;
    }
    if (r_names(&b, nexcept, m->names, &nn, &sw) != 0)
        goto bad;
    m->nrooms = nrooms;
    m->nexcept = nexcept;
    if (r_str(&b, &sid) != 0 || r_uint(&b, 2, &nbufs) != 0 || nbufs == 0 || nbufs > MAX_BUFS)
        goto bad;
    if (sid.n > 0) {
        m->sid = sw;
        memcpy(sw, sid.p, sid.n);
        sw[sid.n] = '\0';
    }
    m->bufs = ferry_mem_calloc(nbufs, sizeof(*m->bufs));
    if (m->bufs == NULL)
        goto nomem;
    for (; m->nbufs < nbufs; m->nbufs++) {
        size_t bin;
        rstr str;
        if (r_uint(&b, 1, &bin) != 0 || r_str(&b, &str) != 0)
            goto bad;
        if ((m->bufs[m->nbufs] = ferry_buf_from(str.p, str.n)) == NULL)
            goto nomem;
        if (bin)
            m->bufs[m->nbufs]->flags |= FERRY_BUF_BINARY;
    }
    if (flags & MSG_SEQ) {
        size_t lo, hi;
        if (r_uint(&b, 4, &lo) != 0 || r_uint(&b, 4, &hi) != 0)
            goto bad;
        m->seq = (uint64_t)hi << 32 | lo;
    }
    if (b.left != 0)
        goto bad;
    m->flags = (unsigned)flags;
    return 0;
nomem:
    redis_msg_free(m);
    return -FERRY_ENOMEM;
bad:
    redis_msg_free(m);
    return -FERRY_EPROTO;
}

void redis_msg_free(redis_msg *m)
{
    for (size_t i = 0; i < m->nbufs; i++)
        ferry_buf_release(m->bufs[i]);
    ferry_mem_free(m->bufs);
    ferry_mem_free(m->names);
    ferry_mem_free(m->strs);
    memset(m, 0, sizeof(*m));
}

void redis_msg_view(const redis_msg *m, ferry_adapter_packet *pkt, ferry_adapter_target *t)
{
    *pkt = (ferry_adapter_packet){.bufs = m->bufs,
                                  .n = m->nbufs,
                                  .origin_seq = m->seq,
                                  .origin = m->seq != 0 ? m->node : NULL};
    *t = (ferry_adapter_target){
        .rooms = m->names,
        .nrooms = m->nrooms,
        .except = m->names + m->nrooms,
        .nexcept = m->nexcept,
        .except_sid = m->sid,
        .flags = (m->flags & MSG_VOLATILE) ? FERRY_ADAPTER_VOLATILE : 0,
    };
}

void redis_on_message(ferry_redis *r, const char *data, size_t len)
{
    if (len >= 4 && memcmp(data, "FRJ1", 4) == 0) {
        redis_q_on_message(r, data + 4, len - 4);
        return;
    }
    /* Our own publishes come back: skip them before reading the rest. */
    rbuf b = {(const uint8_t *)data, len};
    const uint8_t *head;
    rstr node;
    if (r_take(&b, 6, &head) == 0 && r_str(&b, &node) == 0 && node.n == strlen(r->node_id) &&
        memcmp(node.p, r->node_id, node.n) == 0)
        return;
    redis_msg m;
    int rc = redis_msg_parse(data, len, &m);
    if (rc != 0) {
        if (rc == -FERRY_ENOMEM)
            FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL,
                      "out of memory: a broadcast from another node lost");
        else
            r->st.bad_messages++;
        return;
    }
    ferry_list *it;
    ferry_list_foreach(it, &r->adapters)
    {
        redis_adapter *a = ferry_list_entry(it, redis_adapter, link);
        if (strcmp(a->nsp, m.nsp) == 0) {
            ferry_adapter_packet pkt;
            ferry_adapter_target t;
            redis_msg_view(&m, &pkt, &t);
            r->st.received++;
            a->host.remote(a->host.ctx, &pkt, &t);
            break;
        }
    }
    /* No adapter: a namespace this node does not serve (a channel name collision). */
    redis_msg_free(&m);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ferry_redis *r = privdata;
    redisReply *rep = reply;
    (void)ac;
    if (rep == NULL || r->closing)
        return; /* the connection is going: its disconnect callback resets the channels */
    if (rep->type == REDIS_REPLY_ERROR) {
        FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "subscribe connection: %s", rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    redisReply *name = rep->element[1];
    if (strcmp(kind, "message") == 0) {
        if (rep->element[2]->type == REDIS_REPLY_STRING)
            redis_on_message(r, rep->element[2]->str, rep->element[2]->len);
        return;
    }
    channel *c = chan_find(r, name->str, name->len);
    if (c == NULL)
        return;
    if (strcmp(kind, "subscribe") == 0 && c->state == CH_SUB_SENT)
        c->state = CH_SUBSCRIBED;
    else if (strcmp(kind, "unsubscribe") == 0 && c->state == CH_UNSUB_SENT)
        c->state = CH_IDLE;
    else
        return;
    chan_sync(r, c);
}

/* ------------------------------------------------------------------ connections */

static void conn_start(rconn *c);

static uint64_t now_ms(const ferry_redis *r)
{
    return uv_now(r->loop);
}

/* One of the connections is down (or never came up): warn once per outage. */
static void link_down(rconn *c, const char *why)
{
    ferry_redis *r = c->r;
    r->st.connected = 0;
    if (r->down_logged)
        return;
    r->down_logged = 1;
    r->down_since = now_ms(r);
    r->not_forwarded_at_down = r->st.not_forwarded;
    r->st.outages++;
    if (r->shard != NULL) /* sharded: this link only carries recovery kept in Redis */
        FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
                  "%s unreachable (command connection: %s): recovery kept in Redis waits until "
                  "it is back (sharded pub/sub has connections of its own); retrying every %u "
                  "ms at most",
                  r->url, why ? why : "closed", BACKOFF_MAX_MS);
    else
        FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
                  "%s unreachable (%s connection: %s): broadcasts reach this node's clients only "
                  "until it is back; retrying every %u ms at most",
                  r->url, c->is_sub ? "subscribe" : "publish", why ? why : "closed",
                  BACKOFF_MAX_MS);
}

static void link_maybe_up(ferry_redis *r)
{
    if (!r->pub.up || (!r->sub.up && r->shard == NULL))
        return;
    r->st.connected = 1;
    if (r->down_logged) {
        if (r->ever_up)
            r->st.reconnects++;
        FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
                  "%s reachable again after %llu ms (%llu broadcasts stayed local meanwhile)",
                  r->url, (unsigned long long)(now_ms(r) - r->down_since),
                  (unsigned long long)(r->st.not_forwarded - r->not_forwarded_at_down));
    } else {
        FERRY_LOG(FERRY_LOG_INFO, "redis", NULL, "connected to %s as node %s", r->url,
                  r->node_id);
    }
    r->down_logged = 0;
    r->ever_up = 1;
}

static void on_retry(uv_timer_t *t)
{
    conn_start(t->data);
}

static void schedule_retry(rconn *c)
{
    if (c->r->closing)
        return;
    uv_timer_start(&c->timer, on_retry, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    (void)privdata;
    rconn *c = ac->data;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL, "%s: AUTH refused: %s", c->r->url, rep->str);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rconn *c = cac->data;
    ferry_redis *r = c->r;
    uv_timer_stop(&c->timer);
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this returns */
        if (r->closing)
            return;
        link_down(c, cac->errstr);
        schedule_retry(c);
        return;
    }
    c->up = 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (r->password != NULL) {
        const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(r->password)};
        redisAsyncCommandArgv(c->ac, on_auth, NULL, r->user ? 3 : 2, argv, lens);
    }
    if (c->is_sub)
        chans_each(r, chan_sync);
    else
        redis_rec_linked(r); /* listed as a live node before any record it writes */
    link_maybe_up(r);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    rconn *c = cac->data;
    ferry_redis *r = c->r;
    (void)status;
    c->ac = NULL; /* hiredis frees it after this returns */
    c->up = 0;
    if (c->is_sub)
        chans_each(r, chan_reset);
    if (r->closing)
        return;
    link_down(c, cac->errstr[0] ? cac->errstr : "connection closed");
    schedule_retry(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
    rconn *c = t->data;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac); /* not connected: no callback */
    link_down(c, "connect timed out");
    schedule_retry(c);
}

static void closing_step(ferry_redis *r);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ferry_redis *r = req->data;
    r->resolving = 0;
    if (status == 0 && res != NULL) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, r->ip, sizeof(r->ip));
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, r->ip, sizeof(r->ip));
    }
    uv_freeaddrinfo(res);
    if (r->closing) {
        closing_step(r);
        return;
    }
    rconn *cs[2] = {&r->pub, &r->sub};
    for (int i = 0; i < 2; i++) {
        if (r->ip[0] != '\0') {
            conn_start(cs[i]);
        } else {
            link_down(cs[i], status != 0 ? uv_strerror(status) : "no address");
            schedule_retry(cs[i]);
        }
    }
}

static void conn_start(rconn *c)
{
    ferry_redis *r = c->r;
    if (r->closing || c->ac != NULL)
        return;
    if (r->ip[0] == '\0') {
        /* Resolved off the loop (libuv's thread pool); both connections wait for it. */
        if (!r->resolving) {
            struct addrinfo hints;
            memset(&hints, 0, sizeof(hints));
            hints.ai_socktype = SOCK_STREAM;
            r->gai.data = r;
            if (uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->host, NULL, &hints) == 0) {
                r->resolving = 1;
            } else {
                link_down(c, "cannot resolve");
                schedule_retry(c);
            }
        }
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(r->ip, r->port);
    if (ac == NULL || ac->err) {
        link_down(c, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        link_down(c, "cannot watch the socket");
        schedule_retry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    uv_timer_start(&c->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

/* ------------------------------------------------------------------ the adapter */

static void on_room(void *ud, const char *room, int exists)
{
    redis_adapter *a = ud;
    size_t len;
    char *name = chan_name(a->r, a->nsp, room, &len);
    if (name == NULL) {
        FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL, "out of memory: room %s not subscribed", room);
        return;
    }
    if (exists)
        chan_want(a->r, name, len);
    else
        chan_unwant(a->r, name, len);
    ferry_mem_free(name);
}

static int ra_add_all(ferry_adapter *base, ferry_socket *s, const char *sid,
                      const char *const *rooms, size_t n)
{
    redis_adapter *a = (redis_adapter *)base;
    return a->local->ops->add_all(a->local, s, sid, rooms, n);
}

static void ra_del(ferry_adapter *base, const char *sid, const char *room)
{
    redis_adapter *a = (redis_adapter *)base;
    a->local->ops->del(a->local, sid, room);
}

static void ra_del_all(ferry_adapter *base, const char *sid)
{
    redis_adapter *a = (redis_adapter *)base;
    a->local->ops->del_all(a->local, sid);
}

static int ra_has(ferry_adapter *base, const char *sid, const char *room)
{
    redis_adapter *a = (redis_adapter *)base;
    return a->local->ops->has(a->local, sid, room);
}

static size_t ra_socket_rooms(ferry_adapter *base, const char *sid, const char **out, size_t max)
{
    redis_adapter *a = (redis_adapter *)base;
    return a->local->ops->socket_rooms(a->local, sid, out, max);
}

static int ra_fetch(ferry_adapter *base, const ferry_adapter_target *t, ferry_adapter_visit_cb cb,
                    void *ud)
{
    redis_adapter *a = (redis_adapter *)base;
    return a->local->ops->fetch(a->local, t, cb, ud);
}

static int ra_broadcast(ferry_adapter *base, const ferry_adapter_packet *pkt,
                        const ferry_adapter_target *t)
{
    redis_adapter *a = (redis_adapter *)base;
    int rc = a->local->ops->broadcast(a->local, pkt, t);
    if (rc >= 0 && !(t->flags & FERRY_ADAPTER_LOCAL))
        forward(a, pkt, t);
    return rc;
}

static void ra_rec_save(ferry_adapter *base, const char *pid, const char *rec, size_t len,
                        uint32_t window_ms, size_t max_bytes, size_t max_packets)
{
    redis_adapter *a = (redis_adapter *)base;
    redis_rec_save(a->r, a->nsp, pid, rec, len, window_ms, max_bytes, max_packets);
}

static void ra_rec_drop(ferry_adapter *base, const char *pid)
{
    redis_adapter *a = (redis_adapter *)base;
    redis_rec_drop(a->r, a->nsp, pid);
}

static int ra_rec_find(ferry_adapter *base, const char *pid, ferry_adapter_found_cb cb, void *ud)
{
    redis_adapter *a = (redis_adapter *)base;
    return redis_rec_find(a->r, a->nsp, base, pid, cb, ud);
}

static int ra_rec_read(ferry_adapter *base, const char *const *nodes, size_t nnodes,
                       const ferry_adapter_pos *pos, size_t npos, ferry_adapter_entries_cb cb,
                       void *ud)
{
    redis_adapter *a = (redis_adapter *)base;
    return redis_rec_read(a->r, a->nsp, base, nodes, nnodes, pos, npos, cb, ud);
}

static int ra_cluster_send(ferry_adapter *base, const cJSON *cmd, uint32_t timeout_ms,
                           ferry_adapter_answers_cb cb, void *ud)
{
    redis_adapter *a = (redis_adapter *)base;
    return redis_q_send(a->r, a->nsp, base, cmd, timeout_ms, cb, ud);
}

static const char *ra_node_id(ferry_adapter *base)
{
    return ((redis_adapter *)base)->r->node_id;
}

static void ra_destroy(ferry_adapter *base)
{
    redis_adapter *a = (redis_adapter *)base;
    redis_rec_nsp_del(a->r, a->nsp, base); /* answers still due come now */
    redis_q_cancel(a->r, base);
    redis_q_channels(a->r, a->nsp, 0);
    a->local->ops->destroy(a->local); /* its rooms' channels are unwanted through on_room */
    chan_unwant(a->r, a->nsp_channel, strlen(a->nsp_channel));
    ferry_list_remove(&a->link);
    ferry_mem_free(a->nsp_channel);
    ferry_mem_free(a->nsp);
    ferry_mem_free(a);
}

static const ferry_adapter_ops redis_ops = {
    .name = "redis",
    .add_all = ra_add_all,
    .del = ra_del,
    .del_all = ra_del_all,
    .has = ra_has,
    .socket_rooms = ra_socket_rooms,
    .fetch = ra_fetch,
    .broadcast = ra_broadcast,
    .destroy = ra_destroy,
    .rec_save = ra_rec_save,
    .rec_drop = ra_rec_drop,
    .rec_find = ra_rec_find,
    .rec_read = ra_rec_read,
    .node_id = ra_node_id,
    .cluster_send = ra_cluster_send,
};

static int redis_create(void *ud, const char *nsp, const ferry_adapter_host *host,
                        ferry_adapter **out)
{
    ferry_redis *r = ud;
    redis_adapter *a = ferry_mem_calloc(1, sizeof(*a));
    size_t len = 0;
    if (a == NULL)
        return -FERRY_ENOMEM;
    a->super.ops = &redis_ops;
    a->r = r;
    a->host = *host;
    ferry_list_init(&a->link);
    a->nsp = ferry_mem_strdup(nsp);
    a->nsp_channel = chan_name(r, nsp, NULL, &len);
    if (a->nsp == NULL || a->nsp_channel == NULL ||
        ferry_adapter_local_new(&a->host, on_room, a, &a->local) != 0) {
        ferry_mem_free(a->nsp_channel);
        ferry_mem_free(a->nsp);
        ferry_mem_free(a);
        return -FERRY_ENOMEM;
    }
    ferry_list_insert_tail(&r->adapters, &a->link);
    chan_want(r, a->nsp_channel, len);
    redis_rec_nsp_add(r, a->nsp);
    redis_q_channels(r, a->nsp, 1);
    *out = &a->super;
    return 0;
}

/* ------------------------------------------------------------------ other commands */

typedef struct cmd_wait {
    ferry_redis_reply_fn fn;
    void *ud;
} cmd_wait;

static void on_command(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    cmd_wait w = *(cmd_wait *)privdata;
    ferry_mem_free(privdata);
    redisReply *rep = reply;
    char num[24];
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        w.fn(w.ud, NULL, 0, 0);
    } else if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) {
        w.fn(w.ud, rep->str, rep->len, 1);
    } else if (rep->type == REDIS_REPLY_INTEGER) {
        int n = snprintf(num, sizeof(num), "%lld", rep->integer);
        w.fn(w.ud, num, n > 0 ? (size_t)n : 0, 1);
    } else {
        w.fn(w.ud, NULL, 0, 1); /* nil (or an array: not asked for) */
    }
}

int ferry_redis_command(ferry_redis *r, ferry_redis_reply_fn fn, void *ud, int argc,
                        const char **argv, const size_t *lens)
{
    if (r == NULL || r->closing || (r->shard == NULL && (!r->pub.up || r->pub.ac == NULL)))
        return -FERRY_ECLOSED;
    cmd_wait *w = ferry_mem_alloc(sizeof(*w));
    if (w == NULL)
        return -FERRY_ENOMEM;
    w->fn = fn;
    w->ud = ud;
    /* Sharded: to the node owning argv[1]'s slot (the forwarder's commands have one key). */
    int rc = r->shard != NULL ? (argc >= 2 ? redis_shard_command(r->shard, argc, argv, lens,
                                                                 on_command, w)
                                           : -FERRY_EINVAL)
                              : (redisAsyncCommandArgv(r->pub.ac, on_command, w, argc, argv,
                                                       lens) == REDIS_OK
                                     ? 0
                                     : -FERRY_ECLOSED);
    if (rc != 0) {
        ferry_mem_free(w);
        return rc == -FERRY_ENOMEM ? rc : -FERRY_ECLOSED;
    }
    return 0;
}

const char *ferry_redis_prefix(const ferry_redis *r)
{
    return r->prefix;
}

void ferry_redis_identity(const ferry_redis *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s@%s:%d#%s", r->user ? r->user : "", r->password ? r->password : "",
             r->host, r->port, r->prefix);
}

/* ------------------------------------------------------------------ the public object */

const ferry_adapter_factory *ferry_redis_factory(ferry_redis *r)
{
    return r != NULL ? &r->factory : NULL;
}

static int valid_node_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NODE_ID_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* redis://[[user]:password@]host[:port][/db]; host may be [v6]. db is accepted and unused
 * (pub/sub channels are shared by every database). */
static int parse_url(ferry_redis *r, const char *url)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -FERRY_EINVAL;
    const char *p = url + sizeof(scheme) - 1;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return -FERRY_EINVAL;
        if (colon > p && (r->user = ferry_mem_strndup(p, (size_t)(colon - p))) == NULL)
            return -FERRY_ENOMEM;
        if ((r->password = ferry_mem_strndup(colon + 1, (size_t)(at - colon - 1))) == NULL)
            return -FERRY_ENOMEM;
        p = at + 1;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (he == NULL)
            return -FERRY_EINVAL;
        p = he + 1;
    } else {
        he = memchr(p, ':', (size_t)(end - p));
        if (he == NULL)
            he = end;
        p = he;
    }
    if (he == hs)
        return -FERRY_EINVAL;
    r->port = 6379;
    if (p < end) {
        if (*p != ':' || p + 1 == end || end - p > 6)
            return -FERRY_EINVAL;
        int port = 0;
        for (const char *q = p + 1; q < end; q++) {
            if (*q < '0' || *q > '9')
                return -FERRY_EINVAL;
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return -FERRY_EINVAL;
        r->port = port;
    }
    if ((r->host = ferry_mem_strndup(hs, (size_t)(he - hs))) == NULL)
        return -FERRY_ENOMEM;
    /* For log lines: the URL without its credentials. */
    char shown[300];
    snprintf(shown, sizeof(shown), "redis://%s%s%s:%d", *url && strchr(r->host, ':') ? "[" : "",
             r->host, strchr(r->host, ':') ? "]" : "", r->port);
    if ((r->url = ferry_mem_strdup(shown)) == NULL)
        return -FERRY_ENOMEM;
    /* An address literal needs no resolution. */
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    if (uv_ip4_addr(r->host, 0, &a4) == 0 || uv_ip6_addr(r->host, 0, &a6) == 0)
        snprintf(r->ip, sizeof(r->ip), "%s", r->host);
    return 0;
}

static void free_link(ferry_redis *r)
{
    while (r->nchans > 0)
        for (size_t i = 0; i < r->nb; i++)
            while (r->chans[i] != NULL)
                chan_free(r, r->chans[i]);
    ferry_mem_free(r->chans);
    ferry_mem_free(r->url);
    ferry_mem_free(r->host);
    ferry_mem_free(r->user);
    ferry_mem_free(r->password);
    ferry_mem_free(r->prefix);
    redis_rec_free(r->rec);
    redis_shard_free(r->shard);
    ferry_mem_free(r);
}

int ferry_redis_new(uv_loop_t *loop, const ferry_redis_config *cfg, ferry_redis **out)
{
    if (loop == NULL || cfg == NULL || cfg->url == NULL || out == NULL ||
        (cfg->node_id != NULL && !valid_node_id(cfg->node_id)) ||
        (cfg->prefix != NULL && (cfg->prefix[0] == '\0' || strlen(cfg->prefix) > 128)))
        return -FERRY_EINVAL;
    ferry_redis *r = ferry_mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return -FERRY_ENOMEM;
    r->loop = loop;
    ferry_list_init(&r->adapters);
    ferry_list_init(&r->linger);
    ferry_list_init(&r->q.reqs);
    r->nb = 64;
    r->chans = ferry_mem_calloc(r->nb, sizeof(*r->chans));
    r->prefix = ferry_mem_strdup(cfg->prefix != NULL ? cfg->prefix : "ferry");
    int rc = r->chans != NULL && r->prefix != NULL ? parse_url(r, cfg->url) : -FERRY_ENOMEM;
    if (rc == 0)
        rc = redis_rec_new(r, &r->rec);
    if (rc == 0 && cfg->sharded)
        rc = redis_shard_new(r, &r->shard);
    if (rc != 0) {
        free_link(r);
        return rc;
    }
    if (cfg->node_id != NULL) {
        snprintf(r->node_id, sizeof(r->node_id), "%s", cfg->node_id);
    } else {
        uint8_t rnd[8];
        if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0) {
            uint64_t x = uv_hrtime() ^ (uint64_t)uv_os_getpid() << 32;
            memcpy(rnd, &x, sizeof(rnd));
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(r->node_id + 2 * i, 3, "%02x", rnd[i]);
    }
    r->factory.name = "redis";
    r->factory.create = redis_create;
    r->factory.ud = r;
    rconn *cs[2] = {&r->pub, &r->sub};
    for (int i = 0; i < 2; i++) {
        cs[i]->r = r;
        cs[i]->is_sub = i == 1;
        cs[i]->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(loop, &cs[i]->timer);
        cs[i]->timer.data = cs[i];
    }
    uv_timer_init(loop, &r->final);
    r->final.data = r;
    conn_start(&r->pub);
    if (r->shard == NULL) /* sharded: redis_shard.c subscribes on each slot's node */
        conn_start(&r->sub);
    *out = r;
    return 0;
}

const char *ferry_redis_node_id(const ferry_redis *r)
{
    return r->node_id;
}

void ferry_redis_stats_get(const ferry_redis *r, ferry_redis_stats *out)
{
    *out = r->st;
}

static void on_final_closed(uv_handle_t *h)
{
    ferry_redis *r = h->data;
    FERRY_ASSERT(ferry_list_empty(&r->adapters)); /* every server using r was freed */
    if (r->close_cb != NULL)
        r->close_cb(r, r->close_ud);
    free_link(r);
}

static void closing_step(ferry_redis *r)
{
    /* The last: hiredis's poll handles were closed before our timers, so their close
     * callbacks have run by now or run in this same pass; the final timer's runs in the next
     * one, after them all, and only then is the user told (and may close the loop). */
    if (--r->closing_handles == 0) {
        r->final.data = r;
        uv_close((uv_handle_t *)&r->final, on_final_closed);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    closing_step(((rconn *)h->data)->r);
}

void ferry_redis_close(ferry_redis *r, ferry_redis_close_cb cb, void *user_data)
{
    if (r == NULL || r->closing)
        return;
    /* Servers using r are closed: inside their close callback, their adapters are destroyed
     * right after it returns, long before the link's handles finish closing. */
    r->closing = 1;
    r->close_cb = cb;
    r->close_ud = user_data;
    rconn *cs[2] = {&r->pub, &r->sub};
    for (int i = 0; i < 2; i++) {
        redisAsyncContext *ac = cs[i]->ac;
        cs[i]->ac = NULL;
        cs[i]->up = 0;
        if (ac != NULL)
            redisAsyncFree(ac); /* closes its poll handle now */
    }
    r->closing_handles = 3;
    redis_rec_close(r->rec, closing_step);
    if (r->shard != NULL) {
        r->closing_handles++;
        redis_shard_close(r->shard, closing_step);
    }
    if (r->resolving) {
        r->closing_handles++;
        uv_cancel((uv_req_t *)&r->gai); /* on_resolved counts it down */
    }
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&cs[i]->timer, on_timer_closed);
}

/* ------------------------------------------------------------------ for redis_recovery.c */

redisAsyncContext *redis_cmd_ctx(ferry_redis *r)
{
    return r->pub.up && !r->closing ? r->pub.ac : NULL;
}

uv_loop_t *redis_loop(ferry_redis *r)
{
    return r->loop;
}

const char *redis_prefix(const ferry_redis *r)
{
    return r->prefix;
}

void redis_seed(const ferry_redis *r, const char **ip, int *port, const char **user,
                const char **password)
{
    *ip = r->ip;
    *port = r->port;
    *user = r->user;
    *password = r->password;
}

int redis_publish(ferry_redis *r, const char *chan, const char *msg, size_t len,
                  redisCallbackFn *cb, void *ud)
{
    const char *argv[3] = {r->shard != NULL ? "SPUBLISH" : "PUBLISH", chan, msg};
    size_t lens[3] = {strlen(argv[0]), strlen(chan), len};
    if (r->closing)
        return -FERRY_ECLOSED;
    if (r->shard != NULL)
        return redis_shard_command(r->shard, 3, argv, lens, cb, ud);
    redisAsyncContext *ac = redis_cmd_ctx(r);
    if (ac == NULL)
        return -FERRY_ECLOSED;
    return redisAsyncCommandArgv(ac, cb, ud, 3, argv, lens) == REDIS_OK ? 0 : -FERRY_ECLOSED;
}

int redis_can_publish(ferry_redis *r)
{
    return r->shard != NULL ? !r->closing : redis_cmd_ctx(r) != NULL;
}

int ferry_redis_shard_stats_get(const ferry_redis *r, ferry_redis_shard_stats *out)
{
    if (r == NULL || out == NULL || r->shard == NULL)
        return -FERRY_EINVAL;
    redis_shard_stats(r->shard, out);
    return 0;
}

redis_rec *redis_rec_of(ferry_redis *r)
{
    return r->rec;
}

redis_q *redis_q_of(ferry_redis *r)
{
    return &r->q;
}

const char *redis_node(const ferry_redis *r)
{
    return r->node_id;
}

void redis_chan(ferry_redis *r, const char *name, int want)
{
    if (want)
        chan_want(r, name, strlen(name));
    else
        chan_unwant(r, name, strlen(name));
}

const ferry_adapter_host *redis_host_of(ferry_redis *r, const char *nsp)
{
    ferry_list *it;
    ferry_list_foreach(it, &r->adapters)
    {
        redis_adapter *a = ferry_list_entry(it, redis_adapter, link);
        if (strcmp(a->nsp, nsp) == 0)
            return &a->host;
    }
    return NULL;
}
