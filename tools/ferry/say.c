/* tools/ferry's own lines (say.h). */
#include "say.h"

#include <stdarg.h>
#include <stdio.h>

static int json_logs;

void tool_say_json(int on)
{
    json_logs = on;
}

void tool_say(const char *module, ferry_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (json_logs)
        ferry_log_message(level, module, msg);
    else
        fprintf(stderr, "ferry: %s\n", msg);
}
