/* Levelled logging. FERRY_LOG checks the level before anything is formatted (Redis
 * serverLog), so DEBUG lines cost one comparison when off. */
#ifndef FERRY_COMMON_LOG_H
#define FERRY_COMMON_LOG_H

#include "ferry.h"

extern ferry_log_level ferry_log_max_level;

void ferry_log_write(ferry_log_level level, const char *module, const char *sid, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

#define FERRY_LOG(level, module, sid, ...)                                                        \
    do {                                                                                          \
        if ((level) <= ferry_log_max_level)                                                       \
            ferry_log_write((level), (module), (sid), __VA_ARGS__);                               \
    } while (0)

#endif
