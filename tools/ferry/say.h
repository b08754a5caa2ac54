/* tools/ferry's own lines: "ferry: ..." on stderr, or through ferry's log sink as JSON Lines
 * with --log-format json, so that every line of the process is one JSON object then. */
#ifndef FERRY_TOOL_SAY_H
#define FERRY_TOOL_SAY_H

#include <ferry.h>

/* Set once from the configuration, before the first line. */
void tool_say_json(int on);
/* One line; module names the part of tools/ferry in JSON ("ferry", "workers"). */
void tool_say(const char *module, ferry_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
