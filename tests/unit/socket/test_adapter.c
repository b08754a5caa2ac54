/* lib/adapter/local.c: rooms, the room per socket id, broadcast to all / rooms / except rooms /
 * excluding the sender, each recipient once, volatile passed on, and the per-socket room
 * bound at the limit and one over. The adapter is compiled into this test with a recording
 * sio_socket_queue(), so no session is needed. */
#include "ferry_test.h"

#include <stdlib.h>

#include "adapter/local.c"

static ferry_socket *queued[64];
static int queued_volatile[64];
static const sio_encoded *queued_pkt[64];
static int nqueued;

int sio_socket_queue(ferry_socket *s, const sio_encoded *e, int volatile_)
{
    queued_pkt[nqueued] = e;
    queued_volatile[nqueued] = volatile_;
    queued[nqueued++] = s;
    return 0;
}

typedef struct fixture {
    ferry_sio sio;
    ferry_namespace nsp;
    ferry_socket s[4];
    ferry_adapter *a;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->nsp.sio = &f->sio;
    f->nsp.name = "/";
    ferry_list_init(&f->nsp.sockets);
    f->a = ferry_adapter_local_new(&f->nsp);
    f->nsp.adapter = f->a;
    for (int i = 0; i < 4; i++) {
        ferry_socket *s = &f->s[i];
        snprintf(s->id, sizeof(s->id), "sock%d", i);
        s->nsp = &f->nsp;
        s->state = SOCK_CONNECTED;
        ferry_list_init(&s->rooms);
        ferry_list_insert_tail(&f->nsp.sockets, &s->nsp_link);
        assert_int_equal(f->a->ops->add(f->a, s, s->id), 0);
    }
    nqueued = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++)
        f->a->ops->del_all(f->a, &f->s[i]);
    f->a->ops->destroy(f->a);
    free(f);
    return 0;
}

/* Which sockets got the last broadcast, as a bit set; each must appear once. */
static unsigned recipients(fixture *f)
{
    unsigned bits = 0;
    for (int i = 0; i < nqueued; i++) {
        unsigned bit = 1u << (queued[i] - f->s);
        assert_false(bits & bit);
        bits |= bit;
    }
    nqueued = 0;
    return bits;
}

static int emit(fixture *f, ferry_bcast *b)
{
    sio_encoded e = {0};
    return f->a->ops->broadcast(f->a, &e, b);
}

/* The ferry_bcast functions live in lib/socket/namespace.c, which this test does not link
 * (it would bring the real sio_socket_queue); these do the same on the public struct. */
static void b_init(ferry_bcast *b, ferry_namespace *nsp)
{
    memset(b, 0, sizeof(*b));
    b->nsp = nsp;
}

static void b_from(ferry_bcast *b, ferry_socket *s)
{
    b_init(b, s->nsp);
    b->exclude = s;
}

static void b_to(ferry_bcast *b, const char *name)
{
    b->to[b->nto++] = name;
}

static void b_except(ferry_bcast *b, const char *name)
{
    b->except[b->nexcept++] = name;
}

static void rooms_join_leave(void **state)
{
    fixture *f = *state;
    ferry_adapter *a = f->a;
    ferry_socket *s = &f->s[0];
    assert_int_equal(a->ops->add(a, s, "red"), 0);
    assert_int_equal(a->ops->add(a, s, "red"), 0);
    assert_true(a->ops->has(a, s, "red"));
    const char *rooms[4];
    assert_int_equal(a->ops->socket_rooms(a, s, rooms, 4), 2);
    assert_string_equal(rooms[0], "sock0");
    assert_string_equal(rooms[1], "red");
    ferry_socket *out[4];
    assert_int_equal(a->ops->sockets(a, "red", out, 4), 1);
    assert_ptr_equal(out[0], s);
    assert_int_equal(a->ops->sockets(a, NULL, out, 4), 4);
    assert_int_equal(a->ops->sockets(a, "sock2", out, 4), 1);
    assert_ptr_equal(out[0], &f->s[2]);
    a->ops->del(a, s, "red");
    a->ops->del(a, s, "red");
    assert_false(a->ops->has(a, s, "red"));
    assert_int_equal(a->ops->sockets(a, "red", out, 4), 0);
    assert_int_equal(((local_adapter *)a)->count, 4); /* the empty room is gone */
}

static void broadcast_forms(void **state)
{
    fixture *f = *state;
    ferry_adapter *a = f->a;
    a->ops->add(a, &f->s[0], "red");
    a->ops->add(a, &f->s[1], "red");
    a->ops->add(a, &f->s[1], "blue");
    a->ops->add(a, &f->s[2], "blue");
    ferry_bcast b;
    /* All; every recipient is handed the same encoded packet (encode once, share). */
    b_init(&b, &f->nsp);
    assert_int_equal(emit(f, &b), 4);
    for (int i = 1; i < 4; i++)
        assert_ptr_equal(queued_pkt[i], queued_pkt[0]);
    assert_int_equal(recipients(f), 0xf);
    /* One room. */
    b_init(&b, &f->nsp);
    b_to(&b, "red");
    assert_int_equal(emit(f, &b), 2);
    assert_int_equal(recipients(f), 0x3);
    /* Two rooms: s1 is in both and gets it once. */
    b_to(&b, "blue");
    assert_int_equal(emit(f, &b), 3);
    assert_int_equal(recipients(f), 0x7);
    /* Except a room. */
    b_init(&b, &f->nsp);
    b_except(&b, "blue");
    assert_int_equal(emit(f, &b), 2);
    assert_int_equal(recipients(f), 0x9);
    /* To a room except another. */
    b_init(&b, &f->nsp);
    b_to(&b, "red");
    b_except(&b, "blue");
    assert_int_equal(emit(f, &b), 1);
    assert_int_equal(recipients(f), 0x1);
    /* socket.broadcast: all but the sender; and to a room but the sender. */
    b_from(&b, &f->s[1]);
    assert_int_equal(emit(f, &b), 3);
    assert_int_equal(recipients(f), 0xd);
    b_to(&b, "blue");
    assert_int_equal(emit(f, &b), 1);
    assert_int_equal(recipients(f), 0x4);
    /* An unknown room: nobody. */
    b_init(&b, &f->nsp);
    b_to(&b, "nowhere");
    assert_int_equal(emit(f, &b), 0);
    /* A socket no longer connected is skipped. */
    f->s[3].state = SOCK_CLOSING;
    b_init(&b, &f->nsp);
    assert_int_equal(emit(f, &b), 3);
    assert_int_equal(recipients(f), 0x7);
    f->s[3].state = SOCK_CONNECTED;
    /* Volatile reaches the queue function as such. */
    b_init(&b, &f->nsp);
    b.flags |= FERRY_BCAST_VOLATILE;
    assert_int_equal(emit(f, &b), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(queued_volatile[i], 1);
    nqueued = 0;
}

static void rooms_per_socket_limit(void **state)
{
    fixture *f = *state;
    ferry_adapter *a = f->a;
    char name[32];
    /* The socket is in its own room already: SIO_MAX_ROOMS_PER_SOCKET in all. */
    for (int i = 1; i < SIO_MAX_ROOMS_PER_SOCKET; i++) {
        snprintf(name, sizeof(name), "room%d", i);
        assert_int_equal(a->ops->add(a, &f->s[0], name), 0);
    }
    assert_int_equal(f->s[0].nrooms, SIO_MAX_ROOMS_PER_SOCKET);
    assert_int_equal(a->ops->add(a, &f->s[0], "one-more"), -FERRY_ELIMIT);
    assert_int_equal(a->ops->add(a, &f->s[0], "room7"), 0); /* already in: fine */
    /* Many rooms force the table to grow; every room is still found. */
    for (int i = 1; i < SIO_MAX_ROOMS_PER_SOCKET; i++) {
        snprintf(name, sizeof(name), "room%d", i);
        assert_true(a->ops->has(a, &f->s[0], name));
        ferry_socket *out[1];
        assert_int_equal(a->ops->sockets(a, name, out, 1), 1);
    }
    a->ops->del_all(a, &f->s[0]);
    assert_int_equal(f->s[0].nrooms, 0);
    assert_int_equal(((local_adapter *)a)->count, 3);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(rooms_join_leave, setup, teardown),
    cmocka_unit_test_setup_teardown(broadcast_forms, setup, teardown),
    cmocka_unit_test_setup_teardown(rooms_per_socket_limit, setup, teardown),
};

FERRY_TEST_MAIN(tests)
