/* A hashed timer wheel driven by one uv_timer_t (h2o timerwheel.h's idea; DESIGN.md: "not one
 * libuv timer per session"). Entries are embedded in their owners, linking and unlinking are
 * O(1), and an entry needs no close step. Resolution is one millisecond, libuv's clock unit.
 *
 * Each slot holds the entries whose expiry falls on its tick modulo the wheel size; an entry
 * due in a later revolution waits in its slot and is skipped until its time comes. The libuv
 * timer is armed only for the next non-empty slot, so an idle wheel never wakes the loop. */
#ifndef FERRY_COMMON_TIMERWHEEL_H
#define FERRY_COMMON_TIMERWHEEL_H

#include <stdint.h>
#include <uv.h>

#include "common/list.h"

#define FERRY_WHEEL_SLOTS 4096 /* 4.096 s per revolution at 1 ms a tick */

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
    size_t count;
    int running;        /* inside ferry_wheel_run: re-arm once at its end */
    uint64_t bitmap[FERRY_WHEEL_SLOTS / 64];
    ferry_list slots[FERRY_WHEEL_SLOTS];
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
