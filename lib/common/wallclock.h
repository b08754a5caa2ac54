/* Wall-clock time for what the application reads as a date (a handshake's time). Loop time
 * (uv_now) stays the clock for every timeout: it never jumps. */
#ifndef FERRY_COMMON_WALLCLOCK_H
#define FERRY_COMMON_WALLCLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME), or 0 if the clock cannot be read. */
uint64_t ferry_wall_ms(void);

#endif
