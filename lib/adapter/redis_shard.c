/* Sharded pub/sub (Redis 7's SSUBSCRIBE / SPUBLISH) for a Redis Cluster or a single Redis 7:
 * ferry_redis_config.sharded, tools/ferry --redis-sharded (docs/scaling.md "Redis Cluster:
 * sharded pub/sub").
 *
 * Classic pub/sub in a Redis Cluster sends every PUBLISH to every node of the cluster: the bus
 * carries all the traffic, whatever the number of shards. A sharded channel lives on the node
 * owning its hash slot (CRC16 of its name, as a key): SPUBLISH goes to that node only and its
 * subscribers are connected to that node. ferry's channels are named by namespace and room
 * (redis.c), so rooms spread over the shards.
 *
 * Why not hiredis's async API: Debian's hiredis (0.14) treats only SUBSCRIBE/PSUBSCRIBE
 * replies as push messages and asserts on any other reply of a subscribed connection, so
 * SSUBSCRIBE cannot go through redisAsyncCommand. The connections here are ferry's own: a
 * uv_tcp_t per connection, commands formatted by redisFormatCommandArgv, replies read by
 * hiredis's reader (redisReaderCreate/Feed/GetReply), all on the loop, every buffer bounded.
 *
 * Per Redis node (a master owning slots), two connections: one subscribed (SSUBSCRIBE of the
 * channels whose slot it owns) and one for commands (SPUBLISH, CLUSTER SLOTS, keyed commands
 * of ferry_redis_command, answered in order). The slot map comes from CLUSTER SLOTS, read from
 * any node that is up: at start, every 5 s, and soon (at most every 200 ms) after a MOVED, a
 * node lost, or a channel Redis unsubscribed on its own (its slot moved: Redis sends
 * sunsubscribe). A Redis without cluster mode answers CLUSTER SLOTS with an error: it owns
 * every slot. A command answered MOVED goes again to the node named (the map is updated for
 * that slot at once), ASK goes to the node named after ASKING; at most 5 redirections. A lost
 * connection is made again after 100 ms, doubling to 5 s (as redis.c); the subscribed one then
 * subscribes again to its channels. Whatever is sent while a node is down is not queued: the
 * broadcast stays local and is counted (redis.c), as with one Redis. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "adapter/redis_shard.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

#define MAX_NODES 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 5000
#define REFRESH_EVERY_MS 5000
#define REFRESH_MIN_MS 200
#define MAX_HELD (64u << 20)   /* command bytes of one connection not yet answered */
#define MAX_UNREAD (64u << 20) /* bytes of one connection read and not yet a whole reply */
#define MAX_REDIRECTS 5
#define HOST_MAX 64

/* ------------------------------------------------------------------ sans-I/O pieces */

uint16_t redis_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1)
            return redis_crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_SLOTS - 1);
    }
    return redis_crc16(key, len) & (REDIS_SLOTS - 1);
}

int redis_redirect_parse(const char *err, size_t len, unsigned *slot, char *host, size_t cap,
                         int *port)
{
    int kind;
    size_t i;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0)
        kind = 1, i = 6;
    else if (len > 4 && memcmp(err, "ASK ", 4) == 0)
        kind = 2, i = 4;
    else
        return 0;
    unsigned long v = 0;
    size_t start = i;
    for (; i < len && err[i] >= '0' && err[i] <= '9' && i - start < 6; i++)
        v = v * 10 + (unsigned)(err[i] - '0');
    if (i == start || v >= REDIS_SLOTS || i >= len || err[i] != ' ')
        return 0;
    i++;
    /* host:port, the port after the last ':' (an IPv6 host has colons, maybe brackets). */
    const char *a = err + i;
    size_t alen = len - i;
    const char *colon = NULL;
    for (size_t k = 0; k < alen; k++)
        if (a[k] == ':')
            colon = a + k;
    if (colon == NULL || colon == a || (size_t)(a + alen - colon - 1) == 0 ||
        (size_t)(a + alen - colon - 1) > 5)
        return 0;
    long p = 0;
    for (const char *q = colon + 1; q < a + alen; q++) {
        if (*q < '0' || *q > '9')
            return 0;
        p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535)
        return 0;
    const char *hs = a, *he = colon;
    if (*hs == '[' && he > hs + 1 && he[-1] == ']')
        hs++, he--;
    if ((size_t)(he - hs) + 1 > cap)
        return 0;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *slot = (unsigned)v;
    *port = (int)p;
    return kind;
}

int redis_slots_parse(const redisReply *rep, redis_slots_fn fn, void *ud)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            return -1;
        long long first = e->element[0]->integer, last = e->element[1]->integer;
        const redisReply *m = e->element[2];
        if (first < 0 || last < first || last >= REDIS_SLOTS ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer < 1 ||
            m->element[1]->integer > 65535 || m->element[0]->len >= HOST_MAX)
            return -1;
        /* "?" (Redis 7: endpoint unknown) is as good as none. */
        const char *host = strcmp(m->element[0]->str, "?") == 0 ? "" : m->element[0]->str;
        fn(ud, (unsigned)first, (unsigned)last, host, (int)m->element[1]->integer);
    }
    return (int)rep->elements;
}

int redis_push_parse(const redisReply *rep, const char **chan, size_t *clen, const char **data,
                     size_t *dlen)
{
    *data = NULL;
    *dlen = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return PUSH_NONE;
    const char *kind = rep->element[0]->str;
    *chan = rep->element[1]->str;
    *clen = rep->element[1]->len;
    if (strcmp(kind, "smessage") == 0) {
        if (rep->element[2]->type != REDIS_REPLY_STRING)
            return PUSH_NONE;
        *data = rep->element[2]->str;
        *dlen = rep->element[2]->len;
        return PUSH_MESSAGE;
    }
    if (rep->element[2]->type != REDIS_REPLY_INTEGER)
        return PUSH_NONE;
    if (strcmp(kind, "ssubscribe") == 0)
        return PUSH_SUBSCRIBED;
    if (strcmp(kind, "sunsubscribe") == 0)
        return PUSH_UNSUBSCRIBED;
    return PUSH_NONE;
}

/* ------------------------------------------------------------------ objects */

typedef struct cmdbuf {
    unsigned refs;
    size_t len;
    char data[];
} cmdbuf;

enum { SC_DOWN, SC_CONNECTING, SC_UP, SC_CLOSING };

typedef struct snode snode;
typedef struct redis_shard redis_shard;

typedef struct sconn {
    snode *n;
    int is_sub;
    int state;
    uv_tcp_t tcp; /* initialised while state is not SC_DOWN */
    uv_connect_t creq;
    uv_timer_t timer; /* connect timeout, wait before the next attempt, a failure deferred */
    const char *why;  /* the deferred failure's reason */
    redisReader *rd;
    ferry_list waits; /* commands: swait; subscribed: ssent, in the order sent */
    size_t held;      /* bytes of the commands in waits */
    unsigned backoff_ms;
    char rbuf[16384];
} sconn;

struct snode {
    redis_shard *s;
    char host[HOST_MAX];
    int port;
    int down_logged;
    uint64_t down_since;
    sconn cmd, sub;
};

/* A command of the command connection waiting for its reply. */
typedef struct swait {
    ferry_list link;
    redisCallbackFn *cb;
    void *ud;
    cmdbuf *cmd; /* kept for a redirection (NULL: ASKING, AUTH) */
    unsigned redirects;
} swait;

/* A command of the subscribed connection waiting for its answer. */
enum { SENT_AUTH, SENT_SUB, SENT_UNSUB };
typedef struct ssent {
    ferry_list link;
    int kind;
    size_t len;
    char name[];
} ssent;

typedef struct schan {
    struct schan *next;
    uint32_t hash;
    unsigned slot;
    snode *on;  /* the node it was SSUBSCRIBEd on (NULL: none now) */
    int ok;     /* that node confirmed */
    int before; /* it was subscribed once: the next time counts as resubscribed */
    size_t len;
    char name[];
} schan;

struct redis_shard {
    ferry_redis *r;
    uv_loop_t *loop;
    snode *nodes[MAX_NODES];
    size_t nnodes;
    snode *owner[REDIS_SLOTS];
    snode *next_owner[REDIS_SLOTS]; /* the map being read */
    int have_map;
    int map_logged; /* a bad map or an error was logged */
    schan **chans;
    size_t nb, nchans;
    uv_timer_t refresh;
    uint64_t refresh_due; /* when the timer fires */
    uint64_t last_refresh;
    int refresh_busy;  /* a CLUSTER SLOTS in flight */
    int refresh_again; /* asked for while one was in flight */
    unsigned dropped;  /* channels Redis unsubscribed since the last map read */
    snode *refresh_via;
    int closing;
    unsigned closing_handles;
    void (*done)(ferry_redis *r);
    ferry_redis_shard_stats st;
};

static void conn_start(sconn *c);
static void conn_fail(sconn *c, const char *why);
static void closing_step(redis_shard *s);
static void on_refresh(uv_timer_t *t);
static void refresh_soon(redis_shard *s);
static void chan_sync(redis_shard *s, schan *x);

/* ------------------------------------------------------------------ commands */

static cmdbuf *cmd_format(int argc, const char **argv, const size_t *lens)
{
    char *text = NULL;
    int n = redisFormatCommandArgv(&text, argc, argv, lens);
    if (n < 0 || text == NULL)
        return NULL;
    cmdbuf *b = ferry_mem_alloc(sizeof(*b) + (size_t)n);
    if (b != NULL) {
        b->refs = 1;
        b->len = (size_t)n;
        memcpy(b->data, text, (size_t)n);
    }
    redisFreeCommand(text);
    return b;
}

static void cmd_unref(cmdbuf *b)
{
    if (b != NULL && --b->refs == 0)
        ferry_mem_free(b);
}

typedef struct swrite {
    uv_write_t req;
    sconn *c;
    cmdbuf *cmd;
} swrite;

static void on_conn_timer(uv_timer_t *t);

/* Fail c on its next timer turn: never inside a caller's call. */
static void conn_fail_later(sconn *c, const char *why)
{
    if (c->state != SC_UP)
        return;
    c->why = why;
    uv_timer_start(&c->timer, on_conn_timer, 0, 0);
}

static void on_written(uv_write_t *req, int status)
{
    swrite *w = (swrite *)req;
    if (status < 0 && status != UV_ECANCELED)
        conn_fail_later(w->c, "write failed");
    cmd_unref(w->cmd);
    ferry_mem_free(w);
}

static int conn_write(sconn *c, cmdbuf *cmd)
{
    if (c->state != SC_UP)
        return -FERRY_ECLOSED;
    swrite *w = ferry_mem_alloc(sizeof(*w));
    if (w == NULL)
        return -FERRY_ENOMEM;
    w->c = c;
    w->cmd = cmd;
    cmd->refs++;
    uv_buf_t b = uv_buf_init(cmd->data, (unsigned)cmd->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        cmd_unref(cmd);
        ferry_mem_free(w);
        conn_fail_later(c, "write failed");
        return -FERRY_ECLOSED;
    }
    return 0;
}

/* Send cmd on n's command connection; the reply goes to cb. */
static int cmd_send(snode *n, cmdbuf *cmd, int keep, redisCallbackFn *cb, void *ud)
{
    sconn *c = &n->cmd;
    if (c->state != SC_UP)
        return -FERRY_ECLOSED;
    if (c->held + cmd->len > MAX_HELD)
        return -FERRY_ELIMIT;
    swait *w = ferry_mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return -FERRY_ENOMEM;
    int rc = conn_write(c, cmd);
    if (rc != 0) {
        ferry_mem_free(w);
        return rc;
    }
    w->cb = cb;
    w->ud = ud;
    if (keep) {
        w->cmd = cmd;
        cmd->refs++;
        c->held += cmd->len;
    }
    ferry_list_insert_tail(&c->waits, &w->link);
    return 0;
}

static int cmd_send_argv(snode *n, int argc, const char **argv, const size_t *lens,
                         redisCallbackFn *cb, void *ud)
{
    cmdbuf *b = cmd_format(argc, argv, lens);
    if (b == NULL)
        return -FERRY_ENOMEM;
    int rc = cmd_send(n, b, 0, cb, ud);
    cmd_unref(b);
    return rc;
}

static void wait_finish(sconn *c, swait *w, redisReply *rep)
{
    if (w->cmd != NULL) {
        c->held -= w->cmd->len;
        cmd_unref(w->cmd);
    }
    redisCallbackFn *cb = w->cb;
    void *ud = w->ud;
    ferry_mem_free(w);
    if (cb != NULL)
        cb(NULL, rep, ud);
}

/* On the subscribed connection: SSUBSCRIBE or SUNSUBSCRIBE name (or AUTH). */
static int sub_send(snode *n, int kind, int argc, const char **argv, const size_t *lens)
{
    sconn *c = &n->sub;
    if (c->state != SC_UP)
        return -FERRY_ECLOSED;
    size_t nl = kind == SENT_AUTH ? 0 : lens[1];
    ssent *e = ferry_mem_alloc(sizeof(*e) + nl);
    cmdbuf *b = e != NULL ? cmd_format(argc, argv, lens) : NULL;
    int rc = b != NULL ? conn_write(c, b) : -FERRY_ENOMEM;
    cmd_unref(b);
    if (rc != 0) {
        ferry_mem_free(e);
        return rc;
    }
    e->kind = kind;
    e->len = nl;
    if (nl > 0)
        memcpy(e->name, argv[1], nl);
    ferry_list_insert_tail(&c->waits, &e->link);
    return 0;
}

static int sub_chan(snode *n, int kind, const char *name, size_t len)
{
    const char *cmd = kind == SENT_SUB ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
    const char *argv[2] = {cmd, name};
    size_t lens[2] = {strlen(cmd), len};
    return sub_send(n, kind, 2, argv, lens);
}

/* ------------------------------------------------------------------ channels */

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static schan *chan_find(const redis_shard *s, const char *name, size_t len)
{
    uint32_t h = hash_bytes(name, len);
    for (schan *x = s->chans[h & (s->nb - 1)]; x != NULL; x = x->next)
        if (x->hash == h && x->len == len && memcmp(x->name, name, len) == 0)
            return x;
    return NULL;
}

static void chans_each(redis_shard *s, void (*fn)(redis_shard *, schan *, void *), void *ud)
{
    for (size_t i = 0; i < s->nb; i++)
        for (schan *x = s->chans[i], *next; x != NULL; x = next) {
            next = x->next;
            fn(s, x, ud);
        }
}

/* Bring x to the node owning its slot. */
static void chan_sync(redis_shard *s, schan *x)
{
    snode *to = s->owner[x->slot];
    if (x->on != NULL && x->on == to)
        return;
    if (x->on != NULL) {
        sub_chan(x->on, SENT_UNSUB, x->name, x->len); /* it moved: leave the old node */
        x->on = NULL;
        x->ok = 0;
    }
    if (to == NULL || to->sub.state != SC_UP || s->closing)
        return; /* when the node is up or the map known, again */
    if (sub_chan(to, SENT_SUB, x->name, x->len) == 0) {
        x->on = to;
        if (x->before)
            s->st.resubscribed++;
        x->before = 1;
    }
}

static void sync_one(redis_shard *s, schan *x, void *ud)
{
    (void)ud;
    chan_sync(s, x);
}

static void forget_node(redis_shard *s, schan *x, void *ud)
{
    (void)s;
    if (x->on == ud) {
        x->on = NULL;
        x->ok = 0;
    }
}

void redis_shard_want(redis_shard *s, const char *name, size_t len, int want)
{
    if (s->closing)
        return;
    schan *x = chan_find(s, name, len);
    if (want) {
        if (x != NULL)
            return;
        x = ferry_mem_calloc(1, sizeof(*x) + len + 1);
        if (x == NULL) {
            FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL,
                      "out of memory: sharded channel %.*s not subscribed", (int)len, name);
            return;
        }
        memcpy(x->name, name, len);
        x->len = len;
        x->hash = hash_bytes(name, len);
        x->slot = redis_keyslot(name, len);
        if (s->nchans >= s->nb) {
            size_t nb = s->nb * 2;
            schan **b = ferry_mem_calloc(nb, sizeof(*b));
            if (b != NULL) {
                for (size_t i = 0; i < s->nb; i++)
                    for (schan *c = s->chans[i], *next; c != NULL; c = next) {
                        next = c->next;
                        c->next = b[c->hash & (nb - 1)];
                        b[c->hash & (nb - 1)] = c;
                    }
                ferry_mem_free(s->chans);
                s->chans = b;
                s->nb = nb;
            }
        }
        x->next = s->chans[x->hash & (s->nb - 1)];
        s->chans[x->hash & (s->nb - 1)] = x;
        s->nchans++;
        chan_sync(s, x);
        return;
    }
    if (x == NULL)
        return;
    if (x->on != NULL)
        sub_chan(x->on, SENT_UNSUB, x->name, x->len);
    schan **pp = &s->chans[x->hash & (s->nb - 1)];
    while (*pp != x)
        pp = &(*pp)->next;
    *pp = x->next;
    s->nchans--;
    ferry_mem_free(x);
}

/* ------------------------------------------------------------------ nodes */

static void node_init_conn(snode *n, sconn *c, int is_sub)
{
    c->n = n;
    c->is_sub = is_sub;
    c->state = SC_DOWN;
    c->backoff_ms = BACKOFF_MIN_MS;
    ferry_list_init(&c->waits);
    uv_timer_init(n->s->loop, &c->timer);
    c->timer.data = c;
}

static int ip_literal(const char *host)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    return uv_ip4_addr(host, 0, &a4) == 0 || uv_ip6_addr(host, 0, &a6) == 0;
}

/* The node at host:port, made (and connecting) if it is new; NULL when it cannot be. */
static snode *node_get(redis_shard *s, const char *host, int port)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->port == port && strcmp(s->nodes[i]->host, host) == 0)
            return s->nodes[i];
    if (s->closing || s->nnodes >= MAX_NODES || strlen(host) >= HOST_MAX || !ip_literal(host)) {
        if (!s->map_logged)
            FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
                      "Redis node %s:%d not used (ferry takes IP literals, at most %d nodes)", host,
                      port, MAX_NODES);
        s->map_logged = 1;
        return NULL;
    }
    snode *n = ferry_mem_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->s = s;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    node_init_conn(n, &n->cmd, 0);
    node_init_conn(n, &n->sub, 1);
    s->nodes[s->nnodes++] = n;
    conn_start(&n->cmd);
    conn_start(&n->sub);
    return n;
}

static void node_down(snode *n, const char *why)
{
    redis_shard *s = n->s;
    if (n->down_logged || s->closing)
        return;
    n->down_logged = 1;
    n->down_since = uv_now(s->loop);
    FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
              "Redis node %s:%d unreachable (%s): broadcasts to the channels of its slots reach "
              "this node's clients only until it is back; retrying every %u ms at most",
              n->host, n->port, why ? why : "closed", BACKOFF_MAX_MS);
}

static void node_maybe_up(snode *n)
{
    if (n->cmd.state != SC_UP || n->sub.state != SC_UP || !n->down_logged)
        return;
    n->down_logged = 0;
    FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "Redis node %s:%d reachable again after %llu ms",
              n->host, n->port, (unsigned long long)(uv_now(n->s->loop) - n->down_since));
}

/* ------------------------------------------------------------------ connections */

static void on_tcp_closed(uv_handle_t *h)
{
    sconn *c = h->data;
    redis_shard *s = c->n->s;
    c->state = SC_DOWN;
    if (s->closing) {
        closing_step(s);
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void conn_fail(sconn *c, const char *why)
{
    snode *n = c->n;
    redis_shard *s = n->s;
    if (c->state == SC_DOWN || c->state == SC_CLOSING)
        return;
    uv_timer_stop(&c->timer);
    c->state = SC_CLOSING;
    if (c->rd != NULL) {
        redisReaderFree(c->rd);
        c->rd = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    /* What waited for a reply gets none (moved aside first: a callback may send more). */
    ferry_list gone;
    ferry_list_init(&gone);
    while (!ferry_list_empty(&c->waits)) {
        ferry_list *it = c->waits.next;
        ferry_list_remove(it);
        ferry_list_insert_tail(&gone, it);
    }
    while (!ferry_list_empty(&gone)) {
        ferry_list *it = gone.next;
        ferry_list_remove(it);
        if (c->is_sub)
            ferry_mem_free(ferry_list_entry(it, ssent, link));
        else
            wait_finish(c, ferry_list_entry(it, swait, link), NULL);
    }
    if (c->is_sub)
        chans_each(s, forget_node, n);
    node_down(n, why);
    if (!s->closing)
        refresh_soon(s); /* a replica may have taken its slots */
}

static void on_conn_timer(uv_timer_t *t)
{
    sconn *c = t->data;
    if (c->state == SC_CONNECTING)
        conn_fail(c, "connect timed out");
    else if (c->state == SC_DOWN)
        conn_start(c);
    else if (c->state == SC_UP)
        conn_fail(c, c->why);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    sconn *c = h->data;
    (void)size;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_auth(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    snode *n = ud;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL, "Redis node %s:%d: AUTH refused: %s", n->host,
                  n->port, rep->str);
}

static void cmd_reply(sconn *c, redisReply *rep)
{
    redis_shard *s = c->n->s;
    if (ferry_list_empty(&c->waits)) {
        conn_fail(c, rep->type == REDIS_REPLY_ERROR ? rep->str : "a reply nobody asked for");
        return;
    }
    swait *w = ferry_list_entry(c->waits.next, swait, link);
    ferry_list_remove(&w->link);
    if (rep->type == REDIS_REPLY_ERROR && w->cmd != NULL && w->redirects < MAX_REDIRECTS) {
        unsigned slot;
        int port;
        char host[HOST_MAX];
        int kind = redis_redirect_parse(rep->str, rep->len, &slot, host, sizeof(host), &port);
        snode *to = kind != 0 ? node_get(s, host, port) : NULL;
        if (kind == 1) {
            if (to != NULL)
                s->owner[slot] = to;
            refresh_soon(s);
        }
        if (to != NULL) {
            static const char *asking[1] = {"ASKING"};
            static const size_t asking_len[1] = {6};
            int ok = kind != 2 || cmd_send_argv(to, 1, asking, asking_len, NULL, NULL) == 0;
            if (ok && cmd_send(to, w->cmd, 1, w->cb, w->ud) == 0) {
                swait *moved = ferry_list_entry(to->cmd.waits.prev, swait, link);
                moved->redirects = w->redirects + 1;
                s->st.redirects++;
                c->held -= w->cmd->len;
                cmd_unref(w->cmd);
                ferry_mem_free(w);
                return;
            }
        }
    }
    wait_finish(c, w, rep);
}

static void sub_reply(sconn *c, redisReply *rep)
{
    snode *n = c->n;
    redis_shard *s = n->s;
    const char *chan = NULL, *data;
    size_t clen = 0, dlen;
    int kind = redis_push_parse(rep, &chan, &clen, &data, &dlen);
    if (kind == PUSH_MESSAGE) {
        redis_on_message(s->r, data, dlen);
        return;
    }
    ssent *head = ferry_list_empty(&c->waits) ? NULL : ferry_list_entry(c->waits.next, ssent, link);
    if (kind == PUSH_SUBSCRIBED || kind == PUSH_UNSUBSCRIBED) {
        int want = kind == PUSH_SUBSCRIBED ? SENT_SUB : SENT_UNSUB;
        int ours = head != NULL && head->kind == want && head->len == clen &&
                   memcmp(head->name, chan, clen) == 0;
        if (ours) {
            ferry_list_remove(&head->link);
            ferry_mem_free(head);
        }
        schan *x = chan_find(s, chan, clen);
        if (x == NULL || x->on != n)
            return;
        if (kind == PUSH_SUBSCRIBED) {
            x->ok = 1;
        } else if (!ours) {
            /* Redis unsubscribed it on its own: its slot left this node. */
            x->on = NULL;
            x->ok = 0;
            s->st.unsubscribed_by_redis++;
            s->dropped++;
            refresh_soon(s);
        }
        return;
    }
    if (rep->type != REDIS_REPLY_ERROR && rep->type != REDIS_REPLY_STATUS)
        return; /* another push (e.g. a classic "message"): not ours */
    if (head == NULL) {
        if (rep->type == REDIS_REPLY_ERROR)
            conn_fail(c, rep->str);
        return;
    }
    ferry_list_remove(&head->link);
    if (rep->type == REDIS_REPLY_ERROR) {
        if (head->kind == SENT_AUTH) {
            on_auth(NULL, rep, n);
        } else if (head->kind == SENT_SUB) {
            schan *x = chan_find(s, head->name, head->len);
            if (x != NULL && x->on == n) {
                x->on = NULL;
                x->ok = 0;
            }
            unsigned slot;
            int port;
            char host[HOST_MAX];
            if (redis_redirect_parse(rep->str, rep->len, &slot, host, sizeof(host), &port) == 1) {
                snode *to = node_get(s, host, port);
                if (to != NULL)
                    s->owner[slot] = to;
                s->st.redirects++;
                if (x != NULL)
                    chan_sync(s, x);
            } else if (!s->map_logged) {
                s->map_logged = 1;
                FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "Redis node %s:%d: SSUBSCRIBE %.*s: %s",
                          n->host, n->port, (int)head->len, head->name, rep->str);
            }
            refresh_soon(s);
        }
    }
    ferry_mem_free(head);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sconn *c = st->data;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "closed by Redis" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->state != SC_UP)
        return;
    if (redisReaderFeed(c->rd, buf->base, (size_t)nread) != REDIS_OK) {
        conn_fail(c, "out of memory");
        return;
    }
    for (;;) {
        void *rep = NULL;
        if (redisReaderGetReply(c->rd, &rep) != REDIS_OK) {
            conn_fail(c, "not the Redis protocol");
            return;
        }
        if (rep == NULL)
            break;
        if (c->is_sub)
            sub_reply(c, rep);
        else
            cmd_reply(c, rep);
        freeReplyObject(rep);
        if (c->state != SC_UP)
            return; /* failed (or the link closed) meanwhile */
    }
    if (c->rd->len - c->rd->pos > MAX_UNREAD)
        conn_fail(c, "reply too large");
}

static void on_connected(uv_connect_t *req, int status)
{
    sconn *c = req->data;
    snode *n = c->n;
    redis_shard *s = n->s;
    if (c->state != SC_CONNECTING)
        return; /* closed meanwhile (UV_ECANCELED) */
    if (status < 0) {
        conn_fail(c, uv_strerror(status));
        return;
    }
    uv_timer_stop(&c->timer);
    c->rd = redisReaderCreate();
    if (c->rd == NULL) {
        conn_fail(c, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, "cannot read");
        return;
    }
    c->state = SC_UP;
    c->backoff_ms = BACKOFF_MIN_MS;
    const char *user, *password, *ip;
    int port;
    redis_seed(s->r, &ip, &port, &user, &password);
    if (password != NULL) {
        const char *argv[3] = {"AUTH", user ? user : password, password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(password)};
        int argc = user ? 3 : 2;
        if (c->is_sub)
            sub_send(n, SENT_AUTH, argc, argv, lens);
        else
            cmd_send_argv(n, argc, argv, lens, on_auth, n);
    }
    if (c->is_sub)
        chans_each(s, sync_one, NULL);
    else if (!s->have_map)
        refresh_soon(s);
    node_maybe_up(n);
}

static void conn_start(sconn *c)
{
    snode *n = c->n;
    redis_shard *s = n->s;
    if (s->closing || c->state != SC_DOWN)
        return;
    union {
        struct sockaddr sa;
        struct sockaddr_in a4;
        struct sockaddr_in6 a6;
    } addr;
    if (uv_ip4_addr(n->host, n->port, &addr.a4) != 0 &&
        uv_ip6_addr(n->host, n->port, &addr.a6) != 0)
        return; /* node_get takes literals only */
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->state = SC_CONNECTING;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, &addr.sa, on_connected);
    if (rc != 0) {
        conn_fail(c, uv_strerror(rc));
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, CONNECT_TIMEOUT_MS, 0);
}

/* ------------------------------------------------------------------ the slot map */

static void map_range(void *ud, unsigned first, unsigned last, const char *host, int port)
{
    redis_shard *s = ud;
    snode *n = node_get(s, host[0] != '\0' ? host : s->refresh_via->host, port);
    for (unsigned i = first; i <= last; i++)
        s->next_owner[i] = n;
}

static void on_slots(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    redis_shard *s = ud;
    redisReply *rep = reply;
    s->refresh_busy = 0;
    if (s->closing)
        return;
    if (rep == NULL) {
        refresh_soon(s);
        return;
    }
    s->st.map_refreshes++;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strstr(rep->str, "cluster support disabled") != NULL) {
            /* One Redis (7, not a cluster): it owns every slot. */
            for (size_t i = 0; i < REDIS_SLOTS; i++)
                s->owner[i] = s->refresh_via;
            s->have_map = 1;
        } else if (!s->map_logged) {
            s->map_logged = 1;
            FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "CLUSTER SLOTS on %s:%d: %s",
                      s->refresh_via->host, s->refresh_via->port, rep->str);
        }
    } else {
        memset(s->next_owner, 0, sizeof(s->next_owner));
        if (redis_slots_parse(rep, map_range, s) < 0) {
            if (!s->map_logged)
                FERRY_LOG(FERRY_LOG_WARN, "redis", NULL,
                          "CLUSTER SLOTS on %s:%d: an answer ferry cannot read",
                          s->refresh_via->host, s->refresh_via->port);
            s->map_logged = 1;
        } else {
            memcpy(s->owner, s->next_owner, sizeof(s->owner));
            s->have_map = 1;
        }
    }
    if (s->dropped > 0)
        FERRY_LOG(FERRY_LOG_INFO, "redis", NULL,
                  "%u sharded channel(s) left their Redis node with their slot (sunsubscribe): "
                  "subscribing where the new slot map says",
                  s->dropped);
    s->dropped = 0;
    chans_each(s, sync_one, NULL);
    if (s->refresh_again) {
        s->refresh_again = 0;
        refresh_soon(s);
    }
}

static void refresh_at(redis_shard *s, uint64_t due)
{
    if (s->closing)
        return;
    if (uv_is_active((uv_handle_t *)&s->refresh) && s->refresh_due <= due)
        return;
    uint64_t now = uv_now(s->loop);
    s->refresh_due = due;
    uv_timer_start(&s->refresh, on_refresh, due > now ? due - now : 0, 0);
}

static void refresh_soon(redis_shard *s)
{
    if (s->refresh_busy) {
        s->refresh_again = 1;
        return;
    }
    refresh_at(s, s->last_refresh + REFRESH_MIN_MS);
}

static void on_refresh(uv_timer_t *t)
{
    redis_shard *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->closing || s->refresh_busy)
        return;
    snode *via = NULL;
    /* Ask a node that is up; the seed (the URL's Redis) first. */
    const char *user, *password, *ip;
    int port;
    redis_seed(s->r, &ip, &port, &user, &password);
    snode *seed = ip[0] != '\0' ? node_get(s, ip, port) : NULL;
    if (seed != NULL && seed->cmd.state == SC_UP)
        via = seed;
    for (size_t i = 0; via == NULL && i < s->nnodes; i++)
        if (s->nodes[i]->cmd.state == SC_UP)
            via = s->nodes[i];
    if (via == NULL) {
        refresh_at(s, now + 500); /* none up yet: they are connecting */
        return;
    }
    static const char *argv[2] = {"CLUSTER", "SLOTS"};
    static const size_t lens[2] = {7, 5};
    s->refresh_via = via;
    s->last_refresh = now;
    if (cmd_send_argv(via, 2, argv, lens, on_slots, s) == 0)
        s->refresh_busy = 1;
    refresh_at(s, now + (s->refresh_busy ? REFRESH_EVERY_MS : 500));
}

/* ------------------------------------------------------------------ the link's part */

int redis_shard_new(ferry_redis *r, redis_shard **out)
{
    redis_shard *s = ferry_mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return -FERRY_ENOMEM;
    s->nb = 64;
    s->chans = ferry_mem_calloc(s->nb, sizeof(*s->chans));
    if (s->chans == NULL) {
        ferry_mem_free(s);
        return -FERRY_ENOMEM;
    }
    s->r = r;
    s->loop = redis_loop(r);
    uv_timer_init(s->loop, &s->refresh);
    s->refresh.data = s;
    refresh_at(s, uv_now(s->loop));
    *out = s;
    return 0;
}

int redis_shard_command(redis_shard *s, int argc, const char **argv, const size_t *lens,
                        redisCallbackFn *cb, void *privdata)
{
    if (s->closing || argc < 2)
        return -FERRY_ECLOSED;
    snode *n = s->owner[redis_keyslot(argv[1], lens[1])];
    if (n == NULL)
        return -FERRY_ECLOSED;
    cmdbuf *b = cmd_format(argc, argv, lens);
    if (b == NULL)
        return -FERRY_ENOMEM;
    int rc = cmd_send(n, b, 1, cb, privdata);
    cmd_unref(b);
    return rc;
}

void redis_shard_stats(const redis_shard *s, ferry_redis_shard_stats *out)
{
    *out = s->st;
    out->channels = s->nchans;
    for (size_t i = 0; i < s->nb; i++)
        for (const schan *x = s->chans[i]; x != NULL; x = x->next)
            out->subscribed += x->ok;
    for (size_t i = 0; i < s->nnodes; i++) {
        const snode *n = s->nodes[i];
        int owns = 0;
        for (size_t k = 0; k < REDIS_SLOTS && !owns; k++)
            owns = s->owner[k] == n;
        if (!owns)
            continue;
        out->nodes++;
        out->nodes_up += n->cmd.state == SC_UP && n->sub.state == SC_UP;
    }
}

static void closing_step(redis_shard *s)
{
    if (--s->closing_handles == 0)
        s->done(s->r);
}

static void on_timer_closed(uv_handle_t *h)
{
    closing_step(((sconn *)h->data)->n->s);
}

static void on_refresh_closed(uv_handle_t *h)
{
    closing_step(h->data);
}

void redis_shard_close(redis_shard *s, void (*done)(ferry_redis *r))
{
    s->closing = 1;
    s->done = done;
    s->closing_handles = 1;
    uv_close((uv_handle_t *)&s->refresh, on_refresh_closed);
    for (size_t i = 0; i < s->nnodes; i++) {
        sconn *cs[2] = {&s->nodes[i]->cmd, &s->nodes[i]->sub};
        for (int k = 0; k < 2; k++) {
            conn_fail(cs[k], NULL);
            if (cs[k]->state == SC_CLOSING)
                s->closing_handles++; /* on_tcp_closed counts it down */
            s->closing_handles++;
            uv_close((uv_handle_t *)&cs[k]->timer, on_timer_closed);
        }
    }
}

void redis_shard_free(redis_shard *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        ferry_mem_free(s->nodes[i]);
    for (size_t i = 0; i < s->nb; i++)
        for (schan *x = s->chans[i], *next; x != NULL; x = next) {
            next = x->next;
            ferry_mem_free(x);
        }
    ferry_mem_free(s->chans);
    ferry_mem_free(s);
}
