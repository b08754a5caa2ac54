/* The local adapter: rooms and members of one namespace in one process (Socket.IO's in-memory
 * Adapter with its rooms and sids maps).
 *
 * Rooms and members each live in a chained hash table by name (FNV-1a, doubled at load 1);
 * a room is freed when its last member leaves, a member when del_all() forgets it. A
 * membership is one small node linked both into its room and into its member, so that leaving
 * everything on disconnect costs O(rooms of the socket). Members are also kept on one list in
 * the order they came, which a broadcast to every socket walks.
 *
 * A broadcast to several rooms reaches each socket once without allocating: every walk takes
 * a new epoch, and a member that was visited (or excluded) carries that epoch in mark.
 *
 * A walk (broadcast or fetch) calls out for every socket, and the host may remove members
 * from inside the call (a session that closes when its queue overflows). Removals during a
 * walk are therefore half done: the membership leaves its member and stops counting, but
 * stays linked in its room (marked dead: member NULL), and a forgotten member stays on the
 * member list (socket NULL), so that the walk's next pointers stay valid; both are freed when
 * the walk ends. */
#include <stdint.h>
#include <string.h>

#include "adapter/adapter.h"
#include "common/assert.h"
#include "common/list.h"
#include "common/mem.h"

/* ------------------------------------------------------------------ a small hash table */

typedef struct hnode {
    struct hnode *next; /* bucket chain */
    uint32_t hash;
    const char *key; /* the name inside the entry that embeds the node */
} hnode;

typedef struct htable {
    hnode **b;
    size_t nb; /* a power of two */
    size_t count;
} htable;

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int ht_init(htable *t)
{
    t->nb = 16;
    t->count = 0;
    t->b = ferry_mem_calloc(t->nb, sizeof(*t->b));
    return t->b != NULL ? 0 : -FERRY_ENOMEM;
}

static hnode *ht_find(const htable *t, const char *key, uint32_t h)
{
    for (hnode *n = t->b[h & (t->nb - 1)]; n != NULL; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static void ht_grow(htable *t)
{
    size_t nb = t->nb * 2;
    hnode **b = ferry_mem_calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still correct: growing is an optimisation */
    for (size_t i = 0; i < t->nb; i++)
        for (hnode *n = t->b[i], *next; n != NULL; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    ferry_mem_free(t->b);
    t->b = b;
    t->nb = nb;
}

static void ht_insert(htable *t, hnode *n)
{
    if (t->count >= t->nb)
        ht_grow(t);
    n->next = t->b[n->hash & (t->nb - 1)];
    t->b[n->hash & (t->nb - 1)] = n;
    t->count++;
}

static void ht_remove(htable *t, hnode *n)
{
    hnode **pp = &t->b[n->hash & (t->nb - 1)];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    t->count--;
}

/* ------------------------------------------------------------------ rooms and members */

typedef struct room {
    hnode node;         /* first: a room is found through its node */
    ferry_list members; /* membership.in_room, in join order; dead ones during a walk */
    size_t count;       /* live memberships */
    char name[];
} room;

typedef struct member {
    hnode node;
    ferry_list link;  /* in the adapter's member list, in the order they came */
    ferry_list rooms; /* membership.in_member, in join order */
    size_t nrooms;
    ferry_socket *socket; /* NULL: forgotten during a walk, freed when it ends */
    uint64_t mark;        /* the epoch of the last walk that visited or excluded it */
    struct member *next_dead;
    char sid[];
} member;

typedef struct membership {
    ferry_list in_room;
    ferry_list in_member; /* or, dead during a walk, in the adapter's dead list */
    room *room;
    member *member; /* NULL: dead */
} membership;

typedef struct local_adapter {
    ferry_adapter super;
    ferry_adapter_host host;
    htable rooms;
    htable members;
    ferry_list all; /* member.link */
    uint64_t epoch;
    unsigned walking;     /* inside a broadcast or fetch (never more than one) */
    ferry_list dead;      /* memberships removed during the walk */
    member *dead_members; /* members forgotten during the walk */
    ferry_adapter_room_cb on_room; /* NULL, or told when a room appears and goes */
    void *on_room_ud;
} local_adapter;

static room *find_room(const local_adapter *a, const char *name)
{
    return (room *)ht_find(&a->rooms, name, hash_name(name));
}

static member *find_member(const local_adapter *a, const char *sid)
{
    return (member *)ht_find(&a->members, sid, hash_name(sid));
}

static room *new_room(local_adapter *a, const char *name)
{
    size_t len = strlen(name);
    room *r = ferry_mem_alloc(sizeof(*r) + len + 1);
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len + 1);
    r->node.hash = hash_name(name);
    r->node.key = r->name;
    ferry_list_init(&r->members);
    r->count = 0;
    ht_insert(&a->rooms, &r->node);
    if (a->on_room != NULL)
        a->on_room(a->on_room_ud, r->name, 1);
    return r;
}

static void drop_room(local_adapter *a, room *r)
{
    ht_remove(&a->rooms, &r->node);
    if (a->on_room != NULL)
        a->on_room(a->on_room_ud, r->name, 0);
    ferry_mem_free(r);
}

static membership *membership_of(const member *mb, const room *r)
{
    ferry_list *it;
    ferry_list_foreach(it, &mb->rooms)
    {
        membership *m = ferry_list_entry(it, membership, in_member);
        if (m->room == r)
            return m;
    }
    return NULL;
}

/* mb leaves m's room. */
static void leave(local_adapter *a, membership *m)
{
    room *r = m->room;
    ferry_list_remove(&m->in_member);
    m->member->nrooms--;
    r->count--;
    if (a->walking > 0) {
        m->member = NULL; /* stays in the room's list until the walk ends */
        ferry_list_insert_tail(&a->dead, &m->in_member);
        return;
    }
    ferry_list_remove(&m->in_room);
    ferry_mem_free(m);
    if (r->count == 0)
        drop_room(a, r);
}

static void forget(local_adapter *a, member *mb)
{
    while (!ferry_list_empty(&mb->rooms))
        leave(a, ferry_list_entry(mb->rooms.next, membership, in_member));
    ht_remove(&a->members, &mb->node);
    mb->socket = NULL;
    if (a->walking > 0) {
        mb->next_dead = a->dead_members; /* stays on the member list until the walk ends */
        a->dead_members = mb;
        return;
    }
    ferry_list_remove(&mb->link);
    ferry_mem_free(mb);
}

/* The walk is over: free what was removed during it. */
static void sweep(local_adapter *a)
{
    while (!ferry_list_empty(&a->dead)) {
        membership *m = ferry_list_entry(a->dead.next, membership, in_member);
        room *r = m->room;
        ferry_list_remove(&m->in_member);
        ferry_list_remove(&m->in_room);
        ferry_mem_free(m);
        if (r->count == 0 && ferry_list_empty(&r->members))
            drop_room(a, r);
    }
    while (a->dead_members != NULL) {
        member *mb = a->dead_members;
        a->dead_members = mb->next_dead;
        ferry_list_remove(&mb->link);
        ferry_mem_free(mb);
    }
}

/* ------------------------------------------------------------------ membership */

static int la_add_all(ferry_adapter *base, ferry_socket *s, const char *sid,
                      const char *const *rooms, size_t n)
{
    local_adapter *a = (local_adapter *)base;
    member *mb = find_member(a, sid);
    int created = mb == NULL;
    if (created) {
        size_t len = strlen(sid);
        mb = ferry_mem_alloc(sizeof(*mb) + len + 1);
        if (mb == NULL)
            return -FERRY_ENOMEM;
        memcpy(mb->sid, sid, len + 1);
        mb->node.hash = hash_name(sid);
        mb->node.key = mb->sid;
        ferry_list_init(&mb->rooms);
        mb->nrooms = 0;
        mb->socket = s;
        /* A member that comes during a walk does not get that walk's packet. */
        mb->mark = a->walking > 0 ? a->epoch : 0;
        mb->next_dead = NULL;
        ht_insert(&a->members, &mb->node);
        ferry_list_insert_tail(&a->all, &mb->link);
    } else if (mb->socket != s) {
        return -FERRY_EINVAL;
    }
    size_t added = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        room *r = find_room(a, rooms[i]);
        if (r != NULL && membership_of(mb, r) != NULL)
            continue;
        if (mb->nrooms >= FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET) {
            rc = -FERRY_ELIMIT;
            break;
        }
        membership *m = ferry_mem_alloc(sizeof(*m));
        if (m == NULL || (r == NULL && (r = new_room(a, rooms[i])) == NULL)) {
            ferry_mem_free(m);
            rc = -FERRY_ENOMEM;
            break;
        }
        m->room = r;
        m->member = mb;
        ferry_list_insert_tail(&r->members, &m->in_room);
        ferry_list_insert_tail(&mb->rooms, &m->in_member);
        r->count++;
        mb->nrooms++;
        added++;
    }
    if (rc != 0) {
        /* All or nothing: the rooms this call added are the last ones of the member. */
        while (added-- > 0)
            leave(a, ferry_list_entry(mb->rooms.prev, membership, in_member));
        if (created)
            forget(a, mb);
    }
    return rc;
}

static void la_del(ferry_adapter *base, const char *sid, const char *name)
{
    local_adapter *a = (local_adapter *)base;
    member *mb = find_member(a, sid);
    room *r = mb != NULL ? find_room(a, name) : NULL;
    membership *m = r != NULL ? membership_of(mb, r) : NULL;
    if (m != NULL)
        leave(a, m);
}

static void la_del_all(ferry_adapter *base, const char *sid)
{
    local_adapter *a = (local_adapter *)base;
    member *mb = find_member(a, sid);
    if (mb != NULL)
        forget(a, mb);
}

static int la_has(ferry_adapter *base, const char *sid, const char *name)
{
    local_adapter *a = (local_adapter *)base;
    member *mb = find_member(a, sid);
    room *r = mb != NULL ? find_room(a, name) : NULL;
    return r != NULL && membership_of(mb, r) != NULL;
}

static size_t la_socket_rooms(ferry_adapter *base, const char *sid, const char **out, size_t max)
{
    member *mb = find_member((local_adapter *)base, sid);
    if (mb == NULL)
        return 0;
    size_t n = 0;
    ferry_list *it;
    ferry_list_foreach(it, &mb->rooms)
    {
        if (n < max)
            out[n] = ferry_list_entry(it, membership, in_member)->room->name;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ walks */

static void mark_except(local_adapter *a, const ferry_adapter_target *t)
{
    ferry_list *it;
    for (size_t i = 0; i < t->nexcept; i++) {
        room *r = find_room(a, t->except[i]);
        if (r == NULL)
            continue;
        ferry_list_foreach(it, &r->members)
        {
            member *mb = ferry_list_entry(it, membership, in_room)->member;
            if (mb != NULL)
                mb->mark = a->epoch;
        }
    }
    if (t->except_sid != NULL) {
        member *mb = find_member(a, t->except_sid);
        if (mb != NULL)
            mb->mark = a->epoch;
    }
}

/* Visit mb unless it was visited or excluded already or is gone. */
static int visit(local_adapter *a, member *mb, ferry_adapter_visit_cb fn, void *ud)
{
    if (mb == NULL || mb->socket == NULL || mb->mark == a->epoch)
        return 0;
    mb->mark = a->epoch;
    return fn(ud, mb->socket);
}

/* Call fn for each socket t selects, each once; stop at fn's first nonzero return. */
static int walk(local_adapter *a, const ferry_adapter_target *t, ferry_adapter_visit_cb fn,
                void *ud)
{
    /* A second walk inside the first would reuse the marks: the host must not start one. */
    FERRY_ASSERT(a->walking == 0);
    a->walking++;
    a->epoch++;
    mark_except(a, t);
    int rc = 0;
    ferry_list *it;
    if (t->nrooms == 0) {
        ferry_list_foreach(it, &a->all)
        {
            if ((rc = visit(a, ferry_list_entry(it, member, link), fn, ud)) != 0)
                break;
        }
    } else {
        for (size_t i = 0; i < t->nrooms && rc == 0; i++) {
            room *r = find_room(a, t->rooms[i]);
            if (r == NULL)
                continue;
            ferry_list_foreach(it, &r->members)
            {
                rc = visit(a, ferry_list_entry(it, membership, in_room)->member, fn, ud);
                if (rc != 0)
                    break;
            }
        }
    }
    a->walking--;
    sweep(a);
    return rc;
}

static int la_fetch(ferry_adapter *base, const ferry_adapter_target *t, ferry_adapter_visit_cb cb,
                    void *ud)
{
    return walk((local_adapter *)base, t, cb, ud);
}

typedef struct bcast_ctx {
    local_adapter *a;
    const ferry_adapter_packet *pkt;
    unsigned flags;
    int count;
} bcast_ctx;

static int deliver_one(void *ud, ferry_socket *s)
{
    bcast_ctx *c = ud;
    int rc = c->a->host.deliver(c->a->host.ctx, s, c->pkt, c->flags);
    if (rc > 0)
        c->count++;
    /* One recipient's closed or full queue does not stop the others. */
    return rc == -FERRY_ENOMEM ? rc : 0;
}

static int la_broadcast(ferry_adapter *base, const ferry_adapter_packet *pkt,
                        const ferry_adapter_target *t)
{
    /* One process: every broadcast is local, FERRY_ADAPTER_LOCAL or not. */
    bcast_ctx c = {(local_adapter *)base, pkt, t->flags, 0};
    int rc = walk(c.a, t, deliver_one, &c);
    return rc != 0 ? rc : c.count;
}

static void la_destroy(ferry_adapter *base)
{
    local_adapter *a = (local_adapter *)base;
    FERRY_ASSERT(a->walking == 0);
    while (!ferry_list_empty(&a->all))
        forget(a, ferry_list_entry(a->all.next, member, link));
    ferry_mem_free(a->rooms.b); /* forgetting every member dropped every room */
    ferry_mem_free(a->members.b);
    ferry_mem_free(a);
}

static const ferry_adapter_ops local_ops = {
    .name = "local",
    .add_all = la_add_all,
    .del = la_del,
    .del_all = la_del_all,
    .has = la_has,
    .socket_rooms = la_socket_rooms,
    .fetch = la_fetch,
    .broadcast = la_broadcast,
    .destroy = la_destroy,
};

int ferry_adapter_local_new(const ferry_adapter_host *host, ferry_adapter_room_cb on_room,
                            void *ud, ferry_adapter **out)
{
    local_adapter *a = ferry_mem_calloc(1, sizeof(*a));
    if (a == NULL)
        return -FERRY_ENOMEM;
    if (ht_init(&a->rooms) != 0 || ht_init(&a->members) != 0) {
        ferry_mem_free(a->rooms.b);
        ferry_mem_free(a);
        return -FERRY_ENOMEM;
    }
    a->super.ops = &local_ops;
    a->host = *host;
    a->on_room = on_room;
    a->on_room_ud = ud;
    ferry_list_init(&a->all);
    ferry_list_init(&a->dead);
    *out = &a->super;
    return 0;
}

static int local_create(void *ud, const char *nsp, const ferry_adapter_host *host,
                        ferry_adapter **out)
{
    (void)ud;
    (void)nsp; /* one process needs no channel names */
    return ferry_adapter_local_new(host, NULL, NULL, out);
}

const ferry_adapter_factory ferry_adapter_local = {
    .name = "local",
    .create = local_create,
    .ud = NULL,
};
