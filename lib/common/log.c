#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/assert.h"
#include "common/strbuf.h"
#include "common/wallclock.h"

ferry_log_level ferry_log_max_level = FERRY_LOG_WARN;
static ferry_log_cb log_cb;
static void *log_ud;
static ferry_log_format log_format = FERRY_LOG_FORMAT_TEXT;

static const char *level_names[] = {"error", "warn", "info", "debug"};

/* A session id is a bearer credential (who has it can poll the session): the default sink
 * writes its first SHORT_SID characters only, enough to follow one session through a log. */
#define SHORT_SID 6

void ferry_set_log_cb(ferry_log_cb cb, ferry_log_level max_level, void *user_data)
{
    log_cb = cb;
    log_ud = user_data;
    ferry_log_max_level = max_level;
}

void ferry_set_log_format(ferry_log_format format)
{
    log_format = format == FERRY_LOG_FORMAT_JSON ? FERRY_LOG_FORMAT_JSON : FERRY_LOG_FORMAT_TEXT;
}

/* s as the inside of a JSON string: quotes, backslashes and control bytes escaped; bytes >= 0x80
 * pass (the messages are UTF-8 or ASCII; a cut multi-byte sequence at the end of a truncated
 * message is replaced by '?'). */
static void json_escape(ferry_strbuf *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            ferry_strbuf_printf(sb, "\\%c", *p);
        else if (*p == '\n')
            ferry_strbuf_puts(sb, "\\n");
        else if (*p < 0x20 || *p == 0x7f)
            ferry_strbuf_printf(sb, "\\u%04x", *p);
        else
            ferry_strbuf_append(sb, p, 1);
    }
}

/* One JSON object per line (JSON Lines): {"time","level","module","sid"?,"msg"}. */
static void write_json(ferry_log_level level, const char *module, const char *sid,
                       const char *msg)
{
    char line[1024];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, line, sizeof(line));
    uint64_t ms = ferry_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char when[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    ferry_strbuf_printf(&sb, "{\"time\":\"%s.%03uZ\",\"level\":\"%s\",\"module\":\"", when,
                        (unsigned)(ms % 1000), level_names[level]);
    json_escape(&sb, module);
    ferry_strbuf_puts(&sb, "\"");
    if (sid != NULL) {
        char shortsid[SHORT_SID + 1];
        snprintf(shortsid, sizeof(shortsid), "%s", sid);
        ferry_strbuf_puts(&sb, ",\"sid\":\"");
        json_escape(&sb, shortsid);
        ferry_strbuf_puts(&sb, "\"");
    }
    ferry_strbuf_puts(&sb, ",\"msg\":\"");
    json_escape(&sb, msg);
    ferry_strbuf_puts(&sb, "\"}\n");
    if (ferry_strbuf_error(&sb) != 0) {
        /* Only an escaped message of ~500 bytes of control characters gets here: the line is
         * written whole with the message replaced, never cut in the middle of the JSON. */
        ferry_strbuf_init(&sb, line, sizeof(line));
        ferry_strbuf_printf(&sb,
                            "{\"time\":\"%s.%03uZ\",\"level\":\"%s\",\"module\":\"%s\","
                            "\"msg\":\"(message too long)\"}\n",
                            when, (unsigned)(ms % 1000), level_names[level], "log");
    }
    fwrite(line, 1, sb.len, stderr);
}

void ferry_log_write(ferry_log_level level, const char *module, const char *sid, const char *fmt,
                     ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg)) {
        /* Cut: do not leave half of a UTF-8 sequence at the end. */
        size_t len = sizeof(msg) - 1;
        while (len > 0 && ((unsigned char)msg[len - 1] & 0xC0) == 0x80)
            len--;
        if (len > 0 && ((unsigned char)msg[len - 1] & 0x80))
            len--;
        msg[len] = '\0';
    }
    if (log_cb != NULL) {
        log_cb(level, module, sid, msg, log_ud);
        return;
    }
    if (log_format == FERRY_LOG_FORMAT_JSON) {
        write_json(level, module, sid, msg);
        return;
    }
    fprintf(stderr, "ferry %s [%s]%s%.6s%s %s\n", level_names[level], module, sid ? " sid=" : "",
            sid ? sid : "", sid ? "..." : "", msg);
}

void ferry_log_message(ferry_log_level level, const char *module, const char *msg)
{
    if ((unsigned)level > FERRY_LOG_DEBUG)
        level = FERRY_LOG_DEBUG;
    ferry_log_write(level, module ? module : "app", NULL, "%s", msg ? msg : "");
}

void ferry_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ferry: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
