/* The local adapter: rooms of one namespace in one process.
 *
 * Rooms live in a chained hash table by name (FNV-1a, doubled at load 1) and are freed when
 * their last member leaves. A membership is one small node linked both into its room and into
 * its socket, so that leaving everything on disconnect costs O(rooms of the socket).
 *
 * A broadcast to several rooms must reach each socket once without allocating: every
 * broadcast takes a new epoch, and a socket that was delivered to (or excluded) carries that
 * epoch in bcast_mark. */
#include <string.h>

#include "adapter/adapter.h"
#include "common/mem.h"
#include "socket/socket.h"

typedef struct room {
    struct room *next; /* bucket chain */
    uint32_t hash;
    ferry_list members; /* membership.in_room */
    size_t count;
    char name[];
} room;

typedef struct membership {
    ferry_list in_room;
    ferry_list in_socket;
    room *room;
    ferry_socket *socket;
} membership;

typedef struct local_adapter {
    ferry_adapter super;
    room **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} local_adapter;

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static room *find(const local_adapter *a, const char *name)
{
    uint32_t h = hash_name(name);
    for (room *r = a->buckets[h & (a->nbuckets - 1)]; r != NULL; r = r->next)
        if (r->hash == h && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static int grow(local_adapter *a)
{
    size_t n = a->nbuckets * 2;
    room **b = ferry_mem_calloc(n, sizeof(*b));
    if (b == NULL)
        return -FERRY_ENOMEM;
    for (size_t i = 0; i < a->nbuckets; i++)
        for (room *r = a->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    ferry_mem_free(a->buckets);
    a->buckets = b;
    a->nbuckets = n;
    return 0;
}

static room *get_or_create(local_adapter *a, const char *name)
{
    room *r = find(a, name);
    if (r != NULL)
        return r;
    if (a->count >= a->nbuckets && grow(a) != 0)
        return NULL;
    size_t len = strlen(name);
    r = ferry_mem_alloc(sizeof(*r) + len + 1);
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len + 1);
    r->hash = hash_name(name);
    ferry_list_init(&r->members);
    r->count = 0;
    r->next = a->buckets[r->hash & (a->nbuckets - 1)];
    a->buckets[r->hash & (a->nbuckets - 1)] = r;
    a->count++;
    return r;
}

static void drop_room(local_adapter *a, room *r)
{
    room **pp = &a->buckets[r->hash & (a->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    a->count--;
    ferry_mem_free(r);
}

static membership *member_of(const ferry_socket *s, const char *name)
{
    ferry_list *it;
    ferry_list_foreach(it, &s->rooms)
    {
        membership *m = ferry_list_entry(it, membership, in_socket);
        if (strcmp(m->room->name, name) == 0)
            return m;
    }
    return NULL;
}

static void unlink_member(local_adapter *a, membership *m)
{
    room *r = m->room;
    ferry_list_remove(&m->in_room);
    ferry_list_remove(&m->in_socket);
    m->socket->nrooms--;
    ferry_mem_free(m);
    if (--r->count == 0)
        drop_room(a, r);
}

static int la_add(ferry_adapter *base, ferry_socket *s, const char *name)
{
    local_adapter *a = (local_adapter *)base;
    if (member_of(s, name) != NULL)
        return 0;
    if (s->nrooms >= SIO_MAX_ROOMS_PER_SOCKET)
        return -FERRY_ELIMIT;
    membership *m = ferry_mem_alloc(sizeof(*m));
    if (m == NULL)
        return -FERRY_ENOMEM;
    room *r = get_or_create(a, name);
    if (r == NULL) {
        ferry_mem_free(m);
        return -FERRY_ENOMEM;
    }
    m->room = r;
    m->socket = s;
    ferry_list_insert_tail(&r->members, &m->in_room);
    ferry_list_insert_tail(&s->rooms, &m->in_socket);
    r->count++;
    s->nrooms++;
    return 0;
}

static void la_del(ferry_adapter *base, ferry_socket *s, const char *name)
{
    membership *m = member_of(s, name);
    if (m != NULL)
        unlink_member((local_adapter *)base, m);
}

static void la_del_all(ferry_adapter *base, ferry_socket *s)
{
    while (!ferry_list_empty(&s->rooms))
        unlink_member((local_adapter *)base,
                      ferry_list_entry(s->rooms.next, membership, in_socket));
}

static int la_has(ferry_adapter *base, const ferry_socket *s, const char *name)
{
    (void)base;
    return member_of(s, name) != NULL;
}

static size_t la_socket_rooms(ferry_adapter *base, const ferry_socket *s, const char **out,
                              size_t max)
{
    (void)base;
    size_t n = 0;
    ferry_list *it;
    ferry_list_foreach(it, &s->rooms)
    {
        if (n < max)
            out[n] = ferry_list_entry(it, membership, in_socket)->room->name;
        n++;
    }
    return n;
}

static size_t la_sockets(ferry_adapter *base, const char *name, ferry_socket **out, size_t max)
{
    local_adapter *a = (local_adapter *)base;
    size_t n = 0;
    ferry_list *it;
    if (name == NULL) {
        ferry_list_foreach(it, &base->nsp->sockets)
        {
            ferry_socket *s = ferry_list_entry(it, ferry_socket, nsp_link);
            if (!sio_socket_live(s))
                continue;
            if (n < max)
                out[n] = s;
            n++;
        }
        return n;
    }
    room *r = find(a, name);
    if (r == NULL)
        return 0;
    ferry_list_foreach(it, &r->members)
    {
        ferry_socket *s = ferry_list_entry(it, membership, in_room)->socket;
        if (!sio_socket_live(s))
            continue;
        if (n < max)
            out[n] = s;
        n++;
    }
    return n;
}

static int deliver(ferry_socket *s, uint64_t epoch, const sio_encoded *pkt, int vol, int *count)
{
    if (s->bcast_mark == epoch || !sio_socket_live(s))
        return 0;
    s->bcast_mark = epoch;
    int rc = sio_socket_queue(s, pkt, vol);
    if (rc == 0)
        (*count)++;
    /* One recipient's closed or full queue does not stop the others. */
    return rc == -FERRY_ENOMEM ? rc : 0;
}

static int la_broadcast(ferry_adapter *base, const sio_encoded *pkt, const ferry_bcast *b)
{
    local_adapter *a = (local_adapter *)base;
    uint64_t epoch = ++base->nsp->sio->bcast_epoch;
    int vol = (b->flags & FERRY_BCAST_VOLATILE) != 0;
    int count = 0, rc = 0;
    ferry_list *it;
    for (unsigned i = 0; i < b->nexcept; i++) {
        room *r = find(a, b->except[i]);
        if (r == NULL)
            continue;
        ferry_list_foreach(it, &r->members)
        ferry_list_entry(it, membership, in_room)->socket->bcast_mark = epoch;
    }
    if (b->exclude != NULL)
        ((ferry_socket *)b->exclude)->bcast_mark = epoch;
    if (b->nto == 0) {
        ferry_list_foreach(it, &base->nsp->sockets)
        {
            rc = deliver(ferry_list_entry(it, ferry_socket, nsp_link), epoch, pkt, vol, &count);
            if (rc != 0)
                return rc;
        }
        return count;
    }
    for (unsigned i = 0; i < b->nto; i++) {
        room *r = find(a, b->to[i]);
        if (r == NULL)
            continue;
        ferry_list_foreach(it, &r->members)
        {
            rc = deliver(ferry_list_entry(it, membership, in_room)->socket, epoch, pkt, vol,
                         &count);
            if (rc != 0)
                return rc;
        }
    }
    return count;
}

static void la_destroy(ferry_adapter *base)
{
    local_adapter *a = (local_adapter *)base;
    /* Sockets leave before the namespace goes; any room left is empty of live sockets. */
    for (size_t i = 0; i < a->nbuckets; i++)
        for (room *r = a->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            while (!ferry_list_empty(&r->members)) {
                membership *m = ferry_list_entry(r->members.next, membership, in_room);
                ferry_list_remove(&m->in_room);
                ferry_list_remove(&m->in_socket);
                ferry_mem_free(m);
            }
            ferry_mem_free(r);
        }
    ferry_mem_free(a->buckets);
    ferry_mem_free(a);
}

static const ferry_adapter_ops local_ops = {
    .name = "local",
    .add = la_add,
    .del = la_del,
    .del_all = la_del_all,
    .has = la_has,
    .socket_rooms = la_socket_rooms,
    .sockets = la_sockets,
    .broadcast = la_broadcast,
    .destroy = la_destroy,
};

ferry_adapter *ferry_adapter_local_new(ferry_namespace *nsp)
{
    local_adapter *a = ferry_mem_calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->nbuckets = 16;
    a->buckets = ferry_mem_calloc(a->nbuckets, sizeof(*a->buckets));
    if (a->buckets == NULL) {
        ferry_mem_free(a);
        return NULL;
    }
    a->super.ops = &local_ops;
    a->super.nsp = nsp;
    return &a->super;
}
