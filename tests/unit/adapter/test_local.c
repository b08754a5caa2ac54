/* lib/adapter/local.c through the adapter interface only (adapter.h), with a fake deliver
 * callback instead of the socket layer: join, leave, leave-all, broadcast to all / rooms /
 * except rooms / except one socket, each socket once, the shared packet handed over as it is,
 * members removed and added from inside the deliver callback, the per-socket room bound at the
 * limit and one over, many rooms, and allocation failure at every allocation.
 *
 * The sockets are plain tokens here: the adapter must never look inside a ferry_socket. */
#include "ferry_test.h"

#include "adapter/adapter.h"
#include "failmalloc.h"

#define NSOCK 6

/* The adapter never dereferences a socket: any distinct addresses do. */
static char tokens[NSOCK];
#define SOCK(i) ((ferry_socket *)&tokens[i])
static const char *const sids[NSOCK] = {"sid0", "sid1", "sid2", "sid3", "sid4", "sid5"};

typedef struct fake_host fake_host;
typedef int (*deliver_hook)(fake_host *h, int i);

struct fake_host {
    ferry_adapter *a;
    int order[64]; /* sockets in delivery order */
    int n;
    const ferry_adapter_packet *pkts[64];
    unsigned flags[64];
    int answer[NSOCK]; /* what deliver returns for each socket (default 1) */
    deliver_hook hook;
};

static int sock_index(ferry_socket *s)
{
    return (int)((char *)s - tokens);
}

static int fake_deliver(void *ctx, ferry_socket *s, const ferry_adapter_packet *pkt, unsigned flags)
{
    fake_host *h = ctx;
    int i = sock_index(s);
    assert_true(i >= 0 && i < NSOCK);
    assert_true(h->n < 64);
    h->order[h->n] = i;
    h->pkts[h->n] = pkt;
    h->flags[h->n++] = flags;
    if (h->hook != NULL) {
        int rc = h->hook(h, i);
        if (rc != 0)
            return rc;
    }
    return h->answer[i];
}

static ferry_adapter *make(fake_host *h)
{
    memset(h, 0, sizeof(*h));
    for (int i = 0; i < NSOCK; i++)
        h->answer[i] = 1;
    ferry_adapter_host host = {.deliver = fake_deliver, .ctx = h};
    ferry_adapter *a = NULL;
    assert_int_equal(ferry_adapter_local.create(ferry_adapter_local.ud, "/", &host, &a), 0);
    assert_non_null(a);
    h->a = a;
    return a;
}

static void join(ferry_adapter *a, int i, const char *room)
{
    assert_int_equal(a->ops->add_all(a, SOCK(i), sids[i], &room, 1), 0);
}

/* Every socket connected: a member in its own id room, as the socket layer does. */
static ferry_adapter *make_connected(fake_host *h, int nsock)
{
    ferry_adapter *a = make(h);
    for (int i = 0; i < nsock; i++)
        join(a, i, sids[i]);
    return a;
}

/* Who got the last broadcast, as a bit set; each must appear once. */
static unsigned recipients(fake_host *h)
{
    unsigned bits = 0;
    for (int k = 0; k < h->n; k++) {
        unsigned bit = 1u << h->order[k];
        assert_false(bits & bit);
        bits |= bit;
    }
    h->n = 0;
    return bits;
}

static int bcast(ferry_adapter *a, const char *const *to, size_t nto, const char *const *except,
                 size_t nexcept, const char *except_sid, unsigned flags)
{
    static ferry_buf *none[1];
    ferry_adapter_packet pkt = {.bufs = none, .n = 1};
    ferry_adapter_target t = {to, nto, except, nexcept, except_sid, flags};
    return a->ops->broadcast(a, &pkt, &t);
}

typedef struct collected {
    int v[64];
    int n;
    int stop_after;
} collected;

static int collect(void *ud, ferry_socket *s)
{
    collected *c = ud;
    c->v[c->n++] = sock_index(s);
    return c->stop_after > 0 && c->n == c->stop_after ? 7 : 0;
}

static int count_in(ferry_adapter *a, const char *room)
{
    collected c = {.n = 0};
    ferry_adapter_target t = {.rooms = &room, .nrooms = room != NULL};
    assert_int_equal(a->ops->fetch(a, &t, collect, &c), 0);
    return c.n;
}

/* ------------------------------------------------------------------ membership */

static void join_leave_leave_all(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make_connected(&h, 3);
    assert_int_equal(count_in(a, NULL), 3);
    join(a, 0, "red");
    join(a, 0, "red"); /* twice: nothing more */
    join(a, 0, "blue");
    assert_true(a->ops->has(a, "sid0", "red"));
    assert_false(a->ops->has(a, "sid1", "red"));
    assert_false(a->ops->has(a, "nobody", "red"));
    const char *rooms[2];
    assert_int_equal(a->ops->socket_rooms(a, "sid0", rooms, 2), 3); /* total, two written */
    assert_string_equal(rooms[0], "sid0");
    assert_string_equal(rooms[1], "red");
    assert_int_equal(a->ops->socket_rooms(a, "nobody", rooms, 2), 0);
    assert_int_equal(count_in(a, "red"), 1);
    assert_int_equal(count_in(a, "sid2"), 1);
    a->ops->del(a, "sid0", "red");
    a->ops->del(a, "sid0", "red");   /* not in: nothing */
    a->ops->del(a, "nobody", "red"); /* not a member: nothing */
    a->ops->del(a, "sid1", "nowhere");
    assert_false(a->ops->has(a, "sid0", "red"));
    assert_int_equal(count_in(a, "red"), 0);
    /* Leaving its own room keeps a socket a member: broadcasts to all still reach it. */
    a->ops->del(a, "sid1", "sid1");
    assert_int_equal(a->ops->socket_rooms(a, "sid1", rooms, 2), 0);
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 3);
    assert_int_equal(recipients(&h), 0x7);
    /* Leaving everything forgets it. */
    a->ops->del_all(a, "sid0");
    a->ops->del_all(a, "sid0");
    assert_false(a->ops->has(a, "sid0", "blue"));
    assert_false(a->ops->has(a, "sid0", "sid0"));
    assert_int_equal(count_in(a, "blue"), 0);
    assert_int_equal(count_in(a, NULL), 2);
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x6);
    /* And it can come back. */
    join(a, 0, "blue");
    assert_int_equal(count_in(a, "blue"), 1);
    a->ops->destroy(a); /* members still in: freed too (LeakSanitizer checks) */
}

static void add_all_several_rooms(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make(&h);
    const char *rooms[] = {"sid0", "a", "b", "a", "c"};
    assert_int_equal(a->ops->add_all(a, SOCK(0), "sid0", rooms, 5), 0);
    const char *out[8];
    assert_int_equal(a->ops->socket_rooms(a, "sid0", out, 8), 4);
    assert_string_equal(out[0], "sid0");
    assert_string_equal(out[1], "a");
    assert_string_equal(out[2], "b");
    assert_string_equal(out[3], "c");
    /* The same id with another socket is refused and changes nothing. */
    assert_int_equal(a->ops->add_all(a, SOCK(1), "sid0", rooms + 1, 1), -FERRY_EINVAL);
    assert_int_equal(a->ops->socket_rooms(a, "sid0", out, 8), 4);
    /* No room at all: a member all the same. */
    assert_int_equal(a->ops->add_all(a, SOCK(1), "sid1", NULL, 0), 0);
    assert_int_equal(count_in(a, NULL), 2);
    a->ops->destroy(a);
}

static void rooms_per_socket_limit(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make_connected(&h, 2);
    char name[32];
    /* In its own room already: FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET in all, exactly. */
    for (int i = 1; i < FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET; i++) {
        snprintf(name, sizeof(name), "room%d", i);
        join(a, 0, name);
    }
    const char *out[1];
    assert_int_equal(a->ops->socket_rooms(a, "sid0", out, 1), FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET);
    const char *more = "one-more";
    assert_int_equal(a->ops->add_all(a, SOCK(0), "sid0", &more, 1), -FERRY_ELIMIT);
    assert_false(a->ops->has(a, "sid0", "one-more"));
    join(a, 0, "room7"); /* already in: fine at the limit */
    /* Several at once, the last over the bound: none is added. */
    a->ops->del(a, "sid0", "room1");
    a->ops->del(a, "sid0", "room2");
    const char *three[] = {"x", "y", "z"};
    assert_int_equal(a->ops->add_all(a, SOCK(0), "sid0", three, 3), -FERRY_ELIMIT);
    assert_false(a->ops->has(a, "sid0", "x"));
    assert_false(a->ops->has(a, "sid0", "y"));
    assert_int_equal(count_in(a, "x"), 0);
    /* Another socket is not limited by the first: many rooms, shared and not, grow the
     * tables; every one is still found. */
    for (int i = 1; i < FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET; i++) {
        snprintf(name, sizeof(name), "room%d", i);
        join(a, 1, name);
    }
    for (int i = 3; i < FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET; i++) {
        snprintf(name, sizeof(name), "room%d", i);
        assert_true(a->ops->has(a, "sid0", name));
        assert_int_equal(count_in(a, name), 2);
    }
    /* A broadcast to 16 of those rooms reaches each of the two sockets once. */
    const char *to[16];
    char names[16][32];
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof(names[i]), "room%d", 10 + i);
        to[i] = names[i];
    }
    assert_int_equal(bcast(a, to, 16, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x3);
    a->ops->del_all(a, "sid0");
    assert_int_equal(a->ops->socket_rooms(a, "sid0", out, 1), 0);
    assert_int_equal(count_in(a, "room7"), 1);
    a->ops->del_all(a, "sid1");
    assert_int_equal(count_in(a, "room7"), 0);
    assert_int_equal(count_in(a, NULL), 0);
    a->ops->destroy(a);
}

/* ------------------------------------------------------------------ broadcast */

static void broadcast_forms(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make_connected(&h, 4);
    join(a, 0, "red");
    join(a, 1, "red");
    join(a, 1, "blue");
    join(a, 2, "blue");
    const char *red = "red", *blue = "blue", *nowhere = "nowhere";
    const char *red_blue[] = {"red", "blue"};
    /* All, in the order they came; every recipient gets the same packet (encode once). */
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(h.order[k], k);
        assert_ptr_equal(h.pkts[k], h.pkts[0]);
        assert_int_equal(h.flags[k], 0);
    }
    assert_int_equal(recipients(&h), 0xf);
    /* One room. */
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x3);
    /* Two rooms: sid1 is in both and gets it once. */
    assert_int_equal(bcast(a, red_blue, 2, NULL, 0, NULL, 0), 3);
    assert_int_equal(recipients(&h), 0x7);
    /* The same room twice. */
    const char *red_red[] = {"red", "red"};
    assert_int_equal(bcast(a, red_red, 2, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x3);
    /* Except a room. */
    assert_int_equal(bcast(a, NULL, 0, &blue, 1, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x9);
    /* To a room except another. */
    assert_int_equal(bcast(a, &red, 1, &blue, 1, NULL, 0), 1);
    assert_int_equal(recipients(&h), 0x1);
    /* Except both rooms: only sid3. Except an unknown room: nobody less. */
    assert_int_equal(bcast(a, NULL, 0, red_blue, 2, NULL, 0), 1);
    assert_int_equal(recipients(&h), 0x8);
    assert_int_equal(bcast(a, NULL, 0, &nowhere, 1, NULL, 0), 4);
    assert_int_equal(recipients(&h), 0xf);
    /* socket.broadcast: all but the sender; to a room but the sender. */
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, "sid1", 0), 3);
    assert_int_equal(recipients(&h), 0xd);
    assert_int_equal(bcast(a, &blue, 1, NULL, 0, "sid1", 0), 1);
    assert_int_equal(recipients(&h), 0x4);
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, "nobody", 0), 4);
    assert_int_equal(recipients(&h), 0xf);
    /* Only the exact socket is left out, not others in a room named like it. */
    join(a, 3, "sid1");
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, "sid1", 0), 3);
    assert_int_equal(recipients(&h), 0xd);
    a->ops->del(a, "sid3", "sid1");
    /* An unknown room: nobody. */
    assert_int_equal(bcast(a, &nowhere, 1, NULL, 0, NULL, 0), 0);
    assert_int_equal(h.n, 0);
    /* Flags reach deliver as they are. */
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, FERRY_ADAPTER_VOLATILE), 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(h.flags[k], FERRY_ADAPTER_VOLATILE);
    h.n = 0;
    /* One process: a local broadcast is the same broadcast. */
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, FERRY_ADAPTER_LOCAL), 2);
    assert_int_equal(recipients(&h), 0x3);
    a->ops->destroy(a);
}

static void deliver_answers(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make_connected(&h, 4);
    /* A socket that takes no broadcast now (disconnecting) is offered the packet but not
     * counted; a full or closed queue is not counted and does not stop the others. */
    h.answer[1] = 0;
    h.answer[2] = -FERRY_ELIMIT;
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0xf);
    /* Out of memory stops the broadcast and is returned. */
    h.answer[2] = -FERRY_ENOMEM;
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), -FERRY_ENOMEM);
    assert_int_equal(recipients(&h), 0x7);
    /* The adapter is fine afterwards. */
    h.answer[1] = h.answer[2] = 1;
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 4);
    assert_int_equal(recipients(&h), 0xf);
    a->ops->destroy(a);
}

static void fetch_visits_and_stops(void **state)
{
    (void)state;
    fake_host h;
    ferry_adapter *a = make_connected(&h, 4);
    join(a, 0, "red");
    join(a, 2, "red");
    join(a, 3, "blue");
    const char *to[] = {"red", "blue"};
    const char *except = "sid2";
    collected c = {.n = 0};
    ferry_adapter_target t = {.rooms = to, .nrooms = 2, .except = &except, .nexcept = 1};
    assert_int_equal(a->ops->fetch(a, &t, collect, &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.v[0], 0);
    assert_int_equal(c.v[1], 3);
    /* A nonzero visitor return stops the walk and comes back. */
    collected d = {.n = 0, .stop_after = 2};
    ferry_adapter_target all = {.nrooms = 0};
    assert_int_equal(a->ops->fetch(a, &all, collect, &d), 7);
    assert_int_equal(d.n, 2);
    assert_int_equal(h.n, 0); /* fetch never delivers */
    a->ops->destroy(a);
}

/* ------------------------------------------------------------------ changes during delivery */

static int hook_leave_self(fake_host *h, int i)
{
    h->a->ops->del_all(h->a, sids[i]);
    return 0;
}

static int hook_forget_next(fake_host *h, int i)
{
    if (i + 1 < NSOCK)
        h->a->ops->del_all(h->a, sids[i + 1]);
    return 0;
}

static int hook_forget_everyone(fake_host *h, int i)
{
    (void)i;
    for (int k = 0; k < NSOCK; k++)
        h->a->ops->del_all(h->a, sids[k]);
    return 0;
}

static int hook_leave_red_all(fake_host *h, int i)
{
    (void)i;
    for (int k = 0; k < NSOCK; k++)
        h->a->ops->del(h->a, sids[k], "red");
    return 0;
}

static int hook_newcomer(fake_host *h, int i)
{
    if (i == 0) {
        const char *rooms[] = {"sid5", "red"};
        assert_int_equal(h->a->ops->add_all(h->a, SOCK(5), "sid5", rooms, 2), 0);
    }
    return 0;
}

static int hook_join_later_room(fake_host *h, int i)
{
    /* sid0 joins "blue", a later target room of this broadcast: still once. */
    if (i == 0) {
        const char *blue = "blue";
        assert_int_equal(h->a->ops->add_all(h->a, SOCK(0), "sid0", &blue, 1), 0);
    }
    return 0;
}

static void remove_during_delivery(void **state)
{
    (void)state;
    fake_host h;
    const char *red = "red";
    const char *red_blue[] = {"red", "blue"};

    /* Each recipient leaves everything from inside its own delivery (its session closed). */
    ferry_adapter *a = make_connected(&h, 4);
    for (int i = 0; i < 4; i++)
        join(a, i, "red");
    h.hook = hook_leave_self;
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, 0), 4);
    assert_int_equal(recipients(&h), 0xf);
    h.hook = NULL;
    assert_int_equal(count_in(a, "red"), 0);
    assert_int_equal(count_in(a, NULL), 0);
    assert_false(a->ops->has(a, "sid0", "red"));
    /* The room was freed with its last member: joining makes it anew. */
    join(a, 0, "red");
    assert_int_equal(count_in(a, "red"), 1);
    a->ops->destroy(a);

    /* The next recipient is removed before its turn: it is not delivered to. */
    a = make_connected(&h, 4);
    h.hook = hook_forget_next;
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x5);
    h.hook = NULL;
    assert_int_equal(count_in(a, NULL), 2);
    a->ops->destroy(a);

    /* Everyone is removed by the first delivery, over two rooms. */
    a = make_connected(&h, 4);
    for (int i = 0; i < 4; i++)
        join(a, i, i < 2 ? "red" : "blue");
    h.hook = hook_forget_everyone;
    assert_int_equal(bcast(a, red_blue, 2, NULL, 0, NULL, 0), 1);
    assert_int_equal(recipients(&h), 0x1);
    h.hook = NULL;
    assert_int_equal(count_in(a, NULL), 0);
    assert_int_equal(count_in(a, "blue"), 0);
    a->ops->destroy(a);

    /* Everyone leaves the room being walked (but stays a member). */
    a = make_connected(&h, 4);
    for (int i = 0; i < 4; i++)
        join(a, i, "red");
    h.hook = hook_leave_red_all;
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, 0), 1);
    assert_int_equal(recipients(&h), 0x1);
    h.hook = NULL;
    assert_int_equal(count_in(a, "red"), 0);
    assert_int_equal(count_in(a, NULL), 4);
    join(a, 2, "red"); /* the room is usable again */
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, 0), 1);
    assert_int_equal(recipients(&h), 0x4);
    a->ops->destroy(a);

    /* A socket that comes during the walk does not get that packet, the next one it does. */
    a = make_connected(&h, 3);
    for (int i = 0; i < 3; i++)
        join(a, i, "red");
    h.hook = hook_newcomer;
    assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), 3);
    assert_int_equal(recipients(&h), 0x7);
    assert_int_equal(bcast(a, &red, 1, NULL, 0, NULL, 0), 4);
    assert_int_equal(recipients(&h), 0x27);
    h.hook = NULL;
    a->ops->destroy(a);

    /* A recipient joining a later room of the same broadcast still gets it once. */
    a = make_connected(&h, 3);
    join(a, 0, "red");
    join(a, 1, "blue");
    h.hook = hook_join_later_room;
    assert_int_equal(bcast(a, red_blue, 2, NULL, 0, NULL, 0), 2);
    assert_int_equal(recipients(&h), 0x3);
    h.hook = NULL;
    assert_true(a->ops->has(a, "sid0", "blue"));
    a->ops->destroy(a);
}

/* ------------------------------------------------------------------ allocation failure */

/* Build a small namespace with the Nth allocation failing, for N = 0.. until nothing fails:
 * every call either succeeds or reports -FERRY_ENOMEM and changes nothing, and nothing leaks
 * (LeakSanitizer). */
static void allocation_failure(void **state)
{
    (void)state;
    assert_int_equal(failmalloc_install(), 0);
    char name[32];
    for (long n = 0;; n++) {
        failmalloc_failed = 0;
        failmalloc_countdown = n;
        fake_host h;
        memset(&h, 0, sizeof(h));
        for (int i = 0; i < NSOCK; i++)
            h.answer[i] = 1;
        ferry_adapter_host host = {.deliver = fake_deliver, .ctx = &h};
        ferry_adapter *a = NULL;
        int rc = ferry_adapter_local.create(NULL, "/", &host, &a);
        if (rc != 0) {
            assert_int_equal(rc, -FERRY_ENOMEM);
            assert_true(failmalloc_failed);
            continue;
        }
        h.a = a;
        /* 40 rooms over 3 sockets: enough to grow both tables. */
        int joined[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            const char *rooms[15];
            char names[15][32];
            snprintf(names[0], sizeof(names[0]), "%s", sids[i]);
            rooms[0] = names[0];
            for (int k = 1; k < 15; k++) {
                snprintf(names[k], sizeof(names[k]), "r%d", i * 10 + k);
                rooms[k] = names[k];
            }
            rc = a->ops->add_all(a, SOCK(i), sids[i], rooms, 15);
            if (rc != 0) {
                assert_int_equal(rc, -FERRY_ENOMEM);
                /* All or nothing: not even a member. */
                const char *out[1];
                assert_int_equal(a->ops->socket_rooms(a, sids[i], out, 1), 0);
                assert_false(a->ops->has(a, sids[i], sids[i]));
                continue;
            }
            joined[i] = 1;
        }
        /* A later join of one more room to a member fails cleanly too. */
        if (joined[0]) {
            const char *extra = "extra";
            rc = a->ops->add_all(a, SOCK(0), sids[0], &extra, 1);
            const char *out[1];
            if (rc != 0) {
                assert_int_equal(rc, -FERRY_ENOMEM);
                assert_false(a->ops->has(a, sids[0], "extra"));
                assert_int_equal(a->ops->socket_rooms(a, sids[0], out, 1), 15);
            } else {
                assert_int_equal(a->ops->socket_rooms(a, sids[0], out, 1), 16);
            }
        }
        /* Whatever joined is whole and reachable; broadcasts never allocate. */
        int expect = joined[0] + joined[1] + joined[2];
        assert_int_equal(bcast(a, NULL, 0, NULL, 0, NULL, 0), expect);
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof(name), "r%d", i * 10 + 14);
            assert_int_equal(a->ops->has(a, sids[i], name), joined[i]);
        }
        a->ops->destroy(a);
        int failed = failmalloc_failed;
        failmalloc_countdown = -1;
        if (!failed) {
            assert_int_equal(expect, 3);
            break; /* every allocation of the run has been failed once */
        }
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(join_leave_leave_all),
    cmocka_unit_test(add_all_several_rooms),
    cmocka_unit_test(rooms_per_socket_limit),
    cmocka_unit_test(broadcast_forms),
    cmocka_unit_test(deliver_answers),
    cmocka_unit_test(fetch_visits_and_stops),
    cmocka_unit_test(remove_during_delivery),
    cmocka_unit_test(allocation_failure),
};

FERRY_TEST_MAIN(tests)
