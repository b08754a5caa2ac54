/* Connection-state recovery across nodes (issue 18, docs/scaling.md "A node that dies"): a
 * client of a node that died (SIGKILL included) comes back through another node with its id,
 * rooms, outbox state and the broadcasts it missed.
 *
 * Offsets. On several nodes, the offset a packet carries names a position in every node's log,
 * not only in this node's: "<local seq>;<node>=<seq>;<node>=<seq>..." where the first node is
 * the one that sent it and each <seq> is the highest broadcast of that origin node logged here
 * when the packet was (a node's broadcasts reach every other node in order: one publishing
 * connection each). The local seq resumes a client on this node from memory, as on one node;
 * the positions resume it anywhere from the nodes' logs in Redis (adapter/redis_recovery.c:
 * each node keeps there every broadcast it sent, numbered by its own origin seq).
 *
 * Records. A connected socket's record (id, pid, rooms, when it connected, the outbox's last
 * emit taken) is written to Redis when it connects, joins, leaves and takes an emit, so it is
 * there when its node is killed without a word.
 *
 * Resuming. A CONNECT with a pid no socket of ours has, or an offset another node gave, looks
 * for its record in Redis before the middlewares run (the record is taken: no other node
 * resumes it too), then reads every node's log after the client's positions (a node it has no
 * position for: what it sent after the socket connected), keeps what was meant for the
 * socket's rooms, and replays it, in time order, after the CONNECT answer, stamped with this
 * node's offsets. A log trimmed past what the socket missed refuses it ("gap", gap_origin()). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/wallclock.h"
#include "socket/recovery.h"

#define VEC_MAX 32 /* origin nodes an offset names (the least recently heard make room) */
#define NODE_MAX 64

typedef struct sio_vec_e {
    char node[NODE_MAX + 1];
    uint64_t seq;
    uint64_t at; /* loop ms it last moved */
} sio_vec_e;

struct sio_vec {
    size_t n;
    uint64_t own; /* this node's origin seq: e[0] is this node */
    sio_vec_e e[VEC_MAX];
};

static const char *self_id(const ferry_namespace *nsp)
{
    const ferry_adapter_ops *o = nsp->adapter != NULL ? nsp->adapter->ops : NULL;
    return o != NULL && o->node_id != NULL && o->rec_find != NULL ? o->node_id(nsp->adapter)
                                                                  : NULL;
}

const char *sio_rr_self(const ferry_namespace *nsp)
{
    return self_id(nsp);
}

int sio_rr_on(ferry_namespace *nsp)
{
    return self_id(nsp) != NULL;
}

static uint64_t loop_ms(const ferry_namespace *nsp)
{
    return uv_now(ferry_engine_loop(nsp->sio->engine));
}

static struct sio_vec *vec_of(ferry_namespace *nsp)
{
    const char *self = self_id(nsp);
    if (nsp->vec == NULL && self != NULL && strlen(self) <= NODE_MAX &&
        (nsp->vec = ferry_mem_calloc(1, sizeof(*nsp->vec))) != NULL) {
        /* Numbered from the wall clock: a node restarted with the same id keeps counting up
         * (its log's IDs in Redis must grow), a thousand broadcasts a millisecond. */
        nsp->vec->own = ferry_wall_ms() * 1000;
        nsp->vec->n = 1;
        snprintf(nsp->vec->e[0].node, sizeof(nsp->vec->e[0].node), "%s", self);
        nsp->vec->e[0].seq = nsp->vec->own;
    }
    return nsp->vec;
}

uint64_t sio_rr_own_next(ferry_namespace *nsp)
{
    struct sio_vec *v = vec_of(nsp);
    if (v == NULL)
        return 0;
    v->e[0].seq = ++v->own;
    v->e[0].at = loop_ms(nsp);
    return v->own;
}

void sio_rr_note(ferry_namespace *nsp, const char *origin, uint64_t seq)
{
    struct sio_vec *v = vec_of(nsp);
    if (v == NULL || strlen(origin) > NODE_MAX || strlen(origin) == 0)
        return;
    size_t i = 0, oldest = 1;
    while (i < v->n && strcmp(v->e[i].node, origin) != 0) {
        if (i > 0 && v->e[i].at < v->e[oldest].at)
            oldest = i;
        i++;
    }
    if (i == 0)
        return; /* our own: sio_rr_own_next() */
    if (i == v->n) {
        if (v->n < VEC_MAX)
            v->n++;
        else
            i = oldest; /* its origin's packets are then resumed by time, not position */
        snprintf(v->e[i].node, sizeof(v->e[i].node), "%s", origin);
        v->e[i].seq = 0;
    }
    if (seq > v->e[i].seq)
        v->e[i].seq = seq;
    v->e[i].at = loop_ms(nsp);
}

int sio_rr_offset(ferry_namespace *nsp, uint64_t local, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%" PRIu64, local);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    struct sio_vec *v = sio_rr_on(nsp) ? vec_of(nsp) : NULL;
    size_t len = (size_t)n;
    for (size_t i = 0; v != NULL && i < v->n; i++) {
        n = snprintf(buf + len, cap - len, ";%s=%" PRIu64, v->e[i].node, v->e[i].seq);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    return (int)len;
}

/* "<digits>" up to a ';' or the end: 0, or -1. */
static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t n = 0;
    for (; *s >= '0' && *s <= '9'; s++, n++) {
        if (n == 19)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (n == 0)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

/* The positions of an offset: up to max (origin copied into names[i]), their count, or -1. */
typedef struct rr_pos {
    char node[NODE_MAX + 1];
    uint64_t seq;
} rr_pos;

static int parse_offset(const char *off, uint64_t *local, rr_pos *pos, size_t max)
{
    const char *p = off;
    if (parse_u64(&p, local) != 0)
        return -1;
    size_t n = 0;
    while (*p == ';') {
        const char *name = ++p;
        while (*p != '\0' && *p != '=' && *p != ';')
            p++;
        size_t len = (size_t)(p - name);
        uint64_t seq;
        if (*p != '=' || len == 0 || len > NODE_MAX)
            return -1;
        p++;
        if (parse_u64(&p, &seq) != 0)
            return -1;
        if (n < max) {
            memcpy(pos[n].node, name, len);
            pos[n].node[len] = '\0';
            pos[n].seq = seq;
            n++;
        }
    }
    return *p == '\0' ? (int)n : -1;
}

int sio_rr_offset_local(ferry_namespace *nsp, const char *off, uint64_t *local)
{
    rr_pos first;
    int n = parse_offset(off, local, &first, 1);
    if (n < 0)
        return -1;
    const char *self = self_id(nsp);
    return n == 0 || (self != NULL && strcmp(first.node, self) == 0) ? 0 : 1;
}

void sio_rr_forget(ferry_namespace *nsp, const char *pid)
{
    if (pid[0] != '\0' && sio_rr_on(nsp))
        nsp->adapter->ops->rec_drop(nsp->adapter, pid);
}

void sio_rr_persist(ferry_socket *s)
{
    ferry_namespace *nsp = s->nsp;
    if (s->pid[0] == '\0' || s->state != SOCK_CONNECTED || !sio_recovery_on(nsp) ||
        !sio_rr_on(nsp))
        return;
    const char *rooms[SIO_MAX_ROOMS_PER_SOCKET];
    size_t n = ferry_socket_rooms(s, rooms, SIO_MAX_ROOMS_PER_SOCKET);
    if (n > SIO_MAX_ROOMS_PER_SOCKET)
        n = SIO_MAX_ROOMS_PER_SOCKET;
    cJSON *o = cJSON_CreateObject(), *r = cJSON_CreateArray();
    int ok = o != NULL && r != NULL;
    for (size_t i = 0; ok && i < n; i++)
        if (strcmp(rooms[i], s->id) != 0)
            ok = cJSON_AddItemToArray(r, cJSON_CreateString(rooms[i]));
    ok = ok && cJSON_AddStringToObject(o, "id", s->id) != NULL &&
         cJSON_AddStringToObject(o, "pid", s->pid) != NULL &&
         cJSON_AddNumberToObject(o, "since", (double)s->time_ms) != NULL &&
         cJSON_AddNumberToObject(o, "ob", (double)s->ob.taken) != NULL;
    if (ok) {
        cJSON_AddItemToObject(o, "rooms", r);
        r = NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    if (text != NULL)
        nsp->adapter->ops->rec_save(nsp->adapter, s->pid, text, strlen(text),
                                    sio_recovery_window(nsp), sio_recovery_max_bytes(nsp),
                                    sio_recovery_max_packets(nsp));
    else
        FERRY_LOG(FERRY_LOG_ERROR, "socket", NULL,
                  "out of memory: socket %s's record not written (not recoverable elsewhere)",
                  s->id);
    cJSON_free(text);
    cJSON_Delete(r);
    cJSON_Delete(o);
}

void sio_rr_free(ferry_namespace *nsp)
{
    ferry_mem_free(nsp->vec);
    nsp->vec = NULL;
}

/* ------------------------------------------------------------------ resuming */

#define POS_MAX VEC_MAX

typedef struct rr_job {
    ferry_socket *s;
    sio_saved *sv;
    uint64_t since; /* wall ms the socket connected on its first node */
    uint64_t taken;
    uint64_t mark;           /* this node's log position when the read went to Redis */
    char node[NODE_MAX + 1]; /* whose record it was */
    rr_pos pos[POS_MAX];
    size_t npos;
} rr_job;

/* The job is over: s goes on with its middlewares (as recovered or not), unless it left
 * meanwhile or the server is going (-FERRY_ECLOSED). */
static void job_end(rr_job *j, int status)
{
    ferry_socket *s = j->s;
    if (j->sv != NULL)
        sio_recovery_saved_release(j->sv);
    ferry_mem_free(j);
    if (s->state == SOCK_MIDDLEWARE && status != -FERRY_ECLOSED)
        sio_socket_start(s);
    sio_socket_release(s);
}

typedef struct rr_pick {
    const ferry_adapter_entry *e;
} rr_pick;

static int pick_cmp(const void *a, const void *b)
{
    const ferry_adapter_entry *x = ((const rr_pick *)a)->e, *y = ((const rr_pick *)b)->e;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    int c = strcmp(x->origin, y->origin);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The origin whose log no longer holds all the socket missed (NULL: none), as on one node (a
 * "gap"): the oldest entry read of that origin follows one the origin wrote after the socket's
 * position there (after it connected, with no position) and that was trimmed since. Unlike one
 * node, where a socket that had all queued to it needs only what came after its loss, a record
 * in Redis does not say when its node died: it needs all after its positions, but for what is
 * older than the window: the socket was connected when that was sent (its record lives only a
 * window past its node's last beat), and a connection that reads nothing for longer than
 * pingInterval + pingTimeout is closed by its heartbeat, so with a window longer than that (the
 * defaults: 120 s and 45 s) it had it. Without that, a socket in a quiet room (its position
 * older than the window) would be refused whenever anything was trimmed by age after it. */
static const char *gap_origin(const rr_job *j, const ferry_adapter_entry *es, size_t n)
{
    uint64_t now = ferry_wall_ms(), window = sio_recovery_window(j->s->nsp);
    for (size_t i = 0; i < n; i++) {
        const ferry_adapter_entry *e = &es[i];
        if (i > 0 && strcmp(es[i - 1].origin, e->origin) == 0)
            continue; /* not its origin's oldest */
        int known = 0;
        uint64_t after = 0;
        for (size_t k = 0; k < j->npos; k++)
            if (strcmp(j->pos[k].node, e->origin) == 0) {
                known = 1;
                after = j->pos[k].seq;
            }
        if (e->prev_seq != 0 && (known ? e->prev_seq > after : e->prev_at_ms >= j->since) &&
            e->prev_at_ms + window > now)
            return e->origin;
    }
    return NULL;
}

static void on_read(void *ud, int status, const ferry_adapter_entry *es, size_t n)
{
    rr_job *j = ud;
    ferry_socket *s = j->s;
    ferry_namespace *nsp = s->nsp;
    if (status != 0 || s->state != SOCK_MIDDLEWARE) {
        if (status != 0 && status != -FERRY_ECLOSED)
            FERRY_LOG(FERRY_LOG_WARN, "socket", NULL,
                      "recovery of socket %s from Redis failed (%s): it starts afresh",
                      j->sv->id, ferry_strerror(status));
        job_end(j, status);
        return;
    }
    const char *gap = gap_origin(j, es, n);
    if (gap != NULL) {
        /* Refused as on one node: a new socket, told why (its record is gone from Redis: a
         * later attempt would find the same gap). */
        FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(s->client->session),
                  "socket %s not resumed from node %s's record in Redis: what it missed is no "
                  "longer in the log (node %s)",
                  j->sv->id, j->node, gap);
        s->not_recovered = "gap";
        s->not_recovered_why = "what it missed is no longer in the log (a node's, in Redis)";
        job_end(j, 0);
        return;
    }
    rr_pick *picks = ferry_mem_calloc(n ? n : 1, sizeof(*picks));
    if (picks == NULL) {
        job_end(j, -FERRY_ENOMEM);
        return;
    }
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        const ferry_adapter_entry *e = &es[i];
        int known = 0;
        for (size_t k = 0; k < j->npos; k++)
            if (strcmp(j->pos[k].node, e->origin) == 0)
                known = e->seq > j->pos[k].seq ? 1 : -1;
        /* A node it has no position for: what it sent after the socket connected. */
        if (known < 0 || (known == 0 && e->at_ms < j->since))
            continue;
        if (sio_recovery_meant_for(&e->t, j->sv))
            picks[np++].e = e;
    }
    qsort(picks, np, sizeof(*picks), pick_cmp);
    /* Per origin, the last of its entries the read covered or the client had. */
    sio_saved *sv = j->sv;
    sv->upto = ferry_mem_calloc(n + j->npos + 1, sizeof(*sv->upto));
    if (sv->upto == NULL) {
        ferry_mem_free(picks);
        job_end(j, -FERRY_ENOMEM);
        return;
    }
    for (size_t i = 0; i < n + j->npos; i++) {
        const char *origin = i < n ? es[i].origin : j->pos[i - n].node;
        uint64_t seq = i < n ? es[i].seq : j->pos[i - n].seq;
        size_t k = 0;
        while (k < sv->nupto && strcmp(sv->upto[k].node, origin) != 0)
            k++;
        if (k == sv->nupto) {
            if ((sv->upto[k].node = ferry_mem_strdup(origin)) == NULL) {
                ferry_mem_free(picks);
                job_end(j, -FERRY_ENOMEM);
                return;
            }
            sv->nupto++;
        }
        if (seq > sv->upto[k].seq)
            sv->upto[k].seq = seq;
    }
    /* Its positions become ours too: what we stamp next never goes back for it. */
    for (size_t k = 0; k < j->npos; k++)
        sio_rr_note(nsp, j->pos[k].node, j->pos[k].seq);
    sv->rx = ferry_mem_calloc(np ? np : 1, sizeof(*sv->rx));
    int rc = sv->rx != NULL ? 0 : -FERRY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < np; i++) {
        const ferry_adapter_entry *e = picks[i].e;
        sio_rr_note(nsp, e->origin, e->seq);
        char offset[SIO_OFFSET_MAX];
        sio_encoded in = {.n = e->pkt.n, .bufs = (ferry_buf **)e->pkt.bufs};
        if (sio_rr_offset(nsp, nsp->next_seq, offset, sizeof(offset)) < 0)
            rc = -FERRY_ENOMEM;
        else if ((rc = sio_recovery_stamp_with(&in, offset, &sv->rx[sv->nrx])) == 0)
            sv->nrx++;
        else if (rc == -FERRY_EINVAL)
            rc = 0; /* not an event: skipped */
    }
    ferry_mem_free(picks);
    if (rc != 0) {
        job_end(j, rc);
        return;
    }
    FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(s->client->session),
              "socket %s resumed from node %s's record in Redis: %zu missed packets to replay",
              sv->id, j->node, sv->nrx);
    memcpy(s->id, sv->id, sizeof(s->id));
    memcpy(s->pid, sv->pid, sizeof(s->pid));
    s->recovered = 1;
    s->not_recovered = NULL;
    s->restore = sv;
    j->sv = NULL;
    /* This node's log after the read went out is replayed too: what reached Redis after the
     * read, and what it logs for the socket's rooms before it joined them. */
    s->restore_offset = j->mark;
    s->last_seq = j->mark;
    s->ob.taken = j->taken;
    job_end(j, 0);
}

static void on_found(void *ud, int status, const char *rec, size_t len, const char *node,
                     const char *const *nodes, size_t nnodes)
{
    rr_job *j = ud;
    ferry_socket *s = j->s;
    ferry_namespace *nsp = s->nsp;
    if (status != 0 || s->state != SOCK_MIDDLEWARE) {
        job_end(j, status > 0 ? 0 : status);
        return;
    }
    snprintf(j->node, sizeof(j->node), "%s", node);
    cJSON *o = cJSON_ParseWithLength(rec, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(o, "rooms");
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(o, "since");
    const cJSON *taken = cJSON_GetObjectItemCaseSensitive(o, "ob");
    int rc = 0;
    if (!cJSON_IsString(id) || strlen(id->valuestring) != SIO_ID_LEN || !cJSON_IsString(pid) ||
        strlen(pid->valuestring) != SIO_ID_LEN || !cJSON_IsArray(rooms) ||
        !cJSON_IsNumber(since) || !cJSON_IsNumber(taken) || taken->valuedouble < 0) {
        FERRY_LOG(FERRY_LOG_WARN, "socket", NULL, "a recovery record from node %s is malformed",
                  node);
        rc = 1;
    } else if (ferry_namespace_socket(nsp, id->valuestring) != NULL) {
        rc = 1; /* that id is in use here */
    }
    size_t nr = rc == 0 ? (size_t)cJSON_GetArraySize(rooms) : 0;
    if (nr + 1 > SIO_MAX_ROOMS_PER_SOCKET)
        nr = SIO_MAX_ROOMS_PER_SOCKET - 1;
    sio_saved *sv = rc == 0 ? ferry_mem_calloc(1, sizeof(*sv)) : NULL;
    if (rc == 0 && (sv == NULL || (sv->rooms = ferry_mem_calloc(nr + 1, sizeof(char *))) == NULL))
        rc = -FERRY_ENOMEM;
    if (sv != NULL) {
        sio_outbox_init(&sv->ob);
        j->sv = sv;
    }
    if (rc == 0) {
        memcpy(sv->id, id->valuestring, SIO_ID_LEN + 1);
        memcpy(sv->pid, pid->valuestring, SIO_ID_LEN + 1);
        sv->rooms[sv->nrooms++] = ferry_mem_strdup(sv->id);
        for (size_t i = 0; i < nr; i++) {
            const cJSON *r = cJSON_GetArrayItem(rooms, (int)i);
            if (cJSON_IsString(r) && sio_valid_name(r->valuestring))
                sv->rooms[sv->nrooms++] = ferry_mem_strdup(r->valuestring);
        }
        for (size_t i = 0; i < sv->nrooms; i++)
            if (sv->rooms[i] == NULL)
                rc = -FERRY_ENOMEM;
        j->since = (uint64_t)since->valuedouble;
        j->taken = (uint64_t)taken->valuedouble;
    }
    cJSON_Delete(o);
    if (rc == 0) {
        /* Its positions: the client's offset (none: it received nothing since it connected). */
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(s->auth, "offset");
        uint64_t local;
        int np = cJSON_IsString(off) ? parse_offset(off->valuestring, &local, j->pos, POS_MAX) : 0;
        j->npos = np > 0 ? (size_t)np : 0;
        ferry_adapter_pos pos[POS_MAX];
        for (size_t i = 0; i < j->npos; i++)
            pos[i] = (ferry_adapter_pos){j->pos[i].node, j->pos[i].seq};
        /* What this node logs from now on may be missing from the read (Redis runs it before
         * the origins' later XADDs): it is replayed from here, less what the read covered. */
        j->mark = nsp->next_seq;
        rc = nsp->adapter->ops->rec_read(nsp->adapter, nodes, nnodes, pos, j->npos, on_read, j);
        if (rc == 0)
            return;
    }
    job_end(j, rc > 0 ? 0 : rc);
}

int sio_rr_begin(ferry_socket *s)
{
    s->rec_remote = 0;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(s->auth, "pid");
    rr_job *j = cJSON_IsString(pid) ? ferry_mem_calloc(1, sizeof(*j)) : NULL;
    if (j == NULL)
        return 0;
    j->s = s;
    sio_socket_retain(s); /* until the answer */
    int rc = s->nsp->adapter->ops->rec_find(s->nsp->adapter, pid->valuestring, on_found, j);
    if (rc != 0) {
        sio_socket_release(s);
        ferry_mem_free(j);
        return 0; /* Redis is not reachable now: it starts afresh */
    }
    return 1;
}
