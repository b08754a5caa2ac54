/* lib/common/timerwheel.c on a real loop: entries fire in deadline order and never early,
 * stop and restart work from inside callbacks, an entry a revolution (4.096 s) or more away
 * waits its turn, entries cross block boundaries (level 1 to level 0), far entries let the
 * loop sleep, and an idle wheel leaves the loop free to end. */
#include "ferry_test.h"

#include <stdlib.h>
#include <uv.h>

#include "common/timerwheel.h"

#define N 40

typedef struct ent {
    ferry_timer t;
    uint64_t due;
    uint64_t fired_at;
    int fired;
} ent;

static uv_loop_t loop;
static uv_timer_t handle;
static ferry_wheel *wheel;
static ent ents[N];
static int order[N];
static int nfired;
static ferry_timer *to_stop;
static ferry_timer *to_restart;

static void on_fire(ferry_timer *t)
{
    ent *e = (ent *)t;
    e->fired++;
    e->fired_at = uv_now(&loop);
    order[nfired++] = (int)(e - ents);
    if (to_stop != NULL) {
        ferry_timer_stop(wheel, to_stop);
        to_stop = NULL;
    }
    if (to_restart != NULL) {
        ferry_timer *r = to_restart;
        to_restart = NULL;
        ferry_timer_start(wheel, r, 30);
    }
}

static void setup_wheel(void)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &handle);
    wheel = calloc(1, sizeof(*wheel));
    assert_non_null(wheel);
    handle.data = wheel;
    ferry_wheel_init(wheel, &handle);
    memset(ents, 0, sizeof(ents));
    nfired = 0;
    to_stop = to_restart = NULL;
}

static void teardown_wheel(void)
{
    uv_close((uv_handle_t *)&handle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(wheel);
}

static void start(int i, uint64_t ms)
{
    ferry_timer_init(&ents[i].t, on_fire);
    ents[i].due = uv_now(&loop) + ms;
    ferry_timer_start(wheel, &ents[i].t, ms);
}

static void fire_in_order_never_early(void **state)
{
    (void)state;
    setup_wheel();
    /* Deadlines out of order, some equal, some on the same slot. */
    for (int i = 0; i < N; i++)
        start(i, (uint64_t)((i * 37) % 60 + 1));
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once the wheel is idle */
    assert_int_equal(nfired, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ents[i].fired, 1);
        assert_true(ents[i].fired_at >= ents[i].due);
        /* Late only when the loop is (a loaded machine); a revolution late would be 4096. */
        assert_true(ents[i].fired_at <= ents[i].due + 1000);
    }
    for (int k = 1; k < N; k++)
        assert_true(ents[order[k - 1]].due <= ents[order[k]].due);
    teardown_wheel();
}

static void stop_and_restart_inside_callbacks(void **state)
{
    (void)state;
    setup_wheel();
    start(0, 5);
    start(1, 5);  /* same slot as 0: stopped by 0's callback */
    start(2, 20); /* restarted by 0's callback: fires 30 ms after it */
    start(3, 10);
    ferry_timer_stop(wheel, &ents[3].t); /* stopped before its time: never fires */
    ferry_timer_stop(wheel, &ents[3].t); /* harmless twice */
    to_stop = &ents[1].t;
    to_restart = &ents[2].t;
    uint64_t t0 = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ents[0].fired, 1);
    assert_int_equal(ents[1].fired, 0);
    assert_int_equal(ents[3].fired, 0);
    assert_int_equal(ents[2].fired, 1);
    assert_true(ents[2].fired_at >= ents[0].fired_at + 30);
    assert_true(ents[2].fired_at - t0 < 1000); /* not a revolution away; loaded: late */
    assert_false(ferry_timer_armed(&ents[2].t));
    teardown_wheel();
}

/* An entry more than one revolution away shares its slot with near ones and must wait. */
static void beyond_one_revolution(void **state)
{
    (void)state;
    setup_wheel();
    start(0, FERRY_WHEEL_SLOTS + 20); /* same slot as the next one */
    start(1, 20);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ents[1].fired, 1);
    assert_int_equal(ents[0].fired, 1);
    assert_int_equal(order[0], 1);
    assert_true(ents[0].fired_at >= ents[0].due);
    /* Its own revolution, not the next (4096 ms later); a loaded machine runs it late. */
    assert_true(ents[0].fired_at <= ents[0].due + 1000);
    teardown_wheel();
}

/* Entries on both sides of a block boundary (4.096 s): moved down from level 1 and fired in
 * order, never early. */
static void across_blocks(void **state)
{
    (void)state;
    setup_wheel();
    for (int i = 0; i < N; i++)
        start(i, (uint64_t)((i * 113) % 4500 + 1));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(nfired, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ents[i].fired, 1);
        assert_true(ents[i].fired_at >= ents[i].due);
        assert_true(ents[i].fired_at <= ents[i].due + 1000); /* late only on a loaded machine */
    }
    for (int k = 1; k < N; k++)
        assert_true(ents[order[k - 1]].due <= ents[order[k]].due);
    teardown_wheel();
}

/* Many entries far away (heartbeats 10-11 s ahead): the libuv timer sleeps at least until the
 * block of the first one begins, instead of waking for every slot that holds an entry. */
static void far_entries_let_the_loop_sleep(void **state)
{
    (void)state;
    setup_wheel();
    static ferry_timer far[2000];
    const uint64_t t_far = uv_now(&loop);
    for (int i = 0; i < 2000; i++) {
        ferry_timer_init(&far[i], on_fire);
        ferry_timer_start(wheel, &far[i], 10000 + (uint64_t)i / 2);
    }
    assert_true(uv_is_active((uv_handle_t *)&handle));
    /* Absolute loop times (due_in + now), so that a descheduled test cannot fail them. */
    assert_true(uv_now(&loop) + uv_timer_get_due_in(&handle) >= t_far + 10000 - FERRY_WHEEL_SLOTS);
    /* A near entry still fires on time, and the wheel sleeps again afterwards. */
    start(0, 10);
    assert_true(uv_timer_get_due_in(&handle) <= 10);
    while (!ents[0].fired)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(ents[0].fired_at >= ents[0].due && ents[0].fired_at <= ents[0].due + 1000);
    assert_true(uv_now(&loop) + uv_timer_get_due_in(&handle) >= t_far + 10000 - FERRY_WHEEL_SLOTS);
    for (int i = 0; i < 2000; i++)
        ferry_timer_stop(wheel, &far[i]);
    assert_int_equal(nfired, 1);
    teardown_wheel();
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(across_blocks),
    cmocka_unit_test(far_entries_let_the_loop_sleep),
    cmocka_unit_test(fire_in_order_never_early),
    cmocka_unit_test(stop_and_restart_inside_callbacks),
    cmocka_unit_test(beyond_one_revolution),
};

FERRY_TEST_MAIN(tests)
