#include "test_flags.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned test_parse_transports(const char *list)
{
    unsigned bits = 0;
    /* Whole names only: "short-polling" alone must not turn on "polling". */
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        char name[64];
        if (n > 0) {
            unsigned bit = 0;
            if (n < sizeof(name)) {
                memcpy(name, p, n);
                name[n] = '\0';
                bit = ferry_transport_bit(name);
            }
            if (bit == 0) {
                fprintf(stderr, "test server: unknown transport '%.*s' in --transports\n", (int)n,
                        p);
                exit(2);
            }
            bits |= bit;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return bits;
}

/* Transport options named by the flags, set once the server exists (test_transport_options()). */
#define MAX_OPTIONS 16
static struct {
    char transport[32];
    char option[64];
    uint64_t value;
} options[MAX_OPTIONS];
static size_t noptions;

static void add_option(const char *transport, size_t tlen, const char *option, size_t olen,
                       const char *value)
{
    char *end;
    unsigned long long n = strtoull(value, &end, 10);
    if (noptions == MAX_OPTIONS || tlen == 0 || tlen >= sizeof(options[0].transport) || olen == 0 ||
        olen >= sizeof(options[0].option) || *value < '0' || *value > '9' || *end != '\0') {
        fprintf(stderr, "test server: bad transport option %.*s.%.*s=%s\n", (int)tlen, transport,
                (int)olen, option, value);
        exit(2);
    }
    memcpy(options[noptions].transport, transport, tlen);
    options[noptions].transport[tlen] = '\0';
    memcpy(options[noptions].option, option, olen);
    options[noptions].option[olen] = '\0';
    options[noptions++].value = n;
}

int test_transport_options(ferry_server *srv)
{
    for (size_t i = 0; i < noptions; i++) {
        int rc = ferry_server_transport_option(srv, options[i].transport, options[i].option,
                                               options[i].value);
        if (rc != 0) {
            fprintf(stderr, "test server: transport option %s.%s=%llu: %s\n", options[i].transport,
                    options[i].option, (unsigned long long)options[i].value, ferry_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int test_engine_flag(ferry_server_config *cfg, const char *a, const char *v)
{
    unsigned long n = strtoul(v, NULL, 10);
    if (strcmp(a, "--path") == 0)
        cfg->path = v;
    else if (strcmp(a, "--ping-interval") == 0)
        cfg->ping_interval_ms = (uint32_t)n;
    else if (strcmp(a, "--ping-timeout") == 0)
        cfg->ping_timeout_ms = (uint32_t)n;
    else if (strcmp(a, "--max-payload") == 0)
        cfg->max_payload = n;
    else if (strcmp(a, "--max-header-bytes") == 0)
        cfg->max_header_bytes = n;
    else if (strcmp(a, "--header-timeout") == 0)
        cfg->header_timeout_ms = (uint32_t)n;
    else if (strcmp(a, "--idle-timeout") == 0)
        cfg->idle_timeout_ms = (uint32_t)n;
    else if (strcmp(a, "--max-connections") == 0)
        cfg->max_connections = (uint32_t)n;
    else if (strcmp(a, "--queue-bytes") == 0)
        cfg->max_session_queue_bytes = n;
    else if (strcmp(a, "--transports") == 0)
        cfg->transports = test_parse_transports(v);
    else if (strcmp(a, "--static") == 0)
        cfg->static_root = v;
    else if (strcmp(a, "--cors") == 0)
        cfg->cors_origins = v;
    else if (strcmp(a, "--short-poll-interval") == 0)
        cfg->short_poll_interval_ms = (uint32_t)n;
    else if (strcmp(a, "--sse-keepalive") == 0)
        add_option("sse", 3, "keepalive_ms", 12, v);
    else if (strcmp(a, "--sse-padding") == 0)
        add_option("sse", 3, "padding_bytes", 13, v);
    else if (strcmp(a, "--sse-recycle") == 0)
        add_option("sse", 3, "recycle_bytes", 13, v);
    else if (strcmp(a, "--ws-deflate") == 0) {
        /* permessage-deflate on engine WebSockets; v: the size threshold in bytes */
        add_option("websocket", 9, "per_message_deflate", 19, "1");
        add_option("websocket", 9, "deflate_threshold", 17, v);
    } else if (strcmp(a, "--log-level") == 0) {
        /* ferry's log lines on stderr up to this level (default warn): info adds why a
         * recovery was refused, attaches, transport changes (the chaos runs read them) */
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        size_t l = 0;
        while (l < sizeof(levels) / sizeof(levels[0]) && strcmp(v, levels[l]) != 0)
            l++;
        if (l == sizeof(levels) / sizeof(levels[0])) {
            fprintf(stderr, "test server: --log-level: error, warn, info or debug, not '%s'\n", v);
            exit(2);
        }
        ferry_set_log_cb(NULL, (ferry_log_level)l, NULL);
    } else if (strcmp(a, "--transport-option") == 0) {
        /* TRANSPORT.OPTION=VALUE: any option of any transport, by the registry's names */
        const char *dot = strchr(v, '.');
        const char *eq = dot ? strchr(dot, '=') : NULL;
        if (eq == NULL)
            add_option(v, 0, "", 0, ""); /* reports the bad flag */
        else
            add_option(v, (size_t)(dot - v), dot + 1, (size_t)(eq - dot - 1), eq + 1);
    } else
        return 0;
    return 1;
}
