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
        cfg->sse_keepalive_ms = (uint32_t)n;
    else if (strcmp(a, "--sse-padding") == 0)
        cfg->sse_padding_bytes = n;
    else if (strcmp(a, "--sse-recycle") == 0)
        cfg->sse_recycle_bytes = n;
    else if (strcmp(a, "--ws-deflate") == 0) {
        /* permessage-deflate on engine WebSockets; v: the size threshold in bytes */
        cfg->ws_per_message_deflate = 1;
        cfg->ws_deflate_threshold = n;
    } else
        return 0;
    return 1;
}
