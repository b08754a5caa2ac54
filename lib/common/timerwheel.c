#include "common/timerwheel.h"

#include <string.h>

#include "common/assert.h"

#define SLOT_OF(tick) ((size_t)((tick) & (FERRY_WHEEL_SLOTS - 1)))

static void arm(ferry_wheel *w);

void ferry_wheel_init(ferry_wheel *w, uv_timer_t *handle)
{
    memset(w->bitmap, 0, sizeof(w->bitmap));
    for (size_t i = 0; i < FERRY_WHEEL_SLOTS; i++)
        ferry_list_init(&w->slots[i]);
    w->handle = handle;
    w->cursor = uv_now(handle->loop);
    w->armed_at = UINT64_MAX;
    w->count = 0;
    w->running = 0;
}

void ferry_wheel_stop(ferry_wheel *w)
{
    uv_timer_stop(w->handle);
    w->armed_at = UINT64_MAX;
}

static void slot_link(ferry_wheel *w, ferry_timer *t)
{
    size_t s = SLOT_OF(t->expire);
    ferry_list_insert_tail(&w->slots[s], &t->link);
    w->bitmap[s / 64] |= (uint64_t)1 << (s % 64);
}

static void slot_unlink(ferry_wheel *w, ferry_timer *t)
{
    size_t s = SLOT_OF(t->expire);
    ferry_list_remove(&t->link);
    if (ferry_list_empty(&w->slots[s]))
        w->bitmap[s / 64] &= ~((uint64_t)1 << (s % 64));
}

void ferry_timer_start(ferry_wheel *w, ferry_timer *t, uint64_t delay_ms)
{
    if (ferry_timer_armed(t)) {
        slot_unlink(w, t);
        w->count--;
    }
    uint64_t now = uv_now(w->handle->loop);
    t->expire = now + delay_ms;
    /* An entry must never land on a tick the wheel has already passed this revolution. */
    if (t->expire <= w->cursor)
        t->expire = w->cursor + 1;
    slot_link(w, t);
    w->count++;
    if (!w->running && t->expire < w->armed_at)
        arm(w);
}

void ferry_timer_stop(ferry_wheel *w, ferry_timer *t)
{
    if (!ferry_timer_armed(t))
        return;
    slot_unlink(w, t);
    w->count--;
    /* The libuv timer may stay armed for a slot that is now empty: waking once for nothing is
     * cheaper than searching for the next slot on every stop. */
}

/* The first tick after the cursor whose slot is non-empty, or UINT64_MAX. */
static uint64_t next_busy_tick(const ferry_wheel *w)
{
    if (w->count == 0)
        return UINT64_MAX;
    size_t start = SLOT_OF(w->cursor + 1);
    for (size_t i = 0; i <= FERRY_WHEEL_SLOTS; i += 64 - ((start + i) % 64)) {
        size_t s = (start + i) & (FERRY_WHEEL_SLOTS - 1);
        uint64_t word = w->bitmap[s / 64] >> (s % 64);
        if (word != 0) {
            size_t found = (s + (size_t)__builtin_ctzll(word)) & (FERRY_WHEEL_SLOTS - 1);
            size_t dist = (found - start) & (FERRY_WHEEL_SLOTS - 1);
            return w->cursor + 1 + dist;
        }
    }
    return UINT64_MAX;
}

static void arm(ferry_wheel *w)
{
    if (uv_is_closing((uv_handle_t *)w->handle))
        return;
    uint64_t tick = next_busy_tick(w);
    if (tick == UINT64_MAX) {
        uv_timer_stop(w->handle);
        w->armed_at = UINT64_MAX;
        return;
    }
    uint64_t now = uv_now(w->handle->loop);
    w->armed_at = tick;
    uv_timer_start(w->handle, ferry_wheel_on_uv_timer, tick > now ? tick - now : 0, 0);
}

void ferry_wheel_on_uv_timer(uv_timer_t *handle)
{
    ferry_wheel *w = handle->data;
    uint64_t now = uv_now(handle->loop);
    w->armed_at = UINT64_MAX;
    w->running = 1;
    /* Visit each tick since the last run, but each slot at most once per run. */
    uint64_t last = now;
    if (last - w->cursor > FERRY_WHEEL_SLOTS)
        last = w->cursor + FERRY_WHEEL_SLOTS;
    while (w->cursor < last) {
        uint64_t tick = ++w->cursor;
        size_t s = SLOT_OF(tick);
        if (ferry_list_empty(&w->slots[s]))
            continue;
        /* Callbacks may start and stop timers in this very slot: walk a private copy. */
        ferry_list due;
        ferry_list_move(&w->slots[s], &due);
        w->bitmap[s / 64] &= ~((uint64_t)1 << (s % 64));
        while (!ferry_list_empty(&due)) {
            ferry_timer *t = ferry_list_entry(due.next, ferry_timer, link);
            ferry_list_remove(&t->link);
            if (t->expire > now) {
                slot_link(w, t); /* a later revolution */
                continue;
            }
            w->count--;
            t->cb(t);
        }
    }
    if (w->cursor < now)
        w->cursor = now; /* skipped a whole revolution: every slot was visited once */
    w->running = 0;
    arm(w);
}
