#include "common/timerwheel.h"

#include <string.h>

#include "common/assert.h"

#define MASK ((uint64_t)FERRY_WHEEL_SLOTS - 1)
#define BLOCK_OF(tick) ((tick) >> FERRY_WHEEL_BITS)
#define SLOT0(tick) ((size_t)((tick)&MASK))
#define SLOT1(tick) ((size_t)(BLOCK_OF(tick) & MASK))

static void arm(ferry_wheel *w);

void ferry_wheel_init(ferry_wheel *w, uv_timer_t *handle)
{
    memset(w->bitmap, 0, sizeof(w->bitmap));
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < FERRY_WHEEL_SLOTS; i++)
            ferry_list_init(&w->slots[l][i]);
    w->handle = handle;
    w->cursor = uv_now(handle->loop);
    w->armed_at = UINT64_MAX;
    w->count = 0;
    w->count0 = 0;
    w->running = 0;
}

void ferry_wheel_stop(ferry_wheel *w)
{
    uv_timer_stop(w->handle);
    w->armed_at = UINT64_MAX;
}

/* Level 0 holds exactly the entries due in the cursor's block: everything of that block was
 * moved down when the cursor entered it, and an entry of the block leaves by firing before the
 * cursor leaves the block. */
static int level_of(const ferry_wheel *w, uint64_t expire)
{
    return BLOCK_OF(expire) == BLOCK_OF(w->cursor) ? 0 : 1;
}

static void slot_link(ferry_wheel *w, ferry_timer *t)
{
    int l = level_of(w, t->expire);
    size_t s = l == 0 ? SLOT0(t->expire) : SLOT1(t->expire);
    ferry_list_insert_tail(&w->slots[l][s], &t->link);
    w->bitmap[l][s / 64] |= (uint64_t)1 << (s % 64);
    w->count0 += l == 0;
}

static void slot_unlink(ferry_wheel *w, ferry_timer *t)
{
    int l = level_of(w, t->expire);
    size_t s = l == 0 ? SLOT0(t->expire) : SLOT1(t->expire);
    ferry_list_remove(&t->link);
    if (ferry_list_empty(&w->slots[l][s]))
        w->bitmap[l][s / 64] &= ~((uint64_t)1 << (s % 64));
    w->count0 -= l == 0;
}

void ferry_timer_start(ferry_wheel *w, ferry_timer *t, uint64_t delay_ms)
{
    if (ferry_timer_armed(t)) {
        slot_unlink(w, t);
        w->count--;
    }
    uint64_t now = uv_now(w->handle->loop);
    /* An empty wheel owes no tick: bring the cursor to now, so that it never trails far behind
     * (catching up hours block by block) after a long idle time. */
    if (w->count == 0 && !w->running && now > w->cursor)
        w->cursor = now;
    t->expire = now + delay_ms;
    /* An entry must never land on a tick the wheel has already passed. */
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

/* The first set bit of bitmap at or after slot from, wrapping; its distance from `from`, or
 * UINT64_MAX when the bitmap is empty. */
static uint64_t next_bit(const uint64_t *bitmap, size_t from)
{
    for (size_t i = 0; i <= FERRY_WHEEL_SLOTS; i += 64 - ((from + i) % 64)) {
        size_t s = (from + i) & MASK;
        uint64_t word = bitmap[s / 64] >> (s % 64);
        if (word != 0) {
            size_t found = (s + (size_t)__builtin_ctzll(word)) & MASK;
            return (found - from) & MASK;
        }
    }
    return UINT64_MAX;
}

/* The next tick the wheel must run at: the next busy level-0 tick of the current block, or the
 * first tick of the next block whose level-1 slot is busy; UINT64_MAX when there is none. */
static uint64_t next_busy_tick(const ferry_wheel *w)
{
    if (w->count == 0)
        return UINT64_MAX;
    if (w->count0 > 0 && SLOT0(w->cursor) != MASK) {
        /* Level 0 holds only this block: no wrap past its end. */
        uint64_t d = next_bit(w->bitmap[0], SLOT0(w->cursor + 1));
        if (d != UINT64_MAX && SLOT0(w->cursor + 1) + d <= MASK)
            return w->cursor + 1 + d;
    }
    if (w->count == w->count0)
        return UINT64_MAX;
    uint64_t block = BLOCK_OF(w->cursor) + 1;
    uint64_t d = next_bit(w->bitmap[1], (size_t)(block & MASK));
    if (d == UINT64_MAX)
        return UINT64_MAX;
    return (block + d) << FERRY_WHEEL_BITS;
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

/* The cursor has just entered block `tick`'s block: move its entries down to level 0. Entries
 * of a later revolution of level 1 stay. */
static void cascade(ferry_wheel *w, uint64_t tick)
{
    size_t s = SLOT1(tick);
    if (ferry_list_empty(&w->slots[1][s]))
        return;
    ferry_list moving;
    ferry_list_move(&w->slots[1][s], &moving);
    w->bitmap[1][s / 64] &= ~((uint64_t)1 << (s % 64));
    while (!ferry_list_empty(&moving)) {
        ferry_timer *t = ferry_list_entry(moving.next, ferry_timer, link);
        ferry_list_remove(&t->link);
        slot_link(w, t);
    }
}

void ferry_wheel_on_uv_timer(uv_timer_t *handle)
{
    ferry_wheel *w = handle->data;
    uint64_t now = uv_now(handle->loop);
    w->armed_at = UINT64_MAX;
    w->running = 1;
    while (w->cursor < now) {
        if (w->count0 == 0) {
            /* Nothing left in this block: go straight to the next block's first tick. */
            uint64_t next_block = (BLOCK_OF(w->cursor) + 1) << FERRY_WHEEL_BITS;
            if (next_block > now || w->count == 0) {
                w->cursor = now;
                break;
            }
            w->cursor = next_block - 1;
        }
        uint64_t tick = ++w->cursor;
        if (SLOT0(tick) == 0)
            cascade(w, tick);
        size_t s = SLOT0(tick);
        if (ferry_list_empty(&w->slots[0][s]))
            continue;
        /* Callbacks may start and stop timers in this very slot: walk a private copy. */
        ferry_list due;
        ferry_list_move(&w->slots[0][s], &due);
        w->bitmap[0][s / 64] &= ~((uint64_t)1 << (s % 64));
        while (!ferry_list_empty(&due)) {
            ferry_timer *t = ferry_list_entry(due.next, ferry_timer, link);
            ferry_list_remove(&t->link);
            FERRY_ASSERT(t->expire == tick);
            w->count0--;
            w->count--;
            t->cb(t);
        }
    }
    w->running = 0;
    arm(w);
}
