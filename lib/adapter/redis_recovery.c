/* Cross-node connection-state recovery kept in Redis (issue 18, docs/scaling.md "A node that
 * dies").
 *
 * Per namespace and node, in Redis (keys under the link's prefix, "ferry" by default):
 *   <prefix>#<nsp>#log#<node>   a stream: every broadcast this node sent and logged for
 *                               recovery, its ID "<origin seq>-0", fields m (the published
 *                               message, redis.c's format), t (wall-clock ms), p and pt (the
 *                               ID and t of the entry this node wrote before it, 0 for none:
 *                               seqs have holes, so only p tells a reader that entries after
 *                               its position were trimmed). Trimmed (MINID) to the namespace's
 *                               byte and count bounds and window as each entry is added, as
 *                               the node's own log in memory is.
 *   <prefix>#<nsp>#rec#<node>   a hash: pid -> the record of each socket of this node (the
 *                               socket layer's bytes: id, rooms, offsets, outbox), written
 *                               when it connects, joins, leaves, takes an emit, is lost.
 *   <prefix>#<nsp>#nodes        a sorted set: node -> the wall-clock ms of its last beat.
 * The node beats when its command connection comes up, then every BEAT_MS: its score, and the
 * expiry of its two keys set to the window plus GRACE_MS. A node killed with SIGKILL stops beating: its keys go window + grace later,
 * and its entry in the set with them.
 *
 * A socket that comes back through another node: rec_find runs one script that looks for its
 * pid in every live node's hash and takes the record (HDEL: no other node recovers it too);
 * rec_read runs one script that reads each node's log after a position. Nothing blocks: every
 * command goes out on the link's command connection and is answered on the loop. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "adapter/redis_internal.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/wallclock.h"

#define BEAT_MS 2000
#define GRACE_MS 10000
#define DEFAULT_WINDOW_MS 120000
#define DEFAULT_MAX_BYTES (16u << 20)
#define DEFAULT_MAX_PACKETS 10000

typedef struct own_entry {
    uint64_t seq, at;
    size_t bytes;
} own_entry;

typedef struct rec_nsp {
    ferry_list link;
    char *name;
    unsigned refs; /* adapters of this namespace on the link (one per server) */
    uint32_t window_ms;
    size_t max_bytes;
    size_t max_packets; /* entries of one node's log, and of a read from each node's */
    own_entry *ring; /* this node's entries in its log stream, oldest first */
    size_t cap, head, n, bytes;
    uint64_t last_seq, last_at; /* the entry it wrote last (0: none since it started) */
} rec_nsp;

typedef struct rec_wait {
    ferry_list link;
    const ferry_adapter *owner;
    ferry_adapter_found_cb found;
    ferry_adapter_entries_cb entries;
    void *ud;
    int done; /* answered already (its adapter went) */
} rec_wait;

struct redis_rec {
    ferry_redis *r;
    uv_timer_t beat;
    ferry_list nsps;
    ferry_list waits;
    void (*done)(ferry_redis *r);
};

/* ------------------------------------------------------------------ keys */

/* "<prefix>#<nsp>#<kind>[<node>]" into a new string, or NULL. */
static char *key_of(const ferry_redis *r, const char *nsp, const char *kind, const char *node)
{
    size_t n = strlen(redis_prefix(r)) + strlen(nsp) + strlen(kind) + (node ? strlen(node) : 0) + 3;
    char *k = ferry_mem_alloc(n);
    if (k != NULL)
        snprintf(k, n, "%s#%s#%s%s", redis_prefix(r), nsp, kind, node ? node : "");
    return k;
}

static rec_nsp *nsp_find(redis_rec *rc, const char *name)
{
    ferry_list *it;
    ferry_list_foreach(it, &rc->nsps)
    {
        rec_nsp *ns = ferry_list_entry(it, rec_nsp, link);
        if (strcmp(ns->name, name) == 0)
            return ns;
    }
    return NULL;
}

/* One command, its answer ignored (an error shows in the link's next failure). */
static void fire(ferry_redis *r, int argc, const char **argv, const size_t *lens)
{
    redisAsyncContext *ac = redis_cmd_ctx(r);
    if (ac != NULL)
        redisAsyncCommandArgv(ac, NULL, NULL, argc, argv, lens);
}

static void fire_str(ferry_redis *r, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    fire(r, argc, argv, lens);
}

/* ------------------------------------------------------------------ beats */

static void beat_nsp(redis_rec *rc, rec_nsp *ns)
{
    ferry_redis *r = rc->r;
    const char *node = ferry_redis_node_id(r);
    char *nodes = key_of(r, ns->name, "nodes", NULL);
    char *log = key_of(r, ns->name, "log#", node);
    char *rec = key_of(r, ns->name, "rec#", node);
    if (nodes != NULL && log != NULL && rec != NULL) {
        uint64_t now = ferry_wall_ms(), life = (uint64_t)ns->window_ms + GRACE_MS;
        char score[24], old[24], ms[24];
        snprintf(score, sizeof(score), "%" PRIu64, now);
        snprintf(old, sizeof(old), "%" PRIu64, now > life ? now - life : 0);
        snprintf(ms, sizeof(ms), "%" PRIu64, life);
        fire_str(r, 4, (const char *[]){"ZADD", nodes, score, node});
        fire_str(r, 4, (const char *[]){"ZREMRANGEBYSCORE", nodes, "-inf", old});
        fire_str(r, 3, (const char *[]){"PEXPIRE", nodes, ms});
        fire_str(r, 3, (const char *[]){"PEXPIRE", log, ms});
        fire_str(r, 3, (const char *[]){"PEXPIRE", rec, ms});
    }
    ferry_mem_free(nodes);
    ferry_mem_free(log);
    ferry_mem_free(rec);
}

static void on_beat(uv_timer_t *t)
{
    redis_rec *rc = t->data;
    ferry_list *it;
    ferry_list_foreach(it, &rc->nsps)
    beat_nsp(rc, ferry_list_entry(it, rec_nsp, link));
}

/* A node is found by the others only once it is in the nodes set: it beats as soon as its
 * command connection is up (and again after Redis came back, which may have lost the set), not
 * only BEAT_MS later. Commands on one connection keep their order: the ZADD goes before any
 * record the node writes, so a node killed before its first timed beat is still found. */
void redis_rec_linked(ferry_redis *r)
{
    redis_rec *rc = redis_rec_of(r);
    if (rc != NULL)
        on_beat(&rc->beat);
}

int redis_rec_new(ferry_redis *r, redis_rec **out)
{
    redis_rec *rc = ferry_mem_calloc(1, sizeof(*rc));
    if (rc == NULL)
        return -FERRY_ENOMEM;
    rc->r = r;
    ferry_list_init(&rc->nsps);
    ferry_list_init(&rc->waits);
    uv_timer_init(redis_loop(r), &rc->beat);
    rc->beat.data = rc;
    uv_timer_start(&rc->beat, on_beat, BEAT_MS, BEAT_MS);
    uv_unref((uv_handle_t *)&rc->beat);
    *out = rc;
    return 0;
}

static void on_beat_closed(uv_handle_t *h)
{
    redis_rec *rc = h->data;
    rc->done(rc->r);
}

void redis_rec_close(redis_rec *rc, void (*done)(ferry_redis *r))
{
    rc->done = done;
    uv_close((uv_handle_t *)&rc->beat, on_beat_closed);
}

static void nsp_free(rec_nsp *ns)
{
    ferry_list_remove(&ns->link);
    ferry_mem_free(ns->ring);
    ferry_mem_free(ns->name);
    ferry_mem_free(ns);
}

void redis_rec_free(redis_rec *rc)
{
    if (rc == NULL)
        return;
    while (!ferry_list_empty(&rc->nsps))
        nsp_free(ferry_list_entry(rc->nsps.next, rec_nsp, link));
    /* Every wait was answered when the link's connections were freed (a NULL reply). */
    ferry_mem_free(rc);
}

void redis_rec_nsp_add(ferry_redis *r, const char *nsp)
{
    redis_rec *x = redis_rec_of(r);
    rec_nsp *ns = nsp_find(x, nsp);
    if (ns != NULL) {
        ns->refs++;
        return;
    }
    ns = ferry_mem_calloc(1, sizeof(*ns));
    if (ns == NULL || (ns->name = ferry_mem_strdup(nsp)) == NULL) {
        ferry_mem_free(ns);
        FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL,
                  "out of memory: namespace %s not recoverable on other nodes", nsp);
        return;
    }
    ns->refs = 1;
    ns->window_ms = DEFAULT_WINDOW_MS;
    ns->max_bytes = DEFAULT_MAX_BYTES;
    ns->max_packets = DEFAULT_MAX_PACKETS;
    ferry_list_insert_tail(&x->nsps, &ns->link);
    beat_nsp(x, ns);
}

static void wait_answer_closed(rec_wait *w)
{
    if (w->done)
        return;
    w->done = 1;
    if (w->found != NULL)
        w->found(w->ud, -FERRY_ECLOSED, NULL, 0, NULL, NULL, 0);
    else
        w->entries(w->ud, -FERRY_ECLOSED, NULL, 0);
}

void redis_rec_nsp_del(ferry_redis *r, const char *nsp, const ferry_adapter *owner)
{
    redis_rec *rc = redis_rec_of(r);
    ferry_list *it;
    ferry_list_foreach(it, &rc->waits)
    {
        rec_wait *w = ferry_list_entry(it, rec_wait, link);
        if (w->owner == owner)
            wait_answer_closed(w);
    }
    rec_nsp *ns = nsp_find(rc, nsp);
    if (ns != NULL && --ns->refs == 0)
        nsp_free(ns);
}

/* ------------------------------------------------------------------ writing */

static own_entry *ring_at(rec_nsp *ns, size_t i)
{
    return &ns->ring[(ns->head + i) % ns->cap];
}

void redis_rec_logged(ferry_redis *r, const char *nsp, uint64_t seq, const char *msg, size_t len)
{
    redis_rec *rc = redis_rec_of(r);
    rec_nsp *ns = nsp_find(rc, nsp);
    if (ns == NULL || redis_cmd_ctx(r) == NULL)
        return;
    uint64_t now = ferry_wall_ms();
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        own_entry *ring = ferry_mem_alloc(cap * sizeof(*ring));
        if (ring == NULL)
            return; /* not kept in Redis: recovered elsewhere, a client misses it */
        for (size_t i = 0; i < ns->n; i++)
            ring[i] = *ring_at(ns, i);
        ferry_mem_free(ns->ring);
        ns->ring = ring;
        ns->cap = cap;
        ns->head = 0;
    }
    *ring_at(ns, ns->n++) = (own_entry){seq, now, len};
    ns->bytes += len;
    /* The bounds of the log in memory: bytes, count, age (the newest kept even alone over). */
    while (ns->n > 1 && (ns->bytes > ns->max_bytes || ns->n > ns->max_packets ||
                         ring_at(ns, 0)->at + ns->window_ms <= now)) {
        ns->bytes -= ring_at(ns, 0)->bytes;
        ns->head = (ns->head + 1) % ns->cap;
        ns->n--;
    }
    char *key = key_of(r, nsp, "log#", ferry_redis_node_id(r));
    if (key == NULL)
        return;
    char minid[24], id[32], at[24], prev[24], prev_at[24];
    snprintf(minid, sizeof(minid), "%" PRIu64, ring_at(ns, 0)->seq);
    snprintf(id, sizeof(id), "%" PRIu64 "-0", seq);
    snprintf(at, sizeof(at), "%" PRIu64, now);
    snprintf(prev, sizeof(prev), "%" PRIu64, ns->last_seq);
    snprintf(prev_at, sizeof(prev_at), "%" PRIu64, ns->last_at);
    const char *argv[13] = {"XADD", key, "MINID", minid, id, "m", msg,
                            "t", at, "p", prev, "pt", prev_at};
    size_t lens[13];
    for (int i = 0; i < 13; i++)
        lens[i] = i == 6 ? len : strlen(argv[i]);
    fire(r, 13, argv, lens);
    ns->last_seq = seq;
    ns->last_at = now;
    ferry_mem_free(key);
}

void redis_rec_save(ferry_redis *r, const char *nsp, const char *pid, const char *rec,
                    size_t len, uint32_t window_ms, size_t max_bytes, size_t max_packets)
{
    rec_nsp *ns = nsp_find(redis_rec_of(r), nsp);
    if (ns != NULL) {
        ns->window_ms = window_ms;
        ns->max_bytes = max_bytes;
        ns->max_packets = max_packets;
    }
    char *key = key_of(r, nsp, "rec#", ferry_redis_node_id(r));
    if (key == NULL)
        return;
    const char *argv[4] = {"HSET", key, pid, rec};
    size_t lens[4] = {4, strlen(key), strlen(pid), len};
    fire(r, 4, argv, lens);
    ferry_mem_free(key);
}

void redis_rec_drop(ferry_redis *r, const char *nsp, const char *pid)
{
    char *key = key_of(r, nsp, "rec#", ferry_redis_node_id(r));
    if (key == NULL)
        return;
    fire_str(r, 3, (const char *[]){"HDEL", key, pid});
    ferry_mem_free(key);
}

/* ------------------------------------------------------------------ reading */

/* KEYS[1] the nodes set; ARGV[1] the records' key prefix, ARGV[2] the pid. Takes the record:
 * {node, record, every live node...}, or {} when no node has it. */
static const char FIND_LUA[] =
    "local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "for _, n in ipairs(nodes) do\n"
    "  local v = redis.call('HGET', ARGV[1] .. n, ARGV[2])\n"
    "  if v then\n"
    "    redis.call('HDEL', ARGV[1] .. n, ARGV[2])\n"
    "    local out = {n, v}\n"
    "    for _, m in ipairs(nodes) do out[#out + 1] = m end\n"
    "    return out\n"
    "  end\n"
    "end\n"
    "return {}\n";

/* ARGV[1] the logs' key prefix, ARGV[2] the most entries per node (the namespace's count bound:
 * no node's log holds more when the nodes share the setting), then pairs (node, after):
 * {node, entries, node, entries...}, each node's entries after the seq given (XRANGE). */
static const char READ_LUA[] =
    "local out = {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local from = ARGV[i + 1] == '0' and '-' or ('(' .. ARGV[i + 1] .. '-0')\n"
    "  out[#out + 1] = ARGV[i]\n"
    "  out[#out + 1] = redis.call('XRANGE', ARGV[1] .. ARGV[i], from, '+', 'COUNT', ARGV[2])\n"
    "end\n"
    "return out\n";

static rec_wait *wait_new(redis_rec *rc, const ferry_adapter *owner, void *ud)
{
    rec_wait *w = ferry_mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->owner = owner;
    w->ud = ud;
    ferry_list_insert_tail(&rc->waits, &w->link);
    return w;
}

static void wait_free(rec_wait *w)
{
    ferry_list_remove(&w->link);
    ferry_mem_free(w);
}

static int is_str(const redisReply *x)
{
    return x != NULL && x->type == REDIS_REPLY_STRING;
}

static void on_found(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    rec_wait *w = privdata;
    redisReply *rep = reply;
    if (!w->done) {
        w->done = 1;
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
            if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
                FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "recovery lookup: %s", rep->str);
            w->found(w->ud, -FERRY_EIO, NULL, 0, NULL, NULL, 0);
        } else if (rep->elements < 3) {
            w->found(w->ud, 1, NULL, 0, NULL, NULL, 0);
        } else {
            size_t n = rep->elements - 2;
            const char **nodes = ferry_mem_calloc(n, sizeof(*nodes));
            int ok = nodes != NULL;
            for (size_t i = 0; ok && i < rep->elements; i++)
                ok = is_str(rep->element[i]);
            for (size_t i = 0; ok && i < n; i++)
                nodes[i] = rep->element[i + 2]->str;
            if (ok)
                w->found(w->ud, 0, rep->element[1]->str, rep->element[1]->len,
                         rep->element[0]->str, nodes, n);
            else
                w->found(w->ud, nodes == NULL ? -FERRY_ENOMEM : -FERRY_EIO, NULL, 0, NULL, NULL,
                         0);
            ferry_mem_free(nodes);
        }
    }
    wait_free(w);
}

int redis_rec_find(ferry_redis *r, const char *nsp, const ferry_adapter *owner, const char *pid,
                   ferry_adapter_found_cb cb, void *ud)
{
    redisAsyncContext *ac = redis_cmd_ctx(r);
    if (ac == NULL)
        return -FERRY_ECLOSED;
    char *nodes = key_of(r, nsp, "nodes", NULL);
    char *recs = key_of(r, nsp, "rec#", NULL);
    rec_wait *w = nodes && recs ? wait_new(redis_rec_of(r), owner, ud) : NULL;
    int rc = -FERRY_ENOMEM;
    if (w != NULL) {
        w->found = cb;
        const char *argv[6] = {"EVAL", FIND_LUA, "1", nodes, recs, pid};
        size_t lens[6] = {4, sizeof(FIND_LUA) - 1, 1, strlen(nodes), strlen(recs), strlen(pid)};
        if (redisAsyncCommandArgv(ac, on_found, w, 6, argv, lens) == REDIS_OK) {
            rc = 0;
        } else {
            wait_free(w);
            rc = -FERRY_ECLOSED;
        }
    }
    ferry_mem_free(nodes);
    ferry_mem_free(recs);
    return rc;
}

static uint64_t parse_u64(const char *s)
{
    return strtoull(s, NULL, 10);
}

static void on_read(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    rec_wait *w = privdata;
    redisReply *rep = reply;
    if (w->done)
        goto out;
    w->done = 1;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0) {
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
            FERRY_LOG(FERRY_LOG_WARN, "redis", NULL, "recovery read: %s", rep->str);
        w->entries(w->ud, -FERRY_EIO, NULL, 0);
        goto out;
    }
    size_t total = 0;
    for (size_t i = 1; i < rep->elements; i += 2)
        if (rep->element[i]->type == REDIS_REPLY_ARRAY)
            total += rep->element[i]->elements;
    ferry_adapter_entry *es = ferry_mem_calloc(total ? total : 1, sizeof(*es));
    redis_msg *ms = ferry_mem_calloc(total ? total : 1, sizeof(*ms));
    size_t n = 0;
    int status = es && ms ? 0 : -FERRY_ENOMEM;
    for (size_t i = 0; status == 0 && i + 1 < rep->elements; i += 2) {
        redisReply *node = rep->element[i], *list = rep->element[i + 1];
        if (!is_str(node) || list->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t j = 0; status == 0 && j < list->elements; j++) {
            redisReply *e = list->element[j];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            redisReply *f = e->element[1];
            const redisReply *m = NULL, *t = NULL, *p = NULL, *pt = NULL;
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                if (!is_str(f->element[k]) || !is_str(f->element[k + 1]))
                    continue;
                const char *name = f->element[k]->str;
                if (strcmp(name, "m") == 0)
                    m = f->element[k + 1];
                else if (strcmp(name, "t") == 0)
                    t = f->element[k + 1];
                else if (strcmp(name, "p") == 0)
                    p = f->element[k + 1];
                else if (strcmp(name, "pt") == 0)
                    pt = f->element[k + 1];
            }
            if (m == NULL || t == NULL)
                continue;
            int prc = redis_msg_parse(m->str, m->len, &ms[n]);
            if (prc == -FERRY_ENOMEM)
                status = prc;
            if (prc != 0)
                continue;
            ferry_adapter_entry *x = &es[n];
            redis_msg_view(&ms[n], &x->pkt, &x->t);
            x->origin = node->str;
            x->seq = parse_u64(e->element[0]->str);
            x->at_ms = parse_u64(t->str);
            /* Written by a node without p: nothing known before it. */
            x->prev_seq = p != NULL ? parse_u64(p->str) : 0;
            x->prev_at_ms = pt != NULL ? parse_u64(pt->str) : 0;
            n++;
        }
    }
    w->entries(w->ud, status, status == 0 ? es : NULL, status == 0 ? n : 0);
    for (size_t i = 0; i < n; i++)
        redis_msg_free(&ms[i]);
    ferry_mem_free(ms);
    ferry_mem_free(es);
out:
    wait_free(w);
}

/* The entries a read takes from each node's log: the namespace's count bound, at least one (a
 * log keeps its newest entry even alone over the bound). */
static size_t read_max(redis_rec *rc, const char *nsp)
{
    const rec_nsp *ns = nsp_find(rc, nsp);
    size_t max = ns != NULL ? ns->max_packets : DEFAULT_MAX_PACKETS;
    return max > 0 ? max : 1;
}

int redis_rec_read(ferry_redis *r, const char *nsp, const ferry_adapter *owner,
                   const char *const *nodes, size_t nnodes, const ferry_adapter_pos *pos,
                   size_t npos, ferry_adapter_entries_cb cb, void *ud)
{
    redisAsyncContext *ac = redis_cmd_ctx(r);
    if (ac == NULL)
        return -FERRY_ECLOSED;
    if (nnodes > 1024)
        nnodes = 1024;
    size_t argc = 5 + 2 * nnodes;
    const char **argv = ferry_mem_calloc(argc, sizeof(*argv));
    size_t *lens = ferry_mem_calloc(argc, sizeof(*lens));
    char(*after)[24] = ferry_mem_calloc(nnodes ? nnodes : 1, sizeof(*after));
    char *logs = key_of(r, nsp, "log#", NULL);
    rec_wait *w = argv && lens && after && logs ? wait_new(redis_rec_of(r), owner, ud) : NULL;
    int rc = -FERRY_ENOMEM;
    if (w != NULL) {
        w->entries = cb;
        char max[24];
        snprintf(max, sizeof(max), "%zu", read_max(redis_rec_of(r), nsp));
        argv[0] = "EVAL";
        argv[1] = READ_LUA;
        argv[2] = "0";
        argv[3] = logs;
        argv[4] = max;
        for (size_t i = 0; i < nnodes; i++) {
            uint64_t seq = 0;
            for (size_t j = 0; j < npos; j++)
                if (strcmp(pos[j].origin, nodes[i]) == 0)
                    seq = pos[j].seq;
            snprintf(after[i], sizeof(after[i]), "%" PRIu64, seq);
            argv[5 + 2 * i] = nodes[i];
            argv[6 + 2 * i] = after[i];
        }
        for (size_t i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        if (redisAsyncCommandArgv(ac, on_read, w, (int)argc, argv, lens) == REDIS_OK) {
            rc = 0;
        } else {
            wait_free(w);
            rc = -FERRY_ECLOSED;
        }
    }
    ferry_mem_free(argv);
    ferry_mem_free(lens);
    ferry_mem_free(after);
    ferry_mem_free(logs);
    return rc;
}
