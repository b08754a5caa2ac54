#include "common/wallclock.h"

#include <time.h>

uint64_t ferry_wall_ms(void)
{
    /* libuv 1.44 has no uv_clock_gettime() yet (1.45). */
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
