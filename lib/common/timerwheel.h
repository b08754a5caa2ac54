/* A hierarchical timer wheel driven by one uv_timer_t (h2o timerwheel.h's idea; DESIGN.md: "not
 * one libuv timer per session"). Entries are embedded in their owners, linking and unlinking are
 * O(1), and an entry needs no close step. Resolution is one millisecond, libuv's clock unit.
 *
 * Two levels of FERRY_WHEEL_SLOTS slots: level 0 holds the entries due in the current block of
 * 4096 ticks (one per millisecond), level 1 the entries of later blocks (one slot per block,
 * 4.096 s each, 4.7 hours a revolution; entries further away wait in their slot for their
 * revolution). When the cursor enters a block, that block's level-1 slot is moved down. The
 * libuv timer is armed only for the next busy level-0 tick, or else for the start of the next
 * busy block: an idle server with 10,000 sessions whose heartbeats are 25 s away sleeps until
 * the first one is due (a single level wheel woke every millisecond, because every slot held
 * some entry of a later revolution). */
#ifndef FERRY_COMMON_TIMERWHEEL_H
#define FERRY_COMMON_TIMERWHEEL_H

#include <stdint.h>
#include <uv.h>

#include "common/list.h"

#define FERRY_WHEEL_BITS 12
#define FERRY_WHEEL_SLOTS (1u << FERRY_WHEEL_BITS) /* 4.096 s per block at 1 ms a tick */

typedef struct ferry_timer ferry_timer;
typedef void (*ferry_timer_cb)(ferry_timer *t);

struct ferry_timer {
    ferry_list link; /* in its slot while armed; points to itself otherwise */
    uint64_t expire; /* absolute loop time in ms */
    ferry_timer_cb cb;
};

typedef struct ferry_wheel {
    uv_timer_t *handle; /* borrowed: owned and closed by the server */
    uint64_t cursor;    /* last tick processed */
    uint64_t armed_at;  /* tick the libuv timer is set for, or UINT64_MAX */
    size_t count;       /* armed entries, both levels */
    size_t count0;      /* of which in level 0 */
    int running;        /* inside ferry_wheel_on_uv_timer: re-arm once at its end */
    uint64_t bitmap[2][FERRY_WHEEL_SLOTS / 64];
    ferry_list slots[2][FERRY_WHEEL_SLOTS];
} ferry_wheel;

/* handle must be initialised (uv_timer_init) and its data pointer set to the wheel. */
void ferry_wheel_init(ferry_wheel *w, uv_timer_t *handle);
/* Stop the libuv timer; armed entries are left unlinked-in-place and must not fire. */
void ferry_wheel_stop(ferry_wheel *w);

static inline void ferry_timer_init(ferry_timer *t, ferry_timer_cb cb)
{
    ferry_list_init(&t->link);
    t->expire = 0;
    t->cb = cb;
}

static inline int ferry_timer_armed(const ferry_timer *t)
{
    return ferry_list_linked(&t->link);
}

/* (Re)arm t to fire delay_ms from now. */
void ferry_timer_start(ferry_wheel *w, ferry_timer *t, uint64_t delay_ms);
/* Disarm t; harmless when it is not armed. */
void ferry_timer_stop(ferry_wheel *w, ferry_timer *t);

/* The libuv callback: fire what is due and re-arm. */
void ferry_wheel_on_uv_timer(uv_timer_t *handle);

#endif
