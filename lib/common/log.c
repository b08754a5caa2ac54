#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/assert.h"

ferry_log_level ferry_log_max_level = FERRY_LOG_WARN;
static ferry_log_cb log_cb;
static void *log_ud;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void ferry_set_log_cb(ferry_log_cb cb, ferry_log_level max_level, void *user_data)
{
    log_cb = cb;
    log_ud = user_data;
    ferry_log_max_level = max_level;
}

void ferry_log_write(ferry_log_level level, const char *module, const char *sid, const char *fmt,
                     ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_cb != NULL) {
        log_cb(level, module, sid, msg, log_ud);
        return;
    }
    /* A session id is a bearer credential (who has it can poll the session): the default sink
     * writes its first 6 characters only, enough to follow one session through a log. */
    fprintf(stderr, "ferry %s [%s]%s%.6s%s %s\n", level_names[level], module, sid ? " sid=" : "",
            sid ? sid : "", sid ? "..." : "", msg);
}

void ferry_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ferry: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
